#!/usr/bin/env bash
# test_predict_oracle.sh -- every model kind and format, predicted with 2 workers, must match the python oracle.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

gm_require_build
D=$T/data
make_data "$D"
covs=("$D/cov_a.tif" "$D/cov_b.tif" "$D/cov_c.tif")

# model file, then extra options; softprob.ubj and softmax.json are also run without probabilities.
cases=(
  "reg.json"
  "reg.ubj"
  "softprob.json --probabilities"
  "softprob.ubj"
  "softmax.json --probabilities"
  "softmax.json"
  "binary.json --probabilities"
)
# every evaluator path this CPU runs, each forced in turn, and the default
gm_cpu_paths
runs=0
for c in "${cases[@]}"; do
 for ev in default "${EVAL_PATHS[@]}" portable; do
  read -r model opts <<<"$c"
  name=${model//./_}${opts:+_probs}_$ev
  out=$T/out_$name
  mkdir -p "$out"
  check "$model ${opts:-} --workers 2, evaluator $ev: output equals the oracle's"
  [ "$ev" = default ] && unset GRIDMILL_EVALUATOR || export GRIDMILL_EVALUATOR=$ev
  # shellcheck disable=SC2086
  run_gridmill "$name" predict --covariates "${covs[@]}" --model "$D/$model" --out "$out" --workers 2 $opts
  unset GRIDMILL_EVALUATOR
  expect_success "$name"
  runs=$((runs + 1))
  # shellcheck disable=SC2086
  if ! "$PYTHON" "$GM_ORACLES/check_predict.py" --covariates "${covs[@]}" --model "$D/$model" --out "$out" $opts \
      >"$GM_LOGS/$name.oracle" 2>&1; then
    sed 's/^/   | /' "$GM_LOGS/$name.oracle" >&2
    fail "$name: check_predict.py found mismatches"
  fi
  ok "$(cat "$GM_LOGS/$name.oracle")"
  assert_no_stages "$name"
 done
done
echo "all $runs runs match the oracle"
