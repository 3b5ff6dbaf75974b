#!/usr/bin/env bash
# test_run_json.sh -- what a user sees: the progress output (GDAL's 0...10...100 - done. when stdout is not
# a terminal; nothing with -q), the per-stage table and verdict, and DIR/run.json's fields, whose checksums
# must be those of the files (sha256sum is the oracle).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

gm_require_build
D=$T/data
mkdir -p "$D"
make_run_data "$D"
args=(run --polygons "$D/polygons.gpkg" --class-field soil --covariates "$D/elevation.tif" "$D/wetness.tif"
  "$D/climate.tif" --iterations 4 --workers 2)

check "progress on a pipe: GDAL's 0...10...20...30...40...50...60...70...80...90...100 - done."
run_gridmill shown "${args[@]}" --out "$T/shown"
expect_success shown
grep -qE '^0\.\.\.10\.\.\.20\.\.\.30\.\.\.40\.\.\.50\.\.\.60\.\.\.70\.\.\.80\.\.\.90\.\.\.100 - done\.$' "$GM_LOGS/shown.out" ||
  fail "no GDAL-style progress line in stdout: $(head -c 300 "$GM_LOGS/shown.out")"
ok "progress line as GDAL prints it"
for stage in reader writer "worker 1" "worker 2"; do
  grep -qE "^$stage +[0-9.]+ +[0-9]+% +[0-9]+% +[0-9]+%$" "$GM_LOGS/shown.out" || fail "no table row for $stage"
done
grep -qE '^verdict: workers [0-9]+ % busy, reader [0-9]+ %, writer [0-9]+ %: ' "$GM_LOGS/shown.out" ||
  fail "no verdict line"
ok "per-stage table and verdict: $(grep '^verdict' "$GM_LOGS/shown.out")"

check "-q: nothing on stdout, nothing on stderr"
run_gridmill quiet "${args[@]}" --out "$T/quiet" -q
expect_success quiet
[ ! -s "$GM_LOGS/quiet.out" ] || fail "-q printed on stdout: $(head -c 200 "$GM_LOGS/quiet.out")"
[ ! -s "$GM_LOGS/quiet.err" ] || fail "-q printed on stderr: $(head -c 200 "$GM_LOGS/quiet.err")"
ok "-q is quiet"

check "run.json: fields, versions, stages, and a SHA-256 per output equal to sha256sum's"
"$PYTHON" - "$T/shown" <<'PY' || fail "run.json check failed"
import json, os, subprocess, sys
d = sys.argv[1]
doc = json.load(open(os.path.join(d, "run.json")))
for key in ("gridmill", "command", "started", "finished", "wall_s", "versions", "parameters", "stages", "timeline",
            "verdict", "outputs"):
    assert key in doc, f"run.json lacks {key}"
for lib in ("gdal", "zeromq", "libuv", "msgpack-c", "xgboost", "protocol"):
    assert doc["versions"].get(lib), f"run.json versions lack {lib}"
names = {s["name"] for s in doc["stages"]}
assert {"reader", "writer", "worker 1", "worker 2"} <= names, f"stages {names}"
by = {s["name"]: s for s in doc["stages"]}
assert by["reader"]["counts"]["block_reads"] == by["reader"]["counts"]["blocks_total"], "reader counts"
assert by["writer"]["counts"]["tiles_written"] == by["writer"]["counts"]["tiles_total"], "writer counts"
assert sum(by[w]["counts"]["tasks_done"] for w in ("worker 1", "worker 2")) >= 4, "worker counts"
for s in doc["stages"]:
    total = s["busy_s"] + s["wait_s"] + s["blocked_s"]
    assert abs(total - s["wall_s"]) <= 0.05 + 0.02 * s["wall_s"], f"{s['name']}: shares do not add up to its time"
assert doc["parameters"]["iterations"] == 4 and doc["parameters"]["workers"] == 2
files = {o["file"]: o for o in doc["outputs"]}
for want in ("class.tif", "probability.tif", "entropy.tif", "confusion.tif", "models/iter-004.json",
             "samples/iter-004.csv"):
    assert want in files, f"run.json outputs lack {want}"
for name, o in files.items():
    path = os.path.join(d, name)
    got = subprocess.run(["sha256sum", path], capture_output=True, text=True, check=True).stdout.split()[0]
    assert got == o["sha256"], f"{name}: run.json says {o['sha256']}, sha256sum {got}"
    assert o["bytes"] == os.path.getsize(path), f"{name}: size"
print(f"run.json: {len(files)} outputs, checksums equal sha256sum's; verdict: {doc['verdict']}")
PY
ok "run.json fields and checksums"

check "-of COG -co COMPRESS=DEFLATE: a cloud-optimised GeoTIFF with the same pixels as the GTiff output"
pargs=(predict --covariates "$D/elevation.tif" "$D/wetness.tif" "$D/climate.tif" --model "$T/shown/models/iter-001.json"
  --workers 2 -q)
run_gridmill gtiff "${pargs[@]}" --out "$T/gtiff"
expect_success gtiff
run_gridmill cog "${pargs[@]}" --out "$T/cog" -of COG -co COMPRESS=DEFLATE
expect_success cog
info=$(gdalinfo "$T/cog/class.tif") # whole: grep -q on the pipe would cut gdalinfo short (SIGPIPE, pipefail)
grep -q "LAYOUT=COG" <<<"$info" || fail "cog: class.tif is not a COG"
grep -q "COMPRESSION=DEFLATE" <<<"$info" || fail "cog: -co COMPRESS=DEFLATE was not applied"
"$PYTHON" -c "
import sys, numpy as np
from osgeo import gdal
a = gdal.Open(sys.argv[1]).ReadAsArray(); b = gdal.Open(sys.argv[2]).ReadAsArray()
sys.exit(0 if np.array_equal(a, b) else 1)" "$T/gtiff/class.tif" "$T/cog/class.tif" || fail "cog: pixels differ from GTiff's"
ok "COG output: LAYOUT=COG, DEFLATE, same pixels as the GTiff output"
