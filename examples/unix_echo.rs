//! The multiconn echo server on a Unix stream socket: the same handler as
//! `multiconn_echo`, another address family (Python: `socket.AF_UNIX`).
//!
//! ```text
//! cargo run --example unix_echo -- [PATH]   # default $TMPDIR/mio-selectors-echo.sock
//! nc -U /tmp/mio-selectors-echo.sock
//! ```
//!
//! A stale socket file left by a crash is removed at start; the server
//! removes its own at exit, if the path still names the socket it created
//! (same device and inode): another server's socket put there since is
//! left alone. A regular file, directory or link at the path is left alone
//! too: exit 1, saying what is there.
//!
//! The readiness line prints the path unambiguously: as it is, but with a
//! backslash, control characters (a newline, say) and bytes that are not
//! UTF-8 escaped as in a Rust string (`\\`, `\n`, `\u{1b}`, `\xff`), so
//! it is always one line (see `common::escape_path`).

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
            Ok(common::escape_path(&path))
        },
    )
}
