#!/usr/bin/env bash
# test_custom_stages.sh -- the shipped custom stages (scripts/stages/) in real runs: `gridmill predict` with
# gridmill-stage-mask as a pre-stage and confident_stage.py as a post-stage, two copies of each, equals python
# xgboost's prediction with the mask and the threshold applied, pixel by pixel; with --curve the same bytes;
# `gridmill run` with both stages: they follow the switch from the training job to the summarise job and pass
# the training messages and the models on unchanged (models byte-identical to a run without them); the
# summaries are nodata under the mask, the class also where the largest share is below the threshold, and the
# same bytes as without the stages elsewhere; a mask on another grid stops the run with one line naming it, and
# no output gets its final name. No stage, hub or custom stage is left running.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

THRESHOLD=0.6
MASK_STAGE=$GM_BUILD/gridmill-stage-mask
CONFIDENT=$GM_ROOT/scripts/stages/confident_stage.py

gm_require_build
[ -x "$MASK_STAGE" ] || fail "$MASK_STAGE not built (make all)"
[ -x "$CONFIDENT" ] || fail "$CONFIDENT missing or not executable"

# Fails, naming $1, if a hub or a custom stage this test started is still running.
assert_no_custom_stages() {
  local pid left=()
  for pid in $(gm_tagged_pids gridmill-hub) $(pgrep -f 'gridmill-stage-mask|confident_stage\.py' || true); do
    if grep -qzx "GM_TEST_TAG=$GM_TEST_TAG" "/proc/$pid/environ" 2>/dev/null && gm_alive "$pid"; then
      left+=("$pid")
    fi
  done
  if [ ${#left[@]} -gt 0 ]; then
    ps -o pid,ppid,stat,etime,args -p "$(IFS=,; echo "${left[*]}")" >&2 || true
    fail "$1: hub or custom stage processes left running: ${left[*]}"
  fi
  ok "$1: no gridmill-hub, gridmill-stage-mask or confident_stage.py left"
}

D=$T/data
make_data "$D"
covs=("$D/cov_a.tif" "$D/cov_b.tif" "$D/cov_c.tif")
"$PYTHON" "$GM_ORACLES/check_stages.py" make-mask "$D/cov_a.tif" "$T/mask.tif" >"$GM_LOGS/mask.log" 2>&1 ||
  fail "make-mask: $(cat "$GM_LOGS/mask.log")"
mkdir -p "$T/shifted"
"$PYTHON" "$GM_ORACLES/check_stages.py" make-mask "$D/cov_a.tif" "$T/shifted/mask.tif" --shift \
  >>"$GM_LOGS/mask.log" 2>&1 || fail "make-mask --shift: $(cat "$GM_LOGS/mask.log")"
stages=(--pre-stage "$MASK_STAGE $T/mask.tif" --pre-stage-copies 2
        --stage "$PYTHON $CONFIDENT $THRESHOLD" --stage-copies 2)

check "predict --probabilities, 2 workers, mask pre-stage x2, confident post-stage ($THRESHOLD) x2: equals the oracle"
# 80 blocks, workers slowed to 60 ms a block: the pass lasts seconds, long enough for both copies of each stage
# to connect and get blocks even on a slow machine (unslowed, all blocks can go through the first copy before
# the second has asked for the job)
GRIDMILL_DEBUG_DELAY_MS_WORKER=60 run_gridmill staged predict --covariates "${covs[@]}" --model "$D/softprob.json" \
  --probabilities --out "$T/staged" --workers 2 --block-size 32 "${stages[@]}"
expect_success staged
assert_no_stages staged
assert_no_custom_stages staged
oracle staged check_stages.py predict --covariates "${covs[@]}" --model "$D/softprob.json" --mask "$T/mask.tif" \
  --threshold "$THRESHOLD" --out "$T/staged"
n=$(grep -cE 'gridmill-stage-mask\[[0-9]+\] info: job [0-9a-f]{16}: masking' "$GM_LOGS/staged.err" || true)
[ "$n" -ge 2 ] || { gm_stderr_tail staged >&2; fail "staged: $n mask stage copies fetched the job, expected 2"; }
ok "staged: $n mask stage copies fetched the job"

check "the same with --curve: every stage, hub and custom stage CURVE-secured, the same bytes"
"$GRIDMILL" keygen "$T/cluster.key" >"$GM_LOGS/keygen.out" 2>&1 || fail "keygen: $(cat "$GM_LOGS/keygen.out")"
run_gridmill curve predict --covariates "${covs[@]}" --model "$D/softprob.json" --probabilities --out "$T/curve" \
  --workers 2 --block-size 64 --curve "$T/cluster.key" "${stages[@]}"
expect_success curve
assert_no_stages curve
assert_no_custom_stages curve
for f in class.tif probability.tif; do
  cmp "$T/staged/$f" "$T/curve/$f" >&2 || fail "curve: $f differs from the run without --curve"
done
ok "curve: class.tif and probability.tif are byte-identical to the run without --curve"

check "run with both stages x2: they follow the switch from the training job to the summarise job"
R=$T/rundata
make_run_data "$R"
rcovs=("$R/elevation.tif" "$R/wetness.tif" "$R/climate.tif")
"$PYTHON" "$GM_ORACLES/check_stages.py" make-mask "$R/elevation.tif" "$T/run_mask.tif" >>"$GM_LOGS/mask.log" 2>&1 ||
  fail "make-mask (run): $(cat "$GM_LOGS/mask.log")"
run_opts=(--polygons "$R/polygons.gpkg" --class-field soil --covariates "${rcovs[@]}" --iterations 4
          --samples-per-polygon 25 --seed 11 --workers 2 --block-size 128)
run_gridmill run_plain run "${run_opts[@]}" --out "$T/run_plain"
expect_success run_plain
oracle run_plain_summaries check_run.py "$T/run_plain" --iterations 4 --covariates "${rcovs[@]}"
run_gridmill run_staged run "${run_opts[@]}" --out "$T/run_staged" \
  --pre-stage "$MASK_STAGE $T/run_mask.tif" --pre-stage-copies 2 --stage "$PYTHON $CONFIDENT $THRESHOLD" --stage-copies 2
expect_success run_staged
assert_no_stages run_staged
assert_no_custom_stages run_staged
for stage in 'gridmill-stage-mask\[[0-9]+\] info: job' 'confident_stage\.py \[[0-9]+\]: job'; do
  jobs=$(grep -oE "$stage [0-9a-f]{16}" "$GM_LOGS/run_staged.err" | awk '{ print $NF }' | sort -u | wc -l)
  [ "$jobs" -eq 2 ] || { gm_stderr_tail run_staged >&2; fail "run_staged: /$stage/ held $jobs jobs, expected 2"; }
done
ok "run_staged: both stages fetched the training job, then the summarise job"
check "models byte-identical to the run without stages; summaries nodata under the mask, class nodata where unsure"
oracle run_staged check_stages.py run --covariates "${rcovs[@]}" --mask "$T/run_mask.tif" --out "$T/run_staged" \
  --plain "$T/run_plain" --threshold "$THRESHOLD"

check "a mask on another grid: the run fails with one line naming it, and no output gets its final name"
GM_RUN_TIMEOUT=60
mkdir -p "$T/bad"
run_gridmill bad_mask predict --covariates "${covs[@]}" --model "$D/softprob.json" --probabilities --out "$T/bad" \
  --workers 2 --block-size 64 --pre-stage "$MASK_STAGE $T/shifted/mask.tif"
expect_failure bad_mask
expect_stderr bad_mask "gridmill-stage-mask.*shifted/mask\.tif: grid differs from the job's \(geotransform" \
  "the mask on another grid"
! grep -qE 'Traceback|Segmentation|core dumped' "$GM_LOGS/bad_mask.err" || fail "bad_mask: a crash on stderr"
expect_no_final_outputs bad_mask "$T/bad"
assert_no_stages bad_mask
assert_no_custom_stages bad_mask
echo "custom stages: predict with both stages equals the oracle, with and without CURVE; run follows the job switch"
