//! Wiring of the long-running worker: the model, the Redis pool, the
//! consumer, the webhook dispatcher and the metrics/health listener, with a
//! three-step shutdown (signal → stop reading and drain → deadline).

use crate::config::WorkerConfig;
use crate::consumer::Consumer;
use crate::model::{Generator, RuntimeOptions};
use crate::queue::Queue;
use crate::webhooks::Dispatcher;
use common::keys::Keys;
use common::metrics::{new_registry, WebhookMetrics, WorkerMetrics};
use common::redis_pool::{pool, redact, PoolOptions};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use warp::Filter;

/// Runs the worker until a shutdown signal, then drains within the deadline.
pub async fn run(cfg: WorkerConfig, opts: RuntimeOptions) -> anyhow::Result<()> {
    let registry = new_registry();
    let metrics = WorkerMetrics::new(&registry);
    let wh_metrics = WebhookMetrics::new(&registry);
    common::eviction::check(&cfg.redis_url, cfg.eviction_check).await?;
    let gen = tokio::task::spawn_blocking(move || Generator::load(&opts)).await??;
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
    .map_err(|e| anyhow::anyhow!(e))?;
    let keys = Keys::new(cfg.key_prefix.clone());
    let queue = Queue::new(redis.clone(), keys.clone(), cfg.consumer.clone());
    if let Err(e) = queue.ensure_group().await {
        tracing::warn!(error = %e, "could not create the consumer group yet; will retry while reading");
    }

    let shutdown = CancellationToken::new();
    let ready = Arc::new(AtomicBool::new(true));
    let http = serve_http(cfg.metrics_addr, registry, redis.clone(), ready.clone(), shutdown.clone())?;

    let consumer = Consumer::new(queue, cfg.clone(), gen, metrics);
    let consumer_task = tokio::spawn(consumer.run(shutdown.clone()));
    let dispatcher_task = cfg.webhooks.clone().map(|wh| {
        let d = Dispatcher::new(redis.clone(), keys.clone(), wh, wh_metrics);
        tokio::spawn(d.run(shutdown.clone()))
    });

    // Supervise: a task that ends on its own (panic) stops the process rather than leaving a silent zombie.
    let mut consumer_task = consumer_task;
    tokio::select! {
        _ = common::shutdown::signal() => tracing::info!("shutdown signal received; draining"),
        r = &mut consumer_task => {
            tracing::error!(result = ?r.err(), "consumer task ended unexpectedly");
            anyhow::bail!("consumer task ended unexpectedly");
        }
    }
    ready.store(false, Ordering::SeqCst);
    shutdown.cancel();
    let drain = async {
        let _ = consumer_task.await;
        if let Some(d) = dispatcher_task {
            let _ = d.await;
        }
    };
    if tokio::time::timeout(cfg.shutdown_timeout, drain).await.is_err() {
        tracing::error!("shutdown deadline passed; exiting with work in flight (it will be reclaimed)");
        std::process::exit(1);
    }
    let _ = http.await;
    tracing::info!("worker stopped");
    Ok(())
}

fn serve_http(
    addr: std::net::SocketAddr,
    registry: prometheus::Registry,
    redis: common::redis_pool::Pool,
    ready: Arc<AtomicBool>,
    shutdown: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let metrics = warp::path!("metrics").and(warp::get()).map(move || {
        warp::reply::with_header(common::metrics::encode(&registry), "content-type", "text/plain; version=0.0.4")
    });
    let healthz = warp::path!("healthz").and(warp::get()).map(|| warp::reply::json(&serde_json::json!({"status": "ok"})));
    let readyz = warp::path!("readyz").and(warp::get()).then(move || {
        let redis = redis.clone();
        let ready = ready.clone();
        async move {
            let redis_ok = match tokio::time::timeout(Duration::from_secs(1), redis.get()).await {
                Ok(Ok(mut c)) => redis::cmd("PING").query_async::<String>(&mut *c).await.is_ok(),
                _ => false,
            };
            let ok = redis_ok && ready.load(Ordering::SeqCst);
            let body = serde_json::json!({"status": if ok { "ready" } else { "not_ready" }, "redis": redis_ok, "model": true});
            let code = if ok { warp::http::StatusCode::OK } else { warp::http::StatusCode::SERVICE_UNAVAILABLE };
            warp::reply::with_status(warp::reply::json(&body), code)
        }
    });
    let routes = metrics.or(healthz).or(readyz);
    let listener = std::net::TcpListener::bind(addr).map_err(|e| anyhow::anyhow!("METRICS_ADDR {addr}: {e}"))?;
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    tracing::info!(addr = %listener.local_addr()?, "metrics and health listener up");
    let server = warp::serve(routes).incoming(listener).graceful(async move { shutdown.cancelled().await }).run();
    Ok(tokio::spawn(server))
}
