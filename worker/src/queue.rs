//! The worker's side of the Redis stream: joining the consumer group,
//! reading new entries (COUNT = free batch slots), reclaiming entries of dead
//! consumers with XAUTOCLAIM, starting and completing jobs with the shared
//! Lua scripts, and removing consumers that have been gone for long.
//!
//! XAUTOCLAIM walks the group's pending list with the cursor it returns,
//! kept between calls, so every pending entry is looked at once per pass
//! however long the list is (restarting at `0-0` each time would only ever
//! see its head). The ids it reports deleted (pending, but their data is gone
//! from the stream) are handed back so [`crate::lost`] fails their jobs.

use common::job::{now_ms, CoupletResult, JobError};
use common::keys::{Keys, GROUP};
use common::request::ValidRequest;
use common::scripts::{pipeline_with_reload, scripts};
use common::redis_pool::Pool;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};
use std::time::Duration;

/// A Redis failure; the consumer backs off and retries.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// Command failed or Redis unreachable.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// No connection from the pool.
    #[error("redis pool: {0}")]
    Pool(#[from] common::redis_pool::PoolError),
}

/// One stream entry taken by this consumer.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Stream entry id.
    pub entry_id: String,
    /// Job id.
    pub job_id: String,
    /// Validated request JSON.
    pub req: String,
    /// Enqueue time, ms since epoch.
    pub enqueued_ms: i64,
    /// Owner (tenant) of the job, whose backlog the job leaves when settled
    /// ("" for entries written before the per-key quota: never counted).
    pub owner: String,
}

/// What the start script decided for an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// Run it; this is attempt n.
    Run(u32),
    /// Already settled (final, canceled or expired): acknowledged, skip.
    Skip,
    /// Attempts exhausted: failed and dead-lettered.
    Dead,
}

/// How a job ended.
pub enum Outcome {
    /// Store this couplet.
    Succeeded(CoupletResult),
    /// Fail the job for good with this error.
    Failed(JobError),
}

/// What one reclaim pass took over.
#[derive(Debug, Default)]
pub struct Reclaimed {
    /// Entries idle past the visibility timeout, now owned by this consumer.
    pub entries: Vec<Entry>,
    /// Pending entries whose data was gone (Redis dropped them from the PEL).
    pub deleted: Vec<String>,
}

/// Most XAUTOCLAIM calls in one reclaim pass (each scans at most 10 × COUNT
/// pending entries); the cursor carries the rest over to the next pass.
const RECLAIM_CALLS: usize = 16;

/// Stream operations for one consumer.
#[derive(Clone)]
pub struct Queue {
    pool: Pool,
    keys: Keys,
    consumer: String,
    /// XAUTOCLAIM cursor between passes (`0-0`: start of the pending list).
    claim_cursor: std::sync::Arc<std::sync::Mutex<String>>,
}

fn entry_of(s: &StreamId) -> Option<Entry> {
    Some(Entry {
        entry_id: s.id.clone(),
        job_id: s.get::<String>("job")?,
        req: s.get::<String>("req").unwrap_or_default(),
        enqueued_ms: s.get::<String>("t").and_then(|t| t.parse().ok()).unwrap_or_else(now_ms),
        owner: s.get::<String>("o").unwrap_or_default(),
    })
}

impl Queue {
    /// A queue handle for `consumer`.
    pub fn new(pool: Pool, keys: Keys, consumer: String) -> Self {
        Queue { pool, keys, consumer, claim_cursor: std::sync::Arc::new(std::sync::Mutex::new("0-0".into())) }
    }

    /// The connection pool.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The key builder.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Creates the group (from the stream's start) if it does not exist.
    pub async fn ensure_group(&self) -> Result<(), QueueError> {
        let mut c = self.pool.get().await?;
        let r: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(self.keys.stream())
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut *c)
            .await;
        match r {
            Err(e) if !e.to_string().contains("BUSYGROUP") => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// New entries, at most `count`, waiting up to `block`.
    pub async fn read(&self, count: usize, block: Duration) -> Result<Vec<Entry>, QueueError> {
        let mut c = self.pool.get().await?;
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP").arg(GROUP).arg(&self.consumer).arg("COUNT").arg(count);
        if !block.is_zero() {
            cmd.arg("BLOCK").arg(block.as_millis().max(1) as u64);
        }
        cmd.arg("STREAMS").arg(self.keys.stream()).arg(">");
        let reply: Option<StreamReadReply> = match cmd.query_async(&mut *c).await {
            Ok(r) => r,
            Err(e) if e.to_string().contains("NOGROUP") => {
                drop(c);
                self.ensure_group().await?;
                None
            }
            Err(e) => return Err(e.into()),
        };
        Ok(reply
            .map(|r| r.keys.iter().flat_map(|k| k.ids.iter().filter_map(entry_of)).collect())
            .unwrap_or_default())
    }

    /// Entries idle longer than `min_idle` in any consumer, moved to this one
    /// (at most `count`), plus the pending ids whose data was deleted.
    /// Continues from the previous pass's cursor and stops when the walk wraps
    /// to `0-0`, `count` entries are claimed, or after [`RECLAIM_CALLS`] calls.
    pub async fn reclaim(&self, count: usize, min_idle: Duration) -> Result<Reclaimed, QueueError> {
        let mut out = Reclaimed::default();
        let mut c = self.pool.get().await?;
        // A poisoned lock only means another task panicked mid-update; the cursor is still a valid id.
        let mut cursor = self.claim_cursor.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for _ in 0..RECLAIM_CALLS {
            let want = count.saturating_sub(out.entries.len());
            if want == 0 {
                break;
            }
            let reply: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
                .arg(self.keys.stream())
                .arg(GROUP)
                .arg(&self.consumer)
                .arg(min_idle.as_millis() as u64)
                .arg(&cursor)
                .arg("COUNT")
                .arg(want)
                .query_async(&mut *c)
                .await?;
            out.entries.extend(reply.claimed.iter().filter_map(entry_of));
            out.deleted.extend(reply.deleted_ids);
            cursor = reply.next_stream_id;
            if cursor == "0-0" {
                break;
            }
        }
        *self.claim_cursor.lock().unwrap_or_else(|p| p.into_inner()) = cursor;
        Ok(out)
    }

    /// Runs the start script for each entry in one round trip.
    pub async fn start(&self, entries: &[Entry], max_attempts: u32, dead_maxlen: u64) -> Result<Vec<Start>, QueueError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let s = scripts();
        let now = now_ms();
        let mut pipe = redis::pipe();
        let (stream, dead, outbox, done, index) =
            (self.keys.stream(), self.keys.dead_letter(), self.keys.outbox(), self.keys.done_channel(), self.keys.entries());
        for e in entries {
            let (job, backlog) = (self.keys.job(&e.job_id), self.keys.backlog(&e.owner));
            pipe.add_command(
                s.start
                    .evalsha(&[&job, &stream, &dead, &outbox, &index, &backlog])
                    .arg(&e.entry_id)
                    .arg(GROUP)
                    .arg(now)
                    .arg(max_attempts)
                    .arg(&self.consumer)
                    .arg(&e.job_id)
                    .arg(&done)
                    .arg(dead_maxlen)
                    .to_owned(),
            );
        }
        let mut c = self.pool.get().await?;
        let replies: Vec<(String, i64)> = pipeline_with_reload(&mut *c, &pipe).await?;
        Ok(replies
            .into_iter()
            .map(|(what, n)| match what.as_str() {
                "run" => Start::Run(n.max(0) as u32),
                "dead" => Start::Dead,
                _ => Start::Skip,
            })
            .collect())
    }

    /// Stores every outcome and acknowledges its entry, in one round trip.
    /// Returns, per entry, whether this worker's write was the one stored.
    pub async fn complete(&self, done: &[(&Entry, &Outcome)]) -> Result<Vec<bool>, QueueError> {
        if done.is_empty() {
            return Ok(Vec::new());
        }
        let s = scripts();
        let now = now_ms();
        let (stream, outbox, channel, index) = (self.keys.stream(), self.keys.outbox(), self.keys.done_channel(), self.keys.entries());
        let mut pipe = redis::pipe();
        for (e, o) in done {
            let (job, backlog) = (self.keys.job(&e.job_id), self.keys.backlog(&e.owner));
            let (status, field, json) = match o {
                Outcome::Succeeded(r) => ("succeeded", "result", serde_json::to_string(r)),
                Outcome::Failed(err) => ("failed", "error", serde_json::to_string(err)),
            };
            pipe.add_command(
                s.complete
                    .evalsha(&[&job, &stream, &outbox, &index, &backlog])
                    .arg(&e.entry_id)
                    .arg(GROUP)
                    .arg(status)
                    .arg(field)
                    .arg(json.unwrap_or_default())
                    .arg(now)
                    .arg(&channel)
                    .arg(&e.job_id)
                    .to_owned(),
            );
        }
        let mut c = self.pool.get().await?;
        let replies: Vec<String> = pipeline_with_reload(&mut *c, &pipe).await?;
        Ok(replies.iter().map(|r| r == "stored").collect())
    }

    /// Records a transient failure on each job; entries stay pending and are retried after the visibility timeout.
    /// Only existing job hashes are written (`note_error.lua`): a plain HSET would
    /// recreate an expired job as a hash without a TTL.
    pub async fn record_error(&self, entries: &[Entry], message: &str) -> Result<(), QueueError> {
        let mut pipe = redis::pipe();
        for e in entries {
            pipe.add_command(scripts().note_error.evalsha(&[&self.keys.job(&e.job_id)]).arg("last_error").arg(message).to_owned()).ignore();
        }
        let mut c = self.pool.get().await?;
        pipeline_with_reload::<_, ()>(&mut *c, &pipe).await?;
        Ok(())
    }

    /// Drops dead-letter entries older than `ttl` (stream ids are ms
    /// timestamps, so `XTRIM MINID` is an age trim); returns how many went.
    pub async fn trim_dead_letters(&self, ttl: Duration) -> Result<u64, QueueError> {
        let min_id = (now_ms() as u128).saturating_sub(ttl.as_millis());
        let mut c = self.pool.get().await?;
        let n: u64 = redis::cmd("XTRIM").arg(self.keys.dead_letter()).arg("MINID").arg(min_id as u64).query_async(&mut *c).await?;
        Ok(n)
    }

    /// Deletes consumers idle longer than `idle` that hold no pending entries (dead workers).
    pub async fn remove_dead_consumers(&self, idle: Duration) -> Result<usize, QueueError> {
        let mut c = self.pool.get().await?;
        let info: Vec<std::collections::HashMap<String, redis::Value>> =
            redis::cmd("XINFO").arg("CONSUMERS").arg(self.keys.stream()).arg(GROUP).query_async(&mut *c).await?;
        let mut removed = 0;
        for m in info {
            let name: String = m.get("name").and_then(|v| redis::from_redis_value_ref(v).ok()).unwrap_or_default();
            let pending: i64 = m.get("pending").and_then(|v| redis::from_redis_value_ref(v).ok()).unwrap_or(1);
            let idle_ms: i64 = m.get("idle").and_then(|v| redis::from_redis_value_ref(v).ok()).unwrap_or(0);
            if name != self.consumer && pending == 0 && idle_ms as u128 > idle.as_millis() {
                let _: i64 = redis::cmd("XGROUP")
                    .arg("DELCONSUMER")
                    .arg(self.keys.stream())
                    .arg(GROUP)
                    .arg(&name)
                    .query_async(&mut *c)
                    .await?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Parses an entry's request.
    pub fn request_of(e: &Entry) -> Result<ValidRequest, serde_json::Error> {
        serde_json::from_str(&e.req)
    }
}
