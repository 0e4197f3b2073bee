//! The chat peer: tokio's chat example (a shared map of per-peer unbounded
//! channels behind a `tokio::sync::Mutex`, a task per client, `Framed` with
//! `LinesCodec`), on a `current_thread` runtime, speaking enough of our chat
//! protocol for the same load: no username prompt, the name is the peer
//! address, `* welcome NAME` on connect, `* NAME joined` / `* NAME left` to
//! the others, and each line relayed to every other client as `<NAME> LINE`.
//! `tokio_chat [HOST PORT]`; SIGTERM/SIGINT stop it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use futures::SinkExt;
use futures::StreamExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, Mutex};
use tokio_util::codec::{Framed, LinesCodec};

type Tx = mpsc::UnboundedSender<String>;

/// Every connected client's sending half, as in tokio's example.
struct Shared {
    peers: HashMap<SocketAddr, Tx>,
}

impl Shared {
    /// Sends `message` to every client but `sender`.
    fn broadcast(&mut self, sender: SocketAddr, message: &str) {
        for (addr, tx) in self.peers.iter() {
            if *addr != sender {
                let _ = tx.send(message.into());
            }
        }
    }
}

async fn process(state: Arc<Mutex<Shared>>, stream: TcpStream, addr: SocketAddr) {
    let mut lines = Framed::new(stream, LinesCodec::new_with_max_length(4096));
    let name = addr.to_string();
    let (tx, mut rx) = mpsc::unbounded_channel();
    {
        let mut state = state.lock().await;
        state.peers.insert(addr, tx);
        state.broadcast(addr, &format!("* {name} joined"));
    }
    // Welcomed once in the map: from here on it receives every line.
    if lines.send(format!("* welcome {name}")).await.is_err() {
        state.lock().await.peers.remove(&addr);
        return;
    }
    loop {
        tokio::select! {
            Some(msg) = rx.recv() => {
                if lines.send(&msg).await.is_err() {
                    break;
                }
            }
            result = lines.next() => match result {
                Some(Ok(msg)) => {
                    let msg = msg.trim_end_matches('\r');
                    if msg.is_empty() {
                        continue;
                    }
                    let mut state = state.lock().await;
                    state.broadcast(addr, &format!("<{name}> {msg}"));
                }
                Some(Err(_)) | None => break,
            },
        }
    }
    let mut state = state.lock().await;
    state.peers.remove(&addr);
    state.broadcast(addr, &format!("* {name} left"));
}

fn main() -> std::io::Result<()> {
    let (host, port) = mio_selectors_bench::host_port();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind((host.as_str(), port)).await?;
        let state = Arc::new(Mutex::new(Shared {
            peers: HashMap::new(),
        }));
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        mio_selectors_bench::say_listening(listener.local_addr()?);
        loop {
            tokio::select! {
                _ = term.recv() => return Ok(()),
                _ = int.recv() => return Ok(()),
                accepted = listener.accept() => {
                    let Ok((stream, addr)) = accepted else { continue };
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(process(Arc::clone(&state), stream, addr));
                }
            }
        }
    })
}
