//! Limits and what happens at them: `max_inb` (`InputOverflow`), huge
//! lengths, total and per-address connection limits.

mod util;

use util::fault;

use fault::{figures, STEP};
use mio_selectors::codec::{for_each_frame, Decoder, Encoder, LengthPrefixedCodec, LineCodec};
use mio_selectors::{CloseReason, Config, ConnId, Context, Handler, InBuf, PeerAddr};
use std::io;
use std::net::TcpStream;
use std::ops::ControlFlow;
use std::sync::mpsc;
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};
use util::chat::LineClient;
#[allow(unused_imports)]
use util::guard::*;
#[allow(unused_imports)]
use util::regress::*;
#[allow(unused_imports)]
use util::stress_helpers::*;
use util::{connect, expect_reset, read_exact_deadline, write_all_deadline, Opts, Reason};

/// Regression: `usize::MAX` line lengths overflowed.
/// `usize::MAX` as a line length means "no limit", not an overflow.
#[test]
fn line_lengths_of_usize_max_do_not_overflow() {
    let mut codec = LineCodec::new(usize::MAX);
    assert_eq!(codec.decode(b"hello"), (0, None));
    assert_eq!(codec.decode(b"hello\n"), (6, Some(Ok(&b"hello"[..]))));
}

/// A handler that never consumes its input.
struct Hoard {
    lost: Sender<Reason>,
}

impl Handler for Hoard {
    type Data = ();

    fn accept_wrapper(&mut self, _: &mut Context<'_, ()>, _: ConnId, _: &PeerAddr) -> Option<()> {
        Some(())
    }

    fn service_connection(
        &mut self,
        _: &mut Context<'_, ()>,
        _: ConnId,
        _: &mut (),
        _: &mut InBuf,
    ) {
        // never consumes
    }

    fn connection_lost(&mut self, _: &mut Context<'_, ()>, _: ConnId, _: (), r: &CloseReason) {
        let _ = self.lost.send(r.into());
    }
}

/// Echoes length-prefixed frames and, unwisely, carries on after a
/// decoding error: its decoder then consumes nothing more.
struct Frames {
    max_len: usize,
    lost: Sender<Reason>,
}

impl Handler for Frames {
    type Data = LengthPrefixedCodec;

    fn accept_wrapper(
        &mut self,
        _: &mut Context<'_, LengthPrefixedCodec>,
        _: ConnId,
        _: &PeerAddr,
    ) -> Option<LengthPrefixedCodec> {
        Some(LengthPrefixedCodec::new(self.max_len))
    }

    fn service_connection(
        &mut self,
        cx: &mut Context<'_, LengthPrefixedCodec>,
        id: ConnId,
        dec: &mut LengthPrefixedCodec,
        inb: &mut InBuf,
    ) {
        let enc = dec.clone();
        for_each_frame(dec, inb, |frame| {
            if let Ok(payload) = frame {
                let mut out = Vec::new();
                enc.encode(payload, &mut out).expect("encode");
                let _ = cx.send(id, &out);
            }
            ControlFlow::Continue(()) // the error is ignored on purpose
        });
    }

    fn connection_lost(
        &mut self,
        _: &mut Context<'_, LengthPrefixedCodec>,
        _: ConnId,
        _: LengthPrefixedCodec,
        r: &CloseReason,
    ) {
        let _ = self.lost.send(r.into());
    }
}

/// Small input buffers, so that a few KiB fill them.
fn small_inb() -> Config {
    Config {
        max_inb: 4096,
        read_chunk: 1024,
        ..Config::default()
    }
}

/// Sends `input` (more than `max_inb`), then expects the server to close
/// the connection with `InputOverflow` and the client to see a reset (its
/// bytes were dropped: a clean close would say they were taken).
fn overflows(server: fault::Running, lost: mpsc::Receiver<Reason>, c: &TcpStream, input: &[u8]) {
    write_all_deadline(c, input, soon()).expect("write");
    let reason = lost
        .recv_timeout(STEP)
        .expect("connection_lost within STEP");
    assert_eq!(reason, Reason::InputOverflow);
    expect_reset(c, soon()).expect("the client is told with a reset");
    server.stop().expect("the reactor");
}

/// Regression: issue 15 audit: no test asserted `CloseReason::InputOverflow`.
#[test]
fn a_handler_that_never_consumes_is_closed_with_input_overflow() {
    let (tx, lost) = mpsc::channel();
    let server = fault::run_server(Hoard { lost: tx }, small_inb(), "127.0.0.1:0");
    let c = connect(server.addr);
    overflows(server, lost, &c, &[b'x'; 16 * 1024]);
}

/// A header announcing more than the maximum fails the decoder, which
/// then consumes nothing; a handler that ignores the error gets the
/// connection closed for it once `max_inb` fills.
#[test]
fn a_failed_decoder_that_is_ignored_ends_in_input_overflow() {
    let (tx, lost) = mpsc::channel();
    let frames = Frames {
        max_len: 64,
        lost: tx,
    };
    let server = fault::run_server(frames, small_inb(), "127.0.0.1:0");
    let c = connect(server.addr);
    // A good frame first: the handler works.
    let mut frame = Vec::new();
    LengthPrefixedCodec::new(64)
        .encode(b"hello", &mut frame)
        .unwrap();
    write_all_deadline(&c, &frame, soon()).unwrap();
    let mut back = vec![0; frame.len()];
    read_exact_deadline(&c, &mut back, soon()).expect("echo of a good frame");
    assert_eq!(back, frame);
    let mut bad = 1000u32.to_be_bytes().to_vec(); // > max_len 64
    bad.extend_from_slice(&[b'y'; 12 * 1024]);
    overflows(server, lost, &c, &bad);
}

/// A frame bigger than `max_inb` (the codec allows 64 KiB, the reactor
/// holds 4 KiB) can never arrive whole: the decoder waits, nothing is
/// consumed, and the reactor closes the connection instead of waiting forever.
#[test]
fn a_frame_that_cannot_fit_in_max_inb_ends_in_input_overflow() {
    let (tx, lost) = mpsc::channel();
    let frames = Frames {
        max_len: 64 * 1024,
        lost: tx,
    };
    let server = fault::run_server(frames, small_inb(), "127.0.0.1:0");
    let c = connect(server.addr);
    let mut big = 10_000u32.to_be_bytes().to_vec();
    big.extend_from_slice(&[b'z'; 10_000]);
    overflows(server, lost, &c, &big);
}

/// A client the server refused: it is closed without a byte of answer.
fn expect_refused(s: &TcpStream, what: &str) {
    let _ = util::write_all_deadline(s, b"anyone?\n", Instant::now() + STEP);
    match util::read_to_eof_deadline(s, 0, Instant::now() + STEP) {
        Ok(got) => assert!(got.is_empty(), "{what}: answered"),
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("{what}: not closed: {e}"),
    }
}

#[test]
fn echo_limits_total_and_per_address_refuse_only_the_newcomers() {
    run(Duration::from_secs(120), || {
        let _fds = util::fds_shared();
        let config = Config {
            max_connections: 10,
            max_per_ip: Some(3),
            ..Config::default()
        };
        let (max_connections, max_per_ip) = (config.max_connections, config.max_per_ip);
        let mut server = util::Server::start("127.0.0.1:0", config, Opts::default()).unwrap();
        let addr = server.addr;
        let from = |ip: &str| fault::connect_from(addr, ip).expect("connect from 127/8");
        let mut refused = 0;
        let mut ok: Vec<TcpStream> = (0..3).map(|_| from("127.0.0.2")).collect();
        for s in &ok {
            roundtrip(s, b"hi\n").unwrap();
        }
        // A fourth from 127.0.0.2: refused; the three go on.
        expect_refused(&from("127.0.0.2"), "4th from 127.0.0.2");
        refused += 1;
        for ip in ["127.0.0.3", "127.0.0.4"] {
            for _ in 0..3 {
                let s = from(ip);
                roundtrip(&s, b"hi\n").unwrap();
                ok.push(s);
            }
        }
        let tenth = from("127.0.0.5");
        roundtrip(&tenth, b"tenth\n").unwrap();
        ok.push(tenth);
        // An eleventh, from a fresh address: over the total.
        expect_refused(&from("127.0.0.6"), "11th connection");
        refused += 1;
        for s in &ok {
            roundtrip(s, b"unaffected\n").expect("an accepted client");
        }
        // A place freed is a place again, for its address too.
        drop(ok.remove(0));
        server.wait_until(STEP, "a place freed", |s| s.live == 9);
        let again = from("127.0.0.2");
        roundtrip(&again, b"back\n").unwrap();
        ok.push(again);
        expect_refused(&from("127.0.0.7"), "11th again");
        refused += 1;
        drop(ok);
        server.wait_until(STEP, "all closed", |s| s.live == 0);
        server.stop_and_join(STEP);
        let (accepted, max_live) = {
            let s = server.stats();
            (s.accepted.len(), s.max_live)
        };
        figures(
            "limits_echo",
            &[
                ("max_connections", max_connections.to_string()),
                ("max_per_ip", format!("{}", max_per_ip.unwrap_or(0))),
                ("accepted", accepted.to_string()),
                ("max_live", max_live.to_string()),
                ("refused", refused.to_string()),
            ],
        );
        // 10 at first, one more after a place freed; no refused one reached the handler.
        assert_eq!(accepted, 11, "refused clients reached the handler");
        assert_eq!(max_live, 10);
    });
}

#[test]
fn chatroom_binary_limits_total_and_per_address_refuse_only_the_newcomers() {
    run(Duration::from_secs(180), || {
        let _fds = util::fds_shared();
        let mut cmd = fault::example("chatroom");
        cmd.args(["127.0.0.1", "0", "--max-clients", "4", "--max-per-ip", "2"]);
        let mut child = fault::Child::spawn(cmd);
        let addr = child.listening();
        let join_from = |ip: &str| {
            let mut c = LineClient::connect_from(addr, ip).expect("connect from 127/8");
            let welcome = c.line();
            assert!(welcome.starts_with("* welcome"), "{welcome}");
            c
        };
        let mut a = join_from("127.0.0.2");
        let b = join_from("127.0.0.2");
        a.expect(&format!("* {} joined", b.name));
        // Third from 127.0.0.2: closed by the reactor, silently.
        let mut c = LineClient::connect_from(addr, "127.0.0.2").unwrap();
        assert!(
            c.until_eof().is_empty(),
            "the per-address refusal said something"
        );
        let mut refused_per_ip = 1;
        let c2 = join_from("127.0.0.3");
        a.expect(&format!("* {} joined", c2.name));
        let d = join_from("127.0.0.3");
        a.expect(&format!("* {} joined", d.name));
        // Fifth in all, from a fresh address: the server is full.
        let mut e = LineClient::connect_from(addr, "127.0.0.4").unwrap();
        e.expect("* error: server full");
        assert!(e.until_eof().is_empty());
        let mut refused_full = 1;
        // A sixth, from an address with room: full still wins.
        let mut f = LineClient::connect_from(addr, "127.0.0.5").unwrap();
        f.expect("* error: server full");
        assert!(f.until_eof().is_empty());
        refused_full += 1;
        // And a third from 127.0.0.3, the address at its limit: refused either way.
        let mut g = LineClient::connect_from(addr, "127.0.0.3").unwrap();
        let (said, _) = g.until_end();
        assert!(
            said.is_empty() || said == b"* error: server full\n",
            "{said:?}"
        );
        refused_per_ip += usize::from(said.is_empty());
        refused_full += usize::from(!said.is_empty());
        // The others heard of neither refusal: A's next line answers its /who.
        a.send("/who\n");
        let who = a.line();
        assert!(who.starts_with("* online: "), "A heard {who:?}");
        for n in [&a.name, &b.name, &c2.name, &d.name] {
            assert!(who.contains(n.as_str()), "{who} lacks {n}");
        }
        assert_eq!(who.matches(", ").count(), 3, "{who}");
        drop(c);
        child.signal("TERM");
        assert!(child.wait(STEP).success());
        figures(
            "limits_chat",
            &[
                ("max_clients", "4".into()),
                ("max_per_ip", "2".into()),
                ("refused_per_ip", refused_per_ip.to_string()),
                ("refused_full", refused_full.to_string()),
            ],
        );
    });
}
