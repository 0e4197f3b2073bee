//! The chat's side of `--redis` (`docs/federation.md`): carrying out what
//! the federated room asks ([`Action`]s: welcome a newcomer, deliver a
//! line or notice in the room's order, joins and leaves within this
//! instance's notice budget), and the room's view of joins and leaves.
//! The room itself is `../federation/`; the hooks that call in are marked
//! `--redis` in `server.rs` and `commands.rs`.

use mio_selectors::{ConnId, Context};

use super::commands::{self, announce, notice};
use super::federation::{Action, Federation};
use super::notices::Change;
use super::server::{ChatServer, Client};

/// The connection whose data a callback holds (lent by the reactor, so
/// not reachable through the context meanwhile).
pub(super) type Lent<'a> = Option<(ConnId, &'a mut Client)>;

impl ChatServer {
    /// Shares the room through Redis; `fed` has been started.
    pub fn set_federation(&mut self, fed: Federation<Client>) {
        self.fed = Some(fed);
    }

    /// Why the process must exit with status 1 (Redis refused the
    /// configuration before the room ever linked), if it must.
    pub fn fatal(&self) -> Option<&str> {
        self.fed.as_ref().and_then(|f| f.fatal())
    }

    /// Carries out what the federated room asks, in order.
    pub(super) fn apply(
        &mut self,
        cx: &mut Context<'_, Client>,
        actions: Vec<Action<ConnId>>,
        mut lent: Lent<'_>,
    ) {
        for action in actions {
            match action {
                Action::Welcome { conn, name } => {
                    notice(
                        cx,
                        conn,
                        &format!("welcome {name}! /help lists the commands"),
                    );
                    let is_lent = lent.as_ref().is_some_and(|(id, _)| *id == conn);
                    let client = match &mut lent {
                        Some((id, c)) if *id == conn => Some(&mut **c),
                        _ => cx.data_mut(conn),
                    };
                    if let Some(client) = client {
                        client.name = name;
                        client.in_room = true;
                    }
                    if !is_lent {
                        // What it sent before its welcome is read now.
                        cx.resume_reading(conn);
                    }
                }
                Action::Line { from, name, text } => {
                    room_send(cx, &mut lent, format!("<{name}> {text}\n").as_bytes(), from);
                }
                Action::Joined { except, name } => {
                    // Within this instance's notice budget, in the bus's
                    // order (docs/federation.md, "Notice storms").
                    log::info!("{name} joined");
                    let line = format!("* {name} joined\n");
                    let send =
                        |cx: &mut Context<'_, Client>, d: &[u8], e| room_send(cx, &mut lent, d, e);
                    announce(cx, &mut self.notices, Change::Joined, &line, except, send);
                }
                Action::Left { name, reason } => {
                    let suffix = reason.map(|w| format!(" ({w})")).unwrap_or_default();
                    log::info!("{name} left{suffix}");
                    let line = format!("* {name} left{suffix}\n");
                    let send =
                        |cx: &mut Context<'_, Client>, d: &[u8], e| room_send(cx, &mut lent, d, e);
                    announce(cx, &mut self.notices, Change::Left, &line, None, send);
                }
                Action::Renamed { conn, old, new } => {
                    if let Some(c) = conn {
                        match &mut lent {
                            Some((id, client)) if *id == c => client.name = new.clone(),
                            _ => {
                                if let Some(client) = cx.data_mut(c) {
                                    client.name = new.clone();
                                }
                            }
                        }
                        notice(cx, c, &format!("you are now {new}"));
                    }
                    room_send(
                        cx,
                        &mut lent,
                        format!("* {old} is now known as {new}\n").as_bytes(),
                        conn,
                    );
                }
                Action::Notice { conn, text } => notice(cx, conn, &text),
                Action::NoticeAll(text) => {
                    room_send(cx, &mut lent, format!("* {text}\n").as_bytes(), None)
                }
            }
        }
    }

    /// Closes `id` gracefully and tells the others now, not when the socket
    /// is finally gone.
    pub(super) fn leave(
        &mut self,
        cx: &mut Context<'_, Client>,
        id: ConnId,
        client: &mut Client,
        why: Option<&str>,
    ) {
        client.announced = true;
        cx.close(id);
        let name = client.name.clone();
        self.announce_leave(cx, id, &name, why);
    }

    /// `* NAME left` or `* NAME left (why)` to everyone still open; with
    /// `--redis`, through the room, in its order.
    pub(super) fn announce_leave(
        &mut self,
        cx: &mut Context<'_, Client>,
        id: ConnId,
        name: &str,
        why: Option<&str>,
    ) {
        if let Some(group) = &mut self.group {
            return group.left(cx, id, why); // --reactors N: through the room's owner
        }
        match &mut self.fed {
            Some(fed) => {
                let actions = fed.left(cx, id, why);
                self.apply(cx, actions, None);
            }
            None => commands::announce_leave(cx, &mut self.notices, name, why),
        }
    }

    /// The notice budget's [`SUMMARY`](commands::SUMMARY) timer, on one
    /// reactor or with `--redis` (a group's is the sequencer's:
    /// [`GroupRoom::summarize`](super::GroupRoom::summarize)).
    pub(super) fn summarize(&mut self, cx: &mut Context<'_, Client>) {
        match self.fed {
            Some(_) => commands::summarize(cx, &mut self.notices, |cx, d, e| {
                room_send(cx, &mut None, d, e)
            }),
            None => commands::summarize(cx, &mut self.notices, commands::broadcast),
        }
    }
}

/// `data` to every client in the room but `except`: never to a Redis
/// connection, a client not welcomed yet, or one that is closing.
fn room_send(
    cx: &mut Context<'_, Client>,
    lent: &mut Lent<'_>,
    data: &[u8],
    except: Option<ConnId>,
) {
    let ids: Vec<ConnId> = cx
        .ids()
        .filter(|&id| Some(id) != except && cx.data(id).is_some_and(|c| c.in_room && !c.redis))
        .collect();
    for id in ids {
        let _ = cx.send(id, data);
    }
    if let Some((id, client)) = lent {
        let id = *id;
        if Some(id) != except
            && client.in_room
            && !client.redis
            && cx.is_open(id)
            && cx.data(id).is_none()
        {
            let _ = cx.send(id, data);
        }
    }
}
