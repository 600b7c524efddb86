//! [hardening] black-box test of `MAX_WAITS_PER_KEY`: past the cap a key's
//! `?wait` long poll answers the job's current state at once, while another
//! key's polls are still held, and a released slot holds again.
#![allow(clippy::unwrap_used, missing_docs)]

use couplet_tests::*;
use serde_json::Value;
use std::time::{Duration, Instant};

/// GET `?wait=N` with `key`; returns (status, job status, seconds taken).
async fn timed_wait(http: reqwest::Client, url: String, key: String) -> (u16, String, f64) {
    let t0 = Instant::now();
    let r = http.get(url).bearer_auth(key).send().await.unwrap();
    let st = r.status().as_u16();
    let v: Value = r.json().await.unwrap();
    (st, v["status"].as_str().unwrap_or("").to_string(), t0.elapsed().as_secs_f64())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_past_max_waits_gets_an_immediate_answer_others_are_still_held() {
    let s = Stack::start(StackOptions::default().workers(0).api("AUTH_MODE", "required").api("MAX_WAITS_PER_KEY", "2")).await;
    let (_, key_a, _) = s.create_key("waits-a", "100/s", 100);
    let (_, key_b, _) = s.create_key("waits-b", "100/s", 100);
    let submit = |key: String| {
        let (http, url) = (s.http.clone(), format!("{}/v1/couplets", s.base()));
        async move {
            let r = http.post(url).bearer_auth(key).json(&theme_body("春", "classic", 5, 1)).send().await.unwrap();
            assert_eq!(r.status(), 202);
            r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string()
        }
    };
    let (job_a, job_b) = (submit(key_a.clone()).await, submit(key_b.clone()).await);
    let url = |id: &str, w: u32| format!("{}/v1/jobs/{id}?wait={w}", s.base());

    // No worker: every job stays queued, so a held poll runs its full 5 s.
    let held: Vec<_> = (0..2).map(|_| tokio::spawn(timed_wait(s.http.clone(), url(&job_a, 5), key_a.clone()))).collect();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let other = tokio::spawn(timed_wait(s.http.clone(), url(&job_b, 5), key_b.clone()));
    let (st, status, took) = timed_wait(s.http.clone(), url(&job_a, 5), key_a.clone()).await;
    assert_eq!((st, status.as_str()), (200, "queued"));
    assert!(took < 2.0, "the third wait of one key must answer at once, took {took:.2}s");
    for h in held {
        let (st, status, took) = h.await.unwrap();
        assert_eq!((st, status.as_str()), (200, "queued"));
        assert!(took >= 4.5, "the first two waits are held, one took {took:.2}s");
    }
    let (st, status, took) = other.await.unwrap();
    assert_eq!((st, status.as_str()), (200, "queued"));
    assert!(took >= 4.0, "another key's wait is still held, took {took:.2}s");

    // The finished waits gave their slots back.
    let (_, _, took) = timed_wait(s.http.clone(), url(&job_a, 1), key_a.clone()).await;
    assert!(took >= 0.9, "a released slot holds again, took {took:.2}s");
}
