#!/usr/bin/env bash
# test_run_strata.sh -- stratified DSMART as rdsmart defines it (issue 14, item 4, strata): a composition
# poly,mapunit,stratum,soil_class,proportion and --strata RASTER; each point's class is drawn among its
# polygon's components of the stratum under the point (weighted within the stratum), no point lies on the
# strata's nodata, and the drawn classes follow the stratum's shares (chi-square, pooled). A point in a stratum
# its polygon has no component for is an error naming the polygon and the stratum; a stratum column without
# --strata, or --strata without one, is refused before the run.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

gm_require_build
D=$T/data
make_run_data "$D"
"$PYTHON" - "$D" <<'PY' || fail "cannot make the strata"
import csv, sys
import numpy as np
from osgeo import gdal
d = sys.argv[1]
src = gdal.Open(f"{d}/elevation.tif")
w, h = src.RasterXSize, src.RasterYSize
st = np.where(np.arange(w)[None, :] < w // 2, 1, 2).repeat(h, axis=0).astype(np.float32)
st[:, w // 2 - 10:w // 2 + 10] = -1          # a strip of strata nodata between the two
out = gdal.GetDriverByName("GTiff").Create(f"{d}/strata.tif", w, h, 1, gdal.GDT_Float32)
out.SetGeoTransform(src.GetGeoTransform())
out.SetProjection(src.GetProjection())
out.GetRasterBand(1).WriteArray(st)
out.GetRasterBand(1).SetNoDataValue(-1)
out = None
rows = list(csv.DictReader(open(f"{d}/composition.csv")))
polys = sorted({r["polygon"] for r in rows}, key=int)
classes = sorted({r["class"] for r in rows})
with open(f"{d}/comp_strata.csv", "w") as f, open(f"{d}/comp_strata_bad.csv", "w") as g:
    for fh in (f, g):
        fh.write('"poly","mapunit","stratum","soil_class","proportion"\n')
    for k, p in enumerate(polys):
        a, b = classes[k % len(classes)], classes[(k + 1) % len(classes)]
        for fh in (f, g):
            fh.write(f'{p},"MU{p}",1,"{a}",75\n{p},"MU{p}",1,"{b}",25\n')
        f.write(f'{p},"MU{p}",2,"Vertosol",100\n')   # the bad one gives no stratum 2 at all
PY
covs=("$D/elevation.tif" "$D/wetness.tif")
args=(run --polygons "$D/polygons.gpkg" --covariates "${covs[@]}" --iterations 20 --samples-per-polygon 25
  --workers 2 --seed 8)

check "--strata with a stratified composition: classes drawn within the stratum under each point"
run_gridmill strata "${args[@]}" --composition "$D/comp_strata.csv" --strata "$D/strata.tif" --out "$T/strata"
expect_success strata
"$PYTHON" - "$T/strata" "$D" <<'PY' || fail "strata: the drawn classes do not follow the strata"
import csv, glob, math, sys
from osgeo import gdal
out, d = sys.argv[1], sys.argv[2]
ds = gdal.Open(f"{d}/strata.tif")
gt, st = ds.GetGeoTransform(), ds.ReadAsArray()
comp = {}
for r in csv.DictReader(open(f"{d}/comp_strata.csv")):
    comp.setdefault((r["poly"], int(r["stratum"])), {})[r["soil_class"]] = float(r["proportion"])
counts, n = {}, 0
for path in sorted(glob.glob(f"{out}/samples/iter-*.csv")):
    for r in csv.DictReader(open(path)):
        x, y = float(r["x"]), float(r["y"])
        s = int(st[int((y - gt[3]) // gt[5]), int((x - gt[0]) // gt[1])])
        assert s != -1, f"a point on the strata's nodata at {x}, {y}"
        parts = comp[(r["polygon"], s)]
        assert r["class"] in parts, f"polygon {r['polygon']} stratum {s}: class {r['class']} not among {parts}"
        counts.setdefault((r["polygon"], s), {}).setdefault(r["class"], 0)
        counts[(r["polygon"], s)][r["class"]] += 1
        n += 1
chi2 = df = 0.0
for key, got in counts.items():
    parts, tot = comp[key], sum(comp[key].values())
    m = sum(got.values())
    if len(parts) < 2 or m < 20:
        continue
    chi2 += sum((got.get(c, 0) - m * p / tot) ** 2 / (m * p / tot) for c, p in parts.items())
    df += len(parts) - 1
z = (chi2 - df) / math.sqrt(2 * df)
assert df > 10 and abs(z) < 4, (chi2, df, z)
print(f"{n} points, none on strata nodata, each class among its stratum's; chi2 {chi2:.1f} on {df:.0f} df (z {z:.2f})")
PY
ok "strata: every point's class is one of its stratum's, with the stratum's shares"

check "a point in a stratum its polygon has no component for: an error naming them"
run_gridmill bad "${args[@]}" --composition "$D/comp_strata_bad.csv" --strata "$D/strata.tif" --out "$T/bad"
expect_failure bad
expect_stderr bad "polygon [0-9]+ has no composition for stratum 2" "the polygon and the stratum"

check "a stratum column without --strata, and --strata without one: refused"
run_gridmill nostrata "${args[@]}" --composition "$D/comp_strata.csv" --out "$T/nostrata"
expect_failure nostrata
expect_stderr nostrata "comp_strata\.csv: the composition has a stratum column: give the strata raster" "the missing --strata"
run_gridmill nocol "${args[@]}" --composition "$D/composition.csv" --strata "$D/strata.tif" --out "$T/nocol"
expect_failure nocol
expect_stderr nocol "option --strata: the composition has no stratum column" "the missing column"
