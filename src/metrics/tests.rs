use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use super::*;

/// A reactor's counters after some made-up traffic.
fn busy(seed: u64) -> Metrics {
    let mut m = Metrics::default();
    for _ in 0..3 + seed {
        m.on_accept();
    }
    m.on_refuse(Refusal::MaxPerIp);
    m.on_read(100 * (seed + 1) as usize);
    m.on_read(28);
    m.on_send(64);
    m.on_send(4096);
    m.on_send(10);
    m.on_write(4170);
    m.on_close(&CloseReason::PeerClosed);
    m.on_close(&CloseReason::OutputOverflow);
    m.on_close(&CloseReason::Error(
        std::io::ErrorKind::ConnectionReset.into(),
    ));
    m.on_accept_error_episode();
    m.on_pass(3);
    m.on_pass(1);
    m.on_pass(0);
    m
}

#[test]
fn counters_count() {
    let s = busy(0).snapshot();
    assert_eq!(s.accepted, 3);
    assert_eq!(s.refused(Refusal::MaxPerIp), 1);
    assert_eq!(s.refused(Refusal::MaxConnections), 0);
    assert_eq!((s.bytes_received, s.messages_received), (128, 2));
    assert_eq!((s.bytes_sent, s.messages_sent), (4170, 3));
    assert_eq!(s.output_pending_peak, 4096);
    assert_eq!(s.closed(CloseKind::PeerClosed), 1);
    assert_eq!(s.closed(CloseKind::Error), 1);
    assert_eq!(s.slow_consumer_disconnects(), 1);
    assert_eq!(s.input_overflow_disconnects(), 0);
    assert_eq!(s.accept_error_episodes, 1);
    assert_eq!(
        (s.loop_passes, s.loop_events, s.loop_events_peak),
        (3, 4, 3)
    );
}

#[test]
fn every_close_reason_has_its_own_label() {
    let mut labels: Vec<_> = CloseKind::ALL.iter().map(|k| k.label()).collect();
    assert!(CloseKind::ALL
        .iter()
        .enumerate()
        .all(|(i, k)| k.index() == i));
    labels.sort_unstable();
    labels.dedup();
    assert_eq!(labels.len(), CloseKind::ALL.len());
}

#[test]
fn application_metrics_register_once_and_check_names() {
    let mut m = Metrics::default();
    let a = m.counter("lines_total", "Lines.").unwrap();
    let g = m.gauge("members", "Members.").unwrap();
    assert_eq!(m.counter("lines_total", "Lines.").unwrap(), a);
    assert!(
        m.gauge("lines_total", "x").is_err(),
        "a gauge may not end in _total"
    );
    assert!(
        m.counter("members_total", "x").is_ok(),
        "another name is fine"
    );
    assert!(m.counter("Lines_total", "x").is_err());
    assert!(m.counter("9lines_total", "x").is_err());
    assert!(m.counter("li-nes_total", "x").is_err());
    assert!(m.gauge("", "x").is_err());
    m.add(a, 2);
    m.add(a, 3);
    m.set(g, 7);
    m.set(g, 4);
    let s = m.snapshot();
    assert_eq!(s.app("mio_selectors_lines_total"), Some(5));
    assert_eq!(s.app("mio_selectors_members"), Some(4));
    assert_eq!(s.app("lines_total"), None, "full names only");
    // A snapshot is a copy: later counting does not change it.
    m.add(a, 1);
    assert_eq!(s.app("mio_selectors_lines_total"), Some(5));
    assert_eq!(m.snapshot().app("mio_selectors_lines_total"), Some(6));
}

#[test]
fn one_reactor_renders_without_sums() {
    let text = busy(0).snapshot().render();
    assert!(text.starts_with("# HELP mio_selectors_connections_accepted_total "));
    assert!(text.contains("# TYPE mio_selectors_connections_accepted_total counter\n"));
    assert!(text.contains("mio_selectors_connections_accepted_total{reactor=\"0\"} 3\n"));
    assert!(text.contains("# TYPE mio_selectors_connections_active gauge\n"));
    assert!(text.contains(
        "mio_selectors_connections_closed_total{reactor=\"0\",reason=\"peer_closed\"} 1\n"
    ));
    assert!(text.contains(
        "mio_selectors_connections_refused_total{reactor=\"0\",limit=\"max_per_ip\"} 1\n"
    ));
    assert!(text.contains("mio_selectors_slow_consumer_disconnects_total{reactor=\"0\"} 1\n"));
    assert!(text.contains("mio_selectors_bytes_received_total{reactor=\"0\"} 128\n"));
    assert!(text.contains("mio_selectors_bytes_sent_total{reactor=\"0\"} 4170\n"));
    assert!(!text.contains("reactor=\"all\""));
    assert!(text.ends_with('\n'));
    for line in text.lines() {
        assert!(
            line.starts_with("# HELP mio_selectors_")
                || line.starts_with("# TYPE mio_selectors_")
                || line.starts_with("mio_selectors_"),
            "{line:?}"
        );
    }
}

#[test]
fn a_group_renders_each_reactor_and_sums_where_a_sum_means_something() {
    let text = render(&[busy(0).snapshot(), busy(2).snapshot()]);
    assert!(text.contains("mio_selectors_connections_accepted_total{reactor=\"0\"} 3\n"));
    assert!(text.contains("mio_selectors_connections_accepted_total{reactor=\"1\"} 5\n"));
    assert!(text.contains("mio_selectors_connections_accepted_total{reactor=\"all\"} 8\n"));
    assert!(text.contains("mio_selectors_bytes_received_total{reactor=\"all\"} 456\n"));
    assert!(text.contains(
        "mio_selectors_connections_closed_total{reactor=\"all\",reason=\"output_overflow\"} 2\n"
    ));
    // A maximum is not summed.
    assert!(text.contains("mio_selectors_output_pending_peak_bytes{reactor=\"1\"} 4096\n"));
    assert!(!text.contains("mio_selectors_output_pending_peak_bytes{reactor=\"all\"}"));
    assert!(!text.contains("mio_selectors_loop_events_per_pass_max{reactor=\"all\"}"));
}

#[test]
fn application_metrics_render_per_reactor_and_escape_help() {
    let mut a = Metrics::default();
    let mut b = Metrics::default();
    let ca = a
        .counter("chat_lines_relayed_total", "Lines \\ relayed\nto all.")
        .unwrap();
    let cb = b
        .counter("chat_lines_relayed_total", "Lines \\ relayed\nto all.")
        .unwrap();
    let only_b = b.gauge("chat_members", "Members.").unwrap();
    a.add(ca, 2);
    b.add(cb, 5);
    b.set(only_b, 9);
    let text = render(&[a.snapshot(), b.snapshot()]);
    assert!(text
        .contains("# HELP mio_selectors_chat_lines_relayed_total Lines \\\\ relayed\\nto all.\n"));
    assert!(text.contains("mio_selectors_chat_lines_relayed_total{reactor=\"0\"} 2\n"));
    assert!(text.contains("mio_selectors_chat_lines_relayed_total{reactor=\"all\"} 7\n"));
    assert!(text.contains("mio_selectors_chat_members{reactor=\"1\"} 9\n"));
    assert!(!text.contains("mio_selectors_chat_members{reactor=\"0\"}"));
    assert_eq!(
        text.matches("# TYPE mio_selectors_chat_lines_relayed_total ")
            .count(),
        1
    );
}

#[test]
fn label_values_and_help_are_escaped() {
    assert_eq!(super::text::escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    assert_eq!(super::text::escape_help("a\"b\\c\nd"), "a\"b\\\\c\\nd");
}

/// The official Python client's parser reads the rendered text back to the
/// same samples. Skipped with a note where python3 or `prometheus_client`
/// is missing, except under CI (`CI=true`), where that fails: `.ci/run`
/// installs it (`pip install prometheus_client`).
#[test]
fn python_prometheus_client_parses_the_text() {
    const SCRIPT: &str = r#"
import sys
try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    print("MISSING")
    sys.exit(0)
for fam in text_string_to_metric_families(sys.stdin.read()):
    print("FAMILY", fam.name, fam.type)
    for s in fam.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
        print("SAMPLE", s.name, labels, repr(float(s.value)))
"#;
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let mut a = busy(0);
    let c = a
        .counter("chat_deliveries_total", "Lines \"delivered\"\nto members.")
        .unwrap();
    a.add(c, 11);
    let mut snap = a.snapshot();
    snap.active = 2;
    snap.output_pending = 70;
    let text = render(&[snap, busy(1).snapshot()]);

    let child = Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) if !ci => {
            eprintln!("note: python3 not runnable ({e}); the parser check is skipped");
            return;
        }
        Err(e) => panic!("CI=true but python3 is not runnable: {e}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "the parser rejected the text: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    if stdout.trim() == "MISSING" {
        assert!(
            !ci,
            "CI=true but prometheus_client is missing (pip install prometheus_client)"
        );
        eprintln!("note: prometheus_client not installed; the parser check is skipped");
        return;
    }

    // What the parser saw, against what the text says line by line.
    let mut families = BTreeMap::new();
    let mut samples = BTreeMap::new();
    for line in stdout.lines() {
        let parts: Vec<&str> = line.split(' ').collect();
        match parts[0] {
            "FAMILY" => {
                families.insert(parts[1].to_string(), parts[2].to_string());
            }
            "SAMPLE" => {
                let value: f64 = parts[3].parse().unwrap();
                samples.insert(format!("{} {}", parts[1], parts[2]), value);
            }
            _ => panic!("unexpected parser output {line:?}"),
        }
    }
    let types = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
    let series = text.lines().filter(|l| !l.starts_with('#')).count();
    assert_eq!(families.len(), types, "one family per # TYPE: {families:?}");
    assert_eq!(samples.len(), series, "every series parsed");
    // The parser names counter families without `_total`.
    assert_eq!(families["mio_selectors_connections_accepted"], "counter");
    assert_eq!(families["mio_selectors_connections_active"], "gauge");
    assert_eq!(families["mio_selectors_chat_deliveries"], "counter");
    let get = |k: &str| {
        samples
            .get(k)
            .copied()
            .unwrap_or_else(|| panic!("{k} missing"))
    };
    assert_eq!(
        get("mio_selectors_connections_accepted_total reactor=0"),
        3.0
    );
    assert_eq!(
        get("mio_selectors_connections_accepted_total reactor=all"),
        7.0
    );
    assert_eq!(get("mio_selectors_connections_active reactor=0"), 2.0);
    assert_eq!(get("mio_selectors_output_pending_bytes reactor=all"), 70.0);
    assert_eq!(
        get("mio_selectors_connections_closed_total reactor=1,reason=output_overflow"),
        1.0
    );
    assert_eq!(get("mio_selectors_bytes_received_total reactor=1"), 228.0);
    assert_eq!(get("mio_selectors_chat_deliveries_total reactor=0"), 11.0);
    assert_eq!(get("mio_selectors_chat_deliveries_total reactor=all"), 11.0);
}
