#!/usr/bin/env bash
# test_remote_hosts.sh -- workers on other hosts: the supervisor, reader and writer run in a "head" network
# namespace and start workers over ssh (--hosts) in two "worker host" namespaces joined to it by veth pairs,
# so every message crosses the veth addresses. The outputs equal a local run's bytes; then one worker host is
# cut off mid-run (link deleted, its processes killed, as a power loss) and the run still completes identical.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=../lib_netns.sh
source "$GM_ROOT/tests/lib_netns.sh"

gm_require_build
if ! netns_available; then
  # CI runs as root with iproute2: there the test must run, so only a non-root run may skip
  [ "$(id -u)" -ne 0 ] || fail "network namespaces unavailable as root: $NETNS_WHY"
  echo "   SKIP: $NETNS_WHY"
  exit 0
fi
netns_on_exit

D=$T/data
make_data "$D"
covs=("$D/cov_a.tif" "$D/cov_b.tif" "$D/cov_c.tif")
model=$D/softprob.json
# small blocks and a slowed worker, so a run lasts long enough to cut a host in the middle of it
opts=(--covariates "${covs[@]}" --model "$model" --probabilities -bs 32)

check "reference: a local run on loopback"
run_gridmill local predict "${opts[@]}" --out "$T/local" --workers 2
expect_success local

netns_up "$T/net" 2
netns_sshd
HEAD=$NETNS_HEAD_ADDR
printf 'host1 2\nhost2 2   # two workers on each\n' >"$T/hosts.txt"
ok "hosts: head $HEAD, host1 $(netns_host_addr 1), host2 $(netns_host_addr 2), sshd on both"

# remote NAME OUT [ENV...]: runs the supervisor in the head namespace with workers on host1 and host2 only,
# in the background; sets REMOTE_PID.
remote() {
  local name=$1 out=$2
  shift 2
  echo "   \$ ip netns exec HEAD env $* gridmill predict ... --bind-host $HEAD --insecure --hosts hosts.txt --workers 0"
  ip netns exec "$NETNS_HEAD" env "$@" timeout -k 5 "$GM_RUN_TIMEOUT" "$GRIDMILL" predict --verbose "${opts[@]}" \
    --out "$out" --bind-host "$HEAD" --insecure --hosts "$T/hosts.txt" --ssh "$NETNS_SSH" --workers 0 \
    >"$GM_LOGS/$name.out" 2>"$GM_LOGS/$name.err" &
  REMOTE_PID=$!
  GM_BG_PIDS+=("$REMOTE_PID")
}

# workers_on i: prints how many gridmill-worker processes run in worker host i's namespace.
workers_on() {
  local n=0 pid
  for pid in $(ip netns pids "$(netns_host "$1")" 2>/dev/null); do
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = gridmill-worker ] && n=$((n + 1))
  done
  echo "$n"
}

# finish NAME: waits for the background run and checks it succeeded.
finish() {
  set +e
  wait "$REMOTE_PID"
  GM_RC=$?
  set -e
  expect_success "$1"
}

# workers_gone I: waits up to 5 s for host I to have no gridmill-worker (a remote worker stops once its ssh
# is gone and its current task is done). Returns 1 if one is still there.
workers_gone() {
  for _ in $(seq 1 50); do
    [ "$(workers_on "$1")" != 0 ] || return 0
    sleep 0.1
  done
  return 1
}

check "all workers on two other hosts over ssh: identical to the local run"
# slowed to 100 ms a block: the pass outlasts the ssh logins, so that both hosts get to run their workers
remote across "$T/across" GRIDMILL_DEBUG_DELAY_MS_WORKER=100
seen1=0 seen2=0
for _ in $(seq 1 200); do
  gm_alive "$REMOTE_PID" || break
  [ "$(workers_on 1)" -lt 2 ] || seen1=1
  [ "$(workers_on 2)" -lt 2 ] || seen2=1
  [ "$seen1$seen2" != 11 ] || break
  sleep 0.1
done
finish across
[ "$seen1$seen2" = 11 ] || fail "across: did not see two gridmill-worker processes in each worker host's namespace"
ok "across: two gridmill-worker processes ran in each worker host's namespace"
# gridmill's own lines only: the remote login shells may print what they like
if grep -E '^[0-9]{4}-[0-9]{2}-[0-9]{2}T|^gridmill: ' "$GM_LOGS/across.err" | grep -q "cannot"; then
  fail "across: $(grep -E '^[0-9]{4}-[0-9]{2}-[0-9]{2}T|^gridmill: ' "$GM_LOGS/across.err" | grep -m1 cannot)"
fi
for f in class.tif probability.tif; do
  cmp "$T/local/$f" "$T/across/$f" >&2 || fail "across/$f differs from the local run's"
done
ok "across: class.tif and probability.tif byte-identical to the local run"
for i in 1 2; do
  workers_gone "$i" || fail "across: a worker is left on host$i 5 s after the run"
done
ok "across: no worker left on either host (their ssh ended, so did they)"

check "host2 lost mid-run (link deleted, processes killed): the run completes on host1, identical"
remote cut "$T/cut" GRIDMILL_DEBUG_DELAY_MS_WORKER=250
for _ in $(seq 1 100); do
  [ "$(workers_on 2)" -lt 2 ] || break
  sleep 0.1
done
[ "$(workers_on 2)" -ge 2 ] || fail "cut: host2's workers never started"
sleep 2  # both hosts are computing blocks now
gm_alive "$REMOTE_PID" || fail "cut: the run ended before host2 could be cut; slow the workers more"
netns_cut 2
ok "cut: host2 cut off while the run was going on"
finish cut
expect_stderr cut "workers? silent for [0-9]+ s: taken for lost" "the reader noticing the lost workers"
expect_stderr cut "re-issuing [0-9]+ task" "the reader re-issuing the lost host's tasks"
for f in class.tif probability.tif; do
  cmp "$T/local/$f" "$T/cut/$f" >&2 || fail "cut/$f differs from the local run's"
done
ok "cut: class.tif and probability.tif byte-identical to the local run"
workers_gone 1 || fail "cut: a worker is left on host1 5 s after the run"
ok "cut: no worker left on host1"
