# lib_slurm.sh -- starts and stops a real one-node Slurm cluster on loopback, for tests; sourced, never run.
#
#   slurm_available   returns 0 when we are root and munge and Slurm are installed (else: skip the test)
#   slurm_start DIR   munged, slurmctld and slurmd with all their files under DIR (a fresh folder), on free
#                     ports; exports SLURM_CONF=DIR/slurm.conf; returns when the node is idle, or 1
#   slurm_stop        cancels the jobs, then ends every process slurm_start started; safe to call twice and
#                     from an EXIT trap
#
# Each daemon is started with GM_SLURM_OWNER=DIR in its environment, and each slurmstepd holds DIR/slurmd.log
# open, so slurm_stop finds exactly this cluster's processes (and their children, the job's tasks) without
# a global pkill, even with other clusters of this file running on the same host. The pid files are not
# trusted alone: a stale one may name a pid that another process has since taken.
# shellcheck shell=bash

case ":$PATH:" in *:/usr/sbin:*) ;; *) PATH=$PATH:/usr/sbin ;; esac  # munged, slurmctld, slurmd

GM_SLURM_DIR=""  # the DIR of the cluster slurm_start started and slurm_stop has not stopped yet

slurm_available() {
  local b
  [ "$(id -u)" -eq 0 ] || return 1
  for b in munged mungekey munge unmunge slurmctld slurmd srun sinfo squeue scancel ss; do
    command -v "$b" >/dev/null 2>&1 || return 1
  done
}

# Prints a TCP port below the ephemeral range (so no outgoing connection takes it) that no socket uses.
_slurm_free_port() {
  local p
  for _ in $(seq 200); do
    p=$((10000 + (RANDOM * 32768 + RANDOM) % 20000))
    if [ "$p" != "${1:-}" ] && [ -z "$(ss -Htan "sport = :$p")" ]; then
      echo "$p"
      return 0
    fi
  done
  echo "lib_slurm: found no free port" >&2
  return 1
}

# Makes a munge key under $1/munge and starts munged on its own socket there; waits until it answers.
_slurm_start_munge() {
  local m=$1/munge
  mkdir -p "$m" && chmod 0755 "$m"  # munged wants its socket folder open to all (x)
  mungekey --create --force --keyfile="$m/munge.key" >/dev/null
  chmod 0400 "$m/munge.key"  # owned by root, whom munged runs as here
  # --force: munged wants every folder above its socket open to all (x), and DIR (mktemp -d) is 0700.
  GM_SLURM_OWNER=$1 munged --force --socket="$m/munge.socket" --key-file="$m/munge.key" \
    --pid-file="$m/munged.pid" --log-file="$m/munged.log" --seed-file="$m/munged.seed" || return 1
  for _ in $(seq 50); do
    munge -n -S "$m/munge.socket" 2>/dev/null | unmunge -S "$m/munge.socket" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "lib_slurm: munged does not answer on $m/munge.socket" >&2
  return 1
}

# Writes $1/slurm.conf, $1/cgroup.conf and an empty plugstack.conf for one node, this host, on loopback.
_slurm_write_conf() {
  local d=$1 host cport dport
  host=$(hostname -s)
  cport=$(_slurm_free_port) || return 1
  dport=$(_slurm_free_port "$cport") || return 1
  rm -rf "$d/state" "$d/spool"  # slurmctld refuses the state of a cluster of another name
  mkdir -p "$d/state" "$d/spool"
  : >"$d/plugstack.conf"  # no SPANK plugins from /etc/slurm/plugstack.conf.d
  # Read only if a cgroup plugin is loaded; none is (proctrack/linuxproc, task/none), but say so anyway.
  printf '%s\n' CgroupAutomount=no ConstrainCores=no ConstrainRAMSpace=no ConstrainDevices=no \
    >"$d/cgroup.conf"
  cat >"$d/slurm.conf" <<EOF
ClusterName=gm$$x$RANDOM
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$cport
SlurmdPort=$dport
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$d/munge/munge.socket
StateSaveLocation=$d/state
SlurmdSpoolDir=$d/spool
SlurmctldPidFile=$d/slurmctld.pid
SlurmdPidFile=$d/slurmd.pid
SlurmctldLogFile=$d/slurmctld.log
SlurmdLogFile=$d/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig=$d/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MailProg=/bin/true
MpiDefault=none
ReturnToService=2
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
KillWait=2
MinJobAge=10
NodeName=$host NodeHostname=$host NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=512 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
}

# Returns 0 while process $1 exists and is not a zombie; starts no process.
_slurm_alive() {
  local stat
  read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
  stat=${stat##*) }
  [ "${stat:0:1}" != Z ]
}

# Waits up to $1 seconds for the node to be idle; returns 1 at once if a daemon died.
_slurm_wait_idle() {
  local d=$GM_SLURM_DIR deadline=$((SECONDS + $1)) f
  while [ "$SECONDS" -lt "$deadline" ]; do
    [ "$(sinfo -h -o %t 2>/dev/null)" = idle ] && return 0
    for f in slurmctld slurmd; do  # each daemon writes its pid file once it runs
      if [ -s "$d/$f.pid" ] && ! _slurm_alive "$(cat "$d/$f.pid")"; then return 1; fi
    done
    sleep 0.2
  done
  return 1
}

slurm_start() {
  local d
  d=$(cd "${1:?slurm_start DIR}" && pwd) || return 1
  slurm_stop  # one cluster at a time per test
  GM_SLURM_DIR=$d
  export SLURM_CONF=$d/slurm.conf
  if _slurm_start_munge "$d" && _slurm_write_conf "$d" &&
    GM_SLURM_OWNER=$d slurmctld -i -f "$SLURM_CONF" &&
    GM_SLURM_OWNER=$d slurmd -f "$SLURM_CONF" -N "$(hostname -s)" &&
    _slurm_wait_idle 30; then
    return 0
  fi
  local f
  echo "lib_slurm: the Slurm cluster in $d did not come up" >&2
  [ -f "$SLURM_CONF" ] && echo "node state: $(timeout 5 sinfo -h -o %t 2>&1 | head -1)" >&2
  for f in "$d/munge/munged.log" "$d/slurmctld.log" "$d/slurmd.log"; do
    [ -f "$f" ] && { echo "--- tail $f" >&2; tail -n 20 "$f" >&2; }
  done
  slurm_stop
  return 1
}

# Prints the pids of this cluster's live processes: those that carry GM_SLURM_OWNER=$1, each slurmstepd
# that has a file under $1 open (slurmd gives it an empty environment, but its own log file), and all
# their descendants (the job's tasks). Zombies do not count.
_slurm_owned_pids() {
  local p pids
  pids=$(grep -lzx "GM_SLURM_OWNER=$1" /proc/[0-9]*/environ 2>/dev/null | cut -d/ -f3 || true)
  for p in $(pgrep -x slurmstepd || true); do
    # shellcheck disable=SC2010  # the link targets, not the names, are matched
    if ls -l "/proc/$p/fd/" 2>/dev/null | grep -qF -- " $1/"; then pids="$pids $p"; fi
  done
  [ -n "${pids// /}" ] || return 0
  ps -e -o pid= -o ppid= -o stat= | awk -v roots="$pids" '
    BEGIN { n = split(roots, r); for (i = 1; i <= n; i++) keep[r[i]] = 1 }
    $3 !~ /^Z/ { parent[$1] = $2 }
    END {
      do { grew = 0; for (p in parent) if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; grew = 1 } } while (grew)
      for (p in keep) if (p in parent) print p
    }'
}

slurm_stop() {
  local d=${GM_SLURM_DIR:-} pids p left deadline
  [ -n "$d" ] || return 0
  # Cancel the jobs while the daemons still run, so slurmstepd ends the tasks itself (with the controller
  # gone, squeue would only retry: skip to the signals).
  if [ -s "$d/slurmctld.pid" ] && _slurm_alive "$(cat "$d/slurmctld.pid")" &&
    [ -n "$(timeout 5 squeue -h -o %i 2>/dev/null)" ]; then
    # shellcheck disable=SC2046  # a list of job ids
    timeout 5 scancel --quiet $(timeout 5 squeue -h -o %i 2>/dev/null) 2>/dev/null || true
    deadline=$((SECONDS + 10))
    while [ -n "$(timeout 5 squeue -h -o %i 2>/dev/null)" ] && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
  fi
  # SIGTERM, 5 s of grace, then SIGKILL (slurmstepd ignores SIGTERM: it only comes to that when the
  # controller is gone and the jobs could not be cancelled).
  pids=$(_slurm_owned_pids "$d")
  # shellcheck disable=SC2086  # a list of pids
  [ -z "$pids" ] || kill -TERM $pids 2>/dev/null || true
  deadline=$((SECONDS + 5))
  while :; do
    left=""
    for p in $pids; do _slurm_alive "$p" && left="$left $p"; done
    if [ -z "$left" ] || [ "$SECONDS" -ge "$deadline" ]; then break; fi
    sleep 0.1
  done
  # shellcheck disable=SC2086
  [ -z "$left" ] || kill -KILL $left 2>/dev/null || true
  GM_SLURM_DIR=""
  return 0
}
