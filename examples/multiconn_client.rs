//! The tutorial's multiconn client on the Reactor: NUM_CONNS connections at
//! once, each sends `Message 1 from client.` and `Message 2 from client.`
//! and reads its echo back.
//!
//! ```text
//! cargo run --example multiconn_echo                       # in one terminal
//! cargo run --example multiconn_client -- 127.0.0.1 65432 2
//! ```
//!
//! Python's `start_connections` does `connect_ex` on non-blocking sockets
//! and registers them; here `Reactor::connect` does that, and the two
//! messages are queued at once: the reactor sends them when the connect
//! completes. `service_connection` counts the echo as in the tutorial.
//! (`selector_client` is the same client ported call by call to `Selector`.)

mod common;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use mio_selectors::{CloseReason, Config, ConnId, Context, Handler, InBuf, Reactor};

use common::{MulticonnArgs as Args, MESSAGES};

/// Python's `types.SimpleNamespace(connid, msg_total, recv_total, ...)`,
/// plus which of the server's addresses it is connecting to.
struct Data {
    connid: u32,
    addr: usize,
    received: Vec<u8>,
}

/// Counts finished connections; the first failure ends the run.
struct Client {
    /// Every address the host resolved to, tried in turn (Python's
    /// `socket.create_connection`).
    addrs: Vec<SocketAddr>,
    expected: Vec<u8>,
    open: u32,
    failure: Option<String>,
}

impl Client {
    /// The first failure ends the run at once: the other connections are
    /// reset, not flushed (there is nothing left worth waiting for).
    fn fail(&mut self, cx: &mut Context<'_, Data>, why: String) {
        self.failure.get_or_insert(why);
        let ids: Vec<ConnId> = cx.ids().collect();
        for id in ids {
            cx.abort(id);
        }
        cx.stop();
    }
}

/// Opens connection `connid` to `addrs[addr]` and queues both messages:
/// the reactor sends them once the connect completes.
fn start(
    cx: &mut Context<'_, Data>,
    addrs: &[SocketAddr],
    connid: u32,
    addr: usize,
) -> Result<(), String> {
    let server = addrs[addr];
    log::info!("Starting connection {connid} to {server}");
    let data = Data {
        connid,
        addr,
        received: Vec::new(),
    };
    let fail = |e| format!("connection {connid} to {server}: {e}");
    let id = cx.connect(server, data).map_err(fail)?;
    MESSAGES
        .iter()
        .try_for_each(|m| cx.send(id, m))
        .map_err(fail)
}

impl Handler for Client {
    type Data = Data;

    fn service_connection(
        &mut self,
        cx: &mut Context<'_, Data>,
        id: ConnId,
        data: &mut Data,
        inb: &mut InBuf,
    ) {
        log::info!(
            "Received {:?} from connection {}",
            inb.escape_ascii().to_string(),
            data.connid
        );
        data.received.extend_from_slice(inb); // data.recv_total += len(recv_data)
        inb.clear();
        let (got, want) = (&data.received, &self.expected);
        if !want.starts_with(got) {
            let why = format!(
                "connection {} to {}: echo differs from what was sent: got \"{}\"",
                data.connid,
                self.addrs[data.addr],
                got.escape_ascii()
            );
            return self.fail(cx, why);
        }
        if got.len() == want.len() {
            // All back. The tutorial closes here; we half-close and wait for
            // the server's close, so a byte more than was sent is caught.
            log::info!("Closing connection {}", data.connid);
            cx.write_eof(id);
        }
    }

    fn connection_lost(
        &mut self,
        cx: &mut Context<'_, Data>,
        _: ConnId,
        data: Data,
        reason: &CloseReason,
    ) {
        if self.failure.is_some() {
            return; // reset by `fail`
        }
        let (connid, server) = (data.connid, self.addrs[data.addr]);
        match reason {
            CloseReason::PeerClosed if data.received == self.expected => {
                println!("connection {connid}: echoed {} bytes", data.received.len());
                self.open -= 1;
                if self.open == 0 {
                    cx.stop();
                }
            }
            CloseReason::PeerClosed => {
                let (got, total) = (data.received.len(), self.expected.len());
                self.fail(
                    cx,
                    format!("connection {connid} to {server}: server closed after {got} of {total} bytes"),
                );
            }
            other => self.fail(cx, format!("connection {connid} to {server}: {other}")),
        }
    }

    fn connect_failed(
        &mut self,
        cx: &mut Context<'_, Data>,
        _: ConnId,
        data: Data,
        reason: &CloseReason,
    ) {
        if self.failure.is_some() {
            return; // reset by `fail`
        }
        let (connid, server) = (data.connid, self.addrs[data.addr]);
        match reason {
            CloseReason::ConnectFailed(e) if data.addr + 1 < self.addrs.len() => {
                log::info!("connection {connid} to {server}: {e}; trying the next address");
                if let Err(why) = start(cx, &self.addrs, connid, data.addr + 1) {
                    self.fail(cx, why);
                }
            }
            other => self.fail(cx, format!("connection {connid} to {server}: {other}")),
        }
    }

    fn on_timer(&mut self, cx: &mut Context<'_, Data>, _: Option<(ConnId, &mut Data)>, _: u64) {
        let open = self.open;
        self.fail(
            cx,
            format!("timed out: {open} connections still waiting for their echo"),
        );
    }
}

fn run(args: &Args) -> Result<(), String> {
    let client = Client {
        addrs: common::resolve_all(&args.host, args.port)?,
        expected: MESSAGES.concat(),
        open: args.num_conns,
        failure: None,
    };
    let mut reactor = Reactor::new(client, Config::default()).map_err(|e| e.to_string())?;
    // start_connections(host, port, num_conns)
    let addrs = reactor.handler().addrs.clone();
    for connid in 1..=args.num_conns {
        reactor.with_context(|cx| start(cx, &addrs, connid, 0))?;
    }
    reactor.with_context(|cx| cx.call_later(Duration::from_secs(args.timeout), None, 0));
    reactor.run().map_err(|e| e.to_string())?;
    match reactor.handler_mut().failure.take() {
        Some(why) => Err(why),
        None => Ok(()),
    }
}

fn main() -> ExitCode {
    common::init_logging();
    let args: Args = common::parse_args_as("multiconn_client");
    common::exit_with("multiconn_client", run(&args))
}
