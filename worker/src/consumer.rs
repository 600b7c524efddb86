//! The consumer loop and its batcher: read up to the free batch slots, keep
//! reading until the batch is full or `max_wait` has passed since its first
//! entry, run one inference call on a blocking thread, then store every
//! result and acknowledge in one round trip. Stops reading on shutdown and
//! finishes the batch in hand, so a SIGTERM leaves nothing pending. Between
//! batches it also runs the bounded sweep for vanished entries ([`crate::lost`])
//! and trims the dead-letter stream by age (`DEAD_LETTER_TTL_S`).

use crate::config::WorkerConfig;
use crate::lost::Lost;
use crate::model::Generator;
use crate::queue::{Entry, Outcome, Queue, QueueError};
use common::job::{now_ms, JobError};
use common::metrics::{outcome, WorkerMetrics};
use common::store::{StartLimits, Started};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The batching consumer of one worker process.
pub struct Consumer {
    queue: Queue,
    cfg: WorkerConfig,
    gen: Arc<Generator>,
    metrics: WorkerMetrics,
}

const READ_BLOCK: Duration = Duration::from_millis(1000);

impl Consumer {
    /// A consumer over `queue`.
    pub fn new(queue: Queue, cfg: WorkerConfig, gen: Arc<Generator>, metrics: WorkerMetrics) -> Self {
        Consumer { queue, cfg, gen, metrics }
    }

    /// Runs until `shutdown` is cancelled; returns after the in-flight batch is stored.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut lost = Lost::new(self.queue.clone());
        let mut last_sweep = Instant::now();
        let mut backoff = Duration::from_millis(100);
        let reclaim_every = (self.cfg.visibility_timeout / 2).clamp(Duration::from_millis(200), Duration::from_secs(5));
        let mut last_reclaim = Instant::now() - reclaim_every;
        let mut last_cleanup = Instant::now();
        let trim_every = (self.cfg.dead_letter_ttl / 2).clamp(Duration::from_millis(500), Duration::from_secs(60));
        let mut last_trim = Instant::now() - trim_every;
        while !shutdown.is_cancelled() {
            let res = self.one_batch(&shutdown, &mut last_reclaim, reclaim_every).await;
            match res {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(e) => {
                    tracing::warn!(error = %e, "queue error; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.cancelled() => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
            if last_sweep.elapsed() >= self.cfg.lost_sweep_interval {
                last_sweep = Instant::now();
                match lost.sweep().await {
                    Ok(n) => self.count_lost(n),
                    Err(e) => tracing::warn!(error = %e, "lost-entry sweep failed; retrying next interval"),
                }
            }
            if last_trim.elapsed() >= trim_every {
                last_trim = Instant::now();
                match self.queue.trim_dead_letters(self.cfg.dead_letter_ttl).await {
                    Ok(n) if n > 0 => tracing::info!(removed = n, "dropped dead-letter entries past DEAD_LETTER_TTL_S"),
                    Ok(_) => {}
                    Err(e) => tracing::debug!(error = %e, "dead-letter trim failed; retrying next interval"),
                }
            }
            if last_cleanup.elapsed() > Duration::from_secs(30) {
                last_cleanup = Instant::now();
                let idle = (self.cfg.visibility_timeout * 10).max(Duration::from_secs(60));
                match self.queue.remove_dead_consumers(idle).await {
                    Ok(n) if n > 0 => tracing::info!(removed = n, "removed idle consumers of dead workers"),
                    Ok(_) => {}
                    Err(e) => tracing::debug!(error = %e, "consumer cleanup failed"),
                }
            }
        }
        tracing::info!("consumer stopped reading; in-flight batch finished");
    }

    async fn one_batch(&self, shutdown: &CancellationToken, last_reclaim: &mut Instant, reclaim_every: Duration) -> Result<(), QueueError> {
        let max = self.cfg.max_batch;
        let mut batch: Vec<Entry> = Vec::with_capacity(max);
        if last_reclaim.elapsed() >= reclaim_every {
            *last_reclaim = Instant::now();
            let got = self.queue.reclaim(max, self.cfg.visibility_timeout).await?;
            if !got.entries.is_empty() {
                tracing::info!(count = got.entries.len(), "reclaimed idle entries");
                self.metrics.reclaimed.inc_by(got.entries.len() as u64);
            }
            if !got.deleted.is_empty() {
                // Redis has already dropped these from the pending list: settle them now or only the sweep would.
                // On error the sweep settles them later (they stay in the entry index).
                match Lost::new(self.queue.clone()).settle_ids(&got.deleted).await {
                    Ok(n) => self.count_lost(n),
                    Err(e) => tracing::warn!(error = %e, "settling deleted entries failed; the sweep will"),
                }
            }
            batch.extend(got.entries);
        }
        if batch.is_empty() {
            batch = self.queue.read(max, READ_BLOCK).await?;
            if batch.is_empty() {
                return Ok(());
            }
        }
        let first = Instant::now();
        while batch.len() < max && !shutdown.is_cancelled() {
            let left = self.cfg.max_wait.saturating_sub(first.elapsed());
            if left.is_zero() {
                break;
            }
            let more = self.queue.read(max - batch.len(), left).await?;
            if more.is_empty() {
                break;
            }
            batch.extend(more);
        }
        self.metrics.batch_wait.observe(first.elapsed().as_secs_f64());
        self.process(batch).await
    }

    fn count_lost(&self, n: usize) {
        if n > 0 {
            self.metrics.jobs.with_label_values(&[outcome::FAILED, "none"]).inc_by(n as u64);
        }
    }

    async fn process(&self, entries: Vec<Entry>) -> Result<(), QueueError> {
        let limits = StartLimits { max_attempts: self.cfg.max_attempts, dead_letter_maxlen: self.cfg.dead_letter_maxlen };
        let starts = self.queue.start(&entries, limits).await?;
        let mut runnable = Vec::new();
        let mut invalid = Vec::new();
        for (e, s) in entries.into_iter().zip(starts) {
            match s {
                Started::Run(attempt) => {
                    self.metrics.attempts.inc();
                    if attempt > 1 {
                        self.metrics.retries.inc();
                    }
                    match e.request() {
                        Ok(r) => runnable.push((e, r)),
                        Err(err) => invalid.push((e, err.to_string())),
                    }
                }
                Started::DeadLettered(_) => self.metrics.jobs.with_label_values(&[outcome::FAILED, "none"]).inc(),
                Started::Gone | Started::Final => {}
            }
        }
        let mut done: Vec<(Entry, Outcome, &'static str)> = invalid
            .into_iter()
            .map(|(e, msg)| {
                let o = Outcome::Failed(JobError { kind: "invalid_request".into(), message: msg });
                (e, o, "none")
            })
            .collect();
        if !runnable.is_empty() {
            self.metrics.batch_size.observe(runnable.len() as f64);
            let reqs: Vec<_> = runnable.iter().map(|(_, r)| r.clone()).collect();
            let gen = self.gen.clone();
            let t0 = Instant::now();
            let res = tokio::task::spawn_blocking(move || gen.generate_batch(&reqs)).await;
            self.metrics.inference.observe(t0.elapsed().as_secs_f64());
            let results = match res {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, kind = e.kind(), jobs = runnable.len(), "inference failed; jobs will be retried");
                    let entries: Vec<Entry> = runnable.into_iter().map(|(e, _)| e).collect();
                    self.metrics.jobs.with_label_values(&[outcome::RETRIED, "none"]).inc_by(entries.len() as u64);
                    self.queue.record_error(&entries, &e.to_string()).await?;
                    return self.store(done).await;
                }
                Err(join) => {
                    tracing::error!(error = %join, "inference task panicked; jobs will be retried");
                    let entries: Vec<Entry> = runnable.into_iter().map(|(e, _)| e).collect();
                    self.queue.record_error(&entries, "inference task panicked").await?;
                    return self.store(done).await;
                }
            };
            for ((e, r), out) in runnable.into_iter().zip(results) {
                let o = match out {
                    Ok(c) => Outcome::Succeeded(c),
                    Err(g) => Outcome::Failed(JobError { kind: g.kind().into(), message: g.to_string() }),
                };
                done.push((e, o, r.style.as_str()));
            }
        }
        self.store(done).await
    }

    /// Stores results, retrying through Redis outages: a result computed is
    /// never dropped while the process lives, and nothing is acked unstored.
    async fn store(&self, done: Vec<(Entry, Outcome, &'static str)>) -> Result<(), QueueError> {
        if done.is_empty() {
            return Ok(());
        }
        let pairs: Vec<(&Entry, &Outcome)> = done.iter().map(|(e, o, _)| (e, o)).collect();
        let mut wait = Duration::from_millis(100);
        let deadline = Instant::now() + self.cfg.visibility_timeout.max(Duration::from_secs(5));
        let stored = loop {
            match self.queue.complete(&pairs).await {
                Ok(s) => break s,
                Err(e) if Instant::now() < deadline => {
                    tracing::warn!(error = %e, "storing results failed; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(1));
                }
                Err(e) => return Err(e),
            }
        };
        let now = now_ms();
        for ((e, o, style), completed) in done.iter().zip(stored) {
            let first = completed.is_stored();
            let label = match (o, first) {
                (_, false) => outcome::DUPLICATE,
                (Outcome::Succeeded(_), true) => outcome::SUCCEEDED,
                (Outcome::Failed(_), true) => outcome::FAILED,
            };
            self.metrics.jobs.with_label_values(&[label, style]).inc();
            if first {
                let secs = (now - e.enqueued_ms).max(0) as f64 / 1000.0;
                self.metrics.job_latency.with_label_values(&[style]).observe(secs);
            }
        }
        Ok(())
    }
}
