//! [`ChatServer`]: the tutorials' chatroom as a [`Handler`], to the wire
//! protocol in `chat-protocol.md`: relay each line to everyone else as
//! `<NAME> TEXT`, notices as `* ...`, `/nick`, `/who`, `/quit`, `/help`,
//! and a limit with a policy for everything a hostile client can do.

use std::collections::HashMap;
use std::time::Duration;

use crate::{
    terminal_safe, CloseReason, Config, ConnId, Context, Handler, InBuf, Line, LineFramer,
    PeerAddr, TimerId, TokenBucket,
};

const THROTTLE: u64 = 1;
const PARTIAL: u64 = 2;
const MAX_NICK: usize = 32;

/// The chatroom's limits; each is a flag of `examples/chatroom.rs`.
///
/// ```
/// let config = mio_selectors::ChatConfig { max_clients: 10, ..Default::default() };
/// assert_eq!(config.max_line, 4096);
/// ```
#[derive(Debug, Clone)]
pub struct ChatConfig {
    /// Longest line, bytes before the terminator. Longer: `* error: line
    /// too long (max N bytes)` to the sender, the line is discarded up to its
    /// next `\n`, the connection stays. Default 4096.
    pub max_line: usize,
    /// Pending output per client. Past it the client is disconnected and the
    /// others get `* NAME left (too slow)`. Default 1 MiB.
    pub max_output: usize,
    /// Connected clients. Past it a newcomer gets `* error: server full`
    /// and is closed. Default 10,000.
    pub max_clients: usize,
    /// Lines read per client per second. Over budget, the client is not read
    /// until the budget refills (TCP pushes back); nothing is dropped.
    /// Default 100.
    pub lines_per_sec: f64,
    /// Lines a client may send at once before the rate applies. Default 200.
    pub burst: f64,
    /// How long a partial line (no `\n`) may wait. Past it the client is
    /// disconnected and the others get `* NAME left (timeout)`. Default 60 s.
    pub partial_timeout: Duration,
}

impl Default for ChatConfig {
    fn default() -> Self {
        ChatConfig {
            max_line: 4096,
            max_output: 1024 * 1024,
            max_clients: 10_000,
            lines_per_sec: 100.0,
            burst: 200.0,
            partial_timeout: Duration::from_secs(60),
        }
    }
}

impl ChatConfig {
    /// The reactor limits that carry these: output capped at `max_output`,
    /// input room for one whole line, reading paused while the client's own
    /// output backs up.
    ///
    /// ```
    /// let chat = mio_selectors::ChatConfig::default();
    /// assert_eq!(chat.reactor_config().max_outb, chat.max_output);
    /// ```
    pub fn reactor_config(&self) -> Config {
        let base = Config::default();
        let high_water = base.high_water.min(self.max_output);
        Config {
            max_outb: self.max_output,
            max_inb: base.max_inb.max(self.max_line.saturating_add(2)),
            high_water,
            low_water: base.low_water.min(high_water / 2),
            ..base
        }
    }
}

/// One chat client: its name and where it is in the protocol.
#[derive(Debug)]
pub struct Client {
    name: String,
    framer: LineFramer,
    bucket: TokenBucket,
    throttled: bool,
    partial_timer: Option<TimerId>,
    /// `* NAME left ...` was said already (the server closed it).
    announced: bool,
}

impl Client {
    /// Its name: the peer address until it takes a nick.
    ///
    /// ```
    /// # fn f(client: &mio_selectors::chat::Client) {
    /// println!("{}", client.name());
    /// # }
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// The chat server: a [`Handler`] for a [`Reactor`](crate::Reactor).
///
/// ```no_run
/// use mio_selectors::{ChatConfig, ChatServer, Reactor};
///
/// let config = ChatConfig::default();
/// let mut reactor = Reactor::new(ChatServer::new(config.clone()), config.reactor_config())?;
/// reactor.listen("127.0.0.1:8000")?;
/// reactor.stop_on_signals()?;
/// reactor.run()?;
/// # Ok::<(), mio_selectors::Error>(())
/// ```
#[derive(Debug)]
pub struct ChatServer {
    config: ChatConfig,
    clients: usize,
    /// Nicks in use, lower-cased (addresses cannot clash: `:` is not allowed in a nick).
    nicks: HashMap<String, ConnId>,
}

impl ChatServer {
    /// A chat server with these limits.
    ///
    /// ```
    /// let server = mio_selectors::ChatServer::new(Default::default());
    /// assert_eq!(server.clients(), 0);
    /// ```
    pub fn new(config: ChatConfig) -> Self {
        ChatServer {
            config,
            clients: 0,
            nicks: HashMap::new(),
        }
    }

    /// How many clients are connected.
    ///
    /// ```
    /// assert_eq!(mio_selectors::ChatServer::new(Default::default()).clients(), 0);
    /// ```
    pub fn clients(&self) -> usize {
        self.clients
    }

    fn name(cx: &Context<'_, Client>, id: ConnId) -> String {
        cx.data(id).map(|c| c.name.clone()).unwrap_or_default()
    }

    /// Acts on one whole, non-empty line from `id`.
    fn line(&mut self, cx: &mut Context<'_, Client>, id: ConnId, raw: &[u8]) {
        let text = terminal_safe(raw);
        let Some(command) = text.strip_prefix('/') else {
            let name = Self::name(cx, id);
            cx.broadcast(format!("<{name}> {text}\n").as_bytes(), Some(id));
            return;
        };
        let (word, arg) = command
            .split_once(char::is_whitespace)
            .unwrap_or((command, ""));
        match word {
            "nick" => self.nick(cx, id, arg.trim()),
            "who" => {
                let names: Vec<String> = cx.ids().map(|other| Self::name(cx, other)).collect();
                notice(cx, id, &format!("online: {}", names.join(", ")));
            }
            "quit" => {
                notice(cx, id, "bye");
                leave(cx, id, Some("quit"));
            }
            "help" => {
                for line in [
                    "commands:",
                    "/nick NEW  take the name NEW (1-32 of A-Z a-z 0-9 _ -)",
                    "/who       list who is online",
                    "/quit      leave",
                    "/help      this help",
                    "anything else is sent to everyone else",
                ] {
                    notice(cx, id, line);
                }
            }
            _ => notice(cx, id, &format!("error: unknown command /{word}")),
        }
    }

    fn nick(&mut self, cx: &mut Context<'_, Client>, id: ConnId, new: &str) {
        let valid = (1..=MAX_NICK).contains(&new.len())
            && new
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid {
            let why = "error: a nick is 1 to 32 of A-Z a-z 0-9 _ - (usage: /nick NEW)";
            return notice(cx, id, why);
        }
        let key = new.to_ascii_lowercase();
        if self.nicks.get(&key).is_some_and(|&owner| owner != id) {
            return notice(cx, id, &format!("error: nick {new} is taken"));
        }
        let old = Self::name(cx, id);
        self.nicks.remove(&old.to_ascii_lowercase());
        self.nicks.insert(key, id);
        if let Some(client) = cx.data_mut(id) {
            client.name = new.to_string();
        }
        notice(cx, id, &format!("you are now {new}"));
        cx.broadcast(
            format!("* {old} is now known as {new}\n").as_bytes(),
            Some(id),
        );
    }

    /// Starts or stops the partial-line timer to match what `inb` holds.
    /// After a whole line, what is left is a new partial line, timed afresh:
    /// a client streaming whole lines whose reads never end on a line
    /// boundary is not cut off.
    fn watch_partial(
        &self,
        cx: &mut Context<'_, Client>,
        id: ConnId,
        partial: bool,
        line_ended: bool,
    ) {
        let Some(client) = cx.data_mut(id) else {
            return;
        };
        let running = client.partial_timer;
        let keep = partial && !line_ended;
        if let (Some(timer), false) = (running, keep) {
            client.partial_timer = None;
            cx.cancel_timer(timer);
        }
        if partial && !(keep && running.is_some()) {
            let delay = self.config.partial_timeout;
            let timer = cx.call_later(delay, Some(id), PARTIAL);
            if let Some(client) = cx.data_mut(id) {
                client.partial_timer = Some(timer);
            }
        }
    }
}

/// Closes `id` gracefully and tells the others now, not when the socket
/// is finally gone.
fn leave(cx: &mut Context<'_, Client>, id: ConnId, why: Option<&str>) {
    let Some(client) = cx.data_mut(id) else {
        return;
    };
    client.announced = true;
    let name = client.name.clone();
    cx.close(id);
    announce_leave(cx, &name, why);
}

/// `* NAME left` or `* NAME left (why)` to everyone still open.
fn announce_leave(cx: &mut Context<'_, Client>, name: &str, why: Option<&str>) {
    let suffix = why.map(|w| format!(" ({w})")).unwrap_or_default();
    log::info!("{name} left{suffix}");
    cx.broadcast(format!("* {name} left{suffix}\n").as_bytes(), None);
}

/// Sends the notice `* TEXT` to one client.
fn notice(cx: &mut Context<'_, Client>, id: ConnId, text: &str) {
    let _ = cx.send(id, format!("* {text}\n").as_bytes());
}

impl Handler for ChatServer {
    type Data = Client;

    fn accept_wrapper(
        &mut self,
        cx: &mut Context<'_, Client>,
        id: ConnId,
        peer: &PeerAddr,
    ) -> Option<Client> {
        if self.clients >= self.config.max_clients {
            log::warn!("server full ({} clients): refusing {peer}", self.clients);
            notice(cx, id, "error: server full");
            return None;
        }
        self.clients += 1;
        let name = peer.to_string();
        log::info!("{name} joined");
        notice(cx, id, &format!("welcome {name}! /help lists the commands"));
        cx.broadcast(format!("* {name} joined\n").as_bytes(), Some(id));
        let config = &self.config;
        Some(Client {
            name,
            framer: LineFramer::new(config.max_line),
            bucket: TokenBucket::new(config.lines_per_sec, config.burst, cx.now()),
            throttled: false,
            partial_timer: None,
            announced: false,
        })
    }

    fn service_connection(&mut self, cx: &mut Context<'_, Client>, id: ConnId, inb: &mut InBuf) {
        let Some(client) = cx.data_mut(id) else {
            return;
        };
        let mut framer = client.framer.clone();
        let now = cx.now();
        let mut line_ended = false;
        loop {
            let (used, line) = framer.decode(inb);
            match line {
                None if used == 0 => break,
                None => {}
                Some(Line::TooLong) => {
                    let max = framer.max_len();
                    notice(cx, id, &format!("error: line too long (max {max} bytes)"));
                }
                Some(Line::Text(b"")) => {} // empty lines are ignored
                Some(Line::Text(text)) => {
                    let Some(client) = cx.data_mut(id) else {
                        return;
                    };
                    if let Err(wait) = client.bucket.take(now) {
                        // Over budget: leave the line in inb, stop reading.
                        client.throttled = true;
                        cx.pause_reading(id);
                        cx.call_later(wait, Some(id), THROTTLE);
                        break;
                    }
                    self.line(cx, id, text);
                }
            }
            line_ended |= inb[..used].ends_with(b"\n");
            inb.consume(used);
            if !cx.is_open(id) {
                break; // it quit, or was closed as too slow
            }
        }
        let throttled = match cx.data_mut(id) {
            Some(client) => {
                client.framer = framer.clone();
                client.throttled
            }
            None => return,
        };
        let partial = !throttled && (!inb.is_empty() || framer.is_discarding());
        self.watch_partial(cx, id, partial, line_ended);
    }

    fn on_timer(&mut self, cx: &mut Context<'_, Client>, conn: Option<ConnId>, tag: u64) {
        let Some(id) = conn else {
            return;
        };
        let Some(client) = cx.data_mut(id) else {
            return;
        };
        match tag {
            THROTTLE => {
                client.throttled = false;
                cx.resume_reading(id);
            }
            PARTIAL => {
                client.partial_timer = None;
                leave(cx, id, Some("timeout"));
            }
            _ => {}
        }
    }

    fn connection_lost(
        &mut self,
        cx: &mut Context<'_, Client>,
        _: ConnId,
        client: Client,
        reason: &CloseReason,
    ) {
        self.clients -= 1;
        self.nicks.remove(&client.name.to_ascii_lowercase());
        // Its timers would be dropped when due anyway; free them now.
        if let Some(timer) = client.partial_timer {
            cx.cancel_timer(timer);
        }
        if client.announced || cx.is_shutting_down() {
            return;
        }
        let why = match reason {
            CloseReason::OutputOverflow => Some("too slow"),
            CloseReason::InputOverflow => Some("flood"),
            CloseReason::Error(_) => Some("connection lost"),
            _ => None,
        };
        announce_leave(cx, &client.name, why);
    }

    fn shutting_down(&mut self, cx: &mut Context<'_, Client>) {
        cx.broadcast(b"* server shutting down\n", None);
    }
}
