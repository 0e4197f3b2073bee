//! The one error type of the crate.

use std::io;
use std::os::unix::io::RawFd;

/// Everything that can go wrong in a [`Selector`](crate::Selector) or a
/// [`Reactor`](crate::Reactor).
///
/// Python's `selectors` raises `KeyError`, `ValueError` and `RuntimeError`
/// for misuse; here each of those is a variant, checked in release builds too
/// (mio itself only checks double registration under debug assertions).
///
/// ```
/// use mio_selectors::{Error, Selector, EVENT_READ};
///
/// let mut sel: Selector<()> = Selector::new()?;
/// // Python: KeyError("0 is not registered")
/// assert!(matches!(sel.unregister(0), Err(Error::NotRegistered(0))));
/// # Ok::<(), Error>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file descriptor is already registered (Python: `KeyError`).
    #[error("file descriptor {0} is already registered")]
    AlreadyRegistered(RawFd),
    /// The file descriptor is not registered (Python: `KeyError`).
    #[error("file descriptor {0} is not registered")]
    NotRegistered(RawFd),
    /// The file descriptor is negative (Python: `ValueError`).
    #[error("invalid file descriptor {0}")]
    InvalidFd(RawFd),
    /// The event mask is empty or has bits other than `EVENT_READ` and
    /// `EVENT_WRITE` (Python: `ValueError`).
    #[error("invalid events: {0:#x}")]
    InvalidEvents(u8),
    /// The selector or reactor was closed (Python: `RuntimeError`).
    #[error("the selector is closed")]
    Closed,
    /// The connection id does not name a live connection.
    #[error("no such connection")]
    NoSuchConnection,
    /// The listener, UDP socket or source id names nothing.
    #[error("no such endpoint")]
    NoSuchEndpoint,
    /// [`Config::max_connections`](crate::Config::max_connections) connections are open already.
    #[error("too many connections ({0})")]
    TooManyConnections(usize),
    /// [`Context::write_eof`](crate::Context::write_eof) was called on the
    /// connection: it sends nothing more.
    #[error("the connection's write side is shut down")]
    WriteClosed,
    /// A UDP socket's send queue is full ([`Config::udp_queue`](crate::Config::udp_queue));
    /// the datagram was dropped.
    #[error("send queue full: datagram dropped")]
    QueueFull,
    /// A [`Context::send`](crate::Context::send) would have passed
    /// [`Config::max_outb`](crate::Config::max_outb); the connection has been
    /// closed with [`CloseReason::OutputOverflow`](crate::CloseReason::OutputOverflow).
    #[error("pending output over its cap: connection closed")]
    OutputOverflow,
    /// Binding a listener failed; the message names the address.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address that could not be bound.
        addr: String,
        /// The OS error.
        source: io::Error,
    },
    /// A [`Config`](crate::Config) whose limits contradict each other.
    #[error("invalid config: {0}")]
    Config(&'static str),
    /// A reactor of a [`ReactorGroup`](crate::group::ReactorGroup) panicked
    /// (in its handler, say); the group's other reactors were stopped.
    #[error("reactor-{reactor} panicked: {message}")]
    ReactorPanicked {
        /// The index of the reactor that panicked.
        reactor: usize,
        /// The panic's message.
        message: String,
    },
    /// An error from the operating system.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
