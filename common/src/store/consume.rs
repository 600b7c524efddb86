//! A worker's seat in the consumer group: reading new entries (XREADGROUP),
//! taking over the entries of dead consumers (XAUTOCLAIM) and removing
//! consumers that have been gone for long (XINFO CONSUMERS + DELCONSUMER).
//!
//! XAUTOCLAIM walks the group's pending list with the cursor it returns. The
//! caller keeps that cursor ([`ReclaimCursor`]) between passes, so every
//! pending entry is looked at once per pass however long the list is
//! (restarting at `0-0` each time would only ever see its head); the store
//! itself holds no state. The ids XAUTOCLAIM reports deleted (pending, but
//! their data is gone from the stream, so Redis drops them from the pending
//! list) are handed back for [`Store::settle_deleted`](super::Store::settle_deleted).

use super::fields::entry as f;
use super::{Store, StoreError, GROUP};
use crate::job::now_ms;
use crate::request::ValidRequest;
use redis::aio::ConnectionLike;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};
use std::time::Duration;

/// One stream entry, as a consumer reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Stream entry id.
    pub entry_id: String,
    /// Job id.
    pub job_id: String,
    /// The validated request (JSON, [`ValidRequest`]); see [`Entry::request`].
    pub req: String,
    /// Enqueue time, ms since the epoch.
    pub enqueued_ms: i64,
    /// Tenant id of the submitter ("" on entries written before it existed).
    pub owner: String,
    /// Subject of the owner's backlog key ("" on entries written before it
    /// existed: their backlog is named by the owner, see [`Entry::backlog_subject`]).
    pub backlog: String,
}

impl Entry {
    /// Parses the entry's request.
    pub fn request(&self) -> Result<ValidRequest, serde_json::Error> {
        serde_json::from_str(&self.req)
    }

    /// Names the backlog the job leaves when it is settled (`Keys::backlog`).
    pub fn backlog_subject(&self) -> &str {
        if self.backlog.is_empty() {
            &self.owner
        } else {
            &self.backlog
        }
    }

    /// The entry of a stream record; `None` without a job id (not one of ours).
    fn of(s: &StreamId) -> Option<Entry> {
        Some(Entry {
            entry_id: s.id.clone(),
            job_id: s.get::<String>(f::JOB)?,
            req: s.get::<String>(f::REQ).unwrap_or_default(),
            enqueued_ms: s.get::<String>(f::T).and_then(|t| t.parse().ok()).unwrap_or_else(now_ms),
            owner: s.get::<String>(f::OWNER).unwrap_or_default(),
            backlog: s.get::<String>(f::BACKLOG).unwrap_or_default(),
        })
    }
}

/// Where a consumer's walk of the pending list stands between reclaim passes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReclaimCursor(String);

impl Default for ReclaimCursor {
    /// The start of the pending list.
    fn default() -> Self {
        ReclaimCursor("0-0".into())
    }
}

impl ReclaimCursor {
    /// True at the start of the pending list (a new walk, or one that wrapped).
    pub fn at_start(&self) -> bool {
        self.0 == "0-0"
    }
}

/// What one reclaim pass took over.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reclaimed {
    /// Entries idle past the visibility timeout, now owned by this consumer.
    pub entries: Vec<Entry>,
    /// Pending entry ids whose data was gone (Redis dropped them from the pending list).
    pub deleted: Vec<String>,
}

/// Most XAUTOCLAIM calls in one reclaim pass (each scans at most 10 × COUNT
/// pending entries); the cursor carries the rest over to the next pass.
pub const RECLAIM_CALLS: usize = 16;

impl Store {
    /// New entries for `consumer`, at most `count`, waiting up to `block`
    /// (zero: do not wait). A missing group (Redis restarted empty) is created
    /// and answers no entries.
    pub async fn read_batch<C: ConnectionLike + Send>(
        &self,
        con: &mut C,
        consumer: &str,
        count: usize,
        block: Duration,
    ) -> Result<Vec<Entry>, StoreError> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP").arg(GROUP).arg(consumer).arg("COUNT").arg(count);
        if !block.is_zero() {
            cmd.arg("BLOCK").arg(block.as_millis().max(1) as u64);
        }
        cmd.arg("STREAMS").arg(self.keys.stream()).arg(">");
        let reply: Option<StreamReadReply> = match cmd.query_async(con).await {
            Ok(r) => r,
            Err(e) if e.to_string().contains("NOGROUP") => {
                self.ensure_group(con).await?;
                None
            }
            Err(e) => return Err(e.into()),
        };
        Ok(reply.map(|r| r.keys.iter().flat_map(|k| k.ids.iter().filter_map(Entry::of)).collect()).unwrap_or_default())
    }

    /// Entries idle longer than `min_idle` in any consumer, moved to
    /// `consumer` (at most `count`), plus the pending ids whose data was
    /// deleted. Continues from `cursor` and stops when the walk wraps to the
    /// start, `count` entries are claimed, or after [`RECLAIM_CALLS`] calls;
    /// `cursor` moves on only when the whole pass succeeded.
    pub async fn reclaim<C: ConnectionLike + Send>(
        &self,
        con: &mut C,
        consumer: &str,
        cursor: &mut ReclaimCursor,
        count: usize,
        min_idle: Duration,
    ) -> Result<Reclaimed, StoreError> {
        let mut out = Reclaimed::default();
        let mut at = cursor.clone();
        for _ in 0..RECLAIM_CALLS {
            let want = count.saturating_sub(out.entries.len());
            if want == 0 {
                break;
            }
            let reply: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
                .arg(self.keys.stream())
                .arg(GROUP)
                .arg(consumer)
                .arg(min_idle.as_millis() as u64)
                .arg(&at.0)
                .arg("COUNT")
                .arg(want)
                .query_async(con)
                .await?;
            out.entries.extend(reply.claimed.iter().filter_map(Entry::of));
            out.deleted.extend(reply.deleted_ids);
            at = ReclaimCursor(reply.next_stream_id);
            if at.at_start() {
                break;
            }
        }
        *cursor = at;
        Ok(out)
    }

    /// Deletes the consumers other than `me` that hold no pending entries and
    /// have been idle longer than `idle` (dead workers); returns how many.
    pub async fn remove_idle_consumers<C: ConnectionLike + Send>(&self, con: &mut C, me: &str, idle: Duration) -> Result<usize, StoreError> {
        let info: Vec<std::collections::HashMap<String, redis::Value>> =
            redis::cmd("XINFO").arg("CONSUMERS").arg(self.keys.stream()).arg(GROUP).query_async(con).await?;
        let mut removed = 0;
        for m in info {
            let name: String = m.get("name").and_then(|v| redis::from_redis_value_ref(v).ok()).unwrap_or_default();
            let pending: i64 = m.get("pending").and_then(|v| redis::from_redis_value_ref(v).ok()).unwrap_or(1);
            let idle_ms: i64 = m.get("idle").and_then(|v| redis::from_redis_value_ref(v).ok()).unwrap_or(0);
            if name != me && pending == 0 && idle_ms as u128 > idle.as_millis() {
                let _: i64 = redis::cmd("XGROUP").arg("DELCONSUMER").arg(self.keys.stream()).arg(GROUP).arg(&name).query_async(con).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;
    use crate::store::testing::{self, TestStore};

    /// Appends an entry the way `submit.lua` does (fields of `fields::entry`), indexes it; returns its id.
    pub(crate) async fn add_entry(t: &mut TestStore, job: &str, owner: &str, backlog: &str) -> String {
        let k = t.store.keys().clone();
        let id: String = redis::cmd("XADD")
            .arg(k.stream())
            .arg("*")
            .arg(f::JOB)
            .arg(job)
            .arg(f::REQ)
            .arg("{}")
            .arg(f::T)
            .arg(1234)
            .arg(f::OWNER)
            .arg(owner)
            .arg(f::BACKLOG)
            .arg(backlog)
            .query_async(&mut t.con)
            .await
            .unwrap();
        let _: () = redis::cmd("HSET").arg(k.entries()).arg(&id).arg(job).query_async(&mut t.con).await.unwrap();
        id
    }

    /// A subscriber to one channel on its own thread (the async pub/sub
    /// stream would need a `futures` dependency for one test).
    pub(crate) struct Subscriber(std::sync::mpsc::Receiver<String>);

    /// Subscribes to `channel`; returns once the subscription is active.
    pub(crate) fn subscribe(channel: &str) -> Subscriber {
        let url = std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let (channel, (ready_tx, ready_rx), (tx, rx)) = (channel.to_string(), std::sync::mpsc::channel(), std::sync::mpsc::channel());
        std::thread::spawn(move || {
            let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
            con.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut ps = con.as_pubsub();
            ps.subscribe(&channel).unwrap();
            ready_tx.send(()).unwrap();
            while let Ok(m) = ps.get_message() {
                if tx.send(m.get_payload::<String>().unwrap_or_default()).is_err() {
                    break;
                }
            }
        });
        ready_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        Subscriber(rx)
    }

    impl Subscriber {
        /// The next message's payload (waits up to 2 s).
        pub(crate) fn next(&self) -> String {
            self.0.recv_timeout(Duration::from_secs(2)).unwrap()
        }
    }

    #[tokio::test]
    async fn read_batch_reads_new_entries_and_recreates_a_missing_group() {
        let mut t = testing::store("read").await;
        assert!(t.store.read_batch(&mut t.con, "c1", 10, Duration::ZERO).await.unwrap().is_empty(), "no group: made, nothing read");
        let id = add_entry(&mut t, "j1", "key_a", "hash_a").await;
        let _legacy: String = redis::cmd("XADD").arg(t.store.keys().stream()).arg("*").arg(f::JOB).arg("j2").query_async(&mut t.con).await.unwrap();
        let _junk: String = redis::cmd("XADD").arg(t.store.keys().stream()).arg("*").arg("x").arg("y").query_async(&mut t.con).await.unwrap();
        let got = t.store.read_batch(&mut t.con, "c1", 10, Duration::from_millis(10)).await.unwrap();
        assert_eq!(got.len(), 2, "an entry without a job id is skipped: {got:?}");
        assert_eq!(got[0], Entry { entry_id: id, job_id: "j1".into(), req: "{}".into(), enqueued_ms: 1234, owner: "key_a".into(), backlog: "hash_a".into() });
        assert_eq!(got[0].backlog_subject(), "hash_a");
        assert_eq!((got[1].job_id.as_str(), got[1].backlog_subject()), ("j2", ""), "an entry from before owners");
        assert!(t.store.read_batch(&mut t.con, "c1", 10, Duration::ZERO).await.unwrap().is_empty(), "each entry is delivered once");
        let old = Entry { backlog: String::new(), ..got[0].clone() };
        assert_eq!(old.backlog_subject(), "key_a", "entries from before backlog subjects name the owner's");
        t.cleanup().await;
    }

    #[tokio::test]
    async fn reclaim_takes_idle_entries_walks_with_the_cursor_and_reports_deleted_ones() {
        let mut t = testing::store("reclaim").await;
        t.store.ensure_group(&mut t.con).await.unwrap();
        let mut ids = Vec::new();
        for i in 0..5 {
            ids.push(add_entry(&mut t, &format!("j{i}"), "o", "b").await);
        }
        assert_eq!(t.store.read_batch(&mut t.con, "dead", 5, Duration::ZERO).await.unwrap().len(), 5);
        let _: u64 = redis::cmd("XDEL").arg(t.store.keys().stream()).arg(&ids[1]).query_async(&mut t.con).await.unwrap();
        let mut cursor = ReclaimCursor::default();
        let busy = t.store.reclaim(&mut t.con, "me", &mut cursor, 10, Duration::from_secs(60)).await.unwrap();
        assert!(busy.entries.is_empty(), "nothing idle long enough");
        assert_eq!(busy.deleted, [ids[1].clone()], "deleted entries are reported (and dropped) whatever their idle time");
        assert!(cursor.at_start());
        tokio::time::sleep(Duration::from_millis(20)).await;
        let got = t.store.reclaim(&mut t.con, "me", &mut cursor, 2, Duration::from_millis(10)).await.unwrap();
        assert_eq!(got.entries.iter().map(|e| e.job_id.as_str()).collect::<Vec<_>>(), ["j0", "j2"]);
        assert!(got.deleted.is_empty());
        assert!(!cursor.at_start(), "the walk stopped at COUNT and resumes there");
        let rest = t.store.reclaim(&mut t.con, "me", &mut cursor, 10, Duration::from_millis(10)).await.unwrap();
        assert_eq!(rest.entries.iter().map(|e| e.job_id.as_str()).collect::<Vec<_>>(), ["j3", "j4"]);
        assert!(rest.deleted.is_empty() && cursor.at_start(), "the walk wrapped");
        let pending: (u64, redis::Value, redis::Value, Vec<(String, String)>) =
            redis::cmd("XPENDING").arg(t.store.keys().stream()).arg(GROUP).query_async(&mut t.con).await.unwrap();
        assert_eq!((pending.0, pending.3), (4, vec![("me".to_string(), "4".to_string())]));
        t.cleanup().await;
    }

    #[tokio::test]
    async fn idle_consumers_without_pending_entries_are_removed() {
        let mut t = testing::store("consumers").await;
        t.store.ensure_group(&mut t.con).await.unwrap();
        add_entry(&mut t, "j1", "o", "b").await;
        t.store.read_batch(&mut t.con, "holder", 1, Duration::ZERO).await.unwrap();
        for c in ["gone", "me"] {
            let _: i64 = redis::cmd("XGROUP").arg("CREATECONSUMER").arg(t.store.keys().stream()).arg(GROUP).arg(c).query_async(&mut t.con).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(t.store.remove_idle_consumers(&mut t.con, "me", Duration::from_secs(60)).await.unwrap(), 0, "none idle long enough");
        assert_eq!(t.store.remove_idle_consumers(&mut t.con, "me", Duration::from_millis(5)).await.unwrap(), 1);
        let left: Vec<std::collections::HashMap<String, redis::Value>> =
            redis::cmd("XINFO").arg("CONSUMERS").arg(t.store.keys().stream()).arg(GROUP).query_async(&mut t.con).await.unwrap();
        let mut names: Vec<String> = left.iter().map(|m| redis::from_redis_value_ref(&m["name"]).unwrap()).collect();
        names.sort();
        assert_eq!(names, ["holder", "me"], "the holder of a pending entry and this consumer stay");
        t.cleanup().await;
    }
}
