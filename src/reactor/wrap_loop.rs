//! The loop's side of wrapped connections (TLS, HTTP/WebSocket): starting
//! a layer's handshake, reading a socket through its layer, and telling the
//! handler about a connection once its handshake is done. The hooks that
//! call these are in `pass.rs` (`admit`, `connect_done`, `read_conn`) and
//! `expire.rs` (the handshake timer); output and close go through the layer
//! in `Conn::queue`, `Conn::close` and `Conn::write_eof`. See "Wrapped
//! connections" in `docs/ARCHITECTURE.md`.

use std::io;
use std::mem;
use std::time::Duration;

use super::conn::{later, Output, Read};
use super::event_loop::Reactor;
use super::timers::Timer;
use super::wrap::{give_back_scratch, with_scratch, Wrap, Wrapped};
use crate::{CloseReason, ConnId, Error, Handler};

impl<H: Handler> Reactor<H> {
    /// An accepted connection on a wrapped listener: make its layer and
    /// start the handshake; the handler hears of it when that is done.
    pub(super) fn admit_wrapped(&mut self, id: ConnId, wrap: &Wrap) {
        match wrap.make() {
            Ok(layer) => {
                if let Some(conn) = self.core.conns.get_mut(id) {
                    conn.wrap = Some(Wrapped::new(layer));
                }
                self.start_wrapped(id, wrap.handshake_timeout);
            }
            Err(e) => {
                log::warn!("{id}: cannot make its {} layer: {e}", wrap.name());
                self.core.kill(id, CloseReason::Error(io::Error::other(e)));
            }
        }
    }

    /// Starts a wrapped connection's handshake: the layer's first bytes
    /// (a TLS client's hello) and the handshake timeout.
    pub(super) fn start_wrapped(&mut self, id: ConnId, timeout: Duration) {
        let deadline = later(self.core.now, timeout);
        let timer = self.core.timers.add(deadline, Timer::Handshake(id));
        let Some(w) = self.core.conns.get_mut(id).and_then(|c| c.wrap.as_mut()) else {
            self.core.timers.cancel(timer);
            return;
        };
        w.timer = Some(timer);
        let (started, out) = with_scratch(|out| (w.layer.start(out), mem::take(out)));
        self.push_wire(id, &out);
        give_back_scratch(out);
        if let Err(e) = started {
            log::debug!("{id}: layer failed to start: {e}");
            let e = io::Error::other(e.to_string());
            self.core.kill(id, CloseReason::Error(e));
        }
    }

    /// Queues a layer's own bytes (handshake, pongs, alerts, responses)
    /// under the usual cap and high-water mark; `false` if the connection
    /// was closed for passing the cap.
    fn push_wire(&mut self, id: ConnId, bytes: &[u8]) -> bool {
        if bytes.is_empty() {
            return true;
        }
        let (max, high) = (self.core.config.max_outb, self.core.config.high_water);
        let Some((conn, lists)) = self.core.conns.entry(id) else {
            return false;
        };
        match conn.queue_raw(Output::Bytes(bytes), &mut self.core.pool, max, high) {
            Ok(true) => {
                lists.mark_dirty(id, conn);
                true
            }
            Ok(false) => true,
            Err(Error::OutputOverflow) => {
                log::info!(
                    "{id} ({}): pending output would pass {max} bytes; closing",
                    conn.peer
                );
                self.core.kill(id, CloseReason::OutputOverflow);
                false
            }
            // Closing or write-closed: what the layer adds now is not owed.
            Err(_) => true,
        }
    }

    /// The handshake of `id` is done: now the handler hears of it.
    fn handshake_done(&mut self, id: ConnId) {
        let Some(conn) = self.core.conns.get_mut(id) else {
            return;
        };
        let Some(w) = conn.wrap.as_mut() else {
            return;
        };
        w.handshaking = false;
        let timer = w.timer.take();
        let outgoing = conn.data.is_some();
        let peer = conn.peer.clone();
        if outgoing {
            conn.made = true;
        }
        if let Some(timer) = timer {
            self.core.timers.cancel(timer);
        }
        log::debug!("{id}: handshake done");
        if outgoing {
            self.lend(id, |h, cx, data, _| h.connection_made(cx, id, data));
        } else {
            self.tell_accepted(id, &peer);
        }
    }

    /// The handshake timer fired: a connection still handshaking is closed
    /// (the handler never saw it).
    pub(super) fn handshake_timed_out(&mut self, id: ConnId) {
        let Some(conn) = self.core.conns.get(id) else {
            return;
        };
        if conn.wrap.as_ref().is_some_and(|w| w.handshaking) {
            log::debug!("{id} ({}): handshake timed out; closing", conn.peer);
            let e = io::Error::new(io::ErrorKind::TimedOut, "handshake timed out");
            self.core.kill(id, CloseReason::Error(e));
        }
    }

    /// One read of a wrapped connection's socket, through its layer.
    /// Returns the bytes read if reading should go on.
    pub(super) fn read_wrapped(&mut self, id: ConnId, want: usize) -> Option<usize> {
        if self.wire_in.len() < want {
            self.wire_in.resize(want, 0);
        }
        let now = self.core.now;
        let conn = self.core.conns.get_mut(id)?;
        let mut buf = mem::take(&mut self.wire_in);
        let go_on = match conn.read_wire(&mut buf[..want], now) {
            Read::Data(n) => self.layer_step(id, Some(&buf[..n])).then_some(n),
            // Closing: the rest is discarded, as for plain TCP.
            Read::Discarded(n) => Some(n),
            Read::Eof { lingering: true } => {
                self.core.finish(id);
                None
            }
            Read::Eof { lingering: false } => {
                self.layer_step(id, None);
                None
            }
            Read::Drained => None,
            Read::Interrupted => Some(0),
            Read::Failed(e) => {
                log::debug!("{id}: read failed: {e}");
                self.core.kill(id, CloseReason::Error(e));
                None
            }
        };
        self.wire_in = buf;
        go_on
    }

    /// Runs `id`'s layer over `input` (`None`: the socket's EOF), queues
    /// what the layer sends, and tells the handler what came out. Returns
    /// whether to keep reading.
    fn layer_step(&mut self, id: ConnId, input: Option<&[u8]>) -> bool {
        let mut app = mem::take(&mut self.app_in);
        app.clear();
        let go_on = self.layer_step_with(id, input, &mut app);
        app.clear();
        self.app_in = app;
        go_on
    }

    fn layer_step_with(&mut self, id: ConnId, input: Option<&[u8]>, app: &mut Vec<u8>) -> bool {
        let Some(w) = self.core.conns.get_mut(id).and_then(|c| c.wrap.as_mut()) else {
            return false;
        };
        let (r, out) = with_scratch(|out| {
            let r = match input {
                Some(bytes) => w.layer.on_wire_input(bytes, app, out),
                None => w.layer.on_wire_eof(app, out),
            };
            (r, mem::take(out))
        });
        let finished = w.layer.is_finished();
        if r.is_err() {
            w.closed = true; // it has said what it had to say
        }
        let queued = self.push_wire(id, &out);
        give_back_scratch(out);
        if !queued {
            return false;
        }
        let progress = match r {
            Ok(p) => p,
            Err(e) => {
                log::debug!("{id}: {e}; closing");
                let e = io::Error::new(io::ErrorKind::InvalidData, e.to_string());
                self.core.close_gracefully(id, CloseReason::Error(e));
                return false;
            }
        };
        if progress.handshake_done {
            self.handshake_done(id);
        }
        let Some(conn) = self.core.conns.get_mut(id) else {
            return false;
        };
        let known = conn.wrap.as_ref().is_some_and(|w| !w.handshaking) && conn.is_open();
        if known && !app.is_empty() {
            conn.inb.extend(app, &mut self.core.pool);
            self.with_inb(id, |h, cx, data, inb| {
                h.service_connection(cx, id, data, inb)
            });
        }
        let Some(conn) = self.core.conns.get_mut(id) else {
            return false;
        };
        if progress.peer_closed || input.is_none() {
            // A close_notify or Close frame is the peer's EOF.
            conn.set_eof();
            if known && conn.is_open() {
                self.with_inb(id, |h, cx, data, inb| h.eof_received(cx, id, data, inb));
            } else {
                self.core.close_gracefully(id, CloseReason::PeerClosed);
            }
            return false;
        }
        if finished {
            let reason = if known {
                CloseReason::PeerClosed
            } else {
                CloseReason::Closed
            };
            self.core.close_gracefully(id, reason);
            return false;
        }
        conn.is_open()
    }
}
