//! `chatroom --redis URL --reactors N`: instances with several reactor
//! threads in one room through a real redis-server each test starts on a
//! free port, with the guarantees of one reactor per instance (chat
//! protocol, "Several servers, one room"; docs/federation.md, "Reactors
//! and Redis"): one order on every reactor of every instance, nothing lost,
//! doubled or echoed, names unique and `/who` complete across instances, a
//! vanished instance announced within 15 s, Redis lost and restored.
//!
//! Clients of one instance land on all its reactors: the group hands each
//! accepted connection to its least-loaded reactor, so a few clients in a
//! row spread over both (reactor 0 also holds the two Redis connections).
//! Every wait has a deadline.

#![cfg(feature = "redis")]

#[path = "util/federation.rs"]
mod federation;
#[path = "util/redis.rs"]
mod redis_server;
mod util;

use std::collections::HashSet;
use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use federation::{
    instance, nothing_to_announce, one_order, until_line, wait_instances, wait_who, who,
    LOST_WITHIN, STEP,
};
use redis_server::RedisServer;
use util::chat::{LineClient as Client, NoticeTally};
use util::process::{self, Proc};

const TWO: &[&str] = &["--reactors", "2"];

/// Waits until each of `reactors` reactors behind `metrics` has accepted
/// at least `least` connections (its copy for a scrape is refreshed every
/// so often, so this polls against a deadline).
fn wait_spread(metrics: SocketAddr, reactors: usize, least: u64) {
    let until = Instant::now() + STEP;
    loop {
        let s = util::connect(metrics);
        (&s).write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
            .unwrap();
        let got = util::read_to_eof_deadline(&s, 1 << 20, Instant::now() + STEP).unwrap();
        let text = String::from_utf8_lossy(&got);
        let accepted: Vec<u64> = (0..reactors)
            .map(|r| {
                let key = format!("mio_selectors_connections_accepted_total{{reactor=\"{r}\"}} ");
                text.lines()
                    .find_map(|l| l.strip_prefix(&key))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0)
            })
            .collect();
        if accepted.iter().all(|&n| n >= least) {
            return;
        }
        assert!(
            Instant::now() < until,
            "clients not spread over the reactors: {accepted:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn names(clients: &[Client]) -> HashSet<String> {
    clients.iter().map(|c| c.name.clone()).collect()
}

#[test]
fn two_multi_reactor_instances_and_a_single_one_share_one_order() {
    const PER: usize = 10;
    const LINES: usize = 20;
    let redis = RedisServer::start();
    let fast = ["--rate", "1000", "--burst", "100"];
    let mut two: Vec<&str> = TWO.iter().chain(&fast).copied().collect();
    two.extend(["--metrics", "127.0.0.1:0"]);
    let nodes: Vec<(Proc, SocketAddr)> = vec![
        instance(&redis, "lobby", &two),
        instance(&redis, "lobby", &two),
        instance(&redis, "lobby", &fast),
    ];
    wait_instances(&redis, "lobby", 3);

    let mut clients: Vec<Client> = (0..3 * PER).map(|i| Client::join(nodes[i % 3].1)).collect();
    // Both reactors of each multi-reactor instance serve some of them.
    for (proc, _) in &nodes[..2] {
        let line = proc.line().expect("the metrics line");
        let addr = line
            .strip_prefix("metrics on http://")
            .and_then(|l| l.strip_suffix("/metrics"))
            .unwrap_or_else(|| panic!("not the metrics line: {line:?}"));
        wait_spread(addr.parse().unwrap(), 2, 3);
    }
    let all = names(&clients);
    wait_who(clients.last_mut().unwrap(), &all);
    // Every reactor of every instance answers with everyone.
    for c in clients.iter_mut().take(9) {
        assert_eq!(who(c), all, "{}: /who lists everyone", c.name);
    }
    one_order(&mut clients, LINES);
}

#[test]
fn nicks_are_unique_and_who_is_complete_across_multi_reactor_instances() {
    let redis = RedisServer::start();
    let (_a, addr_a) = instance(&redis, "lobby", TWO);
    let (_b, addr_b) = instance(&redis, "lobby", TWO);
    wait_instances(&redis, "lobby", 2);
    // Four on each: both reactors of each instance have clients.
    let mut on_a: Vec<Client> = (0..4).map(|_| Client::join(addr_a)).collect();
    let mut on_b: Vec<Client> = (0..4).map(|_| Client::join(addr_b)).collect();
    let mut all = names(&on_a);
    all.extend(names(&on_b));
    wait_who(&mut on_b[3], &all);
    for c in on_a.iter_mut().chain(on_b.iter_mut()) {
        assert_eq!(who(c), all, "{}: /who lists all 8", c.name);
    }

    let old = on_a[0].name.clone();
    on_a[0].nick("alice");
    for c in on_a[1..].iter_mut().chain(on_b.iter_mut()) {
        until_line(c, &format!("* {old} is now known as alice"), STEP);
    }
    // Taken, whatever the case, from every reactor of both instances.
    for (c, taken) in on_b.iter_mut().chain(on_a[1..].iter_mut()).zip([
        "alice", "ALICE", "Alice", "aLiCe", "alicE", "ALIce", "alICE",
    ]) {
        c.send(format!("/nick {taken}\n"));
        let got = c.line();
        assert!(
            got.starts_with("* error: ") && got.contains("taken"),
            "{}: {got:?}",
            c.name
        );
    }
    on_a[0].send("/quit\n");
    for c in on_b.iter_mut() {
        until_line(c, "* alice left (quit)", STEP);
    }
    let was = on_b[2].name.clone();
    on_b[2].nick("alice");
    until_line(
        &mut on_a[1],
        &format!("* {was} is now known as alice"),
        STEP,
    );
}

#[test]
fn a_killed_multi_reactor_instance_is_announced_within_15_s() {
    let redis = RedisServer::start();
    let (_a, addr_a) = instance(&redis, "lobby", TWO);
    let (doomed, addr_b) = instance(&redis, "lobby", TWO);
    wait_instances(&redis, "lobby", 2);
    let mut on_a: Vec<Client> = (0..4).map(|_| Client::join(addr_a)).collect();
    let mut on_b: Vec<Client> = (0..4).map(|_| Client::join(addr_b)).collect();
    on_b[0].send("/nick carol\n");
    until_line(&mut on_b[0], "* you are now carol", STEP);
    let mut all = names(&on_a);
    all.extend(names(&on_b[1..]));
    all.insert("carol".into());
    wait_who(&mut on_a[3], &all);

    let killed = Instant::now();
    doomed.signal("-KILL");
    let mut want: HashSet<String> = on_b[1..]
        .iter()
        .map(|c| format!("* {} left (server lost)", c.name))
        .collect();
    want.insert("* carol left (server lost)".into());
    for c in on_a.iter_mut() {
        let until = killed + LOST_WITHIN;
        let mut got = HashSet::new();
        while got != want {
            match c.line_until(until) {
                Ok(line) if line.contains(" left") => {
                    assert!(want.contains(&line), "{}: unexpected {line:?}", c.name);
                    assert!(got.insert(line.clone()), "{}: {line:?} twice", c.name);
                }
                Ok(_) => {}
                Err(e) => panic!("{}: not announced within 15 s ({e:?}); got {got:?}", c.name),
            }
        }
    }
    eprintln!("announced {:?} after the kill", killed.elapsed());
    on_a[2].nick("carol");
    assert_eq!(who(&mut on_a[0]), names(&on_a));
    drop(on_b);
}

#[test]
fn redis_stopped_and_restarted_under_multi_reactor_instances() {
    let mut redis = RedisServer::start();
    let (_a, addr_a) = instance(&redis, "lobby", TWO);
    let (_b, addr_b) = instance(&redis, "lobby", &[]);
    wait_instances(&redis, "lobby", 2);
    let mut on_a: Vec<Client> = (0..4).map(|_| Client::join(addr_a)).collect();
    let mut b1 = Client::join(addr_b);
    let mut all = names(&on_a);
    all.insert(b1.name.clone());
    wait_who(&mut b1, &all);

    redis.stop();
    for c in on_a.iter_mut().chain([&mut b1]) {
        until_line(c, "* link to other servers lost", STEP);
    }
    // Chat among the instance's clients goes on, across its reactors.
    on_a[0].send("during\n");
    let during = format!("<{}> during", on_a[0].name);
    for c in on_a[1..].iter_mut() {
        until_line(c, &during, STEP);
    }
    // A rename waits for the link (docs/federation.md, "When the link is
    // lost"): its uniqueness cannot be checked meanwhile.
    on_a[2].send("/nick dora\n");
    let refused = until_line(
        &mut on_a[2],
        "* error: nick changes wait for the link to other servers; try again later",
        STEP,
    );
    assert!(refused.iter().all(|l| !l.contains("dora")), "{refused:?}");

    redis.restart();
    for c in on_a.iter_mut().chain([&mut b1]) {
        let before = until_line(c, "* link to other servers restored", STEP);
        assert!(
            !before.iter().any(|l| l.starts_with('<')),
            "{}: relayed lines before the restore: {before:?}",
            c.name
        );
    }
    on_a[1].send("after\n");
    let after = format!("<{}> after", on_a[1].name);
    let before = until_line(&mut b1, &after, STEP);
    assert!(
        before.iter().all(|l| !l.starts_with('<')),
        "b1 got outage lines: {before:?}"
    );
    for (i, c) in on_a.iter_mut().enumerate() {
        if i != 1 {
            until_line(c, &after, STEP);
        }
        // Nothing twice: a /who round trip after, and no repeated lines.
        let extra = c.sync();
        assert!(
            extra.iter().all(|l| !l.starts_with('<')),
            "{}: {extra:?}",
            c.name
        );
    }
    let extra = b1.sync();
    assert!(extra.iter().all(|l| !l.starts_with('<')), "b1: {extra:?}");
    assert_eq!(who(&mut b1), all);
    // And once the link is back, the rename goes through the room.
    let was = on_a[2].name.clone();
    on_a[2].nick("dora");
    until_line(&mut b1, &format!("* {was} is now known as dora"), STEP);
}

#[test]
fn sigterm_of_a_multi_reactor_instance_says_goodbye_for_all_its_clients() {
    let redis = RedisServer::start();
    let (_a, addr_a) = instance(&redis, "lobby", &[]);
    let (b, addr_b) = instance(&redis, "lobby", TWO);
    wait_instances(&redis, "lobby", 2);
    let mut a1 = Client::join(addr_a);
    let mut on_b: Vec<Client> = (0..4).map(|_| Client::join(addr_b)).collect();
    let mut all = names(&on_b);
    all.insert(a1.name.clone());
    wait_who(&mut a1, &all);

    b.signal("-TERM");
    for c in on_b.iter_mut() {
        until_line(c, "* server shutting down", STEP);
        c.expect_eof();
    }
    let (status, _, stderr) = b.finish();
    assert_eq!(status.code(), Some(0), "stderr:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let want: HashSet<String> = on_b
        .iter()
        .map(|c| format!("* {} left (server shutting down)", c.name))
        .collect();
    let mut got = HashSet::new();
    let until = Instant::now() + STEP;
    while got != want {
        match a1.line_until(until) {
            Ok(line) if line.contains(" left") => {
                assert!(want.contains(&line), "unexpected {line:?}");
                assert!(got.insert(line.clone()), "{line:?} twice");
            }
            Ok(_) => {}
            Err(e) => panic!("no goodbye ({e:?}); got {got:?}"),
        }
    }
    wait_instances(&redis, "lobby", 1);
    assert_eq!(who(&mut a1), HashSet::from([a1.name.clone()]));
}

/// The readiness lines of examples-cli.md, once: `listening on`, then
/// `metrics on`, printed by reactor 0 once linked, and nothing more.
#[test]
fn readiness_lines_print_once_with_reactors_and_redis() {
    let redis = RedisServer::start();
    let mut cmd = process::example(&["chatroom"], "chatroom");
    cmd.args(["127.0.0.1", "0", "--redis", &redis.url()]).args([
        "--reactors",
        "3",
        "--metrics",
        "127.0.0.1:0",
    ]);
    let (proc, addr) = Proc::start_ready("chatroom", cmd, STEP);
    let metrics = proc.line().expect("a second readiness line");
    assert!(
        metrics.starts_with("metrics on http://127.0.0.1:") && metrics.ends_with("/metrics"),
        "{metrics:?}"
    );
    // Linked already: Redis lists it, and a client is in the shared room.
    wait_instances(&redis, "lobby", 1);
    let mut c = Client::join(addr.parse().unwrap());
    assert_eq!(who(&mut c), HashSet::from([c.name.clone()]));
    proc.signal("-TERM");
    let (status, rest, stderr) = proc.finish();
    assert_eq!(status.code(), Some(0), "stderr:\n{stderr}");
    assert!(rest.is_empty(), "more readiness lines: {rest:?}");
}

/// Refused credentials stop a multi-reactor instance as they stop one
/// reactor: exit 1, one clear line, no readiness line.
#[test]
fn refused_credentials_stop_a_multi_reactor_instance() {
    let redis = RedisServer::start_with(&["--requirepass", "s3cret"]);
    let url = format!("redis://:wrong@127.0.0.1:{}", redis.port());
    let mut cmd = process::example(&["chatroom"], "chatroom");
    cmd.args(["127.0.0.1", "0", "--redis", &url, "--reactors", "2"]);
    let proc = Proc::spawn("chatroom", cmd, STEP);
    let (status, lines, stderr) = proc.finish();
    assert_eq!(status.code(), Some(1), "stderr {stderr}");
    assert!(lines.is_empty(), "no readiness line: {lines:?}");
    assert!(stderr.contains("rejected"), "{stderr}");
    assert!(!stderr.contains("wrong@"), "password shown: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// A client that never reads, on one reactor of a multi-reactor instance,
/// is cut at its own cap; the other reactor's client and the other
/// instance get every line.
#[test]
fn a_client_that_never_reads_is_cut_without_slowing_the_other_reactors() {
    let redis = RedisServer::start();
    let fast = ["--rate", "10000", "--burst", "1000"];
    let mut a_args: Vec<&str> = TWO.iter().chain(&fast).copied().collect();
    a_args.extend(["--max-output", "65536"]);
    let (_a, addr_a) = instance(&redis, "lobby", &a_args);
    let (_b, addr_b) = instance(&redis, "lobby", &fast);
    wait_instances(&redis, "lobby", 2);
    // The sleeper and two readers: at least one reader on each reactor.
    let sleeper = Client::join(addr_a);
    let sleeper_name = sleeper.name.clone();
    let mut readers: Vec<Client> = (0..2).map(|_| Client::join(addr_a)).collect();
    let mut talker = Client::join(addr_b);
    for r in readers.iter_mut() {
        until_line(r, &format!("* {} joined", talker.name), STEP);
    }

    const WINDOW: usize = 32;
    const MAX_LINES: usize = 20_000; // 20 MB with no cut-off: fail
    let text = "x".repeat(1000);
    let mut cut = vec![false; readers.len()];
    let mut sent = 0;
    while !cut.iter().all(|c| *c) {
        assert!(sent < MAX_LINES, "the sleeper was never cut off");
        for i in sent..sent + WINDOW {
            talker.send(format!("{i} {text}\n"));
        }
        for (r, reader) in readers.iter_mut().enumerate() {
            for i in sent..sent + WINDOW {
                let want = format!("<{}> {i} {text}", talker.name);
                loop {
                    let line = reader.line();
                    if line == want {
                        break;
                    }
                    assert_eq!(line, format!("* {sleeper_name} left (too slow)"));
                    cut[r] = true;
                }
            }
        }
        sent += WINDOW;
    }
    readers[0].send("still fast\n");
    let want = format!("<{}> still fast", readers[0].name);
    until_line(&mut talker, &want, STEP);
    until_line(&mut readers[1], &want, STEP);
    drop(sleeper);
}

/// Notice storms: a multi-reactor instance budgets what it delivers once,
/// on reactor 0, in the one order, so its clients on every reactor read
/// the very same notices and sums, and few of them, when a crowd joins
/// another instance and that instance then vanishes.
#[test]
fn a_storm_elsewhere_costs_every_reactor_s_clients_the_same_few_lines() {
    const CROWD: usize = 150;
    let redis = RedisServer::start();
    let (_a, addr_a) = instance(&redis, "lobby", TWO);
    let (doomed, addr_b) = instance(&redis, "lobby", &[]);
    wait_instances(&redis, "lobby", 2);
    // Four observers: both reactors of `a` have some.
    let mut observers: Vec<Client> = (0..4).map(|_| Client::join(addr_a)).collect();
    let first = Client::join(addr_b);
    for o in observers.iter_mut() {
        until_line(o, &format!("* {} joined", first.name), STEP);
    }

    let crowd: Vec<Client> = (0..CROWD).map(|_| Client::join(addr_b)).collect();
    let until = Instant::now() + Duration::from_secs(60);
    let joining: Vec<NoticeTally> = observers
        .iter_mut()
        .map(|o| {
            let mut t = NoticeTally::default();
            t.read_until(o, until, |t| t.joins == CROWD);
            t
        })
        .collect();
    for t in &joining[1..] {
        assert_eq!(
            t.lines, joining[0].lines,
            "the same notices on every reactor"
        );
    }

    doomed.signal("-KILL");
    let until = Instant::now() + LOST_WITHIN + STEP;
    let lost: Vec<NoticeTally> = observers
        .iter_mut()
        .map(|o| {
            let mut t = NoticeTally::default();
            t.read_until(o, until, |t| t.leaves == CROWD + 1);
            t
        })
        .collect();
    for t in &lost[1..] {
        assert_eq!(t.lines, lost[0].lines, "the same notices on every reactor");
    }
    let t = &lost[0];
    assert!(
        t.individual <= 10 && t.summaries == 1,
        "{} clients lost at once cost {} lines: {t:?}",
        CROWD + 1,
        t.lines.len()
    );
    drop(crowd);
}

/// Two reactors, every join and leave said on its own (no storm summary).
const ONE_BY_ONE: [&str; 4] = ["--reactors", "2", "--notices-per-sec", "100000"];

/// Holds redis-server stopped (SIGSTOP) while it lives: a multi-reactor
/// instance's newcomers then wait for their welcome (their join is out to
/// Redis, unanswered). Continued (SIGCONT) when dropped, whatever happened.
struct Frozen(u32);

impl Frozen {
    fn new(redis: &RedisServer) -> Frozen {
        let pid = redis.pid().expect("redis-server runs");
        assert!(process::signal(pid, "-STOP"), "SIGSTOP redis-server");
        Frozen(pid)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        process::signal(self.0, "-CONT");
    }
}

/// Reads `c` until its connection ends; its lines, skipping the outage
/// notices a long freeze may cause.
fn lines_to_eof(c: &mut Client) -> Vec<String> {
    let until = Instant::now() + LOST_WITHIN + STEP;
    let mut got = Vec::new();
    loop {
        match c.line_until(until) {
            Ok(l) if l.starts_with("* link to other servers") => {}
            Ok(l) => got.push(l),
            Err(util::chat::End::Timeout) => panic!("{}: no end; got {got:?}", c.name),
            Err(_) => return got,
        }
    }
}

/// Lifecycle, for newcomers that `/quit` before their welcome came (Redis
/// slow to hand their joins back), on both reactors of an instance: each
/// reads its welcome first, then `* bye`, then its connection ends; the
/// others hear it join, then leave, once each.
#[test]
fn newcomers_that_quit_before_their_welcome_are_welcomed_then_said_bye() {
    let redis = RedisServer::start();
    let (_a, addr) = instance(&redis, "lobby", &ONE_BY_ONE);
    wait_instances(&redis, "lobby", 1);
    let mut observer = Client::join(addr);
    let frozen = Frozen::new(&redis);
    let mut early: Vec<Client> = (0..4).map(|_| Client::connect(addr)).collect();
    for c in early.iter_mut() {
        c.send("/quit\n");
    }
    drop(frozen);
    for c in early.iter_mut() {
        let got = lines_to_eof(c);
        let welcome = format!("* welcome {}! /help lists the commands", c.name);
        // Later newcomers' joins, and the others' quits, may come in
        // before its own `/quit` is read.
        assert_eq!(got.first(), Some(&welcome), "{}: {got:?}", c.name);
        assert_eq!(got.last().map(String::as_str), Some("* bye"), "{got:?}");
        let between = &got[1..got.len() - 1];
        assert!(
            between
                .iter()
                .all(|l| l.ends_with(" joined") || l.ends_with(" left (quit)")),
            "{}: {got:?}",
            c.name
        );
    }
    let mut heard: Vec<String> = Vec::new();
    let until = Instant::now() + STEP;
    while heard.len() < 2 * early.len() {
        match observer.line_until(until) {
            Ok(l) if l.contains(" joined") || l.contains(" left") => heard.push(l),
            Ok(_) => {}
            Err(e) => panic!("observer ({e:?}): {heard:?}"),
        }
    }
    for c in &early {
        let joined = format!("* {} joined", c.name);
        let left = format!("* {} left (quit)", c.name);
        let j = heard.iter().position(|l| *l == joined);
        let l = heard.iter().position(|l| *l == left);
        assert!(j.is_some() && l > j, "{}: {heard:?}", c.name);
    }
    assert_eq!(who(&mut observer), HashSet::from([observer.name.clone()]));
}

/// Newcomers that hang up before their welcome came, on both reactors:
/// nobody hears a `left` without its `joined`, nor either twice, and the
/// room forgets them (`/who`).
#[test]
fn newcomers_that_hang_up_before_their_welcome_leave_no_trace() {
    let redis = RedisServer::start();
    let (_a, addr) = instance(&redis, "lobby", &ONE_BY_ONE);
    wait_instances(&redis, "lobby", 1);
    let mut observer = Client::join(addr);
    let frozen = Frozen::new(&redis);
    let gone: Vec<String> = (0..6)
        .map(|_| {
            let c = Client::connect(addr);
            c.name.clone()
        })
        .collect();
    drop(frozen);
    let me = HashSet::from([observer.name.clone()]);
    wait_who(&mut observer, &me);
    // Something said after them, to read every notice about them before it.
    let mut marker = Client::join(addr);
    marker.send("done\n");
    let before = until_line(&mut observer, &format!("<{}> done", marker.name), STEP);
    for name in &gone {
        let joined = format!("* {name} joined");
        let j: Vec<usize> = (0..before.len()).filter(|&i| before[i] == joined).collect();
        let l: Vec<usize> = (0..before.len())
            .filter(|&i| before[i].starts_with(&format!("* {name} left")))
            .collect();
        assert!(j.len() <= 1 && l.len() == j.len(), "{name}: {before:?}");
        assert!(j.first() < l.first() || j.is_empty(), "{name}: {before:?}");
    }
}

/// SIGTERM while newcomers on both reactors wait for their welcome (Redis
/// frozen): each is told `* server shutting down` and closed, and the
/// process exits 0 within the shutdown's bound.
#[test]
fn sigterm_while_newcomers_wait_for_their_welcome_exits_0() {
    let redis = RedisServer::start();
    let (a, addr) = instance(&redis, "lobby", TWO);
    wait_instances(&redis, "lobby", 1);
    let frozen = Frozen::new(&redis);
    let mut waiting: Vec<Client> = (0..4).map(|_| Client::connect(addr)).collect();
    for c in waiting.iter_mut() {
        c.send("hello\n");
    }
    a.signal("-TERM");
    for c in waiting.iter_mut() {
        let got = lines_to_eof(c);
        assert_eq!(
            got.last().map(String::as_str),
            Some("* server shutting down"),
            "{}: {got:?}",
            c.name
        );
        assert!(
            got.iter().all(|l| l.starts_with("* ")),
            "{}: {got:?}",
            c.name
        );
    }
    let (status, _, stderr) = a.finish();
    drop(frozen);
    assert_eq!(status.code(), Some(0), "stderr:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Limits while newcomers wait for their welcome (Redis frozen), on a
/// multi-reactor instance: `--max-clients` counts the waiting ones too
/// (the one past it reads `* error: server full`), and a partial line sent
/// while waiting is timed once the client is read (`--partial-timeout`):
/// it is cut and the others read `* NAME left (timeout)`.
#[test]
fn limits_hold_for_newcomers_waiting_for_their_welcome() {
    let redis = RedisServer::start();
    let extra = [
        "--reactors",
        "2",
        "--max-clients",
        "4",
        "--partial-timeout",
        "1",
    ];
    let (_a, addr) = instance(&redis, "lobby", &extra);
    wait_instances(&redis, "lobby", 1);
    let mut observer = Client::join(addr);
    let frozen = Frozen::new(&redis);
    let mut waiting: Vec<Client> = (0..3).map(|_| Client::connect(addr)).collect();
    let mut refused = Client::connect(addr);
    refused.expect("* error: server full");
    refused.expect_eof();
    waiting[0].send("half a line");
    drop(frozen);
    let slow = waiting[0].name.clone();
    until_line(&mut observer, &format!("* {slow} left (timeout)"), STEP);
    for c in waiting.iter_mut().skip(1) {
        let first = c.line();
        assert!(first.starts_with("* welcome "), "{}: {first:?}", c.name);
    }
}

/// The Redis stall of `tests/chat_federation.rs` with `--reactors 2` on
/// both instances: when it is back nobody is announced again, either way.
#[test]
fn a_redis_stall_announces_no_join_twice_between_multi_reactor_instances() {
    let redis = RedisServer::start();
    let (_one, addr1) = instance(&redis, "lobby", &["--reactors", "2"]);
    let (_two, addr2) = instance(&redis, "lobby", &["--reactors", "2"]);
    wait_instances(&redis, "lobby", 2);
    let mut a = Client::join(addr1);
    let mut c = Client::join(addr2);
    until_line(&mut a, &format!("* {} joined", c.name), STEP);
    let mut b = Client::join(addr1);
    until_line(&mut a, &format!("* {} joined", b.name), STEP);
    until_line(&mut c, &format!("* {} joined", b.name), STEP);
    let pid = redis.pid().unwrap();
    assert!(process::signal(pid, "-STOP"));
    for x in [&mut a, &mut b, &mut c] {
        until_line(x, "* link to other servers lost", LOST_WITHIN);
    }
    assert!(process::signal(pid, "-CONT"));
    nothing_to_announce(&redis, &mut [&mut a, &mut b], &mut [&mut c]);
}
