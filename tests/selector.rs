//! Conformance suite for [`Selector`]: every behaviour that CPython's
//! `Lib/test/test_selectors.py` checks and that applies to this port, plus
//! the level-triggered guarantees the port promises on top of mio.
//!
//! Real sockets only (`UnixStream::pair`, TCP on loopback, both families).
//! No sleeps as synchronisation: waits are `select` timeouts or bounded
//! polling against deadlines, and every blocking read or write has a timeout.

use std::collections::HashSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::io::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread;
use std::time::{Duration, Instant};

use mio_selectors::selector::SelectorKey;
use mio_selectors::{Error, EventMask, Selector, EVENT_READ, EVENT_WRITE};

/// How long any one wait may take before the test fails.
const WAIT: Duration = Duration::from_secs(5);
/// A short wait for "nothing is ready" checks.
const SHORT: Duration = Duration::from_millis(100);

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Tests that need the lowest free fd numbers to themselves (fd reuse) take
/// this exclusively; every other test holds it shared while it opens fds.
static FD_TABLE: RwLock<()> = RwLock::new(());

fn shared_fds() -> RwLockReadGuard<'static, ()> {
    FD_TABLE.read().unwrap_or_else(|e| e.into_inner())
}

fn exclusive_fds() -> RwLockWriteGuard<'static, ()> {
    FD_TABLE.write().unwrap_or_else(|e| e.into_inner())
}

/// Python's `socket.socketpair()`, with timeouts on blocking I/O.
fn pair() -> (UnixStream, UnixStream) {
    let (a, b) = UnixStream::pair().expect("socketpair");
    for s in [&a, &b] {
        s.set_read_timeout(Some(WAIT)).unwrap();
        s.set_write_timeout(Some(WAIT)).unwrap();
    }
    (a, b)
}

/// A connected TCP pair `(client, server)` on `bind` (`127.0.0.1:0` or
/// `[::1]:0`), checked to be the same connection as CPython's fallback
/// `socketpair` does.
fn tcp_pair(bind: &str) -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind(bind).unwrap_or_else(|e| panic!("bind {bind}: {e}"));
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + WAIT;
    let server = loop {
        match listener.accept() {
            Ok((s, peer)) if peer == client.local_addr().unwrap() => break s,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                thread::yield_now()
            }
            Err(e) => panic!("accept on {bind}: {e}"),
        }
    };
    server.set_nonblocking(false).unwrap();
    for s in [&client, &server] {
        s.set_read_timeout(Some(WAIT)).unwrap();
        s.set_write_timeout(Some(WAIT)).unwrap();
    }
    (client, server)
}

/// Checks what every `select` result must satisfy (CPython's `test_select`:
/// events never empty, only known bits) and what this port adds: only
/// registered interest, each fd at most once, every fd registered.
fn check_ready<T>(sel: &Selector<T>, ready: &[(RawFd, EventMask)]) {
    let mut seen = HashSet::new();
    for &(fd, mask) in ready {
        assert!(seen.insert(fd), "fd {fd} reported twice: {ready:?}");
        assert!(mask.is_valid(), "invalid mask {mask:?} for fd {fd}");
        let key = sel
            .get_key(fd)
            .unwrap_or_else(|e| panic!("reported fd {fd} has no key: {e}"));
        assert!(
            key.events().contains(mask),
            "fd {fd} reported {mask:?} but registered {:?}",
            key.events()
        );
    }
}

/// `select`, checked with [`check_ready`] and sorted by fd.
fn select<T>(sel: &mut Selector<T>, timeout: Duration) -> Vec<(RawFd, EventMask)> {
    let mut ready = sel.select(Some(timeout)).expect("select");
    check_ready(sel, &ready);
    ready.sort_by_key(|&(fd, _)| fd);
    ready
}

/// Selects until `done` accepts a result (it may also assert on each one),
/// for at most [`WAIT`]; returns that result.
fn select_until<T>(
    sel: &mut Selector<T>,
    mut done: impl FnMut(&Selector<T>, &[(RawFd, EventMask)]) -> bool,
) -> Vec<(RawFd, EventMask)> {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "condition not met within {WAIT:?}");
        let ready = select(sel, left);
        if done(sel, &ready) {
            return ready;
        }
    }
}

/// Asserts `$result` is `Err` matching `$pat`.
macro_rules! assert_err {
    ($result:expr, $pat:pat $(if $guard:expr)?) => {
        match $result {
            Err($pat) $(if $guard)? => {}
            Err(other) => panic!("expected {}, got error {other:?}", stringify!($pat)),
            Ok(_) => panic!("expected {}, got Ok", stringify!($pat)),
        }
    };
}

fn fd(s: &impl AsRawFd) -> RawFd {
    s.as_raw_fd()
}

// ---------------------------------------------------------------------------
// register / get_key (test_register, test_get_key, test_register_file,
// test_register_bad_fd)
// ---------------------------------------------------------------------------

#[test]
fn register_returns_key_with_fd_token_events_and_data() {
    let _fds = shared_fds();
    let (rd, wr) = pair();
    let (other, _peer) = pair();
    let mut sel = Selector::new().unwrap();

    let key = sel.register(&rd, EVENT_READ, "data").unwrap().clone();
    assert_eq!(key.fd(), fd(&rd));
    assert_eq!(key.token(), mio::Token(fd(&rd) as usize));
    assert_eq!(key.events(), EVENT_READ);
    assert_eq!(key.data, "data");

    let key_w = sel.register(&wr, EVENT_WRITE, "w").unwrap().clone();
    assert_eq!(
        (key_w.fd(), key_w.events(), key_w.data),
        (fd(&wr), EVENT_WRITE, "w")
    );
    let key_rw = sel
        .register(fd(&other), EVENT_READ | EVENT_WRITE, "rw")
        .unwrap()
        .clone();
    assert_eq!(key_rw.fd(), fd(&other));
    assert_eq!(key_rw.events(), EVENT_READ | EVENT_WRITE);

    // get_key sees the same key, whichever way the file object is named.
    assert_eq!(sel.get_key(&rd).unwrap(), &key);
    assert_eq!(sel.get_key(fd(&rd)).unwrap(), &key);
    assert_eq!(sel.get_key(key.token()).unwrap(), &key);
    assert_eq!(sel.get_key(&other).unwrap(), &key_rw);

    // key.data is the application's to change in place.
    sel.get_key_mut(&rd).unwrap().data = "changed";
    assert_eq!(sel.get_key(&rd).unwrap().data, "changed");
    assert_eq!(sel.get_key(&rd).unwrap().events(), EVENT_READ);
}

#[test]
fn register_twice_is_already_registered() {
    let _fds = shared_fds();
    let (rd, _wr) = pair();
    let mut sel = Selector::new().unwrap();
    sel.register(&rd, EVENT_READ, 1).unwrap();

    let rd_fd = fd(&rd);
    assert_err!(sel.register(&rd, EVENT_READ, 2), Error::AlreadyRegistered(f) if f == rd_fd);
    // The same fd under another name (Python: `rd.fileno()`).
    assert_err!(sel.register(rd_fd, EVENT_WRITE, 3), Error::AlreadyRegistered(f) if f == rd_fd);
    assert_err!(
        sel.register(mio::Token(rd_fd as usize), EVENT_READ, 4),
        Error::AlreadyRegistered(_)
    );

    // The first registration is untouched.
    let key = sel.get_key(&rd).unwrap();
    assert_eq!((key.events(), key.data), (EVENT_READ, 1));
    assert_eq!(sel.get_map().unwrap().len(), 1);
}

#[test]
fn register_invalid_events_is_invalid_events() {
    let _fds = shared_fds();
    let (rd, _wr) = pair();
    let mut sel = Selector::new().unwrap();

    assert_err!(
        sel.register(&rd, EventMask::EMPTY, ()),
        Error::InvalidEvents(0)
    );
    assert_err!(
        sel.register(&rd, EventMask::from_bits(4), ()),
        Error::InvalidEvents(4)
    );
    assert_err!(
        sel.register(&rd, EVENT_READ | EventMask::from_bits(4), ()),
        Error::InvalidEvents(5)
    );
    assert_err!(
        sel.register(&rd, EventMask::from_bits(0xff), ()),
        Error::InvalidEvents(0xff)
    );
    // Python: s.register(0, 999999) -> ValueError, whatever the fd.
    assert_err!(
        sel.register(0, EventMask::from_bits(0x80), ()),
        Error::InvalidEvents(0x80)
    );

    // Nothing was registered, and the fd is still free to register.
    assert!(sel.get_map().unwrap().is_empty());
    assert_err!(sel.get_key(&rd), Error::NotRegistered(_));
    sel.register(&rd, EVENT_READ, ()).unwrap();
}

#[test]
fn register_negative_fd_is_invalid_fd() {
    let _fds = shared_fds();
    let mut sel = Selector::new().unwrap();
    assert_err!(sel.register(-10, EVENT_READ, ()), Error::InvalidFd(-10));
    assert_err!(sel.register(-1, EVENT_WRITE, ()), Error::InvalidFd(-1));
    // A token that is no fd at all names fd -1.
    assert_err!(
        sel.register(mio::Token(usize::MAX), EVENT_READ, ()),
        Error::InvalidFd(-1)
    );
    assert!(sel.get_map().unwrap().is_empty());
}

#[test]
fn register_closed_fd_is_io_error_and_leaves_no_key() {
    // KqueueSelectorTestCase.test_register_bad_fd: EBADF, and no key left.
    let _fds = shared_fds();
    let mut sel = Selector::new().unwrap();
    let bad: RawFd = RawFd::MAX; // far above RLIMIT_NOFILE: never open
    match sel.register(bad, EVENT_READ, ()) {
        Err(Error::Io(e)) => assert_eq!(e.raw_os_error(), Some(9), "want EBADF, got {e}"),
        other => panic!("expected Io(EBADF), got {:?}", other.map(|_| ())),
    }
    assert_err!(sel.get_key(bad), Error::NotRegistered(f) if f == bad);
    assert!(sel.get_map().unwrap().is_empty());
}

#[test]
fn register_regular_file_is_io_error_and_leaves_no_key() {
    // EpollSelectorTestCase.test_register_file: epoll refuses regular files
    // with EPERM, and the key must not linger.
    let _fds = shared_fds();
    let file = std::fs::File::open(std::env::current_exe().unwrap()).unwrap();
    let mut sel = Selector::new().unwrap();
    match sel.register(&file, EVENT_READ, ()) {
        Err(Error::Io(e)) => assert_eq!(e.raw_os_error(), Some(1), "want EPERM, got {e}"),
        other => panic!("expected Io(EPERM), got {:?}", other.map(|_| ())),
    }
    assert_err!(sel.get_key(&file), Error::NotRegistered(_));
    assert!(sel.get_map().unwrap().is_empty());
}

// ---------------------------------------------------------------------------
// unregister (test_unregister, test_unregister_after_*)
// ---------------------------------------------------------------------------

#[test]
fn unknown_fd_is_not_registered_everywhere() {
    let _fds = shared_fds();
    let (rd, _wr) = pair();
    let mut sel = Selector::new().unwrap();

    for unknown in [999_999, fd(&rd)] {
        assert_err!(sel.unregister(unknown), Error::NotRegistered(f) if f == unknown);
        assert_err!(sel.modify(unknown, EVENT_READ, ()), Error::NotRegistered(f) if f == unknown);
        assert_err!(sel.get_key(unknown), Error::NotRegistered(f) if f == unknown);
        assert_err!(sel.get_key_mut(unknown), Error::NotRegistered(f) if f == unknown);
    }
    assert_err!(sel.get_key(&rd), Error::NotRegistered(_));
    assert_err!(
        sel.unregister(mio::Token(999_999)),
        Error::NotRegistered(999_999)
    );

    // Unregister twice (Python: KeyError the second time).
    sel.register(&rd, EVENT_READ, ()).unwrap();
    sel.unregister(&rd).unwrap();
    assert_err!(sel.unregister(&rd), Error::NotRegistered(_));
    assert_err!(sel.get_key(&rd), Error::NotRegistered(_));
}

#[test]
fn unregister_returns_the_key_with_its_data() {
    let _fds = shared_fds();
    let (rd, wr) = pair();
    let mut sel = Selector::new().unwrap();
    sel.register(&rd, EVENT_READ, vec![1, 2, 3]).unwrap();
    sel.register(&wr, EVENT_WRITE, vec![4]).unwrap();

    let key: SelectorKey<Vec<i32>> = sel.unregister(&rd).unwrap();
    assert_eq!(
        (key.fd(), key.events(), key.data),
        (fd(&rd), EVENT_READ, vec![1, 2, 3])
    );
    let map = sel.get_map().unwrap();
    assert_eq!(map.len(), 1);
    assert!(!map.contains(&rd));
    assert!(map.contains(&wr));

    // Unregistered fds are never reported again.
    let ready = select(&mut sel, WAIT);
    assert_eq!(ready, [(fd(&wr), EVENT_WRITE)]);
    assert_eq!(sel.unregister(fd(&wr)).unwrap().data, vec![4]);
    assert!(select(&mut sel, SHORT).is_empty());
}

#[test]
fn unregister_after_socket_close_hands_back_data() {
    let _fds = shared_fds();
    let (rd, wr) = pair();
    let (r, w) = (fd(&rd), fd(&wr));
    let mut sel = Selector::new().unwrap();
    sel.register(&rd, EVENT_READ, "rd").unwrap();
    sel.register(&wr, EVENT_WRITE, "wr").unwrap();
    // Reported once, so the selector owes the writer a re-arm.
    assert_eq!(select(&mut sel, WAIT), [(w, EVENT_WRITE)]);

    drop(rd);
    drop(wr);
    // The kernel dropped both from epoll: the re-arm fails quietly, nothing
    // is reported, and the stale keys are still there to unregister.
    assert!(sel.select(Some(Duration::ZERO)).unwrap().is_empty());
    let key = sel.unregister(r).unwrap();
    assert_eq!((key.fd(), key.events(), key.data), (r, EVENT_READ, "rd"));
    let key = sel.unregister(w).unwrap();
    assert_eq!((key.fd(), key.events(), key.data), (w, EVENT_WRITE, "wr"));
    assert!(sel.get_map().unwrap().is_empty());

    // The selector is still fully usable.
    let (a, _b) = pair();
    sel.register(&a, EVENT_WRITE, "a").unwrap();
    assert_eq!(select(&mut sel, WAIT), [(fd(&a), EVENT_WRITE)]);
}

#[test]
fn unregister_after_fd_close_and_reuse() {
    // test_unregister_after_fd_close_and_reuse: the closed sockets' fd
    // numbers now name other, never registered sockets (Python uses dup2;
    // here the kernel's lowest-free-fd rule puts new sockets there).
    let _fds = exclusive_fds();
    let (rd, wr) = pair();
    let (r, w) = (fd(&rd), fd(&wr));
    let mut sel = Selector::new().unwrap();
    sel.register(r, EVENT_READ, "rd").unwrap();
    sel.register(w, EVENT_WRITE, "wr").unwrap();
    drop(rd);
    drop(wr);

    let mut fillers = Vec::new();
    let mut at_r = None;
    let mut at_w = None;
    while at_r.is_none() || at_w.is_none() {
        assert!(fillers.len() < 4096, "fds {r} and {w} were never reused");
        let (a, b) = pair();
        for s in [a, b] {
            match s.as_raw_fd() {
                f if f == r => at_r = Some(s),
                f if f == w => at_w = Some(s),
                _ => fillers.push(s),
            }
        }
    }
    drop(fillers);
    let (new_r, new_w) = (at_r.unwrap(), at_w.unwrap());

    // The old registrations died with the old sockets: the new socket at
    // `w` is writable but must not be reported.
    assert!(sel.select(Some(Duration::ZERO)).unwrap().is_empty());

    assert_eq!(sel.unregister(r).unwrap().data, "rd");
    assert_eq!(sel.unregister(w).unwrap().data, "wr");
    assert!(sel.get_map().unwrap().is_empty());

    // The reused fds register afresh and report the new sockets' state.
    sel.register(&new_r, EVENT_READ, "new rd").unwrap();
    sel.register(&new_w, EVENT_WRITE, "new wr").unwrap();
    let ready = select(&mut sel, WAIT);
    assert!(ready.contains(&(w, EVENT_WRITE)), "{ready:?}");
    assert!(!ready.iter().any(|&(f, _)| f == r), "{ready:?}");
}

// ---------------------------------------------------------------------------
// modify (test_modify, test_modify_unregister)
// ---------------------------------------------------------------------------

#[test]
fn modify_events_returns_the_key_get_key_sees() {
    let _fds = shared_fds();
    let (rd, _wr) = pair();
    let mut sel = Selector::new().unwrap();

    let key = sel.register(&rd, EVENT_READ, 1).unwrap().clone();
    let key2 = sel.modify(&rd, EVENT_WRITE, 1).unwrap().clone();
    assert_ne!(key.events(), key2.events());
    assert_eq!(key2.events(), EVENT_WRITE);
    assert_eq!(key2.fd(), fd(&rd));
    assert_eq!(sel.get_key(&rd).unwrap(), &key2);

    // The kernel follows: the idle socket is writable, not readable.
    assert_eq!(select(&mut sel, WAIT), [(fd(&rd), EVENT_WRITE)]);

    // Events and data together; the report just made must not leak past
    // the change back to READ.
    let key3 = sel.modify(&rd, EVENT_READ, 2).unwrap().clone();
    assert_eq!((key3.events(), key3.data), (EVENT_READ, 2));
    assert_eq!(sel.get_key(&rd).unwrap(), &key3);
    assert!(select(&mut sel, SHORT).is_empty());

    let key4 = sel
        .modify(&rd, EVENT_READ | EVENT_WRITE, 3)
        .unwrap()
        .clone();
    assert_eq!(key4.events(), EVENT_READ | EVENT_WRITE);
    assert_eq!(select(&mut sel, WAIT), [(fd(&rd), EVENT_WRITE)]);
}

#[test]
fn modify_data_only_keeps_events_and_level_triggering() {
    let _fds = shared_fds();
    let (rd, mut wr) = pair();
    let mut sel = Selector::new().unwrap();

    let key = sel.register(&rd, EVENT_READ, "d1").unwrap().clone();
    let key2 = sel.modify(&rd, EVENT_READ, "d2").unwrap().clone();
    assert_eq!(key.events(), key2.events());
    assert_ne!(key.data, key2.data);
    assert_eq!(key2.data, "d2");
    assert_eq!(sel.get_key(&rd).unwrap(), &key2);

    // A data-only modify between two selects must not lose the re-report of
    // a socket that is still readable.
    wr.write_all(b"x").unwrap();
    assert_eq!(select(&mut sel, WAIT), [(fd(&rd), EVENT_READ)]);
    let key3 = sel.modify(&rd, EVENT_READ, "d3").unwrap().clone();
    assert_eq!((key3.events(), key3.data), (EVENT_READ, "d3"));
    assert_eq!(select(&mut sel, WAIT), [(fd(&rd), EVENT_READ)]);
    assert_eq!(sel.get_key(&rd).unwrap().data, "d3");

    // So must an events modify (it re-checks readiness itself).
    sel.modify(&rd, EVENT_READ | EVENT_WRITE, "d4").unwrap();
    assert_eq!(
        select(&mut sel, WAIT),
        [(fd(&rd), EVENT_READ | EVENT_WRITE)]
    );
}

#[test]
fn modify_invalid_events_errors_and_keeps_the_key() {
    let _fds = shared_fds();
    let (rd, _wr) = pair();
    let mut sel = Selector::new().unwrap();
    sel.register(&rd, EVENT_WRITE, "kept").unwrap();

    assert_err!(
        sel.modify(&rd, EventMask::EMPTY, "lost"),
        Error::InvalidEvents(0)
    );
    assert_err!(
        sel.modify(&rd, EventMask::from_bits(4), "lost"),
        Error::InvalidEvents(4)
    );
    assert_err!(
        sel.modify(&rd, EVENT_WRITE | EventMask::from_bits(8), "lost"),
        Error::InvalidEvents(10)
    );

    let key = sel.get_key(&rd).unwrap();
    assert_eq!((key.events(), key.data), (EVENT_WRITE, "kept"));
    assert_eq!(select(&mut sel, WAIT), [(fd(&rd), EVENT_WRITE)]);
}

#[test]
fn modify_after_fd_close_is_io_error_and_unregister_still_works() {
    // test_modify_unregister's situation (the kernel refuses the change).
    // Unlike CPython, which drops the key, the port keeps the old key so
    // that unregister hands its data back as after any close.
    let _fds = shared_fds();
    let (rd, _wr) = pair();
    let r = fd(&rd);
    let mut sel = Selector::new().unwrap();
    sel.register(&rd, EVENT_READ, "old").unwrap();
    drop(rd);

    assert_err!(sel.modify(r, EVENT_WRITE, "new"), Error::Io(_));
    let key = sel.get_key(r).unwrap();
    assert_eq!((key.events(), key.data), (EVENT_READ, "old"));
    assert_eq!(sel.unregister(r).unwrap().data, "old");
    assert!(sel.get_map().unwrap().is_empty());
}

// ---------------------------------------------------------------------------
// get_map (test_get_map)
// ---------------------------------------------------------------------------

#[test]
fn get_map_is_a_read_only_view_of_the_keys() {
    let _fds = shared_fds();
    let (rd, wr) = pair();
    let mut sel = Selector::new().unwrap();

    let map = sel.get_map().unwrap();
    assert!(map.is_empty());
    assert_eq!(map.len(), 0);
    assert_eq!(map.iter().count(), 0);
    assert_eq!(map.fds().count(), 0);
    assert!(!map.contains(&rd));
    assert!(map.get(&rd).is_none());

    let key = sel.register(&rd, EVENT_READ, "data").unwrap().clone();
    let map = sel.get_map().unwrap();
    assert!(!map.is_empty());
    assert_eq!(map.len(), 1);
    assert!(map.contains(&rd));
    assert!(map.contains(fd(&rd)));
    assert!(map.contains(key.token()));
    assert!(!map.contains(&wr));
    assert_eq!(map.get(&rd), Some(&key));
    assert!(map.get(&wr).is_none());
    assert!(map.get(999_999).is_none());
    assert_eq!(map.fds().collect::<Vec<_>>(), [fd(&rd)]);
    assert_eq!(map.iter().collect::<Vec<_>>(), [&key]);
    assert_eq!(map.into_iter().collect::<Vec<_>>(), [&key]);

    let key_w = sel.register(&wr, EVENT_WRITE, "w").unwrap().clone();
    let map = sel.get_map().unwrap();
    assert_eq!(map.len(), 2);
    let mut fds: Vec<_> = map.fds().collect();
    fds.sort();
    let mut want = vec![fd(&rd), fd(&wr)];
    want.sort();
    assert_eq!(fds, want);
    let mut keys: Vec<_> = map.iter().cloned().collect();
    keys.sort_by_key(|k| k.fd());
    let mut want_keys = vec![key.clone(), key_w.clone()];
    want_keys.sort_by_key(|k| k.fd());
    assert_eq!(keys, want_keys);
    let mut via_for = Vec::new();
    for k in map {
        via_for.push(k.data);
    }
    via_for.sort();
    assert_eq!(via_for, ["data", "w"]);

    // After unregister the view no longer has the key.
    sel.unregister(&rd).unwrap();
    let map = sel.get_map().unwrap();
    assert_eq!(map.len(), 1);
    assert!(!map.contains(&rd));
    assert!(map.get(&rd).is_none());
    assert_eq!(map.fds().collect::<Vec<_>>(), [fd(&wr)]);
    assert_eq!(map.get(&wr), Some(&key_w));
    sel.unregister(&wr).unwrap();
    assert!(sel.get_map().unwrap().is_empty());
}

// ---------------------------------------------------------------------------
// close (test_close, test_context_manager)
// ---------------------------------------------------------------------------

#[test]
fn everything_after_close_is_closed() {
    let _fds = shared_fds();
    let (mut rd, mut wr) = pair();
    let (fresh, _peer) = pair();
    let mut sel = Selector::new().unwrap();
    sel.register(&rd, EVENT_READ, ()).unwrap();
    sel.register(&wr, EVENT_WRITE, ()).unwrap();
    assert_eq!(select(&mut sel, WAIT), [(fd(&wr), EVENT_WRITE)]);

    sel.close();
    assert_err!(sel.get_key(&rd), Error::Closed);
    assert_err!(sel.get_key(&wr), Error::Closed);
    assert_err!(sel.get_key_mut(&rd), Error::Closed);
    assert_err!(sel.get_key(999_999), Error::Closed);
    assert_err!(sel.register(&fresh, EVENT_READ, ()), Error::Closed);
    assert_err!(sel.register(&rd, EVENT_READ, ()), Error::Closed);
    assert_err!(sel.modify(&rd, EVENT_WRITE, ()), Error::Closed);
    assert_err!(sel.unregister(&rd), Error::Closed);
    assert_err!(sel.unregister(&wr), Error::Closed);
    assert_err!(sel.select(Some(Duration::ZERO)), Error::Closed);
    assert_err!(sel.select(Some(WAIT)), Error::Closed);
    assert!(sel.get_map().is_none());

    // Closing twice is fine, and nothing changes.
    sel.close();
    assert!(sel.get_map().is_none());
    assert_err!(sel.get_key(&rd), Error::Closed);

    // select(None) must fail at once too, not block: run it where a hang
    // cannot stall the suite.
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let result = sel.select(None).map(|r| r.len());
        let _ = tx.send(matches!(result, Err(Error::Closed)));
    });
    assert_eq!(rx.recv_timeout(WAIT), Ok(true), "select(None) after close");

    // close() closed the selector, not the sockets (as in Python).
    wr.write_all(b"still open").unwrap();
    let mut buf = [0; 10];
    rd.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"still open");
}

#[test]
fn dropping_the_selector_leaves_the_sockets_open() {
    let _fds = shared_fds();
    let (mut rd, mut wr) = pair();
    {
        let mut sel = Selector::new().unwrap();
        sel.register(&rd, EVENT_READ, ()).unwrap();
        sel.register(&wr, EVENT_WRITE, ()).unwrap();
        assert_eq!(select(&mut sel, WAIT).len(), 1);
    }
    wr.write_all(b"ok").unwrap();
    let mut buf = [0; 2];
    rd.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ok");
    // And they register with a new selector as if new.
    let mut sel = Selector::new().unwrap();
    sel.register(&rd, EVENT_READ, ()).unwrap();
    sel.register(&wr, EVENT_WRITE, ()).unwrap();
    assert_eq!(select(&mut sel, WAIT), [(fd(&wr), EVENT_WRITE)]);
}

// ---------------------------------------------------------------------------
// select: what is reported (test_select, test_select_read_write)
// ---------------------------------------------------------------------------

#[test]
fn fresh_pair_reports_exactly_write_on_the_writer() {
    let _fds = shared_fds();
    let (rd, wr) = pair();
    let mut sel = Selector::new().unwrap();
    sel.register(&rd, EVENT_READ, "rd").unwrap();
    sel.register(&wr, EVENT_READ | EVENT_WRITE, "wr").unwrap();

    let ready = select(&mut sel, WAIT);
    assert_eq!(ready, [(fd(&wr), EVENT_WRITE)]);
    let (f, mask) = ready[0];
    assert!(mask.is_writable() && !mask.is_readable());
    assert_eq!(sel.get_key(f).unwrap().data, "wr");
}

#[test]
fn read_and_write_readiness_come_in_one_entry() {
    // gh-110038: both events in a single select() call.
    let _fds = shared_fds();
    let (sock1, mut sock2) = pair();
    sock2.write_all(b"foo").unwrap();
    let mut sel = Selector::new().unwrap();
    let my_key = sel
        .register(&sock1, EVENT_READ | EVENT_WRITE, ())
        .unwrap()
        .clone();
    let ready = select(&mut sel, WAIT);
    assert_eq!(ready, [(my_key.fd(), EVENT_READ | EVENT_WRITE)]);
}

#[test]
fn events_are_never_empty_and_only_registered_interest() {
    let _fds = shared_fds();
    let (rd, mut wr) = pair();
    let (wo, mut wo_peer) = pair();
    let mut sel = Selector::new().unwrap();

    // READ only on a socket that is writable: never EVENT_WRITE.
    sel.register(&rd, EVENT_READ, "read only").unwrap();
    assert!(select(&mut sel, SHORT).is_empty());

    // WRITE only on a socket that is readable and writable: never EVENT_READ.
    wo_peer.write_all(b"unread").unwrap();
    sel.register(&wo, EVENT_WRITE, "write only").unwrap();
    wr.write_all(b"x").unwrap();

    let mut want = vec![(fd(&rd), EVENT_READ), (fd(&wo), EVENT_WRITE)];
    want.sort_by_key(|&(f, _)| f);
    for round in 0..3 {
        let ready = select(&mut sel, WAIT);
        assert_eq!(ready, want, "round {round}");
        for (_, mask) in ready {
            assert!(!mask.is_empty());
            assert_eq!(mask & EventMask::from_bits(!3), EventMask::EMPTY);
        }
    }
    wo_peer.shutdown(Shutdown::Both).unwrap();
}

#[test]
fn twelve_socket_pairs_each_get_their_own_readiness() {
    // test_selector: 12 pairs; write on one ready writer at a time; exactly
    // its reader turns readable; unregister both; until none are left.
    let _fds = shared_fds();
    const NUM_SOCKETS: usize = 12;
    const MSG: &[u8] = b" This is a test.";

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Side {
        Reader(usize),
        Writer(usize),
    }

    let mut sel = Selector::new().unwrap();
    let mut pairs = Vec::new();
    for i in 0..NUM_SOCKETS {
        let (rd, wr) = pair();
        sel.register(&rd, EVENT_READ, Side::Reader(i)).unwrap();
        sel.register(&wr, EVENT_WRITE, Side::Writer(i)).unwrap();
        pairs.push((rd, wr));
    }

    let mut remaining: Vec<usize> = (0..NUM_SOCKETS).collect();
    let mut bufs = Vec::new();
    let mut rng: u32 = 0x2545_f491;
    while !remaining.is_empty() {
        let ready = select(&mut sel, WAIT);
        let mut ready_writers = Vec::new();
        for &(f, mask) in &ready {
            match sel.get_key(f).unwrap().data {
                Side::Writer(i) => {
                    assert_eq!(mask, EVENT_WRITE);
                    ready_writers.push(i);
                }
                Side::Reader(i) => panic!("reader {i} ready before any write: {ready:?}"),
            }
        }
        ready_writers.sort();
        assert_eq!(ready_writers, remaining, "every idle writer is writable");

        rng = rng.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let i = ready_writers[(rng >> 16) as usize % ready_writers.len()];
        (&pairs[i].1).write_all(MSG).unwrap();

        let ready = select_until(&mut sel, |_, ready| {
            ready.iter().any(|&(_, m)| m.is_readable())
        });
        let ready_readers: Vec<Side> = ready
            .iter()
            .filter(|&&(_, m)| m.is_readable())
            .map(|&(f, _)| sel.get_key(f).unwrap().data)
            .collect();
        assert_eq!(ready_readers, [Side::Reader(i)]);

        let mut buf = vec![0; MSG.len()];
        (&pairs[i].0).read_exact(&mut buf).unwrap();
        bufs.push(buf);
        assert_eq!(sel.unregister(&pairs[i].1).unwrap().data, Side::Writer(i));
        assert_eq!(sel.unregister(&pairs[i].0).unwrap().data, Side::Reader(i));
        remaining.retain(|&j| j != i);
    }
    assert_eq!(bufs, vec![MSG.to_vec(); NUM_SOCKETS]);
    assert!(sel.get_map().unwrap().is_empty());
}

#[test]
fn twelve_readers_report_exactly_the_ones_written_to() {
    let _fds = shared_fds();
    let mut sel = Selector::new().unwrap();
    let mut pairs = Vec::new();
    for i in 0..12usize {
        let (rd, wr) = pair();
        sel.register(&rd, EVENT_READ, i).unwrap();
        pairs.push((rd, wr));
    }
    assert!(select(&mut sel, SHORT).is_empty());

    let written = [1usize, 4, 5, 10];
    for &i in &written {
        (&pairs[i].1).write_all(&[i as u8]).unwrap();
    }
    let want: Vec<(RawFd, EventMask)> = {
        let mut v: Vec<_> = written
            .iter()
            .map(|&i| (fd(&pairs[i].0), EVENT_READ))
            .collect();
        v.sort_by_key(|&(f, _)| f);
        v
    };

    // Bounded wait until all four are seen, never anything else ...
    let mut seen = HashSet::new();
    select_until(&mut sel, |sel, ready| {
        for &(f, mask) in ready {
            let i = sel.get_key(f).unwrap().data;
            assert!(written.contains(&i), "reader {i} not written to: {ready:?}");
            assert_eq!(mask, EVENT_READ);
            assert_eq!(f, fd(&pairs[i].0));
            seen.insert(i);
        }
        seen.len() == written.len()
    });
    // ... and, being level-triggered, one select now reports all four.
    assert_eq!(select(&mut sel, WAIT), want);

    for &i in &written {
        let mut b = [0u8];
        (&pairs[i].0).read_exact(&mut b).unwrap();
        assert_eq!(b[0] as usize, i);
    }
    assert!(select(&mut sel, SHORT).is_empty());
}

#[test]
fn tcp_readiness_on_ipv4_and_ipv6() {
    let _fds = shared_fds();
    for bind in ["127.0.0.1:0", "[::1]:0"] {
        let (mut client, mut server) = tcp_pair(bind);
        let (c, s) = (fd(&client), fd(&server));
        let mut sel = Selector::new().unwrap();
        sel.register(&client, EVENT_READ | EVENT_WRITE, "client")
            .unwrap();
        sel.register(&server, EVENT_READ, "server").unwrap();

        // Fresh connection: the client may write, nobody may read.
        assert_eq!(select(&mut sel, WAIT), [(c, EVENT_WRITE)], "{bind}");

        client.write_all(b"ping").unwrap();
        let ready = select_until(&mut sel, |_, ready| {
            assert!(ready.contains(&(c, EVENT_WRITE)), "{bind}: {ready:?}");
            ready.contains(&(s, EVENT_READ))
        });
        assert_eq!(ready.len(), 2, "{bind}: {ready:?}");
        let mut buf = [0; 4];
        server.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping");

        // The answer makes the client readable and writable in one entry.
        server.write_all(b"pong").unwrap();
        select_until(&mut sel, |_, ready| {
            ready.contains(&(c, EVENT_READ | EVENT_WRITE))
        });
        client.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"pong");

        // Drained: back to just the client's EVENT_WRITE.
        assert_eq!(select(&mut sel, WAIT), [(c, EVENT_WRITE)], "{bind}");
    }
}

// ---------------------------------------------------------------------------
// select: timeouts (test_empty_select, test_empty_select_timeout, test_timeout)
// ---------------------------------------------------------------------------

#[test]
fn empty_select_with_zero_timeout_returns_at_once() {
    let _fds = shared_fds();
    let mut sel: Selector<()> = Selector::new().unwrap();
    let t0 = Instant::now();
    assert!(sel.select(Some(Duration::ZERO)).unwrap().is_empty());
    assert!(sel.select(Some(Duration::ZERO)).unwrap().is_empty());
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
}

#[test]
fn empty_select_waits_for_the_timeout() {
    let _fds = shared_fds();
    let mut sel: Selector<()> = Selector::new().unwrap();
    let timeout = Duration::from_millis(200);
    let t0 = Instant::now();
    assert!(sel.select(Some(timeout)).unwrap().is_empty());
    let dt = t0.elapsed();
    assert!(dt >= Duration::from_millis(190), "returned early: {dt:?}");
    assert!(dt < Duration::from_secs(5), "returned late: {dt:?}");
}

#[test]
fn select_timeout_with_registered_sockets() {
    let _fds = shared_fds();
    let (rd, wr) = pair();
    let mut sel = Selector::new().unwrap();

    // Something ready: a zero timeout reports it without waiting.
    sel.register(&wr, EVENT_WRITE, ()).unwrap();
    let t = Instant::now();
    assert_eq!(sel.select(Some(Duration::ZERO)).unwrap().len(), 1);
    assert_eq!(sel.select(Some(Duration::ZERO)).unwrap().len(), 1);
    // A ready fd cuts a long timeout short.
    assert_eq!(sel.select(Some(Duration::from_secs(30))).unwrap().len(), 1);
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());

    // Nothing ready: zero returns at once ...
    sel.unregister(&wr).unwrap();
    sel.register(&rd, EVENT_READ, ()).unwrap();
    let t = Instant::now();
    assert!(sel.select(Some(Duration::ZERO)).unwrap().is_empty());
    assert!(sel.select(Some(Duration::ZERO)).unwrap().is_empty());
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());

    // ... and a timeout is waited out in full.
    let t0 = Instant::now();
    assert!(sel
        .select(Some(Duration::from_millis(200)))
        .unwrap()
        .is_empty());
    let dt = t0.elapsed();
    assert!(dt >= Duration::from_millis(190), "returned early: {dt:?}");
    assert!(dt < Duration::from_secs(5), "returned late: {dt:?}");
}

#[test]
fn huge_timeout_does_not_overflow() {
    // `Some(Duration::MAX)` is a legitimate "practically forever"; with a
    // ready fd it must return that fd, not panic computing a deadline.
    let _fds = shared_fds();
    let (_rd, wr) = pair();
    let mut sel = Selector::new().unwrap();
    sel.register(&wr, EVENT_WRITE, ()).unwrap();
    let t0 = Instant::now();
    assert_eq!(
        sel.select(Some(Duration::MAX)).unwrap(),
        [(fd(&wr), EVENT_WRITE)]
    );
    assert_eq!(
        sel.select(Some(Duration::from_secs(u64::MAX))).unwrap(),
        [(fd(&wr), EVENT_WRITE)]
    );
    assert!(t0.elapsed() < WAIT);
}

// ---------------------------------------------------------------------------
// select: many fds (ScalableSelectorMixIn.test_above_fd_setsize)
// ---------------------------------------------------------------------------

/// The soft `RLIMIT_NOFILE`, from `/proc/self/limits`.
fn soft_nofile_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").expect("/proc/self/limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files line");
    let soft = line["Max open files".len()..]
        .split_whitespace()
        .next()
        .expect("soft limit");
    if soft == "unlimited" {
        u64::MAX
    } else {
        soft.parse().expect("numeric soft limit")
    }
}

#[test]
fn more_than_fd_setsize_sockets() {
    let _fds = shared_fds();
    const PAIRS: usize = 600; // 1200 fds: past FD_SETSIZE (1024)
    let soft = soft_nofile_limit();
    assert!(
        soft >= (2 * PAIRS + 800) as u64,
        "soft RLIMIT_NOFILE {soft} leaves no room for {} fds plus the other tests",
        2 * PAIRS
    );

    let mut sel = Selector::new().unwrap();
    let mut pairs = Vec::with_capacity(PAIRS);
    for i in 0..PAIRS {
        let (rd, wr) = pair();
        sel.register(&rd, EVENT_READ, i).unwrap();
        sel.register(&wr, EVENT_WRITE, i).unwrap();
        pairs.push((rd, wr));
    }
    let max_fd = pairs.iter().map(|(r, w)| fd(r).max(fd(w))).max().unwrap();
    assert!(max_fd >= 1024, "max fd {max_fd} is not past FD_SETSIZE");
    assert_eq!(sel.get_map().unwrap().len(), 2 * PAIRS);

    // One select reports every writer, and nothing else.
    let ready = select(&mut sel, WAIT);
    assert_eq!(ready.len(), PAIRS);
    let mut want: Vec<_> = pairs.iter().map(|(_, w)| (fd(w), EVENT_WRITE)).collect();
    want.sort_by_key(|&(f, _)| f);
    assert_eq!(ready, want);

    // The reader with the highest fd still gets its own readiness.
    let (rd, wr) = pairs.iter().max_by_key(|(r, _)| fd(r)).unwrap();
    (&*wr).write_all(b"!").unwrap();
    let ready = select(&mut sel, WAIT);
    assert_eq!(ready.len(), PAIRS + 1);
    assert!(ready.contains(&(fd(rd), EVENT_READ)));
}

// ---------------------------------------------------------------------------
// select: level-triggered, as Python's epoll
// ---------------------------------------------------------------------------

#[test]
fn level_triggered_reports_until_drained() {
    let _fds = shared_fds();
    let (mut rd, mut wr) = pair();
    rd.set_nonblocking(true).unwrap();
    let r = fd(&rd);
    let mut sel = Selector::new().unwrap();
    sel.register(&rd, EVENT_READ, ()).unwrap();

    let sent: Vec<u8> = (0..10).collect();
    wr.write_all(&sent).unwrap();
    let mut got = Vec::new();
    for i in 0..sent.len() {
        let ready = select(&mut sel, WAIT);
        assert_eq!(
            ready,
            [(r, EVENT_READ)],
            "select {i}: {} bytes unread",
            10 - i
        );
        let mut b = [0u8; 1];
        assert_eq!(rd.read(&mut b).unwrap(), 1, "select {i}");
        got.push(b[0]);
    }
    assert_eq!(got, sent);

    // Drained: nothing is reported, even after a report on the last select.
    assert!(select(&mut sel, SHORT).is_empty());
    assert_eq!(
        rd.read(&mut [0; 1]).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );

    // New data after draining is reported again.
    wr.write_all(b"z").unwrap();
    assert_eq!(select(&mut sel, WAIT), [(r, EVENT_READ)]);
    assert_eq!(select(&mut sel, WAIT), [(r, EVENT_READ)]);
}

#[test]
fn level_triggered_write_is_reported_on_every_select() {
    let _fds = shared_fds();
    let (_rd, wr) = pair();
    let mut sel = Selector::new().unwrap();
    sel.register(&wr, EVENT_WRITE, ()).unwrap();
    for i in 0..5 {
        assert_eq!(
            select(&mut sel, WAIT),
            [(fd(&wr), EVENT_WRITE)],
            "select {i}"
        );
    }
}

#[test]
fn reregistering_between_selects_reports_the_new_key() {
    // The loop body may unregister and register again: the pending re-arm of
    // the old registration must neither break nor hide the new one.
    let _fds = shared_fds();
    let (rd, mut wr) = pair();
    let r = fd(&rd);
    let mut sel = Selector::new().unwrap();
    sel.register(&rd, EVENT_READ, "first").unwrap();
    wr.write_all(b"x").unwrap();
    assert_eq!(select(&mut sel, WAIT), [(r, EVENT_READ)]);

    assert_eq!(sel.unregister(&rd).unwrap().data, "first");
    assert!(select(&mut sel, SHORT).is_empty());

    sel.register(&rd, EVENT_READ, "second").unwrap();
    assert_eq!(select(&mut sel, WAIT), [(r, EVENT_READ)]);
    assert_eq!(sel.get_key(r).unwrap().data, "second");
    assert_eq!(select(&mut sel, WAIT), [(r, EVENT_READ)]);
}

#[test]
fn tutorial_recv_1024_per_event_gets_all_of_100_kib() {
    // The tutorial's service_connection: one recv(1024) per event, the rest
    // left for later selects. The peer writes everything at once and then
    // goes quiet, so only level-triggered reporting can finish this.
    let _fds = shared_fds();
    const TOTAL: usize = 100 * 1024;
    let payload: Vec<u8> = (0..TOTAL).map(|i| (i % 251) as u8).collect();

    let (mut client, server) = tcp_pair("127.0.0.1:0");
    server.set_nonblocking(true).unwrap();
    let s = fd(&server);
    let mut sel = Selector::new().unwrap();
    sel.register(s, EVENT_READ, (server, Vec::<u8>::new()))
        .unwrap();

    let to_send = payload.clone();
    let writer = thread::spawn(move || {
        client
            .set_write_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        client.write_all(&to_send).map(|()| client)
    });

    let deadline = Instant::now() + Duration::from_secs(30);
    let mut selects = 0;
    loop {
        let received = sel.get_key(s).unwrap().data.1.len();
        if received == TOTAL {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {received} of {TOTAL} bytes"
        );
        let ready = select(&mut sel, WAIT);
        assert!(
            !ready.is_empty(),
            "select timed out with {} bytes unread: readiness lost",
            TOTAL - received
        );
        selects += 1;
        for (f, mask) in ready {
            assert_eq!((f, mask), (s, EVENT_READ));
            let (sock, inb) = &mut sel.get_key_mut(f).unwrap().data;
            let mut buf = [0; 1024];
            match sock.read(&mut buf) {
                Ok(0) => panic!("unexpected EOF after {} bytes", inb.len()),
                Ok(n) => inb.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => panic!("recv: {e}"),
            }
        }
    }
    let _client = writer.join().unwrap().expect("peer's write_all");
    assert!(
        selects >= TOTAL / 1024,
        "{selects} selects for {TOTAL} bytes"
    );
    let (_, inb) = sel.unregister(s).unwrap().data;
    assert!(inb == payload, "received bytes differ from what was sent");
}

// ---------------------------------------------------------------------------
// select: hang-up
// ---------------------------------------------------------------------------

#[test]
fn peer_hangup_is_reported_as_read() {
    let _fds = shared_fds();
    // Unix socket: the peer closes.
    let (mut rd, wr) = pair();
    let r = fd(&rd);
    let mut sel = Selector::new().unwrap();
    sel.register(&rd, EVENT_READ, "rd").unwrap();
    assert!(select(&mut sel, SHORT).is_empty());
    drop(wr);
    assert_eq!(select(&mut sel, WAIT), [(r, EVENT_READ)]);
    assert_eq!(rd.read(&mut [0; 16]).unwrap(), 0);
    // EOF stays readable, as with level-triggered epoll.
    assert_eq!(select(&mut sel, WAIT), [(r, EVENT_READ)]);
    // A hang-up counts as both events, masked by what is registered.
    sel.modify(&rd, EVENT_READ | EVENT_WRITE, "rd").unwrap();
    assert_eq!(select(&mut sel, WAIT), [(r, EVENT_READ | EVENT_WRITE)]);
    sel.modify(&rd, EVENT_READ, "rd").unwrap();
    assert_eq!(select(&mut sel, WAIT), [(r, EVENT_READ)]);

    // TCP: the peer shuts down its sending side only (FIN, RDHUP).
    let (client, mut server) = tcp_pair("127.0.0.1:0");
    let s = fd(&server);
    sel.register(&server, EVENT_READ, "server").unwrap();
    let ready = select(&mut sel, SHORT);
    assert!(!ready.iter().any(|&(f, _)| f == s), "{ready:?}");
    client.shutdown(Shutdown::Write).unwrap();
    let ready = select_until(&mut sel, |_, ready| ready.iter().any(|&(f, _)| f == s));
    assert!(ready.contains(&(s, EVENT_READ)), "{ready:?}");
    assert_eq!(server.read(&mut [0; 16]).unwrap(), 0);
}

// ---------------------------------------------------------------------------
// select: EINTR (test_select_interrupt_noraise)
// ---------------------------------------------------------------------------

/// This thread's kernel id, from `/proc/thread-self` (`<pid>/task/<tid>`).
fn current_tid() -> u32 {
    let link = std::fs::read_link("/proc/thread-self").expect("/proc/thread-self");
    link.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected /proc/thread-self: {link:?}"))
}

/// Whether thread `tid` sleeps in the kernel, in `epoll_wait` if `wchan`
/// says where.
fn sleeping_in_epoll(tid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit(')')
        .next()
        .and_then(|s| s.split_whitespace().next());
    if state != Some("S") {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/self/task/{tid}/wchan")) {
        Ok(wchan) if !wchan.is_empty() && wchan != "0" => wchan.contains("epoll"),
        _ => true, // wchan hidden: "sleeping" is the best we can check
    }
}

#[test]
fn select_interrupted_by_a_signal_resumes_with_the_remaining_timeout() {
    let _fds = shared_fds();
    const TIMEOUT: Duration = Duration::from_millis(1000);

    let delivered = Arc::new(AtomicBool::new(false));
    let sig_id = signal_hook::flag::register(signal_hook::consts::SIGUSR1, Arc::clone(&delivered))
        .expect("install SIGUSR1 handler");

    let (rd, _wr) = pair();
    let mut sel = Selector::new().unwrap();
    sel.register(&rd, EVENT_READ, ()).unwrap();

    // A helper waits until this thread sleeps in epoll_wait, then sends
    // SIGUSR1 to this very thread (kill(2) on a thread id prefers that
    // thread), and reports when it did.
    let tid = current_tid();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let flag = Arc::clone(&delivered);
    let killer = thread::spawn(move || -> Result<Instant, String> {
        go_rx.recv_timeout(WAIT).map_err(|e| e.to_string())?;
        let deadline = Instant::now() + TIMEOUT / 2;
        while !sleeping_in_epoll(tid) {
            if Instant::now() > deadline {
                return Err(format!("thread {tid} never slept in epoll_wait"));
            }
            thread::yield_now();
        }
        let sent = Instant::now();
        let status = std::process::Command::new("kill")
            .args(["-USR1", &tid.to_string()])
            .status()
            .map_err(|e| format!("run kill: {e}"))?;
        if !status.success() {
            return Err(format!("kill -USR1 {tid}: {status}"));
        }
        let deadline = Instant::now() + WAIT;
        while !flag.load(Ordering::SeqCst) {
            if Instant::now() > deadline {
                return Err("SIGUSR1 never delivered".into());
            }
            thread::yield_now();
        }
        Ok(sent)
    });

    go_tx.send(()).unwrap();
    let t0 = Instant::now();
    let result = sel.select(Some(TIMEOUT));
    let dt = t0.elapsed();
    let delivered_during_select = delivered.load(Ordering::SeqCst);
    let killed = killer.join().expect("killer thread");
    signal_hook::low_level::unregister(sig_id);

    let sent = killed.expect("signal the selecting thread");
    assert!(
        delivered_during_select,
        "SIGUSR1 arrived only after select returned"
    );
    assert!(sent < t0 + dt, "signal sent after select returned");
    let ready = result.expect("select must retry EINTR, not fail");
    assert!(ready.is_empty(), "{ready:?}");
    assert!(dt >= TIMEOUT, "select returned early after EINTR: {dt:?}");
    assert!(dt < TIMEOUT + WAIT, "select returned late: {dt:?}");
}
