//! [`Config`]: the reactor's limits, each with its default and its policy.

use std::time::Duration;

/// Limits and timeouts of a [`Reactor`](crate::Reactor). Every buffer is
/// bounded; each field says what happens when its limit is hit.
///
/// ```
/// use mio_selectors::Config;
/// let config = Config { high_water: 128 * 1024, ..Config::default() };
/// assert!(config.low_water < config.high_water);
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    /// Size of each pooled buffer, and the most one read asks for. Default
    /// 64 KiB: a read asks for the room the buffer has, so a message of up
    /// to 64 KiB comes in one read that is short, which proves the socket
    /// drained without a second read to get `EAGAIN`. A pooled buffer is a
    /// map of its own whose pages are resident only once touched, so a
    /// 64-byte message costs one page, not the whole chunk; an idle
    /// connection holds no buffer at all.
    pub read_chunk: usize,
    /// Most bytes read from one connection in one loop pass before the
    /// others get their turn; the rest is read on the next pass. Default 256 KiB.
    pub read_budget: usize,
    /// Cap on unconsumed input per connection ([`InBuf`](crate::InBuf)).
    /// While it is full the connection is not read; if the handler consumes
    /// nothing from a full buffer, the connection is closed with
    /// [`CloseReason::InputOverflow`](crate::CloseReason::InputOverflow).
    /// At most 4 GiB. Default 64 KiB.
    pub max_inb: usize,
    /// Pending output at or above which a connection is no longer read (TCP
    /// then pushes back on the peer). A read is also never larger than the
    /// room left below [`max_outb`](Self::max_outb), so a handler that sends
    /// back at most what it reads is paused before the cap, never closed
    /// by it, even with `high_water` equal to `max_outb`. Default 64 KiB.
    pub high_water: usize,
    /// Pending output at or below which reading resumes. Default 16 KiB.
    pub low_water: usize,
    /// Hard cap on pending output per connection. A
    /// [`send`](crate::Context::send) that would pass it closes the
    /// connection with [`CloseReason::OutputOverflow`](crate::CloseReason::OutputOverflow)
    /// (a slow consumer). At most 4 GiB. Default 1 MiB.
    pub max_outb: usize,
    /// Most connections at once; past it new connections are accepted and
    /// closed at once, with a warning in the log. Default 100,000.
    pub max_connections: usize,
    /// Most accepted connections from one IP address at once; past it a new
    /// one from that address is accepted and closed at once, with a warning
    /// in the log. Default `None` (no limit). Any address in 127.0.0.0/8
    /// counts as its own source.
    pub max_per_ip: Option<usize>,
    /// After `accept` fails with `EMFILE`/`ENFILE` (out of descriptors), how
    /// long to stop accepting; accepting also resumes as soon as a connection
    /// closes. Default 100 ms.
    pub accept_backoff: Duration,
    /// Graceful close, after FIN: how long to wait for the peer's FIN
    /// (discarding its input) before dropping the socket, so that a reset
    /// cannot destroy output the peer has not read yet. Default 2 s.
    pub linger: Duration,
    /// Graceful close, before FIN: how long the flush of what is pending
    /// may go without the peer taking a single byte. A peer that is slow
    /// but alive gets everything however long it takes; one that takes
    /// nothing for this long is given up on: the rest of its output is
    /// dropped and the connection is reset (RST, never a FIN that would
    /// pass for a complete stream), closing with an error that says how
    /// many bytes were dropped. Default 60 s.
    pub flush_timeout: Duration,
    /// On [`Handle::stop`](crate::Handle::stop), how long to flush pending
    /// output before closing what is left. Default 2 s.
    pub shutdown_timeout: Duration,
    /// Set `TCP_NODELAY` on TCP connections. Default `true`.
    pub nodelay: bool,
    /// TCP keepalive on TCP connections: idle time before the first probe.
    /// Default `None` (off).
    pub keepalive: Option<Duration>,
    /// How long an outgoing [`connect`](crate::Context::connect) may take
    /// before it fails with [`CloseReason::ConnectFailed`](crate::CloseReason::ConnectFailed)
    /// (`TimedOut`). Default 10 s.
    pub connect_timeout: Duration,
    /// Bytes of datagrams waiting per UDP socket when the kernel's send
    /// buffer is full. Past it [`send_to`](crate::Context::send_to) drops
    /// the datagram and says so. Default 1 MiB.
    pub udp_queue: usize,
    /// Most bytes of spare `read_chunk`-sized buffers kept per reactor for
    /// reuse, so that the hot path does not allocate. Past it a returned
    /// buffer goes back to the operating system; and the pool keeps only as
    /// many spares as the most buffers lent at once in the last half
    /// second, so the memory a burst took returns within 600 ms of the
    /// burst ending. Counted in whole buffers; what is resident is only the
    /// pages that were touched. Default 128 MiB (2,048 buffers of 64 KiB:
    /// 1,000 connections each holding part of a message in and its echo
    /// out need 2,000).
    pub pool_bytes: usize,
    /// Busy polling: before the loop would block waiting for events, poll
    /// without blocking for up to this long first. A reply that arrives
    /// within it is handled without the loop going to sleep and being woken,
    /// which is most of a round trip's latency with few connections; the
    /// price is a core spent spinning (up to this long after every pass
    /// that goes idle, so 100% of one while a client keeps it busy). At
    /// most 10 ms. Default `None` (off: the loop sleeps as soon as it is idle).
    pub busy_poll: Option<Duration>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            read_chunk: 64 * 1024,
            read_budget: 256 * 1024,
            max_inb: 64 * 1024,
            high_water: 64 * 1024,
            low_water: 16 * 1024,
            max_outb: 1024 * 1024,
            max_connections: 100_000,
            max_per_ip: None,
            accept_backoff: Duration::from_millis(100),
            linger: Duration::from_secs(2),
            flush_timeout: Duration::from_secs(60),
            shutdown_timeout: Duration::from_secs(2),
            nodelay: true,
            keepalive: None,
            connect_timeout: Duration::from_secs(10),
            udp_queue: 1024 * 1024,
            pool_bytes: 128 * 1024 * 1024,
            busy_poll: None,
        }
    }
}
