//! The Lua scripts that make each state change one atomic round trip.
//!
//! Every script is registered once, in the [`scripts!`] list below: that one
//! list builds [`Scripts`], is what [`load_all`] loads, and is what a NOSCRIPT
//! reply (Redis restarted with an empty script cache) reloads, so no script can
//! be forgotten; a unit test checks that every `.lua` file in `scripts/` is in
//! it. A script may be prefixed with a shared fragment from `scripts/lib/`
//! (`with "lib/…"`, concatenated at compile time), so one piece of Lua (the
//! GCRA limiter) exists once however many scripts run it.
//!
//! Scripts receive every key they touch in KEYS (none is built in Lua), so the
//! protocol can move to a sharded Redis; the header comment of each `.lua`
//! file documents its KEYS, ARGV and reply, and the store function that calls
//! it is the only place that builds them.

use redis::aio::ConnectionLike;
use redis::{Cmd, FromRedisValue, Pipeline, RedisResult, Script};
use std::sync::OnceLock;

/// One embedded script.
pub struct Lua {
    /// File name under `scripts/` (e.g. `submit.lua`).
    file: &'static str,
    script: Script,
}

impl Lua {
    fn new(file: &'static str, src: &'static str) -> Self {
        Lua { file, script: Script::new(src) }
    }

    /// The file it was built from (`submit.lua`).
    pub fn file(&self) -> &'static str {
        self.file
    }

    /// The `redis::Script`, for single invocations.
    pub fn script(&self) -> &Script {
        &self.script
    }

    /// An EVALSHA command with its keys; append ARGV with `.arg()`. Run it
    /// with [`run`] (or in a pipeline with [`pipeline_with_reload`]), which
    /// reload every script on NOSCRIPT.
    pub fn evalsha<K: redis::ToRedisArgs>(&self, keys: &[K]) -> Cmd {
        let mut c = redis::cmd("EVALSHA");
        c.arg(self.script.get_hash()).arg(keys.len());
        for k in keys {
            c.arg(k);
        }
        c
    }
}

/// Declares every script of the service, once: the struct field, the file
/// (plus an optional shared prefix from `scripts/lib/`) and its doc.
macro_rules! scripts {
    ($($(#[doc = $doc:literal])* $field:ident: $file:literal $(with $lib:literal)?;)*) => {
        /// All scripts of the service (see [`scripts!`]: one list).
        pub struct Scripts {
            $($(#[doc = $doc])* pub $field: Lua,)*
        }

        impl Scripts {
            fn build() -> Scripts {
                Scripts {
                    $($field: Lua::new(
                        $file,
                        concat!($(include_str!(concat!("scripts/", $lib)),)? include_str!(concat!("scripts/", $file))),
                    ),)*
                }
            }

            /// Every script, for loading and for the completeness test.
            pub fn all(&self) -> Vec<&Lua> {
                vec![$(&self.$field),*]
            }
        }
    };
}

scripts! {
    /// Atomic submission: authorization, rate limit, idempotency, admission, job hash, stream entry.
    submit: "submit.lua" with "lib/authorize.lua";
    /// Worker start of one entry.
    start: "start.lua" with "lib/settle.lua";
    /// Worker completion of one entry (store result + ack).
    complete: "complete.lua" with "lib/settle.lua";
    /// Cancel a queued job.
    cancel: "cancel.lua";
    /// Authentication and GCRA rate limiting (every route but submissions).
    authorize: "authorize.lua" with "lib/authorize.lua";
    /// Lease due webhook deliveries.
    outbox_claim: "outbox_claim.lua";
    /// Record a webhook attempt.
    outbox_result: "outbox_result.lua";
    /// Fail the job of an entry that disappeared from the stream.
    lost: "lost.lua" with "lib/settle.lua";
    /// Set one field of a job hash only if the hash still exists.
    note_error: "note_error.lua";
    /// Re-enqueue a dead-lettered job and remove its dead-letter entry (`couplet-api dlq replay`).
    replay: "replay.lua";
}

/// The scripts, parsed once per process.
pub fn scripts() -> &'static Scripts {
    static S: OnceLock<Scripts> = OnceLock::new();
    S.get_or_init(Scripts::build)
}

/// Loads every script into Redis's script cache.
pub async fn load_all<C: ConnectionLike>(con: &mut C) -> RedisResult<()> {
    for l in scripts().all() {
        l.script.prepare_invoke().load_async(con).await?;
    }
    Ok(())
}

fn is_noscript(e: &redis::RedisError) -> bool {
    e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) || e.to_string().contains("NOSCRIPT")
}

/// Runs one EVALSHA command (from [`Lua::evalsha`]); on NOSCRIPT loads every script and retries once.
pub async fn run<C, T>(con: &mut C, cmd: &Cmd) -> RedisResult<T>
where
    C: ConnectionLike,
    T: FromRedisValue,
{
    match cmd.query_async(con).await {
        Err(e) if is_noscript(&e) => {
            load_all(con).await?;
            cmd.query_async(con).await
        }
        other => other,
    }
}

/// Runs a pipeline of EVALSHA calls; on NOSCRIPT loads every script and retries once.
pub async fn pipeline_with_reload<C, T>(con: &mut C, pipe: &Pipeline) -> RedisResult<T>
where
    C: ConnectionLike,
    T: FromRedisValue,
{
    match pipe.query_async(con).await {
        Err(e) if is_noscript(&e) => {
            load_all(con).await?;
            pipe.query_async(con).await
        }
        other => other,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_lua_file_is_registered() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/store/scripts");
        let registered: Vec<&str> = scripts().all().iter().map(|l| l.file()).collect();
        let mut files = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let name = e.unwrap().file_name().into_string().unwrap();
            if name.ends_with(".lua") {
                files += 1;
                assert!(registered.contains(&name.as_str()), "{name} is not in the scripts! list");
            }
        }
        assert_eq!(files, registered.len(), "a registered script has no file, or one is listed twice");
    }

    #[test]
    fn no_script_builds_a_key() {
        // Keys come in KEYS whole; a key built in Lua (`KEYS[2] .. subject`) would be invisible to a sharded Redis.
        for l in scripts().all() {
            let src = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/store/scripts").join(l.file())).unwrap();
            let code: String = src.lines().filter(|line| !line.trim_start().starts_with("--")).collect::<Vec<_>>().join("\n");
            let mut rest = code.as_str();
            while let Some(at) = rest.find("KEYS[") {
                let after = &rest[at..];
                let close = after.find(']').unwrap();
                assert!(!after[close + 1..].trim_start().starts_with(".."), "{} concatenates onto a key: {}", l.file(), &after[..close + 1]);
                rest = &after[close + 1..];
            }
        }
    }

    #[test]
    fn hashes_are_distinct() {
        let mut h: Vec<&str> = scripts().all().iter().map(|l| l.script().get_hash()).collect();
        h.sort_unstable();
        h.dedup();
        assert_eq!(h.len(), scripts().all().len());
    }
}
