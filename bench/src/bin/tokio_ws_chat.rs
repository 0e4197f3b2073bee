//! The WebSocket chat peer (issue 13): tokio-tungstenite's own broadcast
//! server example in shape (a `HashMap` of per-peer *unbounded* futures
//! channels behind a `std::sync::Mutex`, one task per connection,
//! `accept_async`, the stream split into a sink fed by `rx.forward` and a
//! source whose `try_for_each` pushes each message into every other peer's
//! channel, the two joined with `future::select`), written for this bench.
//!
//! What differs from the example, so that the same load runs against it and
//! against `chatroom --web`: a `current_thread` runtime (the server is pinned
//! to one core, as ours runs one reactor), `* welcome NAME` queued first on
//! each connection, each text message relayed as one text message
//! `<NAME> TEXT` (one allocation per incoming message, then a reference-
//! counted clone per recipient, as the example clones its `Message`), only
//! text relayed (the example would forward pings and closes too), no
//! `println!` per message, and SIGTERM/SIGINT stop it. Like the example it
//! checks no `Origin`, takes any path, and never bounds what it queues for a
//! slow reader.
//!
//! `tokio_ws_chat [HOST PORT]`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use futures::channel::mpsc::{unbounded, UnboundedSender};
use futures::{future, pin_mut, StreamExt, TryStreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{signal, SignalKind};
use tokio_tungstenite::tungstenite::protocol::Message;

type Tx = UnboundedSender<Message>;
type PeerMap = Arc<Mutex<HashMap<SocketAddr, Tx>>>;

async fn handle_connection(peers: PeerMap, raw: TcpStream, addr: SocketAddr) {
    let Ok(ws) = tokio_tungstenite::accept_async(raw).await else {
        return;
    };
    let name = addr.to_string();
    let (tx, rx) = unbounded();
    // First in its own channel, so it precedes every relayed line.
    let _ = tx.unbounded_send(Message::text(format!("* welcome {name}")));
    peers.lock().unwrap().insert(addr, tx);

    let (outgoing, incoming) = ws.split();
    let relay_incoming = incoming.try_for_each(|msg| {
        if let Message::Text(text) = msg {
            let line = Message::text(format!("<{name}> {}", text.as_str()));
            let peers = peers.lock().unwrap();
            for (peer, tx) in peers.iter() {
                if *peer != addr {
                    let _ = tx.unbounded_send(line.clone());
                }
            }
        }
        future::ok(())
    });
    let send_to_this_peer = rx.map(Ok).forward(outgoing);
    pin_mut!(relay_incoming, send_to_this_peer);
    future::select(relay_incoming, send_to_this_peer).await;
    peers.lock().unwrap().remove(&addr);
}

fn main() -> std::io::Result<()> {
    let (host, port) = mio_selectors_bench::host_port();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind((host.as_str(), port)).await?;
        let peers = PeerMap::default();
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
                    tokio::spawn(handle_connection(Arc::clone(&peers), stream, addr));
                }
            }
        }
    })
}
