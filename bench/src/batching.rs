//! `bench batching`: one worker's throughput at saturation for each
//! MAX_BATCH. The stream is pre-filled through the API with no worker
//! running, so the worker always finds a full batch waiting; then one worker
//! starts and the bench waits until every job is final.
//!
//! The rate is taken from the job hashes, `jobs / (last finished_at - first
//! started_at)`, which leaves out process start and model load (they are
//! printed separately as the wall time from spawn to the last job).

use crate::cli::BatchingArgs;
use crate::load::{self, LoadSpec};
use crate::procstat::{self, CpuWindow};
use crate::redisx;
use crate::report::{self, f, Table};
use crate::stack::Stack;
use anyhow::{bail, Result};
use common::metrics::names;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::time::Instant;

/// Runs `bench batching`; returns the JSON written.
pub async fn run(redis_url: &str, a: &BatchingArgs) -> Result<Value> {
    let machine = report::machine();
    report::print_machine(&machine);
    println!("batching: {} jobs pre-filled, one worker, INTRA_THREADS={}, deadline {:.0} s per MAX_BATCH", a.jobs, a.intra_threads, a.deadline_seconds);
    let mut table = Table::new(&["MAX_BATCH", "jobs", "done", "span s", "jobs/s", "gain vs 1", "mean batch", "wall s", "worker HWM MiB", "worker cpu %", "machine %", "load1"]);
    let mut rows = Vec::new();
    let mut base: Option<f64> = None;
    for &mb in &a.batches {
        let mut stack = Stack::new(redis_url, "batch")?;
        stack
            .start_api(&[("AUTH_MODE".into(), "off".into()), ("IP_RATE_LIMIT".into(), "0".into()), ("MAX_BACKLOG".into(), "0".into())])
            .await?;
        let spec = LoadSpec {
            connections: 32,
            collect_ids: true,
            generators: crate::generators(),
            ..LoadSpec::new(format!("{}/v1/couplets", stack.api_base()?), 2000.0, Duration::from_secs_f64(a.jobs as f64 / 2000.0))
        };
        let filled = load::run(&spec).await?;
        if filled.error_count() > 0 || filled.ids.is_empty() {
            bail!("pre-fill failed: {:?}", filled.errors);
        }
        let load1 = procstat::loadavg().0;
        let t0 = Instant::now();
        stack.start_worker(&[("MAX_BATCH".into(), mb.to_string()), ("INTRA_THREADS".into(), a.intra_threads.clone())]).await?;
        let win = CpuWindow::start(&stack.pids());
        let mut redis = redisx::connect(redis_url).await?;
        let jobs = redisx::wait_jobs(&mut redis, &stack.keys, &filled.ids, t0 + Duration::from_secs_f64(a.deadline_seconds)).await?;
        let wall = t0.elapsed().as_secs_f64();
        let cpu = win.finish();
        let done: Vec<_> = jobs.iter().filter(|j| j.is_final()).collect();
        let first = done.iter().filter_map(|j| j.started).min().unwrap_or(0);
        let last = done.iter().filter_map(|j| j.finished).max().unwrap_or(0);
        let span = ((last - first) as f64 / 1000.0).max(1e-3);
        let rate = done.len() as f64 / span;
        let base_rate = *base.get_or_insert(rate);
        let (sum, count) = stack.worker_histogram(names::BATCH_SIZE).await;
        let mean_batch = if count > 0.0 { sum / count } else { f64::NAN };
        let hwm = stack.workers.first().and_then(|w| procstat::hwm_kib(w.pid())).unwrap_or(0);
        let wcpu = cpu.per.get("worker0").copied().unwrap_or(f64::NAN);
        println!("  MAX_BATCH {mb:>3}: {}/{} jobs in {span:.1} s = {rate:.1} jobs/s, mean batch {mean_batch:.1}", done.len(), filled.ids.len());
        table.row(vec![
            mb.to_string(),
            filled.ids.len().to_string(),
            done.len().to_string(),
            f(span, 1),
            f(rate, 1),
            format!("{}x", f(rate / base_rate, 2)),
            f(mean_batch, 1),
            f(wall, 1),
            f(hwm as f64 / 1024.0, 1),
            f(wcpu, 0),
            f(cpu.machine, 0),
            f(load1, 2),
        ]);
        rows.push(json!({
            "max_batch": mb, "jobs": filled.ids.len(), "done": done.len(), "span_s": span, "jobs_per_s": rate, "gain_vs_first": rate / base_rate,
            "mean_batch_size": mean_batch, "wall_s_from_spawn": wall, "worker_peak_rss_kib": hwm, "cpu": cpu.json(), "load1_at_start": load1,
            "partial": done.len() < filled.ids.len(),
        }));
        drop(stack);
    }
    println!();
    table.print();
    println!(
        "(jobs/s = jobs / (last finished_at − first started_at); gain vs the first MAX_BATCH listed{}; wall = worker spawn → last job, model load included)",
        if a.batches.first() == Some(&1) { " (= MAX_BATCH 1)" } else { "" }
    );
    let v = json!({
        "bench": "batching", "machine": machine,
        "settings": {"batches": a.batches, "jobs": a.jobs, "intra_threads": a.intra_threads, "deadline_s": a.deadline_seconds},
        "rows": rows,
    });
    report::write_json("batching", &v)?;
    Ok(v)
}
