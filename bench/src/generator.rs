//! The threads of one generator (see [`crate::load`] for the shape and
//! why): the dispatcher, which sleeps until each due time and writes the
//! request itself on an idle connection, and the reader, a current-thread
//! runtime with one task per connection. The two share per-connection slots
//! (due time of the request in flight, busy and dead flags) and talk over
//! two channels: new connections one way, idle or dead ones back.

use crate::http1::{job_id, parse_response, Parsed};
use crate::load::{due_ns, new_hist, share, total_requests, LoadResult, LoadSpec};
use anyhow::{anyhow, bail, Context, Result};
use hdrhistogram::Histogram;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::{ErrorKind, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Barrier, OnceLock};
use std::time::{Duration, Instant};

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

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
/// Time between spawning the generators and the first due time (after every connection is open).
const LEAD: Duration = Duration::from_millis(50);

/// One connection as both threads see it.
struct Slot {
    /// Due time of the request in flight, ns after t0.
    due_ns: AtomicU64,
    /// A request is in flight; whoever clears it accounts for that request.
    busy: AtomicBool,
    /// The reader saw EOF or an error; never write to it again.
    dead: AtomicBool,
}

/// Reader → dispatcher.
enum Back {
    Idle(usize),
    Dead(usize),
}

/// Dispatcher → reader: a new connection to read from.
struct NewConn {
    idx: usize,
    stream: TcpStream,
    slot: Arc<Slot>,
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
    last: Option<Instant>,
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
            last: None,
        }
    }

    fn error(&mut self, kind: &str) {
        *self.errors.entry(kind.to_string()).or_insert(0) += 1;
    }

    fn merge(&mut self, o: GenOut) {
        self.sent += o.sent;
        self.ok += o.ok;
        for (k, v) in o.errors {
            *self.errors.entry(k).or_insert(0) += v;
        }
        // Same bounds on every histogram, so adding cannot fail.
        let _ = self.latency.add(&o.latency);
        let _ = self.lag.add(&o.lag);
        let _ = self.delay.add(&o.delay);
        self.conn_waits += o.conn_waits;
        self.opened += o.opened;
        self.ids.extend(o.ids);
        self.last = self.last.max(o.last);
    }
}

/// Settings every generator shares.
struct Plan {
    target: Target,
    spec: LoadSpec,
    total: u64,
    start: Barrier,
    t0: OnceLock<Instant>,
}

impl Plan {
    /// The start time; set by `run_blocking` before any request is written, so any response finds it.
    fn t0(&self) -> Option<Instant> {
        self.t0.get().copied()
    }
}

/// Runs one load on `spec.generators` generator threads; blocks until every answer is in (or timed out).
pub fn run_blocking(spec: LoadSpec) -> Result<LoadResult> {
    if !(spec.rate > 0.0 && spec.rate.is_finite()) {
        bail!("rate must be positive, not {}", spec.rate);
    }
    let n = spec.generators.max(1);
    let plan = Arc::new(Plan {
        target: Target::new(&spec)?,
        total: total_requests(spec.rate, spec.duration),
        start: Barrier::new(n + 1),
        t0: OnceLock::new(),
        spec,
    });
    let mut handles = Vec::with_capacity(n);
    for k in 0..n {
        let plan = plan.clone();
        handles.push(std::thread::Builder::new().name(format!("gen{k}")).spawn(move || generator(k, n, plan)).context("spawn a generator")?);
    }
    // First wait: every generator has opened its connections.
    plan.start.wait();
    let t0 = Instant::now() + LEAD;
    let _ = plan.t0.set(t0);
    plan.start.wait();
    let mut all = GenOut::new();
    for h in handles {
        match h.join() {
            Ok(Ok(o)) => all.merge(o),
            Ok(Err(e)) => return Err(e),
            Err(_) => bail!("a generator thread panicked"),
        }
    }
    Ok(LoadResult {
        sent: all.sent,
        ok: all.ok,
        errors: all.errors,
        latency: all.latency,
        send_lag: all.lag,
        send_delay: all.delay,
        conn_waits: all.conn_waits,
        connections_opened: all.opened,
        generators: n,
        wall: all.last.map(|l| l.saturating_duration_since(t0)).unwrap_or_default(),
        scheduled: plan.spec.duration,
        ids: all.ids,
    })
}

/// Generator `k` of `n`: starts its reader, pre-opens its connections,
/// waits for t0, then dispatches its share of the schedule.
fn generator(k: usize, n: usize, plan: Arc<Plan>) -> Result<GenOut> {
    let spec = &plan.spec;
    let (new_tx, new_rx) = tokio::sync::mpsc::unbounded_channel::<NewConn>();
    let (back_tx, back_rx) = mpsc::channel::<Back>();
    let inflight = Arc::new(AtomicU64::new(0));
    let reader = {
        let (plan, inflight) = (plan.clone(), inflight.clone());
        std::thread::Builder::new().name(format!("gen{k}-read")).spawn(move || reader(new_rx, back_tx, inflight, plan))
    };
    let reader = match reader {
        Ok(r) => r,
        Err(e) => {
            // The other threads wait at the start barrier for this one.
            plan.start.wait();
            plan.start.wait();
            return Err(e).context("spawn a reader");
        }
    };
    let cap = spec.max_connections.max(spec.connections).div_ceil(n).max(1);
    let mut d = Dispatcher { target: &plan.target, conns: Vec::new(), idle: Vec::new(), alive: 0, cap, new_tx, back_rx, inflight, unblocked: None, out: GenOut::new(), buf: Vec::with_capacity(1024) };
    for _ in 0..spec.connections.div_ceil(n).max(1).min(cap) {
        if let Ok(idx) = d.open() {
            d.idle.push(idx);
        }
    }
    plan.start.wait();
    plan.start.wait();
    let Some(t0) = plan.t0() else { bail!("start time not set") };
    for i in share(k, n, plan.total) {
        let due_off = due_ns(i, spec.rate);
        let due = t0 + Duration::from_nanos(due_off);
        // Formatted before the sleep, so the lag is only the wake-up and the write.
        d.prepare(i, spec);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        d.send(due, due_off);
        d.out.sent += 1;
    }
    let Dispatcher { new_tx, mut out, .. } = d;
    // Closing the channel tells the reader to wait for the last answers and stop.
    drop(new_tx);
    let read = reader.join().map_err(|_| anyhow!("a reader thread panicked"))?;
    out.merge(read);
    Ok(out)
}

/// The write side of one connection, owned by the dispatcher.
struct WriteSide {
    stream: Option<TcpStream>,
    slot: Arc<Slot>,
}

/// The sending thread of one generator.
struct Dispatcher<'a> {
    target: &'a Target,
    conns: Vec<WriteSide>,
    /// Connections known idle (LIFO: the warmest first).
    idle: Vec<usize>,
    /// Connections open and not known dead.
    alive: usize,
    cap: usize,
    new_tx: tokio::sync::mpsc::UnboundedSender<NewConn>,
    back_rx: mpsc::Receiver<Back>,
    inflight: Arc<AtomicU64>,
    /// When the last wait for a free connection (at the cap) ended: the
    /// generator cannot be late for a request before it had a connection to send it on.
    unblocked: Option<Instant>,
    out: GenOut,
    buf: Vec<u8>,
}

impl Dispatcher<'_> {
    /// Opens one connection and hands its read side to the reader.
    fn open(&mut self) -> Result<usize, &'static str> {
        let s = TcpStream::connect_timeout(&self.target.addr, Duration::from_secs(2)).map_err(|_| "connect")?;
        let _ = s.set_nodelay(true);
        s.set_nonblocking(true).map_err(|_| "connect")?;
        let r = s.try_clone().map_err(|_| "connect")?;
        let slot = Arc::new(Slot { due_ns: AtomicU64::new(0), busy: AtomicBool::new(false), dead: AtomicBool::new(false) });
        let idx = self.conns.len();
        if self.new_tx.send(NewConn { idx, stream: r, slot: slot.clone() }).is_err() {
            return Err("connect");
        }
        self.conns.push(WriteSide { stream: Some(s), slot });
        self.alive += 1;
        self.out.opened += 1;
        Ok(idx)
    }

    fn back(&mut self, b: Back) {
        match b {
            Back::Idle(i) => self.idle.push(i),
            Back::Dead(i) => self.bury(i),
        }
    }

    fn bury(&mut self, i: usize) {
        if let Some(c) = self.conns.get_mut(i) {
            if c.stream.take().is_some() {
                self.alive -= 1;
            }
        }
    }

    /// An idle connection: one handed back, else a new one below the cap, else wait for one.
    fn take(&mut self) -> Result<usize, &'static str> {
        while let Ok(b) = self.back_rx.try_recv() {
            self.back(b);
        }
        loop {
            while let Some(i) = self.idle.pop() {
                let c = &self.conns[i];
                if c.stream.is_some() && !c.slot.dead.load(Ordering::SeqCst) {
                    return Ok(i);
                }
                self.bury(i);
            }
            if self.alive < self.cap {
                return self.open();
            }
            self.out.conn_waits += 1;
            let r = self.back_rx.recv_timeout(REQUEST_TIMEOUT);
            self.unblocked = Some(Instant::now());
            match r {
                Ok(b) => self.back(b),
                Err(_) => return Err("no connection"),
            }
        }
    }

    /// Formats request `i` into the send buffer.
    fn prepare(&mut self, i: u64, spec: &LoadSpec) {
        let body = (spec.body)(i);
        self.buf.clear();
        self.buf.extend_from_slice(&self.target.head);
        // Writing into a Vec cannot fail.
        let _ = write!(self.buf, "{}\r\n\r\n", body.len());
        self.buf.extend_from_slice(body.as_bytes());
    }

    /// Writes the prepared request on an idle connection (retrying on another when the chosen one turns out closed).
    fn send(&mut self, due: Instant, due_off: u64) {
        for _ in 0..8 {
            let idx = match self.take() {
                Ok(idx) => idx,
                Err(kind) => {
                    self.out.error(kind);
                    return;
                }
            };
            let slot = self.conns[idx].slot.clone();
            slot.due_ns.store(due_off, Ordering::SeqCst);
            slot.busy.store(true, Ordering::SeqCst);
            self.inflight.fetch_add(1, Ordering::SeqCst);
            let wrote = self.conns[idx].stream.as_mut().map(|s| write_all_nonblocking(s, &self.buf)).unwrap_or(false);
            // The reader marks `dead` before it clears `busy`, so exactly one side accounts for this request.
            if !wrote || slot.dead.load(Ordering::SeqCst) {
                self.bury(idx);
                if slot.busy.swap(false, Ordering::SeqCst) {
                    self.inflight.fetch_sub(1, Ordering::SeqCst);
                    continue;
                }
                // The reader already counted it (as a transport error).
                return;
            }
            let now = Instant::now();
            self.out.delay.saturating_record(micros(now.saturating_duration_since(due)));
            self.out.lag.saturating_record(micros(own_lag(now, due, self.unblocked)));
            return;
        }
        self.out.error("transport");
    }
}

/// The generator's own lateness for a request written at `written`: from its
/// due time, or from the end of the last wait for a free connection when that
/// came later (before it, no connection was free: the API's doing, not the
/// generator's). A request due during such a wait and sent right after it has
/// lag ≈ 0; requests that then queue behind it, sent back to back, carry the
/// generator's catch-up time.
pub fn own_lag(written: Instant, due: Instant, unblocked: Option<Instant>) -> Duration {
    let ready = unblocked.map_or(due, |u| u.max(due));
    written.saturating_duration_since(ready)
}

/// Longest wait for a free connection at the cap.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Writes all of `buf` on a non-blocking socket. A request is far smaller
/// than an empty send buffer, so `WouldBlock` means the peer stopped reading;
/// then this yields and retries.
fn write_all_nonblocking(s: &mut TcpStream, buf: &[u8]) -> bool {
    let mut off = 0;
    let mut spins = 0u32;
    while off < buf.len() {
        match s.write(&buf[off..]) {
            Ok(0) => return false,
            Ok(m) => off += m,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                spins += 1;
                if spins > 100_000 {
                    return false;
                }
                std::thread::yield_now();
            }
            Err(_) => return false,
        }
    }
    true
}

/// The reading thread of one generator: one task per connection on a
/// current-thread runtime; after the dispatcher closes the channel, waits up
/// to [`DRAIN`] for the answers still in flight.
fn reader(mut new_rx: tokio::sync::mpsc::UnboundedReceiver<NewConn>, back: mpsc::Sender<Back>, inflight: Arc<AtomicU64>, plan: Arc<Plan>) -> GenOut {
    let out = Rc::new(RefCell::new(GenOut::new()));
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(_) => {
            out.borrow_mut().error("reader runtime");
            return out.take_out();
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        while let Some(c) = new_rx.recv().await {
            match tokio::net::TcpStream::from_std(c.stream) {
                Ok(s) => {
                    tokio::task::spawn_local(read_conn(s, c.idx, c.slot, out.clone(), back.clone(), inflight.clone(), plan.clone()));
                }
                Err(_) => {
                    c.slot.dead.store(true, Ordering::SeqCst);
                    let _ = back.send(Back::Dead(c.idx));
                }
            }
        }
        let deadline = Instant::now() + DRAIN;
        while inflight.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    let open = inflight.load(Ordering::SeqCst);
    if open > 0 {
        *out.borrow_mut().errors.entry("timeout".into()).or_insert(0) += open;
    }
    drop(local);
    out.take_out()
}

trait TakeOut {
    fn take_out(&self) -> GenOut;
}

impl TakeOut for Rc<RefCell<GenOut>> {
    fn take_out(&self) -> GenOut {
        std::mem::replace(&mut *self.borrow_mut(), GenOut::new())
    }
}

/// Reads the responses of one connection until it closes.
async fn read_conn(s: tokio::net::TcpStream, idx: usize, slot: Arc<Slot>, out: Rc<RefCell<GenOut>>, back: mpsc::Sender<Back>, inflight: Arc<AtomicU64>, plan: Arc<Plan>) {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    'conn: loop {
        if s.readable().await.is_err() {
            break;
        }
        match s.try_read(&mut chunk) {
            Ok(0) => break,
            Ok(m) => buf.extend_from_slice(&chunk[..m]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
            Err(_) => break,
        }
        loop {
            let r = match parse_response(&buf) {
                Parsed::Incomplete => break,
                Parsed::Bad => {
                    out.borrow_mut().error("bad response");
                    if slot.busy.swap(false, Ordering::SeqCst) {
                        inflight.fetch_sub(1, Ordering::SeqCst);
                    }
                    slot.dead.store(true, Ordering::SeqCst);
                    let _ = back.send(Back::Dead(idx));
                    return;
                }
                Parsed::Done(r) => r,
            };
            let now = Instant::now();
            {
                let mut o = out.borrow_mut();
                o.last = o.last.max(Some(now));
                if (200..300).contains(&r.status) {
                    o.ok += 1;
                    if let Some(t0) = plan.t0() {
                        let due = t0 + Duration::from_nanos(slot.due_ns.load(Ordering::SeqCst));
                        o.latency.saturating_record(micros(now.saturating_duration_since(due)));
                    }
                    if plan.spec.collect_ids {
                        if let Some(id) = job_id(&buf[r.body_start..r.len]) {
                            o.ids.push(id);
                        }
                    }
                } else {
                    o.error(&format!("status {}", r.status));
                }
            }
            buf.drain(..r.len);
            if r.close {
                slot.dead.store(true, Ordering::SeqCst);
            }
            if slot.busy.swap(false, Ordering::SeqCst) {
                inflight.fetch_sub(1, Ordering::SeqCst);
            }
            if r.close {
                break 'conn;
            }
            let _ = back.send(Back::Idle(idx));
        }
    }
    // Closed or failed: a request still in flight on it is lost.
    slot.dead.store(true, Ordering::SeqCst);
    if slot.busy.swap(false, Ordering::SeqCst) {
        inflight.fetch_sub(1, Ordering::SeqCst);
        out.borrow_mut().error("transport");
    }
    let _ = back.send(Back::Dead(idx));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_a_free_connection_are_not_the_generators_lag() {
        let t = Instant::now();
        let ms = Duration::from_millis;
        // No wait: lag runs from the due time.
        assert_eq!(own_lag(t + ms(3), t + ms(1), None), ms(2));
        // Due at 1 ms, no connection free until 50 ms, written at 50.2 ms: 0.2 ms is the generator's.
        assert_eq!(own_lag(t + Duration::from_micros(50_200), t + ms(1), Some(t + ms(50))), Duration::from_micros(200));
        // A wait that ended before the due time changes nothing.
        assert_eq!(own_lag(t + ms(12), t + ms(10), Some(t + ms(5))), ms(2));
        // Written early (cannot happen, but must not underflow).
        assert_eq!(own_lag(t, t + ms(1), None), Duration::ZERO);
    }
}
