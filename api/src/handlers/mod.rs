//! Request handlers, one file per resource. Every handler returns
//! `Result<Handled, ApiError>`; [`crate::routes`] turns that into a response
//! (errors through [`ApiError::into_response`]) and records the metrics, so
//! no handler spells a status code for an error or a metric name.

pub mod generate;
pub mod health;
pub mod image;
pub mod jobs;
pub mod submit;
pub mod ui;

use crate::auth::Caller;
use common::Style;
use warp::http::{HeaderValue, StatusCode};
use warp::reply::Response;
use warp::Reply;

/// A successful handler result: the response and the style label for metrics.
pub struct Handled {
    /// The response.
    pub response: Response,
    /// Style of the couplet concerned, if any.
    pub style: Option<Style>,
}

impl Handled {
    /// A JSON response.
    pub fn json(status: StatusCode, body: &serde_json::Value) -> Self {
        Handled { response: warp::reply::with_status(warp::reply::json(body), status).into_response(), style: None }
    }

    /// Sets the style label.
    pub fn with_style(mut self, style: Option<Style>) -> Self {
        self.style = style;
        self
    }

    /// Adds the caller's rate-limit headers.
    pub fn with_rate(mut self, caller: &Caller) -> Self {
        if let Some(r) = caller.rate {
            let h = self.response.headers_mut();
            h.insert("ratelimit-limit", HeaderValue::from(r.limit));
            h.insert("ratelimit-remaining", HeaderValue::from(r.remaining));
            h.insert("ratelimit-reset", HeaderValue::from(r.reset_s));
        }
        self
    }
}

/// The caller's job `id`; another tenant's job is "not found".
pub async fn load_job(state: &crate::state::AppState, caller: &Caller, id: &str) -> Result<common::job::JobView, crate::error::ApiError> {
    if !common::job::is_job_id(id) {
        return Err(crate::error::ApiError::NotFound);
    }
    let mut c = state.conn().await?;
    state.store.job(&mut c, id, &caller.owner).await?.ok_or(crate::error::ApiError::NotFound)
}
