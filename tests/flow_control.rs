//! Backpressure: reading stops above `high_water` and resumes at
//! `low_water`; input held back meanwhile is served after; `resume_writing`
//! follows the drain.

mod util;

use mio_selectors::{CloseReason, Config, ConnId, Context, Handler, InBuf, PeerAddr, Reactor};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use std::{io, thread};
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
fn resume_writing_follows_a_drain_below_low_water_after_the_reader_resumes() {
    with_deadline(util::probe::LIMIT, || {
        const TOTAL: usize = 12 << 20;
        const CHUNK: usize = 16 << 10;
        let config = Config {
            high_water: 64 << 10,
            low_water: 16 << 10,
            ..Config::default()
        };
        let (high, low) = (config.high_water, config.low_water);
        let pattern = Pattern(0xF10_C0DE);
        let mut sent = 0;
        // A producer: queue until paused, go on at resume_writing, close at the end.
        let spec = silent().config(config).hook(move |cx, ev, emit| {
            let id = match ev {
                util::probe::Ev::Accepted { id, .. } | util::probe::Ev::Resume(id, _) => *id,
                _ => return,
            };
            let mut buf = vec![0; CHUNK];
            while sent < TOTAL && !cx.is_writing_paused(id) {
                let n = CHUNK.min(TOTAL - sent);
                pattern.fill(sent as u64, &mut buf[..n]);
                if cx.send(id, &buf[..n]).is_err() {
                    emit.note("send failed", sent);
                    return;
                }
                sent += n;
            }
            if sent == TOTAL {
                emit.note("all queued", sent);
                cx.close(id);
            } else {
                emit.note("paused with pending", cx.pending_output(id).unwrap_or(0));
                emit.note("produced", sent);
            }
        });
        let (mut rig, addr) = Rig::start(spec, |r| {
            let id = r.listen("127.0.0.1:0")?;
            r.local_addr(id)
        });
        let client = connect(addr);
        // Not reading: wait for the producer to stall (nothing for 300 ms).
        let deadline = Instant::now() + util::probe::WAIT;
        while !rig.quiet(Duration::from_millis(300)) {
            assert!(Instant::now() < deadline, "the producer never stalled");
        }
        let produced = rig.note("produced").expect("a pause") as usize;
        assert!(
            rig.note("all queued").is_none() && produced < TOTAL,
            "no stall: {produced}"
        );
        let stall = rig.log.len();
        // Now read everything: the reactor drains, resumes the producer, closes.
        let got = read_to_eof_deadline(&client, TOTAL, Instant::now() + util::probe::WAIT).unwrap();
        assert_eq!(got.len(), TOTAL);
        pattern.check("stream", 0, &got).unwrap();
        drop(client);
        rig.wait(util::probe::WAIT, "close", |ev| {
            matches!(ev, util::probe::Ev::Lost(_, Why::Closed))
        });
        rig.stop();
        let resumed_after_stall = rig.log[stall..]
            .iter()
            .filter(|(_, ev)| matches!(ev, util::probe::Ev::Resume(..)))
            .count();
        assert!(
            resumed_after_stall >= 1,
            "no resume_writing after reading resumed"
        );
        for (_, ev) in &rig.log {
            match ev {
                util::probe::Ev::Resume(_, pending) => {
                    assert!(*pending <= low, "resumed at {pending}")
                }
                util::probe::Ev::Note("paused with pending", p) => {
                    let p = *p as usize;
                    assert!(p >= high && p < high + CHUNK, "paused at {p}");
                }
                util::probe::Ev::Note("send failed", at) => panic!("send failed at {at}"),
                _ => {}
            }
        }
        eprintln!("stalled at {produced} bytes; {resumed_after_stall} resumes after");
    });
}

const ANSWER: usize = 16 * 1024;

const REQUESTS: usize = 20;

/// Answers each line with [`ANSWER`] bytes, asyncio-style: while writing
/// is paused it leaves the rest of `inb` alone and waits for
/// `resume_writing` (it needs to do nothing there: the reactor offers the
/// held-back input again).
struct Producer {
    resumed: Arc<AtomicUsize>,
    ev: Sender<util::regress::Ev>,
}

impl Handler for Producer {
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
        while let Some(end) = inb.iter().position(|&b| b == b'\n') {
            if cx.is_writing_paused(id) {
                return; // the rest waits for resume_writing
            }
            let _ = cx.send(id, &[b'r'; ANSWER]);
            inb.consume(end + 1);
        }
    }

    fn resume_writing(&mut self, _: &mut Context<'_, ()>, _: ConnId, _: &mut ()) {
        self.resumed.fetch_add(1, Ordering::Relaxed);
    }

    fn connection_lost(&mut self, _: &mut Context<'_, ()>, _: ConnId, _: (), reason: &CloseReason) {
        lost(&self.ev, reason);
    }
}

/// Regression: input held back while output was backed up was never offered again.
/// Twenty requests in one write, each answered with 16 KiB: the answers
/// pass high water after four, the producer stops, and the rest of the
/// requests sit in `inb` with the socket already drained. Before the fix
/// nothing offered them again: the client got four answers and waited forever.
#[test]
fn input_held_back_while_writing_is_paused_is_served_after_resume() {
    with_deadline(util::regress::LIMIT, || {
        let resumed = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::channel();
        let producer = Producer {
            resumed: resumed.clone(),
            ev: tx,
        };
        let mut reactor = Reactor::new(producer, Config::default()).unwrap();
        let lid = reactor.listen("127.0.0.1:0").unwrap();
        let addr = reactor.local_addr(lid).unwrap();
        let mut running = spawn_reactor(reactor);

        let c = connect(addr);
        let deadline = Instant::now() + SHORT;
        write_all_deadline(&c, &b"x\n".repeat(REQUESTS), deadline).unwrap();
        let mut got = vec![0; REQUESTS * ANSWER];
        let mut at = 0;
        while at < got.len() {
            c.set_read_timeout(Some(deadline.saturating_duration_since(Instant::now())))
                .unwrap();
            match (&c).read(&mut got[at..]) {
                Ok(0) => panic!("EOF after {at} bytes"),
                Ok(n) => at += n,
                Err(e) if is_timeout(&e) && Instant::now() < deadline => {}
                Err(e) => panic!(
                    "{} of {REQUESTS} answers within {SHORT:?}, then: {e} \
                     (resume_writing called {} times)",
                    at / ANSWER,
                    resumed.load(Ordering::Relaxed)
                ),
            }
        }
        assert!(got.iter().all(|&b| b == b'r'), "answers are not intact");
        assert!(
            resumed.load(Ordering::Relaxed) >= 1,
            "writing was never paused: the test did not exercise held-back input"
        );
        assert!(
            rx.try_recv().is_err(),
            "the server closed the connection (a paused handler taken for a stuck one?)"
        );
        drop(c);
        running.stop_and_join(util::regress::WAIT).unwrap();
    });
}

#[test]
fn client_that_never_reads_is_held_at_high_water_and_loses_nothing() {
    run(|| {
        let mut rng = Rng::new(seed(0xEC40_0003));
        let config = Config::default();
        let (high, bound) = (config.high_water, config.high_water + config.read_chunk);
        let mut server = start_echo(config);
        let deadline = Instant::now() + CLIENT_TIME;
        let total = 16 * MIB;
        let data = Arc::new(rng.bytes(total));
        let stream = connect(server.addr);
        let local = stream.local_addr().unwrap();

        // The writer reports the first time TCP pushes back (a write that
        // makes no progress for 250 ms) and keeps going; or reports that it
        // sent everything without a push-back (the kernel's buffers can be
        // that large).
        let (progress_tx, progress) = mpsc::channel();
        let w = stream.try_clone().unwrap();
        let wdata = data.clone();
        let writer = thread::spawn(move || -> Result<(), String> {
            w.set_write_timeout(Some(Duration::from_millis(250)))
                .map_err(|e| e.to_string())?;
            let (mut at, mut stalled) = (0, false);
            while at < total {
                if Instant::now() >= deadline {
                    return Err(format!("writer: deadline with {at} of {total} bytes sent"));
                }
                match (&w).write(&wdata[at..total.min(at + 256 * KIB)]) {
                    Ok(0) => return Err("write returned 0".into()),
                    Ok(n) => at += n,
                    Err(e) if is_timeout(&e) => {
                        if !std::mem::replace(&mut stalled, true) {
                            let _ = progress_tx.send(Some(at));
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(format!("write at offset {at}: {e}")),
                }
            }
            let _ = progress_tx.send(None);
            shutdown_write(&w).map_err(|e| e.to_string())
        });

        match progress.recv_timeout(Duration::from_secs(20)) {
            Ok(Some(at)) => eprintln!("TCP pushed back after {at} bytes"),
            Ok(None) => eprintln!("all {total} bytes sent without a push-back"),
            Err(_) => panic!(
                "writer neither stalled nor finished: {:?}",
                writer.join().map_err(|_| "writer panicked")
            ),
        }
        // With the client reading nothing, the server has stopped reading
        // it at the high-water mark instead of buffering.
        let stats = server.wait_for(Duration::from_secs(10), "the high-water mark", |s| {
            s.conn_of(local).is_some_and(|c| c.max_pending >= high)
        });
        let echoed = stats.conn_of(local).unwrap().echoed;
        assert!(
            echoed < total as u64,
            "the server read all {total} bytes from a client that reads nothing"
        );
        drop(stats);

        // Now read: every byte comes back, in order, then EOF.
        let mut buf = vec![0; 64 * KIB];
        let mut at = 0;
        while at < total {
            let n = buf.len().min(total - at);
            read_exact_deadline(&stream, &mut buf[..n], deadline)
                .unwrap_or_else(|e| panic!("read at offset {at}: {e}"));
            if let Err(e) = check_bytes(&format!("offset {at}"), &buf[..n], &data[at..at + n]) {
                panic!("{e}");
            }
            at += n;
        }
        expect_eof(&stream, deadline).unwrap();
        writer.join().expect("writer panicked").unwrap();

        let stats = server.wait_for(Duration::from_secs(5), "the connection lost", |s| {
            s.lost_peer(local).is_some()
        });
        let c = stats.conn_of(local).unwrap();
        assert_eq!(c.echoed, total as u64);
        assert!(
            stats.max_pending <= bound,
            "pending output reached {} > high_water + read_chunk = {bound}",
            stats.max_pending
        );
        assert_eq!(stats.lost_peer(local).unwrap().reason, Reason::PeerClosed);
        drop(stats);
        server.stop_and_join(Duration::from_secs(5));
    });
}
