//! [`terminal_safe`]: text that cannot drive another user's terminal.

/// Decodes `bytes` as UTF-8 (invalid sequences become U+FFFD) and replaces
/// with U+FFFD every character that could act on a terminal instead of
/// being shown: C0 controls but TAB, DEL, C1 controls, and the bidirectional
/// overrides and isolates U+202A–U+202E and U+2066–U+2069.
///
/// So no escape sequence, carriage return, bell or right-to-left trick in one
/// client's line reaches another client's screen.
///
/// ```
/// use mio_selectors::codec::terminal_safe;
/// assert_eq!(terminal_safe(b"hi\tthere"), "hi\tthere");
/// assert_eq!(terminal_safe(b"\x1b[31mred"), "\u{FFFD}[31mred");
/// assert_eq!(terminal_safe(b"a\xffb"), "a\u{FFFD}b");
/// assert_eq!(terminal_safe("x\u{202E}y".as_bytes()), "x\u{FFFD}y");
/// ```
pub fn terminal_safe(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .map(|c| if is_unsafe(c) { '\u{FFFD}' } else { c })
        .collect()
}

fn is_unsafe(c: char) -> bool {
    (c.is_control() && c != '\t') // C0, DEL and C1 are exactly Unicode's Cc
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_control_but_tab_is_replaced() {
        for b in (0u8..0x20).chain([0x7f]) {
            let out = terminal_safe(&[b'a', b, b'b']);
            if b == b'\t' {
                assert_eq!(out, "a\tb");
            } else {
                assert_eq!(out, "a\u{FFFD}b", "byte {b:#x}");
            }
        }
        for c in ('\u{80}'..='\u{9f}').chain('\u{2066}'..='\u{2069}') {
            assert_eq!(terminal_safe(c.to_string().as_bytes()), "\u{FFFD}");
        }
        assert_eq!(terminal_safe("é漢\u{200F}".as_bytes()), "é漢\u{200F}");
    }
}
