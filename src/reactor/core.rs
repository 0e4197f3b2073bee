//! `Core`: the reactor state that both the loop and [`Context`](crate::Context)
//! reach: connections, endpoints, timers, the buffer pool, the limits. Its
//! methods are the operations both need; each acts on an outcome of a
//! [`Conn`](super::conn::Conn) method. It never calls the handler.

use std::collections::VecDeque;
use std::os::unix::io::RawFd;
use std::sync::Arc;
use std::time::Instant;

use mio::{Interest, Registry};

use super::conn::{later, Closing, Conn, Output, State};
use super::conns::Conns;
use super::endpoint::{Endpoint, Endpoints};
use super::stream::Stream;
use super::timers::Timers;
use super::SourceId;
use crate::buf::BufPool;
use crate::layer::SharedEncoding;
use crate::metrics::{Metrics, Snapshot};
use crate::{CloseReason, Config, ConnId, Error, EventMask, Handle, PeerAddr, Result};

pub(crate) struct Core<D> {
    pub(crate) conns: Conns<D>,
    pub(crate) endpoints: Endpoints,
    pub(crate) timers: Timers,
    /// Deadlines of graceful closes still flushing, in order (they all use
    /// `config.flush_timeout`).
    pub(crate) flushing: VecDeque<(Instant, ConnId)>,
    /// Deadlines of closes waiting for the peer's FIN, in order (they all
    /// use `config.linger`).
    pub(crate) linger: VecDeque<(Instant, ConnId)>,
    pub(crate) pool: BufPool,
    pub(crate) config: Config,
    pub(crate) registry: Registry,
    pub(crate) handle: Handle,
    /// The time this pass started (read once per pass, not per event).
    pub(crate) now: Instant,
    pub(crate) shutting_down: bool,
    /// The loop's own counters and the application's.
    pub(crate) metrics: Metrics,
    /// Metrics scrapes being answered (a few at most; kept here, not as a
    /// flag in every connection, which would cost each one 8 bytes).
    pub(crate) scrapes: Vec<ConnId>,
    /// This reactor's membership of a group, if it belongs to one.
    pub(crate) member: Option<Box<crate::group::Member>>,
}

impl<D> Core<D> {
    pub(crate) fn new(config: Config, registry: Registry, handle: Handle) -> Self {
        Core {
            conns: Conns::default(),
            endpoints: Endpoints::default(),
            timers: Timers::default(),
            flushing: VecDeque::new(),
            linger: VecDeque::new(),
            pool: BufPool::new(config.read_chunk, config.pool_bytes),
            config,
            registry,
            handle,
            now: Instant::now(),
            shutting_down: false,
            metrics: Metrics::default(),
            scrapes: Vec::new(),
            member: None,
        }
    }

    /// Whether `id` is a metrics scrape (one compare while none is).
    #[inline]
    pub(crate) fn is_scrape(&self, id: ConnId) -> bool {
        !self.scrapes.is_empty() && self.scrapes.contains(&id)
    }

    /// A snapshot of the counters, with the gauges that describe every
    /// connection and the pool filled in: one walk over the connections
    /// (scrapes left out).
    pub(crate) fn snapshot(&self) -> Snapshot {
        let mut s = self.metrics.snapshot();
        for (id, conn) in self.conns.iter() {
            if self.is_scrape(id) {
                continue;
            }
            s.active += 1;
            let out = conn.pending() as u64;
            s.output_pending += out;
            s.output_pending_max = s.output_pending_max.max(out);
            s.input_pending_max = s.input_pending_max.max(conn.inb.len() as u64);
        }
        s.pool_spare_bytes = self.pool.spare_bytes() as u64;
        s.pool_lent = self.pool.lent() as u64;
        (s.pool_allocations, s.pool_frees) = self.pool.churn();
        s
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
            // A TCP urgent byte (telnet's "synch", `MSG_OOB`) stays in the
            // stream as ordinary data, so an echo returns it in place.
            let _ = socket2::SockRef::from(tcp).set_out_of_band_inline(true);
        }
        let id = self.conns.next_id();
        // PRIORITY (EPOLLPRI) says an urgent mark is pending: see `Conn::note_urgent`.
        let interest = Interest::READABLE | Interest::WRITABLE | Interest::PRIORITY;
        self.registry.register(&mut stream, id.token(), interest)?;
        Ok(self.conns.insert(stream, peer, state))
    }

    /// Ends a connection now: pending output is dropped (and if there was
    /// any, the peer gets a reset: see `Conn::kill`).
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
    /// reading: `config.flush_timeout` at most without a byte taken), FIN,
    /// linger (at most `config.linger` for the peer's FIN).
    pub(crate) fn close_gracefully(&mut self, id: ConnId, reason: CloseReason) {
        let Some((conn, lists)) = self.conns.entry(id) else {
            return;
        };
        match conn.close(reason, &mut self.pool) {
            Closing::Started => {
                let deadline = later(self.now, self.config.flush_timeout);
                self.flushing.push_back((deadline, id));
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
        self.push_with(id, |conn, pool, max, high| {
            conn.queue(data, pool, max, high)
        })
    }

    /// One recipient of a broadcast of `shared`, with one lookup: queued
    /// as it is, or, when `whole_lines` and the connection's layer shares
    /// an encoding of them (plain WebSocket), as that encoding, made once
    /// and kept in `encoded` for the recipients after it (queued as it
    /// is, past the layer).
    pub(crate) fn push_broadcast(
        &mut self,
        id: ConnId,
        shared: &Arc<[u8]>,
        whole_lines: bool,
        encoded: &mut Option<(SharedEncoding, Arc<[u8]>)>,
    ) -> Result<()> {
        self.push_with(id, |conn, pool, max, high| {
            let kind = if whole_lines {
                conn.shared_encoding()
            } else {
                None
            };
            let frames = match (kind, &*encoded) {
                (Some(k), Some((have, frames))) if *have == k => Some(frames.clone()),
                (Some(k), _) => {
                    let made = conn.encode_shared(shared);
                    if let Some(frames) = &made {
                        *encoded = Some((k, frames.clone()));
                    }
                    made
                }
                (None, _) => None,
            };
            match frames {
                Some(frames) => conn.queue_raw(Output::Shared(frames), pool, max, high),
                None => conn.queue(Output::Shared(shared.clone()), pool, max, high),
            }
        })
    }

    /// Queues with `queue` on `id`'s connection (given the pool, the cap
    /// and the high-water mark); ends the connection if it would pass the
    /// cap.
    fn push_with(
        &mut self,
        id: ConnId,
        queue: impl FnOnce(&mut Conn<D>, &mut BufPool, usize, usize) -> Result<bool>,
    ) -> Result<()> {
        let (max, high) = (self.config.max_outb, self.config.high_water);
        let scrape = self.is_scrape(id);
        let (conn, lists) = self.conns.entry(id).ok_or(Error::NoSuchConnection)?;
        match queue(conn, &mut self.pool, max, high) {
            Ok(queued) => {
                if queued {
                    if !scrape {
                        self.metrics.on_send(conn.pending());
                    }
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
