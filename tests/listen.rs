//! Listener options and address families: IPv6, `SO_REUSEPORT`,
//! backlog, `IPV6_V6ONLY`.

mod util;

use mio_selectors::reactor::ListenOptions;
use mio_selectors::{Config, Error, Reactor};
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
#[allow(unused_imports)]
use util::probe::*;
use util::{connect, read_exact_deadline, with_deadline, write_all_deadline};

fn reuse_port() -> ListenOptions {
    ListenOptions {
        reuse_port: true,
        ..ListenOptions::default()
    }
}

#[test]
fn ipv6_listener_echoes_and_peer_prints_bracketed() {
    if !ipv6_loopback() {
        util::require_in_ci("no IPv6 loopback");
        return;
    }
    with_deadline(LIMIT, || {
        let (mut rig, addr) = Rig::start(echo(), |r| {
            let id = r.listen("[::1]:0")?;
            r.local_addr(id)
        });
        assert_eq!(addr.ip().to_string(), "::1");
        let client = connect(addr);
        let deadline = Instant::now() + WAIT;
        write_all_deadline(&client, b"over IPv6", deadline).unwrap();
        let mut buf = [0; 9];
        read_exact_deadline(&client, &mut buf, deadline).unwrap();
        assert_eq!(&buf, b"over IPv6");
        let (_, _, acc) = rig.wait(WAIT, "accept", is_accepted);
        let Ev::Accepted { peer, .. } = acc else {
            unreachable!()
        };
        let port = client.local_addr().unwrap().port();
        assert_eq!(peer, format!("[::1]:{port}"));
        drop(client); // a graceful stop need not wait for it
        rig.stop();
    });
}

#[test]
fn reuse_port_lets_two_reactors_share_a_port_and_both_serve() {
    with_deadline(LIMIT, || {
        let (mut a, addr) = Rig::start(echo(), |r| {
            let id = r.listen_with("127.0.0.1:0", &reuse_port())?;
            r.local_addr(id)
        });
        let (mut b, ()) = Rig::start(echo(), move |r| {
            r.listen_with(addr, &reuse_port()).map(drop)
        });
        // Without SO_REUSEPORT the same port is taken.
        let mut third = Reactor::new(Probe::quiet(), Config::default()).unwrap();
        assert!(matches!(third.listen(addr), Err(Error::Bind { .. })));
        const N: usize = 40;
        for i in 0..N {
            let c = connect(addr);
            let deadline = Instant::now() + WAIT;
            write_all_deadline(&c, &[i as u8], deadline).unwrap();
            let mut one = [0];
            read_exact_deadline(&c, &mut one, deadline).unwrap();
            assert_eq!(one[0], i as u8);
        }
        a.stop();
        b.stop();
        let (na, nb) = (a.count(is_accepted), b.count(is_accepted));
        assert_eq!(na + nb, N);
        // The kernel hashes connections over both: all 40 on one is 2^-39.
        assert!(na > 0 && nb > 0, "a accepted {na}, b accepted {nb}");
    });
}

#[test]
fn backlog_option_is_applied() {
    with_deadline(LIMIT, || {
        // With nobody accepting, Linux queues backlog + 1 handshakes and
        // drops further SYNs, so a connect with a short timeout times out.
        let options = ListenOptions {
            backlog: 1,
            ..ListenOptions::default()
        };
        let mut reactor = Reactor::new(Probe::quiet(), Config::default()).unwrap();
        let id = reactor.listen_with("127.0.0.1:0", &options).unwrap();
        let addr = reactor.local_addr(id).unwrap();
        let mut queued = Vec::new();
        let mut refused_at = None;
        for i in 0..12 {
            match TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
                Ok(s) => queued.push(s),
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    refused_at = Some(i);
                    break;
                }
                Err(e) => panic!("connect {i}: {e}"),
            }
        }
        let n = refused_at.expect("a backlog of 1 took 12 connections");
        assert!(n <= 3, "a backlog of 1 queued {n} connections");
        // And a backlog of 64 queues 64 (Linux: 65), not 1 and not the
        // default 1024: the 66th handshake is dropped.
        let options = ListenOptions {
            backlog: 64,
            ..ListenOptions::default()
        };
        let mut reactor = Reactor::new(Probe::quiet(), Config::default()).unwrap();
        let id = reactor.listen_with("127.0.0.1:0", &options).unwrap();
        let addr = reactor.local_addr(id).unwrap();
        let mut many = Vec::new();
        let mut refused_at = None;
        for i in 0..80 {
            match TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
                Ok(s) => many.push(s),
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    refused_at = Some(i);
                    break;
                }
                Err(e) => panic!("connect {i} with backlog 64: {e}"),
            }
        }
        let n = refused_at.expect("a backlog of 64 took 80 connections");
        assert!(
            (64..=66).contains(&n),
            "a backlog of 64 queued {n} connections"
        );
    });
}

#[test]
fn only_v6_decides_whether_ipv4_clients_reach_an_ipv6_wildcard_listener() {
    if !ipv6_loopback() {
        util::require_in_ci("no IPv6 loopback");
        return;
    }
    with_deadline(LIMIT, || {
        // Dual-stack: an IPv4 client on 127.0.0.1 arrives as a v4-mapped
        // peer, which `PeerAddr` names as the IPv4 address it is.
        let dual = ListenOptions {
            only_v6: Some(false),
            ..ListenOptions::default()
        };
        let (mut rig, port) = Rig::start(echo(), move |r| {
            let id = r.listen_with("[::]:0", &dual)?;
            Ok(r.local_addr(id)?.port())
        });
        let v4 = connect(SocketAddr::from(([127, 0, 0, 1], port)));
        let deadline = Instant::now() + WAIT;
        write_all_deadline(&v4, b"v4", deadline).unwrap();
        read_exact_deadline(&v4, &mut [0; 2], deadline).unwrap();
        let (_, _, acc) = rig.wait(WAIT, "accept", is_accepted);
        let Ev::Accepted { peer, .. } = acc else {
            unreachable!()
        };
        let v4_port = v4.local_addr().unwrap().port();
        assert_eq!(peer, format!("127.0.0.1:{v4_port}"));
        drop(v4); // a graceful stop need not wait for it
        rig.stop();

        // IPv6 only: the same kind of listener does not take IPv4 clients.
        let v6_only = ListenOptions {
            only_v6: Some(true),
            ..ListenOptions::default()
        };
        let (mut rig, port) = Rig::start(echo(), move |r| {
            let id = r.listen_with("[::]:0", &v6_only)?;
            Ok(r.local_addr(id)?.port())
        });
        let v6 = connect(SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port)));
        let deadline = Instant::now() + WAIT;
        write_all_deadline(&v6, b"v6", deadline).unwrap();
        read_exact_deadline(&v6, &mut [0; 2], deadline).unwrap();
        let v4_addr = SocketAddr::from(([127, 0, 0, 1], port));
        match TcpStream::connect_timeout(&v4_addr, Duration::from_secs(5)) {
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}"),
            // Another socket may own the IPv4 port (the kernel picked the
            // port for IPv6 only); then it must not be ours.
            Ok(_) => eprintln!("127.0.0.1:{port} is someone else's; IPv4 refusal not checked"),
        }
        drop(v6); // a graceful stop need not wait for it
        rig.stop();
        let peers: Vec<String> = rig
            .log
            .iter()
            .filter_map(|(_, ev)| match ev {
                Ev::Accepted { peer, .. } => Some(peer.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(peers.len(), 1, "{peers:?}");
        assert!(peers[0].starts_with("[::1]:"), "{peers:?}");
    });
}
