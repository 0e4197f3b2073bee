//! [`ReactorGroup`]: a reactor per core. N threads named `reactor-0` …
//! `reactor-{N-1}`, each running its own [`Reactor`](crate::Reactor) (its own `Poll`, slab
//! and [`Handler`], built by a factory given the reactor's index), serving
//! one port between them. A connection stays on the reactor that got it
//! for life; reactors share no state on the hot path.
//!
//! # Two ways to share a port
//!
//! - [`AcceptMode::ReusePort`]: every reactor has its own listener on the
//!   port (`SO_REUSEPORT`), and the kernel spreads new connections by a
//!   hash of their addresses: no hand-over, no cross-thread traffic, but
//!   the spread is only as even as the hash.
//! - [`AcceptMode::LeastLoaded`]: one listener; the reactor serving it
//!   hands each accepted, not yet registered, stream to the reactor with
//!   the fewest connections (mio cannot move a registered socket between
//!   `Poll`s), as Seastar does after `SO_REUSEPORT`'s hash left its shards
//!   unevenly loaded.
//!
//! # Who owns what
//!
//! | state | owner | touched by others |
//! |---|---|---|
//! | a reactor's `Poll`, slab, buffers, timers, handler | its thread | never |
//! | a lane of the mailbox, `src → dst` | `src` fills, `dst` empties | a lock held for a swap, once per pass each |
//! | a reactor's `mail` flag and eventfd | its thread clears and reads | senders set and write, once per pass at most |
//! | group limits, per-reactor loads | the group | one atomic at accept and at close |
//! | the supervisor (signals, join) | the thread that calls [`RunningGroup::join`] | woken by members as they end |
//!
//! # Failure
//!
//! When a member's run ends for any reason (a panic in its handler, an
//! `epoll_wait` error, or a [`Context::stop`](crate::Context::stop) there),
//! the supervisor stops every other member, so no half-dead server is left
//! accepting on a port that only some threads serve, and
//! [`join`](RunningGroup::join) returns the first failure: a panic as
//! [`Error::ReactorPanicked`](crate::Error::ReactorPanicked).

mod bind;
mod context;
mod limits;
mod mailbox;
mod member;
mod message;
mod run;

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;

use mio::net::TcpListener;
use mio::{Interest, Poll};
use signal_hook_mio::v1_0::Signals;

use crate::reactor::{ListenOptions, Wrap};
use crate::{Config, Handler, Result};

pub use limits::{Quota, QuotaPermit};
pub use mailbox::{MailStats, SendError};
pub use message::{GroupConnId, Message};
pub use run::{GroupHandle, RunningGroup};

pub(crate) use limits::{Admission, Permit, Refused};
pub(crate) use mailbox::{Lanes, Wake};
pub(crate) use member::{Envelope, Member, Route};
pub(crate) use run::GroupShared;
use run::SIGNALS;

/// A listener bound for the group, for the reactor that serves it.
pub(crate) struct Bound {
    pub(crate) sock: TcpListener,
    /// How its connections are wrapped (TLS, HTTP/WebSocket), if at all.
    pub(crate) wrap: Option<Wrap>,
    /// Whether its connections are metrics scrapes.
    pub(crate) scrape: bool,
}

/// How the reactors of a group share a listening port.
///
/// ```
/// use mio_selectors::group::AcceptMode;
/// assert_eq!(AcceptMode::default(), AcceptMode::LeastLoaded);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AcceptMode {
    /// One listener per reactor on the same port with `SO_REUSEPORT`; the
    /// kernel picks the reactor by a hash of each connection's addresses.
    /// Cheapest per connection; as even as the hash.
    ReusePort,
    /// One listener; each accepted stream goes, before it is registered,
    /// to the reactor with the fewest connections. Even spread for
    /// long-lived connections (a chat) at the price of one cross-thread
    /// hand-over per connection.
    #[default]
    LeastLoaded,
}

/// How big a group is and how it shares its port; the limits of each
/// reactor are a [`Config`], whose `max_connections` and `max_per_ip`
/// hold for the whole group.
///
/// ```
/// use mio_selectors::group::GroupOptions;
/// let options = GroupOptions { reactors: 4, ..GroupOptions::default() };
/// assert_eq!(options.mailbox_capacity, 65_536);
/// ```
#[derive(Debug, Clone)]
pub struct GroupOptions {
    /// Reactor threads; `0` means one per available core
    /// ([`std::thread::available_parallelism`]). Default `0`.
    pub reactors: usize,
    /// How the port is shared. Default [`AcceptMode::LeastLoaded`].
    pub accept: AcceptMode,
    /// Most messages from one reactor that another may hold untaken. A send
    /// past it is refused and handed back ([`SendError::Full`]); the sender
    /// never blocks. Default 65,536.
    pub mailbox_capacity: usize,
}

impl Default for GroupOptions {
    fn default() -> Self {
        GroupOptions {
            reactors: 0,
            accept: AcceptMode::LeastLoaded,
            mailbox_capacity: 65_536,
        }
    }
}

impl GroupOptions {
    /// The number of reactors these options give: `reactors`, or the
    /// number of available cores for `0`.
    ///
    /// ```
    /// use mio_selectors::group::GroupOptions;
    /// assert_eq!(GroupOptions { reactors: 3, ..Default::default() }.count(), 3);
    /// assert!(GroupOptions::default().count() >= 1);
    /// ```
    pub fn count(&self) -> usize {
        match self.reactors {
            0 => thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

/// A group of reactors, before it runs: bind its listeners, then
/// [`start`](Self::start) it with a factory that builds each reactor's
/// handler.
///
/// ```
/// use mio_selectors::{Config, ConnId, Context, Handler, InBuf, PeerAddr};
/// use mio_selectors::group::{GroupOptions, ReactorGroup};
/// use std::io::{Read, Write};
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
/// let options = GroupOptions { reactors: 2, ..GroupOptions::default() };
/// let mut group = ReactorGroup::new(options, Config::default())?;
/// let addr = group.listen("127.0.0.1:0")?;
/// let running = group.start(|_index| Echo)?;
///
/// let mut client = std::net::TcpStream::connect(addr)?;
/// client.write_all(b"ping")?;
/// let mut back = [0; 4];
/// client.read_exact(&mut back)?;
/// assert_eq!(&back, b"ping");
///
/// running.handle().stop();
/// running.join()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ReactorGroup {
    options: GroupOptions,
    n: usize,
    config: Config,
    /// Per reactor, the listeners it serves, each with the wrap of its
    /// connections (TLS, HTTP/WebSocket) if any.
    listeners: Vec<Vec<Bound>>,
    poll: Poll,
    signals: Option<Signals>,
}

impl std::fmt::Debug for ReactorGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReactorGroup")
            .field("reactors", &self.n)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl ReactorGroup {
    /// A group of `options.count()` reactors, each within `config`'s limits.
    ///
    /// # Errors
    ///
    /// [`Error::Io`](crate::Error::Io) if the supervisor's epoll cannot be created.
    ///
    /// ```
    /// use mio_selectors::{Config, group::{GroupOptions, ReactorGroup}};
    /// let group = ReactorGroup::new(GroupOptions { reactors: 3, ..Default::default() }, Config::default())?;
    /// assert_eq!(group.reactors(), 3);
    /// # Ok::<(), mio_selectors::Error>(())
    /// ```
    pub fn new(options: GroupOptions, config: Config) -> Result<Self> {
        let n = options.count();
        Ok(ReactorGroup {
            options,
            n,
            config,
            listeners: (0..n).map(|_| Vec::new()).collect(),
            poll: Poll::new()?,
            signals: None,
        })
    }

    /// How many reactors the group runs.
    ///
    /// ```
    /// use mio_selectors::{Config, group::{GroupOptions, ReactorGroup}};
    /// let group = ReactorGroup::new(GroupOptions::default(), Config::default())?;
    /// assert!(group.reactors() >= 1); // one per core
    /// # Ok::<(), mio_selectors::Error>(())
    /// ```
    pub fn reactors(&self) -> usize {
        self.n
    }

    /// Binds a TCP listener for the group to the first address of `addr`
    /// that binds (one per reactor with [`AcceptMode::ReusePort`]) and
    /// returns the address bound, to learn the port after `:0`.
    ///
    /// # Errors
    ///
    /// [`Error::Bind`](crate::Error::Bind) naming the address; [`Error::Io`](crate::Error::Io) if `addr` does not
    /// resolve.
    ///
    /// ```
    /// use mio_selectors::{Config, Error, group::{GroupOptions, ReactorGroup}};
    /// let mut group = ReactorGroup::new(GroupOptions { reactors: 2, ..Default::default() }, Config::default())?;
    /// let addr = group.listen("127.0.0.1:0")?;
    /// assert_ne!(addr.port(), 0);
    /// let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// assert!(matches!(group.listen(taken.local_addr()?), Err(Error::Bind { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn listen(&mut self, addr: impl ToSocketAddrs) -> Result<SocketAddr> {
        self.listen_with(addr, &ListenOptions::default())
    }

    /// As [`listen`](Self::listen), with socket options (`reuse_port` is
    /// forced on for [`AcceptMode::ReusePort`] with several reactors).
    ///
    /// # Errors
    ///
    /// As [`listen`](Self::listen).
    ///
    /// ```
    /// use mio_selectors::{Config, reactor::ListenOptions, group::{GroupOptions, ReactorGroup}};
    /// let mut group = ReactorGroup::new(GroupOptions { reactors: 2, ..Default::default() }, Config::default())?;
    /// let options = ListenOptions { backlog: 4096, ..ListenOptions::default() };
    /// group.listen_with("127.0.0.1:0", &options)?;
    /// # Ok::<(), mio_selectors::Error>(())
    /// ```
    pub fn listen_with(
        &mut self,
        addr: impl ToSocketAddrs,
        options: &ListenOptions,
    ) -> Result<SocketAddr> {
        self.bind(addr, options, None)
    }

    /// As [`listen`](Self::listen), with every connection of the listener
    /// wrapped by `wrap` (TLS, HTTP/WebSocket) on whichever reactor serves
    /// it: as [`Reactor::wrap_listener`](crate::Reactor::wrap_listener)
    /// for one reactor. A stream handed to another reactor
    /// ([`AcceptMode::LeastLoaded`]) keeps its listener's wrap.
    ///
    /// # Errors
    ///
    /// As [`listen`](Self::listen).
    ///
    /// ```
    /// use mio_selectors::{Config, reactor::Wrap, group::{GroupOptions, ReactorGroup}};
    /// let mut group = ReactorGroup::new(GroupOptions { reactors: 2, ..Default::default() }, Config::default())?;
    /// # #[cfg(feature = "tls")]
    /// # let _ = || -> Result<(), Box<dyn std::error::Error>> {
    /// let config = mio_selectors::tls::server_config("cert.pem", "key.pem")?;
    /// group.listen_wrapped("127.0.0.1:0", Wrap::tls(config))?;
    /// # Ok(()) };
    /// # Ok::<(), mio_selectors::Error>(())
    /// ```
    pub fn listen_wrapped(&mut self, addr: impl ToSocketAddrs, wrap: Wrap) -> Result<SocketAddr> {
        self.bind(addr, &ListenOptions::default(), Some(wrap))
    }

    fn bind(
        &mut self,
        addr: impl ToSocketAddrs,
        options: &ListenOptions,
        wrap: Option<Wrap>,
    ) -> Result<SocketAddr> {
        let count = match self.options.accept {
            AcceptMode::ReusePort => self.n,
            AcceptMode::LeastLoaded => 1,
        };
        let socks = bind::bind_listeners(addr, count, options)?;
        let addr = socks[0].local_addr()?;
        for (i, sock) in socks.into_iter().enumerate() {
            self.listeners[i].push(Bound {
                sock,
                wrap: wrap.clone(),
                scrape: false,
            });
        }
        Ok(addr)
    }

    /// Serves `GET /metrics` (Prometheus text 0.0.4) on `addr` for the
    /// whole group, from reactor 0: every reactor's series with its
    /// `reactor` label, and the group's sums (`reactor="all"`) where a sum
    /// means something. No loop waits for another: each reactor publishes
    /// a copy of its counters at most every 100 ms while it is busy (and
    /// once more after it goes idle), and the scrape renders the latest
    /// copies, so another reactor's figures are up to ~100 ms old.
    /// Returns the address bound.
    ///
    /// # Errors
    ///
    /// As [`listen`](Self::listen).
    ///
    /// ```
    /// use mio_selectors::{Config, group::{GroupOptions, ReactorGroup}};
    /// let mut group = ReactorGroup::new(GroupOptions { reactors: 2, ..Default::default() }, Config::default())?;
    /// let addr = group.serve_metrics("127.0.0.1:0")?;
    /// assert_ne!(addr.port(), 0);
    /// # Ok::<(), mio_selectors::Error>(())
    /// ```
    pub fn serve_metrics(&mut self, addr: impl ToSocketAddrs) -> Result<SocketAddr> {
        let mut socks = bind::bind_listeners(addr, 1, &ListenOptions::default())?;
        let sock = socks.remove(0);
        let addr = sock.local_addr()?;
        self.listeners[0].push(Bound {
            sock,
            wrap: None,
            scrape: true,
        });
        Ok(addr)
    }

    /// Stops the whole group gracefully on SIGINT or SIGTERM. The signal
    /// is seen by the thread in [`RunningGroup::join`] (through
    /// `signal-hook-mio`), which stops every reactor.
    ///
    /// # Errors
    ///
    /// [`Error::Io`](crate::Error::Io) if the signal handlers cannot be installed.
    ///
    /// ```
    /// use mio_selectors::{Config, group::{GroupOptions, ReactorGroup}};
    /// let mut group = ReactorGroup::new(GroupOptions { reactors: 1, ..Default::default() }, Config::default())?;
    /// group.stop_on_signals()?;
    /// # Ok::<(), mio_selectors::Error>(())
    /// ```
    pub fn stop_on_signals(&mut self) -> Result<()> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let mut signals = Signals::new([SIGINT, SIGTERM])?;
        self.poll
            .registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)?;
        self.signals = Some(signals);
        Ok(())
    }

    /// Starts the reactors, each on its own thread named `reactor-I` with
    /// the handler `factory(I)` built there (so a handler need not be
    /// `Send`), and returns once every one is running.
    ///
    /// # Errors
    ///
    /// The first reactor that fails to start ([`Error::Io`](crate::Error::Io) for epoll,
    /// [`Error::Config`](crate::Error::Config) for contradictory limits, [`Error::ReactorPanicked`](crate::Error::ReactorPanicked)
    /// if the factory panics); the others are stopped first.
    ///
    /// ```
    /// # use mio_selectors::{Config, ConnId, Context, Handler, InBuf, PeerAddr};
    /// use mio_selectors::group::{GroupOptions, ReactorGroup};
    /// # struct App;
    /// # impl Handler for App {
    /// #     type Data = ();
    /// # }
    /// let bad = Config { low_water: 2, high_water: 1, ..Config::default() };
    /// let group = ReactorGroup::new(GroupOptions { reactors: 2, ..Default::default() }, bad)?;
    /// assert!(group.start(|_| App).is_err());
    /// # Ok::<(), mio_selectors::Error>(())
    /// ```
    pub fn start<H, F>(self, factory: F) -> Result<RunningGroup>
    where
        H: Handler + 'static,
        F: Fn(usize) -> H + Send + Sync + 'static,
    {
        let ReactorGroup {
            options,
            n,
            config,
            listeners,
            poll,
            signals,
        } = self;
        let publish = listeners.iter().flatten().any(|b| b.scrape);
        let shared = Arc::new(GroupShared {
            snapshots: (0..n).map(|_| Mutex::new(None)).collect(),
            publish,
            handles: OnceLock::new(),
            stopping: AtomicBool::new(false),
            now: AtomicBool::new(false),
            lanes: Lanes::new(n, options.mailbox_capacity),
            admission: Arc::new(Admission::new(n, config.max_connections, config.max_per_ip)),
            mode: options.accept,
        });
        // The group's admission counts per IP across all reactors.
        let config = Config {
            max_per_ip: None,
            ..config
        };
        RunningGroup::launch(shared, config, listeners, poll, signals, factory)
    }

    /// [`start`](Self::start), then [`join`](RunningGroup::join): runs
    /// until the group is stopped (by a signal after
    /// [`stop_on_signals`](Self::stop_on_signals), or by any reactor).
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start) and [`join`](RunningGroup::join).
    ///
    /// ```no_run
    /// # use mio_selectors::{Config, ConnId, Context, Handler, InBuf, PeerAddr};
    /// use mio_selectors::group::{GroupOptions, ReactorGroup};
    /// # struct Echo;
    /// # impl Handler for Echo {
    /// #     type Data = ();
    /// #     fn accept_wrapper(&mut self, _: &mut Context<'_, ()>, _: ConnId, _: &PeerAddr) -> Option<()> { Some(()) }
    /// #     fn service_connection(&mut self, cx: &mut Context<'_, ()>, id: ConnId, _: &mut (), inb: &mut InBuf) { let _ = cx.send_from(id, inb); }
    /// # }
    /// let mut group = ReactorGroup::new(GroupOptions::default(), Config::default())?;
    /// group.listen("127.0.0.1:65432")?;
    /// group.stop_on_signals()?;
    /// group.run(|_| Echo)?;
    /// # Ok::<(), mio_selectors::Error>(())
    /// ```
    pub fn run<H, F>(self, factory: F) -> Result<()>
    where
        H: Handler + 'static,
        F: Fn(usize) -> H + Send + Sync + 'static,
    {
        self.start(factory)?.join()
    }
}
