//! Helpers of the regressions tests, shared by the feature files that
//! took them over.

#![allow(dead_code)]

#[allow(unused_imports)]
use crate::util::{
    accept_within, check_bytes, connect, is_timeout, read_exact_deadline, read_to_eof_deadline,
    shutdown_write, with_deadline, write_all_deadline, Pattern, IO_TIMEOUT,
};
#[allow(unused_imports)]
use mio_selectors::codec::{Decoder, LineCodec};
#[allow(unused_imports)]
use mio_selectors::reactor::{Idle, TokenBucket};
#[allow(unused_imports)]
use mio_selectors::{
    CloseReason, Config, ConnId, Context, Handle, Handler, InBuf, PeerAddr, Reactor,
};
#[allow(unused_imports)]
use std::alloc::{GlobalAlloc, Layout, System};
#[allow(unused_imports)]
use std::collections::HashMap;
#[allow(unused_imports)]
use std::io::Read;
#[allow(unused_imports)]
use std::net::{SocketAddr, TcpListener, TcpStream};
#[allow(unused_imports)]
use std::sync::atomic::{AtomicIsize, AtomicU64, AtomicUsize, Ordering};
#[allow(unused_imports)]
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
#[allow(unused_imports)]
use std::sync::{mpsc, Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
#[allow(unused_imports)]
use std::thread;
#[allow(unused_imports)]
use std::thread::JoinHandle;
#[allow(unused_imports)]
use std::time::{Duration, Instant};

#[allow(unused_imports)]
use crate::util::{self, fault};

/// The watchdog limit of each test.
pub const LIMIT: Duration = Duration::from_secs(30);

/// How long a test waits for any one thing it expects.
pub const WAIT: Duration = Duration::from_secs(10);

/// How long a test waits for something the fixed code does at once and the
/// old code never does (kept short so that a regression fails quickly).
pub const SHORT: Duration = Duration::from_secs(5);

#[allow(unused_imports)] // each binary uses its own part
pub use crate::util::reactor::{message, spawn_reactor, Running};

/// What the small handlers below report.
#[derive(Debug)]
pub enum Ev {
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

pub fn lost(tx: &Sender<Ev>, reason: &CloseReason) {
    let _ = tx.send(Ev::Lost {
        at: Instant::now(),
        reason: reason.to_string(),
        error: matches!(reason, CloseReason::Error(_)),
    });
}

/// The next event, or a panic naming `what` and why the reactor is silent.
pub fn next_event(rx: &Receiver<Ev>, running: &mut Running, timeout: Duration, what: &str) -> Ev {
    match rx.recv_timeout(timeout) {
        Ok(ev) => ev,
        Err(e) => panic!(
            "no {what} within {timeout:?} ({e}): {}",
            running.why_silent()
        ),
    }
}

/// Listens on loopback with a small `SO_SNDBUF`, which accepted sockets
/// inherit: output the peer does not read then backs up in the reactor
/// after a few KiB instead of several MiB of kernel buffers.
pub fn listen_small<H: Handler>(reactor: &mut Reactor<H>, sndbuf: usize) -> SocketAddr {
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
pub fn connect_small(addr: SocketAddr, rcvbuf: Option<usize>, sndbuf: Option<usize>) -> TcpStream {
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
pub struct Echo {
    /// Set this idle timeout on every accepted connection.
    pub idle: Option<Duration>,
    /// `on_timer` counts here and sets the next timer with no delay.
    pub yields: Option<Arc<AtomicU64>>,
    pub ev: Sender<Ev>,
}

impl Echo {
    pub fn new(ev: Sender<Ev>) -> Echo {
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
