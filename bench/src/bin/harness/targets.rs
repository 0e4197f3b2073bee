//! The goals the figures are held to, as data: the report prints them and
//! `main` fails the run when a gated one is missed.
//!
//! Only counts gate (`gate: true`): reads, writes and `epoll_ctl` per 64 B
//! echo message, allocations per message, writes per chat recipient per
//! loop pass. Each is exact, moves by whole calls when the code changes (the
//! mutant that adds a second `read` per echo doubles reads per message) and
//! does not move with the machine's load, so a miss is a regression, in the
//! smoke run as in the full one. Throughput, latency, CPU and memory ratios
//! are reported against their goals but never gate: on a shared machine
//! noise alone moves them across a threshold.

use crate::config::{EchoScenario, Opts};
use crate::format::fr;
use crate::stats::Results;
use crate::trace::Syscalls;
use crate::GROUP_ECHO;

pub struct Target {
    pub name: String,
    pub measured: String,
    /// None: not measured in this run.
    pub ok: Option<bool>,
    /// A count target: a miss fails the run.
    pub gate: bool,
}

fn row(name: String, measured: String, ok: Option<bool>, gate: bool) -> Target {
    Target {
        name,
        measured,
        ok,
        gate,
    }
}

pub fn missed_gates(t: &[Target]) -> Vec<&Target> {
    t.iter().filter(|t| t.gate && t.ok == Some(false)).collect()
}

/// Slack on "one read per message": the count is exact, but an edge that
/// arrives while a pass already drained the socket costs one `EAGAIN` read.
const PER_MESSAGE_SLACK: f64 = 1.05;
/// Allocations per message: 0 in steady state, but the buffer pool may
/// still grow to a new peak of buffers in use at once during the window
/// (10 in 3.1 M messages seen); one per 1,000 messages would be a per-message
/// allocation on some path.
const ALLOCS_PER_MESSAGE: f64 = 0.001;
/// ... plus a few buffers of pool growth, so that a short window on a
/// loaded machine (under 1,000 messages at N = 1 in the smoke run) cannot
/// fail on one new peak.
const ALLOC_SLACK: u64 = 16;

pub fn all(o: &Opts, r: &Results) -> Vec<Target> {
    let mut v = Vec::new();
    syscall_targets(o, r, &mut v);
    alloc_targets(o, r, &mut v);
    throughput_targets(o, r, &mut v);
    memory_and_chat_targets(o, r, &mut v);
    group_targets(o, r, &mut v);
    v
}

fn per(c: &Syscalls, n: f64) -> String {
    format!(
        "{:.3} per message (read {:.3}, write {:.3}, epoll_wait {:.3}, epoll_ctl {:.4}, other {:.3}; {} calls in {n:.0} messages)",
        c.total as f64 / n,
        c.reads() as f64 / n,
        c.writes() as f64 / n,
        c.waits() as f64 / n,
        c.ctl() as f64 / n,
        c.other() as f64 / n,
        c.total
    )
}

fn syscall_targets(o: &Opts, r: &Results, v: &mut Vec<Target>) {
    for sc in &o.meter_echo {
        match r
            .echo
            .meter(&sc.id(), "ours")
            .and_then(|x| Some((x.count, x.syscalls.clone()?)))
        {
            Some((n, c)) => echo_syscall_targets(sc, n, &c, v),
            // A skipped meter says so in the report's header; a failed
            // traced run is in the failures.
            None if r.tracer_note.starts_with("skipped") => {}
            None => v.push(row(
                format!("{}: reads, writes, epoll_ctl per message", sc.label()),
                "–".into(),
                None,
                true,
            )),
        }
    }
}

/// Reads, writes and `epoll_ctl` per message (gated where the message fits
/// one read chunk), and the total per message against issue 5's goals.
fn echo_syscall_targets(sc: &EchoScenario, n: f64, c: &Syscalls, v: &mut Vec<Target>) {
    let label = sc.label();
    let (reads, writes) = (c.reads() as f64 / n, c.writes() as f64 / n);
    let limit = PER_MESSAGE_SLACK / sc.depth as f64;
    let small = sc.size < 16 * 1024;
    let what = if sc.depth == 1 {
        "1 read".to_string()
    } else {
        format!("1 read per {} messages", sc.depth)
    };
    let ungated = if small {
        ""
    } else {
        " (not gated: `read_chunk` = the message size, see notes)"
    };
    v.push(row(
        format!("{label}: ≤ {what} (≤ {limit:.3} reads per message){ungated}"),
        format!("{reads:.3} reads per message ({} in {n:.0})", c.reads()),
        Some(reads <= limit),
        small,
    ));
    v.push(row(
        format!("{label}: ≤ {limit:.3} writes per message"),
        format!("{writes:.3} writes per message ({} in {n:.0})", c.writes()),
        Some(writes <= limit),
        small,
    ));
    v.push(row(
        format!("{label}: no `epoll_ctl` in steady state"),
        format!("{} `epoll_ctl` in {n:.0} messages", c.ctl()),
        Some(c.ctl() == 0),
        true,
    ));
    let (goal, lim) = match (sc.depth, sc.conns) {
        (1, 100) if small => ("≤ 2.05 system calls per message, all calls counted", 2.05),
        (d, _) if d > 1 => ("≤ 0.25 system calls per message, all calls counted", 0.25),
        _ => return,
    };
    let total = c.total as f64 / n;
    v.push(row(
        format!("{label}: {goal}"),
        per(c, n),
        Some(total <= lim),
        false,
    ));
}

fn alloc_targets(o: &Opts, r: &Results, v: &mut Vec<Target>) {
    for sc in &o.echo {
        let runs: Vec<(u64, f64)> = r
            .echo
            .runs
            .get(&(sc.id(), "ours"))
            .map(|x| {
                x.iter()
                    .flatten()
                    .filter_map(|x| Some((x.allocs?.0, x.count)))
                    .collect()
            })
            .unwrap_or_default();
        let allocs: u64 = runs.iter().map(|x| x.0).sum();
        let msgs: f64 = runs.iter().map(|x| x.1).sum();
        let measured = format!(
            "{allocs} allocations in {msgs:.0} messages ({:.6}/msg) over {} windows",
            allocs as f64 / msgs,
            runs.len()
        );
        let got = (!runs.is_empty()).then_some(());
        v.push(row(
            format!(
                "{}: ≤ {ALLOCS_PER_MESSAGE} heap allocations per message (+ {ALLOC_SLACK} for pool growth)",
                sc.label()
            ),
            measured.clone(),
            got.map(|_| allocs as f64 <= ALLOCS_PER_MESSAGE * msgs + ALLOC_SLACK as f64),
            true,
        ));
        if *sc == PP100 {
            v.push(row(
                format!(
                    "{}: zero heap allocations per message (issue 5)",
                    sc.label()
                ),
                measured,
                got.map(|_| allocs == 0),
                false,
            ));
        }
    }
}

const PP100: EchoScenario = EchoScenario {
    conns: 100,
    size: 64,
    depth: 1,
};

fn throughput_targets(o: &Opts, r: &Results, v: &mut Vec<Target>) {
    let t = &r.echo;
    let ok = |x: f64, lim: f64, ge: bool| {
        x.is_finite()
            .then_some(if ge { x >= lim } else { x <= lim })
    };
    for sc in o.echo.iter().filter(|s| s.conns >= 100) {
        let id = sc.id();
        let l = sc.label();
        for (peer, name, lim) in [
            ("tokio", "tokio", 1.0),
            ("raw_mio", "raw mio", 0.95),
            ("epoll", "epoll floor", 0.8),
        ] {
            let x = t.ratio(&id, peer, |r| r.rate);
            v.push(row(
                format!("{l}: throughput ≥ {lim}× {name}"),
                fr(x),
                ok(x, lim, true),
                false,
            ));
        }
        // A zero is a window shorter than a few 10 ms ticks, not a figure.
        let cu = t.ratio(&id, "tokio", |r| r.user_us);
        let cu = if cu > 0.0 { cu } else { f64::NAN };
        v.push(row(
            format!("{l}: user CPU per message ≤ 0.75× tokio"),
            fr(cu),
            ok(cu, 0.75, false),
            false,
        ));
    }
    let pp1 = EchoScenario {
        conns: 1,
        size: 64,
        depth: 1,
    }
    .id();
    if o.echo.iter().any(|s| s.id() == pp1) {
        let x = t.ratio(&pp1, "epoll", |r| r.p50);
        v.push(row(
            "echo N = 1, 64 B: p50 latency ≤ 1.1× the floor".into(),
            format!(
                "{} ({:.1} µs vs {:.1} µs)",
                fr(x),
                t.med(&pp1, "ours", |r| r.p50),
                t.med(&pp1, "epoll", |r| r.p50)
            ),
            ok(x, 1.1, false),
            false,
        ));
    }
}

fn memory_and_chat_targets(o: &Opts, r: &Results, v: &mut Vec<Target>) {
    if let Some(i) = r.idle.get("ours") {
        let per = (i.idle_kb - i.base_kb) * 1024.0 / i.conns as f64;
        let after = (i.after_echo_kb - i.base_kb) * 1024.0 / i.conns as f64;
        v.push(row(
            format!(
                "≤ 256 B of user-space memory per idle connection ({} connections)",
                i.conns
            ),
            format!("{per:.0} B (after one echo on each: {after:.0} B)"),
            Some(per <= 256.0),
            false,
        ));
    }
    for sc in &o.chat {
        if let Some((_, _, Ok(p))) = r
            .passes
            .iter()
            .find(|(l, k, _)| l.starts_with("ours") && *k == sc.clients)
        {
            v.push(row(
                format!("chat K = {}: ≤ 1 write per recipient per loop pass (strace of one second)", sc.clients),
                format!(
                    "{} of {} recipient-passes had more than one write (most in one pass: {}); in {} of those every extra write returned EAGAIN; {:.2} writes per recipient-pass",
                    p.over_one, p.recipient_passes, p.max_in_pass, p.over_one_eagain_only,
                    p.writes as f64 / p.recipient_passes.max(1) as f64
                ),
                Some(p.over_one == 0),
                true,
            ));
        }
        if sc.clients >= 100 {
            let id = sc.id();
            let x = r.chat.ratio(&id, "tokio", |r| r.rate);
            v.push(row(
                format!("chat K = {}: deliveries/s ≥ 1.5× tokio chat", sc.clients),
                format!(
                    "{} ({} vs {})",
                    fr(x),
                    crate::format::f(r.chat.med(&id, "ours", |r| r.rate)),
                    crate::format::f(r.chat.med(&id, "tokio", |r| r.rate))
                ),
                x.is_finite().then_some(x >= 1.5),
                false,
            ));
        }
    }
}

/// Issue 11's goals for a group of reactors: CPU per echoed message and per
/// chat delivery within 1.1× of one reactor's, ≤ 0.01 wake-ups per delivery.
fn group_targets(o: &Opts, r: &Results, v: &mut Vec<Target>) {
    let g = &r.group;
    let cpu = |x: &crate::runs::Run| x.user_us + x.sys_us;
    for &n in o.reactors.iter().filter(|&&n| n > 1) {
        if r.group_skipped.iter().any(|(k, _)| *k == n) {
            continue;
        }
        let e = GROUP_ECHO.id();
        let x = g.ratio_of(&e, &key("echo", n), &e, "group-echo-r1", cpu);
        v.push(row(
            format!(
                "{n} reactors, {}: CPU per echoed message ≤ 1.1× one reactor's",
                GROUP_ECHO.label()
            ),
            fr(x),
            x.is_finite().then_some(x <= 1.1),
            false,
        ));
        if let Some(sc) = crate::group_chat(o) {
            let c = sc.id();
            let x = g.ratio_of(&c, &key("chat", n), &c, "group-chat-r1", cpu);
            v.push(row(
                format!(
                    "{n} reactors, chat K = {}: CPU per delivery ≤ 1.1× one reactor's",
                    sc.clients
                ),
                fr(x),
                x.is_finite().then_some(x <= 1.1),
                false,
            ));
            if let Some(w) = g
                .meter(&c, &key("chat", n))
                .and_then(|m| Some(m.syscalls.as_ref()?.wakes? as f64 / m.count))
            {
                v.push(row(
                    format!("{n} reactors, chat K = {}: ≤ 0.01 wake-ups (eventfd writes) per delivery (goal stated at K = 1000)", sc.clients),
                    format!("{w:.4}"),
                    Some(w <= 0.01),
                    false,
                ));
            }
        }
    }
}

/// The key of ours as a group of `n` reactors in the group table.
pub fn key(kind: &str, n: usize) -> String {
    format!("group-{kind}-r{n}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(reads: u64, writes: u64, ctl: u64, other: u64) -> Syscalls {
        let mut c = Syscalls::default();
        c.by_name.insert("recvfrom".into(), reads);
        c.by_name.insert("sendto".into(), writes);
        c.by_name.insert("epoll_ctl".into(), ctl);
        c.total = reads + writes + ctl + other;
        c
    }

    #[test]
    fn a_second_read_per_echo_misses_a_gate() {
        let mut v = Vec::new();
        echo_syscall_targets(&PP100, 1000.0, &counts(1000, 1000, 0, 50), &mut v);
        assert!(missed_gates(&v).is_empty());
        assert!(v.iter().any(|t| !t.gate && t.ok == Some(true))); // 2.05 per message
        let mut v = Vec::new();
        echo_syscall_targets(&PP100, 1000.0, &counts(2000, 1000, 0, 0), &mut v);
        assert_eq!(missed_gates(&v).len(), 1);
        let mut v = Vec::new();
        echo_syscall_targets(&PP100, 1000.0, &counts(1000, 1000, 3, 0), &mut v);
        assert_eq!(missed_gates(&v).len(), 1);
    }

    #[test]
    fn the_read_chunk_miss_is_reported_not_gated() {
        let big = EchoScenario {
            conns: 100,
            size: 16384,
            depth: 1,
        };
        let mut v = Vec::new();
        echo_syscall_targets(&big, 1000.0, &counts(2000, 1000, 0, 0), &mut v);
        assert!(missed_gates(&v).is_empty());
        assert!(v.iter().any(|t| t.ok == Some(false)));
    }
}
