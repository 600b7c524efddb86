//! Jobs whose stream entry disappeared: found and failed visibly
//! (`failed`, error type [`LOST_FROM_QUEUE`], webhook enqueued), never left
//! `queued` until their TTL.
//!
//! The protocol (the entry index, the HSCAN sweep, `lost.lua`'s atomic
//! re-checks) is [`common::store::lost`]'s; this is the worker's side: the
//! sweep's cursor between ticks, its per-tick bound, and the warning that
//! names the failed jobs. Pending entries whose data vanished come from
//! XAUTOCLAIM's deleted ids ([`Lost::settle_ids`]); never-delivered ones from
//! the bounded sweep ([`Lost::sweep`], at most [`SWEEP_FIELDS`] index fields
//! per tick), so with the default interval a 50,000-job backlog is covered in
//! under five minutes.

use crate::queue::{Queue, QueueError};
use common::store::LostCursor;

pub use common::store::lost::LOST_FROM_QUEUE;

/// Most index fields one sweep tick looks at.
pub const SWEEP_FIELDS: usize = 2_000;

/// Finds and fails the jobs of vanished entries for one worker.
pub struct Lost {
    queue: Queue,
    cursor: LostCursor,
}

impl Lost {
    /// A sweeper over `queue`'s keys.
    pub fn new(queue: Queue) -> Self {
        Lost { queue, cursor: LostCursor::default() }
    }

    /// Settles the entries `ids` (e.g. XAUTOCLAIM's deleted ids); returns how many jobs were failed.
    pub async fn settle_ids(&self, ids: &[String]) -> Result<usize, QueueError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut c = self.queue.pool().get().await?;
        let failed = self.queue.store().settle_deleted(&mut *c, ids).await?;
        Ok(report(&failed))
    }

    /// One bounded sweep tick over the entry index; returns how many jobs were failed.
    pub async fn sweep(&mut self) -> Result<usize, QueueError> {
        let mut c = self.queue.pool().get().await?;
        let swept = self.queue.store().sweep_lost(&mut *c, &mut self.cursor, SWEEP_FIELDS).await?;
        Ok(report(&swept.failed))
    }
}

fn report(failed: &[String]) -> usize {
    if !failed.is_empty() {
        let sample = &failed[..failed.len().min(20)];
        tracing::warn!(count = failed.len(), jobs = ?sample, error_type = LOST_FROM_QUEUE, "stream entries disappeared before their jobs finished; jobs failed");
    }
    failed.len()
}
