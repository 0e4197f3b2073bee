//! Regression tests for the bugs a review found (fixed in "Fixes from
//! review: bounded broadcast memory, no timer spin, no lost input, honest
//! graceful close"). Each test is the reviewer's reproduction turned into an
//! assertion, and fails on the code before that fix:
//!
//! - a timer set with no delay from `on_timer` kept the loop from ever
//!   polling again;
//! - input held back while output was backed up was never offered again;
//! - a graceful close gave a slow but steady reader a clean EOF after a
//!   truncated stream, and closed a stalled one without saying anything was
//!   lost;
//! - closing with a full `inb` stalled the peer's writes until linger ran
//!   out, then reset them;
//! - `close()` during a connect dropped the output queued for it;
//! - `Duration::MAX` timeouts and `usize::MAX` lengths overflowed;
//! - a short notice after a broadcast pinned a whole pooled buffer, so a
//!   client that does not read could hold many times its output cap.
//!
//! (The UDP queue's per-datagram charge has a unit test in `src/context.rs`.)
//!
//! Real sockets on loopback only. Nothing sleeps to synchronise: the
//! reactors report through channels that are read with deadlines, every
//! client socket has timeouts, and every test runs under a watchdog. The
//! only sleeps are a polling interval where nothing can signal (std's
//! listener has no accept timeout) and the pace of a slow reader, which is
//! the behaviour under test; each says so.
//!
//! One test measures the process's heap with a counting allocator, so it
//! runs alone: it holds [`HEAP`] exclusively, every other test shares it.

mod util;
// The chat application lives in the chatroom example; the tests run it in-process.
#[allow(dead_code)]
#[path = "../examples/chatroom/chat/mod.rs"]
mod chat;

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicIsize, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use chat::Client as ChatData;
use chat::{ChatConfig, ChatServer};
use mio_selectors::codec::{Decoder, LineCodec};
use mio_selectors::reactor::{Idle, TokenBucket};
use mio_selectors::{
    CloseReason, Config, ConnId, Context, Handle, Handler, InBuf, PeerAddr, Reactor,
};
use util::{
    accept_within, check_bytes, connect, is_timeout, read_exact_deadline, read_to_eof_deadline,
    shutdown_write, with_deadline, write_all_deadline, Pattern, IO_TIMEOUT,
};

/// The watchdog limit of each test.
const LIMIT: Duration = Duration::from_secs(30);
/// How long a test waits for any one thing it expects.
const WAIT: Duration = Duration::from_secs(10);
/// How long a test waits for something the fixed code does at once and the
/// old code never does (kept short so that a regression fails quickly).
const SHORT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------
// A counting allocator: live heap bytes of the whole process
// ---------------------------------------------------------------------------

static LIVE: AtomicIsize = AtomicIsize::new(0);

struct Counting;

// SAFETY: every call is passed on to `System` unchanged; only a counter is kept.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        unsafe { System.dealloc(p, layout) };
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, layout, new_size) };
        if !q.is_null() {
            LIVE.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        q
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live_heap() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// Held shared by every test, exclusively by the one that measures the heap.
static HEAP: RwLock<()> = RwLock::new(());

fn heap_shared() -> RwLockReadGuard<'static, ()> {
    HEAP.read().unwrap_or_else(PoisonError::into_inner)
}

fn heap_exclusive() -> RwLockWriteGuard<'static, ()> {
    HEAP.write().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------------------
// A reactor on its own thread
// ---------------------------------------------------------------------------

/// A [`Reactor`] running on its own thread. Dropping it stops it (with a
/// bounded wait, so a reactor that cannot stop does not hang the test).
struct Running {
    handle: Handle,
    done: Receiver<Result<(), String>>,
    thread: Option<JoinHandle<()>>,
}

fn spawn_reactor<H>(mut reactor: Reactor<H>) -> Running
where
    H: Handler + 'static,
    Reactor<H>: Send,
{
    let handle = reactor.handle();
    let (tx, done) = mpsc::channel();
    let thread = thread::Builder::new()
        .name("reactor".into())
        .spawn(move || {
            let result = reactor.run().map_err(|e| e.to_string());
            drop(reactor);
            let _ = tx.send(result);
        })
        .expect("spawn the reactor thread");
    Running {
        handle,
        done,
        thread: Some(thread),
    }
}

impl Running {
    /// Waits up to `timeout` for `run` to return; `Err` says why it did
    /// not return cleanly (still running, failed, or panicked, and where).
    fn join(&mut self, timeout: Duration) -> Result<(), String> {
        match self.done.recv_timeout(timeout) {
            Ok(result) => {
                if let Some(t) = self.thread.take() {
                    let _ = t.join();
                }
                result.map_err(|e| format!("Reactor::run failed: {e}"))
            }
            Err(RecvTimeoutError::Timeout) => {
                Err(format!("Reactor::run did not return within {timeout:?}"))
            }
            Err(RecvTimeoutError::Disconnected) => match self.thread.take().map(JoinHandle::join) {
                Some(Err(panic)) => Err(format!("the reactor panicked: {}", message(&*panic))),
                _ => Err("the reactor thread ended without a result".into()),
            },
        }
    }

    fn stop_and_join(&mut self, timeout: Duration) -> Result<(), String> {
        self.handle.stop();
        self.join(timeout)
    }

    /// Why the reactor is not reporting: it panicked, or is still running.
    fn why_silent(&mut self) -> String {
        match self.join(Duration::ZERO) {
            Ok(()) => "Reactor::run returned".into(),
            Err(e) => e,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            self.handle.stop();
            if self.done.recv_timeout(SHORT).is_ok() {
                let _ = t.join();
            }
        }
    }
}

fn message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(no message)".into())
}

/// What the small handlers below report.
#[derive(Debug)]
enum Ev {
    /// `close()` was called on the connection, at this time.
    Closed(Instant),
    /// An outgoing connect completed.
    Made(ConnId),
    Lost {
        at: Instant,
        /// The reason's `Display`.
        reason: String,
        /// `CloseReason::Error`.
        error: bool,
    },
}

fn lost(tx: &Sender<Ev>, reason: &CloseReason) {
    let _ = tx.send(Ev::Lost {
        at: Instant::now(),
        reason: reason.to_string(),
        error: matches!(reason, CloseReason::Error(_)),
    });
}

/// The next event, or a panic naming `what` and why the reactor is silent.
fn next_event(rx: &Receiver<Ev>, running: &mut Running, timeout: Duration, what: &str) -> Ev {
    match rx.recv_timeout(timeout) {
        Ok(ev) => ev,
        Err(e) => panic!(
            "no {what} within {timeout:?} ({e}): {}",
            running.why_silent()
        ),
    }
}

// ---------------------------------------------------------------------------
// Sockets
// ---------------------------------------------------------------------------

/// Listens on loopback with a small `SO_SNDBUF`, which accepted sockets
/// inherit: output the peer does not read then backs up in the reactor
/// after a few KiB instead of several MiB of kernel buffers.
fn listen_small<H: Handler>(reactor: &mut Reactor<H>, sndbuf: usize) -> SocketAddr {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.set_send_buffer_size(sndbuf).unwrap();
    s.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    s.listen(128).unwrap();
    s.set_nonblocking(true).unwrap();
    let listener: TcpListener = s.into();
    let addr = listener.local_addr().unwrap();
    reactor
        .add_listener(mio::net::TcpListener::from_std(listener))
        .unwrap();
    addr
}

/// A client with small kernel buffers (set before connecting, so the window
/// is small from the start), and the usual timeouts.
fn connect_small(addr: SocketAddr, rcvbuf: Option<usize>, sndbuf: Option<usize>) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    if let Some(n) = rcvbuf {
        s.set_recv_buffer_size(n).unwrap();
    }
    if let Some(n) = sndbuf {
        s.set_send_buffer_size(n).unwrap();
    }
    s.connect_timeout(&addr.into(), WAIT).unwrap();
    let s: TcpStream = s.into();
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s
}

/// Echoes, and otherwise does what its options say.
struct Echo {
    /// Set this idle timeout on every accepted connection.
    idle: Option<Duration>,
    /// `on_timer` counts here and sets the next timer with no delay.
    yields: Option<Arc<AtomicU64>>,
    ev: Sender<Ev>,
}

impl Echo {
    fn new(ev: Sender<Ev>) -> Echo {
        Echo {
            idle: None,
            yields: None,
            ev,
        }
    }
}

impl Handler for Echo {
    type Data = ();

    fn accept_wrapper(&mut self, cx: &mut Context<'_, ()>, id: ConnId, _: &PeerAddr) -> Option<()> {
        if let Some(timeout) = self.idle {
            cx.set_idle_timeout(id, Idle::Both, Some(timeout));
        }
        Some(())
    }

    fn connection_made(&mut self, _: &mut Context<'_, ()>, id: ConnId, _: &mut ()) {
        let _ = self.ev.send(Ev::Made(id));
    }

    fn service_connection(
        &mut self,
        cx: &mut Context<'_, ()>,
        id: ConnId,
        _: &mut (),
        inb: &mut InBuf,
    ) {
        let _ = cx.send_from(id, inb);
    }

    fn connection_lost(&mut self, _: &mut Context<'_, ()>, _: ConnId, _: (), reason: &CloseReason) {
        lost(&self.ev, reason);
    }

    fn on_timer(&mut self, cx: &mut Context<'_, ()>, _: Option<(ConnId, &mut ())>, tag: u64) {
        if let Some(fired) = &self.yields {
            fired.fetch_add(1, Ordering::Relaxed);
            cx.call_later(Duration::ZERO, None, tag); // asyncio's call_soon: "yield"
        }
    }
}

/// One round trip through an echo server.
fn echo_round_trip(addr: SocketAddr, within: Duration) -> Result<(), String> {
    let c = connect(addr);
    let deadline = Instant::now() + within;
    write_all_deadline(&c, b"ping", deadline).map_err(|e| format!("write: {e}"))?;
    let mut got = [0; 4];
    read_exact_deadline(&c, &mut got, deadline).map_err(|e| format!("read the echo: {e}"))?;
    check_bytes("echo", &got, b"ping")
}

// ---------------------------------------------------------------------------
// 1. Timers set with no delay from on_timer
// ---------------------------------------------------------------------------

/// `call_later(ZERO)` from `on_timer`, forever (asyncio's `call_soon` as a
/// yield): each timer waits for the next pass, so the loop still polls,
/// serves clients and sees `stop`. Before the fix, a timer set during the
/// pass that fires timers was due in that same pass: `run` never polled again.
#[test]
fn timer_set_with_no_delay_from_on_timer_still_lets_the_loop_poll() {
    with_deadline(LIMIT, || {
        let _heap = heap_shared();
        let fired = Arc::new(AtomicU64::new(0));
        let (tx, _rx) = mpsc::channel();
        let echo = Echo {
            yields: Some(fired.clone()),
            ..Echo::new(tx)
        };
        let mut reactor = Reactor::new(echo, Config::default()).unwrap();
        let lid = reactor.listen("127.0.0.1:0").unwrap();
        let addr = reactor.local_addr(lid).unwrap();
        reactor.with_context(|cx| cx.call_later(Duration::ZERO, None, 7));
        let mut running = spawn_reactor(reactor);

        if let Err(e) = echo_round_trip(addr, SHORT) {
            panic!(
                "a client was not served while a zero-delay timer chain ran \
                 ({} timers fired): {e}",
                fired.load(Ordering::Relaxed)
            );
        }
        let before = fired.load(Ordering::Relaxed);
        assert!(before > 0, "the timer chain never started");
        running
            .stop_and_join(SHORT)
            .expect("stop ends run while a zero-delay timer chain runs");
        let after = fired.load(Ordering::Relaxed);
        eprintln!("{before} timers fired by the echo, {after} by the stop");
    });
}

// ---------------------------------------------------------------------------
// 2. Input held back while writing is paused
// ---------------------------------------------------------------------------

const ANSWER: usize = 16 * 1024;
const REQUESTS: usize = 20;

/// Answers each line with [`ANSWER`] bytes, asyncio-style: while writing
/// is paused it leaves the rest of `inb` alone and waits for
/// `resume_writing` (it needs to do nothing there: the reactor offers the
/// held-back input again).
struct Producer {
    resumed: Arc<AtomicUsize>,
    ev: Sender<Ev>,
}

impl Handler for Producer {
    type Data = ();

    fn accept_wrapper(&mut self, _: &mut Context<'_, ()>, _: ConnId, _: &PeerAddr) -> Option<()> {
        Some(())
    }

    fn service_connection(
        &mut self,
        cx: &mut Context<'_, ()>,
        id: ConnId,
        _: &mut (),
        inb: &mut InBuf,
    ) {
        while let Some(end) = inb.iter().position(|&b| b == b'\n') {
            if cx.is_writing_paused(id) {
                return; // the rest waits for resume_writing
            }
            let _ = cx.send(id, &[b'r'; ANSWER]);
            inb.consume(end + 1);
        }
    }

    fn resume_writing(&mut self, _: &mut Context<'_, ()>, _: ConnId, _: &mut ()) {
        self.resumed.fetch_add(1, Ordering::Relaxed);
    }

    fn connection_lost(&mut self, _: &mut Context<'_, ()>, _: ConnId, _: (), reason: &CloseReason) {
        lost(&self.ev, reason);
    }
}

/// Twenty requests in one write, each answered with 16 KiB: the answers
/// pass high water after four, the producer stops, and the rest of the
/// requests sit in `inb` with the socket already drained. Before the fix
/// nothing offered them again: the client got four answers and waited forever.
#[test]
fn input_held_back_while_writing_is_paused_is_served_after_resume() {
    with_deadline(LIMIT, || {
        let _heap = heap_shared();
        let resumed = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::channel();
        let producer = Producer {
            resumed: resumed.clone(),
            ev: tx,
        };
        let mut reactor = Reactor::new(producer, Config::default()).unwrap();
        let lid = reactor.listen("127.0.0.1:0").unwrap();
        let addr = reactor.local_addr(lid).unwrap();
        let mut running = spawn_reactor(reactor);

        let c = connect(addr);
        let deadline = Instant::now() + SHORT;
        write_all_deadline(&c, &b"x\n".repeat(REQUESTS), deadline).unwrap();
        let mut got = vec![0; REQUESTS * ANSWER];
        let mut at = 0;
        while at < got.len() {
            c.set_read_timeout(Some(deadline.saturating_duration_since(Instant::now())))
                .unwrap();
            match (&c).read(&mut got[at..]) {
                Ok(0) => panic!("EOF after {at} bytes"),
                Ok(n) => at += n,
                Err(e) if is_timeout(&e) && Instant::now() < deadline => {}
                Err(e) => panic!(
                    "{} of {REQUESTS} answers within {SHORT:?}, then: {e} \
                     (resume_writing called {} times)",
                    at / ANSWER,
                    resumed.load(Ordering::Relaxed)
                ),
            }
        }
        assert!(got.iter().all(|&b| b == b'r'), "answers are not intact");
        assert!(
            resumed.load(Ordering::Relaxed) >= 1,
            "writing was never paused: the test did not exercise held-back input"
        );
        assert!(
            rx.try_recv().is_err(),
            "the server closed the connection (a paused handler taken for a stuck one?)"
        );
        drop(c);
        running.stop_and_join(WAIT).unwrap();
    });
}

// ---------------------------------------------------------------------------
// 3. Graceful close of a large output
// ---------------------------------------------------------------------------

const BULK: usize = 8 << 20;
const SHORT_LINGER: Duration = Duration::from_millis(200);

/// Sends [`BULK`] bytes to every client it accepts, then closes it.
struct Bulk {
    payload: Arc<Vec<u8>>,
    ev: Sender<Ev>,
}

impl Handler for Bulk {
    type Data = ();

    fn accept_wrapper(&mut self, cx: &mut Context<'_, ()>, id: ConnId, _: &PeerAddr) -> Option<()> {
        cx.send(id, &self.payload).expect("queue the payload");
        cx.close(id); // gracefully: the payload is still delivered
        let _ = self.ev.send(Ev::Closed(Instant::now()));
        Some(())
    }

    fn service_connection(
        &mut self,
        _: &mut Context<'_, ()>,
        _: ConnId,
        _: &mut (),
        _: &mut InBuf,
    ) {
    }

    fn connection_lost(&mut self, _: &mut Context<'_, ()>, _: ConnId, _: (), reason: &CloseReason) {
        lost(&self.ev, reason);
    }
}

/// A server that queues [`BULK`] bytes and closes each client at once, with
/// a linger of [`SHORT_LINGER`] and small kernel buffers.
fn start_bulk() -> (SocketAddr, Arc<Vec<u8>>, Receiver<Ev>, Running) {
    let mut payload = vec![0; BULK];
    Pattern(0xB01C).fill(0, &mut payload);
    let payload = Arc::new(payload);
    let config = Config {
        max_outb: 2 * BULK,
        high_water: 2 * BULK,
        linger: SHORT_LINGER,
        // The flush's no-progress timeout, which `linger` also set before
        // the two were split (issue 10 #2).
        flush_timeout: SHORT_LINGER,
        ..Config::default()
    };
    let (tx, rx) = mpsc::channel();
    let bulk = Bulk {
        payload: payload.clone(),
        ev: tx,
    };
    let mut reactor = Reactor::new(bulk, config).unwrap();
    let addr = listen_small(&mut reactor, 64 * 1024);
    (addr, payload, rx, spawn_reactor(reactor))
}

/// A reader that reads steadily but needs several lingers for the whole
/// output gets all of it, then EOF, and the server reports a plain close.
/// Before the fix the flush was cut off `linger` after `close()`: the
/// reader got a clean EOF after a truncated stream.
#[test]
fn graceful_close_keeps_flushing_while_a_slow_reader_makes_progress() {
    with_deadline(LIMIT, || {
        let _heap = heap_shared();
        let (addr, payload, rx, mut running) = start_bulk();
        let c = connect_small(addr, Some(64 * 1024), None);
        let closed = match next_event(&rx, &mut running, WAIT, "close") {
            Ev::Closed(at) => at,
            other => panic!("expected the close, got {other:?}"),
        };
        let deadline = Instant::now() + WAIT;
        let mut got = Vec::with_capacity(BULK);
        let mut buf = vec![0; 64 * 1024];
        loop {
            c.set_read_timeout(Some(deadline.saturating_duration_since(Instant::now())))
                .unwrap();
            match (&c).read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if is_timeout(&e) && Instant::now() < deadline => continue,
                Err(e) => panic!("after {} of {BULK} bytes: {e}", got.len()),
            }
            assert!(got.len() <= BULK, "more bytes than were sent");
            // The pace under test, not a synchronisation: at most 64 KiB
            // per 5 ms, so 8 MiB take several lingers to read.
            thread::sleep(Duration::from_millis(5));
        }
        let took = closed.elapsed();
        if let Err(e) = check_bytes("the stream before EOF", &got, &payload) {
            panic!(
                "{e}: {} of {BULK} bytes, then a clean EOF, {took:?} after close() \
                 with a linger of {SHORT_LINGER:?}",
                got.len()
            );
        }
        assert!(
            took > 2 * SHORT_LINGER,
            "the reader took only {took:?}: too fast to test a flush longer than linger"
        );
        match next_event(&rx, &mut running, WAIT, "connection_lost") {
            Ev::Lost { reason, error, .. } => {
                assert!(!error, "a flushed close reported as {reason}");
                assert_eq!(reason, CloseReason::Closed.to_string());
            }
            other => panic!("expected connection_lost, got {other:?}"),
        }
        eprintln!("{BULK} bytes read in {took:?} (linger {SHORT_LINGER:?})");
        running.stop_and_join(WAIT).unwrap();
    });
}

/// A reader that stops reading altogether is closed within a few lingers,
/// and `connection_lost` says output was dropped. Before the fix it was
/// closed `linger` after `close()` and reported as a plain close.
#[test]
fn graceful_close_gives_up_on_a_stalled_reader_and_says_bytes_were_dropped() {
    with_deadline(LIMIT, || {
        let _heap = heap_shared();
        let (addr, _payload, rx, mut running) = start_bulk();
        let c = connect_small(addr, Some(4096), None); // and never read
        let closed = match next_event(&rx, &mut running, WAIT, "close") {
            Ev::Closed(at) => at,
            other => panic!("expected the close, got {other:?}"),
        };
        let (at, reason, error) = match next_event(&rx, &mut running, WAIT, "connection_lost") {
            Ev::Lost { at, reason, error } => (at, reason, error),
            other => panic!("expected connection_lost, got {other:?}"),
        };
        let took = at.saturating_duration_since(closed);
        assert!(
            error && reason.contains("dropped"),
            "a close that dropped output is reported as {reason:?}"
        );
        let dropped = reason
            .split_whitespace()
            .find_map(|w| w.parse::<usize>().ok())
            .unwrap_or_else(|| panic!("{reason:?} does not say how many bytes"));
        assert!(
            (1..BULK).contains(&dropped),
            "{dropped} of {BULK} bytes dropped?"
        );
        // The reason above is the check (the bug reported a plain close);
        // this bound only says the close came, generously.
        assert!(
            took < WAIT,
            "a stalled reader held on for {took:?} with a linger of {SHORT_LINGER:?}"
        );
        eprintln!("stalled reader closed {took:?} after close(): {reason}");
        drop(c);
        running.stop_and_join(WAIT).unwrap();
    });
}

// ---------------------------------------------------------------------------
// 4. Closing with a full input buffer
// ---------------------------------------------------------------------------

const SMALL_INB: usize = 16 * 1024;
const UPLOAD: usize = 8 << 20;

/// Refuses a request that fills `inb` without a newline: an error line,
/// then `close()`, with `inb` still full.
struct Refuser {
    ev: Sender<Ev>,
}

impl Handler for Refuser {
    type Data = ();

    fn accept_wrapper(&mut self, _: &mut Context<'_, ()>, _: ConnId, _: &PeerAddr) -> Option<()> {
        Some(())
    }

    fn service_connection(
        &mut self,
        cx: &mut Context<'_, ()>,
        id: ConnId,
        _: &mut (),
        inb: &mut InBuf,
    ) {
        if !inb.contains(&b'\n') && inb.len() >= SMALL_INB {
            let _ = cx.send(id, b"error: request too large\n");
            cx.close(id);
            let _ = self.ev.send(Ev::Closed(Instant::now()));
        }
    }

    fn connection_lost(&mut self, _: &mut Context<'_, ()>, _: ConnId, _: (), reason: &CloseReason) {
        lost(&self.ev, reason);
    }
}

/// The server closes while its `inb` is full and the client is still
/// uploading 8 MiB: the linger phase reads and discards the rest, so the
/// upload completes at once and both sides close cleanly. Before the fix a
/// full `inb` stopped the linger phase from reading: the upload stalled for
/// the whole linger, then was reset.
#[test]
fn close_with_a_full_input_buffer_still_reads_the_peer_to_its_fin() {
    with_deadline(LIMIT, || {
        let _heap = heap_shared();
        // Long, so that an upload stalled on it (the bug) cannot be
        // mistaken for a slow machine: half of it is a generous bound.
        let linger = Duration::from_secs(30);
        let config = Config {
            max_inb: SMALL_INB,
            read_chunk: SMALL_INB,
            linger,
            ..Config::default()
        };
        let (tx, rx) = mpsc::channel();
        let mut reactor = Reactor::new(Refuser { ev: tx }, config).unwrap();
        let lid = reactor.listen("127.0.0.1:0").unwrap();
        let addr = reactor.local_addr(lid).unwrap();
        let mut running = spawn_reactor(reactor);

        // A small send buffer, so that 8 MiB cannot hide in kernel buffers.
        let c = connect_small(addr, None, Some(64 * 1024));
        let w = c.try_clone().unwrap();
        let (done_tx, done) = mpsc::channel();
        let started = Instant::now();
        thread::spawn(move || {
            let chunk = vec![b'a'; 64 * 1024];
            let deadline = started + WAIT;
            let mut sent = 0;
            let result = loop {
                if sent == UPLOAD {
                    break shutdown_write(&w).map_err(|e| format!("shutdown: {e}"));
                }
                match write_all_deadline(&w, &chunk, deadline) {
                    Ok(()) => sent += chunk.len(),
                    Err(e) => break Err(format!("{e} after {sent} of {UPLOAD} bytes")),
                }
            };
            let _ = done_tx.send(result.map(|()| started.elapsed()));
        });
        let reply = read_to_eof_deadline(&c, 1024, Instant::now() + WAIT).expect("reply, then EOF");
        assert_eq!(
            String::from_utf8_lossy(&reply),
            "error: request too large\n"
        );
        let upload = done
            .recv_timeout(WAIT + SHORT)
            .expect("the writer thread reports");
        match upload {
            Ok(took) => {
                eprintln!("{UPLOAD} bytes uploaded past the close in {took:?}");
                assert!(
                    took < linger / 2,
                    "the upload took {took:?}: it waited on the linger ({linger:?})"
                );
            }
            Err(e) => panic!(
                "the upload failed at {:?}: {e} (linger {linger:?})",
                started.elapsed()
            ),
        }
        loop {
            match next_event(&rx, &mut running, WAIT, "connection_lost") {
                Ev::Closed(_) => continue,
                Ev::Lost { reason, error, .. } => {
                    assert!(!error, "the close ended in {reason}");
                    break;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        running.stop_and_join(WAIT).unwrap();
    });
}

// ---------------------------------------------------------------------------
// 5. close() during a connect
// ---------------------------------------------------------------------------

/// `connect`, `send`, `close` before the connect completes: the peer gets
/// the bytes, then EOF (as `close` promises: "write what is pending").
/// Before the fix the close killed the connecting socket and its output.
#[test]
fn close_during_a_connect_still_delivers_the_queued_output() {
    with_deadline(LIMIT, || {
        let _heap = heap_shared();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::channel();
        let mut reactor = Reactor::new(Echo::new(tx), Config::default()).unwrap();
        reactor.with_context(|cx| {
            let id = cx.connect(addr, ()).unwrap();
            cx.send(id, b"hello before close\n").unwrap();
            cx.close(id);
        });
        let mut running = spawn_reactor(reactor);

        let s = accept_within(&listener, WAIT);
        let got = read_to_eof_deadline(&s, 1024, Instant::now() + WAIT).expect("bytes, then EOF");
        assert_eq!(
            String::from_utf8_lossy(&got),
            "hello before close\n",
            "what the peer read before EOF"
        );
        drop(s); // the FIN the linger waits for
        loop {
            match next_event(&rx, &mut running, WAIT, "connection_lost") {
                Ev::Made(_) => continue,
                Ev::Lost { reason, .. } => {
                    assert_eq!(reason, CloseReason::Closed.to_string());
                    break;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        running.stop_and_join(WAIT).unwrap();
    });
}

// ---------------------------------------------------------------------------
// 6. Duration::MAX, usize::MAX and tiny rates
// ---------------------------------------------------------------------------

/// A timer a "forever" away is accepted, and the loop still runs and stops.
#[test]
fn timers_of_duration_max_do_not_overflow() {
    with_deadline(LIMIT, || {
        let _heap = heap_shared();
        let (tx, _rx) = mpsc::channel();
        let mut reactor = Reactor::new(Echo::new(tx), Config::default()).unwrap();
        let lid = reactor.listen("127.0.0.1:0").unwrap();
        let addr = reactor.local_addr(lid).unwrap();
        reactor.with_context(|cx| {
            cx.call_later(Duration::MAX, None, 1);
            cx.call_every(Duration::MAX, None, 2);
        });
        let mut running = spawn_reactor(reactor);
        echo_round_trip(addr, WAIT).unwrap();
        running.stop_and_join(WAIT).unwrap();
    });
}

/// `linger: Duration::MAX` means "wait for the peer's FIN however long":
/// the close goes through, and ends when the peer closes.
#[test]
fn linger_of_duration_max_does_not_overflow() {
    with_deadline(LIMIT, || {
        let _heap = heap_shared();
        let config = Config {
            linger: Duration::MAX,
            ..Config::default()
        };
        let (tx, rx) = mpsc::channel();
        let bulk = Bulk {
            payload: Arc::new(b"bye\n".to_vec()),
            ev: tx,
        };
        let mut reactor = Reactor::new(bulk, config).unwrap();
        let lid = reactor.listen("127.0.0.1:0").unwrap();
        let addr = reactor.local_addr(lid).unwrap();
        let mut running = spawn_reactor(reactor);

        let c = connect(addr);
        let got = read_to_eof_deadline(&c, 1024, Instant::now() + WAIT);
        drop(c); // the FIN the linger waits for
        loop {
            match next_event(&rx, &mut running, WAIT, "connection_lost") {
                Ev::Closed(_) => continue,
                Ev::Lost { reason, .. } => {
                    assert_eq!(reason, CloseReason::Closed.to_string());
                    break;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(got.expect("bye, then EOF"), b"bye\n");
        running.stop_and_join(WAIT).unwrap();
    });
}

/// `shutdown_timeout: Duration::MAX`: `stop` closes the connections
/// gracefully and `run` returns once they are gone.
#[test]
fn shutdown_timeout_of_duration_max_does_not_overflow() {
    with_deadline(LIMIT, || {
        let _heap = heap_shared();
        let config = Config {
            shutdown_timeout: Duration::MAX,
            ..Config::default()
        };
        let (tx, _rx) = mpsc::channel();
        let mut reactor = Reactor::new(Echo::new(tx), config).unwrap();
        let lid = reactor.listen("127.0.0.1:0").unwrap();
        let addr = reactor.local_addr(lid).unwrap();
        let mut running = spawn_reactor(reactor);

        let c = connect(addr);
        let deadline = Instant::now() + WAIT;
        write_all_deadline(&c, b"x", deadline).unwrap();
        read_exact_deadline(&c, &mut [0], deadline).unwrap(); // accepted and served
        running.handle.stop();
        let rest = read_to_eof_deadline(&c, 0, deadline);
        drop(c);
        running.join(WAIT).expect("run returns after the stop");
        rest.expect("EOF on stop");
    });
}

/// `connect_timeout: Duration::MAX`: the connect goes ahead and completes.
#[test]
fn connect_timeout_of_duration_max_does_not_overflow() {
    with_deadline(LIMIT, || {
        let _heap = heap_shared();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let config = Config {
            connect_timeout: Duration::MAX,
            ..Config::default()
        };
        let (tx, rx) = mpsc::channel();
        let mut reactor = Reactor::new(Echo::new(tx), config).unwrap();
        let id = reactor.connect(addr, ()).unwrap();
        let mut running = spawn_reactor(reactor);
        let peer = accept_within(&listener, WAIT);
        match next_event(&rx, &mut running, WAIT, "connection_made") {
            Ev::Made(made) => assert_eq!(made, id),
            other => panic!("expected connection_made, got {other:?}"),
        }
        drop(peer);
        running.stop_and_join(WAIT).unwrap();
    });
}

/// An idle timeout of `Duration::MAX` is set, and does not fire: the
/// connection ends when the client leaves.
#[test]
fn idle_timeout_of_duration_max_does_not_overflow() {
    with_deadline(LIMIT, || {
        let _heap = heap_shared();
        let (tx, rx) = mpsc::channel();
        let echo = Echo {
            idle: Some(Duration::MAX),
            ..Echo::new(tx)
        };
        let mut reactor = Reactor::new(echo, Config::default()).unwrap();
        let lid = reactor.listen("127.0.0.1:0").unwrap();
        let addr = reactor.local_addr(lid).unwrap();
        let mut running = spawn_reactor(reactor);
        if let Err(e) = echo_round_trip(addr, WAIT) {
            panic!("{e}: {}", running.why_silent());
        }
        // An accepted connection gets connection_made too (issue 9).
        match next_event(&rx, &mut running, WAIT, "connection_made") {
            Ev::Made(_) => {}
            other => panic!("expected connection_made, got {other:?}"),
        }
        match next_event(&rx, &mut running, WAIT, "connection_lost") {
            Ev::Lost { reason, .. } => assert_eq!(reason, CloseReason::PeerClosed.to_string()),
            other => panic!("expected connection_lost, got {other:?}"),
        }
        running.stop_and_join(WAIT).unwrap();
    });
}

/// `usize::MAX` as a line length means "no limit", not an overflow.
#[test]
fn line_lengths_of_usize_max_do_not_overflow() {
    let mut codec = LineCodec::new(usize::MAX);
    assert_eq!(codec.decode(b"hello"), (0, None));
    assert_eq!(codec.decode(b"hello\n"), (6, Some(Ok(&b"hello"[..]))));
}

/// A chat line limit of `usize::MAX` gives the reactor room for any line.
#[test]
fn chat_max_line_of_usize_max_does_not_overflow() {
    let chat = ChatConfig {
        max_line: usize::MAX,
        ..ChatConfig::default()
    };
    assert_eq!(chat.reactor_config().max_inb, usize::MAX);
}

/// A rate too small for a `Duration` asks to wait (a long time) instead of
/// panicking.
#[test]
fn a_zero_rate_token_bucket_waits_instead_of_panicking() {
    let now = Instant::now();
    let mut bucket = TokenBucket::new(0.0, 1.0, now);
    assert_eq!(bucket.take(now), Ok(()), "the burst of one");
    let wait = bucket.take(now).expect_err("no second token");
    assert!(wait >= Duration::from_secs(1), "waits only {wait:?}");
}

// ---------------------------------------------------------------------------
// 7. Chat: memory held for a client that does not read
// ---------------------------------------------------------------------------

/// What [`Watched`] reports: one per callback of interest.
#[derive(Debug)]
enum ChatEv {
    Accepted(SocketAddr),
    /// `service_connection` on the client at this address returned, with
    /// that client's pending output.
    Served(SocketAddr, usize),
    Lost(SocketAddr, String),
}

/// [`ChatServer`], reporting each callback.
struct Watched {
    inner: ChatServer,
    peers: HashMap<ConnId, SocketAddr>,
    ev: Sender<ChatEv>,
}

impl Handler for Watched {
    type Data = ChatData;

    fn accept_wrapper(
        &mut self,
        cx: &mut Context<'_, ChatData>,
        id: ConnId,
        peer: &PeerAddr,
    ) -> Option<ChatData> {
        let data = self.inner.accept_wrapper(cx, id, peer);
        let peer = peer.inet().expect("TCP");
        self.peers.insert(id, peer);
        let _ = self.ev.send(ChatEv::Accepted(peer));
        data
    }

    fn service_connection(
        &mut self,
        cx: &mut Context<'_, ChatData>,
        id: ConnId,
        data: &mut ChatData,
        inb: &mut InBuf,
    ) {
        self.inner.service_connection(cx, id, data, inb);
        if let (Some(&peer), Some(pending)) = (self.peers.get(&id), cx.pending_output(id)) {
            let _ = self.ev.send(ChatEv::Served(peer, pending));
        }
    }

    fn eof_received(
        &mut self,
        cx: &mut Context<'_, ChatData>,
        id: ConnId,
        data: &mut ChatData,
        inb: &mut InBuf,
    ) {
        self.inner.eof_received(cx, id, data, inb);
    }

    fn connection_lost(
        &mut self,
        cx: &mut Context<'_, ChatData>,
        id: ConnId,
        data: ChatData,
        reason: &CloseReason,
    ) {
        self.inner.connection_lost(cx, id, data, reason);
        if let Some(peer) = self.peers.remove(&id) {
            let _ = self.ev.send(ChatEv::Lost(peer, reason.to_string()));
        }
    }

    fn on_timer(
        &mut self,
        cx: &mut Context<'_, ChatData>,
        conn: Option<(ConnId, &mut ChatData)>,
        tag: u64,
    ) {
        self.inner.on_timer(cx, conn, tag);
    }

    fn shutting_down(&mut self, cx: &mut Context<'_, ChatData>) {
        self.inner.shutting_down(cx);
    }
}

/// Waits for the next event about `peer` of the kind `pick` accepts; a
/// client lost on the way fails the test.
fn chat_wait<T>(
    rx: &Receiver<ChatEv>,
    running: &mut Running,
    what: &str,
    mut pick: impl FnMut(&ChatEv) -> Option<T>,
) -> T {
    loop {
        let ev = match rx.recv_timeout(WAIT) {
            Ok(ev) => ev,
            Err(e) => panic!("no {what} within {WAIT:?} ({e}): {}", running.why_silent()),
        };
        if let ChatEv::Lost(peer, why) = &ev {
            panic!("{peer} was disconnected ({why}) while waiting for {what}");
        }
        if let Some(t) = pick(&ev) {
            return t;
        }
    }
}

/// Pairs of (broadcast, notice) sent to the client that does not read.
const PAIRS: usize = 1000;

/// A client that never reads, with its output backed up (but under high
/// water, so it is still read), receives a short broadcast and then a short
/// notice, a thousand times: the server's heap grows by about the bytes
/// queued, not by a pooled buffer per notice. Before the fix each notice
/// after a broadcast took a whole `read_chunk` (16 KiB) buffer, so these
/// 35 KB of output pinned 16 MiB, and a client could pin hundreds of
/// times its output cap.
#[test]
fn chat_notices_after_broadcasts_to_a_client_that_does_not_read_stay_small() {
    with_deadline(LIMIT, || {
        let _heap = heap_exclusive();
        let chat = ChatConfig {
            lines_per_sec: 1e6,
            burst: 1e6,
            ..ChatConfig::default()
        };
        let config = chat.reactor_config();
        let high_water = config.high_water;
        let (tx, rx) = mpsc::channel();
        let watched = Watched {
            inner: ChatServer::new(chat.clone()),
            peers: HashMap::new(),
            ev: tx,
        };
        let mut reactor = Reactor::new(watched, config).unwrap();
        let addr = listen_small(&mut reactor, 8 * 1024);
        let mut running = spawn_reactor(reactor);

        // A never reads (and has a small window); B talks.
        let a = connect_small(addr, Some(4096), None);
        let a_addr = a.local_addr().unwrap();
        chat_wait(&rx, &mut running, "A's accept", |ev| {
            matches!(ev, ChatEv::Accepted(p) if *p == a_addr).then_some(())
        });
        let b = connect(addr);
        let b_addr = b.local_addr().unwrap();
        chat_wait(&rx, &mut running, "B's accept", |ev| {
            matches!(ev, ChatEv::Accepted(p) if *p == b_addr).then_some(())
        });
        let deadline = Instant::now() + LIMIT;
        let say = |s: &TcpStream, peer: SocketAddr, line: &[u8], running: &mut Running| {
            write_all_deadline(s, line, deadline).unwrap();
            chat_wait(&rx, running, "a line served", |ev| match ev {
                ChatEv::Served(p, pending) if *p == peer => Some(*pending),
                _ => None,
            })
        };
        say(&b, b_addr, b"/nick b\n", &mut running); // so that B's lines are short

        // Back A's output up: big broadcasts until the kernel holds no
        // more, which A's pending output shows (reported after its own
        // command, so it counts what earlier passes could not write).
        let big = format!("{}\n", "x".repeat(4000));
        let mut pending = 0;
        for round in 0.. {
            assert!(
                round < 2000,
                "A's output never backed up (pending {pending})"
            );
            say(&b, b_addr, big.as_bytes(), &mut running);
            pending = say(&a, a_addr, b"/a\n", &mut running);
            if pending > 1024 {
                break;
            }
        }
        let filled = pending;

        let before = live_heap();
        for _ in 0..PAIRS {
            say(&b, b_addr, b"hi\n", &mut running); // "<b> hi": a broadcast to A
            pending = say(&a, a_addr, b"/a\n", &mut running); // a notice to A after it
        }
        let grown = live_heap() - before;
        let queued = pending.saturating_sub(filled);
        eprintln!(
            "A's pending output {filled} -> {pending} bytes; heap grew {} KiB over {PAIRS} pairs",
            grown / 1024
        );
        assert!(
            pending < high_water && pending < chat.max_output,
            "A's pending output reached {pending}: the scenario left its intended range"
        );
        assert!(
            queued >= PAIRS * 30,
            "A's output grew by only {queued} bytes: were the pairs queued?"
        );
        assert!(
            grown < 4 << 20,
            "{} KiB of heap held for {queued} bytes of queued output",
            grown / 1024
        );
        drop((a, b));
        running.stop_and_join(WAIT).unwrap();
    });
}
