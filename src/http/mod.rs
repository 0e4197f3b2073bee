//! Bounded HTTP/1.1 request heads ([`parse_head`], on `httparse`) and the
//! few responses a small server sends ([`Response`]).
//!
//! This is not a web framework: enough HTTP to serve a page, answer
//! errors correctly and upgrade to a WebSocket. Bodies are not read: a
//! request that announces one is refused (400), since nothing here needs
//! one.
//!
//! Limits and what happens when they are hit:
//!
//! | limit | value | when hit |
//! |---|---|---|
//! | request head | [`MAX_HEAD`] = 8 KiB | 431, connection closed |
//! | header lines | [`MAX_HEADERS`] = 64 | 431, connection closed |
//!
//! ```
//! use mio_selectors::http::{parse_head, Response, Status};
//!
//! let bytes = b"GET /index.html?x=1 HTTP/1.1\r\nHost: example.org\r\n\r\nGET /next";
//! let (req, used) = parse_head(bytes)?.expect("a complete head");
//! assert_eq!((req.method(), req.path()), ("GET", "/index.html"));
//! assert_eq!(req.header("host"), Some("example.org"));
//! assert_eq!(&bytes[used..], b"GET /next"); // the next pipelined request
//!
//! let mut out = Vec::new();
//! Response::new(Status::NOT_FOUND).close().write_to(&mut out);
//! assert!(out.starts_with(b"HTTP/1.1 404 Not Found\r\n"));
//! # Ok::<(), mio_selectors::http::HeadError>(())
//! ```

use std::fmt;
use std::sync::Arc;

/// The largest request head accepted, request line and headers included.
pub const MAX_HEAD: usize = 8 * 1024;

/// The most header lines accepted in one request head.
pub const MAX_HEADERS: usize = 64;

/// An HTTP status code with its reason phrase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Status(pub u16);

impl Status {
    /// 101: the connection now speaks the protocol the client asked for.
    pub const SWITCHING_PROTOCOLS: Status = Status(101);
    /// 200.
    pub const OK: Status = Status(200);
    /// 400: the request is malformed.
    pub const BAD_REQUEST: Status = Status(400);
    /// 403: refused (a WebSocket upgrade from another origin).
    pub const FORBIDDEN: Status = Status(403);
    /// 404: no such path.
    pub const NOT_FOUND: Status = Status(404);
    /// 405: a method other than `GET`.
    pub const METHOD_NOT_ALLOWED: Status = Status(405);
    /// 431: the head is over [`MAX_HEAD`] or has over [`MAX_HEADERS`] lines.
    pub const HEADERS_TOO_LARGE: Status = Status(431);

    /// The reason phrase of the codes above (and a generic one otherwise).
    pub fn reason(self) -> &'static str {
        match self.0 {
            101 => "Switching Protocols",
            200 => "OK",
            400 => "Bad Request",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            426 => "Upgrade Required",
            431 => "Request Header Fields Too Large",
            500 => "Internal Server Error",
            _ => "Unknown",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.0, self.reason())
    }
}

/// Why a request head was refused, and the status that says so.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeadError {
    /// Not HTTP/1.x, or broken syntax (400).
    #[error("malformed request head: {0}")]
    Malformed(String),
    /// Over [`MAX_HEAD`] bytes or [`MAX_HEADERS`] lines (431).
    #[error("request head too large")]
    TooLarge,
}

impl HeadError {
    /// The status to answer with.
    pub fn status(&self) -> Status {
        match self {
            HeadError::Malformed(_) => Status::BAD_REQUEST,
            HeadError::TooLarge => Status::HEADERS_TOO_LARGE,
        }
    }
}

/// A parsed request head: method, target, version and headers, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    method: String,
    target: String,
    minor_version: u8,
    headers: Vec<(String, String)>,
}

impl Request {
    /// The method, as sent (`GET`).
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The request target as sent, query included (`/a?b=c`).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The target's path, without the query (`/a`).
    pub fn path(&self) -> &str {
        self.target.split(['?', '#']).next().unwrap_or("")
    }

    /// 1 for HTTP/1.1, 0 for HTTP/1.0.
    pub fn minor_version(&self) -> u8 {
        self.minor_version
    }

    /// The first header of that name (compared case-insensitively), with
    /// surrounding spaces trimmed. Values that are not UTF-8 are lossily
    /// converted.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every header, in order, as (name, value).
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Whether any header `name` lists `token` among its comma-separated
    /// values, case-insensitively (`Connection: keep-alive, Upgrade`).
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// The client will send another request on this connection (HTTP/1.1
    /// without `Connection: close`, or HTTP/1.0 with `keep-alive`).
    pub fn keep_alive(&self) -> bool {
        if self.minor_version == 0 {
            self.has_token("connection", "keep-alive")
        } else {
            !self.has_token("connection", "close")
        }
    }

    /// The request announces a body (`Content-Length` other than 0, or any
    /// `Transfer-Encoding`).
    pub fn has_body(&self) -> bool {
        self.header("transfer-encoding").is_some()
            || self
                .header("content-length")
                .is_some_and(|v| v.trim() != "0")
    }
}

/// Parses one request head from the start of `buf`.
///
/// `Ok(None)`: incomplete, read more. `Ok(Some((request, n)))`: the head
/// was the first `n` bytes; what follows is the next request (or the
/// upgraded protocol's bytes).
///
/// # Errors
///
/// [`HeadError::TooLarge`] once `buf` holds over [`MAX_HEAD`] bytes without
/// a complete head, or the head has over [`MAX_HEADERS`] lines;
/// [`HeadError::Malformed`] for anything that is not an HTTP/1.x request.
pub fn parse_head(buf: &[u8]) -> Result<Option<(Request, usize)>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let window = &buf[..buf.len().min(MAX_HEAD + 1)];
    match req.parse(window) {
        Ok(httparse::Status::Complete(n)) if n <= MAX_HEAD => {
            let request = Request {
                method: req.method.unwrap_or("").to_owned(),
                target: req.path.unwrap_or("").to_owned(),
                minor_version: req.version.unwrap_or(1),
                headers: req
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_owned(),
                            String::from_utf8_lossy(h.value).trim().to_owned(),
                        )
                    })
                    .collect(),
            };
            Ok(Some((request, n)))
        }
        Ok(httparse::Status::Complete(_)) => Err(HeadError::TooLarge),
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => Err(HeadError::TooLarge),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(HeadError::TooLarge),
        Err(e) => Err(HeadError::Malformed(e.to_string())),
    }
}

/// A response: status, headers, body. `Content-Length` is always sent;
/// [`close`](Response::close) adds `Connection: close`.
#[derive(Debug, Clone)]
pub struct Response {
    status: Status,
    headers: Vec<(&'static str, String)>,
    body: Arc<[u8]>,
    close: bool,
}

impl Response {
    /// A response with no headers and no body.
    pub fn new(status: Status) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Arc::from(&[][..]),
            close: false,
        }
    }

    /// 200 with `body` of `content_type`.
    pub fn ok(content_type: &str, body: impl Into<Arc<[u8]>>) -> Response {
        Response::new(Status::OK)
            .header("Content-Type", content_type)
            .body(body)
    }

    /// A status with a one-line plain-text body saying it (`404 Not
    /// Found`), the connection kept.
    pub fn plain(status: Status) -> Response {
        Response::new(status)
            .header("Content-Type", "text/plain; charset=utf-8")
            .body(format!("{status}\n").into_bytes())
    }

    /// [`plain`](Response::plain) with `Connection: close`, for errors
    /// after which the connection is not worth keeping (405 also says
    /// `Allow: GET`).
    pub fn error(status: Status) -> Response {
        let mut r = Response::plain(status).close();
        if status == Status::METHOD_NOT_ALLOWED {
            r = r.header("Allow", "GET");
        }
        r
    }

    /// 101 to a WebSocket upgrade, with the `Sec-WebSocket-Accept` value
    /// derived from the client's key.
    pub fn switching_protocols(accept: &str) -> Response {
        Response::new(Status::SWITCHING_PROTOCOLS)
            .header("Upgrade", "websocket")
            .header("Connection", "Upgrade")
            .header("Sec-WebSocket-Accept", accept)
    }

    /// Adds a header.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Arc<[u8]>>) -> Response {
        self.body = body.into();
        self
    }

    /// Adds `Connection: close`: the server closes after this response.
    pub fn close(mut self) -> Response {
        self.close = true;
        self
    }

    /// The status.
    pub fn status(&self) -> Status {
        self.status
    }

    /// Whether the connection closes after this response.
    pub fn closes(&self) -> bool {
        self.close
    }

    /// Appends the response, head and body, to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        use std::io::Write as _;
        // Writing into a Vec cannot fail.
        let _ = write!(out, "HTTP/1.1 {}\r\n", self.status);
        for (name, value) in &self.headers {
            let _ = write!(out, "{name}: {value}\r\n");
        }
        if self.status != Status::SWITCHING_PROTOCOLS {
            let _ = write!(out, "Content-Length: {}\r\n", self.body.len());
        }
        if self.close {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Option<(Request, usize)>, HeadError> {
        parse_head(s.as_bytes())
    }

    #[test]
    fn a_complete_head_and_what_follows_it() {
        let s = "GET /ws?room=a HTTP/1.1\r\nHost: h:1\r\nConnection: keep-alive, Upgrade\r\nUpgrade: WebSocket\r\n\r\nrest";
        let (r, n) = parse(s).unwrap().unwrap();
        assert_eq!(&s[n..], "rest");
        assert_eq!(r.method(), "GET");
        assert_eq!(r.target(), "/ws?room=a");
        assert_eq!(r.path(), "/ws");
        assert_eq!(r.minor_version(), 1);
        assert_eq!(r.header("HOST"), Some("h:1"));
        assert!(r.has_token("connection", "upgrade"));
        assert!(r.has_token("upgrade", "websocket"));
        assert!(!r.has_token("connection", "close"));
        assert!(r.keep_alive());
        assert!(!r.has_body());
        assert_eq!(r.headers().count(), 3);
    }

    #[test]
    fn incomplete_heads_ask_for_more() {
        let full = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        for cut in 0..full.len() {
            assert_eq!(parse(&full[..cut]).unwrap(), None, "cut at {cut}");
        }
        assert!(parse(full).unwrap().is_some());
    }

    #[test]
    fn bare_lf_line_ends_are_accepted() {
        let (r, n) = parse("GET / HTTP/1.1\nHost: x\n\n").unwrap().unwrap();
        assert_eq!((r.path(), n), ("/", 24));
    }

    #[test]
    fn malformed_heads_are_400() {
        for bad in [
            "GARBAGE\r\n\r\n",
            "GET / HTTP/2.0\r\n\r\n",
            "GET / HTTP/1.1\r\nNo colon here\r\n\r\n",
            "GET  / HTTP/1.1\r\n\r\n\0",
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.status(), Status::BAD_REQUEST, "{bad:?}: {e}");
        }
        // A TLS ClientHello sent to a plaintext port.
        let hello = [
            0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
        ];
        assert!(matches!(parse_head(&hello), Err(HeadError::Malformed(_))));
    }

    #[test]
    fn oversized_heads_are_431() {
        let mut big = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
        while big.len() <= MAX_HEAD {
            big.push_str("X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        // Too large before it is even complete, and once complete.
        assert_eq!(parse(&big).unwrap_err(), HeadError::TooLarge);
        big.push_str("\r\n");
        assert_eq!(parse(&big).unwrap_err(), HeadError::TooLarge);

        let mut many = String::from("GET / HTTP/1.1\r\n");
        for i in 0..=MAX_HEADERS {
            many.push_str(&format!("H{i}: v\r\n"));
        }
        many.push_str("\r\n");
        assert!(many.len() < MAX_HEAD);
        let e = parse(&many).unwrap_err();
        assert_eq!(e.status(), Status::HEADERS_TOO_LARGE);
    }

    #[test]
    fn exactly_max_head_is_accepted() {
        let mut s = String::from("GET / HTTP/1.1\r\nX: ");
        let pad = MAX_HEAD - s.len() - 4;
        s.push_str(&"a".repeat(pad));
        s.push_str("\r\n\r\n");
        assert_eq!(s.len(), MAX_HEAD);
        assert!(parse(&s).unwrap().is_some());
    }

    #[test]
    fn keep_alive_and_bodies() {
        let r = |s: &str| parse(s).unwrap().unwrap().0;
        assert!(!r("GET / HTTP/1.0\r\n\r\n").keep_alive());
        assert!(r("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive());
        assert!(!r("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive());
        assert!(r("GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\n").has_body());
        assert!(!r("GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n").has_body());
        assert!(r("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").has_body());
    }

    #[test]
    fn responses() {
        let mut out = Vec::new();
        Response::ok("text/html; charset=utf-8", &b"<p>hi</p>"[..]).write_to(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: 9\r\n\r\n<p>hi</p>"
        );

        let mut out = Vec::new();
        Response::error(Status::METHOD_NOT_ALLOWED).write_to(&mut out);
        let s = String::from_utf8(out).unwrap();
        assert!(s.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"), "{s}");
        assert!(s.contains("\r\nAllow: GET\r\n") && s.contains("\r\nConnection: close\r\n"));
        assert!(s.ends_with("\r\n\r\n405 Method Not Allowed\n"), "{s}");

        for status in [
            Status::BAD_REQUEST,
            Status::FORBIDDEN,
            Status::NOT_FOUND,
            Status::HEADERS_TOO_LARGE,
        ] {
            let r = Response::error(status);
            assert!(r.closes());
            let mut out = Vec::new();
            r.write_to(&mut out);
            let head = format!("HTTP/1.1 {} {}\r\n", status.0, status.reason());
            assert!(out.starts_with(head.as_bytes()));
        }

        let mut out = Vec::new();
        Response::switching_protocols("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=").write_to(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
        );
    }
}
