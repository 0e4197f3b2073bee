//! Timers (`call_later`, `call_every`, cancellation, timers of a closed
//! connection) and idle timeouts.

mod util;

use mio_selectors::reactor::{Idle, TimerId};
use mio_selectors::{CloseReason, Config, Reactor};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};
#[allow(unused_imports)]
use util::probe::*;
#[allow(unused_imports)]
use util::regress::*;
use util::{
    check_bytes, connect, read_exact_deadline, with_deadline, write_all_deadline, IO_TIMEOUT,
};

const MARK: u64 = 1_000;

fn idle_rig(kind: Idle, timeout: Duration, echo_input: bool) -> (Rig, SocketAddr) {
    let spec = if echo_input { echo() } else { silent() };
    let spec = spec.hook(move |cx, ev, _| {
        if let util::probe::Ev::Accepted { id, .. } = ev {
            cx.set_idle_timeout(*id, kind, Some(timeout));
        }
    });
    Rig::start(spec, |r| {
        let id = r.listen("127.0.0.1:0")?;
        r.local_addr(id)
    })
}

/// Sends one byte every `pace` (reading any echo) for `active`, or until
/// EOF; returns when EOF came, if it did, and when the last byte was sent.
/// The pace is the quantity under test, so it is timed with a read timeout
/// (and a sleep for the rest of it after an echo).
fn trickle(s: &TcpStream, pace: Duration, active: Duration) -> (Option<Instant>, Instant) {
    let until = Instant::now() + active;
    let mut last = Instant::now();
    while Instant::now() < until {
        (&*s).write_all(b".").expect("trickle write");
        last = Instant::now();
        s.set_read_timeout(Some(pace)).unwrap();
        let mut buf = [0; 64];
        match (&*s).read(&mut buf) {
            Ok(0) => return (Some(Instant::now()), last),
            Ok(_) => {
                // Echo: wait out the rest of the pace.
                let left = pace.saturating_sub(last.elapsed());
                if !left.is_zero() {
                    thread::sleep(left); // the client's pace, the quantity under test
                }
            }
            Err(e) if util::is_timeout(&e) => {}
            Err(e) => panic!("trickle read: {e}"),
        }
    }
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    (None, last)
}

/// Expects EOF, then closes; returns when EOF came.
fn eof_time(s: TcpStream) -> Instant {
    let mut echoed = Vec::new();
    let deadline = Instant::now() + util::probe::WAIT;
    loop {
        s.set_read_timeout(Some(deadline.saturating_duration_since(Instant::now())))
            .unwrap();
        let mut buf = [0; 256];
        match (&s).read(&mut buf) {
            Ok(0) => return Instant::now(),
            Ok(n) => echoed.extend_from_slice(&buf[..n]), // late echo of the trickle
            Err(e) => panic!("waiting for the idle close: {e}"),
        }
    }
}

/// A client trickling bytes at `pace` for `active` keeps (or does not keep)
/// a connection with the given idle timeout open; once it stops, the
/// connection closes about one timeout later.
fn idle_case(kind: Idle, echo_input: bool, kept_alive: bool) {
    let timeout = Duration::from_millis(300);
    let pace = Duration::from_millis(50);
    let active = Duration::from_millis(1_000);
    let (mut rig, addr) = idle_rig(kind, timeout, echo_input);
    let start = Instant::now();
    let client = connect(addr);
    let (_, _, acc) = rig.wait(util::probe::WAIT, "accept", is_accepted);
    let id = accepted_id(acc);
    let (eof, last) = trickle(&client, pace, active);
    if kept_alive {
        assert!(
            eof.is_none(),
            "{kind:?}: closed after {:?} despite activity",
            eof.map(|t| t - start)
        );
        rig.drain();
        assert_eq!(
            rig.count(|ev| matches!(ev, util::probe::Ev::Lost(..))),
            0,
            "{}",
            rig.dump()
        );
        let idle_for = eof_time(client) - last;
        assert!(
            idle_for >= timeout - Duration::from_millis(20)
                && idle_for < timeout + util::probe::WAIT,
            "{kind:?}: closed {idle_for:?} after the last byte, timeout {timeout:?}"
        );
    } else {
        let took = eof.expect("closed while the client was active") - start;
        assert!(
            took >= timeout - Duration::from_millis(20) && took < timeout + util::probe::WAIT,
            "{kind:?}: closed after {took:?}, timeout {timeout:?}"
        );
        drop(client);
    }
    rig.wait(
        util::probe::WAIT,
        "idle close",
        |ev| matches!(ev, util::probe::Ev::Lost(i, Why::IdleTimeout) if *i == id),
    );
    rig.stop();
}

#[test]
fn call_later_fires_once_with_its_tag_and_connection() {
    with_deadline(util::probe::LIMIT, || {
        let spec = silent().hook(|cx, ev, _| match ev {
            util::probe::Ev::Accepted { id, .. } => {
                cx.call_later(Duration::from_millis(50), Some(*id), 7);
            }
            util::probe::Ev::Timer(_, 7) => {
                cx.call_later(Duration::from_millis(200), None, MARK);
            }
            _ => {}
        });
        let (mut rig, addr) = Rig::start(spec, |r| {
            let id = r.listen("127.0.0.1:0")?;
            r.local_addr(id)
        });
        let client = connect(addr);
        let (_, accepted_at, acc) = rig.wait(util::probe::WAIT, "accept", is_accepted);
        let id = accepted_id(acc);
        let (_, fired_at, ev) = rig.wait(util::probe::WAIT, "timer 7", |ev| is_timer(ev, 7));
        assert!(
            matches!(ev, util::probe::Ev::Timer(Some(i), 7) if i == id),
            "{ev:?}"
        );
        let after = fired_at - accepted_at;
        assert!(after >= Duration::from_millis(45), "fired after {after:?}");
        rig.wait(util::probe::WAIT, "marker", |ev| is_timer(ev, MARK));
        assert_eq!(rig.count(|ev| is_timer(ev, 7)), 1, "{}", rig.dump());
        drop(client); // a graceful stop need not wait for it
        rig.stop();
    });
}

#[test]
fn call_every_repeats_until_cancelled_then_stops() {
    with_deadline(util::probe::LIMIT, || {
        const START: u64 = 1;
        const TICK: u64 = 2;
        let period = Duration::from_millis(25);
        let (mut ticker, mut ticks) = (None::<TimerId>, 0);
        let spec = silent().hook(move |cx, ev, emit| match ev {
            util::probe::Ev::Timer(None, START) => ticker = Some(cx.call_every(period, None, TICK)),
            util::probe::Ev::Timer(None, TICK) => {
                ticks += 1;
                if ticks == 3 {
                    let t = ticker.expect("ticker");
                    emit.note("cancel", cx.cancel_timer(t) as i64);
                    emit.note("cancel again", cx.cancel_timer(t) as i64);
                    // Six more periods: enough for ticks that were not stopped.
                    cx.call_later(period * 6, None, MARK);
                }
            }
            _ => {}
        });
        let (mut rig, ()) = Rig::start(spec, |r| {
            r.with_context(|cx| cx.call_later(Duration::ZERO, None, START));
            Ok(())
        });
        rig.wait(util::probe::WAIT, "marker", |ev| is_timer(ev, MARK));
        rig.stop();
        let times: Vec<Instant> = rig
            .log
            .iter()
            .filter(|(_, ev)| is_timer(ev, TICK))
            .map(|(t, _)| *t)
            .collect();
        assert_eq!(times.len(), 3, "ticks: {}", rig.dump());
        for pair in times.windows(2) {
            let gap = pair[1] - pair[0];
            assert!(
                gap >= period - Duration::from_millis(3),
                "ticks {gap:?} apart"
            );
        }
        assert_eq!(rig.note("cancel"), Some(1));
        assert_eq!(rig.note("cancel again"), Some(0));
    });
}

#[test]
fn cancelled_call_later_never_fires() {
    with_deadline(util::probe::LIMIT, || {
        const START: u64 = 1;
        const NEVER: u64 = 2;
        const CANCEL: u64 = 3;
        let (mut pending, mut canceller) = (None::<TimerId>, None::<TimerId>);
        let spec = silent().hook(move |cx, ev, emit| match ev {
            util::probe::Ev::Timer(None, START) => {
                pending = Some(cx.call_later(Duration::from_millis(100), None, NEVER));
                canceller = Some(cx.call_later(Duration::from_millis(20), None, CANCEL));
                cx.call_later(Duration::from_millis(300), None, MARK);
            }
            util::probe::Ev::Timer(None, CANCEL) => {
                emit.note("cancel pending", cx.cancel_timer(pending.unwrap()) as i64);
            }
            util::probe::Ev::Timer(None, MARK) => {
                // A one-shot that fired cannot be cancelled.
                emit.note("cancel fired", cx.cancel_timer(canceller.unwrap()) as i64);
            }
            _ => {}
        });
        let (mut rig, ()) = Rig::start(spec, |r| {
            r.with_context(|cx| {
                // Cancelled before the loop even runs.
                let t = cx.call_later(Duration::from_millis(10), None, NEVER);
                assert!(cx.cancel_timer(t));
                assert!(!cx.cancel_timer(t));
                cx.call_later(Duration::ZERO, None, START)
            });
            Ok(())
        });
        rig.wait(util::probe::WAIT, "marker", |ev| is_timer(ev, MARK));
        rig.stop();
        assert_eq!(rig.note("cancel pending"), Some(1));
        assert_eq!(rig.note("cancel fired"), Some(0));
        assert_eq!(rig.count(|ev| is_timer(ev, NEVER)), 0, "{}", rig.dump());
    });
}

#[test]
fn a_connections_timers_go_with_it() {
    with_deadline(util::probe::LIMIT, || {
        let mut first = true;
        let spec = silent().hook(move |cx, ev, _| match ev {
            util::probe::Ev::Accepted { id, .. } if first => {
                first = false;
                cx.call_later(Duration::from_millis(600), Some(*id), 8);
                cx.call_every(Duration::from_millis(20), Some(*id), 9);
            }
            util::probe::Ev::Lost(..) => {
                cx.call_later(Duration::from_millis(700), None, MARK);
            }
            _ => {}
        });
        let (mut rig, addr) = Rig::start(spec, |r| {
            let id = r.listen("127.0.0.1:0")?;
            r.local_addr(id)
        });
        let a = connect(addr);
        let (_, _, acc) = rig.wait(util::probe::WAIT, "accept", is_accepted);
        let a_id = accepted_id(acc);
        rig.wait(
            util::probe::WAIT,
            "a tick",
            |ev| matches!(ev, util::probe::Ev::Timer(Some(i), 9) if *i == a_id),
        );
        drop(a);
        let (lost, _, _) = rig.wait(
            util::probe::WAIT,
            "a closed",
            |ev| matches!(ev, util::probe::Ev::Lost(i, _) if *i == a_id),
        );
        // An ordering, not a clock: A closed before its one-shot was due
        // (else it fired on A, legitimately, and this test checks nothing).
        assert_eq!(
            rig.count(|ev| is_timer(ev, 8)),
            0,
            "the 600 ms one-shot fired while A was open: {}",
            rig.dump()
        );
        // A new connection may take the slot: the old timers must not reach it.
        let b = connect(addr);
        rig.wait(util::probe::WAIT, "b accepted", is_accepted);
        rig.wait(util::probe::WAIT, "marker", |ev| is_timer(ev, MARK));
        drop(b); // a graceful stop need not wait for it
        rig.stop();
        assert_eq!(rig.count(|ev| is_timer(ev, 8)), 0, "{}", rig.dump());
        let late_ticks = rig.log[lost..]
            .iter()
            .filter(|(_, ev)| is_timer(ev, 9))
            .count();
        assert_eq!(late_ticks, 0, "ticks after the close: {}", rig.dump());
    });
}

#[test]
fn idle_read_timeout_closes_a_silent_client_and_none_removes_it() {
    with_deadline(util::probe::LIMIT, || {
        let timeout = Duration::from_millis(200);
        let mut second = None;
        let mut seen = 0;
        let spec = silent().hook(move |cx, ev, emit| match ev {
            util::probe::Ev::Accepted { id, .. } => {
                seen += 1;
                cx.set_idle_timeout(*id, Idle::Read, Some(timeout));
                if seen == 2 {
                    // The second one's timeout is removed at once.
                    cx.set_idle_timeout(*id, Idle::Read, None);
                    second = Some(*id);
                    cx.call_later(timeout * 3, None, MARK);
                }
            }
            util::probe::Ev::Timer(None, MARK) => {
                let open = cx.is_open(second.expect("second accepted"));
                emit.note("second open at 3x timeout", open as i64)
            }
            _ => {}
        });
        let (mut rig, addr) = Rig::start(spec, |r| {
            let id = r.listen("127.0.0.1:0")?;
            r.local_addr(id)
        });
        let start = Instant::now();
        let first = connect(addr);
        let (_, _, acc) = rig.wait(util::probe::WAIT, "first accepted", is_accepted);
        let first_id = accepted_id(acc);
        let second = connect(addr);
        rig.wait(util::probe::WAIT, "second accepted", is_accepted);
        let eof = eof_time(first) - start;
        assert!(
            eof >= timeout - Duration::from_millis(20) && eof < timeout + Duration::from_secs(3),
            "idle close after {eof:?}, timeout {timeout:?}"
        );
        rig.wait(
            util::probe::WAIT,
            "idle close",
            |ev| matches!(ev, util::probe::Ev::Lost(i, Why::IdleTimeout) if *i == first_id),
        );
        assert_eq!(rig.wait_note("second open at 3x timeout"), 1);
        drop(second); // a graceful stop need not wait for it
        rig.stop();
    });
}

#[test]
fn idle_read_timeout_is_kept_off_by_input() {
    with_deadline(util::probe::LIMIT, || idle_case(Idle::Read, false, true));
}

#[test]
fn idle_write_timeout_closes_a_connection_that_only_reads() {
    with_deadline(util::probe::LIMIT, || idle_case(Idle::Write, false, false));
}

#[test]
fn idle_write_timeout_is_kept_off_by_output() {
    with_deadline(util::probe::LIMIT, || idle_case(Idle::Write, true, true));
}

#[test]
fn idle_both_timeout_is_kept_off_by_input_alone() {
    with_deadline(util::probe::LIMIT, || idle_case(Idle::Both, false, true));
}

/// One round trip through an echo server.
fn echo_round_trip(addr: SocketAddr, within: Duration) -> Result<(), String> {
    let c = connect(addr);
    let deadline = Instant::now() + within;
    write_all_deadline(&c, b"ping", deadline).map_err(|e| format!("write: {e}"))?;
    let mut got = [0; 4];
    read_exact_deadline(&c, &mut got, deadline).map_err(|e| format!("read the echo: {e}"))?;
    check_bytes("echo", &got, b"ping")
}

/// Regression: a timer set with no delay from `on_timer` kept the loop from ever polling again.
/// `call_later(ZERO)` from `on_timer`, forever (asyncio's `call_soon` as a
/// yield): each timer waits for the next pass, so the loop still polls,
/// serves clients and sees `stop`. Before the fix, a timer set during the
/// pass that fires timers was due in that same pass: `run` never polled again.
#[test]
fn timer_set_with_no_delay_from_on_timer_still_lets_the_loop_poll() {
    with_deadline(util::regress::LIMIT, || {
        let fired = Arc::new(AtomicU64::new(0));
        let (tx, _rx) = mpsc::channel();
        let echo = Echo {
            yields: Some(fired.clone()),
            ..Echo::new(tx)
        };
        let mut reactor = Reactor::new(echo, Config::default()).unwrap();
        let lid = reactor.listen("127.0.0.1:0").unwrap();
        let addr = reactor.local_addr(lid).unwrap();
        reactor.with_context(|cx| cx.call_later(Duration::ZERO, None, 7));
        let mut running = spawn_reactor(reactor);

        if let Err(e) = echo_round_trip(addr, SHORT) {
            panic!(
                "a client was not served while a zero-delay timer chain ran \
                 ({} timers fired): {e}",
                fired.load(Ordering::Relaxed)
            );
        }
        let before = fired.load(Ordering::Relaxed);
        assert!(before > 0, "the timer chain never started");
        running
            .stop_and_join(SHORT)
            .expect("stop ends run while a zero-delay timer chain runs");
        let after = fired.load(Ordering::Relaxed);
        eprintln!("{before} timers fired by the echo, {after} by the stop");
    });
}

/// Regression: `Duration::MAX` timer delays overflowed.
/// A timer a "forever" away is accepted, and the loop still runs and stops.
#[test]
fn timers_of_duration_max_do_not_overflow() {
    with_deadline(util::regress::LIMIT, || {
        let (tx, _rx) = mpsc::channel();
        let mut reactor = Reactor::new(Echo::new(tx), Config::default()).unwrap();
        let lid = reactor.listen("127.0.0.1:0").unwrap();
        let addr = reactor.local_addr(lid).unwrap();
        reactor.with_context(|cx| {
            cx.call_later(Duration::MAX, None, 1);
            cx.call_every(Duration::MAX, None, 2);
        });
        let mut running = spawn_reactor(reactor);
        echo_round_trip(addr, util::regress::WAIT).unwrap();
        running.stop_and_join(util::regress::WAIT).unwrap();
    });
}

/// Regression: a `Duration::MAX` idle timeout overflowed.
/// An idle timeout of `Duration::MAX` is set, and does not fire: the
/// connection ends when the client leaves.
#[test]
fn idle_timeout_of_duration_max_does_not_overflow() {
    with_deadline(util::regress::LIMIT, || {
        let (tx, rx) = mpsc::channel();
        let echo = Echo {
            idle: Some(Duration::MAX),
            ..Echo::new(tx)
        };
        let mut reactor = Reactor::new(echo, Config::default()).unwrap();
        let lid = reactor.listen("127.0.0.1:0").unwrap();
        let addr = reactor.local_addr(lid).unwrap();
        let mut running = spawn_reactor(reactor);
        if let Err(e) = echo_round_trip(addr, util::regress::WAIT) {
            panic!("{e}: {}", running.why_silent());
        }
        // An accepted connection gets connection_made too (issue 9).
        match next_event(&rx, &mut running, util::regress::WAIT, "connection_made") {
            util::regress::Ev::Made(_) => {}
            other => panic!("expected connection_made, got {other:?}"),
        }
        match next_event(&rx, &mut running, util::regress::WAIT, "connection_lost") {
            util::regress::Ev::Lost { reason, .. } => {
                assert_eq!(reason, CloseReason::PeerClosed.to_string())
            }
            other => panic!("expected connection_lost, got {other:?}"),
        }
        running.stop_and_join(util::regress::WAIT).unwrap();
    });
}
