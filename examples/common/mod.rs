//! What every example shares, so that each example file is only its own
//! logic: logging to stderr, the contract's argument errors, and the
//! "listening on" / exit status rules of a server.
#![allow(dead_code)] // each example uses part of it

pub mod tls;

use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use clap::builder::RangedU64ValueParser;
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{CommandFactory, Parser};
use mio_selectors::{Config, Handler, Reactor};

/// Logs to stderr through `env_logger`: warnings by default (the contract:
/// quiet), more with `RUST_LOG`; `RUST_LOG=info` shows each connect and
/// disconnect, as the tutorials print them.
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
    parsed.unwrap_or_else(|e| exit_usage(&mut command, e))
}

/// Prints `e` with the usage line on stderr and exits 2 (`--help` and
/// `--version`: stdout, exit 0).
fn exit_usage(command: &mut clap::Command, mut e: clap::Error) -> ! {
    // clap shows the usage line for a missing argument but not for a bad
    // value; the contract wants it for every argument error.
    if e.use_stderr() && e.get(ContextKind::Usage).is_none() {
        let usage = ContextValue::StyledStr(command.render_usage());
        e.insert(ContextKind::Usage, usage);
    }
    e.exit()
}

/// An argument error found after parsing (two flags that contradict each
/// other, say): `error: MESSAGE`, the usage line, exit 2. `message` names
/// the flags as the user typed them.
pub fn usage_error<A: CommandFactory>(message: impl std::fmt::Display) -> ! {
    let mut command = A::command();
    let e = command.error(ErrorKind::ArgumentConflict, message);
    exit_usage(&mut command, e)
}

// Value parsers for numeric flags: every value a flag accepts is one the
// program can use, so a bad one is an argument error (exit 2, usage, the
// flag named as typed), never a panic or a config error later.

/// A count from 1 to `max` (`0` is refused: a limit of nothing).
pub fn count(max: u64) -> RangedU64ValueParser<usize> {
    RangedU64ValueParser::new().range(1..=max)
}

/// The most seconds a duration flag takes: a year, far past any timeout a
/// server wants, and well inside what `Instant` arithmetic can add.
pub const MAX_SECS: f64 = 365.0 * 24.0 * 3600.0;

/// A positive, finite number of seconds, at most [`MAX_SECS`] (`inf`, `nan`,
/// `1e300`, `0` and negatives are refused).
pub fn secs(s: &str) -> Result<Duration, String> {
    let x = positive(s)?;
    if x > MAX_SECS {
        return Err(format!("{s} is more than a year ({MAX_SECS} s)"));
    }
    Ok(Duration::from_secs_f64(x))
}

/// A positive, finite number (`inf`, `nan`, `0` and negatives are refused).
pub fn positive(s: &str) -> Result<f64, String> {
    let x: f64 = s.trim().parse().map_err(|e| format!("{s}: {e}"))?;
    if !(x.is_finite() && x > 0.0) {
        return Err(format!("{s} is not a positive finite number"));
    }
    Ok(x)
}

/// A finite number from `min` to `max` (`inf`, `nan`, `1e300` and values
/// outside the range are refused), for rates and bursts.
pub fn ranged(min: f64, max: f64) -> impl Fn(&str) -> Result<f64, String> + Clone {
    move |s| {
        let x = positive(s)?;
        if !(min..=max).contains(&x) {
            return Err(format!("{s} is not within {min} and {max}"));
        }
        Ok(x)
    }
}

/// Checks the flow-control flags (`--high-water`, `--low-water`) against
/// each other and against the output cap of `config`, the reactor config
/// they went into; exits 2 naming the flags if they contradict.
pub fn check_water_marks<A: CommandFactory>(config: &Config) {
    let (low, high, cap) = (config.low_water, config.high_water, config.max_outb);
    if high > cap {
        usage_error::<A>(format!(
            "--high-water {high} is above the output cap ({cap} bytes)"
        ));
    }
    if low > high {
        usage_error::<A>(format!("--low-water {low} is above --high-water {high}"));
    }
}

/// Listens on `host:port` (TCP: the first of its addresses that binds) and
/// serves; see [`serve_with`]. A host that does not resolve is named in the
/// error (exit 1).
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
    let addrs = match resolve_all(host, port) {
        Ok(addrs) => addrs,
        Err(e) => return exit_with(name, Err(e)),
    };
    serve_with(name, reactor, |reactor| {
        let id = reactor.listen(&addrs[..])?;
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
    Ok(resolve_all(host, port)?[0])
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
        ready_line(&lines.join("\n"));
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
/// `factory(index)`: binds `host:port` (the first of its addresses that
/// binds; a host that does not resolve is named, exit 1), prints
/// `listening on ADDR` as [`ready_line`] does, runs until SIGINT/SIGTERM
/// stops every reactor.
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
    let addrs = match resolve_all(host, port) {
        Ok(addrs) => addrs,
        Err(e) => return exit_with(name, Err(e)),
    };
    serve_group_lines(
        name,
        group,
        |group| Ok(vec![format!("listening on {}", group.listen(&addrs[..])?)]),
        factory,
    )
}

/// As [`serve_lines`], for a group: `bind` binds the group's listeners and
/// returns every readiness line, printed together once all reactors run.
pub fn serve_group_lines<H, F>(
    name: &str,
    group: mio_selectors::Result<mio_selectors::group::ReactorGroup>,
    bind: impl FnOnce(&mut mio_selectors::group::ReactorGroup) -> mio_selectors::Result<Vec<String>>,
    factory: impl FnOnce(usize) -> F,
) -> ExitCode
where
    H: Handler + 'static,
    F: Fn(usize) -> H + Send + Sync + 'static,
{
    let result = group.and_then(|mut group| {
        let lines = bind(&mut group)?;
        group.stop_on_signals()?;
        let factory = factory(group.reactors());
        let running = group.start(factory)?;
        ready_line(&lines.join("\n"));
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

/// Prints a readiness line on stdout and flushes it, best-effort: with
/// stdout closed or a broken pipe the server serves all the same (a warning
/// on stderr says the line was lost).
pub fn ready_line(line: &str) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{line}").and_then(|()| out.flush()) {
        log::warn!("stdout: {e}; serving without printing {line:?}");
    }
}

/// A path as one unambiguous line of text: as it is, except that a
/// backslash is written `\\`, a tab, newline or carriage return `\t`,
/// `\n`, `\r`, any other control character or line/paragraph separator
/// `\u{XXXX}`, and each byte that is not UTF-8 `\xHH` (the escapes of a
/// Rust string literal, plus `\xHH` for raw bytes). An ordinary path
/// prints unchanged; one holding a newline still makes one line.
pub fn escape_path(path: &std::path::Path) -> String {
    use std::fmt::Write as _;
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::new();
    for chunk in path.as_os_str().as_bytes().utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\t' => out.push_str("\\t"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') => {
                    let _ = write!(out, "\\u{{{:04x}}}", c as u32);
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

// The arguments of both multiconn clients (`multiconn_client`,
// `selector_client`); the doc comment below is their `--help` text.
/// The tutorial's multiconn client: opens NUM_CONNS connections to an echo
/// server at once, sends two messages on each, and exits 0 only if every
/// connection gets back exactly what it sent (1 otherwise).
#[derive(Parser)]
pub struct MulticonnArgs {
    /// Server address (IPv4, IPv6 or a host name).
    pub host: String,
    /// Server port.
    pub port: u16,
    /// How many connections to open at once.
    #[arg(value_parser = clap::value_parser!(u32).range(1..))]
    pub num_conns: u32,
    /// Give up (exit status 1) if not every echo is back after this many seconds (at most a year).
    #[arg(long, value_name = "SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=MAX_SECS as u64))]
    pub timeout: u64,
}

/// What each multiconn client connection sends (the tutorial's `messages`).
pub const MESSAGES: [&[u8]; 2] = [b"Message 1 from client.", b"Message 2 from client."];

/// Every address `host:port` resolves to, in the resolver's order, to be
/// tried in turn (as Python's `socket.create_connection` does: `localhost`
/// may name `::1` and `127.0.0.1`, and a server listen on only one), or a
/// message naming the host.
pub fn resolve_all(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    if addrs.is_empty() {
        return Err(format!("no address for {host}"));
    }
    Ok(addrs)
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
