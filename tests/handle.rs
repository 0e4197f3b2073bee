//! `Handle`: tasks from other threads, and `stop` from another thread.

mod util;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::Instant;
#[allow(unused_imports)]
use util::probe::*;
use util::{connect, read_exact_deadline, with_deadline, Latch};

#[test]
fn handle_tasks_from_8_threads_run_once_each_in_submission_order() {
    with_deadline(LIMIT, || {
        const THREADS: usize = 8;
        const TASKS: u32 = 1_000;
        const EVERY: u32 = 10; // every tenth task also sends a line
        let (mut rig, (addr, loop_thread)) = Rig::start(silent(), |r| {
            let id = r.listen("127.0.0.1:0")?;
            Ok((r.local_addr(id)?, thread::current().id()))
        });
        let client = connect(addr);
        let (_, _, acc) = rig.wait(WAIT, "accept", is_accepted);
        let id = accepted_id(acc);
        let counter = Arc::new(AtomicUsize::new(0));
        let order = Arc::new(Mutex::new(Vec::new()));
        let (done_tx, done_rx) = mpsc::channel();
        let start = Arc::new(Latch::new(THREADS));
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let (handle, counter, order) = (rig.handle.clone(), counter.clone(), order.clone());
                let (done_tx, start) = (done_tx.clone(), start.clone());
                thread::spawn(move || {
                    start.arrive_and_wait(Instant::now() + WAIT).unwrap();
                    for seq in 0..TASKS {
                        let (counter, order) = (counter.clone(), order.clone());
                        handle.call_soon_threadsafe(move |_| {
                            counter.fetch_add(1, Ordering::SeqCst);
                            let on_loop = thread::current().id() == loop_thread;
                            order.lock().unwrap().push((t, seq, on_loop));
                        });
                        if seq % EVERY == 0 {
                            handle.send(id, format!("{t}:{seq:04}\n").into_bytes());
                        }
                    }
                    let done_tx = done_tx.clone();
                    handle.call_soon_threadsafe(move |_| {
                        let _ = done_tx.send(t);
                    });
                })
            })
            .collect();
        for t in threads {
            t.join().expect("submitting thread");
        }
        for _ in 0..THREADS {
            done_rx
                .recv_timeout(WAIT)
                .expect("a thread's last task ran");
        }
        // One more round trip: nothing runs twice, late.
        let (tx, rx) = mpsc::channel();
        rig.handle.call_soon_threadsafe(move |_| {
            let _ = tx.send(());
        });
        rx.recv_timeout(WAIT).expect("barrier task");
        assert_eq!(counter.load(Ordering::SeqCst), THREADS * TASKS as usize);
        let order = order.lock().unwrap().clone();
        assert!(
            order.iter().all(|&(_, _, on_loop)| on_loop),
            "a task ran off the loop thread"
        );
        for t in 0..THREADS {
            let seqs: Vec<u32> = order.iter().filter(|e| e.0 == t).map(|e| e.1).collect();
            assert_eq!(seqs, (0..TASKS).collect::<Vec<_>>(), "thread {t}'s tasks");
        }
        // The lines sent through Handle::send: each once, in order per thread.
        let lines_total = THREADS * (TASKS / EVERY) as usize;
        let mut text = vec![0; lines_total * 7];
        read_exact_deadline(&client, &mut text, Instant::now() + WAIT).unwrap();
        let text = String::from_utf8(text).unwrap();
        for t in 0..THREADS {
            let seqs: Vec<u32> = text
                .lines()
                .filter_map(|l| l.split_once(':'))
                .filter(|(th, _)| *th == t.to_string())
                .map(|(_, s)| s.parse().unwrap())
                .collect();
            let want: Vec<u32> = (0..TASKS).step_by(EVERY as usize).collect();
            assert_eq!(seqs, want, "thread {t}'s lines");
        }
        drop(client); // a graceful stop need not wait for it
        rig.stop();
    });
}

#[test]
fn handle_task_submitted_before_run_runs_and_stop_from_another_thread_ends_run() {
    with_deadline(LIMIT, || {
        let (tx, rx) = mpsc::channel();
        let (mut rig, ()) = Rig::start(silent(), move |r| {
            r.handle().call_soon_threadsafe(move |lp| {
                let _ = tx.send(lp.connection_count());
            });
            Ok(())
        });
        assert_eq!(rx.recv_timeout(WAIT).expect("task queued before run"), 0);
        let handle = rig.handle.clone();
        thread::spawn(move || handle.stop()).join().unwrap();
        rig.join();
        // `rig.join` waits for `run` to return within WAIT: that it returned
        // at all after a stop from another thread is the check.
        assert_eq!(rig.count(|ev| matches!(ev, Ev::ShuttingDown)), 1);
    });
}
