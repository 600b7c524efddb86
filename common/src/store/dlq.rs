//! The dead-letter stream, for operators (`couplet-api dlq list|show|replay|purge`).
//!
//! A dead-letter entry (written by `start.lua` when a job exhausts
//! `MAX_ATTEMPTS`) holds the job id, the error, the attempts and the request
//! echo with its callback URL blanked. The job hash keeps its own request
//! (callback included) until its TTL, and that is what a replay rebuilds the
//! worker's validated request from: the stream entry's `req` was deleted with
//! the entry. The rebuilt request goes through the same `validate()` the API
//! uses, then `replay.lua` re-enqueues the job and deletes the dead-letter
//! entry in one step, so replaying an entry twice queues the job once.
//!
//! Purging is by id (XDEL) or by age (XTRIM MINID, the same trim the workers
//! apply with `DEAD_LETTER_TTL_S`).

use super::fields::{dead as d, job as f, status};
use super::{scripts::scripts, Store, StoreError};
use crate::job::{now_ms, RequestEcho};
use crate::request::{CoupletRequest, ValidationError};
use redis::aio::ConnectionLike;
use std::collections::HashMap;
use std::time::Duration;

/// One dead-letter entry, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// Stream entry id (`ms-seq`).
    pub id: String,
    /// Job id.
    pub job: String,
    /// The error (`{"type", "message"}`).
    pub error: serde_json::Value,
    /// Attempts made.
    pub attempts: u32,
    /// The request echo (callback URL blanked).
    pub request: serde_json::Value,
    /// When it was dead-lettered, ms since the epoch (from the entry id).
    pub at_ms: i64,
}

impl DeadLetter {
    fn from_fields(id: String, fields: HashMap<String, String>) -> Self {
        let json = |k: &str| fields.get(k).and_then(|v| serde_json::from_str(v).ok()).unwrap_or(serde_json::Value::Null);
        DeadLetter {
            job: fields.get(d::JOB).cloned().unwrap_or_default(),
            error: json(d::ERROR),
            attempts: fields.get(d::ATTEMPTS).and_then(|a| a.parse().ok()).unwrap_or(0),
            request: json(d::REQUEST),
            at_ms: id.split('-').next().and_then(|m| m.parse().ok()).unwrap_or_else(now_ms),
            id,
        }
    }
}

/// What a replay did.
#[derive(Debug, Clone, PartialEq)]
pub enum DeadReplay {
    /// Queued again under this new stream entry.
    Queued {
        /// Job id.
        job: String,
        /// New job-stream entry id.
        entry: String,
        /// Whether the callback URL survived.
        callback: bool,
    },
    /// No such dead-letter entry (never existed, purged, or already replayed).
    NotFound,
    /// The job hash expired: its request is gone (the entry is left for inspection).
    Expired(String),
    /// The job is no longer `failed` (job, status).
    NotFailed(String, String),
    /// The job's stored request no longer passes validation (rules changed since it was queued).
    Invalid {
        /// Job id.
        job: String,
        /// Validation failure.
        source: ValidationError,
    },
    /// The job's stored request could not be read back.
    Corrupt {
        /// Job id.
        job: String,
        /// Parser message.
        message: String,
    },
}

type RawEntries = Vec<(String, HashMap<String, String>)>;

/// The wire request an echo came from (the fields `validate()` reads).
pub fn request_of(e: &RequestEcho) -> CoupletRequest {
    CoupletRequest {
        theme: e.theme.clone(),
        style: Some(e.style.as_str().to_string()),
        length: Some(e.length as i64),
        upper: e.upper.clone(),
        seed: e.seed,
        callback_url: e.callback_url.clone(),
        candidates: Some(e.candidates as i64),
        head: e.head.clone(),
    }
}

impl Store {
    /// The oldest `limit` dead letters, oldest first.
    pub async fn dead_letters<C: ConnectionLike + Send>(&self, con: &mut C, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        let raw: RawEntries = redis::cmd("XRANGE").arg(self.keys.dead_letter()).arg("-").arg("+").arg("COUNT").arg(limit.max(1)).query_async(con).await?;
        Ok(raw.into_iter().map(|(id, f)| DeadLetter::from_fields(id, f)).collect())
    }

    /// One dead letter by entry id.
    pub async fn dead_letter<C: ConnectionLike + Send>(&self, con: &mut C, id: &str) -> Result<Option<DeadLetter>, StoreError> {
        let raw: RawEntries = redis::cmd("XRANGE").arg(self.keys.dead_letter()).arg(id).arg(id).arg("COUNT").arg(1).query_async(con).await?;
        Ok(raw.into_iter().next().map(|(id, f)| DeadLetter::from_fields(id, f)))
    }

    /// Re-enqueues the job of dead-letter entry `id` with a fresh TTL of `ttl_s` (see the module doc).
    /// Admission (`MAX_BACKLOG`, quotas) is not applied: an operator's replay is not a tenant's submission.
    pub async fn replay_dead<C: ConnectionLike + Send>(&self, con: &mut C, id: &str, ttl_s: u64) -> Result<DeadReplay, StoreError> {
        let Some(entry) = self.dead_letter(con, id).await? else {
            return Ok(DeadReplay::NotFound);
        };
        let job = entry.job;
        let hash: HashMap<String, String> = redis::cmd("HGETALL").arg(self.keys.job(&job)).query_async(con).await?;
        let (Some(st), Some(owner)) = (hash.get(f::STATUS), hash.get(f::OWNER)) else {
            return Ok(DeadReplay::Expired(job));
        };
        if st != status::FAILED {
            return Ok(DeadReplay::NotFailed(job, st.clone()));
        }
        // Jobs written before the backlog subject existed name their backlog by owner.
        let subject = hash.get(f::BACKLOG).unwrap_or(owner);
        let stored = hash.get(f::REQUEST).map(String::as_str).unwrap_or("");
        let echo: RequestEcho = match serde_json::from_str(stored) {
            Ok(e) => e,
            Err(e) => return Ok(DeadReplay::Corrupt { job, message: e.to_string() }),
        };
        let valid = match request_of(&echo).validate() {
            Ok(v) => v,
            Err(source) => return Ok(DeadReplay::Invalid { job, source }),
        };
        let callback = valid.callback_url.is_some() && hash.get(f::CALLBACK).is_some_and(|c| c == "1");
        // Same serialisation as a submission, which the worker parses.
        let internal = serde_json::to_string(&valid).map_err(|e| StoreError::protocol("replay_dead", e))?;
        let cmd = scripts()
            .replay
            .evalsha(&[
                self.keys.dead_letter(),
                self.keys.job(&job),
                self.keys.stream(),
                self.keys.entries(),
                self.keys.backlog(subject),
                self.keys.outbox(),
            ])
            .arg(id)
            .arg(&job)
            .arg(owner)
            .arg(internal)
            .arg(now_ms())
            .arg(ttl_s)
            .arg(if callback { "1" } else { "0" })
            .arg(subject)
            .to_owned();
        let (outcome, value): (String, String) = super::scripts::run(con, &cmd).await?;
        Ok(match outcome.as_str() {
            "queued" => DeadReplay::Queued { job, entry: value, callback },
            "gone" => DeadReplay::Expired(job),
            "not_failed" => DeadReplay::NotFailed(job, value),
            // 'not_found', or 'stale' (entry or owner changed between the read and the script).
            _ => DeadReplay::NotFound,
        })
    }

    /// Deletes the given dead letters; returns how many existed.
    pub async fn purge_dead<C: ConnectionLike + Send>(&self, con: &mut C, ids: &[String]) -> Result<u64, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        Ok(redis::cmd("XDEL").arg(self.keys.dead_letter()).arg(ids).query_async(con).await?)
    }

    /// Deletes dead letters older than `age`; returns how many. An exact MINID
    /// (no `~`): the operator asked for this cut. MINID keeps ids ≥ the cut, so
    /// a zero age cuts one millisecond ahead to take this millisecond's too.
    pub async fn purge_dead_older_than<C: ConnectionLike + Send>(&self, con: &mut C, age: Duration) -> Result<u64, StoreError> {
        let min_id = (now_ms().max(0) as u128).saturating_sub(age.as_millis()) + u128::from(age.is_zero());
        Ok(redis::cmd("XTRIM").arg(self.keys.dead_letter()).arg("MINID").arg(min_id as u64).query_async(con).await?)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::fields::entry;
    use crate::store::testing;

    #[test]
    fn an_echo_rebuilds_the_request_it_came_from() {
        let raw = CoupletRequest {
            upper: Some("春风送暖入屠苏".into()),
            style: Some("festive".into()),
            seed: Some(u64::MAX),
            callback_url: Some("https://example.com/hook?t=1".into()),
            candidates: Some(3),
            ..Default::default()
        };
        let valid = raw.validate().unwrap();
        let echo: RequestEcho = serde_json::from_str(&serde_json::to_string(&RequestEcho::from(&valid)).unwrap()).unwrap();
        assert_eq!(request_of(&echo).validate().unwrap(), valid);
        let themed = CoupletRequest { theme: Some(" 龙年 吉祥 ".into()), length: Some(5), head: None, ..Default::default() }.validate().unwrap();
        assert_eq!(request_of(&RequestEcho::from(&themed)).validate().unwrap(), themed);
    }

    /// A failed job and its dead letter, as `start.lua` leaves them.
    async fn dead_job(t: &mut testing::TestStore, job: &str, with_subject: bool) -> String {
        let k = t.store.keys().clone();
        let valid = CoupletRequest { theme: Some("春".into()), ..Default::default() }.validate().unwrap();
        let echo = serde_json::to_string(&RequestEcho::from(&valid)).unwrap();
        let mut h = vec![(f::ID, job.to_string()), (f::OWNER, "key_a".into()), (f::STATUS, "failed".into()), (f::REQUEST, echo.clone()), (f::CALLBACK, "0".into())];
        if with_subject {
            h.push((f::BACKLOG, "subj".into()));
        }
        let _: () = redis::pipe().hset_multiple(k.job(job), &h).expire(k.job(job), 600).query_async(&mut t.con).await.unwrap();
        redis::cmd("XADD")
            .arg(k.dead_letter())
            .arg("*")
            .arg(d::JOB)
            .arg(job)
            .arg(d::ERROR)
            .arg(r#"{"type":"attempts_exhausted","message":"x"}"#)
            .arg(d::ATTEMPTS)
            .arg(3)
            .arg(d::REQUEST)
            .arg(echo)
            .query_async(&mut t.con)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn dead_letters_are_listed_replayed_once_and_purged() {
        let mut t = testing::store("dlq").await;
        let (a, b) = (crate::job::new_job_id(), crate::job::new_job_id());
        let ea = dead_job(&mut t, &a, true).await;
        let eb = dead_job(&mut t, &b, false).await;
        let all = t.store.dead_letters(&mut t.con, 10).await.unwrap();
        assert_eq!(all.iter().map(|e| e.job.as_str()).collect::<Vec<_>>(), [a.as_str(), b.as_str()]);
        assert_eq!((all[0].attempts, all[0].error["type"].as_str()), (3, Some("attempts_exhausted")));
        assert_eq!(t.store.dead_letter(&mut t.con, &eb).await.unwrap().map(|e| e.job), Some(b.clone()));

        let out = t.store.replay_dead(&mut t.con, &ea, 600).await.unwrap();
        assert!(matches!(&out, DeadReplay::Queued { job, callback: false, .. } if *job == a), "{out:?}");
        assert_eq!(t.store.replay_dead(&mut t.con, &ea, 600).await.unwrap(), DeadReplay::NotFound, "a second replay queues nothing");
        let keys = t.store.keys().clone();
        let entries: redis::streams::StreamRangeReply = redis::cmd("XRANGE").arg(keys.stream()).arg("-").arg("+").query_async(&mut t.con).await.unwrap();
        assert_eq!(entries.ids.len(), 1);
        assert_eq!(entries.ids[0].get::<String>(entry::BACKLOG).as_deref(), Some("subj"));
        let n: u64 = redis::cmd("ZCARD").arg(keys.backlog("subj")).query_async(&mut t.con).await.unwrap();
        assert_eq!(n, 1, "the job is back in its tenant's backlog");
        // A job from before the backlog subject: its backlog is named by its owner.
        assert!(matches!(t.store.replay_dead(&mut t.con, &eb, 600).await.unwrap(), DeadReplay::Queued { .. }));
        let n: u64 = redis::cmd("ZCARD").arg(keys.backlog("key_a")).query_async(&mut t.con).await.unwrap();
        assert_eq!(n, 1);

        let ec = dead_job(&mut t, &crate::job::new_job_id(), true).await;
        let _ = dead_job(&mut t, &crate::job::new_job_id(), true).await;
        assert_eq!(t.store.purge_dead(&mut t.con, &[ec.clone(), "1-1".into()]).await.unwrap(), 1);
        assert_eq!(t.store.purge_dead_older_than(&mut t.con, Duration::from_secs(3600)).await.unwrap(), 0);
        assert_eq!(t.store.purge_dead_older_than(&mut t.con, Duration::ZERO).await.unwrap(), 1);
        t.cleanup().await;
    }
}
