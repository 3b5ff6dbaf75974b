#!/usr/bin/env bash
# test_quiet_output.sh -- the supervisor's output is a GDAL utility's (issue 16, item 3): by default the progress,
# warnings, errors, the end table and verdict, nothing else; --verbose adds every stage's log line; -q leaves
# errors only; DIR/gridmill.log always holds every stage's lines (also with -q); a failure is one line, exits
# non-zero, and leaves no --out folder it created with nothing in it.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

gm_require_build
D=$T/data
make_data "$D" --size 300 300
covs=("$D/cov_a.tif" "$D/cov_b.tif" "$D/cov_c.tif")
export GM_PLAIN=1  # what a user sees: run_gridmill adds no --verbose

# log_has NAME DIR: DIR/gridmill.log holds info lines of the reader, the writer and a worker.
log_has() {
  local s
  for s in reader writer worker; do
    grep -qE "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z gridmill-$s\[[0-9]+\] info: " "$2/gridmill.log" ||
      fail "$1: $2/gridmill.log holds no info line of gridmill-$s"
  done
  ok "$1: gridmill.log holds $(wc -l <"$2/gridmill.log") lines, info lines of every stage among them"
}

check "default: progress, table and verdict on stdout; nothing on stderr; every stage's lines in DIR/gridmill.log"
run_gridmill plain predict --covariates "${covs[@]}" --model "$D/softprob.json" --workers 2 --out "$T/plain"
expect_success plain
if [ -s "$GM_LOGS/plain.err" ]; then
  sed 's/^/   | /' "$GM_LOGS/plain.err" >&2
  fail "plain: a successful run wrote on stderr"
fi
grep -q '^0\.\.\.10\.\.\.20.*100 - done\.$' "$GM_LOGS/plain.out" || fail "plain: no GDAL-style progress on stdout"
grep -q '^verdict: ' "$GM_LOGS/plain.out" || fail "plain: no verdict on stdout"
! grep -qE ' (info|debug): ' "$GM_LOGS/plain.out" || fail "plain: log lines on stdout"
ok "plain: stderr empty; stdout: $(head -n 1 "$GM_LOGS/plain.out")"
log_has plain "$T/plain"

check "-q: nothing on stdout or stderr; gridmill.log still whole"
run_gridmill quiet predict --covariates "${covs[@]}" --model "$D/softprob.json" --workers 2 --out "$T/quiet" -q
expect_success quiet
[ ! -s "$GM_LOGS/quiet.err" ] && [ ! -s "$GM_LOGS/quiet.out" ] ||
  fail "quiet: -q printed: $(cat "$GM_LOGS/quiet.out" "$GM_LOGS/quiet.err" | head -n 3)"
ok "quiet: nothing printed"
log_has quiet "$T/quiet"

check "--verbose: every stage's log line on stderr, with time, stage, pid and level"
run_gridmill verbose predict --covariates "${covs[@]}" --model "$D/softprob.json" --workers 2 --out "$T/verbose" \
  --verbose
expect_success verbose
for s in reader writer worker; do
  grep -qE "^[0-9]{4}-[0-9-]{5}T[0-9:.]+Z gridmill-$s\[[0-9]+\] info: " "$GM_LOGS/verbose.err" ||
    fail "verbose: no info line of gridmill-$s on stderr"
done
ok "verbose: $(wc -l <"$GM_LOGS/verbose.err") log lines on stderr"

check "a warning is shown by default as STAGE: warning: MESSAGE"
mkdir -p "$T/warned"
echo garbage >"$T/warned/.gridmill-ledger"
run_gridmill warned predict --covariates "${covs[@]}" --model "$D/softprob.json" --workers 2 --out "$T/warned"
expect_success warned
want="gridmill-writer: warning: $T/warned/.gridmill-ledger: not a ledger of this gridmill (no tile hashes); it vouches for no tile, every tile is computed again"
[ "$(cat "$GM_LOGS/warned.err")" = "$want" ] || {
  sed 's/^/   | /' "$GM_LOGS/warned.err" >&2
  fail "warned: stderr is not the one warning line"
}
ok "warned: stderr is the one line: ${want//$T/\$T}"

check "bad input: one line, non-zero exit, no --out folder left behind"
run_gridmill bad predict --covariates "$D/cov_a.tif" --model "$D/softprob.json" --workers 2 --out "$T/bad"
expect_failure bad
[ "$(wc -l <"$GM_LOGS/bad.err")" -eq 1 ] || {
  sed 's/^/   | /' "$GM_LOGS/bad.err" >&2
  fail "bad: more than one line on stderr"
}
grep -qE '^gridmill-reader: .*softprob\.json: the model expects 4 features, the covariates have 2 bands$' \
  "$GM_LOGS/bad.err" || fail "bad: the line does not name the model and the mismatch: $(cat "$GM_LOGS/bad.err")"
[ ! -e "$T/bad" ] || fail "bad: $T/bad left behind: $(ls -A "$T/bad" | paste -sd' ' -)"
ok "bad: $(sed "s|$T|\$T|g" "$GM_LOGS/bad.err"); no folder left"
assert_no_stages bad

check "a stage dying mid-run: the supervisor's one line; the stages it stops say nothing more"
GRIDMILL_DEBUG_KILL_WRITER=commit:1 run_gridmill killed predict --covariates "${covs[@]}" --model "$D/softprob.json" \
  --workers 2 --tile-size 128 --out "$T/killed"
expect_failure killed
[ "$(wc -l <"$GM_LOGS/killed.err")" -eq 1 ] && grep -qE '^gridmill: writer \(pid [0-9]+\) was killed by signal SIGKILL; stopping the run$' \
  "$GM_LOGS/killed.err" || {
  sed 's/^/   | /' "$GM_LOGS/killed.err" >&2
  fail "killed: stderr is not the supervisor's one line"
}
grep -qE "gridmill\[[0-9]+\] note: writer \(pid [0-9]+\) was killed" "$T/killed/gridmill.log" || fail "killed: the supervisor's line is not in gridmill.log"
ok "killed: $(cat "$GM_LOGS/killed.err"); also in gridmill.log, with $(wc -l <"$T/killed/gridmill.log") lines"
gm_wait_stages_gone
assert_no_stages killed
