//! Reading and canceling one job for its owner. A job belongs to the tenant
//! that submitted it (`owner` in the job hash); to anyone else it does not
//! exist, whether it is there or not.

use super::fields::job as f;
use super::{scripts::scripts, Store, StoreError};
use crate::job::{is_job_id, now_ms, JobView};
use redis::aio::ConnectionLike;
use std::collections::HashMap;

/// What [`Store::cancel`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Canceled {
    /// Canceled; the job as it is now.
    Canceled(Box<JobView>),
    /// No such job for this owner.
    NotFound,
    /// The job has left `queued`: its status.
    NotCancelable(String),
}

fn owned_view(h: &HashMap<String, String>, owner: &str) -> Option<JobView> {
    if h.get(f::OWNER).map(String::as_str) != Some(owner) {
        return None;
    }
    JobView::from_hash(h)
}

impl Store {
    /// Job `id` as its owner sees it; `None` when it does not exist, is not
    /// `owner`'s, is unreadable, or `id` is not a job id.
    pub async fn job<C: ConnectionLike + Send>(&self, con: &mut C, id: &str, owner: &str) -> Result<Option<JobView>, StoreError> {
        if !is_job_id(id) {
            return Ok(None);
        }
        let h: HashMap<String, String> = redis::cmd("HGETALL").arg(self.keys.job(id)).query_async(con).await?;
        Ok(owned_view(&h, owner))
    }

    /// Cancels `owner`'s job `id` if it is still queued (`cancel.lua`): the
    /// job becomes `canceled`, its webhook is queued, waiters are woken.
    pub async fn cancel<C: ConnectionLike + Send>(&self, con: &mut C, id: &str, owner: &str) -> Result<Canceled, StoreError> {
        if !is_job_id(id) {
            return Ok(Canceled::NotFound);
        }
        let cmd = scripts()
            .cancel
            .evalsha(&[self.keys.job(id), self.keys.outbox()])
            .arg(owner)
            .arg(now_ms())
            .arg(self.keys.done_channel())
            .arg(id)
            .to_owned();
        let reply: Vec<redis::Value> = super::scripts::run(con, &cmd).await?;
        let status: String = match reply.first() {
            Some(v) => redis::from_redis_value_ref(v).map_err(|e| StoreError::protocol("cancel", e))?,
            None => return Err(StoreError::protocol("cancel", "empty reply")),
        };
        Ok(match (status.as_str(), reply.get(1)) {
            ("ok", Some(hash)) => {
                let h: HashMap<String, String> = redis::from_redis_value_ref(hash).map_err(|e| StoreError::protocol("cancel", e))?;
                owned_view(&h, owner).map_or(Canceled::NotFound, |v| Canceled::Canceled(Box::new(v)))
            }
            ("not_cancelable", Some(st)) => Canceled::NotCancelable(redis::from_redis_value_ref(st).map_err(|e| StoreError::protocol("cancel", e))?),
            ("not_found", _) => Canceled::NotFound,
            (other, _) => return Err(StoreError::protocol("cancel", format!("status {other:?}"))),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::job::JobStatus;
    use crate::request::CoupletRequest;
    use crate::store::auth::Credential;
    use crate::store::submit::{Admission, Submission, Submitted};
    use crate::store::testing;

    #[tokio::test]
    async fn owners_read_and_cancel_their_queued_jobs_and_nobody_else_does() {
        let mut t = testing::store("jobs").await;
        let r = CoupletRequest { theme: Some("春".into()), ..Default::default() }.validate().unwrap();
        let k = t.store.create_key(&mut t.con, "a", 0.0, 0).await.unwrap();
        let s = Submission {
            who: Credential::ApiKey(&k.key),
            request: &r,
            idempotency: None,
            webhook_secret: "",
            admission: Admission { ttl_s: 600, stream_cap: 0, max_backlog: 0, per_key_quota: 0 },
        };
        let Submitted::Created { id, .. } = t.store.submit(&mut t.con, &s).await.unwrap() else { panic!() };
        let v = t.store.job(&mut t.con, &id, &k.id).await.unwrap().unwrap();
        assert_eq!((v.id.as_str(), v.status), (id.as_str(), JobStatus::Queued));
        assert!(t.store.job(&mut t.con, &id, "key_other").await.unwrap().is_none(), "another tenant's job is not found");
        assert!(t.store.job(&mut t.con, "../etc", &k.id).await.unwrap().is_none());
        assert_eq!(t.store.cancel(&mut t.con, &id, "key_other").await.unwrap(), Canceled::NotFound);
        let done = t.store.cancel(&mut t.con, &id, &k.id).await.unwrap();
        let Canceled::Canceled(v) = done else { panic!("{done:?}") };
        assert_eq!(v.status, JobStatus::Canceled);
        assert!(v.finished_at.is_some());
        assert_eq!(t.store.cancel(&mut t.con, &id, &k.id).await.unwrap(), Canceled::NotCancelable("canceled".into()));
        assert_eq!(t.store.cancel(&mut t.con, &crate::job::new_job_id(), &k.id).await.unwrap(), Canceled::NotFound);
        t.cleanup().await;
    }
}
