//! What the chat server does with one whole line: relay it, or run the
//! command it names (`/nick`, `/who`, `/quit`, `/help`); and the notices
//! it sends.

use mio_selectors::codec::terminal_safe;
use mio_selectors::{ConnId, Context};

use super::notices::{Change, Notices};
use super::server::{ChatServer, Client};

const MAX_NICK: usize = 32;

const HELP: [&str; 6] = [
    "commands:",
    "/nick NEW  take the name NEW (1-32 of A-Z a-z 0-9 _ -)",
    "/who       list who is online",
    "/quit      leave",
    "/help      this help",
    "anything else is sent to everyone else",
];

impl ChatServer {
    /// Acts on one whole, non-empty line from `id`; `false` if it must
    /// wait (a group's mailbox is full): keep it, try again later.
    pub(super) fn line(
        &mut self,
        cx: &mut Context<'_, Client>,
        id: ConnId,
        client: &mut Client,
        raw: &[u8],
    ) -> bool {
        let text = terminal_safe(raw);
        let Some(command) = text.strip_prefix('/') else {
            if let Some(group) = &mut self.group {
                return group.say(cx, id, &text);
            }
            if let Some(fed) = &mut self.fed {
                // --redis: relayed when Redis hands it back, in the room's order.
                let actions = fed.line(cx, id, &text);
                self.apply(cx, actions, Some((id, client)));
                return true;
            }
            let name = &client.name;
            let delivered = cx.broadcast(format!("<{name}> {text}\n").as_bytes(), Some(id));
            self.count_relay(cx, delivered);
            return true;
        };
        let (word, arg) = command
            .split_once(char::is_whitespace)
            .unwrap_or((command, ""));
        match word {
            "nick" => return self.nick(cx, id, client, arg.trim()),
            "who" if self.group.is_some() => {
                return self.group.as_mut().is_some_and(|g| g.who(cx, id));
            }
            "who" if self.fed.is_some() => {
                let actions = self.fed.as_mut().map(|f| f.who(cx, id)).unwrap_or_default();
                self.apply(cx, actions, Some((id, client)));
            }
            "who" => {
                // The asker's own data is lent to us, not in the reactor.
                // (A connection with no data is not in the room: refused,
                // or gone and waiting for its FIN.)
                let name = |other| match cx.data(other) {
                    _ if other == id => Some(client.name.clone()),
                    Some(c) => Some(c.name.clone()),
                    None => None,
                };
                let names: Vec<String> = cx.ids().filter_map(name).collect();
                notice(cx, id, &format!("online: {}", names.join(", ")));
            }
            "quit" => {
                notice(cx, id, "bye");
                self.leave(cx, id, client, Some("quit"));
            }
            "help" => HELP.iter().for_each(|line| notice(cx, id, line)),
            _ => notice(cx, id, &format!("error: unknown command /{word}")),
        }
        true
    }

    /// `/nick NEW`; `false` if it must wait (see [`line`](Self::line)).
    fn nick(
        &mut self,
        cx: &mut Context<'_, Client>,
        id: ConnId,
        client: &mut Client,
        new: &str,
    ) -> bool {
        let valid = (1..=MAX_NICK).contains(&new.len())
            && new
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid {
            let why = "error: a nick is 1 to 32 of A-Z a-z 0-9 _ - (usage: /nick NEW)";
            notice(cx, id, why);
            return true;
        }
        if let Some(group) = &mut self.group {
            // The room's owner decides (nicks are unique across reactors).
            return group.nick(cx, id, new);
        }
        if let Some(fed) = &mut self.fed {
            // --redis: the claim is Redis's; the answer comes back in order.
            let actions = fed.nick(cx, id, new);
            self.apply(cx, actions, Some((id, client)));
            return true;
        }
        let key = new.to_ascii_lowercase();
        if self.nicks.get(&key).is_some_and(|&owner| owner != id) {
            notice(cx, id, &format!("error: nick {new} is taken"));
            return true;
        }
        let old = std::mem::replace(&mut client.name, new.to_string());
        self.nicks.remove(&old.to_ascii_lowercase());
        self.nicks.insert(key, id);
        notice(cx, id, &format!("you are now {new}"));
        cx.broadcast(
            format!("* {old} is now known as {new}\n").as_bytes(),
            Some(id),
        );
        true
    }
}

/// `* NAME left` or `* NAME left (why)` to everyone still open, within the
/// room's notice budget (one reactor, no `--redis`).
pub(super) fn announce_leave(
    cx: &mut Context<'_, Client>,
    notices: &mut Notices,
    name: &str,
    why: Option<&str>,
) {
    let suffix = why.map(|w| format!(" ({w})")).unwrap_or_default();
    log::info!("{name} left{suffix}");
    let line = format!("* {name} left{suffix}\n");
    announce(cx, notices, Change::Left, &line, None, broadcast);
}

/// Delivers to every open connection but `except`: the room of a single
/// reactor without `--redis`.
pub(super) fn broadcast(cx: &mut Context<'_, Client>, line: &[u8], except: Option<ConnId>) {
    cx.broadcast(line, except);
}

/// A join or leave notice to everyone (but `except`), through `send`: said
/// now if the room's notice budget allows, else counted for the summary at
/// the end of the second (a loop timer tagged [`SUMMARY`], the first time
/// one is due). A summary of an earlier second still owed is said first,
/// so the order holds even when its timer is late.
pub(super) fn announce(
    cx: &mut Context<'_, Client>,
    notices: &mut Notices,
    change: Change,
    line: &str,
    except: Option<ConnId>,
    mut send: impl FnMut(&mut Context<'_, Client>, &[u8], Option<ConnId>),
) {
    let now = cx.now();
    if let Some(summary) = notices.tick(now) {
        send(cx, summary.as_bytes(), None);
    }
    if notices.admit(now, change) {
        send(cx, line.as_bytes(), except);
    }
    if let Some(due) = notices.timer_due() {
        cx.call_later(due.saturating_duration_since(now), None, SUMMARY);
    }
}

/// The [`SUMMARY`] timer: says the ended second's `* N joined, M left`,
/// if it counted anything, through `send`.
pub(super) fn summarize(
    cx: &mut Context<'_, Client>,
    notices: &mut Notices,
    mut send: impl FnMut(&mut Context<'_, Client>, &[u8], Option<ConnId>),
) {
    if let Some(summary) = notices.tick(cx.now()) {
        send(cx, summary.as_bytes(), None);
    }
}

/// The `on_timer` tag of the notice budget's summary (a loop timer; not
/// [`group::TICK`](super::group::TICK), 3, nor the federation's tags).
pub(super) const SUMMARY: u64 = 4;

/// Sends the notice `* TEXT` to one client.
pub(super) fn notice(cx: &mut Context<'_, Client>, id: ConnId, text: &str) {
    let _ = cx.send(id, format!("* {text}\n").as_bytes());
}
