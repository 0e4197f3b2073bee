//! [`EventMask`]: Python's `EVENT_READ` / `EVENT_WRITE` bit mask.

use std::fmt;
use std::ops::{BitAnd, BitOr, BitOrAssign};

/// A set of I/O events, as in Python's `selectors` (`EVENT_READ | EVENT_WRITE`).
///
/// ```
/// use mio_selectors::{EventMask, EVENT_READ, EVENT_WRITE};
///
/// let both = EVENT_READ | EVENT_WRITE;
/// assert!(both.is_readable() && both.is_writable());
/// assert_eq!(both & EVENT_READ, EVENT_READ);
/// assert_eq!(format!("{:?}", both), "EVENT_READ | EVENT_WRITE");
/// assert!(EventMask::EMPTY.is_empty());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct EventMask(u8);

/// Readable (Python: `selectors.EVENT_READ == 1`).
pub const EVENT_READ: EventMask = EventMask(1);
/// Writable (Python: `selectors.EVENT_WRITE == 2`).
pub const EVENT_WRITE: EventMask = EventMask(2);

impl EventMask {
    /// No events. Never valid to register, never reported by `select`.
    pub const EMPTY: EventMask = EventMask(0);
    const VALID: u8 = EVENT_READ.0 | EVENT_WRITE.0;

    /// Builds a mask from raw bits, keeping unknown bits so that
    /// [`Selector::register`](crate::Selector::register) can reject them, as
    /// Python rejects `events=4` with `ValueError`.
    ///
    /// ```
    /// use mio_selectors::{EventMask, EVENT_READ};
    /// assert_eq!(EventMask::from_bits(1), EVENT_READ);
    /// assert!(!EventMask::from_bits(4).is_valid());
    /// ```
    pub const fn from_bits(bits: u8) -> EventMask {
        EventMask(bits)
    }

    /// The raw bits (1 = read, 2 = write).
    ///
    /// ```
    /// use mio_selectors::{EVENT_READ, EVENT_WRITE};
    /// assert_eq!((EVENT_READ | EVENT_WRITE).bits(), 3);
    /// ```
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Whether no bit is set.
    ///
    /// ```
    /// use mio_selectors::{EventMask, EVENT_READ};
    /// assert!(EventMask::EMPTY.is_empty() && !EVENT_READ.is_empty());
    /// ```
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether the mask is non-empty and has only `EVENT_READ`/`EVENT_WRITE` bits.
    ///
    /// ```
    /// use mio_selectors::{EventMask, EVENT_WRITE};
    /// assert!(EVENT_WRITE.is_valid() && !EventMask::EMPTY.is_valid());
    /// ```
    pub const fn is_valid(self) -> bool {
        self.0 != 0 && self.0 & !Self::VALID == 0
    }

    /// Whether `EVENT_READ` is set.
    ///
    /// ```
    /// assert!(mio_selectors::EVENT_READ.is_readable());
    /// ```
    pub const fn is_readable(self) -> bool {
        self.0 & EVENT_READ.0 != 0
    }

    /// Whether `EVENT_WRITE` is set.
    ///
    /// ```
    /// assert!(mio_selectors::EVENT_WRITE.is_writable());
    /// ```
    pub const fn is_writable(self) -> bool {
        self.0 & EVENT_WRITE.0 != 0
    }

    /// Whether every bit of `other` is set in `self`.
    ///
    /// ```
    /// use mio_selectors::{EVENT_READ, EVENT_WRITE};
    /// assert!((EVENT_READ | EVENT_WRITE).contains(EVENT_WRITE));
    /// ```
    pub const fn contains(self, other: EventMask) -> bool {
        self.0 & other.0 == other.0
    }

    /// The mio interest for this mask, or Python's `ValueError` as
    /// [`Error::InvalidEvents`](crate::Error::InvalidEvents) if it is empty
    /// or has unknown bits.
    pub(crate) fn to_interest(self) -> crate::Result<mio::Interest> {
        match (self.is_valid(), self.is_readable(), self.is_writable()) {
            (true, true, true) => Ok(mio::Interest::READABLE | mio::Interest::WRITABLE),
            (true, true, false) => Ok(mio::Interest::READABLE),
            (true, false, true) => Ok(mio::Interest::WRITABLE),
            _ => Err(crate::Error::InvalidEvents(self.bits())),
        }
    }

    /// What a mio event means in Python's terms, before masking with the
    /// registered interest. Like CPython's `EpollSelector`, an error or hang-up
    /// counts as both readable and writable: the next `recv` or `send` is what
    /// reports it.
    pub(crate) fn from_mio(event: &mio::event::Event) -> EventMask {
        let mut mask = EventMask::EMPTY;
        let failed = event.is_error();
        if event.is_readable() || event.is_read_closed() || failed {
            mask |= EVENT_READ;
        }
        if event.is_writable() || event.is_write_closed() || failed {
            mask |= EVENT_WRITE;
        }
        mask
    }
}

impl BitOr for EventMask {
    type Output = EventMask;
    fn bitor(self, rhs: EventMask) -> EventMask {
        EventMask(self.0 | rhs.0)
    }
}

impl BitOrAssign for EventMask {
    fn bitor_assign(&mut self, rhs: EventMask) {
        self.0 |= rhs.0;
    }
}

impl BitAnd for EventMask {
    type Output = EventMask;
    fn bitand(self, rhs: EventMask) -> EventMask {
        EventMask(self.0 & rhs.0)
    }
}

impl fmt::Debug for EventMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if self.is_readable() {
            parts.push("EVENT_READ".to_string());
        }
        if self.is_writable() {
            parts.push("EVENT_WRITE".to_string());
        }
        let unknown = self.0 & !Self::VALID;
        if unknown != 0 {
            parts.push(format!("{unknown:#x}"));
        }
        if parts.is_empty() {
            f.write_str("EMPTY")
        } else {
            f.write_str(&parts.join(" | "))
        }
    }
}
