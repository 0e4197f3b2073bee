//! [`ChatServer`]: the chatroom as a [`Handler`], to the wire protocol in
//! `docs/chat-protocol.md`: relay each line to everyone else as
//! `<NAME> TEXT`, notices as `* ...`, and a limit with a policy for
//! everything a hostile client can do. The commands are in `commands.rs`.

use std::collections::HashMap;

use mio_selectors::codec::{Decoder, LineCodec};
use mio_selectors::reactor::{TimerId, TokenBucket};
use mio_selectors::{CloseReason, ConnId, Context, Handler, InBuf, PeerAddr};

use super::commands::{announce_leave, leave, notice};
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
}

/// The chat server: a [`Handler`] for a [`Reactor`](mio_selectors::Reactor)
/// (`main.rs` runs one).
#[derive(Debug)]
pub struct ChatServer {
    config: ChatConfig,
    clients: usize,
    /// Nicks in use, lower-cased (addresses cannot clash: `:` is not allowed in a nick).
    pub(super) nicks: HashMap<String, ConnId>,
}

impl ChatServer {
    /// A chat server with these limits.
    pub fn new(config: ChatConfig) -> Self {
        ChatServer {
            config,
            clients: 0,
            nicks: HashMap::new(),
        }
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
        if self.clients >= self.config.max_clients {
            log::warn!("server full ({} clients): refusing {peer}", self.clients);
            notice(cx, id, "error: server full");
            return None;
        }
        self.clients += 1;
        let name = peer.to_string();
        notice(cx, id, &format!("welcome {name}! /help lists the commands"));
        cx.broadcast(format!("* {name} joined\n").as_bytes(), Some(id));
        let config = &self.config;
        Some(Client {
            name,
            framer: LineCodec::new(config.max_line),
            bucket: TokenBucket::new(config.lines_per_sec, config.burst, cx.now()),
            throttled: false,
            partial_timer: None,
            announced: false,
        })
    }

    fn service_connection(
        &mut self,
        cx: &mut Context<'_, Client>,
        id: ConnId,
        client: &mut Client,
        inb: &mut InBuf,
    ) {
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
                    self.line(cx, id, client, text);
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
            return;
        };
        match tag {
            THROTTLE => {
                client.throttled = false;
                cx.resume_reading(id);
            }
            PARTIAL => {
                client.partial_timer = None;
                leave(cx, id, client, Some("timeout"));
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
