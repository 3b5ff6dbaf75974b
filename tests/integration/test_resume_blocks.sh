#!/usr/bin/env bash
# test_resume_blocks.sh -- the writer, the reader, or the whole pipeline killed mid-prediction; the same command
# again resumes from the tiles already written (DIR/.gridmill-ledger): those blocks are not read nor computed
# again, and the outputs are byte-identical to an uninterrupted run. An interrupted run leaves only .part files.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

gm_require_build
D=$T/data
make_data "$D" --size 600 1100
args=(predict --covariates "$D/cov_a.tif" "$D/cov_b.tif" "$D/cov_c.tif" --model "$D/softprob.json" --probabilities
  --workers 2 --block-size 128)

check "uninterrupted reference run"
run_gridmill reference "${args[@]}" --out "$T/reference"
expect_success reference

for victim in gridmill-writer gridmill-reader supervisor; do
  name=kill_${victim#gridmill-}
  out=$T/$name
  check "SIGKILL to $victim once 2 rows of tiles are written; then the same command resumes"
  GRIDMILL_DEBUG_DELAY_MS_WRITER=600 "$GRIDMILL" "${args[@]}" --verbose --out "$out" >"$GM_LOGS/$name.1.out" \
    2>"$GM_LOGS/$name.1.err" &
  sup=$!
  GM_BG_PIDS+=("$sup")
  for _ in $(seq 300); do
    grep -Eqs "^tiles (6|9|12)$" "$out/.gridmill-ledger" && break
    sleep 0.05
  done
  grep -Eqs "^tiles (6|9|12)$" "$out/.gridmill-ledger" || fail "$name: the ledger never showed 2 to 4 rows of tiles written"
  if [ "$victim" = supervisor ]; then
    kill -KILL "$sup"
  else
    pid=$(gm_tagged_pids "$victim" | sed -n 1p)
    [ -n "$pid" ] || fail "$name: no $victim running"
    kill -KILL "$pid"
  fi
  gm_wait_gone "$sup" 10 || fail "$name: supervisor still running 10 s after the kill"
  wait "$sup" || true
  gm_wait_stages_gone
  assert_no_stages "$name interrupted"
  expect_no_final_outputs "$name" "$out"
  written=$(sed -n 's/^tiles //p' "$out/.gridmill-ledger")
  ok "$name: killed with $written of 15 tiles in the ledger; only .part files left"
  run_gridmill "$name.2" "${args[@]}" --out "$out"
  expect_success "$name.2"
  grep -E "resuming: $written of 15 output tiles" "$GM_LOGS/$name.2.err" >&2 ||
    fail "$name: the second run did not resume from $written tiles"
  line=$(grep -m1 "covariate block reads:" "$GM_LOGS/$name.2.err")
  reads=$(echo "$line" | sed -n 's/.*blocks read \([0-9]*\) times.*/\1/p')
  # 3 tiles across; a row of tiles 256 high holds 2 rows of 5 blocks of 128: 10 blocks per row of tiles written
  max=$((45 - 10 * written / 3))
  [ "$reads" -le "$max" ] || fail "$name: the resumed run read $reads blocks, more than the $max not yet written"
  for f in class.tif probability.tif; do
    cmp "$T/reference/$f" "$out/$f" >&2 || fail "$name: $f differs from the uninterrupted run"
  done
  [ ! -e "$out/.gridmill-ledger" ] || fail "$name: the ledger is still there after completion"
  ok "$name: resumed; read $reads blocks (at most $max); outputs byte-identical to the uninterrupted run"
done
