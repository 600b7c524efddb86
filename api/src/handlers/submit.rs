//! `POST /v1/couplets`: authenticate, rate-limit, read and validate the body
//! (same rules and error types as the model library), check the callback URL
//! against the SSRF policy, then write the job hash and stream entry in one
//! script call that also applies idempotency and admission control: the
//! global backlog (`MAX_BACKLOG`, 503 `overloaded`) and the caller's own
//! queued-or-running jobs (`MAX_BACKLOG_PER_KEY`, 429 `queue_quota`), so one
//! tenant cannot fill the queue for everyone. In `AUTH_MODE=off` there are no
//! tenants to protect from each other (every caller is `anon`), so only the
//! global backlog applies.

use super::Handled;
use crate::auth::{authorize, Caller};
use crate::body::{check_json_content_type, parse_json, read_capped};
use crate::error::ApiError;
use crate::state::AppState;
use common::job::{new_job_id, now_ms, RequestEcho};
use common::keys::GROUP;
use common::request::{CoupletRequest, ValidRequest, ValidationError};
use common::scripts::scripts;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use warp::http::{HeaderMap, HeaderValue, StatusCode};

/// A queued (or replayed) job.
pub struct Submitted {
    /// Job id.
    pub id: String,
    /// Whether an idempotency record answered.
    pub replayed: bool,
    /// Validated request.
    pub request: ValidRequest,
}

/// Reads, validates and enqueues; shared by `POST /v1/couplets` and `POST /generate`.
pub async fn enqueue<S, B>(state: &AppState, caller: &Caller, headers: &HeaderMap, body: S) -> Result<Submitted, ApiError>
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
    let idem = headers.get("idempotency-key").map(|v| v.as_bytes().to_vec());
    let (idem_key, body_hash) = match idem {
        Some(k) if k.is_empty() || k.len() > 255 => {
            return Err(ApiError::BadQuery("Idempotency-Key must be 1–255 bytes".into()));
        }
        Some(k) => {
            let key_hash = hex::encode(Sha256::digest(&k));
            // Same request means same parsed fields, whatever the whitespace or key order.
            let canonical = serde_json::to_vec(&raw).unwrap_or_default();
            (state.keys.idempotency(&caller.owner, &key_hash), hex::encode(Sha256::digest(&canonical)))
        }
        None => (String::new(), String::new()),
    };
    let id = new_job_id();
    let echo = serde_json::to_string(&RequestEcho::from(&valid)).unwrap_or_default();
    let internal = serde_json::to_string(&valid).unwrap_or_default();
    let secret = if caller.secret.is_empty() { state.cfg.webhook_secret.clone() } else { caller.secret.clone() };
    let mut inv = scripts().submit.script().prepare_invoke();
    inv.key(state.keys.job(&id))
        .key(state.keys.stream())
        .key(if idem_key.is_empty() { state.keys.idempotency("-", "-") } else { idem_key })
        .key(state.keys.entries())
        .key(state.keys.backlog(&caller.owner))
        .arg(&id)
        .arg(echo)
        .arg(now_ms())
        .arg(state.cfg.result_ttl_s)
        .arg(state.cfg.stream_maxlen)
        .arg(&caller.owner)
        .arg(&body_hash)
        .arg(state.cfg.max_backlog)
        .arg(GROUP)
        .arg(if valid.callback_url.is_some() { secret } else { String::new() })
        .arg(if valid.callback_url.is_some() { "1" } else { "0" })
        .arg(internal)
        .arg(if state.cfg.auth_mode == crate::config::AuthMode::Off { 0 } else { state.cfg.max_backlog_per_key });
    let mut c = state.conn().await?;
    let (status, value): (String, String) = inv.invoke_async(&mut *c).await?;
    match status.as_str() {
        "created" => Ok(Submitted { id: value, replayed: false, request: valid }),
        "replay" => {
            state.metrics.idempotent_replays.inc();
            Ok(Submitted { id: value, replayed: true, request: valid })
        }
        "conflict" => Err(ApiError::IdempotencyConflict(value)),
        "quota" => Err(ApiError::QueueQuota(value.parse().unwrap_or(0))),
        _ => Err(ApiError::Overloaded(value.parse().unwrap_or(0))),
    }
}

/// `POST /v1/couplets`.
pub async fn handle<S, B>(state: AppState, headers: HeaderMap, addr: Option<SocketAddr>, body: S) -> Result<Handled, ApiError>
where
    S: futures::Stream<Item = Result<B, warp::Error>> + Unpin,
    B: bytes::Buf,
{
    let caller = authorize(&state, &headers, addr).await?;
    let sub = enqueue(&state, &caller, &headers, body).await?;
    let status = if sub.replayed {
        // A replay answers with the original job as it stands now.
        let mut c = state.conn().await?;
        let st: Option<String> = redis::cmd("HGET").arg(state.keys.job(&sub.id)).arg("status").query_async(&mut *c).await?;
        st.unwrap_or_else(|| "queued".into())
    } else {
        "queued".into()
    };
    let mut h = Handled::json(StatusCode::ACCEPTED, &json!({"id": sub.id, "status": status}))
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
