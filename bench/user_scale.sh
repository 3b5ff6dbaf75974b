#!/usr/bin/env bash
# user_scale.sh -- the user's job at the user's scale: `gridmill run` with 100 iterations on ~150 million
# pixels (the benchmark's 4096^2 study area repeated 3 x 3: 12288^2 = 151 Mpx, 8 covariates, 9000 map units,
# 12 classes, 20 points per map unit per iteration), measured once with measure.py (wall, CPU, every process's
# peak RSS), its phases read off the stages' log. Writes bench/USER_SCALE.md.
#
# Usage: bench/user_scale.sh [--copies K] [--iterations N] [--workers W] [--covariates C]   (3, 100, the cores, 8)
# Needs about 5 GB of disk for the study area and 9 GB for the outputs (build/bench/user-*, removed after).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-/usr/bin/python3}
BUILD=${BUILD:-build}
copies=3 iterations=100 workers=$(nproc) ncov=8
while (($#)); do
  case $1 in
    --copies) copies=$2; shift 2 ;;
    --iterations) iterations=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --covariates) ncov=$2; shift 2 ;;
    -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "user_scale: $1: unknown option (--copies K, --iterations N, --workers W, --covariates C)" >&2; exit 2 ;;
  esac
done
for v in "$copies" "$iterations" "$workers" "$ncov"; do
  [[ $v =~ ^[1-9][0-9]*$ ]] || { echo "user_scale: '$v': expected a positive integer" >&2; exit 2; }
done
export GRIDMILL_BIN="$root/$BUILD"
k=$([ "$ncov" = 8 ] && echo "" || echo "-k$ncov") # the study area of that many covariates
src="$root/$BUILD/bench/data-4096$k"
size=$((4096 * copies))
data="$root/$BUILD/bench/user-$size$k"
out="$root/$BUILD/bench/user-$size-out"
for f in gridmill-reader gridmill-worker gridmill-writer; do
  [ -x "$GRIDMILL_BIN/$f" ] || { echo "user_scale: $BUILD/$f is missing (make all)" >&2; exit 1; }
done
log() { echo "user_scale: $*" >&2; }

if [ ! -f "$src/manifest.json" ]; then
  log "making the 4096x4096 study area in $src"
  "$PYTHON" "$root/bench/make_bench_data.py" "$src" --size 4096 --covariates "$ncov" >&2
fi
if [ ! -f "$data/manifest.json" ]; then
  log "repeating it ${copies}x${copies} times into $data"
  "$PYTHON" "$root/bench/make_user_scale.py" "$src" "$data" --copies "$copies" >&2
fi
mapfile -t covs <"$data/covariates.txt"
rm -rf "$out"
mkdir -p "$out"
cat "${covs[@]}" >/dev/null # every row of the benchmark starts with the covariates in the page cache
load=$(cut -d' ' -f1-3 /proc/loadavg)
log "gridmill run: $iterations iterations on ${size}x${size} pixels, $workers workers"
trap 'rm -rf "$out/run"' EXIT # the outputs are 9 GB at 12288^2: never left behind
started=$(LC_ALL=C date +%s.%N)
"$PYTHON" "$root/bench/measure.py" --json "$out/measure.json" -- "$root/scripts/gridmill" run --verbose \
  --polygons "$data/map.gpkg" --class-field class --covariates "${covs[@]}" --iterations "$iterations" \
  --samples-per-polygon 20 --seed 1 --workers "$workers" --out "$out/run" >"$out/run.log" 2>&1 ||
  { tail -n 20 "$out/run.log" >&2; exit 1; }

units=$("$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["polygon_count"])' "$data/manifest.json")
"$PYTHON" - "$out" "$size" "$iterations" "$workers" "$load" "$started" "$units" >"$out/USER_SCALE.md" <<'PY'
import datetime, json, os, re, sys
out, size, iterations, workers, load = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
start, units = float(sys.argv[6]), int(sys.argv[7])
m = json.load(open(f"{out}/measure.json"))
t = {}
for line in open(f"{out}/run.log"):
    stamp = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z", line)
    if not stamp:
        continue
    at = datetime.datetime.fromisoformat(stamp.group(1)).replace(tzinfo=datetime.timezone.utc).timestamp()
    if "training" in line and "models" in line and "reader" in line:
        t.setdefault("train", at)
    if "trained and saved" in line:
        t["trained"] = at
    if "applying, " in line:
        t.setdefault("apply", at)
    if "done: every output written" in line:
        t["written"] = at
end = start + m["wall_s"]
procs = {}
for p in m["procs"]:
    if p["hwm_kb"] >= 5 * 1024:
        procs.setdefault(p["name"].replace("gridmill-", "") if p["name"] != "gridmill" else "supervisor", []).append(p["hwm_kb"])
rss = "; ".join(f"{n} {'×%d ' % len(v) if len(v) > 1 else ''}{max(v) / 1024:.0f} MiB" for n, v in procs.items())
cpu = open("/proc/cpuinfo").read().split("model name")[1].split(":")[1].split("\n")[0].strip()
px = size * size
print(f"# The user's job at the user's scale: {iterations} iterations on {size}×{size} = {px / 1e6:.0f} Mpx\n")
print(f"{datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC; {os.cpu_count()} × {cpu}; load average at start {load}; "
      f"{workers} workers; `bench/user_scale.sh`, one run.\n")
print("| phase | s |\n|---|---:|")
print(f"| start (supervisor, stages, the {units} map units read) | {t['train'] - start:.1f} |")
print(f"| sampling {iterations} iterations (20 points per map unit each) and training {iterations} models | {t['trained'] - t['train']:.1f} |")
print(f"| switching to the pass (the writer, the workers given the {iterations} models) | {t['apply'] - t['trained']:.1f} |")
print(f"| the pass: {px * iterations / 1e9:.3g} G pixel×models, every covariate block read once | {t['written'] - t['apply']:.1f} |")
print(f"| the end (stages stop, {iterations} + 4 outputs hashed, report) | {end - t['written']:.1f} |")
print(f"| **the whole job** | **{m['wall_s']:.1f}** ({m['wall_s'] / 60:.1f} min) |\n")
print(f"CPU {m['cpu_pct']:.0f} % (100 % = one core). Peak RSS: {rss}.")
PY
mv "$out/USER_SCALE.md" "$root/bench/USER_SCALE.md"
cat "$root/bench/USER_SCALE.md"
log "table in bench/USER_SCALE.md; log and measures in $out"
