//! `bench e2e`: the whole pipeline at fixed offered loads. For each worker
//! count and each rate a fresh stack (API with AUTH_MODE=off and no IP limit,
//! N workers with default MAX_BATCH/MAX_WAIT_MS) takes open-loop submissions
//! for `--duration` seconds; then the bench reads every job hash until all
//! are final or the drain deadline passes.
//!
//! Latency is `finished_at - created_at` from the job hash: both are stamped
//! in ms on this machine's clock (by the API at submission and by the worker
//! when the result is stored), so no per-job long-poll has to run next to the
//! load and cost CPU. Jobs still unfinished at the deadline are counted at
//! their age then (censored), so an overloaded point cannot look fast by
//! leaving its slowest jobs out. Throughput is the jobs that finished inside
//! the load window divided by its length, i.e. what the workers kept up with.

use crate::cli::E2eArgs;
use crate::load::{self, LoadResult, LoadSpec};
use crate::procstat::{self, CpuUse, CpuWindow};
use crate::redisx::{self, JobTimes};
use crate::report::{self, f, Table};
use crate::stack::Stack;
use anyhow::Result;
use common::metrics::names;
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

/// Completion figures of a set of jobs.
pub struct Completion {
    /// Jobs that succeeded (at any time before the deadline).
    pub succeeded: usize,
    /// Jobs that failed or were canceled.
    pub failed: usize,
    /// Jobs not final at the deadline.
    pub unfinished: usize,
    /// Jobs that succeeded inside the load window, per second of the window.
    pub window_rate: f64,
    /// Submit → succeeded (unfinished: age at the deadline), µs.
    pub latency: Histogram<u64>,
}

impl Completion {
    /// From job timestamps; the load window is `[start_ms, start_ms + window_ms]`, `end_ms` the deadline.
    pub fn from_jobs(jobs: &[JobTimes], start_ms: i64, window_ms: i64, end_ms: i64) -> Self {
        let mut c = Completion { succeeded: 0, failed: 0, unfinished: 0, window_rate: 0.0, latency: load::new_hist() };
        let mut in_window = 0;
        for j in jobs {
            let created = j.created.unwrap_or(start_ms);
            match (j.status.as_str(), j.finished) {
                ("succeeded", Some(fin)) => {
                    c.succeeded += 1;
                    c.latency.saturating_record(((fin - created).max(0) as u64) * 1000);
                    if fin <= start_ms + window_ms {
                        in_window += 1;
                    }
                }
                _ if j.is_final() => c.failed += 1,
                _ => {
                    c.unfinished += 1;
                    c.latency.saturating_record(((end_ms - created).max(0) as u64) * 1000);
                }
            }
        }
        c.window_rate = in_window as f64 / (window_ms as f64 / 1000.0).max(1e-3);
        c
    }

    /// Latency quantile, ms.
    pub fn ms(&self, q: f64) -> f64 {
        load::pct_ms(&self.latency, q)
    }

    /// JSON form.
    pub fn json(&self) -> Value {
        json!({
            "succeeded": self.succeeded, "failed": self.failed, "unfinished_at_deadline": self.unfinished,
            "completed_per_s_in_window": self.window_rate,
            "latency_ms": {"p50": self.ms(0.5), "p95": self.ms(0.95), "p99": self.ms(0.99), "max": self.ms(1.0), "mean": self.latency.mean() / 1000.0},
        })
    }
}

/// One offered load against a started stack, drained and summarised.
pub struct Point {
    /// The submissions.
    pub submit: LoadResult,
    /// The jobs.
    pub done: Completion,
    /// CPU over load + drain.
    pub cpu: CpuUse,
    /// Mean jobs per inference batch (workers' histogram).
    pub mean_batch: f64,
    /// Peak RSS (VmHWM) per process, KiB.
    pub hwm_kib: BTreeMap<String, u64>,
    /// Load average at the start.
    pub load1: f64,
}

/// Offers `rate` jobs/s for `secs` to the stack's API, then waits up to `drain` for the jobs.
pub async fn offer(stack: &Stack, rate: f64, secs: f64, drain: f64, connections: usize) -> Result<Point> {
    let mut redis = redisx::connect(&stack.redis_url).await?;
    let spec = LoadSpec {
        connections,
        collect_ids: true,
        generators: crate::generators(),
        ..LoadSpec::new(format!("{}/v1/couplets", stack.api_base()?), rate, Duration::from_secs_f64(secs))
    };
    let load1 = procstat::loadavg().0;
    let win = CpuWindow::start(&stack.pids());
    let start_ms = redisx::now_ms();
    let submit = load::run(&spec).await?;
    let deadline = Instant::now() + Duration::from_secs_f64(drain);
    let jobs = redisx::wait_jobs(&mut redis, &stack.keys, &submit.ids, deadline).await?;
    let end_ms = redisx::now_ms();
    let cpu = win.finish();
    let done = Completion::from_jobs(&jobs, start_ms, (secs * 1000.0) as i64, end_ms);
    let (sum, count) = stack.worker_histogram(names::BATCH_SIZE).await;
    let hwm_kib = stack.pids().into_iter().map(|(n, p)| (n, procstat::hwm_kib(p).unwrap_or(0))).collect();
    Ok(Point { submit, done, cpu, mean_batch: if count > 0.0 { sum / count } else { f64::NAN }, hwm_kib, load1 })
}

fn mib(k: u64) -> String {
    f(k as f64 / 1024.0, 1)
}

/// Runs `bench e2e`; returns the JSON written.
pub async fn run(redis_url: &str, a: &E2eArgs) -> Result<Value> {
    let machine = report::machine();
    report::print_machine(&machine);
    println!(
        "e2e: AUTH_MODE=off IP_RATE_LIMIT=0, workers MAX_BATCH/MAX_WAIT_MS default, INTRA_THREADS={}, {:.0} s per point, drain ≤ {:.0} s",
        a.intra_threads, a.duration, a.drain_seconds
    );
    let mut table = Table::new(&[
        "workers", "offered/s", "accepted", "done/s", "succeeded", "unfinished", "p50 ms", "p95 ms", "p99 ms", "mean batch", "api HWM MiB", "worker HWM MiB",
        "cpu %", "load1",
    ]);
    let mut points = Vec::new();
    let mut best: BTreeMap<usize, f64> = BTreeMap::new();
    for &w in &a.workers {
        for &rate in &a.rates {
            let mut stack = Stack::new(redis_url, "e2e")?;
            stack.start_api(&[("AUTH_MODE".into(), "off".into()), ("IP_RATE_LIMIT".into(), "0".into())]).await?;
            let mut wenv = vec![("INTRA_THREADS".to_string(), a.intra_threads.clone())];
            wenv.extend(a.worker_env.iter().cloned());
            for _ in 0..w {
                stack.start_worker(&wenv).await?;
            }
            let p = offer(&stack, rate, a.duration, a.drain_seconds, 32).await?;
            let worker_hwm = p.hwm_kib.iter().filter(|(k, _)| k.starts_with("worker")).map(|(_, v)| *v).max().unwrap_or(0);
            println!(
                "  {w} worker(s) {rate:>5.0}/s: done {:.1}/s, p95 {:.0} ms, unfinished {}, mean batch {:.1} ({})",
                p.done.window_rate,
                p.done.ms(0.95),
                p.done.unfinished,
                p.mean_batch,
                p.cpu.short()
            );
            table.row(vec![
                w.to_string(),
                f(rate, 0),
                p.submit.ok.to_string(),
                f(p.done.window_rate, 1),
                p.done.succeeded.to_string(),
                p.done.unfinished.to_string(),
                f(p.done.ms(0.5), 0),
                f(p.done.ms(0.95), 0),
                f(p.done.ms(0.99), 0),
                f(p.mean_batch, 1),
                mib(p.hwm_kib.get("api").copied().unwrap_or(0)),
                mib(worker_hwm),
                p.cpu.short(),
                f(p.load1, 2),
            ]);
            if p.done.ms(0.95) <= a.target_p95_ms && p.done.unfinished == 0 && p.done.failed == 0 && p.submit.error_count() == 0 {
                let e = best.entry(w).or_insert(0.0);
                *e = e.max(rate);
            }
            points.push(json!({
                "workers": w, "offered_rate": rate, "duration_s": a.duration,
                "submitted_ok": p.submit.ok, "submit_errors": p.submit.errors,
                "submit_latency_ms": {"p50": p.submit.ms(0.5), "p99": p.submit.ms(0.99)},
                "generator_lag_ms": {"p50": p.submit.lag_ms(0.5), "p99": p.submit.lag_ms(0.99), "max": p.submit.lag_ms(1.0)},
                "jobs": p.done.json(), "mean_batch_size": p.mean_batch,
                "peak_rss_kib": p.hwm_kib, "cpu": p.cpu.json(), "load1_at_start": p.load1,
            }));
            drop(stack);
        }
    }
    println!();
    table.print();
    println!("(done/s = jobs finished inside the load window per second; latency = submit → succeeded from the job hash; unfinished jobs count at their age at the drain deadline)");
    for &w in &a.workers {
        match best.get(&w) {
            Some(r) => println!("{w} worker(s): highest offered load with P95 ≤ {:.0} ms and every job done: {r:.0} jobs/s", a.target_p95_ms),
            None => println!("{w} worker(s): no offered load kept P95 ≤ {:.0} ms", a.target_p95_ms),
        }
    }
    let v = json!({
        "bench": "e2e", "machine": machine,
        "settings": {"rates": a.rates, "workers": a.workers, "duration_s": a.duration, "drain_s": a.drain_seconds, "intra_threads": a.intra_threads,
                     "worker_env": a.worker_env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>()},
        "points": points,
        "best_rate_p95_target": best.iter().map(|(w, r)| (w.to_string(), json!(r))).collect::<serde_json::Map<_, _>>(),
        "target_p95_ms": a.target_p95_ms,
    });
    report::write_json("e2e", &v)?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(status: &str, created: i64, finished: Option<i64>) -> JobTimes {
        JobTimes { status: status.into(), created: Some(created), started: None, finished }
    }

    #[test]
    fn unfinished_jobs_count_at_their_age_and_late_ones_outside_the_window() {
        let jobs = [job("succeeded", 0, Some(100)), job("succeeded", 500, Some(1500)), job("queued", 900, None), job("failed", 0, Some(10))];
        let c = Completion::from_jobs(&jobs, 0, 1000, 3000);
        assert_eq!((c.succeeded, c.failed, c.unfinished), (2, 1, 1));
        assert!((c.window_rate - 1.0).abs() < 1e-9, "only the first finished inside the 1 s window");
        // 100 ms, 1000 ms, and the unfinished one at 2100 ms.
        assert_eq!(c.latency.len(), 3);
        assert!(c.ms(1.0) >= 2099.0);
    }
}
