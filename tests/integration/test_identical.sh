#!/usr/bin/env bash
# test_identical.sh -- outputs do not depend on the worker count or the block size: byte-identical files.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

gm_require_build
D=$T/data
make_data "$D"
covs=("$D/cov_a.tif" "$D/cov_b.tif" "$D/cov_c.tif")

# run NAME MODEL OPTIONS...: predicts into $T/NAME and fails unless it succeeds.
run() {
  local name=$1 model=$2
  shift 2
  mkdir -p "$T/$name"
  run_gridmill "$name" predict --covariates "${covs[@]}" --model "$D/$model" --out "$T/$name" "$@"
  expect_success "$name"
  assert_no_stages "$name"
}

check "softprob.json --probabilities: workers 1, 2, 5 and block sizes 128, 512 give the same bytes"
run sp_w1 softprob.json --probabilities --workers 1
run sp_w2 softprob.json --probabilities --workers 2
run sp_w5 softprob.json --probabilities --workers 5
run sp_b128 softprob.json --probabilities --workers 2 --block-size 128
run sp_b512 softprob.json --probabilities --workers 2 --block-size 512
for r in sp_w2 sp_w5 sp_b128 sp_b512; do
  same sp_w1 "$r" class.tif probability.tif
done

check "reg.json: workers 1 and 5 give the same bytes"
run reg_w1 reg.json --workers 1
run reg_w5 reg.json --workers 5
same reg_w1 reg_w5 prediction.tif
