//! [hardening] black-box tests: `POST /generate` never answers 200 for a
//! failed job, `?wait` long polls have their own route label, security
//! headers on real responses, and the start-up refusal of an evicting Redis.
#![allow(clippy::unwrap_used, missing_docs)]
#![allow(clippy::disallowed_methods, clippy::disallowed_types)] // black-box: inspects Redis from outside the store (clippy.toml)

use couplet_tests::*;
use serde_json::json;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Waits for the stream entry of the only queued job; returns its job id.
async fn queued_job_id(s: &Stack) -> String {
    let mut c = s.redis().await;
    let t0 = Instant::now();
    loop {
        let entries: Vec<(String, Vec<String>)> =
            redis::cmd("XRANGE").arg(format!("{}jobs", s.prefix)).arg("-").arg("+").query_async(&mut c).await.unwrap();
        if let Some((_, fields)) = entries.first() {
            let at = fields.iter().position(|f| f == "job").unwrap();
            return fields[at + 1].clone();
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "no job queued");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn generate_answers_502_for_a_failed_job_and_long_polls_are_job_wait() {
    let mut s = Stack::start(StackOptions::default().workers(0).api("GENERATE_TIMEOUT_MS", "60000")).await;
    let (http, url) = (s.http.clone(), format!("{}/generate", s.base()));
    let pending = tokio::spawn(async move { http.post(url).json(&json!({"theme": "春"})).send().await.unwrap() });
    // Use up the job's attempts as crashed workers would (MAX_ATTEMPTS is 3): the next
    // start dead-letters it through the real start script.
    let id = queued_job_id(&s).await;
    s.exhaust_attempts(&id).await;
    s.add_worker().await;
    let r = tokio::time::timeout(Duration::from_secs(30), pending).await.unwrap().unwrap();
    assert_eq!(r.status(), 502, "a failed job must not be a 200");
    assert_eq!(r.headers()["location"], format!("/v1/jobs/{id}").as_str());
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "job_failed", "{v}");
    assert_eq!(v["id"], id.as_str());
    assert_eq!(v["job"]["status"], "failed");
    assert_eq!(v["job"]["error"]["type"], "attempts_exhausted", "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("attempts_exhausted"), "{v}");

    // A long poll and a plain read: two route labels.
    let (st, _) = s.job(&id, Some(1)).await;
    assert_eq!(st, 200);
    let (st, _) = s.job(&id, None).await;
    assert_eq!(st, 200);
    let m = s.http.get(format!("{}/metrics", s.base())).send().await.unwrap().text().await.unwrap();
    let count = |route: &str| -> f64 {
        m.lines()
            .find(|l| l.starts_with("pixel_couplet_request_latency_seconds_count") && l.contains(&format!("route=\"{route}\"")))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0.0)
    };
    assert_eq!(count("job_wait"), 1.0, "{m}");
    assert_eq!(count("job_get"), 1.0, "the long poll must not count as job_get");

    // A succeeded job still answers 200, and its SVG says nosniff.
    let r = s.http.post(format!("{}/generate", s.base())).json(&json!({"upper": "春风送暖入屠苏"})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let ok: serde_json::Value = r.json().await.unwrap();
    let svg = s.http.get(format!("{}/v1/jobs/{}/image.svg", s.base(), ok["id"].as_str().unwrap())).send().await.unwrap();
    assert_eq!(svg.status(), 200);
    assert!(svg.headers()["content-type"].to_str().unwrap().starts_with("image/svg"));
    assert_eq!(svg.headers()["x-content-type-options"], "nosniff");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_ui_cannot_be_framed_and_json_is_nosniff() {
    let s = Stack::start(StackOptions::default().workers(0)).await;
    let r = s.http.get(format!("{}/", s.base())).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(csp.contains("default-src 'self'") && csp.contains("script-src 'self'"), "existing directives kept: {csp}");
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    for path in ["/openapi.json", "/healthz", "/v1/jobs/01aaaaaaaaaaaaaaaaaaaaaaaa", "/no/such/route"] {
        let r = s.http.get(format!("{}{path}", s.base())).send().await.unwrap();
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/json"), "{path}");
        assert_eq!(r.headers().get("x-content-type-options").map(|v| v.to_str().unwrap()), Some("nosniff"), "{path}");
    }
}

/// A private redis-server with an evicting policy on a free port.
struct EvictingRedis(std::process::Child, u16);

impl EvictingRedis {
    fn start() -> EvictingRedis {
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--maxmemory-policy", "allkeys-lru"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server on PATH");
        let r = EvictingRedis(child, port);
        let t0 = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(t0.elapsed() < Duration::from_secs(10), "redis-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        r
    }
    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.1)
    }
}

impl Drop for EvictingRedis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs a binary until it exits (or `timeout`); returns (exited with success, stderr).
fn run_until_exit(mut cmd: Command, timeout: Duration) -> Option<(bool, String)> {
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let t0 = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            return Some((st.success(), err));
        }
        if t0.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn api_and_worker_refuse_an_evicting_redis_unless_told_to_warn() {
    let redis = EvictingRedis::start();
    for bin_name in ["couplet-api", "couplet-worker"] {
        let mut cmd = Command::new(bin(bin_name));
        cmd.env("REDIS_URL", redis.url())
            .env("KEY_PREFIX", random_prefix("evict"))
            .env("LISTEN_ADDR", format!("127.0.0.1:{}", free_port()))
            .env("METRICS_ADDR", format!("127.0.0.1:{}", free_port()))
            .env_remove("REDIS_EVICTION_CHECK");
        let (ok, err) = run_until_exit(cmd, Duration::from_secs(20)).unwrap_or_else(|| panic!("{bin_name} kept running against allkeys-lru"));
        assert!(!ok, "{bin_name} must exit non-zero");
        assert!(err.contains("maxmemory-policy is `allkeys-lru`, not `noeviction`"), "{bin_name}: {err}");
    }
    // warn: the API starts (and is still running after the check).
    let port = free_port();
    let mut cmd = Command::new(bin("couplet-api"));
    cmd.env("REDIS_URL", redis.url())
        .env("KEY_PREFIX", random_prefix("evict"))
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("REDIS_EVICTION_CHECK", "warn");
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(child.try_wait().unwrap().is_none(), "REDIS_EVICTION_CHECK=warn must not stop the API");
        assert!(t0.elapsed() < Duration::from_secs(20), "API did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}
