//! [`Context`]'s timers: one-shot and periodic handler timers, and idle
//! timeouts on connections.

use std::time::Duration;

use super::Context;
use crate::reactor::conn::{later, IdleWatch};
use crate::reactor::timers::Timer;
use crate::reactor::{Idle, TimerId};
#[cfg(doc)]
use crate::CloseReason;
use crate::ConnId;

impl<D> Context<'_, D> {
    /// Calls [`Handler::on_timer`](crate::Handler::on_timer) with `conn`
    /// (and its data) and `tag` after `delay` (asyncio: `loop.call_later`). A timer for a
    /// connection that has closed by then is dropped silently. Timers are
    /// folded into the poll timeout: no thread.
    ///
    /// ```
    #[doc = doc_cx!(() = (), id)]
    /// const IDLE: u64 = 1;
    /// let timer = cx.call_later(std::time::Duration::from_secs(60), Some(id), IDLE);
    /// cx.cancel_timer(timer);
    #[doc = doc_cx_end!()]
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn call_later(&mut self, delay: Duration, conn: Option<ConnId>, tag: u64) -> TimerId {
        let deadline = later(self.core.now, delay);
        let every = None;
        self.core
            .timers
            .add(deadline, Timer::User { conn, tag, every })
    }

    /// Calls [`Handler::on_timer`](crate::Handler::on_timer) every
    /// `period`, first after one period, until cancelled (or, for a
    /// connection's timer, until it closes). A late pass does not bunch up
    /// calls: the next one is a period after the late one.
    ///
    /// ```
    #[doc = doc_cx!(() = ())]
    /// const TICK: u64 = 2;
    /// let ticker = cx.call_every(std::time::Duration::from_secs(1), None, TICK);
    #[doc = doc_cx_end!()]
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn call_every(&mut self, period: Duration, conn: Option<ConnId>, tag: u64) -> TimerId {
        let period = period.max(Duration::from_millis(1));
        let deadline = later(self.core.now, period);
        let every = Some(period);
        self.core
            .timers
            .add(deadline, Timer::User { conn, tag, every })
    }

    /// Cancels a timer; `false` if it already fired (for a one-shot) or was cancelled.
    ///
    /// ```
    #[doc = doc_cx!(() = ())]
    /// let t = cx.call_later(std::time::Duration::from_secs(1), None, 0);
    /// assert!(cx.cancel_timer(t));
    /// assert!(!cx.cancel_timer(t));
    #[doc = doc_cx_end!()]
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn cancel_timer(&mut self, timer: TimerId) -> bool {
        self.core.timers.cancel(timer)
    }

    /// Closes `id` (gracefully, reason [`CloseReason::IdleTimeout`]) once it
    /// has been idle, in the sense of `kind`, for `timeout`; `None` removes
    /// the timeout. Activity is checked when the timer fires, so each read
    /// or write costs nothing.
    ///
    /// ```
    #[doc = doc_cx!(() = (), id)]
    /// use mio_selectors::reactor::Idle;
    /// cx.set_idle_timeout(id, Idle::Both, Some(std::time::Duration::from_secs(300)));
    #[doc = doc_cx_end!()]
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_idle_timeout(&mut self, id: ConnId, kind: Idle, timeout: Option<Duration>) {
        let now = self.core.now;
        let Some(conn) = self.core.conns.get_mut(id) else {
            return;
        };
        let old = conn.idle.take();
        if let Some(old) = old {
            self.core.timers.cancel(old.timer);
        }
        if let Some(timeout) = timeout {
            let timer = self.core.timers.add(later(now, timeout), Timer::Idle(id));
            let (last_read, last_write) = (now, now);
            let watch = IdleWatch {
                kind,
                timeout,
                last_read,
                last_write,
                timer,
            };
            if let Some(conn) = self.core.conns.get_mut(id) {
                conn.idle = Some(Box::new(watch));
            }
        }
    }
}
