//! [pipeline] black-box tests: real binaries, real Redis, real model.
#![allow(clippy::unwrap_used, missing_docs)]
#![allow(clippy::disallowed_methods, clippy::disallowed_types)] // black-box: inspects Redis from outside the store (clippy.toml)

use couplet_tests::*;
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_jobs_all_succeed_with_valid_couplets() {
    let s = Stack::start(StackOptions::default().workers(2)).await;
    let themes = ["龙年 吉祥", "开业大吉", "家和", "春", "福寿安康", "金榜题名", "马到成功", "国泰民安"];
    let styles = ["classic", "festive", "literary", "business", "family"];
    let uppers = ["春风送暖入屠苏", "天增岁月人增寿", "海阔凭鱼跃", "一帆风顺年年好，万事如意步步高", "年年岁岁花相似"];
    let mut ids = Vec::new();
    for i in 0..200u64 {
        let body = if i % 5 == 4 {
            json!({"upper": uppers[(i as usize / 5) % uppers.len()], "style": styles[i as usize % 5], "seed": i})
        } else {
            theme_body(themes[i as usize % themes.len()], styles[i as usize % 5], [5, 7, 9][i as usize % 3], i)
        };
        ids.push(s.submit_ok(body).await);
    }
    for id in &ids {
        let job = s.wait_final(id, Duration::from_secs(120)).await;
        assert_valid_couplet(&job);
        assert_eq!(job["attempts"], 1);
        for t in ["created_at", "started_at", "finished_at"] {
            let v = job[t].as_str().unwrap();
            assert!(v.ends_with('Z') && v.contains('T'), "{t}={v}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wait_returns_as_soon_as_the_job_finishes_and_seed_reproduces() {
    let s = Stack::start(StackOptions::default()).await;
    let a = s.submit_ok(theme_body("龙年 吉祥", "festive", 7, 42)).await;
    let t0 = std::time::Instant::now();
    let (st, v) = s.job(&a, Some(20)).await;
    assert_eq!(st, 200);
    assert_eq!(v["status"], "succeeded", "{v}");
    assert!(t0.elapsed() < Duration::from_secs(15), "wait held too long: {:?}", t0.elapsed());
    let b = s.submit_ok(theme_body("龙年 吉祥", "festive", 7, 42)).await;
    let vb = s.wait_final(&b, Duration::from_secs(30)).await;
    assert_eq!(v["result"], vb["result"], "same seed, same couplet");
    // Without a seed, outputs vary.
    let mut seen = std::collections::HashSet::new();
    for _ in 0..4 {
        let id = s.submit_ok(json!({"theme": "春"})).await;
        seen.insert(s.wait_final(&id, Duration::from_secs(30)).await["result"]["upper"].as_str().unwrap().to_string());
    }
    assert!(seen.len() >= 2, "unseeded outputs should vary: {seen:?}");
    // wait on a running/queued job of a stack with no workers times out with the job still queued.
    let (st, v) = s.job("01aaaaaaaaaaaaaaaaaaaaaaaa", Some(1)).await;
    assert_eq!((st, v["error"]["type"].as_str()), (404, Some("not_found")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idempotency_replays_and_conflicts() {
    let s = Stack::start(StackOptions::default()).await;
    let url = format!("{}/v1/couplets", s.base());
    let post = |body: serde_json::Value, key: &str| s.http.post(&url).header("idempotency-key", key).json(&body).send();
    let r1 = post(json!({"theme": "春"}), "k-1").await.unwrap();
    assert_eq!(r1.status(), 202);
    let id1 = r1.json::<serde_json::Value>().await.unwrap()["id"].clone();
    // Same key, same body (different whitespace): the original job.
    let r2 = s.http.post(&url).header("idempotency-key", "k-1").header("content-type", "application/json").body("{ \"theme\" : \"春\" }").send().await.unwrap();
    assert_eq!(r2.status(), 202);
    assert_eq!(r2.headers().get("idempotent-replayed").unwrap(), "true");
    assert_eq!(r2.json::<serde_json::Value>().await.unwrap()["id"], id1);
    // Same key, different body: conflict.
    let r3 = post(json!({"theme": "福"}), "k-1").await.unwrap();
    assert_eq!(r3.status(), 409);
    assert_eq!(r3.json::<serde_json::Value>().await.unwrap()["error"]["type"], "idempotency_conflict");
    // A different key makes a new job.
    let r4 = post(json!({"theme": "春"}), "k-2").await.unwrap();
    assert_ne!(r4.json::<serde_json::Value>().await.unwrap()["id"], id1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancel_queued_job_and_refuse_finished_one() {
    // No workers: jobs stay queued.
    let s = Stack::start(StackOptions::default().workers(0)).await;
    let id = s.submit_ok(json!({"theme": "春"})).await;
    let r = s.http.delete(format!("{}/v1/jobs/{id}", s.base())).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["status"], "canceled");
    let r = s.http.delete(format!("{}/v1/jobs/{id}", s.base())).send().await.unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["error"]["type"], "not_cancelable");
    let r = s.http.delete(format!("{}/v1/jobs/01bbbbbbbbbbbbbbbbbbbbbbbb", s.base())).send().await.unwrap();
    assert_eq!(r.status(), 404);
    // A canceled job is skipped (acked) by a worker that starts later, and stays canceled.
    let mut s = s;
    s.workers.push(None);
    s.worker_ports.push(0);
    s.respawn_worker(0).await;
    let id2 = s.submit_ok(json!({"theme": "福"})).await;
    s.wait_final(&id2, Duration::from_secs(30)).await;
    let (_, v) = s.job(&id, None).await;
    assert_eq!(v["status"], "canceled");
    assert!(v["result"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn generate_is_synchronous_and_times_out_with_the_job_id() {
    let s = Stack::start(StackOptions::default()).await;
    let r = s.http.post(format!("{}/generate", s.base())).json(&json!({"upper": "春风送暖入屠苏"})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_valid_couplet(&v);
    assert_eq!(v["result"]["upper"], "春风送暖入屠苏");
    drop(s);
    let s = Stack::start(StackOptions::default().workers(0).api("GENERATE_TIMEOUT_MS", "300")).await;
    let r = s.http.post(format!("{}/generate", s.base())).json(&json!({"theme": "春"})).send().await.unwrap();
    assert_eq!(r.status(), 504);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "timeout");
    let (st, job) = s.job(v["id"].as_str().unwrap(), None).await;
    assert_eq!((st, job["status"].as_str()), (200, Some("queued")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_requests_get_the_right_4xx_and_error_type() {
    let s = Stack::start(StackOptions::default().workers(0).api("MAX_BODY_BYTES", "16384")).await;
    let url = format!("{}/v1/couplets", s.base());
    let json_ct = "application/json";
    let huge = format!("{{\"theme\": \"{}\"}}", "春".repeat(10_000));
    let cases: Vec<(&str, Option<&str>, Vec<u8>, u16, &str)> = vec![
        ("bad json", Some(json_ct), b"{".to_vec(), 400, "malformed_json"),
        ("empty body", Some(json_ct), b"".to_vec(), 400, "malformed_json"),
        ("trailing garbage", Some(json_ct), br#"{"theme":"x"} x"#.to_vec(), 400, "malformed_json"),
        ("invalid utf-8", Some(json_ct), b"{\"theme\": \"\xff\xfe\"}".to_vec(), 400, "malformed_json"),
        ("array body", Some(json_ct), b"[]".to_vec(), 422, "invalid_field"),
        ("string body", Some(json_ct), b"\"hi\"".to_vec(), 422, "invalid_field"),
        ("theme wrong type", Some(json_ct), br#"{"theme": 5}"#.to_vec(), 422, "invalid_field"),
        ("length wrong type", Some(json_ct), br#"{"theme": "x", "length": "7"}"#.to_vec(), 422, "invalid_field"),
        ("seed negative", Some(json_ct), "{\"theme\": \"春\", \"seed\": -1}".as_bytes().to_vec(), 422, "invalid_field"),
        ("unknown field", Some(json_ct), "{\"theme\": \"春\", \"colour\": 1}".as_bytes().to_vec(), 422, "invalid_field"),
        ("huge body", Some(json_ct), huge.into_bytes(), 413, "payload_too_large"),
        ("no content type", None, br#"{"theme":"x"}"#.to_vec(), 415, "unsupported_media_type"),
        ("text content type", Some("text/plain"), br#"{"theme":"x"}"#.to_vec(), 415, "unsupported_media_type"),
        ("form content type", Some("application/x-www-form-urlencoded"), b"theme=x".to_vec(), 415, "unsupported_media_type"),
        ("nothing", Some(json_ct), b"{}".to_vec(), 422, "missing_input"),
        ("empty theme", Some(json_ct), br#"{"theme": "   "}"#.to_vec(), 422, "missing_input"),
        ("latin theme", Some(json_ct), br#"{"theme": "hello"}"#.to_vec(), 422, "non_cjk_input"),
        ("emoji theme", Some(json_ct), "{\"theme\": \"春🎉\"}".as_bytes().to_vec(), 422, "non_cjk_input"),
        ("long theme", Some(json_ct), "{\"theme\": \"春夏秋冬福\"}".as_bytes().to_vec(), 422, "input_too_long"),
        ("bad style", Some(json_ct), "{\"theme\": \"春\", \"style\": \"gothic\"}".as_bytes().to_vec(), 422, "unknown_style"),
        ("non-cjk upper", Some(json_ct), br#"{"upper": "spring wind"}"#.to_vec(), 422, "non_cjk_input"),
        ("short upper", Some(json_ct), "{\"upper\": \"春风\"}".as_bytes().to_vec(), 422, "input_too_short"),
        ("long upper", Some(json_ct), format!("{{\"upper\": \"{}\"}}", "春".repeat(25)).into_bytes(), 422, "input_too_long"),
        ("punct upper", Some(json_ct), "{\"upper\": \"，春风送暖\"}".as_bytes().to_vec(), 422, "bad_punctuation"),
        ("zero length", Some(json_ct), "{\"theme\": \"春\", \"length\": 0}".as_bytes().to_vec(), 422, "unsupported_length"),
        ("negative length", Some(json_ct), "{\"theme\": \"春\", \"length\": -7}".as_bytes().to_vec(), 422, "unsupported_length"),
        ("huge length", Some(json_ct), "{\"theme\": \"春\", \"length\": 100000000000}".as_bytes().to_vec(), 422, "unsupported_length"),
        ("overflow length", Some(json_ct), "{\"theme\": \"春\", \"length\": 1e40}".as_bytes().to_vec(), 422, "invalid_field"),
        ("length 6", Some(json_ct), "{\"theme\": \"春\", \"length\": 6}".as_bytes().to_vec(), 422, "unsupported_length"),
        ("bad callback", Some(json_ct), "{\"theme\": \"春\", \"callback_url\": \"not a url\"}".as_bytes().to_vec(), 422, "invalid_callback_url"),
        ("ftp callback", Some(json_ct), "{\"theme\": \"春\", \"callback_url\": \"ftp://example.com/\"}".as_bytes().to_vec(), 422, "invalid_callback_url"),
        ("metadata callback", Some(json_ct), "{\"theme\": \"春\", \"callback_url\": \"http://169.254.169.254/\"}".as_bytes().to_vec(), 422, "invalid_callback_url"),
    ];
    assert!(cases.len() >= 25);
    // A fresh connection per case: the API closes the connection after a 413
    // (the unread body), and a pooled client could race that close.
    let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    for (name, ct, body, want_status, want_type) in cases {
        let mut req = http.post(&url).body(body);
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        let r = req.send().await.unwrap();
        let st = r.status().as_u16();
        let v: serde_json::Value = r.json().await.unwrap_or_else(|e| panic!("{name}: non-JSON error body: {e}"));
        assert_eq!((st, v["error"]["type"].as_str().unwrap_or("")), (want_status, want_type), "case {name}: {v}");
        assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{name}");
    }
    // Other routes' client mistakes.
    let r = s.http.get(format!("{}/v1/jobs/nope/image.png?scale=99", s.base())).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let r = s.http.get(format!("{}/v1/jobs/01aaaaaaaaaaaaaaaaaaaaaaaa?wait=99", s.base())).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let r = s.http.get(format!("{}/no/such/route", s.base())).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = s.http.put(format!("{}/v1/couplets", s.base())).send().await.unwrap();
    assert!(r.status() == 405 || r.status() == 404, "{}", r.status());
    // The API is still healthy.
    assert_eq!(s.http.get(format!("{}/healthz", s.base())).send().await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn admission_control_answers_503_with_retry_after() {
    let s = Stack::start(StackOptions::default().workers(0).api("MAX_BACKLOG", "5")).await;
    for _ in 0..5 {
        s.submit_ok(json!({"theme": "春"})).await;
    }
    let r = s.http.post(format!("{}/v1/couplets", s.base())).json(&json!({"theme": "春"})).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().get("retry-after").is_some());
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["error"]["type"], "overloaded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crash_of_a_worker_mid_batch_loses_nothing_and_duplicates_nothing() {
    let mut s = Stack::start(
        StackOptions::default()
            .workers(3)
            .worker("VISIBILITY_TIMEOUT_MS", "2000")
            .worker("MAX_BATCH", "16")
            .worker("MAX_WAIT_MS", "20"),
    )
    .await;
    let mut ids = Vec::with_capacity(1000);
    let mut killed_with_pending = 0i64;
    let consumer0 = format!("w0-{}", s.worker_ports[0]);
    for i in 0..1000u64 {
        ids.push(s.submit_ok(theme_body(["春", "福", "家和", "龙年"][i as usize % 4], "classic", 5, i)).await);
        if i >= 100 && killed_with_pending == 0 {
            // SIGKILL worker 0 at a moment it holds a batch (entries delivered, not acked).
            let mut c = s.redis().await;
            let rows: Vec<(String, String, i64, i64)> = redis::cmd("XPENDING")
                .arg(format!("{}jobs", s.prefix))
                .arg("workers")
                .arg("-")
                .arg("+")
                .arg(1000)
                .arg(&consumer0)
                .query_async(&mut c)
                .await
                .unwrap();
            if !rows.is_empty() {
                s.kill_worker(0);
                killed_with_pending = rows.len() as i64;
            }
        }
    }
    assert!(killed_with_pending > 0, "worker 0 never held a batch to be killed in");
    for id in &ids {
        let job = s.wait_final(id, Duration::from_secs(240)).await;
        assert_valid_couplet(&job);
        let h = s.job_hash(id).await;
        assert_eq!(h.get("result_writes").map(String::as_str), Some("1"), "job {id} result written more than once: {h:?}");
        assert!(job["attempts"].as_u64().unwrap() >= 1);
    }
    // Some jobs were taken over from the killed worker (attempt 2) by XAUTOCLAIM.
    let mut reclaimed = 0u64;
    for i in 1..3 {
        let m = s.worker_metrics(i).await;
        reclaimed += m
            .lines()
            .find(|l| l.starts_with("pixel_couplet_reclaimed_entries_total "))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            .unwrap_or(0.0) as u64;
    }
    let mut retried = 0;
    for id in &ids {
        if s.job_hash(id).await.get("attempts").map(String::as_str) != Some("1") {
            retried += 1;
        }
    }
    assert!(reclaimed as i64 >= killed_with_pending, "reclaimed {reclaimed} < {killed_with_pending} pending at the kill");
    assert!(retried as i64 >= killed_with_pending, "only {retried} jobs record a second attempt");
    // Nothing left pending in the group.
    let mut c = s.redis().await;
    let pending: (i64, redis::Value, redis::Value, redis::Value) =
        redis::cmd("XPENDING").arg(format!("{}jobs", s.prefix)).arg("workers").query_async(&mut c).await.unwrap();
    assert_eq!(pending.0, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_outage_gives_fast_503s_and_recovers_without_restart() {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("redis-outage-{port}"));
    std::fs::create_dir_all(&dir).unwrap();
    let start_redis = || {
        std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes"])
            .arg("--dir")
            .arg(&dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server must be installed")
    };
    let mut redis_proc = start_redis();
    let url = format!("redis://127.0.0.1:{port}");
    for _ in 0..50 {
        if redis::Client::open(url.as_str()).unwrap().get_multiplexed_async_connection().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let opts = StackOptions { redis_url: Some(url.clone()), ..StackOptions::default() };
    let s = Stack::start(opts).await;
    let before = s.submit_ok(json!({"theme": "春"})).await;
    s.wait_final(&before, Duration::from_secs(30)).await;

    let _ = redis_proc.kill();
    let _ = redis_proc.wait();
    for _ in 0..3 {
        let t0 = std::time::Instant::now();
        let r = s.http.post(format!("{}/v1/couplets", s.base())).json(&json!({"theme": "福"})).send().await.unwrap();
        assert_eq!(r.status(), 503);
        assert!(t0.elapsed() < Duration::from_millis(1500), "503 took {:?}", t0.elapsed());
        assert!(r.headers().get("retry-after").is_some());
        assert_eq!(r.json::<serde_json::Value>().await.unwrap()["error"]["type"], "unavailable");
    }
    assert_eq!(s.http.get(format!("{}/readyz", s.base())).send().await.unwrap().status(), 503);
    assert_eq!(s.http.get(format!("{}/healthz", s.base())).send().await.unwrap().status(), 200);

    let mut redis_proc = start_redis();
    let t0 = std::time::Instant::now();
    let id = loop {
        let (st, v) = s.submit(json!({"theme": "家和"})).await;
        if st == 202 {
            break v["id"].as_str().unwrap().to_string();
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "API did not recover: {st} {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let job = s.wait_final(&id, Duration::from_secs(60)).await;
    assert_valid_couplet(&job);
    assert_eq!(s.http.get(format!("{}/readyz", s.base())).send().await.unwrap().status(), 200);
    drop(s);
    let _ = redis_proc.kill();
    let _ = redis_proc.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
