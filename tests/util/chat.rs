//! A blocking chat line client whose every read and write has a deadline,
//! shared by the chat tests (`tests/chat.rs`) and the reliability
//! suite (`tests/util/fault.rs`, `tests/stress/`, `tests/bad_input.rs`).
//!
//! Nothing sleeps: every read waits on the socket with a timeout, and a
//! client that gets nothing in time fails its test instead of hanging it.

use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::{connect, is_timeout, write_all_deadline};

/// The longest any one expected step (a line, an EOF, a write) may take.
pub const STEP: Duration = Duration::from_secs(10);

/// Why a read ended without what was wanted.
#[derive(Debug)]
pub enum End {
    Eof,
    Timeout,
    Io(io::Error),
}

/// A blocking line client whose every read and write has a deadline.
pub struct LineClient {
    pub stream: TcpStream,
    /// Its address, which is its chat name until it takes a nick.
    pub name: String,
    buf: Vec<u8>,
    start: usize,
    /// If set, it gives up on anything after this, whatever the step.
    deadline: Option<Instant>,
}

impl LineClient {
    /// Connects, and reads nothing.
    pub fn connect(addr: SocketAddr) -> LineClient {
        LineClient::wrap(connect(addr))
    }

    pub fn wrap(stream: TcpStream) -> LineClient {
        let name = stream.local_addr().unwrap().to_string();
        LineClient {
            stream,
            name,
            buf: Vec::new(),
            start: 0,
            deadline: None,
        }
    }

    /// From now on it gives up on anything after `limit` from now.
    pub fn give_up_after(mut self, limit: Duration) -> LineClient {
        self.deadline = Some(Instant::now() + limit);
        self
    }

    /// Connects and reads the welcome, which must name it: its address,
    /// or with `--redis` its address and `#N` when a client of another
    /// instance has the same address (two sockets to different servers may
    /// get the same local port), which then becomes its `name`.
    pub fn join(addr: SocketAddr) -> LineClient {
        let mut c = LineClient::connect(addr);
        let welcome = c.line();
        let named = welcome
            .strip_prefix("* welcome ")
            .and_then(|w| w.strip_suffix("! /help lists the commands"))
            .filter(|n| {
                *n == c.name
                    || n.strip_prefix(c.name.as_str())
                        .and_then(|rest| rest.strip_prefix('#'))
                        .is_some_and(|k| k.parse::<u32>().is_ok())
            });
        match named {
            Some(name) => c.name = name.to_string(),
            None => panic!("{}: first line {welcome:?} is not its welcome", c.name),
        }
        c
    }

    /// The end of the next step: [`STEP`] from now, or the deadline if sooner.
    fn step(&self) -> Instant {
        let step = Instant::now() + STEP;
        self.deadline.map_or(step, |deadline| step.min(deadline))
    }

    pub fn send(&mut self, data: impl AsRef<[u8]>) {
        let until = self.step();
        write_all_deadline(&self.stream, data.as_ref(), until)
            .unwrap_or_else(|e| panic!("{}: write: {e}", self.name));
    }

    /// Like `send`, but a failure is returned, not a panic.
    pub fn try_send(&mut self, data: impl AsRef<[u8]>) -> io::Result<()> {
        write_all_deadline(&self.stream, data.as_ref(), self.step())
    }

    /// Reads more into `buf`: `Ok(n)` bytes, or why not.
    fn fill(&mut self, until: Instant) -> Result<usize, End> {
        if self.start > 0 && self.start * 2 >= self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(End::Timeout);
            }
            self.stream.set_read_timeout(Some(left)).unwrap();
            let len = self.buf.len();
            self.buf.resize(len + 64 * 1024, 0);
            let result = (&self.stream).read(&mut self.buf[len..]);
            self.buf.truncate(len + *result.as_ref().unwrap_or(&0));
            match result {
                Ok(0) => return Err(End::Eof),
                Ok(n) => return Ok(n),
                Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(End::Io(e)),
            }
        }
    }

    /// The next line without its `\n`, as bytes.
    pub fn raw_line_until(&mut self, until: Instant) -> Result<Vec<u8>, End> {
        loop {
            if let Some(i) = self.buf[self.start..].iter().position(|&b| b == b'\n') {
                let line = self.buf[self.start..self.start + i].to_vec();
                self.start += i + 1;
                return Ok(line);
            }
            self.fill(until)?;
        }
    }

    /// The next line, checked against the framing rules: UTF-8, and either
    /// a notice (`* `) or a relayed line (`<`).
    pub fn line_until(&mut self, until: Instant) -> Result<String, End> {
        let raw = self.raw_line_until(until)?;
        let line = String::from_utf8(raw)
            .unwrap_or_else(|e| panic!("{}: a line that is not UTF-8: {e}", self.name));
        assert!(
            line.starts_with("* ") || line.starts_with('<'),
            "{}: a line that is neither a notice nor relayed: {line:?}",
            self.name
        );
        Ok(line)
    }

    pub fn line(&mut self) -> String {
        let until = self.step();
        self.line_until(until)
            .unwrap_or_else(|e| panic!("{}: no line: {e:?}", self.name))
    }

    pub fn expect(&mut self, want: &str) {
        let got = self.line();
        assert_eq!(got, want, "{}: unexpected line", self.name);
    }

    /// `* NAME left`, with or without a reason.
    pub fn expect_left(&mut self, name: &str) {
        let got = self.line();
        let rest = got.strip_prefix(&format!("* {name} left"));
        assert!(
            rest.is_some_and(|r| r.is_empty() || (r.starts_with(" (") && r.ends_with(')'))),
            "{}: expected `* {name} left`, got {got:?}",
            self.name
        );
    }

    /// Exactly `n` more bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let until = self.step();
        while self.buf.len() - self.start < n {
            if let Err(e) = self.fill(until) {
                let got = String::from_utf8_lossy(&self.buf[self.start..]).into_owned();
                panic!("{}: {e:?} after {got:?}", self.name);
            }
        }
        let out = self.buf[self.start..self.start + n].to_vec();
        self.start += n;
        out
    }

    /// Everything up to a clean EOF (the server's FIN). A reset fails: a
    /// graceful close must not be told from a reset by luck.
    pub fn until_eof(&mut self) -> Vec<u8> {
        match self.until_end() {
            (rest, None) => rest,
            (rest, Some(e)) => panic!(
                "{}: expected EOF, got {e} after {:?}",
                self.name,
                String::from_utf8_lossy(&rest)
            ),
        }
    }

    /// Everything up to the end of the stream, and how it ended: `None`
    /// for EOF, `Some(error)` for a reset (`ECONNRESET`). Any other end
    /// (a timeout) fails.
    pub fn until_end(&mut self) -> (Vec<u8>, Option<io::Error>) {
        let until = self.step();
        let end = loop {
            match self.fill(until) {
                Ok(_) => {}
                Err(End::Eof) => break None,
                Err(End::Io(e)) if e.kind() == io::ErrorKind::ConnectionReset => break Some(e),
                Err(e) => panic!("{}: no EOF: {e:?}", self.name),
            }
        };
        let rest = self.buf[self.start..].to_vec();
        self.start = self.buf.len();
        (rest, end)
    }

    /// A clean EOF (FIN) with nothing before it; a reset fails.
    pub fn expect_eof(&mut self) {
        let rest = self.until_eof();
        assert!(
            rest.is_empty(),
            "{}: bytes before EOF: {:?}",
            self.name,
            String::from_utf8_lossy(&rest)
        );
    }

    /// A reset (the server dropped what it had not read or sent), with
    /// nothing before it; a clean EOF fails.
    pub fn expect_reset(&mut self) {
        let (rest, end) = self.until_end();
        assert!(
            end.is_some(),
            "{}: expected a reset, got a clean EOF",
            self.name
        );
        assert!(
            rest.is_empty(),
            "{}: bytes before the reset: {:?}",
            self.name,
            String::from_utf8_lossy(&rest)
        );
    }

    /// The raw bytes (lines with their `\n`) before the first line for
    /// which `stop` holds; that line is consumed too.
    pub fn bytes_before(&mut self, stop: impl Fn(&[u8]) -> bool) -> Vec<u8> {
        let until = self.step();
        let mut out = Vec::new();
        loop {
            let line = self.raw_line_until(until).unwrap_or_else(|e| {
                panic!(
                    "{}: {e:?} after {:?}",
                    self.name,
                    String::from_utf8_lossy(&out)
                )
            });
            if stop(&line) {
                return out;
            }
            out.extend_from_slice(&line);
            out.push(b'\n');
        }
    }

    /// Takes `nick`, checking the answer.
    pub fn nick(&mut self, nick: &str) {
        self.send(format!("/nick {nick}\n"));
        self.expect(&format!("* you are now {nick}"));
        self.name = nick.to_string();
    }

    /// Reads until the answer to a `/who` sent now: proves that everything
    /// sent before it was handled. Returns the lines before the answer.
    pub fn sync(&mut self) -> Vec<String> {
        self.send("/who\n");
        let mut before = Vec::new();
        loop {
            let line = self.line();
            if line.starts_with("* online: ") {
                return before;
            }
            before.push(line);
        }
    }
}

/// What one client read of the room's joins and leaves ("Notice storms"):
/// individual `* NAME joined` / `* NAME left ...` lines and
/// `* N joined, M left` sums, in the order read.
#[derive(Default, Debug)]
pub struct NoticeTally {
    pub joins: usize,
    pub leaves: usize,
    pub individual: usize,
    pub summaries: usize,
    /// Every join or leave line counted, as read.
    pub lines: Vec<String>,
}

impl NoticeTally {
    /// Counts `line` if it is a join, a leave or a sum of them.
    pub fn add(&mut self, line: &str) {
        let Some(text) = line.strip_prefix("* ") else {
            return;
        };
        let mut summed = (0, 0);
        let is_sum = text.split(", ").all(|part| {
            let mut words = part.split(' ');
            match (
                words.next().map(str::parse::<usize>),
                words.next(),
                words.next(),
            ) {
                (Some(Ok(n)), Some("joined"), None) => summed.0 += n,
                (Some(Ok(n)), Some("left"), None) => summed.1 += n,
                _ => return false,
            }
            true
        });
        if is_sum {
            self.joins += summed.0;
            self.leaves += summed.1;
            self.summaries += 1;
        } else if text.ends_with(" joined") {
            self.joins += 1;
            self.individual += 1;
        } else if text.contains(" left") {
            self.leaves += 1;
            self.individual += 1;
        } else {
            return;
        }
        self.lines.push(line.to_string());
    }

    /// Reads `c` until `done` holds of the tally, by `until`.
    pub fn read_until(&mut self, c: &mut LineClient, until: Instant, done: impl Fn(&Self) -> bool) {
        while !done(self) {
            match c.line_until(until) {
                Ok(line) => self.add(&line),
                Err(e) => panic!("{}: {e:?} with {self:?}", c.name),
            }
        }
    }
}
