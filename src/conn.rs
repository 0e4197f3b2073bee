//! [`Conn`]: one accepted connection as the reactor keeps it in its slab.

use std::net::SocketAddr;

use mio::net::TcpStream;

use crate::buffer::ByteBuf;
use crate::outbuf::OutBuf;
use crate::CloseReason;

/// Where a connection is in its life.
#[derive(Debug)]
pub(crate) enum State {
    Open,
    /// Closing gracefully: flush `outb`, then send FIN.
    Closing(CloseReason),
    /// FIN sent; discarding input until the peer's FIN or the deadline, so
    /// that closing with unread input cannot turn into a reset that destroys
    /// output the peer has not read yet.
    Lingering(CloseReason),
    /// Done: waiting to be deregistered, dropped and reported.
    Dead(CloseReason),
}

/// A connection: socket, peer, buffers, the application's data, and what
/// edge-triggered readiness has told us so far.
///
/// Buffers own no storage while empty (it goes back to the pool), so an idle
/// connection costs only this struct.
pub(crate) struct Conn<D> {
    pub(crate) stream: TcpStream,
    pub(crate) peer: SocketAddr,
    pub(crate) gen: u32,
    pub(crate) inb: ByteBuf,
    pub(crate) outb: OutBuf,
    /// `None` only while `accept_wrapper` runs.
    pub(crate) data: Option<D>,
    pub(crate) state: State,
    /// The socket may hold unread input (set by a readable event, cleared by
    /// `WouldBlock` or a short read).
    pub(crate) readable: bool,
    /// The kernel reported read-closed or an error: a short read no longer
    /// proves the socket drained, read until EOF or `WouldBlock`.
    pub(crate) hup: bool,
    /// The socket may take more output (cleared by `WouldBlock`).
    pub(crate) writable: bool,
    /// The peer sent FIN (a read returned 0).
    pub(crate) eof: bool,
    /// Pending output passed the high-water mark: not read until it drains
    /// to the low-water mark.
    pub(crate) paused: bool,
    /// The application paused reading ([`Context::pause_reading`](crate::Context::pause_reading)).
    pub(crate) read_paused: bool,
    /// Call the handler on what `inb` holds before reading more (set when
    /// reading resumes, since input may have been left there on purpose).
    pub(crate) reservice: bool,
    /// In the reactor's ready queue (work left after a pass).
    pub(crate) queued: bool,
    /// In the reactor's flush list for this pass.
    pub(crate) dirty: bool,
}

impl<D> Conn<D> {
    pub(crate) fn new(stream: TcpStream, peer: SocketAddr, gen: u32) -> Self {
        Conn {
            stream,
            peer,
            gen,
            inb: ByteBuf::default(),
            outb: OutBuf::default(),
            data: None,
            state: State::Open,
            readable: false,
            hup: false,
            writable: true,
            eof: false,
            paused: false,
            read_paused: false,
            reservice: false,
            queued: false,
            dirty: false,
        }
    }

    pub(crate) fn is_open(&self) -> bool {
        matches!(self.state, State::Open)
    }
}
