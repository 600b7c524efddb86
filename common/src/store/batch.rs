//! A batch's passage through Redis, one pipelined round trip per step:
//! [`Store::start_batch`] (`start.lua` per entry: count the attempt, or
//! settle an entry that must not run), [`Store::complete_batch`]
//! (`complete.lua` per entry: store the result, acknowledge, queue the
//! webhook, wake waiters) and [`Store::note_error`] (`note_error.lua`: the
//! transient error of entries left pending for a retry).
//!
//! Nothing is acknowledged before its result is stored: the only scripts that
//! XACK are the ones that make the job final in the same call (or find it
//! final or expired already).

use super::consume::Entry;
use super::fields::{job as f, status};
use super::scripts::{pipeline_with_reload, scripts};
use super::{Store, StoreError, GROUP};
use crate::job::{now_ms, CoupletResult, JobError};
use redis::aio::ConnectionLike;

/// Limits the start script applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartLimits {
    /// Attempts before a job is failed and dead-lettered (`MAX_ATTEMPTS`).
    pub max_attempts: u32,
    /// Approximate cap on the dead-letter stream's length (`DEAD_LETTER_MAXLEN`).
    pub dead_letter_maxlen: u64,
}

/// What the start script decided for one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Started {
    /// Run it: the job is `running`, and this is attempt `n` (1-based).
    Run(u32),
    /// The job hash expired: entry acknowledged, nothing to do.
    Gone,
    /// The job is final already (succeeded, failed or canceled): entry acknowledged.
    Final,
    /// Attempts exhausted: the job failed, was dead-lettered after this many attempts, and its entry acknowledged.
    DeadLettered(u32),
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Store this couplet.
    Succeeded(CoupletResult),
    /// Fail the job for good with this error.
    Failed(JobError),
}

/// What the completion script did for one entry (its entry is acknowledged in every case).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completed {
    /// This write was stored: the job is final now.
    Stored,
    /// The job was final already (another worker, a cancel): this write was dropped.
    Duplicate,
    /// The job hash expired: nothing stored.
    Gone,
}

impl Completed {
    /// True when this worker's result is the one stored.
    pub fn is_stored(self) -> bool {
        self == Completed::Stored
    }
}

impl Store {
    /// Runs `start.lua` for every entry, in one round trip; one answer per entry, in order.
    pub async fn start_batch<C: ConnectionLike + Send>(&self, con: &mut C, entries: &[Entry], limits: StartLimits) -> Result<Vec<Started>, StoreError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let now = now_ms();
        let k = &self.keys;
        let (stream, dead, outbox, index, done) = (k.stream(), k.dead_letter(), k.outbox(), k.entries(), k.done_channel());
        let mut pipe = redis::pipe();
        for e in entries {
            let (job, backlog) = (k.job(&e.job_id), k.backlog(e.backlog_subject()));
            pipe.add_command(
                scripts()
                    .start
                    .evalsha(&[&job, &stream, &dead, &outbox, &index, &backlog])
                    .arg(&e.entry_id)
                    .arg(GROUP)
                    .arg(now)
                    .arg(limits.max_attempts)
                    .arg(&e.job_id)
                    .arg(&done)
                    .arg(limits.dead_letter_maxlen)
                    .to_owned(),
            );
        }
        let replies: Vec<(String, i64)> = pipeline_with_reload(con, &pipe).await?;
        let count = |n: i64| u32::try_from(n).unwrap_or(0);
        replies
            .into_iter()
            .map(|(what, n)| match what.as_str() {
                "run" => Ok(Started::Run(count(n))),
                "gone" => Ok(Started::Gone),
                "final" => Ok(Started::Final),
                "dead" => Ok(Started::DeadLettered(count(n))),
                other => Err(StoreError::protocol("start_batch", format!("reply {other:?}"))),
            })
            .collect()
    }

    /// Stores every outcome and acknowledges its entry (`complete.lua` per
    /// entry), in one round trip; one answer per entry, in order.
    pub async fn complete_batch<C: ConnectionLike + Send>(&self, con: &mut C, done: &[(&Entry, &Outcome)]) -> Result<Vec<Completed>, StoreError> {
        if done.is_empty() {
            return Ok(Vec::new());
        }
        let now = now_ms();
        let k = &self.keys;
        let (stream, outbox, index, channel) = (k.stream(), k.outbox(), k.entries(), k.done_channel());
        let mut pipe = redis::pipe();
        for (e, o) in done {
            let (job, backlog) = (k.job(&e.job_id), k.backlog(e.backlog_subject()));
            let (st, field, json) = match o {
                Outcome::Succeeded(r) => (status::SUCCEEDED, f::RESULT, serde_json::to_string(r)),
                Outcome::Failed(err) => (status::FAILED, f::ERROR, serde_json::to_string(err)),
            };
            let json = json.map_err(|e| StoreError::protocol("complete_batch", e))?;
            pipe.add_command(
                scripts()
                    .complete
                    .evalsha(&[&job, &stream, &outbox, &index, &backlog])
                    .arg(&e.entry_id)
                    .arg(GROUP)
                    .arg(st)
                    .arg(field)
                    .arg(json)
                    .arg(now)
                    .arg(&channel)
                    .arg(&e.job_id)
                    .to_owned(),
            );
        }
        let replies: Vec<String> = pipeline_with_reload(con, &pipe).await?;
        replies
            .iter()
            .map(|r| match r.as_str() {
                "stored" => Ok(Completed::Stored),
                "duplicate" => Ok(Completed::Duplicate),
                "gone" => Ok(Completed::Gone),
                other => Err(StoreError::protocol("complete_batch", format!("reply {other:?}"))),
            })
            .collect()
    }

    /// Records a transient failure (`last_error`) on each job whose entry stays
    /// pending for a retry after the visibility timeout, in one round trip.
    /// Only existing job hashes are written (`note_error.lua`): a plain HSET
    /// would recreate an expired job as a hash without a TTL.
    pub async fn note_error<C: ConnectionLike + Send>(&self, con: &mut C, jobs: &[&str], message: &str) -> Result<(), StoreError> {
        if jobs.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for job in jobs {
            pipe.add_command(scripts().note_error.evalsha(&[self.keys.job(job)]).arg(f::LAST_ERROR).arg(message).to_owned()).ignore();
        }
        pipeline_with_reload::<_, ()>(con, &pipe).await?;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::consume::tests::{add_entry, subscribe};
    use crate::store::fields::{dead, webhook};
    use crate::store::testing::{self, TestStore};
    use std::collections::HashMap;
    use std::time::Duration;

    const LIMITS: StartLimits = StartLimits { max_attempts: 2, dead_letter_maxlen: 100 };

    /// A queued job with an entry (read by consumer `c`), indexed and in backlog `b`.
    async fn queued(t: &mut TestStore, job: &str, callback: bool, request: &str) -> Entry {
        let k = t.store.keys().clone();
        let _: () = redis::pipe()
            .hset_multiple(k.job(job), &[(f::ID, job), (f::STATUS, status::QUEUED), (f::ATTEMPTS, "0"), (f::CALLBACK, if callback { "1" } else { "0" }), (f::REQUEST, request)])
            .expire(k.job(job), 600)
            .zadd(k.backlog("b"), job, 1)
            .query_async(&mut t.con)
            .await
            .unwrap();
        let id = add_entry(t, job, "o", "b").await;
        let got = t.store.read_batch(&mut t.con, "c", 100, Duration::ZERO).await.unwrap();
        got.into_iter().find(|e| e.entry_id == id).unwrap()
    }

    async fn hash(t: &mut TestStore, job: &str) -> HashMap<String, String> {
        redis::cmd("HGETALL").arg(t.store.keys().job(job)).query_async(&mut t.con).await.unwrap()
    }

    /// (stream length, pending, index length, backlog members, outbox members)
    async fn leftovers(t: &mut TestStore) -> (u64, u64, u64, u64, u64) {
        let k = t.store.keys().clone();
        let (xlen, pending, hlen, zcard, outbox): (u64, (u64, redis::Value, redis::Value, redis::Value), u64, u64, u64) = redis::pipe()
            .xlen(k.stream())
            .cmd("XPENDING")
            .arg(k.stream())
            .arg(GROUP)
            .hlen(k.entries())
            .zcard(k.backlog("b"))
            .zcard(k.outbox())
            .query_async(&mut t.con)
            .await
            .unwrap();
        (xlen, pending.0, hlen, zcard, outbox)
    }

    fn couplet() -> CoupletResult {
        serde_json::from_str(r#"{"upper":"春风送暖","lower":"瑞雪迎新","hengpi":"万象更新","style":"festive"}"#).unwrap()
    }

    #[tokio::test]
    async fn start_runs_queued_jobs_and_settles_the_rest() {
        let mut t = testing::store("start").await;
        t.store.ensure_group(&mut t.con).await.unwrap();
        let run = queued(&mut t, "run", false, "{}").await;
        let fin = queued(&mut t, "fin", false, "{}").await;
        let gone = queued(&mut t, "gone", false, "{}").await;
        let k = t.store.keys().clone();
        let _: () = redis::cmd("HSET").arg(k.job("fin")).arg(f::STATUS).arg(status::CANCELED).query_async(&mut t.con).await.unwrap();
        let _: () = redis::cmd("DEL").arg(k.job("gone")).query_async(&mut t.con).await.unwrap();
        let got = t.store.start_batch(&mut t.con, &[run.clone(), fin, gone], LIMITS).await.unwrap();
        assert_eq!(got, [Started::Run(1), Started::Final, Started::Gone]);
        let h = hash(&mut t, "run").await;
        assert_eq!((h[f::STATUS].as_str(), h[f::ATTEMPTS].as_str()), (status::RUNNING, "1"));
        assert!(h.contains_key(f::STARTED_AT));
        assert_eq!(leftovers(&mut t).await, (1, 1, 1, 1, 0), "only the running job's entry is left, pending");
        assert_eq!(t.store.start_batch(&mut t.con, &[run], LIMITS).await.unwrap(), [Started::Run(2)]);
        assert!(t.store.start_batch(&mut t.con, &[], LIMITS).await.unwrap().is_empty());
        t.cleanup().await;
    }

    #[tokio::test]
    async fn exhausted_attempts_dead_letter_the_job_without_its_callback_url() {
        let mut t = testing::store("dead").await;
        t.store.ensure_group(&mut t.con).await.unwrap();
        let request = r#"{"theme":"春","seed":18446744073709551615,"callback_url":"https://h.example/x?token=s\"e"}"#;
        let e = queued(&mut t, "j", true, request).await;
        t.store.note_error(&mut t.con, &["j", "expired"], "model exploded").await.unwrap();
        let k = t.store.keys().clone();
        let _: () = redis::cmd("HSET").arg(k.job("j")).arg(f::ATTEMPTS).arg(2).query_async(&mut t.con).await.unwrap();
        let sub = subscribe(&t.store.done_channel());
        assert_eq!(t.store.start_batch(&mut t.con, &[e], LIMITS).await.unwrap(), [Started::DeadLettered(2)]);
        let h = hash(&mut t, "j").await;
        assert_eq!((h[f::STATUS].as_str(), h[f::ATTEMPTS].as_str()), (status::FAILED, "2"));
        let err: JobError = serde_json::from_str(&h[f::ERROR]).unwrap();
        assert_eq!(err.kind, crate::store::fields::error_type::ATTEMPTS_EXHAUSTED);
        assert!(err.message.contains("gave up after 2 attempts: model exploded"), "{}", err.message);
        assert_eq!((h[f::WH_STATUS].as_str(), h[f::WH_ATTEMPTS].as_str()), (webhook::PENDING, "0"));
        let dl: redis::streams::StreamRangeReply = redis::cmd("XRANGE").arg(k.dead_letter()).arg("-").arg("+").query_async(&mut t.con).await.unwrap();
        let d = &dl.ids[0];
        assert_eq!(d.get::<String>(dead::JOB).as_deref(), Some("j"));
        assert_eq!(d.get::<String>(dead::ATTEMPTS).as_deref(), Some("2"));
        assert_eq!(d.get::<String>(dead::REQUEST).as_deref(), Some(r#"{"theme":"春","seed":18446744073709551615,"callback_url":null}"#));
        assert_eq!(leftovers(&mut t).await, (0, 0, 0, 0, 1), "acknowledged, out of the backlog, webhook queued");
        assert_eq!(sub.next(), "j", "waiters are woken");
        assert!(!hash(&mut t, "expired").await.contains_key(f::LAST_ERROR), "note_error recreates no expired job");
        t.cleanup().await;
    }

    #[tokio::test]
    async fn completion_stores_once_acknowledges_and_queues_the_webhook() {
        let mut t = testing::store("complete").await;
        t.store.ensure_group(&mut t.con).await.unwrap();
        let a = queued(&mut t, "a", true, "{}").await;
        let b = queued(&mut t, "b", false, "{}").await;
        let gone = queued(&mut t, "gone", false, "{}").await;
        t.store.start_batch(&mut t.con, &[a.clone(), b.clone(), gone.clone()], LIMITS).await.unwrap();
        let _: () = redis::cmd("DEL").arg(t.store.keys().job("gone")).query_async(&mut t.con).await.unwrap();
        let ok = Outcome::Succeeded(couplet());
        let bad = Outcome::Failed(JobError { kind: "invalid_request".into(), message: "no".into() });
        let got = t.store.complete_batch(&mut t.con, &[(&a, &ok), (&b, &bad), (&gone, &ok)]).await.unwrap();
        assert_eq!(got, [Completed::Stored, Completed::Stored, Completed::Gone]);
        let h = hash(&mut t, "a").await;
        assert_eq!((h[f::STATUS].as_str(), h[f::RESULT_WRITES].as_str(), h[f::WH_STATUS].as_str()), (status::SUCCEEDED, "1", webhook::PENDING));
        assert_eq!(serde_json::from_str::<CoupletResult>(&h[f::RESULT]).unwrap(), couplet());
        assert!(h.contains_key(f::FINISHED_AT));
        let h = hash(&mut t, "b").await;
        assert_eq!(h[f::STATUS], status::FAILED);
        assert!(!h.contains_key(f::WH_STATUS), "no callback, no webhook");
        assert_eq!(serde_json::from_str::<JobError>(&h[f::ERROR]).unwrap().kind, "invalid_request");
        assert_eq!(leftovers(&mut t).await, (0, 0, 0, 0, 1));
        // A second worker's late result is dropped.
        let again = t.store.complete_batch(&mut t.con, &[(&a, &bad)]).await.unwrap();
        assert_eq!(again, [Completed::Duplicate]);
        assert!(!again[0].is_stored());
        assert_eq!(hash(&mut t, "a").await[f::RESULT_WRITES], "1");
        t.cleanup().await;
    }

    #[tokio::test]
    async fn scripts_are_reloaded_after_a_script_flush() {
        let mut t = testing::store("noscript").await;
        t.store.ensure_group(&mut t.con).await.unwrap();
        let e = queued(&mut t, "j", false, "{}").await;
        // SCRIPT FLUSH would disturb other tests' scripts only until their next
        // NOSCRIPT reload, which is exactly what this checks.
        let _: () = redis::cmd("SCRIPT").arg("FLUSH").query_async(&mut t.con).await.unwrap();
        assert_eq!(t.store.start_batch(&mut t.con, &[e], LIMITS).await.unwrap(), [Started::Run(1)]);
        t.cleanup().await;
    }
}
