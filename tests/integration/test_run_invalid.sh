#!/usr/bin/env bash
# test_run_invalid.sh -- `gridmill run` on polygons that are not valid (issue 15, D7): a self-intersecting
# bow-tie, whose lobes cancel in its signed area, is repaired with MakeValid and sampled by its true 8 km² like
# a valid square of the same area, every point inside the repaired lobes; a zero-area sliver is skipped; each is
# named in one warning (file, feature, class or map unit); past 20 such features one summary line gives the
# true totals, as does the reader's polygon line. The oracle repairs with OGR's MakeValid on its own.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DENSITY=5  # points per km²: 40 for the square and for the repaired bow-tie (8 km² each)
ITERATIONS=2

gm_require_build
D=$T/data
make_run_data "$D"
covs=("$D/elevation.tif" "$D/wetness.tif" "$D/climate.tif")

# invalid.gpkg (plain, field soil): FID 1 a valid square of 8 km², FID 2 the bow-tie (0,0),(4000,4000),(4000,0),
# (0,4000) offset into the covariates (2 triangles of 4 km² once repaired), FID 3 a sliver of 3 collinear points.
# many.gpkg (composition keyed by map_unit): 24 small bow-ties with slivers at FIDs 5 and 26, then a valid square
# (FID 27): 26 invalid features, so 20 are named and the summary counts the rest. Every polygon lies on valid
# pixels of make_run_data's grid (checked), so no point is ever redrawn.
mklog=$GM_LOGS/make_invalid.log
"$PYTHON" - "$D" <<'PY' >"$mklog" 2>&1 || fail "making the invalid polygons: $(tail -n 3 "$mklog")"
import math, os, sys
import numpy as np
from osgeo import gdal, ogr, osr
gdal.UseExceptions()
ogr.UseExceptions()
d = sys.argv[1]
srs = osr.SpatialReference()
srs.ImportFromEPSG(32633)
srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
valid, gt = None, None
for name in ("elevation", "wetness", "climate"):
    ds = gdal.Open(os.path.join(d, name + ".tif"))
    gt = ds.GetGeoTransform()
    for b in range(1, ds.RasterCount + 1):
        ok = ds.GetRasterBand(b).ReadAsArray() != -9999
        valid = ok if valid is None else valid & ok

def ring(points):
    return "(" + ",".join("%.10f %.10f" % p for p in points + points[:1]) + ")"

def on_valid(wkt):
    env = ogr.CreateGeometryFromWkt(wkt).GetEnvelope()
    c0, c1 = int((env[0] - gt[0]) // gt[1]), int((env[1] - gt[0]) // gt[1])
    r0, r1 = int((env[3] - gt[3]) // gt[5]), int((env[2] - gt[3]) // gt[5])
    if not valid[r0:r1 + 1, c0:c1 + 1].all():
        sys.exit("%s: not on valid pixels of the covariates (did make_run_data change?)" % wkt[:60])

def write(path, fields, rows):
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(path)
    lyr = ds.CreateLayer("units", srs, ogr.wkbPolygon, ["FID=fid"])
    for f in fields:
        lyr.CreateField(ogr.FieldDefn(f, ogr.OFTString))
    for fid, values, wkt in rows:
        on_valid(wkt)
        feat = ogr.Feature(lyr.GetLayerDefn())
        feat.SetFID(fid)
        for f, v in zip(fields, values):
            feat.SetField(f, v)
        feat.SetGeometry(ogr.CreateGeometryFromWkt(wkt))
        lyr.CreateFeature(feat)
    ds = None

def bowtie(x, y, s):
    return "POLYGON(%s)" % ring([(x, y), (x + s, y + s), (x + s, y), (x, y + s)])

def square(x, y, s):
    return "POLYGON(%s)" % ring([(x, y), (x + s, y), (x + s, y + s), (x, y + s)])

def sliver(x, y):
    return "POLYGON(%s)" % ring([(x, y), (x + 1000, y), (x + 2000, y)])

side = math.sqrt(8e6)
write(os.path.join(d, "invalid.gpkg"), ["soil"], [
    (1, ["square"], square(500600, 4999400 - side, side)),
    (2, ["bowtie"], bowtie(506400, 4993200, 4000)),
    (3, ["sliver"], sliver(501000, 4992500))])
rows = []
for k in range(24):
    fid = k + 1 + (k >= 4)  # FIDs 1-4, 6-25
    rows.append((fid, ["MU%02d" % fid], bowtie(500300 + (k % 8) * 900, 4996700 + (k // 8) * 1000, 600)))
rows += [(5, ["MU05"], sliver(501000, 4992500)), (26, ["MU26"], sliver(501000, 4991600)),
         (27, ["MU27"], square(508700, 4998900, 600))]
write(os.path.join(d, "many.gpkg"), ["map_unit"], sorted(rows))
with open(os.path.join(d, "many.csv"), "w") as f:
    f.write("polygon,class,proportion\n")
    for fid, (mu,), _ in sorted(rows):
        f.write("%s,Lobed,0.6\n%s,Square,0.4\n" % (mu, mu) if fid != 27 else "%s,Square,1\n" % mu)
PY

check "plain mode, --sample-density $DENSITY, $ITERATIONS iterations: a bow-tie, a square of the same area, a sliver"
out=$T/invalid
run_gridmill invalid run --polygons "$D/invalid.gpkg" --class-field soil --covariates "${covs[@]}" --out "$out" \
  --iterations "$ITERATIONS" --sample-density "$DENSITY" --seed 5 --workers 2 --block-size 128
expect_success invalid
assert_no_stages invalid

check "warnings: the bow-tie repaired and the sliver skipped, each named by file, feature and class"
# GEOS names where the bow-tie crosses itself: its centre, (506400 + 2000, 4993200 + 2000).
expect_stderr invalid 'invalid\.gpkg: feature 2 \(class bowtie\) is not a valid polygon '\
'\(self-intersection at or near point 508400 4995200\); repaired with MakeValid$' "the bow-tie's repair"
expect_stderr invalid 'invalid\.gpkg: feature 3 \(class sliver\) is not a valid polygon \([^)]+\) '\
'and MakeValid leaves no area; skipped$' "the sliver's skip"
n=$(grep -c 'is not a valid polygon' "$GM_LOGS/invalid.err" || true)
[ "$n" -eq 2 ] || fail "invalid: $n 'is not a valid polygon' warnings, expected 2 (features 2 and 3)"
! grep -q 'features are not valid polygons' "$GM_LOGS/invalid.err" ||
  fail "invalid: a summary line for 2 invalid features (it is for more than 20)"
ok "invalid: 2 warnings, no summary line"
if grep -E '[1-9][0-9]* smaller than a pixel' "$GM_LOGS/invalid.err" >&2; then
  fail "invalid: a polygon reported smaller than a pixel (the bow-tie's area taken as 0?)"
fi
ok "invalid: no polygon smaller than a pixel"
expect_stderr invalid 'invalid\.gpkg: 2 polygons, 2 classes; 1 features skipped \(no value 0, no geometry 0, '\
'no composition 0, invalid beyond repair 1\); 1 invalid polygons repaired with MakeValid$' \
  "the true totals (1 skipped, 1 repaired)"

check "samples: the bow-tie gets as many points as the square (40 each), in both its lobes; the sliver none"
"$PYTHON" - "$out" <<'PY' || fail "invalid: the sample counts are wrong (above)"
import csv, glob, sys
lobes = {"left": lambda x, y: x - 506400 < 2000, "right": lambda x, y: x - 506400 > 2000}
bad = 0
for path in sorted(glob.glob(sys.argv[1] + "/samples/iter-*.csv")):
    rows = list(csv.DictReader(open(path, newline="")))
    n = {p: sum(r["polygon"] == p for r in rows) for p in ("1", "2", "3")}
    tie = [(float(r["x"]), float(r["y"])) for r in rows if r["polygon"] == "2"]
    per_lobe = {k: sum(f(x, y) for x, y in tie) for k, f in lobes.items()}
    print("   %s: square %d, bow-tie %d (lobes %d + %d), sliver %d" % (
        path.rsplit("/", 1)[1], n["1"], n["2"], per_lobe["left"], per_lobe["right"], n["3"]))
    if not (39 <= n["1"] <= 41 and 39 <= n["2"] <= 41 and abs(n["1"] - n["2"]) <= 1 and n["3"] == 0):
        print("   expected about 40 points for the square and for the bow-tie, none for the sliver")
        bad = 1
    if min(per_lobe.values()) < 8:
        print("   expected about 20 points in each lobe of the bow-tie")
        bad = 1
sys.exit(bad)
PY
ok "invalid: bow-tie and square sampled alike"

check "samples strictly inside MakeValid(bow-tie) and the square, counts by the repaired areas (oracle)"
oracle invalid_samples check_samples.py "$out" --polygons "$D/invalid.gpkg" --covariates "${covs[@]}" \
  --class-field soil --sample-density "$DENSITY" --gdal-points 10

check "composition by map_unit, 26 invalid features of 27: 20 named, then one summary line with the true totals"
out2=$T/many
run_gridmill many run --polygons "$D/many.gpkg" --composition "$D/many.csv" --id-field map_unit \
  --covariates "${covs[@]}" --out "$out2" --iterations 1 --samples-per-polygon 4 --seed 6 --workers 2
expect_success many
assert_no_stages many
named=$(grep -oE 'many\.gpkg: feature [0-9]+ \(map unit MU[0-9]+\) is not a valid polygon' "$GM_LOGS/many.err" |
  sed -E 's/.*feature ([0-9]+) .*/\1/' | paste -sd, - || true)
want=$(seq 1 20 | paste -sd, -)
[ "$named" = "$want" ] || fail "many: features named in warnings: '$named', expected $want"
ok "many: features $want named, one warning each"
expect_stderr many 'many\.gpkg: feature 5 \(map unit MU05\) is not a valid polygon \([^)]+\) '\
'and MakeValid leaves no area; skipped$' "sliver MU05's skip"
expect_stderr many 'many\.gpkg: 26 features are not valid polygons: 24 repaired with MakeValid, 2 skipped '\
'\(only the first 20 are named above\)$' "the summary's true totals"
expect_stderr many 'many\.gpkg: 25 polygons, 2 classes; 2 features skipped \(no value 0, no geometry 0, '\
'no composition 0, invalid beyond repair 2\); 24 invalid polygons repaired with MakeValid$' "the reader's true totals"
oracle many_samples check_samples.py "$out2" --polygons "$D/many.gpkg" --covariates "${covs[@]}" \
  --composition "$D/many.csv" --id-field map_unit --samples-per-polygon 4 --gdal-points 10
