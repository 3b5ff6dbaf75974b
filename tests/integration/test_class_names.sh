#!/usr/bin/env bash
# test_class_names.sh -- class names and colours in the outputs (issue 14, item 7): probability.tif's bands are
# described by the class names; class.tif, nprob_class.tif and each realisation carry GDAL category names (in
# their .aux.xml, which follows them to their final names) and a colour table with the report's colours, in
# GTiff and COG. A predict job's model names no classes: colour tables only, "class N" descriptions; with 40
# classes the palette's generated colours (past tab20's 18) are checked too. Oracle: tests/oracles/
# check_names.py (python3-gdal reads the files; the colours come from the report's own Python palette).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

gm_require_build
D=$T/data
make_run_data "$D/run"
make_data "$D" --size 200 150
args=(run --polygons "$D/run/polygons.gpkg" --class-field soil --covariates "$D/run/elevation.tif"
  "$D/run/wetness.tif" "$D/run/climate.tif" --iterations 2 --samples-per-polygon 10 --nprob 2 --realisations
  --workers 2)

for of in GTiff COG; do
  check "the full job, -of $of: names and colours in every class output"
  run_gridmill "names_$of" "${args[@]}" -of "$of" --out "$T/names_$of"
  expect_success "names_$of"
  oracle "names_$of" check_names.py "$T/names_$of" --classes "$T/names_$of/classes.csv"
  left=$(find "$T/names_$of" -maxdepth 1 -name '*.part*' -printf '%f ')
  [ -z "$left" ] || fail "names_$of: left under temporary names: $left"
done

check "predict with a 40-class model of no names: colour tables (generated colours past 18), 'class N' bands"
"$PYTHON" - "$D" <<'PY' || fail "cannot train the 40-class model"
import sys
import numpy as np
import xgboost as xgb
from osgeo import gdal
d = sys.argv[1]
bands = []
for c in "abc":
    a = gdal.Open(f"{d}/cov_{c}.tif").ReadAsArray().astype(np.float32)
    bands += list(a.reshape(-1, a.shape[-2] * a.shape[-1]))
x = np.stack(bands, axis=1)
x = x[np.isfinite(x).all(axis=1)][::7]
y = np.argsort(np.argsort(x[:, 0])) * 40 // len(x)
b = xgb.train({"objective": "multi:softprob", "num_class": 40, "max_depth": 3, "nthread": 1},
              xgb.DMatrix(x, label=y), num_boost_round=2)
b.save_model(f"{d}/forty.json")
PY
run_gridmill forty predict --covariates "$D/cov_a.tif" "$D/cov_b.tif" "$D/cov_c.tif" --model "$D/forty.json" \
  --probabilities --workers 2 --out "$T/forty"
expect_success forty
oracle forty check_names.py "$T/forty" --nclass 40
