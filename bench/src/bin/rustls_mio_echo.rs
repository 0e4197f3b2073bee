//! The TLS echo peer (issue 13): rustls's own `tlsserver-mio` example, in
//! its echo mode, in shape (rustls 0.23's version of it), written for this
//! bench: mio `Poll`, a `HashMap<Token, Conn>`, one `ServerConnection` per
//! connection; on a readable event one `read_tls`, `process_new_packets`,
//! the plaintext read out and written straight back through `writer()`; on
//! a writable event one `write_tls`; after every event the socket is
//! re-registered for what rustls `wants_read` / `wants_write`. Same
//! provider as the library (`ring`), same protocol versions (1.2 and 1.3),
//! no client auth, no session resumption state kept beyond rustls's
//! defaults.
//!
//! What differs from the example: the certificate and key come from
//! `--tls-cert`/`--tls-key`, it prints `listening on ADDR` (the bound
//! address), it has no HTTP or forward mode, no key log, no `unwrap` on
//! network errors (a failing connection is closed), and SIGTERM/SIGINT stop
//! it (exit 0).
//!
//! `rustls_mio_echo --tls-cert PEM --tls-key PEM [HOST PORT]`.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::Arc;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Registry, Token};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection};

const LISTENER: Token = Token(0);
const SIGNALS: Token = Token(1);

struct Conn {
    socket: TcpStream,
    token: Token,
    closing: bool,
    tls: ServerConnection,
}

impl Conn {
    fn ready(&mut self, registry: &Registry, readable: bool, writable: bool) {
        if readable {
            self.tls_read();
            self.plain_read();
        }
        if writable {
            self.tls_write();
        }
        if self.closing {
            let _ = self.socket.shutdown(Shutdown::Both);
            let _ = registry.deregister(&mut self.socket);
            return;
        }
        let interest = self.interest();
        if registry
            .reregister(&mut self.socket, self.token, interest)
            .is_err()
        {
            self.closing = true;
        }
    }

    fn tls_read(&mut self) {
        match self.tls.read_tls(&mut self.socket) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(_) | Ok(0) => {
                self.closing = true;
                return;
            }
            Ok(_) => {}
        }
        if self.tls.process_new_packets().is_err() {
            // Send the alert rustls queued, then close.
            self.tls_write();
            self.closing = true;
        }
    }

    fn plain_read(&mut self) {
        let Ok(state) = self.tls.process_new_packets() else {
            return;
        };
        let n = state.plaintext_bytes_to_read();
        if n == 0 {
            return;
        }
        let mut buf = vec![0u8; n];
        if self.tls.reader().read_exact(&mut buf).is_err()
            || self.tls.writer().write_all(&buf).is_err()
        {
            self.closing = true;
        }
    }

    fn tls_write(&mut self) {
        match self.tls.write_tls(&mut self.socket) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => self.closing = true,
            Ok(_) => {}
        }
    }

    fn interest(&self) -> Interest {
        match (self.tls.wants_read(), self.tls.wants_write()) {
            (true, true) => Interest::READABLE | Interest::WRITABLE,
            (false, true) => Interest::WRITABLE,
            _ => Interest::READABLE,
        }
    }
}

fn config() -> Result<Arc<ServerConfig>, String> {
    let cert = mio_selectors_bench::flag("--tls-cert").ok_or("--tls-cert PEM is required")?;
    let key = mio_selectors_bench::flag("--tls-key").ok_or("--tls-key PEM is required")?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| format!("{cert}: {e}"))?;
    let key = PrivateKeyDer::from_pem_file(&key).map_err(|e| format!("{key}: {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("bad certificate or key: {e}"))?;
    Ok(Arc::new(config))
}

fn main() -> io::Result<()> {
    let config = config().unwrap_or_else(|e| {
        eprintln!("rustls_mio_echo: {e}");
        std::process::exit(2)
    });
    let (host, port) = mio_selectors_bench::host_port();
    let mut listener = TcpListener::bind(mio_selectors_bench::resolve(&host, port))?;
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut signals = signals::Signals::new()?;
    poll.registry()
        .register(&mut signals.0, SIGNALS, Interest::READABLE)?;
    mio_selectors_bench::say_listening(listener.local_addr()?);

    let mut conns: HashMap<Token, Conn> = HashMap::new();
    let mut next_id = 2;
    let mut events = Events::with_capacity(256);
    loop {
        match poll.poll(&mut events, None) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        for ev in events.iter() {
            match ev.token() {
                LISTENER => loop {
                    match listener.accept() {
                        Ok((socket, _)) => {
                            let _ = socket.set_nodelay(true);
                            let Ok(tls) = ServerConnection::new(config.clone()) else {
                                continue;
                            };
                            let token = Token(next_id);
                            next_id += 1;
                            let mut c = Conn {
                                socket,
                                token,
                                closing: false,
                                tls,
                            };
                            let interest = c.interest();
                            if poll
                                .registry()
                                .register(&mut c.socket, token, interest)
                                .is_ok()
                            {
                                conns.insert(token, c);
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        // Out of descriptors and the like: try at the next event.
                        Err(_) => break,
                    }
                },
                SIGNALS => {
                    if signals.fired() {
                        return Ok(());
                    }
                }
                token => {
                    if let Some(c) = conns.get_mut(&token) {
                        c.ready(poll.registry(), ev.is_readable(), ev.is_writable());
                        if c.closing {
                            conns.remove(&token);
                        }
                    }
                }
            }
        }
    }
}

/// SIGTERM/SIGINT through a self-pipe registered with the poll.
mod signals {
    use mio::net::UnixStream;
    use std::io::Read;

    pub struct Signals(pub UnixStream);

    impl Signals {
        pub fn new() -> std::io::Result<Self> {
            let (rx, tx) = std::os::unix::net::UnixStream::pair()?;
            rx.set_nonblocking(true)?;
            tx.set_nonblocking(true)?;
            for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
                signal_hook::low_level::pipe::register(sig, tx.try_clone()?)?;
            }
            Ok(Signals(UnixStream::from_std(rx)))
        }
        pub fn fired(&mut self) -> bool {
            let mut b = [0u8; 16];
            matches!(self.0.read(&mut b), Ok(n) if n > 0)
        }
    }
}
