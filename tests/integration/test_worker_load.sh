#!/usr/bin/env bash
# test_worker_load.sh -- a worker loads its job's models off its event loop (issue 17, blocking work): while a
# load takes 4 s (GRIDMILL_DEBUG_LOAD_MS), its heartbeats go on, so the reader (which takes a worker silent for
# 3 s as lost) never loses it nor re-issues its blocks, and the run ends as an undisturbed one.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

gm_require_build
D=$T/data
make_data "$D" --size 300 300
args=(predict --covariates "$D/cov_a.tif" "$D/cov_b.tif" "$D/cov_c.tif" --model "$D/softprob.json" --probabilities
  --workers 2)

run_gridmill reference "${args[@]}" --out "$T/reference"
expect_success reference
check "every worker's load takes 4 s: still heard, nothing re-issued"
GRIDMILL_DEBUG_LOAD_MS=4000 run_gridmill slow "${args[@]}" --out "$T/slow"
expect_success slow
! grep -E "taken for lost|re-issuing|silent for" "$GM_LOGS/slow.err" >&2 || fail "slow: a loading worker was taken for lost"
for f in class.tif probability.tif; do cmp "$T/reference/$f" "$T/slow/$f" >&2 || fail "slow: $f differs"; done
ok "slow: no worker lost during 4 s loads; outputs byte-identical"
