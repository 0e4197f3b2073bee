//! The federated room's state machine (`examples/chatroom/federation/room.rs`)
//! without the chat: its own unit tests, and two rooms driven over blocking
//! links against a real redis-server, so the Lua scripts, the claims, the
//! sweep and the catch-up after an outage run for real.

#![cfg(feature = "redis")]
#![allow(dead_code)]

#[path = "util/blocking_link.rs"]
mod blocking_link;
#[path = "util/redis.rs"]
mod redis_server;
#[path = "../examples/chatroom/federation/room.rs"]
mod room;

use std::time::{Duration, Instant};

use blocking_link::Link;
use mio_selectors::redis::Event;
use redis_server::RedisServer;
use room::{Action, Room, Tag};

/// One instance: its room, its command and bus connections, and every
/// action the room has asked of the chat so far.
struct Node {
    room: Room<u32>,
    cmd: Link<Tag>,
    sub: Link<Tag>,
    actions: Vec<Action<u32>>,
}

impl Node {
    fn start(url: &str, id: &str) -> Node {
        let mut room = Room::new("lobby", id);
        let cmd = Link::connect(url).unwrap();
        let mut sub = Link::connect(url).unwrap();
        sub.conn.subscribe(Tag::Publish, &[room.channel()]).unwrap();
        sub.flush().unwrap();
        assert!(matches!(
            sub.next().unwrap(),
            Event::Reply { reply: Ok(_), .. }
        ));
        room.link_up();
        let mut node = Node {
            room,
            cmd,
            sub,
            actions: Vec::new(),
        };
        node.pump();
        node
    }

    /// Sends the room's commands, hands it their replies (and any further
    /// commands those cause), then every bus message that is there.
    fn pump(&mut self) {
        loop {
            let cmds = self.room.take_commands();
            if cmds.is_empty() && self.cmd.conn.in_flight() == 0 {
                break;
            }
            for (tag, args) in cmds {
                self.cmd.conn.command(tag, &args).unwrap();
            }
            self.cmd.flush().unwrap();
            if self.cmd.conn.in_flight() > 0 {
                let (tag, reply) = self.cmd.reply();
                if let Err(e) = &reply {
                    assert!(!e.text().contains("script"), "a Lua error: {e}");
                }
                self.room.reply(tag, reply);
            }
        }
        while let Some(event) = self.sub.next_within(Duration::from_millis(30)).unwrap() {
            if let Event::Message { payload, .. } = event {
                self.room.bus(&payload);
            }
        }
        self.actions.extend(self.room.take_actions());
    }

    /// Pumps until `want` holds for the actions gathered so far (5 s at most).
    fn until(&mut self, what: &str, want: impl Fn(&[Action<u32>]) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            self.pump();
            if want(&self.actions) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: never happened; actions: {:#?}",
                self.actions
            );
        }
    }

    fn has(&mut self, what: &str, action: Action<u32>) {
        self.until(what, |a| a.contains(&action));
    }
}

fn s(x: &str) -> String {
    x.to_string()
}

#[test]
fn two_rooms_share_names_order_and_presence_through_redis() {
    let redis = RedisServer::start();
    let url = redis.url();
    let mut a = Node::start(&url, "aaaa");
    let mut b = Node::start(&url, "bbbb");

    a.room.connected(1, "10.0.0.1:1000");
    a.has(
        "welcome on a",
        Action::Welcome {
            conn: 1,
            name: s("10.0.0.1:1000"),
        },
    );
    b.has(
        "join seen on b",
        Action::Joined {
            except: None,
            name: s("10.0.0.1:1000"),
        },
    );

    // The same address on another instance: default names stay unique.
    b.room.connected(7, "10.0.0.1:1000");
    b.has(
        "suffixed welcome on b",
        Action::Welcome {
            conn: 7,
            name: s("10.0.0.1:1000#2"),
        },
    );

    a.room.nick(1, "bob");
    a.has(
        "rename on a",
        Action::Renamed {
            conn: Some(1),
            old: s("10.0.0.1:1000"),
            new: s("bob"),
        },
    );
    b.has(
        "rename on b",
        Action::Renamed {
            conn: None,
            old: s("10.0.0.1:1000"),
            new: s("bob"),
        },
    );
    b.room.nick(7, "BOB");
    b.has(
        "taken on b",
        Action::Notice {
            conn: 7,
            text: s("error: nick BOB is taken"),
        },
    );

    b.room.who(7);
    b.has(
        "who on b",
        Action::Notice {
            conn: 7,
            text: s("online: 10.0.0.1:1000#2, bob"),
        },
    );

    a.room.line(1, "hello\tworld");
    a.has(
        "own line back on a",
        Action::Line {
            from: Some(1),
            name: s("bob"),
            text: s("hello\tworld"),
        },
    );
    b.has(
        "line on b",
        Action::Line {
            from: None,
            name: s("bob"),
            text: s("hello\tworld"),
        },
    );

    // a's heartbeat vanishes (as when its process is killed): b's sweep
    // announces a's client once and frees its nick.
    assert_eq!(redis.cli(&["DEL", "chatroom:lobby:alive:aaaa"]), "1");
    b.room.tick();
    b.has(
        "server lost on b",
        Action::Left {
            name: s("bob"),
            reason: Some(s("server lost")),
        },
    );
    assert_eq!(redis.cli(&["EXISTS", "chatroom:lobby:name:bob"]), "0");
    b.room.tick();
    b.pump();
    let lost = b
        .actions
        .iter()
        .filter(|x| matches!(x, Action::Left { reason: Some(r), .. } if r == "server lost"))
        .count();
    assert_eq!(lost, 1, "announced exactly once");
    b.room.nick(7, "bob");
    b.has(
        "nick free again",
        Action::Renamed {
            conn: Some(7),
            old: s("10.0.0.1:1000#2"),
            new: s("bob"),
        },
    );

    // a heard its own obituary on the bus: it registers again and its
    // client, renamed because b took "bob", is announced to b as new.
    a.pump();
    a.until("a renamed after losing its nick", |acts| {
        acts.iter().any(
            |x| matches!(x, Action::Renamed { conn: Some(1), new, .. } if new == "10.0.0.1:1000"),
        )
    });
    b.has(
        "a's client rejoined on b",
        Action::Joined {
            except: None,
            name: s("10.0.0.1:1000"),
        },
    );

    // A goodbye names every client once.
    a.room.shutdown();
    a.pump();
    b.has(
        "gone on b",
        Action::Left {
            name: s("10.0.0.1:1000"),
            reason: Some(s("server shutting down")),
        },
    );
    assert_eq!(
        redis.cli(&["SISMEMBER", "chatroom:lobby:inst", "aaaa"]),
        "0"
    );
    b.room.who(7);
    b.has(
        "who after a left",
        Action::Notice {
            conn: 7,
            text: s("online: bob"),
        },
    );
}

#[test]
fn an_outage_is_caught_up_for_the_others_without_repeats_here() {
    let redis = RedisServer::start();
    let url = redis.url();
    let mut a = Node::start(&url, "aaaa");
    let mut b = Node::start(&url, "bbbb");
    a.room.connected(1, "10.0.0.1:1");
    a.room.connected(2, "10.0.0.2:2");
    a.has(
        "second welcome",
        Action::Welcome {
            conn: 2,
            name: s("10.0.0.2:2"),
        },
    );
    b.has(
        "second join on b",
        Action::Joined {
            except: None,
            name: s("10.0.0.2:2"),
        },
    );

    // a loses its link (both connections), keeps chatting locally.
    a.room.link_lost();
    a.pump();
    assert!(a
        .actions
        .contains(&Action::NoticeAll(s("link to other servers lost"))));
    a.room.left(2, None);
    a.room.connected(3, "10.0.0.3:3");
    a.room.line(1, "while down");
    a.pump();
    assert!(a.actions.contains(&Action::Welcome {
        conn: 3,
        name: s("10.0.0.3:3")
    }));
    assert!(a.actions.contains(&Action::Line {
        from: Some(1),
        name: s("10.0.0.1:1"),
        text: s("while down")
    }));

    // Back: a fresh pair of connections, as the glue would make.
    let cmd = Link::connect(&url).unwrap();
    let mut sub = Link::connect(&url).unwrap();
    sub.conn
        .subscribe(Tag::Publish, &[a.room.channel()])
        .unwrap();
    sub.flush().unwrap();
    assert!(matches!(sub.next().unwrap(), Event::Reply { .. }));
    a.cmd = cmd;
    a.sub = sub;
    let before = a.actions.len();
    a.room.link_up();
    a.has(
        "restored",
        Action::NoticeAll(s("link to other servers restored")),
    );
    let after: Vec<_> = a.actions[before..].to_vec();
    assert_eq!(
        after,
        vec![Action::NoticeAll(s("link to other servers restored"))],
        "nothing repeated on a"
    );

    b.has(
        "b hears the leave",
        Action::Left {
            name: s("10.0.0.2:2"),
            reason: None,
        },
    );
    b.has(
        "b hears the newcomer",
        Action::Joined {
            except: None,
            name: s("10.0.0.3:3"),
        },
    );
    assert!(!b
        .actions
        .iter()
        .any(|x| matches!(x, Action::Line { text, .. } if text == "while down")));
    b.room.connected(9, "10.0.0.9:9");
    b.has(
        "b's client",
        Action::Welcome {
            conn: 9,
            name: s("10.0.0.9:9"),
        },
    );
    b.room.who(9);
    b.has(
        "who spans both",
        Action::Notice {
            conn: 9,
            text: s("online: 10.0.0.1:1, 10.0.0.3:3, 10.0.0.9:9"),
        },
    );
    assert_eq!(
        redis.cli(&["EXISTS", "chatroom:lobby:name:10.0.0.2:2"]),
        "0",
        "the leaver's claim is released"
    );
}
