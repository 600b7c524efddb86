//! Jobs whose stream entry disappeared: found and failed visibly (`failed`,
//! error type [`LOST_FROM_QUEUE`], webhook queued), never left `queued` until
//! their TTL.
//!
//! Nothing in the service removes an unacknowledged entry (no MAXLEN
//! trimming; XDEL only together with XACK), but an operator's XTRIM/XDEL or a
//! failover that loses writes can. Two cheap, bounded paths find them:
//!
//! - **Pending entries** (delivered to a consumer that died): XAUTOCLAIM
//!   reports their ids as deleted and drops them from the pending list; the
//!   worker hands those ids straight to [`Store::settle_deleted`].
//! - **Never-delivered entries**: nothing in Redis reports them, so workers
//!   sweep the entry index (`Keys::entries`, entry id → job id, written by
//!   `submit.lua` with the XADD and removed with the XACK) with HSCAN, a
//!   bounded number of fields per tick ([`Store::sweep_lost`]), the cursor
//!   ([`LostCursor`]) carried between ticks by the caller. Candidates go
//!   through one pipelined `XRANGE id id` (O(log n) each); only the missing
//!   ones run `lost.lua`.
//!
//! The index is an exact list of unacknowledged entries because it changes
//! in the same scripts as the stream, so no age threshold is needed to avoid
//! racing a fresh submission or a completion: `lost.lua` re-checks atomically
//! that the index still maps the entry to the job, that the entry is gone from
//! the stream, and that no consumer still holds it (a worker that read it has
//! its data and will complete it).
//!
//! The job's backlog key is read from the job hash before the script runs
//! (the script gets every key in KEYS): [`f::BACKLOG`], or the owner
//! for jobs written before it existed; an expired job names none, and its
//! backlog member ages out on its own.

use super::fields::job as f;
use super::scripts::{pipeline_with_reload, scripts};
use super::{Store, StoreError, GROUP};
use crate::job::now_ms;
use redis::aio::ConnectionLike;

pub use super::fields::error_type::LOST_FROM_QUEUE;

/// HSCAN page size hint of the sweep.
const SCAN_PAGE: usize = 500;

/// Where the sweep of the entry index stands between ticks (0: start of a pass).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LostCursor(u64);

impl LostCursor {
    /// True at the start of a pass (a new sweep, or one that just finished a pass).
    pub fn at_start(self) -> bool {
        self.0 == 0
    }
}

/// What `lost.lua` found for one (entry, job).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LostEntry {
    /// The entry is still in the stream: not lost.
    Present,
    /// A consumer still holds it: it will complete it.
    Pending,
    /// The index no longer maps the entry to this job (acknowledged meanwhile).
    Stale,
    /// Lost, but the job was gone or final already: index and backlog cleaned.
    Cleared,
    /// Lost: the job failed with [`LOST_FROM_QUEUE`].
    Failed,
}

/// One sweep tick.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Swept {
    /// Index fields looked at.
    pub seen: usize,
    /// Jobs failed with [`LOST_FROM_QUEUE`].
    pub failed: Vec<String>,
}

impl Store {
    /// Settles the entries `ids` that XAUTOCLAIM reported deleted; returns the jobs failed.
    pub async fn settle_deleted<C: ConnectionLike + Send>(&self, con: &mut C, ids: &[String]) -> Result<Vec<String>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let jobs: Vec<Option<String>> = redis::cmd("HMGET").arg(self.keys.entries()).arg(ids).query_async(con).await?;
        let pairs: Vec<(String, String)> = ids.iter().zip(jobs).filter_map(|(e, j)| Some((e.clone(), j?))).collect();
        Ok(failed_jobs(&pairs, &self.settle_lost(con, &pairs).await?))
    }

    /// One bounded sweep tick over the entry index: HSCAN pages from `cursor`
    /// until `budget` fields were seen or the pass ends (the cursor returns to
    /// the start), settling the entries missing from the stream.
    pub async fn sweep_lost<C: ConnectionLike + Send>(&self, con: &mut C, cursor: &mut LostCursor, budget: usize) -> Result<Swept, StoreError> {
        let (index, stream) = (self.keys.entries(), self.keys.stream());
        let mut out = Swept::default();
        loop {
            let (next, flat): (u64, Vec<String>) = redis::cmd("HSCAN").arg(&index).arg(cursor.0).arg("COUNT").arg(SCAN_PAGE).query_async(con).await?;
            let pairs: Vec<(String, String)> = flat.chunks_exact(2).map(|p| (p[0].clone(), p[1].clone())).collect();
            out.seen += pairs.len();
            if !pairs.is_empty() {
                let mut pipe = redis::pipe();
                for (entry, _) in &pairs {
                    pipe.cmd("XRANGE").arg(&stream).arg(entry).arg(entry).arg("COUNT").arg(1);
                }
                let found: Vec<Vec<redis::Value>> = pipe.query_async(con).await?;
                let missing: Vec<(String, String)> = pairs.into_iter().zip(found).filter(|(_, f)| f.is_empty()).map(|(p, _)| p).collect();
                out.failed.extend(failed_jobs(&missing, &self.settle_lost(con, &missing).await?));
            }
            *cursor = LostCursor(next);
            if cursor.at_start() || out.seen >= budget {
                return Ok(out);
            }
        }
    }

    /// Runs `lost.lua` for each (entry id, job id), in one round trip after
    /// reading the jobs' backlog subjects; it re-checks everything atomically.
    pub async fn settle_lost<C: ConnectionLike + Send>(&self, con: &mut C, pairs: &[(String, String)]) -> Result<Vec<LostEntry>, StoreError> {
        if pairs.is_empty() {
            return Ok(Vec::new());
        }
        let k = &self.keys;
        let subjects: Vec<(Option<String>, Option<String>)> = {
            let mut pipe = redis::pipe();
            for (_, job) in pairs {
                pipe.cmd("HMGET").arg(k.job(job)).arg(f::BACKLOG).arg(f::OWNER);
            }
            pipe.query_async(con).await?
        };
        let (stream, index, outbox, done, now) = (k.stream(), k.entries(), k.outbox(), k.done_channel(), now_ms());
        let mut pipe = redis::pipe();
        for ((entry, job), (backlog, owner)) in pairs.iter().zip(&subjects) {
            let backlog = k.backlog(backlog.as_deref().or(owner.as_deref()).unwrap_or_default());
            pipe.add_command(
                scripts().lost.evalsha(&[&k.job(job), &stream, &index, &outbox, &backlog]).arg(entry).arg(job).arg(GROUP).arg(now).arg(&done).to_owned(),
            );
        }
        let replies: Vec<String> = pipeline_with_reload(con, &pipe).await?;
        replies
            .iter()
            .map(|r| match r.as_str() {
                "present" => Ok(LostEntry::Present),
                "pending" => Ok(LostEntry::Pending),
                "stale" => Ok(LostEntry::Stale),
                "cleared" => Ok(LostEntry::Cleared),
                "failed" => Ok(LostEntry::Failed),
                other => Err(StoreError::protocol("settle_lost", format!("reply {other:?}"))),
            })
            .collect()
    }
}

fn failed_jobs(pairs: &[(String, String)], outcomes: &[LostEntry]) -> Vec<String> {
    pairs.iter().zip(outcomes).filter(|(_, o)| **o == LostEntry::Failed).map(|((_, j), _)| j.clone()).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::job::JobError;
    use crate::store::consume::tests::{add_entry, subscribe};
    use crate::store::fields::{status, webhook};
    use crate::store::testing::{self, TestStore};
    use std::collections::HashMap;
    use std::time::Duration;

    /// A job with status `st` in backlog `b` (named by `backlog` field, or only by owner `o` when `legacy`), with an indexed entry.
    async fn job(t: &mut TestStore, id: &str, st: &str, legacy: bool) -> String {
        let k = t.store.keys().clone();
        let mut fields = vec![(f::ID, id), (f::STATUS, st), (f::OWNER, "o"), (f::CALLBACK, "1")];
        if !legacy {
            fields.push((f::BACKLOG, "b"));
        }
        let _: () = redis::pipe()
            .hset_multiple(k.job(id), &fields)
            .zadd(k.backlog(if legacy { "o" } else { "b" }), id, 1)
            .query_async(&mut t.con)
            .await
            .unwrap();
        add_entry(t, id, "o", if legacy { "" } else { "b" }).await
    }

    async fn hash(t: &mut TestStore, id: &str) -> HashMap<String, String> {
        redis::cmd("HGETALL").arg(t.store.keys().job(id)).query_async(&mut t.con).await.unwrap()
    }

    async fn xdel(t: &mut TestStore, ids: &[&String]) {
        let _: u64 = redis::cmd("XDEL").arg(t.store.keys().stream()).arg(ids).query_async(&mut t.con).await.unwrap();
    }

    #[tokio::test]
    async fn the_sweep_fails_jobs_of_vanished_entries_and_nothing_else() {
        let mut t = testing::store("lost-sweep").await;
        t.store.ensure_group(&mut t.con).await.unwrap();
        let _present = job(&mut t, "present", status::QUEUED, false).await;
        let lost = job(&mut t, "lost", status::QUEUED, false).await;
        let legacy = job(&mut t, "legacy", status::RUNNING, true).await;
        let done = job(&mut t, "done", status::SUCCEEDED, false).await;
        xdel(&mut t, &[&lost, &legacy, &done]).await;
        let sub = subscribe(&t.store.done_channel());
        let mut cursor = LostCursor::default();
        let swept = t.store.sweep_lost(&mut t.con, &mut cursor, 10_000).await.unwrap();
        let mut failed = swept.failed.clone();
        failed.sort();
        assert_eq!((swept.seen, failed), (4, vec!["legacy".to_string(), "lost".to_string()]));
        assert!(cursor.at_start(), "a small index is one pass");
        let h = hash(&mut t, "lost").await;
        assert_eq!((h[f::STATUS].as_str(), h[f::WH_STATUS].as_str()), (status::FAILED, webhook::PENDING));
        assert_eq!(serde_json::from_str::<JobError>(&h[f::ERROR]).unwrap().kind, LOST_FROM_QUEUE);
        assert_eq!(hash(&mut t, "done").await[f::STATUS], status::SUCCEEDED, "a final job is only cleaned up");
        assert_eq!(hash(&mut t, "present").await[f::STATUS], status::QUEUED);
        let k = t.store.keys().clone();
        let (indexed, b, o, outbox): (Vec<String>, Vec<String>, u64, u64) = redis::pipe()
            .hkeys(k.entries())
            .zrange(k.backlog("b"), 0, -1)
            .zcard(k.backlog("o"))
            .zcard(k.outbox())
            .query_async(&mut t.con)
            .await
            .unwrap();
        assert_eq!(indexed.len(), 1, "only the present entry stays indexed");
        assert_eq!((b, o, outbox), (vec!["present".to_string()], 0, 2), "lost jobs left their backlogs, by subject or by owner");
        let mut woken = [sub.next(), sub.next()];
        woken.sort();
        assert_eq!(woken, ["legacy", "lost"]);
        assert_eq!(t.store.sweep_lost(&mut t.con, &mut cursor, 10_000).await.unwrap(), Swept { seen: 1, failed: vec![] }, "idempotent");
        t.cleanup().await;
    }

    #[tokio::test]
    async fn deleted_pending_entries_are_settled_and_held_ones_are_not() {
        let mut t = testing::store("lost-deleted").await;
        t.store.ensure_group(&mut t.con).await.unwrap();
        let held = job(&mut t, "held", status::RUNNING, false).await;
        let gone = job(&mut t, "gone", status::RUNNING, false).await;
        t.store.read_batch(&mut t.con, "c", 10, Duration::ZERO).await.unwrap();
        xdel(&mut t, &[&held, &gone]).await;
        // `held` is still in the consumer's pending list (its worker has its data); `gone` was dropped from it.
        let _: u64 = redis::cmd("XACK").arg(t.store.keys().stream()).arg(GROUP).arg(&gone).query_async(&mut t.con).await.unwrap();
        let out = t.store.settle_lost(&mut t.con, &[(held.clone(), "held".into()), (gone.clone(), "gone".into()), (gone.clone(), "other".into())]).await.unwrap();
        assert_eq!(out, [LostEntry::Pending, LostEntry::Failed, LostEntry::Stale]);
        assert_eq!(t.store.settle_deleted(&mut t.con, &[gone.clone(), "1-1".into()]).await.unwrap(), Vec::<String>::new(), "settled once");
        assert_eq!(hash(&mut t, "held").await[f::STATUS], status::RUNNING);
        assert!(t.store.settle_deleted(&mut t.con, &[]).await.unwrap().is_empty());
        t.cleanup().await;
    }

    #[tokio::test]
    async fn the_sweep_stops_at_its_budget_and_resumes() {
        let mut t = testing::store("lost-budget").await;
        t.store.ensure_group(&mut t.con).await.unwrap();
        let fields: Vec<(String, String)> = (0..1200).map(|i| (format!("{}-0", i + 1), format!("j{i}"))).collect();
        let _: () = redis::cmd("HSET").arg(t.store.keys().entries()).arg(&fields).query_async(&mut t.con).await.unwrap();
        let mut cursor = LostCursor::default();
        let first = t.store.sweep_lost(&mut t.con, &mut cursor, 10).await.unwrap();
        assert!(first.seen >= 10 && first.seen < 1200 && !cursor.at_start(), "{first:?}");
        assert!(first.failed.is_empty(), "entries of expired jobs are cleared, not failed");
        let mut seen = first.seen;
        while !cursor.at_start() {
            seen += t.store.sweep_lost(&mut t.con, &mut cursor, 10).await.unwrap().seen;
        }
        assert!(seen >= 1200, "a pass sees every field ({seen})");
        let left: u64 = redis::cmd("HLEN").arg(t.store.keys().entries()).query_async(&mut t.con).await.unwrap();
        assert_eq!(left, 0, "entries of expired jobs leave the index");
        t.cleanup().await;
    }
}
