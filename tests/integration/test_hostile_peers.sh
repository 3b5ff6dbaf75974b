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
"$GRIDMILL" predict --verbose --covariates "${covs[@]}" --model "$D/softprob.json" --probabilities --out "$T/attacked" \
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

check "forged acks on tcp endpoints (stages started by hand): no wrong outputs with exit 0, no hang"
# 80 blocks of 32 px; the forger claims all 80 written while the writer has a few: the reader drops what no
# writer could have sent, and ends within its stall timeout with an error if it cannot tell the rest
port=$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ep() { echo "tcp://127.0.0.1:$((port + $1))"; }
mkdir -p "$T/forged"
export GRIDMILL_DEBUG_DELAY_MS=100
"$GM_BUILD/gridmill-reader" --control "$(ep 0)" --tasks "$(ep 1)" --acks "$(ep 2)" --results "$(ep 3)" \
  --stall-timeout 5 --block-size 32 --model "$D/softprob.json" --probabilities --covariates "${covs[@]}" \
  >"$GM_LOGS/forged-reader.out" 2>"$GM_LOGS/forged-reader.err" &
rpid=$!
GM_BG_PIDS+=("$rpid")
"$GM_BUILD/gridmill-writer" --out "$T/forged" --connect "$(ep 0)" --bind "$(ep 3)" 2>"$GM_LOGS/forged-writer.err" &
wpid=$!
GM_BG_PIDS+=("$wpid")
for i in 1 2; do
  "$GM_BUILD/gridmill-worker" --connect "$(ep 0)" 2>"$GM_LOGS/forged-worker$i.err" &
  GM_BG_PIDS+=("$!")
done
sleep 1.5
"$PYTHON" "$GM_ORACLES/forge_acks.py" "$(ep 0)" "$(ep 2)" 80 || fail "forge_acks could not reach the reader"
gm_wait_gone "$rpid" 60 || fail "forged: the reader hung after forged acks (still running 60 s later)"
rrc=0
wait "$rpid" || rrc=$?
gm_wait_gone "$wpid" 10 || kill -TERM "$wpid" 2>/dev/null || true
wait "$wpid" 2>/dev/null || true
for p in $(gm_tagged_pids gridmill-worker); do kill -TERM "$p" 2>/dev/null || true; done
if [ "$rrc" -eq 0 ]; then
  for f in class.tif probability.tif; do
    cmp "$T/reference/$f" "$T/forged/$f" >&2 || fail "forged: reader exited 0 but $f differs from the undisturbed run"
  done
  ok "forged: reader exited 0 and the outputs are byte-identical to the undisturbed run"
else
  grep -q "acks:" "$GM_LOGS/forged-reader.err" || fail "forged: reader exited $rrc without naming the acks"
  ok "forged: reader ended with status $rrc: $(grep -m1 -E 'ERROR' "$GM_LOGS/forged-reader.err" | cut -c1-160)"
fi
grep -qE 'dropped an? .*ack' "$GM_LOGS/forged-reader.err" || fail "forged: no forged ack was dropped with a warning"
ok "forged: $(grep -m1 -E 'dropped an? .*ack' "$GM_LOGS/forged-reader.err" | cut -c1-160)"
gm_wait_stages_gone

check "default supervisor: ipc:// endpoints in a private 0700 folder"
"$GRIDMILL" predict --verbose --covariates "${covs[@]}" --model "$D/softprob.json" --probabilities --out "$T/ipc" \
  --workers 2 --block-size 32 >"$GM_LOGS/ipc.out" 2>"$GM_LOGS/ipc.err" &
sup=$!
GM_BG_PIDS+=("$sup")
reader_endpoints
for e in "$CONTROL" "$TASKS" "$ACKS" "$RESULTS"; do
  case $e in ipc://*) ;; *) fail "ipc: endpoint $e is not ipc://" ;; esac
done
dir=$(dirname "${ACKS#ipc://}")
mode=$(stat -c %a "$dir")
[ "$mode" = 700 ] || fail "ipc: $dir has mode $mode, not 700"
[ "$(stat -c %u "$dir")" = "$(id -u)" ] || fail "ipc: $dir is not ours"
ok "ipc: endpoints in $dir (mode $mode)"
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
  # another user cannot even reach the folder, so cannot forge acks
  if timeout 20 setpriv --reuid=65534 --regid=65534 --clear-groups "$PYTHON" "$GM_ORACLES/forge_acks.py" \
      "$CONTROL" "$ACKS" 80 >"$GM_LOGS/ipc-forge.out" 2>&1; then
    fail "ipc: another user (nobody) fetched the job and forged acks"
  fi
  ok "ipc: another user (nobody) cannot connect: $(tail -n1 "$GM_LOGS/ipc-forge.out" | cut -c1-120)"
else
  echo "   (not root: skipped running the forger as another user)"
fi
gm_wait_gone "$sup" 120 || fail "ipc: the run did not finish"
rc=0
wait "$sup" || rc=$?
[ "$rc" -eq 0 ] || { gm_stderr_tail ipc >&2; fail "ipc: the run exited $rc"; }
same reference ipc class.tif probability.tif
[ ! -e "$dir" ] || fail "ipc: $dir left behind after the run"
ok "ipc: $dir removed at exit"
assert_no_stages ipc
