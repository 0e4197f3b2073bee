//! TLS on the examples' listeners, checked with clients that are not ours
//! (`openssl s_client`, Python's `ssl`) and with a small blocking client on
//! this crate's own sans-IO session where the test needs control the
//! others do not give (half-close, never reading).
//!
//! Certificates are made by each test (`util/certs.rs`: rcgen,
//! self-signed, for `localhost` and 127.0.0.1); none is checked in.
//! Every wait has a deadline.

#![cfg(feature = "tls")]

#[path = "util/certs.rs"]
mod certs;
#[path = "util/process.rs"]
mod process;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use certs::Certs;
use mio_selectors::layer::Layer;
use mio_selectors::tls::{client_config_trusting, TlsSession};
use process::Proc;

const DEADLINE: Duration = Duration::from_secs(20);
const EXAMPLES: &[&str] = &["multiconn_echo", "chatroom"];

fn example(name: &str) -> Command {
    process::example(EXAMPLES, name)
}

/// `name` on 127.0.0.1 with TLS from `certs` and `extra` flags.
fn start(name: &str, certs: &Certs, extra: &[&str]) -> (Proc, SocketAddr) {
    let mut cmd = example(name);
    cmd.args(["127.0.0.1", "0", "--tls-cert"])
        .arg(certs.cert())
        .arg("--tls-key")
        .arg(certs.key())
        .args(extra);
    let (proc, addr) = Proc::start_ready(name, cmd, DEADLINE);
    (proc, addr.parse().unwrap())
}

/// A blocking TLS client on our own session, with deadlines on every call.
struct Client {
    sock: TcpStream,
    tls: TlsSession,
    plain: Vec<u8>,
    out: Vec<u8>,
    eof: bool,
}

impl Client {
    fn connect(addr: SocketAddr, certs: &Certs) -> Client {
        let config = client_config_trusting(certs.cert()).unwrap();
        let sock = TcpStream::connect_timeout(&addr, DEADLINE).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        sock.set_write_timeout(Some(Duration::from_millis(10)))
            .unwrap();
        let mut tls = TlsSession::client(config, "localhost").unwrap();
        let mut out = Vec::new();
        tls.start(&mut out).unwrap();
        let mut c = Client {
            sock,
            tls,
            plain: Vec::new(),
            out,
            eof: false,
        };
        let until = Instant::now() + DEADLINE;
        while c.tls.handshaking() {
            assert!(Instant::now() < until, "handshake took too long");
            c.pump();
        }
        c
    }

    /// Writes what it can of the pending output (the rest waits for the
    /// next pump: a peer that is not reading us must not stall our reads).
    fn flush(&mut self) {
        while !self.out.is_empty() {
            match self.sock.write(&self.out) {
                Ok(n) => {
                    self.out.drain(..n);
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
                Err(e) => panic!("write: {e}"),
            }
        }
    }

    /// Feeds one read's result to the session; false when nothing came.
    fn take(&mut self, r: std::io::Result<usize>, buf: &[u8]) -> bool {
        match r {
            Ok(0) => {
                let _ = self.tls.on_wire_eof(&mut self.plain, &mut self.out);
                self.eof = true;
                false
            }
            Ok(n) => {
                let p = self
                    .tls
                    .on_wire_input(&buf[..n], &mut self.plain, &mut self.out)
                    .unwrap();
                self.eof |= p.peer_closed;
                true
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => false,
            Err(e) => panic!("read: {e}"),
        }
    }

    /// Writes what it can, waits up to 200 ms for input, reads all there
    /// is, and writes again.
    fn pump(&mut self) {
        self.flush();
        let mut buf = vec![0u8; 65536];
        let r = self.sock.read(&mut buf);
        if self.take(r, &buf) && !self.eof {
            self.sock.set_nonblocking(true).unwrap();
            loop {
                let r = self.sock.read(&mut buf);
                if !self.take(r, &buf) || self.eof {
                    break;
                }
            }
            self.sock.set_nonblocking(false).unwrap();
        }
        self.flush();
    }

    fn send(&mut self, data: &[u8]) {
        let n = self.tls.on_app_output(data, &mut self.out).unwrap();
        assert_eq!(n, data.len());
        self.flush();
    }

    /// Reads until `want` plaintext bytes arrived or EOF.
    fn read_until(&mut self, want: usize) {
        let until = Instant::now() + DEADLINE;
        while self.plain.len() < want && !self.eof {
            assert!(Instant::now() < until, "got {} of {want}", self.plain.len());
            self.pump();
        }
    }
}

// ---------------------------------------------------------------------------
// Clients that are not ours
// ---------------------------------------------------------------------------

fn python(script: &str, args: &[&str]) -> (bool, String, String) {
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    let out = process::text_of(child.stdout.take().unwrap());
    let err = process::text_of(child.stderr.take().unwrap());
    let until = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > until {
            let _ = child.kill();
            panic!("python did not finish in {DEADLINE:?}");
        }
        thread::sleep(Duration::from_millis(20)); // polling an exit, not a handshake
    };
    (
        status.success(),
        out.recv_timeout(DEADLINE).unwrap_or_default(),
        err.recv_timeout(DEADLINE).unwrap_or_default(),
    )
}

/// Python's `ssl`: 1 MiB sent while the echo is read, one thread, non-blocking;
/// prints the TLS version and "ok" when every byte came back in order.
const PY_ECHO: &str = r#"
import selectors, socket, ssl, sys
host, port, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
s = ctx.wrap_socket(socket.create_connection((host, port), timeout=15), server_hostname="localhost")
data = bytes((i * 7 + i // 251) & 255 for i in range(1 << 20))
s.setblocking(False)
sel = selectors.DefaultSelector()
sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
got, sent = bytearray(), 0
while len(got) < len(data):
    events = sel.select(timeout=15)
    if not events:
        break
    while True:
        try:
            chunk = s.recv(65536)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            break
        if not chunk:
            break
        got += chunk
    if sent < len(data):
        try:
            sent += s.send(data[sent:sent + 16384])
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            pass
        if sent >= len(data):
            sel.modify(s, selectors.EVENT_READ)
print(s.version())
print("ok" if bytes(got) == data else "MISMATCH %d of %d" % (len(got), len(data)))
"#;

#[test]
fn python_ssl_echoes_one_mib_byte_exact() {
    let certs = Certs::new();
    let (_server, addr) = start("multiconn_echo", &certs, &[]);
    let port = addr.port().to_string();
    let ca = certs.cert();
    let (ok, out, err) = python(PY_ECHO, &["127.0.0.1", &port, ca.to_str().unwrap()]);
    assert!(ok, "python failed: {err}");
    assert_eq!(out, "TLSv1.3\nok\n", "{err}");
}

/// Python's `ssl`: four connections open at once, each echoing its own
/// 64 KiB; prints "ok" when all came back byte-exact.
const PY_ECHO_MANY: &str = r#"
import socket, ssl, sys
host, port, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
conns = [ctx.wrap_socket(socket.create_connection((host, port), timeout=15), server_hostname="localhost") for _ in range(4)]
good = True
for n, s in enumerate(conns):
    data = bytes(((i * 13 + n) & 255) for i in range(1 << 16))
    s.sendall(data)
    got = bytearray()
    while len(got) < len(data):
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
    good = good and bytes(got) == data
print("ok" if good else "MISMATCH")
"#;

#[test]
fn tls_echo_with_two_reactors_in_both_accept_modes() {
    let certs = Certs::new();
    for accept in ["least-loaded", "reuseport"] {
        let extra = ["--reactors", "2", "--accept", accept];
        let (_server, addr) = start("multiconn_echo", &certs, &extra);
        let port = addr.port().to_string();
        let ca = certs.cert();
        let (ok, out, err) = python(PY_ECHO_MANY, &["127.0.0.1", &port, ca.to_str().unwrap()]);
        assert!(ok, "python failed ({accept}): {err}");
        assert_eq!(out, "ok\n", "{accept}: {err}");
        let (ok, out, err) = python(PY_ECHO, &["127.0.0.1", &port, ca.to_str().unwrap()]);
        assert!(ok, "python failed ({accept}): {err}");
        assert_eq!(out, "TLSv1.3\nok\n", "{accept}: {err}");
    }
}

#[test]
fn openssl_s_client_echo_tls12_and_tls13() {
    let certs = Certs::new();
    let (_server, addr) = start("multiconn_echo", &certs, &[]);
    for version in ["-tls1_2", "-tls1_3"] {
        let mut child = Command::new("openssl")
            .args(["s_client", "-quiet", "-verify_return_error", version])
            .arg("-connect")
            .arg(addr.to_string())
            .args(["-servername", "localhost", "-CAfile"])
            .arg(certs.cert())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("openssl");
        let lines = process::lines_of(child.stdout.take().unwrap());
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"hello over openssl\n").unwrap();
        stdin.flush().unwrap();
        let got = lines.recv_timeout(DEADLINE);
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(got.as_deref(), Ok("hello over openssl"), "{version}");
    }
}

#[test]
fn half_close_with_close_notify_still_gets_everything_back() {
    let certs = Certs::new();
    let (_server, addr) = start("multiconn_echo", &certs, &[]);
    let mut c = Client::connect(addr, &certs);
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    // Send it all, then close_notify, before reading a single byte back.
    for piece in data.chunks(16384) {
        c.send(piece);
        c.pump();
    }
    c.tls.close(&mut c.out);
    c.flush();
    c.read_until(usize::MAX);
    assert!(
        c.plain == data,
        "{} of {} bytes back",
        c.plain.len(),
        data.len()
    );
    assert!(
        c.tls.peer_closed(),
        "the server's close_notify came after the data"
    );
}

#[test]
fn plaintext_on_the_tls_port_is_closed_and_others_are_served() {
    let certs = Certs::new();
    let (_server, addr) = start("multiconn_echo", &certs, &[]);
    let mut good = Client::connect(addr, &certs);

    let mut raw = TcpStream::connect(addr).unwrap();
    raw.set_read_timeout(Some(DEADLINE)).unwrap();
    raw.write_all(b"hello in the clear\n").unwrap();
    let mut got = Vec::new();
    let r = raw.read_to_end(&mut got);
    assert!(
        r.is_ok() || r.as_ref().unwrap_err().kind() == ErrorKind::ConnectionReset,
        "{r:?}"
    );
    assert!(
        !got.windows(5).any(|w| w == b"hello"),
        "nothing is echoed in the clear"
    );
    if !got.is_empty() {
        assert_eq!(got[0], 0x15, "at most a TLS alert record");
    }

    good.send(b"still here\n");
    good.read_until(11);
    assert_eq!(good.plain, b"still here\n");
}

#[test]
fn a_stalled_handshake_is_closed_after_the_timeout() {
    let certs = Certs::new();
    let (_server, addr) = start("multiconn_echo", &certs, &["--tls-handshake-timeout", "1"]);
    let started = Instant::now();
    let mut silent = TcpStream::connect(addr).unwrap();
    let mut partial = TcpStream::connect(addr).unwrap();
    // The first bytes of a ClientHello, and then nothing.
    partial
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .unwrap();
    let mut good = Client::connect(addr, &certs);
    for s in [&mut silent, &mut partial] {
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        let mut buf = Vec::new();
        let r = s.read_to_end(&mut buf);
        assert!(r.is_ok() || r.unwrap_err().kind() == ErrorKind::ConnectionReset);
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "closed too early: {took:?}"
    );
    assert!(took < Duration::from_secs(8), "closed too late: {took:?}");
    // A connection that did its handshake is not affected.
    good.send(b"ping\n");
    good.read_until(5);
    assert_eq!(good.plain, b"ping\n");
}

#[test]
fn a_client_that_never_reads_is_bounded_and_loses_nothing() {
    let certs = Certs::new();
    let (_server, addr) = start("multiconn_echo", &certs, &[]);
    let mut hoarder = Client::connect(addr, &certs);
    hoarder
        .sock
        .set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    // Write without reading until the server stops taking input (its
    // output is backed up, so it stops reading us, and TCP pushes back).
    let block = vec![b'x'; 16384];
    let mut sent = 0usize;
    let until = Instant::now() + DEADLINE;
    'outer: loop {
        assert!(Instant::now() < until, "the server never pushed back");
        hoarder.tls.on_app_output(&block, &mut hoarder.out).unwrap();
        while !hoarder.out.is_empty() {
            match hoarder.sock.write(&hoarder.out) {
                Ok(n) => {
                    hoarder.out.drain(..n);
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    sent += block.len();
                    break 'outer;
                }
                Err(e) => panic!("write: {e}"),
            }
        }
        sent += block.len();
    }
    assert!(sent < 64 << 20, "pushed back only after {sent} bytes");

    // Meanwhile another client is served.
    let mut other = Client::connect(addr, &certs);
    other.send(b"unaffected\n");
    other.read_until(11);
    assert_eq!(other.plain, b"unaffected\n");

    // And everything the hoarder sent comes back once it reads.
    let until = Instant::now() + DEADLINE;
    while hoarder.plain.len() < sent {
        assert!(Instant::now() < until, "{} of {sent}", hoarder.plain.len());
        hoarder.pump();
    }
    assert!(hoarder.plain.iter().all(|&b| b == b'x'));
    assert_eq!(hoarder.plain.len(), sent);
}

#[test]
fn chatroom_over_tls_with_python_clients() {
    chatroom_over_tls(&[]);
}

#[test]
fn chatroom_over_tls_with_two_reactors() {
    chatroom_over_tls(&["--reactors", "2"]);
}

fn chatroom_over_tls(extra: &[&str]) {
    let certs = Certs::new();
    let (_server, addr) = start("chatroom", &certs, extra);
    let script = r#"
import socket, ssl, sys
host, port, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
def conn():
    s = ctx.wrap_socket(socket.create_connection((host, port), timeout=15), server_hostname="localhost")
    return s, s.makefile("rb")
a, af = conn()
print(af.readline().decode().rstrip())
b, bf = conn()
bf.readline()
print(af.readline().decode().rstrip().split(" ")[-1])
b.sendall(b"hello from b\n")
print(af.readline().decode().rstrip().split("> ", 1)[1])
"#;
    let port = addr.port().to_string();
    let ca = certs.cert();
    let (ok, out, err) = python(script, &["127.0.0.1", &port, ca.to_str().unwrap()]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("* welcome"), "{out}");
    assert_eq!(lines[1], "joined", "{out}");
    assert_eq!(lines[2], "hello from b", "{out}");
}

// ---------------------------------------------------------------------------
// Startup errors
// ---------------------------------------------------------------------------

fn run_bad(name: &str, cert: &Path, key: &Path) -> (i32, String) {
    let mut cmd = example(name);
    cmd.args(["127.0.0.1", "0", "--tls-cert"])
        .arg(cert)
        .arg("--tls-key")
        .arg(key);
    let (status, _, stderr) = Proc::spawn(name, cmd, DEADLINE).finish();
    (status.code().unwrap_or(-1), stderr)
}

#[test]
fn bad_certificate_files_exit_1_naming_the_file() {
    let certs = Certs::new();
    let other = Certs::new();
    let junk = certs.file("junk.pem", b"not a certificate\n");
    let missing = certs.path("missing.pem");
    let other_key = certs.file("other-key.pem", &std::fs::read(other.key()).unwrap());
    for name in EXAMPLES {
        for (cert, key, named) in [
            (&missing, &certs.key(), "missing.pem"),
            (&junk, &certs.key(), "junk.pem"),
            (&certs.cert(), &junk, "junk.pem"),
            (&certs.cert(), &certs.cert(), "cert.pem"),
            (&certs.cert(), &other_key, "other-key.pem"),
        ] {
            let (code, stderr) = run_bad(name, cert, key);
            assert_eq!(code, 1, "{name} {cert:?} {key:?}: {stderr}");
            assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
            assert!(stderr.contains(named), "{name}: names {named}: {stderr}");
            assert!(!stderr.contains("panicked"), "{stderr}");
        }
    }
}

#[test]
fn cert_without_key_is_a_usage_error() {
    let certs = Certs::new();
    for name in EXAMPLES {
        let mut cmd = example(name);
        cmd.args(["127.0.0.1", "0", "--tls-cert"]).arg(certs.cert());
        let (status, _, stderr) = Proc::spawn(name, cmd, DEADLINE).finish();
        assert_eq!(status.code(), Some(2), "{name}: {stderr}");
        assert!(stderr.to_lowercase().contains("usage"), "{stderr}");
    }
}

/// `chatroom --web` with TLS: `web on https://ADDR/`, the page over
/// https and the room over wss, with Python's `ssl` and frames by hand.
#[cfg(feature = "websocket")]
#[test]
fn chatroom_web_over_https_and_wss() {
    let certs = Certs::new();
    let (server, addr) = start("chatroom", &certs, &["--web", "127.0.0.1:0"]);
    let web = server.line().expect("web readiness line");
    let web = web
        .strip_prefix("web on https://")
        .and_then(|w| w.strip_suffix('/'))
        .unwrap_or_else(|| panic!("not an https readiness line: {web:?}"))
        .to_string();
    let script = r#"
import os, socket, ssl, sys
host, port, ca, tcp_port = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
ctx = ssl.create_default_context(cafile=ca)
def tls():
    return ctx.wrap_socket(socket.create_connection((host, port), timeout=15), server_hostname="localhost")
s = tls()
s.sendall(b"GET / HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n" % (host.encode(), port))
page = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    page += chunk
print(page.split(b"\r\n")[0].decode())
w = tls()
w.sendall(("GET /ws HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           "Origin: https://%s:%d\r\n\r\n" % (host, port, host, port)).encode())
buf = b""
while b"\r\n\r\n" not in buf:
    buf += w.recv(4096)
head, buf = buf.split(b"\r\n\r\n", 1)
print(head.split(b"\r\n")[0].decode())
def frame():
    global buf
    while len(buf) < 2 or len(buf) < 2 + (buf[1] & 127):
        buf += w.recv(4096)
    n = buf[1] & 127
    payload, buf = buf[2:2 + n], buf[2 + n:]
    return payload.decode()
print(frame().split("!")[0])
t = ctx.wrap_socket(socket.create_connection((host, tcp_port), timeout=15), server_hostname="localhost")
tf = t.makefile("rb")
tf.readline()
print(frame().split(" ")[-1])
mask = os.urandom(4)
text = b"hello over wss"
w.sendall(bytes([0x81, 0x80 | len(text)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(text)))
print(tf.readline().decode().rstrip().split("> ", 1)[1])
"#;
    let (host, port) = web.rsplit_once(':').unwrap();
    let ca = certs.cert();
    let tcp_port = addr.port().to_string();
    let (ok, out, err) = python(script, &[host, port, ca.to_str().unwrap(), &tcp_port]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "HTTP/1.1 200 OK", "{out}");
    assert_eq!(lines[1], "HTTP/1.1 101 Switching Protocols", "{out}");
    assert!(lines[2].starts_with("* welcome"), "{out}");
    assert_eq!(lines[3], "joined", "{out}");
    assert_eq!(lines[4], "hello over wss", "{out}");
}
