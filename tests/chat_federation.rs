//! Several `chatroom --redis URL` processes forming one room, against real
//! redis-servers each test starts on a free port (chat protocol, "Several
//! servers, one room"; issue 12's list).
//!
//! Every wait has a deadline: clients read with timeouts, processes are
//! killed when their test ends, and what cannot signal (Redis's view of
//! the room) is polled against a deadline.

#![cfg(feature = "redis")]

#[path = "util/federation.rs"]
mod federation;
#[path = "util/redis.rs"]
mod redis_server;
mod util;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use federation::{
    instance, nothing_to_announce, one_order, until_line, wait_instances, who, LOST_WITHIN, STEP,
};
use redis_server::RedisServer;
use util::chat::{LineClient as Client, NoticeTally};
use util::process::{self, Proc};

#[test]
fn three_instances_thirty_clients_one_order_nothing_lost_or_doubled() {
    const PER: usize = 10;
    const LINES: usize = 20;
    let redis = RedisServer::start();
    let nodes: Vec<(Proc, SocketAddr)> = (0..3)
        .map(|_| instance(&redis, "lobby", &["--rate", "1000", "--burst", "100"]))
        .collect();
    wait_instances(&redis, "lobby", 3);

    let mut clients: Vec<Client> = Vec::new();
    for i in 0..3 * PER {
        clients.push(Client::join(nodes[i % 3].1));
    }
    // Everyone is in the room once the last joiner's /who lists all 30.
    let names: HashSet<String> = clients.iter().map(|c| c.name.clone()).collect();
    let last = clients.last_mut().unwrap();
    let deadline = Instant::now() + STEP;
    loop {
        if who(last) == names {
            break;
        }
        assert!(Instant::now() < deadline, "/who never listed all 30");
    }
    for c in clients.iter_mut().take(3) {
        assert_eq!(who(c), names, "/who on every instance lists everyone");
    }

    one_order(&mut clients, LINES);
}

#[test]
fn a_line_sent_before_the_welcome_is_relayed_not_lost() {
    let redis = RedisServer::start();
    let (_a, addr_a) = instance(&redis, "lobby", &[]);
    let (_b, addr_b) = instance(&redis, "lobby", &[]);
    wait_instances(&redis, "lobby", 2);
    let mut on_b = Client::join(addr_b);
    // Connect and talk at once, before the join has come back from Redis.
    let mut eager = Client::connect(addr_a);
    eager.send("too early?\n");
    eager.expect(&format!(
        "* welcome {}! /help lists the commands",
        eager.name
    ));
    until_line(&mut on_b, &format!("<{}> too early?", eager.name), STEP);
}

#[test]
fn nicks_are_unique_across_instances_and_freed_when_their_owner_leaves() {
    let redis = RedisServer::start();
    let (_a, addr_a) = instance(&redis, "lobby", &[]);
    let (_b, addr_b) = instance(&redis, "lobby", &[]);
    let (_c, addr_c) = instance(&redis, "other", &[]);
    wait_instances(&redis, "lobby", 2);
    wait_instances(&redis, "other", 1);

    let mut on_a = Client::join(addr_a);
    let mut on_b = Client::join(addr_b);
    until_line(&mut on_a, &format!("* {} joined", on_b.name), STEP);
    let old = on_a.name.clone();
    on_a.nick("alice");
    until_line(&mut on_b, &format!("* {old} is now known as alice"), STEP);
    for taken in ["alice", "ALICE", "Alice"] {
        on_b.send(format!("/nick {taken}\n"));
        let got = on_b.line();
        assert!(
            got.starts_with("* error: ") && got.contains("taken"),
            "{got:?}"
        );
    }
    // Another room on the same Redis is another namespace.
    let mut elsewhere = Client::join(addr_c);
    elsewhere.nick("alice");

    on_a.send("/quit\n");
    until_line(&mut on_b, "* alice left (quit)", STEP);
    on_b.nick("alice");
    let mut on_a2 = Client::join(addr_a);
    on_a2.send("/nick alice\n");
    assert!(on_a2.line().contains("taken"));
}

#[test]
fn a_killed_instance_is_announced_within_15_s_and_its_nicks_freed() {
    let redis = RedisServer::start();
    let (_a, addr_a) = instance(&redis, "lobby", &[]);
    let (_b, addr_b) = instance(&redis, "lobby", &[]);
    let (doomed, addr_c) = instance(&redis, "lobby", &[]);
    wait_instances(&redis, "lobby", 3);
    let mut on_a = Client::join(addr_a);
    let mut on_b = Client::join(addr_b);
    let mut on_c1 = Client::join(addr_c);
    on_c1.nick("carol");
    let on_c2 = Client::join(addr_c);
    let c2 = on_c2.name.clone();
    for c in [&mut on_a, &mut on_b] {
        until_line(c, &format!("* {c2} joined"), STEP);
    }

    let killed = Instant::now();
    doomed.signal("-KILL");
    for c in [&mut on_a, &mut on_b] {
        let want: HashSet<String> = [
            "* carol left (server lost)".to_string(),
            format!("* {c2} left (server lost)"),
        ]
        .into();
        let until = killed + LOST_WITHIN;
        let mut got = HashSet::new();
        while got != want {
            match c.line_until(until) {
                Ok(line) if line.contains("left") => {
                    assert!(got.insert(line.clone()), "{line:?} twice");
                    assert!(want.contains(&line), "unexpected {line:?}");
                }
                Ok(_) => {}
                Err(e) => panic!("{}: not announced within 15 s ({e:?}); got {got:?}", c.name),
            }
        }
    }
    eprintln!("announced {:?} after the kill", killed.elapsed());
    on_a.nick("carol");
    assert_eq!(
        who(&mut on_b),
        HashSet::from(["carol".to_string(), on_b.name.clone()])
    );
    drop(on_c1);
}

#[test]
fn redis_going_away_and_coming_back() {
    let mut redis = RedisServer::start();
    let (_a, addr_a) = instance(&redis, "lobby", &[]);
    let (_b, addr_b) = instance(&redis, "lobby", &[]);
    wait_instances(&redis, "lobby", 2);
    let mut a1 = Client::join(addr_a);
    let mut a2 = Client::join(addr_a);
    let mut b1 = Client::join(addr_b);
    until_line(&mut a1, &format!("* {} joined", b1.name), STEP);
    until_line(&mut a2, &format!("* {} joined", b1.name), STEP);
    a1.send("before\n");
    until_line(&mut b1, &format!("<{}> before", a1.name), STEP);
    until_line(&mut a2, &format!("<{}> before", a1.name), STEP);

    redis.stop();
    for c in [&mut a1, &mut a2, &mut b1] {
        until_line(c, "* link to other servers lost", STEP);
    }
    // Local chat goes on.
    a1.send("during\n");
    until_line(&mut a2, &format!("<{}> during", a1.name), STEP);

    redis.restart();
    // Backoff is at most 5 s between tries.
    for c in [&mut a1, &mut a2, &mut b1] {
        let before = until_line(c, "* link to other servers restored", STEP);
        assert!(
            !before.iter().any(|l| l.starts_with('<')),
            "{}: relayed lines before the restore: {before:?}",
            c.name
        );
    }
    a2.send("after\n");
    until_line(&mut a1, &format!("<{}> after", a2.name), STEP);
    let before = until_line(&mut b1, &format!("<{}> after", a2.name), STEP);
    assert!(
        before.iter().all(|l| !l.starts_with('<')),
        "b1 got outage lines: {before:?}"
    );
    // Nothing twice: a /who round trip after, and no repeated lines.
    let extra = b1.sync();
    assert!(extra.iter().all(|l| !l.starts_with('<')), "b1: {extra:?}");
    let extra = a1.sync();
    assert!(extra.iter().all(|l| !l.starts_with('<')), "a1: {extra:?}");
    assert_eq!(who(&mut b1).len(), 3);
}

#[test]
fn a_client_that_never_reads_is_cut_without_slowing_the_room() {
    let redis = RedisServer::start();
    let (_a, addr_a) = instance(
        &redis,
        "lobby",
        &[
            "--max-output",
            "65536",
            "--rate",
            "10000",
            "--burst",
            "1000",
        ],
    );
    let (_b, addr_b) = instance(&redis, "lobby", &["--rate", "10000", "--burst", "1000"]);
    wait_instances(&redis, "lobby", 2);
    let sleeper = Client::join(addr_a);
    let sleeper_name = sleeper.name.clone();
    let mut reader_a = Client::join(addr_a);
    let mut talker = Client::join(addr_b);
    until_line(&mut reader_a, &format!("* {} joined", talker.name), STEP);

    // Lines go out in windows far below the cap, so only the client that
    // never reads can overflow; the reader on the same instance must get
    // every one, in order, while the sleeper is cut.
    const WINDOW: usize = 32;
    const MAX_LINES: usize = 20_000; // 20 MB with no cut-off: fail
    let text = "x".repeat(1000);
    let started = Instant::now();
    let mut cut = false;
    let mut sent = 0;
    while !cut {
        assert!(sent < MAX_LINES, "the sleeper was never cut off");
        for i in sent..sent + WINDOW {
            talker.send(format!("{i} {text}\n"));
        }
        for i in sent..sent + WINDOW {
            let want = format!("<{}> {i} {text}", talker.name);
            loop {
                let line = reader_a.line();
                if line == want {
                    break;
                }
                assert_eq!(
                    line,
                    format!("* {sleeper_name} left (too slow)"),
                    "reader got something else"
                );
                cut = true;
            }
        }
        sent += WINDOW;
    }
    eprintln!(
        "sleeper cut after {sent} lines of 1 KB through Redis, {:?}",
        started.elapsed()
    );
    // The room goes on at once.
    reader_a.send("still fast\n");
    until_line(
        &mut talker,
        &format!("<{}> still fast", reader_a.name),
        STEP,
    );
    drop(sleeper);
}

#[test]
fn sigterm_of_one_instance_leaves_the_others_working() {
    let redis = RedisServer::start();
    let (_a, addr_a) = instance(&redis, "lobby", &[]);
    let (b, addr_b) = instance(&redis, "lobby", &[]);
    wait_instances(&redis, "lobby", 2);
    let mut a1 = Client::join(addr_a);
    let mut a2 = Client::join(addr_a);
    let mut b1 = Client::join(addr_b);
    until_line(&mut a1, &format!("* {} joined", b1.name), STEP);

    b.signal("-TERM");
    until_line(&mut b1, "* server shutting down", STEP);
    b1.expect_eof();
    let (status, _, stderr) = b.finish();
    assert_eq!(status.code(), Some(0), "stderr:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    until_line(
        &mut a1,
        &format!("* {} left (server shutting down)", b1.name),
        STEP,
    );
    wait_instances(&redis, "lobby", 1);
    a1.send("still here\n");
    until_line(&mut a2, &format!("<{}> still here", a1.name), STEP);
    assert_eq!(who(&mut a2).len(), 2);
}

#[test]
fn an_instance_started_before_its_redis_links_up_when_redis_appears() {
    let port = redis_server::free_port();
    let mut cmd = process::example(&["chatroom"], "chatroom");
    cmd.args([
        "127.0.0.1",
        "0",
        "--redis",
        &format!("redis://127.0.0.1:{port}"),
    ]);
    let (_a, addr) = Proc::start_ready("chatroom", cmd, Duration::from_secs(20));
    let addr: SocketAddr = addr.parse().unwrap();
    // Standalone meanwhile.
    let mut x = Client::join(addr);
    let mut y = Client::join(addr);
    until_line(&mut x, &format!("* {} joined", y.name), STEP);
    y.send("alone\n");
    until_line(&mut x, &format!("<{}> alone", y.name), STEP);

    let redis = RedisServer::start_on(port, &[]);
    until_line(&mut x, "* link to other servers restored", STEP);
    let (_b, addr_b) = instance(&redis, "lobby", &[]);
    wait_instances(&redis, "lobby", 2);
    let mut z = Client::join(addr_b);
    assert_eq!(
        who(&mut z),
        HashSet::from([x.name.clone(), y.name.clone(), z.name.clone()])
    );
    x.send("linked\n");
    until_line(&mut z, &format!("<{}> linked", x.name), STEP);
    until_line(&mut y, &format!("<{}> linked", x.name), STEP);
}

#[test]
fn a_bad_redis_url_is_a_usage_error() {
    for url in [
        "localhost:6379",
        "redis://h:0",
        "rediss://h:1",
        "redis://h:1/x",
    ] {
        let mut cmd = process::example(&["chatroom"], "chatroom");
        cmd.args(["127.0.0.1", "0", "--redis", url]);
        let proc = Proc::spawn("chatroom", cmd, STEP);
        let (status, lines, stderr) = proc.finish();
        assert_eq!(status.code(), Some(2), "{url}: stderr {stderr}");
        assert!(lines.is_empty(), "{url}: {lines:?}");
        assert!(
            stderr.contains("--redis") && stderr.contains("URL"),
            "{url}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn a_redis_that_refuses_the_credentials_stops_the_chatroom_with_a_clear_error() {
    let redis = RedisServer::start_with(&["--requirepass", "s3cret"]);
    for (url, want) in [
        (redis.url(), "requires a password"),
        (
            format!("redis://:wrong@127.0.0.1:{}", redis.port()),
            "rejected",
        ),
    ] {
        let mut cmd = process::example(&["chatroom"], "chatroom");
        cmd.args(["127.0.0.1", "0", "--redis", &url]);
        let proc = Proc::spawn("chatroom", cmd, STEP);
        let (status, lines, stderr) = proc.finish();
        assert_eq!(status.code(), Some(1), "{url}: stderr {stderr}");
        assert!(lines.is_empty(), "{url}: no readiness line: {lines:?}");
        assert!(stderr.contains(want), "{url}: {stderr}");
        assert!(
            !stderr.contains("s3cret") && !stderr.contains("wrong@"),
            "password shown: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    let good = format!("redis://:s3cret@127.0.0.1:{}", redis.port());
    let mut cmd = process::example(&["chatroom"], "chatroom");
    cmd.args(["127.0.0.1", "0", "--redis", &good]);
    let (_ok, addr) = Proc::start_ready("chatroom", cmd, STEP);
    let _ = addr;
    wait_instances_auth(&redis, "s3cret", 1);
}

/// As [`wait_instances`], on a server with a password.
fn wait_instances_auth(redis: &RedisServer, password: &str, n: usize) {
    let deadline = Instant::now() + STEP;
    loop {
        let got = redis.cli(&[
            "-a",
            password,
            "--no-auth-warning",
            "SCARD",
            "chatroom:lobby:inst",
        ]);
        if got == n.to_string() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{got} instances registered, want {n}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_redis_that_stops_answering_counts_as_a_lost_link() {
    let redis = RedisServer::start();
    let (_a, addr) = instance(&redis, "lobby", &[]);
    wait_instances(&redis, "lobby", 1);
    let mut x = Client::join(addr);
    let mut y = Client::join(addr);
    until_line(&mut x, &format!("* {} joined", y.name), STEP);
    let pid = redis.pid().unwrap();
    assert!(process::signal(pid, "-STOP"));
    // Redis behind is the link lost: replies overdue past 5 s.
    let stopped = Instant::now();
    until_line(
        &mut x,
        "* link to other servers lost",
        Duration::from_secs(15),
    );
    eprintln!("lost noticed {:?} after SIGSTOP", stopped.elapsed());
    y.send("meanwhile\n");
    until_line(&mut x, &format!("<{}> meanwhile", y.name), STEP);
    assert!(process::signal(pid, "-CONT"));
    until_line(&mut y, "* link to other servers lost", STEP);
    until_line(
        &mut x,
        "* link to other servers restored",
        Duration::from_secs(15),
    );
    until_line(&mut y, "* link to other servers restored", STEP);
    x.send("through redis again\n");
    until_line(&mut y, &format!("<{}> through redis again", x.name), STEP);
}

/// Notice storms with `--redis`: each instance budgets what it delivers
/// from the bus (docs/federation.md). A crowd joining another instance,
/// then that instance vanishing (one `lost` naming all of them), costs a
/// client here at most 10 single notices a second and one sum.
#[test]
fn a_storm_on_another_instance_costs_a_client_a_few_lines() {
    const CROWD: usize = 200;
    let redis = RedisServer::start();
    let (_a, addr_a) = instance(&redis, "lobby", &[]);
    let (doomed, addr_b) = instance(&redis, "lobby", &[]);
    wait_instances(&redis, "lobby", 2);
    let mut observer = Client::join(addr_a);
    let first = Client::join(addr_b);
    until_line(&mut observer, &format!("* {} joined", first.name), STEP);

    let started = Instant::now();
    let crowd: Vec<Client> = (0..CROWD).map(|_| Client::join(addr_b)).collect();
    let mut joining = NoticeTally::default();
    let until = Instant::now() + Duration::from_secs(60);
    joining.read_until(&mut observer, until, |t| t.joins == CROWD);
    let secs = started.elapsed().as_secs() as usize + 1;
    assert!(
        joining.individual <= 10 * secs && joining.summaries <= secs + 1,
        "{CROWD} joins in {secs} s cost {} lines: {joining:?}",
        joining.lines.len()
    );

    doomed.signal("-KILL");
    let mut lost = NoticeTally::default();
    lost.read_until(&mut observer, Instant::now() + LOST_WITHIN + STEP, |t| {
        t.leaves == CROWD + 1
    });
    assert!(
        lost.individual <= 10 && lost.summaries == 1,
        "{} clients lost at once cost {} lines: {lost:?}",
        CROWD + 1,
        lost.lines.len()
    );
    assert!(
        lost.lines[..lost.individual]
            .iter()
            .all(|l| l.ends_with(" left (server lost)")),
        "{lost:?}"
    );
    drop(crowd);
}

/// A Redis that refuses the connection is not one that is slow to answer:
/// the readiness line comes at once (not after the 5 s wait for a slow
/// Redis), and a client welcomed while there is no link is told
/// `* link to other servers lost` before it is ever told `restored`.
#[test]
fn a_refused_redis_gives_the_readiness_line_at_once_and_lost_before_restored() {
    let port = redis_server::free_port();
    let mut cmd = process::example(&["chatroom"], "chatroom");
    cmd.args([
        "127.0.0.1",
        "0",
        "--redis",
        &format!("redis://127.0.0.1:{port}"),
    ]);
    let spawned = Instant::now();
    let (_a, addr) = Proc::start_ready("chatroom", cmd, STEP);
    let waited = spawned.elapsed();
    assert!(
        waited < Duration::from_secs(3),
        "readiness line {waited:?} after the start, though Redis refused at once"
    );
    let addr: SocketAddr = addr.parse().unwrap();
    let mut x = Client::join(addr);
    assert_eq!(
        x.line(),
        "* link to other servers lost",
        "after the welcome"
    );
    let _redis = RedisServer::start_on(port, &[]);
    let before = until_line(&mut x, "* link to other servers restored", STEP);
    assert!(
        !before.iter().any(|l| l.contains("link to other servers")),
        "{before:?}"
    );
}

/// Two instances, clients on both, a Redis stall long enough for both to
/// call the link lost: when it is back nobody is announced again, in
/// either direction (spec: every notice reaches every client exactly once).
#[test]
fn a_redis_stall_announces_no_join_twice_in_either_direction() {
    let redis = RedisServer::start();
    let (_one, addr1) = instance(&redis, "lobby", &[]);
    let (_two, addr2) = instance(&redis, "lobby", &[]);
    wait_instances(&redis, "lobby", 2);
    let mut a = Client::join(addr1);
    let mut c = Client::join(addr2);
    until_line(&mut a, &format!("* {} joined", c.name), STEP);
    let mut b = Client::join(addr1);
    until_line(&mut a, &format!("* {} joined", b.name), STEP);
    until_line(&mut c, &format!("* {} joined", b.name), STEP);

    let pid = redis.pid().unwrap();
    assert!(process::signal(pid, "-STOP"));
    until_line(&mut a, "* link to other servers lost", LOST_WITHIN);
    until_line(&mut b, "* link to other servers lost", STEP);
    until_line(&mut c, "* link to other servers lost", LOST_WITHIN);
    assert!(process::signal(pid, "-CONT"));
    nothing_to_announce(&redis, &mut [&mut a, &mut b], &mut [&mut c]);
}

/// The same across a full Redis restart: Redis comes back empty and every
/// instance registers again; nobody came or went, so nobody is announced.
#[test]
fn a_redis_restart_announces_nobody_again() {
    let mut redis = RedisServer::start();
    let (_one, addr1) = instance(&redis, "lobby", &[]);
    let (_two, addr2) = instance(&redis, "lobby", &[]);
    wait_instances(&redis, "lobby", 2);
    let mut a = Client::join(addr1);
    let mut c = Client::join(addr2);
    until_line(&mut a, &format!("* {} joined", c.name), STEP);
    let mut b = Client::join(addr1);
    until_line(&mut c, &format!("* {} joined", b.name), STEP);
    until_line(&mut a, &format!("* {} joined", b.name), STEP);
    redis.stop();
    for x in [&mut a, &mut b, &mut c] {
        until_line(x, "* link to other servers lost", STEP);
    }
    redis.restart();
    nothing_to_announce(&redis, &mut [&mut a, &mut b], &mut [&mut c]);
}

/// Redis stops answering (SIGSTOP): a line between two clients of one
/// instance still arrives within the relay bound (own lines not back
/// within 1 s while Redis says nothing at all: link lost, delivered here),
/// not after the 5 s reply deadline. One reactor and two.
#[test]
fn a_stalled_redis_delays_local_chat_by_at_most_the_relay_bound() {
    for extra in [&[][..], &["--reactors", "2"][..]] {
        let redis = RedisServer::start();
        let (_a, addr) = instance(&redis, "lobby", extra);
        wait_instances(&redis, "lobby", 1);
        let mut x = Client::join(addr);
        let mut y = Client::join(addr);
        until_line(&mut x, &format!("* {} joined", y.name), STEP);
        y.send("linked\n");
        until_line(&mut x, &format!("<{}> linked", y.name), STEP);
        let pid = redis.pid().unwrap();
        assert!(process::signal(pid, "-STOP"));
        let sent = Instant::now();
        y.send("while redis sleeps\n");
        until_line(&mut x, &format!("<{}> while redis sleeps", y.name), STEP);
        let took = sent.elapsed();
        eprintln!("{extra:?}: local line {took:?} after SIGSTOP");
        assert!(process::signal(pid, "-CONT"));
        // The bound is about 1.25 s; 3 s leaves room for a loaded machine
        // and stays well under the 5 s reply deadline it replaces.
        assert!(
            took < Duration::from_secs(3),
            "{extra:?}: the local line took {took:?} with Redis stalled"
        );
        until_line(
            &mut x,
            "* link to other servers restored",
            Duration::from_secs(15),
        );
        x.send("through redis again\n");
        until_line(&mut y, &format!("<{}> through redis again", x.name), STEP);
    }
}

/// What changed during an outage is announced once on restore: a client
/// of instance two who left meanwhile is `left` once, one who came
/// meanwhile is `joined` once, for instance one's clients; instance two's
/// remaining client hears nothing of instance one's, who stayed.
#[test]
fn changes_during_an_outage_are_announced_once_on_restore() {
    let mut redis = RedisServer::start();
    let (_one, addr1) = instance(&redis, "lobby", &[]);
    let (_two, addr2) = instance(&redis, "lobby", &[]);
    wait_instances(&redis, "lobby", 2);
    let mut a = Client::join(addr1);
    let mut c = Client::join(addr2);
    let mut e = Client::join(addr2);
    until_line(&mut a, &format!("* {} joined", e.name), STEP);
    until_line(&mut c, &format!("* {} joined", e.name), STEP);
    redis.stop();
    for x in [&mut a, &mut c, &mut e] {
        until_line(x, "* link to other servers lost", STEP);
    }
    let gone = c.name.clone();
    drop(c);
    until_line(&mut e, &format!("* {gone} left"), STEP);
    let mut d = Client::join(addr2);
    until_line(&mut d, "* link to other servers lost", STEP);
    redis.restart();
    until_line(&mut a, "* link to other servers restored", LOST_WITHIN);
    until_line(&mut e, "* link to other servers restored", LOST_WITHIN);
    until_line(&mut d, "* link to other servers restored", LOST_WITHIN);
    wait_instances(&redis, "lobby", 2);
    // Lines both ways after the restore, then a few quiet beats.
    e.send("after from two\n");
    a.send("after from one\n");
    let mut seen_a = until_line(&mut a, &format!("<{}> after from two", e.name), STEP);
    let mut seen_e = until_line(&mut e, &format!("<{}> after from one", a.name), STEP);
    let quiet_until = Instant::now() + Duration::from_secs(5);
    while let Ok(line) = a.line_until(quiet_until) {
        seen_a.push(line);
    }
    while let Ok(line) = e.line_until(quiet_until) {
        seen_e.push(line);
    }
    let presence_a: Vec<&String> = federation::presence(&seen_a);
    assert_eq!(
        presence_a,
        vec![&format!("* {gone} left"), &format!("* {} joined", d.name)],
        "a: {seen_a:?}"
    );
    assert!(federation::presence(&seen_e).is_empty(), "e: {seen_e:?}");
}
