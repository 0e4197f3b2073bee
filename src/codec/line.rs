//! [`LineCodec`]: bounded LF/CRLF lines, an over-long line reported once
//! and skipped.

use super::{Decoder, EncodeError, Encoder};

/// A line longer than the [`LineCodec`]'s maximum. Not fatal: the rest of
/// the line is skipped and decoding carries on with the next one.
///
/// ```
/// use mio_selectors::codec::LineTooLong;
/// assert_eq!(LineTooLong { max: 4 }.to_string(), "line longer than 4 bytes");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("line longer than {max} bytes")]
pub struct LineTooLong {
    /// The codec's maximum line length.
    pub max: usize,
}

/// LF or CRLF terminated lines of at most `max_len` bytes (terminator not
/// counted).
///
/// Decoding gives each line without its terminator. An over-long line gives
/// [`LineTooLong`] once, as soon as it is known to be too long (before its
/// newline arrives), and is then skipped up to its `\n`; the next line
/// decodes normally. The caller never holds more than `max_len + 1` bytes of
/// a partial line. Encoding appends `\n`.
///
/// ```
/// use mio_selectors::codec::{Decoder, LineCodec, LineTooLong};
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
    max_len: usize,
    /// Skipping the rest of an over-long line, up to its `\n`.
    discarding: bool,
}

impl LineCodec {
    /// A codec for lines of at most `max_len` bytes.
    ///
    /// ```
    /// assert_eq!(mio_selectors::codec::LineCodec::new(4096).max_len(), 4096);
    /// ```
    pub fn new(max_len: usize) -> Self {
        LineCodec {
            max_len,
            discarding: false,
        }
    }

    /// The longest line it accepts, terminator not counted.
    ///
    /// ```
    /// assert_eq!(mio_selectors::codec::LineCodec::new(8).max_len(), 8);
    /// ```
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// The input a connection must be able to hold to decode the longest
    /// line: `max_len + 2`, for a line of `max_len` bytes and `\r\n`. After
    /// decoding all it can, the codec leaves fewer bytes than this.
    ///
    /// ```
    /// assert_eq!(mio_selectors::codec::LineCodec::new(8).max_buffered(), 10);
    /// ```
    pub fn max_buffered(&self) -> usize {
        self.max_len().saturating_add(2)
    }

    /// Whether it is skipping the rest of an over-long line.
    ///
    /// ```
    /// use mio_selectors::codec::{Decoder, LineCodec};
    ///
    /// let mut dec = LineCodec::new(2);
    /// dec.decode(b"abcdef");
    /// assert!(dec.is_discarding());
    /// dec.decode(b"\n");
    /// assert!(!dec.is_discarding());
    /// ```
    pub fn is_discarding(&self) -> bool {
        self.discarding
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
    /// use mio_selectors::codec::{Decoder, LineCodec, LineTooLong};
    ///
    /// let mut dec = LineCodec::new(3);
    /// assert_eq!(dec.decode(b"abcde"), (5, Some(Err(LineTooLong { max: 3 }))));
    /// assert_eq!(dec.decode(b"f\nabc\n"), (2, None)); // the rest is skipped
    /// assert_eq!(dec.decode(b"abc\n"), (4, Some(Ok(&b"abc"[..]))));
    /// ```
    fn decode<'a>(&mut self, input: &'a [u8]) -> (usize, Option<Result<&'a [u8], LineTooLong>>) {
        let max = self.max_len;
        if self.discarding {
            return match memchr(input) {
                Some(i) => {
                    self.discarding = false;
                    (i + 1, None)
                }
                None => (input.len(), None),
            };
        }
        // A line of `max_len` bytes may be followed by "\r\n".
        let window = &input[..input.len().min(max.saturating_add(2))];
        match memchr(window) {
            Some(i) => {
                let line = &input[..i];
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if line.len() > max {
                    (i + 1, Some(Err(LineTooLong { max })))
                } else {
                    (i + 1, Some(Ok(line)))
                }
            }
            // Too long already: say so now, skip to the newline.
            None if input.len() > max.saturating_add(1)
                || (input.len() == max.saturating_add(1) && input[max] != b'\r') =>
            {
                self.discarding = true;
                (window.len(), Some(Err(LineTooLong { max })))
            }
            None => (0, None),
        }
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
    /// use mio_selectors::codec::{EncodeError, Encoder, LineCodec};
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

fn memchr(haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every line decoded from `input` (`None` for an over-long one) and
    /// how many bytes were left waiting for their newline.
    fn all(codec: &mut LineCodec, mut input: &[u8]) -> (Vec<Option<Vec<u8>>>, usize) {
        let mut out = Vec::new();
        loop {
            let (used, line) = codec.decode(input);
            match line {
                Some(Ok(t)) => out.push(Some(t.to_vec())),
                Some(Err(_)) => out.push(None),
                None => {}
            }
            input = &input[used..];
            if used == 0 {
                return (out, input.len());
            }
        }
    }

    #[test]
    fn exact_limit_with_crlf_is_accepted() {
        let mut c = LineCodec::new(4);
        let (lines, left) = all(&mut c, b"abcd\r\nabcde\nx");
        assert_eq!(lines, [Some(b"abcd".to_vec()), None]);
        assert_eq!(left, 1);
    }

    #[test]
    fn overflow_is_reported_before_the_newline_and_once() {
        let mut c = LineCodec::new(4);
        let (lines, left) = all(&mut c, b"abcdef");
        assert_eq!(lines, [None]);
        assert_eq!(left, 0);
        let (lines, _) = all(&mut c, b"ghij");
        assert!(lines.is_empty(), "still discarding, no second report");
        let (lines, _) = all(&mut c, b"k\nok\n");
        assert_eq!(lines, [Some(b"ok".to_vec())]);
    }

    #[test]
    fn partial_cr_at_limit_waits() {
        let mut c = LineCodec::new(4);
        assert_eq!(c.decode(b"abcd\r"), (0, None));
        assert_eq!(c.decode(b"abcd\r\n"), (6, Some(Ok(&b"abcd"[..]))));
    }
}
