//! Shared helpers for the integration tests: a reactor running an echo
//! handler on its own thread, clients whose every blocking call has a
//! deadline, a deterministic PRNG, latches and gates with timeouts, a
//! watchdog for whole tests, and a descriptor count.
//!
//! Nothing here sleeps to synchronise: threads wait on channels or condition
//! variables with a timeout, and what cannot signal (the descriptor table)
//! is polled against a deadline.

// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

pub mod chat;
pub mod echo_clients;
pub mod fault;
pub mod guard;
pub mod probe;
pub mod process;
pub mod reactor;
pub mod regress;
pub mod stress_helpers;
pub mod watch;

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{
    Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard,
};
use std::thread::{self};
use std::time::{Duration, Instant};

use mio_selectors::{
    CloseReason, Config, ConnId, Context, Error, Handle, Handler, InBuf, PeerAddr,
};

/// Timeout given to every client socket's reads and writes, so that no
/// blocking call can hang even where a helper forgets its deadline.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// Deterministic randomness
// ---------------------------------------------------------------------------

/// The seed for a test: `ECHO_TEST_SEED` (decimal or 0x-hex) if set, else
/// `default`. Printed, so that a failure can be replayed.
pub fn seed(default: u64) -> u64 {
    let seed = std::env::var("ECHO_TEST_SEED")
        .ok()
        .and_then(|s| match s.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => s.parse().ok(),
        })
        .unwrap_or(default);
    eprintln!("seed {seed:#x} (set ECHO_TEST_SEED to replay another)");
    seed
}

/// SplitMix64: small, fast, and good enough to pick sizes and bytes.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// An independent stream for sub-task `i` (a client, say).
    pub fn fork(seed: u64, i: u64) -> Rng {
        let mut r = Rng(seed ^ (i.wrapping_add(1)).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        r.next_u64();
        r
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        assert!(n > 0);
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        assert!(lo <= hi);
        lo + self.below(hi - lo + 1)
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let x = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&x[..chunk.len()]);
        }
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0; n];
        self.fill(&mut v);
        v
    }

    /// Sizes of the pieces `len` bytes are written in: up to `max_cuts`
    /// random split points, no empty piece.
    pub fn split(&mut self, len: usize, max_cuts: usize) -> Vec<usize> {
        if len <= 1 {
            return vec![len];
        }
        let mut cuts: Vec<usize> = (0..self.range(0, max_cuts))
            .map(|_| self.range(1, len - 1))
            .collect();
        cuts.sort_unstable();
        cuts.dedup();
        let mut pieces = Vec::with_capacity(cuts.len() + 1);
        let mut at = 0;
        for c in cuts.into_iter().chain(std::iter::once(len)) {
            pieces.push(c - at);
            at = c;
        }
        pieces
    }
}

/// An endless byte stream whose byte at offset `k` depends only on the
/// seed and `k`: a writer can send gigabytes without holding them, and a
/// reader can check any prefix (a lost, repeated or reordered block shows).
#[derive(Clone, Copy, Debug)]
pub struct Pattern(pub u64);

impl Pattern {
    /// Fills `buf` with the stream's bytes from `offset` on.
    pub fn fill(&self, offset: u64, buf: &mut [u8]) {
        let (mut k, mut i) = (offset, 0);
        while i < buf.len() {
            let word = Rng::new(self.0 ^ (k / 8).wrapping_mul(0xA076_1D64_78BD_642F))
                .next_u64()
                .to_le_bytes();
            let at = (k % 8) as usize;
            let n = (8 - at).min(buf.len() - i);
            buf[i..i + n].copy_from_slice(&word[at..at + n]);
            i += n;
            k += n as u64;
        }
    }

    /// `Err` naming the first byte of `got` that is not the stream's at its offset.
    pub fn check(&self, what: &str, offset: u64, got: &[u8]) -> Result<(), String> {
        let mut want = vec![0; got.len()];
        self.fill(offset, &mut want);
        check_bytes(&format!("{what} at offset {offset}"), got, &want)
    }
}

// ---------------------------------------------------------------------------
// The echo handler and what it records
// ---------------------------------------------------------------------------

/// [`CloseReason`] reduced to something comparable and `Send`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    PeerClosed,
    Closed,
    Error(io::ErrorKind),
    OutputOverflow,
    InputOverflow,
    Shutdown,
    Other(String),
}

impl From<&CloseReason> for Reason {
    fn from(r: &CloseReason) -> Reason {
        match r {
            CloseReason::PeerClosed => Reason::PeerClosed,
            CloseReason::Closed => Reason::Closed,
            CloseReason::Error(e) => Reason::Error(e.kind()),
            CloseReason::OutputOverflow => Reason::OutputOverflow,
            CloseReason::InputOverflow => Reason::InputOverflow,
            CloseReason::Shutdown => Reason::Shutdown,
            other => Reason::Other(other.to_string()),
        }
    }
}

/// One `connection_lost` call.
#[derive(Debug, Clone)]
pub struct Lost {
    pub id: ConnId,
    pub peer: SocketAddr,
    pub reason: Reason,
}

/// What the handler saw of one connection.
#[derive(Debug, Clone)]
pub struct ConnStats {
    pub id: ConnId,
    pub peer: SocketAddr,
    /// Bytes handed to `send_from` successfully.
    pub echoed: u64,
    /// Largest `pending_output` seen right after a send.
    pub max_pending: usize,
    /// `pending_output` when `eof_received` was called.
    pub pending_at_eof: Option<usize>,
    pub send_errors: usize,
}

/// What a [`Context`] call with a closed connection's id returned, asked
/// while the handler was serving `during`.
#[derive(Debug, Clone)]
pub struct StaleProbe {
    pub stale: ConnId,
    pub during: ConnId,
    pub send: Result<(), String>,
    pub send_is_no_such_connection: bool,
    pub pending_output: Option<usize>,
    pub has_data: bool,
    /// `data_mut` found something (it goes through the mutable lookup).
    pub has_data_mut: bool,
    pub peer_addr: Option<SocketAddr>,
}

#[derive(Debug, Default)]
pub struct Stats {
    pub accepted: Vec<(ConnId, SocketAddr)>,
    pub lost: Vec<Lost>,
    pub conns: HashMap<ConnId, ConnStats>,
    /// Latest connection from each peer address.
    pub by_peer: HashMap<SocketAddr, ConnId>,
    /// Accepted and not yet lost.
    pub live: usize,
    pub max_live: usize,
    /// `cx.connection_count()` at the last accept or loss (after the removal).
    pub last_count: usize,
    /// Largest `pending_output` after any send to any connection.
    pub max_pending: usize,
    /// Connections the handler aborted on the close command.
    pub aborted: Vec<ConnId>,
    pub stale_probes: Vec<StaleProbe>,
    /// Total pending output over all connections in `shutting_down`.
    pub pending_at_shutdown: Option<usize>,
}

impl Stats {
    pub fn conn_of(&self, peer: SocketAddr) -> Option<&ConnStats> {
        self.conns.get(self.by_peer.get(&peer)?)
    }

    pub fn lost_of(&self, id: ConnId) -> Option<&Lost> {
        self.lost.iter().rev().find(|l| l.id == id)
    }

    pub fn lost_peer(&self, peer: SocketAddr) -> Option<&Lost> {
        self.lost_of(*self.by_peer.get(&peer)?)
    }

    pub fn summary(&self) -> String {
        format!(
            "accepted {}, lost {}, live {}, max_live {}, last_count {}, max_pending {}",
            self.accepted.len(),
            self.lost.len(),
            self.live,
            self.max_live,
            self.last_count,
            self.max_pending
        )
    }
}

/// Stats shared between the reactor thread and the test, with a condition
/// variable notified on every change so that tests wait instead of sleep.
#[derive(Default)]
pub struct Shared {
    stats: Mutex<Stats>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Stats> {
        self.stats.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn update(&self, f: impl FnOnce(&mut Stats)) {
        f(&mut self.lock());
        self.changed.notify_all();
    }
}

/// What the echo handler does besides echoing.
#[derive(Clone, Default)]
pub struct Opts {
    /// Input containing these bytes makes the handler abort the connection
    /// (without echoing them).
    pub close_cmd: Option<&'static [u8]>,
    /// On every accept and every read, try `send`, `pending_output`, `data`,
    /// `peer_addr`, `close` and `abort` with the ids of every connection
    /// lost so far, and record what they returned.
    pub probe_stale: bool,
}

/// The tutorial's echo server, recording what it sees in [`Stats`].
pub struct Echo {
    shared: Arc<Shared>,
    opts: Opts,
    gone: Vec<ConnId>,
}

impl Echo {
    fn probe(&mut self, cx: &mut Context<'_, SocketAddr>, during: ConnId) {
        if !self.opts.probe_stale || self.gone.is_empty() {
            return;
        }
        let mut probes = Vec::new();
        for &stale in &self.gone {
            let send = cx.send(stale, b"STALE BYTES FROM A CLOSED CONNECTION");
            let probe = StaleProbe {
                stale,
                during,
                send_is_no_such_connection: matches!(send, Err(Error::NoSuchConnection)),
                send: send.map_err(|e| e.to_string()),
                pending_output: cx.pending_output(stale),
                has_data: cx.data(stale).is_some(),
                has_data_mut: cx.data_mut(stale).is_some(),
                peer_addr: cx.peer_addr(stale).and_then(PeerAddr::inet),
            };
            // All must be no-ops: if one reached the slot's new occupant,
            // that client would lose its echo, stall (paused) or get EOF.
            cx.pause_reading(stale);
            cx.write_eof(stale);
            cx.close(stale);
            cx.abort(stale);
            probes.push(probe);
        }
        self.shared.update(|s| s.stale_probes.extend(probes));
    }
}

impl Handler for Echo {
    type Data = SocketAddr;

    fn accept_wrapper(
        &mut self,
        cx: &mut Context<'_, SocketAddr>,
        id: ConnId,
        peer: &PeerAddr,
    ) -> Option<SocketAddr> {
        let peer = &peer.inet().expect("the echo tests listen on TCP");
        self.probe(cx, id);
        let count = cx.connection_count();
        self.shared.update(|s| {
            s.accepted.push((id, *peer));
            s.conns.insert(
                id,
                ConnStats {
                    id,
                    peer: *peer,
                    echoed: 0,
                    max_pending: 0,
                    pending_at_eof: None,
                    send_errors: 0,
                },
            );
            s.by_peer.insert(*peer, id);
            s.live += 1;
            s.max_live = s.max_live.max(s.live);
            s.last_count = count;
        });
        Some(*peer)
    }

    fn service_connection(
        &mut self,
        cx: &mut Context<'_, SocketAddr>,
        id: ConnId,
        _: &mut SocketAddr,
        inb: &mut InBuf,
    ) {
        self.probe(cx, id);
        if let Some(cmd) = self.opts.close_cmd {
            if inb.windows(cmd.len()).any(|w| w == cmd) {
                inb.clear();
                cx.abort(id);
                self.shared.update(|s| s.aborted.push(id));
                return;
            }
        }
        let n = inb.len() as u64;
        let sent = cx.send_from(id, inb);
        let pending = cx.pending_output(id).unwrap_or(0);
        self.shared.update(|s| {
            s.max_pending = s.max_pending.max(pending);
            if let Some(c) = s.conns.get_mut(&id) {
                c.max_pending = c.max_pending.max(pending);
                match sent {
                    Ok(()) => c.echoed += n,
                    Err(_) => c.send_errors += 1,
                }
            }
        });
    }

    fn eof_received(
        &mut self,
        cx: &mut Context<'_, SocketAddr>,
        id: ConnId,
        _: &mut SocketAddr,
        _: &mut InBuf,
    ) {
        let pending = cx.pending_output(id);
        self.shared.update(|s| {
            if let Some(c) = s.conns.get_mut(&id) {
                c.pending_at_eof = pending;
            }
        });
        cx.close(id); // the default: flush, then close
    }

    fn connection_lost(
        &mut self,
        cx: &mut Context<'_, SocketAddr>,
        id: ConnId,
        peer: SocketAddr,
        reason: &CloseReason,
    ) {
        if self.opts.probe_stale {
            self.gone.push(id);
        }
        let count = cx.connection_count();
        self.shared.update(|s| {
            s.lost.push(Lost {
                id,
                peer,
                reason: reason.into(),
            });
            s.live -= 1;
            s.last_count = count;
        });
    }

    fn shutting_down(&mut self, cx: &mut Context<'_, SocketAddr>) {
        let ids: Vec<ConnId> = cx.ids().collect();
        let total = ids.iter().filter_map(|&id| cx.pending_output(id)).sum();
        self.shared.update(|s| s.pending_at_shutdown = Some(total));
    }
}

// ---------------------------------------------------------------------------
// The server: a reactor on its own thread
// ---------------------------------------------------------------------------

/// A [`Reactor`] running [`Echo`] on its own thread ([`reactor::Running`]).
pub struct Server {
    pub addr: SocketAddr,
    pub handle: Handle,
    shared: Arc<Shared>,
    running: reactor::Running,
}

/// Starts an echo server on `127.0.0.1:0`; returns once it listens.
pub fn start_echo(config: Config) -> Server {
    Server::start("127.0.0.1:0", config, Opts::default()).expect("start the echo server")
}

impl Server {
    /// Builds the reactor, binds `bind`, and runs it on a new thread. A
    /// bind failure comes back as the reactor's error (`Error::Bind`).
    pub fn start(bind: &str, config: Config, opts: Opts) -> Result<Server, Error> {
        let shared = Arc::new(Shared::default());
        let echo = Echo {
            shared: shared.clone(),
            opts,
            gone: Vec::new(),
        };
        let (running, addr) = reactor::serve(echo, config, bind)?;
        Ok(Server {
            addr,
            handle: running.handle.clone(),
            shared,
            running,
        })
    }

    pub fn stats(&self) -> MutexGuard<'_, Stats> {
        self.shared.lock()
    }

    /// Waits until `cond` holds for the stats; panics naming `what` after `timeout`.
    pub fn wait_for(
        &self,
        timeout: Duration,
        what: &str,
        mut cond: impl FnMut(&Stats) -> bool,
    ) -> MutexGuard<'_, Stats> {
        let deadline = Instant::now() + timeout;
        let mut stats = self.shared.lock();
        loop {
            if cond(&stats) {
                return stats;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let summary = stats.summary();
                drop(stats); // do not poison the handler's lock
                panic!("timed out after {timeout:?} waiting for {what} ({summary})");
            }
            stats = self
                .shared
                .changed
                .wait_timeout(stats, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// [`wait_for`](Self::wait_for), releasing the stats at once.
    pub fn wait_until(&self, timeout: Duration, what: &str, cond: impl FnMut(&Stats) -> bool) {
        drop(self.wait_for(timeout, what, cond));
    }

    /// Waits up to `timeout` for `run` to return; panics if it does not or
    /// if it failed. Returns when it returned.
    pub fn join(&mut self, timeout: Duration) -> Instant {
        self.running.join(timeout).unwrap_or_else(|e| panic!("{e}"));
        self.running.ended.expect("joined")
    }

    /// `Handle::stop`, then [`join`](Self::join); returns how long `run`
    /// took to return after the stop.
    pub fn stop_and_join(&mut self, timeout: Duration) -> Duration {
        let stopped = Instant::now();
        self.handle.stop();
        self.join(timeout).saturating_duration_since(stopped)
    }
}

// ---------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------

/// Connects within `timeout`; the stream gets [`IO_TIMEOUT`] for reads and
/// writes and `TCP_NODELAY` (so that split writes leave as split segments).
pub fn connect_with_deadline(addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    s.set_nodelay(true)?;
    Ok(s)
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    connect_with_deadline(addr, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"))
}

/// Accepts one connection within `timeout` (polling a non-blocking
/// listener: std has no accept timeout); the stream gets [`IO_TIMEOUT`]
/// for reads and writes.
pub fn accept_within(listener: &TcpListener, timeout: Duration) -> TcpStream {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + timeout;
    loop {
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).unwrap();
                s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
                s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
                return s;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                assert!(
                    Instant::now() < deadline,
                    "no connection within {timeout:?}"
                );
                thread::sleep(Duration::from_millis(2)); // polling interval
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

fn left(deadline: Instant) -> io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"))
    } else {
        Ok(left)
    }
}

pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Fills `buf` or fails: `UnexpectedEof` (saying how much arrived) or
/// `TimedOut` once `deadline` passes.
pub fn read_exact_deadline(s: &TcpStream, buf: &mut [u8], deadline: Instant) -> io::Result<()> {
    let mut got = 0;
    while got < buf.len() {
        s.set_read_timeout(Some(left(deadline)?))?;
        match (&*s).read(&mut buf[got..]) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("EOF after {got} of {} bytes", buf.len()),
                ))
            }
            Ok(n) => got += n,
            Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes all of `buf` or fails with `TimedOut` once `deadline` passes.
pub fn write_all_deadline(s: &TcpStream, buf: &[u8], deadline: Instant) -> io::Result<()> {
    let mut sent = 0;
    while sent < buf.len() {
        s.set_write_timeout(Some(left(deadline)?))?;
        match (&*s).write(&buf[sent..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => sent += n,
            Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads until EOF; fails past `limit` bytes or at `deadline`.
pub fn read_to_eof_deadline(s: &TcpStream, limit: usize, deadline: Instant) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0; 64 * 1024];
    loop {
        s.set_read_timeout(Some(left(deadline)?))?;
        match (&*s).read(&mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if out.len() > limit {
                    return Err(io::Error::other(format!(
                        "more than {limit} bytes before EOF"
                    )));
                }
            }
            Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The next read returns 0 (the server closed), not data, an error or a timeout.
pub fn expect_eof(s: &TcpStream, deadline: Instant) -> io::Result<()> {
    match read_to_eof_deadline(s, 0, deadline) {
        Ok(_) => Ok(()),
        Err(e) => Err(io::Error::new(e.kind(), format!("expected EOF: {e}"))),
    }
}

/// Closes `s` with `SO_LINGER` 0: the kernel sends RST instead of FIN.
pub fn reset(s: TcpStream) {
    socket2::SockRef::from(&s)
        .set_linger(Some(Duration::ZERO))
        .expect("SO_LINGER 0");
    drop(s);
}

/// `Err` naming the first differing byte if `got` is not `want`.
pub fn check_bytes(what: &str, got: &[u8], want: &[u8]) -> Result<(), String> {
    if got == want {
        return Ok(());
    }
    match got.iter().zip(want).position(|(a, b)| a != b) {
        Some(i) => Err(format!(
            "{what}: byte {i} is {:#04x}, expected {:#04x} ({} bytes vs {})",
            got[i],
            want[i],
            got.len(),
            want.len()
        )),
        None => Err(format!(
            "{what}: {} bytes, expected {} (one is a prefix of the other)",
            got.len(),
            want.len()
        )),
    }
}

/// Parses `ConnId`'s `Display`, `#key.gen`.
pub fn key_gen(id: ConnId) -> (usize, u32) {
    let s = id.to_string();
    let (key, gen) = s
        .strip_prefix('#')
        .and_then(|s| s.split_once('.'))
        .unwrap_or_else(|| panic!("ConnId displays as {s:?}, not #key.gen"));
    (key.parse().expect("key"), gen.parse().expect("gen"))
}

// ---------------------------------------------------------------------------
// Synchronisation with timeouts
// ---------------------------------------------------------------------------

/// A one-shot event: `open` once, `wait` with a deadline. `fail` opens it
/// as failed, so that waiters give up at once instead of timing out.
#[derive(Default)]
pub struct Gate {
    state: Mutex<Option<bool>>,
    cv: Condvar,
}

impl Gate {
    pub fn new() -> Gate {
        Gate::default()
    }

    pub fn open(&self) {
        self.set(true)
    }

    pub fn fail(&self) {
        self.set(false)
    }

    fn set(&self, ok: bool) {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.get_or_insert(ok);
        self.cv.notify_all();
    }

    pub fn wait(&self, deadline: Instant) -> Result<(), String> {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            match *s {
                Some(true) => return Ok(()),
                Some(false) => return Err("gate failed: another thread gave up".into()),
                None => {}
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err("timed out at a gate".into());
            }
            s = self
                .cv
                .wait_timeout(s, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

/// A countdown: the gate opens when `n` threads have arrived.
pub struct Latch {
    left: Mutex<usize>,
    pub gate: Gate,
}

impl Latch {
    pub fn new(n: usize) -> Latch {
        Latch {
            left: Mutex::new(n),
            gate: Gate::new(),
        }
    }

    pub fn arrive(&self) {
        let mut left = self.left.lock().unwrap_or_else(PoisonError::into_inner);
        *left = left.saturating_sub(1);
        if *left == 0 {
            self.gate.open();
        }
    }

    pub fn arrive_and_wait(&self, deadline: Instant) -> Result<(), String> {
        self.arrive();
        self.gate.wait(deadline)
    }
}

/// Runs `test` on its own thread and fails if it has not finished within
/// `limit`, so that no test can hang (a panic inside is passed on).
pub fn with_deadline(limit: Duration, test: impl FnOnce() + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    let name = thread::current().name().unwrap_or("test").to_string();
    let t = thread::Builder::new()
        .name(name)
        .spawn(move || {
            test();
            let _ = tx.send(());
        })
        .expect("spawn test thread");
    match rx.recv_timeout(limit) {
        Ok(()) => t.join().expect("test thread"),
        Err(RecvTimeoutError::Disconnected) => {
            if let Err(panic) = t.join() {
                std::panic::resume_unwind(panic);
            }
        }
        Err(RecvTimeoutError::Timeout) => panic!("test did not finish within {limit:?}"),
    }
}

/// Polls `cond` until it holds or `timeout` passes, for state that nobody
/// signals (the descriptor table). Returns whether it held.
pub fn poll_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(5)); // a polling interval, not a synchronisation
    }
}

// ---------------------------------------------------------------------------
// Descriptors
// ---------------------------------------------------------------------------

/// Open descriptors of this process: the entries of `/proc/self/fd`, less
/// the one the listing itself holds open while it runs.
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .count()
        - 1
}

/// Every test that opens descriptors holds this shared; a test that counts
/// the process's descriptors holds it exclusively, so the tests running
/// beside it in this process cannot move the count.
static FDS: RwLock<()> = RwLock::new(());

pub fn fds_shared() -> RwLockReadGuard<'static, ()> {
    FDS.read().unwrap_or_else(PoisonError::into_inner)
}

pub fn fds_exclusive() -> RwLockWriteGuard<'static, ()> {
    FDS.write().unwrap_or_else(PoisonError::into_inner)
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server").field("addr", &self.addr).finish()
    }
}

/// Half-closes `s` for writing, ignoring a peer that is already gone.
pub fn shutdown_write(s: &TcpStream) -> io::Result<()> {
    match s.shutdown(Shutdown::Write) {
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
        other => other,
    }
}

/// The next read fails with `ECONNRESET`: the server reset the connection
/// (it dropped input or output), as opposed to [`expect_eof`]'s FIN. Data
/// before the reset is an error too.
pub fn expect_reset(s: &TcpStream, deadline: Instant) -> io::Result<()> {
    match read_to_eof_deadline(s, 0, deadline) {
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Ok(()),
        Ok(_) => Err(io::Error::other("expected a reset, got a clean EOF (FIN)")),
        Err(e) => Err(io::Error::new(e.kind(), format!("expected a reset: {e}"))),
    }
}

#[allow(unused_imports)] // each test binary uses its own subset
pub use process::{need_tool, require_in_ci};
