//! [proof] Chaos tests: the queue keeps its promises while processes die.
//!
//! - Workers SIGKILLed every few seconds during a large run: every job ends
//!   `succeeded`, and its result is stored exactly once (`result_writes` = 1).
//! - Redis shut down (AOF, fsync always) and restarted under load: the API
//!   answers 503 `unavailable` quickly and never hangs; every accepted job
//!   succeeds afterwards; workers reconnect by themselves.
//! - SIGTERM mid-batch: the worker exits 0 within its deadline with its batch
//!   stored and acknowledged (nothing pending for its consumer name).
//!
//! - A stream cap smaller than the backlog: submissions past it get 503, and
//!   every 202 still ends `succeeded` (the cap never trims accepted jobs); a
//!   cap below `MAX_BACKLOG` is refused at start.
//! - Stream entries deleted behind the workers' back (queued ones, and ones
//!   pending in a consumer that died): their jobs end `failed` with
//!   `lost_from_queue` and their webhook enqueued, never stuck `queued`.
//!
//! Each test is bounded (about 90 s on a 2-core machine). The job count of the
//! kill test can be lowered with `CHAOS_JOBS` on slower machines.
#![allow(clippy::unwrap_used, missing_docs)]
#![allow(clippy::disallowed_methods, clippy::disallowed_types)] // black-box: inspects Redis from outside the store (clippy.toml)

use couplet_tests::*;
use futures::StreamExt;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const STYLES: [&str; 5] = ["classic", "festive", "literary", "business", "family"];
const THEMES: [&str; 6] = ["龙年 吉祥", "开业大吉", "家和", "春", "福寿安康", "马到成功"];
const UPPERS: [&str; 3] = ["春风送暖入屠苏", "天增岁月人增寿", "海阔凭鱼跃"];

fn body(i: u64) -> Value {
    if i % 4 == 3 {
        json!({"upper": UPPERS[(i as usize / 4) % UPPERS.len()], "style": STYLES[i as usize % 5], "seed": i})
    } else {
        theme_body(THEMES[i as usize % THEMES.len()], STYLES[i as usize % 5], [5, 7, 9][i as usize % 3], i)
    }
}

/// Submits `n` jobs with some concurrency; returns their ids.
async fn submit_many(s: &Stack, n: u64) -> Vec<String> {
    futures::stream::iter(0..n).map(|i| s.submit_ok(body(i))).buffer_unordered(16).collect().await
}

/// (status, result_writes, attempts) of each job, read straight from Redis.
async fn job_states(s: &Stack, ids: &[String]) -> Vec<(Option<String>, Option<String>, Option<String>)> {
    let mut c = s.redis().await;
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(1000) {
        let mut p = redis::pipe();
        for id in chunk {
            p.cmd("HMGET").arg(format!("{}job:{id}", s.prefix)).arg("status").arg("result_writes").arg("attempts");
        }
        let part: Vec<(Option<String>, Option<String>, Option<String>)> = p.query_async(&mut c).await.unwrap();
        out.extend(part);
    }
    out
}

fn count(states: &[(Option<String>, Option<String>, Option<String>)], status: &str) -> usize {
    states.iter().filter(|s| s.0.as_deref() == Some(status)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_workers_repeatedly_and_every_job_succeeds_exactly_once() {
    let n: u64 = std::env::var("CHAOS_JOBS").ok().and_then(|v| v.parse().ok()).unwrap_or(3_000);
    let mut s = Stack::start(
        StackOptions::default()
            .workers(3)
            .worker("VISIBILITY_TIMEOUT_MS", "2000")
            .worker("MAX_ATTEMPTS", "10")
            // Small batches keep one inference call well under the visibility
            // timeout on a shared 2-core machine, so live workers are rarely reclaimed from.
            .worker("MAX_BATCH", "16"),
    )
    .await;
    let t0 = Instant::now();
    let ids = submit_many(&s, n).await;
    eprintln!("submitted {n} jobs in {:?}", t0.elapsed());
    let mut kills = 0usize;
    let mut last_kill = Instant::now();
    loop {
        let states = job_states(&s, &ids).await;
        let (done, failed) = (count(&states, "succeeded"), count(&states, "failed"));
        assert_eq!(failed, 0, "a job failed after {kills} kills");
        if done == ids.len() {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(240), "only {done}/{n} succeeded after {:?} and {kills} kills", t0.elapsed());
        // Every 1.5 s: on a quiet machine the whole run takes only ~10 s.
        if last_kill.elapsed() >= Duration::from_millis(1500) {
            let victim = kills % 3;
            s.kill_worker(victim);
            kills += 1;
            s.respawn_worker(victim).await;
            last_kill = Instant::now();
            eprintln!("{:>5.1?}: killed and respawned worker {victim} ({done}/{n} succeeded)", t0.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let states = job_states(&s, &ids).await;
    let mut retried = 0;
    for (id, (status, writes, attempts)) in ids.iter().zip(&states) {
        assert_eq!(status.as_deref(), Some("succeeded"), "{id}");
        assert_eq!(writes.as_deref(), Some("1"), "job {id} stored {writes:?} times");
        if attempts.as_deref() != Some("1") {
            retried += 1;
        }
    }
    eprintln!("{n} jobs succeeded exactly once in {:?}; {kills} kills; {retried} jobs ran more than once", t0.elapsed());
    assert!(kills >= 3, "the run ended before the chaos really started ({kills} kills)");
    // Kills mid-batch must have left entries for other workers to reclaim; a run
    // where nothing was ever retried did not test reclaiming at all.
    assert!(retried > 0, "{kills} kills but no job ran more than once: no entry was reclaimed");
    // A sample of results still satisfies the rules after all the reclaiming.
    for id in ids.iter().step_by((n as usize / 20).max(1)) {
        assert_valid_couplet(&s.job(id, None).await.1);
    }
}

/// A private Redis with append-only persistence, on its own port and folder.
struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl RedisServer {
    fn start(port: u16, dir: PathBuf) -> RedisServer {
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--appendonly", "yes", "--appendfsync", "always", "--save", ""])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on PATH");
        let r = RedisServer { child: Some(child), port, dir };
        let t0 = Instant::now();
        while !r.ping() {
            assert!(t0.elapsed() < Duration::from_secs(10), "redis-server on {port} did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        r
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn ping(&self) -> bool {
        Command::new("redis-cli").args(["-p", &self.port.to_string(), "ping"]).output().is_ok_and(|o| o.stdout.starts_with(b"PONG"))
    }

    /// `SHUTDOWN` (fsyncs the AOF), then waits for the process to exit.
    fn shutdown(&mut self) {
        let _ = Command::new("redis-cli").args(["-p", &self.port.to_string(), "shutdown"]).output();
        if let Some(mut c) = self.child.take() {
            let t0 = Instant::now();
            while c.try_wait().unwrap().is_none() {
                assert!(t0.elapsed() < Duration::from_secs(10), "redis did not shut down");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    fn restart(&mut self) {
        let again = RedisServer::start(self.port, self.dir.clone());
        let mut again = std::mem::ManuallyDrop::new(again);
        self.child = again.child.take();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[derive(Debug, Clone)]
enum Answer {
    Accepted(String),
    Unavailable,
    Other(u16, String),
    Unanswered(String),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_restart_under_load_loses_no_accepted_job() {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("couplet-chaos-redis-{port}-{:08x}", rand::random::<u32>()));
    // Declared before the stack, so it is dropped after it (the stack's cleanup needs it).
    let mut redis = RedisServer::start(port, dir);
    let s = Stack::start(StackOptions { redis_url: Some(redis.url()), ..StackOptions::default() }.workers(2)).await;
    let workers_before: Vec<u32> = s.workers.iter().map(|w| w.as_ref().unwrap().id()).collect();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(3)).build().unwrap();
    let t0 = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let log: Arc<Mutex<Vec<(Duration, Duration, Answer)>>> = Arc::default();
    let mut tasks = Vec::new();
    for k in 0..3u64 {
        let (client, stop, log, url) = (client.clone(), stop.clone(), log.clone(), format!("{}/v1/couplets", s.base()));
        tasks.push(tokio::spawn(async move {
            let mut i = k;
            while !stop.load(Ordering::SeqCst) {
                let started = t0.elapsed();
                let answer = match client.post(&url).json(&body(i)).send().await {
                    Ok(r) => {
                        let st = r.status().as_u16();
                        let v: Value = r.json().await.unwrap_or(Value::Null);
                        match (st, v["error"]["type"].as_str()) {
                            (202, _) => Answer::Accepted(v["id"].as_str().unwrap_or_default().to_string()),
                            (503, Some("unavailable")) => Answer::Unavailable,
                            _ => Answer::Other(st, v.to_string()),
                        }
                    }
                    Err(e) => Answer::Unanswered(e.to_string()),
                };
                log.lock().unwrap().push((started, t0.elapsed() - started, answer));
                i += 3;
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    redis.shutdown();
    let gap_start = t0.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let restart_at = t0.elapsed();
    redis.restart();
    let gap_end = t0.elapsed();
    eprintln!("redis down from {gap_start:?} to {restart_at:?} (answering again at {gap_end:?})");
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    let log = log.lock().unwrap().clone();
    let mut in_gap = 0;
    let mut accepted = Vec::new();
    let mut accepted_after = 0;
    for (started, took, answer) in &log {
        match answer {
            Answer::Unanswered(e) => panic!("request at {started:?} got no answer within 3 s ({took:?}): {e}"),
            Answer::Other(st, v) => panic!("request at {started:?} answered {st} {v}"),
            Answer::Accepted(id) => {
                accepted.push(id.clone());
                if *started > gap_end {
                    accepted_after += 1;
                }
            }
            Answer::Unavailable => {}
        }
        if *started >= gap_start && *started + *took <= restart_at {
            in_gap += 1;
            assert!(matches!(answer, Answer::Unavailable), "while Redis was down, {started:?} got {answer:?}");
            assert!(*took < Duration::from_millis(1500), "a 503 took {took:?} (started {started:?})");
        }
    }
    let worst_gap = log.iter().filter(|(st, _, a)| *st >= gap_start && matches!(a, Answer::Unavailable)).map(|(_, t, _)| *t).max();
    eprintln!("{} requests, {} accepted ({} after the restart), {in_gap} wholly inside the gap, slowest 503 {worst_gap:?}", log.len(), accepted.len(), accepted_after);
    assert!(in_gap >= 3, "too few requests fell inside the outage: {in_gap}");
    assert!(accepted_after >= 3, "the API did not recover after the restart");
    // Every accepted job is eventually succeeded, by the same worker processes.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut pending: Vec<String> = accepted;
    while !pending.is_empty() {
        let mut still = Vec::new();
        for id in pending {
            let (st, v) = s.job(&id, None).await;
            match v["status"].as_str() {
                Some("succeeded") => {}
                Some("queued" | "running") => still.push(id),
                _ => panic!("accepted job {id} → {st} {v}"),
            }
        }
        pending = still;
        assert!(Instant::now() < deadline, "{} accepted jobs not finished 60 s after the restart", pending.len());
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    let mut s = s;
    for (i, w) in s.workers.iter_mut().enumerate() {
        let w = w.as_mut().unwrap();
        assert!(w.try_wait().unwrap().is_none(), "worker {i} exited");
        assert_eq!(w.id(), workers_before[i], "worker {i} was restarted");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_mid_batch_stores_and_acks_the_batch_in_hand() {
    let shutdown_ms = 10_000u64;
    let mut s = Stack::start(
        StackOptions::default()
            .worker("MAX_BATCH", "32")
            .worker("MAX_WAIT_MS", "200")
            .worker("SHUTDOWN_TIMEOUT_MS", &shutdown_ms.to_string()),
    )
    .await;
    let consumer = format!("w0-{}", s.worker_ports[0]);
    let ids = futures::stream::iter(0..64u64).map(|i| s.submit_ok(body(i))).buffer_unordered(16).collect::<Vec<_>>().await;
    // Wait until the worker has started a batch (the start script marks its jobs running).
    let t0 = Instant::now();
    let running = loop {
        let states = job_states(&s, &ids).await;
        let r = count(&states, "running");
        if r > 0 {
            break r;
        }
        assert!(count(&states, "succeeded") < ids.len() && t0.elapsed() < Duration::from_secs(30), "never saw a running batch");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let t_term = Instant::now();
    let exited_ok = s.term_worker(0, Duration::from_millis(shutdown_ms + 2_000));
    let took = t_term.elapsed();
    eprintln!("SIGTERM with {running} jobs running: exit ok = {exited_ok} after {took:?}");
    assert!(exited_ok, "worker did not exit 0 within the deadline ({took:?})");
    assert!(took < Duration::from_millis(shutdown_ms), "exit took {took:?}");
    // Nothing left pending for that consumer: the batch was stored and acked.
    let mut c = s.redis().await;
    let pending: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
        .arg(format!("{}jobs", s.prefix))
        .arg("workers")
        .arg("-")
        .arg("+")
        .arg(1000)
        .arg(&consumer)
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(pending.is_empty(), "{} entries still pending for {consumer}: {pending:?}", pending.len());
    let states = job_states(&s, &ids).await;
    let done = count(&states, "succeeded");
    assert!(done >= running, "the batch in hand ({running}) was not stored: {done} succeeded");
    assert_eq!(count(&states, "running"), 0, "jobs left running after a clean exit");
    // A new worker finishes the rest; no job needed a second attempt.
    s.respawn_worker(0).await;
    for id in &ids {
        let job = s.wait_final(id, Duration::from_secs(60)).await;
        assert_valid_couplet(&job);
        assert_eq!(job["attempts"], 1, "{job}");
    }
}

/// Every (entry id, job id) of the stream.
async fn stream_entries(s: &Stack) -> Vec<(String, String)> {
    let mut c = s.redis().await;
    let r: redis::streams::StreamRangeReply = redis::cmd("XRANGE").arg(format!("{}jobs", s.prefix)).arg("-").arg("+").query_async(&mut c).await.unwrap();
    r.ids.iter().map(|e| (e.id.clone(), e.get::<String>("job").unwrap())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_small_stream_cap_refuses_instead_of_dropping_accepted_jobs() {
    // A cap below MAX_BACKLOG is refused at start, naming both settings.
    let mut api = Command::new(bin("couplet-api"))
        .env("REDIS_URL", redis_url())
        .env("KEY_PREFIX", random_prefix("cap"))
        .env("LISTEN_ADDR", format!("127.0.0.1:{}", free_port()))
        .env("MAX_BACKLOG", "100")
        .env("STREAM_MAXLEN", "50")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while api.try_wait().unwrap().is_none() && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = api.kill();
    let out = api.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started with STREAM_MAXLEN < MAX_BACKLOG: {err}");
    assert!(err.contains("STREAM_MAXLEN (50) is below MAX_BACKLOG (100)"), "{err}");

    // Workers stopped, admission by backlog off, cap 50: the old MAXLEN trim
    // answered 202 to all 300 and dropped about 200 of them unseen.
    let (cap, n) = (50usize, 300u64);
    let mut s = Stack::start(StackOptions::default().workers(0).api("MAX_BACKLOG", "0").api("STREAM_MAXLEN", &cap.to_string())).await;
    let mut accepted = Vec::new();
    let mut refused = 0;
    for i in 0..n {
        let (st, v) = s.submit(body(i)).await;
        match st {
            202 => accepted.push(v["id"].as_str().unwrap().to_string()),
            503 => {
                assert_eq!(v["error"]["type"], "overloaded", "{v}");
                refused += 1;
            }
            _ => panic!("submit {i}: {st} {v}"),
        }
    }
    eprintln!("{} accepted, {refused} refused with 503 at cap {cap}", accepted.len());
    assert_eq!(accepted.len(), cap, "the cap admits exactly {cap} while nothing is consumed");
    assert_eq!(stream_entries(&s).await.len(), cap, "every accepted job is still in the stream");
    s.workers.push(None);
    s.worker_ports.push(0);
    s.respawn_worker(0).await;
    for id in &accepted {
        let job = s.wait_final(id, Duration::from_secs(90)).await;
        assert_valid_couplet(&job);
    }
    // Acked entries leave the stream and the entry index; room for new work again.
    let mut c = s.redis().await;
    let (len, indexed): (u64, u64) =
        redis::pipe().cmd("XLEN").arg(format!("{}jobs", s.prefix)).cmd("HLEN").arg(format!("{}entries", s.prefix)).query_async(&mut c).await.unwrap();
    assert_eq!((len, indexed), (0, 0));
    let id = s.submit_ok(body(1000)).await;
    assert_valid_couplet(&s.wait_final(&id, Duration::from_secs(30)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn entries_deleted_behind_the_workers_back_fail_their_jobs_visibly() {
    let mut s = Stack::start(
        StackOptions::default().workers(0).worker("LOST_SWEEP_INTERVAL_MS", "300").worker("VISIBILITY_TIMEOUT_MS", "1000"),
    )
    .await;
    let stream = format!("{}jobs", s.prefix);
    let mut c = s.redis().await;
    let _: redis::RedisResult<()> = redis::cmd("XGROUP").arg("CREATE").arg(&stream).arg("workers").arg("0").arg("MKSTREAM").query_async(&mut c).await;
    // Nothing listens there: a failed delivery still shows the webhook was enqueued.
    let callback = format!("http://127.0.0.1:{}/hook", free_port());
    let with_cb = |mut b: Value| {
        b["callback_url"] = json!(callback);
        b
    };

    // Pending: a consumer reads two entries, one job gets as far as `running`, then the consumer dies.
    let pending = [s.submit_ok(with_cb(body(1))).await, s.submit_ok(body(2)).await];
    let read: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
        .arg("GROUP").arg("workers").arg("ghost").arg("COUNT").arg(2).arg("STREAMS").arg(&stream).arg(">")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(read.keys[0].ids.len(), 2);
    let _: () = redis::cmd("HSET").arg(format!("{}job:{}", s.prefix, pending[1])).arg("status").arg("running").query_async(&mut c).await.unwrap();
    // Queued: never delivered to anyone. Plus untouched jobs that must still succeed.
    let queued = [s.submit_ok(with_cb(body(3))).await, s.submit_ok(body(4)).await, s.submit_ok(body(5)).await];
    let untouched = [s.submit_ok(body(6)).await, s.submit_ok(body(7)).await];
    let doomed: Vec<&String> = pending.iter().chain(&queued).collect();
    let entries = stream_entries(&s).await;
    let del: Vec<&String> = entries.iter().filter(|(_, j)| doomed.contains(&j)).map(|(e, _)| e).collect();
    assert_eq!(del.len(), doomed.len());
    let n: u64 = redis::cmd("XDEL").arg(&stream).arg(&del).query_async(&mut c).await.unwrap();
    assert_eq!(n as usize, doomed.len());

    s.workers.push(None);
    s.worker_ports.push(0);
    s.respawn_worker(0).await;
    for id in &untouched {
        assert_valid_couplet(&s.wait_final(id, Duration::from_secs(30)).await);
    }
    for id in &doomed {
        let job = s.wait_final(id, Duration::from_secs(30)).await;
        assert_eq!(job["status"], "failed", "{job}");
        assert_eq!(job["error"]["type"], "lost_from_queue", "{job}");
    }
    for id in [&pending[0], &queued[0]] {
        let h = s.job_hash(id).await;
        assert!(matches!(h.get("wh_status").map(String::as_str), Some("pending" | "retrying" | "dead_lettered")), "webhook not enqueued for {id}: {h:?}");
    }
    // Nothing left behind: no pending entries, an empty index.
    let pel: Vec<redis::Value> = redis::cmd("XPENDING").arg(&stream).arg("workers").arg("-").arg("+").arg(100).query_async(&mut c).await.unwrap();
    let indexed: u64 = redis::cmd("HLEN").arg(format!("{}entries", s.prefix)).query_async(&mut c).await.unwrap();
    assert_eq!((pel.len(), indexed), (0, 0), "{pel:?}");
}
