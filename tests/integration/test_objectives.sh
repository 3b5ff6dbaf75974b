#!/usr/bin/env bash
# test_objectives.sh -- one model per objective gridmill accepts (objectives.py make), each predicted under every
# GRIDMILL_EVALUATOR (unset: gridmill's evaluator on the fastest path; avx512 and avx2 where the CPU has them;
# portable; scalar; xgboost: XGBoost's C API), must match python XGBoost as objectives.py check says (regression
# bit for bit, classes and probabilities of the binary objectives), and every run's outputs the same bytes.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

gm_require_build
D=$T/data
"$PYTHON" "$GM_ORACLES/objectives.py" make "$D" >"$GM_LOGS/make.log" 2>&1 ||
  fail "objectives.py make: $(tail -n 5 "$GM_LOGS/make.log")"
mapfile -t models <"$GM_LOGS/make.log"
[ "${#models[@]}" -ge 14 ] || fail "objectives.py make wrote ${#models[@]} models, 14 expected"

# every path this CPU runs, each forced in turn (the AVX2 and portable ones on an AVX-512 machine too)
gm_cpu_paths
evaluators=(default "${EVAL_PATHS[@]}" portable scalar xgboost)
for model in "${models[@]}"; do
  file=$(basename "$model")
  obj=${file%.*}
  obj=${obj/_/:} # objectives.py names a model after its objective, ':' written '_'
  case $obj in
    binary:*) opts=(--probabilities) files=(class.tif probability.tif) ;;
    *) opts=() files=(prediction.tif) ;;
  esac
  check "$file ($obj) under GRIDMILL_EVALUATOR=${evaluators[*]}: XGBoost's outputs, the same bytes each time"
  outs=()
  for ev in "${evaluators[@]}"; do
    name=${file//./_}_$ev
    outs+=("$T/$name")
    if [ "$ev" = default ]; then
      unset GRIDMILL_EVALUATOR
      want="gridmill's evaluator"
    else
      export GRIDMILL_EVALUATOR=$ev
      want=$([ "$ev" = xgboost ] && echo "XGBoost's predictor: GRIDMILL_EVALUATOR=xgboost" || echo "gridmill's evaluator")
    fi
    # 64-pixel blocks: 4 blocks (some partial, all with nodata) over 2 workers
    run_gridmill "$name" predict --covariates "$D/cov.tif" --model "$model" --out "$T/$name" --workers 2 -bs 64 \
      --debug "${opts[@]}"
    unset GRIDMILL_EVALUATOR
    expect_success "$name"
    # every worker names the path it takes (info: "evaluator: avx2 (GRIDMILL_EVALUATOR=avx2)")
    case $ev in
      default | scalar | xgboost) ;;
      *) grep -q "gridmill-worker.*evaluator: $ev (GRIDMILL_EVALUATOR=$ev)" "$T/$name/gridmill.log" ||
        fail "$name: no worker says it took the $ev path" ;;
    esac
    # every worker says, at debug level (in DIR/gridmill.log), which evaluator applies the model
    log=$T/$name/gridmill.log
    grep -q "gridmill-worker.*model 1 ($obj): " "$log" || fail "$name: no worker named its evaluator in $log"
    if grep "gridmill-worker.*model 1 ($obj): " "$log" | grep -vqF "model 1 ($obj): $want"; then
      grep "model 1 (" "$log" | sed 's/^/   | /' >&2
      fail "$name: a worker did not use $want"
    fi
  done
  oracle "$file" objectives.py check --covariates "$D/cov.tif" --model "$model" --out "${outs[@]}"
  for ev in "${evaluators[@]:1}"; do same "${file//./_}_default" "${file//./_}_$ev" "${files[@]}"; done
done
assert_no_stages "the last run"
echo "all ${#models[@]} models match XGBoost under ${#evaluators[@]} evaluators"
