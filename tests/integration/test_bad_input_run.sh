#!/usr/bin/env bash
# test_bad_input_run.sh -- bad input to `gridmill run` (and an output folder predict cannot write) fails with
# one clear line naming the file and the problem, exits non-zero, leaves nothing under a final name that is
# not whole, and leaves no stage behind: a polygon map with points or lines, a missing class field (the
# fields that exist are listed), an empty layer, polygons wholly on nodata, a missing or non-vector map,
# covariates on different grids (and, once the supervisor has --align, the same run aligned), an output
# folder that cannot be created or written, and a disk that fills up while writing (a small tmpfs; the
# mount cases need root and are skipped without it).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

gm_require_build
D=$T/data
make_run_data "$D"
"$PYTHON" "$GM_ORACLES/make_bad_run_data.py" "$D" >"$GM_LOGS/make_bad_run_data.log" 2>&1 ||
  fail "make_bad_run_data.py $D: $(tail -n 5 "$GM_LOGS/make_bad_run_data.log")"
P=$T/pdata
make_data "$P"
GM_RUN_TIMEOUT=60
covs=("$D/elevation.tif" "$D/wetness.tif" "$D/climate.tif")
small=(--iterations 2 --samples-per-polygon 5 --workers 2 --block-size 128)
run_outputs=(class.tif probability.tif entropy.tif confusion.tif)

MOUNTS=()
# Kills the stages (so nothing holds the mounts), unmounts what this test mounted, then runs lib.sh's
# clean-up with the test's exit status.
cleanup_mounts() {
  local rc=$? m pid
  for pid in $(gm_stage_pids); do kill -KILL "$pid" 2>/dev/null || true; done
  for m in "${MOUNTS[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  (exit "$rc")
  gm_cleanup
}
trap cleanup_mounts EXIT

# mount_tmpfs DIR OPTIONS: mounts a tmpfs with OPTIONS on DIR. Returns 1, saying why, where this machine
# does not let the test mount (not root, no CAP_SYS_ADMIN).
mount_tmpfs() {
  mkdir -p "$1"
  if mount -t tmpfs -o "$2" gridmill-test "$1" 2>"$GM_LOGS/mount.err"; then
    MOUNTS+=("$1")
    return 0
  fi
  echo "   skipped: cannot mount a tmpfs on $1 ($(head -n 1 "$GM_LOGS/mount.err"))"
  return 1
}

# bad NAME PATTERN WHAT OUT ARGS...: runs `gridmill ARGS... --out OUT`, which must fail; the first error line
# on stderr (the first line that is not an info or warning line) must match PATTERN (extended regex,
# case-insensitive), which describes WHAT; no predict or run output may exist under its final name in OUT;
# no stage may be left.
bad() {
  local name=$1 pattern=$2 what=$3 out=$4 first f found=()
  shift 4
  run_gridmill "$name" "$@" --out "$out"
  expect_failure "$name"
  first=$(grep -Ev ' (info|loss|warn|debug): ' "$GM_LOGS/$name.err" | sed -n 1p)
  if ! grep -Eiq -- "$pattern" <<<"$first"; then
    gm_stderr_tail "$name" >&2
    fail "$name: the first error line does not mention $what (/$pattern/): $first"
  fi
  ok "$name: first error line names $what: ${first//$T/\$T}"
  for f in prediction.tif "${run_outputs[@]}"; do
    [ ! -e "$out/$f" ] || found+=("$f")
  done
  [ ${#found[@]} -eq 0 ] || fail "$name: final outputs exist after a failed run: ${found[*]}"
  ok "$name: no output under its final name"
  assert_no_stages "$name"
}

check "polygon map of points: fails naming the file, the FID and the geometry type"
bad points 'obs\.gpkg: feature 1 is a POINT, not a polygon' "obs.gpkg, FID 1, POINT" "$T/points" \
  run --polygons "$D/obs.gpkg:sites" --class-field soil --covariates "${covs[@]}" "${small[@]}"

check "a line among polygons: fails naming the file, its FID (2) and type"
bad lines 'mixed\.gpkg: feature 2 is a LINESTRING, not a polygon' "mixed.gpkg, FID 2, LINESTRING" "$T/lines" \
  run --polygons "$D/mixed.gpkg" --class-field soil --covariates "${covs[@]}" "${small[@]}"

check "--target-field with a classification objective: refused before any training, naming the objective"
bad class_objective "option --objective: binary:logistic is not a regression objective" "the objective" \
  "$T/class_objective" run --polygons "$D/polygons.gpkg" --target-field depth --objective binary:logistic \
  --covariates "${covs[@]}" "${small[@]}"
[ ! -e "$T/class_objective" ] || fail "class_objective: $T/class_objective left behind"
ok "class_objective: no --out folder left"

check "missing class field: fails naming the field and listing the fields that exist"
bad no_field "polygons\.gpkg: layer 'soil_map' has no field 'SOILS' \(fields: soil, depth, map_unit\)" \
  "the missing field and the existing ones" "$T/no_field" \
  run --polygons "$D/polygons.gpkg" --class-field SOILS --covariates "${covs[@]}" "${small[@]}"

check "empty layer: fails naming the file"
bad empty 'empty\.gpkg: layer has no features' "empty.gpkg, no features" "$T/empty" \
  run --polygons "$D/empty.gpkg" --class-field soil --covariates "${covs[@]}" "${small[@]}"

check "every polygon wholly on nodata: fails saying no sample point is on valid covariates"
bad on_nodata 'no sample point on valid covariates' "no sample on valid covariates" "$T/on_nodata" \
  run --polygons "$D/on_nodata.gpkg" --class-field soil --covariates "${covs[@]}" "${small[@]}"

check "missing polygon map, and a text file as the map: fail naming the file"
bad no_map 'absent\.gpkg: no such file' "absent.gpkg" "$T/no_map" \
  run --polygons "$D/absent.gpkg" --class-field soil --covariates "${covs[@]}" "${small[@]}"
bad text_map 'notes\.txt: not a readable vector file' "notes.txt" "$T/text_map" \
  run --polygons "$D/notes.txt" --class-field soil --covariates "${covs[@]}" "${small[@]}"

check "run with a covariate one pixel east of the first: fails with 'grid differs', naming both files"
bad shifted 'shifted\.tif: grid differs from elevation\.tif' "shifted.tif and elevation.tif" "$T/shifted" \
  run --polygons "$D/polygons.gpkg" --class-field soil --covariates "$D/elevation.tif" "$D/shifted.tif" \
  "${small[@]}"
if "$GRIDMILL" run --help 2>/dev/null | grep -q -- '--align'; then
  check "the same run with --align: succeeds, outputs on elevation.tif's grid"
  run_gridmill aligned run --polygons "$D/polygons.gpkg" --class-field soil \
    --covariates "$D/elevation.tif" "$D/shifted.tif" --align "${small[@]}" --out "$T/aligned"
  expect_success aligned
  same_grid=$("$PYTHON" - "$D/elevation.tif" "$T/aligned/class.tif" <<'PY'
import sys
from osgeo import gdal
a, b = (gdal.Open(p) for p in sys.argv[1:])
print(int(a.GetGeoTransform() == b.GetGeoTransform() and (a.RasterXSize, a.RasterYSize) ==
          (b.RasterXSize, b.RasterYSize)))
PY
)
  [ "$same_grid" = 1 ] || fail "aligned: class.tif is not on elevation.tif's grid"
  ok "aligned: class.tif is on elevation.tif's grid"
  assert_no_stages aligned
else
  echo "   skipped: the supervisor has no --align yet"
fi

check "a covariate that does not exist: fails naming it"
bad no_covariate 'absent\.tif' "absent.tif" "$T/no_covariate" \
  run --polygons "$D/polygons.gpkg" --class-field soil --covariates "$D/elevation.tif" "$D/absent.tif" "${small[@]}"

check "output folder where a file is: run and predict fail saying it is not a directory"
: >"$T/a_file"
bad out_file_run 'a_file/out: cannot create .*folder: Not a directory' "a_file/out, not a directory" \
  "$T/a_file/out" run --polygons "$D/polygons.gpkg" --class-field soil --covariates "${covs[@]}" "${small[@]}"
bad out_file_predict 'a_file/out: cannot create .*folder: Not a directory' "a_file/out, not a directory" \
  "$T/a_file/out" predict --covariates "$P/cov_a.tif" "$P/cov_b.tif" "$P/cov_c.tif" --model "$P/softprob.json" \
  --workers 2

if mount_tmpfs "$T/ro" ro,size=1m; then
  check "output folder on a read-only file system (root may write anywhere else): fails saying so"
  bad ro_run 'ro/out: cannot create folder: Read-only file system' "ro/out, read-only" "$T/ro/out" \
    run --polygons "$D/polygons.gpkg" --class-field soil --covariates "${covs[@]}" "${small[@]}"
  bad ro_predict 'ro: output folder is not writable: Read-only file system' "ro, read-only" "$T/ro" \
    predict --covariates "$P/cov_a.tif" "$P/cov_b.tif" "$P/cov_c.tif" --model "$P/softprob.json" --workers 2
fi

if mount_tmpfs "$T/full_predict" size=1m; then
  check "disk full while predict writes (1 MiB tmpfs, 1.3 MiB of outputs): fails naming the file, 'No space left'"
  bad full_predict 'probability\.tif\.part: cannot write the tile at .*No space left on device' \
    "probability.tif.part and 'No space left'" "$T/full_predict/out" \
    predict --covariates "$P/cov_a.tif" "$P/cov_b.tif" "$P/cov_c.tif" --model "$P/softprob.json" \
    --probabilities --workers 2
fi

if mount_tmpfs "$T/full_run" size=2m; then
  check "disk full while run writes its summaries (2 MiB tmpfs, 3.5 MiB of summaries)"
  bad full_run '\.tif\.part: cannot write the tile at .*No space left on device' "a .tif.part and 'No space left'" \
    "$T/full_run/out" run --polygons "$D/polygons.gpkg" --class-field soil --covariates "${covs[@]}" "${small[@]}"
fi

if mount_tmpfs "$T/full_samples" size=16k; then
  check "disk full while run writes its sample tables (16 KiB tmpfs): fails naming the table, no partial table"
  bad full_samples 'samples/iter-[0-9]+\.csv: cannot write: No space left on device' \
    "a sample table and 'No space left'" "$T/full_samples/out" \
    run --polygons "$D/polygons.gpkg" --class-field soil --covariates "${covs[@]}" "${small[@]}"
  table=$(grep -Eo 'samples/iter-[0-9]+\.csv' "$GM_LOGS/full_samples.err" | sed -n 1p)
  [ ! -e "$T/full_samples/out/$table" ] ||
    fail "full_samples: $table, which could not be written, is left under its final name ($(wc -c \
      <"$T/full_samples/out/$table") bytes)"
  ok "full_samples: $table not left half-written under its final name"
fi
