//! One measured window (or idle-memory run, cross-check, pass trace) of one
//! server in one scenario.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::config::{ChatScenario, EchoScenario, Opts, Server};
use crate::meters::{alloc_snapshot, cpu_secs, fd_count, reactor_cpu, rss_kb};
use crate::processes::{num, start_server, stop_server, Load};
use crate::trace::{start_trace, stop_trace, Expect, Syscalls, Trace, Tracer};
use crate::Res;

/// What one measured window of one server gave.
#[derive(Default, Clone)]
pub struct Run {
    pub rate: f64,
    pub p50: f64,
    pub p99: f64,
    /// Messages echoed, or chat lines delivered, in the window.
    pub count: f64,
    pub user_us: f64,
    pub sys_us: f64,
    pub allocs: Option<(u64, u64)>,
    pub rss_kb: f64,
    pub syscalls: Option<Syscalls>,
    /// CPU seconds in the window of each thread named `reactor-*`.
    pub reactor_cpu: BTreeMap<String, f64>,
    pub extra: BTreeMap<String, f64>,
}

pub fn scratch(o: &Opts, name: &str) -> PathBuf {
    o.out_dir.join("tmp").join(name)
}

/// One measured window of `load_args` against `s`, with the tracer if
/// asked; a failed run is tried once more (a busy machine can starve a
/// server past a backlog), and the failure is kept only if that fails too.
pub fn measure(o: &Opts, s: &Server, load_args: Vec<String>, tracer: &Tracer) -> Res<Run> {
    measure_once(o, s, &load_args, tracer).or_else(|e| {
        eprintln!("note: retrying once after: {e}");
        measure_once(o, s, &load_args, tracer)
    })
}

fn measure_once(o: &Opts, s: &Server, load_args: &[String], tracer: &Tracer) -> Res<Run> {
    let srv = start_server(s, &o.cpus, &scratch(o, &format!("{}.log", s.key)))?;
    let result = window(o, s, srv.pid, &srv.addr, load_args, tracer);
    let stopped = stop_server(srv);
    let run = result.map_err(|e| format!("{} ({}): {e}", s.key, load_args.join(" ")))?;
    stopped?;
    Ok(run)
}

/// The meters read before the window starts.
struct Before {
    alloc_seq: u64,
    allocs: Option<(u64, u64)>,
    cpu: (f64, f64),
    threads: BTreeMap<String, f64>,
}

/// Runs the load up to its first pause (after the warm-up), reads the
/// meters, lets the window run to its second pause, reads them again.
pub fn window(
    o: &Opts,
    s: &Server,
    pid: u32,
    addr: &str,
    load_args: &[String],
    tracer: &Tracer,
) -> Res<Run> {
    let mut args = vec![load_args[0].clone(), addr.to_string()];
    args.extend(load_args[1..].iter().cloned());
    args.push("--sync".into());
    args.extend(s.load_flags.iter().map(|f| f.to_string()));
    let mut load = Load::start(&o.bin, &o.cpus.load(), &args)?;
    load.paused(Duration::from_secs(120))?;
    let mut before = Before {
        alloc_seq: 0,
        allocs: None,
        cpu: (0.0, 0.0),
        threads: BTreeMap::new(),
    };
    if let Some(f) = &s.alloc_file {
        before.allocs = Some(alloc_snapshot(pid, f, &mut before.alloc_seq)?);
    }
    let trace = start_trace(tracer, pid, &o.cpus.load(), &scratch(o, ""))?;
    before.threads = reactor_cpu(pid);
    before.cpu = cpu_secs(pid)?;
    load.go()?;
    let res = load.result(Duration::from_secs_f64(
        o.duration.max(o.meter_duration) + 60.0,
    ))?;
    load.paused(Duration::from_secs(30))?;
    let run = after(s, pid, &res, trace, before)?;
    load.finish()?;
    Ok(run)
}

/// The meters after the window, and the run they make with `before`.
fn after(
    s: &Server,
    pid: u32,
    res: &BTreeMap<String, String>,
    trace: Option<Trace>,
    mut before: Before,
) -> Res<Run> {
    let (u1, s1) = cpu_secs(pid)?;
    let threads = reactor_cpu(pid);
    let chat = res["mode"] == "chat";
    let count = num(res, if chat { "deliveries" } else { "msgs" });
    if count.is_nan() || count <= 0.0 {
        return Err(format!("{}: no message completed", s.key));
    }
    let syscalls = match trace {
        Some(t) => Some(stop_trace(t, expect(res, count))?),
        None => None,
    };
    let allocs = match &s.alloc_file {
        Some(f) => {
            let a1 = alloc_snapshot(pid, f, &mut before.alloc_seq)?;
            before.allocs.map(|a0| (a1.0 - a0.0, a1.1 - a0.1))
        }
        None => None,
    };
    Ok(Run {
        rate: num(
            res,
            if chat {
                "deliveries_per_s"
            } else {
                "msgs_per_s"
            },
        ),
        p50: num(res, "p50_us"),
        p99: num(res, "p99_us"),
        count,
        user_us: (u1 - before.cpu.0) * 1e6 / count,
        sys_us: (s1 - before.cpu.1) * 1e6 / count,
        allocs,
        rss_kb: rss_kb(pid)?,
        syscalls,
        reactor_cpu: threads
            .into_iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v - before.threads.get(&k).copied().unwrap_or(0.0),
                )
            })
            .collect(),
        extra: res
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.parse().ok()?)))
            .collect(),
    })
}

/// The fewest reads and writes that can have carried a window's traffic:
/// echo keeps at most `depth` messages in flight per connection, so one read
/// (or write) carries at most `depth` of them; in the chat every client that
/// sent was read at least once and every client was written to.
fn expect(res: &BTreeMap<String, String>, count: f64) -> Expect {
    if res["mode"] == "chat" {
        let k = num(res, "clients").max(0.0) as u64;
        let sent = num(res, "sent").max(0.0) as u64;
        Expect {
            reads: k.min(sent),
            writes: k,
            what: "a chat window (one read per sending client, one write per client)",
        }
    } else {
        let per = (count / num(res, "depth").max(1.0)).floor() as u64;
        Expect {
            reads: per,
            writes: per,
            what: "an echo window (one read and one write per message in flight)",
        }
    }
}

pub fn echo_args(o: &Opts, sc: &EchoScenario, duration: f64) -> Vec<String> {
    vec![
        "echo".into(),
        "--conns".into(),
        sc.conns.to_string(),
        "--size".into(),
        sc.size.to_string(),
        "--depth".into(),
        sc.depth.to_string(),
        "--warmup".into(),
        o.warmup.to_string(),
        "--duration".into(),
        duration.to_string(),
    ]
}

pub fn chat_args(o: &Opts, sc: &ChatScenario, duration: f64) -> Vec<String> {
    vec![
        "chat".into(),
        "--clients".into(),
        sc.clients.to_string(),
        "--rate".into(),
        sc.rate.to_string(),
        "--warmup".into(),
        o.warmup.to_string(),
        "--duration".into(),
        duration.to_string(),
    ]
}

pub struct Idle {
    pub base_kb: f64,
    pub idle_kb: f64,
    pub after_echo_kb: f64,
    pub conns: usize,
}

/// RSS before and after `n` idle connections, then after one echo on each.
pub fn idle_rss(o: &Opts, s: &Server) -> Res<Idle> {
    let srv = start_server(s, &o.cpus, &scratch(o, &format!("{}-idle.log", s.key)))?;
    let result = idle_window(o, s, srv.pid, &srv.addr);
    let stopped = stop_server(srv);
    let r = result.map_err(|e| format!("{} idle: {e}", s.key))?;
    stopped?;
    Ok(r)
}

fn idle_window(o: &Opts, s: &Server, pid: u32, addr: &str) -> Res<Idle> {
    // Settled after start-up: RSS has no readiness signal of its own.
    std::thread::sleep(Duration::from_millis(300));
    let base_kb = rss_kb(pid)?;
    let base_fds = fd_count(pid);
    let n = o.idle_conns.min(s.max_idle);
    let mut args = vec![
        "idle".to_string(),
        addr.to_string(),
        "--conns".into(),
        n.to_string(),
    ];
    args.extend(s.load_flags.iter().map(|f| f.to_string()));
    let mut load = Load::start(&o.bin, &o.cpus.load(), &args)?;
    load.paused(Duration::from_secs(180))?;
    wait_held(s, pid, base_fds, n)?;
    std::thread::sleep(Duration::from_millis(300));
    let held = fd_count(pid).saturating_sub(base_fds).min(n);
    let idle_kb = rss_kb(pid)?;
    load.go()?;
    let res = load.result(Duration::from_secs(120))?;
    if (num(&res, "echoed") as usize) < held {
        return Err(format!("only {} of {held} echoes came back", res["echoed"]));
    }
    load.paused(Duration::from_secs(10))?;
    std::thread::sleep(Duration::from_millis(300));
    let after_echo_kb = rss_kb(pid)?;
    load.finish()?;
    Ok(Idle {
        base_kb,
        idle_kb,
        after_echo_kb,
        conns: held,
    })
}

/// Waits until the server has accepted all `n` connections, or stops
/// accepting: a handshake lost to a full backlog (another process hogging
/// the server's core) leaves the client a connection the server never sees,
/// so the figure is per connection the server actually holds.
fn wait_held(s: &Server, pid: u32, base_fds: usize, n: usize) -> Res<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = (0, Instant::now());
    loop {
        let held = fd_count(pid).saturating_sub(base_fds);
        if held >= n {
            return Ok(());
        }
        if held != last.0 {
            last = (held, Instant::now());
        }
        if Instant::now() > deadline || last.1.elapsed() > Duration::from_secs(5) {
            if held * 100 < n * 95 {
                return Err(format!("server holds {held} of {n} connections"));
            }
            eprintln!(
                "note: {} holds {held} of {n} connections; RSS per held connection",
                s.key
            );
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `tcp-echo-benchmark` (crates.io) against one server: requests/s, or why not.
pub fn cross_check(o: &Opts, s: &Server) -> Res<String> {
    let srv = start_server(s, &o.cpus, &scratch(o, &format!("{}-xcheck.log", s.key)))?;
    let out = Command::new("timeout")
        .args([
            "30",
            "taskset",
            "-c",
            &o.cpus.load(),
            "tcp-echo-benchmark",
            "-a",
        ])
        .arg(&srv.addr)
        .args(["-l", "64", "-c", "100", "-t", "5"])
        .stdin(Stdio::null())
        .output();
    let stopped = stop_server(srv);
    let out = out.map_err(|e| format!("cannot run tcp-echo-benchmark: {e}"))?;
    stopped?;
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!("exit {}: {}", out.status, text.trim()));
    }
    Ok(text.trim().replace('\n', "; "))
}
