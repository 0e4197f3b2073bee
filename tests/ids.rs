//! Connection ids: a reused slab slot gets a new generation, and a closed
//! connection's id reaches nothing, from a callback or another thread.

mod util;

use mio_selectors::{Config, ConnId};
use std::io;
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};
#[allow(unused_imports)]
use util::echo_clients::*;
#[allow(unused_imports)]
use util::guard::*;
use util::{
    connect, expect_eof, key_gen, read_exact_deadline, write_all_deadline, Opts, Reason, Rng,
    Server, *,
};

#[test]
fn reused_slot_gets_a_new_generation_and_old_ids_are_dead() {
    run(|| {
        let mut rng = Rng::new(seed(0xEC40_0005));
        let opts = Opts {
            close_cmd: Some(b"close me"),
            probe_stale: true,
        };
        let mut server = Server::start("127.0.0.1:0", Config::default(), opts).unwrap();
        let addr = server.addr;
        let deadline = Instant::now() + CLIENT_TIME;
        let wait = Duration::from_secs(10);
        let mut gens = std::collections::HashSet::new();
        for round in 0..5 {
            // A: an echo, then "close me": the server aborts it.
            let a = connect(addr);
            let a_local = a.local_addr().unwrap();
            let n = rng.range(1, 4 * KIB);
            let msg = rng.bytes(n);
            write_all_deadline(&a, &msg, deadline).unwrap();
            let mut echo = vec![0; msg.len()];
            read_exact_deadline(&a, &mut echo, deadline).unwrap();
            check_bytes("A's echo", &echo, &msg).unwrap();
            let a_id = server
                .wait_for(wait, "A accepted", |s| s.by_peer.contains_key(&a_local))
                .by_peer[&a_local];
            write_all_deadline(&a, b"close me", deadline).unwrap();
            match read_to_eof_deadline(&a, 0, deadline) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
                Err(e) => panic!("round {round}: A after close me: {e}"),
            }
            let stats = server.wait_for(wait, "A lost", |s| s.lost_of(a_id).is_some());
            assert_eq!(stats.lost_of(a_id).unwrap().reason, Reason::Closed);
            assert!(stats.aborted.contains(&a_id));
            drop(stats);
            drop(a);

            // B: takes A's slot under a new generation.
            let b = connect(addr);
            let b_local = b.local_addr().unwrap();
            let b_id = server
                .wait_for(wait, "B accepted", |s| s.by_peer.contains_key(&b_local))
                .by_peer[&b_local];
            let ((a_key, a_gen), (b_key, b_gen)) = (key_gen(a_id), key_gen(b_id));
            assert_eq!(
                b_key, a_key,
                "round {round}: B ({b_id}) did not reuse A's slot ({a_id})"
            );
            assert_ne!(b_gen, a_gen, "round {round}: same slot, same generation");
            assert!(
                gens.insert(a_gen) && gens.insert(b_gen),
                "a generation came back"
            );
            assert_ne!(a_id, b_id);

            // Every read of B's makes the handler try A's id (send, close,
            // abort...); B must get exactly its own bytes, then EOF.
            let len = rng.range(16 * KIB, 256 * KIB);
            let data = Arc::new(rng.bytes(len));
            let pieces = rng.split(len, 12);
            echo_stream(b, data, pieces, None, &mut rng, deadline)
                .unwrap_or_else(|e| panic!("round {round}: B: {e}"));

            let stats = server.wait_for(wait, "B lost", |s| s.lost_of(b_id).is_some());
            assert_eq!(
                stats.lost_of(b_id).unwrap().reason,
                Reason::PeerClosed,
                "B was closed by a call made with A's id"
            );
            assert_eq!(stats.conns[&b_id].echoed, len as u64);
            let probes: Vec<_> = stats
                .stale_probes
                .iter()
                .filter(|p| p.stale == a_id && p.during == b_id)
                .collect();
            assert!(
                !probes.is_empty(),
                "A's id was never tried while B held the slot"
            );
            for p in &stats.stale_probes {
                assert!(
                    p.send_is_no_such_connection
                        && p.pending_output.is_none()
                        && !p.has_data
                        && !p.has_data_mut
                        && p.peer_addr.is_none(),
                    "a closed connection's id still works: {p:?}"
                );
            }
        }
        server.stop_and_join(Duration::from_secs(5));
    });
}

/// Round trip: `msg` comes back exactly, and nothing before it.
fn round_trip(c: &TcpStream, msg: &[u8]) {
    write_all_deadline(c, msg, soon()).expect("write");
    let mut back = vec![0; msg.len()];
    read_exact_deadline(c, &mut back, soon()).expect("echo");
    util::check_bytes("echo", &back, msg).unwrap();
}

/// Regression: issue 15 audit: removing the generation check was noticed by only 3 tests.
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
