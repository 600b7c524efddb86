//! One submission, one round trip (`submit.lua`): the key lookup and rate
//! limit, the idempotency answer, global admission (`MAX_BACKLOG`,
//! `STREAM_MAXLEN`), the per-key quota (`MAX_BACKLOG_PER_KEY`), then the job
//! hash, the stream entry, the entry index and the tenant's backlog.
//!
//! Idempotency without a separate record: a submission with an
//! Idempotency-Key gets a job id derived from the tenant's subject and the
//! key ([`idempotent_job_id`]), so the API names the job hash before asking,
//! and that hash is the record. A replay is answered from it in the same call,
//! with the job's current status, and no key is built inside the script. The
//! record lasts as long as the job (`RESULT_TTL_S` from creation). Two tenants
//! using the same Idempotency-Key get different ids (different subjects).

use super::auth::{limited_of, tenant_of, Credential, Limited, Tenant};
use super::{scripts::scripts, Store, StoreError};
use crate::job::{new_job_id, now_ms, JobStatus, RequestEcho};
use crate::request::ValidRequest;
use redis::aio::ConnectionLike;
use sha2::{Digest, Sha256};

/// Admission limits of a submission, from the API's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    /// Lifetime of the job hash and of the tenant's backlog key, s (`RESULT_TTL_S`).
    pub ttl_s: u64,
    /// Hard cap on the stream's length (`STREAM_MAXLEN`, 0 = none).
    pub stream_cap: u64,
    /// Most entries not yet acknowledged, queued or being generated (`MAX_BACKLOG`, 0 = none).
    pub max_backlog: u64,
    /// Most queued-or-running jobs per API key (`MAX_BACKLOG_PER_KEY`, 0 = none).
    /// Not applied to anonymous callers: in `AUTH_MODE=off` there is one tenant,
    /// and the global backlog already bounds it. The tenant's backlog set is
    /// written only when a quota applies (nothing else reads it), so jobs
    /// queued while the quota was off are not counted after it is turned on.
    pub per_key_quota: u64,
}

/// An Idempotency-Key and what makes two requests "the same".
#[derive(Debug, Clone, Copy)]
pub struct Idempotency<'a> {
    /// The header's bytes.
    pub key: &'a [u8],
    /// Canonical bytes of the request (same parsed fields, whatever the formatting).
    pub fingerprint: &'a [u8],
}

/// One submission.
#[derive(Debug, Clone, Copy)]
pub struct Submission<'a> {
    /// The caller.
    pub who: Credential<'a>,
    /// The validated request.
    pub request: &'a ValidRequest,
    /// Idempotency-Key, if sent.
    pub idempotency: Option<Idempotency<'a>>,
    /// Webhook signing secret used when the tenant has none of its own ("" = the dispatcher's).
    pub webhook_secret: &'a str,
    /// Limits.
    pub admission: Admission,
}

/// What a submission did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submitted {
    /// Queued as a new job.
    Created {
        /// Job id.
        id: String,
        /// The caller.
        tenant: Tenant,
    },
    /// The Idempotency-Key was used before with the same request: that job, as it is now.
    Replayed {
        /// Job id.
        id: String,
        /// Its current status.
        status: JobStatus,
        /// The caller.
        tenant: Tenant,
    },
    /// The Idempotency-Key was used before with another request.
    Conflict {
        /// The earlier job.
        id: String,
    },
    /// Refused: the stream or the group's backlog is at its cap.
    Overloaded {
        /// The backlog (or stream length) that refused it.
        backlog: u64,
    },
    /// Refused: the tenant already has its quota of jobs queued or running.
    Quota {
        /// The tenant's queued-or-running jobs.
        queued: u64,
    },
    /// No such API key.
    Unauthorized,
    /// Over the rate limit.
    RateLimited(Limited),
}

/// Job id of a submission with an Idempotency-Key: 128 bits of
/// SHA-256(subject, key) in the ULID text form of ordinary ids (26 characters,
/// lowercase), so it passes the same checks and routes.
pub fn idempotent_job_id(subject: &str, key: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(b"couplet-idempotency\0");
    h.update(subject.as_bytes());
    h.update(b"\0");
    h.update(key);
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    ulid::Ulid::from(u128::from_be_bytes(b)).to_string().to_lowercase()
}

/// `submit.lua`'s reply: the limiter fields, the outcome and its value.
type SubmitReply = (String, String, i64, i64, i64, i64, String);

impl Store {
    /// Submits one job (see the module doc); one EVALSHA.
    pub async fn submit<C: ConnectionLike + Send>(&self, con: &mut C, s: &Submission<'_>) -> Result<Submitted, StoreError> {
        let at = s.who.locate(&self.keys);
        let (id, fingerprint) = match s.idempotency {
            Some(i) => (idempotent_job_id(&at.subject, i.key), hex::encode(Sha256::digest(i.fingerprint))),
            None => (new_job_id(), String::new()),
        };
        let callback = s.request.callback_url.is_some();
        let quota = if matches!(s.who, Credential::Anonymous { .. }) { 0 } else { s.admission.per_key_quota };
        let echo = serde_json::to_string(&RequestEcho::from(s.request)).map_err(|e| StoreError::protocol("submit", e))?;
        let internal = serde_json::to_string(s.request).map_err(|e| StoreError::protocol("submit", e))?;
        let (job, stream, index, backlog) = (self.keys.job(&id), self.keys.stream(), self.keys.entries(), self.keys.backlog(&at.subject));
        let cmd = scripts()
            .submit
            .evalsha(&[&at.record, &at.rate_key, &job, &stream, &index, &backlog])
            .arg(at.mode)
            .arg(at.anon_rate)
            .arg(at.anon_burst)
            .arg(&id)
            .arg(echo)
            .arg(internal)
            .arg(now_ms())
            .arg(s.admission.ttl_s)
            .arg(s.admission.stream_cap)
            .arg(s.admission.max_backlog)
            .arg(quota)
            .arg(&fingerprint)
            .arg(if callback { "1" } else { "0" })
            .arg(if callback { s.webhook_secret } else { "" })
            .arg(&at.subject)
            .to_owned();
        let (status, value, limit, remaining, retry_ms, reset_ms, owner): SubmitReply = super::scripts::run(con, &cmd).await?;
        let tenant = || tenant_of(owner.clone(), limit, remaining, reset_ms);
        let count = |v: &str| v.parse::<u64>().map_err(|_| StoreError::protocol("submit", format!("{status} {v:?}")));
        Ok(match status.as_str() {
            "created" => Submitted::Created { id, tenant: tenant() },
            "replay" => {
                let status = JobStatus::parse(&value).ok_or_else(|| StoreError::protocol("submit", format!("replayed job status {value:?}")))?;
                Submitted::Replayed { id, status, tenant: tenant() }
            }
            "conflict" => Submitted::Conflict { id },
            "full" => Submitted::Overloaded { backlog: count(&value)? },
            "quota" => Submitted::Quota { queued: count(&value)? },
            "limited" => Submitted::RateLimited(limited_of(limit, retry_ms, reset_ms)),
            "unauthorized" => Submitted::Unauthorized,
            other => return Err(StoreError::protocol("submit", format!("status {other:?}"))),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::request::CoupletRequest;
    use crate::store::fields::{entry, job as jf};
    use crate::store::testing;
    use std::collections::HashMap;

    fn request(theme: &str, callback: Option<&str>) -> ValidRequest {
        CoupletRequest { theme: Some(theme.into()), callback_url: callback.map(String::from), ..Default::default() }.validate().unwrap()
    }

    const OPEN: Admission = Admission { ttl_s: 600, stream_cap: 0, max_backlog: 0, per_key_quota: 0 };

    fn anon() -> Credential<'static> {
        Credential::Anonymous { ip: "10.1.1.1", rate: 0.0, burst: 0 }
    }

    fn sub<'a>(who: Credential<'a>, r: &'a ValidRequest, idem: Option<Idempotency<'a>>, admission: Admission) -> Submission<'a> {
        Submission { who, request: r, idempotency: idem, webhook_secret: "whsec_fallback", admission }
    }

    #[tokio::test]
    async fn a_submission_writes_the_job_the_entry_the_index_and_the_backlog() {
        let mut t = testing::store("submit").await;
        t.store.ensure_group(&mut t.con).await.unwrap();
        let k = t.store.create_key(&mut t.con, "a", 100.0, 10).await.unwrap();
        let r = request("春", Some("https://example.com/hook"));
        let quota = Admission { per_key_quota: 5, ..OPEN };
        let out = t.store.submit(&mut t.con, &sub(Credential::ApiKey(&k.key), &r, None, quota)).await.unwrap();
        let Submitted::Created { id, tenant } = out else { panic!("{out:?}") };
        assert_eq!(tenant.owner, k.id);
        assert_eq!(tenant.rate.map(|r| (r.limit, r.remaining)), Some((10, 9)));
        let keys = t.store.keys();
        let h: HashMap<String, String> = redis::cmd("HGETALL").arg(keys.job(&id)).query_async(&mut t.con).await.unwrap();
        assert_eq!(h[jf::STATUS], "queued");
        assert_eq!(h[jf::OWNER], k.id);
        let subject = crate::store::auth::hash_key(&k.key);
        assert_eq!(h[jf::BACKLOG], subject);
        assert_eq!(h[jf::CALLBACK], "1");
        assert_eq!(h[jf::WH_SECRET], k.webhook_secret, "the tenant's own secret signs its webhooks");
        assert!(!h.contains_key(jf::IDEM_BODY));
        let ttl: i64 = redis::cmd("TTL").arg(keys.job(&id)).query_async(&mut t.con).await.unwrap();
        assert!(ttl > 0 && ttl <= 600);
        let entries: redis::streams::StreamRangeReply = redis::cmd("XRANGE").arg(keys.stream()).arg("-").arg("+").query_async(&mut t.con).await.unwrap();
        let e = &entries.ids[0];
        assert_eq!(e.get::<String>(entry::JOB).as_deref(), Some(id.as_str()));
        assert_eq!(e.get::<String>(entry::OWNER).as_deref(), Some(k.id.as_str()));
        assert_eq!(e.get::<String>(entry::BACKLOG).as_deref(), Some(subject.as_str()));
        let req: ValidRequest = serde_json::from_str(&e.get::<String>(entry::REQ).unwrap()).unwrap();
        assert_eq!(req, r);
        let indexed: Option<String> = redis::cmd("HGET").arg(keys.entries()).arg(&e.id).query_async(&mut t.con).await.unwrap();
        assert_eq!(indexed.as_deref(), Some(id.as_str()));
        let (n, bttl): (u64, i64) = redis::pipe().zcard(keys.backlog(&subject)).ttl(keys.backlog(&subject)).query_async(&mut t.con).await.unwrap();
        assert_eq!(n, 1);
        assert!(bttl > 0);
        // Anonymous: the configured secret and the `anon` tenant; no quota applies, so no backlog set is written.
        let out = t.store.submit(&mut t.con, &sub(anon(), &r, None, quota)).await.unwrap();
        let Submitted::Created { id, tenant } = out else { panic!("{out:?}") };
        assert_eq!((tenant.owner.as_str(), tenant.rate), ("anon", None));
        let h: HashMap<String, String> = redis::cmd("HGETALL").arg(keys.job(&id)).query_async(&mut t.con).await.unwrap();
        assert_eq!((h[jf::WH_SECRET].as_str(), h[jf::BACKLOG].as_str()), ("whsec_fallback", "anon"));
        let n: u64 = redis::cmd("EXISTS").arg(keys.backlog("anon")).query_async(&mut t.con).await.unwrap();
        assert_eq!(n, 0, "no quota reads an anonymous backlog");
        t.cleanup().await;
    }

    #[tokio::test]
    async fn idempotent_submissions_replay_with_the_status_or_conflict() {
        let mut t = testing::store("idem").await;
        let r = request("春", None);
        let other = request("福", None);
        let idem = |fp: &'static [u8]| Some(Idempotency { key: b"order-1", fingerprint: fp });
        let Submitted::Created { id, .. } = t.store.submit(&mut t.con, &sub(anon(), &r, idem(b"A"), OPEN)).await.unwrap() else { panic!() };
        assert_eq!(id, idempotent_job_id("anon", b"order-1"));
        assert!(crate::job::is_job_id(&id), "{id}");
        let again = t.store.submit(&mut t.con, &sub(anon(), &r, idem(b"A"), OPEN)).await.unwrap();
        assert!(matches!(&again, Submitted::Replayed { id: i, status: JobStatus::Queued, .. } if *i == id), "{again:?}");
        let _: () = redis::cmd("HSET").arg(t.store.keys().job(&id)).arg(jf::STATUS).arg("succeeded").query_async(&mut t.con).await.unwrap();
        let again = t.store.submit(&mut t.con, &sub(anon(), &r, idem(b"A"), OPEN)).await.unwrap();
        assert!(matches!(again, Submitted::Replayed { status: JobStatus::Succeeded, .. }), "the replay shows the job as it is now: {again:?}");
        let clash = t.store.submit(&mut t.con, &sub(anon(), &other, idem(b"B"), OPEN)).await.unwrap();
        assert_eq!(clash, Submitted::Conflict { id: id.clone() });
        let n: u64 = redis::cmd("XLEN").arg(t.store.keys().stream()).query_async(&mut t.con).await.unwrap();
        assert_eq!(n, 1, "replays and conflicts queue nothing");
        // Another tenant with the same Idempotency-Key gets its own job.
        let k = t.store.create_key(&mut t.con, "b", 0.0, 0).await.unwrap();
        let theirs = t.store.submit(&mut t.con, &sub(Credential::ApiKey(&k.key), &r, idem(b"A"), OPEN)).await.unwrap();
        assert!(matches!(&theirs, Submitted::Created { id: i, .. } if *i != id), "{theirs:?}");
        t.cleanup().await;
    }

    #[tokio::test]
    async fn admission_refuses_past_the_caps_and_the_quota() {
        let mut t = testing::store("admit").await;
        t.store.ensure_group(&mut t.con).await.unwrap();
        let r = request("春", None);
        let k = t.store.create_key(&mut t.con, "a", 0.0, 0).await.unwrap();
        let key = Credential::ApiKey(&k.key);
        let quota = Admission { per_key_quota: 2, ..OPEN };
        for _ in 0..2 {
            assert!(matches!(t.store.submit(&mut t.con, &sub(key, &r, None, quota)).await.unwrap(), Submitted::Created { .. }));
        }
        assert_eq!(t.store.submit(&mut t.con, &sub(key, &r, None, quota)).await.unwrap(), Submitted::Quota { queued: 2 });
        // A member older than the TTL (its job hash has expired) is purged instead of refusing.
        let subject = crate::store::auth::hash_key(&k.key);
        let _: () = redis::cmd("ZADD").arg(t.store.keys().backlog(&subject)).arg(1).arg("expired-job").query_async(&mut t.con).await.unwrap();
        let three = Admission { per_key_quota: 3, ..OPEN };
        assert!(matches!(t.store.submit(&mut t.con, &sub(key, &r, None, three)).await.unwrap(), Submitted::Created { .. }));
        assert_eq!(t.store.submit(&mut t.con, &sub(key, &r, None, three)).await.unwrap(), Submitted::Quota { queued: 3 });
        // The quota is per key, and not applied to the anonymous tenant.
        assert!(matches!(t.store.submit(&mut t.con, &sub(anon(), &r, None, quota)).await.unwrap(), Submitted::Created { .. }));
        // Four entries are in the stream now, none acknowledged.
        let capped = Admission { stream_cap: 4, ..OPEN };
        assert_eq!(t.store.submit(&mut t.con, &sub(anon(), &r, None, capped)).await.unwrap(), Submitted::Overloaded { backlog: 4 });
        let backlog = Admission { max_backlog: 2, ..OPEN };
        assert_eq!(t.store.submit(&mut t.con, &sub(anon(), &r, None, backlog)).await.unwrap(), Submitted::Overloaded { backlog: 4 });
        assert!(matches!(t.store.submit(&mut t.con, &sub(anon(), &r, None, Admission { max_backlog: 5, ..OPEN })).await.unwrap(), Submitted::Created { .. }));
        t.cleanup().await;
    }

    #[tokio::test]
    async fn unknown_keys_and_limited_callers_are_refused_before_anything_is_written() {
        let mut t = testing::store("refuse").await;
        let r = request("春", None);
        assert_eq!(t.store.submit(&mut t.con, &sub(Credential::ApiKey("pcg_nope"), &r, None, OPEN)).await.unwrap(), Submitted::Unauthorized);
        let limited = Credential::Anonymous { ip: "10.2.2.2", rate: 1.0, burst: 1 };
        assert!(matches!(t.store.submit(&mut t.con, &sub(limited, &r, None, OPEN)).await.unwrap(), Submitted::Created { .. }));
        let out = t.store.submit(&mut t.con, &sub(limited, &r, None, OPEN)).await.unwrap();
        assert!(matches!(out, Submitted::RateLimited(Limited { retry_after_s: 1, limit: 1, .. })), "{out:?}");
        let n: u64 = redis::cmd("XLEN").arg(t.store.keys().stream()).query_async(&mut t.con).await.unwrap();
        assert_eq!(n, 1);
        t.cleanup().await;
    }
}
