//! [`PeerAddr`]: who is at the other end of a connection.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The address of a connection's peer: an IP address and port, or a Unix
/// socket path (often unnamed: Unix clients rarely bind one).
///
/// It prints as `ip:port`, `[ipv6]:port`, the socket path, or `unix:unnamed`.
/// The reactor names an accepted or connected TCP peer through its
/// `From<SocketAddr>`, so an IPv4 client of a dual-stack listener is
/// `127.0.0.1:p`, not `[::ffff:127.0.0.1]:p`.
///
/// ```
/// use mio_selectors::PeerAddr;
/// let v6: PeerAddr = "[::1]:8000".parse::<std::net::SocketAddr>()?.into();
/// assert_eq!(v6.to_string(), "[::1]:8000");
/// assert_eq!(v6.inet().map(|a| a.port()), Some(8000));
/// assert_eq!(PeerAddr::Unix(None).to_string(), "unix:unnamed");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PeerAddr {
    /// A TCP peer.
    Inet(SocketAddr),
    /// A Unix stream peer, with its path if it bound one.
    Unix(Option<PathBuf>),
}

impl PeerAddr {
    /// The IP address and port, for a TCP peer.
    ///
    /// ```
    /// assert!(mio_selectors::PeerAddr::Unix(None).inet().is_none());
    /// ```
    pub fn inet(&self) -> Option<SocketAddr> {
        match self {
            PeerAddr::Inet(a) => Some(*a),
            PeerAddr::Unix(_) => None,
        }
    }

    pub(crate) fn from_unix(addr: &std::os::unix::net::SocketAddr) -> PeerAddr {
        PeerAddr::Unix(addr.as_pathname().map(|p| p.to_path_buf()))
    }
}

/// An IPv4 peer of a dual-stack (`[::]`) socket, which the kernel reports
/// as the v4-mapped `[::ffff:a.b.c.d]:p`, becomes `a.b.c.d:p`: one client
/// has one name (and one per-IP count) whichever way the server is bound.
///
/// ```
/// use mio_selectors::PeerAddr;
/// let mapped: std::net::SocketAddr = "[::ffff:127.0.0.1]:8000".parse()?;
/// assert_eq!(PeerAddr::from(mapped).to_string(), "127.0.0.1:8000");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
impl From<SocketAddr> for PeerAddr {
    fn from(addr: SocketAddr) -> Self {
        match addr {
            SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
                Some(v4) => PeerAddr::Inet(SocketAddr::new(v4.into(), v6.port())),
                None => PeerAddr::Inet(addr),
            },
            SocketAddr::V4(_) => PeerAddr::Inet(addr),
        }
    }
}

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerAddr::Inet(a) => a.fmt(f),
            PeerAddr::Unix(Some(p)) => p.display().fmt(f),
            PeerAddr::Unix(None) => f.write_str("unix:unnamed"),
        }
    }
}
