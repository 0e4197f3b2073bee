//! One chat room across the reactors of a `ReactorGroup` (`--reactors N`).
//!
//! Reactor 0 owns the room: it holds the only membership list and nick
//! table, and it alone decides the order of everything said. The other
//! reactors forward their clients' joins, lines, `/nick`, `/who` and
//! departures to it (one lane, so each client's lines stay in order), and
//! it sends the ordered result back to every reactor in batches (at most
//! one wake-up per reactor per pass), where each reactor delivers it to
//! its own clients through their usual bounded output queues. Every
//! receiver therefore sees the same order, each line once, and a slow
//! client is still cut by its own queue on its own reactor.
//!
//! The notice budget ("Notice storms": at most `--notices-per-sec` joins
//! and leaves said one by one per second, then `* N joined, M left`) is
//! the owner's too: its room counts every join and leave of the group, and
//! its loop timer ([`SUMMARY`]) says the summary into the same order, so
//! every reactor's clients see the same lines.
//!
//! The welcome comes from the owner too, when it sequences the join: until
//! then the newcomer is shown nothing and not read (what it sends waits in
//! its input), so it never hears of someone who joined before it, and its
//! first line is its welcome.
//!
//! What stays local to a client's reactor: framing, line length, the rate
//! limit, the partial-line timeout, `/help`, `/quit`'s `* bye`,
//! `* server full` (the client count is a group-wide [`Quota`]), and
//! `* server shutting down`.
//!
//! Falling behind, which the mailbox bounds (it never blocks a sender):
//! - a forward to the owner that finds its lane full leaves the line in
//!   the client's input, stops reading that client and tries again in
//!   10 ms (TCP pushes back, nothing is dropped); a join or departure
//!   waits in a small local backlog, in order, and is retried the same way;
//! - a reactor whose lane from the owner is full cannot be given the room
//!   in order any more: the owner announces its clients as `left (too
//!   slow)` to everyone else, raises that reactor's flag and, as soon as
//!   its lane has room, sends it a `CUT` so that it looks at the flag; that
//!   reactor closes its clients (with `* error: server overloaded`), then
//!   rejoins the room.

mod room;

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mio_selectors::group::{GroupConnId, Message, Quota, QuotaPermit, SendError};
use mio_selectors::redis::RedisUrl;
use mio_selectors::{ConnId, Context};

use room::{bytes, Room, Say};

use super::commands::SUMMARY;
use super::federation::{Action, Federation};
use super::notices::Change;
use super::server::Client;
use super::ChatConfig;

/// The reactor that sequences the room.
pub const OWNER: usize = 0;
/// How soon a forward refused by a full lane is tried again.
pub const RETRY: Duration = Duration::from_millis(10);
/// The tag of the loop timer that retries the backlog.
pub const TICK: u64 = 3;

// Forwarded to the owner.
const JOIN: u32 = 1;
const LINE: u32 = 2;
const NICK: u32 = 3;
const WHO: u32 = 4;
const LEAVE: u32 = 5;
const RESYNC: u32 = 6;
// Sent back by the owner, in the room's order.
const ALL: u32 = 10;
const TO: u32 = 11;
const WELCOME: u32 = 12;
/// "You were cut": only wakes the reactor to look at its flag (see
/// `unwarned`).
const CUT: u32 = 13;

/// The federation the owner starts with (`--redis`): where, which room,
/// and the readiness lines it prints once linked (or after its wait).
#[derive(Debug, Clone)]
pub struct FedSetup {
    pub url: RedisUrl,
    pub room: String,
    pub ready: String,
}

/// What the reactors of one room share: the group-wide client count, the
/// room's notice budget (used by the owner), a flag per reactor the owner
/// raises when it had to cut that reactor, and with `--redis` the
/// federation's setup and why it stopped the process, if it did.
#[derive(Debug)]
pub struct Shared {
    quota: Arc<Quota>,
    notices_per_sec: u32,
    evicted: Vec<AtomicBool>,
    fed: Option<FedSetup>,
    fatal: Mutex<Option<String>>,
}

impl Shared {
    /// For `reactors` reactors and the limits of `config`: at most
    /// `max_clients` clients in all, `notices_per_sec` joins and leaves
    /// said one by one.
    pub fn new(reactors: usize, config: &ChatConfig) -> Arc<Shared> {
        Shared::build(reactors, config, None)
    }

    /// As [`new`](Self::new), for a room shared through Redis as `fed`
    /// says: reactor 0 starts the federation when it runs.
    pub fn federated(reactors: usize, config: &ChatConfig, fed: FedSetup) -> Arc<Shared> {
        Shared::build(reactors, config, Some(fed))
    }

    fn build(reactors: usize, config: &ChatConfig, fed: Option<FedSetup>) -> Arc<Shared> {
        Arc::new(Shared {
            quota: Quota::new(config.max_clients),
            notices_per_sec: config.notices_per_sec,
            evicted: (0..reactors).map(|_| AtomicBool::new(false)).collect(),
            fed,
            fatal: Mutex::new(None),
        })
    }

    /// Why the process must exit with status 1 (Redis refused the
    /// configuration before the room ever linked), if it must.
    pub fn fatal(&self) -> Option<String> {
        self.fatal.lock().ok().and_then(|f| f.clone())
    }
}

/// One reactor's part of the room.
#[derive(Debug)]
pub struct GroupRoom {
    me: usize,
    shared: Arc<Shared>,
    /// The room itself, on the owner only (with `--redis`, only its
    /// notice budget: the membership is the federation's).
    room: Option<Room>,
    /// `--redis`, on the owner: the room shared with other instances.
    fed: Option<Federation<Client, GroupConnId>>,
    /// This reactor's clients whose welcome has not come yet.
    waiting: HashSet<ConnId>,
    /// Owner: reactors cut for falling behind, until they resync.
    lagging: Vec<bool>,
    /// Owner: cut reactors not yet sent a [`CUT`]. The flag in `Shared` is
    /// read by a reactor only when it gets a message or its retry timer
    /// fires, and after a cut the owner sends it nothing: without this, a
    /// reactor that took its lane's last message just before the flag went
    /// up (or got only a handed-over connection after it) would never look,
    /// and the owner would drop its clients' joins and lines for good.
    unwarned: Vec<bool>,
    /// Joins and departures a full lane refused, in order.
    backlog: VecDeque<Message>,
    retry_armed: bool,
}

impl std::fmt::Debug for Room {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Room")
            .field("members", &self.len())
            .finish()
    }
}

fn msg(kind: u32, conn: GroupConnId, data: &[u8]) -> Message {
    Message::new(kind, Some(conn), data)
}

impl GroupRoom {
    /// Reactor `me`'s part of the room whose shared state is `shared`.
    pub fn new(me: usize, shared: Arc<Shared>) -> GroupRoom {
        let n = shared.evicted.len();
        let room = (me == OWNER).then(|| Room::new(shared.notices_per_sec));
        let fed = match (&shared.fed, me) {
            (Some(f), OWNER) => Some(Federation::new(
                f.url.clone(),
                &f.room,
                f.ready.clone(),
                Client::redis,
            )),
            _ => None,
        };
        GroupRoom {
            me,
            shared,
            room,
            fed,
            waiting: HashSet::new(),
            lagging: vec![false; n],
            unwarned: vec![false; n],
            backlog: VecDeque::new(),
            retry_armed: false,
        }
    }

    /// A place for one more client in the group, if there is one.
    pub fn admit(&self) -> Option<QuotaPermit> {
        self.shared.quota.try_acquire()
    }

    fn here(&self, id: ConnId) -> GroupConnId {
        GroupConnId {
            reactor: self.me,
            id,
        }
    }

    /// Sends `m` toward the room: acted on at once on the owner, forwarded
    /// otherwise. `false`: refused for now (a line: the caller keeps it and
    /// pauses the client); a join or departure is kept in the backlog.
    fn up(&mut self, cx: &mut Context<'_, Client>, m: Message, keep: bool) -> bool {
        if self.room.is_some() {
            self.sequence(cx, self.me, m);
            return true;
        }
        if self.backlog.is_empty() {
            match cx.post(OWNER, m) {
                Ok(()) => return true,
                Err(SendError::Full(m)) if keep => self.backlog.push_back(m),
                Err(SendError::Full(_)) => {}
                Err(SendError::Closed(_)) => return true, // stopping: nobody to tell
            }
        } else if keep {
            self.backlog.push_back(m);
        }
        self.arm_retry(cx);
        false
    }

    fn arm_retry(&mut self, cx: &mut Context<'_, Client>) {
        if !std::mem::replace(&mut self.retry_armed, true) {
            cx.call_later(RETRY, None, TICK);
        }
    }

    /// Whether the room is shared through Redis (then a newcomer is
    /// welcomed by the room, not at once).
    pub fn federated(&self) -> bool {
        self.shared.fed.is_some()
    }

    /// `id` has not been welcomed yet (its input waits unread).
    pub fn is_waiting(&self, id: ConnId) -> bool {
        self.waiting.contains(&id)
    }

    /// The loop is starting: the owner connects to Redis (`--redis`).
    pub fn start(&mut self, cx: &mut Context<'_, Client>) {
        if let Some(fed) = &mut self.fed {
            fed.start(cx);
        }
    }

    /// `--redis`, on the owner: runs `f` on the federation (an event of a
    /// Redis connection, or a federation timer) and delivers what it asks
    /// in the room's order. `false` if this reactor has no federation.
    pub fn federation(
        &mut self,
        cx: &mut Context<'_, Client>,
        f: impl FnOnce(
            &mut Federation<Client, GroupConnId>,
            &mut Context<'_, Client>,
        ) -> Vec<Action<GroupConnId>>,
    ) -> bool {
        let Some(fed) = self.fed.as_mut() else {
            return false;
        };
        let actions = f(fed, cx);
        self.apply(cx, actions);
        true
    }

    /// The reactor is stopping. With `--redis`, on the owner, the goodbye
    /// to the room goes out first (before the final flush); then every
    /// client here is told `* server shutting down` (never the Redis
    /// connections).
    pub fn shutting_down(&mut self, cx: &mut Context<'_, Client>) {
        let Some(fed) = self.fed.as_mut() else {
            cx.broadcast(b"* server shutting down\n", None);
            return;
        };
        fed.shutdown(cx);
        let ids: Vec<ConnId> = cx.ids().filter(|&id| !fed.is_link(id)).collect();
        for id in ids {
            let _ = cx.send(id, b"* server shutting down\n");
        }
    }

    /// A client entered under its address `name`.
    pub fn joined(&mut self, cx: &mut Context<'_, Client>, id: ConnId, name: &str) {
        // Welcomed by the room, in its order: until then it is shown
        // nothing and not read, so it never hears of a join that came
        // before its own.
        self.waiting.insert(id);
        let m = msg(JOIN, self.here(id), name.as_bytes());
        self.up(cx, m, true);
    }

    /// A line of text from `id`; `false` if it must wait (keep it).
    pub fn say(&mut self, cx: &mut Context<'_, Client>, id: ConnId, text: &str) -> bool {
        let m = msg(LINE, self.here(id), text.as_bytes());
        self.up(cx, m, false)
    }

    /// A well-formed `/nick NEW`; `false` if it must wait.
    pub fn nick(&mut self, cx: &mut Context<'_, Client>, id: ConnId, new: &str) -> bool {
        let m = msg(NICK, self.here(id), new.as_bytes());
        self.up(cx, m, false)
    }

    /// `/who`; `false` if it must wait.
    pub fn who(&mut self, cx: &mut Context<'_, Client>, id: ConnId) -> bool {
        let m = msg(WHO, self.here(id), b"");
        self.up(cx, m, false)
    }

    /// A client left (`why` said in parentheses, if any).
    pub fn left(&mut self, cx: &mut Context<'_, Client>, id: ConnId, why: Option<&str>) {
        self.waiting.remove(&id);
        let m = msg(LEAVE, self.here(id), why.unwrap_or("").as_bytes());
        self.up(cx, m, true);
    }

    /// The retry timer: forwards the backlog while the lane takes it; on
    /// the owner, tells the reactors it cut ([`CUT`]).
    pub fn tick(&mut self, cx: &mut Context<'_, Client>) {
        self.retry_armed = false;
        self.check_evicted(cx);
        self.warn_cut(cx);
        while let Some(m) = self.backlog.pop_front() {
            match cx.post(OWNER, m) {
                Ok(()) => {}
                Err(SendError::Full(m)) => {
                    self.backlog.push_front(m);
                    break;
                }
                Err(SendError::Closed(_)) => self.backlog.clear(),
            }
        }
        if !self.backlog.is_empty() {
            self.arm_retry(cx);
        }
    }

    /// A message from reactor `from`: the room's output to deliver here,
    /// or, on the owner, a client's doing to sequence.
    pub fn on_message(&mut self, cx: &mut Context<'_, Client>, from: usize, m: Message) {
        self.check_evicted(cx);
        match m.kind {
            ALL => {
                let except = m.conn.filter(|c| c.reactor == self.me).map(|c| c.id);
                self.broadcast(cx, m.data, except);
            }
            TO => {
                if let Some(c) = m.conn.filter(|c| c.reactor == self.me) {
                    let _ = cx.send_shared(c.id, m.data);
                }
            }
            CUT => {} // the flag was looked at above
            WELCOME => {
                if let Some(c) = m.conn.filter(|c| c.reactor == self.me) {
                    // Gone meanwhile (closed, or its slot reused: a new id)
                    // if it is not waiting any more.
                    if self.waiting.remove(&c.id) {
                        let _ = cx.send_shared(c.id, m.data);
                        // What it sent before its welcome is read now.
                        cx.resume_reading(c.id);
                    }
                }
            }
            _ if self.room.is_some() => self.sequence(cx, from, m),
            kind => log::warn!("chat: message of kind {kind} from reactor {from} ignored"),
        }
    }

    /// The room's line to every client here but `except`, past the clients
    /// still waiting for their welcome and the Redis connections (one pass
    /// over the connections, no list of ids made per line).
    fn broadcast(&self, cx: &mut Context<'_, Client>, data: Arc<[u8]>, except: Option<ConnId>) {
        let fed = self.fed.as_ref();
        cx.broadcast_shared_to(data, |id| {
            Some(id) != except && !self.waiting.contains(&id) && !fed.is_some_and(|f| f.is_link(id))
        });
    }

    /// The [`SUMMARY`] timer (the owner's only): the ended second's
    /// `* N joined, M left`, into the room's order.
    pub fn summarize(&mut self, cx: &mut Context<'_, Client>) {
        let Some(room) = self.room.as_mut() else {
            return;
        };
        let mut said = Vec::new();
        room.summarize(cx.now(), &mut |s| said.push(s));
        self.deliver(cx, said);
    }

    /// Not the owner: if the owner had to cut this reactor, close its
    /// clients (they were announced as gone) and rejoin the room.
    fn check_evicted(&mut self, cx: &mut Context<'_, Client>) {
        if self.room.is_some() || !self.shared.evicted[self.me].swap(false, Ordering::AcqRel) {
            return;
        }
        let ids: Vec<ConnId> = cx.ids().collect();
        log::warn!(
            "chat: this reactor fell behind the room; closing its {} clients",
            ids.len()
        );
        for id in ids {
            let _ = cx.send(id, b"* error: server overloaded\n");
            cx.close(id);
        }
        // Anything queued before this point reaches the owner while it
        // ignores this reactor. The departures of the clients closed above
        // come after the resync (connection_lost runs once this callback
        // returns): the owner ignores them as of no member, for the cut
        // took every client of this reactor out of the room already.
        let m = Message::new(RESYNC, None, &b""[..]);
        self.up(cx, m, true);
    }

    /// Owner: sends each cut reactor not yet told a [`CUT`], once its lane
    /// takes one (the flag is up already: the message only makes it look).
    fn warn_cut(&mut self, cx: &mut Context<'_, Client>) {
        for r in 0..self.unwarned.len() {
            if !self.unwarned[r] {
                continue;
            }
            match cx.post(r, Message::new(CUT, None, &b""[..])) {
                Err(SendError::Full(_)) => self.arm_retry(cx),
                Ok(()) | Err(SendError::Closed(_)) => self.unwarned[r] = false,
            }
        }
    }

    /// Owner: applies one doing to the room and delivers what it says.
    fn sequence(&mut self, cx: &mut Context<'_, Client>, from: usize, m: Message) {
        if m.kind == RESYNC {
            self.lagging[from] = false;
            self.unwarned[from] = false;
            return;
        }
        if self.lagging[from] {
            return; // from a cut reactor, before its resync
        }
        let Some(who) = m.conn else {
            return;
        };
        let text = String::from_utf8_lossy(&m.data);
        if let Some(fed) = self.fed.as_mut() {
            // --redis: the federation decides, in Redis's order.
            let actions = match m.kind {
                JOIN => fed.connected(cx, who, &text),
                LINE => fed.line(cx, who, &text),
                NICK => fed.nick(cx, who, &text),
                WHO => fed.who(cx, who),
                LEAVE => fed.left(cx, who, (!text.is_empty()).then_some(&*text)),
                kind => {
                    log::warn!("chat: message of kind {kind} from reactor {from} ignored");
                    Vec::new()
                }
            };
            return self.apply(cx, actions);
        }
        let now = cx.now();
        let mut said = Vec::new();
        let emit = &mut |s| said.push(s);
        let room = self.room.as_mut().expect("the owner has the room");
        match m.kind {
            JOIN => room.join(who, text.into_owned(), now, emit),
            LINE => room.line(who, &text, emit),
            NICK => room.nick(who, &text, emit),
            WHO => room.who(who, emit),
            LEAVE => room.leave(who, (!text.is_empty()).then_some(&*text), now, emit),
            kind => log::warn!("chat: message of kind {kind} from reactor {from} ignored"),
        }
        self.deliver(cx, said);
    }

    /// Owner, `--redis`: delivers what the federation asks, in its order.
    fn apply(&mut self, cx: &mut Context<'_, Client>, actions: Vec<Action<GroupConnId>>) {
        if let Some(why) = self.fed.as_ref().and_then(|f| f.fatal()) {
            if let Ok(mut fatal) = self.shared.fatal.lock() {
                fatal.get_or_insert_with(|| why.to_string());
            }
        }
        if actions.is_empty() {
            return;
        }
        let mut said = Vec::new();
        let room = self.room.as_mut().expect("the owner has the room");
        translate(room, actions, cx.now(), &mut said);
        self.deliver(cx, said);
    }

    /// Owner: delivers `said` in order, here directly and elsewhere by
    /// message; a reactor whose lane is full is cut (see the module docs).
    fn deliver(&mut self, cx: &mut Context<'_, Client>, mut said: Vec<Say>) {
        while !said.is_empty() {
            let mut cut = Vec::new();
            for s in said.drain(..) {
                let (kind, conn, line, targets) = match s {
                    Say::All { except, line } => (ALL, except, line, None),
                    Say::To { conn, line } => (TO, Some(conn), line, Some(conn.reactor)),
                    Say::Welcome { conn, line } => (WELCOME, Some(conn), line, Some(conn.reactor)),
                };
                for r in 0..self.lagging.len() {
                    if targets.is_some_and(|t| t != r) || self.lagging[r] {
                        continue;
                    }
                    if r == self.me {
                        let m = Message {
                            kind,
                            conn,
                            data: Arc::clone(&line),
                        };
                        self.on_message(cx, r, m);
                        continue;
                    }
                    let m = Message {
                        kind,
                        conn,
                        data: Arc::clone(&line),
                    };
                    if let Err(SendError::Full(_)) = cx.post(r, m) {
                        log::warn!("chat: reactor {r} fell behind the room; cutting its clients");
                        self.lagging[r] = true;
                        self.unwarned[r] = true;
                        self.shared.evicted[r].store(true, Ordering::Release);
                        cut.push(r);
                    }
                }
            }
            let room = self.room.as_mut().expect("the owner has the room");
            let now = cx.now();
            for r in cut {
                room.evict_reactor(r, now, &mut |s| said.push(s));
                if let Some(fed) = self.fed.as_mut() {
                    // --redis: its clients leave the shared room too.
                    let mut actions = Vec::new();
                    for who in fed.members().into_iter().filter(|c| c.reactor == r) {
                        actions.extend(fed.left(cx, who, Some("too slow")));
                    }
                    translate(room, actions, now, &mut said);
                }
            }
        }
        if self.unwarned.contains(&true) {
            self.arm_retry(cx); // its lane is full now: warn_cut, shortly
        }
        // Something counted for a summary for the first time this second:
        // the one timer that will say it.
        let room = self.room.as_mut().expect("the owner has the room");
        if let Some(wait) = room.summary_timer(cx.now()) {
            cx.call_later(wait, None, SUMMARY);
        }
    }
}

/// What the federation asks, as what the room says (`--redis`, on the
/// owner): the join and leave notices within `room`'s budget, the rest as
/// it comes. The lines are those of `federated.rs` for one reactor.
fn translate(
    room: &mut Room,
    actions: Vec<Action<GroupConnId>>,
    now: Instant,
    said: &mut Vec<Say>,
) {
    let emit = &mut |s| said.push(s);
    for action in actions {
        match action {
            Action::Welcome { conn, name } => {
                let line = bytes(format!("* welcome {name}! /help lists the commands\n"));
                emit(Say::Welcome { conn, line });
            }
            Action::Line { from, name, text } => emit(Say::All {
                except: from,
                line: bytes(format!("<{name}> {text}\n")),
            }),
            Action::Joined { except, name } => {
                log::info!("{name} joined");
                let line = bytes(format!("* {name} joined\n"));
                room.announce(Change::Joined, line, except, now, emit);
            }
            Action::Left { name, reason } => {
                let suffix = reason.map(|w| format!(" ({w})")).unwrap_or_default();
                log::info!("{name} left{suffix}");
                let line = bytes(format!("* {name} left{suffix}\n"));
                room.announce(Change::Left, line, None, now, emit);
            }
            Action::Renamed { conn, old, new } => {
                if let Some(conn) = conn {
                    let line = bytes(format!("* you are now {new}\n"));
                    emit(Say::To { conn, line });
                }
                emit(Say::All {
                    except: conn,
                    line: bytes(format!("* {old} is now known as {new}\n")),
                });
            }
            Action::Notice { conn, text } => emit(Say::To {
                conn,
                line: bytes(format!("* {text}\n")),
            }),
            Action::NoticeAll(text) => emit(Say::All {
                except: None,
                line: bytes(format!("* {text}\n")),
            }),
        }
    }
}
