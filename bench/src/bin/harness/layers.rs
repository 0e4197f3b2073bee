//! Issue 13's comparative benchmarks: the chat over WebSocket against a
//! tokio-tungstenite peer (`ws-chat-k100`, `ws-chat-k1000`), and echo over
//! TLS against rustls's `tlsserver-mio` shape (`tls-echo-n100-s64-d1`, ...).
//!
//! Same method as the rest of the harness: server and load on their own
//! cores, ours and the peer alternating within each round, meters read
//! around the measured window (`runs::window`), medians over rounds and
//! per-round ratios; one traced run per server and scenario for system
//! calls (full run only). The goals (≥ 3× the peer's deliveries/s at equal
//! CPU; TLS echo ≥ 0.95×) are reported, never gated: on a shared machine
//! they move with the noise. The smoke run has one tiny scenario of each,
//! to prove the paths work (its servers are debug builds: no ratio there
//! means anything).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::config::{ChatScenario, EchoScenario, Opts, Server};
use crate::format::{f, fr};
use crate::processes::{check_fresh, lines_of, stop_server, wait_line, Running};
use crate::runs::{scratch, window, Run};
use crate::stats::{Results, Table};
use crate::trace::Tracer;
use crate::Res;

/// Which of these scenarios this run measures.
#[derive(Clone, Default)]
pub struct Plan {
    pub ws: Vec<ChatScenario>,
    pub tls: Vec<EchoScenario>,
    /// Seconds of each measured window.
    pub duration: f64,
}

/// Offered deliveries per second of a chat scenario.
fn offered(sc: &ChatScenario) -> f64 {
    sc.clients as f64 * (sc.clients as f64 - 1.0) * sc.rate
}

/// `ws-chat-k100`; `ws-chat-k100-overload` when more is offered than
/// either server relays (over 2 million deliveries/s).
pub fn ws_id(sc: &ChatScenario) -> String {
    let over = if offered(sc) > 2e6 { "-overload" } else { "" };
    format!("ws-{}{over}", sc.id())
}

pub fn tls_id(sc: &EchoScenario) -> String {
    format!("tls-{}", sc.id())
}

/// The scenarios, less those `--only` leaves out. A word keeps one of them
/// only if it names the layer (`ws-` or `tls-` in it), so that the older
/// words (`chat-k100`, `echo-n100-s64-d1`) select what they always did.
pub fn plan(smoke: bool, only: Option<&[String]>, duration: f64) -> Plan {
    let keep = |id: &str| {
        only.is_none_or(|words| {
            words
                .iter()
                .any(|w| (w.contains("ws-") || w.contains("tls-")) && id.contains(w.as_str()))
        })
    };
    let c = |clients, rate| ChatScenario { clients, rate };
    let e = |conns, size, depth| EchoScenario { conns, size, depth };
    let (ws, tls, duration) = if smoke {
        (vec![c(10, 200.0)], vec![e(10, 64, 1)], 0.5)
    } else {
        // The TCP chat's offered loads (about a million deliveries/s,
        // which both servers relay), and 4 million at K = 100, more than
        // either relays: capacity, and what an unbounded queue costs.
        (
            vec![c(100, 100.0), c(1000, 1.0), c(100, 400.0)],
            vec![e(100, 64, 1), e(1000, 64, 1), e(100, 64, 16)],
            duration,
        )
    };
    Plan {
        ws: ws.into_iter().filter(|s| keep(&ws_id(s))).collect(),
        tls: tls.into_iter().filter(|s| keep(&tls_id(s))).collect(),
        duration,
    }
}

/// What these runs measured, for the report.
#[derive(Default)]
pub struct Layers {
    pub ws: Table,
    pub tls: Table,
    pub notes: Vec<String>,
}

/// A server of these scenarios: the line whose address the load goes to
/// (`listening on ` or the chatroom's `web on http://`), and the
/// WebSocket path.
struct LServer {
    s: Server,
    ready: &'static str,
    path: &'static str,
}

fn server(key: &'static str, label: &'static str, argv: Vec<String>) -> Server {
    Server {
        key,
        label,
        argv,
        alloc_file: None,
        load_flags: &[],
        max_idle: usize::MAX,
        reactors: 1,
    }
}

fn ws_servers(o: &Opts) -> Vec<LServer> {
    let s = |p: &Path| p.to_string_lossy().into_owned();
    // The chatroom's rate limit lifted, as in the TCP chat runs.
    let ours = [
        "--rate",
        "1000000",
        "--burst",
        "1000000",
        "--web",
        "127.0.0.1:0",
    ];
    vec![
        LServer {
            s: server(
                "ours",
                "ours (chatroom --web)",
                std::iter::once(s(&o.chatroom))
                    .chain(ours.iter().map(|a| a.to_string()))
                    .collect(),
            ),
            ready: "web on http://",
            path: "/ws",
        },
        LServer {
            s: server(
                "tokio_ws",
                "tokio-tungstenite chat (its server example's shape)",
                vec![s(&o.bin.join("tokio_ws_chat"))],
            ),
            ready: "listening on ",
            path: "/",
        },
    ]
}

fn tls_servers(o: &Opts, cert: &Path, key: &Path) -> Vec<LServer> {
    let s = |p: &Path| p.to_string_lossy().into_owned();
    let tls = [
        "--tls-cert".to_string(),
        s(cert),
        "--tls-key".to_string(),
        s(key),
    ];
    let argv = |bin: &Path| std::iter::once(s(bin)).chain(tls.iter().cloned()).collect();
    vec![
        LServer {
            s: server(
                "ours",
                "ours (multiconn_echo --tls-cert)",
                argv(&o.echo_example),
            ),
            ready: "listening on ",
            path: "",
        },
        LServer {
            s: server(
                "rustls_mio",
                "rustls tlsserver-mio shape",
                argv(&o.bin.join("rustls_mio_echo")),
            ),
            ready: "listening on ",
            path: "",
        },
    ]
}

/// A self-signed P-256 certificate for 127.0.0.1 and localhost, made with
/// the openssl command (as bench/python/idle_layers.py does).
fn make_cert(dir: &Path) -> Res<(PathBuf, PathBuf)> {
    let (cert, key) = (dir.join("bench-cert.pem"), dir.join("bench-key.pem"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:P-256", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=localhost", "-addext"])
        .arg("subjectAltName=DNS:localhost,IP:127.0.0.1")
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("openssl: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "openssl req failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok((cert, key))
}

/// Starts `s` on the server core and waits for its `ready` line.
fn start(o: &Opts, s: &LServer) -> Res<Running> {
    let log = scratch(o, &format!("{}-layers.log", s.s.key));
    let mut child = Command::new("taskset")
        .args(["-c", &o.cpus.server(1)])
        .args(&s.s.argv)
        .args(["127.0.0.1", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).map_err(|e| e.to_string())?)
        .spawn()
        .map_err(|e| format!("{}: cannot start: {e}", s.s.key))?;
    let rx = lines_of(child.stdout.take().expect("stdout"));
    match wait_line(&rx, s.ready, Duration::from_secs(20), s.s.key) {
        Ok(line) => Ok(Running {
            pid: child.id(),
            child,
            addr: line[s.ready.len()..]
                .trim()
                .trim_end_matches('/')
                .to_string(),
            label: s.s.key.to_string(),
        }),
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(e)
        }
    }
}

/// One measured window; a failed run is tried once more, as `runs::measure`.
fn measure(o: &Opts, s: &LServer, args: &[String], tracer: &Tracer) -> Res<Run> {
    let once = || {
        let srv = start(o, s)?;
        let result = window(o, &s.s, srv.pid, &srv.addr, args, tracer);
        let stopped = stop_server(srv);
        let run = result.map_err(|e| format!("{} ({}): {e}", s.s.key, args.join(" ")))?;
        stopped?;
        Ok(run)
    };
    once().or_else(|e: String| {
        eprintln!("note: retrying once after: {e}");
        once()
    })
}

fn ws_args(o: &Opts, sc: &ChatScenario, s: &LServer, duration: f64) -> Vec<String> {
    let mut v = crate::runs::chat_args(o, sc, duration);
    v[0] = "wschat".into();
    v.extend(["--path".to_string(), s.path.to_string()]);
    v
}

fn tls_args(o: &Opts, sc: &EchoScenario, duration: f64) -> Vec<String> {
    let mut v = crate::runs::echo_args(o, sc, duration);
    v[0] = "tlsecho".into();
    v
}

fn keep(t: &mut Table, key: (String, &'static str), rounds: usize, round: usize, run: Option<Run>) {
    t.runs.entry(key).or_insert_with(|| vec![None; rounds])[round] = run;
}

/// Every round of both kinds, then the traced runs.
pub fn run(o: &Opts, tracer: &Tracer, r: &mut Results) {
    let p = &o.layers;
    if p.ws.is_empty() && p.tls.is_empty() {
        return;
    }
    for b in ["tokio_ws_chat", "rustls_mio_echo"] {
        if let Err(e) = check_fresh(&o.bin.join(b)) {
            r.failures.push(e);
            return;
        }
    }
    let ws = ws_servers(o);
    let tls = if p.tls.is_empty() {
        Vec::new()
    } else {
        match make_cert(&scratch(o, "")) {
            Ok((c, k)) => tls_servers(o, &c, &k),
            Err(e) => {
                r.layers
                    .notes
                    .push(format!("TLS echo skipped: no certificate ({e})"));
                Vec::new()
            }
        }
    };
    let tls_scenarios = if tls.is_empty() { &[][..] } else { &p.tls[..] };
    for round in 0..o.rounds {
        for sc in &p.ws {
            for i in 0..ws.len() {
                let s = &ws[(i + round) % ws.len()];
                let run = measure(o, s, &ws_args(o, sc, s, p.duration), &Tracer::None);
                if let Ok(x) = &run {
                    crate::progress(
                        r,
                        format_args!(
                            "round {} ws chat K = {:<5} {:<10} {:>10.0} deliveries/s  {:.3} µs CPU/delivery",
                            round + 1,
                            sc.clients,
                            s.s.key,
                            x.rate,
                            x.user_us + x.sys_us
                        ),
                    );
                }
                let run = run.map_err(|e| r.failures.push(e)).ok();
                keep(&mut r.layers.ws, (ws_id(sc), s.s.key), o.rounds, round, run);
            }
        }
        for sc in tls_scenarios {
            for i in 0..tls.len() {
                let s = &tls[(i + round) % tls.len()];
                let run = measure(o, s, &tls_args(o, sc, p.duration), &Tracer::None);
                if let Ok(x) = &run {
                    crate::progress(
                        r,
                        format_args!(
                            "round {} tls {:<28} {:<10} {:>10.0} msg/s  {:.3} µs CPU/msg",
                            round + 1,
                            sc.label(),
                            s.s.key,
                            x.rate,
                            x.user_us + x.sys_us
                        ),
                    );
                }
                let run = run.map_err(|e| r.failures.push(e)).ok();
                keep(
                    &mut r.layers.tls,
                    (tls_id(sc), s.s.key),
                    o.rounds,
                    round,
                    run,
                );
            }
        }
    }
    if *tracer == Tracer::None || o.smoke {
        return;
    }
    for sc in &p.ws {
        for s in &ws {
            match measure(o, s, &ws_args(o, sc, s, o.meter_duration), tracer) {
                Ok(x) => drop(r.layers.ws.meter.insert((ws_id(sc), s.s.key), x)),
                Err(e) => r.failures.push(e),
            }
        }
    }
    for sc in tls_scenarios {
        for s in &tls {
            match measure(o, s, &tls_args(o, sc, o.meter_duration), tracer) {
                Ok(x) => drop(r.layers.tls.meter.insert((tls_id(sc), s.s.key), x)),
                Err(e) => r.failures.push(e),
            }
        }
    }
}

/// Appends one line (a `String` never fails to take it).
macro_rules! line {
    ($w:expr, $($arg:tt)*) => {{
        let _ = writeln!($w, $($arg)*);
    }};
}

fn cpu(x: &Run) -> f64 {
    x.user_us + x.sys_us
}

/// A median over the rounds of one figure of a server's runs, formatted.
type Med<'a> = dyn Fn(&dyn Fn(&Run) -> f64) -> String + 'a;

/// `CPU (user + sys)`, each a median over the rounds.
fn split(med: &Med) -> String {
    format!(
        "{} ({} + {})",
        med(&cpu),
        med(&|x| x.user_us),
        med(&|x| x.sys_us)
    )
}

/// System calls per counted item in the traced run: (total, writes).
fn calls(t: &Table, id: &str, key: &str) -> (f64, f64) {
    t.meter(id, key)
        .and_then(|m| {
            let c = m.syscalls.as_ref()?;
            Some((c.total as f64 / m.count, c.writes() as f64 / m.count))
        })
        .unwrap_or((f64::NAN, f64::NAN))
}

/// The report's section for these scenarios (nothing if none ran).
pub fn section(w: &mut String, o: &Opts, r: &Results) {
    let (p, l) = (&o.layers, &r.layers);
    if p.ws.is_empty() && p.tls.is_empty() {
        return;
    }
    line!(
        w,
        "\n## WebSocket chat and TLS echo against their own projects' examples (issue 13): medians over {} rounds\n",
        o.rounds
    );
    line!(w, "Server on core {}, load on core {}; ours and the peer alternate within each round; windows of {} s. CPU is the server's utime + stime from /proc over the window, per delivery (or echoed message): on a shared machine that, and the system-call counts from the traced run, are the figures to judge by; throughput moves with whatever else runs.{}\n", o.cpus.server(1), o.cpus.load(), p.duration, if o.smoke { " Smoke run: debug builds of ours, nothing here is a comparison." } else { "" });
    for n in &l.notes {
        line!(w, "Note: {n}\n");
    }
    if !p.ws.is_empty() {
        line!(w, "**Chat fan-out over WebSocket.** K clients (tungstenite on non-blocking sockets in the load generator) each send 64-byte text messages at a fixed rate; each is relayed to the other K − 1 as one text message. Ours: `chatroom --web` (upgrade at `/ws`, `Origin` checked). The peer: tokio-tungstenite's server example's shape on a current_thread runtime (per-peer unbounded channels, no `Origin` check, no bound on what it queues for a slow reader).\n");
        line!(w, "| K | offered deliveries/s | server | deliveries/s | p99 µs | CPU µs/delivery (user + sys) | writes/delivery | syscalls/delivery | RSS KiB | clients cut off | ours÷it deliveries/s | its÷ours CPU per delivery |");
        line!(w, "|---|---|---|---|---|---|---|---|---|---|---|---|");
        for sc in &p.ws {
            let id = ws_id(sc);
            for key in ["ours", "tokio_ws"] {
                let med = |g: &dyn Fn(&Run) -> f64| f(l.ws.med(&id, key, g));
                let (total, writes) = calls(&l.ws, &id, key);
                let (rate, cpu_ratio) = if key == "ours" {
                    (String::new(), String::new())
                } else {
                    (
                        fr(l.ws.ratio(&id, key, |x| x.rate)),
                        fr(l.ws.ratio_of(&id, key, &id, "ours", cpu)),
                    )
                };
                line!(
                    w,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    sc.clients,
                    f(offered(sc)),
                    if key == "ours" {
                        "ours"
                    } else {
                        "tokio-tungstenite"
                    },
                    med(&|x| x.rate),
                    med(&|x| x.p99),
                    split(&med),
                    f(writes),
                    f(total),
                    med(&|x| x.rss_kb),
                    med(&|x| x.extra.get("dropped").copied().unwrap_or(f64::NAN)),
                    rate,
                    cpu_ratio
                );
            }
        }
        line!(w, "\nGoal (issue 13): ours ≥ 3× the peer's deliveries/s at equal CPU, read here as the peer's CPU per delivery ÷ ours ≥ 3 where both relay all that is offered (both servers have one core); the overload row offers more than either relays, so its deliveries/s are capacities (window + drain, the drain capped at 15 s).\n");
    }
    if !p.tls.is_empty() && !l.tls.runs.is_empty() {
        line!(w, "**Echo over TLS 1.3.** N rustls clients (ring provider, handshakes done before the warm-up) keep D messages of 64 B in flight. Ours: `multiconn_echo --tls-cert --tls-key` (the Reactor's TLS layer). The peer: rustls's `tlsserver-mio` echo shape (one `read_tls` per readable event, re-registered after every event for what rustls wants), same rustls, provider and certificate.\n");
        line!(w, "| scenario | server | msg/s | p50 µs | p99 µs | CPU µs/msg (user + sys) | writes/msg | syscalls/msg | RSS KiB | ours÷it msg/s | its÷ours CPU per msg |");
        line!(w, "|---|---|---|---|---|---|---|---|---|---|---|");
        for sc in &p.tls {
            let id = tls_id(sc);
            for key in ["ours", "rustls_mio"] {
                let med = |g: &dyn Fn(&Run) -> f64| f(l.tls.med(&id, key, g));
                let (total, writes) = calls(&l.tls, &id, key);
                let (rate, cpu_ratio) = if key == "ours" {
                    (String::new(), String::new())
                } else {
                    (
                        fr(l.tls.ratio(&id, key, |x| x.rate)),
                        fr(l.tls.ratio_of(&id, key, &id, "ours", cpu)),
                    )
                };
                line!(
                    w,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    sc.label(),
                    if key == "ours" {
                        "ours"
                    } else {
                        "tlsserver-mio shape"
                    },
                    med(&|x| x.rate),
                    med(&|x| x.p50),
                    med(&|x| x.p99),
                    split(&med),
                    f(writes),
                    f(total),
                    med(&|x| x.rss_kb),
                    rate,
                    cpu_ratio
                );
            }
        }
        line!(w, "\nGoal (issue 13): ours ≥ 0.95× the peer's throughput; with one core each, read as the peer's CPU per message ÷ ours ≥ 0.95.\n");
    }
}

#[cfg(test)]
mod tests {
    use super::plan;

    fn ids(only: Option<&[&str]>) -> Vec<String> {
        let words: Option<Vec<String>> = only.map(|w| w.iter().map(|s| s.to_string()).collect());
        let p = plan(false, words.as_deref(), 4.0);
        let ws = p.ws.iter().map(super::ws_id);
        ws.chain(p.tls.iter().map(super::tls_id)).collect()
    }

    #[test]
    fn only_selects_by_layer_words_and_leaves_older_words_alone() {
        assert_eq!(ids(None).len(), 6);
        assert!(ids(Some(&["chat-k100", "echo-n100-s64-d1", "idle"])).is_empty());
        assert_eq!(ids(Some(&["ws-chat-k1000"])), vec!["ws-chat-k1000"]);
        assert_eq!(ids(Some(&["ws-"])).len(), 3);
        assert_eq!(
            ids(Some(&["ws-chat-k100-overload"])),
            vec!["ws-chat-k100-overload"]
        );
        assert_eq!(
            ids(Some(&["tls-echo-n100-s64-d16"])),
            vec!["tls-echo-n100-s64-d16"]
        );
        let smoke = plan(true, None, 1.0);
        assert_eq!((smoke.ws.len(), smoke.tls.len()), (1, 1));
        assert!(smoke.duration < 1.0, "the smoke pair stays short");
    }
}
