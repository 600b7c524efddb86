//! [edge] black-box tests of the service's edges: signed webhooks (verified
//! by our own code and by the official `standardwebhooks` Python package) and their
//! durable, retried delivery; the SSRF policy at submission and at delivery;
//! tenants (API keys, ownership, idempotency scope, revocation); and the
//! per-key rate limit shared by API replicas.
//!
//! Webhook receivers here are a few lines of raw HTTP/1.1 over tokio TCP, so
//! each test can script exactly how the receiver answers (fail, stall, hang,
//! redirect, be down) and record what reached it.
#![allow(clippy::unwrap_used, missing_docs)]
#![allow(clippy::disallowed_methods, clippy::disallowed_types)] // black-box: inspects Redis from outside the store (clippy.toml)

use couplet_tests::*;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

// ---------------------------------------------------------------------------
// A scriptable webhook receiver.

/// One request that reached a receiver.
#[derive(Clone)]
struct Hit {
    at: Instant,
    headers: HashMap<String, String>,
    body: Vec<u8>,
    /// Status written back (None: never answered).
    answered: Option<u16>,
}

impl std::fmt::Debug for Hit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hit")
            .field("webhook-id", &self.header("webhook-id"))
            .field("answered", &self.answered)
            .field("body", &String::from_utf8_lossy(&self.body))
            .finish()
    }
}

impl Hit {
    fn header(&self, k: &str) -> &str {
        self.headers.get(k).map(String::as_str).unwrap_or("")
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// How a receiver answers its `n`-th request (0-based, counted over its whole life).
#[derive(Debug, Clone)]
enum Answer {
    /// Status after a delay, with extra headers.
    Status(u16, Duration, Vec<(String, String)>),
    /// Read the request, never answer, keep the connection open.
    Hang,
}

fn ok() -> Answer {
    Answer::Status(200, Duration::ZERO, Vec::new())
}

type Script = Arc<dyn Fn(usize) -> Answer + Send + Sync>;

struct Receiver {
    port: u16,
    hits: Arc<Mutex<Vec<Hit>>>,
    script: Script,
    accept: Option<tokio::task::JoinHandle<()>>,
}

impl Receiver {
    async fn start(script: impl Fn(usize) -> Answer + Send + Sync + 'static) -> Receiver {
        let mut r = Receiver { port: 0, hits: Arc::default(), script: Arc::new(script), accept: None };
        r.listen(0);
        r
    }

    /// (Re)opens the port (the same one after a `stop`).
    fn listen(&mut self, port: u16) {
        let sock = TcpSocket::new_v4().unwrap();
        sock.set_reuseaddr(true).unwrap();
        sock.bind(format!("127.0.0.1:{port}").parse().unwrap()).unwrap();
        let listener: TcpListener = sock.listen(128).unwrap();
        self.port = listener.local_addr().unwrap().port();
        let (hits, script) = (self.hits.clone(), self.script.clone());
        self.accept = Some(tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(serve(conn, hits.clone(), script.clone()));
            }
        }));
    }

    /// Closes the port: connections are refused until `listen` again.
    async fn stop(&mut self) {
        if let Some(h) = self.accept.take() {
            h.abort();
            let _ = h.await;
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook?token=abc", self.port)
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(h) = self.accept.take() {
            h.abort();
        }
    }
}

async fn serve(mut conn: TcpStream, hits: Arc<Mutex<Vec<Hit>>>, script: Script) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        match conn.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let headers: HashMap<String, String> = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    while buf.len() < head_end + len {
        match conn.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let body = buf[head_end..head_end + len].to_vec();
    let idx = {
        let mut h = hits.lock().unwrap();
        h.push(Hit { at: Instant::now(), headers, body, answered: None });
        h.len() - 1
    };
    match script(idx) {
        Answer::Hang => {
            // Hold the connection until the client gives up.
            let _ = conn.read(&mut chunk).await;
        }
        Answer::Status(code, delay, extra) => {
            tokio::time::sleep(delay).await;
            let mut resp = format!("HTTP/1.1 {code} X\r\ncontent-length: 2\r\nconnection: close\r\n");
            for (k, v) in extra {
                resp.push_str(&format!("{k}: {v}\r\n"));
            }
            resp.push_str("\r\nok");
            if conn.write_all(resp.as_bytes()).await.is_ok() && conn.flush().await.is_ok() {
                hits.lock().unwrap()[idx].answered = Some(code);
            }
            let _ = conn.shutdown().await;
        }
    }
}

// ---------------------------------------------------------------------------
// Requests, optionally as a tenant.

fn req(s: &Stack, m: reqwest::Method, path: &str, key: Option<&str>) -> reqwest::RequestBuilder {
    let r = s.http.request(m, format!("{}{path}", s.base()));
    match key {
        Some(k) => r.bearer_auth(k),
        None => r,
    }
}

async fn send(r: reqwest::RequestBuilder) -> (u16, Value) {
    let r = r.send().await.unwrap();
    let st = r.status().as_u16();
    (st, r.json().await.unwrap_or(Value::Null))
}

async fn submit_as(s: &Stack, key: Option<&str>, body: Value) -> String {
    let (st, v) = send(req(s, reqwest::Method::POST, "/v1/couplets", key).json(&body)).await;
    assert_eq!(st, 202, "submit {body} → {st} {v}");
    v["id"].as_str().unwrap().to_string()
}

async fn get_as(s: &Stack, key: Option<&str>, id: &str) -> (u16, Value) {
    send(req(s, reqwest::Method::GET, &format!("/v1/jobs/{id}"), key)).await
}

/// Polls until `pred` holds for the job, or panics after `timeout`.
async fn wait_job(s: &Stack, key: Option<&str>, id: &str, timeout: Duration, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let t0 = Instant::now();
    loop {
        let (st, v) = get_as(s, key, id).await;
        if st == 200 && pred(&v) {
            return v;
        }
        assert!(t0.elapsed() < timeout, "job {id}: not {what} after {timeout:?}: {st} {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn is_final(v: &Value) -> bool {
    matches!(v["status"].as_str(), Some("succeeded" | "failed" | "canceled"))
}

async fn wait_webhook(s: &Stack, key: Option<&str>, id: &str, status: &str, timeout: Duration) -> Value {
    wait_job(s, key, id, timeout, &format!("webhook {status}"), |v| v["webhook"]["status"] == status).await
}

fn with_callback(mut body: Value, url: &str) -> Value {
    body["callback_url"] = json!(url);
    body
}

fn now_s() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Asserts `hit` is the signed delivery of job `final_view` (GET after delivery).
fn assert_signed_delivery(hit: &Hit, secret: &str, final_view: &Value) {
    let id = final_view["id"].as_str().unwrap();
    assert_eq!(hit.header("webhook-id"), format!("msg_{id}"));
    assert!(hit.header("content-type").starts_with("application/json"), "{:?}", hit.headers);
    let ts = hit.header("webhook-timestamp");
    assert!((now_s() - ts.parse::<i64>().unwrap()).abs() < 60, "timestamp {ts} is not now");
    let sig = hit.header("webhook-signature");
    assert!(sig.starts_with("v1,"), "{sig}");
    common::signing::verify(secret, hit.header("webhook-id"), ts, sig, &hit.body, now_s(), 300)
        .unwrap_or_else(|e| panic!("signature does not verify with the tenant's secret: {e}: {:?}", hit.headers));
    // Tampering is detected: another secret, another body, another id.
    assert!(common::signing::verify("not-the-secret", hit.header("webhook-id"), ts, sig, &hit.body, now_s(), 300).is_err());
    assert!(common::signing::verify(secret, "msg_other", ts, sig, &hit.body, now_s(), 300).is_err());
    let mut tampered = hit.body.clone();
    tampered.push(b' ');
    assert!(common::signing::verify(secret, hit.header("webhook-id"), ts, sig, &tampered, now_s(), 300).is_err());
    // The body is the job as GET shows it, less the webhook state.
    let mut want = final_view.clone();
    want.as_object_mut().unwrap().remove("webhook");
    assert_eq!(hit.json(), want, "webhook body differs from GET /v1/jobs/{id}");
}

// ---------------------------------------------------------------------------
// 1. Signatures, bodies, canceled jobs.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhooks_are_signed_with_the_tenants_secret_and_carry_the_job() {
    let rx = Receiver::start(|_| ok()).await;
    // AUTH_MODE=required: the key's own secret signs, not the worker's.
    let s = Stack::start(StackOptions::default().api("AUTH_MODE", "required").worker("WEBHOOK_SECRET", "whsec_worker_fallback")).await;
    let (_, key, secret) = s.create_key("tenant-a", "50/s", 50);
    let (_, _, other_secret) = s.create_key("tenant-b", "50/s", 50);
    let id = submit_as(&s, Some(&key), with_callback(theme_body("春", "festive", 5, 7), &rx.url())).await;
    let v = wait_webhook(&s, Some(&key), &id, "delivered", Duration::from_secs(30)).await;
    assert_eq!(v["status"], "succeeded", "{v}");
    assert_eq!(v["webhook"]["attempts"], 1, "{v}");
    let hits = rx.hits();
    assert_eq!(hits.len(), 1, "exactly one POST: {hits:?}");
    assert_eq!(hits[0].json()["status"], "succeeded");
    assert_eq!(hits[0].json()["result"], v["result"]);
    assert_signed_delivery(&hits[0], &secret, &v);
    let h = &hits[0];
    for wrong in [other_secret.as_str(), "whsec_worker_fallback"] {
        assert!(
            common::signing::verify(wrong, h.header("webhook-id"), h.header("webhook-timestamp"), h.header("webhook-signature"), &h.body, now_s(), 300).is_err(),
            "signed with a secret other than the tenant's"
        );
    }
    drop(s);

    // AUTH_MODE=off: the worker's WEBHOOK_SECRET signs; a canceled job is called back too.
    let rx = Receiver::start(|_| ok()).await;
    let mut s = Stack::start(StackOptions::default().workers(0).worker("WEBHOOK_SECRET", "whsec_off_mode_secret")).await;
    let canceled = s.submit_ok(with_callback(json!({"theme": "福"}), &rx.url())).await;
    let r = s.http.delete(format!("{}/v1/jobs/{canceled}", s.base())).send().await.unwrap();
    assert_eq!(r.status(), 200);
    s.workers.push(None);
    s.worker_ports.push(0);
    s.respawn_worker(0).await;
    let succeeded = s.submit_ok(with_callback(theme_body("家和", "family", 7, 3), &rx.url())).await;
    let vc = wait_webhook(&s, None, &canceled, "delivered", Duration::from_secs(30)).await;
    let vs = wait_webhook(&s, None, &succeeded, "delivered", Duration::from_secs(30)).await;
    assert_eq!((vc["status"].as_str(), vs["status"].as_str()), (Some("canceled"), Some("succeeded")));
    let hits = rx.hits();
    assert_eq!(hits.len(), 2, "{hits:?}");
    for (id, v) in [(&canceled, &vc), (&succeeded, &vs)] {
        let hit = hits.iter().find(|h| h.header("webhook-id") == format!("msg_{id}")).unwrap_or_else(|| panic!("no callback for {id}"));
        assert_signed_delivery(hit, "whsec_off_mode_secret", v);
    }
}

/// Verifies a delivery with the official `standardwebhooks` PyPI package
/// (installed by scripts/install-test-deps.sh); returns its verdict line.
fn verify_with_official_library(secret: &str, hit: &Hit, body: &[u8]) -> String {
    let dir = std::env::temp_dir().join(format!("swh-{:016x}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("body"), body).unwrap();
    let headers = json!({
        "webhook-id": hit.header("webhook-id"),
        "webhook-timestamp": hit.header("webhook-timestamp"),
        "webhook-signature": hit.header("webhook-signature"),
    });
    std::fs::write(dir.join("headers.json"), headers.to_string()).unwrap();
    let script = r#"
import json, sys
from standardwebhooks import Webhook
secret, folder = sys.argv[1], sys.argv[2]
body = open(folder + "/body", "rb").read()
headers = json.load(open(folder + "/headers.json"))
try:
    Webhook(secret).verify(body, headers)
    print("verified")
except Exception as e:
    print("rejected: " + type(e).__name__)
"#;
    let out = std::process::Command::new("python3").arg("-c").arg(script).arg(secret).arg(&dir).output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "python3 failed (pip install standardwebhooks; scripts/install-test-deps.sh does): {stderr}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deliveries_verify_with_the_official_standard_webhooks_library() {
    let rx = Receiver::start(|_| ok()).await;
    let s = Stack::start(StackOptions::default().api("AUTH_MODE", "required")).await;
    let (_, key, secret) = s.create_key("tenant-std", "50/s", 50);
    // The standard's form: whsec_ + standard base64 of at least 24 random bytes.
    let b64 = secret.strip_prefix("whsec_").unwrap_or_else(|| panic!("no whsec_ prefix: {secret}"));
    assert!(common::signing::is_standard(&secret), "secret is not whsec_ + base64 of >= 24 bytes: {secret}");
    assert!(b64.len() >= 32 && b64.bytes().all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b)), "{b64}");
    let id = submit_as(&s, Some(&key), with_callback(theme_body("春", "festive", 5, 11), &rx.url())).await;
    wait_webhook(&s, Some(&key), &id, "delivered", Duration::from_secs(30)).await;
    let hits = rx.hits();
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(verify_with_official_library(&secret, &hits[0], &hits[0].body), "verified", "{:?}", hits[0].headers);
    let mut tampered = hits[0].body.clone();
    tampered.push(b' ');
    assert!(verify_with_official_library(&secret, &hits[0], &tampered).starts_with("rejected"));
    let (_, _, other) = s.create_key("tenant-other", "50/s", 50);
    assert!(verify_with_official_library(&other, &hits[0], &hits[0].body).starts_with("rejected"));
}

// ---------------------------------------------------------------------------
// 2. Retries on 5xx, same webhook-id.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failed_deliveries_are_retried_with_the_same_webhook_id() {
    let rx = Receiver::start(|n| if n < 3 { Answer::Status(500, Duration::ZERO, Vec::new()) } else { ok() }).await;
    let s = Stack::start(StackOptions::default().worker("WEBHOOK_SCHEDULE", "0s,200ms,200ms,200ms,200ms").worker("WEBHOOK_SECRET", "whsec_retry")).await;
    let id = s.submit_ok(with_callback(theme_body("春", "classic", 5, 1), &rx.url())).await;
    let v = wait_webhook(&s, None, &id, "delivered", Duration::from_secs(30)).await;
    assert_eq!(v["webhook"]["attempts"], 4, "{v}");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let hits = rx.hits();
    assert_eq!(hits.iter().map(|h| h.answered).collect::<Vec<_>>(), vec![Some(500), Some(500), Some(500), Some(200)], "{hits:?}");
    for h in &hits {
        assert_eq!(h.header("webhook-id"), format!("msg_{id}"));
        assert_eq!(h.body, hits[0].body, "every retry carries the same body");
        common::signing::verify("whsec_retry", h.header("webhook-id"), h.header("webhook-timestamp"), h.header("webhook-signature"), &h.body, now_s(), 300).unwrap();
    }
    // The schedule is kept: 200 ms ± 20 % between attempts.
    for w in hits.windows(2) {
        let gap = w[1].at - w[0].at;
        assert!(gap >= Duration::from_millis(150), "retry after only {gap:?}");
    }
    assert_signed_delivery(&hits[3], "whsec_retry", &v);
}

// ---------------------------------------------------------------------------
// 3. Durable through a receiver outage and a dispatcher crash.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deliveries_survive_receiver_outage_and_worker_crash_exactly_once() {
    let mut rx = Receiver::start(|_| ok()).await;
    rx.stop().await; // the receiver is down from the start
    let schedule = format!("0s{}", ",400ms".repeat(40));
    let mut s = Stack::start(StackOptions::default().worker("WEBHOOK_SCHEDULE", &schedule)).await;
    let mut ids = Vec::new();
    for i in 0..10u64 {
        ids.push(s.submit_ok(with_callback(theme_body("春", "classic", 5, i), &rx.url())).await);
    }
    for id in &ids {
        let v = wait_job(&s, None, id, Duration::from_secs(60), "final with a failed attempt", |v| {
            is_final(v) && v["webhook"]["attempts"].as_u64().unwrap_or(0) >= 1
        })
        .await;
        assert_eq!(v["webhook"]["status"], "retrying", "{v}");
        assert!(v["webhook"]["last_error"].as_str().unwrap_or("").contains("connection"), "{v}");
    }
    // The dispatcher dies (SIGKILL: nothing in memory survives); the receiver comes back; so does the worker.
    s.kill_worker(0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(rx.hits().is_empty());
    let port = rx.port;
    rx.listen(port);
    s.respawn_worker(0).await;
    for id in &ids {
        wait_webhook(&s, None, id, "delivered", Duration::from_secs(20)).await;
    }
    // Nothing is delivered again after its 2xx.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let hits = rx.hits();
    let mut ok_ids: HashMap<String, usize> = HashMap::new();
    for h in hits.iter().filter(|h| h.answered.is_some_and(|c| (200..300).contains(&c))) {
        *ok_ids.entry(h.header("webhook-id").to_string()).or_default() += 1;
    }
    let want: HashSet<String> = ids.iter().map(|id| format!("msg_{id}")).collect();
    assert_eq!(ok_ids.keys().cloned().collect::<HashSet<_>>(), want, "every job delivered");
    assert!(ok_ids.values().all(|&n| n == 1), "a delivery was repeated after a 2xx: {ok_ids:?}");
    assert_eq!(hits.len(), 10, "no extra requests: {hits:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_delivery_cut_off_by_a_crash_is_retried_when_its_lease_runs_out() {
    // The first request hangs; the worker is SIGKILLed mid-attempt, holding the claim.
    let rx = Receiver::start(|n| if n == 0 { Answer::Hang } else { ok() }).await;
    let mut s = Stack::start(StackOptions::default().worker("WEBHOOK_TIMEOUT_MS", "1000")).await;
    let id = s.submit_ok(with_callback(theme_body("春", "classic", 5, 9), &rx.url())).await;
    let t0 = Instant::now();
    while rx.hits().is_empty() {
        assert!(t0.elapsed() < Duration::from_secs(30), "no delivery attempt");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.kill_worker(0);
    s.respawn_worker(0).await;
    let v = wait_webhook(&s, None, &id, "delivered", Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let hits = rx.hits();
    assert_eq!(hits.len(), 2, "{hits:?}");
    assert_eq!(hits[1].header("webhook-id"), hits[0].header("webhook-id"));
    // The new dispatcher waited for the lease (timeout 1 s + 5 s) instead of racing the old claim.
    let gap = hits[1].at - hits[0].at;
    assert!(gap >= Duration::from_millis(5500), "re-delivered after {gap:?}, inside the lease");
    assert_eq!(v["status"], "succeeded");
}

// ---------------------------------------------------------------------------
// 4. A receiver that never answers is dead-lettered.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_silent_receiver_is_dead_lettered_after_the_last_attempt() {
    let rx = Receiver::start(|_| Answer::Hang).await;
    let s = Stack::start(StackOptions::default().worker("WEBHOOK_TIMEOUT_MS", "300").worker("WEBHOOK_SCHEDULE", "0s,200ms,200ms")).await;
    let id = s.submit_ok(with_callback(theme_body("春", "classic", 5, 2), &rx.url())).await;
    let t0 = Instant::now();
    let v = wait_webhook(&s, None, &id, "dead_lettered", Duration::from_secs(30)).await;
    assert_eq!(v["status"], "succeeded");
    assert_eq!(v["webhook"]["attempts"], 3, "{v}");
    let err = v["webhook"]["last_error"].as_str().unwrap_or("");
    assert!(err.contains("timed out"), "last_error: {v}");
    assert!(!err.contains("token=abc"), "last_error leaks the callback URL: {err}");
    assert!(t0.elapsed() < Duration::from_secs(15));
    tokio::time::sleep(Duration::from_millis(800)).await;
    let hits = rx.hits();
    assert_eq!(hits.len(), 3, "one request per attempt, none after the last: {hits:?}");
    assert!(hits.iter().all(|h| h.answered.is_none() && h.header("webhook-id") == format!("msg_{id}")));
    let (_, v2) = s.job(&id, None).await;
    assert_eq!(v2["webhook"], v["webhook"], "dead-lettered state is final");
}

// ---------------------------------------------------------------------------
// 5. SSRF, at submission and at delivery; redirects.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ssrf_targets_are_refused_at_submission() {
    let s = Stack::start(StackOptions::default().workers(0).api("WEBHOOK_ALLOWLIST", "")).await;
    let refused = [
        "http://127.0.0.1/",
        "http://127.1/",
        "http://[::1]/",
        "http://[::]/",
        "http://localhost/",
        "http://LocalHost:8080/hook",
        "http://10.0.0.1/",
        "https://10.0.0.1:8443/x",
        "http://172.16.5.4/",
        "http://192.168.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/",
        "http://100.64.0.1/",
        "http://0.0.0.0/",
        "http://0/",
        "http://2130706433/",
        "http://0x7f000001/",
        "http://0x7f.0.0.1/",
        "http://0177.0.0.1/",
        "http://017700000001/",
        "http://[fd00::1]/",
        "http://[fe80::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:7f00:1]/",
        "http://user:pw@127.0.0.1/",
        "ftp://example.com/",
        "file:///etc/passwd",
        "gopher://127.0.0.1:6379/_FLUSHALL",
    ];
    assert!(refused.len() >= 12);
    for u in refused {
        let (st, v) = s.submit(json!({"theme": "春", "callback_url": u})).await;
        assert_eq!((st, v["error"]["type"].as_str()), (422, Some("invalid_callback_url")), "{u} must be refused: {v}");
        assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let (st, v) = s.submit(json!({"theme": "春", "callback_url": "http://93.184.216.34/hook"})).await;
    assert_eq!(st, 202, "a public IP is accepted: {v}");
    // Nothing refused was queued.
    let mut c = s.redis().await;
    let n: u64 = redis::cmd("XLEN").arg(common::store::Keys::new(s.prefix.clone()).stream()).query_async(&mut c).await.unwrap_or(0);
    assert!(n <= 1, "refused submissions reached the stream ({n})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ssrf_is_checked_again_at_delivery_and_redirects_are_not_followed() {
    // The API allows loopback (harness default) but the worker does not: the delivery is refused.
    let rx = Receiver::start(|_| ok()).await;
    let target = Receiver::start(|_| ok()).await;
    let redirect_to = target.url();
    let redirector = Receiver::start(move |_| Answer::Status(307, Duration::ZERO, vec![("location".into(), redirect_to.clone())])).await;
    let s = Stack::start(StackOptions::default().worker("WEBHOOK_SCHEDULE", "0s,100ms")).await;
    let blocked = Stack::start(StackOptions::default().worker("WEBHOOK_ALLOWLIST", "").worker("WEBHOOK_SCHEDULE", "0s,100ms")).await;
    let id = blocked.submit_ok(with_callback(theme_body("春", "classic", 5, 4), &rx.url())).await;
    let v = wait_webhook(&blocked, None, &id, "dead_lettered", Duration::from_secs(30)).await;
    assert_eq!(v["webhook"]["attempts"], 2, "{v}");
    assert!(v["webhook"]["last_error"].as_str().unwrap_or("").contains("SSRF"), "{v}");
    assert!(rx.hits().is_empty(), "a refused target was contacted");

    let id = s.submit_ok(with_callback(theme_body("春", "classic", 5, 5), &redirector.url())).await;
    let v = wait_webhook(&s, None, &id, "dead_lettered", Duration::from_secs(30)).await;
    assert_eq!(v["webhook"]["attempts"], 2, "{v}");
    assert!(v["webhook"]["last_error"].as_str().unwrap_or("").contains("307"), "{v}");
    assert_eq!(redirector.hits().len(), 2);
    assert!(target.hits().is_empty(), "the redirect was followed");
}

// ---------------------------------------------------------------------------
// 6. Tenants.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tenants_cannot_see_touch_or_replay_each_others_jobs() {
    let mut s = Stack::start(StackOptions::default().workers(0).api("AUTH_MODE", "required")).await;
    let (id_a, key_a, _) = s.create_key("a", "100/s", 100);
    let (_, key_b, _) = s.create_key("b", "100/s", 100);
    let (a, b) = (Some(key_a.as_str()), Some(key_b.as_str()));
    use reqwest::Method;

    // No key, a garbage key, the wrong scheme: 401 with a JSON error.
    for (name, auth) in [("none", None), ("garbage", Some("Bearer pcg_garbage")), ("basic", Some("Basic YTpi")), ("empty", Some("Bearer "))] {
        let mut r = s.http.post(format!("{}/v1/couplets", s.base())).json(&json!({"theme": "春"}));
        if let Some(h) = auth {
            r = r.header("authorization", h);
        }
        let r = r.send().await.unwrap();
        assert_eq!(r.status(), 401, "{name}");
        assert_eq!(r.headers().get("content-type").unwrap(), "application/json", "{name}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["type"], "unauthorized", "{name}: {v}");
        assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }

    // A's queued job: B can neither read nor cancel it.
    let job = submit_as(&s, a, json!({"theme": "春", "seed": 1})).await;
    assert_eq!(get_as(&s, b, &job).await.0, 404);
    let (st, v) = send(req(&s, Method::DELETE, &format!("/v1/jobs/{job}"), b)).await;
    assert_eq!((st, v["error"]["type"].as_str()), (404, Some("not_found")), "{v}");
    let (st, v) = get_as(&s, a, &job).await;
    assert_eq!((st, v["status"].as_str()), (200, Some("queued")), "B's cancel touched A's job: {v}");
    assert_eq!(get_as(&s, None, &job).await.0, 401);

    // Idempotency keys are per tenant: B's same key and body make B's own job.
    let post = |key: &str| req(&s, Method::POST, "/v1/couplets", Some(key)).header("idempotency-key", "order-42").json(&json!({"theme": "福"})).send();
    let ra = post(&key_a).await.unwrap();
    assert_eq!(ra.status(), 202);
    let ida = ra.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let rb = post(&key_b).await.unwrap();
    assert_eq!(rb.status(), 202);
    assert!(rb.headers().get("idempotent-replayed").is_none(), "B got A's idempotency record");
    let idb = rb.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    assert_ne!(ida, idb);
    assert_eq!(get_as(&s, b, &idb).await.0, 200);
    assert_eq!(get_as(&s, b, &ida).await.0, 404);
    let ra2 = post(&key_a).await.unwrap();
    assert_eq!(ra2.headers().get("idempotent-replayed").map(|v| v.to_str().unwrap()), Some("true"));
    assert_eq!(ra2.json::<Value>().await.unwrap()["id"].as_str(), Some(ida.as_str()));

    // Once A's job has succeeded, B still cannot read it or fetch its image.
    s.workers.push(None);
    s.worker_ports.push(0);
    s.respawn_worker(0).await;
    let v = wait_job(&s, a, &job, Duration::from_secs(60), "final", is_final).await;
    assert_eq!(v["status"], "succeeded", "{v}");
    assert_eq!(get_as(&s, b, &job).await.0, 404);
    for ext in ["png", "svg"] {
        let rb = req(&s, Method::GET, &format!("/v1/jobs/{job}/image.{ext}"), b).send().await.unwrap();
        assert_eq!(rb.status(), 404, "B fetched A's image.{ext}");
        let ra = req(&s, Method::GET, &format!("/v1/jobs/{job}/image.{ext}"), a).send().await.unwrap();
        assert_eq!(ra.status(), 200, "A's own image.{ext}");
    }
    let (st, _) = send(req(&s, Method::DELETE, &format!("/v1/jobs/{job}"), b)).await;
    assert_eq!(st, 404);

    // Revocation takes effect on the very next request.
    assert_eq!(get_as(&s, a, &job).await.0, 200);
    s.revoke_key(&id_a);
    let (st, v) = get_as(&s, a, &job).await;
    assert_eq!((st, v["error"]["type"].as_str()), (401, Some("unauthorized")), "{v}");
    let (st, _) = send(req(&s, Method::POST, "/v1/couplets", a).json(&json!({"theme": "春"}))).await;
    assert_eq!(st, 401);
    assert_eq!(get_as(&s, b, &idb).await.0, 200, "B is unaffected");
}

// ---------------------------------------------------------------------------
// 7. Rate limit shared by two API replicas.

struct Burst {
    admitted: usize,
    limited: Vec<reqwest::header::HeaderMap>,
}

async fn burst(bases: &[String], http: &reqwest::Client, key: &str, n: usize) -> Burst {
    let futs = (0..n).map(|i| {
        let url = format!("{}/v1/jobs/01aaaaaaaaaaaaaaaaaaaaaaaa", bases[i % bases.len()]);
        let r = http.get(url).bearer_auth(key);
        async move { r.send().await.unwrap() }
    });
    let resps = futures::future::join_all(futs).await;
    let mut b = Burst { admitted: 0, limited: Vec::new() };
    for r in resps {
        match r.status().as_u16() {
            429 => {
                let h = r.headers().clone();
                let v: Value = r.json().await.unwrap();
                assert_eq!(v["error"]["type"], "rate_limited", "{v}");
                b.limited.push(h);
            }
            404 => b.admitted += 1,
            other => panic!("unexpected {other}"),
        }
    }
    b
}

fn header_u64(h: &reqwest::header::HeaderMap, k: &str) -> u64 {
    h.get(k).unwrap_or_else(|| panic!("429 without {k}: {h:?}")).to_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_rate_limit_is_per_key_and_shared_by_api_replicas() {
    let mut s = Stack::start(StackOptions::default().workers(0).api("AUTH_MODE", "required")).await;
    let second = s.spawn_extra_api().await;
    let bases = vec![s.base(), second];
    let (_, key, _) = s.create_key("limited", "10/s", 20);
    let (_, warm, _) = s.create_key("warm-up", "1000/s", 1000);
    let http = reqwest::Client::builder().pool_max_idle_per_host(200).timeout(Duration::from_secs(30)).build().unwrap();
    // Open the connections first with another key, so the measured burst is not spread by TCP setup.
    let w = burst(&bases, &http, &warm, 100).await;
    assert_eq!(w.admitted, 100, "another key's budget is separate");

    let b1 = burst(&bases, &http, &key, 100).await;
    assert!((18..=22).contains(&b1.admitted), "first burst admitted {} (want 20 ± 2)", b1.admitted);
    assert_eq!(b1.admitted + b1.limited.len(), 100);
    for h in &b1.limited {
        assert!(header_u64(h, "retry-after") >= 1);
        assert_eq!(header_u64(h, "ratelimit-limit"), 20);
        assert_eq!(header_u64(h, "ratelimit-remaining"), 0);
        assert!(header_u64(h, "ratelimit-reset") >= 1);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let b2 = burst(&bases, &http, &key, 40).await;
    assert!((8..=12).contains(&b2.admitted), "after 1 s a burst admitted {} (want about 10)", b2.admitted);
    // The other key was never limited by this one.
    assert_eq!(burst(&bases, &http, &warm, 10).await.admitted, 10);
}

// ---------------------------------------------------------------------------
// 8. A slow receiver does not slow processing.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_receiver_does_not_slow_job_processing() {
    let rx = Receiver::start(|_| Answer::Status(200, Duration::from_secs(3), Vec::new())).await;
    // One receiver, one key: lift the per-host/per-key fairness limits (tested on their own
    // below) so this measures the dispatcher's global parallelism.
    let s = Stack::start(
        StackOptions::default().worker("WEBHOOK_PER_HOST_CONCURRENCY", "32").worker("WEBHOOK_PER_KEY_CONCURRENCY", "32"),
    )
    .await;
    let t0 = Instant::now();
    let mut ids = Vec::new();
    for i in 0..20u64 {
        ids.push(s.submit_ok(with_callback(theme_body("春", "classic", 5, 100 + i), &rx.url())).await);
    }
    for id in &ids {
        let v = wait_job(&s, None, id, Duration::from_secs(60), "final", is_final).await;
        assert_eq!(v["status"], "succeeded", "{v}");
    }
    let processed = t0.elapsed();
    let answered = rx.hits().iter().filter(|h| h.answered.is_some()).count();
    eprintln!("20 jobs processed in {processed:?}; {answered} deliveries answered by then");
    assert!(answered < 20, "deliveries should still be in flight when processing is done ({answered} answered after {processed:?})");
    // Processing did not wait on deliveries: had the consumer awaited even one
    // of them, the jobs after it would have finished 3 s later.
    assert!(processed < Duration::from_secs(3), "20 jobs took {processed:?} behind a slow receiver");
    for id in &ids {
        wait_webhook(&s, None, id, "delivered", Duration::from_secs(15)).await;
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let hits = rx.hits();
    assert_eq!(hits.len(), 20, "one delivery per job: {hits:?}");
    // They were in flight together, not one after another.
    let first = hits.iter().map(|h| h.at).min().unwrap();
    let last = hits.iter().map(|h| h.at).max().unwrap();
    assert!(last - first < Duration::from_secs(3), "deliveries were serialised: arrivals spread over {:?}", last - first);
}

// ---------------------------------------------------------------------------
// Hardening: per-key queue quota, failed-auth brake, webhook fairness,
// dead-letter hygiene, the worker's secret check.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_queue_quota_is_per_key_and_freed_when_jobs_finish() {
    let mut s = Stack::start(StackOptions::default().api("AUTH_MODE", "required").api("MAX_BACKLOG_PER_KEY", "2")).await;
    s.kill_worker(0);
    let (_, a, _) = s.create_key("a", "100/s", 100);
    let (_, b, _) = s.create_key("b", "100/s", 100);
    for i in 0..2u64 {
        submit_as(&s, Some(&a), theme_body("春", "classic", 5, i)).await;
    }
    let r = req(&s, reqwest::Method::POST, "/v1/couplets", Some(&a)).json(&theme_body("春", "classic", 5, 9)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert!(r.headers().get("retry-after").is_some(), "429 carries Retry-After");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "queue_quota", "{v}");
    // Another tenant is not affected by a's full quota.
    let b_job = submit_as(&s, Some(&b), theme_body("春", "classic", 5, 1)).await;
    // The per-key backlog key expires (cannot leak) and counts a's two jobs.
    let mut c = s.redis().await;
    let backlog = format!("{}backlog:{}", s.prefix, common::store::hash_key(&a));
    let (n, ttl): (u64, i64) = redis::pipe().cmd("ZCARD").arg(&backlog).cmd("TTL").arg(&backlog).query_async(&mut c).await.unwrap();
    assert_eq!(n, 2);
    assert!(ttl > 0, "backlog key has a TTL: {ttl}");
    // Once the jobs finish, a may submit again: each left the backlog.
    s.respawn_worker(0).await;
    wait_job(&s, Some(&b), &b_job, Duration::from_secs(60), "final", is_final).await;
    let t0 = Instant::now();
    loop {
        let n: u64 = redis::cmd("ZCARD").arg(&backlog).query_async(&mut c).await.unwrap();
        if n == 0 {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "a's jobs never left its backlog ({n} left)");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for i in 0..2u64 {
        submit_as(&s, Some(&a), theme_body("春", "classic", 5, 20 + i)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_keys_are_braked_per_ip_before_redis_and_other_clients_are_not() {
    let s = Stack::start(StackOptions::default().workers(0).api("AUTH_MODE", "required").api("AUTH_FAILURES_PER_IP", "5")).await;
    let (_, good, _) = s.create_key("good", "100/s", 100);
    let mut statuses = Vec::new();
    for i in 0..20 {
        let (st, v) = send(req(&s, reqwest::Method::GET, "/v1/jobs/nope", Some(&format!("bad-{i}")))).await;
        statuses.push((st, v["error"]["type"].as_str().unwrap_or_default().to_string()));
    }
    let unauthorized = statuses.iter().filter(|(st, t)| *st == 401 && t == "unauthorized").count();
    let limited = statuses.iter().filter(|(st, t)| *st == 429 && t == "rate_limited").count();
    assert!(unauthorized >= 5 && limited >= 10 && unauthorized + limited == 20, "{statuses:?}");
    assert_eq!(statuses[0].0, 401, "{statuses:?}");
    // A client on another address with a good key goes through at once.
    let other = reqwest::Client::builder().local_address(Some("127.0.0.2".parse().unwrap())).build().unwrap();
    let r = other.get(format!("{}/v1/jobs/nope", s.base())).bearer_auth(&good).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404, "good key from another IP is authorized");
    // The braked IP recovers after its one-second window.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (st, _) = send(req(&s, reqwest::Method::GET, "/v1/jobs/nope", Some(&good))).await;
    assert_eq!(st, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_receiver_cannot_take_every_webhook_slot() {
    let slow = Receiver::start(|_| Answer::Status(200, Duration::from_secs(2), Vec::new())).await;
    let fast = Receiver::start(|_| ok()).await;
    let s = Stack::start(StackOptions::default().worker("WEBHOOK_CONCURRENCY", "4").worker("WEBHOOK_PER_HOST_CONCURRENCY", "2")).await;
    let mut slow_ids = Vec::new();
    for i in 0..12u64 {
        slow_ids.push(s.submit_ok(with_callback(theme_body("春", "classic", 5, 300 + i), &slow.url())).await);
    }
    // Let the slow deliveries claim the dispatcher first.
    wait_job(&s, None, &slow_ids[11], Duration::from_secs(60), "final", is_final).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t0 = Instant::now();
    let mut fast_ids = Vec::new();
    for i in 0..3u64 {
        fast_ids.push(s.submit_ok(with_callback(theme_body("春", "classic", 5, 400 + i), &fast.url())).await);
    }
    for id in &fast_ids {
        wait_webhook(&s, None, id, "delivered", Duration::from_secs(30)).await;
    }
    let fast_done = t0.elapsed();
    let slow_answered = slow.hits().iter().filter(|h| h.answered.is_some()).count();
    eprintln!("fast deliveries done in {fast_done:?}; {slow_answered}/12 slow ones answered by then");
    // Without per-host limits the 12 slow deliveries fill all 4 slots for 6 s.
    assert!(fast_done < Duration::from_millis(2500), "fast receiver waited {fast_done:?} behind a slow one");
    assert!(slow_answered < 12, "the fast ones should finish well before the slow ones");
    for id in &slow_ids {
        wait_webhook(&s, None, id, "delivered", Duration::from_secs(40)).await;
    }
    assert_eq!(slow.hits().len(), 12, "deferring is not an attempt: one hit per job");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dead_letters_carry_no_callback_url_and_expire() {
    let rx = Receiver::start(|_| ok()).await;
    let mut s = Stack::start(StackOptions::default().worker("DEAD_LETTER_TTL_S", "3")).await;
    s.kill_worker(0);
    let mut c = s.redis().await;
    let dead = format!("{}dead", s.prefix);
    // An entry from 10 s ago is past the TTL and goes at the first trim.
    let old_id = format!("{}-0", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() - 10_000);
    let _: String = redis::cmd("XADD").arg(&dead).arg(&old_id).arg("job").arg("old").query_async(&mut c).await.unwrap();
    let seed: u64 = 18_446_744_073_709_551_000;
    let id = s.submit_ok(with_callback(theme_body("春", "classic", 5, seed), &format!("{}&secret=tok", rx.url()))).await;
    // Exhaust its attempts so the worker dead-letters it on first sight.
    let _: () = redis::cmd("HSET").arg(format!("{}job:{id}", s.prefix)).arg("attempts").arg(99).query_async(&mut c).await.unwrap();
    s.respawn_worker(0).await;
    let v = wait_job(&s, None, &id, Duration::from_secs(30), "final", is_final).await;
    assert_eq!(v["status"], "failed", "{v}");
    let entries: redis::streams::StreamRangeReply = redis::cmd("XRANGE").arg(&dead).arg("-").arg("+").query_async(&mut c).await.unwrap();
    let mine = entries.ids.iter().find(|e| e.get::<String>("job").as_deref() == Some(id.as_str())).expect("dead-letter entry");
    let request: String = mine.get("request").unwrap();
    assert!(!request.contains("tok") && !request.contains("hook"), "callback URL kept in the DLQ: {request}");
    let r: Value = serde_json::from_str(&request).unwrap();
    assert!(r["callback_url"].is_null(), "{r}");
    assert_eq!(r["seed"].as_u64(), Some(seed), "the rest of the request is intact: {request}");
    assert!(entries.ids.iter().all(|e| e.id != old_id), "an entry past DEAD_LETTER_TTL_S was not trimmed");
    // And the new one goes once it is older than the TTL.
    let t0 = Instant::now();
    loop {
        let n: u64 = redis::cmd("XLEN").arg(&dead).query_async(&mut c).await.unwrap();
        if n == 0 {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "dead-letter entries kept past their TTL");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[test]
fn a_worker_refuses_to_sign_with_the_development_secret_when_auth_is_required() {
    let out = std::process::Command::new(bin("couplet-worker"))
        .env("AUTH_MODE", "required")
        .env_remove("WEBHOOK_SECRET")
        .env("METRICS_ADDR", "127.0.0.1:0")
        .env("REDIS_URL", redis_url())
        .env("KEY_PREFIX", random_prefix("wsec"))
        .output()
        .unwrap();
    assert!(!out.status.success(), "worker started without WEBHOOK_SECRET under AUTH_MODE=required");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("WEBHOOK_SECRET is required"), "{err}");
}
