#!/usr/bin/env bash
# scaling.sh -- how predict's throughput grows with workers, compute bound (the benchmark's 100-tree forest):
# 1 and 2 local workers on loopback, then (as root, with iproute2 and openssh-server) 1 and 2 worker hosts of
# one worker each in network namespaces joined by veth pairs, workers started over ssh (--hosts), all traffic
# crossing the veth addresses. Each run's outputs are compared with the first's (cmp); prints a Markdown table
# with wall seconds, pixels per second and the ratio to one worker, and writes it to bench/SCALING.md.
#
# Usage: bench/scaling.sh [--size N] [--repeat K]   (N: study area side, 2048; K: runs per row, best kept, 2)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-/usr/bin/python3}
BUILD=${BUILD:-build}
size=2048 repeat=2
while (($#)); do
  case $1 in
    --size) size=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    *) echo "scaling: $1: unknown option (--size N, --repeat K)" >&2; exit 2 ;;
  esac
done
export GRIDMILL_BIN="$root/$BUILD"
data="$root/$BUILD/bench/data-$size"
out="$root/$BUILD/bench/scaling-$size"
if [ ! -f "$data/forest.json" ]; then
  echo "scaling: making the study area in $data (once)" >&2
  "$PYTHON" "$root/bench/make_bench_data.py" "$data" --size "$size" >&2
fi
mapfile -t covs < "$data/covariates.txt"  # absolute paths
rm -rf "$out" && mkdir -p "$out"
opts=(predict -q --covariates "${covs[@]}" --model "$data/forest.json" --probabilities)
rows=()

# measure NAME CMD...: runs CMD 'repeat' times into $out/NAME-k, keeps the best wall time in BEST, and checks
# the outputs equal the first row's.
measure() {
  local name=$1 k t0 t best=""
  shift
  for k in $(seq 1 "$repeat"); do
    rm -rf "$out/$name"
    t0=$EPOCHREALTIME
    "$@" --out "$out/$name" >"$out/$name.log" 2>&1 || { tail "$out/$name.log" >&2; exit 1; }
    t=$("$PYTHON" -c "print(f'{$EPOCHREALTIME - $t0:.2f}')")
    if [ -z "$best" ] || "$PYTHON" -c "import sys; sys.exit(not $t < $best)"; then best=$t; fi
  done
  [ -n "${first:-}" ] || first=$name
  for f in class.tif probability.tif; do
    cmp -s "$out/$first/$f" "$out/$name/$f" || { echo "scaling: $name/$f differs from $first/$f" >&2; exit 1; }
  done
  BEST=$best
}

# row LABEL SECONDS BASE_SECONDS
row() {
  rows+=("$("$PYTHON" -c "
px = $size * $size
print(f'| $1 | {$2:.2f} | {px / $2 / 1e6:.2f} M | {$3 / $2:.2f}x |')")")
}

measure local1 "$root/scripts/gridmill" "${opts[@]}" --workers 1
l1=$BEST
measure local2 "$root/scripts/gridmill" "${opts[@]}" --workers 2
l2=$BEST
row "loopback, 1 worker" "$l1" "$l1"
row "loopback, 2 workers" "$l2" "$l1"

if [ "$(id -u)" -eq 0 ]; then
  # shellcheck source=../tests/lib_netns.sh
  source "$root/tests/lib_netns.sh"
  if netns_available; then
    trap netns_down EXIT
    netns_up "$out/net" 2
    netns_sshd
    printf 'host1 1\n' >"$out/hosts1.txt"
    printf 'host1 1\nhost2 1\n' >"$out/hosts2.txt"
    across=(ip netns exec "$NETNS_HEAD" "$root/scripts/gridmill" "${opts[@]}" --bind-host "$NETNS_HEAD_ADDR"
      --insecure --ssh "$NETNS_SSH" --workers 0)
    measure ns1 "${across[@]}" --hosts "$out/hosts1.txt"
    n1=$BEST
    measure ns2 "${across[@]}" --hosts "$out/hosts2.txt"
    n2=$BEST
    row "network namespaces over veth, 1 host x 1 worker" "$n1" "$n1"
    row "network namespaces over veth, 2 hosts x 1 worker" "$n2" "$n1"
  else
    echo "scaling: no network namespaces here ($NETNS_WHY): loopback rows only" >&2
  fi
fi

{
  echo "# predict throughput against workers: ${size}x${size}, 8 covariates, the 100-tree forest (1200 class trees)"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')); load average at start $(cut -d' ' -f1-3 /proc/loadavg); best of $repeat runs per row"
  echo
  echo "| run | wall s | pixels/s | vs 1 worker |"
  echo "|---|---:|---:|---:|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "Every run's class.tif and probability.tif are byte-identical to the first row's."
} | tee "$root/bench/SCALING.md"
