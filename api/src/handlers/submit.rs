//! `POST /v1/couplets`: read what the caller presents, read and validate the
//! body (same rules and error types as the model library), check the callback
//! URL against the SSRF policy, then submit in one store call
//! ([`common::store::Store::submit`], one round trip) that authenticates and
//! rate-limits the caller, answers idempotent replays, applies admission
//! control — the global backlog (`MAX_BACKLOG`, 503 `overloaded`) and the
//! caller's own queued-or-running jobs (`MAX_BACKLOG_PER_KEY`, 429
//! `queue_quota`), so one tenant cannot fill the queue for everyone — and
//! queues the job. In `AUTH_MODE=off` there are no tenants to protect from each
//! other (every caller is `anon`), so only the global backlog applies.
//!
//! Authorization still answers first: when the body is refused before Redis
//! is asked, the caller is authorized on its own, and a 401 or 429 wins over
//! the body's error, as when authorization ran before the body was read.

use super::Handled;
use crate::auth::{present, rate_limited, Caller};
use crate::body::{check_json_content_type, parse_json, read_capped};
use crate::error::ApiError;
use crate::state::AppState;
use common::job::JobStatus;
use common::request::{CoupletRequest, ValidRequest, ValidationError};
use common::store::{Admission, Idempotency, Submission, Submitted};
use serde_json::json;
use std::net::SocketAddr;
use warp::http::{HeaderMap, HeaderValue, StatusCode};

/// A queued (or replayed) job.
pub struct Queued {
    /// Job id.
    pub id: String,
    /// The job's status now: `queued` for a new job, anything for a replay.
    pub status: JobStatus,
    /// Whether an idempotency record answered.
    pub replayed: bool,
    /// Validated request.
    pub request: ValidRequest,
}

/// A body that passed every check made before Redis.
struct Prepared {
    raw: CoupletRequest,
    valid: ValidRequest,
    idempotency_key: Option<Vec<u8>>,
}

async fn prepare<S, B>(state: &AppState, headers: &HeaderMap, body: S) -> Result<Prepared, ApiError>
where
    S: futures::Stream<Item = Result<B, warp::Error>> + Unpin,
    B: bytes::Buf,
{
    check_json_content_type(headers)?;
    let bytes = read_capped(headers, body, state.cfg.max_body_bytes, state.cfg.body_timeout).await?;
    let raw: CoupletRequest = parse_json(&bytes)?;
    let valid = raw.validate()?;
    if let Some(cb) = &valid.callback_url {
        // Syntax was checked by validate(); here the resolved addresses.
        let url = url::Url::parse(cb).map_err(|e| ValidationError::InvalidCallbackUrl(e.to_string()))?;
        common::ssrf::check(&url, &state.cfg.allowlist)
            .await
            .map_err(|e| ValidationError::InvalidCallbackUrl(e.to_string()))?;
    }
    let idempotency_key = headers.get("idempotency-key").map(|v| v.as_bytes().to_vec());
    if idempotency_key.as_ref().is_some_and(|k| k.is_empty() || k.len() > 255) {
        return Err(ApiError::BadQuery("Idempotency-Key must be 1–255 bytes".into()));
    }
    Ok(Prepared { raw, valid, idempotency_key })
}

/// Authorizes, reads, validates and enqueues; shared by `POST /v1/couplets` and `POST /generate`.
pub async fn enqueue<S, B>(state: &AppState, headers: &HeaderMap, addr: Option<SocketAddr>, body: S) -> Result<(Caller, Queued), ApiError>
where
    S: futures::Stream<Item = Result<B, warp::Error>> + Unpin,
    B: bytes::Buf,
{
    let who = present(state, headers, addr)?;
    let p = match prepare(state, headers, body).await {
        Ok(p) => p,
        Err(e) => {
            who.authorize(state).await?;
            return Err(e);
        }
    };
    // Same request means same parsed fields, whatever the whitespace or key order.
    let fingerprint = p.idempotency_key.as_ref().map(|_| serde_json::to_vec(&p.raw).unwrap_or_default());
    let cfg = &state.cfg;
    let submission = Submission {
        who: who.credential(state),
        request: &p.valid,
        idempotency: p.idempotency_key.as_deref().zip(fingerprint.as_deref()).map(|(key, fingerprint)| Idempotency { key, fingerprint }),
        webhook_secret: &cfg.webhook_secret,
        admission: Admission { ttl_s: cfg.result_ttl_s, stream_cap: cfg.stream_maxlen, max_backlog: cfg.max_backlog, per_key_quota: cfg.max_backlog_per_key },
    };
    let outcome = {
        let mut c = state.conn().await?;
        state.store.submit(&mut c, &submission).await?
    };
    match outcome {
        Submitted::Created { id, tenant } => Ok((tenant, Queued { id, status: JobStatus::Queued, replayed: false, request: p.valid })),
        Submitted::Replayed { id, status, tenant } => {
            state.metrics.idempotent_replays.inc();
            Ok((tenant, Queued { id, status, replayed: true, request: p.valid }))
        }
        Submitted::Conflict { id } => Err(ApiError::IdempotencyConflict(id)),
        Submitted::Overloaded { backlog } => Err(ApiError::Overloaded(backlog)),
        Submitted::Quota { queued } => Err(ApiError::QueueQuota(queued)),
        Submitted::Unauthorized => Err(who.unauthorized(state)),
        Submitted::RateLimited(l) => Err(rate_limited(l)),
    }
}

/// `POST /v1/couplets`.
pub async fn handle<S, B>(state: AppState, headers: HeaderMap, addr: Option<SocketAddr>, body: S) -> Result<Handled, ApiError>
where
    S: futures::Stream<Item = Result<B, warp::Error>> + Unpin,
    B: bytes::Buf,
{
    let (caller, sub) = enqueue(&state, &headers, addr, body).await?;
    // A replay answers with the original job as it stands now.
    let mut h = Handled::json(StatusCode::ACCEPTED, &json!({"id": sub.id, "status": sub.status}))
        .with_style(Some(sub.request.style))
        .with_rate(&caller);
    let hs = h.response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/jobs/{}", sub.id)) {
        hs.insert("location", v);
    }
    if sub.replayed {
        hs.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(h)
}
