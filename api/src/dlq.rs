//! Operator tools for the dead-letter stream (`couplet-api dlq list|show|replay|purge`):
//! the store's dead-letter operations (`common::store::dlq`, which documents
//! what an entry holds and how a replay re-enqueues a job exactly once), with
//! the command line's presentation and errors.
//!
//! A dead-letter entry carries no secrets (its request echo has the callback
//! URL blanked), so `show` prints it whole. A job whose hash expired cannot be
//! replayed (its request is gone); a job whose stored request lost its
//! callback URL is replayed without a callback.

use common::job::now_ms;
use common::request::ValidationError;
use common::store::{DeadLetter, DeadReplay, Store, StoreError};
use redis::aio::ConnectionLike;
use std::time::Duration;

/// Why a dead-letter operation failed. `kind()` is the stable name printed with it.
#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    /// Redis refused or could not be reached.
    #[error("{0}")]
    Store(#[from] StoreError),
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
            DlqError::Store(e) => e.kind(),
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
    fn new(d: DeadLetter, now: i64) -> Self {
        DeadEntry { age_s: (now - d.at_ms).max(0) as u64 / 1000, id: d.id, job: d.job, error: d.error, attempts: d.attempts, request: d.request }
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

/// The oldest `limit` entries, oldest first.
pub async fn list<C: ConnectionLike + Send>(con: &mut C, store: &Store, limit: usize) -> Result<Vec<DeadEntry>, DlqError> {
    let now = now_ms();
    Ok(store.dead_letters(con, limit).await?.into_iter().map(|d| DeadEntry::new(d, now)).collect())
}

/// One entry by id.
pub async fn show<C: ConnectionLike + Send>(con: &mut C, store: &Store, id: &str) -> Result<Option<DeadEntry>, DlqError> {
    Ok(store.dead_letter(con, id).await?.map(|d| DeadEntry::new(d, now_ms())))
}

/// What a replay did, as the `dlq replay` command prints it. The store's
/// [`DeadReplay`] is the outcome; its `Invalid`/`Corrupt` cases are errors here.
pub struct Replayed(DeadReplay);

impl Replayed {
    /// Whether the job was queued again.
    pub fn queued(&self) -> bool {
        matches!(self.0, DeadReplay::Queued { .. })
    }
}

impl std::fmt::Display for Replayed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            DeadReplay::Queued { job, entry, callback: true } => write!(f, "replayed job {job} as entry {entry}"),
            DeadReplay::Queued { job, entry, callback: false } => write!(f, "replayed job {job} as entry {entry} (without a callback)"),
            DeadReplay::NotFound => write!(f, "not found / already replayed"),
            DeadReplay::Expired(job) => write!(f, "job {job} expired (RESULT_TTL_S): its request is gone, cannot replay"),
            DeadReplay::NotFailed(job, st) => write!(f, "job {job} is {st}, not failed: left alone"),
            // Never printed: `replay` turns these into errors.
            DeadReplay::Invalid { job, .. } | DeadReplay::Corrupt { job, .. } => write!(f, "job {job} cannot be replayed"),
        }
    }
}

/// Re-enqueues the job of dead-letter entry `id` with a fresh TTL of `ttl_s`.
pub async fn replay<C: ConnectionLike + Send>(con: &mut C, store: &Store, id: &str, ttl_s: u64) -> Result<Replayed, DlqError> {
    match store.replay_dead(con, id, ttl_s).await? {
        DeadReplay::Invalid { job, source } => Err(DlqError::Invalid { job, source }),
        DeadReplay::Corrupt { job, message } => Err(DlqError::Corrupt { job, message }),
        outcome => Ok(Replayed(outcome)),
    }
}

/// Deletes the given entries; returns how many existed.
pub async fn purge_ids<C: ConnectionLike + Send>(con: &mut C, store: &Store, ids: &[String]) -> Result<u64, DlqError> {
    Ok(store.purge_dead(con, ids).await?)
}

/// Deletes entries older than `age`; returns how many.
pub async fn purge_older_than<C: ConnectionLike + Send>(con: &mut C, store: &Store, age: Duration) -> Result<u64, DlqError> {
    Ok(store.purge_dead_older_than(con, age).await?)
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
}
