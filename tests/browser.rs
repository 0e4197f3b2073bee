//! The chat page in a real browser: headless Chromium (Debian's
//! `chromium`) driven by Python Playwright (`tests/browser/chat.py`), two
//! pages and an `nc` client against a `chatroom --web` started here; and
//! the same over TLS (https and wss for the pages, `openssl s_client` for
//! the line client). `.ci/run` installs chromium, nc, openssl and
//! playwright when they are missing.
//!
//! Screenshots are kept as artifacts in `target/browser/` (the page while
//! chatting, and after the server was killed; `https-` for the TLS run).

#![cfg(feature = "websocket")]

#[cfg(feature = "tls")]
#[path = "util/certs.rs"]
mod certs;
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
    chat_in_chromium(None, &["/usr/bin/chromium", "/bin/nc"], "chat.png");
}

/// The same chat with `--tls-cert`: the page over https, the room over
/// wss, the line client through `openssl s_client` on the TLS line port.
#[cfg(feature = "tls")]
#[test]
fn two_pages_and_openssl_chat_over_https_and_wss() {
    let certs = certs::Certs::new();
    let (cert, key) = (certs.cert(), certs.key());
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let flags = ["--tls-cert", cert, "--tls-key", key];
    let tools = ["/usr/bin/chromium", "/usr/bin/openssl"];
    chat_in_chromium(Some((&flags, cert)), &tools, "https-chat.png");
}

/// Runs `tests/browser/chat.py` against a `chatroom --web` started here;
/// `tls`: the server's TLS flags and the CA file the line client checks.
fn chat_in_chromium(tls: Option<(&[&str], &str)>, tools: &[&str], shot: &str) {
    for tool in tools {
        assert!(
            std::path::Path::new(tool).exists() || which(tool),
            "{tool} is missing: .ci/run installs it (apt-get install chromium netcat-openbsd openssl)"
        );
    }
    let mut cmd = process::example(&["chatroom"], "chatroom");
    cmd.args(["127.0.0.1", "0", "--web", "127.0.0.1:0"]);
    if let Some((flags, _)) = tls {
        cmd.args(flags);
    }
    let (server, tcp) = Proc::start_ready("chatroom", cmd, DEADLINE);
    let web = server.line().expect("web readiness line");
    let url = web.strip_prefix("web on ").expect("web on URL").to_string();
    let scheme = if tls.is_some() { "https://" } else { "http://" };
    assert!(url.starts_with(scheme), "{web:?} is not {scheme}");
    let (host, port) = tcp.rsplit_once(':').unwrap();
    let shot = artifacts().join(shot);

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/chat.py");
    let mut child = Command::new("python3")
        .arg(script)
        .args([&url, host, port, &server.child.id().to_string()])
        .arg(&shot)
        .args(tls.map(|(_, ca)| ca))
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
