//! Helpers of the guarantees tests, shared by the feature files that
//! took them over.

#![allow(dead_code)]

#[allow(unused_imports)]
use crate::util::chat::LineClient;
#[allow(unused_imports)]
use crate::util::{
    connect, expect_eof, expect_reset, key_gen, process, read_exact_deadline, write_all_deadline,
    Opts, Reason, Rng, Server,
};
#[allow(unused_imports)]
use mio_selectors::codec::{for_each_frame, Encoder, LengthPrefixedCodec};
#[allow(unused_imports)]
use mio_selectors::{CloseReason, Config, ConnId, Context, Handler, InBuf, PeerAddr};
#[allow(unused_imports)]
use std::net::{Shutdown, SocketAddr, TcpStream};
#[allow(unused_imports)]
use std::ops::ControlFlow;
#[allow(unused_imports)]
use std::process::Command;
#[allow(unused_imports)]
use std::sync::mpsc;
#[allow(unused_imports)]
use std::sync::mpsc::Sender;
#[allow(unused_imports)]
use std::time::{Duration, Instant};

#[allow(unused_imports)]
use crate::util::{self, fault};

/// The longest any one step may take: generous, since no timing is
/// asserted here, only outcomes.
pub const STEP: Duration = Duration::from_secs(10);

pub fn soon() -> Instant {
    Instant::now() + STEP
}
