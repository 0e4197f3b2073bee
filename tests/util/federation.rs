//! What the tests of `chatroom --redis` share (`tests/chat_federation.rs`,
//! one reactor per instance; `tests/chat_federation_group.rs`, instances
//! with `--reactors N`): starting an instance, waiting for Redis to list
//! it, reading until a line, `/who`, and the check that many clients saw
//! one order with nothing lost, doubled or echoed.
//!
//! Include it with `#[path = "util/federation.rs"] mod federation;` next
//! to `mod util;` and `#[path = "util/redis.rs"] mod redis_server;`.
//! Every wait has a deadline.

#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::redis_server::RedisServer;
use crate::util::chat::{End, LineClient as Client};
use crate::util::process::{self, Proc};

/// The longest any one expected step may take.
pub const STEP: Duration = Duration::from_secs(10);
/// The spec's bound for announcing the clients of a vanished instance.
pub const LOST_WITHIN: Duration = Duration::from_secs(15);

/// One chatroom process in the room `room` of `redis`.
pub fn instance(redis: &RedisServer, room: &str, extra: &[&str]) -> (Proc, SocketAddr) {
    let mut cmd = process::example(&["chatroom"], "chatroom");
    cmd.args(["127.0.0.1", "0", "--redis", &redis.url(), "--room", room])
        .args(extra);
    let (proc, addr) = Proc::start_ready("chatroom", cmd, STEP);
    (proc, addr.parse().expect("an address"))
}

/// Waits until Redis lists `n` live instances in `room`.
pub fn wait_instances(redis: &RedisServer, room: &str, n: usize) {
    let deadline = Instant::now() + STEP;
    loop {
        let got = redis.cli(&["SCARD", &format!("chatroom:{room}:inst")]);
        if got == n.to_string() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{room}: {got} instances registered, want {n}"
        );
        // Polling Redis's state against the deadline: it cannot signal.
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The next relayed line (`<...`), skipping notices; `None` on timeout.
pub fn relayed(c: &mut Client, until: Instant) -> Option<String> {
    loop {
        match c.line_until(until) {
            Ok(line) if line.starts_with('<') => return Some(line),
            Ok(_) => {}
            Err(End::Timeout) => return None,
            Err(e) => panic!("{}: {e:?}", c.name),
        }
    }
}

/// Reads until a line equal to `want`, returning the lines before it.
pub fn until_line(c: &mut Client, want: &str, within: Duration) -> Vec<String> {
    let until = Instant::now() + within;
    let mut before = Vec::new();
    loop {
        match c.line_until(until) {
            Ok(line) if line == want => return before,
            Ok(line) => before.push(line),
            Err(e) => panic!(
                "{}: no {want:?} within {within:?} ({e:?}); before it: {before:?}",
                c.name
            ),
        }
    }
}

/// The names of a `* online: ...` answer.
pub fn online(line: &str) -> HashSet<String> {
    let list = line
        .strip_prefix("* online: ")
        .unwrap_or_else(|| panic!("not a /who answer: {line:?}"));
    list.split(", ").map(String::from).collect()
}

/// `/who` from `c`: the names it lists (notices before the answer skipped).
pub fn who(c: &mut Client) -> HashSet<String> {
    c.send("/who\n");
    loop {
        let line = c.line();
        if line.starts_with("* online: ") {
            return online(&line);
        }
    }
}

/// Waits until `/who` from `c` lists exactly `names`.
pub fn wait_who(c: &mut Client, names: &HashSet<String>) {
    let deadline = Instant::now() + STEP;
    loop {
        let got = who(c);
        if got == *names {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "/who never listed all {}: {got:?}",
            names.len()
        );
    }
}

/// Every client sends `lines` lines `line R from I` (round R, client
/// index I), then each reads what is relayed to it: every other client's
/// lines, each once, never its own, in its sender's order, and any two
/// clients see their common lines in the same order.
pub fn one_order(clients: &mut [Client], lines: usize) {
    let n = clients.len();
    for round in 0..lines {
        for (i, c) in clients.iter_mut().enumerate() {
            c.send(format!("line {round} from {i}\n"));
        }
    }
    let until = Instant::now() + Duration::from_secs(60);
    let mut seen: Vec<Vec<String>> = Vec::new();
    for (i, c) in clients.iter_mut().enumerate() {
        let mut got = Vec::new();
        while got.len() < (n - 1) * lines {
            match relayed(c, until) {
                Some(line) => got.push(line),
                None => panic!("client {i} got {} of {} lines", got.len(), (n - 1) * lines),
            }
        }
        let unique: HashSet<&String> = got.iter().collect();
        assert_eq!(unique.len(), got.len(), "client {i} got a line twice");
        assert!(
            !got.iter().any(|l| l.ends_with(&format!(" from {i}"))),
            "client {i} got its own line back"
        );
        seen.push(got);
    }
    // One order: any two receivers see their common lines in the same order.
    for a in 0..seen.len() {
        for b in a + 1..seen.len() {
            let in_b: HashSet<&String> = seen[b].iter().collect();
            let in_a: HashSet<&String> = seen[a].iter().collect();
            let a_common: Vec<&String> = seen[a].iter().filter(|l| in_b.contains(l)).collect();
            let b_common: Vec<&String> = seen[b].iter().filter(|l| in_a.contains(l)).collect();
            assert_eq!(
                a_common, b_common,
                "clients {a} and {b} disagree on the order"
            );
        }
    }
    // Per-sender order.
    for got in &seen {
        let mut last: HashMap<String, usize> = HashMap::new();
        for line in got {
            let (head, sender) = line.rsplit_once(" from ").unwrap();
            let round: usize = head.rsplit(' ').next().unwrap().parse().unwrap();
            let prev = last.insert(sender.to_string(), round);
            assert!(
                prev.is_none_or(|p| p < round),
                "sender {sender} out of order"
            );
        }
    }
}

/// A presence notice (`* NAME joined`, `* NAME left ...`) among `lines`.
pub fn presence(lines: &[String]) -> Vec<&String> {
    lines
        .iter()
        .filter(|l| l.starts_with("* ") && (l.ends_with(" joined") || l.contains(" left")))
        .collect()
}

/// After an outage that changed nobody's presence: every client reads
/// `restored`, lines go both ways, and nobody is told of a join or a leave
/// (nobody came or went), then nothing more arrives for a few beats.
pub fn nothing_to_announce<'a>(
    redis: &RedisServer,
    side1: &mut [&'a mut Client],
    side2: &mut [&'a mut Client],
) {
    for c in side1.iter_mut() {
        let before = until_line(c, "* link to other servers restored", LOST_WITHIN);
        assert!(presence(&before).is_empty(), "{}: {before:?}", c.name);
    }
    for c in side2.iter_mut() {
        let before = until_line(c, "* link to other servers restored", LOST_WITHIN);
        assert!(presence(&before).is_empty(), "{}: {before:?}", c.name);
    }
    wait_instances(redis, "lobby", 2);
    let (s1, s2) = (side1[0].name.clone(), side2[0].name.clone());
    side1[0].send("after from one\n");
    side2[0].send("after from two\n");
    for c in side1.iter_mut() {
        let mut want = vec![format!("<{s2}> after from two")];
        if c.name != s1 {
            want.push(format!("<{s1}> after from one"));
        }
        let until = Instant::now() + STEP;
        let mut read = Vec::new();
        while !want.is_empty() {
            let line = c
                .line_until(until)
                .unwrap_or_else(|e| panic!("{}: {e:?} waiting for {want:?}; {read:?}", c.name));
            want.retain(|w| *w != line);
            read.push(line);
        }
        assert!(presence(&read).is_empty(), "{}: {read:?}", c.name);
    }
    for c in side2.iter_mut() {
        let before = until_line(c, &format!("<{s1}> after from one"), STEP);
        assert!(presence(&before).is_empty(), "{}: {before:?}", c.name);
    }
    // Late catch-ups (a beat finding an instance unregistered, a sweep):
    // nothing may arrive for the next few beats.
    let quiet_until = Instant::now() + Duration::from_secs(5);
    for side in [side1, side2] {
        for c in side.iter_mut() {
            let mut late = Vec::new();
            while let Ok(line) = c.line_until(quiet_until) {
                late.push(line);
            }
            assert!(presence(&late).is_empty(), "{}: late {late:?}", c.name);
        }
    }
}
