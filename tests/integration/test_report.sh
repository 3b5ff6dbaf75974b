#!/usr/bin/env bash
# test_report.sh -- scripts/gridmill-report on real runs: quicklooks with a distinct colour per class and the
# run's aspect, a self-contained report.html with the legend, stage table, timeline and verdict of run.json,
# written too when run.json is missing, partial or broken; and headless Chromium's rendering of the page
# shows the class map itself (its colours in the map's proportions), which it does not once the map is gone.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REPORT=$GM_ROOT/scripts/gridmill-report
CHROMIUM=${GM_CHROMIUM:-chromium}
ITERATIONS=5

# Headless Chromium comes from Debian's chromium package; without it the screenshot check cannot run, and
# that is a failure, not a skip.
check "headless Chromium is available"
if ! command -v "$CHROMIUM" >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "   $CHROMIUM missing: apt-get install chromium"
  DEBIAN_FRONTEND=noninteractive timeout -k 10 240 apt-get install -y -q --no-install-recommends chromium \
    >"$GM_LOGS/apt-chromium.log" 2>&1 || true
fi
if ! command -v "$CHROMIUM" >/dev/null 2>&1; then
  [ -e "$GM_LOGS/apt-chromium.log" ] ||
    fail "$CHROMIUM not found: install Debian's chromium as root (apt-get install chromium, or scripts/install-deps)"
  fail "$CHROMIUM still not found after apt-get install chromium: $(tail -n 2 "$GM_LOGS/apt-chromium.log" | tr '\n' ' ')"
fi
ok "$("$CHROMIUM" --version 2>/dev/null | sed -n 1p)"

gm_require_build
[ -x "$REPORT" ] || fail "$REPORT missing or not executable"
D=$T/data
make_run_data "$D"
covs=("$D/elevation.tif" "$D/wetness.tif" "$D/climate.tif")

# report_oracle NAME ARGS...: runs check_report.py ARGS, fails with its report unless it exits 0.
report_oracle() {
  local name=$1
  shift
  if ! "$PYTHON" "$GM_ORACLES/check_report.py" "$@" >"$GM_LOGS/$name.oracle" 2>&1; then
    sed 's/^/   | /' "$GM_LOGS/$name.oracle" >&2
    fail "$name: check_report.py found problems"
  fi
  ok "$(tail -n 1 "$GM_LOGS/$name.oracle" | sed "s|$T|\$T|g")"
}

# report NAME DIR [OPTIONS...]: runs gridmill-report on DIR; fails unless it exits 0 and leaves report.html and
# no partial file behind, nor any .aux.xml file it made or changed (the writer's, with the category names, stay).
report() {
  local name=$1 dir=$2 aux_before
  shift 2
  aux_before=$(cd "$dir" && find . -maxdepth 1 -name '*.aux.xml' | sort | xargs -r md5sum)
  timeout -k 5 120 "$REPORT" "$dir" "$@" >"$GM_LOGS/$name.report.out" 2>"$GM_LOGS/$name.report.err" || {
    sed 's/^/   | /' "$GM_LOGS/$name.report.err" >&2
    fail "$name: gridmill-report exited non-zero"
  }
  [ -s "$dir/report.html" ] || fail "$name: no report.html"
  local left
  left=$(find "$dir" -maxdepth 1 -name '*.part' -printf '%f ')
  [ -z "$left" ] || fail "$name: gridmill-report left $left"
  [ "$(cd "$dir" && find . -maxdepth 1 -name '*.aux.xml' | sort | xargs -r md5sum)" = "$aux_before" ] ||
    fail "$name: gridmill-report made or changed .aux.xml files"
  ok "$name: report written$(grep -q . "$GM_LOGS/$name.report.err" &&
    echo "; said: $(head -n 1 "$GM_LOGS/$name.report.err" | sed "s|$T|\$T|g")")"
}

# fallback_run_json DIR SECONDS ARGS...: writes DIR/run.json shaped like the supervisor's (its command, times,
# versions, parameters, outputs with sha256 from the files; stages, timeline and verdict made up) for a run
# whose supervisor wrote none.
fallback_run_json() {
  "$PYTHON" - "$@" <<'PY'
import datetime, hashlib, json, os, sys
from osgeo import gdal
out, wall, argv = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
end = datetime.datetime.now(datetime.timezone.utc)
iso = lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
names = ["reader", "worker 1", "worker 2", "writer"]
busy = {"reader": 0.2, "worker 1": 0.9, "worker 2": 0.85, "writer": 0.1}
steps = max(2, int(wall / 0.5))
timeline, stages = [], []
for n in names:
    tot = {"busy": 0.0, "wait": 0.0, "blocked": 0.0}
    for k in range(1, steps + 1):
        b = busy[n] * (0.8 + 0.4 * ((k * 7) % 5) / 4)
        bl = 0.1 if n == "reader" and k % 3 == 0 else 0.0
        w = max(0.0, 1.0 - b - bl)
        timeline.append({"t": k * 0.5, "stage": n, "busy": round(b, 3), "wait": round(w, 3), "blocked": bl})
        for key, v in (("busy", b), ("wait", w), ("blocked", bl)):
            tot[key] += 0.5 * v
    stages.append({"name": n, "wall_s": steps * 0.5, "busy_s": round(tot["busy"], 3),
                   "wait_s": round(tot["wait"], 3), "blocked_s": round(tot["blocked"], 3)})
files = sorted(f for f in os.listdir(out) if f.endswith((".tif", ".csv")))
doc = {"gridmill": "0.1.0", "command": ["gridmill"] + argv,
       "started": iso(end - datetime.timedelta(seconds=wall)), "finished": iso(end), "wall_s": wall,
       "versions": {"gdal": gdal.__version__, "protocol": 1},
       "parameters": {"iterations": int(argv[argv.index("--iterations") + 1]),
                      "workers": int(argv[argv.index("--workers") + 1])},
       "stages": stages, "timeline": timeline,
       "verdict": "workers 88 % busy, reader 20 %: compute bound - add workers (made up by test_report.sh)",
       "outputs": [{"file": f, "bytes": os.path.getsize(os.path.join(out, f)),
                    "sha256": hashlib.sha256(open(os.path.join(out, f), "rb").read()).hexdigest()}
                   for f in files]}
with open(os.path.join(out, "run.json"), "w") as f:
    json.dump(doc, f, indent=1)
PY
}

# screenshot NAME HTML PNG: renders HTML with headless Chromium at 1280x1600 into PNG, bounded in time; stops
# any Chromium process of its own (found by its profile folder) left afterwards.
screenshot() {
  local name=$1 page=$2 png=$3 profile rc=0 pid
  profile=$(mktemp -d "$T/chromium.XXXXXX")
  mkdir -p "$profile/home"
  HOME=$profile/home timeout -k 5 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic \
    --no-first-run --disable-background-networking --disable-component-update --disable-sync \
    --disable-dev-shm-usage --hide-scrollbars --force-device-scale-factor=1 --user-data-dir="$profile" \
    --screenshot="$png" --window-size=1280,1600 "file://$page" >"$GM_LOGS/$name.chromium" 2>&1 || rc=$?
  for pid in $(pgrep -f -- "--user-data-dir=$profile" || true); do
    kill -KILL "$pid" 2>/dev/null || true
  done
  [ "$rc" -eq 0 ] || { tail -n 5 "$GM_LOGS/$name.chromium" >&2; fail "$name: chromium exited $rc"; }
  [ -s "$png" ] || { tail -n 5 "$GM_LOGS/$name.chromium" >&2; fail "$name: chromium wrote no $png"; }
  ok "$name: $(basename "$png") $(gdalinfo "$png" 2>/dev/null | sed -n 's/^Size is //p' | tr -d ' ' | tr , x)"
}

check "a classification run, $ITERATIONS iterations, 2 workers"
out=$T/classify
args=(run --polygons "$D/polygons.gpkg" --class-field soil --covariates "${covs[@]}" --out "$out"
  --iterations "$ITERATIONS" --samples-per-polygon 20 --seed 5 --workers 2)
start=$EPOCHREALTIME
run_gridmill classify "${args[@]}"
secs=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
expect_success classify
assert_no_stages classify
if [ -s "$out/run.json" ]; then
  ok "the supervisor wrote run.json: the report uses it"
else
  fallback_run_json "$out" "$secs" "${args[@]}" || fail "cannot write a stand-in run.json"
  ok "the supervisor wrote no run.json: a stand-in from this run's command, ${secs}s and outputs is used"
fi

check "gridmill-report: quicklooks, legend, stages, timeline, verdict, outputs"
report classify "$out"
report_oracle classify "$out"

check "a quicklook larger than the limit is downsampled (--max-size 150), colours still one per class"
small=$T/small
mkdir -p "$small"
cp "$out/class.tif" "$out/classes.csv" "$out/entropy.tif" "$out/run.json" "$small/"
report small "$small" --max-size 150 -q
report_oracle small "$small" --max-size 150

check "no run.json, a partial one, a broken one: the report is still written and says what is not recorded"
for kind in none partial broken; do
  dir=$T/runjson-$kind
  mkdir -p "$dir"
  cp "$out/class.tif" "$out/classes.csv" "$out/entropy.tif" "$dir/"
  case $kind in
    partial)
      printf '%s\n' '{"verdict": "reader 95 % busy: read bound <b>not html</b>", "wall_s": "soon",' \
        '"stages": [{"name": "reader", "busy_s": 1.5}, 7, {"wall_s": null}],' \
        '"timeline": [{"t": 0.5, "stage": "reader", "busy": 0.9}, {"t": "x"}, {"stage": "writer", "t": 1,' \
        '"wait": 2.5}], "outputs": [{"file": "class.tif"}, {"file": "gone.tif", "bytes": 3}], "command": 5}' \
        >"$dir/run.json" ;;
    broken) printf '{"verdict": "half written' >"$dir/run.json" ;;
  esac
  report "runjson-$kind" "$dir"
  report_oracle "runjson-$kind" "$dir"
  grep -qi 'not recorded' "$dir/report.html" || fail "runjson-$kind: the report does not say what is not recorded"
done
grep -q '&lt;b&gt;not html&lt;/b&gt;' "$T/runjson-partial/report.html" ||
  fail "runjson-partial: the verdict's markup is not escaped"
grep -q 'run.json: not valid JSON' "$GM_LOGS/runjson-broken.report.err" ||
  fail "runjson-broken: gridmill-report did not say run.json is broken"
ok "markup in run.json is escaped; a broken run.json is reported on stderr"

check "a regression run: mean on a ramp, sd as the uncertainty quicklook"
reg=$T/regression
run_gridmill regression run --polygons "$D/polygons.gpkg" --target-field depth --covariates "${covs[@]}" \
  --out "$reg" --iterations "$ITERATIONS" --seed 5 --workers 2
expect_success regression
assert_no_stages regression
report regression "$reg"
report_oracle regression "$reg"

check "headless Chromium's rendering of report.html shows the class map"
screenshot shot "$out/report.html" "$T/report.png"
report_oracle screenshot "$out" --screenshot "$T/report.png" --min-colours 3 --min-pixels 500

check "the screenshot check is not fooled by the legend alone: the page rendered without its quicklook fails it"
bare=$T/bare
mkdir -p "$bare"
cp "$out/report.html" "$bare/"  # the same page with no PNG beside it: the legend shows, the map does not
screenshot bare "$bare/report.html" "$T/bare.png"
if "$PYTHON" "$GM_ORACLES/check_report.py" "$out" --screenshot "$T/bare.png" >"$GM_LOGS/bare.oracle" 2>&1; then
  fail "check_report.py passed a screenshot of the page without its map"
fi
grep -q 'bare.png' "$GM_LOGS/bare.oracle" || {
  sed 's/^/   | /' "$GM_LOGS/bare.oracle" >&2
  fail "check_report.py failed the page without its map, but not for its screenshot"
}
ok "rejected: $(grep -m1 'bare.png' "$GM_LOGS/bare.oracle" | sed "s|$T|\$T|g" | cut -c1-160)"
