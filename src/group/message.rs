//! [`Message`]: what one reactor of a group sends another; and
//! [`GroupConnId`], a connection named across the group.

use std::fmt;
use std::sync::Arc;

use crate::ConnId;

/// A connection anywhere in a group: the reactor that owns it and its id
/// there. A [`ConnId`] alone means nothing on another reactor (its slab
/// is another), so messages that concern a connection carry this.
///
/// ```
/// use mio_selectors::group::GroupConnId;
/// # fn f(id: mio_selectors::ConnId) {
/// let there = GroupConnId { reactor: 2, id };
/// assert_eq!(there.reactor, 2);
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupConnId {
    /// The index of the reactor that owns the connection.
    pub reactor: usize,
    /// The connection's id on that reactor.
    pub id: ConnId,
}

impl fmt::Display for GroupConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@reactor-{}", self.id, self.reactor)
    }
}

/// A message between the reactors of a [`ReactorGroup`](super::ReactorGroup),
/// sent with [`Context::post`](crate::Context::post) and delivered to the
/// destination's [`Handler::on_message`](crate::Handler::on_message).
///
/// `kind` is the application's own tag (as a timer's is); `conn` names the
/// connection the message concerns, if any; `data` is shared, so sending
/// one payload to every reactor costs a reference count each, not a copy.
///
/// ```
/// use mio_selectors::group::Message;
/// let line = Message::new(1, None, &b"<alice> hi\n"[..]);
/// let copy = line.clone();
/// assert!(std::sync::Arc::ptr_eq(&line.data, &copy.data)); // shared, not copied
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// What the message means, in the application's own numbering.
    pub kind: u32,
    /// The connection it concerns, on whichever reactor.
    pub conn: Option<GroupConnId>,
    /// The payload, shared between every copy of the message.
    pub data: Arc<[u8]>,
}

impl Message {
    /// A message of `kind` about `conn` carrying `data`.
    ///
    /// ```
    /// use mio_selectors::group::Message;
    /// let m = Message::new(7, None, Vec::from("payload"));
    /// assert_eq!(&*m.data, b"payload");
    /// ```
    pub fn new(kind: u32, conn: Option<GroupConnId>, data: impl Into<Arc<[u8]>>) -> Message {
        Message {
            kind,
            conn,
            data: data.into(),
        }
    }
}
