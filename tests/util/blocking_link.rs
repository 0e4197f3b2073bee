//! The sans-IO Redis link over a blocking `TcpStream`: the smallest
//! possible driver, for tests. Every read and write has a timeout.

#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use mio_selectors::redis::{Event, LinkConfig, RedisConn, RedisError, RedisUrl, Reply};

/// Longest any single read or write may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// One connection and its socket.
#[derive(Debug)]
pub struct Link<T = u32> {
    pub stream: TcpStream,
    pub conn: RedisConn<T>,
    buf: Vec<u8>,
}

impl<T: std::fmt::Debug> Link<T> {
    pub fn connect(url: &str) -> Result<Link<T>, RedisError> {
        Link::connect_with(url, LinkConfig::default())
    }

    /// Connects and waits for the handshake.
    pub fn connect_with(url: &str, config: LinkConfig) -> Result<Link<T>, RedisError> {
        let url = RedisUrl::parse(url)?;
        let addr = url.socket_addrs()?[0];
        let stream =
            TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| url.connect_error(e))?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        stream.set_write_timeout(Some(TIMEOUT))?;
        let mut link = Link {
            stream,
            conn: RedisConn::new(&url, config),
            buf: vec![0; 64 * 1024],
        };
        link.flush()?;
        match link.next()? {
            Event::Ready => Ok(link),
            other => panic!("expected Ready first, got {other:?}"),
        }
    }

    pub fn flush(&mut self) -> Result<(), RedisError> {
        let out = self.conn.to_send();
        let n = out.len();
        self.stream.write_all(out)?;
        self.conn.sent(n);
        Ok(())
    }

    /// The next event, reading as needed (each read times out).
    pub fn next(&mut self) -> Result<Event<T>, RedisError> {
        loop {
            if let Some(event) = self.conn.next_event() {
                return Ok(event);
            }
            self.read_some()?;
        }
    }

    /// The next event if one arrives within `wait`.
    pub fn next_within(&mut self, wait: Duration) -> Result<Option<Event<T>>, RedisError> {
        if let Some(event) = self.conn.next_event() {
            return Ok(Some(event));
        }
        self.stream.set_read_timeout(Some(wait))?;
        let got = self.read_some();
        self.stream.set_read_timeout(Some(TIMEOUT))?;
        match got {
            Ok(()) => Ok(self.conn.next_event()),
            Err(RedisError::Timeout(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn read_some(&mut self) -> Result<(), RedisError> {
        let n = match self.stream.read(&mut self.buf) {
            Ok(0) => return Err(RedisError::Closed),
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(RedisError::Timeout(TIMEOUT))
            }
            Err(e) => return Err(e.into()),
        };
        self.conn.feed(&self.buf[..n])
    }

    pub fn reply(&mut self) -> (T, Reply) {
        match self.next().expect("a reply") {
            Event::Reply { tag, reply } => (tag, reply),
            other => panic!("expected a reply, got {other:?}"),
        }
    }
}

impl Link<u32> {
    /// One command, sent and answered.
    pub fn call(&mut self, args: &[&str]) -> Reply {
        self.conn.command(0, args).expect("queue");
        self.flush().expect("write");
        self.reply().1
    }
}
