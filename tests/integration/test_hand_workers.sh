#!/usr/bin/env bash
# test_hand_workers.sh -- workers started by hand (issue 16, item 4): `gridmill-worker --connect` joins a run
# started with --port, is counted in the end line ("with N workers (K started by hand)"), and exits 0 when the
# run ends; with --keep-serving it waits and serves the next run on the same endpoint too. Outputs stay the
# bytes of a run without it.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

gm_require_build
D=$T/data
make_data "$D" --size 600 500
port=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
args=(predict --covariates "$D/cov_a.tif" "$D/cov_b.tif" "$D/cov_c.tif" --model "$D/softprob.json" --probabilities
  --workers 1 --block-size 128)
export GM_PLAIN=1

check "reference run without a hand-started worker"
run_gridmill reference "${args[@]}" --out "$T/reference"
expect_success reference

# hand_worker NAME [OPTIONS]: starts gridmill-worker by hand on the run's control port, in the background.
hand_worker() {
  local name=$1
  shift
  "$GM_BUILD/gridmill-worker" --connect "tcp://127.0.0.1:$port" "$@" >"$GM_LOGS/$name.out" 2>"$GM_LOGS/$name.err" &
  HAND=$!
  GM_BG_PIDS+=("$HAND")
}

check "a worker started by hand joins, is counted, and exits 0 when the run ends"
hand_worker hand
GRIDMILL_DEBUG_DELAY_MS_WRITER=100 run_gridmill joined "${args[@]}" --port "$port" --out "$T/joined"
expect_success joined
grep -qE "^gridmill: done in .* with 2 workers \(1 started by hand\)" "$GM_LOGS/joined.out" ||
  fail "joined: the end line does not count the hand-started worker: $(grep 'done in' "$GM_LOGS/joined.out")"
gm_wait_gone "$HAND" 10 || fail "joined: the hand-started worker still runs 10 s after the run"
rc=0
wait "$HAND" || rc=$?
[ "$rc" -eq 0 ] || fail "joined: the hand-started worker exited $rc"
for f in class.tif probability.tif; do cmp "$T/reference/$f" "$T/joined/$f" >&2 || fail "joined: $f differs"; done
grep -qE "^worker $(hostname):$HAND " "$GM_LOGS/joined.out" ||
  { cat "$GM_LOGS/joined.out" >&2; fail "joined: the end table has no row for the hand-started worker (pid $HAND)"; }
"$PYTHON" - "$T/joined/run.json" "$HAND" <<'PY' || fail "joined: run.json does not report the hand-started worker"
import json, sys
rows = {r["name"]: r for r in json.load(open(sys.argv[1]))["stages"]}
mine = [r for n, r in rows.items() if n.endswith(":" + sys.argv[2])]
assert mine and mine[0]["counts"]["tasks_done"] >= 0 and mine[0]["wall_s"] > 0, rows.keys()
PY
ok "joined: the end table and run.json have its row ($(grep -E "^worker $(hostname):$HAND " "$GM_LOGS/joined.out" | tr -s ' '))"
ok "joined: $(grep -o 'with 2 workers (1 started by hand)' "$GM_LOGS/joined.out"); the worker exited 0; outputs identical"

check "--keep-serving: the worker stays, serves the next run on the same port, and is counted there too"
hand_worker keep --keep-serving
for k in 1 2; do
  GRIDMILL_DEBUG_DELAY_MS_WRITER=100 run_gridmill "keep$k" "${args[@]}" --port "$port" --out "$T/keep$k"
  expect_success "keep$k"
  grep -qE "with 2 workers \(1 started by hand\)" "$GM_LOGS/keep$k.out" || fail "keep$k: the worker did not take part"
  sleep 1
  gm_alive "$HAND" || fail "keep$k: the --keep-serving worker exited after run $k"
done
kill -TERM "$HAND"
gm_wait_gone "$HAND" 10 || fail "keep: the worker ignores SIGTERM"
grep -q "waiting for the next one" "$GM_LOGS/keep.err" || fail "keep: the worker did not say it waits"
ok "keep: served two runs, stayed up between them, stopped on SIGTERM"
