//! `Endpoint`: what the reactor serves besides connections: listening
//! sockets (TCP, Unix), UDP sockets, and plain file descriptors (stdin).

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::os::unix::io::RawFd;
use std::path::PathBuf;

use mio::net::{TcpListener, UdpSocket, UnixListener};
use slab::Slab;

use super::id::{endpoint_parts, endpoint_raw, GEN_MASK};

use super::listen::FileId;
use super::stream::Stream;
use crate::{EventMask, PeerAddr};

pub(crate) enum Endpoint {
    Listener(Listener),
    Udp(Udp),
    /// A descriptor the application reads itself; reported level-triggered.
    /// `ready` is what the last events said, not yet reported.
    Fd {
        fd: RawFd,
        events: EventMask,
        ready: EventMask,
    },
}

/// Every endpoint, by raw id (`generation << 32 | slot`, see
/// [`endpoint_raw`]): the slab and the generations, so that every lookup
/// compares the generation and a stale id finds nothing.
#[derive(Default)]
pub(crate) struct Endpoints {
    slab: Slab<(u32, Endpoint)>,
    next_gen: u32,
}

impl Endpoints {
    /// The raw id the next [`insert`](Self::insert) files under: register
    /// the socket with it first, and file it only if that succeeded, so a
    /// failure leaves nothing behind.
    pub(crate) fn next_id(&self) -> usize {
        endpoint_raw(self.slab.vacant_key(), self.next_gen)
    }

    /// Files `endpoint` under [`next_id`](Self::next_id).
    pub(crate) fn insert(&mut self, endpoint: Endpoint) -> usize {
        let raw = self.next_id();
        self.slab.insert((self.next_gen, endpoint));
        self.next_gen = (self.next_gen + 1) & GEN_MASK;
        raw
    }

    pub(crate) fn get(&self, raw: usize) -> Option<&Endpoint> {
        let (key, gen) = endpoint_parts(raw);
        self.slab.get(key).filter(|e| e.0 == gen).map(|e| &e.1)
    }

    pub(crate) fn get_mut(&mut self, raw: usize) -> Option<&mut Endpoint> {
        let (key, gen) = endpoint_parts(raw);
        self.slab
            .get_mut(key)
            .filter(|e| e.0 == gen)
            .map(|e| &mut e.1)
    }

    pub(crate) fn remove(&mut self, raw: usize) -> Option<Endpoint> {
        self.get(raw)?;
        Some(self.slab.remove(endpoint_parts(raw).0).1)
    }

    /// The raw ids of every endpoint, in slot order.
    pub(crate) fn ids(&self) -> Vec<usize> {
        let ids = self.slab.iter().map(|(key, e)| endpoint_raw(key, e.0));
        ids.collect()
    }

    /// The endpoint in slot `key`, if any, with its raw id (for loops over
    /// the slots that must not hold a borrow across callbacks).
    pub(crate) fn slot_mut(&mut self, key: usize) -> Option<(usize, &mut Endpoint)> {
        let (gen, e) = self.slab.get_mut(key)?;
        Some((endpoint_raw(key, *gen), e))
    }

    /// One past the highest slot in use.
    pub(crate) fn slots(&self) -> usize {
        self.slab.capacity()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Endpoint> {
        self.slab.iter().map(|(_, e)| &e.1)
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut Endpoint> {
        self.slab.iter_mut().map(|(_, e)| &mut e.1)
    }
}

pub(crate) struct Listener {
    pub(crate) sock: ListenSock,
    /// Readiness not yet drained (edge-triggered: nobody will tell us again).
    pub(crate) ready: bool,
    /// The layer each accepted connection gets (TLS, HTTP/WebSocket).
    pub(crate) wrap: Option<super::Wrap>,
    /// Its connections are metrics scrapes the reactor answers itself
    /// ([`Reactor::serve_metrics`](crate::Reactor::serve_metrics)).
    pub(crate) scrape: bool,
}

pub(crate) enum ListenSock {
    Tcp(TcpListener),
    /// `path` is removed when the listener is dropped if it is still the
    /// socket file this listener created (`created`): one that replaced it
    /// since (another server's) is left alone.
    Unix {
        sock: UnixListener,
        path: Option<PathBuf>,
        created: Option<FileId>,
    },
}

impl ListenSock {
    pub(crate) fn accept(&self) -> io::Result<(Stream, PeerAddr)> {
        match self {
            ListenSock::Tcp(l) => l.accept().map(|(s, a)| (Stream::Tcp(s), PeerAddr::from(a))),
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
            path: Some(path),
            created: Some(created),
            ..
        } = self
        {
            if FileId::of(path) != Some(*created) {
                log::info!("{} is no longer our socket: left alone", path.display());
            } else if let Err(e) = std::fs::remove_file(&*path) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A stale id (a `SourceId` kept after `unregister_source`, say) must not
    /// reach the endpoint that reuses its slot: it once could unregister a
    /// later descriptor.
    #[test]
    fn a_reused_slot_gets_a_new_generation() {
        let mut eps = Endpoints::default();
        let fd = Endpoint::Fd {
            fd: 0,
            events: crate::EVENT_READ,
            ready: EventMask::EMPTY,
        };
        let old = eps.insert(fd);
        assert!(eps.remove(old).is_some());
        let new = eps.insert(Endpoint::Fd {
            fd: 1,
            events: crate::EVENT_READ,
            ready: EventMask::EMPTY,
        });
        assert_eq!(endpoint_parts(old).0, endpoint_parts(new).0, "same slot");
        assert_ne!(old, new);
        assert!(eps.get(old).is_none() && eps.remove(old).is_none());
        assert!(matches!(eps.get(new), Some(Endpoint::Fd { fd: 1, .. })));
        assert_eq!(eps.ids(), [new]);
    }
}
