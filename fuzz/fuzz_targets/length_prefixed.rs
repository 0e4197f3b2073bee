//! `LengthPrefixedCodec` on any bytes, fed in any pieces: never a panic,
//! never more consumed than given, frames within the maximum, the same
//! frames whatever the pieces, nothing after a fatal error, and every
//! frame decoded encodes back to the bytes it came from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mio_selectors::codec::{Decoder, Encoder, LengthPrefixedCodec};

/// Frames (`None`: too large, fatal) from `stream` fed in pieces of the
/// sizes `cuts` says, and the bytes consumed.
fn feed(max: usize, stream: &[u8], cuts: &[u8]) -> (Vec<Option<Vec<u8>>>, usize) {
    let mut dec = LengthPrefixedCodec::new(max);
    let mut inb: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    let (mut at, mut k, mut consumed) = (0, 0, 0);
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
            let failed = dec.has_failed();
            let (used, item) = dec.decode(&inb);
            assert!(used <= inb.len(), "consumed more than given");
            if failed {
                assert_eq!(
                    (used, item.is_none()),
                    (0, true),
                    "decoded after a fatal error"
                );
            }
            match item {
                Some(Ok(frame)) => {
                    assert!(frame.len() <= max, "frame over the maximum");
                    out.push(Some(frame.to_vec()));
                }
                Some(Err(_)) => {
                    assert!(dec.has_failed());
                    out.push(None);
                }
                None => {}
            }
            inb.drain(..used);
            consumed += used;
            if used == 0 {
                break;
            }
        }
        if !dec.has_failed() {
            assert!(
                inb.len() < dec.max_buffered(),
                "{} bytes left waiting",
                inb.len()
            );
        }
    }
    (out, consumed)
}

fuzz_target!(|data: &[u8]| {
    let Some((&max, rest)) = data.split_first() else {
        return;
    };
    let Some((&ncuts, rest)) = rest.split_first() else {
        return;
    };
    let max = max as usize;
    let ncuts = (ncuts as usize % 8).min(rest.len());
    let (cuts, stream) = rest.split_at(ncuts);
    let whole = feed(max, stream, &[]);
    assert_eq!(
        whole,
        feed(max, stream, cuts),
        "frames depend on how the input was cut"
    );
    assert_eq!(
        whole,
        feed(max, stream, &[1]),
        "frames depend on how the input was cut"
    );

    // Re-encoding the frames gives back exactly the bytes they came from.
    let codec = LengthPrefixedCodec::new(max);
    let mut wire = Vec::new();
    for frame in whole.0.iter().map_while(Option::as_ref) {
        codec
            .encode(frame, &mut wire)
            .expect("a decoded frame encodes");
    }
    if whole.0.iter().all(Option::is_some) {
        assert_eq!(wire, stream[..whole.1]);
    }
});
