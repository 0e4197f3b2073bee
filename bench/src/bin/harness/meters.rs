//! What is read from a running server: CPU, memory, descriptors and the
//! counting allocator's snapshots (the system-call tracers are in `trace`).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::processes::signal;
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

/// CPU seconds (user + system) of each thread of `pid` named `reactor-*`
/// (the spec names a group's threads `reactor-0` …): how the work spread.
pub fn reactor_cpu(pid: u32) -> BTreeMap<String, f64> {
    let mut m = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return m;
    };
    // SAFETY: sysconf has no preconditions.
    let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    for t in dir.flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        let comm = comm.trim();
        if !comm.starts_with("reactor-") {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
            continue;
        };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 = f.get(11..13).map_or(0.0, |v| {
            v.iter().filter_map(|x| x.parse::<f64>().ok()).sum()
        });
        m.insert(comm.to_string(), ticks / tck);
    }
    m
}
