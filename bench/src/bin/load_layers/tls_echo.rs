//! `load tlsecho ADDR --conns N --size BYTES --depth D --warmup S --duration S [--sync]`:
//! the `echo` mode over TLS (issue 13). Each connection is a rustls client
//! (the `ring` provider, TLS 1.3 as both servers negotiate it) driven on its
//! non-blocking socket; every handshake completes before the warm-up, so
//! the window holds echoes only. The load trusts whatever certificate the
//! server shows (a self-signed one made for the run, on loopback) but still
//! checks the handshake signatures, so its own CPU stays what a real client
//! spends. Phases, window, drain and `result` line are the plain echo's,
//! with `transport=tls` added.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Poll};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};

use super::{connect_all, echo_phases, echo_result, fail, Clock, EchoLoad, Opts, Samples};

/// Any certificate, with the handshake's signatures checked.
#[derive(Debug)]
struct AnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn client_config() -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|e| fail(e))
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    Arc::new(config)
}

struct Conn {
    stream: TcpStream,
    tls: ClientConnection,
    /// Queue time of each message in flight, oldest first.
    sent: VecDeque<u64>,
    /// Plaintext bytes of the oldest message already back.
    got: usize,
    dead: bool,
}

struct TlsEcho {
    conns: Vec<Conn>,
    size: usize,
    depth: usize,
    payload: Vec<u8>,
    buf: Vec<u8>,
    clock: Clock,
    issuing: bool,
    recording: bool,
    completed: u64,
    samples: Samples,
    errors: u64,
}

impl TlsEcho {
    fn kill(&mut self, i: usize) {
        if !self.conns[i].dead {
            self.conns[i].dead = true;
            self.errors += 1;
        }
    }

    fn in_flight(&self) -> usize {
        self.conns
            .iter()
            .filter(|c| !c.dead)
            .map(|c| c.sent.len())
            .sum()
    }

    /// Writes what rustls holds until it is empty or the socket is full.
    fn write(&mut self, i: usize) {
        let c = &mut self.conns[i];
        while !c.dead && c.tls.wants_write() {
            match c.tls.write_tls(&mut c.stream) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.kill(i),
            }
        }
    }

    /// Queues `n` messages of plaintext on connection `i`.
    fn issue(&mut self, i: usize, n: usize, now: u64) {
        let c = &mut self.conns[i];
        for _ in 0..n {
            c.sent.push_back(now);
        }
        let bytes = n * self.size;
        if c.tls.writer().write_all(&self.payload[..bytes]).is_err() {
            self.kill(i);
        }
    }

    /// Fills every connection up to `depth` messages in flight.
    fn prime(&mut self) {
        let now = self.clock.ns();
        for i in 0..self.conns.len() {
            let c = &self.conns[i];
            if c.dead || c.sent.len() >= self.depth {
                continue;
            }
            let n = self.depth - c.sent.len();
            self.issue(i, n, now);
            self.write(i);
        }
    }

    /// Reads records until `WouldBlock`; plaintext back completes messages.
    fn read(&mut self, i: usize) {
        loop {
            let c = &mut self.conns[i];
            if c.dead {
                return;
            }
            match c.tls.read_tls(&mut c.stream) {
                Ok(0) => return self.kill(i),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return self.kill(i),
            }
            if c.tls.process_new_packets().is_err() {
                self.write(i); // the alert
                return self.kill(i);
            }
            let mut back = 0;
            loop {
                match c.tls.reader().read(&mut self.buf) {
                    Ok(0) => break, // close_notify
                    Ok(n) => back += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => return self.kill(i),
                }
            }
            c.got += back;
            let now = self.clock.ns();
            let mut again = 0;
            while c.got >= self.size {
                c.got -= self.size;
                let Some(t) = c.sent.pop_front() else {
                    return self.kill(i); // more came back than was sent
                };
                if self.recording {
                    self.samples.add(now - t);
                    self.completed += 1;
                }
                if self.issuing {
                    again += 1;
                }
            }
            if again > 0 {
                self.issue(i, again, now);
            }
        }
        self.write(i);
    }

    fn poll_once(&mut self, poll: &mut Poll, events: &mut Events) {
        poll.poll(events, Some(Duration::from_millis(5)))
            .unwrap_or_else(|e| fail(e));
        for ev in events.iter() {
            let i = ev.token().0;
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                self.read(i);
            }
            if ev.is_writable() {
                self.write(i);
            }
        }
    }

    /// Runs until `until` (issuing) or until nothing is in flight (draining).
    fn run(&mut self, poll: &mut Poll, events: &mut Events, until: Option<Instant>) {
        let drain_deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match until {
                Some(t) if Instant::now() >= t => return,
                None if self.in_flight() == 0 => return,
                None if Instant::now() > drain_deadline => {
                    fail(format!("{} messages never came back", self.in_flight()))
                }
                _ => {}
            }
            if self.conns.iter().all(|c| c.dead) {
                fail("every connection failed");
            }
            self.poll_once(poll, events);
        }
    }
}

pub fn tls_echo(o: &Opts) {
    let mut poll = Poll::new().unwrap_or_else(|e| fail(e));
    let streams = connect_all(&mut poll, o);
    let config = client_config();
    let name = ServerName::try_from("localhost").unwrap_or_else(|e| fail(e));
    let mut e = TlsEcho {
        conns: streams
            .into_iter()
            .map(|stream| Conn {
                stream,
                tls: ClientConnection::new(config.clone(), name.clone())
                    .unwrap_or_else(|e| fail(e)),
                sent: VecDeque::with_capacity(o.depth + 1),
                got: 0,
                dead: false,
            })
            .collect(),
        size: o.size,
        depth: o.depth,
        payload: vec![b'x'; o.size * o.depth],
        buf: vec![0; 256 * 1024],
        clock: Clock(Instant::now()),
        issuing: true,
        recording: false,
        completed: 0,
        samples: Samples(Vec::with_capacity(1 << 20)),
        errors: 0,
    };
    let mut events = Events::with_capacity(4096);
    // Every handshake first: the ClientHello is queued by `new`.
    for i in 0..e.conns.len() {
        e.write(i);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while e.conns.iter().any(|c| !c.dead && c.tls.is_handshaking()) {
        if Instant::now() > deadline {
            let n = e.conns.iter().filter(|c| c.tls.is_handshaking()).count();
            fail(format!("{n} TLS handshakes unfinished after 60 s"));
        }
        e.poll_once(&mut poll, &mut events);
    }
    if e.errors > 0 {
        fail(format!("{} TLS handshakes failed", e.errors));
    }
    let Some(secs) = echo_phases(&mut e, &mut poll, &mut events, o) else {
        return;
    };
    echo_result(
        " transport=tls",
        o,
        secs,
        e.completed,
        &mut e.samples,
        e.errors,
    );
}

impl EchoLoad for TlsEcho {
    fn prime(&mut self) {
        TlsEcho::prime(self)
    }
    fn run(&mut self, poll: &mut Poll, events: &mut Events, until: Option<Instant>) {
        TlsEcho::run(self, poll, events, until)
    }
    fn issuing(&mut self) -> &mut bool {
        &mut self.issuing
    }
    fn recording(&mut self) -> &mut bool {
        &mut self.recording
    }
}
