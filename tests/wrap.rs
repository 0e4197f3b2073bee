//! The reactor's wrapped connections in-process: a TLS listener and an
//! outgoing TLS connection in one reactor (`Reactor::wrap_listener`,
//! `Reactor::connect_wrapped`), the handler seeing plaintext only and
//! hearing of a connection only once its handshake is done.
//!
//! Certificates are made by rcgen at test time. A timer stops each run
//! after a deadline, so a broken handshake fails the test, never hangs it.

#![cfg(feature = "tls")]

use std::time::Duration;

use mio_selectors::reactor::Wrap;
use mio_selectors::tls::{client_config_trusting_pem, server_config_from_pem};
use mio_selectors::{CloseReason, Config, ConnId, Context, Handler, InBuf, PeerAddr, Reactor};

const DEADLINE: Duration = Duration::from_secs(20);
const DEADLINE_TAG: u64 = 1;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Side {
    Server,
    Client,
}

/// Echoes on the server side; the client side sends `payload` once
/// connected (after its handshake) and stops the loop when it is back.
#[derive(Default)]
struct App {
    payload: Vec<u8>,
    got: Vec<u8>,
    accepted: usize,
    made: usize,
    lost: Vec<(Side, String)>,
    failed: Vec<(Side, String)>,
    timed_out: bool,
}

impl Handler for App {
    type Data = Side;

    fn accept_wrapper(
        &mut self,
        _: &mut Context<'_, Side>,
        _: ConnId,
        _: &PeerAddr,
    ) -> Option<Side> {
        self.accepted += 1;
        Some(Side::Server)
    }

    fn connection_made(&mut self, cx: &mut Context<'_, Side>, id: ConnId, side: &mut Side) {
        if *side == Side::Client {
            self.made += 1;
            cx.send(id, &self.payload).unwrap();
        }
    }

    fn service_connection(
        &mut self,
        cx: &mut Context<'_, Side>,
        id: ConnId,
        side: &mut Side,
        inb: &mut InBuf,
    ) {
        match side {
            Side::Server => {
                let _ = cx.send_from(id, inb);
            }
            Side::Client => {
                self.got.extend_from_slice(inb);
                inb.clear();
                if self.got.len() >= self.payload.len() {
                    cx.close(id);
                    cx.stop();
                }
            }
        }
    }

    fn connection_lost(
        &mut self,
        _: &mut Context<'_, Side>,
        _: ConnId,
        side: Side,
        why: &CloseReason,
    ) {
        self.lost.push((side, why.to_string()));
    }

    fn connect_failed(
        &mut self,
        cx: &mut Context<'_, Side>,
        _: ConnId,
        side: Side,
        why: &CloseReason,
    ) {
        self.failed.push((side, why.to_string()));
        cx.stop(); // a client whose handshake failed ends the run
    }

    fn on_timer(&mut self, cx: &mut Context<'_, Side>, _: Option<(ConnId, &mut Side)>, tag: u64) {
        if tag == DEADLINE_TAG {
            self.timed_out = true;
            cx.stop();
        }
    }
}

fn pem() -> (String, String) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    (ck.cert.pem(), ck.signing_key.serialize_pem())
}

#[test]
fn tls_listener_and_tls_client_in_one_reactor_one_mib_byte_exact() {
    let (cert, key) = pem();
    let server = server_config_from_pem(cert.as_bytes(), key.as_bytes()).unwrap();
    let client = client_config_trusting_pem(cert.as_bytes()).unwrap();
    let payload: Vec<u8> = (0..1u32 << 20).map(|i| (i % 251) as u8).collect();
    let app = App {
        payload: payload.clone(),
        ..App::default()
    };
    // The 1 MiB goes out in one send: room for it and its TLS overhead.
    let config = Config {
        max_outb: 4 << 20,
        ..Config::default()
    };
    let mut reactor = Reactor::new(app, config).unwrap();
    let listener = reactor.listen("127.0.0.1:0").unwrap();
    reactor.wrap_listener(listener, Wrap::tls(server)).unwrap();
    let addr = reactor.local_addr(listener).unwrap();
    let wrap = Wrap::tls_client(client, "localhost").unwrap();
    reactor.connect_wrapped(addr, Side::Client, &wrap).unwrap();
    reactor.with_context(|cx| cx.call_later(DEADLINE, None, DEADLINE_TAG));
    reactor.run().unwrap();

    let app = reactor.handler();
    assert!(
        !app.timed_out,
        "no echo within {DEADLINE:?}: lost {:?}",
        app.lost
    );
    assert_eq!((app.accepted, app.made), (1, 1));
    assert_eq!(app.got.len(), payload.len());
    assert!(app.got == payload, "plaintext back unchanged");
}

#[test]
fn a_failed_handshake_never_reaches_the_handler() {
    let (cert, key) = pem();
    let (other, _) = pem();
    let server = server_config_from_pem(cert.as_bytes(), key.as_bytes()).unwrap();
    // The client trusts another CA: the handshake fails on both sides.
    let client = client_config_trusting_pem(other.as_bytes()).unwrap();
    let app = App {
        payload: b"never\n".to_vec(),
        ..App::default()
    };
    let mut reactor = Reactor::new(app, Config::default()).unwrap();
    let listener = reactor.listen("127.0.0.1:0").unwrap();
    reactor.wrap_listener(listener, Wrap::tls(server)).unwrap();
    let addr = reactor.local_addr(listener).unwrap();
    let wrap = Wrap::tls_client(client, "localhost").unwrap();
    reactor.connect_wrapped(addr, Side::Client, &wrap).unwrap();
    reactor.with_context(|cx| cx.call_later(DEADLINE, None, DEADLINE_TAG));
    reactor.run().unwrap(); // stops when the client connection is lost
    let app = reactor.handler();
    assert!(!app.timed_out, "the failed handshake was not noticed");
    assert_eq!(
        app.accepted, 0,
        "the server side never reached accept_wrapper"
    );
    assert_eq!(app.made, 0, "the client side never reached connection_made");
    // It never became a connection: its data comes back through connect_failed.
    assert!(app.lost.is_empty(), "{:?}", app.lost);
    assert_eq!(app.failed.len(), 1, "{:?}", app.failed);
    assert_eq!(app.failed[0].0, Side::Client);
    assert!(app.failed[0].1.contains("certificate"), "{:?}", app.failed);
}
