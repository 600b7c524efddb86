//! The webhook dispatcher: drains the Redis outbox (a sorted set of job ids
//! by next-attempt time) with bounded concurrency, signs each delivery the
//! Standard Webhooks way, and records the outcome with one script call.
//!
//! Durability comes from the outbox, not from memory: a claim is a lease
//! (the member's score moves to now + lease), so if this process dies
//! mid-delivery another dispatcher (or this one, restarted) picks it up when
//! the lease runs out. The `webhook-id` is derived from the job id, so every
//! retry of one delivery carries the same dedupe key. Deliveries run in their
//! own tasks, so a slow receiver holds one concurrency slot, never the
//! consumer.
//!
//! Fairness: beside the global `WEBHOOK_CONCURRENCY`, this process lets at
//! most `WEBHOOK_PER_HOST_CONCURRENCY` deliveries run to one receiver origin
//! (scheme, host, port) and `WEBHOOK_PER_KEY_CONCURRENCY` for one owner's
//! jobs. A claimed delivery whose origin or owner is at its limit is not
//! attempted: its lease is shortened to [`DEFER`] (plus jitter) and its slot
//! freed at once, so one slow receiver cannot occupy every slot while other
//! receivers wait. The limits are per dispatcher process.
//!
//! The HTTP client never uses a proxy (`no_proxy`): a proxy would resolve the
//! host again and undo the SSRF check's address pinning.

use crate::config::WebhookConfig;
use common::metrics::{outcome, WebhookMetrics};
use common::redis_pool::Pool;
use common::signing::sign;
use common::store::{Retry, Store, StoreError, WebhookAttempt, WebhookRecorded};
use rand::Rng;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// How long a delivery deferred by a per-host or per-key limit waits before it is claimed again.
pub const DEFER: Duration = Duration::from_millis(300);

/// The dispatcher of one worker process.
#[derive(Clone)]
pub struct Dispatcher {
    pool: Pool,
    store: Store,
    cfg: Arc<WebhookConfig>,
    metrics: WebhookMetrics,
    busy: Arc<Mutex<Busy>>,
}

/// In-flight deliveries per receiver origin and per owner.
#[derive(Default)]
struct Busy {
    hosts: HashMap<String, usize>,
    owners: HashMap<String, usize>,
}

/// One delivery's place in the per-host and per-key counts; released on drop.
struct Turn {
    busy: Arc<Mutex<Busy>>,
    host: String,
    owner: String,
}

fn release(map: &mut HashMap<String, usize>, k: &str) {
    if let Some(n) = map.get_mut(k) {
        *n -= 1;
        if *n == 0 {
            map.remove(k);
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        // A poisoned lock only means a panic mid-update of plain counters; keep counting.
        let mut b = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        release(&mut b.hosts, &self.host);
        release(&mut b.owners, &self.owner);
    }
}

/// Takes a turn for (host, owner) unless either is at its limit.
fn take_turn(busy: &Arc<Mutex<Busy>>, host: &str, owner: &str, per_host: usize, per_key: usize) -> Option<Turn> {
    let mut b = busy.lock().unwrap_or_else(|p| p.into_inner());
    if b.hosts.get(host).copied().unwrap_or(0) >= per_host || b.owners.get(owner).copied().unwrap_or(0) >= per_key {
        return None;
    }
    *b.hosts.entry(host.to_string()).or_default() += 1;
    *b.owners.entry(owner.to_string()).or_default() += 1;
    Some(Turn { busy: busy.clone(), host: host.to_string(), owner: owner.to_string() })
}

/// The receiver origin a per-host limit counts: scheme, host and port.
fn origin(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!("{}://{}:{}", u.scheme(), u.host_str().unwrap_or_default(), u.port_or_known_default().unwrap_or(0)),
        Err(_) => String::new(),
    }
}

/// Why one attempt failed (goes to `webhook.last_error`; never contains secrets).
#[derive(Debug, thiserror::Error)]
enum AttemptError {
    #[error("target refused by SSRF policy: {0}")]
    Refused(String),
    #[error("receiver answered HTTP {0}")]
    Status(u16),
    #[error("request failed: {0}")]
    Transport(String),
}

/// A Redis failure of the dispatcher (logged; the outbox lease retries).
#[derive(Debug, thiserror::Error)]
enum DispatchError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("redis pool: {0}")]
    Pool(#[from] common::redis_pool::PoolError),
}

impl Dispatcher {
    /// A dispatcher over the outbox of `store`.
    pub fn new(pool: Pool, store: Store, cfg: WebhookConfig, metrics: WebhookMetrics) -> Self {
        Dispatcher { pool, store, cfg: Arc::new(cfg), metrics, busy: Arc::default() }
    }

    fn lease(&self) -> Duration {
        self.cfg.timeout + Duration::from_secs(5)
    }

    /// Runs until `shutdown`; in-flight deliveries get the attempt timeout to finish.
    pub async fn run(self, shutdown: CancellationToken) {
        let slots = Arc::new(Semaphore::new(self.cfg.concurrency));
        let mut tasks = tokio::task::JoinSet::new();
        while !shutdown.is_cancelled() {
            while tasks.try_join_next().is_some() {}
            let free = slots.available_permits();
            let ids = if free == 0 { Ok(Vec::new()) } else { self.claim(free).await };
            let ids = match ids {
                Ok(ids) => ids,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook outbox unavailable");
                    Vec::new()
                }
            };
            let idle = ids.is_empty();
            for id in ids {
                // Permits are never closed, so acquire cannot fail.
                let permit = slots.clone().acquire_owned().await.expect("semaphore is never closed");
                let me = self.clone();
                tasks.spawn(async move {
                    me.deliver(&id).await;
                    drop(permit);
                });
            }
            if idle {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                    _ = shutdown.cancelled() => {}
                }
            }
        }
        let _ = tokio::time::timeout(self.cfg.timeout, async { while tasks.join_next().await.is_some() {} }).await;
    }

    async fn claim(&self, limit: usize) -> Result<Vec<String>, DispatchError> {
        Ok(self.store.outbox_claim(&mut *self.pool.get().await?, self.lease(), limit).await?)
    }

    async fn deliver(&self, job_id: &str) {
        let read = match self.pool.get().await {
            Ok(mut c) => self.store.delivery(&mut *c, job_id).await.map_err(DispatchError::from),
            Err(e) => Err(e.into()),
        };
        let d = match read {
            Ok(d) => d,
            Err(e) => return tracing::warn!(error = %e, "webhook job read failed; lease will retry"),
        };
        // An expired job, or one without a callback: nothing to deliver, it leaves the outbox.
        let Some(d) = d else {
            let _ = self.record(job_id, WebhookAttempt::Delivered, 0).await;
            return;
        };
        let Some(url) = d.view.request.as_ref().and_then(|r| r.callback_url.clone()) else {
            let _ = self.record(job_id, WebhookAttempt::Delivered, d.attempts).await;
            return;
        };
        let Some(_turn) = take_turn(&self.busy, &origin(&url), &d.owner, self.cfg.per_host, self.cfg.per_key) else {
            return self.defer(job_id).await;
        };
        let secret = d.secret.clone().unwrap_or_else(|| self.cfg.secret.clone());
        let (finished_ms, attempts_so_far) = (d.finished_ms, d.attempts);
        // Body without the webhook state: receivers get the job as GET shows it at completion.
        let mut body_view = d.view;
        body_view.webhook = None;
        let body = serde_json::to_vec(&body_view).unwrap_or_default();
        self.metrics.attempts.inc();
        self.metrics.inflight.inc();
        let res = self.attempt(&url, job_id, &body, &secret).await;
        self.metrics.inflight.dec();
        match res {
            Ok(()) => {
                self.metrics.deliveries.with_label_values(&[outcome::DELIVERED]).inc();
                let lat = (common::job::now_ms() - finished_ms).max(0) as f64 / 1000.0;
                self.metrics.latency.observe(lat);
                if let Err(e) = self.record(job_id, WebhookAttempt::Delivered, attempts_so_far).await {
                    tracing::warn!(error = %e, "could not record webhook delivery");
                }
            }
            Err(err) => {
                let label = if matches!(err, AttemptError::Refused(_)) { outcome::REFUSED } else { outcome::ATTEMPT_FAILED };
                self.metrics.deliveries.with_label_values(&[label]).inc();
                match self.record(job_id, WebhookAttempt::Failed(&err.to_string()), attempts_so_far).await {
                    Ok(WebhookRecorded::DeadLettered) => {
                        self.metrics.deliveries.with_label_values(&[outcome::DEAD_LETTERED]).inc();
                        tracing::warn!(job = job_id, attempts = attempts_so_far + 1, "webhook dead-lettered");
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "could not record webhook failure"),
                }
            }
        }
    }

    /// Moves a leased delivery's next claim to shortly from now, without counting an attempt.
    async fn defer(&self, job_id: &str) {
        let jitter = rand::rng().random_range(0..DEFER.as_millis() as u64);
        let at = common::job::now_ms() as u64 + DEFER.as_millis() as u64 + jitter;
        let res = match self.pool.get().await {
            Ok(mut c) => self.store.outbox_defer(&mut *c, job_id, at).await.map_err(DispatchError::from),
            Err(e) => Err(e.into()),
        };
        if let Err(e) = res {
            tracing::debug!(error = %e, "could not defer a webhook delivery; its lease will run out instead");
        }
    }

    async fn attempt(&self, url: &str, job_id: &str, body: &[u8], secret: &str) -> Result<(), AttemptError> {
        let parsed = url::Url::parse(url).map_err(|e| AttemptError::Refused(e.to_string()))?;
        let addrs = common::ssrf::check(&parsed, &self.cfg.allowlist).await.map_err(|e| AttemptError::Refused(e.to_string()))?;
        let host = parsed.host_str().unwrap_or_default().to_string();
        // Connect only to the addresses just checked: no second DNS lookup to rebind.
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(self.cfg.timeout)
            .resolve_to_addrs(&host, &addrs)
            .build()
            .map_err(|e| AttemptError::Transport(e.to_string()))?;
        let msg_id = format!("msg_{job_id}");
        let ts = common::job::now_ms() / 1000;
        let resp = client
            .post(parsed)
            .header("content-type", "application/json")
            .header("user-agent", "pixel-couplet-webhooks/1")
            .header("webhook-id", &msg_id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", sign(secret, &msg_id, ts, body))
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| AttemptError::Transport(without_url(&e)))?;
        let status = resp.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(AttemptError::Status(status.as_u16()))
        }
    }

    /// Records an attempt; `attempts_so_far` (read with the job) picks the
    /// next delay from the schedule when the attempt failed.
    async fn record(&self, job_id: &str, attempt: WebhookAttempt<'_>, attempts_so_far: u32) -> Result<WebhookRecorded, DispatchError> {
        let next = self.cfg.schedule.get(attempts_so_far as usize + 1).copied().unwrap_or_default();
        let jitter = rand::rng().random_range(0.8..1.2);
        let retry = Retry { max_attempts: self.cfg.schedule.len(), delay: next.mul_f64(jitter) };
        Ok(self.store.outbox_result(&mut *self.pool.get().await?, job_id, attempt, retry).await?)
    }
}

fn without_url(e: &reqwest::Error) -> String {
    // reqwest errors include the URL, which may carry a receiver's token in its query.
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "transport error"
    };
    kind.to_string()
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_are_limited_per_host_and_per_owner_and_released_on_drop() {
        let busy = Arc::new(Mutex::new(Busy::default()));
        let a1 = take_turn(&busy, "h1", "k1", 2, 3).expect("first");
        let a2 = take_turn(&busy, "h1", "k1", 2, 3).expect("second");
        assert!(take_turn(&busy, "h1", "k2", 2, 3).is_none(), "host h1 is at its limit");
        let b1 = take_turn(&busy, "h2", "k1", 2, 3).expect("another host, same owner");
        assert!(take_turn(&busy, "h3", "k1", 2, 3).is_none(), "owner k1 is at its limit");
        assert!(take_turn(&busy, "h3", "k2", 2, 3).is_some(), "other hosts and owners are unaffected");
        drop(a1);
        assert!(take_turn(&busy, "h1", "k2", 2, 3).is_some(), "a released turn frees the host");
        drop((a2, b1));
        let b = busy.lock().expect("lock");
        assert!(b.hosts.is_empty() && b.owners.is_empty(), "counts return to zero");
    }

    #[test]
    fn origins_include_scheme_host_and_port() {
        assert_eq!(origin("http://127.0.0.1:8080/a?b"), "http://127.0.0.1:8080");
        assert_eq!(origin("https://Example.com/x"), "https://example.com:443");
        assert_ne!(origin("http://127.0.0.1:1/"), origin("http://127.0.0.1:2/"));
    }
}
