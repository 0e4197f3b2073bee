//! [`SelectorMap`]: the read-only view that `get_map` returns.

use std::collections::HashMap;
use std::os::unix::io::RawFd;

use super::select::Entry;
use super::{FileObj, SelectorKey};

/// A read-only view of a selector's registrations, keyed by fd (Python: the
/// `Mapping` that `sel.get_map()` returns).
///
/// ```
/// use mio_selectors::{Selector, EVENT_READ, EVENT_WRITE};
/// let (a, b) = std::os::unix::net::UnixStream::pair()?;
/// let mut sel = Selector::new()?;
/// sel.register(&a, EVENT_READ, "a")?;
/// sel.register(&b, EVENT_WRITE, "b")?;
/// let map = sel.get_map().unwrap();
/// assert_eq!(map.len(), 2);
/// assert_eq!(map.get(&a).unwrap().data, "a");
/// let mut data: Vec<_> = map.iter().map(|key| key.data).collect();
/// data.sort();
/// assert_eq!(data, ["a", "b"]);
/// # Ok::<(), mio_selectors::Error>(())
/// ```
pub struct SelectorMap<'a, T> {
    map: &'a HashMap<RawFd, Entry<T>>,
}

impl<T> Clone for SelectorMap<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for SelectorMap<'_, T> {}

impl<T: std::fmt::Debug> std::fmt::Debug for SelectorMap<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a, T> SelectorMap<'a, T> {
    pub(crate) fn new(map: &'a HashMap<RawFd, Entry<T>>) -> Self {
        SelectorMap { map }
    }

    /// How many fds are registered (Python: `len(mapping)`).
    ///
    /// ```
    /// let sel: mio_selectors::Selector<()> = mio_selectors::Selector::new()?;
    /// assert_eq!(sel.get_map().unwrap().len(), 0);
    /// # Ok::<(), mio_selectors::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether nothing is registered.
    ///
    /// ```
    /// let sel: mio_selectors::Selector<()> = mio_selectors::Selector::new()?;
    /// assert!(sel.get_map().unwrap().is_empty());
    /// # Ok::<(), mio_selectors::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Whether `fileobj` is registered (Python: `fileobj in mapping`).
    ///
    /// ```
    /// # let (a, b) = std::os::unix::net::UnixStream::pair()?;
    /// # let mut sel = mio_selectors::Selector::new()?;
    /// sel.register(&a, mio_selectors::EVENT_READ, ())?;
    /// let map = sel.get_map().unwrap();
    /// assert!(map.contains(&a) && !map.contains(&b));
    /// # Ok::<(), mio_selectors::Error>(())
    /// ```
    pub fn contains(&self, fileobj: impl FileObj) -> bool {
        self.map.contains_key(&fileobj.fileno())
    }

    /// The key of `fileobj`, if registered (Python: `mapping.get(fileobj)`;
    /// `mapping[fileobj]` is `get(..).unwrap()`).
    ///
    /// ```
    /// # let (a, b) = std::os::unix::net::UnixStream::pair()?;
    /// # let mut sel = mio_selectors::Selector::new()?;
    /// sel.register(&a, mio_selectors::EVENT_READ, 5)?;
    /// let map = sel.get_map().unwrap();
    /// assert_eq!(map.get(&a).map(|k| k.data), Some(5));
    /// assert!(map.get(&b).is_none());
    /// # Ok::<(), mio_selectors::Error>(())
    /// ```
    pub fn get(&self, fileobj: impl FileObj) -> Option<&'a SelectorKey<T>> {
        self.map.get(&fileobj.fileno()).map(|e| &e.key)
    }

    /// Every key, in no particular order (Python: `for fd in mapping`, `mapping.values()`).
    ///
    /// ```
    /// # let (a, _b) = std::os::unix::net::UnixStream::pair()?;
    /// # let mut sel = mio_selectors::Selector::new()?;
    /// sel.register(&a, mio_selectors::EVENT_READ, ())?;
    /// assert_eq!(sel.get_map().unwrap().iter().count(), 1);
    /// # Ok::<(), mio_selectors::Error>(())
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = &'a SelectorKey<T>> + 'a {
        self.map.values().map(|e| &e.key)
    }

    /// Every registered fd (Python: `mapping.keys()`).
    ///
    /// ```
    /// # use std::os::unix::io::AsRawFd;
    /// # let (a, _b) = std::os::unix::net::UnixStream::pair()?;
    /// # let mut sel = mio_selectors::Selector::new()?;
    /// sel.register(&a, mio_selectors::EVENT_READ, ())?;
    /// assert_eq!(sel.get_map().unwrap().fds().collect::<Vec<_>>(), [a.as_raw_fd()]);
    /// # Ok::<(), mio_selectors::Error>(())
    /// ```
    pub fn fds(&self) -> impl Iterator<Item = RawFd> + 'a {
        self.map.keys().copied()
    }
}

impl<'a, T> IntoIterator for SelectorMap<'a, T> {
    type Item = &'a SelectorKey<T>;
    type IntoIter = Box<dyn Iterator<Item = &'a SelectorKey<T>> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.map.values().map(|e| &e.key))
    }
}
