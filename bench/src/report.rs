//! Output: plain-text tables on stdout (what `docs/BENCHMARKS.md` quotes) and
//! one JSON file per run under `target/bench/`, with the machine and its load
//! recorded next to the figures so that a number is never read without its
//! context.

use crate::procstat;
use crate::stack::target_dir;
use anyhow::Result;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

/// A fixed-width text table.
pub struct Table {
    head: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub fn new(head: &[&str]) -> Self {
        Table { head: head.iter().map(|s| s.to_string()).collect(), rows: Vec::new() }
    }

    /// Adds a row (cells already formatted).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Prints it, right-aligned except the first column.
    pub fn print(&self) {
        let n = self.head.len();
        let mut w = vec![0; n];
        for r in std::iter::once(&self.head).chain(self.rows.iter()) {
            for (i, c) in r.iter().enumerate().take(n) {
                w[i] = w[i].max(c.chars().count());
            }
        }
        let line = |r: &Vec<String>| {
            let cells: Vec<String> = r
                .iter()
                .enumerate()
                .take(n)
                .map(|(i, c)| if i == 0 { format!("{c:<width$}", width = w[i]) } else { format!("{c:>width$}", width = w[i]) })
                .collect();
            println!("{}", cells.join("  ").trim_end());
        };
        line(&self.head);
        println!("{}", w.iter().map(|x| "-".repeat(*x)).collect::<Vec<_>>().join("  "));
        for r in &self.rows {
            line(r);
        }
    }
}

/// Formats a number with `d` decimals, `-` for NaN.
pub fn f(v: f64, d: usize) -> String {
    if v.is_finite() {
        format!("{v:.d$}")
    } else {
        "-".into()
    }
}

/// Seconds since the epoch.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The machine: cores, memory, CPU model, load now.
pub fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).unwrap_or("?").trim().to_string();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: u64 = meminfo.lines().find(|l| l.starts_with("MemTotal:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap_or(0);
    let git_head = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(crate::stack::root())
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    // The binaries under test are rebuilt by whoever builds the workspace; their mtimes say which build ran.
    let built = |name: &str| {
        std::fs::metadata(crate::stack::bin_dir().join(name))
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs())
    };
    json!({
        "git_head": git_head,
        "profile": crate::profile(),
        "binaries_mtime_unix": {"couplet-api": built("couplet-api"), "couplet-worker": built("couplet-worker")},
        "cores": procstat::cores(),
        "cpu_model": model,
        "mem_total_gib": (mem_kib as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0,
        "loadavg_at_start": procstat::loadavg().1,
    })
}

/// Prints the one-line machine header.
pub fn print_machine(m: &Value) {
    println!(
        "machine: {} cores, {} GiB, {}; loadavg at start: {}",
        m["cores"], m["mem_total_gib"], m["cpu_model"].as_str().unwrap_or("?"), m["loadavg_at_start"].as_str().unwrap_or("?")
    );
    let age = |k: &str| m["binaries_mtime_unix"][k].as_u64().map(|t| format!("{} min", unix_now().saturating_sub(t) / 60)).unwrap_or_else(|| "?".into());
    println!(
        "git HEAD {}; binaries from target/{}/: couplet-api built {} ago, couplet-worker built {} ago",
        m["git_head"].as_str().unwrap_or("?"),
        m["profile"].as_str().unwrap_or("?"),
        age("couplet-api"),
        age("couplet-worker")
    );
}

/// Writes `target/bench/<name>-<unix time>.json`; returns the path.
pub fn write_json(name: &str, v: &Value) -> Result<PathBuf> {
    let dir = target_dir().join("bench");
    std::fs::create_dir_all(&dir)?;
    let p = dir.join(format!("{name}-{}.json", unix_now()));
    std::fs::write(&p, serde_json::to_vec_pretty(v)?)?;
    println!("wrote {}", p.display());
    Ok(p)
}
