#!/usr/bin/env bash
# test_run_prob_summary.sh -- `--summary probabilities` (issue 14, item 5): the summaries are the mean of the
# models' class probabilities (rdsmart's type = "prob"), checked by tests/oracles/check_mean_probs.py against
# python xgboost; the same models summarised by votes give other probabilities (shares of votes), and both
# runs' realisations are the same bytes.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

gm_require_build
D=$T/data
make_run_data "$D"
covs=("$D/elevation.tif" "$D/wetness.tif" "$D/climate.tif")
args=(run --polygons "$D/polygons.gpkg" --composition "$D/composition.csv" --covariates "${covs[@]}" --iterations 4
  --samples-per-polygon 15 --workers 2 --nprob 2 --realisations --trees 3 --max-depth 4)

check "the full job with --summary probabilities"
run_gridmill probs "${args[@]}" --summary probabilities --out "$T/probs"
expect_success probs
oracle probs check_mean_probs.py "$T/probs" --covariates "${covs[@]}" --nprob 2
check "the same models summarised by votes: other shares, the same realisations"
run_gridmill votes run --models "$T/probs/models" --covariates "${covs[@]}" --workers 2 --nprob 2 --realisations \
  --out "$T/votes"
expect_success votes
oracle votes check_run.py "$T/votes" --nprob 2
! cmp -s "$T/probs/probability.tif" "$T/votes/probability.tif" || fail "votes: the same probability.tif as the mean probabilities"
for i in 001 002 003 004; do
  cmp "$T/probs/realisation-$i.tif" "$T/votes/realisation-$i.tif" >&2 || fail "realisation-$i.tif differs"
done
ok "votes: shares of votes, unlike the mean probabilities; realisations byte-identical"
