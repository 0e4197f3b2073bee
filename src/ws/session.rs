//! [`WsSession`]: the server side of an upgraded WebSocket, messages as lines.

use std::io::{self, Read, Write};

use tungstenite::error::{CapacityError, Error as WsError, ProtocolError};
use tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tungstenite::protocol::frame::Frame;
use tungstenite::protocol::{CloseFrame, Message, Role, WebSocketConfig, WebSocketContext};

use crate::layer::{Layer, LayerError, Progress, SharedEncoding};

/// WebSocket limits.
///
/// ```
/// let cfg = mio_selectors::ws::WsConfig::default().max_message(16 * 1024);
/// assert_eq!(cfg.max_message, 16 * 1024);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct WsConfig {
    /// The largest message accepted from the peer, fragments together
    /// (default 64 KiB). Past it the connection is closed with 1009. Keep
    /// it above the application's own line limit, so a long line reaches
    /// the application and gets its error instead.
    pub max_message: usize,
    /// The read chunk tungstenite allocates per connection (default 4 KiB:
    /// an idle connection should stay small).
    pub read_buffer: usize,
}

impl Default for WsConfig {
    fn default() -> Self {
        WsConfig {
            max_message: 64 * 1024,
            read_buffer: 4 * 1024,
        }
    }
}

impl WsConfig {
    /// Sets [`max_message`](WsConfig::max_message).
    pub fn max_message(mut self, bytes: usize) -> Self {
        self.max_message = bytes;
        self
    }

    fn tungstenite(&self) -> WebSocketConfig {
        // write_buffer_size 0: every frame goes straight into the caller's
        // buffer, which always takes it, so tungstenite never holds output
        // and never reports WriteBufferFull; the reactor's own output
        // buffer and its high-water mark govern what piles up.
        WebSocketConfig::default()
            .read_buffer_size(self.read_buffer)
            .write_buffer_size(0)
            .max_write_buffer_size(usize::MAX)
            .max_message_size(Some(self.max_message))
            .max_frame_size(Some(self.max_message))
    }
}

/// The stream tungstenite reads and writes: input from a slice, which
/// says `WouldBlock` when it runs dry, output appended to a `Vec`.
struct Pipe<'a> {
    input: &'a [u8],
    output: &'a mut Vec<u8>,
}

impl Read for Pipe<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.input.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.input.read(buf)
    }
}

impl Write for Pipe<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The server side of a WebSocket after the upgrade, as a [`Layer`] that
/// speaks lines to the application.
///
/// - In: each text message becomes its text followed by `\n` (no `\n` is
///   added if it already ends with one), so a message holding `\n` is
///   several lines and every message ends a line.
/// - Out: each `\n`-terminated line the application writes becomes one
///   text message without the `\n` (invalid UTF-8 is replaced by U+FFFD);
///   a partial line waits for its end, up to `max_message` bytes.
/// - Pings are answered, the close handshake is completed, a peer's Close
///   is its EOF.
/// - Binary messages close with 1003, messages over the limit with 1009,
///   invalid UTF-8 with 1007, protocol violations (unmasked frames, bad
///   opcodes, fragmented control frames) with 1002.
///
/// Framing is tungstenite's; this type only moves bytes and maps errors.
pub struct WsSession {
    ctx: WebSocketContext,
    config: WsConfig,
    /// Output: the start of a line not yet ended by `\n`.
    partial: Vec<u8>,
    /// We sent a Close frame.
    closing: bool,
    /// The peer sent a Close frame or closed its transport.
    peer_closed: bool,
    /// The close handshake is over, or we failed the connection.
    finished: bool,
}

impl std::fmt::Debug for WsSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsSession")
            .field("closing", &self.closing)
            .field("peer_closed", &self.peer_closed)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl WsSession {
    /// A session on a connection that has just been upgraded.
    pub fn new(config: WsConfig) -> Self {
        WsSession {
            ctx: WebSocketContext::new(Role::Server, Some(config.tungstenite())),
            config,
            partial: Vec::new(),
            closing: false,
            peer_closed: false,
            finished: false,
        }
    }

    /// The peer sent its Close frame (or closed its transport).
    pub fn peer_closed(&self) -> bool {
        self.peer_closed
    }

    /// Fail the connection: a Close frame with `code` into `wire_out`.
    fn fail(&mut self, code: CloseCode, detail: String, wire_out: &mut Vec<u8>) -> LayerError {
        let mut pipe = Pipe {
            input: &[],
            output: wire_out,
        };
        let reason = match code {
            CloseCode::Unsupported => "binary messages are not supported",
            CloseCode::Size => "message too big",
            CloseCode::Invalid => "invalid UTF-8",
            _ => "protocol error",
        };
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        // Queues the frame (once; nothing if a Close was sent already).
        let _ = self.ctx.close(&mut pipe, Some(frame));
        self.closing = true;
        self.finished = true;
        LayerError::WebSocket {
            code: code.into(),
            detail,
        }
    }

    /// Send one line (without its `\n`) as a text message.
    fn send_line(&mut self, line: &[u8], wire_out: &mut Vec<u8>) -> Result<(), LayerError> {
        // Nearly every line is valid UTF-8: the standard library's check
        // (word at a time over ASCII) and one copy; only invalid input pays
        // for the lossy rewrite, whose byte-by-byte scan was ~9% of the
        // chat's CPU per WebSocket delivery (docs/benchmarks.md, issue 13).
        let text = text_of(line);
        let mut pipe = Pipe {
            input: &[],
            output: wire_out,
        };
        self.ctx
            .write(&mut pipe, Message::text(text))
            .and_then(|()| self.ctx.flush(&mut pipe))
            .map_err(|e| {
                log::debug!("WebSocket send after close: {e}");
                LayerError::Closed
            })
    }
}

/// A line as the text of a message: as it is when it is UTF-8 (nearly
/// always: the standard library's check is word at a time over ASCII), the
/// lossy rewrite only otherwise.
fn text_of(line: &[u8]) -> String {
    match std::str::from_utf8(line) {
        Ok(valid) => valid.to_owned(),
        Err(_) => String::from_utf8_lossy(line).into_owned(),
    }
}

fn map_error(e: &WsError) -> (CloseCode, String) {
    match e {
        WsError::Capacity(CapacityError::MessageTooLong { size, max_size }) => (
            CloseCode::Size,
            format!("message of {size} bytes over the limit of {max_size}"),
        ),
        WsError::Capacity(c) => (CloseCode::Size, c.to_string()),
        WsError::Utf8(_) => (CloseCode::Invalid, e.to_string()),
        WsError::Protocol(ProtocolError::UnmaskedFrameFromClient) => {
            (CloseCode::Protocol, "unmasked frame from a client".into())
        }
        _ => (CloseCode::Protocol, e.to_string()),
    }
}

impl Layer for WsSession {
    fn start(&mut self, _wire_out: &mut Vec<u8>) -> Result<(), LayerError> {
        Ok(())
    }

    fn on_wire_input(
        &mut self,
        wire: &[u8],
        app_in: &mut Vec<u8>,
        wire_out: &mut Vec<u8>,
    ) -> Result<Progress, LayerError> {
        let mut progress = Progress::default();
        if self.finished {
            // After the close handshake: the rest is the peer's noise.
            return Ok(progress);
        }
        let mut pipe = Pipe {
            input: wire,
            output: wire_out,
        };
        loop {
            // Each read first flushes a pending pong or Close reply into
            // the pipe, then decodes the next frame; WouldBlock means the
            // input is used up.
            match self.ctx.read(&mut pipe) {
                Ok(Message::Text(text)) => {
                    // After our Close the application is gone: drop data.
                    if self.closing {
                        continue;
                    }
                    let before = app_in.len();
                    app_in.extend_from_slice(text.as_bytes());
                    if !text.as_bytes().ends_with(b"\n") {
                        app_in.push(b'\n');
                    }
                    progress.app_bytes += app_in.len() - before;
                }
                Ok(Message::Binary(data)) => {
                    let detail = format!("binary message of {} bytes", data.len());
                    return Err(self.fail(CloseCode::Unsupported, detail, pipe.output));
                }
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {}
                Ok(Message::Close(_)) => {
                    if !self.peer_closed {
                        self.peer_closed = true;
                        progress.peer_closed = true;
                    }
                }
                Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => {
                    self.finished = true;
                    break;
                }
                Err(e) => {
                    let (code, detail) = map_error(&e);
                    return Err(self.fail(code, detail, pipe.output));
                }
            }
        }
        Ok(progress)
    }

    fn on_wire_eof(
        &mut self,
        _app_in: &mut Vec<u8>,
        _wire_out: &mut Vec<u8>,
    ) -> Result<Progress, LayerError> {
        let mut progress = Progress::default();
        if !self.peer_closed {
            log::debug!("WebSocket peer closed its transport without a Close frame");
            self.peer_closed = true;
            progress.peer_closed = true;
        }
        self.finished = true;
        Ok(progress)
    }

    fn on_app_output(&mut self, app: &[u8], wire_out: &mut Vec<u8>) -> Result<usize, LayerError> {
        if self.closing || self.finished {
            return Err(LayerError::Closed);
        }
        let mut rest = app;
        while let Some(i) = rest.iter().position(|&b| b == b'\n') {
            if self.partial.is_empty() {
                self.send_line(&rest[..i], wire_out)?;
            } else {
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(&rest[..i]);
                self.send_line(&line, wire_out)?;
                line.clear();
                self.partial = line;
            }
            rest = &rest[i + 1..];
        }
        self.partial.extend_from_slice(rest);
        // A "line" that never ends is sent in pieces rather than held.
        while self.partial.len() >= self.config.max_message {
            let piece: Vec<u8> = self.partial.drain(..self.config.max_message).collect();
            self.send_line(&piece, wire_out)?;
        }
        if self.partial.is_empty() && self.partial.capacity() > 1024 {
            self.partial = Vec::new();
        }
        Ok(app.len())
    }

    fn shared_encoding(&self) -> Option<SharedEncoding> {
        // Mid-line, the next line starts with what is held; closing or
        // closed, nothing more may go out.
        let clean = !self.closing && !self.finished && self.partial.is_empty();
        clean.then_some(SharedEncoding::WebSocketText)
    }

    fn encode_shared(&self, app: &[u8], wire_out: &mut Vec<u8>) -> Result<(), LayerError> {
        if self.shared_encoding().is_none() {
            return Err(LayerError::Closed);
        }
        // The frames `on_app_output` has tungstenite's context write for
        // these lines (a server's: final, unmasked), made by tungstenite's
        // own frame type without touching the context.
        for line in app.split_inclusive(|&b| b == b'\n') {
            let Some(line) = line.strip_suffix(b"\n") else {
                return Err(LayerError::Closed); // not a whole line: not shareable
            };
            let text = text_of(line);
            let frame = Frame::message(text.into_bytes(), OpCode::Data(Data::Text), true);
            frame.format(wire_out).map_err(|_| LayerError::Closed)?;
        }
        Ok(())
    }

    fn close(&mut self, wire_out: &mut Vec<u8>) {
        if self.closing || self.finished {
            return;
        }
        self.closing = true;
        let mut pipe = Pipe {
            input: &[],
            output: wire_out,
        };
        // A partial line still goes out before the Close.
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            let text = String::from_utf8_lossy(&line).into_owned();
            let _ = self.ctx.write(&mut pipe, Message::text(text));
        }
        let frame = CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        };
        // ConnectionClosed: the peer closed first and our reply is out.
        if let Err(WsError::ConnectionClosed) = self.ctx.close(&mut pipe, Some(frame)) {
            self.finished = true;
        }
    }

    fn handshaking(&self) -> bool {
        false
    }

    fn wants_read(&self) -> bool {
        !self.finished
    }

    fn is_finished(&self) -> bool {
        self.finished
    }
}
