#!/usr/bin/env bash
# test_run_models_reuse.sh -- `gridmill run --models DIR` applies a previous run's models without training and
# writes the same bytes; --observations adds the observed points to every iteration's samples.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

gm_require_build
D=$T/data
make_run_data "$D"
covs=("$D/elevation.tif" "$D/wetness.tif" "$D/climate.tif")

# trained_nothing REF NAME: fails if run NAME wrote sample tables, or models other than run REF's.
trained_nothing() {
  local f
  if compgen -G "$T/$2/samples/*.csv" >/dev/null; then
    fail "$2: wrote sample tables although it applied --models: $(find "$T/$2/samples" -name "*.csv" -printf "%f ")"
  fi
  if [ -d "$T/$2/models" ]; then
    for f in "$T/$2/models"/*; do
      [ -e "$f" ] || continue
      cmp "$f" "$T/$1/models/$(basename "$f")" >&2 || fail "$2: models/$(basename "$f") is not $1's"
    done
  fi
  ok "$2: no samples and no new models written"
}

check "classification: a first run trains 4 models"
run_gridmill first run --polygons "$D/polygons.gpkg" --class-field soil --covariates "${covs[@]}" --out "$T/first" \
  --iterations 4 --samples-per-polygon 15 --seed 3 --workers 2 --block-size 128 --nprob 2 --realisations
expect_success first
assert_no_stages first

check "--models first/models (no polygons, so nothing can be trained), 1 worker: the same bytes"
run_gridmill reuse run --models "$T/first/models" --covariates "${covs[@]}" --out "$T/reuse" --workers 1 \
  --block-size 128 --nprob 2 --realisations
expect_success reuse
assert_no_stages reuse
same first reuse probability.tif class.tif entropy.tif confusion.tif nprob_class.tif nprob_probability.tif \
  realisation-001.tif realisation-002.tif realisation-003.tif realisation-004.tif
trained_nothing first reuse
oracle reuse_summaries check_run.py "$T/reuse" --iterations 4 --nprob 2 --covariates "${covs[@]}" --classes-optional

check "regression: --models of a --target-field run gives the same mean, sd and quantiles"
run_gridmill reg_first run --polygons "$D/polygons.gpkg" --target-field depth --covariates "${covs[@]}" \
  --out "$T/reg_first" --iterations 3 --samples-per-polygon 15 --seed 3 --workers 2 --quantiles 0.25,0.75
expect_success reg_first
assert_no_stages reg_first
run_gridmill reg_reuse run --models "$T/reg_first/models" --covariates "${covs[@]}" --out "$T/reg_reuse" \
  --workers 2 --quantiles 0.25,0.75
expect_success reg_reuse
assert_no_stages reg_reuse
same reg_first reg_reuse mean.tif sd.tif quantiles.tif
trained_nothing reg_first reg_reuse

check "--observations sites (class field soil): the 20 points in every iteration's table as polygon -1"
run_gridmill obs run --polygons "$D/polygons.gpkg" --class-field soil --covariates "${covs[@]}" --out "$T/obs" \
  --iterations 3 --samples-per-polygon 15 --seed 3 --workers 2 \
  --observations "$D/obs.gpkg:sites" --observations-field soil
expect_success obs
assert_no_stages obs
oracle obs_samples check_samples.py "$T/obs" --polygons "$D/polygons.gpkg" --covariates "${covs[@]}" \
  --class-field soil --samples-per-polygon 15 --observations "$D/obs.gpkg:sites" --observations-field soil \
  --gdal-points 5
oracle obs_summaries check_run.py "$T/obs" --iterations 3 --covariates "${covs[@]}"
oracle obs_models check_models.py "$T/obs"

check "--observations with --target-field depth (observations field defaults to the same name)"
run_gridmill obs_reg run --polygons "$D/polygons.gpkg" --target-field depth --covariates "${covs[@]}" \
  --out "$T/obs_reg" --iterations 2 --samples-per-polygon 10 --seed 3 --workers 2 --observations "$D/obs.gpkg"
expect_success obs_reg
assert_no_stages obs_reg
oracle obs_reg_samples check_samples.py "$T/obs_reg" --polygons "$D/polygons.gpkg" --covariates "${covs[@]}" \
  --target-field depth --samples-per-polygon 10 --observations "$D/obs.gpkg" --observations-field depth \
  --gdal-points 5
