//! A real `redis-server` for the tests: started on a free loopback port
//! with persistence off, answered PING before the test goes on, killed
//! when dropped, pass or fail.
//!
//! Depends only on std, so any test binary can take it with
//! `#[path = "util/redis.rs"] mod redis_server;` (or as `util::redis`).
//! `.ci/run` installs the Debian package when `redis-server` is missing;
//! a test run without it fails with a message saying so.
//!
//! Nothing sleeps to synchronise: readiness is a PING polled against a
//! deadline, shutdown is a kill and a wait.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a fresh server gets to answer PING.
pub const START_DEADLINE: Duration = Duration::from_secs(10);

/// A running `redis-server`, killed on drop.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    extra: Vec<String>,
    dir: PathBuf,
}

impl RedisServer {
    /// A server on a free port with no password.
    pub fn start() -> RedisServer {
        RedisServer::start_with(&[])
    }

    /// A server with extra arguments, e.g. `["--requirepass", "pw"]`.
    /// A port someone took between our probe and the server's bind is
    /// retried with another.
    pub fn start_with(extra: &[&str]) -> RedisServer {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            match launch(port, &extra) {
                Ok((child, dir)) => {
                    return RedisServer {
                        child: Some(child),
                        port,
                        extra,
                        dir,
                    }
                }
                Err(e) => last = e,
            }
        }
        panic!("could not start redis-server: {last}");
    }

    /// A server on `port`, which must be free.
    ///
    /// # Panics
    /// If it does not come up there.
    pub fn start_on(port: u16, extra: &[&str]) -> RedisServer {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let (child, dir) =
            launch(port, &extra).unwrap_or_else(|e| panic!("start redis-server: {e}"));
        RedisServer {
            child: Some(child),
            port,
            extra,
            dir,
        }
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server (SIGKILL) and waits for it: every client sees its
    /// connection end at once.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port with the same arguments.
    ///
    /// # Panics
    /// If the port was taken meanwhile or the server does not come up.
    pub fn restart(&mut self) {
        self.stop();
        let (child, dir) =
            launch(self.port, &self.extra).unwrap_or_else(|e| panic!("restart redis-server: {e}"));
        self.child = Some(child);
        self.dir = dir;
    }

    /// Runs `redis-cli` against it (for tests that want to look at keys).
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("run redis-cli");
        String::from_utf8_lossy(&out.stdout).trim_end().to_string()
    }

    /// The tail of the server's log, for failure messages.
    pub fn log_tail(&self) -> String {
        log_tail(&self.dir)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

fn launch(port: u16, extra: &[String]) -> Result<(Child, PathBuf), String> {
    let dir =
        std::env::temp_dir().join(format!("mio-selectors-redis-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let mut child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .arg("--dir")
        .arg(&dir)
        .args(["--logfile", "redis.log"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| {
            format!("spawn redis-server ({e}); install it: apt-get install -y redis-server")
        })?;
    let deadline = Instant::now() + START_DEADLINE;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "redis-server exited with {status} on port {port}:\n{}",
                log_tail(&dir)
            ));
        }
        if answers_ping(port) {
            return Ok((child, dir));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "redis-server did not answer PING on port {port} within {START_DEADLINE:?}"
            ));
        }
        // Polling against the deadline: the server has no way to signal.
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether something on `port` answers an inline PING like Redis
/// (`+PONG`, or `-NOAUTH` when it wants a password).
fn answers_ping(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(n) => buf[..n].starts_with(b"+PONG") || buf[..n].starts_with(b"-NOAUTH"),
        Err(_) => false,
    }
}

fn log_tail(dir: &std::path::Path) -> String {
    let log = std::fs::read_to_string(dir.join("redis.log")).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}
