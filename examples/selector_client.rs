//! The tutorial's multiconn client, ported call by call to [`Selector`]:
//! the same loop as the Python, you do the `recv` and `send`.
//! (`multiconn_client` is the same client on the Reactor.)
//!
//! ```text
//! cargo run --example multiconn_echo                       # in one terminal
//! cargo run --example selector_client -- 127.0.0.1 65432 2
//! ```
//!
//! `start_connections` opens NUM_CONNS non-blocking connections at once and
//! registers each for `EVENT_READ | EVENT_WRITE` with its `data`;
//! `service_connection` sends the two messages and counts the echo until
//! `recv_total == msg_total`. What the Python version leaves out:
//! a connection that fails (refused, reset, closed early, echo differs) ends
//! the run with exit status 1; once everything is sent the socket stops
//! asking for `EVENT_WRITE`, so an idle connection does not spin the loop;
//! once the whole echo is back it shuts down its side and reads on to the
//! server's close, so a byte more than it sent fails the run too; each
//! address the host resolves to is tried in turn (Python's
//! `create_connection`); and the whole run has a deadline (`--timeout`).

mod common;

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::unix::io::{AsRawFd, RawFd};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio_selectors::{EventMask, Selector, EVENT_READ, EVENT_WRITE};

use common::{MulticonnArgs as Args, MESSAGES};

/// Python's `types.SimpleNamespace(connid, msg_total, recv_total, messages, outb)`,
/// plus the socket (Python's `key.fileobj`), where it goes, and the bytes
/// received, to check them.
struct Data {
    sock: TcpStream,
    addr: SocketAddr,
    /// Which of the server's addresses `addr` is (each is tried in turn).
    addr_index: usize,
    /// The whole echo is back and our side is shut down: reading on to the
    /// server's close, so that a byte more than was sent is caught.
    shut: bool,
    connid: u32,
    connecting: bool,
    msg_total: usize,
    recv_total: usize,
    messages: VecDeque<&'static [u8]>,
    outb: Vec<u8>,
    received: Vec<u8>,
}

type Sel = Selector<Data>;

fn start_connections(sel: &mut Sel, addrs: &[SocketAddr], num_conns: u32) -> Result<(), String> {
    let server_addr = addrs[0];
    for connid in 1..=num_conns {
        log::info!("Starting connection {connid} to {server_addr}");
        // Python: sock.setblocking(False); sock.connect_ex(server_addr).
        // mio's connect is non-blocking: it returns while the handshake runs.
        let sock = TcpStream::connect(server_addr)
            .map_err(|e| format!("connection {connid} to {server_addr}: {e}"))?;
        let data = Data {
            sock,
            addr: server_addr,
            addr_index: 0,
            shut: false,
            connid,
            connecting: true,
            msg_total: MESSAGES.iter().map(|m| m.len()).sum(),
            recv_total: 0,
            messages: MESSAGES.into(),
            outb: Vec::new(),
            received: Vec::new(),
        };
        let fd = data.sock.as_raw_fd();
        sel.register(fd, EVENT_READ | EVENT_WRITE, data)
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The connect of `fd` failed: connect again to the next address, or fail.
fn try_next_address(
    sel: &mut Sel,
    fd: RawFd,
    addrs: &[SocketAddr],
    e: &io::Error,
) -> Result<(), String> {
    let mut data = sel.unregister(fd).map_err(|e| e.to_string())?.data;
    let (connid, addr) = (data.connid, data.addr);
    if data.addr_index + 1 >= addrs.len() {
        return Err(format!("connection {connid} to {addr}: {e}"));
    }
    log::info!("connection {connid} to {addr}: {e}; trying the next address");
    data.addr_index += 1;
    data.addr = addrs[data.addr_index];
    data.sock = TcpStream::connect(data.addr) // the old socket closes here
        .map_err(|e| format!("connection {connid} to {}: {e}", data.addr))?;
    let fd = data.sock.as_raw_fd();
    sel.register(fd, EVENT_READ | EVENT_WRITE, data)
        .map(drop)
        .map_err(|e| e.to_string())
}

fn service_connection(
    sel: &mut Sel,
    fd: RawFd,
    mask: EventMask,
    addrs: &[SocketAddr],
) -> Result<(), String> {
    let data = &mut sel.get_key_mut(fd).map_err(|e| e.to_string())?.data;
    let (connid, addr) = (data.connid, data.addr);
    let fail = |what: &dyn std::fmt::Display| format!("connection {connid} to {addr}: {what}");

    if data.connecting {
        // The first event of a connecting socket says the handshake ended,
        // well or badly: the pending error tells which (mio's recipe).
        let failed = match data.sock.take_error() {
            Ok(Some(e)) | Err(e) => Some(e),
            Ok(None) => match data.sock.peer_addr() {
                Ok(_) => None,
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(()), // not yet
                Err(e) => Some(e),
            },
        };
        match failed {
            Some(e) => return try_next_address(sel, fd, addrs, &e),
            None => data.connecting = false,
        }
    }

    if mask.is_readable() {
        let mut recv_data = [0; 1024];
        match data.sock.read(&mut recv_data) {
            Ok(0) if data.shut => {
                // The server closed after the whole echo, and nothing more.
                log::info!("Closing connection {connid}");
                // Unregistering hands the data back; dropping it closes the socket.
                let data = sel.unregister(fd).map_err(|e| e.to_string())?.data;
                println!("connection {connid}: echoed {} bytes", data.recv_total);
                return Ok(()); // Python would go on to the write branch with a closed socket
            }
            Ok(0) => {
                let (got, total) = (data.recv_total, data.msg_total);
                return Err(fail(&format!("server closed after {got} of {total} bytes")));
            }
            Ok(n) => {
                let recv_data = &recv_data[..n];
                log::info!(
                    "Received {:?} from connection {connid}",
                    recv_data.escape_ascii().to_string()
                );
                data.recv_total += n;
                data.received.extend_from_slice(recv_data);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(fail(&e)),
        }
        if !MESSAGES.concat().starts_with(&data.received) {
            let got = data.received.escape_ascii();
            return Err(fail(&format!(
                "echo differs from what was sent: got \"{got}\""
            )));
        }
        if data.recv_total == data.msg_total && !data.shut {
            // All back. The tutorial closes here; we shut down our side and
            // read on to the server's close, so a byte more is caught.
            data.sock.shutdown(Shutdown::Write).map_err(|e| fail(&e))?;
            data.shut = true;
        }
    }

    if mask.is_writable() {
        if data.outb.is_empty() {
            if let Some(message) = data.messages.pop_front() {
                data.outb = message.to_vec();
            }
        }
        if !data.outb.is_empty() {
            log::info!(
                "Sending {:?} to connection {connid}",
                data.outb.escape_ascii().to_string()
            );
            match data.sock.write(&data.outb) {
                Ok(sent) => {
                    data.outb.drain(..sent);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(fail(&e)),
            }
        }
        if data.outb.is_empty() && data.messages.is_empty() {
            // All sent: wait for the echo only. (`modify` would want new data,
            // and ours holds the socket, so take it back and register again.)
            let data = sel.unregister(fd).map_err(|e| e.to_string())?.data;
            sel.register(fd, EVENT_READ, data)
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

fn run(args: &Args) -> Result<(), String> {
    let addrs = common::resolve_all(&args.host, args.port)?;
    let mut sel = Selector::new().map_err(|e| e.to_string())?;
    start_connections(&mut sel, &addrs, args.num_conns)?;

    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    // Python: while True: events = sel.select(timeout=1); ...
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let open = sel.get_map().map_or(0, |m| m.len());
            return Err(format!(
                "timed out after {}s: {open} of {} connections still waiting for their echo",
                args.timeout, args.num_conns
            ));
        }
        let events = sel.select(Some(left.min(Duration::from_secs(1))));
        for (fd, mask) in events.map_err(|e| e.to_string())? {
            service_connection(&mut sel, fd, mask, &addrs)?;
        }
        // Python: if not sel.get_map(): break
        if sel.get_map().is_none_or(|m| m.is_empty()) {
            break;
        }
    }
    sel.close();
    Ok(())
}

fn main() -> ExitCode {
    common::init_logging();
    let args: Args = common::parse_args_as("selector_client");
    common::exit_with("selector_client", run(&args))
}
