//! The benchmark driver: runs every server against the load generator, in
//! rounds, with the meters around each measured window, and writes the
//! report. Run through `bench/run.sh` (which builds everything first), from
//! the repository root:
//!
//! ```text
//! bash bench/run.sh            # full matrix -> docs/benchmarks.md, docs/benchmarks.svg
//! bash bench/run.sh --smoke    # ~1 min, CI -> bench/target/smoke/
//! ```
//!
//! Each round runs every server once per scenario, the order rotated from
//! round to round, so ours alternates with each peer; ratios are taken
//! within a round, then their median is reported. Servers run on core 0
//! (`taskset -c 0`), the load and the meters on core 1. Throughput, latency,
//! CPU and allocations come from runs without any tracer attached; system
//! calls come from one extra run per server and scenario with `perf stat`
//! (or `strace -c`) attached, since tracing slows the server down.

mod chart;
mod config;
mod format;
mod meters;
mod processes;
mod report;
mod runs;
mod stats;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Instant;

use config::{chat_servers, echo_servers, opts, Opts};
use meters::{strace_works, total, tracer, Tracer};
use runs::{chat_args, cross_check, echo_args, idle_rss, measure, pass_trace, PassStats};
use stats::Table;

/// Errors are messages for the person running the harness.
type Res<T> = Result<T, String>;

fn main() {
    let o = opts();
    if let Err(e) = run(&o) {
        eprintln!("harness: {e}");
        std::process::exit(1);
    }
}

fn run(o: &Opts) -> Res<()> {
    let started = Instant::now();
    std::fs::create_dir_all(o.out_dir.join("tmp")).map_err(|e| e.to_string())?;
    let (tracer, tracer_note) = tracer();
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
    let chat = chat_servers(o);
    let mut failures: Vec<String> = Vec::new();
    let mut table = Table {
        runs: BTreeMap::new(),
        meter: BTreeMap::new(),
    };
    let mut chat_table = Table {
        runs: BTreeMap::new(),
        meter: BTreeMap::new(),
    };

    // Throughput, latency, CPU, allocations: rounds, order rotated.
    for round in 0..o.rounds {
        for sc in &o.echo {
            let n = servers.len();
            for i in 0..n {
                let s = &servers[(i + round) % n];
                let r = measure(o, s, echo_args(o, sc, o.duration), Tracer::None);
                if let Ok(r) = &r {
                    eprintln!(
                        "[{:>4}s] round {} {:<28} {:<8} {:>10.0} msg/s  p50 {:>8.1} µs  p99 {:>8.1} µs",
                        started.elapsed().as_secs(),
                        round + 1,
                        sc.label(),
                        s.key,
                        r.rate,
                        r.p50,
                        r.p99
                    );
                }
                let r = r.map_err(|e| failures.push(e.clone())).ok();
                table
                    .runs
                    .entry((sc.id(), s.key))
                    .or_insert_with(|| vec![None; o.rounds])[round] = r;
            }
        }
        for sc in &o.chat {
            for i in 0..chat.len() {
                let s = &chat[(i + round) % chat.len()];
                let r = measure(o, s, chat_args(o, sc, o.duration), Tracer::None);
                if let Ok(r) = &r {
                    eprintln!(
                        "[{:>4}s] round {} chat K = {:<5} {:<8} {:>10.0} deliveries/s  p99 {:>8.1} µs",
                        started.elapsed().as_secs(),
                        round + 1,
                        sc.clients,
                        s.key,
                        r.rate,
                        r.p99
                    );
                }
                let r = r.map_err(|e| failures.push(e.clone())).ok();
                chat_table
                    .runs
                    .entry((format!("chat-k{}", sc.clients), s.key))
                    .or_insert_with(|| vec![None; o.rounds])[round] = r;
            }
        }
    }

    // System calls: one traced run per server and scenario.
    if tracer != Tracer::None {
        for sc in &o.meter_echo {
            for s in &servers {
                match measure(o, s, echo_args(o, sc, o.meter_duration), tracer) {
                    Ok(r) => {
                        eprintln!(
                            "[{:>4}s] traced {:<28} {:<8} {:.2} syscalls/msg",
                            started.elapsed().as_secs(),
                            sc.label(),
                            s.key,
                            r.syscalls
                                .as_ref()
                                .map_or(f64::NAN, |c| total(c) as f64 / r.count)
                        );
                        table.meter.insert((sc.id(), s.key), r);
                    }
                    Err(e) => failures.push(e),
                }
            }
        }
        for sc in &o.chat {
            for s in &chat {
                match measure(o, s, chat_args(o, sc, o.meter_duration), tracer) {
                    Ok(r) => {
                        chat_table
                            .meter
                            .insert((format!("chat-k{}", sc.clients), s.key), r);
                    }
                    Err(e) => failures.push(e),
                }
            }
        }
    }

    // Writes per recipient per pass, exactly, at the middle K.
    let mut passes: Vec<(String, usize, Res<PassStats>)> = Vec::new();
    if tracer != Tracer::None && strace_works() {
        if let Some(sc) = o.chat.get(o.chat.len() / 2) {
            for s in &chat {
                let r = pass_trace(o, s, sc);
                if let Err(e) = &r {
                    failures.push(e.clone());
                }
                passes.push((s.label.to_string(), sc.clients, r));
            }
        }
    }

    // Memory per idle connection.
    let mut idle = BTreeMap::new();
    for s in servers.iter().filter(|_| o.idle) {
        match idle_rss(o, s) {
            Ok(r) => {
                eprintln!(
                    "[{:>4}s] idle {} conns {:<8} {:.0} B/conn idle, {:.0} B/conn after one echo",
                    started.elapsed().as_secs(),
                    r.conns,
                    s.key,
                    (r.idle_kb - r.base_kb) * 1024.0 / r.conns as f64,
                    (r.after_echo_kb - r.base_kb) * 1024.0 / r.conns as f64
                );
                idle.insert(s.key, r);
            }
            Err(e) => failures.push(e),
        }
    }

    // The cross-check by a tool nobody here wrote.
    let mut xcheck: Vec<(String, Res<String>)> = Vec::new();
    if o.cross_check {
        let installed = Command::new("tcp-echo-benchmark")
            .arg("--help")
            .output()
            .is_ok_and(|r| r.status.success());
        if installed {
            for s in &servers {
                xcheck.push((s.key.to_string(), cross_check(o, s)));
            }
        } else {
            xcheck.push((
                "all".into(),
                Err(
                    "tcp-echo-benchmark is not installed (`cargo install tcp-echo-benchmark`)"
                        .into(),
                ),
            ));
        }
    }

    let md = report::report(
        o,
        &servers,
        &chat,
        &table,
        &chat_table,
        &idle,
        &xcheck,
        &passes,
        &tracer_note,
        &failures,
        started,
    );
    let md_path = o.out_dir.join("benchmarks.md");
    std::fs::write(&md_path, md).map_err(|e| e.to_string())?;
    let svg_path = o.out_dir.join("benchmarks.svg");
    chart::chart(&svg_path, &table, &servers, &o.echo)?;
    let _ = std::fs::remove_dir_all(o.out_dir.join("tmp"));
    eprintln!(
        "wrote {} and {} in {} s",
        md_path.display(),
        svg_path.display(),
        started.elapsed().as_secs()
    );
    if !failures.is_empty() {
        for f in &failures {
            eprintln!("FAILED: {f}");
        }
        return Err(format!("{} runs failed", failures.len()));
    }
    Ok(())
}
