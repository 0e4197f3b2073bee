"""Memory per idle connection, plain TCP vs TLS vs WebSocket (issue 13).

Starts a server example, opens N idle connections from this process,
waits until the server has accepted them all (it polls /proc/PID/status
with a deadline), and reports the server's RSS growth per connection.

    python3 bench/python/idle_layers.py BIN_DIR [N [PEER_DIR]]

BIN_DIR holds release builds of multiconn_echo and chatroom; PEER_DIR, if
given, the bench crate's release binaries, whose rustls_mio_echo and
tokio_ws_chat (issue 13's peers) are measured the same way. Loopback only,
bounded in count and time; the servers are killed at the end.
"""

import os
import resource
import socket
import ssl
import subprocess
import sys
import tempfile
import time

BIN, N = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1000
PEERS = sys.argv[3] if len(sys.argv) > 3 else None
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def certs(d):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", f"{d}/key.pem", "-out", f"{d}/cert.pem"],
                   check=True, capture_output=True)
    return f"{d}/cert.pem", f"{d}/key.pem"


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def start(args):
    p = subprocess.Popen(args,
                         stdout=subprocess.PIPE, text=True)
    lines = [p.stdout.readline().strip()]
    if "--web" in args:
        lines.append(p.stdout.readline().strip())
    return p, lines


def addr_of(line):
    host, port = line.split("://")[-1].rstrip("/").rsplit(" ", 1)[-1].rsplit(":", 1)
    return host, int(port)


def measure(name, args, connect):
    p, lines = start(args)
    try:
        time.sleep(0.2)
        base = rss_kib(p.pid)
        conns = [connect(lines) for _ in range(N)]
        deadline = time.time() + 60
        # Settled: RSS stops growing for a while (every handshake done).
        last, stable = -1, 0
        while time.time() < deadline and stable < 5:
            time.sleep(0.2)
            now = rss_kib(p.pid)
            stable = stable + 1 if now == last else 0
            last = now
        per = (last - base) * 1024 / N
        print(f"| {name} | {N} | {base / 1024:.1f} MiB | {last / 1024:.1f} MiB | {per / 1024:.1f} KiB |")
        for c in conns:
            c.close()
    finally:
        p.kill()
        p.wait()


def main():
    d = tempfile.mkdtemp()
    cert, key = certs(d)
    ctx = ssl.create_default_context(cafile=cert)
    tls_flags = ["--tls-cert", cert, "--tls-key", key]
    echo, chat = f"{BIN}/multiconn_echo", f"{BIN}/chatroom"
    print("| server, connection kind | N | RSS before | RSS after | per connection |")
    print("|---|---|---|---|---|")

    def tcp(lines):
        return socket.create_connection(addr_of(lines[0][len("listening on "):]), timeout=20)

    def tls(lines):
        s = ctx.wrap_socket(tcp(lines), server_hostname="localhost")
        return s

    measure("multiconn_echo, TCP", [echo, "127.0.0.1", "0", "--max-connections", "65536"], tcp)
    measure("multiconn_echo, TLS 1.3", [echo, "127.0.0.1", "0", "--max-connections", "65536"] + tls_flags, tls)

    def ws(lines, line=1, path="/ws"):
        host, port = addr_of(lines[line])
        s = socket.create_connection((host, port), timeout=20)
        s.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   f"Origin: http://{host}:{port}\r\n\r\n").encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += s.recv(4096)
        return s

    measure("chatroom, TCP line client", [chat, "127.0.0.1", "0", "--max-clients", "65536"], tcp)
    measure("chatroom, WebSocket client", [chat, "127.0.0.1", "0", "--max-clients", "65536", "--web", "127.0.0.1:0"], ws)
    if PEERS:
        measure("rustls tlsserver-mio shape (peer), TLS 1.3", [f"{PEERS}/rustls_mio_echo", "127.0.0.1", "0"] + tls_flags, tls)
        measure("tokio-tungstenite chat (peer), WebSocket client", [f"{PEERS}/tokio_ws_chat", "127.0.0.1", "0"],
                lambda lines: ws(lines, 0, "/"))


if __name__ == "__main__":
    main()
