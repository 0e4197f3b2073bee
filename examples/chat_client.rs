//! The tutorials' chat client: one `select` loop over stdin and the socket.
//!
//! ```text
//! cargo run --example chat_client -- HOST PORT
//! ```
//!
//! Python's version is `select.select([sys.stdin, server], [], [])`, then
//! `recv` from whichever is ready. Ours registers both with a [`Selector`],
//! prints each line the server sends, and sends each line typed. EOF on
//! stdin (or `/quit`) leaves cleanly; so does the server closing.

mod common;

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::AsFd;
use std::os::unix::io::AsRawFd;
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::time::Duration;

use mio_selectors::{Selector, EVENT_READ, EVENT_WRITE};

/// Chat client: prints what the server sends, sends what you type.
#[derive(clap::Parser)]
#[command(name = "chat_client")]
struct Args {
    /// Server address.
    host: String,
    /// Server port.
    port: u16,
}

/// What a registration is (Python: the socket itself in `sockets_list`).
enum Source {
    Stdin(File),
    Server,
}

fn main() -> ExitCode {
    common::init_logging();
    let args: Args = common::parse_args();
    let server = match connect(&args.host, args.port) {
        Ok(server) => server,
        Err(e) => {
            eprintln!(
                "chat_client: cannot connect to {}:{}: {e}",
                args.host, args.port
            );
            return ExitCode::FAILURE;
        }
    };
    match chat(server) {
        Ok(()) => {
            eprintln!("chat_client: connection closed by the server");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("chat_client: {e}");
            ExitCode::FAILURE
        }
    }
}

fn connect(host: &str, port: u16) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
    for addr in (host, port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(10)) {
            Ok(sock) => return Ok(sock),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Runs until the server closes the connection.
fn chat(mut server: TcpStream) -> mio_selectors::Result<()> {
    server.set_nonblocking(true)?;
    let mut sel = Selector::new()?;
    sel.register(&server, EVENT_READ, Source::Server)?;
    let stdin = stdin_source()?;
    sel.register(stdin.as_raw_fd(), EVENT_READ, Source::Stdin(stdin))?;

    let mut outb: Vec<u8> = Vec::new(); // typed, not yet sent
    let mut stdin_done = false;
    let mut buf = vec![0; 64 * 1024];
    loop {
        for (fd, mask) in sel.select(None)? {
            match &mut sel.get_key_mut(fd)?.data {
                Source::Server => {
                    if mask.is_readable() {
                        match server.read(&mut buf) {
                            Ok(0) => return Ok(()),
                            Ok(n) => {
                                let mut out = io::stdout().lock();
                                out.write_all(&buf[..n])?;
                                out.flush()?;
                            }
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                            Err(e) => return Err(e.into()),
                        }
                    }
                    if mask.is_writable() {
                        match server.write(&outb) {
                            Ok(n) => drop(outb.drain(..n)),
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                            Err(e) => return Err(e.into()),
                        }
                    }
                }
                Source::Stdin(stdin) => match stdin.read(&mut buf)? {
                    0 => {
                        // EOF: leave like Ctrl-D in the tutorial, once the
                        // typed lines are out.
                        sel.unregister(fd)?;
                        stdin_done = true;
                    }
                    n => outb.extend_from_slice(&buf[..n]),
                },
            }
        }
        // Write interest only while there is something to write.
        let events = if outb.is_empty() {
            EVENT_READ
        } else {
            EVENT_READ | EVENT_WRITE
        };
        if sel.get_key(&server)?.events() != events {
            sel.modify(&server, events, Source::Server)?;
        }
        if stdin_done && outb.is_empty() {
            stdin_done = false;
            server.shutdown(std::net::Shutdown::Write)?; // the server closes after our EOF
        }
    }
}

/// Stdin as a pollable file. A pipe or terminal registers with epoll as it
/// is; a regular file cannot (`EPERM`), so a thread copies it into a socket
/// pair instead.
fn stdin_source() -> io::Result<File> {
    let fd = io::stdin().as_fd().try_clone_to_owned()?;
    let probe = mio::Poll::new()?;
    let pollable = probe
        .registry()
        .register(
            &mut mio::unix::SourceFd(&fd.as_raw_fd()),
            mio::Token(0),
            mio::Interest::READABLE,
        )
        .is_ok();
    if pollable {
        return Ok(File::from(fd));
    }
    let (mut writer, reader) = UnixStream::pair()?;
    std::thread::spawn(move || io::copy(&mut io::stdin().lock(), &mut writer));
    Ok(File::from(std::os::fd::OwnedFd::from(reader)))
}
