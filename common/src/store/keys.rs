//! Redis key names, one function per key. Only the store builds keys:
//! services call `Store` operations (black-box tests may name keys to inspect
//! them). Every key starts with the deployment's `KEY_PREFIX`, so deployments
//! and test runs sharing one Redis never see each other's data. Every key
//! except the job stream has a TTL or a trim policy (noted per function).

/// Consumer group of the job stream.
pub const GROUP: &str = "workers";

/// Builds key names under one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys under `prefix` (e.g. `couplet:`).
    pub fn new(prefix: impl Into<String>) -> Self {
        Keys { prefix: prefix.into() }
    }

    /// The prefix itself.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The job stream. Never trimmed by length: an entry leaves only when it is
    /// acknowledged (XDEL in the same script), so no accepted job is dropped;
    /// its length is bounded by admission (`MAX_BACKLOG`, `STREAM_MAXLEN`).
    pub fn stream(&self) -> String {
        format!("{}jobs", self.prefix)
    }

    /// Hash of stream entry id → job id for every entry not yet acknowledged
    /// (field written with the XADD, removed with the XACK; bounded by the stream).
    /// It lets a worker name the job of an entry whose data disappeared.
    pub fn entries(&self) -> String {
        format!("{}entries", self.prefix)
    }

    /// Dead-letter stream of jobs that exhausted their attempts (MAXLEN ~ trimmed).
    pub fn dead_letter(&self) -> String {
        format!("{}dead", self.prefix)
    }

    /// Job hash (TTL: result TTL). It is also the idempotency record of a
    /// submission with an Idempotency-Key, whose job id is derived from it.
    pub fn job(&self, id: &str) -> String {
        format!("{}job:{}", self.prefix, id)
    }

    /// Pub/sub channel announcing finished job ids (no storage).
    pub fn done_channel(&self) -> String {
        format!("{}done", self.prefix)
    }

    /// Webhook outbox: sorted set of job ids by next attempt time (members removed when delivered or dead).
    pub fn outbox(&self) -> String {
        format!("{}outbox", self.prefix)
    }

    /// API key record by key hash (no TTL: revoked keys are deleted).
    pub fn api_key(&self, key_hash: &str) -> String {
        format!("{}apikey:{}", self.prefix, key_hash)
    }

    /// Set of key ids → hashes, for `keys list` (entries removed on revoke).
    pub fn api_key_index(&self) -> String {
        format!("{}apikeys", self.prefix)
    }

    /// Jobs of one tenant still queued or running: a sorted set of job ids scored
    /// by creation time (ms), for the per-key queue quota (`MAX_BACKLOG_PER_KEY`).
    /// `subject` is the tenant's API key hash (or `anon` in `AUTH_MODE=off`),
    /// which the API knows before it reads the key record, so the submit script
    /// gets this key in KEYS; the job hash and stream entry carry the subject
    /// (`backlog`, `b`) for the worker's settling scripts. Jobs written before
    /// the subject existed name it by their owner (tenant id).
    /// A member leaves when its job becomes final (complete, dead-letter, cancel,
    /// lost: ZREM, idempotent); members older than the result TTL are purged at
    /// each submission (their job hashes have expired), and the key itself
    /// expires one result TTL after the owner's last submission, so it cannot leak.
    pub fn backlog(&self, subject: &str) -> String {
        format!("{}backlog:{}", self.prefix, subject)
    }

    /// Rate limiter state of one API key, by the key's hash (TTL: burst window).
    pub fn rate_limit_key(&self, key_hash: &str) -> String {
        format!("{}rl:key:{}", self.prefix, key_hash)
    }

    /// Rate limiter state of one client IP in `AUTH_MODE=off` (TTL: burst window).
    pub fn rate_limit_ip(&self, ip: &str) -> String {
        format!("{}rl:ip:{}", self.prefix, ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_carries_the_prefix() {
        let k = Keys::new("t1:");
        for key in [k.stream(), k.entries(), k.dead_letter(), k.job("x"), k.done_channel(), k.outbox(), k.api_key("h"), k.api_key_index(), k.rate_limit_key("h"), k.rate_limit_ip("127.0.0.1"), k.backlog("o")] {
            assert!(key.starts_with("t1:"), "{key}");
        }
    }
}
