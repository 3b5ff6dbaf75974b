#!/usr/bin/env bash
# test_inputs_cli.sh -- inputs in any GDAL raster and OGR vector format give the same outputs (VRT,
# /vsizip/, Shapefile, GeoJSON against GeoTIFF and GPKG), and every executable follows GDAL's command-line
# habits: --help, --version, --config, -q, --log-file with one line per event (time, stage, pid, level).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

gm_require_build
D=$T/data
mkdir -p "$D"
make_run_data "$D"
covs=("$D/elevation.tif" "$D/wetness.tif" "$D/climate.tif")

check "--help and --version on every executable"
for exe in "$GM_BUILD/gridmill-reader" "$GM_BUILD/gridmill-worker" "$GM_BUILD/gridmill-writer" "$GRIDMILL" \
  "$GM_ROOT/scripts/gridmill-report"; do
  "$exe" --help >"$T/help.txt" 2>&1 || fail "$exe --help exited non-zero"
  grep -qi "usage" "$T/help.txt" || fail "$exe --help prints no usage"
  "$exe" --version >"$T/version.txt" 2>&1 || fail "$exe --version exited non-zero"
  grep -qE "[0-9]+\.[0-9]+\.[0-9]+" "$T/version.txt" || fail "$exe --version prints no version"
done
ok "--help and --version on the three stages, the supervisor and the report"

check "the full job on GPKG polygons and GeoTIFF covariates (reference)"
run_gridmill gpkg run --polygons "$D/polygons.gpkg" --class-field soil --covariates "${covs[@]}" --iterations 3 \
  --workers 2 --out "$T/gpkg" --log-file "$T/run.log" --config GDAL_NUM_THREADS 1
expect_success gpkg
grep -qE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z gridmill-(reader|writer|worker)\[[0-9]+\] (info|warn|error|debug): ' \
  "$T/run.log" || fail "--log-file holds no well-formed line"
for stage in reader writer worker; do
  grep -q " gridmill-$stage\[" "$T/run.log" || fail "--log-file holds no line from gridmill-$stage"
done
ok "--log-file: $(wc -l <"$T/run.log") lines from every stage with time, stage, pid and level; --config accepted"

check "Shapefile and GeoJSON polygons, a VRT stack and /vsizip/ covariates: the same summaries"
ogr2ogr -f "ESRI Shapefile" "$T/polygons.shp" "$D/polygons.gpkg" >/dev/null
ogr2ogr -f GeoJSON "$T/polygons.geojson" "$D/polygons.gpkg" >/dev/null
gdalbuildvrt -q -separate "$T/stack.vrt" "$D/elevation.tif" "$D/wetness.tif" >/dev/null
(cd "$D" && zip -q "$T/climate.zip" climate.tif)
for map in "$T/polygons.shp" "$T/polygons.geojson"; do
  name=$(basename "$map" | tr . _)
  run_gridmill "$name" run --polygons "$map" --class-field soil --iterations 3 --workers 2 --out "$T/$name" -q \
    --covariates "$T/stack.vrt" "/vsizip/$T/climate.zip/climate.tif"
  expect_success "$name"
  for f in class.tif probability.tif entropy.tif confusion.tif; do
    cmp "$T/gpkg/$f" "$T/$name/$f" >&2 || fail "$name: $f differs from the GPKG/GeoTIFF run"
  done
  ok "$name with a VRT and /vsizip/ covariates: summaries byte-identical to GPKG and GeoTIFF's"
done

check "-q: a failing run prints its one error line and nothing else"
run_gridmill quiet_fail predict --covariates "$D/elevation.tif" --model "$T/gpkg/models/iter-001.json" --out "$T/qf" -q
expect_failure quiet_fail
expect_stderr quiet_fail "expects 4 features, the covariates have 1 band$" "the feature mismatch"
