//! `chatroom --web` over raw sockets: the page and HTTP errors, the
//! WebSocket upgrade and its `Origin` check, and the protocol edges a
//! browser would never produce (unmasked, binary, oversized, fragmented,
//! closes mid-message, ping floods, header floods, slow heads, pipelined
//! requests), each next to a TCP client that must not notice.
//!
//! Frames are built by hand here on purpose: the point is to send what a
//! well-behaved client library would refuse to. Every read has a deadline.

#![cfg(feature = "websocket")]

mod util;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use util::chat::LineClient;
use util::process::{self, Proc};

const DEADLINE: Duration = Duration::from_secs(20);
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// A running `chatroom --web` with its two addresses.
struct Chat {
    _proc: Proc,
    tcp: SocketAddr,
    web: SocketAddr,
}

fn start(extra: &[&str]) -> Chat {
    let mut cmd = process::example(&["chatroom"], "chatroom");
    cmd.args(["127.0.0.1", "0", "--web", "127.0.0.1:0"])
        .args(extra);
    let (proc, tcp) = Proc::start_ready("chatroom", cmd, DEADLINE);
    let web = proc.line().expect("a second readiness line");
    let web = web
        .strip_prefix("web on http://")
        .and_then(|s| s.strip_suffix('/'))
        .unwrap_or_else(|| panic!("not a web readiness line: {web:?}"))
        .to_string();
    Chat {
        _proc: proc,
        tcp: tcp.parse().unwrap(),
        web: web.parse().unwrap(),
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, DEADLINE).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.set_write_timeout(Some(DEADLINE)).unwrap();
    s
}

/// Everything until the server closes (or resets) the connection.
fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("read: {e} after {:?}", String::from_utf8_lossy(&got)),
        }
    }
}

/// One HTTP response head and its body (by Content-Length).
fn read_response(s: &mut TcpStream, pending: &mut Vec<u8>) -> (String, Vec<u8>) {
    let mut buf = [0u8; 8192];
    loop {
        if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8(pending[..end + 4].to_vec()).unwrap();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .map_or(0, |v| v.trim().parse().unwrap());
            while pending.len() < end + 4 + len {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0, "EOF in a body");
                pending.extend_from_slice(&buf[..n]);
            }
            let body = pending[end + 4..end + 4 + len].to_vec();
            pending.drain(..end + 4 + len);
            return (head, body);
        }
        let n = s.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "EOF before a response: {:?}",
            String::from_utf8_lossy(pending)
        );
        pending.extend_from_slice(&buf[..n]);
    }
}

fn upgrade_request(web: SocketAddr, origin: Option<&str>) -> String {
    let mut s = format!(
        "GET /ws HTTP/1.1\r\nHost: {web}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\n"
    );
    if let Some(o) = origin {
        s.push_str(&format!("Origin: {o}\r\n"));
    }
    s + "\r\n"
}

/// A client frame, masked unless told otherwise.
fn frame(fin: bool, op: u8, masked: bool, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![(u8::from(fin) << 7) | op];
    let m = if masked { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => f.push(m | n as u8),
        n if n < 65536 => {
            f.push(m | 126);
            f.extend((n as u16).to_be_bytes());
        }
        n => {
            f.push(m | 127);
            f.extend((n as u64).to_be_bytes());
        }
    }
    if masked {
        let key = [0x5a, 0x13, 0xc4, 0x7e];
        f.extend(key);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        f.extend(payload);
    }
    f
}

/// A raw WebSocket client: upgrade, then frames in and out.
struct Ws {
    s: TcpStream,
    pending: Vec<u8>,
    /// Its chat name (its address as the server sees it).
    name: String,
}

#[derive(Debug, PartialEq)]
enum Frame {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<u16>),
}

impl Ws {
    fn open(web: SocketAddr) -> Ws {
        let mut s = connect(web);
        s.write_all(upgrade_request(web, Some(&format!("http://{web}"))).as_bytes())
            .unwrap();
        let mut pending = Vec::new();
        let (head, _) = read_response(&mut s, &mut pending);
        assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
        assert!(
            head.contains(&format!("Sec-WebSocket-Accept: {ACCEPT}\r\n")),
            "{head}"
        );
        let name = s.local_addr().unwrap().to_string();
        Ws { s, pending, name }
    }

    /// Opens and reads the welcome.
    fn join(web: SocketAddr) -> Ws {
        let mut ws = Ws::open(web);
        let welcome = ws.text();
        assert!(
            welcome.starts_with(&format!("* welcome {}", ws.name)),
            "{welcome}"
        );
        ws
    }

    fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).unwrap();
    }

    fn say(&mut self, text: &str) {
        self.send(&frame(true, 1, true, text.as_bytes()));
    }

    /// The next frame, or None at EOF.
    fn frame(&mut self) -> Option<Frame> {
        let mut buf = [0u8; 16384];
        loop {
            let p = &self.pending;
            if p.len() >= 2 {
                assert_eq!(p[1] & 0x80, 0, "server frames are unmasked");
                let (len, at) = match p[1] & 0x7f {
                    126 if p.len() >= 4 => (u16::from_be_bytes([p[2], p[3]]) as usize, 4),
                    127 if p.len() >= 10 => (
                        u64::from_be_bytes(p[2..10].try_into().unwrap()) as usize,
                        10,
                    ),
                    126 | 127 => (usize::MAX, 0),
                    n => (n as usize, 2),
                };
                if len != usize::MAX && p.len() >= at + len {
                    assert_ne!(p[0] & 0x80, 0, "server frames are unfragmented");
                    let payload = p[at..at + len].to_vec();
                    let op = p[0] & 0x0f;
                    self.pending.drain(..at + len);
                    return Some(match op {
                        1 => Frame::Text(String::from_utf8(payload).expect("UTF-8 text")),
                        2 => Frame::Binary(payload),
                        8 => Frame::Close(
                            (payload.len() >= 2)
                                .then(|| u16::from_be_bytes([payload[0], payload[1]])),
                        ),
                        9 => Frame::Ping(payload),
                        10 => Frame::Pong(payload),
                        op => panic!("opcode {op}"),
                    });
                }
            }
            match self.s.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("{}: read: {e}", self.name),
            }
        }
    }

    fn text(&mut self) -> String {
        match self.frame() {
            Some(Frame::Text(t)) => t,
            other => panic!("{}: expected text, got {other:?}", self.name),
        }
    }

    /// Skips text frames until a Close, and returns its code.
    fn close_code(&mut self) -> Option<u16> {
        loop {
            match self.frame() {
                Some(Frame::Close(code)) => return code,
                Some(Frame::Text(_) | Frame::Pong(_)) => {}
                other => panic!("{}: expected Close, got {other:?}", self.name),
            }
        }
    }
}

/// A TCP chat client that has joined and seen `joined` notices drain.
fn tcp(chat: &Chat) -> LineClient {
    LineClient::join(chat.tcp).give_up_after(Duration::from_secs(60))
}

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

#[test]
fn the_page_is_self_contained_html() {
    let chat = start(&[]);
    let mut s = connect(chat.web);
    s.write_all(format!("GET / HTTP/1.1\r\nHost: {}\r\n\r\n", chat.web).as_bytes())
        .unwrap();
    let (head, body) = read_response(&mut s, &mut Vec::new());
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("Content-Type: text/html; charset=utf-8\r\n"),
        "{head}"
    );
    let page = String::from_utf8(body).unwrap();
    assert!(page.contains("<input") && page.contains("new WebSocket("));
    assert!(page.contains("textContent") && !page.contains("innerHTML"));
    for external in [
        "src=\"http",
        "href=\"http",
        "@import",
        "url(http",
        "src=\"//",
    ] {
        assert!(!page.contains(external), "external asset: {external}");
    }
}

#[test]
fn errors_404_405_400_431() {
    let chat = start(&[]);
    let host = chat.web;
    let big = format!(
        "GET / HTTP/1.1\r\nHost: {host}\r\nX: {}\r\n\r\n",
        "a".repeat(9000)
    );
    let cases = [
        (
            format!("GET /nope HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
            "404",
        ),
        (
            format!("POST / HTTP/1.1\r\nHost: {host}\r\nContent-Length: 2\r\n\r\nhi"),
            "405",
        ),
        (format!("PUT /ws HTTP/1.1\r\nHost: {host}\r\n\r\n"), "405"),
        ("this is not http\r\n\r\n".to_string(), "400"),
        (big, "431"),
    ];
    for (req, status) in cases {
        let mut s = connect(chat.web);
        s.write_all(req.as_bytes()).unwrap();
        let got = String::from_utf8_lossy(&read_to_close(&mut s)).into_owned();
        assert!(
            got.starts_with(&format!("HTTP/1.1 {status} ")),
            "{req:?} -> {got}"
        );
    }
    // The chat is untouched.
    let mut a = tcp(&chat);
    a.sync();
}

#[test]
fn header_flood_in_small_writes_is_431() {
    let chat = start(&[]);
    let mut s = connect(chat.web);
    s.write_all(b"GET / HTTP/1.1\r\n").unwrap();
    let mut closed = false;
    for _ in 0..2000 {
        if s.write_all(b"X-Flood: 0123456789abcdef\r\n").is_err() {
            closed = true;
            break;
        }
    }
    let got = read_to_close(&mut s);
    assert!(
        got.starts_with(b"HTTP/1.1 431 ") || (closed && got.is_empty()),
        "{}",
        String::from_utf8_lossy(&got)
    );
}

#[test]
fn a_slow_head_is_closed_after_the_head_timeout() {
    let chat = start(&["--web-head-timeout", "1"]);
    let started = Instant::now();
    let mut silent = connect(chat.web);
    let mut slow = connect(chat.web);
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    let mut a = tcp(&chat);
    for s in [&mut silent, &mut slow] {
        let got = read_to_close(s);
        assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
    }
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(900), "too early: {took:?}");
    assert!(took < Duration::from_secs(8), "too late: {took:?}");
    a.sync();
}

#[test]
fn pipelined_requests_then_the_upgrade() {
    let chat = start(&[]);
    let web = chat.web;
    let mut s = connect(web);
    let mut req = format!("GET / HTTP/1.1\r\nHost: {web}\r\n\r\n");
    req += &format!("GET /favicon.ico HTTP/1.1\r\nHost: {web}\r\n\r\n");
    req += &upgrade_request(web, Some(&format!("http://{web}")));
    s.write_all(req.as_bytes()).unwrap();
    let mut pending = Vec::new();
    let (h1, _) = read_response(&mut s, &mut pending);
    let (h2, _) = read_response(&mut s, &mut pending);
    let (h3, _) = read_response(&mut s, &mut pending);
    assert!(h1.starts_with("HTTP/1.1 200 "), "{h1}");
    assert!(h2.starts_with("HTTP/1.1 404 "), "{h2}");
    assert!(h3.starts_with("HTTP/1.1 101 "), "{h3}");
    let name = s.local_addr().unwrap().to_string();
    let mut ws = Ws { s, pending, name };
    assert!(ws.text().starts_with("* welcome"));
}

#[test]
fn upgrade_from_another_origin_is_403() {
    let chat = start(&[]);
    let mut a = tcp(&chat);
    for origin in [
        None,
        Some("http://evil.example"),
        Some("http://127.0.0.1:1"),
    ] {
        let mut s = connect(chat.web);
        s.write_all(upgrade_request(chat.web, origin).as_bytes())
            .unwrap();
        let got = String::from_utf8_lossy(&read_to_close(&mut s)).into_owned();
        assert!(got.starts_with("HTTP/1.1 403 "), "{origin:?}: {got}");
    }
    // Nobody joined.
    assert!(a.sync().is_empty());
}

// ---------------------------------------------------------------------------
// Chat over WebSocket, with a TCP client in the same room
// ---------------------------------------------------------------------------

#[test]
fn browser_and_tcp_clients_share_the_room() {
    share_the_room(&[]);
}

/// On two reactors (least-loaded: the TCP client on one, the browser on
/// the other), the web listener is the group's and both are in one room.
#[test]
fn browser_and_tcp_clients_share_the_room_across_two_reactors() {
    share_the_room(&["--reactors", "2"]);
}

fn share_the_room(extra: &[&str]) {
    let chat = start(extra);
    let mut tcp_a = tcp(&chat);
    let mut ws = Ws::join(chat.web);
    tcp_a.expect(&format!("* {} joined", ws.name));

    ws.say("hello from the browser");
    tcp_a.expect(&format!("<{}> hello from the browser", ws.name));
    tcp_a.send("hello from tcp\n");
    // In a group, the TCP client's join goes through the room's sequencer
    // (reactor 0), so it may reach the browser after its own welcome.
    let mut got = ws.text();
    if got == format!("* {} joined", tcp_a.name) {
        got = ws.text();
    }
    assert_eq!(got, format!("<{}> hello from tcp", tcp_a.name));

    // A message holding newlines is several lines; a trailing one adds none.
    ws.say("one\ntwo\n");
    tcp_a.expect(&format!("<{}> one", ws.name));
    tcp_a.expect(&format!("<{}> two", ws.name));

    // Commands work from the browser.
    ws.say("/nick webby");
    assert_eq!(ws.text(), "* you are now webby");
    tcp_a.expect(&format!("* {} is now known as webby", ws.name));
    ws.say("/who");
    let who = ws.text();
    assert!(
        who.starts_with("* online: ") && who.contains("webby"),
        "{who}"
    );

    // Markup is relayed as text (the page shows it literally).
    ws.say("<img src=x onerror=alert(1)>");
    tcp_a.expect("<webby> <img src=x onerror=alert(1)>");

    // Control characters are sanitised as for TCP.
    ws.say("bell\u{7} here");
    tcp_a.expect("<webby> bell\u{fffd} here");

    ws.say("/quit");
    assert_eq!(ws.text(), "* bye");
    assert_eq!(ws.close_code(), Some(1000));
    tcp_a.expect_left("webby");
}

#[test]
fn a_long_message_gets_the_long_line_error() {
    // Up to 1 MiB (or 16 lines' worth, if more) a message is taken whole
    // and answered like a long TCP line; past it the socket is closed with
    // 1009 (the 10 MiB case below).
    let chat = start(&[]);
    let mut a = tcp(&chat);
    let mut ws = Ws::join(chat.web);
    a.expect(&format!("* {} joined", ws.name));
    ws.say(&"x".repeat(5000));
    assert_eq!(ws.text(), "* error: line too long (max 4096 bytes)");
    // Past 64 KiB too (a black-box run found those closed with 1009).
    ws.say(&"y".repeat(65537));
    assert_eq!(ws.text(), "* error: line too long (max 4096 bytes)");
    ws.say(&"z".repeat(1 << 20));
    assert_eq!(ws.text(), "* error: line too long (max 4096 bytes)");
    ws.say("still here");
    a.expect(&format!("<{}> still here", ws.name));
}

#[test]
fn fragmented_messages_are_reassembled() {
    let chat = start(&[]);
    let mut a = tcp(&chat);
    let mut ws = Ws::join(chat.web);
    a.expect(&format!("* {} joined", ws.name));
    let mut bytes = frame(false, 1, true, b"frag");
    bytes.extend(frame(true, 9, true, b"p"));
    bytes.extend(frame(false, 0, true, b"men"));
    bytes.extend(frame(true, 0, true, b"ted"));
    ws.send(&bytes);
    assert_eq!(ws.frame(), Some(Frame::Pong(b"p".to_vec())));
    a.expect(&format!("<{}> fragmented", ws.name));
}

#[test]
fn protocol_violations_close_with_their_codes_and_others_see_a_leave() {
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (frame(true, 1, false, b"unmasked"), 1002),
        (frame(true, 2, true, b"\x00\x01binary"), 1003),
        (frame(true, 1, true, b"\xff\xfe"), 1007),
        // Only the header of a 10 MiB frame: refused before any payload.
        (
            frame(true, 1, true, &vec![0; 10 << 20])[..14].to_vec(),
            1009,
        ),
        (frame(true, 0xB, true, b""), 1002),
    ];
    // A server per case: the room's notice budget (10 a second) would
    // otherwise fold these joins and leaves into a summary line.
    for (bytes, code) in cases {
        let chat = start(&[]);
        let mut a = tcp(&chat);
        let mut ws = Ws::join(chat.web);
        a.expect(&format!("* {} joined", ws.name));
        ws.send(&bytes);
        assert_eq!(ws.close_code(), Some(code), "{:?}", &bytes[..2]);
        assert!(read_to_close(&mut ws.s).len() < 64);
        let left = a.line();
        assert!(left.starts_with(&format!("* {} left", ws.name)), "{left}");
        a.sync();
    }
}

#[test]
fn a_close_in_the_middle_of_a_message() {
    let chat = start(&[]);
    let mut a = tcp(&chat);
    let mut ws = Ws::join(chat.web);
    a.expect(&format!("* {} joined", ws.name));
    let mut bytes = frame(false, 1, true, b"never fini");
    bytes.extend(frame(true, 8, true, &1000u16.to_be_bytes()));
    ws.send(&bytes);
    assert_eq!(ws.close_code(), Some(1000));
    let left = a.line();
    assert!(left.starts_with(&format!("* {} left", ws.name)), "{left}");
    // The half message was never relayed.
    assert!(a.sync().is_empty());
}

#[test]
fn a_ping_flood_is_answered_and_delays_nobody() {
    let chat = start(&[]);
    let mut a = tcp(&chat);
    let mut b = tcp(&chat);
    a.expect(&format!("* {} joined", b.name));
    let mut ws = Ws::join(chat.web);
    a.expect(&format!("* {} joined", ws.name));
    b.expect(&format!("* {} joined", ws.name));
    let mut flood = Vec::new();
    for i in 0..20_000u32 {
        flood.extend(frame(true, 9, true, &i.to_be_bytes()));
    }
    ws.send(&flood);
    let started = Instant::now();
    b.send("during the flood\n");
    a.expect(&format!("<{}> during the flood", b.name));
    assert!(started.elapsed() < Duration::from_secs(2));
    // The flooder gets pongs, the last one for the last ping.
    let mut last = None;
    while last != Some(19_999u32.to_be_bytes().to_vec()) {
        match ws.frame() {
            Some(Frame::Pong(p)) => last = Some(p),
            Some(Frame::Text(_)) => {}
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn eof_without_a_close_frame_is_a_leave() {
    let chat = start(&[]);
    let mut a = tcp(&chat);
    let ws = Ws::join(chat.web);
    a.expect(&format!("* {} joined", ws.name));
    let name = ws.name.clone();
    drop(ws);
    let left = a.line();
    assert!(left.starts_with(&format!("* {name} left")), "{left}");
}

#[test]
fn a_browser_that_stops_reading_is_cut_as_too_slow_like_tcp() {
    let chat = start(&[
        "--max-output",
        "65536",
        "--rate",
        "100000",
        "--burst",
        "100000",
    ]);
    let mut a = tcp(&chat);
    let mut b = tcp(&chat);
    a.expect(&format!("* {} joined", b.name));
    let ws = Ws::join(chat.web);
    a.expect(&format!("* {} joined", ws.name));
    b.expect(&format!("* {} joined", ws.name));
    // The browser reads nothing from now on; `a` talks, `b` keeps up,
    // until the server's output to the browser passes --max-output (after
    // the kernel's socket buffers are full).
    let text = "y".repeat(4000);
    let relay = format!("<{}> {text}", a.name);
    let left = format!("* {} left (too slow)", ws.name);
    let mut cut = false;
    for _ in 0..5000 {
        a.send(format!("{text}\n"));
        loop {
            let got = b.line();
            if got == left {
                cut = true;
                continue;
            }
            assert_eq!(got, relay);
            break;
        }
        if cut {
            break;
        }
    }
    assert!(cut, "the browser that stopped reading was never cut");
    // The others chat on; `a` saw the same notice.
    a.expect(&left);
    b.send("still fine\n");
    a.expect(&format!("<{}> still fine", b.name));
    drop(ws);
}
