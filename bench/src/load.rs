//! The open-loop load generator. Request `i` is due at `t0 + i / rate`
//! whatever happened to earlier ones, and its latency is measured from that
//! due time, not from when it actually left: when the API (or the generator's
//! own connection cap) falls behind, the wait shows up in the percentiles
//! instead of silently lowering the offered rate (coordinated omission).
//!
//! Shape: `connections` long-lived tasks, each owning one keep-alive HTTP/1.1
//! connection (hyper's low-level client: no pool lock, no URL parsing per
//! request), share one atomic ticket counter. A task takes the next ticket,
//! sleeps until its due time, sends, records, and takes the next. No task is
//! spawned per request, and each task owns its histograms, merged at the end,
//! so the generator costs as little CPU as possible on a machine it shares
//! with the API and Redis.

use anyhow::{anyhow, bail, Result};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::Request;
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Builds request body `i`.
pub type BodyFn = Arc<dyn Fn(u64) -> String + Send + Sync>;

/// One open-loop run.
#[derive(Clone)]
pub struct LoadSpec {
    /// Full URL to POST to.
    pub url: String,
    /// Requests per second.
    pub rate: f64,
    /// How long requests are scheduled for.
    pub duration: Duration,
    /// Concurrent requests (= keep-alive connections) at most.
    pub connections: usize,
    /// `Authorization: Bearer` value.
    pub bearer: Option<String>,
    /// Keep the `id` field of every accepted response.
    pub collect_ids: bool,
    /// Request bodies.
    pub body: BodyFn,
}

/// What a run measured.
pub struct LoadResult {
    /// Requests scheduled (= sent).
    pub sent: u64,
    /// 2xx answers.
    pub ok: u64,
    /// Failures by kind (`status 503`, `timeout`, …).
    pub errors: BTreeMap<String, u64>,
    /// Latency from due time to full response, µs.
    pub latency: Histogram<u64>,
    /// Delay from due time to the moment the request left, µs (the generator's own lag).
    pub send_lag: Histogram<u64>,
    /// From t0 to the last response.
    pub wall: Duration,
    /// The scheduled duration.
    pub scheduled: Duration,
    /// Accepted job ids, when asked for.
    pub ids: Vec<String>,
}

impl LoadResult {
    /// Total failures.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Accepted requests per second over the scheduled duration.
    pub fn achieved_rate(&self) -> f64 {
        self.ok as f64 / self.wall.as_secs_f64().max(self.scheduled.as_secs_f64()).max(1e-3)
    }

    /// Latency quantile in ms.
    pub fn ms(&self, q: f64) -> f64 {
        pct_ms(&self.latency, q)
    }
}

/// Quantile of a µs histogram, in ms.
pub fn pct_ms(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        return f64::NAN;
    }
    h.value_at_quantile(q) as f64 / 1000.0
}

/// A µs histogram from 1 µs to 10 min, 3 significant digits.
pub fn new_hist() -> Histogram<u64> {
    // Bounds are constants that satisfy new_with_bounds' preconditions (low ≥ 1, high ≥ 2·low, sigfig ≤ 5).
    #[allow(clippy::unwrap_used)]
    Histogram::new_with_bounds(1, 600_000_000, 3).unwrap()
}

struct TaskOut {
    ok: u64,
    errors: BTreeMap<String, u64>,
    latency: Histogram<u64>,
    send_lag: Histogram<u64>,
    ids: Vec<String>,
    last: Instant,
}

/// Where requests go: `host:port` (socket address and `Host` header) and path of the URL.
struct Target {
    authority: String,
    path: String,
}

impl Target {
    fn parse(u: &str) -> Result<Self> {
        let u = url::Url::parse(u)?;
        if u.scheme() != "http" {
            bail!("the generator speaks plain http only: {u}");
        }
        let host = u.host_str().ok_or_else(|| anyhow!("no host in {u}"))?.to_string();
        let port = u.port_or_known_default().unwrap_or(80);
        let path = match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_string(),
        };
        Ok(Target { authority: format!("{host}:{port}"), path })
    }
}

type Conn = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(t: &Target) -> Result<Conn, String> {
    let s = tokio::net::TcpStream::connect(&t.authority).await.map_err(|_| "connect".to_string())?;
    let _ = s.set_nodelay(true);
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s)).await.map_err(|_| "connect".to_string())?;
    // The connection task ends when `send` is dropped or the peer closes.
    tokio::spawn(conn);
    Ok(send)
}

/// One request on a kept-alive connection (reconnecting first when it was
/// closed): the body of a 2xx answer, or the kind of failure.
async fn request(conn: &mut Option<Conn>, t: &Target, spec: &LoadSpec, i: u64) -> Result<Bytes, String> {
    let c = match conn {
        Some(c) if !c.is_closed() => c,
        _ => conn.insert(connect(t).await?),
    };
    if c.ready().await.is_err() {
        *conn = None;
        return Err("transport".into());
    }
    let mut b = Request::post(&t.path).header(HOST, &t.authority).header(CONTENT_TYPE, "application/json");
    if let Some(tok) = &spec.bearer {
        b = b.header(AUTHORIZATION, format!("Bearer {tok}"));
    }
    let req = b.body(Full::new(Bytes::from((spec.body)(i)))).map_err(|e| format!("request: {e}"))?;
    let resp = match tokio::time::timeout(REQUEST_TIMEOUT, c.send_request(req)).await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => {
            *conn = None;
            return Err("transport".into());
        }
        Err(_) => {
            *conn = None;
            return Err("timeout".into());
        }
    };
    let st = resp.status();
    let body = resp.into_body().collect().await.map_err(|_| "body".to_string())?.to_bytes();
    if st.is_success() {
        Ok(body)
    } else {
        Err(format!("status {}", st.as_u16()))
    }
}

/// Longest wait for one response.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs one open-loop load.
pub async fn run(spec: &LoadSpec) -> Result<LoadResult> {
    let target = Arc::new(Target::parse(&spec.url)?);
    let total = (spec.rate * spec.duration.as_secs_f64()).round() as u64;
    let next = Arc::new(AtomicU64::new(0));
    // A short lead so that every task is connected and parked before the first due time.
    let t0 = Instant::now() + Duration::from_millis(200);
    let interval_ns = 1e9 / spec.rate.max(1e-9);
    let mut tasks = Vec::with_capacity(spec.connections);
    for _ in 0..spec.connections.max(1) {
        let spec = spec.clone();
        let next = next.clone();
        let target = target.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = TaskOut { ok: 0, errors: BTreeMap::new(), latency: new_hist(), send_lag: new_hist(), ids: Vec::new(), last: t0 };
            let mut conn = connect(&target).await.ok();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return out;
                }
                let due = t0 + Duration::from_nanos((i as f64 * interval_ns) as u64);
                tokio::time::sleep_until(due).await;
                out.send_lag.saturating_record(Instant::now().saturating_duration_since(due).as_micros() as u64);
                let outcome = request(&mut conn, &target, &spec, i).await;
                let now = Instant::now();
                out.last = out.last.max(now);
                match outcome {
                    Ok(body) => {
                        out.ok += 1;
                        out.latency.saturating_record(now.saturating_duration_since(due).as_micros() as u64);
                        if spec.collect_ids {
                            if let Some(id) = serde_json::from_slice::<serde_json::Value>(&body).ok().and_then(|v| v["id"].as_str().map(str::to_string)) {
                                out.ids.push(id);
                            }
                        }
                    }
                    Err(k) => *out.errors.entry(k).or_insert(0) += 1,
                }
            }
        }));
    }
    let mut res = LoadResult {
        sent: total,
        ok: 0,
        errors: BTreeMap::new(),
        latency: new_hist(),
        send_lag: new_hist(),
        wall: Duration::ZERO,
        scheduled: spec.duration,
        ids: Vec::new(),
    };
    let mut last = t0;
    for t in tasks {
        match t.await {
            Ok(o) => {
                res.ok += o.ok;
                for (k, v) in o.errors {
                    *res.errors.entry(k).or_insert(0) += v;
                }
                let _ = res.latency.add(&o.latency);
                let _ = res.send_lag.add(&o.send_lag);
                res.ids.extend(o.ids);
                last = last.max(o.last);
            }
            Err(e) => *res.errors.entry(format!("task: {e}")).or_insert(0) += 1,
        }
    }
    res.wall = last.saturating_duration_since(t0);
    Ok(res)
}
