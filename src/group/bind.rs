//! Binding the group's listening sockets: one per reactor sharing the
//! port with `SO_REUSEPORT`, or one for the acceptor.

use std::net::{SocketAddr, ToSocketAddrs};

use mio::net::TcpListener;

use crate::reactor::ListenOptions;
use crate::{Error, Result};

/// Binds `count` listeners to the first address of `addr` that binds,
/// all on one port (the one the OS picked, for port 0). With `count > 1`
/// every socket gets `SO_REUSEPORT`, so the kernel spreads incoming
/// connections over them by a hash of the connection's addresses.
///
/// `SO_REUSEPORT` would also let these sockets join another process's
/// listeners on the same port (any of the same user's that set it too),
/// silently splitting its clients with it. Unless the caller asked for
/// `reuse_port` itself, a named port is first bound by a probe without it,
/// so a port in use is a bind error as it is for one listener.
///
/// # Errors
///
/// [`Error::Bind`] naming the address (the port is in use, permission);
/// [`Error::Io`] if `addr` does not resolve.
pub(crate) fn bind_listeners(
    addr: impl ToSocketAddrs,
    count: usize,
    options: &ListenOptions,
) -> Result<Vec<TcpListener>> {
    let asked = options.reuse_port;
    let options = ListenOptions {
        reuse_port: options.reuse_port || count > 1,
        ..options.clone()
    };
    let bind = |a: SocketAddr| {
        options.bind(a).map_err(|source| Error::Bind {
            addr: a.to_string(),
            source,
        })
    };
    // The probe: the same socket as one listener would be, closed at once.
    let probe = |a: SocketAddr| {
        if options.reuse_port && a.port() != 0 && count > 1 && !asked {
            let alone = ListenOptions {
                reuse_port: false,
                ..options.clone()
            };
            alone.bind(a).map_err(|source| Error::Bind {
                addr: a.to_string(),
                source,
            })?;
        }
        Ok(())
    };
    let mut last = None;
    for a in addr.to_socket_addrs()? {
        if let Err(e) = probe(a) {
            last = Some(e);
            continue;
        }
        let first = match bind(a) {
            Ok(first) => first,
            Err(e) => {
                last = Some(e);
                continue;
            }
        };
        // The others go to the port the first one got (port 0: the OS's pick).
        let actual = first.local_addr()?;
        let mut all = vec![first];
        for _ in 1..count {
            all.push(bind(actual)?);
        }
        return Ok(all);
    }
    let none = || std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address to bind");
    Err(last.unwrap_or_else(|| none().into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuseport_listeners_share_one_port() {
        for host in ["127.0.0.1", "::1"] {
            let Ok(all) = bind_listeners((host, 0), 3, &ListenOptions::default()) else {
                continue; // no IPv6 on this machine
            };
            let ports: Vec<u16> = all.iter().map(|l| l.local_addr().unwrap().port()).collect();
            assert_eq!(ports.len(), 3);
            assert!(ports[0] != 0 && ports.iter().all(|&p| p == ports[0]));
        }
    }

    #[test]
    fn a_taken_port_is_a_bind_error_naming_it() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        match bind_listeners(addr, 2, &ListenOptions::default()) {
            Err(Error::Bind { addr: named, .. }) => assert_eq!(named, addr.to_string()),
            other => panic!("expected a bind error, got {other:?}"),
        }
    }

    /// Regression (a black-box run): a second group in reuseport mode on
    /// the port of a first one started and took half its clients.
    #[test]
    fn a_port_another_group_shares_is_a_bind_error_unless_asked() {
        let first = bind_listeners("127.0.0.1:0", 2, &ListenOptions::default()).unwrap();
        let addr = first[0].local_addr().unwrap();
        match bind_listeners(addr, 2, &ListenOptions::default()) {
            Err(Error::Bind { addr: named, .. }) => assert_eq!(named, addr.to_string()),
            other => panic!("expected a bind error, got {other:?}"),
        }
        // Asked for by name: joining is what the caller wants.
        let shared = ListenOptions {
            reuse_port: true,
            ..ListenOptions::default()
        };
        assert_eq!(bind_listeners(addr, 2, &shared).unwrap().len(), 2);
    }
}
