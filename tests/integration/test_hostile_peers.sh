#!/usr/bin/env bash
# test_hostile_peers.sh -- garbage, truncated, oversized, wrong-version and out-of-range messages sent to
# every endpoint of a running job are logged and dropped: no crash, no hang, and the outputs are the same
# bytes as an undisturbed run.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

gm_require_build
D=$T/data
make_data "$D"
covs=("$D/cov_a.tif" "$D/cov_b.tif" "$D/cov_c.tif")

check "undisturbed reference run"
run_gridmill reference predict --covariates "${covs[@]}" --model "$D/softprob.json" --probabilities \
  --out "$T/reference" --workers 2 --block-size 32
expect_success reference

check "attacked run: every endpoint gets bad messages mid-run"
# 80 blocks of 100 ms on 2 workers: the run lasts seconds, well past the attack even on a slow machine
export GRIDMILL_DEBUG_DELAY_MS=100
"$GRIDMILL" predict --covariates "${covs[@]}" --model "$D/softprob.json" --probabilities --out "$T/attacked" \
  --workers 2 --block-size 32 >"$GM_LOGS/attacked.out" 2>"$GM_LOGS/attacked.err" &
sup=$!
GM_BG_PIDS+=("$sup")
reader_endpoints
control=$CONTROL
acks=$ACKS
results=$RESULTS
"$PYTHON" "$GM_ORACLES/hostile.py" "$control" "$acks" "$results" || fail "the control endpoint stopped serving"
gm_wait_gone "$sup" 120 || fail "the attacked run did not finish within 120 s"
rc=0
wait "$sup" || rc=$?
[ "$rc" -eq 0 ] || { gm_stderr_tail attacked >&2; fail "the attacked run exited $rc"; }
ok "attacked run completed"
for f in class.tif probability.tif; do
  cmp "$T/reference/$f" "$T/attacked/$f" >&2 || fail "$f differs from the undisturbed run"
done
ok "outputs byte-identical to the undisturbed run"
n=$(grep -cE "dropped|refused" "$GM_LOGS/attacked.err" || true)
[ "$n" -ge 10 ] || fail "only $n dropped-message lines logged"
ok "$n dropped-message lines logged, e.g.: $(grep -m1 -E 'dropped' "$GM_LOGS/attacked.err" | cut -c1-160)"
if grep -vE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T|^gridmill: ' "$GM_LOGS/attacked.err" | grep -q .; then
  grep -vE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T|^gridmill: ' "$GM_LOGS/attacked.err" | head -5 >&2
  fail "log lines broken by peer text (above)"
fi
ok "every log line well-formed"
assert_no_stages attacked
