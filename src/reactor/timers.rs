//! `Timers`: every deadline the reactor keeps for timers, as pure data.
//! It never calls anything: the loop pops what is due and acts on it.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use super::TimerId;
use crate::ConnId;

/// What a due timer is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    /// The application's: call `on_timer`, then again every `every`.
    User {
        conn: Option<ConnId>,
        tag: u64,
        every: Option<Duration>,
    },
    /// An outgoing connect ran out of time.
    Connect(ConnId),
    /// Check a connection's idle timeout.
    Idle(ConnId),
    /// A wrapped connection's handshake ran out of time.
    Handshake(ConnId),
}

/// Timers by deadline (then by id, which makes keys unique and keeps the
/// order of equal deadlines), and each live timer's deadline by id, so that
/// cancelling by id costs a lookup, not a scan.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    by_deadline: BTreeMap<(Instant, u64), Timer>,
    deadlines: HashMap<u64, Instant>,
    next: u64,
}

impl Timers {
    /// Sets `timer` for `deadline`.
    pub(crate) fn add(&mut self, deadline: Instant, timer: Timer) -> TimerId {
        let id = self.next;
        self.next += 1;
        self.by_deadline.insert((deadline, id), timer);
        self.deadlines.insert(id, deadline);
        TimerId(id)
    }

    /// Cancels a live timer; `false` if it fired (and was not re-armed) or
    /// was cancelled already.
    pub(crate) fn cancel(&mut self, id: TimerId) -> bool {
        match self.deadlines.remove(&id.0) {
            Some(deadline) => self.by_deadline.remove(&(deadline, id.0)).is_some(),
            None => false,
        }
    }

    /// Sets a timer that has just been popped again, under the same id (so
    /// the id its owner holds still cancels it).
    pub(crate) fn rearm(&mut self, id: TimerId, deadline: Instant, timer: Timer) {
        self.by_deadline.insert((deadline, id.0), timer);
        self.deadlines.insert(id.0, deadline);
    }

    /// The first id [`add`](Self::add) will give from now on. Timers added
    /// from now are not [`pop_due`](Self::pop_due) with this mark, whatever
    /// their deadline: a timer set while timers fire waits for the next
    /// pass, so timers cannot keep the loop from polling.
    pub(crate) fn mark(&self) -> u64 {
        self.next
    }

    /// Removes and returns the earliest timer due at `now` that was added
    /// before `mark`.
    pub(crate) fn pop_due(&mut self, now: Instant, mark: u64) -> Option<(TimerId, Timer)> {
        let (&(deadline, id), _) = self.by_deadline.first_key_value()?;
        if deadline > now || id >= mark {
            return None;
        }
        let timer = self.by_deadline.remove(&(deadline, id))?;
        self.deadlines.remove(&id);
        Some((TimerId(id), timer))
    }

    /// The earliest deadline, for the poll timeout.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.by_deadline.keys().next().map(|&(d, _)| d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(tag: u64) -> Timer {
        Timer::User {
            conn: None,
            tag,
            every: None,
        }
    }

    #[test]
    fn due_timers_pop_in_deadline_order_then_by_id() {
        let mut t = Timers::default();
        let now = Instant::now();
        let later = now + Duration::from_secs(1);
        t.add(later, user(1));
        t.add(now, user(2));
        t.add(now, user(3));
        assert_eq!(t.next_deadline(), Some(now));
        let mark = t.mark();
        assert_eq!(t.pop_due(now, mark).map(|p| p.1), Some(user(2)));
        assert_eq!(t.pop_due(now, mark).map(|p| p.1), Some(user(3)));
        assert_eq!(t.pop_due(now, mark), None, "the later one is not due");
        assert_eq!(t.pop_due(later, mark).map(|p| p.1), Some(user(1)));
        assert!(t.next_deadline().is_none());
    }

    #[test]
    fn a_timer_added_after_the_mark_waits_for_the_next_pass() {
        let mut t = Timers::default();
        let now = Instant::now();
        let mark = t.mark();
        t.add(now, user(1));
        assert_eq!(t.pop_due(now, mark), None);
        assert!(t.pop_due(now, t.mark()).is_some());
    }

    #[test]
    fn cancel_and_rearm_keep_the_id() {
        let mut t = Timers::default();
        let now = Instant::now();
        let id = t.add(now, user(1));
        let (popped, timer) = t.pop_due(now, t.mark()).unwrap();
        assert_eq!(popped, id);
        assert!(!t.cancel(id), "fired: nothing to cancel");
        t.rearm(id, now + Duration::from_secs(1), timer);
        assert!(t.cancel(id), "re-armed under the same id");
        assert!(!t.cancel(id));
        assert!(t.next_deadline().is_none());
    }
}
