//! The `Handler`'s callbacks: which are called, in which order, with what.

mod util;

use mio_selectors::{Config, ConnId};
use std::io::Write;
use std::net::{Shutdown, SocketAddr};
use std::thread;
use std::time::Instant;
#[allow(unused_imports)]
use util::probe::*;
use util::{connect, read_exact_deadline, read_to_eof_deadline, with_deadline, write_all_deadline};

/// Checks one connection's calls against the documented order: an accepted
/// one `Accepted Made X* [Eof Y*] Lost`, an outgoing one `Made X* [Eof Y*]
/// Lost` or only `ConnectFailed`, where X is data, timers, pauses and
/// resumes and Y the same without data; pauses and resumes alternate,
/// pause first.
fn check_call_order(id: ConnId, calls: &[&Ev], outgoing: bool) {
    let fail = |why: &str| panic!("{id}: {why}: {calls:?}");
    if let [Ev::ConnectFailed(..)] = calls {
        return assert!(outgoing, "{id}: connect_failed for an accepted connection");
    }
    let mut rest = calls;
    if !outgoing {
        match rest.split_first() {
            Some((Ev::Accepted { .. }, tail)) => rest = tail,
            _ => fail("an accepted connection must start with accept_wrapper"),
        }
    }
    match rest.split_first() {
        Some((Ev::Made(_), tail)) => rest = tail,
        _ => fail("connection_made must come first"),
    }
    match rest.split_last() {
        Some((Ev::Lost(..), body)) => rest = body,
        _ => fail("connection_lost must come last"),
    }
    let (mut eof, mut paused) = (false, false);
    for ev in rest {
        match ev {
            Ev::Data(..) if eof => fail("service_connection after eof_received"),
            Ev::Data(..) | Ev::Timer(..) => {}
            Ev::Eof(_) if eof => fail("eof_received twice"),
            Ev::Eof(_) => eof = true,
            Ev::Pause(_) if paused => fail("pause_writing twice without resume_writing"),
            Ev::Resume(..) if !paused => fail("resume_writing without pause_writing"),
            Ev::Pause(_) | Ev::Resume(..) => paused = !paused,
            _ => fail("a call out of place"),
        }
    }
}

/// Every kind of connection life in one reactor (a pause and resume, a
/// peer's EOF, an outgoing connection to ourselves, a refused connect, a
/// shutdown) and each one's calls checked against the documented order.
#[test]
fn handler_calls_follow_the_documented_order() {
    with_deadline(LIMIT, || {
        let config = Config {
            high_water: 4096,
            low_water: 1024,
            ..Config::default()
        };
        let refused = SocketAddr::from(([127, 0, 0, 1], closed_port()));
        let (mut rig, (addr, outgoing)) = Rig::start(echo().config(config), move |r| {
            let lid = r.listen("127.0.0.1:0")?;
            let addr = r.local_addr(lid)?;
            let ours = r.connect(addr, ())?;
            let failed = r.connect(refused, ())?;
            Ok((addr, [ours, failed]))
        });
        // A slow reader: its echo backs up past high water, then drains.
        let deadline = Instant::now() + WAIT;
        let slow = connect(addr);
        let payload = vec![b'p'; 256 * 1024];
        let writer = {
            let w = slow.try_clone().unwrap();
            let payload = payload.clone();
            thread::spawn(move || write_all_deadline(&w, &payload, deadline))
        };
        rig.wait(WAIT, "pause_writing", |ev| matches!(ev, Ev::Pause(_)));
        let mut echoed = vec![0; payload.len()];
        read_exact_deadline(&slow, &mut echoed, deadline).unwrap();
        assert!(echoed == payload, "the echo differs");
        writer.join().unwrap().unwrap();
        slow.shutdown(Shutdown::Write).unwrap();
        read_to_eof_deadline(&slow, 0, deadline).unwrap();
        // A quick one: a line, then EOF.
        let mut quick = connect(addr);
        quick.write_all(b"hi\n").unwrap();
        let mut line = [0; 3];
        read_exact_deadline(&quick, &mut line, deadline).unwrap();
        assert_eq!(&line, b"hi\n");
        quick.shutdown(Shutdown::Write).unwrap();
        read_to_eof_deadline(&quick, 0, deadline).unwrap();
        rig.wait(WAIT, "connect_failed", |ev| {
            matches!(ev, Ev::ConnectFailed(..))
        });
        rig.stop(); // the outgoing connection and its accepted side end in the shutdown
        let mut ids: Vec<ConnId> = Vec::new();
        for (_, ev) in &rig.log {
            let id = match ev {
                Ev::Accepted { id, .. } | Ev::Made(id) | Ev::Data(id, _) | Ev::Eof(id) => *id,
                Ev::Lost(id, _) | Ev::ConnectFailed(id, _) | Ev::Pause(id) => *id,
                Ev::Resume(id, _) => *id,
                _ => continue,
            };
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        assert_eq!(ids.len(), 5, "two outgoing, three accepted: {}", rig.dump());
        for id in ids {
            let calls: Vec<&Ev> = rig
                .log
                .iter()
                .map(|(_, ev)| ev)
                .filter(|ev| match ev {
                    Ev::Accepted { id: i, .. } | Ev::Made(i) | Ev::Data(i, _) | Ev::Eof(i) => {
                        *i == id
                    }
                    Ev::Lost(i, _) | Ev::ConnectFailed(i, _) | Ev::Pause(i) => *i == id,
                    Ev::Resume(i, _) => *i == id,
                    Ev::Timer(i, _) => *i == Some(id),
                    _ => false,
                })
                .collect();
            check_call_order(id, &calls, outgoing.contains(&id));
        }
        assert!(
            rig.count(|ev| matches!(ev, Ev::Resume(..))) >= 1,
            "{}",
            rig.dump()
        );
    });
}
