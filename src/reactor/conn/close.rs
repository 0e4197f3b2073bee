//! Teardown of a [`Conn`]: FIN, graceful close, kill, linger and the
//! release of its buffers back to the pool.

use super::*;

impl<D> Conn<D> {
    /// FIN once what is queued is written; `true` if it is to be flushed.
    pub(crate) fn write_eof(&mut self, pool: &mut BufPool) -> bool {
        if self.write_closed {
            return false;
        }
        // On TLS: close_notify, then FIN.
        self.layer_goodbye(pool);
        self.write_closed = true;
        self.fin_pending = true;
        true
    }

    /// A wrapped connection's own close (TLS `close_notify`, WebSocket Close
    /// 1000), queued ahead of FIN; once.
    fn layer_goodbye(&mut self, pool: &mut BufPool) {
        let Some(w) = self.wrap.as_mut() else {
            return;
        };
        let bytes = crate::reactor::wrap::with_scratch(|out| {
            w.close(out);
            std::mem::take(out)
        });
        if !bytes.is_empty() && !self.is_dead() {
            self.outb.extend(&bytes, pool);
        }
        crate::reactor::wrap::give_back_scratch(bytes);
    }

    /// Starts a graceful close: flush (for as long as the peer keeps
    /// reading), FIN, linger.
    pub(crate) fn close(&mut self, reason: CloseReason, pool: &mut BufPool) -> Closing {
        match &mut self.state {
            State::Open => {}
            // Output queued while connecting goes out once connected.
            State::Connecting { close, .. } if !self.outb.is_empty() => {
                close.get_or_insert(reason);
                return Closing::Deferred;
            }
            State::Connecting { .. } => return Closing::Kill(reason),
            _ => return Closing::Ignored,
        }
        self.layer_goodbye(pool);
        // The handler is done with the input; and a full `inb` must not stop
        // the linger phase from reading the peer to its FIN.
        self.inb.clear();
        self.inb.release_if_empty(pool);
        let unsent = self.outb.len();
        self.state = State::Closing { reason, unsent };
        Closing::Started
    }

    /// Ends it now, dropping pending output; `false` if it was dead already.
    /// If output was pending, the socket is set to close with a reset
    /// (`SO_LINGER` 0): a peer that misses data must be told, and a FIN
    /// would tell it the stream was complete.
    pub(crate) fn kill(&mut self, reason: CloseReason, pool: &mut BufPool) -> bool {
        if self.is_dead() {
            return false;
        }
        if !self.outb.is_empty() {
            log::debug!("{} bytes of output dropped: reset", self.outb.len());
            self.stream.reset_on_close();
        }
        self.outb.clear(pool);
        self.state = State::Dead(reason);
        true
    }

    /// Ends a closing or lingering connection, keeping its reason; `false`
    /// if it was in no such state.
    pub(crate) fn finish(&mut self, pool: &mut BufPool) -> bool {
        match mem::replace(&mut self.state, State::Open) {
            State::Closing { reason, .. } | State::Lingering { reason, .. } => {
                self.kill(reason, pool)
            }
            other => {
                self.state = other;
                false
            }
        }
    }

    /// A graceful-close deadline came: while flushing, `period` is
    /// `config.flush_timeout` (the time the peer may take no byte); while
    /// lingering, the FIN wait (`config.linger`) is in `until`.
    pub(crate) fn linger_due(&mut self, now: Instant, linger: Duration) -> Linger {
        let pending = self.outb.len();
        match &mut self.state {
            // Still flushing: fine while the peer keeps reading.
            State::Closing { unsent, .. } if pending < *unsent => {
                *unsent = pending;
                Linger::Extended(later(now, linger))
            }
            State::Closing { .. } => Linger::GaveUp(pending),
            State::Lingering { until, .. } if *until <= now => Linger::Finished,
            _ => Linger::Stale,
        }
    }

    /// The close reason of a lingering connection, taken out (a plain
    /// `Closed` stands in) to be handed to `connection_lost` as soon as FIN
    /// is out; [`put_lingering_reason`](Self::put_lingering_reason) puts it
    /// back for the reaping.
    pub(crate) fn lingering_reason(&mut self) -> Option<CloseReason> {
        match &mut self.state {
            State::Lingering { reason, .. } => Some(mem::replace(reason, CloseReason::Closed)),
            _ => None,
        }
    }

    pub(crate) fn put_lingering_reason(&mut self, reason: CloseReason) {
        if let State::Lingering { reason: r, .. } = &mut self.state {
            *r = reason;
        }
    }

    /// Buffers back to the pool, and the reason it died (for reaping).
    pub(crate) fn release(&mut self, pool: &mut BufPool) -> Option<CloseReason> {
        self.inb.clear();
        self.inb.release_if_empty(pool);
        self.outb.clear(pool);
        match mem::replace(&mut self.state, State::Open) {
            State::Dead(reason) => Some(reason),
            other => {
                self.state = other;
                None
            }
        }
    }
}
