//! [`LineFramer`]: splits a byte stream into bounded lines.

/// What [`LineFramer::decode`] found at the front of its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line<'a> {
    /// A whole line, without its `\n` or `\r\n`.
    Text(&'a [u8]),
    /// A line longer than the maximum. It is reported once, as soon as it is
    /// known to be too long, and then discarded up to its next `\n`.
    TooLong,
}

/// A bounded line framer: LF or CRLF terminated lines of at most `max_len`
/// bytes (terminator not counted).
///
/// It never buffers: it reads the caller's buffer (the connection's
/// [`InBuf`](crate::InBuf)) and says how many bytes to consume, so a
/// connection holds at most `max_len + 1` bytes of a partial line. After an
/// over-long line it reports [`Line::TooLong`] once and skips everything up
/// to the next `\n`, however long that takes.
///
/// ```
/// use mio_selectors::{Line, LineFramer};
///
/// let mut framer = LineFramer::new(5);
/// let mut input: &[u8] = b"hi\r\nthis is too long\nok\npart";
/// let mut lines = Vec::new();
/// loop {
///     let (used, line) = framer.decode(input);
///     if let Some(line) = line { lines.push(line) }
///     input = &input[used..];
///     if used == 0 { break }
/// }
/// assert_eq!(lines, [Line::Text(b"hi"), Line::TooLong, Line::Text(b"ok")]);
/// assert_eq!(input, b"part"); // waits for its newline
/// ```
#[derive(Debug, Clone)]
pub struct LineFramer {
    max_len: usize,
    discarding: bool,
}

impl LineFramer {
    /// A framer for lines of at most `max_len` bytes.
    ///
    /// ```
    /// let framer = mio_selectors::LineFramer::new(4096);
    /// assert_eq!(framer.max_len(), 4096);
    /// ```
    pub fn new(max_len: usize) -> Self {
        LineFramer {
            max_len,
            discarding: false,
        }
    }

    /// The longest line it accepts.
    ///
    /// ```
    /// assert_eq!(mio_selectors::LineFramer::new(8).max_len(), 8);
    /// ```
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Whether it is skipping the rest of an over-long line: input is
    /// being consumed but no line has ended.
    ///
    /// ```
    /// let mut framer = mio_selectors::LineFramer::new(2);
    /// framer.decode(b"abcdef");
    /// assert!(framer.is_discarding());
    /// framer.decode(b"\n");
    /// assert!(!framer.is_discarding());
    /// ```
    pub fn is_discarding(&self) -> bool {
        self.discarding
    }

    /// Looks at the front of `input` and returns how many bytes to consume
    /// and the line found there, if any. `(0, None)` means: nothing more
    /// until more input arrives. Call it again after consuming.
    ///
    /// ```
    /// use mio_selectors::{Line, LineFramer};
    /// let mut framer = LineFramer::new(80);
    /// assert_eq!(framer.decode(b"a\nb"), (2, Some(Line::Text(b"a"))));
    /// assert_eq!(framer.decode(b"b"), (0, None));
    /// ```
    pub fn decode<'a>(&mut self, input: &'a [u8]) -> (usize, Option<Line<'a>>) {
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
        let window = &input[..input.len().min(self.max_len.saturating_add(2))];
        match memchr(window) {
            Some(i) => {
                let line = &input[..i];
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if line.len() > self.max_len {
                    (i + 1, Some(Line::TooLong))
                } else {
                    (i + 1, Some(Line::Text(line)))
                }
            }
            // Too long already: say so now, skip to the newline.
            None if input.len() > self.max_len.saturating_add(1)
                || (input.len() == self.max_len.saturating_add(1)
                    && input[self.max_len] != b'\r') =>
            {
                self.discarding = true;
                (window.len(), Some(Line::TooLong))
            }
            None => (0, None),
        }
    }
}

fn memchr(haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(framer: &mut LineFramer, mut input: &[u8]) -> (Vec<Option<Vec<u8>>>, usize) {
        let mut out = Vec::new();
        loop {
            let (used, line) = framer.decode(input);
            match line {
                Some(Line::Text(t)) => out.push(Some(t.to_vec())),
                Some(Line::TooLong) => out.push(None),
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
        let mut f = LineFramer::new(4);
        let (lines, left) = all(&mut f, b"abcd\r\nabcde\nx");
        assert_eq!(lines, [Some(b"abcd".to_vec()), None]);
        assert_eq!(left, 1);
    }

    #[test]
    fn overflow_is_reported_before_the_newline_and_once() {
        let mut f = LineFramer::new(4);
        let (lines, left) = all(&mut f, b"abcdef");
        assert_eq!(lines, [None]);
        assert_eq!(left, 0);
        let (lines, _) = all(&mut f, b"ghij");
        assert!(lines.is_empty(), "still discarding, no second report");
        let (lines, _) = all(&mut f, b"k\nok\n");
        assert_eq!(lines, [Some(b"ok".to_vec())]);
    }

    #[test]
    fn partial_cr_at_limit_waits() {
        let mut f = LineFramer::new(4);
        assert_eq!(f.decode(b"abcd\r"), (0, None));
        assert_eq!(f.decode(b"abcd\r\n"), (6, Some(Line::Text(b"abcd"))));
    }
}
