//! Our echo: the Reactor with the handler of `examples/multiconn_echo.rs`
//! (`cx.send_from(id, inb)`), plus a counting allocator.
//!
//! `ours_echo [HOST PORT] [--alloc-report FILE] [--busy-poll-us N] [--metrics HOST:PORT]`
//! (`Config::busy_poll`, off by default): prints `listening on ADDR`,
//! stops on SIGTERM/SIGINT and then prints `allocs=N bytes=M` on stderr. With
//! `--alloc-report`, each SIGUSR1 writes a snapshot `seq=K allocs=N bytes=M`
//! to FILE.

use std::process::ExitCode;

use mio_selectors::{Config, ConnId, Context, Handler, InBuf, PeerAddr, Reactor};
use mio_selectors_bench::alloc::{self, Counting};

#[global_allocator]
static A: Counting = Counting;

struct Echo;

impl Handler for Echo {
    type Data = PeerAddr;

    fn accept_wrapper(
        &mut self,
        _: &mut Context<'_, PeerAddr>,
        _: ConnId,
        addr: &PeerAddr,
    ) -> Option<PeerAddr> {
        log::info!("Accepted connection from {addr}");
        Some(addr.clone())
    }

    fn service_connection(
        &mut self,
        cx: &mut Context<'_, PeerAddr>,
        id: ConnId,
        _: &mut PeerAddr,
        inb: &mut InBuf,
    ) {
        let _ = cx.send_from(id, inb);
    }
}

fn main() -> ExitCode {
    let (host, port) = mio_selectors_bench::host_port();
    if let Some(path) = mio_selectors_bench::flag("--alloc-report") {
        alloc::spawn_reporter(path.into()).expect("SIGUSR1 handler");
    }
    let busy_poll = mio_selectors_bench::flag("--busy-poll-us")
        .map(|us| std::time::Duration::from_micros(us.parse().expect("--busy-poll-us MICROS")));
    let config = Config {
        busy_poll,
        ..Config::default()
    };
    let result = Reactor::new(Echo, config).and_then(|mut reactor| {
        let id = reactor.listen((host.as_str(), port))?;
        let addr = reactor.local_addr(id)?;
        if let Some(m) = mio_selectors_bench::flag("--metrics") {
            let m = reactor.serve_metrics(m.as_str())?;
            eprintln!("metrics on http://{m}/metrics");
        }
        reactor.stop_on_signals()?;
        mio_selectors_bench::say_listening(addr);
        reactor.run()
    });
    let (allocs, bytes) = alloc::totals();
    eprintln!("allocs={allocs} bytes={bytes}");
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ours_echo: {e}");
            ExitCode::FAILURE
        }
    }
}
