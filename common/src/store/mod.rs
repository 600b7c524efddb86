//! The Redis protocol of the service, in one place: key names ([`keys`]),
//! record field names and stored values ([`fields`]), the Lua scripts
//! ([`scripts`]) and one typed function per operation. The API and the worker
//! call these functions and never spell a key, a field or a script argument.
//!
//! Operations take `&mut C where C: ConnectionLike + Send`, so callers keep
//! their own connections (the API's pool, the worker's dedicated blocking
//! connection for XREADGROUP) and the store holds nothing but the key prefix.
//!
//! | operation | how | caller |
//! |---|---|---|
//! | `submit` | `submit.lua` (auth, rate limit, idempotency, admission, enqueue: one round trip) | API `POST /v1/couplets`, `POST /generate` |
//! | `authorize` | `authorize.lua` (key lookup + GCRA) | API, every other route |
//! | `job` | HGETALL (owner checked) | API `GET /v1/jobs/{id}`, images, waits, `POST /generate` |
//! | `cancel` | `cancel.lua` (answers the canceled job) | API `DELETE /v1/jobs/{id}` |
//! | `create_key` / `list_keys` / `revoke_key` | MULTI / HGETALL / MULTI | `couplet-api keys` |
//! | `dead_letters` / `dead_letter` / `replay_dead` / `purge_dead` / `purge_dead_older_than` | XRANGE / HGETALL + `replay.lua` / XDEL / XTRIM | `couplet-api dlq` |
//! | `queue_stats` / `group_ready` | one pipeline of XLEN, XINFO, XPENDING, ZCARD / XINFO GROUPS | API `/metrics` scrape / `/readyz` |
//! | `ensure_group` | XGROUP CREATE … MKSTREAM | API and worker at start and periodically |
//! | `done_channel` | (pub/sub channel name) | API waiters |
//! | `read_batch` / `reclaim` / `remove_idle_consumers` | XREADGROUP / XAUTOCLAIM (caller's cursor) / XINFO CONSUMERS + XGROUP DELCONSUMER | worker consumer |
//! | `start_batch` / `complete_batch` / `note_error` | `start.lua` / `complete.lua` / `note_error.lua`, pipelined per batch | worker consumer |
//! | `sweep_lost` / `settle_deleted` / `settle_lost` | HSCAN + XRANGE / HMGET, then `lost.lua` pipelined | worker consumer |
//! | `outbox_claim` / `delivery` / `outbox_defer` / `outbox_result` | `outbox_claim.lua` / HGETALL / ZADD XX / `outbox_result.lua` | worker webhook dispatcher |
//! | `ping` | PING | worker `/readyz` |
//!
//! `docs/ARCHITECTURE.md` has the key layout and the data path.

#![allow(clippy::disallowed_methods, clippy::disallowed_types)] // the one owner of Redis commands (clippy.toml)

pub mod apikeys;
pub mod auth;
pub mod batch;
pub mod consume;
pub mod dlq;
pub mod fields;
pub mod jobs;
pub mod keys;
pub mod lost;
pub mod outbox;
pub mod scripts;
pub mod stats;
pub mod submit;

pub use apikeys::CreatedKey;
pub use auth::{hash_key, Authorized, Credential, Limited, RateState, Tenant, ANONYMOUS};
pub use batch::{Completed, Outcome, StartLimits, Started};
pub use consume::{Entry, ReclaimCursor, Reclaimed};
pub use dlq::{DeadLetter, DeadReplay};
pub use jobs::Canceled;
pub use keys::{Keys, GROUP};
pub use lost::{LostCursor, LostEntry, Swept};
pub use outbox::{Delivery, Retry, WebhookAttempt, WebhookRecorded};
pub use stats::QueueStats;
pub use submit::{Admission, Idempotency, Submission, Submitted};

/// A Redis operation that failed. `kind()` is the stable name for logs and metrics.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis refused the command or could not be reached.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A script or command answered something this version does not understand
    /// (a script from another version, a damaged record).
    #[error("unexpected reply to {op}: {detail}")]
    Protocol {
        /// The operation.
        op: &'static str,
        /// What was wrong.
        detail: String,
    },
}

impl StoreError {
    /// Stable error name.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::Redis(_) => "redis",
            StoreError::Protocol { .. } => "protocol",
        }
    }

    /// An unexpected reply to `op`.
    pub fn protocol(op: &'static str, detail: impl std::fmt::Display) -> Self {
        StoreError::Protocol { op, detail: detail.to_string() }
    }
}

/// The store of one deployment: every operation, under one key prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Store {
    keys: Keys,
}

impl Store {
    /// The store under `prefix` (`KEY_PREFIX`, e.g. `couplet:`).
    pub fn new(prefix: impl Into<String>) -> Self {
        Store { keys: Keys::new(prefix) }
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        self.keys.prefix()
    }

    /// Key names, for tests and diagnostics. Services call operations instead.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Pub/sub channel on which finished job ids are announced (the API's waiters subscribe).
    pub fn done_channel(&self) -> String {
        self.keys.done_channel()
    }

    /// Creates the consumer group (reading from the stream's start, creating
    /// the stream) unless it exists. Idempotent; the API and every worker call
    /// it at start and again now and then, so a Redis that restarted empty
    /// gets its group back.
    pub async fn ensure_group<C: redis::aio::ConnectionLike + Send>(&self, con: &mut C) -> Result<(), StoreError> {
        let r: redis::RedisResult<()> =
            redis::cmd("XGROUP").arg("CREATE").arg(self.keys.stream()).arg(GROUP).arg("0").arg("MKSTREAM").query_async(con).await;
        match r {
            Err(e) if !e.to_string().contains("BUSYGROUP") => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Whether Redis answers (the worker's `/readyz`).
    pub async fn ping<C: redis::aio::ConnectionLike + Send>(&self, con: &mut C) -> Result<(), StoreError> {
        let pong: String = redis::cmd("PING").query_async(con).await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(StoreError::protocol("ping", pong))
        }
    }
}

/// Helpers for the store's tests against the real Redis (`TEST_REDIS_URL`,
/// default `redis://127.0.0.1:6379`): a random prefix per test, and every key
/// under it removed afterwards.
#[cfg(test)]
#[allow(clippy::unwrap_used, missing_docs)]
pub(crate) mod testing {
    use super::Store;

    pub struct TestStore {
        pub store: Store,
        pub con: redis::aio::MultiplexedConnection,
    }

    pub async fn store(tag: &str) -> TestStore {
        let url = std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let client = redis::Client::open(url).unwrap();
        let con = client.get_multiplexed_async_connection().await.unwrap();
        let store = Store::new(format!("t-store-{tag}-{:016x}:", rand::random::<u64>()));
        TestStore { store, con }
    }

    impl TestStore {
        /// Deletes every key under the test's prefix.
        pub async fn cleanup(mut self) {
            let pattern = format!("{}*", self.store.prefix());
            let keys: Vec<String> = redis::cmd("KEYS").arg(&pattern).query_async(&mut self.con).await.unwrap();
            if !keys.is_empty() {
                let _: () = redis::cmd("DEL").arg(keys).query_async(&mut self.con).await.unwrap();
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ensure_group_is_idempotent() {
        let mut t = testing::store("group").await;
        t.store.ensure_group(&mut t.con).await.unwrap();
        t.store.ensure_group(&mut t.con).await.unwrap();
        let n: i64 = redis::cmd("XLEN").arg(t.store.keys().stream()).query_async(&mut t.con).await.unwrap();
        assert_eq!(n, 0, "MKSTREAM made an empty stream");
        t.cleanup().await;
    }
}
