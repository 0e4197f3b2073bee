//! [`Conn`]: one connection as the reactor keeps it in its slab.

use std::time::{Duration, Instant};

use super::stream::Stream;
use super::TimerId;
use crate::buf::ByteBuf;
use crate::buf::OutBuf;
use crate::{CloseReason, PeerAddr};

/// `now + d`, or a time a century away if that overflows (`Duration::MAX`
/// is a fair way to say "never").
pub(crate) fn later(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}

/// Where a connection is in its life.
#[derive(Debug)]
pub(crate) enum State {
    /// An outgoing connect is under way, with its timeout, and the close
    /// asked for meanwhile (done once connected, so queued output goes out).
    Connecting {
        timer: TimerId,
        close: Option<CloseReason>,
    },
    Open,
    /// Closing gracefully: flush `outb`, then send FIN. `unsent` is what was
    /// pending at the last deadline: as long as the peer keeps reading, the
    /// flush goes on; a deadline with no progress gives up.
    Closing {
        reason: CloseReason,
        unsent: usize,
    },
    /// FIN sent; discarding input until the peer's FIN or `until`, so that
    /// closing with unread input cannot turn into a reset that destroys
    /// output the peer has not read yet.
    Lingering {
        reason: CloseReason,
        until: Instant,
    },
    /// Done: waiting to be deregistered, dropped and reported.
    Dead(CloseReason),
}

/// Which silence an idle timeout ([`Context::set_idle_timeout`](crate::Context::set_idle_timeout)) watches.
///
/// ```
/// # fn f(cx: &mut mio_selectors::Context<'_, ()>, id: mio_selectors::ConnId) {
/// use mio_selectors::reactor::Idle;
/// cx.set_idle_timeout(id, Idle::Read, Some(std::time::Duration::from_secs(300)));
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idle {
    /// Nothing read for the timeout.
    Read,
    /// Nothing written for the timeout.
    Write,
    /// Nothing read and nothing written for the timeout.
    Both,
}

/// An idle timeout and the activity it watches. Boxed in `Conn`: most
/// connections have none, and an idle connection should stay small.
#[derive(Debug)]
pub(crate) struct IdleWatch {
    pub(crate) kind: Idle,
    pub(crate) timeout: Duration,
    pub(crate) last_read: Instant,
    pub(crate) last_write: Instant,
    pub(crate) timer: TimerId,
}

impl IdleWatch {
    /// When the connection counts as idle, given its activity so far.
    pub(crate) fn deadline(&self) -> Instant {
        let last = match self.kind {
            Idle::Read => self.last_read,
            Idle::Write => self.last_write,
            Idle::Both => self.last_read.max(self.last_write),
        };
        later(last, self.timeout)
    }
}

/// A connection: socket, peer, buffers, the application's data, and what
/// edge-triggered readiness has told us so far.
///
/// Buffers own no storage while empty (it goes back to the pool), so an idle
/// connection costs only this struct.
pub(crate) struct Conn<D> {
    pub(crate) stream: Stream,
    pub(crate) peer: PeerAddr,
    pub(crate) gen: u32,
    pub(crate) inb: ByteBuf,
    pub(crate) outb: OutBuf,
    /// `None` while `accept_wrapper` runs, and while a callback about this
    /// connection has it lent.
    pub(crate) data: Option<D>,
    /// `connection_made` was called: `connection_lost` is owed.
    pub(crate) made: bool,
    /// `pause_writing` was called and `resume_writing` is owed.
    pub(crate) pause_told: bool,
    pub(crate) state: State,
    pub(crate) idle: Option<Box<IdleWatch>>,
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
    /// [`Context::write_eof`](crate::Context::write_eof) was called: nothing more may be queued.
    pub(crate) write_closed: bool,
    /// FIN is to be sent once `outb` is empty.
    pub(crate) fin_pending: bool,
    /// Counted in the reactor's per-IP tally (accepted with `max_per_ip` set).
    pub(crate) counted: bool,
    /// In the reactor's ready queue (work left after a pass).
    pub(crate) queued: bool,
    /// In the reactor's flush list for this pass.
    pub(crate) dirty: bool,
    /// A protocol layer (TLS, WebSocket) between the socket and `inb`/`outb`.
    pub(crate) wrap: Option<Box<super::wrap::Wrapped>>,
}

impl<D> Conn<D> {
    pub(crate) fn new(stream: Stream, peer: PeerAddr, gen: u32, state: State) -> Self {
        Conn {
            stream,
            peer,
            gen,
            inb: ByteBuf::default(),
            outb: OutBuf::default(),
            data: None,
            made: false,
            pause_told: false,
            state,
            idle: None,
            readable: false,
            hup: false,
            writable: true,
            eof: false,
            paused: false,
            read_paused: false,
            reservice: false,
            write_closed: false,
            fin_pending: false,
            counted: false,
            queued: false,
            dirty: false,
            wrap: None,
        }
    }

    pub(crate) fn is_open(&self) -> bool {
        matches!(self.state, State::Open)
    }
}
