//! `Core`: the reactor state that both the loop and [`Context`](crate::Context)
//! reach: connections, endpoints, timers, the buffer pool, the limits. Its
//! methods are the operations both need; each acts on an outcome of a
//! [`Conn`](super::conn::Conn) method. It never calls the handler.

use std::collections::VecDeque;
use std::os::unix::io::RawFd;
use std::time::Instant;

use mio::{Interest, Registry};

use super::conn::{later, Closing, Output, State};
use super::conns::Conns;
use super::endpoint::{Endpoint, Endpoints};
use super::stream::Stream;
use super::timers::Timers;
use super::SourceId;
use crate::buf::BufPool;
use crate::{CloseReason, Config, ConnId, Error, EventMask, Handle, PeerAddr, Result};

pub(crate) struct Core<D> {
    pub(crate) conns: Conns<D>,
    pub(crate) endpoints: Endpoints,
    pub(crate) timers: Timers,
    /// Graceful-close deadlines, in order (they all use `config.linger`).
    pub(crate) linger: VecDeque<(Instant, ConnId)>,
    pub(crate) pool: BufPool,
    pub(crate) config: Config,
    pub(crate) registry: Registry,
    pub(crate) handle: Handle,
    /// The time this pass started (read once per pass, not per event).
    pub(crate) now: Instant,
    pub(crate) shutting_down: bool,
}

impl<D> Core<D> {
    pub(crate) fn new(config: Config, registry: Registry, handle: Handle) -> Self {
        Core {
            conns: Conns::default(),
            endpoints: Endpoints::default(),
            timers: Timers::default(),
            linger: VecDeque::new(),
            pool: BufPool::new(config.read_chunk, config.pool_size),
            config,
            registry,
            handle,
            now: Instant::now(),
            shutting_down: false,
        }
    }

    /// Registers `stream` and files it. The slot is named first and filled
    /// only if registration succeeds, so a failure leaves nothing behind.
    pub(crate) fn insert(
        &mut self,
        mut stream: Stream,
        peer: PeerAddr,
        state: State,
    ) -> Result<ConnId> {
        if self.conns.len() >= self.config.max_connections {
            return Err(Error::TooManyConnections(self.conns.len()));
        }
        if let Stream::Tcp(tcp) = &stream {
            if self.config.nodelay {
                let _ = tcp.set_nodelay(true);
            }
            if let Some(idle) = self.config.keepalive {
                let keepalive = socket2::TcpKeepalive::new().with_time(idle);
                let _ = socket2::SockRef::from(tcp).set_tcp_keepalive(&keepalive);
            }
        }
        let id = self.conns.next_id();
        let interest = Interest::READABLE | Interest::WRITABLE;
        self.registry.register(&mut stream, id.token(), interest)?;
        Ok(self.conns.insert(stream, peer, state))
    }

    /// Ends a connection now: pending output is dropped.
    pub(crate) fn kill(&mut self, id: ConnId, reason: CloseReason) {
        let Some((conn, lists)) = self.conns.entry(id) else {
            return;
        };
        if conn.kill(reason, &mut self.pool) {
            lists.push_dead(id);
        }
    }

    /// Turns a closing or lingering connection into a dead one, keeping its reason.
    pub(crate) fn finish(&mut self, id: ConnId) {
        let Some((conn, lists)) = self.conns.entry(id) else {
            return;
        };
        if conn.finish(&mut self.pool) {
            lists.push_dead(id);
        }
    }

    /// Starts a graceful close: flush (for as long as the peer keeps
    /// reading), FIN, linger (at most `config.linger` without progress).
    pub(crate) fn close_gracefully(&mut self, id: ConnId, reason: CloseReason) {
        let Some((conn, lists)) = self.conns.entry(id) else {
            return;
        };
        match conn.close(reason, &mut self.pool) {
            Closing::Started => {
                let deadline = later(self.now, self.config.linger);
                self.linger.push_back((deadline, id));
                // The flush step sends FIN once `outb` is empty.
                lists.mark_dirty(id, conn);
            }
            Closing::Kill(reason) => self.kill(id, reason),
            Closing::Deferred | Closing::Ignored => {}
        }
    }

    /// Queues output for `id`, or ends it if its output would pass
    /// `config.max_outb`.
    pub(crate) fn push_output(&mut self, id: ConnId, data: Output<'_>) -> Result<()> {
        let (max, high) = (self.config.max_outb, self.config.high_water);
        let (conn, lists) = self.conns.entry(id).ok_or(Error::NoSuchConnection)?;
        match conn.queue(data, &mut self.pool, max, high) {
            Ok(queued) => {
                if queued {
                    lists.mark_dirty(id, conn);
                }
                Ok(())
            }
            Err(Error::OutputOverflow) => {
                log::info!(
                    "{id} ({}): pending output would pass {max} bytes; closing",
                    conn.peer
                );
                self.kill(id, CloseReason::OutputOverflow);
                Err(Error::OutputOverflow)
            }
            Err(e) => Err(e),
        }
    }

    pub(crate) fn register_fd(&mut self, fd: RawFd, events: EventMask) -> Result<SourceId> {
        let interest = events.to_interest()?;
        let id = SourceId(self.endpoints.next_id());
        self.registry
            .register(&mut mio::unix::SourceFd(&fd), id.token(), interest)?;
        let ready = EventMask::EMPTY;
        self.endpoints.insert(Endpoint::Fd { fd, events, ready });
        Ok(id)
    }
}
