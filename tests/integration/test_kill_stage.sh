#!/usr/bin/env bash
# test_kill_stage.sh -- a worker killed mid-run costs nothing: the run completes with the same bytes as an
# undisturbed run. The reader or writer killed, or a SIGTERM to the supervisor, ends the whole run promptly:
# the supervisor exits non-zero, no stage process survives and no output appears under its final name.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

gm_require_build
D=$T/data
make_data "$D" --size 1200 1000
covs=("$D/cov_a.tif" "$D/cov_b.tif" "$D/cov_c.tif")
# 80 blocks of 128x128 with this delay per block and stage make a run last well over 5 s.
export GRIDMILL_DEBUG_DELAY_MS=${GM_KILL_DELAY_MS:-150}
KILL_AFTER=1.5  # seconds from the start of a run to the kill
RUN_EXTRA=()    # more options for start_run

# Starts a delayed run in the background into $T/NAME; sets SUP_PID, SUP_START (ns) and OUT.
start_run() {
  local name=$1
  OUT=$T/$name
  mkdir -p "$OUT"
  echo "   \$ GRIDMILL_DEBUG_DELAY_MS=$GRIDMILL_DEBUG_DELAY_MS gridmill predict --covariates ... --model softprob.json" \
    "--probabilities --out \$T/$name --workers 2 --block-size 128 &"
  "$GRIDMILL" predict --verbose --covariates "${covs[@]}" --model "$D/softprob.json" --probabilities --out "$OUT" \
    --workers 2 --block-size 128 "${RUN_EXTRA[@]}" >"$GM_LOGS/$name.out" 2>"$GM_LOGS/$name.err" &
  SUP_PID=$!
  SUP_START=$(date +%s%N)
  GM_BG_PIDS+=("$SUP_PID")
}

# Sets SUP_RC to the exit status of the background supervisor, which has ended (wait must run in this shell).
sup_status() {
  SUP_RC=0
  wait "$SUP_PID" || SUP_RC=$?
}

# Fails, naming run $1, if the supervisor has already ended.
expect_running() {
  if ! gm_alive "$SUP_PID"; then
    gm_stderr_tail "$1" >&2
    fail "$1: the run ended before the kill; is GRIDMILL_DEBUG_DELAY_MS honoured?"
  fi
}

# Waits until $KILL_AFTER seconds after the start of the run.
sleep_until_kill_time() {
  local now left
  now=$(date +%s%N)
  left=$(awk -v a="$KILL_AFTER" -v s="$SUP_START" -v n="$now" 'BEGIN { d = a - (n - s) / 1e9; printf "%.3f", (d > 0 ? d : 0) }')
  sleep "$left"
}

# Prints the pid of one running stage named $2 of run $1, waiting up to 10 s for it to appear.
find_stage() {
  local name=$1 stage=$2 pid
  for _ in $(seq 100); do
    pid=$(gm_tagged_pids "$stage" | sed -n 1p)
    if [ -n "$pid" ]; then
      echo "$pid"
      return 0
    fi
    expect_running "$name"
    sleep 0.1
  done
  gm_stderr_tail "$name" >&2
  fail "$name: no $stage process appeared within 10 s"
}

# finish NAME LIMIT WHAT: the supervisor must exit non-zero within LIMIT seconds of WHAT, leaving nothing.
finish() {
  local name=$1 limit=$2 what=$3 t0 secs
  t0=$(date +%s%N)
  if ! gm_wait_gone "$SUP_PID" "$limit"; then
    gm_stderr_tail "$name" >&2
    fail "$name: supervisor still running ${limit}s after $what"
  fi
  sup_status
  secs=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
  if [ "$SUP_RC" -eq 0 ]; then
    gm_stderr_tail "$name" >&2
    fail "$name: supervisor exited 0 after $what"
  fi
  ok "$name: supervisor exited $SUP_RC ${secs}s after $what"
  echo "   last stderr line: $(tail -n 1 "$GM_LOGS/$name.err" | cut -c1-200)"
  # Stages get half a second to finish dying after the supervisor has gone.
  for _ in 1 2 3 4 5; do
    [ -n "$(gm_stage_pids)" ] || break
    sleep 0.1
  done
  assert_no_stages "$name"
  expect_no_final_outputs "$name" "$OUT"
}

check "SIGKILL to workers mid-run: the run completes, byte-identical to an undisturbed run"
mkdir -p "$T/reference"
GRIDMILL_DEBUG_DELAY_MS=0 run_gridmill reference predict --covariates "${covs[@]}" --model "$D/softprob.json" \
  --probabilities --out "$T/reference" --workers 2 --block-size 128
expect_success reference
name=kill_workers
start_run "$name"
pid=$(find_stage "$name" gridmill-worker)
sleep_until_kill_time
expect_running "$name"
kill -KILL "$pid"
echo "   killed gridmill-worker pid $pid"
sleep 1.5
expect_running "$name"
pid=$(find_stage "$name" gridmill-worker)
kill -KILL "$pid"
echo "   killed gridmill-worker pid $pid"
gm_wait_gone "$SUP_PID" 60 || fail "$name: supervisor still running 60 s after the kills"
sup_status
[ "$SUP_RC" -eq 0 ] || { gm_stderr_tail "$name" >&2; fail "$name: supervisor exited $SUP_RC after worker kills"; }
grep -q "started pid" "$GM_LOGS/$name.err" || fail "$name: the supervisor did not replace a killed worker"
for f in class.tif probability.tif; do
  cmp "$T/reference/$f" "$OUT/$f" >&2 || fail "$name: $f differs from the undisturbed run"
done
ok "$name: completed; class.tif and probability.tif byte-identical to the undisturbed run"
echo "   $(grep -c 're-issuing' "$GM_LOGS/$name.err" || true) re-issue line(s) in the log"
assert_no_stages "$name"

name=kill_worker_2readers
check "SIGKILL to a worker mid-run with --readers 2: every reader re-issues at once, done within 15 s"
RUN_EXTRA=(--readers 2)
start_run "$name"
RUN_EXTRA=()
pid=$(find_stage "$name" gridmill-worker)
sleep_until_kill_time
expect_running "$name"
kill -KILL "$pid"
killed_at=$(date +%s%N)
echo "   killed gridmill-worker pid $pid"
gm_wait_gone "$SUP_PID" 15 || fail "$name: supervisor still running 15 s after the kill (a reader waited for --stall-timeout?)"
echo "   run ended $(( ($(date +%s%N) - killed_at) / 1000000 )) ms after the kill"
sup_status
[ "$SUP_RC" -eq 0 ] || { gm_stderr_tail "$name" >&2; fail "$name: supervisor exited $SUP_RC after the worker kill"; }
for f in class.tif probability.tif; do
  cmp "$T/reference/$f" "$OUT/$f" >&2 || fail "$name: $f differs from the undisturbed run"
done
ok "$name: completed; class.tif and probability.tif byte-identical to the undisturbed run"
assert_no_stages "$name"

for stage in gridmill-reader gridmill-writer; do
  name=kill_${stage#gridmill-}
  check "SIGKILL to $stage mid-run: supervisor exits non-zero within 5 s, nothing left"
  start_run "$name"
  pid=$(find_stage "$name" "$stage")
  sleep_until_kill_time
  expect_running "$name"
  gm_alive "$pid" || fail "$name: $stage (pid $pid) ended on its own before the kill"
  kill -KILL "$pid"
  echo "   killed $stage pid $pid"
  finish "$name" 5 "SIGKILL to $stage"
done

name=term_supervisor
check "SIGTERM to the supervisor mid-run: it exits non-zero within 3 s, nothing left"
start_run "$name"
find_stage "$name" gridmill-writer >/dev/null
sleep_until_kill_time
expect_running "$name"
kill -TERM "$SUP_PID"
echo "   sent SIGTERM to supervisor pid $SUP_PID"
finish "$name" 3 "SIGTERM to the supervisor"
