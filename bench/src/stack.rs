//! The system under test: the real release binaries (`couplet-api`,
//! `couplet-worker`) started as child processes against the real Redis under
//! a random `KEY_PREFIX`, the same way the black-box harness in `tests/`
//! does. Unlike the harness this returns errors instead of panicking, exposes
//! pids (for CPU and RSS figures), and logs at `warn` so that logging does not
//! cost the API CPU under load. Dropping a [`Stack`] kills its processes and
//! deletes every key under its prefix (also on Ctrl-C: `main` drops the
//! running bench future).

use anyhow::{anyhow, bail, Context, Result};
use common::store::Keys;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The workspace root.
pub fn root() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    p.canonicalize().unwrap_or(p)
}

/// `target/` of the workspace (or `CARGO_TARGET_DIR`).
pub fn target_dir() -> PathBuf {
    std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| root().join("target"))
}

/// Where the binaries under test are: `target/<profile>/` (see [`crate::profile`]).
pub fn bin_dir() -> PathBuf {
    target_dir().join(crate::profile())
}

/// Path of a binary under test; an error tells how to build it.
pub fn bin(name: &str) -> Result<PathBuf> {
    let p = bin_dir().join(name);
    if !p.is_file() {
        bail!("{} not built: run `cargo build --profile {} -p couplet-api -p couplet-worker` first", p.display(), crate::profile());
    }
    Ok(p)
}

/// A free TCP port on loopback.
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A started child process.
pub struct Proc {
    /// `api`, `worker0`, …
    pub name: String,
    /// Its HTTP port (API listener or worker metrics listener).
    pub port: u16,
    child: Child,
}

impl Proc {
    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Base URL of its HTTP listener.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// API + workers under one prefix.
pub struct Stack {
    /// Key prefix of this run.
    pub prefix: String,
    /// Key names under the prefix.
    pub keys: Keys,
    /// Redis URL.
    pub redis_url: String,
    /// The API, once started.
    pub api: Option<Proc>,
    /// Workers started so far.
    pub workers: Vec<Proc>,
    /// Client for readiness and metrics calls.
    pub http: reqwest::Client,
}

fn log_file(name: &str) -> Stdio {
    let dir = target_dir().join("bench/logs");
    let _ = std::fs::create_dir_all(&dir);
    std::fs::File::create(dir.join(name)).map(Stdio::from).unwrap_or_else(|_| Stdio::null())
}

impl Stack {
    /// An empty stack with a fresh random prefix.
    pub fn new(redis_url: &str, tag: &str) -> Result<Self> {
        let prefix = format!("bench-{tag}-{:012x}:", rand::random::<u64>() & 0xffff_ffff_ffff);
        Ok(Stack {
            keys: Keys::new(prefix.clone()),
            prefix,
            redis_url: redis_url.to_string(),
            api: None,
            workers: Vec::new(),
            http: reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?,
        })
    }

    fn logname(&self, what: &str) -> String {
        format!("{}{what}.log", self.prefix.trim_end_matches(':'))
    }

    /// Starts the API with `env` on top of the bench defaults and waits until it is ready.
    pub async fn start_api(&mut self, env: &[(String, String)]) -> Result<()> {
        let port = free_port()?;
        let mut cmd = Command::new(bin("couplet-api")?);
        cmd.env("REDIS_URL", &self.redis_url)
            .env("KEY_PREFIX", &self.prefix)
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file(&self.logname("api")));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().context("spawn couplet-api")?;
        let p = Proc { name: "api".into(), port, child };
        let url = format!("{}/readyz", p.base());
        self.api = Some(p);
        self.wait_ready(&url).await
    }

    /// Starts one more worker with `env` and waits until it is ready (model loaded, Redis up).
    pub async fn start_worker(&mut self, env: &[(String, String)]) -> Result<()> {
        let i = self.workers.len();
        let port = free_port()?;
        let mut cmd = Command::new(bin("couplet-worker")?);
        cmd.current_dir(root())
            .env("REDIS_URL", &self.redis_url)
            .env("KEY_PREFIX", &self.prefix)
            .env("METRICS_ADDR", format!("127.0.0.1:{port}"))
            .env("WORKER_ID", format!("bench-w{i}-{port}"))
            .env("WEBHOOK_DISPATCHER", "false")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file(&self.logname(&format!("worker{i}"))));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().context("spawn couplet-worker")?;
        let p = Proc { name: format!("worker{i}"), port, child };
        let url = format!("{}/readyz", p.base());
        self.workers.push(p);
        self.wait_ready(&url).await
    }

    async fn wait_ready(&mut self, url: &str) -> Result<()> {
        let t0 = Instant::now();
        loop {
            if let Ok(r) = self.http.get(url).timeout(Duration::from_secs(2)).send().await {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            for p in self.api.iter_mut().chain(self.workers.iter_mut()) {
                if let Ok(Some(st)) = p.child.try_wait() {
                    bail!("{} exited with {st} before it was ready (log under target/bench/logs/)", p.name);
                }
            }
            if t0.elapsed() > Duration::from_secs(90) {
                bail!("{url} not ready within 90 s (logs under target/bench/logs/)");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Base URL of the API.
    pub fn api_base(&self) -> Result<String> {
        self.api.as_ref().map(Proc::base).ok_or_else(|| anyhow!("API not started"))
    }

    /// (name, pid) of the API and every worker.
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.api.iter().chain(self.workers.iter()).map(|p| (p.name.clone(), p.pid())).collect()
    }

    /// `couplet-api keys create` under this prefix; returns the API key and its id (the jobs' owner).
    pub fn create_key(&self, name: &str, rate: &str, burst: u32) -> Result<(String, String)> {
        let out = Command::new(bin("couplet-api")?)
            .env("REDIS_URL", &self.redis_url)
            .env("KEY_PREFIX", &self.prefix)
            .args(["keys", "create", "--name", name, "--rate", rate, "--burst", &burst.to_string()])
            .output()
            .context("run couplet-api keys create")?;
        if !out.status.success() {
            bail!("keys create failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("keys create output")?;
        let key = v["key"].as_str().map(str::to_string).ok_or_else(|| anyhow!("keys create printed no key"))?;
        let id = v["id"].as_str().map(str::to_string).ok_or_else(|| anyhow!("keys create printed no id"))?;
        Ok((key, id))
    }

    /// Sum of `<name>_sum` and `<name>_count` over every worker's `/metrics`.
    pub async fn worker_histogram(&self, name: &str) -> (f64, f64) {
        let (mut sum, mut count) = (0.0, 0.0);
        for w in &self.workers {
            let Ok(r) = self.http.get(format!("{}/metrics", w.base())).send().await else { continue };
            let Ok(text) = r.text().await else { continue };
            for line in text.lines() {
                let mut it = line.split_whitespace();
                let (Some(k), Some(v)) = (it.next(), it.next()) else { continue };
                let metric = k.split('{').next().unwrap_or(k);
                let v: f64 = v.parse().unwrap_or(0.0);
                if metric == format!("{name}_sum") {
                    sum += v;
                } else if metric == format!("{name}_count") {
                    count += v;
                }
            }
        }
        (sum, count)
    }
}

/// Deletes every key matching `pattern` (SCAN + UNLINK, so Redis never blocks on a big KEYS).
pub fn delete_matching(redis_url: &str, pattern: &str) -> Result<u64> {
    let client = redis::Client::open(redis_url)?;
    let mut c = client.get_connection_with_timeout(Duration::from_secs(2))?;
    let mut cursor: u64 = 0;
    let mut n = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN").arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(5000).query(&mut c)?;
        if !keys.is_empty() {
            n += keys.len() as u64;
            redis::cmd("UNLINK").arg(&keys).exec(&mut c)?;
        }
        if next == 0 {
            return Ok(n);
        }
        cursor = next;
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        for p in self.workers.iter_mut().chain(self.api.iter_mut()) {
            p.kill();
        }
        if let Err(e) = delete_matching(&self.redis_url, &format!("{}*", self.prefix)) {
            eprintln!("warning: could not delete the keys under {}: {e}", self.prefix);
        }
    }
}
