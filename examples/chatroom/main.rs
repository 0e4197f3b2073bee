//! The tutorials' chatroom on the Reactor: each line a client sends goes to
//! every other client as `<NAME> TEXT`. Protocol: `docs/chat-protocol.md`.
//!
//! The chat logic is `chat/`: a [`Handler`](mio_selectors::Handler)
//! (`chat/server.rs`) and its limits (`chat/config.rs`), built only on the
//! library's public API. This file is the command line.
//!
//! ```text
//! cargo run --example chatroom -- [HOST PORT]    # default 127.0.0.1 8000
//! nc 127.0.0.1 8000          # in two terminals, then type
//! ```
//!
//! Python's version starts a thread per client and `sendall`s to a shared
//! list; here one reactor thread serves everyone, and a slow or hostile
//! client is cut off by a limit instead of stalling the others.

mod chat;
#[path = "../common/mod.rs"]
mod common;

use std::process::ExitCode;
use std::time::Duration;

use chat::{ChatConfig, ChatServer};
use clap::Parser;
use mio_selectors::{Config, Reactor};

/// Chat server: relays each line to every other client.
#[derive(Parser)]
#[command(name = "chatroom")]
struct Args {
    /// Address to listen on (IPv4, IPv6 or `localhost`).
    #[arg(default_value = "127.0.0.1", requires = "port")]
    host: String,
    /// Port to listen on (0: any free port).
    #[arg(default_value_t = 8000)]
    port: u16,
    /// Longest line, in bytes before the newline (at most 16 MiB).
    #[arg(long, default_value_t = ChatConfig::default().max_line, value_parser = common::count(16 << 20))]
    max_line: usize,
    /// Pending output per client, in bytes, before it is disconnected as too slow (at most 1 GiB).
    #[arg(long, default_value_t = ChatConfig::default().max_output, value_parser = common::count(1 << 30))]
    max_output: usize,
    /// Most clients connected at once.
    #[arg(long, default_value_t = ChatConfig::default().max_clients, value_parser = common::count(u32::MAX.into()))]
    max_clients: usize,
    /// Lines read per client per second.
    #[arg(long, default_value_t = ChatConfig::default().lines_per_sec, value_parser = common::positive)]
    rate: f64,
    /// Lines a client may send in a burst (at least 1).
    #[arg(long, default_value_t = ChatConfig::default().burst, value_parser = common::positive)]
    burst: f64,
    /// Most clients from one IP address at once; more are closed at once [default: no limit].
    #[arg(long, value_parser = common::count(u32::MAX.into()))]
    max_per_ip: Option<usize>,
    /// Seconds a partial line (no newline) may wait before the client is disconnected (at most a year).
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = common::secs)]
    partial_timeout: Duration,
    /// Join and leave notices said one by one per second; the rest of the second's are summed up.
    #[arg(long, default_value_t = ChatConfig::default().notices_per_sec, value_parser = clap::value_parser!(u32).range(1..))]
    notices_per_sec: u32,
}

fn main() -> ExitCode {
    common::init_logging();
    let args: Args = common::parse_args();
    if args.burst < 1.0 {
        common::usage_error::<Args>(format!("--burst {} is below 1", args.burst));
    }
    let config = ChatConfig {
        max_line: args.max_line,
        max_output: args.max_output,
        max_clients: args.max_clients,
        lines_per_sec: args.rate,
        burst: args.burst,
        partial_timeout: args.partial_timeout,
        notices_per_sec: args.notices_per_sec,
    };
    let reactor_config = Config {
        max_per_ip: args.max_per_ip,
        ..config.reactor_config()
    };
    let reactor = Reactor::new(ChatServer::new(config), reactor_config);
    common::serve("chatroom", reactor, &args.host, args.port)
}
