//! The Prometheus text exposition format, version 0.0.4, written by hand
//! (see the module above for why).
//!
//! Per metric family: `# HELP name text`, `# TYPE name counter|gauge`, then
//! one line per series, `name{reactor="0",reason="error"} 12`. Series carry
//! a `reactor` label, the snapshot's index; with more than one snapshot,
//! the families where a sum means something (counts and byte totals, not
//! maxima) get one more series with `reactor="all"`, the group's sum.

use std::fmt::Write;

use super::{CloseKind, Kind, Refusal, Snapshot};

/// The `Content-Type` of [`render`]'s output, for an HTTP response.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The value of the `reactor` label of a group's summed series.
pub const SUM_LABEL: &str = "all";

type Value<'a> = Box<dyn Fn(&Snapshot) -> Option<u64> + 'a>;

/// One metric family: its series differ by at most one label besides `reactor`.
struct Family<'a> {
    name: &'a str,
    help: &'a str,
    kind: Kind,
    /// Whether a group's sum means something (no for maxima and peaks).
    sums: bool,
    /// `(label name, label value)` (or none) and how to read the value.
    series: Vec<(Option<(&'static str, &'static str)>, Value<'a>)>,
}

fn one<'a>(
    name: &'a str,
    help: &'a str,
    kind: Kind,
    sums: bool,
    value: impl Fn(&Snapshot) -> u64 + 'a,
) -> Family<'a> {
    Family {
        name,
        help,
        kind,
        sums,
        series: vec![(None, Box::new(move |s| Some(value(s))))],
    }
}

/// Renders `snapshots` (one per reactor, in order: index `i` is
/// `reactor="i"`) in the text format 0.0.4, with group sums when there are
/// several. Application metrics are rendered for every snapshot that has
/// them, after the reactor's own.
///
/// ```
/// use mio_selectors::metrics::{render, Metrics};
///
/// let (a, b) = (Metrics::default().snapshot(), Metrics::default().snapshot());
/// let text = render(&[a, b]);
/// assert!(text.contains("mio_selectors_connections_accepted_total{reactor=\"1\"} 0\n"));
/// assert!(text.contains("mio_selectors_connections_accepted_total{reactor=\"all\"} 0\n"));
/// ```
pub fn render(snapshots: &[Snapshot]) -> String {
    use Kind::{Counter, Gauge};
    let mut families = vec![
        one(
            "mio_selectors_connections_accepted_total",
            "Connections accepted and admitted (refused ones not counted).",
            Counter,
            true,
            |s| s.accepted,
        ),
        Family {
            name: "mio_selectors_connections_refused_total",
            help: "Connections accepted and closed at once, by the limit they hit.",
            kind: Counter,
            sums: true,
            series: Refusal::ALL
                .iter()
                .map(|&r| -> (_, Value<'_>) {
                    (
                        Some(("limit", r.label())),
                        Box::new(move |s| Some(s.refused(r))),
                    )
                })
                .collect(),
        },
        one(
            "mio_selectors_connections_active",
            "Connections open now (accepted or outgoing, closing ones included).",
            Gauge,
            true,
            |s| s.active,
        ),
        Family {
            name: "mio_selectors_connections_closed_total",
            help: "Connections closed, by reason.",
            kind: Counter,
            sums: true,
            series: CloseKind::ALL
                .iter()
                .map(|&k| -> (_, Value<'_>) {
                    (
                        Some(("reason", k.label())),
                        Box::new(move |s| Some(s.closed(k))),
                    )
                })
                .collect(),
        },
        one(
            "mio_selectors_slow_consumer_disconnects_total",
            "Connections closed because their pending output would have passed max_outb.",
            Counter,
            true,
            Snapshot::slow_consumer_disconnects,
        ),
        one(
            "mio_selectors_input_overflow_disconnects_total",
            "Connections closed because their input filled max_inb and none was consumed.",
            Counter,
            true,
            Snapshot::input_overflow_disconnects,
        ),
        one(
            "mio_selectors_bytes_received_total",
            "Bytes read from connections.",
            Counter,
            true,
            |s| s.bytes_received,
        ),
        one(
            "mio_selectors_bytes_sent_total",
            "Bytes written to connections.",
            Counter,
            true,
            |s| s.bytes_sent,
        ),
        one(
            "mio_selectors_messages_received_total",
            "Reads that returned data, each handed to the handler.",
            Counter,
            true,
            |s| s.messages_received,
        ),
        one(
            "mio_selectors_messages_sent_total",
            "Sends queued by the handler (one per recipient of a broadcast).",
            Counter,
            true,
            |s| s.messages_sent,
        ),
        one(
            "mio_selectors_accept_error_episodes_total",
            "Times accept started failing (out of descriptors, say), one per episode.",
            Counter,
            true,
            |s| s.accept_error_episodes,
        ),
        one(
            "mio_selectors_output_pending_bytes",
            "Bytes of output pending on all connections now.",
            Gauge,
            true,
            |s| s.output_pending,
        ),
        one(
            "mio_selectors_output_pending_max_bytes",
            "The largest pending output of one connection now.",
            Gauge,
            false,
            |s| s.output_pending_max,
        ),
        one(
            "mio_selectors_output_pending_peak_bytes",
            "The largest pending output one connection has had since the start.",
            Gauge,
            false,
            |s| s.output_pending_peak,
        ),
        one(
            "mio_selectors_input_pending_max_bytes",
            "The largest unconsumed input of one connection now.",
            Gauge,
            false,
            |s| s.input_pending_max,
        ),
        one(
            "mio_selectors_buffer_pool_spare_bytes",
            "Bytes of spare buffers the pool holds for reuse.",
            Gauge,
            true,
            |s| s.pool_spare_bytes,
        ),
        one(
            "mio_selectors_buffer_pool_lent_buffers",
            "Pool buffers lent out now (held by connections).",
            Gauge,
            true,
            |s| s.pool_lent,
        ),
        one(
            "mio_selectors_buffer_pool_allocations_total",
            "Buffers the pool had to create.",
            Counter,
            true,
            |s| s.pool_allocations,
        ),
        one(
            "mio_selectors_buffer_pool_frees_total",
            "Spare buffers the pool gave back (past its cap, or unused for a while).",
            Counter,
            true,
            |s| s.pool_frees,
        ),
        one(
            "mio_selectors_loop_passes_total",
            "Passes of the event loop (one poll each).",
            Counter,
            true,
            |s| s.loop_passes,
        ),
        one(
            "mio_selectors_loop_events_total",
            "Events handled by the loop's passes (divide by passes for events per pass).",
            Counter,
            true,
            |s| s.loop_events,
        ),
        one(
            "mio_selectors_loop_events_per_pass_max",
            "The most events one pass of the loop handled.",
            Gauge,
            false,
            |s| s.loop_events_peak,
        ),
    ];
    // Application metrics: every name any snapshot has, in order of first sight.
    let mut app = Vec::new();
    for s in snapshots {
        for (def, _) in s.app_metrics() {
            if !app.iter().any(|d: &&super::AppDef| d.name == def.name) {
                app.push(def);
            }
        }
    }
    for def in app {
        let name = def.name.as_str();
        families.push(Family {
            name,
            help: &def.help,
            kind: def.kind,
            sums: true,
            series: vec![(None, Box::new(move |s: &Snapshot| s.app(name)))],
        });
    }

    let mut out = String::with_capacity(256 * families.len());
    for f in &families {
        let kind = match f.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let _ = writeln!(out, "# HELP {} {}", f.name, escape_help(f.help));
        let _ = writeln!(out, "# TYPE {} {kind}", f.name);
        for (label, value) in &f.series {
            let mut sum = None::<u64>;
            for (i, s) in snapshots.iter().enumerate() {
                if let Some(v) = value(s) {
                    sample(&mut out, f.name, &i.to_string(), *label, v);
                    sum = Some(sum.unwrap_or(0).saturating_add(v));
                }
            }
            if let (true, true, Some(v)) = (f.sums, snapshots.len() > 1, sum) {
                sample(&mut out, f.name, SUM_LABEL, *label, v);
            }
        }
    }
    out
}

fn sample(out: &mut String, name: &str, reactor: &str, label: Option<(&str, &str)>, value: u64) {
    let _ = write!(out, "{name}{{reactor=\"{}\"", escape_label(reactor));
    if let Some((k, v)) = label {
        let _ = write!(out, ",{k}=\"{}\"", escape_label(v));
    }
    let _ = writeln!(out, "}} {value}");
}

/// `# HELP` text: backslash and line feed escaped.
pub(super) fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A label value: backslash, double quote and line feed escaped.
pub(super) fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
