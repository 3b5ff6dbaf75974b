#!/usr/bin/env bash
# test_memcheck.sh -- every stage runs clean under valgrind memcheck: no invalid access, no definite leak,
# and the outputs still equal the oracle's.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

gm_require_build
command -v valgrind >/dev/null || fail "valgrind is not installed (scripts/install-deps installs it)"
D=$T/data
make_data "$D"
covs=("$D/cov_a.tif" "$D/cov_b.tif" "$D/cov_c.tif")

# libgomp's thread stacks show as "possibly lost" at exit: only definite leaks and errors count.
export GRIDMILL_STAGE_WRAPPER="valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --show-possibly-lost=no"
export GM_RUN_TIMEOUT=240
for model in softprob.json reg.ubj; do
  name=${model//./_}
  check "$model under valgrind, 2 workers: no memcheck report from any stage, output equals the oracle's"
  run_gridmill "$name" predict --covariates "${covs[@]}" --model "$D/$model" --out "$T/$name" --workers 2 --probabilities
  expect_success "$name"
  if grep -E '^==[0-9]+==' "$GM_LOGS/$name.err" >&2; then
    fail "$name: valgrind reported the lines above"
  fi
  ok "$name: valgrind silent for reader, writer and both workers"
  probs=()
  [ "$model" = softprob.json ] && probs=(--probabilities)
  "$PYTHON" "$GM_ORACLES/check_predict.py" --covariates "${covs[@]}" --model "$D/$model" --out "$T/$name" \
    "${probs[@]}" || fail "$name: output differs from the oracle"
  assert_no_stages "$name"
done
echo "memcheck clean"
