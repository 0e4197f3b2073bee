//! [`Wrap`]: a protocol [`Layer`] (TLS, HTTP/WebSocket) that the reactor
//! puts between a connection's socket and its [`Handler`](crate::Handler).
//!
//! A wrapped connection is driven by the reactor like any other: it reads
//! ciphertext (or frames) until `WouldBlock`, hands it to the layer, gives
//! the plaintext (or lines) to the handler through `inb`, and every byte
//! the layer or the handler produces goes through the same `outb`, with the
//! same high-water pause and `max_outb` cap as plain TCP.
//!
//! The handler first hears of a wrapped connection when its handshake is
//! done (TLS finished, WebSocket upgraded): `accept_wrapper` for accepted
//! ones, `connection_made` for outgoing ones. A connection whose handshake
//! fails, or does not finish within the wrap's handshake timeout (10 s by
//! default), is closed without the handler ever seeing it; a browser that
//! only fetched the page never becomes a client.

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::TimerId;
use crate::layer::Layer;

/// A layer for one connection, owned by the reactor.
pub type BoxLayer = Box<dyn Layer + Send>;

/// The default time a connection has to finish its handshake (TLS) or
/// send a complete request head (HTTP).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

type Make = dyn Fn() -> Result<BoxLayer, String> + Send + Sync;

/// How a listener's connections (or one outgoing connection) are wrapped:
/// a factory of [`Layer`]s and a handshake timeout.
///
/// ```
/// # #[cfg(feature = "tls")]
/// # fn f(reactor: &mut mio_selectors::Reactor<impl mio_selectors::Handler>) -> Result<(), Box<dyn std::error::Error>> {
/// use mio_selectors::reactor::Wrap;
/// let config = mio_selectors::tls::server_config("cert.pem", "key.pem")?;
/// let id = reactor.listen("127.0.0.1:8443")?;
/// reactor.wrap_listener(id, Wrap::tls(config))?; // the handler sees plaintext
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Wrap {
    make: Arc<Make>,
    name: &'static str,
    pub(crate) handshake_timeout: Duration,
}

impl fmt::Debug for Wrap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wrap")
            .field("layer", &self.name)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish()
    }
}

impl Wrap {
    /// Wraps with layers made by `make` (called once per connection; an
    /// `Err` closes that connection and is logged), named `name` in logs.
    pub fn new(
        name: &'static str,
        make: impl Fn() -> Result<BoxLayer, String> + Send + Sync + 'static,
    ) -> Wrap {
        Wrap {
            make: Arc::new(make),
            name,
            handshake_timeout: HANDSHAKE_TIMEOUT,
        }
    }

    /// TLS server side, with `config` (see [`tls::server_config`](crate::tls::server_config)).
    #[cfg(feature = "tls")]
    pub fn tls(config: Arc<rustls::ServerConfig>) -> Wrap {
        Wrap::new("tls", move || {
            crate::tls::TlsSession::server(config.clone())
                .map(|s| Box::new(s) as BoxLayer)
                .map_err(|e| e.to_string())
        })
    }

    /// HTTP/1.1 serving `site`, upgrading its WebSocket path; the handler
    /// sees WebSocket clients as line clients.
    #[cfg(feature = "websocket")]
    pub fn web(site: Arc<crate::ws::Site>) -> Wrap {
        Wrap::new("http", move || {
            Ok(Box::new(crate::ws::WebServer::new(site.clone())) as BoxLayer)
        })
    }

    /// HTTPS and WSS: TLS with `config` under [`Wrap::web`]. Build `site`
    /// with [`Site::secure`](crate::ws::Site::secure) so the origin check
    /// expects `https://`.
    #[cfg(all(feature = "tls", feature = "websocket"))]
    pub fn web_tls(config: Arc<rustls::ServerConfig>, site: Arc<crate::ws::Site>) -> Wrap {
        Wrap::new("https", move || {
            let tls = crate::tls::TlsSession::server(config.clone()).map_err(|e| e.to_string())?;
            let web = crate::ws::WebServer::new(site.clone());
            Ok(Box::new(crate::layer::Stack::new(tls, web)) as BoxLayer)
        })
    }

    /// TLS client side for an outgoing connection to `server_name`.
    ///
    /// # Errors
    ///
    /// [`TlsConfigError::ServerName`](crate::tls::TlsConfigError::ServerName)
    /// for a name that is neither a DNS name nor an IP address.
    #[cfg(feature = "tls")]
    pub fn tls_client(
        config: Arc<rustls::ClientConfig>,
        server_name: &str,
    ) -> Result<Wrap, crate::tls::TlsConfigError> {
        // Checked now, so a bad name fails here rather than per connection.
        crate::tls::TlsSession::client(config.clone(), server_name)?;
        let name = server_name.to_owned();
        Ok(Wrap::new("tls-client", move || {
            crate::tls::TlsSession::client(config.clone(), &name)
                .map(|s| Box::new(s) as BoxLayer)
                .map_err(|e| e.to_string())
        }))
    }

    /// Sets the handshake timeout (default [`HANDSHAKE_TIMEOUT`]).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Wrap {
        self.handshake_timeout = timeout;
        self
    }

    pub(crate) fn make(&self) -> Result<BoxLayer, String> {
        (self.make)()
    }

    pub(crate) fn name(&self) -> &'static str {
        self.name
    }
}

/// A wrapped connection's layer and where it is in its handshake.
pub(crate) struct Wrapped {
    pub(crate) layer: BoxLayer,
    /// The handler has not been told about the connection yet.
    pub(crate) handshaking: bool,
    /// The handshake timeout, while handshaking.
    pub(crate) timer: Option<TimerId>,
    /// Closed by us at the layer (close_notify, Close frame) already.
    pub(crate) closed: bool,
    /// The handshake timeout, for an outgoing connection whose handshake
    /// starts once connected.
    pub(crate) timeout: std::time::Duration,
}

impl Wrapped {
    pub(crate) fn new(layer: BoxLayer) -> Box<Wrapped> {
        Box::new(Wrapped {
            layer,
            handshaking: true,
            timer: None,
            closed: false,
            timeout: HANDSHAKE_TIMEOUT,
        })
    }

    /// Starts the layer's own close (once), into `out`.
    pub(crate) fn close(&mut self, out: &mut Vec<u8>) {
        if !std::mem::replace(&mut self.closed, true) {
            self.layer.close(out);
        }
    }
}

/// Scratch kept per thread for what layers write (at most this much is
/// kept between uses).
const SCRATCH_KEEP: usize = 256 * 1024;

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with an empty scratch buffer (the thread's, reused); `f`
/// takes the bytes out (`mem::take`) and hands the buffer back with
/// [`give_back_scratch`] when done with them.
pub(crate) fn with_scratch<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    let mut v = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
    v.clear();
    f(&mut v)
}

/// Returns a scratch buffer for reuse (dropped if it grew past `SCRATCH_KEEP`).
pub(crate) fn give_back_scratch(mut v: Vec<u8>) {
    v.clear();
    if v.capacity() <= SCRATCH_KEEP {
        SCRATCH.with(|s| {
            let mut slot = s.borrow_mut();
            if slot.capacity() < v.capacity() {
                *slot = v;
            }
        });
    }
}
