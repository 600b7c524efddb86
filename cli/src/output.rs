//! What the CLI prints. The couplet itself goes to stdout (one labelled line
//! each, easy to read and to `grep`); everything about the job (id, style,
//! timing, saved files) goes to stderr, so `couplet gen ... > couplet.txt`
//! keeps only the couplet.
//!
//! A job with several ranked candidates prints each, best first, every line
//! prefixed with its 0-based number (`[1] 上联：…`), the number `--candidate`
//! and the API's `?candidate=` take; a single couplet prints as it always did.

use std::time::Duration;

use common::job::{Candidate, JobStatus, JobView};
use serde_json::Value;

use crate::client::Job;

/// Which lines a finished job prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// 横批, 上联, 下联.
    Full,
    /// 下联 and 横批: the answer to `couplet complete`.
    Completion,
}

/// The wire name of a status.
pub fn status_name(s: JobStatus) -> &'static str {
    match s {
        JobStatus::Queued => "queued",
        JobStatus::Running => "running",
        JobStatus::Succeeded => "succeeded",
        JobStatus::Failed => "failed",
        JobStatus::Canceled => "canceled",
    }
}

/// Pretty JSON on stdout.
pub fn print_json(v: &Value) {
    // Serialising a `Value` cannot fail; fall back to the compact form anyway.
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string()));
}

/// The couplet's lines (every candidate's, when there are several) on stdout.
pub fn print_couplet(view: &JobView, shape: Shape) {
    print!("{}", couplet_text(view, shape));
}

/// The text [`print_couplet`] prints.
fn couplet_text(view: &JobView, shape: Shape) -> String {
    let Some(r) = &view.result else { return String::new() };
    let all: Vec<Candidate> = (0..).map_while(|i| r.candidate(i)).collect();
    if all.len() <= 1 {
        return lines(&Candidate { upper: r.upper.clone(), lower: r.lower.clone(), hengpi: r.hengpi.clone() }, shape, "");
    }
    let blocks: Vec<String> = all.iter().enumerate().map(|(i, c)| lines(c, shape, &format!("[{i}] "))).collect();
    blocks.join("\n")
}

fn lines(c: &Candidate, shape: Shape, prefix: &str) -> String {
    match shape {
        Shape::Full => format!("{prefix}横批：{}\n{prefix}上联：{}\n{prefix}下联：{}\n", c.hengpi, c.upper, c.lower),
        Shape::Completion => format!("{prefix}下联：{}\n{prefix}横批：{}\n", c.lower, c.hengpi),
    }
}

/// Job id, style and time taken, on stderr.
pub fn print_meta(view: &JobView, took: Duration) {
    let style = view.result.as_ref().map(|r| r.style.as_str()).unwrap_or("?");
    eprintln!("job {} · {style} · {:.1} s", view.id, took.as_secs_f64());
}

/// `couplet status` without `--json`.
pub fn print_status(job: &Job) {
    let v = &job.view;
    match v.status {
        JobStatus::Succeeded => {
            print_couplet(v, Shape::Full);
            eprintln!("job {} · succeeded", v.id);
        }
        JobStatus::Failed | JobStatus::Canceled => {
            // The error itself is reported by the exit path (code 4).
            println!("{}: {}", v.id, status_name(v.status));
        }
        JobStatus::Queued | JobStatus::Running => println!("{}: {}", v.id, progress(job)),
    }
}

/// One short line of progress: `queued (3 ahead)`, `running (attempt 2)`.
pub fn progress(job: &Job) -> String {
    let name = status_name(job.view.status);
    match job.view.status {
        JobStatus::Queued => match job.raw.get("queue_position").and_then(Value::as_u64) {
            Some(n) if n > 0 => format!("{name} ({n} ahead)"),
            _ => name.to_string(),
        },
        JobStatus::Running if job.view.attempts > 1 => format!("{name} (attempt {})", job.view.attempts),
        _ => name.to_string(),
    }
}

/// Width and height from a PNG's IHDR, for the "saved" line.
pub fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    let w = bytes.get(16..20)?;
    let h = bytes.get(20..24)?;
    Some((u32::from_be_bytes(w.try_into().ok()?), u32::from_be_bytes(h.try_into().ok()?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_size_reads_the_header() {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        png.extend_from_slice(&564u32.to_be_bytes());
        png.extend_from_slice(&840u32.to_be_bytes());
        assert_eq!(png_size(&png), Some((564, 840)));
        assert_eq!(png_size(b"short"), None);
    }

    fn finished(result: Value) -> JobView {
        let raw = serde_json::json!({
            "id": "01hx", "status": "succeeded", "request": null, "result": result, "error": null,
            "attempts": 1, "created_at": null, "started_at": null, "finished_at": null
        });
        serde_json::from_value(raw).expect("a job")
    }

    #[test]
    fn one_couplet_prints_plain_and_several_print_numbered() {
        let one = finished(serde_json::json!({"upper": "甲", "lower": "乙", "hengpi": "丙丁戊己", "style": "classic"}));
        assert_eq!(couplet_text(&one, Shape::Full), "横批：丙丁戊己\n上联：甲\n下联：乙\n");
        let c = |u: &str, l: &str| serde_json::json!({"upper": u, "lower": l, "hengpi": "四字横批"});
        let three = finished(serde_json::json!({
            "upper": "春一", "lower": "福一", "hengpi": "四字横批", "style": "classic",
            "candidates": [c("春一", "福一"), c("春二", "福二"), c("春三", "福三")]
        }));
        let text = couplet_text(&three, Shape::Completion);
        assert_eq!(text, "[0] 下联：福一\n[0] 横批：四字横批\n\n[1] 下联：福二\n[1] 横批：四字横批\n\n[2] 下联：福三\n[2] 横批：四字横批\n");
        assert!(couplet_text(&three, Shape::Full).contains("[2] 上联：春三\n"));
    }

    #[test]
    fn progress_mentions_the_queue_position() {
        let raw = serde_json::json!({
            "id": "01hx", "status": "queued", "request": null, "result": null, "error": null,
            "attempts": 0, "created_at": null, "started_at": null, "finished_at": null, "queue_position": 3
        });
        let view = serde_json::from_value(raw.clone()).expect("a job");
        assert_eq!(progress(&Job { view, raw }), "queued (3 ahead)");
    }
}
