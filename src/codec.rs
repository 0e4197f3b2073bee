//! Framing codecs: [`LineCodec`] and [`LengthPrefixedCodec`], the
//! [`Decoder`] and [`Encoder`] traits they implement, and
//! [`for_each_frame`], which drives a decoder over a connection's
//! [`InBuf`].
//!
//! # Which codec
//!
//! - [`LineCodec`] for text protocols that people type or read: chat,
//!   `nc`/telnet sessions, SMTP-like commands, JSON Lines. Frames are LF or
//!   CRLF terminated and cannot contain `\n`. An over-long line is reported
//!   once and skipped, and the connection carries on with the next line, so
//!   answering with an error message and continuing is reasonable.
//! - [`LengthPrefixedCodec`] for binary payloads between programs (any
//!   bytes, including `\n`: protobuf, bincode, images). Each frame costs a
//!   4-byte big-endian length header. A header announcing more than the
//!   maximum is fatal: there is no way to find the next frame, so close the
//!   connection.
//!
//! # How they fit the reactor
//!
//! The codecs never buffer and never copy: the connection's `inb` is the
//! buffer. A decoder looks at the front of `inb`, says how many bytes to
//! consume, and hands back a frame that borrows from `inb`. Every codec has
//! a maximum frame size fixed at construction, and says through
//! `max_buffered()` how many bytes a connection must be able to hold to
//! decode its largest frame; keep [`Config::max_inb`](crate::Config::max_inb)
//! at least that large, or a frame of the maximum size can never arrive
//! whole and the connection is closed with
//! [`CloseReason::InputOverflow`](crate::CloseReason::InputOverflow).
//!
//! A decoder has per-connection state (a line being skipped, a failed
//! stream), so keep one in each connection's data. Encoders are stateless
//! and can live in the handler.
//!
//! ```
//! use mio_selectors::{for_each_frame_in, Encoder, LengthPrefixedCodec};
//! use std::ops::ControlFlow;
//!
//! let codec = LengthPrefixedCodec::new(1024);
//! let mut wire = Vec::new();
//! codec.encode(b"hello\nworld", &mut wire)?;
//! codec.encode(b"", &mut wire)?;
//!
//! let mut dec = codec.clone();
//! let mut frames = Vec::new();
//! let used = for_each_frame_in(&mut dec, &wire, |frame| {
//!     frames.push(frame.unwrap());
//!     ControlFlow::Continue(())
//! });
//! assert_eq!(used, wire.len());
//! assert_eq!(frames, [&b"hello\nworld"[..], b""]);
//! # Ok::<(), mio_selectors::EncodeError>(())
//! ```

use std::ops::ControlFlow;

use crate::{InBuf, Line, LineFramer};

/// Splits a byte stream into frames, without buffering or copying.
///
/// [`decode`](Self::decode) looks at the front of the bytes received and not
/// yet consumed and returns `(used, item)`:
///
/// - `(0, None)`: no complete frame yet; call again when more bytes arrive.
/// - `(used, None)` with `used > 0`: `used` bytes were skipped (the rest of
///   an over-long line, say); consume them and call again.
/// - `(used, Some(Ok(frame)))`: a frame, borrowed from `input`, which
///   occupied the first `used` bytes.
/// - `(used, Some(Err(e)))`: the stream is malformed; the error type says
///   whether decoding can go on.
///
/// The caller must drop the first `used` bytes and pass what is left, plus
/// whatever arrived since, to the next call. [`for_each_frame`] and
/// [`for_each_frame_in`] do exactly that.
///
/// An implementation must be bounded: it must never need more than a fixed
/// number of bytes to make progress, so that a peer cannot make a connection
/// hold unbounded input. It should consume at least one byte whenever it
/// returns `Some`; the helpers stop at the first call that consumes nothing.
///
/// ```
/// use mio_selectors::{Decoder, LineCodec};
///
/// let mut dec = LineCodec::new(80);
/// assert_eq!(dec.decode(b"hi\r\nthere"), (4, Some(Ok(&b"hi"[..]))));
/// assert_eq!(dec.decode(b"there"), (0, None));
/// ```
pub trait Decoder {
    /// A decoded frame, borrowing from the input it was found in.
    type Frame<'a>;
    /// What a malformed stream gives.
    type Error;

    /// Looks at the front of `input` and returns how many bytes to consume
    /// and the frame or error found there, if any (see the trait docs).
    ///
    /// # Errors
    ///
    /// `Some(Err(_))` when the front of `input` breaks the framing rules; see
    /// each implementation for what its error means and whether the stream
    /// is still usable after it.
    ///
    /// ```
    /// use mio_selectors::{Decoder, LengthPrefixedCodec};
    ///
    /// let mut dec = LengthPrefixedCodec::new(16);
    /// assert_eq!(dec.decode(b"\0\0\0\x02ab"), (6, Some(Ok(&b"ab"[..]))));
    /// assert_eq!(dec.decode(b"\0\0\0\x02a"), (0, None)); // waits for the rest
    /// ```
    #[allow(clippy::type_complexity)]
    fn decode<'a>(
        &mut self,
        input: &'a [u8],
    ) -> (usize, Option<Result<Self::Frame<'a>, Self::Error>>);
}

/// Turns a frame into bytes for the wire.
///
/// Encoding appends to `out`, so several frames can be gathered into one
/// [`Context::send`](crate::Context::send). On error `out` is left as it
/// was.
///
/// ```
/// use mio_selectors::{Encoder, LineCodec};
///
/// let codec = LineCodec::new(80);
/// let mut out = Vec::new();
/// codec.encode(b"one", &mut out)?;
/// codec.encode(b"two", &mut out)?;
/// assert_eq!(out, b"one\ntwo\n");
/// # Ok::<(), mio_selectors::EncodeError>(())
/// ```
pub trait Encoder {
    /// Appends `frame`, framed, to `out`.
    ///
    /// # Errors
    ///
    /// [`EncodeError`] if `frame` cannot be framed so that the peer's
    /// decoder gets it back unchanged (too long, or containing the
    /// delimiter); `out` is then unchanged.
    ///
    /// ```
    /// use mio_selectors::{EncodeError, Encoder, LineCodec};
    ///
    /// let mut out = Vec::new();
    /// let err = LineCodec::new(80).encode(b"a\nb", &mut out).unwrap_err();
    /// assert_eq!(err, EncodeError::Newline { at: 1 });
    /// assert!(out.is_empty());
    /// ```
    fn encode(&self, frame: &[u8], out: &mut Vec<u8>) -> Result<(), EncodeError>;
}

/// Why an [`Encoder`] refused a frame.
///
/// ```
/// use mio_selectors::EncodeError;
///
/// let err = EncodeError::TooLong { len: 9, max: 8 };
/// assert_eq!(err.to_string(), "frame of 9 bytes exceeds the maximum of 8");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The frame is longer than the codec's maximum.
    #[error("frame of {len} bytes exceeds the maximum of {max}")]
    TooLong {
        /// The frame's length.
        len: usize,
        /// The codec's maximum.
        max: usize,
    },
    /// A line contains `\n`, which would end it early.
    #[error("line contains a newline at byte {at}")]
    Newline {
        /// Where the first `\n` is.
        at: usize,
    },
    /// A line ends with `\r`, which the decoder would strip as part of a
    /// CRLF terminator.
    #[error("line ends with a carriage return")]
    TrailingCr,
}

/// A line longer than the [`LineCodec`]'s maximum. Not fatal: the rest of
/// the line is skipped and decoding carries on with the next one.
///
/// ```
/// use mio_selectors::LineTooLong;
/// assert_eq!(LineTooLong { max: 4 }.to_string(), "line longer than 4 bytes");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("line longer than {max} bytes")]
pub struct LineTooLong {
    /// The codec's maximum line length.
    pub max: usize,
}

/// A length header announcing a frame larger than the
/// [`LengthPrefixedCodec`]'s maximum. Fatal: the stream has no point to
/// resynchronise at, so the connection should be closed.
///
/// ```
/// use mio_selectors::FrameTooLarge;
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

/// LF or CRLF terminated lines of at most `max_len` bytes (terminator not
/// counted), on top of [`LineFramer`].
///
/// Decoding gives each line without its terminator. An over-long line gives
/// [`LineTooLong`] once, as soon as it is known to be too long (before its
/// newline arrives), and is then skipped up to its `\n`; the next line
/// decodes normally. The caller never holds more than `max_len + 1` bytes of
/// a partial line. Encoding appends `\n`.
///
/// ```
/// use mio_selectors::{Decoder, LineCodec, LineTooLong};
///
/// let mut dec = LineCodec::new(4);
/// let mut input: &[u8] = b"ok\r\nfar too long\nyes\n";
/// let mut got = Vec::new();
/// loop {
///     let (used, item) = dec.decode(input);
///     if let Some(item) = item { got.push(item) }
///     input = &input[used..];
///     if used == 0 { break }
/// }
/// assert_eq!(got, [Ok(&b"ok"[..]), Err(LineTooLong { max: 4 }), Ok(b"yes")]);
/// ```
#[derive(Debug, Clone)]
pub struct LineCodec {
    framer: LineFramer,
}

impl LineCodec {
    /// A codec for lines of at most `max_len` bytes.
    ///
    /// ```
    /// assert_eq!(mio_selectors::LineCodec::new(4096).max_len(), 4096);
    /// ```
    pub fn new(max_len: usize) -> Self {
        LineCodec {
            framer: LineFramer::new(max_len),
        }
    }

    /// The longest line it accepts, terminator not counted.
    ///
    /// ```
    /// assert_eq!(mio_selectors::LineCodec::new(8).max_len(), 8);
    /// ```
    pub fn max_len(&self) -> usize {
        self.framer.max_len()
    }

    /// The input a connection must be able to hold to decode the longest
    /// line: `max_len + 2`, for a line of `max_len` bytes and `\r\n`. After
    /// decoding all it can, the codec leaves fewer bytes than this.
    ///
    /// ```
    /// assert_eq!(mio_selectors::LineCodec::new(8).max_buffered(), 10);
    /// ```
    pub fn max_buffered(&self) -> usize {
        self.max_len().saturating_add(2)
    }

    /// Whether it is skipping the rest of an over-long line.
    ///
    /// ```
    /// use mio_selectors::{Decoder, LineCodec};
    ///
    /// let mut dec = LineCodec::new(2);
    /// dec.decode(b"abcdef");
    /// assert!(dec.is_discarding());
    /// dec.decode(b"\n");
    /// assert!(!dec.is_discarding());
    /// ```
    pub fn is_discarding(&self) -> bool {
        self.framer.is_discarding()
    }
}

impl Decoder for LineCodec {
    type Frame<'a> = &'a [u8];
    type Error = LineTooLong;

    /// The next line, without its `\n` or `\r\n`.
    ///
    /// # Errors
    ///
    /// [`LineTooLong`] once per over-long line, as soon as it is known to be
    /// too long; the line is then skipped and decoding goes on.
    ///
    /// ```
    /// use mio_selectors::{Decoder, LineCodec, LineTooLong};
    ///
    /// let mut dec = LineCodec::new(3);
    /// assert_eq!(dec.decode(b"abcde"), (5, Some(Err(LineTooLong { max: 3 }))));
    /// assert_eq!(dec.decode(b"f\nabc\n"), (2, None)); // the rest is skipped
    /// assert_eq!(dec.decode(b"abc\n"), (4, Some(Ok(&b"abc"[..]))));
    /// ```
    fn decode<'a>(&mut self, input: &'a [u8]) -> (usize, Option<Result<&'a [u8], LineTooLong>>) {
        let (used, line) = self.framer.decode(input);
        let item = line.map(|line| match line {
            Line::Text(text) => Ok(text),
            Line::TooLong => Err(LineTooLong {
                max: self.framer.max_len(),
            }),
        });
        (used, item)
    }
}

impl Encoder for LineCodec {
    /// Appends `frame` and `\n`.
    ///
    /// # Errors
    ///
    /// - [`EncodeError::TooLong`] if `frame` is longer than
    ///   [`max_len`](LineCodec::max_len);
    /// - [`EncodeError::Newline`] if it contains `\n`;
    /// - [`EncodeError::TrailingCr`] if it ends with `\r` (the peer would
    ///   read it as part of a CRLF terminator).
    ///
    /// ```
    /// use mio_selectors::{EncodeError, Encoder, LineCodec};
    ///
    /// let codec = LineCodec::new(3);
    /// let mut out = Vec::new();
    /// codec.encode(b"abc", &mut out)?;
    /// assert_eq!(out, b"abc\n");
    /// assert_eq!(codec.encode(b"abcd", &mut out), Err(EncodeError::TooLong { len: 4, max: 3 }));
    /// assert_eq!(codec.encode(b"a\r", &mut out), Err(EncodeError::TrailingCr));
    /// # Ok::<(), EncodeError>(())
    /// ```
    fn encode(&self, frame: &[u8], out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let max = self.max_len();
        if frame.len() > max {
            return Err(EncodeError::TooLong {
                len: frame.len(),
                max,
            });
        }
        if let Some(at) = frame.iter().position(|&b| b == b'\n') {
            return Err(EncodeError::Newline { at });
        }
        if frame.last() == Some(&b'\r') {
            return Err(EncodeError::TrailingCr);
        }
        out.reserve(frame.len() + 1);
        out.extend_from_slice(frame);
        out.push(b'\n');
        Ok(())
    }
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
/// use mio_selectors::{Decoder, Encoder, FrameTooLarge, LengthPrefixedCodec};
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
/// # Ok::<(), mio_selectors::EncodeError>(())
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
    /// let codec = mio_selectors::LengthPrefixedCodec::new(64 * 1024);
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
    /// assert_eq!(mio_selectors::LengthPrefixedCodec::new(100).max_len(), 100);
    /// ```
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// The input a connection must be able to hold to decode the largest
    /// frame: `max_len + 4`. Until it fails, after decoding all it can, the
    /// codec leaves fewer bytes than this.
    ///
    /// ```
    /// assert_eq!(mio_selectors::LengthPrefixedCodec::new(100).max_buffered(), 104);
    /// ```
    pub fn max_buffered(&self) -> usize {
        self.max_len.saturating_add(HEADER)
    }

    /// Whether it has met a [`FrameTooLarge`] header and decodes nothing
    /// more.
    ///
    /// ```
    /// use mio_selectors::{Decoder, LengthPrefixedCodec};
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
    /// use mio_selectors::{Decoder, FrameTooLarge, LengthPrefixedCodec};
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
    /// use mio_selectors::{EncodeError, Encoder, LengthPrefixedCodec};
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

/// Decodes every frame at the front of `input`, calling `f` with each, and
/// returns how many bytes to consume.
///
/// It stops when the decoder needs more input, or after the frame for which
/// `f` returns [`ControlFlow::Break`]; that frame is counted as consumed.
/// This is [`for_each_frame`] over any byte slice; frames borrow from
/// `input` and may outlive the call.
///
/// ```
/// use mio_selectors::{for_each_frame_in, LineCodec, LineTooLong};
/// use std::ops::ControlFlow;
///
/// let mut dec = LineCodec::new(3);
/// let mut lines = Vec::new();
/// let used = for_each_frame_in(&mut dec, b"a\nbcdef\nc\nd\nrest", |line| {
///     lines.push(line);
///     if line == Ok(&b"c"[..]) { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
/// });
/// assert_eq!(lines, [Ok(&b"a"[..]), Err(LineTooLong { max: 3 }), Ok(b"c")]);
/// assert_eq!(used, 10); // "d\n" and "rest" are left
/// ```
pub fn for_each_frame_in<'a, D: Decoder>(
    dec: &mut D,
    input: &'a [u8],
    mut f: impl FnMut(Result<D::Frame<'a>, D::Error>) -> ControlFlow<()>,
) -> usize {
    let mut used = 0;
    loop {
        let (n, item) = dec.decode(&input[used..]);
        used += n;
        if let Some(item) = item {
            if f(item).is_break() {
                return used;
            }
        }
        if n == 0 {
            return used;
        }
    }
}

/// Decodes every frame at the front of a connection's `inb`, calling `f`
/// with each, and consumes exactly the bytes decoded. For use in
/// [`Handler::service_connection`](crate::Handler::service_connection).
///
/// It stops when the decoder needs more input (a partial frame stays in
/// `inb` for next time), or after the frame for which `f` returns
/// [`ControlFlow::Break`]; that frame is consumed, the rest is left.
///
/// The decoder is usually kept in the connection's data; take it out for
/// the call, since `f` will want the [`Context`](crate::Context):
///
/// ```
/// use mio_selectors::{for_each_frame, ConnId, Context, Encoder, InBuf, LineCodec};
/// use std::ops::ControlFlow;
///
/// // The body of `Handler::service_connection`, with `LineCodec` as the
/// // connection's data: answer each line with its length.
/// fn service_connection(cx: &mut Context<'_, LineCodec>, id: ConnId, inb: &mut InBuf) {
///     let Some(mut dec) = cx.data(id).cloned() else { return };
///     let enc = LineCodec::new(dec.max_len());
///     for_each_frame(&mut dec, inb, |line| {
///         let reply = match line {
///             Ok(line) => format!("{} bytes", line.len()),
///             Err(e) => format!("error: {e}"),
///         };
///         let mut out = Vec::new();
///         if enc.encode(reply.as_bytes(), &mut out).is_err() || cx.send(id, &out).is_err() {
///             return ControlFlow::Break(()); // closed as too slow, say
///         }
///         ControlFlow::Continue(())
///     });
///     if let Some(data) = cx.data_mut(id) {
///         *data = dec;
///     }
/// }
/// ```
///
/// With a [`LengthPrefixedCodec`], close the connection on the error:
///
/// ```
/// use mio_selectors::{for_each_frame, ConnId, Context, InBuf, LengthPrefixedCodec};
/// use std::ops::ControlFlow;
///
/// fn service_connection(cx: &mut Context<'_, LengthPrefixedCodec>, id: ConnId, inb: &mut InBuf) {
///     let Some(mut dec) = cx.data(id).cloned() else { return };
///     for_each_frame(&mut dec, inb, |frame| match frame {
///         Ok(payload) => {
///             let _ = payload; // handle it
///             ControlFlow::Continue(())
///         }
///         Err(_too_large) => {
///             cx.abort(id); // no way to find the next frame
///             ControlFlow::Break(())
///         }
///     });
///     if let Some(data) = cx.data_mut(id) {
///         *data = dec;
///     }
/// }
/// ```
pub fn for_each_frame<D: Decoder>(
    dec: &mut D,
    inb: &mut InBuf,
    f: impl FnMut(Result<D::Frame<'_>, D::Error>) -> ControlFlow<()>,
) {
    let used = for_each_frame_in(dec, inb, f);
    inb.consume(used);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::{BufPool, ByteBuf};

    fn inbuf(bytes: &[u8], pool: &mut BufPool) -> InBuf {
        let mut buf = ByteBuf::default();
        buf.extend(bytes, pool);
        InBuf(buf)
    }

    #[test]
    fn for_each_frame_consumes_what_was_decoded() {
        let mut pool = BufPool::new(16, 64);
        let mut inb = inbuf(b"one\r\ntwo\nthr", &mut pool);
        let mut dec = LineCodec::new(8);
        let mut got = Vec::new();
        for_each_frame(&mut dec, &mut inb, |line| {
            got.push(line.unwrap().to_vec());
            ControlFlow::Continue(())
        });
        assert_eq!(got, [b"one".to_vec(), b"two".to_vec()]);
        assert_eq!(&*inb, b"thr");
        inb.0.extend(b"ee\n", &mut pool);
        got.clear();
        for_each_frame(&mut dec, &mut inb, |line| {
            got.push(line.unwrap().to_vec());
            ControlFlow::Continue(())
        });
        assert_eq!(got, [b"three".to_vec()]);
        assert!(inb.is_empty());
    }

    #[test]
    fn for_each_frame_break_consumes_the_frame_handled() {
        let mut pool = BufPool::new(32, 128);
        let codec = LengthPrefixedCodec::new(4);
        let mut wire = Vec::new();
        for frame in [&b"ab"[..], b"", b"abcd"] {
            codec.encode(frame, &mut wire).unwrap();
        }
        let mut inb = inbuf(&wire, &mut pool);
        let mut dec = codec.clone();
        let mut n = 0;
        for_each_frame(&mut dec, &mut inb, |_| {
            n += 1;
            ControlFlow::Break(())
        });
        assert_eq!(n, 1);
        assert_eq!(inb.len(), wire.len() - 6);
        for_each_frame(&mut dec, &mut inb, |frame| {
            assert_eq!(frame, Ok(&b""[..]));
            ControlFlow::Break(())
        });
        assert_eq!(inb.len(), 8);
    }

    #[test]
    fn for_each_frame_stops_on_a_failed_decoder() {
        let mut pool = BufPool::new(32, 128);
        let mut inb = inbuf(b"\0\0\0\x05hello\0\0\0\x06", &mut pool);
        let mut dec = LengthPrefixedCodec::new(5);
        let mut got = Vec::new();
        for_each_frame(&mut dec, &mut inb, |frame| {
            got.push(frame.map(<[u8]>::to_vec));
            ControlFlow::Continue(()) // ignores the error: must not spin
        });
        assert_eq!(
            got,
            [Ok(b"hello".to_vec()), Err(FrameTooLarge { len: 6, max: 5 })]
        );
        assert!(inb.is_empty());
        inb.0.extend(b"\0\0\0\0", &mut pool);
        for_each_frame(&mut dec, &mut inb, |_| {
            unreachable!("failed decoders yield nothing")
        });
        assert_eq!(inb.len(), 4);
    }

    #[test]
    fn line_exact_limit_and_one_past() {
        let mut dec = LineCodec::new(4);
        assert_eq!(dec.decode(b"abcd\n"), (5, Some(Ok(&b"abcd"[..]))));
        assert_eq!(dec.decode(b"abcd\r\n"), (6, Some(Ok(&b"abcd"[..]))));
        // CR at the limit: could still be a CRLF terminator.
        assert_eq!(dec.decode(b"abcd\r"), (0, None));
        // max + 1 bytes of text: known too long before the newline.
        assert_eq!(dec.decode(b"abcde"), (5, Some(Err(LineTooLong { max: 4 }))));
        assert_eq!(dec.decode(b"\nok\n"), (1, None));
        assert_eq!(
            dec.decode(b"abcde\n"),
            (6, Some(Err(LineTooLong { max: 4 })))
        );
        // Reported on the sixth byte; the newline is skipped on the next call.
        assert_eq!(
            dec.decode(b"abcd\r\r\n"),
            (6, Some(Err(LineTooLong { max: 4 })))
        );
        assert_eq!(dec.decode(b"\n"), (1, None));
        assert_eq!(dec.decode(b"\n"), (1, Some(Ok(&b""[..]))));
        assert_eq!(dec.decode(b"\r\n"), (2, Some(Ok(&b""[..]))));
    }

    #[test]
    fn line_encode_edges() {
        let codec = LineCodec::new(4);
        let mut out = Vec::new();
        codec.encode(b"", &mut out).unwrap();
        codec.encode(b"abcd", &mut out).unwrap();
        codec.encode(b"\rab", &mut out).unwrap();
        assert_eq!(out, b"\nabcd\n\rab\n");
        let err = codec.encode(b"abcde", &mut out);
        assert_eq!(err, Err(EncodeError::TooLong { len: 5, max: 4 }));
        assert_eq!(
            codec.encode(b"ab\n", &mut out),
            Err(EncodeError::Newline { at: 2 })
        );
        assert_eq!(codec.encode(b"\r", &mut out), Err(EncodeError::TrailingCr));
        assert_eq!(out.len(), 10, "refused frames leave out unchanged");
        let mut zero = LineCodec::new(0);
        assert_eq!(zero.decode(b"\r\n"), (2, Some(Ok(&b""[..]))));
        assert_eq!(zero.decode(b"\r"), (0, None));
        assert_eq!(zero.decode(b"x"), (1, Some(Err(LineTooLong { max: 0 }))));
    }

    #[test]
    fn length_prefixed_exact_limit_one_past_and_empty() {
        let codec = LengthPrefixedCodec::new(3);
        let mut dec = codec.clone();
        assert_eq!(dec.decode(b"\0\0\0\0"), (4, Some(Ok(&b""[..]))));
        assert_eq!(dec.decode(b"\0\0\0"), (0, None));
        assert_eq!(dec.decode(b"\0\0\0\x03ab"), (0, None));
        assert_eq!(dec.decode(b"\0\0\0\x03abcd"), (7, Some(Ok(&b"abc"[..]))));
        // max + 1: refused on the header alone.
        let (used, item) = dec.decode(b"\0\0\0\x04");
        assert_eq!(
            (used, item),
            (4, Some(Err(FrameTooLarge { len: 4, max: 3 })))
        );
        assert!(dec.has_failed());
        assert_eq!(dec.decode(b"\0\0\0\0"), (0, None));

        let mut out = Vec::new();
        codec.encode(b"abc", &mut out).unwrap();
        let err = codec.encode(b"abcd", &mut out);
        assert_eq!(err, Err(EncodeError::TooLong { len: 4, max: 3 }));
        assert_eq!(out, b"\0\0\0\x03abc");
        assert_eq!(codec.max_buffered(), 7);
    }

    #[test]
    fn length_prefixed_zero_max_and_huge_max() {
        let mut dec = LengthPrefixedCodec::new(0);
        assert_eq!(dec.decode(b"\0\0\0\0\0\0\0\0"), (4, Some(Ok(&b""[..]))));
        assert_eq!(
            dec.decode(b"\0\0\0\x01x"),
            (4, Some(Err(FrameTooLarge { len: 1, max: 0 })))
        );
        let big = LengthPrefixedCodec::new(usize::MAX);
        assert_eq!(big.max_len(), u32::MAX as usize);
        let mut dec = big.clone();
        assert_eq!(dec.decode(&[0xff; 4]), (0, None), "waits for the payload");
    }
}
