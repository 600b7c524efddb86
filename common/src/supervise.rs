//! Supervision of long-lived background tasks: a task that panics, returns an
//! error or simply ends before shutdown is logged, counted in
//! `pixel_couplet_task_failures_total{task}` and then either restarted with
//! backoff ([`Supervisor::restart`]) or turned into a deliberate shutdown of
//! the whole process ([`Supervisor::critical`]). Nothing is left silently dead.
//!
//! Which one is decided per task, by what a restart would cost and whether the
//! process is still worth running without it:
//!
//! | task (`task` label) | on failure | why |
//! | --- | --- | --- |
//! | `api_server` | shut down | the API without its accept loop serves nothing; exiting lets the orchestrator restart it instead of leaving a process that looks alive |
//! | `completion_listener` | restart | it only holds a Redis subscription; `?wait` polls still end at their own deadline meanwhile |
//! | `group_keeper` | restart | stateless loop re-creating the consumer group |
//! | `consumer` | restart | all its state is in Redis: a batch it held stays pending and is reclaimed after the visibility timeout (and dead-lettered after `MAX_ATTEMPTS` if it is what keeps failing), exactly as after a crash, but without reloading the model |
//! | `webhook_dispatcher` | restart | deliveries are leased in the Redis outbox; an interrupted one is retried when its lease ends |
//! | `worker_http` | shut down | without `/readyz` and `/metrics` the worker is invisible to probes and scrapes; its listener cannot be rebound reliably in place |
//!
//! A restart waits [`FIRST_BACKOFF`], doubling up to [`MAX_BACKOFF`]; a task
//! that then ran for [`HEALTHY_AFTER`] starts again from the short delay, so a
//! rare failure does not inherit the delay of an old burst. A critical
//! failure cancels the process's shutdown token: the process drains as after
//! SIGTERM, and [`Supervisor::failure`] tells its `run` to report an error so
//! `main` exits non-zero.
//!
//! Each attempt runs in its own `tokio::spawn`, which is what turns a panic
//! into a value the supervisor can see (a `JoinError`).

use crate::metrics::TaskMetrics;
use std::fmt::Display;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Delay before the first restart of a failed task.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Longest delay between restarts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A task that ran this long before failing restarts after [`FIRST_BACKOFF`] again.
pub const HEALTHY_AFTER: Duration = Duration::from_secs(60);

/// What a supervised task returns: `()` or `Result<(), E>`.
pub trait TaskOutput: Send + 'static {
    /// `Err` with the message to log when the task failed.
    fn into_result(self) -> Result<(), String>;
}

impl TaskOutput for () {
    fn into_result(self) -> Result<(), String> {
        Ok(())
    }
}

impl<E: Display + Send + 'static> TaskOutput for Result<(), E> {
    fn into_result(self) -> Result<(), String> {
        self.map_err(|e| e.to_string())
    }
}

/// Starts background tasks and watches them; cheap to clone.
#[derive(Clone)]
pub struct Supervisor {
    shutdown: CancellationToken,
    metrics: TaskMetrics,
    failed: Arc<OnceLock<&'static str>>,
}

/// How one attempt of a task ended.
enum End {
    /// Ended after shutdown began, or was aborted on purpose.
    Done,
    /// Panicked, failed, or ended while it should still run.
    Failed(String),
}

impl Supervisor {
    /// A supervisor whose critical tasks cancel `shutdown` when they fail.
    pub fn new(shutdown: CancellationToken, metrics: TaskMetrics) -> Self {
        Supervisor { shutdown, metrics, failed: Arc::default() }
    }

    /// The critical task whose failure started the shutdown, if one did.
    pub fn failure(&self) -> Option<&'static str> {
        self.failed.get().copied()
    }

    /// Runs `make()` as `task` (a [`crate::metrics::task`] value) until
    /// shutdown, starting it again with backoff whenever it fails.
    pub fn restart<F, Fut>(&self, task: &'static str, mut make: F) -> JoinHandle<()>
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: TaskOutput,
    {
        let me = self.clone();
        me.metrics.failures.with_label_values(&[task]);
        tokio::spawn(async move {
            let mut backoff = FIRST_BACKOFF;
            loop {
                let started = Instant::now();
                let why = match me.attempt(make()).await {
                    End::Done => return,
                    End::Failed(why) => why,
                };
                me.metrics.failures.with_label_values(&[task]).inc();
                if me.shutdown.is_cancelled() {
                    tracing::error!(task, error = %why, "background task failed during shutdown");
                    return;
                }
                if started.elapsed() >= HEALTHY_AFTER {
                    backoff = FIRST_BACKOFF;
                }
                tracing::error!(task, error = %why, restart_in_ms = backoff.as_millis() as u64, "background task failed; restarting");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = me.shutdown.cancelled() => return,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        })
    }

    /// Runs `fut` as `task`; if it fails, shuts the process down on purpose:
    /// cancels the shutdown token and records the task for [`Self::failure`].
    pub fn critical<Fut>(&self, task: &'static str, fut: Fut) -> JoinHandle<()>
    where
        Fut: Future + Send + 'static,
        Fut::Output: TaskOutput,
    {
        let me = self.clone();
        me.metrics.failures.with_label_values(&[task]);
        tokio::spawn(async move {
            let End::Failed(why) = me.attempt(fut).await else { return };
            me.metrics.failures.with_label_values(&[task]).inc();
            if me.shutdown.is_cancelled() {
                tracing::error!(task, error = %why, "background task failed during shutdown");
                return;
            }
            tracing::error!(task, error = %why, "critical background task failed; shutting down");
            // The first critical failure is the one that started the shutdown.
            let _ = me.failed.set(task);
            me.shutdown.cancel();
        })
    }

    /// Runs one attempt in its own task, so that a panic comes back as a value.
    async fn attempt<Fut>(&self, fut: Fut) -> End
    where
        Fut: Future + Send + 'static,
        Fut::Output: TaskOutput,
    {
        match tokio::spawn(fut).await {
            Ok(out) => match out.into_result() {
                Err(e) => End::Failed(e),
                Ok(()) if self.shutdown.is_cancelled() => End::Done,
                Ok(()) => End::Failed("ended before shutdown".into()),
            },
            Err(e) if e.is_panic() => End::Failed(format!("panicked: {}", panic_message(e.into_panic()))),
            Err(_) => End::Done,
        }
    }
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    match p.downcast::<String>() {
        Ok(s) => *s,
        Err(p) => p.downcast_ref::<&str>().map(|s| s.to_string()).unwrap_or_else(|| "(no message)".into()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::metrics::{new_registry, task};
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn supervisor() -> (Supervisor, CancellationToken, TaskMetrics) {
        let token = CancellationToken::new();
        let metrics = TaskMetrics::new(&new_registry());
        (Supervisor::new(token.clone(), metrics.clone()), token, metrics)
    }

    fn failures(m: &TaskMetrics, t: &str) -> u64 {
        m.failures.with_label_values(&[t]).get()
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_task_is_restarted_with_backoff_and_counted() {
        let (sup, token, metrics) = supervisor();
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        let t = token.clone();
        let handle = sup.restart(task::CONSUMER, move || {
            let n = r.fetch_add(1, Ordering::SeqCst);
            let t = t.clone();
            async move {
                if n < 3 {
                    panic!("attempt {n} breaks");
                }
                t.cancelled().await;
            }
        });
        let t0 = Instant::now();
        while runs.load(Ordering::SeqCst) < 4 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // 500 + 1000 + 2000 ms of backoff before the fourth attempt.
        assert!(t0.elapsed() >= Duration::from_millis(3500), "{:?}", t0.elapsed());
        assert_eq!(failures(&metrics, task::CONSUMER), 3);
        assert!(!token.is_cancelled(), "a restartable task never shuts the process down");
        assert_eq!(sup.failure(), None);
        token.cancel();
        handle.await.unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 4, "no restart after a clean end at shutdown");
        assert_eq!(failures(&metrics, task::CONSUMER), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn errors_and_early_ends_count_as_failures() {
        let (sup, token, metrics) = supervisor();
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        let _h = sup.restart(task::WEBHOOK_DISPATCHER, move || {
            let n = r.fetch_add(1, Ordering::SeqCst);
            async move {
                match n {
                    0 => Err("redis gone"),
                    _ => Ok(()),
                }
            }
        });
        while runs.load(Ordering::SeqCst) < 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(failures(&metrics, task::WEBHOOK_DISPATCHER) >= 2);
        token.cancel();
    }

    fn listener_breaks() {
        panic!("listener broke");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_critical_task_shuts_the_process_down() {
        let (sup, token, metrics) = supervisor();
        let h = sup.critical(task::WORKER_HTTP, async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            listener_breaks();
        });
        tokio::time::timeout(Duration::from_secs(5), token.cancelled()).await.expect("the shutdown token is cancelled");
        h.await.unwrap();
        assert_eq!(sup.failure(), Some(task::WORKER_HTTP));
        assert_eq!(failures(&metrics, task::WORKER_HTTP), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_critical_task_that_ends_at_shutdown_is_no_failure() {
        let (sup, token, metrics) = supervisor();
        let t = token.clone();
        let h = sup.critical(task::API_SERVER, async move { t.cancelled().await });
        token.cancel();
        h.await.unwrap();
        assert_eq!(sup.failure(), None);
        assert_eq!(failures(&metrics, task::API_SERVER), 0);
    }
}
