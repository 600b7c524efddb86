//! [hardening] black-box tests of `couplet-api dlq`: a job dead-lettered for
//! real (its attempts used up before a worker takes it) is listed, shown,
//! replayed once to success through the real worker, and a second replay of
//! the same entry queues nothing; purge by id and by age empties the stream.
#![allow(clippy::unwrap_used, missing_docs)]
#![allow(clippy::disallowed_methods, clippy::disallowed_types)] // black-box: inspects Redis from outside the store (clippy.toml)

use couplet_tests::*;
use std::process::Command;
use std::time::{Duration, Instant};

/// Runs `couplet-api dlq ARGS` under the stack's prefix; returns (exit code, stdout, stderr).
fn dlq(s: &Stack, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin("couplet-api"))
        .env("REDIS_URL", &s.redis_url)
        .env("KEY_PREFIX", &s.prefix)
        .env("REDIS_EVICTION_CHECK", "off")
        .arg("dlq")
        .args(args)
        .output()
        .unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

async fn xlen(s: &Stack, key: &str) -> u64 {
    let mut c = s.redis().await;
    redis::cmd("XLEN").arg(format!("{}{key}", s.prefix)).query_async(&mut c).await.unwrap()
}

/// Waits until the job's stream entry is there (the API wrote it).
async fn wait_queued(s: &Stack) {
    let t0 = Instant::now();
    while xlen(s, "jobs").await == 0 {
        assert!(t0.elapsed() < Duration::from_secs(10), "no job queued");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_lettered_job_is_listed_replayed_once_and_succeeds() {
    let mut s = Stack::start(StackOptions::default().workers(0)).await;
    let id = s.submit_ok(theme_body("春", "festive", 7, 42)).await;
    wait_queued(&s).await;
    // Use up the attempts as crashed workers would (MAX_ATTEMPTS is 3): the worker's
    // start script dead-letters the job for real.
    s.exhaust_attempts(&id).await;
    s.add_worker().await;
    let failed = s.wait_final(&id, Duration::from_secs(30)).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["error"]["type"], "attempts_exhausted", "{failed}");
    assert_eq!(xlen(&s, "dead").await, 1);

    // list: one line, entry id / job id / error type / attempts / age.
    let (code, out, err) = dlq(&s, &["list"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "{out}");
    let cols: Vec<&str> = lines[0].split('\t').collect();
    assert_eq!(cols.len(), 5, "{out}");
    let entry = cols[0].to_string();
    assert!(entry.contains('-'), "an entry id: {out}");
    assert_eq!(&cols[1..4], &[id.as_str(), "attempts_exhausted", "3"], "{out}");
    assert!(cols[4].ends_with('s'), "an age: {out}");

    // show: the whole entry as JSON, no secrets.
    let (code, out, err) = dlq(&s, &["show", &entry]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["job"], id.as_str());
    assert_eq!(v["request"]["style"], "festive", "{v}");
    assert_eq!(v["request"]["seed"], 42, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("injected by the test"), "{v}");
    assert!(!out.contains("wh_secret") && !out.contains("whsec_"), "{out}");

    // replay with a healthy worker: the same job runs again and succeeds.
    let (code, out, err) = dlq(&s, &["replay", &entry]);
    assert_eq!(code, 0, "{out} {err}");
    assert!(out.contains(&format!("replayed job {id}")), "{out}");
    assert_eq!(xlen(&s, "dead").await, 0, "the dead-letter entry goes with the replay");
    let done = s.wait_final(&id, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_valid_couplet(&done);
    assert_eq!(done["attempts"], 1, "a replay starts from attempt 0: {done}");
    assert!(done["error"].is_null(), "{done}");
    let h = s.job_hash(&id).await;
    assert_eq!(h["replays"], "1");
    assert_eq!(h.get("result_writes").map(String::as_str), Some("1"));

    // A second replay of the same entry is a no-op: nothing queued, the job untouched.
    let (code, out, _) = dlq(&s, &["replay", &entry]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("not found / already replayed"), "{out}");
    assert_eq!(xlen(&s, "jobs").await, 0, "no second stream entry");
    let mut c = s.redis().await;
    let idx: u64 = redis::cmd("HLEN").arg(format!("{}entries", s.prefix)).query_async(&mut c).await.unwrap();
    assert_eq!(idx, 0, "no entry-index field left behind");
    let h = s.job_hash(&id).await;
    assert_eq!((h["status"].as_str(), h["replays"].as_str()), ("succeeded", "1"));
    let backlog: u64 = redis::cmd("ZCARD").arg(format!("{}backlog:anon", s.prefix)).query_async(&mut c).await.unwrap();
    assert_eq!(backlog, 0, "the replayed job left its owner's backlog when it finished");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn purge_removes_entries_by_id_and_by_age() {
    let s = Stack::start(StackOptions::default().workers(0)).await;
    let mut c = s.redis().await;
    let mut ids = Vec::new();
    for job in ["a", "b", "c"] {
        let id: String = redis::cmd("XADD")
            .arg(format!("{}dead", s.prefix))
            .arg("*")
            .arg("job")
            .arg(job)
            .arg("error")
            .arg(r#"{"type":"attempts_exhausted","message":"x"}"#)
            .arg("attempts")
            .arg(3)
            .query_async(&mut c)
            .await
            .unwrap();
        ids.push(id);
    }
    let (code, out, err) = dlq(&s, &["purge", "--id", &ids[1]]);
    assert_eq!((code, out.trim()), (0, "purged 1 entries"), "{err}");
    let (_, out, _) = dlq(&s, &["list"]);
    assert_eq!(out.lines().map(|l| l.split('\t').next().unwrap()).collect::<Vec<_>>(), vec![ids[0].as_str(), ids[2].as_str()]);
    // Replaying an entry whose job hash is gone leaves it for inspection.
    let (code, out, _) = dlq(&s, &["replay", &ids[0], &ids[1]]);
    assert_eq!(code, 3);
    assert!(out.contains("expired") && out.contains("not found / already replayed"), "{out}");
    // Fresh entries are younger than an hour; 0s takes everything.
    let (code, out, _) = dlq(&s, &["purge", "--older-than", "1h"]);
    assert_eq!((code, out.trim()), (0, "purged 0 entries"));
    assert_eq!(xlen(&s, "dead").await, 2);
    let (code, out, _) = dlq(&s, &["purge", "--older-than", "0s"]);
    assert_eq!((code, out.trim()), (0, "purged 2 entries"));
    assert_eq!(xlen(&s, "dead").await, 0);
    let (code, _, err) = dlq(&s, &["purge"]);
    assert_ne!(code, 0, "purge needs --id or --older-than: {err}");
    let (code, _, err) = dlq(&s, &["purge", "--older-than", "soon"]);
    assert_ne!(code, 0);
    assert!(err.contains("must look like"), "{err}");
}
