//! Guarantees a mutation audit found unguarded (issue 15), each with a
//! test that fails on the one-line bug every time, not by chance:
//!
//! - an echo costs one `read` and one `write` per message (a short read
//!   proves the socket drained): counted with `strace` on the example;
//! - input that fills `max_inb` and is never consumed closes the
//!   connection with `CloseReason::InputOverflow` (a handler that never
//!   consumes, a decoder that fails or waits for a frame too big to fit,
//!   chat's `(flood)` notice), and the peer is told with a reset;
//! - a connection whose read budget ran out is read again without a new
//!   event (a burst bigger than the budget, then silence, no FIN);
//! - a closed connection's id never reaches the connection that reuses
//!   its slot.
//!
//! `docs/reliability.md` lists each mutant and the test here that kills it
//! (`scripts/mutants.sh` replays them).

// The chat application's own modules, for its flood notice; the test uses
// only part of them (the --redis hooks stay unused here).
#[allow(dead_code)]
#[path = "../examples/chatroom/chat/mod.rs"]
mod chat;
mod fault;
mod util;

use std::net::{Shutdown, SocketAddr, TcpStream};
use std::ops::ControlFlow;
use std::process::Command;
use std::sync::mpsc::{self, Sender};
use std::time::{Duration, Instant};

use chat::{ChatConfig, ChatServer};
use mio_selectors::codec::{for_each_frame, Encoder, LengthPrefixedCodec};
use mio_selectors::{CloseReason, Config, ConnId, Context, Handler, InBuf, PeerAddr};

use util::chat::LineClient;
use util::{
    connect, expect_eof, expect_reset, key_gen, process, read_exact_deadline, write_all_deadline,
    Opts, Reason, Rng, Server,
};

/// The longest any one step may take: generous, since no timing is
/// asserted here, only outcomes.
const STEP: Duration = Duration::from_secs(10);

fn soon() -> Instant {
    Instant::now() + STEP
}

// ---------------------------------------------------------------------------
// One read and one write per message
// ---------------------------------------------------------------------------

/// System calls `strace` saw the traced server make on one descriptor.
#[derive(Debug, Default)]
struct Calls {
    reads: usize,
    reads_would_block: usize,
    writes: usize,
    writes_would_block: usize,
}

const READS: [&str; 4] = ["read", "recvfrom", "recvmsg", "readv"];
const WRITES: [&str; 4] = ["write", "sendto", "sendmsg", "writev"];

/// Counts, in an `strace -f` log, the reads and writes on the descriptor
/// the first successful `accept`/`accept4` returned. Fails on a log it
/// cannot make sense of rather than counting 0.
fn count_calls(log: &str) -> Result<Calls, String> {
    let mut fd = None;
    let mut calls = Calls::default();
    for line in log.lines() {
        // "PID  name(args) = result", or without the PID.
        let line = line
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .trim_start();
        let Some((name, rest)) = line.split_once('(') else {
            continue; // "+++ exited with 0 +++", signals
        };
        let result = rest.rsplit_once(" = ").map(|(_, r)| r.trim());
        if name == "accept4" || name == "accept" {
            if let Some(n) = result.and_then(|r| r.parse::<i32>().ok()) {
                fd.get_or_insert(n);
            }
            continue;
        }
        let Some(fd) = fd else { continue };
        let on_fd = rest
            .split(',')
            .next()
            .and_then(|a| a.trim().parse::<i32>().ok());
        if on_fd != Some(fd) {
            continue;
        }
        let Some(result) = result else {
            return Err(format!("no result in {line:?} (an unfinished call?)"));
        };
        if READS.contains(&name) {
            calls.reads += 1;
            calls.reads_would_block += usize::from(result.contains("EAGAIN"));
        } else if WRITES.contains(&name) {
            calls.writes += 1;
            calls.writes_would_block += usize::from(result.contains("EAGAIN"));
        }
    }
    if fd.is_none() {
        return Err("no successful accept in the trace".into());
    }
    Ok(calls)
}

/// The pid of the one child of process `pid` (strace's tracee).
fn only_child(pid: u32) -> u32 {
    let path = format!("/proc/{pid}/task/{pid}/children");
    let children = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let kids: Vec<u32> = children
        .split_whitespace()
        .map(|k| k.parse().expect("a pid"))
        .collect();
    assert_eq!(kids.len(), 1, "strace should have one child, has {kids:?}");
    kids[0]
}

/// The `multiconn_echo` example running under `strace -f`, tracing the
/// reads, writes and accepts of every thread into a log of its own.
struct Traced {
    proc: process::Proc,
    addr: SocketAddr,
    log: std::path::PathBuf,
}

impl Traced {
    /// Starts the traced echo example; `None` when strace is missing
    /// outside CI (under `CI=true` that fails instead).
    fn start(tag: &str, flags: &[&str]) -> Option<Traced> {
        if !util::need_tool("strace", "it counts the example's system calls") {
            return None;
        }
        let example = process::example(&["multiconn_echo"], "multiconn_echo");
        let log =
            std::env::temp_dir().join(format!("guarantees-{tag}-{}.strace", std::process::id()));
        let mut cmd = Command::new("strace");
        cmd.arg("-f")
            .arg("-qq")
            .arg("-o")
            .arg(&log)
            .arg("-e")
            .arg("trace=accept,accept4,read,recvfrom,recvmsg,readv,write,sendto,sendmsg,writev")
            .arg(example.get_program())
            .args(["127.0.0.1", "0"])
            .args(flags)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let (proc, addr) = process::Proc::start_ready("strace multiconn_echo", cmd, STEP);
        let addr = addr.parse().expect("an address");
        Some(Traced { proc, addr, log })
    }

    /// Stops the server (SIGTERM to strace's tracee, so strace ends with
    /// it) and counts the calls on the first accepted connection.
    fn finish(self) -> Calls {
        let server = only_child(self.proc.child.id());
        assert!(process::signal(server, "-TERM"), "SIGTERM the server");
        let (status, _, stderr) = self.proc.finish();
        assert!(status.success(), "server exit {status}, stderr:\n{stderr}");
        let text = std::fs::read_to_string(&self.log).expect("read the trace");
        let _ = std::fs::remove_file(&self.log);
        count_calls(&text).unwrap_or_else(|e| panic!("trace: {e}"))
    }
}

/// The `multiconn_echo` example under `strace`: `N` ping-pongs of one
/// small message each must cost the server `N` reads and `N` writes (plus
/// the read that sees EOF), not a second read per message that returns
/// `EAGAIN`: a read shorter than the buffer proves the socket drained.
#[test]
fn an_echo_costs_one_read_and_one_write_per_message() {
    const N: usize = 200;
    let Some(traced) = Traced::start("pingpong", &[]) else {
        return;
    };
    let c = connect(traced.addr);
    let mut rng = Rng::new(util::seed(15));
    for i in 0..N {
        let msg = rng.bytes(1 + i % 100);
        write_all_deadline(&c, &msg, soon()).expect("write");
        let mut back = vec![0; msg.len()];
        read_exact_deadline(&c, &mut back, soon()).expect("echo");
        assert_eq!(back, msg, "echo of message {i}");
    }
    c.shutdown(Shutdown::Write).unwrap();
    expect_eof(&c, soon()).expect("FIN after the last echo");
    let calls = traced.finish();
    eprintln!("{N} messages: {calls:?}");
    // Sanity first: the tracer saw the traffic (a detached or broken trace
    // must not pass as "few system calls").
    assert!(
        calls.reads > N && calls.writes >= N,
        "the trace missed the traffic: {calls:?} for {N} messages"
    );
    // One read per message, one more for EOF, one spare for a readiness
    // report racing the accept; a second read per message would be 2N.
    assert!(
        calls.reads <= N + 2,
        "{} reads ({} of them EAGAIN) for {N} messages: a short read no longer ends the reading",
        calls.reads,
        calls.reads_would_block
    );
    assert!(
        calls.writes <= N + 1,
        "{} writes for {N} messages",
        calls.writes
    );
}

// ---------------------------------------------------------------------------
// Input that is never consumed
// ---------------------------------------------------------------------------

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

/// Chat run with input room smaller than a line (a misconfiguration the
/// reactor must still bound): a client that sends more than fits without a
/// newline is closed, the room hears `* NAME left (flood)`, and the
/// client itself gets a reset.
#[test]
fn chat_announces_a_flooder_that_overflows_its_input() {
    let chat = ChatConfig::default(); // max_line 4096
    let config = Config {
        max_inb: 512,
        read_chunk: 256,
        ..chat.reactor_config()
    };
    let server = fault::run_server(ChatServer::new(chat), config, "127.0.0.1:0");
    let mut s = LineClient::join(server.addr);
    s.nick("flooder");
    let mut r = LineClient::join(server.addr);
    s.expect(&format!("* {} joined", r.name));
    s.send([b'f'; 2000]);
    r.expect("* flooder left (flood)");
    expect_reset(&s.stream, soon()).expect("the flooder is told with a reset");
    // The room carries on.
    r.nick("still-here");
    drop((s, r));
    server.stop().expect("chat server");
}

// ---------------------------------------------------------------------------
// Readiness is never lost
// ---------------------------------------------------------------------------

/// The whole burst is in the server's receive buffer before the reactor
/// sees the connection (the reactor thread is held by a task meanwhile),
/// so the kernel reports it readable once. The read budget is 4 KiB a
/// pass; the client then sends nothing and keeps its side open. Only a
/// reactor that queues the connection for another pass by itself reads
/// the rest: no new event will come.
#[test]
fn a_burst_bigger_than_the_read_budget_is_echoed_whole_without_another_event() {
    const BURST: usize = 48 * 1024;
    let config = Config {
        read_budget: 4096,
        read_chunk: 1024,
        ..Config::default()
    };
    let server = Server::start("127.0.0.1:0", config, Opts::default()).expect("server");
    let (held_tx, held) = mpsc::channel();
    let (release, release_rx) = mpsc::channel::<()>();
    server.handle.call_soon_threadsafe(move |_| {
        let _ = held_tx.send(());
        // Bounded: a failed test must not keep the reactor held.
        let _ = release_rx.recv_timeout(STEP);
    });
    held.recv_timeout(STEP).expect("the reactor runs the task");
    let c = connect(server.addr);
    let burst = Rng::new(util::seed(0xB0057)).bytes(BURST);
    // Loopback's receive buffer holds it all before anyone accepts.
    write_all_deadline(&c, &burst, soon()).expect("write the burst");
    release.send(()).expect("release the reactor");
    let mut back = vec![0; BURST];
    read_exact_deadline(&c, &mut back, soon()).unwrap_or_else(|e| {
        let echoed = server
            .stats()
            .conn_of(c.local_addr().unwrap())
            .map(|s| s.echoed);
        panic!("echo of the burst: {e} (server echoed {echoed:?} of {BURST} bytes)")
    });
    util::check_bytes("echo", &back, &burst).unwrap();
    // Only now the FIN: the echo did not depend on it.
    c.shutdown(Shutdown::Write).unwrap();
    expect_eof(&c, soon()).expect("FIN after the echo");
}

// ---------------------------------------------------------------------------
// A stale id never reaches a reused slot
// ---------------------------------------------------------------------------

/// Round trip: `msg` comes back exactly, and nothing before it.
fn round_trip(c: &TcpStream, msg: &[u8]) {
    write_all_deadline(c, msg, soon()).expect("write");
    let mut back = vec![0; msg.len()];
    read_exact_deadline(c, &mut back, soon()).expect("echo");
    util::check_bytes("echo", &back, msg).unwrap();
}

/// A connection closes; the next one takes its slab slot. On every accept
/// and read the handler calls `send`, `close`, `abort`, `pause_reading`,
/// `write_eof`, `data`, `data_mut`, `pending_output` and `peer_addr` with
/// the closed connection's id, and
/// another thread sends to it through the `Handle`: all of them must miss,
/// and the new occupant must get exactly its own echo and stay open.
#[test]
fn a_closed_connections_id_never_reaches_the_connection_reusing_its_slot() {
    let opts = Opts {
        probe_stale: true,
        ..Opts::default()
    };
    let server = Server::start("127.0.0.1:0", Config::default(), opts).expect("server");
    let a = connect(server.addr);
    round_trip(&a, b"first occupant");
    let a_addr = a.local_addr().unwrap();
    a.shutdown(Shutdown::Write).unwrap();
    expect_eof(&a, soon()).expect("A closed");
    let old: ConnId = server
        .wait_for(STEP, "A lost", |s| s.lost_peer(a_addr).is_some())
        .lost_peer(a_addr)
        .unwrap()
        .id;
    let b = connect(server.addr);
    round_trip(&b, b"second occupant");
    let new = server.stats().conn_of(b.local_addr().unwrap()).unwrap().id;
    let ((old_key, old_gen), (new_key, new_gen)) = (key_gen(old), key_gen(new));
    assert_eq!(old_key, new_key, "B reuses A's slot ({old} then {new})");
    assert_ne!(old_gen, new_gen, "a reused slot gets a new generation");
    // From another thread too.
    server
        .handle
        .send(old, b"STALE BYTES THROUGH THE HANDLE".to_vec());
    round_trip(&b, b"after the handle's stale send");
    round_trip(&b, b"and once more");
    {
        let stats = server.stats();
        let probes: Vec<_> = stats
            .stale_probes
            .iter()
            .filter(|p| p.stale == old)
            .collect();
        assert!(
            probes.iter().filter(|p| p.during == new).count() >= 3,
            "the handler probed A's id while serving B: {probes:?}"
        );
        for p in probes {
            assert!(p.send_is_no_such_connection, "send to a stale id: {p:?}");
            assert_eq!(p.pending_output, None, "{p:?}");
            assert!(!p.has_data && !p.has_data_mut, "{p:?}");
            assert_eq!(p.peer_addr, None, "{p:?}");
        }
        assert!(stats.aborted.is_empty());
        assert!(
            stats.lost_of(new).is_none(),
            "B was not closed by a stale close/abort"
        );
    }
    b.shutdown(Shutdown::Write).unwrap();
    expect_eof(&b, soon()).expect("B closed by its own FIN");
    let b_addr = b.local_addr().unwrap();
    let reason = server
        .wait_for(STEP, "B lost", |s| s.lost_peer(b_addr).is_some())
        .lost_peer(b_addr)
        .unwrap()
        .reason
        .clone();
    assert_eq!(reason, Reason::PeerClosed);
}
