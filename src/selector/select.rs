//! [`Selector`]: Python's `selectors.DefaultSelector`, level-triggered, on mio.

use std::collections::HashMap;
use std::io;
use std::os::unix::io::RawFd;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Poll, Token};

use super::{FileObj, SelectorKey, SelectorMap};
use crate::{Error, EventMask, Result};

/// A registration and whether `select` still owes it a re-arm.
#[derive(Debug)]
pub(crate) struct Entry<T> {
    pub(crate) key: SelectorKey<T>,
    rearm: bool,
}

/// Python's `selectors` API over a mio [`Poll`]: register file objects with
/// events and data, then `select` the ready ones.
///
/// The selector keys registrations by file descriptor, as Python does, and
/// registers the raw fd with mio (so any [`AsRawFd`](std::os::unix::io::AsRawFd)
/// source works, and a closed socket can still be unregistered by its fd).
///
/// # Level-triggered, as in Python
///
/// mio is edge-triggered: it reports a socket once when it becomes ready and
/// not again until it becomes ready anew. Python's `DefaultSelector` (epoll,
/// level-triggered) reports a socket on *every* `select` while it stays ready,
/// and the tutorials rely on that: they `recv(1024)` once per event and leave
/// the rest for the next round.
///
/// This selector gives Python's behaviour: every fd that one `select` reports
/// is re-armed at the start of the next `select` with `epoll_ctl(MOD)`, which
/// makes the kernel re-check its readiness and queue it again if it is still
/// ready. No readiness is lost in between, because new data after a report
/// raises a new edge anyway.
///
/// **Cost:** one `epoll_ctl` system call per fd reported by the previous
/// `select`; nothing for fds that were not reported. The
/// [`Reactor`](crate::Reactor) does not use this type and pays none of it.
///
/// # Spurious events
///
/// As with Python's selectors, a reported fd may turn out not to be ready
/// (`recv` gives `WouldBlock`): treat `WouldBlock` as "nothing now". An error
/// or hang-up is reported as both `EVENT_READ` and `EVENT_WRITE`, masked by
/// what was registered, so the next `recv` or `send` reports it. A reported
/// mask is never empty and never holds an event that was not registered.
///
/// # Examples
///
/// The tutorial's multiconn echo server. Python keeps the socket in
/// `key.fileobj`; here the socket lives in the key's data, so register it
/// by its fd (`as_raw_fd()`) and move it into the data in the same call.
///
/// ```
/// use mio_selectors::{Selector, EVENT_READ, EVENT_WRITE};
/// use std::io::{Read, Write};
/// use std::os::unix::io::AsRawFd;
/// use std::time::Duration;
///
/// enum Data {
///     Listener(mio::net::TcpListener),
///     Conn { sock: mio::net::TcpStream, outb: Vec<u8> },
/// }
///
/// let mut sel = Selector::new()?;
/// let lsock = mio::net::TcpListener::bind("127.0.0.1:0".parse()?)?;
/// let addr = lsock.local_addr()?;
/// sel.register(lsock.as_raw_fd(), EVENT_READ, Data::Listener(lsock))?;
///
/// let mut client = std::net::TcpStream::connect(addr)?;
/// client.set_read_timeout(Some(Duration::from_secs(5)))?;
/// client.write_all(b"hi")?;
///
/// let mut echoed = 0;
/// while echoed < 2 {
///     for (fd, mask) in sel.select(Some(Duration::from_secs(5)))? {
///         let mut accepted = None;
///         match &mut sel.get_key_mut(fd)?.data {
///             // accept_wrapper(key.fileobj)
///             Data::Listener(lsock) => accepted = Some(lsock.accept()?.0),
///             // service_connection(key, mask)
///             Data::Conn { sock, outb } => {
///                 if mask.is_readable() {
///                     let mut buf = [0; 1024];
///                     match sock.read(&mut buf) {
///                         Ok(n) => outb.extend_from_slice(&buf[..n]),
///                         Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
///                         Err(e) => return Err(e.into()),
///                     }
///                 }
///                 if mask.is_writable() && !outb.is_empty() {
///                     let sent = sock.write(outb)?;
///                     outb.drain(..sent);
///                     echoed += sent;
///                 }
///             }
///         }
///         if let Some(sock) = accepted {
///             let outb = Vec::new();
///             sel.register(sock.as_raw_fd(), EVENT_READ | EVENT_WRITE, Data::Conn { sock, outb })?;
///         }
///     }
/// }
/// let mut back = [0; 2];
/// client.read_exact(&mut back)?;
/// assert_eq!(&back, b"hi");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Selector<T> {
    /// `None` once closed.
    poll: Option<Poll>,
    events: Events,
    pub(crate) map: HashMap<RawFd, Entry<T>>,
    /// Fds the last `select` reported: re-armed at the start of the next one.
    reported: Vec<RawFd>,
}

impl<T> std::fmt::Debug for Selector<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Selector")
            .field("closed", &self.poll.is_none())
            .field("registered", &self.map.len())
            .finish()
    }
}

const MIN_EVENTS: usize = 64;

impl<T> Selector<T> {
    /// Creates a selector (Python: `selectors.DefaultSelector()`).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the OS refuses a new epoll instance (for example,
    /// out of file descriptors).
    ///
    /// ```
    /// let sel: mio_selectors::Selector<()> = mio_selectors::Selector::new()?;
    /// assert_eq!(sel.get_map().unwrap().len(), 0);
    /// # Ok::<(), mio_selectors::Error>(())
    /// ```
    pub fn new() -> Result<Self> {
        Ok(Selector {
            poll: Some(Poll::new()?),
            events: Events::with_capacity(MIN_EVENTS),
            map: HashMap::new(),
            reported: Vec::new(),
        })
    }

    fn poll(&self) -> Result<&Poll> {
        self.poll.as_ref().ok_or(Error::Closed)
    }

    /// Registers `fileobj` for `events` with `data`, and returns its key
    /// (Python: `sel.register(fileobj, events, data)`).
    ///
    /// # Errors
    ///
    /// - [`Error::InvalidEvents`]: `events` is empty or has unknown bits (Python: `ValueError`);
    /// - [`Error::InvalidFd`]: the fd is negative (Python: `ValueError`);
    /// - [`Error::AlreadyRegistered`]: the fd is registered already (Python: `KeyError`);
    /// - [`Error::Closed`]: after [`close`](Self::close) (Python: `RuntimeError`);
    /// - [`Error::Io`]: epoll refused the fd (for example, it is not open).
    ///
    /// ```
    /// use mio_selectors::{Error, Selector, EventMask, EVENT_READ};
    /// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
    /// let mut sel = Selector::new()?;
    /// sel.register(&a, EVENT_READ, 1)?;
    /// assert!(matches!(sel.register(&a, EVENT_READ, 2), Err(Error::AlreadyRegistered(_))));
    /// # let (c, _d) = std::os::unix::net::UnixStream::pair()?;
    /// assert!(matches!(sel.register(&c, EventMask::EMPTY, 3), Err(Error::InvalidEvents(0))));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn register(
        &mut self,
        fileobj: impl FileObj,
        events: EventMask,
        data: T,
    ) -> Result<&SelectorKey<T>> {
        let fd = fileobj.fileno();
        let interest = events.to_interest()?;
        if fd < 0 {
            return Err(Error::InvalidFd(fd));
        }
        let poll = self.poll()?;
        if self.map.contains_key(&fd) {
            return Err(Error::AlreadyRegistered(fd));
        }
        poll.registry()
            .register(&mut SourceFd(&fd), Token(fd as usize), interest)?;
        let key = SelectorKey { fd, events, data };
        let entry = self.map.entry(fd).or_insert(Entry { key, rearm: false });
        Ok(&entry.key)
    }

    /// Unregisters `fileobj` and hands back its key, data included (Python:
    /// `sel.unregister(fileobj)`). Works after the socket was closed: pass its
    /// fd (`key.fd()`), as Python passes the closed socket.
    ///
    /// # Errors
    ///
    /// [`Error::NotRegistered`] (Python: `KeyError`), [`Error::Closed`].
    /// An fd that was already closed is not an error: the kernel dropped it
    /// from epoll when it closed.
    ///
    /// ```
    /// use mio_selectors::{Selector, EVENT_READ};
    /// use std::os::unix::io::AsRawFd;
    /// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
    /// let mut sel = Selector::new()?;
    /// sel.register(&a, EVENT_READ, "a")?;
    /// let fd = a.as_raw_fd();
    /// drop(a);
    /// assert_eq!(sel.unregister(fd)?.data, "a");
    /// # Ok::<(), mio_selectors::Error>(())
    /// ```
    pub fn unregister(&mut self, fileobj: impl FileObj) -> Result<SelectorKey<T>> {
        let fd = fileobj.fileno();
        let poll = self.poll()?;
        if !self.map.contains_key(&fd) {
            return Err(Error::NotRegistered(fd));
        }
        match poll.registry().deregister(&mut SourceFd(&fd)) {
            // Closed (EBADF) or closed and reused by an fd we never registered
            // (ENOENT): the kernel already forgot it. Python ignores this too.
            Err(e) if !is_gone(&e) => return Err(e.into()),
            _ => {}
        }
        Ok(self.map.remove(&fd).expect("checked above").key)
    }

    /// Changes the events and the data of a registration (Python:
    /// `sel.modify(fileobj, events, data)`), and returns the new key.
    ///
    /// # Errors
    ///
    /// [`Error::NotRegistered`] (Python: `KeyError`), [`Error::InvalidEvents`]
    /// (Python: `ValueError`), [`Error::Closed`], [`Error::Io`].
    ///
    /// On [`Error::Io`] (the kernel refused the change, say because the fd
    /// was closed) the old key stays registered, unlike CPython, which
    /// unregisters it: here the data often owns the socket, and dropping it
    /// behind the caller's back would close it. [`unregister`](Self::unregister)
    /// hands it back.
    ///
    /// ```
    /// use mio_selectors::{Selector, EVENT_READ, EVENT_WRITE};
    /// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
    /// let mut sel = Selector::new()?;
    /// sel.register(&a, EVENT_READ, "old")?;
    /// let key = sel.modify(&a, EVENT_WRITE, "new")?;
    /// assert_eq!((key.events(), key.data), (EVENT_WRITE, "new"));
    /// # Ok::<(), mio_selectors::Error>(())
    /// ```
    pub fn modify(
        &mut self,
        fileobj: impl FileObj,
        events: EventMask,
        data: T,
    ) -> Result<&SelectorKey<T>> {
        let fd = fileobj.fileno();
        let interest = events.to_interest()?;
        let poll = self.poll.as_ref().ok_or(Error::Closed)?;
        let entry = self.map.get_mut(&fd).ok_or(Error::NotRegistered(fd))?;
        if entry.key.events != events {
            poll.registry()
                .reregister(&mut SourceFd(&fd), Token(fd as usize), interest)?;
            // The re-registration re-checked readiness already.
            entry.rearm = false;
            entry.key.events = events;
        }
        entry.key.data = data;
        Ok(&entry.key)
    }

    /// The key of `fileobj` (Python: `sel.get_key(fileobj)`).
    ///
    /// # Errors
    ///
    /// [`Error::NotRegistered`] (Python: `KeyError`), [`Error::Closed`] (Python: `RuntimeError`).
    ///
    /// ```
    /// use mio_selectors::{Selector, EVENT_READ};
    /// let (a, b) = std::os::unix::net::UnixStream::pair()?;
    /// let mut sel = Selector::new()?;
    /// sel.register(&a, EVENT_READ, 7)?;
    /// assert_eq!(sel.get_key(&a)?.data, 7);
    /// assert!(sel.get_key(&b).is_err());
    /// # Ok::<(), mio_selectors::Error>(())
    /// ```
    pub fn get_key(&self, fileobj: impl FileObj) -> Result<&SelectorKey<T>> {
        let fd = fileobj.fileno();
        self.poll()?;
        self.map
            .get(&fd)
            .map(|e| &e.key)
            .ok_or(Error::NotRegistered(fd))
    }

    /// The key of `fileobj`, with its data open to change (Python changes
    /// `key.data` in place; Rust asks for `&mut`).
    ///
    /// # Errors
    ///
    /// As [`get_key`](Self::get_key).
    ///
    /// ```
    /// use mio_selectors::{Selector, EVENT_READ};
    /// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
    /// let mut sel = Selector::new()?;
    /// sel.register(&a, EVENT_READ, vec![1])?;
    /// sel.get_key_mut(&a)?.data.push(2);
    /// assert_eq!(sel.get_key(&a)?.data, [1, 2]);
    /// # Ok::<(), mio_selectors::Error>(())
    /// ```
    pub fn get_key_mut(&mut self, fileobj: impl FileObj) -> Result<&mut SelectorKey<T>> {
        let fd = fileobj.fileno();
        self.poll()?;
        self.map
            .get_mut(&fd)
            .map(|e| &mut e.key)
            .ok_or(Error::NotRegistered(fd))
    }

    /// A read-only view of the registrations (Python: `sel.get_map()`), or
    /// `None` after [`close`](Self::close), as in Python.
    ///
    /// ```
    /// use mio_selectors::{Selector, EVENT_READ};
    /// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
    /// let mut sel = Selector::new()?;
    /// sel.register(&a, EVENT_READ, ())?;
    /// let map = sel.get_map().unwrap();
    /// assert_eq!(map.len(), 1);
    /// assert!(map.contains(&a));
    /// sel.close();
    /// assert!(sel.get_map().is_none());
    /// # Ok::<(), mio_selectors::Error>(())
    /// ```
    pub fn get_map(&self) -> Option<SelectorMap<'_, T>> {
        self.poll.as_ref().map(|_| SelectorMap::new(&self.map))
    }

    /// Waits until some registered fds are ready or `timeout` passes, and
    /// returns `(fd, events)` for each ready one (Python:
    /// `sel.select(timeout)`). `None` blocks; `Some(Duration::ZERO)` polls
    /// without blocking. An interrupted wait (`EINTR`) is resumed with the
    /// time that is left.
    ///
    /// Python returns `(key, events)`; here the key stays in the selector, so
    /// look it up with [`get_key_mut`](Self::get_key_mut). That also leaves
    /// the loop body free to register and unregister.
    ///
    /// Every fd reported here is re-armed by the next call, so a socket that
    /// is still ready is reported again (see the type's docs).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after [`close`](Self::close); [`Error::Io`] from
    /// `epoll_wait` other than `EINTR`.
    ///
    /// ```
    /// use mio_selectors::{Selector, EVENT_READ, EVENT_WRITE};
    /// use std::time::Duration;
    /// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
    /// let mut sel = Selector::new()?;
    /// sel.register(&a, EVENT_READ | EVENT_WRITE, ())?;
    /// // Nothing to read, room to write: exactly EVENT_WRITE, every time.
    /// for _ in 0..2 {
    ///     assert_eq!(sel.select(Some(Duration::ZERO))?, [(a.as_raw_fd(), EVENT_WRITE)]);
    /// }
    /// # use std::os::unix::io::AsRawFd;
    /// # Ok::<(), mio_selectors::Error>(())
    /// ```
    pub fn select(&mut self, timeout: Option<Duration>) -> Result<Vec<(RawFd, EventMask)>> {
        if self.poll.is_none() {
            return Err(Error::Closed);
        }
        self.rearm_reported();
        // Room for every registration, so one call reports all that are ready.
        if self.events.capacity() < self.map.len() {
            self.events = Events::with_capacity(self.map.len().next_power_of_two());
        }
        let poll = self.poll.as_mut().ok_or(Error::Closed)?;
        // A timeout too large for an `Instant` (`Duration::MAX`) has no
        // deadline: it is waited for again in full after `EINTR`.
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut wait = timeout;
        loop {
            match poll.poll(&mut self.events, wait) {
                Ok(()) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    if let Some(deadline) = deadline {
                        wait = Some(deadline.saturating_duration_since(Instant::now()));
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        let mut ready = Vec::new();
        for event in self.events.iter() {
            let fd = event.token().0 as RawFd;
            let Some(entry) = self.map.get_mut(&fd) else {
                continue;
            };
            let mask = EventMask::from_mio(event) & entry.key.events;
            if mask.is_empty() {
                continue;
            }
            if !entry.rearm {
                entry.rearm = true;
                self.reported.push(fd);
            }
            ready.push((fd, mask));
        }
        Ok(ready)
    }

    /// Level-triggered emulation: re-arms what the last `select` reported,
    /// so the kernel reports it again while it stays ready.
    fn rearm_reported(&mut self) {
        let Some(poll) = self.poll.as_ref() else {
            return;
        };
        for fd in self.reported.drain(..) {
            let Some(entry) = self.map.get_mut(&fd) else {
                continue;
            };
            if !std::mem::take(&mut entry.rearm) {
                continue;
            }
            let interest = entry
                .key
                .events
                .to_interest()
                .expect("validated at registration");
            let token = Token(fd as usize);
            if let Err(e) = poll
                .registry()
                .reregister(&mut SourceFd(&fd), token, interest)
            {
                // Closed without unregister: the kernel dropped it, as
                // Python's epoll would; it is simply never reported again.
                log::debug!("selector: re-arm of fd {fd} failed: {e}");
            }
        }
    }

    /// Unregisters everything and closes the epoll instance (Python:
    /// `sel.close()`). Calling it again does nothing; any other call after it
    /// gives [`Error::Closed`].
    ///
    /// ```
    /// use mio_selectors::{Error, Selector, EVENT_READ};
    /// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
    /// let mut sel = Selector::new()?;
    /// sel.register(&a, EVENT_READ, ())?;
    /// sel.close();
    /// sel.close();
    /// assert!(matches!(sel.get_key(&a), Err(Error::Closed)));
    /// assert!(matches!(sel.select(None), Err(Error::Closed)));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn close(&mut self) {
        // Dropping the epoll fd unregisters everything with it.
        self.poll = None;
        self.map.clear();
        self.reported.clear();
    }
}

/// Whether a deregistration failed only because the kernel already dropped the fd.
fn is_gone(e: &io::Error) -> bool {
    const EBADF: i32 = 9;
    const ENOENT: i32 = 2;
    matches!(e.raw_os_error(), Some(EBADF) | Some(ENOENT))
}
