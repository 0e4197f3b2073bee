//! [`Reactor`]: the event loop. It accepts, connects, reads, writes and
//! closes; the [`Handler`] only decides what to send.

use std::io::{self, Read};
use std::mem;
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::os::unix::io::RawFd;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, UdpSocket};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Waker};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;

use super::conn::{later, State};
use super::context::{Core, Timer};
use super::endpoint::{Endpoint, ListenSock, Listener, Udp};
use super::handle::Shared;
use super::id::{ENDPOINT_BIT, SIGNALS, WAKER};
use super::listen::bind_unix;
use super::wrap::Wrapped;
use super::{ListenOptions, ListenerId, SourceId, UdpId};
use crate::buf::BufPool;
use crate::{
    CloseReason, Config, ConnId, Context, Error, EventMask, Handle, Handler, InBuf, PeerAddr,
    Result,
};

/// Accepts per listener per pass before the other work gets a turn.
const ACCEPT_BATCH: usize = 256;
/// Datagrams read per UDP socket per pass before the other work gets a turn.
const UDP_BATCH: usize = 64;
/// Room for the largest UDP datagram.
const UDP_MAX: usize = 65_536;

/// A single-threaded event loop on mio that serves any number of listeners
/// (TCP, Unix), outgoing connections, UDP sockets and plain descriptors
/// through a [`Handler`].
///
/// Each pass of [`run`](Self::run) waits in `epoll_wait`, then, like Redis'
/// `ae.c`: accepts on ready listeners until `WouldBlock`, reads every ready
/// connection (calling [`Handler::service_connection`]), serves UDP sockets,
/// fires due timers, writes every connection with pending output once, and
/// closes what has to close.
///
/// # Draining readiness
///
/// mio is edge-triggered, so the reactor remembers per connection what the
/// last event said (`readable`, `writable`) and acts until the kernel says
/// `WouldBlock`. A read shorter than the buffer proves the socket drained
/// (unless the kernel also reported a hang-up, where it reads on to EOF), so
/// an echo costs one `read` and one `write`. A connection that had more to
/// read than its per-pass budget is queued and served on the next pass
/// without waiting for an event.
///
/// Sockets are registered once, for reading and writing, and never
/// re-registered: with edge triggering a writable socket is reported only
/// when it becomes writable again, so there is no busy loop and no
/// `epoll_ctl` in steady state.
///
/// # Bounded memory
///
/// Input is capped by [`Config::max_inb`]; output above
/// [`Config::high_water`] stops reading until it falls to
/// [`Config::low_water`]; [`Config::max_outb`] is a hard cap (the connection
/// is closed as too slow). Buffers go back to a pool when empty, so an idle
/// connection holds none.
///
/// # Spurious and stale events
///
/// A connection's token carries a generation ([`ConnId`]): an event or id
/// left over from a closed connection never reaches the new connection in
/// its slab slot. A spurious event costs one `read` that says `WouldBlock`.
///
/// ```no_run
/// use mio_selectors::{Config, ConnId, Context, Handler, InBuf, PeerAddr, Reactor};
///
/// struct Echo;
/// impl Handler for Echo {
///     type Data = ();
///     fn accept_wrapper(&mut self, _: &mut Context<'_, ()>, _: ConnId, _: &PeerAddr) -> Option<()> {
///         Some(())
///     }
///     fn service_connection(&mut self, cx: &mut Context<'_, ()>, id: ConnId, _: &mut (), inb: &mut InBuf) {
///         let _ = cx.send_from(id, inb);
///     }
/// }
///
/// let mut reactor = Reactor::new(Echo, Config::default())?;
/// reactor.listen("127.0.0.1:65432")?;
/// reactor.stop_on_signals()?; // SIGINT/SIGTERM: flush, close, return
/// reactor.run()?;
/// # Ok::<(), mio_selectors::Error>(())
/// ```
pub struct Reactor<H: Handler> {
    poll: Poll,
    events: Events,
    pub(super) handler: H,
    pub(super) core: Core<H::Data>,
    signals: Option<Signals>,
    /// Accepting paused after `EMFILE`/`ENFILE` until then.
    accept_paused_until: Option<Instant>,
    shutdown_deadline: Option<Instant>,
    /// Spare list storage, swapped with the core's lists so that a pass allocates nothing.
    scratch: Vec<ConnId>,
    /// Where UDP datagrams are read; allocated with the first UDP socket.
    udp_buf: Vec<u8>,
    /// Where a wrapped connection's socket is read (its layer's input).
    pub(super) wire_in: Vec<u8>,
    /// What a wrapped connection's layer decoded, on its way to `inb`.
    pub(super) app_in: Vec<u8>,
    full_logged: bool,
    /// `accept` is failing (out of descriptors): warned once already.
    accept_failing: bool,
}

/// Hidden-doc boilerplate: a handler that does nothing, for the examples below.
macro_rules! doc_app {
    () => {
        concat!(
            "# struct App;\n",
            "# impl mio_selectors::Handler for App {\n",
            "#     type Data = ();\n",
            "# }\n",
        )
    };
}

impl<H: Handler> Reactor<H> {
    /// Creates a reactor that serves `handler` within `config`'s limits.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if the limits contradict each other (for example,
    /// `low_water > high_water`); [`Error::Io`] if epoll or its waker cannot
    /// be created.
    ///
    /// ```
    /// use mio_selectors::{Config, Error, Reactor};
    #[doc = doc_app!()]
    /// let bad = Config { low_water: 2, high_water: 1, ..Config::default() };
    /// assert!(matches!(Reactor::new(App, bad), Err(Error::Config(_))));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn new(handler: H, config: Config) -> Result<Self> {
        check(&config)?;
        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), WAKER)?;
        let shared = Arc::new(Shared {
            waker,
            stop: AtomicBool::new(false),
            tasks: Mutex::new(Vec::new()),
        });
        Ok(Reactor {
            events: Events::with_capacity(1024),
            handler,
            core: Core {
                conns: Slab::new(),
                endpoints: Default::default(),
                pool: BufPool::new(config.read_chunk, config.pool_size),
                config,
                registry: poll.registry().try_clone()?,
                handle: Handle { shared },
                ready: Vec::new(),
                dirty: Vec::new(),
                dead: Vec::new(),
                linger: Default::default(),
                timers: Default::default(),
                timer_deadlines: Default::default(),
                next_timer: 0,
                now: Instant::now(),
                shutting_down: false,
                next_gen: 1,
                per_ip: Default::default(),
                wire_out: Vec::new(),
            },
            poll,
            signals: None,
            accept_paused_until: None,
            shutdown_deadline: None,
            scratch: Vec::new(),
            udp_buf: Vec::new(),
            wire_in: Vec::new(),
            app_in: Vec::new(),
            full_logged: false,
            accept_failing: false,
        })
    }

    /// Binds a TCP listener to the first address of `addr` that binds (with
    /// `SO_REUSEADDR` and a backlog of 1024: [`ListenOptions::default`]) and
    /// serves it.
    ///
    /// # Errors
    ///
    /// [`Error::Bind`], naming the address and the OS error (port in use,
    /// permission); [`Error::Io`] if `addr` does not resolve.
    ///
    /// ```
    /// # use mio_selectors::{Config, Error, Reactor};
    #[doc = doc_app!()]
    /// let mut reactor = Reactor::new(App, Config::default())?;
    /// let id = reactor.listen("127.0.0.1:0")?;
    /// let taken = reactor.local_addr(id)?;
    /// let mut other = Reactor::new(App, Config::default())?;
    /// assert!(matches!(other.listen(taken), Err(Error::Bind { .. })));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn listen(&mut self, addr: impl ToSocketAddrs) -> Result<ListenerId> {
        self.listen_with(addr, &ListenOptions::default())
    }

    /// As [`listen`](Self::listen), with socket options: backlog,
    /// `SO_REUSEADDR`, `SO_REUSEPORT`, `IPV6_V6ONLY`.
    ///
    /// # Errors
    ///
    /// As [`listen`](Self::listen).
    ///
    /// ```
    /// # use mio_selectors::{Config, Reactor};
    /// # use mio_selectors::reactor::ListenOptions;
    #[doc = doc_app!()]
    /// let options = ListenOptions { reuse_port: true, ..ListenOptions::default() };
    /// let mut a = Reactor::new(App, Config::default())?;
    /// let id = a.listen_with("127.0.0.1:0", &options)?;
    /// let port = a.local_addr(id)?.port();
    /// let mut b = Reactor::new(App, Config::default())?;
    /// b.listen_with(("127.0.0.1", port), &options)?; // shares the port
    /// # Ok::<(), mio_selectors::Error>(())
    /// ```
    pub fn listen_with(
        &mut self,
        addr: impl ToSocketAddrs,
        options: &ListenOptions,
    ) -> Result<ListenerId> {
        let sock = bind_first(addr, |a| options.bind(a))?;
        self.add_listener(sock)
    }

    /// Serves a TCP listener bound elsewhere.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if it cannot be registered with epoll.
    ///
    /// ```
    /// # use mio_selectors::{Config, Reactor};
    #[doc = doc_app!()]
    /// let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// std_listener.set_nonblocking(true)?;
    /// let mut reactor = Reactor::new(App, Config::default())?;
    /// reactor.add_listener(mio::net::TcpListener::from_std(std_listener))?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn add_listener(&mut self, sock: TcpListener) -> Result<ListenerId> {
        self.add_listen_sock(ListenSock::Tcp(sock))
    }

    /// Binds a Unix stream listener at `path` and serves it like a TCP one.
    /// A stale socket file at `path` (a socket nobody listens on) is removed
    /// first; the file this creates is removed when the listener closes.
    ///
    /// # Errors
    ///
    /// [`Error::Bind`] naming the path: someone listens there already, the
    /// path is another kind of file, or the directory is not writable;
    /// [`Error::Io`] if epoll refuses the socket.
    ///
    /// ```
    /// # use mio_selectors::{Config, Reactor};
    #[doc = doc_app!()]
    /// let path = std::env::temp_dir().join(format!("doc-{}.sock", std::process::id()));
    /// let mut reactor = Reactor::new(App, Config::default())?;
    /// reactor.listen_unix(&path)?;
    /// assert!(path.exists());
    /// drop(reactor);
    /// assert!(!path.exists());
    /// # Ok::<(), mio_selectors::Error>(())
    /// ```
    pub fn listen_unix(&mut self, path: impl AsRef<Path>) -> Result<ListenerId> {
        let path = path.as_ref();
        let sock = bind_unix(path).map_err(|source| Error::Bind {
            addr: path.display().to_string(),
            source,
        })?;
        let path = Some(path.to_path_buf());
        self.add_listen_sock(ListenSock::Unix { sock, path })
    }

    fn add_listen_sock(&mut self, mut sock: ListenSock) -> Result<ListenerId> {
        let id = ListenerId(self.core.endpoints.next_id());
        // Filed only if registration succeeds: a failure leaves nothing behind.
        self.core
            .registry
            .register(sock.source(), id.token(), Interest::READABLE)?;
        log::info!("listening on {}", sock.describe());
        self.core.endpoints.insert(Endpoint::Listener(Listener {
            sock,
            ready: true,
            wrap: None,
        }));
        Ok(id)
    }

    /// The address a TCP listener is bound to (to learn the port after `:0`).
    ///
    /// # Errors
    ///
    /// [`Error::NoSuchEndpoint`] for an unknown id or a Unix listener,
    /// [`Error::Io`] from `getsockname`.
    ///
    /// ```
    /// # use mio_selectors::{Config, Reactor};
    #[doc = doc_app!()]
    /// let mut reactor = Reactor::new(App, Config::default())?;
    /// let id = reactor.listen("[::1]:0")?;
    /// assert!(reactor.local_addr(id)?.is_ipv6());
    /// # Ok::<(), mio_selectors::Error>(())
    /// ```
    pub fn local_addr(&self, id: ListenerId) -> Result<SocketAddr> {
        match self.core.endpoints.get(id.0) {
            Some(Endpoint::Listener(Listener {
                sock: ListenSock::Tcp(l),
                ..
            })) => Ok(l.local_addr()?),
            _ => Err(Error::NoSuchEndpoint),
        }
    }

    /// Binds a UDP socket to the first address of `addr` that binds and
    /// serves it: each datagram goes to [`Handler::datagram_received`];
    /// replies go out with [`Context::send_to`].
    ///
    /// # Errors
    ///
    /// [`Error::Bind`] naming the address; [`Error::Io`] if `addr` does not
    /// resolve or epoll refuses the socket.
    ///
    /// ```
    /// # use mio_selectors::{Config, Reactor};
    #[doc = doc_app!()]
    /// let mut reactor = Reactor::new(App, Config::default())?;
    /// let udp = reactor.bind_udp("127.0.0.1:0")?;
    /// assert!(reactor.udp_addr(udp)?.ip().is_loopback());
    /// # Ok::<(), mio_selectors::Error>(())
    /// ```
    pub fn bind_udp(&mut self, addr: impl ToSocketAddrs) -> Result<UdpId> {
        let mut sock = bind_first(addr, UdpSocket::bind)?;
        let id = UdpId(self.core.endpoints.next_id());
        let interest = Interest::READABLE | Interest::WRITABLE;
        self.core
            .registry
            .register(&mut sock, id.token(), interest)?;
        log::info!("udp: bound {:?}", sock.local_addr().ok());
        self.core.endpoints.insert(Endpoint::Udp(Udp::new(sock)));
        if self.udp_buf.is_empty() {
            self.udp_buf = vec![0; UDP_MAX];
        }
        Ok(id)
    }

    /// The address a UDP socket is bound to.
    ///
    /// # Errors
    ///
    /// [`Error::NoSuchEndpoint`], [`Error::Io`].
    ///
    /// ```
    /// # use mio_selectors::{Config, Reactor};
    #[doc = doc_app!()]
    /// let mut reactor = Reactor::new(App, Config::default())?;
    /// let udp = reactor.bind_udp("[::1]:0")?;
    /// assert!(reactor.udp_addr(udp)?.is_ipv6());
    /// # Ok::<(), mio_selectors::Error>(())
    /// ```
    pub fn udp_addr(&self, id: UdpId) -> Result<SocketAddr> {
        match self.core.endpoints.get(id.0) {
            Some(Endpoint::Udp(u)) => Ok(u.sock.local_addr()?),
            _ => Err(Error::NoSuchEndpoint),
        }
    }

    /// Watches a descriptor the application reads or writes itself (stdin,
    /// a pipe, a terminal), reporting it to [`Handler::source_ready`]
    /// level-triggered, as [`Selector`](crate::Selector) does (one
    /// `epoll_ctl` per report). The descriptor stays the caller's: keep it
    /// open while registered, and unregister it with
    /// [`Context::unregister_source`] before closing it.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidEvents`]; [`Error::Io`] if epoll refuses it (a
    /// regular file gives `EPERM`: it is always ready, so read it directly).
    ///
    /// ```
    /// # use mio_selectors::{Config, Reactor, EVENT_READ};
    #[doc = doc_app!()]
    /// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
    /// let mut reactor = Reactor::new(App, Config::default())?;
    /// use std::os::unix::io::AsRawFd;
    /// reactor.register_fd(a.as_raw_fd(), EVENT_READ)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn register_fd(&mut self, fd: RawFd, events: EventMask) -> Result<SourceId> {
        self.core.register_fd(fd, events)
    }

    /// Puts a protocol layer on every connection `listener` accepts from
    /// now on: TLS ([`Wrap::tls`](super::Wrap::tls)), HTTP/WebSocket
    /// ([`Wrap::web`](super::Wrap::web)), or both. The handler hears of a
    /// connection only once its handshake is done and sees plaintext
    /// (lines, for WebSocket) only.
    ///
    /// # Errors
    ///
    /// [`Error::NoSuchEndpoint`] if `listener` names no listener.
    pub fn wrap_listener(&mut self, listener: ListenerId, wrap: super::Wrap) -> Result<()> {
        match self.core.endpoints.get_mut(listener.0) {
            Some(Endpoint::Listener(l)) => {
                l.wrap = Some(wrap);
                Ok(())
            }
            _ => Err(Error::NoSuchEndpoint),
        }
    }

    /// [`Context::connect_wrapped`] before (or while) the loop runs.
    ///
    /// # Errors
    ///
    /// As [`Context::connect_wrapped`].
    pub fn connect_wrapped(
        &mut self,
        addr: SocketAddr,
        data: H::Data,
        wrap: &super::Wrap,
    ) -> Result<ConnId> {
        self.core.now = Instant::now();
        Context {
            core: &mut self.core,
        }
        .connect_wrapped(addr, data, wrap)
    }

    /// Opens an outgoing TCP connection before (or while) the loop runs; see
    /// [`Context::connect`].
    ///
    /// # Errors
    ///
    /// As [`Context::connect`].
    ///
    /// ```
    /// # use mio_selectors::{Config, Reactor};
    #[doc = doc_app!()]
    /// let mut reactor = Reactor::new(App, Config::default())?;
    /// let server = reactor.listen("127.0.0.1:0")?;
    /// let addr = reactor.local_addr(server)?;
    /// let id = reactor.connect(addr, ())?;
    /// # Ok::<(), mio_selectors::Error>(())
    /// ```
    pub fn connect(&mut self, addr: SocketAddr, data: H::Data) -> Result<ConnId> {
        self.core.now = Instant::now();
        Context {
            core: &mut self.core,
        }
        .connect(addr, data)
    }

    /// Runs `f` with a [`Context`], outside any callback: to queue output
    /// or set timers before [`run`](Self::run).
    ///
    /// ```
    /// # use mio_selectors::{Config, Reactor};
    #[doc = doc_app!()]
    /// let mut reactor = Reactor::new(App, Config::default())?;
    /// reactor.with_context(|cx| cx.call_later(std::time::Duration::from_secs(1), None, 0));
    /// # Ok::<(), mio_selectors::Error>(())
    /// ```
    pub fn with_context<R>(&mut self, f: impl FnOnce(&mut Context<'_, H::Data>) -> R) -> R {
        self.core.now = Instant::now();
        f(&mut Context {
            core: &mut self.core,
        })
    }

    /// A `Send + Clone` handle that stops [`run`](Self::run) or hands it
    /// work from anywhere.
    ///
    /// ```
    /// # use mio_selectors::{Config, Reactor};
    #[doc = doc_app!()]
    /// let mut reactor = Reactor::new(App, Config::default())?;
    /// reactor.handle().stop();
    /// reactor.run()?; // returns at once
    /// # Ok::<(), mio_selectors::Error>(())
    /// ```
    pub fn handle(&self) -> Handle {
        self.core.handle.clone()
    }

    /// Stops gracefully on SIGINT or SIGTERM (through `signal-hook-mio`:
    /// the signal arrives as an event, no thread, no unsafe handler). A
    /// second signal while stopping closes everything at once.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the signal handlers cannot be installed.
    ///
    /// ```
    /// # use mio_selectors::{Config, Reactor};
    #[doc = doc_app!()]
    /// let mut reactor = Reactor::new(App, Config::default())?;
    /// reactor.stop_on_signals()?;
    /// # Ok::<(), mio_selectors::Error>(())
    /// ```
    pub fn stop_on_signals(&mut self) -> Result<()> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let mut signals = Signals::new([SIGINT, SIGTERM])?;
        self.core
            .registry
            .register(&mut signals, SIGNALS, Interest::READABLE)?;
        self.signals = Some(signals);
        Ok(())
    }

    /// The handler, to read what it gathered.
    ///
    /// ```
    /// # use mio_selectors::{Config, Reactor};
    #[doc = doc_app!()]
    /// let reactor = Reactor::new(App, Config::default())?;
    /// let _app: &App = reactor.handler();
    /// # Ok::<(), mio_selectors::Error>(())
    /// ```
    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// The handler, open to change between runs.
    ///
    /// ```
    /// # use mio_selectors::{Config, Reactor};
    #[doc = doc_app!()]
    /// let mut reactor = Reactor::new(App, Config::default())?;
    /// let _app: &mut App = reactor.handler_mut();
    /// # Ok::<(), mio_selectors::Error>(())
    /// ```
    pub fn handler_mut(&mut self) -> &mut H {
        &mut self.handler
    }

    /// How many connections are open, connecting or closing.
    ///
    /// ```
    /// # use mio_selectors::{Config, Reactor};
    #[doc = doc_app!()]
    /// let reactor = Reactor::new(App, Config::default())?;
    /// assert_eq!(reactor.connection_count(), 0);
    /// # Ok::<(), mio_selectors::Error>(())
    /// ```
    pub fn connection_count(&self) -> usize {
        self.core.conns.len()
    }

    /// Runs the loop until [`Handle::stop`] (or a signal, after
    /// [`stop_on_signals`](Self::stop_on_signals)) and the graceful shutdown
    /// that follows have finished.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if `epoll_wait` fails (not for `EINTR`, which is retried).
    /// Errors on single connections never end the loop: they close that
    /// connection and reach [`Handler::connection_lost`].
    ///
    /// ```
    /// # use mio_selectors::{Config, Reactor};
    #[doc = doc_app!()]
    /// let mut reactor = Reactor::new(App, Config::default())?;
    /// let handle = reactor.handle();
    /// std::thread::spawn(move || handle.stop());
    /// reactor.run()?;
    /// # Ok::<(), mio_selectors::Error>(())
    /// ```
    pub fn run(&mut self) -> Result<()> {
        while !self.turn()? {}
        Ok(())
    }

    /// One pass of the loop; `true` once shutdown has finished.
    fn turn(&mut self) -> Result<bool> {
        let timeout = self.poll_timeout();
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
        self.core.now = Instant::now();
        // 1. Note what the kernel said (events borrowed out so handlers can run).
        let events = mem::replace(&mut self.events, Events::with_capacity(0));
        for event in events.iter() {
            match event.token() {
                WAKER => self.run_tasks(),
                SIGNALS => self.on_signals(),
                t if t.0 & ENDPOINT_BIT != 0 => self.note_endpoint(t.0 & !ENDPOINT_BIT, event),
                t => self.note_readiness(ConnId(t.0), event),
            }
        }
        self.events = events;
        if self.core.handle.is_stopping() && !self.core.shutting_down {
            self.begin_shutdown();
        }
        // 2. Accept, then read (reads before writes, as in ae.c), then UDP.
        self.accept_all();
        let mut batch = mem::replace(&mut self.core.ready, mem::take(&mut self.scratch));
        for &id in &batch {
            self.read_conn(id);
        }
        batch.clear();
        self.scratch = batch;
        self.serve_udp();
        // 3. Deadlines, then write and close until nothing is left to do.
        self.expire();
        self.settle();
        Ok(self.core.shutting_down && self.core.conns.is_empty())
    }

    fn poll_timeout(&self) -> Option<Duration> {
        let accepting = self.accept_paused_until.is_none() && !self.core.shutting_down;
        let due = self.core.endpoints.iter().any(|e| match e {
            Endpoint::Listener(l) => l.ready && accepting,
            Endpoint::Udp(u) => u.readable,
            Endpoint::Fd { .. } => false,
        });
        if !self.core.ready.is_empty() || !self.core.dirty.is_empty() || due {
            return Some(Duration::ZERO);
        }
        let deadline = [
            self.core.linger.front().map(|&(d, _)| d),
            self.core.timers.keys().next().map(|&(d, _)| d),
            self.accept_paused_until,
            self.shutdown_deadline,
        ]
        .into_iter()
        .flatten()
        .min()?;
        // mio rounds a timeout up to whole milliseconds, so waking early
        // cannot spin until the deadline.
        Some(deadline.saturating_duration_since(Instant::now()))
    }

    /// Runs work other threads sent through [`Handle::call_soon_threadsafe`].
    fn run_tasks(&mut self) {
        for task in self.core.handle.take_tasks() {
            task(&mut Context {
                core: &mut self.core,
            });
        }
    }

    fn note_endpoint(&mut self, raw: usize, event: &mio::event::Event) {
        let readable = event.is_readable() || event.is_read_closed() || event.is_error();
        let writable = event.is_writable() || event.is_write_closed() || event.is_error();
        match self.core.endpoints.get_mut(raw) {
            Some(Endpoint::Listener(l)) => l.ready = true,
            Some(Endpoint::Udp(u)) => {
                u.readable |= readable;
                if writable {
                    u.writable = true;
                    u.flush();
                }
            }
            Some(&mut Endpoint::Fd { fd, events }) => {
                let mask = EventMask::from_mio(event) & events;
                if !mask.is_empty() {
                    let cx = &mut Context {
                        core: &mut self.core,
                    };
                    self.handler.source_ready(cx, SourceId(raw), mask);
                }
                // Level-triggered: re-arm, so the kernel reports it again
                // while it stays ready (unless the handler unregistered it).
                if let Some(Endpoint::Fd { fd: same, .. }) = self.core.endpoints.get(raw) {
                    if *same == fd {
                        let interest = events.to_interest().expect("validated at registration");
                        let token = SourceId(raw).token();
                        let _ = self
                            .core
                            .registry
                            .reregister(&mut SourceFd(&fd), token, interest);
                    }
                }
            }
            None => {}
        }
    }

    fn note_readiness(&mut self, id: ConnId, event: &mio::event::Event) {
        let Some(conn) = self.core.get_mut(id) else {
            log::trace!("stale event for {id} ignored");
            return;
        };
        let failed = event.is_error();
        if event.is_read_closed() || failed {
            conn.hup = true;
        }
        let readable = event.is_readable() || event.is_read_closed() || failed;
        let writable = event.is_writable() || event.is_write_closed() || failed;
        if matches!(conn.state, State::Connecting { .. }) {
            if !writable {
                return;
            }
            self.connect_done(id);
        }
        let Some(conn) = self.core.get_mut(id) else {
            return;
        };
        if readable {
            conn.readable = true;
            self.core.queue_ready(id);
        }
        let Some(conn) = self.core.get_mut(id) else {
            return;
        };
        if writable {
            conn.writable = true;
            if !conn.outb.is_empty() || matches!(conn.state, State::Closing { .. }) {
                self.core.mark_dirty(id);
            }
        }
    }

    /// A connecting socket became writable: the connect ended, well or badly
    /// (mio's recipe: `take_error`, then `peer_addr`).
    fn connect_done(&mut self, id: ConnId) {
        let Some(conn) = self.core.get_mut(id) else {
            return;
        };
        let outcome = match conn.stream.take_error() {
            Ok(Some(e)) | Err(e) => Err(e),
            Ok(None) => conn.stream.peer_addr(),
        };
        if matches!(&outcome, Err(e) if e.kind() == io::ErrorKind::NotConnected) {
            return; // spurious: not yet
        }
        let State::Connecting { timer, close } = mem::replace(&mut conn.state, State::Open) else {
            return;
        };
        log::debug!(
            "{id}: connect to {}: {:?}",
            conn.peer,
            outcome.as_ref().err()
        );
        self.core.cancel_timer(timer);
        match outcome {
            Ok(_) if self.core.get(id).is_some_and(|c| c.wrap.is_some()) => {
                // The handshake first; connection_made once it is done.
                let timeout = self
                    .core
                    .get(id)
                    .and_then(|c| c.wrap.as_ref())
                    .map(|w| w.timeout);
                self.start_wrapped(id, timeout.unwrap_or(super::HANDSHAKE_TIMEOUT));
                if let Some(reason) = close {
                    self.core.close_gracefully(id, reason);
                }
            }
            Ok(_) => {
                if let Some(conn) = self.core.get_mut(id) {
                    conn.made = true;
                }
                self.lend(id, |h, cx, data, _| h.connection_made(cx, id, data));
                self.core.mark_dirty(id); // output queued while connecting
                if let Some(reason) = close {
                    self.core.close_gracefully(id, reason); // asked for while connecting
                }
            }
            Err(e) => {
                self.core.kill(id, CloseReason::ConnectFailed(e));
            }
        }
    }

    fn on_signals(&mut self) {
        let Some(signals) = self.signals.as_mut() else {
            return;
        };
        for sig in signals.pending() {
            log::info!("received signal {sig}");
            if self.core.shutting_down {
                log::warn!("second signal: closing everything now");
                self.shutdown_deadline = Some(Instant::now());
            }
            self.core.handle.stop();
        }
    }

    fn begin_shutdown(&mut self) {
        log::info!("shutting down");
        self.core.shutting_down = true;
        // Stop accepting and serving datagrams; dropping a Unix listener
        // removes its socket file.
        for raw in self.core.endpoints.ids() {
            let registry = &self.core.registry;
            match self.core.endpoints.remove(raw) {
                Some(Endpoint::Listener(mut l)) => drop(registry.deregister(l.sock.source())),
                Some(Endpoint::Udp(mut u)) => {
                    u.flush();
                    drop(registry.deregister(&mut u.sock))
                }
                Some(Endpoint::Fd { fd, .. }) => drop(registry.deregister(&mut SourceFd(&fd))),
                None => {}
            }
        }
        self.handler.shutting_down(&mut Context {
            core: &mut self.core,
        });
        let ids = self.core.all_ids();
        for id in ids {
            self.core.close_gracefully(id, CloseReason::Shutdown);
        }
        // (A second signal can only come later, and moves this deadline to now.)
        let timeout = self.core.config.shutdown_timeout;
        self.shutdown_deadline = Some(later(Instant::now(), timeout));
    }

    /// Accepts on every ready listener until `WouldBlock` (at most
    /// `ACCEPT_BATCH` each per pass).
    fn accept_all(&mut self) {
        if self.core.shutting_down || self.accept_paused_until.is_some() {
            return;
        }
        for key in 0..self.core.endpoints.slots() {
            let mut accepted = 0;
            while accepted < ACCEPT_BATCH {
                let Some((_, Endpoint::Listener(l))) = self.core.endpoints.slot_mut(key) else {
                    break;
                };
                if !l.ready {
                    break;
                }
                match l.sock.accept() {
                    Ok((stream, peer)) => {
                        accepted += 1;
                        self.accept_failing = false;
                        let wrap = l.wrap.clone();
                        self.admit(stream, peer, wrap);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => l.ready = false,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    // The client gave up before we got to it: skip it.
                    Err(e) if is_aborted(&e) => log::debug!("accept: {e}; skipped"),
                    Err(e) => {
                        // EMFILE/ENFILE and the like: retrying now would spin.
                        // Warn once per episode, not once per backoff.
                        let backoff = self.core.config.accept_backoff;
                        if mem::replace(&mut self.accept_failing, true) {
                            log::debug!("accept failed: {e}; pausing accepts for {backoff:?}");
                        } else {
                            log::warn!(
                                "accept failed: {e}; pausing accepts for {backoff:?} at a time"
                            );
                        }
                        self.accept_paused_until = Some(later(Instant::now(), backoff));
                        return;
                    }
                }
            }
        }
    }

    /// Registers an accepted socket and asks the handler about it.
    fn admit(&mut self, stream: super::stream::Stream, peer: PeerAddr, wrap: Option<super::Wrap>) {
        let ip = peer.inet().map(|a| a.ip());
        if let (Some(max), Some(ip)) = (self.core.config.max_per_ip, ip) {
            let count = self.core.per_ip.get(&ip).copied().unwrap_or(0);
            if count >= max {
                // Dropping the stream closes it; one line per burst, not per client.
                if !mem::replace(&mut self.full_logged, true) {
                    log::warn!("refusing {peer}: {count} connections from {ip} already");
                }
                return;
            }
        }
        let id = match self.core.insert(stream, peer.clone(), State::Open) {
            Ok(id) => id,
            Err(e) => {
                // Dropping the stream closes it.
                if !mem::replace(&mut self.full_logged, true) {
                    log::warn!("refusing {peer}: {e}");
                }
                return;
            }
        };
        self.full_logged = false;
        log::debug!("{id}: accepted {peer}");
        if let (Some(_), Some(ip)) = (self.core.config.max_per_ip, ip) {
            *self.core.per_ip.entry(ip).or_insert(0) += 1;
            if let Some(conn) = self.core.get_mut(id) {
                conn.counted = true;
            }
        }
        if let Some(wrap) = wrap {
            // The handler hears of it once the handshake is done.
            match wrap.make() {
                Ok(layer) => {
                    if let Some(conn) = self.core.get_mut(id) {
                        conn.wrap = Some(Wrapped::new(layer));
                    }
                    self.start_wrapped(id, wrap.handshake_timeout);
                }
                Err(e) => {
                    log::warn!("{id}: cannot make its {} layer: {e}", wrap.name());
                    let e = io::Error::other(e);
                    self.core.kill(id, CloseReason::Error(e));
                }
            }
            return;
        }
        self.tell_accepted(id, &peer);
    }

    /// `accept_wrapper` for a connection now ready for the handler.
    pub(super) fn tell_accepted(&mut self, id: ConnId, peer: &PeerAddr) {
        let core = &mut self.core;
        let data = self.handler.accept_wrapper(&mut Context { core }, id, peer);
        match data {
            Some(data) => {
                if let Some(conn) = core.get_mut(id) {
                    conn.data = Some(data);
                    conn.made = true;
                }
                self.lend(id, |h, cx, data, _| h.connection_made(cx, id, data));
            }
            None => core.close_gracefully(id, CloseReason::Closed),
        }
    }

    /// Reads `id` until drained, paused, full or out of budget, handing each
    /// chunk to the handler.
    fn read_conn(&mut self, id: ConnId) {
        let (chunk, max_inb) = (self.core.config.read_chunk, self.core.config.max_inb);
        let mut budget = self.core.config.read_budget;
        let now = self.core.now;
        let Some(conn) = self.core.get_mut(id) else {
            return;
        };
        conn.queued = false;
        // Input left in `inb` while reading or writing was paused gets its
        // turn first (and keeps waiting while output is still backed up).
        // After EOF the handler has had its last input (no DR after ER).
        let unpaused = conn.is_open() && !conn.paused && !conn.read_paused && !conn.eof;
        if unpaused && mem::take(&mut conn.reservice) && !conn.inb.is_empty() {
            self.with_inb(id, |h, cx, data, inb| {
                h.service_connection(cx, id, data, inb)
            });
        }
        loop {
            let Some((conn, pool)) = self.core.conn_and_pool(id) else {
                return;
            };
            let lingering = matches!(conn.state, State::Lingering { .. });
            let wanted = conn.is_open() && !conn.paused && !conn.read_paused || lingering;
            if !conn.readable || conn.eof || !wanted {
                return;
            }
            // Saturating: a layer may overshoot `max_inb` by one record or message.
            let want = chunk.min(max_inb.saturating_sub(conn.inb.len()));
            if want == 0 {
                return; // full: the handler was told, see `with_inb`
            }
            if budget == 0 {
                self.core.queue_ready(id); // fairness: the rest next pass
                return;
            }
            if conn.wrap.is_some() {
                match self.read_wrapped(id, want, lingering) {
                    Some(n) => {
                        budget = budget.saturating_sub(n);
                        continue;
                    }
                    None => return,
                }
            }
            let spare = conn.inb.spare(want, pool);
            match (&conn.stream).read(spare) {
                Ok(0) => {
                    conn.eof = true;
                    conn.readable = false;
                    conn.inb.release_if_empty(pool);
                    if lingering {
                        self.core.finish(id);
                    } else {
                        self.with_inb(id, |h, cx, data, inb| h.eof_received(cx, id, data, inb));
                    }
                    return;
                }
                Ok(n) => {
                    budget = budget.saturating_sub(n);
                    if lingering {
                        continue; // discard: the connection is closing
                    }
                    conn.inb.commit(n);
                    if let Some(idle) = &mut conn.idle {
                        idle.last_read = now;
                    }
                    // A short read proves the socket drained, unless the
                    // kernel reported a hang-up that may sit behind the data.
                    if n < want && !conn.hup {
                        conn.readable = false;
                    }
                    self.with_inb(id, |h, cx, data, inb| {
                        h.service_connection(cx, id, data, inb)
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    conn.readable = false;
                    conn.inb.release_if_empty(pool);
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::debug!("{id}: read failed: {e}");
                    self.core.kill(id, CloseReason::Error(e));
                    return;
                }
            }
        }
    }

    /// Calls the handler about `id` with its data and input buffer lent out
    /// (so that the handler may also send to `id`), then puts them back; a
    /// connection with no data (refused, or not made yet) is not called
    /// about. Every per-connection callback goes through here.
    pub(super) fn lend(
        &mut self,
        id: ConnId,
        f: impl FnOnce(&mut H, &mut Context<'_, H::Data>, &mut H::Data, &mut InBuf),
    ) {
        let Some(conn) = self.core.get_mut(id) else {
            return;
        };
        let Some(mut data) = conn.data.take() else {
            return;
        };
        let mut inb = InBuf(mem::take(&mut conn.inb));
        let cx = &mut Context {
            core: &mut self.core,
        };
        f(&mut self.handler, cx, &mut data, &mut inb);
        // The slot cannot have been reused: removal happens only in `reap`.
        if let Some(conn) = self.core.get_mut(id) {
            conn.data = Some(data);
            conn.inb = inb.0;
        }
    }

    /// [`lend`](Self::lend) for the callbacks that consume input, then the
    /// input-overflow policy: a handler that leaves a full `inb` untouched
    /// (and is not holding it back on purpose) closes the connection.
    pub(super) fn with_inb(
        &mut self,
        id: ConnId,
        f: impl FnOnce(&mut H, &mut Context<'_, H::Data>, &mut H::Data, &mut InBuf),
    ) {
        let max_inb = self.core.config.max_inb;
        let Some(conn) = self.core.get_mut(id) else {
            return;
        };
        let before = conn.inb.len();
        self.lend(id, f);
        let Some((conn, pool)) = self.core.conn_and_pool(id) else {
            return;
        };
        if !conn.is_open() {
            // Closed from the callback: nobody will consume the rest, and a
            // full `inb` would keep the linger phase from reading to FIN.
            conn.inb.clear();
        }
        conn.inb.release_if_empty(pool);
        let stuck = conn.inb.len() >= max_inb && conn.inb.len() == before;
        // A handler that holds input back on purpose (paused) is not stuck.
        if stuck && conn.is_open() && !conn.read_paused && !conn.paused {
            log::info!(
                "{id} ({}): {max_inb} bytes of input left unconsumed; closing",
                conn.peer
            );
            self.core.kill(id, CloseReason::InputOverflow);
        }
    }

    /// Reads datagrams from every readable UDP socket (at most `UDP_BATCH`
    /// each per pass) and hands them to the handler.
    fn serve_udp(&mut self) {
        if self.udp_buf.is_empty() {
            return; // no UDP socket was ever bound
        }
        for key in 0..self.core.endpoints.slots() {
            for _ in 0..UDP_BATCH {
                let Some((raw, Endpoint::Udp(u))) = self.core.endpoints.slot_mut(key) else {
                    break;
                };
                if !u.readable {
                    break;
                }
                match u.sock.recv_from(&mut self.udp_buf) {
                    Ok((n, from)) => {
                        let cx = &mut Context {
                            core: &mut self.core,
                        };
                        let data = &self.udp_buf[..n];
                        self.handler.datagram_received(cx, UdpId(raw), data, from);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => u.readable = false,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    // An ICMP error for an earlier datagram: nothing to do.
                    Err(e) => log::debug!("udp: recv: {e}"),
                }
            }
        }
    }

    /// Writes `id`'s pending output until done or `WouldBlock`, then moves
    /// backpressure and graceful close along.
    fn flush(&mut self, id: ConnId) {
        let (low, linger) = (self.core.config.low_water, self.core.config.linger);
        let now = self.core.now;
        let Some((conn, pool)) = self.core.conn_and_pool(id) else {
            return;
        };
        conn.dirty = false;
        if matches!(conn.state, State::Dead(_) | State::Connecting { .. }) {
            return;
        }
        while conn.writable && !conn.outb.is_empty() {
            match conn.outb.write_to(&conn.stream) {
                Ok((0, _)) => {
                    let e = io::Error::new(io::ErrorKind::WriteZero, "write returned 0");
                    self.core.kill(id, CloseReason::Error(e));
                    return;
                }
                Ok((n, offered)) => {
                    conn.outb.consume(n, pool);
                    if let Some(idle) = &mut conn.idle {
                        idle.last_write = now;
                    }
                    // A short write means the send buffer is full (the
                    // kernel set SOCK_NOSPACE and will report writable on
                    // the next edge, as tokio relies on too): asking again
                    // now would only earn a WouldBlock.
                    if n < offered {
                        conn.writable = false;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => conn.writable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::debug!("{id}: write failed: {e}");
                    self.core.kill(id, CloseReason::Error(e));
                    return;
                }
            }
        }
        if conn.paused && !conn.pause_told && conn.is_open() {
            // Reported now, after the callback whose `send` passed the mark
            // has returned; every pause a handler may have seen through
            // `is_writing_paused` is reported, so its resume is too.
            conn.pause_told = true;
            self.lend(id, |h, cx, data, _| h.pause_writing(cx, id, data));
        }
        let Some(conn) = self.core.get_mut(id) else {
            return;
        };
        if conn.paused && conn.outb.len() <= low {
            conn.paused = false;
            // Input held back while output was backed up gets its turn too.
            conn.reservice |= !conn.inb.is_empty();
            let ready = conn.readable || conn.reservice;
            // Only a pause that was reported is resumed (they come in pairs).
            let told = mem::take(&mut conn.pause_told) && conn.is_open();
            if ready {
                self.core.queue_ready(id);
            }
            if told {
                self.lend(id, |h, cx, data, _| h.resume_writing(cx, id, data));
            }
        }
        let Some(conn) = self.core.get_mut(id) else {
            return;
        };
        if !conn.outb.is_empty() {
            return;
        }
        if mem::take(&mut conn.fin_pending) {
            // `write_eof`: everything queued before it is out, now FIN.
            let _ = conn.stream.shutdown(Shutdown::Write);
        }
        if matches!(conn.state, State::Closing { .. }) {
            // All sent: FIN, then wait for the peer's FIN (see `State::Lingering`).
            let _ = conn.stream.shutdown(Shutdown::Write);
            if conn.eof {
                return self.core.finish(id);
            }
            let State::Closing { reason, .. } = mem::replace(&mut conn.state, State::Open) else {
                unreachable!("matched above")
            };
            let until = later(now, linger);
            conn.state = State::Lingering { reason, until };
            if conn.readable {
                self.core.queue_ready(id);
            }
            self.core.linger.push_back((until, id));
        }
    }

    /// Fires due timers, closes connections whose graceful close ran out of
    /// time, ends a shutdown that ran out of time, and resumes paused accepts.
    fn expire(&mut self) {
        if self.core.linger.is_empty()
            && self.core.timers.is_empty()
            && self.accept_paused_until.is_none()
            && self.shutdown_deadline.is_none()
        {
            return; // steady state: nothing to look at
        }
        let now = self.core.now;
        let linger = self.core.config.linger;
        while let Some(&(deadline, id)) = self.core.linger.front() {
            if deadline > now {
                break;
            }
            self.core.linger.pop_front();
            let Some(conn) = self.core.get_mut(id) else {
                continue;
            };
            let pending = conn.outb.len();
            match &mut conn.state {
                // Still flushing: fine while the peer keeps reading.
                State::Closing { unsent, .. } if pending < *unsent => {
                    *unsent = pending;
                    self.core.linger.push_back((later(now, linger), id));
                }
                State::Closing { .. } => {
                    log::info!("{id}: peer stopped reading while closing; {pending} bytes dropped");
                    let why = format!("peer stopped reading; {pending} bytes of output dropped");
                    let e = io::Error::new(io::ErrorKind::TimedOut, why);
                    self.core.kill(id, CloseReason::Error(e));
                }
                State::Lingering { until, .. } if *until <= now => {
                    log::debug!("{id}: no FIN from the peer; closing");
                    self.core.finish(id);
                }
                _ => {} // an older deadline of a state since left
            }
        }
        // Timers due now. One set by a callback here waits for the next pass
        // (even with no delay), so timers cannot keep the loop from polling.
        let limit = self.core.next_timer;
        while let Some((&(deadline, seq), &timer)) = self.core.timers.first_key_value() {
            if deadline > now || seq >= limit {
                break;
            }
            self.core.timers.remove(&(deadline, seq));
            self.core.timer_deadlines.remove(&seq);
            self.fire(timer, seq);
        }
        if self.shutdown_deadline.is_some_and(|d| d <= now) {
            let ids = self.core.all_ids();
            if !ids.is_empty() {
                log::warn!("shutdown timed out: closing {} connections", ids.len());
            }
            for id in ids {
                self.core.kill(id, CloseReason::Shutdown);
            }
        }
        if self.accept_paused_until.is_some_and(|t| t <= now) {
            self.resume_accepting();
        }
    }

    fn fire(&mut self, timer: Timer, seq: u64) {
        let now = self.core.now;
        match timer {
            Timer::User { conn, tag, every } => {
                if conn.is_some_and(|id| self.core.get(id).is_none_or(|c| !c.is_open())) {
                    return; // its connection is gone: the timer goes with it
                }
                if let Some(period) = every {
                    // Same id, next deadline, so the id still cancels it.
                    let next = later(now, period);
                    self.core.timers.insert((next, seq), timer);
                    self.core.timer_deadlines.insert(seq, next);
                }
                match conn {
                    Some(id) => {
                        self.lend(id, |h, cx, data, _| h.on_timer(cx, Some((id, data)), tag))
                    }
                    None => {
                        let cx = &mut Context {
                            core: &mut self.core,
                        };
                        self.handler.on_timer(cx, None, tag);
                    }
                }
            }
            Timer::Connect(id) => {
                if self
                    .core
                    .get(id)
                    .is_some_and(|c| matches!(c.state, State::Connecting { .. }))
                {
                    let e = io::Error::new(io::ErrorKind::TimedOut, "connect timed out");
                    self.core.kill(id, CloseReason::ConnectFailed(e));
                }
            }
            Timer::Handshake(id) => {
                if let Some(conn) = self.core.get(id) {
                    if conn.wrap.as_ref().is_some_and(|w| w.handshaking) {
                        log::debug!("{id} ({}): handshake timed out; closing", conn.peer);
                        let e = io::Error::new(io::ErrorKind::TimedOut, "handshake timed out");
                        self.core.kill(id, CloseReason::Error(e));
                    }
                }
            }
            Timer::Idle(id) => {
                let Some(conn) = self.core.get_mut(id) else {
                    return;
                };
                let Some(idle) = &mut conn.idle else {
                    return;
                };
                let deadline = idle.deadline();
                if deadline > now {
                    // Active since: check again when it could next be idle
                    // (same id, so `idle.timer` still names it).
                    self.core.timers.insert((deadline, seq), timer);
                    self.core.timer_deadlines.insert(seq, deadline);
                } else {
                    log::debug!("{id}: idle for {:?}; closing", idle.timeout);
                    self.core.close_gracefully(id, CloseReason::IdleTimeout);
                }
            }
        }
    }

    fn resume_accepting(&mut self) {
        if self.accept_paused_until.take().is_some() {
            log::debug!("accepting again");
            for e in self.core.endpoints.iter_mut() {
                if let Endpoint::Listener(l) = e {
                    l.ready = true;
                }
            }
        }
    }

    /// Flushes dirty connections, then reaps dead ones until none is left (a
    /// `connection_lost` callback may close more).
    ///
    /// Each dirty connection is written once per pass, so lines for one
    /// client coalesce into one `write`. Output queued by the reaping
    /// (`connection_lost` announcing a departure, say) waits for the next
    /// pass, which then polls without blocking.
    fn settle(&mut self) {
        let mut batch = mem::replace(&mut self.core.dirty, mem::take(&mut self.scratch));
        for &id in &batch {
            self.flush(id);
        }
        loop {
            batch.clear();
            batch = mem::replace(&mut self.core.dead, batch);
            if batch.is_empty() {
                break;
            }
            for &id in &batch {
                self.reap(id);
            }
        }
        self.scratch = batch;
    }

    /// Deregisters, closes and reports a dead connection.
    fn reap(&mut self, id: ConnId) {
        if !matches!(self.core.get(id), Some(c) if matches!(c.state, State::Dead(_))) {
            return;
        }
        let mut conn = self.core.conns.remove(id.key());
        if let (true, Some(addr)) = (conn.counted, conn.peer.inet()) {
            if let std::collections::hash_map::Entry::Occupied(mut e) =
                self.core.per_ip.entry(addr.ip())
            {
                *e.get_mut() -= 1;
                if *e.get() == 0 {
                    e.remove();
                }
            }
        }
        // Deregister before the fd closes, so epoll never holds a stale entry.
        let _ = self.core.registry.deregister(&mut conn.stream);
        conn.inb.clear();
        conn.inb.release_if_empty(&mut self.core.pool);
        conn.outb.clear(&mut self.core.pool);
        if let Some(idle) = conn.idle.take() {
            self.core.cancel_timer(idle.timer);
        }
        let State::Dead(reason) = conn.state else {
            unreachable!()
        };
        log::debug!("{id}: {} closed ({reason})", conn.peer);
        drop(conn.stream);
        if let Some(data) = conn.data {
            let cx = &mut Context {
                core: &mut self.core,
            };
            if conn.made {
                self.handler.connection_lost(cx, id, data, &reason);
            } else {
                self.handler.connect_failed(cx, id, data, &reason);
            }
        }
        // A descriptor came free: queued clients need not wait out the backoff.
        self.resume_accepting();
    }
}

/// Binds with `bind` to the first address of `addr` that works; the error
/// names the last address tried.
fn bind_first<S>(
    addr: impl ToSocketAddrs,
    bind: impl Fn(SocketAddr) -> io::Result<S>,
) -> Result<S> {
    let mut last = None;
    for a in addr.to_socket_addrs()? {
        match bind(a) {
            Ok(sock) => return Ok(sock),
            Err(source) => {
                let addr = a.to_string();
                last = Some(Error::Bind { addr, source })
            }
        }
    }
    let none = || io::Error::new(io::ErrorKind::InvalidInput, "no address to bind");
    Err(last.unwrap_or_else(|| none().into()))
}

/// `accept` errors that concern one client only.
fn is_aborted(e: &io::Error) -> bool {
    const EPROTO: i32 = 71;
    const EPERM: i32 = 1;
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    ) || matches!(e.raw_os_error(), Some(EPROTO) | Some(EPERM))
}

fn check(c: &Config) -> Result<()> {
    let rules = [
        (c.read_chunk > 0, "read_chunk must be positive"),
        (c.max_inb > 0, "max_inb must be positive"),
        (c.read_budget > 0, "read_budget must be positive"),
        (
            c.low_water <= c.high_water,
            "low_water must not exceed high_water",
        ),
        (
            c.high_water <= c.max_outb,
            "high_water must not exceed max_outb",
        ),
        (
            c.max_connections < 1 << 32,
            "max_connections must fit in 32 bits",
        ),
    ];
    match rules.into_iter().find(|(ok, _)| !ok) {
        Some((_, why)) => Err(Error::Config(why)),
        None => Ok(()),
    }
}
