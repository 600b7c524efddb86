//! The HTTP side: one `reqwest` client, the three calls the CLI needs, and the
//! one place where an HTTP outcome becomes a [`CliError`] (4xx → rejected,
//! 5xx or no answer → unreachable). Waiting is long-polling
//! (`GET /v1/jobs/{id}?wait=N`), so a job is seen the moment it finishes and
//! the service is not polled in a tight loop.

use std::time::{Duration, Instant};

use common::job::JobView;
use common::request::CoupletRequest;
use reqwest::{RequestBuilder, Response, StatusCode};
use serde_json::Value;

use crate::error::CliError;
use crate::output::status_name;

/// Longest single long-poll; the API accepts up to 30 s.
const POLL_WAIT_S: u64 = 10;
/// Extra time a long-poll request may take beyond its `wait`.
const POLL_SLACK: Duration = Duration::from_secs(15);
/// Time allowed for a request that does not wait (submit, status, image).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Time allowed to open a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Transient failures tolerated in a row while waiting.
const MAX_RETRIES: u32 = 5;

/// A job as the API showed it: typed for reading, raw for `--json`.
#[derive(Debug)]
pub struct Job {
    /// The typed view.
    pub view: JobView,
    /// The JSON exactly as received.
    pub raw: Value,
}

/// The answer to a submission.
#[derive(Debug)]
pub struct Submitted {
    /// Job id.
    pub id: String,
    /// The 202 body as received.
    pub raw: Value,
}

/// Talks to one service.
pub struct Client {
    http: reqwest::Client,
    base: url::Url,
    api_key: Option<String>,
}

impl Client {
    /// A client for the service at `base` (which ends in '/').
    pub fn new(base: url::Url, api_key: Option<String>) -> Result<Client, CliError> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("couplet-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CliError::Local(format!("cannot set up HTTP: {e}")))?;
        Ok(Client { http, base, api_key })
    }

    /// `base` + path segments, each percent-encoded (a job id cannot escape its segment).
    fn url(&self, segments: &[&str]) -> url::Url {
        let mut u = self.base.clone();
        if let Ok(mut path) = u.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        u
    }

    fn authed(&self, rb: RequestBuilder) -> RequestBuilder {
        match &self.api_key {
            Some(k) => rb.bearer_auth(k),
            None => rb,
        }
    }

    async fn send(&self, rb: RequestBuilder, what: &url::Url) -> Result<Response, CliError> {
        let resp = self.authed(rb).send().await.map_err(|e| unreachable(what, &e))?;
        check(resp).await
    }

    /// `POST /v1/couplets`.
    pub async fn submit(&self, request: &CoupletRequest) -> Result<Submitted, CliError> {
        let url = self.url(&["v1", "couplets"]);
        let rb = self.http.post(url.clone()).json(request).timeout(REQUEST_TIMEOUT);
        let resp = self.send(rb, &url).await?;
        let raw = json_body(resp, &url).await?;
        let id = raw
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| bad_response(&url, "the answer has no job id"))?;
        Ok(Submitted { id, raw })
    }

    /// `GET /v1/jobs/{id}`, long-polling up to `wait` seconds when given.
    pub async fn job(&self, id: &str, wait: Option<u64>) -> Result<Job, CliError> {
        let mut url = self.url(&["v1", "jobs", id]);
        if let Some(w) = wait {
            url.query_pairs_mut().append_pair("wait", &w.to_string());
        }
        let timeout = REQUEST_TIMEOUT + wait.map_or(Duration::ZERO, |w| Duration::from_secs(w) + POLL_SLACK);
        let resp = self.send(self.http.get(url.clone()).timeout(timeout), &url).await?;
        let raw = json_body(resp, &url).await?;
        let view: JobView =
            serde_json::from_value(raw.clone()).map_err(|e| bad_response(&url, &format!("not a job: {e}")))?;
        Ok(Job { view, raw })
    }

    /// `GET /v1/jobs/{id}/image.png` of candidate `candidate` (0-based; 0 is the best).
    pub async fn image_png(&self, id: &str, scale: u32, layout: &str, candidate: usize) -> Result<Vec<u8>, CliError> {
        let mut url = self.url(&["v1", "jobs", id, "image.png"]);
        url.query_pairs_mut().append_pair("scale", &scale.to_string()).append_pair("layout", layout);
        if candidate > 0 {
            url.query_pairs_mut().append_pair("candidate", &candidate.to_string());
        }
        let resp = self.send(self.http.get(url.clone()).timeout(REQUEST_TIMEOUT), &url).await?;
        let bytes = resp.bytes().await.map_err(|e| unreachable(&url, &e))?;
        if !bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            return Err(bad_response(&url, "the answer is not a PNG"));
        }
        Ok(bytes.to_vec())
    }

    /// Long-polls until the job is final or `timeout` passes. `on_update`
    /// sees every answer (for the spinner). Transient failures (no answer,
    /// 5xx, 429) are retried a few times, honouring `Retry-After`.
    pub async fn wait_final(&self, id: &str, timeout: Duration, mut on_update: impl FnMut(&Job)) -> Result<Job, CliError> {
        let started = Instant::now();
        let deadline = started + timeout;
        let mut retries = 0;
        let mut last_status = "queued";
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(CliError::TimedOut { id: id.to_string(), waited_s: started.elapsed().as_secs(), status: last_status });
            }
            let wait = left.as_secs().clamp(1, POLL_WAIT_S);
            let asked = Instant::now();
            match self.job(id, Some(wait)).await {
                Ok(job) => {
                    retries = 0;
                    on_update(&job);
                    if job.view.status.is_final() {
                        return Ok(job);
                    }
                    last_status = status_name(job.view.status);
                    // A server that answers early without news must not turn this into a tight loop.
                    if asked.elapsed() < Duration::from_millis(500) {
                        tokio::time::sleep(Duration::from_secs(1).min(left)).await;
                    }
                }
                Err(e) if e.is_transient() && retries < MAX_RETRIES => {
                    retries += 1;
                    let backoff = e.retry_after().map_or(Duration::from_millis(500 << retries), Duration::from_secs);
                    tokio::time::sleep(backoff.min(Duration::from_secs(30)).min(left)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Sorts an answer: 2xx passes, 4xx is a refusal, anything else a service error.
async fn check(resp: Response) -> Result<Response, CliError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let body: Option<Value> = resp.json().await.ok();
    let err = body.as_ref().and_then(|b| b.get("error"));
    let text = |k: &str| err.and_then(|e| e.get(k)).and_then(Value::as_str).map(str::to_string);
    let kind = text("type").unwrap_or_else(|| default_kind(status).to_string());
    let message = text("message").unwrap_or_else(|| status.canonical_reason().unwrap_or("no message").to_string());
    if status.is_client_error() {
        Err(CliError::Rejected { status: status.as_u16(), kind, message, field: text("field"), retry_after })
    } else {
        Err(CliError::Server { status: status.as_u16(), kind, message, retry_after })
    }
}

fn default_kind(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "unauthorized",
        404 => "not_found",
        429 => "rate_limited",
        503 => "unavailable",
        _ if status.is_client_error() => "rejected",
        _ => "server_error",
    }
}

async fn json_body(resp: Response, url: &url::Url) -> Result<Value, CliError> {
    let bytes = resp.bytes().await.map_err(|e| unreachable(url, &e))?;
    serde_json::from_slice(&bytes).map_err(|e| bad_response(url, &format!("the answer is not JSON: {e}")))
}

fn unreachable(url: &url::Url, e: &reqwest::Error) -> CliError {
    let reason = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        // The innermost cause says what happened ("Connection refused").
        let mut source: &dyn std::error::Error = e;
        while let Some(s) = source.source() {
            source = s;
        }
        format!("connection failed: {source}")
    } else {
        e.to_string()
    };
    CliError::Unreachable { url: without_query(url), reason }
}

fn bad_response(url: &url::Url, what: &str) -> CliError {
    CliError::Server { status: 200, kind: "bad_response".into(), message: format!("{}: {what}", without_query(url)), retry_after: None }
}

fn without_query(url: &url::Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.to_string()
}
