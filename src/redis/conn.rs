//! The sans-IO connection: commands in, bytes out; bytes in, events out.

use std::collections::VecDeque;
use std::time::Instant;

use redis_protocol::resp2::decode::decode;
use redis_protocol::resp2::encode::encode_borrowed;
use redis_protocol::resp2::types::BorrowedFrame;

use super::scan::{scan, Scan};
use super::value::reply;
use super::{RedisError, RedisUrl, Reply, Value};

/// Bounds of one [`RedisConn`]. Each has a documented outcome when hit.
///
/// ```
/// use mio_selectors::redis::LinkConfig;
///
/// let config = LinkConfig { max_pending_output: 64 * 1024, ..LinkConfig::default() };
/// assert_eq!(config.max_in_flight, LinkConfig::default().max_in_flight);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkConfig {
    /// Bytes queued toward Redis and not yet handed to the socket. A
    /// command that would pass it is refused with
    /// [`RedisError::LinkOverflow`] and the link is broken. Default 4 MiB.
    pub max_pending_output: usize,
    /// Commands sent and not yet answered. Past it: the same overflow.
    /// Default 65 536.
    pub max_in_flight: usize,
    /// Largest reply accepted, in bytes; a larger one, or that much input
    /// without a complete reply, is a [`RedisError::Protocol`]. Default 8 MiB.
    pub max_reply: usize,
    /// Deepest nesting of arrays accepted in a reply (Redis's own replies
    /// nest a few levels). Deeper is a [`RedisError::Protocol`]. Default 16.
    pub max_depth: usize,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            max_pending_output: 4 << 20,
            max_in_flight: 65_536,
            max_reply: 8 << 20,
            max_depth: 16,
        }
    }
}

/// What a [`RedisConn`] has to say, in the order Redis said it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event<T> {
    /// The handshake (`AUTH`, `SELECT` as the URL asks, then `PING`)
    /// succeeded: the peer is a Redis server and the link is usable.
    /// Commands queued before this went out behind the handshake and are
    /// answered after it.
    Ready,
    /// The reply to the command queued with `tag`. Replies come back in
    /// the order the commands were queued. For [`RedisConn::subscribe`]
    /// and [`RedisConn::unsubscribe`] the value is an array of the
    /// per-channel confirmations, once all have arrived.
    Reply {
        /// The caller's tag for the command.
        tag: T,
        /// Its value, or Redis's error reply (`-ERR ...`).
        reply: Reply,
    },
    /// A message published on a channel this connection subscribed to.
    Message {
        /// The channel.
        channel: Vec<u8>,
        /// What was published.
        payload: Vec<u8>,
    },
}

enum Waiting<T> {
    Auth,
    Select(u32),
    Ping,
    Command(T),
    Subscription {
        tag: T,
        left: usize,
        confirmations: Vec<Value>,
    },
}

struct InFlight<T> {
    waiting: Waiting<T>,
    since: Instant,
}

/// One connection to Redis, without the socket: RESP2 on both sides,
/// pipelining, pub/sub, bounds. The caller owns the socket (a reactor
/// connection, or a plain `TcpStream` as in the tests) and moves bytes:
/// [`to_send`](RedisConn::to_send) / [`sent`](RedisConn::sent) toward
/// Redis, [`feed`](RedisConn::feed) / [`next_event`](RedisConn::next_event)
/// from it.
///
/// `T` is the caller's tag for a command; each reply comes back with its
/// command's tag, in the order the commands were queued (Redis answers a
/// connection's commands in order, so any number may be in flight).
///
/// A connection that has called [`subscribe`](RedisConn::subscribe) is a
/// pub/sub connection for life: only `PING`, `QUIT`, `subscribe` and
/// `unsubscribe` are accepted on it afterwards, so its replies stay
/// unambiguous. Use a second connection for other commands.
///
/// ```
/// use mio_selectors::redis::{Event, LinkConfig, RedisConn, RedisUrl, Value};
///
/// let url: RedisUrl = "redis://127.0.0.1:6379".parse()?;
/// let mut conn = RedisConn::new(&url, LinkConfig::default());
/// conn.command("greeting", &["SET", "greeting", "hi"])?;
/// conn.command("count", &["INCR", "visits"])?;
/// // The handshake PING, then both commands, in one write.
/// assert!(conn.to_send().starts_with(b"*1\r\n$4\r\nPING\r\n*3\r\n$3\r\nSET\r\n"));
/// let n = conn.to_send().len();
/// conn.sent(n);
///
/// // What Redis answers, split anywhere.
/// conn.feed(b"+PONG\r\n+O")?;
/// conn.feed(b"K\r\n:7\r\n")?;
/// assert_eq!(conn.next_event(), Some(Event::Ready));
/// assert_eq!(conn.next_event(), Some(Event::Reply { tag: "greeting", reply: Ok(Value::Status("OK".into())) }));
/// assert_eq!(conn.next_event(), Some(Event::Reply { tag: "count", reply: Ok(Value::Int(7)) }));
/// assert_eq!(conn.next_event(), None);
/// # Ok::<(), mio_selectors::redis::RedisError>(())
/// ```
pub struct RedisConn<T> {
    config: LinkConfig,
    out: Vec<u8>,
    out_start: usize,
    inb: Vec<u8>,
    /// Bytes `inb` must hold before a frame can be complete.
    need: usize,
    in_flight: VecDeque<InFlight<T>>,
    events: VecDeque<Event<T>>,
    ready: bool,
    /// `subscribe` was called: only pub/sub commands from now on.
    pubsub: bool,
    /// Redis confirmed a subscription: `message` arrays are pushes.
    pushes: bool,
    broken: bool,
}

impl<T> RedisConn<T> {
    /// A connection that will log in as `url` says: `AUTH` when it has a
    /// password, `SELECT` when its database is not 0, then `PING` to prove
    /// the peer is Redis. These are queued now; send them as soon as the
    /// socket connects.
    pub fn new(url: &RedisUrl, config: LinkConfig) -> Self {
        let mut conn = RedisConn {
            config,
            out: Vec::new(),
            out_start: 0,
            inb: Vec::new(),
            need: 1,
            in_flight: VecDeque::new(),
            events: VecDeque::new(),
            ready: false,
            pubsub: false,
            pushes: false,
            broken: false,
        };
        if let Some(password) = url.password() {
            match url.username() {
                Some(user) => conn.queue(
                    Waiting::Auth,
                    &[b"AUTH", user.as_bytes(), password.as_bytes()],
                ),
                None => conn.queue(Waiting::Auth, &[b"AUTH", password.as_bytes()]),
            }
        }
        if url.db() != 0 {
            let db = url.db().to_string();
            conn.queue(Waiting::Select(url.db()), &[b"SELECT", db.as_bytes()]);
        }
        conn.queue(Waiting::Ping, &[b"PING"]);
        conn
    }

    /// Queues a command, `args[0]` being its name, to be answered by an
    /// [`Event::Reply`] carrying `tag`.
    ///
    /// # Errors
    /// - [`RedisError::NotAllowed`] for an empty command, a command that
    ///   changes the reply protocol (`SUBSCRIBE` and friends: use
    ///   [`subscribe`](RedisConn::subscribe); `MONITOR`, `HELLO`,
    ///   `RESET`, `CLIENT REPLY`), or anything but `PING`/`QUIT` on a
    ///   pub/sub connection. Nothing is queued; the link is fine.
    /// - [`RedisError::LinkOverflow`] when the command would pass
    ///   [`LinkConfig::max_pending_output`] or
    ///   [`LinkConfig::max_in_flight`]: the link is now broken.
    /// - [`RedisError::Broken`] after any earlier failure.
    pub fn command<A: AsRef<[u8]>>(&mut self, tag: T, args: &[A]) -> Result<(), RedisError> {
        self.check(args)?;
        self.push(Waiting::Command(tag), args)
    }

    /// Subscribes to `channels`; the connection becomes a pub/sub
    /// connection. Messages then arrive as [`Event::Message`]; the
    /// confirmations as one [`Event::Reply`] for `tag`.
    ///
    /// # Errors
    /// [`RedisError::NotAllowed`] for an empty list; otherwise as
    /// [`command`](RedisConn::command).
    pub fn subscribe<A: AsRef<[u8]>>(&mut self, tag: T, channels: &[A]) -> Result<(), RedisError> {
        self.pubsub_command(tag, "SUBSCRIBE", channels)
    }

    /// Unsubscribes from `channels` (not all: name them). The connection
    /// stays a pub/sub connection.
    ///
    /// # Errors
    /// As [`subscribe`](RedisConn::subscribe).
    pub fn unsubscribe<A: AsRef<[u8]>>(
        &mut self,
        tag: T,
        channels: &[A],
    ) -> Result<(), RedisError> {
        self.pubsub_command(tag, "UNSUBSCRIBE", channels)
    }

    /// Bytes waiting to go to Redis. Write what you can, then call
    /// [`sent`](RedisConn::sent) with how much went.
    pub fn to_send(&self) -> &[u8] {
        &self.out[self.out_start..]
    }

    /// Marks the first `n` bytes of [`to_send`](RedisConn::to_send) as written.
    pub fn sent(&mut self, n: usize) {
        self.out_start = (self.out_start + n).min(self.out.len());
        if self.out_start == self.out.len() {
            self.out.clear();
            self.out_start = 0;
        } else if self.out_start > self.out.len() / 2 {
            self.out.drain(..self.out_start);
            self.out_start = 0;
        }
    }

    /// Takes in bytes read from Redis, any amount, split anywhere. Each
    /// complete reply becomes an event for [`next_event`](RedisConn::next_event);
    /// a partial one is kept (at most [`LinkConfig::max_reply`] bytes).
    ///
    /// # Errors
    /// The link is broken after any of these; events decoded before the
    /// failure can still be taken.
    /// - [`RedisError::Protocol`]: the peer is not Redis (see its docs).
    /// - [`RedisError::Auth`], [`RedisError::NoAuth`],
    ///   [`RedisError::Select`]: the handshake failed.
    /// - [`RedisError::Broken`] after an earlier failure.
    pub fn feed(&mut self, data: &[u8]) -> Result<(), RedisError> {
        if self.broken {
            return Err(RedisError::Broken);
        }
        let result = if self.inb.is_empty() {
            match self.decode_all(data) {
                Ok(used) => {
                    self.inb.extend_from_slice(&data[used..]);
                    Ok(())
                }
                Err(e) => Err(e),
            }
        } else {
            self.inb.extend_from_slice(data);
            let inb = std::mem::take(&mut self.inb);
            let result = self.decode_all(&inb);
            self.inb = inb;
            result.map(|used| {
                self.inb.drain(..used);
            })
        };
        if result.is_err() {
            self.broken = true;
            self.inb = Vec::new();
        }
        result
    }

    /// The next event, oldest first. Drain them after each
    /// [`feed`](RedisConn::feed): they hold no more than that input.
    pub fn next_event(&mut self) -> Option<Event<T>> {
        self.events.pop_front()
    }

    /// Whether the handshake has succeeded.
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// Whether [`subscribe`](RedisConn::subscribe) was called.
    pub fn is_pubsub(&self) -> bool {
        self.pubsub
    }

    /// Whether the link failed (overflow, protocol, handshake): drop it.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Commands sent (or queued) and not yet answered, handshake included.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// When the oldest unanswered command was queued, to time out a Redis
    /// that stopped answering.
    pub fn oldest_in_flight(&self) -> Option<Instant> {
        self.in_flight.front().map(|f| f.since)
    }

    /// Bytes queued toward Redis.
    pub fn pending_output(&self) -> usize {
        self.out.len() - self.out_start
    }

    fn check<A: AsRef<[u8]>>(&self, args: &[A]) -> Result<(), RedisError> {
        let Some(name) = args.first() else {
            return Err(RedisError::NotAllowed("an empty command".into()));
        };
        let name = String::from_utf8_lossy(name.as_ref()).to_ascii_uppercase();
        let sub = args.get(1).map(|a| a.as_ref().to_ascii_uppercase());
        let reshapes = matches!(
            name.as_str(),
            "SUBSCRIBE"
                | "UNSUBSCRIBE"
                | "PSUBSCRIBE"
                | "PUNSUBSCRIBE"
                | "SSUBSCRIBE"
                | "SUNSUBSCRIBE"
                | "MONITOR"
                | "HELLO"
                | "RESET"
                | "SYNC"
                | "PSYNC"
        ) || (name == "CLIENT" && sub.as_deref() == Some(b"REPLY"));
        if reshapes || (self.pubsub && !matches!(name.as_str(), "PING" | "QUIT")) {
            return Err(RedisError::NotAllowed(name));
        }
        Ok(())
    }

    fn pubsub_command<A: AsRef<[u8]>>(
        &mut self,
        tag: T,
        name: &str,
        channels: &[A],
    ) -> Result<(), RedisError> {
        if channels.is_empty() {
            return Err(RedisError::NotAllowed(format!("{name} without channels")));
        }
        let mut args: Vec<&[u8]> = Vec::with_capacity(channels.len() + 1);
        args.push(name.as_bytes());
        args.extend(channels.iter().map(AsRef::as_ref));
        let waiting = Waiting::Subscription {
            tag,
            left: channels.len(),
            confirmations: Vec::with_capacity(channels.len()),
        };
        self.push(waiting, &args)?;
        self.pubsub = true;
        Ok(())
    }

    /// Queues a handshake command (no caps: the output is empty).
    fn queue(&mut self, waiting: Waiting<T>, args: &[&[u8]]) {
        let frames: Vec<BorrowedFrame<'_>> =
            args.iter().map(|a| BorrowedFrame::BulkString(a)).collect();
        self.encode(&BorrowedFrame::Array(&frames));
        self.in_flight.push_back(InFlight {
            waiting,
            since: Instant::now(),
        });
    }

    fn push<A: AsRef<[u8]>>(&mut self, waiting: Waiting<T>, args: &[A]) -> Result<(), RedisError> {
        if self.broken {
            return Err(RedisError::Broken);
        }
        let frames: Vec<BorrowedFrame<'_>> = args
            .iter()
            .map(|a| BorrowedFrame::BulkString(a.as_ref()))
            .collect();
        let frame = BorrowedFrame::Array(&frames);
        let overflow =
            if self.pending_output() + frame.encode_len(false) > self.config.max_pending_output {
                Some(("pending output bytes", self.config.max_pending_output))
            } else if self.in_flight.len() >= self.config.max_in_flight {
                Some(("commands awaiting replies", self.config.max_in_flight))
            } else {
                None
            };
        if let Some((what, cap)) = overflow {
            self.broken = true;
            log::warn!("Redis link overflow: {what} passed {cap}");
            return Err(RedisError::LinkOverflow { what, cap });
        }
        self.encode(&frame);
        self.in_flight.push_back(InFlight {
            waiting,
            since: Instant::now(),
        });
        Ok(())
    }

    fn encode(&mut self, frame: &BorrowedFrame<'_>) {
        let start = self.out.len();
        self.out.resize(start + frame.encode_len(false), 0);
        // The buffer was sized from the crate's own length: it cannot be short.
        if let Err(e) = encode_borrowed(&mut self.out[start..], frame, false) {
            log::error!("RESP encoding failed: {e:?}");
            self.out.truncate(start);
        }
    }

    /// Decodes every complete reply at the head of `buf`; returns the bytes used.
    fn decode_all(&mut self, buf: &[u8]) -> Result<usize, RedisError> {
        let mut used = 0;
        loop {
            let rest = &buf[used..];
            if rest.len() < self.need {
                return Ok(used);
            }
            match scan(rest, self.config.max_reply, self.config.max_depth)
                .map_err(RedisError::Protocol)?
            {
                Scan::Incomplete(need) => {
                    self.need = need;
                    return Ok(used);
                }
                Scan::Frame(len) => {
                    self.need = 1;
                    let frame = match decode(&rest[..len]) {
                        Ok(Some((frame, n))) if n == len => frame,
                        Ok(_) => {
                            return Err(RedisError::Protocol("a reply did not decode whole".into()))
                        }
                        Err(e) => return Err(RedisError::Protocol(e.details().to_string())),
                    };
                    used += len;
                    self.on_reply(reply(frame))?;
                }
            }
        }
    }

    fn on_reply(&mut self, reply: Reply) -> Result<(), RedisError> {
        if self.pushes {
            if let Ok(Value::Array(items)) = &reply {
                if items.len() == 3 && items[0].as_bytes() == Some(b"message") {
                    let mut items = reply
                        .ok()
                        .and_then(Value::into_array)
                        .unwrap_or_default()
                        .into_iter();
                    let channel = items.nth(1).and_then(Value::into_bytes).unwrap_or_default();
                    let payload = items.next().and_then(Value::into_bytes).unwrap_or_default();
                    self.events.push_back(Event::Message { channel, payload });
                    return Ok(());
                }
            }
        }
        let Some(front) = self.in_flight.pop_front() else {
            return Err(RedisError::Protocol(format!(
                "a reply nobody asked for: {}",
                show(&reply)
            )));
        };
        match front.waiting {
            Waiting::Auth => reply.map(drop).map_err(RedisError::Auth),
            Waiting::Select(db) => reply
                .map(drop)
                .map_err(|error| RedisError::Select { db, error }),
            Waiting::Ping => match reply {
                Ok(Value::Status(s)) if s == "PONG" => {
                    self.ready = true;
                    self.events.push_back(Event::Ready);
                    Ok(())
                }
                Err(e) if e.code() == "NOAUTH" => Err(RedisError::NoAuth(e)),
                other => Err(RedisError::Protocol(format!(
                    "PING was answered with {}",
                    show(&other)
                ))),
            },
            Waiting::Command(tag) => {
                self.events.push_back(Event::Reply { tag, reply });
                Ok(())
            }
            Waiting::Subscription {
                tag,
                left,
                mut confirmations,
            } => {
                let value = match reply {
                    Err(e) => {
                        // Redis answers a refused (UN)SUBSCRIBE with one error.
                        self.events.push_back(Event::Reply { tag, reply: Err(e) });
                        return Ok(());
                    }
                    Ok(value) => value,
                };
                let confirms = value.as_array().is_some_and(|a| {
                    a.len() == 3 && matches!(a[0].as_bytes(), Some(b"subscribe" | b"unsubscribe"))
                });
                if !confirms {
                    return Err(RedisError::Protocol(format!(
                        "not a subscription confirmation: {value:?}"
                    )));
                }
                self.pushes = true;
                confirmations.push(value);
                if left > 1 {
                    self.in_flight.push_front(InFlight {
                        waiting: Waiting::Subscription {
                            tag,
                            left: left - 1,
                            confirmations,
                        },
                        since: front.since,
                    });
                } else {
                    self.events.push_back(Event::Reply {
                        tag,
                        reply: Ok(Value::Array(confirmations)),
                    });
                }
                Ok(())
            }
        }
    }
}

/// A short rendering of a reply for an error message.
fn show(reply: &Reply) -> String {
    let mut s = match reply {
        Ok(v) => format!("{v:?}"),
        Err(e) => format!("-{e}"),
    };
    if s.len() > 80 {
        let mut cut = 80;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("...");
    }
    s
}

impl<T> std::fmt::Debug for RedisConn<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConn")
            .field("ready", &self.ready)
            .field("pubsub", &self.pubsub)
            .field("broken", &self.broken)
            .field("in_flight", &self.in_flight.len())
            .field("pending_output", &self.pending_output())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis::ServerError;

    fn url(s: &str) -> RedisUrl {
        s.parse().unwrap()
    }

    fn conn() -> RedisConn<u32> {
        let mut c = RedisConn::new(&url("redis://h:1"), LinkConfig::default());
        c.feed(b"+PONG\r\n").unwrap();
        assert_eq!(c.next_event(), Some(Event::Ready));
        let n = c.to_send().len();
        c.sent(n);
        c
    }

    #[test]
    fn handshake_sends_auth_and_select_when_asked() {
        let mut c: RedisConn<u32> =
            RedisConn::new(&url("redis://u:p@h:1/3"), LinkConfig::default());
        assert_eq!(
            c.to_send(),
            &b"*3\r\n$4\r\nAUTH\r\n$1\r\nu\r\n$1\r\np\r\n*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n*1\r\n$4\r\nPING\r\n"[..]
        );
        c.feed(b"+OK\r\n+OK\r\n").unwrap();
        assert!(!c.is_ready());
        c.feed(b"+PONG\r\n").unwrap();
        assert!(c.is_ready());
        let c: RedisConn<u32> = RedisConn::new(&url("redis://:p@h:1"), LinkConfig::default());
        assert!(c.to_send().starts_with(b"*2\r\n$4\r\nAUTH\r\n$1\r\np\r\n"));
    }

    #[test]
    fn handshake_failures_are_typed() {
        let mut c: RedisConn<u32> = RedisConn::new(&url("redis://:bad@h:1"), LinkConfig::default());
        let e = c
            .feed(b"-WRONGPASS invalid username-password pair\r\n")
            .unwrap_err();
        assert!(
            matches!(e, RedisError::Auth(ref s) if s.code() == "WRONGPASS"),
            "{e}"
        );
        assert!(c.is_broken());
        assert!(matches!(c.feed(b"+OK\r\n"), Err(RedisError::Broken)));

        let mut c: RedisConn<u32> = RedisConn::new(&url("redis://h:1"), LinkConfig::default());
        let e = c.feed(b"-NOAUTH Authentication required.\r\n").unwrap_err();
        assert!(matches!(e, RedisError::NoAuth(_)), "{e}");

        let mut c: RedisConn<u32> = RedisConn::new(&url("redis://h:1/99"), LinkConfig::default());
        let e = c.feed(b"-ERR DB index is out of range\r\n").unwrap_err();
        assert!(matches!(e, RedisError::Select { db: 99, .. }), "{e}");

        let mut c: RedisConn<u32> = RedisConn::new(&url("redis://h:1"), LinkConfig::default());
        let e = c.feed(b"+OK\r\n").unwrap_err();
        assert!(
            matches!(e, RedisError::Protocol(ref m) if m.contains("PING")),
            "{e}"
        );
    }

    #[test]
    fn garbage_is_a_protocol_error_not_a_panic() {
        for junk in [
            &b"HTTP/1.1 400 Bad Request\r\n\r\n"[..],
            b"SSH-2.0-OpenSSH_9.2\r\n",
            b"\x16\x03\x01\x00\xa5",
            b"$-7\r\n",
            b":notanumber\r\n",
        ] {
            let mut c: RedisConn<u32> = RedisConn::new(&url("redis://h:1"), LinkConfig::default());
            let e = c.feed(junk).unwrap_err();
            assert!(matches!(e, RedisError::Protocol(_)), "{junk:?}: {e}");
        }
        let mut c = conn();
        let e = c.feed(b":1\r\n").unwrap_err();
        assert!(e.to_string().contains("nobody asked"), "{e}");
        let mut c = conn();
        c.command(1, &["GET", "k"]).unwrap();
        let e = c.feed(&b"*1\r\n".repeat(40)).unwrap_err();
        assert!(e.to_string().contains("deeper"), "{e}");
    }

    #[test]
    fn replies_match_tags_in_order_across_any_split() {
        let wire = b"+OK\r\n$5\r\nhello\r\n-ERR no such thing\r\n*2\r\n:1\r\n$-1\r\n";
        for split in 0..=wire.len() {
            let mut c = conn();
            for tag in 0..4 {
                c.command(tag, &["X"]).unwrap();
            }
            c.feed(&wire[..split]).unwrap();
            c.feed(&wire[split..]).unwrap();
            let got: Vec<_> = std::iter::from_fn(|| c.next_event()).collect();
            assert_eq!(
                got,
                vec![
                    Event::Reply {
                        tag: 0,
                        reply: Ok(Value::Status("OK".into()))
                    },
                    Event::Reply {
                        tag: 1,
                        reply: Ok(Value::Bulk(b"hello".to_vec()))
                    },
                    Event::Reply {
                        tag: 2,
                        reply: Err(ServerError::new("ERR no such thing"))
                    },
                    Event::Reply {
                        tag: 3,
                        reply: Ok(Value::Array(vec![Value::Int(1), Value::Nil]))
                    },
                ],
                "split at {split}"
            );
            assert_eq!(c.in_flight(), 0);
        }
    }

    #[test]
    fn pubsub_confirmations_and_messages() {
        let mut c = conn();
        c.subscribe(7, &["a", "b"]).unwrap();
        assert_eq!(
            c.to_send(),
            &b"*3\r\n$9\r\nSUBSCRIBE\r\n$1\r\na\r\n$1\r\nb\r\n"[..]
        );
        assert!(matches!(
            c.command(8, &["GET", "k"]),
            Err(RedisError::NotAllowed(_))
        ));
        assert!(!c.is_broken(), "a refused command leaves the link alone");
        c.command(9, &["ping"]).unwrap();
        c.feed(b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n")
            .unwrap();
        assert_eq!(c.next_event(), None, "one confirmation of two");
        c.feed(b"*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$2\r\nhi\r\n")
            .unwrap();
        assert!(
            matches!(c.next_event(), Some(Event::Reply { tag: 7, reply: Ok(Value::Array(v)) }) if v.len() == 2)
        );
        assert_eq!(
            c.next_event(),
            Some(Event::Message {
                channel: b"a".to_vec(),
                payload: b"hi".to_vec()
            })
        );
        c.feed(b"*2\r\n$4\r\npong\r\n$0\r\n\r\n").unwrap();
        assert!(matches!(c.next_event(), Some(Event::Reply { tag: 9, .. })));
    }

    #[test]
    fn a_message_shaped_reply_before_subscribing_is_a_reply() {
        let mut c = conn();
        c.command(1, &["LRANGE", "l", "0", "-1"]).unwrap();
        c.feed(b"*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$1\r\nb\r\n")
            .unwrap();
        assert!(matches!(c.next_event(), Some(Event::Reply { tag: 1, .. })));
    }

    #[test]
    fn protocol_changing_commands_are_refused() {
        let mut c = conn();
        for cmd in [
            &["subscribe", "x"][..],
            &["MONITOR"],
            &["hello", "3"],
            &["client", "reply", "off"],
            &[],
        ] {
            assert!(
                matches!(c.command(0, cmd), Err(RedisError::NotAllowed(_))),
                "{cmd:?}"
            );
        }
        assert!(matches!(
            c.subscribe(0, &[] as &[&str]),
            Err(RedisError::NotAllowed(_))
        ));
        c.command(0, &["CLIENT", "SETNAME", "x"]).unwrap();
    }

    #[test]
    fn overflow_breaks_the_link() {
        let config = LinkConfig {
            max_pending_output: 100,
            max_in_flight: 3,
            ..LinkConfig::default()
        };
        let mut c: RedisConn<u32> = RedisConn::new(&url("redis://h:1"), config.clone());
        let big = vec![b'x'; 100];
        let e = c.command(1, &[&b"SET"[..], b"k", &big]).unwrap_err();
        assert!(
            matches!(e, RedisError::LinkOverflow { cap: 100, .. }),
            "{e}"
        );
        assert!(c.is_broken());
        assert!(matches!(c.command(2, &["PING"]), Err(RedisError::Broken)));

        let mut c: RedisConn<u32> = RedisConn::new(&url("redis://h:1"), config);
        c.command(1, &["PING"]).unwrap();
        c.command(2, &["PING"]).unwrap();
        let e = c.command(3, &["PING"]).unwrap_err();
        assert!(e.to_string().contains("awaiting replies"), "{e}");
    }

    #[test]
    fn oversized_or_endless_replies_are_refused() {
        let config = LinkConfig {
            max_reply: 64,
            ..LinkConfig::default()
        };
        let mut c: RedisConn<u32> = RedisConn::new(&url("redis://h:1"), config.clone());
        assert!(matches!(c.feed(b"$65\r\n"), Err(RedisError::Protocol(_))));
        let mut c: RedisConn<u32> = RedisConn::new(&url("redis://h:1"), config);
        c.feed(b"+PONG\r\n").unwrap();
        c.command(1, &["GET", "k"]).unwrap();
        c.feed(&[b'+'; 60]).unwrap();
        assert!(matches!(c.feed(&[b'a'; 10]), Err(RedisError::Protocol(_))));
    }

    #[test]
    fn output_is_consumed_in_parts() {
        let mut c = conn();
        c.command(1, &["ECHO", "abc"]).unwrap();
        let all = c.to_send().to_vec();
        c.sent(3);
        assert_eq!(c.to_send(), &all[3..]);
        c.sent(1000);
        assert!(c.to_send().is_empty());
        assert_eq!(c.pending_output(), 0);
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        /// A RESP2 reply and its value, nested a little.
        fn frame() -> impl Strategy<Value = (Vec<u8>, Value)> {
            let leaf = prop_oneof![
                any::<i64>().prop_map(|i| (format!(":{i}\r\n").into_bytes(), Value::Int(i))),
                proptest::collection::vec(any::<u8>(), 0..40).prop_map(|b| {
                    let mut wire = format!("${}\r\n", b.len()).into_bytes();
                    wire.extend_from_slice(&b);
                    wire.extend_from_slice(b"\r\n");
                    (wire, Value::Bulk(b))
                }),
                "[a-zA-Z ]{0,20}"
                    .prop_map(|s| (format!("+{s}\r\n").into_bytes(), Value::Status(s))),
                Just((b"$-1\r\n".to_vec(), Value::Nil)),
            ];
            leaf.prop_recursive(3, 24, 5, |inner| {
                proptest::collection::vec(inner, 0..5).prop_map(|items| {
                    let mut wire = format!("*{}\r\n", items.len()).into_bytes();
                    let mut values = Vec::new();
                    for (w, v) in items {
                        wire.extend_from_slice(&w);
                        values.push(v);
                    }
                    (wire, Value::Array(values))
                })
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

            /// Pipelined replies decode to the same values however the reads split them.
            #[test]
            fn replies_survive_any_split(frames in proptest::collection::vec(frame(), 1..8), cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6)) {
                let mut c = conn();
                let mut wire = Vec::new();
                for (i, (w, _)) in frames.iter().enumerate() {
                    c.command(i as u32, &["X"]).unwrap();
                    wire.extend_from_slice(w);
                }
                let mut points: Vec<usize> = cuts.iter().map(|ix| ix.index(wire.len() + 1)).collect();
                points.sort_unstable();
                let mut at = 0;
                for p in points.into_iter().chain([wire.len()]) {
                    c.feed(&wire[at..p]).unwrap();
                    at = p;
                }
                for (i, (_, v)) in frames.into_iter().enumerate() {
                    prop_assert_eq!(c.next_event(), Some(Event::Reply { tag: i as u32, reply: Ok(v) }));
                }
                prop_assert_eq!(c.next_event(), None);
            }

            /// Arbitrary bytes from the peer never panic: a result, always.
            #[test]
            fn garbage_never_panics(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 1..6)) {
                let mut c = conn();
                c.subscribe(0, &["ch"]).unwrap();
                for chunk in chunks {
                    if c.feed(&chunk).is_err() {
                        prop_assert!(c.is_broken());
                        break;
                    }
                }
                while c.next_event().is_some() {}
            }
        }
    }
}
