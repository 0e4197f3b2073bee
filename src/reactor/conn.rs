//! [`Conn`]: one connection as the reactor keeps it in its slab, and the
//! owner of its lifecycle and backpressure. Its methods make every
//! transition and return what happened (`Read`, `Flushed`, `Closing`, ...);
//! the loop only acts on those outcomes and calls the handler.
//!
//! Lifecycle: `Connecting -> Open -> Closing -> Lingering -> Dead`, with
//! shortcuts (`connected` fails, `kill` from anywhere, `finish` when the
//! peer's FIN is already in). Backpressure: `queue` past high water sets
//! `paused`; `take_pause` reports it once; `take_resume` clears it at low
//! water.

use std::io::{self, Read as _};
use std::mem;
use std::net::Shutdown;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::stream::Stream;
use super::TimerId;
use crate::buf::{BufPool, ByteBuf, OutBuf};
use crate::{CloseReason, Error, PeerAddr, Result};

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
/// # use mio_selectors::{Config, Reactor};
/// # struct App;
/// # impl mio_selectors::Handler for App { type Data = (); }
/// # let mut reactor = Reactor::new(App, Config::default())?;
/// # let server = reactor.listen("127.0.0.1:0")?;
/// # let addr = reactor.local_addr(server)?;
/// # reactor.with_context(|cx| -> mio_selectors::Result<()> {
/// # let id = cx.connect(addr, ())?;
/// use mio_selectors::reactor::Idle;
/// cx.set_idle_timeout(id, Idle::Read, Some(std::time::Duration::from_secs(300)));
/// # Ok(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
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

/// Output to queue: bytes to copy, a buffer to move, or a broadcast buffer
/// to share.
pub(crate) enum Output<'a> {
    Bytes(&'a [u8]),
    Buf(&'a mut ByteBuf),
    Shared(Arc<[u8]>),
}

impl Output<'_> {
    fn len(&self) -> usize {
        match self {
            Output::Bytes(bytes) => bytes.len(),
            Output::Buf(buf) => buf.len(),
            Output::Shared(shared) => shared.len(),
        }
    }
}

/// What one [`Conn::read`] did.
#[derive(Debug)]
pub(crate) enum Read {
    /// `n` bytes were added to `inb`.
    Data(usize),
    /// `n` bytes were read and dropped: the connection is lingering.
    Discarded(usize),
    /// `WouldBlock`: nothing more until the next readable event.
    Drained,
    /// The peer sent FIN. `lingering`: we had sent ours, so it is done.
    Eof {
        lingering: bool,
    },
    /// `EINTR`: try again.
    Interrupted,
    Failed(io::Error),
}

/// What one [`Conn::flush`] did.
#[derive(Debug)]
pub(crate) enum Flushed {
    /// Dead or still connecting: nothing to write yet.
    Skipped,
    /// Output is left and the socket is full: the next writable edge resumes.
    Blocked,
    /// Everything queued is written.
    Drained,
    /// Closing and all written: FIN sent, waiting for the peer's until
    /// `until`. `requeue`: input may be waiting, read it (to discard).
    Lingering {
        until: Instant,
        requeue: bool,
    },
    /// Closing, all written, and the peer's FIN is already in: finish it.
    Done,
    Failed(io::Error),
}

/// What [`Conn::close`] asked for.
#[derive(Debug)]
pub(crate) enum Closing {
    /// Flushing now; the linger deadline is to be watched.
    Started,
    /// Still connecting with output queued: closed once connected.
    Deferred,
    /// Still connecting with nothing to send: end it now.
    Kill(CloseReason),
    /// Closing or dead already.
    Ignored,
}

/// What a linger deadline found ([`Conn::linger_due`]).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Linger {
    /// The peer is still reading what we flush: wait until then.
    Extended(Instant),
    /// No progress since the last deadline: give up, dropping this many bytes.
    GaveUp(usize),
    /// No FIN from the peer in time: finish it.
    Finished,
    /// A deadline of a state since left.
    Stale,
}

/// How an outgoing connect ended ([`Conn::connected`]).
#[derive(Debug)]
pub(crate) enum Connected {
    /// A spurious wake-up: still connecting.
    NotYet,
    /// Open now; cancel its `timer`, and close it if that was asked meanwhile.
    Made {
        timer: TimerId,
        close: Option<CloseReason>,
    },
    Failed {
        timer: TimerId,
        error: io::Error,
    },
}

/// What an event asks the loop to do for a connection ([`Conn::note`]).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Noted {
    pub(crate) read: bool,
    pub(crate) flush: bool,
}

/// Backpressure cleared ([`Conn::take_resume`]).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Resumed {
    /// Queue it for reading: readiness or held-back input is waiting.
    pub(crate) requeue: bool,
    /// Call `resume_writing` (the pause was reported and it is still open).
    pub(crate) tell: bool,
}

/// A connection: socket, peer, buffers, the application's data, and what
/// edge-triggered readiness has told us so far.
///
/// Buffers own no storage while empty (it goes back to the pool), so an idle
/// connection costs only this struct. The readiness and lifecycle fields are
/// private: only the methods below move them.
pub(crate) struct Conn<D> {
    pub(crate) stream: Stream,
    pub(crate) peer: PeerAddr,
    pub(crate) gen: u32,
    pub(crate) inb: ByteBuf,
    outb: OutBuf,
    /// `None` while `accept_wrapper` runs, and while a callback about this
    /// connection has it lent.
    pub(crate) data: Option<D>,
    /// `connection_made` was called: `connection_lost` is owed.
    pub(crate) made: bool,
    pub(crate) idle: Option<Box<IdleWatch>>,
    state: State,
    /// The socket may hold unread input (set by a readable event, cleared by
    /// `WouldBlock` or a short read).
    readable: bool,
    /// The kernel reported read-closed or an error: a short read no longer
    /// proves the socket drained, read until EOF or `WouldBlock`.
    hup: bool,
    /// The kernel reported TCP urgent data (`EPOLLPRI`). A read stops short
    /// at the urgent mark even with `SO_OOBINLINE`, so until `WouldBlock` a
    /// short read does not prove the socket drained.
    urgent: bool,
    /// The socket may take more output (cleared by `WouldBlock`).
    writable: bool,
    /// The peer sent FIN (a read returned 0).
    eof: bool,
    /// Pending output passed the high-water mark: not read until it drains
    /// to the low-water mark.
    paused: bool,
    /// `pause_writing` was called and `resume_writing` is owed.
    pause_told: bool,
    /// The application paused reading ([`Context::pause_reading`](crate::Context::pause_reading)).
    read_paused: bool,
    /// Call the handler on what `inb` holds before reading more (set when
    /// reading resumes, since input may have been left there on purpose).
    reservice: bool,
    /// [`Context::write_eof`](crate::Context::write_eof) was called: nothing more may be queued.
    write_closed: bool,
    /// FIN is to be sent once `outb` is empty.
    fin_pending: bool,
    /// Counted in the per-IP tally (accepted with `max_per_ip` set).
    pub(crate) counted: bool,
    /// In the ready queue (work left after a pass).
    pub(crate) queued: bool,
    /// In the flush list for this pass.
    pub(crate) dirty: bool,
    /// Its share of a group's limits, given back when the connection is
    /// dropped. Boxed: 8 bytes in every connection instead of 40, for a
    /// field only groups fill (the idle-memory budget is 256 B).
    pub(crate) permit: Option<Box<crate::group::Permit>>,
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
            idle: None,
            state,
            readable: false,
            hup: false,
            urgent: false,
            writable: true,
            eof: false,
            paused: false,
            pause_told: false,
            read_paused: false,
            reservice: false,
            write_closed: false,
            fin_pending: false,
            counted: false,
            queued: false,
            dirty: false,
            permit: None,
            wrap: None,
        }
    }

    /// Accepted or connected, and not closing.
    pub(crate) fn is_open(&self) -> bool {
        matches!(self.state, State::Open)
    }

    pub(crate) fn is_connecting(&self) -> bool {
        matches!(self.state, State::Connecting { .. })
    }

    pub(crate) fn is_dead(&self) -> bool {
        matches!(self.state, State::Dead(_))
    }

    /// Pending output passed high water and has not drained to low water.
    pub(crate) fn is_writing_paused(&self) -> bool {
        self.paused
    }

    /// Bytes queued and not yet written.
    pub(crate) fn pending(&self) -> usize {
        self.outb.len()
    }

    /// The reason a close asked for now would give: the peer's EOF, if it
    /// came, makes it `PeerClosed`.
    pub(crate) fn close_reason(&self) -> CloseReason {
        if self.eof {
            CloseReason::PeerClosed
        } else {
            CloseReason::Closed
        }
    }

    /// Sets the timer of a connect just started (the state is filed before
    /// the timer exists).
    pub(crate) fn set_connect_timer(&mut self, timer: TimerId) {
        if let State::Connecting { timer: t, .. } = &mut self.state {
            *t = timer;
        }
    }

    /// Takes in one readiness event.
    pub(crate) fn note(&mut self, readable: bool, writable: bool, hup: bool) -> Noted {
        self.hup |= hup;
        let mut noted = Noted::default();
        if readable {
            self.readable = true;
            noted.read = true;
        }
        if writable {
            self.writable = true;
            let closing = matches!(self.state, State::Closing { .. });
            noted.flush = !self.outb.is_empty() || closing;
        }
        noted
    }

    /// The kernel reported TCP urgent data (`EPOLLPRI`): read on to
    /// `WouldBlock`, a short read proves nothing until then.
    pub(crate) fn note_urgent(&mut self) {
        self.urgent = true;
    }

    /// How much the next read may take: a chunk, within the room left in
    /// `inb` and, while open, within the room left below the output cap, so
    /// that a handler sending back what it reads (an echo) reaches the cap
    /// paused, never past it, however close `high_water` is to it. No room
    /// for output pauses it as high water does (it resumes at low water).
    pub(crate) fn read_room(&mut self, chunk: usize, max_inb: usize, max_outb: usize) -> usize {
        // Saturating: a layer may overshoot `max_inb` by one record or message.
        let want = chunk.min(max_inb.saturating_sub(self.inb.len()));
        if !self.is_open() {
            return want; // lingering: reading to discard
        }
        let room = max_outb.saturating_sub(self.outb.len());
        if room == 0 {
            self.paused = true;
        }
        want.min(room)
    }

    /// A connecting socket became writable: the connect ended, well or
    /// badly (mio's recipe: `take_error`, then `peer_addr`).
    pub(crate) fn connected(&mut self) -> Connected {
        let outcome = match self.stream.take_error() {
            Ok(Some(e)) | Err(e) => Err(e),
            Ok(None) => self.stream.peer_addr(),
        };
        if matches!(&outcome, Err(e) if e.kind() == io::ErrorKind::NotConnected) {
            return Connected::NotYet;
        }
        let State::Connecting { timer, close } = mem::replace(&mut self.state, State::Open) else {
            return Connected::NotYet;
        };
        match outcome {
            Ok(_) => Connected::Made { timer, close },
            Err(error) => Connected::Failed { timer, error },
        }
    }

    /// Whether reading may go on: readiness is left, no EOF yet, and nothing
    /// holds reading back. A lingering connection reads on (discarding) to
    /// see the peer's FIN.
    pub(crate) fn wants_read(&self) -> bool {
        let lingering = matches!(self.state, State::Lingering { .. });
        let open = self.is_open() && !self.paused && !self.read_paused;
        self.readable && !self.eof && (open || lingering)
    }

    /// Input left in `inb` while reading or writing was paused gets a turn
    /// before more is read; `true` if the handler is to be called on it now.
    /// After EOF the handler has had its last input (no DR after ER).
    pub(crate) fn take_reservice(&mut self) -> bool {
        let unpaused = self.is_open() && !self.paused && !self.read_paused && !self.eof;
        unpaused && mem::take(&mut self.reservice) && !self.inb.is_empty()
    }

    /// Reads once, at most `want` bytes. This is the one place bytes from
    /// the socket reach `inb`: a per-connection byte transform (TLS, say)
    /// belongs here, between the socket and `inb`.
    pub(crate) fn read(&mut self, pool: &mut BufPool, want: usize, now: Instant) -> Read {
        let lingering = matches!(self.state, State::Lingering { .. });
        // Into whatever room the buffer has (up to `want`): a partial
        // message left in it does not make the buffer grow off the pool,
        // and a message shorter than the room comes in one short read.
        let spare = self.inb.spare_up_to(want, pool);
        let want = spare.len();
        match (&self.stream).read(spare) {
            Ok(0) => {
                self.eof = true;
                self.readable = false;
                self.inb.release_if_empty(pool);
                Read::Eof { lingering }
            }
            Ok(n) if lingering => Read::Discarded(n),
            Ok(n) => {
                self.inb.commit(n);
                if let Some(idle) = &mut self.idle {
                    idle.last_read = now;
                }
                // A short read proves the socket drained, unless the kernel
                // reported a hang-up that may sit behind the data, or an
                // urgent mark, where a read stops short.
                if n < want && !self.hup && !self.urgent {
                    self.readable = false;
                }
                Read::Data(n)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.readable = false;
                self.urgent = false;
                self.inb.release_if_empty(pool);
                Read::Drained
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Read::Interrupted,
            Err(e) => Read::Failed(e),
        }
    }

    /// A layer saw the peer's end (a TLS `close_notify`, a WebSocket Close
    /// frame): it counts as EOF, and the socket is read no more.
    pub(crate) fn set_eof(&mut self) {
        self.eof = true;
    }

    /// After the handler had `inb` (holding `before` bytes then): input of a
    /// connection that closed is dropped, storage goes back to the pool, and
    /// `true` means the handler is stuck (a full `inb` it consumed nothing
    /// of, and not held back on purpose): the input-overflow policy.
    pub(crate) fn after_input(
        &mut self,
        pool: &mut BufPool,
        before: usize,
        max_inb: usize,
    ) -> bool {
        if !self.is_open() {
            // Nobody will consume the rest, and a full `inb` would keep the
            // linger phase from reading to FIN.
            self.inb.clear();
        }
        self.inb.release_if_empty(pool);
        let stuck = self.inb.len() >= max_inb && self.inb.len() == before;
        stuck && self.is_open() && !self.read_paused && !self.paused
    }

    /// Queues output, or refuses it. This is the one place output enters
    /// `outb`: a per-connection byte transform (TLS, say) belongs here.
    ///
    /// `Ok(false)` for nothing to queue. Past `max` nothing is queued and
    /// [`Error::OutputOverflow`] is returned: the caller ends the
    /// connection. At `high` or more pending, writing is paused (and reading
    /// stops) until it drains.
    pub(crate) fn queue(
        &mut self,
        data: Output<'_>,
        pool: &mut BufPool,
        max: usize,
        high: usize,
    ) -> Result<bool> {
        if self.wrap.is_some() {
            return self.queue_through_layer(data, pool, max, high);
        }
        self.queue_raw(data, pool, max, high)
    }

    /// Whether output may still be queued: the connection is open (or
    /// connecting with no close asked for) and its write side not shut.
    pub(crate) fn accepts_output(&self) -> Result<()> {
        if !matches!(
            self.state,
            State::Open | State::Connecting { close: None, .. }
        ) {
            return Err(Error::NoSuchConnection);
        }
        if self.write_closed {
            return Err(Error::WriteClosed);
        }
        Ok(())
    }

    /// Queues bytes already in the wire's terms (a layer's output), with the
    /// same checks, cap and high-water mark as any output.
    pub(crate) fn queue_raw(
        &mut self,
        data: Output<'_>,
        pool: &mut BufPool,
        max: usize,
        high: usize,
    ) -> Result<bool> {
        self.accepts_output()?;
        let len = data.len();
        if len == 0 {
            return Ok(false);
        }
        if self.outb.len() + len > max {
            return Err(Error::OutputOverflow);
        }
        match data {
            Output::Bytes(bytes) => self.outb.extend(bytes, pool),
            Output::Buf(buf) => self.outb.append(buf, pool),
            Output::Shared(shared) => self.outb.push_shared(shared, pool),
        }
        if self.outb.len() >= high {
            self.paused = true;
        }
        Ok(true)
    }

    /// Writes pending output until done or `WouldBlock` (or a short write),
    /// then moves a graceful close along: FIN, then linger until `linger`
    /// from `now`.
    pub(crate) fn flush(&mut self, pool: &mut BufPool, now: Instant, linger: Duration) -> Flushed {
        if matches!(self.state, State::Dead(_) | State::Connecting { .. }) {
            return Flushed::Skipped;
        }
        while self.writable && !self.outb.is_empty() {
            match self.outb.write_to(&self.stream) {
                Ok((0, _)) => {
                    let e = io::Error::new(io::ErrorKind::WriteZero, "write returned 0");
                    return Flushed::Failed(e);
                }
                Ok((n, offered)) => {
                    self.outb.consume(n, pool);
                    if let Some(idle) = &mut self.idle {
                        idle.last_write = now;
                    }
                    // A short write means the send buffer is full (the kernel
                    // set SOCK_NOSPACE and will report writable on the next
                    // edge, as tokio relies on too): asking again now would
                    // only earn a WouldBlock.
                    if n < offered {
                        self.writable = false;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.writable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Flushed::Failed(e),
            }
        }
        if !self.outb.is_empty() {
            return Flushed::Blocked;
        }
        if mem::take(&mut self.fin_pending) {
            // `write_eof`: everything queued before it is out, now FIN.
            let _ = self.stream.shutdown(Shutdown::Write);
        }
        if !matches!(self.state, State::Closing { .. }) {
            return Flushed::Drained;
        }
        // All sent: FIN, then wait for the peer's FIN (see `State::Lingering`).
        let _ = self.stream.shutdown(Shutdown::Write);
        if self.eof {
            return Flushed::Done;
        }
        let State::Closing { reason, .. } = mem::replace(&mut self.state, State::Open) else {
            unreachable!("matched above")
        };
        let until = later(now, linger);
        self.state = State::Lingering { reason, until };
        Flushed::Lingering {
            until,
            requeue: self.readable,
        }
    }

    /// `true` once per pause, when it is to be reported (`pause_writing`).
    pub(crate) fn take_pause(&mut self) -> bool {
        let tell = self.paused && !self.pause_told && self.is_open();
        self.pause_told |= tell;
        tell
    }

    /// Clears the pause once output is down to `low`.
    pub(crate) fn take_resume(&mut self, low: usize) -> Option<Resumed> {
        if !self.paused || self.outb.len() > low {
            return None;
        }
        self.paused = false;
        // Input held back while output was backed up gets its turn too.
        self.reservice |= !self.inb.is_empty();
        let tell = mem::take(&mut self.pause_told) && self.is_open();
        let requeue = self.readable || self.reservice;
        Some(Resumed { requeue, tell })
    }

    /// The application stops reading.
    pub(crate) fn pause_reading(&mut self) {
        self.read_paused = true;
    }

    /// The application reads again; `true` if it is to be queued (its
    /// held-back input is offered first).
    pub(crate) fn resume_reading(&mut self) -> bool {
        let was = mem::take(&mut self.read_paused);
        self.reservice |= was;
        was
    }
}

mod close;
mod wrapped;

#[cfg(test)]
mod tests;
