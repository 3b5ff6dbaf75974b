#!/usr/bin/env bash
# test_backpressure.sh -- a slow writer never makes memory grow without bound: with the writer slowed to
# DELAY_MS per row of tiles, every stage's peak resident memory (VmHWM) stays under the bound the design gives
# it, does not grow with the raster's size (its width or its height), and the outputs are the same bytes as an
# undisturbed run.
#
# The bounds (KiB; "baseline" is the stage's peak on a one-block job with the same model):
#   blocks_per_tile  = (tile / bs)^2 blocks of bs x bs under one output tile, as gm_job_blocks_per_tile
#   max_inflight     = max(32, 2 * blocks_per_tile) (the reader's default window, --max-inflight); the reader
#                      reads the blocks tile by tile (gm_job_block_order), so they complete tiles in the order
#                      the writer writes them
#   reader <= baseline + GDAL block cache (gm_stack_limit_cache: 16 MiB here) + 1.5 * max_inflight * block
#             + 16 MiB             where block = bs * bs * bands * 4 bytes of float32 covariates
#   writer <= baseline + GDAL block cache (the writer sets max(8 tiles, 64 MiB), flushed after every tile)
#             + tiles_held * tile + 8 * result + 16 MiB
#             where tile = tile^2 * (output bytes per pixel), result = bs * bs * (output bytes per pixel),
#             tiles_held = ceil(max_inflight / blocks_per_tile) + 1 (the tiles the blocks in flight touch, the
#             one being written), and 8 is the writer's receive high-water mark
#   worker <= baseline + 2 * (2 * block + 6 * result) + 8 MiB (one task queued (HWM 1) and one being
#             computed; four results queued (HWM 4), one being made, one of scratch)
# None of the terms holds the raster's width or height. The factor 1.5 and the fixed 16 / 8 MiB cover the
# decoders' buffers and what the allocator keeps of freed blocks. A reader that reads the whole raster into
# memory trips the reader's bound: run with GM_BACKPRESSURE_MAX_INFLIGHT=100000 to see it (the bounds keep the
# default window).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SIZES=(1024x4096 4096x2048)  # the second is twice the pixels, four times as wide, half as high
BS=128               # --block-size
TILE=256             # the job's output tile
NBANDS=4             # cov_a (2 bands), cov_b, cov_c
NCLASS=5             # softprob.json: class.tif (u8) + probability.tif (5 x f32) = 21 bytes per pixel
WORKERS=2
DELAY_MS=300         # per row of tiles, in the writer only: 16 and 8 rows take 4.8 and 2.4 s at least
GROWTH_KIB=$((12 * 1024))  # most a stage's peak may differ between the two sizes

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
per_tile=$(((TILE / BS) * (TILE / BS)))
max_inflight=$((2 * per_tile > 32 ? 2 * per_tile : 32))
block_kib=$((BS * BS * NBANDS * 4 / 1024))
result_kib=$((BS * BS * (1 + 4 * NCLASS) / 1024))
tile_kib=$((TILE * TILE * (1 + 4 * NCLASS) / 1024))
tiles_held=$(((max_inflight + per_tile - 1) / per_tile + 1))
reader_cache_kib=$((16 * 1024))
writer_cache_kib=$((8 * tile_kib > 65536 ? 8 * tile_kib : 65536))
echo "   window: $max_inflight blocks of $(mib "$block_kib") in flight; the writer holds at most $tiles_held" \
  "tiles of $(mib "$tile_kib")"
extra=()
if [ -n "${GM_BACKPRESSURE_MAX_INFLIGHT:-}" ]; then
  extra=(--max-inflight "$GM_BACKPRESSURE_MAX_INFLIGHT")
  echo "   note: slowed runs use --max-inflight $GM_BACKPRESSURE_MAX_INFLIGHT; the bounds keep the default window"
fi

check "data: covariates ${SIZES[0]} and ${SIZES[1]}, and a one-block ${BS}x${BS} job"
for size in "${SIZES[@]}"; do make_data "$T/d$size" --size "${size%x*}" "${size#*x}"; done
make_data "$T/tiny" --size "$BS" "$BS" --no-models
model=$T/d${SIZES[0]}/softprob.json  # one model for the baseline and both sizes

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
bound[writer]=$((base[writer] + writer_cache_kib + tiles_held * tile_kib + 8 * result_kib + 16384))
bound[worker]=$((base[worker] + 2 * (2 * block_kib + 6 * result_kib) + 8192))

for size in "${SIZES[@]}"; do
  covs=("$T/d$size/cov_a.tif" "$T/d$size/cov_b.tif" "$T/d$size/cov_c.tif")
  h=${size#*x}
  nrows=$(((h + TILE - 1) / TILE))
  check "$size: undisturbed reference run"
  run_gridmill "ref$size" predict --covariates "${covs[@]}" --model "$model" --probabilities --workers "$WORKERS" \
    --block-size "$BS" --out "$T/ref$size"
  expect_success "ref$size"

  check "$size: writer slowed by $DELAY_MS ms per row of tiles ($nrows rows), memory sampled every 100 ms"
  export GRIDMILL_DEBUG_DELAY_MS_WRITER=$DELAY_MS
  run_sampled "slow$size" predict --covariates "${covs[@]}" --model "$model" --probabilities --workers "$WORKERS" \
    --block-size "$BS" --out "$T/slow$size" "${extra[@]}"
  unset GRIDMILL_DEBUG_DELAY_MS_WRITER
  expect_success "slow$size"
  awk -v s="$GM_SECS" -v n="$((nrows * DELAY_MS))" 'BEGIN { exit !(s * 1000 >= n) }' ||
    fail "slow$size: took $GM_SECS s, less than $nrows rows x $DELAY_MS ms: the writer was not slowed"
  ok "slow$size: took $GM_SECS s; $(wc -l <"$GM_LOGS/slow$size.mem") samples"
  for f in class.tif probability.tif; do
    cmp "$T/ref$size/$f" "$T/slow$size/$f" >&2 || fail "slow$size: $f differs from the undisturbed run"
  done
  ok "slow$size: class.tif and probability.tif byte-identical to the undisturbed run"
  assert_no_stages "slow$size"

  for stage in reader writer worker; do
    p=$(peak_kib "slow$size" "$stage")
    peak[$stage$size]=$p
    [ "$p" -le "${bound[$stage]}" ] || fail "slow$size: the $stage peaked at $(mib "$p"), above its bound" \
      "$(mib "${bound[$stage]}") (baseline $(mib "${base[$stage]}"))"
    ok "slow$size: $stage peak $(mib "$p") <= bound $(mib "${bound[$stage]}") (baseline $(mib "${base[$stage]}"))"
  done
done

check "peaks do not follow the raster's size (${SIZES[0]} -> ${SIZES[1]}: 4x the width, 2x the pixels;" \
  "they differ by less than $(mib "$GROWTH_KIB"))"
for stage in reader writer worker; do
  a=${peak[$stage${SIZES[0]}]}
  b=${peak[$stage${SIZES[1]}]}
  d=$((b > a ? b - a : a - b))
  [ "$d" -lt "$GROWTH_KIB" ] ||
    fail "the $stage's peak went from $(mib "$a") to $(mib "$b") with the raster's size"
  ok "$stage: $(mib "$a") -> $(mib "$b")"
done
