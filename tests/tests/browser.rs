//! The pixel web UI in a real browser: Debian's Chromium, headless, driven
//! over WebDriver by `chromedriver` (spawned here on a free port), against a
//! real stack (API + worker + Redis, `couplet_tests::Stack`).
//!
//! One test walks the page as a person would: type a theme, pick a style,
//! press Enter, watch the status go to done, check the picture really loaded
//! and the three lines obey the couplet rules (`common::rules::check`), flip
//! the layout, reload and reopen it from the history, then send an invalid
//! theme and find the message next to the theme field. Then three ranked
//! candidates: 换一副 flips to the second (another couplet, and the picture of
//! `?candidate=1`); a 藏头 request's couplet starts with its two characters,
//! and a one-character head is explained next to the head field. A second stack, with
//! a tiny per-IP rate limit and a one-job queue, shows the live countdown of a
//! 429 and the "busy" message of a 503. Screenshots go to
//! `target/screenshots/` (`ui.png` is the finished couplet).
//!
//! Chromium and chromedriver are required (`apt-get install -y chromium
//! chromium-driver`): without them this test fails, it never skips.
#![allow(clippy::unwrap_used, missing_docs)]

use std::net::TcpStream;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use couplet_tests::{free_port, root, theme_chars, Stack, StackOptions};
use fantoccini::key::Key;
use futures::FutureExt;
use hyper_util::client::legacy::connect::HttpConnector;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const THEME: &str = "龙年 吉祥";

/// A chromedriver process and the throwaway Chromium profile; both go on drop.
struct Driver {
    child: Child,
    port: u16,
    profile: PathBuf,
}

impl Driver {
    fn start() -> Driver {
        for (path, what) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromedriver")] {
            assert!(
                Path::new(path).is_file(),
                "{what} not found at {path}: the browser test needs Debian's Chromium and its driver \
                 (apt-get install -y chromium chromium-driver)"
            );
        }
        let port = free_port();
        let logs = root().join("target/test-logs");
        std::fs::create_dir_all(&logs).unwrap();
        let log = std::fs::File::create(logs.join(format!("chromedriver-{port}.log"))).unwrap();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn chromedriver");
        let profile = std::env::temp_dir().join(format!("couplet-ui-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&profile).unwrap();
        let t0 = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(t0.elapsed() < Duration::from_secs(20), "chromedriver did not listen on port {port} within 20 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver { child, port, profile }
    }

    async fn session(&self) -> Client {
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--window-size=1100,1700",
            &format!("--user-data-dir={}", self.profile.display()),
        ];
        let caps = json!({ "goog:chromeOptions": { "binary": CHROMIUM, "args": args } });
        let caps = caps.as_object().unwrap().clone();
        ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .unwrap_or_else(|e| panic!("cannot start a Chromium session through chromedriver: {e}"))
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Runs `script` (a function body) until it returns something truthy; returns that.
async fn wait_js(c: &Client, what: &str, script: &str, timeout: Duration) -> Value {
    let t0 = Instant::now();
    loop {
        let v = c.execute(script, vec![]).await.unwrap();
        let truthy = match &v {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::Number(n) => n.as_f64() != Some(0.0),
            Value::String(s) => !s.is_empty(),
            _ => true,
        };
        if truthy {
            return v;
        }
        if t0.elapsed() > timeout {
            let status = c.execute("return document.querySelector('[data-testid=status]').innerText", vec![]).await.ok();
            panic!("timed out after {timeout:?} waiting for {what}; status line: {status:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn text(c: &Client, testid: &str) -> String {
    c.find(Locator::Css(&format!("[data-testid='{testid}']"))).await.unwrap().text().await.unwrap().trim().to_string()
}

async fn screenshot(c: &Client, name: &str) {
    let dir = root().join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let png = c.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "screenshot is not a PNG");
    std::fs::write(dir.join(name), png).unwrap();
}

/// The loaded result image's natural size (0 while not loaded).
const IMAGE_SIZE: &str = "const img = document.querySelector('[data-testid=result-image]'); \
     return img && img.complete && img.naturalWidth > 0 ? [img.naturalWidth, img.naturalHeight, img.getAttribute('src')] : null;";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_makes_a_couplet_and_explains_mistakes() {
    let stack = Stack::start(StackOptions::default()).await;
    let driver = Driver::start();
    let c = driver.session().await;
    // Close the browser session even when an assertion fails, so no Chromium outlives the test.
    let walked = AssertUnwindSafe(async {
        walk_the_page(&c, &stack.base_url()).await;
        walk_the_candidates(&c, &stack.base_url()).await;
        drop(stack);
        walk_the_refusals(&c).await;
    })
    .catch_unwind()
    .await;
    let _ = c.close().await;
    if let Err(panic) = walked {
        std::panic::resume_unwind(panic);
    }
}

async fn walk_the_page(c: &Client, base: &str) {
    c.goto(&format!("{base}/")).await.unwrap();
    let title = c.title().await.unwrap();
    assert!(title.contains("Pixel Couplet"), "title: {title}");
    // Every asset is same-origin and loaded: the script ran (it sets the layout buttons' state).
    wait_js(c, "app.js to run", "return document.querySelector('[data-layout=door]').getAttribute('aria-pressed') === 'true';", Duration::from_secs(10)).await;

    // --- a couplet, end to end; Enter in the theme box submits ---
    let theme = c.find(Locator::Id("theme")).await.unwrap();
    theme.send_keys(THEME).await.unwrap();
    c.find(Locator::Css("input[name=style][value=festive] + span")).await.unwrap().click().await.unwrap();
    theme.send_keys(&Key::Enter.to_string()).await.unwrap();

    let phase = wait_js(
        c,
        "the job to finish",
        "const p = document.querySelector('[data-testid=status]').dataset.phase; \
         return ['succeeded', 'failed', 'error'].includes(p) ? p : null;",
        Duration::from_secs(90),
    )
    .await;
    assert_eq!(phase, "succeeded", "status: {}", text(c, "status").await);
    let status = text(c, "status").await;
    assert!(status.contains("Done") && status.contains(" s"), "status shows done and the elapsed time: {status}");

    let door = wait_js(c, "the door image to load", IMAGE_SIZE, Duration::from_secs(30)).await;
    let src = door[2].as_str().unwrap();
    assert!(src.contains("/image.png") && src.contains("scale=4") && src.contains("layout=door"), "image src: {src}");
    assert!(door[0].as_u64().unwrap() > 0 && door[1].as_u64().unwrap() > 0);

    let (upper, lower, hengpi) = (text(c, "result-upper").await, text(c, "result-lower").await, text(c, "result-hengpi").await);
    let chars = theme_chars(THEME);
    assert_eq!(chars, vec!['龙', '年', '吉', '祥']);
    common::rules::check(common::rules::CoupletRef { upper: &upper, lower: &lower, hengpi: &hengpi }, &chars, false)
        .unwrap_or_else(|e| panic!("the page shows a couplet that breaks a rule: {e}: {upper} / {lower} / {hengpi}"));

    let download = c.find(Locator::Css("[data-testid=download]")).await.unwrap();
    let href = download.attr("href").await.unwrap().unwrap_or_default();
    assert!(href.contains("/image.png"), "download link: {href}");
    assert!(download.attr("download").await.unwrap().is_some(), "download link has a download attribute");
    // Tall enough that the screenshot shows the form, the picture and the text.
    c.set_window_size(1100, 2300).await.unwrap();
    screenshot(c, "ui.png").await;
    c.set_window_size(1100, 1700).await.unwrap();

    // --- layout toggle: the banner is another picture of the same couplet ---
    c.find(Locator::Css("[data-testid=layout-banner]")).await.unwrap().click().await.unwrap();
    let banner = wait_js(
        c,
        "the banner image to load",
        &IMAGE_SIZE.replace("img.naturalWidth > 0", "img.naturalWidth > 0 && img.src.includes('layout=banner')"),
        Duration::from_secs(30),
    )
    .await;
    assert_ne!(banner[0], door[0], "banner and door images differ in size");
    let pressed = c.find(Locator::Css("[data-testid=layout-banner]")).await.unwrap().attr("aria-pressed").await.unwrap();
    assert_eq!(pressed.as_deref(), Some("true"));

    // --- history survives a reload and shows the couplet again ---
    c.refresh().await.unwrap();
    let item = wait_js(
        c,
        "the history entry",
        "const b = document.querySelector('[data-testid=history-item]'); return b ? b.innerText : null;",
        Duration::from_secs(10),
    )
    .await;
    assert!(item.as_str().unwrap().contains(&hengpi), "history entry: {item}");
    assert!(c.find(Locator::Css("[data-testid=result]")).await.unwrap().attr("hidden").await.unwrap().is_some());
    c.find(Locator::Css("[data-testid=history-item]")).await.unwrap().click().await.unwrap();
    wait_js(c, "the saved couplet's image", IMAGE_SIZE, Duration::from_secs(30)).await;
    assert_eq!(text(c, "result-upper").await, upper);
    assert_eq!(text(c, "result-lower").await, lower);

    // --- phone width: nothing sticks out sideways ---
    c.set_window_size(360, 800).await.unwrap();
    let overflow = c
        .execute("return document.documentElement.scrollWidth - document.documentElement.clientWidth;", vec![])
        .await
        .unwrap();
    assert_eq!(overflow.as_i64(), Some(0), "page is wider than a 360 px phone");
    screenshot(c, "ui-phone.png").await;
    c.set_window_size(1100, 1700).await.unwrap();

    // --- an invalid theme: the server's message, next to the theme field ---
    let theme = c.find(Locator::Id("theme")).await.unwrap();
    theme.clear().await.unwrap();
    theme.send_keys("hello").await.unwrap();
    c.find(Locator::Css("[data-testid=submit]")).await.unwrap().click().await.unwrap();
    let msg = wait_js(
        c,
        "the theme error",
        "const e = document.querySelector('[data-testid=error-theme]'); return e && e.innerText.trim();",
        Duration::from_secs(20),
    )
    .await;
    let msg = msg.as_str().unwrap();
    assert!(msg.contains("Chinese"), "English message: {msg}");
    assert!(msg.contains("汉字"), "Chinese message: {msg}");
    let err = c.find(Locator::Css("[data-testid=error-theme]")).await.unwrap();
    assert_eq!(err.attr("role").await.unwrap().as_deref(), Some("alert"));
    assert!(err.is_displayed().await.unwrap(), "the message is visible");
    assert_eq!(theme.attr("aria-invalid").await.unwrap().as_deref(), Some("true"));
    let described = theme.attr("aria-describedby").await.unwrap().unwrap_or_default();
    assert!(described.contains("error-theme"), "the field points at its message: {described}");
    let phase = c.execute("return document.querySelector('[data-testid=status]').dataset.phase;", vec![]).await.unwrap();
    assert_eq!(phase, "error");
    // The message sits next to its field: directly below the theme box, above the style picker.
    let layout = c
        .execute(
            "const r = (s) => document.querySelector(s).getBoundingClientRect(); \
             return [r('#theme').bottom, r('[data-testid=error-theme]').top, r('[data-testid=style-picker]').top];",
            vec![],
        )
        .await
        .unwrap();
    let y: Vec<f64> = layout.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert!(y[0] <= y[1] && y[1] < y[2], "error message between the theme box and the style picker: {y:?}");
    screenshot(c, "ui-error.png").await;
}

/// Submits the form as it stands and waits for the job to succeed and its picture to load.
async fn submit_and_wait(c: &Client, what: &str) -> Value {
    c.find(Locator::Css("[data-testid=submit]")).await.unwrap().click().await.unwrap();
    let phase = wait_js(
        c,
        what,
        "const p = document.querySelector('[data-testid=status]').dataset.phase; \
         return ['succeeded', 'failed', 'error'].includes(p) ? p : null;",
        Duration::from_secs(90),
    )
    .await;
    assert_eq!(phase, "succeeded", "{what}: {}", text(c, "status").await);
    wait_js(c, "the picture", IMAGE_SIZE, Duration::from_secs(30)).await
}

/// The three lines on screen, checked against the rules for `theme`.
async fn shown_couplet(c: &Client, theme: &str) -> (String, String, String) {
    let (upper, lower, hengpi) = (text(c, "result-upper").await, text(c, "result-lower").await, text(c, "result-hengpi").await);
    common::rules::check(common::rules::CoupletRef { upper: &upper, lower: &lower, hengpi: &hengpi }, &theme_chars(theme), false)
        .unwrap_or_else(|e| panic!("the page shows a couplet that breaks a rule: {e}: {upper} / {lower} / {hengpi}"));
    (upper, lower, hengpi)
}

/// Three candidates and 换一副; a 藏头 request; a refused head next to its field.
async fn walk_the_candidates(c: &Client, base: &str) {
    c.goto(&format!("{base}/")).await.unwrap();
    let theme = c.find(Locator::Id("theme")).await.unwrap();
    theme.send_keys("春").await.unwrap();
    c.find(Locator::Css("input[name=candidates][value='3'] + span")).await.unwrap().click().await.unwrap();
    let first = submit_and_wait(c, "the three-candidate job").await;
    assert!(first[2].as_str().unwrap().contains("candidate=0"), "image src: {}", first[2]);
    assert_eq!(text(c, "candidate-counter").await, "1/3");
    let next = c.find(Locator::Css("[data-testid=next-candidate]")).await.unwrap();
    assert!(next.is_displayed().await.unwrap(), "换一副 is shown for several candidates");
    assert!(next.text().await.unwrap().contains("换一副"));
    let best = shown_couplet(c, "春").await;

    next.click().await.unwrap();
    let second = wait_js(
        c,
        "the second candidate's picture",
        &IMAGE_SIZE.replace("img.naturalWidth > 0", "img.naturalWidth > 0 && img.src.includes('candidate=1')"),
        Duration::from_secs(30),
    )
    .await;
    assert!(second[2].as_str().unwrap().contains("candidate=1"), "image src: {}", second[2]);
    assert_eq!(text(c, "candidate-counter").await, "2/3");
    let other = shown_couplet(c, "春").await;
    assert_ne!(other, best, "换一副 shows another couplet");
    let download = c.find(Locator::Css("[data-testid=download]")).await.unwrap().attr("href").await.unwrap().unwrap_or_default();
    assert!(download.contains("candidate=1"), "the download is the couplet on screen: {download}");
    screenshot(c, "ui-candidates.png").await;

    // Back to one candidate, with a 藏头.
    c.find(Locator::Css("input[name=candidates][value='1'] + span")).await.unwrap().click().await.unwrap();
    let head = c.find(Locator::Id("head")).await.unwrap();
    head.send_keys("春福").await.unwrap();
    submit_and_wait(c, "the 藏头 job").await;
    let (upper, lower, _) = shown_couplet(c, "春").await;
    assert!(upper.starts_with('春') && lower.starts_with('福'), "藏头 春福: {upper} / {lower}");
    assert!(!c.find(Locator::Css("[data-testid=candidate-nav]")).await.unwrap().is_displayed().await.unwrap(), "no 换一副 for one couplet");

    // One character is not a head: the server's refusal, next to the head field.
    head.clear().await.unwrap();
    head.send_keys("春").await.unwrap();
    c.find(Locator::Css("[data-testid=submit]")).await.unwrap().click().await.unwrap();
    let msg = wait_js(
        c,
        "the head error",
        "const e = document.querySelector('[data-testid=error-head]'); return e && e.innerText.trim();",
        Duration::from_secs(20),
    )
    .await;
    let msg = msg.as_str().unwrap();
    assert!(msg.contains("藏头") && msg.contains("two different Chinese characters"), "bilingual head message: {msg}");
    assert_eq!(head.attr("aria-invalid").await.unwrap().as_deref(), Some("true"));
}

/// Rate limited, then busy: both explained in the form, with a live countdown.
async fn walk_the_refusals(c: &Client) {
    // One request per 5 s per IP, and room for a single queued job with no worker to take it.
    let opts = StackOptions::default().workers(0).api("IP_RATE_LIMIT", "0.2").api("IP_RATE_BURST", "1").api("MAX_BACKLOG", "1");
    let stack = Stack::start(opts).await;
    let base = stack.base_url();
    // This request spends the IP's burst and fills the queue.
    let (st, body) = stack.submit(json!({"theme": "福"})).await;
    assert_eq!(st, 202, "{body}");

    c.goto(&format!("{base}/")).await.unwrap();
    let theme = c.find(Locator::Id("theme")).await.unwrap();
    theme.send_keys("春").await.unwrap();
    theme.send_keys(&Key::Enter.to_string()).await.unwrap();
    let first = wait_js(
        c,
        "the rate-limit countdown",
        "const n = document.querySelector('[data-testid=countdown]'); return n ? Number(n.textContent) : null;",
        Duration::from_secs(10),
    )
    .await;
    let first = first.as_f64().unwrap();
    assert!((1.0..=5.0).contains(&first), "countdown starts from Retry-After: {first}");
    let form_error = text(c, "error-form").await;
    assert!(form_error.contains("Too many requests") && form_error.contains("太频繁"), "{form_error}");
    let alert = c.find(Locator::Css("[data-testid=error-form]")).await.unwrap().attr("role").await.unwrap();
    assert_eq!(alert.as_deref(), Some("alert"));
    let disabled = c.find(Locator::Css("[data-testid=submit]")).await.unwrap().prop("disabled").await.unwrap();
    assert_eq!(disabled.as_deref(), Some("true"), "submit waits for the countdown");
    screenshot(c, "ui-rate-limited.png").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let later = c.execute("const n = document.querySelector('[data-testid=countdown]'); return n ? Number(n.textContent) : 0;", vec![]).await.unwrap();
    assert!(later.as_f64().unwrap() < first, "the countdown counts down: {first} → {later}");

    // When it reaches zero the button comes back; the next try finds the queue full.
    wait_js(
        c,
        "the countdown to end",
        "return !document.querySelector('[data-testid=submit]').disabled && !document.querySelector('[data-testid=countdown]');",
        Duration::from_secs(10),
    )
    .await;
    c.find(Locator::Css("[data-testid=submit]")).await.unwrap().click().await.unwrap();
    let busy = wait_js(
        c,
        "the busy message",
        "const e = document.querySelector('[data-testid=error-form]'); return e && e.innerText.includes('busy') ? e.innerText : null;",
        Duration::from_secs(10),
    )
    .await;
    assert!(busy.as_str().unwrap().contains("繁忙"), "bilingual busy message: {busy}");
}
