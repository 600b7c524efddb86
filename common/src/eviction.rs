//! The start-up check of Redis's `maxmemory-policy`, shared by the API and
//! the worker.
//!
//! Every job lives in Redis only (its hash, its stream entry, its entry-index
//! field). A Redis that evicts keys under memory pressure (any policy other
//! than `noeviction`) drops those silently: a job hash vanishes mid-flight, an
//! idempotency record disappears and a retry runs twice. With `noeviction`
//! Redis refuses writes instead, which the API turns into 503s that clients
//! retry. So both binaries look at the policy once at start:
//!
//! - `refuse` (the default): exit with a message naming the policy and the fix;
//! - `warn`: log an error and carry on (for operators who size memory so that
//!   eviction never happens and accept the risk);
//! - `off`: skip the check (e.g. a managed Redis that disables `CONFIG`).
//!
//! A Redis that cannot be reached, or that refuses `CONFIG GET` (renamed or
//! disabled on managed services), only logs a warning: the binaries must keep
//! starting through a Redis outage, and an unknown policy is not a known bad one.

use std::str::FromStr;
use std::time::Duration;

/// Environment variable (and `--redis-eviction-check` flag of the API) holding the mode.
pub const ENV: &str = "REDIS_EVICTION_CHECK";

/// The only policy under which Redis never drops a key to make room.
pub const SAFE_POLICY: &str = "noeviction";

/// What to do when Redis may evict keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EvictionCheck {
    /// Refuse to start (default).
    #[default]
    Refuse,
    /// Log an error and start anyway.
    Warn,
    /// Do not check.
    Off,
}

impl FromStr for EvictionCheck {
    type Err = EvictionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "refuse" => Ok(EvictionCheck::Refuse),
            "warn" => Ok(EvictionCheck::Warn),
            "off" => Ok(EvictionCheck::Off),
            _ => Err(EvictionError::BadMode(s.to_string())),
        }
    }
}

/// Why the check stopped the start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvictionError {
    /// Redis may evict keys, and the mode is `refuse`.
    #[error(
        "Redis maxmemory-policy is `{policy}`, not `noeviction`: under memory pressure Redis would silently drop job hashes \
         and queue entries. Set `maxmemory-policy noeviction` (redis.conf or `CONFIG SET maxmemory-policy noeviction`), \
         or start with {ENV}=warn to run anyway"
    )]
    Evicting {
        /// The policy Redis reported.
        policy: String,
    },
    /// The mode is not one of refuse, warn, off.
    #[error("{ENV} `{0}` must be refuse, warn or off")]
    BadMode(String),
}

impl EvictionError {
    /// Stable machine-readable type (log field).
    pub fn kind(&self) -> &'static str {
        match self {
            EvictionError::Evicting { .. } => "redis_evicting",
            EvictionError::BadMode(_) => "invalid_config",
        }
    }
}

/// Reads `maxmemory-policy` from the Redis at `redis_url` and applies `mode`.
/// Unreachable Redis or a refused `CONFIG GET` only warn (see the module doc).
pub async fn check(redis_url: &str, mode: EvictionCheck) -> Result<(), EvictionError> {
    if mode == EvictionCheck::Off {
        return Ok(());
    }
    let policy = match tokio::time::timeout(Duration::from_secs(3), read_policy(redis_url)).await {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "could not read Redis maxmemory-policy; skipping the eviction check");
            return Ok(());
        }
        Err(_) => {
            tracing::warn!("Redis did not answer CONFIG GET maxmemory-policy in 3 s; skipping the eviction check");
            return Ok(());
        }
    };
    verdict(&policy, mode)
}

/// The decision for a known policy.
fn verdict(policy: &str, mode: EvictionCheck) -> Result<(), EvictionError> {
    if policy.eq_ignore_ascii_case(SAFE_POLICY) || mode == EvictionCheck::Off {
        return Ok(());
    }
    let e = EvictionError::Evicting { policy: policy.to_string() };
    match mode {
        EvictionCheck::Refuse => Err(e),
        _ => {
            tracing::error!(error.type = e.kind(), policy, "{e}");
            Ok(())
        }
    }
}

// Reads the server's configuration, not the job protocol, so outside common::store (clippy.toml).
#[allow(clippy::disallowed_methods)]
async fn read_policy(redis_url: &str) -> redis::RedisResult<String> {
    let client = redis::Client::open(redis_url)?;
    let mut con = client.get_multiplexed_async_connection().await?;
    let reply: Vec<String> = redis::cmd("CONFIG").arg("GET").arg("maxmemory-policy").query_async(&mut con).await?;
    // CONFIG GET answers [name, value]; an empty reply means the parameter is unknown.
    reply.get(1).cloned().ok_or_else(|| redis::RedisError::from((redis::ErrorKind::Parse, "empty CONFIG GET reply")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_default_to_refuse() {
        assert_eq!("warn".parse(), Ok(EvictionCheck::Warn));
        assert_eq!(" Refuse ".parse(), Ok(EvictionCheck::Refuse));
        assert_eq!("off".parse(), Ok(EvictionCheck::Off));
        assert!(matches!("loud".parse::<EvictionCheck>(), Err(EvictionError::BadMode(_))));
        assert_eq!(EvictionCheck::default(), EvictionCheck::Refuse);
    }

    #[test]
    fn only_noeviction_passes_in_refuse_mode() {
        assert_eq!(verdict("noeviction", EvictionCheck::Refuse), Ok(()));
        let e = verdict("allkeys-lru", EvictionCheck::Refuse).expect_err("evicting policy refused");
        assert_eq!(e.kind(), "redis_evicting");
        assert!(e.to_string().contains("`allkeys-lru`"), "{e}");
        assert_eq!(verdict("volatile-lru", EvictionCheck::Warn), Ok(()));
        assert_eq!(verdict("allkeys-lru", EvictionCheck::Off), Ok(()));
    }
}
