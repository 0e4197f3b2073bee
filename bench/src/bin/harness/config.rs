//! What to run: the servers, the scenarios and the command line.

use std::path::PathBuf;

use crate::format::sh;

#[derive(Clone)]
pub struct Server {
    pub key: &'static str,
    pub label: &'static str,
    pub argv: Vec<String>,
    /// Ours only: where SIGUSR1 snapshots of the counting allocator go.
    pub alloc_file: Option<PathBuf>,
    /// Extra load flags: connect pacing for a server that accepts slowly.
    pub load_flags: &'static [&'static str],
    /// Fewest of `Opts::idle_conns` and this for the idle-memory meter.
    pub max_idle: usize,
    /// Reactor threads (`--reactors N` is in `argv` when it is above 1):
    /// decides the server's cores.
    pub reactors: usize,
}

#[derive(Clone, Copy, PartialEq)]
pub struct EchoScenario {
    pub conns: usize,
    pub size: usize,
    pub depth: usize,
}

impl EchoScenario {
    pub fn id(&self) -> String {
        format!("echo-n{}-s{}-d{}", self.conns, self.size, self.depth)
    }
    pub fn label(&self) -> String {
        let size = if self.size >= 1024 {
            format!("{} KiB", self.size / 1024)
        } else {
            format!("{} B", self.size)
        };
        let kind = if self.depth == 1 {
            "ping-pong".to_string()
        } else {
            format!("pipelined ×{}", self.depth)
        };
        format!("{kind}, N = {}, {size}", self.conns)
    }
}

#[derive(Clone, Copy)]
pub struct ChatScenario {
    pub clients: usize,
    pub rate: f64,
}

impl ChatScenario {
    pub fn id(&self) -> String {
        format!("chat-k{}", self.clients)
    }
}

/// Which cores the servers and the load get, derived from `nproc`: the
/// load generator and the tracers take the upper half (at least the last
/// core), a server as many cores from core 0 as it has reactors, up to the
/// lower half. On 2 cores: server `0`, load `1`; on 16: a 4-reactor server
/// `0-3`, load `8-15`; on 1 core both share core 0.
#[derive(Clone, Copy, Debug)]
pub struct Cpus {
    pub n: usize,
}

impl Cpus {
    pub fn detect() -> Cpus {
        Cpus {
            n: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
    fn load_first(&self) -> usize {
        if self.n < 2 {
            0
        } else {
            self.n - (self.n / 2).max(1)
        }
    }
    /// The load generator's (and tracers') `taskset -c` list.
    pub fn load(&self) -> String {
        range(self.load_first(), self.n - 1)
    }
    /// How many cores a server with `reactors` threads gets.
    pub fn server_cores(&self, reactors: usize) -> usize {
        reactors.clamp(1, self.load_first().max(1))
    }
    /// A server's `taskset -c` list.
    pub fn server(&self, reactors: usize) -> String {
        range(0, self.server_cores(reactors) - 1)
    }
}

fn range(a: usize, b: usize) -> String {
    if a == b {
        a.to_string()
    } else {
        format!("{a}-{b}")
    }
}

pub struct Opts {
    pub smoke: bool,
    pub rounds: usize,
    pub warmup: f64,
    pub duration: f64,
    pub meter_duration: f64,
    pub idle_conns: usize,
    pub out_dir: PathBuf,
    /// The bench crate's release binaries (its cargo target directory).
    pub bin: PathBuf,
    pub chatroom: PathBuf,
    /// `examples/multiconn_echo`: ours with `--reactors` for the group runs.
    pub echo_example: PathBuf,
    pub command: String,
    pub echo: Vec<EchoScenario>,
    pub meter_echo: Vec<EchoScenario>,
    pub chat: Vec<ChatScenario>,
    /// Reactor counts for the group runs (`--reactors 1,2,4`).
    pub reactors: Vec<usize>,
    /// Issue 12's loads (`redis::scenarios`), and the reactors of each
    /// chatroom in them (`--redis-reactors N`, default 1).
    pub redis: Vec<crate::redis::Scenario>,
    pub redis_reactors: usize,
    pub cpus: Cpus,
    pub cross_check: bool,
    pub python: bool,
    pub idle: bool,
    /// Issue 13's WebSocket chat and TLS echo scenarios.
    pub layers: crate::layers::Plan,
    /// What was measured: the commit, and whether the tree had uncommitted
    /// changes that the binaries were built from.
    pub tree: Stamp,
}

/// The commit the binaries were built from (run.sh builds them just before
/// the harness starts), and what was uncommitted then.
#[derive(Clone, Debug)]
pub struct Stamp {
    pub commit: Option<String>,
    /// Files under src/, examples/, bench/ or Cargo.toml/Cargo.lock with
    /// uncommitted changes.
    pub dirty: usize,
}

impl Stamp {
    pub fn read() -> Stamp {
        let head = sh("git rev-parse HEAD 2>/dev/null");
        let dirty = sh(
            "git status --porcelain --untracked-files=no -- src examples bench Cargo.toml Cargo.lock 2>/dev/null | wc -l",
        );
        Stamp {
            commit: (!head.is_empty()).then_some(head),
            dirty: dirty.trim().parse().unwrap_or(0),
        }
    }
    pub fn describe(&self) -> String {
        match (&self.commit, self.dirty) {
            (None, _) => "unknown (not a git checkout)".into(),
            (Some(c), 0) => format!("commit `{}` (clean tree)", &c[..12.min(c.len())]),
            (Some(c), n) => format!(
                "commit `{}` **plus uncommitted changes to {n} files** under src/, examples/, bench/ or Cargo.*: not reproducible from the commit",
                &c[..12.min(c.len())]
            ),
        }
    }
}

/// The command line: `--flag value` pairs and bare flags.
struct Args(Vec<String>);

impl Args {
    fn has(&self, f: &str) -> bool {
        self.0.iter().any(|a| a == f)
    }
    fn val(&self, f: &str) -> Option<String> {
        let i = self.0.iter().position(|a| a == f)?;
        self.0.get(i + 1).cloned()
    }
    fn num<T: std::str::FromStr>(&self, f: &str, default: T) -> T {
        match self.val(f) {
            None => default,
            Some(v) => v
                .parse()
                .unwrap_or_else(|_| usage(&format!("{f} {v}: not a number"))),
        }
    }
}

pub fn usage(why: &str) -> ! {
    eprintln!("harness: {why}");
    eprintln!("usage: harness [--smoke] [--rounds N] [--duration S] [--reactors 1,2,4] [--redis-reactors N] [--only a,b] [--out DIR] [--bin DIR] [--chatroom BIN] [--echo-example BIN] [--no-python] [--no-cross-check] [--command TEXT]");
    std::process::exit(2)
}

/// The scenarios of the full matrix, or of the smoke run.
fn scenarios(smoke: bool) -> (Vec<EchoScenario>, Vec<EchoScenario>, Vec<ChatScenario>) {
    let e = |conns, size, depth| EchoScenario { conns, size, depth };
    let c = |clients, rate| ChatScenario { clients, rate };
    if smoke {
        let echo = vec![e(1, 64, 1), e(100, 64, 1), e(100, 64, 16)];
        let meter = echo[1..].to_vec();
        return (echo, meter, vec![c(10, 200.0)]);
    }
    let mut echo = Vec::new();
    for (size, depth) in [(64, 1), (16 * 1024, 1), (64, 16)] {
        for conns in [1, 100, 1000] {
            echo.push(e(conns, size, depth));
        }
    }
    // About 0.5 to 1 million deliveries/s offered: more than the tokio
    // peer relays; ours kept up with all of it when tried.
    (
        echo.clone(),
        echo,
        vec![c(10, 5000.0), c(100, 100.0), c(1000, 1.0)],
    )
}

/// `--reactors 1,2,4`: each a positive count (0, "one per core", is
/// resolved here so that the report names the number).
fn reactor_list(a: &Args, smoke: bool, cpus: Cpus) -> Vec<usize> {
    let v = a
        .val("--reactors")
        .unwrap_or_else(|| if smoke { "1,2" } else { "1,2,4" }.into());
    let mut list: Vec<usize> = v
        .split(',')
        .map(|n| match n.trim().parse::<usize>() {
            Ok(0) => cpus.n,
            Ok(n) if n <= 1024 => n,
            _ => usage(&format!("--reactors {v}: a list of counts such as 1,2,4")),
        })
        .collect();
    list.dedup();
    if !list.contains(&1) {
        // Every ratio is to one reactor.
        list.insert(0, 1);
    }
    list
}

pub fn opts() -> Opts {
    let a = Args(std::env::args().skip(1).collect());
    let smoke = a.has("--smoke");
    let (echo, meter_echo, chat) = scenarios(smoke);
    // `--only a,b`: keep the scenarios whose id contains one of the words
    // (ids: echo-n100-s64-d1, chat-k100, ...; "idle" keeps the memory meter;
    // ws-chat-k100, tls-echo-n100-s64-d1, ...: see layers::plan).
    let only: Option<Vec<String>> = a
        .val("--only")
        .map(|v| v.split(',').map(str::to_string).collect());
    let keep = |id: &str| {
        only.as_ref()
            .is_none_or(|w| w.iter().any(|w| id.contains(w.as_str())))
    };
    let duration = a.num("--duration", if smoke { 1.0 } else { 4.0 });
    let layers = crate::layers::plan(smoke, only.as_deref(), duration);
    let root = std::env::current_dir().expect("cwd");
    let cpus = Cpus::detect();
    let target = |manifest: &str| {
        target_dir(manifest)
            .unwrap_or_else(|e| usage(&format!("cannot find {manifest}'s target directory: {e}")))
    };
    let bin = a
        .val("--bin")
        .map(PathBuf::from)
        .unwrap_or_else(|| target("bench/Cargo.toml").join("release"));
    let examples = || target("Cargo.toml").join("release/examples");
    Opts {
        smoke,
        rounds: a.num("--rounds", if smoke { 1 } else { 5 }),
        warmup: if smoke { 0.3 } else { 1.0 },
        duration,
        meter_duration: if smoke { 1.0 } else { 3.0 },
        idle_conns: if smoke { 300 } else { 10_000 },
        out_dir: a.val("--out").map(PathBuf::from).unwrap_or_else(|| {
            if smoke {
                bin.parent().unwrap_or(&root).join("smoke")
            } else {
                root.join("docs")
            }
        }),
        bin,
        chatroom: a
            .val("--chatroom")
            .map(PathBuf::from)
            .unwrap_or_else(|| examples().join("chatroom")),
        echo_example: a
            .val("--echo-example")
            .map(PathBuf::from)
            .unwrap_or_else(|| examples().join("multiconn_echo")),
        command: a
            .val("--command")
            .unwrap_or_else(|| format!("bash bench/run.sh{}", if smoke { " --smoke" } else { "" })),
        echo: echo.into_iter().filter(|s| keep(&s.id())).collect(),
        meter_echo: meter_echo.into_iter().filter(|s| keep(&s.id())).collect(),
        chat: chat.into_iter().filter(|s| keep(&s.id())).collect(),
        reactors: if keep("reactors") {
            reactor_list(&a, smoke, cpus)
        } else {
            Vec::new()
        },
        redis: crate::redis::scenarios(smoke)
            .into_iter()
            .filter(|s| keep(&s.id()))
            .collect(),
        redis_reactors: a.num("--redis-reactors", 1usize).max(1),
        cpus,
        cross_check: !smoke && !a.has("--no-cross-check") && only.is_none(),
        idle: keep("idle"),
        layers,
        tree: Stamp::read(),
        python: !a.has("--no-python"),
    }
}

/// Where cargo puts what it builds for `manifest` (honours
/// `CARGO_TARGET_DIR`, `build.target-dir` and workspaces): the
/// `target_directory` of `cargo metadata`.
pub fn target_dir(manifest: &str) -> Result<PathBuf, String> {
    let out = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
            "--manifest-path",
            manifest,
        ])
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("cargo metadata: {e}"))?;
    if !out.status.success() {
        return Err(format!("cargo metadata exited with {}", out.status));
    }
    json_string(&String::from_utf8_lossy(&out.stdout), "target_directory")
        .map(PathBuf::from)
        .ok_or_else(|| "no target_directory in cargo metadata's output".into())
}

/// The string value of the first `"key":"..."` in a JSON text (with its
/// escapes undone); enough for cargo metadata's one top-level path.
fn json_string(json: &str, key: &str) -> Option<String> {
    let start = json.find(&format!("\"{key}\":\""))? + key.len() + 4;
    let mut out = String::new();
    let mut chars = json[start..].chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                }
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

pub fn echo_servers(o: &Opts) -> Vec<Server> {
    let bin = |name: &str| o.bin.join(name).to_string_lossy().into_owned();
    let alloc_file = o.out_dir.join(format!("alloc-{}.txt", std::process::id()));
    let mut v = vec![
        Server {
            key: "ours",
            label: "ours (Reactor)",
            argv: vec![
                bin("ours_echo"),
                "--alloc-report".into(),
                alloc_file.to_string_lossy().into_owned(),
            ],
            alloc_file: Some(alloc_file),
            load_flags: &[],
            max_idle: usize::MAX,
            reactors: 1,
        },
        Server {
            key: "raw_mio",
            label: "raw mio",
            argv: vec![bin("raw_mio_echo")],
            alloc_file: None,
            load_flags: &[],
            max_idle: usize::MAX,
            reactors: 1,
        },
        Server {
            key: "tokio",
            label: "tokio current_thread",
            argv: vec![bin("tokio_echo")],
            alloc_file: None,
            load_flags: &[],
            max_idle: usize::MAX,
            reactors: 1,
        },
        Server {
            key: "epoll",
            label: "epoll floor (libc)",
            argv: vec![bin("epoll_echo")],
            alloc_file: None,
            load_flags: &[],
            max_idle: usize::MAX,
            reactors: 1,
        },
    ];
    // BENCH_BUSY_POLL_US=N: also ours with Config::busy_poll = N µs.
    if let Ok(us) = std::env::var("BENCH_BUSY_POLL_US") {
        v.push(Server {
            key: "ours_busy",
            label: "ours, busy_poll on",
            argv: vec![bin("ours_echo"), "--busy-poll-us".into(), us],
            alloc_file: None,
            load_flags: &[],
            max_idle: usize::MAX,
            reactors: 1,
        });
    }
    if o.python {
        v.push(Server {
            key: "python",
            label: "Python selectors tutorial",
            argv: vec!["python3".into(), "bench/python/multiconn_server.py".into()],
            alloc_file: None,
            // One accept per level-triggered pass, and a pass visits every
            // (always writable) connection: flooding its backlog of 128
            // loses handshakes, so connect 50 at a time, 100 ms apart; and
            // 2,000 idle connections already take it most of a minute.
            load_flags: &["--batch", "50", "--gap-ms", "100"],
            max_idle: 2000,
            reactors: 1,
        });
    }
    v
}

/// The chatroom's command line: the per-client rate limit is its policy,
/// not its cost, so it is lifted and every server relays everything offered.
fn chatroom_argv(o: &Opts) -> Vec<String> {
    vec![
        o.chatroom.to_string_lossy().into_owned(),
        "--rate".into(),
        "1000000".into(),
        "--burst".into(),
        "1000000".into(),
    ]
}

pub fn chat_servers(o: &Opts) -> Vec<Server> {
    vec![
        Server {
            key: "ours",
            label: "ours (examples/chatroom)",
            argv: chatroom_argv(o),
            alloc_file: None,
            load_flags: &[],
            max_idle: usize::MAX,
            reactors: 1,
        },
        Server {
            key: "tokio",
            label: "tokio chat (broadcast example style)",
            argv: vec![o.bin.join("tokio_chat").to_string_lossy().into_owned()],
            alloc_file: None,
            load_flags: &[],
            max_idle: usize::MAX,
            reactors: 1,
        },
    ]
}

/// Ours as a group of `n` reactors: `examples/multiconn_echo --reactors N`
/// and `examples/chatroom --reactors N` (the flag is left out at 1, so a
/// binary that predates it still runs the baseline).
pub fn group_servers(o: &Opts, n: usize) -> (Server, Server) {
    let flag = |mut argv: Vec<String>| {
        if n > 1 {
            argv.extend(["--reactors".to_string(), n.to_string()]);
        }
        argv
    };
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let server = |key: String, label: String, argv| Server {
        key: leak(key),
        label: leak(label),
        argv: flag(argv),
        alloc_file: None,
        load_flags: &[],
        max_idle: usize::MAX,
        reactors: n,
    };
    (
        server(
            format!("group-echo-r{n}"),
            format!("multiconn_echo, {n} reactor(s)"),
            vec![o.echo_example.to_string_lossy().into_owned()],
        ),
        server(
            format!("group-chat-r{n}"),
            format!("chatroom, {n} reactor(s)"),
            chatroom_argv(o),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::{json_string, Cpus};

    #[test]
    fn target_directory_is_read_with_its_escapes() {
        let j = r#"{"packages":[],"target_directory":"/tmp/a \"b\"\\c","version":1}"#;
        assert_eq!(
            json_string(j, "target_directory").unwrap(),
            r#"/tmp/a "b"\c"#
        );
        assert_eq!(json_string(j, "workspace_root"), None);
    }

    #[test]
    fn cores_split_between_server_and_load() {
        let c = |n| Cpus { n };
        assert_eq!((c(1).server(1), c(1).load()), ("0".into(), "0".into()));
        assert_eq!((c(2).server(4), c(2).load()), ("0".into(), "1".into()));
        assert_eq!(
            (c(16).server(4), c(16).load()),
            ("0-3".into(), "8-15".into())
        );
        assert_eq!(c(16).server(64), "0-7");
        assert_eq!(c(3).load(), "2");
    }
}
