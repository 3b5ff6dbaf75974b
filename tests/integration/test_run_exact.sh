#!/usr/bin/env bash
# test_run_exact.sh -- exact sampling (issue 14, item 6): a ragged polygon whose envelope is 98 % nodata gets
# exactly its 15 points in every one of 30 iterations (drawing among its valid pixels once 100 envelope draws
# fail), inside it and on valid covariates; a polygon wholly on nodata gets none, and that is reported per
# iteration and polygon: a warning of lost data shown even with -q, samples/not-drawn-NNN.csv, and run.json's
# points_not_drawn. Oracle: check_samples.py --not-drawn (OGR containment, GDAL reads, and no listed polygon
# meets a pixel of valid covariates).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

gm_require_build
D=$T/data
mkdir -p "$D"
"$PYTHON" - "$D" <<'PY' || fail "cannot make the data"
import sys
import numpy as np
from osgeo import gdal, ogr, osr
d = sys.argv[1]
W = H = 200
srs = osr.SpatialReference()
srs.ImportFromEPSG(32633)
gt = (500000.0, 30.0, 0.0, 5000000.0, 0.0, -30.0)
rng = np.random.default_rng(3)
yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
a = (np.sin(xx / 9.0) * 50 + yy).astype(np.float32)
b = (xx * 0.3 - yy * 0.2).astype(np.float32)
valid = np.ones((H, W), bool)
valid[:, :100] = False                                # the west half is nodata ...
keep = rng.random((H, 100)) < 0.02                    # ... but for 2 % of its pixels
valid[:, :100] |= keep
valid[150:, 100:150] = False                          # and a patch in the east, wholly nodata
for name, arr in (("a", a), ("b", b)):
    arr = arr.copy()
    arr[~valid] = -9999
    ds = gdal.GetDriverByName("GTiff").Create(f"{d}/cov_{name}.tif", W, H, 1, gdal.GDT_Float32)
    ds.SetGeoTransform(gt)
    ds.SetProjection(srs.ExportToWkt())
    ds.GetRasterBand(1).WriteArray(arr)
    ds.GetRasterBand(1).SetNoDataValue(-9999)
    ds = None
drv = ogr.GetDriverByName("GPKG")
src = drv.CreateDataSource(f"{d}/polygons.gpkg")
lyr = src.CreateLayer("units", srs, ogr.wkbPolygon)
lyr.CreateField(ogr.FieldDefn("soil", ogr.OFTString))
def square(c0, r0, c1, r1):
    ring = ogr.Geometry(ogr.wkbLinearRing)
    for c, r in ((c0, r0), (c1, r0), (c1, r1), (c0, r1), (c0, r0)):
        ring.AddPoint_2D(gt[0] + c * gt[1], gt[3] + r * gt[5])
    g = ogr.Geometry(ogr.wkbPolygon)
    g.AddGeometry(ring)
    return g
for soil, g in (("ragged", square(2, 2, 98, 198)), ("plain", square(110, 10, 190, 140)),
                ("sea", square(105, 155, 145, 195))):
    f = ogr.Feature(lyr.GetLayerDefn())
    f.SetField("soil", soil)
    f.SetGeometry(g)
    lyr.CreateFeature(f)
src = None
PY
covs=("$D/cov_a.tif" "$D/cov_b.tif")

check "30 iterations, 15 points per polygon, -q: exact counts, the lost points reported even so"
GM_PLAIN=1 run_gridmill exact run --polygons "$D/polygons.gpkg" --class-field soil --covariates "${covs[@]}" \
  --iterations 30 --samples-per-polygon 15 --workers 2 --out "$T/exact" -q
expect_success exact
n=$(grep -cE '^gridmill-reader: warning: sampling: iteration [0-9]+: 15 points not drawn in 1 polygon .*polygon 3 \(0 of 15\)' \
  "$GM_LOGS/exact.err" || true)
[ "$n" -eq 30 ] || { sed 's/^/   | /' "$GM_LOGS/exact.err" | head >&2; fail "exact: $n of 30 iterations report the sea's 15 lost points with -q"; }
ok "exact: with -q, 30 warnings like: $(grep -m1 'not drawn' "$GM_LOGS/exact.err" | sed "s|$T|\$T|g" | cut -c1-170)"
oracle exact check_samples.py "$T/exact" --polygons "$D/polygons.gpkg" --class-field soil --covariates "${covs[@]}" \
  --samples-per-polygon 15 --not-drawn --gdal-points 10
for i in $(seq -f %03g 1 30); do
  want=$(printf 'iteration,polygon,wanted,drawn\n%d,3,15,0' "$((10#$i))")
  [ "$(cat "$T/exact/samples/not-drawn-$i.csv")" = "$want" ] || fail "exact: samples/not-drawn-$i.csv is not the sea's 15"
  ragged=$(awk -F, 'NR > 1 && $2 == 1' "$T/exact/samples/iter-$i.csv" | wc -l)
  [ "$ragged" -eq 15 ] || fail "exact: iteration $i: the ragged polygon got $ragged points, not 15"
done
ok "exact: the ragged polygon (2 % valid) has 15 points in each of the 30 iterations; not-drawn lists the sea's"
"$PYTHON" - "$T/exact/run.json" <<'PY' || fail "exact: run.json does not account for the lost points"
import json, sys
doc = json.load(open(sys.argv[1]))
lost = doc["points_not_drawn"]
assert lost["points"] == 30 * 15, lost["points"]
assert len(lost["polygons"]) == 30 and all(r["polygon"] == "3" and r["wanted"] == 15 and r["drawn"] == 0
                                            for r in lost["polygons"]), lost["polygons"][:3]
print("run.json: points_not_drawn", lost["points"], "in", len(lost["polygons"]), "(iteration, polygon) rows")
PY
ok "exact: run.json's points_not_drawn: 450 points, 30 rows"
