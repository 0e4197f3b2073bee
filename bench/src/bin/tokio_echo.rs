//! tokio's echo: a `current_thread` runtime, a task per connection, a 4 KiB
//! buffer and a `read` / `write_all` loop (tokio's own echo example).
//! `tokio_echo [HOST PORT]`; SIGTERM/SIGINT stop it.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

fn main() -> std::io::Result<()> {
    let (host, port) = mio_selectors_bench::host_port();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind((host.as_str(), port)).await?;
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        mio_selectors_bench::say_listening(listener.local_addr()?);
        loop {
            tokio::select! {
                _ = term.recv() => return Ok(()),
                _ = int.recv() => return Ok(()),
                accepted = listener.accept() => {
                    let Ok((mut socket, _)) = accepted else { continue };
                    let _ = socket.set_nodelay(true);
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 4096];
                        loop {
                            let n = match socket.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            if socket.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    });
                }
            }
        }
    })
}
