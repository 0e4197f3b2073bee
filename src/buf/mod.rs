//! Byte buffers for connection input and output, and the pool that lends
//! them out so that an idle connection owns no buffer at all.
//!
//! # Why pooled buffers are memory maps of their own
//!
//! Memory that a burst took has to go back to the operating system once the
//! burst is over, not only back to the allocator. glibc's `malloc` returns
//! freed memory to the kernel only from the top of its heap: 1,022 freed
//! 16 KiB buffers with anything still live above them stayed resident
//! (measured: 3.4 KiB per connection a second after a burst on 5,000
//! connections, as before the pool trimmed). So each pooled buffer is an
//! anonymous mapping of its own (`memmap2`, whose anonymous maps need no
//! `unsafe`): freeing one is an `munmap` and its pages leave the process at
//! once. The cost is one `mmap` per buffer the pool has to create and one
//! `munmap` per buffer it frees, neither of which happens in steady state;
//! pages are faulted in only when touched (a 64-byte message touches one).
//! If the kernel refuses a mapping (the per-process map count), the buffer
//! comes from the heap instead.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use memmap2::{MmapMut, MmapOptions};

mod outbuf;

pub(crate) use outbuf::OutBuf;

/// The bytes behind a [`ByteBuf`]: none (an empty `Vec`), a pool-sized map,
/// or a heap `Vec` (grown past the pool's size, or a map was refused). Both
/// are zero-filled when made, so the buffer stays fully initialised.
enum Storage {
    Heap(Vec<u8>),
    Mapped(MmapMut),
}

impl Storage {
    /// `size` zeroed bytes: mapped if the kernel agrees, else on the heap.
    fn new_pooled(size: usize) -> Storage {
        match MmapOptions::new().len(size).map_anon() {
            Ok(map) => Storage::Mapped(map),
            Err(e) => {
                log::debug!("buffer pool: mmap of {size} bytes failed ({e}); using the heap");
                Storage::Heap(vec![0; size])
            }
        }
    }
}

impl Default for Storage {
    fn default() -> Self {
        Storage::Heap(Vec::new())
    }
}

impl Deref for Storage {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Storage::Heap(v) => v,
            Storage::Mapped(m) => m,
        }
    }
}

impl DerefMut for Storage {
    fn deref_mut(&mut self) -> &mut [u8] {
        match self {
            Storage::Heap(v) => v,
            Storage::Mapped(m) => m,
        }
    }
}

/// A FIFO of bytes over storage that stays fully initialised, so reading
/// into it needs neither `unsafe` nor a memset. Consumed bytes are skipped
/// by `start`; the live bytes are moved to the front only when the tail
/// runs out of room.
#[derive(Default)]
pub(crate) struct ByteBuf {
    buf: Storage,
    // u32, not usize: 8 bytes less in every connection (twice: `inb` and
    // `outb`), which the 256-byte idle budget needs. The reactor's config
    // check keeps `max_inb` and `max_outb`, the most a buffer holds, under
    // 4 GiB.
    start: u32,
    end: u32,
}

/// `n` as an index into a buffer; buffers hold less than 4 GiB (see `ByteBuf`).
fn idx(n: usize) -> u32 {
    u32::try_from(n).expect("a buffer holds less than 4 GiB (Config check)")
}

impl ByteBuf {
    fn start(&self) -> usize {
        self.start as usize
    }

    fn end(&self) -> usize {
        self.end as usize
    }

    pub(crate) fn len(&self) -> usize {
        (self.end - self.start) as usize
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.start == self.end
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.buf[self.start()..self.end()]
    }

    pub(crate) fn consume(&mut self, n: usize) {
        assert!(n <= self.len(), "consume past the end of the buffer");
        self.start += n as u32; // n <= len, which fits
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    pub(crate) fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    /// Moves the live bytes to the front.
    fn compact(&mut self) {
        let (start, end) = (self.start(), self.end());
        self.buf.copy_within(start..end, 0);
        self.end -= self.start;
        self.start = 0;
    }

    /// Room for `want` more bytes at the tail, storage from `pool` if this
    /// buffer has none.
    pub(crate) fn spare(&mut self, want: usize, pool: &mut BufPool) -> &mut [u8] {
        if self.buf.is_empty() {
            self.buf = pool.get();
        }
        if self.buf.len() - self.end() < want {
            // Move live bytes to the front before growing.
            if self.start > 0 {
                self.compact();
            }
            if self.buf.len() - self.end() < want {
                // Grow onto the heap; a pool-sized buffer goes back to the pool.
                let end = self.end();
                let need = end + want;
                let mut grown = vec![0; need.max(self.buf.len() * 2)];
                grown[..end].copy_from_slice(&self.buf[..end]);
                pool.put(std::mem::replace(&mut self.buf, Storage::Heap(grown)));
            }
        }
        let end = self.end();
        &mut self.buf[end..end + want]
    }

    /// Room for between 1 and `max` more bytes at the tail, as much as the
    /// storage has: storage from `pool` if this buffer has none, the live
    /// bytes moved to the front when the tail is under half the storage,
    /// and growth only when there is no room at all. Reading into this
    /// rather than into [`spare`](Self::spare)`(max)` keeps a buffer that
    /// holds a partial message on its pooled storage.
    pub(crate) fn spare_up_to(&mut self, max: usize, pool: &mut BufPool) -> &mut [u8] {
        if self.buf.is_empty() {
            self.buf = pool.get();
        }
        let len = self.buf.len();
        if self.start > 0 && len - self.end() < len / 2 {
            self.compact();
        }
        let end = self.end();
        if end == len {
            return self.spare(max, pool);
        }
        let room = (len - end).min(max);
        &mut self.buf[end..end + room]
    }

    pub(crate) fn commit(&mut self, n: usize) {
        assert!(
            self.end() + n <= self.buf.len(),
            "commit past the spare room"
        );
        self.end = idx(self.end() + n);
    }

    pub(crate) fn extend(&mut self, data: &[u8], pool: &mut BufPool) {
        if data.is_empty() {
            return;
        }
        self.spare(data.len(), pool).copy_from_slice(data);
        self.commit(data.len());
    }

    /// Hands the storage back to `pool` if the buffer is empty, so that an
    /// idle connection holds no buffer.
    pub(crate) fn release_if_empty(&mut self, pool: &mut BufPool) {
        if self.is_empty() && !self.buf.is_empty() {
            pool.put(std::mem::take(&mut self.buf));
            self.clear();
        }
    }

    /// Moves all of `other`'s bytes to the end of `self`: a swap of storage
    /// when `self` is empty, a copy otherwise.
    pub(crate) fn append(&mut self, other: &mut ByteBuf, pool: &mut BufPool) {
        if self.is_empty() {
            std::mem::swap(self, other);
            other.clear();
        } else {
            self.extend(other.as_slice(), pool);
            other.clear();
        }
    }

    #[cfg(test)]
    pub(crate) fn storage(&self) -> usize {
        self.buf.len()
    }
}

/// How long a spare buffer may sit unused in the pool before it goes back
/// to the allocator.
pub(crate) const TRIM_PERIOD: Duration = Duration::from_millis(100);

/// How many trim periods of demand the pool remembers: while busy, it
/// keeps enough spares for the most buffers lent at once in any of the
/// last `WINDOW` periods (two seconds).
const WINDOW: usize = 20;

/// How many trim periods of low demand mean that a burst is over (half a
/// second: a busy closed-loop client can leave a reactor idle for a period
/// or two between its rounds).
const FALLEN: usize = 5;

/// Spare buffers the pool keeps however long they sit unused, so that a
/// reactor serving a trickle neither allocates per message nor wakes up
/// only to trim. Per reactor, not per connection.
const KEEP: usize = 2;

/// A stack of equally sized spare buffers, bounded in bytes, that shrinks
/// when demand falls.
///
/// `get` and `put` never allocate in steady state, which keeps the echo hot
/// path allocation-free. Policy:
///
/// - *Bound*: at most `max_bytes` of spare buffers; a buffer returned past
///   it (or grown past the pool's size) goes back to the system.
/// - *Shrink*: the pool counts the buffers it has lent out and, per
///   [`TRIM_PERIOD`], the most lent at once. [`trim`](Self::trim), called
///   once per loop pass, compares the peak of the last `FALLEN` periods
///   with the highest of the last `WINDOW`. Under a quarter of it, demand
///   has fallen (a burst is over): spares beyond the recent need go at
///   once, so a burst's memory is back `FALLEN` to `FALLEN + 1` periods
///   after it ends (500–600 ms). Otherwise
///   the pool keeps spares for the window's peak and lets any surplus over
///   it go an eighth per period, so a busy load whose peak comes and goes
///   keeps what it cycles through and allocates nothing. At least `KEEP`
///   spares stay. While spares are above `KEEP`,
///   [`next_trim`](Self::next_trim) asks the loop to wake up for the trim
///   even when it is otherwise idle.
pub(crate) struct BufPool {
    /// Spare buffers; only maps are kept (16 bytes a slot), a heap
    /// fallback goes back to the allocator.
    free: Vec<MmapMut>,
    size: usize,
    max_free: usize,
    /// Pool-sized buffers out of the pool now.
    lent: usize,
    /// Most lent at once since the current period began.
    peak: usize,
    /// The peaks of the last `WINDOW` periods, a ring.
    peaks: [usize; WINDOW],
    next_peak: usize,
    /// When the current trim period ends; `None` while there is nothing
    /// to trim (spares at or below `KEEP`).
    next_trim: Option<Instant>,
    /// Buffers created by `get` on an empty pool, ever.
    allocated: u64,
    /// Spare buffers given back to the system (past the cap or trimmed), ever.
    freed: u64,
}

impl BufPool {
    /// A pool of `size`-byte buffers holding at most `max_bytes` of spares.
    pub(crate) fn new(size: usize, max_bytes: usize) -> Self {
        let max_free = max_bytes / size.max(1);
        BufPool {
            free: Vec::with_capacity(max_free.min(256)),
            size,
            max_free,
            lent: 0,
            peak: 0,
            peaks: [0; WINDOW],
            next_peak: 0,
            next_trim: None,
            allocated: 0,
            freed: 0,
        }
    }

    fn get(&mut self) -> Storage {
        self.lent += 1;
        self.peak = self.peak.max(self.lent);
        match self.free.pop() {
            Some(map) => Storage::Mapped(map),
            None => {
                self.allocated += 1;
                Storage::new_pooled(self.size)
            }
        }
    }

    fn put(&mut self, buf: Storage) {
        if buf.len() != self.size {
            return; // grown onto the heap: not the pool's
        }
        self.lent = self.lent.saturating_sub(1);
        // Buffers past the cap go back to the system, as do heap fallbacks.
        match buf {
            Storage::Mapped(map) if self.free.len() < self.max_free => self.free.push(map),
            _ => self.freed += 1,
        }
    }

    /// Ends the current trim period if it is over by `now`, and frees the
    /// spares that the last `WINDOW` periods did not need. Cheap when the
    /// period is not over: one compare.
    pub(crate) fn trim(&mut self, now: Instant) {
        if self.next_trim.is_some_and(|due| now < due) {
            return;
        }
        if self.next_trim.is_some() {
            self.peaks[self.next_peak] = self.peak;
            self.next_peak = (self.next_peak + 1) % WINDOW;
            self.peak = self.lent;
            let needed = self.peaks.iter().copied().max().unwrap_or(0);
            let recent = (1..=FALLEN)
                .map(|back| self.peaks[(self.next_peak + WINDOW - back) % WINDOW])
                .max()
                .unwrap_or(0);
            let (keep, unused) = if recent * 4 <= needed {
                // Demand stayed under a quarter of the window's peak for
                // FALLEN periods: a burst is over, free what those periods
                // did not need at once.
                let keep = recent.saturating_sub(self.lent).max(KEEP);
                (keep, self.free.len().saturating_sub(keep))
            } else {
                // Busy: keep the window's peak, and let a surplus over it
                // go an eighth at a time, so that a load whose peak comes
                // and goes does not free what it takes again.
                let keep = needed.saturating_sub(self.lent).max(KEEP);
                let over = self.free.len().saturating_sub(keep);
                (keep, over.div_ceil(8))
            };
            if unused > 0 {
                self.free.truncate(self.free.len() - unused);
                self.freed += unused as u64;
                log::debug!(
                    "buffer pool: {unused} spare buffers freed, {} kept (wanted {keep})",
                    self.free.len()
                );
                if self.free.len() <= KEEP {
                    // The burst is over. Swap the kept buffers for fresh
                    // maps, whose pages are not resident until touched,
                    // and let go of the stack's own room.
                    let kept = self.free.len();
                    self.free.clear();
                    self.free.shrink_to(KEEP);
                    for _ in 0..kept {
                        match MmapOptions::new().len(self.size).map_anon() {
                            Ok(map) => self.free.push(map),
                            Err(_) => self.freed += 1,
                        }
                    }
                }
            }
        }
        self.next_trim = (self.free.len() > KEEP).then(|| now + TRIM_PERIOD);
    }

    /// When the loop should call [`trim`](Self::trim) next though nothing
    /// else happens; `None` while there is nothing to trim.
    pub(crate) fn next_trim(&self) -> Option<Instant> {
        self.next_trim
    }

    /// Bytes held in spare buffers.
    pub(crate) fn spare_bytes(&self) -> usize {
        self.free.len() * self.size
    }

    /// Pool-sized buffers lent out now.
    pub(crate) fn lent(&self) -> usize {
        self.lent
    }

    /// Buffers allocated on an empty pool and spare buffers freed, ever.
    pub(crate) fn churn(&self) -> (u64, u64) {
        (self.allocated, self.freed)
    }
}

/// The bytes received on a connection and not yet consumed: Python's
/// `data.inb`. The reactor appends what it reads; the handler consumes what it
/// has dealt with and leaves the rest (a partial line, say) for next time.
///
/// It dereferences to `[u8]`. Its length is capped by
/// [`Config::max_inb`](crate::Config::max_inb): while it is full the reactor
/// stops reading, and if a handler leaves a full buffer untouched the
/// connection is closed with
/// [`CloseReason::InputOverflow`](crate::CloseReason::InputOverflow).
///
/// ```
/// use mio_selectors::{ConnId, Context, Handler, InBuf};
///
/// struct Lines;
/// impl Handler for Lines {
///     type Data = ();
///     fn accept_wrapper(&mut self, _: &mut Context<'_, ()>, _: ConnId, _: &mio_selectors::PeerAddr) -> Option<()> {
///         Some(())
///     }
///     fn service_connection(&mut self, cx: &mut Context<'_, ()>, id: ConnId, _: &mut (), inb: &mut InBuf) {
///         // Echo whole lines only; keep a partial line for later.
///         while let Some(end) = inb.iter().position(|&b| b == b'\n') {
///             let _ = cx.send(id, &inb[..=end]);
///             inb.consume(end + 1);
///         }
///     }
/// }
/// ```
pub struct InBuf(pub(crate) ByteBuf);

impl InBuf {
    /// Drops the first `n` bytes, which the handler has dealt with.
    ///
    /// # Panics
    ///
    /// If `n` is more than the number of bytes held.
    ///
    /// ```
    /// # fn f(inb: &mut mio_selectors::InBuf) {
    /// let n = inb.len();
    /// inb.consume(n);
    /// assert!(inb.is_empty());
    /// # }
    /// ```
    pub fn consume(&mut self, n: usize) {
        self.0.consume(n)
    }

    /// Drops every byte.
    ///
    /// ```
    /// # fn f(inb: &mut mio_selectors::InBuf) {
    /// inb.clear();
    /// assert!(inb.is_empty());
    /// # }
    /// ```
    pub fn clear(&mut self) {
        self.0.clear()
    }
}

impl Deref for InBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.0.as_slice()
    }
}

impl fmt::Debug for InBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InBuf").field("len", &self.len()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_compacts_and_grows_without_losing_bytes() {
        let mut pool = BufPool::new(8, 32);
        let mut b = ByteBuf::default();
        b.extend(b"abcdef", &mut pool);
        b.consume(4);
        b.extend(b"ghijkl", &mut pool); // needs a compaction
        assert_eq!(b.as_slice(), b"efghijkl");
        assert_eq!(b.storage(), 8);
        b.extend(b"mn", &mut pool); // needs growth
        assert_eq!(b.as_slice(), b"efghijklmn");
        // The pool-sized buffer it outgrew went back to the pool.
        assert_eq!(pool.free.len(), 1);
        b.consume(10);
        b.release_if_empty(&mut pool);
        assert_eq!(b.storage(), 0);
        // A grown buffer is not pooled.
        assert_eq!(pool.free.len(), 1);
    }

    #[test]
    fn pool_reuses_storage() {
        let mut pool = BufPool::new(8, 32);
        let mut b = ByteBuf::default();
        b.extend(b"x", &mut pool);
        b.consume(1);
        b.release_if_empty(&mut pool);
        assert_eq!(pool.free.len(), 1);
        b.extend(b"y", &mut pool);
        assert!(pool.free.is_empty());
    }

    #[test]
    fn append_swaps_into_empty() {
        let mut pool = BufPool::new(8, 32);
        let (mut a, mut b) = (ByteBuf::default(), ByteBuf::default());
        b.extend(b"xyz", &mut pool);
        a.append(&mut b, &mut pool);
        assert_eq!(a.as_slice(), b"xyz");
        assert!(b.is_empty());
        b.extend(b"!", &mut pool);
        a.append(&mut b, &mut pool);
        assert_eq!(a.as_slice(), b"xyz!");
    }

    #[test]
    fn spare_up_to_stays_on_the_pooled_storage() {
        let mut pool = BufPool::new(8, 32);
        let mut b = ByteBuf::default();
        assert_eq!(
            b.spare_up_to(100, &mut pool).len(),
            8,
            "what the storage has"
        );
        b.commit(3);
        assert_eq!(b.spare_up_to(100, &mut pool).len(), 5);
        assert_eq!(
            b.spare_up_to(2, &mut pool).len(),
            2,
            "never more than asked"
        );
        b.commit(4);
        b.consume(6); // one byte left, near the end: compacted
        assert_eq!(b.spare_up_to(100, &mut pool).len(), 7);
        assert_eq!(b.storage(), 8);
        b.commit(7);
        assert_eq!(b.len(), 8);
        // Full: only now does it grow.
        assert_eq!(b.spare_up_to(4, &mut pool).len(), 4);
        assert!(b.storage() >= 12);
    }

    /// Takes `n` buffers at once and gives them all back, as a burst does.
    fn burst(pool: &mut BufPool, n: usize) {
        let bufs: Vec<_> = (0..n).map(|_| pool.get()).collect();
        for b in bufs {
            pool.put(b);
        }
    }

    #[test]
    fn pool_is_bounded_in_bytes() {
        let mut pool = BufPool::new(8, 40);
        burst(&mut pool, 10);
        assert_eq!(pool.spare_bytes(), 40);
        assert_eq!(pool.churn(), (10, 5));
    }

    #[test]
    fn pool_frees_a_bursts_surplus_once_the_window_has_passed() {
        let mut now = Instant::now();
        let mut pool = BufPool::new(8, 1024);
        burst(&mut pool, 100);
        pool.trim(now); // the pass that ended the burst starts a period
        assert_eq!(pool.spare_bytes(), 800);
        assert_eq!(pool.next_trim(), Some(now + TRIM_PERIOD));
        pool.trim(now + TRIM_PERIOD / 2); // not due: nothing happens
        assert_eq!(pool.spare_bytes(), 800);
        let mut periods = 0;
        while pool.free.len() > KEEP {
            now += TRIM_PERIOD;
            pool.trim(now);
            periods += 1;
            assert!(periods <= FALLEN + 1, "still {} spares", pool.free.len());
        }
        assert_eq!(pool.next_trim(), None, "nothing left to trim: no wake-ups");
        assert_eq!(pool.churn(), (100, 100 - KEEP as u64));
    }

    #[test]
    fn pool_keeps_what_a_fluctuating_steady_load_cycles_through() {
        let mut now = Instant::now();
        let mut pool = BufPool::new(8, 1024);
        burst(&mut pool, 50);
        pool.trim(now);
        // A steady load that needs 10 to 20 at a time, for many periods:
        // its peak of 20 comes once per window, not in every period.
        let mut settled = 0;
        for round in 0..60 {
            if round == 2 * WINDOW {
                settled = pool.churn().0;
            }
            let need = if round % WINDOW == 0 {
                20
            } else {
                10 + round % 7
            };
            burst(&mut pool, need);
            now += TRIM_PERIOD;
            pool.trim(now);
        }
        assert_eq!(pool.free.len(), 20, "the surplus over 20 went back");
        let (allocated, _) = pool.churn();
        assert_eq!(allocated, settled, "no allocation once the load was steady");
        // The load stops: FALLEN quiet periods later only KEEP remain.
        for _ in 0..=FALLEN {
            now += TRIM_PERIOD;
            pool.trim(now);
        }
        assert_eq!(pool.free.len(), KEEP);
    }

    #[test]
    fn pool_with_no_room_allocates_every_time() {
        let mut pool = BufPool::new(8, 0);
        burst(&mut pool, 3);
        assert_eq!(pool.spare_bytes(), 0);
        assert_eq!(pool.churn(), (3, 3));
        pool.trim(Instant::now());
        assert_eq!(pool.next_trim(), None);
    }
}
