//! The tutorials' UDP echo server on the Reactor: each datagram goes back to
//! its sender unchanged.
//!
//! ```text
//! cargo run --example udp_echo -- [HOST PORT]      # default 127.0.0.1 65432
//! nc -u 127.0.0.1 65432
//! ```
//!
//! Python's version is `data, addr = s.recvfrom(1024)` then
//! `s.sendto(data, addr)` in a loop. Here the reactor reads every datagram
//! (up to 65,507 bytes, none truncated) and `datagram_received` sends it
//! back; a reply the kernel cannot take at once waits in a bounded queue.

mod common;

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use mio_selectors::reactor::UdpId;
use mio_selectors::{Config, Context, Handler, Reactor};

/// UDP echo server: every datagram is sent back to its sender.
#[derive(Parser)]
#[command(name = "udp_echo")]
struct Args {
    /// Address to bind (IPv4, IPv6 or `localhost`).
    #[arg(default_value = "127.0.0.1", requires = "port")]
    host: String,
    /// Port to bind (0: any free port).
    #[arg(default_value_t = 65432)]
    port: u16,
}

struct UdpEcho;

impl Handler for UdpEcho {
    type Data = ();

    fn datagram_received(
        &mut self,
        cx: &mut Context<'_, ()>,
        udp: UdpId,
        data: &[u8],
        from: SocketAddr,
    ) {
        // Python: s.sendto(data, addr)
        if let Err(e) = cx.send_to(udp, data, from) {
            log::warn!("reply to {from} dropped: {e}");
        }
    }
}

fn main() -> ExitCode {
    common::init_logging();
    let args: Args = common::parse_args();
    let addrs = match common::resolve_all(&args.host, args.port) {
        Ok(addrs) => addrs,
        Err(e) => return common::exit_with("udp_echo", Err(e)),
    };
    common::serve_with(
        "udp_echo",
        Reactor::new(UdpEcho, Config::default()),
        |reactor| {
            let udp = reactor.bind_udp(&addrs[..])?;
            Ok(reactor.udp_addr(udp)?.to_string())
        },
    )
}
