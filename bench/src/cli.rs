//! Command line of `bench`: one subcommand per measurement, each with
//! defaults that reproduce `docs/BENCHMARKS.md`. Every argument struct also
//! derives `Parser`, so `all` can build the short variants from argument
//! lists exactly as a user would type them.

use clap::{Parser, Subcommand};

/// Benchmarks of Pixel Couplet Gen: spawns the release binaries against the real Redis.
#[derive(Debug, Parser)]
#[command(name = "bench", about)]
pub struct Cli {
    /// Redis the binaries and the bench use.
    #[arg(long, env = "BENCH_REDIS_URL", default_value = "redis://127.0.0.1:6379", global = true)]
    pub redis_url: String,
    /// Cargo profile whose binaries are measured, from `target/<PROFILE>/`: `dist` (the shipped
    /// build, whole-program LTO; build it with `cargo build --profile dist -p couplet-api -p couplet-worker`)
    /// or `release` (the build the tests use).
    #[arg(long, env = "BENCH_PROFILE", default_value = "dist", global = true)]
    pub profile: String,
    /// Open-loop generators (each a sending and a reading thread; 0 = one per core).
    #[arg(long, default_value_t = 0, global = true)]
    pub generators: usize,
    /// What to measure.
    #[command(subcommand)]
    pub command: Cmd,
}

/// Measurements.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// POST /v1/couplets alone (no workers): open loop at a fixed rate, closed loop with wrk, Redis XADD/EVALSHA ceilings.
    Submit(SubmitArgs),
    /// Submit → succeeded latency and throughput with 1 and 2 workers at fixed offered loads.
    E2e(E2eArgs),
    /// Worker throughput at saturation for several MAX_BATCH values.
    Batching(BatchingArgs),
    /// Long run at a fraction of a rate; RSS of the API and workers after minute 1 and at the end.
    Soak(SoakArgs),
    /// submit, e2e and batching with short defaults.
    All,
}

/// `KEY=VALUE`.
pub fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).ok_or_else(|| format!("`{s}` is not KEY=VALUE"))
}

/// Authentication of the API under `bench submit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Auth {
    /// `AUTH_MODE=off IP_RATE_LIMIT=0`: one tenant, no key lookup.
    Off,
    /// `AUTH_MODE=required` with a key whose rate limit and quota cannot bind.
    Required,
}

/// Arguments of `submit`.
#[derive(Debug, Clone, Parser)]
#[command(name = "submit")]
pub struct SubmitArgs {
    /// Offered rate of the open-loop run, submissions/s.
    #[arg(long, default_value_t = 15_000.0)]
    pub rate: f64,
    /// Seconds of the open-loop run (measured).
    #[arg(long, alias = "duration", default_value_t = 30.0)]
    pub seconds: f64,
    /// Seconds at the full rate before each open-loop run's measured seconds,
    /// on the same schedule without a gap (connections grow to what the rate
    /// needs, the API reaches its steady state); reported on a line of their own.
    #[arg(long, default_value_t = 5.0)]
    pub settle_seconds: f64,
    /// The open-loop generators' timer tick, µs: each wakes at multiples of it
    /// and writes every request due by then (0 = at each request's due time).
    /// The wait is part of the lag and of the latency.
    #[arg(long, default_value_t = 250)]
    pub tick_us: u64,
    /// Nice value of the open-loop generator threads (0 = inherited; below 0
    /// needs root or CAP_SYS_NICE, else ignored and reported).
    #[arg(long, default_value_t = -10, allow_hyphen_values = true)]
    pub generator_nice: i32,
    /// CPU scheduling policy of the load generators (the open-loop threads and
    /// wrk): `batch` (an answer waking a generator never preempts the API or
    /// Redis, as with a client on another machine) or `normal`.
    #[arg(long, default_value = "batch")]
    pub generator_policy: common::cpu_policy::CpuPolicy,
    /// Open-loop steps before the main run, submissions/s (e.g. `2000,5000,10000`); stops at the first step with P99 over --stop-p99-ms or errors.
    #[arg(long, value_delimiter = ',')]
    pub ramp: Vec<f64>,
    /// Seconds per ramp step.
    #[arg(long, default_value_t = 10.0)]
    pub step_seconds: f64,
    /// The ramp stops at the first step whose P99 exceeds this (ms).
    #[arg(long, default_value_t = 50.0)]
    pub stop_p99_ms: f64,
    /// Keep-alive connections the open-loop generators open before the first request (all generators together).
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Most connections the open-loop generators hold; more are opened only when none is idle.
    #[arg(long, default_value_t = 1024)]
    pub max_connections: usize,
    /// Target rate of the open-loop verdict, submissions/s (defaults to --rate).
    #[arg(long)]
    pub target_rate: Option<f64>,
    /// Target P99 of the open-loop verdict, ms.
    #[arg(long, default_value_t = 20.0)]
    pub target_p99_ms: f64,
    /// No verdict at all when the generator's lag p99 reaches this, ms.
    #[arg(long, default_value_t = 1.0)]
    pub max_lag_ms: f64,
    /// Authentication of the API under test.
    #[arg(long, value_enum, default_value = "off")]
    pub auth: Auth,
    /// Extra API environment, e.g. `--api-env REDIS_POOL_SIZE=32` (repeatable; applied last).
    #[arg(long = "api-env", value_parser = parse_kv)]
    pub api_env: Vec<(String, String)>,
    /// Seconds of the closed-loop wrk run (0 skips it).
    #[arg(long, default_value_t = 10.0)]
    pub wrk_seconds: f64,
    /// wrk connections.
    #[arg(long, default_value_t = 50)]
    pub wrk_connections: usize,
    /// wrk threads (0 = one per core).
    #[arg(long, default_value_t = 0)]
    pub wrk_threads: usize,
    /// Target of the closed-loop verdict, submissions/s.
    #[arg(long, default_value_t = 25_000.0)]
    pub wrk_target_rate: f64,
    /// Do not run scripts/install-bench-deps.sh when wrk is missing (the closed-loop figure is then skipped).
    #[arg(long)]
    pub no_install: bool,
    /// Seconds of each Redis ceiling run, bare XADD and EVALSHA of the submit script (0 skips them).
    #[arg(long, default_value_t = 3.0)]
    pub redis_seconds: f64,
    /// redis-benchmark clients (-c) of the ceiling runs.
    #[arg(long, default_value_t = 50)]
    pub redis_clients: usize,
    /// redis-benchmark pipelining (-P) of the ceiling runs (1 = one command per round trip, as the API sends them).
    #[arg(long, default_value_t = 1)]
    pub redis_pipeline: usize,
}

/// Arguments of `e2e`.
#[derive(Debug, Clone, Parser)]
#[command(name = "e2e")]
pub struct E2eArgs {
    /// Offered loads, jobs/s.
    #[arg(long, value_delimiter = ',', default_value = "25,50,100,200")]
    pub rates: Vec<f64>,
    /// Worker counts.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    pub workers: Vec<usize>,
    /// Seconds of offered load per point.
    #[arg(long, default_value_t = 30.0)]
    pub duration: f64,
    /// Longest wait after the load for queued jobs to finish, s (unfinished jobs count at this age).
    #[arg(long, default_value_t = 60.0)]
    pub drain_seconds: f64,
    /// Target P95 submit → succeeded, ms.
    #[arg(long, default_value_t = 1000.0)]
    pub target_p95_ms: f64,
    /// INTRA_THREADS of each worker (1: two workers do not fight over the 2 cores).
    #[arg(long, default_value = "1")]
    pub intra_threads: String,
    /// Extra worker environment (repeatable).
    #[arg(long = "worker-env", value_parser = parse_kv)]
    pub worker_env: Vec<(String, String)>,
}

/// Arguments of `batching`.
#[derive(Debug, Clone, Parser)]
#[command(name = "batching")]
pub struct BatchingArgs {
    /// MAX_BATCH values.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32,64")]
    pub batches: Vec<usize>,
    /// Jobs pre-filled into the stream before the worker starts.
    #[arg(long, default_value_t = 2000)]
    pub jobs: usize,
    /// Longest time one MAX_BATCH value may take, s (the rate is then taken over the jobs done).
    #[arg(long, default_value_t = 240.0)]
    pub deadline_seconds: f64,
    /// INTRA_THREADS of the worker.
    #[arg(long, default_value = "1")]
    pub intra_threads: String,
}

/// Arguments of `soak`.
#[derive(Debug, Clone, Parser)]
#[command(name = "soak")]
pub struct SoakArgs {
    /// Minutes of load.
    #[arg(long, default_value_t = 10.0)]
    pub minutes: f64,
    /// Reference rate, jobs/s (e.g. the highest e2e load meeting the P95 target).
    #[arg(long)]
    pub rate: f64,
    /// Fraction of `rate` offered.
    #[arg(long, default_value_t = 0.7)]
    pub fraction: f64,
    /// Workers.
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// INTRA_THREADS of each worker.
    #[arg(long, default_value = "1")]
    pub intra_threads: String,
    /// Largest allowed RSS growth from minute 1 to the end, %.
    #[arg(long, default_value_t = 10.0)]
    pub max_growth_pct: f64,
}
