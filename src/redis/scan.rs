//! A linear, non-recursive look at the head of the input before it goes to
//! `redis-protocol`'s decoder.
//!
//! The decoder recurses once per nesting level and parses a frame from its
//! start on every call, so on its own a hostile peer could overflow the
//! stack with `*1\r\n*1\r\n...` or make each read cost the whole buffered
//! frame again. This walk does neither: it only finds where the first frame
//! ends, bounds its size and depth, and says how many bytes must be
//! buffered before looking again. Decoding itself stays with the crate.

/// What the head of the input holds.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Scan {
    /// A complete frame of this many bytes.
    Frame(usize),
    /// Not yet complete; look again once at least this many bytes are buffered.
    Incomplete(usize),
}

/// Finds the extent of the first RESP2 frame in `buf`.
///
/// # Errors
/// A description of the first thing that is not RESP2, or of a frame over
/// `max_len` bytes or `max_depth` levels of arrays.
pub(crate) fn scan(buf: &[u8], max_len: usize, max_depth: usize) -> Result<Scan, String> {
    // Elements still expected by each open array, innermost last.
    let mut open: Vec<usize> = Vec::new();
    let mut pos = 0;
    loop {
        let Some(&kind) = buf.get(pos) else {
            return Ok(Scan::Incomplete(pos + 1));
        };
        if !matches!(kind, b'+' | b'-' | b':' | b'$' | b'*') {
            return Err(format!(
                "byte {:?} cannot start a RESP2 reply",
                char::from(kind).escape_default().to_string()
            ));
        }
        let Some(eol) = find_crlf(buf, pos + 1) else {
            if buf.len() > max_len {
                return Err(format!("a reply line runs past {max_len} bytes"));
            }
            return Ok(Scan::Incomplete(buf.len() + 1));
        };
        let line = &buf[pos + 1..eol];
        let mut next = eol + 2;
        match kind {
            b'$' => {
                let n = number(line)?;
                if n >= 0 {
                    let n =
                        usize::try_from(n).map_err(|_| "bulk length out of range".to_string())?;
                    if n > max_len {
                        return Err(format!("a {n}-byte reply is over the {max_len}-byte limit"));
                    }
                    let end = next + n + 2;
                    if buf.len() < end {
                        return Ok(Scan::Incomplete(end));
                    }
                    if &buf[end - 2..end] != b"\r\n" {
                        return Err("a bulk string does not end in CRLF".into());
                    }
                    next = end;
                } else if n != -1 {
                    return Err(format!("bulk length {n}"));
                }
            }
            b'*' => {
                let n = number(line)?;
                if n > 0 {
                    let n =
                        usize::try_from(n).map_err(|_| "array length out of range".to_string())?;
                    if n > max_len / 3 {
                        return Err(format!("an array of {n} elements is over the limit"));
                    }
                    if open.len() >= max_depth {
                        return Err(format!("replies nest deeper than {max_depth} arrays"));
                    }
                    open.push(n);
                    pos = next;
                    continue;
                } else if n < -1 {
                    return Err(format!("array length {n}"));
                }
            }
            // `+`, `-`, `:`: the line is the element (other bytes were refused above).
            _ => {}
        }
        if next > max_len {
            return Err(format!("a reply is over the {max_len}-byte limit"));
        }
        // One element is complete: close every array it completes.
        while let Some(left) = open.last_mut() {
            *left -= 1;
            if *left > 0 {
                break;
            }
            open.pop();
        }
        if open.is_empty() {
            return Ok(Scan::Frame(next));
        }
        pos = next;
    }
}

fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    let rest = buf.get(from..)?;
    rest.windows(2).position(|w| w == b"\r\n").map(|i| from + i)
}

fn number(line: &[u8]) -> Result<i64, String> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| {
            format!(
                "`{}` is not a length",
                String::from_utf8_lossy(line).escape_default()
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(buf: &[u8]) -> Result<Scan, String> {
        scan(buf, 1 << 20, 8)
    }

    #[test]
    fn complete_frames() {
        assert_eq!(s(b"+OK\r\n"), Ok(Scan::Frame(5)));
        assert_eq!(s(b"-ERR x\r\n+OK\r\n"), Ok(Scan::Frame(8)));
        assert_eq!(s(b":12\r\n"), Ok(Scan::Frame(5)));
        assert_eq!(s(b"$-1\r\n"), Ok(Scan::Frame(5)));
        assert_eq!(s(b"*-1\r\n"), Ok(Scan::Frame(5)));
        assert_eq!(s(b"*0\r\n"), Ok(Scan::Frame(4)));
        assert_eq!(s(b"$3\r\na\r\n\r\n"), Ok(Scan::Frame(9)));
        let msg = b"*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$2\r\n*1\r\n";
        assert_eq!(s(msg), Ok(Scan::Frame(msg.len())));
        let nested = b"*2\r\n*1\r\n:1\r\n*2\r\n$0\r\n\r\n*0\r\n";
        assert_eq!(s(nested), Ok(Scan::Frame(nested.len())));
    }

    #[test]
    fn incomplete_frames_say_how_much_is_needed() {
        assert_eq!(s(b""), Ok(Scan::Incomplete(1)));
        assert_eq!(s(b"+O"), Ok(Scan::Incomplete(3)));
        assert_eq!(s(b"$10\r\nab"), Ok(Scan::Incomplete(17)));
        assert_eq!(s(b"*2\r\n:1\r\n"), Ok(Scan::Incomplete(9)));
    }

    #[test]
    fn garbage_and_abuse_are_errors() {
        assert!(s(b"HTTP/1.1 400 Bad Request\r\n")
            .unwrap_err()
            .contains("cannot start"));
        assert!(s(b"$x\r\n").is_err());
        assert!(s(b"$-2\r\n").is_err());
        assert!(s(b"*-5\r\n").is_err());
        assert!(s(b"$3\r\nabcde\r\n").unwrap_err().contains("CRLF"));
        assert!(s(b"$2000000\r\n").unwrap_err().contains("limit"));
        assert!(s(b"*9999999\r\n").unwrap_err().contains("limit"));
        let deep = b"*1\r\n".repeat(9);
        assert!(s(&deep).unwrap_err().contains("deeper"));
        assert!(scan(&[b'+'; 64], 32, 8).unwrap_err().contains("runs past"));
    }
}
