//! The HTTP/WebSocket layer over in-memory bytes: requests and frames
//! built by hand (the point is to send what a well-behaved client would
//! not), answers decoded by hand.

use std::sync::Arc;

use super::*;
use crate::layer::{Layer, LayerError, SharedEncoding};

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

fn site() -> Arc<Site> {
    Site::new()
        .page("/", "text/html; charset=utf-8", &b"<!doctype html>page"[..])
        .websocket("/ws")
        .ws_config(WsConfig::default().max_message(1024))
        .into_shared()
}

fn upgrade(origin: Option<&str>) -> String {
    let mut s = format!(
        "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUpgrade: websocket\r\n\
         Connection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\n"
    );
    if let Some(o) = origin {
        s.push_str(&format!("Origin: {o}\r\n"));
    }
    s.push_str("\r\n");
    s
}

const ORIGIN: &str = "http://127.0.0.1:8080";

/// A client frame: FIN bit, opcode, masked or not.
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
    let key = [0x37, 0xfa, 0x21, 0x3d];
    if masked {
        f.extend(key);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        f.extend(payload);
    }
    f
}

fn text(s: &str) -> Vec<u8> {
    frame(true, 0x1, true, s.as_bytes())
}

/// Server frames, decoded: (opcode, payload). Server frames are unmasked.
fn frames(mut b: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while b.len() >= 2 {
        assert_eq!(b[1] & 0x80, 0, "server frames are never masked");
        let (len, at) = match b[1] & 0x7f {
            126 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
            127 => (
                u64::from_be_bytes(b[2..10].try_into().unwrap()) as usize,
                10,
            ),
            n => (n as usize, 2),
        };
        out.push((b[0] & 0x0f, b[at..at + len].to_vec()));
        b = &b[at + len..];
    }
    assert!(b.is_empty(), "trailing bytes {b:?}");
    out
}

fn close_code(payload: &[u8]) -> u16 {
    u16::from_be_bytes([payload[0], payload[1]])
}

/// A connection already upgraded; returns it with its app input.
fn open() -> WebServer {
    let mut c = WebServer::new(site());
    let (mut app, mut out) = (Vec::new(), Vec::new());
    let p = c
        .on_wire_input(upgrade(Some(ORIGIN)).as_bytes(), &mut app, &mut out)
        .unwrap();
    assert!(p.handshake_done && !c.handshaking() && c.is_websocket());
    let s = String::from_utf8(out).unwrap();
    assert!(s.starts_with("HTTP/1.1 101 Switching Protocols\r\n"), "{s}");
    assert!(
        s.contains(&format!("Sec-WebSocket-Accept: {ACCEPT}\r\n")),
        "{s}"
    );
    c
}

fn feed(
    c: &mut WebServer,
    bytes: &[u8],
) -> (Result<crate::layer::Progress, LayerError>, Vec<u8>, Vec<u8>) {
    let (mut app, mut out) = (Vec::new(), Vec::new());
    let r = c.on_wire_input(bytes, &mut app, &mut out);
    (r, app, out)
}

#[test]
fn page_404_and_upgrade_pipelined_in_one_read() {
    let mut c = WebServer::new(site());
    let mut input = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n".to_vec();
    input.extend(b"GET /favicon.ico HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n");
    input.extend(upgrade(Some(ORIGIN)).as_bytes());
    input.extend(text("hello"));
    let (r, app, out) = feed(&mut c, &input);
    let p = r.unwrap();
    assert!(p.handshake_done);
    assert_eq!(app, b"hello\n");
    let s = String::from_utf8_lossy(&out);
    let ok = s.find("HTTP/1.1 200 OK").unwrap();
    let nf = s.find("HTTP/1.1 404 Not Found").unwrap();
    let up = s.find("HTTP/1.1 101 Switching Protocols").unwrap();
    assert!(ok < nf && nf < up, "answered in order: {s}");
    assert!(s.contains("Content-Length: 19\r\n\r\n<!doctype html>page"));
}

#[test]
fn the_same_requests_byte_by_byte() {
    let mut c = WebServer::new(site());
    let mut input = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n".to_vec();
    input.extend(upgrade(Some(ORIGIN)).as_bytes());
    input.extend(text("a\nb"));
    let (mut app, mut out) = (Vec::new(), Vec::new());
    for b in &input {
        c.on_wire_input(std::slice::from_ref(b), &mut app, &mut out)
            .unwrap();
    }
    assert_eq!(app, b"a\nb\n");
    assert!(c.is_websocket());
}

#[test]
fn refusals_and_their_statuses() {
    let cases: &[(&str, u16)] = &[
        (
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
            405,
        ),
        ("DELETE /ws HTTP/1.1\r\nHost: x\r\n\r\n", 405),
        ("HELLO\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\n\r\n", 400),
        (
            "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
            400,
        ),
        ("GET /ws HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ];
    for (req, status) in cases {
        let mut c = WebServer::new(site());
        let (r, app, out) = feed(&mut c, req.as_bytes());
        match r {
            Err(LayerError::Http { status: s, .. }) => assert_eq!(s, *status, "{req:?}"),
            other => panic!("{req:?}: {other:?}"),
        }
        assert!(app.is_empty());
        let s = String::from_utf8(out).unwrap();
        assert!(
            s.starts_with(&format!("HTTP/1.1 {status} ")),
            "{req:?}: {s}"
        );
        assert!(s.contains("Connection: close\r\n"), "{s}");
        assert!(c.is_finished());
    }
}

#[test]
fn upgrade_needs_the_pages_own_origin() {
    for origin in [
        None,
        Some("http://evil.example"),
        Some("http://127.0.0.1:8081"),
        Some("https://127.0.0.1:8080"),
        Some("null"),
        Some("http://127.0.0.1:8080/path"),
    ] {
        let mut c = WebServer::new(site());
        let (r, _, out) = feed(&mut c, upgrade(origin).as_bytes());
        assert!(
            matches!(r, Err(LayerError::Http { status: 403, .. })),
            "{origin:?}: {r:?}"
        );
        assert!(out.starts_with(b"HTTP/1.1 403 Forbidden\r\n"));
        assert!(c.is_finished() && !c.is_websocket());
    }
    // Case and an explicit default port do not matter.
    let mut c = WebServer::new(site());
    let req = upgrade(Some("HTTP://127.0.0.1:8080"));
    assert!(feed(&mut c, req.as_bytes()).0.unwrap().handshake_done);
}

#[test]
fn origin_check_rules() {
    let req = |host: &str, origin: &str| {
        let s = format!("GET /ws HTTP/1.1\r\nHost: {host}\r\nOrigin: {origin}\r\n\r\n");
        crate::http::parse_head(s.as_bytes()).unwrap().unwrap().0
    };
    let same = OriginCheck::SameHost;
    assert!(same.allows(&req("example.org", "http://example.org:80"), false));
    assert!(same.allows(&req("Example.org:80", "http://example.org"), false));
    assert!(same.allows(&req("[::1]:9000", "http://[::1]:9000"), false));
    assert!(!same.allows(&req("[::1]:9000", "http://[::1]"), false));
    assert!(same.allows(&req("h:8443", "https://h:8443"), true));
    assert!(!same.allows(&req("h:8443", "http://h:8443"), true));
    assert!(same.allows(&req("h", "https://h:443"), true));
    assert!(OriginCheck::Any.allows(&req("a", "http://b"), false));
    let only_b = OriginCheck::Custom(Arc::new(|r| r.header("origin") == Some("http://b")));
    assert!(only_b.allows(&req("a", "http://b"), false));
    assert!(!only_b.allows(&req("a", "http://c"), false));
}

#[test]
fn header_flood_is_431_and_buffering_stays_bounded() {
    let mut c = WebServer::new(site());
    let (mut app, mut out) = (Vec::new(), Vec::new());
    let mut r = Ok(Default::default());
    c.on_wire_input(b"GET / HTTP/1.1\r\n", &mut app, &mut out)
        .unwrap();
    for _ in 0..1000 {
        r = c.on_wire_input(
            b"X-Flood: aaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
            &mut app,
            &mut out,
        );
        if r.is_err() {
            break;
        }
    }
    assert!(
        matches!(r, Err(LayerError::Http { status: 431, .. })),
        "{r:?}"
    );
    assert!(out.starts_with(b"HTTP/1.1 431 "));
    // And one huge read is refused the same way.
    let mut c = WebServer::new(site());
    let big = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(100_000));
    let (r, _, _) = feed(&mut c, big.as_bytes());
    assert!(matches!(r, Err(LayerError::Http { status: 431, .. })));
}

#[test]
fn pipelining_is_capped_per_connection() {
    let mut c = WebServer::new(site());
    let req = "GET / HTTP/1.1\r\nHost: x\r\n\r\n".repeat(MAX_REQUESTS_PER_CONNECTION + 50);
    let (r, _, out) = feed(&mut c, req.as_bytes());
    r.unwrap();
    let s = String::from_utf8(out).unwrap();
    assert_eq!(
        s.matches("HTTP/1.1 200 OK").count(),
        MAX_REQUESTS_PER_CONNECTION
    );
    assert_eq!(s.matches("Connection: close").count(), 1);
    assert!(c.is_finished());
}

#[test]
fn http_1_0_and_connection_close_end_after_the_response() {
    for req in [
        "GET / HTTP/1.0\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ] {
        let mut c = WebServer::new(site());
        let (r, _, out) = feed(&mut c, req.as_bytes());
        r.unwrap();
        assert!(out.starts_with(b"HTTP/1.1 200 OK"));
        assert!(String::from_utf8_lossy(&out).contains("Connection: close"));
        assert!(c.is_finished());
    }
}

#[test]
fn messages_become_lines() {
    let mut c = open();
    let mut input = text("plain");
    input.extend(text("two\nlines"));
    input.extend(text("ends with newline\n"));
    input.extend(text(""));
    input.extend(text("<img src=x onerror=alert(1)>"));
    let (r, app, out) = feed(&mut c, &input);
    assert_eq!(r.unwrap().app_bytes, app.len());
    assert_eq!(
        String::from_utf8(app).unwrap(),
        "plain\ntwo\nlines\nends with newline\n\n<img src=x onerror=alert(1)>\n"
    );
    assert!(out.is_empty());
}

#[test]
fn lines_become_messages() {
    let mut c = open();
    let mut out = Vec::new();
    assert_eq!(
        c.on_app_output(b"* welcome\n<a> hi\npart", &mut out)
            .unwrap(),
        21
    );
    c.on_app_output(b"ial\n", &mut out).unwrap();
    c.on_app_output(b"bad \xff utf8\n", &mut out).unwrap();
    let f = frames(&out);
    let texts: Vec<_> = f
        .iter()
        .map(|(op, p)| (*op, String::from_utf8(p.clone()).unwrap()))
        .collect();
    assert_eq!(
        texts,
        vec![
            (1, "* welcome".to_string()),
            (1, "<a> hi".into()),
            (1, "partial".into()),
            (1, "bad \u{fffd} utf8".into())
        ]
    );
}

#[test]
fn multibyte_lines_pass_unchanged_and_broken_ones_are_replaced() {
    let mut c = open();
    let mut out = Vec::new();
    c.on_app_output("<é> 日本 ok\n".as_bytes(), &mut out)
        .unwrap();
    // A sequence cut short, then a lone continuation byte.
    c.on_app_output(b"cut \xe6\x97 end \x80\n", &mut out)
        .unwrap();
    let texts: Vec<_> = frames(&out)
        .into_iter()
        .map(|(op, p)| (op, String::from_utf8(p).unwrap()))
        .collect();
    assert_eq!(
        texts,
        vec![
            (1, "<é> 日本 ok".to_string()),
            (1, "cut \u{fffd} end \u{fffd}".into())
        ]
    );
}

#[test]
fn fragments_with_a_ping_between_them() {
    let mut c = open();
    let mut input = frame(false, 0x1, true, b"frag");
    input.extend(frame(true, 0x9, true, b"ping!"));
    input.extend(frame(false, 0x0, true, b"men"));
    input.extend(frame(true, 0x0, true, b"ted"));
    let (r, app, out) = feed(&mut c, &input);
    r.unwrap();
    assert_eq!(app, b"fragmented\n");
    assert_eq!(frames(&out), vec![(0xA, b"ping!".to_vec())]);
}

#[test]
fn ping_flood_gets_pongs_and_nothing_else() {
    let mut c = open();
    let mut input = Vec::new();
    for i in 0..1000u32 {
        input.extend(frame(true, 0x9, true, &i.to_be_bytes()));
    }
    let (r, app, out) = feed(&mut c, &input);
    r.unwrap();
    assert!(app.is_empty());
    let f = frames(&out);
    assert!(!f.is_empty() && f.len() <= 1000, "{} pongs", f.len());
    assert!(f.iter().all(|(op, _)| *op == 0xA));
    // The last ping is always answered.
    assert_eq!(f.last().unwrap().1, 999u32.to_be_bytes());
    assert!(out.len() <= input.len(), "pongs are no bigger than pings");
}

#[test]
fn unmasked_client_frames_close_with_1002() {
    let mut c = open();
    let (r, app, out) = feed(&mut c, &frame(true, 0x1, false, b"hi"));
    assert!(
        matches!(r, Err(LayerError::WebSocket { code: 1002, .. })),
        "{r:?}"
    );
    assert!(app.is_empty());
    let f = frames(&out);
    assert_eq!(f.len(), 1);
    assert_eq!((f[0].0, close_code(&f[0].1)), (0x8, 1002));
    assert!(c.is_finished());
}

#[test]
fn binary_closes_with_1003() {
    let mut c = open();
    let mut input = text("before");
    input.extend(frame(true, 0x2, true, b"\x00\x01"));
    input.extend(text("after"));
    let (r, app, out) = feed(&mut c, &input);
    assert!(
        matches!(r, Err(LayerError::WebSocket { code: 1003, .. })),
        "{r:?}"
    );
    assert_eq!(app, b"before\n", "nothing after the binary message");
    let f = frames(&out);
    assert_eq!((f[0].0, close_code(&f[0].1)), (0x8, 1003));
}

#[test]
fn oversized_messages_close_with_1009_before_the_payload_arrives() {
    let mut c = open();
    // Only the header of a 1 MiB frame: refused on the header alone.
    let header = &frame(true, 0x1, true, &vec![b'a'; 1 << 20])[..14];
    let (r, _, out) = feed(&mut c, header);
    assert!(
        matches!(r, Err(LayerError::WebSocket { code: 1009, .. })),
        "{r:?}"
    );
    assert_eq!(close_code(&frames(&out)[0].1), 1009);

    // Fragments that add up past the limit.
    let mut c = open();
    let mut input = Vec::new();
    for _ in 0..4 {
        input.extend(frame(
            false,
            if input.is_empty() { 1 } else { 0 },
            true,
            &[b'a'; 300],
        ));
    }
    let (r, app, _) = feed(&mut c, &input);
    assert!(
        matches!(r, Err(LayerError::WebSocket { code: 1009, .. })),
        "{r:?}"
    );
    assert!(app.is_empty());

    // Just under the limit is a line (the application judges its length).
    let mut c = open();
    let (r, app, _) = feed(&mut c, &text(&"a".repeat(1024)));
    r.unwrap();
    assert_eq!(app.len(), 1025);
}

#[test]
fn invalid_utf8_closes_with_1007() {
    let mut c = open();
    let (r, _, out) = feed(&mut c, &frame(true, 0x1, true, b"\xff\xfe"));
    assert!(
        matches!(r, Err(LayerError::WebSocket { code: 1007, .. })),
        "{r:?}"
    );
    assert_eq!(close_code(&frames(&out)[0].1), 1007);
}

#[test]
fn bad_opcodes_and_control_frames_close_with_1002() {
    for bad in [
        frame(true, 0x3, true, b"x"),      // reserved data opcode
        frame(true, 0xB, true, b"x"),      // reserved control opcode
        frame(false, 0x9, true, b"x"),     // fragmented ping
        frame(true, 0x9, true, &[0; 126]), // control frame too big
        frame(true, 0x0, true, b"x"),      // continuation of nothing
        [frame(false, 1, true, b"a"), text("b")].concat(), // new message mid-message
        vec![0x81 | 0x40, 0x80, 0, 0, 0, 0], // RSV1 without an extension
    ] {
        let mut c = open();
        let (r, _, out) = feed(&mut c, &bad);
        assert!(
            matches!(r, Err(LayerError::WebSocket { code: 1002, .. })),
            "{bad:?}: {r:?}"
        );
        assert_eq!(close_code(&frames(&out)[0].1), 1002);
    }
}

#[test]
fn peer_close_is_eof_and_is_answered() {
    let mut c = open();
    let mut input = text("bye then");
    input.extend(frame(true, 0x8, true, &1000u16.to_be_bytes()));
    input.extend(text("ignored after close"));
    let (r, app, out) = feed(&mut c, &input);
    let p = r.unwrap();
    assert!(p.peer_closed);
    assert_eq!(app, b"bye then\n");
    let f = frames(&out);
    assert_eq!((f[0].0, close_code(&f[0].1)), (0x8, 1000));
    assert!(c.is_finished());
    // Closing afterwards sends nothing more.
    let mut more = Vec::new();
    c.close(&mut more);
    assert!(more.is_empty());
}

#[test]
fn close_in_the_middle_of_a_message() {
    let mut c = open();
    let mut input = frame(false, 0x1, true, b"half a mess");
    input.extend(frame(true, 0x8, true, &1001u16.to_be_bytes()));
    let (r, app, out) = feed(&mut c, &input);
    assert!(r.unwrap().peer_closed);
    assert!(app.is_empty(), "the half message is not a line");
    assert_eq!(close_code(&frames(&out)[0].1), 1001);
}

#[test]
fn our_close_then_the_peers_reply() {
    let mut c = open();
    let mut out = Vec::new();
    c.on_app_output(b"* bye\n", &mut out).unwrap();
    c.close(&mut out);
    let f = frames(&out);
    assert_eq!(f[0], (1, b"* bye".to_vec()));
    assert_eq!((f[1].0, close_code(&f[1].1)), (0x8, 1000));
    assert!(matches!(
        c.on_app_output(b"late\n", &mut out),
        Err(LayerError::Closed)
    ));
    assert!(!c.is_finished(), "waiting for the reply");
    let (r, app, _) = feed(
        &mut c,
        &[
            text("crossed"),
            frame(true, 8, true, &1000u16.to_be_bytes()),
        ]
        .concat(),
    );
    assert!(r.unwrap().peer_closed);
    assert!(app.is_empty());
    assert!(c.is_finished());
}

#[test]
fn transport_eof_is_eof() {
    let mut c = open();
    let (mut app, mut out) = (Vec::new(), Vec::new());
    assert!(c.on_wire_eof(&mut app, &mut out).unwrap().peer_closed);
    assert!(c.is_finished());
    let mut h = WebServer::new(site());
    assert!(h.on_wire_eof(&mut app, &mut out).unwrap().peer_closed);
    assert!(h.is_finished());
}

#[test]
fn nothing_goes_out_before_the_upgrade() {
    let mut c = WebServer::new(site());
    let mut out = Vec::new();
    assert_eq!(c.on_app_output(b"early\n", &mut out).unwrap(), 0);
    assert!(out.is_empty());
}

#[cfg(feature = "tls")]
#[test]
fn wss_is_tls_under_websocket() {
    use crate::layer::Stack;
    use crate::tls::{client_config_trusting_pem, server_config_from_pem, TlsSession};

    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert, key) = (ck.cert.pem(), ck.signing_key.serialize_pem());
    let server = server_config_from_pem(cert.as_bytes(), key.as_bytes()).unwrap();
    let client = client_config_trusting_pem(cert.as_bytes()).unwrap();
    let wss_site = Site::new().websocket("/ws").secure(true).into_shared();

    let mut s = Stack::new(
        TlsSession::server(server).unwrap(),
        WebServer::new(wss_site),
    );
    let mut c = TlsSession::client(client, "localhost").unwrap();
    let (mut to_s, mut to_c) = (Vec::new(), Vec::new());
    let (mut s_app, mut c_app) = (Vec::new(), Vec::new());
    c.start(&mut to_s).unwrap();
    s.start(&mut to_c).unwrap();
    let req = upgrade(Some("https://127.0.0.1:8080"));
    let mut queued = false;
    let mut upgraded = false;
    for _ in 0..20 {
        let p = s
            .on_wire_input(&std::mem::take(&mut to_s), &mut s_app, &mut to_c)
            .unwrap();
        upgraded |= p.handshake_done;
        c.on_wire_input(&std::mem::take(&mut to_c), &mut c_app, &mut to_s)
            .unwrap();
        if !c.handshaking() && !queued {
            queued = true;
            c.on_app_output(req.as_bytes(), &mut to_s).unwrap();
            c.on_app_output(&text("over tls"), &mut to_s).unwrap();
        }
    }
    assert!(
        upgraded,
        "the stack reports its handshake once both are done"
    );
    assert!(!s.handshaking());
    assert_eq!(s_app, b"over tls\n");
    assert!(String::from_utf8_lossy(&c_app).starts_with("HTTP/1.1 101"));

    // A line out of the stack reaches the client as one frame inside TLS.
    c_app.clear();
    s.on_app_output(b"* hello\n", &mut to_c).unwrap();
    s.close(&mut to_c);
    c.on_wire_input(&std::mem::take(&mut to_c), &mut c_app, &mut to_s)
        .unwrap();
    let f = frames(&c_app);
    assert_eq!(f[0], (1, b"* hello".to_vec()));
    assert_eq!((f[1].0, close_code(&f[1].1)), (8, 1000));
    assert!(c.peer_closed(), "then close_notify");
}

mod fuzz {
    //! Arbitrary bytes, in arbitrary pieces, never panic the layer, and
    //! what it keeps stays bounded.
    use super::*;
    use proptest::prelude::*;

    fn pieces() -> impl Strategy<Value = Vec<Vec<u8>>> {
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..20)
    }

    proptest! {
        #[test]
        fn http_phase_survives_anything(chunks in pieces()) {
            let mut c = WebServer::new(site());
            let (mut app, mut out) = (Vec::new(), Vec::new());
            for chunk in chunks {
                if c.on_wire_input(&chunk, &mut app, &mut out).is_err() || c.is_finished() {
                    break;
                }
            }
            prop_assert!(app.is_empty() || c.is_websocket());
        }

        #[test]
        fn websocket_phase_survives_anything(chunks in pieces()) {
            let mut c = open();
            let (mut app, mut out) = (Vec::new(), Vec::new());
            let mut fed = 0;
            for chunk in chunks {
                fed += chunk.len();
                if c.on_wire_input(&chunk, &mut app, &mut out).is_err() || c.is_finished() {
                    break;
                }
                let _ = c.on_app_output(&chunk, &mut out);
            }
            // Lines out are at most what came in, plus a newline per message.
            prop_assert!(app.len() <= fed + fed / 2 + 1);
        }

        #[test]
        fn masked_text_frames_in_any_split_are_lines(
            texts in prop::collection::vec("[a-z ]{0,40}", 1..8),
            split in 1usize..50,
        ) {
            let mut c = open();
            let bytes: Vec<u8> = texts.iter().flat_map(|t| text(t)).collect();
            let (mut app, mut out) = (Vec::new(), Vec::new());
            for piece in bytes.chunks(split) {
                c.on_wire_input(piece, &mut app, &mut out).unwrap();
            }
            let want: String = texts.iter().map(|t| format!("{t}\n")).collect();
            prop_assert_eq!(String::from_utf8(app).unwrap(), want);
        }
    }
}

/// A broadcast frames a payload once for every plain WebSocket recipient
/// (`Layer::encode_shared`): the bytes must be those `on_app_output` would
/// have written on each of them, for every kind of line, and a session
/// mid-line or closing must not offer the shared encoding.
#[test]
fn shared_frames_are_the_ones_each_session_would_write() {
    let long = "y".repeat(70_000); // a 64-bit length field
    let payloads: Vec<Vec<u8>> = vec![
        b"<bob> hi\n".to_vec(),
        b"one\n\ntwo\n".to_vec(),
        format!("<al> {long}\n").into_bytes(),
        b"broken \xff\xfe utf-8\n".to_vec(),
        "ümlaut ✓\n".as_bytes().to_vec(),
    ];
    for app in &payloads {
        let mut server = open();
        assert_eq!(
            server.shared_encoding(),
            Some(SharedEncoding::WebSocketText)
        );
        let mut shared = Vec::new();
        server.encode_shared(app, &mut shared).unwrap();
        let mut own = Vec::new();
        assert_eq!(server.on_app_output(app, &mut own).unwrap(), app.len());
        assert_eq!(
            shared,
            own,
            "{:?}",
            String::from_utf8_lossy(&app[..app.len().min(20)])
        );
    }
    // Mid-line: the next line begins with what the session holds.
    let mut server = open();
    server.on_app_output(b"half", &mut Vec::new()).unwrap();
    assert_eq!(server.shared_encoding(), None);
    // Closing: nothing more goes out.
    let mut server = open();
    server.close(&mut Vec::new());
    assert_eq!(server.shared_encoding(), None);
    assert!(server.encode_shared(b"x\n", &mut Vec::new()).is_err());
    // Before the upgrade there is no WebSocket to frame for.
    let fresh = WebServer::new(site());
    assert_eq!(fresh.shared_encoding(), None);
}
