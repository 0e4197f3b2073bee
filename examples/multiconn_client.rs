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

/// Python's `types.SimpleNamespace(connid, msg_total, recv_total, ...)`.
struct Data {
    connid: u32,
    received: Vec<u8>,
}

/// Counts finished connections; the first failure ends the run.
struct Client {
    server: SocketAddr,
    expected: Vec<u8>,
    open: u32,
    failure: Option<String>,
}

impl Client {
    fn fail(&mut self, cx: &mut Context<'_, Data>, why: String) {
        self.failure.get_or_insert(why);
        cx.stop();
    }
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
        if data.received.len() >= self.expected.len() {
            log::info!("Closing connection {}", data.connid);
            cx.close(id);
        }
    }

    fn connection_lost(
        &mut self,
        cx: &mut Context<'_, Data>,
        _: ConnId,
        data: Data,
        reason: &CloseReason,
    ) {
        let (connid, server) = (data.connid, self.server);
        match reason {
            CloseReason::Closed if data.received == self.expected => {
                println!("connection {connid}: echoed {} bytes", data.received.len());
                self.open -= 1;
                if self.open == 0 {
                    cx.stop();
                }
            }
            CloseReason::Closed => {
                let got = data.received.escape_ascii();
                self.fail(
                    cx,
                    format!(
                        "connection {connid} to {server}: echo differs from what was sent: got \"{got}\""
                    ),
                );
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
        let (connid, server) = (data.connid, self.server);
        self.fail(cx, format!("connection {connid} to {server}: {reason}"));
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
    let server_addr = common::resolve(&args.host, args.port)?;
    let client = Client {
        server: server_addr,
        expected: MESSAGES.concat(),
        open: args.num_conns,
        failure: None,
    };
    let mut reactor = Reactor::new(client, Config::default()).map_err(|e| e.to_string())?;
    // start_connections(host, port, num_conns)
    for connid in 1..=args.num_conns {
        log::info!("Starting connection {connid} to {server_addr}");
        let data = Data {
            connid,
            received: Vec::new(),
        };
        let id = reactor
            .connect(server_addr, data)
            .map_err(|e| format!("connection {connid} to {server_addr}: {e}"))?;
        reactor
            .with_context(|cx| MESSAGES.iter().try_for_each(|m| cx.send(id, m)))
            .map_err(|e| e.to_string())?;
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
