#!/usr/bin/env python3
"""One chat room on one chatroom process against the same room on two
processes federated through Redis (issue 12's benchmark), side by side.

    python3 bench/redis_fanout.py [--clients 1000] [--rate 1] [--duration 5] [--rounds 3]

Builds `examples/chatroom` (release) and the bench's `load`, starts a
redis-server on a free loopback port (persistence off) and, per round:

- single: one chatroom, K clients;
- federated: two `chatroom --redis` processes, K/2 clients on each.

The load generator (`load chat`, pinned to CPU 1 when `taskset` exists)
sends 64-byte lines at RATE per client per second with their send time in
them; with `--sync` it pauses around the measured window, and the CPU time
(utime + stime from /proc/PID/stat) of every server process and of
redis-server is read exactly around it. Reports deliveries/s, p50/p99
delivery latency, lost deliveries, CPU per delivery (ours, and Redis's),
and Redis's CPU per published line. Loopback only; every wait has a deadline.
"""

import argparse
import os
import shutil
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHAT = os.path.join(ROOT, "target", "release", "examples", "chatroom")
LOAD = os.path.join(ROOT, "bench", "target", "release", "load")
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def wait_line(proc, want, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise SystemExit(f"process ended before {want!r}")
        if line.startswith(want):
            return line.strip()
    raise SystemExit(f"no {want!r} within {timeout}s")


def start_redis():
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return proc, port
        except OSError:
            time.sleep(0.05)
    raise SystemExit("redis-server did not start")


def start_chat(extra):
    proc = subprocess.Popen(
        [CHAT, "127.0.0.1", "0", "--rate", "1000000", "--burst", "1000000", "--max-clients", "100000"] + extra,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    line = wait_line(proc, "listening on ")
    return proc, line.split()[-1]


def run_load(addrs, clients, rate, duration, servers):
    cmd = [LOAD, "chat", ",".join(addrs), "--clients", str(clients), "--rate", str(rate), "--warmup", "1",
           "--duration", str(duration), "--sync"]
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", "1"] + cmd
    load = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    wait_line(load, "paused", timeout=90)
    before = [cpu_s(p) for p in servers]
    load.stdin.write("go\n")
    load.stdin.flush()
    result = wait_line(load, "result ", timeout=duration + 60)
    after = [cpu_s(p) for p in servers]
    wait_line(load, "paused", timeout=30)
    load.stdin.write("quit\n")
    load.stdin.flush()
    load.wait(timeout=30)
    kv = dict(x.split("=", 1) for x in result.split()[1:])
    return kv, [b - a for a, b in zip(before, after)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=1.0)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-build", action="store_true")
    a = ap.parse_args()
    if not a.no_build:
        subprocess.run(["cargo", "build", "--release", "--quiet", "--example", "chatroom"], cwd=ROOT, check=True)
        subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "load"], cwd=os.path.join(ROOT, "bench"),
                       check=True)
    rows = []
    for rnd in range(a.rounds):
        for kind in ("single", "federated"):
            redis, port = start_redis()
            chats = []
            try:
                if kind == "single":
                    chats.append(start_chat([]))
                else:
                    url = f"redis://127.0.0.1:{port}"
                    chats = [start_chat(["--redis", url]), start_chat(["--redis", url])]
                pids = [c.pid for c, _ in chats] + [redis.pid]
                kv, cpu = run_load([addr for _, addr in chats], a.clients, a.rate, a.duration, pids)
            finally:
                for c, _ in chats:
                    c.terminate()
                    c.wait(timeout=10)
                redis.terminate()
                redis.wait(timeout=10)
            deliveries = int(kv["deliveries"])
            expected = int(kv["expected"])
            sent = int(kv["sent"])
            ours = sum(cpu[:-1])
            row = {
                "kind": kind,
                "round": rnd,
                "per_s": float(kv["deliveries_per_s"]),
                "p50": float(kv["p50_us"]),
                "p99": float(kv["p99_us"]),
                "lost": expected - deliveries,
                "ours_us": 1e6 * ours / max(deliveries, 1),
                "redis_us": 1e6 * cpu[-1] / max(deliveries, 1),
                "redis_line_us": 1e6 * cpu[-1] / max(sent, 1) if kind == "federated" else 0.0,
            }
            rows.append(row)
            print(
                f"{kind:9} round {rnd}: {row['per_s'] / 1e3:.0f}k deliveries/s, p50 {row['p50']:.0f} us, "
                f"p99 {row['p99']:.0f} us, lost {row['lost']}, CPU/delivery ours {row['ours_us']:.3f} us, "
                f"redis {row['redis_us']:.3f} us, redis CPU/line {row['redis_line_us']:.1f} us",
                flush=True,
            )

    def med(kind, key):
        vals = sorted(r[key] for r in rows if r["kind"] == kind)
        return vals[len(vals) // 2]

    print()
    print(f"K = {a.clients}, {a.rate} lines/s per client, {a.duration} s windows, median of {a.rounds} rounds")
    print()
    print("| setup | deliveries/s | p50 µs | p99 µs | lost | CPU µs/delivery (chatrooms) | CPU µs/delivery (redis) | redis CPU µs/line |")
    print("|---|---|---|---|---|---|---|---|")
    for kind, title in (("single", f"1 instance × {a.clients}"), ("federated", f"2 instances × {a.clients // 2} via Redis")):
        print(
            f"| {title} | {med(kind, 'per_s') / 1e3:.0f}k | {med(kind, 'p50'):.0f} | {med(kind, 'p99'):.0f} | "
            f"{med(kind, 'lost')} | {med(kind, 'ours_us'):.3f} | {med(kind, 'redis_us'):.3f} | "
            f"{med(kind, 'redis_line_us'):.1f} |"
        )


if __name__ == "__main__":
    sys.exit(main())
