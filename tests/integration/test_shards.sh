#!/usr/bin/env bash
# test_shards.sh -- several readers and writers (--readers R, --writers W) give the same bytes as one of each;
# a writer shard writes only its own outputs (i mod W == J), one that owns none still completes the run; a killed
# writer shard resumes from its own ledger. See common/PROTOCOL.md, "Several readers and writers".
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

gm_require_build
[ -x "$GM_BUILD/gridmill-hub" ] || fail "$GM_BUILD/gridmill-hub not built (make all)"
D=$T/data
make_data "$D" --size 600 1100
covs=("$D/cov_a.tif" "$D/cov_b.tif" "$D/cov_c.tif")
prob=(--model "$D/softprob.json" --probabilities)
reg=(--model "$D/reg.json")

# run NAME OPTIONS...: predicts into $T/NAME with 128-pixel blocks and fails unless it succeeds.
run() {
  local name=$1
  shift
  run_gridmill "$name" predict --covariates "${covs[@]}" --out "$T/$name" --workers 2 --block-size 128 "$@"
  expect_success "$name"
  assert_no_stages "$name"
}

check "references: one reader, one writer"
run prob_1x1 "${prob[@]}"
run reg_1x1 "${reg[@]}"

check "the supervisor with --writers 2, 3 and --readers 2, 3: the same bytes"
run prob_1x2 "${prob[@]}" --writers 2
same prob_1x1 prob_1x2 class.tif probability.tif
run prob_1x3 "${prob[@]}" --writers 3
same prob_1x1 prob_1x3 class.tif probability.tif
run prob_2x2 "${prob[@]}" --readers 2 --writers 2
same prob_1x1 prob_2x2 class.tif probability.tif
run reg_1x2 "${reg[@]}" --writers 2
same reg_1x1 reg_1x2 prediction.tif
run reg_3x2 "${reg[@]}" --readers 3 --writers 2
same reg_1x1 reg_3x2 prediction.tif
for d in prob_1x2 prob_1x3 prob_2x2 reg_1x2 reg_3x2; do
  left=$(find "$T/$d" -maxdepth 1 -name '.gridmill-ledger*' -printf '%f ')
  [ -z "$left" ] || fail "$d: ledgers left after a complete run: $left"
done
ok "no ledger left after the sharded runs"

# by_hand NAME READER_OPTIONS...: reader (--writers 2), two workers, a fan-out hub and writers --shard 0/2 and
# 1/2 started by hand on ipc endpoints, each writer into its own folder $T/NAME/w0 and w1.
by_hand() {
  local name=$1 e pids=() pid rc
  shift
  e=ipc://$T/$name
  mkdir -p "$T/$name/w0" "$T/$name/w1"
  "$GM_BUILD/gridmill-reader" --control "$e-control" --tasks "$e-tasks" --acks "$e-acks" --results "$e-hub" \
    --writers 2 --block-size 128 "$@" --covariates "${covs[@]}" 2>"$GM_LOGS/$name.reader.err" &
  pids+=($!)
  "$GM_BUILD/gridmill-hub" --pull "$e-hub" --push-to "$e-res0" --push-to "$e-res1" 2>"$GM_LOGS/$name.hub.err" &
  local hub=$!
  for j in 0 1; do
    "$GM_BUILD/gridmill-writer" --out "$T/$name/w$j" --connect "$e-control" --bind "$e-res$j" --shard "$j/2" \
      2>"$GM_LOGS/$name.w$j.err" &
    pids+=($!)
  done
  "$GM_BUILD/gridmill-worker" --connect "$e-control" 2>"$GM_LOGS/$name.k0.err" &
  local k0=$!
  "$GM_BUILD/gridmill-worker" --connect "$e-control" 2>"$GM_LOGS/$name.k1.err" &
  local k1=$!
  GM_BG_PIDS+=("${pids[@]}" "$hub" "$k0" "$k1")
  for pid in "${pids[@]}"; do
    gm_wait_gone "$pid" 60 || fail "$name: a stage was still running after 60 s"
    rc=0
    wait "$pid" || rc=$?
    [ "$rc" -eq 0 ] || fail "$name: a stage exited $rc: $(tail -n 3 "$GM_LOGS/$name".*.err)"
  done
  kill -TERM "$hub" "$k0" "$k1" 2>/dev/null || true
  wait "$hub" "$k0" "$k1" 2>/dev/null || true
  ok "$name: reader and both writers exited 0"
}

# holds NAME J FILES...: fails unless writer J's folder holds exactly FILES (none: empty).
holds() {
  local name=$1 j=$2 got
  shift 2
  got=$(find "$T/$name/w$j" -mindepth 1 -maxdepth 1 -printf '%f\n' | sort | paste -sd' ' -)
  [ "$got" = "$*" ] || fail "$name: writer $j wrote [$got], expected [$*]"
  ok "$name: writer $j wrote exactly [$*]"
}

check "by hand: writer 0/2 writes class.tif, 1/2 probability.tif; their union is the 1-writer run"
by_hand hand_prob "${prob[@]}"
holds hand_prob 0 class.tif
holds hand_prob 1 probability.tif
same prob_1x1 hand_prob/w0 class.tif
same prob_1x1 hand_prob/w1 probability.tif

check "by hand, regression: writer 0/2 writes prediction.tif, 1/2 owns nothing and still completes"
by_hand hand_reg "${reg[@]}"
holds hand_reg 0 prediction.tif
holds hand_reg 1
same reg_1x1 hand_reg/w0 prediction.tif

check "SIGKILL to writer 2 of 2 once its ledger shows 2 rows of tiles; the same command resumes from each shard's ledger"
out=$T/kill_w1
GRIDMILL_DEBUG_DELAY_MS_WRITER=600 "$GRIDMILL" predict --verbose --covariates "${covs[@]}" --out "$out" --workers 2 \
  --block-size 128 "${prob[@]}" --writers 2 >"$GM_LOGS/kill_w1.1.out" 2>"$GM_LOGS/kill_w1.1.err" &
sup=$!
GM_BG_PIDS+=("$sup")
for _ in $(seq 300); do
  grep -Eqs "^tiles (6|9|12)$" "$out/.gridmill-ledger-1-of-2" && break
  sleep 0.05
done
grep -Eqs "^tiles (6|9|12)$" "$out/.gridmill-ledger-1-of-2" ||
  fail "kill_w1: writer 1's ledger never showed 2 to 4 rows of tiles"
victim=""
for pid in $(gm_tagged_pids gridmill-writer); do
  if tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "--shard 1/2"; then victim=$pid; fi
done
[ -n "$victim" ] || fail "kill_w1: no writer with --shard 1/2 running"
kill -KILL "$victim"
gm_wait_gone "$sup" 10 || fail "kill_w1: supervisor still running 10 s after the kill"
wait "$sup" || true
gm_wait_stages_gone
assert_no_stages "kill_w1 interrupted"
expect_no_final_outputs kill_w1 "$out"
[ ! -e "$out/.gridmill-ledger" ] || fail "kill_w1: a 1-writer ledger appeared in a 2-writer run"
w0=$(sed -n 's/^tiles //p' "$out/.gridmill-ledger-0-of-2")
w1=$(sed -n 's/^tiles //p' "$out/.gridmill-ledger-1-of-2")
ok "kill_w1: killed with $w0 and $w1 of 15 tiles in the two shards' ledgers"
run_gridmill kill_w1.2 predict --covariates "${covs[@]}" --out "$out" --workers 2 --block-size 128 "${prob[@]}" \
  --writers 2
expect_success kill_w1.2
grep -E "resuming: $w1 of 15 output tiles" "$GM_LOGS/kill_w1.2.err" >&2 ||
  fail "kill_w1: the second run did not resume writer 1 from $w1 tiles"
same prob_1x1 kill_w1 class.tif probability.tif
left=$(find "$out" -maxdepth 1 -name '.gridmill-ledger*' -printf '%f ')
[ -z "$left" ] || fail "kill_w1: ledgers left after completion: $left"
ok "kill_w1: resumed; outputs byte-identical; no ledger left"

check "the full job with --readers 2 --writers 3: samples, models and every summary the same bytes as 1/1"
make_run_data "$D/run"
runopts=(run --polygons "$D/run/polygons.gpkg" --class-field soil --covariates "$D/run/elevation.tif"
  "$D/run/wetness.tif" "$D/run/climate.tif" --iterations 4 --samples-per-polygon 10 --nprob 2 --workers 2
  --block-size 128)
run_gridmill run_1x1 "${runopts[@]}" --out "$T/run_1x1"
expect_success run_1x1
run_gridmill run_2x3 "${runopts[@]}" --out "$T/run_2x3" --readers 2 --writers 3
expect_success run_2x3
assert_no_stages run_2x3
n=0
while read -r f; do
  cmp "$T/run_1x1/$f" "$T/run_2x3/$f" >&2 || fail "run_2x3/$f differs from run_1x1/$f"
  n=$((n + 1))
done < <(cd "$T/run_1x1" && find . -type f \( -name '*.tif' -o -name '*.json' -o -name '*.csv' \) \
  ! -name run.json | LC_ALL=C sort)
[ "$n" -ge 12 ] || fail "run_1x1 wrote only $n files to compare"
ok "run_2x3: $n files (summaries, models, samples, classes.csv) byte-identical to run_1x1"
