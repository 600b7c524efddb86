//! Operator tools for the dead-letter stream (`couplet-api dlq list|show|replay|purge`).
//!
//! A dead-letter entry (written by `start.lua` when a job exhausts
//! `MAX_ATTEMPTS`) holds the job id, the error, the attempts and the request
//! echo with its callback URL blanked; it carries no secrets, so `show` prints
//! it whole. The job hash keeps its own request (callback included) until its
//! TTL, and that is what `replay` rebuilds the worker's validated request from:
//! the stream entry's `req` was deleted with the entry. The rebuilt request goes
//! through the same `validate()` the API uses, then `replay.lua` re-enqueues the
//! job and deletes the dead-letter entry in one step, so replaying an entry twice
//! queues the job once. A job whose hash expired cannot be replayed (its request
//! is gone); a job whose stored request lost its callback URL is replayed
//! without a callback.
//!
//! Purging is by id (XDEL) or by age (XTRIM MINID, the same trim the workers
//! apply with `DEAD_LETTER_TTL_S`).

use common::job::{now_ms, RequestEcho};
use common::keys::Keys;
use common::request::{CoupletRequest, ValidationError};
use common::scripts::scripts;
use redis::aio::ConnectionLike;
use std::collections::HashMap;
use std::time::Duration;

/// Why a dead-letter operation failed. `kind()` is the stable name printed with it.
#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    /// Redis refused or could not be reached.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// The job's stored request no longer passes validation (rules changed since it was queued).
    #[error("job {job}: its stored request is no longer valid: {source}")]
    Invalid {
        /// Job id.
        job: String,
        /// Validation failure.
        source: ValidationError,
    },
    /// The job's stored request could not be read back.
    #[error("job {job}: stored request unreadable: {message}")]
    Corrupt {
        /// Job id.
        job: String,
        /// Parser message.
        message: String,
    },
    /// A duration argument that does not parse.
    #[error("duration `{0}` must look like 0s, 90s, 30m, 12h or 7d")]
    BadDuration(String),
}

impl DlqError {
    /// Stable error name.
    pub fn kind(&self) -> &'static str {
        match self {
            DlqError::Redis(_) => "redis",
            DlqError::Invalid { .. } => "invalid_request",
            DlqError::Corrupt { .. } => "corrupt_request",
            DlqError::BadDuration(_) => "bad_duration",
        }
    }
}

/// One dead-letter entry.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeadEntry {
    /// Stream entry id (`ms-seq`).
    pub id: String,
    /// Job id.
    pub job: String,
    /// The error (`{"type", "message"}`), as stored.
    pub error: serde_json::Value,
    /// Attempts made.
    pub attempts: u32,
    /// The request echo (callback URL blanked), as stored.
    pub request: serde_json::Value,
    /// Seconds since the job was dead-lettered.
    pub age_s: u64,
}

impl DeadEntry {
    fn from_fields(id: String, fields: HashMap<String, String>, now: i64) -> Self {
        let json = |k: &str| fields.get(k).and_then(|v| serde_json::from_str(v).ok()).unwrap_or(serde_json::Value::Null);
        let ms: i64 = id.split('-').next().and_then(|m| m.parse().ok()).unwrap_or(now);
        DeadEntry {
            job: fields.get("job").cloned().unwrap_or_default(),
            error: json("error"),
            attempts: fields.get("attempts").and_then(|a| a.parse().ok()).unwrap_or(0),
            request: json("request"),
            age_s: (now - ms).max(0) as u64 / 1000,
            id,
        }
    }

    /// The error's `type`, or `-`.
    pub fn error_type(&self) -> &str {
        self.error.get("type").and_then(|t| t.as_str()).unwrap_or("-")
    }

    /// One `list` line: entry id, job id, error type, attempts, age (tab-separated).
    pub fn line(&self) -> String {
        format!("{}\t{}\t{}\t{}\t{}", self.id, self.job, self.error_type(), self.attempts, human_age(self.age_s))
    }
}

/// `3d4h`, `5m12s`, `7s`: the two largest units.
pub fn human_age(s: u64) -> String {
    let (d, h, m, sec) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{sec}s"),
        (0, 0, _) => format!("{m}m{sec}s"),
        (0, _, _) => format!("{h}h{m}m"),
        _ => format!("{d}d{h}h"),
    }
}

/// Parses `0s`, `90s`, `30m`, `12h`, `7d` (a bare number is seconds).
pub fn parse_duration(s: &str) -> Result<Duration, DlqError> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: u64 = n.parse().map_err(|_| DlqError::BadDuration(s.into()))?;
    let per = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(DlqError::BadDuration(s.into())),
    };
    n.checked_mul(per).map(Duration::from_secs).ok_or_else(|| DlqError::BadDuration(s.into()))
}

type RawEntries = Vec<(String, HashMap<String, String>)>;

/// The oldest `limit` entries, oldest first.
pub async fn list<C: ConnectionLike + Send>(con: &mut C, keys: &Keys, limit: usize) -> Result<Vec<DeadEntry>, DlqError> {
    let raw: RawEntries = redis::cmd("XRANGE").arg(keys.dead_letter()).arg("-").arg("+").arg("COUNT").arg(limit.max(1)).query_async(con).await?;
    let now = now_ms();
    Ok(raw.into_iter().map(|(id, f)| DeadEntry::from_fields(id, f, now)).collect())
}

/// One entry by id.
pub async fn show<C: ConnectionLike + Send>(con: &mut C, keys: &Keys, id: &str) -> Result<Option<DeadEntry>, DlqError> {
    let raw: RawEntries = redis::cmd("XRANGE").arg(keys.dead_letter()).arg(id).arg(id).arg("COUNT").arg(1).query_async(con).await?;
    let now = now_ms();
    Ok(raw.into_iter().next().map(|(id, f)| DeadEntry::from_fields(id, f, now)))
}

/// What a replay did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replayed {
    /// Queued again under this new stream entry; `callback` says whether it kept its callback.
    Queued {
        /// Job id.
        job: String,
        /// New job-stream entry id.
        entry: String,
        /// Whether the callback URL survived.
        callback: bool,
    },
    /// No such dead-letter entry (never existed, purged, or already replayed).
    NotFound,
    /// The job hash expired: its request is gone (the entry is left for inspection).
    Expired(String),
    /// The job is no longer `failed` (e.g. replayed by another operator and now running).
    NotFailed(String, String),
}

impl std::fmt::Display for Replayed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Replayed::Queued { job, entry, callback: true } => write!(f, "replayed job {job} as entry {entry}"),
            Replayed::Queued { job, entry, callback: false } => write!(f, "replayed job {job} as entry {entry} (without a callback)"),
            Replayed::NotFound => write!(f, "not found / already replayed"),
            Replayed::Expired(job) => write!(f, "job {job} expired (RESULT_TTL_S): its request is gone, cannot replay"),
            Replayed::NotFailed(job, st) => write!(f, "job {job} is {st}, not failed: left alone"),
        }
    }
}

/// Re-enqueues the job of dead-letter entry `id` (see the module doc).
pub async fn replay<C: ConnectionLike + Send>(con: &mut C, keys: &Keys, id: &str, ttl_s: u64) -> Result<Replayed, DlqError> {
    let Some(entry) = show(con, keys, id).await? else {
        return Ok(Replayed::NotFound);
    };
    let job = entry.job.clone();
    let hash: HashMap<String, String> = redis::cmd("HGETALL").arg(keys.job(&job)).query_async(con).await?;
    let (Some(status), Some(owner)) = (hash.get("status"), hash.get("owner")) else {
        return Ok(Replayed::Expired(job));
    };
    if status != "failed" {
        return Ok(Replayed::NotFailed(job, status.clone()));
    }
    let stored = hash.get("request").map(String::as_str).unwrap_or("");
    let echo: RequestEcho = serde_json::from_str(stored).map_err(|e| DlqError::Corrupt { job: job.clone(), message: e.to_string() })?;
    let valid = request_of(&echo).validate().map_err(|source| DlqError::Invalid { job: job.clone(), source })?;
    let callback = valid.callback_url.is_some() && hash.get("callback").is_some_and(|c| c == "1");
    // Same serialisation as the API's submit (`serde_json::to_string(&valid)`), which the worker parses.
    let internal = serde_json::to_string(&valid).map_err(|e| DlqError::Corrupt { job: job.clone(), message: e.to_string() })?;
    let mut inv = scripts().replay.script().prepare_invoke();
    inv.key(keys.dead_letter())
        .key(keys.job(&job))
        .key(keys.stream())
        .key(keys.entries())
        .key(keys.backlog(owner))
        .key(keys.outbox())
        .arg(id)
        .arg(&job)
        .arg(owner)
        .arg(internal)
        .arg(now_ms())
        .arg(ttl_s)
        .arg(if callback { "1" } else { "0" });
    let (outcome, value): (String, String) = inv.invoke_async(con).await?;
    Ok(match outcome.as_str() {
        "queued" => Replayed::Queued { job, entry: value, callback },
        "gone" => Replayed::Expired(job),
        "not_failed" => Replayed::NotFailed(job, value),
        // 'not_found', or 'stale' (entry or owner changed between the read and the script).
        _ => Replayed::NotFound,
    })
}

/// The wire request an echo came from (the fields `validate()` reads).
fn request_of(e: &RequestEcho) -> CoupletRequest {
    CoupletRequest {
        theme: e.theme.clone(),
        style: Some(e.style.as_str().to_string()),
        length: Some(e.length as i64),
        upper: e.upper.clone(),
        seed: e.seed,
        callback_url: e.callback_url.clone(),
        candidates: Some(e.candidates as i64),
        head: e.head.clone(),
    }
}

/// Deletes the given entries; returns how many existed.
pub async fn purge_ids<C: ConnectionLike + Send>(con: &mut C, keys: &Keys, ids: &[String]) -> Result<u64, DlqError> {
    if ids.is_empty() {
        return Ok(0);
    }
    Ok(redis::cmd("XDEL").arg(keys.dead_letter()).arg(ids).query_async(con).await?)
}

/// Deletes entries older than `age`; returns how many.
pub async fn purge_older_than<C: ConnectionLike + Send>(con: &mut C, keys: &Keys, age: Duration) -> Result<u64, DlqError> {
    // An exact MINID (no `~`): the operator asked for this cut. MINID keeps ids ≥ the
    // cut, so `--older-than 0s` cuts one millisecond ahead to take this millisecond's too.
    let min_id = (now_ms().max(0) as u128).saturating_sub(age.as_millis()) + u128::from(age.is_zero());
    Ok(redis::cmd("XTRIM").arg(keys.dead_letter()).arg("MINID").arg(min_id as u64).query_async(con).await?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(7 * 86_400));
        assert!(matches!(parse_duration("7w"), Err(DlqError::BadDuration(_))));
        assert!(matches!(parse_duration("-1s"), Err(DlqError::BadDuration(_))));
        assert!(matches!(parse_duration(""), Err(DlqError::BadDuration(_))));
    }

    #[test]
    fn ages_read_well() {
        assert_eq!(human_age(7), "7s");
        assert_eq!(human_age(312), "5m12s");
        assert_eq!(human_age(3 * 3600 + 120), "3h2m");
        assert_eq!(human_age(2 * 86_400 + 3600), "2d1h");
    }

    #[test]
    fn an_echo_rebuilds_the_request_it_came_from() {
        let raw = CoupletRequest {
            upper: Some("春风送暖入屠苏".into()),
            style: Some("festive".into()),
            seed: Some(u64::MAX),
            callback_url: Some("https://example.com/hook?t=1".into()),
            candidates: Some(3),
            ..Default::default()
        };
        let valid = raw.validate().unwrap();
        let echo: RequestEcho = serde_json::from_str(&serde_json::to_string(&RequestEcho::from(&valid)).unwrap()).unwrap();
        assert_eq!(request_of(&echo).validate().unwrap(), valid);
        let themed = CoupletRequest { theme: Some(" 龙年 吉祥 ".into()), length: Some(5), head: None, ..Default::default() }.validate().unwrap();
        assert_eq!(request_of(&RequestEcho::from(&themed)).validate().unwrap(), themed);
    }
}
