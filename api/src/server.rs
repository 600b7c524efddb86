//! Serving: build the state, create the consumer group, start the completion
//! listener and the HTTP server, and shut down in three steps (signal → stop
//! accepting and drain in-flight requests → deadline).

use crate::config::{ApiConfig, AuthMode};
use crate::routes::routes;
use crate::state::AppState;
use crate::waiters::Waiters;
use common::keys::{Keys, GROUP};
use common::metrics::{new_registry, ApiMetrics, QueueMetrics};
use common::redis_pool::{pool, redact, PoolOptions};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Builds the shared state (no I/O).
pub fn state(cfg: ApiConfig) -> Result<AppState, String> {
    let redis = pool(
        &cfg.redis_url,
        PoolOptions { max_size: cfg.redis_pool_size, response_timeout: Duration::from_millis(900), connect_timeout: Duration::from_millis(500) },
    )?;
    let registry = new_registry();
    Ok(AppState {
        keys: Keys::new(cfg.key_prefix.clone()),
        metrics: ApiMetrics::new(&registry),
        queue_metrics: QueueMetrics::new(&registry),
        registry,
        waiters: Waiters::default(),
        redis,
        cfg: Arc::new(cfg),
    })
}

async fn ensure_group(state: &AppState) {
    let Ok(mut c) = state.redis.get().await else { return };
    let r: redis::RedisResult<()> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(state.keys.stream())
        .arg(GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut *c)
        .await;
    if let Err(e) = r {
        if !e.to_string().contains("BUSYGROUP") {
            tracing::warn!(error = %e, "could not create the consumer group");
        }
    }
}

/// Serves until `shutdown` resolves.
pub async fn run(cfg: ApiConfig, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    if cfg.auth_mode == AuthMode::Off {
        tracing::warn!("AUTH_MODE=off: no API keys are checked; every caller shares one tenant. Use AUTH_MODE=required in production.");
    }
    let listen = cfg.listen_addr;
    let grace = cfg.shutdown_timeout;
    let state = state(cfg).map_err(|e| anyhow::anyhow!(e))?;
    tracing::info!(redis = %redact(&state.cfg.redis_url), prefix = %state.keys.prefix(), "api starting");
    ensure_group(&state).await;
    let token = CancellationToken::new();
    tokio::spawn(state.waiters.clone().listen(state.cfg.redis_url.clone(), state.keys.done_channel(), token.clone()));
    {
        // Keeps the group present even if Redis restarted empty.
        let s = state.clone();
        let t = token.clone();
        tokio::spawn(async move {
            while !t.is_cancelled() {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(5)) => ensure_group(&s).await,
                    _ = t.cancelled() => {}
                }
            }
        });
    }
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| anyhow::anyhow!("LISTEN_ADDR {listen}: {e}"))?;
    tracing::info!(addr = %listener.local_addr()?, "listening");
    let t2 = token.clone();
    let server = warp::serve(routes(state)).incoming(listener).graceful(async move {
        shutdown.await;
        t2.cancel();
    });
    let handle = tokio::spawn(server.run());
    token.cancelled().await;
    tracing::info!("shutdown signal received; draining requests");
    if tokio::time::timeout(grace, handle).await.is_err() {
        tracing::warn!("shutdown deadline passed with requests in flight");
    }
    Ok(())
}
