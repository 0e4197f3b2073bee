//! One pass of the reactor loop, [`Reactor::turn`], and its steps (step 5,
//! accept, is `accept.rs`; step 7, deadlines, is `expire.rs`). Start
//! reading here. Only the pass steps (and `accept.rs`, `expire.rs`) call
//! the [`Handler`], and only through [`call`](Reactor::call) (and
//! [`lend`](Reactor::lend), which lends one connection's data and input for
//! the callbacks about it); the state they work on acts through outcomes
//! (`conn.rs`, `conns.rs`, `timers.rs`, `core.rs`) and never calls back.
//!
//! Seams kept on purpose: per-connection bytes pass `Conn::read` (socket to
//! `inb`) and `Conn::queue` (to `outb`), the places a TLS or WebSocket
//! layer goes; and every outcome a pass acts on is matched in one function
//! (`read_conn`, `flush`, `reap`, `serve_udp`, and `accept_from` in
//! `accept.rs`, step 5), the places a per-reactor counter goes.

use std::io;
use std::mem;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::Events;

use super::conn::{later, Connected, Flushed, Read};
use super::endpoint::Endpoint;
use super::event_loop::Reactor;
use super::id::{ENDPOINT_BIT, SIGNALS, WAKER};
use super::{SourceId, UdpId};
use crate::metrics::scrape;
use crate::{CloseReason, ConnId, Context, EventMask, Handler, InBuf, Result};

/// Datagrams read per UDP socket per pass before the other work gets a turn.
const UDP_BATCH: usize = 64;
/// Room for the largest UDP datagram.
pub(super) const UDP_MAX: usize = 65_536;

impl<H: Handler> Reactor<H> {
    /// One pass of the loop; `true` once shutdown has finished. The steps
    /// are numbered as in `docs/ARCHITECTURE.md`.
    pub(super) fn turn(&mut self) -> Result<bool> {
        self.wait()?; // 1
        self.note_events(); // 2: no I/O, no callbacks
        self.take_mail(); // 2b: in a group, what the other reactors sent
        if self.core.handle.is_stopping() && !self.core.shutting_down {
            self.begin_shutdown(); // 3
        }
        self.dispatch(); // 4: tasks, finished connects, fd sources
        self.accept_all(); // 5
        self.read_ready(); // 6: connections, then UDP
        self.serve_udp();
        self.expire(); // 7: linger deadlines, timers, shutdown, accept backoff
        self.settle(); // 8: flush, then reap
        self.post_mail(); // 9: in a group, this pass's batches to the others
        self.core.pool.trim(self.core.now); // spares a burst left behind
        Ok(self.core.shutting_down && self.core.conns.is_empty())
    }

    /// The one place the loop calls the handler: with a [`Context`] on the
    /// core.
    pub(super) fn call<R>(&mut self, f: impl FnOnce(&mut H, &mut Context<'_, H::Data>) -> R) -> R {
        let cx = &mut Context {
            core: &mut self.core,
        };
        f(&mut self.handler, cx)
    }

    /// Calls the handler about `id` with its data and input buffer lent
    /// out (so that it may also send to `id`), then puts them back. A
    /// connection with no data (refused, or not made yet) is not called
    /// about.
    pub(super) fn lend(
        &mut self,
        id: ConnId,
        f: impl FnOnce(&mut H, &mut Context<'_, H::Data>, &mut H::Data, &mut InBuf),
    ) {
        let Some(conn) = self.core.conns.get_mut(id) else {
            return;
        };
        let Some(mut data) = conn.data.take() else {
            return;
        };
        let mut inb = InBuf(mem::take(&mut conn.inb));
        self.call(|h, cx| f(h, cx, &mut data, &mut inb));
        // The slot cannot have been reused: removal happens only in `reap`.
        if let Some(conn) = self.core.conns.get_mut(id) {
            conn.data = Some(data);
            conn.inb = inb.0;
        }
    }

    // -- 1, 2: wait and note -------------------------------------------------

    /// `epoll_wait`, without blocking if work is queued, else until the
    /// nearest deadline; then reads the clock once for the pass.
    fn wait(&mut self) -> Result<()> {
        let timeout = self.poll_timeout();
        match self.poll_events(timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
        self.core.now = Instant::now();
        Ok(())
    }

    /// `epoll_wait` for up to `timeout`; with [`Config::busy_poll`](crate::Config::busy_poll),
    /// first polls without blocking for up to that long (never past
    /// `timeout`), so that a reply that comes soon is seen without a sleep
    /// and a wake-up.
    fn poll_events(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let spin = match self.core.config.busy_poll {
            Some(spin) if timeout != Some(Duration::ZERO) => spin,
            _ => return self.poll.poll(&mut self.events, timeout),
        };
        let spin = timeout.map_or(spin, |t| spin.min(t));
        let start = Instant::now();
        loop {
            self.poll.poll(&mut self.events, Some(Duration::ZERO))?;
            if !self.events.is_empty() {
                return Ok(());
            }
            let spent = start.elapsed();
            if spent >= spin {
                let rest = timeout.map(|t| t.saturating_sub(spent));
                return self.poll.poll(&mut self.events, rest);
            }
            std::hint::spin_loop();
        }
    }

    fn poll_timeout(&self) -> Option<Duration> {
        let accepting = self.accept_paused_until.is_none() && !self.core.shutting_down;
        let due = self.core.endpoints.iter().any(|e| match e {
            Endpoint::Listener(l) => l.ready && accepting,
            Endpoint::Udp(u) => u.readable,
            Endpoint::Fd { .. } => false,
        });
        if self.core.conns.has_work() || due || self.mail_waiting() {
            return Some(Duration::ZERO);
        }
        let deadline = [
            self.core.flushing.front().map(|&(d, _)| d),
            self.core.linger.front().map(|&(d, _)| d),
            self.core.timers.next_deadline(),
            self.accept_paused_until,
            self.shutdown_deadline,
            self.core.pool.next_trim(),
            self.publish_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()?;
        // mio rounds a timeout up to whole milliseconds, so waking early
        // cannot spin until the deadline.
        Some(deadline.saturating_duration_since(Instant::now()))
    }

    /// Records what each event said. Nothing is read, written or called
    /// here: the steps after act on it.
    fn note_events(&mut self) {
        let events = mem::replace(&mut self.events, Events::with_capacity(0));
        let mut n_events = 0;
        for event in events.iter() {
            n_events += 1;
            let failed = event.is_error();
            let readable = event.is_readable() || event.is_read_closed() || failed;
            let writable = event.is_writable() || event.is_write_closed() || failed;
            match event.token() {
                WAKER => self.tasks_pending = true,
                SIGNALS => self.on_signals(),
                t if t.0 & ENDPOINT_BIT != 0 => {
                    let mask = EventMask::from_mio(event);
                    self.note_endpoint(t.0 & !ENDPOINT_BIT, readable, writable, mask);
                }
                t => {
                    let hup = event.is_read_closed() || failed;
                    let id = ConnId(t.0);
                    if event.is_priority() {
                        // An urgent mark: see `Conn::note_urgent`.
                        if let Some(conn) = self.core.conns.get_mut(id) {
                            conn.note_urgent();
                        }
                    }
                    self.note_conn(id, readable, writable, hup);
                }
            }
        }
        self.events = events;
        self.core.metrics.on_pass(n_events);
    }

    fn note_endpoint(&mut self, raw: usize, readable: bool, writable: bool, mask: EventMask) {
        match self.core.endpoints.get_mut(raw) {
            Some(Endpoint::Listener(l)) => l.ready = true,
            Some(Endpoint::Udp(u)) => {
                u.readable |= readable;
                u.writable |= writable;
            }
            Some(Endpoint::Fd { events, ready, .. }) => *ready |= mask & *events,
            None => log::trace!("stale event for endpoint {raw:#x} ignored"),
        }
    }

    fn note_conn(&mut self, id: ConnId, readable: bool, writable: bool, hup: bool) {
        let Some((conn, lists)) = self.core.conns.entry(id) else {
            log::trace!("stale event for {id} ignored");
            return;
        };
        if conn.is_connecting() {
            conn.note(false, false, hup);
            if !writable {
                return;
            }
            self.connected.push(id); // the connect ended: see `dispatch`
        }
        let noted = conn.note(readable, writable, hup);
        if noted.read {
            lists.queue_ready(id, conn);
        }
        if noted.flush {
            lists.mark_dirty(id, conn);
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

    // -- 3: shutdown ---------------------------------------------------------

    fn begin_shutdown(&mut self) {
        log::info!("shutting down");
        // In a group: every reactor stops; what waits in the listeners'
        // queues is taken in first (see `group.rs`).
        self.drain_listeners();
        self.core.shutting_down = true;
        // Stop accepting and serving datagrams; dropping a Unix listener
        // removes its socket file.
        for raw in self.core.endpoints.ids() {
            let registry = &self.core.registry;
            match self.core.endpoints.remove(raw) {
                Some(Endpoint::Listener(mut l)) => drop(registry.deregister(l.sock.source())),
                Some(Endpoint::Udp(mut u)) => {
                    u.flush();
                    drop(registry.deregister(&mut u.sock))
                }
                Some(Endpoint::Fd { fd, .. }) => drop(registry.deregister(&mut SourceFd(&fd))),
                None => {}
            }
        }
        self.call(|h, cx| h.shutting_down(cx));
        for id in self.core.conns.all_ids() {
            self.core.close_gracefully(id, CloseReason::Shutdown);
        }
        // (A second signal can only come later, and moves this deadline to now.)
        let timeout = self.core.config.shutdown_timeout;
        self.shutdown_deadline = Some(later(Instant::now(), timeout));
    }

    // -- 4: what the events asked for that is not reading --------------------

    /// Runs tasks from other threads, finishes the connects that ended, and
    /// reports ready fd sources.
    fn dispatch(&mut self) {
        if mem::take(&mut self.tasks_pending) {
            for task in self.core.handle.take_tasks() {
                self.call(|_, cx| task(cx));
            }
        }
        for id in mem::take(&mut self.connected) {
            self.connect_done(id);
        }
        for slot in 0..self.core.endpoints.slots() {
            if let Some((raw, Endpoint::Fd { ready, .. })) = self.core.endpoints.slot_mut(slot) {
                let mask = mem::replace(ready, EventMask::EMPTY);
                if !mask.is_empty() {
                    self.source_ready(SourceId(raw), mask);
                }
            }
        }
    }

    /// A connecting socket became writable: the connect ended, well or badly.
    fn connect_done(&mut self, id: ConnId) {
        let Some(conn) = self.core.conns.get_mut(id) else {
            return;
        };
        let outcome = conn.connected();
        log::debug!("{id}: connect to {}: {outcome:?}", conn.peer);
        match outcome {
            Connected::NotYet => {}
            Connected::Made { timer, close } if conn.wrap.is_some() => {
                // The handshake first; connection_made once it is done.
                self.core.timers.cancel(timer);
                let timeout = conn.wrap.as_ref().map(|w| w.timeout);
                self.start_wrapped(id, timeout.unwrap_or(super::HANDSHAKE_TIMEOUT));
                self.core.conns.queue_ready(id); // input that came meanwhile
                if let Some(reason) = close {
                    self.core.close_gracefully(id, reason);
                }
            }
            Connected::Made { timer, close } => {
                self.core.timers.cancel(timer);
                if let Some(conn) = self.core.conns.get_mut(id) {
                    conn.made = true;
                }
                self.lend(id, |h, cx, data, _| h.connection_made(cx, id, data));
                self.core.conns.mark_dirty(id); // output queued while connecting
                self.core.conns.queue_ready(id); // input that came meanwhile
                if let Some(reason) = close {
                    self.core.close_gracefully(id, reason); // asked for while connecting
                }
            }
            Connected::Failed { timer, error } => {
                self.core.timers.cancel(timer);
                self.core.kill(id, CloseReason::ConnectFailed(error));
            }
        }
    }

    /// Reports a ready fd source, then re-arms it (level-triggered: the
    /// kernel reports it again while it stays ready), unless the handler
    /// unregistered it.
    fn source_ready(&mut self, source: SourceId, mask: EventMask) {
        self.call(|h, cx| h.source_ready(cx, source, mask));
        if let Some(&Endpoint::Fd { fd, events, .. }) = self.core.endpoints.get(source.0) {
            let interest = events.to_interest().expect("validated at registration");
            let registry = &self.core.registry;
            let _ = registry.reregister(&mut SourceFd(&fd), source.token(), interest);
        }
    }

    /// Answers a scrape once its request head is complete, then closes it.
    fn serve_scrape(&mut self, id: ConnId) {
        let Some(conn) = self.core.conns.get(id) else {
            return;
        };
        let answer = scrape::exchange(conn.inb.as_slice(), || {
            crate::metrics::render(&self.scrape_snapshots())
        });
        let scrape::Exchange::Respond(response) = answer else {
            return; // read the rest of the head
        };
        if let Some(conn) = self.core.conns.get_mut(id) {
            conn.inb.clear();
            conn.inb.release_if_empty(&mut self.core.pool);
        }
        if let Err(e) = self.call(|_, cx| cx.send(id, &response)) {
            log::debug!("{id}: metrics response not queued: {e}");
        }
        self.core.close_gracefully(id, CloseReason::Closed);
    }

    // -- 6: read -------------------------------------------------------------

    /// Reads every queued connection.
    fn read_ready(&mut self) {
        let batch = self.core.conns.take_ready();
        for &id in &batch {
            self.read_conn(id);
        }
        self.core.conns.give_back(batch);
    }

    /// Reads `id` until drained, paused, full or out of budget, handing each
    /// chunk to the handler.
    fn read_conn(&mut self, id: ConnId) {
        let (chunk, max_inb) = (self.core.config.read_chunk, self.core.config.max_inb);
        let max_outb = self.core.config.max_outb;
        let mut budget = self.core.config.read_budget;
        let scrape = self.core.is_scrape(id);
        let Some(conn) = self.core.conns.get_mut(id) else {
            return;
        };
        conn.queued = false;
        if conn.take_reservice() {
            self.with_inb(id, |h, cx, data, inb| {
                h.service_connection(cx, id, data, inb)
            });
        }
        loop {
            let Some(conn) = self.core.conns.get_mut(id) else {
                return;
            };
            if !conn.wants_read() {
                return;
            }
            let want = conn.read_room(chunk, max_inb, max_outb);
            if want == 0 {
                // A full `inb` (the handler was told, see `with_inb`), or no
                // room below the output cap (paused until low water).
                return;
            }
            if budget == 0 {
                self.core.conns.queue_ready(id); // fairness: the rest next pass
                return;
            }
            if conn.wrap.is_some() {
                match self.read_wrapped(id, want) {
                    Some(n) => budget = budget.saturating_sub(n),
                    None => return,
                }
                continue;
            }
            match conn.read(&mut self.core.pool, want, self.core.now) {
                Read::Data(_) if scrape => self.serve_scrape(id),
                Read::Data(n) => {
                    budget = budget.saturating_sub(n);
                    self.core.metrics.on_read(n);
                    self.with_inb(id, |h, cx, data, inb| {
                        h.service_connection(cx, id, data, inb)
                    });
                }
                Read::Discarded(n) => budget = budget.saturating_sub(n),
                Read::Eof { lingering: true } => return self.core.finish(id),
                Read::Eof { lingering: false } if scrape => {
                    return self.core.close_gracefully(id, CloseReason::Closed);
                }
                Read::Eof { lingering: false } => {
                    return self.with_inb(id, |h, cx, data, inb| h.eof_received(cx, id, data, inb));
                }
                Read::Drained => return,
                Read::Interrupted => {}
                Read::Failed(e) => {
                    log::debug!("{id}: read failed: {e}");
                    return self.core.kill(id, CloseReason::Error(e));
                }
            }
        }
    }

    /// [`lend`](Self::lend) for the callbacks that consume input, then the
    /// input-overflow policy: a handler that leaves a full `inb` untouched
    /// (and is not holding it back on purpose) closes the connection.
    pub(super) fn with_inb(
        &mut self,
        id: ConnId,
        f: impl FnOnce(&mut H, &mut Context<'_, H::Data>, &mut H::Data, &mut InBuf),
    ) {
        let max_inb = self.core.config.max_inb;
        let Some(conn) = self.core.conns.get_mut(id) else {
            return;
        };
        let Some(mut data) = conn.data.take() else {
            return;
        };
        let mut inb = InBuf(mem::take(&mut conn.inb));
        let before = inb.len();
        self.call(|h, cx| f(h, cx, &mut data, &mut inb));
        let Some(conn) = self.core.conns.get_mut(id) else {
            return; // cannot happen: removal is only in `reap`
        };
        conn.data = Some(data);
        conn.inb = inb.0;
        if conn.after_input(&mut self.core.pool, before, max_inb) {
            log::info!(
                "{id} ({}): {max_inb} bytes of input left unconsumed; closing",
                conn.peer
            );
            self.core.kill(id, CloseReason::InputOverflow);
        }
    }

    /// Sends queued datagrams and reads arrived ones on every UDP socket (at
    /// most `UDP_BATCH` each per pass), handing them to the handler.
    fn serve_udp(&mut self) {
        if self.udp_buf.is_empty() {
            return; // no UDP socket was ever bound
        }
        let mut buf = mem::take(&mut self.udp_buf); // lent beside the core
        for slot in 0..self.core.endpoints.slots() {
            if let Some((_, Endpoint::Udp(u))) = self.core.endpoints.slot_mut(slot) {
                u.flush();
            }
            for _ in 0..UDP_BATCH {
                let Some((raw, Endpoint::Udp(u))) = self.core.endpoints.slot_mut(slot) else {
                    break;
                };
                if !u.readable {
                    break;
                }
                match u.sock.recv_from(&mut buf) {
                    Ok((n, from)) => {
                        let data = &buf[..n];
                        self.call(|h, cx| h.datagram_received(cx, UdpId(raw), data, from));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => u.readable = false,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    // An ICMP error for an earlier datagram: nothing to do.
                    Err(e) => log::debug!("udp: recv: {e}"),
                }
            }
        }
        self.udp_buf = buf;
    }

    // -- 8: flush and reap -----------------------------------------------------

    /// Flushes dirty connections, then reaps dead ones until none is left (a
    /// `connection_lost` callback may close more).
    ///
    /// Each dirty connection is written once per pass, so lines for one
    /// client coalesce into one `write`. Output queued by the reaping
    /// (`connection_lost` announcing a departure, say) waits for the next
    /// pass, which then polls without blocking.
    fn settle(&mut self) {
        let batch = self.core.conns.take_dirty();
        for &id in &batch {
            self.flush(id);
        }
        self.core.conns.give_back(batch);
        while let Some(batch) = self.core.conns.take_dead() {
            for &id in &batch {
                self.reap(id);
            }
            self.core.conns.give_back(batch); // storage kept: a pass allocates nothing
        }
    }

    /// Writes `id`'s output, acts on how that went, then reports
    /// backpressure (after the callback whose `send` caused it returned).
    fn flush(&mut self, id: ConnId) {
        let (low, linger, now) = (
            self.core.config.low_water,
            self.core.config.linger,
            self.core.now,
        );
        let scrape = self.core.is_scrape(id);
        let Some((conn, lists)) = self.core.conns.entry(id) else {
            return;
        };
        conn.dirty = false;
        let before = conn.pending();
        let flushed = conn.flush(&mut self.core.pool, now, linger);
        let written = before.saturating_sub(conn.pending());
        if written > 0 && !scrape {
            self.core.metrics.on_write(written);
        }
        if let Flushed::Failed(e) = flushed {
            log::debug!("{id}: write failed: {e}");
            return self.core.kill(id, CloseReason::Error(e));
        }
        let pause = conn.take_pause();
        let mut resumed = if pause { None } else { conn.take_resume(low) };
        let mut over = None;
        if let Flushed::Lingering { until, requeue } = flushed {
            self.core.linger.push_back((until, id));
            if requeue {
                lists.queue_ready(id, conn);
            }
            // Everything is sent and FIN is out: the connection is over for
            // the application, which hears so now, not after the wait for
            // the peer's FIN (a client that left must not hold a place in
            // the application's limits meanwhile). The reactor keeps the
            // socket, holding no application data, until that FIN.
            if conn.made {
                over = conn.data.take().zip(conn.lingering_reason());
            }
        }
        if let Some((data, reason)) = over {
            self.call(|h, cx| h.connection_lost(cx, id, data, &reason));
            if let Some(conn) = self.core.conns.get_mut(id) {
                conn.put_lingering_reason(reason);
            }
        }
        if let Flushed::Done = flushed {
            self.core.finish(id);
        }
        if pause {
            self.lend(id, |h, cx, data, _| h.pause_writing(cx, id, data));
            resumed = self.core.conns.get_mut(id).and_then(|c| c.take_resume(low));
        }
        let Some(resumed) = resumed else {
            return;
        };
        if resumed.requeue {
            self.core.conns.queue_ready(id);
        }
        if resumed.tell {
            self.lend(id, |h, cx, data, _| h.resume_writing(cx, id, data));
        }
    }

    /// Deregisters, closes and reports a dead connection.
    fn reap(&mut self, id: ConnId) {
        let Some(mut conn) = self.core.conns.remove(id) else {
            return;
        };
        // Deregister before the fd closes, so epoll never holds a stale entry.
        let _ = self.core.registry.deregister(&mut conn.stream);
        if let Some(idle) = conn.idle.take() {
            self.core.timers.cancel(idle.timer);
        }
        let reason = conn
            .release(&mut self.core.pool)
            .expect("only dead ones are removed");
        if self.core.is_scrape(id) {
            self.core.scrapes.retain(|&s| s != id);
        } else {
            self.core.metrics.on_close(&reason);
        }
        log::debug!("{id}: {} closed ({reason})", conn.peer);
        let (data, made) = (conn.data.take(), conn.made);
        drop(conn); // closes the socket
        match data {
            Some(data) if made => self.call(|h, cx| h.connection_lost(cx, id, data, &reason)),
            Some(data) => self.call(|h, cx| h.connect_failed(cx, id, data, &reason)),
            None => {}
        }
        // A descriptor came free: queued clients need not wait out the backoff.
        self.resume_accepting();
    }
}
