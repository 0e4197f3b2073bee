//! Outgoing connections: queued output, refusals, timeouts, a close
//! while connecting.

mod util;

use mio_selectors::{CloseReason, Config, Reactor};
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};
#[allow(unused_imports)]
use util::probe::*;
#[allow(unused_imports)]
use util::regress::*;
use util::{
    accept_within, read_exact_deadline, read_to_eof_deadline, with_deadline, write_all_deadline,
};

#[test]
fn connect_sends_output_queued_before_it_completed_in_order() {
    with_deadline(util::probe::LIMIT, || {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // connection_made queues more, after what was queued while connecting.
        let spec = silent().hook(|cx, ev, emit| {
            if let util::probe::Ev::Made(id) = ev {
                emit.note("open in connection_made", cx.is_open(*id) as i64);
                let _ = cx.send(*id, b"four.");
            }
        });
        let (mut rig, (id, open, sends)) = Rig::start(spec, move |r| {
            let id = r.connect(addr, ())?;
            let (open, sends) = r.with_context(|cx| {
                let sends: Vec<bool> = [&b"one,"[..], b"two,", b"three."]
                    .iter()
                    .map(|m| cx.send(id, m).is_ok())
                    .collect();
                (cx.is_open(id), sends)
            });
            Ok((id, open, sends))
        });
        assert!(!open, "a connecting connection is not open yet");
        assert_eq!(sends, [true; 3], "sends while connecting");
        let server = accept_within(&listener, util::probe::WAIT);
        let deadline = Instant::now() + util::probe::WAIT;
        let mut got = [0; 19];
        read_exact_deadline(&server, &mut got, deadline).unwrap();
        assert_eq!(&got, b"one,two,three.four.");
        write_all_deadline(&server, b"reply", deadline).unwrap();
        let (made, _, _) = rig.wait(
            util::probe::WAIT,
            "connection_made",
            |ev| matches!(ev, util::probe::Ev::Made(i) if *i == id),
        );
        wait_input(&mut rig, id, b"reply");
        let first_data = rig
            .log
            .iter()
            .position(|(_, ev)| matches!(ev, util::probe::Ev::Data(..)));
        assert!(first_data > Some(made), "input before connection_made");
        assert_eq!(rig.note("open in connection_made"), Some(1));
        drop(server);
        rig.wait(
            util::probe::WAIT,
            "close",
            |ev| matches!(ev, util::probe::Ev::Lost(i, Why::PeerClosed) if *i == id),
        );
        rig.stop();
        assert_eq!(rig.count(|ev| matches!(ev, util::probe::Ev::Made(_))), 1);
    });
}

#[test]
fn connect_from_a_callback_works_like_reactor_connect() {
    with_deadline(util::probe::LIMIT, || {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let spec = silent().hook(move |cx, ev, emit| {
            if is_timer(ev, 1) {
                match cx.connect(addr, ()) {
                    Ok(id) => {
                        let _ = cx.send(id, b"from on_timer");
                        emit.note("connected", 1);
                    }
                    Err(_) => emit.note("connected", 0),
                }
            }
        });
        let (mut rig, ()) = Rig::start(spec, |r| {
            r.with_context(|cx| cx.call_later(Duration::ZERO, None, 1));
            Ok(())
        });
        let server = accept_within(&listener, util::probe::WAIT);
        let mut got = [0; 13];
        read_exact_deadline(&server, &mut got, Instant::now() + util::probe::WAIT).unwrap();
        assert_eq!(&got, b"from on_timer");
        rig.wait(util::probe::WAIT, "connection_made", |ev| {
            matches!(ev, util::probe::Ev::Made(_))
        });
        assert_eq!(rig.note("connected"), Some(1));
        drop(server); // a graceful stop need not wait for it
        rig.stop();
    });
}

#[test]
fn connect_to_a_closed_port_fails_at_once_with_connection_refused() {
    with_deadline(util::probe::LIMIT, || {
        let port = closed_port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let spec = silent().hook(|cx, ev, emit| {
            if let util::probe::Ev::ConnectFailed(..) = ev {
                emit.note("connections after", cx.connection_count());
            }
        });
        let (mut rig, id) = Rig::start(spec, move |r| {
            let id = r.connect(addr, ())?;
            r.with_context(|cx| cx.send(id, b"never sent"))?;
            Ok(id)
        });
        let (_, _, ev) = rig.wait(util::probe::WAIT, "connect_failed", |ev| {
            matches!(ev, util::probe::Ev::ConnectFailed(..))
        });
        assert!(
            matches!(ev, util::probe::Ev::ConnectFailed(i, Why::ConnectFailed(io::ErrorKind::ConnectionRefused)) if i == id),
            "{ev:?}"
        );
        // The reason is the refusal itself (ConnectionRefused), not the 10 s
        // connect timeout (TimedOut): no clock needed to tell them apart.
        rig.stop();
        assert_eq!(rig.count(|ev| matches!(ev, util::probe::Ev::Made(_))), 0);
        // A connection that was never made is not lost either.
        assert_eq!(rig.count(|ev| matches!(ev, util::probe::Ev::Lost(..))), 0);
        assert_eq!(rig.note("connections after"), Some(0));
    });
}

/// A never-answering target on loopback: a listener with a backlog of 0
/// that never accepts. Once its accept queue holds a connection, Linux
/// drops further SYNs, so a connect stays in SYN_SENT. The test first
/// proves the queue is full (a std connect with a short timeout times out),
/// and skips if it cannot.
#[test]
fn connect_that_never_completes_fails_after_connect_timeout() {
    with_deadline(util::probe::LIMIT, || {
        use socket2::{Domain, Socket, Type};
        let sock = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        sock.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        sock.listen(0).unwrap();
        let addr = sock.local_addr().unwrap().as_socket().unwrap();
        let mut fillers = Vec::new();
        let mut full = false;
        for _ in 0..8 {
            match TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
                Ok(s) => fillers.push(s),
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    full = true;
                    break;
                }
                Err(e) => panic!("filling the accept queue: {e}"),
            }
        }
        if !full {
            util::require_in_ci("could not make a listener that ignores SYNs");
            return;
        }
        let config = Config {
            connect_timeout: Duration::from_millis(250),
            ..Config::default()
        };
        let start = Instant::now();
        let (mut rig, id) = Rig::start(silent().config(config), move |r| r.connect(addr, ()));
        let (_, at, ev) = rig.wait(util::probe::WAIT, "connect_failed", |ev| {
            matches!(ev, util::probe::Ev::ConnectFailed(..))
        });
        assert!(
            matches!(ev, util::probe::Ev::ConnectFailed(i, Why::ConnectFailed(io::ErrorKind::TimedOut)) if i == id),
            "{ev:?}"
        );
        // Not before the timeout (an ordering); the upper bound only says it
        // came at all, generously (timing is measured in bench/, not here).
        let took = at - start;
        assert!(
            took >= Duration::from_millis(240) && took < util::probe::WAIT,
            "timed out after {took:?}, connect_timeout 250 ms"
        );
        rig.stop();
        assert_eq!(rig.count(|ev| matches!(ev, util::probe::Ev::Made(_))), 0);
        drop(fillers);
    });
}

/// Regression: `close()` during a connect dropped the output queued for it.
/// `connect`, `send`, `close` before the connect completes: the peer gets
/// the bytes, then EOF (as `close` promises: "write what is pending").
/// Before the fix the close killed the connecting socket and its output.
#[test]
fn close_during_a_connect_still_delivers_the_queued_output() {
    with_deadline(util::regress::LIMIT, || {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::channel();
        let mut reactor = Reactor::new(Echo::new(tx), Config::default()).unwrap();
        reactor.with_context(|cx| {
            let id = cx.connect(addr, ()).unwrap();
            cx.send(id, b"hello before close\n").unwrap();
            cx.close(id);
        });
        let mut running = spawn_reactor(reactor);

        let s = accept_within(&listener, util::regress::WAIT);
        let got = read_to_eof_deadline(&s, 1024, Instant::now() + util::regress::WAIT)
            .expect("bytes, then EOF");
        assert_eq!(
            String::from_utf8_lossy(&got),
            "hello before close\n",
            "what the peer read before EOF"
        );
        drop(s); // the FIN the linger waits for
        loop {
            match next_event(&rx, &mut running, util::regress::WAIT, "connection_lost") {
                util::regress::Ev::Made(_) => continue,
                util::regress::Ev::Lost { reason, .. } => {
                    assert_eq!(reason, CloseReason::Closed.to_string());
                    break;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        running.stop_and_join(util::regress::WAIT).unwrap();
    });
}

/// Regression: a `Duration::MAX` connect timeout overflowed.
/// `connect_timeout: Duration::MAX`: the connect goes ahead and completes.
#[test]
fn connect_timeout_of_duration_max_does_not_overflow() {
    with_deadline(util::regress::LIMIT, || {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let config = Config {
            connect_timeout: Duration::MAX,
            ..Config::default()
        };
        let (tx, rx) = mpsc::channel();
        let mut reactor = Reactor::new(Echo::new(tx), config).unwrap();
        let id = reactor.connect(addr, ()).unwrap();
        let mut running = spawn_reactor(reactor);
        let peer = accept_within(&listener, util::regress::WAIT);
        match next_event(&rx, &mut running, util::regress::WAIT, "connection_made") {
            util::regress::Ev::Made(made) => assert_eq!(made, id),
            other => panic!("expected connection_made, got {other:?}"),
        }
        drop(peer);
        running.stop_and_join(util::regress::WAIT).unwrap();
    });
}

/// `Context::send_shared` errs as `send` does: an empty payload to a
/// connection that takes no more output is an error for both, not `Ok`
/// for one of them (its docs say "Errors: as send").
#[test]
fn send_shared_errs_as_send_does_even_when_empty() {
    struct Idle;
    impl mio_selectors::Handler for Idle {
        type Data = ();
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut reactor = mio_selectors::Reactor::new(Idle, mio_selectors::Config::default()).unwrap();
    let id = reactor.connect(addr, ()).unwrap();
    let (send, shared) = reactor.with_context(|cx| {
        cx.close(id);
        let empty: std::sync::Arc<[u8]> = std::sync::Arc::from(&b""[..]);
        (
            cx.send(id, b"").is_err(),
            cx.send_shared(id, empty).is_err(),
        )
    });
    assert!(send, "send to a closing connection errs");
    assert_eq!(
        shared, send,
        "send_shared of nothing errs as send of nothing does"
    );
}
