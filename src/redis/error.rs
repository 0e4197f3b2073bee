//! The Redis link's error type.

use std::fmt;
use std::io;
use std::time::Duration;

/// An error reply from Redis (`-ERR ...`, `-NOAUTH ...`, `-WRONGPASS ...`).
///
/// The first word is the error's code, as Redis documents it; the rest is
/// the human-readable message.
///
/// ```
/// use mio_selectors::redis::ServerError;
///
/// let e = ServerError::new("NOAUTH Authentication required.");
/// assert_eq!(e.code(), "NOAUTH");
/// assert_eq!(e.message(), "Authentication required.");
/// assert_eq!(e.to_string(), "NOAUTH Authentication required.");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    text: String,
}

impl ServerError {
    /// Wraps the text of an error reply (without the leading `-`).
    pub fn new(text: impl Into<String>) -> Self {
        ServerError { text: text.into() }
    }

    /// The error code: the reply's first word (`ERR`, `NOAUTH`, `WRONGTYPE`, ...).
    pub fn code(&self) -> &str {
        self.text.split(' ').next().unwrap_or("")
    }

    /// The text after the code.
    pub fn message(&self) -> &str {
        self.text.split_once(' ').map_or("", |(_, rest)| rest)
    }

    /// The whole reply text, code included.
    pub fn text(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::error::Error for ServerError {}

/// Everything that can go wrong on a Redis link.
///
/// After any of these but [`RedisError::NotAllowed`] and
/// [`RedisError::InvalidUrl`] the link is finished: drop its connection
/// and, if the error [is retryable](RedisError::is_retryable), connect again
/// after a [`Backoff`](super::Backoff) delay.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisError {
    /// The URL is not `redis://[user[:password]@]host[:port][/db]`.
    /// The URL is shown with its password masked.
    #[error("invalid Redis URL `{url}`: {reason}")]
    InvalidUrl {
        /// The URL as given, password masked.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The TCP connection could not be made (refused, unreachable, timed out).
    #[error("cannot connect to Redis at {addr}: {source}")]
    Connect {
        /// Where the connect went.
        addr: String,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// Redis rejected the credentials of the URL (`-WRONGPASS`, or `-ERR`
    /// when the server has no password set).
    #[error("Redis rejected the URL's credentials: {0}")]
    Auth(ServerError),
    /// Redis requires a password and the URL gave none (`-NOAUTH`).
    #[error("Redis requires a password ({0}); give it as redis://:PASSWORD@host:port")]
    NoAuth(ServerError),
    /// Redis refused the URL's database number.
    #[error("Redis refused SELECT {db}: {error}")]
    Select {
        /// The database asked for.
        db: u32,
        /// Redis's reply.
        error: ServerError,
    },
    /// The peer sent something that is not a RESP2 reply, a reply nobody
    /// asked for, a reply over the size or nesting limit, or answered the
    /// handshake's `PING` with something other than `PONG`: it is not a
    /// Redis server, or not a sane one.
    #[error("the peer does not speak Redis: {0}")]
    Protocol(String),
    /// Output queued toward Redis, or commands awaiting replies, passed
    /// their cap ([`LinkConfig`](super::LinkConfig)): Redis has fallen
    /// behind. The command was not queued; treat the link as lost.
    #[error(
        "link overflow: {what} toward Redis passed its cap of {cap}; the link is treated as lost"
    )]
    LinkOverflow {
        /// Which bound was hit ("pending output bytes" or "commands awaiting replies").
        what: &'static str,
        /// The bound.
        cap: usize,
    },
    /// A command that would change the connection's reply protocol
    /// (`SUBSCRIBE` through [`RedisConn::command`](super::RedisConn::command),
    /// `MONITOR`, `HELLO`, `CLIENT REPLY`, `RESET`), or an ordinary command
    /// on a connection in pub/sub mode. Nothing was queued; the link is fine.
    #[error("`{0}` is not allowed on this connection")]
    NotAllowed(String),
    /// The link failed earlier; it accepts nothing more.
    #[error("the Redis link has already failed")]
    Broken,
    /// Redis closed the connection.
    #[error("Redis closed the connection")]
    Closed,
    /// Redis did not answer in time.
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    /// A read or write on the link failed.
    #[error("I/O error on the Redis link: {0}")]
    Io(#[from] io::Error),
}

impl RedisError {
    /// Whether connecting again later may help: true for network trouble,
    /// overflow, a closed or broken link and protocol errors (a restarting
    /// proxy); false for a bad URL, rejected credentials or database, and
    /// misuse.
    ///
    /// ```
    /// use mio_selectors::redis::RedisError;
    ///
    /// assert!(RedisError::Closed.is_retryable());
    /// assert!(!RedisError::NotAllowed("MONITOR".into()).is_retryable());
    /// ```
    pub fn is_retryable(&self) -> bool {
        !matches!(
            self,
            RedisError::InvalidUrl { .. }
                | RedisError::Auth(_)
                | RedisError::NoAuth(_)
                | RedisError::Select { .. }
                | RedisError::NotAllowed(_)
        )
    }

    /// Whether this is a refused TCP connect (nothing listens on the port).
    pub fn is_refused(&self) -> bool {
        match self {
            RedisError::Connect { source, .. } | RedisError::Io(source) => {
                source.kind() == io::ErrorKind::ConnectionRefused
            }
            _ => false,
        }
    }
}
