//! What is read from a running server: CPU, memory, descriptors, the
//! counting allocator's snapshots and the system-call tracers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::processes::{signal, wait_exit};
use crate::Res;

/// utime and stime of a process (all threads), in seconds.
pub fn cpu_secs(pid: u32) -> Res<(f64, f64)> {
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

pub fn rss_kb(pid: u32) -> Res<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| e.to_string())?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| "no VmRSS".into())
}

pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Asks ours for an allocator snapshot (SIGUSR1) and reads it.
pub fn alloc_snapshot(pid: u32, file: &Path, last_seq: &mut u64) -> Res<(u64, u64)> {
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

pub const SYSCALLS: &[&str] = &[
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
pub enum Tracer {
    Perf,
    Strace,
    None,
}

/// perf if its syscall tracepoints work, else strace, else none;
/// `BENCH_TRACER=perf|strace|none` forces one (to test the fallbacks).
pub fn tracer() -> (Tracer, String) {
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

pub fn strace_works() -> bool {
    Command::new("strace")
        .args(["-c", "-o", "/dev/null", "true"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

pub fn perf_works() -> bool {
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

pub struct Trace {
    pub child: Child,
    pub out: PathBuf,
    pub kind: Tracer,
}

pub fn start_trace(kind: Tracer, pid: u32, out: &Path) -> Res<Option<Trace>> {
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

pub fn stop_trace(mut t: Trace) -> Res<BTreeMap<String, u64>> {
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

pub fn reads(c: &BTreeMap<String, u64>) -> u64 {
    c["read"] + c["recvfrom"]
}
pub fn writes(c: &BTreeMap<String, u64>) -> u64 {
    c["write"] + c["writev"] + c["sendto"]
}
pub fn waits(c: &BTreeMap<String, u64>) -> u64 {
    c["epoll_wait"] + c["epoll_pwait"]
}
pub fn total(c: &BTreeMap<String, u64>) -> u64 {
    c.values().sum()
}
