//! Shared state of the API process: settings, the Redis pool, the store,
//! metrics, the completion waiters, the render limiter and the failed-auth brake. Cloned cheaply into every handler.

use crate::config::ApiConfig;
use crate::waiters::Waiters;
use common::metrics::{ApiMetrics, QueueMetrics};
use common::redis_pool::Pool;
use common::store::Store;
use std::sync::Arc;

/// Everything a handler needs.
#[derive(Clone)]
pub struct AppState {
    /// Settings.
    pub cfg: Arc<ApiConfig>,
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

impl AppState {
    /// A pooled connection, or `Unavailable` within the pool's timeouts.
    pub async fn conn(&self) -> Result<common::redis_pool::Connection, crate::error::ApiError> {
        Ok(self.redis.get().await?)
    }
}
