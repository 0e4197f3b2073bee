//! The loop's side of wrapped connections (TLS, HTTP/WebSocket): starting
//! a layer's handshake, reading a socket through its layer, and telling the
//! handler about a connection once its handshake is done. The hooks that
//! call these are in `event_loop.rs` (`admit`, `connect_done`, `read_conn`,
//! the handshake timer) and `context.rs` (output and close through the
//! layer); see "Wrapped connections" in `docs/ARCHITECTURE.md`.

use std::io::{self, Read};
use std::mem;
use std::time::Duration;

use super::conn::later;
use super::context::Timer;
use super::event_loop::Reactor;
use crate::{CloseReason, ConnId, Handler};

impl<H: Handler> Reactor<H> {
    /// Starts a wrapped connection's handshake: the layer's first bytes
    /// (a TLS client's hello) and the handshake timeout.
    pub(super) fn start_wrapped(&mut self, id: ConnId, timeout: Duration) {
        let deadline = later(self.core.now, timeout);
        let timer = self.core.add_timer(deadline, Timer::Handshake(id));
        let mut out = mem::take(&mut self.core.wire_out);
        out.clear();
        let started = match self.core.get_mut(id).and_then(|c| c.wrap.as_mut()) {
            Some(w) => {
                w.timer = Some(timer);
                w.layer.start(&mut out)
            }
            None => Ok(()),
        };
        let _ = self.core.push_wire(id, &out);
        out.clear();
        self.core.wire_out = out;
        if let Err(e) = started {
            log::debug!("{id}: layer failed to start: {e}");
            self.core
                .kill(id, CloseReason::Error(io::Error::other(e.to_string())));
        }
    }

    /// The handshake of `id` is done: now the handler hears of it.
    fn handshake_done(&mut self, id: ConnId) {
        let Some(conn) = self.core.get_mut(id) else {
            return;
        };
        let Some(w) = conn.wrap.as_mut() else {
            return;
        };
        w.handshaking = false;
        let timer = w.timer.take();
        let (outgoing, peer) = (conn.data.is_some(), conn.peer.clone());
        if outgoing {
            conn.made = true;
        }
        if let Some(timer) = timer {
            self.core.cancel_timer(timer);
        }
        log::debug!("{id}: handshake done");
        if outgoing {
            self.lend(id, |h, cx, data, _| h.connection_made(cx, id, data));
        } else {
            self.tell_accepted(id, &peer);
        }
    }

    /// One read of a wrapped connection's socket, through its layer.
    /// Returns the bytes read if reading should go on.
    pub(super) fn read_wrapped(
        &mut self,
        id: ConnId,
        want: usize,
        lingering: bool,
    ) -> Option<usize> {
        let now = self.core.now;
        if self.wire_in.len() < want {
            self.wire_in.resize(want, 0);
        }
        let (conn, pool) = self.core.conn_and_pool(id)?;
        match (&conn.stream).read(&mut self.wire_in[..want]) {
            Ok(0) => {
                conn.eof = true;
                conn.readable = false;
                if lingering {
                    self.core.finish(id);
                } else {
                    self.layer_step(id, None);
                }
                None
            }
            // Closing: the rest is discarded, as for plain TCP.
            Ok(n) if lingering => Some(n),
            Ok(n) => {
                if n < want && !conn.hup {
                    conn.readable = false;
                }
                if let Some(idle) = &mut conn.idle {
                    idle.last_read = now;
                }
                let input = mem::take(&mut self.wire_in);
                let go_on = self.layer_step(id, Some(&input[..n]));
                self.wire_in = input;
                go_on.then_some(n)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                conn.readable = false;
                conn.inb.release_if_empty(pool);
                None
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Some(0),
            Err(e) => {
                log::debug!("{id}: read failed: {e}");
                self.core.kill(id, CloseReason::Error(e));
                None
            }
        }
    }

    /// Runs `id`'s layer over `input` (`None`: the socket's EOF), queues
    /// what the layer sends, tells the handler what came out. Returns
    /// whether to keep reading.
    fn layer_step(&mut self, id: ConnId, input: Option<&[u8]>) -> bool {
        let mut app = mem::take(&mut self.app_in);
        let mut out = mem::take(&mut self.core.wire_out);
        app.clear();
        out.clear();
        let go_on = self.layer_step_with(id, input, &mut app, &mut out);
        app.clear();
        out.clear();
        self.app_in = app;
        self.core.wire_out = out;
        go_on
    }

    fn layer_step_with(
        &mut self,
        id: ConnId,
        input: Option<&[u8]>,
        app: &mut Vec<u8>,
        out: &mut Vec<u8>,
    ) -> bool {
        let Some(w) = self.core.get_mut(id).and_then(|c| c.wrap.as_mut()) else {
            return false;
        };
        let r = match input {
            Some(bytes) => w.layer.on_wire_input(bytes, app, out),
            None => w.layer.on_wire_eof(app, out),
        };
        let finished = w.layer.is_finished();
        if r.is_err() {
            w.closed = true; // it has said what it had to say
        }
        if self.core.push_wire(id, out).is_err() {
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
        let Some((conn, pool)) = self.core.conn_and_pool(id) else {
            return false;
        };
        let known = conn.wrap.as_ref().is_some_and(|w| !w.handshaking) && conn.is_open();
        if known && !app.is_empty() {
            conn.inb.extend(app, pool);
            self.with_inb(id, |h, cx, data, inb| {
                h.service_connection(cx, id, data, inb)
            });
        }
        let Some(conn) = self.core.get_mut(id) else {
            return false;
        };
        if progress.peer_closed || input.is_none() {
            // A close_notify or Close frame is the peer's EOF.
            conn.eof = true;
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
