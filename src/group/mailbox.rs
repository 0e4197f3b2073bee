//! The cross-reactor mailbox: a bounded lane from every reactor to every
//! reactor, filled in batches (one per destination per loop pass) with at
//! most one wake-up per destination per pass.
//!
//! # Who touches what
//!
//! - A reactor's [`Post`] is its own: only its thread queues into the
//!   per-destination outboxes and takes from its inbound lanes.
//! - A [`Lane`] from `src` to `dst` is shared by exactly two threads: `src`
//!   appends a whole batch under its lock once per pass, `dst` swaps the
//!   batch out under the same lock. Neither holds it for more than a
//!   `Vec::append` or a `mem::swap`, so the lock is never contended by
//!   more than one other thread and never held across a callback.
//! - Each destination has one `mail` flag: set by the first sender that
//!   finds it clear (that sender, and only it, writes the destination's
//!   eventfd), cleared by the destination before it looks at its lanes.
//!
//! # Bound and policy
//!
//! A lane holds at most `capacity` messages: those already flushed and not
//! yet taken, plus those waiting in the sender's outbox. The sender knows
//! both exactly (it counts what it flushed, the receiver publishes what it
//! took), so [`Post::send`] refuses the message that would pass the bound
//! and hands it back ([`SendError::Full`]). The sender is never blocked and
//! no message is ever dropped silently: what to do with a refusal (pause
//! the client that produced it, cut the reactor that fell behind) is the
//! application's decision.

use std::collections::VecDeque;
use std::fmt;
use std::mem;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// What wakes a reactor blocked in `epoll_wait`: its mio waker (an eventfd).
pub(crate) trait Wake: Send + Sync {
    fn wake(&self);
}

impl Wake for mio::Waker {
    fn wake(&self) {
        if let Err(e) = mio::Waker::wake(self) {
            // Only a full eventfd counter fails, and then a wake-up is pending anyway.
            if e.kind() != std::io::ErrorKind::WouldBlock {
                log::error!("mailbox: wake failed: {e}");
            }
        }
    }
}

impl Wake for crate::Handle {
    fn wake(&self) {
        Wake::wake(&self.shared.waker);
    }
}

/// Why a message to another reactor was refused; the message is handed
/// back, and the sender was not blocked.
#[derive(PartialEq, Eq)]
pub enum SendError<M> {
    /// The destination has `capacity` messages from this reactor it has
    /// not taken yet: it has fallen behind.
    Full(M),
    /// The destination reactor has stopped (or there is no such reactor).
    Closed(M),
}

impl<M> SendError<M> {
    /// The message that was not sent.
    ///
    /// ```
    /// use mio_selectors::group::SendError;
    /// assert_eq!(SendError::Full(7).into_inner(), 7);
    /// ```
    pub fn into_inner(self) -> M {
        match self {
            SendError::Full(m) | SendError::Closed(m) => m,
        }
    }
}

impl<M> fmt::Debug for SendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SendError::Full(_) => "Full(..)",
            SendError::Closed(_) => "Closed(..)",
        })
    }
}

impl<M> fmt::Display for SendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SendError::Full(_) => "the destination reactor's mailbox is full",
            SendError::Closed(_) => "the destination reactor has stopped",
        })
    }
}

impl<M> std::error::Error for SendError<M> {}

/// Keeps each lane's counters on its own cache line, so that two lanes
/// written by different threads do not share one.
#[repr(align(64))]
struct Padded<T>(T);

struct Lane<M> {
    queue: Mutex<Vec<M>>,
    /// Messages ever flushed into the lane (written by the sender under the lock).
    pushed: AtomicU64,
    /// Messages ever taken out (written by the receiver).
    taken: AtomicU64,
}

/// Per destination: its wake-up and whether mail is waiting.
struct Inbox {
    mail: AtomicBool,
    closed: AtomicBool,
    waker: OnceLock<Box<dyn Wake>>,
}

/// Counters per reactor, written by its own thread once per flush or
/// drain (not per message), read by anyone.
#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    batches: AtomicU64,
    wakes: AtomicU64,
    refused: AtomicU64,
    received: AtomicU64,
}

/// A snapshot of one reactor's mailbox counters.
///
/// ```
/// let stats = mio_selectors::group::MailStats::default();
/// assert_eq!(stats.wakes, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MailStats {
    /// Messages this reactor sent to others (and to itself).
    pub sent: u64,
    /// Batches it handed over: at most one per destination per loop pass.
    pub batches: u64,
    /// Wake-ups (eventfd writes) it made: at most one per destination per
    /// pass, none when the destination had mail waiting already.
    pub wakes: u64,
    /// Messages refused because a destination was full or stopped.
    pub refused: u64,
    /// Messages it received.
    pub received: u64,
}

impl std::ops::AddAssign for MailStats {
    fn add_assign(&mut self, o: MailStats) {
        self.sent += o.sent;
        self.batches += o.batches;
        self.wakes += o.wakes;
        self.refused += o.refused;
        self.received += o.received;
    }
}

/// The lanes between `n` reactors; shared by all of them.
pub(crate) struct Lanes<M> {
    n: usize,
    capacity: usize,
    /// Lane `src → dst` at `src * n + dst`.
    lanes: Box<[Padded<Lane<M>>]>,
    inboxes: Box<[Padded<Inbox>]>,
    counters: Box<[Padded<Counters>]>,
}

impl<M: Send> Lanes<M> {
    /// Lanes between `n` reactors, each holding at most `capacity` messages.
    pub(crate) fn new(n: usize, capacity: usize) -> Arc<Self> {
        let lane = || {
            Padded(Lane {
                queue: Mutex::new(Vec::new()),
                pushed: AtomicU64::new(0),
                taken: AtomicU64::new(0),
            })
        };
        let inbox = || {
            Padded(Inbox {
                mail: AtomicBool::new(false),
                closed: AtomicBool::new(false),
                waker: OnceLock::new(),
            })
        };
        Arc::new(Lanes {
            n,
            capacity: capacity.max(1),
            lanes: (0..n * n).map(|_| lane()).collect(),
            inboxes: (0..n).map(|_| inbox()).collect(),
            counters: (0..n).map(|_| Padded(Counters::default())).collect(),
        })
    }

    fn lane(&self, src: usize, dst: usize) -> &Lane<M> {
        &self.lanes[src * self.n + dst].0
    }

    /// Sets how reactor `dst` is woken; mail sent before this waits for
    /// its first pass.
    pub(crate) fn set_waker(&self, dst: usize, waker: Box<dyn Wake>) {
        if self.inboxes[dst].0.waker.set(waker).is_err() {
            log::warn!("mailbox: reactor {dst} has a waker already");
        }
    }

    /// Reactor `dst` has stopped: sends to it fail from now on, and what
    /// waits for it is dropped.
    pub(crate) fn close(&self, dst: usize) {
        self.inboxes[dst].0.closed.store(true, Ordering::Release);
        for src in 0..self.n {
            let lane = self.lane(src, dst);
            let mut queue = lane.queue.lock().unwrap_or_else(|e| e.into_inner());
            let dropped = mem::take(&mut *queue);
            lane.taken
                .fetch_add(dropped.len() as u64, Ordering::Release);
        }
    }

    /// Reactor `i`'s counters.
    pub(crate) fn stats(&self, i: usize) -> MailStats {
        let c = &self.counters[i].0;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        MailStats {
            sent: get(&c.sent),
            batches: get(&c.batches),
            wakes: get(&c.wakes),
            refused: get(&c.refused),
            received: get(&c.received),
        }
    }

    /// The sending and receiving end of reactor `me`.
    pub(crate) fn post(self: &Arc<Self>, me: usize) -> Post<M> {
        let n = self.n;
        Post {
            me,
            lanes: Arc::clone(self),
            out: (0..n).map(|_| Vec::new()).collect(),
            flushed: vec![0; n],
            taken: vec![0; n],
            local: VecDeque::new(),
            spare: Vec::new(),
            pending: Vec::new(),
        }
    }
}

/// One reactor's end of the mailbox: outboxes per destination (filled by
/// [`send`](Self::send), handed over by [`flush`](Self::flush) once per
/// pass) and its inbound lanes ([`receive`](Self::receive)).
pub(crate) struct Post<M> {
    me: usize,
    lanes: Arc<Lanes<M>>,
    /// This pass's messages, per destination.
    out: Vec<Vec<M>>,
    /// Per destination: messages ever flushed into our lane to it.
    flushed: Vec<u64>,
    /// Per source: messages ever taken from its lane to us.
    taken: Vec<u64>,
    /// Messages to ourselves, delivered by the next `receive` without a lane.
    local: VecDeque<M>,
    /// An empty vector to swap into a lane we take from.
    spare: Vec<M>,
    /// Destinations with something in `out`, in first-send order.
    pending: Vec<usize>,
}

impl<M: Send> Post<M> {
    /// How many reactors there are.
    pub(crate) fn reactors(&self) -> usize {
        self.lanes.n
    }

    /// Queues `msg` for reactor `dst`; it leaves with this pass's
    /// [`flush`](Self::flush). Messages to one destination arrive in the
    /// order sent.
    ///
    /// # Errors
    ///
    /// [`SendError::Full`] if `dst` has `capacity` messages from us it has
    /// not taken; [`SendError::Closed`] if it stopped or does not exist.
    /// Either way the message comes back and nothing blocks.
    pub(crate) fn send(&mut self, dst: usize, msg: M) -> Result<(), SendError<M>> {
        let Some(inbox) = self.lanes.inboxes.get(dst) else {
            return Err(SendError::Closed(msg));
        };
        if inbox.0.closed.load(Ordering::Acquire) {
            self.refused(1);
            return Err(SendError::Closed(msg));
        }
        let waiting = if dst == self.me {
            self.local.len() as u64
        } else {
            let taken = self.lanes.lane(self.me, dst).taken.load(Ordering::Acquire);
            self.flushed[dst] - taken
        };
        let queued = &mut self.out[dst];
        if waiting + queued.len() as u64 >= self.lanes.capacity as u64 {
            self.refused(1);
            return Err(SendError::Full(msg));
        }
        if queued.is_empty() {
            self.pending.push(dst);
        }
        queued.push(msg);
        Ok(())
    }

    /// Whether anything sent this pass is still to be flushed.
    pub(crate) fn has_outgoing(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Whether messages to ourselves wait for the next
    /// [`receive`](Self::receive) (then the loop must not block).
    #[cfg(test)]
    pub(crate) fn has_local(&self) -> bool {
        !self.local.is_empty()
    }

    fn refused(&self, n: u64) {
        let c = &self.lanes.counters[self.me].0;
        c.refused.fetch_add(n, Ordering::Relaxed);
    }

    /// Hands this pass's messages over: one batch per destination, and a
    /// wake-up for each destination that had no mail waiting. Returns the
    /// number of wake-ups made.
    pub(crate) fn flush(&mut self) -> usize {
        let (mut sent, mut batches, mut wakes) = (0, 0, 0);
        let mut pending = mem::take(&mut self.pending);
        for &dst in &pending {
            let batch = &mut self.out[dst];
            let len = batch.len() as u64;
            if len == 0 {
                continue;
            }
            sent += len;
            if dst == self.me {
                self.local.extend(batch.drain(..));
                continue;
            }
            let inbox = &self.lanes.inboxes[dst].0;
            let lane = self.lanes.lane(self.me, dst);
            {
                let mut queue = lane.queue.lock().unwrap_or_else(|e| e.into_inner());
                if inbox.closed.load(Ordering::Acquire) {
                    // Stopped since `send`: nobody will take these.
                    let dropped = batch.len() as u64;
                    batch.clear();
                    drop(queue);
                    self.refused(dropped);
                    sent -= dropped;
                    continue;
                }
                if queue.is_empty() {
                    // Keep the receiver's storage: hand ours over.
                    mem::swap(&mut *queue, batch);
                } else {
                    queue.append(batch);
                }
                lane.pushed.fetch_add(len, Ordering::Release);
            }
            self.flushed[dst] += len;
            batches += 1;
            // The first sender to find the flag clear wakes; the others
            // know a wake-up is on its way (see the module docs).
            if !inbox.mail.swap(true, Ordering::AcqRel) {
                if let Some(waker) = inbox.waker.get() {
                    waker.wake();
                    wakes += 1;
                }
            }
        }
        pending.clear();
        self.pending = pending; // its storage, for the next pass
        let c = &self.lanes.counters[self.me].0;
        if sent > 0 {
            c.sent.fetch_add(sent, Ordering::Relaxed);
            c.batches.fetch_add(batches, Ordering::Relaxed);
            c.wakes.fetch_add(wakes, Ordering::Relaxed);
        }
        wakes as usize
    }

    /// Whether another reactor may have handed us mail since the last
    /// [`receive`](Self::receive) (one atomic load; cheap to ask every pass).
    pub(crate) fn has_mail(&self) -> bool {
        !self.local.is_empty() || self.lanes.inboxes[self.me].0.mail.load(Ordering::Acquire)
    }

    /// Moves every message waiting for us into `into` as `(source, message)`:
    /// ours to ourselves first, then each other reactor's in the order it
    /// sent them. Returns how many.
    pub(crate) fn receive(&mut self, into: &mut Vec<(usize, M)>) -> usize {
        let before = into.len();
        let me = self.me;
        into.extend(self.local.drain(..).map(|m| (me, m)));
        // Clear the flag before looking, so a batch handed over after the
        // look sets it again and wakes us (no lost wake-up).
        let inbox = &self.lanes.inboxes[me].0;
        if inbox.mail.swap(false, Ordering::AcqRel) {
            for src in 0..self.lanes.n {
                if src == me {
                    continue;
                }
                let lane = self.lanes.lane(src, me);
                if lane.pushed.load(Ordering::Acquire) == self.taken[src] {
                    continue; // nothing new from src: no lock taken
                }
                {
                    let mut queue = lane.queue.lock().unwrap_or_else(|e| e.into_inner());
                    mem::swap(&mut *queue, &mut self.spare);
                }
                let n = self.spare.len() as u64;
                self.taken[src] += n;
                lane.taken.store(self.taken[src], Ordering::Release);
                into.extend(self.spare.drain(..).map(|m| (src, m)));
            }
        }
        let got = into.len() - before;
        if got > 0 {
            let c = &self.lanes.counters[me].0;
            c.received.fetch_add(got as u64, Ordering::Relaxed);
        }
        got
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    /// Counts wake-ups and writes the real eventfd of a real `Poll`.
    struct Counted(mio::Waker, Arc<AtomicUsize>);
    impl Wake for Counted {
        fn wake(&self) {
            self.1.fetch_add(1, Ordering::SeqCst);
            Wake::wake(&self.0);
        }
    }

    fn poll_with_waker(lanes: &Lanes<u32>, i: usize) -> (mio::Poll, Arc<AtomicUsize>) {
        let poll = mio::Poll::new().unwrap();
        let waker = mio::Waker::new(poll.registry(), mio::Token(0)).unwrap();
        let count = Arc::new(AtomicUsize::new(0));
        lanes.set_waker(i, Box::new(Counted(waker, Arc::clone(&count))));
        (poll, count)
    }

    /// One wake-up per destination per pass, whatever the number of messages,
    /// and none while the destination has not taken its mail yet.
    #[test]
    fn one_wake_per_destination_per_pass() {
        let lanes = Lanes::<u32>::new(3, 1000);
        let (mut poll1, wakes1) = poll_with_waker(&lanes, 1);
        let (_poll2, wakes2) = poll_with_waker(&lanes, 2);
        let mut p0 = lanes.post(0);
        let mut p1 = lanes.post(1);
        for i in 0..100 {
            p0.send(1, i).unwrap();
            p0.send(2, i).unwrap();
        }
        assert_eq!(p0.flush(), 2);
        assert_eq!(
            (wakes1.load(Ordering::SeqCst), wakes2.load(Ordering::SeqCst)),
            (1, 1)
        );
        // The eventfd really was written: the poll returns at once.
        let mut events = mio::Events::with_capacity(4);
        poll1
            .poll(&mut events, Some(Duration::from_secs(5)))
            .unwrap();
        assert_eq!(events.iter().count(), 1);
        // A second pass before reactor 1 took its mail: no second wake-up.
        p0.send(1, 100).unwrap();
        assert_eq!(p0.flush(), 0);
        assert_eq!(wakes1.load(Ordering::SeqCst), 1);
        let mut got = Vec::new();
        assert!(p1.has_mail());
        assert_eq!(p1.receive(&mut got), 101);
        assert!(got
            .iter()
            .map(|&(src, m)| (src, m))
            .eq((0..=100).map(|m| (0, m))));
        assert!(!p1.has_mail());
        // Taken: the next batch wakes again.
        p0.send(1, 7).unwrap();
        assert_eq!(p0.flush(), 1);
        assert_eq!(wakes1.load(Ordering::SeqCst), 2);
        let s = lanes.stats(0);
        assert_eq!((s.sent, s.batches, s.wakes, s.refused), (202, 4, 3, 0));
        assert_eq!(lanes.stats(1).received, 101);
    }

    /// The bound counts what waits in the lane and in the outbox; a refusal
    /// hands the message back and blocks nothing; taking frees room.
    #[test]
    fn full_lane_refuses_and_recovers() {
        let lanes = Lanes::<u32>::new(2, 4);
        let mut p0 = lanes.post(0);
        let mut p1 = lanes.post(1);
        for i in 0..3 {
            p0.send(1, i).unwrap();
        }
        p0.flush();
        p0.send(1, 3).unwrap();
        assert_eq!(p0.send(1, 4), Err(SendError::Full(4)));
        p0.flush();
        assert!(matches!(p0.send(1, 5), Err(SendError::Full(5))));
        let mut got = Vec::new();
        assert_eq!(p1.receive(&mut got), 4);
        p0.send(1, 6).unwrap();
        assert_eq!(lanes.stats(0).refused, 2);
        // Other destinations are not affected by a full one.
        p0.send(0, 9).unwrap();
        p0.flush();
        let mut mine = Vec::new();
        assert!(p0.has_local());
        assert_eq!(p0.receive(&mut mine), 1);
        assert_eq!(mine, vec![(0, 9)]);
    }

    /// A payload shared by reference reaches every reactor as the same bytes.
    #[test]
    fn shared_payload_is_not_copied() {
        let lanes = Lanes::<Arc<[u8]>>::new(4, 16);
        let mut posts: Vec<_> = (0..4).map(|i| lanes.post(i)).collect();
        let line: Arc<[u8]> = Arc::from(&b"<alice> hi\n"[..]);
        for dst in 0..4 {
            posts[0].send(dst, Arc::clone(&line)).unwrap();
        }
        posts[0].flush();
        for post in &mut posts {
            let mut got = Vec::new();
            post.receive(&mut got);
            assert_eq!(got.len(), 1);
            assert!(Arc::ptr_eq(&got[0].1, &line));
        }
    }

    #[test]
    fn closed_destination_refuses() {
        let lanes = Lanes::<u32>::new(2, 4);
        let mut p0 = lanes.post(0);
        p0.send(1, 1).unwrap();
        lanes.close(1);
        p0.flush(); // dropped at flush: counted, not delivered
        assert_eq!(p0.send(1, 2), Err(SendError::Closed(2)));
        assert_eq!(p0.send(5, 3), Err(SendError::Closed(3)));
        assert_eq!(lanes.stats(0).refused, 2);
    }

    /// Several threads sending to one receiver that runs a real poll loop:
    /// every message arrives once, in per-sender order, and a receiver that
    /// sleeps in `epoll_wait` is always woken (no lost wake-up).
    #[test]
    fn threads_lose_nothing_and_keep_order() {
        const SENDERS: usize = 3;
        const PER: u32 = 20_000;
        let lanes = Lanes::<u32>::new(SENDERS + 1, 256);
        let (mut poll, _) = poll_with_waker(&lanes, SENDERS);
        let mut threads = Vec::new();
        for s in 0..SENDERS {
            let lanes = Arc::clone(&lanes);
            threads.push(std::thread::spawn(move || {
                let mut post = lanes.post(s);
                let mut next = 0;
                let deadline = std::time::Instant::now() + Duration::from_secs(30);
                while next < PER {
                    assert!(std::time::Instant::now() < deadline, "sender stuck");
                    // A pass: a few messages, then a flush; back off when full.
                    for _ in 0..(next % 7 + 1) {
                        match post.send(SENDERS, next) {
                            Ok(()) => next += 1,
                            Err(SendError::Full(_)) => break,
                            Err(e) => panic!("{e}"),
                        }
                        if next == PER {
                            break;
                        }
                    }
                    post.flush();
                    if post.has_outgoing() {
                        unreachable!("flush leaves nothing behind");
                    }
                    std::thread::yield_now();
                }
            }));
        }
        let mut post = lanes.post(SENDERS);
        let mut expect = [0u32; SENDERS];
        let mut events = mio::Events::with_capacity(8);
        let mut got = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while expect.iter().any(|&e| e < PER) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            assert!(!left.is_zero(), "receiver starved: {expect:?}");
            if !post.has_mail() {
                poll.poll(&mut events, Some(left)).unwrap();
            }
            got.clear();
            post.receive(&mut got);
            for &(src, m) in &got {
                assert_eq!(m, expect[src], "from {src}");
                expect[src] += 1;
            }
        }
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(lanes.stats(SENDERS).received, SENDERS as u64 * PER as u64);
    }
}
