#!/usr/bin/env bash
# test_identical.sh -- outputs do not depend on the worker count or the block size: byte-identical files.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

gm_require_build
D=$T/data
make_data "$D"
covs=("$D/cov_a.tif" "$D/cov_b.tif" "$D/cov_c.tif")

# run NAME MODEL OPTIONS...: predicts into $T/NAME and fails unless it succeeds.
run() {
  local name=$1 model=$2
  shift 2
  mkdir -p "$T/$name"
  run_gridmill "$name" predict --covariates "${covs[@]}" --model "$D/$model" --out "$T/$name" "$@"
  expect_success "$name"
  assert_no_stages "$name"
}

check "softprob.json --probabilities: workers 1, 2, 5 and block sizes 128, 512 give the same bytes"
run sp_w1 softprob.json --probabilities --workers 1
run sp_w2 softprob.json --probabilities --workers 2
run sp_w5 softprob.json --probabilities --workers 5
run sp_b128 softprob.json --probabilities --workers 2 --block-size 128
run sp_b512 softprob.json --probabilities --workers 2 --block-size 512
for r in sp_w2 sp_w5 sp_b128 sp_b512; do
  same sp_w1 "$r" class.tif probability.tif
done

check "a first row of tiles wholly nodata: every tile still written to the file, none left sparse"
# The writer closes its files at every commit of its ledger; a tile wholly nodata written before the first
# commit must still reach the disk, and the tiles not yet written must not be filled in at that close.
"$PYTHON" - "$D/cov_a.tif" "$T/cov_a_top_nodata.tif" <<'PY'
import sys
import numpy as np
from osgeo import gdal
gdal.UseExceptions()
ds = gdal.Translate(sys.argv[2], sys.argv[1])
for i in range(1, ds.RasterCount + 1):
    b = ds.GetRasterBand(i)
    b.WriteArray(np.full((128, ds.RasterXSize), b.GetNoDataValue(), np.float32), 0, 0)
ds = None
PY
mkdir -p "$T/top_nodata"
run_gridmill top_nodata predict --covariates "$T/cov_a_top_nodata.tif" "$D/cov_b.tif" "$D/cov_c.tif" \
  --model "$D/softprob.json" --probabilities --workers 2 --tile-size 128 --out "$T/top_nodata"
expect_success top_nodata
oracle top_nodata_tiles check_tiles.py "$T/top_nodata/class.tif" "$T/top_nodata/probability.tif"

check "reg.json: workers 1 and 5 give the same bytes"
run reg_w1 reg.json --workers 1
run reg_w5 reg.json --workers 5
same reg_w1 reg_w5 prediction.tif

check "1300 x 1100 covariates in 512-pixel tiles: output tiles of 512 whatever the block; values as with 256"
W=$T/wide
make_data "$W" --size 1300 1100
covs=("$W/cov_a.tif" "$W/cov_b.tif" "$W/cov_c.tif")
run wide_ref softprob.json --probabilities --workers 2
mkdir -p "$W/t512"
for c in cov_a cov_b cov_c; do
  gdal_translate -q -co TILED=YES -co BLOCKXSIZE=512 -co BLOCKYSIZE=512 "$W/$c.tif" "$W/t512/$c.tif"
done
covs=("$W/t512/cov_a.tif" "$W/t512/cov_b.tif" "$W/t512/cov_c.tif")
run wide_t512 softprob.json --probabilities --workers 2
"$PYTHON" - "$T/wide_ref" "$T/wide_t512" <<'PY' || fail "wide_t512: see above"
import sys
from osgeo import gdal
import numpy as np
for name in ("class.tif", "probability.tif"):
    a, b = (gdal.Open(f"{d}/{name}") for d in sys.argv[1:3])
    tiles = [ds.GetRasterBand(1).GetBlockSize() for ds in (a, b)]
    assert tiles == [[256, 256], [512, 512]], f"{name}: tiles {tiles}, not 256 and 512"
    assert np.array_equal(a.ReadAsArray(), b.ReadAsArray()), f"{name}: values differ from the 256-tile run"
print("wide_t512: class.tif and probability.tif in 512 x 512 tiles, every value as in wide_ref")
PY
ok "wide_t512: output tiles follow the covariates' 512-pixel tiles; values identical"
run wide_t512_b256 softprob.json --probabilities --workers 2 --block-size 256
same wide_t512 wide_t512_b256 class.tif probability.tif

check "blocks larger than tiles and a window asked too small: the reader widens it to a row of blocks"
covs=("$W/cov_a.tif" "$W/cov_b.tif" "$W/cov_c.tif")
run wide_b512_w2 softprob.json --probabilities --workers 2 --block-size 512 --tile-size 256 --max-inflight 2
grep -q "is below the 4 blocks the writer needs to complete a tile" "$GM_LOGS/wide_b512_w2.err" ||
  fail "wide_b512_w2: no warning that the window was widened to 4 blocks"
same wide_ref wide_b512_w2 class.tif probability.tif
