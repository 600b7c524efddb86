//! `bench soak`: a long open-loop run at a fraction of a reference rate, to
//! see whether memory keeps growing. RSS (VmRSS) of the API and every worker
//! is sampled every 10 s; the verdict compares the sample after minute 1
//! (allocators and caches have warmed up by then) with the last one.

use crate::cli::SoakArgs;
use crate::e2e::Completion;
use crate::load::{self, LoadSpec};
use crate::procstat::{self, CpuWindow};
use crate::redisx;
use crate::report::{self, f, Table};
use crate::stack::Stack;
use anyhow::Result;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

/// Runs `bench soak`; returns the JSON written.
pub async fn run(redis_url: &str, a: &SoakArgs) -> Result<Value> {
    let machine = report::machine();
    report::print_machine(&machine);
    let rate = a.rate * a.fraction;
    let secs = a.minutes * 60.0;
    println!("soak: {rate:.1} jobs/s ({:.0}% of {:.1}) for {:.1} min, {} worker(s), INTRA_THREADS={}", a.fraction * 100.0, a.rate, a.minutes, a.workers, a.intra_threads);
    let mut stack = Stack::new(redis_url, "soak")?;
    stack.start_api(&[("AUTH_MODE".into(), "off".into()), ("IP_RATE_LIMIT".into(), "0".into())]).await?;
    for _ in 0..a.workers {
        stack.start_worker(&[("INTRA_THREADS".into(), a.intra_threads.clone())]).await?;
    }
    let pids = stack.pids();
    let spec = LoadSpec {
        connections: 32,
        collect_ids: true,
        generators: crate::generators(),
        ..LoadSpec::new(format!("{}/v1/couplets", stack.api_base()?), rate, Duration::from_secs_f64(secs))
    };
    let load1 = procstat::loadavg().0;
    let win = CpuWindow::start(&pids);
    let start_ms = redisx::now_ms();
    let t0 = Instant::now();
    let gen = tokio::spawn(async move { load::run(&spec).await });
    // (seconds since start, name → RSS KiB)
    let mut samples: Vec<(f64, BTreeMap<String, u64>)> = Vec::new();
    let mut at_minute_1: Option<BTreeMap<String, u64>> = None;
    while !gen.is_finished() {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let el = t0.elapsed().as_secs_f64();
        let rss: BTreeMap<String, u64> = pids.iter().map(|(n, p)| (n.clone(), procstat::rss_kib(*p).unwrap_or(0))).collect();
        if at_minute_1.is_none() && el >= 60.0 {
            at_minute_1 = Some(rss.clone());
        }
        if (el as u64) % 60 < 10 {
            println!("  t={el:>5.0}s RSS {}", rss.iter().map(|(k, v)| format!("{k} {:.1} MiB", *v as f64 / 1024.0)).collect::<Vec<_>>().join(", "));
        }
        samples.push((el, rss));
    }
    let submit = gen.await??;
    let end_rss = samples.last().map(|s| s.1.clone()).unwrap_or_default();
    let first_rss = at_minute_1.clone().or_else(|| samples.first().map(|s| s.1.clone())).unwrap_or_default();
    let mut redis = redisx::connect(redis_url).await?;
    let jobs = redisx::wait_jobs(&mut redis, &stack.keys, &submit.ids, Instant::now() + Duration::from_secs(60)).await?;
    let done = Completion::from_jobs(&jobs, start_ms, (secs * 1000.0) as i64, redisx::now_ms());
    let cpu = win.finish();
    let hwm: BTreeMap<String, u64> = pids.iter().map(|(n, p)| (n.clone(), procstat::hwm_kib(*p).unwrap_or(0))).collect();

    let mut table = Table::new(&["process", "RSS @1 min MiB", "RSS @end MiB", "growth %", "peak MiB", "within"]);
    let mut all_ok = true;
    let mut per = serde_json::Map::new();
    for (n, _) in &pids {
        let r1 = first_rss.get(n).copied().unwrap_or(0) as f64 / 1024.0;
        let r2 = end_rss.get(n).copied().unwrap_or(0) as f64 / 1024.0;
        let g = if r1 > 0.0 { (r2 - r1) / r1 * 100.0 } else { f64::NAN };
        let ok = g <= a.max_growth_pct;
        all_ok &= ok;
        table.row(vec![
            n.clone(),
            f(r1, 1),
            f(r2, 1),
            f(g, 1),
            f(hwm.get(n).copied().unwrap_or(0) as f64 / 1024.0, 1),
            format!("{} {:.0}%", if ok { "yes ≤" } else { "NO >" }, a.max_growth_pct),
        ]);
        per.insert(n.clone(), json!({"rss_minute1_mib": r1, "rss_end_mib": r2, "growth_pct": g, "peak_mib": hwm.get(n).copied().unwrap_or(0) as f64 / 1024.0, "within": ok}));
    }
    println!();
    table.print();
    println!(
        "load: {} accepted, {} submit errors; jobs: {} succeeded, {} failed, {} unfinished; {:.1} done/s; submit → succeeded P50 {:.0} ms P95 {:.0} ms P99 {:.0} ms; {}; load1 at start {load1:.2}",
        submit.ok,
        submit.error_count(),
        done.succeeded,
        done.failed,
        done.unfinished,
        done.window_rate,
        done.ms(0.5),
        done.ms(0.95),
        done.ms(0.99),
        cpu.short()
    );
    println!("RSS within {:.0}% from minute 1 to the end: {}", a.max_growth_pct, if all_ok { "YES" } else { "NO" });
    let v = json!({
        "bench": "soak", "machine": machine,
        "settings": {"reference_rate": a.rate, "fraction": a.fraction, "rate": rate, "minutes": a.minutes, "workers": a.workers, "intra_threads": a.intra_threads},
        "rss": per, "within": all_ok, "max_growth_pct": a.max_growth_pct,
        "samples": samples.iter().map(|(t, m)| json!({"t_s": t, "rss_kib": m})).collect::<Vec<_>>(),
        "submit": {"ok": submit.ok, "errors": submit.errors, "latency_ms": {"p50": submit.ms(0.5), "p99": submit.ms(0.99)},
                   "generator_lag_ms": {"p50": submit.lag_ms(0.5), "p99": submit.lag_ms(0.99), "max": submit.lag_ms(1.0)}},
        "jobs": done.json(), "cpu": cpu.json(), "load1_at_start": load1,
    });
    report::write_json("soak", &v)?;
    drop(stack);
    Ok(v)
}
