//! `load fanout`: one chat room, a fixed total line rate, and an exact
//! account of every delivery (issue 12's benchmark).
//!
//! ```text
//! load fanout ADDR[,ADDR...] --clients K --total-rate R --warmup S --duration S [--sync]
//! ```
//!
//! Open loop: line `n` of a phase is due at `n / R` seconds after the phase
//! starts, from client `n % K` (so the offered load does not depend on K,
//! and two setups with the same R are offered the same lines). Each 64-byte
//! line carries the time it was queued, its sender and the sender's
//! sequence number: `T<20 digits ns> <6 digits sender> <10 digits seq> xxx…`.
//!
//! A chat room keeps each sender's lines in order for every receiver, so
//! each receiver keeps the next sequence number it expects from each
//! sender: an earlier one is a doubled delivery, a later one means the ones
//! in between were lost, and at the end whatever a sender sent beyond what
//! a receiver got is lost too. A line that comes back to its own sender is
//! counted as `echoed`. These counts cover the whole run (warm-up
//! included); deliveries, rate and latency cover the lines sent in the
//! measured window (their latency: receive time minus queue time, on one
//! clock, since sender and receiver are this one process).
//!
//! Beside the latency of every delivery (which, for one line to K - 1
//! receivers written one after another, is mostly how far down that list a
//! receiver is), the latency of each line's *first* delivery isolates the
//! path a line takes before its fan-out starts (through Redis, when
//! federated). Each receiver gets a sender's lines in order, so first
//! deliveries come in sequence order too: the first receipt of a sequence
//! number at or past `first_next[s]` is that line's first delivery.
//!
//! After each phase the sending stops and deliveries drain (until every
//! expected line arrived, 3 s without progress, or 15 s). With `--sync` it
//! pauses after the warm-up and after the window, as `load chat` does.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Poll};

use super::{connect_all, drain, fail, pause, read_in, write_out, Clock, Opts, Samples, CHAT_LINE};

struct Client {
    stream: TcpStream,
    out: Vec<u8>,
    inb: Vec<u8>,
    welcomed: bool,
    dead: bool,
}

struct Fanout {
    clients: Vec<Client>,
    k: usize,
    clock: Clock,
    buf: Vec<u8>,
    total_rate: f64,
    /// Lines sent so far by each client (its next sequence number).
    sent: Vec<u32>,
    /// `next[r * k + s]`: the sequence number receiver `r` expects next from `s`.
    next: Vec<u32>,
    /// The current phase: its start (clock ns) and lines queued in it.
    phase: Option<(u64, u64)>,
    sent_total: u64,
    /// Distinct deliveries, the whole run.
    unique: u64,
    lost_gaps: u64,
    doubled: u64,
    echoed: u64,
    malformed: u64,
    dropped: u64,
    /// Lines queued in `[window.0, window.1)` are the measured ones.
    window: (u64, u64),
    delivered: u64,
    samples: Samples,
    max_ns: u64,
    /// Per sender: the sequence number whose first delivery is still to come.
    first_next: Vec<u32>,
    /// First-delivery latency of each line sent in the window.
    first: Samples,
}

/// Sender, sequence number and queue time of a relayed line
/// `<NAME> T<20 digits> <6 digits> <10 digits> ...`.
fn parse(line: &[u8]) -> Option<(usize, u32, u64)> {
    let at = line.windows(3).position(|w| w == b"> T")? + 3;
    let rest = line.get(at..at + 38)?;
    let num = |b: &[u8]| std::str::from_utf8(b).ok()?.parse::<u64>().ok();
    if rest[20] != b' ' || rest[27] != b' ' {
        return None;
    }
    let t = num(&rest[..20])?;
    let s = num(&rest[21..27])? as usize;
    let seq = u32::try_from(num(&rest[28..38])?).ok()?;
    Some((s, seq, t))
}

impl Fanout {
    fn flush(&mut self, i: usize) {
        let c = &mut self.clients[i];
        if !c.dead && write_out(&c.stream, &mut c.out).is_err() {
            c.dead = true;
            self.dropped += 1;
        }
    }

    fn read(&mut self, r: usize) {
        loop {
            let c = &mut self.clients[r];
            if c.dead {
                return;
            }
            let n = match read_in(&c.stream, &mut self.buf) {
                Ok(Some(n)) => n,
                Ok(None) => return,
                Err(_) => {
                    c.dead = true;
                    self.dropped += 1;
                    return;
                }
            };
            let now = self.clock.ns();
            let buf = std::mem::take(&mut self.buf);
            let mut data = &buf[..n];
            let mut inb = std::mem::take(&mut self.clients[r].inb);
            loop {
                let Some(nl) = data.iter().position(|&b| b == b'\n') else {
                    inb.extend_from_slice(data);
                    break;
                };
                if inb.is_empty() {
                    self.line(r, &data[..nl], now);
                } else {
                    inb.extend_from_slice(&data[..nl]);
                    self.line(r, &inb, now);
                    inb.clear();
                }
                data = &data[nl + 1..];
            }
            self.clients[r].inb = inb;
            self.buf = buf;
            if n < self.buf.len() {
                return;
            }
        }
    }

    /// One line received by client `r` at `now`.
    fn line(&mut self, r: usize, line: &[u8], now: u64) {
        if line.first() != Some(&b'<') {
            if line.starts_with(b"* welcome") {
                self.clients[r].welcomed = true;
            }
            return;
        }
        let Some((s, seq, t)) = parse(line).filter(|&(s, ..)| s < self.k) else {
            self.malformed += 1;
            return;
        };
        if s == r {
            self.echoed += 1;
            return;
        }
        let next = &mut self.next[r * self.k + s];
        if seq < *next {
            self.doubled += 1;
            return;
        }
        self.lost_gaps += u64::from(seq - *next);
        *next = seq + 1;
        self.unique += 1;
        let in_window = (self.window.0..self.window.1).contains(&t);
        if seq >= self.first_next[s] {
            self.first_next[s] = seq + 1;
            if in_window {
                self.first.add(now.saturating_sub(t));
            }
        }
        if in_window {
            self.delivered += 1;
            let ns = now.saturating_sub(t);
            self.max_ns = self.max_ns.max(ns);
            self.samples.add(ns);
        }
    }

    /// Queues every line due by now and writes.
    fn send_due(&mut self) {
        let Some((since, queued)) = self.phase else {
            return;
        };
        let now = self.clock.ns();
        let due = ((now - since) as f64 / 1e9 * self.total_rate).floor() as u64;
        for n in queued..due {
            let i = (n % self.k as u64) as usize;
            let seq = self.sent[i];
            let c = &mut self.clients[i];
            if c.dead {
                continue;
            }
            let start = c.out.len();
            let _ = write!(c.out, "T{now:020} {i:06} {seq:010} ");
            c.out.resize(start + CHAT_LINE - 1, b'x');
            c.out.push(b'\n');
            self.sent[i] += 1;
            self.sent_total += 1;
            self.flush(i);
        }
        self.phase = Some((since, due.max(queued)));
    }

    fn poll_once(&mut self, poll: &mut Poll, events: &mut Events) {
        poll.poll(events, Some(Duration::from_millis(1)))
            .unwrap_or_else(|e| fail(e));
        for ev in events.iter() {
            let i = ev.token().0;
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                self.read(i);
            }
            if ev.is_writable() {
                self.flush(i);
            }
        }
        self.send_due();
    }

    fn expected(&self) -> u64 {
        self.sent_total * (self.k as u64 - 1)
    }

    /// Sends for `secs` (the lines of a `measured` phase are the window's),
    /// then drains; returns the seconds from the start to the last delivery.
    fn run(&mut self, poll: &mut Poll, events: &mut Events, secs: f64, measured: bool) -> f64 {
        let start = Instant::now();
        let since = self.clock.ns();
        self.phase = Some((since, 0));
        if measured {
            self.window = (since, u64::MAX);
        }
        while start.elapsed().as_secs_f64() < secs {
            self.poll_once(poll, events);
        }
        if measured {
            self.window.1 = self.clock.ns();
        }
        self.phase = None;
        let end = drain(
            self,
            |l| l.poll_once(poll, events),
            |l| (l.unique, l.expected()),
        );
        end.duration_since(start).as_secs_f64()
    }

    /// Lines some receiver never got: the gaps seen, plus what each sender
    /// sent beyond what each receiver got from it.
    fn lost(&self) -> u64 {
        let mut lost = self.lost_gaps;
        for r in 0..self.k {
            for s in (0..self.k).filter(|&s| s != r) {
                lost += u64::from(self.sent[s].saturating_sub(self.next[r * self.k + s]));
            }
        }
        lost
    }
}

pub fn run(o: &Opts) {
    if o.conns < 2 {
        fail("fanout needs at least 2 clients");
    }
    if o.total_rate.is_nan() || o.total_rate <= 0.0 {
        fail("fanout needs --total-rate above 0");
    }
    let mut poll = Poll::new().unwrap_or_else(|e| fail(e));
    let streams = connect_all(&mut poll, o);
    let k = streams.len();
    let mut f = Fanout {
        clients: streams
            .into_iter()
            .map(|stream| Client {
                stream,
                out: Vec::new(),
                inb: Vec::new(),
                welcomed: false,
                dead: false,
            })
            .collect(),
        k,
        clock: Clock(Instant::now()),
        buf: vec![0; 256 * 1024],
        total_rate: o.total_rate,
        sent: vec![0; k],
        next: vec![0; k * k],
        phase: None,
        sent_total: 0,
        unique: 0,
        lost_gaps: 0,
        doubled: 0,
        echoed: 0,
        malformed: 0,
        dropped: 0,
        window: (0, 0),
        delivered: 0,
        samples: Samples(Vec::with_capacity(1 << 20)),
        max_ns: 0,
        first_next: vec![0; k],
        first: Samples(Vec::with_capacity(1 << 16)),
    };
    let mut events = Events::with_capacity(4096);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f.clients.iter().all(|c| c.welcomed || c.dead) {
        if Instant::now() > deadline {
            fail("not every client was welcomed within 30 s");
        }
        f.poll_once(&mut poll, &mut events);
    }
    // Let the joins (and, across instances, their notices) settle.
    let settle = Instant::now() + Duration::from_millis(200);
    while Instant::now() < settle {
        f.poll_once(&mut poll, &mut events);
    }
    f.run(&mut poll, &mut events, o.warmup, false);
    if o.sync && !pause() {
        return;
    }
    let (sent0, exp0) = (f.sent_total, f.expected());
    let secs = f.run(&mut poll, &mut events, o.duration, true);
    let sent = f.sent_total - sent0;
    let expected = f.expected() - exp0;
    let (p50, p99) = (f.samples.pct(0.50), f.samples.pct(0.99));
    let (first50, first99) = (f.first.pct(0.50), f.first.pct(0.99));
    println!(
        "result mode=fanout clients={k} total_rate={} sent={sent} expected={expected} deliveries={} secs={secs:.4} deliveries_per_s={:.1} offered_per_s={:.1} p50_us={p50:.2} p99_us={p99:.2} max_us={:.2} first_p50_us={first50:.2} first_p99_us={first99:.2} lost={} doubled={} echoed={} malformed={} dropped={}",
        o.total_rate,
        f.delivered,
        f.delivered as f64 / secs,
        expected as f64 / o.duration,
        f.max_ns as f64 / 1000.0,
        f.lost(),
        f.doubled,
        f.echoed,
        f.malformed,
        f.dropped
    );
    let _ = io::stdout().flush();
    if o.sync {
        pause();
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn a_relayed_line_gives_sender_sequence_and_time() {
        let line = b"<guest7> T00000000000000012345 000042 0000000007 xxxx";
        assert_eq!(parse(line), Some((42, 7, 12345)));
        assert_eq!(
            parse(b"<guest7> T0000000000000001234 000042 0000000007 x"),
            None
        );
        assert_eq!(parse(b"<guest7> hello"), None);
    }
}
