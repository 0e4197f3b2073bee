//! [`Layer`]: a sans-IO protocol between a socket and a connection's buffers.
//!
//! The reactor reads bytes from a socket and writes bytes to it; a
//! [`Handler`](crate::Handler) reads and writes *application* bytes. A layer
//! sits at that seam and does no I/O of its own: the reactor hands it what it
//! read from the wire and gets back the application bytes that came out of
//! it (plaintext, lines), plus any bytes the protocol itself must send
//! (handshake records, pongs, alerts, HTTP responses). Output goes the other
//! way through [`Layer::on_app_output`].
//!
//! Every method writes wire bytes into a caller-owned `Vec<u8>`, never to a
//! socket, so what a layer produces lands in the connection's own output
//! buffer and the reactor's backpressure (high-water pause, `max_outb`)
//! governs it exactly as it governs plain TCP output. A layer never returns
//! `WouldBlock` and never waits.
//!
//! Layers stack: [`Stack`] puts one under another, so `https`/`wss` is
//! `Stack<TlsSession, WebServer>` (TLS below, HTTP/WebSocket above).
//!
//! ```
//! use mio_selectors::layer::{Layer, Stack};
//! # #[cfg(all(feature = "tls", feature = "websocket"))]
//! # fn f(tls: mio_selectors::tls::TlsSession, web: mio_selectors::ws::WebServer) {
//! let mut wss = Stack::new(tls, web);
//! let (mut app_in, mut wire_out) = (Vec::new(), Vec::new());
//! let progress = wss.on_wire_input(b"bytes read from the socket", &mut app_in, &mut wire_out);
//! // write `wire_out` to the socket; give `app_in` to the handler
//! # let _ = progress;
//! # }
//! ```

use std::fmt;

/// What one call into a [`Layer`] did, besides filling the caller's buffers.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// Application bytes appended to `app_in` by this call.
    pub app_bytes: usize,
    /// The layer's handshake finished during this call: from now on
    /// application bytes flow (for a server: time to tell the handler a
    /// connection opened).
    pub handshake_done: bool,
    /// The peer ended its side cleanly in this call (a TLS `close_notify`, a
    /// WebSocket Close frame): treat it as EOF. Nothing more will be
    /// appended to `app_in`.
    pub peer_closed: bool,
}

impl Progress {
    fn merge(&mut self, other: Progress) {
        self.app_bytes += other.app_bytes;
        self.handshake_done |= other.handshake_done;
        self.peer_closed |= other.peer_closed;
    }
}

/// Why a layer gave up on a connection.
///
/// When a layer returns one of these it has already put whatever it owes
/// the peer into `wire_out` (a TLS alert, a WebSocket Close frame with its
/// status code, an HTTP error response): write that out best-effort, then
/// close the connection. The layer accepts no more input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LayerError {
    /// TLS failed: a bad handshake, a bad record, a certificate the client
    /// does not trust, or plaintext sent to a TLS port.
    #[cfg(feature = "tls")]
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// The HTTP request was refused with this status (the response is in
    /// `wire_out`): 400 malformed, 403 wrong `Origin`, 405 method, 431 head
    /// too large.
    #[error("HTTP request refused: {status} {reason}")]
    Http {
        /// The status code sent.
        status: u16,
        /// Its reason phrase.
        reason: &'static str,
    },
    /// The WebSocket peer broke the protocol or a limit; a Close frame with
    /// `code` is in `wire_out`.
    #[error("WebSocket closed with {code}: {detail}")]
    WebSocket {
        /// The close status sent (1002 protocol error, 1003 unsupported
        /// data, 1007 bad UTF-8, 1009 too big).
        code: u16,
        /// What the peer did.
        detail: String,
    },
    /// The layer was used after it finished (it had closed or failed).
    #[error("the layer is closed")]
    Closed,
}

/// A sans-IO protocol layer at the seam between a socket and a
/// connection's application buffers; see the [module docs](self).
///
/// The contract every implementation keeps:
///
/// - [`on_wire_input`](Layer::on_wire_input) consumes *all* of `wire`.
///   What it keeps internally is bounded (one TLS record, one WebSocket
///   message up to its size limit, one HTTP request head of at most 8 KiB);
///   the bytes it appends to `app_in` are at most about the bytes it was
///   given, so the caller bounds memory by bounding how much it reads.
/// - Output never waits: everything to send is appended to `wire_out`.
/// - After an `Err`, or once [`is_finished`](Layer::is_finished), flush
///   `wire_out` and close the socket.
pub trait Layer {
    /// Bytes to send before any input arrives (a TLS client's hello).
    /// Call once, right after the connection is established.
    ///
    /// # Errors
    ///
    /// A [`LayerError`] if the layer cannot start; close the connection.
    fn start(&mut self, wire_out: &mut Vec<u8>) -> Result<(), LayerError>;

    /// Feed bytes read from the socket. Application bytes are appended to
    /// `app_in`, protocol bytes to send to `wire_out`.
    ///
    /// # Errors
    ///
    /// A [`LayerError`] when the peer broke the protocol; what the peer is
    /// owed is already in `wire_out`.
    fn on_wire_input(
        &mut self,
        wire: &[u8],
        app_in: &mut Vec<u8>,
        wire_out: &mut Vec<u8>,
    ) -> Result<Progress, LayerError>;

    /// The socket reached EOF (the peer's FIN). Returns what came out of
    /// the bytes still buffered, with `peer_closed` set.
    ///
    /// # Errors
    ///
    /// A [`LayerError`] if EOF arrived where the protocol does not allow
    /// it and the layer treats that as fatal.
    fn on_wire_eof(
        &mut self,
        app_in: &mut Vec<u8>,
        wire_out: &mut Vec<u8>,
    ) -> Result<Progress, LayerError>;

    /// Encode application bytes for the wire. Returns how many of `app`
    /// were taken; fewer than all only while [`handshaking`](Layer::handshaking)
    /// and the layer's pre-handshake buffer is full: offer the rest again
    /// after a call that reports `handshake_done`.
    ///
    /// # Errors
    ///
    /// [`LayerError::Closed`] after [`close`](Layer::close) or a failure.
    fn on_app_output(&mut self, app: &[u8], wire_out: &mut Vec<u8>) -> Result<usize, LayerError>;

    /// Begin a clean close from our side: a TLS `close_notify`, a
    /// WebSocket Close frame (1000). Idempotent. The application may not
    /// send after it.
    fn close(&mut self, wire_out: &mut Vec<u8>);

    /// The handshake (TLS, HTTP upgrade) is not complete: no application
    /// bytes flow yet.
    fn handshaking(&self) -> bool;

    /// The layer needs more input from the peer before it can get anywhere
    /// (mid-handshake, mid-record).
    fn wants_read(&self) -> bool;

    /// The layer is done: it takes no more input and produces no more
    /// output. Flush `wire_out` and close the socket.
    fn is_finished(&self) -> bool;

    /// Whether, in the state it is in now, this layer would encode whole
    /// lines of output into the same bytes as every other connection that
    /// says the same [`SharedEncoding`]: then a broadcast encodes each
    /// payload once ([`encode_shared`](Layer::encode_shared)) and queues
    /// that one copy to all of them, as it does for plain connections. The
    /// default, `None`, encodes per connection (TLS must: its records carry
    /// the connection's keys).
    fn shared_encoding(&self) -> Option<SharedEncoding> {
        None
    }

    /// What [`on_app_output`](Layer::on_app_output) would append to
    /// `wire_out` for `app` (whole lines, ending in `\n`) on a connection
    /// whose [`shared_encoding`](Layer::shared_encoding) is `Some`, leaving
    /// every state as that call would (for such a layer: unchanged).
    ///
    /// # Errors
    ///
    /// [`LayerError::Closed`] from a layer that shares no encoding (the
    /// default).
    fn encode_shared(&self, app: &[u8], wire_out: &mut Vec<u8>) -> Result<(), LayerError> {
        let _ = (app, wire_out);
        Err(LayerError::Closed)
    }
}

/// An encoding of output that is the same on every connection that offers
/// it ([`Layer::shared_encoding`]), so a broadcast makes it once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SharedEncoding {
    /// Each line a WebSocket text message, unmasked (a server's frames).
    WebSocketText,
}

/// One layer on top of another: `lower` faces the wire, `upper` faces the
/// application (for `wss`, TLS below and WebSocket above).
///
/// Bytes between the two pass through two scratch buffers owned by the
/// stack, emptied by every call, so they hold at most what one call moved.
pub struct Stack<L, U> {
    lower: L,
    upper: U,
    /// `lower`'s application bytes, which are `upper`'s wire input.
    mid_in: Vec<u8>,
    /// `upper`'s wire output, not yet taken by `lower` (only while `lower`
    /// is handshaking and full).
    mid_out: Vec<u8>,
    upper_eof: bool,
}

impl<L: fmt::Debug, U: fmt::Debug> fmt::Debug for Stack<L, U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stack")
            .field("lower", &self.lower)
            .field("upper", &self.upper)
            .finish_non_exhaustive()
    }
}

impl<L: Layer, U: Layer> Stack<L, U> {
    /// `upper` over `lower`.
    pub fn new(lower: L, upper: U) -> Self {
        Stack {
            lower,
            upper,
            mid_in: Vec::new(),
            mid_out: Vec::new(),
            upper_eof: false,
        }
    }

    /// The layer facing the wire.
    pub fn lower(&self) -> &L {
        &self.lower
    }

    /// The layer facing the application.
    pub fn upper(&self) -> &U {
        &self.upper
    }

    /// Push what `upper` produced down through `lower`.
    fn push_down(&mut self, wire_out: &mut Vec<u8>) -> Result<(), LayerError> {
        if !self.mid_out.is_empty() {
            let n = self.lower.on_app_output(&self.mid_out, wire_out)?;
            self.mid_out.drain(..n);
        }
        Ok(())
    }

    /// Run `upper` over what `lower` just decoded, and its EOF if `lower`
    /// saw the peer close.
    fn lift(
        &mut self,
        lower: Progress,
        app_in: &mut Vec<u8>,
        wire_out: &mut Vec<u8>,
    ) -> Result<Progress, LayerError> {
        let mut progress = Progress::default();
        if !self.mid_in.is_empty() {
            let input = std::mem::take(&mut self.mid_in);
            let r = self.upper.on_wire_input(&input, app_in, &mut self.mid_out);
            self.mid_in = input;
            self.mid_in.clear();
            let p = self.finish_upper(r, wire_out)?;
            progress.merge(p);
        }
        if lower.peer_closed && !self.upper_eof {
            self.upper_eof = true;
            let r = self.upper.on_wire_eof(app_in, &mut self.mid_out);
            let p = self.finish_upper(r, wire_out)?;
            progress.merge(p);
        }
        Ok(progress)
    }

    /// Whatever `upper` returned, send its output down first: on an error
    /// that output is what the peer is owed (a Close frame, a 4xx).
    fn finish_upper(
        &mut self,
        r: Result<Progress, LayerError>,
        wire_out: &mut Vec<u8>,
    ) -> Result<Progress, LayerError> {
        self.push_down(wire_out)?;
        if r.is_err() || self.upper.is_finished() {
            self.lower.close(wire_out);
        }
        r
    }
}

impl<L: Layer, U: Layer> Layer for Stack<L, U> {
    fn start(&mut self, wire_out: &mut Vec<u8>) -> Result<(), LayerError> {
        self.lower.start(wire_out)?;
        self.upper.start(&mut self.mid_out)?;
        self.push_down(wire_out)
    }

    fn on_wire_input(
        &mut self,
        wire: &[u8],
        app_in: &mut Vec<u8>,
        wire_out: &mut Vec<u8>,
    ) -> Result<Progress, LayerError> {
        let before = self.handshaking();
        let lower = self.lower.on_wire_input(wire, &mut self.mid_in, wire_out)?;
        // Output `upper` could not hand down during the handshake.
        self.push_down(wire_out)?;
        let mut p = self.lift(lower, app_in, wire_out)?;
        // The stack's handshake is done when both are.
        p.handshake_done = before && !self.handshaking();
        Ok(p)
    }

    fn on_wire_eof(
        &mut self,
        app_in: &mut Vec<u8>,
        wire_out: &mut Vec<u8>,
    ) -> Result<Progress, LayerError> {
        let before = self.handshaking();
        let lower = self.lower.on_wire_eof(&mut self.mid_in, wire_out)?;
        let mut p = self.lift(lower, app_in, wire_out)?;
        if !self.upper_eof {
            self.upper_eof = true;
            let r = self.upper.on_wire_eof(app_in, &mut self.mid_out);
            p.merge(self.finish_upper(r, wire_out)?);
        }
        p.handshake_done = before && !self.handshaking();
        Ok(p)
    }

    fn on_app_output(&mut self, app: &[u8], wire_out: &mut Vec<u8>) -> Result<usize, LayerError> {
        // While `mid_out` still holds output the lower layer refused, take
        // nothing more: the caller keeps it, bounded by its own limits.
        self.push_down(wire_out)?;
        if !self.mid_out.is_empty() {
            return Ok(0);
        }
        let n = self.upper.on_app_output(app, &mut self.mid_out)?;
        self.push_down(wire_out)?;
        Ok(n)
    }

    fn close(&mut self, wire_out: &mut Vec<u8>) {
        self.upper.close(&mut self.mid_out);
        // Best effort: a lower layer that fails here has failed already.
        let _ = self.push_down(wire_out);
        self.lower.close(wire_out);
    }

    fn handshaking(&self) -> bool {
        self.lower.handshaking() || self.upper.handshaking()
    }

    fn wants_read(&self) -> bool {
        if self.lower.handshaking() {
            self.lower.wants_read()
        } else {
            self.upper.wants_read() || self.lower.wants_read()
        }
    }

    fn is_finished(&self) -> bool {
        self.lower.is_finished() || (self.upper.is_finished() && self.mid_out.is_empty())
    }
}
