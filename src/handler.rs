//! [`Handler`]: the application's callbacks, named after the tutorial; and
//! [`CloseReason`]: why a connection ended.

use std::fmt;
use std::io;
use std::net::SocketAddr;

use crate::{ConnId, Context, EventMask, InBuf, PeerAddr, SourceId, UdpId};

/// The application side of a [`Reactor`](crate::Reactor): the tutorial's
/// `accept_wrapper` and `service_connection`, plus asyncio's `eof_received`
/// and `connection_lost`.
///
/// The reactor does the I/O (accepting until `WouldBlock`, reading into
/// `inb`, writing `outb` as the socket allows); the handler only decides what
/// to send. Every callback gets a [`Context`] to queue output to any
/// connection, close one, or stop the reactor.
///
/// # Examples
///
/// The tutorial's multiconn echo server, whole:
///
/// ```no_run
/// use mio_selectors::{Config, ConnId, Context, Handler, InBuf, PeerAddr, Reactor};
///
/// struct Echo;
///
/// impl Handler for Echo {
///     type Data = ();
///
///     fn accept_wrapper(&mut self, _cx: &mut Context<'_, ()>, _id: ConnId, peer: &PeerAddr) -> Option<()> {
///         println!("Accepted connection from {peer}");
///         Some(())
///     }
///
///     fn service_connection(&mut self, cx: &mut Context<'_, ()>, id: ConnId, inb: &mut InBuf) {
///         // data.outb += recv_data
///         let _ = cx.send_from(id, inb);
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
    /// closed without a [`connection_lost`](Self::connection_lost) call.
    fn accept_wrapper(
        &mut self,
        cx: &mut Context<'_, Self::Data>,
        id: ConnId,
        peer: &PeerAddr,
    ) -> Option<Self::Data>;

    /// An outgoing connection made with [`Context::connect`] is established
    /// (asyncio: `connection_made`). Output queued before it is sent now. A
    /// connect that fails ends in [`connection_lost`](Self::connection_lost)
    /// with [`CloseReason::ConnectFailed`].
    fn connection_made(&mut self, cx: &mut Context<'_, Self::Data>, id: ConnId) {
        let _ = (cx, id);
    }

    /// Bytes arrived on `id` (Python: `service_connection(key, mask)` with
    /// `mask & EVENT_READ`). `inb` holds every byte received and not yet
    /// consumed; consume what you have dealt with. Writing is the reactor's
    /// job: queue output with [`Context::send`].
    fn service_connection(&mut self, cx: &mut Context<'_, Self::Data>, id: ConnId, inb: &mut InBuf);

    /// The peer shut down its sending side (Python: `recv` returned `b""`;
    /// asyncio: `eof_received`). `inb` holds what is left unconsumed. The
    /// default closes the connection gracefully: pending output is sent
    /// first. Override it to keep sending on a half-closed connection.
    fn eof_received(&mut self, cx: &mut Context<'_, Self::Data>, id: ConnId, inb: &mut InBuf) {
        let _ = inb;
        cx.close(id);
    }

    /// The connection is over; `data` is handed back. Called once for every
    /// connection that `accept_wrapper` accepted: when its socket is closed,
    /// or, after a graceful close, as soon as all its output is sent and FIN
    /// is out. (The reactor may then hold the socket for up to
    /// [`Config::linger`](crate::Config::linger), waiting for the peer's FIN
    /// so that a reset cannot destroy output not read yet; nothing can be
    /// sent or received on it meanwhile, and it counts against
    /// [`Config::max_connections`](crate::Config::max_connections) only.)
    fn connection_lost(
        &mut self,
        cx: &mut Context<'_, Self::Data>,
        id: ConnId,
        data: Self::Data,
        reason: &CloseReason,
    ) {
        let _ = (cx, id, data, reason);
    }

    /// `id`'s pending output, which had passed [`Config::high_water`](crate::Config::high_water),
    /// is down to [`Config::low_water`](crate::Config::low_water): a producer
    /// that stopped at [`Context::is_writing_paused`] may go on (asyncio:
    /// `resume_writing`).
    fn resume_writing(&mut self, cx: &mut Context<'_, Self::Data>, id: ConnId) {
        let _ = (cx, id);
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

    /// A timer set with [`Context::call_later`] is due. `conn` is the
    /// connection it was set for (still open), or `None` for a loop timer.
    fn on_timer(&mut self, cx: &mut Context<'_, Self::Data>, conn: Option<ConnId>, tag: u64) {
        let _ = (cx, conn, tag);
    }

    /// [`Handle::stop`](crate::Handle::stop) was called: the listeners are
    /// closed already, and every connection will be flushed and closed
    /// after this returns. Queue any farewell here.
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
    /// An outgoing connect failed: refused, unreachable, or timed out
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
