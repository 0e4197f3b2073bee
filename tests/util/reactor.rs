//! The one reactor-on-a-thread harness every test binary uses: a built
//! [`Reactor`] runs on a thread of its own; [`Running`] stops it, waits for
//! it with a deadline, and says why it did not return cleanly (still
//! running, failed, or panicked, and with what message). Dropping it stops
//! the reactor (bounded wait), so a failed test never leaves one running.
//!
//! The reactor is built (and bound) on its own thread, where its callbacks
//! run; a bind error comes back to the test as it is.

use std::net::SocketAddr;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use mio_selectors::{Config, Handle, Handler, Reactor};

/// How long `drop` waits for a reactor it stops.
const DROP_WAIT: Duration = Duration::from_secs(10);

/// A reactor running on its own thread.
pub struct Running {
    pub handle: Handle,
    /// `run`'s result and the moment it returned (the reactor dropped, so
    /// its descriptors are closed, before it is sent).
    done: Receiver<(Result<(), String>, Instant)>,
    thread: Option<JoinHandle<()>>,
    /// When `run` returned, once joined.
    pub ended: Option<Instant>,
}

/// Builds a reactor with `build` on a new thread named `reactor` (where
/// its callbacks will run), then runs it there; returns once it is built,
/// with what `build` returned besides it, or with `build`'s error.
pub fn spawn_built<H, T>(
    build: impl FnOnce() -> mio_selectors::Result<(Reactor<H>, T)> + Send + 'static,
) -> mio_selectors::Result<(Running, T)>
where
    H: Handler + 'static,
    T: Send + 'static,
{
    let (ready_tx, ready) = mpsc::channel();
    let (tx, done) = mpsc::channel();
    let thread = thread::Builder::new()
        .name("reactor".into())
        .spawn(move || {
            let mut reactor = match build() {
                Ok((reactor, out)) => {
                    let _ = ready_tx.send(Ok((reactor.handle(), out)));
                    reactor
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let result = reactor.run().map_err(|e| e.to_string());
            drop(reactor); // its descriptors are closed before we report
            let _ = tx.send((result, Instant::now()));
        })
        .expect("spawn the reactor thread");
    let (handle, out) = match ready.recv_timeout(DROP_WAIT) {
        Ok(Ok(ready)) => ready,
        Ok(Err(e)) => {
            let _ = thread.join();
            return Err(e);
        }
        Err(e) => panic!("the reactor was not built within {DROP_WAIT:?}: {e}"),
    };
    let running = Running {
        handle,
        done,
        thread: Some(thread),
        ended: None,
    };
    Ok((running, out))
}

/// Runs an already built `reactor` on a new thread named `reactor`.
pub fn spawn_reactor<H>(reactor: Reactor<H>) -> Running
where
    H: Handler + 'static,
    Reactor<H>: Send,
{
    spawn_built(move || Ok((reactor, ())))
        .expect("nothing to build")
        .0
}

/// Builds a reactor for `handler` within `config`, listens on `bind`
/// (`127.x.y.z:0`, `[::1]:0`) and runs it; returns it with the address.
pub fn serve<H>(
    handler: H,
    config: Config,
    bind: &str,
) -> mio_selectors::Result<(Running, SocketAddr)>
where
    H: Handler + Send + 'static,
{
    let bind = bind.to_string();
    spawn_built(move || {
        let mut reactor = Reactor::new(handler, config)?;
        let id = reactor.listen(bind.as_str())?;
        let addr = reactor.local_addr(id)?;
        Ok((reactor, addr))
    })
}

impl Running {
    /// Waits up to `timeout` for `run` to return; `Err` says why it did
    /// not return cleanly (still running, failed, or panicked, and where).
    pub fn join(&mut self, timeout: Duration) -> Result<(), String> {
        if self.thread.is_none() && self.ended.is_some() {
            return Ok(()); // joined before
        }
        match self.done.recv_timeout(timeout) {
            Ok((result, ended)) => {
                self.ended = Some(ended);
                if let Some(t) = self.thread.take() {
                    let _ = t.join();
                }
                result.map_err(|e| format!("Reactor::run failed: {e}"))
            }
            Err(RecvTimeoutError::Timeout) => {
                Err(format!("Reactor::run did not return within {timeout:?}"))
            }
            Err(RecvTimeoutError::Disconnected) => match self.thread.take().map(JoinHandle::join) {
                Some(Err(panic)) => Err(format!("the reactor panicked: {}", message(&*panic))),
                _ => Err("the reactor thread ended without a result".into()),
            },
        }
    }

    /// `Handle::stop`, then [`join`](Self::join).
    pub fn stop_and_join(&mut self, timeout: Duration) -> Result<(), String> {
        self.handle.stop();
        self.join(timeout)
    }

    /// Why the reactor is not reporting: it panicked, or is still running.
    pub fn why_silent(&mut self) -> String {
        match self.join(Duration::ZERO) {
            Ok(()) => "Reactor::run returned".into(),
            Err(e) => e,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            self.handle.stop();
            if self.done.recv_timeout(DROP_WAIT).is_ok() {
                let _ = t.join();
            }
        }
    }
}

/// A panic's message.
pub fn message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(no message)".into())
}
