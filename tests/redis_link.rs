//! The sans-IO Redis link (`mio_selectors::redis`) against a real
//! `redis-server`, driven over a plain blocking `TcpStream` whose every
//! read and write has a timeout: pipelining, pub/sub across two
//! connections, error replies, passwords, a peer that is not Redis, a
//! refused port.

#![cfg(feature = "redis")]

#[path = "util/blocking_link.rs"]
mod blocking_link;
#[path = "util/redis.rs"]
mod redis_server;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::thread;
use std::time::Instant;

use blocking_link::{Link, TIMEOUT};
use mio_selectors::redis::{Event, LinkConfig, RedisError, Value};
use redis_server::{free_port, RedisServer};

fn bulk(s: &str) -> Value {
    Value::Bulk(s.as_bytes().to_vec())
}

#[test]
fn pipelined_replies_come_back_in_order_with_their_tags() {
    let redis = RedisServer::start();
    let mut link = Link::<u32>::connect(&redis.url()).unwrap();
    const N: u32 = 2000;
    for i in 0..N {
        link.conn
            .command(2 * i, &["SET", &format!("k{i}"), &format!("v{i}")])
            .unwrap();
        link.conn
            .command(2 * i + 1, &["GET", &format!("k{i}")])
            .unwrap();
    }
    assert_eq!(link.conn.in_flight(), 2 * N as usize);
    // Every command in one write.
    link.flush().unwrap();
    for i in 0..N {
        assert_eq!(link.reply(), (2 * i, Ok(Value::Status("OK".into()))));
        assert_eq!(link.reply(), (2 * i + 1, Ok(bulk(&format!("v{i}")))));
    }
    assert_eq!(link.conn.in_flight(), 0);
    assert_eq!(link.call(&["GET", "missing"]), Ok(Value::Nil));
    assert_eq!(link.call(&["INCR", "n"]), Ok(Value::Int(1)));
    // A value of 1 MiB, both ways, however the reads split it.
    let big = "x".repeat(1 << 20);
    assert!(link.call(&["SET", "big", &big]).unwrap().is_ok());
    assert_eq!(
        link.call(&["GET", "big"]),
        Ok(Value::Bulk(big.into_bytes()))
    );
}

#[test]
fn pubsub_between_two_connections_keeps_order() {
    let redis = RedisServer::start();
    let mut sub = Link::<u32>::connect(&redis.url()).unwrap();
    let mut publisher = Link::<u32>::connect(&redis.url()).unwrap();
    sub.conn.subscribe(1, &["room:a", "room:b"]).unwrap();
    sub.flush().unwrap();
    let (tag, confirmed) = sub.reply();
    assert_eq!(tag, 1);
    let confirmed = confirmed.unwrap().into_array().unwrap();
    assert_eq!(confirmed.len(), 2);
    assert_eq!(confirmed[1].as_array().unwrap()[2], Value::Int(2));
    assert!(matches!(
        sub.conn.command(2, &["GET", "x"]),
        Err(RedisError::NotAllowed(_))
    ));

    for i in 0..500u32 {
        let channel = if i % 2 == 0 { "room:a" } else { "room:b" };
        publisher
            .conn
            .command(i, &["PUBLISH", channel, &format!("line {i}")])
            .unwrap();
    }
    publisher.flush().unwrap();
    for i in 0..500u32 {
        assert_eq!(
            publisher.reply(),
            (i, Ok(Value::Int(1))),
            "one subscriber got it"
        );
    }
    for i in 0..500u32 {
        match sub.next().unwrap() {
            Event::Message { channel, payload } => {
                let want = if i % 2 == 0 { "room:a" } else { "room:b" };
                assert_eq!(channel, want.as_bytes());
                assert_eq!(payload, format!("line {i}").into_bytes());
            }
            other => panic!("expected message {i}, got {other:?}"),
        }
    }
    // PING is allowed in pub/sub mode and answers in order with messages.
    sub.conn.command(9, &["PING"]).unwrap();
    sub.flush().unwrap();
    assert!(matches!(
        sub.next().unwrap(),
        Event::Reply {
            tag: 9,
            reply: Ok(_)
        }
    ));
    // Unsubscribing one channel: messages on it stop.
    sub.conn.unsubscribe(10, &["room:a"]).unwrap();
    sub.flush().unwrap();
    assert!(matches!(
        sub.next().unwrap(),
        Event::Reply {
            tag: 10,
            reply: Ok(_)
        }
    ));
    assert_eq!(
        publisher.call(&["PUBLISH", "room:a", "gone"]),
        Ok(Value::Int(0))
    );
}

#[test]
fn error_replies_are_values_and_the_link_goes_on() {
    let redis = RedisServer::start();
    let mut link = Link::<u32>::connect(&redis.url()).unwrap();
    let e = link.call(&["NOSUCHCOMMAND", "x"]).unwrap_err();
    assert_eq!(e.code(), "ERR");
    assert!(e.message().contains("unknown command"), "{e}");
    link.call(&["SET", "s", "1"]).unwrap();
    let e = link.call(&["LPUSH", "s", "x"]).unwrap_err();
    assert_eq!(e.code(), "WRONGTYPE");
    assert_eq!(link.call(&["GET", "s"]), Ok(bulk("1")));
    // SET NX, the claim primitive: the second one loses with Nil.
    assert!(link
        .call(&["SET", "claim", "a", "NX", "EX", "30"])
        .unwrap()
        .is_ok());
    assert_eq!(
        link.call(&["SET", "claim", "b", "NX", "EX", "30"]),
        Ok(Value::Nil)
    );
}

#[test]
fn the_url_database_is_selected() {
    let redis = RedisServer::start();
    let mut db3 = Link::<u32>::connect(&format!("{}/3", redis.url())).unwrap();
    db3.call(&["SET", "where", "three"]).unwrap();
    let mut db0 = Link::<u32>::connect(&redis.url()).unwrap();
    assert_eq!(db0.call(&["GET", "where"]), Ok(Value::Nil));
    assert_eq!(db3.call(&["GET", "where"]), Ok(bulk("three")));
    let e = Link::<u32>::connect(&format!("{}/999", redis.url())).unwrap_err();
    assert!(matches!(e, RedisError::Select { db: 999, .. }), "{e}");
}

#[test]
fn passwords_noauth_and_wrongpass() {
    let redis = RedisServer::start_with(&["--requirepass", "s3cret"]);
    let e = Link::<u32>::connect(&redis.url()).unwrap_err();
    assert!(matches!(e, RedisError::NoAuth(_)), "{e}");
    assert!(!e.is_retryable());
    assert!(e.to_string().contains("redis://:PASSWORD@"), "{e}");

    let e =
        Link::<u32>::connect(&format!("redis://:wrong@127.0.0.1:{}", redis.port())).unwrap_err();
    assert!(
        matches!(e, RedisError::Auth(ref s) if s.code() == "WRONGPASS"),
        "{e}"
    );

    let mut link =
        Link::<u32>::connect(&format!("redis://:s3cret@127.0.0.1:{}", redis.port())).unwrap();
    assert_eq!(link.call(&["PING"]), Ok(Value::Status("PONG".into())));
    let mut link = Link::<u32>::connect(&format!(
        "redis://default:s3cret@127.0.0.1:{}",
        redis.port()
    ))
    .unwrap();
    assert_eq!(link.call(&["ECHO", "hi"]), Ok(bulk("hi")));

    // A password given to a server that has none.
    let open = RedisServer::start();
    let e = Link::<u32>::connect(&format!("redis://:pw@127.0.0.1:{}", open.port())).unwrap_err();
    assert!(matches!(e, RedisError::Auth(_)), "{e}");
}

/// A listener that answers anything like an HTTP server would.
fn http_peer() -> (u16, thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let t = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut buf = [0u8; 256];
        let _ = s.read(&mut buf);
        let _ = s.write_all(
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
    });
    (port, t)
}

#[test]
fn a_peer_that_is_not_redis_is_a_protocol_error() {
    let (port, t) = http_peer();
    let e = Link::<u32>::connect(&format!("redis://127.0.0.1:{port}")).unwrap_err();
    assert!(
        matches!(e, RedisError::Protocol(ref m) if m.contains("cannot start")),
        "{e}"
    );
    assert!(e.to_string().contains("does not speak Redis"), "{e}");
    t.join().unwrap();

    // A peer that accepts and closes without a word.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let t = thread::spawn(move || drop(listener.accept().unwrap()));
    let e = Link::<u32>::connect(&format!("redis://127.0.0.1:{port}")).unwrap_err();
    assert!(matches!(e, RedisError::Closed | RedisError::Io(_)), "{e}");
    t.join().unwrap();
}

#[test]
fn a_refused_port_is_a_typed_connect_error() {
    let port = free_port();
    let started = Instant::now();
    let e = Link::<u32>::connect(&format!("redis://127.0.0.1:{port}")).unwrap_err();
    assert!(matches!(e, RedisError::Connect { .. }), "{e}");
    assert!(e.is_refused() && e.is_retryable(), "{e}");
    assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
    assert!(started.elapsed() < TIMEOUT);
}

#[test]
fn a_reply_over_the_cap_breaks_the_link() {
    let redis = RedisServer::start();
    let mut link = Link::<u32>::connect(&redis.url()).unwrap();
    link.call(&["SET", "big", &"y".repeat(100_000)]).unwrap();
    let config = LinkConfig {
        max_reply: 10_000,
        ..LinkConfig::default()
    };
    let mut small = Link::<u32>::connect_with(&redis.url(), config).unwrap();
    small.conn.command(1, &["GET", "big"]).unwrap();
    small.flush().unwrap();
    let e = small.next().unwrap_err();
    assert!(
        matches!(e, RedisError::Protocol(ref m) if m.contains("limit")),
        "{e}"
    );
    assert!(small.conn.is_broken());
}

#[test]
fn output_toward_a_redis_that_does_not_read_is_capped() {
    let redis = RedisServer::start();
    let config = LinkConfig {
        max_pending_output: 64 * 1024,
        ..LinkConfig::default()
    };
    let mut link = Link::<u32>::connect_with(&redis.url(), config).unwrap();
    // Nothing is flushed: the queue grows until the cap refuses a command.
    let line = "z".repeat(1000);
    let mut queued = 0;
    let e = loop {
        match link.conn.command(queued, &["PUBLISH", "c", &line]) {
            Ok(()) => queued += 1,
            Err(e) => break e,
        }
        assert!(queued < 1000, "the cap never hit");
    };
    assert!(
        matches!(e, RedisError::LinkOverflow { cap: 65536, .. }),
        "{e}"
    );
    assert!(link.conn.pending_output() <= 64 * 1024);
    assert!(link.conn.is_broken());
    assert!(e.is_retryable());
}
