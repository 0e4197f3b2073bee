//! `ReactorGroup`: several reactors on their own threads sharing a port.
//! Real sockets on loopback; every wait has a deadline.

mod util;

use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio_selectors::group::{AcceptMode, GroupOptions, ReactorGroup, RunningGroup};
use mio_selectors::{Config, ConnId, Context, Error, Handler, InBuf, PeerAddr};
use util::{
    connect, fd_count, fds_exclusive, fds_shared, poll_until, read_exact_deadline, with_deadline,
    write_all_deadline, Rng,
};

const LIMIT: Duration = Duration::from_secs(60);

/// An echo that counts, per reactor, the connections it accepted; the
/// line `boom` makes it panic.
struct Echo {
    index: usize,
    accepted: Arc<Vec<AtomicUsize>>,
}

impl Handler for Echo {
    type Data = ();

    fn accept_wrapper(&mut self, _: &mut Context<'_, ()>, _: ConnId, _: &PeerAddr) -> Option<()> {
        self.accepted[self.index].fetch_add(1, Ordering::SeqCst);
        Some(())
    }

    fn service_connection(&mut self, cx: &mut Context<'_, ()>, id: ConnId, inb: &mut InBuf) {
        if inb.starts_with(b"boom") {
            panic!("boom on reactor {}", self.index);
        }
        let _ = cx.send_from(id, inb);
    }
}

struct Rig {
    addr: SocketAddr,
    running: Option<RunningGroup>,
    accepted: Arc<Vec<AtomicUsize>>,
}

impl Rig {
    fn start(reactors: usize, accept: AcceptMode, config: Config) -> Rig {
        let options = GroupOptions {
            reactors,
            accept,
            ..GroupOptions::default()
        };
        let mut group = ReactorGroup::new(options, config).expect("group");
        let n = group.reactors();
        let addr = group.listen("127.0.0.1:0").expect("listen");
        let accepted: Arc<Vec<AtomicUsize>> =
            Arc::new((0..n).map(|_| AtomicUsize::new(0)).collect());
        let counts = Arc::clone(&accepted);
        let running = group
            .start(move |index| Echo {
                index,
                accepted: Arc::clone(&counts),
            })
            .expect("start");
        Rig {
            addr,
            running: Some(running),
            accepted,
        }
    }

    fn accepted(&self) -> Vec<usize> {
        self.accepted
            .iter()
            .map(|a| a.load(Ordering::SeqCst))
            .collect()
    }

    fn stop(&mut self) -> Result<(), Error> {
        let running = self.running.take().expect("running");
        running.handle().stop();
        running.join()
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            running.handle().stop();
            let _ = running.join();
        }
    }
}

/// Names of this process's threads, from `/proc/self/task/*/comm`.
fn thread_names() -> Vec<String> {
    let mut names = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").expect("/proc/self/task") {
        let path = task.expect("task").path().join("comm");
        if let Ok(comm) = std::fs::read_to_string(path) {
            names.push(comm.trim_end().to_string());
        }
    }
    names
}

#[test]
fn threads_are_named_reactor_0_to_n_minus_1() {
    with_deadline(LIMIT, || {
        let _fds = fds_shared();
        let mut rig = Rig::start(3, AcceptMode::ReusePort, Config::default());
        let names = thread_names();
        for i in 0..3 {
            let want = format!("reactor-{i}");
            assert!(names.contains(&want), "no thread {want} in {names:?}");
        }
        rig.stop().expect("clean stop");
        assert!(
            poll_until(Duration::from_secs(10), || !thread_names()
                .iter()
                .any(|n| n == "reactor-2")),
            "reactor threads outlive join"
        );
    });
}

#[test]
fn zero_reactors_means_one_per_core() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let group = ReactorGroup::new(GroupOptions::default(), Config::default()).unwrap();
    assert_eq!(group.reactors(), cores);
}

/// One client: random bytes in random pieces, each piece read back before
/// the next goes, byte-exact.
fn echo_client(addr: SocketAddr, mut rng: Rng, deadline: Instant) -> Result<(), String> {
    let s = connect(addr);
    let len = rng.range(1, 64 * 1024);
    let data = rng.bytes(len);
    let mut at = 0;
    for piece in rng.split(len, 8) {
        let chunk = &data[at..at + piece];
        write_all_deadline(&s, chunk, deadline).map_err(|e| format!("write: {e}"))?;
        let mut back = vec![0; piece];
        read_exact_deadline(&s, &mut back, deadline).map_err(|e| format!("read: {e}"))?;
        if back != chunk {
            return Err(format!("bytes {at}..{} came back different", at + piece));
        }
        at += piece;
    }
    Ok(())
}

/// 400 clients over 8 threads, 50 connections each at once.
fn many_clients(addr: SocketAddr, seed: u64) {
    let deadline = Instant::now() + Duration::from_secs(45);
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            std::thread::spawn(move || {
                for c in 0..50u64 {
                    let rng = Rng::fork(seed, t * 50 + c);
                    if let Err(e) = echo_client(addr, rng, deadline) {
                        panic!("client {}: {e}", t * 50 + c);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
}

#[test]
fn echo_4_reactors_reuseport_400_clients_byte_exact_all_served() {
    with_deadline(LIMIT, || {
        let _fds = fds_shared();
        let seed = util::seed(0x6a09_e667);
        let mut rig = Rig::start(4, AcceptMode::ReusePort, Config::default());
        many_clients(rig.addr, seed);
        let accepted = rig.accepted();
        assert_eq!(accepted.iter().sum::<usize>(), 400, "{accepted:?}");
        assert!(
            accepted.iter().all(|&n| n > 0),
            "a reactor served none: {accepted:?}"
        );
        rig.stop().expect("clean stop");
    });
}

/// A panic in one reactor's handler ends the whole group with an error
/// naming it; the other reactors stop too, closing their clients.
#[test]
fn panic_in_one_reactor_stops_the_group_with_an_error() {
    with_deadline(LIMIT, || {
        let _fds = fds_shared();
        let mut rig = Rig::start(3, AcceptMode::ReusePort, Config::default());
        let deadline = Instant::now() + Duration::from_secs(20);
        // Connect until every reactor has a client; keep them all open.
        let mut clients: Vec<TcpStream> = Vec::new();
        while rig.accepted().contains(&0) {
            assert!(
                Instant::now() < deadline,
                "reactors never all served: {:?}",
                rig.accepted()
            );
            let s = connect(rig.addr);
            write_all_deadline(&s, b"x", deadline).unwrap();
            let mut one = [0];
            read_exact_deadline(&s, &mut one, deadline).unwrap();
            clients.push(s);
        }
        let victim = connect(rig.addr);
        write_all_deadline(&victim, b"boom", deadline).unwrap();
        let running = rig.running.take().unwrap();
        match running.join() {
            Err(Error::ReactorPanicked { reactor, message }) => {
                assert!(reactor < 3);
                assert_eq!(message, format!("boom on reactor {reactor}"));
            }
            other => panic!("expected ReactorPanicked, got {other:?}"),
        }
        // Every client, on whichever reactor, sees its connection end.
        for c in &clients {
            let got = util::read_to_eof_deadline(c, 16, deadline);
            assert!(
                matches!(&got, Ok(v) if v.is_empty()) || got.is_err(),
                "{got:?}"
            );
        }
    });
}

#[test]
fn a_reactor_that_fails_to_start_fails_the_start() {
    with_deadline(LIMIT, || {
        let _fds = fds_shared();
        let bad = Config {
            low_water: 10,
            high_water: 1,
            ..Config::default()
        };
        let options = GroupOptions {
            reactors: 2,
            ..GroupOptions::default()
        };
        let group = ReactorGroup::new(options, bad).unwrap();
        let counts = Arc::new(vec![AtomicUsize::new(0), AtomicUsize::new(0)]);
        let started = group.start(move |index| Echo {
            index,
            accepted: Arc::clone(&counts),
        });
        assert!(matches!(started, Err(Error::Config(_))), "{started:?}");
    });
}

#[test]
fn descriptors_come_back_after_a_group_stops() {
    with_deadline(LIMIT, || {
        let _fds = fds_exclusive();
        let before = fd_count();
        {
            let mut rig = Rig::start(3, AcceptMode::ReusePort, Config::default());
            let deadline = Instant::now() + Duration::from_secs(20);
            let clients: Vec<TcpStream> = (0..30).map(|_| connect(rig.addr)).collect();
            for c in &clients {
                write_all_deadline(c, b"hi", deadline).unwrap();
                let mut back = [0; 2];
                read_exact_deadline(c, &mut back, deadline).unwrap();
            }
            drop(clients);
            rig.stop().expect("clean stop");
        }
        assert!(
            poll_until(Duration::from_secs(10), || fd_count() == before),
            "descriptors: {before} before, {} after",
            fd_count()
        );
    });
}
