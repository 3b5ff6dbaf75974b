#!/usr/bin/env bash
# test_bad_models.sh -- a corrupt or unsupported model is refused before any stage works: within a few seconds,
# with one line on stderr naming the model file and the broken tree, no worker started in a loop, no output.
# The faults are put by tests/oracles/bad_models.py into a real model (make_data.py's reg.json): a cycle, a child
# index past the end, a negative split feature, a split on feature num_feature, num_trees above the tree count,
# a gblinear booster, and a cycle and a bad child in UBJSON models (XGBoost's loader takes those). Models XGBoost
# writes itself are still applied: trees with deleted (unreachable) nodes, and dart.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

gm_require_build
D=$T/data
B=$T/bad
make_data "$D"
"$PYTHON" "$GM_ORACLES/bad_models.py" "$D/reg.json" "$B" >"$GM_LOGS/bad_models.log" 2>&1 ||
  fail "bad_models.py: $(tail -n 5 "$GM_LOGS/bad_models.log")"
covs=("$D/cov_a.tif" "$D/cov_b.tif" "$D/cov_c.tif")
GM_RUN_TIMEOUT=30
LIMIT_S=5 # a refused model ends the run within this many seconds

# refused NAME PATH TREE ARGS...: runs `gridmill ARGS...` as a user would (no --verbose) and fails unless it
# exits non-zero within LIMIT_S seconds with exactly one line on stderr naming PATH and, unless TREE is -,
# "tree TREE:", and leaves no stage and no raster in DIR (the last argument after --out).
refused() {
  local name=$1 path=$2 tree=$3 out
  shift 3
  out=$(awk -v want=--out 'BEGIN { for (i = 1; i < ARGC; i++) if (ARGV[i] == want) print ARGV[i + 1] }' "$@")
  mkdir -p "$out"
  local t0=$EPOCHREALTIME
  GM_PLAIN=1 run_gridmill "$name" "$@"
  local secs
  secs=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
  expect_failure "$name"
  awk -v s="$secs" -v l="$LIMIT_S" 'BEGIN { exit !(s <= l) }' ||
    fail "$name: took ${secs}s to fail, more than ${LIMIT_S}s"
  local lines
  lines=$(grep -c . "$GM_LOGS/$name.err" || true)
  if [ "$lines" -ne 1 ]; then
    gm_stderr_tail "$name" >&2
    fail "$name: $lines lines on stderr, expected the one line naming the model"
  fi
  grep -qF -- "$path: " "$GM_LOGS/$name.err" || fail "$name: stderr does not name $path: $(cat "$GM_LOGS/$name.err")"
  if [ "$tree" != - ]; then
    grep -qF -- "$path: tree $tree: " "$GM_LOGS/$name.err" ||
      fail "$name: stderr does not name tree $tree: $(cat "$GM_LOGS/$name.err")"
  fi
  ok "$name: exit $GM_RC after ${secs}s: $(cut -c1-180 "$GM_LOGS/$name.err" | sed "s|$T|\$T|g")"
  expect_no_final_outputs "$name" "$out"
  if compgen -G "$out/*.tif*" >/dev/null; then fail "$name: rasters left in $out: $(ls "$out")"; fi
  assert_no_stages "$name"
}

nfaults=0
mapfile -t faults <"$B/faults.txt" # read first: the runs below must not share the loop's stdin
for fault in "${faults[@]}"; do
  read -r model tree <<<"$fault"
  [ -n "$model" ] || continue
  check "$model: refused before any block (fault in tree $tree)"
  name=${model//./_}
  refused "$name" "$B/$model" "$tree" predict --covariates "${covs[@]}" --model "$B/$model" --out "$T/out_$name" \
    --workers 2
  nfaults=$((nfaults + 1))
done
[ "$nfaults" -ge 8 ] || fail "bad_models.py listed only $nfaults faulty models"
grep -q 'booster gblinear is not supported.*gbtree' "$GM_LOGS/gblinear_json.err" ||
  fail "gblinear: the line does not say to train with booster gbtree: $(cat "$GM_LOGS/gblinear_json.err")"
ok "gblinear: the line says gblinear is not supported and to train with booster gbtree"

check "run --models DIR: a cycle in iter-002.json is refused before any block, naming the file and the tree"
mkdir -p "$T/models"
cp "$D/reg.json" "$T/models/iter-001.json"
cp "$B/cycle.json" "$T/models/iter-002.json"
refused run_models "$T/models/iter-002.json" 3 run --models "$T/models" --covariates "${covs[@]}" \
  --out "$T/out_run_models" --workers 2

deleted=$(sed -n 's/^pruned.json //p' "$B/good.txt")
check "pruned.json (exact tree method, gamma 5: $deleted deleted nodes no path reaches): applied, equal to the oracle"
mkdir -p "$T/out_pruned"
run_gridmill pruned predict --covariates "${covs[@]}" --model "$B/pruned.json" --out "$T/out_pruned" --workers 2
expect_success pruned
oracle pruned check_predict.py --covariates "${covs[@]}" --model "$B/pruned.json" --out "$T/out_pruned"
assert_no_stages pruned

check "dart.json: applied, the values of XGBoost's inplace_predict (the predictor the workers call for dart)"
mkdir -p "$T/out_dart"
run_gridmill dart predict --covariates "${covs[@]}" --model "$B/dart.json" --out "$T/out_dart" --workers 2
expect_success dart
"$PYTHON" - "$B/dart.json" "$T/out_dart/prediction.tif" "${covs[@]}" >"$GM_LOGS/dart.oracle" 2>&1 <<'EOF' ||
import sys
import numpy as np
import xgboost as xgb
from osgeo import gdal
model, pred, covs = sys.argv[1], sys.argv[2], sys.argv[3:]
planes = []
for path in covs:
    ds = gdal.Open(path)
    planes += [ds.GetRasterBand(i + 1).ReadAsArray().ravel() for i in range(ds.RasterCount)]
x = np.stack([p.astype(np.float32) for p in planes], axis=1)
booster = xgb.Booster(model_file=model)
booster.set_param({"nthread": 1})
want = booster.inplace_predict(x)
got = gdal.Open(pred).ReadAsArray().ravel()
valid = got != np.float32(-np.finfo(np.float32).max)
differ = int(np.sum(got[valid] != want[valid]))
print("dart: %d valid pixels, %d differ from inplace_predict" % (valid.sum(), differ))
sys.exit(1 if differ or valid.sum() < 1000 else 0)
EOF
  fail "dart: $(cat "$GM_LOGS/dart.oracle")"
ok "$(tail -n 1 "$GM_LOGS/dart.oracle")"
assert_no_stages dart

echo "all $nfaults faulty models refused in time with one line; pruned and dart models applied"
