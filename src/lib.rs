//! # mio-selectors
//!
//! Non-blocking socket servers in Rust without async, shaped like Python's
//! `selectors` tutorials and correct under mio's edge-triggered readiness.
//!
//! The major components:
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
//! signals, which arrive as events rather than in a handler), and input
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

mod buffer;
pub mod chat;
pub mod codec;
mod config;
mod conn;
mod context;
mod endpoint;
mod error;
mod events;
mod handle;
mod handler;
mod id;
mod key;
mod line;
mod listen;
mod map;
mod outbuf;
mod peer;
mod rate;
mod reactor;
mod sanitize;
mod selector;
mod stream;

// Protocol layers between sockets and handlers (TLS, HTTP, WebSocket).
pub mod http;
pub mod layer;
#[cfg(feature = "tls")]
pub mod tls;
mod wrap;
#[cfg(feature = "websocket")]
pub mod ws;

pub use buffer::InBuf;
pub use chat::{ChatConfig, ChatServer};
pub use codec::{
    for_each_frame, for_each_frame_in, Decoder, EncodeError, Encoder, FrameTooLarge,
    LengthPrefixedCodec, LineCodec, LineTooLong,
};
pub use config::Config;
pub use conn::Idle;
pub use context::Context;
pub use error::{Error, Result};
pub use events::{EventMask, EVENT_READ, EVENT_WRITE};
pub use handle::{Handle, Loop};
pub use handler::{CloseReason, Handler};
pub use id::{ConnId, ListenerId, SourceId, TimerId, UdpId};
pub use key::{FileObj, SelectorKey};
pub use line::{Line, LineFramer};
pub use listen::ListenOptions;
pub use map::SelectorMap;
pub use peer::PeerAddr;
pub use rate::TokenBucket;
pub use reactor::Reactor;
pub use sanitize::terminal_safe;
pub use selector::Selector;
pub use wrap::{BoxLayer, Wrap, HANDSHAKE_TIMEOUT};

/// The README's examples, compiled and run as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
