# lib.sh -- helpers shared by the gridmill integration tests; tests source it, nobody runs it.
#
# A test is run as `test_x.sh [DIR]` (or with TMPDIR_TEST=DIR): DIR is its own fresh temporary folder.
# Without one it makes its own and removes it at exit. Sourcing this file sets:
#   GM_ROOT GM_BUILD GRIDMILL GM_ORACLES PYTHON  repo root, stage binaries, supervisor, oracles, interpreter
#   T GM_LOGS                                    the test's folder and its logs/ subfolder
#   GRIDMILL_BIN                                 exported: the supervisor takes the stages from $BUILD
#   GM_TEST_TAG                                  exported: every process the test starts inherits it, so the
#                                                test tells its own gridmill-* processes from anyone else's
# and installs an EXIT trap that kills whatever the test started. Tests run one at a time.
# shellcheck shell=bash

GM_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PYTHON=${PYTHON:-/usr/bin/python3}
BUILD=${BUILD:-build}
case $BUILD in
  /*) GM_BUILD=$BUILD ;;
  *) GM_BUILD=$GM_ROOT/$BUILD ;;
esac
export PYTHON
export BUILD=$GM_BUILD
export GRIDMILL_BIN=$GM_BUILD  # the supervisor runs the stages found here
GRIDMILL=$GM_ROOT/scripts/gridmill
GM_ORACLES=$GM_ROOT/tests/oracles
GM_STAGES=(gridmill-reader gridmill-worker gridmill-writer gridmill-hub)
GM_RUN_TIMEOUT=${GM_RUN_TIMEOUT:-120}  # seconds one gridmill run may take before it counts as hung
GM_TEST_NAME=$(basename "$0" .sh)
GM_RC=0
GM_BG_PIDS=()

T=${1:-${TMPDIR_TEST:-}}
GM_OWN_TMP=0
if [ -z "$T" ]; then
  T=$(mktemp -d "${TMPDIR:-/tmp}/$GM_TEST_NAME.XXXXXX")
  GM_OWN_TMP=1
fi
mkdir -p "$T"
T=$(cd "$T" && pwd)
GM_LOGS=$T/logs
mkdir -p "$GM_LOGS"
GM_TEST_TAG=gmtest-$$-$RANDOM$RANDOM
export GM_TEST_TAG

# Prints what the test checks next.
check() { echo "-- $*"; }
# Prints a passed check.
ok() { echo "   ok: $*"; }
# Prints the failed check and why, then exits 1.
fail() {
  echo "FAIL: $GM_TEST_NAME: $*" >&2
  exit 1
}

# Prints the pids of live processes named $1 (exact name) that this test started, found by GM_TEST_TAG
# in their environment. Zombies have no environment left and so never count.
gm_tagged_pids() {
  local pid
  for pid in $(pgrep -x "$1" || true); do
    if grep -qzx "GM_TEST_TAG=$GM_TEST_TAG" "/proc/$pid/environ" 2>/dev/null; then
      echo "$pid"
    fi
  done
}

# Prints the pids of every live gridmill stage this test started.
gm_stage_pids() {
  local s
  for s in "${GM_STAGES[@]}"; do gm_tagged_pids "$s"; done
}

# Returns 0 while process $1 exists and is not a zombie.
gm_alive() {
  local state
  kill -0 "$1" 2>/dev/null || return 1
  state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null || echo Z)
  [ "$state" != Z ]
}

# Waits up to $2 seconds for process $1 to end. Returns 0 if it ended, 1 if it is still there.
gm_wait_gone() {
  local pid=$1 deadline
  deadline=$(( $(date +%s%N) + $(awk -v s="$2" 'BEGIN { printf "%.0f", s * 1e9 }') ))
  while gm_alive "$pid"; do
    [ "$(date +%s%N)" -lt "$deadline" ] || return 1
    sleep 0.05
  done
  return 0
}

# Waits up to 2 s for every gridmill stage this test started to exit (stages end a moment after their
# supervisor); returns at once when none is left.
gm_wait_stages_gone() {
  local _
  for _ in $(seq 40); do
    [ -z "$(gm_stage_pids)" ] && return 0
    sleep 0.05
  done
  return 0
}

# same REF NAME FILES...: fails unless each of FILES in $T/NAME is byte-identical to the one in $T/REF.
same() {
  local ref=$1 name=$2 f
  shift 2
  for f in "$@"; do
    [ -f "$T/$ref/$f" ] || fail "$ref: $f missing"
    [ -f "$T/$name/$f" ] || fail "$name: $f missing"
    cmp "$T/$ref/$f" "$T/$name/$f" >&2 || fail "$name/$f differs from $ref/$f"
  done
  ok "$name: $* byte-identical to $ref"
}

# Fails, naming $1 (the situation), if any gridmill-reader/worker/writer this test started is still running.
assert_no_stages() {
  local left
  left=$(gm_stage_pids | paste -sd, -)
  if [ -n "$left" ]; then
    ps -o pid,ppid,stat,etime,args -p "$left" >&2 || true
    fail "$1: gridmill processes left running: $left"
  fi
  local others s pid
  others=$(for s in "${GM_STAGES[@]}"; do pgrep -x "$s" || true; done |
    while read -r pid; do if gm_alive "$pid"; then echo "$pid"; fi; done | paste -sd' ' -)
  [ -z "$others" ] || echo "   note: gridmill processes not started by this test are running: $others"
  ok "$1: no gridmill-reader/worker/writer left"
}

# Fails unless the supervisor and the three stage binaries exist.
gm_require_build() {
  [ -x "$GRIDMILL" ] || fail "supervisor $GRIDMILL missing or not executable"
  local s
  for s in "${GM_STAGES[@]}"; do
    [ -x "$GM_BUILD/$s" ] || fail "$GM_BUILD/$s not built (make all)"
  done
}

# gm_cpu_paths: sets EVAL_PATHS to the evaluator paths this CPU runs besides portable (avx2, avx512), for
# tests that force each GRIDMILL_EVALUATOR in turn.
gm_cpu_paths() {
  EVAL_PATHS=()
  if grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo; then EVAL_PATHS+=(avx2); fi
  if grep -qw avx512f /proc/cpuinfo; then EVAL_PATHS+=(avx512); fi
}

# make_data DIR [make_data.py options]: generates the covariates and models into DIR.
make_data() {
  local dir=$1
  shift
  "$PYTHON" "$GM_ORACLES/make_data.py" "$dir" "$@" >"$GM_LOGS/make_data.log" 2>&1 ||
    fail "make_data.py $dir $*: $(tail -n 5 "$GM_LOGS/make_data.log")"
}

# make_run_data DIR [make_run_data.py options]: generates the full job's polygons, covariates and truth into DIR.
make_run_data() {
  local dir=$1
  shift
  "$PYTHON" "$GM_ORACLES/make_run_data.py" "$dir" "$@" >"$GM_LOGS/make_run_data.log" 2>&1 ||
    fail "make_run_data.py $dir $*: $(tail -n 5 "$GM_LOGS/make_run_data.log")"
}

# oracle NAME SCRIPT ARGS...: runs tests/oracles/SCRIPT, fails with its report unless it exits 0.
oracle() {
  local name=$1 script=$2
  shift 2
  if ! "$PYTHON" "$GM_ORACLES/$script" "$@" >"$GM_LOGS/$name.oracle" 2>&1; then
    sed 's/^/   | /' "$GM_LOGS/$name.oracle" >&2
    fail "$name: $script found problems"
  fi
  ok "$(tail -n 1 "$GM_LOGS/$name.oracle")"
}

# expect_block_reads NAME BLOCKS: fails unless run NAME's reader read each of BLOCKS covariate blocks once.
expect_block_reads() {
  local line nblocks nreads
  line=$(grep -m1 'covariate block reads:' "$GM_LOGS/$1.err" || true)
  [ -n "$line" ] || fail "$1: stderr has no 'covariate block reads:' line"
  read -r nblocks nreads < <(sed -E 's/.*covariate block reads: *([0-9]+) blocks read ([0-9]+) times.*/\1 \2/' \
    <<<"$line")
  [[ $nblocks =~ ^[0-9]+$ && $nreads =~ ^[0-9]+$ ]] || fail "$1: cannot parse '$line'"
  [ "$nblocks" -eq "$2" ] || fail "$1: $nblocks covariate blocks, expected $2: $line"
  [ "$nreads" -eq "$nblocks" ] ||
    fail "$1: $nblocks blocks read $nreads times in the prediction pass, expected once each"
  ok "$1: $nblocks blocks read $nreads times in the prediction pass"
}

# reader_endpoints: waits up to 10 s for this test's gridmill-reader and sets CONTROL, TASKS, ACKS, RESULTS and
# READER_CURVE from its command line (the supervisor picks free ports), and READER_ARGV to the whole of it.
# shellcheck disable=SC2034 # the tests that call it read what it sets
reader_endpoints() {
  local reader="" i
  for _ in $(seq 100); do
    reader=$(gm_tagged_pids gridmill-reader | sed -n 1p)
    [ -n "$reader" ] && break
    sleep 0.1
  done
  [ -n "$reader" ] || fail "no gridmill-reader appeared"
  mapfile -d '' READER_ARGV <"/proc/$reader/cmdline"
  CONTROL="" TASKS="" ACKS="" RESULTS="" READER_CURVE=""
  for ((i = 0; i < ${#READER_ARGV[@]} - 1; i++)); do
    case ${READER_ARGV[$i]} in
      --control) CONTROL=${READER_ARGV[$((i + 1))]} ;;
      --tasks) TASKS=${READER_ARGV[$((i + 1))]} ;;
      --acks) ACKS=${READER_ARGV[$((i + 1))]} ;;
      --results) RESULTS=${READER_ARGV[$((i + 1))]} ;;
      --curve) READER_CURVE=${READER_ARGV[$((i + 1))]} ;;
    esac
  done
  if [ -z "$CONTROL" ] || [ -z "$TASKS" ] || [ -z "$ACKS" ] || [ -z "$RESULTS" ]; then
    fail "the reader's command line names no endpoints"
  fi
}

# run_gridmill NAME ARGS...: runs `scripts/gridmill ARGS...`, bounded by GM_RUN_TIMEOUT seconds, with stdout and
# stderr in $GM_LOGS/NAME.out and NAME.err. Sets GM_RC to its exit status (124 if it timed out); never fails.
# predict and run get --verbose (every stage's log line on stderr, as the tests read them) unless the command
# has -q, --quiet or --verbose, or GM_PLAIN=1 (what a user sees by default).
run_gridmill() {
  local name=$1 arg plain=${GM_PLAIN:-0}
  shift
  for arg in "$@"; do
    case $arg in -q | --quiet | --verbose) plain=1 ;; esac
  done
  case ${1:-} in predict | run) [ "$plain" = 1 ] || set -- "$@" --verbose ;; esac
  local shown="$*"
  echo "   \$ gridmill ${shown//$T/\$T}"
  set +e
  timeout -k 5 "$GM_RUN_TIMEOUT" "$GRIDMILL" "$@" >"$GM_LOGS/$name.out" 2>"$GM_LOGS/$name.err"
  GM_RC=$?
  set -e
}

# Prints the last lines of run NAME's stderr, indented.
gm_stderr_tail() { tail -n "${2:-15}" "$GM_LOGS/$1.err" | sed 's/^/   | /'; }

# Fails unless run NAME (the last run_gridmill) exited 0.
expect_success() {
  if [ "$GM_RC" -ne 0 ]; then
    gm_stderr_tail "$1" >&2
    [ "$GM_RC" -ne 124 ] || fail "$1: gridmill did not finish within ${GM_RUN_TIMEOUT}s"
    fail "$1: gridmill exited $GM_RC"
  fi
  ok "$1: exit 0"
}

# Fails unless run NAME (the last run_gridmill) exited non-zero without timing out.
expect_failure() {
  [ "$GM_RC" -ne 124 ] || fail "$1: gridmill hung (killed after ${GM_RUN_TIMEOUT}s) instead of failing"
  if [ "$GM_RC" -eq 0 ]; then
    gm_stderr_tail "$1" >&2
    fail "$1: gridmill exited 0, expected a failure"
  fi
  ok "$1: exit $GM_RC"
}

# expect_stderr NAME PATTERN WHAT: fails unless run NAME's stderr has a line matching the extended regex.
expect_stderr() {
  if ! grep -Eq -- "$2" "$GM_LOGS/$1.err"; then
    gm_stderr_tail "$1" >&2
    fail "$1: stderr does not mention $3 (/$2/)"
  fi
  ok "$1: stderr mentions $3: $(grep -E -m1 -- "$2" "$GM_LOGS/$1.err" | cut -c1-160)"
}

# expect_no_final_outputs NAME DIR: fails if DIR holds an output under its final name.
expect_no_final_outputs() {
  local f found=()
  for f in prediction.tif class.tif probability.tif; do
    [ ! -e "$2/$f" ] || found+=("$f")
  done
  [ ${#found[@]} -eq 0 ] || fail "$1: final outputs exist after a failed run: ${found[*]}"
  local rest
  rest=$(find "$2" -mindepth 1 -maxdepth 1 -printf '%f ' 2>/dev/null || true)
  ok "$1: no final output in DIR${rest:+ (left: $rest)}"
}

# Kills every process this test started that is still running; runs at exit.
gm_cleanup() {
  local rc=$? pid
  for pid in "${GM_BG_PIDS[@]}"; do
    if gm_alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
  done
  for pid in $(gm_stage_pids); do
    kill -KILL "$pid" 2>/dev/null || true
  done
  if [ "$GM_OWN_TMP" = 1 ] && [ "$rc" -eq 0 ]; then
    rm -rf "$T"
  elif [ "$rc" -ne 0 ]; then
    echo "   (logs and data kept in $T)" >&2
  fi
  return "$rc"
}
trap gm_cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
