//! Property tests of the chat sanitiser, [`terminal_safe`]: 50,000 cases.
//!
//! The framers have theirs in `tests/codec.rs` (`LineCodec` and
//! `LengthPrefixedCodec`).
//! Each property here is run by a [`TestRunner`] that counts its cases and
//! prints `reliability: proptest NAME cases=N` (see it with
//! `cargo test --test sanitize -- --nocapture`).

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

use mio_selectors::codec::terminal_safe;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

const CASES: u32 = 10_000;

/// What `terminal_safe` must never let through.
fn forbidden(c: char) -> bool {
    (c.is_control() && c != '\t')
        || ('\u{202A}'..='\u{202E}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// A character from a number, biased towards the interesting ones: C0,
/// DEL, C1, the bidi controls and their neighbours, TAB, U+FFFD, ASCII,
/// and anything at all. (Numbers, not a union of strategies, keep each
/// case cheap in a debug build; they still shrink towards ASCII.)
fn char_of(x: u32) -> char {
    let pick = |lo: u32, hi: u32| char::from_u32(lo + (x >> 4) % (hi - lo + 1)).unwrap_or('?');
    match x % 16 {
        0..=4 => pick(0x20, 0x7e),
        5 | 6 => pick(0, 0x1f),
        7 => '\u{7f}',
        8 => pick(0x80, 0x9f),
        9 | 10 => pick(0x2028, 0x206f),
        11 => '\t',
        12 => '\u{FFFD}',
        _ => char::from_u32(x >> 4).unwrap_or('\u{10FFFF}'),
    }
}

fn strings() -> impl Strategy<Value = String> {
    prop::collection::vec(any::<u32>(), 0..48).prop_map(|v| v.into_iter().map(char_of).collect())
}

/// Raw bytes: characters mixed with bytes that break UTF-8 (stray
/// continuation bytes, truncated sequences, overlong forms).
fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u32>(), 0..48).prop_map(|v| {
        let mut out = Vec::new();
        for x in v {
            match x % 4 {
                0 => out.push((x >> 8) as u8),
                1 => out.push(0x80 | (x >> 8) as u8 & 0x7f),
                _ => out.extend(char_of(x >> 2).to_string().bytes()),
            }
        }
        out
    })
}

/// Runs `test` on `CASES` values of `strategy`, counting them.
fn check<S: Strategy>(
    name: &str,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    });
    let count = AtomicU64::new(0);
    let result = runner.run(&strategy, |value| {
        count.fetch_add(1, SeqCst);
        test(value)
    });
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
    let cases = count.load(SeqCst);
    assert!(cases >= CASES as u64, "{name}: only {cases} cases ran");
    println!("reliability: proptest {name} cases={cases}");
}

#[test]
fn no_control_or_bidi_character_gets_through() {
    check("sanitiser_output_is_safe", bytes(), |input| {
        let out = terminal_safe(&input);
        if let Some(c) = out.chars().find(|&c| forbidden(c)) {
            return Err(TestCaseError::fail(format!(
                "{c:?} got through from {input:?}"
            )));
        }
        Ok(())
    });
}

#[test]
fn safe_text_passes_unchanged() {
    let safe = strings().prop_map(|s| s.chars().filter(|&c| !forbidden(c)).collect::<String>());
    check("sanitiser_keeps_safe_text", safe, |text| {
        prop_assert_eq!(terminal_safe(text.as_bytes()), text);
        Ok(())
    });
}

#[test]
fn text_is_replaced_character_for_character() {
    check("sanitiser_replaces_in_place", strings(), |text| {
        let out = terminal_safe(text.as_bytes());
        prop_assert_eq!(out.chars().count(), text.chars().count());
        for (a, b) in text.chars().zip(out.chars()) {
            let want = if forbidden(a) { '\u{FFFD}' } else { a };
            prop_assert_eq!(b, want);
        }
        Ok(())
    });
}

#[test]
fn sanitising_twice_changes_nothing() {
    check("sanitiser_is_idempotent", bytes(), |input| {
        let once = terminal_safe(&input);
        prop_assert_eq!(terminal_safe(once.as_bytes()), once);
        Ok(())
    });
}

#[test]
fn text_is_sanitised_piece_by_piece() {
    check(
        "sanitiser_commutes_with_concat",
        (strings(), strings()),
        |(a, b)| {
            let joined = terminal_safe(format!("{a}{b}").as_bytes());
            prop_assert_eq!(
                joined,
                terminal_safe(a.as_bytes()) + &terminal_safe(b.as_bytes())
            );
            Ok(())
        },
    );
}
