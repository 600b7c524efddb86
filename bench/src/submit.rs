//! `bench submit`: the submission path alone. One API (AUTH_MODE=required,
//! a key whose limit cannot bind, MAX_BACKLOG=0 so admission control cannot
//! bind), no workers, open-loop load at rising rates until P99 passes the
//! stop threshold or errors appear, then a sustained run at the best rate and
//! the Redis XADD ceiling from `redis-benchmark` for comparison.
//!
//! Each step starts from an empty stream (job hashes and stream deleted
//! between steps), so a step does not pay for the previous step's memory.
//! Next to the latencies each step records CPU % of the API, Redis and the
//! generator, and Redis's own per-command counters, which is what the
//! bottleneck analysis in `docs/BENCHMARKS.md` is read from.

use crate::cli::SubmitArgs;
use crate::load::{self, LoadResult, LoadSpec};
use crate::procstat::{self, CpuUse, CpuWindow};
use crate::redisx;
use crate::report::{self, f, Table};
use crate::stack::{delete_matching, Stack};
use anyhow::Result;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

const STYLES: [&str; 5] = ["classic", "festive", "literary", "business", "family"];

/// The request body of submission `i` (a theme request; style and seed vary).
pub fn body(i: u64) -> String {
    format!(r#"{{"theme":"春风","style":"{}","length":7,"seed":{i}}}"#, STYLES[(i % 5) as usize])
}

/// One measured step.
pub struct Step {
    /// Offered rate.
    pub rate: f64,
    /// What the generator saw.
    pub res: LoadResult,
    /// CPU during the step.
    pub cpu: CpuUse,
    /// 1-minute load average at the start.
    pub load1: f64,
    /// Redis commands run during the step: name → (calls, µs).
    pub redis_cmds: BTreeMap<String, (u64, u64)>,
}

impl Step {
    /// Redis commands per accepted request, and µs per request spent inside
    /// scripts (EVALSHA's own time; the commands a script runs are also
    /// counted under their own names, so command µs must not be summed).
    fn redis_per_req(&self) -> (f64, f64) {
        let n = self.res.ok.max(1) as f64;
        let calls: u64 = self.redis_cmds.values().map(|(c, _)| c).sum();
        let script_us: u64 = self.redis_cmds.iter().filter(|(k, _)| k.starts_with("eval")).map(|(_, (_, u))| u).sum();
        (calls as f64 / n, script_us as f64 / n)
    }

    /// CPU µs of process `name` per accepted request.
    fn cpu_us_per_req(&self, name: &str) -> f64 {
        self.cpu.per.get(name).copied().unwrap_or(f64::NAN) / 100.0 * 1e6 / self.res.achieved_rate().max(1e-9)
    }

    fn row(&self, label: &str) -> Vec<String> {
        let (cmds, us) = self.redis_per_req();
        let cpu = |k: &str| f(self.cpu.per.get(k).copied().unwrap_or(f64::NAN), 0);
        vec![
            label.to_string(),
            f(self.rate, 0),
            f(self.res.achieved_rate(), 0),
            self.res.error_count().to_string(),
            f(self.res.ms(0.50), 2),
            f(self.res.ms(0.95), 2),
            f(self.res.ms(0.99), 2),
            f(self.res.ms(1.0), 1),
            f(load::pct_ms(&self.res.send_lag, 0.99), 2),
            f(cmds, 1),
            f(us, 1),
            cpu("api"),
            cpu("redis"),
            cpu("bench"),
            f(self.cpu_us_per_req("api"), 0),
            f(self.cpu_us_per_req("redis"), 0),
            f(self.cpu_us_per_req("bench"), 0),
            f(self.cpu.machine, 0),
            f(self.load1, 2),
        ]
    }

    fn json(&self) -> Value {
        let (cmds, us) = self.redis_per_req();
        json!({
            "offered_rate": self.rate,
            "achieved_rate": self.res.achieved_rate(),
            "sent": self.res.sent,
            "ok": self.res.ok,
            "errors": self.res.errors,
            "latency_ms": {"p50": self.res.ms(0.5), "p95": self.res.ms(0.95), "p99": self.res.ms(0.99), "p999": self.res.ms(0.999), "max": self.res.ms(1.0), "mean": self.res.latency.mean() / 1000.0},
            "send_lag_ms": {"p50": load::pct_ms(&self.res.send_lag, 0.5), "p99": load::pct_ms(&self.res.send_lag, 0.99)},
            "scheduled_s": self.res.scheduled.as_secs_f64(),
            "wall_s": self.res.wall.as_secs_f64(),
            "cpu": self.cpu.json(),
            "cpu_us_per_request": {"api": self.cpu_us_per_req("api"), "redis": self.cpu_us_per_req("redis"), "bench": self.cpu_us_per_req("bench")},
            "load1_at_start": self.load1,
            "redis_commands_per_request": cmds,
            "redis_script_us_per_request": us,
            "redis_commandstats_delta": self.redis_cmds.iter().map(|(k, (c, u))| (k.clone(), json!({"calls": c, "usec": u}))).collect::<serde_json::Map<_, _>>(),
        })
    }
}

const HEAD: [&str; 19] = [
    "step", "offered/s", "ok/s", "errors", "p50 ms", "p95 ms", "p99 ms", "max ms", "lag p99", "cmd/req", "script µs/req", "api %", "redis %",
    "bench %", "api µs/req", "redis µs/req", "bench µs/req", "machine %", "load1",
];

struct Ctx {
    url: String,
    bearer: String,
    connections: usize,
    procs: Vec<(String, u32)>,
    redis: redis::aio::MultiplexedConnection,
    redis_url: String,
    prefix: String,
}

impl Ctx {
    async fn step(&mut self, rate: f64, secs: f64) -> Result<Step> {
        // Start every step from an empty stream and no job hashes.
        let (url, prefix) = (self.redis_url.clone(), self.prefix.clone());
        tokio::task::spawn_blocking(move || delete_matching(&url, &format!("{prefix}job:*")).and_then(|_| delete_matching(&url, &format!("{prefix}jobs"))))
            .await??;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let spec = LoadSpec {
            url: self.url.clone(),
            rate,
            duration: Duration::from_secs_f64(secs),
            connections: self.connections,
            bearer: Some(self.bearer.clone()),
            collect_ids: false,
            body: Arc::new(body),
        };
        let load1 = procstat::loadavg().0;
        let before = redisx::commandstats(&mut self.redis).await;
        let win = CpuWindow::start(&self.procs);
        let res = load::run(&spec).await?;
        let cpu = win.finish();
        let after = redisx::commandstats(&mut self.redis).await;
        let mut redis_cmds = redisx::stats_delta(&before, &after);
        // The two INFO calls of the bench itself are not the API's.
        redis_cmds.remove("info");
        Ok(Step { rate, res, cpu, load1, redis_cmds })
    }
}

/// Runs `bench submit`; returns the JSON written.
pub async fn run(redis_url: &str, a: &SubmitArgs) -> Result<Value> {
    let machine = report::machine();
    report::print_machine(&machine);
    let mut stack = Stack::new(redis_url, "submit")?;
    let key = stack.create_key("bench", "1000000/s", 1_000_000)?;
    let mut env: Vec<(String, String)> = [("AUTH_MODE", "required"), ("MAX_BACKLOG", "0"), ("STREAM_MAXLEN", "100000000"), ("RESULT_TTL_S", "600")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    env.extend(a.api_env.iter().cloned());
    stack.start_api(&env).await?;
    let mut redis = redisx::connect(redis_url).await?;
    let redis_version = redisx::server_version(&mut redis).await;
    let mut procs = stack.pids();
    if let Some(p) = redisx::server_pid(&mut redis).await {
        procs.push(("redis".into(), p));
    }
    procs.push(("bench".into(), std::process::id()));
    println!(
        "submit: POST /v1/couplets, AUTH_MODE=required, MAX_BACKLOG=0, no workers, {} connections, {} generator thread(s), redis {redis_version}, api env {:?}",
        a.connections,
        crate::client_threads(),
        a.api_env
    );
    let mut ctx = Ctx {
        url: format!("{}/v1/couplets", stack.api_base()?),
        bearer: key,
        connections: a.connections,
        procs,
        redis,
        redis_url: redis_url.to_string(),
        prefix: stack.prefix.clone(),
    };
    // Warm-up: open the connections, load the scripts, fill the allocator.
    let _ = ctx.step(500.0, 2.0).await?;

    let mut table = Table::new(&HEAD);
    let mut steps: Vec<Step> = Vec::new();
    let best = match a.rate {
        Some(r) => r,
        None => {
            for &rate in &a.rates {
                let s = ctx.step(rate, a.step_seconds).await?;
                let stop = s.res.error_count() > 0 || s.res.ms(0.99).partial_cmp(&a.stop_p99_ms) != Some(std::cmp::Ordering::Less) || s.res.achieved_rate() < 0.95 * rate;
                println!("  ramp {:>6.0}/s: ok {:>6.0}/s p99 {:>7.2} ms errors {} ({})", rate, s.res.achieved_rate(), s.res.ms(0.99), s.res.error_count(), s.cpu.short());
                table.row(s.row("ramp"));
                steps.push(s);
                if stop {
                    break;
                }
            }
            let sustained = |s: &&Step, p99: f64| s.res.error_count() == 0 && s.res.achieved_rate() >= 0.95 * s.rate && s.res.ms(0.99) <= p99;
            steps
                .iter()
                .filter(|s| sustained(s, a.target_p99_ms))
                .map(|s| s.rate)
                .fold(None, |m: Option<f64>, r| Some(m.map_or(r, |m| m.max(r))))
                .or_else(|| steps.iter().filter(|s| sustained(s, a.stop_p99_ms)).map(|s| s.rate).fold(None, |m: Option<f64>, r| Some(m.map_or(r, |m| m.max(r)))))
                .unwrap_or(a.rates.first().copied().unwrap_or(1000.0))
        }
    };
    println!("  sustained run: {best:.0}/s for {:.0} s", a.duration);
    let fin = ctx.step(best, a.duration).await?;
    table.row(fin.row("sustained"));

    let ceiling = if a.redis_requests > 0 {
        let key = format!("{}bench:stream", stack.prefix);
        let (url, n, c) = (redis_url.to_string(), a.redis_requests, a.connections);
        let load1 = procstat::loadavg().0;
        let r = tokio::task::spawn_blocking(move || redisx::xadd_ceiling(&url, &key, n, c)).await?;
        match r {
            Ok((rps, line)) => Some((rps, line, load1)),
            Err(e) => {
                eprintln!("warning: redis-benchmark failed: {e}");
                None
            }
        }
    } else {
        None
    };

    println!();
    table.print();
    println!(
        "(latency from each request's scheduled send time; lag p99 = scheduled → actually sent; cmd/req = Redis commands per request, \
         script µs/req = Redis time inside EVALSHA; CPU % of one core and CPU µs per request from /proc; machine % of all {} cores)",
        procstat::cores()
    );
    let met = fin.res.error_count() == 0 && fin.res.achieved_rate() >= 0.99 * a.target_rate && fin.res.ms(0.99) <= a.target_p99_ms;
    println!(
        "sustained: {:.0} submissions/s for {:.0} s, P50 {:.2} ms, P95 {:.2} ms, P99 {:.2} ms, errors {} → target ≥ {:.0}/s with P99 ≤ {:.0} ms: {}",
        fin.res.achieved_rate(),
        a.duration,
        fin.res.ms(0.5),
        fin.res.ms(0.95),
        fin.res.ms(0.99),
        fin.res.error_count(),
        a.target_rate,
        a.target_p99_ms,
        if met { "MET" } else { "MISSED" }
    );
    if let Some((rps, line, load1)) = &ceiling {
        println!("redis-benchmark (-c {} -P 1, load1 {load1:.2}): {line}", a.connections);
        println!("API sustained rate = {:.1}% of the Redis XADD ceiling ({:.0}/s)", fin.res.achieved_rate() / rps * 100.0, rps);
    }
    let (cmds, us) = fin.redis_per_req();
    println!("per submission: {cmds:.1} Redis commands, {us:.1} µs inside scripts; commands per submission: {}", fin
        .redis_cmds
        .iter()
        .map(|(k, (c, _))| format!("{k} {:.2}", *c as f64 / fin.res.ok.max(1) as f64))
        .collect::<Vec<_>>()
        .join(", "));
    let v = json!({
        "bench": "submit",
        "machine": machine,
        "redis_version": redis_version,
        "settings": {"connections": a.connections, "client_threads": crate::client_threads(), "step_seconds": a.step_seconds, "duration_s": a.duration,
                     "api_env": a.api_env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(), "stop_p99_ms": a.stop_p99_ms},
        "ramp": steps.iter().map(Step::json).collect::<Vec<_>>(),
        "best_rate": best,
        "sustained": fin.json(),
        "target": {"rate": a.target_rate, "p99_ms": a.target_p99_ms, "met": met},
        "redis_xadd_ceiling": ceiling.as_ref().map(|(rps, line, load1)| json!({"requests_per_s": rps, "line": line, "clients": a.connections, "requests": a.redis_requests, "load1_at_start": load1, "api_fraction": fin.res.achieved_rate() / rps})),
    });
    report::write_json("submit", &v)?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    #[test]
    fn bench_bodies_are_valid_requests() {
        for i in 0..10 {
            let r: common::request::CoupletRequest = serde_json::from_str(&super::body(i)).expect("body parses");
            assert!(r.validate().is_ok(), "{}", super::body(i));
        }
    }
}
