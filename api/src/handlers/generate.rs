//! `POST /generate`: the synchronous form the product started with. Same
//! body as `POST /v1/couplets`; waits up to `GENERATE_TIMEOUT_MS` for the job
//! and answers 200 with it when it succeeded, 502 `job_failed` (409
//! `job_canceled`) with the final job, its id and a `Location` when it did
//! not, or 504 with the job id so the client can keep polling.

use super::jobs::{wait_for, Hold};
use super::submit::enqueue;
use super::Handled;
use crate::error::ApiError;
use crate::state::AppState;
use common::job::JobStatus;
use std::net::SocketAddr;
use warp::http::{HeaderMap, StatusCode};

/// `POST /generate`.
pub async fn handle<S, B>(state: AppState, headers: HeaderMap, addr: Option<SocketAddr>, body: S) -> Result<Handled, ApiError>
where
    S: futures::Stream<Item = Result<B, warp::Error>> + Unpin,
    B: bytes::Buf,
{
    let (caller, sub) = enqueue(&state, &headers, addr, body).await?;
    let view = wait_for(&state, &caller, &sub.id, state.cfg.generate_timeout, Hold::Uncapped).await?;
    match view.status {
        JobStatus::Succeeded => {}
        // A failed job is never a 200: clients that only check the status code must see it.
        JobStatus::Failed => return Err(ApiError::JobFailed(Box::new(view))),
        JobStatus::Canceled => return Err(ApiError::JobCanceled(Box::new(view))),
        _ => return Err(ApiError::Timeout(sub.id)),
    }
    Ok(Handled::json(StatusCode::OK, &serde_json::to_value(&view).unwrap_or_default())
        .with_style(Some(sub.request.style))
        .with_rate(&caller))
}
