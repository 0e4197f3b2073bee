//! [`Context`]'s UDP side: sending a datagram, or queueing it (bounded)
//! while the socket is full.

use std::net::SocketAddr;

use super::Context;
use crate::reactor::endpoint::{Endpoint, Udp};
use crate::reactor::UdpId;
use crate::{Error, Result};

impl<D> Context<'_, D> {
    /// Sends a datagram from a UDP socket (asyncio: `transport.sendto`). It
    /// goes out at once if the kernel takes it; otherwise it waits in a
    /// queue bounded by [`Config::udp_queue`](crate::Config::udp_queue), never blocking the loop.
    ///
    /// # Errors
    ///
    /// [`Error::NoSuchEndpoint`]; [`Error::QueueFull`] (the datagram is
    /// dropped: UDP promises no delivery); [`Error::Io`] if the kernel
    /// refuses it (too big for the socket, no route).
    ///
    /// ```
    #[doc = doc_cx!(() = (); "# let udp = reactor.bind_udp(\"127.0.0.1:0\")?;\n" "# let from = reactor.udp_addr(udp)?;\n")]
    /// let _ = cx.send_to(udp, b"pong", from);
    #[doc = doc_cx_end!()]
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_to(&mut self, udp: UdpId, data: &[u8], addr: SocketAddr) -> Result<()> {
        let cap = self.core.config.udp_queue;
        let Some(Endpoint::Udp(sock)) = self.core.endpoints.get_mut(udp.0) else {
            return Err(Error::NoSuchEndpoint);
        };
        send_datagram(sock, data, addr, cap)
    }
}

/// Sends one datagram now, or queues it if the socket is full.
pub(crate) fn send_datagram(
    sock: &mut Udp,
    data: &[u8],
    addr: SocketAddr,
    cap: usize,
) -> Result<()> {
    if sock.queue.is_empty() && sock.writable {
        match sock.sock.send_to(data, addr) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => sock.writable = false,
            Err(e) => return Err(e.into()),
        }
    }
    // Each datagram is charged its slot too, so empty ones cannot pile up.
    let cost = data.len() + crate::reactor::endpoint::DATAGRAM_OVERHEAD;
    if sock.queued_bytes + cost > cap {
        log::debug!("udp: send queue full, datagram to {addr} dropped");
        return Err(Error::QueueFull);
    }
    sock.queued_bytes += cost;
    sock.queue.push_back((data.into(), addr));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Loopback UDP never says `WouldBlock`, so the queue is driven here
    /// with the socket marked full, as the first `WouldBlock` leaves it.
    #[test]
    fn udp_send_queue_is_bounded_and_drains_in_order() {
        let receiver = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        receiver
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let to = receiver.local_addr().unwrap();
        let sock = mio::net::UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let mut udp = Udp::new(sock);
        udp.writable = false;
        let cap = 4 * (10 + crate::reactor::endpoint::DATAGRAM_OVERHEAD);
        for i in 0..4u8 {
            send_datagram(&mut udp, &[i; 10], to, cap).unwrap();
        }
        assert!(matches!(
            send_datagram(&mut udp, &[], to, cap),
            Err(Error::QueueFull)
        ));
        assert_eq!(udp.queue.len(), 4);
        udp.writable = true;
        udp.flush();
        assert_eq!((udp.queue.len(), udp.queued_bytes), (0, 0));
        let mut buf = [0; 16];
        for i in 0..4u8 {
            let n = receiver.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], &[i; 10]);
        }
    }
}
