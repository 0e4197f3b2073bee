//! `LineCodec` on any bytes, fed in any pieces: never a
//! panic, never more consumed than given, never more than
//! `max_buffered()` left waiting, lines within the maximum and free of
//! `\n`, and the same lines whatever the pieces.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mio_selectors::codec::{Decoder, LineCodec};

/// Feeds `stream` in pieces of the sizes `cuts` says (cycled), the way a
/// connection's `inb` fills; returns each line (`None`: too long) and
/// what is left undecoded.
fn feed(max: usize, stream: &[u8], cuts: &[u8]) -> (Vec<Option<Vec<u8>>>, usize) {
    let mut dec = LineCodec::new(max);
    let mut inb: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    let mut at = 0;
    let mut k = 0;
    while at < stream.len() {
        let n = match cuts.get(k % cuts.len().max(1)) {
            Some(&c) => (c as usize).max(1),
            None => stream.len(),
        };
        k += 1;
        let end = (at + n).min(stream.len());
        inb.extend_from_slice(&stream[at..end]);
        at = end;
        loop {
            let (used, item) = dec.decode(&inb);
            assert!(used <= inb.len(), "consumed more than given");
            match item {
                Some(Ok(line)) => {
                    assert!(line.len() <= max, "line over the maximum");
                    assert!(!line.contains(&b'\n'), "newline inside a line");
                    out.push(Some(line.to_vec()));
                }
                Some(Err(_)) => out.push(None),
                None if used == 0 => break,
                None => {}
            }
            inb.drain(..used);
        }
        assert!(
            inb.len() < dec.max_buffered(),
            "{} bytes left waiting",
            inb.len()
        );
    }
    (out, inb.len())
}

fuzz_target!(|data: &[u8]| {
    let Some((&max, rest)) = data.split_first() else {
        return;
    };
    let Some((&ncuts, rest)) = rest.split_first() else {
        return;
    };
    let max = max as usize % 64;
    let ncuts = (ncuts as usize % 8).min(rest.len());
    let (cuts, stream) = rest.split_at(ncuts);
    let whole = feed(max, stream, &[]);
    let pieces = feed(max, stream, cuts);
    let bytes = feed(max, stream, &[1]);
    assert_eq!(whole, pieces, "lines depend on how the input was cut");
    assert_eq!(whole, bytes, "lines depend on how the input was cut");

    // One fresh decoder over the whole stream, in one pass.
    let mut framer = LineCodec::new(max);
    let mut input = stream;
    let mut direct = Vec::new();
    loop {
        let (used, line) = framer.decode(input);
        match line {
            Some(Ok(t)) => direct.push(Some(t.to_vec())),
            Some(Err(_)) => direct.push(None),
            None => {}
        }
        input = &input[used..];
        if used == 0 {
            break;
        }
    }
    assert_eq!(direct, whole.0);
});
