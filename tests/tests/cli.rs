//! The `couplet` command-line client (target/release/couplet) against a real
//! stack: what it prints, what it saves, and its documented exit codes
//! (docs/CLI.md): 0 ok, 2 usage, 3 rejected, 4 failed job, 5 unreachable.
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

use common::rules::{check, CoupletRef};
use couplet_tests::{assert_valid_couplet, bin, free_port, theme_chars, Stack, StackOptions};
use serde_json::Value;

/// Runs `couplet ARGS` with `COUPLET_URL` set (and no inherited API key).
async fn couplet(url: &str, args: &[&str]) -> Output {
    couplet_env(url, None, args).await
}

async fn couplet_env(url: &str, key: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::new(bin("couplet"));
    cmd.args(args).env("COUPLET_URL", url).env_remove("COUPLET_API_KEY");
    if let Some(k) = key {
        cmd.env("COUPLET_API_KEY", k);
    }
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("couplet {args:?} did not finish within 120 s"))
        .unwrap();
    out
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn describe(out: &Output) -> String {
    format!("exit {}\nstdout:\n{}\nstderr:\n{}", code(out), stdout(out), stderr(out))
}

/// The value of the `LABEL：…` line of the text output.
fn line<'a>(text: &'a str, label: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(label).and_then(|r| r.strip_prefix('：')))
        .unwrap_or_else(|| panic!("no {label} line in:\n{text}"))
}

fn scratch_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("couplet-cli-{:016x}", rand::random::<u64>()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gen_status_and_complete_against_a_live_stack() {
    let stack = Stack::start(StackOptions::default()).await;
    let url = stack.base_url();
    let dir = scratch_dir();
    let png = dir.join("out.png");

    // gen --wait --json --png: the job JSON on stdout, a real PNG on disk.
    let out = couplet(&url, &["gen", "--theme", "龙年 吉祥", "--style", "festive", "--wait", "--json", "--png", png.to_str().unwrap()]).await;
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let job: Value = serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", describe(&out)));
    assert_valid_couplet(&job);
    assert_eq!(job["request"]["style"], "festive");
    assert_eq!(job["result"]["style"], "festive");
    let id = job["id"].as_str().unwrap().to_string();
    let bytes = std::fs::read(&png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{} is not a PNG", png.display());
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert!(width > 0 && height > 0 && width % 4 == 0, "a scale-4 image: {width}×{height}");
    // Not a terminal: no spinner control codes on stderr.
    assert!(!stderr(&out).contains('\r') && !stderr(&out).contains('\x1b'), "stderr: {:?}", stderr(&out));

    // status ID: the same couplet as text; --json: the same job.
    let out = couplet(&url, &["status", &id]).await;
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let text = stdout(&out);
    assert_eq!(line(&text, "上联"), job["result"]["upper"].as_str().unwrap());
    assert_eq!(line(&text, "下联"), job["result"]["lower"].as_str().unwrap());
    assert_eq!(line(&text, "横批"), job["result"]["hengpi"].as_str().unwrap());
    let out = couplet(&url, &["status", &id, "--json"]).await;
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let again: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(again["id"], job["id"]);
    assert_eq!(again["result"], job["result"]);

    // gen without --wait prints just the id; status --wait then prints the couplet.
    let out = couplet(&url, &["gen", "--theme", "福", "--length", "5", "--seed", "42"]).await;
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let queued = stdout(&out).trim().to_string();
    assert!(queued.len() == 26 && queued.chars().all(|c| c.is_ascii_alphanumeric()), "a job id: {queued:?}");
    let out = couplet(&url, &["status", &queued, "--wait"]).await;
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let text = stdout(&out);
    let (upper, lower, hengpi) = (line(&text, "上联"), line(&text, "下联"), line(&text, "横批"));
    assert_eq!(upper.chars().count(), 5, "{text}");
    check(CoupletRef { upper, lower, hengpi }, &theme_chars("福"), false).unwrap_or_else(|e| panic!("{e}: {text}"));

    // gen --wait as text, with --url overriding COUPLET_URL.
    let out = couplet("http://127.0.0.1:9", &["--url", &url, "gen", "--theme", "春", "--style", "family", "--wait"]).await;
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let text = stdout(&out);
    let (upper, lower, hengpi) = (line(&text, "上联"), line(&text, "下联"), line(&text, "横批"));
    check(CoupletRef { upper, lower, hengpi }, &['春'], false).unwrap_or_else(|e| panic!("{e}: {text}"));

    // complete: the lower line and 横批 for a given upper line.
    let given = "天增岁月人增寿";
    let out = couplet(&url, &["complete", given, "--style", "classic"]).await;
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let text = stdout(&out);
    let (lower, hengpi) = (line(&text, "下联"), line(&text, "横批"));
    check(CoupletRef { upper: given, lower, hengpi }, &[], true).unwrap_or_else(|e| panic!("{e}: {text}"));

    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_say_what_went_wrong() {
    let stack = Stack::start(StackOptions::default()).await;
    let url = stack.base_url();

    // 3: the API refused the request; the type and message are printed.
    let out = couplet(&url, &["gen", "--theme", "hello", "--wait"]).await;
    assert_eq!(code(&out), 3, "{}", describe(&out));
    assert!(stderr(&out).contains("non_cjk_input") && stderr(&out).contains("theme"), "{}", describe(&out));
    assert!(stdout(&out).is_empty(), "{}", describe(&out));
    let out = couplet(&url, &["complete", "春风"]).await;
    assert_eq!(code(&out), 3, "{}", describe(&out));
    assert!(stderr(&out).contains("input_too_short"), "{}", describe(&out));
    let out = couplet(&url, &["gen", "--theme", "福", "--length", "6"]).await;
    assert_eq!(code(&out), 3, "{}", describe(&out));
    assert!(stderr(&out).contains("unsupported_length"), "{}", describe(&out));
    let out = couplet(&url, &["status", "01aaaaaaaaaaaaaaaaaaaaaaaa"]).await;
    assert_eq!(code(&out), 3, "{}", describe(&out));
    assert!(stderr(&out).contains("not_found"), "{}", describe(&out));

    // 5: nothing listens there (connection refused), promptly.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let t0 = Instant::now();
    let out = couplet(&dead, &["gen", "--theme", "福", "--wait"]).await;
    assert_eq!(code(&out), 5, "{}", describe(&out));
    assert!(stderr(&out).contains("cannot reach"), "{}", describe(&out));
    assert!(t0.elapsed() < Duration::from_secs(10), "took {:?}", t0.elapsed());
    let out = couplet(&dead, &["status", "01aaaaaaaaaaaaaaaaaaaaaaaa", "--json"]).await;
    assert_eq!(code(&out), 5, "{}", describe(&out));

    // 2: usage errors are clap's.
    for args in [
        &["gen"][..],
        &["gen", "--theme", "福", "--style", "gothic"],
        &["gen", "--theme", "福", "--seed", "-1"],
        &["gen", "--theme", "福", "--scale", "9"],
        &["status"],
        &["frobnicate"],
        &["--url", "ftp://example.com", "status", "x"],
    ] {
        let out = couplet(&url, args).await;
        assert_eq!(code(&out), 2, "couplet {args:?}: {}", describe(&out));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_are_sent_as_bearer_tokens() {
    let stack = Stack::start(StackOptions::default().api("AUTH_MODE", "required")).await;
    let url = stack.base_url();
    // Two requests at once, then one a minute: enough for one submit and one long-poll.
    let (_, key, _) = stack.create_key("cli-test", "1/m", 2);

    let out = couplet(&url, &["gen", "--theme", "福"]).await;
    assert_eq!(code(&out), 3, "{}", describe(&out));
    assert!(stderr(&out).contains("unauthorized"), "{}", describe(&out));

    let out = couplet_env(&url, Some(&key), &["gen", "--theme", "福", "--wait", "--json"]).await;
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_valid_couplet(&serde_json::from_str(&stdout(&out)).unwrap());

    // The burst is spent: the next submission is rate limited (a 4xx, so 3).
    let out = couplet(&url, &["--api-key", &key, "gen", "--theme", "福"]).await;
    assert_eq!(code(&out), 3, "{}", describe(&out));
    assert!(stderr(&out).contains("rate_limited"), "{}", describe(&out));
}

/// The value of the `[N] LABEL：…` line of a numbered (several-candidate) output.
fn numbered<'a>(text: &'a str, n: usize, label: &str) -> &'a str {
    let prefix = format!("[{n}] {label}：");
    text.lines().find_map(|l| l.strip_prefix(prefix.as_str())).unwrap_or_else(|| panic!("no {prefix} line in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn candidates_are_numbered_and_head_is_sent() {
    let stack = Stack::start(StackOptions::default()).await;
    let url = stack.base_url();
    let dir = scratch_dir();
    let png = dir.join("second.png");

    // Three 藏头 candidates, numbered from 0; --candidate 1 saves the second one's picture.
    let out = couplet(&url, &["gen", "--theme", "开业", "--head", "金福", "--candidates", "3", "--png", png.to_str().unwrap(), "--candidate", "1"]).await;
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let text = stdout(&out);
    let mut seen = std::collections::HashSet::new();
    for n in 0..3 {
        let (upper, lower, hengpi) = (numbered(&text, n, "上联"), numbered(&text, n, "下联"), numbered(&text, n, "横批"));
        assert!(upper.starts_with('金') && lower.starts_with('福'), "藏头 金福: {text}");
        check(CoupletRef { upper, lower, hengpi }, &theme_chars("开业"), false).unwrap_or_else(|e| panic!("{e}: {text}"));
        seen.insert((upper, lower, hengpi));
    }
    assert_eq!(seen.len(), 3, "pairwise different: {text}");
    assert!(!text.contains("[3]"), "{text}");
    let id = stderr(&out).split_whitespace().skip_while(|w| *w != "job").nth(1).unwrap().to_string();
    let served = stack.http.get(format!("{url}/v1/jobs/{id}/image.png?scale=4&layout=door&candidate=1")).send().await.unwrap();
    assert_eq!(std::fs::read(&png).unwrap(), served.bytes().await.unwrap().to_vec(), "the PNG is candidate 1's");

    // complete with a matching head: numbered 下联 lines, each opening with the head's second character.
    let out = couplet(&url, &["complete", "春风送暖入屠苏", "--head", "春福", "--candidates", "2"]).await;
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let text = stdout(&out);
    assert!(numbered(&text, 0, "下联").starts_with('福') && numbered(&text, 1, "下联").starts_with('福'), "{text}");

    // The server's refusals are exit 3 with their types.
    let out = couplet(&url, &["gen", "--theme", "春", "--candidates", "6", "--wait"]).await;
    assert_eq!(code(&out), 3, "{}", describe(&out));
    assert!(stderr(&out).contains("invalid_candidates"), "{}", describe(&out));
    let out = couplet(&url, &["complete", "春风送暖入屠苏", "--head", "福春"]).await;
    assert_eq!(code(&out), 3, "{}", describe(&out));
    assert!(stderr(&out).contains("invalid_head"), "{}", describe(&out));
    let _ = std::fs::remove_dir_all(&dir);
}
