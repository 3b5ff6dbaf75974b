#!/usr/bin/env bash
# test_backpressure.sh -- a slow writer never makes memory grow without bound: with the writer slowed to
# DELAY_MS per strip, every stage's peak resident memory (VmHWM) stays under the bound the design gives it,
# does not grow with the raster's height, and the outputs are the same bytes as an undisturbed run.
#
# The bounds (KiB; "baseline" is the stage's peak on a one-block job with the same model):
#   blocks_per_strip = nbx * min((tile - 1) / bh + 2, nby), as gm_job_blocks_per_strip (the block rows a
#                      strip can touch, one more when misaligned; nbx, nby: blocks across and down)
#   max_inflight     = 2 * blocks_per_strip (the reader's default window, --max-inflight)
#   reader <= baseline + GDAL block cache (gm_stack_limit_cache: 16 MiB here) + 1.5 * max_inflight * block
#             + 16 MiB             where block = bw * bh * bands * 4 bytes of float32 covariates
#   writer <= baseline + GDAL block cache (the writer sets max(3 strips, 64 MiB)) + strips_held * strip
#             + 8 * result + 16 MiB
#             where strip = width * tile * (output bytes per pixel), result = bw * bh * (output bytes per
#             pixel), strips_held = ceil(rows_in_flight / tile) + 1, rows_in_flight = (ceil(max_inflight /
#             nbx) + 1) * bh (the blocks in flight are consecutive: at most that many block rows), and 8 is
#             the writer's receive high-water mark
#   worker <= baseline + 2 * (2 * block + 6 * result) + 8 MiB (one task queued (HWM 1) and one being
#             computed; four results queued (HWM 4), one being made, one of scratch)
# The factor 1.5 and the fixed 16 / 8 MiB cover the decoders' buffers and what the allocator keeps of freed
# blocks; in the writer, glibc's per-thread arenas and moving mmap threshold keep up to ~40 MiB of freed strip
# and tile buffers, which the GDAL cache term covers (the writer flushes that cache after every strip, so it
# really holds one strip's tiles at most). A reader that reads the whole raster into memory trips the reader's
# bound: run with GM_BACKPRESSURE_MAX_INFLIGHT=100000 to see it (the bounds keep the default window).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

WIDTH=1024
HEIGHTS=(4096 8192)  # the second holds 64 MiB more covariates and 84 MiB more outputs than the first
BS=128               # --block-size
TILE=256             # the job's output tile: strips of 256 rows
NBANDS=4             # cov_a (2 bands), cov_b, cov_c
NCLASS=5             # softprob.json: class.tif (u8) + probability.tif (5 x f32) = 21 bytes per pixel
WORKERS=2
DELAY_MS=300         # per strip, in the writer only: 16 and 32 strips take 5 and 10 s at least
GROWTH_KIB=$((12 * 1024))  # most a stage's peak may grow from the first height to the second

gm_require_build
if ldd "$GM_BUILD/gridmill-reader" | grep -q libasan || [ -n "${GRIDMILL_STAGE_WRAPPER:-}" ]; then
  echo "   skipped: resident memory means nothing under AddressSanitizer or a stage wrapper"
  exit 0
fi

# run_sampled NAME ARGS...: runs `scripts/gridmill ARGS...` in the background, bounded by GM_RUN_TIMEOUT
# seconds, and every 100 ms appends "stage pid VmRSS VmHWM" (KiB) of each of its stages to
# $GM_LOGS/NAME.mem, reading /proc/PID/status. Sets GM_RC to its exit status and GM_SECS to its duration.
run_sampled() {
  local name=$1
  shift
  local shown="$*" mem=$GM_LOGS/$name.mem want=$((WORKERS + 2)) start=$EPOCHREALTIME
  local sup pid comm key val rest rss hwm pids=()
  echo "   \$ gridmill ${shown//$T/\$T}"
  : >"$mem"
  timeout -k 5 "$GM_RUN_TIMEOUT" "$GRIDMILL" "$@" >"$GM_LOGS/$name.out" 2>"$GM_LOGS/$name.err" &
  sup=$!
  GM_BG_PIDS+=("$sup")
  while gm_alive "$sup"; do
    [ ${#pids[@]} -ge "$want" ] || mapfile -t pids < <(gm_stage_pids)
    for pid in "${pids[@]}"; do
      comm="" rss="" hwm=""
      {
        read -r comm <"/proc/$pid/comm"
        while read -r key val rest; do
          case $key in
            VmRSS:) rss=$val ;;
            VmHWM:) hwm=$val ;;
          esac
        done <"/proc/$pid/status"
      } 2>/dev/null || continue
      [ -z "$hwm" ] || echo "${comm#gridmill-} $pid $rss $hwm" >>"$mem"
    done
    sleep 0.1
  done
  set +e
  wait "$sup"
  GM_RC=$?
  set -e
  GM_SECS=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
}

# peak_kib NAME STAGE: prints the highest VmHWM (KiB) run NAME's stage STAGE (reader, writer, worker: all
# workers) reached; fails if the stage was never sampled.
peak_kib() {
  local p
  p=$(awk -v s="$2" '$1 == s && $4 > m { m = $4 } END { print m + 0 }' "$GM_LOGS/$1.mem")
  [ "$p" -gt 0 ] || fail "$1: no memory sample of the $2"
  echo "$p"
}

mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }

# The window and the bounds' terms, from the formulas above.
nbx=$(((WIDTH + BS - 1) / BS))
per_strip=$((nbx * ((TILE - 1) / BS + 2)))  # every height here has more than 3 block rows
max_inflight=$((2 * per_strip))
block_kib=$((BS * BS * NBANDS * 4 / 1024))
result_kib=$((BS * BS * (1 + 4 * NCLASS) / 1024))
strip_kib=$((WIDTH * TILE * (1 + 4 * NCLASS) / 1024))
rows_in_flight=$((((max_inflight + nbx - 1) / nbx + 1) * BS))
strips_held=$(((rows_in_flight + TILE - 1) / TILE + 1))
reader_cache_kib=$((16 * 1024))
writer_cache_kib=$((3 * strip_kib > 65536 ? 3 * strip_kib : 65536))
echo "   window: $max_inflight blocks of $(mib "$block_kib") in flight; the writer holds at most $strips_held" \
  "strips of $(mib "$strip_kib")"
extra=()
if [ -n "${GM_BACKPRESSURE_MAX_INFLIGHT:-}" ]; then
  extra=(--max-inflight "$GM_BACKPRESSURE_MAX_INFLIGHT")
  echo "   note: slowed runs use --max-inflight $GM_BACKPRESSURE_MAX_INFLIGHT; the bounds keep the default window"
fi

check "data: covariates ${WIDTH}x${HEIGHTS[0]} and ${WIDTH}x${HEIGHTS[1]}, and a one-block ${BS}x${BS} job"
for h in "${HEIGHTS[@]}"; do make_data "$T/d$h" --size "$WIDTH" "$h"; done
make_data "$T/tiny" --size "$BS" "$BS" --no-models
model=$T/d${HEIGHTS[0]}/softprob.json  # one model for the baseline and both heights

check "baseline: each stage's peak on the one-block job (every stage slowed, so that sampling sees it whole)"
export GRIDMILL_DEBUG_DELAY_MS=$DELAY_MS
run_sampled baseline predict --covariates "$T/tiny/cov_a.tif" "$T/tiny/cov_b.tif" "$T/tiny/cov_c.tif" \
  --model "$model" --probabilities --workers "$WORKERS" --block-size "$BS" --out "$T/baseline"
unset GRIDMILL_DEBUG_DELAY_MS
expect_success baseline
declare -A base bound peak
for stage in reader writer worker; do base[$stage]=$(peak_kib baseline "$stage"); done
ok "baseline: reader $(mib "${base[reader]}"), writer $(mib "${base[writer]}"), worker $(mib "${base[worker]}")"
bound[reader]=$((base[reader] + reader_cache_kib + max_inflight * block_kib * 3 / 2 + 16384))
bound[writer]=$((base[writer] + writer_cache_kib + strips_held * strip_kib + 8 * result_kib + 16384))
bound[worker]=$((base[worker] + 2 * (2 * block_kib + 6 * result_kib) + 8192))

for h in "${HEIGHTS[@]}"; do
  covs=("$T/d$h/cov_a.tif" "$T/d$h/cov_b.tif" "$T/d$h/cov_c.tif")
  nstrips=$(((h + TILE - 1) / TILE))
  check "${WIDTH}x$h: undisturbed reference run"
  run_gridmill "ref$h" predict --covariates "${covs[@]}" --model "$model" --probabilities --workers "$WORKERS" \
    --block-size "$BS" --out "$T/ref$h"
  expect_success "ref$h"

  check "${WIDTH}x$h: writer slowed by $DELAY_MS ms per strip ($nstrips strips), memory sampled every 100 ms"
  export GRIDMILL_DEBUG_DELAY_MS_WRITER=$DELAY_MS
  run_sampled "slow$h" predict --covariates "${covs[@]}" --model "$model" --probabilities --workers "$WORKERS" \
    --block-size "$BS" --out "$T/slow$h" "${extra[@]}"
  unset GRIDMILL_DEBUG_DELAY_MS_WRITER
  expect_success "slow$h"
  awk -v s="$GM_SECS" -v n="$((nstrips * DELAY_MS))" 'BEGIN { exit !(s * 1000 >= n) }' ||
    fail "slow$h: took $GM_SECS s, less than $nstrips strips x $DELAY_MS ms: the writer was not slowed"
  ok "slow$h: took $GM_SECS s; $(wc -l <"$GM_LOGS/slow$h.mem") samples"
  for f in class.tif probability.tif; do
    cmp "$T/ref$h/$f" "$T/slow$h/$f" >&2 || fail "slow$h: $f differs from the undisturbed run"
  done
  ok "slow$h: class.tif and probability.tif byte-identical to the undisturbed run"
  assert_no_stages "slow$h"

  for stage in reader writer worker; do
    p=$(peak_kib "slow$h" "$stage")
    peak[$stage$h]=$p
    [ "$p" -le "${bound[$stage]}" ] || fail "slow$h: the $stage peaked at $(mib "$p"), above its bound" \
      "$(mib "${bound[$stage]}") (baseline $(mib "${base[$stage]}"))"
    ok "slow$h: $stage peak $(mib "$p") <= bound $(mib "${bound[$stage]}") (baseline $(mib "${base[$stage]}"))"
  done
done

check "peaks do not grow with the raster's height (${HEIGHTS[0]} -> ${HEIGHTS[1]} rows," \
  "by less than $(mib "$GROWTH_KIB"))"
for stage in reader writer worker; do
  a=${peak[$stage${HEIGHTS[0]}]}
  b=${peak[$stage${HEIGHTS[1]}]}
  [ $((b - a)) -lt "$GROWTH_KIB" ] ||
    fail "the $stage's peak grew from $(mib "$a") to $(mib "$b") with the raster's height"
  ok "$stage: $(mib "$a") -> $(mib "$b")"
done
