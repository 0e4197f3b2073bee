#!/usr/bin/env bash
# The benchmark harness of issue 5, from one command (run from anywhere):
#
#   bash bench/run.sh            # full matrix, 5 rounds (~40 min): docs/benchmarks.md + docs/benchmarks.svg
#   bash bench/run.sh --smoke    # ~1 min, for CI: bench/target/smoke/benchmarks.{md,svg}
#
# Extra flags go to the harness (--rounds N, --duration S, --no-python,
# --no-cross-check, --out DIR). Builds the bench crate and the chatroom
# example in release first (the smoke run reuses the debug chatroom that
# `cargo test` already built, to keep CI short). Needs taskset (util-linux);
# perf stat with syscall tracepoints is used if it works, else strace -c,
# else the system-call meter is skipped with a note.
set -euo pipefail
cd "$(dirname "$0")/.."
smoke=0
for a in "$@"; do [ "$a" = --smoke ] && smoke=1; done
command -v taskset >/dev/null || { echo "bench: taskset (util-linux) is required" >&2; exit 1; }
if [ "$(nproc)" -lt 2 ]; then echo "note: fewer than 2 cores; server and load share core 0" >&2; fi
cargo build --release --quiet --manifest-path bench/Cargo.toml --bins
if [ "$smoke" = 1 ]; then
  cargo build --quiet --example chatroom
  chatroom=target/debug/examples/chatroom
else
  cargo build --release --quiet --example chatroom
  chatroom=target/release/examples/chatroom
fi
ulimit -n 20000 2>/dev/null || true
cmd="bash bench/run.sh $*"
exec bench/target/release/harness --chatroom "$chatroom" --command "${cmd% }" "$@"
