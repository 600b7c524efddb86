//! Who is calling, and may they: the API key lookup and the GCRA rate limiter
//! (`lib/authorize.lua`, run by `authorize.lua` on its own and by
//! `submit.lua` as the first step of a submission).
//!
//! Keys are looked up by their SHA-256 and never reach Redis in clear. The
//! per-tenant keys a request touches (limiter state, backlog) are named by a
//! *subject* the API knows before it asks Redis: the key's hash, or `anon` in
//! `AUTH_MODE=off` (the limiter then counts per client IP). That is what lets a
//! script receive every key in KEYS although the tenant id (`key_…`, the job
//! `owner` that decides visibility) is only read from the key record inside it.

use super::{Keys, Store, StoreError};
use redis::aio::ConnectionLike;
use sha2::{Digest, Sha256};

/// The tenant of every caller in `AUTH_MODE=off`.
pub const ANONYMOUS: &str = "anon";

/// SHA-256 of an API key, hex: the address of its record.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Who the caller says it is, as the API knows it before asking Redis.
#[derive(Debug, Clone, Copy)]
pub enum Credential<'a> {
    /// `AUTH_MODE=required`: the bearer token.
    ApiKey(&'a str),
    /// `AUTH_MODE=off`: the one anonymous tenant, rate-limited per client IP.
    Anonymous {
        /// Client IP (the limiter's subject).
        ip: &'a str,
        /// Requests per second per IP (≤ 0: unlimited).
        rate: f64,
        /// Burst per IP.
        burst: u32,
    },
}

/// Where a credential's state lives, and the script arguments naming its mode.
pub(crate) struct Located {
    pub mode: &'static str,
    /// The key record (never read in anonymous mode, where it names no record).
    pub record: String,
    pub rate_key: String,
    /// Names the tenant's backlog key; stored with each job for the worker.
    pub subject: String,
    pub anon_rate: f64,
    pub anon_burst: u32,
}

impl Credential<'_> {
    /// The tenant when no round trip is needed: an anonymous caller without a limit.
    pub fn unlimited(&self) -> Option<Tenant> {
        match self {
            Credential::Anonymous { rate, .. } if *rate <= 0.0 => Some(Tenant { owner: ANONYMOUS.into(), rate: None }),
            _ => None,
        }
    }

    pub(crate) fn locate(&self, keys: &Keys) -> Located {
        match *self {
            Credential::ApiKey(key) => {
                let h = hash_key(key);
                Located { mode: "key", record: keys.api_key(&h), rate_key: keys.rate_limit_key(&h), subject: h, anon_rate: 0.0, anon_burst: 0 }
            }
            Credential::Anonymous { ip, rate, burst } => Located {
                mode: "anon",
                record: keys.api_key(ANONYMOUS),
                rate_key: keys.rate_limit_ip(ip),
                subject: ANONYMOUS.to_string(),
                anon_rate: rate,
                anon_burst: burst,
            },
        }
    }
}

/// The limiter's state after a request was counted (the `RateLimit-*` headers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateState {
    /// Burst.
    pub limit: u64,
    /// Requests left in the burst.
    pub remaining: u64,
    /// Seconds until the burst is full again.
    pub reset_s: u64,
}

/// An authorized caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    /// Tenant id: the key's id, or [`ANONYMOUS`]. Jobs are visible to their owner only.
    pub owner: String,
    /// Limiter state, when a limit applies.
    pub rate: Option<RateState>,
}

/// A request refused by the limiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// Seconds to wait before retrying (≥ 1).
    pub retry_after_s: u64,
    /// Burst.
    pub limit: u64,
    /// Seconds until the burst is full again (≥ 1).
    pub reset_s: u64,
}

/// What [`Store::authorize`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authorized {
    /// Go ahead.
    Allowed(Tenant),
    /// No such key.
    Unauthorized,
    /// Over the limit.
    RateLimited(Limited),
}

/// The limiter fields every authorizing script answers with: (status, owner,
/// limit, remaining, retry_after_ms, reset_ms), as in `lib/authorize.lua`.
pub(crate) type AuthReply = (String, String, i64, i64, i64, i64);

fn secs(ms: i64) -> u64 {
    (ms.max(0) as u64).div_ceil(1000)
}

/// The tenant of an allowed request, from the limiter fields.
pub(crate) fn tenant_of(owner: String, limit: i64, remaining: i64, reset_ms: i64) -> Tenant {
    let rate = (limit > 0).then(|| RateState { limit: limit as u64, remaining: remaining.max(0) as u64, reset_s: secs(reset_ms) });
    Tenant { owner, rate }
}

/// The refusal of a limited request, from the limiter fields.
pub(crate) fn limited_of(limit: i64, retry_ms: i64, reset_ms: i64) -> Limited {
    Limited { retry_after_s: secs(retry_ms).max(1), limit: limit.max(0) as u64, reset_s: secs(reset_ms).max(1) }
}

fn decide(r: AuthReply) -> Result<Authorized, StoreError> {
    let (status, owner, limit, remaining, retry_ms, reset_ms) = r;
    Ok(match status.as_str() {
        "ok" => Authorized::Allowed(tenant_of(owner, limit, remaining, reset_ms)),
        "limited" => Authorized::RateLimited(limited_of(limit, retry_ms, reset_ms)),
        "unauthorized" => Authorized::Unauthorized,
        other => return Err(StoreError::protocol("authorize", format!("status {other:?}"))),
    })
}

impl Store {
    /// Authenticates and rate-limits one request (`authorize.lua`), for every
    /// route but submissions ([`Store::submit`] does this itself). An
    /// anonymous caller without a limit costs no round trip.
    pub async fn authorize<C: ConnectionLike + Send>(&self, con: &mut C, who: &Credential<'_>) -> Result<Authorized, StoreError> {
        if let Some(tenant) = who.unlimited() {
            return Ok(Authorized::Allowed(tenant));
        }
        let at = who.locate(&self.keys);
        let cmd = super::scripts::scripts()
            .authorize
            .evalsha(&[&at.record, &at.rate_key])
            .arg(at.mode)
            .arg(at.anon_rate)
            .arg(at.anon_burst)
            .to_owned();
        let reply: AuthReply = super::scripts::run(con, &cmd).await?;
        decide(reply)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::testing;

    #[tokio::test]
    async fn keys_are_looked_up_by_hash_and_limited_per_key() {
        let mut t = testing::store("auth").await;
        let created = t.store.create_key(&mut t.con, "a", 1.0, 2).await.unwrap();
        let who = Credential::ApiKey(&created.key);
        let first = t.store.authorize(&mut t.con, &who).await.unwrap();
        let Authorized::Allowed(tenant) = first else { panic!("{first:?}") };
        assert_eq!(tenant.owner, created.id);
        assert_eq!(tenant.rate.map(|r| (r.limit, r.remaining)), Some((2, 1)));
        assert!(matches!(t.store.authorize(&mut t.con, &who).await.unwrap(), Authorized::Allowed(_)));
        let third = t.store.authorize(&mut t.con, &who).await.unwrap();
        assert!(matches!(third, Authorized::RateLimited(Limited { retry_after_s: 1, limit: 2, .. })), "{third:?}");
        assert_eq!(t.store.authorize(&mut t.con, &Credential::ApiKey("pcg_nope")).await.unwrap(), Authorized::Unauthorized);
        // The limiter state is named by the key's hash; the key never reaches Redis in clear.
        let ttl: i64 = redis::cmd("PTTL").arg(t.store.keys().rate_limit_key(&hash_key(&created.key))).query_async(&mut t.con).await.unwrap();
        assert!(ttl > 0, "{ttl}");
        t.cleanup().await;
    }

    #[tokio::test]
    async fn anonymous_callers_are_limited_per_ip_or_not_at_all() {
        let mut t = testing::store("anon").await;
        let a = Credential::Anonymous { ip: "10.0.0.1", rate: 1.0, burst: 1 };
        let b = Credential::Anonymous { ip: "10.0.0.2", rate: 1.0, burst: 1 };
        assert!(matches!(t.store.authorize(&mut t.con, &a).await.unwrap(), Authorized::Allowed(Tenant { ref owner, .. }) if owner == ANONYMOUS));
        assert!(matches!(t.store.authorize(&mut t.con, &a).await.unwrap(), Authorized::RateLimited(_)));
        assert!(matches!(t.store.authorize(&mut t.con, &b).await.unwrap(), Authorized::Allowed(_)), "another IP has its own budget");
        let free = Credential::Anonymous { ip: "10.0.0.1", rate: 0.0, burst: 0 };
        assert_eq!(t.store.authorize(&mut t.con, &free).await.unwrap(), Authorized::Allowed(Tenant { owner: ANONYMOUS.into(), rate: None }));
        t.cleanup().await;
    }
}
