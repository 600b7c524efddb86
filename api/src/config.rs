//! Command line and environment of `couplet-api`, validated into typed
//! settings right after parsing. Every setting is a flag with an environment
//! variable; the names in the README's table are fixed.

use clap::{Args, Parser, Subcommand};
use std::time::Duration;

/// Couplet API: accepts couplet jobs, queues them in Redis, answers polls, serves the pixel UI.
#[derive(Debug, Parser)]
#[command(name = "couplet-api", version, about)]
pub struct Cli {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Server settings.
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve HTTP (the default).
    Serve,
    /// Manage API keys.
    Keys {
        /// Key operation.
        #[command(subcommand)]
        op: KeysOp,
    },
    /// Inspect, replay or purge the dead-letter stream (jobs that exhausted MAX_ATTEMPTS).
    Dlq {
        /// Dead-letter operation.
        #[command(subcommand)]
        op: DlqOp,
    },
}

/// Dead-letter operations.
#[derive(Debug, Subcommand)]
pub enum DlqOp {
    /// One line per entry, oldest first: entry id, job id, error type, attempts, age.
    List {
        /// Most entries to print.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// One entry in full, as JSON (the request's callback URL is already blanked).
    Show {
        /// Entry id (from `dlq list`).
        id: String,
    },
    /// Re-enqueue the jobs of these entries as new attempts (0 of MAX_ATTEMPTS) and remove the
    /// entries; an entry already replayed is reported "not found" and nothing is queued twice.
    Replay {
        /// Entry ids (from `dlq list`).
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Delete entries by id or by age.
    #[command(group(clap::ArgGroup::new("what").required(true).args(["id", "older_than"])))]
    Purge {
        /// Entry id to delete (repeatable).
        #[arg(long)]
        id: Vec<String>,
        /// Delete entries older than this: `0s` (all), `90s`, `30m`, `12h`, `7d`.
        #[arg(long)]
        older_than: Option<String>,
    },
}

/// API key operations.
#[derive(Debug, Subcommand)]
pub enum KeysOp {
    /// Create a key; prints it (and its webhook signing secret) once.
    Create {
        /// Human-readable name.
        #[arg(long)]
        name: String,
        /// Sustained rate, e.g. `20/s` or `600/m`.
        #[arg(long, default_value = "20/s")]
        rate: String,
        /// Burst size (requests allowed at once).
        #[arg(long, default_value_t = 40)]
        burst: u32,
    },
    /// List keys (never prints keys or secrets).
    List,
    /// Revoke a key by its id; takes effect at once.
    Revoke {
        /// Key id (from `keys list`).
        id: String,
    },
}

/// Authentication mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthMode {
    /// Every /v1 request needs `Authorization: Bearer <key>`.
    Required,
    /// No keys (local development, the embedded default run); per-IP rate limit.
    Off,
}

/// Server settings.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// Redis URL.
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379", global = true)]
    pub redis_url: String,
    /// Prefix of every Redis key of this deployment.
    #[arg(long, env = "KEY_PREFIX", default_value = "couplet:", global = true)]
    pub key_prefix: String,
    /// HTTP listen address (also serves /metrics).
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:8080")]
    pub listen_addr: String,
    /// `required` (production) or `off` (local development).
    #[arg(long, env = "AUTH_MODE", value_enum, default_value = "off")]
    pub auth_mode: AuthMode,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 16 * 1024)]
    pub max_body_bytes: usize,
    /// Longest time to receive a request body, in ms (slow clients get 408).
    #[arg(long, env = "BODY_TIMEOUT_MS", default_value_t = 10_000)]
    pub body_timeout_ms: u64,
    /// How long finished jobs (and idempotency records) are kept, in seconds.
    #[arg(long, env = "RESULT_TTL_S", default_value_t = 86_400)]
    pub result_ttl_s: u64,
    /// Jobs not yet acknowledged (queued or being generated) at which submissions get 503 (0 = unlimited).
    #[arg(long, env = "MAX_BACKLOG", default_value_t = 50_000)]
    pub max_backlog: u64,
    /// Jobs one API key may have queued or running at once; beyond it submissions get 429
    /// `queue_quota` (0 = unlimited). Applies to API keys (AUTH_MODE=required); with AUTH_MODE=off there is one tenant and only MAX_BACKLOG applies.
    #[arg(long, env = "MAX_BACKLOG_PER_KEY", default_value_t = 1000)]
    pub max_backlog_per_key: u64,
    /// Hard cap of the job stream's length (queued + in-progress entries): submissions
    /// beyond it get 503, never trimmed (default: 2 × MAX_BACKLOG + 10000; unlimited when
    /// MAX_BACKLOG is 0; 0 = unlimited; must not be below MAX_BACKLOG).
    #[arg(long, env = "STREAM_MAXLEN")]
    pub stream_maxlen: Option<u64>,
    /// How long `POST /generate` waits before answering 504 with the job id, in ms.
    #[arg(long, env = "GENERATE_TIMEOUT_MS", default_value_t = 10_000)]
    pub generate_timeout_ms: u64,
    /// Per-client-IP rate (requests/s) in AUTH_MODE=off (0 = no limit).
    #[arg(long, env = "IP_RATE_LIMIT", default_value_t = 20.0)]
    pub ip_rate_limit: f64,
    /// Per-client-IP burst in AUTH_MODE=off.
    #[arg(long, env = "IP_RATE_BURST", default_value_t = 40)]
    pub ip_rate_burst: u32,
    /// Webhook signing secret stored with jobs in AUTH_MODE=off (keys carry their own in `required`).
    #[arg(long, env = "WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,
    /// Comma-separated CIDRs and host names webhooks may reach despite the SSRF policy.
    #[arg(long, env = "WEBHOOK_ALLOWLIST", default_value = "")]
    pub webhook_allowlist: String,
    /// Redis connections in the pool.
    #[arg(long, env = "REDIS_POOL_SIZE", default_value_t = 16)]
    pub redis_pool_size: usize,
    /// Grace period for in-flight requests on SIGTERM, in ms.
    #[arg(long, env = "SHUTDOWN_TIMEOUT_MS", default_value_t = 10_000)]
    pub shutdown_timeout_ms: u64,
    /// `?wait` long polls one API key (or the one `AUTH_MODE=off` tenant) may hold open at once on
    /// this API process; past it a poll answers the job's current state at once (0 = no cap).
    #[arg(long, env = "MAX_WAITS_PER_KEY", default_value_t = 32)]
    pub max_waits_per_key: usize,
    /// Images drawn at once; a request finding all busy waits up to 2 s, then gets 503 `overloaded`.
    #[arg(long, env = "MAX_CONCURRENT_RENDERS", default_value_t = 4)]
    pub max_concurrent_renders: usize,
    /// Rendered images kept in memory (keyed by ETag input; 0 = no cache).
    #[arg(long, env = "RENDER_CACHE_ENTRIES", default_value_t = 256)]
    pub render_cache_entries: usize,
    /// Total bytes of rendered images kept in memory.
    #[arg(long, env = "RENDER_CACHE_BYTES", default_value_t = 32 * 1024 * 1024)]
    pub render_cache_bytes: usize,
    /// Failed authorizations (missing/unknown key) one client IP may make per second before it
    /// gets 429 `rate_limited` without a Redis lookup (0 = no limit).
    #[arg(long, env = "AUTH_FAILURES_PER_IP", default_value_t = 10)]
    pub auth_failures_per_ip: u32,
    /// Open client connections at most; further ones wait in the kernel's accept backlog.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,
    /// Length of the kernel's accept queue (the listen backlog; the kernel caps it at
    /// net.core.somaxconn). A burst of new clients beyond it has its SYNs dropped and
    /// retried only after a second.
    #[arg(long, env = "LISTEN_BACKLOG", default_value_t = 4096)]
    pub listen_backlog: u32,
    /// Longest time to write one response, in ms; a client that does not read it is dropped.
    #[arg(long, env = "WRITE_TIMEOUT_MS", default_value_t = 30_000)]
    pub write_timeout_ms: u64,
    /// What to do at start when Redis's maxmemory-policy is not `noeviction` (an evicting
    /// Redis silently drops jobs): `refuse` to start, `warn` and run, or `off`.
    #[arg(long, env = "REDIS_EVICTION_CHECK", default_value = "refuse", global = true)]
    pub redis_eviction_check: String,
    /// CPU scheduling policy of the API's threads: `batch` (a request or a Redis reply waking
    /// a thread never preempts the running one, so the API cannot push a co-located Redis off
    /// its core; fair share unchanged) or `normal` (the kernel's default). Not applied when the
    /// process was started at a nice value other than 0.
    #[arg(long, env = "CPU_POLICY", default_value = "batch")]
    pub cpu_policy: common::cpu_policy::CpuPolicy,
}

/// Validated API settings.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Redis URL.
    pub redis_url: String,
    /// Key prefix.
    pub key_prefix: String,
    /// Listen address.
    pub listen_addr: std::net::SocketAddr,
    /// Auth mode.
    pub auth_mode: AuthMode,
    /// Body cap.
    pub max_body_bytes: usize,
    /// Body read deadline.
    pub body_timeout: Duration,
    /// Job TTL.
    pub result_ttl_s: u64,
    /// Admission limit.
    pub max_backlog: u64,
    /// Per-key queued-or-running quota (0 = unlimited).
    pub max_backlog_per_key: u64,
    /// Stream length at which submissions are refused (0 = unlimited); never a trim.
    pub stream_maxlen: u64,
    /// Sync generate wait.
    pub generate_timeout: Duration,
    /// Per-IP rate in off mode.
    pub ip_rate_limit: f64,
    /// Per-IP burst in off mode.
    pub ip_rate_burst: u32,
    /// Off-mode webhook secret (empty: the dispatcher's own).
    pub webhook_secret: String,
    /// SSRF exceptions.
    pub allowlist: common::ssrf::Allowlist,
    /// Pool size.
    pub redis_pool_size: usize,
    /// Shutdown grace.
    pub shutdown_timeout: Duration,
    /// Held `?wait` polls per key per process (0 = no cap).
    pub max_waits_per_key: usize,
    /// Concurrent renders.
    pub max_concurrent_renders: usize,
    /// Render cache entry bound (0 = off).
    pub render_cache_entries: usize,
    /// Render cache byte bound.
    pub render_cache_bytes: usize,
    /// Failed authorizations per IP per second before 429 (0 = off).
    pub auth_failures_per_ip: u32,
    /// Open connection cap.
    pub max_connections: usize,
    /// Listen backlog.
    pub listen_backlog: u32,
    /// Response write deadline.
    pub write_timeout: Duration,
    /// Start-up check of Redis's eviction policy.
    pub eviction_check: common::eviction::EvictionCheck,
}

impl ServerArgs {
    /// Validates into [`ApiConfig`]; errors name the setting to fix.
    pub fn validate(&self) -> Result<ApiConfig, String> {
        let listen_addr = self.listen_addr.parse().map_err(|e| format!("LISTEN_ADDR `{}`: {e}", self.listen_addr))?;
        if self.max_body_bytes < 256 || self.max_body_bytes > 1024 * 1024 {
            return Err("MAX_BODY_BYTES must be between 256 and 1048576".into());
        }
        if self.result_ttl_s < 60 {
            return Err("RESULT_TTL_S must be at least 60".into());
        }
        if self.ip_rate_limit < 0.0 || !self.ip_rate_limit.is_finite() {
            return Err("IP_RATE_LIMIT must be a non-negative number".into());
        }
        if self.max_concurrent_renders == 0 || self.max_concurrent_renders > 1024 {
            return Err("MAX_CONCURRENT_RENDERS must be between 1 and 1024".into());
        }
        if self.max_connections == 0 {
            return Err("MAX_CONNECTIONS must be at least 1".into());
        }
        if self.write_timeout_ms < 100 {
            return Err("WRITE_TIMEOUT_MS must be at least 100".into());
        }
        let allowlist = common::ssrf::Allowlist::parse(&self.webhook_allowlist)?;
        let stream_maxlen = stream_cap(self.max_backlog, self.stream_maxlen)?;
        if self.webhook_secret.as_deref().is_some_and(|s| !s.is_empty() && !common::signing::is_standard(s)) {
            tracing::warn!("WEBHOOK_SECRET is not `whsec_` + base64 of at least 24 bytes: signing with its raw bytes (legacy), which Standard Webhooks libraries do not verify; replace it with `whsec_$(openssl rand -base64 32)`");
        }
        Ok(ApiConfig {
            redis_url: self.redis_url.clone(),
            key_prefix: self.key_prefix.clone(),
            listen_addr,
            auth_mode: self.auth_mode,
            max_body_bytes: self.max_body_bytes,
            body_timeout: Duration::from_millis(self.body_timeout_ms.max(100)),
            result_ttl_s: self.result_ttl_s,
            max_backlog: self.max_backlog,
            max_backlog_per_key: self.max_backlog_per_key,
            stream_maxlen,
            generate_timeout: Duration::from_millis(self.generate_timeout_ms.clamp(100, 120_000)),
            ip_rate_limit: self.ip_rate_limit,
            ip_rate_burst: self.ip_rate_burst.max(1),
            webhook_secret: self.webhook_secret.clone().unwrap_or_default(),
            allowlist,
            redis_pool_size: self.redis_pool_size.clamp(1, 512),
            shutdown_timeout: Duration::from_millis(self.shutdown_timeout_ms),
            max_waits_per_key: self.max_waits_per_key,
            max_concurrent_renders: self.max_concurrent_renders,
            render_cache_entries: self.render_cache_entries,
            render_cache_bytes: self.render_cache_bytes,
            auth_failures_per_ip: self.auth_failures_per_ip,
            max_connections: self.max_connections,
            listen_backlog: self.listen_backlog.max(1),
            write_timeout: Duration::from_millis(self.write_timeout_ms),
            eviction_check: self.redis_eviction_check.parse().map_err(|e: common::eviction::EvictionError| e.to_string())?,
        })
    }
}

/// The stream cap for MAX_BACKLOG and STREAM_MAXLEN. The cap only ever refuses
/// submissions (the submit script compares XLEN before XADD; nothing trims the
/// stream), so no value can drop an accepted job; a cap below MAX_BACKLOG is
/// refused because it would make MAX_BACKLOG meaningless and usually means the
/// operator still thinks of STREAM_MAXLEN as a trim length.
pub fn stream_cap(max_backlog: u64, stream_maxlen: Option<u64>) -> Result<u64, String> {
    match stream_maxlen {
        None if max_backlog == 0 => Ok(0),
        None => Ok(max_backlog.saturating_mul(2).saturating_add(10_000)),
        Some(0) => Ok(0),
        Some(cap) if max_backlog > 0 && cap < max_backlog => Err(format!(
            "STREAM_MAXLEN ({cap}) is below MAX_BACKLOG ({max_backlog}): the stream cap counts queued and in-progress \
             jobs and refuses submissions beyond it, so it must be at least MAX_BACKLOG (unset it for 2 × MAX_BACKLOG + 10000, or 0 for no cap)"
        )),
        Some(cap) => Ok(cap),
    }
}

/// Parses `20/s`, `600/m`, `3600/h` into requests per second.
pub fn parse_rate(s: &str) -> Result<f64, String> {
    let (n, unit) = s.split_once('/').unwrap_or((s, "s"));
    let n: f64 = n.trim().parse().map_err(|_| format!("rate `{s}` must look like 20/s, 600/m or 3600/h"))?;
    let per = match unit.trim() {
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("rate `{s}`: unit must be s, m or h")),
    };
    if !(n > 0.0 && n.is_finite()) {
        return Err(format!("rate `{s}` must be positive"));
    }
    Ok(n / per)
}

#[cfg(test)]
mod tests {
    #[test]
    fn rates_parse() {
        assert_eq!(super::parse_rate("20/s"), Ok(20.0));
        assert_eq!(super::parse_rate("600/m"), Ok(10.0));
        assert!(super::parse_rate("fast").is_err());
        assert!(super::parse_rate("0/s").is_err());
    }

    #[test]
    fn stream_caps_never_undercut_the_backlog() {
        use super::stream_cap;
        // MAX_BACKLOG=0 means off: no hidden cap (the old default trimmed at 10,000).
        assert_eq!(stream_cap(0, None), Ok(0));
        assert_eq!(stream_cap(50_000, None), Ok(110_000));
        assert_eq!(stream_cap(0, Some(50)), Ok(50));
        assert_eq!(stream_cap(100, Some(100)), Ok(100));
        assert_eq!(stream_cap(100, Some(0)), Ok(0));
        let e = stream_cap(100, Some(50)).expect_err("a cap below the backlog is refused");
        assert!(e.contains("STREAM_MAXLEN (50) is below MAX_BACKLOG (100)"), "{e}");
    }
}
