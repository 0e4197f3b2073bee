//! The HTTP side of [`Reactor::serve_metrics`](crate::Reactor::serve_metrics):
//! one bounded request head, parsed with `httparse`, one response, close.
//!
//! Kept to what a scraper needs (`GET /metrics`, or `HEAD`), so that it can
//! give way to the crate's general HTTP module without changing the loop.
//!
//! | input | response |
//! |---|---|
//! | `GET /metrics` (any query) or `HEAD /metrics` | 200, the text format |
//! | another path | 404 |
//! | another method | 405 with `Allow: GET, HEAD` |
//! | a head past [`MAX_HEAD`] bytes or [`MAX_HEADERS`] lines | 431 |
//! | anything `httparse` rejects | 400 |
//!
//! Every response says `Connection: close` and the connection is closed
//! once it is sent; anything after the head (a body, a pipelined request)
//! is ignored.

use std::fmt::Write;

use super::CONTENT_TYPE;

/// The largest request head read, request line and headers included.
pub const MAX_HEAD: usize = 8 * 1024;

/// The most header lines read in one request head.
pub const MAX_HEADERS: usize = 32;

/// What to do with the bytes a scrape connection sent so far.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Exchange {
    /// The head is not complete yet: read more.
    Incomplete,
    /// Send this, then close.
    Respond(Vec<u8>),
}

/// Parses `input` as a request head and answers it, rendering the body with
/// `body` only for a request that gets it.
pub(crate) fn exchange(input: &[u8], body: impl FnOnce() -> String) -> Exchange {
    let head = &input[..input.len().min(MAX_HEAD)];
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) if input.len() < MAX_HEAD => return Exchange::Incomplete,
        Ok(httparse::Status::Partial) | Err(httparse::Error::TooManyHeaders) => {
            return Exchange::Respond(response(431, "Request Header Fields Too Large", None, ""));
        }
        Err(_) => return Exchange::Respond(response(400, "Bad Request", None, "")),
    }
    let method = req.method.unwrap_or("");
    let path = req.path.unwrap_or("");
    let path = path.split('?').next().unwrap_or("");
    if method != "GET" && method != "HEAD" {
        return Exchange::Respond(response(405, "Method Not Allowed", Some("GET, HEAD"), ""));
    }
    if path != "/metrics" {
        return Exchange::Respond(response(404, "Not Found", None, ""));
    }
    let text = body();
    let mut out = response_head(200, "OK", None, CONTENT_TYPE, text.len());
    if method == "GET" {
        out.extend_from_slice(text.as_bytes());
    }
    Exchange::Respond(out)
}

fn response(code: u16, reason: &str, allow: Option<&str>, body: &str) -> Vec<u8> {
    let mut out = response_head(code, reason, allow, "text/plain; charset=utf-8", body.len());
    out.extend_from_slice(body.as_bytes());
    out
}

fn response_head(
    code: u16,
    reason: &str,
    allow: Option<&str>,
    content_type: &str,
    len: usize,
) -> Vec<u8> {
    let mut head = String::with_capacity(160);
    let _ = write!(head, "HTTP/1.1 {code} {reason}\r\n");
    let _ = write!(head, "Content-Type: {content_type}\r\n");
    let _ = write!(head, "Content-Length: {len}\r\n");
    if let Some(allow) = allow {
        let _ = write!(head, "Allow: {allow}\r\n");
    }
    head.push_str("Connection: close\r\n\r\n");
    head.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(input: &[u8]) -> String {
        match exchange(input, || "body\n".to_string()) {
            Exchange::Respond(bytes) => String::from_utf8(bytes).unwrap(),
            Exchange::Incomplete => "incomplete".into(),
        }
    }

    #[test]
    fn get_metrics_gets_the_text() {
        let r = answer(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(r.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
        assert!(r.contains("Content-Length: 5\r\n"));
        assert!(r.contains("Connection: close\r\n"));
        assert!(r.ends_with("\r\n\r\nbody\n"));
        let q = answer(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n");
        assert!(q.starts_with("HTTP/1.1 200 OK\r\n"), "{q}");
    }

    #[test]
    fn head_gets_the_length_without_the_body() {
        let r = answer(b"HEAD /metrics HTTP/1.1\r\n\r\n");
        assert!(r.contains("Content-Length: 5\r\n"));
        assert!(r.ends_with("\r\n\r\n"));
    }

    #[test]
    fn a_head_in_pieces_waits_for_the_rest() {
        assert_eq!(answer(b"GET /met"), "incomplete");
        assert_eq!(
            answer(b"GET /metrics HTTP/1.1\r\nHost: x\r\n"),
            "incomplete"
        );
    }

    #[test]
    fn other_requests_get_their_status_and_no_rendering() {
        let never = || -> String { panic!("rendered for a refused request") };
        for (input, status) in [
            (&b"GET / HTTP/1.1\r\n\r\n"[..], "404"),
            (b"POST /metrics HTTP/1.1\r\n\r\n", "405"),
            (b"\x00\x01garbage\r\n\r\n", "400"),
            (b"GET /metrics HTTP/9\r\n\r\n", "400"),
        ] {
            let Exchange::Respond(r) = exchange(input, never) else {
                panic!("{input:?} incomplete")
            };
            let r = String::from_utf8(r).unwrap();
            assert!(
                r.starts_with(&format!("HTTP/1.1 {status} ")),
                "{input:?}: {r}"
            );
            assert!(r.contains("Connection: close\r\n"));
        }
        let r = answer(b"PUT /metrics HTTP/1.1\r\n\r\n");
        assert!(r.contains("Allow: GET, HEAD\r\n"));
    }

    #[test]
    fn heads_too_long_or_with_too_many_headers_get_431() {
        let mut long = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
        long.resize(MAX_HEAD + 10, b'a');
        assert!(answer(&long).starts_with("HTTP/1.1 431 "));
        let mut many = b"GET /metrics HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert!(answer(&many).starts_with("HTTP/1.1 431 "));
    }
}
