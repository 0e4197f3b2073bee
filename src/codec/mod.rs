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
//! use mio_selectors::codec::{for_each_frame_in, Encoder, LengthPrefixedCodec};
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
//! # Ok::<(), mio_selectors::codec::EncodeError>(())
//! ```

use std::ops::ControlFlow;

mod length;
mod line;
mod sanitize;

pub use length::{FrameTooLarge, LengthPrefixedCodec};
pub use line::{LineCodec, LineTooLong};
pub use sanitize::terminal_safe;

use crate::InBuf;

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
/// use mio_selectors::codec::{Decoder, LineCodec};
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
    /// use mio_selectors::codec::{Decoder, LengthPrefixedCodec};
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
/// use mio_selectors::codec::{Encoder, LineCodec};
///
/// let codec = LineCodec::new(80);
/// let mut out = Vec::new();
/// codec.encode(b"one", &mut out)?;
/// codec.encode(b"two", &mut out)?;
/// assert_eq!(out, b"one\ntwo\n");
/// # Ok::<(), mio_selectors::codec::EncodeError>(())
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
    /// use mio_selectors::codec::{EncodeError, Encoder, LineCodec};
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
/// use mio_selectors::codec::EncodeError;
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

/// Decodes every frame at the front of `input`, calling `f` with each, and
/// returns how many bytes to consume.
///
/// It stops when the decoder needs more input, or after the frame for which
/// `f` returns [`ControlFlow::Break`]; that frame is counted as consumed.
/// This is [`for_each_frame`] over any byte slice; frames borrow from
/// `input` and may outlive the call.
///
/// ```
/// use mio_selectors::codec::{for_each_frame_in, LineCodec, LineTooLong};
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
/// The decoder is usually kept in the connection's data, which
/// [`Handler::service_connection`](crate::Handler::service_connection) is
/// lent, beside the [`Context`](crate::Context) that `f` will want:
///
/// ```
/// use mio_selectors::{ConnId, Context, InBuf};
/// use mio_selectors::codec::{for_each_frame, Encoder, LineCodec};
/// use std::ops::ControlFlow;
///
/// // The body of `Handler::service_connection`, with `LineCodec` as the
/// // connection's data: answer each line with its length.
/// fn service_connection(cx: &mut Context<'_, LineCodec>, id: ConnId, dec: &mut LineCodec, inb: &mut InBuf) {
///     let enc = LineCodec::new(dec.max_len());
///     for_each_frame(dec, inb, |line| {
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
/// }
/// ```
///
/// With a [`LengthPrefixedCodec`], close the connection on the error:
///
/// ```
/// use mio_selectors::{ConnId, Context, InBuf};
/// use mio_selectors::codec::{for_each_frame, LengthPrefixedCodec};
/// use std::ops::ControlFlow;
///
/// fn service_connection(cx: &mut Context<'_, LengthPrefixedCodec>, id: ConnId, dec: &mut LengthPrefixedCodec, inb: &mut InBuf) {
///     for_each_frame(dec, inb, |frame| match frame {
///         Ok(payload) => {
///             let _ = payload; // handle it
///             ControlFlow::Continue(())
///         }
///         Err(_too_large) => {
///             cx.abort(id); // no way to find the next frame
///             ControlFlow::Break(())
///         }
///     });
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
    use crate::buf::{BufPool, ByteBuf};

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
