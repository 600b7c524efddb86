//! Serving: build the state, create the consumer group, start the completion
//! listener and the HTTP server, and shut down in three steps (signal → stop
//! accepting and drain in-flight requests → deadline). The background tasks
//! run under a [`Supervisor`]: the completion listener and the group keeper
//! are restarted when they fail; a failed accept loop shuts the API down and
//! `run` returns an error (see [`common::supervise`]).
//!
//! The accept loop is warp's own graceful loop written out here for one
//! reason: hyper enforces a deadline on the request head only when it is given
//! a timer, and warp's server gives none, so a client that never finishes its
//! headers (slowloris) would hold a connection forever. Each connection gets
//! `BODY_TIMEOUT_MS` for its head (the same deadline the body has; it also
//! bounds how long an idle keep-alive connection is kept). HTTP/1.1 only: h2c
//! prior knowledge is not offered.
//!
//! The loop also bounds the open connections: it accepts only while it holds
//! one of `MAX_CONNECTIONS` permits, so further clients wait in the kernel's
//! accept backlog (and are refused by the kernel once that is full) instead
//! of costing a task and buffers each. Every connection's writes carry
//! `WRITE_TIMEOUT_MS` ([`crate::deadline_io`]): a client that stops reading
//! its response is dropped.

use crate::config::{ApiConfig, AuthMode};
use crate::deadline_io::DeadlineIo;
use crate::remote::ClientAddr;
use crate::routes::routes;
use crate::state::{AppState, State};
use crate::waiters::Waiters;
use common::metrics::{new_registry, task, ApiMetrics, QueueMetrics, TaskMetrics};
use common::redis_pool::{pool, redact, PoolOptions};
use common::store::Store;
use common::supervise::Supervisor;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use warp::reply::Response;
use warp::Filter;

/// Builds the shared state (no I/O).
pub fn state(cfg: ApiConfig) -> Result<AppState, String> {
    let redis = pool(
        &cfg.redis_url,
        PoolOptions { max_size: cfg.redis_pool_size, response_timeout: Duration::from_millis(900), connect_timeout: Duration::from_millis(500) },
    )?;
    let registry = new_registry();
    Ok(AppState::new(State {
        store: Store::new(cfg.key_prefix.clone()),
        metrics: ApiMetrics::new(&registry),
        queue_metrics: QueueMetrics::new(&registry),
        registry,
        waiters: Waiters::new(cfg.max_waits_per_key),
        renders: crate::renders::Renders::new(cfg.max_concurrent_renders, cfg.render_cache_entries, cfg.render_cache_bytes),
        auth_failures: crate::auth_failures::AuthFailures::new(cfg.auth_failures_per_ip),
        redis,
        cfg,
    }))
}

async fn ensure_group(state: &AppState) {
    let Ok(mut c) = state.redis.get().await else { return };
    if let Err(e) = state.store.ensure_group(&mut *c).await {
        tracing::warn!(error = %e, "could not create the consumer group");
    }
}

/// The listening socket with the configured accept backlog (`TcpListener::bind`
/// would leave it at 128: a festival-morning burst of new clients then loses SYNs
/// and waits a second for each retry; measured in the submit bench as 1–3 s stalls).
fn bind(addr: std::net::SocketAddr, backlog: u32) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// Serves until `shutdown` resolves.
pub async fn run(cfg: ApiConfig, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    if cfg.auth_mode == AuthMode::Off {
        tracing::warn!("AUTH_MODE=off: no API keys are checked; every caller shares one tenant. Use AUTH_MODE=required in production.");
    }
    let listen = cfg.listen_addr;
    let grace = cfg.shutdown_timeout;
    let state = state(cfg).map_err(|e| anyhow::anyhow!(e))?;
    tracing::info!(redis = %redact(&state.cfg.redis_url), prefix = %state.store.prefix(), "api starting");
    ensure_group(&state).await;
    let token = CancellationToken::new();
    let supervisor = Supervisor::new(token.clone(), TaskMetrics::new(&state.registry));
    {
        let (waiters, url, channel, t) = (state.waiters.clone(), state.cfg.redis_url.clone(), state.store.done_channel(), token.clone());
        supervisor.restart(task::COMPLETION_LISTENER, move || waiters.clone().listen(url.clone(), channel.clone(), t.clone()));
    }
    {
        // Keeps the group present even if Redis restarted empty.
        let s = state.clone();
        let t = token.clone();
        supervisor.restart(task::GROUP_KEEPER, move || {
            let (s, t) = (s.clone(), t.clone());
            async move {
                while !t.is_cancelled() {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(5)) => ensure_group(&s).await,
                        _ = t.cancelled() => {}
                    }
                }
            }
        });
    }
    let listener = bind(listen, state.cfg.listen_backlog).map_err(|e| anyhow::anyhow!("LISTEN_ADDR {listen}: {e}"))?;
    tracing::info!(addr = %listener.local_addr()?, "listening");
    let t2 = token.clone();
    let limits = ConnLimits { head_timeout: state.cfg.body_timeout, write_timeout: state.cfg.write_timeout, max_connections: state.cfg.max_connections };
    let server = serve(listener, routes(state), limits, async move {
        shutdown.await;
        t2.cancel();
    });
    // Without its accept loop the API serves nothing: a failure shuts it down (see common::supervise).
    let handle = supervisor.critical(task::API_SERVER, server);
    token.cancelled().await;
    match supervisor.failure() {
        None => tracing::info!("shutdown signal received; draining requests"),
        Some(failed) => tracing::warn!(task = failed, "a critical task failed; draining requests"),
    }
    if tokio::time::timeout(grace, handle).await.is_err() {
        tracing::warn!("shutdown deadline passed with requests in flight");
    }
    match supervisor.failure() {
        Some(failed) => Err(anyhow::anyhow!("background task {failed} failed; the API shut down")),
        None => Ok(()),
    }
}

/// Per-connection bounds of [`serve`].
#[derive(Debug, Clone, Copy)]
struct ConnLimits {
    head_timeout: Duration,
    write_timeout: Duration,
    max_connections: usize,
}

/// Serves HTTP/1.1 until `shutdown`, then waits for the open connections to
/// finish their requests (the caller bounds that wait).
async fn serve<F>(listener: tokio::net::TcpListener, filter: F, limits: ConnLimits, shutdown: impl Future<Output = ()>)
where
    F: Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static,
{
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let open = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    loop {
        // No accept without a permit: beyond MAX_CONNECTIONS, clients wait in the kernel backlog.
        let permit = tokio::select! {
            p = open.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = &mut shutdown => break,
        };
        let (stream, remote) = tokio::select! {
            r = listener.accept() => match r {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: back off rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let svc = TowerToHyperService::new(warp::service(filter.clone()));
        let svc = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ClientAddr(remote));
            hyper::service::Service::call(&svc, req)
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.head_timeout)
            .serve_connection(DeadlineIo::new(TokioIo::new(stream), limits.write_timeout), svc);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
