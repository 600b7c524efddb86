//! The open-loop load generator. Request `i` is due at `t0 + i / rate`
//! whatever happened to earlier ones, and its latency is measured from that
//! due time, not from when it actually left: when the API falls behind, the
//! wait shows up in the percentiles instead of silently lowering the offered
//! rate (coordinated omission). The generator's own lateness is measured too:
//! `lag` = the moment request `i`'s bytes were handed to the kernel − its due
//! time, or − the end of its wait for a free connection when every connection
//! was busy at the cap (that wait is the API's doing; it is counted in
//! `conn_waits`, kept in `send_delay`, and is part of the latency, which runs
//! from the due time regardless). A figure is only about the API when the lag
//! is small (see [`crate::verdict`]).
//!
//! Shape, chosen for a 2-core machine that also runs the API and Redis
//! (every µs the generator spends is taken from them):
//!
//! - `generators` independent generators (default: one per core). Generator
//!   `k` of `n` owns requests `k, k + n, k + 2n, …` (an interleaved share of
//!   one global schedule), so together they offer exactly `rate` and none
//!   waits for another.
//! - Each generator is **one thread running one event loop** (`mio` over
//!   epoll) over its connections and a `timerfd` armed at an absolute
//!   `CLOCK_MONOTONIC` time (no timer slack, no millisecond rounding as in
//!   tokio's timer wheel or `epoll_wait`'s timeout). Sending and reading share
//!   the thread: no channel, no cross-thread wake-up; per request one `write`,
//!   one `read`. An earlier design (a sleeping dispatcher thread plus a tokio
//!   reader thread per generator) spent the same CPU in the kernel but woke
//!   twice as many threads, and its lag p99 sat at 1.1–2.4 ms.
//! - A **tick** (`tick`, the bench's `--tick-us`, 250 µs by default): a loop
//!   with nothing to read sleeps until the next multiple of the tick and then
//!   writes every request due by then; requests that fall due while it is
//!   awake reading responses go out at once. wrk2 schedules on its event
//!   loop's millisecond timers; this is a quarter of that. The wait is part
//!   of each request's lag and of its latency (both run from the due time).
//! - **Priority** (`nice`, the bench's `--generator-nice`, −10 by default):
//!   real clients run on other machines and take no CPU from the server; here
//!   the generator shares two cores with the API and Redis, and a generator
//!   thread that waits for a core is late (lag) and reads answers late
//!   (latency) for reasons that are not the API's. A raised priority keeps
//!   that small (it takes only the ~20 µs per request the generator needs).
//!   Without CAP_SYS_NICE the threads keep their priority and the result says so.
//! - **Scheduling policy** (`policy`, `--generator-policy`, `batch` by
//!   default; [`common::cpu_policy`]): a response written by the API wakes a
//!   generator thread, and under the default policy that wake-up may preempt
//!   the API (or Redis) on the spot. A client on another machine never does.
//!   Under `SCHED_BATCH` the generator runs at the next scheduling point.
//! - **Settling** (`settle`, `--settle-seconds`, 5 s by default): the schedule
//!   starts that long before the measured window, at the full rate, without a
//!   gap: the connections grow to what the rate needs (from cold, a jump to
//!   15,000/s opens ~1,000 connections in the first 200 ms) and the API and
//!   Redis reach their steady state. Those requests are reported apart.
//! - Raw HTTP/1.1 over non-blocking sockets: the request head is formatted
//!   once, each request is one `write` of head + `Content-Length` + body; the
//!   response parser reads the status, `Content-Length` and `Connection:
//!   close` and nothing else. No client library, pool lock or URL parse per request.
//! - Connections: `connections` are opened before the first due time; when
//!   none is idle the generator opens another (non-blocking connect, up to
//!   `max_connections`), so a slow API costs latency, not offered rate. Only
//!   at the cap does a request wait for a connection; that wait is counted
//!   (`conn_waits`) and shows in the latency of every request it delayed.
//!   Connections idle for 5 s are retired rather than reused, before the
//!   API's keep-alive timeout could close one under a request being written.
//!
//! Per-generator histograms are merged at the end; nothing is shared between
//! generators but the start time.

use common::cpu_policy::CpuPolicy;
use anyhow::Result;
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Builds request body `i`.
pub type BodyFn = Arc<dyn Fn(u64) -> String + Send + Sync>;

/// One open-loop run.
#[derive(Clone)]
pub struct LoadSpec {
    /// Full URL to POST to (plain `http://`).
    pub url: String,
    /// Requests per second.
    pub rate: f64,
    /// How long requests are scheduled for and measured, after `settle`.
    pub duration: Duration,
    /// Time at the full rate before the measured `duration`, on the same
    /// schedule without a gap: connections grow to what the rate needs and
    /// the API reaches its steady state. Reported apart ([`LoadResult::settled`]).
    pub settle: Duration,
    /// The generators' timer tick: each wakes at multiples of it after t0 and
    /// writes every request due by then (ZERO: at each request's own due time).
    pub tick: Duration,
    /// CPU scheduling policy of the generator threads, set before `nice`
    /// (see [`common::cpu_policy`]): with `Batch`, a response waking a
    /// generator never preempts the API or Redis, as an answer reaching a
    /// client on another machine would not; [`LoadResult::policy`] says what ran.
    pub policy: CpuPolicy,
    /// Nice value of the generator threads (0: as inherited). Below 0 needs
    /// CAP_SYS_NICE; without it the threads keep their priority and
    /// [`LoadResult::nice`] says so.
    pub nice: i32,
    /// Keep-alive connections opened before the first request (all generators together).
    pub connections: usize,
    /// Most connections open at once (all generators together); more are opened only when none is idle.
    pub max_connections: usize,
    /// Generators (each one thread running one event loop).
    pub generators: usize,
    /// `Authorization: Bearer` value.
    pub bearer: Option<String>,
    /// Keep the `id` field of every accepted response.
    pub collect_ids: bool,
    /// Request bodies.
    pub body: BodyFn,
}

impl LoadSpec {
    /// A run with the bench's submission bodies, 32 pre-opened connections (at most 1024) and one generator per core.
    pub fn new(url: String, rate: f64, duration: Duration) -> Self {
        LoadSpec {
            url,
            rate,
            duration,
            settle: Duration::ZERO,
            tick: Duration::ZERO,
            policy: CpuPolicy::Normal,
            nice: 0,
            connections: 32,
            max_connections: 1024,
            generators: default_generators(),
            bearer: None,
            collect_ids: false,
            body: Arc::new(crate::submit::body),
        }
    }
}

/// One generator per core.
pub fn default_generators() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// What a run measured.
pub struct LoadResult {
    /// Requests scheduled.
    pub sent: u64,
    /// 2xx answers.
    pub ok: u64,
    /// Failures by kind (`status 503`, `transport`, `timeout`, `connect`, …).
    pub errors: BTreeMap<String, u64>,
    /// Latency from due time to the full response, µs (2xx only).
    pub latency: Histogram<u64>,
    /// The generator's own lag, µs: from the due time (or, when the request had to
    /// wait for a free connection at the cap, from the end of that wait) to the
    /// moment the request was written. What the verdict looks at.
    pub send_lag: Histogram<u64>,
    /// From the due time to the moment the request was written, µs, waits for a
    /// free connection included (those are the API's doing: every connection busy).
    pub send_delay: Histogram<u64>,
    /// Requests that found every connection busy at `max_connections` and waited for one.
    pub conn_waits: u64,
    /// Connections opened (pre-opened ones included).
    pub connections_opened: u64,
    /// Generators that ran.
    pub generators: usize,
    /// From t0 to the last response.
    pub wall: Duration,
    /// The scheduled duration.
    pub scheduled: Duration,
    /// Accepted job ids, when asked for.
    pub ids: Vec<String>,
    /// Worst latency (µs) of the 2xx answers to requests due in each 100 ms
    /// after the start of the schedule (settling time included): where the tail came from.
    pub windows: Vec<u64>,
    /// The nice value the generator threads ran at.
    pub nice: i32,
    /// The scheduling policy the generator threads ran under.
    pub policy: CpuPolicy,
    /// What the requests of the settling time saw (none when `settle` was 0).
    pub settled: Option<Box<LoadResult>>,
}

impl LoadResult {
    /// Total failures.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Accepted requests per second over the scheduled duration (or the wall time, when longer).
    pub fn achieved_rate(&self) -> f64 {
        self.ok as f64 / self.wall.as_secs_f64().max(self.scheduled.as_secs_f64()).max(1e-3)
    }

    /// Latency quantile in ms.
    pub fn ms(&self, q: f64) -> f64 {
        pct_ms(&self.latency, q)
    }

    /// Generator lag quantile in ms.
    pub fn lag_ms(&self, q: f64) -> f64 {
        pct_ms(&self.send_lag, q)
    }

    /// Send delay quantile in ms (lag plus waits for a free connection).
    pub fn delay_ms(&self, q: f64) -> f64 {
        pct_ms(&self.send_delay, q)
    }

    /// The `n` windows with the worst latency as `at 12.3 s: 84.1 ms` (seconds after the measured start), worst first.
    pub fn worst_windows(&self, n: usize) -> Vec<String> {
        let settle = self.settled.as_ref().map_or(0.0, |w| w.scheduled.as_secs_f64());
        let mut w: Vec<(usize, u64)> = self.windows.iter().copied().enumerate().collect();
        w.sort_by_key(|&(_, v)| std::cmp::Reverse(v));
        w.into_iter()
            .filter(|&(_, v)| v > 0)
            .take(n)
            .map(|(i, v)| format!("at {:.1} s: {:.1} ms", i as f64 * 0.1 - settle, v as f64 / 1000.0))
            .collect()
    }

    /// `errors 0` or `errors 12 (status 503 10, transport 2)`.
    pub fn errors_short(&self) -> String {
        if self.errors.is_empty() {
            return "errors 0".into();
        }
        let by: Vec<String> = self.errors.iter().map(|(k, v)| format!("{k} {v}")).collect();
        format!("errors {} ({})", self.error_count(), by.join(", "))
    }
}

/// Quantile of a µs histogram, in ms (NaN when empty).
pub fn pct_ms(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        return f64::NAN;
    }
    h.value_at_quantile(q) as f64 / 1000.0
}

/// A µs histogram from 1 µs to 10 min, 3 significant digits.
pub fn new_hist() -> Histogram<u64> {
    // Bounds are constants that satisfy new_with_bounds' preconditions (low ≥ 1, high ≥ 2·low, sigfig ≤ 5).
    #[allow(clippy::unwrap_used)]
    Histogram::new_with_bounds(1, 600_000_000, 3).unwrap()
}

// ---- the schedule (pure) ----

/// Requests in a run of `rate`/s for `duration`.
pub fn total_requests(rate: f64, duration: Duration) -> u64 {
    (rate * duration.as_secs_f64()).round().max(0.0) as u64
}

/// Due time of request `i`, ns after t0.
pub fn due_ns(i: u64, rate: f64) -> u64 {
    (i as f64 * 1e9 / rate) as u64
}

/// The requests generator `k` of `n` sends: `k, k + n, …` below `total`.
pub fn share(k: usize, n: usize, total: u64) -> impl Iterator<Item = u64> {
    (k as u64..total).step_by(n.max(1))
}

/// Runs one open-loop load on its own threads; the async caller's runtime only waits for it.
pub async fn run(spec: &LoadSpec) -> Result<LoadResult> {
    let spec = spec.clone();
    tokio::task::spawn_blocking(move || crate::generator::run_blocking(spec)).await?
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_is_one_global_sequence_split_between_generators() {
        assert_eq!(total_requests(15_000.0, Duration::from_secs(30)), 450_000);
        assert_eq!(total_requests(2000.0, Duration::from_millis(1500)), 3000);
        assert_eq!(due_ns(0, 1000.0), 0);
        assert_eq!(due_ns(3, 1000.0), 3_000_000);
        assert_eq!(due_ns(15_000, 15_000.0), 1_000_000_000);
        // Every request belongs to exactly one generator, each generator's share is evenly spaced.
        let (n, total) = (3, 100);
        let mut all: Vec<u64> = (0..n).flat_map(|k| share(k, n, total)).collect();
        all.sort_unstable();
        assert_eq!(all, (0..total).collect::<Vec<_>>());
        assert_eq!(share(1, 3, 10).collect::<Vec<_>>(), vec![1, 4, 7]);
        assert_eq!(share(0, 1, 3).collect::<Vec<_>>(), vec![0, 1, 2]);
        // n generators at rate r: each sends every n/r seconds.
        let g: Vec<u64> = share(1, 2, 8).map(|i| due_ns(i, 1000.0)).collect();
        assert_eq!(g, vec![1_000_000, 3_000_000, 5_000_000, 7_000_000]);
    }

    #[test]
    fn percentiles_come_from_the_histogram_in_ms() {
        let mut h = new_hist();
        for us in 1..=1000u64 {
            h.record(us * 10).expect("in range");
        }
        assert!((pct_ms(&h, 0.5) - 5.0).abs() < 0.01, "{}", pct_ms(&h, 0.5));
        assert!((pct_ms(&h, 0.99) - 9.9).abs() < 0.01, "{}", pct_ms(&h, 0.99));
        assert!((pct_ms(&h, 1.0) - 10.0).abs() < 0.01);
        assert!(pct_ms(&new_hist(), 0.99).is_nan());
    }
}
