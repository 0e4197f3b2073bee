//! `--reactors N` on the examples, run as a user would: `multiconn_echo`
//! and `chatroom` with several reactor threads, over loopback, with every
//! wait bounded.

mod util;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use util::chat::{LineClient, NoticeTally};
use util::process::{example, Proc};
use util::{poll_until, with_deadline};

const EXAMPLES: &[&str] = &["chatroom", "multiconn_echo", "multiconn_client"];
const STEP: Duration = Duration::from_secs(20);
const LIMIT: Duration = Duration::from_secs(120);

fn start(name: &str, args: &[&str]) -> (Proc, SocketAddr) {
    let mut cmd = example(EXAMPLES, name);
    cmd.args(["127.0.0.1", "0"]).args(args);
    let (proc, addr) = Proc::start_ready(name, cmd, STEP);
    let addr = addr.parse().expect("an ip:port");
    (proc, addr)
}

fn threads_of(pid: u32) -> Vec<String> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|s| s.trim_end().to_string())
        .collect()
}

fn fds_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// SIGTERM, then exit 0 within the step.
fn stop(proc: Proc) {
    proc.signal("-TERM");
    let (status, _, stderr) = proc.finish();
    assert!(status.success(), "exit {status}; stderr:\n{stderr}");
    assert!(!stderr.contains("panicked"), "stderr:\n{stderr}");
}

#[test]
fn reactors_flag_rejects_bad_values_with_usage() {
    for bad in ["-1", "1025", "x", "1e3", ""] {
        for name in ["chatroom", "multiconn_echo"] {
            let out = example(EXAMPLES, name)
                .arg(format!("--reactors={bad}"))
                .output()
                .expect("run");
            assert_eq!(out.status.code(), Some(2), "{name} --reactors {bad:?}");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains("Usage:") && err.contains("--reactors"),
                "{err}"
            );
        }
    }
}

/// `--redis` with `--reactors N` is no longer refused (it was exit 2):
/// with no Redis there, the readiness line comes after the wait for the
/// link and the reactors serve one standalone room meanwhile. The room
/// through a real Redis is `tests/chat_federation_group.rs`.
#[test]
fn redis_with_several_reactors_serves_while_redis_is_away() {
    with_deadline(LIMIT, || {
        let (server, addr) = start(
            "chatroom",
            &["--reactors", "2", "--redis", "redis://127.0.0.1:1"],
        );
        // With Redis refused the line comes at once, maybe before the
        // second reactor's thread has taken its name.
        let pid = server.child.id();
        let named = || threads_of(pid).contains(&"reactor-1".to_string());
        assert!(poll_until(STEP, named), "{:?}", threads_of(pid));
        // Least-loaded hands these to both reactors: one room regardless.
        // Each newcomer while there is no link is told so after its welcome.
        let lost = "* link to other servers lost";
        let mut a = LineClient::join(addr);
        a.expect(lost);
        let mut b = LineClient::join(addr);
        b.expect(lost);
        let mut c = LineClient::join(addr);
        c.expect(lost);
        a.expect(&format!("* {} joined", b.name));
        a.expect(&format!("* {} joined", c.name));
        c.send("alone\n");
        a.expect(&format!("<{}> alone", c.name));
        b.expect(&format!("* {} joined", c.name));
        b.expect(&format!("<{}> alone", c.name));
        server.signal("-TERM");
        let (status, _, stderr) = server.finish();
        assert_eq!(status.code(), Some(0), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    });
}

#[test]
fn multiconn_echo_with_4_reactors_serves_the_tutorial_client() {
    with_deadline(LIMIT, || {
        for accept in ["least-loaded", "reuseport"] {
            let (server, addr) = start("multiconn_echo", &["--reactors", "4", "--accept", accept]);
            let names = threads_of(server.child.id());
            for i in 0..4 {
                assert!(names.contains(&format!("reactor-{i}")), "{names:?}");
            }
            let out = example(EXAMPLES, "multiconn_client")
                .args(["127.0.0.1", &addr.port().to_string(), "200"])
                .output()
                .expect("run multiconn_client");
            assert!(
                out.status.success(),
                "client: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            stop(server);
        }
    });
}

#[test]
fn reactors_0_means_one_per_core() {
    with_deadline(LIMIT, || {
        let (server, _) = start("chatroom", &["--reactors", "0"]);
        let cores = thread::available_parallelism().map_or(1, |n| n.get());
        let names = threads_of(server.child.id());
        let reactors = names.iter().filter(|n| n.starts_with("reactor-")).count();
        assert_eq!(reactors, cores, "{names:?}");
        stop(server);
    });
}

/// Joins `n` clients, then waits until the room (as `/who` from the last
/// one says) has them all: joins from other reactors may still be on
/// their way to the room's owner when a welcome arrives.
fn join_all(addr: SocketAddr, n: usize) -> Vec<LineClient> {
    let mut clients: Vec<LineClient> = (0..n)
        .map(|_| LineClient::join(addr).give_up_after(LIMIT))
        .collect();
    let last = clients.last_mut().unwrap();
    let until = Instant::now() + STEP;
    loop {
        last.send("/who\n");
        let online = loop {
            let line = last.line();
            if let Some(list) = line.strip_prefix("* online: ") {
                break list.split(", ").count();
            }
        };
        if online == n {
            break;
        }
        assert!(Instant::now() < until, "only {online} of {n} in the room");
    }
    clients
}

/// Reads until `want` relayed lines have come; returns them as
/// (sender, line number), skipping notices.
fn relayed(c: &mut LineClient, want: usize) -> Vec<(usize, usize)> {
    let mut got = Vec::with_capacity(want);
    while got.len() < want {
        let line = c.line();
        if line.starts_with("* ") {
            continue;
        }
        let text = line.split_once("> ").map(|(_, t)| t).expect("<NAME> TEXT");
        let (k, j) = text.split_once(' ').expect("cK lJ");
        let k: usize = k
            .strip_prefix('c')
            .and_then(|k| k.parse().ok())
            .expect("cK");
        let j: usize = j
            .strip_prefix('l')
            .and_then(|j| j.parse().ok())
            .expect("lJ");
        got.push((k, j));
    }
    got
}

/// Whether one total order is consistent with every receiver's sequence:
/// the union of their "came right before" edges has no cycle.
fn one_order(lines: usize, seen: &[Vec<usize>]) -> Result<(), String> {
    let mut after = vec![Vec::new(); lines];
    let mut before = vec![0usize; lines];
    for seq in seen {
        for w in seq.windows(2) {
            after[w[0]].push(w[1]);
            before[w[1]] += 1;
        }
    }
    let mut free: Vec<usize> = (0..lines).filter(|&l| before[l] == 0).collect();
    let mut placed = 0;
    while let Some(l) = free.pop() {
        placed += 1;
        for &m in &after[l] {
            before[m] -= 1;
            if before[m] == 0 {
                free.push(m);
            }
        }
    }
    match lines - placed {
        0 => Ok(()),
        n => Err(format!(
            "{n} lines sit in a cycle: receivers disagree on the order"
        )),
    }
}

/// The chat test: 3 reactors, 150 clients, 20 lines each: every
/// receiver gets every other client's lines once, each sender's in order,
/// all in one order; then SIGTERM reaches everyone.
#[test]
fn chat_3_reactors_150_clients_one_order_then_sigterm_to_all() {
    with_deadline(LIMIT, || {
        const CLIENTS: usize = 150;
        const LINES: usize = 20;
        let (server, addr) = start("chatroom", &["--reactors", "3"]);
        let clients = join_all(addr, CLIENTS);
        let workers: Vec<_> = clients
            .into_iter()
            .enumerate()
            .map(|(k, mut c)| {
                thread::spawn(move || {
                    let mut out = String::new();
                    for j in 0..LINES {
                        out.push_str(&format!("c{k} l{j}\n"));
                    }
                    c.send(out);
                    let got = relayed(&mut c, (CLIENTS - 1) * LINES);
                    (c, got)
                })
            })
            .collect();
        let mut clients = Vec::new();
        let mut seen = Vec::new();
        for (k, w) in workers.into_iter().enumerate() {
            let (c, got) = w.join().expect("client thread");
            let unique: HashSet<_> = got.iter().copied().collect();
            assert_eq!(unique.len(), got.len(), "client {k} got a line twice");
            assert!(
                got.iter().all(|&(s, _)| s != k),
                "client {k} got its own line"
            );
            for s in 0..CLIENTS {
                let from: Vec<usize> = got.iter().filter(|l| l.0 == s).map(|l| l.1).collect();
                if s != k {
                    assert_eq!(from, (0..LINES).collect::<Vec<_>>(), "client {k}, from {s}");
                }
            }
            seen.push(got.iter().map(|&(s, j)| s * LINES + j).collect::<Vec<_>>());
            clients.push(c);
        }
        one_order(CLIENTS * LINES, &seen).unwrap();
        // SIGTERM: every client, on every reactor, is told, then closed.
        server.signal("-TERM");
        for c in &mut clients {
            loop {
                let line = c.line();
                if line == "* server shutting down" {
                    break;
                }
                assert!(line.starts_with("* "), "{}: {line:?}", c.name);
            }
            c.expect_eof();
        }
        let (status, _, stderr) = server.finish();
        assert!(status.success(), "exit {status}; stderr:\n{stderr}");
    });
}

/// Nicks are unique across reactors: of six clients (spread over three
/// reactors) asking for one nick at once, one gets it; when it leaves,
/// the nick is free again.
#[test]
fn nicks_are_unique_across_reactors() {
    with_deadline(LIMIT, || {
        let (server, addr) = start("chatroom", &["--reactors", "3"]);
        let mut clients = join_all(addr, 6);
        for c in &mut clients {
            c.send("/nick Same\n");
        }
        let mut winner = None;
        for (i, c) in clients.iter_mut().enumerate() {
            loop {
                let line = c.line();
                if line == "* you are now Same" {
                    assert!(winner.replace(i).is_none(), "two clients got the nick");
                    break;
                }
                if line == "* error: nick Same is taken" {
                    break;
                }
            }
        }
        let winner = winner.expect("nobody got the nick");
        let other = (winner + 1) % 6;
        // Case-insensitively taken, from any reactor.
        clients[other].send("/nick sAME\n");
        loop {
            let line = clients[other].line();
            if line == "* error: nick sAME is taken" {
                break;
            }
            assert!(!line.starts_with("* you are now"), "{line}");
        }
        let quitter = clients.remove(winner);
        drop(quitter);
        let other = if other > winner { other - 1 } else { other };
        let until = Instant::now() + STEP;
        loop {
            clients[other].send("/nick same\n");
            let line = loop {
                let line = clients[other].line();
                if line.starts_with("* you are now") || line.starts_with("* error: nick") {
                    break line;
                }
            };
            if line == "* you are now same" {
                break;
            }
            assert!(Instant::now() < until, "the nick never came free: {line}");
        }
        stop(server);
    });
}

/// `--max-clients` holds for the group: the sixth client, on whichever
/// reactor, is refused, and a place that comes free is given again.
#[test]
fn max_clients_holds_across_reactors() {
    with_deadline(LIMIT, || {
        let (server, addr) = start("chatroom", &["--reactors", "3", "--max-clients", "5"]);
        let mut clients = join_all(addr, 5);
        for _ in 0..3 {
            let mut extra = LineClient::connect(addr);
            extra.expect("* error: server full");
            extra.expect_eof();
        }
        drop(clients.pop());
        let until = Instant::now() + STEP;
        loop {
            let mut c = LineClient::connect(addr);
            let line = c.line();
            if line.starts_with("* welcome") {
                break;
            }
            assert_eq!(line, "* error: server full");
            assert!(Instant::now() < until, "the place never came free");
        }
        stop(server);
    });
}

/// A client that never reads is cut at its output cap on its reactor;
/// every other client, on every reactor, gets every line meanwhile. The
/// sender stays within a small window of the slowest healthy reader, so
/// only the client that never reads can reach the cap.
#[test]
fn a_slow_consumer_is_cut_without_holding_anyone_up() {
    with_deadline(LIMIT, || {
        const WINDOW: usize = 16; // lines of 1 kB, far below the 64 kB cap
        const MAX_LINES: usize = 20_000; // 20 MB and no cut: fail
        let args = [
            "--reactors",
            "3",
            "--max-output",
            "65536",
            "--rate",
            "1e6",
            "--burst",
            "1e6",
        ];
        let (server, addr) = start("chatroom", &args);
        let mut clients = join_all(addr, 8);
        let slow = clients.remove(4); // never reads again
        socket2::SockRef::from(&slow.stream)
            .set_recv_buffer_size(4096)
            .unwrap();
        let slow_left = format!("* {} left (too slow)", slow.name);
        let mut sender = clients.remove(0);
        let readers = clients.len();
        let progress = Arc::new((Mutex::new(vec![0usize; readers]), Condvar::new()));
        let cut = Arc::new(AtomicUsize::new(0));
        let pad = "p".repeat(1000);
        let workers: Vec<_> = clients
            .into_iter()
            .enumerate()
            .map(|(k, mut c)| {
                let (progress, cut, slow_left, pad) = (
                    progress.clone(),
                    cut.clone(),
                    slow_left.clone(),
                    pad.clone(),
                );
                thread::spawn(move || {
                    let mut count = 0;
                    loop {
                        let line = c.line();
                        if line == slow_left {
                            cut.fetch_add(1, Ordering::SeqCst);
                            continue;
                        }
                        if line.starts_with("* ") {
                            continue;
                        }
                        let text = line.split_once("> ").expect("<NAME> TEXT").1;
                        if text == "END" {
                            return count;
                        }
                        assert_eq!(text, format!("{count:06} {pad}"), "reader {k}");
                        count += 1;
                        let (lock, cv) = &*progress;
                        lock.lock().unwrap()[k] = count;
                        cv.notify_all();
                    }
                })
            })
            .collect();
        let (lock, cv) = &*progress;
        let mut sent = 0;
        let mut after_cut = None;
        loop {
            let mut seen = lock.lock().unwrap();
            while seen.iter().min().unwrap() + WINDOW <= sent {
                let (guard, wait) = cv.wait_timeout(seen, STEP).unwrap();
                assert!(
                    !wait.timed_out(),
                    "readers stalled at {:?} of {sent}",
                    *guard
                );
                seen = guard;
            }
            drop(seen);
            if cut.load(Ordering::SeqCst) == readers {
                // Everyone was told; the others go on getting every line.
                if sent >= *after_cut.get_or_insert(sent) + 100 {
                    break;
                }
            }
            assert!(sent < MAX_LINES, "the client that never reads was not cut");
            sender.send(format!("{sent:06} {pad}\n"));
            sent += 1;
        }
        sender.send("END\n");
        for w in workers {
            assert_eq!(w.join().expect("reader"), sent);
        }
        drop(slow);
        stop(server);
    });
}

/// Threads are named; descriptors go back to their count once clients
/// leave.
#[test]
fn chat_threads_are_named_and_descriptors_come_back() {
    with_deadline(LIMIT, || {
        let (server, addr) = start("chatroom", &["--reactors", "3"]);
        let pid = server.child.id();
        let names = threads_of(pid);
        for i in 0..3 {
            assert!(names.contains(&format!("reactor-{i}")), "{names:?}");
        }
        let baseline = fds_of(pid);
        let clients = join_all(addr, 30);
        assert!(fds_of(pid) >= baseline + 30);
        drop(clients);
        assert!(
            poll_until(STEP, || fds_of(pid) == baseline),
            "descriptors: {baseline} before, {} after",
            fds_of(pid)
        );
        stop(server);
    });
}

/// Notice storms with `--reactors N`: the budget is the sequencer's
/// (reactor 0), so a crowd joining and then vanishing costs every client
/// at most 10 single notices a second and a sum, and the clients on every
/// reactor read the very same lines in the same order.
#[test]
fn a_storm_costs_each_reactor_s_clients_the_same_few_lines() {
    with_deadline(LIMIT, || {
        const CROWD: usize = 300;
        let (server, addr) = start("chatroom", &["--reactors", "3"]);
        // Least-loaded: one observer per reactor.
        let mut observers = join_all(addr, 3);
        for o in &mut observers {
            // The answer comes after every join notice sequenced before it.
            o.send("/who\n");
            while !o.line().starts_with("* online: ") {}
        }
        let read_all = |observers: &mut Vec<LineClient>, done: &dyn Fn(&NoticeTally) -> bool| {
            let until = Instant::now() + LIMIT / 3;
            let tallies: Vec<NoticeTally> = observers
                .iter_mut()
                .map(|o| {
                    let mut t = NoticeTally::default();
                    t.read_until(o, until, done);
                    t
                })
                .collect();
            for (k, t) in tallies.iter().enumerate() {
                assert_eq!(t.lines, tallies[0].lines, "observers 0 and {k} disagree");
            }
            tallies.into_iter().next().unwrap()
        };
        let started = Instant::now();
        let crowd: Vec<LineClient> = (0..CROWD).map(|_| LineClient::join(addr)).collect();
        let joining = read_all(&mut observers, &|t| t.joins == CROWD);
        let secs = started.elapsed().as_secs() as usize + 1;
        assert!(
            joining.individual <= 10 * secs && joining.summaries <= secs + 1,
            "{CROWD} joins in {secs} s cost {} lines: {joining:?}",
            joining.lines.len()
        );
        let started = Instant::now();
        drop(crowd);
        let leaving = read_all(&mut observers, &|t| t.leaves == CROWD);
        let secs = started.elapsed().as_secs() as usize + 1;
        assert!(
            leaving.individual <= 10 * secs && leaving.summaries <= secs + 1,
            "{CROWD} departures in {secs} s cost {} lines: {leaving:?}",
            leaving.lines.len()
        );
        stop(server);
    });
}

/// Newcomers arriving at once on 2 reactors: each one's first line is its
/// welcome, it never hears of someone who joined before it (regression: a
/// welcome said at once by the client's own reactor, ahead of its join's
/// place in the room's order, let in `* X joined` for an earlier X), and a
/// line it sends before reading anything waits for its welcome and reaches
/// the others after its `joined`.
#[test]
fn newcomers_hear_only_of_joins_after_their_own() {
    with_deadline(LIMIT, || {
        const NEWCOMERS: usize = 40;
        let (server, addr) = start(
            "chatroom",
            &["--reactors", "2", "--notices-per-sec", "100000"],
        );
        let mut observer = LineClient::join(addr).give_up_after(LIMIT);
        let gate = Arc::new(std::sync::Barrier::new(NEWCOMERS));
        let workers: Vec<_> = (0..NEWCOMERS)
            .map(|_| {
                let gate = gate.clone();
                thread::spawn(move || {
                    gate.wait();
                    let mut c = LineClient::connect(addr).give_up_after(LIMIT);
                    c.send("early\n"); // before reading anything
                    let welcome = c.line();
                    assert_eq!(
                        welcome,
                        format!("* welcome {}! /help lists the commands", c.name),
                        "first line"
                    );
                    let mut heard = Vec::new();
                    loop {
                        let line = c.line();
                        if line == "<observer> done" {
                            break;
                        }
                        if let Some(who) = line
                            .strip_prefix("* ")
                            .and_then(|l| l.strip_suffix(" joined"))
                        {
                            heard.push(who.to_string());
                        }
                    }
                    (c.name.clone(), heard)
                })
            })
            .collect();
        // The room's order of the joins, and each early line after its sender's join.
        let mut order: Vec<String> = Vec::new();
        let mut early = HashSet::new();
        while early.len() < NEWCOMERS {
            let line = observer.line();
            if let Some(who) = line
                .strip_prefix("* ")
                .and_then(|l| l.strip_suffix(" joined"))
            {
                order.push(who.to_string());
            } else if let Some(who) = line
                .strip_prefix('<')
                .and_then(|l| l.strip_suffix("> early"))
            {
                assert!(
                    order.iter().any(|n| n == who),
                    "<{who}> early before its join"
                );
                assert!(early.insert(who.to_string()), "<{who}> early twice");
            }
        }
        assert_eq!(order.len(), NEWCOMERS, "joins: {order:?}");
        observer.nick("observer");
        observer.send("done\n");
        for w in workers {
            let (name, heard) = w.join().expect("newcomer");
            let mine = order.iter().position(|n| *n == name).expect("joined");
            for who in &heard {
                let theirs = order.iter().position(|n| n == who).expect("a newcomer");
                assert!(
                    theirs > mine,
                    "{name} (join {mine}) heard of {who} (join {theirs}), who came before it"
                );
            }
        }
        stop(server);
    });
}
