#!/usr/bin/env bash
# test_hub.sh -- gridmill-hub's connect modes: --pull-from gathers several senders, --push-to gives every message
# to every receiver and waits for the slowest; bad option combinations are refused with one line.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

HUB=$GM_BUILD/gridmill-hub
[ -x "$HUB" ] || fail "$HUB not built (make all)"

check "two senders, two receivers: every message to both, frames unchanged; the hub waits for a stalled receiver"
oracle hub_fanout hub_peers.py "$HUB"

check "option combinations the hub refuses"
# refuses ARGS... PATTERN: fails unless the hub exits 2 with one stderr line matching PATTERN
refuses() {
  local pattern=${*: -1} rc=0 err shown
  shown="gridmill-hub ${*:1:$#-1}"
  shown=${shown//$T/\$T}
  err=$(timeout 10 "$HUB" "${@:1:$#-1}" 2>&1 >/dev/null) || rc=$?
  [ "$rc" -eq 2 ] || fail "$shown: exit $rc, expected 2"
  if [ "$(wc -l <<<"$err")" -ne 1 ] || ! grep -Eq -- "$pattern" <<<"$err"; then
    fail "$shown: stderr '$err' is not one line matching /$pattern/"
  fi
  ok "$shown: exit 2: $err"
}
refuses --pull ipc://"$T"/a --pull-from ipc://"$T"/b --push ipc://"$T"/c "either --pull or --pull-from"
refuses --pull ipc://"$T"/a "either --push or --push-to"
refuses --push-to ipc://"$T"/c "either --pull or --pull-from"
refuses --pull ipc://"$T"/a --push ipc://"$T"/c --push-to ipc://"$T"/d "either --push or --push-to"
