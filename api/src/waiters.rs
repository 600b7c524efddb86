//! Long-poll support without busy-polling Redis: one pub/sub subscription per
//! API process to the `done` channel (workers and the cancel script publish
//! finished job ids there) wakes the requests waiting on those ids.
//!
//! A waiter registers *before* reading the job, so a completion between the
//! read and the wait is never missed. If the subscription drops (Redis
//! restart), it reconnects with backoff; waiters then fall back to their own
//! timeout and a final read.
//!
//! Each held wait counts against its owner (the caller's key id, or the one
//! `AUTH_MODE=off` tenant): past `MAX_WAITS_PER_KEY` on this process,
//! [`Waiters::register`] refuses and the poll answers at once instead of
//! holding a connection and a task, so one tenant's polling loop cannot pin
//! the process. `POST /generate` registers without the cap: its hold is the
//! whole contract of that route, and its concurrency is already bounded by the
//! per-key backlog quota and rate limit.

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
    /// Held capped waits per owner (an owner leaves the map at zero, so it stays bounded by the waits).
    per_owner: Arc<Mutex<HashMap<String, usize>>>,
    /// Capped waits one owner may hold (0 = no cap).
    max_per_owner: usize,
}

/// A registration; dropping it unregisters.
pub struct Waiter {
    id: String,
    notify: Arc<Notify>,
    registry: Waiters,
    /// The owner whose count this wait holds (`None`: uncapped).
    counted: Option<String>,
}

/// Refused: the owner already holds `MAX_WAITS_PER_KEY` waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many concurrent waits for this key (at most {0})")]
pub struct TooManyWaits(pub usize);

impl Waiter {
    /// The notifier to wait on (create `notified()` and `enable()` it before reading the job).
    pub fn notify(&self) -> &Notify {
        &self.notify
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        if let Some(owner) = &self.counted {
            if let Ok(mut m) = self.registry.per_owner.lock() {
                if let Some(n) = m.get_mut(owner) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        m.remove(owner);
                    }
                }
            }
        }
        if let Ok(mut m) = self.registry.inner.lock() {
            // Two references left: the map's and ours. Remove when we are the last waiter.
            if Arc::strong_count(&self.notify) <= 2 {
                m.remove(&self.id);
            }
        }
    }
}

impl Waiters {
    /// A registry allowing `max_per_owner` capped waits per owner (0 = no cap).
    pub fn new(max_per_owner: usize) -> Self {
        Waiters { max_per_owner, ..Waiters::default() }
    }

    /// Registers `owner`'s interest in `id`, counted against its cap; refuses past it.
    pub fn register(&self, id: &str, owner: &str) -> Result<Waiter, TooManyWaits> {
        if self.max_per_owner > 0 {
            // A poisoned lock (a panic while counting) fails open: waits are then uncapped, never refused wrongly.
            if let Ok(mut m) = self.per_owner.lock() {
                let n = m.entry(owner.to_string()).or_insert(0);
                if *n >= self.max_per_owner {
                    return Err(TooManyWaits(self.max_per_owner));
                }
                *n += 1;
                let mut w = self.register_uncapped(id);
                w.counted = Some(owner.to_string());
                return Ok(w);
            }
        }
        Ok(self.register_uncapped(id))
    }

    /// Registers interest in `id` without counting it against an owner (`POST /generate`).
    pub fn register_uncapped(&self, id: &str) -> Waiter {
        let notify = match self.inner.lock() {
            Ok(mut m) => m.entry(id.to_string()).or_insert_with(|| Arc::new(Notify::new())).clone(),
            Err(_) => Arc::new(Notify::new()),
        };
        Waiter { id: id.to_string(), notify, registry: self.clone(), counted: None }
    }

    /// Waits `owner` holds now.
    pub fn held_by(&self, owner: &str) -> usize {
        self.per_owner.lock().ok().and_then(|m| m.get(owner).copied()).unwrap_or(0)
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_is_per_owner_and_released_on_drop() {
        let w = Waiters::new(2);
        let a1 = w.register("j1", "a").unwrap();
        let a2 = w.register("j2", "a").unwrap();
        assert_eq!(w.register("j3", "a").err(), Some(TooManyWaits(2)));
        let b = w.register("j3", "b").expect("another owner is not affected");
        let _g = w.register_uncapped("j4");
        assert_eq!(w.held_by("a"), 2);
        drop(a1);
        assert_eq!(w.held_by("a"), 1);
        let a3 = w.register("j1", "a").expect("a released slot is reusable");
        drop((a2, a3, b));
        assert_eq!(w.held_by("a"), 0);
        assert!(w.per_owner.lock().unwrap().is_empty(), "owners at zero leave the map");
    }

    #[test]
    fn zero_means_no_cap() {
        let w = Waiters::new(0);
        let held: Vec<_> = (0..100).map(|i| w.register(&format!("j{i}"), "a").unwrap()).collect();
        assert_eq!(held.len(), 100);
    }
}
