//! What the chat server does with one whole line: relay it, or run the
//! command it names (`/nick`, `/who`, `/quit`, `/help`); and the notices
//! it sends.

use mio_selectors::codec::terminal_safe;
use mio_selectors::{ConnId, Context};

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
    /// Acts on one whole, non-empty line from `id`.
    pub(super) fn line(
        &mut self,
        cx: &mut Context<'_, Client>,
        id: ConnId,
        client: &mut Client,
        raw: &[u8],
    ) {
        let text = terminal_safe(raw);
        let Some(command) = text.strip_prefix('/') else {
            if let Some(fed) = &mut self.fed {
                // --redis: relayed when Redis hands it back, in the room's order.
                let actions = fed.line(cx, id, &text);
                return self.apply(cx, actions, Some((id, client)));
            }
            let name = &client.name;
            let delivered = cx.broadcast(format!("<{name}> {text}\n").as_bytes(), Some(id));
            self.count_relay(cx, delivered);
            return;
        };
        let (word, arg) = command
            .split_once(char::is_whitespace)
            .unwrap_or((command, ""));
        match word {
            "nick" => self.nick(cx, id, client, arg.trim()),
            "who" if self.fed.is_some() => {
                let actions = self.fed.as_mut().map(|f| f.who(cx, id)).unwrap_or_default();
                self.apply(cx, actions, Some((id, client)));
            }
            "who" => {
                // The asker's own data is lent to us, not in the reactor.
                let name = |other| match cx.data(other) {
                    _ if other == id => client.name.clone(),
                    Some(c) => c.name.clone(),
                    None => String::new(),
                };
                let names: Vec<String> = cx.ids().map(name).collect();
                notice(cx, id, &format!("online: {}", names.join(", ")));
            }
            "quit" => {
                notice(cx, id, "bye");
                self.leave(cx, id, client, Some("quit"));
            }
            "help" => HELP.iter().for_each(|line| notice(cx, id, line)),
            _ => notice(cx, id, &format!("error: unknown command /{word}")),
        }
    }

    fn nick(&mut self, cx: &mut Context<'_, Client>, id: ConnId, client: &mut Client, new: &str) {
        let valid = (1..=MAX_NICK).contains(&new.len())
            && new
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid {
            let why = "error: a nick is 1 to 32 of A-Z a-z 0-9 _ - (usage: /nick NEW)";
            return notice(cx, id, why);
        }
        if let Some(fed) = &mut self.fed {
            // --redis: the claim is Redis's; the answer comes back in order.
            let actions = fed.nick(cx, id, new);
            return self.apply(cx, actions, Some((id, client)));
        }
        let key = new.to_ascii_lowercase();
        if self.nicks.get(&key).is_some_and(|&owner| owner != id) {
            return notice(cx, id, &format!("error: nick {new} is taken"));
        }
        let old = std::mem::replace(&mut client.name, new.to_string());
        self.nicks.remove(&old.to_ascii_lowercase());
        self.nicks.insert(key, id);
        notice(cx, id, &format!("you are now {new}"));
        cx.broadcast(
            format!("* {old} is now known as {new}\n").as_bytes(),
            Some(id),
        );
    }
}

/// `* NAME left` or `* NAME left (why)` to everyone still open.
pub(super) fn announce_leave(cx: &mut Context<'_, Client>, name: &str, why: Option<&str>) {
    let suffix = why.map(|w| format!(" ({w})")).unwrap_or_default();
    log::info!("{name} left{suffix}");
    cx.broadcast(format!("* {name} left{suffix}\n").as_bytes(), None);
}

/// Sends the notice `* TEXT` to one client.
pub(super) fn notice(cx: &mut Context<'_, Client>, id: ConnId, text: &str) {
    let _ = cx.send(id, format!("* {text}\n").as_bytes());
}
