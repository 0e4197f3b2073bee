//! `--tls-cert PEM --tls-key PEM` for the server examples: both or neither;
//! a file that is unreadable or invalid ends the program with status 1 and
//! one line naming the file.

use std::path::PathBuf;
use std::time::Duration;

use mio_selectors::reactor::Wrap;

/// A loaded server config (nothing can be loaded without the `tls` feature).
#[cfg(feature = "tls")]
pub type ServerTls = std::sync::Arc<mio_selectors::tls::rustls::ServerConfig>;
/// A loaded server config (nothing can be loaded without the `tls` feature).
#[cfg(not(feature = "tls"))]
#[derive(Clone, Debug)]
pub enum ServerTls {}

/// The TLS flags.
#[derive(clap::Args, Debug, Clone)]
pub struct TlsArgs {
    /// PEM certificate chain: the listeners speak TLS 1.2/1.3 (needs --tls-key).
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Seconds a client has to finish its TLS handshake.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = positive_secs)]
    pub tls_handshake_timeout: Duration,
}

/// A positive, finite number of seconds, at most a day.
pub fn positive_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if !(secs > 0.0 && secs <= 86_400.0) {
        return Err(format!("{s} is not between 0 (excluded) and 86400 seconds"));
    }
    Ok(Duration::from_secs_f64(secs))
}

impl TlsArgs {
    /// The server config, if TLS was asked for; `Err` is the line to print.
    pub fn server_config(&self) -> Result<Option<ServerTls>, String> {
        match (&self.tls_cert, &self.tls_key) {
            #[cfg(feature = "tls")]
            (Some(cert), Some(key)) => mio_selectors::tls::server_config(cert, key)
                .map(Some)
                .map_err(|e| e.to_string()),
            #[cfg(not(feature = "tls"))]
            (Some(_), Some(_)) => Err("built without TLS (cargo feature `tls`)".into()),
            _ => Ok(None),
        }
    }

    /// The wrap for a TLS listener, with the handshake timeout.
    pub fn wrap(&self, tls: &ServerTls) -> Wrap {
        #[cfg(feature = "tls")]
        return Wrap::tls(tls.clone()).handshake_timeout(self.tls_handshake_timeout);
        #[cfg(not(feature = "tls"))]
        match *tls {}
    }
}
