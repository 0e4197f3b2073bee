//! [`Reactor`]: the event loop. It accepts, reads, writes and closes; the
//! [`Handler`] only decides what to send.

use std::io::{self, Read};
use std::mem;
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Waker};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;

use crate::buffer::BufPool;
use crate::conn::{Conn, State};
use crate::context::Core;
use crate::handle::Shared;
use crate::id::{GEN_MASK, LISTENER_BIT, SIGNALS, WAKER};
use crate::{
    CloseReason, Config, ConnId, Context, Error, Handle, Handler, InBuf, ListenerId, Result,
};

/// Accepts per listener per pass before the other work gets a turn.
const ACCEPT_BATCH: usize = 256;

struct Listener {
    sock: TcpListener,
    /// Readiness not yet drained (edge-triggered: nobody will tell us again).
    ready: bool,
}

/// A single-threaded event loop on mio that serves any number of listeners
/// and connections through a [`Handler`].
///
/// Each pass of [`run`](Self::run) waits in `epoll_wait`, then, like Redis'
/// `ae.c`: accepts on ready listeners until `WouldBlock`, reads every ready
/// connection (calling [`Handler::service_connection`]), writes every
/// connection with pending output once, and closes what has to close.
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
/// use mio_selectors::{Config, ConnId, Context, Handler, InBuf, Reactor};
///
/// struct Echo;
/// impl Handler for Echo {
///     type Data = ();
///     fn accept_wrapper(&mut self, _: &mut Context<'_, ()>, _: ConnId, _: &std::net::SocketAddr) -> Option<()> {
///         Some(())
///     }
///     fn service_connection(&mut self, cx: &mut Context<'_, ()>, id: ConnId, inb: &mut InBuf) {
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
    handler: H,
    core: Core<H::Data>,
    listeners: Slab<Listener>,
    signals: Option<Signals>,
    /// Accepting paused after `EMFILE`/`ENFILE` until then.
    accept_paused_until: Option<Instant>,
    shutdown_deadline: Option<Instant>,
    /// Spare list storage, swapped with the core's lists so that a pass allocates nothing.
    scratch: Vec<ConnId>,
    full_logged: bool,
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
    /// # struct App;
    /// # impl mio_selectors::Handler for App {
    /// #     type Data = ();
    /// #     fn accept_wrapper(&mut self, _: &mut mio_selectors::Context<'_, ()>, _: mio_selectors::ConnId, _: &std::net::SocketAddr) -> Option<()> { None }
    /// #     fn service_connection(&mut self, _: &mut mio_selectors::Context<'_, ()>, _: mio_selectors::ConnId, _: &mut mio_selectors::InBuf) {}
    /// # }
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
        });
        Ok(Reactor {
            poll,
            events: Events::with_capacity(1024),
            handler,
            core: Core {
                conns: Slab::new(),
                pool: BufPool::new(config.read_chunk, config.pool_size),
                config,
                handle: Handle { shared },
                ready: Vec::new(),
                dirty: Vec::new(),
                dead: Vec::new(),
                linger: Default::default(),
                timers: Default::default(),
                timer_seq: 0,
                shutting_down: false,
                next_gen: 1,
            },
            listeners: Slab::new(),
            signals: None,
            accept_paused_until: None,
            shutdown_deadline: None,
            scratch: Vec::new(),
            full_logged: false,
        })
    }

    /// Binds a TCP listener to the first address of `addr` that binds (with
    /// `SO_REUSEADDR`, as mio sets it) and serves it.
    ///
    /// # Errors
    ///
    /// [`Error::Bind`], naming the address and the OS error (port in use,
    /// permission); [`Error::Io`] if `addr` does not resolve.
    ///
    /// ```
    /// # use mio_selectors::{Config, Error, Reactor};
    /// # struct App;
    /// # impl mio_selectors::Handler for App {
    /// #     type Data = ();
    /// #     fn accept_wrapper(&mut self, _: &mut mio_selectors::Context<'_, ()>, _: mio_selectors::ConnId, _: &std::net::SocketAddr) -> Option<()> { None }
    /// #     fn service_connection(&mut self, _: &mut mio_selectors::Context<'_, ()>, _: mio_selectors::ConnId, _: &mut mio_selectors::InBuf) {}
    /// # }
    /// let mut reactor = Reactor::new(App, Config::default())?;
    /// let id = reactor.listen("127.0.0.1:0")?;
    /// let taken = reactor.local_addr(id)?;
    /// let mut other = Reactor::new(App, Config::default())?;
    /// assert!(matches!(other.listen(taken), Err(Error::Bind { .. })));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn listen(&mut self, addr: impl ToSocketAddrs) -> Result<ListenerId> {
        let mut last = None;
        for a in addr.to_socket_addrs()? {
            match TcpListener::bind(a) {
                Ok(sock) => return self.add_listener(sock),
                Err(source) => {
                    last = Some(Error::Bind {
                        addr: a.to_string(),
                        source,
                    })
                }
            }
        }
        Err(last.unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "no address to listen on").into()
        }))
    }

    /// Serves a listener bound elsewhere (with your own socket options).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if it cannot be registered with epoll.
    ///
    /// ```
    /// # use mio_selectors::{Config, Reactor};
    /// # struct App;
    /// # impl mio_selectors::Handler for App {
    /// #     type Data = ();
    /// #     fn accept_wrapper(&mut self, _: &mut mio_selectors::Context<'_, ()>, _: mio_selectors::ConnId, _: &std::net::SocketAddr) -> Option<()> { None }
    /// #     fn service_connection(&mut self, _: &mut mio_selectors::Context<'_, ()>, _: mio_selectors::ConnId, _: &mut mio_selectors::InBuf) {}
    /// # }
    /// let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// std_listener.set_nonblocking(true)?;
    /// let mut reactor = Reactor::new(App, Config::default())?;
    /// reactor.add_listener(mio::net::TcpListener::from_std(std_listener))?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn add_listener(&mut self, mut sock: TcpListener) -> Result<ListenerId> {
        let entry = self.listeners.vacant_entry();
        let id = ListenerId(entry.key());
        // Reserve the slot first; if registration fails it is never filled.
        self.poll
            .registry()
            .register(&mut sock, id.token(), Interest::READABLE)?;
        log::info!("listening on {:?}", sock.local_addr().ok());
        entry.insert(Listener { sock, ready: true });
        Ok(id)
    }

    /// The address a listener is bound to (to learn the port after `:0`).
    ///
    /// # Errors
    ///
    /// [`Error::NoSuchConnection`] for an unknown id, [`Error::Io`] from `getsockname`.
    ///
    /// ```
    /// # use mio_selectors::{Config, Reactor};
    /// # struct App;
    /// # impl mio_selectors::Handler for App {
    /// #     type Data = ();
    /// #     fn accept_wrapper(&mut self, _: &mut mio_selectors::Context<'_, ()>, _: mio_selectors::ConnId, _: &std::net::SocketAddr) -> Option<()> { None }
    /// #     fn service_connection(&mut self, _: &mut mio_selectors::Context<'_, ()>, _: mio_selectors::ConnId, _: &mut mio_selectors::InBuf) {}
    /// # }
    /// let mut reactor = Reactor::new(App, Config::default())?;
    /// let id = reactor.listen("[::1]:0")?;
    /// assert!(reactor.local_addr(id)?.is_ipv6());
    /// # Ok::<(), mio_selectors::Error>(())
    /// ```
    pub fn local_addr(&self, id: ListenerId) -> Result<SocketAddr> {
        let l = self.listeners.get(id.0).ok_or(Error::NoSuchConnection)?;
        Ok(l.sock.local_addr()?)
    }

    /// A `Send + Clone` handle that stops [`run`](Self::run) from anywhere.
    ///
    /// ```
    /// # use mio_selectors::{Config, Reactor};
    /// # struct App;
    /// # impl mio_selectors::Handler for App {
    /// #     type Data = ();
    /// #     fn accept_wrapper(&mut self, _: &mut mio_selectors::Context<'_, ()>, _: mio_selectors::ConnId, _: &std::net::SocketAddr) -> Option<()> { None }
    /// #     fn service_connection(&mut self, _: &mut mio_selectors::Context<'_, ()>, _: mio_selectors::ConnId, _: &mut mio_selectors::InBuf) {}
    /// # }
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
    /// # struct App;
    /// # impl mio_selectors::Handler for App {
    /// #     type Data = ();
    /// #     fn accept_wrapper(&mut self, _: &mut mio_selectors::Context<'_, ()>, _: mio_selectors::ConnId, _: &std::net::SocketAddr) -> Option<()> { None }
    /// #     fn service_connection(&mut self, _: &mut mio_selectors::Context<'_, ()>, _: mio_selectors::ConnId, _: &mut mio_selectors::InBuf) {}
    /// # }
    /// let mut reactor = Reactor::new(App, Config::default())?;
    /// reactor.stop_on_signals()?;
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

    /// The handler, to read what it gathered.
    ///
    /// ```
    /// # use mio_selectors::{Config, Reactor};
    /// # struct App(u32);
    /// # impl mio_selectors::Handler for App {
    /// #     type Data = ();
    /// #     fn accept_wrapper(&mut self, _: &mut mio_selectors::Context<'_, ()>, _: mio_selectors::ConnId, _: &std::net::SocketAddr) -> Option<()> { None }
    /// #     fn service_connection(&mut self, _: &mut mio_selectors::Context<'_, ()>, _: mio_selectors::ConnId, _: &mut mio_selectors::InBuf) {}
    /// # }
    /// let reactor = Reactor::new(App(7), Config::default())?;
    /// assert_eq!(reactor.handler().0, 7);
    /// # Ok::<(), mio_selectors::Error>(())
    /// ```
    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// The handler, open to change between runs.
    ///
    /// ```
    /// # use mio_selectors::{Config, Reactor};
    /// # struct App(u32);
    /// # impl mio_selectors::Handler for App {
    /// #     type Data = ();
    /// #     fn accept_wrapper(&mut self, _: &mut mio_selectors::Context<'_, ()>, _: mio_selectors::ConnId, _: &std::net::SocketAddr) -> Option<()> { None }
    /// #     fn service_connection(&mut self, _: &mut mio_selectors::Context<'_, ()>, _: mio_selectors::ConnId, _: &mut mio_selectors::InBuf) {}
    /// # }
    /// let mut reactor = Reactor::new(App(7), Config::default())?;
    /// reactor.handler_mut().0 += 1;
    /// assert_eq!(reactor.handler().0, 8);
    /// # Ok::<(), mio_selectors::Error>(())
    /// ```
    pub fn handler_mut(&mut self) -> &mut H {
        &mut self.handler
    }

    /// How many connections are open or closing.
    ///
    /// ```
    /// # use mio_selectors::{Config, Reactor};
    /// # struct App;
    /// # impl mio_selectors::Handler for App {
    /// #     type Data = ();
    /// #     fn accept_wrapper(&mut self, _: &mut mio_selectors::Context<'_, ()>, _: mio_selectors::ConnId, _: &std::net::SocketAddr) -> Option<()> { None }
    /// #     fn service_connection(&mut self, _: &mut mio_selectors::Context<'_, ()>, _: mio_selectors::ConnId, _: &mut mio_selectors::InBuf) {}
    /// # }
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
    /// # struct App;
    /// # impl mio_selectors::Handler for App {
    /// #     type Data = ();
    /// #     fn accept_wrapper(&mut self, _: &mut mio_selectors::Context<'_, ()>, _: mio_selectors::ConnId, _: &std::net::SocketAddr) -> Option<()> { None }
    /// #     fn service_connection(&mut self, _: &mut mio_selectors::Context<'_, ()>, _: mio_selectors::ConnId, _: &mut mio_selectors::InBuf) {}
    /// # }
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
        // 1. Note what the kernel said (events borrowed out so handlers can run).
        let events = mem::replace(&mut self.events, Events::with_capacity(0));
        for event in events.iter() {
            match event.token() {
                WAKER => {} // the stop flag is read below
                SIGNALS => self.on_signals(),
                t if t.0 & LISTENER_BIT != 0 => {
                    if let Some(l) = self.listeners.get_mut(t.0 & !LISTENER_BIT) {
                        l.ready = true;
                    }
                }
                t => self.note_readiness(ConnId(t.0), event),
            }
        }
        self.events = events;
        if self.core.handle.is_stopping() && !self.core.shutting_down {
            self.begin_shutdown();
        }
        // 2. Accept, then read (reads before writes, as in ae.c).
        self.accept_all();
        let mut batch = mem::replace(&mut self.core.ready, mem::take(&mut self.scratch));
        for &id in &batch {
            self.read_conn(id);
        }
        batch.clear();
        self.scratch = batch;
        // 3. Deadlines, then write and close until nothing is left to do.
        self.expire();
        self.settle();
        Ok(self.core.shutting_down && self.core.conns.is_empty())
    }

    fn poll_timeout(&self) -> Option<Duration> {
        let accept_due = self.accept_paused_until.is_none()
            && !self.core.shutting_down
            && self.listeners.iter().any(|(_, l)| l.ready);
        if !self.core.ready.is_empty() || accept_due {
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
        Some(deadline.saturating_duration_since(Instant::now()))
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
        if event.is_readable() || event.is_read_closed() || failed {
            conn.readable = true;
            self.core.queue_ready(id);
        }
        let Some(conn) = self.core.get_mut(id) else {
            return;
        };
        if event.is_writable() || event.is_write_closed() || failed {
            conn.writable = true;
            if !conn.outb.is_empty() || matches!(conn.state, State::Closing(_)) {
                self.core.mark_dirty(id);
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
        for (_, mut l) in mem::take(&mut self.listeners) {
            let _ = self.poll.registry().deregister(&mut l.sock);
        }
        self.handler.shutting_down(&mut Context {
            core: &mut self.core,
        });
        let ids: Vec<ConnId> = self
            .core
            .conns
            .iter()
            .map(|(key, c)| ConnId::new(key, c.gen))
            .collect();
        for id in ids {
            self.core.close_gracefully(id, CloseReason::Shutdown);
        }
        let deadline = Instant::now() + self.core.config.shutdown_timeout;
        self.shutdown_deadline = Some(self.shutdown_deadline.map_or(deadline, |d| d.min(deadline)));
    }

    /// Accepts on every ready listener until `WouldBlock` (at most
    /// `ACCEPT_BATCH` each per pass).
    fn accept_all(&mut self) {
        if self.core.shutting_down || self.accept_paused_until.is_some() {
            return;
        }
        for key in 0..self.listeners.capacity() {
            let mut accepted = 0;
            while accepted < ACCEPT_BATCH {
                let Some(l) = self.listeners.get_mut(key).filter(|l| l.ready) else {
                    break;
                };
                match l.sock.accept() {
                    Ok((stream, peer)) => {
                        accepted += 1;
                        self.admit(stream, peer);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => l.ready = false,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    // The client gave up before we got to it: skip it.
                    Err(e) if is_aborted(&e) => log::debug!("accept: {e}; skipped"),
                    Err(e) => {
                        // EMFILE/ENFILE and the like: retrying now would spin.
                        let backoff = self.core.config.accept_backoff;
                        log::warn!("accept failed: {e}; pausing accepts for {backoff:?}");
                        self.accept_paused_until = Some(Instant::now() + backoff);
                        return;
                    }
                }
            }
        }
    }

    /// Registers an accepted socket and asks the handler about it.
    fn admit(&mut self, mut stream: TcpStream, peer: SocketAddr) {
        let core = &mut self.core;
        if core.conns.len() >= core.config.max_connections {
            if !mem::replace(&mut self.full_logged, true) {
                log::warn!("{} connections: refusing {peer}", core.conns.len());
            }
            return; // dropping the stream closes it
        }
        self.full_logged = false;
        if core.config.nodelay {
            let _ = stream.set_nodelay(true);
        }
        let gen = core.next_gen;
        core.next_gen = (gen + 1) & GEN_MASK;
        // Reserve the slot, register, and only then fill it: a failed
        // registration leaves the slab untouched.
        let entry = core.conns.vacant_entry();
        let id = ConnId::new(entry.key(), gen);
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, id.token(), interest)
        {
            log::warn!("cannot register connection from {peer}: {e}");
            return;
        }
        entry.insert(Conn::new(stream, peer, gen));
        log::debug!("{id}: accepted {peer}");
        let data = self
            .handler
            .accept_wrapper(&mut Context { core }, id, &peer);
        match data {
            Some(data) => {
                if let Some(conn) = core.get_mut(id) {
                    conn.data = Some(data);
                }
            }
            None => core.close_gracefully(id, CloseReason::Closed),
        }
    }

    /// Reads `id` until drained, paused, full or out of budget, handing each
    /// chunk to the handler.
    fn read_conn(&mut self, id: ConnId) {
        let (chunk, max_inb) = (self.core.config.read_chunk, self.core.config.max_inb);
        let mut budget = self.core.config.read_budget;
        match self.core.get_mut(id) {
            Some(conn) => conn.queued = false,
            None => return,
        }
        // Input left in `inb` while reading was paused gets its turn first.
        if let Some(conn) = self.core.get_mut(id) {
            if mem::take(&mut conn.reservice) && !conn.inb.is_empty() && conn.is_open() {
                self.with_inb(id, |h, cx, inb| h.service_connection(cx, id, inb));
            }
        }
        loop {
            let Some((conn, pool)) = self.core.conn_and_pool(id) else {
                return;
            };
            let lingering = matches!(conn.state, State::Lingering(_));
            let wanted = conn.is_open() && !conn.paused && !conn.read_paused || lingering;
            if !conn.readable || conn.eof || !wanted {
                return;
            }
            let want = chunk.min(max_inb - conn.inb.len());
            if want == 0 {
                return; // full: the handler was told, see `service`
            }
            if budget == 0 {
                self.core.queue_ready(id); // fairness: the rest next pass
                return;
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
                        self.with_inb(id, |h, cx, inb| h.eof_received(cx, id, inb));
                    }
                    return;
                }
                Ok(n) => {
                    budget = budget.saturating_sub(n);
                    if lingering {
                        continue; // discard: the connection is closing
                    }
                    conn.inb.commit(n);
                    // A short read proves the socket drained, unless the
                    // kernel reported a hang-up that may sit behind the data.
                    if n < want && !conn.hup {
                        conn.readable = false;
                    }
                    self.with_inb(id, |h, cx, inb| h.service_connection(cx, id, inb));
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

    /// Calls the handler with `id`'s input buffer lent out (so that the
    /// handler may also send to `id`), then puts it back.
    fn with_inb(
        &mut self,
        id: ConnId,
        f: impl FnOnce(&mut H, &mut Context<'_, H::Data>, &mut InBuf),
    ) {
        let max_inb = self.core.config.max_inb;
        let Some(conn) = self.core.get_mut(id) else {
            return;
        };
        let mut inb = InBuf(mem::take(&mut conn.inb));
        let before = inb.len();
        f(
            &mut self.handler,
            &mut Context {
                core: &mut self.core,
            },
            &mut inb,
        );
        let Some((conn, pool)) = self.core.conn_and_pool(id) else {
            return;
        };
        conn.inb = inb.0;
        conn.inb.release_if_empty(pool);
        let stuck = conn.inb.len() >= max_inb && conn.inb.len() == before;
        if stuck && conn.is_open() && !conn.read_paused {
            log::info!(
                "{id} ({}): {max_inb} bytes of input left unconsumed; closing",
                conn.peer
            );
            self.core.kill(id, CloseReason::InputOverflow);
        }
    }

    /// Writes `id`'s pending output until done or `WouldBlock`, then moves
    /// backpressure and graceful close along.
    fn flush(&mut self, id: ConnId) {
        let low = self.core.config.low_water;
        let Some((conn, pool)) = self.core.conn_and_pool(id) else {
            return;
        };
        conn.dirty = false;
        if matches!(conn.state, State::Dead(_)) {
            return;
        }
        while conn.writable && !conn.outb.is_empty() {
            match conn.outb.write_to(&conn.stream) {
                Ok(0) => {
                    let e = io::Error::new(io::ErrorKind::WriteZero, "write returned 0");
                    self.core.kill(id, CloseReason::Error(e));
                    return;
                }
                Ok(n) => conn.outb.consume(n, pool),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => conn.writable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::debug!("{id}: write failed: {e}");
                    self.core.kill(id, CloseReason::Error(e));
                    return;
                }
            }
        }
        if conn.paused && conn.outb.len() <= low {
            conn.paused = false;
            if conn.readable {
                self.core.queue_ready(id);
            }
        }
        let Some(conn) = self.core.get_mut(id) else {
            return;
        };
        if conn.outb.is_empty() {
            if let State::Closing(_) = conn.state {
                // All sent: FIN, then wait for the peer's FIN (see `State::Lingering`).
                let _ = conn.stream.shutdown(Shutdown::Write);
                if conn.eof {
                    self.core.finish(id);
                } else {
                    let State::Closing(reason) = mem::replace(&mut conn.state, State::Open) else {
                        unreachable!()
                    };
                    conn.state = State::Lingering(reason);
                    if conn.readable {
                        self.core.queue_ready(id);
                    }
                }
            }
        }
    }

    /// Closes connections whose graceful close ran out of time, ends a
    /// shutdown that ran out of time, and resumes paused accepts.
    fn expire(&mut self) {
        if self.core.linger.is_empty()
            && self.core.timers.is_empty()
            && self.accept_paused_until.is_none()
            && self.shutdown_deadline.is_none()
        {
            return; // steady state: no clock read
        }
        let now = Instant::now();
        while let Some(&(deadline, id)) = self.core.linger.front() {
            if deadline > now {
                break;
            }
            self.core.linger.pop_front();
            if self.core.get(id).is_some_and(|c| !c.is_open()) {
                log::debug!("{id}: close timed out");
                self.core.finish(id);
            }
        }
        // Timers due now; one set by a callback here waits for the next pass.
        let due: Vec<_> = self
            .core
            .timers
            .range(..=(now, u64::MAX))
            .map(|(&k, &v)| (k, v))
            .collect();
        for (key, (conn, tag)) in due {
            if self.core.timers.remove(&key).is_none() {
                continue; // cancelled by an earlier timer of this batch
            }
            if conn.is_some_and(|id| self.core.get(id).is_none_or(|c| !c.is_open())) {
                continue; // its connection is gone
            }
            let cx = &mut Context {
                core: &mut self.core,
            };
            self.handler.on_timer(cx, conn, tag);
        }
        if self.shutdown_deadline.is_some_and(|d| d <= now) {
            let ids: Vec<ConnId> = self
                .core
                .conns
                .iter()
                .map(|(key, c)| ConnId::new(key, c.gen))
                .collect();
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

    fn resume_accepting(&mut self) {
        if self.accept_paused_until.take().is_some() {
            log::info!("accepting again");
            for (_, l) in self.listeners.iter_mut() {
                l.ready = true;
            }
        }
    }

    /// Flushes dirty connections and reaps dead ones until neither list has
    /// work (a `connection_lost` callback may send or close more).
    fn settle(&mut self) {
        loop {
            let mut batch = mem::replace(&mut self.core.dirty, mem::take(&mut self.scratch));
            for &id in &batch {
                self.flush(id);
            }
            batch.clear();
            batch = mem::replace(&mut self.core.dead, batch);
            for &id in &batch {
                self.reap(id);
            }
            batch.clear();
            self.scratch = batch;
            if self.core.dirty.is_empty() && self.core.dead.is_empty() {
                return;
            }
        }
    }

    /// Deregisters, closes and reports a dead connection.
    fn reap(&mut self, id: ConnId) {
        if !matches!(self.core.get(id), Some(c) if matches!(c.state, State::Dead(_))) {
            return;
        }
        let mut conn = self.core.conns.remove(id.key());
        // Deregister before the fd closes, so epoll never holds a stale entry.
        let _ = self.poll.registry().deregister(&mut conn.stream);
        conn.inb.clear();
        conn.inb.release_if_empty(&mut self.core.pool);
        conn.outb.clear(&mut self.core.pool);
        let State::Dead(reason) = conn.state else {
            unreachable!()
        };
        log::debug!("{id}: {} closed ({reason})", conn.peer);
        drop(conn.stream);
        if let Some(data) = conn.data {
            let cx = &mut Context {
                core: &mut self.core,
            };
            self.handler.connection_lost(cx, id, data, &reason);
        }
        // A descriptor came free: queued clients need not wait out the backoff.
        self.resume_accepting();
    }
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
