//! `Config::busy_poll`: the loop spins on a non-blocking poll for a bounded
//! time before it blocks. It must still echo correctly, refuse silly
//! values, and go to sleep when idle.

mod util;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use mio_selectors::{Config, Error, Reactor};
use util::{connect, start_echo};

/// CPU ticks (user + system) used so far by this process's threads whose
/// name starts with `prefix`.
fn cpu_ticks(prefix: &str) -> u64 {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !comm.starts_with(prefix) {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // Fields after the `(comm)`: state is 3rd, utime 14th, stime 15th.
        let rest = &stat[stat.rfind(')').map_or(0, |i| i + 2)..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        total += f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    }
    total
}

#[test]
fn busy_polling_echoes_and_sleeps_when_idle() {
    let config = Config {
        busy_poll: Some(Duration::from_millis(2)),
        ..Config::default()
    };
    let mut server = start_echo(config);
    let mut c = connect(server.addr);
    let mut back = [0u8; 64];
    for i in 0..200u8 {
        let msg = [i; 64];
        c.write_all(&msg).unwrap();
        c.read_exact(&mut back).unwrap();
        assert_eq!(back, msg);
    }
    // Idle now: the loop may spin 2 ms, then must block. 500 ms of spinning
    // would be about 50 ticks of 10 ms; sleeping costs next to none.
    let before = cpu_ticks("reactor");
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(500) {
        std::thread::sleep(Duration::from_millis(50)); // the idle time being measured
    }
    let used = cpu_ticks("reactor") - before;
    assert!(
        used <= 10,
        "the idle loop used {used} ticks in 500 ms: it kept spinning"
    );
    drop(c);
    server.stop_and_join(Duration::from_secs(10));
}

#[test]
fn busy_poll_past_10_ms_is_refused() {
    struct App;
    impl mio_selectors::Handler for App {
        type Data = ();
    }
    let config = Config {
        busy_poll: Some(Duration::from_millis(11)),
        ..Config::default()
    };
    assert!(matches!(Reactor::new(App, config), Err(Error::Config(_))));
    let ok = Config {
        busy_poll: Some(Duration::from_millis(10)),
        ..Config::default()
    };
    assert!(Reactor::new(App, ok).is_ok());
}
