//! The federated room's pure state machine (`examples/chatroom/federation/room.rs`),
//! unit-tested without sockets: its tests live in that file.

#![cfg(feature = "redis")]
#![allow(dead_code)]

#[path = "../examples/chatroom/federation/room.rs"]
mod room;
