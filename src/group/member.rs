//! `Member`: what a reactor that belongs to a group keeps of the group:
//! its end of the mailbox, the group's admission, and how to stop the
//! others. Only the reactor's own thread touches it.

use std::sync::Arc;

use super::mailbox::Post;
use super::{AcceptMode, GroupShared, Message, Permit, Refused, SendError};
use crate::reactor::stream::Stream;
use crate::reactor::Wrap;
use crate::PeerAddr;

/// What travels between the reactors of a group.
pub(crate) enum Envelope {
    /// The application's message.
    Msg(Message),
    /// An accepted stream, not yet registered anywhere, for the receiver to
    /// register and serve (wrapped as its listener's connections are);
    /// already admitted (counted on the receiver).
    Adopt(Stream, PeerAddr, Permit, Option<Wrap>),
}

/// Where an accepted stream goes.
pub(crate) enum Route {
    /// Serve it here, counted by this permit.
    Here(Stream, PeerAddr, Permit, Option<Wrap>),
    /// Handed over to another reactor.
    Sent(usize),
    /// Refused by a group limit (dropping the stream closes it).
    Refused(Refused),
}

/// One reactor's membership of a group.
pub(crate) struct Member {
    index: usize,
    shared: Arc<GroupShared>,
    post: Post<Envelope>,
    /// Where the next least-loaded search starts, so that ties rotate.
    tie: usize,
}

impl Member {
    pub(crate) fn new(index: usize, shared: &Arc<GroupShared>) -> Member {
        Member {
            index,
            post: shared.lanes.post(index),
            shared: Arc::clone(shared),
            tie: index,
        }
    }

    pub(crate) fn index(&self) -> usize {
        self.index
    }

    pub(crate) fn reactors(&self) -> usize {
        self.post.reactors()
    }

    /// Queues an application message for reactor `to` (this pass's batch).
    pub(crate) fn post(&mut self, to: usize, msg: Message) -> Result<(), SendError<Message>> {
        self.post.send(to, Envelope::Msg(msg)).map_err(|e| match e {
            SendError::Full(Envelope::Msg(m)) => SendError::Full(m),
            SendError::Closed(Envelope::Msg(m)) => SendError::Closed(m),
            _ => unreachable!("an application message comes back as one"),
        })
    }

    /// Whether mail may be waiting (one atomic load).
    pub(crate) fn has_mail(&self) -> bool {
        self.post.has_mail()
    }

    /// Whether the loop must not block: mail waits (to itself, or handed
    /// over before this reactor's waker was known, which woke nobody).
    pub(crate) fn must_not_block(&self) -> bool {
        self.post.has_mail()
    }

    /// Moves waiting mail into `into`.
    pub(crate) fn receive(&mut self, into: &mut Vec<(usize, Envelope)>) -> usize {
        self.post.receive(into)
    }

    /// Hands this pass's batches over, one wake-up per destination at most.
    pub(crate) fn flush(&mut self) {
        if self.post.has_outgoing() {
            self.post.flush();
        }
    }

    /// Admits a stream this reactor accepted and serves itself.
    pub(crate) fn admit_here(&self, peer: &PeerAddr) -> Result<Permit, Refused> {
        let ip = peer.inet().map(|a| a.ip());
        self.shared.admission.admit(self.index, ip)
    }

    /// Decides where a stream this reactor accepted is served: here with
    /// `SO_REUSEPORT`; with the least-loaded acceptor, on the reactor with
    /// the fewest connections, handed over unregistered.
    /// `here_only`: serve it here whatever the mode (the last accepts
    /// before this reactor's listeners close).
    pub(crate) fn route(
        &mut self,
        stream: Stream,
        peer: PeerAddr,
        wrap: Option<Wrap>,
        here_only: bool,
    ) -> Route {
        let ip = peer.inet().map(|a| a.ip());
        let admission = &self.shared.admission;
        let target = match self.shared.mode {
            _ if here_only => self.index,
            AcceptMode::ReusePort => self.index,
            AcceptMode::LeastLoaded => {
                self.tie = (self.tie + 1) % self.reactors();
                admission.least_loaded(self.tie)
            }
        };
        let permit = match admission.admit(target, ip) {
            Ok(permit) => permit,
            Err(why) => return Route::Refused(why),
        };
        if target == self.index {
            return Route::Here(stream, peer, permit, wrap);
        }
        match self
            .post
            .send(target, Envelope::Adopt(stream, peer, permit, wrap))
        {
            Ok(()) => Route::Sent(target),
            // That reactor is behind or gone: serve it here instead.
            Err(e) => match e.into_inner() {
                Envelope::Adopt(stream, peer, permit, wrap) => {
                    drop(permit);
                    match self.admit_here(&peer) {
                        Ok(permit) => Route::Here(stream, peer, permit, wrap),
                        Err(why) => Route::Refused(why),
                    }
                }
                Envelope::Msg(_) => unreachable!("a stream comes back as one"),
            },
        }
    }

    /// Stops every reactor of the group (this one is stopping).
    pub(crate) fn stop_group(&self) {
        self.shared.stop();
    }

    /// Whether the group is to close everything now (a second signal).
    pub(crate) fn stop_now(&self) -> bool {
        self.shared.is_stopping_now()
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        // Nobody will take what waits for this reactor any more.
        self.shared.lanes.close(self.index);
    }
}
