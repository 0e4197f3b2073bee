//! Reliability: what the echo and chat servers survive, as figures.
//!
//! - faults: echo and chat through a proxy that splits writes into single
//!   bytes, delays at random, resets and half-closes mid-message;
//! - load: 9,000 echo connections held at once, every byte checked (and,
//!   by hand, a soak of 19,000 from a second process with faults mixed in);
//! - descriptor exhaustion: the `multiconn_echo` example under
//!   `prlimit --nofile=64:64`;
//! - stale events and slot reuse under churn;
//! - slow consumers (never-reading clients) on echo and chat;
//! - connection limits, total and per source address.
//!
//! Each test prints one `reliability: NAME key=value ...` line (see it with
//! `cargo test --test stress -- --nocapture`); `docs/reliability.md`
//! gives the figures of the last run.
//!
//! The soak runs only by hand (at most 10 minutes, `SOAK_SECS` to change):
//!
//! ```text
//! SOAK=1 cargo test --release --test stress soak -- --ignored --nocapture
//! ```
//!
//! Loopback only. Nothing sleeps to synchronise; every blocking call has a
//! deadline, every test an overall limit.

#[path = "../util/mod.rs"]
mod util;

use util::fault;
use util::watch::Watch;

// The chat application, in-process; each test binary uses part of it.
#[allow(dead_code)]
#[path = "../../examples/chatroom/chat/mod.rs"]
mod chat;

use chat::{ChatConfig, ChatServer};
use fault::load::{Mix, Spec};
use fault::{figures, load, Fault, LineClient, Plan, Proxy, Router, Split, STEP};
use mio_selectors::Config;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use std::{io, thread};
#[allow(unused_imports)]
use util::stress_helpers::*;
use util::{Opts, Pattern, Rng};

/// A random proxy plan: splits, delays of up to 5 ms in one write of 8,
/// and for 1 connection in 2 a reset or half-close at a random offset.
fn echo_plan(rng: &mut Rng) -> Plan {
    let split = |rng: &mut Rng| match rng.below(3) {
        0 => Split::Whole,
        1 => Split::OneByte,
        _ => Split::Random,
    };
    let fault = match rng.below(10) {
        0 | 1 => Fault::ResetUp(rng.range(0, 1500) as u64),
        2 | 3 => Fault::HalfCloseUp(rng.range(0, 1500) as u64),
        4 => Fault::ResetDown(rng.range(0, 1500) as u64),
        _ => Fault::None,
    };
    Plan {
        up: split(rng),
        down: split(rng),
        delay_one_in: 8,
        delay_max: Duration::from_millis(5),
        fault,
    }
}

/// What one proxied echo client saw.
struct EchoOutcome {
    plan: Plan,
    sent: Vec<u8>,
    got: Vec<u8>,
    /// Its reads ended in EOF (not a reset).
    eof: bool,
}

/// One echo client through the proxy: learns its plan, sends a message long
/// enough for the planned fault to happen, half-closes, reads to the end.
fn proxied_echo_client(proxy: &Proxy, seed: u64, i: u64) -> EchoOutcome {
    let mut rng = Rng::fork(seed, i);
    let s = util::connect(proxy.addr);
    let plan = proxy.plan_of(s.local_addr().unwrap());
    let at = match plan.fault {
        Fault::ResetUp(k) | Fault::HalfCloseUp(k) | Fault::ResetDown(k) => Some(k as usize),
        Fault::None => None,
    };
    let mut len = rng.range(1, 2000);
    if let Some(k) = at {
        len = len.max(k + 1 + rng.below(200));
    }
    let mut sent = vec![0; len];
    Pattern(seed ^ i).fill(0, &mut sent);
    let deadline = Instant::now() + Duration::from_secs(60);
    let writer = {
        let s = s.try_clone().unwrap();
        let (sent, pieces) = (sent.clone(), rng.split(len, 6));
        thread::spawn(move || {
            let mut at = 0;
            for p in pieces {
                if util::write_all_deadline(&s, &sent[at..at + p], deadline).is_err() {
                    return; // reset on purpose: the reader judges
                }
                at += p;
            }
            let _ = util::shutdown_write(&s);
        })
    };
    let mut got = Vec::new();
    let mut buf = vec![0; 16 * 1024];
    let eof = loop {
        s.set_read_timeout(Some(deadline.saturating_duration_since(Instant::now())))
            .unwrap();
        match (&s).read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if util::is_timeout(&e) => panic!("client {i}: no EOF in time ({plan:?})"),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break false,
            Err(e) => panic!("client {i}: {e} ({plan:?})"),
        }
    };
    writer.join().expect("writer");
    EchoOutcome {
        plan,
        sent,
        got,
        eof,
    }
}

/// Chat plans: the same splits and delays; faults placed after the nick.
fn chat_plan(rng: &mut Rng) -> Plan {
    let mut plan = echo_plan(rng);
    plan.fault = match rng.below(12) {
        0 | 1 => Fault::ResetUp(rng.range(100, 1500) as u64),
        2 | 3 => Fault::HalfCloseUp(rng.range(100, 1500) as u64),
        4 => Fault::ResetDown(rng.range(3000, 6000) as u64),
        _ => Fault::None,
    };
    plan
}

/// The lines chat client `i` sends after its nick, ending with `done`.
fn chat_lines(seed: u64, i: usize) -> Vec<String> {
    let mut rng = Rng::fork(seed, i as u64);
    let mut lines: Vec<String> = (0..40)
        .map(|j| {
            let pad: String = (0..rng.range(0, 60))
                .map(|_| (b'a' + rng.below(26) as u8) as char)
                .collect();
            format!("line {j} of c{i} {pad}")
        })
        .collect();
    lines.push("done".into());
    lines
}

/// The lines of `lines` whose `\n` lies within the first `k` bytes sent
/// after `nick_len` bytes of `/nick`.
fn lines_within(lines: &[String], nick_len: usize, k: u64) -> usize {
    let mut at = nick_len;
    lines
        .iter()
        .take_while(|l| {
            at += l.len() + 1;
            at as u64 <= k
        })
        .count()
}

struct ChatOutcome {
    plan: Plan,
    /// Relayed lines it received, by sender index, in order.
    heard: HashMap<usize, Vec<String>>,
    /// Senders it saw leave, and how.
    left: HashMap<usize, String>,
    /// It read until every other client was accounted for.
    complete: bool,
}

/// One chat client through the proxy: nick `cI`, wait for everyone, send
/// its lines, then read until every other client said `done` or left.
fn chat_client(
    proxy: &Proxy,
    joined: &util::Latch,
    (seed, i, clients): (u64, usize, usize),
    deadline: Instant,
) -> ChatOutcome {
    let mut c = LineClient::connect(proxy.addr);
    let plan = proxy.plan_of(c.stream.local_addr().unwrap());
    let mut outcome = ChatOutcome {
        plan,
        heard: HashMap::new(),
        left: HashMap::new(),
        complete: false,
    };
    c.line(); // the welcome
    c.send(format!("/nick c{i}\n"));
    loop {
        let line = c.line();
        if line == format!("* you are now c{i}") {
            break;
        }
    }
    joined
        .arrive_and_wait(deadline)
        .unwrap_or_else(|e| panic!("c{i}: {e}"));
    let lines = chat_lines(seed, i);
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    if c.try_send(&text).is_err() {
        assert!(plan.fault != Fault::None, "c{i}: write failed");
    }
    let mut waiting: Vec<usize> = (0..clients).filter(|&s| s != i).collect();
    while !waiting.is_empty() {
        let line = match c.line_until(deadline) {
            Ok(line) => line,
            Err(e) => {
                assert!(
                    plan.fault != Fault::None,
                    "c{i}: {e:?} waiting for {waiting:?}"
                );
                return outcome;
            }
        };
        if let Some(rest) = line.strip_prefix("<c") {
            let (s, text) = rest.split_once("> ").expect("relayed line");
            let s: usize = s.parse().expect("sender index");
            if text == "done" {
                waiting.retain(|&w| w != s);
            }
            outcome.heard.entry(s).or_default().push(text.to_string());
        } else if let Some(rest) = line.strip_prefix("* c") {
            if let Some((s, how)) = rest.split_once(" left") {
                if let Ok(s) = s.parse::<usize>() {
                    waiting.retain(|&w| w != s);
                    outcome.left.insert(s, how.to_string());
                }
            }
        }
    }
    outcome.complete = true;
    let _ = c.try_send("/quit\n");
    outcome
}

/// `name` from the environment as a number in `range`, or `default` if
/// unset. A value that does not parse or is out of range fails the test:
/// a misconfigured soak must not pass as a shorter or smaller one.
fn env_in<T>(name: &str, default: T, range: std::ops::RangeInclusive<T>) -> T
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let Ok(text) = std::env::var(name) else {
        return default;
    };
    let value: T = text
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{name}={text:?} is not a number"));
    assert!(
        range.contains(&value),
        "{name}={value} is out of range {}..={}",
        range.start(),
        range.end()
    );
    value
}

/// Seconds the soak churns after its ramp (`SOAK_SECS`, default 240, at
/// most 480, so the whole run stays under 10 minutes).
fn soak_secs() -> u64 {
    env_in("SOAK_SECS", 240, 1..=480)
}

/// Connections the soak holds at once (`SOAK_CONNS`, default 19,000; at
/// most 19,500, so that each process stays under its 20,000 descriptors).
fn soak_conns() -> usize {
    env_in("SOAK_CONNS", 19_000, 1..=19_500)
}

/// Sends `data` on `s` from a second thread while reading the echo here,
/// so neither side can stall the other; checks it byte for byte.
fn echo_exchange(s: TcpStream, data: Vec<u8>) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let writer = {
        let (s, data) = (s.try_clone().unwrap(), data.clone());
        thread::spawn(move || {
            for chunk in data.chunks(7919) {
                util::write_all_deadline(&s, chunk, deadline)?;
            }
            util::shutdown_write(&s)
        })
    };
    let back = util::read_to_eof_deadline(&s, data.len(), deadline).map_err(|e| e.to_string())?;
    writer.join().unwrap().map_err(|e| e.to_string())?;
    util::check_bytes("echo", &back, &data)
}

/// A connection with small kernel buffers (set before connecting, so the
/// window is small from the start): what a client does not read or write
/// then piles up in the server, where the caps must hold it.
fn small_buffers(addr: SocketAddr) -> TcpStream {
    use socket2::{Domain, SockAddr, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.set_recv_buffer_size(4096).unwrap();
    s.set_send_buffer_size(4096).unwrap();
    s.connect_timeout(&SockAddr::from(addr), STEP).unwrap();
    let s: TcpStream = s.into();
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(util::IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(util::IO_TIMEOUT)).unwrap();
    s
}

/// A chat client that will read nothing after its nick.
fn never_reading(addr: SocketAddr) -> LineClient {
    LineClient::wrap(small_buffers(addr))
}

#[test]
fn echo_through_a_faulty_proxy_loses_nothing_it_was_not_told_to() {
    const CLIENTS: u64 = 60;
    run(Duration::from_secs(180), || {
        let _fds = util::fds_shared();
        let seed = util::seed(0xFA17_EC40);
        let mut server = util::Server::start("127.0.0.1:0", Config::default(), Opts::default())
            .expect("echo server");
        let proxy = Arc::new(Proxy::start(server.addr, seed, |rng, _| echo_plan(rng)));
        let workers: Vec<_> = (0..CLIENTS)
            .map(|i| {
                let proxy = proxy.clone();
                thread::spawn(move || proxied_echo_client(&proxy, seed, i))
            })
            .collect();
        let outcomes: Vec<EchoOutcome> = workers
            .into_iter()
            .map(|w| w.join().expect("client thread"))
            .collect();

        let (mut unbroken, mut broken, mut lost, mut checked) = (0, 0, 0u64, 0u64);
        for (i, o) in outcomes.iter().enumerate() {
            let what = format!("client {i} {:?}", o.plan);
            checked += o.got.len() as u64;
            // Never a byte that was not sent, in this position.
            util::check_bytes(&what, &o.got, &o.sent[..o.got.len().min(o.sent.len())])
                .unwrap_or_else(|e| panic!("{e}"));
            match o.plan.fault {
                Fault::None => {
                    unbroken += 1;
                    lost += (o.sent.len() - o.got.len()) as u64;
                    assert!(o.eof, "{what}: reset");
                    assert_eq!(fault::fnv(&o.got), fault::fnv(&o.sent), "{what}: checksum");
                }
                // The server saw EOF after k bytes: exactly those come back.
                Fault::HalfCloseUp(k) => {
                    unbroken += 1;
                    lost += k - o.got.len() as u64;
                    assert!(o.eof, "{what}: reset");
                    let want = &o.sent[..k as usize];
                    assert_eq!(fault::fnv(&o.got), fault::fnv(want), "{what}: checksum");
                }
                // Every message is longer than k, so the reset always
                // happens, and the client must hear it as one.
                Fault::ResetUp(k) | Fault::ResetDown(k) => {
                    broken += 1;
                    assert!(o.got.len() as u64 <= k, "{what}: more than {k} bytes back");
                    assert!(!o.eof, "{what}: a clean EOF after a reset");
                }
            }
        }
        // Every connection, broken or not, is gone from the server.
        server.wait_until(STEP, "every connection closed", |s| {
            s.live == 0 && s.accepted.len() == CLIENTS as usize
        });
        assert!(proxy.wait_idle(STEP), "proxy pumps left running");
        let stats = proxy.stats();
        server.stop_and_join(STEP);
        let accepted = server.stats().accepted.len();
        // The figures first, so a failing run still shows what it measured.
        let mut pairs = vec![
            ("conns", accepted.to_string()),
            ("unbroken", unbroken.to_string()),
            ("broken", broken.to_string()),
            ("bytes_checked", checked.to_string()),
            ("lost", lost.to_string()),
        ];
        pairs.extend(stats.summary());
        pairs.push(("panics", fault::panics().to_string()));
        figures("echo_proxy", &pairs);
        assert_eq!(lost, 0, "bytes lost on unbroken connections");
        assert!(stats.resets.load(SeqCst) > 0 && stats.half_closes.load(SeqCst) > 0);
        assert_eq!(
            fault::panics(),
            0,
            "panics (the proxy's and readers' threads included)"
        );
    });
}

#[test]
fn chat_through_a_faulty_proxy_relays_every_line_of_unbroken_clients() {
    const CLIENTS: usize = 12;
    run(Duration::from_secs(180), || {
        let _fds = util::fds_shared();
        let seed = util::seed(0xFA17_C4A7);
        let config = ChatConfig {
            // Every join and leave on its own line (the budget of notice
            // storms is tested in tests/hardening.rs).
            notices_per_sec: u32::MAX,
            lines_per_sec: 1e5,
            burst: 1e5,
            ..ChatConfig::default()
        };
        let (watch, peak) = Watch::new(ChatServer::new(config.clone()));
        let server = fault::run_server(watch, config.reactor_config(), "127.0.0.1:0");
        let proxy = Arc::new(Proxy::start(server.addr, seed, |rng, _| chat_plan(rng)));
        let joined = Arc::new(util::Latch::new(CLIENTS));
        let deadline = Instant::now() + Duration::from_secs(120);
        let workers: Vec<_> = (0..CLIENTS)
            .map(|i| {
                let (proxy, joined) = (proxy.clone(), joined.clone());
                thread::spawn(move || chat_client(&proxy, &joined, (seed, i, CLIENTS), deadline))
            })
            .collect();
        let outcomes: Vec<ChatOutcome> = workers
            .into_iter()
            .map(|w| w.join().expect("client thread"))
            .collect();

        let nick_len = |i: usize| format!("/nick c{i}\n").len();
        let (mut lost, mut checked_lines, mut unbroken) = (0usize, 0usize, 0);
        let mut missed = Vec::new();
        for (r, o) in outcomes.iter().enumerate() {
            let receiver_ok = o.plan.fault == Fault::None;
            if receiver_ok {
                unbroken += 1;
                assert!(o.complete, "c{r} {:?} did not hear from everyone", o.plan);
            }
            for (s, sender) in outcomes.iter().enumerate() {
                if s == r {
                    // No echo: a sender never hears its own lines.
                    assert!(
                        o.heard.get(&r).is_none_or(Vec::is_empty),
                        "c{r} heard its own lines: {:?}",
                        o.heard.get(&r)
                    );
                    continue;
                }
                let sent = chat_lines(seed, s);
                let heard = o.heard.get(&s).map(Vec::as_slice).unwrap_or(&[]);
                checked_lines += heard.len();
                // Whatever arrived is the sender's lines, in order, none skipped.
                assert_eq!(
                    heard,
                    &sent[..heard.len()],
                    "c{r} heard c{s} {:?}",
                    sender.plan
                );
                let whole = match sender.plan.fault {
                    Fault::None => Some(sent.len()),
                    // EOF after k bytes: every line ended within them, no more.
                    Fault::HalfCloseUp(k) => Some(lines_within(&sent, nick_len(s), k)),
                    Fault::ResetUp(k) => {
                        let most = lines_within(&sent, nick_len(s), k);
                        assert!(
                            heard.len() <= most,
                            "c{s}'s line past its reset reached c{r}"
                        );
                        None
                    }
                    Fault::ResetDown(_) => None,
                };
                if let (true, Some(n)) = (receiver_ok, whole) {
                    lost += n.saturating_sub(heard.len());
                    if heard.len() != n {
                        missed.push(format!(
                            "c{r} heard {} of {n} lines of c{s} {:?}",
                            heard.len(),
                            sender.plan
                        ));
                    }
                }
                let said_done = heard.last().is_some_and(|l| l == "done");
                if receiver_ok && !said_done {
                    assert!(o.left.contains_key(&s), "c{r} never heard c{s} leave");
                }
            }
        }
        assert!(proxy.wait_idle(STEP), "proxy pumps left running");
        let peak = peak.load(SeqCst);
        server.stop().expect("chat server");
        let mut pairs = vec![
            ("clients", CLIENTS.to_string()),
            ("unbroken", unbroken.to_string()),
            ("lines_checked", checked_lines.to_string()),
            ("lost", lost.to_string()),
            ("peak_pending", peak.to_string()),
        ];
        pairs.extend(proxy.stats().summary());
        pairs.push(("panics", fault::panics().to_string()));
        figures("chat_proxy", &pairs);
        assert_eq!(lost, 0, "lines lost between unbroken clients: {missed:?}");
        assert!(
            peak <= config.max_output,
            "pending output {peak} passed max_output"
        );
        assert_eq!(
            fault::panics(),
            0,
            "panics (the proxy's and readers' threads included)"
        );
    });
}

#[test]
fn holds_9000_echo_connections_at_once_checking_every_byte() {
    const CONNS: usize = 9000;
    run(Duration::from_secs(240), || {
        let _fds = util::fds_exclusive(); // nobody else opens descriptors meanwhile
        let baseline = util::fd_count();
        let (router, stats) = Router::new();
        let server = fault::run_server(router, Config::default(), "127.0.0.1:0");
        let seed = util::seed(0x9000);
        let spec = Spec {
            target: server.addr,
            seed,
            conns: CONNS,
            rounds: (2, 3),
            msg: (1, 1024),
            max_connecting: 512,
            first: Mix {
                clean: 9,
                one_byte: 1,
                ..Mix::CLEAN
            },
            replace: Mix::CLEAN,
            hold: true,
            replace_until: None,
            max_total: CONNS,
            deadline: Instant::now() + Duration::from_secs(180),
        };
        let mut fds_at_hold = 0;
        let report = load::run(&spec, &mut |open| {
            // The server holds every one of them at this moment.
            let ok = util::poll_until(STEP, || stats.live.load(SeqCst) == open);
            fds_at_hold = util::fd_count();
            match ok {
                true => Ok(()),
                false => Err(format!(
                    "server holds {}, client {open}",
                    stats.live.load(SeqCst)
                )),
            }
        });
        let all_closed = util::poll_until(STEP, || stats.live.load(SeqCst) == 0);
        let peak_pending = stats.max_pending.load(SeqCst);
        server.stop().expect("reactor");
        let back = util::poll_until(STEP, || util::fd_count() == baseline);
        let after = util::fd_count();
        // The figures first, so a failing run still shows what it measured.
        figures(
            "load",
            &[
                ("held", report.held.to_string()),
                ("fds_at_hold", fds_at_hold.to_string()),
                ("opened", report.opened.to_string()),
                ("one_byte_writers", report.one_byte.to_string()),
                ("bytes_checked", report.bytes_checked.to_string()),
                ("lost", report.lost.to_string()),
                (
                    "server_mismatches",
                    stats.mismatches.load(SeqCst).to_string(),
                ),
                ("peak_pending", peak_pending.to_string()),
                ("high_water", Config::default().high_water.to_string()),
                ("fds_before", baseline.to_string()),
                ("fds_after", after.to_string()),
                (
                    "peak_rss_kib",
                    fault::peak_rss_kib("self").unwrap_or(0).to_string(),
                ),
                ("secs", format!("{:.1}", report.elapsed.as_secs_f64())),
                ("panics", fault::panics().to_string()),
            ],
        );
        assert!(report.errors == 0, "errors: {:?}", report.first_errors);
        assert_eq!(report.held, CONNS, "connections held at once");
        assert_eq!(report.clean + report.one_byte, CONNS, "{report:?}");
        assert_eq!(report.lost, 0, "bytes lost (stuck connections count)");
        assert_eq!(
            report.bytes_checked, report.bytes_sent,
            "every byte came back"
        );
        assert!(
            fds_at_hold >= 2 * CONNS,
            "only {fds_at_hold} descriptors at the hold"
        );
        assert!(all_closed, "the server still holds connections");
        assert_eq!(
            stats.mismatches.load(SeqCst),
            0,
            "{:?}",
            stats.first_error()
        );
        assert!(back, "descriptors: {after} after, {baseline} before");
        assert_eq!(fault::panics(), 0, "panics in this process (any thread)");
    });
}

/// The load client of the soak, run in a child process by `soak` (this
/// same test binary, started with `SOAK_CHILD_TARGET` set). Prints
/// `SOAK HOLD n` at the hold and waits for the parent's `OK` on stdin;
/// prints `SOAK REPORT ...` at the end.
#[test]
#[ignore = "the soak's child process; `soak` starts it"]
fn soak_child() {
    // Run by hand without its parent it has nothing to load: fail, so
    // that `--ignored` cannot report a soak that did not run as passed.
    let target = std::env::var("SOAK_CHILD_TARGET")
        .expect("soak_child is started by `soak` with SOAK_CHILD_TARGET set; run `soak`");
    let conns = soak_conns();
    let start = Instant::now();
    let spec = Spec {
        target: target.parse().unwrap(),
        seed: util::seed(0x50A4),
        conns,
        rounds: (2, 4),
        msg: (1, 2048),
        max_connecting: 512,
        first: Mix::CLEAN,
        replace: Mix {
            clean: 50,
            one_byte: 10,
            reset_mid: 15,
            half_close_mid: 15,
            aborted: 10,
        },
        hold: true,
        replace_until: Some(start + Duration::from_secs(soak_secs())),
        max_total: usize::MAX,
        deadline: start + Duration::from_secs(soak_secs() + 100),
    };
    let report = load::run(&spec, &mut |open| {
        println!("SOAK HOLD {open}");
        io::stdout().flush().unwrap();
        let mut answer = String::new();
        io::stdin()
            .read_line(&mut answer)
            .map_err(|e| e.to_string())?;
        match answer.trim() {
            "OK" => Ok(()),
            other => Err(format!("parent says {other:?}")),
        }
    });
    let r = &report;
    println!(
        "SOAK REPORT held={} opened={} clean={} one_byte={} reset_mid={} half_close_mid={} \
         aborted={} bytes_checked={} lost={} errors={} secs={:.0} peak_rss_kib={}",
        r.held,
        r.opened,
        r.clean,
        r.one_byte,
        r.reset_mid,
        r.half_close_mid,
        r.aborted,
        r.bytes_checked,
        r.lost,
        r.errors,
        r.elapsed.as_secs_f64(),
        fault::peak_rss_kib("self").unwrap_or(0)
    );
    assert!(r.errors == 0, "errors: {:?}", r.first_errors);
}

#[test]
#[ignore = "soak: by hand, SOAK=1 (see the module docs)"]
fn soak() {
    // Asked for (it is ignored otherwise) but not configured: fail, not pass.
    assert_eq!(
        std::env::var("SOAK").as_deref(),
        Ok("1"),
        "soak: set SOAK=1 to run it (up to 10 minutes; see the module docs)"
    );
    let secs = soak_secs();
    run(Duration::from_secs(secs + 120), move || {
        let _fds = util::fds_exclusive();
        let baseline = util::fd_count();
        let (router, stats) = Router::new();
        let server = fault::run_server(router, Config::default(), "127.0.0.1:0");
        let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "soak_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SOAK_CHILD_TARGET", server.addr.to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
        let mut child = fault::Child::spawn(cmd);
        let mut stdin = child.child.stdin.take().unwrap();
        let limit = Duration::from_secs(secs + 110);
        let deadline = Instant::now() + limit;
        let mut held = 0;
        let mut server_held = 0;
        let report = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(line) = child.line(left) else {
                let stderr: Vec<String> = child.stderr.try_iter().collect();
                panic!(
                    "the soak client ended without a report:\n{}",
                    stderr.join("\n")
                );
            };
            // libtest may print `test soak_child ... ` before a line.
            let line = match line.find("SOAK ") {
                Some(at) => line[at..].to_string(),
                None => continue,
            };
            if let Some(n) = line.strip_prefix("SOAK HOLD ") {
                held = n.parse().unwrap();
                let ok =
                    util::poll_until(Duration::from_secs(30), || stats.live.load(SeqCst) == held);
                server_held = stats.live.load(SeqCst);
                let answer = if ok {
                    "OK".into()
                } else {
                    format!("server holds {server_held}")
                };
                writeln!(stdin, "{answer}").unwrap();
            } else if let Some(report) = line.strip_prefix("SOAK REPORT ") {
                break report.to_string();
            }
        };
        let status = child.wait(Duration::from_secs(30));
        if !status.success() {
            let stderr: Vec<String> = child.stderr.try_iter().collect();
            panic!("soak client failed: {report}\n{}", stderr.join("\n"));
        }
        drop((stdin, child)); // their pipes count as descriptors
        let want = soak_conns();
        assert!(
            held == want && server_held == held,
            "held {held} of {want}, server {server_held}"
        );
        assert!(
            report.contains(" lost=0 ") && report.contains(" errors=0 "),
            "{report}"
        );
        assert!(util::poll_until(STEP, || stats.live.load(SeqCst) == 0));
        assert_eq!(
            stats.mismatches.load(SeqCst),
            0,
            "{:?}",
            stats.first_error()
        );
        assert_eq!(
            stats.stale_hits.load(SeqCst),
            0,
            "{:?}",
            stats.first_error()
        );
        let peak_pending = stats.max_pending.load(SeqCst);
        server.stop().expect("reactor");
        assert!(util::poll_until(STEP, || util::fd_count() == baseline));
        let mut pairs: Vec<(String, String)> = report
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (format!("client_{k}"), v.to_string()))
            .collect();
        pairs.extend(
            [
                ("server_held", server_held.to_string()),
                ("server_accepted", stats.accepted.load(SeqCst).to_string()),
                ("server_aborted", stats.aborted.load(SeqCst).to_string()),
                (
                    "server_mismatches",
                    stats.mismatches.load(SeqCst).to_string(),
                ),
                ("peak_pending", peak_pending.to_string()),
                ("fds_before", baseline.to_string()),
                ("fds_after", util::fd_count().to_string()),
                (
                    "server_peak_rss_kib",
                    fault::peak_rss_kib("self").unwrap_or(0).to_string(),
                ),
                ("panics", fault::panics().to_string()),
            ]
            .map(|(k, v)| (k.to_string(), v)),
        );
        let pairs: Vec<(&str, String)> =
            pairs.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        figures("soak", &pairs);
        assert_eq!(fault::panics(), 0, "panics in this process (any thread)");
    });
}

#[test]
fn out_of_descriptors_the_echo_example_serves_its_clients_idles_and_catches_up() {
    const LIMIT: usize = 64;
    const QUEUED: usize = 30;
    const WINDOW: Duration = Duration::from_secs(2);
    run(Duration::from_secs(180), || {
        let _fds = util::fds_shared();
        let mut cmd = std::process::Command::new("prlimit");
        cmd.arg(format!("--nofile={LIMIT}:{LIMIT}"))
            .arg("--")
            .arg(util::process::examples_dir().join("multiconn_echo"))
            .args(["127.0.0.1", "0"]);
        drop(fault::example("multiconn_echo")); // builds it
        cmd.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .env_remove("RUST_LOG");
        let mut child = fault::Child::spawn(cmd);
        let addr = child.listening();
        let pid = child.pid(); // prlimit execs the server: same process
        let baseline = fault::fds_of(pid);
        // Descriptors inherited from cargo (its jobserver) may sit above
        // the limit: only the numbers below it can be allocated.
        let below = fault::fds_below(pid, LIMIT);
        assert!(below > 0 && below < LIMIT, "{below} descriptors at start");

        // Fill every free descriptor with a client, each echoed.
        let free = LIMIT - below;
        let mut served: Vec<TcpStream> = (0..free)
            .map(|i| {
                let s = util::connect(addr);
                roundtrip(&s, format!("served {i}\n").as_bytes()).expect("a served client");
                s
            })
            .collect();
        assert_eq!(
            fault::fds_below(pid, LIMIT),
            LIMIT,
            "the server holds every descriptor"
        );
        // Past the limit: the kernel completes these, the server cannot accept them.
        let queued: Vec<(TcpStream, Vec<u8>)> = (0..QUEUED)
            .map(|j| {
                let s = util::connect(addr);
                let msg = format!("queued {j}\n").into_bytes();
                util::write_all_deadline(&s, &msg, Instant::now() + STEP).unwrap();
                (s, msg)
            })
            .collect();
        let warning = child
            .stderr_line("accept failed", STEP)
            .expect("the server never reported running out of descriptors");
        assert!(warning.contains("pausing accepts"), "{warning}");

        // Saturated: it still serves its clients, and sits nearly idle.
        let tck = fault::clk_tck();
        let (t0, cpu0) = (Instant::now(), fault::cpu_ticks(pid));
        let mut roundtrips = 0;
        while t0.elapsed() < WINDOW {
            let s = &served[roundtrips % free];
            roundtrip(s, format!("during {roundtrips}\n").as_bytes()).expect("served while full");
            roundtrips += 1;
            thread::sleep(Duration::from_millis(20)); // paces the load, not a synchronisation
        }
        let (wall, cpu) = (t0.elapsed(), fault::cpu_ticks(pid) - cpu0);
        let share = cpu as f64 / tck as f64 / wall.as_secs_f64();
        assert!(
            share < 0.20,
            "{:.0}% of a core while out of descriptors",
            share * 100.0
        );
        for (j, (s, _)) in queued.iter().enumerate() {
            s.set_nonblocking(true).unwrap();
            let mut b = [0u8; 1];
            let r = (&*s).read(&mut b);
            assert!(
                matches!(&r, Err(e) if e.kind() == io::ErrorKind::WouldBlock),
                "queued client {j} was answered before a descriptor was free: {r:?}"
            );
            s.set_nonblocking(false).unwrap();
        }

        // Free 10 descriptors: the first 10 queued clients are served.
        let freed = 10;
        served.drain(..freed);
        for (j, (s, msg)) in queued.iter().take(freed).enumerate() {
            let mut back = vec![0; msg.len()];
            util::read_exact_deadline(s, &mut back, Instant::now() + STEP)
                .unwrap_or_else(|e| panic!("queued client {j} after 10 freed: {e}"));
            assert_eq!(back, *msg);
        }
        // Free the rest: everyone queued is served.
        served.clear();
        for (j, (s, msg)) in queued.iter().enumerate().skip(freed) {
            let mut back = vec![0; msg.len()];
            util::read_exact_deadline(s, &mut back, Instant::now() + STEP)
                .unwrap_or_else(|e| panic!("queued client {j}: {e}"));
            assert_eq!(back, *msg);
            roundtrip(s, b"and again\n").unwrap();
        }
        drop(queued);
        let back = util::poll_until(STEP, || fault::fds_of(pid) == baseline);
        let after = fault::fds_of(pid);
        assert!(back, "server descriptors: {after} after, {baseline} before");
        let peak_rss = fault::peak_rss_kib(&pid.to_string()).unwrap_or(0);
        child.signal("TERM");
        let status = child.wait(STEP);
        assert!(status.success(), "exit status {status}");
        figures(
            "exhaustion",
            &[
                ("nofile", LIMIT.to_string()),
                ("served", free.to_string()),
                ("queued", QUEUED.to_string()),
                ("roundtrips_while_full", roundtrips.to_string()),
                ("cpu_percent", format!("{:.1}", share * 100.0)),
                ("window_secs", format!("{:.1}", wall.as_secs_f64())),
                ("fds_before", baseline.to_string()),
                ("fds_after", after.to_string()),
                ("peak_rss_kib", peak_rss.to_string()),
                ("exit", status.code().unwrap_or(-1).to_string()),
            ],
        );
    });
}

#[test]
fn slots_closed_and_reused_under_churn_never_cross_connections() {
    run(Duration::from_secs(180), || {
        let _fds = util::fds_shared();
        let (router, stats) = Router::new();
        let server = fault::run_server(router, Config::default(), "127.0.0.1:0");
        let seed = util::seed(0x5107);
        let deadline = Instant::now() + Duration::from_secs(120);
        // Streamers: long-lived, many rounds, every byte checked both ways.
        let streamers = Spec {
            target: server.addr,
            seed,
            conns: 48,
            rounds: (30, 60),
            msg: (1, 16 * 1024),
            max_connecting: 48,
            first: Mix {
                clean: 4,
                one_byte: 1,
                ..Mix::CLEAN
            },
            replace: Mix::CLEAN,
            hold: false,
            replace_until: None,
            max_total: 48,
            deadline,
        };
        // Churners: connect, send, and mostly get aborted at a marker
        // offset by the server (or reset, or finish), replaced at once.
        let churners = Spec {
            seed: seed ^ 1,
            conns: 64,
            rounds: (1, 2),
            msg: (16, 2048),
            max_connecting: 64,
            first: Mix {
                clean: 1,
                reset_mid: 1,
                aborted: 4,
                ..Mix::CLEAN
            },
            hold: false,
            replace_until: Some(Instant::now() + Duration::from_secs(60)),
            max_total: 3000,
            ..streamers.clone()
        };
        let churners = {
            let mut spec = churners;
            spec.replace = spec.first;
            thread::spawn(move || load::run(&spec, &mut |_| Ok(())))
        };
        let streamed = load::run(&streamers, &mut |_| Ok(()));
        let churned = churners.join().expect("churn thread");
        let all_closed = util::poll_until(STEP, || stats.live.load(SeqCst) == 0);
        let s = &stats;
        let (reused, aborted) = (s.reused_slots.load(SeqCst), s.aborted.load(SeqCst));
        let same_pass = s.abort_and_accept_passes.load(SeqCst);
        server.stop().expect("reactor");
        figures(
            "churn",
            &[
                ("conns", (streamed.opened + churned.opened).to_string()),
                ("aborted_at_marker", aborted.to_string()),
                ("reset_mid", churned.reset_mid.to_string()),
                ("slot_reuses", reused.to_string()),
                ("passes_abort_and_accept", same_pass.to_string()),
                ("stale_probes", s.stale_probes.load(SeqCst).to_string()),
                ("stale_hits", s.stale_hits.load(SeqCst).to_string()),
                (
                    "bytes_checked",
                    (streamed.bytes_checked + churned.bytes_checked).to_string(),
                ),
                ("server_mismatches", s.mismatches.load(SeqCst).to_string()),
                ("lost", (streamed.lost + churned.lost).to_string()),
                ("panics", fault::panics().to_string()),
            ],
        );
        for (what, r) in [("streamers", &streamed), ("churners", &churned)] {
            assert!(r.errors == 0, "{what}: {:?}", r.first_errors);
            assert_eq!(r.lost, 0, "{what}");
        }
        assert_eq!(streamed.clean + streamed.one_byte, 48);
        assert_eq!(churned.opened, 3000);
        assert!(all_closed, "the server still holds connections");
        assert_eq!(s.mismatches.load(SeqCst), 0, "{:?}", s.first_error());
        assert_eq!(s.stale_hits.load(SeqCst), 0, "{:?}", s.first_error());
        assert!(s.first_error().is_none(), "{:?}", s.first_error());
        assert!(reused >= 2500, "only {reused} slot reuses");
        assert_eq!(
            aborted, churned.aborted,
            "server aborts vs. clients told so"
        );
        assert!(aborted >= 1000, "only {aborted} aborts");
        assert!(same_pass > 0, "no pass both accepted and aborted");
        assert_eq!(fault::panics(), 0, "panics in this process (any thread)");
    });
}

#[test]
fn ten_never_reading_echo_clients_stay_under_high_water_and_lose_nothing() {
    const SLOW: usize = 10;
    const FAST: usize = 10;
    run(Duration::from_secs(180), || {
        let _fds = util::fds_shared();
        let config = Config::default();
        let bound = config.high_water + config.read_chunk;
        let seed = util::seed(0x510E);
        let mut server = util::Server::start("127.0.0.1:0", config.clone(), Opts::default())
            .expect("echo server");
        // Each slow client writes until TCP pushes back and the server has
        // stopped reading it, and reads nothing.
        let mut slow = Vec::new();
        for i in 0..SLOW {
            let s = small_buffers(server.addr);
            s.set_nonblocking(true).unwrap();
            let me = s.local_addr().unwrap();
            let pattern = Pattern(seed ^ i as u64);
            let mut sent = 0u64;
            let mut chunk = vec![0; 64 * 1024];
            let pushed_back = util::poll_until(STEP, || loop {
                pattern.fill(sent, &mut chunk);
                match (&s).write(&chunk) {
                    Ok(n) => sent += n as u64,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        let stats = server.stats();
                        let paused = stats
                            .conn_of(me)
                            .is_some_and(|c| c.max_pending >= config.high_water);
                        return paused;
                    }
                    Err(e) => panic!("slow client {i}: {e}"),
                }
            });
            assert!(
                pushed_back,
                "slow client {i} was never pushed back ({sent} bytes sent)"
            );
            slow.push((s, me, pattern, sent));
        }
        // Everyone else gets everything, in order, meanwhile.
        let fast: Vec<_> = (0..FAST)
            .map(|i| {
                let s = util::connect(server.addr);
                let data = Rng::fork(seed, 100 + i as u64).bytes(256 * 1024);
                thread::spawn(move || echo_exchange(s, data))
            })
            .collect();
        for (i, f) in fast.into_iter().enumerate() {
            f.join()
                .unwrap()
                .unwrap_or_else(|e| panic!("fast client {i}: {e}"));
        }
        let mut most = 0;
        {
            let stats = server.stats();
            for (i, (_, me, _, sent)) in slow.iter().enumerate() {
                let c = stats.conn_of(*me).expect("slow client accepted");
                assert!(
                    c.max_pending <= bound,
                    "slow client {i}: {} bytes pending, bound {bound} ({sent} sent)",
                    c.max_pending
                );
                most = most.max(c.max_pending);
            }
            assert!(stats.max_pending <= bound, "some client passed {bound}");
        }
        // The slow ones finally read: every byte they sent comes back.
        let (mut total, mut lost) = (0, 0);
        for (i, (s, _, pattern, sent)) in slow.iter().enumerate() {
            s.set_nonblocking(false).unwrap();
            util::shutdown_write(s).unwrap();
            let back = util::read_to_eof_deadline(s, *sent as usize, Instant::now() + STEP)
                .unwrap_or_else(|e| panic!("slow client {i}: {e}"));
            pattern.check("slow client echo", 0, &back).unwrap();
            lost += *sent - back.len() as u64;
            total += sent;
        }
        drop(slow);
        server.wait_until(STEP, "all closed", |s| s.live == 0);
        server.stop_and_join(STEP);
        figures(
            "slow_echo",
            &[
                ("never_reading", SLOW.to_string()),
                ("others", FAST.to_string()),
                ("slow_bytes_held_back", total.to_string()),
                ("peak_pending", most.to_string()),
                ("bound", bound.to_string()),
                ("max_outb", config.max_outb.to_string()),
                ("lost", lost.to_string()),
                (
                    "peak_rss_kib",
                    fault::peak_rss_kib("self").unwrap_or(0).to_string(),
                ),
            ],
        );
        assert_eq!(lost, 0, "bytes the slow clients sent and did not get back");
    });
}

#[test]
fn ten_never_reading_chat_clients_are_cut_off_and_the_rest_hear_everything() {
    const SLOW: usize = 10;
    const MAX_OUTPUT: usize = 32 * 1024;
    // Lines the talker may be ahead of the slower reader: 16 KiB of the
    // 32 KiB cap. (32 lines of 1,007 bytes left under 200 bytes for the
    // notices, and a reader whose writes paused for a moment was cut.)
    const WINDOW: usize = 16;
    const MAX_LINES: usize = 20_000;
    run(Duration::from_secs(180), || {
        let _fds = util::fds_shared();
        let config = ChatConfig {
            // Every join and leave on its own line (the budget of notice
            // storms is tested in tests/hardening.rs).
            notices_per_sec: u32::MAX,
            max_output: MAX_OUTPUT,
            lines_per_sec: 1e6,
            burst: 1e6,
            ..ChatConfig::default()
        };
        let (watch, peak) = Watch::new(ChatServer::new(config.clone()));
        let server = fault::run_server(watch, config.reactor_config(), "127.0.0.1:0");
        let mut talker = LineClient::join(server.addr);
        talker.nick("talker");
        let mut readers: Vec<LineClient> = (0..2)
            .map(|k| {
                let mut r = LineClient::join(server.addr);
                r.nick(&format!("reader{k}"));
                r
            })
            .collect();
        let (mut slow_names, mut held_open) = (Vec::new(), Vec::new());
        for i in 0..SLOW {
            let mut z = never_reading(server.addr);
            let welcome = z.line();
            assert!(welcome.starts_with("* welcome"), "{welcome}");
            z.nick(&format!("slow{i}"));
            slow_names.push(z.name.clone());
            held_open.push(z.stream); // never read again
        }
        // Everyone has heard every join and nick; sync so that relayed lines start clean.
        for r in readers.iter_mut().chain([&mut talker]) {
            r.sync();
        }
        let pad = "p".repeat(1000);
        let line_of = |i: usize| format!("{i:06} {pad}");
        let progress = Arc::new((Mutex::new(vec![0usize; 2]), std::sync::Condvar::new()));
        let cut = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let workers: Vec<_> = readers
            .into_iter()
            .enumerate()
            .map(|(k, mut r)| {
                let (progress, cut, pad, slow_names) = (
                    progress.clone(),
                    cut.clone(),
                    pad.clone(),
                    slow_names.clone(),
                );
                thread::spawn(move || {
                    let (mut count, mut left) = (0, Vec::new());
                    loop {
                        let line = r.line();
                        if line == "<talker> END" {
                            return (count, left);
                        }
                        if let Some(name) = line
                            .strip_prefix("* ")
                            .and_then(|l| l.strip_suffix(" left (too slow)"))
                        {
                            assert!(slow_names.iter().any(|n| n == name), "reader{k}: {line}");
                            left.push(name.to_string());
                            cut.fetch_add(1, SeqCst);
                        } else {
                            assert_eq!(line, format!("<talker> {count:06} {pad}"), "reader{k}");
                            count += 1;
                        }
                        let (lock, cv) = &*progress;
                        lock.lock().unwrap()[k] = count;
                        cv.notify_all();
                    }
                })
            })
            .collect();
        let (lock, cv) = &*progress;
        let mut sent = 0;
        let mut sent_at_cut = None;
        loop {
            let mut seen = lock.lock().unwrap();
            while seen.iter().min().unwrap() + WINDOW <= sent {
                let (guard, t) = cv.wait_timeout(seen, STEP).unwrap();
                assert!(!t.timed_out(), "readers stalled at {:?} of {sent}", *guard);
                seen = guard;
            }
            drop(seen);
            if cut.load(SeqCst) == 2 * SLOW {
                let at = *sent_at_cut.get_or_insert(sent);
                if sent >= at + 100 {
                    break;
                }
            }
            assert!(sent < MAX_LINES, "not every slow client was cut off");
            talker.send(format!("{}\n", line_of(sent)));
            sent += 1;
        }
        talker.send("END\n");
        let (mut missed, mut cut_off) = (0, usize::MAX);
        let mut heard_leave = Vec::new();
        for w in workers {
            let (count, mut left) = w.join().expect("reader");
            missed += sent - count;
            left.sort();
            cut_off = cut_off.min(left.len());
            heard_leave.push(left);
        }
        drop(held_open);
        let peak = peak.load(SeqCst);
        assert!(
            peak <= MAX_OUTPUT,
            "pending output {peak} passed {MAX_OUTPUT}"
        );
        server.stop().expect("chat server");
        figures(
            "slow_chat",
            &[
                ("never_reading", SLOW.to_string()),
                ("cut_off", cut_off.to_string()),
                ("lines", sent.to_string()),
                ("lines_missed", missed.to_string()),
                ("peak_pending", peak.to_string()),
                ("max_output", MAX_OUTPUT.to_string()),
            ],
        );
        assert_eq!(missed, 0, "lines the readers missed");
        let mut want = slow_names.clone();
        want.sort();
        for (k, left) in heard_leave.iter().enumerate() {
            assert_eq!(left, &want, "reader{k}: who left as too slow");
        }
    });
}
