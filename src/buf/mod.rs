//! Byte buffers for connection input and output, and the pool that lends
//! them out so that an idle connection owns no buffer at all.

use std::fmt;
use std::ops::Deref;

mod outbuf;

pub(crate) use outbuf::OutBuf;

/// A FIFO of bytes over a `Vec` that stays fully initialised (`len ==
/// capacity`), so reading into it needs neither `unsafe` nor a memset.
/// Consumed bytes are skipped by `start`; the live bytes are moved to the
/// front only when the tail runs out of room.
#[derive(Default)]
pub(crate) struct ByteBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl ByteBuf {
    pub(crate) fn len(&self) -> usize {
        self.end - self.start
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.start == self.end
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    pub(crate) fn consume(&mut self, n: usize) {
        assert!(n <= self.len(), "consume past the end of the buffer");
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    pub(crate) fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    /// Room for `want` more bytes at the tail, storage from `pool` if this
    /// buffer has none.
    pub(crate) fn spare(&mut self, want: usize, pool: &mut BufPool) -> &mut [u8] {
        if self.buf.is_empty() {
            self.buf = pool.get();
        }
        if self.buf.len() - self.end < want {
            // Move live bytes to the front before growing.
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.buf.len() - self.end < want {
                let need = self.end + want;
                self.buf.resize(need.max(self.buf.len() * 2), 0);
            }
        }
        &mut self.buf[self.end..self.end + want]
    }

    pub(crate) fn commit(&mut self, n: usize) {
        assert!(self.end + n <= self.buf.len(), "commit past the spare room");
        self.end += n;
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

/// A stack of equally sized spare buffers. `get` and `put` never allocate
/// in steady state, which keeps the echo hot path allocation-free.
pub(crate) struct BufPool {
    free: Vec<Vec<u8>>,
    size: usize,
    max_free: usize,
}

impl BufPool {
    pub(crate) fn new(size: usize, max_free: usize) -> Self {
        BufPool {
            free: Vec::with_capacity(max_free.min(1024)),
            size,
            max_free,
        }
    }

    fn get(&mut self) -> Vec<u8> {
        self.free.pop().unwrap_or_else(|| vec![0; self.size])
    }

    fn put(&mut self, buf: Vec<u8>) {
        // Grown buffers go back to the allocator, as do buffers past the cap.
        if buf.len() == self.size && self.free.len() < self.max_free {
            self.free.push(buf);
        }
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
        let mut pool = BufPool::new(8, 4);
        let mut b = ByteBuf::default();
        b.extend(b"abcdef", &mut pool);
        b.consume(4);
        b.extend(b"ghijkl", &mut pool); // needs a compaction
        assert_eq!(b.as_slice(), b"efghijkl");
        assert_eq!(b.storage(), 8);
        b.extend(b"mn", &mut pool); // needs growth
        assert_eq!(b.as_slice(), b"efghijklmn");
        b.consume(10);
        b.release_if_empty(&mut pool);
        assert_eq!(b.storage(), 0);
        // A grown buffer is not pooled.
        assert!(pool.free.is_empty());
    }

    #[test]
    fn pool_reuses_storage() {
        let mut pool = BufPool::new(8, 4);
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
        let mut pool = BufPool::new(8, 4);
        let (mut a, mut b) = (ByteBuf::default(), ByteBuf::default());
        b.extend(b"xyz", &mut pool);
        a.append(&mut b, &mut pool);
        assert_eq!(a.as_slice(), b"xyz");
        assert!(b.is_empty());
        b.extend(b"!", &mut pool);
        a.append(&mut b, &mut pool);
        assert_eq!(a.as_slice(), b"xyz!");
    }
}
