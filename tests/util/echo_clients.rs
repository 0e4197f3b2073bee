//! Helpers of the echo tests, shared by the feature files that
//! took them over.

#![allow(dead_code)]

#[allow(unused_imports)]
use crate::util::*;
#[allow(unused_imports)]
use mio_selectors::{Config, Error};
#[allow(unused_imports)]
use std::io::Write;
#[allow(unused_imports)]
use std::net::{Shutdown, SocketAddr, TcpStream};
#[allow(unused_imports)]
use std::sync::{mpsc, Arc};
#[allow(unused_imports)]
use std::time::{Duration, Instant};
#[allow(unused_imports)]
use std::{io, thread};

#[allow(unused_imports)]
use crate::util::{self, fault};

/// The watchdog limit of each test.
pub const TEST_LIMIT: Duration = Duration::from_secs(45);

/// Deadline for the clients of one test (shorter than the watchdog, so that
/// a stuck client reports what it was doing).
pub const CLIENT_TIME: Duration = Duration::from_secs(30);

pub const KIB: usize = 1024;

pub const MIB: usize = 1024 * KIB;

/// Runs a test under the watchdog, holding the descriptor lock shared.
pub fn run(test: impl FnOnce() + Send + 'static) {
    let _fds = fds_shared();
    with_deadline(TEST_LIMIT, test);
}

/// A call the writer of [`echo_stream`] makes before writing the piece
/// that starts at the given offset (to wait for something, say).
pub type Pause = Option<(usize, Box<dyn FnOnce() -> Result<(), String> + Send>)>;

/// Streams `data` through the echo server: a writer thread sends it in
/// `pieces` (making the `pause` call on the way, if given), then
/// half-closes; this thread reads the echo back in random-sized reads,
/// checks every byte, and then expects EOF: the server closes once it has
/// sent everything.
pub fn echo_stream(
    stream: TcpStream,
    data: Arc<Vec<u8>>,
    pieces: Vec<usize>,
    pause: Pause,
    rng: &mut Rng,
    deadline: Instant,
) -> Result<(), String> {
    assert_eq!(pieces.iter().sum::<usize>(), data.len());
    let w = stream.try_clone().map_err(|e| format!("clone: {e}"))?;
    let wdata = data.clone();
    let writer = thread::spawn(move || -> Result<(), String> {
        let mut pause = pause;
        let mut at = 0;
        let result = (|| {
            for len in pieces {
                if pause.as_ref().is_some_and(|(pause_at, _)| *pause_at == at) {
                    (pause.take().unwrap().1)()?;
                }
                write_all_deadline(&w, &wdata[at..at + len], deadline)
                    .map_err(|e| format!("write at offset {at}: {e}"))?;
                at += len;
            }
            shutdown_write(&w).map_err(|e| format!("shutdown(Write): {e}"))
        })();
        if result.is_err() {
            let _ = w.shutdown(Shutdown::Both); // unblocks the reader
        }
        result
    });
    let read = (|| {
        let mut buf = vec![0; 32 * KIB];
        let mut at = 0;
        while at < data.len() {
            let n = rng.range(1, buf.len()).min(data.len() - at);
            read_exact_deadline(&stream, &mut buf[..n], deadline)
                .map_err(|e| format!("read at offset {at} of {}: {e}", data.len()))?;
            check_bytes(
                &format!("echo at offset {at}"),
                &buf[..n],
                &data[at..at + n],
            )?;
            at += n;
        }
        expect_eof(&stream, deadline).map_err(|e| format!("after {at} bytes: {e}"))
    })();
    if read.is_err() {
        let _ = stream.shutdown(Shutdown::Both); // unblocks the writer
    }
    let written = writer
        .join()
        .unwrap_or_else(|_| Err("writer panicked".into()));
    read.and(written)
}
