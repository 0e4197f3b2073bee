//! Unix stream listeners: echo, peer names, stale and foreign socket
//! files, cleanup.

mod util;

use mio_selectors::{Config, Error, Reactor};
use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;
use std::{io, thread};
#[allow(unused_imports)]
use util::probe::*;
use util::{check_bytes, with_deadline, Rng, IO_TIMEOUT};

/// A socket path of this test process, with no file at it yet.
fn sock_path(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("mio-sel-{}-{name}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

/// Removes the file at `path` when dropped (a failed test leaves nothing).
struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn unix_connect(path: &Path) -> UnixStream {
    let s = UnixStream::connect(path).unwrap_or_else(|e| panic!("connect {}: {e}", path.display()));
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s
}

/// Streams `payload` through an echo server at `path` (written by another
/// thread, so backpressure cannot deadlock us), half-closes, and returns
/// what came back before EOF.
fn unix_echo(path: &Path, payload: &[u8]) -> Vec<u8> {
    let sock = unix_connect(path);
    let mut writer = sock.try_clone().unwrap();
    let sent = payload.to_vec();
    let w = thread::spawn(move || {
        for chunk in sent.chunks(7_001) {
            writer.write_all(chunk).expect("write");
        }
        writer.shutdown(Shutdown::Write).expect("shutdown");
    });
    let mut echoed = Vec::new();
    (&sock)
        .read_to_end(&mut echoed)
        .expect("read the echo to EOF");
    w.join().expect("writer");
    echoed
}

#[test]
fn unix_listener_echoes_byte_exact_and_names_an_unnamed_peer() {
    with_deadline(LIMIT, || {
        let path = sock_path("echo");
        let _cleanup = Cleanup(path.clone());
        let p = path.clone();
        let (mut rig, ()) = Rig::start(echo(), move |r| r.listen_unix(&p).map(drop));
        let payload = Rng::new(0x0E1C_0DE5).bytes(300_000);
        let echoed = unix_echo(&path, &payload);
        check_bytes("unix echo", &echoed, &payload).unwrap();
        let (_, _, acc) = rig.wait(WAIT, "accept", is_accepted);
        let Ev::Accepted { id, peer } = acc else {
            unreachable!()
        };
        assert_eq!(peer, "unix:unnamed");
        rig.wait(
            WAIT,
            "close",
            |ev| matches!(ev, Ev::Lost(i, Why::PeerClosed) if *i == id),
        );
        rig.stop();
    });
}

#[test]
fn unix_peer_bound_to_a_path_prints_that_path() {
    with_deadline(LIMIT, || {
        use socket2::{Domain, SockAddr, Socket, Type};
        let path = sock_path("named-srv");
        let client_path = sock_path("named-cli");
        let _cleanup = (Cleanup(path.clone()), Cleanup(client_path.clone()));
        let p = path.clone();
        let (mut rig, ()) = Rig::start(echo(), move |r| r.listen_unix(&p).map(drop));
        let sock = Socket::new(Domain::UNIX, Type::STREAM, None).unwrap();
        sock.bind(&SockAddr::unix(&client_path).unwrap()).unwrap();
        sock.connect(&SockAddr::unix(&path).unwrap()).unwrap();
        let (_, _, acc) = rig.wait(WAIT, "accept", is_accepted);
        let Ev::Accepted { peer, .. } = acc else {
            unreachable!()
        };
        assert_eq!(peer, client_path.display().to_string());
        drop(sock); // a graceful stop need not wait for it
        rig.stop();
    });
}

#[test]
fn unix_stale_socket_file_is_removed_and_the_bind_succeeds() {
    with_deadline(LIMIT, || {
        let path = sock_path("stale");
        let _cleanup = Cleanup(path.clone());
        drop(UnixListener::bind(&path).unwrap()); // a crash leaves its file behind
        assert!(path.exists(), "std leaves the socket file");
        let p = path.clone();
        let (mut rig, ()) = Rig::start(echo(), move |r| r.listen_unix(&p).map(drop));
        assert_eq!(
            unix_echo(&path, b"over the stale file"),
            b"over the stale file"
        );
        rig.stop();
    });
}

#[test]
fn unix_live_listener_or_other_file_at_the_path_is_a_bind_error_and_untouched() {
    with_deadline(LIMIT, || {
        let path = sock_path("live");
        let _cleanup = Cleanup(path.clone());
        let live = UnixListener::bind(&path).unwrap();
        let mut reactor = Reactor::new(Probe::quiet(), Config::default()).unwrap();
        match reactor.listen_unix(&path) {
            Err(Error::Bind { addr, source }) => {
                assert_eq!(addr, path.display().to_string());
                assert_eq!(source.kind(), io::ErrorKind::AddrInUse, "{source}");
            }
            other => panic!("listen_unix over a live listener: {other:?}"),
        }
        // The live listener still owns its path: a client reaches it.
        let mut client = unix_connect(&path);
        client.write_all(b"still yours").unwrap();
        live.set_nonblocking(true).unwrap();
        let mut found = false;
        while let Ok((mut conn, _)) = live.accept() {
            conn.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
            let mut buf = [0; 11];
            // The reactor's liveness probe connected and left at once: EOF.
            if conn.read_exact(&mut buf).is_ok() {
                assert_eq!(&buf, b"still yours");
                found = true;
            }
        }
        assert!(found, "the live listener did not get the client");
        drop(live);

        // A regular file is not a stale socket: left alone, bind fails.
        let file = sock_path("regular");
        let _cleanup_file = Cleanup(file.clone());
        std::fs::write(&file, b"not a socket").unwrap();
        assert!(matches!(
            reactor.listen_unix(&file),
            Err(Error::Bind { .. })
        ));
        assert_eq!(std::fs::read(&file).unwrap(), b"not a socket");
    });
}

/// A live listener that is not accepting and whose backlog is full is
/// still live: `listen_unix` must fail with `Bind` at once, not wait in a
/// blocking liveness probe for the listener to accept.
#[test]
fn unix_busy_listener_with_a_full_backlog_is_a_bind_error_not_a_hang() {
    with_deadline(LIMIT, || {
        use socket2::{Domain, SockAddr, Socket, Type};
        let path = sock_path("busy");
        let _cleanup = Cleanup(path.clone());
        let busy = Socket::new(Domain::UNIX, Type::STREAM, None).unwrap();
        busy.bind(&SockAddr::unix(&path).unwrap()).unwrap();
        busy.listen(0).unwrap();
        // Fill the backlog until a non-blocking connect says EAGAIN.
        let mut queued = Vec::new();
        let full = (0..8).any(|_| {
            let c = Socket::new(Domain::UNIX, Type::STREAM, None).unwrap();
            c.set_nonblocking(true).unwrap();
            match c.connect(&SockAddr::unix(&path).unwrap()) {
                Ok(()) => {
                    queued.push(c);
                    false
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => true,
                Err(e) => panic!("filling the backlog: {e}"),
            }
        });
        assert!(full, "a backlog of 0 took 8 connections");
        let (tx, rx) = mpsc::channel();
        let p = path.clone();
        thread::spawn(move || {
            let mut reactor = Reactor::new(Probe::quiet(), Config::default()).unwrap();
            let _ = tx.send(reactor.listen_unix(&p).map(drop));
        });
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(Err(Error::Bind { source, .. })) => {
                assert_eq!(source.kind(), io::ErrorKind::AddrInUse, "{source}")
            }
            Ok(other) => panic!("listen_unix over a busy listener: {other:?}"),
            Err(_) => panic!("listen_unix hung on a busy listener's path"),
        }
        assert!(path.exists(), "the busy listener's file was removed");
        drop(busy);
    });
}

#[test]
fn unix_socket_file_is_removed_when_the_reactor_is_dropped() {
    with_deadline(LIMIT, || {
        let path = sock_path("drop");
        let _cleanup = Cleanup(path.clone());
        let mut reactor = Reactor::new(Probe::quiet(), Config::default()).unwrap();
        reactor.listen_unix(&path).unwrap();
        assert!(path.exists());
        drop(reactor);
        assert!(!path.exists(), "socket file left after drop");
    });
}

#[test]
fn unix_socket_file_is_removed_when_the_reactor_stops() {
    with_deadline(LIMIT, || {
        let path = sock_path("stop");
        let _cleanup = Cleanup(path.clone());
        let p = path.clone();
        let spec = echo().hook(move |_, ev, emit| {
            if matches!(ev, Ev::ShuttingDown) {
                // Listeners are closed before `shutting_down` is called.
                emit.note("file exists at shutdown", p.exists() as i64);
            }
        });
        let p = path.clone();
        let (mut rig, ()) = Rig::start(spec, move |r| r.listen_unix(&p).map(drop));
        assert_eq!(unix_echo(&path, b"x"), b"x");
        assert!(path.exists());
        rig.stop();
        assert_eq!(
            rig.note("file exists at shutdown"),
            Some(0),
            "{}",
            rig.dump()
        );
        assert!(!path.exists(), "socket file left after stop");
    });
}
