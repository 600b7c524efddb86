//! Test harness for the black-box tests: starts the real `couplet-api` and
//! `couplet-worker` binaries (from `target/release`) against the real Redis,
//! each stack under its own random `KEY_PREFIX`, and removes every key of
//! that prefix when the stack is dropped, so tests can run side by side.
#![allow(clippy::unwrap_used, missing_docs)]
#![allow(clippy::disallowed_methods, clippy::disallowed_types)] // black-box: inspects Redis from outside the store (clippy.toml)

use serde_json::{json, Value};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Redis used by the tests (`TEST_REDIS_URL`, default the local one).
pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Path of a release binary of the workspace; panics with a hint if it was not built.
pub fn bin(name: &str) -> PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| root().join("target"));
    let p = target.join("release").join(name);
    assert!(p.is_file(), "{} not built: run `cargo build --release --bins` first (scripts/test.sh does)", p.display());
    p
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A random key prefix for one test.
pub fn random_prefix(tag: &str) -> String {
    format!("t-{tag}-{:016x}:", rand::random::<u64>())
}

/// What to start.
#[derive(Clone, Debug)]
pub struct StackOptions {
    /// Worker processes.
    pub workers: usize,
    /// Extra environment for the API.
    pub api_env: Vec<(String, String)>,
    /// Extra environment for every worker.
    pub worker_env: Vec<(String, String)>,
    /// Redis URL (default: [`redis_url`]).
    pub redis_url: Option<String>,
    /// Key prefix (default: random).
    pub prefix: Option<String>,
}

impl Default for StackOptions {
    fn default() -> Self {
        StackOptions { workers: 1, api_env: Vec::new(), worker_env: Vec::new(), redis_url: None, prefix: None }
    }
}

impl StackOptions {
    /// Adds an API variable.
    pub fn api(mut self, k: &str, v: &str) -> Self {
        self.api_env.push((k.into(), v.into()));
        self
    }
    /// Adds a worker variable.
    pub fn worker(mut self, k: &str, v: &str) -> Self {
        self.worker_env.push((k.into(), v.into()));
        self
    }
    /// Sets the worker count.
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }
}

/// A running API (+ workers).
pub struct Stack {
    pub opts: StackOptions,
    pub prefix: String,
    pub redis_url: String,
    pub api_port: u16,
    pub api: Option<Child>,
    pub workers: Vec<Option<Child>>,
    pub worker_ports: Vec<u16>,
    pub http: reqwest::Client,
    extra_apis: Vec<Child>,
}

fn log_file(name: &str) -> Stdio {
    let dir = root().join("target/test-logs");
    let _ = std::fs::create_dir_all(&dir);
    match std::fs::File::create(dir.join(name)) {
        Ok(f) => Stdio::from(f),
        Err(_) => Stdio::null(),
    }
}

impl Stack {
    /// Starts the stack and waits until the API and every worker are ready.
    pub async fn start(opts: StackOptions) -> Stack {
        let prefix = opts.prefix.clone().unwrap_or_else(|| random_prefix("s"));
        let redis_url = opts.redis_url.clone().unwrap_or_else(redis_url);
        let mut s = Stack {
            prefix,
            redis_url,
            api_port: 0,
            api: None,
            workers: Vec::new(),
            worker_ports: Vec::new(),
            // Shorter than the API's idle keep-alive close (BODY_TIMEOUT_MS, 10 s) so a pooled
            // connection is never reused just as the server closes it.
            http: reqwest::Client::builder().timeout(Duration::from_secs(60)).pool_idle_timeout(Duration::from_secs(5)).build().unwrap(),
            extra_apis: Vec::new(),
            opts: opts.clone(),
        };
        let (child, port) = s.spawn_api();
        s.api = Some(child);
        s.api_port = port;
        for i in 0..opts.workers {
            let (c, p) = s.spawn_worker_process(i);
            s.workers.push(Some(c));
            s.worker_ports.push(p);
        }
        s.wait_ready(&format!("http://127.0.0.1:{}/readyz", s.api_port)).await;
        for p in s.worker_ports.clone() {
            s.wait_ready(&format!("http://127.0.0.1:{p}/readyz")).await;
        }
        s
    }

    fn spawn_api(&self) -> (Child, u16) {
        let port = free_port();
        let mut cmd = Command::new(bin("couplet-api"));
        cmd.env("REDIS_URL", &self.redis_url)
            .env("KEY_PREFIX", &self.prefix)
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("IP_RATE_LIMIT", "0")
            .env("WEBHOOK_ALLOWLIST", "127.0.0.0/8,::1")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log_file(&format!("{}api-{port}.log", self.prefix.replace(':', ""))));
        for (k, v) in &self.opts.api_env {
            cmd.env(k, v);
        }
        (cmd.spawn().expect("spawn couplet-api"), port)
    }

    /// Starts a second API process on the same prefix and Redis; returns its base URL.
    pub async fn spawn_extra_api(&mut self) -> String {
        let (c, port) = self.spawn_api();
        self.extra_apis.push(c);
        let base = format!("http://127.0.0.1:{port}");
        self.wait_ready(&format!("{base}/readyz")).await;
        base
    }

    fn spawn_worker_process(&self, i: usize) -> (Child, u16) {
        let port = free_port();
        let mut cmd = Command::new(bin("couplet-worker"));
        cmd.env("REDIS_URL", &self.redis_url)
            .env("KEY_PREFIX", &self.prefix)
            .env("METRICS_ADDR", format!("127.0.0.1:{port}"))
            .env("WORKER_ID", format!("w{i}-{port}"))
            .env("WEBHOOK_ALLOWLIST", "127.0.0.0/8,::1")
            .env("INTRA_THREADS", "1")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log_file(&format!("{}worker-{i}-{port}.log", self.prefix.replace(':', ""))));
        for (k, v) in &self.opts.worker_env {
            cmd.env(k, v);
        }
        (cmd.spawn().expect("spawn couplet-worker"), port)
    }

    /// (Re)starts worker `i` (after a kill); waits until it is ready.
    pub async fn respawn_worker(&mut self, i: usize) {
        let (c, p) = self.spawn_worker_process(i);
        self.workers[i] = Some(c);
        self.worker_ports[i] = p;
        self.wait_ready(&format!("http://127.0.0.1:{p}/readyz")).await;
    }

    /// Starts one more worker (index returned); waits until it is ready.
    pub async fn add_worker(&mut self) -> usize {
        let i = self.workers.len();
        let (c, p) = self.spawn_worker_process(i);
        self.workers.push(Some(c));
        self.worker_ports.push(p);
        self.wait_ready(&format!("http://127.0.0.1:{p}/readyz")).await;
        i
    }

    /// SIGKILLs worker `i`.
    pub fn kill_worker(&mut self, i: usize) {
        if let Some(mut c) = self.workers[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM to worker `i` and waits for it to exit; returns its exit status success.
    pub fn term_worker(&mut self, i: usize, timeout: Duration) -> bool {
        let Some(mut c) = self.workers[i].take() else { return false };
        let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
        let t0 = Instant::now();
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                return st.success();
            }
            if t0.elapsed() > timeout {
                let _ = c.kill();
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    async fn wait_ready(&self, url: &str) {
        let t0 = Instant::now();
        loop {
            if let Ok(r) = self.http.get(url).timeout(Duration::from_secs(2)).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            assert!(t0.elapsed() < Duration::from_secs(60), "{url} not ready within 60 s (logs in target/test-logs)");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Base URL of the API.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.api_port)
    }

    /// Base URL (alias used by the UI/CLI tests).
    pub fn base_url(&self) -> String {
        self.base()
    }

    /// POSTs a JSON body to `/v1/couplets`; returns (status, body).
    pub async fn submit(&self, body: Value) -> (u16, Value) {
        let r = self.http.post(format!("{}/v1/couplets", self.base())).json(&body).send().await.unwrap();
        let st = r.status().as_u16();
        (st, r.json().await.unwrap_or(Value::Null))
    }

    /// Submits and returns the job id, asserting 202.
    pub async fn submit_ok(&self, body: Value) -> String {
        let (st, v) = self.submit(body.clone()).await;
        assert_eq!(st, 202, "submit {body} → {st} {v}");
        v["id"].as_str().unwrap().to_string()
    }

    /// GETs a job (optionally with `?wait`).
    pub async fn job(&self, id: &str, wait: Option<u32>) -> (u16, Value) {
        let url = match wait {
            Some(w) => format!("{}/v1/jobs/{id}?wait={w}", self.base()),
            None => format!("{}/v1/jobs/{id}", self.base()),
        };
        let r = self.http.get(url).send().await.unwrap();
        let st = r.status().as_u16();
        (st, r.json().await.unwrap_or(Value::Null))
    }

    /// Waits until the job is final (long-polling), or panics after `timeout`.
    pub async fn wait_final(&self, id: &str, timeout: Duration) -> Value {
        let t0 = Instant::now();
        loop {
            let (st, v) = self.job(id, Some(10)).await;
            if st == 200 && matches!(v["status"].as_str(), Some("succeeded" | "failed" | "canceled")) {
                return v;
            }
            assert!(t0.elapsed() < timeout, "job {id} not final after {timeout:?}: {st} {v}");
        }
    }

    /// A Redis connection.
    pub async fn redis(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.redis_url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap()
    }

    /// The raw job hash.
    pub async fn job_hash(&self, id: &str) -> std::collections::HashMap<String, String> {
        let mut c = self.redis().await;
        redis::cmd("HGETALL").arg(format!("{}job:{id}", self.prefix)).query_async(&mut c).await.unwrap()
    }

    /// Uses up a queued job's attempts as crashed workers would (MAX_ATTEMPTS is 3), so the
    /// next worker's start script dead-letters it for real.
    pub async fn exhaust_attempts(&self, id: &str) {
        let mut c = self.redis().await;
        let _: () = redis::cmd("HSET")
            .arg(format!("{}job:{id}", self.prefix))
            .arg("attempts")
            .arg(3)
            .arg("last_error")
            .arg("injected by the test")
            .query_async(&mut c)
            .await
            .unwrap();
    }

    /// Text of a worker's /metrics.
    pub async fn worker_metrics(&self, i: usize) -> String {
        let url = format!("http://127.0.0.1:{}/metrics", self.worker_ports[i]);
        self.http.get(url).send().await.unwrap().text().await.unwrap()
    }

    /// Runs `couplet-api keys create` under this stack's prefix; returns (id, key, secret).
    pub fn create_key(&self, name: &str, rate: &str, burst: u32) -> (String, String, String) {
        let out = Command::new(bin("couplet-api"))
            .env("REDIS_URL", &self.redis_url)
            .env("KEY_PREFIX", &self.prefix)
            .args(["keys", "create", "--name", name, "--rate", rate, "--burst", &burst.to_string()])
            .output()
            .unwrap();
        assert!(out.status.success(), "keys create failed: {}", String::from_utf8_lossy(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        (v["id"].as_str().unwrap().into(), v["key"].as_str().unwrap().into(), v["webhook_secret"].as_str().unwrap().into())
    }

    /// Runs `couplet-api keys revoke ID`.
    pub fn revoke_key(&self, id: &str) {
        let st = Command::new(bin("couplet-api"))
            .env("REDIS_URL", &self.redis_url)
            .env("KEY_PREFIX", &self.prefix)
            .args(["keys", "revoke", id])
            .status()
            .unwrap();
        assert!(st.success());
    }
}

/// Deletes every key under `prefix`.
pub fn cleanup_prefix(redis_url: &str, prefix: &str) {
    let Ok(client) = redis::Client::open(redis_url) else { return };
    let Ok(mut c) = client.get_connection_with_timeout(Duration::from_secs(1)) else { return };
    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}*")).query(&mut c).unwrap_or_default();
    for chunk in keys.chunks(500) {
        let _: redis::RedisResult<()> = redis::cmd("DEL").arg(chunk).query(&mut c);
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        for c in self.workers.iter_mut().flatten().chain(self.api.iter_mut()).chain(self.extra_apis.iter_mut()) {
            let _ = c.kill();
            let _ = c.wait();
        }
        cleanup_prefix(&self.redis_url, &self.prefix);
    }
}

/// A request body for a theme couplet.
pub fn theme_body(theme: &str, style: &str, length: u32, seed: u64) -> Value {
    json!({"theme": theme, "style": style, "length": length, "seed": seed})
}

/// Asserts a succeeded job's couplet satisfies the five rules.
pub fn assert_valid_couplet(job: &Value) {
    assert_eq!(job["status"], "succeeded", "{job}");
    let r = &job["result"];
    let (u, l, h) = (r["upper"].as_str().unwrap(), r["lower"].as_str().unwrap(), r["hengpi"].as_str().unwrap());
    let theme: Vec<char> = job["request"]["theme"].as_str().map(theme_chars).unwrap_or_default();
    let user_upper = !job["request"]["upper"].is_null();
    common::rules::check(common::rules::CoupletRef { upper: u, lower: l, hengpi: h }, &theme, user_upper)
        .unwrap_or_else(|e| panic!("rule broken: {e}: {job}"));
}

/// The theme characters the service must place (as the validator computes them).
pub fn theme_chars(theme: &str) -> Vec<char> {
    common::request::CoupletRequest { theme: Some(theme.into()), ..Default::default() }.validate().map(|v| v.theme_chars).unwrap_or_default()
}
