//! One consumer's handle on the job stream: the [`Store`] operations the
//! consumer loop uses, each on a connection from the worker's pool, plus the
//! state they carry between calls (the XAUTOCLAIM cursor, shared by the
//! restarts of a supervised consumer so a restart does not walk the pending
//! list from its head again). The Redis protocol itself (keys, fields,
//! scripts, replies) lives in [`common::store`].

use common::redis_pool::{Pool, PoolError};
use common::store::{Completed, ReclaimCursor, Reclaimed, StartLimits, Started, Store, StoreError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use common::store::{Entry, Outcome};

/// A Redis failure; the consumer backs off and retries.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// Command failed, Redis unreachable, or an unexpected reply.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No connection from the pool.
    #[error("redis pool: {0}")]
    Pool(#[from] PoolError),
}

/// Stream operations for one consumer.
#[derive(Clone)]
pub struct Queue {
    pool: Pool,
    store: Store,
    consumer: String,
    claim_cursor: Arc<Mutex<ReclaimCursor>>,
}

impl Queue {
    /// A queue handle for `consumer`.
    pub fn new(pool: Pool, store: Store, consumer: String) -> Self {
        Queue { pool, store, consumer, claim_cursor: Arc::default() }
    }

    /// The connection pool.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Creates the group (from the stream's start) if it does not exist.
    pub async fn ensure_group(&self) -> Result<(), QueueError> {
        Ok(self.store.ensure_group(&mut *self.pool.get().await?).await?)
    }

    /// New entries, at most `count`, waiting up to `block`.
    pub async fn read(&self, count: usize, block: Duration) -> Result<Vec<Entry>, QueueError> {
        Ok(self.store.read_batch(&mut *self.pool.get().await?, &self.consumer, count, block).await?)
    }

    /// Entries idle longer than `min_idle` in any consumer, moved to this one
    /// (at most `count`), plus the pending ids whose data was deleted; the
    /// walk continues where the previous pass stopped.
    pub async fn reclaim(&self, count: usize, min_idle: Duration) -> Result<Reclaimed, QueueError> {
        let mut c = self.pool.get().await?;
        // A poisoned lock only means another task panicked mid-update; the cursor is still a valid id.
        let mut cursor = self.claim_cursor.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let got = self.store.reclaim(&mut *c, &self.consumer, &mut cursor, count, min_idle).await?;
        *self.claim_cursor.lock().unwrap_or_else(|p| p.into_inner()) = cursor;
        Ok(got)
    }

    /// Starts every entry (one round trip): run it, or it was settled without running.
    pub async fn start(&self, entries: &[Entry], limits: StartLimits) -> Result<Vec<Started>, QueueError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self.store.start_batch(&mut *self.pool.get().await?, entries, limits).await?)
    }

    /// Stores every outcome and acknowledges its entry, in one round trip.
    pub async fn complete(&self, done: &[(&Entry, &Outcome)]) -> Result<Vec<Completed>, QueueError> {
        if done.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self.store.complete_batch(&mut *self.pool.get().await?, done).await?)
    }

    /// Records a transient failure on each job; entries stay pending and are
    /// retried after the visibility timeout.
    pub async fn record_error(&self, entries: &[Entry], message: &str) -> Result<(), QueueError> {
        let jobs: Vec<&str> = entries.iter().map(|e| e.job_id.as_str()).collect();
        Ok(self.store.note_error(&mut *self.pool.get().await?, &jobs, message).await?)
    }

    /// Drops dead-letter entries older than `ttl`; returns how many went.
    pub async fn trim_dead_letters(&self, ttl: Duration) -> Result<u64, QueueError> {
        Ok(self.store.purge_dead_older_than(&mut *self.pool.get().await?, ttl).await?)
    }

    /// Deletes consumers idle longer than `idle` that hold no pending entries (dead workers).
    pub async fn remove_dead_consumers(&self, idle: Duration) -> Result<usize, QueueError> {
        Ok(self.store.remove_idle_consumers(&mut *self.pool.get().await?, &self.consumer, idle).await?)
    }
}
