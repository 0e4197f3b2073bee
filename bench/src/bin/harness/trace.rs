//! The system-call meter: every system call a server makes in one measured
//! window, counted by `perf stat` (tracepoints) or `strace -c`, fail-closed.
//!
//! - **Every call counts.** perf counts `raw_syscalls:sys_enter` (each system
//!   call, whatever its name) next to named tracepoints for the breakdown;
//!   what the names do not cover is reported as `other`. strace's summary
//!   lists every call by name and its total row is checked against the sum.
//! - **Nothing unparsable becomes 0.** A count perf marks `<not supported>`,
//!   a row strace prints that does not parse, a requested event missing from
//!   the output: each fails the run instead.
//! - **Attached before the window, checked after.** perf starts with its
//!   counters disabled (`-D -1`) and is enabled through its control FIFO,
//!   which answers `ack` once counting is on; strace is waited for until it
//!   reports the process attached. After the window the counts must pass a
//!   sanity check ([`Expect`]: e.g. at least one read per ping-pong message),
//!   so a tracer that missed part of the window fails the run rather than
//!   understating.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use crate::processes::{lines_of, signal, wait_exit};
use crate::Res;

/// How long a tracer may take to attach or to acknowledge a command.
const ATTACH: Duration = Duration::from_secs(30);

/// The calls the report names; perf counts each one with its own tracepoint
/// (every other call still counts, in `total`). A tracepoint this kernel
/// lacks is left out when the tracer is chosen.
const NAMED: &[&str] = &[
    "read",
    "readv",
    "recvfrom",
    "recvmsg",
    "write",
    "writev",
    "sendto",
    "sendmsg",
    "epoll_wait",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_ctl",
    "accept4",
    "close",
    "futex",
];
const READS: &[&str] = &["read", "readv", "recvfrom", "recvmsg"];
const WRITES: &[&str] = &["write", "writev", "sendto", "sendmsg"];
const WAITS: &[&str] = &["epoll_wait", "epoll_pwait", "epoll_pwait2"];

#[derive(Clone, PartialEq, Debug)]
pub enum Tracer {
    /// perf stat, with the named tracepoints this kernel has.
    Perf(Vec<&'static str>),
    Strace,
    None,
}

/// Every system call of one server in one window.
#[derive(Clone, Default, Debug)]
pub struct Syscalls {
    /// Every call entered (perf: `raw_syscalls:sys_enter`; strace: its total).
    pub total: u64,
    /// Per name: perf's named tracepoints, or every name strace saw.
    pub by_name: BTreeMap<String, u64>,
    /// `write`s to the server's eventfds (cross-thread wake-ups); perf only.
    pub wakes: Option<u64>,
}

impl Syscalls {
    fn sum(&self, names: &[&str]) -> u64 {
        names
            .iter()
            .filter_map(|n| self.by_name.get(*n))
            .sum::<u64>()
    }
    pub fn reads(&self) -> u64 {
        self.sum(READS)
    }
    pub fn writes(&self) -> u64 {
        self.sum(WRITES)
    }
    pub fn waits(&self) -> u64 {
        self.sum(WAITS)
    }
    pub fn ctl(&self) -> u64 {
        self.sum(&["epoll_ctl"])
    }
    /// The calls no named count covers (perf), so that the breakdown
    /// always adds up to `total`.
    pub fn other(&self) -> u64 {
        self.total - self.by_name.values().sum::<u64>()
    }
    /// `name count` for every non-zero count, then `other`.
    pub fn raw(&self) -> String {
        let mut v: Vec<String> = self
            .by_name
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        if self.other() > 0 {
            v.push(format!("other {}", self.other()));
        }
        v.join(", ")
    }
}

/// What the counts of a window must at least show, or the tracer missed
/// part of it: the fewest reads and writes that could have carried the
/// window's messages.
#[derive(Clone, Copy, Debug)]
pub struct Expect {
    pub reads: u64,
    pub writes: u64,
    pub what: &'static str,
}

/// perf if its syscall tracepoints work, else strace, else none;
/// `BENCH_TRACER=perf|strace|none` forces one (to test the fallbacks).
pub fn tracer() -> (Tracer, String) {
    let forced = std::env::var("BENCH_TRACER").unwrap_or_default();
    if forced != "strace" && forced != "none" {
        if let Some(named) = perf_tracepoints() {
            return (
                Tracer::Perf(named),
                "perf stat: `raw_syscalls:sys_enter` (every call) plus `syscalls:sys_enter_*` for the named ones, enabled through perf's control FIFO once attached".into(),
            );
        }
    }
    if forced != "none" && strace_works() {
        eprintln!(
            "note: perf syscall tracepoints unavailable; counting system calls with strace -c -f"
        );
        return (
            Tracer::Strace,
            "strace -c -f (perf unavailable), waited for until attached".into(),
        );
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

/// The named tracepoints this kernel has, if perf can count
/// `raw_syscalls:sys_enter` (else None).
fn perf_tracepoints() -> Option<Vec<&'static str>> {
    let counts = |events: &str| {
        Command::new("perf")
            .args(["stat", "-x,", "-e", events, "--", "true"])
            .stdout(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
    };
    let base = counts("raw_syscalls:sys_enter")?;
    base.contains("raw_syscalls:sys_enter").then_some(())?;
    let named: Vec<&'static str> = NAMED
        .iter()
        .copied()
        .filter(|n| counts(&format!("syscalls:sys_enter_{n}")).is_some())
        .collect();
    // Without these the report's columns would be empty, not zero.
    ["read", "write", "epoll_wait", "epoll_ctl"]
        .iter()
        .all(|n| named.contains(n))
        .then_some(named)
}

/// A tracer attached to a server, counting.
pub struct Trace {
    child: Child,
    out: PathBuf,
    kind: Tracer,
    /// perf: its control FIFO and the FIFO it acknowledges on.
    ctl: Option<(File, File)>,
    /// strace: its stderr, kept drained so it never blocks on it.
    _stderr: Option<Receiver<String>>,
    /// The eventfds whose writes perf counts separately, in event order.
    eventfds: Vec<String>,
}

/// Attaches `kind` to `pid` and returns once it is counting. `cpus` is the
/// tracer's `taskset` list (the load generator's cores); `dir` holds its
/// output and FIFOs.
pub fn start_trace(kind: &Tracer, pid: u32, cpus: &str, dir: &Path) -> Res<Option<Trace>> {
    let out = dir.join("trace.txt");
    let _ = std::fs::remove_file(&out);
    match kind {
        Tracer::None => Ok(None),
        Tracer::Perf(named) => start_perf(named, pid, cpus, dir, out).map(Some),
        Tracer::Strace => start_strace(pid, cpus, out).map(Some),
    }
}

fn start_perf(
    named: &[&'static str],
    pid: u32,
    cpus: &str,
    dir: &Path,
    out: PathBuf,
) -> Res<Trace> {
    let (ctl_path, ack_path) = (dir.join("perf-ctl.fifo"), dir.join("perf-ack.fifo"));
    mkfifo(&ctl_path)?;
    mkfifo(&ack_path)?;
    let mut events = vec!["raw_syscalls:sys_enter".to_string()];
    events.extend(named.iter().map(|n| format!("syscalls:sys_enter_{n}")));
    let eventfds = eventfds(pid);
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", cpus, "perf", "stat", "-x,", "-D", "-1", "-o"])
        .arg(&out)
        .arg(format!(
            "--control=fifo:{},{}",
            ctl_path.display(),
            ack_path.display()
        ))
        .args(["-e", &events.join(",")]);
    if !eventfds.is_empty() {
        let filter: Vec<String> = eventfds.iter().map(|fd| format!("fd == {fd}")).collect();
        cmd.args([
            "-e",
            "syscalls:sys_enter_write",
            "--filter",
            &filter.join(" || "),
        ]);
    }
    let mut child = cmd
        .args(["-p", &pid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("perf: {e}"))?;
    let rx = lines_of(child.stderr.take().expect("stderr"));
    let mut t = Trace {
        child,
        out,
        kind: Tracer::Perf(named.to_vec()),
        ctl: None,
        _stderr: None,
        eventfds,
    };
    // perf opens the ack FIFO for writing, which waits for a reader: open
    // ours first (a non-blocking read end never waits), then the control
    // FIFO, which perf holds open read-write.
    let ack = open_fifo(&ack_path, false, &mut t.child)?;
    let ctl = open_fifo(&ctl_path, true, &mut t.child)?;
    t.ctl = Some((ctl, ack));
    // `Events disabled` on stderr: the counters are open on every thread
    // of the server (disabled); a command sent before that is lost.
    let seen = wait_for(&rx, "Events disabled");
    t._stderr = Some(rx);
    if let Err(e) = seen {
        let _ = t.child.kill();
        let _ = t.child.wait();
        return Err(format!("perf: {e}"));
    }
    t.command("enable")?;
    Ok(t)
}

fn start_strace(pid: u32, cpus: &str, out: PathBuf) -> Res<Trace> {
    let mut child = Command::new("taskset")
        .args(["-c", cpus, "strace", "-c", "-f", "-o"])
        .arg(&out)
        .args(["-p", &pid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("strace: {e}"))?;
    let rx = lines_of(child.stderr.take().expect("stderr"));
    // `strace: Process PID attached` (with `-f` on a threaded process,
    // `... attached with N threads`): from then on every call is counted.
    if let Err(e) = wait_for(&rx, &format!("Process {pid} attached")) {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!("strace: {e}"));
    }
    Ok(Trace {
        child,
        out,
        kind: Tracer::Strace,
        ctl: None,
        _stderr: Some(rx),
        eventfds: Vec::new(),
    })
}

/// Waits (up to [`ATTACH`]) for a line of a tracer's stderr containing `want`.
pub fn wait_for(rx: &Receiver<String>, want: &str) -> Res<()> {
    let deadline = Instant::now() + ATTACH;
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(l) if l.contains(want) => return Ok(()),
            Ok(_) => {}
            Err(_) => return Err(format!("no `{want}` within {ATTACH:?}")),
        }
    }
}

impl Trace {
    /// Sends a command on perf's control FIFO and waits for its `ack`.
    fn command(&mut self, cmd: &str) -> Res<()> {
        let Some((ctl, ack)) = self.ctl.as_mut() else {
            return Ok(());
        };
        writeln!(ctl, "{cmd}").map_err(|e| format!("perf control: {e}"))?;
        let deadline = Instant::now() + ATTACH;
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        // perf writes `ack\n` and a NUL.
        while !got.windows(4).any(|w| w == b"ack\n") {
            match ack.read(&mut buf) {
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(format!("perf ack: {e}")),
            }
            if Instant::now() > deadline || matches!(self.child.try_wait(), Ok(Some(_))) {
                return Err(format!("perf did not acknowledge `{cmd}`"));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(())
    }
}

/// Stops counting, reads the counts and checks them against `expect`.
pub fn stop_trace(mut t: Trace, expect: Expect) -> Res<Syscalls> {
    t.command("disable")?;
    signal(t.child.id(), libc::SIGINT);
    wait_exit(&mut t.child, Duration::from_secs(10)).ok_or("tracer did not stop")?;
    let text = std::fs::read_to_string(&t.out).map_err(|e| format!("tracer output: {e}"))?;
    let c = match &t.kind {
        Tracer::Perf(named) => parse_perf(&text, named, !t.eventfds.is_empty())?,
        Tracer::Strace => parse_strace(&text)?,
        Tracer::None => return Err("no tracer".into()),
    };
    if c.reads() < expect.reads || c.writes() < expect.writes {
        return Err(format!(
            "the tracer saw {} reads and {} writes where {} needs at least {} and {}: it missed part of the window",
            c.reads(),
            c.writes(),
            expect.what,
            expect.reads,
            expect.writes
        ));
    }
    Ok(c)
}

/// perf's `-x,` lines: `count,unit,event,...`, in the order requested.
fn parse_perf(text: &str, named: &[&str], with_wakes: bool) -> Res<Syscalls> {
    let rows: Vec<(&str, &str)> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].trim(), f.get(2).copied().unwrap_or("").trim())
        })
        .collect();
    let want = 1 + named.len() + usize::from(with_wakes);
    if rows.len() != want {
        return Err(format!(
            "perf printed {} counts, {want} requested: {text:?}",
            rows.len()
        ));
    }
    let mut counts = Vec::new();
    for (count, event) in &rows {
        // `<not counted>`: the event was never scheduled because the task
        // never ran while counting; the sanity check catches a window that
        // saw nothing. Anything else that is not a number is an error.
        let n = match *count {
            "<not counted>" => 0,
            c => c
                .parse::<u64>()
                .map_err(|_| format!("perf: cannot read the count `{c}` of {event}"))?,
        };
        counts.push((*event, n));
    }
    if counts[0].0 != "raw_syscalls:sys_enter" {
        return Err(format!(
            "perf: expected raw_syscalls:sys_enter first, got {}",
            counts[0].0
        ));
    }
    let mut c = Syscalls {
        total: counts[0].1,
        ..Syscalls::default()
    };
    for (name, (event, n)) in named.iter().zip(&counts[1..]) {
        if event.strip_prefix("syscalls:sys_enter_") != Some(name) {
            return Err(format!("perf: expected sys_enter_{name}, got {event}"));
        }
        c.by_name.insert(name.to_string(), *n);
    }
    if with_wakes {
        c.wakes = Some(counts[want - 1].1);
    }
    // perf enables and disables its events one after another, so a server
    // that makes calls at that moment (Python's busy loop) can show a named
    // count a call or two above the total; more than that is an error.
    let named_sum = c.by_name.values().sum::<u64>();
    if named_sum > c.total + 2 + c.total / 1000 {
        return Err(format!(
            "perf: the named counts exceed the total ({named_sum} > {})",
            c.total
        ));
    }
    c.total = c.total.max(named_sum);
    Ok(c)
}

/// strace -c's table: `% time  seconds  usecs/call  calls  [errors]  syscall`
/// rows between dashed rules, then a `total` row.
fn parse_strace(text: &str) -> Res<Syscalls> {
    let mut c = Syscalls::default();
    let mut total = None;
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('%') || t.starts_with('-') {
            continue;
        }
        let f: Vec<&str> = t.split_whitespace().collect();
        let calls = (f.len() >= 4)
            .then(|| f[3].parse::<u64>().ok())
            .flatten()
            .filter(|_| f[0].parse::<f64>().is_ok())
            .ok_or_else(|| format!("strace: cannot read the row `{t}`"))?;
        match f[f.len() - 1] {
            "total" => total = Some(calls),
            name => *c.by_name.entry(name.to_string()).or_insert(0) += calls,
        }
    }
    c.total = total.ok_or("strace: no total row")?;
    if c.total != c.by_name.values().sum::<u64>() {
        return Err(format!(
            "strace: rows sum to {}, its total says {}",
            c.by_name.values().sum::<u64>(),
            c.total
        ));
    }
    Ok(c)
}

fn mkfifo(path: &Path) -> Res<()> {
    let _ = std::fs::remove_file(path);
    let p = CString::new(path.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
    // SAFETY: a valid NUL-terminated path.
    if unsafe { libc::mkfifo(p.as_ptr(), 0o600) } != 0 {
        return Err(format!(
            "mkfifo {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Opens a FIFO without blocking: the read end at once; the write end once
/// the reader (perf) has it open (ENXIO until then), while perf lives.
fn open_fifo(path: &Path, write: bool, tracer: &mut Child) -> Res<File> {
    let deadline = Instant::now() + ATTACH;
    loop {
        match OpenOptions::new()
            .read(!write)
            .write(write)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
        {
            Ok(f) => return Ok(f),
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {}
            Err(e) => return Err(format!("{}: {e}", path.display())),
        }
        if Instant::now() > deadline || matches!(tracer.try_wait(), Ok(Some(_))) {
            let _ = tracer.kill();
            let _ = tracer.wait();
            return Err(format!("perf never opened {}", path.display()));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The descriptors of `pid` that are eventfds (mio's `Waker` on Linux).
fn eventfds(pid: u32) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    let mut v: Vec<String> = dir
        .flatten()
        .filter(|e| {
            std::fs::read_link(e.path())
                .is_ok_and(|l| l.to_string_lossy() == "anon_inode:[eventfd]")
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strace_rows_all_count_and_must_add_up() {
        let ok = "% time     seconds  usecs/call     calls    errors syscall\n------ ----------- ----------- --------- --------- ----------------\n 60.00    0.000100          10        10         2 read\n 40.00    0.000050           5         7           futex\n------ ----------- ----------- --------- --------- ----------------\n100.00    0.000150           8        17         2 total\n";
        let c = parse_strace(ok).unwrap();
        assert_eq!((c.total, c.reads(), c.by_name["futex"]), (17, 10, 7));
        assert!(parse_strace(&ok.replace("17         2 total", "18         2 total")).is_err());
        assert!(parse_strace(&ok.replace("        10         2 read", "        ?? read")).is_err());
        assert!(parse_strace("").is_err());
    }

    #[test]
    fn perf_counts_every_call_and_refuses_what_it_cannot_read() {
        let named = ["read", "write"];
        let ok = "# started\n\n100,,raw_syscalls:sys_enter,1,100.00,,\n40,,syscalls:sys_enter_read,1,100.00,,\n<not counted>,,syscalls:sys_enter_write,1,100.00,,\n";
        let c = parse_perf(ok, &named, false).unwrap();
        assert_eq!(
            (c.total, c.reads(), c.writes(), c.other()),
            (100, 40, 0, 60)
        );
        let bad = ok.replace("40,,", "<not supported>,,");
        assert!(parse_perf(&bad, &named, false).is_err());
        assert!(parse_perf(ok, &["read", "write", "close"], false).is_err());
        let over = ok.replace("100,,raw", "10,,raw");
        let skew = ok.replace("100,,raw", "39,,raw");
        assert_eq!(parse_perf(&skew, &named, false).unwrap().total, 40);
        assert!(parse_perf(&over, &named, false).is_err());
    }
}
