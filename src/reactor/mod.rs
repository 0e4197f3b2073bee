//! The reactor half: an event loop that owns every socket and buffer and
//! calls the application's [`Handler`](crate::Handler). Its core types
//! ([`Reactor`](crate::Reactor), [`Handler`](crate::Handler),
//! [`Context`](crate::Context), [`Handle`](crate::Handle),
//! [`Config`](crate::Config), [`ConnId`](crate::ConnId),
//! [`CloseReason`](crate::CloseReason), [`PeerAddr`](crate::PeerAddr)) are
//! at the crate root; this module holds the rest: the ids of endpoints and
//! timers, listening options, idle-timeout kinds, the [`Loop`] that work
//! from other threads sees, and [`TokenBucket`] for rate limits.

mod accept;
pub(crate) mod config;
pub(crate) mod conn;
mod conns;
pub(crate) mod context;
mod core;
pub(crate) mod endpoint;
pub(crate) mod event_loop;
mod expire;
mod group;
pub(crate) mod handle;
pub(crate) mod handler;
pub(crate) mod id;
mod listen;
mod pass;
pub(crate) mod peer;
mod rate;
pub(crate) mod stream;
mod timers;
pub(crate) mod wrap;
mod wrap_loop;

pub use conn::Idle;
pub use handle::Loop;
pub use id::{ListenerId, SourceId, TimerId, UdpId};
pub use listen::ListenOptions;
pub use rate::TokenBucket;
pub use wrap::{BoxLayer, Wrap, HANDSHAKE_TIMEOUT};
