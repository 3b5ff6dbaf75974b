#!/usr/bin/env bash
# test_bad_input.sh -- bad covariates or models fail fast with a message naming the file and the problem,
# and leave no output and no process behind.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

gm_require_build
D=$T/data
make_data "$D"
GM_RUN_TIMEOUT=60
printf 'elevation,slope\n1,2\n' >"$T/notes.txt"

# bad NAME PATTERN WHAT MODEL COVARIATES...: the run must fail, stderr must match PATTERN (case-insensitive
# extended regex) which describes WHAT, no final output may appear and no stage may be left.
bad() {
  local name=$1 pattern=$2 what=$3 model=$4
  shift 4
  mkdir -p "$T/$name"
  run_gridmill "$name" predict --covariates "$@" --model "$model" --out "$T/$name" --workers 2
  expect_failure "$name"
  if ! grep -Eiq -- "$pattern" "$GM_LOGS/$name.err"; then
    gm_stderr_tail "$name" >&2
    fail "$name: stderr does not mention $what (/$pattern/)"
  fi
  ok "$name: stderr mentions $what: $(grep -Ei -m1 -- "$pattern" "$GM_LOGS/$name.err" | cut -c1-200)"
  expect_no_final_outputs "$name" "$T/$name"
  assert_no_stages "$name"
}

check "covariate on a grid shifted by one pixel: fails, says 'grid differs' and names the file"
bad shifted 'shifted\.tif.*grid differs|grid differs.*shifted\.tif' "'grid differs' and shifted.tif" \
  "$D/reg.json" "$D/cov_a.tif" "$D/cov_b.tif" "$D/shifted.tif"

check "covariate one column narrower: fails and names the file"
bad other_size 'other_size\.tif' "other_size.tif" "$D/reg.json" "$D/cov_a.tif" "$D/cov_b.tif" "$D/other_size.tif"

check "covariate in another CRS: fails and names the file"
bad other_crs 'other_crs\.tif' "other_crs.tif" "$D/reg.json" "$D/cov_a.tif" "$D/cov_b.tif" "$D/other_crs.tif"

check "missing covariate file: fails and names the file"
bad missing 'absent\.tif' "absent.tif" "$D/reg.json" "$D/cov_a.tif" "$D/cov_b.tif" "$D/absent.tif"

check "model with 3 features for 4 covariate bands: fails and mentions features"
bad bad_features 'feature' "features" "$D/bad_features.json" "$D/cov_a.tif" "$D/cov_b.tif" "$D/cov_c.tif"

check "text file as a covariate: fails and names the file"
bad text_covariate 'notes\.txt' "notes.txt" "$D/reg.json" "$D/cov_a.tif" "$D/cov_b.tif" "$T/notes.txt"

check "missing model file: fails and names the file"
bad missing_model 'absent_model\.json' "absent_model.json" "$D/absent_model.json" \
  "$D/cov_a.tif" "$D/cov_b.tif" "$D/cov_c.tif"
