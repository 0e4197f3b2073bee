#!/usr/bin/env python3
"""The tutorial's multiconn echo server (selectors, in the Real Python style),
rewritten for the benchmark: accept_wrapper registers each client for
EVENT_READ | EVENT_WRITE with a SimpleNamespace of (addr, inb, outb);
service_connection reads with recv(1024) and appends to outb when readable,
and sends outb when writable. The selector is level-triggered, as in Python.

Usage: python3 multiconn_server.py [HOST PORT]   (default 127.0.0.1 0)
Prints `listening on HOST:PORT` once ready; SIGTERM/SIGINT stop it (exit 0).

Two deviations from the tutorial, both for the benchmark: TCP_NODELAY on each
client (as every server in the harness), and no print per connection.
"""
import selectors
import signal
import socket
import sys
import types

sel = selectors.DefaultSelector()


def stop(signum, frame):
    # Raised out of select() (PEP 475 would otherwise retry it).
    raise SystemExit(0)


def accept_wrapper(sock):
    conn, addr = sock.accept()
    conn.setblocking(False)
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    data = types.SimpleNamespace(addr=addr, inb=b"", outb=b"")
    sel.register(conn, selectors.EVENT_READ | selectors.EVENT_WRITE, data=data)


def service_connection(key, mask):
    sock = key.fileobj
    data = key.data
    if mask & selectors.EVENT_READ:
        recv_data = sock.recv(1024)
        if recv_data:
            data.outb += recv_data
        else:
            sel.unregister(sock)
            sock.close()
            return
    if mask & selectors.EVENT_WRITE and data.outb:
        sent = sock.send(data.outb)
        data.outb = data.outb[sent:]


def main():
    args = sys.argv[1:]
    if len(args) not in (0, 2):
        print("usage: multiconn_server.py [HOST PORT]", file=sys.stderr)
        sys.exit(2)
    host, port = (args[0], int(args[1])) if args else ("127.0.0.1", 0)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((host, port))
    lsock.listen()
    lsock.setblocking(False)
    sel.register(lsock, selectors.EVENT_READ, data=None)
    h, p = lsock.getsockname()[:2]
    print(f"listening on {h}:{p}", flush=True)
    try:
        while True:
            try:
                events = sel.select(timeout=None)
            except InterruptedError:
                continue
            for key, mask in events:
                if key.data is None:
                    accept_wrapper(key.fileobj)
                else:
                    try:
                        service_connection(key, mask)
                    except (ConnectionResetError, BrokenPipeError):
                        sel.unregister(key.fileobj)
                        key.fileobj.close()
    finally:
        sel.close()


if __name__ == "__main__":
    main()
