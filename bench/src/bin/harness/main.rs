//! The benchmark driver: runs every server against the load generator, in
//! rounds, with the meters around each measured window, and writes the
//! report. Run through `bench/run.sh` (which builds everything first), from
//! the repository root:
//!
//! ```text
//! bash bench/run.sh            # full matrix -> docs/benchmarks.md, docs/benchmarks.svg
//! bash bench/run.sh --smoke    # ~1 min, CI -> <bench target dir>/smoke/
//! ```
//!
//! Each round runs every server once per scenario, the order rotated from
//! round to round, so ours alternates with each peer; ratios are taken
//! within a round, then their median is reported. Servers run on the low
//! cores, the load and the meters on the high ones (`config::Cpus`; on 2
//! cores: 0 and 1). Throughput, latency, CPU and allocations come from runs
//! without any tracer attached; system calls come from one extra run per
//! server and scenario with `perf stat` (or `strace -c`) attached, since
//! tracing slows the server down. Ours also runs as a group of reactors
//! (`--reactors 1,2,4`) for CPU per message and wake-ups per delivery.
//!
//! Exit status: 0; 1 when a run failed or a count target (`targets`, the
//! gated rows: reads, writes, `epoll_ctl` and allocations per message,
//! writes per recipient per pass) was missed; 2 for a bad command line. The
//! report is written in every case.
//!
//! Modules, in the order a run uses them: `config` (what to run), `processes`
//! (servers and load), `meters` and `trace` (what is read), `runs` and
//! `passes` (one window each), `stats` (medians, ratios), `targets` (the
//! goals and which of them gate), `report` and `format` (Markdown), `chart`
//! (SVG); `redis` is issue 12's scenario, whole (servers, meters, report
//! section).

mod chart;
mod config;
mod format;
mod layers;
mod meters;
mod passes;
mod processes;
mod redis;
mod report;
mod runs;
mod stats;
mod targets;
mod trace;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Instant;

use config::{chat_servers, echo_servers, group_servers, opts, EchoScenario, Opts, Server};
use passes::pass_trace;
use processes::help_mentions;
use runs::{chat_args, cross_check, echo_args, idle_rss, measure, Run};
use stats::{Results, Table};
use trace::{strace_works, tracer, Tracer};

/// Errors are messages for the person running the harness.
type Res<T> = Result<T, String>;

fn main() {
    let o = opts();
    match run(&o) {
        Ok(()) => {}
        Err(e) => {
            eprintln!("harness: {e}");
            std::process::exit(1);
        }
    }
}

fn run(o: &Opts) -> Res<()> {
    fresh(o)?;
    std::fs::create_dir_all(o.out_dir.join("tmp")).map_err(|e| e.to_string())?;
    let (tracer, tracer_note) = tracer();
    let servers = echo_servers_here(o);
    let chat = chat_servers(o);
    let mut r = Results {
        echo: Table::default(),
        chat: Table::default(),
        group: Table::default(),
        group_skipped: Vec::new(),
        redis: Default::default(),
        idle: BTreeMap::new(),
        xcheck: Vec::new(),
        passes: Vec::new(),
        tracer_note,
        failures: Vec::new(),
        started: Instant::now(),
        layers: Default::default(),
    };
    eprintln!("measuring {}", o.tree.describe());
    rounds(o, &servers, &chat, &mut r);
    traced(o, &tracer, &servers, &chat, &mut r);
    layers::run(o, &tracer, &mut r);
    group(o, &tracer, &mut r);
    redis::fanout(o, &mut r);
    pass_traces(o, &tracer, &chat, &mut r);
    idle(o, &servers, &mut r);
    cross_checks(o, &servers, &mut r);
    finish(o, &servers, &chat, &r)
}

/// Every binary to be measured must be at least as new as its sources.
fn fresh(o: &Opts) -> Res<()> {
    let bins = [
        "ours_echo",
        "raw_mio_echo",
        "tokio_echo",
        "epoll_echo",
        "tokio_chat",
        "load",
    ];
    for b in bins {
        processes::check_fresh(&o.bin.join(b))?;
    }
    processes::check_fresh(&o.chatroom)?;
    if !o.reactors.is_empty() {
        processes::check_fresh(&o.echo_example)?;
    }
    Ok(())
}

/// The echo servers, less Python where there is no python3.
fn echo_servers_here(o: &Opts) -> Vec<Server> {
    let mut servers = echo_servers(o);
    if o.python
        && Command::new("python3")
            .arg("--version")
            .output()
            .map_or(true, |r| !r.status.success())
    {
        eprintln!("note: python3 not found; the Python server is skipped");
        servers.retain(|s| s.key != "python");
    }
    servers
}

pub fn progress(r: &Results, what: std::fmt::Arguments) {
    eprintln!("[{:>4}s] {what}", r.started.elapsed().as_secs());
}

/// Keeps a run in `table` at `round`, or its failure in `r.failures`.
fn keep(
    r: &mut Results,
    table: fn(&mut Results) -> &mut Table,
    key: (String, &'static str),
    rounds: usize,
    round: usize,
    run: Res<Run>,
) {
    let run = run.map_err(|e| r.failures.push(e)).ok();
    table(r)
        .runs
        .entry(key)
        .or_insert_with(|| vec![None; rounds])[round] = run;
}

/// Throughput, latency, CPU, allocations: rounds, server order rotated.
fn rounds(o: &Opts, servers: &[Server], chat: &[Server], r: &mut Results) {
    for round in 0..o.rounds {
        for sc in &o.echo {
            for i in 0..servers.len() {
                let s = &servers[(i + round) % servers.len()];
                let run = measure(o, s, echo_args(o, sc, o.duration), &Tracer::None);
                if let Ok(x) = &run {
                    progress(
                        r,
                        format_args!(
                            "round {} {:<28} {:<8} {:>10.0} msg/s  p50 {:>8.1} µs  p99 {:>8.1} µs",
                            round + 1,
                            sc.label(),
                            s.key,
                            x.rate,
                            x.p50,
                            x.p99
                        ),
                    );
                }
                keep(r, |r| &mut r.echo, (sc.id(), s.key), o.rounds, round, run);
            }
        }
        for sc in &o.chat {
            for i in 0..chat.len() {
                let s = &chat[(i + round) % chat.len()];
                let run = measure(o, s, chat_args(o, sc, o.duration), &Tracer::None);
                if let Ok(x) = &run {
                    progress(
                        r,
                        format_args!(
                            "round {} chat K = {:<5} {:<8} {:>10.0} deliveries/s  p99 {:>8.1} µs",
                            round + 1,
                            sc.clients,
                            s.key,
                            x.rate,
                            x.p99
                        ),
                    );
                }
                keep(r, |r| &mut r.chat, (sc.id(), s.key), o.rounds, round, run);
            }
        }
    }
}

/// System calls: one traced run per server and scenario.
fn traced(o: &Opts, tracer: &Tracer, servers: &[Server], chat: &[Server], r: &mut Results) {
    if *tracer == Tracer::None {
        return;
    }
    for sc in &o.meter_echo {
        for s in servers {
            match measure(o, s, echo_args(o, sc, o.meter_duration), tracer) {
                Ok(x) => {
                    let per = x
                        .syscalls
                        .as_ref()
                        .map_or(f64::NAN, |c| c.total as f64 / x.count);
                    progress(
                        r,
                        format_args!(
                            "traced {:<28} {:<8} {per:.3} syscalls/msg",
                            sc.label(),
                            s.key
                        ),
                    );
                    r.echo.meter.insert((sc.id(), s.key), x);
                }
                Err(e) => r.failures.push(e),
            }
        }
    }
    for sc in &o.chat {
        for s in chat {
            match measure(o, s, chat_args(o, sc, o.meter_duration), tracer) {
                Ok(x) => {
                    r.chat.meter.insert((sc.id(), s.key), x);
                }
                Err(e) => r.failures.push(e),
            }
        }
    }
}

/// The echo scenario of the group runs: ping-pong, 100 connections, 64 B.
pub const GROUP_ECHO: EchoScenario = EchoScenario {
    conns: 100,
    size: 64,
    depth: 1,
};

/// The chat scenario of the group runs: the middle K of the matrix.
fn group_chat(o: &Opts) -> Option<config::ChatScenario> {
    o.chat.get(o.chat.len() / 2).copied()
}

/// Ours as a group of reactors, for each count in `--reactors`: untraced
/// rounds (CPU per message and delivery) and one traced run each (wake-ups).
fn group(o: &Opts, tracer: &Tracer, r: &mut Results) {
    if o.reactors.is_empty() {
        return;
    }
    let echo_ok = help_mentions(&o.echo_example, "--reactors");
    let chat_ok = help_mentions(&o.chatroom, "--reactors");
    for &n in &o.reactors {
        if n > 1 && !(echo_ok && chat_ok) {
            let lacking: Vec<String> = [(&o.echo_example, echo_ok), (&o.chatroom, chat_ok)]
                .iter()
                .filter(|(_, ok)| !ok)
                .map(|(p, _)| format!("`{}`", p.file_name().unwrap_or_default().to_string_lossy()))
                .collect();
            let why = format!(
                "no `--reactors` in the `--help` of {} yet",
                lacking.join(" and ")
            );
            eprintln!("note: {n} reactors skipped: {why}");
            r.group_skipped.push((n, why));
            continue;
        }
        let (es, cs) = group_servers(o, n);
        for round in 0..o.rounds {
            let run = measure(o, &es, echo_args(o, &GROUP_ECHO, o.duration), &Tracer::None);
            keep(
                r,
                |r| &mut r.group,
                (GROUP_ECHO.id(), es.key),
                o.rounds,
                round,
                run,
            );
            if let Some(sc) = group_chat(o) {
                let run = measure(o, &cs, chat_args(o, &sc, o.duration), &Tracer::None);
                keep(r, |r| &mut r.group, (sc.id(), cs.key), o.rounds, round, run);
            }
        }
        if *tracer != Tracer::None {
            match measure(o, &es, echo_args(o, &GROUP_ECHO, o.meter_duration), tracer) {
                Ok(x) => drop(r.group.meter.insert((GROUP_ECHO.id(), es.key), x)),
                Err(e) => r.failures.push(e),
            }
            if let Some(sc) = group_chat(o) {
                match measure(o, &cs, chat_args(o, &sc, o.meter_duration), tracer) {
                    Ok(x) => drop(r.group.meter.insert((sc.id(), cs.key), x)),
                    Err(e) => r.failures.push(e),
                }
            }
        }
        progress(r, format_args!("group of {n} reactor(s) measured"));
    }
}

/// Writes per recipient per pass, exactly, at the middle K.
fn pass_traces(o: &Opts, tracer: &Tracer, chat: &[Server], r: &mut Results) {
    if *tracer == Tracer::None || !strace_works() {
        return;
    }
    let Some(sc) = o.chat.get(o.chat.len() / 2) else {
        return;
    };
    for s in chat {
        let p = pass_trace(o, s, sc);
        if let Err(e) = &p {
            r.failures.push(e.clone());
        }
        r.passes.push((s.label.to_string(), sc.clients, p));
    }
}

/// Memory per idle connection.
fn idle(o: &Opts, servers: &[Server], r: &mut Results) {
    for s in servers.iter().filter(|_| o.idle) {
        match idle_rss(o, s) {
            Ok(i) => {
                progress(
                    r,
                    format_args!(
                        "idle {} conns {:<8} {:.0} B/conn idle, {:.0} B/conn after one echo",
                        i.conns,
                        s.key,
                        (i.idle_kb - i.base_kb) * 1024.0 / i.conns as f64,
                        (i.after_echo_kb - i.base_kb) * 1024.0 / i.conns as f64
                    ),
                );
                r.idle.insert(s.key, i);
            }
            Err(e) => r.failures.push(e),
        }
    }
}

/// The cross-check by a tool nobody here wrote.
fn cross_checks(o: &Opts, servers: &[Server], r: &mut Results) {
    if !o.cross_check {
        return;
    }
    let installed = Command::new("tcp-echo-benchmark")
        .arg("--help")
        .output()
        .is_ok_and(|r| r.status.success());
    if !installed {
        r.xcheck.push((
            "all".into(),
            Err("tcp-echo-benchmark is not installed (`cargo install tcp-echo-benchmark`)".into()),
        ));
        return;
    }
    for s in servers {
        r.xcheck.push((s.key.to_string(), cross_check(o, s)));
    }
}

/// Writes the report and the chart; fails on a failed run or a missed
/// count target.
fn finish(o: &Opts, servers: &[Server], chat: &[Server], r: &Results) -> Res<()> {
    let targets = targets::all(o, r);
    let md = report::report(o, servers, chat, r, &targets);
    let md_path = o.out_dir.join("benchmarks.md");
    std::fs::write(&md_path, md).map_err(|e| e.to_string())?;
    let svg_path = o.out_dir.join("benchmarks.svg");
    chart::chart(&svg_path, &r.echo, servers, &o.echo)?;
    let _ = std::fs::remove_dir_all(o.out_dir.join("tmp"));
    eprintln!(
        "wrote {} and {} in {} s",
        md_path.display(),
        svg_path.display(),
        r.started.elapsed().as_secs()
    );
    for f in &r.failures {
        eprintln!("FAILED: {f}");
    }
    let missed = targets::missed_gates(&targets);
    for t in &missed {
        eprintln!("MISSED count target: {} — measured {}", t.name, t.measured);
    }
    match (r.failures.len(), missed.len()) {
        (0, 0) => Ok(()),
        (f, m) => Err(format!("{f} runs failed, {m} count targets missed")),
    }
}
