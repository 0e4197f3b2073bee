//! The reliability suite's own harness (`tests/stress/main.rs`,
//! `tests/bad_input.rs`): a fault-injecting TCP proxy, a reactor on a
//! thread for any handler, a chat client with deadlines, an echo handler
//! that checks every byte it receives ([`Router`]), a one-thread load client
//! ([`load`]), and the `reliability: ...` figure lines the docs are built
//! from.
//!
//! Everything is loopback only. Nothing sleeps to synchronise: waits are on
//! channels or condition variables with deadlines. The proxy's random delays
//! are injected faults, bounded to a few milliseconds.

// Each test binary uses its own part of this module.
#![allow(dead_code)]

pub mod load;

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Condvar, Mutex, Once};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use mio_selectors::{
    CloseReason, Config, ConnId, Context, Error, Handle, Handler, InBuf, PeerAddr,
};

pub use crate::util::chat::LineClient;
use crate::util::{self, process, reactor, Rng};

/// The longest any one expected step (a line, an echo, an EOF) may take.
pub const STEP: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// Panics and figures
// ---------------------------------------------------------------------------

static PANICS: AtomicUsize = AtomicUsize::new(0);

/// Counts every panic in this process (on any thread, the reactor's
/// included) and then reports it as usual. Idempotent.
pub fn count_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, SeqCst);
            previous(info);
        }));
    });
}

/// Panics counted so far in this process.
pub fn panics() -> usize {
    PANICS.load(SeqCst)
}

/// Prints one figure line, `reliability: TEST key=value ...`, on stdout
/// (shown with `-- --nocapture`; `docs/reliability.md` is built from them).
pub fn figures(test: &str, pairs: &[(&str, String)]) {
    let body: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("reliability: {test} {}", body.join(" "));
}

/// `VmHWM` (peak resident memory) of a process, in KiB.
pub fn peak_rss_kib(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

// ---------------------------------------------------------------------------
// A reactor on a thread, for any handler
// ---------------------------------------------------------------------------

/// A reactor serving `H` on its own thread ([`reactor::Running`]), with
/// the address it listens on. Dropping it stops it.
pub struct Running {
    pub addr: SocketAddr,
    pub handle: Handle,
    running: reactor::Running,
}

/// Starts `handler` on `bind` (`127.x.y.z:0`); returns once it listens.
pub fn run_server<H>(handler: H, config: Config, bind: &str) -> Running
where
    H: Handler + Send + 'static,
{
    let (running, addr) = reactor::serve(handler, config, bind)
        .unwrap_or_else(|e| panic!("server did not start: {e}"));
    Running {
        addr,
        handle: running.handle.clone(),
        running,
    }
}

impl Running {
    /// Stops the reactor and waits (bounded) for `run` to return: `Err` if
    /// it failed, panicked or hung.
    pub fn stop(mut self) -> Result<(), String> {
        self.running.stop_and_join(STEP)
    }
}

// ---------------------------------------------------------------------------
// The fault-injecting proxy
// ---------------------------------------------------------------------------

/// How a pump cuts what it forwards into writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// As read.
    Whole,
    /// One byte per write (each its own segment: `TCP_NODELAY`).
    OneByte,
    /// Up to 4 random cuts per read.
    Random,
}

/// The deliberate break of one proxied connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    None,
    /// After forwarding this many client bytes to the server, reset both
    /// sides (`SO_LINGER` 0, then close: RST).
    ResetUp(u64),
    /// After forwarding this many client bytes, send the server FIN and
    /// drop whatever else the client sends. The server's answer still
    /// reaches the client.
    HalfCloseUp(u64),
    /// After forwarding this many server bytes to the client, reset both sides.
    ResetDown(u64),
}

/// What the proxy does to one connection.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    pub up: Split,
    pub down: Split,
    /// Delay one write in this many (0: never) by up to `delay_max`.
    pub delay_one_in: usize,
    pub delay_max: Duration,
    pub fault: Fault,
}

impl Plan {
    pub const CLEAN: Plan = Plan {
        up: Split::Whole,
        down: Split::Whole,
        delay_one_in: 0,
        delay_max: Duration::ZERO,
        fault: Fault::None,
    };

    /// Whether the plan breaks the connection on purpose.
    pub fn is_broken(&self) -> bool {
        matches!(self.fault, Fault::ResetUp(_) | Fault::ResetDown(_))
    }
}

/// What the proxy did, for the figures.
#[derive(Default, Debug)]
pub struct ProxyStats {
    pub conns: AtomicU64,
    pub writes: AtomicU64,
    pub one_byte_writes: AtomicU64,
    pub delays: AtomicU64,
    pub resets: AtomicU64,
    pub half_closes: AtomicU64,
    /// Resets passed on because the other side failed (not planned).
    pub passed_on: AtomicU64,
    pub bytes_up: AtomicU64,
    pub bytes_down: AtomicU64,
    /// Proxied connections whose two pumps have not finished.
    pub live: AtomicU64,
}

impl ProxyStats {
    /// Deliberate faults: resets, half-closes, delays and 1-byte writes.
    pub fn faults(&self) -> u64 {
        self.resets.load(SeqCst)
            + self.half_closes.load(SeqCst)
            + self.delays.load(SeqCst)
            + self.one_byte_writes.load(SeqCst)
    }

    pub fn summary(&self) -> Vec<(&'static str, String)> {
        let g = |a: &AtomicU64| a.load(SeqCst).to_string();
        vec![
            ("proxied", g(&self.conns)),
            ("resets", g(&self.resets)),
            ("half_closes", g(&self.half_closes)),
            ("delays", g(&self.delays)),
            ("one_byte_writes", g(&self.one_byte_writes)),
            ("faults", self.faults().to_string()),
        ]
    }
}

type Policy = dyn Fn(&mut Rng, u64) -> Plan + Send + Sync;

struct ProxyShared {
    target: SocketAddr,
    seed: u64,
    policy: Box<Policy>,
    stats: ProxyStats,
    /// The plan of each connection, by the client's address.
    plans: Mutex<HashMap<SocketAddr, Plan>>,
    planned: Condvar,
    stopping: AtomicBool,
}

/// An in-process TCP proxy on `127.0.0.1:0` that forwards to `target`,
/// breaking each connection as `policy` plans it (from a PRNG seeded with
/// `seed` and the connection's index). Two threads per connection, each
/// pumping one direction with blocking I/O and timeouts.
pub struct Proxy {
    pub addr: SocketAddr,
    shared: Arc<ProxyShared>,
    acceptor: Option<JoinHandle<()>>,
}

/// Both sockets of a proxied connection, shared by its two pumps: the
/// sockets close (with RST after a reset) when the last pump lets go.
struct Pair {
    client: TcpStream,
    server: TcpStream,
    broken: AtomicBool,
}

impl Pair {
    /// Resets both sides: `SO_LINGER` 0, and `shutdown(SHUT_RD)` to wake
    /// the other pump's read, so that both let go and the close sends RST.
    fn reset(&self, shared: &ProxyShared, planned: bool) {
        if self.broken.swap(true, SeqCst) {
            return;
        }
        let counter = match planned {
            true => &shared.stats.resets,
            false => &shared.stats.passed_on,
        };
        counter.fetch_add(1, SeqCst);
        for s in [&self.client, &self.server] {
            let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
            let _ = s.shutdown(Shutdown::Read);
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Dir {
    Up,
    Down,
}

impl Proxy {
    pub fn start(
        target: SocketAddr,
        seed: u64,
        policy: impl Fn(&mut Rng, u64) -> Plan + Send + Sync + 'static,
    ) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy: bind");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(ProxyShared {
            target,
            seed,
            policy: Box::new(policy),
            stats: ProxyStats::default(),
            plans: Mutex::new(HashMap::new()),
            planned: Condvar::new(),
            stopping: AtomicBool::new(false),
        });
        let sh = shared.clone();
        let acceptor = thread::Builder::new()
            .name("proxy accept".into())
            .spawn(move || {
                let mut index = 0;
                for conn in listener.incoming() {
                    if sh.stopping.load(SeqCst) {
                        return;
                    }
                    let Ok(client) = conn else { continue };
                    index += 1;
                    let sh = sh.clone();
                    sh.stats.live.fetch_add(1, SeqCst);
                    let spawned =
                        thread::Builder::new()
                            .name(format!("proxy {index}"))
                            .spawn(move || {
                                proxy_conn(&sh, client, index);
                                sh.stats.live.fetch_sub(1, SeqCst);
                            });
                    if spawned.is_err() {
                        panic!("proxy: cannot spawn a thread");
                    }
                }
            })
            .expect("spawn the proxy");
        Proxy {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    pub fn stats(&self) -> &ProxyStats {
        &self.shared.stats
    }

    /// The plan of the connection whose client is at `client`; waits
    /// (bounded) for the proxy to accept it.
    pub fn plan_of(&self, client: SocketAddr) -> Plan {
        let deadline = Instant::now() + STEP;
        let mut plans = self.shared.plans.lock().unwrap();
        loop {
            if let Some(plan) = plans.get(&client) {
                return *plan;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "proxy never accepted {client}");
            plans = self.shared.planned.wait_timeout(plans, left).unwrap().0;
        }
    }

    /// Waits (bounded) until every proxied connection has ended: no pump
    /// left behind.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        util::poll_until(timeout, || self.shared.stats.live.load(SeqCst) == 0)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, SeqCst);
        // Wake the blocking accept with a connection of our own.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

fn proxy_conn(sh: &Arc<ProxyShared>, client: TcpStream, index: u64) {
    if sh.stopping.load(SeqCst) {
        return;
    }
    let peer = match client.peer_addr() {
        Ok(peer) => peer,
        Err(_) => return,
    };
    let mut rng = Rng::fork(sh.seed, index);
    let plan = (sh.policy)(&mut rng, index);
    sh.stats.conns.fetch_add(1, SeqCst);
    let server = match TcpStream::connect_timeout(&sh.target, STEP) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("proxy: connect to {}: {e}", sh.target);
            util::reset(client);
            return;
        }
    };
    for s in [&client, &server] {
        let _ = s.set_nodelay(true);
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        let _ = s.set_write_timeout(Some(util::IO_TIMEOUT));
    }
    // Published once the server side exists, so a client that has its
    // plan knows the server will see its bytes.
    sh.plans.lock().unwrap().insert(peer, plan);
    sh.planned.notify_all();
    let pair = Arc::new(Pair {
        client,
        server,
        broken: AtomicBool::new(false),
    });
    let (p, s, down_rng) = (pair.clone(), sh.clone(), Rng::fork(rng.next_u64(), 1));
    let down = thread::Builder::new()
        .name(format!("proxy {index} down"))
        .spawn(move || pump(&s, &p, Dir::Down, &plan, down_rng));
    pump(sh, &pair, Dir::Up, &plan, rng);
    if let Ok(down) = down {
        let _ = down.join();
    }
}

/// Forwards one direction until EOF, an error, or the planned fault.
fn pump(sh: &ProxyShared, pair: &Pair, dir: Dir, plan: &Plan, mut rng: Rng) {
    let (from, to, split, counter) = match dir {
        Dir::Up => (&pair.client, &pair.server, plan.up, &sh.stats.bytes_up),
        Dir::Down => (&pair.server, &pair.client, plan.down, &sh.stats.bytes_down),
    };
    // (bytes after which to act, reset?) for this direction.
    let mut fault = match (dir, plan.fault) {
        (Dir::Up, Fault::ResetUp(k)) | (Dir::Down, Fault::ResetDown(k)) => Some((k, true)),
        (Dir::Up, Fault::HalfCloseUp(k)) => Some((k, false)),
        _ => None,
    };
    let mut forwarded = 0u64;
    let mut discarding = false;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if let Some((at, reset)) = fault {
            if forwarded == at {
                fault = None;
                if reset {
                    pair.reset(sh, true);
                    return;
                }
                sh.stats.half_closes.fetch_add(1, SeqCst);
                let _ = to.shutdown(Shutdown::Write);
                discarding = true;
            }
        }
        // Stop exactly at the fault point.
        let room = match fault {
            Some((at, _)) => buf.len().min((at - forwarded) as usize),
            None => buf.len(),
        };
        let n = match (&*from).read(&mut buf[..room]) {
            Ok(0) => {
                if !pair.broken.load(SeqCst) && !discarding {
                    let _ = to.shutdown(Shutdown::Write); // pass the FIN on
                }
                return;
            }
            Ok(n) => n,
            Err(e) if util::is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {
                if pair.broken.load(SeqCst) || sh.stopping.load(SeqCst) {
                    return;
                }
                continue;
            }
            Err(_) => {
                pair.reset(sh, false); // pass the reset on
                return;
            }
        };
        if pair.broken.load(SeqCst) {
            return;
        }
        if discarding {
            continue;
        }
        if write_pieces(sh, to, &buf[..n], split, plan, &mut rng).is_err() {
            pair.reset(sh, false);
            return;
        }
        forwarded += n as u64;
        counter.fetch_add(n as u64, SeqCst);
    }
}

fn write_pieces(
    sh: &ProxyShared,
    to: &TcpStream,
    data: &[u8],
    split: Split,
    plan: &Plan,
    rng: &mut Rng,
) -> io::Result<()> {
    let pieces = match split {
        Split::Whole => vec![data.len()],
        Split::OneByte => vec![1; data.len()],
        Split::Random => rng.split(data.len(), 4),
    };
    let mut at = 0;
    for len in pieces {
        if plan.delay_one_in > 0 && rng.below(plan.delay_one_in) == 0 {
            let us = rng.range(0, plan.delay_max.as_micros() as usize);
            thread::sleep(Duration::from_micros(us as u64)); // an injected delay
            sh.stats.delays.fetch_add(1, SeqCst);
        }
        util::write_all_deadline(to, &data[at..at + len], Instant::now() + util::IO_TIMEOUT)?;
        sh.stats.writes.fetch_add(1, SeqCst);
        if len == 1 && split == Split::OneByte {
            sh.stats.one_byte_writes.fetch_add(1, SeqCst);
        }
        at += len;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// A chat client with deadlines
// ---------------------------------------------------------------------------

impl LineClient {
    /// Connects from `source` (any address in 127.0.0.0/8).
    pub fn connect_from(addr: SocketAddr, source: &str) -> io::Result<LineClient> {
        connect_from(addr, source).map(LineClient::wrap)
    }
}

/// A TCP connection to `addr` from `source` (an address in 127.0.0.0/8),
/// with the usual timeouts.
pub fn connect_from(addr: SocketAddr, source: &str) -> io::Result<TcpStream> {
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    let source: SocketAddr = format!("{source}:0").parse().expect("source address");
    assert!(
        matches!(source.ip(), std::net::IpAddr::V4(ip) if ip.is_loopback()),
        "loopback only"
    );
    let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    s.bind(&SockAddr::from(source))?;
    s.connect_timeout(&SockAddr::from(addr), STEP)?;
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(util::IO_TIMEOUT))?;
    s.set_write_timeout(Some(util::IO_TIMEOUT))?;
    s.set_nodelay(true)?;
    Ok(s)
}

// ---------------------------------------------------------------------------
// Router: an echo server that checks every byte it receives
// ---------------------------------------------------------------------------

/// What [`Router`] saw, shared with the test.
#[derive(Default, Debug)]
pub struct RouterStats {
    pub accepted: AtomicUsize,
    pub live: AtomicUsize,
    pub max_live: AtomicUsize,
    pub lost: AtomicUsize,
    pub lost_error: AtomicUsize,
    pub aborted: AtomicUsize,
    /// Bytes that were not the byte the connection's header promised.
    pub mismatches: AtomicUsize,
    pub bytes_in: AtomicU64,
    pub max_pending: AtomicUsize,
    /// Calls made with the id of a connection already gone.
    pub stale_probes: AtomicUsize,
    /// Stale calls that did anything but fail or return nothing.
    pub stale_hits: AtomicUsize,
    /// Accepts into a slab slot that an earlier connection had held.
    pub reused_slots: AtomicUsize,
    /// Loop passes in which one connection was aborted and another accepted.
    pub abort_and_accept_passes: AtomicUsize,
    pub first_error: Mutex<Option<String>>,
}

impl RouterStats {
    fn error(&self, e: String) {
        self.first_error.lock().unwrap().get_or_insert(e);
    }

    pub fn first_error(&self) -> Option<String> {
        self.first_error.lock().unwrap().clone()
    }
}

/// Per connection: what its header said, and how many bytes came so far.
pub struct Flow {
    header: [u8; load::HEADER],
    got: u64,
}

/// Echoes every byte back, like the tutorial's server, and checks each one
/// on the way: a connection's first 8 bytes are its seed, the rest its
/// [`load::fill`] stream, so a byte from any other connection shows. A
/// seed with [`load::ABORT_FLAG`] asks to be aborted when byte
/// [`load::abort_at`] arrives (the marker), closing its slot while others
/// are accepted in the same pass. On every accept it tries the ids of the
/// last connections closed: each call must fail or return nothing.
pub struct Router {
    pub stats: Arc<RouterStats>,
    gone: VecDeque<ConnId>,
    slots: HashMap<String, u32>,
    last_abort: Option<Instant>,
    last_accept: Option<Instant>,
}

impl Router {
    pub fn new() -> (Router, Arc<RouterStats>) {
        let stats = Arc::new(RouterStats::default());
        let router = Router {
            stats: stats.clone(),
            gone: VecDeque::new(),
            slots: HashMap::new(),
            last_abort: None,
            last_accept: None,
        };
        (router, stats)
    }

    fn probe(&self, cx: &mut Context<'_, Flow>) {
        for &stale in self.gone.iter().rev().take(16) {
            self.stats.stale_probes.fetch_add(1, SeqCst);
            let send = cx.send(stale, b"STALE");
            let hit = !matches!(send, Err(Error::NoSuchConnection))
                || cx.data(stale).is_some()
                || cx.pending_output(stale).is_some()
                || cx.peer_addr(stale).is_some()
                || cx.is_open(stale);
            if hit {
                self.stats.stale_hits.fetch_add(1, SeqCst);
                self.stats
                    .error(format!("stale id {stale:?} still reaches a connection"));
            }
        }
    }

    /// Counts the loop passes (`cx.now()` is the pass's start) in which a
    /// connection was accepted and, later in the same pass, one aborted.
    fn note_abort(&mut self, cx: &Context<'_, Flow>) {
        let now = cx.now();
        if self.last_accept == Some(now) && self.last_abort != Some(now) {
            self.last_abort = Some(now);
            self.stats.abort_and_accept_passes.fetch_add(1, SeqCst);
        }
    }
}

impl Handler for Router {
    type Data = Flow;

    fn accept_wrapper(
        &mut self,
        cx: &mut Context<'_, Flow>,
        id: ConnId,
        _: &PeerAddr,
    ) -> Option<Flow> {
        self.probe(cx);
        let (key, gen) = util::key_gen(id);
        if let Some(old) = self.slots.insert(key.to_string(), gen) {
            self.stats.reused_slots.fetch_add(1, SeqCst);
            if old == gen {
                self.stats
                    .error(format!("slot {key} reused with the same generation {gen}"));
            }
        }
        self.last_accept = Some(cx.now());
        let s = &self.stats;
        s.accepted.fetch_add(1, SeqCst);
        let live = s.live.fetch_add(1, SeqCst) + 1;
        s.max_live.fetch_max(live, SeqCst);
        Some(Flow {
            header: [0; load::HEADER],
            got: 0,
        })
    }

    fn service_connection(
        &mut self,
        cx: &mut Context<'_, Flow>,
        id: ConnId,
        flow: &mut Flow,
        inb: &mut InBuf,
    ) {
        let data: &[u8] = inb;
        let start = flow.got;
        let mut k = 0;
        while (flow.got as usize) < load::HEADER && k < data.len() {
            flow.header[flow.got as usize] = data[k];
            flow.got += 1;
            k += 1;
        }
        flow.got += (data.len() - k) as u64;
        let seed = u64::from_le_bytes(flow.header);
        let got = flow.got;
        self.stats.bytes_in.fetch_add(data.len() as u64, SeqCst);
        if got >= load::HEADER as u64 {
            let mut want = vec![0; data.len()];
            load::fill(seed, start, &mut want);
            let bad = data.iter().zip(&want).filter(|(a, b)| a != b).count();
            if bad > 0 {
                self.stats.mismatches.fetch_add(bad, SeqCst);
                self.stats.error(format!(
                    "{id:?}: {bad} of bytes {start}..{got} are not its stream (seed {seed:#x})"
                ));
            }
            if seed & load::ABORT_FLAG != 0 && got > load::abort_at(seed) {
                inb.clear();
                cx.abort(id);
                self.stats.aborted.fetch_add(1, SeqCst);
                self.note_abort(cx);
                return;
            }
        }
        let _ = cx.send_from(id, inb);
        let pending = cx.pending_output(id).unwrap_or(0);
        self.stats.max_pending.fetch_max(pending, SeqCst);
    }

    fn connection_lost(
        &mut self,
        _: &mut Context<'_, Flow>,
        id: ConnId,
        _: Flow,
        why: &CloseReason,
    ) {
        let s = &self.stats;
        s.live.fetch_sub(1, SeqCst);
        s.lost.fetch_add(1, SeqCst);
        if matches!(why, CloseReason::Error(_)) {
            s.lost_error.fetch_add(1, SeqCst);
        }
        self.gone.push_back(id);
        if self.gone.len() > 64 {
            self.gone.pop_front();
        }
    }
}

// ---------------------------------------------------------------------------

// ---------------------------------------------------------------------------
// Example binaries as child processes
// ---------------------------------------------------------------------------

/// A command for example `name` (`multiconn_echo` or `chatroom`), built
/// once per run in this test's profile.
pub fn example(name: &str) -> std::process::Command {
    process::example(&["multiconn_echo", "chatroom"], name)
}

/// A child process with its stdout and stderr as channels of lines (read
/// by threads, so a full pipe never blocks it). Dropping it kills it.
pub struct Child {
    pub child: std::process::Child,
    pub stdout: Receiver<String>,
    pub stderr: Receiver<String>,
}

impl Child {
    pub fn spawn(mut cmd: std::process::Command) -> Child {
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let stdout = process::lines_of(child.stdout.take().unwrap());
        let stderr = process::lines_of(child.stderr.take().unwrap());
        Child {
            child,
            stdout,
            stderr,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next stdout line, or `None` at EOF or after `timeout`.
    pub fn line(&self, timeout: Duration) -> Option<String> {
        self.stdout.recv_timeout(timeout).ok()
    }

    /// The first stderr line (from now) containing `needle`, within `timeout`.
    pub fn stderr_line(&self, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Some(line),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    /// `listening on ADDR`, the examples' readiness line.
    pub fn listening(&self) -> SocketAddr {
        let line = self
            .line(Duration::from_secs(60))
            .expect("no readiness line");
        let addr = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("first line {line:?}"));
        addr.parse().expect("address")
    }

    pub fn signal(&self, sig: &str) {
        let ok = process::signal(self.pid(), &format!("-{sig}"));
        assert!(ok, "kill -{sig} failed");
    }

    /// Waits (bounded) for the child to exit.
    pub fn wait(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let mut status = None;
        util::poll_until(timeout, || {
            status = self.child.try_wait().ok().flatten();
            status.is_some()
        });
        status.unwrap_or_else(|| panic!("child {} still running after {timeout:?}", self.pid()))
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Open descriptors of process `pid`.
pub fn fds_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Open descriptors of process `pid` numbered below `limit`.
pub fn fds_below(pid: u32, limit: usize) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<usize>().ok())
                .filter(|&fd| fd < limit)
                .count()
        })
        .unwrap_or(0)
}

/// User plus system CPU time of process `pid`, in clock ticks.
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    // The command name may hold spaces: count fields after its `)`.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of stat(5) are the 12th and 13th after the name.
    let utime: u64 = fields[11].parse().unwrap();
    let stime: u64 = fields[12].parse().unwrap();
    utime + stime
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux).
pub fn clk_tck() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// FNV-1a, 64 bits: the per-connection checksum.
pub fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
