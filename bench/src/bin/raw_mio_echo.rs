//! The reactor's echo algorithm with no abstraction: what our layer costs.
//!
//! mio `Poll` + `Slab`; each connection registered READABLE|WRITABLE once
//! (edge-triggered, never re-registered); on readable, read 16 KiB chunks
//! until a short read or `WouldBlock`, writing each chunk straight back; only
//! what the kernel did not take waits in a per-connection buffer for the next
//! writable edge. `raw_mio_echo [HOST PORT] [--two-phase]`; SIGTERM/SIGINT
//! stop it.
//!
//! `--two-phase` is a diagnostic: it reads every ready connection first and
//! writes them all afterwards (the Reactor's order, after Redis' `ae.c`)
//! instead of writing each echo right after its read, to measure what that
//! order alone costs a closed-loop client.

use std::io::{self, Read, Write};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use signal_hook_mio_shim::Signals;
use slab::Slab;

const LISTENER: Token = Token(usize::MAX - 1);
const SIGNALS: Token = Token(usize::MAX - 2);
const CHUNK: usize = 16 * 1024;

struct Conn {
    stream: TcpStream,
    /// Output the kernel has not taken yet.
    pending: Vec<u8>,
    writable: bool,
    /// Reading stopped for backpressure with input maybe left in the kernel.
    stalled: bool,
}

/// SIGTERM/SIGINT through a self-pipe registered with the poll.
mod signal_hook_mio_shim {
    use mio::net::UnixStream;
    use std::io::Read;

    pub struct Signals(pub UnixStream);

    impl Signals {
        pub fn new() -> std::io::Result<Self> {
            let (rx, tx) = std::os::unix::net::UnixStream::pair()?;
            rx.set_nonblocking(true)?;
            tx.set_nonblocking(true)?;
            for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
                signal_hook::low_level::pipe::register(sig, tx.try_clone()?)?;
            }
            Ok(Signals(UnixStream::from_std(rx)))
        }
        pub fn fired(&mut self) -> bool {
            let mut b = [0u8; 16];
            matches!(self.0.read(&mut b), Ok(n) if n > 0)
        }
    }
}

/// Writes as much of `data` as the kernel takes; the rest goes to `pending`.
fn send(conn: &mut Conn, data: &[u8], two_phase: bool) -> io::Result<()> {
    let mut off = 0;
    if conn.pending.is_empty() && !two_phase {
        while conn.writable && off < data.len() {
            match conn.stream.write(&data[off..]) {
                Ok(n) => off += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => conn.writable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
    conn.pending.extend_from_slice(&data[off..]);
    Ok(())
}

fn flush(conn: &mut Conn) -> io::Result<()> {
    while conn.writable && !conn.pending.is_empty() {
        match conn.stream.write(&conn.pending) {
            Ok(n) => {
                conn.pending.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => conn.writable = false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    if conn.pending.is_empty() {
        conn.pending = Vec::new(); // an idle connection holds no buffer
    }
    Ok(())
}

/// Reads until drained; `Ok(false)` once the connection is finished.
fn service(conn: &mut Conn, buf: &mut [u8], two_phase: bool) -> io::Result<bool> {
    loop {
        conn.stalled = conn.pending.len() > 1 << 20;
        if conn.stalled {
            return Ok(true); // backpressure: read again after the next writable edge
        }
        match conn.stream.read(buf) {
            Ok(0) => {
                conn.writable = true; // try to push out what is left, then close
                flush(conn)?;
                return Ok(false);
            }
            Ok(n) => {
                send(conn, &buf[..n], two_phase)?;
                if n < buf.len() {
                    return Ok(true); // short read: drained
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn main() -> io::Result<()> {
    let (host, port) = mio_selectors_bench::host_port();
    let mut poll = Poll::new()?;
    let mut listener = TcpListener::bind(mio_selectors_bench::resolve(&host, port))?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut signals = Signals::new()?;
    poll.registry()
        .register(&mut signals.0, SIGNALS, Interest::READABLE)?;
    mio_selectors_bench::say_listening(listener.local_addr()?);

    let mut conns: Slab<Conn> = Slab::new();
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; CHUNK];
    let two_phase = std::env::args().any(|a| a == "--two-phase");
    let mut dirty: Vec<usize> = Vec::new();
    loop {
        match poll.poll(&mut events, None) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        for event in events.iter() {
            match event.token() {
                SIGNALS => {
                    if signals.fired() {
                        return Ok(());
                    }
                }
                LISTENER => loop {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            let _ = stream.set_nodelay(true);
                            let entry = conns.vacant_entry();
                            let token = Token(entry.key());
                            let interest = Interest::READABLE | Interest::WRITABLE;
                            if poll
                                .registry()
                                .register(&mut stream, token, interest)
                                .is_ok()
                            {
                                entry.insert(Conn {
                                    stream,
                                    pending: Vec::new(),
                                    writable: false,
                                    stalled: false,
                                });
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => break, // EMFILE and the like: wait for the next edge
                    }
                },
                Token(key) => {
                    let Some(conn) = conns.get_mut(key) else {
                        continue;
                    };
                    let mut alive = true;
                    if event.is_writable() || event.is_write_closed() || event.is_error() {
                        conn.writable = true;
                        alive &= flush(conn).is_ok();
                    }
                    let readable =
                        event.is_readable() || event.is_read_closed() || event.is_error();
                    if alive && (readable || conn.stalled) {
                        alive = matches!(service(conn, &mut buf, two_phase), Ok(true));
                        if alive && two_phase && !conn.pending.is_empty() {
                            dirty.push(key);
                        }
                    }
                    if !alive {
                        let mut conn = conns.remove(key);
                        let _ = poll.registry().deregister(&mut conn.stream);
                    }
                }
            }
        }
        // Two-phase: the writes, after every read of the pass.
        for key in dirty.drain(..) {
            let Some(conn) = conns.get_mut(key) else {
                continue;
            };
            if flush(conn).is_err() {
                let mut conn = conns.remove(key);
                let _ = poll.registry().deregister(&mut conn.stream);
            }
        }
    }
}
