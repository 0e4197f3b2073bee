//! The tutorial's multiconn echo server on the Reactor.
//!
//! ```text
//! cargo run --example multiconn_echo -- [HOST PORT]    # default 127.0.0.1 65432
//! nc 127.0.0.1 65432
//! ```
//!
//! Python's version registers the listening socket with `selectors`, calls
//! `accept_wrapper` for it and `service_connection` for each client, and
//! echoes `data.outb` back as the socket becomes writable. Here the reactor
//! does the accepting, reading and writing; the handler keeps the two
//! callbacks (and logs each close). The README shows this handler, whole.

mod common;

use std::process::ExitCode;

use clap::Parser;
use mio_selectors::group::ReactorGroup;
use mio_selectors::{CloseReason, Config, ConnId, Context, Handler, InBuf, PeerAddr, Reactor};

/// TCP echo server: every byte received is sent back to its sender.
#[derive(Parser)]
#[command(name = "multiconn_echo")]
struct Args {
    /// Address to listen on (IPv4, IPv6 or `localhost`).
    #[arg(default_value = "127.0.0.1", requires = "port")]
    host: String,
    /// Port to listen on (0: any free port).
    #[arg(default_value_t = 65432)]
    port: u16,
    /// Pending output (bytes) at which a client is no longer read; at most
    /// the 1 MiB output cap.
    #[arg(long, default_value_t = Config::default().high_water, value_parser = common::count(u32::MAX.into()))]
    high_water: usize,
    /// Pending output (bytes) at which reading resumes; at most --high-water.
    #[arg(long, default_value_t = Config::default().low_water)]
    low_water: usize,
    /// Most clients at once; more are closed at once.
    #[arg(long, default_value_t = Config::default().max_connections, value_parser = common::count(u32::MAX.into()))]
    max_connections: usize,
    /// Most clients from one IP address at once [default: no limit].
    #[arg(long, value_parser = common::count(u32::MAX.into()))]
    max_per_ip: Option<usize>,
    /// Seconds a closing client may take no byte of its pending echo before
    /// it is given up on (reset, the rest dropped); a slow reader gets all.
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = common::secs)]
    flush_timeout: std::time::Duration,
    #[command(flatten)]
    tls: common::tls::TlsArgs,
    /// Also serve `GET /metrics` (Prometheus text format) on HOST:PORT [default: off].
    #[arg(long, value_name = "HOST:PORT", value_parser = common::host_port)]
    metrics: Option<std::net::SocketAddr>,
    #[command(flatten)]
    group: common::GroupArgs,
}

struct Echo;

impl Handler for Echo {
    type Data = PeerAddr;

    fn accept_wrapper(
        &mut self,
        _: &mut Context<'_, PeerAddr>,
        _: ConnId,
        peer: &PeerAddr,
    ) -> Option<PeerAddr> {
        log::info!("Accepted connection from {peer}");
        Some(peer.clone()) // the connection's data: Python's `key.data`
    }

    fn service_connection(
        &mut self,
        cx: &mut Context<'_, PeerAddr>,
        id: ConnId,
        _: &mut PeerAddr,
        inb: &mut InBuf,
    ) {
        let _ = cx.send_from(id, inb); // Python: data.outb += recv_data
    }

    fn connection_lost(
        &mut self,
        _: &mut Context<'_, PeerAddr>,
        _: ConnId,
        peer: PeerAddr,
        why: &CloseReason,
    ) {
        log::info!("Closing connection to {peer} ({why})");
    }
}

fn main() -> ExitCode {
    common::init_logging();
    let args: Args = common::parse_args();
    let config = Config {
        high_water: args.high_water,
        low_water: args.low_water,
        max_connections: args.max_connections,
        max_per_ip: args.max_per_ip,
        flush_timeout: args.flush_timeout,
        ..Config::default()
    };
    common::check_water_marks::<Args>(&config);
    if args.group.is_group() {
        if args.tls.tls_cert.is_some() || args.metrics.is_some() {
            common::usage_error::<Args>(
                "--tls-cert and --metrics run on one reactor for now; leave out --reactors",
            );
        }
        // A reactor per thread, each its own Echo; the limits hold for all.
        let group = ReactorGroup::new(args.group.options(), config);
        return common::serve_group("multiconn_echo", group, &args.host, args.port, |_| |_| Echo);
    }
    // Certificate problems are reported before anything binds.
    let tls = match args.tls.server_config() {
        Ok(tls) => tls,
        Err(e) => {
            eprintln!("multiconn_echo: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addrs = match common::resolve_all(&args.host, args.port) {
        Ok(addrs) => addrs,
        Err(e) => return common::exit_with("multiconn_echo", Err(e)),
    };
    common::serve_with("multiconn_echo", Reactor::new(Echo, config), |reactor| {
        let id = reactor.listen(&addrs[..])?;
        if let Some(tls) = &tls {
            reactor.wrap_listener(id, args.tls.wrap(tls))?;
        }
        let mut ready = reactor.local_addr(id)?.to_string();
        if let Some(addr) = args.metrics {
            let bound = reactor.serve_metrics(addr)?;
            ready.push_str(&format!("\nmetrics on http://{bound}/metrics"));
        }
        Ok(ready)
    })
}
