//! [`ListenOptions`]: how a TCP listener is bound; and binding a Unix one.

use std::io;
use std::net::SocketAddr;
use std::path::Path;

use socket2::{Domain, Protocol, Socket, Type};

/// Socket options for [`Reactor::listen_with`](crate::Reactor::listen_with),
/// set with `socket2` before `bind` and `listen`. Options of accepted
/// sockets (`TCP_NODELAY`, keepalive) are in [`Config`](crate::Config).
///
/// ```
/// use mio_selectors::reactor::ListenOptions;
/// let options = ListenOptions { backlog: 4096, reuse_port: true, ..ListenOptions::default() };
/// assert!(options.reuse_address);
/// ```
#[derive(Debug, Clone)]
pub struct ListenOptions {
    /// Most connections the kernel queues before `accept`. Default 1024.
    pub backlog: i32,
    /// `SO_REUSEADDR`: bind again at once after a restart. Default `true`.
    pub reuse_address: bool,
    /// `SO_REUSEPORT`: several listeners (processes or reactors) share one
    /// port and the kernel spreads connections among them. Default `false`.
    pub reuse_port: bool,
    /// `IPV6_V6ONLY` for an IPv6 address: `Some(false)` also accepts IPv4
    /// on `[::]`. Default `None` (the system's choice).
    pub only_v6: Option<bool>,
}

impl Default for ListenOptions {
    fn default() -> Self {
        ListenOptions {
            backlog: 1024,
            reuse_address: true,
            reuse_port: false,
            only_v6: None,
        }
    }
}

impl ListenOptions {
    /// A non-blocking listener bound to `addr` with these options.
    pub(crate) fn bind(&self, addr: SocketAddr) -> io::Result<mio::net::TcpListener> {
        let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        sock.set_reuse_address(self.reuse_address)?;
        if self.reuse_port {
            sock.set_reuse_port(true)?;
        }
        if let (Some(only), true) = (self.only_v6, addr.is_ipv6()) {
            sock.set_only_v6(only)?;
        }
        sock.set_nonblocking(true)?;
        sock.bind(&addr.into())?;
        sock.listen(self.backlog)?;
        Ok(mio::net::TcpListener::from_std(sock.into()))
    }
}

/// Binds a Unix stream listener at `path`, first removing a stale socket
/// file: one that is a socket nobody listens on (left by a crash). A live
/// listener's socket, or any other file, is left alone and the bind fails
/// with an error that says what is there. Returns the listener and the
/// identity (device, inode) of the socket file it created, so that only
/// that file is removed at close.
pub(crate) fn bind_unix(path: &Path) -> io::Result<(mio::net::UnixListener, Option<FileId>)> {
    use std::os::unix::fs::FileTypeExt;
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        // The probe connects without blocking: a blocking connect to a live
        // listener whose backlog is full waits (forever) until it accepts,
        // hanging the bind; non-blocking, that is `WouldBlock`: live.
        let refused = || {
            matches!(mio::net::UnixStream::connect(path),
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused)
        };
        let kind = meta.file_type();
        let in_the_way = |what: &str| {
            let why = format!("{what} is in the way, not a socket; left alone");
            io::Error::new(io::ErrorKind::AlreadyExists, why)
        };
        if kind.is_socket() && refused() {
            log::info!("removing stale socket {}", path.display());
            std::fs::remove_file(path)?;
        } else if kind.is_socket() {
            let why = "another server is listening on that socket (left alone)";
            return Err(io::Error::new(io::ErrorKind::AddrInUse, why));
        } else if kind.is_dir() {
            return Err(in_the_way("a directory"));
        } else if kind.is_symlink() {
            return Err(in_the_way("a symbolic link"));
        } else if kind.is_file() {
            return Err(in_the_way("a regular file"));
        } else {
            return Err(in_the_way("a special file (FIFO or device)"));
        }
    }
    let sock = mio::net::UnixListener::bind(path)?;
    Ok((sock, FileId::of(path)))
}

/// Which file a path names (device and inode), to tell "the socket file
/// this listener created" from one that replaced it since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    /// The socket file at `path` (not following a symbolic link), if any.
    pub(crate) fn of(path: &Path) -> Option<FileId> {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let meta = std::fs::symlink_metadata(path).ok()?;
        meta.file_type().is_socket().then(|| FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }
}
