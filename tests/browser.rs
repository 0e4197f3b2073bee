//! The chat page in a real browser: headless Chromium (Debian's
//! `chromium`) driven by Python Playwright (`tests/browser/chat.py`), two
//! pages and an `nc` client against a `chatroom --web` started here.
//! `.ci/run` installs chromium, nc and playwright when they are missing.
//!
//! Screenshots are kept as artifacts in `target/browser/` (the page while
//! chatting, and after the server was killed).

#![cfg(feature = "websocket")]

#[path = "util/process.rs"]
mod process;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use process::Proc;

const DEADLINE: Duration = Duration::from_secs(20);

fn artifacts() -> PathBuf {
    // target/<profile>/examples -> target/browser
    let dir = process::examples_dir();
    dir.parent().unwrap().parent().unwrap().join("browser")
}

#[test]
fn two_pages_and_nc_chat_in_headless_chromium() {
    for tool in ["/usr/bin/chromium", "/bin/nc"] {
        assert!(
            std::path::Path::new(tool).exists() || which(tool),
            "{tool} is missing: .ci/run installs it (apt-get install chromium netcat-openbsd)"
        );
    }
    let mut cmd = process::example(&["chatroom"], "chatroom");
    cmd.args(["127.0.0.1", "0", "--web", "127.0.0.1:0"]);
    let (server, tcp) = Proc::start_ready("chatroom", cmd, DEADLINE);
    let web = server.line().expect("web readiness line");
    let url = web.strip_prefix("web on ").expect("web on URL").to_string();
    let (host, port) = tcp.rsplit_once(':').unwrap();
    let shot = artifacts().join("chat.png");

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/chat.py");
    let mut child = Command::new("python3")
        .arg(script)
        .args([&url, host, port, &server.child.id().to_string()])
        .arg(&shot)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    let out = process::text_of(child.stdout.take().unwrap());
    let err = process::text_of(child.stderr.take().unwrap());
    let until = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > until {
            let _ = child.kill();
            panic!("the browser test did not finish in 120 s");
        }
        thread::sleep(Duration::from_millis(50)); // polling an exit, not a handshake
    };
    let out = out.recv_timeout(DEADLINE).unwrap_or_default();
    let err = err.recv_timeout(DEADLINE).unwrap_or_default();
    assert!(
        status.success() && out.trim() == "ok",
        "browser test failed ({status}):\n{out}\n{err}"
    );
    assert!(shot.exists(), "screenshot kept at {}", shot.display());
    eprintln!("screenshots in {}", artifacts().display());
}

fn which(tool: &str) -> bool {
    let name = tool.rsplit('/').next().unwrap();
    Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
