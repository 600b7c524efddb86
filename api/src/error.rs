//! The API's one error type and its one mapping to HTTP. `kind()` is the
//! JSON `error.type`, the log field and the metric label, so they cannot
//! drift. Client mistakes are 4xx; only Redis being unreachable is 503, and
//! nothing a client sends can produce a 500. A job that `POST /generate`
//! waited for and that failed is 502 `job_failed` (never 200).

use common::request::ValidationError;
use serde_json::json;
use warp::http::{HeaderValue, StatusCode};
use warp::reply::Response;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Body is not valid JSON.
    #[error("request body is not valid JSON: {0}")]
    MalformedJson(String),
    /// JSON has wrong types or unknown fields.
    #[error("{0}")]
    InvalidField(String),
    /// Semantic validation failed.
    #[error("{0}")]
    Validation(#[from] ValidationError),
    /// Body too large.
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// Not `application/json`.
    #[error("content type must be application/json")]
    UnsupportedMediaType,
    /// Body took too long to arrive.
    #[error("request body was not received in time")]
    RequestTimeout,
    /// Bad query parameter.
    #[error("{0}")]
    BadQuery(String),
    /// No or unknown API key.
    #[error("missing or invalid API key: send Authorization: Bearer <key>")]
    Unauthorized,
    /// Job not found (or not the caller's).
    #[error("no such job")]
    NotFound,
    /// Route not found.
    #[error("no such route")]
    NoRoute,
    /// Method not allowed on the route.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Idempotency key reused with another body.
    #[error("Idempotency-Key was already used with a different request body (job {0})")]
    IdempotencyConflict(String),
    /// Job cannot be canceled in its state.
    #[error("job is {0} and can no longer be canceled")]
    NotCancelable(String),
    /// Image asked for before the job succeeded.
    #[error("job is {0}; images exist only for succeeded jobs")]
    NotReady(String),
    /// Over the rate limit.
    #[error("rate limit exceeded; retry after {retry_after_s} s")]
    RateLimited {
        /// Seconds to wait.
        retry_after_s: u64,
        /// Limit (burst).
        limit: u64,
        /// Seconds until the bucket is full again.
        reset_s: u64,
    },
    /// Queue backlog past its limit.
    #[error("the service is busy (queue backlog {0}); retry later")]
    Overloaded(u64),
    /// The caller already has `MAX_BACKLOG_PER_KEY` jobs queued or running.
    #[error("this API key already has {0} jobs queued or running (its queue quota); retry when some finish")]
    QueueQuota(u64),
    /// Too many renders in progress (`MAX_CONCURRENT_RENDERS`).
    #[error("too many images are being drawn right now; retry shortly")]
    RenderBusy,
    /// Redis unreachable.
    #[error("the service is temporarily unavailable; retry later")]
    Unavailable,
    /// Sync generation did not finish in time.
    #[error("the couplet is not ready yet; poll /v1/jobs/{0}")]
    Timeout(String),
    /// Rendering refused the request (e.g. image too large).
    #[error("{0}")]
    Render(String),
    /// `POST /generate`: the job ended `failed` (the worker could not produce a couplet).
    #[error("job {} failed: {}", .0.id, .0.error.as_ref().map(|e| format!("{}: {}", e.kind, e.message)).unwrap_or_default())]
    JobFailed(Box<common::job::JobView>),
    /// `POST /generate`: the job was canceled (`DELETE /v1/jobs/{id}`) while the request waited.
    #[error("job {} was canceled before it ran", .0.id)]
    JobCanceled(Box<common::job::JobView>),
}

impl ApiError {
    /// Stable machine-readable type.
    pub fn kind(&self) -> &'static str {
        match self {
            ApiError::MalformedJson(_) => "malformed_json",
            ApiError::InvalidField(_) => "invalid_field",
            ApiError::Validation(v) => v.kind(),
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::RequestTimeout => "request_timeout",
            ApiError::BadQuery(_) => "invalid_query",
            ApiError::Unauthorized => "unauthorized",
            ApiError::NotFound => "not_found",
            ApiError::NoRoute => "no_route",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::IdempotencyConflict(_) => "idempotency_conflict",
            ApiError::NotCancelable(_) => "not_cancelable",
            ApiError::NotReady(_) => "not_ready",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Overloaded(_) | ApiError::RenderBusy => "overloaded",
            ApiError::QueueQuota(_) => "queue_quota",
            ApiError::Unavailable => "unavailable",
            ApiError::Timeout(_) => "timeout",
            ApiError::Render(_) => "invalid_render_options",
            ApiError::JobFailed(_) => "job_failed",
            ApiError::JobCanceled(_) => "job_canceled",
        }
    }

    /// HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::MalformedJson(_) | ApiError::BadQuery(_) => StatusCode::BAD_REQUEST,
            ApiError::InvalidField(_) | ApiError::Validation(_) | ApiError::Render(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound | ApiError::NoRoute => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::IdempotencyConflict(_) | ApiError::NotCancelable(_) | ApiError::NotReady(_) => StatusCode::CONFLICT,
            ApiError::RateLimited { .. } | ApiError::QueueQuota(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Overloaded(_) | ApiError::RenderBusy | ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            // The request was fine; the upstream (the worker) could not serve it.
            ApiError::JobFailed(_) => StatusCode::BAD_GATEWAY,
            ApiError::JobCanceled(_) => StatusCode::CONFLICT,
        }
    }

    /// The metric `reason` of a refusal, when this error is one.
    pub fn reject_reason(&self) -> Option<&'static str> {
        use common::metrics::reason;
        match self {
            ApiError::MalformedJson(_)
            | ApiError::InvalidField(_)
            | ApiError::Validation(_)
            | ApiError::PayloadTooLarge(_)
            | ApiError::UnsupportedMediaType
            | ApiError::RequestTimeout
            | ApiError::BadQuery(_) => Some(reason::VALIDATION),
            ApiError::Unauthorized => Some(reason::AUTH),
            ApiError::RateLimited { .. } | ApiError::QueueQuota(_) => Some(reason::RATE_LIMITED),
            ApiError::Overloaded(_) | ApiError::RenderBusy => Some(reason::BACKPRESSURE),
            ApiError::Unavailable => Some(reason::UNAVAILABLE),
            _ => None,
        }
    }

    /// The JSON error response with its headers.
    pub fn into_response(self) -> Response {
        let mut err = json!({"type": self.kind(), "message": self.to_string()});
        if let ApiError::Validation(v) = &self {
            err["field"] = json!(v.field());
        }
        let mut body = json!({"error": err});
        if let ApiError::Timeout(id) = &self {
            body["id"] = json!(id);
        }
        let location = match &self {
            ApiError::JobFailed(job) | ApiError::JobCanceled(job) => {
                // The final job (with its own `error.type`, e.g. `attempts_exhausted`) and where it lives.
                body["id"] = json!(job.id);
                body["job"] = serde_json::to_value(job).unwrap_or_default();
                HeaderValue::from_str(&format!("/v1/jobs/{}", job.id)).ok()
            }
            _ => None,
        };
        let mut resp = warp::reply::with_status(warp::reply::json(&body), self.status()).into_response_inner();
        let h = resp.headers_mut();
        match &self {
            ApiError::RateLimited { retry_after_s, limit, reset_s } => {
                h.insert("retry-after", HeaderValue::from(*retry_after_s));
                h.insert("ratelimit-limit", HeaderValue::from(*limit));
                h.insert("ratelimit-remaining", HeaderValue::from(0u64));
                h.insert("ratelimit-reset", HeaderValue::from(*reset_s));
            }
            ApiError::Overloaded(_) | ApiError::QueueQuota(_) => {
                h.insert("retry-after", HeaderValue::from(5u64));
            }
            ApiError::RenderBusy => {
                h.insert("retry-after", HeaderValue::from(1u64));
            }
            ApiError::Unavailable => {
                h.insert("retry-after", HeaderValue::from(1u64));
            }
            ApiError::Unauthorized => {
                h.insert("www-authenticate", HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        if let Some(l) = location {
            h.insert("location", l);
        }
        resp
    }
}

impl From<redis::RedisError> for ApiError {
    fn from(e: redis::RedisError) -> Self {
        tracing::warn!(error = %e, "redis error");
        ApiError::Unavailable
    }
}

impl From<common::store::StoreError> for ApiError {
    fn from(e: common::store::StoreError) -> Self {
        tracing::warn!(error = %e, kind = e.kind(), "redis store error");
        ApiError::Unavailable
    }
}

impl From<common::redis_pool::PoolError> for ApiError {
    fn from(e: common::redis_pool::PoolError) -> Self {
        tracing::warn!(error = %e, "redis pool error");
        ApiError::Unavailable
    }
}

trait IntoResponseInner {
    fn into_response_inner(self) -> Response;
}

impl<T: warp::Reply> IntoResponseInner for T {
    fn into_response_inner(self) -> Response {
        self.into_response()
    }
}
