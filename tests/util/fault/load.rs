//! A load client on one thread: thousands of non-blocking connections on
//! one mio `Poll`, each sending its own byte stream and checking every
//! byte that comes back.
//!
//! Each connection's stream is an 8-byte header (its seed, little-endian)
//! followed by [`Pattern`](crate::util::Pattern)`(seed)`, so the byte at
//! any offset is known to both ends without storing it, and a byte that
//! reached the wrong connection shows at once. A connection runs rounds:
//! send a message (in random pieces, or one byte per write), read its echo
//! whole, then the next; after the last it half-closes and expects EOF.
//! Some are broken on purpose ([`Beh`]).

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use crate::util::{Pattern, Rng};

/// Bytes of a stream's header: the seed.
pub const HEADER: usize = 8;
/// A seed with this bit asks the server ([`Router`](super::Router)) to
/// abort the connection when byte [`abort_at`] arrives.
pub const ABORT_FLAG: u64 = 1 << 63;

/// The offset at which a seed with [`ABORT_FLAG`] is aborted (bits 32..48).
pub fn abort_at(seed: u64) -> u64 {
    (seed >> 32) & 0xFFFF
}

/// The stream of `seed` from `offset` on: header, then its pattern.
pub fn fill(seed: u64, offset: u64, buf: &mut [u8]) {
    let header = seed.to_le_bytes();
    let mut i = 0;
    let mut k = offset;
    while i < buf.len() && (k as usize) < HEADER {
        buf[i] = header[k as usize];
        i += 1;
        k += 1;
    }
    if i < buf.len() {
        Pattern(seed).fill(k - HEADER as u64, &mut buf[i..]);
    }
}

/// What a connection does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Beh {
    /// Every round echoed whole, then half-close and EOF.
    Clean,
    /// As `Clean`, one byte per write.
    OneByte,
    /// Resets (`SO_LINGER` 0) partway through its last message.
    ResetMid,
    /// Half-closes partway through its last message: what it sent must
    /// come back whole, then EOF.
    HalfCloseMid,
    /// Asks the server to abort it at a marker partway through its only
    /// message: what comes back must be a prefix of what it sent.
    Aborted,
}

impl Beh {
    /// Whether everything it sends must come back.
    pub fn is_lossless(self) -> bool {
        matches!(self, Beh::Clean | Beh::OneByte | Beh::HalfCloseMid)
    }
}

/// Weights of the behaviours of new connections.
#[derive(Clone, Copy, Debug)]
pub struct Mix {
    pub clean: usize,
    pub one_byte: usize,
    pub reset_mid: usize,
    pub half_close_mid: usize,
    pub aborted: usize,
}

impl Mix {
    pub const CLEAN: Mix = Mix {
        clean: 1,
        one_byte: 0,
        reset_mid: 0,
        half_close_mid: 0,
        aborted: 0,
    };

    fn pick(&self, rng: &mut Rng) -> Beh {
        let table = [
            (self.clean, Beh::Clean),
            (self.one_byte, Beh::OneByte),
            (self.reset_mid, Beh::ResetMid),
            (self.half_close_mid, Beh::HalfCloseMid),
            (self.aborted, Beh::Aborted),
        ];
        let total: usize = table.iter().map(|t| t.0).sum();
        let mut x = rng.below(total.max(1));
        for (w, beh) in table {
            if x < w {
                return beh;
            }
            x -= w;
        }
        Beh::Clean
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct Spec {
    pub target: SocketAddr,
    pub seed: u64,
    /// Connections open at once.
    pub conns: usize,
    /// Rounds per connection (inclusive range; at least 2 with `hold`).
    pub rounds: (usize, usize),
    /// Bytes per message (inclusive range).
    pub msg: (usize, usize),
    /// Connections whose first round has not completed, at most.
    pub max_connecting: usize,
    /// Behaviour of the first `conns` connections.
    pub first: Mix,
    /// Behaviour of replacements.
    pub replace: Mix,
    /// Once every first connection has finished its first round, pause
    /// them all and call `on_hold` with how many are open: the moment all
    /// `conns` are held at once.
    pub hold: bool,
    /// Replace each connection that finishes by a new one until then.
    pub replace_until: Option<Instant>,
    /// Connections opened in all, at most.
    pub max_total: usize,
    /// Give up (with an error) after this.
    pub deadline: Instant,
}

/// What happened.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub opened: usize,
    pub finished: usize,
    pub clean: usize,
    pub one_byte: usize,
    pub reset_mid: usize,
    pub half_close_mid: usize,
    pub aborted: usize,
    pub bytes_sent: u64,
    /// Bytes received and compared with what was sent.
    pub bytes_checked: u64,
    /// Bytes sent on connections that must lose nothing and not echoed.
    pub lost: u64,
    /// Connections open at the hold.
    pub held: usize,
    pub max_open: usize,
    pub errors: usize,
    pub first_errors: Vec<String>,
    pub elapsed: Duration,
}

impl Report {
    /// Deliberate faults: resets, half-closes, server aborts, 1-byte writers.
    pub fn faults(&self) -> usize {
        self.reset_mid + self.half_close_mid + self.aborted + self.one_byte
    }

    fn error(&mut self, e: String) {
        self.errors += 1;
        if self.first_errors.len() < 20 {
            self.first_errors.push(e);
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum St {
    Connecting,
    /// Sending and reading the current message.
    Round,
    /// First round done; waiting for the hold to pass.
    Held,
    /// Half-closed: reading the rest, then EOF.
    Closing,
}

struct Conn {
    sock: TcpStream,
    gen: u32,
    seed: u64,
    beh: Beh,
    rng: Rng,
    st: St,
    /// One of the first `conns` (the ones the hold waits for).
    initial: bool,
    /// Its first round has not completed (it counts as connecting).
    fresh: bool,
    rounds_left: usize,
    sent: u64,
    recvd: u64,
    round_end: u64,
    /// Where to break, for `ResetMid` and `HalfCloseMid` in the last round.
    break_at: Option<u64>,
    writable: bool,
}

enum Outcome {
    /// Ended as its behaviour says.
    Done,
    Failed(String),
}

struct Engine<'a> {
    spec: &'a Spec,
    poll: Poll,
    conns: Slab<Conn>,
    rng: Rng,
    next_gen: u32,
    report: Report,
    first_opened: usize,
    connecting: usize,
    held_waiting: usize,
    released: bool,
    scratch: Vec<u8>,
    want: Vec<u8>,
}

fn is_reset(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
    )
}

fn token(key: usize, gen: u32) -> Token {
    Token(key | ((gen as usize) << 32))
}

/// Runs `spec`; `on_hold` is called once at the hold (if `spec.hold`) with
/// the number of connections open, and may fail the run.
pub fn run(spec: &Spec, on_hold: &mut dyn FnMut(usize) -> Result<(), String>) -> Report {
    let start = Instant::now();
    let mut e = Engine {
        spec,
        poll: Poll::new().expect("poll"),
        conns: Slab::with_capacity(spec.conns),
        rng: Rng::new(spec.seed),
        next_gen: 1,
        report: Report::default(),
        first_opened: 0,
        connecting: 0,
        held_waiting: 0,
        released: !spec.hold,
        scratch: vec![0; 64 * 1024],
        want: vec![0; 64 * 1024],
    };
    let mut events = Events::with_capacity(4096);
    loop {
        e.open_more();
        if e.conns.is_empty() && !e.may_open() {
            break;
        }
        if Instant::now() >= spec.deadline {
            // What the stuck connections sent and did not get back is lost,
            // not merely late: count it, so the figure cannot hide it.
            let open = e.conns.len();
            let stuck: u64 = e
                .conns
                .iter()
                .filter(|(_, c)| c.beh.is_lossless())
                .map(|(_, c)| c.sent - c.recvd)
                .sum();
            e.report.lost += stuck;
            e.report.error(format!(
                "deadline passed with {open} connections open, {stuck} bytes not echoed"
            ));
            break;
        }
        if let Err(err) = e.poll.poll(&mut events, Some(Duration::from_millis(100))) {
            if err.kind() != io::ErrorKind::Interrupted {
                e.report.error(format!("poll: {err}"));
                break;
            }
        }
        for ev in events.iter() {
            let key = ev.token().0 & 0xFFFF_FFFF;
            let gen = (ev.token().0 >> 32) as u32;
            if e.conns.get(key).is_none_or(|c| c.gen != gen) {
                continue; // an event for a connection already gone
            }
            if ev.is_writable() || ev.is_write_closed() || ev.is_error() {
                e.conns[key].writable = true;
            }
            e.drive(key);
        }
        let all_held = e.first_opened == spec.conns && e.held_waiting == e.conns.len();
        if !e.released && all_held && !e.conns.is_empty() {
            e.report.held = e.conns.len();
            if let Err(err) = on_hold(e.conns.len()) {
                e.report.error(format!("at the hold: {err}"));
            }
            e.released = true;
            let keys: Vec<usize> = e.conns.iter().map(|(k, _)| k).collect();
            for key in keys {
                if e.conns[key].st == St::Held {
                    e.next_round(key);
                    e.drive(key);
                }
            }
        }
    }
    for mut c in e.conns.drain() {
        let _ = e.poll.registry().deregister(&mut c.sock);
    }
    e.report.elapsed = start.elapsed();
    e.report
}

impl Engine<'_> {
    fn may_open(&self) -> bool {
        let s = self.spec;
        if self.report.opened >= s.max_total {
            return false;
        }
        if self.first_opened < s.conns {
            return true;
        }
        self.released
            && self.conns.len() < s.conns
            && s.replace_until.is_some_and(|t| Instant::now() < t)
    }

    fn open_more(&mut self) {
        while self.may_open()
            && self.connecting < self.spec.max_connecting
            && self.conns.len() < self.spec.conns
        {
            let initial = self.first_opened < self.spec.conns;
            self.open(initial);
        }
    }

    fn open(&mut self, initial: bool) {
        let s = self.spec;
        let mix = if initial { s.first } else { s.replace };
        let beh = mix.pick(&mut self.rng);
        let mut seed = self.rng.next_u64() & !ABORT_FLAG & !(0xFFFF_u64 << 32);
        let mut rounds = self.rng.range(s.rounds.0, s.rounds.1);
        if beh == Beh::Aborted {
            rounds = 1;
        }
        let rng = Rng::new(seed ^ 0x5EED);
        self.report.opened += 1;
        if initial {
            self.first_opened += 1;
        }
        let mut sock = match TcpStream::connect(s.target) {
            Ok(sock) => sock,
            Err(err) => {
                self.report.error(format!("connect: {err}"));
                return;
            }
        };
        let gen = self.next_gen;
        self.next_gen = self.next_gen.wrapping_add(1).max(1);
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(err) = self
            .poll
            .registry()
            .register(&mut sock, token(key, gen), interest)
        {
            self.report.error(format!("register: {err}"));
            return;
        }
        let _ = sock.set_nodelay(true);
        let mut conn = Conn {
            sock,
            gen,
            seed,
            beh,
            rng,
            st: St::Connecting,
            initial,
            fresh: true,
            rounds_left: rounds,
            sent: 0,
            recvd: 0,
            round_end: 0,
            break_at: None,
            writable: false,
        };
        // The first message carries the header.
        let msg = conn.rng.range(s.msg.0, s.msg.1) as u64;
        conn.round_end = HEADER as u64 + msg;
        if beh == Beh::Aborted {
            let at = conn
                .rng
                .range(HEADER, conn.round_end as usize - 1)
                .min(0xFFFF) as u64;
            seed |= ABORT_FLAG | (at << 32);
            conn.seed = seed;
        }
        entry.insert(conn);
        self.connecting += 1;
        self.report.max_open = self.report.max_open.max(self.conns.len());
    }

    /// Does whatever `key` can do now: complete its connect, read, write.
    fn drive(&mut self, key: usize) {
        if self.conns[key].st == St::Connecting {
            let c = &mut self.conns[key];
            match c.sock.take_error() {
                Ok(Some(err)) | Err(err) => {
                    return self.end(key, Outcome::Failed(format!("connect: {err}")))
                }
                Ok(None) => {}
            }
            match c.sock.peer_addr() {
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::NotConnected => return,
                Err(err) => return self.end(key, Outcome::Failed(format!("connect: {err}"))),
            }
            c.st = St::Round;
            c.writable = true;
            self.setup_break(key);
        }
        if let Some(outcome) = self.read(key) {
            return self.end(key, outcome);
        }
        if let Some(outcome) = self.write(key) {
            self.end(key, outcome);
        }
    }

    /// In the last round, `ResetMid` and `HalfCloseMid` pick where to break.
    fn setup_break(&mut self, key: usize) {
        let c = &mut self.conns[key];
        if c.rounds_left == 1 && matches!(c.beh, Beh::ResetMid | Beh::HalfCloseMid) {
            let lo = if c.sent == 0 { HEADER as u64 } else { c.sent };
            let at = lo + c.rng.below((c.round_end - lo) as usize) as u64;
            c.break_at = Some(at);
        }
    }

    fn write(&mut self, key: usize) -> Option<Outcome> {
        let c = &mut self.conns[key];
        while c.st == St::Round && c.writable {
            if c.break_at == Some(c.sent) {
                c.break_at = None;
                match c.beh {
                    Beh::ResetMid => {
                        let _ = socket2::SockRef::from(&c.sock).set_linger(Some(Duration::ZERO));
                        return Some(Outcome::Done);
                    }
                    _ => {
                        // HalfCloseMid: what was sent must all come back.
                        let _ = c.sock.shutdown(Shutdown::Write);
                        c.round_end = c.sent;
                        c.st = St::Closing;
                        return self.check_done(key);
                    }
                }
            }
            let limit = c.break_at.unwrap_or(c.round_end);
            if c.sent >= limit {
                break;
            }
            let remaining = (limit - c.sent) as usize;
            let piece = match c.beh {
                Beh::OneByte => 1,
                _ if remaining > 1 && c.rng.below(4) == 0 => c.rng.range(1, remaining - 1),
                _ => remaining,
            }
            .min(self.scratch.len());
            fill(c.seed, c.sent, &mut self.scratch[..piece]);
            match c.sock.write(&self.scratch[..piece]) {
                Ok(n) => {
                    c.sent += n as u64;
                    self.report.bytes_sent += n as u64;
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => c.writable = false,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                // The server aborted it, as asked, before it had sent all.
                Err(err) if c.beh == Beh::Aborted && is_reset(&err) => return Some(Outcome::Done),
                Err(err) => return Some(self.failure(key, format!("write: {err}"))),
            }
        }
        None
    }

    fn read(&mut self, key: usize) -> Option<Outcome> {
        loop {
            let c = &mut self.conns[key];
            if c.st == St::Connecting {
                return None;
            }
            match c.sock.read(&mut self.scratch) {
                Ok(0) => {
                    if c.st == St::Closing && c.recvd == c.sent {
                        return Some(Outcome::Done);
                    }
                    if c.beh == Beh::Aborted {
                        return Some(Outcome::Done);
                    }
                    let why = format!("EOF after {} of {} bytes", c.recvd, c.sent);
                    return Some(self.failure(key, why));
                }
                Ok(n) => {
                    let (offset, seed) = (c.recvd, c.seed);
                    if offset + n as u64 > c.sent {
                        let why = format!("{} bytes back, only {} sent", offset + n as u64, c.sent);
                        return Some(self.failure(key, why));
                    }
                    fill(seed, offset, &mut self.want[..n]);
                    if self.scratch[..n] != self.want[..n] {
                        let i = (0..n).find(|&i| self.scratch[i] != self.want[i]).unwrap();
                        let why = format!("byte {} is not the one sent", offset + i as u64);
                        return Some(self.failure(key, why));
                    }
                    let c = &mut self.conns[key];
                    c.recvd += n as u64;
                    self.report.bytes_checked += n as u64;
                    if let Some(outcome) = self.check_done(key) {
                        return Some(outcome);
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return None,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) if c.beh == Beh::Aborted && is_reset(&err) => {
                    return Some(Outcome::Done);
                }
                Err(err) => return Some(self.failure(key, format!("read: {err}"))),
            }
        }
    }

    /// After progress: a finished round starts the next (or the close).
    fn check_done(&mut self, key: usize) -> Option<Outcome> {
        let c = &mut self.conns[key];
        if c.st != St::Round || c.recvd < c.round_end || c.sent < c.round_end {
            return None;
        }
        c.rounds_left -= 1;
        if c.fresh {
            c.fresh = false;
            self.connecting -= 1;
            if c.initial && !self.released {
                c.st = St::Held;
                self.held_waiting += 1;
                return None;
            }
        }
        self.next_round(key);
        None
    }

    fn next_round(&mut self, key: usize) {
        let c = &mut self.conns[key];
        if c.rounds_left == 0 {
            let _ = c.sock.shutdown(Shutdown::Write);
            c.st = St::Closing;
            return;
        }
        let msg = c.rng.range(self.spec.msg.0, self.spec.msg.1) as u64;
        c.round_end = c.sent + msg;
        c.st = St::Round;
        self.setup_break(key);
    }

    fn failure(&mut self, key: usize, why: String) -> Outcome {
        let c = &self.conns[key];
        if c.beh.is_lossless() {
            self.report.lost += c.sent - c.recvd;
        }
        Outcome::Failed(format!("{:?} seed {:#x}: {why}", c.beh, c.seed))
    }

    fn end(&mut self, key: usize, outcome: Outcome) {
        let mut c = self.conns.remove(key);
        let _ = self.poll.registry().deregister(&mut c.sock);
        if c.fresh {
            self.connecting -= 1; // it never finished its first round
        }
        if c.st == St::Held {
            self.held_waiting -= 1;
        }
        self.report.finished += 1;
        match outcome {
            Outcome::Done => {
                let r = &mut self.report;
                match c.beh {
                    Beh::Clean => r.clean += 1,
                    Beh::OneByte => r.one_byte += 1,
                    Beh::ResetMid => r.reset_mid += 1,
                    Beh::HalfCloseMid => r.half_close_mid += 1,
                    Beh::Aborted => r.aborted += 1,
                }
            }
            Outcome::Failed(why) => self.report.error(why),
        }
        drop(c); // closes (with RST after `ResetMid`'s SO_LINGER 0)
    }
}
