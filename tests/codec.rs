//! Property tests of the framing codecs, fed the way a socket delivers bytes:
//! in chunks of any size, with the caller keeping only what the decoder did
//! not consume.
//!
//! Every test checks, after each chunk, that what the caller still holds is
//! less than the codec's `max_buffered()`: a connection whose `inb` can hold
//! that much never stalls on a frame it is allowed to receive.
//!
//! The case counts add up to 120,000 per run. Each property counts the
//! cases it actually ran and prints `reliability: proptest NAME cases=N`
//! (`-- --nocapture` shows them): the figure is counted, not configured.

use std::cell::Cell;
use std::ops::ControlFlow;

use mio_selectors::codec::{
    for_each_frame_in, Decoder, EncodeError, Encoder, FrameTooLarge, LengthPrefixedCodec,
    LineCodec, LineTooLong,
};
use proptest::prelude::*;

type Got<E> = Vec<Result<Vec<u8>, E>>;

/// Cases per line-codec property, and per length-prefixed one.
const LINE_CASES: u32 = 25_000;
const LENGTH_CASES: u32 = 15_000;

thread_local! {
    /// Cases run by the property running on this thread (proptest runs
    /// them all on the calling thread).
    static TICKS: Cell<u64> = const { Cell::new(0) };
}

/// Counts one case; the first statement of every property.
fn tick() {
    TICKS.with(|t| t.set(t.get() + 1));
}

/// Runs `property` (a `proptest!` function), then checks and prints how
/// many cases it really ran.
fn counted(name: &str, configured: u32, property: fn()) {
    TICKS.with(|t| t.set(0));
    property();
    let cases = TICKS.with(Cell::get);
    assert!(
        cases >= u64::from(configured),
        "{name}: only {cases} cases ran, {configured} configured"
    );
    println!("reliability: proptest {name} cases={cases}");
}

/// How a simulated handler drains its input after each chunk.
#[derive(Debug, Clone)]
struct Drain {
    /// Chunk sizes, cycled, for splitting the stream.
    chunks: Vec<usize>,
    /// Call `decode` directly instead of `for_each_frame_in`.
    direct: bool,
    /// Whether to return `Break` after each frame, cycled.
    breaks: Vec<bool>,
}

fn drain_strategy() -> impl Strategy<Value = Drain> {
    (
        prop::collection::vec(
            prop_oneof![2 => Just(1usize), 3 => 1usize..8, 1 => 8usize..40],
            1..8,
        ),
        any::<bool>(),
        prop::collection::vec(prop::bool::weighted(0.2), 1..5),
    )
        .prop_map(|(chunks, direct, breaks)| Drain {
            chunks,
            direct,
            breaks,
        })
}

/// What `feed` saw.
struct Fed<E> {
    got: Got<E>,
    /// Stream offset up to which bytes had been delivered when the first
    /// error was decoded, and where the chunk that delivered it started.
    first_error_at: Option<(usize, usize)>,
    /// Bytes still held by the caller at the end.
    left: usize,
}

/// Feeds `stream` to `dec` chunk by chunk, keeping what it leaves, and
/// checks after every chunk that fewer than `bound` bytes are left. With
/// `stop_on_error` the connection is dropped at the first error, as a
/// handler must do for a fatal one.
fn feed<D>(
    dec: &mut D,
    stream: &[u8],
    how: &Drain,
    bound: usize,
    stop_on_error: bool,
) -> Fed<D::Error>
where
    D: for<'a> Decoder<Frame<'a> = &'a [u8]>,
{
    let mut pending: Vec<u8> = Vec::new();
    let mut got = Vec::new();
    let mut first_error_at = None;
    let mut breaks = how.breaks.iter().copied().cycle();
    let mut sizes = how.chunks.iter().copied().cycle();
    let mut fed = 0;
    while fed < stream.len() {
        let start = fed;
        let size = sizes.next().unwrap().min(stream.len() - fed);
        pending.extend_from_slice(&stream[fed..fed + size]);
        fed += size;
        let errors_before = got.iter().filter(|r: &&Result<_, _>| r.is_err()).count();
        if how.direct {
            loop {
                let (used, item) = dec.decode(&pending);
                assert!(used <= pending.len(), "consumed more than it was given");
                let produced = item.is_some();
                if let Some(item) = item {
                    assert!(used > 0, "a frame or error must consume input");
                    got.push(item.map(<[u8]>::to_vec));
                }
                pending.drain(..used);
                if used == 0 && !produced {
                    break;
                }
            }
        } else {
            loop {
                let mut produced = false;
                let used = for_each_frame_in(dec, &pending, |item| {
                    produced = true;
                    got.push(item.map(<[u8]>::to_vec));
                    if breaks.next().unwrap() {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                });
                assert!(used <= pending.len(), "consumed more than it was given");
                assert!(
                    used > 0 || !produced,
                    "a frame was handed out but not consumed"
                );
                pending.drain(..used);
                if used == 0 && !produced {
                    break;
                }
            }
        }
        let has_error = got.iter().filter(|r| r.is_err()).count() > errors_before;
        if has_error && first_error_at.is_none() {
            first_error_at = Some((fed, start));
        }
        if has_error && stop_on_error {
            break;
        }
        assert!(
            pending.len() < bound,
            "caller holds {} bytes, bound {bound}",
            pending.len()
        );
    }
    Fed {
        got,
        first_error_at,
        left: pending.len(),
    }
}

// ---------------------------------------------------------------- lines

/// Up to `max_len` bytes shaped by `shape` (a byte-to-byte map applied to
/// uniform bytes: far cheaper in a debug build than a union per byte).
fn bytes(max_len: usize, shape: fn(u8) -> u8) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max_len)
        .prop_map(move |v| v.into_iter().map(shape).collect())
}

/// Bytes that make interesting lines: about 30% `\n`, 20% `\r`, 40% `a`,
/// and the rest anything.
fn line_byte(b: u8) -> u8 {
    match b {
        0..=76 => b'\n',
        77..=127 => b'\r',
        128..=229 => b'a',
        _ => b.wrapping_mul(151),
    }
}

/// Bytes that make plausible length headers: mostly zero or small.
fn header_byte(b: u8) -> u8 {
    match b {
        0..=152 => 0,
        153..=229 => b % 12,
        _ => b.wrapping_mul(151),
    }
}

/// The spec of `LineCodec`, written independently of its decoder: each
/// `\n`-terminated line, less one trailing `\r`, is a frame if it fits and
/// one `LineTooLong` if not; an unterminated tail is reported too long as
/// soon as no continuation could make it fit.
fn line_model(stream: &[u8], max: usize) -> Got<LineTooLong> {
    let mut out = Vec::new();
    let mut parts: Vec<&[u8]> = stream.split(|&b| b == b'\n').collect();
    let tail = parts.pop().unwrap();
    for line in parts {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        out.push(if line.len() <= max {
            Ok(line.to_vec())
        } else {
            Err(LineTooLong { max })
        });
    }
    let could_fit = tail.len() <= max || (tail.len() == max + 1 && tail.ends_with(b"\r"));
    if !could_fit {
        out.push(Err(LineTooLong { max }));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: LINE_CASES, ..ProptestConfig::default() })]

    /// Valid lines, LF or CRLF terminated, come back unchanged however the
    /// stream is split; the encoder accepts exactly the lines that survive a
    /// round trip.
    fn lines_round_trip_any_split(
        max in 0usize..12,
        lines in prop::collection::vec((bytes(14, line_byte), any::<bool>()), 0..10),
        how in drain_strategy(),
    ) {
        tick();
        let codec = LineCodec::new(max);
        let mut stream = Vec::new();
        let mut want = Vec::new();
        for (line, crlf) in &lines {
            let before = stream.len();
            let res = codec.encode(line, &mut stream);
            let newline = line.iter().position(|&b| b == b'\n');
            let expected = if line.len() > max {
                Err(EncodeError::TooLong { len: line.len(), max })
            } else if let Some(at) = newline {
                Err(EncodeError::Newline { at })
            } else if line.ends_with(b"\r") {
                Err(EncodeError::TrailingCr)
            } else {
                Ok(())
            };
            prop_assert_eq!(res, expected);
            match res {
                Ok(()) => {
                    prop_assert_eq!(&stream[before..], [&line[..], b"\n"].concat());
                    if *crlf {
                        // The decoder takes CRLF as well.
                        stream.insert(stream.len() - 1, b'\r');
                    }
                    want.push(Ok(line.clone()));
                }
                Err(_) => prop_assert_eq!(stream.len(), before, "refusal leaves out unchanged"),
            }
        }
        let mut dec = codec.clone();
        let fed = feed(&mut dec, &stream, &how, codec.max_buffered(), false);
        prop_assert_eq!(fed.got, want);
        prop_assert_eq!(fed.left, 0);
        prop_assert!(!dec.is_discarding());
    }

    /// Over-long lines give one `LineTooLong` each, whatever their length
    /// and however they are split, and the next line decodes normally.
    fn lines_too_long_reported_once_then_resync(
        max in 0usize..10,
        items in prop::collection::vec(
            (any::<bool>(), bytes(30, line_byte), any::<bool>()),
            1..8,
        ),
        how in drain_strategy(),
    ) {
        tick();
        let mut stream = Vec::new();
        let mut want = Vec::new();
        for (long, body, crlf) in &items {
            let mut line: Vec<u8> = body.iter().copied().filter(|&b| b != b'\n').collect();
            if *long {
                if line.ends_with(b"\r") {
                    line.push(b'y'); // else a LF terminator would make it CRLF
                }
                while line.len() <= max {
                    line.push(b'y');
                }
                want.push(Err(LineTooLong { max }));
            } else {
                line.truncate(max);
                while !crlf && line.ends_with(b"\r") {
                    line.pop();
                }
                want.push(Ok(line.clone()));
            }
            stream.extend_from_slice(&line);
            stream.extend_from_slice(if *crlf { b"\r\n" } else { b"\n" });
        }
        let mut dec = LineCodec::new(max);
        let bound = dec.max_buffered();
        let fed = feed(&mut dec, &stream, &how, bound, false);
        prop_assert_eq!(fed.got, want);
        prop_assert_eq!(fed.left, 0);
    }

    /// Any bytes at all, split anyhow: no panic, and the output is what the
    /// spec says.
    fn lines_any_bytes_match_the_spec(
        max in 0usize..10,
        stream in bytes(64, line_byte),
        how in drain_strategy(),
    ) {
        tick();
        let mut dec = LineCodec::new(max);
        let bound = dec.max_buffered();
        let fed = feed(&mut dec, &stream, &how, bound, false);
        prop_assert_eq!(fed.got, line_model(&stream, max));
    }
}

// ---------------------------------------------------------------- length-prefixed

/// The spec of `LengthPrefixedCodec`: frames in order until a header
/// announces more than `max`, which is an error and the end.
fn length_model(stream: &[u8], max: usize) -> Got<FrameTooLarge> {
    let mut out = Vec::new();
    let mut rest = stream;
    while rest.len() >= 4 {
        let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        if len > max {
            out.push(Err(FrameTooLarge { len, max }));
            break;
        }
        if rest.len() - 4 < len {
            break;
        }
        out.push(Ok(rest[4..4 + len].to_vec()));
        rest = &rest[4 + len..];
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: LENGTH_CASES, ..ProptestConfig::default() })]

    /// Frames of any bytes up to the maximum come back unchanged however the
    /// stream is split; longer ones are refused by the encoder.
    fn length_prefixed_round_trip_any_split(
        max in 0usize..40,
        frames in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..44), 0..8),
        how in drain_strategy(),
    ) {
        tick();
        let codec = LengthPrefixedCodec::new(max);
        let mut stream = Vec::new();
        let mut want = Vec::new();
        for frame in &frames {
            let before = stream.len();
            match codec.encode(frame, &mut stream) {
                Ok(()) => {
                    prop_assert!(frame.len() <= max);
                    prop_assert_eq!(&stream[before..before + 4], (frame.len() as u32).to_be_bytes());
                    want.push(Ok(frame.clone()));
                }
                Err(e) => {
                    prop_assert_eq!(e, EncodeError::TooLong { len: frame.len(), max });
                    prop_assert_eq!(stream.len(), before);
                }
            }
        }
        let mut dec = codec.clone();
        let fed = feed(&mut dec, &stream, &how, codec.max_buffered(), false);
        prop_assert_eq!(fed.got, want);
        prop_assert_eq!(fed.left, 0);
        prop_assert!(!dec.has_failed());
    }

    /// A header over the maximum gives `FrameTooLarge` in the very chunk
    /// that completes the header (the payload is never waited for), after
    /// the frames before it; then the decoder yields nothing more.
    fn length_prefixed_oversize_is_fatal(
        max in 0usize..40,
        frames in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..5),
        over in prop_oneof![1u64..4, 4u64..=(u32::MAX as u64)],
        tail in prop::collection::vec(any::<u8>(), 0..50),
        how in drain_strategy(),
    ) {
        tick();
        let codec = LengthPrefixedCodec::new(max);
        let mut stream = Vec::new();
        let mut want = Vec::new();
        for frame in &frames {
            if codec.encode(frame, &mut stream).is_ok() {
                want.push(Ok(frame.clone()));
            }
        }
        let len = (max as u64 + over).min(u32::MAX as u64) as usize;
        prop_assume!(len > max);
        stream.extend_from_slice(&(len as u32).to_be_bytes());
        let header_end = stream.len();
        stream.extend_from_slice(&tail);
        want.push(Err(FrameTooLarge { len, max }));

        let mut dec = codec.clone();
        let fed = feed(&mut dec, &stream, &how, codec.max_buffered(), true);
        prop_assert_eq!(fed.got, want);
        let (fed_to, chunk_start) = fed.first_error_at.unwrap();
        prop_assert!(chunk_start < header_end && header_end <= fed_to);
        prop_assert!(dec.has_failed());
        prop_assert_eq!(dec.decode(&stream), (0, None));
    }

    /// Any bytes at all (mostly small headers), split anyhow: no panic, and
    /// the output is what the spec says.
    fn length_prefixed_any_bytes_match_the_spec(
        max in 0usize..16,
        stream in bytes(64, header_byte),
        how in drain_strategy(),
    ) {
        tick();
        let mut dec = LengthPrefixedCodec::new(max);
        let bound = dec.max_buffered();
        let fed = feed(&mut dec, &stream, &how, bound, true);
        prop_assert_eq!(fed.got, length_model(&stream, max));
    }
}

// ---------------------------------------------------------------- the tests

#[test]
fn lines_round_trip_any_split_counted() {
    counted(
        "lines_round_trip_any_split",
        LINE_CASES,
        lines_round_trip_any_split,
    );
}

#[test]
fn lines_too_long_reported_once_then_resync_counted() {
    counted(
        "lines_too_long_reported_once_then_resync",
        LINE_CASES,
        lines_too_long_reported_once_then_resync,
    );
}

#[test]
fn lines_any_bytes_match_the_spec_counted() {
    counted(
        "lines_any_bytes_match_the_spec",
        LINE_CASES,
        lines_any_bytes_match_the_spec,
    );
}

#[test]
fn length_prefixed_round_trip_any_split_counted() {
    counted(
        "length_prefixed_round_trip_any_split",
        LENGTH_CASES,
        length_prefixed_round_trip_any_split,
    );
}

#[test]
fn length_prefixed_oversize_is_fatal_counted() {
    counted(
        "length_prefixed_oversize_is_fatal",
        LENGTH_CASES,
        length_prefixed_oversize_is_fatal,
    );
}

#[test]
fn length_prefixed_any_bytes_match_the_spec_counted() {
    counted(
        "length_prefixed_any_bytes_match_the_spec",
        LENGTH_CASES,
        length_prefixed_any_bytes_match_the_spec,
    );
}
