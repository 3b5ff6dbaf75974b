#!/usr/bin/env bash
# test_slurm.sh -- `--launcher slurm` on a real one-node Slurm cluster (slurmctld, slurmd and munged started
# by this test on loopback, tests/lib_slurm.sh): the workers run as the tasks of one srun step, seen in
# squeue while the job runs; a predict and a full run give outputs byte-identical to local runs; no task is
# left when the run is over.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=../lib_slurm.sh
source "$GM_ROOT/tests/lib_slurm.sh"

gm_require_build
if ! slurm_available; then
  # CI installs slurm-wlm and munge and runs as root: there the test must run
  [ "$(id -u)" -ne 0 ] || fail "Slurm or munge is not installed (scripts/install-deps installs slurm-wlm, munge)"
  echo "   SKIP: not root"
  exit 0
fi
# stop the cluster first at exit, then lib.sh's cleanup, which still sees the test's status
trap 'rc=$?; slurm_stop; (exit $rc); gm_cleanup' EXIT

D=$T/data
make_data "$D"
covs=("$D/cov_a.tif" "$D/cov_b.tif" "$D/cov_c.tif")

check "a one-node Slurm cluster on loopback"
mkdir -p "$T/slurm"
SECONDS=0
slurm_start "$T/slurm"
ok "slurmctld, slurmd and munged up within ${SECONDS}s; SLURM_CONF=$SLURM_CONF"

# watch_steps FILE: records the names and task counts of the cluster's job steps into FILE every 0.1 s, in
# the background, until killed; sets WATCH_PID.
watch_steps() {
  (while true; do squeue -h --steps -o '%j %A' 2>/dev/null || true; sleep 0.1; done >"$1") &
  WATCH_PID=$!
  GM_BG_PIDS+=("$WATCH_PID")
}

check "predict: two workers as the tasks of one srun step, identical to two local workers"
run_gridmill local predict --covariates "${covs[@]}" --model "$D/softprob.json" --probabilities -bs 64 \
  --out "$T/local" --workers 2
expect_success local
watch_steps "$T/steps.txt"
GRIDMILL_DEBUG_DELAY_MS_WORKER=60 run_gridmill slurm predict --covariates "${covs[@]}" \
  --model "$D/softprob.json" --probabilities -bs 64 --out "$T/slurm-out" --launcher slurm --workers 2
kill "$WATCH_PID" 2>/dev/null || true
expect_success slurm
grep -q "^gridmill-workers 2$" "$T/steps.txt" ||
  fail "slurm: squeue never showed the step gridmill-workers with 2 tasks: $(sort -u "$T/steps.txt" | tr '\n' ';')"
ok "slurm: squeue showed the step gridmill-workers with 2 tasks while the job ran"
for f in class.tif probability.tif; do
  cmp "$T/local/$f" "$T/slurm-out/$f" >&2 || fail "slurm-out/$f differs from the local run's"
done
ok "slurm: class.tif and probability.tif byte-identical to the local run"

check "run: training and the summaries with workers through srun, identical to a local run"
make_run_data "$D/run"
rcovs=("$D/run/elevation.tif" "$D/run/wetness.tif" "$D/run/climate.tif")
runopts=(--polygons "$D/run/polygons.gpkg" --class-field soil --covariates "${rcovs[@]}" --iterations 4
  --samples-per-polygon 10 --seed 3)
run_gridmill run_local run "${runopts[@]}" --out "$T/run_local" --workers 2
expect_success run_local
run_gridmill run_slurm run "${runopts[@]}" --out "$T/run_slurm" --launcher slurm --workers 2
expect_success run_slurm
n=0
for f in "$T"/run_local/*.tif "$T"/run_local/models/*.json "$T"/run_local/samples/*.csv; do
  rel=${f#"$T"/run_local/}
  cmp "$f" "$T/run_slurm/$rel" >&2 || fail "run_slurm/$rel differs from run_local/$rel"
  n=$((n + 1))
done
[ "$n" -ge 10 ] || fail "run_local wrote only $n files to compare"
ok "run_slurm: $n files (summaries, models, samples) byte-identical to the local run"

check "no task left running in the cluster"
for _ in $(seq 1 50); do
  [ -z "$(squeue -h 2>/dev/null)" ] && break
  sleep 0.1
done
[ -z "$(squeue -h)" ] || fail "jobs left in the queue: $(squeue -h | tr '\n' ';')"
ok "the queue is empty after the runs"
