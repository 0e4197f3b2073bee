//! The chat application: the protocol of `docs/chat-protocol.md` as a
//! [`Handler`](mio_selectors::Handler) on the library's public API. The
//! tests run it in-process (they include this directory by path), and
//! `main.rs` runs it from the command line.

mod commands;
mod config;
mod federated;
// `--redis`: the room shared through Redis. Declared here rather than in
// main.rs so that the tests which include chat/ by path compile it too.
#[path = "../federation/mod.rs"]
pub mod federation;
mod group;
mod notices;
mod server;

pub use config::ChatConfig;
#[allow(unused_imports)] // `--reactors N` uses them; the tests run one reactor
pub use group::{FedSetup, GroupRoom, Shared};
#[allow(unused_imports)] // `Client` is named by the tests only
pub use server::{ChatServer, Client};
