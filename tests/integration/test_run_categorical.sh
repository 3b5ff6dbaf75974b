#!/usr/bin/env bash
# test_run_categorical.sh -- categorical covariates (issue 14, item 1): --categorical geology.tif trains every
# model with XGBoost's native categorical splits (feature_types "c"); python xgboost loads the models, finds
# categorical splits on that feature, and its predictions give each realisation's classes exactly; a
# categorical band holding 2.5, or -1, is an error naming the file.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

gm_require_build
D=$T/data
make_run_data "$D"
"$PYTHON" - "$D" <<'PY' || fail "cannot make the geology"
import sys
import numpy as np
from osgeo import gdal
d = sys.argv[1]
src = gdal.Open(f"{d}/elevation.tif")
w, h = src.RasterXSize, src.RasterYSize
yy, xx = np.mgrid[0:h, 0:w]
geo = ((xx // 37) * 7 + (yy // 29) * 3) % 8          # patches of 8 rock units, codes 0..7 in no order
for name, arr in (("geology", geo), ("geology_frac", np.where(geo == 3, 2.5, geo)), ("geology_neg", geo - 1)):
    out = gdal.GetDriverByName("GTiff").Create(f"{d}/{name}.tif", w, h, 1, gdal.GDT_Float32)
    out.SetGeoTransform(src.GetGeoTransform())
    out.SetProjection(src.GetProjection())
    out.GetRasterBand(1).WriteArray(arr.astype(np.float32))
    out = None
PY
covs=("$D/elevation.tif" "$D/wetness.tif" "$D/geology.tif")
args=(run --polygons "$D/polygons.gpkg" --class-field soil --iterations 3 --samples-per-polygon 30 --workers 2
  --trees 3 --max-depth 6 --realisations)

check "--categorical geology.tif: models with categorical splits, realisations as python xgboost predicts"
run_gridmill cat "${args[@]}" --covariates "${covs[@]}" --categorical "$D/geology.tif" --out "$T/cat"
expect_success cat
"$PYTHON" - "$T/cat" "${covs[@]}" <<'PY' || fail "cat: the models or realisations are not XGBoost's categorical ones"
import glob, json, sys
import numpy as np
import xgboost as xgb
from osgeo import gdal
out, covs = sys.argv[1], sys.argv[2:]
bands = [gdal.Open(c).ReadAsArray().astype(np.float32) for c in covs]
x = np.stack([b.reshape(-1) for b in bands], axis=1)
ncat = 0
for i, m in enumerate(sorted(glob.glob(f"{out}/models/iter-*.json")), 1):
    doc = json.load(open(m))
    assert doc["learner"]["feature_types"] == ["q", "q", "c"], doc["learner"].get("feature_types")
    trees = doc["learner"]["gradient_booster"]["model"]["trees"]
    ncat += sum(sum(1 for t, f in zip(tr["split_type"], tr["split_indices"]) if t == 1 and f == 2) for tr in trees)
    bst = xgb.Booster(model_file=m)
    bst.set_param({"nthread": 1})
    want = np.argmax(bst.inplace_predict(x), axis=1)
    got = gdal.Open(f"{out}/realisation-{i:03d}.tif").ReadAsArray().reshape(-1)
    valid = got != 255
    bad = int((got[valid] != want[valid]).sum())
    assert bad == 0, f"realisation {i}: {bad} pixels differ from python xgboost"
assert ncat > 0, "no categorical split on the geology"
print(f"3 models, {ncat} categorical splits on the geology; every realisation is python xgboost's classes")
PY
ok "cat: python xgboost loads the models (feature_types q,q,c; categorical splits) and predicts every realisation"

for bad in frac neg; do
  check "a categorical band holding $([ $bad = frac ] && echo 2.5 || echo -1): an error naming the file"
  run_gridmill "$bad" "${args[@]}" --covariates "$D/elevation.tif" "$D/wetness.tif" "$D/geology_$bad.tif" \
    --categorical "$D/geology_$bad.tif" --out "$T/$bad"
  expect_failure "$bad"
  expect_stderr "$bad" "geology_$bad\.tif: a categorical band holds (2\.5|-1) at .*: categories are whole numbers >= 0" \
    "the file and the value"
done

check "predict with a categorical model (as a user brings it): the realisation's bytes"
run_gridmill predict predict --covariates "${covs[@]}" --model "$T/cat/models/iter-002.json" --workers 2 \
  --out "$T/predict"
expect_success predict
cmp "$T/cat/realisation-002.tif" "$T/predict/class.tif" >&2 || fail "predict: class.tif is not realisation-002.tif"
ok "predict: class.tif byte-identical to the run's realisation-002.tif"
