//! The load generator: one thread, mio, pin it with `taskset -c 1`.
//!
//! ```text
//! load echo ADDR --conns N --size BYTES --depth D --warmup S --duration S [--sync]
//! load chat ADDR[,ADDR...] --clients K --rate LINES_PER_SEC --warmup S --duration S [--sync]
//! load idle ADDR --conns N
//! load wschat ADDR --clients K --rate R ... [--path /ws]   # chat over WebSocket
//! load tlsecho ADDR --conns N --size B --depth D ...        # echo over TLS
//! load fanout ADDR[,ADDR...] --clients K --total-rate LINES_PER_SEC --warmup S --duration S [--sync]
//! ```
//!
//! `wschat` and `tlsecho` (issue 13) are in `load_layers/`.
//! `fanout` (issue 12's benchmark, `load/fanout.rs`): a fixed total line
//! rate over K clients, with each line's sender and sequence number in it,
//! so every lost, doubled or echoed delivery is counted.
//!
//! `echo`: closed loop. Each of N connections keeps D messages of BYTES in
//! flight; a message completes when BYTES more bytes have come back (echo is
//! in order), and its latency is from when it was queued. After the warm-up
//! the measured window runs for the duration, then new messages stop and the
//! in-flight ones drain, so the window holds whole messages only.
//!
//! `chat`: open loop. K clients each send 64-byte lines at RATE per second
//! (phases spread evenly); each line carries its send time, so a receiver
//! that gets `<NAME> LINE` knows the delivery latency. After the window the
//! sending stops and deliveries drain (until all expected arrived, 3 s
//! without progress, or 15 s); deliveries/s = deliveries / (window + drain).
//!
//! With several comma-separated addresses (chat servers sharing one room,
//! e.g. `chatroom --redis`), the clients are spread over them in turn.
//!
//! `idle`: opens N connections and holds them; then one 64-byte echo on
//! every connection at once; then closes. For the RSS meter.
//!
//! With `--sync` (always for `idle`) it prints `paused` on stdout at each
//! quiet point (after the warm-up, after the window) and waits for a line on
//! stdin, so a harness can read the server's meters around exactly the
//! measured messages. It prints one `result k=v ...` line per measured window.
//! Every phase has a deadline: a dead server ends the run with an error.

use std::collections::VecDeque;
use std::io::{self, BufRead, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

#[path = "load/fanout.rs"]
mod fanout;
#[path = "load_layers/tls_echo.rs"]
mod tls_echo;
#[path = "load_layers/ws_chat.rs"]
mod ws_chat;

const CHAT_LINE: usize = 64;

struct Opts {
    mode: String,
    /// Where to connect; client `i` goes to `addrs[i % addrs.len()]`.
    addrs: Vec<SocketAddr>,
    conns: usize,
    size: usize,
    depth: usize,
    rate: f64,
    /// `fanout`: lines per second over all clients.
    total_rate: f64,
    warmup: f64,
    duration: f64,
    sync: bool,
    /// Connect pacing: at most `batch` handshakes at once, `gap` between batches.
    batch: usize,
    gap: Duration,
}

fn opts() -> Opts {
    let args: Vec<String> = std::env::args().collect();
    let usage = || -> ! {
        eprintln!("usage: load echo|chat|idle ADDR [--conns N] [--clients K] [--size B] [--depth D] [--rate R] [--warmup S] [--duration S] [--sync]");
        std::process::exit(2)
    };
    if args.len() < 3 {
        usage()
    }
    let get = |name: &str, default: f64| -> f64 {
        args.iter()
            .position(|a| a == name)
            .map(|i| {
                args.get(i + 1)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| usage())
            })
            .unwrap_or(default)
    };
    let conns = get("--conns", get("--clients", 1.0)) as usize;
    Opts {
        mode: args[1].clone(),
        addrs: args[2]
            .split(',')
            .map(|a| a.parse().unwrap_or_else(|_| usage()))
            .collect(),
        conns,
        size: get("--size", 64.0) as usize,
        depth: get("--depth", 1.0) as usize,
        rate: get("--rate", 10.0),
        total_rate: get("--total-rate", 0.0),
        warmup: get("--warmup", 1.0),
        duration: get("--duration", 5.0),
        sync: args.iter().any(|a| a == "--sync") || args[1] == "idle",
        batch: get("--batch", 128.0).max(1.0) as usize,
        gap: Duration::from_secs_f64(get("--gap-ms", 0.0) / 1000.0),
    }
}

fn fail(msg: impl std::fmt::Display) -> ! {
    eprintln!("load: {msg}");
    std::process::exit(1)
}

/// Prints `paused` and waits for a line on stdin; `false` on EOF or `quit`.
fn pause() -> bool {
    println!("paused");
    let _ = io::stdout().flush();
    let mut line = String::new();
    match io::stdin().lock().read_line(&mut line) {
        Ok(0) | Err(_) => false,
        Ok(_) => line.trim() != "quit",
    }
}

/// Latency samples in nanoseconds; percentiles by sorting.
#[derive(Default)]
struct Samples(Vec<u64>);

impl Samples {
    fn add(&mut self, ns: u64) {
        self.0.push(ns);
    }
    fn pct(&mut self, p: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        self.0.sort_unstable();
        let i = ((p * self.0.len() as f64).ceil() as usize).clamp(1, self.0.len()) - 1;
        self.0[i] as f64 / 1000.0
    }
}

struct Clock(Instant);
impl Clock {
    fn ns(&self) -> u64 {
        self.0.elapsed().as_nanos() as u64
    }
}

/// Opens `o.conns` connections to `o.addrs` (in turn), at most `o.batch` (default 128) connecting at
/// once and `o.gap` apart (a server that accepts slowly would otherwise
/// overflow its backlog and lose handshakes), all with TCP_NODELAY,
/// registered READABLE|WRITABLE.
fn connect_all(poll: &mut Poll, o: &Opts) -> Vec<TcpStream> {
    let n = o.conns;
    let mut events = Events::with_capacity(1024);
    let mut streams: Vec<TcpStream> = Vec::with_capacity(n);
    let mut connected = vec![false; n];
    let mut done = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while done < n {
        if streams.len() < n && streams.len() == done && done > 0 && !o.gap.is_zero() {
            std::thread::sleep(o.gap);
        }
        while streams.len() < n && streams.len() - done < o.batch {
            let addr = o.addrs[streams.len() % o.addrs.len()];
            let mut s = TcpStream::connect(addr).unwrap_or_else(|e| fail(format!("connect: {e}")));
            let token = Token(streams.len());
            poll.registry()
                .register(&mut s, token, Interest::READABLE | Interest::WRITABLE)
                .unwrap_or_else(|e| fail(e));
            streams.push(s);
        }
        if Instant::now() > deadline {
            fail(format!("only {done} of {n} connections after 60 s"));
        }
        poll.poll(&mut events, Some(Duration::from_millis(100)))
            .unwrap_or_else(|e| fail(e));
        for ev in events.iter() {
            let i = ev.token().0;
            if connected[i] || !(ev.is_writable() || ev.is_error()) {
                continue;
            }
            let s = &streams[i];
            match s.take_error() {
                Ok(Some(e)) | Err(e) => fail(format!("connect: {e}")),
                Ok(None) => {}
            }
            if s.peer_addr().is_ok() {
                let _ = s.set_nodelay(true);
                connected[i] = true;
                done += 1;
            }
        }
    }
    streams
}

// ---------------------------------------------------------------- echo

struct EchoConn {
    stream: TcpStream,
    /// Bytes queued but not yet written.
    to_write: usize,
    /// Queue time of each message in flight, oldest first.
    sent: VecDeque<u64>,
    /// Bytes of the oldest message already back.
    got: usize,
    dead: bool,
}

struct Echo {
    conns: Vec<EchoConn>,
    size: usize,
    depth: usize,
    payload: Vec<u8>,
    buf: Vec<u8>,
    clock: Clock,
    issuing: bool,
    recording: bool,
    completed: u64,
    samples: Samples,
    errors: u64,
}

impl Echo {
    fn in_flight(&self) -> usize {
        self.conns
            .iter()
            .filter(|c| !c.dead)
            .map(|c| c.sent.len())
            .sum()
    }

    /// Fills every connection up to `depth` messages in flight.
    fn prime(&mut self) {
        let now = self.clock.ns();
        for i in 0..self.conns.len() {
            let c = &mut self.conns[i];
            if c.dead {
                continue;
            }
            while c.sent.len() < self.depth {
                c.sent.push_back(now);
                c.to_write += self.size;
            }
            self.write(i);
        }
    }

    fn write(&mut self, i: usize) {
        let c = &mut self.conns[i];
        while c.to_write > 0 && !c.dead {
            let n = c.to_write.min(self.payload.len());
            match (&c.stream).write(&self.payload[..n]) {
                Ok(n) => c.to_write -= n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    c.dead = true;
                    self.errors += 1;
                }
            }
        }
    }

    fn read(&mut self, i: usize) {
        loop {
            let c = &mut self.conns[i];
            if c.dead {
                return;
            }
            let n = match (&c.stream).read(&mut self.buf) {
                Ok(0) => {
                    c.dead = true;
                    self.errors += 1;
                    return;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    c.dead = true;
                    self.errors += 1;
                    return;
                }
            };
            c.got += n;
            let now = self.clock.ns();
            while c.got >= self.size {
                c.got -= self.size;
                let Some(t) = c.sent.pop_front() else {
                    c.dead = true; // more came back than was sent
                    self.errors += 1;
                    return;
                };
                if self.recording {
                    self.samples.add(now - t);
                    self.completed += 1;
                }
                if self.issuing {
                    c.sent.push_back(now);
                    c.to_write += self.size;
                }
            }
            let short = n < self.buf.len();
            self.write(i);
            if short {
                return;
            }
        }
    }

    /// Runs until `until` (issuing) or until nothing is in flight (draining).
    fn run(&mut self, poll: &mut Poll, events: &mut Events, until: Option<Instant>) {
        let drain_deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match until {
                Some(t) if Instant::now() >= t => return,
                None if self.in_flight() == 0 => return,
                None if Instant::now() > drain_deadline => {
                    fail(format!("{} messages never came back", self.in_flight()))
                }
                _ => {}
            }
            if self.conns.iter().all(|c| c.dead) {
                fail("every connection failed");
            }
            poll.poll(events, Some(Duration::from_millis(5)))
                .unwrap_or_else(|e| fail(e));
            for ev in events.iter() {
                let i = ev.token().0;
                if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                    self.read(i);
                }
                if ev.is_writable() {
                    self.write(i);
                }
            }
        }
    }
}

fn echo(o: &Opts) {
    let mut poll = Poll::new().unwrap_or_else(|e| fail(e));
    let streams = connect_all(&mut poll, o);
    let mut e = Echo {
        conns: streams
            .into_iter()
            .map(|stream| EchoConn {
                stream,
                to_write: 0,
                sent: VecDeque::with_capacity(o.depth + 1),
                got: 0,
                dead: false,
            })
            .collect(),
        size: o.size,
        depth: o.depth,
        payload: vec![b'x'; o.size * o.depth],
        buf: vec![0; 256 * 1024],
        clock: Clock(Instant::now()),
        issuing: true,
        recording: false,
        completed: 0,
        samples: Samples(Vec::with_capacity(1 << 20)),
        errors: 0,
    };
    let mut events = Events::with_capacity(4096);
    let Some(secs) = echo_phases(&mut e, &mut poll, &mut events, o) else {
        return;
    };
    echo_result("", o, secs, e.completed, &mut e.samples, e.errors);
}

/// An echo load over some transport (TCP here, TLS in `load_layers/`):
/// what [`echo_phases`] drives.
trait EchoLoad {
    /// Puts every connection's messages in flight.
    fn prime(&mut self);
    /// Polls until `until`, or with `None` until nothing is in flight.
    fn run(&mut self, poll: &mut Poll, events: &mut Events, until: Option<Instant>);
    /// Whether completed messages are replaced by new ones.
    fn issuing(&mut self) -> &mut bool;
    /// Whether completions are counted and timed.
    fn recording(&mut self) -> &mut bool;
}

impl EchoLoad for Echo {
    fn prime(&mut self) {
        Echo::prime(self)
    }
    fn run(&mut self, poll: &mut Poll, events: &mut Events, until: Option<Instant>) {
        Echo::run(self, poll, events, until)
    }
    fn issuing(&mut self) -> &mut bool {
        &mut self.issuing
    }
    fn recording(&mut self) -> &mut bool {
        &mut self.recording
    }
}

/// Warm-up, the `--sync` pause, the measured window and its drain; the
/// window's seconds, or `None` when the harness ended the run at the pause.
fn echo_phases(
    e: &mut impl EchoLoad,
    poll: &mut Poll,
    events: &mut Events,
    o: &Opts,
) -> Option<f64> {
    e.prime();
    let warm_end = Instant::now() + Duration::from_secs_f64(o.warmup);
    e.run(poll, events, Some(warm_end));
    if o.sync {
        *e.issuing() = false;
        e.run(poll, events, None);
        if !pause() {
            return None;
        }
        *e.issuing() = true;
    }
    *e.recording() = true;
    let start = Instant::now();
    e.prime();
    e.run(
        poll,
        events,
        Some(start + Duration::from_secs_f64(o.duration)),
    );
    *e.issuing() = false;
    e.run(poll, events, None);
    Some(start.elapsed().as_secs_f64())
}

/// The `result` line of an echo run (`transport`: empty, or
/// ` transport=NAME`); a failed connection fails the run; the last pause
/// with `--sync`.
fn echo_result(
    transport: &str,
    o: &Opts,
    secs: f64,
    completed: u64,
    samples: &mut Samples,
    errors: u64,
) {
    println!(
        "result mode=echo{transport} conns={} size={} depth={} msgs={completed} secs={secs:.4} msgs_per_s={:.1} p50_us={:.2} p99_us={:.2} errors={errors}",
        o.conns,
        o.size,
        o.depth,
        completed as f64 / secs,
        samples.pct(0.50),
        samples.pct(0.99),
    );
    let _ = io::stdout().flush();
    if errors > 0 {
        fail(format!("{errors} connections failed"));
    }
    if o.sync {
        pause();
    }
}

/// After a send window: polls `l` with `step` until `counts` says every
/// expected delivery came `(got, expected)`, or nothing came for 3 s, or
/// 15 s passed; returns when the last delivery came (now, if all did).
fn drain<L>(l: &mut L, mut step: impl FnMut(&mut L), counts: impl Fn(&L) -> (u64, u64)) -> Instant {
    let cap = Instant::now() + Duration::from_secs(15);
    let mut last = (Instant::now(), counts(l).0);
    loop {
        let (got, want) = counts(l);
        if got >= want {
            return Instant::now();
        }
        if last.0.elapsed() >= Duration::from_secs(3) || Instant::now() >= cap {
            return last.0;
        }
        step(l);
        let got = counts(l).0;
        if got != last.1 {
            last = (Instant::now(), got);
        }
    }
}

/// Writes `out` until it is empty or the socket would block (what is left
/// stays in `out`); `Err` when the connection is gone.
fn write_out(stream: &TcpStream, out: &mut Vec<u8>) -> io::Result<()> {
    let mut stream = stream;
    while !out.is_empty() {
        match stream.write(out) {
            Ok(n) => drop(out.drain(..n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// One read into `buf`: `Some(n)` bytes, `None` if the socket would block,
/// `Err` when the connection ended (end of file included).
fn read_in(stream: &TcpStream, buf: &mut [u8]) -> io::Result<Option<usize>> {
    let mut stream = stream;
    loop {
        return match stream.read(buf) {
            Ok(0) => Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => Err(e),
        };
    }
}

// ---------------------------------------------------------------- chat

struct ChatClient {
    stream: TcpStream,
    out: Vec<u8>,
    inb: Vec<u8>,
    welcomed: bool,
    sent: u64,
    phase: f64,
    dead: bool,
}

struct Chat {
    clients: Vec<ChatClient>,
    clock: Clock,
    buf: Vec<u8>,
    rate: f64,
    /// Sending resumed at this clock time, with this many lines sent by then.
    sending_since: Option<u64>,
    recording: bool,
    delivered: u64,
    delivered_total: u64,
    sent_total: u64,
    samples: Samples,
    dropped: u64,
}

impl Chat {
    fn flush(&mut self, i: usize) {
        let c = &mut self.clients[i];
        if !c.dead && write_out(&c.stream, &mut c.out).is_err() {
            c.dead = true;
            self.dropped += 1;
        }
    }

    fn read(&mut self, i: usize) {
        loop {
            let c = &mut self.clients[i];
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
            let mut data = &self.buf[..n];
            loop {
                let Some(nl) = data.iter().position(|&b| b == b'\n') else {
                    c.inb.extend_from_slice(data);
                    break;
                };
                let line: &[u8] = if c.inb.is_empty() {
                    &data[..nl]
                } else {
                    c.inb.extend_from_slice(&data[..nl]);
                    &c.inb
                };
                if line.first() == Some(&b'<') {
                    self.delivered_total += 1;
                    if let Some(t) = stamp(line) {
                        if self.recording {
                            self.delivered += 1;
                            self.samples.add(now.saturating_sub(t));
                        }
                    }
                } else if line.starts_with(b"* welcome") {
                    c.welcomed = true;
                }
                c.inb.clear();
                data = &data[nl + 1..];
            }
            if n < self.buf.len() {
                return;
            }
        }
    }

    /// Queues every line due by now and writes.
    fn send_due(&mut self) {
        let Some(since) = self.sending_since else {
            return;
        };
        let now = self.clock.ns();
        let elapsed = (now - since) as f64 / 1e9;
        for i in 0..self.clients.len() {
            let c = &mut self.clients[i];
            if c.dead {
                continue;
            }
            let due = (elapsed * self.rate + c.phase).floor() as u64;
            if due <= c.sent {
                continue;
            }
            for _ in c.sent..due {
                let start = c.out.len();
                let _ = write!(c.out, "T{now:020} {i:06} ");
                c.out.resize(start + CHAT_LINE - 1, b'x');
                c.out.push(b'\n');
            }
            self.sent_total += due - c.sent;
            c.sent = due;
            self.flush(i);
        }
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
        self.sent_total * (self.clients.len() as u64 - 1)
    }

    /// Sends for `secs`, then stops and drains; returns the time to the end of the drain.
    fn run(&mut self, poll: &mut Poll, events: &mut Events, secs: f64) -> f64 {
        let start = Instant::now();
        let since = self.clock.ns();
        for c in &mut self.clients {
            c.sent = 0;
        }
        self.sending_since = Some(since);
        while start.elapsed().as_secs_f64() < secs {
            self.poll_once(poll, events);
        }
        self.sending_since = None;
        let end = drain(
            self,
            |l| l.poll_once(poll, events),
            |l| (l.delivered_total, l.expected()),
        );
        end.duration_since(start).as_secs_f64()
    }
}

/// The send time in a relayed line `<NAME> T<20 digits> ...`.
fn stamp(line: &[u8]) -> Option<u64> {
    let at = line.windows(3).position(|w| w == b"> T")? + 3;
    let digits = line.get(at..at + 20)?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}

fn chat(o: &Opts) {
    let mut poll = Poll::new().unwrap_or_else(|e| fail(e));
    let streams = connect_all(&mut poll, o);
    let k = streams.len();
    let mut c = Chat {
        clients: streams
            .into_iter()
            .enumerate()
            .map(|(i, stream)| ChatClient {
                stream,
                out: Vec::new(),
                inb: Vec::new(),
                welcomed: false,
                sent: 0,
                phase: i as f64 / k as f64,
                dead: false,
            })
            .collect(),
        clock: Clock(Instant::now()),
        buf: vec![0; 256 * 1024],
        rate: o.rate,
        sending_since: None,
        recording: false,
        delivered: 0,
        delivered_total: 0,
        sent_total: 0,
        samples: Samples(Vec::with_capacity(1 << 20)),
        dropped: 0,
    };
    let mut events = Events::with_capacity(4096);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !c.clients.iter().all(|x| x.welcomed || x.dead) {
        if Instant::now() > deadline {
            fail("not every client was welcomed within 30 s");
        }
        c.poll_once(&mut poll, &mut events);
    }
    chat_phases(&mut c, &mut poll, &mut events, o, "", k);
}

/// A chat load over some transport (TCP here, WebSocket in
/// `load_layers/`): what [`chat_phases`] drives once every client is in.
trait ChatLoad {
    fn poll_once(&mut self, poll: &mut Poll, events: &mut Events);
    /// Sends for `secs`, then drains; the time to the end of the drain.
    fn run(&mut self, poll: &mut Poll, events: &mut Events, secs: f64) -> f64;
    /// Whether deliveries are counted and timed.
    fn recording(&mut self) -> &mut bool;
    /// Lines sent, deliveries expected for them, deliveries counted, clients dropped.
    fn counts(&self) -> (u64, u64, u64, u64);
    fn samples(&mut self) -> &mut Samples;
}

impl ChatLoad for Chat {
    fn poll_once(&mut self, poll: &mut Poll, events: &mut Events) {
        Chat::poll_once(self, poll, events)
    }
    fn run(&mut self, poll: &mut Poll, events: &mut Events, secs: f64) -> f64 {
        Chat::run(self, poll, events, secs)
    }
    fn recording(&mut self) -> &mut bool {
        &mut self.recording
    }
    fn counts(&self) -> (u64, u64, u64, u64) {
        (
            self.sent_total,
            self.expected(),
            self.delivered,
            self.dropped,
        )
    }
    fn samples(&mut self) -> &mut Samples {
        &mut self.samples
    }
}

/// The joins' settling, the warm-up, the `--sync` pause, the measured
/// window and its `result` line (`transport`: empty, or ` transport=NAME`),
/// for `k` clients.
fn chat_phases(
    c: &mut impl ChatLoad,
    poll: &mut Poll,
    events: &mut Events,
    o: &Opts,
    transport: &str,
    k: usize,
) {
    let settle = Instant::now() + Duration::from_millis(200);
    while Instant::now() < settle {
        c.poll_once(poll, events);
    }
    c.run(poll, events, o.warmup);
    if o.sync && !pause() {
        return;
    }
    *c.recording() = true;
    let (sent0, exp0, delivered0, _) = c.counts();
    let secs = c.run(poll, events, o.duration);
    *c.recording() = false;
    let (sent, expected, delivered, dropped) = c.counts();
    let (sent, expected, delivered) = (sent - sent0, expected - exp0, delivered - delivered0);
    let samples = c.samples();
    println!(
        "result mode=chat{transport} clients={k} rate={} sent={sent} expected={expected} deliveries={delivered} secs={secs:.4} deliveries_per_s={:.1} offered_per_s={:.1} p50_us={:.2} p99_us={:.2} dropped={dropped}",
        o.rate,
        delivered as f64 / secs,
        expected as f64 / o.duration,
        samples.pct(0.50),
        samples.pct(0.99),
    );
    let _ = io::stdout().flush();
    if o.sync {
        pause();
    }
}

// ---------------------------------------------------------------- idle

fn idle(o: &Opts) {
    let mut poll = Poll::new().unwrap_or_else(|e| fail(e));
    let streams = connect_all(&mut poll, o);
    if !pause() {
        return;
    }
    let mut e = Echo {
        conns: streams
            .into_iter()
            .map(|stream| EchoConn {
                stream,
                to_write: 0,
                sent: VecDeque::new(),
                got: 0,
                dead: false,
            })
            .collect(),
        size: 64,
        depth: 1,
        payload: vec![b'x'; 64],
        buf: vec![0; 64 * 1024],
        clock: Clock(Instant::now()),
        issuing: false,
        recording: true,
        completed: 0,
        samples: Samples::default(),
        errors: 0,
    };
    let mut events = Events::with_capacity(4096);
    e.prime();
    e.run(&mut poll, &mut events, None);
    println!(
        "result mode=idle conns={} echoed={} errors={}",
        o.conns, e.completed, e.errors
    );
    pause();
}

fn main() {
    let o = opts();
    match o.mode.as_str() {
        "echo" => echo(&o),
        "chat" => chat(&o),
        "fanout" => fanout::run(&o),
        "idle" => idle(&o),
        "wschat" => ws_chat::ws_chat(
            &o,
            &mio_selectors_bench::flag("--path").unwrap_or("/".into()),
        ),
        "tlsecho" => tls_echo::tls_echo(&o),
        m => fail(format!("unknown mode {m}")),
    }
}
