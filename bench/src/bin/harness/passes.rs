//! The chat's writes per recipient per loop pass, exactly: `strace -f` of
//! the write calls and `epoll_wait` for about a second of a chat run; on each
//! thread, the calls between two `epoll_wait`s are one pass, counted per
//! descriptor.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::config::{ChatScenario, Opts, Server};
use crate::processes::{lines_of, signal, start_server, stop_server, wait_exit, Load};
use crate::runs::{chat_args, scratch};
use crate::trace::wait_for;
use crate::Res;

#[derive(Default, Debug)]
pub struct PassStats {
    pub passes: u64,
    /// (pass, descriptor) pairs that saw at least one write.
    pub recipient_passes: u64,
    /// ... of which saw more than one.
    pub over_one: u64,
    /// ... of which saw more than one where every extra write returned EAGAIN.
    pub over_one_eagain_only: u64,
    pub writes: u64,
    pub max_in_pass: u64,
}

pub fn pass_trace(o: &Opts, s: &Server, sc: &ChatScenario) -> Res<PassStats> {
    let srv = start_server(s, &o.cpus, &scratch(o, &format!("{}-pass.log", s.key)))?;
    let result = traced_second(o, sc, srv.pid, &srv.addr);
    let stopped = stop_server(srv);
    let r = result.map_err(|e| format!("{} pass trace: {e}", s.key))?;
    stopped?;
    Ok(r)
}

/// Starts a 2 s chat window, attaches strace once the load runs, counts
/// one second from the moment strace reports itself attached.
fn traced_second(o: &Opts, sc: &ChatScenario, pid: u32, addr: &str) -> Res<PassStats> {
    let out = scratch(o, "pass-trace.txt");
    let mut args = vec!["chat".to_string(), addr.to_string()];
    args.extend(chat_args(o, sc, 2.0)[1..].iter().cloned());
    args.push("--sync".into());
    let mut load = Load::start(&o.bin, &o.cpus.load(), &args)?;
    load.paused(Duration::from_secs(120))?;
    load.go()?;
    let mut st = Command::new("taskset")
        .args(["-c", &o.cpus.load(), "strace", "-f", "-s", "0", "-e"])
        .arg("trace=epoll_wait,epoll_pwait,epoll_pwait2,write,writev,sendto,sendmsg")
        .arg("-o")
        .arg(&out)
        .args(["-p", &pid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("strace: {e}"))?;
    let rx = lines_of(st.stderr.take().expect("stderr"));
    if let Err(e) = wait_for(&rx, &format!("Process {pid} attached")) {
        let _ = st.kill();
        let _ = st.wait();
        return Err(format!("strace: {e}"));
    }
    // The sample: one second of passes (the window itself runs 2 s).
    std::thread::sleep(Duration::from_millis(1000));
    signal(st.id(), libc::SIGINT);
    wait_exit(&mut st, Duration::from_secs(10)).ok_or("strace did not stop")?;
    load.result(Duration::from_secs(60))?;
    load.paused(Duration::from_secs(30))?;
    load.finish()?;
    let text = std::fs::read_to_string(&out).map_err(|e| e.to_string())?;
    let st = count_passes(&text);
    if st.passes == 0 || st.writes == 0 {
        return Err(format!(
            "strace saw {} passes and {} writes in a second of chat",
            st.passes, st.writes
        ));
    }
    Ok(st)
}

/// Per descriptor in one thread's current pass: (writes, writes that did
/// not return EAGAIN).
type Pass = BTreeMap<String, (u64, u64)>;

fn close_pass(pass: &mut Pass, st: &mut PassStats) {
    for &(n, ok) in pass.values() {
        st.recipient_passes += 1;
        st.max_in_pass = st.max_in_pass.max(n);
        if n > 1 {
            st.over_one += 1;
            if ok <= 1 {
                st.over_one_eagain_only += 1;
            }
        }
    }
    pass.clear();
}

/// Counts strace -f lines (`TID call(args) = ret`, or without the TID when
/// one thread was traced); a call interrupted by another thread's shows as
/// `call(... <unfinished ...>` and later `<... call resumed>... = ret`.
pub fn count_passes(text: &str) -> PassStats {
    let mut st = PassStats::default();
    let mut threads: BTreeMap<&str, Pass> = BTreeMap::new();
    // An unfinished write per thread: its descriptor, until it resumes.
    let mut pending: BTreeMap<&str, String> = BTreeMap::new();
    for line in text.lines() {
        let (tid, call) = match line.split_once(' ') {
            Some((a, b)) if a.chars().all(|c| c.is_ascii_digit()) => (a, b.trim_start()),
            _ => ("", line),
        };
        let pass = threads.entry(tid).or_default();
        if call.starts_with("epoll_wait(")
            || call.starts_with("epoll_pwait(")
            || call.starts_with("epoll_pwait2(")
        {
            close_pass(pass, &mut st);
            st.passes += 1;
        } else if let Some(rest) = ["write(", "writev(", "sendto(", "sendmsg("]
            .iter()
            .find_map(|p| call.strip_prefix(p))
        {
            let fd = rest.split(',').next().unwrap_or("").to_string();
            let e = pass.entry(fd.clone()).or_insert((0, 0));
            e.0 += 1;
            st.writes += 1;
            if call.ends_with("<unfinished ...>") {
                pending.insert(tid, fd);
            } else if !call.contains("EAGAIN") {
                e.1 += 1;
            }
        } else if call.starts_with("<... ") && call.contains(" resumed>") {
            if let Some(fd) = pending.remove(tid) {
                if !call.contains("EAGAIN") {
                    pass.entry(fd).or_insert((1, 0)).1 += 1;
                }
            }
        }
    }
    for pass in threads.values_mut() {
        close_pass(pass, &mut st);
    }
    st
}

#[cfg(test)]
mod tests {
    use super::count_passes;

    #[test]
    fn passes_are_per_thread_and_resumed_calls_count_once() {
        let text = "\
10 epoll_wait(3, [...], 1024, -1) = 2
11 epoll_wait(4, [...], 1024, -1) = 1
10 write(7, \"\"..., 64) = 64
11 write(7, \"\"... <unfinished ...>
10 write(8, \"\"..., 64) = 64
11 <... write resumed>) = 64
10 write(8, \"\"..., 64) = -1 EAGAIN (Resource temporarily unavailable)
10 epoll_wait(3, [...], 1024, -1) = 1
";
        let st = count_passes(text);
        assert_eq!(st.passes, 3);
        assert_eq!(st.writes, 4);
        // Thread 10: fd 7 once, fd 8 twice (the extra one EAGAIN); thread 11: fd 7 once.
        assert_eq!(st.recipient_passes, 3);
        assert_eq!(
            (st.over_one, st.over_one_eagain_only, st.max_in_pass),
            (1, 1, 2)
        );
    }
}
