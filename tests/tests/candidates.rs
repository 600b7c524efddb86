//! [candidates] black-box tests of ranked candidates and 藏头 (`candidates`,
//! `head` in the request; `result.candidates`; `?candidate=N` on the image
//! routes) through the real API and a real worker on the real Redis.
//!
//! Refusals: `candidates` outside 1–5 and a bad `head` are 422 with their own
//! `error.type` and `error.field`; a `candidates` of the wrong JSON type is the
//! typed-field error every field gets (422 `invalid_field`, no `field`). An
//! image `candidate` that is not a 0-based index of the job's candidates is the
//! image route's bad-query error (400 `invalid_query`, like a bad `scale`).
#![allow(clippy::unwrap_used, missing_docs)]
#![allow(clippy::disallowed_methods, clippy::disallowed_types)] // black-box: inspects Redis from outside the store (clippy.toml)

use couplet_tests::*;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

/// `(upper, lower, hengpi)` of a candidate (or of the result's top level).
fn lines(v: &Value) -> (String, String, String) {
    let s = |k: &str| v[k].as_str().unwrap_or_else(|| panic!("no {k} in {v}")).to_string();
    (s("upper"), s("lower"), s("hengpi"))
}

/// Panics unless the couplet obeys the five rules for `theme` (and a user upper line).
fn assert_rules(c: &(String, String, String), theme: &str, user_upper: bool) {
    common::rules::check(common::rules::CoupletRef { upper: &c.0, lower: &c.1, hengpi: &c.2 }, &theme_chars(theme), user_upper)
        .unwrap_or_else(|e| panic!("rule broken: {e}: {c:?}"));
}

/// GET an image; returns (status, ETag, body).
async fn image(s: &Stack, id: &str, query: &str) -> (u16, Option<String>, Vec<u8>) {
    let r = s.http.get(format!("{}/v1/jobs/{id}/image.png{query}", s.base())).send().await.unwrap();
    let etag = r.headers().get("etag").map(|v| v.to_str().unwrap().to_string());
    (r.status().as_u16(), etag, r.bytes().await.unwrap().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_ranked_candidates_each_with_its_own_picture() {
    let s = Stack::start(StackOptions::default()).await;
    let theme = "龙年 吉祥";
    let id = s.submit_ok(json!({"theme": theme, "style": "festive", "candidates": 3, "seed": 7})).await;
    let job = s.wait_final(&id, WAIT).await;
    assert_valid_couplet(&job);
    assert_eq!(job["request"]["candidates"], 3, "{job}");
    let list = job["result"]["candidates"].as_array().unwrap_or_else(|| panic!("no candidates: {job}"));
    assert_eq!(list.len(), 3, "{job}");
    let all: Vec<_> = list.iter().map(lines).collect();
    assert_eq!(lines(&job["result"]), all[0], "the top level is the best candidate");
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), 3, "candidates are pairwise different: {all:?}");
    for c in &all {
        assert_rules(c, theme, false);
    }

    // ?candidate=N draws candidate N; no parameter is candidate 0.
    let (st0, etag0, png0) = image(&s, &id, "?candidate=0").await;
    let (st1, etag1, png1) = image(&s, &id, "?candidate=1").await;
    let (st, etag_default, png_default) = image(&s, &id, "").await;
    assert_eq!((st0, st1, st), (200, 200, 200));
    assert!(png1.starts_with(b"\x89PNG"), "candidate 1 is a PNG");
    assert_ne!(png0, png1, "candidates 0 and 1 are different pictures");
    assert_ne!(etag0, etag1, "and have different ETags");
    assert_eq!((png_default, etag_default), (png0, etag0.clone()), "no candidate parameter is candidate 0");
    // The ETag of candidate 0 does not validate candidate 1's picture.
    let r = s
        .http
        .get(format!("{}/v1/jobs/{id}/image.png?candidate=1", s.base()))
        .header("if-none-match", etag0.unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let svg = s.http.get(format!("{}/v1/jobs/{id}/image.svg?candidate=2", s.base())).send().await.unwrap();
    assert_eq!(svg.status(), 200);

    // Past the job's candidates, or not an index: the route's bad-query error.
    for q in ["?candidate=3", "?candidate=9", "?candidate=x", "?candidate=-1", "?candidate=1.0"] {
        let (st, _, body) = image(&s, &id, q).await;
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!((st, v["error"]["type"].as_str()), (400, Some("invalid_query")), "{q}: {v}");
        assert!(v["error"]["message"].as_str().unwrap().contains("candidate"), "{q}: {v}");
    }
    // A one-couplet job has only candidate 0.
    let one = s.submit_ok(json!({"theme": "福"})).await;
    let job = s.wait_final(&one, WAIT).await;
    assert_eq!(job["request"]["candidates"], 1);
    assert_eq!(image(&s, &one, "?candidate=0").await.0, 200);
    assert_eq!(image(&s, &one, "?candidate=1").await.0, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn head_characters_open_both_lines() {
    let s = Stack::start(StackOptions::default()).await;
    // Theme mode: both lines are written, starting with 春 and 福.
    let theme = "吉祥";
    let id = s.submit_ok(json!({"theme": theme, "head": "春福", "candidates": 2})).await;
    let job = s.wait_final(&id, WAIT).await;
    assert_valid_couplet(&job);
    assert_eq!(job["request"]["head"], "春福", "{job}");
    let all: Vec<_> = job["result"]["candidates"].as_array().unwrap().iter().map(lines).collect();
    assert_eq!(all.len(), 2, "{job}");
    for c in &all {
        assert!(c.0.starts_with('春') && c.1.starts_with('福'), "藏头 春福: {c:?}");
        assert_rules(c, theme, false);
    }
    // Upper mode: the given upper line opens with 春; the lower line is written to open with 福.
    let upper = "春风送暖入屠苏";
    let id = s.submit_ok(json!({"upper": upper, "head": "春 福"})).await;
    let job = s.wait_final(&id, WAIT).await;
    assert_valid_couplet(&job);
    let c = lines(&job["result"]);
    assert_eq!(c.0, upper);
    assert!(c.1.starts_with('福'), "lower line opens with 福: {c:?}");
    assert_rules(&c, "", true);
    // The synchronous route takes the same fields.
    let r = s.http.post(format!("{}/generate", s.base())).json(&json!({"theme": "家和", "head": "福寿"})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_valid_couplet(&v);
    assert!(v["result"]["upper"].as_str().unwrap().starts_with('福') && v["result"]["lower"].as_str().unwrap().starts_with('寿'), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_candidates_and_heads_are_refused_before_queueing() {
    // No worker: a refused request must not reach the queue, and nothing needs one.
    let s = Stack::start(StackOptions::default().workers(0)).await;
    let upper = "春风送暖入屠苏";
    let cases: Vec<(&str, Value, &str, Option<&str>)> = vec![
        ("zero candidates", json!({"theme": "春", "candidates": 0}), "invalid_candidates", Some("candidates")),
        ("six candidates", json!({"theme": "春", "candidates": 6}), "invalid_candidates", Some("candidates")),
        ("negative candidates", json!({"theme": "春", "candidates": -1}), "invalid_candidates", Some("candidates")),
        // A wrong JSON type is the typed-field error of every field: no `field`, serde's message.
        ("string candidates", json!({"theme": "春", "candidates": "x"}), "invalid_field", None),
        ("fractional candidates", json!({"theme": "春", "candidates": 2.5}), "invalid_field", None),
        ("one head character", json!({"theme": "春", "head": "春"}), "invalid_head", Some("head")),
        ("three head characters", json!({"theme": "春", "head": "春福满"}), "invalid_head", Some("head")),
        ("same head twice", json!({"theme": "春", "head": "春春"}), "invalid_head", Some("head")),
        ("latin head", json!({"theme": "春", "head": "ab"}), "invalid_head", Some("head")),
        ("head not opening the upper line", json!({"upper": upper, "head": "福春"}), "invalid_head", Some("head")),
        ("second head character in the upper line", json!({"upper": upper, "head": "春风"}), "invalid_head", Some("head")),
        ("head wrong type", json!({"theme": "春", "head": 12}), "invalid_field", None),
    ];
    for (name, body, want_type, want_field) in cases {
        let (st, v) = s.submit(body.clone()).await;
        assert_eq!((st, v["error"]["type"].as_str()), (422, Some(want_type)), "{name}: {body} → {v}");
        assert_eq!(v["error"]["field"].as_str(), want_field, "{name}: {v}");
        assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{name}: {v}");
    }
    let mut c = s.redis().await;
    let queued: i64 = redis::cmd("XLEN").arg(format!("{}jobs", s.prefix)).query_async(&mut c).await.unwrap();
    assert_eq!(queued, 0, "refused requests were queued");
    // The limits themselves are accepted.
    for n in [1, 5] {
        let (st, v) = s.submit(json!({"theme": "春", "candidates": n, "head": "春福"})).await;
        assert_eq!(st, 202, "candidates {n}: {v}");
    }
}
