//! What a [`Context`] offers a handler about the group its reactor
//! belongs to: which reactor it is, how many there are, and messages to
//! the others.

use super::{GroupConnId, Message, SendError};
use crate::{ConnId, Context};

impl<D> Context<'_, D> {
    /// This reactor's index in its [`ReactorGroup`](super::ReactorGroup)
    /// (its thread is `reactor-INDEX`); 0 for a reactor on its own.
    ///
    /// ```
    /// # use mio_selectors::{Config, Reactor};
    /// # struct App;
    /// # impl mio_selectors::Handler for App {
    /// #     type Data = ();
    /// # }
    /// let mut reactor = Reactor::new(App, Config::default())?;
    /// assert_eq!(reactor.with_context(|cx| (cx.reactor_index(), cx.reactors())), (0, 1));
    /// # Ok::<(), mio_selectors::Error>(())
    /// ```
    pub fn reactor_index(&self) -> usize {
        self.core.member.as_ref().map_or(0, |m| m.index())
    }

    /// How many reactors the group has; 1 for a reactor on its own.
    ///
    /// ```
    /// # use mio_selectors::{Config, Reactor};
    /// # struct App;
    /// # impl mio_selectors::Handler for App {
    /// #     type Data = ();
    /// # }
    /// let mut reactor = Reactor::new(App, Config::default())?;
    /// assert_eq!(reactor.with_context(|cx| cx.reactors()), 1);
    /// # Ok::<(), mio_selectors::Error>(())
    /// ```
    pub fn reactors(&self) -> usize {
        self.core.member.as_ref().map_or(1, |m| m.reactors())
    }

    /// `id` named across the group, to put in a [`Message`].
    ///
    /// ```
    /// # use mio_selectors::{Config, Reactor};
    /// # struct App;
    /// # impl mio_selectors::Handler for App {
    /// #     type Data = ();
    /// # }
    /// let mut reactor = Reactor::new(App, Config::default())?;
    /// let id = mio_selectors::ConnId::from_token(mio::Token(3)).unwrap();
    /// assert_eq!(reactor.with_context(|cx| cx.group_id(id)).reactor, 0);
    /// # Ok::<(), mio_selectors::Error>(())
    /// ```
    pub fn group_id(&self, id: ConnId) -> GroupConnId {
        GroupConnId {
            reactor: self.reactor_index(),
            id,
        }
    }

    /// Sends `msg` to reactor `to` of the group (this one included), to
    /// its [`Handler::on_message`](crate::Handler::on_message). It leaves
    /// at the end of this loop pass, in one batch with everything else
    /// sent to `to` in the pass and with at most one wake-up of `to`;
    /// messages to one reactor arrive in the order sent. `msg.data` is
    /// shared, not copied: send one payload to many reactors by cloning
    /// the message.
    ///
    /// # Errors
    ///
    /// Never blocks. [`SendError::Full`] if `to` has not yet taken
    /// [`GroupOptions::mailbox_capacity`](super::GroupOptions::mailbox_capacity)
    /// messages from this reactor (it has fallen behind);
    /// [`SendError::Closed`] if `to` has stopped or does not exist, or this
    /// reactor is not in a group. The message is handed back.
    ///
    /// ```
    /// # use mio_selectors::{Config, Reactor};
    /// # struct App;
    /// # impl mio_selectors::Handler for App {
    /// #     type Data = ();
    /// # }
    /// use mio_selectors::group::{Message, SendError};
    /// let mut reactor = Reactor::new(App, Config::default())?;
    /// let sent = reactor.with_context(|cx| cx.post(0, Message::new(1, None, &b"hi"[..])));
    /// assert!(matches!(sent, Err(SendError::Closed(_)))); // not in a group
    /// # Ok::<(), mio_selectors::Error>(())
    /// ```
    pub fn post(&mut self, to: usize, msg: Message) -> Result<(), SendError<Message>> {
        match self.core.member.as_mut() {
            Some(member) => member.post(to, msg),
            None => Err(SendError::Closed(msg)),
        }
    }
}
