//! `GET /v1/jobs/{id}` (with `?wait=N` long-polling on the completion
//! waiters, never busy-polling Redis) and `DELETE /v1/jobs/{id}` (cancel a
//! job that has not started). Another tenant's job is always "not found".
//! A caller past `MAX_WAITS_PER_KEY` held polls gets the job's current state
//! at once rather than a refusal: the poll stays correct, only not held.

use super::{load_job, Handled};
use crate::auth::{authorize, Caller};
use crate::error::ApiError;
use crate::state::AppState;
use common::job::JobView;
use common::store::Canceled;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;
use warp::http::{HeaderMap, StatusCode};

/// Longest `?wait`.
pub const MAX_WAIT_S: f64 = 30.0;

/// Parses `wait` from the query map.
pub fn parse_wait(q: &HashMap<String, String>) -> Result<Duration, ApiError> {
    match q.get("wait") {
        None => Ok(Duration::ZERO),
        Some(w) => {
            let s: f64 = w.parse().map_err(|_| ApiError::BadQuery(format!("wait must be a number of seconds ≤ {MAX_WAIT_S}")))?;
            if !(0.0..=MAX_WAIT_S).contains(&s) {
                return Err(ApiError::BadQuery(format!("wait must be between 0 and {MAX_WAIT_S} seconds")));
            }
            Ok(Duration::from_secs_f64(s))
        }
    }
}

/// Whether a wait counts against the caller's `MAX_WAITS_PER_KEY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// A `?wait` long poll: past the cap it answers the current state at once.
    Capped,
    /// `POST /generate`: always held (see `waiters`).
    Uncapped,
}

/// Reads a job, waiting up to `wait` for it to become final. A capped wait past
/// the caller's `MAX_WAITS_PER_KEY` is not held: it answers the job as it is now.
pub async fn wait_for(state: &AppState, caller: &Caller, id: &str, wait: Duration, hold: Hold) -> Result<JobView, ApiError> {
    if wait.is_zero() {
        return load_job(state, caller, id).await;
    }
    let waiter = match hold {
        Hold::Uncapped => state.waiters.register_uncapped(id),
        Hold::Capped => match state.waiters.register(id, &caller.owner) {
            Ok(w) => w,
            Err(e) => {
                tracing::debug!(owner = %caller.owner, "{e}: answering without holding");
                return load_job(state, caller, id).await;
            }
        },
    };
    let notified = waiter.notify().notified();
    tokio::pin!(notified);
    notified.as_mut().enable();
    let view = load_job(state, caller, id).await?;
    if view.status.is_final() {
        return Ok(view);
    }
    let _ = tokio::time::timeout(wait, notified).await;
    load_job(state, caller, id).await
}

/// `GET /v1/jobs/{id}`.
pub async fn get(state: AppState, id: String, q: HashMap<String, String>, headers: HeaderMap, addr: Option<SocketAddr>) -> Result<Handled, ApiError> {
    let caller = authorize(&state, &headers, addr).await?;
    let wait = parse_wait(&q)?;
    let view = wait_for(&state, &caller, &id, wait, Hold::Capped).await?;
    let style = view.request.as_ref().map(|r| r.style);
    let body = serde_json::to_value(&view).unwrap_or_default();
    Ok(Handled::json(StatusCode::OK, &body).with_style(style).with_rate(&caller))
}

/// `DELETE /v1/jobs/{id}`.
pub async fn delete(state: AppState, id: String, headers: HeaderMap, addr: Option<SocketAddr>) -> Result<Handled, ApiError> {
    let caller = authorize(&state, &headers, addr).await?;
    if !common::job::is_job_id(&id) {
        return Err(ApiError::NotFound);
    }
    let outcome = {
        let mut c = state.conn().await?;
        state.store.cancel(&mut c, &id, &caller.owner).await?
    };
    match outcome {
        Canceled::Canceled(view) => {
            let style = view.request.as_ref().map(|r| r.style);
            Ok(Handled::json(StatusCode::OK, &serde_json::to_value(&view).unwrap_or_default()).with_style(style).with_rate(&caller))
        }
        Canceled::NotFound => Err(ApiError::NotFound),
        Canceled::NotCancelable(status) => Err(ApiError::NotCancelable(status)),
    }
}
