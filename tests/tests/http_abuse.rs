//! [proof] Oversized, slow (slowloris-style) and malformed HTTP, from raw TCP
//! clients: the API answers 413 / 408 / 400 or closes the connection, never
//! hangs on it, and keeps serving normal requests quickly while 50 such
//! connections are open.
#![allow(clippy::unwrap_used, missing_docs)]

use couplet_tests::*;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;

const TEN_MB: usize = 10 * 1024 * 1024;

/// How reading a connection ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// The server closed it (EOF or reset).
    Closed,
    /// Still open at the deadline.
    Open,
}

/// Reads until the server closes the connection or `within` passes.
async fn read_to_close(r: &mut OwnedReadHalf, within: Duration) -> (Vec<u8>, End, Duration) {
    let t0 = Instant::now();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let left = within.saturating_sub(t0.elapsed());
        match tokio::time::timeout(left, r.read(&mut buf)).await {
            Err(_) => return (out, End::Open, t0.elapsed()),
            Ok(Ok(0)) | Ok(Err(_)) => return (out, End::Closed, t0.elapsed()),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Status code of a raw HTTP/1.1 response, if one arrived.
fn status_of(raw: &[u8]) -> Option<u16> {
    let text = String::from_utf8_lossy(raw);
    let line = text.lines().next()?;
    let mut parts = line.split(' ');
    (parts.next()?.starts_with("HTTP/1.")).then_some(())?;
    parts.next()?.parse().ok()
}

fn body_of(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw).to_string();
    text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default()
}

async fn connect(s: &Stack) -> TcpStream {
    TcpStream::connect(("127.0.0.1", s.api_port)).await.unwrap()
}

fn post_head(extra: &str) -> String {
    format!("POST /v1/couplets HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nConnection: close\r\n{extra}\r\n")
}

/// A quick normal request (no connection reuse, so no keep-alive races).
async fn normal_round_trip(s: &Stack, client: &reqwest::Client) -> Duration {
    let t0 = Instant::now();
    let r = client.post(format!("{}/v1/couplets", s.base())).json(&json!({"theme": "春"})).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let id = r.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let r = client.get(format!("{}/v1/jobs/{id}", s.base())).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = client.get(format!("{}/healthz", s.base())).send().await.unwrap();
    assert_eq!(r.status(), 200);
    t0.elapsed()
}

fn plain_client() -> reqwest::Client {
    reqwest::Client::builder().pool_max_idle_per_host(0).timeout(Duration::from_secs(5)).build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_megabyte_bodies_get_413_and_the_connection_is_not_hung() {
    let s = Stack::start(StackOptions::default().workers(0)).await;
    for chunked in [false, true] {
        let (mut r, mut w) = connect(&s).await.into_split();
        let head = if chunked { post_head("Transfer-Encoding: chunked\r\n") } else { post_head(&format!("Content-Length: {TEN_MB}\r\n")) };
        w.write_all(head.as_bytes()).await.unwrap();
        let writer = tokio::spawn(async move {
            let chunk = vec![b' '; 64 * 1024];
            let mut sent = 0;
            while sent < TEN_MB {
                let res = if chunked {
                    let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
                    framed.extend_from_slice(&chunk);
                    framed.extend_from_slice(b"\r\n");
                    w.write_all(&framed).await
                } else {
                    w.write_all(&chunk).await
                };
                if res.is_err() {
                    return sent;
                }
                sent += chunk.len();
            }
            if chunked {
                let _ = w.write_all(b"0\r\n\r\n").await;
            }
            sent
        });
        let (raw, end, took) = read_to_close(&mut r, Duration::from_secs(10)).await;
        assert_eq!(status_of(&raw), Some(413), "chunked={chunked}: {}", String::from_utf8_lossy(&raw));
        assert!(body_of(&raw).contains("payload_too_large"), "{}", body_of(&raw));
        assert_eq!(end, End::Closed, "chunked={chunked}: connection still open after {took:?}");
        let sent = tokio::time::timeout(Duration::from_secs(10), writer).await.expect("the upload was left hanging").unwrap();
        eprintln!("chunked={chunked}: 413 and closed after {took:?}; client got {sent} bytes out before the close");
        assert!(sent < TEN_MB, "the server swallowed the whole 10 MB (chunked={chunked})");
    }
    assert!(normal_round_trip(&s, &plain_client()).await < Duration::from_millis(500));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_body_trickled_one_byte_per_second_gets_408() {
    let s = Stack::start(StackOptions::default().workers(0).api("BODY_TIMEOUT_MS", "1000")).await;
    let (mut r, mut w) = connect(&s).await.into_split();
    let body = br#"{"theme": "spring"}"#;
    w.write_all(post_head(&format!("Content-Length: {}\r\n", body.len())).as_bytes()).await.unwrap();
    let trickle = tokio::spawn(async move {
        for b in body {
            if w.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let (raw, end, took) = read_to_close(&mut r, Duration::from_secs(8)).await;
    trickle.abort();
    assert_eq!(status_of(&raw), Some(408), "{}", String::from_utf8_lossy(&raw));
    assert!(body_of(&raw).contains("request_timeout"), "{}", body_of(&raw));
    assert_eq!(end, End::Closed, "connection still open after {took:?}");
    assert!(took < Duration::from_secs(4), "408 took {took:?} with BODY_TIMEOUT_MS=1000");
    eprintln!("trickled body: 408 and closed after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn request_heads_never_completed_are_closed() {
    let s = Stack::start(StackOptions::default().workers(0).api("BODY_TIMEOUT_MS", "1000")).await;
    // Nothing at all; a head cut short; a head trickled a byte every 300 ms (slowloris).
    let mut conns = Vec::new();
    for kind in 0..3 {
        let (r, mut w) = connect(&s).await.into_split();
        match kind {
            0 => {}
            1 => w.write_all(b"POST /v1/couplets HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: appl").await.unwrap(),
            _ => {
                tokio::spawn(async move {
                    for b in b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
                        if w.write_all(&[*b]).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(300)).await;
                    }
                    tokio::time::sleep(Duration::from_secs(60)).await;
                });
                conns.push((kind, r));
                continue;
            }
        }
        conns.push((kind, r));
        // Keep the write half open (dropping it would send FIN).
        std::mem::forget(w);
    }
    for (kind, mut r) in conns {
        let (raw, end, took) = read_to_close(&mut r, Duration::from_secs(8)).await;
        eprintln!("unfinished head (kind {kind}): {end:?} after {took:?}, status {:?}", status_of(&raw));
        assert_eq!(end, End::Closed, "kind {kind}: a connection whose head never completes is kept open");
        assert!(status_of(&raw).is_none_or(|st| st == 408 || st == 400), "{}", String::from_utf8_lossy(&raw));
    }
    assert!(normal_round_trip(&s, &plain_client()).await < Duration::from_millis(500));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn garbage_gets_a_4xx_or_a_close_never_a_hang() {
    let s = Stack::start(StackOptions::default().workers(0).api("BODY_TIMEOUT_MS", "1000")).await;
    let huge_header = format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(1_000_000));
    let many_headers = format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{}\r\n", (0..500).map(|i| format!("X-H{i}: v\r\n")).collect::<String>());
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("binary", (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect()),
        ("zeros", vec![0u8; 1024]),
        ("not http", b"HELLO THERE\r\n\r\n".to_vec()),
        ("bad version", b"GET / HTTP/9.9\r\nHost: x\r\n\r\n".to_vec()),
        ("bad method", b"G\x01T / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        ("bad header", b"GET /healthz HTTP/1.1\r\nHost x\r\n\r\n".to_vec()),
        ("tls hello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec()),
        ("h2 preface junk", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x09\x09".to_vec()),
        ("bad content-length", post_head("Content-Length: -5\r\n").into_bytes()),
        ("two content-lengths", post_head("Content-Length: 5\r\nContent-Length: 7\r\n").into_bytes()),
        ("bad chunk size", [post_head("Transfer-Encoding: chunked\r\n").into_bytes(), b"zz\r\nhello\r\n0\r\n\r\n".to_vec()].concat()),
        ("huge header", huge_header.into_bytes()),
        ("many headers", many_headers.into_bytes()),
        ("bad json", [post_head("Content-Length: 9\r\n").into_bytes(), b"{\"theme\":".to_vec()].concat()),
    ];
    for (name, bytes) in cases {
        let (mut r, mut w) = connect(&s).await.into_split();
        let _ = w.write_all(&bytes).await;
        let (raw, end, took) = read_to_close(&mut r, Duration::from_secs(6)).await;
        let st = status_of(&raw);
        eprintln!("{name}: {st:?}, {end:?} after {took:?}");
        assert_eq!(end, End::Closed, "{name}: connection left open: {}", String::from_utf8_lossy(&raw));
        assert!(st.is_none_or(|c| (400..500).contains(&c)), "{name}: {}", String::from_utf8_lossy(&raw));
        drop(w);
    }
    assert!(normal_round_trip(&s, &plain_client()).await < Duration::from_millis(500));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_bad_connections_do_not_slow_normal_requests() {
    // Bad connections must stay open while normal traffic is measured: default timeouts.
    let s = Stack::start(StackOptions::default().workers(0)).await;
    let client = plain_client();
    normal_round_trip(&s, &client).await; // warm up
    // No workers: this job stays queued, so a long-poll on it is held open.
    let queued = s.submit_ok(json!({"theme": "福"})).await;
    let mut bad = Vec::new();
    for i in 0..50 {
        let (r, mut w) = connect(&s).await.into_split();
        let long_poll = format!("GET /v1/jobs/{queued}?wait=30 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        let task = tokio::spawn(async move {
            let first: &[u8] = match i % 3 {
                // A head that never completes (slowloris).
                0 => b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ",
                // A body that never completes.
                1 => b"POST /v1/couplets HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"theme\": \"",
                // A long-poll the client never reads.
                _ => long_poll.as_bytes(),
            };
            let _ = w.write_all(first).await;
            drop(long_poll);
            for _ in 0..30 {
                tokio::time::sleep(Duration::from_millis(500)).await;
                if i % 3 != 2 && w.write_all(b"a").await.is_err() {
                    return;
                }
            }
        });
        bad.push((r, task));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut worst = Duration::ZERO;
    let t0 = Instant::now();
    for _ in 0..20 {
        worst = worst.max(normal_round_trip(&s, &client).await);
    }
    eprintln!("20 normal round trips (3 requests each) beside 50 bad connections in {:?}; slowest {worst:?}", t0.elapsed());
    assert!(worst < Duration::from_millis(500), "a normal round trip took {worst:?}");
    // The bad connections were really open the whole time.
    let mut open = 0;
    for (r, _) in &bad {
        let mut b = [0u8; 1];
        // Open: nothing to read yet, or an answer waiting; closed: EOF or an error.
        let still_open = match r.try_read(&mut b) {
            Ok(n) => n > 0,
            Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
        };
        if still_open {
            open += 1;
        }
    }
    assert!(open >= 45, "only {open}/50 bad connections were still open");
    for (_, t) in bad {
        t.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_never_reads_its_responses_is_dropped_after_the_write_deadline() {
    let s = Stack::start(StackOptions::default().workers(0).api("WRITE_TIMEOUT_MS", "1000")).await;
    let one = plain_client().get(format!("{}/openapi.json", s.base())).send().await.unwrap().bytes().await.unwrap().len();
    // Enough pipelined requests that their responses overflow every socket buffer.
    let n = (64 * 1024 * 1024 / one.max(1)).clamp(100, 20_000);
    let (mut r, mut w) = connect(&s).await.into_split();
    let head = "GET /openapi.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".repeat(n);
    let writer = tokio::spawn(async move {
        let _ = w.write_all(head.as_bytes()).await;
        w
    });
    // Do not read for well past the deadline.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (got, end, _) = read_to_close(&mut r, Duration::from_secs(20)).await;
    writer.abort();
    eprintln!("{n} responses of {one} bytes requested; {} bytes arrived before the close", got.len());
    assert_eq!(end, End::Closed, "the stalled connection was not closed");
    assert!(got.len() < n * one / 2, "the server kept writing to a client that did not read ({} of {} bytes)", got.len(), n * one);
    // The server itself is fine.
    normal_round_trip(&s, &plain_client()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connections_beyond_max_connections_wait_until_one_closes() {
    let s = Stack::start(StackOptions::default().workers(0).api("MAX_CONNECTIONS", "2")).await;
    // The readiness probe's pooled connection closes after the client's 5 s idle timeout.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let held1 = connect(&s).await;
    let held2 = connect(&s).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).timeout(Duration::from_secs(1)).build().unwrap();
    let r = client.get(format!("{}/healthz", s.base())).send().await;
    assert!(r.is_err(), "a third connection was served while two were open: {:?}", r.map(|r| r.status()));
    drop(held1);
    let t0 = Instant::now();
    let r = plain_client().get(format!("{}/healthz", s.base())).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(t0.elapsed() < Duration::from_secs(3), "waited {:?} after a slot freed", t0.elapsed());
    drop(held2);
}
