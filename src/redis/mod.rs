//! A Redis link for the reactor: RESP2 through the
//! [`redis-protocol`](https://docs.rs/redis-protocol) crate, pipelined
//! commands, pub/sub, bounded output and capped reconnect backoff, with no
//! runtime and no thread of its own (cargo feature `redis`).
//!
//! Everything here is sans-IO: a [`RedisConn`] turns commands into bytes
//! to write and bytes read into [`Event`]s, and never touches a socket or
//! a clock's timer. Whoever owns the socket drives it: a reactor
//! connection, or a plain blocking `TcpStream` as the `redis_link` tests
//! do. That keeps the protocol logic testable without a network, and lets
//! any application fan out across processes through Redis with the same
//! part.
//!
//! - [`RedisUrl`]: `redis://[user[:password]@]host[:port][/db]`, with clear
//!   errors; its `AUTH` and `SELECT` become the connection's handshake.
//! - [`RedisConn`]: the connection; replies matched to caller tags in
//!   order, pub/sub messages as events, caps on output and in-flight
//!   commands ([`LinkConfig`]) whose breach is [`RedisError::LinkOverflow`]:
//!   treat the link as lost rather than let Redis slow anyone down.
//! - [`Link`]: a `RedisConn` carried by a reactor: connected with the
//!   reactor's own connect as an outgoing connection like any other, its
//!   output bounded against the reactor's pending bytes, a reply deadline,
//!   and the backoff delay when it is lost. The handler keeps it and routes
//!   the connection's callbacks to it.
//! - [`Backoff`]: the delay before the next connect, at most its cap.
//! - [`RedisError`]: refused connects, `-NOAUTH`, rejected passwords,
//!   peers that are not Redis; [`ServerError`] for `-ERR` replies.
//!
//! A whole exchange, fed by hand:
//!
//! ```
//! use mio_selectors::redis::{Event, LinkConfig, RedisConn, RedisUrl};
//!
//! let url = RedisUrl::parse("redis://127.0.0.1:6379")?;
//! let mut sub: RedisConn<()> = RedisConn::new(&url, LinkConfig::default());
//! sub.subscribe((), &["room"])?;
//! let n = sub.to_send().len();
//! sub.sent(n); // written to the socket
//!
//! sub.feed(b"+PONG\r\n*3\r\n$9\r\nsubscribe\r\n$4\r\nroom\r\n:1\r\n")?;
//! sub.feed(b"*3\r\n$7\r\nmessage\r\n$4\r\nroom\r\n$5\r\nhello\r\n")?;
//! assert_eq!(sub.next_event(), Some(Event::Ready));
//! assert!(matches!(sub.next_event(), Some(Event::Reply { .. })));
//! assert_eq!(
//!     sub.next_event(),
//!     Some(Event::Message { channel: b"room".to_vec(), payload: b"hello".to_vec() })
//! );
//! # Ok::<(), mio_selectors::redis::RedisError>(())
//! ```

mod backoff;
mod conn;
mod error;
mod link;
mod scan;
mod url;
mod value;

pub use backoff::Backoff;
pub use conn::{Event, LinkConfig, RedisConn};
pub use error::{RedisError, ServerError};
pub use link::Link;
pub use url::{RedisUrl, DEFAULT_PORT};
pub use value::{Reply, Value};
