#!/usr/bin/env bash
# test_run_reproducible.sh -- `gridmill run` with one seed writes the same bytes whatever the worker count
# (summaries, realisations, samples, models); another seed draws other samples; the prediction pass reads each
# covariate block once, for 1 iteration as for 20.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BLOCKS=4  # 400x300 pixels in the default 256x256 blocks: 2 x 2

gm_require_build
D=$T/data
make_run_data "$D"
covs=("$D/elevation.tif" "$D/wetness.tif" "$D/climate.tif")

# run NAME ITERATIONS OPTIONS...: runs plain mode into $T/NAME and fails unless it succeeds.
run() {
  local name=$1 iterations=$2
  shift 2
  run_gridmill "$name" run --polygons "$D/polygons.gpkg" --class-field soil --covariates "${covs[@]}" \
    --out "$T/$name" --iterations "$iterations" --samples-per-polygon 15 "$@"
  expect_success "$name"
  assert_no_stages "$name"
}

# files NAME: lists the files of run NAME's folder, relative to it, sorted.
# run.json and report.html record timings and the worker count, .gridmill-lock the last run's pid, gridmill.log its log lines (times, pids): everything else must match.
files() { (cd "$T/$1" && find . -type f ! -name run.json ! -name report.html ! -name .gridmill-lock ! -name gridmill.log | LC_ALL=C sort); }

check "--seed 5 with 1 and 4 workers: every file byte-identical"
run seed5_w1 6 --seed 5 --workers 1 --realisations --nprob 2
run seed5_w4 6 --seed 5 --workers 4 --realisations --nprob 2
[ "$(files seed5_w1)" = "$(files seed5_w4)" ] ||
  fail "the two runs wrote different files: $(diff <(files seed5_w1) <(files seed5_w4) | tr '\n' ' ')"
n=0
while read -r f; do
  cmp "$T/seed5_w1/$f" "$T/seed5_w4/$f" >&2 || fail "seed5_w4/$f differs from seed5_w1/$f"
  n=$((n + 1))
done < <(files seed5_w1)
for want in ./probability.tif ./class.tif ./entropy.tif ./confusion.tif ./nprob_class.tif ./classes.csv \
  ./realisation-006.tif ./samples/iter-006.csv ./models/iter-006.json; do
  grep -qxF "$want" <(files seed5_w1) || fail "seed5_w1: $want missing"
done
ok "$n files byte-identical (summaries, realisations, samples/iter-*.csv, models/iter-*.json)"
oracle seed5_summaries check_run.py "$T/seed5_w1" --nprob 2 --iterations 6 --covariates "${covs[@]}"

check "--seed 6: other samples (every table differs), still valid"
run seed6 6 --seed 6 --workers 2
for k in 001 002 003 004 005 006; do
  if cmp -s "$T/seed5_w1/samples/iter-$k.csv" "$T/seed6/samples/iter-$k.csv"; then
    fail "samples/iter-$k.csv is the same with --seed 5 and --seed 6"
  fi
done
ok "all 6 sample tables differ between --seed 5 and --seed 6"
if cmp -s "$T/seed5_w1/probability.tif" "$T/seed6/probability.tif"; then
  fail "probability.tif is the same with --seed 5 and --seed 6"
fi
ok "probability.tif differs between --seed 5 and --seed 6"
oracle seed6_samples check_samples.py "$T/seed6" --polygons "$D/polygons.gpkg" --covariates "${covs[@]}" \
  --class-field soil --samples-per-polygon 15 --gdal-points 5

check "the prediction pass reads each covariate block once, for --iterations 1 and --iterations 20"
run iter1 1 --seed 3 --workers 2
expect_block_reads iter1 "$BLOCKS"
oracle iter1_summaries check_run.py "$T/iter1" --iterations 1 --covariates "${covs[@]}"
run iter20 20 --seed 3 --workers 2
expect_block_reads iter20 "$BLOCKS"
oracle iter20_summaries check_run.py "$T/iter20" --iterations 20 --covariates "${covs[@]}"
