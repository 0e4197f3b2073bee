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
    /// Size of one read and of each pooled buffer. Default 16 KiB.
    pub read_chunk: usize,
    /// Most bytes read from one connection in one loop pass before the
    /// others get their turn; the rest is read on the next pass. Default 256 KiB.
    pub read_budget: usize,
    /// Cap on unconsumed input per connection ([`InBuf`](crate::InBuf)).
    /// While it is full the connection is not read; if the handler consumes
    /// nothing from a full buffer, the connection is closed with
    /// [`CloseReason::InputOverflow`](crate::CloseReason::InputOverflow).
    /// Default 64 KiB.
    pub max_inb: usize,
    /// Pending output above which a connection is no longer read (TCP then
    /// pushes back on the peer). Default 64 KiB.
    pub high_water: usize,
    /// Pending output at or below which reading resumes. Default 16 KiB.
    pub low_water: usize,
    /// Hard cap on pending output per connection. A
    /// [`send`](crate::Context::send) that would pass it closes the
    /// connection with [`CloseReason::OutputOverflow`](crate::CloseReason::OutputOverflow)
    /// (a slow consumer). Default 1 MiB.
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
    /// Graceful close: how long the flush may go without progress (a peer
    /// that stops reading is then closed, the rest of its output dropped,
    /// with an error saying so), and, after FIN, how long to wait for the
    /// peer's FIN (discarding its input) before dropping the socket, so that
    /// a reset cannot destroy output the peer has not read yet. Default 2 s.
    pub linger: Duration,
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
    /// Spare buffers kept in the pool. Default 1024.
    pub pool_size: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            read_chunk: 16 * 1024,
            read_budget: 256 * 1024,
            max_inb: 64 * 1024,
            high_water: 64 * 1024,
            low_water: 16 * 1024,
            max_outb: 1024 * 1024,
            max_connections: 100_000,
            max_per_ip: None,
            accept_backoff: Duration::from_millis(100),
            linger: Duration::from_secs(2),
            shutdown_timeout: Duration::from_secs(2),
            nodelay: true,
            keepalive: None,
            connect_timeout: Duration::from_secs(10),
            udp_queue: 1024 * 1024,
            pool_size: 1024,
        }
    }
}
