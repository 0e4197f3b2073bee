//! Shared bits of the benchmark binaries: the servers' command line and the
//! counting allocator that `ours_echo` installs.

pub mod alloc;

use std::net::SocketAddr;

/// `HOST PORT` (both or neither; default 127.0.0.1 0) from the command line,
/// skipping flags (`--x` and the word after it).
pub fn host_port() -> (String, u16) {
    let mut pos = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a.starts_with("--") {
            args.next();
        } else {
            pos.push(a);
        }
    }
    match pos.as_slice() {
        [] => ("127.0.0.1".into(), 0),
        [h, p] => (h.clone(), p.parse().expect("PORT must be a number")),
        _ => {
            eprintln!("usage: SERVER [HOST PORT]");
            std::process::exit(2)
        }
    }
}

/// The value of flag `--name VALUE`, if given.
pub fn flag(name: &str) -> Option<String> {
    let mut args = std::env::args();
    while let Some(a) = args.next() {
        if a == name {
            return args.next();
        }
    }
    None
}

/// The first address `host:port` resolves to.
pub fn resolve(host: &str, port: u16) -> SocketAddr {
    use std::net::ToSocketAddrs;
    (host, port)
        .to_socket_addrs()
        .expect("address resolves")
        .next()
        .expect("an address")
}

/// Prints the contract's readiness line and flushes.
pub fn say_listening(addr: impl std::fmt::Display) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "listening on {addr}");
    let _ = out.flush();
}
