//! In-process brake on failed authorizations, per client IP: after
//! `AUTH_FAILURES_PER_IP` missing or unknown API keys from one IP within one
//! second, that IP's requests get 429 `rate_limited` for the rest of the
//! second without a Redis round trip, so a key-guessing or garbage-key flood
//! cannot occupy the Redis pool that real tenants need.
//!
//! A fixed one-second window per IP is enough here (the goal is to shed a
//! flood, not to meter fairly), and the table is bounded: when it holds
//! [`MAX_TRACKED`] IPs, windows that have ended are dropped, and if every one
//! is current the new IP is not tracked (fails open to the Redis path, which
//! still answers 401).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Most IPs tracked at once.
pub const MAX_TRACKED: usize = 65_536;

/// Failure counts per IP in the current one-second window.
#[derive(Clone)]
pub struct AuthFailures {
    limit: u32,
    epoch: Instant,
    table: Arc<Mutex<HashMap<IpAddr, (u64, u32)>>>,
}

impl AuthFailures {
    /// `limit` failures per IP per second (0 = no limit).
    pub fn new(limit: u32) -> Self {
        AuthFailures { limit, epoch: Instant::now(), table: Arc::default() }
    }

    fn second(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_secs()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, (u64, u32)>> {
        // A poisoned lock only means a panic mid-update of plain counters.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `ip` is over its limit now: Some(milliseconds until its window ends).
    pub fn blocked(&self, ip: IpAddr, now: Instant) -> Option<u64> {
        if self.limit == 0 {
            return None;
        }
        let sec = self.second(now);
        let t = self.lock();
        match t.get(&ip) {
            Some(&(s, n)) if s == sec && n >= self.limit => {
                let into = now.saturating_duration_since(self.epoch).as_millis() as u64 % 1000;
                Some(1000 - into)
            }
            _ => None,
        }
    }

    /// Counts one failed authorization from `ip`.
    pub fn record(&self, ip: IpAddr, now: Instant) {
        if self.limit == 0 {
            return;
        }
        let sec = self.second(now);
        let mut t = self.lock();
        if !t.contains_key(&ip) && t.len() >= MAX_TRACKED {
            t.retain(|_, (s, _)| *s == sec);
            if t.len() >= MAX_TRACKED {
                return;
            }
        }
        let e = t.entry(ip).or_insert((sec, 0));
        if e.0 != sec {
            *e = (sec, 0);
        }
        e.1 = e.1.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn an_ip_is_blocked_after_its_failures_for_the_rest_of_the_second_only() {
        let f = AuthFailures::new(3);
        let t0 = f.epoch + Duration::from_millis(100);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().expect("ip"), "10.0.0.2".parse().expect("ip"));
        for _ in 0..3 {
            assert!(f.blocked(a, t0).is_none());
            f.record(a, t0);
        }
        let wait = f.blocked(a, t0).expect("blocked after 3 failures");
        assert!((1..=1000).contains(&wait), "{wait}");
        assert!(f.blocked(b, t0).is_none(), "another IP is unaffected");
        assert!(f.blocked(a, t0 + Duration::from_secs(1)).is_none(), "a new second starts afresh");
        assert!(AuthFailures::new(0).blocked(a, t0).is_none(), "0 turns it off");
    }
}
