//! Step 5 of a pass: accepting on every ready listener until `WouldBlock`,
//! and admitting what was accepted (per-IP and connection limits, a
//! group's permit, wrapping, the handler's `accept_wrapper`, metrics
//! scrapes).

use std::io;
use std::mem;
use std::time::{Duration, Instant};

use super::conn::{later, State};
use super::endpoint::Endpoint;
use super::event_loop::Reactor;
use super::stream::Stream;
use super::Idle;
use crate::metrics::Refusal;
use crate::{CloseReason, ConnId, Handler, PeerAddr};

/// Accepts per listener per pass before the other work gets a turn.
const ACCEPT_BATCH: usize = 256;
/// Most metrics scrapes answered at once; more are refused (closed at once).
const MAX_SCRAPES: usize = 16;
/// How long a metrics scrape may take to send its request head.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);

impl<H: Handler> Reactor<H> {
    // -- 5: accept -----------------------------------------------------------

    /// Accepts on every ready listener until `WouldBlock` (at most
    /// `ACCEPT_BATCH` each per pass).
    pub(super) fn accept_all(&mut self) {
        if self.core.shutting_down || self.accept_paused_until.is_some() {
            return;
        }
        for slot in 0..self.core.endpoints.slots() {
            for _ in 0..ACCEPT_BATCH {
                if !self.accept_from(slot) {
                    break;
                }
            }
        }
    }

    /// One `accept` on the listener in `slot`; `false` when it is drained
    /// (or not a listener, or accepting has to pause).
    fn accept_from(&mut self, slot: usize) -> bool {
        let Some((_, Endpoint::Listener(l))) = self.core.endpoints.slot_mut(slot) else {
            return false;
        };
        if !l.ready {
            return false;
        }
        let scrape = l.scrape;
        match l.sock.accept() {
            Ok((stream, peer)) if scrape => self.admit_scrape(stream, peer),
            Ok((stream, peer)) => {
                self.accept_failing = false;
                let wrap = l.wrap.clone();
                self.route(stream, peer, wrap); // here, or to another reactor of a group
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => l.ready = false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // The client gave up before we got to it: skip it.
            Err(e) if is_aborted(&e) => log::debug!("accept: {e}; skipped"),
            Err(e) => {
                // EMFILE/ENFILE and the like: retrying now would spin.
                // Warn once per episode, not once per backoff.
                let backoff = self.core.config.accept_backoff;
                if mem::replace(&mut self.accept_failing, true) {
                    log::debug!("accept failed: {e}; pausing accepts for {backoff:?}");
                } else {
                    log::warn!("accept failed: {e}; pausing accepts for {backoff:?} at a time");
                    self.core.metrics.on_accept_error_episode();
                }
                self.accept_paused_until = Some(later(Instant::now(), backoff));
                return false;
            }
        }
        // Still ready (not drained, accepting not paused): accept again.
        matches!(self.core.endpoints.slot_mut(slot), Some((_, Endpoint::Listener(l))) if l.ready)
    }

    /// Registers an accepted socket (counted by a group's `permit`, if
    /// any, and wrapped as its listener says) and asks the handler about it.
    pub(super) fn admit(
        &mut self,
        stream: Stream,
        peer: PeerAddr,
        permit: Option<crate::group::Permit>,
        wrap: Option<super::Wrap>,
    ) {
        let ip = peer.inet().map(|a| a.ip());
        if let (Some(max), Some(ip)) = (self.core.config.max_per_ip, ip) {
            let count = self.core.conns.count_from(ip);
            if count >= max {
                self.core.metrics.on_refuse(Refusal::MaxPerIp);
                // Dropping the stream closes it; one line per burst, not per client.
                if !mem::replace(&mut self.full_logged, true) {
                    log::warn!("refusing {peer}: {count} connections from {ip} already");
                }
                return;
            }
        }
        let id = match self.core.insert(stream, peer.clone(), State::Open) {
            Ok(id) => id,
            Err(e) => {
                if matches!(e, crate::Error::TooManyConnections(_)) {
                    self.core.metrics.on_refuse(Refusal::MaxConnections);
                }
                // Dropping the stream closes it.
                if !mem::replace(&mut self.full_logged, true) {
                    log::warn!("refusing {peer}: {e}");
                }
                return;
            }
        };
        self.full_logged = false;
        self.core.metrics.on_accept();
        log::debug!("{id}: accepted {peer}");
        if let Some(conn) = self.core.conns.get_mut(id) {
            conn.permit = permit.map(Box::new);
        }
        if let (Some(_), Some(ip)) = (self.core.config.max_per_ip, ip) {
            self.core.conns.count_ip(id, ip);
        }
        if let Some(wrap) = wrap {
            // The handler hears of it once its handshake is done.
            return self.admit_wrapped(id, &wrap);
        }
        self.tell_accepted(id, &peer);
    }

    /// `accept_wrapper`, then `connection_made`, for a connection ready
    /// for the handler (accepted, or done with its handshake).
    pub(super) fn tell_accepted(&mut self, id: ConnId, peer: &PeerAddr) {
        match self.call(|h, cx| h.accept_wrapper(cx, id, peer)) {
            Some(data) => {
                if let Some(conn) = self.core.conns.get_mut(id) {
                    conn.data = Some(data);
                    conn.made = true;
                }
                self.lend(id, |h, cx, data, _| h.connection_made(cx, id, data));
                if self.core.shutting_down {
                    // Handed over by another reactor while this one stopped.
                    self.core.close_gracefully(id, CloseReason::Shutdown);
                }
            }
            None => self.core.close_gracefully(id, CloseReason::Closed),
        }
    }

    /// Registers an accepted metrics scrape; the handler never sees it (it
    /// has no data, so no callback is made about it). `max_connections`
    /// and `MAX_SCRAPES` apply, and an idle timeout, so that a scraper
    /// that never sends cannot hold a slot.
    fn admit_scrape(&mut self, stream: Stream, peer: PeerAddr) {
        if self.core.scrapes.len() >= MAX_SCRAPES {
            log::warn!("refusing metrics scrape from {peer}: {MAX_SCRAPES} under way");
            return;
        }
        match self.core.insert(stream, peer.clone(), State::Open) {
            Ok(id) => {
                self.core.scrapes.push(id);
                log::debug!("{id}: metrics scrape from {peer}");
                self.call(|_, cx| cx.set_idle_timeout(id, Idle::Read, Some(SCRAPE_TIMEOUT)));
            }
            Err(e) => log::warn!("refusing metrics scrape from {peer}: {e}"),
        }
    }
}

/// `accept` errors that concern one client only.
fn is_aborted(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    ) || matches!(e.raw_os_error(), Some(libc::EPROTO) | Some(libc::EPERM))
}
