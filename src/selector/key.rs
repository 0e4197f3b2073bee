//! [`SelectorKey`] and [`FileObj`]: what a registration is and how it is named.

use std::os::unix::io::{AsRawFd, RawFd};

use crate::EventMask;

/// One registration, as Python's `selectors.SelectorKey(fileobj, fd, events, data)`.
///
/// The file descriptor doubles as the mio [`Token`](mio::Token), so the key's
/// `fd` is also "the token in place of the fd". Python's `fileobj` has no
/// counterpart: Rust cannot hand back a borrowed socket from the map, so keep
/// the socket in `data` (see the [`Selector`](crate::Selector) example).
///
/// ```
/// use mio_selectors::{Selector, EVENT_READ};
/// use std::os::unix::io::AsRawFd;
///
/// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
/// let mut sel = Selector::new()?;
/// let key = sel.register(&a, EVENT_READ, "data")?;
/// assert_eq!(key.fd(), a.as_raw_fd());
/// assert_eq!(key.token(), mio::Token(a.as_raw_fd() as usize));
/// assert_eq!(key.events(), EVENT_READ);
/// assert_eq!(key.data, "data");
/// # Ok::<(), mio_selectors::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectorKey<T> {
    pub(crate) fd: RawFd,
    pub(crate) events: EventMask,
    /// The application's data, as Python's `key.data`: free to change in place.
    pub data: T,
}

impl<T> SelectorKey<T> {
    /// The registered file descriptor (Python: `key.fd`).
    ///
    /// ```
    /// # let (a, _b) = std::os::unix::net::UnixStream::pair()?;
    /// # let mut sel = mio_selectors::Selector::new()?;
    /// use std::os::unix::io::AsRawFd;
    /// let key = sel.register(&a, mio_selectors::EVENT_READ, ())?;
    /// assert_eq!(key.fd(), a.as_raw_fd());
    /// # Ok::<(), mio_selectors::Error>(())
    /// ```
    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// The mio token of the registration: the fd as a `usize`.
    ///
    /// ```
    /// # let (a, _b) = std::os::unix::net::UnixStream::pair()?;
    /// # let mut sel = mio_selectors::Selector::new()?;
    /// let key = sel.register(&a, mio_selectors::EVENT_READ, ())?;
    /// assert_eq!(key.token().0, key.fd() as usize);
    /// # Ok::<(), mio_selectors::Error>(())
    /// ```
    pub fn token(&self) -> mio::Token {
        mio::Token(self.fd as usize)
    }

    /// The events the registration waits for (Python: `key.events`).
    ///
    /// ```
    /// # let (a, _b) = std::os::unix::net::UnixStream::pair()?;
    /// # let mut sel = mio_selectors::Selector::new()?;
    /// use mio_selectors::{EVENT_READ, EVENT_WRITE};
    /// let key = sel.register(&a, EVENT_READ | EVENT_WRITE, ())?;
    /// assert_eq!(key.events(), EVENT_READ | EVENT_WRITE);
    /// # Ok::<(), mio_selectors::Error>(())
    /// ```
    pub fn events(&self) -> EventMask {
        self.events
    }
}

/// Anything that names a file descriptor, as Python's `fileobj` argument
/// does: a reference to a socket (anything [`AsRawFd`]), a raw fd, or a mio
/// [`Token`](mio::Token) taken from a key.
///
/// A raw fd is how you unregister a socket you have already closed, as
/// Python allows.
///
/// ```
/// use mio_selectors::selector::FileObj;
/// use std::os::unix::io::AsRawFd;
///
/// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
/// assert_eq!((&a).fileno(), a.as_raw_fd());
/// assert_eq!(a.as_raw_fd().fileno(), a.as_raw_fd());
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait FileObj {
    /// The file descriptor (Python: `fileobj.fileno()`).
    fn fileno(&self) -> RawFd;
}

impl<S: AsRawFd + ?Sized> FileObj for &S {
    fn fileno(&self) -> RawFd {
        (**self).as_raw_fd()
    }
}

impl<S: AsRawFd + ?Sized> FileObj for &mut S {
    fn fileno(&self) -> RawFd {
        (**self).as_raw_fd()
    }
}

impl FileObj for RawFd {
    fn fileno(&self) -> RawFd {
        *self
    }
}

impl FileObj for mio::Token {
    fn fileno(&self) -> RawFd {
        RawFd::try_from(self.0).unwrap_or(-1)
    }
}
