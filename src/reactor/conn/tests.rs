//! Unit tests of `Conn`'s lifecycle and backpressure, over a real socket pair.

use super::*;
use std::io::Write;
use std::os::unix::net::UnixStream;

/// A connection over one end of a socket pair, and the peer's end.
fn pair() -> (Conn<()>, UnixStream) {
    let (ours, peer) = UnixStream::pair().unwrap();
    ours.set_nonblocking(true).unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let stream = Stream::Unix(mio::net::UnixStream::from_std(ours));
    let addr = PeerAddr::Inet(([127, 0, 0, 1], 1).into());
    (Conn::new(stream, addr, 1, State::Open), peer)
}

fn pool() -> BufPool {
    BufPool::new(64, 4)
}

const LINGER: Duration = Duration::from_secs(2);

#[test]
fn read_gives_data_then_drained_then_eof() {
    let (mut c, mut peer) = pair();
    let (mut pool, now) = (pool(), Instant::now());
    c.note(true, false, false);
    assert!(c.wants_read());
    peer.write_all(b"hello").unwrap();
    assert!(matches!(c.read(&mut pool, 64, now), Read::Data(5)));
    assert_eq!(c.inb.as_slice(), b"hello");
    assert!(!c.wants_read(), "a short read proves the socket drained");
    c.note(true, false, false);
    assert!(matches!(c.read(&mut pool, 64, now), Read::Drained));
    drop(peer);
    c.note(true, false, true);
    let eof = c.read(&mut pool, 64, now);
    assert!(matches!(eof, Read::Eof { lingering: false }), "{eof:?}");
    assert!(!c.wants_read());
    assert!(matches!(c.close_reason(), CloseReason::PeerClosed));
}

#[test]
fn graceful_close_flushes_sends_fin_lingers_and_finishes_on_the_peers_fin() {
    let (mut c, mut peer) = pair();
    let (mut pool, now) = (pool(), Instant::now());
    c.queue(Output::Bytes(b"bye\n"), &mut pool, 1024, 512)
        .unwrap();
    assert!(matches!(
        c.close(CloseReason::Closed, &mut pool),
        Closing::Started
    ));
    assert!(!c.is_open());
    assert!(matches!(
        c.queue(Output::Bytes(b"x"), &mut pool, 1024, 512),
        Err(Error::NoSuchConnection)
    ));
    assert!(matches!(
        c.close(CloseReason::Closed, &mut pool),
        Closing::Ignored
    ));
    let flushed = c.flush(&mut pool, now, LINGER);
    let Flushed::Lingering { until, .. } = flushed else {
        panic!("expected lingering, got {flushed:?}")
    };
    assert_eq!(until, now + LINGER);
    let mut got = Vec::new();
    peer.read_to_end(&mut got).unwrap(); // ends at our FIN
    assert_eq!(got, b"bye\n");
    assert_eq!(c.linger_due(now, LINGER), Linger::Stale, "not due yet");
    peer.write_all(b"late input").unwrap();
    drop(peer);
    c.note(true, false, true);
    assert!(c.wants_read(), "lingering reads on, to see the FIN");
    assert!(matches!(c.read(&mut pool, 64, now), Read::Discarded(10)));
    assert!(matches!(
        c.read(&mut pool, 64, now),
        Read::Eof { lingering: true }
    ));
    assert!(c.finish(&mut pool) && c.is_dead());
    assert!(matches!(c.release(&mut pool), Some(CloseReason::Closed)));
}

#[test]
fn a_close_after_the_peers_eof_is_done_once_flushed() {
    let (mut c, peer) = pair();
    let (mut pool, now) = (pool(), Instant::now());
    peer.shutdown(Shutdown::Write).unwrap();
    c.note(true, false, true);
    assert!(matches!(c.read(&mut pool, 64, now), Read::Eof { .. }));
    let reason = c.close_reason();
    assert!(matches!(c.close(reason, &mut pool), Closing::Started));
    assert!(matches!(c.flush(&mut pool, now, LINGER), Flushed::Done));
    assert!(c.finish(&mut pool));
    assert!(matches!(
        c.release(&mut pool),
        Some(CloseReason::PeerClosed)
    ));
}

#[test]
fn high_water_pauses_once_low_water_resumes_and_max_refuses() {
    let (mut c, mut peer) = pair();
    let (mut pool, now) = (pool(), Instant::now());
    c.queue(Output::Bytes(&[1; 100]), &mut pool, 300, 100)
        .unwrap();
    assert!(c.is_writing_paused());
    assert!(c.take_pause(), "reported once");
    assert!(!c.take_pause());
    let refused = c.queue(Output::Bytes(&[2; 201]), &mut pool, 300, 100);
    assert!(matches!(refused, Err(Error::OutputOverflow)));
    assert_eq!(c.pending(), 100, "nothing of a refused send is queued");
    assert_eq!(c.take_resume(10), None, "not drained yet");
    assert!(matches!(c.flush(&mut pool, now, LINGER), Flushed::Drained));
    let mut got = [0; 100];
    peer.read_exact(&mut got).unwrap();
    let resumed = c.take_resume(10).unwrap();
    assert!(resumed.tell, "the pause was reported, so is the resume");
    assert!(!c.is_writing_paused());
    assert_eq!(c.take_resume(10), None);
}

#[test]
fn a_pause_never_reported_is_not_resumed() {
    let (mut c, _peer) = pair();
    let mut pool = pool();
    c.queue(Output::Bytes(&[1; 100]), &mut pool, 300, 100)
        .unwrap();
    c.close(CloseReason::Closed, &mut pool);
    assert!(!c.take_pause(), "closing: nobody to tell");
    assert!(matches!(
        c.flush(&mut pool, Instant::now(), LINGER),
        Flushed::Lingering { .. }
    ));
    assert_eq!(
        c.take_resume(10),
        Some(Resumed {
            requeue: false,
            tell: false
        })
    );
}

#[test]
fn the_linger_deadline_extends_on_progress_and_gives_up_without() {
    let (mut c, _peer) = pair();
    let (mut pool, now) = (pool(), Instant::now());
    c.queue(Output::Bytes(&[1; 10]), &mut pool, 300, 200)
        .unwrap();
    c.close(CloseReason::Closed, &mut pool);
    assert_eq!(c.linger_due(now, LINGER), Linger::GaveUp(10));
    c.state = State::Closing {
        reason: CloseReason::Closed,
        unsent: 100,
    };
    assert_eq!(c.linger_due(now, LINGER), Linger::Extended(now + LINGER));
    assert_eq!(
        c.linger_due(now, LINGER),
        Linger::GaveUp(10),
        "no progress since"
    );
}

#[test]
fn a_close_while_connecting_waits_for_queued_output_or_kills() {
    let (mut c, _peer) = pair();
    let mut pool = pool();
    let timer = TimerId(7);
    c.state = State::Connecting { timer, close: None };
    assert!(matches!(
        c.close(CloseReason::Closed, &mut pool),
        Closing::Kill(_)
    ));
    c.queue(Output::Bytes(b"hi"), &mut pool, 300, 200).unwrap();
    assert!(matches!(
        c.close(CloseReason::Closed, &mut pool),
        Closing::Deferred
    ));
    assert!(matches!(
        c.flush(&mut pool, Instant::now(), LINGER),
        Flushed::Skipped
    ));
    match c.connected() {
        Connected::Made { timer: t, close } => {
            assert_eq!(t, timer);
            assert!(matches!(close, Some(CloseReason::Closed)));
        }
        other => panic!("expected made, got {other:?}"),
    }
    assert!(c.is_open());
}

#[test]
fn kill_drops_output_once() {
    let (mut c, _peer) = pair();
    let mut pool = pool();
    c.queue(Output::Bytes(b"lost"), &mut pool, 300, 200)
        .unwrap();
    assert!(c.kill(CloseReason::OutputOverflow, &mut pool));
    assert!(!c.kill(CloseReason::Closed, &mut pool), "dead already");
    assert_eq!(c.pending(), 0);
    assert!(!c.finish(&mut pool));
    assert!(matches!(
        c.release(&mut pool),
        Some(CloseReason::OutputOverflow)
    ));
}

#[test]
fn an_urgent_mark_makes_a_short_read_prove_nothing_until_would_block() {
    let (mut c, mut peer) = pair();
    let (mut pool, now) = (pool(), Instant::now());
    c.note(true, false, false);
    c.note_urgent();
    peer.write_all(b"abc").unwrap();
    assert!(matches!(c.read(&mut pool, 64, now), Read::Data(3)));
    assert!(
        c.wants_read(),
        "a short read at an urgent mark is not drained"
    );
    assert!(matches!(c.read(&mut pool, 64, now), Read::Drained));
    assert!(!c.wants_read());
    c.note(true, false, false);
    peer.write_all(b"def").unwrap();
    assert!(matches!(c.read(&mut pool, 64, now), Read::Data(3)));
    assert!(
        !c.wants_read(),
        "the mark was passed: short reads prove it again"
    );
}

#[test]
fn a_read_never_takes_more_than_the_room_below_the_output_cap() {
    let (mut c, _peer) = pair();
    let mut pool = pool();
    assert_eq!(c.read_room(64, 1024, 1000), 64);
    // High water at the cap: pending output 990 of 1000 leaves 10.
    c.queue(Output::Bytes(&[0; 990]), &mut pool, 1000, 1000)
        .unwrap();
    assert!(!c.is_writing_paused());
    assert_eq!(c.read_room(64, 1024, 1000), 10);
    c.queue(Output::Bytes(&[0; 9]), &mut pool, 1000, 1000)
        .unwrap();
    assert_eq!(c.read_room(64, 1024, 1000), 1);
    c.queue(Output::Bytes(&[0; 1]), &mut pool, 1000, 1000)
        .unwrap();
    assert_eq!(c.read_room(64, 1024, 1000), 0);
    assert!(c.is_writing_paused(), "no room: paused until low water");
}

#[test]
fn kill_with_output_pending_sends_none_of_it() {
    let (mut c, mut peer) = pair();
    let mut pool = pool();
    c.queue(Output::Bytes(b"never sent"), &mut pool, 1024, 512)
        .unwrap();
    assert!(c.kill(CloseReason::OutputOverflow, &mut pool));
    drop(c); // closes with SO_LINGER 0 (the TCP reset is tested in tests/hardening.rs)
    let mut got = Vec::new();
    let _ = peer.read_to_end(&mut got);
    assert!(got.is_empty(), "dropped output was not sent: {got:?}");
}

#[test]
fn the_close_reason_is_lent_out_of_a_lingering_connection_and_put_back() {
    let (mut c, _peer) = pair();
    let (mut pool, now) = (pool(), Instant::now());
    assert!(c.lingering_reason().is_none(), "not lingering");
    let _ = c.close(CloseReason::IdleTimeout, &mut pool);
    assert!(matches!(
        c.flush(&mut pool, now, LINGER),
        Flushed::Lingering { .. }
    ));
    let reason = c.lingering_reason().expect("lingering");
    assert!(matches!(reason, CloseReason::IdleTimeout));
    c.put_lingering_reason(reason);
    assert!(c.finish(&mut pool));
    assert!(matches!(
        c.release(&mut pool),
        Some(CloseReason::IdleTimeout)
    ));
}
