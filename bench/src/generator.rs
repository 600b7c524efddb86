//! One generator of [`crate::load`] (see there for the shape and why): a
//! single thread running one `mio` event loop over its connections and a
//! `timerfd`. The loop writes every request that is due, arms the timer for
//! the next due time (absolute, `CLOCK_MONOTONIC`, so there is no timer
//! slack and no millisecond rounding), and sleeps in `epoll_wait` until the
//! timer fires or a response arrives. Sending and reading share one thread,
//! one wake-up and no channel: per request one `write`, one `read`, and the
//! timer re-arm.

use common::cpu_policy::CpuPolicy;
use crate::http1::{job_id, parse_response, Parsed};
use crate::load::{due_ns, new_hist, share, total_requests, LoadResult, LoadSpec};
use anyhow::{anyhow, bail, Context, Result};
use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use rustix::time::{timerfd_create, timerfd_settime, ClockId, Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec};
use std::collections::{BTreeMap, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Barrier, OnceLock};
use std::time::Duration;

/// Where requests go.
struct Target {
    addr: SocketAddr,
    /// Everything of a request before the Content-Length value.
    head: Vec<u8>,
}

impl Target {
    fn new(spec: &LoadSpec) -> Result<Self> {
        let u = url::Url::parse(&spec.url)?;
        if u.scheme() != "http" {
            bail!("the generator speaks plain http only: {u}");
        }
        let host = u.host_str().ok_or_else(|| anyhow!("no host in {u}"))?.to_string();
        let port = u.port_or_known_default().unwrap_or(80);
        let authority = format!("{host}:{port}");
        let addr = authority.to_socket_addrs()?.next().ok_or_else(|| anyhow!("{authority} resolves to nothing"))?;
        let path = match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_string(),
        };
        let auth = spec.bearer.as_ref().map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
        let head = format!("POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\n{auth}Content-Length: ").into_bytes();
        Ok(Target { addr, head })
    }
}

/// Longest wait for the last answers after the last request was sent; what is still open then counts as `timeout`.
const DRAIN: Duration = Duration::from_secs(30);
/// Time between the last generator's connections being open and the first due time.
const LEAD: Duration = Duration::from_millis(50);
/// A due time closer than this is waited for by polling without blocking
/// rather than by arming the timer (a re-arm and a wake-up cost more).
const SPIN: u64 = 20_000;
/// Connections idle longer are closed rather than reused: well below the
/// API's keep-alive timeout (`BODY_TIMEOUT_MS`, 10 s by default).
const MAX_IDLE_NS: u64 = 5_000_000_000;

/// The width of the windows of [`LoadResult::windows`].
pub const WINDOW_NS: u64 = 100_000_000;
/// Windows kept (an hour of them).
const MAX_WINDOWS: usize = 36_000;
/// The token of the timer; connections use their slot index.
const TIMER: Token = Token(usize::MAX);

/// `CLOCK_MONOTONIC` in ns (the clock of the timerfd; vDSO, no syscall).
fn mono_ns() -> u64 {
    let t = rustix::time::clock_gettime(ClockId::Monotonic);
    u64::try_from(t.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(t.tv_nsec).unwrap_or(0)
}

fn us(ns: u64) -> u64 {
    ns / 1000
}

/// What one generator measured.
struct GenOut {
    sent: u64,
    ok: u64,
    errors: BTreeMap<String, u64>,
    latency: Histogram<u64>,
    lag: Histogram<u64>,
    delay: Histogram<u64>,
    conn_waits: u64,
    opened: u64,
    ids: Vec<String>,
    /// Monotonic ns of the last response.
    last: u64,
    /// Worst latency (µs) of the requests due in each [`WINDOW_NS`] after t0.
    windows: Vec<u64>,
    /// The thread could not take the nice value asked for.
    nice_refused: bool,
    /// The thread could not take the scheduling policy asked for.
    policy_refused: bool,
}

impl GenOut {
    fn new() -> Self {
        GenOut {
            sent: 0,
            ok: 0,
            errors: BTreeMap::new(),
            latency: new_hist(),
            lag: new_hist(),
            delay: new_hist(),
            conn_waits: 0,
            opened: 0,
            ids: Vec::new(),
            last: 0,
            windows: Vec::new(),
            nice_refused: false,
            policy_refused: false,
        }
    }

    fn error(&mut self, kind: &str) {
        self.add_errors(kind, 1);
    }

    fn add_errors(&mut self, kind: &str, n: u64) {
        if n > 0 {
            *self.errors.entry(kind.to_string()).or_insert(0) += n;
        }
    }

    fn merge(&mut self, o: GenOut) {
        self.sent += o.sent;
        self.ok += o.ok;
        for (k, v) in o.errors {
            self.add_errors(&k, v);
        }
        // Same bounds on every histogram, so adding cannot fail.
        let _ = self.latency.add(&o.latency);
        let _ = self.lag.add(&o.lag);
        let _ = self.delay.add(&o.delay);
        self.conn_waits += o.conn_waits;
        self.opened += o.opened;
        self.ids.extend(o.ids);
        self.last = self.last.max(o.last);
        self.nice_refused |= o.nice_refused;
        self.policy_refused |= o.policy_refused;
        if self.windows.len() < o.windows.len() {
            self.windows.resize(o.windows.len(), 0);
        }
        for (w, v) in self.windows.iter_mut().zip(o.windows) {
            *w = (*w).max(v);
        }
    }

    /// Records the latency of an answered request due at `due`.
    fn answered(&mut self, t0: u64, due: u64, latency_us: u64) {
        self.latency.saturating_record(latency_us);
        let w = usize::try_from(due.saturating_sub(t0) / WINDOW_NS).unwrap_or(usize::MAX);
        if w < MAX_WINDOWS {
            if self.windows.len() <= w {
                self.windows.resize(w + 1, 0);
            }
            self.windows[w] = self.windows[w].max(latency_us);
        }
    }
}

/// Settings every generator shares.
struct Plan {
    target: Target,
    spec: LoadSpec,
    /// Requests of the whole schedule, settling ones included.
    total: u64,
    /// The first `settle` requests (due in the first `spec.settle`) are reported apart, not measured.
    settle: u64,
    start: Barrier,
    /// The start time, monotonic ns; set between the two barrier waits.
    t0: OnceLock<u64>,
}

/// Runs one load on `spec.generators` generator threads; blocks until every answer is in (or timed out).
pub fn run_blocking(spec: LoadSpec) -> Result<LoadResult> {
    if !(spec.rate > 0.0 && spec.rate.is_finite()) {
        bail!("rate must be positive, not {}", spec.rate);
    }
    let n = spec.generators.max(1);
    let plan = Arc::new(Plan {
        target: Target::new(&spec)?,
        total: total_requests(spec.rate, spec.settle + spec.duration),
        settle: total_requests(spec.rate, spec.settle),
        start: Barrier::new(n + 1),
        t0: OnceLock::new(),
        spec,
    });
    let mut handles = Vec::with_capacity(n);
    for k in 0..n {
        let plan = plan.clone();
        handles.push(std::thread::Builder::new().name(format!("gen{k}")).spawn(move || generator(k, n, &plan)).context("spawn a generator")?);
    }
    // First wait: every generator has opened its connections.
    plan.start.wait();
    let t0 = mono_ns() + u64::try_from(LEAD.as_nanos()).unwrap_or(0);
    let _ = plan.t0.set(t0);
    plan.start.wait();
    let (mut all, mut warm) = (GenOut::new(), GenOut::new());
    for h in handles {
        match h.join() {
            Ok(Ok((w, o))) => {
                warm.merge(w);
                all.merge(o);
            }
            Ok(Err(e)) => return Err(e),
            Err(_) => bail!("a generator thread panicked"),
        }
    }
    let settle = plan.spec.settle;
    let start = t0 + u64::try_from(settle.as_nanos()).unwrap_or(0);
    let nice = if all.nice_refused || warm.nice_refused { 0 } else { plan.spec.nice };
    let policy = if all.policy_refused || warm.policy_refused { CpuPolicy::Normal } else { plan.spec.policy };
    let settled = (!settle.is_zero()).then(|| Box::new(warm.result(n, t0, settle, nice, policy, None)));
    Ok(all.result(n, start, plan.spec.duration, nice, policy, settled))
}

impl GenOut {
    /// The result of requests scheduled from `start` for `scheduled`.
    fn result(self, generators: usize, start: u64, scheduled: Duration, nice: i32, policy: CpuPolicy, settled: Option<Box<LoadResult>>) -> LoadResult {
        LoadResult {
            sent: self.sent,
            ok: self.ok,
            errors: self.errors,
            latency: self.latency,
            send_lag: self.lag,
            send_delay: self.delay,
            conn_waits: self.conn_waits,
            connections_opened: self.opened,
            generators,
            wall: Duration::from_nanos(self.last.saturating_sub(start)),
            scheduled,
            ids: self.ids,
            windows: self.windows,
            nice,
            policy,
            settled,
        }
    }
}

/// Generator `k` of `n`: opens its connections, waits for t0, then runs its share of the schedule.
/// Returns what the settling requests and the measured ones saw, in that order.
fn generator(k: usize, n: usize, plan: &Plan) -> Result<(GenOut, GenOut)> {
    let spec = &plan.spec;
    // The policy first: setting it also sets nice 0 (common::cpu_policy).
    let policy_refused = common::cpu_policy::apply_to_current_thread(spec.policy).is_err();
    let nice_refused = spec.nice != 0 && rustix::process::setpriority_process(Some(rustix::thread::gettid()), spec.nice).is_err();
    let cap = spec.max_connections.max(spec.connections).div_ceil(n).max(1);
    // Set up before the barrier either way: every thread must reach it, or the others wait forever.
    let mut g = Gen::new(plan, cap);
    if let Ok(g) = g.as_mut() {
        for _ in 0..spec.connections.div_ceil(n).max(1).min(cap) {
            match g.open() {
                Some(c) => g.idle.push(c),
                None => g.out.error("connect"),
            }
        }
    }
    plan.start.wait();
    plan.start.wait();
    let mut g = g.with_context(|| format!("generator {k}"))?;
    let t0 = *plan.t0.get().ok_or_else(|| anyhow!("start time not set"))?;
    g.run(t0, share(k, n, plan.total))?;
    g.out.nice_refused = nice_refused;
    g.out.policy_refused = policy_refused;
    Ok((g.warm, g.out))
}

/// One kept-alive connection.
struct Conn {
    stream: TcpStream,
    /// The request in flight: its index and due time (monotonic ns).
    req: Option<(u64, u64)>,
    /// Request bytes not written yet (a connect still in progress, or a full send buffer).
    pending: Vec<u8>,
    /// Response bytes received and not yet framed.
    buf: Vec<u8>,
    /// When it last went idle, monotonic ns.
    idle_since: u64,
}

/// The event loop of one generator.
struct Gen<'a> {
    plan: &'a Plan,
    poll: Poll,
    timer: OwnedFd,
    /// The start of the schedule, monotonic ns.
    t0: u64,
    /// The due time the timer is armed for.
    armed: Option<u64>,
    /// Connection slots (index = token); `None` when closed.
    conns: Vec<Option<Conn>>,
    /// Closed slots to reuse.
    free: Vec<usize>,
    /// Connections known idle (LIFO: the warmest first).
    idle: Vec<usize>,
    /// Open connections.
    alive: usize,
    cap: usize,
    /// Requests due while every connection was busy at the cap: (index, due).
    waiting: VecDeque<(u64, u64)>,
    /// Requests written and not answered.
    inflight: u64,
    /// When a wait for a free connection last ended (see [`own_lag`]).
    unblocked: Option<u64>,
    /// The index of the request dispatched last.
    last_dispatched: Option<u64>,
    /// What the settling requests saw.
    warm: GenOut,
    /// What the measured requests saw.
    out: GenOut,
    req: Vec<u8>,
}

impl<'a> Gen<'a> {
    fn new(plan: &'a Plan, cap: usize) -> Result<Self> {
        let poll = Poll::new().context("epoll")?;
        let timer = timerfd_create(TimerfdClockId::Monotonic, TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC).context("timerfd")?;
        poll.registry().register(&mut SourceFd(&timer.as_raw_fd()), TIMER, Interest::READABLE).context("register the timer")?;
        Ok(Gen {
            plan,
            t0: 0,
            poll,
            timer,
            armed: None,
            conns: Vec::new(),
            free: Vec::new(),
            idle: Vec::new(),
            alive: 0,
            cap,
            waiting: VecDeque::new(),
            inflight: 0,
            unblocked: None,
            last_dispatched: None,
            warm: GenOut::new(),
            out: GenOut::new(),
            req: Vec::with_capacity(1024),
        })
    }

    /// Sends the schedule, then waits up to [`DRAIN`] for the last answers.
    fn run(&mut self, t0: u64, schedule: impl Iterator<Item = u64>) -> Result<()> {
        self.t0 = t0;
        let rate = self.plan.spec.rate;
        let tick = u64::try_from(self.plan.spec.tick.as_nanos()).unwrap_or(0);
        let mut schedule = schedule.map(|i| (i, t0 + due_ns(i, rate))).peekable();
        let mut events = Events::with_capacity(1024);
        let mut drain_until: Option<u64> = None;
        loop {
            // Everything due now, first.
            let now = self.send_due(&mut schedule);
            let timeout = match schedule.peek().map(|&(_, due)| wake_at(t0, due, tick)) {
                Some(wake) if wake <= now + SPIN => Some(Duration::ZERO),
                Some(wake) => {
                    self.arm(wake)?;
                    // A safety net only: the timer wakes the loop at `wake`.
                    Some(Duration::from_nanos(wake - now) + Duration::from_millis(1))
                }
                None => {
                    if self.inflight == 0 && self.waiting.is_empty() {
                        break;
                    }
                    let end = *drain_until.get_or_insert(now + u64::try_from(DRAIN.as_nanos()).unwrap_or(u64::MAX));
                    if now >= end {
                        break;
                    }
                    Some(Duration::from_nanos(end - now).min(Duration::from_millis(10)))
                }
            };
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e).context("epoll_wait"),
            }
            for ev in events.iter() {
                let t = ev.token();
                if t == TIMER {
                    self.armed = None;
                    continue;
                }
                if ev.is_writable() || ev.is_error() {
                    self.flush(t.0);
                }
                if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                    self.read(t.0);
                }
                // Requests that fell due while responses were being read go out now, not after the whole batch.
                self.send_due(&mut schedule);
            }
        }
        let open = self.inflight + self.waiting.len() as u64;
        self.out.add_errors("timeout", open);
        Ok(())
    }

    /// Dispatches every request of `schedule` (index, due time) that is due; returns the time it stopped at.
    fn send_due(&mut self, schedule: &mut std::iter::Peekable<impl Iterator<Item = (u64, u64)>>) -> u64 {
        let mut now = mono_ns();
        while let Some(&(i, due)) = schedule.peek() {
            if due > now {
                break;
            }
            schedule.next();
            self.dispatch(i, due);
            now = mono_ns();
        }
        now
    }

    /// Arms the timer for `due` (absolute), unless it already is.
    fn arm(&mut self, due: u64) -> Result<()> {
        if self.armed == Some(due) {
            return Ok(());
        }
        let at = Timespec { tv_sec: i64::try_from(due / 1_000_000_000).unwrap_or(i64::MAX), tv_nsec: i64::try_from(due % 1_000_000_000).unwrap_or(0) };
        let spec = Itimerspec { it_interval: Timespec { tv_sec: 0, tv_nsec: 0 }, it_value: at };
        // Re-arming resets the expiration count, so an edge-triggered wake-up follows every expiry without reading the fd.
        timerfd_settime(&self.timer, TimerfdTimerFlags::ABSTIME, &spec).context("timerfd_settime")?;
        self.armed = Some(due);
        Ok(())
    }

    /// Opens a connection (non-blocking connect) and registers it; `None` when that fails (the caller counts it).
    fn open(&mut self) -> Option<usize> {
        let mut stream = TcpStream::connect(self.plan.target.addr).ok()?;
        let _ = stream.set_nodelay(true);
        let idx = self.free.pop().unwrap_or(self.conns.len());
        self.poll.registry().register(&mut stream, Token(idx), Interest::READABLE | Interest::WRITABLE).ok()?;
        let conn = Conn { stream, req: None, pending: Vec::new(), buf: Vec::with_capacity(1024), idle_since: mono_ns() };
        if idx == self.conns.len() {
            self.conns.push(Some(conn));
        } else {
            self.conns[idx] = Some(conn);
        }
        self.alive += 1;
        // Pre-opened connections and those opened while settling count as the settling time's.
        let settling = self.plan.settle > 0 && self.last_dispatched.is_none_or(|i| i < self.plan.settle);
        if settling { self.warm.opened += 1 } else { self.out.opened += 1 }
        Some(idx)
    }

    /// An idle connection, else a new one below the cap, else `None` (all busy at the cap).
    fn take(&mut self) -> Option<usize> {
        let now = mono_ns();
        while let Some(c) = self.idle.pop() {
            let Some(Some(conn)) = self.conns.get(c) else { continue };
            if now.saturating_sub(conn.idle_since) < MAX_IDLE_NS {
                return Some(c);
            }
            // The server may be closing it right now (its idle timeout): a request written
            // then would be lost with the connection. Retire it, as HTTP client pools do.
            self.close(c);
        }
        if self.alive < self.cap {
            return self.open();
        }
        None
    }

    /// Sends request `i` (due at `due`) on a free connection, or queues it when every connection is busy at the cap.
    fn dispatch(&mut self, i: u64, due: u64) {
        self.last_dispatched = Some(i);
        self.bucket(i).sent += 1;
        if self.waiting.is_empty() {
            if let Some(c) = self.take() {
                self.send(c, i, due);
                return;
            }
            if self.alive < self.cap {
                // The connect failed: the request is lost with it.
                self.bucket(i).error("connect");
                return;
            }
        }
        self.bucket(i).conn_waits += 1;
        self.waiting.push_back((i, due));
    }

    /// Where request `i` is accounted: settling or measured.
    fn bucket(&mut self, i: u64) -> &mut GenOut {
        if i < self.plan.settle {
            &mut self.warm
        } else {
            &mut self.out
        }
    }

    /// Writes request `i` on connection `c`.
    fn send(&mut self, c: usize, i: u64, due: u64) {
        let body = (self.plan.spec.body)(i);
        self.req.clear();
        self.req.extend_from_slice(&self.plan.target.head);
        // Writing into a Vec cannot fail.
        let _ = write!(self.req, "{}\r\n\r\n", body.len());
        self.req.extend_from_slice(body.as_bytes());
        let Some(Some(conn)) = self.conns.get_mut(c) else { return };
        conn.req = Some((i, due));
        self.inflight += 1;
        match write_some(&mut conn.stream, &self.req) {
            Ok(n) if n == self.req.len() => self.written(i, due),
            Ok(n) => conn.pending.extend_from_slice(&self.req[n..]),
            Err(_) => self.close(c),
        }
    }

    /// Accounts for a request whose last byte just went to the kernel.
    fn written(&mut self, i: u64, due: u64) {
        let now = mono_ns();
        let unblocked = self.unblocked;
        let o = self.bucket(i);
        o.delay.saturating_record(us(now.saturating_sub(due)));
        o.lag.saturating_record(us(own_lag(now, due, unblocked)));
    }

    /// Writes what is pending on `c` (its connect finished, or its send buffer drained).
    fn flush(&mut self, c: usize) {
        let Some(Some(conn)) = self.conns.get_mut(c) else { return };
        if conn.pending.is_empty() {
            return;
        }
        if let Ok(Some(_)) | Err(_) = conn.stream.take_error() {
            self.close(c);
            return;
        }
        match write_some(&mut conn.stream, &conn.pending) {
            Ok(n) => {
                conn.pending.drain(..n);
                if let (true, Some((i, due))) = (conn.pending.is_empty(), conn.req) {
                    self.written(i, due);
                }
            }
            Err(_) => self.close(c),
        }
    }

    /// Reads what `c` received and accounts for every whole response in it.
    fn read(&mut self, c: usize) {
        let mut chunk = [0u8; 4096];
        let mut eof = false;
        {
            let Some(Some(conn)) = self.conns.get_mut(c) else { return };
            loop {
                match conn.stream.read(&mut chunk) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(m) => {
                        conn.buf.extend_from_slice(&chunk[..m]);
                        // Edge-triggered epoll on Linux signals every arrival of data, so a short read means drained for now.
                        if m < chunk.len() {
                            break;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => {
                        eof = true;
                        break;
                    }
                }
            }
        }
        loop {
            let Some(Some(conn)) = self.conns.get_mut(c) else { return };
            let r = match parse_response(&conn.buf) {
                Parsed::Incomplete => break,
                Parsed::Bad => {
                    if let Some((i, _)) = conn.req.take() {
                        self.inflight -= 1;
                        self.bucket(i).error("bad response");
                    }
                    self.close(c);
                    return;
                }
                Parsed::Done(r) => r,
            };
            let now = mono_ns();
            let req = conn.req.take();
            if let Some((i, due)) = req {
                self.inflight -= 1;
                let o = if i < self.plan.settle { &mut self.warm } else { &mut self.out };
                o.last = o.last.max(now);
                if (200..300).contains(&r.status) {
                    o.ok += 1;
                    o.answered(self.t0, due, us(now.saturating_sub(due)));
                    if self.plan.spec.collect_ids {
                        if let Some(id) = job_id(&conn.buf[r.body_start..r.len]) {
                            o.ids.push(id);
                        }
                    }
                } else {
                    o.error(&format!("status {}", r.status));
                }
            } else {
                // An answer to nothing this client asked (a server's error before closing, say).
                self.out.error(&format!("unsolicited {}", r.status));
            }
            conn.buf.drain(..r.len);
            if r.close {
                self.close(c);
                return;
            }
            self.free_conn(c, now);
        }
        if eof {
            self.close(c);
        }
    }

    /// `c` answered and is free: it takes the oldest waiting request, else goes idle.
    fn free_conn(&mut self, c: usize, now: u64) {
        match self.waiting.pop_front() {
            Some((i, due)) => {
                self.unblocked = Some(now);
                self.send(c, i, due);
            }
            None => {
                if let Some(Some(conn)) = self.conns.get_mut(c) {
                    conn.idle_since = now;
                }
                self.idle.push(c)
            }
        }
    }

    /// Closes `c`; a request still in flight on it is lost (`transport`).
    fn close(&mut self, c: usize) {
        let Some(slot) = self.conns.get_mut(c) else { return };
        let Some(mut conn) = slot.take() else { return };
        let _ = self.poll.registry().deregister(&mut conn.stream);
        if let Some((i, _)) = conn.req {
            self.inflight -= 1;
            self.bucket(i).error("transport");
        }
        self.alive -= 1;
        self.free.push(c);
        // Requests waiting for a connection get a new one now that the count is below the cap.
        while !self.waiting.is_empty() && self.alive < self.cap {
            let Some(n) = self.open() else {
                if let Some((i, _)) = self.waiting.pop_front() {
                    self.bucket(i).error("connect");
                }
                continue;
            };
            let Some((i, due)) = self.waiting.pop_front() else { break };
            self.unblocked = Some(mono_ns());
            self.send(n, i, due);
        }
    }
}

/// When the loop wakes for a request due at `due`: at `due` itself, or with a
/// `tick`, at the next multiple of `tick` after t0 (requests due in between go
/// out together; the wait is part of their lag and latency).
pub fn wake_at(t0: u64, due: u64, tick: u64) -> u64 {
    if tick == 0 {
        return due;
    }
    t0 + (due - t0).div_ceil(tick) * tick
}

/// Writes as much of `buf` as the socket takes now; `Ok(0)` while a connect is still in progress.
fn write_some(s: &mut TcpStream, buf: &[u8]) -> std::io::Result<usize> {
    loop {
        match s.write(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::NotConnected => return Ok(0),
            Err(e) => return Err(e),
        }
    }
}

/// The generator's own lateness for a request written at `written`: from its
/// due time, or from the end of the last wait for a free connection when that
/// came later (before it, no connection was free: the API's doing, not the
/// generator's). A request due during such a wait and sent right after it has
/// lag ≈ 0; requests that then queue behind it, sent back to back, carry the
/// generator's catch-up time. All times in monotonic ns.
pub fn own_lag(written: u64, due: u64, unblocked: Option<u64>) -> u64 {
    let ready = unblocked.map_or(due, |u| u.max(due));
    written.saturating_sub(ready)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_a_free_connection_are_not_the_generators_lag() {
        let t = 1_000_000_000u64;
        let ms = |n: u64| n * 1_000_000;
        // No wait: lag runs from the due time.
        assert_eq!(own_lag(t + ms(3), t + ms(1), None), ms(2));
        // Due at 1 ms, no connection free until 50 ms, written at 50.2 ms: 0.2 ms is the generator's.
        assert_eq!(own_lag(t + 50_200_000, t + ms(1), Some(t + ms(50))), 200_000);
        // A wait that ended before the due time changes nothing.
        assert_eq!(own_lag(t + ms(12), t + ms(10), Some(t + ms(5))), ms(2));
        // Written early (cannot happen, but must not underflow).
        assert_eq!(own_lag(t, t + ms(1), None), 0);
    }

    #[test]
    fn a_tick_wakes_at_the_next_multiple_never_before_the_due_time() {
        let t0 = 5_000;
        assert_eq!(wake_at(t0, t0 + 123, 0), t0 + 123);
        assert_eq!(wake_at(t0, t0, 250), t0);
        assert_eq!(wake_at(t0, t0 + 1, 250), t0 + 250);
        assert_eq!(wake_at(t0, t0 + 250, 250), t0 + 250);
        assert_eq!(wake_at(t0, t0 + 251, 250), t0 + 500);
    }

    #[test]
    fn the_clock_is_the_timers_and_moves_forward() {
        let a = mono_ns();
        std::thread::sleep(Duration::from_millis(2));
        let b = mono_ns();
        assert!(b >= a + 2_000_000, "{a} → {b}");
    }
}
