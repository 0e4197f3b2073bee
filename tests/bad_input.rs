//! Bad input, case by case: one table of named cases across the echo
//! server and the chat server, each with the exact bytes it must produce
//! (chat: `chat-protocol.md`; echo: `examples-cli.md`, "Echo semantics").
//!
//! Chat cases run between a sender (`sender`) and a receiver (`receiver`)
//! on a fresh server each. A case checks byte for byte what the receiver
//! got before the sender's next line `MARK`, and what the sender got before
//! the answer to its `/who`: so nothing else may have been sent either.
//!
//! `cargo test --test bad_input -- --nocapture` prints the figure line.

mod util;

use util::fault;
// The chat application lives in the chatroom example; the tests run it in-process.
#[allow(dead_code)]
#[path = "../examples/chatroom/chat/mod.rs"]
mod chat;

use std::io::Read;
use std::net::TcpStream;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use chat::{ChatConfig, ChatServer};
use fault::{figures, LineClient, STEP};
use mio_selectors::Config;
use util::Rng;

const TOO_LONG: &str = "* error: line too long (max 4096 bytes)\n";
const BAD_NICK: &str = "* error: a nick is 1 to 32 of A-Z a-z 0-9 _ - (usage: /nick NEW)\n";

/// A chat server with a sender and a receiver joined, named, and quiet.
struct Chat {
    server: fault::Running,
    s: LineClient,
    r: LineClient,
}

impl Chat {
    fn start(config: ChatConfig) -> Chat {
        let reactor_config = config.reactor_config();
        let server = fault::run_server(ChatServer::new(config), reactor_config, "127.0.0.1:0");
        let mut s = LineClient::join(server.addr);
        s.nick("sender");
        let mut r = LineClient::join(server.addr);
        s.expect(&format!("* {} joined", r.name));
        let addr = r.name.clone();
        r.nick("receiver");
        s.expect(&format!("* {addr} is now known as receiver"));
        Chat { server, s, r }
    }

    fn new() -> Chat {
        Chat::start(ChatConfig::default())
    }

    /// What the receiver got before `<sender> MARK`, and the sender before
    /// its `/who` answer.
    fn after(&mut self) -> (Vec<u8>, Vec<u8>) {
        self.s.send("MARK\n");
        let to_r = self.r.bytes_before(|l| l == b"<sender> MARK");
        self.s.send("/who\n");
        let to_s = self.s.bytes_before(|l| l.starts_with(b"* online: "));
        (to_r, to_s)
    }

    /// Sends `pieces`, then checks both sides' bytes exactly.
    fn exact(&mut self, pieces: &[&[u8]], to_receiver: &[u8], to_sender: &[u8]) {
        for p in pieces {
            self.s.send(p);
        }
        let (to_r, to_s) = self.after();
        same("receiver", &to_r, to_receiver);
        same("sender", &to_s, to_sender);
    }

    fn stop(self) {
        drop((self.s, self.r));
        self.server.stop().expect("chat server");
    }
}

fn same(who: &str, got: &[u8], want: &[u8]) {
    let show = |b: &[u8]| {
        let text = format!("{:?}", String::from_utf8_lossy(b));
        match text.char_indices().nth(300) {
            Some((i, _)) => format!("{}... ({} bytes)", &text[..i], b.len()),
            None => text,
        }
    };
    assert!(
        got == want,
        "{who} got\n  {}\nwant\n  {}",
        show(got),
        show(want)
    );
}

/// One relayed line from the sender.
fn relayed(text: &str) -> Vec<u8> {
    format!("<sender> {text}\n").into_bytes()
}

/// A chat case: send `input` (one write), expect these exact bytes.
fn chat_exact(input: &[u8], to_receiver: &[u8], to_sender: &[u8]) {
    let mut c = Chat::new();
    c.exact(&[input], to_receiver, to_sender);
    c.stop();
}

// ---------------------------------------------------------------------------
// Chat cases
// ---------------------------------------------------------------------------

fn overlong_line_4097_bytes() {
    let line = [vec![b'x'; 4097], b"\n".to_vec()].concat();
    chat_exact(&line, b"", TOO_LONG.as_bytes());
}

fn line_of_exactly_max_line_is_relayed() {
    let text = "y".repeat(4096);
    chat_exact(format!("{text}\n").as_bytes(), &relayed(&text), b"");
}

fn max_line_with_crlf_is_relayed() {
    let text = "z".repeat(4096);
    chat_exact(format!("{text}\r\n").as_bytes(), &relayed(&text), b"");
}

fn max_line_plus_one_with_crlf_is_refused() {
    let line = format!("{}\r\n", "w".repeat(4097));
    chat_exact(line.as_bytes(), b"", TOO_LONG.as_bytes());
}

fn a_megabyte_without_newline_is_refused_once() {
    let mut c = Chat::new();
    let big = vec![b'a'; 1 << 20];
    c.exact(
        &[&big, b"\nafter\n"],
        &relayed("after"),
        TOO_LONG.as_bytes(),
    );
    c.stop();
}

fn no_newline_ever_times_out() {
    const TIMEOUT: Duration = Duration::from_millis(300);
    let mut c = Chat::start(ChatConfig {
        partial_timeout: TIMEOUT,
        ..ChatConfig::default()
    });
    let sent_at = Instant::now();
    c.s.send("no newline, ever");
    let to_r = c.r.bytes_before(|l| l == b"* sender left (timeout)");
    assert!(sent_at.elapsed() >= TIMEOUT - Duration::from_millis(20));
    same("receiver", &to_r, b"");
    same("sender", &c.s.until_eof(), b"");
    c.stop();
}

fn invalid_utf8_becomes_replacement_characters() {
    chat_exact(
        b"bad \xff\xfe utf8 \xe2\x82 \xc0\xaf\n",
        &relayed("bad \u{FFFD}\u{FFFD} utf8 \u{FFFD} \u{FFFD}\u{FFFD}"),
        b"",
    );
}

fn nul_byte_is_replaced() {
    chat_exact(b"nul\0here\n", &relayed("nul\u{FFFD}here"), b"");
}

fn bare_cr_is_replaced() {
    chat_exact(
        b"carriage\rreturn\n",
        &relayed("carriage\u{FFFD}return"),
        b"",
    );
}

fn ansi_escapes_are_defused() {
    chat_exact(
        b"\x1b[2J\x1b[31mred\x1b[0m\x1b]0;title\x07\n",
        &relayed("\u{FFFD}[2J\u{FFFD}[31mred\u{FFFD}[0m\u{FFFD}]0;title\u{FFFD}"),
        b"",
    );
}

fn bidi_overrides_and_isolates_are_replaced() {
    let input =
        "a\u{202A}b\u{202B}c\u{202C}d\u{202D}e\u{202E}f\u{2066}g\u{2067}h\u{2068}i\u{2069}j\n";
    let want = "a\u{FFFD}b\u{FFFD}c\u{FFFD}d\u{FFFD}e\u{FFFD}f\u{FFFD}g\u{FFFD}h\u{FFFD}i\u{FFFD}j";
    chat_exact(input.as_bytes(), &relayed(want), b"");
}

fn c1_controls_and_del_are_replaced_tab_is_kept() {
    chat_exact(
        b"c1\xc2\x85\xc2\x9bdel\x7fbel\x07tab\tok\n",
        &relayed("c1\u{FFFD}\u{FFFD}del\u{FFFD}bel\u{FFFD}tab\tok"),
        b"",
    );
}

fn impersonation_keeps_the_real_prefix() {
    chat_exact(b"<receiver> fake\n", &relayed("<receiver> fake"), b"");
}

fn fake_notice_is_relayed_as_text() {
    chat_exact(b"* receiver left\n", &relayed("* receiver left"), b"");
}

fn one_byte_fragmentation_makes_one_line() {
    let mut c = Chat::new();
    let line = b"one byte at a time\n";
    let pieces: Vec<&[u8]> = line.chunks(1).collect();
    c.exact(&pieces, &relayed("one byte at a time"), b"");
    c.stop();
}

fn rst_mid_line_relays_nothing_of_it() {
    let mut c = Chat::new();
    c.s.send("whole line\npartial li");
    let Chat { server, s, mut r } = c;
    util::reset(s.stream);
    let to_r = r.bytes_before(|l| l == b"* sender left (connection lost)");
    same("receiver", &to_r, &relayed("whole line"));
    r.send("/who\n");
    r.expect("* online: receiver");
    drop(r);
    server.stop().expect("chat server");
}

fn half_close_mid_line_relays_nothing_of_it() {
    let mut c = Chat::new();
    c.s.send("whole line\npartial li");
    util::shutdown_write(&c.s.stream).unwrap();
    let to_r = c.r.bytes_before(|l| l == b"* sender left");
    same("receiver", &to_r, &relayed("whole line"));
    same("sender", &c.s.until_eof(), b"");
    c.stop();
}

fn connect_and_close_flood() {
    const FLOOD: usize = 100;
    let mut c = Chat::new();
    let mut names = Vec::new();
    for i in 0..FLOOD {
        let s = util::connect(c.server.addr);
        names.push(s.local_addr().unwrap().to_string());
        if i % 2 == 0 {
            util::reset(s);
        } else {
            drop(s);
        }
    }
    // Wait until the server has let every flooder go: /who until only the
    // two are online. What the sender hears meanwhile is checked too.
    let mut to_s = Vec::new();
    let deadline = Instant::now() + STEP;
    'settled: loop {
        assert!(Instant::now() < deadline, "flooders still online");
        c.s.send("/who\n");
        loop {
            let line = c.s.line();
            match line.strip_prefix("* online: ") {
                Some("sender, receiver") => break 'settled,
                Some(_) => break,
                None => to_s.extend(format!("{line}\n").bytes()),
            }
        }
    }
    // Each flooder is heard of as joined then left, or not at all: on its
    // own lines, or past the room's notice budget (10 a second) in a
    // `* N joined, M left` sum said at the end of that second.
    let (to_r, more) = c.after();
    to_s.extend(more);
    let tally = |who: &str, text: &str| {
        let (mut joins, mut leaves) = (0, 0);
        for line in text.lines() {
            if let Some(name) = names.iter().find(|n| line.starts_with(&format!("* {n} "))) {
                if *line == format!("* {name} joined") {
                    joins += 1;
                } else {
                    assert!(line.starts_with(&format!("* {name} left")), "{who}: {line}");
                    leaves += 1;
                }
                continue;
            }
            let sum = line
                .strip_prefix("* ")
                .unwrap_or_else(|| panic!("{who}: {line:?}"));
            for part in sum.split(", ") {
                let (n, what) = part
                    .split_once(' ')
                    .unwrap_or_else(|| panic!("{who}: {line:?}"));
                let n: usize = n.parse().unwrap_or_else(|_| panic!("{who}: {line:?}"));
                match what {
                    "joined" => joins += n,
                    "left" => leaves += n,
                    _ => panic!("{who}: not a notice of the flood: {line:?}"),
                }
            }
        }
        (joins, leaves)
    };
    for (who, got) in [("receiver", to_r), ("sender", to_s)] {
        let mut text = String::from_utf8(got).unwrap();
        // A sum still owed comes within the second.
        loop {
            let (joins, leaves) = tally(who, &text);
            assert!(joins <= FLOOD, "{who}: {joins} joins of {FLOOD}");
            if joins == leaves {
                break;
            }
            let client = if who == "receiver" {
                &mut c.r
            } else {
                &mut c.s
            };
            text.push_str(&client.line());
            text.push('\n');
        }
    }
    c.s.send("/who\n");
    c.s.expect("* online: sender, receiver");
    c.stop();
}

fn nick_of_33_chars_is_refused() {
    chat_exact(
        format!("/nick {}\n", "n".repeat(33)).as_bytes(),
        b"",
        BAD_NICK.as_bytes(),
    );
}

fn nick_of_32_chars_is_taken() {
    let nick = "N".repeat(32);
    let mut c = Chat::new();
    c.s.send(format!("/nick {nick}\n"));
    c.s.expect(&format!("* you are now {nick}"));
    c.r.expect(&format!("* sender is now known as {nick}"));
    c.s.send("hi\n");
    c.r.expect(&format!("<{nick}> hi"));
    c.stop();
}

fn nick_with_bad_characters_is_refused() {
    chat_exact(b"/nick bad!name\n", b"", BAD_NICK.as_bytes());
}

fn empty_nick_is_refused() {
    chat_exact(b"/nick\n", b"", BAD_NICK.as_bytes());
}

fn blank_nick_is_refused() {
    chat_exact(b"/nick    \n", b"", BAD_NICK.as_bytes());
}

fn unicode_nick_is_refused() {
    chat_exact("/nick José\n".as_bytes(), b"", BAD_NICK.as_bytes());
}

fn nick_with_an_escape_is_refused() {
    chat_exact(b"/nick \x1b[31mred\n", b"", BAD_NICK.as_bytes());
}

fn nick_taken_case_insensitively_is_refused() {
    chat_exact(
        b"/nick RECEIVER\n",
        b"",
        b"* error: nick RECEIVER is taken\n",
    );
}

fn who_spam_answers_each_and_tells_nobody_else() {
    const N: usize = 500;
    let mut c = Chat::start(ChatConfig {
        lines_per_sec: 1e6,
        burst: 1e6,
        ..ChatConfig::default()
    });
    c.s.send("/who\n".repeat(N));
    for _ in 0..N {
        c.s.expect("* online: sender, receiver");
    }
    let (to_r, to_s) = c.after();
    same("receiver", &to_r, b"");
    same("sender", &to_s, b"");
    c.stop();
}

fn unknown_command_is_named() {
    chat_exact(b"/foo bar\n", b"", b"* error: unknown command /foo\n");
}

fn slash_alone_is_an_unknown_command() {
    chat_exact(b"/\n", b"", b"* error: unknown command /\n");
}

fn empty_lines_are_ignored() {
    chat_exact(b"\n\r\n\n\r\n", b"", b"");
}

fn crlf_is_stripped() {
    chat_exact(b"crlf line\r\n", &relayed("crlf line"), b"");
}

fn double_cr_keeps_one_replaced() {
    chat_exact(b"double\r\r\n", &relayed("double\u{FFFD}"), b"");
}

fn help_lists_the_commands() {
    let help = [
        "* commands:",
        "* /nick NEW  take the name NEW (1-32 of A-Z a-z 0-9 _ -)",
        "* /who       list who is online",
        "* /quit      leave",
        "* /help      this help",
        "* anything else is sent to everyone else",
    ]
    .map(|l| format!("{l}\n"))
    .concat();
    chat_exact(b"/help\n", b"", help.as_bytes());
}

fn many_short_lines_are_slowed_not_dropped() {
    const LINES: usize = 600;
    const RATE: f64 = 1000.0;
    const BURST: f64 = 50.0;
    let mut c = Chat::start(ChatConfig {
        lines_per_sec: RATE,
        burst: BURST,
        ..ChatConfig::default()
    });
    let input: String = (0..LINES).map(|i| format!("l{i}\n")).collect();
    let want: Vec<u8> = (0..LINES).flat_map(|i| relayed(&format!("l{i}"))).collect();
    let start = Instant::now();
    c.exact(&[input.as_bytes()], &want, b"");
    let took = start.elapsed();
    let floor = Duration::from_secs_f64((LINES as f64 - BURST) / RATE * 0.9);
    assert!(took >= floor, "{LINES} lines in {took:?}: not rate-limited");
    c.stop();
}

fn throttled_lines_then_half_close_are_all_relayed() {
    // `printf '...' | nc -N`: a burst far over the rate, then EOF at once.
    const LINES: usize = 300;
    let mut c = Chat::start(ChatConfig {
        lines_per_sec: 2000.0,
        burst: 10.0,
        ..ChatConfig::default()
    });
    let input: String = (0..LINES).map(|i| format!("b{i}\n")).collect();
    c.s.send(&input);
    util::shutdown_write(&c.s.stream).unwrap();
    let to_r = c.r.bytes_before(|l| l == b"* sender left");
    let want: Vec<u8> = (0..LINES).flat_map(|i| relayed(&format!("b{i}"))).collect();
    same("receiver", &to_r, &want);
    same("sender", &c.s.until_eof(), b"");
    c.stop();
}

fn nick_is_free_again_when_its_owner_leaves() {
    let mut c = Chat::new();
    let mut t = LineClient::join(c.server.addr);
    let addr = t.name.clone();
    t.nick("Alice");
    drop(t);
    let to_s = c.s.bytes_before(|l| l == b"* Alice left");
    let want = format!("* {addr} joined\n* {addr} is now known as Alice\n");
    same("sender", &to_s, want.as_bytes());
    c.s.send("/nick alice\n");
    c.s.expect("* you are now alice");
    c.stop();
}

fn quit_says_bye_and_leaves() {
    let mut c = Chat::new();
    c.s.send("/quit\nnot relayed\n");
    same("sender", &c.s.until_eof(), b"* bye\n");
    c.r.expect("* sender left (quit)");
    c.r.send("/who\n");
    c.r.expect("* online: receiver");
    c.stop();
}

// ---------------------------------------------------------------------------
// Echo cases: bytes are bytes, whatever they are
// ---------------------------------------------------------------------------

/// Sends `pieces`, half-closes, and expects them back exactly, then EOF.
fn echo_exact(pieces: &[&[u8]]) {
    let mut server = util::start_echo(Config::default());
    let s = util::connect(server.addr);
    let deadline = Instant::now() + STEP;
    for p in pieces {
        util::write_all_deadline(&s, p, deadline).unwrap();
    }
    util::shutdown_write(&s).unwrap();
    let want = pieces.concat();
    let got = util::read_to_eof_deadline(&s, want.len(), deadline).unwrap();
    util::check_bytes("echo", &got, &want).unwrap();
    drop(s);
    server.wait_until(STEP, "closed", |st| st.live == 0);
    server.stop_and_join(STEP);
}

fn echo_all_256_byte_values() {
    let all: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    echo_exact(&[&all]);
}

fn echo_one_byte_fragments() {
    let data = Rng::new(1).bytes(1000);
    let pieces: Vec<&[u8]> = data.chunks(1).collect();
    echo_exact(&pieces);
}

fn echo_leaves_invalid_utf8_escapes_and_bidi_untouched() {
    echo_exact(&[
        b"\xff\xfe\x1b[31m\r\0",
        "\u{202E}\u{2066}".as_bytes(),
        b"\x7f\xc2\x85",
    ]);
}

fn echo_half_close_mid_line() {
    echo_exact(&[b"a partial line without its newline"]);
}

fn echo_megabyte_without_newline() {
    let big = Rng::new(2).bytes(1 << 20);
    echo_exact(&[&big]);
}

fn echo_connect_and_say_nothing() {
    echo_exact(&[]);
}

fn echo_rst_mid_message_leaves_others_whole() {
    let mut server = util::start_echo(Config::default());
    let deadline = Instant::now() + STEP;
    let other = util::connect(server.addr);
    let victim = util::connect(server.addr);
    let data = Rng::new(3).bytes(64 * 1024);
    util::write_all_deadline(&other, &data[..30_000], deadline).unwrap();
    util::write_all_deadline(&victim, &data[..20_000], deadline).unwrap();
    let victim_addr = victim.local_addr().unwrap();
    util::reset(victim);
    util::write_all_deadline(&other, &data[30_000..], deadline).unwrap();
    util::shutdown_write(&other).unwrap();
    let got = util::read_to_eof_deadline(&other, data.len(), deadline).unwrap();
    util::check_bytes("other client", &got, &data).unwrap();
    let st = server.wait_for(STEP, "both closed", |st| st.live == 0);
    let lost = st.lost_peer(victim_addr).expect("the victim was closed");
    assert!(
        matches!(
            lost.reason,
            util::Reason::Error(_) | util::Reason::PeerClosed
        ),
        "{:?}",
        lost.reason
    );
    drop(st);
    server.stop_and_join(STEP);
}

fn echo_connect_and_close_flood() {
    const FLOOD: usize = 200;
    let mut server = util::start_echo(Config::default());
    for i in 0..FLOOD {
        let s = util::connect(server.addr);
        if i % 2 == 0 {
            util::reset(s);
        } else {
            drop(s);
        }
    }
    server.wait_until(STEP, "every flooder closed", |st| {
        st.live == 0 && st.accepted.len() == FLOOD
    });
    let s = util::connect(server.addr);
    util::write_all_deadline(&s, b"still here", Instant::now() + STEP).unwrap();
    let mut back = [0; 10];
    util::read_exact_deadline(&s, &mut back, Instant::now() + STEP).unwrap();
    assert_eq!(&back, b"still here");
    drop(s);
    server.wait_until(STEP, "closed", |st| st.live == 0);
    server.stop_and_join(STEP);
}

fn echo_reset_before_accept_is_skipped() {
    // A client that resets at once, many times over, while a good one waits.
    let mut server = util::start_echo(Config::default());
    let good = util::connect(server.addr);
    for _ in 0..50 {
        let s = TcpStream::connect_timeout(&server.addr, STEP).unwrap();
        util::reset(s);
    }
    util::write_all_deadline(&good, b"ok", Instant::now() + STEP).unwrap();
    let mut back = [0; 2];
    (&good).read_exact(&mut back).unwrap();
    assert_eq!(&back, b"ok");
    drop(good);
    server.wait_until(STEP, "closed", |st| st.live == 0);
    server.stop_and_join(STEP);
}

// ---------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------

type Case = (&'static str, fn());

const CASES: &[Case] = &[
    ("chat/overlong_line_4097_bytes", overlong_line_4097_bytes),
    (
        "chat/line_of_exactly_max_line",
        line_of_exactly_max_line_is_relayed,
    ),
    ("chat/max_line_with_crlf", max_line_with_crlf_is_relayed),
    (
        "chat/max_line_plus_one_with_crlf",
        max_line_plus_one_with_crlf_is_refused,
    ),
    (
        "chat/megabyte_without_newline",
        a_megabyte_without_newline_is_refused_once,
    ),
    ("chat/no_newline_ever_times_out", no_newline_ever_times_out),
    (
        "chat/invalid_utf8",
        invalid_utf8_becomes_replacement_characters,
    ),
    ("chat/nul_byte", nul_byte_is_replaced),
    ("chat/bare_cr", bare_cr_is_replaced),
    ("chat/ansi_escapes", ansi_escapes_are_defused),
    (
        "chat/bidi_overrides",
        bidi_overrides_and_isolates_are_replaced,
    ),
    (
        "chat/c1_controls_del_tab",
        c1_controls_and_del_are_replaced_tab_is_kept,
    ),
    ("chat/impersonation", impersonation_keeps_the_real_prefix),
    ("chat/fake_notice", fake_notice_is_relayed_as_text),
    (
        "chat/one_byte_fragmentation",
        one_byte_fragmentation_makes_one_line,
    ),
    ("chat/rst_mid_line", rst_mid_line_relays_nothing_of_it),
    (
        "chat/half_close_mid_line",
        half_close_mid_line_relays_nothing_of_it,
    ),
    ("chat/connect_and_close_flood", connect_and_close_flood),
    ("chat/nick_33_chars", nick_of_33_chars_is_refused),
    ("chat/nick_32_chars", nick_of_32_chars_is_taken),
    ("chat/nick_bad_chars", nick_with_bad_characters_is_refused),
    ("chat/nick_empty", empty_nick_is_refused),
    ("chat/nick_blank", blank_nick_is_refused),
    ("chat/nick_unicode", unicode_nick_is_refused),
    ("chat/nick_escape", nick_with_an_escape_is_refused),
    (
        "chat/nick_taken_case_insensitively",
        nick_taken_case_insensitively_is_refused,
    ),
    ("chat/who_spam", who_spam_answers_each_and_tells_nobody_else),
    ("chat/unknown_command", unknown_command_is_named),
    ("chat/slash_alone", slash_alone_is_an_unknown_command),
    ("chat/empty_lines", empty_lines_are_ignored),
    ("chat/crlf", crlf_is_stripped),
    ("chat/double_cr", double_cr_keeps_one_replaced),
    ("chat/help", help_lists_the_commands),
    (
        "chat/many_short_lines_rate_limited",
        many_short_lines_are_slowed_not_dropped,
    ),
    ("chat/quit_then_more", quit_says_bye_and_leaves),
    (
        "chat/throttled_burst_then_half_close",
        throttled_lines_then_half_close_are_all_relayed,
    ),
    (
        "chat/nick_freed_when_owner_leaves",
        nick_is_free_again_when_its_owner_leaves,
    ),
    ("echo/all_256_byte_values", echo_all_256_byte_values),
    ("echo/one_byte_fragments", echo_one_byte_fragments),
    (
        "echo/invalid_utf8_escapes_bidi",
        echo_leaves_invalid_utf8_escapes_and_bidi_untouched,
    ),
    ("echo/half_close_mid_line", echo_half_close_mid_line),
    (
        "echo/megabyte_without_newline",
        echo_megabyte_without_newline,
    ),
    ("echo/connect_and_say_nothing", echo_connect_and_say_nothing),
    (
        "echo/rst_mid_message",
        echo_rst_mid_message_leaves_others_whole,
    ),
    ("echo/connect_and_close_flood", echo_connect_and_close_flood),
    (
        "echo/reset_before_accept",
        echo_reset_before_accept_is_skipped,
    ),
];

#[test]
fn bad_input_table() {
    fault::count_panics();
    let _fds = util::fds_shared();
    // Up to 4 cases at once, each on its own thread with its own limit.
    let start = Instant::now();
    let mut failures = Vec::new();
    let mut ran = 0;
    for batch in CASES.chunks(4) {
        let running: Vec<_> = batch
            .iter()
            .map(|&(name, case)| {
                let (tx, rx) = mpsc::channel();
                thread::Builder::new()
                    .name(name.to_string())
                    .spawn(move || {
                        let result = std::panic::catch_unwind(case);
                        let _ = tx.send(result.map_err(|p| panic_text(&p)));
                    })
                    .expect("spawn a case");
                (name, rx)
            })
            .collect();
        for (name, rx) in running {
            // Each case within 60 s, the whole table within 180 s.
            let left = (start + Duration::from_secs(180)).saturating_duration_since(Instant::now());
            match rx.recv_timeout(left.min(Duration::from_secs(60))) {
                Ok(Ok(())) => ran += 1,
                Ok(Err(msg)) => {
                    ran += 1;
                    failures.push(format!("{name}: {msg}"))
                }
                Err(_) => failures.push(format!("{name}: did not finish in time")),
            }
        }
    }
    let chat = CASES.iter().filter(|c| c.0.starts_with("chat/")).count();
    figures(
        "bad_input",
        &[
            ("cases", ran.to_string()),
            ("chat", chat.to_string()),
            ("echo", (CASES.len() - chat).to_string()),
            ("failed", failures.len().to_string()),
            ("secs", format!("{:.1}", start.elapsed().as_secs_f64())),
            ("panics", fault::panics().to_string()),
        ],
    );
    // Every case ran (a result came back for each) and each is named once.
    let names: std::collections::HashSet<&str> = CASES.iter().map(|c| c.0).collect();
    assert_eq!(names.len(), CASES.len(), "a case name appears twice");
    assert_eq!(ran, CASES.len(), "cases that reported back");
    assert!(
        failures.is_empty(),
        "{} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // A panic on a thread no case waits for (a reactor after its case
    // passed, a reader) is counted by the hook, and fails the table too.
    assert_eq!(fault::panics(), 0, "panics in this process");
}

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic".into())
}
