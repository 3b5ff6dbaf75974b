#!/usr/bin/env bash
# test_run_observations.sh -- observations as rdsmart takes them (issue 14, item 3): a CSV x,y,soil_class as R's
# write.csv writes it (quoted, row names), in the rasters' CRS or another (--observations-crs), with a class the
# composition does not name (it joins the classes, as rdsmart adds it); the field defaults to soil_class in
# composition mode. The CSV run equals the run on the same points in a GeoPackage; the oracle (check_samples.py)
# finds each observation once per table at its place with its class. A CSV whose points all lie off the
# rasters is an error naming the file.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

gm_require_build
D=$T/data
make_run_data "$D"
"$PYTHON" - "$D" <<'PY' || fail "cannot write the observations"
import sys
from osgeo import gdal, ogr, osr
d = sys.argv[1]
src = ogr.Open(f"{d}/obs.gpkg")
lyr = src.GetLayer(0)
srs = lyr.GetSpatialRef()
pts = [(f.GetGeometryRef().GetX(), f.GetGeometryRef().GetY(), f.GetField("soil")) for f in lyr]
gt = gdal.Open(f"{d}/elevation.tif").GetGeoTransform()
pts.append((gt[0] + 100.5 * gt[1], gt[3] + 80.5 * gt[5], "Vertosol"))  # a class the composition does not name
ll = osr.SpatialReference()
ll.ImportFromEPSG(4326)
ll.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
to_ll = osr.CoordinateTransformation(srs, ll)
with open(f"{d}/obs.csv", "w") as f, open(f"{d}/obs_ll.csv", "w") as g, open(f"{d}/obs_off.csv", "w") as h:
    f.write('"","x","y","soil_class"\n')
    g.write('"","x","y","soil_class"\n')
    h.write('"","x","y","soil_class"\n')
    for i, (x, y, c) in enumerate(pts, 1):
        f.write(f'"{i}",{x!r},{y!r},"{c}"\n')
        lon, lat, _ = to_ll.TransformPoint(x, y)
        g.write(f'"{i}",{lon!r},{lat!r},"{c}"\n')
        h.write(f'"{i}",{x - 1e7!r},{y!r},"{c}"\n')
out = ogr.GetDriverByName("GPKG").CreateDataSource(f"{d}/obs_all.gpkg")
ol = out.CreateLayer("obs", srs, ogr.wkbPoint)
ol.CreateField(ogr.FieldDefn("soil_class", ogr.OFTString))
for x, y, c in pts:
    feat = ogr.Feature(ol.GetLayerDefn())
    feat.SetField("soil_class", c)
    p = ogr.Geometry(ogr.wkbPoint)
    p.AddPoint_2D(x, y)
    feat.SetGeometry(p)
    ol.CreateFeature(feat)
out = None
PY
covs=("$D/elevation.tif" "$D/wetness.tif" "$D/climate.tif")
common=(--polygons "$D/polygons.gpkg" --composition "$D/composition.csv" --covariates "${covs[@]}" --iterations 3
  --samples-per-polygon 10 --workers 2 --seed 4)

check "observations from a GeoPackage and from R's CSV (no field given: soil_class): the same run"
run_gridmill gpkg run "${common[@]}" --observations "$D/obs_all.gpkg" --out "$T/gpkg"
expect_success gpkg
run_gridmill csv run "${common[@]}" --observations "$D/obs.csv" --out "$T/csv"
expect_success csv
for f in classes.csv probability.tif class.tif entropy.tif samples/iter-001.csv samples/iter-003.csv; do
  cmp "$T/gpkg/$f" "$T/csv/$f" >&2 || fail "csv: $f differs from the GeoPackage run"
done
grep -q ',Vertosol$' "$T/csv/classes.csv" || fail "csv: the observed class Vertosol is not in classes.csv"
ok "csv: the same bytes as the GeoPackage run; classes.csv: $(tail -n +2 "$T/csv/classes.csv" | cut -d, -f2 | paste -sd' ' -)"
oracle csv_samples check_samples.py "$T/gpkg" --polygons "$D/polygons.gpkg" --covariates "${covs[@]}" \
  --composition "$D/composition.csv" --samples-per-polygon 10 --observations "$D/obs_all.gpkg" \
  --observations-field soil_class --gdal-points 5

check "the CSV in lon/lat with --observations-crs EPSG:4326: the same classes and maps"
run_gridmill ll run "${common[@]}" --observations "$D/obs_ll.csv" --observations-crs EPSG:4326 --out "$T/ll"
expect_success ll
for f in classes.csv probability.tif class.tif entropy.tif; do
  cmp "$T/gpkg/$f" "$T/ll/$f" >&2 || fail "ll: $f differs from the run in the rasters' CRS"
done
ok "ll: classes and summaries byte-identical to the run in the rasters' CRS"

check "a CSV whose points all lie off the rasters: an error naming it"
run_gridmill off run "${common[@]}" --observations "$D/obs_off.csv" --out "$T/off"
expect_failure off
expect_stderr off "obs_off\.csv: no observation on the rasters \([0-9]+ features: 0 without a value or a point, [0-9]+ off the rasters or on nodata\)" \
  "the file and why"
