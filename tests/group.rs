//! `ReactorGroup`: several reactors on their own threads sharing a port.
//! Real sockets on loopback; every wait has a deadline.

mod util;

use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use mio_selectors::group::{AcceptMode, GroupOptions, Message, ReactorGroup, RunningGroup};
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

    fn service_connection(
        &mut self,
        cx: &mut Context<'_, ()>,
        id: ConnId,
        _: &mut (),
        inb: &mut InBuf,
    ) {
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

fn echo_400(accept: AcceptMode) -> Vec<usize> {
    let seed = util::seed(0x6a09_e667);
    let mut rig = Rig::start(4, accept, Config::default());
    many_clients(rig.addr, seed);
    let accepted = rig.accepted();
    assert_eq!(accepted.iter().sum::<usize>(), 400, "{accepted:?}");
    assert!(
        !accepted.contains(&0),
        "a reactor served none: {accepted:?}"
    );
    rig.stop().expect("clean stop");
    accepted
}

#[test]
fn echo_4_reactors_reuseport_400_clients_byte_exact_all_served() {
    with_deadline(LIMIT, || {
        let _fds = fds_shared();
        echo_400(AcceptMode::ReusePort);
    });
}

#[test]
fn echo_4_reactors_least_loaded_400_clients_byte_exact_evenly_served() {
    with_deadline(LIMIT, || {
        let _fds = fds_shared();
        let accepted = echo_400(AcceptMode::LeastLoaded);
        // Least-loaded balances the connections open at once (at most eight
        // here), so the totals stay close unless a reactor is starved of CPU
        // on this shared machine: a loose bound, and the spread is printed.
        let (min, max) = (
            accepted.iter().min().unwrap(),
            accepted.iter().max().unwrap(),
        );
        eprintln!("least-loaded spread over 4 reactors: {accepted:?}");
        assert!(*max <= 3 * *min, "uneven spread: {accepted:?}");
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

// ---------------------------------------------------------------------------
// A handler that greets, says goodbye at shutdown, relays `all TEXT` to
// every client of every reactor through the mailbox, and blocks its
// reactor on `hold` until the test lets it go.
// ---------------------------------------------------------------------------

struct Hub {
    index: usize,
    accepted: Arc<Vec<AtomicUsize>>,
    hold: Arc<Mutex<mpsc::Receiver<()>>>,
    holding: Arc<AtomicBool>,
}

impl Handler for Hub {
    type Data = ();

    fn accept_wrapper(&mut self, cx: &mut Context<'_, ()>, id: ConnId, _: &PeerAddr) -> Option<()> {
        self.accepted[self.index].fetch_add(1, Ordering::SeqCst);
        let _ = cx.send(id, b"welcome\n");
        Some(())
    }

    fn service_connection(
        &mut self,
        cx: &mut Context<'_, ()>,
        _: ConnId,
        _: &mut (),
        inb: &mut InBuf,
    ) {
        while let Some(end) = inb.iter().position(|&b| b == b'\n') {
            let line = inb[..end].to_vec();
            inb.consume(end + 1);
            if line == b"hold" {
                // Blocks this reactor's thread (bounded by a deadline).
                self.holding.store(true, Ordering::SeqCst);
                let _ = self
                    .hold
                    .lock()
                    .unwrap()
                    .recv_timeout(Duration::from_secs(30));
            } else if let Some(text) = line.strip_prefix(b"all ") {
                let mut data = text.to_vec();
                data.push(b'\n');
                let msg = Message::new(1, None, data);
                for r in 0..cx.reactors() {
                    cx.post(r, msg.clone()).expect("room in the mailbox");
                }
            }
        }
    }

    fn on_message(&mut self, cx: &mut Context<'_, ()>, _: usize, msg: Message) {
        cx.broadcast(&msg.data, None);
    }

    fn shutting_down(&mut self, cx: &mut Context<'_, ()>) {
        cx.broadcast(b"bye\n", None);
    }
}

struct HubRig {
    addr: SocketAddr,
    running: Option<RunningGroup>,
    accepted: Arc<Vec<AtomicUsize>>,
    release: mpsc::Sender<()>,
    holding: Arc<AtomicBool>,
}

impl HubRig {
    fn start(reactors: usize, accept: AcceptMode, config: Config) -> HubRig {
        let options = GroupOptions {
            reactors,
            accept,
            ..GroupOptions::default()
        };
        let mut group = ReactorGroup::new(options, config).expect("group");
        let addr = group.listen("127.0.0.1:0").expect("listen");
        let accepted: Arc<Vec<AtomicUsize>> =
            Arc::new((0..reactors).map(|_| AtomicUsize::new(0)).collect());
        let (release, hold) = mpsc::channel();
        let hold = Arc::new(Mutex::new(hold));
        let counts = Arc::clone(&accepted);
        let holding = Arc::new(AtomicBool::new(false));
        let held = Arc::clone(&holding);
        let running = group
            .start(move |index| Hub {
                index,
                accepted: Arc::clone(&counts),
                hold: Arc::clone(&hold),
                holding: Arc::clone(&held),
            })
            .expect("start");
        HubRig {
            addr,
            running: Some(running),
            accepted,
            release,
            holding,
        }
    }

    fn accepted(&self) -> Vec<usize> {
        self.accepted
            .iter()
            .map(|a| a.load(Ordering::SeqCst))
            .collect()
    }
}

impl Drop for HubRig {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            running.handle().stop();
            let _ = self.release.send(());
            let _ = running.join();
        }
    }
}

/// Reads from `s` until `want` has come (or the deadline passes).
fn read_expect(s: &TcpStream, want: &[u8], deadline: Instant) -> Result<(), String> {
    let mut got = vec![0; want.len()];
    read_exact_deadline(s, &mut got, deadline).map_err(|e| format!("read: {e}"))?;
    if got != want {
        return Err(format!(
            "got {:?}, want {:?}",
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(want)
        ));
    }
    Ok(())
}

/// A message posted to every reactor reaches every client on every
/// reactor, with one batch per destination per pass and no more wake-ups
/// than batches.
#[test]
fn messages_reach_every_reactor_batched() {
    with_deadline(LIMIT, || {
        let _fds = fds_shared();
        let rig = HubRig::start(3, AcceptMode::LeastLoaded, Config::default());
        let deadline = Instant::now() + Duration::from_secs(20);
        let clients: Vec<TcpStream> = (0..30).map(|_| connect(rig.addr)).collect();
        for c in &clients {
            read_expect(c, b"welcome\n", deadline).unwrap();
        }
        assert_eq!(rig.accepted(), vec![10, 10, 10]);
        // 50 lines in one write: one pass reads them all and posts 150.
        let burst: Vec<u8> = (0..50)
            .flat_map(|i| format!("all m{i}\n").into_bytes())
            .collect();
        write_all_deadline(&clients[0], &burst, deadline).unwrap();
        let want: Vec<u8> = (0..50)
            .flat_map(|i| format!("m{i}\n").into_bytes())
            .collect();
        for (i, c) in clients.iter().enumerate() {
            read_expect(c, &want, deadline).unwrap_or_else(|e| panic!("client {i}: {e}"));
        }
        let handle = rig.running.as_ref().unwrap().handle();
        let stats = handle.mail_stats();
        let sent: u64 = stats.iter().map(|s| s.sent).sum();
        let received: u64 = stats.iter().map(|s| s.received).sum();
        assert_eq!(received, sent, "{stats:?}");
        for s in &stats {
            assert!(s.wakes <= s.batches, "{stats:?}");
        }
        // 150 line messages (plus 20 hand-overs) in far fewer batches.
        let batches: u64 = stats.iter().map(|s| s.batches).sum();
        assert!(batches < 60, "{stats:?}");
    });
}

/// `max_connections` and `max_per_ip` hold for the group, not per reactor.
#[test]
fn limits_hold_across_the_group() {
    for accept in [AcceptMode::LeastLoaded, AcceptMode::ReusePort] {
        for (max_connections, max_per_ip) in [(7, None), (100_000, Some(5))] {
            with_deadline(LIMIT, move || {
                let _fds = fds_shared();
                let config = Config {
                    max_connections,
                    max_per_ip,
                    ..Config::default()
                };
                let limit = max_per_ip.unwrap_or(max_connections);
                let rig = HubRig::start(3, accept, config);
                let deadline = Instant::now() + Duration::from_secs(20);
                let mut served = Vec::new();
                for _ in 0..limit {
                    let c = connect(rig.addr);
                    read_expect(&c, b"welcome\n", deadline).unwrap();
                    served.push(c);
                }
                // One more, on whichever reactor: closed at once, never greeted.
                for _ in 0..3 {
                    let extra = connect(rig.addr);
                    let got = util::read_to_eof_deadline(&extra, 64, deadline);
                    assert!(
                        matches!(&got, Ok(v) if v.is_empty()) || got.is_err(),
                        "{accept:?}: over the limit and served: {got:?}"
                    );
                }
                assert_eq!(rig.accepted().iter().sum::<usize>(), limit, "{accept:?}");
                // A place comes free when a client leaves.
                drop(served.pop());
                let handle = rig.running.as_ref().unwrap().handle();
                assert!(poll_until(Duration::from_secs(10), || handle
                    .connections()
                    .iter()
                    .sum::<usize>()
                    < limit));
                let again = connect(rig.addr);
                read_expect(&again, b"welcome\n", deadline).unwrap();
            });
        }
    }
}

/// The `SO_REUSEPORT` pitfall: closing a listener resets the connections
/// queued on it. A reactor that is busy while clients queue on its
/// listener must, at shutdown, take them in and tell them, like the others.
#[test]
fn shutdown_loses_no_connection_queued_on_a_reuseport_listener() {
    with_deadline(LIMIT, || {
        let _fds = fds_shared();
        let mut rig = HubRig::start(2, AcceptMode::ReusePort, Config::default());
        let deadline = Instant::now() + Duration::from_secs(30);
        // Block one reactor: the first client's.
        let holder = connect(rig.addr);
        read_expect(&holder, b"welcome\n", deadline).unwrap();
        let busy = rig.accepted().iter().position(|&n| n == 1).unwrap();
        write_all_deadline(&holder, b"hold\n", deadline).unwrap();
        let holding = &rig.holding;
        assert!(poll_until(Duration::from_secs(10), || holding.load(Ordering::SeqCst)));
        // Connect 40 more: the kernel completes every handshake; those hashed
        // to the busy reactor wait in its listener's queue.
        let clients: Vec<TcpStream> = (0..40).map(|_| connect(rig.addr)).collect();
        let before = rig.accepted()[busy];
        assert_eq!(before, 1, "the busy reactor accepted while blocked");
        let running = rig.running.take().unwrap();
        running.handle().stop();
        rig.release.send(()).unwrap();
        running.join().expect("clean stop");
        for (i, c) in clients.iter().enumerate() {
            let got = util::read_to_eof_deadline(c, 64, deadline)
                .unwrap_or_else(|e| panic!("client {i}: {e} (reset: lost in a closed queue?)"));
            assert_eq!(got, b"welcome\nbye\n", "client {i}");
        }
        let queued = rig.accepted()[busy] - before;
        assert!(queued > 0, "no client was queued on the busy reactor");
        eprintln!("{queued} clients were queued on the busy reactor's listener at shutdown");
    });
}

/// What a [`Starts`] handler saw: (reactor, its thread's name, the call).
type StartLog = Arc<Mutex<Vec<(usize, String, &'static str)>>>;

/// Logs `started`, a loop timer it sets there, accepts and `shutting_down`.
struct Starts {
    index: usize,
    log: StartLog,
}

impl Starts {
    fn note(&self, what: &'static str) {
        let thread = std::thread::current().name().unwrap_or("").to_string();
        self.log.lock().unwrap().push((self.index, thread, what));
    }
}

impl Handler for Starts {
    type Data = ();

    fn started(&mut self, cx: &mut Context<'_, ()>) {
        self.note("started");
        cx.call_later(Duration::ZERO, None, 1);
    }

    fn accept_wrapper(&mut self, _: &mut Context<'_, ()>, _: ConnId, _: &PeerAddr) -> Option<()> {
        self.note("accept");
        Some(())
    }

    fn on_timer(&mut self, _: &mut Context<'_, ()>, _: Option<(ConnId, &mut ())>, _: u64) {
        self.note("timer");
    }

    fn shutting_down(&mut self, _: &mut Context<'_, ()>) {
        self.note("shutting_down");
    }
}

/// `Handler::started` runs once on every reactor of a group, on that
/// reactor's thread, before anything else it is called for (even a client
/// that was queued on the listener before the group started), and a loop
/// timer set there fires.
#[test]
fn started_runs_once_first_on_every_reactor() {
    with_deadline(LIMIT, || {
        let _fds = fds_shared(); // not while the descriptor count is taken
        const N: usize = 3;
        let options = GroupOptions {
            reactors: N,
            ..GroupOptions::default()
        };
        let mut group = ReactorGroup::new(options, Config::default()).expect("group");
        let addr = group.listen("127.0.0.1:0").expect("listen");
        let early: Vec<TcpStream> = (0..N).map(|_| connect(addr)).collect();
        let log: StartLog = Arc::default();
        let theirs = Arc::clone(&log);
        let running = group
            .start(move |index| Starts {
                index,
                log: Arc::clone(&theirs),
            })
            .expect("start");
        let count = |what| log.lock().unwrap().iter().filter(|e| e.2 == what).count();
        assert!(
            poll_until(Duration::from_secs(20), || count("timer") == N
                && count("accept") == N),
            "{:?}",
            log.lock().unwrap()
        );
        drop(early);
        running.handle().stop();
        running.join().expect("join");
        let log = log.lock().unwrap();
        for r in 0..N {
            let mine: Vec<_> = log.iter().filter(|e| e.0 == r).collect();
            assert_eq!(mine.first().map(|e| e.2), Some("started"), "{r}: {mine:?}");
            assert_eq!(
                mine.iter().filter(|e| e.2 == "started").count(),
                1,
                "{mine:?}"
            );
            assert_eq!(mine.last().map(|e| e.2), Some("shutting_down"), "{mine:?}");
            assert!(
                mine.iter().all(|e| e.1 == format!("reactor-{r}")),
                "{r}: {mine:?}"
            );
        }
    });
}

/// Reactor 0 stops itself in `started`; reactor 1 is built only after
/// that (its factory waits for reactor 0's `shutting_down`).
struct StopsAtOnce {
    index: usize,
    gone: Option<mpsc::Sender<()>>,
}

impl Handler for StopsAtOnce {
    type Data = ();

    fn started(&mut self, cx: &mut Context<'_, ()>) {
        if self.index == 0 {
            cx.stop(); // a handler giving up at once (refused credentials, say)
        }
    }

    fn shutting_down(&mut self, _: &mut Context<'_, ()>) {
        if let Some(gone) = self.gone.take() {
            let _ = gone.send(());
        }
    }
}

/// A reactor that stops by itself before the others are built does not
/// leave the group running: `start` returns, and the group ends soon after
/// with no error (regression: the supervisor, counting the early stop as
/// a failure to start, stopped only the reactors it knew of, then waited
/// for the others to end without stopping the ones that came up later).
#[test]
fn a_reactor_stopping_itself_while_the_group_starts_stops_the_group() {
    with_deadline(LIMIT, || {
        let _fds = fds_shared(); // not while the descriptor count is taken
        let options = GroupOptions {
            reactors: 2,
            ..GroupOptions::default()
        };
        let mut group = ReactorGroup::new(options, Config::default()).expect("group");
        group.listen("127.0.0.1:0").expect("listen");
        let (gone, wait) = mpsc::channel();
        let (gone, wait) = (Mutex::new(Some(gone)), Mutex::new(wait));
        let running = group
            .start(move |index| {
                if index == 1 {
                    let _ = wait.lock().unwrap().recv_timeout(Duration::from_secs(20));
                }
                StopsAtOnce {
                    index,
                    gone: if index == 0 {
                        gone.lock().unwrap().take()
                    } else {
                        None
                    },
                }
            })
            .expect("started: reactor 0 ran, then stopped");
        running.join().expect("a stop, not a failure");
    });
}
