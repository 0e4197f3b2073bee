//! The reactor's breadth features over real loopback sockets: UDP, Unix
//! stream listeners, IPv6, outgoing connects, timers and idle timeouts,
//! work from other threads through `Handle`, listener options, half-close
//! and write flow control.
//!
//! Each test runs a reactor on its own thread with [`Probe`], a handler that
//! reports every callback on a channel (and lets the test act inside the
//! callback through a hook). Tests wait on that channel with deadlines, never
//! on sleeps; every client socket has timeouts; every test runs under a
//! watchdog. The only sleeps are a polling interval where nothing can signal
//! (std's listener has no accept timeout) and a client's pace against an
//! idle timeout, which is the quantity under test; each says so.
//!
//! Not checked here, because it cannot be observed from outside: that a
//! burst of `call_soon_threadsafe` costs one wake-up (the loop's passes are
//! not visible to a task or a handler); and `Error::QueueFull`, because
//! Linux loopback never makes a UDP `sendto` say `WouldBlock` (see
//! `udp_send_to_never_blocks_and_refused_datagrams_are_not_queued`).

mod util;

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use mio_selectors::reactor::{Idle, ListenOptions, TimerId, UdpId};
use mio_selectors::{
    CloseReason, Config, ConnId, Context, Error, Handle, Handler, InBuf, PeerAddr, Reactor,
};
use util::{
    accept_within, check_bytes, connect, read_exact_deadline, read_to_eof_deadline, with_deadline,
    write_all_deadline, Latch, Pattern, Rng, IO_TIMEOUT,
};

/// The watchdog limit of each test.
const LIMIT: Duration = Duration::from_secs(30);
/// How long a test waits for any one thing it expects.
const WAIT: Duration = Duration::from_secs(10);
const EMSGSIZE: i32 = 90;

// ---------------------------------------------------------------------------
// The probe handler and the reactor thread
// ---------------------------------------------------------------------------

/// [`CloseReason`] reduced to something comparable and `Send`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Why {
    PeerClosed,
    Closed,
    Error(io::ErrorKind),
    ConnectFailed(io::ErrorKind),
    IdleTimeout,
    Shutdown,
    Other(String),
}

impl From<&CloseReason> for Why {
    fn from(r: &CloseReason) -> Why {
        match r {
            CloseReason::PeerClosed => Why::PeerClosed,
            CloseReason::Closed => Why::Closed,
            CloseReason::Error(e) => Why::Error(e.kind()),
            CloseReason::ConnectFailed(e) => Why::ConnectFailed(e.kind()),
            CloseReason::IdleTimeout => Why::IdleTimeout,
            CloseReason::Shutdown => Why::Shutdown,
            other => Why::Other(other.to_string()),
        }
    }
}

/// One handler callback, or a note a hook made.
#[derive(Clone)]
enum Ev {
    Accepted {
        id: ConnId,
        peer: String,
    },
    Made(ConnId),
    Data(ConnId, Vec<u8>),
    Eof(ConnId),
    Lost(ConnId, Why),
    /// `connect_failed`: an outgoing connection that was never made.
    ConnectFailed(ConnId, Why),
    Timer(Option<ConnId>, u64),
    /// `pause_writing`.
    Pause(ConnId),
    /// `resume_writing`, with the pending output at that moment.
    Resume(ConnId, usize),
    Datagram {
        from: SocketAddr,
        data: Vec<u8>,
    },
    ShuttingDown,
    Note(&'static str, i64),
}

impl fmt::Debug for Ev {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ev::Accepted { id, peer } => write!(f, "Accepted({id}, {peer})"),
            Ev::Made(id) => write!(f, "Made({id})"),
            Ev::Data(id, d) => write!(f, "Data({id}, {} bytes)", d.len()),
            Ev::Eof(id) => write!(f, "Eof({id})"),
            Ev::Lost(id, why) => write!(f, "Lost({id}, {why:?})"),
            Ev::ConnectFailed(id, why) => write!(f, "ConnectFailed({id}, {why:?})"),
            Ev::Timer(id, tag) => write!(f, "Timer({id:?}, {tag})"),
            Ev::Pause(id) => write!(f, "Pause({id})"),
            Ev::Resume(id, n) => write!(f, "Resume({id}, {n})"),
            Ev::Datagram { from, data, .. } => write!(f, "Datagram({from}, {} bytes)", data.len()),
            Ev::ShuttingDown => write!(f, "ShuttingDown"),
            Ev::Note(what, v) => write!(f, "Note({what}, {v})"),
        }
    }
}

/// Sends events to the test, stamped with the time they happened.
#[derive(Clone)]
struct Emit(Sender<(Instant, Ev)>);

impl Emit {
    fn ev(&self, ev: Ev) {
        let _ = self.0.send((Instant::now(), ev));
    }

    fn note(&self, what: &'static str, v: impl TryInto<i64>) {
        self.ev(Ev::Note(what, v.try_into().unwrap_or(i64::MIN)));
    }
}

/// Called on the reactor thread after each event is reported, to act on it.
type Hook = Box<dyn FnMut(&mut Context<'_, ()>, &Ev, &Emit) + Send>;

/// Reports every callback; echoes stream input and datagrams if `echo`.
struct Probe {
    emit: Emit,
    echo: bool,
    hook: Option<Hook>,
}

impl Probe {
    /// A probe nobody listens to, for reactors that never run.
    fn quiet() -> Probe {
        Probe {
            emit: Emit(mpsc::channel().0),
            echo: false,
            hook: None,
        }
    }

    fn event(&mut self, cx: &mut Context<'_, ()>, ev: Ev) {
        self.emit.ev(ev.clone());
        if let Some(hook) = &mut self.hook {
            hook(cx, &ev, &self.emit);
        }
    }
}

impl Handler for Probe {
    type Data = ();

    fn accept_wrapper(
        &mut self,
        cx: &mut Context<'_, ()>,
        id: ConnId,
        peer: &PeerAddr,
    ) -> Option<()> {
        let peer = peer.to_string();
        self.event(cx, Ev::Accepted { id, peer });
        Some(())
    }

    fn connection_made(&mut self, cx: &mut Context<'_, ()>, id: ConnId, _: &mut ()) {
        self.event(cx, Ev::Made(id));
    }

    fn service_connection(
        &mut self,
        cx: &mut Context<'_, ()>,
        id: ConnId,
        _: &mut (),
        inb: &mut InBuf,
    ) {
        let data = inb.to_vec();
        if self.echo {
            let _ = cx.send_from(id, inb);
        }
        inb.clear();
        self.event(cx, Ev::Data(id, data));
    }

    fn eof_received(&mut self, cx: &mut Context<'_, ()>, id: ConnId, _: &mut (), _: &mut InBuf) {
        self.event(cx, Ev::Eof(id));
        cx.close(id);
    }

    fn connection_lost(&mut self, cx: &mut Context<'_, ()>, id: ConnId, _: (), r: &CloseReason) {
        self.event(cx, Ev::Lost(id, r.into()));
    }

    fn connect_failed(&mut self, cx: &mut Context<'_, ()>, id: ConnId, _: (), r: &CloseReason) {
        self.event(cx, Ev::ConnectFailed(id, r.into()));
    }

    fn pause_writing(&mut self, cx: &mut Context<'_, ()>, id: ConnId, _: &mut ()) {
        self.event(cx, Ev::Pause(id));
    }

    fn resume_writing(&mut self, cx: &mut Context<'_, ()>, id: ConnId, _: &mut ()) {
        let pending = cx.pending_output(id).unwrap_or(usize::MAX);
        self.event(cx, Ev::Resume(id, pending));
    }

    fn datagram_received(
        &mut self,
        cx: &mut Context<'_, ()>,
        udp: UdpId,
        data: &[u8],
        from: SocketAddr,
    ) {
        if self.echo {
            if let Err(e) = cx.send_to(udp, data, from) {
                self.emit.note("send_to failed", 1);
                eprintln!("send_to failed: {e}");
            }
        }
        let data = data.to_vec();
        self.event(cx, Ev::Datagram { from, data });
    }

    fn on_timer(&mut self, cx: &mut Context<'_, ()>, conn: Option<(ConnId, &mut ())>, tag: u64) {
        let conn = conn.map(|(id, _)| id);
        self.event(cx, Ev::Timer(conn, tag));
    }

    fn shutting_down(&mut self, cx: &mut Context<'_, ()>) {
        self.event(cx, Ev::ShuttingDown);
    }
}

/// How to build a [`Rig`]'s reactor.
struct Spec {
    config: Config,
    echo: bool,
    hook: Option<Hook>,
}

fn echo() -> Spec {
    Spec {
        config: Config::default(),
        echo: true,
        hook: None,
    }
}

fn silent() -> Spec {
    Spec {
        echo: false,
        ..echo()
    }
}

impl Spec {
    fn config(mut self, config: Config) -> Spec {
        self.config = config;
        self
    }

    fn hook(mut self, hook: impl FnMut(&mut Context<'_, ()>, &Ev, &Emit) + Send + 'static) -> Spec {
        self.hook = Some(Box::new(hook));
        self
    }
}

/// A reactor running a [`Probe`] on its own thread, and everything it has
/// reported so far.
struct Rig {
    handle: Handle,
    rx: Receiver<(Instant, Ev)>,
    log: Vec<(Instant, Ev)>,
    taken: Vec<bool>,
    done: Receiver<Result<(), String>>,
    thread: Option<JoinHandle<()>>,
}

impl Rig {
    /// Builds the reactor on a new thread, runs `setup` on it (to listen,
    /// bind, connect), and returns once that is done, with what it returned.
    fn start<T: Send + 'static>(
        spec: Spec,
        setup: impl FnOnce(&mut Reactor<Probe>) -> mio_selectors::Result<T> + Send + 'static,
    ) -> (Rig, T) {
        let (tx, rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let (done_tx, done) = mpsc::channel();
        let thread = thread::spawn(move || {
            let probe = Probe {
                emit: Emit(tx),
                echo: spec.echo,
                hook: spec.hook,
            };
            let setup = Reactor::new(probe, spec.config).and_then(|mut reactor| {
                let out = setup(&mut reactor)?;
                Ok((reactor, out))
            });
            let mut reactor = match setup {
                Ok((reactor, out)) => {
                    let _ = ready_tx.send(Ok((out, reactor.handle())));
                    reactor
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return;
                }
            };
            let result = reactor.run().map_err(|e| e.to_string());
            drop(reactor);
            let _ = done_tx.send(result);
        });
        let (out, handle) = match ready_rx.recv_timeout(WAIT) {
            Ok(Ok(ready)) => ready,
            Ok(Err(e)) => panic!("reactor setup failed: {e}"),
            Err(e) => panic!("reactor setup did not finish: {e}"),
        };
        let rig = Rig {
            handle,
            rx,
            log: Vec::new(),
            taken: Vec::new(),
            done,
            thread: Some(thread),
        };
        (rig, out)
    }

    fn push(&mut self, ev: (Instant, Ev)) {
        self.log.push(ev);
        self.taken.push(false);
    }

    /// Takes in every event reported so far.
    fn drain(&mut self) {
        while let Ok(ev) = self.rx.try_recv() {
            self.push(ev);
        }
    }

    /// The first event matching `pred` not returned by an earlier `wait`,
    /// with its index in the log and when it happened; panics after `timeout`.
    fn wait(
        &mut self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&Ev) -> bool,
    ) -> (usize, Instant, Ev) {
        let deadline = Instant::now() + timeout;
        let mut i = 0;
        loop {
            while i < self.log.len() {
                if !self.taken[i] && pred(&self.log[i].1) {
                    self.taken[i] = true;
                    return (i, self.log[i].0, self.log[i].1.clone());
                }
                i += 1;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(ev) => self.push(ev),
                Err(e) => panic!(
                    "waiting for {what}: {e} after {timeout:?}; events so far:\n{}",
                    self.dump()
                ),
            }
        }
    }

    /// Whether nothing at all is reported for `window`.
    fn quiet(&mut self, window: Duration) -> bool {
        match self.rx.recv_timeout(window) {
            Ok(ev) => {
                self.push(ev);
                false
            }
            Err(RecvTimeoutError::Timeout) => true,
            Err(RecvTimeoutError::Disconnected) => panic!("reactor thread ended"),
        }
    }

    fn count(&self, pred: impl Fn(&Ev) -> bool) -> usize {
        self.log.iter().filter(|(_, ev)| pred(ev)).count()
    }

    /// Waits for the next note called `what` and returns its value.
    fn wait_note(&mut self, what: &'static str) -> i64 {
        match self.wait(WAIT, what, |ev| matches!(ev, Ev::Note(w, _) if *w == what)) {
            (_, _, Ev::Note(_, v)) => v,
            _ => unreachable!(),
        }
    }

    /// The value of the last note called `what`.
    fn note(&self, what: &str) -> Option<i64> {
        self.log.iter().rev().find_map(|(_, ev)| match ev {
            Ev::Note(w, v) if *w == what => Some(*v),
            _ => None,
        })
    }

    fn dump(&self) -> String {
        let skip = self.log.len().saturating_sub(40);
        let lines: Vec<String> = self.log[skip..]
            .iter()
            .enumerate()
            .map(|(i, (_, ev))| format!("  {}: {ev:?}", skip + i))
            .collect();
        lines.join("\n")
    }

    /// Stops the reactor and waits for `run` to return (successfully).
    fn stop(&mut self) {
        self.handle.stop();
        self.join();
    }

    /// Waits for `run` to return (successfully) and takes in the last events.
    fn join(&mut self) {
        match self.done.recv_timeout(WAIT) {
            Ok(result) => result.expect("Reactor::run"),
            Err(e) => panic!("reactor did not stop: {e}"),
        }
        if let Some(t) = self.thread.take() {
            t.join().expect("reactor thread");
        }
        self.drain();
    }
}

impl Drop for Rig {
    /// A failed test still stops its reactor (bounded wait, no panic).
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            self.handle.stop();
            if self.done.recv_timeout(WAIT).is_ok() {
                let _ = t.join();
            }
        }
    }
}

fn is_accepted(ev: &Ev) -> bool {
    matches!(ev, Ev::Accepted { .. })
}

fn accepted_id(ev: Ev) -> ConnId {
    match ev {
        Ev::Accepted { id, .. } => id,
        other => panic!("not an accept: {other:?}"),
    }
}

fn is_timer(ev: &Ev, tag: u64) -> bool {
    matches!(ev, Ev::Timer(_, t) if *t == tag)
}

/// Concatenates the stream input the reactor reported for `id`.
fn received(rig: &Rig, id: ConnId) -> Vec<u8> {
    let mut all = Vec::new();
    for (_, ev) in &rig.log {
        if let Ev::Data(i, d) = ev {
            if *i == id {
                all.extend_from_slice(d);
            }
        }
    }
    all
}

/// Waits until the reactor has reported `want` as `id`'s input, in total.
fn wait_input(rig: &mut Rig, id: ConnId, want: &[u8]) {
    let deadline = Instant::now() + WAIT;
    while received(rig, id).len() < want.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        rig.wait(left, "input", |ev| matches!(ev, Ev::Data(i, _) if *i == id));
    }
    check_bytes("input the reactor got", &received(rig, id), want).unwrap();
}

fn ipv6_loopback() -> bool {
    TcpListener::bind("[::1]:0").is_ok() && UdpSocket::bind("[::1]:0").is_ok()
}

/// A loopback port with nothing listening (bound, then released).
fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A socket path of this test process, with no file at it yet.
fn sock_path(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("mio-sel-{}-{name}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

/// Removes the file at `path` when dropped (a failed test leaves nothing).
struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn unix_connect(path: &Path) -> UnixStream {
    let s = UnixStream::connect(path).unwrap_or_else(|e| panic!("connect {}: {e}", path.display()));
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s
}

/// Streams `payload` through an echo server at `path` (written by another
/// thread, so backpressure cannot deadlock us), half-closes, and returns
/// what came back before EOF.
fn unix_echo(path: &Path, payload: &[u8]) -> Vec<u8> {
    let sock = unix_connect(path);
    let mut writer = sock.try_clone().unwrap();
    let sent = payload.to_vec();
    let w = thread::spawn(move || {
        for chunk in sent.chunks(7_001) {
            writer.write_all(chunk).expect("write");
        }
        writer.shutdown(Shutdown::Write).expect("shutdown");
    });
    let mut echoed = Vec::new();
    (&sock)
        .read_to_end(&mut echoed)
        .expect("read the echo to EOF");
    w.join().expect("writer");
    echoed
}

// ---------------------------------------------------------------------------
// UDP
// ---------------------------------------------------------------------------

fn udp_client(bind: &str) -> UdpSocket {
    let s = UdpSocket::bind(bind).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Sends one datagram from `client` and checks the echo comes back whole,
/// from the server.
fn udp_roundtrip(client: &UdpSocket, server: SocketAddr, payload: &[u8]) {
    client.send_to(payload, server).expect("send_to");
    let mut buf = vec![0; 70_000];
    let (n, from) = client.recv_from(&mut buf).expect("the echo (5 s timeout)");
    assert_eq!(from, server, "echo from the wrong address");
    check_bytes(
        &format!("{}-byte datagram", payload.len()),
        &buf[..n],
        payload,
    )
    .unwrap();
}

#[test]
fn udp_fifty_senders_each_get_only_their_own_datagrams_back() {
    with_deadline(LIMIT, || {
        let (mut rig, server) = Rig::start(echo(), |r| {
            let udp = r.bind_udp("127.0.0.1:0")?;
            r.udp_addr(udp)
        });
        let clients: Vec<UdpSocket> = (0..50).map(|_| udp_client("127.0.0.1:0")).collect();
        let msg = |i: usize, round: usize| format!("client {i:02} datagram {round}").into_bytes();
        for round in 0..4 {
            for (i, c) in clients.iter().enumerate() {
                c.send_to(&msg(i, round), server).unwrap();
            }
            for (i, c) in clients.iter().enumerate() {
                let mut buf = [0; 256];
                let (n, from) = c.recv_from(&mut buf).expect("echo (5 s timeout)");
                assert_eq!(from, server);
                assert_eq!(
                    String::from_utf8_lossy(&buf[..n]),
                    String::from_utf8_lossy(&msg(i, round)),
                    "client {i} got another's datagram"
                );
            }
        }
        // Nothing more for anyone: no datagram went to two senders.
        for (i, c) in clients.iter().enumerate() {
            c.set_nonblocking(true).unwrap();
            let extra = c.recv_from(&mut [0; 256]);
            assert!(
                matches!(&extra, Err(e) if e.kind() == io::ErrorKind::WouldBlock),
                "client {i} got an extra datagram: {extra:?}"
            );
        }
        // The handler saw each sender's own address, four times each.
        rig.stop();
        for c in &clients {
            let me = c.local_addr().unwrap();
            let seen = rig.count(|ev| matches!(ev, Ev::Datagram { from, .. } if *from == me));
            assert_eq!(seen, 4, "datagrams from {me}");
        }
        assert_eq!(
            rig.count(|ev| matches!(ev, Ev::Note(..))),
            0,
            "{}",
            rig.dump()
        );
    });
}

fn udp_sizes_echo_intact(bind: &'static str, sizes: &'static [usize]) {
    with_deadline(LIMIT, move || {
        let (mut rig, server) = Rig::start(echo(), move |r| {
            let udp = r.bind_udp(bind)?;
            r.udp_addr(udp)
        });
        let client = udp_client(bind);
        let mut rng = Rng::new(0x0DA7_A6A4);
        for &size in sizes {
            udp_roundtrip(&client, server, &rng.bytes(size));
        }
        rig.stop();
        let got: Vec<usize> = rig
            .log
            .iter()
            .filter_map(|(_, ev)| match ev {
                Ev::Datagram { data, .. } => Some(data.len()),
                _ => None,
            })
            .collect();
        assert_eq!(got, sizes, "datagram sizes the handler saw");
    });
}

#[test]
fn udp_datagrams_of_0_1_1000_and_65507_bytes_echo_intact() {
    udp_sizes_echo_intact("127.0.0.1:0", &[0, 1, 1000, 65_507]);
}

#[test]
fn udp_on_ipv6_loopback_echoes_up_to_65527_bytes() {
    if !ipv6_loopback() {
        util::require_in_ci("no IPv6 loopback");
        return;
    }
    // 65,527 is IPv6's largest (fragmented on lo, whose MTU is 65,536).
    udp_sizes_echo_intact("[::1]:0", &[1, 1000, 65_507, 65_527]);
}

/// The send queue's bound. On Linux loopback `sendto` never says
/// `WouldBlock`: the loopback driver orphans each datagram as it transmits
/// it, so the sender's send buffer never fills, and a full receiver drops
/// instead (checked: 20,000 datagrams of 60 kB from a socket with the
/// smallest send buffer, to a receiver that never reads, all succeed). The
/// queue (and so `QueueFull`) cannot be reached from here; what can be
/// checked is that `send_to` neither blocks nor queues: a flood to a peer
/// that does not read returns at once, every datagram is `Ok` or
/// `QueueFull`, and a datagram the kernel refuses is an `Io` error at once,
/// not queued (it would otherwise be `QueueFull` with this 16-byte bound).
#[test]
fn udp_send_to_never_blocks_and_refused_datagrams_are_not_queued() {
    with_deadline(LIMIT, || {
        let config = Config {
            udp_queue: 16,
            ..Config::default()
        };
        let mut reactor = Reactor::new(Probe::quiet(), config).unwrap();
        let udp = reactor.bind_udp("127.0.0.1:0").unwrap();
        let peer = udp_client("127.0.0.1:0");
        let to = peer.local_addr().unwrap();
        // Too big for IPv4: the kernel says EMSGSIZE, and it is not queued.
        let big = reactor.with_context(|cx| cx.send_to(udp, &vec![7; 65_508], to));
        match big {
            Err(Error::Io(e)) => assert_eq!(e.raw_os_error(), Some(EMSGSIZE), "{e}"),
            other => panic!("65,508-byte datagram: {other:?}"),
        }
        // A flood at a peer that never reads: no blocking, no other error.
        let start = Instant::now();
        let (mut ok, mut full) = (0, 0);
        reactor.with_context(|cx| {
            for i in 0..5_000u32 {
                let mut d = vec![0; 1_000];
                d[..4].copy_from_slice(&i.to_be_bytes());
                match cx.send_to(udp, &d, to) {
                    Ok(()) => ok += 1,
                    Err(Error::QueueFull) => full += 1,
                    Err(e) => panic!("datagram {i}: {e}"),
                }
            }
        });
        let took = start.elapsed();
        eprintln!("flood: {ok} sent at once, {full} QueueFull, in {took:?}");
        // Loopback never pushes back, so nothing may have been queued: a
        // `send_to` that queued first (or always) would answer `QueueFull`
        // past 16 datagrams.
        assert_eq!(
            (ok, full),
            (5_000, 0),
            "every datagram goes to the kernel at once"
        );
        // The reactor has not run a single pass, so what the peer can read
        // went out inside `send_to`: in order, the first one first.
        peer.set_nonblocking(true).unwrap();
        let mut buf = [0; 2_000];
        let mut seqs = Vec::new();
        while let Ok((n, _)) = peer.recv_from(&mut buf) {
            assert_eq!(n, 1_000);
            seqs.push(u32::from_be_bytes(buf[..4].try_into().unwrap()));
        }
        assert_eq!(seqs.first(), Some(&0), "the first datagram is first");
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order: {seqs:?}");
    });
}

// ---------------------------------------------------------------------------
// Unix stream sockets
// ---------------------------------------------------------------------------

#[test]
fn unix_listener_echoes_byte_exact_and_names_an_unnamed_peer() {
    with_deadline(LIMIT, || {
        let path = sock_path("echo");
        let _cleanup = Cleanup(path.clone());
        let p = path.clone();
        let (mut rig, ()) = Rig::start(echo(), move |r| r.listen_unix(&p).map(drop));
        let payload = Rng::new(0x0E1C_0DE5).bytes(300_000);
        let echoed = unix_echo(&path, &payload);
        check_bytes("unix echo", &echoed, &payload).unwrap();
        let (_, _, acc) = rig.wait(WAIT, "accept", is_accepted);
        let Ev::Accepted { id, peer } = acc else {
            unreachable!()
        };
        assert_eq!(peer, "unix:unnamed");
        rig.wait(
            WAIT,
            "close",
            |ev| matches!(ev, Ev::Lost(i, Why::PeerClosed) if *i == id),
        );
        rig.stop();
    });
}

#[test]
fn unix_peer_bound_to_a_path_prints_that_path() {
    with_deadline(LIMIT, || {
        use socket2::{Domain, SockAddr, Socket, Type};
        let path = sock_path("named-srv");
        let client_path = sock_path("named-cli");
        let _cleanup = (Cleanup(path.clone()), Cleanup(client_path.clone()));
        let p = path.clone();
        let (mut rig, ()) = Rig::start(echo(), move |r| r.listen_unix(&p).map(drop));
        let sock = Socket::new(Domain::UNIX, Type::STREAM, None).unwrap();
        sock.bind(&SockAddr::unix(&client_path).unwrap()).unwrap();
        sock.connect(&SockAddr::unix(&path).unwrap()).unwrap();
        let (_, _, acc) = rig.wait(WAIT, "accept", is_accepted);
        let Ev::Accepted { peer, .. } = acc else {
            unreachable!()
        };
        assert_eq!(peer, client_path.display().to_string());
        drop(sock); // a graceful stop need not wait for it
        rig.stop();
    });
}

#[test]
fn unix_stale_socket_file_is_removed_and_the_bind_succeeds() {
    with_deadline(LIMIT, || {
        let path = sock_path("stale");
        let _cleanup = Cleanup(path.clone());
        drop(UnixListener::bind(&path).unwrap()); // a crash leaves its file behind
        assert!(path.exists(), "std leaves the socket file");
        let p = path.clone();
        let (mut rig, ()) = Rig::start(echo(), move |r| r.listen_unix(&p).map(drop));
        assert_eq!(
            unix_echo(&path, b"over the stale file"),
            b"over the stale file"
        );
        rig.stop();
    });
}

#[test]
fn unix_live_listener_or_other_file_at_the_path_is_a_bind_error_and_untouched() {
    with_deadline(LIMIT, || {
        let path = sock_path("live");
        let _cleanup = Cleanup(path.clone());
        let live = UnixListener::bind(&path).unwrap();
        let mut reactor = Reactor::new(Probe::quiet(), Config::default()).unwrap();
        match reactor.listen_unix(&path) {
            Err(Error::Bind { addr, source }) => {
                assert_eq!(addr, path.display().to_string());
                assert_eq!(source.kind(), io::ErrorKind::AddrInUse, "{source}");
            }
            other => panic!("listen_unix over a live listener: {other:?}"),
        }
        // The live listener still owns its path: a client reaches it.
        let mut client = unix_connect(&path);
        client.write_all(b"still yours").unwrap();
        live.set_nonblocking(true).unwrap();
        let mut found = false;
        while let Ok((mut conn, _)) = live.accept() {
            conn.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
            let mut buf = [0; 11];
            // The reactor's liveness probe connected and left at once: EOF.
            if conn.read_exact(&mut buf).is_ok() {
                assert_eq!(&buf, b"still yours");
                found = true;
            }
        }
        assert!(found, "the live listener did not get the client");
        drop(live);

        // A regular file is not a stale socket: left alone, bind fails.
        let file = sock_path("regular");
        let _cleanup_file = Cleanup(file.clone());
        std::fs::write(&file, b"not a socket").unwrap();
        assert!(matches!(
            reactor.listen_unix(&file),
            Err(Error::Bind { .. })
        ));
        assert_eq!(std::fs::read(&file).unwrap(), b"not a socket");
    });
}

/// A live listener that is not accepting and whose backlog is full is
/// still live: `listen_unix` must fail with `Bind` at once, not wait in a
/// blocking liveness probe for the listener to accept.
#[test]
fn unix_busy_listener_with_a_full_backlog_is_a_bind_error_not_a_hang() {
    with_deadline(LIMIT, || {
        use socket2::{Domain, SockAddr, Socket, Type};
        let path = sock_path("busy");
        let _cleanup = Cleanup(path.clone());
        let busy = Socket::new(Domain::UNIX, Type::STREAM, None).unwrap();
        busy.bind(&SockAddr::unix(&path).unwrap()).unwrap();
        busy.listen(0).unwrap();
        // Fill the backlog until a non-blocking connect says EAGAIN.
        let mut queued = Vec::new();
        let full = (0..8).any(|_| {
            let c = Socket::new(Domain::UNIX, Type::STREAM, None).unwrap();
            c.set_nonblocking(true).unwrap();
            match c.connect(&SockAddr::unix(&path).unwrap()) {
                Ok(()) => {
                    queued.push(c);
                    false
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => true,
                Err(e) => panic!("filling the backlog: {e}"),
            }
        });
        assert!(full, "a backlog of 0 took 8 connections");
        let (tx, rx) = mpsc::channel();
        let p = path.clone();
        thread::spawn(move || {
            let mut reactor = Reactor::new(Probe::quiet(), Config::default()).unwrap();
            let _ = tx.send(reactor.listen_unix(&p).map(drop));
        });
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(Err(Error::Bind { source, .. })) => {
                assert_eq!(source.kind(), io::ErrorKind::AddrInUse, "{source}")
            }
            Ok(other) => panic!("listen_unix over a busy listener: {other:?}"),
            Err(_) => panic!("listen_unix hung on a busy listener's path"),
        }
        assert!(path.exists(), "the busy listener's file was removed");
        drop(busy);
    });
}

#[test]
fn unix_socket_file_is_removed_when_the_reactor_is_dropped() {
    with_deadline(LIMIT, || {
        let path = sock_path("drop");
        let _cleanup = Cleanup(path.clone());
        let mut reactor = Reactor::new(Probe::quiet(), Config::default()).unwrap();
        reactor.listen_unix(&path).unwrap();
        assert!(path.exists());
        drop(reactor);
        assert!(!path.exists(), "socket file left after drop");
    });
}

#[test]
fn unix_socket_file_is_removed_when_the_reactor_stops() {
    with_deadline(LIMIT, || {
        let path = sock_path("stop");
        let _cleanup = Cleanup(path.clone());
        let p = path.clone();
        let spec = echo().hook(move |_, ev, emit| {
            if matches!(ev, Ev::ShuttingDown) {
                // Listeners are closed before `shutting_down` is called.
                emit.note("file exists at shutdown", p.exists() as i64);
            }
        });
        let p = path.clone();
        let (mut rig, ()) = Rig::start(spec, move |r| r.listen_unix(&p).map(drop));
        assert_eq!(unix_echo(&path, b"x"), b"x");
        assert!(path.exists());
        rig.stop();
        assert_eq!(
            rig.note("file exists at shutdown"),
            Some(0),
            "{}",
            rig.dump()
        );
        assert!(!path.exists(), "socket file left after stop");
    });
}

// ---------------------------------------------------------------------------
// IPv6 and listener options
// ---------------------------------------------------------------------------

#[test]
fn ipv6_listener_echoes_and_peer_prints_bracketed() {
    if !ipv6_loopback() {
        util::require_in_ci("no IPv6 loopback");
        return;
    }
    with_deadline(LIMIT, || {
        let (mut rig, addr) = Rig::start(echo(), |r| {
            let id = r.listen("[::1]:0")?;
            r.local_addr(id)
        });
        assert_eq!(addr.ip().to_string(), "::1");
        let client = connect(addr);
        let deadline = Instant::now() + WAIT;
        write_all_deadline(&client, b"over IPv6", deadline).unwrap();
        let mut buf = [0; 9];
        read_exact_deadline(&client, &mut buf, deadline).unwrap();
        assert_eq!(&buf, b"over IPv6");
        let (_, _, acc) = rig.wait(WAIT, "accept", is_accepted);
        let Ev::Accepted { peer, .. } = acc else {
            unreachable!()
        };
        let port = client.local_addr().unwrap().port();
        assert_eq!(peer, format!("[::1]:{port}"));
        drop(client); // a graceful stop need not wait for it
        rig.stop();
    });
}

fn reuse_port() -> ListenOptions {
    ListenOptions {
        reuse_port: true,
        ..ListenOptions::default()
    }
}

#[test]
fn reuse_port_lets_two_reactors_share_a_port_and_both_serve() {
    with_deadline(LIMIT, || {
        let (mut a, addr) = Rig::start(echo(), |r| {
            let id = r.listen_with("127.0.0.1:0", &reuse_port())?;
            r.local_addr(id)
        });
        let (mut b, ()) = Rig::start(echo(), move |r| {
            r.listen_with(addr, &reuse_port()).map(drop)
        });
        // Without SO_REUSEPORT the same port is taken.
        let mut third = Reactor::new(Probe::quiet(), Config::default()).unwrap();
        assert!(matches!(third.listen(addr), Err(Error::Bind { .. })));
        const N: usize = 40;
        for i in 0..N {
            let c = connect(addr);
            let deadline = Instant::now() + WAIT;
            write_all_deadline(&c, &[i as u8], deadline).unwrap();
            let mut one = [0];
            read_exact_deadline(&c, &mut one, deadline).unwrap();
            assert_eq!(one[0], i as u8);
        }
        a.stop();
        b.stop();
        let (na, nb) = (a.count(is_accepted), b.count(is_accepted));
        assert_eq!(na + nb, N);
        // The kernel hashes connections over both: all 40 on one is 2^-39.
        assert!(na > 0 && nb > 0, "a accepted {na}, b accepted {nb}");
    });
}

#[test]
fn backlog_option_is_applied() {
    with_deadline(LIMIT, || {
        // With nobody accepting, Linux queues backlog + 1 handshakes and
        // drops further SYNs, so a connect with a short timeout times out.
        let options = ListenOptions {
            backlog: 1,
            ..ListenOptions::default()
        };
        let mut reactor = Reactor::new(Probe::quiet(), Config::default()).unwrap();
        let id = reactor.listen_with("127.0.0.1:0", &options).unwrap();
        let addr = reactor.local_addr(id).unwrap();
        let mut queued = Vec::new();
        let mut refused_at = None;
        for i in 0..12 {
            match TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
                Ok(s) => queued.push(s),
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    refused_at = Some(i);
                    break;
                }
                Err(e) => panic!("connect {i}: {e}"),
            }
        }
        let n = refused_at.expect("a backlog of 1 took 12 connections");
        assert!(n <= 3, "a backlog of 1 queued {n} connections");
        // And a backlog of 64 queues 64 (Linux: 65), not 1 and not the
        // default 1024: the 66th handshake is dropped.
        let options = ListenOptions {
            backlog: 64,
            ..ListenOptions::default()
        };
        let mut reactor = Reactor::new(Probe::quiet(), Config::default()).unwrap();
        let id = reactor.listen_with("127.0.0.1:0", &options).unwrap();
        let addr = reactor.local_addr(id).unwrap();
        let mut many = Vec::new();
        let mut refused_at = None;
        for i in 0..80 {
            match TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
                Ok(s) => many.push(s),
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    refused_at = Some(i);
                    break;
                }
                Err(e) => panic!("connect {i} with backlog 64: {e}"),
            }
        }
        let n = refused_at.expect("a backlog of 64 took 80 connections");
        assert!(
            (64..=66).contains(&n),
            "a backlog of 64 queued {n} connections"
        );
    });
}

#[test]
fn only_v6_decides_whether_ipv4_clients_reach_an_ipv6_wildcard_listener() {
    if !ipv6_loopback() {
        util::require_in_ci("no IPv6 loopback");
        return;
    }
    with_deadline(LIMIT, || {
        // Dual-stack: an IPv4 client on 127.0.0.1 arrives as a v4-mapped
        // peer, which `PeerAddr` names as the IPv4 address it is.
        let dual = ListenOptions {
            only_v6: Some(false),
            ..ListenOptions::default()
        };
        let (mut rig, port) = Rig::start(echo(), move |r| {
            let id = r.listen_with("[::]:0", &dual)?;
            Ok(r.local_addr(id)?.port())
        });
        let v4 = connect(SocketAddr::from(([127, 0, 0, 1], port)));
        let deadline = Instant::now() + WAIT;
        write_all_deadline(&v4, b"v4", deadline).unwrap();
        read_exact_deadline(&v4, &mut [0; 2], deadline).unwrap();
        let (_, _, acc) = rig.wait(WAIT, "accept", is_accepted);
        let Ev::Accepted { peer, .. } = acc else {
            unreachable!()
        };
        let v4_port = v4.local_addr().unwrap().port();
        assert_eq!(peer, format!("127.0.0.1:{v4_port}"));
        drop(v4); // a graceful stop need not wait for it
        rig.stop();

        // IPv6 only: the same kind of listener does not take IPv4 clients.
        let v6_only = ListenOptions {
            only_v6: Some(true),
            ..ListenOptions::default()
        };
        let (mut rig, port) = Rig::start(echo(), move |r| {
            let id = r.listen_with("[::]:0", &v6_only)?;
            Ok(r.local_addr(id)?.port())
        });
        let v6 = connect(SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port)));
        let deadline = Instant::now() + WAIT;
        write_all_deadline(&v6, b"v6", deadline).unwrap();
        read_exact_deadline(&v6, &mut [0; 2], deadline).unwrap();
        let v4_addr = SocketAddr::from(([127, 0, 0, 1], port));
        match TcpStream::connect_timeout(&v4_addr, Duration::from_secs(5)) {
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}"),
            // Another socket may own the IPv4 port (the kernel picked the
            // port for IPv6 only); then it must not be ours.
            Ok(_) => eprintln!("127.0.0.1:{port} is someone else's; IPv4 refusal not checked"),
        }
        drop(v6); // a graceful stop need not wait for it
        rig.stop();
        let peers: Vec<String> = rig
            .log
            .iter()
            .filter_map(|(_, ev)| match ev {
                Ev::Accepted { peer, .. } => Some(peer.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(peers.len(), 1, "{peers:?}");
        assert!(peers[0].starts_with("[::1]:"), "{peers:?}");
    });
}

// ---------------------------------------------------------------------------
// Outgoing connections
// ---------------------------------------------------------------------------

#[test]
fn connect_sends_output_queued_before_it_completed_in_order() {
    with_deadline(LIMIT, || {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // connection_made queues more, after what was queued while connecting.
        let spec = silent().hook(|cx, ev, emit| {
            if let Ev::Made(id) = ev {
                emit.note("open in connection_made", cx.is_open(*id) as i64);
                let _ = cx.send(*id, b"four.");
            }
        });
        let (mut rig, (id, open, sends)) = Rig::start(spec, move |r| {
            let id = r.connect(addr, ())?;
            let (open, sends) = r.with_context(|cx| {
                let sends: Vec<bool> = [&b"one,"[..], b"two,", b"three."]
                    .iter()
                    .map(|m| cx.send(id, m).is_ok())
                    .collect();
                (cx.is_open(id), sends)
            });
            Ok((id, open, sends))
        });
        assert!(!open, "a connecting connection is not open yet");
        assert_eq!(sends, [true; 3], "sends while connecting");
        let server = accept_within(&listener, WAIT);
        let deadline = Instant::now() + WAIT;
        let mut got = [0; 19];
        read_exact_deadline(&server, &mut got, deadline).unwrap();
        assert_eq!(&got, b"one,two,three.four.");
        write_all_deadline(&server, b"reply", deadline).unwrap();
        let (made, _, _) = rig.wait(
            WAIT,
            "connection_made",
            |ev| matches!(ev, Ev::Made(i) if *i == id),
        );
        wait_input(&mut rig, id, b"reply");
        let first_data = rig
            .log
            .iter()
            .position(|(_, ev)| matches!(ev, Ev::Data(..)));
        assert!(first_data > Some(made), "input before connection_made");
        assert_eq!(rig.note("open in connection_made"), Some(1));
        drop(server);
        rig.wait(
            WAIT,
            "close",
            |ev| matches!(ev, Ev::Lost(i, Why::PeerClosed) if *i == id),
        );
        rig.stop();
        assert_eq!(rig.count(|ev| matches!(ev, Ev::Made(_))), 1);
    });
}

#[test]
fn connect_from_a_callback_works_like_reactor_connect() {
    with_deadline(LIMIT, || {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let spec = silent().hook(move |cx, ev, emit| {
            if is_timer(ev, 1) {
                match cx.connect(addr, ()) {
                    Ok(id) => {
                        let _ = cx.send(id, b"from on_timer");
                        emit.note("connected", 1);
                    }
                    Err(_) => emit.note("connected", 0),
                }
            }
        });
        let (mut rig, ()) = Rig::start(spec, |r| {
            r.with_context(|cx| cx.call_later(Duration::ZERO, None, 1));
            Ok(())
        });
        let server = accept_within(&listener, WAIT);
        let mut got = [0; 13];
        read_exact_deadline(&server, &mut got, Instant::now() + WAIT).unwrap();
        assert_eq!(&got, b"from on_timer");
        rig.wait(WAIT, "connection_made", |ev| matches!(ev, Ev::Made(_)));
        assert_eq!(rig.note("connected"), Some(1));
        drop(server); // a graceful stop need not wait for it
        rig.stop();
    });
}

#[test]
fn connect_to_a_closed_port_fails_at_once_with_connection_refused() {
    with_deadline(LIMIT, || {
        let port = closed_port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let spec = silent().hook(|cx, ev, emit| {
            if let Ev::ConnectFailed(..) = ev {
                emit.note("connections after", cx.connection_count());
            }
        });
        let (mut rig, id) = Rig::start(spec, move |r| {
            let id = r.connect(addr, ())?;
            r.with_context(|cx| cx.send(id, b"never sent"))?;
            Ok(id)
        });
        let (_, _, ev) = rig.wait(WAIT, "connect_failed", |ev| {
            matches!(ev, Ev::ConnectFailed(..))
        });
        assert!(
            matches!(ev, Ev::ConnectFailed(i, Why::ConnectFailed(io::ErrorKind::ConnectionRefused)) if i == id),
            "{ev:?}"
        );
        // The reason is the refusal itself (ConnectionRefused), not the 10 s
        // connect timeout (TimedOut): no clock needed to tell them apart.
        rig.stop();
        assert_eq!(rig.count(|ev| matches!(ev, Ev::Made(_))), 0);
        // A connection that was never made is not lost either.
        assert_eq!(rig.count(|ev| matches!(ev, Ev::Lost(..))), 0);
        assert_eq!(rig.note("connections after"), Some(0));
    });
}

/// A never-answering target on loopback: a listener with a backlog of 0
/// that never accepts. Once its accept queue holds a connection, Linux
/// drops further SYNs, so a connect stays in SYN_SENT. The test first
/// proves the queue is full (a std connect with a short timeout times out),
/// and skips if it cannot.
#[test]
fn connect_that_never_completes_fails_after_connect_timeout() {
    with_deadline(LIMIT, || {
        use socket2::{Domain, Socket, Type};
        let sock = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        sock.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        sock.listen(0).unwrap();
        let addr = sock.local_addr().unwrap().as_socket().unwrap();
        let mut fillers = Vec::new();
        let mut full = false;
        for _ in 0..8 {
            match TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
                Ok(s) => fillers.push(s),
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    full = true;
                    break;
                }
                Err(e) => panic!("filling the accept queue: {e}"),
            }
        }
        if !full {
            util::require_in_ci("could not make a listener that ignores SYNs");
            return;
        }
        let config = Config {
            connect_timeout: Duration::from_millis(250),
            ..Config::default()
        };
        let start = Instant::now();
        let (mut rig, id) = Rig::start(silent().config(config), move |r| r.connect(addr, ()));
        let (_, at, ev) = rig.wait(WAIT, "connect_failed", |ev| {
            matches!(ev, Ev::ConnectFailed(..))
        });
        assert!(
            matches!(ev, Ev::ConnectFailed(i, Why::ConnectFailed(io::ErrorKind::TimedOut)) if i == id),
            "{ev:?}"
        );
        // Not before the timeout (an ordering); the upper bound only says it
        // came at all, generously (timing is measured in bench/, not here).
        let took = at - start;
        assert!(
            took >= Duration::from_millis(240) && took < WAIT,
            "timed out after {took:?}, connect_timeout 250 ms"
        );
        rig.stop();
        assert_eq!(rig.count(|ev| matches!(ev, Ev::Made(_))), 0);
        drop(fillers);
    });
}

// ---------------------------------------------------------------------------
// Timers
// ---------------------------------------------------------------------------

const MARK: u64 = 1_000;

#[test]
fn call_later_fires_once_with_its_tag_and_connection() {
    with_deadline(LIMIT, || {
        let spec = silent().hook(|cx, ev, _| match ev {
            Ev::Accepted { id, .. } => {
                cx.call_later(Duration::from_millis(50), Some(*id), 7);
            }
            Ev::Timer(_, 7) => {
                cx.call_later(Duration::from_millis(200), None, MARK);
            }
            _ => {}
        });
        let (mut rig, addr) = Rig::start(spec, |r| {
            let id = r.listen("127.0.0.1:0")?;
            r.local_addr(id)
        });
        let client = connect(addr);
        let (_, accepted_at, acc) = rig.wait(WAIT, "accept", is_accepted);
        let id = accepted_id(acc);
        let (_, fired_at, ev) = rig.wait(WAIT, "timer 7", |ev| is_timer(ev, 7));
        assert!(matches!(ev, Ev::Timer(Some(i), 7) if i == id), "{ev:?}");
        let after = fired_at - accepted_at;
        assert!(after >= Duration::from_millis(45), "fired after {after:?}");
        rig.wait(WAIT, "marker", |ev| is_timer(ev, MARK));
        assert_eq!(rig.count(|ev| is_timer(ev, 7)), 1, "{}", rig.dump());
        drop(client); // a graceful stop need not wait for it
        rig.stop();
    });
}

#[test]
fn call_every_repeats_until_cancelled_then_stops() {
    with_deadline(LIMIT, || {
        const START: u64 = 1;
        const TICK: u64 = 2;
        let period = Duration::from_millis(25);
        let (mut ticker, mut ticks) = (None::<TimerId>, 0);
        let spec = silent().hook(move |cx, ev, emit| match ev {
            Ev::Timer(None, START) => ticker = Some(cx.call_every(period, None, TICK)),
            Ev::Timer(None, TICK) => {
                ticks += 1;
                if ticks == 3 {
                    let t = ticker.expect("ticker");
                    emit.note("cancel", cx.cancel_timer(t) as i64);
                    emit.note("cancel again", cx.cancel_timer(t) as i64);
                    // Six more periods: enough for ticks that were not stopped.
                    cx.call_later(period * 6, None, MARK);
                }
            }
            _ => {}
        });
        let (mut rig, ()) = Rig::start(spec, |r| {
            r.with_context(|cx| cx.call_later(Duration::ZERO, None, START));
            Ok(())
        });
        rig.wait(WAIT, "marker", |ev| is_timer(ev, MARK));
        rig.stop();
        let times: Vec<Instant> = rig
            .log
            .iter()
            .filter(|(_, ev)| is_timer(ev, TICK))
            .map(|(t, _)| *t)
            .collect();
        assert_eq!(times.len(), 3, "ticks: {}", rig.dump());
        for pair in times.windows(2) {
            let gap = pair[1] - pair[0];
            assert!(
                gap >= period - Duration::from_millis(3),
                "ticks {gap:?} apart"
            );
        }
        assert_eq!(rig.note("cancel"), Some(1));
        assert_eq!(rig.note("cancel again"), Some(0));
    });
}

#[test]
fn cancelled_call_later_never_fires() {
    with_deadline(LIMIT, || {
        const START: u64 = 1;
        const NEVER: u64 = 2;
        const CANCEL: u64 = 3;
        let (mut pending, mut canceller) = (None::<TimerId>, None::<TimerId>);
        let spec = silent().hook(move |cx, ev, emit| match ev {
            Ev::Timer(None, START) => {
                pending = Some(cx.call_later(Duration::from_millis(100), None, NEVER));
                canceller = Some(cx.call_later(Duration::from_millis(20), None, CANCEL));
                cx.call_later(Duration::from_millis(300), None, MARK);
            }
            Ev::Timer(None, CANCEL) => {
                emit.note("cancel pending", cx.cancel_timer(pending.unwrap()) as i64);
            }
            Ev::Timer(None, MARK) => {
                // A one-shot that fired cannot be cancelled.
                emit.note("cancel fired", cx.cancel_timer(canceller.unwrap()) as i64);
            }
            _ => {}
        });
        let (mut rig, ()) = Rig::start(spec, |r| {
            r.with_context(|cx| {
                // Cancelled before the loop even runs.
                let t = cx.call_later(Duration::from_millis(10), None, NEVER);
                assert!(cx.cancel_timer(t));
                assert!(!cx.cancel_timer(t));
                cx.call_later(Duration::ZERO, None, START)
            });
            Ok(())
        });
        rig.wait(WAIT, "marker", |ev| is_timer(ev, MARK));
        rig.stop();
        assert_eq!(rig.note("cancel pending"), Some(1));
        assert_eq!(rig.note("cancel fired"), Some(0));
        assert_eq!(rig.count(|ev| is_timer(ev, NEVER)), 0, "{}", rig.dump());
    });
}

#[test]
fn a_connections_timers_go_with_it() {
    with_deadline(LIMIT, || {
        let mut first = true;
        let spec = silent().hook(move |cx, ev, _| match ev {
            Ev::Accepted { id, .. } if first => {
                first = false;
                cx.call_later(Duration::from_millis(600), Some(*id), 8);
                cx.call_every(Duration::from_millis(20), Some(*id), 9);
            }
            Ev::Lost(..) => {
                cx.call_later(Duration::from_millis(700), None, MARK);
            }
            _ => {}
        });
        let (mut rig, addr) = Rig::start(spec, |r| {
            let id = r.listen("127.0.0.1:0")?;
            r.local_addr(id)
        });
        let a = connect(addr);
        let (_, _, acc) = rig.wait(WAIT, "accept", is_accepted);
        let a_id = accepted_id(acc);
        rig.wait(
            WAIT,
            "a tick",
            |ev| matches!(ev, Ev::Timer(Some(i), 9) if *i == a_id),
        );
        drop(a);
        let (lost, _, _) = rig.wait(
            WAIT,
            "a closed",
            |ev| matches!(ev, Ev::Lost(i, _) if *i == a_id),
        );
        // An ordering, not a clock: A closed before its one-shot was due
        // (else it fired on A, legitimately, and this test checks nothing).
        assert_eq!(
            rig.count(|ev| is_timer(ev, 8)),
            0,
            "the 600 ms one-shot fired while A was open: {}",
            rig.dump()
        );
        // A new connection may take the slot: the old timers must not reach it.
        let b = connect(addr);
        rig.wait(WAIT, "b accepted", is_accepted);
        rig.wait(WAIT, "marker", |ev| is_timer(ev, MARK));
        drop(b); // a graceful stop need not wait for it
        rig.stop();
        assert_eq!(rig.count(|ev| is_timer(ev, 8)), 0, "{}", rig.dump());
        let late_ticks = rig.log[lost..]
            .iter()
            .filter(|(_, ev)| is_timer(ev, 9))
            .count();
        assert_eq!(late_ticks, 0, "ticks after the close: {}", rig.dump());
    });
}

// ---------------------------------------------------------------------------
// Idle timeouts
// ---------------------------------------------------------------------------

fn idle_rig(kind: Idle, timeout: Duration, echo_input: bool) -> (Rig, SocketAddr) {
    let spec = if echo_input { echo() } else { silent() };
    let spec = spec.hook(move |cx, ev, _| {
        if let Ev::Accepted { id, .. } = ev {
            cx.set_idle_timeout(*id, kind, Some(timeout));
        }
    });
    Rig::start(spec, |r| {
        let id = r.listen("127.0.0.1:0")?;
        r.local_addr(id)
    })
}

/// Sends one byte every `pace` (reading any echo) for `active`, or until
/// EOF; returns when EOF came, if it did, and when the last byte was sent.
/// The pace is the quantity under test, so it is timed with a read timeout
/// (and a sleep for the rest of it after an echo).
fn trickle(s: &TcpStream, pace: Duration, active: Duration) -> (Option<Instant>, Instant) {
    let until = Instant::now() + active;
    let mut last = Instant::now();
    while Instant::now() < until {
        (&*s).write_all(b".").expect("trickle write");
        last = Instant::now();
        s.set_read_timeout(Some(pace)).unwrap();
        let mut buf = [0; 64];
        match (&*s).read(&mut buf) {
            Ok(0) => return (Some(Instant::now()), last),
            Ok(_) => {
                // Echo: wait out the rest of the pace.
                let left = pace.saturating_sub(last.elapsed());
                if !left.is_zero() {
                    thread::sleep(left); // the client's pace, the quantity under test
                }
            }
            Err(e) if util::is_timeout(&e) => {}
            Err(e) => panic!("trickle read: {e}"),
        }
    }
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    (None, last)
}

/// Expects EOF, then closes; returns when EOF came.
fn eof_time(s: TcpStream) -> Instant {
    let mut echoed = Vec::new();
    let deadline = Instant::now() + WAIT;
    loop {
        s.set_read_timeout(Some(deadline.saturating_duration_since(Instant::now())))
            .unwrap();
        let mut buf = [0; 256];
        match (&s).read(&mut buf) {
            Ok(0) => return Instant::now(),
            Ok(n) => echoed.extend_from_slice(&buf[..n]), // late echo of the trickle
            Err(e) => panic!("waiting for the idle close: {e}"),
        }
    }
}

#[test]
fn idle_read_timeout_closes_a_silent_client_and_none_removes_it() {
    with_deadline(LIMIT, || {
        let timeout = Duration::from_millis(200);
        let mut second = None;
        let mut seen = 0;
        let spec = silent().hook(move |cx, ev, emit| match ev {
            Ev::Accepted { id, .. } => {
                seen += 1;
                cx.set_idle_timeout(*id, Idle::Read, Some(timeout));
                if seen == 2 {
                    // The second one's timeout is removed at once.
                    cx.set_idle_timeout(*id, Idle::Read, None);
                    second = Some(*id);
                    cx.call_later(timeout * 3, None, MARK);
                }
            }
            Ev::Timer(None, MARK) => {
                let open = cx.is_open(second.expect("second accepted"));
                emit.note("second open at 3x timeout", open as i64)
            }
            _ => {}
        });
        let (mut rig, addr) = Rig::start(spec, |r| {
            let id = r.listen("127.0.0.1:0")?;
            r.local_addr(id)
        });
        let start = Instant::now();
        let first = connect(addr);
        let (_, _, acc) = rig.wait(WAIT, "first accepted", is_accepted);
        let first_id = accepted_id(acc);
        let second = connect(addr);
        rig.wait(WAIT, "second accepted", is_accepted);
        let eof = eof_time(first) - start;
        assert!(
            eof >= timeout - Duration::from_millis(20) && eof < timeout + Duration::from_secs(3),
            "idle close after {eof:?}, timeout {timeout:?}"
        );
        rig.wait(
            WAIT,
            "idle close",
            |ev| matches!(ev, Ev::Lost(i, Why::IdleTimeout) if *i == first_id),
        );
        assert_eq!(rig.wait_note("second open at 3x timeout"), 1);
        drop(second); // a graceful stop need not wait for it
        rig.stop();
    });
}

/// A client trickling bytes at `pace` for `active` keeps (or does not keep)
/// a connection with the given idle timeout open; once it stops, the
/// connection closes about one timeout later.
fn idle_case(kind: Idle, echo_input: bool, kept_alive: bool) {
    let timeout = Duration::from_millis(300);
    let pace = Duration::from_millis(50);
    let active = Duration::from_millis(1_000);
    let (mut rig, addr) = idle_rig(kind, timeout, echo_input);
    let start = Instant::now();
    let client = connect(addr);
    let (_, _, acc) = rig.wait(WAIT, "accept", is_accepted);
    let id = accepted_id(acc);
    let (eof, last) = trickle(&client, pace, active);
    if kept_alive {
        assert!(
            eof.is_none(),
            "{kind:?}: closed after {:?} despite activity",
            eof.map(|t| t - start)
        );
        rig.drain();
        assert_eq!(
            rig.count(|ev| matches!(ev, Ev::Lost(..))),
            0,
            "{}",
            rig.dump()
        );
        let idle_for = eof_time(client) - last;
        assert!(
            idle_for >= timeout - Duration::from_millis(20) && idle_for < timeout + WAIT,
            "{kind:?}: closed {idle_for:?} after the last byte, timeout {timeout:?}"
        );
    } else {
        let took = eof.expect("closed while the client was active") - start;
        assert!(
            took >= timeout - Duration::from_millis(20) && took < timeout + WAIT,
            "{kind:?}: closed after {took:?}, timeout {timeout:?}"
        );
        drop(client);
    }
    rig.wait(
        WAIT,
        "idle close",
        |ev| matches!(ev, Ev::Lost(i, Why::IdleTimeout) if *i == id),
    );
    rig.stop();
}

#[test]
fn idle_read_timeout_is_kept_off_by_input() {
    with_deadline(LIMIT, || idle_case(Idle::Read, false, true));
}

#[test]
fn idle_write_timeout_closes_a_connection_that_only_reads() {
    with_deadline(LIMIT, || idle_case(Idle::Write, false, false));
}

#[test]
fn idle_write_timeout_is_kept_off_by_output() {
    with_deadline(LIMIT, || idle_case(Idle::Write, true, true));
}

#[test]
fn idle_both_timeout_is_kept_off_by_input_alone() {
    with_deadline(LIMIT, || idle_case(Idle::Both, false, true));
}

// ---------------------------------------------------------------------------
// Work from other threads
// ---------------------------------------------------------------------------

#[test]
fn handle_tasks_from_8_threads_run_once_each_in_submission_order() {
    with_deadline(LIMIT, || {
        const THREADS: usize = 8;
        const TASKS: u32 = 1_000;
        const EVERY: u32 = 10; // every tenth task also sends a line
        let (mut rig, (addr, loop_thread)) = Rig::start(silent(), |r| {
            let id = r.listen("127.0.0.1:0")?;
            Ok((r.local_addr(id)?, thread::current().id()))
        });
        let client = connect(addr);
        let (_, _, acc) = rig.wait(WAIT, "accept", is_accepted);
        let id = accepted_id(acc);
        let counter = Arc::new(AtomicUsize::new(0));
        let order = Arc::new(Mutex::new(Vec::new()));
        let (done_tx, done_rx) = mpsc::channel();
        let start = Arc::new(Latch::new(THREADS));
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let (handle, counter, order) = (rig.handle.clone(), counter.clone(), order.clone());
                let (done_tx, start) = (done_tx.clone(), start.clone());
                thread::spawn(move || {
                    start.arrive_and_wait(Instant::now() + WAIT).unwrap();
                    for seq in 0..TASKS {
                        let (counter, order) = (counter.clone(), order.clone());
                        handle.call_soon_threadsafe(move |_| {
                            counter.fetch_add(1, Ordering::SeqCst);
                            let on_loop = thread::current().id() == loop_thread;
                            order.lock().unwrap().push((t, seq, on_loop));
                        });
                        if seq % EVERY == 0 {
                            handle.send(id, format!("{t}:{seq:04}\n").into_bytes());
                        }
                    }
                    let done_tx = done_tx.clone();
                    handle.call_soon_threadsafe(move |_| {
                        let _ = done_tx.send(t);
                    });
                })
            })
            .collect();
        for t in threads {
            t.join().expect("submitting thread");
        }
        for _ in 0..THREADS {
            done_rx
                .recv_timeout(WAIT)
                .expect("a thread's last task ran");
        }
        // One more round trip: nothing runs twice, late.
        let (tx, rx) = mpsc::channel();
        rig.handle.call_soon_threadsafe(move |_| {
            let _ = tx.send(());
        });
        rx.recv_timeout(WAIT).expect("barrier task");
        assert_eq!(counter.load(Ordering::SeqCst), THREADS * TASKS as usize);
        let order = order.lock().unwrap().clone();
        assert!(
            order.iter().all(|&(_, _, on_loop)| on_loop),
            "a task ran off the loop thread"
        );
        for t in 0..THREADS {
            let seqs: Vec<u32> = order.iter().filter(|e| e.0 == t).map(|e| e.1).collect();
            assert_eq!(seqs, (0..TASKS).collect::<Vec<_>>(), "thread {t}'s tasks");
        }
        // The lines sent through Handle::send: each once, in order per thread.
        let lines_total = THREADS * (TASKS / EVERY) as usize;
        let mut text = vec![0; lines_total * 7];
        read_exact_deadline(&client, &mut text, Instant::now() + WAIT).unwrap();
        let text = String::from_utf8(text).unwrap();
        for t in 0..THREADS {
            let seqs: Vec<u32> = text
                .lines()
                .filter_map(|l| l.split_once(':'))
                .filter(|(th, _)| *th == t.to_string())
                .map(|(_, s)| s.parse().unwrap())
                .collect();
            let want: Vec<u32> = (0..TASKS).step_by(EVERY as usize).collect();
            assert_eq!(seqs, want, "thread {t}'s lines");
        }
        drop(client); // a graceful stop need not wait for it
        rig.stop();
    });
}

#[test]
fn handle_task_submitted_before_run_runs_and_stop_from_another_thread_ends_run() {
    with_deadline(LIMIT, || {
        let (tx, rx) = mpsc::channel();
        let (mut rig, ()) = Rig::start(silent(), move |r| {
            r.handle().call_soon_threadsafe(move |lp| {
                let _ = tx.send(lp.connection_count());
            });
            Ok(())
        });
        assert_eq!(rx.recv_timeout(WAIT).expect("task queued before run"), 0);
        let handle = rig.handle.clone();
        thread::spawn(move || handle.stop()).join().unwrap();
        rig.join();
        // `rig.join` waits for `run` to return within WAIT: that it returned
        // at all after a stop from another thread is the check.
        assert_eq!(rig.count(|ev| matches!(ev, Ev::ShuttingDown)), 1);
    });
}

// ---------------------------------------------------------------------------
// Half-close and write flow control
// ---------------------------------------------------------------------------

#[test]
fn write_eof_half_closes_and_the_reactor_still_reads() {
    with_deadline(LIMIT, || {
        let spec = silent().hook(|cx, ev, emit| {
            if let Ev::Accepted { id, .. } = ev {
                let _ = cx.send(*id, b"last words");
                cx.write_eof(*id);
                let after = cx.send(*id, b"more");
                emit.note(
                    "send after write_eof is WriteClosed",
                    matches!(after, Err(Error::WriteClosed)) as i64,
                );
                emit.note("open after write_eof", cx.is_open(*id) as i64);
            }
        });
        let (mut rig, addr) = Rig::start(spec, |r| {
            let id = r.listen("127.0.0.1:0")?;
            r.local_addr(id)
        });
        let client = connect(addr);
        let deadline = Instant::now() + WAIT;
        // The reactor's output, then EOF.
        let got = read_to_eof_deadline(&client, 100, deadline).unwrap();
        assert_eq!(got, b"last words");
        let (_, _, acc) = rig.wait(WAIT, "accept", is_accepted);
        let id = accepted_id(acc);
        // Our direction is still open, and the reactor reads it.
        write_all_deadline(&client, b"still talking", deadline).unwrap();
        wait_input(&mut rig, id, b"still talking");
        util::shutdown_write(&client).unwrap();
        rig.wait(WAIT, "eof", |ev| matches!(ev, Ev::Eof(i) if *i == id));
        rig.wait(
            WAIT,
            "close",
            |ev| matches!(ev, Ev::Lost(i, Why::PeerClosed) if *i == id),
        );
        assert_eq!(rig.note("send after write_eof is WriteClosed"), Some(1));
        assert_eq!(rig.note("open after write_eof"), Some(1));
        rig.stop();
    });
}

#[test]
fn resume_writing_follows_a_drain_below_low_water_after_the_reader_resumes() {
    with_deadline(LIMIT, || {
        const TOTAL: usize = 12 << 20;
        const CHUNK: usize = 16 << 10;
        let config = Config {
            high_water: 64 << 10,
            low_water: 16 << 10,
            ..Config::default()
        };
        let (high, low) = (config.high_water, config.low_water);
        let pattern = Pattern(0xF10_C0DE);
        let mut sent = 0;
        // A producer: queue until paused, go on at resume_writing, close at the end.
        let spec = silent().config(config).hook(move |cx, ev, emit| {
            let id = match ev {
                Ev::Accepted { id, .. } | Ev::Resume(id, _) => *id,
                _ => return,
            };
            let mut buf = vec![0; CHUNK];
            while sent < TOTAL && !cx.is_writing_paused(id) {
                let n = CHUNK.min(TOTAL - sent);
                pattern.fill(sent as u64, &mut buf[..n]);
                if cx.send(id, &buf[..n]).is_err() {
                    emit.note("send failed", sent);
                    return;
                }
                sent += n;
            }
            if sent == TOTAL {
                emit.note("all queued", sent);
                cx.close(id);
            } else {
                emit.note("paused with pending", cx.pending_output(id).unwrap_or(0));
                emit.note("produced", sent);
            }
        });
        let (mut rig, addr) = Rig::start(spec, |r| {
            let id = r.listen("127.0.0.1:0")?;
            r.local_addr(id)
        });
        let client = connect(addr);
        // Not reading: wait for the producer to stall (nothing for 300 ms).
        let deadline = Instant::now() + WAIT;
        while !rig.quiet(Duration::from_millis(300)) {
            assert!(Instant::now() < deadline, "the producer never stalled");
        }
        let produced = rig.note("produced").expect("a pause") as usize;
        assert!(
            rig.note("all queued").is_none() && produced < TOTAL,
            "no stall: {produced}"
        );
        let stall = rig.log.len();
        // Now read everything: the reactor drains, resumes the producer, closes.
        let got = read_to_eof_deadline(&client, TOTAL, Instant::now() + WAIT).unwrap();
        assert_eq!(got.len(), TOTAL);
        pattern.check("stream", 0, &got).unwrap();
        drop(client);
        rig.wait(WAIT, "close", |ev| matches!(ev, Ev::Lost(_, Why::Closed)));
        rig.stop();
        let resumed_after_stall = rig.log[stall..]
            .iter()
            .filter(|(_, ev)| matches!(ev, Ev::Resume(..)))
            .count();
        assert!(
            resumed_after_stall >= 1,
            "no resume_writing after reading resumed"
        );
        for (_, ev) in &rig.log {
            match ev {
                Ev::Resume(_, pending) => assert!(*pending <= low, "resumed at {pending}"),
                Ev::Note("paused with pending", p) => {
                    let p = *p as usize;
                    assert!(p >= high && p < high + CHUNK, "paused at {p}");
                }
                Ev::Note("send failed", at) => panic!("send failed at {at}"),
                _ => {}
            }
        }
        eprintln!("stalled at {produced} bytes; {resumed_after_stall} resumes after");
    });
}

// ---------------------------------------------------------------------------
// The order of Handler calls (issue 9: asyncio's `start -> CM [-> DR*]
// [-> ER?] -> CL -> end`, written down on `Handler`)
// ---------------------------------------------------------------------------

/// Checks one connection's calls against the documented order: an accepted
/// one `Accepted Made X* [Eof Y*] Lost`, an outgoing one `Made X* [Eof Y*]
/// Lost` or only `ConnectFailed`, where X is data, timers, pauses and
/// resumes and Y the same without data; pauses and resumes alternate,
/// pause first.
fn check_call_order(id: ConnId, calls: &[&Ev], outgoing: bool) {
    let fail = |why: &str| panic!("{id}: {why}: {calls:?}");
    if let [Ev::ConnectFailed(..)] = calls {
        return assert!(outgoing, "{id}: connect_failed for an accepted connection");
    }
    let mut rest = calls;
    if !outgoing {
        match rest.split_first() {
            Some((Ev::Accepted { .. }, tail)) => rest = tail,
            _ => fail("an accepted connection must start with accept_wrapper"),
        }
    }
    match rest.split_first() {
        Some((Ev::Made(_), tail)) => rest = tail,
        _ => fail("connection_made must come first"),
    }
    match rest.split_last() {
        Some((Ev::Lost(..), body)) => rest = body,
        _ => fail("connection_lost must come last"),
    }
    let (mut eof, mut paused) = (false, false);
    for ev in rest {
        match ev {
            Ev::Data(..) if eof => fail("service_connection after eof_received"),
            Ev::Data(..) | Ev::Timer(..) => {}
            Ev::Eof(_) if eof => fail("eof_received twice"),
            Ev::Eof(_) => eof = true,
            Ev::Pause(_) if paused => fail("pause_writing twice without resume_writing"),
            Ev::Resume(..) if !paused => fail("resume_writing without pause_writing"),
            Ev::Pause(_) | Ev::Resume(..) => paused = !paused,
            _ => fail("a call out of place"),
        }
    }
}

/// Every kind of connection life in one reactor (a pause and resume, a
/// peer's EOF, an outgoing connection to ourselves, a refused connect, a
/// shutdown) and each one's calls checked against the documented order.
#[test]
fn handler_calls_follow_the_documented_order() {
    with_deadline(LIMIT, || {
        let config = Config {
            high_water: 4096,
            low_water: 1024,
            ..Config::default()
        };
        let refused = SocketAddr::from(([127, 0, 0, 1], closed_port()));
        let (mut rig, (addr, outgoing)) = Rig::start(echo().config(config), move |r| {
            let lid = r.listen("127.0.0.1:0")?;
            let addr = r.local_addr(lid)?;
            let ours = r.connect(addr, ())?;
            let failed = r.connect(refused, ())?;
            Ok((addr, [ours, failed]))
        });
        // A slow reader: its echo backs up past high water, then drains.
        let deadline = Instant::now() + WAIT;
        let slow = connect(addr);
        let payload = vec![b'p'; 256 * 1024];
        let writer = {
            let w = slow.try_clone().unwrap();
            let payload = payload.clone();
            thread::spawn(move || write_all_deadline(&w, &payload, deadline))
        };
        rig.wait(WAIT, "pause_writing", |ev| matches!(ev, Ev::Pause(_)));
        let mut echoed = vec![0; payload.len()];
        read_exact_deadline(&slow, &mut echoed, deadline).unwrap();
        assert!(echoed == payload, "the echo differs");
        writer.join().unwrap().unwrap();
        slow.shutdown(Shutdown::Write).unwrap();
        read_to_eof_deadline(&slow, 0, deadline).unwrap();
        // A quick one: a line, then EOF.
        let mut quick = connect(addr);
        quick.write_all(b"hi\n").unwrap();
        let mut line = [0; 3];
        read_exact_deadline(&quick, &mut line, deadline).unwrap();
        assert_eq!(&line, b"hi\n");
        quick.shutdown(Shutdown::Write).unwrap();
        read_to_eof_deadline(&quick, 0, deadline).unwrap();
        rig.wait(WAIT, "connect_failed", |ev| {
            matches!(ev, Ev::ConnectFailed(..))
        });
        rig.stop(); // the outgoing connection and its accepted side end in the shutdown
        let mut ids: Vec<ConnId> = Vec::new();
        for (_, ev) in &rig.log {
            let id = match ev {
                Ev::Accepted { id, .. } | Ev::Made(id) | Ev::Data(id, _) | Ev::Eof(id) => *id,
                Ev::Lost(id, _) | Ev::ConnectFailed(id, _) | Ev::Pause(id) => *id,
                Ev::Resume(id, _) => *id,
                _ => continue,
            };
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        assert_eq!(ids.len(), 5, "two outgoing, three accepted: {}", rig.dump());
        for id in ids {
            let calls: Vec<&Ev> = rig
                .log
                .iter()
                .map(|(_, ev)| ev)
                .filter(|ev| match ev {
                    Ev::Accepted { id: i, .. } | Ev::Made(i) | Ev::Data(i, _) | Ev::Eof(i) => {
                        *i == id
                    }
                    Ev::Lost(i, _) | Ev::ConnectFailed(i, _) | Ev::Pause(i) => *i == id,
                    Ev::Resume(i, _) => *i == id,
                    Ev::Timer(i, _) => *i == Some(id),
                    _ => false,
                })
                .collect();
            check_call_order(id, &calls, outgoing.contains(&id));
        }
        assert!(
            rig.count(|ev| matches!(ev, Ev::Resume(..))) >= 1,
            "{}",
            rig.dump()
        );
    });
}
