//! [`Handle`]: reaches a running reactor from other threads or a signal
//! handler; [`Loop`]: what work sent through it may do on the loop.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::metrics::Snapshot;
use crate::{ConnId, Error, Result};

/// Work submitted from another thread, run on the loop thread.
pub(crate) type Task = Box<dyn FnOnce(&mut dyn Loop) + Send>;

/// What a task sent with [`Handle::call_soon_threadsafe`] may do, on the
/// loop thread: the parts of [`Context`](crate::Context) that do not depend
/// on the connection data's type.
pub trait Loop {
    /// As [`Context::send`](crate::Context::send).
    ///
    /// # Errors
    ///
    /// As [`Context::send`](crate::Context::send).
    fn send(&mut self, id: ConnId, data: &[u8]) -> Result<()>;
    /// As [`Context::broadcast`](crate::Context::broadcast).
    fn broadcast(&mut self, data: &[u8], except: Option<ConnId>) -> usize;
    /// As [`Context::close`](crate::Context::close).
    fn close(&mut self, id: ConnId);
    /// As [`Context::connection_count`](crate::Context::connection_count).
    fn connection_count(&self) -> usize;
    /// As [`Context::stop`](crate::Context::stop).
    fn stop(&mut self);
    /// As [`Context::metrics_snapshot`](crate::Context::metrics_snapshot).
    fn metrics_snapshot(&self) -> Snapshot;
}

/// A `Send + Clone` handle to a [`Reactor`](crate::Reactor): stop it, or
/// hand it work, from any thread.
///
/// Every call writes to the reactor's mio [`Waker`](mio::Waker) (an eventfd);
/// wake-ups coalesce (a burst of submissions costs one wake-up and one loop
/// pass) and no submitted work is lost. [`stop`](Self::stop) only sets a flag
/// and wakes, both async-signal-safe, so it may be called from a signal
/// handler; [`call_soon_threadsafe`](Self::call_soon_threadsafe) takes a lock
/// and allocates, so it may not.
///
/// ```
/// use mio_selectors::{Config, Reactor};
/// # struct App;
/// # impl mio_selectors::Handler for App {
/// #     type Data = ();
/// # }
/// let mut reactor = Reactor::new(App, Config::default())?;
/// let handle = reactor.handle();
/// std::thread::spawn(move || handle.stop());
/// reactor.run()?; // returns once the other thread has stopped it
/// # Ok::<(), mio_selectors::Error>(())
/// ```
#[derive(Clone)]
pub struct Handle {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("stopping", &self.is_stopping())
            .finish()
    }
}

pub(crate) struct Shared {
    pub(crate) waker: mio::Waker,
    pub(crate) stop: AtomicBool,
    pub(crate) tasks: Mutex<Vec<Task>>,
}

impl Handle {
    /// Asks the reactor to stop gracefully: stop accepting, flush pending
    /// output for up to [`Config::shutdown_timeout`](crate::Config::shutdown_timeout),
    /// close everything, and return from `run`.
    ///
    /// ```
    /// # use mio_selectors::{Config, Reactor};
    /// # struct App;
    /// # impl mio_selectors::Handler for App { type Data = (); }
    /// let mut reactor = Reactor::new(App, Config::default())?;
    /// let handle = reactor.handle();
    /// handle.stop();
    /// handle.stop(); // a second call changes nothing
    /// reactor.run()?; // returns: stopped, and nothing to flush
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Release);
        self.wake();
    }

    /// Whether [`stop`](Self::stop) has been called.
    ///
    /// ```
    /// # use mio_selectors::{Config, Reactor};
    /// # struct App;
    /// # impl mio_selectors::Handler for App { type Data = (); }
    /// # let reactor = Reactor::new(App, Config::default())?;
    /// let handle = reactor.handle();
    /// assert!(!handle.is_stopping());
    /// handle.stop();
    /// assert!(handle.is_stopping());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_stopping(&self) -> bool {
        self.shared.stop.load(Ordering::Acquire)
    }

    /// Runs `task` on the loop thread at the start of its next pass (asyncio:
    /// `loop.call_soon_threadsafe`). Tasks run in the order submitted. A task
    /// submitted after the reactor has stopped is never run.
    ///
    /// ```
    /// # use mio_selectors::{Config, Reactor};
    /// # struct App;
    /// # impl mio_selectors::Handler for App { type Data = (); }
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::sync::Arc;
    ///
    /// let mut reactor = Reactor::new(App, Config::default())?;
    /// let handle = reactor.handle();
    /// let ran = Arc::new(AtomicBool::new(false));
    /// let flag = ran.clone();
    /// std::thread::spawn(move || {
    ///     handle.call_soon_threadsafe(move |lp| {
    ///         flag.store(true, Ordering::SeqCst); // on the loop thread
    ///         assert_eq!(lp.connection_count(), 0);
    ///         lp.stop();
    ///     });
    /// });
    /// reactor.run()?; // until the task stops it
    /// assert!(ran.load(Ordering::SeqCst));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn call_soon_threadsafe(&self, task: impl FnOnce(&mut dyn Loop) + Send + 'static) {
        let first = {
            let mut tasks = self.shared.tasks.lock().unwrap_or_else(|e| e.into_inner());
            tasks.push(Box::new(task));
            tasks.len() == 1
        };
        // A non-empty queue has a wake-up on its way already.
        if first {
            self.wake();
        }
    }

    /// Queues `data` to connection `id` from any thread; shorthand for a
    /// [`call_soon_threadsafe`](Self::call_soon_threadsafe) that sends it.
    /// Errors (the connection is gone, its output is full) are logged.
    ///
    /// ```
    /// # use mio_selectors::{Config, Reactor};
    /// # struct App;
    /// # impl mio_selectors::Handler for App { type Data = (); }
    /// # let mut reactor = Reactor::new(App, Config::default())?;
    /// # let server = reactor.listen("127.0.0.1:0")?;
    /// # let addr = reactor.local_addr(server)?;
    /// # let handle = reactor.handle();
    /// # reactor.with_context(|cx| -> mio_selectors::Result<()> {
    /// # let id = cx.connect(addr, ())?;
    /// handle.send(id, b"tick\n".to_vec());
    /// # Ok(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send(&self, id: ConnId, data: Vec<u8>) {
        self.call_soon_threadsafe(move |lp| {
            if let Err(e) = lp.send(id, &data) {
                log::debug!("{id}: send from another thread failed: {e}");
            }
        });
    }

    /// A snapshot of the reactor's counters, from any thread: a request
    /// through [`call_soon_threadsafe`](Self::call_soon_threadsafe), answered
    /// by the loop at the start of its next pass, waited for up to `timeout`.
    /// Must not be called on the loop's own thread (it would wait for
    /// itself); there, use [`Context::metrics_snapshot`](crate::Context::metrics_snapshot).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] with [`TimedOut`](io::ErrorKind::TimedOut) if no answer
    /// came within `timeout` (the reactor is busy, stopped, or not running).
    ///
    /// ```
    /// use mio_selectors::{Config, Reactor};
    /// use std::time::Duration;
    /// # struct App;
    /// # impl mio_selectors::Handler for App {
    /// #     type Data = ();
    /// # }
    /// let mut reactor = Reactor::new(App, Config::default())?;
    /// let handle = reactor.handle();
    /// let reader = std::thread::spawn(move || {
    ///     let snapshot = handle.metrics(Duration::from_secs(10));
    ///     handle.stop();
    ///     snapshot
    /// });
    /// reactor.run()?;
    /// assert_eq!(reader.join().unwrap()?.active, 0);
    /// # Ok::<(), mio_selectors::Error>(())
    /// ```
    pub fn metrics(&self, timeout: std::time::Duration) -> Result<Snapshot> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.call_soon_threadsafe(move |lp| {
            let _ = tx.send(lp.metrics_snapshot());
        });
        rx.recv_timeout(timeout).map_err(|_| {
            Error::Io(io::Error::new(
                io::ErrorKind::TimedOut,
                "the reactor did not answer the metrics request",
            ))
        })
    }

    fn wake(&self) {
        if let Err(e) = self.shared.waker.wake() {
            // Only a full eventfd counter fails, and that means a wake-up is pending anyway.
            if e.kind() != io::ErrorKind::WouldBlock {
                log::error!("reactor handle: wake failed: {e}");
            }
        }
    }

    pub(crate) fn take_tasks(&self) -> Vec<Task> {
        std::mem::take(&mut *self.shared.tasks.lock().unwrap_or_else(|e| e.into_inner()))
    }
}
