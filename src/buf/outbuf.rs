//! `OutBuf`: a connection's pending output (Python's `data.outb`), either
//! bytes of its own or slices of a broadcast shared by many connections.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::sync::Arc;

use super::{BufPool, ByteBuf};

/// Most slices handed to one `writev`.
const MAX_IOV: usize = 64;

/// Broadcasts shorter than this are copied rather than shared, so that a
/// segment's bookkeeping (a queue slot, about 40 bytes) stays small next to
/// its bytes: the memory a connection holds stays within about 1.2 times its
/// pending output, which is what `Config::max_outb` counts.
const SHARE_MIN: usize = 256;

enum Seg {
    /// Bytes of this connection's own that follow a broadcast: a plain,
    /// right-sized `Vec` (not a pooled buffer, which would cost a whole
    /// `read_chunk` for a short notice), and how much of it is written.
    Owned(Vec<u8>, usize),
    /// A broadcast buffer shared with other connections, and how much of it
    /// this connection has written.
    Shared(Arc<[u8]>, usize),
}

impl Seg {
    fn bytes(&self) -> &[u8] {
        match self {
            Seg::Owned(data, pos) => &data[*pos..],
            Seg::Shared(data, pos) => &data[*pos..],
        }
    }

    fn advance(&mut self, n: usize) {
        match self {
            Seg::Owned(_, pos) | Seg::Shared(_, pos) => *pos += n,
        }
    }
}

/// Pending output in order: `front` first, then `rest`.
///
/// A point-to-point sender (the echo) only ever touches `front`, a pooled
/// buffer, so it allocates nothing per message. A broadcast appends one
/// reference to a shared buffer per recipient instead of a copy; `rest`
/// is allocated only while it has something (and is a pointer when it has
/// not), so an idle connection owns nothing and stays small.
/// All of it goes out in one `write` or `writev` per flush.
#[derive(Default)]
pub(crate) struct OutBuf {
    front: ByteBuf,
    // Boxed on purpose: one pointer in every connection instead of a
    // 32-byte VecDeque header, for a queue most connections never use.
    #[allow(clippy::box_collection)]
    rest: Option<Box<VecDeque<Seg>>>,
    len: usize,
}

impl OutBuf {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn extend(&mut self, data: &[u8], pool: &mut BufPool) {
        self.len += data.len();
        match &mut self.rest {
            None => self.front.extend(data, pool),
            Some(rest) => match rest.back_mut() {
                Some(Seg::Owned(bytes, _)) => bytes.extend_from_slice(data),
                _ => rest.push_back(Seg::Owned(data.to_vec(), 0)),
            },
        }
    }

    /// Moves `other`'s bytes in: a swap of storage when nothing is pending,
    /// a copy otherwise.
    pub(crate) fn append(&mut self, other: &mut ByteBuf, pool: &mut BufPool) {
        if self.rest.is_none() {
            self.len += other.len();
            self.front.append(other, pool);
        } else {
            self.extend(other.as_slice(), pool);
            other.clear();
        }
    }

    pub(crate) fn push_shared(&mut self, data: Arc<[u8]>, pool: &mut BufPool) {
        if data.len() < SHARE_MIN {
            self.extend(&data, pool); // cheaper to copy than to track
        } else {
            self.len += data.len();
            self.rest
                .get_or_insert_with(Default::default)
                .push_back(Seg::Shared(data, 0));
        }
    }

    /// One `write` (or `writev` when shared segments are queued): how many
    /// bytes were written, and how many were offered.
    pub(crate) fn write_to(&self, mut w: impl Write) -> io::Result<(usize, usize)> {
        let Some(rest) = &self.rest else {
            let bytes = self.front.as_slice();
            return w.write(bytes).map(|n| (n, bytes.len()));
        };
        let mut iov = [IoSlice::new(&[]); MAX_IOV];
        let (mut n, mut offered) = (0, 0);
        let front = (!self.front.is_empty()).then(|| self.front.as_slice());
        for bytes in front.into_iter().chain(rest.iter().map(Seg::bytes)) {
            if n == MAX_IOV {
                break;
            }
            iov[n] = IoSlice::new(bytes);
            offered += bytes.len();
            n += 1;
        }
        w.write_vectored(&iov[..n])
            .map(|written| (written, offered))
    }

    /// Drops the first `n` bytes, which were written.
    pub(crate) fn consume(&mut self, mut n: usize, pool: &mut BufPool) {
        assert!(n <= self.len, "consume past the end of the output");
        self.len -= n;
        let k = n.min(self.front.len());
        self.front.consume(k);
        n -= k;
        while n > 0 {
            let rest = self.rest.as_mut().expect("len counts every segment");
            let seg = rest.front_mut().expect("len counts every segment");
            let left = seg.bytes().len();
            if n < left {
                seg.advance(n);
                break;
            }
            n -= left;
            rest.pop_front();
        }
        self.release_if_empty(pool);
    }

    pub(crate) fn clear(&mut self, pool: &mut BufPool) {
        self.front.clear();
        self.rest = None;
        self.len = 0;
        self.release_if_empty(pool);
    }

    /// Returns storage that holds nothing: the idle connection owns none.
    pub(crate) fn release_if_empty(&mut self, pool: &mut BufPool) {
        self.front.release_if_empty(pool);
        if self.rest.as_ref().is_some_and(|rest| rest.is_empty()) {
            self.rest = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(out: &mut OutBuf, pool: &mut BufPool, step: usize) -> Vec<u8> {
        let mut got = Vec::new();
        while !out.is_empty() {
            let mut w = Vec::new();
            let n = out.write_to(&mut w).unwrap().0.min(step);
            got.extend_from_slice(&w[..n]);
            out.consume(n, pool);
        }
        got
    }

    #[test]
    fn keeps_order_across_owned_and_shared_segments() {
        let mut pool = BufPool::new(8, 32);
        for step in [1, 3, 7, 100] {
            let mut out = OutBuf::default();
            out.extend(b"ab", &mut pool);
            out.push_shared(Arc::from(&b"CDE"[..]), &mut pool);
            out.extend(b"fg", &mut pool);
            out.push_shared(Arc::from(&b"HI"[..]), &mut pool);
            out.push_shared(Arc::from(&b""[..]), &mut pool);
            out.extend(b"j", &mut pool);
            assert_eq!(out.len(), 10);
            assert_eq!(
                drain(&mut out, &mut pool, step),
                b"abCDEfgHIj",
                "step {step}"
            );
            assert!(out.rest.is_none(), "storage released when empty");
        }
    }

    #[test]
    fn big_broadcasts_are_shared_small_ones_copied_and_merged() {
        let mut pool = BufPool::new(8, 32);
        let mut out = OutBuf::default();
        let big: Arc<[u8]> = Arc::from(vec![b'x'; SHARE_MIN]);
        out.push_shared(big.clone(), &mut pool);
        for _ in 0..100 {
            out.push_shared(Arc::from(&b"tiny"[..]), &mut pool); // one owned segment
        }
        out.push_shared(big.clone(), &mut pool);
        assert_eq!(out.rest.as_ref().map(|r| r.len()), Some(3));
        assert_eq!(Arc::strong_count(&big), 3, "shared, not copied");
        assert_eq!(out.len(), 2 * SHARE_MIN + 400);
        let got = drain(&mut out, &mut pool, 1000);
        assert_eq!(&got[SHARE_MIN..SHARE_MIN + 4], b"tiny");
    }

    #[test]
    fn clear_drops_everything() {
        let mut pool = BufPool::new(8, 32);
        let mut out = OutBuf::default();
        let shared: Arc<[u8]> = Arc::from(vec![b'C'; SHARE_MIN]);
        out.extend(b"ab", &mut pool);
        out.push_shared(shared.clone(), &mut pool);
        out.extend(b"fg", &mut pool);
        assert_eq!(Arc::strong_count(&shared), 2);
        out.clear(&mut pool);
        assert_eq!(
            Arc::strong_count(&shared),
            1,
            "the shared segment is let go"
        );
        assert!(out.rest.is_none(), "the segment list is freed");
        assert_eq!(
            out.front.storage(),
            0,
            "the front buffer went back to the pool"
        );
        // What is written next is all that goes out.
        out.extend(b"new", &mut pool);
        assert_eq!(drain(&mut out, &mut pool, 1000), b"new");
    }
}
