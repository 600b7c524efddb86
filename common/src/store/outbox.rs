//! The webhook outbox (`Keys::outbox`: a sorted set of job ids by next
//! attempt time, ms) as the dispatcher uses it: lease due deliveries
//! ([`Store::outbox_claim`], `outbox_claim.lua`), read what to deliver
//! ([`Store::delivery`]), push a delivery back without counting an attempt
//! ([`Store::outbox_defer`]) and record an attempt ([`Store::outbox_result`],
//! `outbox_result.lua`). Jobs enter the outbox in the scripts that make them
//! final (`lib/settle.lua`'s `announce`, `cancel.lua`).
//!
//! A claim is a lease: the member's score moves to now + lease, so if a
//! dispatcher dies mid-delivery another one takes it when the lease runs out.
//! Lease and retry times come from the Redis server's clock, so dispatchers on
//! several hosts agree.

use super::fields::{job as f, webhook};
use super::scripts::{run, scripts};
use super::{Store, StoreError};
use crate::job::JobView;
use redis::aio::ConnectionLike;
use std::collections::HashMap;
use std::time::Duration;

/// A job to deliver, as its webhook needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The job as `GET /v1/jobs/{id}` shows it (with its webhook state).
    pub view: JobView,
    /// Tenant id of the submitter (the per-key delivery limit counts it).
    pub owner: String,
    /// The tenant's webhook signing secret (`None`: the dispatcher's own).
    pub secret: Option<String>,
    /// Time the job became final, ms since the epoch (0 if unknown).
    pub finished_ms: i64,
    /// Delivery attempts made so far.
    pub attempts: u32,
}

/// How one delivery attempt went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookAttempt<'a> {
    /// Delivered (or there is nothing to deliver): the job leaves the outbox.
    Delivered,
    /// Failed with this error (shown as the job's `webhook.last_error`; never a secret).
    Failed(&'a str),
}

/// When to give up on a delivery, and when to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Attempts after which a failing delivery is dead-lettered.
    pub max_attempts: usize,
    /// Delay before the next attempt of a failed one.
    pub delay: Duration,
}

/// What [`Store::outbox_result`] recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookRecorded {
    /// The job hash expired: dropped from the outbox.
    Gone,
    /// Delivered.
    Delivered,
    /// Failed; another attempt is scheduled.
    Retrying,
    /// Failed for the last time.
    DeadLettered,
}

impl Store {
    /// Leases at most `limit` due deliveries for `lease`; returns their job ids.
    pub async fn outbox_claim<C: ConnectionLike + Send>(&self, con: &mut C, lease: Duration, limit: usize) -> Result<Vec<String>, StoreError> {
        let cmd = scripts().outbox_claim.evalsha(&[self.keys.outbox()]).arg(lease.as_millis() as u64).arg(limit).to_owned();
        Ok(run(con, &cmd).await?)
    }

    /// The job of a leased delivery; `None` when its hash expired or is damaged.
    pub async fn delivery<C: ConnectionLike + Send>(&self, con: &mut C, job_id: &str) -> Result<Option<Delivery>, StoreError> {
        let h: HashMap<String, String> = redis::cmd("HGETALL").arg(self.keys.job(job_id)).query_async(con).await?;
        let Some(view) = JobView::from_hash(&h) else {
            return Ok(None);
        };
        let num = |k: &str| h.get(k).and_then(|v| v.parse().ok());
        Ok(Some(Delivery {
            owner: h.get(f::OWNER).cloned().unwrap_or_default(),
            secret: h.get(f::WH_SECRET).cloned(),
            finished_ms: num(f::FINISHED_AT).unwrap_or(0),
            attempts: h.get(f::WH_ATTEMPTS).and_then(|v| v.parse().ok()).unwrap_or(0),
            view,
        }))
    }

    /// Moves a leased delivery's next claim to `at_ms` (ms since the epoch)
    /// without counting an attempt; a delivery no longer in the outbox stays out.
    pub async fn outbox_defer<C: ConnectionLike + Send>(&self, con: &mut C, job_id: &str, at_ms: u64) -> Result<(), StoreError> {
        let _: i64 = redis::cmd("ZADD").arg(self.keys.outbox()).arg("XX").arg(at_ms).arg(job_id).query_async(con).await?;
        Ok(())
    }

    /// Records one attempt: a delivered job leaves the outbox; a failed one is
    /// retried after `retry.delay`, or dead-lettered at `retry.max_attempts`.
    pub async fn outbox_result<C: ConnectionLike + Send>(
        &self,
        con: &mut C,
        job_id: &str,
        attempt: WebhookAttempt<'_>,
        retry: Retry,
    ) -> Result<WebhookRecorded, StoreError> {
        let (outcome, error) = match attempt {
            WebhookAttempt::Delivered => ("delivered", ""),
            WebhookAttempt::Failed(e) => ("failed", e),
        };
        let cmd = scripts()
            .outbox_result
            .evalsha(&[self.keys.outbox(), self.keys.job(job_id)])
            .arg(job_id)
            .arg(outcome)
            .arg(error)
            .arg(retry.max_attempts)
            .arg(retry.delay.as_millis() as u64)
            .to_owned();
        let reply: String = run(con, &cmd).await?;
        Ok(match reply.as_str() {
            "gone" => WebhookRecorded::Gone,
            webhook::DELIVERED => WebhookRecorded::Delivered,
            webhook::RETRYING => WebhookRecorded::Retrying,
            webhook::DEAD_LETTERED => WebhookRecorded::DeadLettered,
            other => return Err(StoreError::protocol("outbox_result", format!("reply {other:?}"))),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::job::now_ms;
    use crate::store::fields::status;
    use crate::store::testing::{self, TestStore};

    async fn final_job(t: &mut TestStore, id: &str, secret: Option<&str>) {
        let k = t.store.keys().clone();
        let mut fields = vec![(f::ID, id.to_string()), (f::STATUS, status::SUCCEEDED.into()), (f::OWNER, "key_a".into()), (f::FINISHED_AT, "1700000000000".into())];
        fields.extend([(f::WH_STATUS, webhook::PENDING.to_string()), (f::WH_ATTEMPTS, "0".into())]);
        if let Some(s) = secret {
            fields.push((f::WH_SECRET, s.into()));
        }
        let _: () = redis::pipe().hset_multiple(k.job(id), &fields).zadd(k.outbox(), id, now_ms() - 1).query_async(&mut t.con).await.unwrap();
    }

    async fn score(t: &mut TestStore, id: &str) -> Option<i64> {
        redis::cmd("ZSCORE").arg(t.store.keys().outbox()).arg(id).query_async(&mut t.con).await.unwrap()
    }

    async fn field(t: &mut TestStore, id: &str, name: &str) -> Option<String> {
        redis::cmd("HGET").arg(t.store.keys().job(id)).arg(name).query_async(&mut t.con).await.unwrap()
    }

    #[tokio::test]
    async fn claims_are_leases_and_defers_push_them_back() {
        let mut t = testing::store("outbox-claim").await;
        for id in ["a", "b", "c"] {
            final_job(&mut t, id, None).await;
        }
        let _: () = redis::cmd("ZADD").arg(t.store.keys().outbox()).arg(now_ms() + 60_000).arg("later").query_async(&mut t.con).await.unwrap();
        let got = t.store.outbox_claim(&mut t.con, Duration::from_secs(30), 2).await.unwrap();
        assert_eq!(got.len(), 2);
        let leased = score(&mut t, &got[0]).await.unwrap();
        assert!(leased >= now_ms() + 29_000, "leased until now + lease");
        let rest = t.store.outbox_claim(&mut t.con, Duration::from_secs(30), 10).await.unwrap();
        assert_eq!(rest.len(), 1, "leased and future deliveries are not due: {rest:?}");
        assert!(t.store.outbox_claim(&mut t.con, Duration::from_secs(30), 10).await.unwrap().is_empty());
        t.store.outbox_defer(&mut t.con, &rest[0], 5).await.unwrap();
        assert_eq!(score(&mut t, &rest[0]).await, Some(5));
        t.store.outbox_defer(&mut t.con, "not-there", 5).await.unwrap();
        assert_eq!(score(&mut t, "not-there").await, None, "a defer adds nothing");
        t.cleanup().await;
    }

    #[tokio::test]
    async fn a_delivery_carries_the_view_owner_secret_and_attempts() {
        let mut t = testing::store("outbox-delivery").await;
        final_job(&mut t, "a", Some("whsec_t")).await;
        final_job(&mut t, "b", None).await;
        let d = t.store.delivery(&mut t.con, "a").await.unwrap().unwrap();
        assert_eq!((d.owner.as_str(), d.secret.as_deref(), d.finished_ms, d.attempts), ("key_a", Some("whsec_t"), 1_700_000_000_000, 0));
        assert_eq!((d.view.id.as_str(), d.view.webhook.map(|w| w.status)), ("a", Some(webhook::PENDING.to_string())));
        assert_eq!(t.store.delivery(&mut t.con, "b").await.unwrap().unwrap().secret, None);
        assert_eq!(t.store.delivery(&mut t.con, "expired").await.unwrap(), None);
        t.cleanup().await;
    }

    #[tokio::test]
    async fn results_retry_then_dead_letter_or_deliver() {
        let mut t = testing::store("outbox-result").await;
        final_job(&mut t, "a", None).await;
        final_job(&mut t, "b", None).await;
        let retry = Retry { max_attempts: 2, delay: Duration::from_secs(60) };
        let r = t.store.outbox_result(&mut t.con, "a", WebhookAttempt::Failed("receiver answered HTTP 500"), retry).await.unwrap();
        assert_eq!(r, WebhookRecorded::Retrying);
        assert!(score(&mut t, "a").await.unwrap() >= now_ms() + 59_000, "next attempt after the delay");
        assert_eq!(field(&mut t, "a", f::WH_STATUS).await.as_deref(), Some(webhook::RETRYING));
        assert_eq!(field(&mut t, "a", f::WH_LAST_ERROR).await.as_deref(), Some("receiver answered HTTP 500"));
        let r = t.store.outbox_result(&mut t.con, "a", WebhookAttempt::Failed("timed out"), retry).await.unwrap();
        assert_eq!(r, WebhookRecorded::DeadLettered);
        assert_eq!((score(&mut t, "a").await, field(&mut t, "a", f::WH_ATTEMPTS).await.as_deref()), (None, Some("2")));
        assert_eq!(field(&mut t, "a", f::WH_STATUS).await.as_deref(), Some(webhook::DEAD_LETTERED));
        assert_eq!(t.store.outbox_result(&mut t.con, "b", WebhookAttempt::Delivered, retry).await.unwrap(), WebhookRecorded::Delivered);
        assert_eq!(score(&mut t, "b").await, None);
        assert_eq!(field(&mut t, "b", f::WH_STATUS).await.as_deref(), Some(webhook::DELIVERED));
        assert!(field(&mut t, "b", f::WH_DELIVERED_AT).await.is_some());
        let _: () = redis::cmd("ZADD").arg(t.store.keys().outbox()).arg(1).arg("expired").query_async(&mut t.con).await.unwrap();
        assert_eq!(t.store.outbox_result(&mut t.con, "expired", WebhookAttempt::Delivered, retry).await.unwrap(), WebhookRecorded::Gone);
        assert_eq!(score(&mut t, "expired").await, None);
        let exists: bool = redis::cmd("EXISTS").arg(t.store.keys().job("expired")).query_async(&mut t.con).await.unwrap();
        assert!(!exists, "no job hash is recreated");
        t.cleanup().await;
    }
}
