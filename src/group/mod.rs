//! [`ReactorGroup`]: a reactor per core. N threads named `reactor-0` …
//! `reactor-{N-1}`, each running its own [`Reactor`] (its own `Poll`, slab
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
//! [`Error::ReactorPanicked`].

mod bind;
mod context;
mod limits;
mod mailbox;
mod member;
mod message;

use std::any::Any;
use std::net::{SocketAddr, ToSocketAddrs};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, OnceLock};
use std::thread::{self, JoinHandle};

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};
use signal_hook_mio::v1_0::Signals;

use crate::reactor::ListenOptions;
use crate::{Config, Error, Handle, Handler, Reactor, Result};

pub use limits::{Quota, QuotaPermit};
pub use mailbox::{MailStats, SendError};
pub use message::{GroupConnId, Message};

pub(crate) use limits::{Admission, Permit, Refused};
pub(crate) use mailbox::{Lanes, Wake};
pub(crate) use member::{Envelope, Member, Route};

const DONE: Token = Token(0);
const SIGNALS: Token = Token(1);

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
    /// Per reactor, the listeners it serves.
    listeners: Vec<Vec<TcpListener>>,
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
    /// [`Error::Io`] if the supervisor's epoll cannot be created.
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
    /// [`Error::Bind`] naming the address; [`Error::Io`] if `addr` does not
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
        let count = match self.options.accept {
            AcceptMode::ReusePort => self.n,
            AcceptMode::LeastLoaded => 1,
        };
        let socks = bind::bind_listeners(addr, count, options)?;
        let addr = socks[0].local_addr()?;
        for (i, sock) in socks.into_iter().enumerate() {
            self.listeners[i].push(sock);
        }
        Ok(addr)
    }

    /// Stops the whole group gracefully on SIGINT or SIGTERM. The signal
    /// is seen by the thread in [`RunningGroup::join`] (through
    /// `signal-hook-mio`), which stops every reactor.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the signal handlers cannot be installed.
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
    /// The first reactor that fails to start ([`Error::Io`] for epoll,
    /// [`Error::Config`] for contradictory limits, [`Error::ReactorPanicked`]
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
        let shared = Arc::new(GroupShared {
            handles: OnceLock::new(),
            stopping: AtomicBool::new(false),
            now: AtomicBool::new(false),
            lanes: Lanes::new(n, options.mailbox_capacity),
            admission: Arc::new(Admission::new(n, config.max_connections, config.max_per_ip)),
            mode: options.accept,
        });
        let factory = Arc::new(factory);
        let waker = Arc::new(Waker::new(poll.registry(), DONE)?);
        let (tx, rx) = mpsc::channel();
        let mut threads = Vec::with_capacity(n);
        for (i, socks) in listeners.into_iter().enumerate() {
            let seat = Seat {
                index: i,
                shared: Arc::clone(&shared),
                // The group's admission counts per IP across all reactors.
                config: Config {
                    max_per_ip: None,
                    ..config.clone()
                },
                listeners: socks,
                events: tx.clone(),
                waker: Arc::clone(&waker),
            };
            let factory = Arc::clone(&factory);
            let spawned = thread::Builder::new()
                .name(format!("reactor-{i}"))
                .spawn(move || seat.run(move |i| factory(i)));
            match spawned {
                Ok(t) => threads.push(t),
                Err(e) => {
                    // Those started so far are told below, like any failure.
                    let _ = tx.send(Event::Done(i, Err(e.into())));
                    break;
                }
            }
        }
        drop(tx);
        let mut running = RunningGroup {
            handles: Vec::with_capacity(n),
            shared,
            threads,
            events: rx,
            poll,
            _waker: waker,
            signals,
            done: 0,
            failure: None,
        };
        running.await_start(n)?;
        Ok(running)
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

/// What a member thread tells the supervisor.
enum Event {
    /// Reactor `I` is built and about to run.
    Ready(usize, Handle),
    /// Reactor `I`'s thread is done: how its run ended.
    Done(usize, Result<()>),
}

/// What one member thread needs to build and run its reactor.
struct Seat {
    index: usize,
    shared: Arc<GroupShared>,
    config: Config,
    listeners: Vec<TcpListener>,
    events: Sender<Event>,
    waker: Arc<Waker>,
}

impl Seat {
    fn run<H: Handler>(self, factory: impl FnOnce(usize) -> H) {
        let Seat {
            index,
            shared,
            config,
            listeners,
            events,
            waker,
        } = self;
        let ready = events.clone();
        let outcome = panic::catch_unwind(AssertUnwindSafe(move || -> Result<()> {
            let mut reactor = Reactor::new(factory(index), config)?;
            shared.lanes.set_waker(index, Box::new(reactor.handle()));
            reactor.join_group(Member::new(index, &shared));
            for sock in listeners {
                reactor.add_listener(sock)?;
            }
            let _ = ready.send(Event::Ready(index, reactor.handle()));
            reactor.run()
        }));
        let outcome = outcome.unwrap_or_else(|payload| {
            let message = panic_message(payload.as_ref());
            log::error!("reactor-{index} panicked: {message}");
            Err(Error::ReactorPanicked {
                reactor: index,
                message,
            })
        });
        let _ = events.send(Event::Done(index, outcome));
        Wake::wake(&*waker);
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a panic payload that is not a string)".to_string()
    }
}

/// What the reactors of a group share.
pub(crate) struct GroupShared {
    /// Every reactor's handle, once all have started.
    handles: OnceLock<Vec<Handle>>,
    stopping: AtomicBool,
    /// Stop without waiting for pending output (a second signal).
    now: AtomicBool,
    pub(crate) lanes: Arc<Lanes<Envelope>>,
    pub(crate) admission: Arc<Admission>,
    pub(crate) mode: AcceptMode,
}

impl GroupShared {
    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        for h in self.handles.get().into_iter().flatten() {
            h.stop();
        }
    }

    /// A second signal: every reactor closes what is left at once instead
    /// of flushing it.
    fn stop_now(&self) {
        self.now.store(true, Ordering::Release);
        self.stop();
    }

    pub(crate) fn is_stopping_now(&self) -> bool {
        self.now.load(Ordering::Acquire)
    }
}

/// A `Send + Clone` handle to a running group: stop every reactor, or
/// reach one of them.
///
/// ```
/// # use mio_selectors::{Config, ConnId, Context, Handler, InBuf, PeerAddr};
/// use mio_selectors::group::{GroupOptions, ReactorGroup};
/// # struct App;
/// # impl Handler for App {
/// #     type Data = ();
/// # }
/// let group = ReactorGroup::new(GroupOptions { reactors: 2, ..Default::default() }, Config::default())?;
/// let running = group.start(|_| App)?;
/// let handle = running.handle();
/// assert_eq!(handle.reactors(), 2);
/// std::thread::spawn(move || handle.stop());
/// running.join()?; // returns once both reactors have stopped
/// # Ok::<(), mio_selectors::Error>(())
/// ```
#[derive(Clone)]
pub struct GroupHandle {
    shared: Arc<GroupShared>,
}

impl std::fmt::Debug for GroupHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupHandle")
            .field("reactors", &self.reactors())
            .field("stopping", &self.is_stopping())
            .finish()
    }
}

impl GroupHandle {
    /// Stops every reactor gracefully (each as [`Handle::stop`]).
    pub fn stop(&self) {
        self.shared.stop();
    }

    /// Whether [`stop`](Self::stop) was called, or the group is stopping
    /// because one of its reactors ended.
    pub fn is_stopping(&self) -> bool {
        self.shared.stopping.load(Ordering::Acquire)
    }

    /// How many reactors the group has.
    pub fn reactors(&self) -> usize {
        self.shared.admission.loads().len()
    }

    /// Reactor `index`'s own [`Handle`], to hand it work.
    ///
    /// # Panics
    ///
    /// If `index` is not below [`reactors`](Self::reactors).
    pub fn reactor(&self, index: usize) -> &Handle {
        &self.shared.handles.get().expect("started")[index]
    }

    /// Connections open on each reactor now (counted at admission and
    /// release, so a stream being handed over counts on its receiver).
    pub fn connections(&self) -> Vec<usize> {
        self.shared.admission.loads()
    }

    /// Each reactor's mailbox counters: messages, batches and wake-ups.
    pub fn mail_stats(&self) -> Vec<MailStats> {
        (0..self.reactors())
            .map(|i| self.shared.lanes.stats(i))
            .collect()
    }
}

/// A started group: its [`handle`](Self::handle), and
/// [`join`](Self::join) to supervise it until it has stopped.
pub struct RunningGroup {
    /// Handles of the reactors that reported ready, by index.
    handles: Vec<Option<Handle>>,
    shared: Arc<GroupShared>,
    threads: Vec<JoinHandle<()>>,
    events: Receiver<Event>,
    poll: Poll,
    /// Kept open here: an eventfd closed by the last member to leave would
    /// take its pending wake-up out of the supervisor's epoll with it.
    _waker: Arc<Waker>,
    signals: Option<Signals>,
    done: usize,
    failure: Option<Error>,
}

impl std::fmt::Debug for RunningGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningGroup")
            .field("reactors", &self.threads.len())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl RunningGroup {
    /// Waits until every reactor runs, or one failed to start (then stops
    /// the others and returns its error).
    fn await_start(&mut self, n: usize) -> Result<()> {
        self.handles = (0..n).map(|_| None).collect();
        let mut ready = 0;
        while ready < n && self.done == 0 {
            match self.events.recv() {
                Ok(Event::Ready(i, h)) => {
                    self.handles[i] = Some(h);
                    ready += 1;
                }
                Ok(Event::Done(i, r)) => self.finished(i, r),
                Err(_) => break, // every member is gone
            }
        }
        if self.done == 0 && ready == n {
            let handles = self.handles.iter().flatten().cloned().collect();
            let _ = self.shared.handles.set(handles);
            if self.shared.stopping.load(Ordering::Acquire) {
                self.shared.stop(); // stopped while starting
            }
            return Ok(());
        }
        // Some reactor did not start: stop those that did, wait for all.
        for h in self.handles.iter().flatten() {
            h.stop();
        }
        while let Ok(event) = self.events.recv() {
            if let Event::Done(i, r) = event {
                self.finished(i, r);
            }
        }
        self.join_threads();
        Err(self
            .failure
            .take()
            .unwrap_or_else(|| Error::Io(std::io::Error::other("a reactor did not start"))))
    }

    /// A `Send + Clone` handle that stops the whole group.
    pub fn handle(&self) -> GroupHandle {
        GroupHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    fn finished(&mut self, index: usize, result: Result<()>) {
        self.done += 1;
        match result {
            Ok(()) => log::debug!("reactor-{index} stopped"),
            Err(e) => {
                log::error!("reactor-{index} failed: {e}");
                if self.failure.is_none() {
                    self.failure = Some(e);
                }
            }
        }
        if !self.shared.stopping.load(Ordering::Acquire) {
            log::info!("reactor-{index} ended: stopping the group");
        }
        self.shared.stop();
    }

    /// Supervises the group until every reactor has stopped: stops all of
    /// them on a signal (after [`ReactorGroup::stop_on_signals`]) or as
    /// soon as any one ends, then joins the threads.
    ///
    /// # Errors
    ///
    /// The first failure of any reactor: [`Error::ReactorPanicked`] for a
    /// panic in its handler, or the error its run returned.
    pub fn join(mut self) -> Result<()> {
        let n = self.threads.len();
        let mut events = Events::with_capacity(8);
        loop {
            while let Ok(event) = self.events.try_recv() {
                if let Event::Done(i, r) = event {
                    self.finished(i, r);
                }
            }
            if self.done >= n {
                break;
            }
            match self.poll.poll(&mut events, None) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // Cannot wait any more: stop everyone and join blocking.
                    log::error!("group supervisor: poll failed: {e}");
                    self.handle().stop();
                    while let Ok(event) = self.events.recv() {
                        if let Event::Done(i, r) = event {
                            self.finished(i, r);
                        }
                    }
                    break;
                }
            }
            if events.iter().any(|e| e.token() == SIGNALS) {
                if let Some(signals) = self.signals.as_mut() {
                    for sig in signals.pending() {
                        if self.shared.stopping.load(Ordering::Acquire) {
                            log::warn!("second signal ({sig}): closing everything now");
                            self.shared.stop_now();
                        } else {
                            log::info!("received signal {sig}: stopping the group");
                            self.shared.stop();
                        }
                    }
                }
            }
        }
        self.join_threads();
        for (i, s) in self.handle().mail_stats().iter().enumerate() {
            log::info!(
                "reactor-{i}: mail sent {}, in {} batches, {} wake-ups; received {}; refused {}",
                s.sent,
                s.batches,
                s.wakes,
                s.received,
                s.refused
            );
        }
        match self.failure.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn join_threads(&mut self) {
        for t in self.threads.drain(..) {
            // Panics were caught in the thread; this cannot fail but for an abort.
            let _ = t.join();
        }
    }
}
