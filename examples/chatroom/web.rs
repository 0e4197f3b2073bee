//! `chatroom --web HOST:PORT`: the browser client. `GET /` is the page in
//! `web/index.html` (one self-contained file), `GET /ws` upgrades to a
//! WebSocket whose text messages are lines of the same room, handled by
//! the same `ChatServer` as TCP clients (same names, commands, limits and
//! order). The library's `WebServer` layer answers everything else (404,
//! 405, 400, 431, 403 for a foreign `Origin`); a connection that sends no
//! complete request head within `--web-head-timeout` (10 s) is closed.

use std::time::Duration;

use mio_selectors::group::ReactorGroup;
use mio_selectors::reactor::Wrap;
use mio_selectors::{Handler, Reactor};

use super::common::tls::ServerTls;

/// The page, compiled in.
#[cfg(feature = "websocket")]
const PAGE: &str = include_str!("web/index.html");

/// What the page may do, should anything ever be rendered as markup: run
/// only its own inline script and style, talk only to its own host.
#[cfg(feature = "websocket")]
const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                   connect-src 'self'; img-src 'none'; base-uri 'none'; form-action 'none'";

/// The web flags.
#[derive(clap::Args, Debug, Clone)]
pub struct WebArgs {
    /// Also serve the browser client (page and WebSocket) on HOST:PORT.
    #[arg(long, value_name = "HOST:PORT", value_parser = super::common::host_port)]
    pub web: Option<std::net::SocketAddr>,
    /// Seconds a web connection has to send a complete request head.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = super::common::tls::positive_secs)]
    pub web_head_timeout: Duration,
}

/// The site: the page at `/`, the room at `/ws`. Messages up to 1 MiB, or
/// 16 times the line limit if that is more, are taken (a long one gets the
/// long-line error from the chat, as a long TCP line does); past that the
/// socket is closed with 1009. A message is held whole while it arrives
/// (tungstenite's framing), so this is also the most a browser client's
/// input can hold, beside the output cap.
#[cfg(feature = "websocket")]
fn site(secure: bool, max_line: usize) -> std::sync::Arc<mio_selectors::ws::Site> {
    use mio_selectors::ws::{Site, WsConfig};
    let page = mio_selectors::http::Response::ok("text/html; charset=utf-8", PAGE.as_bytes())
        .header("Cache-Control", "no-store")
        .header("X-Content-Type-Options", "nosniff")
        .header("Content-Security-Policy", CSP);
    let max_message = max_line.saturating_mul(16).max(1 << 20);
    Site::new()
        .response("/", page)
        .websocket("/ws")
        .secure(secure)
        .ws_config(WsConfig::default().max_message(max_message))
        .into_shared()
}

/// Binds the web listener if `--web` was given; returns its readiness line
/// (`web on http://ADDR/`, `https://` with TLS).
pub fn listen<H: Handler>(
    reactor: &mut Reactor<H>,
    args: &WebArgs,
    tls: Option<ServerTls>,
    max_line: usize,
) -> mio_selectors::Result<Option<String>> {
    let Some((addr, wrap, scheme)) = wrap(args, tls, max_line)? else {
        return Ok(None);
    };
    let id = reactor.listen(addr)?;
    reactor.wrap_listener(id, wrap)?;
    let bound = reactor.local_addr(id)?;
    Ok(Some(format!("web on {scheme}://{bound}/")))
}

/// As [`listen`], for a group: the web listener is the group's, so a
/// browser joins the same room on whichever reactor serves it.
pub fn listen_group(
    group: &mut ReactorGroup,
    args: &WebArgs,
    tls: Option<ServerTls>,
    max_line: usize,
) -> mio_selectors::Result<Option<String>> {
    let Some((addr, wrap, scheme)) = wrap(args, tls, max_line)? else {
        return Ok(None);
    };
    let bound = group.listen_wrapped(addr, wrap)?;
    Ok(Some(format!("web on {scheme}://{bound}/")))
}

/// `--web`'s address, the wrap of its connections and their scheme.
fn wrap(
    args: &WebArgs,
    tls: Option<ServerTls>,
    max_line: usize,
) -> mio_selectors::Result<Option<(std::net::SocketAddr, Wrap, &'static str)>> {
    let Some(addr) = args.web else {
        return Ok(None);
    };
    #[cfg(not(feature = "websocket"))]
    {
        let _ = (tls, max_line, addr);
        Err(mio_selectors::Error::Config(
            "--web: built without WebSocket (cargo feature `websocket`)",
        ))
    }
    #[cfg(feature = "websocket")]
    {
        let site = site(tls.is_some(), max_line);
        let (wrap, scheme) = match tls {
            #[cfg(feature = "tls")]
            Some(tls) => (Wrap::web_tls(tls, site), "https"),
            #[cfg(not(feature = "tls"))]
            Some(tls) => match tls {},
            None => (Wrap::web(site), "http"),
        };
        let wrap = wrap.handshake_timeout(args.web_head_timeout);
        Ok(Some((addr, wrap, scheme)))
    }
}
