#!/usr/bin/env bash
# test_run_allocation.sh -- --allocation weighted|dirichlet|random-mapunit|random-all (issue 14, item 4), as
# rdsmart's method.allocate defines them: over 40 iterations of 25 points in each of 63 polygons, the classes
# drawn follow each rule's frequencies (tests/oracles/check_allocation.py: chi-square against the composition's
# shares, uniform among the polygon's or all classes, or one Dirichlet draw of shares per polygon and run).
# Weighted is the default: without the option the samples are the same bytes.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

gm_require_build
D=$T/data
make_run_data "$D"
covs=("$D/elevation.tif")
args=(run --polygons "$D/polygons.gpkg" --composition "$D/composition.csv" --covariates "${covs[@]}" --iterations 40
  --samples-per-polygon 25 --workers 2 --seed 3 -bs 512)

for rule in weighted dirichlet random-mapunit random-all; do
  check "--allocation $rule"
  run_gridmill "$rule" "${args[@]}" --allocation "$rule" --out "$T/$rule"
  expect_success "$rule"
  oracle "$rule" check_allocation.py "$T/$rule" --composition "$D/composition.csv" --rule "$rule"
done
check "no --allocation: weighted, the same samples"
run_gridmill default "${args[@]}" --out "$T/default"
expect_success default
for i in 001 020 040; do
  cmp "$T/weighted/samples/iter-$i.csv" "$T/default/samples/iter-$i.csv" >&2 || fail "default: iter-$i.csv differs"
done
ok "default: the samples of --allocation weighted"
