//! The Redis connection pool both binaries use (deadpool-redis over
//! multiplexed connections), with bounded connect, response and checkout
//! timeouts so that a Redis outage turns into a fast, typed error (the API
//! answers 503 within a second) rather than a hung request.

use deadpool_redis::{Manager, Pool, Runtime, Timeouts};
use std::time::Duration;

/// Pool settings.
#[derive(Debug, Clone, Copy)]
pub struct PoolOptions {
    /// Connections in the pool.
    pub max_size: usize,
    /// Longest wait for one reply (must exceed any BLOCK used on the pool).
    pub response_timeout: Duration,
    /// Longest wait for a TCP connect / checkout.
    pub connect_timeout: Duration,
}

/// Builds a pool; fails only on a malformed URL (connections are made lazily).
pub fn pool(url: &str, o: PoolOptions) -> Result<Pool, String> {
    let cfg = redis::AsyncConnectionConfig::new()
        .set_response_timeout(Some(o.response_timeout))
        .set_connection_timeout(Some(o.connect_timeout));
    let manager = Manager::new_with_config(url, cfg).map_err(|e| format!("REDIS_URL `{}`: {e}", redact(url)))?;
    Pool::builder(manager)
        .max_size(o.max_size)
        .runtime(Runtime::Tokio1)
        .timeouts(Timeouts {
            wait: Some(o.connect_timeout),
            create: Some(o.connect_timeout),
            recycle: Some(o.connect_timeout),
        })
        .build()
        .map_err(|e| format!("redis pool: {e}"))
}

/// The URL with any password replaced, for logs and errors.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_never_reach_logs() {
        assert_eq!(super::redact("redis://:hunter2@h:6379/0"), "redis://:***@h:6379/0");
        assert_eq!(super::redact("redis://h:6379"), "redis://h:6379");
    }
}
