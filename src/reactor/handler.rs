//! [`Handler`]: the application's callbacks, named after the tutorial; and
//! [`CloseReason`]: why a connection ended.

use std::fmt;
use std::io;
use std::net::SocketAddr;

use super::{SourceId, UdpId};
use crate::{ConnId, Context, EventMask, InBuf, PeerAddr};

/// The application side of a [`Reactor`](crate::Reactor): the tutorial's
/// `accept_wrapper` and `service_connection`, plus asyncio's `Protocol`
/// callbacks.
///
/// The reactor does the I/O (accepting until `WouldBlock`, reading into
/// `inb`, writing `outb` as the socket allows); the handler only decides what
/// to send. Every callback gets a [`Context`] to queue output to any
/// connection, close one, or stop the reactor. The callbacks about one
/// connection also get that connection's own data (Python's `key.data`),
/// lent out of the reactor for the call: use the argument, not
/// [`Context::data`], which gives `None` for that connection meanwhile.
///
/// Every callback has a default, so a program implements only what it
/// cares about: a UDP-only server implements
/// [`datagram_received`](Self::datagram_received), a client
/// [`service_connection`](Self::service_connection) and perhaps
/// [`connection_lost`](Self::connection_lost).
///
/// # The order of calls
///
/// For each connection, as asyncio's `Protocol` states it (CM
/// `connection_made`, DR `service_connection`, ER `eof_received`, CL
/// `connection_lost`):
///
/// ```text
/// accepted:   accept_wrapper -> Some(data) -> CM [-> DR*] [-> ER?] -> CL
///             accept_wrapper -> None        (nothing more: it is closed)
/// outgoing:   Context::connect -> CM [-> DR*] [-> ER?] -> CL
///             Context::connect -> connect_failed   (it never became a connection)
/// ```
///
/// Between CM and CL come, any number of times, the connection's
/// [`on_timer`](Self::on_timer) calls and paired
/// [`pause_writing`](Self::pause_writing) / [`resume_writing`](Self::resume_writing)
/// (a pause is always reported before its resume; a connection may end
/// paused). No DR follows ER. CL is called exactly once for every
/// connection that got CM, whatever ends it.
///
/// For the loop: [`started`](Self::started) once, before any other call
/// of its run; [`shutting_down`](Self::shutting_down) once, when it stops.
///
/// Callbacks never nest: each runs to completion before the loop makes the
/// next, and one caused by a [`Context`] call (a pause caused by a `send`,
/// say) comes after the callback that made it returns.
///
/// # Examples
///
/// The tutorial's multiconn echo server, whole (it is
/// `examples/multiconn_echo.rs`'s handler):
///
/// ```no_run
/// use mio_selectors::{CloseReason, Config, ConnId, Context, Handler, InBuf, PeerAddr, Reactor};
///
/// struct Echo;
///
/// impl Handler for Echo {
///     type Data = PeerAddr;
///
///     fn accept_wrapper(&mut self, _: &mut Context<'_, PeerAddr>, _: ConnId, peer: &PeerAddr) -> Option<PeerAddr> {
///         println!("Accepted connection from {peer}");
///         Some(peer.clone()) // the connection's data: Python's `key.data`
///     }
///
///     fn service_connection(&mut self, cx: &mut Context<'_, PeerAddr>, id: ConnId, _: &mut PeerAddr, inb: &mut InBuf) {
///         let _ = cx.send_from(id, inb); // Python: data.outb += recv_data
///     }
///
///     fn connection_lost(&mut self, _: &mut Context<'_, PeerAddr>, _: ConnId, peer: PeerAddr, why: &CloseReason) {
///         println!("Closing connection to {peer} ({why})");
///     }
/// }
///
/// let mut reactor = Reactor::new(Echo, Config::default())?;
/// reactor.listen("127.0.0.1:65432")?;
/// reactor.run()?;
/// # Ok::<(), mio_selectors::Error>(())
/// ```
pub trait Handler {
    /// Per-connection application state (Python: `key.data`), kept in the
    /// reactor's slab beside the connection's socket and buffers.
    type Data;

    /// A listener accepted a connection from `peer` (Python:
    /// `accept_wrapper(sock)`). The socket is already non-blocking and
    /// registered. Return its data, or `None` to refuse it: output queued
    /// here with [`Context::send`] is still flushed, then the connection is
    /// closed with no further call. Accepted, it gets
    /// [`connection_made`](Self::connection_made) next.
    ///
    /// The default refuses every connection: a program that listens
    /// implements this.
    fn accept_wrapper(
        &mut self,
        cx: &mut Context<'_, Self::Data>,
        id: ConnId,
        peer: &PeerAddr,
    ) -> Option<Self::Data> {
        let _ = cx;
        log::debug!("{id}: {peer} refused: the handler has no accept_wrapper");
        None
    }

    /// `id` is a connection now (asyncio: `connection_made`): accepted, right
    /// after [`accept_wrapper`](Self::accept_wrapper) returned its data, or
    /// outgoing ([`Context::connect`]) and established. Output queued before
    /// is sent now.
    fn connection_made(
        &mut self,
        cx: &mut Context<'_, Self::Data>,
        id: ConnId,
        data: &mut Self::Data,
    ) {
        let _ = (cx, id, data);
    }

    /// Bytes arrived on `id` (Python: `service_connection(key, mask)` with
    /// `mask & EVENT_READ`). `inb` holds every byte received and not yet
    /// consumed; consume what you have dealt with. Writing is the reactor's
    /// job: queue output with [`Context::send`].
    ///
    /// The default discards the input.
    fn service_connection(
        &mut self,
        cx: &mut Context<'_, Self::Data>,
        id: ConnId,
        data: &mut Self::Data,
        inb: &mut InBuf,
    ) {
        let _ = (cx, id, data);
        inb.clear();
    }

    /// The peer shut down its sending side (Python: `recv` returned `b""`;
    /// asyncio: `eof_received`). `inb` holds what is left unconsumed. The
    /// default closes the connection gracefully: pending output is sent
    /// first. Override it to keep sending on a half-closed connection.
    fn eof_received(
        &mut self,
        cx: &mut Context<'_, Self::Data>,
        id: ConnId,
        data: &mut Self::Data,
        inb: &mut InBuf,
    ) {
        let _ = (data, inb);
        cx.close(id);
    }

    /// The connection is over; `data` is handed back. Called once for every
    /// connection that got [`connection_made`](Self::connection_made): when
    /// its socket is closed, or, after a graceful close, as soon as all its
    /// output is sent and FIN is out. (The reactor may then hold the socket
    /// for up to [`Config::linger`](crate::Config::linger), waiting for the
    /// peer's FIN so that a reset cannot destroy output not read yet;
    /// nothing can be sent or received on it meanwhile, and it counts
    /// against [`Config::max_connections`](crate::Config::max_connections)
    /// only.)
    fn connection_lost(
        &mut self,
        cx: &mut Context<'_, Self::Data>,
        id: ConnId,
        data: Self::Data,
        reason: &CloseReason,
    ) {
        let _ = (cx, id, data, reason);
    }

    /// An outgoing connection from [`Context::connect`] ended before it was
    /// made, so it gets no [`connection_made`](Self::connection_made) and no
    /// [`connection_lost`](Self::connection_lost); `data` is handed back.
    /// `reason` is [`CloseReason::ConnectFailed`] when the connect was
    /// refused, unreachable or timed out
    /// ([`Config::connect_timeout`](crate::Config::connect_timeout)), or
    /// another reason when it was closed while connecting (an
    /// [`abort`](Context::abort), a shutdown).
    fn connect_failed(
        &mut self,
        cx: &mut Context<'_, Self::Data>,
        id: ConnId,
        data: Self::Data,
        reason: &CloseReason,
    ) {
        let _ = (cx, data);
        log::debug!("{id}: connect failed ({reason})");
    }

    /// `id`'s pending output has passed [`Config::high_water`](crate::Config::high_water)
    /// (asyncio: `pause_writing`): a producer should stop until
    /// [`resume_writing`](Self::resume_writing). The reactor itself stops
    /// reading `id` meanwhile. Called when the pass in which the output
    /// passed the mark writes to `id`, after the callback that queued it has
    /// returned; if that write already brought it down to
    /// [`Config::low_water`](crate::Config::low_water),
    /// [`resume_writing`](Self::resume_writing) follows at once.
    fn pause_writing(
        &mut self,
        cx: &mut Context<'_, Self::Data>,
        id: ConnId,
        data: &mut Self::Data,
    ) {
        let _ = (cx, id, data);
    }

    /// `id`'s pending output, after a [`pause_writing`](Self::pause_writing),
    /// is down to [`Config::low_water`](crate::Config::low_water): a producer
    /// may go on (asyncio: `resume_writing`).
    fn resume_writing(
        &mut self,
        cx: &mut Context<'_, Self::Data>,
        id: ConnId,
        data: &mut Self::Data,
    ) {
        let _ = (cx, id, data);
    }

    /// A datagram arrived on a UDP socket (asyncio: `datagram_received`).
    /// Reply with [`Context::send_to`].
    fn datagram_received(
        &mut self,
        cx: &mut Context<'_, Self::Data>,
        udp: UdpId,
        data: &[u8],
        from: SocketAddr,
    ) {
        let _ = (cx, udp, data, from);
    }

    /// A descriptor registered with [`Reactor::register_fd`](crate::Reactor::register_fd)
    /// is ready. Reported level-triggered, like [`Selector`](crate::Selector):
    /// read what you like, it is reported again while more is there.
    fn source_ready(
        &mut self,
        cx: &mut Context<'_, Self::Data>,
        source: SourceId,
        events: EventMask,
    ) {
        let _ = (cx, source, events);
    }

    /// A timer set with [`Context::call_later`] or [`Context::call_every`]
    /// is due, with its `tag`. `conn` is the connection it was set for
    /// (still open) with that connection's data lent, or `None` for a loop
    /// timer.
    fn on_timer(
        &mut self,
        cx: &mut Context<'_, Self::Data>,
        conn: Option<(ConnId, &mut Self::Data)>,
        tag: u64,
    ) {
        let _ = (cx, conn, tag);
    }

    /// A [`Message`](crate::group::Message) from reactor `from` of this
    /// reactor's [`ReactorGroup`](crate::group::ReactorGroup) (its own index
    /// for one it sent itself), sent with [`Context::post`]. Messages from
    /// one reactor arrive in the order sent; they are delivered early in a
    /// pass, after readiness is noted and before accepting and reading.
    fn on_message(
        &mut self,
        cx: &mut Context<'_, Self::Data>,
        from: usize,
        msg: crate::group::Message,
    ) {
        let _ = (cx, from, msg);
    }

    /// The loop is about to run its first pass: [`Reactor::run`](crate::Reactor::run)
    /// calls this once, on the loop's thread, before it waits for anything.
    /// Set the loop timers and outgoing connections a handler starts with
    /// here; in a [`ReactorGroup`](crate::group::ReactorGroup), whose
    /// reactors are built and run on their own threads, it is the one place
    /// to do so. A [`Context::stop`] here ends this run (and, in a group,
    /// the whole group, even while its other reactors are still being
    /// built); [`shutting_down`](Self::shutting_down) still follows.
    ///
    /// ```
    /// use std::time::Duration;
    /// use mio_selectors::{Config, Context, Reactor};
    ///
    /// struct Once;
    /// impl mio_selectors::Handler for Once {
    ///     type Data = ();
    ///     fn started(&mut self, cx: &mut Context<'_, ()>) {
    ///         cx.call_later(Duration::ZERO, None, 7);
    ///     }
    ///     fn on_timer(&mut self, cx: &mut Context<'_, ()>, _: Option<(mio_selectors::ConnId, &mut ())>, tag: u64) {
    ///         assert_eq!(tag, 7);
    ///         cx.stop();
    ///     }
    /// }
    /// Reactor::new(Once, Config::default())?.run()?; // returns: the timer stopped it
    /// # Ok::<(), mio_selectors::Error>(())
    /// ```
    fn started(&mut self, cx: &mut Context<'_, Self::Data>) {
        let _ = cx;
    }

    /// [`Handle::stop`](crate::Handle::stop) was called: the listeners are
    /// closed already (what was queued on them was accepted first), and
    /// every connection will be flushed and closed after this returns.
    /// Queue any farewell here. In a group, every reactor stops.
    fn shutting_down(&mut self, cx: &mut Context<'_, Self::Data>) {
        let _ = cx;
    }
}

/// Why a connection ended, as given to [`Handler::connection_lost`].
///
/// ```
/// use mio_selectors::CloseReason;
/// assert_eq!(CloseReason::OutputOverflow.to_string(), "too slow");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum CloseReason {
    /// The peer sent EOF; pending output was flushed, then the socket closed.
    PeerClosed,
    /// The application closed it with [`Context::close`] or [`Context::abort`].
    Closed,
    /// Reading or writing failed, for example with `ECONNRESET`; pending output is lost.
    Error(io::Error),
    /// A [`Context::send`] would have passed [`Config::max_outb`](crate::Config::max_outb):
    /// the peer does not read fast enough. Pending output is dropped.
    OutputOverflow,
    /// [`Config::max_inb`](crate::Config::max_inb) bytes were pending and the
    /// handler consumed none of them.
    InputOverflow,
    /// The reactor was stopped.
    Shutdown,
    /// An outgoing connect failed: refused, unreachable, or timed out; given
    /// to [`Handler::connect_failed`]
    /// ([`Config::connect_timeout`](crate::Config::connect_timeout)).
    ConnectFailed(io::Error),
    /// No activity for longer than its idle timeout ([`Context::set_idle_timeout`]).
    IdleTimeout,
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::PeerClosed => f.write_str("closed by peer"),
            CloseReason::Closed => f.write_str("closed"),
            CloseReason::Error(e) => write!(f, "error: {e}"),
            CloseReason::OutputOverflow => f.write_str("too slow"),
            CloseReason::InputOverflow => f.write_str("input overflow"),
            CloseReason::Shutdown => f.write_str("shutdown"),
            CloseReason::ConnectFailed(e) => write!(f, "connect failed: {e}"),
            CloseReason::IdleTimeout => f.write_str("idle timeout"),
        }
    }
}
