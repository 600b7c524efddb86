//! The Redis ceilings of a submission, without HTTP: how fast Redis takes
//! (a) a bare `XADD` of a job-sized stream entry and (b) an `EVALSHA` of the
//! real submit script with exactly the KEYS/ARGV the API sends. Set beside the
//! HTTP figures, they show how much of a submission's cost is Redis and how
//! much is HTTP and the API around it.
//!
//! "Exactly what the API sends" is taken, not rebuilt: [`capture_submit`]
//! watches Redis with `MONITOR` while one request goes through the API and
//! keeps the `EVALSHA` that carries the job id the API answered with. So the
//! bench does not mirror the submit script's KEYS/ARGV (which change as the
//! store evolves) and cannot drift from them; only the job id is replaced by
//! `__rand_int__`, so each call writes a new job.
//!
//! Both ceilings are driven by `redis-benchmark` (C, one event loop, cheap
//! per request, so the client takes little of the shared 2 cores) with `-c`
//! clients, `-P` pipelining and `-r`, which turns every `__rand_int__` into a
//! fresh random number per call. `redis-benchmark` has no duration flag, so a
//! short calibration run sizes `-n` for the wanted number of seconds.

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// What `redis-benchmark -r` replaces with a random number on every call.
pub const RAND: &str = "__rand_int__";

/// Splits one `MONITOR` line (`+1700000000.123456 [0 127.0.0.1:5555] "EVALSHA" "ab…" "6" …`)
/// into the command's arguments, undoing Redis's quoting (`\"`, `\\`, `\n`, `\r`, `\t`, `\a`, `\b`, `\xHH`).
pub fn parse_monitor_line(line: &str) -> Option<Vec<Vec<u8>>> {
    let rest = &line[line.find("] ")? + 2..];
    let b = rest.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b' ' | b'\r' | b'\n' => i += 1,
            b'"' => {
                i += 1;
                let mut arg = Vec::new();
                loop {
                    match *b.get(i)? {
                        b'"' => {
                            i += 1;
                            break;
                        }
                        b'\\' => {
                            let e = *b.get(i + 1)?;
                            i += 2;
                            match e {
                                b'n' => arg.push(b'\n'),
                                b'r' => arg.push(b'\r'),
                                b't' => arg.push(b'\t'),
                                b'a' => arg.push(7),
                                b'b' => arg.push(8),
                                b'x' => {
                                    let hex = std::str::from_utf8(b.get(i..i + 2)?).ok()?;
                                    arg.push(u8::from_str_radix(hex, 16).ok()?);
                                    i += 2;
                                }
                                other => arg.push(other),
                            }
                        }
                        c => {
                            arg.push(c);
                            i += 1;
                        }
                    }
                }
                out.push(arg);
            }
            _ => return None,
        }
    }
    Some(out)
}

/// The captured command with the job id replaced by [`RAND`] everywhere, as text arguments.
pub fn templated(cmd: &[Vec<u8>], job_id: &str) -> Result<Vec<String>> {
    let args: Vec<String> = cmd.iter().map(|a| String::from_utf8(a.clone()).map_err(|_| anyhow!("a non-UTF-8 argument in the captured command"))).collect::<Result<_>>()?;
    if !args.iter().skip(1).any(|a| a.contains(job_id)) {
        bail!("the captured command does not carry the job id {job_id}");
    }
    Ok(args.into_iter().map(|a| a.replace(job_id, RAND)).collect())
}

/// Captures the `EVALSHA` one submission makes: `MONITOR` on its own
/// connection, one `POST` through the API (`body`, `bearer`), then the
/// `EVALSHA` line that carries the job id the API answered with (the last
/// one, should a NOSCRIPT retry have sent it twice). Returns the command's
/// arguments and the job id.
pub async fn capture_submit(redis_url: &str, api_url: &str, body: &str, bearer: Option<&str>) -> Result<(Vec<Vec<u8>>, String)> {
    let u = url::Url::parse(redis_url)?;
    let addr = format!("{}:{}", u.host_str().unwrap_or("127.0.0.1"), u.port().unwrap_or(6379));
    let s = tokio::net::TcpStream::connect(&addr).await.with_context(|| format!("connect to {addr} for MONITOR"))?;
    let mut r = BufReader::new(s);
    r.get_mut().write_all(b"MONITOR\r\n").await?;
    let mut line = String::new();
    r.read_line(&mut line).await?;
    if !line.starts_with("+OK") {
        bail!("MONITOR refused: {}", line.trim());
    }
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    let mut req = http.post(api_url).header("content-type", "application/json").body(body.to_string());
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await?;
    let status = resp.status();
    let v: Value = resp.json().await.unwrap_or_default();
    let id = v["id"].as_str().map(str::to_string).ok_or_else(|| anyhow!("the API answered {status} {v} to the capture submission"))?;
    let mut found: Option<Vec<Vec<u8>>> = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        // Once the EVALSHA is seen, a short quiet spell means the request is done (a NOSCRIPT retry would follow at once).
        let until = if found.is_some() { tokio::time::Instant::now() + Duration::from_millis(200) } else { deadline };
        line.clear();
        match tokio::time::timeout_at(until.min(deadline), r.read_line(&mut line)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => break,
        }
        if !line.contains(&id) {
            continue;
        }
        if let Some(args) = parse_monitor_line(line.trim_end()) {
            if args.first().is_some_and(|c| c.eq_ignore_ascii_case(b"evalsha")) {
                found = Some(args);
            }
        }
    }
    found.map(|c| (c, id.clone())).ok_or_else(|| anyhow!("no EVALSHA carrying job {id} seen on MONITOR"))
}

/// A bare `XADD` of the same request JSON to `stream`: the stream write alone.
pub fn bare_xadd(stream: &str, request_json: &str) -> Vec<String> {
    use common::store::fields::entry;
    vec!["XADD".into(), stream.into(), "*".into(), entry::JOB.into(), RAND.into(), entry::REQ.into(), request_json.into()]
}

/// One ceiling measurement.
#[derive(Debug, Clone)]
pub struct Ceiling {
    /// `XADD (bare)` or `EVALSHA submit`.
    pub what: String,
    /// Completed commands per second, as redis-benchmark reports them.
    pub rps: f64,
    /// p50 latency, ms, when reported.
    pub p50_ms: Option<f64>,
    /// Commands run.
    pub requests: u64,
    /// Wall seconds of the measured run.
    pub seconds: f64,
    /// `-c`.
    pub clients: usize,
    /// `-P`.
    pub pipeline: usize,
    /// redis-benchmark's result line.
    pub line: String,
}

impl Ceiling {
    /// JSON form.
    pub fn json(&self) -> Value {
        json!({"what": self.what, "requests_per_s": self.rps, "p50_ms": self.p50_ms, "requests": self.requests, "seconds": self.seconds,
               "clients": self.clients, "pipeline": self.pipeline, "line": self.line, "tool": "redis-benchmark"})
    }
}

/// Where redis-benchmark connects.
#[derive(Debug, Clone)]
pub struct BenchTarget {
    host: String,
    port: String,
}

impl BenchTarget {
    /// From a `redis://host:port` URL.
    pub fn from_url(redis_url: &str) -> Result<Self> {
        let u = url::Url::parse(redis_url)?;
        Ok(BenchTarget { host: u.host_str().unwrap_or("127.0.0.1").to_string(), port: u.port().unwrap_or(6379).to_string() })
    }

    /// Starts `redis-benchmark -n N -c C -P P -r 1e9 -q <command>`.
    pub fn spawn(&self, requests: u64, clients: usize, pipeline: usize, argv: &[String]) -> Result<Child> {
        Command::new("redis-benchmark")
            .args(["-h", &self.host, "-p", &self.port, "-n", &requests.to_string(), "-c", &clients.to_string(), "-P", &pipeline.to_string()])
            .args(["-r", "1000000000", "-q"])
            .args(argv)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("run redis-benchmark (scripts/install-bench-deps.sh installs it)")
    }
}

/// Waits for a redis-benchmark child; returns requests/s, p50 ms and the result line.
pub fn finish(child: Child) -> Result<(f64, Option<f64>, String)> {
    let out = child.wait_with_output()?;
    parse_output(&String::from_utf8_lossy(&out.stdout)).ok_or_else(|| {
        anyhow!("cannot read redis-benchmark output: {:?} {}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr).trim())
    })
}

/// Reads `-q` output: progress lines end in `\r`, the result is last:
/// `XADD …: 123456.79 requests per second, p50=0.735 msec`.
pub fn parse_output(text: &str) -> Option<(f64, Option<f64>, String)> {
    let line = text.split(['\r', '\n']).rfind(|l| l.contains("requests per second"))?.trim().to_string();
    let rps = line.split("requests per second").next()?.rsplit(':').next()?.trim().parse::<f64>().ok()?;
    let p50 = line.split("p50=").nth(1).and_then(|s| s.split_whitespace().next()).and_then(|v| v.parse().ok());
    Some((rps, p50, line))
}

/// Requests for about `seconds` at `calibrated_rps`, at least 1000 per client so a run is never all ramp-up.
pub fn requests_for(seconds: f64, calibrated_rps: f64, clients: usize) -> u64 {
    ((seconds * calibrated_rps).round() as u64).max(1000 * clients as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_benchmark_results_are_read() {
        let out = "XADD bench:jobs * f v: rps=0.0 (overall: nan) avg_msec=nan (overall: nan)\rXADD bench:jobs * f v: 83263.95 requests per second, p50=0.735 msec\n";
        let (rps, p50, line) = parse_output(out).expect("parsed");
        assert_eq!(rps, 83263.95);
        assert_eq!(p50, Some(0.735));
        assert!(line.starts_with("XADD bench:jobs"));
        assert!(parse_output("ERR unknown command\n").is_none());
        // A colon inside the command (the keys) does not confuse it.
        let (rps, _, _) = parse_output("EVALSHA ab 6 p:job:x p:jobs: 41000.00 requests per second, p50=1.1 msec").expect("parsed");
        assert_eq!(rps, 41000.0);
        assert_eq!(requests_for(3.0, 40_000.0, 50), 120_000);
        assert_eq!(requests_for(3.0, 100.0, 50), 50_000);
    }

    #[test]
    fn monitor_lines_are_unquoted() {
        let line = r#"+1700000000.123456 [0 127.0.0.1:5555] "EVALSHA" "abc" "2" "p:job:01hx" "p:jobs" "{\"theme\":\"\xe6\x98\xa5\"}" "a\\b" "tab\there""#;
        let args = parse_monitor_line(line).expect("parsed");
        assert_eq!(args.len(), 8);
        assert_eq!(args[0], b"EVALSHA");
        assert_eq!(String::from_utf8(args[5].clone()).expect("utf-8"), "{\"theme\":\"春\"}");
        assert_eq!(args[6], b"a\\b");
        assert_eq!(args[7], b"tab\there");
        assert!(parse_monitor_line("+OK").is_none());
        assert!(parse_monitor_line(r#"+1.0 [0 x] "unterminated"#).is_none());
        let t = templated(&args, "01hx").expect("carries the id");
        assert_eq!(t[3], format!("p:job:{RAND}"));
        assert!(templated(&args, "zzz").is_err());
    }

    #[test]
    fn the_bare_xadd_writes_one_entry_with_the_request() {
        let x = bare_xadd("p:bench:xadd", "{}");
        assert_eq!(&x[..3], &["XADD", "p:bench:xadd", "*"]);
        assert!(x.contains(&RAND.to_string()) && x.contains(&"{}".to_string()));
    }
}
