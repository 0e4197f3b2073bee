//! The example binaries as child processes: built once per test binary with
//! `$CARGO` in the test's own profile, spawned with their stdout and stderr
//! read by threads (so a full pipe never blocks them), and killed when the
//! test that started them ends, pass or fail.
//!
//! Every wait has a deadline, the caller's: a broken example fails its test,
//! it never hangs the run.
//!
//! Declared as `util::process` and, by files that do not use `mod util;`,
//! with `#[path = "util/process.rs"]`, so it depends on nothing else here.

// Compiled into several test binaries, each of which uses its own part
// (the chat tests never wait for a readiness line of another shape, the
// reliability suite keeps its own child type, ...), and clippy runs with
// `-D warnings`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Once;
use std::thread;
use std::time::{Duration, Instant};

/// `target/<profile>/examples`, next to this test's own `deps` directory, so
/// `CARGO_TARGET_DIR` and the profile are honoured whatever they are.
pub fn examples_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe.parent().and_then(|deps| deps.parent());
    profile_dir.expect("target/<profile>/deps").join("examples")
}

/// A command for example `name`. The first call in a test binary builds the
/// examples in `build` (the ones that binary runs), in the test's profile.
pub fn example(build: &[&str], name: &str) -> Command {
    static BUILD: Once = Once::new();
    BUILD.call_once(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let dir = examples_dir();
        let profile = dir.parent().unwrap().file_name().unwrap().to_owned();
        let profile = if profile == "debug" {
            "dev".into()
        } else {
            profile
        };
        let mut cargo = Command::new(cargo);
        // Not the variables cargo sets for a test binary: a build script
        // that watches one (ring's watches CARGO_MANIFEST_DIR) would see it
        // change and rebuild, here and again in the next `cargo test`.
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy().into_owned();
            let set_for_tests = key.starts_with("CARGO_PKG_")
                || matches!(
                    key.as_str(),
                    "CARGO_MANIFEST_DIR"
                        | "CARGO_MANIFEST_PATH"
                        | "CARGO_CRATE_NAME"
                        | "CARGO_BIN_NAME"
                        | "CARGO_PRIMARY_PACKAGE"
                        | "CARGO_TARGET_TMPDIR"
                        | "CARGO_RUSTC_CURRENT_DIR"
                );
            if set_for_tests {
                cargo.env_remove(&key);
            }
        }
        cargo
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["build", "--quiet", "--profile"])
            .arg(profile);
        for example in build {
            cargo.args(["--example", example]);
        }
        let out = cargo.output().expect("run cargo build");
        assert!(
            out.status.success(),
            "cargo build of the examples failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    let mut cmd = Command::new(examples_dir().join(name));
    cmd.env_remove("RUST_LOG")
        .env("RUST_BACKTRACE", "1") // a panic would show, and fail the checks
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// `pipe` as a channel of lines, read by a thread; the channel closes at
/// the pipe's EOF.
pub fn lines_of(pipe: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The whole of `pipe` as one string, sent at its EOF by a thread.
pub fn text_of(mut pipe: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut s = String::new();
        let _ = pipe.read_to_string(&mut s);
        let _ = tx.send(s);
    });
    rx
}

/// Sends `sig` (as `kill` takes it: `-TERM`) to process `pid`.
pub fn signal(pid: u32, sig: &str) -> bool {
    Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success())
}

/// A running child: its stdout as a channel of lines (closed at its EOF),
/// its stderr as one string at its EOF, its stdin if piped. Every wait on it
/// is bounded by `step`. Dropping it kills the child.
pub struct Proc {
    pub name: String,
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    pub stdout: Receiver<String>,
    pub stderr: Receiver<String>,
    step: Duration,
}

impl Proc {
    /// Spawns `cmd`, called `name` in messages; each later wait is bounded
    /// by `step`.
    pub fn spawn(name: &str, mut cmd: Command, step: Duration) -> Proc {
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        let stdout = lines_of(child.stdout.take().unwrap());
        let stderr = text_of(child.stderr.take().unwrap());
        Proc {
            name: name.to_string(),
            stdin: child.stdin.take(),
            child,
            stdout,
            stderr,
            step,
        }
    }

    /// Spawns server `cmd` and waits for its readiness line,
    /// `listening on ADDR`; returns it with `ADDR`. Without one, it reports
    /// the exit status and stderr.
    pub fn start_ready(name: &str, cmd: Command, step: Duration) -> (Proc, String) {
        let proc = Proc::spawn(name, cmd, step);
        let line = match proc.stdout.recv_timeout(step) {
            Ok(line) => line,
            Err(e) => {
                let (status, _, stderr) = proc.finish();
                panic!("{name}: no readiness line ({e}); exit {status}, stderr:\n{stderr}");
            }
        };
        let addr = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("{name}: not a readiness line: {line:?}"))
            .to_string();
        (proc, addr)
    }

    /// The next stdout line (within `step`); `None` at EOF.
    pub fn line(&self) -> Option<String> {
        match self.stdout.recv_timeout(self.step) {
            Ok(line) => Some(line),
            Err(RecvTimeoutError::Disconnected) => None,
            Err(RecvTimeoutError::Timeout) => {
                panic!("{}: no stdout line in {:?}", self.name, self.step)
            }
        }
    }

    pub fn expect(&self, want: &str) {
        assert_eq!(self.line().as_deref(), Some(want), "{} stdout", self.name);
    }

    /// Writes `line` and a newline to the piped stdin.
    pub fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("piped stdin");
        stdin.write_all(format!("{line}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    pub fn signal(&self, sig: &str) {
        assert!(
            signal(self.child.id(), sig),
            "kill {sig} {} failed",
            self.name
        );
    }

    /// Waits for the child to exit, within `step`, and returns its status,
    /// the stdout lines not read yet, and its whole stderr.
    pub fn finish(mut self) -> (ExitStatus, Vec<String>, String) {
        let until = Instant::now() + self.step;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            assert!(
                Instant::now() < until,
                "{} still running after {:?}",
                self.name,
                self.step
            );
            thread::sleep(Duration::from_millis(10)); // polling, not a handshake
        };
        let mut lines = Vec::new();
        loop {
            match self.stdout.recv_timeout(self.step) {
                Ok(line) => lines.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    panic!("{}: stdout still open after exit", self.name)
                }
            }
        }
        let stderr = self
            .stderr
            .recv_timeout(self.step)
            .unwrap_or_else(|e| panic!("{}: stderr still open: {e}", self.name));
        (status, lines, stderr)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// Preconditions: fail in CI, say so elsewhere
// ---------------------------------------------------------------------------

/// Whether `tool` can be run (`tool --version` exits at all). When it
/// cannot: under `CI=true` the calling test fails (the machine is not set
/// up, and a skipped check must not pass as green); elsewhere it says on
/// stderr that the check was skipped, and the caller returns.
pub fn need_tool(tool: &str, why: &str) -> bool {
    let found = std::process::Command::new(tool)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok();
    if !found {
        require_in_ci(&format!("{tool} not found ({why})"));
    }
    found
}

/// A test's precondition `what` does not hold on this machine: fail under
/// `CI=true` (where every check must run), otherwise note the skip on
/// stderr. The caller returns after this.
pub fn require_in_ci(what: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("CI=true: {what}; install it (.ci/run does) instead of skipping this test");
    }
    eprintln!("SKIPPED (not CI): {what}");
}
