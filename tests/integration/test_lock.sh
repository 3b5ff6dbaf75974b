#!/usr/bin/env bash
# test_lock.sh -- one run per output folder: a second gridmill started into the --out of a running one fails at
# once with one line naming the folder and the first run's pid, touches none of its files, and the first run
# completes with the bytes of an undisturbed run. A SIGKILLed run never blocks the next one (the kernel drops
# the lock with the last process of the run).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

gm_require_build
D=$T/data
make_data "$D" --size 1200 1000
covs=("$D/cov_a.tif" "$D/cov_b.tif" "$D/cov_c.tif")
args=(predict --covariates "${covs[@]}" --model "$D/softprob.json" --probabilities --workers 2 --block-size 128)

check "an undisturbed run, the reference"
run_gridmill reference "${args[@]}" --out "$T/reference"
expect_success reference

# Starts a slowed run into $T/$1 in the background; sets SUP_PID.
start_slow() {
  mkdir -p "$T/$1"
  GRIDMILL_DEBUG_DELAY_MS_WRITER=${GM_LOCK_DELAY_MS:-150} \
    "$GRIDMILL" "${args[@]}" --verbose --out "$T/$1" >"$GM_LOGS/$1.out" 2>"$GM_LOGS/$1.err" &
  SUP_PID=$!
  GM_BG_PIDS+=("$SUP_PID")
}

# Waits up to 10 s for $T/$1/.gridmill-lock to hold pid $2.
wait_lock() {
  local _
  for _ in $(seq 200); do
    [ "$(cat "$T/$1/.gridmill-lock" 2>/dev/null)" = "$2" ] && return 0
    sleep 0.05
  done
  fail "$1: $T/$1/.gridmill-lock never named pid $2"
}

check "a second run into the folder of a running one fails at once, naming it and the first's pid"
start_slow busy
first=$SUP_PID
wait_lock busy "$first"
sleep 1
gm_alive "$first" || { gm_stderr_tail busy >&2; fail "busy: the first run ended before the second started"; }
before=$(find "$T/busy" -mindepth 1 -printf '%p %i\n' | sort)
t0=$(date +%s%N)
run_gridmill second "${args[@]}" --out "$T/busy"
secs=$(( ($(date +%s%N) - t0) / 1000000 ))
expect_failure second
[ "$secs" -lt 5000 ] || fail "second: took ${secs} ms to fail, expected at once"
expect_stderr second "^gridmill: $T/busy: in use by another run \\(pid $first\\)\$" "the folder and the first run's pid"
[ "$(wc -l <"$GM_LOGS/second.err")" -eq 1 ] || { gm_stderr_tail second >&2; fail "second: more than one line on stderr"; }
ok "second: failed in ${secs} ms with one line"
gm_alive "$first" || fail "busy: the first run ended while the second was refused"
after=$(find "$T/busy" -mindepth 1 -printf '%p %i\n' | sort)
# the first run keeps writing: only compare the entries that existed before the second run started
missing=$(comm -23 <(echo "$before") <(echo "$after") | grep -v -e '\.part' -e '\.gridmill-stats/' -e 'ledger' || true)
[ -z "$missing" ] || fail "second: entries of the first run changed or vanished: $missing"
ok "second: removed nothing of the first run's"
gm_wait_gone "$first" "$GM_RUN_TIMEOUT" || fail "busy: the first run did not finish"
rc=0
wait "$first" || rc=$?
[ "$rc" -eq 0 ] || { gm_stderr_tail busy >&2; fail "busy: the first run exited $rc"; }
same reference busy class.tif probability.tif
assert_no_stages busy

check "a SIGKILLed run leaves no lock behind: the next run into its folder is not blocked"
start_slow killed
wait_lock killed "$SUP_PID"
reader_endpoints
sleep 1
kill -KILL "$SUP_PID"
wait "$SUP_PID" 2>/dev/null || true
echo "   killed the supervisor, pid $SUP_PID; its stages end with it"
gm_wait_stages_gone
case $CONTROL in ipc://*) rm -rf "$(dirname "${CONTROL#ipc://}")" ;; esac  # a SIGKILLed supervisor cannot
run_gridmill rerun "${args[@]}" --out "$T/killed"
expect_success rerun
same reference killed class.tif probability.tif
assert_no_stages rerun
