//! [`Reactor`]: the event loop. It accepts, connects, reads, writes and
//! closes; the [`Handler`] only decides what to send.

use std::net::SocketAddr;
use std::os::unix::io::RawFd;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Waker};
use signal_hook_mio::v1_0::Signals;

use super::core::Core;
use super::endpoint::Endpoint;
use super::handle::Shared;
use super::id::{SIGNALS, WAKER};
use super::{ListenerId, SourceId};
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
    /// [`Handler::started`] was called.
    pub(super) started: bool,
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

mod listeners;

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
            started: false,
        })
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
    /// that follows have finished. The first call starts with
    /// [`Handler::started`].
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
        if !std::mem::replace(&mut self.started, true) {
            self.core.now = Instant::now();
            let cx = &mut Context {
                core: &mut self.core,
            };
            self.handler.started(cx);
        }
        while !self.turn()? {}
        Ok(())
    }
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
