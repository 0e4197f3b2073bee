//! The reactor running the tutorial's echo server, driven over real
//! loopback sockets: many concurrent clients with random message sizes and
//! split writes, bursts, a client that does not read, peer resets, slab slot
//! reuse, descriptor leaks, graceful stop and half-close.
//!
//! Every test runs under a watchdog (`with_deadline`), every socket call has
//! a timeout, and threads synchronise on channels, latches and the handler's
//! condition variable, never on sleeps.

mod util;

use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use mio_selectors::{Config, Error};
use util::*;

/// The watchdog limit of each test.
const TEST_LIMIT: Duration = Duration::from_secs(45);
/// Deadline for the clients of one test (shorter than the watchdog, so that
/// a stuck client reports what it was doing).
const CLIENT_TIME: Duration = Duration::from_secs(30);
const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// Runs a test under the watchdog, holding the descriptor lock shared.
fn run(test: impl FnOnce() + Send + 'static) {
    let _fds = fds_shared();
    with_deadline(TEST_LIMIT, test);
}

/// A call the writer of [`echo_stream`] makes before writing the piece
/// that starts at the given offset (to wait for something, say).
type Pause = Option<(usize, Box<dyn FnOnce() -> Result<(), String> + Send>)>;

/// Streams `data` through the echo server: a writer thread sends it in
/// `pieces` (making the `pause` call on the way, if given), then
/// half-closes; this thread reads the echo back in random-sized reads,
/// checks every byte, and then expects EOF: the server closes once it has
/// sent everything.
fn echo_stream(
    stream: TcpStream,
    data: Arc<Vec<u8>>,
    pieces: Vec<usize>,
    pause: Pause,
    rng: &mut Rng,
    deadline: Instant,
) -> Result<(), String> {
    assert_eq!(pieces.iter().sum::<usize>(), data.len());
    let w = stream.try_clone().map_err(|e| format!("clone: {e}"))?;
    let wdata = data.clone();
    let writer = thread::spawn(move || -> Result<(), String> {
        let mut pause = pause;
        let mut at = 0;
        let result = (|| {
            for len in pieces {
                if pause.as_ref().is_some_and(|(pause_at, _)| *pause_at == at) {
                    (pause.take().unwrap().1)()?;
                }
                write_all_deadline(&w, &wdata[at..at + len], deadline)
                    .map_err(|e| format!("write at offset {at}: {e}"))?;
                at += len;
            }
            shutdown_write(&w).map_err(|e| format!("shutdown(Write): {e}"))
        })();
        if result.is_err() {
            let _ = w.shutdown(Shutdown::Both); // unblocks the reader
        }
        result
    });
    let read = (|| {
        let mut buf = vec![0; 32 * KIB];
        let mut at = 0;
        while at < data.len() {
            let n = rng.range(1, buf.len()).min(data.len() - at);
            read_exact_deadline(&stream, &mut buf[..n], deadline)
                .map_err(|e| format!("read at offset {at} of {}: {e}", data.len()))?;
            check_bytes(
                &format!("echo at offset {at}"),
                &buf[..n],
                &data[at..at + n],
            )?;
            at += n;
        }
        expect_eof(&stream, deadline).map_err(|e| format!("after {at} bytes: {e}"))
    })();
    if read.is_err() {
        let _ = stream.shutdown(Shutdown::Both); // unblocks the writer
    }
    let written = writer
        .join()
        .unwrap_or_else(|_| Err("writer panicked".into()));
    read.and(written)
}

/// Messages of 1 B..64 KiB (a quarter of them under 100 B), each cut at
/// random points into the pieces it is written in. Client 0 also sends the
/// extremes, 1 B and 64 KiB.
fn random_messages(rng: &mut Rng, client: usize) -> (Vec<u8>, Vec<usize>) {
    let (mut data, mut pieces) = (Vec::new(), Vec::new());
    for m in 0..rng.range(3, 6) {
        let len = match (client, m) {
            (0, 0) => 1,
            (0, 1) => 64 * KIB,
            _ if rng.below(4) == 0 => rng.range(1, 100),
            _ => rng.range(1, 64 * KIB),
        };
        data.extend(rng.bytes(len));
        pieces.extend(rng.split(len, 6));
    }
    (data, pieces)
}

// ---------------------------------------------------------------------------
// 1. 100 concurrent clients, random sizes and splits, IPv4 and IPv6
// ---------------------------------------------------------------------------

const CLIENTS: usize = 100;

fn hundred_concurrent_clients(bind: &'static str) {
    let seed = seed(0xEC40_0001);
    let config = Config::default();
    let bound = config.high_water + config.read_chunk;
    let mut server = match Server::start(bind, config, Opts::default()) {
        Ok(server) => server,
        Err(Error::Bind { addr, source }) if bind.starts_with('[') => {
            require_in_ci(&format!("cannot bind {addr} ({source}): no IPv6 loopback"));
            return;
        }
        Err(e) => panic!("start the echo server on {bind}: {e}"),
    };
    let addr = server.addr;
    let deadline = Instant::now() + CLIENT_TIME;
    let latch = Arc::new(Latch::new(CLIENTS));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let latch = latch.clone();
            thread::Builder::new()
                .name(format!("client {i}"))
                .spawn(move || -> Result<(SocketAddr, usize), String> {
                    let mut rng = Rng::fork(seed, i as u64);
                    let (data, pieces) = random_messages(&mut rng, i);
                    let stream = match connect_with_deadline(addr, Duration::from_secs(10)) {
                        Ok(s) => s,
                        Err(e) => {
                            latch.gate.fail();
                            return Err(format!("client {i}: connect: {e}"));
                        }
                    };
                    let local = stream.local_addr().map_err(|e| e.to_string())?;
                    // All connected before anyone sends: they really are concurrent.
                    latch
                        .arrive_and_wait(deadline)
                        .map_err(|e| format!("client {i}: {e}"))?;
                    let len = data.len();
                    echo_stream(stream, Arc::new(data), pieces, None, &mut rng, deadline)
                        .map_err(|e| format!("client {i} ({local}): {e}"))?;
                    Ok((local, len))
                })
                .expect("spawn a client")
        })
        .collect();
    let results: Vec<_> = clients
        .into_iter()
        .map(|t| t.join().expect("client thread panicked"))
        .collect();
    let failed: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failed.is_empty(),
        "{} of {CLIENTS} clients failed: {failed:#?}",
        failed.len()
    );

    let stats = server.wait_for(Duration::from_secs(10), "every connection lost", |s| {
        s.lost.len() == CLIENTS
    });
    assert_eq!(stats.accepted.len(), CLIENTS);
    assert_eq!(stats.max_live, CLIENTS, "all clients were open at once");
    assert_eq!((stats.live, stats.last_count), (0, 0));
    let mut total = 0;
    for (local, len) in results.into_iter().map(Result::unwrap) {
        let c = stats.conn_of(local).expect("the server saw every client");
        assert_eq!(c.echoed, len as u64, "{local}: bytes echoed by the server");
        assert_eq!(c.send_errors, 0);
        assert!(c.max_pending <= bound, "{local}: {} pending", c.max_pending);
        assert_eq!(stats.lost_of(c.id).unwrap().reason, Reason::PeerClosed);
        total += len;
    }
    drop(stats);
    eprintln!("{CLIENTS} clients on {addr} echoed {total} bytes");
    server.stop_and_join(Duration::from_secs(5));
}

#[test]
fn hundred_concurrent_clients_ipv4() {
    run(|| hundred_concurrent_clients("127.0.0.1:0"));
}

#[test]
fn hundred_concurrent_clients_ipv6() {
    run(|| hundred_concurrent_clients("[::1]:0"));
}

// ---------------------------------------------------------------------------
// 2. An 8 MiB burst, then shutdown(Write)
// ---------------------------------------------------------------------------

#[test]
fn burst_of_8_mib_then_half_close_comes_back_whole_then_eof() {
    run(|| {
        let mut rng = Rng::new(seed(0xEC40_0002));
        let config = Config::default();
        let bound = config.high_water + config.read_chunk;
        let mut server = start_echo(config);
        let deadline = Instant::now() + CLIENT_TIME;
        let data = Arc::new(rng.bytes(8 * MIB));
        let stream = connect(server.addr);
        let local = stream.local_addr().unwrap();
        // One write_all of the whole burst, then FIN; read concurrently.
        echo_stream(stream, data, vec![8 * MIB], None, &mut rng, deadline).unwrap();

        let stats = server.wait_for(Duration::from_secs(5), "the connection lost", |s| {
            s.lost_peer(local).is_some()
        });
        let c = stats.conn_of(local).unwrap();
        assert_eq!(c.echoed, 8 * MIB as u64);
        assert!(c.max_pending <= bound, "{} pending", c.max_pending);
        assert_eq!(stats.lost_peer(local).unwrap().reason, Reason::PeerClosed);
        drop(stats);
        server.stop_and_join(Duration::from_secs(5));
    });
}

// ---------------------------------------------------------------------------
// 3. A client that does not read: bounded pending output, nothing lost
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// 4. A peer reset mid-stream leaves the other clients untouched
// ---------------------------------------------------------------------------

#[test]
fn peer_reset_mid_stream_leaves_other_clients_untouched() {
    run(|| {
        const OTHERS: usize = 8;
        let seed = seed(0xEC40_0004);
        let mut server = start_echo(Config::default());
        let addr = server.addr;
        let deadline = Instant::now() + CLIENT_TIME;
        let connected = Arc::new(Latch::new(OTHERS + 1));
        let first_half_sent = Arc::new(Latch::new(OTHERS + 1));
        let reset_done = Arc::new(Gate::new());

        let others: Vec<_> = (0..OTHERS)
            .map(|i| {
                let (connected, half, reset_done) = (
                    connected.clone(),
                    first_half_sent.clone(),
                    reset_done.clone(),
                );
                thread::spawn(move || -> Result<(SocketAddr, usize), String> {
                    let mut rng = Rng::fork(seed, i as u64);
                    let (p1, p2) = (
                        rng.range(64 * KIB, 256 * KIB),
                        rng.range(64 * KIB, 256 * KIB),
                    );
                    let data = Arc::new(rng.bytes(p1 + p2));
                    let mut pieces = rng.split(p1, 8);
                    pieces.extend(rng.split(p2, 8));
                    let stream = match connect_with_deadline(addr, Duration::from_secs(10)) {
                        Ok(s) => s,
                        Err(e) => {
                            connected.gate.fail();
                            return Err(format!("client {i}: connect: {e}"));
                        }
                    };
                    let local = stream.local_addr().map_err(|e| e.to_string())?;
                    connected.arrive_and_wait(deadline)?;
                    // After the first half: report it, wait for the reset.
                    let half2 = half.clone();
                    let pause: Pause = Some((
                        p1,
                        Box::new(move || {
                            half2.arrive();
                            reset_done.wait(deadline)
                        }),
                    ));
                    echo_stream(stream, data, pieces, pause, &mut rng, deadline).map_err(|e| {
                        half.gate.fail();
                        format!("client {i} ({local}): {e}")
                    })?;
                    Ok((local, p1 + p2))
                })
            })
            .collect();
        let fail = |others: Vec<thread::JoinHandle<Result<(SocketAddr, usize), String>>>,
                    why: String|
         -> ! {
            reset_done.fail();
            let errors: Vec<_> = others.into_iter().map(|t| t.join()).collect();
            panic!("{why}; the other clients: {errors:#?}");
        };

        // The victim: sends up to 4 MiB and reads nothing (stopping early if
        // TCP pushes back), so that the server holds output for it and bytes
        // are in flight both ways when it resets.
        let victim = connect(addr);
        let vlocal = victim.local_addr().unwrap();
        if let Err(e) = connected.arrive_and_wait(deadline) {
            fail(others, e);
        }
        victim
            .set_write_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let chunk = Rng::fork(seed, 999).bytes(64 * KIB);
        let mut sent = 0;
        while sent < 4 * MIB {
            match (&victim).write(&chunk) {
                Ok(n) => sent += n,
                Err(e) if is_timeout(&e) => break,
                Err(e) => panic!("victim write: {e}"),
            }
        }
        server.wait_until(
            Duration::from_secs(10),
            "output pending for the victim",
            |s| s.conn_of(vlocal).is_some_and(|c| c.echoed > 0),
        );
        if let Err(e) = first_half_sent.arrive_and_wait(deadline) {
            fail(others, e);
        }
        reset(victim); // RST, in the middle of everybody's stream
        reset_done.open();

        let stats = server.wait_for(Duration::from_secs(10), "the victim lost", |s| {
            s.lost_peer(vlocal).is_some()
        });
        let reason = stats.lost_peer(vlocal).unwrap().reason.clone();
        drop(stats);
        assert!(
            matches!(
                reason,
                Reason::Error(io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe)
            ),
            "the reset client was lost with {reason:?}"
        );

        let results: Vec<_> = others
            .into_iter()
            .map(|t| t.join().expect("client thread panicked"))
            .collect();
        let failed: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
        assert!(
            failed.is_empty(),
            "clients disturbed by the reset: {failed:#?}"
        );
        let stats = server.wait_for(Duration::from_secs(10), "every connection lost", |s| {
            s.lost.len() == OTHERS + 1
        });
        for (local, len) in results.into_iter().map(Result::unwrap) {
            let c = stats.conn_of(local).unwrap();
            assert_eq!(c.echoed, len as u64);
            assert_eq!(stats.lost_of(c.id).unwrap().reason, Reason::PeerClosed);
        }
        drop(stats);
        server.stop_and_join(Duration::from_secs(5));
    });
}

// ---------------------------------------------------------------------------
// 5. Slab slot reuse: an old ConnId never reaches the slot's new connection
// ---------------------------------------------------------------------------

#[test]
fn reused_slot_gets_a_new_generation_and_old_ids_are_dead() {
    run(|| {
        let mut rng = Rng::new(seed(0xEC40_0005));
        let opts = Opts {
            close_cmd: Some(b"close me"),
            probe_stale: true,
        };
        let mut server = Server::start("127.0.0.1:0", Config::default(), opts).unwrap();
        let addr = server.addr;
        let deadline = Instant::now() + CLIENT_TIME;
        let wait = Duration::from_secs(10);
        let mut gens = std::collections::HashSet::new();
        for round in 0..5 {
            // A: an echo, then "close me": the server aborts it.
            let a = connect(addr);
            let a_local = a.local_addr().unwrap();
            let n = rng.range(1, 4 * KIB);
            let msg = rng.bytes(n);
            write_all_deadline(&a, &msg, deadline).unwrap();
            let mut echo = vec![0; msg.len()];
            read_exact_deadline(&a, &mut echo, deadline).unwrap();
            check_bytes("A's echo", &echo, &msg).unwrap();
            let a_id = server
                .wait_for(wait, "A accepted", |s| s.by_peer.contains_key(&a_local))
                .by_peer[&a_local];
            write_all_deadline(&a, b"close me", deadline).unwrap();
            match read_to_eof_deadline(&a, 0, deadline) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
                Err(e) => panic!("round {round}: A after close me: {e}"),
            }
            let stats = server.wait_for(wait, "A lost", |s| s.lost_of(a_id).is_some());
            assert_eq!(stats.lost_of(a_id).unwrap().reason, Reason::Closed);
            assert!(stats.aborted.contains(&a_id));
            drop(stats);
            drop(a);

            // B: takes A's slot under a new generation.
            let b = connect(addr);
            let b_local = b.local_addr().unwrap();
            let b_id = server
                .wait_for(wait, "B accepted", |s| s.by_peer.contains_key(&b_local))
                .by_peer[&b_local];
            let ((a_key, a_gen), (b_key, b_gen)) = (key_gen(a_id), key_gen(b_id));
            assert_eq!(
                b_key, a_key,
                "round {round}: B ({b_id}) did not reuse A's slot ({a_id})"
            );
            assert_ne!(b_gen, a_gen, "round {round}: same slot, same generation");
            assert!(
                gens.insert(a_gen) && gens.insert(b_gen),
                "a generation came back"
            );
            assert_ne!(a_id, b_id);

            // Every read of B's makes the handler try A's id (send, close,
            // abort...); B must get exactly its own bytes, then EOF.
            let len = rng.range(16 * KIB, 256 * KIB);
            let data = Arc::new(rng.bytes(len));
            let pieces = rng.split(len, 12);
            echo_stream(b, data, pieces, None, &mut rng, deadline)
                .unwrap_or_else(|e| panic!("round {round}: B: {e}"));

            let stats = server.wait_for(wait, "B lost", |s| s.lost_of(b_id).is_some());
            assert_eq!(
                stats.lost_of(b_id).unwrap().reason,
                Reason::PeerClosed,
                "B was closed by a call made with A's id"
            );
            assert_eq!(stats.conns[&b_id].echoed, len as u64);
            let probes: Vec<_> = stats
                .stale_probes
                .iter()
                .filter(|p| p.stale == a_id && p.during == b_id)
                .collect();
            assert!(
                !probes.is_empty(),
                "A's id was never tried while B held the slot"
            );
            for p in &stats.stale_probes {
                assert!(
                    p.send_is_no_such_connection
                        && p.pending_output.is_none()
                        && !p.has_data
                        && !p.has_data_mut
                        && p.peer_addr.is_none(),
                    "a closed connection's id still works: {p:?}"
                );
            }
        }
        server.stop_and_join(Duration::from_secs(5));
    });
}

// ---------------------------------------------------------------------------
// 6. 1,000 connections come and go: no connection and no descriptor leaks
// ---------------------------------------------------------------------------

#[test]
fn thousand_connections_leak_no_descriptor() {
    // Exclusive: the descriptor count is the whole process's.
    let _fds = fds_exclusive();
    with_deadline(TEST_LIMIT, || {
        const WAVES: usize = 20;
        const WAVE: usize = 50;
        let mut rng = Rng::new(seed(0xEC40_0006));
        let wait = Duration::from_secs(10);
        let deadline = Instant::now() + CLIENT_TIME;
        let baseline = fd_count();
        let mut server = start_echo(Config::default());
        let addr = server.addr;
        let running = fd_count();
        assert_eq!(
            running,
            baseline + 4,
            "a listening reactor holds 4 descriptors: epoll, the registry's duplicate of it \
             (callbacks register connects), its waker's eventfd, the listener"
        );
        for wave in 0..WAVES {
            let clients: Vec<TcpStream> = (0..WAVE).map(|_| connect(addr)).collect();
            server.wait_until(wait, "a wave accepted", |s| s.live == WAVE);
            assert_eq!(
                fd_count(),
                running + 2 * WAVE,
                "wave {wave}: one descriptor per connection on each side"
            );
            for c in &clients {
                let n = rng.range(1, 2000);
                let msg = rng.bytes(n);
                write_all_deadline(c, &msg, deadline).unwrap();
                let mut echo = vec![0; msg.len()];
                read_exact_deadline(c, &mut echo, deadline).unwrap();
                check_bytes("echo", &echo, &msg).unwrap();
            }
            // Three ways to go: half-close and wait for EOF, close, reset.
            for (i, c) in clients.into_iter().enumerate() {
                match i % 3 {
                    0 => {
                        shutdown_write(&c).unwrap();
                        expect_eof(&c, deadline).unwrap();
                    }
                    1 => drop(c),
                    _ => reset(c),
                }
            }
            server.wait_until(wait, "a wave closed", |s| s.live == 0 && s.last_count == 0);
        }
        let stats = server.wait_for(wait, "every connection lost", |s| {
            s.lost.len() == WAVES * WAVE
        });
        assert_eq!(stats.accepted.len(), WAVES * WAVE);
        let resets = stats
            .lost
            .iter()
            .filter(|l| l.reason == Reason::Error(io::ErrorKind::ConnectionReset))
            .count();
        let closed = stats
            .lost
            .iter()
            .filter(|l| l.reason == Reason::PeerClosed)
            .count();
        let reset_per_wave = (0..WAVE).filter(|i| i % 3 == 2).count();
        assert_eq!(
            resets,
            WAVES * reset_per_wave,
            "connections lost to a reset"
        );
        assert_eq!(
            closed,
            WAVES * (WAVE - reset_per_wave),
            "connections closed by peer"
        );
        drop(stats);
        let mut now = 0;
        assert!(
            poll_until(Duration::from_secs(5), || {
                now = fd_count();
                now == running
            }),
            "descriptors leaked: {now} open, {running} with the reactor idle"
        );
        server.stop_and_join(Duration::from_secs(5));
        // The reactor is gone; its Handle (a clone of which the Server
        // keeps) still owns the waker's eventfd, by design.
        assert_eq!(
            fd_count(),
            baseline + 1,
            "the stopped reactor left descriptors open"
        );
        drop(server);
        assert_eq!(
            fd_count(),
            baseline,
            "the last Handle did not close the eventfd"
        );
    });
}

// ---------------------------------------------------------------------------
// 7. Graceful stop with output pending
// ---------------------------------------------------------------------------

#[test]
fn stop_flushes_pending_output_then_closes_within_the_shutdown_timeout() {
    run(|| {
        const READERS: usize = 6;
        let seed = seed(0xEC40_0007);
        let timeout = Duration::from_secs(2);
        let config = Config {
            shutdown_timeout: timeout,
            linger: Duration::from_secs(30), // so that only shutdown_timeout ends a close
            ..Config::default()
        };
        let high = config.high_water;
        let mut server = start_echo(config);
        let addr = server.addr;
        let deadline = Instant::now() + CLIENT_TIME;

        // READERS clients that will read after the stop, one that never
        // reads (it holds the shutdown to its timeout), one idle. The active
        // ones send until TCP pushes back, which (since they read nothing)
        // happens once the server has stopped reading them at high water
        // with output pending that it cannot write.
        let active: Vec<(TcpStream, SocketAddr, Pattern)> = (0..=READERS)
            .map(|i| {
                let s = connect(addr);
                let local = s.local_addr().unwrap();
                (s, local, Pattern(Rng::fork(seed, i as u64).next_u64()))
            })
            .collect();
        let idle = connect(addr);
        let idle_local = idle.local_addr().unwrap();
        let writers: Vec<_> = active
            .iter()
            .map(|(s, _, pattern)| {
                let (w, pattern) = (s.try_clone().unwrap(), *pattern);
                thread::spawn(move || -> Result<u64, String> {
                    w.set_write_timeout(Some(Duration::from_millis(250)))
                        .map_err(|e| e.to_string())?;
                    let mut buf = vec![0; 64 * KIB];
                    let mut at = 0;
                    loop {
                        if Instant::now() >= deadline {
                            return Err(format!("no push-back after {at} bytes"));
                        }
                        pattern.fill(at, &mut buf);
                        match (&w).write(&buf) {
                            Ok(n) => at += n as u64,
                            Err(e) if is_timeout(&e) => return Ok(at),
                            Err(e) => return Err(format!("write at {at}: {e}")),
                        }
                    }
                })
            })
            .collect();
        for w in writers {
            let sent = w.join().expect("writer panicked").unwrap();
            eprintln!("a writer was pushed back after {sent} bytes");
        }
        let locals: Vec<SocketAddr> = active.iter().map(|(_, l, _)| *l).collect();
        server.wait_until(Duration::from_secs(10), "high water everywhere", |s| {
            s.by_peer.contains_key(&idle_local)
                && locals
                    .iter()
                    .all(|l| s.conn_of(*l).is_some_and(|c| c.max_pending >= high))
        });

        let stopped = Instant::now();
        server.handle.stop();
        let mut active = active.into_iter();
        let readers: Vec<_> = active
            .by_ref()
            .take(READERS)
            .map(|(s, local, pattern)| {
                thread::spawn(move || -> Result<(SocketAddr, usize), String> {
                    let got = read_to_eof_deadline(&s, 64 * MIB, deadline)
                        .map_err(|e| format!("{local}: {e}"))?;
                    pattern.check(&format!("{local}"), 0, &got)?;
                    Ok((local, got.len()))
                })
            })
            .collect();
        let (stuck, stuck_local, _) = active.next().unwrap();
        expect_eof(&idle, deadline).unwrap();
        let results: Vec<_> = readers
            .into_iter()
            .map(|t| t.join().expect("reader panicked"))
            .collect();
        let took = server
            .join(timeout + Duration::from_secs(10))
            .saturating_duration_since(stopped);
        drop(stuck);
        let failed: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
        assert!(failed.is_empty(), "readers failed: {failed:#?}");
        assert!(
            took >= timeout,
            "run returned after {took:?}, before the shutdown timeout, though a client never read its output"
        );
        // The upper bound is `join`'s generous deadline above: that `run`
        // returned is the progress check; how soon is for bench/.

        let stats = server.stats();
        let pending = stats.pending_at_shutdown.expect("shutting_down was called");
        assert!(
            pending > 0,
            "no output was pending at the stop: nothing tested"
        );
        for (local, got) in results.into_iter().map(Result::unwrap) {
            let c = stats.conn_of(local).unwrap();
            assert_eq!(
                got as u64, c.echoed,
                "{local}: received all the server had queued, then EOF"
            );
            assert_eq!(stats.lost_of(c.id).unwrap().reason, Reason::Shutdown);
        }
        for l in [stuck_local, idle_local] {
            assert_eq!(stats.lost_peer(l).unwrap().reason, Reason::Shutdown);
        }
        assert_eq!(stats.lost.len(), READERS + 2);
    });
}

// ---------------------------------------------------------------------------
// 8. Half-close with output pending: all of it is sent, then the close
// ---------------------------------------------------------------------------

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
