//! The chat sanitiser on any bytes: never a panic, no control character
//! but TAB and no bidi override or isolate in its output, safe text
//! unchanged, and sanitising twice is sanitising once.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mio_selectors::codec::terminal_safe;

fn forbidden(c: char) -> bool {
    (c.is_control() && c != '\t')
        || ('\u{202A}'..='\u{202E}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

fuzz_target!(|data: &[u8]| {
    let out = terminal_safe(data);
    assert!(!out.chars().any(forbidden), "{out:?}");
    assert_eq!(terminal_safe(out.as_bytes()), out);
    if let Ok(text) = std::str::from_utf8(data) {
        assert_eq!(out.chars().count(), text.chars().count());
        if !text.chars().any(forbidden) {
            assert_eq!(out, text);
        }
    }
});
