//! [`ConnId`], [`ListenerId`], [`UdpId`], [`SourceId`]: generation-tagged
//! names for reactor entries; [`TimerId`].

use std::fmt;

use mio::Token;

/// Bits of a token that hold the slab key; the rest hold the generation.
const KEY_BITS: u32 = 32;
const KEY_MASK: usize = (1 << KEY_BITS) - 1;
/// Tokens with this bit name endpoints (listeners, UDP sockets, fd
/// sources); the reactor's own tokens sit above.
pub(crate) const ENDPOINT_BIT: usize = 1 << 62;
pub(crate) const WAKER: Token = Token(1 << 63);
pub(crate) const SIGNALS: Token = Token((1 << 63) | 1);
/// Generations wrap within these bits, so a token never reaches `ENDPOINT_BIT`.
pub(crate) const GEN_MASK: u32 = (1 << 30) - 1;

/// Names one connection of a [`Reactor`](crate::Reactor) for as long as it
/// lives: its slab slot plus a generation. A slot is reused after the
/// connection closes, but with a new generation, so an old `ConnId` (or an
/// event left over for the old socket) never reaches the new connection:
/// [`Context`](crate::Context) calls with it fail or do nothing.
///
/// It is also the mio [`Token`] the socket is registered with.
///
/// ```
/// # use mio_selectors::{ConnId, Context, Handler, InBuf};
/// # struct App;
/// # impl Handler for App {
/// #     type Data = ();
/// fn accept_wrapper(&mut self, cx: &mut Context<'_, ()>, id: ConnId, peer: &mio_selectors::PeerAddr) -> Option<()> {
///     println!("accepted {peer} as {id}"); // "accepted 127.0.0.1:40000 as #0.1"
///     Some(())
/// }
/// # }
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub(crate) usize);

impl ConnId {
    pub(crate) fn new(key: usize, gen: u32) -> ConnId {
        ConnId(((gen as usize) << KEY_BITS) | key)
    }

    pub(crate) fn key(self) -> usize {
        self.0 & KEY_MASK
    }

    pub(crate) fn gen(self) -> u32 {
        (self.0 >> KEY_BITS) as u32
    }

    /// The mio token the socket is registered with.
    ///
    /// ```
    /// # fn f(id: mio_selectors::ConnId) {
    /// assert_eq!(mio_selectors::ConnId::from_token(id.token()), Some(id));
    /// # }
    /// ```
    pub fn token(self) -> Token {
        Token(self.0)
    }

    /// The connection a token names, if it names one (not a listener or the waker).
    ///
    /// ```
    /// assert!(mio_selectors::ConnId::from_token(mio::Token(1 << 63)).is_none());
    /// ```
    pub fn from_token(token: Token) -> Option<ConnId> {
        (token.0 & (ENDPOINT_BIT | WAKER.0) == 0).then_some(ConnId(token.0))
    }
}

impl fmt::Debug for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnId(#{}.{})", self.key(), self.gen())
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}.{}", self.key(), self.gen())
    }
}

/// Names a timer set with [`Context::call_later`](crate::Context::call_later)
/// or [`Context::call_every`](crate::Context::call_every), to cancel it.
///
/// ```
/// # fn f(cx: &mut mio_selectors::Context<'_, ()>) {
/// let timer: mio_selectors::reactor::TimerId = cx.call_later(std::time::Duration::from_secs(1), None, 7);
/// cx.cancel_timer(timer);
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerId(pub(crate) u64);

/// Endpoint ids are `generation << KEY_BITS | slot`, as [`ConnId`]s are:
/// `Endpoints` hands them out and checks the generation on every lookup, so
/// an old id (or a late event) never reaches an endpoint that reused its
/// slot.
pub(crate) fn endpoint_raw(key: usize, gen: u32) -> usize {
    ((gen as usize) << KEY_BITS) | key
}

/// The slot and generation of a raw endpoint id.
pub(crate) fn endpoint_parts(raw: usize) -> (usize, u32) {
    (raw & KEY_MASK, (raw >> KEY_BITS) as u32 & GEN_MASK)
}

macro_rules! endpoint_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name(pub(crate) usize);

        impl $name {
            /// The mio token it is registered with.
            pub(crate) fn token(self) -> Token {
                Token(ENDPOINT_BIT | self.0)
            }
        }
    };
}

endpoint_id! {
    /// Names a listening socket of a [`Reactor`](crate::Reactor).
    ///
    /// ```
    /// use mio_selectors::{Config, Reactor};
    /// # struct App;
    /// # impl mio_selectors::Handler for App {
    /// #     type Data = ();
    /// # }
    /// let mut reactor = Reactor::new(App, Config::default())?;
    /// let id = reactor.listen("127.0.0.1:0")?;
    /// assert_ne!(reactor.local_addr(id)?.port(), 0);
    /// # Ok::<(), mio_selectors::Error>(())
    /// ```
    ListenerId
}

endpoint_id! {
    /// Names a UDP socket of a [`Reactor`](crate::Reactor), from
    /// [`Reactor::bind_udp`](crate::Reactor::bind_udp).
    ///
    /// ```
    /// # use mio_selectors::{Config, Reactor};
    /// # struct App;
    /// # impl mio_selectors::Handler for App {
    /// #     type Data = ();
    /// # }
    /// let mut reactor = Reactor::new(App, Config::default())?;
    /// let udp: mio_selectors::reactor::UdpId = reactor.bind_udp("127.0.0.1:0")?;
    /// assert_ne!(reactor.udp_addr(udp)?.port(), 0);
    /// # Ok::<(), mio_selectors::Error>(())
    /// ```
    UdpId
}

endpoint_id! {
    /// Names a file descriptor registered with
    /// [`Reactor::register_fd`](crate::Reactor::register_fd) (stdin, say).
    ///
    /// ```
    /// # use mio_selectors::{Config, Reactor, EVENT_READ};
    /// # struct App;
    /// # impl mio_selectors::Handler for App {
    /// #     type Data = ();
    /// # }
    /// use std::os::unix::io::AsRawFd;
    /// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
    /// let mut reactor = Reactor::new(App, Config::default())?;
    /// let source: mio_selectors::reactor::SourceId = reactor.register_fd(a.as_raw_fd(), EVENT_READ)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    SourceId
}
