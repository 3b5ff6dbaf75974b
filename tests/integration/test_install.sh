#!/usr/bin/env bash
# test_install.sh -- `make install` (issue 16, item 1): installed into a temporary prefix, gridmill predict and
# run, the C example pre-stage (gridmill-stage-mask) and the Python example stage (confident_stage.py) named
# bare, work from another folder with the source tree out of reach (a tmpfs over it in a mount namespace,
# when this machine allows one), and give the same bytes as the source tree's runs. DESTDIR stages the same
# files; `make uninstall` removes them; every command has a man page made from its --help.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

gm_require_build
D=$T/data
make_data "$D" --size 300 300
make_run_data "$D/run"
"$PYTHON" - "$D/cov_a.tif" "$D/mask.tif" <<'EOF' || fail "cannot make the mask"
import sys
import numpy as np
from osgeo import gdal
src = gdal.Open(sys.argv[1])
out = gdal.GetDriverByName("GTiff").Create(sys.argv[2], src.RasterXSize, src.RasterYSize, 1, gdal.GDT_Byte)
out.SetGeoTransform(src.GetGeoTransform())
out.SetProjection(src.GetProjection())
m = np.ones((src.RasterYSize, src.RasterXSize), np.uint8)
m[:60, :] = 0
out.GetRasterBand(1).WriteArray(m)
EOF

predict=(predict --covariates data/cov_a.tif data/cov_b.tif data/cov_c.tif --model data/softprob.json --probabilities
  --workers 2 --pre-stage "gridmill-stage-mask data/mask.tif" --stage "confident_stage.py 0.6" -q)
run=(run --polygons data/run/polygons.gpkg --class-field soil --covariates data/run/elevation.tif
  data/run/wetness.tif data/run/climate.tif --iterations 2 --samples-per-polygon 10 --workers 2 -q)

check "make install PREFIX=\$T/prefix"
make -s -C "$GM_ROOT" install BUILD="$GM_BUILD" PREFIX="$T/prefix" >"$GM_LOGS/install.out" 2>&1 ||
  fail "make install: $(tail -n 5 "$GM_LOGS/install.out")"
for f in bin/gridmill bin/gridmill-reader bin/gridmill-worker bin/gridmill-writer bin/gridmill-hub \
  bin/gridmill-stage-mask bin/gridmill-report lib/gridmill/gridmill_launch.py lib/gridmill/gridmill_log.py \
  lib/gridmill/gridmill_progress.py lib/gridmill/stages/confident_stage.py; do
  [ -e "$T/prefix/$f" ] || fail "make install: $f missing"
done
for m in gridmill gridmill-predict gridmill-run gridmill-reader gridmill-worker gridmill-writer gridmill-hub \
  gridmill-stage-mask gridmill-report; do
  page=$T/prefix/share/man/man1/$m.1
  [ -s "$page" ] && grep -q '^\.SH NAME' "$page" && grep -q '^\.SH SYNOPSIS' "$page" || fail "no man page $m.1"
done
grep -q 'output folder' "$T/prefix/share/man/man1/gridmill-writer.1" || fail "gridmill-writer.1 does not hold its --help"
ok "installed: 7 executables, 3 modules, the example stage, 9 man pages"

check "the same commands from the source tree (reference)"
(cd "$T" && GM_PLAIN=1 run_gridmill src_predict "${predict[@]}" --out "$T/src_predict" && echo "$GM_RC" >"$T/rc1")
GM_RC=$(cat "$T/rc1")
expect_success src_predict
(cd "$T" && GM_PLAIN=1 run_gridmill src_run "${run[@]}" --out "$T/src_run" && echo "$GM_RC" >"$T/rc2")
GM_RC=$(cat "$T/rc2")
expect_success src_run

check "installed, from another folder, the source tree out of reach"
mkdir -p "$T/elsewhere"
cp -r "$D" "$T/elsewhere/data"
cat >"$T/installed.sh" <<EOF
set -u
[ "\${HIDE:-0}" = 1 ] && { mount -t tmpfs none "$GM_ROOT" || exit 97; }
cd "$T/elsewhere"
unset GRIDMILL_BIN BUILD
export PATH="$T/prefix/bin:/usr/bin:/bin"
gridmill ${predict[*]@Q} --out out_predict >"$GM_LOGS/inst_predict.out" 2>"$GM_LOGS/inst_predict.err" || exit 1
gridmill ${run[*]@Q} --out out_run >"$GM_LOGS/inst_run.out" 2>"$GM_LOGS/inst_run.err" || exit 2
[ ! -e "$GM_ROOT/Makefile" ] || [ "\${HIDE:-0}" = 0 ] || exit 98
EOF
hidden=0
if [ "$(id -u)" -eq 0 ] && unshare -m true 2>/dev/null; then
  hidden=1
  set +e
  HIDE=1 timeout 120 unshare -m bash "$T/installed.sh"
  rc=$?
  set -e
else
  echo "   note: no mount namespace here: the source tree stays visible (GRIDMILL_BIN unset, PATH the prefix only)"
  set +e
  timeout 120 bash "$T/installed.sh"
  rc=$?
  set -e
fi
case $rc in
  0) ;;
  1 | 2) cat "$GM_LOGS/inst_predict.err" "$GM_LOGS/inst_run.err" 2>/dev/null | head -n 10 >&2
    fail "the installed gridmill failed ($([ $rc = 1 ] && echo predict || echo run))" ;;
  97) fail "cannot hide the source tree" ;;
  *) fail "the installed commands exited $rc" ;;
esac
for f in class.tif probability.tif; do
  cmp "$T/src_predict/$f" "$T/elsewhere/out_predict/$f" >&2 || fail "installed predict: $f differs from the source tree's"
done
for f in class.tif probability.tif entropy.tif confusion.tif; do
  cmp "$T/src_run/$f" "$T/elsewhere/out_run/$f" >&2 || fail "installed run: $f differs from the source tree's"
done
ok "installed predict (with both example stages named bare) and run: outputs byte-identical to the source tree's$([ $hidden = 1 ] && echo ", source tree hidden")"

check "DESTDIR stages the same files; make uninstall removes them"
make -s -C "$GM_ROOT" install BUILD="$GM_BUILD" PREFIX=/usr/local DESTDIR="$T/dest" >"$GM_LOGS/destdir.out" 2>&1 ||
  fail "make install DESTDIR: $(tail -n 5 "$GM_LOGS/destdir.out")"
want=$(cd "$T/prefix" && find . -type f | sort)
got=$(cd "$T/dest/usr/local" && find . -type f | sort)
[ "$want" = "$got" ] || fail "DESTDIR install differs from the PREFIX one"
make -s -C "$GM_ROOT" uninstall BUILD="$GM_BUILD" PREFIX=/usr/local DESTDIR="$T/dest" >"$GM_LOGS/uninstall.out" 2>&1 ||
  fail "make uninstall: $(tail -n 5 "$GM_LOGS/uninstall.out")"
left=$(find "$T/dest" -type f | head -n 5)
[ -z "$left" ] || fail "make uninstall left: $left"
ok "DESTDIR install: $(echo "$got" | wc -l) files, the same as PREFIX's; uninstall removed them all"
