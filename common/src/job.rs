//! A job as stored in its Redis hash and as shown to clients (`GET
//! /v1/jobs/{id}`, webhook bodies). The hash is the single source of truth;
//! [`JobView::from_hash`] is the only reader of its fields.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

use crate::request::ValidRequest;
use crate::store::fields::{job as f, status};
use crate::Style;

/// Lifecycle of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// In the stream, not started.
    Queued,
    /// Taken by a worker.
    Running,
    /// Result stored.
    Succeeded,
    /// Failed for good.
    Failed,
    /// Canceled before it started.
    Canceled,
}

impl JobStatus {
    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<JobStatus> {
        Some(match s {
            status::QUEUED => JobStatus::Queued,
            status::RUNNING => JobStatus::Running,
            status::SUCCEEDED => JobStatus::Succeeded,
            status::FAILED => JobStatus::Failed,
            status::CANCELED => JobStatus::Canceled,
            _ => return None,
        })
    }

    /// The stored form (also the JSON form).
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => status::QUEUED,
            JobStatus::Running => status::RUNNING,
            JobStatus::Succeeded => status::SUCCEEDED,
            JobStatus::Failed => status::FAILED,
            JobStatus::Canceled => status::CANCELED,
        }
    }

    /// True for succeeded, failed and canceled.
    pub fn is_final(self) -> bool {
        matches!(self, JobStatus::Succeeded | JobStatus::Failed | JobStatus::Canceled)
    }
}

/// The request as echoed back to clients (normalised wire form).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestEcho {
    /// Theme text.
    pub theme: Option<String>,
    /// Style name.
    pub style: Style,
    /// Line length.
    pub length: usize,
    /// User-supplied upper line.
    pub upper: Option<String>,
    /// Seed.
    pub seed: Option<u64>,
    /// Callback URL.
    pub callback_url: Option<String>,
    /// Ranked candidates asked for.
    #[serde(default = "one")]
    pub candidates: usize,
    /// 藏头 characters, as a two-character string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<String>,
}

fn one() -> usize {
    1
}

impl From<&ValidRequest> for RequestEcho {
    fn from(v: &ValidRequest) -> Self {
        RequestEcho {
            theme: v.theme.clone(),
            style: v.style,
            length: v.length,
            upper: v.upper.clone(),
            seed: v.seed,
            callback_url: v.callback_url.clone(),
            candidates: v.candidates,
            head: v.head.map(|h| h.iter().collect()),
        }
    }
}

/// A finished couplet: the best one at the top level, and every ranked candidate
/// (best first, pairwise different; as many as the request's `candidates`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoupletResult {
    /// 上联.
    pub upper: String,
    /// 下联.
    pub lower: String,
    /// 横批.
    pub hengpi: String,
    /// Style it was written in.
    pub style: Style,
    /// The ranked candidates, best first (the first equals the top level). Empty only in
    /// results stored before candidates existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<Candidate>,
}

/// One ranked couplet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    /// 上联.
    pub upper: String,
    /// 下联.
    pub lower: String,
    /// 横批.
    pub hengpi: String,
}

impl CoupletResult {
    /// Candidate `i` (0 = best) as a full couplet; results without a candidate list have only 0.
    pub fn candidate(&self, i: usize) -> Option<Candidate> {
        if self.candidates.is_empty() {
            return (i == 0).then(|| Candidate { upper: self.upper.clone(), lower: self.lower.clone(), hengpi: self.hengpi.clone() });
        }
        self.candidates.get(i).cloned()
    }
}

/// A job's error, as stored and shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobError {
    /// Stable type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Human-readable message.
    pub message: String,
}

/// Webhook delivery state shown on the job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookState {
    /// pending | retrying | delivered | dead_lettered.
    pub status: String,
    /// HTTP attempts made.
    pub attempts: u32,
    /// Last failure, if any.
    pub last_error: Option<String>,
}

/// The client-facing view of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobView {
    /// Job id.
    pub id: String,
    /// Status.
    pub status: JobStatus,
    /// The request.
    pub request: Option<RequestEcho>,
    /// The couplet, once succeeded.
    pub result: Option<CoupletResult>,
    /// The error, once failed.
    pub error: Option<JobError>,
    /// Processing attempts started.
    pub attempts: u32,
    /// RFC 3339.
    pub created_at: Option<String>,
    /// RFC 3339.
    pub started_at: Option<String>,
    /// RFC 3339.
    pub finished_at: Option<String>,
    /// Webhook delivery, when a callback was requested.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookState>,
}

/// Milliseconds since the Unix epoch → RFC 3339 (UTC, millisecond precision).
pub fn rfc3339_ms(ms: i64) -> Option<String> {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()?;
    t.format(&time::format_description::well_known::Rfc3339).ok()
}

/// Now, in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

impl JobView {
    /// Builds the view from the job hash; `None` if the hash is empty or damaged.
    pub fn from_hash(h: &HashMap<String, String>) -> Option<JobView> {
        let ts = |k: &str| h.get(k).and_then(|v| v.parse::<i64>().ok()).and_then(rfc3339_ms);
        let webhook = h.get(f::WH_STATUS).map(|s| WebhookState {
            status: s.clone(),
            attempts: h.get(f::WH_ATTEMPTS).and_then(|v| v.parse().ok()).unwrap_or(0),
            last_error: h.get(f::WH_LAST_ERROR).cloned(),
        });
        Some(JobView {
            id: h.get(f::ID)?.clone(),
            status: JobStatus::parse(h.get(f::STATUS)?)?,
            request: h.get(f::REQUEST).and_then(|r| serde_json::from_str(r).ok()),
            result: h.get(f::RESULT).and_then(|r| serde_json::from_str(r).ok()),
            error: h.get(f::ERROR).and_then(|r| serde_json::from_str(r).ok()),
            attempts: h.get(f::ATTEMPTS).and_then(|v| v.parse().ok()).unwrap_or(0),
            created_at: ts(f::CREATED_AT),
            started_at: ts(f::STARTED_AT),
            finished_at: ts(f::FINISHED_AT),
            webhook,
        })
    }
}

/// A new unguessable job id: a ULID (48-bit time + 80 random bits from the OS CSPRNG).
pub fn new_job_id() -> String {
    ulid::Ulid::new().to_string().to_lowercase()
}

/// True when `s` could be a job id (guards key construction against junk).
pub fn is_job_id(s: &str) -> bool {
    s.len() == 26 && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_reads_the_hash() {
        let mut h = HashMap::new();
        h.insert("id".to_string(), "01hx".to_string());
        h.insert("status".to_string(), "succeeded".to_string());
        h.insert("attempts".to_string(), "2".to_string());
        h.insert("created_at".to_string(), "1700000000123".to_string());
        h.insert("result".to_string(), r#"{"upper":"a","lower":"b","hengpi":"c","style":"festive"}"#.to_string());
        let v = JobView::from_hash(&h).expect("view");
        assert_eq!(v.status, JobStatus::Succeeded);
        assert_eq!(v.attempts, 2);
        assert_eq!(v.created_at.as_deref(), Some("2023-11-14T22:13:20.123Z"));
        assert_eq!(v.result.expect("result").style, Style::Festive);
        assert!(JobView::from_hash(&HashMap::new()).is_none());
    }

    #[test]
    fn the_stored_status_is_the_json_status() {
        for st in [JobStatus::Queued, JobStatus::Running, JobStatus::Succeeded, JobStatus::Failed, JobStatus::Canceled] {
            assert_eq!(serde_json::to_value(st).expect("json"), st.as_str());
            assert_eq!(JobStatus::parse(st.as_str()), Some(st));
        }
    }

    #[test]
    fn ids_are_unique_and_recognisable() {
        let a = new_job_id();
        assert!(is_job_id(&a));
        assert_ne!(a, new_job_id());
        assert!(!is_job_id("../etc"));
    }
}
