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
//! What stays local to a client's reactor: framing, line length, the rate
//! limit, the partial-line timeout, `/help`, `/quit`'s `* bye`, the
//! welcome, `* server full` (the client count is a group-wide [`Quota`]),
//! and `* server shutting down`.
//!
//! Falling behind, which the mailbox bounds (it never blocks a sender):
//! - a forward to the owner that finds its lane full leaves the line in
//!   the client's input, stops reading that client and tries again in
//!   10 ms (TCP pushes back, nothing is dropped); a join or departure
//!   waits in a small local backlog, in order, and is retried the same way;
//! - a reactor whose lane from the owner is full cannot be given the room
//!   in order any more: the owner announces its clients as `left (too
//!   slow)` to everyone else, and that reactor closes them (with
//!   `* error: server overloaded`) when it catches up, then rejoins the room.

mod room;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mio_selectors::group::{GroupConnId, Message, Quota, QuotaPermit, SendError};
use mio_selectors::{ConnId, Context};

use room::{Room, Say};

use super::commands::SUMMARY;
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

/// What the reactors of one room share: the group-wide client count, the
/// room's notice budget (used by the owner), and a flag per reactor the
/// owner raises when it had to cut that reactor.
#[derive(Debug)]
pub struct Shared {
    quota: Arc<Quota>,
    notices_per_sec: u32,
    evicted: Vec<AtomicBool>,
}

impl Shared {
    /// For `reactors` reactors and the limits of `config`: at most
    /// `max_clients` clients in all, `notices_per_sec` joins and leaves
    /// said one by one.
    pub fn new(reactors: usize, config: &ChatConfig) -> Arc<Shared> {
        Arc::new(Shared {
            quota: Quota::new(config.max_clients),
            notices_per_sec: config.notices_per_sec,
            evicted: (0..reactors).map(|_| AtomicBool::new(false)).collect(),
        })
    }
}

/// One reactor's part of the room.
#[derive(Debug)]
pub struct GroupRoom {
    me: usize,
    shared: Arc<Shared>,
    /// The room itself, on the owner only.
    room: Option<Room>,
    /// Owner: reactors cut for falling behind, until they resync.
    lagging: Vec<bool>,
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
        GroupRoom {
            me,
            shared,
            room,
            lagging: vec![false; n],
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
    fn up<D>(&mut self, cx: &mut Context<'_, D>, m: Message, keep: bool) -> bool {
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

    fn arm_retry<D>(&mut self, cx: &mut Context<'_, D>) {
        if !std::mem::replace(&mut self.retry_armed, true) {
            cx.call_later(RETRY, None, TICK);
        }
    }

    /// A client entered under its address `name`.
    pub fn joined<D>(&mut self, cx: &mut Context<'_, D>, id: ConnId, name: &str) {
        let m = msg(JOIN, self.here(id), name.as_bytes());
        self.up(cx, m, true);
    }

    /// A line of text from `id`; `false` if it must wait (keep it).
    pub fn say<D>(&mut self, cx: &mut Context<'_, D>, id: ConnId, text: &str) -> bool {
        let m = msg(LINE, self.here(id), text.as_bytes());
        self.up(cx, m, false)
    }

    /// A well-formed `/nick NEW`; `false` if it must wait.
    pub fn nick<D>(&mut self, cx: &mut Context<'_, D>, id: ConnId, new: &str) -> bool {
        let m = msg(NICK, self.here(id), new.as_bytes());
        self.up(cx, m, false)
    }

    /// `/who`; `false` if it must wait.
    pub fn who<D>(&mut self, cx: &mut Context<'_, D>, id: ConnId) -> bool {
        let m = msg(WHO, self.here(id), b"");
        self.up(cx, m, false)
    }

    /// A client left (`why` said in parentheses, if any).
    pub fn left<D>(&mut self, cx: &mut Context<'_, D>, id: ConnId, why: Option<&str>) {
        let m = msg(LEAVE, self.here(id), why.unwrap_or("").as_bytes());
        self.up(cx, m, true);
    }

    /// The retry timer: forwards the backlog while the lane takes it.
    pub fn tick<D>(&mut self, cx: &mut Context<'_, D>) {
        self.retry_armed = false;
        self.check_evicted(cx);
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
    pub fn on_message<D>(&mut self, cx: &mut Context<'_, D>, from: usize, m: Message) {
        self.check_evicted(cx);
        match m.kind {
            ALL => {
                let except = m.conn.filter(|c| c.reactor == self.me).map(|c| c.id);
                cx.broadcast_shared(m.data, except);
            }
            TO => {
                if let Some(c) = m.conn.filter(|c| c.reactor == self.me) {
                    let _ = cx.send(c.id, &m.data);
                }
            }
            _ if self.room.is_some() => self.sequence(cx, from, m),
            kind => log::warn!("chat: message of kind {kind} from reactor {from} ignored"),
        }
    }

    /// The [`SUMMARY`] timer (the owner's only): the ended second's
    /// `* N joined, M left`, into the room's order.
    pub fn summarize<D>(&mut self, cx: &mut Context<'_, D>) {
        let Some(room) = self.room.as_mut() else {
            return;
        };
        let mut said = Vec::new();
        room.summarize(cx.now(), &mut |s| said.push(s));
        self.deliver(cx, said);
    }

    /// Not the owner: if the owner had to cut this reactor, close its
    /// clients (they were announced as gone) and rejoin the room.
    fn check_evicted<D>(&mut self, cx: &mut Context<'_, D>) {
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
        // Departures queued before this point are ignored by the owner
        // (they are not members any more); the resync comes after them.
        let m = Message::new(RESYNC, None, &b""[..]);
        self.up(cx, m, true);
    }

    /// Owner: applies one doing to the room and delivers what it says.
    fn sequence<D>(&mut self, cx: &mut Context<'_, D>, from: usize, m: Message) {
        if m.kind == RESYNC {
            self.lagging[from] = false;
            return;
        }
        if self.lagging[from] {
            return; // from a cut reactor, before its resync
        }
        let Some(who) = m.conn else {
            return;
        };
        let text = String::from_utf8_lossy(&m.data);
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

    /// Owner: delivers `said` in order, here directly and elsewhere by
    /// message; a reactor whose lane is full is cut (see the module docs).
    fn deliver<D>(&mut self, cx: &mut Context<'_, D>, mut said: Vec<Say>) {
        while !said.is_empty() {
            let mut cut = Vec::new();
            for s in said.drain(..) {
                let (kind, conn, line, targets) = match s {
                    Say::All { except, line } => (ALL, except, line, None),
                    Say::To { conn, line } => (TO, Some(conn), line, Some(conn.reactor)),
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
                        self.shared.evicted[r].store(true, Ordering::Release);
                        cut.push(r);
                    }
                }
            }
            let room = self.room.as_mut().expect("the owner has the room");
            let now = cx.now();
            for r in cut {
                room.evict_reactor(r, now, &mut |s| said.push(s));
            }
        }
        // Something counted for a summary for the first time this second:
        // the one timer that will say it.
        let room = self.room.as_mut().expect("the owner has the room");
        if let Some(wait) = room.summary_timer(cx.now()) {
            cx.call_later(wait, None, SUMMARY);
        }
    }
}
