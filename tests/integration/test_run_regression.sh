#!/usr/bin/env bash
# test_run_regression.sh -- `gridmill run --target-field`: mean, sd and quantiles equal numpy's over the
# realisations, each realisation equals `gridmill predict` and python xgboost with its model, samples carry their
# polygon's target, and the mean map follows the true depth.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# mean.tif's correlation with depth_truth.tif was 0.975 when the test was written (data seed 7, run seed 9).
CORRELATION_FLOOR=0.90
ITERATIONS=8
QUANTILES=0.1,0.5,0.9

gm_require_build
D=$T/data
make_run_data "$D"
covs=("$D/elevation.tif" "$D/wetness.tif" "$D/climate.tif")

check "--target-field depth, $ITERATIONS iterations, --quantiles $QUANTILES --realisations"
out=$T/reg
run_gridmill reg run --polygons "$D/polygons.gpkg" --target-field depth --covariates "${covs[@]}" --out "$out" \
  --iterations "$ITERATIONS" --samples-per-polygon 20 --seed 9 --workers 2 --block-size 128 \
  --quantiles "$QUANTILES" --realisations
expect_success reg
assert_no_stages reg

check "mean, sd (ddof 0) and quantiles (linear) equal numpy's over the realisations within 1e-4 relative"
oracle reg_summaries check_run.py "$out" --iterations "$ITERATIONS" --quantiles "$QUANTILES" --covariates "${covs[@]}"

check "samples carry their polygon's depth, inside it, with the covariate values gdallocationinfo reads"
oracle reg_samples check_samples.py "$out" --polygons "$D/polygons.gpkg" --covariates "${covs[@]}" \
  --target-field depth --samples-per-polygon 20 --gdal-points 5

check "models/iter-*.json are reg:squarederror models python xgboost loads, fitting their own samples best"
oracle reg_models check_models.py "$out" --min-fit 0.5 --own-best

check "realisation-001.tif equals python xgboost's prediction (bitwise) and gridmill predict's (byte-identical)"
mkdir -p "$T/real001" "$T/predict1"
ln -sf "$out/realisation-001.tif" "$T/real001/prediction.tif"
oracle reg_real001 check_predict.py --covariates "${covs[@]}" --model "$out/models/iter-001.json" --out "$T/real001"
run_gridmill predict1 predict --covariates "${covs[@]}" --model "$out/models/iter-001.json" --out "$T/predict1" \
  --workers 2 --block-size 128
expect_success predict1
assert_no_stages predict1
cmp "$out/realisation-001.tif" "$T/predict1/prediction.tif" >&2 ||
  fail "realisation-001.tif differs from predict's prediction.tif"
ok "realisation-001.tif and predict1/prediction.tif are byte-identical"

check "mean.tif correlates with the true depth at least $CORRELATION_FLOOR"
corr=$("$PYTHON" - "$out/mean.tif" "$D/depth_truth.tif" <<'PY'
import sys
import numpy as np
from osgeo import gdal
ds = gdal.Open(sys.argv[1])
mean = ds.ReadAsArray().astype(np.float64)
ds = gdal.Open(sys.argv[2])
truth = ds.ReadAsArray().astype(np.float64)
valid = truth != -9999
print("%.4f" % np.corrcoef(mean[valid], truth[valid])[0, 1])
PY
) || fail "correlation: $corr"
awk -v c="$corr" -v f="$CORRELATION_FLOOR" 'BEGIN { exit !(c >= f) }' ||
  fail "mean.tif correlates with depth_truth.tif at $corr, below $CORRELATION_FLOOR"
ok "mean.tif correlates with depth_truth.tif at $corr (floor $CORRELATION_FLOOR)"
