//! Command line and environment of `couplet-worker`, validated into typed
//! settings right after parsing. Every setting is a flag with an environment
//! variable; the names in the README's table are fixed.

use crate::model::Device;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

/// Couplet worker: consumes jobs from the Redis stream in batches and runs the ONNX model.
#[derive(Debug, Parser)]
#[command(name = "couplet-worker", version, about)]
pub struct Cli {
    /// What to do (default: run the worker).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Model and runtime settings.
    #[command(flatten)]
    pub model: ModelArgs,
    /// Worker settings.
    #[command(flatten)]
    pub run: RunArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the queue consumer and webhook dispatcher (the default).
    Run,
    /// Offline bulk generation, one JSON object per line.
    Generate(GenerateArgs),
    /// Measure model throughput at several batch sizes.
    Bench(BenchArgs),
}

/// Where the model and ONNX Runtime are.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// Folder with model.onnx, vocab.txt, config.json (default: models/default of the repository).
    #[arg(long, env = "MODEL_DIR", global = true)]
    pub model_dir: Option<PathBuf>,
    /// Path of libonnxruntime.so (default: .ort/lib/ of the repository, placed by scripts/setup.sh).
    #[arg(long, env = "ORT_DYLIB_PATH", global = true)]
    pub ort_dylib_path: Option<PathBuf>,
    /// Execution device; cuda falls back to cpu with a warning.
    #[arg(long, env = "DEVICE", value_enum, default_value = "cpu", global = true)]
    pub device: Device,
    /// ONNX Runtime intra-op threads (0 = one per core).
    #[arg(long, env = "INTRA_THREADS", default_value_t = 0, global = true)]
    pub intra_threads: usize,
    /// Samples decoded per request and ranked by fluency + 对仗; the best are returned
    /// (1 = plain sampling; a request's `candidates` raises it for that request).
    #[arg(long, env = "CANDIDATE_POOL", default_value_t = crate::model::DEFAULT_POOL, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=16), global = true)]
    pub candidate_pool: usize,
    /// Samples decoded per request when the batch is small: a batch of n requests decodes
    /// clamp(CANDIDATE_POOL_IDLE × CANDIDATE_POOL / n, CANDIDATE_POOL, CANDIDATE_POOL_IDLE)
    /// per request, so spare capacity buys better ranking and a full batch costs what it
    /// costs at CANDIDATE_POOL (0 or a value ≤ CANDIDATE_POOL: off, the default; opt-in,
    /// since 8 did not improve the judged evaluation, MODEL_CARD.md).
    #[arg(long, env = "CANDIDATE_POOL_IDLE", default_value_t = crate::model::DEFAULT_POOL_IDLE, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=16), global = true)]
    pub candidate_pool_idle: usize,
}

/// Queue consumer and dispatcher settings.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Redis URL.
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,
    /// Prefix of every Redis key of this deployment.
    #[arg(long, env = "KEY_PREFIX", default_value = "couplet:")]
    pub key_prefix: String,
    /// Listener for /metrics, /healthz, /readyz.
    #[arg(long, env = "METRICS_ADDR", default_value = "127.0.0.1:9091")]
    pub metrics_addr: String,
    /// Consumer name in the group (default: host-pid).
    #[arg(long, env = "WORKER_ID")]
    pub worker_id: Option<String>,
    /// Largest inference batch.
    #[arg(long, env = "MAX_BATCH", default_value_t = 32)]
    pub max_batch: usize,
    /// Longest wait for a batch to fill after its first job, in ms.
    #[arg(long, env = "MAX_WAIT_MS", default_value_t = 10)]
    pub max_wait_ms: u64,
    /// Entries idle this long are reclaimed from their consumer, in ms.
    #[arg(long, env = "VISIBILITY_TIMEOUT_MS", default_value_t = 30_000)]
    pub visibility_timeout_ms: u64,
    /// How often this worker sweeps for jobs whose stream entry disappeared (XDEL/XTRIM by hand, failover), in ms.
    #[arg(long, env = "LOST_SWEEP_INTERVAL_MS", default_value_t = 10_000)]
    pub lost_sweep_interval_ms: u64,
    /// Processing attempts before a job is failed and dead-lettered.
    #[arg(long, env = "MAX_ATTEMPTS", default_value_t = 3)]
    pub max_attempts: u32,
    /// Grace period for finishing the in-flight batch on SIGTERM, in ms.
    #[arg(long, env = "SHUTDOWN_TIMEOUT_MS", default_value_t = 15_000)]
    pub shutdown_timeout_ms: u64,
    /// Dead-letter stream cap (approximate MAXLEN).
    #[arg(long, env = "DEAD_LETTER_MAXLEN", default_value_t = 100_000)]
    pub dead_letter_maxlen: u64,
    /// Dead-letter entries older than this are dropped (the worker trims the stream by age
    /// every minute, or every TTL/2 when shorter), in seconds; at least 1.
    #[arg(long, env = "DEAD_LETTER_TTL_S", default_value_t = 7 * 86_400)]
    pub dead_letter_ttl_s: u64,
    /// The deployment's auth mode (as the API's): with `required`, a dispatcher needs
    /// WEBHOOK_SECRET and refuses to start without one instead of signing with the public development secret.
    #[arg(long, env = "AUTH_MODE", default_value = "off", value_parser = ["off", "required"])]
    pub auth_mode: String,
    /// Run the webhook dispatcher in this process.
    #[arg(long, env = "WEBHOOK_DISPATCHER", default_value_t = true, action = clap::ArgAction::Set)]
    pub webhook_dispatcher: bool,
    /// Webhook signing secret when jobs carry none (AUTH_MODE=off deployments).
    #[arg(long, env = "WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,
    /// Comma-separated CIDRs and host names webhooks may reach despite the SSRF policy.
    #[arg(long, env = "WEBHOOK_ALLOWLIST", default_value = "")]
    pub webhook_allowlist: String,
    /// What to do at start when Redis's maxmemory-policy is not `noeviction` (an evicting
    /// Redis silently drops jobs): `refuse` to start, `warn` and run, or `off`.
    #[arg(long, env = "REDIS_EVICTION_CHECK", default_value = "refuse")]
    pub redis_eviction_check: String,
    /// Timeout of one webhook attempt, in ms.
    #[arg(long, env = "WEBHOOK_TIMEOUT_MS", default_value_t = 10_000)]
    pub webhook_timeout_ms: u64,
    /// Delays before each webhook attempt (comma-separated, units ms/s/m/h); its length is the attempt count.
    #[arg(long, env = "WEBHOOK_SCHEDULE", default_value = "0s,5s,30s,2m,10m,1h")]
    pub webhook_schedule: String,
    /// Most webhook deliveries in flight at once.
    #[arg(long, env = "WEBHOOK_CONCURRENCY", default_value_t = 32)]
    pub webhook_concurrency: usize,
    /// Most deliveries in flight at once to one receiver (scheme, host and port); others for it wait.
    #[arg(long, env = "WEBHOOK_PER_HOST_CONCURRENCY", default_value_t = 4)]
    pub webhook_per_host_concurrency: usize,
    /// Most deliveries in flight at once for one API key's jobs; others for it wait.
    #[arg(long, env = "WEBHOOK_PER_KEY_CONCURRENCY", default_value_t = 8)]
    pub webhook_per_key_concurrency: usize,
}

/// Arguments of `generate`.
#[derive(Debug, Clone, Args)]
pub struct GenerateArgs {
    /// File with one upper line per line.
    #[arg(long)]
    pub upper_file: Option<PathBuf>,
    /// Theme for theme mode.
    #[arg(long)]
    pub theme: Option<String>,
    /// Style.
    #[arg(long, default_value = "classic")]
    pub style: String,
    /// Line length (theme mode).
    #[arg(long)]
    pub length: Option<i64>,
    /// Couplets to write (theme mode).
    #[arg(long, default_value_t = 1)]
    pub count: usize,
    /// Seed (the i-th couplet uses seed + i).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Batch size.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Ranked candidates per couplet (1–5): top-level fields are the best, `candidates` holds all.
    #[arg(long)]
    pub candidates: Option<i64>,
    /// 藏头: two characters that open the upper and the lower line.
    #[arg(long)]
    pub head: Option<String>,
    /// Print JSON lines (the default and only format; kept for scripts).
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Batch sizes to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32,64")]
    pub batches: Vec<usize>,
    /// Seconds per batch size.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Test file for character accuracy (upper<TAB>lower with a header); skipped when absent.
    #[arg(long)]
    pub accuracy_file: Option<PathBuf>,
    /// Rows of the accuracy file to use (0 = all).
    #[arg(long, default_value_t = 0)]
    pub accuracy_limit: usize,
    /// Ranked candidates each bench request asks for (1 = the default mode).
    #[arg(long, default_value_t = 1)]
    pub candidates: i64,
}

/// Validated worker settings.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Redis URL.
    pub redis_url: String,
    /// Start-up check of Redis's eviction policy.
    pub eviction_check: common::eviction::EvictionCheck,
    /// Key prefix.
    pub key_prefix: String,
    /// Metrics listener.
    pub metrics_addr: std::net::SocketAddr,
    /// Consumer name.
    pub consumer: String,
    /// Largest batch.
    pub max_batch: usize,
    /// Batch fill wait.
    pub max_wait: Duration,
    /// Visibility timeout.
    pub visibility_timeout: Duration,
    /// Interval of the lost-entry sweep.
    pub lost_sweep_interval: Duration,
    /// Attempts.
    pub max_attempts: u32,
    /// Shutdown grace.
    pub shutdown_timeout: Duration,
    /// Dead-letter cap.
    pub dead_letter_maxlen: u64,
    /// Age after which dead-letter entries are trimmed.
    pub dead_letter_ttl: Duration,
    /// Webhook settings, when the dispatcher runs here.
    pub webhooks: Option<WebhookConfig>,
}

/// Webhook dispatcher settings.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Fallback signing secret.
    pub secret: String,
    /// SSRF exceptions.
    pub allowlist: common::ssrf::Allowlist,
    /// Per-attempt timeout.
    pub timeout: Duration,
    /// Delay before attempt i (first is usually 0).
    pub schedule: Vec<Duration>,
    /// Concurrency bound.
    pub concurrency: usize,
    /// Concurrency bound per receiver origin.
    pub per_host: usize,
    /// Concurrency bound per owner (API key).
    pub per_key: usize,
}

/// Parses `500ms`, `5s`, `2m`, `1h` (bare numbers are ms).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, mult) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1_000)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60_000)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3_600_000)
    } else {
        (s, 1)
    };
    let n: u64 = num.trim().parse().map_err(|_| format!("`{s}` is not a duration like 500ms, 5s, 2m or 1h"))?;
    Ok(Duration::from_millis(n * mult))
}

impl RunArgs {
    /// Validates into [`WorkerConfig`]; errors name the setting to fix.
    pub fn validate(&self) -> Result<WorkerConfig, String> {
        if self.max_batch == 0 || self.max_batch > 1024 {
            return Err("MAX_BATCH must be between 1 and 1024".into());
        }
        if self.max_attempts == 0 {
            return Err("MAX_ATTEMPTS must be at least 1".into());
        }
        if self.visibility_timeout_ms < 100 {
            return Err("VISIBILITY_TIMEOUT_MS must be at least 100".into());
        }
        if self.lost_sweep_interval_ms < 100 {
            return Err("LOST_SWEEP_INTERVAL_MS must be at least 100".into());
        }
        if self.dead_letter_ttl_s == 0 {
            return Err("DEAD_LETTER_TTL_S must be at least 1".into());
        }
        let metrics_addr = self.metrics_addr.parse().map_err(|e| format!("METRICS_ADDR `{}`: {e}", self.metrics_addr))?;
        let consumer = self.worker_id.clone().unwrap_or_else(default_worker_id);
        let webhooks = if self.webhook_dispatcher {
            let schedule = self
                .webhook_schedule
                .split(',')
                .map(parse_duration)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("WEBHOOK_SCHEDULE: {e}"))?;
            if schedule.is_empty() {
                return Err("WEBHOOK_SCHEDULE needs at least one entry".into());
            }
            let allowlist = common::ssrf::Allowlist::parse(&self.webhook_allowlist)?;
            let secret = match &self.webhook_secret {
                Some(s) if !s.is_empty() => {
                    if !common::signing::is_standard(s) {
                        tracing::warn!("WEBHOOK_SECRET is not `whsec_` + base64 of at least 24 bytes: signing with its raw bytes (legacy), which Standard Webhooks libraries do not verify; replace it with `whsec_$(openssl rand -base64 32)`");
                    }
                    s.clone()
                }
                _ if self.auth_mode == "required" => {
                    return Err("WEBHOOK_SECRET is required with AUTH_MODE=required: without it, webhooks of jobs that carry no per-key secret \
                                would be signed with the public development secret. Set WEBHOOK_SECRET=whsec_$(openssl rand -base64 32), \
                                or WEBHOOK_DISPATCHER=false on workers that do not deliver webhooks"
                        .into());
                }
                _ => {
                    tracing::warn!("WEBHOOK_SECRET is not set: webhooks of jobs without a per-key secret are signed with an insecure development secret");
                    INSECURE_DEV_SECRET.to_string()
                }
            };
            Some(WebhookConfig {
                secret,
                allowlist,
                timeout: Duration::from_millis(self.webhook_timeout_ms.max(100)),
                schedule,
                concurrency: self.webhook_concurrency.max(1),
                per_host: self.webhook_per_host_concurrency.max(1),
                per_key: self.webhook_per_key_concurrency.max(1),
            })
        } else {
            None
        };
        Ok(WorkerConfig {
            eviction_check: self
                .redis_eviction_check
                .parse()
                .map_err(|e: common::eviction::EvictionError| e.to_string())?,
            redis_url: self.redis_url.clone(),
            key_prefix: self.key_prefix.clone(),
            metrics_addr,
            consumer,
            max_batch: self.max_batch,
            max_wait: Duration::from_millis(self.max_wait_ms),
            visibility_timeout: Duration::from_millis(self.visibility_timeout_ms),
            lost_sweep_interval: Duration::from_millis(self.lost_sweep_interval_ms),
            max_attempts: self.max_attempts,
            shutdown_timeout: Duration::from_millis(self.shutdown_timeout_ms),
            dead_letter_maxlen: self.dead_letter_maxlen,
            dead_letter_ttl: Duration::from_secs(self.dead_letter_ttl_s),
            webhooks,
        })
    }
}

/// Signing secret when WEBHOOK_SECRET is unset: standard form, but public (base64 of "insecure-development-secret!").
const INSECURE_DEV_SECRET: &str = "whsec_aW5zZWN1cmUtZGV2ZWxvcG1lbnQtc2VjcmV0IQ==";

fn default_worker_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "host".into());
    format!("{host}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("soon").is_err());
    }

    fn args(env: &[&str]) -> RunArgs {
        let cli = Cli::try_parse_from(std::iter::once("couplet-worker").chain(env.iter().copied())).expect("arguments parse");
        cli.run
    }

    #[test]
    fn required_auth_needs_a_webhook_secret() {
        let e = args(&["--auth-mode", "required"]).validate().expect_err("no secret with AUTH_MODE=required");
        assert!(e.contains("WEBHOOK_SECRET is required"), "{e}");
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let ok = args(&["--auth-mode", "required", "--webhook-secret", secret]).validate().expect("secret given");
        assert_eq!(ok.webhooks.map(|w| w.secret).as_deref(), Some(secret));
        assert!(args(&["--auth-mode", "required", "--webhook-dispatcher", "false"]).validate().is_ok());
        // Local development (scripts/run.sh) keeps the development secret.
        assert!(args(&[]).validate().is_ok());
    }
}
