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
#[path = "conn_tests.rs"]
mod tests;
