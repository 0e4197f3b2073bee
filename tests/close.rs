//! Closing: half-close, `write_eof`, graceful close (flush, FIN, linger)
//! and what it tells a slow or stalled peer.

mod util;

use mio_selectors::{
    CloseReason, Config, ConnId, Context, Error, Handler, InBuf, PeerAddr, Reactor,
};
use std::io::Read;
use std::net::SocketAddr;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};
#[allow(unused_imports)]
use util::echo_clients::*;
#[allow(unused_imports)]
use util::probe::*;
#[allow(unused_imports)]
use util::regress::*;
use util::{
    check_bytes, connect, is_timeout, read_exact_deadline, read_to_eof_deadline, shutdown_write,
    with_deadline, write_all_deadline, Pattern, Rng, *,
};

#[test]
fn write_eof_half_closes_and_the_reactor_still_reads() {
    with_deadline(util::probe::LIMIT, || {
        let spec = silent().hook(|cx, ev, emit| {
            if let util::probe::Ev::Accepted { id, .. } = ev {
                let _ = cx.send(*id, b"last words");
                cx.write_eof(*id);
                let after = cx.send(*id, b"more");
                emit.note(
                    "send after write_eof is WriteClosed",
                    matches!(after, Err(Error::WriteClosed)) as i64,
                );
                emit.note("open after write_eof", cx.is_open(*id) as i64);
            }
        });
        let (mut rig, addr) = Rig::start(spec, |r| {
            let id = r.listen("127.0.0.1:0")?;
            r.local_addr(id)
        });
        let client = connect(addr);
        let deadline = Instant::now() + util::probe::WAIT;
        // The reactor's output, then EOF.
        let got = read_to_eof_deadline(&client, 100, deadline).unwrap();
        assert_eq!(got, b"last words");
        let (_, _, acc) = rig.wait(util::probe::WAIT, "accept", is_accepted);
        let id = accepted_id(acc);
        // Our direction is still open, and the reactor reads it.
        write_all_deadline(&client, b"still talking", deadline).unwrap();
        wait_input(&mut rig, id, b"still talking");
        util::shutdown_write(&client).unwrap();
        rig.wait(
            util::probe::WAIT,
            "eof",
            |ev| matches!(ev, util::probe::Ev::Eof(i) if *i == id),
        );
        rig.wait(
            util::probe::WAIT,
            "close",
            |ev| matches!(ev, util::probe::Ev::Lost(i, Why::PeerClosed) if *i == id),
        );
        assert_eq!(rig.note("send after write_eof is WriteClosed"), Some(1));
        assert_eq!(rig.note("open after write_eof"), Some(1));
        rig.stop();
    });
}

const BULK: usize = 8 << 20;

const SHORT_LINGER: Duration = Duration::from_millis(200);

/// Sends [`BULK`] bytes to every client it accepts, then closes it.
struct Bulk {
    payload: Arc<Vec<u8>>,
    ev: Sender<util::regress::Ev>,
}

impl Handler for Bulk {
    type Data = ();

    fn accept_wrapper(&mut self, cx: &mut Context<'_, ()>, id: ConnId, _: &PeerAddr) -> Option<()> {
        cx.send(id, &self.payload).expect("queue the payload");
        cx.close(id); // gracefully: the payload is still delivered
        let _ = self.ev.send(util::regress::Ev::Closed(Instant::now()));
        Some(())
    }

    fn service_connection(
        &mut self,
        _: &mut Context<'_, ()>,
        _: ConnId,
        _: &mut (),
        _: &mut InBuf,
    ) {
    }

    fn connection_lost(&mut self, _: &mut Context<'_, ()>, _: ConnId, _: (), reason: &CloseReason) {
        lost(&self.ev, reason);
    }
}

/// A server that queues [`BULK`] bytes and closes each client at once, with
/// a linger of [`SHORT_LINGER`] and small kernel buffers.
fn start_bulk() -> (
    SocketAddr,
    Arc<Vec<u8>>,
    Receiver<util::regress::Ev>,
    Running,
) {
    let mut payload = vec![0; BULK];
    Pattern(0xB01C).fill(0, &mut payload);
    let payload = Arc::new(payload);
    let config = Config {
        max_outb: 2 * BULK,
        high_water: 2 * BULK,
        linger: SHORT_LINGER,
        // The flush's no-progress timeout, which `linger` also set before
        // the two were split (issue 10 #2).
        flush_timeout: SHORT_LINGER,
        ..Config::default()
    };
    let (tx, rx) = mpsc::channel();
    let bulk = Bulk {
        payload: payload.clone(),
        ev: tx,
    };
    let mut reactor = Reactor::new(bulk, config).unwrap();
    let addr = listen_small(&mut reactor, 64 * 1024);
    (addr, payload, rx, spawn_reactor(reactor))
}

const SMALL_INB: usize = 16 * 1024;

const UPLOAD: usize = 8 << 20;

/// Refuses a request that fills `inb` without a newline: an error line,
/// then `close()`, with `inb` still full.
struct Refuser {
    ev: Sender<util::regress::Ev>,
}

impl Handler for Refuser {
    type Data = ();

    fn accept_wrapper(&mut self, _: &mut Context<'_, ()>, _: ConnId, _: &PeerAddr) -> Option<()> {
        Some(())
    }

    fn service_connection(
        &mut self,
        cx: &mut Context<'_, ()>,
        id: ConnId,
        _: &mut (),
        inb: &mut InBuf,
    ) {
        if !inb.contains(&b'\n') && inb.len() >= SMALL_INB {
            let _ = cx.send(id, b"error: request too large\n");
            cx.close(id);
            let _ = self.ev.send(util::regress::Ev::Closed(Instant::now()));
        }
    }

    fn connection_lost(&mut self, _: &mut Context<'_, ()>, _: ConnId, _: (), reason: &CloseReason) {
        lost(&self.ev, reason);
    }
}

/// Regression: a graceful close gave a slow but steady reader a clean EOF after a truncated stream.
/// A reader that reads steadily but needs several lingers for the whole
/// output gets all of it, then EOF, and the server reports a plain close.
/// Before the fix the flush was cut off `linger` after `close()`: the
/// reader got a clean EOF after a truncated stream.
#[test]
fn graceful_close_keeps_flushing_while_a_slow_reader_makes_progress() {
    with_deadline(util::regress::LIMIT, || {
        let (addr, payload, rx, mut running) = start_bulk();
        let c = connect_small(addr, Some(64 * 1024), None);
        let closed = match next_event(&rx, &mut running, util::regress::WAIT, "close") {
            util::regress::Ev::Closed(at) => at,
            other => panic!("expected the close, got {other:?}"),
        };
        let deadline = Instant::now() + util::regress::WAIT;
        let mut got = Vec::with_capacity(BULK);
        let mut buf = vec![0; 64 * 1024];
        loop {
            c.set_read_timeout(Some(deadline.saturating_duration_since(Instant::now())))
                .unwrap();
            match (&c).read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if is_timeout(&e) && Instant::now() < deadline => continue,
                Err(e) => panic!("after {} of {BULK} bytes: {e}", got.len()),
            }
            assert!(got.len() <= BULK, "more bytes than were sent");
            // The pace under test, not a synchronisation: at most 64 KiB
            // per 5 ms, so 8 MiB take several lingers to read.
            thread::sleep(Duration::from_millis(5));
        }
        let took = closed.elapsed();
        if let Err(e) = check_bytes("the stream before EOF", &got, &payload) {
            panic!(
                "{e}: {} of {BULK} bytes, then a clean EOF, {took:?} after close() \
                 with a linger of {SHORT_LINGER:?}",
                got.len()
            );
        }
        assert!(
            took > 2 * SHORT_LINGER,
            "the reader took only {took:?}: too fast to test a flush longer than linger"
        );
        match next_event(&rx, &mut running, util::regress::WAIT, "connection_lost") {
            util::regress::Ev::Lost { reason, error, .. } => {
                assert!(!error, "a flushed close reported as {reason}");
                assert_eq!(reason, CloseReason::Closed.to_string());
            }
            other => panic!("expected connection_lost, got {other:?}"),
        }
        eprintln!("{BULK} bytes read in {took:?} (linger {SHORT_LINGER:?})");
        running.stop_and_join(util::regress::WAIT).unwrap();
    });
}

/// Regression: a graceful close closed a stalled reader without saying output was lost.
/// A reader that stops reading altogether is closed within a few lingers,
/// and `connection_lost` says output was dropped. Before the fix it was
/// closed `linger` after `close()` and reported as a plain close.
#[test]
fn graceful_close_gives_up_on_a_stalled_reader_and_says_bytes_were_dropped() {
    with_deadline(util::regress::LIMIT, || {
        let (addr, _payload, rx, mut running) = start_bulk();
        let c = connect_small(addr, Some(4096), None); // and never read
        let closed = match next_event(&rx, &mut running, util::regress::WAIT, "close") {
            util::regress::Ev::Closed(at) => at,
            other => panic!("expected the close, got {other:?}"),
        };
        let (at, reason, error) =
            match next_event(&rx, &mut running, util::regress::WAIT, "connection_lost") {
                util::regress::Ev::Lost { at, reason, error } => (at, reason, error),
                other => panic!("expected connection_lost, got {other:?}"),
            };
        let took = at.saturating_duration_since(closed);
        assert!(
            error && reason.contains("dropped"),
            "a close that dropped output is reported as {reason:?}"
        );
        let dropped = reason
            .split_whitespace()
            .find_map(|w| w.parse::<usize>().ok())
            .unwrap_or_else(|| panic!("{reason:?} does not say how many bytes"));
        assert!(
            (1..BULK).contains(&dropped),
            "{dropped} of {BULK} bytes dropped?"
        );
        // The reason above is the check (the bug reported a plain close);
        // this bound only says the close came, generously.
        assert!(
            took < util::regress::WAIT,
            "a stalled reader held on for {took:?} with a linger of {SHORT_LINGER:?}"
        );
        eprintln!("stalled reader closed {took:?} after close(): {reason}");
        drop(c);
        running.stop_and_join(util::regress::WAIT).unwrap();
    });
}

/// Regression: closing with a full `inb` stalled the peer's writes until linger ran out, then reset them.
/// The server closes while its `inb` is full and the client is still
/// uploading 8 MiB: the linger phase reads and discards the rest, so the
/// upload completes at once and both sides close cleanly. Before the fix a
/// full `inb` stopped the linger phase from reading: the upload stalled for
/// the whole linger, then was reset.
#[test]
fn close_with_a_full_input_buffer_still_reads_the_peer_to_its_fin() {
    with_deadline(util::regress::LIMIT, || {
        // Long, so that an upload stalled on it (the bug) cannot be
        // mistaken for a slow machine: half of it is a generous bound.
        let linger = Duration::from_secs(30);
        let config = Config {
            max_inb: SMALL_INB,
            read_chunk: SMALL_INB,
            linger,
            ..Config::default()
        };
        let (tx, rx) = mpsc::channel();
        let mut reactor = Reactor::new(Refuser { ev: tx }, config).unwrap();
        let lid = reactor.listen("127.0.0.1:0").unwrap();
        let addr = reactor.local_addr(lid).unwrap();
        let mut running = spawn_reactor(reactor);

        // A small send buffer, so that 8 MiB cannot hide in kernel buffers.
        let c = connect_small(addr, None, Some(64 * 1024));
        let w = c.try_clone().unwrap();
        let (done_tx, done) = mpsc::channel();
        let started = Instant::now();
        thread::spawn(move || {
            let chunk = vec![b'a'; 64 * 1024];
            let deadline = started + util::regress::WAIT;
            let mut sent = 0;
            let result = loop {
                if sent == UPLOAD {
                    break shutdown_write(&w).map_err(|e| format!("shutdown: {e}"));
                }
                match write_all_deadline(&w, &chunk, deadline) {
                    Ok(()) => sent += chunk.len(),
                    Err(e) => break Err(format!("{e} after {sent} of {UPLOAD} bytes")),
                }
            };
            let _ = done_tx.send(result.map(|()| started.elapsed()));
        });
        let reply = read_to_eof_deadline(&c, 1024, Instant::now() + util::regress::WAIT)
            .expect("reply, then EOF");
        assert_eq!(
            String::from_utf8_lossy(&reply),
            "error: request too large\n"
        );
        let upload = done
            .recv_timeout(util::regress::WAIT + SHORT)
            .expect("the writer thread reports");
        match upload {
            Ok(took) => {
                eprintln!("{UPLOAD} bytes uploaded past the close in {took:?}");
                assert!(
                    took < linger / 2,
                    "the upload took {took:?}: it waited on the linger ({linger:?})"
                );
            }
            Err(e) => panic!(
                "the upload failed at {:?}: {e} (linger {linger:?})",
                started.elapsed()
            ),
        }
        loop {
            match next_event(&rx, &mut running, util::regress::WAIT, "connection_lost") {
                util::regress::Ev::Closed(_) => continue,
                util::regress::Ev::Lost { reason, error, .. } => {
                    assert!(!error, "the close ended in {reason}");
                    break;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        running.stop_and_join(util::regress::WAIT).unwrap();
    });
}

/// Regression: a `Duration::MAX` linger overflowed.
/// `linger: Duration::MAX` means "wait for the peer's FIN however long":
/// the close goes through, and ends when the peer closes.
#[test]
fn linger_of_duration_max_does_not_overflow() {
    with_deadline(util::regress::LIMIT, || {
        let config = Config {
            linger: Duration::MAX,
            ..Config::default()
        };
        let (tx, rx) = mpsc::channel();
        let bulk = Bulk {
            payload: Arc::new(b"bye\n".to_vec()),
            ev: tx,
        };
        let mut reactor = Reactor::new(bulk, config).unwrap();
        let lid = reactor.listen("127.0.0.1:0").unwrap();
        let addr = reactor.local_addr(lid).unwrap();
        let mut running = spawn_reactor(reactor);

        let c = connect(addr);
        let got = read_to_eof_deadline(&c, 1024, Instant::now() + util::regress::WAIT);
        drop(c); // the FIN the linger waits for
        loop {
            match next_event(&rx, &mut running, util::regress::WAIT, "connection_lost") {
                util::regress::Ev::Closed(_) => continue,
                util::regress::Ev::Lost { reason, .. } => {
                    assert_eq!(reason, CloseReason::Closed.to_string());
                    break;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(got.expect("bye, then EOF"), b"bye\n");
        running.stop_and_join(util::regress::WAIT).unwrap();
    });
}

#[test]
fn half_close_with_output_pending_gets_everything_then_eof() {
    run(|| {
        let mut rng = Rng::new(seed(0xEC40_0008));
        // High water above the message: the server reads all of it (and the
        // FIN) while the client reads nothing, so output is pending at EOF.
        let config = Config {
            high_water: 16 * MIB,
            max_outb: 32 * MIB,
            ..Config::default()
        };
        let mut server = start_echo(config);
        let deadline = Instant::now() + CLIENT_TIME;
        let total = 8 * MIB;
        let data = rng.bytes(total);
        let s = connect(server.addr);
        let local = s.local_addr().unwrap();
        write_all_deadline(&s, &data, deadline).unwrap();
        shutdown_write(&s).unwrap();

        let stats = server.wait_for(Duration::from_secs(10), "eof_received", |st| {
            st.conn_of(local)
                .is_some_and(|c| c.pending_at_eof.is_some())
        });
        let pending = stats.conn_of(local).unwrap().pending_at_eof.unwrap();
        assert!(pending > 0, "nothing pending at EOF: nothing tested");
        assert!(
            stats.lost_peer(local).is_none(),
            "closed with {pending} bytes unsent"
        );
        drop(stats);
        eprintln!("{pending} bytes pending when the FIN arrived");

        let mut buf = vec![0; 64 * KIB];
        let mut at = 0;
        while at < total {
            let n = rng.range(1, buf.len()).min(total - at);
            read_exact_deadline(&s, &mut buf[..n], deadline)
                .unwrap_or_else(|e| panic!("read at offset {at}: {e}"));
            if let Err(e) = check_bytes(&format!("offset {at}"), &buf[..n], &data[at..at + n]) {
                panic!("{e}");
            }
            at += n;
        }
        expect_eof(&s, deadline).unwrap();

        let stats = server.wait_for(Duration::from_secs(5), "the connection lost", |st| {
            st.lost_peer(local).is_some()
        });
        assert_eq!(stats.lost_peer(local).unwrap().reason, Reason::PeerClosed);
        assert_eq!(stats.conn_of(local).unwrap().echoed, total as u64);
        drop(stats);
        server.stop_and_join(Duration::from_secs(5));
    });
}
