//! The loop's side of a [`ReactorGroup`](crate::group::ReactorGroup): the
//! steps a pass adds when its reactor belongs to one (the group's own
//! state and rules are in `src/group/`). Each is a no-op for a reactor on
//! its own, at the cost of one `Option` check.

use std::mem;

use super::endpoint::Endpoint;
use super::event_loop::Reactor;
use super::stream::Stream;
use super::Wrap;
use crate::group::{Envelope, Member, Route};
use crate::{Handler, PeerAddr};

impl<H: Handler> Reactor<H> {
    /// Makes this reactor a member of a group (before it runs).
    pub(crate) fn join_group(&mut self, member: Member) {
        self.core.member = Some(Box::new(member));
    }

    /// Whether the poll must not block: mail waits (to this reactor from
    /// itself, or handed over before its waker was known, which woke
    /// nobody).
    pub(super) fn mail_waiting(&self) -> bool {
        self.core
            .member
            .as_ref()
            .is_some_and(|m| m.must_not_block())
    }

    /// Step 2b: delivers the group's mail (one atomic load when there is
    /// none): messages to `Handler::on_message`, in each sender's order;
    /// streams handed over, registered here like accepted ones. Also ends
    /// the shutdown at once when the group was told to stop now.
    pub(super) fn take_mail(&mut self) {
        let Some(member) = self.core.member.as_mut() else {
            return;
        };
        if self.core.shutting_down && member.stop_now() {
            self.shutdown_deadline = Some(self.core.now); // a second signal to the group
        }
        if !member.has_mail() {
            return;
        }
        let mut mail = mem::take(&mut self.mail);
        member.receive(&mut mail);
        for (from, envelope) in mail.drain(..) {
            match envelope {
                Envelope::Msg(msg) => self.call(|h, cx| h.on_message(cx, from, msg)),
                Envelope::Adopt(stream, peer, permit, wrap) => {
                    self.admit(stream, peer, Some(permit), wrap)
                }
            }
        }
        self.mail = mail; // its storage, for the next pass
    }

    /// Step 9: hands this pass's messages over, one batch and at most one
    /// wake-up per destination.
    pub(super) fn post_mail(&mut self) {
        if let Some(member) = self.core.member.as_mut() {
            member.flush();
        }
    }

    /// Serves an accepted stream here, or in a group gives it to the
    /// reactor that should serve it (least-loaded mode), within the group's
    /// limits.
    pub(super) fn route(&mut self, stream: Stream, peer: PeerAddr, wrap: Option<Wrap>) {
        let Some(member) = self.core.member.as_mut() else {
            return self.admit(stream, peer, None, wrap);
        };
        match member.route(stream, peer, wrap, self.draining) {
            Route::Here(stream, peer, permit, wrap) => self.admit(stream, peer, Some(permit), wrap),
            Route::Sent(to) => log::trace!("accepted connection handed to reactor-{to}"),
            Route::Refused(why) => {
                // Dropping the stream closes it; one line per burst, not per client.
                if !mem::replace(&mut self.full_logged, true) {
                    log::warn!("refusing a connection: {why}");
                }
            }
        }
    }

    /// At the start of shutdown, before the listeners close: in a group,
    /// stops every other reactor; then accepts what is queued on this
    /// reactor's listeners, to be served the shutdown like the others.
    /// Closing a listener resets the connections in its queue, and with
    /// `SO_REUSEPORT` the kernel does not move them to the other
    /// listeners, so without this they would be lost.
    pub(super) fn drain_listeners(&mut self) {
        if let Some(member) = &self.core.member {
            member.stop_group();
        }
        for e in self.core.endpoints.iter_mut() {
            if let Endpoint::Listener(l) = e {
                l.ready = true; // accept to WouldBlock, whatever the last edge said
            }
        }
        self.draining = true;
        self.accept_all();
        self.draining = false;
    }
}
