//! # mio-selectors
//!
//! Non-blocking socket servers in Rust without async, shaped like Python's
//! `selectors` tutorials and correct under mio's edge-triggered readiness.
//!
//! # Layout
//!
//! Each module has one job, and each public item one path: the core names
//! below are at the crate root, everything else in the module it belongs to.
//!
//! | module | job | public names |
//! |---|---|---|
//! | `selector/` | Python's `selectors` on mio, level-triggered by re-arming | [`Selector`] (root); [`selector::SelectorKey`], [`selector::SelectorMap`], [`selector::FileObj`] |
//! | `events` | the read/write mask both halves use | [`EventMask`], [`EVENT_READ`], [`EVENT_WRITE`] (root) |
//! | `reactor/` | the event loop, the connections it owns, timers, and what callbacks may do | [`Reactor`], [`Handler`], [`Context`], [`Handle`], [`Config`], [`ConnId`], [`CloseReason`], [`PeerAddr`] (root); ids, [`reactor::ListenOptions`], [`reactor::Idle`], [`reactor::Loop`], [`reactor::TokenBucket`] |
//! | `group/` | a reactor per core: N reactor threads sharing a port, messages between them, limits for all of them | [`group::ReactorGroup`], [`group::GroupOptions`], [`group::AcceptMode`], [`group::GroupHandle`], [`group::Message`], [`group::Quota`], ... |
//! | `buf/` | connection buffers: input, pooled storage, output with shared broadcast segments | [`InBuf`] (root) |
//! | `codec/` | framing over `InBuf` without copies, and text made safe for terminals | [`codec::LineCodec`], [`codec::LengthPrefixedCodec`], [`codec::Decoder`], [`codec::Encoder`], [`codec::terminal_safe`], ... |
//! | `metrics/` | per-reactor counters, their snapshots, the Prometheus text format and the `/metrics` answer | [`metrics::Metrics`], [`metrics::Snapshot`], [`metrics::render`] |
//! | `redis/` | a sans-IO Redis link (RESP2 via `redis-protocol`, pipelining, pub/sub, caps, backoff) and its reactor carrier; feature `redis` (default) | [`redis::RedisConn`], [`redis::Link`], [`redis::RedisUrl`], [`redis::RedisError`], ... |
//! | `error` | the crate's one error type | [`Error`], [`Result`] (root) |
//! | `layer` | the sans-IO seam between a socket and a handler, and stacking | [`layer::Layer`], [`layer::Stack`], [`layer::Progress`], [`layer::LayerError`] |
//! | `tls/` | rustls sessions as a layer, PEM configs (feature `tls`) | `tls::TlsSession`, `tls::server_config`, `tls::client_config_trusting`, ... |
//! | `http/` | bounded HTTP/1.1 request heads and simple responses | [`http::parse_head`], [`http::Request`], [`http::Response`] |
//! | `ws/` | WebSocket server on tungstenite, messages as lines; an HTTP page server that upgrades (feature `websocket`) | `ws::WebServer`, `ws::Site`, `ws::WsSession` |
//!
//! Inside `reactor/`, `pass.rs` is the loop (`Reactor::turn` and its
//! steps; `accept.rs` and `expire.rs` hold the accept and deadline steps)
//! and the only caller of the [`Handler`]; `conn.rs` (with `conn/`) owns a
//! connection's lifecycle and backpressure, `conns.rs` the connection
//! bookkeeping, `timers.rs` the timers (pure data), `context.rs` (with `context/`)
//! the callback API. `selector/` never imports `reactor/`, and the reactor never
//! uses the `Selector`. Applications live outside the library and use only this
//! public API: `examples/chatroom/` is the chat server, a [`Handler`] on a
//! [`Reactor`] with [`codec::LineCodec`], [`reactor::TokenBucket`] and
//! [`codec::terminal_safe`]. See `docs/ARCHITECTURE.md` for the loop's
//! pass and its invariants.
//!
//! # The major components
//!
//! - [`Selector`]: Python's `selectors.DefaultSelector` on mio: `register`,
//!   `modify`, `unregister`, `select`, `get_key`, `get_map`, `close`, keys
//!   with data, Python's errors as [`Error`] variants, and Python's
//!   level-triggered reporting. For porting a tutorial call by call.
//! - [`Reactor`] with a [`Handler`]: the tutorial's multiconn server with the
//!   I/O done for you. The reactor accepts, reads into each connection's
//!   `inb`, writes its `outb`, applies backpressure and closes; your
//!   `accept_wrapper` and `service_connection` only decide what to send,
//!   through a [`Context`].
//! - [`Handle`]: stops a running reactor from another thread or a signal.
//! - [`group::ReactorGroup`]: a reactor per core on one port, each
//!   connection on one reactor for life, with [`Context::post`] and
//!   [`Handler::on_message`] for the messages between them.
//!
//! Unix only (the selector works on raw file descriptors). The library
//! writes nothing to stdout or stderr: it emits [`log`] records; the
//! examples print them through `env_logger`.
//!
//! # Safety
//!
//! The crate is `#![forbid(unsafe_code)]`, and no measured need asks for
//! an exception: every system call goes through a safe wrapper (mio for
//! epoll and sockets, `socket2` for socket options, `signal-hook-mio` for
//! signals, which arrive as events rather than in a handler, `memmap2` for
//! the pooled buffers' anonymous maps), and input
//! buffers are read into already-initialised spare capacity, which costs
//! no `memset` per read. The fault, load and bad-input suite
//! (`docs/reliability.md`) runs it with zero panics.
//!
//! ```
//! use mio_selectors::{Selector, EVENT_READ};
//! use std::io::Write;
//! use std::time::Duration;
//!
//! let (mut a, b) = std::os::unix::net::UnixStream::pair()?;
//! let mut sel = Selector::new()?;
//! sel.register(&b, EVENT_READ, "b")?;
//! a.write_all(b"ping")?;
//! let ready = sel.select(Some(Duration::from_secs(5)))?;
//! assert_eq!(ready.len(), 1);
//! assert_eq!(sel.get_key(ready[0].0)?.data, "b");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg(unix)]

mod buf;
pub mod codec;
mod error;
mod events;
pub mod group;
pub mod metrics;
pub mod reactor;
#[cfg(feature = "redis")]
pub mod redis;
pub mod selector;

// Protocol layers between sockets and handlers (TLS, HTTP, WebSocket).
pub mod http;
pub mod layer;
#[cfg(feature = "tls")]
pub mod tls;
#[cfg(feature = "websocket")]
pub mod ws;

pub use buf::InBuf;
pub use error::{Error, Result};
pub use events::{EventMask, EVENT_READ, EVENT_WRITE};
pub use reactor::config::Config;
pub use reactor::context::Context;
pub use reactor::event_loop::Reactor;
pub use reactor::handle::Handle;
pub use reactor::handler::{CloseReason, Handler};
pub use reactor::id::ConnId;
pub use reactor::peer::PeerAddr;
pub use selector::select::Selector;

/// The README's examples, compiled and run as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
