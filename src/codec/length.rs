//! [`LengthPrefixedCodec`]: frames of any bytes behind a 4-byte length header.

use super::{Decoder, EncodeError, Encoder};

/// A length header announcing a frame larger than the
/// [`LengthPrefixedCodec`]'s maximum. Fatal: the stream has no point to
/// resynchronise at, so the connection should be closed.
///
/// ```
/// use mio_selectors::codec::FrameTooLarge;
/// let err = FrameTooLarge { len: 70000, max: 65536 };
/// assert_eq!(err.to_string(), "frame of 70000 bytes announced, the maximum is 65536");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("frame of {len} bytes announced, the maximum is {max}")]
pub struct FrameTooLarge {
    /// The length the header announced.
    pub len: usize,
    /// The codec's maximum frame length.
    pub max: usize,
}

/// The length of [`LengthPrefixedCodec`]'s header.
const HEADER: usize = 4;

/// Frames of any bytes, each behind a 4-byte big-endian length header, of at
/// most a maximum size that must be chosen at construction.
///
/// A header announcing more than the maximum gives [`FrameTooLarge`] as
/// soon as the header has arrived, so the caller never holds more than the
/// header and `max_len` bytes of payload. After that error the stream is
/// unusable (there is no point to resynchronise at): the decoder has
/// failed, every later call returns `(0, None)`, and the connection should
/// be closed. A handler that does not close it leaves its input
/// unconsumed, and the reactor closes it once `inb` is full.
///
/// ```
/// use mio_selectors::codec::{Decoder, Encoder, FrameTooLarge, LengthPrefixedCodec};
///
/// let codec = LengthPrefixedCodec::new(8);
/// let mut wire = Vec::new();
/// codec.encode(b"12345678", &mut wire)?;
/// assert_eq!(wire[..4], [0, 0, 0, 8]);
///
/// let mut dec = codec.clone();
/// assert_eq!(dec.decode(&wire), (12, Some(Ok(&b"12345678"[..]))));
/// assert_eq!(dec.decode(b"\0\0\0\x09"), (4, Some(Err(FrameTooLarge { len: 9, max: 8 }))));
/// assert!(dec.has_failed());
/// # Ok::<(), mio_selectors::codec::EncodeError>(())
/// ```
#[derive(Debug, Clone)]
pub struct LengthPrefixedCodec {
    max_len: usize,
    failed: bool,
}

impl LengthPrefixedCodec {
    /// A codec for frames of at most `max_len` bytes (header not counted).
    /// The header is 32 bits, so a `max_len` above `u32::MAX` counts as
    /// `u32::MAX`.
    ///
    /// ```
    /// let codec = mio_selectors::codec::LengthPrefixedCodec::new(64 * 1024);
    /// assert_eq!(codec.max_len(), 65536);
    /// ```
    pub fn new(max_len: usize) -> Self {
        LengthPrefixedCodec {
            max_len: max_len.min(u32::MAX as usize),
            failed: false,
        }
    }

    /// The longest frame it accepts, header not counted.
    ///
    /// ```
    /// assert_eq!(mio_selectors::codec::LengthPrefixedCodec::new(100).max_len(), 100);
    /// ```
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// The input a connection must be able to hold to decode the largest
    /// frame: `max_len + 4`. Until it fails, after decoding all it can, the
    /// codec leaves fewer bytes than this.
    ///
    /// ```
    /// assert_eq!(mio_selectors::codec::LengthPrefixedCodec::new(100).max_buffered(), 104);
    /// ```
    pub fn max_buffered(&self) -> usize {
        self.max_len.saturating_add(HEADER)
    }

    /// Whether it has met a [`FrameTooLarge`] header and decodes nothing
    /// more.
    ///
    /// ```
    /// use mio_selectors::codec::{Decoder, LengthPrefixedCodec};
    ///
    /// let mut dec = LengthPrefixedCodec::new(1);
    /// assert!(!dec.has_failed());
    /// dec.decode(&[0, 0, 0, 2]);
    /// assert!(dec.has_failed());
    /// assert_eq!(dec.decode(&[0, 0, 0, 0]), (0, None));
    /// ```
    pub fn has_failed(&self) -> bool {
        self.failed
    }
}

impl Decoder for LengthPrefixedCodec {
    type Frame<'a> = &'a [u8];
    type Error = FrameTooLarge;

    /// The next frame's payload.
    ///
    /// # Errors
    ///
    /// [`FrameTooLarge`] when a header announces more than
    /// [`max_len`](LengthPrefixedCodec::max_len) bytes. The header is
    /// consumed and the payload is not waited for. The error is fatal: every
    /// later call returns `(0, None)`; close the connection.
    ///
    /// ```
    /// use mio_selectors::codec::{Decoder, FrameTooLarge, LengthPrefixedCodec};
    ///
    /// let mut dec = LengthPrefixedCodec::new(1000);
    /// let (used, item) = dec.decode(&[0xff, 0xff, 0xff, 0xff, b'x']);
    /// assert_eq!(used, 4);
    /// assert_eq!(item, Some(Err(FrameTooLarge { len: 0xffff_ffff, max: 1000 })));
    /// ```
    fn decode<'a>(&mut self, input: &'a [u8]) -> (usize, Option<Result<&'a [u8], FrameTooLarge>>) {
        if self.failed {
            return (0, None);
        }
        let Some((header, rest)) = input.split_first_chunk::<HEADER>() else {
            return (0, None);
        };
        let len = usize::try_from(u32::from_be_bytes(*header)).unwrap_or(usize::MAX);
        if len > self.max_len {
            self.failed = true;
            let max = self.max_len;
            return (HEADER, Some(Err(FrameTooLarge { len, max })));
        }
        match rest.get(..len) {
            Some(payload) => (HEADER + len, Some(Ok(payload))),
            None => (0, None),
        }
    }
}

impl Encoder for LengthPrefixedCodec {
    /// Appends the 4-byte big-endian length of `frame`, then `frame`.
    ///
    /// # Errors
    ///
    /// [`EncodeError::TooLong`] if `frame` is longer than
    /// [`max_len`](LengthPrefixedCodec::max_len).
    ///
    /// ```
    /// use mio_selectors::codec::{EncodeError, Encoder, LengthPrefixedCodec};
    ///
    /// let codec = LengthPrefixedCodec::new(2);
    /// let mut out = Vec::new();
    /// codec.encode(b"", &mut out)?;
    /// codec.encode(b"hi", &mut out)?;
    /// assert_eq!(out, b"\0\0\0\0\0\0\0\x02hi");
    /// assert_eq!(codec.encode(b"hey", &mut out), Err(EncodeError::TooLong { len: 3, max: 2 }));
    /// # Ok::<(), EncodeError>(())
    /// ```
    fn encode(&self, frame: &[u8], out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let max = self.max_len;
        let len = match u32::try_from(frame.len()) {
            Ok(len) if frame.len() <= max => len,
            _ => {
                return Err(EncodeError::TooLong {
                    len: frame.len(),
                    max,
                })
            }
        };
        out.reserve(HEADER + frame.len());
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(frame);
        Ok(())
    }
}
