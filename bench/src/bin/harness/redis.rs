//! Issue 12's benchmark (`--only redis-fanout`): one room on one chatroom
//! with K clients against the same room on two `chatroom --redis`
//! instances with K/2 clients each, through a redis-server the harness
//! starts (free loopback port, persistence off) and stops.
//!
//! Two loads, both open loop at a fixed total line rate (`load fanout`):
//!
//! - **latency**: a rate both setups handle easily, so queueing does not
//!   decide the figure; p50/p99/max delivery latency per setup, and the
//!   added p99 (federated − single, round by round) beside one Redis round
//!   trip (PING from the harness, on the servers' cores, idle Redis) + 1 ms;
//! - **saturation**: more than either setup relays, for deliveries/s and
//!   CPU per delivery (utime + stime from `/proc/PID/stat` around the
//!   window, for each chatroom and for redis-server).
//!
//! Each round runs both setups for each load, the order alternated from
//! round to round. Every client must get every other client's line exactly
//! once: a doubled, echoed or unreadable delivery fails the run, and so
//! does a lost one unless the setup was overloaded (relayed under 90% of
//! what was offered). Every instance runs `--reactors N` from
//! `--redis-reactors N` (default 1, the flag left out), the single one too,
//! so both setups get the same cores.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::config::{Opts, Server};
use crate::format::{f, fr, met};
use crate::meters::cpu_secs;
use crate::processes::{num, signal, start_server, stop_server, wait_exit, Load, Running};
use crate::runs::scratch;
use crate::stats::{median, Results};
use crate::Res;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Kind {
    /// Well under what either setup relays: for latency.
    Latency,
    /// About what the federated setup relays at most on 2 cores: both keep
    /// up, so CPU per delivery compares the same work.
    Heavy,
    /// More than either relays: capacity (deliveries/s) and CPU per
    /// delivery when the loop's passes are as full as they get.
    Saturation,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Latency => "latency",
            Kind::Heavy => "heavy",
            Kind::Saturation => "saturation",
        }
    }
}

/// One load of the comparison: K clients in all, `instances` chatrooms in
/// the federated setup, `total_rate` lines per second over all clients.
#[derive(Clone, Copy, Debug)]
pub struct Scenario {
    pub load: Kind,
    pub clients: usize,
    pub instances: usize,
    pub total_rate: f64,
}

impl Scenario {
    pub fn id(&self) -> String {
        let kind = self.load.name();
        format!("redis-fanout-{kind}-k{}-r{}", self.clients, self.total_rate)
    }
    /// The measured window: three times the harness's for the latency
    /// load, whose 20 lines/s would otherwise leave a p99 of first
    /// deliveries decided by one or two lines (not in the smoke run, which
    /// only proves the path in a few seconds).
    fn duration(&self, o: &Opts) -> f64 {
        match self.load {
            Kind::Latency if !o.smoke => 3.0 * o.duration,
            Kind::Latency => o.duration,
            Kind::Heavy | Kind::Saturation => o.duration,
        }
    }
    fn label(&self) -> String {
        let kind = self.load.name();
        format!(
            "{kind}: K = {}, {} lines/s in all (~{} deliveries/s offered)",
            self.clients,
            self.total_rate,
            f(self.total_rate * (self.clients - 1) as f64)
        )
    }
}

/// The two setups compared.
pub const SETUPS: [&str; 2] = ["single", "federated"];

/// The loads of the full run, or of the smoke run (a tiny federated room
/// proving the path, a few seconds).
pub fn scenarios(smoke: bool) -> Vec<Scenario> {
    let s = |load, clients, total_rate| Scenario {
        load,
        clients,
        instances: 2,
        total_rate,
    };
    if smoke {
        return vec![s(Kind::Latency, 20, 100.0)];
    }
    // On this 2-core machine (servers on one core) one chatroom relayed
    // about 1.7 M deliveries/s and two through Redis 1.2 to 1.6 M when
    // tried. A lone line costs far more per delivery than a batched one
    // (about 10 µs of the chatroom's CPU and as much of the load's, one
    // write and one read each), so the latency load is 20 lines/s × 999
    // receivers ≈ 20k deliveries/s, a tenth of a core each side (100
    // lines/s already kept each side half busy and queued behind other
    // engineers' processes). 1,000 lines/s ≈ 1 M deliveries/s is about
    // the federated setup's most, 2,000 lines/s more than either relays.
    vec![
        s(Kind::Latency, 1000, 20.0),
        s(Kind::Heavy, 1000, 1000.0),
        s(Kind::Saturation, 1000, 2000.0),
    ]
}

/// One window of one setup.
#[derive(Clone, Debug, Default)]
pub struct FanRun {
    pub rate: f64,
    pub offered: f64,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    /// Latency of each line's first delivery: the path before the fan-out.
    pub first_p50: f64,
    pub first_p99: f64,
    pub deliveries: f64,
    pub sent: f64,
    pub lost: f64,
    pub doubled: f64,
    pub dropped: f64,
    /// CPU seconds in the window: each chatroom, and redis-server.
    pub chat_cpu: Vec<f64>,
    pub redis_cpu: Option<f64>,
    /// Idle PING round trip to this window's Redis: p50, p99 (µs).
    pub rtt: Option<(f64, f64)>,
}

impl FanRun {
    fn overloaded(&self) -> bool {
        self.rate < 0.9 * self.offered
    }
    fn chat_us(&self) -> f64 {
        self.chat_cpu.iter().sum::<f64>() * 1e6 / self.deliveries
    }
    fn redis_us(&self) -> f64 {
        self.redis_cpu.map_or(0.0, |c| c * 1e6 / self.deliveries)
    }
    fn total_us(&self) -> f64 {
        self.chat_us() + self.redis_us()
    }
    fn redis_per_line_us(&self) -> f64 {
        self.redis_cpu.map_or(f64::NAN, |c| c * 1e6 / self.sent)
    }
}

/// Everything the scenario measured: runs by (scenario id, setup), in round order.
#[derive(Default)]
pub struct Fanout {
    pub runs: BTreeMap<(String, &'static str), Vec<Option<FanRun>>>,
    /// Why the scenario did not run (no redis-server outside CI).
    pub skipped: Option<String>,
    /// Lost deliveries in overloaded windows (reported, not failed).
    pub notes: Vec<String>,
}

impl Fanout {
    fn med(&self, sc: &str, setup: &str, f: impl Fn(&FanRun) -> f64) -> f64 {
        self.runs
            .iter()
            .find(|((s, k), _)| s == sc && *k == setup)
            .map_or(f64::NAN, |(_, r)| {
                median(r.iter().flatten().map(&f).collect())
            })
    }
    /// Per round `g(federated, single)`, for rounds where both ran.
    fn paired(&self, sc: &str, g: impl Fn(&FanRun, &FanRun) -> f64) -> Vec<f64> {
        let get = |k: &'static str| {
            self.runs
                .get(&(sc.to_string(), k))
                .cloned()
                .unwrap_or_default()
        };
        get(SETUPS[1])
            .iter()
            .zip(get(SETUPS[0]).iter())
            .filter_map(|(a, b)| Some(g(a.as_ref()?, b.as_ref()?)))
            .collect()
    }
}

/// Runs the scenario's rounds into `r.redis` (failures into `r.failures`).
pub fn fanout(o: &Opts, r: &mut Results) {
    if o.redis.is_empty() {
        return;
    }
    let found = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        let why = "redis-server not found (`apt-get install -y redis-server`)".to_string();
        if std::env::var_os("CI").is_some() {
            r.failures.push(format!("redis-fanout: {why}"));
        } else {
            eprintln!("note: redis-fanout skipped: {why}");
        }
        r.redis.skipped = Some(why);
        return;
    }
    for round in 0..o.rounds {
        for sc in &o.redis {
            for i in 0..SETUPS.len() {
                let setup = SETUPS[(i + round) % SETUPS.len()];
                let run = window(o, sc, setup).or_else(|e| {
                    eprintln!("note: retrying once after: {e}");
                    window(o, sc, setup)
                });
                let run = run.map_err(|e| format!("redis-fanout {} {setup}: {e}", sc.id()));
                let run = run.and_then(|x| judge(sc, setup, x, &mut r.redis.notes));
                if let Ok(x) = &run {
                    crate::progress(
                        r,
                        format_args!(
                            "round {} {:<40} {:<9} {:>10.0} deliveries/s  p99 {:>8.1} µs  CPU {:.3} µs/delivery (redis {:.3})  lost {}",
                            round + 1,
                            sc.id(),
                            setup,
                            x.rate,
                            x.p99,
                            x.chat_us(),
                            x.redis_us(),
                            x.lost
                        ),
                    );
                }
                let run = run.map_err(|e| r.failures.push(e)).ok();
                r.redis
                    .runs
                    .entry((sc.id(), setup))
                    .or_insert_with(|| vec![None; o.rounds])[round] = run;
            }
        }
    }
}

/// The exact counts: doubled or echoed deliveries and unreadable lines
/// always fail; lost ones unless the setup was overloaded.
fn judge(sc: &Scenario, setup: &str, x: FanRun, notes: &mut Vec<String>) -> Res<FanRun> {
    let what = format!("redis-fanout {} {setup}", sc.id());
    if x.doubled > 0.0 {
        return Err(format!("{what}: {} doubled deliveries", x.doubled));
    }
    if x.lost > 0.0 || x.dropped > 0.0 {
        let counts = format!(
            "{} lost deliveries, {} clients cut, relayed {} of {} deliveries/s offered",
            x.lost,
            x.dropped,
            f(x.rate),
            f(x.offered)
        );
        if !x.overloaded() || sc.load == Kind::Latency {
            return Err(format!("{what}: {counts} (not overloaded)"));
        }
        notes.push(format!("{what}: {counts} (overloaded)"));
    }
    Ok(x)
}

fn chat_server(o: &Opts, redis_port: Option<u16>) -> Server {
    let mut argv = vec![o.chatroom.to_string_lossy().into_owned()];
    argv.extend(CHAT_FLAGS.iter().map(|s| s.to_string()));
    if o.redis_reactors > 1 {
        argv.extend(["--reactors".into(), o.redis_reactors.to_string()]);
    }
    if let Some(p) = redis_port {
        argv.extend(["--redis".into(), format!("redis://127.0.0.1:{p}")]);
    }
    Server {
        key: if redis_port.is_some() {
            "chatroom-redis"
        } else {
            "chatroom"
        },
        label: "chatroom",
        argv,
        alloc_file: None,
        load_flags: &[],
        max_idle: usize::MAX,
        reactors: o.redis_reactors,
    }
}

/// The chatroom's flags in both setups: the per-client rate limit lifted
/// (it is policy, not cost: 2 lines/s per client at saturation is under
/// the default 100/s, but a burst after a stall must not be throttled in
/// one setup and not the other), 4 MiB of pending output per client before
/// a client is cut as too slow (1 MiB by default; the saturation window
/// queues a few hundred KiB per client), and the default 10 join/leave
/// notices per second, said explicitly.
pub const CHAT_FLAGS: [&str; 8] = [
    "--rate",
    "1000000",
    "--burst",
    "1000000",
    "--max-output",
    "4194304",
    "--notices-per-sec",
    "10",
];

/// One measured window of one setup: servers up, load to its first pause,
/// meters, window, meters, everything stopped.
fn window(o: &Opts, sc: &Scenario, setup: &str) -> Res<FanRun> {
    let cores = o.cpus.server(o.redis_reactors);
    let mut redis = None;
    let mut chats: Vec<Running> = Vec::new();
    let result = (|| {
        let n = if setup == "single" {
            chats.push(start_server(
                &chat_server(o, None),
                &o.cpus,
                &scratch(o, "fanout-single.log"),
            )?);
            1
        } else {
            let rd = start_redis(&cores, &scratch(o, "redis.log"))?;
            let port = rd.port;
            redis = Some(rd);
            for i in 0..sc.instances {
                let log = scratch(o, &format!("fanout-fed-{i}.log"));
                chats.push(
                    start_server(&chat_server(o, Some(port)), &o.cpus, &log)
                        .map_err(|e| format!("{e} (see {})", log.display()))?,
                );
            }
            sc.instances
        };
        let rtt = match &redis {
            Some(rd) => Some(ping_rtt(rd.port, &cores, if o.smoke { 300 } else { 2000 })?),
            None => None,
        };
        let addrs: Vec<&str> = chats.iter().map(|c| c.addr.as_str()).collect();
        let args: Vec<String> = [
            "fanout",
            &addrs.join(","),
            "--clients",
            &sc.clients.to_string(),
            "--total-rate",
            &sc.total_rate.to_string(),
            "--warmup",
            &o.warmup.to_string(),
            "--duration",
            &sc.duration(o).to_string(),
            "--sync",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut load = Load::start(&o.bin, &o.cpus.load(), &args)?;
        load.paused(Duration::from_secs(120))?;
        let cpu = |pid: u32| cpu_secs(pid).map(|(u, s)| u + s);
        let chat0 = chats.iter().map(|c| cpu(c.pid)).collect::<Res<Vec<_>>>()?;
        let redis0 = redis.as_ref().map(|rd| cpu(rd.pid)).transpose()?;
        load.go()?;
        let res = load.result(Duration::from_secs_f64(sc.duration(o) + 60.0))?;
        load.paused(Duration::from_secs(30))?;
        let chat1 = chats.iter().map(|c| cpu(c.pid)).collect::<Res<Vec<_>>>()?;
        let redis1 = redis.as_ref().map(|rd| cpu(rd.pid)).transpose()?;
        load.finish()?;
        let deliveries = num(&res, "deliveries");
        if deliveries.is_nan() || deliveries <= 0.0 {
            return Err(format!("no delivery in the window ({n} instance(s))"));
        }
        for k in ["echoed", "malformed"] {
            if num(&res, k) != 0.0 {
                return Err(format!("{} {k} deliveries", res[k]));
            }
        }
        Ok(FanRun {
            rate: num(&res, "deliveries_per_s"),
            offered: num(&res, "offered_per_s"),
            p50: num(&res, "p50_us"),
            p99: num(&res, "p99_us"),
            max: num(&res, "max_us"),
            first_p50: num(&res, "first_p50_us"),
            first_p99: num(&res, "first_p99_us"),
            deliveries,
            sent: num(&res, "sent"),
            lost: num(&res, "lost"),
            doubled: num(&res, "doubled"),
            dropped: num(&res, "dropped"),
            chat_cpu: chat1.iter().zip(&chat0).map(|(b, a)| b - a).collect(),
            redis_cpu: redis1.zip(redis0).map(|(b, a)| b - a),
            rtt,
        })
    })();
    let mut stopped: Res<()> = Ok(());
    for c in chats {
        stopped = stopped.and(stop_server(c));
    }
    if let Some(rd) = redis {
        stopped = stopped.and(stop_redis(rd));
    }
    let run = result?;
    stopped?;
    Ok(run)
}

pub struct Redis {
    child: Child,
    pid: u32,
    port: u16,
}

fn free_port() -> Res<u16> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("free port: {e}"))?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// A redis-server on a free loopback port (a port taken meanwhile by
/// someone else is retried with another), persistence off, on `cores`;
/// ready once it answers PING (polled, 10 s deadline).
pub fn start_redis(cores: &str, log: &Path) -> Res<Redis> {
    let mut last = String::new();
    for _ in 0..3 {
        let port = free_port()?;
        let out = std::fs::File::create(log).map_err(|e| e.to_string())?;
        let mut child = Command::new("taskset")
            .args(["-c", cores, "redis-server", "--port"])
            .arg(port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("redis-server: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                last = format!(
                    "redis-server on port {port} exited with {st} (see {})",
                    log.display()
                );
                break;
            }
            if pong(port).is_ok() {
                return Ok(Redis {
                    pid: child.id(),
                    child,
                    port,
                });
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("redis-server on port {port}: no PONG within 10 s"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Err(last)
}

fn pong(port: u16) -> std::io::Result<()> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(1)))?;
    s.write_all(b"PING\r\n")?;
    let mut b = [0; 7];
    s.read_exact(&mut b)?;
    if &b == b"+PONG\r\n" {
        Ok(())
    } else {
        Err(std::io::Error::other("not a PONG"))
    }
}

fn stop_redis(mut r: Redis) -> Res<()> {
    signal(r.pid, libc::SIGTERM);
    match wait_exit(&mut r.child, Duration::from_secs(5)) {
        Some(st) if st.success() => Ok(()),
        Some(st) => Err(format!("redis-server exited with {st} after SIGTERM")),
        None => Err("redis-server did not exit within 5 s of SIGTERM".into()),
    }
}

/// The CPUs of a `taskset -c` list such as `0`, `0-3` or `0,2`.
fn cpu_list(list: &str) -> Vec<usize> {
    let mut v = Vec::new();
    for part in list.split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(a), Ok(b)) = (a.trim().parse::<usize>(), b.trim().parse::<usize>()) {
            v.extend(a..=b);
        }
    }
    v
}

/// p50 and p99 (µs) of `n` PINGs, one at a time, from a thread pinned to
/// `cores` (where the chatrooms run, so the round trip is theirs), after
/// 100 unmeasured ones.
pub fn ping_rtt(port: u16, cores: &str, n: usize) -> Res<(f64, f64)> {
    let cpus = cpu_list(cores);
    let t = std::thread::spawn(move || -> Res<(f64, f64)> {
        // SAFETY: a zeroed cpu_set_t is empty; CPU_SET stays inside it for
        // CPUs below CPU_SETSIZE, and pid 0 is the calling thread.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            for &c in cpus.iter().filter(|&&c| c < libc::CPU_SETSIZE as usize) {
                libc::CPU_SET(c, &mut set);
            }
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
        }
        let e = |e: std::io::Error| format!("PING: {e}");
        let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(e)?;
        s.set_nodelay(true).map_err(e)?;
        s.set_read_timeout(Some(Duration::from_secs(2)))
            .map_err(e)?;
        let mut b = [0; 7];
        let mut v = Vec::with_capacity(n);
        for i in 0..n + 100 {
            let t0 = Instant::now();
            s.write_all(b"PING\r\n").map_err(e)?;
            s.read_exact(&mut b).map_err(e)?;
            if &b != b"+PONG\r\n" {
                return Err("PING: not a PONG".into());
            }
            if i >= 100 {
                v.push(t0.elapsed().as_secs_f64() * 1e6);
            }
        }
        v.sort_by(|a, b| a.total_cmp(b));
        let pct = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        Ok((pct(0.5), pct(0.99)))
    });
    t.join().map_err(|_| "PING thread panicked".to_string())?
}

/// The report's section.
pub fn section(w: &mut String, o: &Opts, fo: &Fanout) {
    use std::fmt::Write as _;
    if o.redis.is_empty() {
        return;
    }
    let mut l = |s: String| {
        let _ = writeln!(w, "{s}");
    };
    l(format!(
        "\n## One room across processes through Redis (issue 12): medians over {} rounds\n",
        o.rounds
    ));
    if let Some(why) = &fo.skipped {
        l(format!("Skipped: {why}.\n"));
        return;
    }
    let n = o.redis.first().map_or(2, |s| s.instances);
    l(format!(
        "**single**: one `examples/chatroom` with K clients; **federated**: {n} `chatroom --redis redis://127.0.0.1:PORT` with K/{n} each, through one redis-server the harness starts per window (`--save '' --appendonly no`, a free loopback port). Both: `{}`{}; chatrooms and redis-server `taskset -c {}`, load `taskset -c {}`. The load (`load fanout`) sends 64-byte lines at a fixed total rate (open loop, senders in turn), each carrying its queue time, sender and sequence number; latency is receive time − queue time per delivery. CPU is utime + stime from `/proc/PID/stat` around the window (warm-up {} s, window {} s (the latency load: {} s), then the drain), per delivery in it; redis-server's also per published line. Lost, doubled: over the whole run, every client must get every other client's line exactly once. Setups alternate, the order swapped every round.\n",
        CHAT_FLAGS.join(" "),
        if o.redis_reactors > 1 {
            format!(" `--reactors {}`", o.redis_reactors)
        } else {
            String::new()
        },
        o.cpus.server(o.redis_reactors),
        o.cpus.load(),
        o.warmup,
        o.duration,
        o.redis
            .iter()
            .find(|s| s.load == Kind::Latency)
            .map_or(o.duration, |s| s.duration(o))
    ));
    l("| load | setup | deliveries/s | p50 µs | p99 µs | max µs | first delivery p50 / p99 µs | lost | doubled | CPU µs/delivery: chatrooms | redis-server | total | redis-server CPU µs per published line |".into());
    l("|---|---|---|---|---|---|---|---|---|---|---|---|---|".into());
    for sc in &o.redis {
        let id = sc.id();
        for setup in SETUPS {
            let m = |g: &dyn Fn(&FanRun) -> f64| fo.med(&id, setup, g);
            let fed = setup != "single";
            l(format!(
                "| {} | {setup} | {} | {} | {} | {} | {} / {} | {} | {} | {} | {} | {} | {} |",
                sc.label(),
                f(m(&|x| x.rate)),
                f(m(&|x| x.p50)),
                f(m(&|x| x.p99)),
                f(m(&|x| x.max)),
                f(m(&|x| x.first_p50)),
                f(m(&|x| x.first_p99)),
                m(&|x| x.lost),
                m(&|x| x.doubled),
                format_args!("{:.3}", m(&|x| x.chat_us())),
                if fed {
                    format!("{:.4}", m(&|x| x.redis_us()))
                } else {
                    "–".into()
                },
                format_args!("{:.3}", m(&|x| x.total_us())),
                if fed {
                    f(m(&|x| x.redis_per_line_us()))
                } else {
                    "–".into()
                },
            ));
        }
    }
    let rtts: Vec<(f64, f64)> = fo
        .runs
        .values()
        .flatten()
        .flatten()
        .filter_map(|x| x.rtt)
        .collect();
    let rtt50 = median(rtts.iter().map(|r| r.0).collect());
    let rtt99 = median(rtts.iter().map(|r| r.1).collect());
    l(format!(
        "\nOne Redis round trip (PING, one at a time, from a harness thread on the servers' cores to each federated window's idle redis-server before the load; medians of {} windows): **p50 {} µs, p99 {} µs**.\n",
        rtts.len(),
        f(rtt50),
        f(rtt99)
    ));
    l("| goal (issue 12) | measured | result |\n|---|---|---|".into());
    for sc in &o.redis {
        let id = sc.id();
        match sc.load {
            Kind::Latency => {
                let limit = rtt50 + 1000.0;
                for (what, g) in [
                    ("every delivery", (|x: &FanRun| x.p99) as fn(&FanRun) -> f64),
                    ("each line's first delivery", |x: &FanRun| x.first_p99),
                ] {
                    let added = median(fo.paired(&id, |a, b| g(a) - g(b)));
                    let of_medians = fo.med(&id, SETUPS[1], g) - fo.med(&id, SETUPS[0], g);
                    l(format!(
                        "| added p99 ≤ one Redis round trip + 1 ms ({what}; {}) | p99(federated) − p99(single), median of the rounds' differences: {} µs (difference of the medians: {} µs); limit p50 RTT + 1 ms = {} µs | {} |",
                        sc.label(),
                        f(added),
                        f(of_medians),
                        f(limit),
                        met(added.is_finite().then_some(added <= limit))
                    ));
                }
            }
            Kind::Heavy | Kind::Saturation => {
                for (what, g) in [
                    (
                        "chatrooms + redis-server",
                        FanRun::total_us as fn(&FanRun) -> f64,
                    ),
                    ("chatrooms only", FanRun::chat_us),
                ] {
                    let ratio = median(fo.paired(&id, |a, b| g(a) / g(b)));
                    l(format!(
                        "| CPU per delivery within 1.5× of the single instance ({what}, {}) | {} (median of round ratios) | {} |",
                        sc.label(),
                        fr(ratio),
                        met(ratio.is_finite().then_some(ratio <= 1.5))
                    ));
                }
            }
        }
    }
    let lost: f64 = fo.runs.values().flatten().flatten().map(|x| x.lost).sum();
    let ran = fo.runs.values().flatten().flatten().count();
    l(format!(
        "| 0 lost (*fails the run* unless overloaded; doubled or echoed always fail) | {lost} lost in {ran} windows | {} |",
        met((ran > 0).then_some(lost == 0.0))
    ));
    for note in &fo.notes {
        l(format!("\n- {note}"));
    }
    l("\nPer round (federated vs single in the same round):\n".into());
    l("| round | load | p99 single µs | p99 federated µs | added µs | first-delivery p99 single µs | federated | added µs | deliveries/s single | federated | CPU µs/delivery single | federated (total) | ratio |".into());
    l("|---|---|---|---|---|---|---|---|---|---|---|---|---|".into());
    for sc in &o.redis {
        let id = sc.id();
        let get = |s: &'static str| fo.runs.get(&(id.clone(), s)).cloned().unwrap_or_default();
        let (single, fed) = (get(SETUPS[0]), get(SETUPS[1]));
        for (i, (a, b)) in single.iter().zip(fed.iter()).enumerate() {
            let (Some(a), Some(b)) = (a, b) else {
                l(format!(
                    "| {} | {} | failed | | | | | | | | | | |",
                    i + 1,
                    id
                ));
                continue;
            };
            l(format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.3} | {:.3} | {} |",
                i + 1,
                id,
                f(a.p99),
                f(b.p99),
                f(b.p99 - a.p99),
                f(a.first_p99),
                f(b.first_p99),
                f(b.first_p99 - a.first_p99),
                f(a.rate),
                f(b.rate),
                a.total_us(),
                b.total_us(),
                fr(b.total_us() / a.total_us())
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{cpu_list, scenarios, Kind};

    #[test]
    fn taskset_lists_expand() {
        assert_eq!(cpu_list("0"), vec![0]);
        assert_eq!(cpu_list("0-3"), vec![0, 1, 2, 3]);
        assert_eq!(cpu_list("0,2-3"), vec![0, 2, 3]);
    }

    #[test]
    fn ids_select_with_only_and_keep_apart_from_chat() {
        let full = scenarios(false);
        assert!(full.iter().all(|s| s.id().starts_with("redis-fanout-")));
        assert!(full.iter().any(|s| s.load == Kind::Latency));
        assert!(full.iter().any(|s| s.load == Kind::Saturation));
        let ids: Vec<String> = full.iter().map(|s| s.id()).collect();
        assert!(ids
            .iter()
            .all(|a| ids.iter().filter(|b| b.contains(a.as_str())).count() == 1));
        assert!(full.iter().all(|s| !s.id().contains("chat-k")));
        assert_eq!(scenarios(true).len(), 1);
    }
}
