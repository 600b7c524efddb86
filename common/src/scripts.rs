//! The Lua scripts that make each state change one atomic round trip.
//!
//! Scripts are embedded with `include_str!` and called with EVALSHA. Single
//! calls use `redis::Script` (which loads on NOSCRIPT by itself); batches go
//! through [`pipeline_with_reload`], which loads every script and retries once
//! when Redis answers NOSCRIPT (as it does after a restart empties its
//! script cache).

use redis::{Cmd, Pipeline, Script};
use std::sync::OnceLock;

/// One embedded script.
pub struct Lua {
    script: Script,
}

impl Lua {
    fn new(src: &'static str) -> Self {
        Lua { script: Script::new(src) }
    }

    /// The `redis::Script`, for single invocations.
    pub fn script(&self) -> &Script {
        &self.script
    }

    /// An EVALSHA command with its keys, for use in a pipeline; append ARGV with `.arg()`.
    pub fn evalsha(&self, keys: &[&str]) -> Cmd {
        let mut c = redis::cmd("EVALSHA");
        c.arg(self.script.get_hash()).arg(keys.len());
        for k in keys {
            c.arg(*k);
        }
        c
    }
}

/// All scripts of the service.
pub struct Scripts {
    /// Atomic submission (idempotency, admission, job hash, stream entry).
    pub submit: Lua,
    /// Worker start of one entry.
    pub start: Lua,
    /// Worker completion of one entry (store result + ack).
    pub complete: Lua,
    /// Cancel a queued job.
    pub cancel: Lua,
    /// Authentication and GCRA rate limiting.
    pub auth_rate: Lua,
    /// Lease due webhook deliveries.
    pub outbox_claim: Lua,
    /// Record a webhook attempt.
    pub outbox_result: Lua,
    /// Fail the job of an entry that disappeared from the stream.
    pub lost: Lua,
    /// Set one field of a job hash only if the hash still exists.
    pub note_error: Lua,
    /// Re-enqueue a dead-lettered job and remove its dead-letter entry (`couplet-api dlq replay`).
    pub replay: Lua,
}

/// The scripts, parsed once per process.
pub fn scripts() -> &'static Scripts {
    static S: OnceLock<Scripts> = OnceLock::new();
    S.get_or_init(|| Scripts {
        submit: Lua::new(include_str!("scripts/submit.lua")),
        start: Lua::new(include_str!("scripts/start.lua")),
        complete: Lua::new(include_str!("scripts/complete.lua")),
        cancel: Lua::new(include_str!("scripts/cancel.lua")),
        auth_rate: Lua::new(include_str!("scripts/auth_rate.lua")),
        outbox_claim: Lua::new(include_str!("scripts/outbox_claim.lua")),
        outbox_result: Lua::new(include_str!("scripts/outbox_result.lua")),
        lost: Lua::new(include_str!("scripts/lost.lua")),
        note_error: Lua::new(include_str!("scripts/note_error.lua")),
        replay: Lua::new(include_str!("scripts/replay.lua")),
    })
}

/// Loads every script into Redis's script cache.
pub async fn load_all<C: redis::aio::ConnectionLike>(con: &mut C) -> redis::RedisResult<()> {
    let s = scripts();
    for l in [&s.submit, &s.start, &s.complete, &s.cancel, &s.auth_rate, &s.outbox_claim, &s.outbox_result, &s.lost, &s.note_error, &s.replay] {
        l.script.prepare_invoke().load_async(con).await?;
    }
    Ok(())
}

fn is_noscript(e: &redis::RedisError) -> bool {
    e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript)
        || e.to_string().contains("NOSCRIPT")
}

/// Runs a pipeline of EVALSHA calls; on NOSCRIPT loads all scripts and retries once.
pub async fn pipeline_with_reload<C, T>(con: &mut C, pipe: &Pipeline) -> redis::RedisResult<T>
where
    C: redis::aio::ConnectionLike,
    T: redis::FromRedisValue,
{
    match pipe.query_async(con).await {
        Err(e) if is_noscript(&e) => {
            load_all(con).await?;
            pipe.query_async(con).await
        }
        other => other,
    }
}
