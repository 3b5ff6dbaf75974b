#!/usr/bin/env bash
# test_resume_safe.sh -- the ledger vouches only for what is on disk, and no resume can lose or fake a tile
# (issue 15, D1). Each case ends byte-identical to an undisturbed run:
#   - the writer SIGKILLed after its files are synced but before its ledger is replaced;
#   - a resume SIGKILLed in the middle of its copy, then another just after it replaced one of the two files;
#   - the writer SIGKILLed between renaming its complete outputs to their final names;
#   - a truncated NAME.part, and one with a byte flipped inside a tile (both recomputed from the bad row);
#   - a disk that fills mid-run, then is freed too little for the resume's copy (which fails, keeping the
#     files and the ledger), then enough (root only: a tmpfs; skipped with a note elsewhere).
# After every interruption, tests/oracles/check_ledger.py (python3-xxhash over GDAL's reads of the files)
# confirms every tile the ledger vouches for is in the files as it says.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

gm_require_build
D=$T/data
make_data "$D" --size 600 1100
args=(predict --covariates "$D/cov_a.tif" "$D/cov_b.tif" "$D/cov_c.tif" --model "$D/softprob.json" --probabilities
  --workers 2 --block-size 128)
outputs=(class.tif probability.tif)

# ledger_ok NAME DIR: the ledger in DIR vouches only for tiles its .part files hold.
ledger_ok() {
  oracle "$1" check_ledger.py "$2/.gridmill-ledger" --tile 256 "$2/class.tif.part" "$2/probability.tif.part"
}

# identical NAME DIR: every output in DIR is the reference's bytes, and no ledger or .part is left.
identical() {
  local f
  for f in "${outputs[@]}"; do
    cmp "$T/reference/$f" "$2/$f" >&2 || fail "$1: $f differs from the undisturbed run"
  done
  left=$(find "$2" -maxdepth 1 \( -name '*.part*' -o -name '.gridmill-ledger*' \) -printf '%f ')
  [ -z "$left" ] || fail "$1: left after completion: $left"
  ok "$1: ${outputs[*]} byte-identical to the undisturbed run; no .part or ledger left"
}

# interrupt NAME DIR: runs the job into DIR with the writer SIGKILLed at its 3rd commit, just before it
# replaces the ledger (2 rows, 6 tiles, vouched for; 3 rows in the files).
interrupt() {
  GRIDMILL_DEBUG_KILL_WRITER=commit:3 run_gridmill "$1" "${args[@]}" --out "$2"
  expect_failure "$1"
  gm_wait_stages_gone
  grep -qx 'tiles 6' "$2/.gridmill-ledger" || fail "$1: the ledger does not vouch for 6 tiles: $(sed -n 3p "$2/.gridmill-ledger")"
  ledger_ok "$1" "$2"
}

check "undisturbed reference run"
run_gridmill reference "${args[@]}" --out "$T/reference"
expect_success reference

check "the writer SIGKILLed between syncing its files and replacing the ledger; the same command resumes"
interrupt kill_commit "$T/kill_commit"
run_gridmill kill_commit.2 "${args[@]}" --out "$T/kill_commit"
expect_success kill_commit.2
expect_stderr kill_commit.2 "resuming: 6 of 15 output tiles" "the resume from the 6 tiles vouched for"
identical kill_commit "$T/kill_commit"

check "a resume SIGKILLed mid-copy, then one SIGKILLed after replacing the first file; then a resume to the end"
out=$T/kill_resume
interrupt kill_resume "$out"
GRIDMILL_DEBUG_KILL_WRITER=resume-tile:4 run_gridmill kill_resume.copy "${args[@]}" --out "$out"
expect_failure kill_resume.copy
gm_wait_stages_gone
[ -e "$out/class.tif.part.new" ] || fail "kill_resume.copy: the writer died before its copy began (no class.tif.part.new)"
ledger_ok kill_resume.copy "$out"
GRIDMILL_DEBUG_KILL_WRITER=resume-adopt:1 run_gridmill kill_resume.adopt "${args[@]}" --out "$out"
expect_failure kill_resume.adopt
gm_wait_stages_gone
[ -e "$out/probability.tif.part.new" ] && [ ! -e "$out/class.tif.part.new" ] ||
  fail "kill_resume.adopt: not killed between the two renames: $(ls "$out" | paste -sd' ' -)"
ledger_ok kill_resume.adopt "$out"
run_gridmill kill_resume.end "${args[@]}" --out "$out"
expect_success kill_resume.end
expect_stderr kill_resume.end "resuming: 6 of 15 output tiles" "the resume from the 6 tiles vouched for"
identical kill_resume "$out"

check "the writer SIGKILLed between renaming its two complete outputs: the resume takes NAME and NAME.part"
out=$T/kill_finish
GRIDMILL_DEBUG_KILL_WRITER=finish:1 run_gridmill kill_finish "${args[@]}" --out "$out"
expect_failure kill_finish
gm_wait_stages_gone
[ -e "$out/class.tif" ] && [ -e "$out/probability.tif.part" ] && grep -qx 'tiles 15' "$out/.gridmill-ledger" ||
  fail "kill_finish: not killed between the renames: $(ls -A "$out" | paste -sd' ' -)"
run_gridmill kill_finish.2 "${args[@]}" --out "$out"
expect_success kill_finish.2
expect_stderr kill_finish.2 "resuming: 15 of 15 output tiles" "the resume of every tile"
identical kill_finish "$out"

check "a truncated class.tif.part: the tiles past the cut are computed again"
out=$T/truncated
interrupt truncated "$out"
size=$(stat -c %s "$out/class.tif.part")
truncate -s $((size * 2 / 5)) "$out/class.tif.part"
run_gridmill truncated.2 "${args[@]}" --out "$out"
expect_success truncated.2
expect_stderr truncated.2 "class\.tif\.part.*(not what the ledger vouches for|cannot)" "the truncated file"
identical truncated "$out"

check "one byte flipped inside tile 4 of probability.tif.part: resumed from the 3 tiles before its row"
out=$T/flipped
interrupt flipped "$out"
"$PYTHON" - "$out/probability.tif.part" <<'EOF' || fail "flipped: cannot flip a byte of tile 4"
import sys
from osgeo import gdal
ds = gdal.Open(sys.argv[1])
off = int(ds.GetRasterBand(2).GetMetadataItem("BLOCK_OFFSET_1_1", "TIFF"))
size = int(ds.GetRasterBand(2).GetMetadataItem("BLOCK_SIZE_1_1", "TIFF"))
ds = None
assert off > 0 and size > 100, (off, size)
with open(sys.argv[1], "r+b") as f:
    f.seek(off + size // 2)
    b = f.read(1)
    f.seek(off + size // 2)
    f.write(bytes([b[0] ^ 0x40]))
EOF
run_gridmill flipped.2 "${args[@]}" --out "$out"
expect_success flipped.2
expect_stderr flipped.2 "probability\.tif\.part: tile 4 .*not what the ledger vouches for" "the damaged tile by file"
expect_stderr flipped.2 "resuming: 3 of 15 output tiles" "the resume from the row before the damage"
identical flipped "$out"

check "a disk that fills mid-run, then is freed too little for the resume's copy, then enough"
MNT=$T/full
mkdir -p "$MNT"
total=$(($(stat -c %s "$T/reference/class.tif") + $(stat -c %s "$T/reference/probability.tif")))
if [ "$(id -u)" -ne 0 ] || ! mount -t tmpfs -o size=$((total * 6 / 10)) tmpfs "$MNT" 2>/dev/null; then
  echo "   note: not root or no tmpfs mount here: the disk-full case is not run"
else
  trap 'rc=$?; umount -l "$MNT" 2>/dev/null; (exit $rc); gm_cleanup' EXIT
  out=$MNT/out
  run_gridmill full.1 "${args[@]}" --out "$out"
  expect_failure full.1
  expect_stderr full.1 "No space left on device" "the full disk"
  gm_wait_stages_gone
  k=$(sed -n 's/^tiles //p' "$out/.gridmill-ledger")
  [ "${k:-0}" -gt 0 ] || fail "full.1: the run filled the disk before its first row of tiles"
  ledger_ok full.1 "$out"
  used=$(du -sb "$out" | cut -f1)
  mount -o remount,size=$((used + total / 10)) "$MNT"
  cp "$out/.gridmill-ledger" "$T/ledger.before"
  run_gridmill full.2 "${args[@]}" --out "$out"
  expect_failure full.2
  expect_stderr full.2 "cannot resume the $k tiles .*No space left on device.*kept for a re-run" "why the resume stopped"
  cmp "$T/ledger.before" "$out/.gridmill-ledger" >&2 || fail "full.2: the failed resume changed the ledger"
  [ ! -e "$out/class.tif.part.new" ] && [ ! -e "$out/probability.tif.part.new" ] || fail "full.2: .part.new files left"
  ledger_ok full.2 "$out"
  mount -o remount,size=$((total * 4)) "$MNT"
  run_gridmill full.3 "${args[@]}" --out "$out"
  expect_success full.3
  expect_stderr full.3 "resuming: $k of 15 output tiles" "the resume from the $k tiles vouched for"
  identical full "$out"
fi
