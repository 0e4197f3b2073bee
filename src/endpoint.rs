//! `Endpoint`: what the reactor serves besides connections: listening
//! sockets (TCP, Unix), UDP sockets, and plain file descriptors (stdin).

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::os::unix::io::RawFd;
use std::path::PathBuf;

use mio::net::{TcpListener, UdpSocket, UnixListener};

use crate::stream::Stream;
use crate::{EventMask, PeerAddr};

pub(crate) enum Endpoint {
    Listener(Listener),
    Udp(Udp),
    /// A descriptor the application reads itself; reported level-triggered.
    Fd {
        fd: RawFd,
        events: EventMask,
    },
}

pub(crate) struct Listener {
    pub(crate) sock: ListenSock,
    /// Readiness not yet drained (edge-triggered: nobody will tell us again).
    pub(crate) ready: bool,
    /// The layer each accepted connection gets (TLS, HTTP/WebSocket).
    pub(crate) wrap: Option<crate::Wrap>,
}

pub(crate) enum ListenSock {
    Tcp(TcpListener),
    /// `path` is removed when the listener is dropped, if we created it.
    Unix {
        sock: UnixListener,
        path: Option<PathBuf>,
    },
}

impl ListenSock {
    pub(crate) fn accept(&self) -> io::Result<(Stream, PeerAddr)> {
        match self {
            ListenSock::Tcp(l) => l.accept().map(|(s, a)| (Stream::Tcp(s), PeerAddr::Inet(a))),
            ListenSock::Unix { sock, .. } => sock
                .accept()
                .map(|(s, a)| (Stream::Unix(s), PeerAddr::from_unix(&a))),
        }
    }

    pub(crate) fn source(&mut self) -> &mut dyn mio::event::Source {
        match self {
            ListenSock::Tcp(l) => l,
            ListenSock::Unix { sock, .. } => sock,
        }
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            ListenSock::Tcp(l) => l
                .local_addr()
                .map_or_else(|e| e.to_string(), |a| a.to_string()),
            ListenSock::Unix { path, .. } => path
                .as_ref()
                .map_or_else(|| "unix:unnamed".into(), |p| p.display().to_string()),
        }
    }
}

impl Drop for ListenSock {
    fn drop(&mut self) {
        if let ListenSock::Unix {
            path: Some(path), ..
        } = self
        {
            if let Err(e) = std::fs::remove_file(&*path) {
                log::debug!("cannot remove {}: {e}", path.display());
            }
        }
    }
}

/// What a queued datagram costs beyond its bytes, charged against
/// `Config::udp_queue`.
pub(crate) const DATAGRAM_OVERHEAD: usize = 64;

/// A UDP socket and its bounded send queue.
pub(crate) struct Udp {
    pub(crate) sock: UdpSocket,
    pub(crate) readable: bool,
    pub(crate) writable: bool,
    /// Datagrams that met `WouldBlock`, sent when the socket is writable again.
    pub(crate) queue: VecDeque<(Box<[u8]>, SocketAddr)>,
    pub(crate) queued_bytes: usize,
}

impl Udp {
    pub(crate) fn new(sock: UdpSocket) -> Self {
        Udp {
            sock,
            readable: true,
            writable: true,
            queue: VecDeque::new(),
            queued_bytes: 0,
        }
    }

    /// Sends what is queued until `WouldBlock`. A datagram the kernel
    /// refuses outright (too big, no route) is dropped: UDP promises nothing.
    pub(crate) fn flush(&mut self) {
        while let Some((data, addr)) = self.queue.front() {
            if !self.writable {
                return;
            }
            match self.sock.send_to(data, *addr) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.writable = false;
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => log::debug!("udp: datagram to {addr} dropped: {e}"),
                Ok(_) => {}
            }
            self.queued_bytes -= data.len() + DATAGRAM_OVERHEAD;
            self.queue.pop_front();
        }
        if self.queue.capacity() > 0 {
            self.queue = VecDeque::new(); // an idle socket keeps no queue storage
        }
    }
}
