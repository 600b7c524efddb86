//! `GET /healthz` (the process is up), `GET /readyz` (Redis answers and the
//! consumer group exists, so submissions can be queued) and `GET /metrics`
//! (Prometheus text, with queue gauges sampled from Redis on each scrape).

use super::Handled;
use crate::error::ApiError;
use crate::state::AppState;
use serde_json::json;
use std::time::Duration;
use warp::http::{HeaderValue, StatusCode};
use warp::Reply;

/// `GET /healthz`.
pub async fn healthz() -> Result<Handled, ApiError> {
    Ok(Handled::json(StatusCode::OK, &json!({"status": "ok"})))
}

/// `GET /readyz`.
pub async fn readyz(state: AppState) -> Result<Handled, ApiError> {
    let check = async {
        let mut c = state.redis.get().await.ok()?;
        state.store.group_ready(&mut *c).await.ok()
    };
    let ok = matches!(tokio::time::timeout(Duration::from_secs(1), check).await, Ok(Some(true)));
    let status = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    Ok(Handled::json(status, &json!({"status": if ok { "ready" } else { "not_ready" }, "redis": ok, "queue": ok})))
}

/// `GET /metrics`.
pub async fn metrics(state: AppState) -> Result<Handled, ApiError> {
    crate::queue_stats::sample(&state, Duration::from_secs(30)).await;
    let mut r = common::metrics::encode(&state.registry).into_response();
    r.headers_mut().insert("content-type", HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    Ok(Handled { response: r, style: None })
}
