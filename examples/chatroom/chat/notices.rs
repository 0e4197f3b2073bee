//! The room's budget for join and leave notices (`docs/chat-protocol.md`,
//! "Notice storms").
//!
//! Each join or leave would be one line to every other client: when 10,000
//! clients vanish at once that is 10,000 lines to each survivor, O(n²)
//! bytes queued in one pass (the probe saw 1.31 GB), and a member who
//! merely paused reading is cut as too slow because of other people's
//! churn. So the room announces at most [`PER_WINDOW`] joins and leaves
//! individually per [`WINDOW`] (one second); the rest of that second's are
//! counted, and announced once when the second ends, as
//! `* N joined, M left` (a part omitted when it is zero).
//!
//! A window opens with the first join or leave after a quiet spell and
//! lasts one second. The type is plain data, with no clock and no I/O: the
//! server passes `now` in, asks [`Notices::due`] when to come back, and
//! broadcasts what it is told to.

use std::time::{Duration, Instant};

/// Joins and leaves announced one by one per window.
pub const PER_WINDOW: u32 = 10;
/// The length of a window.
pub const WINDOW: Duration = Duration::from_secs(1);

/// What happened to the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Joined,
    Left,
}

/// The budget: how many notices this window has said, and what it has
/// counted instead.
#[derive(Debug)]
pub struct Notices {
    per_window: u32,
    window: Duration,
    /// When the open window started; `None` between windows.
    opened: Option<Instant>,
    /// Individual notices said in the open window.
    said: u32,
    /// Past the budget: counted for the window's summary.
    joined: u64,
    left: u64,
    /// [`timer_due`](Self::timer_due) answered for the open window.
    timer_asked: bool,
}

impl Default for Notices {
    /// The protocol's budget: [`PER_WINDOW`] per [`WINDOW`].
    fn default() -> Self {
        Notices::new(PER_WINDOW, WINDOW)
    }
}

impl Notices {
    /// A budget of `per_window` individual notices per `window`.
    pub fn new(per_window: u32, window: Duration) -> Self {
        Notices {
            per_window,
            window,
            opened: None,
            said: 0,
            joined: 0,
            left: 0,
            timer_asked: false,
        }
    }

    /// Closes the open window if it has ended by `now`, returning its
    /// summary line (`* N joined, M left\n`) if it counted anything. Call it
    /// before [`admit`](Self::admit), and when [`due`](Self::due) comes.
    pub fn tick(&mut self, now: Instant) -> Option<String> {
        let opened = self.opened?;
        if now < opened + self.window {
            return None;
        }
        let summary = self.summary();
        self.opened = None;
        self.said = 0;
        self.joined = 0;
        self.left = 0;
        self.timer_asked = false;
        summary
    }

    /// A join or leave at `now`: `true` if it is to be announced on its own
    /// line now, `false` if it was counted for the summary (due at
    /// [`due`](Self::due)).
    pub fn admit(&mut self, now: Instant, change: Change) -> bool {
        if self.due().is_none() {
            // Nothing owed: a window that has ended closes here, silently.
            let _ = self.tick(now);
        }
        // (A window whose summary is owed stays open until `tick` says it.)
        self.opened.get_or_insert(now);
        if self.said < self.per_window {
            self.said += 1;
            return true;
        }
        match change {
            Change::Joined => self.joined += 1,
            Change::Left => self.left += 1,
        }
        false
    }

    /// When the summary of what was counted is due (the end of the open
    /// window); `None` while nothing is counted.
    pub fn due(&self) -> Option<Instant> {
        let counted = self.joined > 0 || self.left > 0;
        self.opened.filter(|_| counted).map(|t| t + self.window)
    }

    /// When to set the one timer for the open window's summary: `Some` the
    /// first time something is counted in a window, `None` after (the
    /// timer is set already) and while nothing is counted.
    pub fn timer_due(&mut self) -> Option<Instant> {
        let due = self.due().filter(|_| !self.timer_asked)?;
        self.timer_asked = true;
        Some(due)
    }

    /// `* N joined, M left\n`, either part omitted when zero; `None` when
    /// both are.
    fn summary(&self) -> Option<String> {
        let joined = (self.joined > 0).then(|| format!("{} joined", self.joined));
        let left = (self.left > 0).then(|| format!("{} left", self.left));
        match (joined, left) {
            (Some(j), Some(l)) => Some(format!("* {j}, {l}\n")),
            (Some(one), None) | (None, Some(one)) => Some(format!("* {one}\n")),
            (None, None) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(t: Instant, n: u64) -> Instant {
        t + Duration::from_millis(n)
    }

    #[test]
    fn the_first_ten_are_said_the_rest_summed_at_the_end_of_the_second() {
        let t = Instant::now();
        let mut n = Notices::default();
        for i in 0..10 {
            assert_eq!(n.tick(ms(t, i)), None);
            assert!(n.admit(ms(t, i), Change::Joined), "notice {i}");
        }
        assert_eq!(n.due(), None, "nothing counted yet");
        for i in 10..10_010 {
            assert_eq!(n.tick(ms(t, 500)), None);
            let change = if i % 2 == 0 {
                Change::Left
            } else {
                Change::Joined
            };
            assert!(!n.admit(ms(t, 500), change), "notice {i} is counted");
        }
        assert_eq!(n.due(), Some(ms(t, 1000)));
        assert_eq!(n.timer_due(), Some(ms(t, 1000)), "one timer per window");
        assert_eq!(n.timer_due(), None, "one timer per window");
        assert_eq!(n.tick(ms(t, 999)), None, "not before the second ends");
        assert_eq!(
            n.tick(ms(t, 1000)).as_deref(),
            Some("* 5000 joined, 5000 left\n")
        );
        assert_eq!(n.due(), None);
        assert_eq!(n.tick(ms(t, 5000)), None, "said once");
    }

    #[test]
    fn a_summary_omits_a_zero_part() {
        let t = Instant::now();
        let mut left = Notices::new(1, WINDOW);
        assert!(left.admit(t, Change::Joined));
        assert!(!left.admit(t, Change::Left));
        assert!(!left.admit(t, Change::Left));
        assert_eq!(left.tick(ms(t, 1000)).as_deref(), Some("* 2 left\n"));
        let mut joined = Notices::new(1, WINDOW);
        assert!(joined.admit(t, Change::Left));
        assert!(!joined.admit(t, Change::Joined));
        assert_eq!(joined.tick(ms(t, 1000)).as_deref(), Some("* 1 joined\n"));
    }

    #[test]
    fn a_new_window_opens_with_the_next_change_and_a_fresh_budget() {
        let t = Instant::now();
        let mut n = Notices::new(2, WINDOW);
        assert!(n.admit(t, Change::Joined));
        assert!(n.admit(ms(t, 10), Change::Joined));
        assert!(!n.admit(ms(t, 20), Change::Joined));
        // The summary timer fires late, after a quiet spell.
        assert_eq!(n.tick(ms(t, 3000)).as_deref(), Some("* 1 joined\n"));
        assert!(n.admit(ms(t, 3000), Change::Left));
        assert!(n.admit(ms(t, 3500), Change::Left));
        assert!(!n.admit(ms(t, 3999), Change::Left));
        assert_eq!(n.due(), Some(ms(t, 4000)), "the window opened at 3 s");
        assert_eq!(
            n.timer_due(),
            Some(ms(t, 4000)),
            "a new window, a new timer"
        );
        // A window with nothing counted closes silently.
        assert_eq!(n.tick(ms(t, 4000)).as_deref(), Some("* 1 left\n"));
        assert!(n.admit(ms(t, 6000), Change::Joined));
        assert_eq!(n.tick(ms(t, 7000)), None);
        assert_eq!(n.due(), None);
    }

    #[test]
    fn a_quiet_room_says_every_change() {
        let t = Instant::now();
        let mut n = Notices::default();
        for s in 0..100 {
            let now = t + Duration::from_secs(s);
            assert_eq!(n.tick(now), None);
            assert!(n.admit(now, Change::Joined));
            assert!(n.admit(now, Change::Left));
        }
    }
}
