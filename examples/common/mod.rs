//! What every example shares, so that each example file is only its own
//! logic: logging to stderr, the contract's argument errors, and the
//! "listening on" / exit status rules of a server.
#![allow(dead_code)] // each example uses part of it

use std::process::ExitCode;

use clap::error::{ContextKind, ContextValue};
use clap::Parser;
use mio_selectors::{Handler, Reactor};

/// Logs to stderr through `env_logger`: warnings by default, more with `RUST_LOG`.
pub fn init_logging() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
}

/// Parses the command line; on an argument error prints a usage line and
/// the error on stderr and exits 2 (`--help`: usage on stdout, exit 0).
pub fn parse_args<A: Parser>() -> A {
    A::try_parse().unwrap_or_else(|mut e| {
        // clap shows the usage line for a missing argument but not for a bad
        // value; the contract wants it for every argument error.
        if e.use_stderr() && e.get(ContextKind::Usage).is_none() {
            let usage = ContextValue::StyledStr(A::command().render_usage());
            e.insert(ContextKind::Usage, usage);
        }
        e.exit()
    })
}

/// Listens on `host:port` (TCP) and serves; see [`serve_with`].
pub fn serve<H: Handler>(
    name: &str,
    reactor: mio_selectors::Result<Reactor<H>>,
    host: &str,
    port: u16,
) -> ExitCode {
    serve_with(name, reactor, |reactor| {
        let id = reactor.listen((host, port))?;
        Ok(reactor.local_addr(id)?.to_string())
    })
}

/// Binds with `bind` (which returns the address to print), prints
/// `listening on ADDR` on stdout, and runs until SIGINT/SIGTERM. Exit 0 after
/// a graceful stop; 1 with one line on stderr if anything fails (a port in
/// use, say).
pub fn serve_with<H: Handler>(
    name: &str,
    reactor: mio_selectors::Result<Reactor<H>>,
    bind: impl FnOnce(&mut Reactor<H>) -> mio_selectors::Result<String>,
) -> ExitCode {
    let result = reactor.and_then(|mut reactor| {
        let addr = bind(&mut reactor)?;
        reactor.stop_on_signals()?;
        println!("listening on {addr}"); // line-buffered: flushed
        reactor.run()
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}
