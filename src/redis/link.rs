//! A [`RedisConn`] kept up by a [`Reactor`](crate::Reactor): the socket is
//! an outgoing reactor connection like any other, reconnected with capped
//! backoff when it fails.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{Backoff, Event, LinkConfig, RedisConn, RedisError, RedisUrl};
use crate::{ConnId, Context, InBuf};

/// One Redis connection owned by a handler and carried by the reactor.
///
/// The handler keeps a `Link` in its own state and routes the reactor's
/// callbacks for the link's connection to it: [`Link::received`] from
/// `service_connection`, [`Link::made`] from `connection_made`,
/// [`Link::lost`] from `connection_lost` (or whenever a method returns an
/// error). Commands go through [`Link::conn`] and out with [`Link::flush`].
/// Nothing here blocks or starts a thread; the only clock is the `now` the
/// caller passes.
///
/// Output toward Redis is bounded twice: the [`RedisConn`]'s own queue,
/// and the reactor's pending output for the connection, which
/// [`Link::flush`] will not let pass [`LinkConfig::max_pending_output`]:
/// a Redis that does not keep up is [`RedisError::LinkOverflow`], never a
/// growing buffer.
///
/// A whole program: one `GET` through the reactor, against a stand-in for
/// Redis that answers the handshake's `PING` and the `GET`.
///
/// ```
/// use std::io::{Read, Write};
/// use std::time::Duration;
///
/// use mio_selectors::redis::{Backoff, Event, Link, LinkConfig, RedisUrl};
/// use mio_selectors::{Config, ConnId, Context, Handler, InBuf, Reactor};
///
/// struct App {
///     link: Option<Link<&'static str>>,
///     got: Option<Vec<u8>>,
/// }
///
/// impl Handler for App {
///     type Data = ();
///     fn connection_made(&mut self, cx: &mut Context<'_, ()>, _: ConnId, _: &mut ()) {
///         self.link.as_mut().unwrap().made(cx).unwrap();
///     }
///     fn service_connection(&mut self, cx: &mut Context<'_, ()>, _: ConnId, _: &mut (), inb: &mut InBuf) {
///         for event in self.link.as_mut().unwrap().received(inb).unwrap() {
///             if let Event::Reply { tag: "get", reply } = event {
///                 self.got = reply.ok().and_then(|v| v.into_bytes());
///                 cx.stop();
///             }
///         }
///     }
///     fn on_timer(&mut self, cx: &mut Context<'_, ()>, _: Option<(ConnId, &mut ())>, _: u64) {
///         cx.stop(); // the deadline: never hang
///     }
/// }
///
/// let fake = std::net::TcpListener::bind("127.0.0.1:0")?;
/// let url = RedisUrl::new("127.0.0.1", fake.local_addr()?.port());
/// let redis = std::thread::spawn(move || {
///     let (mut s, _) = fake.accept().unwrap();
///     let mut buf = [0u8; 256];
///     let _ = s.read(&mut buf);
///     s.write_all(b"+PONG\r\n$2\r\nhi\r\n").unwrap();
///     let _ = s.read(&mut buf); // until the reactor closes
/// });
///
/// let mut link = Link::new(url, LinkConfig::default(), Duration::from_secs(5), Backoff::default());
/// let mut reactor = Reactor::new(App { link: None, got: None }, Config::default())?;
/// reactor.with_context(|cx| {
///     cx.call_later(Duration::from_secs(10), None, 0);
///     link.connect(cx, ())?;
///     link.conn().unwrap().command("get", &["GET", "greeting"])?;
///     link.flush(cx)
/// })?;
/// reactor.handler_mut().link = Some(link);
/// reactor.run()?;
/// assert_eq!(reactor.handler().got.as_deref(), Some(&b"hi"[..]));
/// drop(reactor);
/// redis.join().unwrap();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Link<T> {
    url: RedisUrl,
    addr: Option<SocketAddr>,
    config: LinkConfig,
    reply_timeout: Duration,
    backoff: Backoff,
    current: Option<(ConnId, RedisConn<T>)>,
}

impl<T> Link<T> {
    /// A link to `url`, not connected yet. `reply_timeout` bounds how long
    /// any command (the handshake's included) may wait for its reply;
    /// `backoff` spaces the reconnects.
    pub fn new(
        url: RedisUrl,
        config: LinkConfig,
        reply_timeout: Duration,
        backoff: Backoff,
    ) -> Self {
        Link {
            url,
            addr: None,
            config,
            reply_timeout,
            backoff,
            current: None,
        }
    }

    /// The URL.
    pub fn url(&self) -> &RedisUrl {
        &self.url
    }

    /// Opens the connection with the reactor's connect; `data` is the
    /// reactor data of that connection. The handshake is queued at once
    /// and goes out when the connect completes. The host name is resolved
    /// on the first call only (it may block on DNS there).
    ///
    /// # Errors
    /// [`RedisError::Connect`] when the name does not resolve or the
    /// connect cannot even start; the link stays down.
    pub fn connect<D>(&mut self, cx: &mut Context<'_, D>, data: D) -> Result<ConnId, RedisError> {
        self.current = None;
        let addr = match self.addr {
            Some(addr) => addr,
            None => {
                let addr = self.url.socket_addrs()?[0];
                self.addr = Some(addr);
                addr
            }
        };
        let id = cx
            .connect(addr, data)
            .map_err(|e| self.url.connect_error(std::io::Error::other(e.to_string())))?;
        let conn = RedisConn::new(&self.url, self.config.clone());
        self.current = Some((id, conn));
        self.flush(cx)?;
        Ok(id)
    }

    /// The reactor connection, while there is one.
    pub fn id(&self) -> Option<ConnId> {
        self.current.as_ref().map(|(id, _)| *id)
    }

    /// Whether `id` is this link's connection.
    pub fn is(&self, id: ConnId) -> bool {
        self.id() == Some(id)
    }

    /// The protocol side, while connected (or connecting).
    pub fn conn(&mut self) -> Option<&mut RedisConn<T>> {
        self.current.as_mut().map(|(_, c)| c)
    }

    /// Whether the handshake has completed on the current connection.
    pub fn is_ready(&self) -> bool {
        self.current.as_ref().is_some_and(|(_, c)| c.is_ready())
    }

    /// The reactor says the connect completed.
    ///
    /// # Errors
    /// As [`Link::flush`].
    pub fn made<D>(&mut self, cx: &mut Context<'_, D>) -> Result<(), RedisError> {
        self.flush(cx)
    }

    /// Hands the queued commands to the reactor connection.
    ///
    /// # Errors
    /// [`RedisError::LinkOverflow`] when the reactor's pending output for
    /// the connection would pass [`LinkConfig::max_pending_output`], or the
    /// reactor refuses the bytes: drop the link ([`Link::lost`]).
    pub fn flush<D>(&mut self, cx: &mut Context<'_, D>) -> Result<(), RedisError> {
        let Some((id, conn)) = self.current.as_mut() else {
            return Ok(());
        };
        let out = conn.to_send();
        if out.is_empty() {
            return Ok(());
        }
        let cap = self.config.max_pending_output;
        let pending = cx.pending_output(*id).unwrap_or(0);
        if pending + out.len() > cap {
            return Err(RedisError::LinkOverflow {
                what: "pending output bytes",
                cap,
            });
        }
        let n = out.len();
        cx.send(*id, out).map_err(|_| RedisError::LinkOverflow {
            what: "the reactor's pending output",
            cap,
        })?;
        conn.sent(n);
        Ok(())
    }

    /// Bytes arrived on the link's connection: all of `inb` is taken.
    /// Returns the events they completed, in order.
    ///
    /// # Errors
    /// As [`RedisConn::feed`]: drop the link.
    pub fn received(&mut self, inb: &mut InBuf) -> Result<Vec<Event<T>>, RedisError> {
        let Some((_, conn)) = self.current.as_mut() else {
            inb.clear();
            return Ok(Vec::new());
        };
        let result = conn.feed(inb);
        inb.clear();
        let events: Vec<Event<T>> = std::iter::from_fn(|| conn.next_event()).collect();
        if events.iter().any(|e| matches!(e, Event::Ready)) {
            self.backoff.reset();
        }
        result.map(|()| events)
    }

    /// Whether the oldest unanswered command has waited past the reply
    /// timeout at `now` (a Redis that stopped answering).
    ///
    /// # Errors
    /// [`RedisError::Timeout`]: drop the link.
    pub fn check(&self, now: Instant) -> Result<(), RedisError> {
        let Some((_, conn)) = self.current.as_ref() else {
            return Ok(());
        };
        match conn.oldest_in_flight() {
            Some(since) if now.saturating_duration_since(since) > self.reply_timeout => {
                Err(RedisError::Timeout(self.reply_timeout))
            }
            _ => Ok(()),
        }
    }

    /// Drops the connection (aborting it in the reactor if it is still
    /// there) and returns how long to wait before [`Link::connect`] again.
    /// Unanswered commands are void.
    pub fn lost<D>(&mut self, cx: &mut Context<'_, D>) -> Duration {
        if let Some((id, _)) = self.current.take() {
            cx.abort(id);
        }
        self.backoff.next_delay()
    }

    /// Forgets the connection without touching the reactor (it is gone
    /// already, e.g. in `connection_lost`), and returns the backoff delay.
    pub fn forget(&mut self) -> Duration {
        self.current = None;
        self.backoff.next_delay()
    }
}

impl<T> std::fmt::Debug for Link<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("url", &self.url)
            .field("conn", &self.current.as_ref().map(|(id, c)| (id, c)))
            .finish()
    }
}
