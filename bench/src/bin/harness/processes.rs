//! Starting, stopping and talking to the servers and the load generator.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use crate::config::{Cpus, Server};
use crate::Res;

pub fn lines_of(r: impl std::io::Read + Send + 'static) -> Receiver<String> {
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

pub fn wait_line(
    rx: &Receiver<String>,
    prefix: &str,
    timeout: Duration,
    what: &str,
) -> Res<String> {
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

pub fn signal(pid: u32, sig: i32) {
    // SAFETY: plain kill(2) on a child we started.
    unsafe { libc::kill(pid as i32, sig) };
}

pub fn wait_exit(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
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

pub struct Running {
    pub child: Child,
    pub pid: u32,
    pub addr: String,
    pub label: String,
}

/// Starts `s` on its cores and waits for its readiness line.
pub fn start_server(s: &Server, cpus: &Cpus, log: &Path) -> Res<Running> {
    if let Some(f) = &s.alloc_file {
        let _ = std::fs::remove_file(f); // a snapshot of the last process is stale
    }
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", &cpus.server(s.reactors)])
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
pub fn stop_server(mut r: Running) -> Res<()> {
    signal(r.pid, libc::SIGTERM);
    match wait_exit(&mut r.child, Duration::from_secs(5)) {
        Some(st) if st.success() => Ok(()),
        Some(st) => Err(format!("{} exited with {st} after SIGTERM", r.label)),
        None => Err(format!("{} did not exit within 5 s of SIGTERM", r.label)),
    }
}

pub struct Load {
    pub child: Child,
    pub stdin: ChildStdin,
    pub rx: Receiver<String>,
}

impl Load {
    pub fn start(bin: &Path, cpus: &str, args: &[String]) -> Res<Load> {
        let mut child = Command::new("taskset")
            .args(["-c", cpus])
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
    pub fn paused(&self, timeout: Duration) -> Res<()> {
        wait_line(&self.rx, "paused", timeout, "load").map(drop)
    }
    pub fn go(&mut self) -> Res<()> {
        writeln!(self.stdin, "go").map_err(|e| format!("load: {e}"))
    }
    pub fn result(&self, timeout: Duration) -> Res<BTreeMap<String, String>> {
        let line = wait_line(&self.rx, "result ", timeout, "load")?;
        Ok(line
            .split_whitespace()
            .skip(1)
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())
    }
    pub fn finish(mut self) -> Res<()> {
        let _ = writeln!(self.stdin, "quit");
        drop(self.stdin);
        match wait_exit(&mut self.child, Duration::from_secs(20)) {
            Some(st) if st.success() => Ok(()),
            Some(st) => Err(format!("load exited with {st}")),
            None => Err("load did not exit".into()),
        }
    }
}

pub fn num(m: &BTreeMap<String, String>, k: &str) -> f64 {
    m.get(k).and_then(|v| v.parse().ok()).unwrap_or(f64::NAN)
}

/// Whether `bin --help` mentions `flag` (and exits within 10 s).
pub fn help_mentions(bin: &Path, flag: &str) -> bool {
    let Ok(mut child) = Command::new(bin)
        .arg("--help")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        return false;
    };
    let out = lines_of(child.stdout.take().expect("stdout"));
    let err = lines_of(child.stderr.take().expect("stderr"));
    if wait_exit(&mut child, Duration::from_secs(10)).is_none() {
        return false;
    }
    // The readers end at EOF, which follows the exit.
    let drain = |rx: Receiver<String>| -> Vec<String> {
        std::iter::from_fn(|| rx.recv_timeout(Duration::from_secs(2)).ok()).collect()
    };
    drain(out)
        .into_iter()
        .chain(drain(err))
        .any(|l| l.contains(flag))
}

/// Fails if `bin` is older than a source file cargo built it from (its
/// dep-info `BIN.d` beside it lists them): a binary the tree has moved past
/// would be measured under the wrong stamp. `bench/run.sh` builds first, so
/// this only trips when the harness is run by hand.
pub fn check_fresh(bin: &Path) -> Res<()> {
    let built = std::fs::metadata(bin)
        .and_then(|m| m.modified())
        .map_err(|e| format!("{}: {e} (build it, or run bench/run.sh)", bin.display()))?;
    let mut dep_info = bin.as_os_str().to_owned();
    dep_info.push(".d");
    let Ok(text) = std::fs::read_to_string(&dep_info) else {
        return Ok(()); // not built by cargo (python3): nothing to compare
    };
    // `target: dep dep ...`, spaces inside a path escaped as `\ `.
    let deps = text
        .lines()
        .next()
        .and_then(|l| l.split_once(": "))
        .map_or("", |d| d.1);
    let spaced = deps.replace("\\ ", "\u{0}");
    for dep in spaced.split_whitespace().map(|d| d.replace('\u{0}', " ")) {
        let changed = std::fs::metadata(&dep).and_then(|m| m.modified());
        if changed.is_ok_and(|t| t > built) {
            return Err(format!(
                "{} is older than {dep}: stale, rebuild it (bash bench/run.sh builds everything it measures)",
                bin.display()
            ));
        }
    }
    Ok(())
}
