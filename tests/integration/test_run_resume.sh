#!/usr/bin/env bash
# test_run_resume.sh -- an interrupted full job resumes: SIGTERM (stops within 2 s) or SIGKILL to the
# supervisor mid-training, then the same command again: models already trained are not trained again, and
# every output is byte-identical to an uninterrupted run. A folder of another run is refused.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

gm_require_build
D=$T/data
mkdir -p "$D"
make_run_data "$D"
args=(--polygons "$D/polygons.gpkg" --class-field soil --covariates "$D/elevation.tif" "$D/wetness.tif"
  "$D/climate.tif" --iterations 12 --workers 2 --seed 3)

check "uninterrupted reference run"
run_gridmill reference run "${args[@]}" --out "$T/reference"
expect_success reference

for sig in TERM KILL; do
  name=resume_$sig
  out=$T/$name
  check "SIG$sig to the supervisor mid-training, then the same command: resumes, same bytes"
  GRIDMILL_DEBUG_DELAY_MS=300 "$GRIDMILL" run --verbose "${args[@]}" --out "$out" >"$GM_LOGS/$name.1.out" \
    2>"$GM_LOGS/$name.1.err" &
  sup=$!
  GM_BG_PIDS+=("$sup")
  for _ in $(seq 200); do
    [ "$(find "$out/models" -name 'iter-*.json' 2>/dev/null | wc -l)" -ge 2 ] && break
    sleep 0.05
  done
  have=$(find "$out/models" -name 'iter-*.json' 2>/dev/null | wc -l)
  if [ "$have" -lt 2 ] || [ "$have" -ge 12 ]; then
    fail "$name: expected a run part-way through training, found $have models"
  fi
  t0=$(date +%s%N)
  kill -"$sig" "$sup"
  gm_wait_gone "$sup" 5 || fail "$name: supervisor still running 5 s after SIG$sig"
  wait "$sup" || true
  gm_wait_stages_gone
  secs=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
  assert_no_stages "$name interrupted"
  if [ "$sig" = TERM ]; then
    awk -v s="$secs" 'BEGIN { exit !(s <= 2.0) }' || fail "$name: stages took ${secs}s to stop (limit 2 s)"
    grep -q "resume" "$GM_LOGS/$name.1.err" || fail "$name: the interruption message does not say how to resume"
  fi
  expect_no_final_outputs "$name" "$out"
  ok "$name: everything stopped ${secs}s after SIG$sig with $have models saved; no final output"
  run_gridmill "$name.2" run "${args[@]}" --out "$out" --resume
  expect_success "$name.2"
  grep -E "resuming: [0-9]+ of 12 models" "$GM_LOGS/$name.2.err" >&2 || fail "$name: the second run did not resume"
  for f in "$T"/reference/*.tif "$T"/reference/models/* "$T"/reference/samples/*; do
    rel=${f#"$T"/reference/}
    cmp "$f" "$out/$rel" >&2 || fail "$name: $rel differs from the uninterrupted run"
  done
  ok "$name: resumed; every output, model and sample table byte-identical to the uninterrupted run"
  assert_no_stages "$name"
done

check "another seed in the same folder is refused, and nothing there changes"
# (gridmill.log records the refused run too: that is its job)
before=$(cd "$T/resume_TERM" && find . -type f ! -name .gridmill-lock ! -name gridmill.log -newer "$T/resume_TERM/.gridmill-run" | sort | xargs md5sum)
run_gridmill other_seed run "${args[@]:0:${#args[@]}-1}" 4 --out "$T/resume_TERM"
expect_failure other_seed
expect_stderr other_seed "holds a run with other inputs or options" "refusal naming the problem"
after=$(cd "$T/resume_TERM" && find . -type f ! -name .gridmill-lock ! -name gridmill.log -newer "$T/resume_TERM/.gridmill-run" | sort | xargs md5sum)
[ "$before" = "$after" ] || fail "other_seed: files in the folder changed"
ok "other_seed: refused, folder untouched"

check "SIGKILL to a worker mid-training: the run completes with the same bytes (its iteration re-issued)"
out=$T/worker_killed
GRIDMILL_DEBUG_DELAY_MS_WORKER=250 "$GRIDMILL" run --verbose "${args[@]}" --out "$out" >"$GM_LOGS/worker_killed.out" \
  2>"$GM_LOGS/worker_killed.err" &
sup=$!
GM_BG_PIDS+=("$sup")
for _ in $(seq 200); do
  [ "$(find "$out/models" -name 'iter-*.json' 2>/dev/null | wc -l)" -ge 1 ] && break
  sleep 0.05
done
pid=$(gm_tagged_pids gridmill-worker | sed -n 1p)
[ -n "$pid" ] || fail "worker_killed: no worker running"
have=$(find "$out/models" -name 'iter-*.json' | wc -l)
[ "$have" -lt 12 ] || fail "worker_killed: training was over before the kill"
kill -KILL "$pid"
gm_wait_gone "$sup" 120 || fail "worker_killed: the run did not finish within 120 s"
rc=0
wait "$sup" || rc=$?
[ "$rc" -eq 0 ] || { gm_stderr_tail worker_killed >&2; fail "worker_killed: exited $rc"; }
grep -q "started pid" "$GM_LOGS/worker_killed.err" || fail "worker_killed: no replacement worker"
for f in "$T"/reference/*.tif "$T"/reference/models/* "$T"/reference/samples/*; do
  rel=${f#"$T"/reference/}
  cmp "$f" "$out/$rel" >&2 || fail "worker_killed: $rel differs from the undisturbed run"
done
ok "worker_killed: killed with $have of 12 models saved; completed, every file byte-identical"
assert_no_stages worker_killed

check "the same map named MAP:LAYER and the folder as DIR/: the same run, resumed (every model kept)"
run_gridmill same_layer run "${args[@]/$D\/polygons.gpkg/$D/polygons.gpkg:soil_map}" --out "$T/reference/"
expect_success same_layer
expect_stderr same_layer "resuming: 12 of 12 models already trained in $T/reference/models" "the models kept"
! grep -q "$T/reference//" "$GM_LOGS/same_layer.err" "$GM_LOGS/same_layer.out" || fail "same_layer: a path with //"
ok "same_layer: MAP:LAYER is MAP's run; no // in the paths printed"
