#!/usr/bin/env bash
# test_run_composition.sh -- `gridmill run --composition`: each sample's class is drawn from its polygon's
# composition (70 % / 30 % on the forced polygon), string class names coded in byte-wise order, the CSV keyed
# by FID or by --id-field alike, and polygons in EPSG:4326 over the UTM covariates.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

gm_require_build
D=$T/data
make_run_data "$D"
covs=("$D/elevation.tif" "$D/wetness.tif" "$D/climate.tif")

# meta KEY...: prints a value of the data's meta.json (nested keys).
meta() {
  "$PYTHON" -c 'import json, sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2:]:
    v = v[k]
print(v if isinstance(v, (str, int, float)) else "\n".join(map(str, v)))' "$D/meta.json" "$@"
}
forced=$(meta forced polygon)
forced_id=$(meta forced map_unit)
cls_a=$(meta forced A)

# 5 iterations x 300 samples: 1500 draws on the forced polygon, so +- 5 % is more than 4 standard deviations.
check "composition by FID, 300 samples per polygon, 5 iterations: polygon $forced draws '$cls_a' 70 % +- 5 %"
out=$T/comp
run_gridmill comp run --polygons "$D/polygons.gpkg" --composition "$D/composition.csv" --covariates "${covs[@]}" \
  --out "$out" --iterations 5 --samples-per-polygon 300 --seed 21 --workers 2
expect_success comp
assert_no_stages comp
oracle comp_samples check_samples.py "$out" --polygons "$D/polygons.gpkg" --covariates "${covs[@]}" \
  --composition "$D/composition.csv" --samples-per-polygon 300 --gdal-points 10 \
  --expect-share "$forced" "$cls_a" 0.70 0.05
oracle comp_summaries check_run.py "$out" --iterations 5 --covariates "${covs[@]}"

check "classes.csv codes the string class names in byte-wise order (upper case before lower case)"
expected=$(printf 'code,class\n'; meta classes | awk '{ print NR - 1 "," $0 }')
[ "$(tr -d '\r' <"$out/classes.csv")" = "$expected" ] ||
  fail "classes.csv is '$(tr '\n' ' ' <"$out/classes.csv")', expected '$(tr '\n' ' ' <<<"$expected")'"
ok "classes.csv: $(tail -n +2 "$out/classes.csv" | tr '\n' ' ')"

check "composition keyed by --id-field map_unit (polygon $forced is $forced_id): the same summaries as by FID"
out_id=$T/comp_id
run_gridmill comp_id run --polygons "$D/polygons.gpkg" --composition "$D/composition_by_id.csv" \
  --id-field map_unit --covariates "${covs[@]}" --out "$out_id" --iterations 5 --samples-per-polygon 300 \
  --seed 21 --workers 2
expect_success comp_id
assert_no_stages comp_id
for f in probability.tif class.tif entropy.tif confusion.tif classes.csv; do
  cmp "$out/$f" "$out_id/$f" >&2 || fail "comp_id/$f differs from comp/$f (same compositions, same seed)"
done
ok "probability, class, entropy, confusion and classes.csv byte-identical to the run keyed by FID"
# the tables name each polygon by its map_unit (the oracle refuses FIDs there)
oracle comp_id_samples check_samples.py "$out_id" --polygons "$D/polygons.gpkg" --covariates "${covs[@]}" \
  --composition "$D/composition_by_id.csv" --id-field map_unit --samples-per-polygon 300 --gdal-points 5 \
  --expect-share "$forced_id" "$cls_a" 0.70 0.05

check "polygons in EPSG:4326 (layer soil_map after a decoy layer) over the EPSG:32633 covariates"
out_ll=$T/latlon
run_gridmill latlon run --polygons "$D/polygons_4326.gpkg:soil_map" --class-field soil --covariates "${covs[@]}" \
  --out "$out_ll" --iterations 3 --samples-per-polygon 20 --seed 4 --workers 2
expect_success latlon
assert_no_stages latlon
oracle latlon_samples check_samples.py "$out_ll" --polygons "$D/polygons_4326.gpkg:soil_map" \
  --covariates "${covs[@]}" --class-field soil --samples-per-polygon 20 --gdal-points 20
oracle latlon_summaries check_run.py "$out_ll" --iterations 3 --covariates "${covs[@]}"

check "composition with polygons in EPSG:4326"
out_llc=$T/latlon_comp
run_gridmill latlon_comp run --polygons "$D/polygons_4326.gpkg:soil_map" --composition "$D/composition.csv" \
  --covariates "${covs[@]}" --out "$out_llc" --iterations 2 --samples-per-polygon 50 --seed 4 --workers 2
expect_success latlon_comp
assert_no_stages latlon_comp
oracle latlon_comp_samples check_samples.py "$out_llc" --polygons "$D/polygons_4326.gpkg:soil_map" \
  --covariates "${covs[@]}" --composition "$D/composition.csv" --samples-per-polygon 50 --gdal-points 10
