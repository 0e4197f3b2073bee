//! [`ChatServer`]: the chatroom as a [`Handler`], to the wire protocol in
//! `docs/chat-protocol.md`: relay each line to everyone else as
//! `<NAME> TEXT`, notices as `* ...`, and a limit with a policy for
//! everything a hostile client can do. The commands are in `commands.rs`.

use std::collections::HashMap;

use mio_selectors::codec::{Decoder, LineCodec};
use mio_selectors::group::{Message, QuotaPermit};
use mio_selectors::metrics::Counter;
use mio_selectors::reactor::{TimerId, TokenBucket};
use mio_selectors::{CloseReason, ConnId, Context, Handler, InBuf, PeerAddr};

use super::commands::{self, broadcast, notice, SUMMARY};
use super::federation::Federation;
use super::group::{self, GroupRoom};
use super::notices::{Change, Notices, WINDOW};
use super::ChatConfig;

/// `on_timer` tags: the rate budget has refilled; a partial line waited too long.
const THROTTLE: u64 = 1;
const PARTIAL: u64 = 2;

/// One chat client: its name and where it is in the protocol.
#[derive(Debug)]
pub struct Client {
    pub(super) name: String,
    framer: LineCodec,
    bucket: TokenBucket,
    throttled: bool,
    partial_timer: Option<TimerId>,
    /// `* NAME left ...` was said already (the server closed it).
    pub(super) announced: bool,
    /// Welcomed: receives what the room delivers (with `--redis`, once its
    /// join has come back from Redis).
    pub(super) in_room: bool,
    /// Not a client: one of the `--redis` connections.
    pub(super) redis: bool,
    /// Its place in a group's client count (`--reactors N`).
    _place: Option<QuotaPermit>,
}

impl Client {
    /// The reactor data of a `--redis` connection.
    pub fn redis() -> Client {
        Client {
            name: String::new(),
            framer: LineCodec::new(1),
            bucket: TokenBucket::new(1.0, 1.0, std::time::Instant::now()),
            throttled: false,
            partial_timer: None,
            announced: false,
            in_room: false,
            redis: true,
            _place: None,
        }
    }
}

/// The chat server: a [`Handler`] for a [`Reactor`](mio_selectors::Reactor)
/// (`main.rs` runs one).
#[derive(Debug)]
pub struct ChatServer {
    config: ChatConfig,
    clients: usize,
    /// Nicks in use, lower-cased (addresses cannot clash: `:` is not allowed in a nick).
    pub(super) nicks: HashMap<String, ConnId>,
    /// `--redis`: the room is shared with other processes.
    pub(super) fed: Option<Federation<Client>>,
    /// `chat_lines_relayed_total` and `chat_deliveries_total` in the
    /// reactor's metrics, registered on the first line relayed.
    counters: Option<(Counter, Counter)>,
    /// `--reactors N`: this reactor's part of the room its group shares
    /// (`group.rs`), which then owns joins, relaying, `/nick`, `/who`,
    /// departures and their notice budget.
    pub(super) group: Option<GroupRoom>,
    /// The room's budget of join and leave notices ("Notice storms"): for
    /// what this reactor delivers on its own (one reactor; with `--redis`,
    /// what it delivers from the bus, in the bus's order). With
    /// `--reactors N` the sequencer's room keeps the budget instead.
    pub(super) notices: Notices,
}

impl ChatServer {
    /// A chat server with these limits.
    pub fn new(config: ChatConfig) -> Self {
        let per_sec = config.notices_per_sec;
        ChatServer {
            config,
            clients: 0,
            nicks: HashMap::new(),
            fed: None,
            counters: None,
            group: None,
            notices: Notices::new(per_sec, WINDOW),
        }
    }

    /// Counts one chat line relayed to `delivered` members, in the
    /// application metrics that `--metrics` serves.
    pub(super) fn count_relay(&mut self, cx: &mut Context<'_, Client>, delivered: usize) {
        if self.counters.is_none() {
            let m = cx.metrics();
            let lines = m.counter(
                "chat_lines_relayed_total",
                "Chat lines relayed to the room.",
            );
            let deliveries = m.counter(
                "chat_deliveries_total",
                "Chat lines queued to members (one per recipient).",
            );
            self.counters = lines.ok().zip(deliveries.ok());
        }
        if let Some((lines, deliveries)) = self.counters {
            cx.metrics().add(lines, 1);
            cx.metrics().add(deliveries, delivered as u64);
        }
    }

    /// This server as one reactor's part of a room its group shares.
    pub fn with_group(mut self, group: GroupRoom) -> Self {
        self.group = Some(group);
        self
    }

    /// Starts or stops the partial-line timer to match what `inb` holds.
    /// After a whole line, what is left is a new partial line, timed afresh:
    /// a client streaming whole lines whose reads never end on a line
    /// boundary is not cut off.
    fn watch_partial(
        &self,
        cx: &mut Context<'_, Client>,
        id: ConnId,
        client: &mut Client,
        partial: bool,
        line_ended: bool,
    ) {
        let running = client.partial_timer;
        let keep = partial && !line_ended;
        if let (Some(timer), false) = (running, keep) {
            client.partial_timer = None;
            cx.cancel_timer(timer);
        }
        if partial && !(keep && running.is_some()) {
            let delay = self.config.partial_timeout;
            client.partial_timer = Some(cx.call_later(delay, Some(id), PARTIAL));
        }
    }
}

impl Handler for ChatServer {
    type Data = Client;

    fn accept_wrapper(
        &mut self,
        cx: &mut Context<'_, Client>,
        id: ConnId,
        peer: &PeerAddr,
    ) -> Option<Client> {
        // In a group the count is the group's (a shared quota).
        let place = self.group.as_ref().map(GroupRoom::admit);
        if self.clients >= self.config.max_clients || matches!(place, Some(None)) {
            log::warn!("server full ({} clients): refusing {peer}", self.clients);
            notice(cx, id, "error: server full");
            return None;
        }
        self.clients += 1;
        let name = peer.to_string();
        let config = &self.config;
        let mut client = Client {
            name: name.clone(),
            framer: LineCodec::new(config.max_line),
            bucket: TokenBucket::new(config.lines_per_sec, config.burst, cx.now()),
            throttled: false,
            partial_timer: None,
            announced: false,
            in_room: self.fed.is_none(),
            redis: false,
            _place: place.flatten(),
        };
        if let Some(fed) = &mut self.fed {
            // --redis: welcomed when its join comes back from Redis.
            let actions = fed.connected(cx, id, &name);
            self.apply(cx, actions, Some((id, &mut client)));
            return Some(client);
        }
        if let Some(group) = &mut self.group {
            if !group.federated() {
                log::info!("{name} joined");
            }
            // --reactors N: the sequencer welcomes it and says it joined,
            // within the room's budget (with --redis, once Redis has it).
            group.joined(cx, id, &name);
            return Some(client);
        }
        log::info!("{name} joined");
        notice(cx, id, &format!("welcome {name}! /help lists the commands"));
        let joined = format!("* {name} joined\n");
        let notices = &mut self.notices;
        commands::announce(cx, notices, Change::Joined, &joined, Some(id), broadcast);
        Some(client)
    }

    fn started(&mut self, cx: &mut Context<'_, Client>) {
        if let Some(group) = &mut self.group {
            group.start(cx); // --redis: reactor 0 connects
        }
    }

    fn connection_made(&mut self, cx: &mut Context<'_, Client>, id: ConnId, data: &mut Client) {
        if let (true, Some(group)) = (data.redis, &mut self.group) {
            group.federation(cx, |f, cx| f.made(cx, id));
            return;
        }
        if let (true, Some(fed)) = (data.redis, &mut self.fed) {
            let actions = fed.made(cx, id);
            self.apply(cx, actions, None);
        }
    }

    fn connect_failed(
        &mut self,
        cx: &mut Context<'_, Client>,
        id: ConnId,
        data: Client,
        reason: &CloseReason,
    ) {
        if let (true, Some(group)) = (data.redis, &mut self.group) {
            group.federation(cx, |f, cx| f.closed(cx, id, &reason.to_string()));
            return;
        }
        if let (true, Some(fed)) = (data.redis, &mut self.fed) {
            let actions = fed.closed(cx, id, &reason.to_string());
            self.apply(cx, actions, None);
        }
    }

    fn service_connection(
        &mut self,
        cx: &mut Context<'_, Client>,
        id: ConnId,
        client: &mut Client,
        inb: &mut InBuf,
    ) {
        if client.redis {
            if let Some(group) = &mut self.group {
                group.federation(cx, |f, cx| f.received(cx, id, inb));
                return;
            }
            let actions = match &mut self.fed {
                Some(fed) => fed.received(cx, id, inb),
                None => Vec::new(),
            };
            return self.apply(cx, actions, None);
        }
        if !client.in_room || self.group.as_ref().is_some_and(|g| g.is_waiting(id)) {
            // Not welcomed yet (--redis, or --reactors N): its lines wait in `inb`.
            cx.pause_reading(id);
            return;
        }
        let now = cx.now();
        let mut line_ended = false;
        loop {
            let (used, line) = client.framer.decode(inb);
            match line {
                None if used == 0 => break,
                None => {}
                Some(Err(too_long)) => {
                    let max = too_long.max;
                    notice(cx, id, &format!("error: line too long (max {max} bytes)"));
                }
                Some(Ok(b"")) => {} // empty lines are ignored
                Some(Ok(text)) => {
                    if let Err(wait) = client.bucket.take(now) {
                        // Over budget: leave the line in inb, stop reading.
                        client.throttled = true;
                        cx.pause_reading(id);
                        cx.call_later(wait, Some(id), THROTTLE);
                        break;
                    }
                    if !self.line(cx, id, client, text) {
                        // The group's mailbox is full: keep the line, stop
                        // reading this client, try again shortly.
                        client.throttled = true;
                        cx.pause_reading(id);
                        cx.call_later(group::RETRY, Some(id), THROTTLE);
                        break;
                    }
                }
            }
            line_ended |= inb[..used].ends_with(b"\n");
            inb.consume(used);
            if !cx.is_open(id) {
                break; // it quit, or was closed as too slow
            }
        }
        if !cx.is_open(id) {
            return;
        }
        let partial = !client.throttled && (!inb.is_empty() || client.framer.is_discarding());
        self.watch_partial(cx, id, client, partial, line_ended);
    }

    fn on_timer(
        &mut self,
        cx: &mut Context<'_, Client>,
        conn: Option<(ConnId, &mut Client)>,
        tag: u64,
    ) {
        let Some((id, client)) = conn else {
            if tag == SUMMARY {
                return match &mut self.group {
                    Some(group) => group.summarize(cx),
                    None => self.summarize(cx),
                };
            }
            if let Some(group) = &mut self.group {
                if tag == group::TICK {
                    return group.tick(cx);
                }
                // --redis: the federation's timers are reactor 0's.
                group.federation(cx, |f, cx| f.timer(cx, tag).unwrap_or_default());
                return;
            }
            if let Some(actions) = self.fed.as_mut().and_then(|f| f.timer(cx, tag)) {
                self.apply(cx, actions, None);
            }
            return;
        };
        match tag {
            THROTTLE => {
                client.throttled = false;
                cx.resume_reading(id);
            }
            PARTIAL => {
                client.partial_timer = None;
                self.leave(cx, id, client, Some("timeout"));
            }
            _ => {}
        }
    }

    fn connection_lost(
        &mut self,
        cx: &mut Context<'_, Client>,
        id: ConnId,
        client: Client,
        reason: &CloseReason,
    ) {
        if client.redis {
            if let Some(group) = &mut self.group {
                group.federation(cx, |f, cx| f.closed(cx, id, &reason.to_string()));
                return;
            }
            if let Some(fed) = &mut self.fed {
                let actions = fed.closed(cx, id, &reason.to_string());
                self.apply(cx, actions, None);
            }
            return;
        }
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
        self.announce_leave(cx, id, &client.name, why);
    }

    fn on_message(&mut self, cx: &mut Context<'_, Client>, from: usize, msg: Message) {
        if let Some(group) = &mut self.group {
            group.on_message(cx, from, msg);
        }
    }

    fn shutting_down(&mut self, cx: &mut Context<'_, Client>) {
        if let Some(group) = &mut self.group {
            return group.shutting_down(cx);
        }
        if let Some(fed) = &mut self.fed {
            // --redis: the goodbye to the room first, then our clients.
            fed.shutdown(cx);
            let ids: Vec<ConnId> = cx
                .ids()
                .filter(|&id| cx.data(id).is_some_and(|c| !c.redis))
                .collect();
            for id in ids {
                let _ = cx.send(id, b"* server shutting down\n");
            }
            return;
        }
        cx.broadcast(b"* server shutting down\n", None);
    }
}
