//! Long-poll support without busy-polling Redis: one pub/sub subscription per
//! API process to the `done` channel (workers and the cancel script publish
//! finished job ids there) wakes the requests waiting on those ids.
//!
//! A waiter registers *before* reading the job, so a completion between the
//! read and the wait is never missed. If the subscription drops (Redis
//! restart), it reconnects with backoff; waiters then fall back to their own
//! timeout and a final read.

use futures::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Registry of jobs being waited on.
#[derive(Clone, Default)]
pub struct Waiters {
    inner: Arc<Mutex<HashMap<String, Arc<Notify>>>>,
}

/// A registration; dropping it unregisters.
pub struct Waiter {
    id: String,
    notify: Arc<Notify>,
    owner: Waiters,
}

impl Waiter {
    /// The notifier to wait on (create `notified()` and `enable()` it before reading the job).
    pub fn notify(&self) -> &Notify {
        &self.notify
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        if let Ok(mut m) = self.owner.inner.lock() {
            // Two references left: the map's and ours. Remove when we are the last waiter.
            if Arc::strong_count(&self.notify) <= 2 {
                m.remove(&self.id);
            }
        }
    }
}

impl Waiters {
    /// Registers interest in `id`.
    pub fn register(&self, id: &str) -> Waiter {
        let notify = match self.inner.lock() {
            Ok(mut m) => m.entry(id.to_string()).or_insert_with(|| Arc::new(Notify::new())).clone(),
            Err(_) => Arc::new(Notify::new()),
        };
        Waiter { id: id.to_string(), notify, owner: self.clone() }
    }

    fn wake(&self, id: &str) {
        let n = self.inner.lock().ok().and_then(|m| m.get(id).cloned());
        if let Some(n) = n {
            n.notify_waiters();
        }
    }

    /// Runs the subscription until `shutdown`, reconnecting as needed.
    pub async fn listen(self, redis_url: String, channel: String, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(200);
        while !shutdown.is_cancelled() {
            let res = async {
                let client = redis::Client::open(redis_url.as_str())?;
                let mut ps = client.get_async_pubsub().await?;
                ps.subscribe(&channel).await?;
                Ok::<_, redis::RedisError>(ps)
            };
            match tokio::time::timeout(Duration::from_secs(2), res).await {
                Ok(Ok(mut ps)) => {
                    backoff = Duration::from_millis(200);
                    let mut stream = ps.on_message();
                    loop {
                        tokio::select! {
                            msg = stream.next() => match msg {
                                Some(m) => {
                                    if let Ok(id) = m.get_payload::<String>() {
                                        self.wake(&id);
                                    }
                                }
                                None => break,
                            },
                            _ = shutdown.cancelled() => return,
                        }
                    }
                    tracing::warn!("job completion subscription lost; reconnecting");
                }
                _ => {
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.cancelled() => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }
}
