//! What the kernel says about the processes under test: CPU time (from
//! `/proc/<pid>/stat`), resident and peak memory (`VmRSS`/`VmHWM` from
//! `/proc/<pid>/status`), whole-machine busy time (`/proc/stat`) and the load
//! average. The benches share a 2-core machine with compilers and other
//! tests, so every figure is printed next to how busy the machine was.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Instant;

/// Clock ticks per second for `/proc/<pid>/stat` (from `getconf CLK_TCK`; 100 on Linux in practice).
pub fn clk_tck() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime + stime of a process, in clock ticks.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after its ')' are fixed.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14, stime field 15.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// cutime + cstime of this process: the CPU of its children that have been
/// waited for, in clock ticks. A child that exits inside a window (wrk,
/// redis-benchmark) has no `/proc/<pid>` left to read at the window's end;
/// once reaped, its CPU shows up here.
pub fn reaped_children_ticks() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // cutime is field 16, cstime field 17.
    Some(f.get(13)?.parse::<u64>().ok()? + f.get(14)?.parse::<u64>().ok()?)
}

fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok())
}

/// Resident set size, KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:")
}

/// Peak resident set size (high-water mark), KiB.
pub fn hwm_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM:")
}

/// The 1-minute load average and the whole `/proc/loadavg` line.
pub fn loadavg() -> (f64, String) {
    let s = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    (s.split_whitespace().next().and_then(|v| v.parse().ok()).unwrap_or(0.0), s.trim().to_string())
}

/// (busy, total) jiffies of the whole machine.
fn machine_jiffies() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = s.lines().next() else { return (0, 0) };
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    let total: u64 = v.iter().take(8).sum();
    // idle + iowait are not busy.
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total.saturating_sub(idle), total)
}

/// Number of online CPUs.
pub fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// CPU use of named processes and of the whole machine between two points in time.
pub struct CpuWindow {
    tck: f64,
    start: Instant,
    machine: (u64, u64),
    procs: Vec<(String, u32, u64)>,
    /// A child process that is reaped before the window ends: its name and the reaped-children ticks at the start.
    child: Option<(String, u64)>,
}

impl CpuWindow {
    /// Starts a window over `procs` (name, pid).
    pub fn start(procs: &[(String, u32)]) -> Self {
        CpuWindow {
            tck: clk_tck(),
            start: Instant::now(),
            machine: machine_jiffies(),
            procs: procs.iter().map(|(n, p)| (n.clone(), *p, cpu_ticks(*p).unwrap_or(0))).collect(),
            child: None,
        }
    }

    /// Also counts, as `name`, the CPU of one child of this process that
    /// will have been waited for (reaped) when the window finishes; no other
    /// child may be reaped inside the window.
    pub fn with_reaped_child(mut self, name: &str) -> Self {
        self.child = Some((name.to_string(), reaped_children_ticks().unwrap_or(0)));
        self
    }

    /// CPU % per process (100 = one core) and the machine's busy % (100 = all cores), since `start`.
    pub fn finish(&self) -> CpuUse {
        let secs = self.start.elapsed().as_secs_f64().max(1e-3);
        let mut per = BTreeMap::new();
        for (name, pid, t0) in &self.procs {
            let t1 = cpu_ticks(*pid).unwrap_or(*t0);
            *per.entry(name.clone()).or_insert(0.0) += (t1.saturating_sub(*t0)) as f64 / self.tck / secs * 100.0;
        }
        if let Some((name, c0)) = &self.child {
            let c1 = reaped_children_ticks().unwrap_or(*c0);
            per.insert(name.clone(), c1.saturating_sub(*c0) as f64 / self.tck / secs * 100.0);
        }
        let (b1, t1) = machine_jiffies();
        let (b0, t0) = self.machine;
        let machine = if t1 > t0 { (b1 - b0) as f64 / (t1 - t0) as f64 * 100.0 } else { 0.0 };
        CpuUse { per, machine }
    }
}

/// Result of a [`CpuWindow`].
#[derive(Debug, Clone, Default)]
pub struct CpuUse {
    /// Process name → % of one core.
    pub per: BTreeMap<String, f64>,
    /// Whole machine busy, % of all cores.
    pub machine: f64,
}

impl CpuUse {
    /// `api 120% redis 60% …` for tables.
    pub fn short(&self) -> String {
        let mut s: Vec<String> = self.per.iter().map(|(k, v)| format!("{k} {v:.0}%")).collect();
        s.push(format!("machine {:.0}%", self.machine));
        s.join(" ")
    }

    /// JSON form.
    pub fn json(&self) -> Value {
        json!({"process_pct_of_one_core": self.per, "machine_busy_pct_of_all_cores": self.machine})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_visible() {
        let me = std::process::id();
        assert!(cpu_ticks(me).is_some());
        assert!(reaped_children_ticks().is_some());
        assert!(rss_kib(me).unwrap_or(0) > 0);
        // VmHWM is updated lazily by the kernel and can read a little under VmRSS.
        assert!(hwm_kib(me).unwrap_or(0) > 0);
        assert!(cores() >= 1);
    }
}
