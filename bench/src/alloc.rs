//! A counting global allocator: every `alloc`/`realloc` (not `dealloc`)
//! made by threads other than the reporter adds to two counters.
//!
//! Install it in a binary with
//! `#[global_allocator] static A: Counting = Counting;`, then
//! [`spawn_reporter`] answers SIGUSR1 by writing `seq=K allocs=N bytes=M` to a
//! file, so a harness can take snapshots around a measured window:
//! steady-state allocations per message = (after - before) / messages.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The counting allocator (wraps [`System`]).
pub struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Set on the reporter thread, whose own allocations are not the server's.
    static SKIP: Cell<bool> = const { Cell::new(false) };
}

fn count(size: usize) {
    if !SKIP.with(|s| s.get()) {
        ALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(size as u64, Relaxed);
    }
}

// SAFETY: forwards every call to `System` unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

/// Allocations and bytes allocated so far.
pub fn totals() -> (u64, u64) {
    (ALLOCS.load(Relaxed), BYTES.load(Relaxed))
}

/// Starts a thread that, on each SIGUSR1, overwrites `path` with
/// `seq=K allocs=N bytes=M` (K counts the snapshots, so a reader can tell a
/// fresh one from the last).
pub fn spawn_reporter(path: std::path::PathBuf) -> std::io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGUSR1])?;
    std::thread::Builder::new()
        .name("alloc-report".into())
        .spawn(move || {
            SKIP.with(|s| s.set(true));
            let tmp = path.with_extension("tmp");
            for (seq, _) in signals.forever().enumerate() {
                let (allocs, bytes) = totals();
                let line = format!("seq={} allocs={allocs} bytes={bytes}\n", seq + 1);
                if std::fs::write(&tmp, line).is_ok() {
                    let _ = std::fs::rename(&tmp, &path);
                }
            }
        })?;
    Ok(())
}
