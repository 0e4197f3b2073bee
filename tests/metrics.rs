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
    assert!(
        s.loop_passes > 0 && s.loop_events > 0 && s.loop_events_peak > 0,
        "{s:?}"
    );

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

/// The tutorial's echo, for a reactor built here (with a metrics listener).
struct Echo;

impl mio_selectors::Handler for Echo {
    type Data = ();
    fn accept_wrapper(
        &mut self,
        _: &mut mio_selectors::Context<'_, ()>,
        _: mio_selectors::ConnId,
        _: &mio_selectors::PeerAddr,
    ) -> Option<()> {
        Some(())
    }
    fn service_connection(
        &mut self,
        cx: &mut mio_selectors::Context<'_, ()>,
        id: mio_selectors::ConnId,
        _: &mut (),
        inb: &mut mio_selectors::InBuf,
    ) {
        let _ = cx.send_from(id, inb);
    }
}

/// An echo reactor on a thread with `/metrics` served beside it: (echo
/// address, metrics address, handle, thread).
fn echo_with_metrics() -> (
    std::net::SocketAddr,
    std::net::SocketAddr,
    Handle,
    std::thread::JoinHandle<()>,
) {
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let mut r = mio_selectors::Reactor::new(Echo, Config::default()).unwrap();
        let id = r.listen("127.0.0.1:0").unwrap();
        let metrics = r.serve_metrics("127.0.0.1:0").unwrap();
        tx.send((r.local_addr(id).unwrap(), metrics, r.handle()))
            .unwrap();
        r.run().unwrap();
    });
    let (echo, metrics, handle) = rx.recv_timeout(STEP).expect("reactor started");
    (echo, metrics, handle, thread)
}

/// One raw HTTP exchange: the whole response, read to EOF.
fn http(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let s = connect(addr);
    (&s).write_all(request).unwrap();
    let got = util::read_to_eof_deadline(&s, 1 << 20, Instant::now() + STEP).unwrap();
    String::from_utf8(got).unwrap()
}

/// `name{reactor="0"}`'s value in a scrape.
fn value(text: &str, series: &str) -> u64 {
    let line = text
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .unwrap_or_else(|| panic!("{series} not in\n{text}"));
    line[series.len() + 1..].parse().unwrap()
}

#[test]
fn get_metrics_shows_the_counters_move_and_leaves_scrapes_out() {
    let (echo, metrics, handle, thread) = echo_with_metrics();
    let scrape = || http(metrics, b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n");
    let active = "mio_selectors_connections_active{reactor=\"0\"}";
    let accepted = "mio_selectors_connections_accepted_total{reactor=\"0\"}";
    let received = "mio_selectors_bytes_received_total{reactor=\"0\"}";
    let sent = "mio_selectors_bytes_sent_total{reactor=\"0\"}";

    let first = scrape();
    assert!(first.starts_with("HTTP/1.1 200 OK\r\n"), "{first}");
    assert!(first.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
    assert_eq!((value(&first, active), value(&first, accepted)), (0, 0));

    let mut clients: Vec<_> = (0..3).map(|_| connect(echo)).collect();
    for c in &mut clients {
        c.write_all(b"ping!").unwrap();
        let mut back = [0u8; 5];
        c.read_exact(&mut back).unwrap();
    }
    let during = scrape();
    assert_eq!(
        value(&during, active),
        3,
        "the scrape itself is not counted"
    );
    assert_eq!(value(&during, accepted), 3);
    assert_eq!((value(&during, received), value(&during, sent)), (15, 15));

    drop(clients);
    let until = Instant::now() + STEP;
    let after = loop {
        let text = scrape();
        if value(&text, active) == 0 {
            break text;
        }
        assert!(
            Instant::now() < until,
            "clients never counted gone:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(value(&after, accepted), 3);
    assert_eq!(
        value(
            &after,
            "mio_selectors_connections_closed_total{reactor=\"0\",reason=\"peer_closed\"}"
        ),
        3
    );

    // Other requests get their HTTP error, and the server carries on.
    assert!(http(metrics, b"GET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 "));
    assert!(http(metrics, b"DELETE /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405 "));
    assert!(http(metrics, b"\x16\x03\x01garbage\r\n\r\n").starts_with("HTTP/1.1 400 "));
    let mut flood = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
    flood.resize(20_000, b'a');
    assert!(http(metrics, &flood).starts_with("HTTP/1.1 431 "));
    let head = http(metrics, b"HEAD /metrics HTTP/1.1\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200 ") && head.ends_with("\r\n\r\n"));
    // A head sent in pieces is answered once whole.
    let s = connect(metrics);
    (&s).write_all(b"GET /metr").unwrap();
    std::thread::sleep(Duration::from_millis(20)); // two separate segments, not a handshake
    (&s).write_all(b"ics HTTP/1.1\r\n\r\n").unwrap();
    let got = util::read_to_eof_deadline(&s, 1 << 20, Instant::now() + STEP).unwrap();
    assert!(got.starts_with(b"HTTP/1.1 200 OK\r\n"));
    let last = scrape();
    assert_eq!(value(&last, accepted), 3, "scrapes never counted");
    assert_eq!(value(&last, active), 0);

    handle.stop();
    thread.join().unwrap();
}

/// An example started as a user would, with `--metrics 127.0.0.1:0`: the
/// process, its main address and its metrics address, from its two
/// readiness lines.
fn example_with_metrics(
    name: &str,
    extra: &[&str],
) -> (
    util::process::Proc,
    std::net::SocketAddr,
    std::net::SocketAddr,
) {
    let mut cmd = util::process::example(&["multiconn_echo", "chatroom"], name);
    cmd.args(["127.0.0.1", "0", "--metrics", "127.0.0.1:0"])
        .args(extra);
    let (proc, addr) = util::process::Proc::start_ready(name, cmd, STEP);
    let line = proc.line().expect("a second readiness line");
    let metrics = line
        .strip_prefix("metrics on http://")
        .and_then(|l| l.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("{name}: not a metrics line: {line:?}"));
    (proc, addr.parse().unwrap(), metrics.parse().unwrap())
}

/// Scrapes `addr` until `series` reads `want`, within `STEP`; the text.
fn scrape_until(addr: std::net::SocketAddr, series: &str, want: u64) -> String {
    let until = Instant::now() + STEP;
    loop {
        let text = http(addr, b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n");
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        if value(&text, series) == want {
            return text;
        }
        assert!(Instant::now() < until, "{series} never {want}:\n{text}");
        std::thread::sleep(Duration::from_millis(10)); // polling, not a handshake
    }
}

/// Reads lines until `want`, skipping server notices (`* X joined`).
fn past_notices(c: &mut util::chat::LineClient, want: &str) {
    loop {
        let line = c.line();
        if line == want {
            return;
        }
        assert!(
            line.starts_with("* "),
            "{}: {line:?} before {want:?}",
            c.name
        );
    }
}

fn stop(proc: util::process::Proc) {
    proc.signal("-TERM");
    let (status, _, stderr) = proc.finish();
    assert!(status.success(), "exit {status}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn multiconn_echo_serves_metrics_that_follow_its_clients() {
    let (proc, addr, metrics) = example_with_metrics("multiconn_echo", &[]);
    let active = "mio_selectors_connections_active{reactor=\"0\"}";
    scrape_until(metrics, active, 0);
    let mut clients: Vec<_> = (0..4).map(|_| connect(addr)).collect();
    for c in &mut clients {
        c.write_all(b"Message 1 from client.").unwrap();
        let mut back = [0u8; 22];
        c.read_exact(&mut back).unwrap();
    }
    let text = scrape_until(metrics, active, 4);
    assert_eq!(
        value(
            &text,
            "mio_selectors_connections_accepted_total{reactor=\"0\"}"
        ),
        4
    );
    assert_eq!(
        value(&text, "mio_selectors_bytes_received_total{reactor=\"0\"}"),
        88
    );
    assert_eq!(
        value(&text, "mio_selectors_bytes_sent_total{reactor=\"0\"}"),
        88
    );
    assert_eq!(
        value(
            &text,
            "mio_selectors_slow_consumer_disconnects_total{reactor=\"0\"}"
        ),
        0
    );
    drop(clients.pop());
    scrape_until(metrics, active, 3);
    drop(clients);
    let text = scrape_until(metrics, active, 0);
    assert_eq!(
        value(
            &text,
            "mio_selectors_connections_accepted_total{reactor=\"0\"}"
        ),
        4
    );
    stop(proc);
}

#[test]
fn chatroom_serves_metrics_with_lines_relayed_and_deliveries() {
    let (proc, addr, metrics) = example_with_metrics("chatroom", &[]);
    let active = "mio_selectors_connections_active{reactor=\"0\"}";
    let mut alice = util::chat::LineClient::join(addr);
    let mut bob = util::chat::LineClient::join(addr);
    let mut carol = util::chat::LineClient::join(addr);
    scrape_until(metrics, active, 3);
    alice.send("hello, room\n");
    let want = format!("<{}> hello, room", alice.name);
    past_notices(&mut bob, &want);
    past_notices(&mut carol, &want);
    let relayed = "mio_selectors_chat_lines_relayed_total{reactor=\"0\"}";
    let text = scrape_until(metrics, relayed, 1);
    assert_eq!(
        value(&text, "mio_selectors_chat_deliveries_total{reactor=\"0\"}"),
        2
    );
    assert!(text.contains("# TYPE mio_selectors_chat_deliveries_total counter\n"));
    bob.send("hi alice\n");
    past_notices(&mut alice, &format!("<{}> hi alice", bob.name));
    let text = scrape_until(metrics, relayed, 2);
    assert_eq!(
        value(&text, "mio_selectors_chat_deliveries_total{reactor=\"0\"}"),
        4
    );
    drop((alice, bob));
    scrape_until(metrics, active, 1);
    drop(carol);
    scrape_until(metrics, active, 0);
    stop(proc);
}

/// `--reactors 2 --metrics`: one scrape shows both reactors, each with its
/// `reactor` label, and the group's sums; the figures follow the clients
/// on every reactor, the idle ones included.
#[test]
fn multiconn_echo_with_two_reactors_serves_every_reactors_metrics() {
    let (proc, addr, metrics) = example_with_metrics("multiconn_echo", &["--reactors", "2"]);
    let all = "mio_selectors_connections_active{reactor=\"all\"}";
    scrape_until(metrics, all, 0);
    let mut clients: Vec<_> = (0..4).map(|_| connect(addr)).collect();
    for c in &mut clients {
        c.write_all(b"Message 1 from client.").unwrap();
        let mut back = [0u8; 22];
        c.read_exact(&mut back).unwrap();
    }
    let text = scrape_until(
        metrics,
        "mio_selectors_bytes_sent_total{reactor=\"all\"}",
        88,
    );
    let text = if value(&text, all) == 4 {
        text
    } else {
        scrape_until(metrics, all, 4)
    };
    let accepted = |r: &str| {
        value(
            &text,
            &format!("mio_selectors_connections_accepted_total{{reactor=\"{r}\"}}"),
        )
    };
    // Least-loaded: four clients open at once are spread over both.
    assert!(accepted("0") >= 1 && accepted("1") >= 1, "{text}");
    assert_eq!(accepted("0") + accepted("1"), 4, "{text}");
    assert_eq!(accepted("all"), 4, "{text}");
    assert!(
        text.contains("mio_selectors_loop_passes_total{reactor=\"1\"}"),
        "{text}"
    );
    drop(clients);
    scrape_until(metrics, all, 0);
    stop(proc);
}

#[test]
fn chatroom_with_two_reactors_serves_every_reactors_metrics() {
    let (proc, addr, metrics) = example_with_metrics("chatroom", &["--reactors", "2"]);
    let mut alice = util::chat::LineClient::join(addr);
    let mut bob = util::chat::LineClient::join(addr);
    let all = "mio_selectors_connections_active{reactor=\"all\"}";
    let text = scrape_until(metrics, all, 2);
    let one = |r: &str| {
        value(
            &text,
            &format!("mio_selectors_connections_active{{reactor=\"{r}\"}}"),
        )
    };
    assert_eq!((one("0"), one("1")), (1, 1), "{text}");
    alice.send("hello, room\n");
    past_notices(&mut bob, &format!("<{}> hello, room", alice.name));
    drop((alice, bob));
    scrape_until(metrics, all, 0);
    stop(proc);
}
