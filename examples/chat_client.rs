//! The tutorials' chat client: stdin and the server socket in one reactor.
//!
//! ```text
//! cargo run --example chat_client -- HOST PORT
//! ```
//!
//! Python's version is `select.select([sys.stdin, server], [], [])`, then
//! `recv` from whichever is ready. Ours connects with `Reactor::connect`,
//! registers stdin with `register_fd`, prints each line the server sends and
//! sends each line typed. EOF on stdin (Ctrl-D) sends FIN and waits for the
//! server to close; `/quit` makes the server say `* bye` and close; Ctrl-C
//! (SIGINT) or SIGTERM leaves the same way (FIN, then the server's close, at
//! most 2 s) and exits 0. Each address the host resolves to is tried in
//! turn, as Python's `socket.create_connection` does.

mod common;

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::ExitCode;

use mio_selectors::reactor::SourceId;
use mio_selectors::{CloseReason, Config, ConnId, Context, Handler, InBuf, Reactor, EVENT_READ};

/// Chat client: prints what the server sends, sends what you type.
#[derive(clap::Parser)]
#[command(name = "chat_client")]
struct Args {
    /// Server address.
    host: String,
    /// Server port.
    port: u16,
}

struct Client {
    /// `HOST:PORT` as given, for messages.
    target: String,
    /// Every address the host resolved to, tried in turn (Python's
    /// `socket.create_connection`), and the one being tried.
    addrs: Vec<SocketAddr>,
    addr: usize,
    server: Option<ConnId>,
    stdin: File,
    /// `None` while stdin is unregistered (output backed up, or EOF).
    stdin_source: Option<SourceId>,
    stdin_eof: bool,
    /// How the session ended: `Ok` when the server closed it.
    outcome: Option<Result<(), String>>,
}

impl Handler for Client {
    type Data = ();

    // Python: if socks == server: message = socks.recv(2048); print(message)
    fn service_connection(
        &mut self,
        _: &mut Context<'_, ()>,
        _: ConnId,
        _: &mut (),
        inb: &mut InBuf,
    ) {
        let mut out = io::stdout().lock();
        let _ = out.write_all(inb).and_then(|()| out.flush());
        inb.clear();
    }

    // Python: else: message = sys.stdin.readline(); server.send(message)
    fn source_ready(
        &mut self,
        cx: &mut Context<'_, ()>,
        source: SourceId,
        _: mio_selectors::EventMask,
    ) {
        let Some(server) = self.server else { return };
        if cx.is_writing_paused(server) || !cx.is_open(server) {
            // The server is not taking our lines (yet): stop reading stdin
            // until `resume_writing` (or `connection_made`), instead of
            // queueing without bound, or for a connect that may fail and
            // move on to the next address.
            cx.unregister_source(source);
            self.stdin_source = None;
            return;
        }
        let mut buf = [0; 16 * 1024];
        match self.stdin.read(&mut buf) {
            Ok(0) | Err(_) => {
                cx.unregister_source(source);
                self.stdin_source = None;
                self.stdin_eof = true;
                cx.write_eof(server); // the server closes after our EOF
            }
            Ok(n) => {
                let _ = cx.send(server, &buf[..n]);
            }
        }
    }

    fn resume_writing(&mut self, cx: &mut Context<'_, ()>, _: ConnId, _: &mut ()) {
        if self.stdin_source.is_none() && !self.stdin_eof {
            self.stdin_source = cx.register_fd(self.stdin.as_raw_fd(), EVENT_READ).ok();
        }
    }

    fn connection_made(&mut self, cx: &mut Context<'_, ()>, id: ConnId, data: &mut ()) {
        self.resume_writing(cx, id, data); // stdin, if it waited for the connect
    }

    fn connection_lost(
        &mut self,
        cx: &mut Context<'_, ()>,
        _: ConnId,
        _: (),
        reason: &CloseReason,
    ) {
        self.outcome = Some(match reason {
            // Shutdown: Ctrl-C or SIGTERM, the user leaving (after our FIN
            // and the server's, or the shutdown's 2 s).
            CloseReason::PeerClosed | CloseReason::Closed | CloseReason::Shutdown => Ok(()),
            other => Err(format!("connection to {} lost: {other}", self.target)),
        });
        cx.stop();
    }

    fn connect_failed(&mut self, cx: &mut Context<'_, ()>, _: ConnId, _: (), reason: &CloseReason) {
        if let CloseReason::ConnectFailed(e) = reason {
            if self.addr + 1 < self.addrs.len() {
                log::info!("{}: {e}; trying the next address", self.addrs[self.addr]);
                self.addr += 1;
                match cx.connect(self.addrs[self.addr], ()) {
                    Ok(id) => return self.server = Some(id),
                    Err(e) => {
                        self.outcome = Some(Err(format!("cannot connect to {}: {e}", self.target)));
                        return cx.stop();
                    }
                }
            }
        }
        if matches!(reason, CloseReason::Shutdown) {
            self.outcome = Some(Ok(())); // Ctrl-C while connecting: leaving
            return cx.stop();
        }
        let why = match reason {
            CloseReason::ConnectFailed(e) => e.to_string(),
            other => other.to_string(),
        };
        self.outcome = Some(Err(format!("cannot connect to {}: {why}", self.target)));
        cx.stop();
    }
}

/// Stdin as a pollable file. A pipe or terminal registers with epoll as it
/// is; a regular file cannot (`EPERM`), so a thread copies it into a socket
/// pair instead.
fn stdin_file(reactor: &mut Reactor<Client>) -> io::Result<(File, SourceId)> {
    let fd: OwnedFd = io::stdin().as_fd().try_clone_to_owned()?;
    if let Ok(id) = reactor.register_fd(fd.as_raw_fd(), EVENT_READ) {
        return Ok((File::from(fd), id));
    }
    let (mut writer, reader) = UnixStream::pair()?;
    std::thread::spawn(move || io::copy(&mut io::stdin().lock(), &mut writer));
    let id = reactor
        .register_fd(reader.as_raw_fd(), EVENT_READ)
        .map_err(io::Error::other)?;
    Ok((File::from(OwnedFd::from(reader)), id))
}

fn run(args: &Args) -> Result<(), String> {
    let target = format!("{}:{}", args.host, args.port);
    let addrs = common::resolve_all(&args.host, args.port)?;
    let addr = addrs[0];
    let client = Client {
        target: target.clone(),
        addrs,
        addr: 0,
        server: None,
        stdin: File::from(
            io::stdin()
                .as_fd()
                .try_clone_to_owned()
                .map_err(|e| e.to_string())?,
        ),
        stdin_source: None,
        stdin_eof: false,
        outcome: None,
    };
    let mut reactor = Reactor::new(client, Config::default()).map_err(|e| e.to_string())?;
    reactor.stop_on_signals().map_err(|e| e.to_string())?;
    let server = reactor
        .connect(addr, ())
        .map_err(|e| format!("cannot connect to {target}: {e}"))?;
    let (stdin, source) = stdin_file(&mut reactor).map_err(|e| format!("stdin: {e}"))?;
    let client = reactor.handler_mut();
    client.server = Some(server);
    client.stdin = stdin;
    client.stdin_source = Some(source);
    reactor.run().map_err(|e| e.to_string())?;
    match reactor.handler_mut().outcome.take() {
        Some(Err(e)) => Err(e),
        _ => Ok(()),
    }
}

fn main() -> ExitCode {
    common::init_logging();
    let args: Args = common::parse_args();
    match run(&args) {
        Ok(()) => {
            eprintln!("chat_client: connection closed");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("chat_client: {e}");
            ExitCode::FAILURE
        }
    }
}
