//! Figures an operator reads: counters each [`Reactor`](crate::Reactor)
//! keeps about itself, a [`Snapshot`] of them, and their rendering in the
//! Prometheus text exposition format 0.0.4.
//!
//! What is counted is what Redis's `INFO`, nginx's `stub_status` and NATS's
//! slow-consumer counters show: connections accepted, refused (by each
//! limit), active and closed (by reason); bytes and messages in and out;
//! slow consumers and input overflows; episodes of failing `accept`; pending
//! output now and at its peak; the buffer pool; loop passes and events per
//! pass. An application adds its own counters and gauges through
//! [`Metrics::counter`] and [`Metrics::gauge`] (the chatroom counts lines
//! relayed and deliveries).
//!
//! # Cost
//!
//! The counters are plain `u64`s owned by the loop's thread and bumped where
//! the loop does the work anyway (a read, a send, a close): no atomics, no
//! locks, no allocation on the hot path. Another thread reads them by asking
//! the loop for a [`Snapshot`], a plain `Clone + Send` copy taken between
//! two events; gauges that describe every connection (the largest pending
//! output, say) are computed only then.
//!
//! # Why the format is written here
//!
//! Version 0.0.4 of the text format is `# HELP`, `# TYPE` and one
//! `name{label="value"} number` line per series: about a hundred lines of
//! code with its escaping, checked in the tests against the official Python
//! client's parser. The crates that implement it, `prometheus` and
//! `prometheus-client`, are built around their own metric types, which are
//! atomics shared between threads through a registry: exactly what the
//! loop's own plain integers avoid. So the counters stay plain fields and
//! [`render`] writes the text.
//!
//! ```
//! use mio_selectors::metrics::{render, Metrics};
//!
//! let mut m = Metrics::default();
//! let relayed = m.counter("chat_lines_relayed_total", "Chat lines relayed.")?;
//! m.add(relayed, 3);
//! let text = render(&[m.snapshot()]);
//! assert!(text.contains("# TYPE mio_selectors_chat_lines_relayed_total counter\n"));
//! assert!(text.contains("mio_selectors_chat_lines_relayed_total{reactor=\"0\"} 3\n"));
//! # Ok::<(), mio_selectors::Error>(())
//! ```

pub(crate) mod scrape;
mod text;

use std::sync::Arc;

use crate::{CloseReason, Error, Result};

pub use text::{render, CONTENT_TYPE};

/// Prefix of every metric's name.
pub const PREFIX: &str = "mio_selectors_";

/// A limit that made the reactor refuse a connection it had accepted (it is
/// closed at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// [`Config::max_connections`](crate::Config::max_connections) connections were open.
    MaxConnections,
    /// [`Config::max_per_ip`](crate::Config::max_per_ip) connections from its address were open.
    MaxPerIp,
}

impl Refusal {
    /// Every kind, in the order they are rendered.
    pub const ALL: [Refusal; 2] = [Refusal::MaxConnections, Refusal::MaxPerIp];

    /// The value of the `limit` label.
    ///
    /// ```
    /// assert_eq!(mio_selectors::metrics::Refusal::MaxPerIp.label(), "max_per_ip");
    /// ```
    pub fn label(self) -> &'static str {
        match self {
            Refusal::MaxConnections => "max_connections",
            Refusal::MaxPerIp => "max_per_ip",
        }
    }
}

/// Why a connection closed, without the details: the `reason` label of
/// `mio_selectors_connections_closed_total`, one per [`CloseReason`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseKind {
    /// [`CloseReason::PeerClosed`].
    PeerClosed,
    /// [`CloseReason::Closed`].
    Closed,
    /// [`CloseReason::Error`].
    Error,
    /// [`CloseReason::OutputOverflow`]: a slow consumer.
    OutputOverflow,
    /// [`CloseReason::InputOverflow`].
    InputOverflow,
    /// [`CloseReason::Shutdown`].
    Shutdown,
    /// [`CloseReason::ConnectFailed`].
    ConnectFailed,
    /// [`CloseReason::IdleTimeout`].
    IdleTimeout,
}

impl CloseKind {
    /// Every kind, in the order they are rendered.
    pub const ALL: [CloseKind; 8] = [
        CloseKind::PeerClosed,
        CloseKind::Closed,
        CloseKind::Error,
        CloseKind::OutputOverflow,
        CloseKind::InputOverflow,
        CloseKind::Shutdown,
        CloseKind::ConnectFailed,
        CloseKind::IdleTimeout,
    ];

    /// The value of the `reason` label.
    ///
    /// ```
    /// use mio_selectors::{metrics::CloseKind, CloseReason};
    /// assert_eq!(CloseKind::from(&CloseReason::OutputOverflow).label(), "output_overflow");
    /// ```
    pub fn label(self) -> &'static str {
        match self {
            CloseKind::PeerClosed => "peer_closed",
            CloseKind::Closed => "closed",
            CloseKind::Error => "error",
            CloseKind::OutputOverflow => "output_overflow",
            CloseKind::InputOverflow => "input_overflow",
            CloseKind::Shutdown => "shutdown",
            CloseKind::ConnectFailed => "connect_failed",
            CloseKind::IdleTimeout => "idle_timeout",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl From<&CloseReason> for CloseKind {
    fn from(reason: &CloseReason) -> Self {
        match reason {
            CloseReason::PeerClosed => CloseKind::PeerClosed,
            CloseReason::Closed => CloseKind::Closed,
            CloseReason::Error(_) => CloseKind::Error,
            CloseReason::OutputOverflow => CloseKind::OutputOverflow,
            CloseReason::InputOverflow => CloseKind::InputOverflow,
            CloseReason::Shutdown => CloseKind::Shutdown,
            CloseReason::ConnectFailed(_) => CloseKind::ConnectFailed,
            CloseReason::IdleTimeout => CloseKind::IdleTimeout,
        }
    }
}

/// Whether an application metric only goes up or is set to any value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (Prometheus `counter`; its name ends in `_total`).
    Counter,
    /// Set to the current value (Prometheus `gauge`).
    Gauge,
}

/// An application counter made by [`Metrics::counter`]; add to it with
/// [`Metrics::add`]. It belongs to the [`Metrics`] that made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter(usize);

/// An application gauge made by [`Metrics::gauge`]; set it with
/// [`Metrics::set`]. It belongs to the [`Metrics`] that made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gauge(usize);

/// The description of an application metric.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppDef {
    /// Its full name, [`PREFIX`] included.
    pub name: String,
    /// Its `# HELP` text.
    pub help: String,
    /// Counter or gauge.
    pub kind: Kind,
}

/// The counters of one reactor, kept on its thread.
///
/// The reactor bumps its own; the application registers more with
/// [`counter`](Self::counter) and [`gauge`](Self::gauge) and updates them
/// as it works, from its callbacks. [`snapshot`](Self::snapshot) copies
/// everything out.
#[derive(Debug, Default)]
pub struct Metrics {
    pub(crate) accepted: u64,
    pub(crate) refused: [u64; Refusal::ALL.len()],
    pub(crate) closed: [u64; CloseKind::ALL.len()],
    pub(crate) bytes_in: u64,
    pub(crate) bytes_out: u64,
    pub(crate) messages_in: u64,
    pub(crate) messages_out: u64,
    pub(crate) accept_error_episodes: u64,
    pub(crate) output_peak: u64,
    pub(crate) passes: u64,
    pub(crate) events: u64,
    pub(crate) events_peak: u64,
    /// Definitions shared with every snapshot (copied only when one is added).
    app_defs: Arc<Vec<AppDef>>,
    app_values: Vec<u64>,
}

impl Metrics {
    /// A connection was accepted (and not refused).
    #[inline]
    pub(crate) fn on_accept(&mut self) {
        self.accepted += 1;
    }

    /// An accepted connection was closed at once because of `why`.
    #[inline]
    pub(crate) fn on_refuse(&mut self, why: Refusal) {
        self.refused[why as usize] += 1;
    }

    /// A read returned `n` bytes, handed to the handler.
    #[inline]
    pub(crate) fn on_read(&mut self, n: usize) {
        self.bytes_in += n as u64;
        self.messages_in += 1;
    }

    /// A send queued output; `pending` is the connection's pending output after it.
    #[inline]
    pub(crate) fn on_send(&mut self, pending: usize) {
        self.messages_out += 1;
        self.output_peak = self.output_peak.max(pending as u64);
    }

    /// A write took `n` bytes.
    #[inline]
    pub(crate) fn on_write(&mut self, n: usize) {
        self.bytes_out += n as u64;
    }

    /// A connection ended.
    #[inline]
    pub(crate) fn on_close(&mut self, reason: &CloseReason) {
        self.closed[CloseKind::from(reason).index()] += 1;
    }

    /// `accept` started failing (one per episode, not per failure).
    #[inline]
    pub(crate) fn on_accept_error_episode(&mut self) {
        self.accept_error_episodes += 1;
    }

    /// A loop pass handled `events` events.
    #[inline]
    pub(crate) fn on_pass(&mut self, events: usize) {
        self.passes += 1;
        self.events += events as u64;
        self.events_peak = self.events_peak.max(events as u64);
    }

    /// Registers an application counter named [`PREFIX`] + `name`, or
    /// returns the one registered under that name already.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if `name` is not `[a-z_][a-z0-9_]*`, does not end in
    /// `_total`, or names a gauge already.
    ///
    /// ```
    /// let mut m = mio_selectors::metrics::Metrics::default();
    /// let c = m.counter("jobs_done_total", "Jobs done.")?;
    /// assert_eq!(m.counter("jobs_done_total", "Jobs done.")?, c);
    /// assert!(m.counter("jobs_done", "no _total").is_err());
    /// # Ok::<(), mio_selectors::Error>(())
    /// ```
    pub fn counter(&mut self, name: &str, help: &str) -> Result<Counter> {
        if !name.ends_with("_total") {
            return Err(Error::Config("a counter's name must end in _total"));
        }
        self.register(name, help, Kind::Counter).map(Counter)
    }

    /// Registers an application gauge named [`PREFIX`] + `name`, or returns
    /// the one registered under that name already.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if `name` is not `[a-z_][a-z0-9_]*`, ends in
    /// `_total`, or names a counter already.
    ///
    /// ```
    /// let mut m = mio_selectors::metrics::Metrics::default();
    /// let g = m.gauge("rooms", "Chat rooms open.")?;
    /// m.set(g, 2);
    /// assert_eq!(m.snapshot().app("mio_selectors_rooms"), Some(2));
    /// # Ok::<(), mio_selectors::Error>(())
    /// ```
    pub fn gauge(&mut self, name: &str, help: &str) -> Result<Gauge> {
        if name.ends_with("_total") {
            return Err(Error::Config("a gauge's name must not end in _total"));
        }
        self.register(name, help, Kind::Gauge).map(Gauge)
    }

    fn register(&mut self, name: &str, help: &str, kind: Kind) -> Result<usize> {
        let mut chars = name.chars();
        let first_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
        if !first_ok || !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
            return Err(Error::Config("a metric's name must be [a-z_][a-z0-9_]*"));
        }
        let full = format!("{PREFIX}{name}");
        if let Some(i) = self.app_defs.iter().position(|d| d.name == full) {
            return if self.app_defs[i].kind == kind {
                Ok(i)
            } else {
                Err(Error::Config(
                    "a metric of that name but another kind exists",
                ))
            };
        }
        Arc::make_mut(&mut self.app_defs).push(AppDef {
            name: full,
            help: help.to_string(),
            kind,
        });
        self.app_values.push(0);
        Ok(self.app_values.len() - 1)
    }

    /// Adds `n` to `counter`.
    ///
    /// # Panics
    ///
    /// If `counter` was made by another `Metrics`, and this one has fewer.
    #[inline]
    pub fn add(&mut self, counter: Counter, n: u64) {
        self.app_values[counter.0] += n;
    }

    /// Sets `gauge` to `value`.
    ///
    /// # Panics
    ///
    /// If `gauge` was made by another `Metrics`, and this one has fewer.
    #[inline]
    pub fn set(&mut self, gauge: Gauge, value: u64) {
        self.app_values[gauge.0] = value;
    }

    /// A copy of every counter. The gauges that describe the connections
    /// and the pool (see [`Snapshot`]) are zero here: the reactor fills
    /// them in when it takes the snapshot.
    ///
    /// ```
    /// let m = mio_selectors::metrics::Metrics::default();
    /// assert_eq!(m.snapshot().accepted, 0);
    /// ```
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            accepted: self.accepted,
            refused: self.refused,
            closed: self.closed,
            active: 0,
            bytes_received: self.bytes_in,
            bytes_sent: self.bytes_out,
            messages_received: self.messages_in,
            messages_sent: self.messages_out,
            accept_error_episodes: self.accept_error_episodes,
            output_pending: 0,
            output_pending_max: 0,
            output_pending_peak: self.output_peak,
            input_pending_max: 0,
            pool_spare_bytes: 0,
            pool_lent: 0,
            pool_allocations: 0,
            pool_frees: 0,
            loop_passes: self.passes,
            loop_events: self.events,
            loop_events_peak: self.events_peak,
            app_defs: Arc::clone(&self.app_defs),
            app_values: self.app_values.clone(),
        }
    }
}

/// A copy of one reactor's counters at one moment, taken on its thread:
/// cheap to take, `Clone + Send`, rendered by [`render`].
///
/// ```
/// fn is_send<T: Send + Clone>() {}
/// is_send::<mio_selectors::metrics::Snapshot>();
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Snapshot {
    /// Connections accepted and admitted (refusals not counted).
    pub accepted: u64,
    refused: [u64; Refusal::ALL.len()],
    closed: [u64; CloseKind::ALL.len()],
    /// Connections open now, accepted or outgoing, closing ones included.
    pub active: u64,
    /// Bytes read from connections.
    pub bytes_received: u64,
    /// Bytes written to connections.
    pub bytes_sent: u64,
    /// Reads that returned data, each handed to the handler.
    pub messages_received: u64,
    /// Sends queued (one per recipient of a broadcast).
    pub messages_sent: u64,
    /// Times `accept` started failing (out of descriptors, say); one per
    /// episode, however long it lasted.
    pub accept_error_episodes: u64,
    /// Bytes of output pending on all connections now.
    pub output_pending: u64,
    /// The largest pending output of one connection now.
    pub output_pending_max: u64,
    /// The largest pending output one connection has had since the start.
    pub output_pending_peak: u64,
    /// The largest unconsumed input of one connection now.
    pub input_pending_max: u64,
    /// Bytes of spare buffers the pool holds for reuse.
    pub pool_spare_bytes: u64,
    /// Pool buffers lent out now (held by connections).
    pub pool_lent: u64,
    /// Buffers the pool had to create since the start.
    pub pool_allocations: u64,
    /// Spare buffers the pool gave back since the start (past its cap, or
    /// unused for a while).
    pub pool_frees: u64,
    /// Passes of the loop (one `poll` each).
    pub loop_passes: u64,
    /// Events the passes handled, in all.
    pub loop_events: u64,
    /// The most events one pass handled.
    pub loop_events_peak: u64,
    app_defs: Arc<Vec<AppDef>>,
    app_values: Vec<u64>,
}

impl Snapshot {
    /// Connections refused because of `why`.
    ///
    /// ```
    /// use mio_selectors::metrics::{Metrics, Refusal};
    /// assert_eq!(Metrics::default().snapshot().refused(Refusal::MaxConnections), 0);
    /// ```
    pub fn refused(&self, why: Refusal) -> u64 {
        self.refused[why as usize]
    }

    /// Connections closed for `why`.
    ///
    /// ```
    /// use mio_selectors::metrics::{CloseKind, Metrics};
    /// assert_eq!(Metrics::default().snapshot().closed(CloseKind::PeerClosed), 0);
    /// ```
    pub fn closed(&self, why: CloseKind) -> u64 {
        self.closed[why.index()]
    }

    /// Slow consumers cut off: connections closed because their pending
    /// output would have passed [`Config::max_outb`](crate::Config::max_outb).
    pub fn slow_consumer_disconnects(&self) -> u64 {
        self.closed(CloseKind::OutputOverflow)
    }

    /// Connections closed because their input filled
    /// [`Config::max_inb`](crate::Config::max_inb) and the handler consumed none.
    pub fn input_overflow_disconnects(&self) -> u64 {
        self.closed(CloseKind::InputOverflow)
    }

    /// The value of the application metric with full name `name`
    /// ([`PREFIX`] included).
    pub fn app(&self, name: &str) -> Option<u64> {
        let i = self.app_defs.iter().position(|d| d.name == name)?;
        self.app_values.get(i).copied()
    }

    /// The application metrics, with their values.
    pub fn app_metrics(&self) -> impl Iterator<Item = (&AppDef, u64)> {
        self.app_defs.iter().zip(self.app_values.iter().copied())
    }

    /// This snapshot alone in the text format, as reactor `0`.
    ///
    /// ```
    /// let text = mio_selectors::metrics::Metrics::default().snapshot().render();
    /// assert!(text.contains("mio_selectors_connections_active{reactor=\"0\"} 0\n"));
    /// ```
    pub fn render(&self) -> String {
        render(std::slice::from_ref(self))
    }
}

#[cfg(test)]
mod tests;
