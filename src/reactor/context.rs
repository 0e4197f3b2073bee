//! [`Context`]: what a [`Handler`](crate::Handler) callback may do to the
//! reactor. The state behind it is `Core` (`core.rs`); each method here is
//! one public operation on it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use super::conn::{later, Output, State};
use super::core::Core;
use super::endpoint::Endpoint;
use super::handle::Loop;
use super::stream::Stream;
use super::timers::Timer;
use super::{SourceId, TimerId};
use crate::layer::SharedEncoding;
use crate::metrics::{Metrics, Snapshot};
#[cfg(doc)]
use crate::Config;
use crate::{CloseReason, ConnId, Error, Handle, InBuf, PeerAddr, Result};

/// Hidden setup of the doc examples below, so that they run for real: a
/// reactor whose handler has `Data = $data`, a listener at `addr`, `cx`
/// from [`Reactor::with_context`](crate::Reactor::with_context), and each
/// `$conn` a connection to that listener with `$value` as its data (still
/// connecting: the example runs before the loop does). `$extra` lines come
/// before `with_context`.
macro_rules! doc_cx {
    ($data:ty = $value:expr $(, $conn:ident)* $(; $($extra:literal)*)?) => {
        concat!(
            "# use mio_selectors::{Config, Reactor};\n",
            "# struct App;\n",
            "# impl mio_selectors::Handler for App { type Data = ", stringify!($data), "; }\n",
            "# let mut reactor = Reactor::new(App, Config::default())?;\n",
            "# let server = reactor.listen(\"127.0.0.1:0\")?;\n",
            "# let addr = reactor.local_addr(server)?;\n",
            $($($extra,)*)?
            "# reactor.with_context(|cx| -> mio_selectors::Result<()> {\n",
            $("# let ", stringify!($conn), " = cx.connect(addr, ", stringify!($value), ")?;\n",)*
        )
    };
}

/// The end of [`doc_cx!`]'s closure.
macro_rules! doc_cx_end {
    () => {
        "# Ok(())\n# })?;"
    };
}

mod timers;
mod udp;

/// What a callback may do: queue output to any connection, close one, look
/// at its data, connect out, send datagrams, set timers, stop the reactor.
/// Output is written at the end of the loop pass, so several `send`s to one
/// connection cost one `write`.
///
/// ```
/// use mio_selectors::{ConnId, Context, Handler, InBuf, PeerAddr};
///
/// /// Sends every chunk it receives to every other connection.
/// struct Relay;
/// impl Handler for Relay {
///     type Data = ();
///     fn accept_wrapper(&mut self, _: &mut Context<'_, ()>, _: ConnId, _: &PeerAddr) -> Option<()> {
///         Some(())
///     }
///     fn service_connection(&mut self, cx: &mut Context<'_, ()>, from: ConnId, _: &mut (), inb: &mut InBuf) {
///         cx.broadcast(inb, Some(from)); // a slow receiver is closed, the rest go on
///         inb.clear();
///     }
/// }
/// ```
pub struct Context<'a, D> {
    pub(crate) core: &'a mut Core<D>,
}

impl<D> Context<'_, D> {
    /// Queues `data` to be written to `id` (Python: `data.outb += ...`).
    /// Output queued while an outgoing connect is under way is sent once
    /// it completes.
    ///
    /// # Errors
    ///
    /// - [`Error::NoSuchConnection`]: `id` is closed or closing;
    /// - [`Error::WriteClosed`]: [`write_eof`](Self::write_eof) was called on it;
    /// - [`Error::OutputOverflow`]: its pending output would pass
    ///   [`Config::max_outb`](crate::Config::max_outb); the connection has been closed with
    ///   [`CloseReason::OutputOverflow`] and its pending output dropped.
    ///
    /// ```
    #[doc = doc_cx!(() = (), id)]
    /// cx.send(id, b"hello\n")?;
    /// assert_eq!(cx.pending_output(id), Some(6)); // written at the end of the pass
    #[doc = doc_cx_end!()]
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send(&mut self, id: ConnId, data: &[u8]) -> Result<()> {
        self.core.push_output(id, Output::Bytes(data))
    }

    /// Moves every byte of `inb` to `id`'s output, without a copy when that
    /// output is empty: the echo server's whole job.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send); `inb` is left as it was on error.
    ///
    /// ```
    /// use mio_selectors::{ConnId, Context, Handler, InBuf};
    ///
    /// struct Echo;
    /// impl Handler for Echo {
    ///     type Data = ();
    ///     fn service_connection(&mut self, cx: &mut Context<'_, ()>, id: ConnId, _: &mut (), inb: &mut InBuf) {
    ///         let _ = cx.send_from(id, inb); // `inb` is empty afterwards
    ///     }
    /// }
    /// ```
    pub fn send_from(&mut self, id: ConnId, inb: &mut InBuf) -> Result<()> {
        self.core.push_output(id, Output::Buf(&mut inb.0))
    }

    /// Queues `data` to every open connection but `except`, sharing one
    /// buffer among them instead of copying it into each. Order holds: every
    /// receiver gets broadcasts in the order they were made. A receiver
    /// whose pending output would pass [`Config::max_outb`](crate::Config::max_outb) is closed with
    /// [`CloseReason::OutputOverflow`]; the others are not delayed. Returns
    /// how many connections it was queued to.
    ///
    /// ```
    #[doc = doc_cx!(() = (), from)]
    /// let n = cx.broadcast(b"<alice> hi\n", Some(from));
    /// assert_eq!(n, 0); // nobody else is connected (and `from` is still connecting)
    #[doc = doc_cx_end!()]
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn broadcast(&mut self, data: &[u8], except: Option<ConnId>) -> usize {
        if data.is_empty() {
            return 0;
        }
        self.broadcast_shared(Arc::from(data), except)
    }

    /// As [`send`](Self::send), with bytes that are shared already: the
    /// buffer is queued, not copied. For delivering one payload to a
    /// chosen set of connections (a [`broadcast_shared`](Self::broadcast_shared)
    /// that must skip more than one).
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    ///
    /// ```
    #[doc = doc_cx!(() = (), id)]
    /// let line: std::sync::Arc<[u8]> = std::sync::Arc::from(&b"<bob> hi\n"[..]);
    /// cx.send_shared(id, line.clone())?;
    /// cx.send_shared(id, line)?;
    /// assert_eq!(cx.pending_output(id), Some(18));
    #[doc = doc_cx_end!()]
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_shared(&mut self, id: ConnId, shared: Arc<[u8]>) -> Result<()> {
        // No shortcut for an empty payload: it is checked as `send` checks
        // one (an error for a connection that takes no more output).
        self.core.push_output(id, Output::Shared(shared))
    }

    /// As [`broadcast`](Self::broadcast), with bytes that are shared
    /// already (a [`Message`](crate::group::Message)'s payload from another
    /// reactor, say): not even one copy is made.
    ///
    /// ```
    /// # struct App;
    /// # impl mio_selectors::Handler for App { type Data = (); }
    /// let mut reactor = mio_selectors::Reactor::new(App, mio_selectors::Config::default())?;
    /// let line: std::sync::Arc<[u8]> = std::sync::Arc::from(&b"<bob> hi\n"[..]);
    /// assert_eq!(reactor.with_context(|cx| cx.broadcast_shared(line, None)), 0); // nobody yet
    /// # Ok::<(), mio_selectors::Error>(())
    /// ```
    pub fn broadcast_shared(&mut self, shared: Arc<[u8]>, except: Option<ConnId>) -> usize {
        self.broadcast_shared_to(shared, |id| Some(id) != except)
    }

    /// As [`broadcast_shared`](Self::broadcast_shared), to the open
    /// connections for which `to` says `true` (skipping several, or a kind
    /// of connection the handler knows by its id), without collecting the
    /// ids first. `to` is asked once per open connection, in slot order.
    /// Returns how many took the bytes.
    ///
    /// ```
    /// # struct App;
    /// # impl mio_selectors::Handler for App { type Data = (); }
    /// let mut reactor = mio_selectors::Reactor::new(App, mio_selectors::Config::default())?;
    /// let line: std::sync::Arc<[u8]> = std::sync::Arc::from(&b"<bob> hi\n"[..]);
    /// let skip = std::collections::HashSet::<mio_selectors::ConnId>::new();
    /// let sent = reactor.with_context(|cx| cx.broadcast_shared_to(line, |id| !skip.contains(&id)));
    /// assert_eq!(sent, 0); // nobody yet
    /// # Ok::<(), mio_selectors::Error>(())
    /// ```
    pub fn broadcast_shared_to(
        &mut self,
        shared: Arc<[u8]>,
        mut to: impl FnMut(ConnId) -> bool,
    ) -> usize {
        let mut sent = 0;
        // Whole lines to connections whose layer frames them the same way
        // (plain WebSocket) are framed once, and that one copy is shared
        // like the plain bytes, instead of framed again per recipient.
        let whole_lines = shared.last() == Some(&b'\n');
        let mut encoded: Option<(SharedEncoding, Arc<[u8]>)> = None;
        for slot in 0..self.core.conns.slots() {
            let Some(id) = self.core.conns.open_at(slot) else {
                continue;
            };
            if !to(id) {
                continue;
            }
            let queued = self
                .core
                .push_broadcast(id, &shared, whole_lines, &mut encoded);
            if queued.is_ok() {
                sent += 1;
            }
        }
        sent
    }

    /// Opens an outgoing TCP connection to `addr` with `data` as its data
    /// (asyncio: `loop.create_connection`). The connect runs in the
    /// background: [`Handler::connection_made`](crate::Handler::connection_made)
    /// follows when it succeeds, [`Handler::connection_lost`](crate::Handler::connection_lost)
    /// with [`CloseReason::ConnectFailed`] when it is refused, unreachable or
    /// takes longer than [`Config::connect_timeout`](crate::Config::connect_timeout). Output may be queued
    /// at once.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the socket cannot even be created (out of
    /// descriptors, say); [`Error::TooManyConnections`].
    ///
    /// ```
    #[doc = doc_cx!(u32 = 1)]
    /// let id = cx.connect("127.0.0.1:65432".parse().unwrap(), 1)?;
    /// cx.send(id, b"Message 1 from client.")?;
    #[doc = doc_cx_end!()]
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn connect(&mut self, addr: SocketAddr, data: D) -> Result<ConnId> {
        let stream = mio::net::TcpStream::connect(addr)?;
        let (timer, close) = (TimerId(u64::MAX), None); // the timer comes next
        let state = State::Connecting { timer, close };
        let id = self
            .core
            .insert(Stream::Tcp(stream), PeerAddr::Inet(addr), state)?;
        let deadline = later(self.core.now, self.core.config.connect_timeout);
        let timer = self.core.timers.add(deadline, Timer::Connect(id));
        if let Some(conn) = self.core.conns.get_mut(id) {
            conn.data = Some(data);
            conn.set_connect_timer(timer);
        }
        log::debug!("{id}: connecting to {addr}");
        Ok(id)
    }

    /// [`connect`](Self::connect) through a [`Wrap`](super::Wrap) (TLS with
    /// [`Wrap::tls_client`](super::Wrap::tls_client)): the handshake runs
    /// once connected, and [`Handler::connection_made`](crate::Handler::connection_made)
    /// follows when it is done; the handler sees plaintext only. Output
    /// queued before then waits in the layer (TLS: at most 64 KiB).
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect); [`Error::Io`] if the wrap cannot make
    /// its layer.
    pub fn connect_wrapped(
        &mut self,
        addr: SocketAddr,
        data: D,
        wrap: &super::Wrap,
    ) -> Result<ConnId> {
        let layer = wrap
            .make()
            .map_err(|e| Error::Io(std::io::Error::other(e)))?;
        let id = self.connect(addr, data)?;
        if let Some(conn) = self.core.conns.get_mut(id) {
            let mut w = super::wrap::Wrapped::new(layer);
            w.timeout = wrap.handshake_timeout;
            conn.wrap = Some(w);
        }
        Ok(id)
    }

    /// Stops reading `id` until [`resume_reading`](Self::resume_reading):
    /// TCP then pushes back on the peer, and nothing it sent is lost. Input
    /// already in its `inb` stays there.
    ///
    /// ```
    #[doc = doc_cx!(() = (), id)]
    /// cx.pause_reading(id); // over its rate budget
    /// cx.call_later(std::time::Duration::from_millis(10), Some(id), 1);
    #[doc = doc_cx_end!()]
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pause_reading(&mut self, id: ConnId) {
        if let Some(conn) = self.core.conns.get_mut(id) {
            conn.pause_reading();
        }
    }

    /// Reads `id` again after [`pause_reading`](Self::pause_reading). The
    /// handler's `service_connection` is called first with what its `inb`
    /// still holds, even if nothing new arrives.
    ///
    /// ```
    #[doc = doc_cx!(() = (), id)]
    /// cx.resume_reading(id);
    #[doc = doc_cx_end!()]
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn resume_reading(&mut self, id: ConnId) {
        if let Some(conn) = self.core.conns.get_mut(id) {
            if conn.resume_reading() {
                self.core.conns.queue_ready(id);
            }
        }
    }

    /// Watches a descriptor, as [`Reactor::register_fd`](crate::Reactor::register_fd)
    /// does, from a callback (to resume reading stdin, say).
    ///
    /// # Errors
    ///
    /// As [`Reactor::register_fd`](crate::Reactor::register_fd).
    ///
    /// ```
    #[doc = doc_cx!(() = ())]
    /// use std::os::unix::io::AsRawFd;
    /// # let (stdin, _writer) = std::os::unix::net::UnixStream::pair()?; // a pipe, say
    /// let source = cx.register_fd(stdin.as_raw_fd(), mio_selectors::EVENT_READ)?;
    /// cx.unregister_source(source);
    #[doc = doc_cx_end!()]
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn register_fd(
        &mut self,
        fd: std::os::unix::io::RawFd,
        events: crate::EventMask,
    ) -> Result<SourceId> {
        self.core.register_fd(fd, events)
    }

    /// Sends FIN on `id` once the output queued so far is written, and keeps
    /// reading (Python: `sock.shutdown(SHUT_WR)`; asyncio:
    /// `transport.write_eof()`). The peer sees EOF; nothing more can be sent.
    ///
    /// ```
    #[doc = doc_cx!(() = (), id)]
    /// let _ = cx.send(id, b"last words\n");
    /// cx.write_eof(id); // the server answers, then closes
    #[doc = doc_cx_end!()]
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn write_eof(&mut self, id: ConnId) {
        let core = &mut *self.core;
        if let Some(conn) = core.conns.get_mut(id) {
            if conn.write_eof(&mut core.pool) {
                core.conns.mark_dirty(id);
            }
        }
    }

    /// Whether `id`'s pending output passed [`Config::high_water`](crate::Config::high_water) and has
    /// not yet drained to [`Config::low_water`](crate::Config::low_water): a producer should stop
    /// until [`Handler::resume_writing`](crate::Handler::resume_writing).
    /// It turns true at the `send` that passes the mark, before
    /// [`Handler::pause_writing`](crate::Handler::pause_writing) is called;
    /// every pause seen here is reported there, so a resume always follows.
    /// The reactor itself stops reading `id` meanwhile.
    ///
    /// ```
    #[doc = doc_cx!(() = (), id)]
    /// if cx.is_writing_paused(id) { return Ok(()) } // wait for resume_writing
    #[doc = doc_cx_end!()]
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_writing_paused(&self, id: ConnId) -> bool {
        self.core
            .conns
            .get(id)
            .is_some_and(|c| c.is_writing_paused())
    }

    /// Stops watching a descriptor registered with
    /// [`Reactor::register_fd`](crate::Reactor::register_fd) (at EOF, say).
    /// The descriptor itself stays open: it is the caller's.
    ///
    /// ```
    #[doc = doc_cx!(() = (); "# let (fd, _peer) = std::os::unix::net::UnixStream::pair()?;\n" "# let stdin = reactor.register_fd(std::os::unix::io::AsRawFd::as_raw_fd(&fd), mio_selectors::EVENT_READ)?;\n")]
    /// cx.unregister_source(stdin);
    #[doc = doc_cx_end!()]
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn unregister_source(&mut self, source: SourceId) {
        if let Some(Endpoint::Fd { fd, .. }) = self.core.endpoints.get(source.0) {
            let _ = self.core.registry.deregister(&mut mio::unix::SourceFd(fd));
            self.core.endpoints.remove(source.0);
        }
    }

    /// Closes `id` gracefully: stop reading, write what is pending, send FIN,
    /// then close (bounded by [`Config::flush_timeout`](crate::Config::flush_timeout) without progress and
    /// [`Config::linger`](crate::Config::linger) for the peer's FIN). Python:
    /// `sel.unregister(sock); sock.close()`, without losing output. Unknown
    /// or closing ids are ignored.
    ///
    /// ```
    #[doc = doc_cx!(() = (), id)]
    /// let _ = cx.send(id, b"bye\n");
    /// cx.close(id); // "bye" is still delivered
    #[doc = doc_cx_end!()]
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn close(&mut self, id: ConnId) {
        if let Some(reason) = self.core.conns.get(id).map(|c| c.close_reason()) {
            self.core.close_gracefully(id, reason);
        }
    }

    /// Closes `id` now, dropping pending output; if there was any, the
    /// peer gets a reset (RST), not a FIN. Unknown ids are ignored.
    ///
    /// ```
    #[doc = doc_cx!(() = (), id)]
    /// cx.abort(id);
    /// assert!(!cx.is_open(id) && cx.pending_output(id) == Some(0));
    #[doc = doc_cx_end!()]
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn abort(&mut self, id: ConnId) {
        self.core.kill(id, CloseReason::Closed);
    }

    /// The data of `id` (Python: `key.data`); `None` if `id` is gone, during
    /// its own `accept_wrapper`, or while a callback about `id` holds it
    /// (that callback has it as an argument).
    ///
    /// ```
    #[doc = doc_cx!(String = String::from("alice"), id)]
    /// if let Some(name) = cx.data(id) { println!("{name}") }
    /// assert_eq!(cx.data(id).map(String::as_str), Some("alice"));
    #[doc = doc_cx_end!()]
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn data(&self, id: ConnId) -> Option<&D> {
        self.core.conns.get(id)?.data.as_ref()
    }

    /// The data of `id`, open to change.
    ///
    /// ```
    #[doc = doc_cx!(u64 = 0, id)]
    /// if let Some(count) = cx.data_mut(id) { *count += 1 }
    /// assert_eq!(cx.data(id), Some(&1));
    #[doc = doc_cx_end!()]
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn data_mut(&mut self, id: ConnId) -> Option<&mut D> {
        self.core.conns.get_mut(id)?.data.as_mut()
    }

    /// The peer's address (Python: `data.addr`).
    ///
    /// ```
    #[doc = doc_cx!(() = (), id)]
    /// if let Some(addr) = cx.peer_addr(id) { println!("{addr}") }
    #[doc = doc_cx_end!()]
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn peer_addr(&self, id: ConnId) -> Option<&PeerAddr> {
        Some(&self.core.conns.get(id)?.peer)
    }

    /// Whether `id` is open: accepted or connected, and not closing or closed.
    ///
    /// ```
    #[doc = doc_cx!(() = (), id)]
    /// cx.close(id);
    /// assert!(!cx.is_open(id));
    #[doc = doc_cx_end!()]
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_open(&self, id: ConnId) -> bool {
        self.core.conns.get(id).is_some_and(|c| c.is_open())
    }

    /// Bytes queued for `id` and not yet written (Python: `len(data.outb)`).
    ///
    /// ```
    #[doc = doc_cx!(() = (), id)]
    /// assert!(cx.pending_output(id).unwrap_or(0) <= mio_selectors::Config::default().max_outb);
    #[doc = doc_cx_end!()]
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pending_output(&self, id: ConnId) -> Option<usize> {
        Some(self.core.conns.get(id)?.pending())
    }

    /// Every open connection (not connecting, not closing), in slab order.
    ///
    /// ```
    #[doc = doc_cx!(() = ())]
    /// let ids: Vec<_> = cx.ids().collect();
    /// for id in ids { let _ = cx.send(id, b"hi all\n"); }
    /// assert_eq!(cx.ids().count(), 0); // nobody has connected yet
    #[doc = doc_cx_end!()]
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn ids(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.core.conns.open_ids()
    }

    /// How many connections the reactor holds, closing ones included.
    ///
    /// ```
    #[doc = doc_cx!(() = ())]
    /// println!("{} connections", cx.connection_count());
    /// assert_eq!(cx.connection_count(), 0);
    #[doc = doc_cx_end!()]
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn connection_count(&self) -> usize {
        self.core.conns.len()
    }

    /// The time the current loop pass started: cheap, and what timers use.
    ///
    /// ```
    #[doc = doc_cx!(() = ())]
    /// assert!(cx.now() <= std::time::Instant::now());
    #[doc = doc_cx_end!()]
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn now(&self) -> Instant {
        self.core.now
    }

    /// Asks the reactor to stop, as [`Handle::stop`] does.
    ///
    /// ```
    #[doc = doc_cx!(() = ())]
    /// cx.stop();
    #[doc = doc_cx_end!()]
    /// reactor.run()?; // returns: the stop was asked for already
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stop(&self) {
        self.core.handle.stop();
    }

    /// This reactor's counters, to add the application's own with
    /// [`Metrics::counter`](crate::metrics::Metrics::counter) and
    /// [`Metrics::add`](crate::metrics::Metrics::add).
    ///
    /// ```
    /// # fn f(cx: &mut mio_selectors::Context<'_, ()>) -> mio_selectors::Result<()> {
    /// let jobs = cx.metrics().counter("jobs_total", "Jobs done.")?;
    /// cx.metrics().add(jobs, 1);
    /// # Ok(()) }
    /// ```
    pub fn metrics(&mut self) -> &mut Metrics {
        &mut self.core.metrics
    }

    /// A snapshot of this reactor's counters, taken now (one walk over the
    /// connections, for the gauges that describe them).
    ///
    /// ```
    /// # fn f(cx: &mut mio_selectors::Context<'_, ()>) {
    /// let text = mio_selectors::metrics::render(&[cx.metrics_snapshot()]);
    /// # }
    /// ```
    pub fn metrics_snapshot(&self) -> Snapshot {
        self.core.snapshot()
    }

    /// A handle for other threads.
    ///
    /// ```
    #[doc = doc_cx!(() = ())]
    /// let handle = cx.handle();
    /// std::thread::spawn(move || handle.stop());
    #[doc = doc_cx_end!()]
    /// reactor.run()?; // until the other thread stops it
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn handle(&self) -> Handle {
        self.core.handle.clone()
    }

    /// Whether the reactor is stopping (after [`Handle::stop`]).
    ///
    /// ```
    #[doc = doc_cx!(() = ())]
    /// assert!(!cx.is_shutting_down());
    #[doc = doc_cx_end!()]
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_shutting_down(&self) -> bool {
        self.core.shutting_down
    }
}

impl<D> Loop for Context<'_, D> {
    fn send(&mut self, id: ConnId, data: &[u8]) -> Result<()> {
        Context::send(self, id, data)
    }

    fn broadcast(&mut self, data: &[u8], except: Option<ConnId>) -> usize {
        Context::broadcast(self, data, except)
    }

    fn close(&mut self, id: ConnId) {
        Context::close(self, id)
    }

    fn connection_count(&self) -> usize {
        Context::connection_count(self)
    }

    fn stop(&mut self) {
        Context::stop(self)
    }

    fn metrics_snapshot(&self) -> Snapshot {
        Context::metrics_snapshot(self)
    }
}
