//! The benchmark driver: runs every server against the load generator, in
//! rounds, with the meters around each measured window, and writes the
//! report. Run through `bench/run.sh` (which builds everything first), from
//! the repository root:
//!
//! ```text
//! bash bench/run.sh            # full matrix -> docs/benchmarks.md, docs/benchmarks.svg
//! bash bench/run.sh --smoke    # ~1 min, CI -> bench/target/smoke/
//! ```
//!
//! Each round runs every server once per scenario, the order rotated from
//! round to round, so ours alternates with each peer; ratios are taken
//! within a round, then their median is reported. Servers run on core 0
//! (`taskset -c 0`), the load and the meters on core 1. Throughput, latency,
//! CPU and allocations come from runs without any tracer attached; system
//! calls come from one extra run per server and scenario with `perf stat`
//! (or `strace -c`) attached, since tracing slows the server down.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

type Res<T> = Result<T, String>;

// ------------------------------------------------------------ configuration

#[derive(Clone)]
struct Server {
    key: &'static str,
    label: &'static str,
    argv: Vec<String>,
    /// Ours only: where SIGUSR1 snapshots of the counting allocator go.
    alloc_file: Option<PathBuf>,
    /// Extra load flags: connect pacing for a server that accepts slowly.
    load_flags: &'static [&'static str],
    /// Fewest of `Opts::idle_conns` and this for the idle-memory meter.
    max_idle: usize,
}

#[derive(Clone, Copy, PartialEq)]
struct EchoScenario {
    conns: usize,
    size: usize,
    depth: usize,
}

impl EchoScenario {
    fn id(&self) -> String {
        format!("echo-n{}-s{}-d{}", self.conns, self.size, self.depth)
    }
    fn label(&self) -> String {
        let size = if self.size >= 1024 {
            format!("{} KiB", self.size / 1024)
        } else {
            format!("{} B", self.size)
        };
        let kind = if self.depth == 1 {
            "ping-pong".to_string()
        } else {
            format!("pipelined ×{}", self.depth)
        };
        format!("{kind}, N = {}, {size}", self.conns)
    }
}

#[derive(Clone, Copy)]
struct ChatScenario {
    clients: usize,
    rate: f64,
}

struct Opts {
    smoke: bool,
    rounds: usize,
    warmup: f64,
    duration: f64,
    meter_duration: f64,
    idle_conns: usize,
    out_dir: PathBuf,
    bin: PathBuf,
    chatroom: PathBuf,
    command: String,
    echo: Vec<EchoScenario>,
    meter_echo: Vec<EchoScenario>,
    chat: Vec<ChatScenario>,
    cross_check: bool,
    python: bool,
    idle: bool,
    /// What was measured: the commit, and whether src/ or examples/ had
    /// uncommitted changes when the binaries were built.
    tree: String,
}

fn opts() -> Opts {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let has = |f: &str| args.iter().any(|a| a == f);
    let val = |f: &str| {
        args.iter()
            .position(|a| a == f)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let smoke = has("--smoke");
    let e = |conns, size, depth| EchoScenario { conns, size, depth };
    let (echo, meter_echo, chat) = if smoke {
        let echo = vec![e(1, 64, 1), e(100, 64, 1), e(100, 64, 16)];
        let meter = echo[1..].to_vec();
        (
            echo,
            meter,
            vec![ChatScenario {
                clients: 10,
                rate: 200.0,
            }],
        )
    } else {
        let mut echo = Vec::new();
        for (size, depth) in [(64, 1), (16 * 1024, 1), (64, 16)] {
            for conns in [1, 100, 1000] {
                echo.push(e(conns, size, depth));
            }
        }
        // About 0.5 to 1 million deliveries/s offered: more than the
        // tokio peer relays; ours kept up with all of it when tried.
        let chat = vec![
            ChatScenario {
                clients: 10,
                rate: 5000.0,
            },
            ChatScenario {
                clients: 100,
                rate: 100.0,
            },
            ChatScenario {
                clients: 1000,
                rate: 1.0,
            },
        ];
        (echo.clone(), echo, chat)
    };
    // `--only a,b`: keep the scenarios whose id contains one of the words
    // (ids: echo-n100-s64-d1, chat-k100, ...; "idle" keeps the memory meter).
    let only: Option<Vec<String>> =
        val("--only").map(|v| v.split(',').map(str::to_string).collect());
    let keep = |id: &str| {
        only.as_ref()
            .is_none_or(|w| w.iter().any(|w| id.contains(w.as_str())))
    };
    let echo: Vec<EchoScenario> = echo.into_iter().filter(|s| keep(&s.id())).collect();
    let meter_echo: Vec<EchoScenario> = meter_echo.into_iter().filter(|s| keep(&s.id())).collect();
    let chat: Vec<ChatScenario> = chat
        .into_iter()
        .filter(|s| keep(&format!("chat-k{}", s.clients)))
        .collect();
    let idle = keep("idle");
    let root = std::env::current_dir().expect("cwd");
    let out_dir = val("--out").map(PathBuf::from).unwrap_or_else(|| {
        if smoke {
            root.join("bench/target/smoke")
        } else {
            root.join("docs")
        }
    });
    Opts {
        smoke,
        rounds: val("--rounds")
            .and_then(|v| v.parse().ok())
            .unwrap_or(if smoke { 1 } else { 5 }),
        warmup: if smoke { 0.3 } else { 1.0 },
        duration: val("--duration")
            .and_then(|v| v.parse().ok())
            .unwrap_or(if smoke { 1.0 } else { 4.0 }),
        meter_duration: if smoke { 1.0 } else { 3.0 },
        idle_conns: if smoke { 300 } else { 10_000 },
        out_dir,
        bin: root.join("bench/target/release"),
        chatroom: val("--chatroom")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target/release/examples/chatroom")),
        command: val("--command")
            .unwrap_or_else(|| format!("bash bench/run.sh{}", if smoke { " --smoke" } else { "" })),
        echo,
        meter_echo,
        chat,
        cross_check: !smoke && !has("--no-cross-check") && only.is_none(),
        idle,
        tree: {
            let head = sh("git rev-parse --short HEAD 2>/dev/null");
            let dirty = sh("git status --porcelain -- src examples 2>/dev/null | wc -l");
            match (head.is_empty(), dirty.trim()) {
                (true, _) => "unknown (not a git checkout)".into(),
                (false, "0") => format!("commit `{head}`"),
                (false, n) => format!(
                    "commit `{head}` plus uncommitted changes to {n} files under src/ or examples/"
                ),
            }
        },
        python: !has("--no-python"),
    }
}

fn echo_servers(o: &Opts) -> Vec<Server> {
    let bin = |name: &str| o.bin.join(name).to_string_lossy().into_owned();
    let alloc_file = o.out_dir.join(format!("alloc-{}.txt", std::process::id()));
    let mut v = vec![
        Server {
            key: "ours",
            label: "ours (Reactor)",
            argv: vec![
                bin("ours_echo"),
                "--alloc-report".into(),
                alloc_file.to_string_lossy().into_owned(),
            ],
            alloc_file: Some(alloc_file),
            load_flags: &[],
            max_idle: usize::MAX,
        },
        Server {
            key: "raw_mio",
            label: "raw mio",
            argv: vec![bin("raw_mio_echo")],
            alloc_file: None,
            load_flags: &[],
            max_idle: usize::MAX,
        },
        Server {
            key: "tokio",
            label: "tokio current_thread",
            argv: vec![bin("tokio_echo")],
            alloc_file: None,
            load_flags: &[],
            max_idle: usize::MAX,
        },
        Server {
            key: "epoll",
            label: "epoll floor (libc)",
            argv: vec![bin("epoll_echo")],
            alloc_file: None,
            load_flags: &[],
            max_idle: usize::MAX,
        },
    ];
    if o.python {
        v.push(Server {
            key: "python",
            label: "Python selectors tutorial",
            argv: vec!["python3".into(), "bench/python/multiconn_server.py".into()],
            alloc_file: None,
            // One accept per level-triggered pass, and a pass visits every
            // (always writable) connection: flooding its backlog of 128
            // loses handshakes, so connect 50 at a time, 100 ms apart; and
            // 2,000 idle connections already take it most of a minute.
            load_flags: &["--batch", "50", "--gap-ms", "100"],
            max_idle: 2000,
        });
    }
    v
}

fn chat_servers(o: &Opts) -> Vec<Server> {
    vec![
        Server {
            key: "ours",
            label: "ours (examples/chatroom)",
            // The per-client rate limit is the chatroom's policy, not its
            // cost: lifted so both servers relay everything offered.
            argv: vec![
                o.chatroom.to_string_lossy().into_owned(),
                "--rate".into(),
                "1000000".into(),
                "--burst".into(),
                "1000000".into(),
            ],
            alloc_file: None,
            load_flags: &[],
            max_idle: usize::MAX,
        },
        Server {
            key: "tokio",
            label: "tokio chat (broadcast example style)",
            argv: vec![o.bin.join("tokio_chat").to_string_lossy().into_owned()],
            alloc_file: None,
            load_flags: &[],
            max_idle: usize::MAX,
        },
    ]
}

// ------------------------------------------------------------ processes

fn lines_of(r: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn wait_line(rx: &Receiver<String>, prefix: &str, timeout: Duration, what: &str) -> Res<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.starts_with(prefix) => return Ok(line),
            Ok(_) => {}
            Err(mpsc::RecvTimeoutError::Timeout) => {
                return Err(format!("{what}: no `{prefix}` line within {timeout:?}"))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(format!("{what}: exited before printing `{prefix}`"))
            }
        }
    }
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: plain kill(2) on a child we started.
    unsafe { libc::kill(pid as i32, sig) };
}

fn wait_exit(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

struct Running {
    child: Child,
    pid: u32,
    addr: String,
    label: String,
}

fn start_server(s: &Server, log: &Path) -> Res<Running> {
    if let Some(f) = &s.alloc_file {
        let _ = std::fs::remove_file(f); // a snapshot of the last process is stale
    }
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", "0"])
        .args(&s.argv)
        .args(["127.0.0.1", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).map_err(|e| e.to_string())?);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("{}: cannot start: {e}", s.key))?;
    let rx = lines_of(child.stdout.take().expect("stdout"));
    let line = match wait_line(&rx, "listening on ", Duration::from_secs(20), s.key) {
        Ok(l) => l,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
    };
    Ok(Running {
        pid: child.id(),
        child,
        addr: line["listening on ".len()..].trim().to_string(),
        label: s.key.to_string(),
    })
}

/// SIGTERM; the contract says it exits 0 within the 2 s flush.
fn stop_server(mut r: Running) -> Res<()> {
    signal(r.pid, libc::SIGTERM);
    match wait_exit(&mut r.child, Duration::from_secs(5)) {
        Some(st) if st.success() => Ok(()),
        Some(st) => Err(format!("{} exited with {st} after SIGTERM", r.label)),
        None => Err(format!("{} did not exit within 5 s of SIGTERM", r.label)),
    }
}

struct Load {
    child: Child,
    stdin: ChildStdin,
    rx: Receiver<String>,
}

impl Load {
    fn start(bin: &Path, args: &[String]) -> Res<Load> {
        let mut child = Command::new("taskset")
            .args(["-c", "1"])
            .arg(bin.join("load"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("load: {e}"))?;
        let stdin = child.stdin.take().expect("stdin");
        let rx = lines_of(child.stdout.take().expect("stdout"));
        Ok(Load { child, stdin, rx })
    }
    fn paused(&self, timeout: Duration) -> Res<()> {
        wait_line(&self.rx, "paused", timeout, "load").map(drop)
    }
    fn go(&mut self) -> Res<()> {
        writeln!(self.stdin, "go").map_err(|e| format!("load: {e}"))
    }
    fn result(&self, timeout: Duration) -> Res<BTreeMap<String, String>> {
        let line = wait_line(&self.rx, "result ", timeout, "load")?;
        Ok(line
            .split_whitespace()
            .skip(1)
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())
    }
    fn finish(mut self) -> Res<()> {
        let _ = writeln!(self.stdin, "quit");
        drop(self.stdin);
        match wait_exit(&mut self.child, Duration::from_secs(20)) {
            Some(st) if st.success() => Ok(()),
            Some(st) => Err(format!("load exited with {st}")),
            None => Err("load did not exit".into()),
        }
    }
}

fn num(m: &BTreeMap<String, String>, k: &str) -> f64 {
    m.get(k).and_then(|v| v.parse().ok()).unwrap_or(f64::NAN)
}

// ------------------------------------------------------------ meters

/// utime and stime of a process (all threads), in seconds.
fn cpu_secs(pid: u32) -> Res<(f64, f64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| e.to_string())?;
    // Fields after the `(comm)`, which may contain spaces.
    let rest = &s[s.rfind(')').ok_or("bad stat")? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // SAFETY: sysconf has no preconditions.
    let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let utime: f64 = f[11].parse().map_err(|_| "utime")?;
    let stime: f64 = f[12].parse().map_err(|_| "stime")?;
    Ok((utime / tck, stime / tck))
}

fn rss_kb(pid: u32) -> Res<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| e.to_string())?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| "no VmRSS".into())
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Asks ours for an allocator snapshot (SIGUSR1) and reads it.
fn alloc_snapshot(pid: u32, file: &Path, last_seq: &mut u64) -> Res<(u64, u64)> {
    signal(pid, libc::SIGUSR1);
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(s) = std::fs::read_to_string(file) {
            let kv: BTreeMap<&str, u64> = s
                .split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .filter_map(|(k, v)| Some((k, v.parse().ok()?)))
                .collect();
            if kv.get("seq").copied().unwrap_or(0) > *last_seq {
                *last_seq = kv["seq"];
                return Ok((kv["allocs"], kv["bytes"]));
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Err("no allocation snapshot within 5 s".into())
}

const SYSCALLS: &[&str] = &[
    "read",
    "recvfrom",
    "write",
    "writev",
    "sendto",
    "epoll_wait",
    "epoll_pwait",
    "epoll_ctl",
];

#[derive(Clone, Copy, PartialEq, Debug)]
enum Tracer {
    Perf,
    Strace,
    None,
}

/// perf if its syscall tracepoints work, else strace, else none;
/// `BENCH_TRACER=perf|strace|none` forces one (to test the fallbacks).
fn tracer() -> (Tracer, String) {
    let forced = std::env::var("BENCH_TRACER").unwrap_or_default();
    if forced != "strace" && forced != "none" && perf_works() {
        return (
            Tracer::Perf,
            "perf stat -e 'syscalls:sys_enter_*' tracepoints".into(),
        );
    }
    let strace_ok = forced != "none"
        && Command::new("strace")
            .args(["-c", "-o", "/dev/null", "true"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
    if strace_ok {
        eprintln!(
            "note: perf syscall tracepoints unavailable; counting system calls with strace -c -f"
        );
        return (Tracer::Strace, "strace -c -f (perf unavailable)".into());
    }
    eprintln!("note: neither perf nor strace works here; the system-call meter is skipped");
    (
        Tracer::None,
        "skipped: neither perf nor strace available".into(),
    )
}

fn strace_works() -> bool {
    Command::new("strace")
        .args(["-c", "-o", "/dev/null", "true"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn perf_works() -> bool {
    Command::new("perf")
        .args(["stat", "-x,", "-e", "syscalls:sys_enter_read", "--", "true"])
        .stdout(Stdio::null())
        .output()
        .map(|o| {
            o.status.success()
                && String::from_utf8_lossy(&o.stderr).contains("syscalls:sys_enter_read")
        })
        .unwrap_or(false)
}

struct Trace {
    child: Child,
    out: PathBuf,
    kind: Tracer,
}

fn start_trace(kind: Tracer, pid: u32, out: &Path) -> Res<Option<Trace>> {
    let mut cmd = match kind {
        Tracer::None => return Ok(None),
        Tracer::Perf => {
            let events: Vec<String> = SYSCALLS
                .iter()
                .map(|s| format!("syscalls:sys_enter_{s}"))
                .collect();
            let mut c = Command::new("taskset");
            c.args(["-c", "1", "perf", "stat", "-x,", "-o"])
                .arg(out)
                .args(["-e", &events.join(","), "-p", &pid.to_string()]);
            c
        }
        Tracer::Strace => {
            let mut c = Command::new("taskset");
            c.args(["-c", "1", "strace", "-c", "-f", "-o"])
                .arg(out)
                .args(["-p", &pid.to_string()]);
            c
        }
    };
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("tracer: {e}"))?;
    // Let it attach before the measured window starts (the server is idle now).
    std::thread::sleep(Duration::from_millis(if kind == Tracer::Perf {
        400
    } else {
        800
    }));
    Ok(Some(Trace {
        child,
        out: out.to_path_buf(),
        kind,
    }))
}

fn stop_trace(mut t: Trace) -> Res<BTreeMap<String, u64>> {
    signal(t.child.id(), libc::SIGINT);
    wait_exit(&mut t.child, Duration::from_secs(10)).ok_or("tracer did not stop")?;
    let text = std::fs::read_to_string(&t.out).map_err(|e| format!("tracer output: {e}"))?;
    let mut counts: BTreeMap<String, u64> = SYSCALLS.iter().map(|s| (s.to_string(), 0)).collect();
    match t.kind {
        Tracer::Perf => {
            for line in text.lines() {
                let f: Vec<&str> = line.split(',').collect();
                if f.len() < 3 {
                    continue;
                }
                if let Some(name) = f[2].strip_prefix("syscalls:sys_enter_") {
                    let n = f[0].trim().parse().unwrap_or(0);
                    counts.insert(name.to_string(), n);
                }
            }
        }
        Tracer::Strace => {
            for line in text.lines() {
                let f: Vec<&str> = line.split_whitespace().collect();
                if f.len() >= 5 && f[0].parse::<f64>().is_ok() {
                    let name = f[f.len() - 1];
                    if let (Some(c), Ok(n)) = (counts.get_mut(name), f[3].parse::<u64>()) {
                        *c = n;
                    }
                }
            }
        }
        Tracer::None => {}
    }
    Ok(counts)
}

fn reads(c: &BTreeMap<String, u64>) -> u64 {
    c["read"] + c["recvfrom"]
}
fn writes(c: &BTreeMap<String, u64>) -> u64 {
    c["write"] + c["writev"] + c["sendto"]
}
fn waits(c: &BTreeMap<String, u64>) -> u64 {
    c["epoll_wait"] + c["epoll_pwait"]
}
fn total(c: &BTreeMap<String, u64>) -> u64 {
    c.values().sum()
}

// ------------------------------------------------------------ runs

#[derive(Default, Clone)]
struct Run {
    rate: f64,
    p50: f64,
    p99: f64,
    count: f64,
    user_us: f64,
    sys_us: f64,
    allocs: Option<(u64, u64)>,
    rss_kb: f64,
    syscalls: Option<BTreeMap<String, u64>>,
    extra: BTreeMap<String, f64>,
}

fn scratch(o: &Opts, name: &str) -> PathBuf {
    o.out_dir.join("tmp").join(name)
}

/// One measured window of `load_args` against `s`, with the tracer if
/// asked; a failed run is tried once more (a busy machine can starve a
/// server past a backlog), and the failure is kept only if that fails too.
fn measure(o: &Opts, s: &Server, load_args: Vec<String>, tracer: Tracer) -> Res<Run> {
    measure_once(o, s, load_args.clone(), tracer).or_else(|e| {
        eprintln!("note: retrying once after: {e}");
        measure_once(o, s, load_args, tracer)
    })
}

fn measure_once(o: &Opts, s: &Server, load_args: Vec<String>, tracer: Tracer) -> Res<Run> {
    let srv = start_server(s, &scratch(o, &format!("{}.log", s.key)))?;
    let result = (|| {
        let mut args = vec![load_args[0].clone(), srv.addr.clone()];
        args.extend(load_args[1..].iter().cloned());
        args.push("--sync".into());
        args.extend(s.load_flags.iter().map(|f| f.to_string()));
        let mut load = Load::start(&o.bin, &args)?;
        load.paused(Duration::from_secs(120))?;
        let mut seq = 0;
        let a0 = match &s.alloc_file {
            Some(f) => Some(alloc_snapshot(srv.pid, f, &mut seq)?),
            None => None,
        };
        let trace = start_trace(tracer, srv.pid, &scratch(o, "trace.txt"))?;
        let (u0, s0) = cpu_secs(srv.pid)?;
        load.go()?;
        let res = load.result(Duration::from_secs_f64(
            o.duration.max(o.meter_duration) + 60.0,
        ))?;
        load.paused(Duration::from_secs(30))?;
        let (u1, s1) = cpu_secs(srv.pid)?;
        let syscalls = match trace {
            Some(t) => Some(stop_trace(t)?),
            None => None,
        };
        let a1 = match &s.alloc_file {
            Some(f) => Some(alloc_snapshot(srv.pid, f, &mut seq)?),
            None => None,
        };
        let rss = rss_kb(srv.pid)?;
        load.finish()?;
        let count = if res["mode"] == "chat" {
            num(&res, "deliveries")
        } else {
            num(&res, "msgs")
        };
        if count.is_nan() || count <= 0.0 {
            return Err(format!("{}: no message completed", s.key));
        }
        let rate = if res["mode"] == "chat" {
            num(&res, "deliveries_per_s")
        } else {
            num(&res, "msgs_per_s")
        };
        let extra = res
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.parse().ok()?)))
            .collect();
        Ok(Run {
            rate,
            p50: num(&res, "p50_us"),
            p99: num(&res, "p99_us"),
            count,
            user_us: (u1 - u0) * 1e6 / count,
            sys_us: (s1 - s0) * 1e6 / count,
            allocs: a0.zip(a1).map(|(a, b)| (b.0 - a.0, b.1 - a.1)),
            rss_kb: rss,
            syscalls,
            extra,
        })
    })();
    let stopped = stop_server(srv);
    let run = result.map_err(|e| format!("{} ({}): {e}", s.key, load_args.join(" ")))?;
    stopped?;
    Ok(run)
}

fn echo_args(o: &Opts, sc: &EchoScenario, duration: f64) -> Vec<String> {
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

fn chat_args(o: &Opts, sc: &ChatScenario, duration: f64) -> Vec<String> {
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

struct Idle {
    base_kb: f64,
    idle_kb: f64,
    after_echo_kb: f64,
    conns: usize,
}

/// RSS before and after `n` idle connections, then after one echo on each.
fn idle_rss(o: &Opts, s: &Server) -> Res<Idle> {
    let srv = start_server(s, &scratch(o, &format!("{}-idle.log", s.key)))?;
    let result = (|| {
        std::thread::sleep(Duration::from_millis(300));
        let base_kb = rss_kb(srv.pid)?;
        let base_fds = fd_count(srv.pid);
        let n = o.idle_conns.min(s.max_idle);
        let mut args = vec![
            "idle".to_string(),
            srv.addr.clone(),
            "--conns".into(),
            n.to_string(),
        ];
        args.extend(s.load_flags.iter().map(|f| f.to_string()));
        let mut load = Load::start(&o.bin, &args)?;
        load.paused(Duration::from_secs(180))?;
        // Wait until the server has accepted them all, or stops accepting:
        // a handshake lost to a full backlog (another process hogging core
        // 0) leaves the client a connection the server never sees, so the
        // figure is per connection the server actually holds.
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut last = (0, Instant::now());
        loop {
            let held = fd_count(srv.pid).saturating_sub(base_fds);
            if held >= n {
                break;
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
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(300));
        let held = fd_count(srv.pid).saturating_sub(base_fds).min(n);
        let idle_kb = rss_kb(srv.pid)?;
        load.go()?;
        let res = load.result(Duration::from_secs(120))?;
        if (num(&res, "echoed") as usize) < held {
            return Err(format!("only {} of {held} echoes came back", res["echoed"]));
        }
        load.paused(Duration::from_secs(10))?;
        std::thread::sleep(Duration::from_millis(300));
        let after_echo_kb = rss_kb(srv.pid)?;
        load.finish()?;
        Ok(Idle {
            base_kb,
            idle_kb,
            after_echo_kb,
            conns: held,
        })
    })();
    let stopped = stop_server(srv);
    let r = result.map_err(|e| format!("{} idle: {e}", s.key))?;
    stopped?;
    Ok(r)
}

/// `tcp-echo-benchmark` (crates.io) against one server: requests/s, or why not.
fn cross_check(o: &Opts, s: &Server) -> Res<String> {
    let srv = start_server(s, &scratch(o, &format!("{}-xcheck.log", s.key)))?;
    let out = Command::new("timeout")
        .args(["30", "taskset", "-c", "1", "tcp-echo-benchmark", "-a"])
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

/// Writes per recipient per loop pass, exactly: `strace -f` of the write
/// calls and `epoll_wait` for about a second of a chat run; the calls between
/// two `epoll_wait`s are one pass, counted per descriptor.
#[derive(Default)]
struct PassStats {
    passes: u64,
    /// (pass, descriptor) pairs that saw at least one write.
    recipient_passes: u64,
    /// ... of which saw more than one.
    over_one: u64,
    /// ... of which saw more than one where every extra write returned EAGAIN.
    over_one_eagain_only: u64,
    writes: u64,
    max_in_pass: u64,
}

fn pass_trace(o: &Opts, s: &Server, sc: &ChatScenario) -> Res<PassStats> {
    let srv = start_server(s, &scratch(o, &format!("{}-pass.log", s.key)))?;
    let out = scratch(o, "pass-trace.txt");
    let result = (|| -> Res<PassStats> {
        let mut args = vec!["chat".to_string(), srv.addr.clone()];
        args.extend(chat_args(o, sc, 2.0)[1..].iter().cloned());
        args.push("--sync".into());
        let mut load = Load::start(&o.bin, &args)?;
        load.paused(Duration::from_secs(120))?;
        load.go()?;
        std::thread::sleep(Duration::from_millis(300));
        let mut st = Command::new("taskset")
            .args(["-c", "1", "strace", "-f", "-qq", "-s", "0", "-e"])
            .arg("trace=epoll_wait,epoll_pwait,write,writev,sendto")
            .arg("-o")
            .arg(&out)
            .args(["-p", &srv.pid.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("strace: {e}"))?;
        std::thread::sleep(Duration::from_millis(1000));
        signal(st.id(), libc::SIGINT);
        wait_exit(&mut st, Duration::from_secs(10)).ok_or("strace did not stop")?;
        load.result(Duration::from_secs(60))?;
        load.paused(Duration::from_secs(30))?;
        load.finish()?;
        let text = std::fs::read_to_string(&out).map_err(|e| e.to_string())?;
        Ok(count_passes(&text))
    })();
    let stopped = stop_server(srv);
    let r = result.map_err(|e| format!("{} pass trace: {e}", s.key))?;
    stopped?;
    Ok(r)
}

fn count_passes(text: &str) -> PassStats {
    let mut st = PassStats::default();
    // Per descriptor in the current pass: (writes, writes that did not return EAGAIN).
    let mut pass: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let close = |pass: &mut BTreeMap<String, (u64, u64)>, st: &mut PassStats| {
        for &(n, ok) in pass.values() {
            st.recipient_passes += 1;
            st.max_in_pass = st.max_in_pass.max(n);
            if n > 1 {
                st.over_one += 1;
                if ok <= 1 {
                    st.over_one_eagain_only += 1;
                }
            }
        }
        pass.clear();
    };
    for line in text.lines() {
        // `PID call(args) = ret`, or without the PID.
        let call = line.split_once(' ').map_or(line, |(a, b)| {
            if a.chars().all(|c| c.is_ascii_digit()) {
                b
            } else {
                line
            }
        });
        if call.starts_with("epoll_wait(") || call.starts_with("epoll_pwait(") {
            close(&mut pass, &mut st);
            st.passes += 1;
        } else if let Some(rest) = ["write(", "writev(", "sendto("]
            .iter()
            .find_map(|p| call.strip_prefix(p))
        {
            let fd = rest.split(',').next().unwrap_or("").to_string();
            let e = pass.entry(fd).or_insert((0, 0));
            e.0 += 1;
            if !call.contains("EAGAIN") {
                e.1 += 1;
            }
            st.writes += 1;
        }
    }
    close(&mut pass, &mut st);
    st
}

// ------------------------------------------------------------ statistics

fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Runs of one server in one scenario, in round order (None: that run failed).
type Runs = Vec<Option<Run>>;

struct Table {
    runs: BTreeMap<(String, &'static str), Runs>,
    meter: BTreeMap<(String, &'static str), Run>,
}

impl Table {
    fn med(&self, sc: &str, key: &str, f: impl Fn(&Run) -> f64) -> f64 {
        self.runs
            .iter()
            .find(|((s, k), _)| s == sc && *k == key)
            .map_or(f64::NAN, |(_, r)| {
                median(r.iter().flatten().map(&f).collect())
            })
    }
    /// Median over rounds of ours / peer (both from the same round).
    fn ratio(&self, sc: &str, peer: &str, f: impl Fn(&Run) -> f64) -> f64 {
        let get = |k: &str| {
            self.runs
                .iter()
                .find(|((s, kk), _)| s == sc && *kk == k)
                .map(|(_, r)| r.clone())
        };
        let (Some(a), Some(b)) = (get("ours"), get(peer)) else {
            return f64::NAN;
        };
        median(
            a.iter()
                .zip(b.iter())
                .filter_map(|(x, y)| Some(f(x.as_ref()?) / f(y.as_ref()?)))
                .collect(),
        )
    }
    fn meter(&self, sc: &str, key: &str) -> Option<&Run> {
        self.meter
            .iter()
            .find(|((s, k), _)| s == sc && *k == key)
            .map(|(_, r)| r)
    }
}

// ------------------------------------------------------------ formatting

fn f(x: f64) -> String {
    if !x.is_finite() {
        "–".into()
    } else if x.abs() >= 100_000.0 {
        format!("{:.0}k", x / 1000.0)
    } else if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn fr(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.2}×")
    } else {
        "–".into()
    }
}

fn met(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "**met**",
        Some(false) => "**not met**",
        None => "not measured",
    }
}

fn sh(cmd: &str) -> String {
    Command::new("sh")
        .args(["-c", cmd])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

// ------------------------------------------------------------ chart

fn chart(path: &Path, table: &Table, servers: &[Server], scenarios: &[EchoScenario]) -> Res<()> {
    use plotters::prelude::*;
    let root = SVGBackend::new(path, (1200, 860)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let root = root
        .titled(
            "Echo servers on loopback: throughput and p99 latency against connections (medians)",
            ("sans-serif", 20),
        )
        .map_err(|e| e.to_string())?;
    let panels = root.split_evenly((2, 2));
    let colors = [
        RGBColor(200, 30, 30),
        RGBColor(30, 100, 200),
        RGBColor(30, 150, 60),
        RGBColor(90, 90, 90),
        RGBColor(220, 140, 0),
    ];
    let sizes = [
        (64usize, 1usize, "64 B ping-pong"),
        (16384, 1, "16 KiB ping-pong"),
    ];
    for (row, &(size, depth, title)) in sizes.iter().enumerate() {
        for col in 0..2 {
            let area = &panels[row * 2 + col];
            let pick = |r: &Run| if col == 0 { r.rate } else { r.p99 };
            let mut series = Vec::new();
            for s in servers {
                let pts: Vec<(f64, f64)> = scenarios
                    .iter()
                    .filter(|sc| sc.size == size && sc.depth == depth)
                    .map(|sc| (sc.conns as f64, table.med(&sc.id(), s.key, pick)))
                    .filter(|p| p.1.is_finite() && p.1 > 0.0)
                    .collect();
                series.push(pts);
            }
            let all: Vec<f64> = series.iter().flatten().map(|p| p.1).collect();
            if all.is_empty() {
                continue;
            }
            let lo = all.iter().cloned().fold(f64::MAX, f64::min) / 1.5;
            let hi = all.iter().cloned().fold(0.0, f64::max) * 1.5;
            let (ydesc, caption) = if col == 0 {
                ("messages/s", format!("{title}: throughput"))
            } else {
                ("p99 latency (µs)", format!("{title}: p99 latency"))
            };
            let mut c = ChartBuilder::on(area)
                .caption(caption, ("sans-serif", 16))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(70)
                .build_cartesian_2d((0.7f64..1500f64).log_scale(), (lo..hi).log_scale())
                .map_err(|e| e.to_string())?;
            c.configure_mesh()
                .x_desc("connections (log)")
                .y_desc(ydesc)
                .x_label_formatter(&|x| format!("{x:.0}"))
                .y_label_formatter(&|y| {
                    if *y >= 1000.0 {
                        format!("{:.0}k", y / 1000.0)
                    } else {
                        format!("{y:.0}")
                    }
                })
                .draw()
                .map_err(|e| e.to_string())?;
            for (i, (s, pts)) in servers.iter().zip(series).enumerate() {
                let color = colors[i % colors.len()];
                c.draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                    .map_err(|e| e.to_string())?
                    .label(s.label)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                    });
                c.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
                    .map_err(|e| e.to_string())?;
            }
            c.configure_series_labels()
                .position(if col == 0 {
                    SeriesLabelPosition::LowerLeft
                } else {
                    SeriesLabelPosition::UpperLeft
                })
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font(("sans-serif", 12))
                .draw()
                .map_err(|e| e.to_string())?;
        }
    }
    root.present().map_err(|e| e.to_string())
}

// ------------------------------------------------------------ main

fn main() {
    let o = opts();
    if let Err(e) = run(&o) {
        eprintln!("harness: {e}");
        std::process::exit(1);
    }
}

fn run(o: &Opts) -> Res<()> {
    let started = Instant::now();
    std::fs::create_dir_all(o.out_dir.join("tmp")).map_err(|e| e.to_string())?;
    let (tracer, tracer_note) = tracer();
    let mut servers = echo_servers(o);
    if o.python
        && Command::new("python3")
            .arg("--version")
            .output()
            .map_or(true, |r| !r.status.success())
    {
        eprintln!("note: python3 not found; the Python server is skipped");
        servers.retain(|s| s.key != "python");
    }
    let chat = chat_servers(o);
    let mut failures: Vec<String> = Vec::new();
    let mut table = Table {
        runs: BTreeMap::new(),
        meter: BTreeMap::new(),
    };
    let mut chat_table = Table {
        runs: BTreeMap::new(),
        meter: BTreeMap::new(),
    };

    // Throughput, latency, CPU, allocations: rounds, order rotated.
    for round in 0..o.rounds {
        for sc in &o.echo {
            let n = servers.len();
            for i in 0..n {
                let s = &servers[(i + round) % n];
                let r = measure(o, s, echo_args(o, sc, o.duration), Tracer::None);
                if let Ok(r) = &r {
                    eprintln!(
                        "[{:>4}s] round {} {:<28} {:<8} {:>10.0} msg/s  p50 {:>8.1} µs  p99 {:>8.1} µs",
                        started.elapsed().as_secs(),
                        round + 1,
                        sc.label(),
                        s.key,
                        r.rate,
                        r.p50,
                        r.p99
                    );
                }
                let r = r.map_err(|e| failures.push(e.clone())).ok();
                table
                    .runs
                    .entry((sc.id(), s.key))
                    .or_insert_with(|| vec![None; o.rounds])[round] = r;
            }
        }
        for sc in &o.chat {
            for i in 0..chat.len() {
                let s = &chat[(i + round) % chat.len()];
                let r = measure(o, s, chat_args(o, sc, o.duration), Tracer::None);
                if let Ok(r) = &r {
                    eprintln!(
                        "[{:>4}s] round {} chat K = {:<5} {:<8} {:>10.0} deliveries/s  p99 {:>8.1} µs",
                        started.elapsed().as_secs(),
                        round + 1,
                        sc.clients,
                        s.key,
                        r.rate,
                        r.p99
                    );
                }
                let r = r.map_err(|e| failures.push(e.clone())).ok();
                chat_table
                    .runs
                    .entry((format!("chat-k{}", sc.clients), s.key))
                    .or_insert_with(|| vec![None; o.rounds])[round] = r;
            }
        }
    }

    // System calls: one traced run per server and scenario.
    if tracer != Tracer::None {
        for sc in &o.meter_echo {
            for s in &servers {
                match measure(o, s, echo_args(o, sc, o.meter_duration), tracer) {
                    Ok(r) => {
                        eprintln!(
                            "[{:>4}s] traced {:<28} {:<8} {:.2} syscalls/msg",
                            started.elapsed().as_secs(),
                            sc.label(),
                            s.key,
                            r.syscalls
                                .as_ref()
                                .map_or(f64::NAN, |c| total(c) as f64 / r.count)
                        );
                        table.meter.insert((sc.id(), s.key), r);
                    }
                    Err(e) => failures.push(e),
                }
            }
        }
        for sc in &o.chat {
            for s in &chat {
                match measure(o, s, chat_args(o, sc, o.meter_duration), tracer) {
                    Ok(r) => {
                        chat_table
                            .meter
                            .insert((format!("chat-k{}", sc.clients), s.key), r);
                    }
                    Err(e) => failures.push(e),
                }
            }
        }
    }

    // Writes per recipient per pass, exactly, at the middle K.
    let mut passes: Vec<(String, usize, Res<PassStats>)> = Vec::new();
    if tracer != Tracer::None && strace_works() {
        if let Some(sc) = o.chat.get(o.chat.len() / 2) {
            for s in &chat {
                let r = pass_trace(o, s, sc);
                if let Err(e) = &r {
                    failures.push(e.clone());
                }
                passes.push((s.label.to_string(), sc.clients, r));
            }
        }
    }

    // Memory per idle connection.
    let mut idle = BTreeMap::new();
    for s in servers.iter().filter(|_| o.idle) {
        match idle_rss(o, s) {
            Ok(r) => {
                eprintln!(
                    "[{:>4}s] idle {} conns {:<8} {:.0} B/conn idle, {:.0} B/conn after one echo",
                    started.elapsed().as_secs(),
                    r.conns,
                    s.key,
                    (r.idle_kb - r.base_kb) * 1024.0 / r.conns as f64,
                    (r.after_echo_kb - r.base_kb) * 1024.0 / r.conns as f64
                );
                idle.insert(s.key, r);
            }
            Err(e) => failures.push(e),
        }
    }

    // The cross-check by a tool nobody here wrote.
    let mut xcheck: Vec<(String, Res<String>)> = Vec::new();
    if o.cross_check {
        let installed = Command::new("tcp-echo-benchmark")
            .arg("--help")
            .output()
            .is_ok_and(|r| r.status.success());
        if installed {
            for s in &servers {
                xcheck.push((s.key.to_string(), cross_check(o, s)));
            }
        } else {
            xcheck.push((
                "all".into(),
                Err(
                    "tcp-echo-benchmark is not installed (`cargo install tcp-echo-benchmark`)"
                        .into(),
                ),
            ));
        }
    }

    let md = report(
        o,
        &servers,
        &chat,
        &table,
        &chat_table,
        &idle,
        &xcheck,
        &passes,
        &tracer_note,
        &failures,
        started,
    );
    let md_path = o.out_dir.join("benchmarks.md");
    std::fs::write(&md_path, md).map_err(|e| e.to_string())?;
    let svg_path = o.out_dir.join("benchmarks.svg");
    chart(&svg_path, &table, &servers, &o.echo)?;
    let _ = std::fs::remove_dir_all(o.out_dir.join("tmp"));
    eprintln!(
        "wrote {} and {} in {} s",
        md_path.display(),
        svg_path.display(),
        started.elapsed().as_secs()
    );
    if !failures.is_empty() {
        for f in &failures {
            eprintln!("FAILED: {f}");
        }
        return Err(format!("{} runs failed", failures.len()));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn report(
    o: &Opts,
    servers: &[Server],
    chat: &[Server],
    t: &Table,
    ct: &Table,
    idle: &BTreeMap<&str, Idle>,
    xcheck: &[(String, Res<String>)],
    passes: &[(String, usize, Res<PassStats>)],
    tracer_note: &str,
    failures: &[String],
    started: Instant,
) -> String {
    let mut m = String::new();
    let w = &mut m;
    let cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2");
    let _ = writeln!(
        w,
        "# Benchmarks{}\n",
        if o.smoke {
            " (smoke run: not for judging)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        w,
        "Generated by `bench/src/bin/harness.rs` for issue 5; reproduce from the repository root with\n\n```sh\n{}\n```\n",
        o.command
    );
    let _ = writeln!(w, "| | |\n|---|---|");
    let _ = writeln!(
        w,
        "| measured | {} (binaries built when the run started) |",
        o.tree
    );
    let _ = writeln!(w, "| date | {} |", sh("date -u '+%Y-%m-%d %H:%M UTC'"));
    let _ = writeln!(
        w,
        "| machine | `nproc` = {}, kernel `{}`, CPU {} |",
        sh("nproc"),
        sh("uname -r"),
        cpu.trim()
    );
    let _ = writeln!(
        w,
        "| load average at the end | {} |",
        sh("cut -d' ' -f1-3 /proc/loadavg")
    );
    let _ = writeln!(
        w,
        "| rounds | {} (each server once per scenario per round, order rotated each round) |",
        o.rounds
    );
    let _ = writeln!(w, "| window | {} s warm-up, then {} s measured (closed loop; in-flight messages drained, so the window holds whole messages) |", o.warmup, o.duration);
    let _ = writeln!(
        w,
        "| pinning | servers `taskset -c 0`; load generator and tracer `taskset -c 1` |"
    );
    let _ = writeln!(w, "| system calls | {tracer_note}; one extra {} s run per server and scenario with the tracer attached (not used for throughput) |", o.meter_duration);
    let _ = writeln!(w, "| wall time | {} s |", started.elapsed().as_secs());
    let _ = writeln!(
        w,
        "\nThis is a shared 2-core machine: other developers build and test on it while the harness runs, so throughput and latency carry noise that the per-round ratios only partly cancel. System calls, allocations and memory per connection are counts and barely move with noise; trust those first.\n"
    );

    let _ = writeln!(w, "## Servers\n");
    for s in servers {
        let what = match s.key {
            "ours" => "`bench/src/bin/ours_echo.rs`: the Reactor with `examples/multiconn_echo.rs`'s handler (`cx.send_from(id, inb)`), `Config::default()`, plus a counting global allocator",
            "raw_mio" => "`bench/src/bin/raw_mio_echo.rs`: the same algorithm on bare mio (Poll + Slab, registered R|W once, read until short read, write straight back)",
            "tokio" => "`bench/src/bin/tokio_echo.rs`: `current_thread` runtime, a task per connection, 4 KiB buffer, `read`/`write_all` loop",
            "epoll" => "`bench/src/bin/epoll_echo.rs`: libc epoll, edge-triggered, added once, one `read` and one `write` per message",
            "python" => "`bench/python/multiconn_server.py` under `python3`: the tutorial's `selectors` multiconn server (level-triggered, `recv(1024)`, registered READ|WRITE)",
            _ => "",
        };
        let _ = writeln!(w, "- **{}** — {what}", s.label);
    }
    let _ = writeln!(w, "- Chat: **ours** is `examples/chatroom/` (release build; `--rate 1000000 --burst 1000000` lifts the per-client rate limit, a policy rather than a cost); **tokio chat** is `bench/src/bin/tokio_chat.rs`, tokio's chat example (shared map of unbounded channels, `Framed<LinesCodec>`, a task per client) on `current_thread`, relaying `<NAME> LINE` like ours.");
    let _ = writeln!(w, "\nEvery server sets TCP_NODELAY on its connections (the Python one too, a deviation from the tutorial) so that Nagle's algorithm does not decide the pipelined results.\n");

    // ---- targets
    let pp100 = EchoScenario {
        conns: 100,
        size: 64,
        depth: 1,
    }
    .id();
    let pp1 = EchoScenario {
        conns: 1,
        size: 64,
        depth: 1,
    }
    .id();
    let _ = writeln!(w, "## Targets (issue 5)\n");
    let _ = writeln!(w, "| target | measured (ours) | result |\n|---|---|---|");
    let sc_per = |sc: &str, key: &str| -> Option<(f64, BTreeMap<String, u64>)> {
        let r = t.meter(sc, key)?;
        Some((r.count, r.syscalls.clone()?))
    };
    if let Some((n, c)) = sc_per(&pp100, "ours") {
        let per = total(&c) as f64 / n;
        let _ = writeln!(w, "| echo N = 100, 64 B: ≤ 2.05 system calls per message | {per:.3} (read {:.3}, write {:.3}, epoll_wait {:.3}, epoll_ctl {:.3}) | {} |",
            reads(&c) as f64 / n, writes(&c) as f64 / n, waits(&c) as f64 / n, c["epoll_ctl"] as f64 / n, met(Some(per <= 2.05)));
        let _ = writeln!(w, "| echo N = 100, 64 B: no `epoll_ctl` in steady state | {} `epoll_ctl` in {:.0} messages | {} |", c["epoll_ctl"], n, met(Some(c["epoll_ctl"] == 0)));
    } else {
        let _ = writeln!(
            w,
            "| echo N = 100, 64 B: ≤ 2.05 system calls per message, no `epoll_ctl` | – | {} |",
            met(None)
        );
    }
    {
        let runs: Vec<(u64, f64)> = t
            .runs
            .get(&(pp100.clone(), "ours"))
            .map(|r| {
                r.iter()
                    .flatten()
                    .filter_map(|r| Some((r.allocs?.0, r.count)))
                    .collect()
            })
            .unwrap_or_default();
        if runs.is_empty() {
            let _ = writeln!(
                w,
                "| echo N = 100, 64 B: zero heap allocations per message | – | {} |",
                met(None)
            );
        } else {
            let allocs: u64 = runs.iter().map(|r| r.0).sum();
            let msgs: f64 = runs.iter().map(|r| r.1).sum();
            let _ = writeln!(w, "| echo N = 100, 64 B: zero heap allocations per message | {allocs} allocations in {msgs:.0} messages ({:.6}/msg) over {} windows | {} |", allocs as f64 / msgs, runs.len(), met(Some(allocs == 0)));
        }
    }
    for sc in o.echo.iter().filter(|s| s.depth > 1) {
        if let Some((n, c)) = sc_per(&sc.id(), "ours") {
            let per = total(&c) as f64 / n;
            let _ = writeln!(w, "| pipelined ({}): ≤ 0.25 system calls per message | {per:.3} (read {:.3}, write {:.3}, epoll_wait {:.3}) | {} |", sc.label(), reads(&c) as f64 / n, writes(&c) as f64 / n, waits(&c) as f64 / n, met(Some(per <= 0.25)));
        }
    }
    for sc in o.echo.iter().filter(|s| s.conns >= 100) {
        let id = sc.id();
        let rt = t.ratio(&id, "tokio", |r| r.rate);
        let rr = t.ratio(&id, "raw_mio", |r| r.rate);
        let re = t.ratio(&id, "epoll", |r| r.rate);
        let cu = t.ratio(&id, "tokio", |r| r.user_us);
        let ok = |x: f64, lim: f64, ge: bool| {
            if x.is_finite() {
                Some(if ge { x >= lim } else { x <= lim })
            } else {
                None
            }
        };
        let _ = writeln!(
            w,
            "| {}: throughput ≥ 1.0× tokio | {} | {} |",
            sc.label(),
            fr(rt),
            met(ok(rt, 1.0, true))
        );
        let _ = writeln!(
            w,
            "| {}: throughput ≥ 0.95× raw mio | {} | {} |",
            sc.label(),
            fr(rr),
            met(ok(rr, 0.95, true))
        );
        let _ = writeln!(
            w,
            "| {}: throughput ≥ 0.8× epoll floor | {} | {} |",
            sc.label(),
            fr(re),
            met(ok(re, 0.8, true))
        );
        let _ = writeln!(
            w,
            "| {}: user CPU per message ≤ 0.75× tokio | {} | {} |",
            sc.label(),
            fr(cu),
            met(ok(cu, 0.75, false))
        );
    }
    if o.echo.iter().any(|s| s.id() == pp1) {
        let r = t.ratio(&pp1, "epoll", |r| r.p50);
        let _ = writeln!(
            w,
            "| echo N = 1, 64 B: p50 latency ≤ 1.1× the floor | {} ({:.1} µs vs {:.1} µs) | {} |",
            fr(r),
            t.med(&pp1, "ours", |r| r.p50),
            t.med(&pp1, "epoll", |r| r.p50),
            met(r.is_finite().then_some(r <= 1.1))
        );
    }
    if let Some(i) = idle.get("ours") {
        let per = (i.idle_kb - i.base_kb) * 1024.0 / i.conns as f64;
        let _ = writeln!(w, "| ≤ 256 B of user-space memory per idle connection ({} connections) | {per:.0} B (after one echo on each: {:.0} B) | {} |", i.conns, (i.after_echo_kb - i.base_kb) * 1024.0 / i.conns as f64, met(Some(per <= 256.0)));
    }
    for sc in &o.chat {
        let id = format!("chat-k{}", sc.clients);
        if let Some((_, _, Ok(p))) = passes
            .iter()
            .find(|(l, k, _)| l.starts_with("ours") && *k == sc.clients)
        {
            let _ = writeln!(w, "| chat K = {}: ≤ 1 write per recipient per loop pass (strace of one second) | {} of {} recipient-passes had more than one write (most in one pass: {}); in {} of those every extra write returned EAGAIN; {:.2} writes per recipient-pass | {} |",
                sc.clients, p.over_one, p.recipient_passes, p.max_in_pass, p.over_one_eagain_only, p.writes as f64 / p.recipient_passes.max(1) as f64, met(Some(p.over_one == 0)));
        }
        if sc.clients >= 100 {
            let rt = ct.ratio(&id, "tokio", |r| r.rate);
            let _ = writeln!(
                w,
                "| chat K = {}: deliveries/s ≥ 1.5× tokio chat | {} ({} vs {}) | {} |",
                sc.clients,
                fr(rt),
                f(ct.med(&id, "ours", |r| r.rate)),
                f(ct.med(&id, "tokio", |r| r.rate)),
                met(rt.is_finite().then_some(rt >= 1.5))
            );
        }
    }
    let _ = writeln!(w, "| Python semantics stay (level-triggered `Selector`, every test) | `cargo test` in `.ci/run` | see CI |\n");

    // ---- echo table
    let _ = writeln!(w, "## Echo: medians over {} rounds\n", o.rounds);
    let _ = writeln!(w, "msg/s is messages echoed per second; latency from queueing a message to its last byte back; CPU is the server's user and system time per message from `/proc/PID/stat` (10 ms ticks); ratios are ours ÷ that server, per round, then the median.\n");
    let _ = writeln!(w, "| scenario | server | msg/s | msg/s min–max | p50 µs | p99 µs | user µs/msg | sys µs/msg | RSS KiB | ours÷it msg/s | ours÷it p50 | ours÷it user CPU |");
    let _ = writeln!(w, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    for sc in &o.echo {
        let id = sc.id();
        for s in servers {
            let ratio = |g: fn(&Run) -> f64| {
                if s.key == "ours" {
                    "".to_string()
                } else {
                    fr(t.ratio(&id, s.key, g))
                }
            };
            let rates: Vec<f64> = t
                .runs
                .get(&(id.clone(), s.key))
                .map(|r| r.iter().flatten().map(|r| r.rate).collect())
                .unwrap_or_default();
            let spread = format!(
                "{}–{}",
                f(rates.iter().cloned().fold(f64::INFINITY, f64::min)),
                f(rates.iter().cloned().fold(f64::NEG_INFINITY, f64::max))
            );
            let _ = writeln!(
                w,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                sc.label(),
                s.label,
                f(t.med(&id, s.key, |r| r.rate)),
                spread,
                f(t.med(&id, s.key, |r| r.p50)),
                f(t.med(&id, s.key, |r| r.p99)),
                f(t.med(&id, s.key, |r| r.user_us)),
                f(t.med(&id, s.key, |r| r.sys_us)),
                f(t.med(&id, s.key, |r| r.rss_kb)),
                ratio(|r| r.rate),
                ratio(|r| r.p50),
                ratio(|r| r.user_us),
            );
        }
    }

    // ---- syscalls
    let _ = writeln!(w, "\n## System calls per message (one traced run each)\n");
    if t.meter.is_empty() {
        let _ = writeln!(w, "Not measured: {tracer_note}.\n");
    } else {
        let _ = writeln!(w, "reads = `read` + `recvfrom`; writes = `write` + `writev` + `sendto`; waits = `epoll_wait` + `epoll_pwait`.\n");
        let _ = writeln!(
            w,
            "| scenario | server | total | reads | writes | waits | epoll_ctl | raw counts |"
        );
        let _ = writeln!(w, "|---|---|---|---|---|---|---|---|");
        for sc in &o.meter_echo {
            for s in servers {
                let Some(r) = t.meter(&sc.id(), s.key) else {
                    continue;
                };
                let Some(c) = &r.syscalls else { continue };
                let n = r.count;
                let raw: Vec<String> = c
                    .iter()
                    .filter(|(_, v)| **v > 0)
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect();
                let _ = writeln!(
                    w,
                    "| {} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.4} | {} in {:.0} msgs |",
                    sc.label(),
                    s.label,
                    total(c) as f64 / n,
                    reads(c) as f64 / n,
                    writes(c) as f64 / n,
                    waits(c) as f64 / n,
                    c["epoll_ctl"] as f64 / n,
                    raw.join(", "),
                    n
                );
            }
        }
    }

    // ---- allocations
    let _ = writeln!(
        w,
        "\n## Heap allocations per message (ours, counting allocator)\n"
    );
    let _ = writeln!(w, "Snapshots (SIGUSR1) after the warm-up and after the drained window: (allocations after − before) ÷ messages, summed over all rounds.\n");
    let _ = writeln!(
        w,
        "| scenario | allocations | bytes | messages | per message |\n|---|---|---|---|---|"
    );
    for sc in &o.echo {
        if let Some(runs) = t.runs.get(&(sc.id(), "ours")) {
            let (a, b, n) = runs
                .iter()
                .flatten()
                .filter_map(|r| Some((r.allocs?, r.count)))
                .fold((0, 0, 0.0), |acc, ((a, b), n)| {
                    (acc.0 + a, acc.1 + b, acc.2 + n)
                });
            let _ = writeln!(
                w,
                "| {} | {a} | {b} | {n:.0} | {:.6} |",
                sc.label(),
                a as f64 / n
            );
        }
    }

    // ---- idle memory
    let _ = writeln!(w, "\n## Memory per idle connection\n");
    let _ = writeln!(w, "VmRSS of the server before and after a separate process opens {} connections and holds them idle; then after one 64 B echo on every connection at once (buffers taken and, where pooled, kept). Kernel socket memory is not in VmRSS.\n", o.idle_conns);
    let _ = writeln!(w, "| server | base RSS KiB | idle: bytes/conn | after one echo each: bytes/conn |\n|---|---|---|---|");
    for s in servers {
        if let Some(i) = idle.get(s.key) {
            let _ = writeln!(
                w,
                "| {} | {:.0} | {:.0} | {:.0} |",
                s.label,
                i.base_kb,
                (i.idle_kb - i.base_kb) * 1024.0 / i.conns as f64,
                (i.after_echo_kb - i.base_kb) * 1024.0 / i.conns as f64
            );
        }
    }

    // ---- chat
    let _ = writeln!(w, "\n## Chat fan-out: medians over {} rounds\n", o.rounds);
    let _ = writeln!(w, "K clients each send 64-byte lines at a fixed rate (open loop, phases spread); each line carries its send time. Deliveries/s = relayed lines received ÷ (window + drain); when the server cannot keep up the drain grows, so this is its capacity. Writes per delivery come from the traced run.\n");
    let _ = writeln!(w, "| K | lines/s per client | offered deliveries/s | server | deliveries/s | p50 µs | p99 µs | user µs/delivery | sys µs/delivery | writes/delivery | RSS KiB | clients cut off | ours÷it deliveries/s |");
    let _ = writeln!(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for sc in &o.chat {
        let id = format!("chat-k{}", sc.clients);
        for s in chat {
            let wpd = ct
                .meter(&id, s.key)
                .and_then(|r| Some(writes(r.syscalls.as_ref()?) as f64 / r.count))
                .unwrap_or(f64::NAN);
            let ratio = if s.key == "ours" {
                String::new()
            } else {
                fr(ct.ratio(&id, s.key, |r| r.rate))
            };
            let _ = writeln!(
                w,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                sc.clients,
                sc.rate,
                f(sc.clients as f64 * (sc.clients as f64 - 1.0) * sc.rate),
                s.label,
                f(ct.med(&id, s.key, |r| r.rate)),
                f(ct.med(&id, s.key, |r| r.p50)),
                f(ct.med(&id, s.key, |r| r.p99)),
                f(ct.med(&id, s.key, |r| r.user_us)),
                f(ct.med(&id, s.key, |r| r.sys_us)),
                f(wpd),
                f(ct.med(&id, s.key, |r| r.rss_kb)),
                f(ct.med(&id, s.key, |r| r
                    .extra
                    .get("dropped")
                    .copied()
                    .unwrap_or(f64::NAN))),
                ratio
            );
        }
    }

    if !ct.meter.is_empty() {
        let _ = writeln!(
            w,
            "\nSystem calls of the chat servers in the traced run, per delivery:\n"
        );
        let _ = writeln!(w, "| K | server | reads | writes | waits | epoll_ctl | raw counts |\n|---|---|---|---|---|---|---|");
        for sc in &o.chat {
            let id = format!("chat-k{}", sc.clients);
            for s in chat {
                let Some(r) = ct.meter(&id, s.key) else {
                    continue;
                };
                let Some(c) = &r.syscalls else { continue };
                let n = r.count;
                let raw: Vec<String> = c
                    .iter()
                    .filter(|(_, v)| **v > 0)
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect();
                let _ = writeln!(
                    w,
                    "| {} | {} | {:.4} | {:.4} | {:.4} | {:.4} | {} in {:.0} deliveries |",
                    sc.clients,
                    s.label,
                    reads(c) as f64 / n,
                    writes(c) as f64 / n,
                    waits(c) as f64 / n,
                    c["epoll_ctl"] as f64 / n,
                    raw.join(", "),
                    n
                );
            }
        }
    }
    if !passes.is_empty() {
        let _ = writeln!(w, "\nWrites per recipient per loop pass, exactly: `strace -f -e trace=epoll_wait,write,writev,sendto` attached for one second of the chat run (strace slows the server, so passes are fuller than untraced); the calls between two `epoll_wait`s are one pass, counted per descriptor.\n");
        let _ = writeln!(w, "| K | server | passes | recipient-passes with a write | with more than one | of those, extras all EAGAIN | most in one pass | writes per recipient-pass |\n|---|---|---|---|---|---|---|---|");
        for (label, k, r) in passes {
            match r {
                Ok(p) => {
                    let _ = writeln!(
                        w,
                        "| {k} | {label} | {} | {} | {} | {} | {} | {:.3} |",
                        p.passes,
                        p.recipient_passes,
                        p.over_one,
                        p.over_one_eagain_only,
                        p.max_in_pass,
                        p.writes as f64 / p.recipient_passes.max(1) as f64
                    );
                }
                Err(e) => {
                    let _ = writeln!(w, "| {k} | {label} | failed: {e} | | | | | |");
                }
            }
        }
    }

    // ---- cross-check
    let _ = writeln!(w, "\n## Cross-check: `tcp-echo-benchmark` (crates.io)\n");
    if xcheck.is_empty() {
        let _ = writeln!(w, "Not run in this mode.");
    } else {
        let _ = writeln!(w, "`tcp-echo-benchmark -a ADDR -l 64 -c 100 -t 5` (its own client: a thread per connection, unpinned on core 1), throughput only, one run per server:\n");
        let _ = writeln!(w, "| server | its output |\n|---|---|");
        for (k, r) in xcheck {
            match r {
                Ok(s) => {
                    let _ = writeln!(w, "| {k} | {s} |");
                }
                Err(e) => {
                    let _ = writeln!(w, "| {k} | failed: {e} |");
                }
            }
        }
    }

    if !failures.is_empty() {
        let _ = writeln!(w, "\n## Failed runs\n");
        for f in failures {
            let _ = writeln!(w, "- {f}");
        }
    }
    let _ = writeln!(
        w,
        "\n![throughput and p99 against connections](benchmarks.svg)"
    );
    // The hand-written reading of the figures (misses and their causes)
    // lives beside the harness, so that regenerating keeps it.
    if !o.smoke {
        if let Ok(notes) = std::fs::read_to_string("bench/NOTES.md") {
            let _ = writeln!(w, "\n{}", notes.trim_end());
        }
    }
    m
}
