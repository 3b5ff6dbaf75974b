#!/usr/bin/env bash
# test_run_rdsmart.sh -- compositions as DSMART users have them (issue 14, item 2): rdsmart's
# "poly","mapunit","soil_class","proportion" as R's write.csv writes it (quoted, a first column of row names,
# shares in percent), gridmill's polygon,class,proportion in proportions, and the same composition kept in the
# polygons' own fields (--composition-fields Query2_1,Q3_1,...) all give byte-identical samples and summaries.
# A polygon whose shares sum to 90 % is named in a warning (renormalised); one with no composition is named in a
# warning of lost data, shown even with -q.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

gm_require_build
D=$T/data
make_run_data "$D"
"$PYTHON" - "$D" <<'PY' || fail "cannot write the compositions"
import csv, sys
from osgeo import ogr
d = sys.argv[1]
rows = list(csv.DictReader(open(f"{d}/composition.csv")))
by_poly = {}
for r in rows:
    by_poly.setdefault(r["polygon"], []).append(r["class"])
# shares in eighths: exact in binary as percent / 100 and as proportions
comp = {}
for p, classes in by_poly.items():
    classes = classes[:8]
    w = [8 // len(classes)] * len(classes)
    w[0] += 8 - sum(w)
    comp[p] = list(zip(classes, w))
with open(f"{d}/comp_gm.csv", "w") as f:
    f.write("polygon,class,proportion\n")
    for p, parts in comp.items():
        for c, w in parts:
            f.write(f"{p},{c},{w / 8!r}\n")
def write_rd(path, comp, skip=(), ninety=()):
    with open(path, "w") as f:  # as R's write.csv(composition) writes it: quoted strings, row names first
        f.write('"","poly","mapunit","soil_class","proportion"\n')
        n = 0
        for p, parts in comp.items():
            if p in skip:
                continue
            for k, (c, w) in enumerate(parts):
                n += 1
                pct = w * 12.5 - (10 if p in ninety and k == 0 else 0)
                f.write(f'"{n}",{p},"MU{p}","{c}",{pct:g}\n')
write_rd(f"{d}/comp_rd.csv", comp)
first = next(p for p, parts in comp.items() if parts[0][1] * 12.5 > 10)
second = next(p for p in comp if p != first)
write_rd(f"{d}/comp_rd_bad.csv", comp, skip={second}, ninety={first})
open(f"{d}/bad_polygons.txt", "w").write(f"{first} {second}\n")
src = ogr.Open(f"{d}/polygons.gpkg")
dst = ogr.GetDriverByName("GPKG").CopyDataSource(src, f"{d}/fields.gpkg")
lyr = dst.GetLayer(0)
for k in range(1, 9):
    lyr.CreateField(ogr.FieldDefn(f"Query2_{k}", ogr.OFTString))
    lyr.CreateField(ogr.FieldDefn(f"Q3_{k}", ogr.OFTReal))
for feat in list(lyr):
    for k, (c, w) in enumerate(comp.get(str(feat.GetFID()), []), 1):
        feat.SetField(f"Query2_{k}", c)
        feat.SetField(f"Q3_{k}", w * 12.5)
    lyr.SetFeature(feat)
dst = None
PY
covs=("$D/elevation.tif" "$D/wetness.tif" "$D/climate.tif")
common=(--covariates "${covs[@]}" --iterations 3 --samples-per-polygon 12 --workers 2 --seed 9)
fields=$(for k in $(seq 8); do printf 'Query2_%d,Q3_%d,' "$k" "$k"; done | sed 's/,$//')

check "gridmill's composition in proportions, rdsmart's in percent, and the map's own fields: the same run"
run_gridmill gm run --polygons "$D/polygons.gpkg" --composition "$D/comp_gm.csv" "${common[@]}" --out "$T/gm"
expect_success gm
run_gridmill rd run --polygons "$D/polygons.gpkg" --composition "$D/comp_rd.csv" "${common[@]}" --out "$T/rd"
expect_success rd
run_gridmill fields run --polygons "$D/fields.gpkg" --composition-fields "$fields" "${common[@]}" --out "$T/fields"
expect_success fields
for f in probability.tif class.tif entropy.tif confusion.tif classes.csv samples/iter-001.csv samples/iter-003.csv; do
  cmp "$T/gm/$f" "$T/rd/$f" >&2 || fail "rd: $f differs from the run on gridmill's composition"
  cmp "$T/gm/$f" "$T/fields/$f" >&2 || fail "fields: $f differs from the run on gridmill's composition"
done
ok "rdsmart's CSV (R quoting, row names, percent) and --composition-fields: samples and summaries byte-identical"
oracle gm_samples check_samples.py "$T/gm" --polygons "$D/polygons.gpkg" --covariates "${covs[@]}" \
  --composition "$D/comp_gm.csv" --samples-per-polygon 12 --gdal-points 5

read -r first second <"$D/bad_polygons.txt"
check "polygon $first's shares sum to 90 %, polygon $second has no composition: both named"
run_gridmill bad run --polygons "$D/polygons.gpkg" --composition "$D/comp_rd_bad.csv" "${common[@]}" --out "$T/bad" \
  -q
expect_success bad
grep -qE "^gridmill-reader: warning: .*polygons\.gpkg: feature $second .*has no composition; skipped$" \
  "$GM_LOGS/bad.err" || { cat "$GM_LOGS/bad.err" >&2; fail "bad: with -q, no warning names polygon $second as lost"; }
! grep -q "renormalised" "$GM_LOGS/bad.err" || fail "bad: -q shows the renormalising warning (no data lost there)"
ok "bad: with -q, the lost polygon is named: $(grep -m1 'no composition' "$GM_LOGS/bad.err" | sed "s|$T|\$T|g")"
GM_PLAIN=1 run_gridmill bad2 run --polygons "$D/polygons.gpkg" --composition "$D/comp_rd_bad.csv" "${common[@]}" \
  --out "$T/bad2"
expect_success bad2
expect_stderr bad2 "^gridmill-reader: warning: .*comp_rd_bad\.csv: the shares of polygon '$first' sum to 90, not 100 \(percent\); they are renormalised$" \
  "the polygon whose shares sum to 90 %"
