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
    /// Runtime threads of the load generator (it shares the cores with the API and Redis).
    #[arg(long, default_value_t = 1, global = true)]
    pub client_threads: usize,
    /// What to measure.
    #[command(subcommand)]
    pub command: Cmd,
}

/// Measurements.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Open-loop load on POST /v1/couplets (no workers) at rising rates, then a sustained run; Redis XADD ceiling.
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

/// Arguments of `submit`.
#[derive(Debug, Clone, Parser)]
#[command(name = "submit")]
pub struct SubmitArgs {
    /// Offered rates of the ramp, requests/s.
    #[arg(long, value_delimiter = ',', default_value = "1000,2000,4000,6000,8000,10000,12000,14000,16000,20000")]
    pub rates: Vec<f64>,
    /// Seconds per ramp step.
    #[arg(long, default_value_t = 10.0)]
    pub step_seconds: f64,
    /// Seconds of the final sustained run at the best rate.
    #[arg(long, default_value_t = 30.0)]
    pub duration: f64,
    /// Skip the ramp and run the sustained run at this rate.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Concurrent requests (keep-alive connections) of the generator; also redis-benchmark's -c.
    #[arg(long, default_value_t = 128)]
    pub connections: usize,
    /// The ramp stops at the first step whose P99 exceeds this (ms) or that has errors.
    #[arg(long, default_value_t = 50.0)]
    pub stop_p99_ms: f64,
    /// Target P99 (ms): the best rate is the highest step that meets it.
    #[arg(long, default_value_t = 20.0)]
    pub target_p99_ms: f64,
    /// Target sustained rate, requests/s (for the verdict only).
    #[arg(long, default_value_t = 10_000.0)]
    pub target_rate: f64,
    /// Extra API environment, e.g. `--api-env REDIS_POOL_SIZE=32` (repeatable).
    #[arg(long = "api-env", value_parser = parse_kv)]
    pub api_env: Vec<(String, String)>,
    /// Requests of the redis-benchmark XADD run (0 skips it).
    #[arg(long, default_value_t = 200_000)]
    pub redis_requests: u64,
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
