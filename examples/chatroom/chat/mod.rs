//! The chat application.

mod server;

pub use server::ChatServer;
