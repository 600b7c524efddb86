//! Jobs whose stream entry disappeared: found and failed visibly
//! (`failed`, error type [`LOST_FROM_QUEUE`], webhook enqueued), never left
//! `queued` until their TTL.
//!
//! Nothing in the service removes an unacknowledged entry (no MAXLEN
//! trimming; XDEL only together with XACK), but an operator's XTRIM/XDEL or a
//! failover that loses writes can. Two cheap, bounded paths find them:
//!
//! - **Pending entries** (delivered to a consumer that died): XAUTOCLAIM
//!   reports their ids as deleted and drops them from the pending list; the
//!   consumer hands those ids straight to [`Lost::settle_ids`].
//! - **Never-delivered entries**: nothing in Redis reports them, so every
//!   worker sweeps the entry index (`{prefix}entries`, entry id → job id,
//!   written by the submit script with the XADD and removed with the XACK)
//!   with HSCAN, [`SWEEP_FIELDS`] fields per tick at most, its cursor carried
//!   between ticks. Candidates go through one pipelined `XRANGE id id` (O(log
//!   n) each); only the missing ones run the `lost` script.
//!
//! The index is an exact list of unacknowledged entries because it changes
//! in the same scripts as the stream, so no age threshold is needed to avoid
//! racing a fresh submission or a completion: the `lost` script re-checks
//! atomically that the index still maps the entry to the job, that the entry
//! is gone from the stream, and that no consumer still holds it (a worker
//! that read it has its data and will complete it). Each full pass costs one
//! HSCAN page and one XRANGE per unacknowledged entry, so with the default
//! interval a 50,000-job backlog is covered in under five minutes.

use crate::queue::{Queue, QueueError};
use common::job::now_ms;
use common::keys::GROUP;
use common::scripts::{pipeline_with_reload, scripts};

/// The error type of a job whose queue entry disappeared.
pub const LOST_FROM_QUEUE: &str = "lost_from_queue";

/// Most index fields one sweep tick looks at.
pub const SWEEP_FIELDS: usize = 2_000;

/// HSCAN page size hint.
const SCAN_PAGE: usize = 500;

/// Finds and fails the jobs of vanished entries for one worker.
pub struct Lost {
    queue: Queue,
    /// HSCAN cursor of the entry index (0: start of a pass).
    cursor: u64,
}

impl Lost {
    /// A sweeper over `queue`'s keys.
    pub fn new(queue: Queue) -> Self {
        Lost { queue, cursor: 0 }
    }

    /// Settles the entries `ids` (e.g. XAUTOCLAIM's deleted ids); returns how many jobs were failed.
    pub async fn settle_ids(&self, ids: &[String]) -> Result<usize, QueueError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut c = self.queue.pool().get().await?;
        let jobs: Vec<Option<String>> = redis::cmd("HMGET").arg(self.queue.keys().entries()).arg(ids).query_async(&mut *c).await?;
        drop(c);
        let pairs: Vec<(String, String)> = ids.iter().zip(jobs).filter_map(|(e, j)| Some((e.clone(), j?))).collect();
        self.settle(&pairs).await
    }

    /// One bounded sweep tick over the entry index; returns how many jobs were failed.
    pub async fn sweep(&mut self) -> Result<usize, QueueError> {
        let keys = self.queue.keys();
        let mut seen = 0;
        let mut failed = 0;
        loop {
            let mut c = self.queue.pool().get().await?;
            let (next, flat): (u64, Vec<String>) =
                redis::cmd("HSCAN").arg(keys.entries()).arg(self.cursor).arg("COUNT").arg(SCAN_PAGE).query_async(&mut *c).await?;
            let pairs: Vec<(String, String)> = flat.chunks_exact(2).map(|p| (p[0].clone(), p[1].clone())).collect();
            seen += pairs.len();
            let missing = if pairs.is_empty() {
                Vec::new()
            } else {
                let mut pipe = redis::pipe();
                for (entry, _) in &pairs {
                    pipe.cmd("XRANGE").arg(keys.stream()).arg(entry).arg(entry).arg("COUNT").arg(1);
                }
                let found: Vec<Vec<redis::Value>> = pipe.query_async(&mut *c).await?;
                pairs.into_iter().zip(found).filter(|(_, f)| f.is_empty()).map(|(p, _)| p).collect::<Vec<_>>()
            };
            drop(c);
            failed += self.settle(&missing).await?;
            self.cursor = next;
            if next == 0 || seen >= SWEEP_FIELDS {
                return Ok(failed);
            }
        }
    }

    /// Runs the `lost` script for each (entry id, job id); it re-checks everything atomically.
    async fn settle(&self, pairs: &[(String, String)]) -> Result<usize, QueueError> {
        if pairs.is_empty() {
            return Ok(0);
        }
        let keys = self.queue.keys();
        let (stream, index, outbox, done) = (keys.stream(), keys.entries(), keys.outbox(), keys.done_channel());
        let now = now_ms();
        // The owners name the backlog keys the script removes the jobs from (an
        // expired job has none; its backlog member ages out on its own).
        let owners: Vec<Option<String>> = {
            let mut pipe = redis::pipe();
            for (_, job) in pairs {
                pipe.hget(keys.job(job), "owner");
            }
            let mut c = self.queue.pool().get().await?;
            pipe.query_async(&mut *c).await?
        };
        let mut pipe = redis::pipe();
        for ((entry, job), owner) in pairs.iter().zip(&owners) {
            let backlog = keys.backlog(owner.as_deref().unwrap_or_default());
            pipe.add_command(
                scripts()
                    .lost
                    .evalsha(&[&keys.job(job), &stream, &index, &outbox, &backlog])
                    .arg(entry)
                    .arg(job)
                    .arg(GROUP)
                    .arg(now)
                    .arg(&done)
                    .to_owned(),
            );
        }
        let mut c = self.queue.pool().get().await?;
        let replies: Vec<String> = pipeline_with_reload(&mut *c, &pipe).await?;
        let failed: Vec<&str> = pairs.iter().zip(&replies).filter(|(_, r)| r.as_str() == "failed").map(|((_, j), _)| j.as_str()).collect();
        if !failed.is_empty() {
            let sample = &failed[..failed.len().min(20)];
            tracing::warn!(count = failed.len(), jobs = ?sample, error_type = LOST_FROM_QUEUE, "stream entries disappeared before their jobs finished; jobs failed");
        }
        Ok(failed.len())
    }
}
