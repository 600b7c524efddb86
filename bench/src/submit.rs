//! `bench submit`: the submission path alone, three ways in one run, so the
//! figures share one machine state.
//!
//! 1. **Open loop** (the headline): one API against the real Redis, no
//!    workers, the generator of [`crate::load`] offering `--rate` for
//!    `--seconds` (default 15,000/s for 30 s). Latency runs from each
//!    request's scheduled send time; the generator's own lag is printed
//!    beside every figure, and the verdict is refused when it reaches
//!    `--max-lag-ms` ([`crate::verdict`]).
//! 2. **Closed loop** with a standard tool: `wrk`, 50 connections by default,
//!    the same body, [`crate::wrk`].
//! 3. **Redis without HTTP**: `redis-benchmark` running the bare `XADD` and an
//!    `EVALSHA` of the real submit script with the API's KEYS/ARGV
//!    ([`crate::ceiling`]), so the HTTP and API share of a submission shows.
//!
//! The API is configured so that nothing but its capacity can cap the rate:
//! `AUTH_MODE=off IP_RATE_LIMIT=0` by default (or `--auth required` with a key
//! whose limit cannot bind and `MAX_BACKLOG_PER_KEY=0`), `MAX_BACKLOG=1000000`
//! (the admission check still runs, as in production, but cannot refuse
//! 450,000 entries) and `STREAM_MAXLEN=2000000`. Before every phase the queue
//! is emptied (job hashes, stream, entry index, backlogs) and the consumer
//! group recreated, so no phase pays for another's memory; every key of the
//! run's prefix is deleted at the end.

use crate::ceiling::{self, BenchTarget, Ceiling};
use crate::cli::{Auth, SubmitArgs};
use crate::load::{self, LoadResult, LoadSpec};
use crate::procstat::{self, CpuUse, CpuWindow};
use crate::redisx;
use crate::report::{self, f, Table};
use crate::stack::{delete_matching, Stack};
use crate::verdict::{self, OpenLoopFigures, OpenLoopTarget, Verdict};
use crate::wrk::{self, WrkResult};
use anyhow::{anyhow, Context, Result};
use common::store::{Keys, GROUP};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

const STYLES: [&str; 5] = ["classic", "festive", "literary", "business", "family"];

/// The request body of submission `i` (a theme request; style and seed vary).
pub fn body(i: u64) -> String {
    format!(r#"{{"theme":"春风","style":"{}","length":7,"seed":{i}}}"#, STYLES[(i % 5) as usize])
}

/// Redis commands run during a phase: name → (calls, µs).
type Cmds = BTreeMap<String, (u64, u64)>;

/// Redis commands per request, and µs per request spent inside scripts
/// (EVALSHA's own time; the commands a script runs are also counted under
/// their own names, so command µs must not be summed).
fn per_request(cmds: &Cmds, requests: u64) -> (f64, f64) {
    let n = requests.max(1) as f64;
    let calls: u64 = cmds.values().map(|(c, _)| c).sum();
    let script_us: u64 = cmds.iter().filter(|(k, _)| k.starts_with("eval")).map(|(_, (_, u))| u).sum();
    (calls as f64 / n, script_us as f64 / n)
}

fn cmds_json(cmds: &Cmds) -> Value {
    cmds.iter().map(|(k, (c, u))| (k.clone(), json!({"calls": c, "usec": u}))).collect::<serde_json::Map<_, _>>().into()
}

/// One open-loop run.
pub struct Step {
    /// Offered rate.
    pub rate: f64,
    /// What the generator saw.
    pub res: LoadResult,
    /// CPU during the run.
    pub cpu: CpuUse,
    /// 1-minute load average at the start.
    pub load1: f64,
    /// Redis commands run during the run.
    pub redis_cmds: Cmds,
    /// Times Redis's own latency monitor saw its event loop blocked ≥ 10 ms during
    /// the run: (s after the measured start, ms, event); `None` when it could not be read.
    pub redis_blocked: Option<Vec<(f64, u64, String)>>,
}

impl Step {
    fn cpu(&self, k: &str) -> String {
        f(self.cpu.per.get(k).copied().unwrap_or(f64::NAN), 0)
    }

    /// Accepted requests while the Redis counters ran: the settling ones included.
    fn answered(&self) -> u64 {
        self.res.ok + self.res.settled.as_ref().map_or(0, |w| w.ok)
    }

    /// CPU µs of process `name` per accepted request.
    fn cpu_us_per_req(&self, name: &str) -> f64 {
        self.cpu.per.get(name).copied().unwrap_or(f64::NAN) / 100.0 * 1e6 / self.res.achieved_rate().max(1e-9)
    }

    fn figures(&self) -> OpenLoopFigures {
        OpenLoopFigures { achieved: self.res.achieved_rate(), errors: self.res.error_count(), p99_ms: self.res.ms(0.99), lag_p99_ms: self.res.lag_ms(0.99) }
    }

    fn row(&self, label: &str) -> Vec<String> {
        let (cmds, _) = per_request(&self.redis_cmds, self.answered());
        vec![
            label.to_string(),
            f(self.rate, 0),
            f(self.res.achieved_rate(), 0),
            self.res.error_count().to_string(),
            f(self.res.ms(0.50), 2),
            f(self.res.ms(0.90), 2),
            f(self.res.ms(0.99), 2),
            f(self.res.ms(1.0), 1),
            f(self.res.lag_ms(0.50), 3),
            f(self.res.lag_ms(0.99), 3),
            f(self.res.lag_ms(1.0), 2),
            format!("{}/{}", self.res.connections_opened, self.res.conn_waits),
            f(cmds, 1),
            self.cpu("api"),
            self.cpu("redis"),
            self.cpu("bench"),
            f(self.cpu_us_per_req("api"), 0),
            f(self.cpu_us_per_req("redis"), 0),
            f(self.cpu_us_per_req("bench"), 0),
            f(self.cpu.machine, 0),
            f(self.load1, 2),
        ]
    }

    /// The one-line summary printed as the run ends.
    fn line(&self) -> String {
        format!(
            "ok {:.0}/s, latency p50 {:.2} p90 {:.2} p99 {:.2} max {:.1} ms, {}; generator lag p50 {:.3} p99 {:.3} max {:.2} ms{} ({})",
            self.res.achieved_rate(),
            self.res.ms(0.5),
            self.res.ms(0.9),
            self.res.ms(0.99),
            self.res.ms(1.0),
            self.res.errors_short(),
            self.res.lag_ms(0.5),
            self.res.lag_ms(0.99),
            self.res.lag_ms(1.0),
            self.waits(),
            self.cpu.short()
        )
    }

    /// `""`, or what the settling time before the measured one saw.
    fn settled(&self) -> String {
        let Some(w) = &self.res.settled else { return String::new() };
        format!(
            "\n    (before it, {:.0} s at the same rate to settle, not measured: ok {}/{}, latency p50 {:.2} p99 {:.2} max {:.1} ms, {}; generator lag p99 {:.3} ms; {} connections opened)",
            w.scheduled.as_secs_f64(),
            w.ok,
            w.sent,
            w.ms(0.5),
            w.ms(0.99),
            w.ms(1.0),
            w.errors_short(),
            w.lag_ms(0.99),
            w.connections_opened
        )
    }

    /// Redis's own account of the times its event loop was blocked during the run.
    fn blocked(&self) -> String {
        match &self.redis_blocked {
            None => "Redis latency monitor: not readable (CONFIG refused)".into(),
            Some(v) if v.is_empty() => format!("Redis latency monitor: never blocked ≥ {} ms", redisx::monitor::THRESHOLD_MS),
            Some(v) => format!(
                "Redis latency monitor, its event loop blocked ≥ {} ms (s after the measured start): {}",
                redisx::monitor::THRESHOLD_MS,
                v.iter().map(|(at, ms, e)| format!("{at:+.0} s {ms} ms ({e})")).collect::<Vec<_>>().join(", ")
            ),
        }
    }

    /// `""`, or what the waits for a free connection did to the send times.
    fn waits(&self) -> String {
        if self.res.conn_waits == 0 {
            return String::new();
        }
        format!(
            "; {} requests waited for a free connection (all busy at the cap): send delay p99 {:.2} max {:.1} ms",
            self.res.conn_waits,
            self.res.delay_ms(0.99),
            self.res.delay_ms(1.0)
        )
    }

    fn json(&self, v: Option<&Verdict>) -> Value {
        let (cmds, us) = per_request(&self.redis_cmds, self.answered());
        json!({
            "offered_rate": self.rate,
            "achieved_rate": self.res.achieved_rate(),
            "sent": self.res.sent,
            "ok": self.res.ok,
            "errors": self.res.errors,
            "latency_ms": {"p50": self.res.ms(0.5), "p90": self.res.ms(0.9), "p99": self.res.ms(0.99), "p999": self.res.ms(0.999), "max": self.res.ms(1.0), "mean": self.res.latency.mean() / 1000.0},
            "generator_lag_ms": {"p50": self.res.lag_ms(0.5), "p90": self.res.lag_ms(0.9), "p99": self.res.lag_ms(0.99), "max": self.res.lag_ms(1.0)},
            "send_delay_ms": {"p50": self.res.delay_ms(0.5), "p99": self.res.delay_ms(0.99), "max": self.res.delay_ms(1.0)},
            "generators": self.res.generators,
            "connections_opened": self.res.connections_opened,
            "connection_waits": self.res.conn_waits,
            "scheduled_s": self.res.scheduled.as_secs_f64(),
            "wall_s": self.res.wall.as_secs_f64(),
            "cpu": self.cpu.json(),
            "cpu_us_per_request": {"api": self.cpu_us_per_req("api"), "redis": self.cpu_us_per_req("redis"), "bench": self.cpu_us_per_req("bench")},
            "load1_at_start": self.load1,
            "redis_commands_per_request": cmds,
            "redis_script_us_per_request": us,
            "redis_commandstats_delta": cmds_json(&self.redis_cmds),
            "verdict": v.map(|v| json!({"kind": v.kind(), "text": v.to_string()})),
            "worst_windows": self.res.worst_windows(10),
            "redis_blocked": self.redis_blocked.as_ref().map(|v| v.iter().map(|(at, ms, e)| json!({"at_s": at, "ms": ms, "event": e})).collect::<Vec<_>>()),
            "settled": self.res.settled.as_ref().map(|w| json!({
                "seconds": w.scheduled.as_secs_f64(),
                "sent": w.sent,
                "ok": w.ok,
                "errors": w.errors,
                "latency_ms": {"p50": w.ms(0.5), "p99": w.ms(0.99), "max": w.ms(1.0)},
                "generator_lag_ms": {"p99": w.lag_ms(0.99), "max": w.lag_ms(1.0)},
            })),
        })
    }
}

const HEAD: [&str; 21] = [
    "step", "offered/s", "ok/s", "errors", "p50 ms", "p90 ms", "p99 ms", "max ms", "lag p50", "lag p99", "lag max", "conns/waits", "cmd/req", "api %",
    "redis %", "bench %", "api µs/req", "redis µs/req", "bench µs/req", "machine %", "load1",
];

/// A closed-loop or ceiling phase: its figure, CPU and Redis counters.
struct Phase<T> {
    res: T,
    cpu: CpuUse,
    load1: f64,
    redis_cmds: Cmds,
}

/// The run's API, Redis and settings.
struct Ctx {
    url: String,
    bearer: Option<String>,
    keys: Keys,
    procs: Vec<(String, u32)>,
    redis: redis::aio::MultiplexedConnection,
    redis_url: String,
}

impl Ctx {
    /// Empties the queue (job hashes, stream, entry index, backlogs) and recreates the consumer group, as the API finds it at start.
    async fn reset(&mut self) -> Result<()> {
        let (url, keys) = (self.redis_url.clone(), self.keys.clone());
        tokio::task::spawn_blocking(move || -> Result<()> {
            delete_matching(&url, &format!("{}job:*", keys.prefix()))?;
            delete_matching(&url, &format!("{}backlog:*", keys.prefix()))?;
            let mut c = redis::Client::open(url.as_str())?.get_connection_with_timeout(Duration::from_secs(2))?;
            redis::cmd("UNLINK").arg(keys.stream()).arg(keys.entries()).arg(xadd_stream(&keys)).exec(&mut c)?;
            redis::cmd("XGROUP").arg("CREATE").arg(keys.stream()).arg(GROUP).arg("0").arg("MKSTREAM").exec(&mut c)?;
            Ok(())
        })
        .await??;
        // Let the UNLINKed memory go before the next phase starts measuring: Redis frees it on a
        // background thread, which would otherwise take CPU from the next phase (half a million keys after an open loop).
        let until = std::time::Instant::now() + Duration::from_secs(20);
        while redisx::lazyfree_pending(&mut self.redis).await > 0 && std::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok(())
    }

    async fn commandstats(&mut self) -> Cmds {
        redisx::commandstats(&mut self.redis).await
    }

    async fn finish_cmds(&mut self, before: &Cmds) -> Cmds {
        let after = self.commandstats().await;
        let mut d = redisx::stats_delta(before, &after);
        // The bench's own INFO calls are not the API's.
        d.remove("info");
        d
    }

    /// One open-loop run: `settle` seconds at `rate`, reported apart, then `secs` measured.
    async fn open_loop(&mut self, a: &SubmitArgs, rate: f64, settle: f64, secs: f64) -> Result<Step> {
        self.reset().await?;
        let spec = LoadSpec {
            settle: Duration::from_secs_f64(settle),
            tick: Duration::from_micros(a.tick_us),
            nice: a.generator_nice,
            policy: a.generator_policy,
            connections: a.connections,
            max_connections: a.max_connections,
            generators: crate::generators(),
            bearer: self.bearer.clone(),
            ..LoadSpec::new(self.url.clone(), rate, Duration::from_secs_f64(secs))
        };
        let load1 = procstat::loadavg().0;
        let before = self.commandstats().await;
        let watch = redisx::monitor::start(&mut self.redis).await;
        let started = unix_now();
        let win = CpuWindow::start(&self.procs);
        let res = load::run(&spec).await;
        let cpu = win.finish();
        let redis_cmds = self.finish_cmds(&before).await;
        // The monitor's old threshold goes back whether or not the run succeeded.
        let blocked = match watch {
            Some(old) => Some(redisx::monitor::finish(&mut self.redis, &old).await),
            None => None,
        };
        let res = res?;
        // Seconds since the measured window began, for each time Redis was blocked ≥ THRESHOLD_MS.
        let measured_from = started + settle;
        let redis_blocked = blocked.map(|v| {
            v.into_iter().map(|(t, ms, e)| (t as f64 - measured_from, ms, e)).filter(|(at, _, _)| *at >= -settle - 1.0 && *at <= secs + 1.0).collect()
        });
        Ok(Step { rate, res, cpu, load1, redis_cmds, redis_blocked })
    }

    async fn closed_loop(&mut self, a: &SubmitArgs, threads: usize) -> Result<Phase<WrkResult>> {
        self.reset().await?;
        let script = wrk::write_script(&crate::stack::target_dir().join("bench"), &body(1), self.bearer.as_deref())?;
        let load1 = procstat::loadavg().0;
        let before = self.commandstats().await;
        let win = CpuWindow::start(&self.procs).with_reaped_child("wrk");
        let child = wrk::spawn(&self.url, threads, a.wrk_connections, a.wrk_seconds, &script, a.generator_policy)?;
        let out = tokio::task::spawn_blocking(move || child.wait_with_output()).await??;
        let cpu = win.finish();
        let redis_cmds = self.finish_cmds(&before).await;
        let text = String::from_utf8_lossy(&out.stdout);
        let res = wrk::parse(&text).with_context(|| format!("wrk stderr: {}", String::from_utf8_lossy(&out.stderr).trim()))?;
        Ok(Phase { res, cpu, load1, redis_cmds })
    }

    /// One redis-benchmark ceiling of `argv`, about `a.redis_seconds` long.
    async fn ceiling(&mut self, a: &SubmitArgs, what: &str, argv: Vec<String>) -> Result<Phase<Ceiling>> {
        self.reset().await?;
        let t = BenchTarget::from_url(&self.redis_url)?;
        let (clients, pipeline) = (a.redis_clients.max(1), a.redis_pipeline.max(1));
        // Calibration: a short run sizes -n for the wanted seconds.
        let calib = {
            let (t, argv) = (t.clone(), argv.clone());
            tokio::task::spawn_blocking(move || ceiling::finish(t.spawn(200 * clients as u64, clients, pipeline, &argv)?)).await??
        };
        self.reset().await?;
        let n = ceiling::requests_for(a.redis_seconds, calib.0, clients);
        let load1 = procstat::loadavg().0;
        let before = self.commandstats().await;
        let win = CpuWindow::start(&self.procs).with_reaped_child("redis-benchmark");
        let t0 = std::time::Instant::now();
        let child = t.spawn(n, clients, pipeline, &argv)?;
        let (rps, p50_ms, line) = tokio::task::spawn_blocking(move || ceiling::finish(child)).await??;
        let seconds = t0.elapsed().as_secs_f64();
        let cpu = win.finish();
        let redis_cmds = self.finish_cmds(&before).await;
        Ok(Phase { res: Ceiling { what: what.to_string(), rps, p50_ms, requests: n, seconds, clients, pipeline, line }, cpu, load1, redis_cmds })
    }

    /// The API's own `EVALSHA` for one submission (see [`ceiling::capture_submit`]), job id templated;
    /// run once with a fixed id to check that it still creates a job.
    async fn submit_command(&mut self) -> Result<Vec<String>> {
        let (cmd, id) = ceiling::capture_submit(&self.redis_url, &self.url, &body(1), self.bearer.as_deref()).await?;
        let argv = ceiling::templated(&cmd, &id)?;
        let mut c = redis::cmd(&argv[0]);
        for x in &argv[1..] {
            c.arg(x.replace(ceiling::RAND, "000000000001"));
        }
        let reply: Vec<redis::Value> = c.query_async(&mut self.redis).await.context("replaying the captured submit command")?;
        let status = reply.into_iter().next().and_then(|v| redis::from_redis_value::<String>(v).ok());
        if status.as_deref() != Some("created") {
            return Err(anyhow!("the captured submit command answered {status:?} when replayed, not \"created\""));
        }
        Ok(argv)
    }
}

/// Unix time in seconds (Redis's latency monitor stamps events with it).
fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// The stream of the bare XADD ceiling (not the job stream, so no worker could ever read it).
fn xadd_stream(keys: &Keys) -> String {
    format!("{}bench:xadd", keys.prefix())
}

/// The API environment of the run: nothing but the API's capacity may cap the rate.
fn api_env(a: &SubmitArgs) -> Vec<(String, String)> {
    let auth = match a.auth {
        Auth::Off => [("AUTH_MODE", "off"), ("IP_RATE_LIMIT", "0")],
        Auth::Required => [("AUTH_MODE", "required"), ("MAX_BACKLOG_PER_KEY", "0")],
    };
    let mut env: Vec<(String, String)> = auth
        .iter()
        .chain([("MAX_BACKLOG", "1000000"), ("STREAM_MAXLEN", "2000000"), ("RESULT_TTL_S", "600")].iter())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    env.extend(a.api_env.iter().cloned());
    env
}

/// Runs `bench submit`; returns the JSON written.
pub async fn run(redis_url: &str, a: &SubmitArgs) -> Result<Value> {
    let machine = report::machine();
    report::print_machine(&machine);
    let mut stack = Stack::new(redis_url, "submit")?;
    let env = api_env(a);
    let bearer = match a.auth {
        Auth::Off => None,
        Auth::Required => Some(stack.create_key("bench", "1000000/s", 1_000_000)?.0),
    };
    stack.start_api(&env).await?;
    let mut redis = redisx::connect(redis_url).await?;
    let redis_version = redisx::server_version(&mut redis).await;
    let mut procs = stack.pids();
    if let Some(p) = redisx::server_pid(&mut redis).await {
        procs.push(("redis".into(), p));
    }
    procs.push(("bench".into(), std::process::id()));
    let gens = crate::generators();
    let api_policy = a.api_env.iter().find(|(k, _)| k == "CPU_POLICY").map_or_else(|| "batch (its default)".to_string(), |(_, v)| v.clone());
    println!(
        "submit: POST /v1/couplets, {}, api CPU_POLICY {api_policy}, no workers; open loop: {gens} generator(s) ({}, nice {}, {} µs tick), {}–{} connections, {} s settling before each measured run; redis {redis_version}; extra api env {:?}",
        env.iter().filter(|(k, _)| a.api_env.iter().all(|(n, _)| n != k)).map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" "),
        a.generator_policy,
        a.generator_nice,
        a.tick_us,
        a.connections,
        a.max_connections,
        a.settle_seconds,
        a.api_env
    );
    let mut ctx = Ctx {
        url: format!("{}/v1/couplets", stack.api_base()?),
        bearer,
        keys: stack.keys.clone(),
        procs,
        redis,
        redis_url: redis_url.to_string(),
    };
    let target = OpenLoopTarget { rate: a.target_rate.unwrap_or(a.rate), p99_ms: a.target_p99_ms, max_lag_p99_ms: a.max_lag_ms };

    // Warm-up: connections, scripts, allocator.
    let w = ctx.open_loop(a, 500.0, 0.0, 2.0).await?;
    println!("  warm-up   500/s × 2 s: {}", w.line());

    let mut table = Table::new(&HEAD);
    let mut ramp: Vec<Step> = Vec::new();
    for &rate in &a.ramp {
        let s = ctx.open_loop(a, rate, a.settle_seconds, a.step_seconds).await?;
        println!("  ramp {rate:>6.0}/s × {:.0} s: {}{}", a.step_seconds, s.line(), s.settled());
        table.row(s.row("ramp"));
        let stop = s.res.error_count() > 0 || s.res.ms(0.99).is_nan() || s.res.ms(0.99) > a.stop_p99_ms;
        ramp.push(s);
        if stop {
            break;
        }
    }
    let main = ctx.open_loop(a, a.rate, a.settle_seconds, a.seconds).await?;
    if main.res.policy != a.generator_policy {
        println!("  (the generator threads could not take the {} policy: they ran under the inherited one)", a.generator_policy);
    }
    if main.res.nice != a.generator_nice {
        println!("  (the generator threads could not take nice {}: they ran at the inherited priority)", a.generator_nice);
    }
    println!("  open loop {:.0}/s × {:.0} s: {}{}", a.rate, a.seconds, main.line(), main.settled());
    println!("    worst 100 ms windows (by due time): {}", main.res.worst_windows(5).join(", "));
    println!("    {}", main.blocked());
    table.row(main.row("open loop"));
    let verdict = verdict::open_loop(&target, &main.figures());

    let closed = if a.wrk_seconds > 0.0 {
        match wrk::ensure_installed(!a.no_install) {
            Ok(()) => {
                let threads = if a.wrk_threads == 0 { procstat::cores() } else { a.wrk_threads };
                let p = ctx.closed_loop(a, threads).await?;
                println!("  closed loop (wrk -t{threads} -c{}): {:.0}/s ({})", a.wrk_connections, p.res.rps, p.cpu.short());
                Some((threads, p))
            }
            Err(e) => {
                eprintln!("warning: no closed-loop figure: {e:#}");
                None
            }
        }
    } else {
        None
    };

    let mut ceilings: Vec<Phase<Ceiling>> = Vec::new();
    if a.redis_seconds > 0.0 {
        let request = serde_json::to_string(&serde_json::from_str::<common::request::CoupletRequest>(&body(1))?.validate().map_err(|e| anyhow!("bench body: {e}"))?)?;
        let xadd = ceiling::bare_xadd(&xadd_stream(&ctx.keys), &request);
        let eval = match ctx.submit_command().await {
            Ok(argv) => argv,
            Err(e) => {
                eprintln!("warning: no EVALSHA ceiling: {e:#}");
                Vec::new()
            }
        };
        let runs = [("XADD (bare)", xadd), ("EVALSHA submit.lua", eval)];
        for (what, argv) in runs.into_iter().filter(|(_, v)| !v.is_empty()) {
            match ctx.ceiling(a, what, argv).await {
                Ok(p) => {
                    println!("  redis {what}: {:.0}/s ({})", p.res.rps, p.cpu.short());
                    ceilings.push(p);
                }
                Err(e) => eprintln!("warning: no {what} ceiling: {e:#}"),
            }
        }
        ctx.reset().await?;
    }

    println!();
    println!(
        "Open loop (latency from each request's scheduled send time; lag = request written − scheduled, the generator's own delay; \
         a wait for a free connection at the cap is the API's: counted in waits, left out of lag, included in latency):"
    );
    table.print();
    println!(
        "(conns/waits = connections opened / requests that found all {} busy and waited; cmd/req = Redis commands per accepted request; \
         CPU % of one core and CPU µs per accepted request from /proc; machine % of all {} cores)",
        a.max_connections,
        procstat::cores()
    );
    println!("errors by kind: {}", if main.res.errors.is_empty() { "none".to_string() } else { main.res.errors_short() });
    println!(
        "open loop: {:.0} submissions/s for {:.0} s (offered {:.0}/s), P50 {:.2} ms, P90 {:.2} ms, P99 {:.2} ms, max {:.1} ms; generator lag p50 {:.3} ms, p99 {:.3} ms, max {:.2} ms{}",
        main.res.achieved_rate(),
        a.seconds,
        a.rate,
        main.res.ms(0.5),
        main.res.ms(0.9),
        main.res.ms(0.99),
        main.res.ms(1.0),
        main.res.lag_ms(0.5),
        main.res.lag_ms(0.99),
        main.res.lag_ms(1.0),
        main.waits()
    );
    println!(
        "verdict (≥ {:.0}/s for {:.0} s with P99 ≤ {} ms, generator lag p99 < {} ms): {verdict}",
        target.rate, a.seconds, target.p99_ms, target.max_lag_p99_ms
    );

    let closed_verdict = closed.as_ref().map(|(threads, p)| {
        let v = verdict::closed_loop(a.wrk_target_rate, p.res.rps, p.res.errors());
        let (cmds, _) = per_request(&p.redis_cmds, p.res.requests);
        println!();
        println!(
            "Closed loop (wrk -t{threads} -c{} -d{:.0}s --latency under {}, POST /v1/couplets with a JSON body from a Lua script; load1 {:.2}):",
            a.wrk_connections, a.wrk_seconds, a.generator_policy, p.load1
        );
        println!(
            "  {:.0} submissions/s ({} in {:.1} s), P50 {:.2} ms, P90 {:.2} ms, P99 {:.2} ms, max {:.1} ms; non-2xx {}, socket errors {}; {:.1} Redis cmd/req; {}",
            p.res.rps, p.res.requests, p.res.seconds, p.res.p50_ms, p.res.p90_ms, p.res.p99_ms, p.res.max_ms, p.res.non_2xx, p.res.socket_errors, cmds, p.cpu.short()
        );
        println!("verdict (≥ {:.0}/s, no errors): {v}", a.wrk_target_rate);
        v
    });

    if !ceilings.is_empty() {
        println!();
        println!(
            "Redis without HTTP (redis-benchmark -c {} -P {} -r 1e9, ≈ {:.0} s each; a fresh job id per call):",
            a.redis_clients, a.redis_pipeline, a.redis_seconds
        );
        for p in &ceilings {
            let (cmds, us) = per_request(&p.redis_cmds, p.res.requests);
            println!(
                "  {:<20} {:>7.0}/s, p50 {} ms, {:.1} Redis cmd/call, {:.1} µs in scripts/call ({}; load1 {:.2})",
                p.res.what,
                p.res.rps,
                p.res.p50_ms.map(|v| format!("{v:.3}")).unwrap_or_else(|| "-".into()),
                cmds,
                us,
                p.cpu.short(),
                p.load1
            );
        }
    }
    print_shares(&main, closed.as_ref().map(|(_, p)| p), &ceilings, a);

    let (cmds, us) = per_request(&main.redis_cmds, main.answered());
    println!(
        "per submission (open loop): {cmds:.1} Redis commands, {us:.1} µs inside scripts; {}",
        main.redis_cmds.iter().map(|(k, (c, _))| format!("{k} {:.2}", *c as f64 / main.res.ok.max(1) as f64)).collect::<Vec<_>>().join(", ")
    );

    let v = json!({
        "bench": "submit",
        "machine": machine,
        "redis_version": redis_version,
        "settings": {"rate": a.rate, "seconds": a.seconds, "generators": gens, "connections": a.connections, "max_connections": a.max_connections,
                     "auth": format!("{:?}", a.auth).to_lowercase(), "api_env": env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
                     "wrk": {"seconds": a.wrk_seconds, "connections": a.wrk_connections, "threads": closed.as_ref().map(|(t, _)| *t)},
                     "redis_benchmark": {"seconds": a.redis_seconds, "clients": a.redis_clients, "pipeline": a.redis_pipeline}},
        "warm_up": w.json(None),
        "ramp": ramp.iter().map(|s| s.json(None)).collect::<Vec<_>>(),
        "open_loop": main.json(Some(&verdict)),
        "target": {"rate": target.rate, "p99_ms": target.p99_ms, "max_lag_p99_ms": target.max_lag_p99_ms, "verdict": verdict.kind(), "met": verdict.is_met()},
        "closed_loop": closed.as_ref().map(|(_, p)| json!({"wrk": p.res.json(), "cpu": p.cpu.json(), "load1_at_start": p.load1,
            "redis_commandstats_delta": cmds_json(&p.redis_cmds), "target_rate": a.wrk_target_rate, "verdict": closed_verdict.as_ref().map(Verdict::kind)})),
        "redis_ceilings": ceilings.iter().map(|p| json!({"ceiling": p.res.json(), "cpu": p.cpu.json(), "load1_at_start": p.load1, "redis_commandstats_delta": cmds_json(&p.redis_cmds)})).collect::<Vec<_>>(),
    });
    report::write_json("submit", &v)?;
    Ok(v)
}

/// The table that sets the HTTP figures beside the Redis ceilings.
fn print_shares(main: &Step, closed: Option<&Phase<WrkResult>>, ceilings: &[Phase<Ceiling>], a: &SubmitArgs) {
    let eval = ceilings.iter().find(|p| p.res.what.starts_with("EVALSHA")).map(|p| p.res.rps);
    let us = |r: f64| f(1e6 / r, 1);
    let of_eval = |r: f64| eval.map(|e| format!("{:.0}%", r / e * 100.0)).unwrap_or_else(|| "-".into());
    let mut t = Table::new(&["path", "rate/s", "µs/req", "of EVALSHA"]);
    for p in ceilings {
        t.row(vec![format!("Redis {}", p.res.what), f(p.res.rps, 0), us(p.res.rps), of_eval(p.res.rps)]);
    }
    if let Some(c) = closed {
        t.row(vec![format!("HTTP closed loop (wrk, {} conns)", a.wrk_connections), f(c.res.rps, 0), us(c.res.rps), of_eval(c.res.rps)]);
    }
    t.row(vec![format!("HTTP open loop (offered {:.0}/s)", main.rate), f(main.res.achieved_rate(), 0), "-".into(), of_eval(main.res.achieved_rate())]);
    println!();
    t.print();
    match (closed, eval) {
        (Some(c), Some(e)) => {
            let (http, redis) = (1e6 / c.res.rps, 1e6 / e);
            println!(
                "(µs/req = 1e6 / rate, the machine's time per request at saturation. HTTP + API share of a saturated submission: \
                 {http:.1} − {redis:.1} = {:.1} µs of {http:.1} µs = {:.0}%; the open-loop rate is what was offered, not a ceiling)",
                http - redis,
                (http - redis) / http * 100.0
            );
        }
        _ => println!("(µs/req = 1e6 / rate; the open-loop rate is what was offered, not a ceiling)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// The value `env` gives `k` (the last one wins, as with `--api-env`).
    fn env_value<'a>(env: &'a [(String, String)], k: &str) -> &'a str {
        env.iter().rev().find(|(n, _)| n == k).map(|(_, v)| v.as_str()).unwrap_or("")
    }

    #[test]
    fn bench_bodies_are_valid_requests() {
        for i in 0..10 {
            let r: common::request::CoupletRequest = serde_json::from_str(&super::body(i)).expect("body parses");
            assert!(r.validate().is_ok(), "{}", super::body(i));
        }
    }

    #[test]
    fn the_api_is_configured_so_nothing_but_capacity_caps_the_rate() {
        let a = SubmitArgs::try_parse_from(["submit"]).expect("defaults parse");
        assert_eq!((a.rate, a.seconds, a.max_lag_ms), (15_000.0, 30.0, 1.0));
        let env = api_env(&a);
        assert_eq!((env_value(&env, "AUTH_MODE"), env_value(&env, "IP_RATE_LIMIT")), ("off", "0"));
        // 30 s at 15,000/s is 450,000 entries: admission and the stream cap must not refuse them.
        let n = |k: &str| env_value(&env, k).parse::<u64>().expect("a number");
        assert!(n("MAX_BACKLOG") >= 450_000 && n("STREAM_MAXLEN") >= n("MAX_BACKLOG"));
        let r = SubmitArgs::try_parse_from(["submit", "--auth", "required", "--api-env", "MAX_BACKLOG=3000000", "--api-env", "STREAM_MAXLEN=0"]).expect("parses");
        let env = api_env(&r);
        assert_eq!((env_value(&env, "AUTH_MODE"), env_value(&env, "MAX_BACKLOG_PER_KEY")), ("required", "0"));
        assert_eq!((env_value(&env, "MAX_BACKLOG"), env_value(&env, "STREAM_MAXLEN")), ("3000000", "0"));
    }

    #[test]
    fn per_request_counts_commands_and_script_time() {
        let c: Cmds = BTreeMap::from([("evalsha".into(), (100, 2500)), ("xadd".into(), (100, 300)), ("hset".into(), (200, 100))]);
        assert_eq!(per_request(&c, 100), (4.0, 25.0));
    }
}
