#!/usr/bin/env bash
# test_curve.sh -- ZeroMQ CURVE security (`--curve KEYFILE`): `gridmill keygen` makes a private key file and never
# overwrites one; runs with --curve write the same bytes as runs without; while a secured job runs, peers without
# the key (python3-zmq probes with no key, another key file, or only the public key; real workers with no key or
# another key file) get no job and no task and inject nothing, and the job completes; a bad key file stops the
# supervisor and a stage with one clear line naming it; a non-loopback --bind-host needs --curve or --insecure.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PROBE_SECONDS=4

gm_require_build
D=$T/data
make_data "$D"
covs=("$D/cov_a.tif" "$D/cov_b.tif" "$D/cov_c.tif")
K=$T/cluster.key
K2=$T/other.key

# one_line NAME FILE PATTERN: fails unless run NAME's stderr is exactly one line, naming FILE and matching PATTERN.
one_line() {
  local err=$GM_LOGS/$1.err n
  n=$(wc -l <"$err")
  [ "$n" -eq 1 ] || { sed 's/^/   | /' "$err" >&2; fail "$1: $n lines on stderr, expected one"; }
  grep -qF -- "$2" "$err" || { cat "$err" >&2; fail "$1: the error does not name $2"; }
  grep -qE -- "$3" "$err" || { cat "$err" >&2; fail "$1: the error does not say /$3/"; }
  ok "$1: $(cut -c1-150 "$err")"
}

check "keygen writes a key file only its owner can read, whose public key belongs to its secret key"
run_gridmill keygen keygen "$K"
expect_success keygen
[ "$(stat -c %a "$K")" = 600 ] || fail "keygen: $K has mode $(stat -c %a "$K"), expected 600"
ok "keygen: mode 600"
"$PYTHON" - "$K" <<'EOF' || fail "keygen: the key file's keys are not a pair (above)"
import re, sys, zmq
text = open(sys.argv[1]).read()
pub, sec = (re.search(r'^\s*%s\s*=\s*"([^"]{40})"\s*$' % n, text, re.M).group(1) for n in ("public-key", "secret-key"))
assert zmq.curve_public(sec.encode()).decode() == pub, (pub, sec)
EOF
ok "keygen: python3-zmq derives the file's public key from its secret key"
run_gridmill keygen2 keygen "$K2"
expect_success keygen2
cmp -s "$K" "$K2" && fail "two keygen runs wrote the same key"
ok "a second keygen makes another key"

check "keygen refuses to overwrite"
sum=$(sha256sum <"$K")
run_gridmill keygen_again keygen "$K"
expect_failure keygen_again
one_line keygen_again "$K" "already exists"
[ "$(sha256sum <"$K")" = "$sum" ] || fail "keygen_again: the key file changed"
ok "keygen_again: the key file is unchanged"
run_gridmill keygen_nodir keygen "$T/no/such/dir/k"
expect_failure keygen_nodir
one_line keygen_nodir "$T/no/such/dir/k" "cannot create"

check "a run with --curve writes the same bytes as a run without"
run_gridmill plain predict --covariates "${covs[@]}" --model "$D/softprob.json" --probabilities --out "$T/plain" \
  --workers 2 --block-size 64
expect_success plain
run_gridmill secured predict --covariates "${covs[@]}" --model "$D/softprob.json" --probabilities \
  --out "$T/secured" --workers 2 --block-size 64 --curve "$K"
expect_success secured
for f in class.tif probability.tif; do
  cmp "$T/plain/$f" "$T/secured/$f" >&2 || fail "secured: $f differs from the run without --curve"
done
ok "secured: class.tif and probability.tif byte-identical to the run without --curve"
assert_no_stages secured

check "a full job (sample, train, summarise) with --curve writes the same bytes as without"
R=$T/rundata
"$PYTHON" "$GM_ORACLES/make_run_data.py" "$R" >"$GM_LOGS/make_run_data.log" 2>&1 ||
  fail "make_run_data.py $R: $(tail -n 5 "$GM_LOGS/make_run_data.log")"
for name in run_plain run_secured; do
  extra=()
  [ "$name" = run_plain ] || extra=(--curve "$K")
  run_gridmill "$name" run --polygons "$R/polygons.gpkg" --class-field soil \
    --covariates "$R/elevation.tif" "$R/wetness.tif" "$R/climate.tif" --out "$T/$name" --iterations 3 \
    --samples-per-polygon 10 --workers 2 "${extra[@]}"
  expect_success "$name"
done
n=0
while IFS= read -r -d '' f; do
  rel=${f#"$T/run_plain/"}
  cmp "$f" "$T/run_secured/$rel" >&2 || fail "run_secured: $rel differs from the run without --curve"
  n=$((n + 1))
done < <(find "$T/run_plain" -type f \( -name '*.tif' -o -name '*.json' -o -name '*.csv' \) \
  ! -name run.json ! -path '*/.gridmill-stats/*' -print0)  # run.json holds timings
[ "$n" -ge 8 ] || fail "run_plain: only $n outputs to compare"
ok "run_secured: $n outputs (summaries, models, samples) byte-identical to the run without --curve"
assert_no_stages run_secured

check "peers without the key get no job and no task while a secured job runs, and the job completes"
export GRIDMILL_DEBUG_DELAY_MS=600 # a job of several seconds: longer than the probes listen
"$GRIDMILL" predict --verbose --covariates "${covs[@]}" --model "$D/softprob.json" --probabilities --out "$T/probed" \
  --workers 2 --block-size 64 --curve "$K" >"$GM_LOGS/probed.out" 2>"$GM_LOGS/probed.err" &
sup=$!
GM_BG_PIDS+=("$sup")
reader_endpoints
control=$CONTROL
tasks=$TASKS
acks=$ACKS
results=$RESULTS
[ "$READER_CURVE" = "$K" ] || fail "the reader was not given --curve $K: ${READER_ARGV[*]}"
ok "the supervisor gave the reader --curve $K"
probe() { # probe NAME ARGS...: a python3-zmq peer in the background, its report in $GM_LOGS/NAME.probe
  local name=$1
  shift
  timeout -k 2 $((PROBE_SECONDS + 10)) "$PYTHON" "$GM_ORACLES/curve_peer.py" "$control" "$tasks" "$PROBE_SECONDS" "$@" \
    >"$GM_LOGS/$name.probe" 2>&1 &
  GM_BG_PIDS+=("$!")
  probe_pids+=("$!")
  probe_names+=("$name")
}
probe_pids=()
probe_names=()
probe no_key --inject "$acks" "$results"
probe other_key --key "$K2" --inject "$acks" "$results"
probe public_key_only --key "$K" --own-pair --inject "$acks" "$results"
# real workers: without --curve, and with another key file
for w in worker_no_key worker_other_key; do
  extra=()
  [ "$w" = worker_no_key ] || extra=(--curve "$K2")
  timeout -s TERM "$PROBE_SECONDS" "$GM_BUILD/gridmill-worker" --connect "$control" --verbose "${extra[@]}" \
    2>"$GM_LOGS/$w.err" &
  GM_BG_PIDS+=("$!")
  probe_pids+=("$!")
  probe_names+=("$w")
done
# the check that the probe itself works: holding the key, it is answered with the job
"$PYTHON" "$GM_ORACLES/curve_peer.py" "$control" "$tasks" 10 --key "$K" --expect-job >"$GM_LOGS/with_key.probe" 2>&1 ||
  { cat "$GM_LOGS/with_key.probe" >&2; fail "with_key: a python3-zmq peer holding the key got no job"; }
ok "with_key: a python3-zmq peer holding the key is answered: $(cat "$GM_LOGS/with_key.probe")"
for i in "${!probe_pids[@]}"; do
  name=${probe_names[$i]}
  rc=0
  wait "${probe_pids[$i]}" || rc=$?
  case $name in
    worker_*)
      [ "$rc" -eq 124 ] || { cat "$GM_LOGS/$name.err" >&2; fail "$name: gridmill-worker exited $rc, expected to wait"; }
      if grep -E "debug: job [0-9a-f]+:|pulling tasks" "$GM_LOGS/$name.err"; then
        fail "$name: gridmill-worker received the job"
      fi
      grep -q "stopping after 0 blocks" "$GM_LOGS/$name.err" ||
        { cat "$GM_LOGS/$name.err" >&2; fail "$name: gridmill-worker did not stop after 0 blocks"; }
      ok "$name: no job, 0 blocks in ${PROBE_SECONDS} s" ;;
    *)
      [ "$rc" -eq 0 ] || { cat "$GM_LOGS/$name.probe" >&2; fail "$name: the probe received messages"; }
      ok "$name: $(cat "$GM_LOGS/$name.probe") in ${PROBE_SECONDS} s" ;;
  esac
done
gm_alive "$sup" || fail "the secured job ended before the probes stopped listening: make it longer"
ok "the secured job was still running when the probes stopped"
grep -qE "requires CURVE security|does it require CURVE security" "$GM_LOGS/worker_no_key.err" ||
  { cat "$GM_LOGS/worker_no_key.err" >&2; fail "worker_no_key: its log does not say the reader requires CURVE"; }
ok "worker_no_key says: $(grep -m1 -E "CURVE" "$GM_LOGS/worker_no_key.err" | cut -d' ' -f4- | cut -c1-140)"
grep -q "another key file" "$GM_LOGS/worker_other_key.err" ||
  { cat "$GM_LOGS/worker_other_key.err" >&2; fail "worker_other_key: its log does not suspect another key file"; }
ok "worker_other_key says: $(grep -m1 "another key file" "$GM_LOGS/worker_other_key.err" | cut -d' ' -f4- |
  cut -c1-140)"
gm_wait_gone "$sup" 120 || fail "the probed job did not finish within 120 s"
rc=0
wait "$sup" || rc=$?
unset GRIDMILL_DEBUG_DELAY_MS
[ "$rc" -eq 0 ] || { gm_stderr_tail probed >&2; fail "the probed job exited $rc"; }
ok "probed: the job completed"
for f in class.tif probability.tif; do
  cmp "$T/plain/$f" "$T/probed/$f" >&2 || fail "probed: $f differs from the undisturbed run"
done
ok "probed: outputs byte-identical to the undisturbed run"
if grep -E "dropped a" "$GM_LOGS/probed.err" | head -3 >&2; then
  fail "probed: messages injected without the key reached a stage (above)"
fi
[ "$(grep -cE "[^0-9]0 malformed messages dropped" "$GM_LOGS/probed.err")" -eq 2 ] ||
  fail "probed: the reader and the writer do not both report 0 malformed messages dropped"
ok "probed: nothing injected without the key reached the reader or the writer"
for pattern in "refused a peer at 127.0.0.1: its CURVE key is not this cluster's" "the peer holds another key file"; do
  grep -qF "$pattern" "$GM_LOGS/probed.err" || fail "probed: no log line says '$pattern'"
  ok "probed: logged $(grep -m1 -F "$pattern" "$GM_LOGS/probed.err" | cut -d' ' -f2- | cut -c1-140)"
done
if grep -vE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T|^gridmill: ' "$GM_LOGS/probed.err" | grep -q .; then
  grep -vE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T|^gridmill: ' "$GM_LOGS/probed.err" | head -5 >&2
  fail "probed: malformed log lines (above)"
fi
n=$(grep -cE "refused" "$GM_LOGS/probed.err" || true)
[ "$n" -le 40 ] || fail "probed: $n refusal lines: refusals are not rate-limited"
ok "probed: $n refusal lines (rate-limited)"
assert_no_stages probed

check "a bad key file stops the supervisor, and a stage, with one line naming the file"
pub2=$(grep public-key "$K2")
bad() { # bad NAME CONTENT [MODE]: writes $T/NAME.key
  printf '%s\n' "$2" >"$T/$1.key"
  chmod "${3:-600}" "$T/$1.key"
}
bad garbage "hello world"
bad short_secret "$(sed -E 's/(secret-key = ")[^"]{5}/\1/' "$K")"
bad wrong_pair "$(grep -v public-key "$K"; echo "$pub2")"
bad public_only "$pub2"
bad group_readable "$(cat "$K")" 640
cases=(missing:"cannot read the key file: No such file or directory"
  garbage:"not a key file \(line 1: expected 'name = value'\)"
  short_secret:"secret-key is not a 40-character Z85 key"
  wrong_pair:"its public-key does not belong to its secret-key"
  public_only:"no secret-key in the key file"
  group_readable:"other users may read this key file \(mode 0640\)")
for c in "${cases[@]}"; do
  name=${c%%:*}
  want=${c#*:}
  file=$T/$name.key
  run_gridmill "bad_$name" predict --covariates "${covs[@]}" --model "$D/softprob.json" --out "$T/bad_$name" \
    --workers 1 --curve "$file"
  expect_failure "bad_$name"
  one_line "bad_$name" "$file" "^gridmill: .*$want"
  set +e
  timeout 10 "$GM_BUILD/gridmill-worker" --connect tcp://127.0.0.1:9 --curve "$file" >/dev/null \
    2>"$GM_LOGS/stage_$name.err"
  rc=$?
  set -e
  [ "$rc" -eq 1 ] || fail "stage_$name: gridmill-worker exited $rc, expected 1"
  one_line "stage_$name" "$file" "^gridmill-worker: .*$want"
  diff <(sed 's/^gridmill: //' "$GM_LOGS/bad_$name.err") <(sed 's/^gridmill-worker: //' "$GM_LOGS/stage_$name.err") \
    >&2 || fail "the supervisor and the stage word the error differently"
done
ok "the supervisor and gridmill-worker give the same error for each"
assert_no_stages bad_key_files

check "a non-loopback --bind-host needs --curve or --insecure"
# 192.0.2.1 is a documentation address: these runs stop before anything binds it (the covariate is missing).
run_gridmill exposed predict --covariates "${covs[@]}" --model "$D/softprob.json" --out "$T/exposed" --workers 1 \
  --bind-host 192.0.2.1
expect_failure exposed
one_line exposed "192.0.2.1" "not a loopback address.*--curve KEYFILE.*--insecure"
for mode in insecure curve localhost; do
  case $mode in
    insecure) extra=(--bind-host 192.0.2.1 --insecure) ;;
    curve) extra=(--bind-host 192.0.2.1 --curve "$K") ;;
    localhost) extra=(--bind-host localhost) ;;
  esac
  run_gridmill "exposed_$mode" predict --covariates "$T/missing.tif" --model "$D/softprob.json" \
    --out "$T/exposed_$mode" --workers 1 "${extra[@]}"
  expect_failure "exposed_$mode"
  grep -q "not a loopback address" "$GM_LOGS/exposed_$mode.err" && fail "exposed_$mode: refused"
  expect_stderr "exposed_$mode" "missing.tif: no such file" "the next check (the exposure check passed)"
done
expect_stderr exposed_insecure "warning: --insecure" "a warning"
assert_no_stages exposed
