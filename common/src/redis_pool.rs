//! The Redis connection pool both binaries use: deadpool over
//! deadpool-redis's multiplexed connections, with bounded connect, response
//! and checkout timeouts so a Redis outage becomes a fast, typed error (the
//! API answers 503 within a second) rather than a hung request.
//!
//! Why not `deadpool_redis::Pool` as is: its recycle step sends `UNWATCH` +
//! `PING` on *every* checkout, doubling the round trips of the submit path.
//! This pool's connections remember whether they failed at the connection
//! level; recycling drops those, pings only connections idle for a while,
//! and hands recently healthy ones straight back. A broken connection is
//! therefore never reused, and a healthy busy one costs no extra round trip.
//!
//! Callers that never block a connection (the API: no `BLOCK` reads) take a
//! [`shared`] handle instead of holding a checkout: a clone of a pooled
//! connection's multiplexed handle, the checkout returned at once. Concurrent
//! requests then pipeline onto the same sockets, so Redis and the API write
//! many commands and replies per syscall instead of one each (measured: the
//! API spent half its CPU in `writev` with one command per write). A failure
//! seen through a shared handle marks the pooled connection broken all the same.

use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{Cmd, Pipeline, RedisError, RedisFuture, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Idle time after which a connection is pinged before reuse.
const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// A pooled connection that remembers connection-level failures (shared by
/// every clone: see [`shared`]).
#[derive(Clone)]
pub struct Tracked {
    conn: MultiplexedConnection,
    broken: Arc<AtomicBool>,
}

impl Tracked {
    fn note(&self, e: &RedisError) {
        if breaks_connection(e) {
            self.broken.store(true, Ordering::Relaxed);
        }
    }
}

fn breaks_connection(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_timeout() || e.is_unrecoverable_error()
}

impl ConnectionLike for Tracked {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let r = self.conn.req_packed_command(cmd).await;
            if let Err(e) = &r {
                self.note(e);
            }
            r
        })
    }

    fn req_packed_commands<'a>(&'a mut self, pipeline: &'a Pipeline, offset: usize, count: usize) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let r = self.conn.req_packed_commands(pipeline, offset, count).await;
            if let Err(e) = &r {
                self.note(e);
            }
            r
        })
    }

    fn get_db(&self) -> i64 {
        self.conn.get_db()
    }
}

/// Creates connections through deadpool-redis and recycles them cheaply.
pub struct Manager {
    inner: deadpool_redis::Manager,
}

impl managed::Manager for Manager {
    type Type = Tracked;
    type Error = RedisError;

    async fn create(&self) -> Result<Tracked, RedisError> {
        let conn = managed::Manager::create(&self.inner).await?;
        Ok(Tracked { conn, broken: Arc::new(AtomicBool::new(false)) })
    }

    // A connection health check below the job protocol, so outside common::store (clippy.toml).
    #[allow(clippy::disallowed_methods)]
    async fn recycle(&self, t: &mut Tracked, m: &Metrics) -> RecycleResult<RedisError> {
        if t.broken.load(Ordering::Relaxed) {
            return Err(RecycleError::message("connection failed; discarded"));
        }
        if m.last_used() < PING_AFTER_IDLE {
            return Ok(());
        }
        let pong: String = redis::cmd("PING").query_async(&mut t.conn).await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(RecycleError::message("unexpected PING reply"))
        }
    }
}

/// The pool type.
pub type Pool = managed::Pool<Manager>;
/// A checked-out connection (`&mut *conn` is a `ConnectionLike`).
pub type Connection = managed::Object<Manager>;
/// Checkout error.
pub type PoolError = managed::PoolError<RedisError>;

/// A handle on a pooled connection for commands that never block: the
/// checkout goes back to the pool at once, and concurrent callers pipeline
/// onto the same connection (see the module doc). Never use it for `BLOCK`
/// reads: they would stall every request sharing the socket.
pub async fn shared(pool: &Pool) -> Result<Tracked, PoolError> {
    let pooled = pool.get().await?;
    Ok(Tracked::clone(&pooled))
}

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
    let inner = deadpool_redis::Manager::new_with_config(url, cfg).map_err(|e| format!("REDIS_URL `{}`: {e}", redact(url)))?;
    Pool::builder(Manager { inner })
        .max_size(o.max_size)
        .runtime(deadpool::Runtime::Tokio1)
        .timeouts(managed::Timeouts {
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
