//! The example binaries run as a user runs them, checked against the CLI
//! contract (`examples-cli.md`): the readiness line, echo over IPv4, IPv6 and
//! `localhost`, signals, exit statuses and messages, the multiconn clients
//! (Reactor and Selector) against the echo server, the UDP and Unix echo
//! servers, and the chat client's failure to connect.
//!
//! Every child is killed if a test fails (see [`Proc`]), and every wait has
//! a deadline: a broken example fails its test, it never hangs the run.

#[path = "util/process.rs"]
mod process;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::Duration;

use process::Proc;

/// The longest any one step (start, exchange, exit) may take.
const DEADLINE: Duration = Duration::from_secs(20);

/// The examples this file runs, built once per test run.
const EXAMPLES: &[&str] = &[
    "multiconn_echo",
    "multiconn_client",
    "selector_client",
    "chat_client",
    "udp_echo",
    "unix_echo",
];

/// A command for example `name`.
fn example(name: &str) -> Command {
    process::example(EXAMPLES, name)
}

/// Runs an example to its end (within the deadline).
fn run(name: &str, args: &[&str]) -> (ExitStatus, Vec<String>, String) {
    let mut cmd = example(name);
    cmd.args(args);
    Proc::spawn(name, cmd, DEADLINE).finish()
}

/// A running `multiconn_echo` and the address from its readiness line.
struct Server {
    proc: Proc,
    addr: SocketAddr,
}

impl Server {
    fn start(host: &str) -> Server {
        let (proc, addr) = start_ready("multiconn_echo", &[host, "0"]);
        let addr = addr.parse().unwrap_or_else(|_| {
            panic!("not a readiness line: {:?}", format!("listening on {addr}"))
        });
        Server { proc, addr }
    }

    /// Sends `sig` and checks the contract: exit 0, no other stdout line.
    fn stop_with(self, sig: &str) -> String {
        stop_cleanly(self.proc, sig)
    }
}

/// Sends `sig` to a server example and checks the contract: exit 0, no
/// stdout line after the readiness line, no panic. Returns its stderr.
fn stop_cleanly(proc: Proc, sig: &str) -> String {
    proc.signal(sig);
    let (status, lines, stderr) = proc.finish();
    assert_eq!(
        status.code(),
        Some(0),
        "exit after {sig}; stderr:\n{stderr}"
    );
    assert!(
        lines.is_empty(),
        "stdout after the readiness line: {lines:?}"
    );
    assert!(!stderr.contains("panicked"), "stderr:\n{stderr}");
    stderr
}

/// Starts server example `name` and returns it with the address its
/// readiness line names (`listening on ADDR`).
fn start_ready(name: &str, args: &[&str]) -> (Proc, String) {
    let mut cmd = example(name);
    cmd.args(args);
    Proc::start_ready(name, cmd, DEADLINE)
}

/// Sends `len` bytes (written by another thread, so a server that pushes
/// back cannot deadlock us), half-closes, and checks the echo byte for byte
/// up to the server's close.
fn echo_roundtrip(addr: SocketAddr, len: usize) {
    let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    let mut sock = TcpStream::connect_timeout(&addr, DEADLINE).expect("connect");
    sock.set_read_timeout(Some(DEADLINE)).unwrap();
    sock.set_write_timeout(Some(DEADLINE)).unwrap();
    let mut writer = sock.try_clone().unwrap();
    let sent = payload.clone();
    let w = thread::spawn(move || {
        for chunk in sent.chunks(7000) {
            writer.write_all(chunk).expect("write");
        }
        writer.shutdown(Shutdown::Write).expect("shutdown");
    });
    let mut echoed = Vec::new();
    sock.read_to_end(&mut echoed).expect("read the echo to EOF");
    w.join().unwrap();
    assert!(
        echoed == payload,
        "echo differs: {} of {len} bytes",
        echoed.len()
    );
}

fn ipv6_loopback() -> bool {
    TcpListener::bind("[::1]:0").is_ok()
}

/// A loopback port with nothing listening (bound then released).
fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn assert_usage_error((status, lines, stderr): (ExitStatus, Vec<String>, String)) {
    assert_eq!(status.code(), Some(2), "stderr:\n{stderr}");
    assert!(stderr.contains("Usage:"), "no usage line:\n{stderr}");
    assert!(lines.is_empty(), "stdout: {lines:?}");
}

/// The README's echo is the whole of `examples/multiconn_echo.rs`'s logic:
/// its handler, word for word (issue 9's "Done when").
#[test]
fn readme_echo_is_the_example_handler() {
    let root = env!("CARGO_MANIFEST_DIR");
    let read = |p: &str| std::fs::read_to_string(format!("{root}/{p}")).expect(p);
    let (example, readme) = (read("examples/multiconn_echo.rs"), read("README.md"));
    let start = example.find("struct Echo;").expect("the example's handler");
    let end = example[start..].find("\nfn main()").expect("its main") + start;
    let handler = &example[start..end];
    assert!(
        readme.contains(handler),
        "README.md must show examples/multiconn_echo.rs's handler:\n{handler}"
    );
}

#[test]
fn echo_prints_one_readiness_line_and_echoes_ipv4() {
    let server = Server::start("127.0.0.1");
    assert!(server.addr.ip().is_loopback() && server.addr.is_ipv4());
    assert_ne!(server.addr.port(), 0);
    echo_roundtrip(server.addr, 1);
    echo_roundtrip(server.addr, 200_000);
    server.stop_with("-TERM");
}

#[test]
fn echo_listens_on_ipv6() {
    if !ipv6_loopback() {
        process::require_in_ci("no IPv6 loopback");
        return;
    }
    let server = Server::start("::1");
    assert_eq!(server.addr.ip().to_string(), "::1");
    echo_roundtrip(server.addr, 5000);
    server.stop_with("-TERM");
}

#[test]
fn echo_listens_on_localhost() {
    let server = Server::start("localhost");
    assert!(server.addr.ip().is_loopback());
    echo_roundtrip(server.addr, 5000);
    server.stop_with("-TERM");
}

/// Stops the server with `sig` while a client is connected: the client gets
/// its pending echo and then EOF, and the server exits 0.
fn stops_gracefully_on(sig: &str) {
    // Warnings on, so that a shutdown that ran into its timeout says so.
    let mut cmd = example("multiconn_echo");
    cmd.args(["127.0.0.1", "0"]).env("RUST_LOG", "warn");
    let (proc, addr) = Proc::start_ready("multiconn_echo", cmd, DEADLINE);
    let server = Server {
        proc,
        addr: addr.parse().expect("a readiness address"),
    };
    let mut client = TcpStream::connect_timeout(&server.addr, DEADLINE).unwrap();
    client.set_read_timeout(Some(DEADLINE)).unwrap();
    client.write_all(b"before the signal").unwrap();
    let mut echo = [0; 17];
    client.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"before the signal");
    server.proc.signal(sig);
    // The server closes its side (EOF here) and waits for ours.
    assert_eq!(client.read(&mut echo).expect("EOF, not a timeout"), 0);
    drop(client);
    let (status, lines, stderr) = server.proc.finish();
    assert_eq!(
        status.code(),
        Some(0),
        "exit after {sig}; stderr:\n{stderr}"
    );
    assert!(
        lines.is_empty(),
        "stdout after the readiness line: {lines:?}"
    );
    // Both sides closed: no reason to run into the 2 s shutdown timeout,
    // which the server would log (an observable, not a clock).
    assert!(
        !stderr.contains("shutdown timed out"),
        "the shutdown waited for its timeout; stderr:\n{stderr}"
    );
}

#[test]
fn echo_exits_0_on_sigterm_closing_clients() {
    stops_gracefully_on("-TERM");
}

#[test]
fn echo_exits_0_on_sigint_closing_clients() {
    stops_gracefully_on("-INT");
}

#[test]
fn echo_exits_0_on_sigterm_even_if_a_client_never_closes() {
    let server = Server::start("127.0.0.1");
    let _idle = TcpStream::connect_timeout(&server.addr, DEADLINE).unwrap();
    // Check the server has that connection before the signal.
    echo_roundtrip(server.addr, 10);
    server.stop_with("-TERM"); // within the shutdown timeout (2 s)
}

#[test]
fn echo_bad_port_is_a_usage_error() {
    assert_usage_error(run("multiconn_echo", &["127.0.0.1", "notaport"]));
}

#[test]
fn echo_host_without_port_is_a_usage_error() {
    assert_usage_error(run("multiconn_echo", &["127.0.0.1"]));
}

#[test]
fn echo_port_in_use_exits_1_with_one_clear_line() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let (status, lines, stderr) = run("multiconn_echo", &["127.0.0.1", &port]);
    assert_eq!(status.code(), Some(1), "stderr:\n{stderr}");
    assert!(lines.is_empty(), "stdout: {lines:?}");
    let stderr_lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(stderr_lines.len(), 1, "stderr:\n{stderr}");
    let line = stderr_lines[0];
    assert!(line.contains(&format!("127.0.0.1:{port}")), "{line}");
    assert!(
        line.contains("in use") && line.contains("os error"),
        "{line}"
    );
    assert!(!line.contains("panicked"), "{line}");
}

#[test]
fn echo_help_lists_flags_with_defaults() {
    let (status, lines, stderr) = run("multiconn_echo", &["--help"]);
    assert_eq!(status.code(), Some(0), "stderr:\n{stderr}");
    let help = lines.join("\n");
    for needle in ["Usage:", "[HOST]", "[PORT]", "--high-water", "--low-water"] {
        assert!(help.contains(needle), "{needle} missing from:\n{help}");
    }
    for default in ["127.0.0.1", "65432"] {
        assert!(help.contains(&format!("[default: {default}]")), "{help}");
    }
    assert!(help.matches("[default: ").count() >= 4, "{help}");
}

fn client_against_echo(num_conns: usize) {
    named_client_against_echo("multiconn_client", num_conns);
}

fn named_client_against_echo(client: &str, num_conns: usize) {
    let server = Server::start("127.0.0.1");
    let port = server.addr.port().to_string();
    let n = num_conns.to_string();
    let (status, lines, stderr) = run(client, &["127.0.0.1", &port, &n]);
    assert_eq!(status.code(), Some(0), "stderr:\n{stderr}");
    assert_eq!(lines.len(), num_conns, "{lines:?}");
    for id in 1..=num_conns {
        let want = format!("connection {id}: echoed 44 bytes");
        assert!(lines.contains(&want), "{want:?} missing from {lines:?}");
    }
    server.stop_with("-TERM");
}

#[test]
fn client_echoes_through_2_connections() {
    client_against_echo(2);
}

#[test]
fn client_echoes_through_50_connections() {
    client_against_echo(50);
}

#[test]
fn client_connection_refused_exits_1_at_once() {
    let port = closed_port().to_string();
    let (status, lines, stderr) = run("multiconn_client", &["127.0.0.1", &port, "3"]);
    assert_eq!(status.code(), Some(1), "stderr:\n{stderr}");
    assert!(lines.is_empty(), "stdout: {lines:?}");
    assert_eq!(stderr.lines().count(), 1, "stderr:\n{stderr}");
    assert!(stderr.contains("refused"), "stderr:\n{stderr}");
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
    // "refused" above is the refusal itself, not its own 10 s timeout.
}

#[test]
fn client_times_out_when_nothing_echoes() {
    // Connections complete in the backlog, but nobody ever reads or answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port().to_string();
    let args = ["127.0.0.1", &port, "2", "--timeout", "1"];
    let (status, lines, stderr) = run("multiconn_client", &args);
    assert_eq!(status.code(), Some(1), "stderr:\n{stderr}");
    assert!(lines.is_empty(), "stdout: {lines:?}");
    assert!(stderr.contains("timed out"), "stderr:\n{stderr}");
}

#[test]
fn client_bad_arguments_are_usage_errors() {
    assert_usage_error(run("multiconn_client", &["127.0.0.1", "1"]));
    assert_usage_error(run("multiconn_client", &["127.0.0.1", "x", "2"]));
    assert_usage_error(run("multiconn_client", &["127.0.0.1", "1", "none"]));
}

#[test]
fn python_client_echoes_through_echo_server() {
    if !process::need_tool("python3", "it runs the tutorial's client") {
        return;
    }
    let server = Server::start("127.0.0.1");
    let script = r#"
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
payload = b"".join(b"Message %d from client.\n" % i for i in range(2000))
with socket.create_connection((host, port), timeout=15) as s:
    s.sendall(payload)
    s.shutdown(socket.SHUT_WR)
    got = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
sys.exit(0 if got == payload else "echo differs: %d of %d bytes" % (len(got), len(payload)))
"#;
    let port = server.addr.port().to_string();
    let mut cmd = Command::new("python3");
    cmd.args(["-c", script, "127.0.0.1", &port])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let (status, _, stderr) = Proc::spawn("python3", cmd, DEADLINE).finish();
    assert!(status.success(), "python client: {status}\n{stderr}");
    server.stop_with("-TERM");
}

#[test]
fn selector_client_echoes_through_20_connections() {
    named_client_against_echo("selector_client", 20);
}

#[test]
fn selector_client_connection_refused_exits_1() {
    let port = closed_port().to_string();
    let (status, lines, stderr) = run("selector_client", &["127.0.0.1", &port, "2"]);
    assert_eq!(status.code(), Some(1), "stderr:\n{stderr}");
    assert!(lines.is_empty(), "stdout: {lines:?}");
    assert!(stderr.contains("refused"), "stderr:\n{stderr}");
    assert!(!stderr.contains("panicked"), "stderr:\n{stderr}");
}

#[test]
fn chat_client_against_a_closed_port_exits_1_naming_it() {
    let port = closed_port().to_string();
    let (status, lines, stderr) = run("chat_client", &["127.0.0.1", &port]);
    assert_eq!(status.code(), Some(1), "stderr:\n{stderr}");
    assert!(lines.is_empty(), "stdout: {lines:?}");
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
    assert!(stderr.contains("refused"), "stderr:\n{stderr}");
    assert!(!stderr.contains("panicked"), "stderr:\n{stderr}");
    // "refused" above is the refusal, not its 10 s connect timeout.
}

#[test]
fn udp_echo_prints_readiness_echoes_datagrams_and_exits_0_on_sigterm() {
    let (proc, addr) = start_ready("udp_echo", &["127.0.0.1", "0"]);
    let addr: SocketAddr = addr
        .parse()
        .unwrap_or_else(|_| panic!("not ip:port: {addr:?}"));
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
    assert_ne!(addr.port(), 0);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(DEADLINE)).unwrap();
    let big: Vec<u8> = (0..65_507).map(|i| (i % 251) as u8).collect();
    for payload in [&b"ping"[..], &big] {
        sock.send_to(payload, addr).unwrap();
        let mut buf = vec![0; 70_000];
        let (n, from) = sock.recv_from(&mut buf).expect("the echo");
        assert_eq!(from, addr);
        assert!(
            buf[..n] == *payload,
            "{n}-byte echo of {} bytes differs",
            payload.len()
        );
    }
    stop_cleanly(proc, "-TERM");
}

/// Removes the file at `path` when dropped, so a failed test leaves nothing.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn unix_echo_replaces_a_stale_socket_echoes_and_removes_its_own_on_sigterm() {
    let path = std::env::temp_dir().join(format!("mio-sel-ex-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let _cleanup = RemoveOnDrop(path.clone());
    drop(UnixListener::bind(&path).unwrap()); // a crashed server's file
    assert!(path.exists());
    let (proc, addr) = start_ready("unix_echo", &[path.to_str().unwrap()]);
    assert_eq!(addr, path.display().to_string());

    let payload: Vec<u8> = (0..100_000).map(|i| (i % 253) as u8).collect();
    let mut sock = UnixStream::connect(&path).expect("connect to unix_echo");
    sock.set_read_timeout(Some(DEADLINE)).unwrap();
    sock.set_write_timeout(Some(DEADLINE)).unwrap();
    let mut writer = sock.try_clone().unwrap();
    let sent = payload.clone();
    let w = thread::spawn(move || {
        writer.write_all(&sent).expect("write");
        writer.shutdown(Shutdown::Write).expect("shutdown");
    });
    let mut echoed = Vec::new();
    sock.read_to_end(&mut echoed).expect("read the echo to EOF");
    w.join().unwrap();
    assert!(
        echoed == payload,
        "echo differs: {} of 100000 bytes",
        echoed.len()
    );

    stop_cleanly(proc, "-TERM");
    assert!(!path.exists(), "unix_echo left {}", path.display());
}
