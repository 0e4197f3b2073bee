//! One measured window (or idle-memory run, cross-check, pass trace) of one
//! server in one scenario.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::config::{ChatScenario, EchoScenario, Opts, Server};
use crate::meters::{alloc_snapshot, cpu_secs, fd_count, rss_kb, start_trace, stop_trace, Tracer};
use crate::processes::{num, signal, start_server, stop_server, wait_exit, Load};
use crate::Res;

#[derive(Default, Clone)]
pub struct Run {
    pub rate: f64,
    pub p50: f64,
    pub p99: f64,
    pub count: f64,
    pub user_us: f64,
    pub sys_us: f64,
    pub allocs: Option<(u64, u64)>,
    pub rss_kb: f64,
    pub syscalls: Option<BTreeMap<String, u64>>,
    pub extra: BTreeMap<String, f64>,
}

pub fn scratch(o: &Opts, name: &str) -> PathBuf {
    o.out_dir.join("tmp").join(name)
}

/// One measured window of `load_args` against `s`, with the tracer if
/// asked; a failed run is tried once more (a busy machine can starve a
/// server past a backlog), and the failure is kept only if that fails too.
pub fn measure(o: &Opts, s: &Server, load_args: Vec<String>, tracer: Tracer) -> Res<Run> {
    measure_once(o, s, load_args.clone(), tracer).or_else(|e| {
        eprintln!("note: retrying once after: {e}");
        measure_once(o, s, load_args, tracer)
    })
}

pub fn measure_once(o: &Opts, s: &Server, load_args: Vec<String>, tracer: Tracer) -> Res<Run> {
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
pub fn cross_check(o: &Opts, s: &Server) -> Res<String> {
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
pub struct PassStats {
    pub passes: u64,
    /// (pass, descriptor) pairs that saw at least one write.
    pub recipient_passes: u64,
    /// ... of which saw more than one.
    pub over_one: u64,
    /// ... of which saw more than one where every extra write returned EAGAIN.
    pub over_one_eagain_only: u64,
    pub writes: u64,
    pub max_in_pass: u64,
}

pub fn pass_trace(o: &Opts, s: &Server, sc: &ChatScenario) -> Res<PassStats> {
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

pub fn count_passes(text: &str) -> PassStats {
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
