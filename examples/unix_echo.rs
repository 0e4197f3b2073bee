//! The multiconn echo server on a Unix stream socket: the same handler as
//! `multiconn_echo`, another address family (Python: `socket.AF_UNIX`).
//!
//! ```text
//! cargo run --example unix_echo -- [PATH]   # default $TMPDIR/mio-selectors-echo.sock
//! nc -U /tmp/mio-selectors-echo.sock
//! ```
//!
//! A stale socket file left by a crash is removed at start; the server
//! removes its own at exit.

mod common;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use mio_selectors::{Config, ConnId, Context, Handler, InBuf, PeerAddr, Reactor};

/// Echo server on a Unix stream socket.
#[derive(Parser)]
#[command(name = "unix_echo")]
struct Args {
    /// Socket path [default: $TMPDIR (or /tmp)/mio-selectors-echo.sock]
    path: Option<PathBuf>,
}

struct Echo;

impl Handler for Echo {
    type Data = ();

    fn accept_wrapper(
        &mut self,
        _: &mut Context<'_, ()>,
        id: ConnId,
        peer: &PeerAddr,
    ) -> Option<()> {
        log::info!("Accepted connection {id} from {peer}");
        Some(())
    }

    fn service_connection(
        &mut self,
        cx: &mut Context<'_, ()>,
        id: ConnId,
        _: &mut (),
        inb: &mut InBuf,
    ) {
        let _ = cx.send_from(id, inb); // data.outb += recv_data
    }
}

fn main() -> ExitCode {
    common::init_logging();
    let args: Args = common::parse_args();
    let path = args
        .path
        .unwrap_or_else(|| std::env::temp_dir().join("mio-selectors-echo.sock"));
    common::serve_with(
        "unix_echo",
        Reactor::new(Echo, Config::default()),
        |reactor| {
            reactor.listen_unix(&path)?;
            Ok(path.display().to_string())
        },
    )
}
