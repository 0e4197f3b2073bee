//! Step 7 of a pass: deadlines. Graceful closes that ran out of time,
//! due timers (popped from `Timers`, which is pure data), a shutdown that
//! ran out of time, and accepts paused after `EMFILE`.

use std::io;
use std::time::{Duration, Instant};

use super::conn::{later, Linger};
use super::endpoint::{Endpoint, Listener};
use super::event_loop::Reactor;
use super::timers::Timer;
use super::TimerId;
use crate::{CloseReason, ConnId, Handler};

impl<H: Handler> Reactor<H> {
    /// Closes connections whose graceful close ran out of time, fires due
    /// timers, ends a shutdown that ran out of time, and resumes paused
    /// accepts.
    pub(super) fn expire(&mut self) {
        let now = self.core.now;
        self.expire_linger(now);
        self.fire_due(now);
        if self.shutdown_deadline.is_some_and(|d| d <= now) {
            let ids = self.core.conns.all_ids();
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

    fn expire_linger(&mut self, now: Instant) {
        // Flushing closes (their deadlines `flush_timeout` apart), then those
        // waiting for the peer's FIN (`linger`): two queues, each in order.
        let flush_timeout = self.core.config.flush_timeout;
        while let Some(&(deadline, id)) = self.core.flushing.front() {
            if deadline > now {
                break;
            }
            self.core.flushing.pop_front();
            self.linger_due(now, id, flush_timeout);
        }
        let linger = self.core.config.linger;
        while let Some(&(deadline, id)) = self.core.linger.front() {
            if deadline > now {
                break;
            }
            self.core.linger.pop_front();
            self.linger_due(now, id, linger);
        }
    }

    /// A graceful-close deadline of `id`; `period` is how far apart its
    /// queue's deadlines are.
    fn linger_due(&mut self, now: Instant, id: ConnId, period: Duration) {
        let Some(conn) = self.core.conns.get_mut(id) else {
            return;
        };
        match conn.linger_due(now, period) {
            // Only a flushing close is extended (by `flush_timeout`).
            Linger::Extended(until) => self.core.flushing.push_back((until, id)),
            Linger::GaveUp(pending) => {
                log::info!(
                    "{id}: peer stopped reading while closing; {pending} bytes dropped; reset"
                );
                let why = format!("peer stopped reading; {pending} bytes of output dropped");
                let e = io::Error::new(io::ErrorKind::TimedOut, why);
                self.core.kill(id, CloseReason::Error(e)); // a reset: output dropped
            }
            Linger::Finished => {
                log::debug!("{id}: no FIN from the peer; closing");
                self.core.finish(id);
            }
            Linger::Stale => {}
        }
    }

    /// Fires the timers due now. One set by a callback here waits for the
    /// next pass (even with no delay), so timers cannot keep the loop from
    /// polling.
    fn fire_due(&mut self, now: Instant) {
        let mark = self.core.timers.mark();
        while let Some((id, timer)) = self.core.timers.pop_due(now, mark) {
            match timer {
                Timer::User { conn, tag, every } => self.fire_user(id, timer, conn, tag, every),
                Timer::Connect(conn) => self.connect_timed_out(conn),
                Timer::Idle(conn) => self.check_idle(id, timer, conn),
                Timer::Handshake(conn) => self.handshake_timed_out(conn),
            }
        }
    }

    fn fire_user(
        &mut self,
        id: TimerId,
        timer: Timer,
        conn: Option<ConnId>,
        tag: u64,
        every: Option<Duration>,
    ) {
        if conn.is_some_and(|c| self.core.conns.get(c).is_none_or(|c| !c.is_open())) {
            return; // its connection is gone: the timer goes with it
        }
        if let Some(period) = every {
            // Same id, next deadline, so the id still cancels it.
            let next = later(self.core.now, period);
            self.core.timers.rearm(id, next, timer);
        }
        match conn {
            Some(c) => self.lend(c, |h, cx, data, _| h.on_timer(cx, Some((c, data)), tag)),
            None => self.call(|h, cx| h.on_timer(cx, None, tag)),
        }
    }

    fn connect_timed_out(&mut self, id: ConnId) {
        if self.core.conns.get(id).is_some_and(|c| c.is_connecting()) {
            let e = io::Error::new(io::ErrorKind::TimedOut, "connect timed out");
            self.core.kill(id, CloseReason::ConnectFailed(e));
        }
    }

    fn check_idle(&mut self, id: TimerId, timer: Timer, conn: ConnId) {
        let Some(idle) = self.core.conns.get(conn).and_then(|c| c.idle.as_ref()) else {
            return;
        };
        let deadline = idle.deadline();
        if deadline > self.core.now {
            // Active since: check again when it could next be idle (same
            // id, so `idle.timer` still names it).
            self.core.timers.rearm(id, deadline, timer);
        } else {
            log::debug!("{conn}: idle for {:?}; closing", idle.timeout);
            self.core.close_gracefully(conn, CloseReason::IdleTimeout);
        }
    }

    pub(super) fn resume_accepting(&mut self) {
        if self.accept_paused_until.take().is_some() {
            log::debug!("accepting again");
            for e in self.core.endpoints.iter_mut() {
                if let Endpoint::Listener(Listener { ready, .. }) = e {
                    *ready = true;
                }
            }
        }
    }
}
