//! WebSocket (RFC 6455) as sans-IO [`Layer`](crate::layer::Layer)s on
//! tungstenite: [`WebServer`] serves pages over HTTP/1.1 and upgrades
//! `GET /ws`-style requests, after which [`WsSession`] carries text
//! messages as lines.
//!
//! Framing, masking rules, fragmentation, UTF-8 checks, ping/pong and the
//! close handshake are tungstenite's (`WebSocketContext` over an in-memory
//! stream); this module moves bytes between it and the reactor's buffers
//! and turns messages into lines and back. Output is never held by
//! tungstenite: every frame is appended to the caller's buffer at once, so
//! nothing here waits on `WouldBlock` or `WriteBufferFull`, and the
//! reactor's backpressure and slow-consumer cap apply to WebSocket
//! clients exactly as to TCP ones.
//!
//! Cargo feature `websocket` (on by default). Its cost (`docs/benchmarks.md`):
//! tungstenite and its dependencies (sha1, rand, http, bytes) take at most
//! 20 s of CPU to compile from clean, and TLS plus WebSocket together add
//! 1.6 MB to the stripped `chatroom` binary (3.0 MB without, 4.6 MB with).
//! An idle upgraded WebSocket costs about 5.5 KiB more than a TCP client
//! (tungstenite's context, its 4 KiB read buffer included).
//!
//! ```
//! use mio_selectors::layer::Layer;
//! use mio_selectors::ws::{OriginCheck, Site, WebServer};
//!
//! let site = Site::new().websocket("/ws").origin(OriginCheck::Any).into_shared();
//! let mut conn = WebServer::new(site);
//! let (mut lines, mut out) = (Vec::new(), Vec::new());
//! let req = "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
//!            Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
//! let p = conn.on_wire_input(req.as_bytes(), &mut lines, &mut out)?;
//! assert!(p.handshake_done);
//! assert!(String::from_utf8_lossy(&out).contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
//!
//! // A masked text frame "hi" from the browser becomes the line "hi\n".
//! out.clear();
//! let frame = [0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2];
//! conn.on_wire_input(&frame, &mut lines, &mut out)?;
//! assert_eq!(lines, b"hi\n");
//!
//! // A line from the application becomes one text frame.
//! conn.on_app_output(b"* welcome\n", &mut out)?;
//! assert_eq!(out, b"\x81\x09* welcome");
//! # Ok::<(), mio_selectors::layer::LayerError>(())
//! ```

mod server;
mod session;

pub use server::{OriginCheck, Site, WebServer, MAX_REQUESTS_PER_CONNECTION};
pub use session::{WsConfig, WsSession};

#[cfg(test)]
mod tests;
