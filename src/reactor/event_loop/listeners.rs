//! [`Reactor`]'s listener setup: TCP and Unix listeners (with their
//! options), the metrics listener, UDP sockets, and their addresses.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;

use mio::net::{TcpListener, UdpSocket};
use mio::Interest;

use super::Reactor;
use crate::reactor::endpoint::{Endpoint, ListenSock, Listener, Udp};
use crate::reactor::listen::bind_unix;
use crate::reactor::pass::UDP_MAX;
use crate::reactor::{ListenOptions, ListenerId, UdpId};
#[cfg(doc)]
use crate::Context;
use crate::{Error, Handler, Result};

impl<H: Handler> Reactor<H> {
    /// Binds a TCP listener to the first address of `addr` that binds (with
    /// `SO_REUSEADDR` and a backlog of 1024: [`ListenOptions::default`]) and
    /// serves it.
    ///
    /// # Errors
    ///
    /// [`Error::Bind`], naming the address and the OS error (port in use,
    /// permission); [`Error::Io`] if `addr` does not resolve.
    ///
    /// ```
    /// # use mio_selectors::{Config, Error, Reactor};
    #[doc = doc_app!()]
    /// let mut reactor = Reactor::new(App, Config::default())?;
    /// let id = reactor.listen("127.0.0.1:0")?;
    /// let taken = reactor.local_addr(id)?;
    /// let mut other = Reactor::new(App, Config::default())?;
    /// assert!(matches!(other.listen(taken), Err(Error::Bind { .. })));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn listen(&mut self, addr: impl ToSocketAddrs) -> Result<ListenerId> {
        self.listen_with(addr, &ListenOptions::default())
    }

    /// As [`listen`](Self::listen), with socket options: backlog,
    /// `SO_REUSEADDR`, `SO_REUSEPORT`, `IPV6_V6ONLY`.
    ///
    /// # Errors
    ///
    /// As [`listen`](Self::listen).
    ///
    /// ```
    /// # use mio_selectors::{Config, Reactor};
    /// # use mio_selectors::reactor::ListenOptions;
    #[doc = doc_app!()]
    /// let options = ListenOptions { reuse_port: true, ..ListenOptions::default() };
    /// let mut a = Reactor::new(App, Config::default())?;
    /// let id = a.listen_with("127.0.0.1:0", &options)?;
    /// let port = a.local_addr(id)?.port();
    /// let mut b = Reactor::new(App, Config::default())?;
    /// b.listen_with(("127.0.0.1", port), &options)?; // shares the port
    /// # Ok::<(), mio_selectors::Error>(())
    /// ```
    pub fn listen_with(
        &mut self,
        addr: impl ToSocketAddrs,
        options: &ListenOptions,
    ) -> Result<ListenerId> {
        let sock = bind_first(addr, |a| options.bind(a))?;
        self.add_listener(sock)
    }

    /// Binds a TCP listener on `addr` whose connections the reactor answers
    /// itself: `GET /metrics` gets this reactor's counters in the Prometheus
    /// text format 0.0.4 ([`metrics`](crate::metrics)), anything else its
    /// HTTP error; one request per connection. The handler never sees these
    /// connections, and the counters leave them out (a scrape does not move
    /// `connections_active`). Returns the bound address.
    ///
    /// # Errors
    ///
    /// As [`listen`](Self::listen).
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// # use mio_selectors::{Config, Reactor};
    #[doc = doc_app!()]
    /// let mut reactor = Reactor::new(App, Config::default())?;
    /// let addr = reactor.serve_metrics("127.0.0.1:0")?;
    /// let handle = reactor.handle();
    /// let scraper = std::thread::spawn(move || {
    ///     let mut s = std::net::TcpStream::connect(addr).unwrap();
    ///     s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    ///     let mut text = String::new();
    ///     s.read_to_string(&mut text).unwrap();
    ///     handle.stop();
    ///     text
    /// });
    /// reactor.run()?;
    /// let text = scraper.join().unwrap();
    /// assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
    /// assert!(text.contains("mio_selectors_connections_active{reactor=\"0\"} 0\n"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn serve_metrics(&mut self, addr: impl ToSocketAddrs) -> Result<SocketAddr> {
        let id = self.listen(addr)?;
        if let Some(Endpoint::Listener(l)) = self.core.endpoints.get_mut(id.0) {
            l.scrape = true;
        }
        self.local_addr(id)
    }

    /// Makes `id`'s connections metrics scrapes (a group's metrics listener).
    pub(crate) fn mark_scrape(&mut self, id: ListenerId) {
        if let Some(Endpoint::Listener(l)) = self.core.endpoints.get_mut(id.0) {
            l.scrape = true;
        }
    }

    /// Serves a TCP listener bound elsewhere.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if it cannot be registered with epoll.
    ///
    /// ```
    /// # use mio_selectors::{Config, Reactor};
    #[doc = doc_app!()]
    /// let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// std_listener.set_nonblocking(true)?;
    /// let mut reactor = Reactor::new(App, Config::default())?;
    /// reactor.add_listener(mio::net::TcpListener::from_std(std_listener))?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn add_listener(&mut self, sock: TcpListener) -> Result<ListenerId> {
        self.add_listen_sock(ListenSock::Tcp(sock))
    }

    /// Binds a Unix stream listener at `path` and serves it like a TCP one.
    /// A stale socket file at `path` (a socket nobody listens on) is removed
    /// first; the file this creates is removed when the listener closes, if
    /// it is still that file (same device and inode): a socket another
    /// server put there since is left alone.
    ///
    /// # Errors
    ///
    /// [`Error::Bind`] naming the path and what is in the way: someone
    /// listens there already, or a regular file, directory, symbolic link
    /// or special file is there (it is left alone); or the directory is not
    /// writable;
    /// [`Error::Io`] if epoll refuses the socket.
    ///
    /// ```
    /// # use mio_selectors::{Config, Reactor};
    #[doc = doc_app!()]
    /// let path = std::env::temp_dir().join(format!("doc-{}.sock", std::process::id()));
    /// let mut reactor = Reactor::new(App, Config::default())?;
    /// reactor.listen_unix(&path)?;
    /// assert!(path.exists());
    /// drop(reactor);
    /// assert!(!path.exists());
    /// # Ok::<(), mio_selectors::Error>(())
    /// ```
    pub fn listen_unix(&mut self, path: impl AsRef<Path>) -> Result<ListenerId> {
        let path = path.as_ref();
        let (sock, created) = bind_unix(path).map_err(|source| Error::Bind {
            addr: path.display().to_string(),
            source,
        })?;
        let path = Some(path.to_path_buf());
        self.add_listen_sock(ListenSock::Unix {
            sock,
            path,
            created,
        })
    }

    fn add_listen_sock(&mut self, mut sock: ListenSock) -> Result<ListenerId> {
        let id = ListenerId(self.core.endpoints.next_id());
        // Filed only if registration succeeds: a failure leaves nothing behind.
        self.core
            .registry
            .register(sock.source(), id.token(), Interest::READABLE)?;
        log::info!("listening on {}", sock.describe());
        self.core.endpoints.insert(Endpoint::Listener(Listener {
            sock,
            ready: true,
            wrap: None,
            scrape: false,
        }));
        Ok(id)
    }

    /// The address a TCP listener is bound to (to learn the port after `:0`).
    ///
    /// # Errors
    ///
    /// [`Error::NoSuchEndpoint`] for an unknown id or a Unix listener,
    /// [`Error::Io`] from `getsockname`.
    ///
    /// ```
    /// # use mio_selectors::{Config, Reactor};
    #[doc = doc_app!()]
    /// let mut reactor = Reactor::new(App, Config::default())?;
    /// let id = reactor.listen("[::1]:0")?;
    /// assert!(reactor.local_addr(id)?.is_ipv6());
    /// # Ok::<(), mio_selectors::Error>(())
    /// ```
    pub fn local_addr(&self, id: ListenerId) -> Result<SocketAddr> {
        match self.core.endpoints.get(id.0) {
            Some(Endpoint::Listener(Listener {
                sock: ListenSock::Tcp(l),
                ..
            })) => Ok(l.local_addr()?),
            _ => Err(Error::NoSuchEndpoint),
        }
    }

    /// Binds a UDP socket to the first address of `addr` that binds and
    /// serves it: each datagram goes to [`Handler::datagram_received`];
    /// replies go out with [`Context::send_to`].
    ///
    /// # Errors
    ///
    /// [`Error::Bind`] naming the address; [`Error::Io`] if `addr` does not
    /// resolve or epoll refuses the socket.
    ///
    /// ```
    /// # use mio_selectors::{Config, Reactor};
    #[doc = doc_app!()]
    /// let mut reactor = Reactor::new(App, Config::default())?;
    /// let udp = reactor.bind_udp("127.0.0.1:0")?;
    /// assert!(reactor.udp_addr(udp)?.ip().is_loopback());
    /// # Ok::<(), mio_selectors::Error>(())
    /// ```
    pub fn bind_udp(&mut self, addr: impl ToSocketAddrs) -> Result<UdpId> {
        let mut sock = bind_first(addr, UdpSocket::bind)?;
        let id = UdpId(self.core.endpoints.next_id());
        let interest = Interest::READABLE | Interest::WRITABLE;
        self.core
            .registry
            .register(&mut sock, id.token(), interest)?;
        log::info!("udp: bound {:?}", sock.local_addr().ok());
        self.core.endpoints.insert(Endpoint::Udp(Udp::new(sock)));
        if self.udp_buf.is_empty() {
            self.udp_buf = vec![0; UDP_MAX];
        }
        Ok(id)
    }

    /// The address a UDP socket is bound to.
    ///
    /// # Errors
    ///
    /// [`Error::NoSuchEndpoint`], [`Error::Io`].
    ///
    /// ```
    /// # use mio_selectors::{Config, Reactor};
    #[doc = doc_app!()]
    /// let mut reactor = Reactor::new(App, Config::default())?;
    /// let udp = reactor.bind_udp("[::1]:0")?;
    /// assert!(reactor.udp_addr(udp)?.is_ipv6());
    /// # Ok::<(), mio_selectors::Error>(())
    /// ```
    pub fn udp_addr(&self, id: UdpId) -> Result<SocketAddr> {
        match self.core.endpoints.get(id.0) {
            Some(Endpoint::Udp(u)) => Ok(u.sock.local_addr()?),
            _ => Err(Error::NoSuchEndpoint),
        }
    }
}

/// Binds with `bind` to the first address of `addr` that works; the error
/// names the last address tried.
fn bind_first<S>(
    addr: impl ToSocketAddrs,
    bind: impl Fn(SocketAddr) -> io::Result<S>,
) -> Result<S> {
    let mut last = None;
    for a in addr.to_socket_addrs()? {
        match bind(a) {
            Ok(sock) => return Ok(sock),
            Err(source) => {
                let addr = a.to_string();
                last = Some(Error::Bind { addr, source })
            }
        }
    }
    let none = || io::Error::new(io::ErrorKind::InvalidInput, "no address to bind");
    Err(last.unwrap_or_else(|| none().into()))
}
