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

pub struct Opts {
    pub smoke: bool,
    pub rounds: usize,
    pub warmup: f64,
    pub duration: f64,
    pub meter_duration: f64,
    pub idle_conns: usize,
    pub out_dir: PathBuf,
    pub bin: PathBuf,
    pub chatroom: PathBuf,
    pub command: String,
    pub echo: Vec<EchoScenario>,
    pub meter_echo: Vec<EchoScenario>,
    pub chat: Vec<ChatScenario>,
    pub cross_check: bool,
    pub python: bool,
    pub idle: bool,
    /// What was measured: the commit, and whether src/ or examples/ had
    /// uncommitted changes when the binaries were built.
    pub tree: String,
}

pub fn opts() -> Opts {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let has = |f: &str| args.iter().any(|a| a == f);
    let val = |f: &str| {
        args.iter()
            .position(|a| a == f)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let smoke = has("--smoke");
    let e = |conns, size, depth| EchoScenario { conns, size, depth };
    let (echo, meter_echo, chat) = if smoke {
        let echo = vec![e(1, 64, 1), e(100, 64, 1), e(100, 64, 16)];
        let meter = echo[1..].to_vec();
        (
            echo,
            meter,
            vec![ChatScenario {
                clients: 10,
                rate: 200.0,
            }],
        )
    } else {
        let mut echo = Vec::new();
        for (size, depth) in [(64, 1), (16 * 1024, 1), (64, 16)] {
            for conns in [1, 100, 1000] {
                echo.push(e(conns, size, depth));
            }
        }
        // About 0.5 to 1 million deliveries/s offered: more than the
        // tokio peer relays; ours kept up with all of it when tried.
        let chat = vec![
            ChatScenario {
                clients: 10,
                rate: 5000.0,
            },
            ChatScenario {
                clients: 100,
                rate: 100.0,
            },
            ChatScenario {
                clients: 1000,
                rate: 1.0,
            },
        ];
        (echo.clone(), echo, chat)
    };
    // `--only a,b`: keep the scenarios whose id contains one of the words
    // (ids: echo-n100-s64-d1, chat-k100, ...; "idle" keeps the memory meter).
    let only: Option<Vec<String>> =
        val("--only").map(|v| v.split(',').map(str::to_string).collect());
    let keep = |id: &str| {
        only.as_ref()
            .is_none_or(|w| w.iter().any(|w| id.contains(w.as_str())))
    };
    let echo: Vec<EchoScenario> = echo.into_iter().filter(|s| keep(&s.id())).collect();
    let meter_echo: Vec<EchoScenario> = meter_echo.into_iter().filter(|s| keep(&s.id())).collect();
    let chat: Vec<ChatScenario> = chat
        .into_iter()
        .filter(|s| keep(&format!("chat-k{}", s.clients)))
        .collect();
    let idle = keep("idle");
    let root = std::env::current_dir().expect("cwd");
    let out_dir = val("--out").map(PathBuf::from).unwrap_or_else(|| {
        if smoke {
            root.join("bench/target/smoke")
        } else {
            root.join("docs")
        }
    });
    Opts {
        smoke,
        rounds: val("--rounds")
            .and_then(|v| v.parse().ok())
            .unwrap_or(if smoke { 1 } else { 5 }),
        warmup: if smoke { 0.3 } else { 1.0 },
        duration: val("--duration")
            .and_then(|v| v.parse().ok())
            .unwrap_or(if smoke { 1.0 } else { 4.0 }),
        meter_duration: if smoke { 1.0 } else { 3.0 },
        idle_conns: if smoke { 300 } else { 10_000 },
        out_dir,
        bin: root.join("bench/target/release"),
        chatroom: val("--chatroom")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target/release/examples/chatroom")),
        command: val("--command")
            .unwrap_or_else(|| format!("bash bench/run.sh{}", if smoke { " --smoke" } else { "" })),
        echo,
        meter_echo,
        chat,
        cross_check: !smoke && !has("--no-cross-check") && only.is_none(),
        idle,
        tree: {
            let head = sh("git rev-parse --short HEAD 2>/dev/null");
            let dirty = sh("git status --porcelain -- src examples 2>/dev/null | wc -l");
            match (head.is_empty(), dirty.trim()) {
                (true, _) => "unknown (not a git checkout)".into(),
                (false, "0") => format!("commit `{head}`"),
                (false, n) => format!(
                    "commit `{head}` plus uncommitted changes to {n} files under src/ or examples/"
                ),
            }
        },
        python: !has("--no-python"),
    }
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
        },
        Server {
            key: "raw_mio",
            label: "raw mio",
            argv: vec![bin("raw_mio_echo")],
            alloc_file: None,
            load_flags: &[],
            max_idle: usize::MAX,
        },
        Server {
            key: "tokio",
            label: "tokio current_thread",
            argv: vec![bin("tokio_echo")],
            alloc_file: None,
            load_flags: &[],
            max_idle: usize::MAX,
        },
        Server {
            key: "epoll",
            label: "epoll floor (libc)",
            argv: vec![bin("epoll_echo")],
            alloc_file: None,
            load_flags: &[],
            max_idle: usize::MAX,
        },
    ];
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
        });
    }
    v
}

pub fn chat_servers(o: &Opts) -> Vec<Server> {
    vec![
        Server {
            key: "ours",
            label: "ours (examples/chatroom)",
            // The per-client rate limit is the chatroom's policy, not its
            // cost: lifted so both servers relay everything offered.
            argv: vec![
                o.chatroom.to_string_lossy().into_owned(),
                "--rate".into(),
                "1000000".into(),
                "--burst".into(),
                "1000000".into(),
            ],
            alloc_file: None,
            load_flags: &[],
            max_idle: usize::MAX,
        },
        Server {
            key: "tokio",
            label: "tokio chat (broadcast example style)",
            argv: vec![o.bin.join("tokio_chat").to_string_lossy().into_owned()],
            alloc_file: None,
            load_flags: &[],
            max_idle: usize::MAX,
        },
    ]
}
