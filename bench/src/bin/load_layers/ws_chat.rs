//! `load wschat ADDR --clients K --rate R --warmup S --duration S [--path P] [--sync]`:
//! the `chat` mode over WebSocket (issue 13). Each client connects, does
//! the client handshake with tungstenite on its non-blocking socket (`Host`
//! and `Origin` both `ADDR`, as a page served from that address sends
//! them), waits for `* welcome`, then sends 64-byte text messages at RATE a
//! second; every text message starting `<` is a delivery, its latency from
//! the send time it carries. The phases, window, drain and `result` line
//! are the TCP chat's, with `transport=ws` added.

use std::io;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Poll};
use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::client::ClientHandshake;
use tungstenite::handshake::{HandshakeError, MidHandshake};
use tungstenite::{Error as WsError, Message, WebSocket};

use super::{
    chat_phases, connect_all, drain, fail, stamp, ChatLoad, Clock, Opts, Samples, CHAT_LINE,
};

enum Socket {
    Handshaking(MidHandshake<ClientHandshake<TcpStream>>),
    Open(WebSocket<TcpStream>),
    /// Between states, or failed.
    Gone,
}

struct Client {
    ws: Socket,
    welcomed: bool,
    sent: u64,
    phase: f64,
    dead: bool,
}

struct WsChat {
    clients: Vec<Client>,
    clock: Clock,
    rate: f64,
    sending_since: Option<u64>,
    recording: bool,
    delivered: u64,
    delivered_total: u64,
    sent_total: u64,
    samples: Samples,
    dropped: u64,
    line: String,
}

fn would_block(e: &WsError) -> bool {
    matches!(e, WsError::Io(e) if e.kind() == io::ErrorKind::WouldBlock)
}

impl WsChat {
    fn kill(&mut self, i: usize) {
        let c = &mut self.clients[i];
        if !c.dead {
            c.dead = true;
            c.ws = Socket::Gone;
            self.dropped += 1;
        }
    }

    /// Drives a handshake in progress one step.
    fn handshake(&mut self, i: usize) {
        let c = &mut self.clients[i];
        let Socket::Handshaking(mid) = std::mem::replace(&mut c.ws, Socket::Gone) else {
            return;
        };
        match mid.handshake() {
            Ok((ws, _response)) => c.ws = Socket::Open(ws),
            Err(HandshakeError::Interrupted(mid)) => c.ws = Socket::Handshaking(mid),
            Err(HandshakeError::Failure(e)) => {
                eprintln!("load: WebSocket handshake: {e}");
                self.kill(i);
            }
        }
    }

    fn flush(&mut self, i: usize) {
        let Socket::Open(ws) = &mut self.clients[i].ws else {
            return;
        };
        match ws.flush() {
            Ok(()) => {}
            Err(e) if would_block(&e) => {}
            Err(_) => self.kill(i),
        }
    }

    fn read(&mut self, i: usize) {
        if matches!(self.clients[i].ws, Socket::Handshaking(_)) {
            self.handshake(i);
        }
        loop {
            let c = &mut self.clients[i];
            let Socket::Open(ws) = &mut c.ws else {
                return;
            };
            let msg = match ws.read() {
                Ok(m) => m,
                Err(e) if would_block(&e) => return,
                Err(_) => {
                    self.kill(i);
                    return;
                }
            };
            let Message::Text(text) = msg else {
                continue; // pings are answered by tungstenite
            };
            let line = text.as_bytes();
            if line.first() == Some(&b'<') {
                self.delivered_total += 1;
                if let Some(t) = stamp(line) {
                    if self.recording {
                        self.delivered += 1;
                        self.samples.add(self.clock.ns().saturating_sub(t));
                    }
                }
            } else if line.starts_with(b"* welcome") {
                c.welcomed = true;
            }
        }
    }

    /// Queues every message due by now and flushes.
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
            let Socket::Open(ws) = &mut c.ws else {
                continue;
            };
            let mut failed = false;
            for _ in c.sent..due {
                self.line.clear();
                let _ =
                    std::fmt::Write::write_fmt(&mut self.line, format_args!("T{now:020} {i:06} "));
                while self.line.len() < CHAT_LINE - 1 {
                    self.line.push('x');
                }
                match ws.write(Message::text(self.line.as_str())) {
                    Ok(()) => {}
                    Err(e) if would_block(&e) => {} // queued; flushed on writable
                    Err(_) => failed = true,
                }
            }
            self.sent_total += due - c.sent;
            c.sent = due;
            if failed {
                self.kill(i);
            } else {
                self.flush(i);
            }
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
                if matches!(self.clients[i].ws, Socket::Handshaking(_)) {
                    // A handshake that completes here may hold frames
                    // read with the response, and their edge is spent.
                    self.read(i);
                }
                self.flush(i);
            }
        }
        self.send_due();
    }

    fn expected(&self) -> u64 {
        self.sent_total * (self.clients.len() as u64 - 1)
    }

    /// As the TCP chat's `run`: sends for `secs`, then drains.
    fn run(&mut self, poll: &mut Poll, events: &mut Events, secs: f64) -> f64 {
        let start = Instant::now();
        for c in &mut self.clients {
            c.sent = 0;
        }
        self.sending_since = Some(self.clock.ns());
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

pub fn ws_chat(o: &Opts, path: &str) {
    let mut poll = Poll::new().unwrap_or_else(|e| fail(e));
    let streams = connect_all(&mut poll, o);
    let k = streams.len();
    let mut clients = Vec::with_capacity(k);
    for (i, stream) in streams.into_iter().enumerate() {
        let addr = stream.peer_addr().unwrap_or_else(|e| fail(e));
        let mut req = format!("ws://{addr}{path}")
            .into_client_request()
            .unwrap_or_else(|e| fail(format!("request: {e}")));
        let origin = format!("http://{addr}")
            .parse()
            .unwrap_or_else(|_| fail("origin"));
        req.headers_mut().insert("Origin", origin);
        let ws = match tungstenite::client::client(req, stream) {
            Ok((ws, _)) => Socket::Open(ws),
            Err(HandshakeError::Interrupted(mid)) => Socket::Handshaking(mid),
            Err(HandshakeError::Failure(e)) => fail(format!("WebSocket handshake: {e}")),
        };
        clients.push(Client {
            ws,
            welcomed: false,
            sent: 0,
            phase: i as f64 / k as f64,
            dead: false,
        });
    }
    let mut c = WsChat {
        clients,
        clock: Clock(Instant::now()),
        rate: o.rate,
        sending_since: None,
        recording: false,
        delivered: 0,
        delivered_total: 0,
        sent_total: 0,
        samples: Samples(Vec::with_capacity(1 << 20)),
        dropped: 0,
        line: String::with_capacity(CHAT_LINE),
    };
    // A handshake done inline may hold frames read with the response,
    // whose readable edge is spent: read each client once.
    for i in 0..k {
        c.read(i);
    }
    let mut events = Events::with_capacity(4096);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !c.clients.iter().all(|x| x.welcomed || x.dead) {
        if Instant::now() > deadline {
            let n = c.clients.iter().filter(|x| x.welcomed).count();
            let h = c
                .clients
                .iter()
                .filter(|x| matches!(x.ws, Socket::Handshaking(_)))
                .count();
            fail(format!(
                "{n} of {k} WebSocket clients welcomed within 30 s ({h} still in the handshake)"
            ));
        }
        c.poll_once(&mut poll, &mut events);
    }
    if c.dropped > 0 {
        fail(format!("{} WebSocket clients failed to connect", c.dropped));
    }
    chat_phases(&mut c, &mut poll, &mut events, o, " transport=ws", k);
}

impl ChatLoad for WsChat {
    fn poll_once(&mut self, poll: &mut Poll, events: &mut Events) {
        WsChat::poll_once(self, poll, events)
    }
    fn run(&mut self, poll: &mut Poll, events: &mut Events, secs: f64) -> f64 {
        WsChat::run(self, poll, events, secs)
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
