//! The reactor's counters, read from another thread through its `Handle`
//! while real loopback clients come and go.

mod util;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::time::{Duration, Instant};

use mio_selectors::metrics::{render, CloseKind, Refusal, Snapshot};
use mio_selectors::{Config, Handle};
use util::{connect, expect_eof, reset, start_echo};

const STEP: Duration = Duration::from_secs(10);

/// Polls the reactor's snapshot until `cond` holds, within `STEP`.
fn wait_metrics(handle: &Handle, what: &str, cond: impl Fn(&Snapshot) -> bool) -> Snapshot {
    let until = Instant::now() + STEP;
    loop {
        let snap = handle.metrics(STEP).expect("the reactor answers");
        if cond(&snap) {
            return snap;
        }
        assert!(Instant::now() < until, "{what}: never held; last {snap:?}");
        std::thread::sleep(Duration::from_millis(5)); // polling, not a handshake
    }
}

#[test]
fn counters_follow_clients_as_they_come_and_go() {
    let config = Config {
        max_connections: 2,
        ..Config::default()
    };
    let mut server = start_echo(config);
    let h = server.handle.clone();
    let fresh = h.metrics(STEP).unwrap();
    assert_eq!(
        (fresh.accepted, fresh.active, fresh.bytes_received),
        (0, 0, 0)
    );

    let mut a = connect(server.addr);
    let mut b = connect(server.addr);
    a.write_all(b"hello").unwrap();
    b.write_all(b"there, you").unwrap();
    let mut buf = [0u8; 10];
    a.read_exact(&mut buf[..5]).unwrap();
    b.read_exact(&mut buf).unwrap();
    let s = wait_metrics(&h, "two clients echoed", |s| {
        s.accepted == 2 && s.active == 2 && s.bytes_sent == 15
    });
    assert_eq!(s.bytes_received, 15);
    assert_eq!(s.messages_received, 2);
    assert_eq!(s.messages_sent, 2);
    assert_eq!(s.output_pending, 0);
    assert!(s.loop_passes > 0 && s.loop_events >= 4, "{s:?}");

    // A third is over max_connections: accepted by the kernel, refused here.
    let c = connect(server.addr);
    expect_eof(&c, Instant::now() + STEP).unwrap();
    let s = wait_metrics(&h, "the refusal counted", |s| {
        s.refused(Refusal::MaxConnections) == 1
    });
    assert_eq!((s.accepted, s.active), (2, 2));

    // One leaves cleanly, one resets.
    a.shutdown(Shutdown::Write).unwrap();
    expect_eof(&a, Instant::now() + STEP).unwrap();
    reset(b);
    let s = wait_metrics(&h, "both closes counted", |s| {
        s.active == 0 && s.closed(CloseKind::PeerClosed) == 1 && s.closed(CloseKind::Error) == 1
    });
    assert_eq!(s.accepted, 2);
    assert_eq!(s.slow_consumer_disconnects(), 0);

    // The text an operator scrapes says the same.
    let text = render(&[s]);
    for line in [
        "mio_selectors_connections_accepted_total{reactor=\"0\"} 2\n",
        "mio_selectors_connections_active{reactor=\"0\"} 0\n",
        "mio_selectors_bytes_received_total{reactor=\"0\"} 15\n",
        "mio_selectors_bytes_sent_total{reactor=\"0\"} 15\n",
        "mio_selectors_connections_refused_total{reactor=\"0\",limit=\"max_connections\"} 1\n",
        "mio_selectors_connections_closed_total{reactor=\"0\",reason=\"peer_closed\"} 1\n",
        "mio_selectors_slow_consumer_disconnects_total{reactor=\"0\"} 0\n",
    ] {
        assert!(text.contains(line), "{line:?} not in\n{text}");
    }
    server.stop_and_join(STEP);
}

#[test]
fn a_stopped_reactor_does_not_answer_and_the_caller_is_not_stuck() {
    let mut server = start_echo(Config::default());
    let h = server.handle.clone();
    server.stop_and_join(STEP);
    let t = Instant::now();
    let err = h.metrics(Duration::from_millis(200)).unwrap_err();
    assert!(err.to_string().contains("did not answer"), "{err}");
    assert!(t.elapsed() < STEP);
}

#[test]
fn pending_output_and_the_pool_show_in_the_gauges() {
    // A client that sends and never reads: its echo piles up in the
    // server's output until backpressure stops reading from it.
    let mut server = start_echo(Config::default());
    let h = server.handle.clone();
    let mut c = connect(server.addr);
    c.set_nonblocking(true).unwrap();
    let chunk = [7u8; 64 * 1024];
    let until = Instant::now() + STEP;
    let s = loop {
        let _ = c.write(&chunk); // WouldBlock once the server stops reading
        let s = h.metrics(STEP).unwrap();
        if s.output_pending_max >= 16 * 1024 {
            assert!(s.output_pending_peak >= s.output_pending_max, "{s:?}");
            break s;
        }
        assert!(Instant::now() < until, "no output piled up: {s:?}");
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(s.output_pending, s.output_pending_max, "one connection");
    assert!(s.pool_allocations >= 1, "{s:?}");
    drop(c);
    wait_metrics(&h, "the slow client gone", |s| {
        s.active == 0 && s.output_pending == 0
    });
    server.stop_and_join(STEP);
}
