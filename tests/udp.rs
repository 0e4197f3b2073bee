//! UDP sockets on the reactor: echo, sizes, many senders, a send queue
//! that never blocks.

mod util;

use mio_selectors::{Config, Error, Reactor};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};
#[allow(unused_imports)]
use util::probe::*;
use util::{check_bytes, with_deadline, Rng};

const EMSGSIZE: i32 = 90;

fn udp_client(bind: &str) -> UdpSocket {
    let s = UdpSocket::bind(bind).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Sends one datagram from `client` and checks the echo comes back whole,
/// from the server.
fn udp_roundtrip(client: &UdpSocket, server: SocketAddr, payload: &[u8]) {
    client.send_to(payload, server).expect("send_to");
    let mut buf = vec![0; 70_000];
    let (n, from) = client.recv_from(&mut buf).expect("the echo (5 s timeout)");
    assert_eq!(from, server, "echo from the wrong address");
    check_bytes(
        &format!("{}-byte datagram", payload.len()),
        &buf[..n],
        payload,
    )
    .unwrap();
}

fn udp_sizes_echo_intact(bind: &'static str, sizes: &'static [usize]) {
    with_deadline(LIMIT, move || {
        let (mut rig, server) = Rig::start(echo(), move |r| {
            let udp = r.bind_udp(bind)?;
            r.udp_addr(udp)
        });
        let client = udp_client(bind);
        let mut rng = Rng::new(0x0DA7_A6A4);
        for &size in sizes {
            udp_roundtrip(&client, server, &rng.bytes(size));
        }
        rig.stop();
        let got: Vec<usize> = rig
            .log
            .iter()
            .filter_map(|(_, ev)| match ev {
                Ev::Datagram { data, .. } => Some(data.len()),
                _ => None,
            })
            .collect();
        assert_eq!(got, sizes, "datagram sizes the handler saw");
    });
}

#[test]
fn udp_fifty_senders_each_get_only_their_own_datagrams_back() {
    with_deadline(LIMIT, || {
        let (mut rig, server) = Rig::start(echo(), |r| {
            let udp = r.bind_udp("127.0.0.1:0")?;
            r.udp_addr(udp)
        });
        let clients: Vec<UdpSocket> = (0..50).map(|_| udp_client("127.0.0.1:0")).collect();
        let msg = |i: usize, round: usize| format!("client {i:02} datagram {round}").into_bytes();
        for round in 0..4 {
            for (i, c) in clients.iter().enumerate() {
                c.send_to(&msg(i, round), server).unwrap();
            }
            for (i, c) in clients.iter().enumerate() {
                let mut buf = [0; 256];
                let (n, from) = c.recv_from(&mut buf).expect("echo (5 s timeout)");
                assert_eq!(from, server);
                assert_eq!(
                    String::from_utf8_lossy(&buf[..n]),
                    String::from_utf8_lossy(&msg(i, round)),
                    "client {i} got another's datagram"
                );
            }
        }
        // Nothing more for anyone: no datagram went to two senders.
        for (i, c) in clients.iter().enumerate() {
            c.set_nonblocking(true).unwrap();
            let extra = c.recv_from(&mut [0; 256]);
            assert!(
                matches!(&extra, Err(e) if e.kind() == io::ErrorKind::WouldBlock),
                "client {i} got an extra datagram: {extra:?}"
            );
        }
        // The handler saw each sender's own address, four times each.
        rig.stop();
        for c in &clients {
            let me = c.local_addr().unwrap();
            let seen = rig.count(|ev| matches!(ev, Ev::Datagram { from, .. } if *from == me));
            assert_eq!(seen, 4, "datagrams from {me}");
        }
        assert_eq!(
            rig.count(|ev| matches!(ev, Ev::Note(..))),
            0,
            "{}",
            rig.dump()
        );
    });
}

#[test]
fn udp_datagrams_of_0_1_1000_and_65507_bytes_echo_intact() {
    udp_sizes_echo_intact("127.0.0.1:0", &[0, 1, 1000, 65_507]);
}

#[test]
fn udp_on_ipv6_loopback_echoes_up_to_65527_bytes() {
    if !ipv6_loopback() {
        util::require_in_ci("no IPv6 loopback");
        return;
    }
    // 65,527 is IPv6's largest (fragmented on lo, whose MTU is 65,536).
    udp_sizes_echo_intact("[::1]:0", &[1, 1000, 65_507, 65_527]);
}

/// The send queue's bound. On Linux loopback `sendto` never says
/// `WouldBlock`: the loopback driver orphans each datagram as it transmits
/// it, so the sender's send buffer never fills, and a full receiver drops
/// instead (checked: 20,000 datagrams of 60 kB from a socket with the
/// smallest send buffer, to a receiver that never reads, all succeed). The
/// queue (and so `QueueFull`) cannot be reached from here; what can be
/// checked is that `send_to` neither blocks nor queues: a flood to a peer
/// that does not read returns at once, every datagram is `Ok` or
/// `QueueFull`, and a datagram the kernel refuses is an `Io` error at once,
/// not queued (it would otherwise be `QueueFull` with this 16-byte bound).
#[test]
fn udp_send_to_never_blocks_and_refused_datagrams_are_not_queued() {
    with_deadline(LIMIT, || {
        let config = Config {
            udp_queue: 16,
            ..Config::default()
        };
        let mut reactor = Reactor::new(Probe::quiet(), config).unwrap();
        let udp = reactor.bind_udp("127.0.0.1:0").unwrap();
        let peer = udp_client("127.0.0.1:0");
        let to = peer.local_addr().unwrap();
        // Too big for IPv4: the kernel says EMSGSIZE, and it is not queued.
        let big = reactor.with_context(|cx| cx.send_to(udp, &vec![7; 65_508], to));
        match big {
            Err(Error::Io(e)) => assert_eq!(e.raw_os_error(), Some(EMSGSIZE), "{e}"),
            other => panic!("65,508-byte datagram: {other:?}"),
        }
        // A flood at a peer that never reads: no blocking, no other error.
        let start = Instant::now();
        let (mut ok, mut full) = (0, 0);
        reactor.with_context(|cx| {
            for i in 0..5_000u32 {
                let mut d = vec![0; 1_000];
                d[..4].copy_from_slice(&i.to_be_bytes());
                match cx.send_to(udp, &d, to) {
                    Ok(()) => ok += 1,
                    Err(Error::QueueFull) => full += 1,
                    Err(e) => panic!("datagram {i}: {e}"),
                }
            }
        });
        let took = start.elapsed();
        eprintln!("flood: {ok} sent at once, {full} QueueFull, in {took:?}");
        // Loopback never pushes back, so nothing may have been queued: a
        // `send_to` that queued first (or always) would answer `QueueFull`
        // past 16 datagrams.
        assert_eq!(
            (ok, full),
            (5_000, 0),
            "every datagram goes to the kernel at once"
        );
        // The reactor has not run a single pass, so what the peer can read
        // went out inside `send_to`: in order, the first one first.
        peer.set_nonblocking(true).unwrap();
        let mut buf = [0; 2_000];
        let mut seqs = Vec::new();
        while let Ok((n, _)) = peer.recv_from(&mut buf) {
            assert_eq!(n, 1_000);
            seqs.push(u32::from_be_bytes(buf[..4].try_into().unwrap()));
        }
        assert_eq!(seqs.first(), Some(&0), "the first datagram is first");
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order: {seqs:?}");
    });
}
