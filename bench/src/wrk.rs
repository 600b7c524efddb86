//! The closed-loop figure from a standard tool: `wrk` with a Lua script
//! that makes every request a `POST /v1/couplets` with a JSON body. Closed
//! loop means each connection sends its next request when the previous
//! answer arrives, so the figure is the most the API accepts with that many
//! connections (its throughput ceiling), not a latency at a given load; it
//! complements the open-loop figure rather than replacing it.
//!
//! `wrk` is a Debian package; when it is missing the bench runs
//! `scripts/install-bench-deps.sh` (unless told not to).

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::cpu_policy::CpuPolicy;

/// Finds `wrk`, installing it with `scripts/install-bench-deps.sh` when allowed.
pub fn ensure_installed(install: bool) -> Result<()> {
    if found() {
        return Ok(());
    }
    if !install {
        bail!("wrk is not installed (run scripts/install-bench-deps.sh)");
    }
    let script = crate::stack::root().join("scripts/install-bench-deps.sh");
    eprintln!("wrk not found: running {}", script.display());
    let st = Command::new("bash").arg(&script).status().with_context(|| format!("run {}", script.display()))?;
    if !st.success() || !found() {
        bail!("{} did not install wrk ({st})", script.display());
    }
    Ok(())
}

fn found() -> bool {
    Command::new("wrk").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

/// The Lua script: method, headers and body of every request.
pub fn lua_script(body: &str, bearer: Option<&str>) -> String {
    let mut s = String::from("-- Written by `bench submit`: every request is one submission.\nwrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\n");
    if let Some(t) = bearer {
        s.push_str(&format!("wrk.headers[\"Authorization\"] = \"Bearer {t}\"\n"));
    }
    // A long bracket with a level the body cannot contain.
    s.push_str(&format!("wrk.body = [==[{body}]==]\n"));
    s
}

/// Writes the script under `dir`; returns its path.
pub fn write_script(dir: &Path, body: &str, bearer: Option<&str>) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let p = dir.join("wrk-submit.lua");
    std::fs::write(&p, lua_script(body, bearer))?;
    Ok(p)
}

/// `wrk -t T -c C -d Ns --latency -s script url`, under `policy` (started
/// from a thread that takes it, since a child inherits the policy of the
/// thread that starts it; see `--generator-policy`).
pub fn spawn(url: &str, threads: usize, connections: usize, seconds: f64, script: &Path, policy: CpuPolicy) -> Result<Child> {
    let mut cmd = Command::new("wrk");
    cmd
        .args(["-t", &threads.to_string(), "-c", &connections.to_string(), "-d", &format!("{}s", seconds.round().max(1.0))])
        .args(["--timeout", "10s", "--latency", "-s"])
        .arg(script)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    std::thread::scope(|s| {
        s.spawn(|| {
            common::cpu_policy::apply_to_current_thread(policy).map_err(|e| anyhow!("wrk's scheduling policy {policy}: {e}"))?;
            cmd.spawn().context("run wrk")
        })
        .join()
        .map_err(|_| anyhow!("the thread starting wrk panicked"))?
    })
}

/// What wrk printed.
#[derive(Debug, Clone, PartialEq)]
pub struct WrkResult {
    /// `Requests/sec`.
    pub rps: f64,
    /// Requests completed.
    pub requests: u64,
    /// Seconds of the run.
    pub seconds: f64,
    /// Latency percentiles (ms) of the `--latency` distribution.
    pub p50_ms: f64,
    /// 90th.
    pub p90_ms: f64,
    /// 99th.
    pub p99_ms: f64,
    /// Largest latency, ms.
    pub max_ms: f64,
    /// `Non-2xx or 3xx responses`.
    pub non_2xx: u64,
    /// Sum of `Socket errors` (connect, read, write, timeout).
    pub socket_errors: u64,
}

impl WrkResult {
    /// Failed requests of any kind.
    pub fn errors(&self) -> u64 {
        self.non_2xx + self.socket_errors
    }

    /// JSON form.
    pub fn json(&self) -> Value {
        json!({"requests_per_s": self.rps, "requests": self.requests, "seconds": self.seconds,
               "latency_ms": {"p50": self.p50_ms, "p90": self.p90_ms, "p99": self.p99_ms, "max": self.max_ms},
               "non_2xx": self.non_2xx, "socket_errors": self.socket_errors, "tool": "wrk"})
    }
}

/// `451.11us`, `1.93ms`, `2.01s`, `1.5m` → ms.
fn duration_ms(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s.find(|c: char| c.is_ascii_alphabetic())?;
    let (n, unit) = s.split_at(split);
    let n: f64 = n.parse().ok()?;
    Some(match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        "h" => n * 3_600_000.0,
        _ => return None,
    })
}

/// Parses wrk's output (with `--latency`).
pub fn parse(out: &str) -> Result<WrkResult> {
    let mut r = WrkResult { rps: f64::NAN, requests: 0, seconds: f64::NAN, p50_ms: f64::NAN, p90_ms: f64::NAN, p99_ms: f64::NAN, max_ms: f64::NAN, non_2xx: 0, socket_errors: 0 };
    for line in out.lines() {
        let t = line.trim();
        let w: Vec<&str> = t.split_whitespace().collect();
        if let Some(v) = t.strip_prefix("Requests/sec:") {
            r.rps = v.trim().parse().unwrap_or(f64::NAN);
        } else if w.first() == Some(&"Latency") && w.len() >= 4 {
            // "Latency  1.93ms  451.11us  16.09ms  85.04%": avg, stdev, max.
            r.max_ms = duration_ms(w[3]).unwrap_or(f64::NAN);
        } else if w.len() == 2 && w[0].ends_with('%') {
            let v = duration_ms(w[1]).unwrap_or(f64::NAN);
            match w[0] {
                "50%" => r.p50_ms = v,
                "90%" => r.p90_ms = v,
                "99%" => r.p99_ms = v,
                _ => {}
            }
        } else if w.len() >= 4 && w[1] == "requests" && w[2] == "in" {
            // "259427 requests in 10.00s, 56.17MB read"
            r.requests = w[0].parse().unwrap_or(0);
            r.seconds = duration_ms(w[3].trim_end_matches(',')).map(|ms| ms / 1000.0).unwrap_or(f64::NAN);
        } else if let Some(v) = t.strip_prefix("Non-2xx or 3xx responses:") {
            r.non_2xx = v.trim().parse().unwrap_or(0);
        } else if let Some(v) = t.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            r.socket_errors = v.split(',').filter_map(|kv| kv.split_whitespace().nth(1)).filter_map(|n| n.parse::<u64>().ok()).sum();
        }
    }
    if r.rps.is_nan() {
        return Err(anyhow!("cannot read wrk output: {out:?}"));
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUT: &str = "Running 10s test @ http://127.0.0.1:8080/v1/couplets
  2 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.93ms  451.11us  16.09ms   85.04%
    Req/Sec    13.04k   636.72    14.37k    70.50%
  Latency Distribution
     50%    1.86ms
     75%    2.08ms
     90%    2.37ms
     99%  850.00us
  259427 requests in 10.00s, 56.17MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 12
Requests/sec:  25936.73
Transfer/sec:      5.61MB
";

    #[test]
    fn wrk_output_is_read() {
        let r = parse(OUT).expect("parsed");
        assert_eq!(r.rps, 25936.73);
        assert_eq!(r.requests, 259_427);
        assert!((r.seconds - 10.0).abs() < 1e-9);
        assert!((r.p50_ms - 1.86).abs() < 1e-9);
        assert!((r.p90_ms - 2.37).abs() < 1e-9);
        assert!((r.p99_ms - 0.85).abs() < 1e-9);
        assert!((r.max_ms - 16.09).abs() < 1e-9);
        assert_eq!((r.non_2xx, r.socket_errors, r.errors()), (12, 3, 15));
        assert!(parse("unable to connect to 127.0.0.1:1 Connection refused").is_err());
    }

    #[test]
    fn the_script_posts_the_body() {
        let s = lua_script(r#"{"theme":"春风"}"#, Some("pk_x"));
        assert!(s.contains("wrk.method = \"POST\""));
        assert!(s.contains("wrk.body = [==[{\"theme\":\"春风\"}]==]"));
        assert!(s.contains("Bearer pk_x"));
        assert!(!lua_script("{}", None).contains("Authorization"));
        assert!((duration_ms("2.01s").expect("seconds") - 2010.0).abs() < 1e-9);
        assert_eq!(duration_ms("1.5x"), None);
    }
}
