//! `Room`: the one copy of the room's membership, kept by the reactor that
//! sequences it (the owner). Everything that changes the room or must be
//! seen in the room's single order passes through here: joins, lines,
//! nick changes, `/who`, departures. It does no I/O and reads no clock:
//! each step is told `now` where it needs it and says what to deliver
//! through `emit`, and the caller delivers it, locally or by message, in
//! exactly the order emitted.
//!
//! The room's notice budget ("Notice storms") is kept here too, so the
//! one sequencer decides which joins and leaves are said one by one and
//! where each `* N joined, M left` summary falls: every client, on every
//! reactor, sees the same lines in the same order.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio_selectors::group::GroupConnId;

use super::super::notices::{Change, Notices, WINDOW};

/// What the room says, to whom.
pub enum Say {
    /// To every client in the room but `except` (the sender).
    All {
        except: Option<GroupConnId>,
        line: Arc<[u8]>,
    },
    /// To one client.
    To { conn: GroupConnId, line: Arc<[u8]> },
    /// The client's `* welcome` (`line`), when the room takes in its join
    /// (with `--redis`, when its join comes back from Redis); from then on
    /// it receives what the room says and is read.
    Welcome { conn: GroupConnId, line: Arc<[u8]> },
}

pub fn bytes(s: String) -> Arc<[u8]> {
    Arc::from(s.into_bytes())
}

/// The room's members and their names.
pub struct Room {
    /// Every member and its name, in a stable order (for `/who`).
    names: BTreeMap<GroupConnId, String>,
    /// Nicks in use, lower-cased (addresses cannot clash: a nick has no `:`).
    nicks: HashMap<String, GroupConnId>,
    /// The budget of join and leave notices.
    notices: Notices,
}

impl Room {
    /// An empty room that says at most `notices_per_sec` joins and leaves
    /// one by one per second.
    pub fn new(notices_per_sec: u32) -> Room {
        Room {
            names: BTreeMap::new(),
            nicks: HashMap::new(),
            notices: Notices::new(notices_per_sec, WINDOW),
        }
    }

    /// How many clients are in the room.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// `who` entered the room under its address `name` at `now`.
    pub fn join(
        &mut self,
        who: GroupConnId,
        name: String,
        now: Instant,
        emit: &mut impl FnMut(Say),
    ) {
        let welcome = format!("* welcome {name}! /help lists the commands\n");
        emit(Say::Welcome {
            conn: who,
            line: bytes(welcome),
        });
        let line = bytes(format!("* {name} joined\n"));
        self.names.insert(who, name);
        self.announce(Change::Joined, line, Some(who), now, emit);
    }

    /// A join or leave notice: said now if the budget allows, else counted
    /// for the summary (an ended second's owed summary is said first). With
    /// `--redis` the membership is the federation's and the room keeps only
    /// this budget, applied once, in the one order, for every reactor.
    pub fn announce(
        &mut self,
        change: Change,
        line: Arc<[u8]>,
        except: Option<GroupConnId>,
        now: Instant,
        emit: &mut impl FnMut(Say),
    ) {
        self.summarize(now, emit);
        if self.notices.admit(now, change) {
            emit(Say::All { except, line });
        }
    }

    /// Says the ended second's `* N joined, M left`, if it counted
    /// anything and the second has ended by `now`.
    pub fn summarize(&mut self, now: Instant, emit: &mut impl FnMut(Say)) {
        if let Some(summary) = self.notices.tick(now) {
            emit(Say::All {
                except: None,
                line: bytes(summary),
            });
        }
    }

    /// How long from `now` until a summary timer is due, the first time
    /// one is owed in a second (then `None` until the next second's).
    pub fn summary_timer(&mut self, now: Instant) -> Option<Duration> {
        let due = self.notices.timer_due()?;
        Some(due.saturating_duration_since(now))
    }

    /// A line of text from `who`, relayed to everyone else.
    pub fn line(&mut self, who: GroupConnId, text: &str, emit: &mut impl FnMut(Say)) {
        // A line from a client that is no longer (or not) in the room: it
        // left, or its reactor was cut for falling behind.
        let Some(name) = self.names.get(&who) else {
            return;
        };
        emit(Say::All {
            except: Some(who),
            line: bytes(format!("<{name}> {text}\n")),
        });
    }

    /// `/nick NEW` from `who`; `new` is well-formed already.
    pub fn nick(&mut self, who: GroupConnId, new: &str, emit: &mut impl FnMut(Say)) {
        let Some(old) = self.names.get(&who).cloned() else {
            return;
        };
        let key = new.to_ascii_lowercase();
        if self.nicks.get(&key).is_some_and(|&owner| owner != who) {
            let line = bytes(format!("* error: nick {new} is taken\n"));
            return emit(Say::To { conn: who, line });
        }
        self.nicks.remove(&old.to_ascii_lowercase());
        self.nicks.insert(key, who);
        self.names.insert(who, new.to_string());
        let line = bytes(format!("* you are now {new}\n"));
        emit(Say::To { conn: who, line });
        emit(Say::All {
            except: Some(who),
            line: bytes(format!("* {old} is now known as {new}\n")),
        });
    }

    /// `/who` from `who`: every member's name, its own included.
    pub fn who(&self, who: GroupConnId, emit: &mut impl FnMut(Say)) {
        if !self.names.contains_key(&who) {
            return;
        }
        let names: Vec<&str> = self.names.values().map(String::as_str).collect();
        let line = bytes(format!("* online: {}\n", names.join(", ")));
        emit(Say::To { conn: who, line });
    }

    /// `who` left at `now`; `why`, if any, is said in parentheses.
    pub fn leave(
        &mut self,
        who: GroupConnId,
        why: Option<&str>,
        now: Instant,
        emit: &mut impl FnMut(Say),
    ) {
        let Some(name) = self.names.remove(&who) else {
            return;
        };
        self.nicks.remove(&name.to_ascii_lowercase());
        let suffix = why.map(|w| format!(" ({w})")).unwrap_or_default();
        log::info!("{name} left{suffix}");
        let line = bytes(format!("* {name} left{suffix}\n"));
        self.announce(Change::Left, line, None, now, emit);
    }

    /// Every member on reactor `reactor` leaves as too slow (at `now`):
    /// that reactor fell behind the room and cannot deliver it in order any
    /// more. A storm of leaves like any other, within the budget.
    pub fn evict_reactor(&mut self, reactor: usize, now: Instant, emit: &mut impl FnMut(Say)) {
        let gone: Vec<GroupConnId> = self
            .names
            .keys()
            .filter(|c| c.reactor == reactor)
            .copied()
            .collect();
        for who in gone {
            self.leave(who, Some("too slow"), now, emit);
        }
    }
}
