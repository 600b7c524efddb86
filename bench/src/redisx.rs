//! What the bench reads from Redis directly: the server's pid (for its CPU
//! figure), `INFO commandstats` deltas (commands and server µs per
//! submission, the best evidence of what one request costs Redis), the job
//! hashes' ms timestamps (for submit → finished latency without a poll per
//! job through the API). The Redis ceilings are in [`crate::ceiling`].

use anyhow::{Context, Result};
use common::store::Keys;
use redis::aio::MultiplexedConnection;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

/// A multiplexed connection.
pub async fn connect(url: &str) -> Result<MultiplexedConnection> {
    Ok(redis::Client::open(url)?.get_multiplexed_async_connection().await?)
}

async fn info(c: &mut MultiplexedConnection, section: &str) -> Result<String> {
    Ok(redis::cmd("INFO").arg(section).query_async(c).await?)
}

/// The Redis server's pid (when it runs on this machine, its CPU can be read).
pub async fn server_pid(c: &mut MultiplexedConnection) -> Option<u32> {
    let s = info(c, "server").await.ok()?;
    s.lines().find_map(|l| l.strip_prefix("process_id:")).and_then(|v| v.trim().parse().ok())
}

/// Objects Redis is still freeing in the background (`lazyfree_pending_objects`, after an UNLINK); 0 when unknown.
pub async fn lazyfree_pending(c: &mut MultiplexedConnection) -> u64 {
    let s = info(c, "memory").await.unwrap_or_default();
    s.lines().find_map(|l| l.strip_prefix("lazyfree_pending_objects:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

/// Redis's latency monitor (`LATENCY`): what blocked its event loop.
pub mod monitor {
    use redis::aio::MultiplexedConnection;

    /// Events at or above this many ms are recorded while a run is watched.
    pub const THRESHOLD_MS: u64 = 10;
    /// The event classes that matter to the submit path (commands, and the expire cycle).
    const EVENTS: [&str; 4] = ["command", "fast-command", "expire-cycle", "eviction-cycle"];

    /// One blocked stretch: unix seconds, ms, event class.
    pub type Event = (u64, u64, String);

    /// Turns the monitor on at [`THRESHOLD_MS`] and clears its history; returns
    /// the threshold it had (to restore), or `None` when the server refused.
    pub async fn start(c: &mut MultiplexedConnection) -> Option<String> {
        let old: Vec<String> = redis::cmd("CONFIG").arg("GET").arg("latency-monitor-threshold").query_async(c).await.ok()?;
        let old = old.get(1)?.clone();
        redis::cmd("CONFIG").arg("SET").arg("latency-monitor-threshold").arg(THRESHOLD_MS).exec_async(c).await.ok()?;
        redis::cmd("LATENCY").arg("RESET").exec_async(c).await.ok()?;
        Some(old)
    }

    /// The events recorded since [`start`], then the old threshold back.
    pub async fn finish(c: &mut MultiplexedConnection, old: &str) -> Vec<Event> {
        let mut out = Vec::new();
        for e in EVENTS {
            let h: Vec<(u64, u64)> = redis::cmd("LATENCY").arg("HISTORY").arg(e).query_async(c).await.unwrap_or_default();
            out.extend(h.into_iter().map(|(t, ms)| (t, ms, e.to_string())));
        }
        let _ = redis::cmd("CONFIG").arg("SET").arg("latency-monitor-threshold").arg(old).exec_async(c).await;
        out.sort();
        out
    }
}

/// `redis_version` of the server.
pub async fn server_version(c: &mut MultiplexedConnection) -> String {
    let s = info(c, "server").await.unwrap_or_default();
    s.lines().find_map(|l| l.strip_prefix("redis_version:")).unwrap_or("?").trim().to_string()
}

/// Command name → (calls, µs) from `INFO commandstats`.
pub async fn commandstats(c: &mut MultiplexedConnection) -> BTreeMap<String, (u64, u64)> {
    let s = info(c, "commandstats").await.unwrap_or_default();
    let mut m = BTreeMap::new();
    for l in s.lines() {
        let Some((name, rest)) = l.strip_prefix("cmdstat_").and_then(|r| r.split_once(':')) else { continue };
        let mut calls = 0;
        let mut usec = 0;
        for kv in rest.split(',') {
            match kv.split_once('=') {
                Some(("calls", v)) => calls = v.parse().unwrap_or(0),
                Some(("usec", v)) => usec = v.parse().unwrap_or(0),
                _ => {}
            }
        }
        m.insert(name.to_string(), (calls, usec));
    }
    m
}

/// `after - before`, commands with no calls dropped.
pub fn stats_delta(before: &BTreeMap<String, (u64, u64)>, after: &BTreeMap<String, (u64, u64)>) -> BTreeMap<String, (u64, u64)> {
    after
        .iter()
        .filter_map(|(k, (c1, u1))| {
            let (c0, u0) = before.get(k).copied().unwrap_or((0, 0));
            (c1 > &c0).then(|| (k.clone(), (c1 - c0, u1.saturating_sub(u0))))
        })
        .collect()
}

/// Timestamps of one job (ms since the epoch, from the job hash).
#[derive(Debug, Clone, Default)]
pub struct JobTimes {
    /// `queued`, `running`, `succeeded`, `failed`, `canceled`, or "" when the hash is gone.
    pub status: String,
    /// Set by the API at submission.
    pub created: Option<i64>,
    /// Set by the worker when the job's batch starts.
    pub started: Option<i64>,
    /// Set when the result is stored.
    pub finished: Option<i64>,
}

impl JobTimes {
    /// Succeeded, failed or canceled.
    pub fn is_final(&self) -> bool {
        matches!(self.status.as_str(), "succeeded" | "failed" | "canceled")
    }
}

/// Reads the jobs' hashes until every job is final or `deadline` passes.
pub async fn wait_jobs(c: &mut MultiplexedConnection, keys: &Keys, ids: &[String], deadline: Instant) -> Result<Vec<JobTimes>> {
    let mut out = vec![JobTimes::default(); ids.len()];
    let mut open: Vec<usize> = (0..ids.len()).collect();
    loop {
        let mut still = Vec::new();
        for chunk in open.chunks(2000) {
            let mut p = redis::pipe();
            for &i in chunk {
                p.cmd("HMGET").arg(keys.job(&ids[i])).arg("status").arg("created_at").arg("started_at").arg("finished_at");
            }
            let rows: Vec<Vec<Option<String>>> = p.query_async(c).await.context("HMGET job hashes")?;
            for (&i, r) in chunk.iter().zip(rows) {
                let num = |k: usize| r.get(k).cloned().flatten().and_then(|v| v.parse::<i64>().ok());
                out[i] = JobTimes { status: r.first().cloned().flatten().unwrap_or_default(), created: num(1), started: num(2), finished: num(3) };
                if !out[i].is_final() {
                    still.push(i);
                }
            }
        }
        open = still;
        if open.is_empty() || Instant::now() >= deadline {
            return Ok(out);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    common::job::now_ms()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_keep_only_commands_that_ran() {
        let a = BTreeMap::from([("evalsha".to_string(), (10, 100)), ("ping".to_string(), (5, 5))]);
        let b = BTreeMap::from([("evalsha".to_string(), (30, 400)), ("ping".to_string(), (5, 5)), ("xadd".to_string(), (1, 2))]);
        let d = stats_delta(&a, &b);
        assert_eq!(d.get("evalsha"), Some(&(20, 300)));
        assert_eq!(d.get("xadd"), Some(&(1, 2)));
        assert!(!d.contains_key("ping"));
    }
}
