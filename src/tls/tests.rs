//! TLS sessions over in-memory byte pipes: a client and a server session
//! handing each other what they wrote, no sockets.

use std::path::Path;
use std::sync::Arc;

use super::*;

struct Pki {
    cert_pem: String,
    key_pem: String,
}

fn pki(name: &str) -> Pki {
    let ck = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
    Pki {
        cert_pem: ck.cert.pem(),
        key_pem: ck.signing_key.serialize_pem(),
    }
}

fn pair(p: &Pki) -> (TlsSession, TlsSession) {
    let server = server_config_from_pem(p.cert_pem.as_bytes(), p.key_pem.as_bytes()).unwrap();
    let client = client_config_trusting_pem(p.cert_pem.as_bytes()).unwrap();
    (
        TlsSession::client(client, "localhost").unwrap(),
        TlsSession::server(server).unwrap(),
    )
}

/// Both ends of a connection and what each has received.
struct Wire {
    c: TlsSession,
    s: TlsSession,
    to_s: Vec<u8>,
    to_c: Vec<u8>,
    c_got: Vec<u8>,
    s_got: Vec<u8>,
    c_closed: bool,
    s_closed: bool,
}

impl Wire {
    fn new(p: &Pki) -> Wire {
        let (mut c, s) = pair(p);
        let mut to_s = Vec::new();
        c.start(&mut to_s).unwrap();
        Wire {
            c,
            s,
            to_s,
            to_c: Vec::new(),
            c_got: Vec::new(),
            s_got: Vec::new(),
            c_closed: false,
            s_closed: false,
        }
    }

    /// Deliver bytes both ways in chunks of `chunk` until nothing moves.
    fn pump(&mut self, chunk: usize) -> Result<(), LayerError> {
        for _ in 0..100_000 {
            if self.to_s.is_empty() && self.to_c.is_empty() {
                return Ok(());
            }
            let n = self.to_s.len().min(chunk);
            let bytes: Vec<u8> = self.to_s.drain(..n).collect();
            let p = self
                .s
                .on_wire_input(&bytes, &mut self.s_got, &mut self.to_c)?;
            self.s_closed |= p.peer_closed;
            let n = self.to_c.len().min(chunk);
            let bytes: Vec<u8> = self.to_c.drain(..n).collect();
            let p = self
                .c
                .on_wire_input(&bytes, &mut self.c_got, &mut self.to_s)?;
            self.c_closed |= p.peer_closed;
        }
        panic!("pump did not settle");
    }
}

#[test]
fn handshake_then_both_ways() {
    let p = pki("localhost");
    let mut w = Wire::new(&p);
    assert!(w.c.handshaking() && w.s.handshaking());
    assert!(!w.to_s.is_empty(), "the client speaks first");
    w.pump(usize::MAX).unwrap();
    assert!(!w.c.handshaking() && !w.s.handshaking());
    assert_eq!(
        w.s.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );

    assert_eq!(w.c.on_app_output(b"hello\n", &mut w.to_s).unwrap(), 6);
    assert_eq!(w.s.on_app_output(b"hi there\n", &mut w.to_c).unwrap(), 9);
    w.pump(usize::MAX).unwrap();
    assert_eq!(w.s_got, b"hello\n");
    assert_eq!(w.c_got, b"hi there\n");
}

#[test]
fn one_mib_byte_exact_in_odd_chunks() {
    let p = pki("localhost");
    let mut w = Wire::new(&p);
    let data: Vec<u8> = (0..1 << 20).map(|i: u32| (i * 7 + i / 251) as u8).collect();
    // Queued before the handshake: some is held, the rest offered later.
    let mut sent = w.c.on_app_output(&data, &mut w.to_s).unwrap();
    assert!(sent <= PRE_HANDSHAKE_LIMIT, "held {sent} before handshake");
    let mut rounds = 0;
    while sent < data.len() || !w.to_s.is_empty() || !w.to_c.is_empty() {
        w.pump(1399).unwrap();
        sent += w.c.on_app_output(&data[sent..], &mut w.to_s).unwrap();
        rounds += 1;
        assert!(rounds < 10, "stuck at {sent}");
    }
    assert_eq!(w.s_got.len(), data.len());
    assert!(w.s_got == data, "server received the bytes unchanged");
}

#[test]
fn close_notify_is_eof_and_half_close_still_delivers() {
    let p = pki("localhost");
    let mut w = Wire::new(&p);
    w.pump(usize::MAX).unwrap();
    w.c.on_app_output(b"last words\n", &mut w.to_s).unwrap();
    w.c.close(&mut w.to_s);
    w.pump(usize::MAX).unwrap();
    assert_eq!(w.s_got, b"last words\n");
    assert!(
        w.s_closed && w.s.peer_closed(),
        "close_notify reached the server"
    );
    assert!(!w.s.is_finished(), "the server may still answer");
    assert!(matches!(
        w.c.on_app_output(b"more", &mut w.to_s),
        Err(LayerError::Closed)
    ));

    // The server answers after the client's close_notify, then closes.
    w.s.on_app_output(b"reply\n", &mut w.to_c).unwrap();
    w.s.close(&mut w.to_c);
    w.pump(usize::MAX).unwrap();
    assert_eq!(w.c_got, b"reply\n");
    assert!(w.c_closed);
    assert!(w.c.is_finished() && w.s.is_finished());
}

#[test]
fn tcp_eof_without_close_notify_is_eof() {
    let p = pki("localhost");
    let mut w = Wire::new(&p);
    w.pump(usize::MAX).unwrap();
    let (mut a, mut o) = (Vec::new(), Vec::new());
    let pr = w.s.on_wire_eof(&mut a, &mut o).unwrap();
    assert!(pr.peer_closed);
    // Reported once.
    assert!(!w.s.on_wire_eof(&mut a, &mut o).unwrap().peer_closed);
}

#[test]
fn plaintext_on_a_tls_port_fails_with_an_alert() {
    let p = pki("localhost");
    let (_, mut s) = pair(&p);
    let (mut app, mut out) = (Vec::new(), Vec::new());
    let e = s
        .on_wire_input(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", &mut app, &mut out)
        .unwrap_err();
    assert!(matches!(e, LayerError::Tls(_)), "{e}");
    assert!(app.is_empty());
    assert!(s.is_finished());
    assert!(matches!(
        s.on_wire_input(b"more", &mut app, &mut out),
        Err(LayerError::Closed)
    ));
}

#[test]
fn a_client_that_trusts_another_ca_refuses_the_server() {
    let server_pki = pki("localhost");
    let other = pki("localhost");
    let server = server_config_from_pem(
        server_pki.cert_pem.as_bytes(),
        server_pki.key_pem.as_bytes(),
    )
    .unwrap();
    let client = client_config_trusting_pem(other.cert_pem.as_bytes()).unwrap();
    let mut w = Wire {
        c: TlsSession::client(client, "localhost").unwrap(),
        s: TlsSession::server(server).unwrap(),
        to_s: Vec::new(),
        to_c: Vec::new(),
        c_got: Vec::new(),
        s_got: Vec::new(),
        c_closed: false,
        s_closed: false,
    };
    w.c.start(&mut w.to_s).unwrap();
    let e = w.pump(usize::MAX).unwrap_err();
    assert!(e.to_string().contains("certificate"), "{e}");
}

#[test]
fn wrong_server_name_is_refused() {
    let p = pki("localhost");
    let server = server_config_from_pem(p.cert_pem.as_bytes(), p.key_pem.as_bytes()).unwrap();
    let client = client_config_trusting_pem(p.cert_pem.as_bytes()).unwrap();
    let mut c = TlsSession::client(client.clone(), "example.org").unwrap();
    let mut s = TlsSession::server(server).unwrap();
    let (mut to_s, mut to_c, mut junk) = (Vec::new(), Vec::new(), Vec::new());
    c.start(&mut to_s).unwrap();
    s.on_wire_input(&to_s, &mut junk, &mut to_c).unwrap();
    assert!(c.on_wire_input(&to_c, &mut junk, &mut to_s).is_err());
    assert!(matches!(
        TlsSession::client(client, "not a name!"),
        Err(TlsConfigError::ServerName(_))
    ));
}

#[test]
fn garbage_mid_stream_fails_the_session() {
    let p = pki("localhost");
    let mut w = Wire::new(&p);
    w.pump(usize::MAX).unwrap();
    let (mut app, mut out) = (Vec::new(), Vec::new());
    // A well-formed header announcing application data, then nonsense.
    let mut junk = vec![0x17, 0x03, 0x03, 0x00, 0x20];
    junk.extend([0xAA; 0x20]);
    assert!(matches!(
        w.s.on_wire_input(&junk, &mut app, &mut out),
        Err(LayerError::Tls(_))
    ));
    assert!(!out.is_empty(), "an alert tells the peer why");
}

// ---- configs from files ----

fn tmp(name: &str, contents: &[u8]) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mio-selectors-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

#[test]
fn config_from_files_and_errors_that_name_the_file() {
    let p = pki("localhost");
    let other = pki("localhost");
    let cert = tmp("cert.pem", p.cert_pem.as_bytes());
    let key = tmp("key.pem", p.key_pem.as_bytes());
    let other_key = tmp("other-key.pem", other.key_pem.as_bytes());
    let junk = tmp("junk.pem", b"this is not PEM at all\n");
    let broken = tmp(
        "broken.pem",
        b"-----BEGIN CERTIFICATE-----\nnot base64 !!!\n-----END CERTIFICATE-----\n",
    );
    server_config(&cert, &key).unwrap();
    client_config_trusting(&cert).unwrap();

    let missing = Path::new("/nonexistent/cert.pem");
    let e = server_config(missing, &key).unwrap_err();
    assert!(matches!(e, TlsConfigError::Read { .. }));
    assert!(e.to_string().contains("/nonexistent/cert.pem"), "{e}");

    let e = server_config(&junk, &key).unwrap_err();
    assert!(matches!(e, TlsConfigError::NotPem { .. }), "{e}");
    assert!(e.to_string().contains("junk.pem"), "{e}");

    let e = server_config(&broken, &key).unwrap_err();
    assert!(matches!(e, TlsConfigError::NotPem { .. }), "{e}");
    assert!(e.to_string().contains("broken.pem"), "{e}");

    let e = server_config(&cert, &cert).unwrap_err();
    assert!(matches!(e, TlsConfigError::NoKey { .. }), "{e}");
    assert!(e.to_string().contains("cert.pem"), "{e}");

    let e = server_config(&key, &key).unwrap_err();
    assert!(matches!(e, TlsConfigError::NoCertificate { .. }), "{e}");

    let e = server_config(&cert, &other_key).unwrap_err();
    assert!(matches!(e, TlsConfigError::KeyMismatch { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("other-key.pem") && msg.contains("cert.pem"),
        "{msg}"
    );
    let _ = std::fs::remove_dir_all(cert.parent().unwrap());
}

#[test]
fn sessions_share_one_config() {
    let p = pki("localhost");
    let server = server_config_from_pem(p.cert_pem.as_bytes(), p.key_pem.as_bytes()).unwrap();
    let before = Arc::strong_count(&server);
    let sessions: Vec<_> = (0..3)
        .map(|_| TlsSession::server(server.clone()).unwrap())
        .collect();
    assert_eq!(Arc::strong_count(&server), before + 3);
    drop(sessions);
}

mod fuzz {
    //! Arbitrary bytes never panic a TLS server session.
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn server_survives_anything(
            chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..400), 0..10)
        ) {
            let p = pki("localhost");
            let server = server_config_from_pem(p.cert_pem.as_bytes(), p.key_pem.as_bytes()).unwrap();
            let mut s = TlsSession::server(server).unwrap();
            let (mut app, mut out) = (Vec::new(), Vec::new());
            for chunk in chunks {
                if s.on_wire_input(&chunk, &mut app, &mut out).is_err() {
                    break;
                }
            }
            prop_assert!(app.is_empty(), "no plaintext without a handshake");
        }
    }
}
