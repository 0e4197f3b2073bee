#!/usr/bin/env bash
# A repeatable mutation check (issue 15): put one deliberate bug at a time
# into src/ (each a one-line literal substitution, listed below), run the
# tests that should notice, and report which mutants survive. The source is
# restored after each mutant, also on Ctrl-C or failure.
#
#   scripts/mutants.sh            every mutant against its test set (~10 min)
#   scripts/mutants.sh 3 7        only mutants 3 and 7
#   MUTANT_TESTS="--test echo" scripts/mutants.sh    another test set for all
#
# Exit status: 0 if every mutant was killed, 1 if any survived, 2 if a
# mutant no longer applies (its line changed: update the table).
# A mutant "survives" when its tests pass; a test run longer than
# MUTANT_TIMEOUT seconds (default 300) counts as killed (a hang is noticed).
# docs/reliability.md ("Mutation check") lists the last run's survivors.
set -uo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

# The test sets. Reactor mutants run the suites about the loop's guarantees;
# codec mutants the codec's unit, doc-free and property tests.
REACTOR="--test echo --test ids --test limits --test flow_control --test close --test shutdown --test connect --test timers --test unix --test handler"
CODEC="--lib --test codec"
# The per-address limit is checked by the limits tests.
LIMITS="--test limits"

# mutant ID FILE TEXT REPLACEMENT TESTS WHAT: TEXT must occur exactly once in FILE.
IDS=() FILES=() FROMS=() TOS=() TESTSETS=() WHATS=()
mutant() {
  IDS+=("$1") FILES+=("$2") FROMS+=("$3") TOS+=("$4") TESTSETS+=("$5") WHATS+=("$6")
}
mutant 1 src/reactor/conn.rs 'if n < want && !self.hup {' 'if false {' "$REACTOR" \
  "a short read no longer proves the socket drained (a second read per message)"
mutant 2 src/reactor/conn.rs 'stuck && self.is_open() && !self.read_paused && !self.paused' 'false' "$REACTOR" \
  "a full, unconsumed inb is never closed as InputOverflow"
mutant 3 src/reactor/pass.rs 'self.core.conns.queue_ready(id); // fairness: the rest next pass' '// mutant: not re-queued' "$REACTOR" \
  "a connection out of read budget is not re-queued (lost readiness)"
mutant 4 src/reactor/conns.rs 'self.slab.get(id.key()).filter(|c| c.gen == id.gen())' 'self.slab.get(id.key())' "$REACTOR" \
  "no generation check in Conns::get"
mutant 5 src/reactor/conns.rs $'self.slab.get_mut(id.key()).filter(|c| c.gen == id.gen())\n' $'self.slab.get_mut(id.key())\n' "$REACTOR" \
  "no generation check in Conns::get_mut"
mutant 6 src/reactor/conns.rs 'self.slab.get_mut(id.key()).filter(|c| c.gen == id.gen())?;' 'self.slab.get_mut(id.key())?;' "$REACTOR" \
  "no generation check in Conns::entry"
mutant 7 src/reactor/conn.rs 'if mem::take(&mut self.fin_pending) {' 'if false {' "$REACTOR" \
  "write_eof never sends FIN"
mutant 8 src/reactor/conn.rs 'if !self.paused || self.outb.len() > low {' 'if true {' "$REACTOR" \
  "reading never resumes after backpressure"
mutant 9 src/reactor/conn.rs 'noted.flush = !self.outb.is_empty() || closing;' 'noted.flush = false && closing;' "$REACTOR" \
  "a writable event does not restart a blocked flush"
mutant 10 src/reactor/pass.rs 'if count >= max {' 'if count > max {' "$LIMITS" \
  "max_per_ip lets one connection too many in"
mutant 11 src/reactor/conns.rs '*e.get_mut() -= 1;' '*e.get_mut() -= 0;' "$LIMITS" \
  "a closed connection is never taken off its IP's count"
mutant 12 src/reactor/conn.rs 'if n < offered {' 'if false {' "$REACTOR" \
  "a short write no longer ends the flush (an extra write that returns EAGAIN)"
mutant 13 src/reactor/conn.rs $'(see `State::Lingering`).\n        let _ = self.stream.shutdown(Shutdown::Write);' '(mutant: no FIN before lingering).' "$REACTOR" \
  "a graceful close sends no FIN until the linger runs out"
mutant 14 src/codec/length.rs 'if len > self.max_len {' 'if len > self.max_len + 1 {' "$CODEC" \
  "LengthPrefixedCodec accepts one byte more than its maximum"
mutant 15 src/codec/length.rs 'Some(payload) => (HEADER + len, Some(Ok(payload))),' 'Some(payload) => (len, Some(Ok(payload))),' "$CODEC" \
  "LengthPrefixedCodec consumes too little"
mutant 16 src/codec/line.rs 'if line.len() > max {' 'if line.len() >= max {' "$CODEC" \
  "a line of exactly max_len is refused"
mutant 17 src/codec/line.rs 'self.discarding = false;' 'self.discarding = true;' "$CODEC" \
  "an over-long line is skipped forever"
mutant 18 src/codec/line.rs "if frame.last() == Some(&b'\\r') {" 'if false {' "$CODEC" \
  "LineCodec encodes a frame ending in CR"

timeout_secs=${MUTANT_TIMEOUT:-300}
only=("$@")
survivors=()
stale=()
killed=0
backup=$(mktemp -d)
current=""
restore() {
  if [ -n "$current" ]; then
    cp "$backup/original" "$current"
    current=""
  fi
}
trap 'restore; rm -rf "$backup"' EXIT
trap 'exit 130' INT TERM

if ! git diff --quiet -- src; then
  echo "src/ has uncommitted changes; commit or stash them first" >&2
  exit 2
fi

for i in "${!IDS[@]}"; do
  id=${IDS[$i]} file=${FILES[$i]} from=${FROMS[$i]} to=${TOS[$i]} tests=${TESTSETS[$i]} what=${WHATS[$i]}
  if [ ${#only[@]} -gt 0 ] && ! printf '%s\n' "${only[@]}" | grep -qx "$id"; then
    continue
  fi
  tests=${MUTANT_TESTS:-$tests}
  content=$(<"$file")
  rest=${content#*"$from"}
  if [[ "$content" != *"$from"* ]] || [[ "$rest" == *"$from"* ]]; then
    echo "mutant $id: its line is gone or not unique in $file; update the table" >&2
    stale+=("$id")
    continue
  fi
  cp "$file" "$backup/original"
  current=$file
  printf '%s\n' "${content/"$from"/"$to"}" >"$file"
  start=$(date +%s)
  # shellcheck disable=SC2086 # the test set is a list of arguments
  timeout "$timeout_secs" cargo test --quiet --no-fail-fast $tests >"$backup/log" 2>&1
  rc=$?
  restore
  secs=$(( $(date +%s) - start ))
  if [ $rc -eq 0 ]; then
    echo "mutant $id SURVIVED (${secs}s): $what"
    survivors+=("$id")
  else
    killers=$(grep -E '^    [a-z_0-9:]+$' "$backup/log" | sed 's/^ *//' | sort -u | tr '\n' ' ')
    if grep -q 'error\[E\|could not compile' "$backup/log"; then
      killers="(does not compile)"
    elif [ $rc -eq 124 ]; then
      killers="(timed out after ${timeout_secs}s) $killers"
    fi
    echo "mutant $id killed (${secs}s) by: ${killers:-?}: $what"
    killed=$((killed + 1))
  fi
done

echo "killed $killed; survived ${#survivors[@]}${survivors:+: ${survivors[*]}}; stale ${#stale[@]}${stale:+: ${stale[*]}}"
[ ${#stale[@]} -eq 0 ] || exit 2
[ ${#survivors[@]} -eq 0 ] || exit 1
