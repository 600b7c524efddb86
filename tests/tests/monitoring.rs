//! [monitoring] Every PromQL expression of `monitoring/` returns data against
//! a real Prometheus scraping the real binaries.
//!
//! The test starts the stack (API with `AUTH_MODE=required` + 2 workers),
//! a tiny webhook receiver (`/ok` answers 200, `/fail` 500) and Debian's
//! `prometheus` on loopback with a generated config: 1 s scrape and rule
//! intervals, static targets under the job names the rules expect
//! (`couplet-api`, `couplet-worker`), and `recording.yml` + `alerts.yml`
//! loaded by absolute path. It then runs ~20 s of mixed traffic (202, 200,
//! 401, 404, 422, 429 from a second key limited to `1/s` burst 2, 503 from a
//! burst past `MAX_BACKLOG`, `?wait` polls, PNG/SVG renders, idempotent
//! replays, `/generate`, webhooks delivered and dead-lettered) and checks:
//!
//! - every recording `expr`, alert `query` annotation and dashboard target
//!   returns at least one series, by running `monitoring/tools/exprs.py
//!   --eval` (the one extraction of those expressions; reimplementing it here
//!   would let the two drift). A short retry absorbs scrape timing; an
//!   expression over a metric nobody exports stays empty and fails the test;
//! - every rule group loaded and every rule evaluates with `health: ok`;
//! - `promtool check metrics` accepts both `/metrics` outputs. Any problem
//!   it reports fails the test, lint findings included (missing HELP, a
//!   counter without `_total`, a non-base unit): promtool exits 3 for those
//!   and 1 for parse errors, and both binaries are lint-clean, so holding
//!   them to it catches a badly named new metric at once.
//!
//! Prometheus and promtool come from `PROMETHEUS_BIN` / `PROMTOOL_BIN`, else
//! from `PATH` (`apt-get install prometheus`; the package's systemd service is
//! never used). Without them the test fails, it never skips. Prometheus's log
//! goes to `target/test-logs/prometheus-<port>.log`.
#![allow(clippy::unwrap_used, missing_docs)]

use couplet_tests::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

/// Rounds of mixed traffic, at least one second each (rate() needs samples).
const ROUNDS: usize = 20;
/// Admission limit of the API; the burst below is well past it.
const MAX_BACKLOG: usize = 20;
/// Concurrent submissions of one burst (workers hold at most 2 × MAX_BATCH).
const BURST: usize = 80;

fn tool(env: &str, name: &str) -> String {
    std::env::var(env).unwrap_or_else(|_| name.to_string())
}

/// A Prometheus process and its throwaway data directory; both go on drop.
struct Prometheus {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Prometheus {
    fn start(api_port: u16, worker_ports: &[u16]) -> Prometheus {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("couplet-prom-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let rules = |f: &str| root().join("monitoring/prometheus").join(f).canonicalize().unwrap();
        let workers: Vec<String> = worker_ports.iter().map(|p| format!("'127.0.0.1:{p}'")).collect();
        let config = [
            "global:".to_string(),
            "  scrape_interval: 1s".into(),
            "  scrape_timeout: 1s".into(),
            "  evaluation_interval: 1s".into(),
            "rule_files:".into(),
            format!("  - '{}'", rules("recording.yml").display()),
            format!("  - '{}'", rules("alerts.yml").display()),
            "scrape_configs:".into(),
            "  - job_name: couplet-api".into(),
            format!("    static_configs: [{{targets: ['127.0.0.1:{api_port}']}}]"),
            "  - job_name: couplet-worker".into(),
            format!("    static_configs: [{{targets: [{}]}}]", workers.join(", ")),
        ]
        .join("\n");
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, config).unwrap();
        let logs = root().join("target/test-logs");
        std::fs::create_dir_all(&logs).unwrap();
        let log = std::fs::File::create(logs.join(format!("prometheus-{port}.log"))).unwrap();
        let child = Command::new(tool("PROMETHEUS_BIN", "prometheus"))
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start prometheus ({e}): apt-get install prometheus, or set PROMETHEUS_BIN"));
        Prometheus { child, dir, port }
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn query(&self, http: &reqwest::Client, expr: &str) -> Vec<Value> {
        let r = http.get(format!("{}/api/v1/query", self.base())).query(&[("query", expr)]).send().await.unwrap();
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["status"], "success", "{expr}: {v}");
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until Prometheus is ready and every target has been scraped up.
    async fn wait_targets_up(&mut self, http: &reqwest::Client, targets: usize) {
        let t0 = Instant::now();
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("prometheus exited with {st} (log in target/test-logs/prometheus-{}.log)", self.port);
            }
            let ready = http.get(format!("{}/-/ready", self.base())).send().await.is_ok_and(|r| r.status().is_success());
            if ready {
                let up = self.query(http, "up == 1").await;
                if up.len() == targets {
                    return;
                }
            }
            assert!(t0.elapsed() < Duration::from_secs(30), "prometheus: {targets} targets not up within 30 s");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Webhook receiver on loopback: `POST /ok` → 200, `POST /fail` → 500.
struct Receiver {
    port: u16,
    ok: Arc<AtomicUsize>,
    fail: Arc<AtomicUsize>,
}

async fn start_receiver() -> Receiver {
    use warp::http::StatusCode;
    use warp::Filter;
    let (ok, fail) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (o, f) = (ok.clone(), fail.clone());
    let ok_route = warp::path!("ok").and(warp::post()).map(move || {
        o.fetch_add(1, Ordering::SeqCst);
        warp::reply::with_status("ok", StatusCode::OK)
    });
    let fail_route = warp::path!("fail").and(warp::post()).map(move || {
        f.fetch_add(1, Ordering::SeqCst);
        warp::reply::with_status("boom", StatusCode::INTERNAL_SERVER_ERROR)
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(warp::serve(ok_route.or(fail_route).unify()).incoming(listener).run());
    Receiver { port, ok, fail }
}

/// Sends requests and tallies the status codes seen.
struct Traffic<'a> {
    s: &'a Stack,
    key: String,
    limited: String,
    seen: BTreeMap<u16, usize>,
    replays: usize,
}

impl Traffic<'_> {
    async fn send(&mut self, req: reqwest::RequestBuilder) -> (u16, reqwest::header::HeaderMap, bytes::Bytes) {
        let r = req.send().await.unwrap();
        let st = r.status().as_u16();
        *self.seen.entry(st).or_default() += 1;
        let h = r.headers().clone();
        (st, h, r.bytes().await.unwrap())
    }

    fn post(&self, path: &str, key: Option<&str>, body: &Value) -> reqwest::RequestBuilder {
        let r = self.s.http.post(format!("{}{path}", self.s.base())).json(body);
        match key {
            Some(k) => r.bearer_auth(k),
            None => r,
        }
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.s.http.get(format!("{}{path}", self.s.base())).bearer_auth(&self.key)
    }

    /// Submits with the main key; the job id when accepted.
    async fn submit(&mut self, body: Value) -> Option<String> {
        let (st, _, b) = self.send(self.post("/v1/couplets", Some(&self.key.clone()), &body)).await;
        let v: Value = serde_json::from_slice(&b).unwrap_or(Value::Null);
        (st == 202).then(|| v["id"].as_str().unwrap().to_string())
    }

    /// Many concurrent submissions; returns how many got 503.
    async fn burst(&mut self, n: usize) -> usize {
        let reqs = (0..n).map(|i| self.post("/v1/couplets", Some(&self.key), &json!({"theme": "福", "seed": i})).send());
        let mut n503 = 0;
        for r in futures::future::join_all(reqs).await {
            let st = r.unwrap().status().as_u16();
            *self.seen.entry(st).or_default() += 1;
            n503 += usize::from(st == 503);
        }
        n503
    }
}

/// Sum of a worker counter's samples whose line contains `needle`.
fn counter_sum(text: &str, needle: &str) -> f64 {
    text.lines().filter(|l| !l.starts_with('#') && l.contains(needle)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
}

async fn promtool_check_metrics(name: &str, text: &str) {
    let mut child = tokio::process::Command::new(tool("PROMTOOL_BIN", "promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start promtool ({e}): apt-get install prometheus, or set PROMTOOL_BIN"));
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(text.as_bytes()).await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "promtool check metrics on {name} /metrics: {} \n{report}", out.status);
    println!("promtool check metrics {name}: ok ({} lines)", text.lines().count());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_recording_rule_alert_query_and_panel_returns_data() {
    let t0 = Instant::now();
    let hooks = start_receiver().await;
    let s = Stack::start(
        StackOptions::default()
            .workers(2)
            .api("AUTH_MODE", "required")
            .api("MAX_BACKLOG", &MAX_BACKLOG.to_string())
            .worker("MAX_BATCH", "4")
            .worker("WEBHOOK_SCHEDULE", "0s,100ms"),
    )
    .await;
    let (_, key, _) = s.create_key("monitoring-main", "1000/s", 1000);
    let (_, limited, _) = s.create_key("monitoring-limited", "1/s", 2);
    let mut prom = Prometheus::start(s.api_port, &s.worker_ports);
    prom.wait_targets_up(&s.http, 1 + s.worker_ports.len()).await;
    println!("stack + prometheus up after {:?} (prometheus on {})", t0.elapsed(), prom.base());

    let mut t = Traffic { s: &s, key, limited, seen: BTreeMap::new(), replays: 0 };
    let ok_hook = format!("http://127.0.0.1:{}/ok", hooks.port);
    let fail_hook = format!("http://127.0.0.1:{}/fail", hooks.port);
    let styles = ["classic", "festive", "literary", "business", "family"];
    let themes = ["春", "龙年 吉祥", "开业大吉", "家和", "福寿安康"];
    let mut saw_503 = 0;
    let mut last_id: Option<String> = None;
    let mut rendered = 0;
    for r in 0..ROUNDS {
        let round = Instant::now();
        // Successes (202), some with a webhook to each receiver.
        let id = t.submit(theme_body(themes[r % 5], styles[r % 5], [5, 7][r % 2], r as u64)).await;
        t.submit(json!({"theme": "春", "style": styles[(r + 1) % 5], "callback_url": ok_hook})).await;
        if r % 2 == 0 {
            t.submit(json!({"theme": "福", "callback_url": fail_hook})).await;
        }
        // Idempotent replay: the same key and body twice.
        let idem = format!("monitoring-{r}");
        let body = json!({"theme": "家和", "seed": r});
        for _ in 0..2 {
            let req = t.post("/v1/couplets", Some(&t.key.clone()), &body).header("idempotency-key", &idem);
            let (_, h, _) = t.send(req).await;
            t.replays += usize::from(h.get("idempotent-replayed").is_some_and(|v| v == "true"));
        }
        // 422, 401, 404 (unknown job, unknown route).
        t.send(t.post("/v1/couplets", Some(&t.key.clone()), &json!({"theme": "hello"}))).await;
        t.send(t.post("/v1/couplets", None, &json!({"theme": "春"}))).await;
        t.send(t.get("/v1/jobs/01aaaaaaaaaaaaaaaaaaaaaaaa")).await;
        t.send(s.http.get(format!("{}/no/such/route", s.base()))).await;
        // 429: the limited key allows 1/s with a burst of 2.
        for _ in 0..4 {
            t.send(t.post("/v1/couplets", Some(&t.limited.clone()), &json!({"theme": "春"}))).await;
        }
        // `?wait` poll of the previous round's job, then its images.
        if let Some(prev) = last_id.take() {
            let (st, _, b) = t.send(t.get(&format!("/v1/jobs/{prev}?wait=5"))).await;
            let v: Value = serde_json::from_slice(&b).unwrap_or(Value::Null);
            if st == 200 && v["status"] == "succeeded" {
                for ext in ["png", "svg"] {
                    let (st, h, _) = t.send(t.get(&format!("/v1/jobs/{prev}/image.{ext}?scale=2"))).await;
                    assert_eq!(st, 200, "image.{ext}");
                    assert!(h["content-type"].to_str().unwrap().starts_with("image/"), "{:?}", h["content-type"]);
                    rendered += 1;
                }
            }
        }
        last_id = id;
        if r % 5 == 1 {
            t.send(t.post("/generate", Some(&t.key.clone()), &json!({"upper": "春风送暖入屠苏"}))).await;
        }
        // 503: a burst past MAX_BACKLOG (workers read at most MAX_BATCH=4 each),
        // repeated in later rounds until one is refused.
        if saw_503 == 0 && r >= 2 && r % 2 == 0 {
            saw_503 = t.burst(BURST).await;
            println!("round {r}: burst of {BURST} → {saw_503} × 503");
        }
        if let Some(left) = Duration::from_secs(1).checked_sub(round.elapsed()) {
            tokio::time::sleep(left).await;
        }
    }
    println!("traffic done after {:?}: statuses {:?}, {} replays, {rendered} images", t0.elapsed(), t.seen, t.replays);
    for st in [200, 202, 401, 404, 422, 429, 503] {
        assert!(t.seen.get(&st).copied().unwrap_or(0) > 0, "no {st} response in the traffic: {:?}", t.seen);
    }
    assert!(t.replays > 0 && rendered > 0, "replays {} images {rendered}", t.replays);

    // Webhooks: both a delivery and a dead letter must have happened.
    let wait0 = Instant::now();
    let (delivered, dead) = loop {
        let mut d = (0.0, 0.0);
        for i in 0..s.worker_ports.len() {
            let text = s.worker_metrics(i).await;
            d.0 += counter_sum(&text, "pixel_couplet_webhook_deliveries_total{outcome=\"delivered\"}");
            d.1 += counter_sum(&text, "pixel_couplet_webhook_deliveries_total{outcome=\"dead_lettered\"}");
        }
        if (d.0 > 0.0 && d.1 > 0.0) || wait0.elapsed() > Duration::from_secs(20) {
            break d;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    println!(
        "webhooks: {delivered} delivered, {dead} dead-lettered; receiver saw {} ok, {} fail",
        hooks.ok.load(Ordering::SeqCst),
        hooks.fail.load(Ordering::SeqCst)
    );
    assert!(delivered > 0.0 && dead > 0.0, "webhooks: delivered {delivered}, dead_lettered {dead}");

    // Both /metrics outputs are valid and lint-clean.
    let api_text = s.http.get(format!("{}/metrics", s.base())).send().await.unwrap().text().await.unwrap();
    promtool_check_metrics("couplet-api", &api_text).await;
    for i in 0..s.worker_ports.len() {
        promtool_check_metrics(&format!("couplet-worker {i}"), &s.worker_metrics(i).await).await;
    }

    // Let the last counters appear in two scrapes, then evaluate everything.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let tool = root().join("monitoring/tools/exprs.py");
    let mut attempt = 0;
    let report = loop {
        attempt += 1;
        let out = tokio::process::Command::new("python3").arg(&tool).arg("--eval").arg(prom.base()).output().await.unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        let bad: Vec<&str> = stdout.lines().filter(|l| l.starts_with("EMPTY") || l.starts_with("ERROR")).collect();
        let checked = stdout.lines().filter(|l| l.starts_with("ok ") || l.starts_with("EMPTY") || l.starts_with("ERROR")).count();
        if out.status.success() && bad.is_empty() && checked > 0 {
            break stdout;
        }
        if attempt == 3 || checked == 0 {
            panic!(
                "exprs.py --eval: {} of {checked} expressions failed (exit {}):\n{}\n--- full output ---\n{stdout}{stderr}",
                bad.len(),
                out.status,
                bad.join("\n")
            );
        }
        println!("attempt {attempt}: {} expressions still empty, retrying in 3 s", bad.len());
        tokio::time::sleep(Duration::from_secs(3)).await;
    };
    print!("{report}");

    // Every rule group loaded and every rule evaluates cleanly.
    let v: Value = s.http.get(format!("{}/api/v1/rules", prom.base())).send().await.unwrap().json().await.unwrap();
    let groups = v["data"]["groups"].as_array().cloned().unwrap_or_default();
    let rules: Vec<&Value> = groups.iter().flat_map(|g| g["rules"].as_array().into_iter().flatten()).collect();
    let unhealthy: Vec<String> = rules
        .iter()
        .filter(|r| r["health"] != "ok")
        .map(|r| format!("{} {}: {} {}", r["type"], r["name"], r["health"], r["lastError"]))
        .collect();
    assert!(groups.len() >= 5 && rules.len() >= 30, "rules not loaded: {} groups, {} rules", groups.len(), rules.len());
    assert!(unhealthy.is_empty(), "unhealthy rules:\n{}", unhealthy.join("\n"));
    println!("{} rule groups, {} rules healthy; total {:?}", groups.len(), rules.len(), t0.elapsed());
}
