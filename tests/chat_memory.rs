//! Memory held for a client that does not read, measured with a counting
//! allocator (this binary's global allocator).

mod util;

// The chat application, in-process; each test binary uses part of it.
#[allow(dead_code)]
#[path = "../examples/chatroom/chat/mod.rs"]
mod chat;

use chat::{ChatConfig, ChatServer, Client as ChatData};
use mio_selectors::{CloseReason, ConnId, Context, Handler, InBuf, PeerAddr, Reactor};
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{mpsc, PoisonError, RwLock, RwLockWriteGuard};
use std::time::Instant;
#[allow(unused_imports)]
use util::regress::*;
use util::{connect, with_deadline, write_all_deadline};

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

fn heap_exclusive() -> RwLockWriteGuard<'static, ()> {
    HEAP.write().unwrap_or_else(PoisonError::into_inner)
}

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

/// Regression: a short notice after a broadcast pinned a whole pooled buffer, so a client that does not read held many times its output cap.
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
