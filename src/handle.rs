//! [`Handle`]: stops a running reactor from another thread or a signal handler.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A `Send + Clone` handle to a [`Reactor`](crate::Reactor) that stops
/// [`run`](crate::Reactor::run) from any thread.
///
/// [`stop`](Self::stop) sets a flag and writes to the reactor's mio
/// [`Waker`](mio::Waker) (an eventfd): both are async-signal-safe, so it may
/// also be called from a signal handler. Many wake-ups coalesce into one.
///
/// ```
/// use mio_selectors::{Config, Reactor};
/// # struct App;
/// # impl mio_selectors::Handler for App {
/// #     type Data = ();
/// #     fn accept_wrapper(&mut self, _: &mut mio_selectors::Context<'_, ()>, _: mio_selectors::ConnId, _: &std::net::SocketAddr) -> Option<()> { None }
/// #     fn service_connection(&mut self, _: &mut mio_selectors::Context<'_, ()>, _: mio_selectors::ConnId, _: &mut mio_selectors::InBuf) {}
/// # }
/// let mut reactor = Reactor::new(App, Config::default())?;
/// let handle = reactor.handle();
/// std::thread::spawn(move || handle.stop());
/// reactor.run()?; // returns once the other thread has stopped it
/// # Ok::<(), mio_selectors::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Handle {
    pub(crate) shared: Arc<Shared>,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) waker: mio::Waker,
    pub(crate) stop: AtomicBool,
}

impl Handle {
    /// Asks the reactor to stop gracefully: stop accepting, flush pending
    /// output for up to [`Config::shutdown_timeout`](crate::Config::shutdown_timeout),
    /// close everything, and return from `run`.
    ///
    /// ```
    /// # fn f(handle: mio_selectors::Handle) {
    /// handle.stop();
    /// handle.stop(); // a second call changes nothing
    /// # }
    /// ```
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Err(e) = self.shared.waker.wake() {
            // Only a full eventfd counter fails, and that means a wake-up is pending anyway.
            if e.kind() != io::ErrorKind::WouldBlock {
                log::error!("reactor handle: wake failed: {e}");
            }
        }
    }

    /// Whether [`stop`](Self::stop) has been called.
    ///
    /// ```
    /// # fn f(handle: mio_selectors::Handle) {
    /// handle.stop();
    /// assert!(handle.is_stopping());
    /// # }
    /// ```
    pub fn is_stopping(&self) -> bool {
        self.shared.stop.load(Ordering::Acquire)
    }
}
