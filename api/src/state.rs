//! Shared state of the API process: settings, the Redis pool, the store,
//! metrics, the completion waiters, the render limiter and the failed-auth brake.
//! [`AppState`] is one `Arc` to it: every route and handler gets a clone per
//! request, so a clone is one reference count, not one per metric and pool.

use crate::config::ApiConfig;
use crate::waiters::Waiters;
use common::metrics::{ApiMetrics, QueueMetrics};
use common::redis_pool::Pool;
use common::store::Store;
use std::sync::Arc;

/// A cheap handle on [`State`] (derefs to it).
#[derive(Clone)]
pub struct AppState(Arc<State>);

impl AppState {
    /// Wraps the state built at start.
    pub fn new(state: State) -> Self {
        Self(Arc::new(state))
    }
}

impl std::ops::Deref for AppState {
    type Target = State;
    fn deref(&self) -> &State {
        &self.0
    }
}

/// Everything a handler needs.
pub struct State {
    /// Settings.
    pub cfg: ApiConfig,
    /// Redis pool.
    pub redis: Pool,
    /// The Redis protocol (every key, field and script is behind its operations).
    pub store: Store,
    /// HTTP metrics.
    pub metrics: ApiMetrics,
    /// Queue gauges (sampled on scrape).
    pub queue_metrics: QueueMetrics,
    /// Metrics registry.
    pub registry: prometheus::Registry,
    /// Waiters for finished jobs.
    pub waiters: Waiters,
    /// Image render limiter and cache.
    pub renders: crate::renders::Renders,
    /// Failed authorizations per client IP.
    pub auth_failures: crate::auth_failures::AuthFailures,
}

impl State {
    /// A shared handle on a pooled connection (the API never blocks one), or
    /// `Unavailable` within the pool's timeouts.
    pub async fn conn(&self) -> Result<common::redis_pool::Tracked, crate::error::ApiError> {
        Ok(common::redis_pool::shared(&self.redis).await?)
    }
}
