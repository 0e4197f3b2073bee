#!/usr/bin/env bash
# The benchmark harness of issue 5, from one command (run from anywhere):
#
#   bash bench/run.sh            # full matrix, 5 rounds (~40 min): docs/benchmarks.md + docs/benchmarks.svg
#   bash bench/run.sh --smoke    # ~1 min, for CI: <bench target dir>/smoke/benchmarks.{md,svg}
#
# Extra flags go to the harness (--rounds N, --duration S, --reactors 1,2,4,
# --redis-reactors N, --only a,b, --no-python, --no-cross-check, --out DIR). It first builds
# everything it measures, in the target directories cargo reports (so
# CARGO_TARGET_DIR and build.target-dir are honoured and no stale binary is
# measured): the bench crate in release, and examples/multiconn_echo and
# examples/chatroom (release; the smoke run uses the debug builds, which
# `cargo test` in CI has already made). Needs taskset (util-linux); perf stat
# with syscall tracepoints if it works, else strace -c, else the system-call
# meter is skipped with a note. Exit status: the harness's (1 on a failed
# run or a missed count target).
set -euo pipefail
cd "$(dirname "$0")/.."
smoke=0
for a in "$@"; do [ "$a" = --smoke ] && smoke=1; done
command -v taskset >/dev/null || { echo "bench: taskset (util-linux) is required" >&2; exit 1; }
if [ "$(nproc)" -lt 2 ]; then echo "note: fewer than 2 cores; server and load share core 0" >&2; fi

# Where cargo builds for a manifest: `target_directory` of cargo metadata.
target_dir() {
  cargo metadata --format-version 1 --no-deps --offline --manifest-path "$1" \
    | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p'
}
bench_target=$(target_dir bench/Cargo.toml)
root_target=$(target_dir Cargo.toml)
[ -n "$bench_target" ] && [ -n "$root_target" ] || { echo "bench: cargo metadata gave no target_directory" >&2; exit 1; }

cargo build --release --quiet --manifest-path bench/Cargo.toml --bins
if [ "$smoke" = 1 ]; then profile=debug; release=(); else profile=release; release=(--release); fi
cargo build "${release[@]}" --quiet --example chatroom --example multiconn_echo
ulimit -n 20000 2>/dev/null || true
cmd="bash bench/run.sh $*"
exec "$bench_target/release/harness" \
  --bin "$bench_target/release" \
  --chatroom "$root_target/$profile/examples/chatroom" \
  --echo-example "$root_target/$profile/examples/multiconn_echo" \
  --command "${cmd% }" "$@"
