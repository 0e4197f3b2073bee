//! What every example shares, so that each example file is only its own
//! logic: logging to stderr, the contract's argument errors, and the
//! "listening on" / exit status rules of a server.
#![allow(dead_code)] // each example uses part of it

pub mod tls;

use std::net::{SocketAddr, ToSocketAddrs};
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
    parse(A::command())
}

/// As [`parse_args`], naming the program `name` in usage and errors (for
/// argument structs that several examples share).
pub fn parse_args_as<A: Parser>(name: &'static str) -> A {
    parse(A::command().name(name))
}

fn parse<A: Parser>(mut command: clap::Command) -> A {
    let parsed = command
        .try_get_matches_from_mut(std::env::args_os())
        .and_then(|matches| A::from_arg_matches(&matches));
    parsed.unwrap_or_else(|mut e| {
        // clap shows the usage line for a missing argument but not for a bad
        // value; the contract wants it for every argument error.
        if e.use_stderr() && e.get(ContextKind::Usage).is_none() {
            let usage = ContextValue::StyledStr(command.render_usage());
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
    serve_with_metrics(name, reactor, host, port, None)
}

/// As [`serve`], and with `metrics` also serves `GET /metrics` there (from
/// the same reactor), announced by a second readiness line,
/// `metrics on http://ADDR/metrics`, right after `listening on ADDR`.
pub fn serve_with_metrics<H: Handler>(
    name: &str,
    reactor: mio_selectors::Result<Reactor<H>>,
    host: &str,
    port: u16,
    metrics: Option<SocketAddr>,
) -> ExitCode {
    serve_with(name, reactor, |reactor| {
        let id = reactor.listen((host, port))?;
        let mut ready = reactor.local_addr(id)?.to_string();
        if let Some(addr) = metrics {
            let bound = reactor.serve_metrics(addr)?;
            ready.push_str(&format!("\nmetrics on http://{bound}/metrics"));
        }
        Ok(ready)
    })
}

/// `HOST:PORT` (`[::1]:9100`, `localhost:9100`) as the first address it
/// resolves to: a clap value parser, so a bad value is a usage error.
pub fn host_port(s: &str) -> Result<SocketAddr, String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("{s:?} is not HOST:PORT"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{port:?} is not a port (0-65535)"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    resolve(host, port)
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
    serve_lines(name, reactor, |reactor| {
        Ok(vec![format!("listening on {}", bind(reactor)?)])
    })
}

/// As [`serve_with`], for a server with several listeners: `bind` returns
/// every readiness line (`listening on ADDR` first), printed together
/// before any client is served.
pub fn serve_lines<H: Handler>(
    name: &str,
    reactor: mio_selectors::Result<Reactor<H>>,
    bind: impl FnOnce(&mut Reactor<H>) -> mio_selectors::Result<Vec<String>>,
) -> ExitCode {
    let result = reactor.and_then(|mut reactor| {
        let lines = bind(&mut reactor)?;
        reactor.stop_on_signals()?;
        // Best effort: a closed stdout must not stop the server.
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(format!("{}\n", lines.join("\n")).as_bytes());
        let _ = out.flush();
        drop(out);
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

/// `--reactors N` and `--accept MODE`, for servers that can run a group of
/// reactors (`#[command(flatten)]` them into the arguments).
#[derive(clap::Args, Debug, Clone)]
pub struct GroupArgs {
    /// Reactor threads sharing the port (named reactor-0 ...); 0: one per available core.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(0..=1024))]
    pub reactors: u16,
    /// With several reactors: how they share the port.
    #[arg(long, value_enum, default_value_t = Accept::LeastLoaded)]
    pub accept: Accept,
}

/// How the reactors of a group share the port.
#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub enum Accept {
    /// One listener; each new client goes to the reactor with the fewest.
    LeastLoaded,
    /// One listener per reactor (SO_REUSEPORT); the kernel spreads clients.
    Reuseport,
}

impl GroupArgs {
    /// Whether these ask for more than the one reactor of the tutorial's shape.
    pub fn is_group(&self) -> bool {
        self.reactors != 1
    }

    /// The group these ask for.
    pub fn options(&self) -> mio_selectors::group::GroupOptions {
        use mio_selectors::group::{AcceptMode, GroupOptions};
        GroupOptions {
            reactors: self.reactors.into(),
            accept: match self.accept {
                Accept::LeastLoaded => AcceptMode::LeastLoaded,
                Accept::Reuseport => AcceptMode::ReusePort,
            },
            ..GroupOptions::default()
        }
    }
}

/// As [`serve`], for a group of reactors, each with the handler
/// `factory(index)`: binds `host:port`, prints `listening on ADDR`, runs
/// until SIGINT/SIGTERM stops every reactor.
pub fn serve_group<H, F>(
    name: &str,
    group: mio_selectors::Result<mio_selectors::group::ReactorGroup>,
    host: &str,
    port: u16,
    factory: impl FnOnce(usize) -> F,
) -> ExitCode
where
    H: Handler + 'static,
    F: Fn(usize) -> H + Send + Sync + 'static,
{
    let result = group.and_then(|mut group| {
        let addr = group.listen((host, port))?;
        group.stop_on_signals()?;
        let factory = factory(group.reactors());
        let running = group.start(factory)?;
        println!("listening on {addr}"); // line-buffered: flushed
        running.join()
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The multiconn client's arguments (`multiconn_client` and `selector_client`).
#[derive(Parser)]
pub struct MulticonnArgs {
    /// Server address (IPv4, IPv6 or a host name).
    pub host: String,
    /// Server port.
    pub port: u16,
    /// How many connections to open at once.
    #[arg(value_parser = clap::value_parser!(u32).range(1..))]
    pub num_conns: u32,
    /// Give up (exit status 1) if not every echo is back after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub timeout: u64,
}

/// What each multiconn client connection sends (the tutorial's `messages`).
pub const MESSAGES: [&[u8]; 2] = [b"Message 1 from client.", b"Message 2 from client."];

/// The first address `host:port` resolves to, or a message saying why not.
pub fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("no address for {host}"))
}

/// Exit status 0 for `Ok`; for `Err`, one line `NAME: error` on stderr and 1.
pub fn exit_with(name: &str, result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}
