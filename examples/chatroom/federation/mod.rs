//! `--redis URL [--room NAME]`: this chatroom process joins a room shared
//! with every other process on the same Redis (`docs/federation.md`).
//!
//! The room's logic is pure data in [`room`]; this module carries it on
//! the reactor: two outgoing connections (`mio_selectors::redis::Link`),
//! one subscribed to the room's bus and one for commands, a 2 s timer for
//! the heartbeat, the sweep and the reply deadlines, a shorter one for the
//! relay bound (own messages not back within 1 s while Redis says nothing:
//! link lost), and reconnects with capped backoff. The chat calls in at a few points (a client joined,
//! said a line, asked `/nick` or `/who`, left) and carries out the
//! [`Action`]s that come back.

pub mod room;

use std::time::Duration;

use mio_selectors::redis::{Backoff, Event, Link, LinkConfig, RedisError, RedisUrl};
use mio_selectors::{ConnId, Context, InBuf};

pub use room::Action;
use room::{Room, Tag};

/// Timer tags (loop timers) of the federation; the chat's own are small.
pub const TICK: u64 = 0xFED0_0001;
/// Reconnect after the backoff delay.
pub const RETRY: u64 = 0xFED0_0002;
/// Print the readiness line even if Redis is not there yet.
pub const READY: u64 = 0xFED0_0003;
/// Own messages are waiting for the bus: is Redis still there?
pub const RELAY: u64 = 0xFED0_0004;

/// Heartbeat, sweep and deadline checks.
const TICK_EVERY: Duration = Duration::from_secs(2);
/// A command unanswered for this long means the link is lost.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// Own messages not back from the bus for this long while Redis has sent
/// nothing at all for as long: the link is lost, and they are delivered
/// here (`docs/federation.md`, "The relay bound").
const RELAY_WAIT: Duration = Duration::from_secs(1);
/// How often that is looked at once the wait is over.
const RELAY_CHECK: Duration = Duration::from_millis(250);
/// How long the readiness line waits for the first link.
const READY_WAIT: Duration = Duration::from_secs(5);
/// Output toward Redis before the link counts as fallen behind.
const MAX_PENDING: usize = 4 << 20;
/// Own messages Redis has not handed back yet, before the same verdict.
const MAX_BACKLOG: usize = 65_536;

/// The federation of one chatroom process. `D` is the chat's reactor data;
/// `make` builds the value the chat wants for a Redis connection. `C` names
/// a client: its [`ConnId`] on one reactor, or a
/// [`GroupConnId`](mio_selectors::group::GroupConnId) when the federation
/// sequences the clients of a whole group (`--reactors N`, on reactor 0).
pub struct Federation<D, C = ConnId> {
    room: Room<C>,
    cmd: Link<Tag>,
    sub: Link<Tag>,
    make: fn() -> D,
    subscribed: bool,
    /// The readiness line, until printed.
    ready_line: Option<String>,
    /// Linked at least once since the start.
    ever_linked: bool,
    /// A configuration error before the first link (rejected password or
    /// bad database): the process stops with it. A host that does not
    /// resolve or refuses is retried, standalone meanwhile.
    fatal: Option<String>,
    retry_pending: bool,
    /// When Redis last sent us anything, on either connection.
    heard: Option<std::time::Instant>,
    /// Since when some own message has been waiting for the bus.
    waiting_since: Option<std::time::Instant>,
    relay_timer: bool,
}

impl<D, C: Copy + Eq + std::hash::Hash> Federation<D, C> {
    /// A federation of `room` through `url`, announcing `listening on ADDR`
    /// (`ready_line`) once linked or after a few seconds without Redis.
    pub fn new(url: RedisUrl, room: &str, ready_line: String, make: fn() -> D) -> Self {
        let id = instance_id();
        let seed = u64::from_str_radix(&id, 16).unwrap_or(7);
        log::info!("room {room}: this instance is {id}");
        let config = LinkConfig {
            max_pending_output: MAX_PENDING,
            ..LinkConfig::default()
        };
        let backoff = |s| Backoff::new(Duration::from_millis(100), Duration::from_secs(5), s);
        Federation {
            room: Room::new(room, &id),
            cmd: Link::new(url.clone(), config.clone(), REPLY_TIMEOUT, backoff(seed)),
            sub: Link::new(url, config, REPLY_TIMEOUT, backoff(seed.rotate_left(17))),
            make,
            subscribed: false,
            ready_line: Some(ready_line),
            ever_linked: false,
            fatal: None,
            retry_pending: false,
            heard: None,
            waiting_since: None,
            relay_timer: false,
        }
    }

    /// Starts connecting; call once, before the loop runs.
    pub fn start(&mut self, cx: &mut Context<'_, D>) {
        cx.call_every(TICK_EVERY, None, TICK);
        cx.call_later(READY_WAIT, None, READY);
        self.connect(cx);
    }

    /// Why the process should exit with status 1, if it should: Redis
    /// refused this configuration before the room ever linked.
    pub fn fatal(&self) -> Option<&str> {
        self.fatal.as_deref()
    }

    // ---- the chat's events ------------------------------------------------

    /// A client connected; its default name is `addr`.
    pub fn connected(&mut self, cx: &mut Context<'_, D>, id: C, addr: &str) -> Vec<Action<C>> {
        self.room.connected(id, addr);
        self.pump(cx)
    }

    /// A line of text from a client.
    pub fn line(&mut self, cx: &mut Context<'_, D>, id: C, text: &str) -> Vec<Action<C>> {
        self.room.line(id, text);
        self.pump(cx)
    }

    /// `/nick NEW`, NEW of the right form.
    pub fn nick(&mut self, cx: &mut Context<'_, D>, id: C, new: &str) -> Vec<Action<C>> {
        self.room.nick(id, new);
        self.pump(cx)
    }

    /// `/who`.
    pub fn who(&mut self, cx: &mut Context<'_, D>, id: C) -> Vec<Action<C>> {
        self.room.who(id);
        self.pump(cx)
    }

    /// A client left, for `reason`.
    pub fn left(&mut self, cx: &mut Context<'_, D>, id: C, reason: Option<&str>) -> Vec<Action<C>> {
        self.room.left(id, reason);
        self.pump(cx)
    }

    /// Every client in the room (welcomed or still waiting for its welcome).
    pub fn members(&self) -> Vec<C> {
        self.room.conns()
    }

    /// Whether `id` is one of the two Redis connections (never a client:
    /// nothing the room says may be written to it).
    pub fn is_link(&self, id: ConnId) -> bool {
        self.cmd.is(id) || self.sub.is(id)
    }

    /// The process is stopping: the goodbye goes out before the reactor's
    /// final flush.
    pub fn shutdown(&mut self, cx: &mut Context<'_, D>) {
        if self.room.shutdown() {
            let _ = self.pump(cx);
        }
    }

    // ---- the reactor's events for the Redis connections ----------------

    /// The connect of `id` completed.
    pub fn made(&mut self, cx: &mut Context<'_, D>, id: ConnId) -> Vec<Action<C>> {
        let result = if self.cmd.is(id) {
            self.cmd.made(cx)
        } else {
            self.sub.made(cx)
        };
        if let Err(e) = result {
            self.fail(cx, &e);
        }
        self.actions()
    }

    /// Bytes from Redis on `id`.
    pub fn received(
        &mut self,
        cx: &mut Context<'_, D>,
        id: ConnId,
        inb: &mut InBuf,
    ) -> Vec<Action<C>> {
        self.heard = Some(cx.now());
        let from_cmd = self.cmd.is(id);
        let link = if from_cmd {
            &mut self.cmd
        } else {
            &mut self.sub
        };
        match link.received(inb) {
            Ok(events) => {
                for event in events {
                    self.event(from_cmd, event);
                }
                self.maybe_link_up();
            }
            Err(e) => self.fail(cx, &e),
        }
        self.pump(cx)
    }

    /// A Redis connection closed (EOF, error, refused connect).
    pub fn closed(&mut self, cx: &mut Context<'_, D>, id: ConnId, why: &str) -> Vec<Action<C>> {
        if self.cmd.is(id) {
            self.cmd.forget();
        } else if self.sub.is(id) {
            self.sub.forget();
        } else {
            return Vec::new(); // one we dropped already
        }
        if cx.is_shutting_down() {
            return Vec::new();
        }
        let e = RedisError::Io(std::io::Error::other(why.to_string()));
        self.fail(cx, &e);
        self.actions()
    }

    /// A federation timer; `None` when `tag` is not one of ours.
    pub fn timer(&mut self, cx: &mut Context<'_, D>, tag: u64) -> Option<Vec<Action<C>>> {
        match tag {
            TICK => {
                let now = cx.now();
                if let Err(e) = self.cmd.check(now).and_then(|()| self.sub.check(now)) {
                    self.fail(cx, &e);
                } else if self.subscribed {
                    if let Some(conn) = self.sub.conn() {
                        let _ = conn.command(Tag::Publish, &["PING"]);
                    }
                    if let Err(e) = self.sub.flush(cx) {
                        self.fail(cx, &e);
                    }
                    self.room.tick();
                }
            }
            RETRY => {
                self.retry_pending = false;
                self.connect(cx);
            }
            RELAY => {
                self.relay_timer = false;
                let now = cx.now();
                match self.waiting_since {
                    Some(since) if self.room.is_linked() && self.room.backlog() > 0 => {
                        let silent = self.heard.map_or(since, |h| h.max(since));
                        if now.duration_since(since) >= RELAY_WAIT
                            && now.duration_since(silent) >= RELAY_WAIT
                        {
                            let e = RedisError::Io(std::io::Error::other(format!(
                                "own lines not back and no word from Redis for {RELAY_WAIT:?}"
                            )));
                            self.fail(cx, &e);
                        } else {
                            self.relay_timer = true;
                            cx.call_later(RELAY_CHECK, None, RELAY);
                        }
                    }
                    _ => self.waiting_since = None,
                }
            }
            READY => {
                if self.ready_line.is_some() {
                    log::warn!(
                        "room: no link to Redis yet ({}); serving standalone meanwhile",
                        self.cmd.url()
                    );
                    self.room.mark_lost();
                    self.print_ready();
                }
            }
            _ => return None,
        }
        Some(self.pump(cx))
    }

    // ---- inner workings -------------------------------------------------

    fn connect(&mut self, cx: &mut Context<'_, D>) {
        self.subscribed = false;
        let channel = self.room.channel();
        let cmd = self.cmd.connect(cx, (self.make)());
        let sub = cmd.and_then(|_| self.sub.connect(cx, (self.make)()));
        let sub = sub.and_then(|_| match self.sub.conn() {
            Some(conn) => conn.subscribe(Tag::Publish, &[channel]),
            None => Ok(()),
        });
        if let Err(e) = sub.and_then(|()| self.sub.flush(cx)) {
            self.fail(cx, &e);
        }
    }

    fn event(&mut self, from_cmd: bool, event: Event<Tag>) {
        match event {
            Event::Ready => log::debug!(
                "room: {} connection ready",
                if from_cmd { "command" } else { "bus" }
            ),
            Event::Reply { tag, reply } if from_cmd => self.room.reply(tag, reply),
            Event::Reply { reply, .. } => {
                // The subscription's confirmations (the bus connection's
                // other replies are PONGs).
                let confirmed =
                    reply
                        .as_ref()
                        .ok()
                        .and_then(|v| v.as_array())
                        .is_some_and(|items| {
                            !items.is_empty()
                                && items.iter().all(|i| {
                                    i.as_array()
                                        .and_then(|a| a.first())
                                        .and_then(|k| k.as_bytes())
                                        == Some(b"subscribe")
                                })
                        });
                if confirmed {
                    self.subscribed = true;
                }
            }
            Event::Message { payload, .. } => self.room.bus(&payload),
            _ => {}
        }
    }

    fn maybe_link_up(&mut self) {
        if self.subscribed && self.cmd.is_ready() && self.sub.is_ready() {
            self.room.link_up();
        }
    }

    /// Either connection failed: both go, the room goes standalone, and a
    /// reconnect is scheduled.
    fn fail(&mut self, cx: &mut Context<'_, D>, e: &RedisError) {
        if self.retry_pending {
            return;
        }
        if !e.is_retryable() && !self.ever_linked {
            // Retrying cannot fix a wrong password or database: say so and stop.
            self.fatal = Some(format!("{} (--redis {})", e, self.cmd.url()));
            cx.stop();
            return;
        }
        log::warn!("room: link to Redis lost: {e}");
        if self.ready_line.is_some() {
            // Refused or reset before the first link: Redis is not there,
            // not slow, so waiting out READY_WAIT helps nobody. Serve
            // standalone now and keep retrying, as the READY timer does.
            self.room.mark_lost();
            self.print_ready();
        }
        let delay = self.cmd.lost(cx).max(self.sub.lost(cx));
        self.subscribed = false;
        self.room.link_lost();
        self.retry_pending = true;
        cx.call_later(delay, None, RETRY);
    }

    /// Sends the room's commands and gathers its actions.
    fn pump(&mut self, cx: &mut Context<'_, D>) -> Vec<Action<C>> {
        if self.room.backlog() > MAX_BACKLOG {
            let e = RedisError::LinkOverflow {
                what: "messages not yet back from the bus",
                cap: MAX_BACKLOG,
            };
            self.fail(cx, &e);
        }
        let commands = self.room.take_commands();
        if !commands.is_empty() {
            let mut result = Ok(());
            if let Some(conn) = self.cmd.conn() {
                for (tag, args) in commands {
                    result = conn.command(tag, &args);
                    if result.is_err() {
                        break;
                    }
                }
            }
            if let Err(e) = result.and_then(|()| self.cmd.flush(cx)) {
                self.fail(cx, &e);
            }
        }
        // The relay bound: watch own messages on their way round.
        if self.room.is_linked() && self.room.backlog() > 0 {
            if self.waiting_since.is_none() {
                self.waiting_since = Some(cx.now());
            }
            if !self.relay_timer {
                self.relay_timer = true;
                cx.call_later(RELAY_WAIT, None, RELAY);
            }
        } else {
            self.waiting_since = None;
        }
        self.actions()
    }

    fn actions(&mut self) -> Vec<Action<C>> {
        if self.room.is_linked() {
            self.ever_linked = true;
        }
        if self.room.is_linked() && self.ready_line.is_some() {
            log::info!("room: linked through {}", self.cmd.url());
            self.print_ready();
        }
        self.room.take_actions()
    }

    fn print_ready(&mut self) {
        if let Some(line) = self.ready_line.take() {
            use std::io::Write;
            let mut out = std::io::stdout();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }
}

impl<D, C: Copy + Eq + std::hash::Hash> std::fmt::Debug for Federation<D, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Federation")
            .field("room", &self.room.id())
            .field("linked", &self.room.is_linked())
            .field("cmd", &self.cmd)
            .field("sub", &self.sub)
            .finish()
    }
}

/// 16 hex digits, different for every process start.
fn instance_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    if let Ok(d) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(d.as_nanos());
    }
    format!("{:016x}", h.finish())
}
