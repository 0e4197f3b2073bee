//! [`WebServer`]: an HTTP/1.1 connection that serves pages and may upgrade
//! to a WebSocket, as a [`Layer`].

use std::fmt;
use std::sync::Arc;

use crate::http::{parse_head, HeadError, Request, Response, Status, MAX_HEAD};
use crate::layer::{Layer, LayerError, Progress, SharedEncoding};

use super::{WsConfig, WsSession};

/// Requests served on one keep-alive connection before it is closed (the
/// last response says `Connection: close`), so pipelining small requests
/// for a large page cannot multiply output without end.
pub const MAX_REQUESTS_PER_CONNECTION: usize = 100;

/// Who may open the WebSocket, judged on the upgrade request.
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum OriginCheck {
    /// The `Origin` header must name this server as the client reached
    /// it: scheme `http` (`https` on TLS) and the request's `Host`
    /// (default port implied). A missing `Origin` is refused. This stops
    /// other sites' pages from opening sockets to us with the user's
    /// browser (cross-site WebSocket hijacking).
    #[default]
    SameHost,
    /// Any origin, or none (non-browser clients).
    Any,
    /// Your own rule.
    Custom(Arc<dyn Fn(&Request) -> bool + Send + Sync>),
}

impl fmt::Debug for OriginCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OriginCheck::SameHost => f.write_str("SameHost"),
            OriginCheck::Any => f.write_str("Any"),
            OriginCheck::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

/// `host[:port]`, lowercased, with the scheme's default port made explicit.
fn authority(host: &str, secure: bool) -> String {
    let host = host.trim().to_ascii_lowercase();
    let has_port = match host.rfind(':') {
        // `[::1]` has colons but no port; `[::1]:80` and `h:80` have one.
        Some(i) => !host[i..].contains(']'),
        None => false,
    };
    if has_port {
        host
    } else {
        format!("{host}:{}", if secure { 443 } else { 80 })
    }
}

impl OriginCheck {
    /// Whether `req` may upgrade, on a connection that is TLS if `secure`.
    pub fn allows(&self, req: &Request, secure: bool) -> bool {
        match self {
            OriginCheck::Any => true,
            OriginCheck::Custom(f) => f(req),
            OriginCheck::SameHost => {
                let (Some(origin), Some(host)) = (req.header("origin"), req.header("host")) else {
                    return false;
                };
                let scheme = if secure { "https://" } else { "http://" };
                let Some(rest) = origin
                    .get(..scheme.len())
                    .filter(|s| s.eq_ignore_ascii_case(scheme))
                    .map(|_| &origin[scheme.len()..])
                else {
                    return false;
                };
                !rest.contains('/') && authority(rest, secure) == authority(host, secure)
            }
        }
    }
}

/// What a [`WebServer`] serves: pages by path, one WebSocket path, and the
/// origin rule. Built once and shared by every connection.
///
/// ```
/// use mio_selectors::ws::{Site, WebServer};
/// let site = Site::new()
///     .page("/", "text/html; charset=utf-8", &b"<!doctype html><p>hello</p>"[..])
///     .websocket("/ws")
///     .into_shared();
/// let conn = WebServer::new(site.clone());
/// # let _ = conn;
/// ```
#[derive(Debug, Clone, Default)]
pub struct Site {
    pages: Vec<(String, Response)>,
    websocket: Option<String>,
    origin: OriginCheck,
    secure: bool,
    ws: WsConfig,
}

impl Site {
    /// A site with nothing on it (every path is 404).
    pub fn new() -> Self {
        Site::default()
    }

    /// Serve `body` as `content_type` at `path`.
    pub fn page(self, path: &str, content_type: &str, body: impl Into<Arc<[u8]>>) -> Self {
        let response = Response::ok(content_type, body)
            .header("Cache-Control", "no-store")
            .header("X-Content-Type-Options", "nosniff");
        self.response(path, response)
    }

    /// Serve a response of your own at `path` (extra headers, a
    /// `Content-Security-Policy`).
    pub fn response(mut self, path: &str, response: Response) -> Self {
        self.pages.retain(|(p, _)| p != path);
        self.pages.push((path.to_owned(), response));
        self
    }

    /// Upgrade `GET path` to a WebSocket.
    pub fn websocket(mut self, path: &str) -> Self {
        self.websocket = Some(path.to_owned());
        self
    }

    /// Who may upgrade (default [`OriginCheck::SameHost`]).
    pub fn origin(mut self, check: OriginCheck) -> Self {
        self.origin = check;
        self
    }

    /// The connections are TLS (the origin check expects `https://`).
    pub fn secure(mut self, yes: bool) -> Self {
        self.secure = yes;
        self
    }

    /// WebSocket limits.
    pub fn ws_config(mut self, config: WsConfig) -> Self {
        self.ws = config;
        self
    }

    /// Into an `Arc`, to hand to each connection.
    pub fn into_shared(self) -> Arc<Site> {
        Arc::new(self)
    }
}

/// What to do with one request.
enum Route {
    Respond(Response),
    Upgrade(Response),
}

impl Site {
    fn route(&self, req: &Request) -> Route {
        if req.method() != "GET" {
            return Route::Respond(Response::error(Status::METHOD_NOT_ALLOWED));
        }
        // HTTP/1.1 requires Host; bodies are not read here, so a request
        // that has one would desynchronise the connection.
        if (req.minor_version() == 1 && req.header("host").is_none()) || req.has_body() {
            return Route::Respond(Response::error(Status::BAD_REQUEST));
        }
        if self.websocket.as_deref() == Some(req.path()) {
            return self.upgrade(req);
        }
        match self.pages.iter().find(|(p, _)| p == req.path()) {
            Some((_, page)) => Route::Respond(page.clone()),
            None => Route::Respond(Response::plain(Status::NOT_FOUND)),
        }
    }

    fn upgrade(&self, req: &Request) -> Route {
        let key = req.header("sec-websocket-key");
        let valid = req.has_token("upgrade", "websocket")
            && req.has_token("connection", "upgrade")
            && req.header("sec-websocket-version") == Some("13")
            && key.is_some_and(|k| k.len() == 24);
        if !valid {
            let r = Response::error(Status::BAD_REQUEST).header("Sec-WebSocket-Version", "13");
            return Route::Respond(r);
        }
        if !self.origin.allows(req, self.secure) {
            log::info!(
                "WebSocket upgrade refused: Origin {:?} for Host {:?}",
                req.header("origin"),
                req.header("host")
            );
            return Route::Respond(Response::error(Status::FORBIDDEN));
        }
        let accept = tungstenite::handshake::derive_accept_key(key.unwrap_or("").as_bytes());
        Route::Upgrade(Response::switching_protocols(&accept))
    }
}

enum Phase {
    /// Reading request heads (at most [`MAX_HEAD`] bytes buffered).
    Head(Vec<u8>),
    /// Upgraded.
    Ws(Box<WsSession>),
    /// Responded with `Connection: close`, failed, or the peer left.
    Done,
}

/// One HTTP/1.1 connection: request heads are parsed (bounded), pages and
/// errors answered, pipelined requests answered in order, and `GET` on the
/// site's WebSocket path upgraded, after which it is a [`WsSession`].
///
/// | request | answer |
/// |---|---|
/// | a page's path | 200, connection kept (HTTP/1.1) |
/// | the WebSocket path, valid upgrade, origin allowed | 101, then WebSocket |
/// | the WebSocket path, wrong `Origin` | 403, closed |
/// | the WebSocket path without a valid upgrade | 400, closed |
/// | any other path | 404, connection kept |
/// | a method other than `GET` | 405, closed |
/// | malformed, a body, no `Host` | 400, closed |
/// | head over 8 KiB or 64 headers | 431, closed |
///
/// [`handshaking`](Layer::handshaking) is true until the upgrade, so a
/// connection that only fetched a page never reaches the application.
/// The head timeout is the caller's (the reactor's) job.
pub struct WebServer {
    site: Arc<Site>,
    phase: Phase,
    served: usize,
    request: Option<Request>,
}

impl fmt::Debug for WebServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let phase = match self.phase {
            Phase::Head(_) => "head",
            Phase::Ws(_) => "websocket",
            Phase::Done => "done",
        };
        f.debug_struct("WebServer")
            .field("phase", &phase)
            .field("served", &self.served)
            .finish_non_exhaustive()
    }
}

impl WebServer {
    /// A connection to `site`, waiting for its first request.
    pub fn new(site: Arc<Site>) -> Self {
        WebServer {
            site,
            phase: Phase::Head(Vec::new()),
            served: 0,
            request: None,
        }
    }

    /// The request that was upgraded, once it was.
    pub fn upgrade_request(&self) -> Option<&Request> {
        self.request.as_ref()
    }

    /// Whether the connection has been upgraded to a WebSocket.
    pub fn is_websocket(&self) -> bool {
        matches!(self.phase, Phase::Ws(_))
    }

    fn refuse(&mut self, e: &HeadError, wire_out: &mut Vec<u8>) -> LayerError {
        let status = e.status();
        log::debug!("HTTP request refused with {status}: {e}");
        Response::error(status).write_to(wire_out);
        self.phase = Phase::Done;
        LayerError::Http {
            status: status.0,
            reason: status.reason(),
        }
    }

    /// Answer every complete head in `buf`; returns the bytes after an
    /// upgrade, if one happened.
    fn serve(
        &mut self,
        buf: &mut Vec<u8>,
        wire_out: &mut Vec<u8>,
    ) -> Result<Option<Vec<u8>>, LayerError> {
        let mut used = 0;
        let result = loop {
            let (req, n) = match parse_head(&buf[used..]) {
                Ok(Some(head)) => head,
                Ok(None) => break Ok(None),
                Err(e) => break Err(self.refuse(&e, wire_out)),
            };
            used += n;
            self.served += 1;
            match self.site.route(&req) {
                Route::Upgrade(response) => {
                    response.write_to(wire_out);
                    self.request = Some(req);
                    break Ok(Some(buf[used..].to_vec()));
                }
                Route::Respond(mut response) => {
                    let last = !req.keep_alive() || self.served >= MAX_REQUESTS_PER_CONNECTION;
                    if last && !response.closes() {
                        response = response.close();
                    }
                    response.write_to(wire_out);
                    if response.closes() {
                        self.phase = Phase::Done;
                        let status = response.status();
                        if status.0 >= 400 && status != Status::NOT_FOUND {
                            break Err(LayerError::Http {
                                status: status.0,
                                reason: status.reason(),
                            });
                        }
                        break Ok(None);
                    }
                }
            }
        };
        buf.drain(..used);
        result
    }
}

impl Layer for WebServer {
    fn start(&mut self, _wire_out: &mut Vec<u8>) -> Result<(), LayerError> {
        Ok(())
    }

    fn on_wire_input(
        &mut self,
        wire: &[u8],
        app_in: &mut Vec<u8>,
        wire_out: &mut Vec<u8>,
    ) -> Result<Progress, LayerError> {
        let mut rest = wire;
        loop {
            match &mut self.phase {
                Phase::Done => return Ok(Progress::default()),
                Phase::Ws(ws) => return ws.on_wire_input(rest, app_in, wire_out),
                Phase::Head(buf) => {
                    // Take no more than one head's worth at a time, so the
                    // buffer stays within MAX_HEAD + 1 whatever arrives.
                    let take = (MAX_HEAD + 1 - buf.len().min(MAX_HEAD)).min(rest.len());
                    buf.extend_from_slice(&rest[..take]);
                    rest = &rest[take..];
                    let mut buf = std::mem::take(buf);
                    let upgraded = self.serve(&mut buf, wire_out)?;
                    if let Some(after) = upgraded {
                        let mut ws = Box::new(WsSession::new(self.site.ws));
                        let mut p = ws.on_wire_input(&after, app_in, wire_out);
                        self.phase = Phase::Ws(ws);
                        if let Ok(p) = &mut p {
                            if !rest.is_empty() {
                                let Phase::Ws(ws) = &mut self.phase else {
                                    unreachable!()
                                };
                                let more = ws.on_wire_input(rest, app_in, wire_out)?;
                                p.app_bytes += more.app_bytes;
                                p.peer_closed |= more.peer_closed;
                            }
                            p.handshake_done = true;
                        }
                        return p;
                    }
                    if let Phase::Head(slot) = &mut self.phase {
                        *slot = buf;
                        if rest.is_empty() {
                            return Ok(Progress::default());
                        }
                    }
                }
            }
        }
    }

    fn on_wire_eof(
        &mut self,
        app_in: &mut Vec<u8>,
        wire_out: &mut Vec<u8>,
    ) -> Result<Progress, LayerError> {
        match &mut self.phase {
            Phase::Ws(ws) => ws.on_wire_eof(app_in, wire_out),
            Phase::Head(_) | Phase::Done => {
                self.phase = Phase::Done;
                Ok(Progress {
                    peer_closed: true,
                    ..Progress::default()
                })
            }
        }
    }

    fn on_app_output(&mut self, app: &[u8], wire_out: &mut Vec<u8>) -> Result<usize, LayerError> {
        match &mut self.phase {
            Phase::Ws(ws) => ws.on_app_output(app, wire_out),
            // Nothing goes out before the upgrade.
            Phase::Head(_) => Ok(0),
            Phase::Done => Err(LayerError::Closed),
        }
    }

    fn shared_encoding(&self) -> Option<SharedEncoding> {
        match &self.phase {
            Phase::Ws(ws) => ws.shared_encoding(),
            _ => None,
        }
    }

    fn encode_shared(&self, app: &[u8], wire_out: &mut Vec<u8>) -> Result<(), LayerError> {
        match &self.phase {
            Phase::Ws(ws) => ws.encode_shared(app, wire_out),
            _ => Err(LayerError::Closed),
        }
    }

    fn close(&mut self, wire_out: &mut Vec<u8>) {
        match &mut self.phase {
            Phase::Ws(ws) => ws.close(wire_out),
            Phase::Head(_) => self.phase = Phase::Done,
            Phase::Done => {}
        }
    }

    fn handshaking(&self) -> bool {
        matches!(self.phase, Phase::Head(_))
    }

    fn wants_read(&self) -> bool {
        match &self.phase {
            Phase::Head(_) => true,
            Phase::Ws(ws) => ws.wants_read(),
            Phase::Done => false,
        }
    }

    fn is_finished(&self) -> bool {
        match &self.phase {
            Phase::Ws(ws) => ws.is_finished(),
            Phase::Head(_) => false,
            Phase::Done => true,
        }
    }
}
