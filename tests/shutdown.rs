//! `Handle::stop`: pending output is flushed within the shutdown timeout,
//! then everything closes.

mod util;

use mio_selectors::{Config, Reactor};
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};
#[allow(unused_imports)]
use util::echo_clients::*;
#[allow(unused_imports)]
use util::regress::*;
use util::{
    connect, is_timeout, read_exact_deadline, read_to_eof_deadline, with_deadline,
    write_all_deadline, Pattern, *,
};

/// Regression: a `Duration::MAX` shutdown timeout overflowed.
/// `shutdown_timeout: Duration::MAX`: `stop` closes the connections
/// gracefully and `run` returns once they are gone.
#[test]
fn shutdown_timeout_of_duration_max_does_not_overflow() {
    with_deadline(LIMIT, || {
        let config = Config {
            shutdown_timeout: Duration::MAX,
            ..Config::default()
        };
        let (tx, _rx) = mpsc::channel();
        let mut reactor = Reactor::new(util::regress::Echo::new(tx), config).unwrap();
        let lid = reactor.listen("127.0.0.1:0").unwrap();
        let addr = reactor.local_addr(lid).unwrap();
        let mut running = spawn_reactor(reactor);

        let c = connect(addr);
        let deadline = Instant::now() + WAIT;
        write_all_deadline(&c, b"x", deadline).unwrap();
        read_exact_deadline(&c, &mut [0], deadline).unwrap(); // accepted and served
        running.handle.stop();
        let rest = read_to_eof_deadline(&c, 0, deadline);
        drop(c);
        running.join(WAIT).expect("run returns after the stop");
        rest.expect("EOF on stop");
    });
}

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
