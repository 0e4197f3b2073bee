//! [`Reactor`]: the event loop. It accepts, connects, reads, writes and
//! closes; the [`Handler`] only decides what to send.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::unix::io::RawFd;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, UdpSocket};
use mio::{Events, Interest, Poll, Waker};
use signal_hook_mio::v1_0::Signals;

use super::core::Core;
use super::endpoint::{Endpoint, ListenSock, Listener, Udp};
use super::handle::Shared;
use super::id::{SIGNALS, WAKER};
use super::listen::bind_unix;
use super::pass::UDP_MAX;
use super::{ListenOptions, ListenerId, SourceId, UdpId};
use crate::{Config, ConnId, Context, Error, EventMask, Handle, Handler, Result};

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
/// an echo costs one `read` and one `write`. TCP urgent data is the other
/// exception: a read stops short at the urgent mark, so while the kernel
/// reports one (`EPOLLPRI`) the reactor reads on to `WouldBlock`. Accepted
/// and connected TCP sockets have `SO_OOBINLINE` set: an urgent byte
/// (`MSG_OOB`, telnet's "synch") is an ordinary byte of the stream, in its
/// place, never lost and never stalling the rest. A connection that had more to
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
/// Input is capped by [`Config::max_inb`]; output at
/// [`Config::high_water`] stops reading until it falls to
/// [`Config::low_water`]; [`Config::max_outb`] is a hard cap (the connection
/// is closed as too slow). A read never takes more than the room left below
/// `max_outb`, so an echo's pending output stays within
/// `min(high_water + read_chunk, max_outb)` whatever the marks are.
/// Buffers go back to a pool when empty, so an idle connection holds none.
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
    pub(super) poll: Poll,
    pub(super) events: Events,
    pub(super) handler: H,
    pub(super) core: Core<H::Data>,
    pub(super) signals: Option<Signals>,
    /// The waker fired: tasks from other threads wait.
    pub(super) tasks_pending: bool,
    /// Connecting sockets that became writable this pass.
    pub(super) connected: Vec<ConnId>,
    /// Accepting paused after `EMFILE`/`ENFILE` until then.
    pub(super) accept_paused_until: Option<Instant>,
    pub(super) shutdown_deadline: Option<Instant>,
    /// Where UDP datagrams are read; allocated with the first UDP socket.
    pub(super) udp_buf: Vec<u8>,
    /// Where a wrapped connection's socket is read (its layer's input).
    pub(super) wire_in: Vec<u8>,
    /// What a wrapped connection's layer decoded, on its way to `inb`.
    pub(super) app_in: Vec<u8>,
    pub(super) full_logged: bool,
    /// `accept` is failing (out of descriptors): warned once already.
    pub(super) accept_failing: bool,
    /// Mail from the other reactors of a group, taken out of the mailbox.
    pub(super) mail: Vec<(usize, crate::group::Envelope)>,
    /// Taking in the last queued connections before the listeners close:
    /// serve them here, hand nothing over.
    pub(super) draining: bool,
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
        let core = Core::new(config, poll.registry().try_clone()?, Handle { shared });
        Ok(Reactor {
            events: Events::with_capacity(1024),
            handler,
            core,
            poll,
            signals: None,
            tasks_pending: false,
            connected: Vec::new(),
            accept_paused_until: None,
            shutdown_deadline: None,
            udp_buf: Vec::new(),
            wire_in: Vec::new(),
            app_in: Vec::new(),
            full_logged: false,
            accept_failing: false,
            mail: Vec::new(),
            draining: false,
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

    /// Binds a TCP listener on `addr` whose connections the reactor answers
    /// itself: `GET /metrics` gets this reactor's counters in the Prometheus
    /// text format 0.0.4 ([`metrics`](crate::metrics)), anything else its
    /// HTTP error; one request per connection. The handler never sees these
    /// connections, and the counters leave them out (a scrape does not move
    /// `connections_active`). Returns the bound address.
    ///
    /// # Errors
    ///
    /// As [`listen`](Self::listen).
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// # use mio_selectors::{Config, Reactor};
    #[doc = doc_app!()]
    /// let mut reactor = Reactor::new(App, Config::default())?;
    /// let addr = reactor.serve_metrics("127.0.0.1:0")?;
    /// let handle = reactor.handle();
    /// let scraper = std::thread::spawn(move || {
    ///     let mut s = std::net::TcpStream::connect(addr).unwrap();
    ///     s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    ///     let mut text = String::new();
    ///     s.read_to_string(&mut text).unwrap();
    ///     handle.stop();
    ///     text
    /// });
    /// reactor.run()?;
    /// let text = scraper.join().unwrap();
    /// assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
    /// assert!(text.contains("mio_selectors_connections_active{reactor=\"0\"} 0\n"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn serve_metrics(&mut self, addr: impl ToSocketAddrs) -> Result<SocketAddr> {
        let id = self.listen(addr)?;
        if let Some(Endpoint::Listener(l)) = self.core.endpoints.get_mut(id.0) {
            l.scrape = true;
        }
        self.local_addr(id)
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
    /// first; the file this creates is removed when the listener closes, if
    /// it is still that file (same device and inode): a socket another
    /// server put there since is left alone.
    ///
    /// # Errors
    ///
    /// [`Error::Bind`] naming the path and what is in the way: someone
    /// listens there already, or a regular file, directory, symbolic link
    /// or special file is there (it is left alone); or the directory is not
    /// writable;
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
        let (sock, created) = bind_unix(path).map_err(|source| Error::Bind {
            addr: path.display().to_string(),
            source,
        })?;
        let path = Some(path.to_path_buf());
        self.add_listen_sock(ListenSock::Unix {
            sock,
            path,
            created,
        })
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
            scrape: false,
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

    /// The reactor's counters, to register the application's own before
    /// [`run`](Self::run) (see [`metrics`](crate::metrics)).
    ///
    /// ```
    /// # use mio_selectors::{Config, Reactor};
    #[doc = doc_app!()]
    /// let mut reactor = Reactor::new(App, Config::default())?;
    /// let lines = reactor.metrics().counter("lines_total", "Lines handled.")?;
    /// reactor.metrics().add(lines, 2);
    /// assert_eq!(reactor.metrics_snapshot().app("mio_selectors_lines_total"), Some(2));
    /// # Ok::<(), mio_selectors::Error>(())
    /// ```
    pub fn metrics(&mut self) -> &mut crate::metrics::Metrics {
        &mut self.core.metrics
    }

    /// A snapshot of the counters (from another thread while it runs:
    /// [`Handle::metrics`]).
    ///
    /// ```
    /// # use mio_selectors::{Config, Reactor};
    #[doc = doc_app!()]
    /// let reactor = Reactor::new(App, Config::default())?;
    /// assert_eq!(reactor.metrics_snapshot().accepted, 0);
    /// # Ok::<(), mio_selectors::Error>(())
    /// ```
    pub fn metrics_snapshot(&self) -> crate::metrics::Snapshot {
        self.core.snapshot()
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

/// Longest [`Config::busy_poll`] accepted: a spin is meant to bridge a
/// client's round trip, not to stand in for sleeping.
const MAX_BUSY_POLL: Duration = Duration::from_millis(10);

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
        (
            c.max_inb <= u32::MAX as usize && c.max_outb <= u32::MAX as usize,
            "max_inb and max_outb must be under 4 GiB",
        ),
        (
            c.busy_poll.is_none_or(|d| d <= MAX_BUSY_POLL),
            "busy_poll must be at most 10 ms",
        ),
    ];
    match rules.into_iter().find(|(ok, _)| !ok) {
        Some((_, why)) => Err(Error::Config(why)),
        None => Ok(()),
    }
}
