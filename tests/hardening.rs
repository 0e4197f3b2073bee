//! The hardening issue's defects, each reproduced as the outside probe
//! found it: the example binaries run as a user runs them, real sockets on
//! loopback, and one test per defect that failed before its fix.
//!
//! Every wait has a deadline: a child that stalls fails its test, it never
//! hangs the run; children are killed when their test ends.

#[path = "util/process.rs"]
mod process;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Command, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

use process::Proc;

/// The longest any one step (start, exchange, exit) may take.
const STEP: Duration = Duration::from_secs(20);

/// The examples this file runs, built once per test run.
const EXAMPLES: &[&str] = &[
    "multiconn_echo",
    "multiconn_client",
    "selector_client",
    "chatroom",
    "chat_client",
    "udp_echo",
    "unix_echo",
];

fn example(name: &str) -> Command {
    process::example(EXAMPLES, name)
}

/// Starts server example `name` with `args`; returns it and its address.
fn start(name: &str, args: &[&str]) -> (Proc, String) {
    let mut cmd = example(name);
    cmd.args(args);
    Proc::start_ready(name, cmd, STEP)
}

/// A client socket whose blocking calls give up after `STEP`.
fn connect(addr: &str) -> TcpStream {
    let addr: SocketAddr = addr.parse().expect("an ip:port address");
    let s = TcpStream::connect_timeout(&addr, STEP).expect("connect");
    s.set_read_timeout(Some(STEP)).unwrap();
    s.set_write_timeout(Some(STEP)).unwrap();
    s
}

/// Reads until `want` bytes have arrived or `limit` passes; returns them.
fn read_n(s: &TcpStream, want: usize, limit: Duration) -> Vec<u8> {
    let until = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0; 64 * 1024];
    while got.len() < want {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        s.set_read_timeout(Some(left)).unwrap();
        match (&*s).read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if is_timeout(&e) => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!("read: {e} after {} bytes", got.len()),
        }
    }
    s.set_read_timeout(Some(STEP)).unwrap();
    got
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Reads one `\n`-terminated line (without it), within `STEP`.
fn line(s: &TcpStream) -> String {
    let until = Instant::now() + STEP;
    let mut got = Vec::new();
    let mut byte = [0; 1];
    loop {
        assert!(Instant::now() < until, "no whole line in {STEP:?}: {got:?}");
        match (&*s).read(&mut byte) {
            Ok(0) => panic!(
                "EOF before a whole line: {:?}",
                String::from_utf8_lossy(&got)
            ),
            Ok(_) if byte[0] == b'\n' => return String::from_utf8_lossy(&got).into_owned(),
            Ok(_) => got.push(byte[0]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!("read: {e} after {:?}", String::from_utf8_lossy(&got)),
        }
    }
}

/// Polls `cond` every few milliseconds until it holds or `limit` passes.
fn poll_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        thread::sleep(Duration::from_millis(5)); // polling, not a handshake
    }
}

/// Bytes waiting in the receive queue of the server's end of `client`
/// (from `/proc/net/tcp`, which lists every IPv4 TCP socket).
fn server_rx_queue(client: &TcpStream) -> Option<u64> {
    let (local, peer) = (client.local_addr().ok()?, client.peer_addr().ok()?);
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let want_local = format!(":{:04X}", peer.port());
    let want_remote = format!(":{:04X}", local.port());
    table.lines().skip(1).find_map(|row| {
        let f: Vec<&str> = row.split_whitespace().collect();
        let ok = f.get(1)?.ends_with(&want_local) && f.get(2)?.ends_with(&want_remote);
        let (_, rx) = f.get(4)?.split_once(':')?;
        ok.then(|| u64::from_str_radix(rx, 16).ok()).flatten()
    })
}

/// With `server` stopped (SIGSTOP), sends `before`, one urgent byte and
/// `after` on `client`, waits until all of it sits in the server's receive
/// queue, and lets the server go on (SIGCONT): the urgent mark is then in
/// the middle of what one read can take, as on a busy server.
fn send_with_urgent_byte(server: &Proc, client: &TcpStream, before: &[u8], after: &[u8]) {
    server.signal("-STOP");
    let sock = socket2::SockRef::from(client);
    (&*client).write_all(before).unwrap();
    assert_eq!(sock.send_out_of_band(b"!").unwrap(), 1);
    (&*client).write_all(after).unwrap();
    let total = (before.len() + 1 + after.len()) as u64;
    let queued = poll_until(STEP, || server_rx_queue(client) == Some(total));
    server.signal("-CONT");
    assert!(
        queued,
        "the server's receive queue never held all {total} bytes"
    );
}

// ---------------------------------------------------------------------------
// 1. One TCP urgent byte stalled the rest of the stream
// ---------------------------------------------------------------------------

/// The echo server returned `abc` and then nothing: its read stopped at the
/// urgent mark, and a short read was taken as "drained".
#[test]
fn an_urgent_byte_does_not_stall_the_echo() {
    let (server, addr) = start("multiconn_echo", &["127.0.0.1", "0"]);
    for trial in 0..5 {
        let client = connect(&addr);
        (&client).write_all(b"hi").unwrap();
        assert_eq!(read_n(&client, 2, STEP), b"hi", "trial {trial}: accepted");
        send_with_urgent_byte(&server, &client, b"abc", b"def");
        let got = read_n(&client, 7, Duration::from_secs(5));
        // The urgent byte is ordinary data (SO_OOBINLINE): echoed in place.
        assert_eq!(
            String::from_utf8_lossy(&got),
            "abc!def",
            "trial {trial}: the echo after an urgent byte"
        );
    }
}

/// The same stall in the chatroom (telnet's `send synch` sends an urgent
/// byte): the line after the mark was never relayed.
#[test]
fn an_urgent_byte_does_not_stall_the_chatroom() {
    let (server, addr) = start("chatroom", &["127.0.0.1", "0"]);
    let a = connect(&addr);
    assert!(line(&a).starts_with("* welcome"));
    let b = connect(&addr);
    assert!(line(&b).starts_with("* welcome"));
    let a_name = a.local_addr().unwrap().to_string();
    let b_name = b.local_addr().unwrap().to_string();
    assert_eq!(line(&a), format!("* {b_name} joined"));
    for trial in 0..3 {
        send_with_urgent_byte(&server, &a, b"abc", b"def\n");
        assert_eq!(line(&b), format!("<{a_name}> abc!def"), "trial {trial}");
    }
}

// ---------------------------------------------------------------------------
// 3. --high-water near the output cap reset clients
// ---------------------------------------------------------------------------

/// A client socket with a small receive buffer, so that what it does not
/// read piles up in the server's pending output, not in the kernel.
fn connect_small_rcvbuf(addr: &str) -> TcpStream {
    connect_with_rcvbuf(addr, 16 * 1024)
}

fn connect_with_rcvbuf(addr: &str, rcvbuf: usize) -> TcpStream {
    let addr: SocketAddr = addr.parse().unwrap();
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(rcvbuf).unwrap();
    sock.connect_timeout(&addr.into(), STEP).unwrap();
    let s: TcpStream = sock.into();
    s.set_read_timeout(Some(STEP)).unwrap();
    s.set_write_timeout(Some(STEP)).unwrap();
    s
}

/// The byte at `offset` of a test stream (not periodic in any buffer size).
fn pattern(offset: usize) -> u8 {
    (offset % 251) as u8
}

/// With `--high-water` at the 1 MiB cap, one read chunk past the mark
/// passed the cap: a client that wrote faster than it read was reset. Now
/// it is paused before the cap and gets back every byte.
#[test]
fn high_water_at_the_output_cap_pauses_instead_of_resetting() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    const TOTAL: usize = 8 * 1024 * 1024;
    for high in ["1048576", "1040000"] {
        let (_server, addr) = start("multiconn_echo", &["--high-water", high, "127.0.0.1", "0"]);
        let client = connect_small_rcvbuf(&addr);
        let written = Arc::new(AtomicUsize::new(0));
        let writer = {
            let (s, written) = (client.try_clone().unwrap(), written.clone());
            thread::spawn(move || -> io::Result<()> {
                let mut chunk = vec![0; 64 * 1024];
                let mut at = 0;
                while at < TOTAL {
                    let n = chunk.len().min(TOTAL - at);
                    for (i, b) in chunk[..n].iter_mut().enumerate() {
                        *b = pattern(at + i);
                    }
                    (&s).write_all(&chunk[..n])?;
                    at += n;
                    written.store(at, Ordering::Relaxed);
                }
                Ok(())
            })
        };
        // Read nothing until the writer stops making progress: TCP pushes
        // back (or, before the fix, the server resets the connection).
        let mut last = usize::MAX;
        poll_until(STEP, || {
            let now = written.load(Ordering::Relaxed);
            let still = now == last || writer.is_finished();
            last = now;
            still && now > 0 && {
                thread::sleep(Duration::from_millis(300)); // a progress window
                written.load(Ordering::Relaxed) == now
            }
        });
        let got = read_n(&client, TOTAL, Duration::from_secs(60));
        let wrote = writer.join().unwrap();
        assert!(wrote.is_ok(), "--high-water {high}: writer: {wrote:?}");
        assert_eq!(got.len(), TOTAL, "--high-water {high}: bytes echoed");
        let bad = (0..TOTAL).find(|&i| got[i] != pattern(i));
        assert_eq!(bad, None, "--high-water {high}: first wrong byte");
    }
}

// ---------------------------------------------------------------------------
// 4. Panics instead of the contract's exit statuses
// ---------------------------------------------------------------------------

/// Runs an example to its end (within the deadline).
fn run(name: &str, args: &[&str]) -> (ExitStatus, Vec<String>, String) {
    let mut cmd = example(name);
    cmd.args(args);
    Proc::spawn(name, cmd, STEP).finish()
}

/// Out-of-range numbers and contradicting flags: a usage line and exit 2
/// naming the flag as typed; before, `inf` panicked (101) and the marks
/// exited 1 with `invalid config: low_water ...`, naming struct fields.
#[test]
fn bad_numeric_flags_exit_2_with_usage_naming_the_flag() {
    let cases: &[(&str, &[&str], &str)] = &[
        (
            "chatroom",
            &["--partial-timeout", "inf"],
            "--partial-timeout",
        ),
        (
            "chatroom",
            &["--partial-timeout", "1e300"],
            "--partial-timeout",
        ),
        ("chatroom", &["--partial-timeout", "0"], "--partial-timeout"),
        (
            "chatroom",
            &["--partial-timeout", "nan"],
            "--partial-timeout",
        ),
        ("chatroom", &["--rate", "inf"], "--rate"),
        ("chatroom", &["--burst", "0.5"], "--burst"),
        // Found by a black-box run: these started and served.
        ("chatroom", &["--rate", "1e300"], "--rate"),
        ("chatroom", &["--rate", "1e-300"], "--rate"),
        ("chatroom", &["--burst", "1e300"], "--burst"),
        ("chatroom", &["--web", "bogus"], "--web"),
        ("chatroom", &["--web", "127.0.0.1:99999"], "--web"),
        ("chatroom", &["--web", ":0"], "--web"),
        ("chatroom", &["--max-output", "0"], "--max-output"),
        ("chatroom", &["--max-line", "0"], "--max-line"),
        (
            "chatroom",
            &["--max-clients", "5000000000"],
            "--max-clients",
        ),
        ("multiconn_echo", &["--low-water", "70000"], "--low-water"),
        (
            "multiconn_echo",
            &["--high-water", "2000000"],
            "--high-water",
        ),
        ("multiconn_echo", &["--high-water", "0"], "--high-water"),
        (
            "multiconn_echo",
            &["--max-connections", "5000000000"],
            "--max-connections",
        ),
        ("multiconn_echo", &["--max-per-ip", "0"], "--max-per-ip"),
        (
            "multiconn_client",
            &["--timeout", "1e300", "127.0.0.1", "1", "1"],
            "--timeout",
        ),
        (
            "selector_client",
            &["--timeout", "18446744073709551615", "127.0.0.1", "1", "1"],
            "--timeout",
        ),
    ];
    for (name, flags, flag) in cases {
        let mut args = flags.to_vec();
        if !name.ends_with("client") {
            args.extend(["127.0.0.1", "0"]);
        }
        let (status, out, err) = run(name, &args);
        let what = format!("{name} {}", args.join(" "));
        assert_eq!(
            status.code(),
            Some(2),
            "{what}: exit status; stderr:\n{err}"
        );
        assert!(out.is_empty(), "{what}: stdout {out:?}");
        assert!(
            err.contains(flag),
            "{what}: stderr does not name {flag}:\n{err}"
        );
        assert!(err.contains("Usage:"), "{what}: no usage line:\n{err}");
        assert!(!err.contains("panicked"), "{what}: panicked:\n{err}");
        assert!(
            !err.contains("invalid config"),
            "{what}: struct fields:\n{err}"
        );
    }
}

/// A child whose stdout is a pipe nobody reads (a broken pipe from its
/// first write), killed when dropped.
struct Headless {
    child: std::process::Child,
    stderr: std::sync::mpsc::Receiver<String>,
}

impl Headless {
    fn spawn(name: &str, args: &[&str]) -> Headless {
        // The write end of a pipe whose reader (`true`) has exited: closed
        // before the server starts, so its every write is EPIPE.
        let mut reader = Command::new("true")
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let writer = reader.stdin.take().unwrap();
        reader.wait().unwrap();
        let mut cmd = example(name);
        cmd.args(args).stdout(writer);
        let mut child = cmd.spawn().unwrap();
        let stderr = process::text_of(child.stderr.take().unwrap());
        Headless { child, stderr }
    }

    /// SIGTERM, then the exit status and the whole stderr.
    fn stop(mut self) -> (ExitStatus, String) {
        process::signal(self.child.id(), "-TERM");
        let mut status = None;
        poll_until(STEP, || {
            status = self.child.try_wait().unwrap();
            status.is_some()
        });
        let status = status.expect("still running after SIGTERM");
        (status, self.stderr.recv_timeout(STEP).unwrap_or_default())
    }
}

impl Drop for Headless {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free a moment ago (the server is told it, since its
/// readiness line is lost in the broken pipe).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Every server with stdout a broken pipe serves all the same: before,
/// `println!` of the readiness line panicked.
#[test]
fn servers_with_stdout_a_broken_pipe_keep_serving() {
    use std::os::unix::net::UnixStream;
    for name in ["multiconn_echo", "chatroom", "udp_echo", "unix_echo"] {
        let port = free_port().to_string();
        let path = std::env::temp_dir().join(format!("harden-pipe-{}.sock", std::process::id()));
        let args: Vec<&str> = match name {
            "unix_echo" => vec![path.to_str().unwrap()],
            _ => vec!["127.0.0.1", &port],
        };
        let server = Headless::spawn(name, &args);
        let addr = format!("127.0.0.1:{port}");
        let served = match name {
            "multiconn_echo" | "chatroom" => poll_until(STEP, || {
                let Ok(s) = TcpStream::connect(&addr) else {
                    return false;
                };
                s.set_read_timeout(Some(STEP)).unwrap();
                if name == "chatroom" {
                    line(&s).starts_with("* welcome")
                } else {
                    (&s).write_all(b"ping").unwrap();
                    read_n(&s, 4, STEP) == b"ping"
                }
            }),
            "udp_echo" => {
                let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
                udp.set_read_timeout(Some(Duration::from_millis(100)))
                    .unwrap();
                poll_until(STEP, || {
                    let mut buf = [0; 16];
                    udp.send_to(b"ping", &addr).is_ok()
                        && udp.recv(&mut buf).is_ok_and(|n| &buf[..n] == b"ping")
                })
            }
            _ => poll_until(STEP, || {
                let Ok(mut s) = UnixStream::connect(&path) else {
                    return false;
                };
                s.set_read_timeout(Some(STEP)).unwrap();
                let mut buf = [0; 4];
                s.write_all(b"ping").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"ping"
            }),
        };
        let (status, err) = server.stop();
        assert!(
            served,
            "{name}: not serving with stdout a broken pipe; stderr:\n{err}"
        );
        assert_eq!(
            status.code(),
            Some(0),
            "{name}: exit after SIGTERM; stderr:\n{err}"
        );
        assert!(!err.contains("panicked"), "{name}: panicked:\n{err}");
    }
}

// ---------------------------------------------------------------------------
// 6. unix_echo and socket files that are not its own
// ---------------------------------------------------------------------------

/// A fresh directory for socket paths, removed at the end of the test.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("harden-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Echoes `ping` through the Unix socket at `path`.
fn unix_ping(path: &std::path::Path) -> bool {
    let Ok(mut s) = std::os::unix::net::UnixStream::connect(path) else {
        return false;
    };
    s.set_read_timeout(Some(STEP)).unwrap();
    let mut buf = [0; 4];
    s.write_all(b"ping").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"ping"
}

/// Its path replaced by another server's socket, `unix_echo` deleted the
/// other's file at exit. Now it removes only the file it created.
#[test]
fn unix_echo_leaves_a_socket_file_that_replaced_its_own() {
    use std::os::unix::fs::MetadataExt;
    let dir = TempDir::new("replaced");
    let path = dir.0.join("echo.sock");
    let (server, _) = start("unix_echo", &[path.to_str().unwrap()]);
    assert!(unix_ping(&path));
    std::fs::remove_file(&path).unwrap();
    let other = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let ino = std::fs::symlink_metadata(&path).unwrap().ino();
    server.signal("-TERM");
    let (status, _, err) = server.finish();
    assert_eq!(status.code(), Some(0), "stderr:\n{err}");
    let meta = std::fs::symlink_metadata(&path);
    assert!(meta.is_ok(), "the other server's socket was removed");
    assert_eq!(meta.unwrap().ino(), ino, "not the other server's socket");
    drop(other);

    // Its own socket, still in place, goes at exit as before.
    let (server, _) = start("unix_echo", &[path.to_str().unwrap()]); // stale: removed
    server.signal("-TERM");
    let (status, _, err) = server.finish();
    assert_eq!(status.code(), Some(0), "stderr:\n{err}");
    assert!(!path.exists(), "its own socket was left behind");
}

/// A regular file or a directory at the path: left alone, exit 1 with one
/// line naming the path and what is there (before: "Address already in use").
#[test]
fn unix_echo_refuses_a_path_that_is_not_a_socket_saying_what_is_there() {
    let dir = TempDir::new("notsock");
    let file = dir.0.join("file.sock");
    std::fs::write(&file, b"precious").unwrap();
    let sub = dir.0.join("dir.sock");
    std::fs::create_dir(&sub).unwrap();
    std::fs::write(sub.join("inside"), b"kept").unwrap();
    for (path, what) in [(&file, "a regular file"), (&sub, "a directory")] {
        let (status, out, err) = run("unix_echo", &[path.to_str().unwrap()]);
        assert_eq!(status.code(), Some(1), "{what}: stderr:\n{err}");
        assert!(out.is_empty(), "{what}: stdout {out:?}");
        assert_eq!(err.lines().count(), 1, "{what}: one line:\n{err}");
        assert!(err.contains(path.to_str().unwrap()), "{what}: path:\n{err}");
        assert!(err.contains(what), "{what}: says what is there:\n{err}");
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"precious");
    assert_eq!(std::fs::read(sub.join("inside")).unwrap(), b"kept");
}

/// A path with a newline printed two readiness lines; a non-UTF-8 one was
/// printed lossily. Now the line escapes them (`\n`, `\xff`, `\\`).
#[test]
fn unix_echo_prints_an_odd_path_on_one_unambiguous_line() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let dir = TempDir::new("oddpath");
    let base = dir.0.to_str().unwrap().to_string();
    let cases: [(&[u8], &str); 3] = [
        (b"a\nb.sock", "a\\nb.sock"),
        (b"x\xffy.sock", "x\\xffy.sock"),
        (b"back\\slash.sock", "back\\\\slash.sock"),
    ];
    for (name, shown) in cases {
        let path = dir.0.join(OsStr::from_bytes(name));
        let mut cmd = example("unix_echo");
        cmd.arg(&path);
        let (server, addr) = Proc::start_ready("unix_echo", cmd, STEP);
        assert_eq!(addr, format!("{base}/{shown}"), "readiness line");
        assert!(unix_ping(&path), "{shown}: serving at the real path");
        server.signal("-TERM");
        let (status, lines, err) = server.finish();
        assert_eq!(status.code(), Some(0), "stderr:\n{err}");
        assert!(lines.is_empty(), "{shown}: more stdout: {lines:?}");
        assert!(!path.exists(), "{shown}: socket left behind");
    }
}

// ---------------------------------------------------------------------------
// 8. The clients
// ---------------------------------------------------------------------------

/// Ctrl-C made `chat_client` exit 1 with "connection ... lost: shutdown";
/// it must leave cleanly, exit 0 (and the room hears that it left).
#[test]
fn chat_client_ctrl_c_leaves_cleanly_with_exit_0() {
    let (_server, addr) = start("chatroom", &["127.0.0.1", "0"]);
    let observer = connect(&addr);
    assert!(line(&observer).starts_with("* welcome"));
    let (host, port) = addr.rsplit_once(':').unwrap();
    let mut cmd = example("chat_client");
    cmd.args([host, port]).stdin(std::process::Stdio::piped());
    let client = Proc::spawn("chat_client", cmd, STEP);
    let welcome = client.line().expect("a welcome line");
    assert!(welcome.starts_with("* welcome"), "{welcome:?}");
    let joined = line(&observer);
    let name = joined
        .strip_prefix("* ")
        .and_then(|l| l.strip_suffix(" joined"))
        .unwrap_or_else(|| panic!("not a join notice: {joined:?}"))
        .to_string();
    client.signal("-INT");
    let (status, _, err) = client.finish();
    assert_eq!(status.code(), Some(0), "exit after Ctrl-C; stderr:\n{err}");
    assert!(!err.contains("lost"), "stderr:\n{err}");
    assert_eq!(line(&observer), format!("* {name} left"));
}

/// A listener that completes handshakes (in its backlog) and never answers.
fn silent_listener() -> (std::net::TcpListener, String) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port().to_string();
    (l, port)
}

/// `multiconn_client --timeout N` took N + 2 s (the graceful shutdown's
/// flush timeout) and printed a WARN; now it gives up at N.
#[test]
fn multiconn_client_timeout_takes_its_time_and_no_warning() {
    let (_silent, port) = silent_listener();
    for name in ["multiconn_client", "selector_client"] {
        let started = Instant::now();
        let (status, out, err) = run(name, &["--timeout", "2", "127.0.0.1", &port, "3"]);
        let took = started.elapsed();
        assert_eq!(status.code(), Some(1), "{name}: stderr:\n{err}");
        assert!(out.is_empty(), "{name}: stdout {out:?}");
        assert!(err.contains("timed out"), "{name}: stderr:\n{err}");
        assert!(!err.contains("WARN"), "{name}: a warning:\n{err}");
        assert_eq!(err.lines().count(), 1, "{name}: one line:\n{err}");
        // Generous for a loaded machine; before the fix it was 4 s and more.
        assert!(took < Duration::from_millis(3500), "{name}: took {took:?}");
    }
}

/// A fake echo server for `conns` connections: echoes what each sends
/// (the two messages), reads on to its EOF, then sends `extra` and closes.
fn echo_then(extra: &'static [u8], conns: usize) -> (String, thread::JoinHandle<()>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port().to_string();
    let server = thread::spawn(move || {
        let mut handlers = Vec::new();
        for _ in 0..conns {
            let (s, _) = l.accept().unwrap();
            handlers.push(thread::spawn(move || {
                s.set_read_timeout(Some(STEP)).unwrap();
                let got = read_n(&s, 44, STEP);
                let _ = (&s).write_all(&got);
                let mut rest = Vec::new();
                let _ = (&s).read_to_end(&mut rest); // the client's EOF (or close)
                let _ = (&s).write_all(extra);
            }));
        }
        for h in handlers {
            let _ = h.join();
        }
    });
    (port, server)
}

/// Bytes the server sends after the echo were accepted: the contract says
/// "exactly what it sent". Now each client half-closes once the echo is
/// back and reads on to the server's close.
#[test]
fn multiconn_clients_fail_on_bytes_after_the_echo() {
    for name in ["multiconn_client", "selector_client"] {
        let (port, server) = echo_then(b"EXTRA", 2);
        let (status, _, err) = run(name, &["127.0.0.1", &port, "2"]);
        assert_eq!(status.code(), Some(1), "{name}: stderr:\n{err}");
        assert!(err.contains("differs"), "{name}: stderr:\n{err}");
        assert!(err.contains("EXTRA"), "{name}: stderr:\n{err}");
        server.join().unwrap();
        // The same server without the extra bytes: all well.
        let (port, server) = echo_then(b"", 2);
        let (status, out, err) = run(name, &["127.0.0.1", &port, "2"]);
        assert_eq!(status.code(), Some(0), "{name}: stderr:\n{err}");
        assert_eq!(out.len(), 2, "{name}: {out:?}");
        server.join().unwrap();
    }
}

/// A command that runs example `name` with `/etc/hosts` replaced, in a
/// mount namespace of its own, by one where `multi.test` names `::1` and
/// `127.0.0.1`; `None` where that cannot be done (not root).
fn with_hosts(hosts: &std::path::Path, name: &str, args: &[&str]) -> Option<Command> {
    let ok = Command::new("unshare")
        .args(["-m", "sh", "-c", "mount --bind \"$0\" /etc/hosts"])
        .arg(hosts)
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        return None;
    }
    let exe = example(name).get_program().to_owned();
    let script = "mount --bind \"$0\" /etc/hosts && exec \"$@\"";
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "sh", "-c", script])
        .arg(hosts)
        .arg(exe)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    Some(cmd)
}

/// The clients tried only the first resolved address (`localhost` against
/// a server on `::1` only was refused). Now they try each in turn, as
/// Python's `create_connection` does; the server is put on each of the
/// name's two addresses in turn, so one of the runs must fall back.
#[test]
fn clients_try_every_address_the_host_resolves_to() {
    let dir = TempDir::new("hosts");
    let hosts = dir.0.join("hosts");
    std::fs::write(&hosts, "::1 multi.test\n127.0.0.1 multi.test\n").unwrap();
    for ip in ["::1", "127.0.0.1"] {
        let (_echo, addr) = start("multiconn_echo", &[ip, "0"]);
        let port = addr.rsplit_once(':').unwrap().1.to_string();
        for name in ["multiconn_client", "selector_client"] {
            let Some(cmd) = with_hosts(&hosts, name, &["multi.test", &port, "2"]) else {
                eprintln!("skipped: cannot replace /etc/hosts in a mount namespace");
                return;
            };
            let (status, out, err) = Proc::spawn(name, cmd, STEP).finish();
            assert_eq!(status.code(), Some(0), "{name} to {ip}: stderr:\n{err}");
            assert_eq!(out.len(), 2, "{name} to {ip}: {out:?}");
        }
        let (_chat, addr) = start("chatroom", &[ip, "0"]);
        let port = addr.rsplit_once(':').unwrap().1.to_string();
        let cmd = with_hosts(&hosts, "chat_client", &["multi.test", &port]).unwrap();
        // stdin at EOF at once: it says goodbye (FIN) and the server closes.
        let (status, out, err) = Proc::spawn("chat_client", cmd, STEP).finish();
        assert_eq!(
            status.code(),
            Some(0),
            "chat_client to {ip}: stderr:\n{err}"
        );
        assert!(
            out[0].starts_with("* welcome"),
            "chat_client to {ip}: {out:?}"
        );
    }
}

/// A server that could not resolve its host said only "failed to lookup
/// address information"; the message must name the host.
#[test]
fn a_server_that_cannot_resolve_its_host_names_it() {
    for name in ["multiconn_echo", "chatroom", "udp_echo"] {
        let (status, out, err) = run(name, &["nosuchhost.invalid", "0"]);
        assert_eq!(status.code(), Some(1), "{name}: stderr:\n{err}");
        assert!(out.is_empty(), "{name}: stdout {out:?}");
        assert_eq!(err.lines().count(), 1, "{name}: one line:\n{err}");
        assert!(err.contains("nosuchhost.invalid"), "{name}: stderr:\n{err}");
    }
}

// ---------------------------------------------------------------------------
// 9. What a newcomer meets: --help, and logs of connects
// ---------------------------------------------------------------------------

/// `--help` of the multiconn clients showed an internal doc comment
/// ("The multiconn client's arguments (`multiconn_client` and ...)").
#[test]
fn multiconn_clients_help_describes_the_program() {
    for name in ["multiconn_client", "selector_client"] {
        let (status, out, err) = run(name, &["--help"]);
        assert_eq!(status.code(), Some(0), "{name}: stderr:\n{err}");
        let help = out.join("\n");
        assert!(
            !help.contains("arguments ("),
            "{name}: internal doc:\n{help}"
        );
        assert!(help.contains("exactly what it sent"), "{name}:\n{help}");
        assert!(help.contains("--timeout"), "{name}:\n{help}");
    }
}

/// With `RUST_LOG=info` (as the README's "Run it" shows) every server logs
/// each connect, naming the client, as the tutorials print them.
#[test]
fn servers_log_each_connect_at_info() {
    let dir = TempDir::new("log");
    let path = dir.0.join("echo.sock");
    for name in ["multiconn_echo", "chatroom", "unix_echo"] {
        let mut cmd = example(name);
        match name {
            "unix_echo" => cmd.arg(&path),
            _ => cmd.args(["127.0.0.1", "0"]),
        };
        cmd.env("RUST_LOG", "info");
        let (server, addr) = Proc::start_ready(name, cmd, STEP);
        let who = if name == "unix_echo" {
            assert!(unix_ping(&path));
            "unix:unnamed".to_string()
        } else {
            let s = connect(&addr);
            let who = s.local_addr().unwrap().to_string();
            if name == "chatroom" {
                assert!(line(&s).starts_with("* welcome"));
            } else {
                (&s).write_all(b"ping").unwrap();
                assert_eq!(read_n(&s, 4, STEP), b"ping");
            }
            who
        };
        server.signal("-TERM");
        let (status, _, err) = server.finish();
        assert_eq!(status.code(), Some(0), "{name}: stderr:\n{err}");
        let logged = err
            .lines()
            .any(|l| l.contains(" INFO ") && l.contains(&who) && !l.contains("left"));
        assert!(
            logged,
            "{name}: no info line for the connect of {who}:\n{err}"
        );
    }
}

// ---------------------------------------------------------------------------
// Decided and documented: how a dual-stack server names IPv4 clients
// ---------------------------------------------------------------------------

/// On a dual-stack bind (`::`), IPv4 clients were named
/// `[::ffff:127.0.0.1]:p`; they are `127.0.0.1:p`, as on an IPv4 bind.
#[test]
fn a_dual_stack_chatroom_names_ipv4_clients_as_ipv4() {
    let (_server, addr) = start("chatroom", &["::", "0"]);
    let port = addr.rsplit_once(':').unwrap().1;
    let Ok(s) = TcpStream::connect(format!("127.0.0.1:{port}")) else {
        eprintln!("skipped: this host's [::] does not accept IPv4");
        return;
    };
    s.set_read_timeout(Some(STEP)).unwrap();
    let me = s.local_addr().unwrap();
    assert_eq!(
        line(&s),
        format!("* welcome {me}! /help lists the commands"),
        "the name of an IPv4 client on a dual-stack bind"
    );
    (&s).write_all(b"/who\n").unwrap();
    assert_eq!(line(&s), format!("* online: {me}"));
}

// ---------------------------------------------------------------------------
// 2. Silent truncation after a half-close
// ---------------------------------------------------------------------------

/// Sends `total` pattern bytes on `client` from a thread, then half-closes.
fn send_then_half_close(client: &TcpStream, total: usize) -> thread::JoinHandle<io::Result<()>> {
    let s = client.try_clone().unwrap();
    thread::spawn(move || {
        let mut chunk = vec![0; 64 * 1024];
        let mut at = 0;
        while at < total {
            let n = chunk.len().min(total - at);
            for (i, b) in chunk[..n].iter_mut().enumerate() {
                *b = pattern(at + i);
            }
            (&s).write_all(&chunk[..n])?;
            at += n;
        }
        s.shutdown(Shutdown::Write)
    })
}

/// How a read-to-the-end ended: the bytes, and `Ok` for a clean EOF or the
/// error (a reset) that ended it.
fn read_to_end(s: &TcpStream, limit: Duration) -> (Vec<u8>, io::Result<()>) {
    let until = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0; 64 * 1024];
    loop {
        let left = until.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "no EOF within {limit:?} ({} bytes)",
            got.len()
        );
        s.set_read_timeout(Some(left)).unwrap();
        match (&*s).read(&mut buf) {
            Ok(0) => return (got, Ok(())),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => {}
            Err(e) => return (got, Err(e)),
        }
    }
}

/// 3 MB sent, half-closed, then 5 s without reading (a small receive
/// buffer): the client got 2,990,080 bytes and a clean EOF, the rest gone
/// without a word. A peer that is slow but alive must get all of it.
#[test]
fn a_slow_reader_after_half_close_gets_every_byte() {
    const TOTAL: usize = 3_000_000;
    let (_server, addr) = start("multiconn_echo", &["127.0.0.1", "0"]);
    let client = connect_with_rcvbuf(&addr, 4096);
    let writer = send_then_half_close(&client, TOTAL);
    writer.join().unwrap().expect("send and half-close");
    // The slow part: the server has everything and is closing.
    thread::sleep(Duration::from_secs(5)); // the scenario, not a handshake
    let (got, end) = read_to_end(&client, Duration::from_secs(60));
    assert!(end.is_ok(), "ended by {end:?} after {} bytes", got.len());
    assert_eq!(got.len(), TOTAL, "bytes echoed before EOF");
    let bad = (0..TOTAL).find(|&i| got[i] != pattern(i));
    assert_eq!(bad, None, "first wrong byte");
}

/// When the server does give up on a peer that stopped reading (here after
/// `--flush-timeout 1`), it must say so with a reset, never a clean EOF
/// after dropping data.
#[test]
fn a_server_that_gives_up_on_a_reader_resets_it() {
    const TOTAL: usize = 3_000_000;
    let (_server, addr) = start(
        "multiconn_echo",
        &["--flush-timeout", "1", "127.0.0.1", "0"],
    );
    let client = connect_with_rcvbuf(&addr, 4096);
    let writer = send_then_half_close(&client, TOTAL);
    writer.join().unwrap().expect("send and half-close");
    thread::sleep(Duration::from_secs(3)); // past the server's patience
    let (got, end) = read_to_end(&client, Duration::from_secs(60));
    assert!(
        got.len() < TOTAL,
        "all {TOTAL} bytes came back: nothing given up"
    );
    let e = end.expect_err("a clean EOF after dropped data");
    assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}");
    let bad = (0..got.len()).find(|&i| got[i] != pattern(i));
    assert_eq!(bad, None, "what did arrive is a prefix of what was sent");
}

// ---------------------------------------------------------------------------
// 5. A client that left still held a --max-clients slot
// ---------------------------------------------------------------------------

/// After `/quit` the server says `* bye`, sends FIN and waits (up to 2 s)
/// for the client's FIN; meanwhile the client still counted against
/// `--max-clients`, so a newcomer got `* error: server full` while `/who`
/// showed room. A client that left holds no slot.
#[test]
fn a_client_that_left_frees_its_slot_at_once() {
    let (_server, addr) = start("chatroom", &["--max-clients", "2", "127.0.0.1", "0"]);
    let stayer = connect(&addr);
    assert!(line(&stayer).starts_with("* welcome"));
    // The stayer's notices, tallied (some may come as "* N left" sums).
    let notices = line_reader(&stayer);
    let mut tally = Tally::default();
    for round in 0..3 {
        let leaver = connect(&addr);
        assert!(line(&leaver).starts_with("* welcome"), "round {round}");
        (&leaver).write_all(b"/quit\n").unwrap();
        assert_eq!(line(&leaver), "* bye");
        // The server's FIN: it is done with this client, which keeps its
        // own socket open (no FIN back) for now.
        assert_eq!(
            read_n(&leaver, 1, STEP),
            b"",
            "round {round}: EOF after bye"
        );
        let newcomer = connect(&addr);
        let welcome = line(&newcomer);
        assert!(
            welcome.starts_with("* welcome"),
            "round {round}: {welcome:?}"
        );
        drop(newcomer);
        // Both gone before the next round: the room says so.
        tally.until(&notices, |t| t.leaves == 2 * (round + 1));
        drop(leaver);
    }
}

// ---------------------------------------------------------------------------
// 7. Notice storms
// ---------------------------------------------------------------------------

/// Every line a client receives, read by a thread, until EOF or error.
fn line_reader(s: &TcpStream) -> std::sync::mpsc::Receiver<String> {
    let s = s.try_clone().unwrap();
    s.set_read_timeout(None).unwrap();
    process::lines_of(s)
}

/// What an observer counted of the room's joins and leaves: individual
/// `* NAME joined`/`* NAME left ...` lines and `* N joined, M left` sums.
#[derive(Default, Debug)]
struct Tally {
    joins: usize,
    leaves: usize,
    individual: usize,
    summaries: usize,
}

impl Tally {
    fn add(&mut self, line: &str) {
        let Some(text) = line.strip_prefix("* ") else {
            return;
        };
        let mut summed = false;
        for part in text.split(", ") {
            let mut words = part.split(' ');
            if let (Some(n), Some(what), None) = (words.next(), words.next(), words.next()) {
                if let Ok(n) = n.parse::<usize>() {
                    summed = true;
                    match what {
                        "joined" => self.joins += n,
                        "left" => self.leaves += n,
                        _ => panic!("not a summary: {line:?}"),
                    }
                }
            }
        }
        if summed {
            self.summaries += 1;
        } else if text.ends_with(" joined") {
            self.joins += 1;
            self.individual += 1;
        } else if text.contains(" left") {
            self.leaves += 1;
            self.individual += 1;
        }
    }

    /// Reads `lines` until `done` holds of the tally (within `STEP`).
    fn until(&mut self, lines: &std::sync::mpsc::Receiver<String>, done: impl Fn(&Tally) -> bool) {
        let until = Instant::now() + STEP;
        while !done(self) {
            let left = until.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => self.add(&line),
                Err(e) => panic!("{e} with {self:?}"),
            }
        }
    }
}

/// 10,000 clients vanishing at once sent every survivor 10,000 `left`
/// lines (1.31 GB of output queued) and a newcomer waited 2.74 s for its
/// welcome. Now each second says at most 10 of them, then one sum.
#[test]
fn a_mass_disconnect_costs_each_member_a_few_lines() {
    const CROWD: usize = 1000;
    let (_server, addr) = start("chatroom", &["127.0.0.1", "0"]);
    let observer = connect(&addr);
    assert!(line(&observer).starts_with("* welcome"));
    let lines = line_reader(&observer);
    let started = Instant::now();
    let crowd: Vec<TcpStream> = (0..CROWD)
        .map(|_| {
            let s = connect(&addr);
            assert!(line(&s).starts_with("* welcome"));
            s
        })
        .collect();
    let mut joining = Tally::default();
    joining.until(&lines, |t| t.joins == CROWD);
    let secs = started.elapsed().as_secs() as usize + 1;
    assert!(
        joining.individual <= 10 * secs,
        "{} individual join notices in {secs} s: {joining:?}",
        joining.individual
    );
    let started = Instant::now();
    drop(crowd);
    let mut leaving = Tally::default();
    leaving.until(&lines, |t| t.leaves == CROWD);
    let secs = started.elapsed().as_secs() as usize + 1;
    assert!(
        leaving.individual <= 10 * secs && leaving.summaries <= secs + 1,
        "{CROWD} departures cost {} lines in {secs} s: {leaving:?}",
        leaving.individual + leaving.summaries
    );
    let newcomer = connect(&addr);
    assert!(line(&newcomer).starts_with("* welcome"));
}

/// One party's connect/close churn made a member who paused reading be cut
/// as too slow by the notices alone (after 50 s at the 1 MiB cap). Now the
/// churn costs it at most about 11 lines a second, whatever the churn.
#[test]
fn churn_costs_a_member_who_pauses_reading_a_few_lines_a_second() {
    const CHURN: usize = 2000;
    let (_server, addr) = start("chatroom", &["--max-output", "16384", "127.0.0.1", "0"]);
    let observer = connect(&addr);
    assert!(line(&observer).starts_with("* welcome"));
    let paused = connect_with_rcvbuf(&addr, 4096);
    assert!(line(&paused).starts_with("* welcome"));
    let paused_name = paused.local_addr().unwrap().to_string();
    let lines = line_reader(&observer);
    let mut tally = Tally::default();
    tally.until(&lines, |t| t.joins == 1);
    let started = Instant::now();
    for _ in 0..CHURN {
        let s = connect(&addr);
        assert!(line(&s).starts_with("* welcome"));
    }
    tally.until(&lines, |t| t.leaves >= CHURN);
    let secs = started.elapsed().as_secs() as usize + 1;
    (&observer).write_all(b"done\n").unwrap();
    let observer_name = observer.local_addr().unwrap().to_string();
    // The paused member reads at last: what it missed, then the line.
    let want = format!("<{observer_name}> done");
    let mut missed = Tally::default();
    loop {
        let got = line(&paused);
        assert!(!got.contains("too slow"), "{got:?}");
        if got == want {
            break;
        }
        missed.add(&got);
    }
    assert_eq!((missed.joins, missed.leaves), (CHURN, CHURN), "{missed:?}");
    assert!(
        missed.individual <= 10 * secs && missed.summaries <= 2 * secs + 1,
        "{CHURN} connect/close cycles in {secs} s cost a paused member {} lines: {missed:?}",
        missed.individual + missed.summaries
    );
    assert!(
        !lines.try_iter().any(|l| l.contains(&paused_name)),
        "the paused member was announced as gone"
    );
}
