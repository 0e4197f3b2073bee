//! The federated room as pure data: what the chat tells it (a client
//! joined, said a line, left...), what Redis tells it (replies, bus
//! messages, the link up or lost), and what it asks of each in return
//! ([`Action`]s for the chat, commands for Redis). No sockets, no clock:
//! the reactor glue in `mod.rs` moves the bytes and calls [`Room::tick`].
//!
//! The design, keys, message kinds and outage rules are in
//! `docs/federation.md`; the names below follow it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;

use mio_selectors::redis::{Reply, Value};

/// A client's number in this instance, unique for the instance's life.
pub type Member = u64;

/// Heartbeat key lifetime (seconds) and beat period: a vanished instance
/// is swept within `ALIVE_TTL` + one beat.
pub const ALIVE_TTL: u64 = 8;
/// Name claim lifetime (seconds); refreshed every `REFRESH_BEATS` beats.
pub const CLAIM_TTL: u64 = 60;
/// Beats between claim refreshes (a beat is every 2 s).
pub const REFRESH_BEATS: u64 = 10;
/// Beats an instance our clients know of may stay missing from Redis
/// after we (re)linked before its clients are announced as
/// `left (server lost)`: long enough for it to reconnect and register
/// again after Redis restarted empty (its backoff is at most 5 s).
pub const MISSING_BEATS: u32 = 6;
/// Other instances' clients remembered (what our clients were told); past
/// this, news of more is still delivered but not remembered, so a later
/// repeat of it is not recognised.
pub const MAX_REMOTE: usize = 1 << 20;

/// What the chat must do, in this order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action<C> {
    /// Send `conn` its `* welcome` with this name; from now on it is in the
    /// room and receives what the room delivers.
    Welcome { conn: C, name: String },
    /// `<name> text` to every client in the room but `from`.
    Line {
        from: Option<C>,
        name: String,
        text: String,
    },
    /// `* NAME joined` to every client in the room but `except`.
    Joined { except: Option<C>, name: String },
    /// `* NAME left` / `* NAME left (reason)` to every client in the room.
    Left {
        name: String,
        reason: Option<String>,
    },
    /// A rename: when `conn` is one of ours its name is now `new` and it
    /// gets `* you are now NEW`; everyone else in the room gets
    /// `* OLD is now known as NEW`.
    Renamed {
        conn: Option<C>,
        old: String,
        new: String,
    },
    /// A notice (`* TEXT`) to one client.
    Notice { conn: C, text: String },
    /// A notice to every client in the room.
    NoticeAll(String),
}

/// What a command sent to Redis was for, so its reply finds its way back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tag {
    Publish,
    Join { member: Member, attempt: u32 },
    Nick { member: Member, new: String },
    Leave,
    Who { member: Member },
    Beat,
    Sweep,
    Register { snapshot: Vec<(Member, String)> },
    Roster,
    Bye,
}

/// A command for the command connection.
pub type Command = (Tag, Vec<Vec<u8>>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    /// No link: a standalone chat.
    Down,
    /// Connected and subscribed; the register script is out. `changed`:
    /// the local membership moved meanwhile, so register again.
    Restoring { changed: bool },
    /// Relaying through Redis.
    Up,
}

#[derive(Debug)]
struct Local<C> {
    conn: C,
    name: String,
    addr: String,
    /// In the room: welcomed, receives deliveries.
    welcomed: bool,
}

/// A message this instance published and Redis has not handed back yet.
#[derive(Debug, Clone)]
struct Unacked {
    seq: u64,
    msg: Bus,
}

/// A decoded bus message.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Bus {
    Line {
        origin: String,
        seq: u64,
        member: Member,
        name: String,
        text: String,
    },
    Join {
        origin: String,
        seq: u64,
        member: Member,
        name: String,
    },
    Leave {
        origin: String,
        seq: u64,
        member: Member,
        name: String,
        reason: String,
    },
    Nick {
        origin: String,
        seq: u64,
        member: Member,
        old: String,
        new: String,
    },
    Lost {
        origin: String,
        names: Vec<String>,
    },
    Gone {
        origin: String,
        reason: String,
        names: Vec<String>,
    },
}

impl Bus {
    /// Decodes a bus message. Whoever else can publish on the channel, what
    /// reaches a client stays one safe line: control characters, bidi
    /// overrides and line separators become U+FFFD, as the chat's own
    /// sanitising does for what its clients type.
    fn parse(payload: &[u8]) -> Option<Bus> {
        let text = std::str::from_utf8(payload).ok()?;
        let unsafe_char = |c: char| {
            (c.is_control() && c != '\t')
                || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}')
        };
        let cleaned;
        let text = if text.contains(unsafe_char) {
            cleaned = text.replace(unsafe_char, "\u{FFFD}");
            cleaned.as_str()
        } else {
            text
        };
        let (kind, rest) = text.split_once('\t')?;
        let field = |n: usize| -> Option<Vec<&str>> {
            let parts: Vec<&str> = rest.splitn(n, '\t').collect();
            (parts.len() == n).then_some(parts)
        };
        Some(match kind {
            "line" => {
                let f = field(5)?;
                Bus::Line {
                    origin: f[0].into(),
                    seq: f[1].parse().ok()?,
                    member: f[2].parse().ok()?,
                    name: f[3].into(),
                    text: f[4].into(),
                }
            }
            "join" => {
                let f = field(4)?;
                Bus::Join {
                    origin: f[0].into(),
                    seq: f[1].parse().ok()?,
                    member: f[2].parse().ok()?,
                    name: f[3].into(),
                }
            }
            "leave" => {
                let f = field(5)?;
                Bus::Leave {
                    origin: f[0].into(),
                    seq: f[1].parse().ok()?,
                    member: f[2].parse().ok()?,
                    name: f[3].into(),
                    reason: f[4].into(),
                }
            }
            "nick" => {
                let f = field(5)?;
                Bus::Nick {
                    origin: f[0].into(),
                    seq: f[1].parse().ok()?,
                    member: f[2].parse().ok()?,
                    old: f[3].into(),
                    new: f[4].into(),
                }
            }
            "lost" => {
                let mut f = rest.split('\t');
                let origin = f.next()?.into();
                Bus::Lost {
                    origin,
                    names: f.filter(|n| !n.is_empty()).map(String::from).collect(),
                }
            }
            "gone" => {
                let mut f = rest.split('\t');
                let origin = f.next()?.into();
                let reason = f.next()?.into();
                Bus::Gone {
                    origin,
                    reason,
                    names: f.filter(|n| !n.is_empty()).map(String::from).collect(),
                }
            }
            _ => return None,
        })
    }

    fn encode(&self) -> String {
        match self {
            Bus::Line {
                origin,
                seq,
                member,
                name,
                text,
            } => format!("line\t{origin}\t{seq}\t{member}\t{name}\t{text}"),
            Bus::Join {
                origin,
                seq,
                member,
                name,
            } => format!("join\t{origin}\t{seq}\t{member}\t{name}"),
            Bus::Leave {
                origin,
                seq,
                member,
                name,
                reason,
            } => {
                format!("leave\t{origin}\t{seq}\t{member}\t{name}\t{reason}")
            }
            Bus::Nick {
                origin,
                seq,
                member,
                old,
                new,
            } => format!("nick\t{origin}\t{seq}\t{member}\t{old}\t{new}"),
            Bus::Lost { origin, names } => format!("lost\t{origin}\t{}", names.join("\t")),
            Bus::Gone {
                origin,
                reason,
                names,
            } => format!("gone\t{origin}\t{reason}\t{}", names.join("\t")),
        }
    }

    /// The publishing instance and sequence number, for own messages.
    fn origin_seq(&self) -> Option<(&str, u64)> {
        match self {
            Bus::Line { origin, seq, .. }
            | Bus::Join { origin, seq, .. }
            | Bus::Leave { origin, seq, .. }
            | Bus::Nick { origin, seq, .. } => Some((origin, *seq)),
            Bus::Lost { .. } | Bus::Gone { .. } => None,
        }
    }
}

/// The atomic parts, as Lua run by `EVAL`: each changes keys and publishes
/// its notice with nothing interleaved. `ARGV[1]` is always the key prefix.
mod lua {
    /// ARGV: prefix, owner (ID/MEMBER), member, name, lower, claim ttl, payload.
    pub const JOIN: &str = r"
local p = ARGV[1]
if redis.call('SET', p..'name:'..ARGV[5], ARGV[2], 'NX', 'EX', ARGV[6]) then
  local id = string.match(ARGV[2], '^[^/]+')
  redis.call('HSET', p..'members:'..id, ARGV[3], ARGV[4])
  redis.call('PUBLISH', p..'bus', ARGV[7])
  return 1
end
return 0";

    /// ARGV: prefix, owner, member, old lower, new, new lower, claim ttl, payload.
    pub const NICK: &str = r"
local p = ARGV[1]
local k = p..'name:'..ARGV[6]
local cur = redis.call('GET', k)
if cur and cur ~= ARGV[2] then return 0 end
redis.call('SET', k, ARGV[2], 'EX', ARGV[7])
if ARGV[4] ~= ARGV[6] and redis.call('GET', p..'name:'..ARGV[4]) == ARGV[2] then
  redis.call('DEL', p..'name:'..ARGV[4])
end
local id = string.match(ARGV[2], '^[^/]+')
redis.call('HSET', p..'members:'..id, ARGV[3], ARGV[5])
redis.call('PUBLISH', p..'bus', ARGV[8])
return 1";

    /// ARGV: prefix, owner, member, lower, payload.
    pub const LEAVE: &str = r"
local p = ARGV[1]
if redis.call('GET', p..'name:'..ARGV[4]) == ARGV[2] then redis.call('DEL', p..'name:'..ARGV[4]) end
local id = string.match(ARGV[2], '^[^/]+')
redis.call('HDEL', p..'members:'..id, ARGV[3])
redis.call('PUBLISH', p..'bus', ARGV[5])
return 1";

    /// ARGV: prefix, id, alive ttl, claim ttl, refresh (0/1).
    /// Returns 1 when the instance was not registered (swept, or Redis lost
    /// its data); only the register script adds it back, with its members,
    /// so no instance is ever listed without them. A beat finding its own
    /// heartbeat more than two beats old (Redis or this process stalled)
    /// sets `stalled:ID`: see SWEEP.
    pub const BEAT: &str = r"
local p, id = ARGV[1], ARGV[2]
if redis.call('PTTL', p..'alive:'..id) < 4000 then
  redis.call('SET', p..'stalled:'..id, '1', 'EX', ARGV[3])
end
redis.call('SET', p..'alive:'..id, '1', 'EX', ARGV[3])
local fresh = 1 - redis.call('SISMEMBER', p..'inst', id)
if ARGV[5] == '1' then
  local m = redis.call('HGETALL', p..'members:'..id)
  for i = 1, #m, 2 do
    local k = p..'name:'..string.lower(m[i + 1])
    if redis.call('GET', k) == id..'/'..m[i] then redis.call('EXPIRE', k, ARGV[4]) end
  end
end
return fresh";

    /// ARGV: prefix, id (the sweeper's). Returns the ids it declared dead.
    /// A sweeper that was itself unheard of lately (`stalled:ID`, set by
    /// BEAT or REGISTER) does not judge: when Redis stalls every heartbeat
    /// runs out together, and the sweeps queued during the stall would
    /// declare live instances lost the moment it resumes.
    pub const SWEEP: &str = r"
local p = ARGV[1]
local dead = {}
if redis.call('EXISTS', p..'stalled:'..ARGV[2]) == 1 then return dead end
for _, x in ipairs(redis.call('SMEMBERS', p..'inst')) do
  if redis.call('EXISTS', p..'alive:'..x) == 0 then
    local m = redis.call('HGETALL', p..'members:'..x)
    local names = {}
    for i = 1, #m, 2 do
      local k = p..'name:'..string.lower(m[i + 1])
      if redis.call('GET', k) == x..'/'..m[i] then redis.call('DEL', k) end
      table.insert(names, m[i + 1])
    end
    redis.call('DEL', p..'members:'..x)
    redis.call('SREM', p..'inst', x)
    redis.call('SET', p..'tomb:'..x, ARGV[2], 'EX', 300)
    redis.call('PUBLISH', p..'bus', 'lost\t'..x..'\t'..table.concat(names, '\t'))
    table.insert(dead, x)
  end
end
return dead";

    /// ARGV: prefix. Returns the names of every client of every live instance.
    pub const WHO: &str = r"
local p = ARGV[1]
local out = {}
for _, x in ipairs(redis.call('SMEMBERS', p..'inst')) do
  if redis.call('EXISTS', p..'alive:'..x) == 1 then
    for _, n in ipairs(redis.call('HVALS', p..'members:'..x)) do table.insert(out, n) end
  end
end
return out";

    /// ARGV: prefix, id. Returns {{ID, {member, name, ...}}, ...} for every
    /// other registered instance: the room as Redis holds it.
    pub const ROSTER: &str = r"
local p, id = ARGV[1], ARGV[2]
local r = {}
for _, x in ipairs(redis.call('SMEMBERS', p..'inst')) do
  if x ~= id then table.insert(r, {x, redis.call('HGETALL', p..'members:'..x)}) end
end
return r";

    /// ARGV: prefix, id, alive ttl, claim ttl, then (member, name, addr) per client.
    /// Returns {swept (0/1), final name per client..., roster of the others}.
    pub const REGISTER: &str = r"
local p, id = ARGV[1], ARGV[2]
local swept = redis.call('DEL', p..'tomb:'..id)
if redis.call('SISMEMBER', p..'inst', id) == 1 and redis.call('PTTL', p..'alive:'..id) < 4000 then
  redis.call('SET', p..'stalled:'..id, '1', 'EX', ARGV[3])
end
redis.call('SADD', p..'inst', id)
redis.call('SET', p..'alive:'..id, '1', 'EX', ARGV[3])
local old = redis.call('HGETALL', p..'members:'..id)
redis.call('DEL', p..'members:'..id)
local out = {swept}
local kept = {}
for i = 5, #ARGV, 3 do
  local member, name, addr = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local owner = id..'/'..member
  local tries = {name, addr}
  for n = 2, 99 do table.insert(tries, addr..'#'..n) end
  local chosen = name
  for _, c in ipairs(tries) do
    local k = p..'name:'..string.lower(c)
    local cur = redis.call('GET', k)
    if not cur or cur == owner then
      redis.call('SET', k, owner, 'EX', ARGV[4])
      chosen = c
      break
    end
  end
  redis.call('HSET', p..'members:'..id, member, chosen)
  kept[member..'\t'..string.lower(chosen)] = true
  table.insert(out, chosen)
end
for i = 1, #old, 2 do
  if not kept[old[i]..'\t'..string.lower(old[i + 1])] then
    local k = p..'name:'..string.lower(old[i + 1])
    if redis.call('GET', k) == id..'/'..old[i] then redis.call('DEL', k) end
  end
end
local r = {}
for _, x in ipairs(redis.call('SMEMBERS', p..'inst')) do
  if x ~= id then table.insert(r, {x, redis.call('HGETALL', p..'members:'..x)}) end
end
table.insert(out, r)
return out";

    /// ARGV: prefix, id, reason.
    pub const BYE: &str = r"
local p, id = ARGV[1], ARGV[2]
local m = redis.call('HGETALL', p..'members:'..id)
local names = {}
for i = 1, #m, 2 do
  local k = p..'name:'..string.lower(m[i + 1])
  if redis.call('GET', k) == id..'/'..m[i] then redis.call('DEL', k) end
  table.insert(names, m[i + 1])
end
redis.call('DEL', p..'members:'..id, p..'alive:'..id, p..'stalled:'..id)
redis.call('SREM', p..'inst', id)
if #names > 0 then
  redis.call('PUBLISH', p..'bus', 'gone\t'..id..'\t'..ARGV[3]..'\t'..table.concat(names, '\t'))
end
return #names";
}

/// The room of one instance.
#[derive(Debug)]
pub struct Room<C> {
    id: String,
    prefix: String,
    link: Link,
    /// A link-lost notice was given, so a restored one is due.
    told_lost: bool,
    next_member: Member,
    seq: u64,
    members: HashMap<Member, Local<C>>,
    by_conn: HashMap<C, Member>,
    unacked: VecDeque<Unacked>,
    /// What the other instances were last told about our clients.
    announced: HashMap<Member, String>,
    /// What our clients were told about the other instances' clients:
    /// instance id → member → name. Presence news from the bus or from a
    /// roster is delivered only where it changes this, so nothing is
    /// announced twice and an outage is caught up by difference.
    remote: HashMap<String, HashMap<Member, String>>,
    /// Instances in `remote` that the last roster did not list, with the
    /// beats since: announced lost past `MISSING_BEATS`.
    missing: HashMap<String, u32>,
    /// Bus news about others since the roster in flight was read: newer
    /// than the roster, so its answer does not undo it. `None`: the whole
    /// instance (`lost`, `gone`).
    touched: HashSet<(String, Option<Member>)>,
    roster_out: bool,
    /// `/who` queries out to Redis, answered here if the link goes first.
    pending_who: Vec<Member>,
    /// Heartbeats sent, to refresh the claims every `REFRESH_BEATS`.
    beats: u64,
    commands: Vec<Command>,
    actions: Vec<Action<C>>,
}

impl<C: Copy + Eq + Hash> Room<C> {
    /// The room `room` as seen by instance `id` (unique per process life).
    pub fn new(room: &str, id: &str) -> Self {
        Room {
            id: id.to_string(),
            prefix: format!("chatroom:{room}:"),
            link: Link::Down,
            told_lost: false,
            next_member: 1,
            seq: 0,
            members: HashMap::new(),
            by_conn: HashMap::new(),
            unacked: VecDeque::new(),
            announced: HashMap::new(),
            remote: HashMap::new(),
            missing: HashMap::new(),
            touched: HashSet::new(),
            roster_out: false,
            pending_who: Vec::new(),
            beats: 0,
            commands: Vec::new(),
            actions: Vec::new(),
        }
    }

    /// The channel the bus connection subscribes to.
    pub fn channel(&self) -> String {
        format!("{}bus", self.prefix)
    }

    /// This instance's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// No link yet after the start-up wait: the clients welcomed meanwhile
    /// will be told when the link comes.
    pub fn mark_lost(&mut self) {
        if self.link != Link::Up {
            self.told_lost = true;
        }
    }

    /// Own messages published and not yet handed back by the bus: if this
    /// keeps growing the bus has stopped delivering, and the glue treats
    /// the link as lost past a bound.
    pub fn backlog(&self) -> usize {
        self.unacked.len()
    }

    /// Whether lines currently go through Redis.
    pub fn is_linked(&self) -> bool {
        self.link == Link::Up
    }

    /// Commands to queue on the command connection, oldest first.
    pub fn take_commands(&mut self) -> Vec<Command> {
        std::mem::take(&mut self.commands)
    }

    /// What the chat must do, oldest first.
    pub fn take_actions(&mut self) -> Vec<Action<C>> {
        std::mem::take(&mut self.actions)
    }

    /// Every client the chat has told of and not yet of its leaving.
    pub fn conns(&self) -> Vec<C> {
        self.by_conn.keys().copied().collect()
    }

    // ---- from the chat -------------------------------------------------

    /// A client connected from `addr` (its default name).
    pub fn connected(&mut self, conn: C, addr: &str) {
        let member = self.next_member;
        self.next_member += 1;
        self.by_conn.insert(conn, member);
        self.members.insert(
            member,
            Local {
                conn,
                name: addr.to_string(),
                addr: addr.to_string(),
                welcomed: false,
            },
        );
        if self.link == Link::Up {
            self.send_join(member, 1);
        } else {
            self.local_change();
            self.welcome_locally(member);
            // A newcomer during an outage hears of it after its welcome,
            // so every `restored` it reads follows a `lost` it read.
            if self.members.get(&member).is_some_and(|l| l.welcomed) {
                self.told_lost = true;
                self.actions.push(Action::Notice {
                    conn,
                    text: "link to other servers lost".into(),
                });
            }
        }
    }

    /// A line of text (already sanitised, not a command) from `conn`.
    pub fn line(&mut self, conn: C, text: &str) {
        let Some((member, name)) = self.member(conn) else {
            return;
        };
        if self.link == Link::Up {
            let seq = self.next_seq();
            let msg = Bus::Line {
                origin: self.id.clone(),
                seq,
                member,
                name,
                text: text.to_string(),
            };
            self.publish(msg);
        } else {
            self.actions.push(Action::Line {
                from: Some(conn),
                name,
                text: text.to_string(),
            });
        }
    }

    /// `/nick NEW` from `conn`, NEW already checked for its form.
    pub fn nick(&mut self, conn: C, new: &str) {
        let Some((member, old)) = self.member(conn) else {
            return;
        };
        if self.link != Link::Up {
            let text = "error: nick changes wait for the link to other servers; try again later"
                .to_string();
            self.actions.push(Action::Notice { conn, text });
            return;
        }
        let seq = self.next_seq();
        let msg = Bus::Nick {
            origin: self.id.clone(),
            seq,
            member,
            old: old.clone(),
            new: new.to_string(),
        };
        let args = self.script(
            lua::NICK,
            &[
                &self.owner(member),
                &member.to_string(),
                &old.to_ascii_lowercase(),
                new,
                &new.to_ascii_lowercase(),
                &CLAIM_TTL.to_string(),
                &msg.encode(),
            ],
        );
        self.unacked.push_back(Unacked { seq, msg });
        self.commands.push((
            Tag::Nick {
                member,
                new: new.to_string(),
            },
            args,
        ));
    }

    /// `/who` from `conn`.
    pub fn who(&mut self, conn: C) {
        let Some((member, _)) = self.member(conn) else {
            return;
        };
        if self.link == Link::Up {
            let args = self.script(lua::WHO, &[]);
            self.pending_who.push(member);
            self.commands.push((Tag::Who { member }, args));
        } else {
            self.answer_who_locally(conn);
        }
    }

    /// `conn` left (for `reason`, if any). Call before the chat forgets it.
    pub fn left(&mut self, conn: C, reason: Option<&str>) {
        let Some(member) = self.by_conn.remove(&conn) else {
            return;
        };
        let Some(local) = self.members.remove(&member) else {
            return;
        };
        let reason = reason.unwrap_or("").to_string();
        if self.link == Link::Up {
            let seq = self.next_seq();
            let msg = Bus::Leave {
                origin: self.id.clone(),
                seq,
                member,
                name: local.name.clone(),
                reason,
            };
            let args = self.script(
                lua::LEAVE,
                &[
                    &self.owner(member),
                    &member.to_string(),
                    &local.name.to_ascii_lowercase(),
                    &msg.encode(),
                ],
            );
            self.unacked.push_back(Unacked { seq, msg });
            self.commands.push((Tag::Leave, args));
        } else {
            self.local_change();
            if local.welcomed {
                self.actions.push(Action::Left {
                    name: local.name,
                    reason: (!reason.is_empty()).then_some(reason),
                });
            }
        }
    }

    /// The process is stopping: say goodbye for all our clients. Returns
    /// whether a command went out (worth waiting a moment for its reply).
    pub fn shutdown(&mut self) -> bool {
        if self.link != Link::Up {
            return false;
        }
        let args = self.script(lua::BYE, &[&self.id.clone(), "server shutting down"]);
        self.commands.push((Tag::Bye, args));
        self.link = Link::Down;
        true
    }

    // ---- from the link -------------------------------------------------

    /// Every 2 s while connected: the heartbeat and the sweep.
    pub fn tick(&mut self) {
        if self.link == Link::Down {
            return;
        }
        self.beats += 1;
        let refresh = if self.beats % REFRESH_BEATS == 0 {
            "1"
        } else {
            "0"
        };
        let args = self.script(
            lua::BEAT,
            &[
                &self.id.clone(),
                &ALIVE_TTL.to_string(),
                &CLAIM_TTL.to_string(),
                refresh,
            ],
        );
        self.commands.push((Tag::Beat, args));
        if self.link == Link::Up {
            let args = self.script(lua::SWEEP, &[&self.id.clone()]);
            self.commands.push((Tag::Sweep, args));
            self.check_missing();
        }
    }

    /// Both connections are ready and the bus subscription is confirmed.
    pub fn link_up(&mut self) {
        if self.link != Link::Down {
            return;
        }
        self.link = Link::Restoring { changed: false };
        self.register();
    }

    /// The link is gone (either connection failed, overflowed, timed out).
    /// Commands not yet answered are void; the caller drops them.
    pub fn link_lost(&mut self) {
        if self.link == Link::Down {
            return;
        }
        let was_up = self.link == Link::Up;
        self.link = Link::Down;
        self.roster_out = false;
        // What our clients said that Redis had not handed back: here, once.
        for u in std::mem::take(&mut self.unacked) {
            self.deliver_own_locally(u.msg);
        }
        // A `/who` still out is answered with who is here.
        for member in std::mem::take(&mut self.pending_who) {
            if let Some(conn) = self.members.get(&member).map(|l| l.conn) {
                self.answer_who_locally(conn);
            }
        }
        // Anyone still waiting for their join is welcomed as a local client.
        let waiting: Vec<Member> = self
            .members
            .iter()
            .filter(|(_, l)| !l.welcomed)
            .map(|(m, _)| *m)
            .collect();
        for m in waiting {
            self.welcome_locally(m);
        }
        // Told once per outage: a reconnect that fails again while
        // restoring says nothing new.
        if was_up {
            self.told_lost = true;
            self.actions
                .push(Action::NoticeAll("link to other servers lost".into()));
        }
    }

    /// A reply from the command connection.
    pub fn reply(&mut self, tag: Tag, reply: Reply) {
        match tag {
            Tag::Join { member, attempt } => self.join_reply(member, attempt, reply),
            Tag::Nick { member, new } => {
                if matches!(reply, Ok(Value::Int(0))) || reply.is_err() {
                    self.unacked.retain(|u| !matches!(&u.msg, Bus::Nick { member: m, new: n, .. } if *m == member && *n == new));
                    if let Some(l) = self.members.get(&member) {
                        let text = match reply {
                            Err(e) => format!("error: nick {new} not taken: {e}"),
                            Ok(_) => format!("error: nick {new} is taken"),
                        };
                        self.actions.push(Action::Notice { conn: l.conn, text });
                    }
                }
            }
            Tag::Who { member } => {
                if let Some(i) = self.pending_who.iter().position(|m| *m == member) {
                    self.pending_who.remove(i);
                }
                let Some(conn) = self.members.get(&member).map(|l| l.conn) else {
                    return;
                };
                match reply {
                    Ok(Value::Array(names)) => {
                        let mut names: Vec<String> = names
                            .into_iter()
                            .filter_map(Value::into_bytes)
                            .map(|b| String::from_utf8_lossy(&b).into_owned())
                            .collect();
                        names.sort_by_key(|n| n.to_ascii_lowercase());
                        self.actions.push(Action::Notice {
                            conn,
                            text: format!("online: {}", names.join(", ")),
                        });
                    }
                    _ => self.answer_who_locally(conn),
                }
            }
            Tag::Register { snapshot } => self.register_reply(snapshot, reply),
            Tag::Roster => {
                self.roster_out = false;
                match reply {
                    Ok(Value::Array(items)) if self.link == Link::Up => self.apply_roster(items),
                    Ok(_) => {}
                    Err(e) => log::warn!("room: roster failed: {e}"),
                }
            }
            Tag::Beat => {
                if matches!(reply, Ok(Value::Int(1))) && self.link == Link::Up {
                    log::warn!("room: this instance was not registered (swept, or Redis restarted): registering");
                    self.link = Link::Restoring { changed: false };
                    self.register();
                }
            }
            Tag::Sweep => {
                if let Ok(Value::Array(dead)) = reply {
                    for d in dead.into_iter().filter_map(Value::into_bytes) {
                        log::info!(
                            "room: declared instance {} lost",
                            String::from_utf8_lossy(&d)
                        );
                    }
                }
            }
            Tag::Publish | Tag::Leave | Tag::Bye => {
                if let Err(e) = reply {
                    log::warn!("room: Redis refused a command: {e}");
                }
            }
        }
    }

    /// A message from the bus subscription.
    pub fn bus(&mut self, payload: &[u8]) {
        let Some(msg) = Bus::parse(payload) else {
            log::warn!(
                "room: ignoring a malformed bus message ({} bytes)",
                payload.len()
            );
            return;
        };
        if let Some((origin, seq)) = msg.origin_seq() {
            if origin == self.id {
                if seq == 0 {
                    return; // a catch-up for the others
                }
                if let Some(i) = self.unacked.iter().position(|u| u.seq == seq) {
                    self.unacked.remove(i);
                }
            }
        }
        self.deliver(msg);
    }

    // ---- inner workings ------------------------------------------------

    fn own(&self, msg: &Bus) -> bool {
        msg.origin_seq().is_some_and(|(o, _)| o == self.id)
    }

    fn member(&self, conn: C) -> Option<(Member, String)> {
        let m = *self.by_conn.get(&conn)?;
        let l = self.members.get(&m)?;
        l.welcomed.then(|| (m, l.name.clone()))
    }

    fn owner(&self, member: Member) -> String {
        format!("{}/{member}", self.id)
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn local_change(&mut self) {
        if let Link::Restoring { changed } = &mut self.link {
            *changed = true;
        }
    }

    fn script(&self, lua: &str, args: &[&str]) -> Vec<Vec<u8>> {
        let mut v: Vec<Vec<u8>> = vec![b"EVAL".to_vec(), lua.as_bytes().to_vec(), b"0".to_vec()];
        v.push(self.prefix.as_bytes().to_vec());
        v.extend(args.iter().map(|a| a.as_bytes().to_vec()));
        v
    }

    fn publish(&mut self, msg: Bus) {
        let args = vec![
            b"PUBLISH".to_vec(),
            self.channel().into_bytes(),
            msg.encode().into_bytes(),
        ];
        if let Some((_, seq)) = msg.origin_seq() {
            if seq != 0 {
                self.unacked.push_back(Unacked { seq, msg });
            }
        }
        self.commands.push((Tag::Publish, args));
    }

    fn send_join(&mut self, member: Member, attempt: u32) {
        let Some(l) = self.members.get_mut(&member) else {
            return;
        };
        let name = if attempt == 1 {
            l.addr.clone()
        } else {
            format!("{}#{attempt}", l.addr)
        };
        l.name = name.clone();
        let seq = self.next_seq();
        let msg = Bus::Join {
            origin: self.id.clone(),
            seq,
            member,
            name: name.clone(),
        };
        let args = self.script(
            lua::JOIN,
            &[
                &self.owner(member),
                &member.to_string(),
                &name,
                &name.to_ascii_lowercase(),
                &CLAIM_TTL.to_string(),
                &msg.encode(),
            ],
        );
        self.unacked.push_back(Unacked { seq, msg });
        self.commands.push((Tag::Join { member, attempt }, args));
    }

    fn join_reply(&mut self, member: Member, attempt: u32, reply: Reply) {
        if !matches!(reply, Ok(Value::Int(0))) {
            if let Err(e) = reply {
                log::warn!("room: join script failed: {e}");
            }
            return; // joined: the bus brings the welcome
        }
        self.unacked
            .retain(|u| !matches!(&u.msg, Bus::Join { member: m, .. } if *m == member));
        if !self.members.contains_key(&member) {
            return;
        }
        if attempt < 99 && self.link == Link::Up {
            self.send_join(member, attempt + 1);
        } else {
            self.welcome_locally(member);
        }
    }

    fn welcome_locally(&mut self, member: Member) {
        let Some(l) = self.members.get_mut(&member) else {
            return;
        };
        if l.welcomed {
            return;
        }
        l.welcomed = true;
        let (conn, name) = (l.conn, l.name.clone());
        self.actions.push(Action::Welcome {
            conn,
            name: name.clone(),
        });
        self.actions.push(Action::Joined {
            except: Some(conn),
            name,
        });
    }

    fn answer_who_locally(&mut self, conn: C) {
        let mut names: Vec<String> = self
            .members
            .values()
            .filter(|l| l.welcomed)
            .map(|l| l.name.clone())
            .collect();
        names.sort_by_key(|n| n.to_ascii_lowercase());
        self.actions.push(Action::Notice {
            conn,
            text: format!("online: {}", names.join(", ")),
        });
    }

    fn register(&mut self) {
        let mut snapshot: Vec<(Member, String)> = Vec::new();
        let mut args: Vec<String> = vec![
            self.id.clone(),
            ALIVE_TTL.to_string(),
            CLAIM_TTL.to_string(),
        ];
        let mut members: Vec<(&Member, &Local<C>)> =
            self.members.iter().filter(|(_, l)| l.welcomed).collect();
        members.sort_by_key(|(m, _)| **m);
        for (m, l) in members {
            snapshot.push((*m, l.name.clone()));
            args.extend([m.to_string(), l.name.clone(), l.addr.clone()]);
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let cmd = self.script(lua::REGISTER, &refs);
        self.touched.clear();
        self.commands.push((Tag::Register { snapshot }, cmd));
    }

    fn register_reply(&mut self, snapshot: Vec<(Member, String)>, reply: Reply) {
        let Link::Restoring { changed } = self.link else {
            return;
        };
        let mut items = match reply {
            Ok(Value::Array(items)) if items.len() == snapshot.len() + 2 => items,
            other => {
                log::warn!("room: register failed ({other:?}); retrying");
                self.link = Link::Restoring { changed: false };
                return self.register();
            }
        };
        if changed {
            self.link = Link::Restoring { changed: false };
            return self.register();
        }
        let roster = items.pop().and_then(Value::into_array).unwrap_or_default();
        let swept = items[0].as_int() == Some(1);
        if swept {
            log::warn!("room: the other instances had declared this one lost; announcing its clients again");
            self.announced.clear();
        }
        // Names taken during the outage: the client now has the name Redis gave it.
        let mut target: HashMap<Member, String> = HashMap::new();
        for ((member, name), got) in snapshot.iter().zip(items.into_iter().skip(1)) {
            let got = got
                .into_bytes()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or(name.clone());
            if got != *name {
                if let Some(l) = self.members.get_mut(member) {
                    l.name = got.clone();
                    self.actions.push(Action::Renamed {
                        conn: Some(l.conn),
                        old: name.clone(),
                        new: got.clone(),
                    });
                }
            }
            target.insert(*member, got);
        }
        // Tell the others what changed while they could not hear us.
        let mut before: Vec<(Member, String)> = self
            .announced
            .iter()
            .map(|(m, n)| (*m, n.clone()))
            .collect();
        before.sort();
        for (member, name) in before {
            match target.get(&member) {
                None => self.publish(Bus::Leave {
                    origin: self.id.clone(),
                    seq: 0,
                    member,
                    name,
                    reason: String::new(),
                }),
                Some(now) if *now != name => self.publish(Bus::Nick {
                    origin: self.id.clone(),
                    seq: 0,
                    member,
                    old: name,
                    new: now.clone(),
                }),
                Some(_) => {}
            }
        }
        let mut after: Vec<(&Member, &String)> = target.iter().collect();
        after.sort();
        let joins: Vec<(Member, String)> = after
            .into_iter()
            .filter(|(m, _)| !self.announced.contains_key(m))
            .map(|(m, n)| (*m, n.clone()))
            .collect();
        for (member, name) in joins {
            self.publish(Bus::Join {
                origin: self.id.clone(),
                seq: 0,
                member,
                name,
            });
        }
        self.announced = target;
        self.link = Link::Up;
        if self.told_lost {
            self.told_lost = false;
            self.actions
                .push(Action::NoticeAll("link to other servers restored".into()));
        }
        // And tell our clients what changed elsewhere while we could not hear.
        self.apply_roster(roster);
    }

    /// The room as Redis holds it (a roster: `{ID, {member, name, ...}}`
    /// per other instance), against what our clients were told: joins,
    /// leaves and renames for the difference, nothing for what they know.
    /// An instance they know that Redis does not list is not announced
    /// yet: after a Redis restart it registers again within a few seconds
    /// (`check_missing`).
    fn apply_roster(&mut self, roster: Vec<Value>) {
        let text = |v: Value| {
            v.into_bytes()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
        };
        let mut listed: HashSet<String> = HashSet::new();
        for entry in roster {
            let mut parts = entry.into_array().unwrap_or_default().into_iter();
            let (Some(id), Some(flat)) = (parts.next().and_then(text), parts.next()) else {
                continue;
            };
            let mut now: Vec<(Member, String)> = Vec::new();
            let mut flat = flat.into_array().unwrap_or_default().into_iter();
            while let (Some(m), Some(n)) = (flat.next().and_then(text), flat.next().and_then(text))
            {
                if let Ok(m) = m.parse() {
                    now.push((m, n));
                }
            }
            now.sort();
            listed.insert(id.clone());
            if id == self.id || self.touched.contains(&(id.clone(), None)) {
                continue;
            }
            self.missing.remove(&id);
            let told = self.remote.entry(id.clone()).or_default();
            let mut gone: Vec<(Member, String)> = told
                .iter()
                .filter(|(m, _)| !now.iter().any(|(n, _)| n == *m))
                .filter(|(m, _)| !self.touched.contains(&(id.clone(), Some(**m))))
                .map(|(m, n)| (*m, n.clone()))
                .collect();
            gone.sort();
            for (m, name) in gone {
                told.remove(&m);
                self.actions.push(Action::Left { name, reason: None });
            }
            for (m, name) in now {
                if self.touched.contains(&(id.clone(), Some(m))) {
                    continue;
                }
                match told.insert(m, name.clone()) {
                    None => self.actions.push(Action::Joined { except: None, name }),
                    Some(old) if old != name => self.actions.push(Action::Renamed {
                        conn: None,
                        old,
                        new: name,
                    }),
                    Some(_) => {}
                }
            }
        }
        self.touched.clear();
        for id in self.remote.keys() {
            if !listed.contains(id) {
                self.missing.entry(id.clone()).or_insert(0);
            }
        }
    }

    /// Every beat while linked: instances our clients know of that Redis
    /// did not list are looked for again, and announced lost once they
    /// have been missing for `MISSING_BEATS`.
    fn check_missing(&mut self) {
        if self.missing.is_empty() {
            return;
        }
        let mut expired: Vec<String> = Vec::new();
        for (id, beats) in &mut self.missing {
            *beats += 1;
            if *beats > MISSING_BEATS {
                expired.push(id.clone());
            }
        }
        expired.sort();
        for id in expired {
            self.missing.remove(&id);
            log::info!("room: instance {id} did not come back; announcing its clients lost");
            self.forget_instance(&id, Some("server lost".into()));
        }
        if !self.missing.is_empty() && !self.roster_out {
            self.roster_out = true;
            self.touched.clear();
            let args = self.script(lua::ROSTER, &[&self.id.clone()]);
            self.commands.push((Tag::Roster, args));
        }
    }

    /// Instance `id` is gone: each of its clients our clients know of left.
    fn forget_instance(&mut self, id: &str, reason: Option<String>) {
        self.missing.remove(id);
        let Some(told) = self.remote.remove(id) else {
            return;
        };
        let mut told: Vec<(Member, String)> = told.into_iter().collect();
        told.sort();
        for (_, name) in told {
            self.actions.push(Action::Left {
                name,
                reason: reason.clone(),
            });
        }
    }

    /// Notes bus news about `origin` while a roster is being read (the
    /// register script or the roster script): only then can it race one,
    /// and only then is it kept, so this set stays as small as the news of
    /// one round trip.
    fn touch(&mut self, origin: &str, member: Option<Member>) {
        if self.link != Link::Up || self.roster_out {
            self.touched.insert((origin.to_string(), member));
        }
    }

    /// A `join` or a `nick` from another instance: delivered only as far
    /// as it is news to our clients.
    fn remote_named(&mut self, origin: String, member: Member, name: String) {
        self.touch(&origin, Some(member));
        let known = self
            .remote
            .get(&origin)
            .is_some_and(|t| t.contains_key(&member));
        if !known && self.remote.values().map(HashMap::len).sum::<usize>() >= MAX_REMOTE {
            log::warn!("room: {MAX_REMOTE} remote clients remembered; not remembering {name}");
            self.actions.push(Action::Joined { except: None, name });
            return;
        }
        match self
            .remote
            .entry(origin)
            .or_default()
            .insert(member, name.clone())
        {
            None => self.actions.push(Action::Joined { except: None, name }),
            Some(old) if old != name => self.actions.push(Action::Renamed {
                conn: None,
                old,
                new: name,
            }),
            Some(_) => {}
        }
    }

    /// Our own message that Redis never handed back, shown here once.
    fn deliver_own_locally(&mut self, msg: Bus) {
        match msg {
            Bus::Join { member, .. } => self.welcome_locally(member),
            Bus::Nick { member, new, .. } => {
                if let Some(l) = self.members.get(&member) {
                    let text =
                        format!("error: the link to other servers was lost; nick {new} not taken");
                    self.actions.push(Action::Notice { conn: l.conn, text });
                }
            }
            other => self.deliver(other),
        }
    }

    fn deliver(&mut self, msg: Bus) {
        let mine = self.own(&msg);
        match msg {
            Bus::Line {
                member, name, text, ..
            } => {
                let from = if mine {
                    self.members.get(&member).map(|l| l.conn)
                } else {
                    None
                };
                self.actions.push(Action::Line { from, name, text });
            }
            Bus::Join {
                origin,
                member,
                name,
                ..
            } if !mine => self.remote_named(origin, member, name),
            Bus::Nick {
                origin,
                member,
                new,
                ..
            } if !mine => self.remote_named(origin, member, new),
            Bus::Leave {
                origin,
                member,
                reason,
                ..
            } if !mine => {
                self.touch(&origin, Some(member));
                if let Some(name) = self.remote.get_mut(&origin).and_then(|t| t.remove(&member)) {
                    self.actions.push(Action::Left {
                        name,
                        reason: (!reason.is_empty()).then_some(reason),
                    });
                }
            }
            Bus::Join { member, name, .. } => {
                let mut except = None;
                if mine {
                    self.announced.insert(member, name.clone());
                    if let Some(l) = self.members.get_mut(&member) {
                        except = Some(l.conn);
                        if !l.welcomed {
                            l.welcomed = true;
                            l.name = name.clone();
                            self.actions.push(Action::Welcome {
                                conn: l.conn,
                                name: name.clone(),
                            });
                        }
                    }
                }
                self.actions.push(Action::Joined { except, name });
            }
            Bus::Leave {
                member,
                name,
                reason,
                ..
            } => {
                if mine {
                    self.announced.remove(&member);
                }
                self.actions.push(Action::Left {
                    name,
                    reason: (!reason.is_empty()).then_some(reason),
                });
            }
            Bus::Nick {
                member, old, new, ..
            } => {
                let mut conn = None;
                if mine {
                    self.announced.insert(member, new.clone());
                    if let Some(l) = self.members.get_mut(&member) {
                        l.name = new.clone();
                        conn = Some(l.conn);
                    }
                }
                self.actions.push(Action::Renamed { conn, old, new });
            }
            Bus::Lost { origin, names } => {
                if origin == self.id {
                    log::warn!(
                        "room: the other instances declared this one lost; registering again"
                    );
                    self.announced.clear();
                    if self.link == Link::Up {
                        self.link = Link::Restoring { changed: false };
                        self.register();
                    }
                    return;
                }
                let _ = names; // ours say what our clients were told
                self.touch(&origin, None);
                self.forget_instance(&origin, Some("server lost".into()));
            }
            Bus::Gone {
                origin,
                reason,
                names,
            } => {
                if origin == self.id {
                    return;
                }
                let _ = names;
                self.touch(&origin, None);
                self.forget_instance(&origin, (!reason.is_empty()).then_some(reason));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(room: &mut Room<u32>) {
        room.link_up();
        let cmds = room.take_commands();
        let (tag, _) = cmds.into_iter().next().unwrap();
        let n = match &tag {
            Tag::Register { snapshot } => snapshot.len(),
            t => panic!("{t:?}"),
        };
        let mut items = vec![Value::Int(0)];
        if let Tag::Register { snapshot } = &tag {
            items.extend(
                snapshot
                    .iter()
                    .map(|(_, name)| Value::Bulk(name.clone().into_bytes())),
            );
        }
        assert_eq!(items.len(), n + 1);
        items.push(Value::Array(Vec::new())); // nobody else in the room
        room.reply(tag, Ok(Value::Array(items)));
    }

    /// Runs the commands as a one-instance Redis would: publishes come back.
    fn echo(room: &mut Room<u32>) {
        for (tag, args) in room.take_commands() {
            let payload = match args[0].as_slice() {
                b"PUBLISH" => Some(args[2].clone()),
                b"EVAL" => args.last().cloned().filter(|p| p.contains(&b'\t')),
                _ => None,
            };
            room.reply(tag, Ok(Value::Int(1)));
            if let Some(p) = payload {
                room.bus(&p);
            }
        }
    }

    #[test]
    fn bus_messages_round_trip() {
        for msg in [
            Bus::Line {
                origin: "a".into(),
                seq: 3,
                member: 9,
                name: "n".into(),
                text: "x\ty".into(),
            },
            Bus::Join {
                origin: "a".into(),
                seq: 1,
                member: 2,
                name: "[::1]:5".into(),
            },
            Bus::Leave {
                origin: "a".into(),
                seq: 1,
                member: 2,
                name: "b".into(),
                reason: "".into(),
            },
            Bus::Nick {
                origin: "a".into(),
                seq: 1,
                member: 2,
                old: "b".into(),
                new: "c".into(),
            },
            Bus::Lost {
                origin: "a".into(),
                names: vec!["x".into(), "y".into()],
            },
            Bus::Gone {
                origin: "a".into(),
                reason: "r".into(),
                names: vec![],
            },
        ] {
            assert_eq!(Bus::parse(msg.encode().as_bytes()), Some(msg));
        }
        assert_eq!(Bus::parse(b"line\tonly"), None);
        let evil = Bus::parse("line\ta\t1\t2\tn\tx\x1b[2J\ny\u{202E}".as_bytes());
        assert!(
            matches!(evil, Some(Bus::Line { text, .. }) if text == "x\u{FFFD}[2J\u{FFFD}y\u{FFFD}")
        );
        assert_eq!(Bus::parse(b"\xff\xfe"), None);
    }

    #[test]
    fn linked_lines_wait_for_the_bus_and_skip_the_sender() {
        let mut room = Room::new("lobby", "me");
        up(&mut room);
        room.connected(1, "1.1.1.1:1");
        assert!(
            room.take_actions().is_empty(),
            "welcome waits for the join to come back"
        );
        echo(&mut room);
        assert_eq!(
            room.take_actions(),
            vec![
                Action::Welcome {
                    conn: 1,
                    name: "1.1.1.1:1".into()
                },
                Action::Joined {
                    except: Some(1),
                    name: "1.1.1.1:1".into()
                }
            ]
        );
        room.line(1, "hi");
        assert!(room.take_actions().is_empty());
        echo(&mut room);
        assert_eq!(
            room.take_actions(),
            vec![Action::Line {
                from: Some(1),
                name: "1.1.1.1:1".into(),
                text: "hi".into()
            }]
        );
    }

    #[test]
    fn losing_the_link_delivers_what_was_in_flight_once() {
        let mut room = Room::new("lobby", "me");
        up(&mut room);
        room.connected(1, "a:1");
        echo(&mut room);
        room.take_actions();
        room.line(1, "one");
        room.line(1, "two");
        room.take_commands(); // sent, never answered
        room.link_lost();
        let got = room.take_actions();
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(
            got[2],
            Action::NoticeAll("link to other servers lost".into())
        );
        room.line(1, "three");
        assert_eq!(
            room.take_actions(),
            vec![Action::Line {
                from: Some(1),
                name: "a:1".into(),
                text: "three".into()
            }]
        );
        // While down a newcomer is welcomed at once; on restore it is announced to the others.
        room.connected(2, "b:2");
        assert!(matches!(
            room.take_actions()[0],
            Action::Welcome { conn: 2, .. }
        ));
        up(&mut room);
        assert_eq!(
            room.take_actions(),
            vec![Action::NoticeAll("link to other servers restored".into())]
        );
        let cmds = room.take_commands();
        assert_eq!(cmds.len(), 1, "only b:2 is news to the others");
        assert!(String::from_utf8_lossy(&cmds[0].1[2]).starts_with("join\tme\t0\t"));
    }

    #[test]
    fn a_who_in_flight_when_the_link_goes_is_answered_here() {
        let mut room = Room::new("lobby", "me");
        up(&mut room);
        room.connected(1, "a:1");
        echo(&mut room);
        room.take_actions();
        room.who(1);
        room.take_commands();
        room.link_lost();
        let got = room.take_actions();
        assert!(
            got.contains(&Action::Notice {
                conn: 1,
                text: "online: a:1".into()
            }),
            "{got:?}"
        );
    }

    #[test]
    fn one_lost_notice_per_outage_however_many_retries_fail() {
        let mut room: Room<u32> = Room::new("lobby", "me");
        up(&mut room);
        room.link_lost();
        room.link_up(); // reconnected, register out...
        room.take_commands();
        room.link_lost(); // ...and lost again before it answered
        room.link_lost();
        let lost = room.take_actions();
        assert_eq!(
            lost,
            vec![Action::NoticeAll("link to other servers lost".into())]
        );
        up(&mut room);
        assert_eq!(
            room.take_actions(),
            vec![Action::NoticeAll("link to other servers restored".into())]
        );
    }

    #[test]
    fn a_taken_default_name_gets_a_suffix_and_a_taken_nick_an_error() {
        let mut room = Room::new("lobby", "me");
        up(&mut room);
        room.connected(1, "a:1");
        let (tag, _) = room.take_commands().remove(0);
        room.reply(tag, Ok(Value::Int(0)));
        let (tag, args) = room.take_commands().remove(0);
        assert_eq!(
            tag,
            Tag::Join {
                member: 1,
                attempt: 2
            }
        );
        assert!(args.iter().any(|a| a == b"a:1#2"));
        room.reply(tag, Ok(Value::Int(1)));
        room.bus(args.last().unwrap());
        assert!(matches!(&room.take_actions()[0], Action::Welcome { name, .. } if name == "a:1#2"));
        room.nick(1, "bob");
        let (tag, _) = room.take_commands().remove(0);
        room.reply(tag, Ok(Value::Int(0)));
        assert_eq!(
            room.take_actions(),
            vec![Action::Notice {
                conn: 1,
                text: "error: nick bob is taken".into()
            }]
        );
        assert!(room.unacked.is_empty());
    }

    #[test]
    fn lost_and_gone_name_every_client() {
        let mut room: Room<u32> = Room::new("lobby", "me");
        up(&mut room);
        room.bus(b"join\tother\t1\t1\tx");
        room.bus(b"join\tother\t2\t2\ty");
        room.bus(b"join\tother2\t1\t1\tz");
        room.take_actions();
        room.bus(b"lost\tother\tx\ty");
        room.bus(b"gone\tother2\tserver shutting down\tz");
        // Said once: a second obituary, or one for strangers, says nothing.
        room.bus(b"lost\tother\tx\ty");
        room.bus(b"lost\tstranger\tq");
        assert_eq!(
            room.take_actions(),
            vec![
                Action::Left {
                    name: "x".into(),
                    reason: Some("server lost".into())
                },
                Action::Left {
                    name: "y".into(),
                    reason: Some("server lost".into())
                },
                Action::Left {
                    name: "z".into(),
                    reason: Some("server shutting down".into())
                },
            ]
        );
    }

    #[test]
    fn presence_news_is_delivered_once_and_a_roster_only_adds_the_difference() {
        let mut room: Room<u32> = Room::new("lobby", "me");
        up(&mut room);
        room.bus(b"join\tother\t1\t1\tc");
        room.bus(b"join\tother\t0\t1\tc"); // a catch-up for what we knew
        room.bus(b"nick\tother\t2\t1\tc\tc");
        assert_eq!(
            room.take_actions(),
            vec![Action::Joined {
                except: None,
                name: "c".into()
            }]
        );
        // An outage; meanwhile "d" joined there and "c" left.
        room.link_lost();
        room.take_actions();
        room.link_up();
        let (tag, _) = room.take_commands().remove(0);
        let d = |m: &str, n: &str| vec![Value::Bulk(m.into()), Value::Bulk(n.into())];
        let roster = Value::Array(vec![Value::Array(vec![
            Value::Bulk(b"other".to_vec()),
            Value::Array(d("2", "d")),
        ])]);
        room.reply(tag, Ok(Value::Array(vec![Value::Int(0), roster])));
        assert_eq!(
            room.take_actions(),
            vec![
                Action::NoticeAll("link to other servers restored".into()),
                Action::Left {
                    name: "c".into(),
                    reason: None
                },
                Action::Joined {
                    except: None,
                    name: "d".into()
                },
            ]
        );
        // Its catch-up after us says nothing new.
        room.bus(b"join\tother\t0\t2\td");
        room.bus(b"leave\tother\t0\t1\tc\t");
        assert!(room.take_actions().is_empty());
    }

    #[test]
    fn an_instance_missing_after_a_restore_is_looked_for_then_announced_lost() {
        let mut room: Room<u32> = Room::new("lobby", "me");
        up(&mut room);
        room.bus(b"join\tother\t1\t1\tc");
        room.take_actions();
        room.link_lost();
        room.take_actions();
        up(&mut room); // Redis came back empty: "other" is not there yet
        assert_eq!(
            room.take_actions(),
            vec![Action::NoticeAll("link to other servers restored".into())]
        );
        room.take_commands();
        for _ in 0..MISSING_BEATS {
            room.tick();
            assert!(room.take_actions().is_empty());
            let cmds = room.take_commands();
            if let Some((tag, _)) = cmds.into_iter().find(|(t, _)| *t == Tag::Roster) {
                room.reply(tag, Ok(Value::Array(Vec::new())));
            }
        }
        room.tick();
        assert_eq!(
            room.take_actions(),
            vec![Action::Left {
                name: "c".into(),
                reason: Some("server lost".into())
            }]
        );
    }
}
