//! Helpers of the reliability tests, shared by the feature files that
//! took them over.

#![allow(dead_code)]

#[allow(unused_imports)]
use crate::util::{Opts, Pattern, Rng};
#[allow(unused_imports)]
use fault::load::{Mix, Spec};
#[allow(unused_imports)]
use fault::{figures, load, Fault, LineClient, Plan, Proxy, Router, Split, STEP};
#[allow(unused_imports)]
use mio_selectors::Config;
#[allow(unused_imports)]
use std::collections::HashMap;
#[allow(unused_imports)]
use std::io::{Read, Write};
#[allow(unused_imports)]
use std::net::{SocketAddr, TcpStream};
#[allow(unused_imports)]
use std::sync::atomic::Ordering::SeqCst;
#[allow(unused_imports)]
use std::sync::{Arc, Mutex};
#[allow(unused_imports)]
use std::time::{Duration, Instant};
#[allow(unused_imports)]
use std::{io, thread};

#[allow(unused_imports)]
use crate::util::{self, fault};

/// Runs a test on its own thread with an overall limit, counting panics.
pub fn run(limit: Duration, test: impl FnOnce() + Send + 'static) {
    fault::count_panics();
    util::with_deadline(limit, test);
}

/// Sends `msg` and reads its echo back, within `STEP`.
pub fn roundtrip(s: &TcpStream, msg: &[u8]) -> io::Result<()> {
    let deadline = Instant::now() + STEP;
    util::write_all_deadline(s, msg, deadline)?;
    let mut back = vec![0; msg.len()];
    util::read_exact_deadline(s, &mut back, deadline)?;
    util::check_bytes("echo", &back, msg).map_err(io::Error::other)
}
