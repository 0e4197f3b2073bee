//! Unit tests of [`RedisConn`](super::RedisConn): the sans-IO link driven with scripted RESP bytes.

use super::*;
use crate::redis::ServerError;

fn url(s: &str) -> RedisUrl {
    s.parse().unwrap()
}

fn conn() -> RedisConn<u32> {
    let mut c = RedisConn::new(&url("redis://h:1"), LinkConfig::default());
    c.feed(b"+PONG\r\n").unwrap();
    assert_eq!(c.next_event(), Some(Event::Ready));
    let n = c.to_send().len();
    c.sent(n);
    c
}

#[test]
fn handshake_sends_auth_and_select_when_asked() {
    let mut c: RedisConn<u32> = RedisConn::new(&url("redis://u:p@h:1/3"), LinkConfig::default());
    assert_eq!(
        c.to_send(),
        &b"*3\r\n$4\r\nAUTH\r\n$1\r\nu\r\n$1\r\np\r\n*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n*1\r\n$4\r\nPING\r\n"[..]
    );
    c.feed(b"+OK\r\n+OK\r\n").unwrap();
    assert!(!c.is_ready());
    c.feed(b"+PONG\r\n").unwrap();
    assert!(c.is_ready());
    let c: RedisConn<u32> = RedisConn::new(&url("redis://:p@h:1"), LinkConfig::default());
    assert!(c.to_send().starts_with(b"*2\r\n$4\r\nAUTH\r\n$1\r\np\r\n"));
}

#[test]
fn handshake_failures_are_typed() {
    let mut c: RedisConn<u32> = RedisConn::new(&url("redis://:bad@h:1"), LinkConfig::default());
    let e = c
        .feed(b"-WRONGPASS invalid username-password pair\r\n")
        .unwrap_err();
    assert!(
        matches!(e, RedisError::Auth(ref s) if s.code() == "WRONGPASS"),
        "{e}"
    );
    assert!(c.is_broken());
    assert!(matches!(c.feed(b"+OK\r\n"), Err(RedisError::Broken)));

    let mut c: RedisConn<u32> = RedisConn::new(&url("redis://h:1"), LinkConfig::default());
    let e = c.feed(b"-NOAUTH Authentication required.\r\n").unwrap_err();
    assert!(matches!(e, RedisError::NoAuth(_)), "{e}");

    let mut c: RedisConn<u32> = RedisConn::new(&url("redis://h:1/99"), LinkConfig::default());
    let e = c.feed(b"-ERR DB index is out of range\r\n").unwrap_err();
    assert!(matches!(e, RedisError::Select { db: 99, .. }), "{e}");

    let mut c: RedisConn<u32> = RedisConn::new(&url("redis://h:1"), LinkConfig::default());
    let e = c.feed(b"+OK\r\n").unwrap_err();
    assert!(
        matches!(e, RedisError::Protocol(ref m) if m.contains("PING")),
        "{e}"
    );
}

#[test]
fn garbage_is_a_protocol_error_not_a_panic() {
    for junk in [
        &b"HTTP/1.1 400 Bad Request\r\n\r\n"[..],
        b"SSH-2.0-OpenSSH_9.2\r\n",
        b"\x16\x03\x01\x00\xa5",
        b"$-7\r\n",
        b":notanumber\r\n",
    ] {
        let mut c: RedisConn<u32> = RedisConn::new(&url("redis://h:1"), LinkConfig::default());
        let e = c.feed(junk).unwrap_err();
        assert!(matches!(e, RedisError::Protocol(_)), "{junk:?}: {e}");
    }
    let mut c = conn();
    let e = c.feed(b":1\r\n").unwrap_err();
    assert!(e.to_string().contains("nobody asked"), "{e}");
    let mut c = conn();
    c.command(1, &["GET", "k"]).unwrap();
    let e = c.feed(&b"*1\r\n".repeat(40)).unwrap_err();
    assert!(e.to_string().contains("deeper"), "{e}");
}

#[test]
fn replies_match_tags_in_order_across_any_split() {
    let wire = b"+OK\r\n$5\r\nhello\r\n-ERR no such thing\r\n*2\r\n:1\r\n$-1\r\n";
    for split in 0..=wire.len() {
        let mut c = conn();
        for tag in 0..4 {
            c.command(tag, &["X"]).unwrap();
        }
        c.feed(&wire[..split]).unwrap();
        c.feed(&wire[split..]).unwrap();
        let got: Vec<_> = std::iter::from_fn(|| c.next_event()).collect();
        assert_eq!(
            got,
            vec![
                Event::Reply {
                    tag: 0,
                    reply: Ok(Value::Status("OK".into()))
                },
                Event::Reply {
                    tag: 1,
                    reply: Ok(Value::Bulk(b"hello".to_vec()))
                },
                Event::Reply {
                    tag: 2,
                    reply: Err(ServerError::new("ERR no such thing"))
                },
                Event::Reply {
                    tag: 3,
                    reply: Ok(Value::Array(vec![Value::Int(1), Value::Nil]))
                },
            ],
            "split at {split}"
        );
        assert_eq!(c.in_flight(), 0);
    }
}

#[test]
fn pubsub_confirmations_and_messages() {
    let mut c = conn();
    c.subscribe(7, &["a", "b"]).unwrap();
    assert_eq!(
        c.to_send(),
        &b"*3\r\n$9\r\nSUBSCRIBE\r\n$1\r\na\r\n$1\r\nb\r\n"[..]
    );
    assert!(matches!(
        c.command(8, &["GET", "k"]),
        Err(RedisError::NotAllowed(_))
    ));
    assert!(!c.is_broken(), "a refused command leaves the link alone");
    c.command(9, &["ping"]).unwrap();
    c.feed(b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n")
        .unwrap();
    assert_eq!(c.next_event(), None, "one confirmation of two");
    c.feed(
        b"*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$2\r\nhi\r\n",
    )
    .unwrap();
    assert!(
        matches!(c.next_event(), Some(Event::Reply { tag: 7, reply: Ok(Value::Array(v)) }) if v.len() == 2)
    );
    assert_eq!(
        c.next_event(),
        Some(Event::Message {
            channel: b"a".to_vec(),
            payload: b"hi".to_vec()
        })
    );
    c.feed(b"*2\r\n$4\r\npong\r\n$0\r\n\r\n").unwrap();
    assert!(matches!(c.next_event(), Some(Event::Reply { tag: 9, .. })));
}

#[test]
fn a_message_shaped_reply_before_subscribing_is_a_reply() {
    let mut c = conn();
    c.command(1, &["LRANGE", "l", "0", "-1"]).unwrap();
    c.feed(b"*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$1\r\nb\r\n")
        .unwrap();
    assert!(matches!(c.next_event(), Some(Event::Reply { tag: 1, .. })));
}

#[test]
fn protocol_changing_commands_are_refused() {
    let mut c = conn();
    for cmd in [
        &["subscribe", "x"][..],
        &["MONITOR"],
        &["hello", "3"],
        &["client", "reply", "off"],
        &[],
    ] {
        assert!(
            matches!(c.command(0, cmd), Err(RedisError::NotAllowed(_))),
            "{cmd:?}"
        );
    }
    assert!(matches!(
        c.subscribe(0, &[] as &[&str]),
        Err(RedisError::NotAllowed(_))
    ));
    c.command(0, &["CLIENT", "SETNAME", "x"]).unwrap();
}

#[test]
fn overflow_breaks_the_link() {
    let config = LinkConfig {
        max_pending_output: 100,
        max_in_flight: 3,
        ..LinkConfig::default()
    };
    let mut c: RedisConn<u32> = RedisConn::new(&url("redis://h:1"), config.clone());
    let big = vec![b'x'; 100];
    let e = c.command(1, &[&b"SET"[..], b"k", &big]).unwrap_err();
    assert!(
        matches!(e, RedisError::LinkOverflow { cap: 100, .. }),
        "{e}"
    );
    assert!(c.is_broken());
    assert!(matches!(c.command(2, &["PING"]), Err(RedisError::Broken)));

    let mut c: RedisConn<u32> = RedisConn::new(&url("redis://h:1"), config);
    c.command(1, &["PING"]).unwrap();
    c.command(2, &["PING"]).unwrap();
    let e = c.command(3, &["PING"]).unwrap_err();
    assert!(e.to_string().contains("awaiting replies"), "{e}");
}

#[test]
fn oversized_or_endless_replies_are_refused() {
    let config = LinkConfig {
        max_reply: 64,
        ..LinkConfig::default()
    };
    let mut c: RedisConn<u32> = RedisConn::new(&url("redis://h:1"), config.clone());
    assert!(matches!(c.feed(b"$65\r\n"), Err(RedisError::Protocol(_))));
    let mut c: RedisConn<u32> = RedisConn::new(&url("redis://h:1"), config);
    c.feed(b"+PONG\r\n").unwrap();
    c.command(1, &["GET", "k"]).unwrap();
    c.feed(&[b'+'; 60]).unwrap();
    assert!(matches!(c.feed(&[b'a'; 10]), Err(RedisError::Protocol(_))));
}

#[test]
fn output_is_consumed_in_parts() {
    let mut c = conn();
    c.command(1, &["ECHO", "abc"]).unwrap();
    let all = c.to_send().to_vec();
    c.sent(3);
    assert_eq!(c.to_send(), &all[3..]);
    c.sent(1000);
    assert!(c.to_send().is_empty());
    assert_eq!(c.pending_output(), 0);
}

mod props {
    use super::*;
    use proptest::prelude::*;

    /// A RESP2 reply and its value, nested a little.
    fn frame() -> impl Strategy<Value = (Vec<u8>, Value)> {
        let leaf = prop_oneof![
            any::<i64>().prop_map(|i| (format!(":{i}\r\n").into_bytes(), Value::Int(i))),
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(|b| {
                let mut wire = format!("${}\r\n", b.len()).into_bytes();
                wire.extend_from_slice(&b);
                wire.extend_from_slice(b"\r\n");
                (wire, Value::Bulk(b))
            }),
            "[a-zA-Z ]{0,20}".prop_map(|s| (format!("+{s}\r\n").into_bytes(), Value::Status(s))),
            Just((b"$-1\r\n".to_vec(), Value::Nil)),
        ];
        leaf.prop_recursive(3, 24, 5, |inner| {
            proptest::collection::vec(inner, 0..5).prop_map(|items| {
                let mut wire = format!("*{}\r\n", items.len()).into_bytes();
                let mut values = Vec::new();
                for (w, v) in items {
                    wire.extend_from_slice(&w);
                    values.push(v);
                }
                (wire, Value::Array(values))
            })
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

        /// Pipelined replies decode to the same values however the reads split them.
        #[test]
        fn replies_survive_any_split(frames in proptest::collection::vec(frame(), 1..8), cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6)) {
            let mut c = conn();
            let mut wire = Vec::new();
            for (i, (w, _)) in frames.iter().enumerate() {
                c.command(i as u32, &["X"]).unwrap();
                wire.extend_from_slice(w);
            }
            let mut points: Vec<usize> = cuts.iter().map(|ix| ix.index(wire.len() + 1)).collect();
            points.sort_unstable();
            let mut at = 0;
            for p in points.into_iter().chain([wire.len()]) {
                c.feed(&wire[at..p]).unwrap();
                at = p;
            }
            for (i, (_, v)) in frames.into_iter().enumerate() {
                prop_assert_eq!(c.next_event(), Some(Event::Reply { tag: i as u32, reply: Ok(v) }));
            }
            prop_assert_eq!(c.next_event(), None);
        }

        /// Arbitrary bytes from the peer never panic: a result, always.
        #[test]
        fn garbage_never_panics(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 1..6)) {
            let mut c = conn();
            c.subscribe(0, &["ch"]).unwrap();
            for chunk in chunks {
                if c.feed(&chunk).is_err() {
                    prop_assert!(c.is_broken());
                    break;
                }
            }
            while c.next_event().is_some() {}
        }
    }
}
