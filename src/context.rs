//! [`Context`]: what a [`Handler`](crate::Handler) callback may do to the
//! reactor, and `Core`, the reactor state behind it.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use slab::Slab;

use crate::buffer::{BufPool, ByteBuf};
use crate::conn::{Conn, State};
use crate::{CloseReason, Config, ConnId, Error, Handle, InBuf, Result, TimerId};

/// The reactor state that callbacks may touch. Every list holds `ConnId`s,
/// never bare slab keys, so an entry outliving its connection is ignored.
pub(crate) struct Core<D> {
    pub(crate) conns: Slab<Conn<D>>,
    pub(crate) pool: BufPool,
    pub(crate) config: Config,
    pub(crate) handle: Handle,
    /// Connections with readable work left for the next pass.
    pub(crate) ready: Vec<ConnId>,
    /// Connections to flush at the end of this pass.
    pub(crate) dirty: Vec<ConnId>,
    /// Connections to deregister, drop and report.
    pub(crate) dead: Vec<ConnId>,
    /// Graceful-close deadlines, in order (they all use `config.linger`).
    pub(crate) linger: VecDeque<(Instant, ConnId)>,
    /// Timers by deadline, then by sequence number (which makes keys unique).
    pub(crate) timers: BTreeMap<(Instant, u64), (Option<ConnId>, u64)>,
    pub(crate) timer_seq: u64,
    pub(crate) shutting_down: bool,
    pub(crate) next_gen: u32,
}

impl<D> Core<D> {
    pub(crate) fn get(&self, id: ConnId) -> Option<&Conn<D>> {
        self.conns.get(id.key()).filter(|c| c.gen == id.gen())
    }

    pub(crate) fn get_mut(&mut self, id: ConnId) -> Option<&mut Conn<D>> {
        self.conns.get_mut(id.key()).filter(|c| c.gen == id.gen())
    }

    /// The connection and the pool at once (disjoint borrows).
    pub(crate) fn conn_and_pool(&mut self, id: ConnId) -> Option<(&mut Conn<D>, &mut BufPool)> {
        let conn = self.conns.get_mut(id.key()).filter(|c| c.gen == id.gen())?;
        Some((conn, &mut self.pool))
    }

    pub(crate) fn mark_dirty(&mut self, id: ConnId) {
        if let Some(conn) = self.get_mut(id) {
            if !conn.dirty {
                conn.dirty = true;
                self.dirty.push(id);
            }
        }
    }

    pub(crate) fn queue_ready(&mut self, id: ConnId) {
        if let Some(conn) = self.get_mut(id) {
            if !conn.queued {
                conn.queued = true;
                self.ready.push(id);
            }
        }
    }

    /// Ends a connection now: pending output is dropped.
    pub(crate) fn kill(&mut self, id: ConnId, reason: CloseReason) {
        let Some((conn, pool)) = self.conn_and_pool(id) else {
            return;
        };
        if matches!(conn.state, State::Dead(_)) {
            return;
        }
        conn.outb.clear(pool);
        conn.state = State::Dead(reason);
        self.dead.push(id);
    }

    /// Turns a closing connection into a dead one, keeping its reason.
    pub(crate) fn finish(&mut self, id: ConnId) {
        let Some(conn) = self.get_mut(id) else {
            return;
        };
        let reason = match std::mem::replace(&mut conn.state, State::Open) {
            State::Closing(reason) | State::Lingering(reason) => reason,
            other => {
                conn.state = other;
                return;
            }
        };
        self.kill(id, reason);
    }

    /// Starts a graceful close: flush, FIN, linger; bounded by `config.linger`.
    pub(crate) fn close_gracefully(&mut self, id: ConnId, reason: CloseReason) {
        let deadline = Instant::now() + self.config.linger;
        let Some(conn) = self.get_mut(id) else {
            return;
        };
        if !conn.is_open() {
            return;
        }
        conn.state = State::Closing(reason);
        self.linger.push_back((deadline, id));
        // The flush step sends FIN once `outb` is empty.
        self.mark_dirty(id);
    }

    /// Queues `data` for `id`, or closes it if its output would pass the cap.
    fn push_output(&mut self, id: ConnId, data: Output<'_>) -> Result<()> {
        let (max, high) = (self.config.max_outb, self.config.high_water);
        let (conn, pool) = self.conn_and_pool(id).ok_or(Error::NoSuchConnection)?;
        if !conn.is_open() {
            return Err(Error::NoSuchConnection);
        }
        let len = match &data {
            Output::Bytes(bytes) => bytes.len(),
            Output::Buf(buf) => buf.len(),
            Output::Shared(shared) => shared.len(),
        };
        if len == 0 {
            return Ok(());
        }
        if conn.outb.len() + len > max {
            log::info!(
                "{id} ({}): pending output would pass {max} bytes; closing",
                conn.peer
            );
            self.kill(id, CloseReason::OutputOverflow);
            return Err(Error::OutputOverflow);
        }
        match data {
            Output::Bytes(bytes) => conn.outb.extend(bytes, pool),
            Output::Buf(buf) => conn.outb.append(buf, pool),
            Output::Shared(shared) => conn.outb.push_shared(shared),
        }
        if conn.outb.len() >= high {
            conn.paused = true;
        }
        self.mark_dirty(id);
        Ok(())
    }
}

/// Output for `push_output`: bytes to copy, a buffer to move, or a
/// broadcast buffer to share.
enum Output<'a> {
    Bytes(&'a [u8]),
    Buf(&'a mut ByteBuf),
    Shared(Arc<[u8]>),
}

/// What a callback may do: queue output to any connection, close one, look
/// at its data, stop the reactor. Output is written at the end of the loop
/// pass, so several `send`s to one connection cost one `write`.
///
/// ```
/// use mio_selectors::{ConnId, Context, Handler, InBuf};
///
/// /// Sends every chunk it receives to every other connection.
/// struct Relay;
/// impl Handler for Relay {
///     type Data = ();
///     fn accept_wrapper(&mut self, _: &mut Context<'_, ()>, _: ConnId, _: &std::net::SocketAddr) -> Option<()> {
///         Some(())
///     }
///     fn service_connection(&mut self, cx: &mut Context<'_, ()>, from: ConnId, inb: &mut InBuf) {
///         let others: Vec<ConnId> = cx.ids().filter(|&id| id != from).collect();
///         for id in others {
///             let _ = cx.send(id, inb); // a slow receiver is closed, the rest go on
///         }
///         inb.clear();
///     }
/// }
/// ```
pub struct Context<'a, D> {
    pub(crate) core: &'a mut Core<D>,
}

impl<D> Context<'_, D> {
    /// Queues `data` to be written to `id` (Python: `data.outb += ...`).
    ///
    /// # Errors
    ///
    /// - [`Error::NoSuchConnection`]: `id` is closed or closing;
    /// - [`Error::OutputOverflow`]: its pending output would pass
    ///   [`Config::max_outb`]; the connection has been closed with
    ///   [`CloseReason::OutputOverflow`] and its pending output dropped.
    ///
    /// ```
    /// # fn f(cx: &mut mio_selectors::Context<'_, ()>, id: mio_selectors::ConnId) -> mio_selectors::Result<()> {
    /// cx.send(id, b"hello\n")?;
    /// # Ok(()) }
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
    /// # fn f(cx: &mut mio_selectors::Context<'_, ()>, id: mio_selectors::ConnId, inb: &mut mio_selectors::InBuf) {
    /// let _ = cx.send_from(id, inb);
    /// # }
    /// ```
    pub fn send_from(&mut self, id: ConnId, inb: &mut InBuf) -> Result<()> {
        self.core.push_output(id, Output::Buf(&mut inb.0))
    }

    /// Queues `data` to every open connection but `except`, sharing one
    /// buffer among them instead of copying it into each. Order holds: every
    /// receiver gets broadcasts in the order they were made. A receiver
    /// whose pending output would pass [`Config::max_outb`] is closed with
    /// [`CloseReason::OutputOverflow`]; the others are not delayed. Returns
    /// how many connections it was queued to.
    ///
    /// ```
    /// # fn f(cx: &mut mio_selectors::Context<'_, ()>, from: mio_selectors::ConnId) {
    /// let n = cx.broadcast(b"<alice> hi\n", Some(from));
    /// # }
    /// ```
    pub fn broadcast(&mut self, data: &[u8], except: Option<ConnId>) -> usize {
        if data.is_empty() {
            return 0;
        }
        let shared: Arc<[u8]> = Arc::from(data);
        let mut sent = 0;
        for key in 0..self.core.conns.capacity() {
            let Some(conn) = self.core.conns.get(key) else {
                continue;
            };
            let id = ConnId::new(key, conn.gen);
            if Some(id) == except || !conn.is_open() || conn.data.is_none() {
                continue;
            }
            if self
                .core
                .push_output(id, Output::Shared(shared.clone()))
                .is_ok()
            {
                sent += 1;
            }
        }
        sent
    }

    /// Stops reading `id` until [`resume_reading`](Self::resume_reading):
    /// TCP then pushes back on the peer, and nothing it sent is lost. Input
    /// already in its `inb` stays there.
    ///
    /// ```
    /// # fn f(cx: &mut mio_selectors::Context<'_, ()>, id: mio_selectors::ConnId) {
    /// cx.pause_reading(id); // over its rate budget
    /// cx.call_later(std::time::Duration::from_millis(10), Some(id), 1);
    /// # }
    /// ```
    pub fn pause_reading(&mut self, id: ConnId) {
        if let Some(conn) = self.core.get_mut(id) {
            conn.read_paused = true;
        }
    }

    /// Reads `id` again after [`pause_reading`](Self::pause_reading). The
    /// handler's `service_connection` is called first with what its `inb`
    /// still holds, even if nothing new arrives.
    ///
    /// ```
    /// # fn f(cx: &mut mio_selectors::Context<'_, ()>, id: mio_selectors::ConnId) {
    /// cx.resume_reading(id);
    /// # }
    /// ```
    pub fn resume_reading(&mut self, id: ConnId) {
        if let Some(conn) = self.core.get_mut(id) {
            if conn.read_paused {
                conn.read_paused = false;
                conn.reservice = true;
                self.core.queue_ready(id);
            }
        }
    }

    /// Calls [`Handler::on_timer`](crate::Handler::on_timer) with `conn`
    /// and `tag` after `delay` (asyncio: `loop.call_later`). A timer for a
    /// connection that has closed by then is dropped silently. Timers are
    /// folded into the poll timeout: no thread.
    ///
    /// ```
    /// # fn f(cx: &mut mio_selectors::Context<'_, ()>, id: mio_selectors::ConnId) {
    /// const IDLE: u64 = 1;
    /// let timer = cx.call_later(std::time::Duration::from_secs(60), Some(id), IDLE);
    /// cx.cancel_timer(timer);
    /// # }
    /// ```
    pub fn call_later(&mut self, delay: Duration, conn: Option<ConnId>, tag: u64) -> TimerId {
        let core = &mut *self.core;
        let key = (Instant::now() + delay, core.timer_seq);
        core.timer_seq += 1;
        core.timers.insert(key, (conn, tag));
        TimerId(key.0, key.1)
    }

    /// Cancels a timer; `false` if it already fired or was cancelled.
    ///
    /// ```
    /// # fn f(cx: &mut mio_selectors::Context<'_, ()>) {
    /// let t = cx.call_later(std::time::Duration::from_secs(1), None, 0);
    /// assert!(cx.cancel_timer(t));
    /// assert!(!cx.cancel_timer(t));
    /// # }
    /// ```
    pub fn cancel_timer(&mut self, timer: TimerId) -> bool {
        self.core.timers.remove(&(timer.0, timer.1)).is_some()
    }

    /// Closes `id` gracefully: stop reading, write what is pending, send FIN,
    /// then close (bounded by [`Config::linger`]). Python: `sel.unregister(sock); sock.close()`,
    /// without losing output. Unknown or closing ids are ignored.
    ///
    /// ```
    /// # fn f(cx: &mut mio_selectors::Context<'_, ()>, id: mio_selectors::ConnId) {
    /// let _ = cx.send(id, b"bye\n");
    /// cx.close(id); // "bye" is still delivered
    /// # }
    /// ```
    pub fn close(&mut self, id: ConnId) {
        let reason = match self.core.get(id) {
            Some(conn) if conn.eof => CloseReason::PeerClosed,
            _ => CloseReason::Closed,
        };
        self.core.close_gracefully(id, reason);
    }

    /// Closes `id` now, dropping pending output. Unknown ids are ignored.
    ///
    /// ```
    /// # fn f(cx: &mut mio_selectors::Context<'_, ()>, id: mio_selectors::ConnId) {
    /// cx.abort(id);
    /// # }
    /// ```
    pub fn abort(&mut self, id: ConnId) {
        self.core.kill(id, CloseReason::Closed);
    }

    /// The data of `id` (Python: `key.data`); `None` if `id` is gone, or
    /// during its own `accept_wrapper`.
    ///
    /// ```
    /// # fn f(cx: &mut mio_selectors::Context<'_, String>, id: mio_selectors::ConnId) {
    /// if let Some(name) = cx.data(id) { println!("{name}") }
    /// # }
    /// ```
    pub fn data(&self, id: ConnId) -> Option<&D> {
        self.core.get(id)?.data.as_ref()
    }

    /// The data of `id`, open to change.
    ///
    /// ```
    /// # fn f(cx: &mut mio_selectors::Context<'_, u64>, id: mio_selectors::ConnId) {
    /// if let Some(count) = cx.data_mut(id) { *count += 1 }
    /// # }
    /// ```
    pub fn data_mut(&mut self, id: ConnId) -> Option<&mut D> {
        self.core.get_mut(id)?.data.as_mut()
    }

    /// The peer's address (Python: `data.addr`).
    ///
    /// ```
    /// # fn f(cx: &mut mio_selectors::Context<'_, ()>, id: mio_selectors::ConnId) {
    /// if let Some(addr) = cx.peer_addr(id) { println!("{addr}") }
    /// # }
    /// ```
    pub fn peer_addr(&self, id: ConnId) -> Option<SocketAddr> {
        Some(self.core.get(id)?.peer)
    }

    /// Whether `id` is open: accepted, and not closing or closed.
    ///
    /// ```
    /// # fn f(cx: &mut mio_selectors::Context<'_, ()>, id: mio_selectors::ConnId) {
    /// cx.close(id);
    /// assert!(!cx.is_open(id));
    /// # }
    /// ```
    pub fn is_open(&self, id: ConnId) -> bool {
        self.core.get(id).is_some_and(|c| c.is_open())
    }

    /// Bytes queued for `id` and not yet written (Python: `len(data.outb)`).
    ///
    /// ```
    /// # fn f(cx: &mut mio_selectors::Context<'_, ()>, id: mio_selectors::ConnId) {
    /// assert!(cx.pending_output(id).unwrap_or(0) <= mio_selectors::Config::default().max_outb);
    /// # }
    /// ```
    pub fn pending_output(&self, id: ConnId) -> Option<usize> {
        Some(self.core.get(id)?.outb.len())
    }

    /// Every open connection (not closing), in slab order.
    ///
    /// ```
    /// # fn f(cx: &mut mio_selectors::Context<'_, ()>) {
    /// let ids: Vec<_> = cx.ids().collect();
    /// for id in ids { let _ = cx.send(id, b"hi all\n"); }
    /// # }
    /// ```
    pub fn ids(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.core
            .conns
            .iter()
            .filter(|(_, c)| c.is_open() && c.data.is_some())
            .map(|(key, c)| ConnId::new(key, c.gen))
    }

    /// How many connections the reactor holds, closing ones included.
    ///
    /// ```
    /// # fn f(cx: &mut mio_selectors::Context<'_, ()>) {
    /// println!("{} connections", cx.connection_count());
    /// # }
    /// ```
    pub fn connection_count(&self) -> usize {
        self.core.conns.len()
    }

    /// Asks the reactor to stop, as [`Handle::stop`] does.
    ///
    /// ```
    /// # fn f(cx: &mut mio_selectors::Context<'_, ()>) {
    /// cx.stop();
    /// # }
    /// ```
    pub fn stop(&self) {
        self.core.handle.stop();
    }

    /// A handle for other threads.
    ///
    /// ```
    /// # fn f(cx: &mut mio_selectors::Context<'_, ()>) {
    /// let handle = cx.handle();
    /// std::thread::spawn(move || handle.stop());
    /// # }
    /// ```
    pub fn handle(&self) -> Handle {
        self.core.handle.clone()
    }

    /// Whether the reactor is stopping (after [`Handle::stop`]).
    ///
    /// ```
    /// # fn f(cx: &mut mio_selectors::Context<'_, ()>) {
    /// if cx.is_shutting_down() { return }
    /// # }
    /// ```
    pub fn is_shutting_down(&self) -> bool {
        self.core.shutting_down
    }
}
