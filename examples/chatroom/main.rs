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
//! With `--redis redis://HOST:PORT [--room NAME]` several chatroom
//! processes form one room through Redis pub/sub (`federation/`,
//! `docs/federation.md`); each may run `--reactors N`, reactor 0 then
//! sequencing its reactors' part of the room through Redis (`chat/group.rs`).
//!
//! Python's version starts a thread per client and `sendall`s to a shared
//! list; here one reactor thread serves everyone, and a slow or hostile
//! client is cut off by a limit instead of stalling the others.

mod chat;
#[path = "../common/mod.rs"]
mod common;
mod web;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use chat::federation::Federation;
use chat::{ChatConfig, ChatServer, Client, FedSetup, GroupRoom, Shared};
use clap::Parser;
use mio_selectors::group::ReactorGroup;
use mio_selectors::redis::RedisUrl;
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
    /// Lines read per client per second (0.01 to a million).
    #[arg(long, default_value_t = ChatConfig::default().lines_per_sec, value_parser = common::ranged(0.01, 1e6))]
    rate: f64,
    /// Lines a client may send in a burst (1 to a million).
    #[arg(long, default_value_t = ChatConfig::default().burst, value_parser = common::ranged(1.0, 1e6))]
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
    #[command(flatten)]
    tls: common::tls::TlsArgs,
    #[command(flatten)]
    web: web::WebArgs,
    /// Share the room with every chatroom using this Redis:
    /// redis://[user[:password]@]host[:port][/db].
    #[arg(long, value_name = "URL", value_parser = parse_redis_url)]
    redis: Option<RedisUrl>,
    /// The room's name in Redis, so several rooms can share one Redis
    /// (1 to 64 of A-Z a-z 0-9 _ . -).
    #[arg(long, value_name = "NAME", default_value = "lobby", value_parser = parse_room)]
    room: String,
    /// Also serve `GET /metrics` (Prometheus text format) on HOST:PORT [default: off].
    #[arg(long, value_name = "HOST:PORT", value_parser = common::host_port)]
    metrics: Option<std::net::SocketAddr>,
    #[command(flatten)]
    group: common::GroupArgs,
}

fn parse_redis_url(s: &str) -> Result<RedisUrl, String> {
    RedisUrl::parse(s).map_err(|e| e.to_string())
}

fn parse_room(s: &str) -> Result<String, String> {
    let ok = (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(s.to_string())
    } else {
        Err("a room name is 1 to 64 of A-Z a-z 0-9 _ . -".into())
    }
}

fn main() -> ExitCode {
    common::init_logging();
    let args: Args = common::parse_args();
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
    // Certificate problems are reported before anything binds.
    let tls = match args.tls.server_config() {
        Ok(tls) => tls,
        Err(e) => {
            eprintln!("chatroom: {e}");
            return ExitCode::FAILURE;
        }
    };
    // A host that does not resolve is named (exit 1); each of its
    // addresses is tried in turn.
    let addrs = match common::resolve_all(&args.host, args.port) {
        Ok(addrs) => addrs,
        Err(e) => return common::exit_with("chatroom", Err(e)),
    };
    if args.group.is_group() {
        // One room across the reactors, sequenced by reactor 0: chat/group.rs.
        let max_line = config.max_line;
        let group = ReactorGroup::new(args.group.options(), reactor_config);
        let bind = |group: &mut ReactorGroup| {
            let addr = &addrs[..];
            let bound = match &tls {
                Some(tls) => group.listen_wrapped(addr, args.tls.wrap(tls))?,
                None => group.listen(addr)?,
            };
            let mut lines = vec![format!("listening on {bound}")];
            lines.extend(web::listen_group(group, &args.web, tls.clone(), max_line)?);
            if let Some(addr) = args.metrics {
                let bound = group.serve_metrics(addr)?; // every reactor's counters
                lines.push(format!("metrics on http://{bound}/metrics"));
            }
            Ok(lines)
        };
        if let Some(url) = args.redis.clone() {
            // And across the instances: reactor 0 sequences the room through
            // Redis, and prints the readiness lines once linked (or after
            // its wait), as one reactor does.
            let config = config.clone();
            let result = group.and_then(|mut group| {
                let ready = bind(&mut group)?.join("\n");
                group.stop_on_signals()?;
                let room = args.room.clone();
                let fed = FedSetup { url, room, ready };
                let shared = Shared::federated(group.reactors(), &config, fed);
                let theirs = Arc::clone(&shared);
                let running = group.start(move |i| {
                    let part = GroupRoom::new(i, Arc::clone(&theirs));
                    ChatServer::new(config.clone()).with_group(part)
                })?;
                running.join()?;
                Ok(shared.fatal())
            });
            return match result {
                Ok(None) => ExitCode::SUCCESS,
                Ok(Some(why)) => {
                    eprintln!("chatroom: {why}");
                    ExitCode::FAILURE
                }
                Err(e) => {
                    eprintln!("chatroom: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        return common::serve_group_lines("chatroom", group, bind, |n| {
            let shared = Shared::new(n, &config);
            move |i| ChatServer::new(config.clone()).with_group(GroupRoom::new(i, shared.clone()))
        });
    }
    let max_line = config.max_line;
    let server = ChatServer::new(config);
    // Every listener, and the readiness lines in the contract's order.
    let bind = |reactor: &mut Reactor<ChatServer>| -> mio_selectors::Result<String> {
        let id = reactor.listen(&addrs[..])?;
        if let Some(tls) = &tls {
            reactor.wrap_listener(id, args.tls.wrap(tls))?;
        }
        let mut ready = format!("listening on {}", reactor.local_addr(id)?);
        if let Some(line) = web::listen(reactor, &args.web, tls.clone(), max_line)? {
            ready.push('\n');
            ready.push_str(&line);
        }
        if let Some(addr) = args.metrics {
            let bound = reactor.serve_metrics(addr)?;
            ready.push_str(&format!("\nmetrics on http://{bound}/metrics"));
        }
        Ok(ready)
    };
    let Some(url) = args.redis.clone() else {
        let reactor = Reactor::new(server, reactor_config);
        return common::serve_lines("chatroom", reactor, |reactor| Ok(vec![bind(reactor)?]));
    };
    // With --redis the readiness line waits for the link (a few seconds at
    // most): a client that comes at once is in the shared room at once.
    let result = Reactor::new(server, reactor_config)
        .map_err(Box::<dyn std::error::Error>::from)
        .and_then(|mut reactor| {
            let ready = bind(&mut reactor)?;
            let mut fed = Federation::new(url, &args.room, ready, Client::redis);
            reactor.with_context(|cx| fed.start(cx));
            reactor.handler_mut().set_federation(fed);
            reactor.stop_on_signals()?;
            reactor.run()?;
            match reactor.handler().fatal() {
                Some(why) => Err(why.into()),
                None => Ok(()),
            }
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chatroom: {e}");
            ExitCode::FAILURE
        }
    }
}
