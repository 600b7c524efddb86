//! Wiring of the long-running worker: the model, the Redis pool, the
//! consumer, the webhook dispatcher and the metrics/health listener, with a
//! three-step shutdown (signal → stop reading and drain → deadline).
//!
//! Like the API's `server::run`, [`run`] takes its settings and the future
//! that starts the shutdown, and reports how it ended
//! as a [`RunError`] instead of exiting: `main` owns the exit code (and the
//! runtime, which it must not wait on when the deadline left inference
//! running on a blocking thread). The background tasks run under a
//! [`Supervisor`]: the consumer and the dispatcher are restarted when they
//! fail, a failed metrics/health listener shuts the worker down (see
//! [`common::supervise`] for why).

use crate::config::WorkerConfig;
use crate::consumer::Consumer;
use crate::model::{Generator, RuntimeOptions};
use crate::queue::Queue;
use crate::webhooks::Dispatcher;
use common::store::Store;
use common::eviction::EvictionError;
use common::metrics::{new_registry, task, TaskMetrics, WebhookMetrics, WorkerMetrics};
use common::redis_pool::{pool, redact, PoolOptions};
use common::supervise::Supervisor;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use warp::Filter;

/// Why [`run`] stopped with an error; `main` exits 1 for each.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Redis would evict job data (`REDIS_EVICTION_CHECK`).
    #[error(transparent)]
    Eviction(#[from] EvictionError),
    /// The model could not be loaded.
    #[error("{0}")]
    Model(String),
    /// No Redis pool could be built from `REDIS_URL`.
    #[error("REDIS_URL: {0}")]
    Redis(String),
    /// `METRICS_ADDR` could not be listened on.
    #[error("METRICS_ADDR {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A critical background task failed and the worker shut down on purpose.
    #[error("background task {0} failed; the worker shut down")]
    TaskFailed(&'static str),
    /// Draining outlasted `SHUTDOWN_TIMEOUT_MS`; entries still in flight are
    /// reclaimed by another worker after the visibility timeout.
    #[error("shutdown deadline passed; exiting with work in flight (it will be reclaimed)")]
    DrainDeadline,
}

impl RunError {
    /// Stable type string for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            RunError::Eviction(e) => e.kind(),
            RunError::Model(_) => "model",
            RunError::Redis(_) => "redis",
            RunError::Listen { .. } => "listen",
            RunError::TaskFailed(_) => "task_failed",
            RunError::DrainDeadline => "drain_deadline",
        }
    }
}

/// Runs the worker until `shutdown` resolves (or a critical task fails), then
/// drains within `SHUTDOWN_TIMEOUT_MS`. `model` says where the model and ONNX
/// Runtime are; it is loaded here, on a blocking thread, after the Redis checks.
pub async fn run(cfg: WorkerConfig, model: RuntimeOptions, shutdown: impl Future<Output = ()>) -> Result<(), RunError> {
    let registry = new_registry();
    let metrics = WorkerMetrics::new(&registry);
    let wh_metrics = WebhookMetrics::new(&registry);
    let task_metrics = TaskMetrics::new(&registry);
    common::eviction::check(&cfg.redis_url, cfg.eviction_check).await?;
    let gen = tokio::task::spawn_blocking(move || Generator::load(&model))
        .await
        .map_err(|e| RunError::Model(format!("model load panicked: {e}")))?
        .map_err(|e| RunError::Model(e.to_string()))?;
    metrics.model_load.set(gen.load_seconds());
    metrics.model_info.with_label_values(&[gen.provider(), "default"]).set(1);
    tracing::info!(
        provider = gen.provider(),
        load_seconds = gen.load_seconds(),
        consumer = %cfg.consumer,
        redis = %redact(&cfg.redis_url),
        max_batch = cfg.max_batch,
        max_wait_ms = cfg.max_wait.as_millis() as u64,
        "worker starting"
    );
    let gen = Arc::new(gen);
    let redis = pool(
        &cfg.redis_url,
        PoolOptions { max_size: 8, response_timeout: Duration::from_secs(5), connect_timeout: Duration::from_secs(1) },
    )
    .map_err(RunError::Redis)?;
    let store = Store::new(cfg.key_prefix.clone());
    let queue = Queue::new(redis.clone(), store.clone(), cfg.consumer.clone());
    if let Err(e) = queue.ensure_group().await {
        tracing::warn!(error = %e, "could not create the consumer group yet; will retry while reading");
    }

    let token = CancellationToken::new();
    let supervisor = Supervisor::new(token.clone(), task_metrics);
    let ready = Arc::new(AtomicBool::new(true));
    let http = serve_http(cfg.metrics_addr, registry, redis.clone(), store.clone(), ready.clone(), token.clone())?;
    let http = supervisor.critical(task::WORKER_HTTP, http);

    let consumer_task = {
        let (queue, cfg, token) = (queue, cfg.clone(), token.clone());
        supervisor.restart(task::CONSUMER, move || Consumer::new(queue.clone(), cfg.clone(), gen.clone(), metrics.clone()).run(token.clone()))
    };
    let dispatcher_task = cfg.webhooks.clone().map(|wh| {
        let d = Dispatcher::new(redis.clone(), store.clone(), wh, wh_metrics);
        let token = token.clone();
        supervisor.restart(task::WEBHOOK_DISPATCHER, move || d.clone().run(token.clone()))
    });

    tokio::select! {
        _ = shutdown => tracing::info!("shutdown signal received; draining"),
        _ = token.cancelled() => tracing::warn!("a critical task failed; draining"),
    }
    ready.store(false, Ordering::SeqCst);
    token.cancel();
    let drain = async {
        let _ = consumer_task.await;
        if let Some(d) = dispatcher_task {
            let _ = d.await;
        }
    };
    if tokio::time::timeout(cfg.shutdown_timeout, drain).await.is_err() {
        tracing::error!("shutdown deadline passed; exiting with work in flight (it will be reclaimed)");
        return Err(RunError::DrainDeadline);
    }
    let _ = http.await;
    if let Some(failed) = supervisor.failure() {
        return Err(RunError::TaskFailed(failed));
    }
    tracing::info!("worker stopped");
    Ok(())
}

fn serve_http(
    addr: std::net::SocketAddr,
    registry: prometheus::Registry,
    redis: common::redis_pool::Pool,
    store: Store,
    ready: Arc<AtomicBool>,
    shutdown: CancellationToken,
) -> Result<impl Future<Output = ()> + Send + 'static, RunError> {
    let metrics = warp::path!("metrics").and(warp::get()).map(move || {
        warp::reply::with_header(common::metrics::encode(&registry), "content-type", "text/plain; version=0.0.4")
    });
    let healthz = warp::path!("healthz").and(warp::get()).map(|| warp::reply::json(&serde_json::json!({"status": "ok"})));
    let readyz = warp::path!("readyz").and(warp::get()).then(move || {
        let (redis, store) = (redis.clone(), store.clone());
        let ready = ready.clone();
        async move {
            let redis_ok = match tokio::time::timeout(Duration::from_secs(1), redis.get()).await {
                Ok(Ok(mut c)) => store.ping(&mut *c).await.is_ok(),
                _ => false,
            };
            let ok = redis_ok && ready.load(Ordering::SeqCst);
            let body = serde_json::json!({"status": if ok { "ready" } else { "not_ready" }, "redis": redis_ok, "model": true});
            let code = if ok { warp::http::StatusCode::OK } else { warp::http::StatusCode::SERVICE_UNAVAILABLE };
            warp::reply::with_status(warp::reply::json(&body), code)
        }
    });
    let routes = metrics.or(healthz).or(readyz);
    let listen = |source| RunError::Listen { addr, source };
    let listener = std::net::TcpListener::bind(addr).map_err(listen)?;
    listener.set_nonblocking(true).map_err(listen)?;
    let listener = tokio::net::TcpListener::from_std(listener).map_err(listen)?;
    tracing::info!(addr = %listener.local_addr().map_err(listen)?, "metrics and health listener up");
    Ok(warp::serve(routes).incoming(listener).graceful(async move { shutdown.cancelled().await }).run())
}
