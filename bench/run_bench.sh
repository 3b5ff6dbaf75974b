#!/usr/bin/env bash
# run_bench.sh -- gridmill's benchmark: make a study area, run gridmill, the I/O floor, the naive Python loop
# and the peers on it in one go, and print the table (also written to bench/RESULTS.md). See bench/README.md.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-/usr/bin/python3}
BUILD=${BUILD:-build}

usage() {
  cat <<EOF
usage: bench/run_bench.sh [--size N] [--iterations N] [--workers N] [--skip-peers] [--samples-per-polygon S]
                          [--naive-iterations K] [--repeat R] [--timeout S] [--fresh-data] [--covariates C]
  --size N                 study area of N x N pixels (4096)
  --iterations N           iterations of the full job, one tree each (10)
  --workers N              gridmill workers, Pool size, xgboost threads, terra cores ($(nproc), the cores)
  --skip-peers             skip the peers (c1) Python xgboost and (c2) R terra + ranger
  --samples-per-polygon S  points per polygon per iteration (20)
  --naive-iterations K     run only K of the N iterations of the naive loop and extrapolate (all N)
  --repeat R               rounds of the I/O floors and gridmill rows, interleaved; the best of each kept (3)
  --timeout S              stop a row still running after S seconds (7200) and fail
  --fresh-data             make the study area again even if $BUILD/bench/data-N exists
  --covariates C           covariates of the study area (8; the users have 15-60)
Build first (make bench does): $BUILD/gridmill-* and $BUILD/bench/io_floor.
EOF
}

size=4096 iterations=10 workers=$(nproc) skip_peers=0 samples=20 naive_iterations="" fresh=0 timeout=7200 repeat=3
ncov=8
while (($#)); do
  case $1 in
    --size) size=$2; shift 2 ;;
    --iterations) iterations=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --skip-peers) skip_peers=1; shift ;;
    --samples-per-polygon) samples=$2; shift 2 ;;
    --naive-iterations) naive_iterations=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    --timeout) timeout=$2; shift 2 ;;
    --fresh-data) fresh=1; shift ;;
    --covariates) ncov=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run_bench: $1: unknown option" >&2; usage >&2; exit 2 ;;
  esac
done
for v in "$size" "$iterations" "$workers" "$samples" "${naive_iterations:-1}" "$timeout" "$repeat"; do
  [[ $v =~ ^[1-9][0-9]*$ ]] || { echo "run_bench: '$v': expected a positive integer" >&2; exit 2; }
done
naive_iterations=${naive_iterations:-$iterations}
((naive_iterations <= iterations)) || naive_iterations=$iterations

bin="$root/$BUILD"
work="$bin/bench"
data="$work/data-$size$([ "$ncov" = 8 ] || echo "-k$ncov")"
out="$work/out-$size"
res="$out/measures"
export GRIDMILL_BIN="$bin"

# Everything the rows need, said at once.
missing=()
for f in gridmill-reader gridmill-worker gridmill-writer bench/io_floor; do
  [[ -x "$bin/$f" ]] || missing+=("$BUILD/$f (make all $BUILD/bench/io_floor)")
done
for m in osgeo numpy scipy sklearn xgboost; do
  "$PYTHON" -c "import $m" 2>/dev/null || missing+=("python module $m (Debian: python3-${m/osgeo/gdal})")
done
if ((!skip_peers)); then
  if ! command -v Rscript >/dev/null; then
    missing+=("Rscript (Debian: r-base-core, r-cran-terra, r-cran-ranger)")
  else
    for p in terra ranger; do
      Rscript -e "suppressPackageStartupMessages(library($p))" 2>/dev/null || missing+=("R package $p (Debian: r-cran-$p)")
    done
  fi
fi
if ((${#missing[@]})); then
  printf 'run_bench: missing: %s\n' "${missing[@]}" >&2
  echo "run_bench: --skip-peers runs without R" >&2
  exit 1
fi

log() { echo "run_bench: $*" >&2; }

# The study area: made once per size and kept (make_bench_data.py says what is in it).
mkdir -p "$work"
if ((fresh)) || [[ ! -f "$data/manifest.json" ]]; then
  rm -rf "$data"
  log "making the ${size}x${size} study area in $data"
  "$PYTHON" "$root/bench/make_bench_data.py" "$data" --size "$size" --covariates "$ncov" >&2
fi
if ((!skip_peers)) && [[ ! -f "$data/forest.rds" ]]; then
  log "training the R peer's ranger forest on the XGBoost forest's samples"
  Rscript "$root/bench/peer_terra.R" train "$data/forest_samples.csv" "$data/forest.rds" 100 >&2
fi
mapfile -t covs <"$data/covariates.txt"
classes=$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["classes_present"])' "$data/manifest.json")

rm -rf "$out"
mkdir -p "$res"
{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "cpu: $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "ram: $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
  echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "kernel: $(uname -r)"
  echo "gdal: $("$PYTHON" -c 'from osgeo import gdal; print(gdal.__version__)')"
  echo "python: $("$PYTHON" -c 'import sys, numpy, sklearn, xgboost; print(sys.version.split()[0], "numpy", numpy.__version__, "sklearn", sklearn.__version__, "xgboost", xgboost.__version__)')"
  if ((!skip_peers)); then
    # shellcheck disable=SC2016  # R code, not shell
    echo "r: $(Rscript -e 'cat(R.version$major, R.version$minor, sep = "."); cat(" terra", as.character(packageVersion("terra")), "ranger", as.character(packageVersion("ranger")))')"
  fi
} >"$res/machine.txt"

# Reads the covariates once so every row starts with them in the page cache.
cat "${covs[@]}" >/dev/null

# measure ROW COMMAND...: runs one row under measure.py (wall, CPU, per-process peak RSS) on a quiet disk; with
# REP=k set, into ROW.k.json (best_of picks the round kept).
measure() {
  local row=$1 tag=$1${REP:+.$REP}
  shift
  sync
  rm -rf "${out:?}/$row"
  log "$tag: $*"
  if ! "$PYTHON" "$root/bench/measure.py" --json "$res/$tag.json" --time-v "$res/$tag.time" \
      --timeout "$timeout" -- "$@" >"$res/$tag.log" 2>&1; then
    log "$tag failed; the end of $res/$tag.log:"
    tail -n 20 "$res/$tag.log" >&2
    exit 1
  fi
  log "$tag: $("$PYTHON" -c 'import json, sys; d = json.load(open(sys.argv[1])); print("%.1f s, CPU %.0f %%" % (d["wall_s"], d["cpu_pct"]))' "$res/$tag.json")"
}

# best_of ROW: ROW.json is the round of ROW with the least wall time, with every round's wall time in "walls".
best_of() {
  "$PYTHON" - "$res" "$1" "$repeat" <<'PY'
import json, sys
res, row, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
rounds = [json.load(open(f"{res}/{row}.{k}.json")) for k in range(1, n + 1)]
best = min(rounds, key=lambda d: d["wall_s"])
best["walls"] = [d["wall_s"] for d in rounds]
json.dump(best, open(f"{res}/{row}.json", "w"), indent=1)
PY
}

# A virtual machine's first touch of a page is slow (here up to 2 s of system time per GiB), and the pages a
# row frees are handed back to the host after a while: a row that happens to write into fresh pages is
# slowed by more than its own work. So the floors and gridmill's rows run in R interleaved rounds, and each
# keeps its best round (the table shows the range).
for k in $(seq 1 "$repeat"); do
  REP=$k measure io_run "$bin/bench/io_floor" -q --outputs run --classes "$classes" --out "$out/io_run" "${covs[@]}"
  REP=$k measure gm_run "$root/scripts/gridmill" run -q --polygons "$data/map.gpkg" --class-field class \
    --covariates "${covs[@]}" --iterations "$iterations" --samples-per-polygon "$samples" --seed 1 \
    --workers "$workers" --out "$out/gm_run"
  REP=$k measure io_predict "$bin/bench/io_floor" -q --outputs predict --classes "$classes" --out "$out/io_predict" "${covs[@]}"
  REP=$k measure gm_predict "$root/scripts/gridmill" predict -q --covariates "${covs[@]}" --model "$data/forest.json" \
    --probabilities --workers "$workers" --out "$out/gm_predict"
done
for row in io_run gm_run io_predict gm_predict; do best_of "$row"; done
measure naive "$PYTHON" "$root/bench/naive.py" --polygons "$data/map.gpkg" --class-field class \
  --covariates "${covs[@]}" --iterations "$iterations" --run-iterations "$naive_iterations" \
  --samples-per-polygon "$samples" --seed 1 --workers "$workers" --out "$out/naive" --timings "$res/naive.timings.json"
if ((!skip_peers)); then
  measure xgb "$PYTHON" "$root/bench/peer_xgb.py" --covariates "${covs[@]}" --model "$data/forest.json" \
    --threads "$workers" --out "$out/xgb"
  measure terra Rscript "$root/bench/peer_terra.R" predict "$data/forest.rds" "$out/terra" "$workers" "${covs[@]}"
fi

"$PYTHON" "$root/bench/report.py" --measures "$res" --data "$data" --out "$out" --iterations "$iterations" \
  --workers "$workers" >"$res/RESULTS.md"
cp "$res/RESULTS.md" "$root/bench/RESULTS.md"
cat "$res/RESULTS.md"
log "table in $root/bench/RESULTS.md; measures and logs in $res; outputs in $out"
# make bench runs the evaluator on this run's forest
echo "$data" >"$work/last-data"
