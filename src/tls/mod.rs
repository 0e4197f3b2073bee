//! TLS as a sans-IO [`Layer`]: rustls 0.23 sessions, server or client, and
//! configs loaded from PEM files.
//!
//! [`TlsSession`] turns ciphertext read from a socket into plaintext and
//! plaintext to send into ciphertext, with the handshake driven by whatever
//! calls it (the reactor), never blocking. The shape is the one of rustls's
//! own `tlsserver-mio` example: `read_tls`, `process_new_packets`, drain the
//! plaintext, `write_tls`, except that nothing here touches a socket.
//!
//! Cargo feature `tls` (on by default). Its cost, measured in release mode
//! on the 2-core build machine (`docs/benchmarks.md`): rustls, webpki and
//! `ring` (C and assembly built by `cc`: no cmake, no Go) take about 35 s
//! of CPU to compile from clean, and add 1.4 MB to the stripped
//! `multiconn_echo` binary (2.9 MB without, 4.3 MB with). A binary that
//! does not use this module links none of it. An idle TLS connection
//! costs about 8 KiB of server memory.
//!
//! ```
//! use mio_selectors::layer::Layer;
//! use mio_selectors::tls::TlsSession;
//! # fn f(config: std::sync::Arc<mio_selectors::tls::rustls::ServerConfig>) -> Result<(), Box<dyn std::error::Error>> {
//! let mut tls = TlsSession::server(config)?;
//! let (mut plaintext, mut to_send) = (Vec::new(), Vec::new());
//! let ciphertext_from_socket = [0u8; 0];
//! tls.on_wire_input(&ciphertext_from_socket, &mut plaintext, &mut to_send)?;
//! // write `to_send` to the socket, hand `plaintext` to the application
//! # Ok(()) }
//! ```

mod config;

use std::io::Read;
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, Connection, ServerConfig, ServerConnection};

use crate::layer::{Layer, LayerError, Progress};

pub use config::{
    certs_from_pem, client_config_trusting, client_config_trusting_pem, key_from_pem, load_certs,
    load_key, provider, server_config, server_config_from_pem, TlsConfigError,
};
/// The rustls this module is built on, for naming its config types.
pub use rustls;

/// Plaintext the application may queue before the handshake completes
/// (rustls holds it until it can encrypt it). Past it,
/// [`Layer::on_app_output`] takes less and the caller keeps the rest.
pub const PRE_HANDSHAKE_LIMIT: usize = 64 * 1024;

/// One TLS connection, server or client side, as a [`Layer`].
///
/// Memory: rustls keeps at most one incoming record being assembled
/// (about 16 KiB), at most 16 KiB of decrypted plaintext (always handed
/// out by the call that decrypted it), and at most
/// [`PRE_HANDSHAKE_LIMIT`] of plaintext queued before the handshake. Every
/// ciphertext byte it produces is appended to the caller's `wire_out`
/// within the same call.
///
/// A peer's `close_notify` is its EOF ([`Progress::peer_closed`]); we may
/// still send after it (TLS half-close), then [`Layer::close`] sends ours.
pub struct TlsSession {
    conn: Connection,
    /// The peer's `close_notify` (or, with a warning, its bare TCP EOF).
    peer_closed: bool,
    /// We sent `close_notify`.
    closed: bool,
    /// A fatal error happened: nothing more in or out.
    failed: bool,
}

impl std::fmt::Debug for TlsSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSession")
            .field("server", &matches!(self.conn, Connection::Server(_)))
            .field("handshaking", &self.conn.is_handshaking())
            .field("peer_closed", &self.peer_closed)
            .field("closed", &self.closed)
            .field("failed", &self.failed)
            .finish()
    }
}

impl TlsSession {
    fn new(conn: Connection) -> Self {
        let mut conn = conn;
        conn.set_buffer_limit(Some(PRE_HANDSHAKE_LIMIT));
        TlsSession {
            conn,
            peer_closed: false,
            closed: false,
            failed: false,
        }
    }

    /// The server side of a connection just accepted.
    ///
    /// # Errors
    ///
    /// rustls's error if the config cannot make a connection (it has no
    /// usable protocol version).
    pub fn server(config: Arc<ServerConfig>) -> Result<Self, rustls::Error> {
        Ok(Self::new(ServerConnection::new(config)?.into()))
    }

    /// The client side of a connection to `server_name` (a DNS name or an
    /// IP address, checked against the server's certificate). Call
    /// [`Layer::start`] to get its hello.
    ///
    /// # Errors
    ///
    /// [`TlsConfigError::ServerName`] for a name that is neither, and
    /// [`TlsConfigError::Rustls`] if the config cannot make a connection.
    pub fn client(config: Arc<ClientConfig>, server_name: &str) -> Result<Self, TlsConfigError> {
        let name = ServerName::try_from(server_name.to_owned())
            .map_err(|_| TlsConfigError::ServerName(server_name.to_owned()))?;
        Ok(Self::new(ClientConnection::new(config, name)?.into()))
    }

    /// The negotiated protocol version, once the handshake got that far.
    pub fn protocol_version(&self) -> Option<rustls::ProtocolVersion> {
        self.conn.protocol_version()
    }

    /// The peer sent `close_notify` (or closed its transport).
    pub fn peer_closed(&self) -> bool {
        self.peer_closed
    }

    /// Move every ciphertext byte rustls has queued into `wire_out`.
    fn drain(&mut self, wire_out: &mut Vec<u8>) {
        while self.conn.wants_write() {
            // Writing into a Vec cannot fail; a zero means nothing is left.
            match self.conn.write_tls(wire_out) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }

    fn fail(&mut self, e: rustls::Error, wire_out: &mut Vec<u8>) -> LayerError {
        self.failed = true;
        // rustls has queued the alert that tells the peer why.
        self.drain(wire_out);
        LayerError::Tls(e)
    }
}

impl Layer for TlsSession {
    fn start(&mut self, wire_out: &mut Vec<u8>) -> Result<(), LayerError> {
        self.drain(wire_out);
        Ok(())
    }

    fn on_wire_input(
        &mut self,
        wire: &[u8],
        app_in: &mut Vec<u8>,
        wire_out: &mut Vec<u8>,
    ) -> Result<Progress, LayerError> {
        if self.failed {
            return Err(LayerError::Closed);
        }
        let before = self.conn.is_handshaking();
        let mut progress = Progress::default();
        let mut rd = wire;
        // Never hand rustls an empty reader: it would take that for EOF.
        while !rd.is_empty() && !self.peer_closed {
            match self.conn.read_tls(&mut rd) {
                // Only after close_notify, which the check above catches.
                Ok(0) => break,
                Ok(_) => {}
                // The plaintext buffer is emptied below after every record,
                // so this is rustls's own buffer refusing more: a record
                // larger than the protocol allows.
                Err(e) => {
                    let e = rustls::Error::General(format!("reading TLS records: {e}"));
                    return Err(self.fail(e, wire_out));
                }
            }
            let state = match self.conn.process_new_packets() {
                Ok(state) => state,
                Err(e) => return Err(self.fail(e, wire_out)),
            };
            let n = state.plaintext_bytes_to_read();
            if n > 0 {
                let start = app_in.len();
                app_in.resize(start + n, 0);
                let got = self.conn.reader().read(&mut app_in[start..]).unwrap_or(0);
                app_in.truncate(start + got);
                progress.app_bytes += got;
            }
            if state.peer_has_closed() {
                self.peer_closed = true;
                progress.peer_closed = true;
            }
            self.drain(wire_out);
        }
        self.drain(wire_out);
        progress.handshake_done = before && !self.conn.is_handshaking();
        Ok(progress)
    }

    fn on_wire_eof(
        &mut self,
        _app_in: &mut Vec<u8>,
        _wire_out: &mut Vec<u8>,
    ) -> Result<Progress, LayerError> {
        if self.failed {
            return Err(LayerError::Closed);
        }
        let mut progress = Progress::default();
        if !self.peer_closed {
            // Many clients close TCP without a close_notify. For a byte
            // stream that is an EOF like any other; say so in the log.
            log::debug!("TLS peer closed its transport without close_notify");
            self.peer_closed = true;
            progress.peer_closed = true;
        }
        Ok(progress)
    }

    fn on_app_output(&mut self, app: &[u8], wire_out: &mut Vec<u8>) -> Result<usize, LayerError> {
        if self.failed || self.closed {
            return Err(LayerError::Closed);
        }
        let mut taken = 0;
        while taken < app.len() {
            // rustls encrypts into its own queue, up to its buffer limit;
            // moving that queue into `wire_out` makes room for the next bit.
            let n = self.conn.writer().write(&app[taken..]).unwrap_or(0);
            self.drain(wire_out);
            if n == 0 {
                break;
            }
            taken += n;
        }
        Ok(taken)
    }

    fn close(&mut self, wire_out: &mut Vec<u8>) {
        if !self.closed && !self.failed {
            self.closed = true;
            self.conn.send_close_notify();
            self.drain(wire_out);
        }
    }

    fn handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    fn wants_read(&self) -> bool {
        !self.failed && !self.peer_closed && self.conn.wants_read()
    }

    fn is_finished(&self) -> bool {
        self.failed || (self.closed && self.peer_closed)
    }
}

// `Write` is needed for `writer().write`.
use std::io::Write as _;

#[cfg(test)]
mod tests;
