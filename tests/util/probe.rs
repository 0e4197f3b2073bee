//! Helpers of the breadth tests, shared by the feature files that
//! took them over.

#![allow(dead_code)]

#[allow(unused_imports)]
use crate::util::{
    accept_within, check_bytes, connect, read_exact_deadline, read_to_eof_deadline, with_deadline,
    write_all_deadline, Latch, Pattern, Rng, IO_TIMEOUT,
};
#[allow(unused_imports)]
use mio_selectors::reactor::{Idle, ListenOptions, TimerId, UdpId};
#[allow(unused_imports)]
use mio_selectors::{
    CloseReason, Config, ConnId, Context, Error, Handle, Handler, InBuf, PeerAddr, Reactor,
};
#[allow(unused_imports)]
use std::io::{Read, Write};
#[allow(unused_imports)]
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
#[allow(unused_imports)]
use std::os::unix::net::{UnixListener, UnixStream};
#[allow(unused_imports)]
use std::path::{Path, PathBuf};
#[allow(unused_imports)]
use std::sync::atomic::{AtomicUsize, Ordering};
#[allow(unused_imports)]
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
#[allow(unused_imports)]
use std::sync::{mpsc, Arc, Mutex};
#[allow(unused_imports)]
use std::thread::JoinHandle;
#[allow(unused_imports)]
use std::time::{Duration, Instant};
#[allow(unused_imports)]
use std::{fmt, io, thread};

#[allow(unused_imports)]
use crate::util::{self, fault, reactor};

/// The watchdog limit of each test.
pub const LIMIT: Duration = Duration::from_secs(30);

/// How long a test waits for any one thing it expects.
pub const WAIT: Duration = Duration::from_secs(10);

/// [`CloseReason`] reduced to something comparable and `Send`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
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
pub enum Ev {
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
pub struct Emit(pub Sender<(Instant, Ev)>);

impl Emit {
    pub fn ev(&self, ev: Ev) {
        let _ = self.0.send((Instant::now(), ev));
    }

    pub fn note(&self, what: &'static str, v: impl TryInto<i64>) {
        self.ev(Ev::Note(what, v.try_into().unwrap_or(i64::MIN)));
    }
}

/// Called on the reactor thread after each event is reported, to act on it.
pub type Hook = Box<dyn FnMut(&mut Context<'_, ()>, &Ev, &Emit) + Send>;

/// Reports every callback; echoes stream input and datagrams if `echo`.
pub struct Probe {
    pub emit: Emit,
    pub echo: bool,
    pub hook: Option<Hook>,
}

impl Probe {
    /// A probe nobody listens to, for reactors that never run.
    pub fn quiet() -> Probe {
        Probe {
            emit: Emit(mpsc::channel().0),
            echo: false,
            hook: None,
        }
    }

    pub fn event(&mut self, cx: &mut Context<'_, ()>, ev: Ev) {
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
pub struct Spec {
    pub config: Config,
    pub echo: bool,
    pub hook: Option<Hook>,
}

pub fn echo() -> Spec {
    Spec {
        config: Config::default(),
        echo: true,
        hook: None,
    }
}

pub fn silent() -> Spec {
    Spec {
        echo: false,
        ..echo()
    }
}

impl Spec {
    pub fn config(mut self, config: Config) -> Spec {
        self.config = config;
        self
    }

    pub fn hook(
        mut self,
        hook: impl FnMut(&mut Context<'_, ()>, &Ev, &Emit) + Send + 'static,
    ) -> Spec {
        self.hook = Some(Box::new(hook));
        self
    }
}

/// A reactor running a [`Probe`] on its own thread, and everything it has
/// reported so far.
pub struct Rig {
    pub handle: Handle,
    pub rx: Receiver<(Instant, Ev)>,
    pub log: Vec<(Instant, Ev)>,
    pub taken: Vec<bool>,
    pub running: reactor::Running,
}

impl Rig {
    /// Builds the reactor on a new thread, runs `setup` on it (to listen,
    /// bind, connect), and returns once that is done, with what it returned.
    pub fn start<T: Send + 'static>(
        spec: Spec,
        setup: impl FnOnce(&mut Reactor<Probe>) -> mio_selectors::Result<T> + Send + 'static,
    ) -> (Rig, T) {
        let (tx, rx) = mpsc::channel();
        let built = reactor::spawn_built(move || {
            let probe = Probe {
                emit: Emit(tx),
                echo: spec.echo,
                hook: spec.hook,
            };
            let mut reactor = Reactor::new(probe, spec.config)?;
            let out = setup(&mut reactor)?;
            Ok((reactor, out))
        });
        let (running, out) = built.unwrap_or_else(|e| panic!("reactor setup failed: {e}"));
        let rig = Rig {
            handle: running.handle.clone(),
            rx,
            log: Vec::new(),
            taken: Vec::new(),
            running,
        };
        (rig, out)
    }

    pub fn push(&mut self, ev: (Instant, Ev)) {
        self.log.push(ev);
        self.taken.push(false);
    }

    /// Takes in every event reported so far.
    pub fn drain(&mut self) {
        while let Ok(ev) = self.rx.try_recv() {
            self.push(ev);
        }
    }

    /// The first event matching `pred` not returned by an earlier `wait`,
    /// with its index in the log and when it happened; panics after `timeout`.
    pub fn wait(
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
    pub fn quiet(&mut self, window: Duration) -> bool {
        match self.rx.recv_timeout(window) {
            Ok(ev) => {
                self.push(ev);
                false
            }
            Err(RecvTimeoutError::Timeout) => true,
            Err(RecvTimeoutError::Disconnected) => panic!("reactor thread ended"),
        }
    }

    pub fn count(&self, pred: impl Fn(&Ev) -> bool) -> usize {
        self.log.iter().filter(|(_, ev)| pred(ev)).count()
    }

    /// Waits for the next note called `what` and returns its value.
    pub fn wait_note(&mut self, what: &'static str) -> i64 {
        match self.wait(WAIT, what, |ev| matches!(ev, Ev::Note(w, _) if *w == what)) {
            (_, _, Ev::Note(_, v)) => v,
            _ => unreachable!(),
        }
    }

    /// The value of the last note called `what`.
    pub fn note(&self, what: &str) -> Option<i64> {
        self.log.iter().rev().find_map(|(_, ev)| match ev {
            Ev::Note(w, v) if *w == what => Some(*v),
            _ => None,
        })
    }

    pub fn dump(&self) -> String {
        let skip = self.log.len().saturating_sub(40);
        let lines: Vec<String> = self.log[skip..]
            .iter()
            .enumerate()
            .map(|(i, (_, ev))| format!("  {}: {ev:?}", skip + i))
            .collect();
        lines.join("\n")
    }

    /// Stops the reactor and waits for `run` to return (successfully).
    pub fn stop(&mut self) {
        self.handle.stop();
        self.join();
    }

    /// Waits for `run` to return (successfully) and takes in the last events.
    pub fn join(&mut self) {
        self.running
            .join(WAIT)
            .unwrap_or_else(|e| panic!("reactor did not stop cleanly: {e}"));
        self.drain();
    }
}

pub fn is_accepted(ev: &Ev) -> bool {
    matches!(ev, Ev::Accepted { .. })
}

pub fn accepted_id(ev: Ev) -> ConnId {
    match ev {
        Ev::Accepted { id, .. } => id,
        other => panic!("not an accept: {other:?}"),
    }
}

pub fn is_timer(ev: &Ev, tag: u64) -> bool {
    matches!(ev, Ev::Timer(_, t) if *t == tag)
}

/// Concatenates the stream input the reactor reported for `id`.
pub fn received(rig: &Rig, id: ConnId) -> Vec<u8> {
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
pub fn wait_input(rig: &mut Rig, id: ConnId, want: &[u8]) {
    let deadline = Instant::now() + WAIT;
    while received(rig, id).len() < want.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        rig.wait(left, "input", |ev| matches!(ev, Ev::Data(i, _) if *i == id));
    }
    check_bytes("input the reactor got", &received(rig, id), want).unwrap();
}

pub fn ipv6_loopback() -> bool {
    TcpListener::bind("[::1]:0").is_ok() && UdpSocket::bind("[::1]:0").is_ok()
}

/// A loopback port with nothing listening (bound, then released).
pub fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}
