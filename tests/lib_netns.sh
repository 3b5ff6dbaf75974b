# lib_netns.sh -- fake "hosts" for multi-host tests: Linux network namespaces joined by veth pairs, with an
# sshd in each worker host. Bash tests source it (it is `set -euo pipefail` safe); nobody runs it. Needs root,
# iproute2, openssh-server and openssh-client.
#
# Layout (netns_up DIR N), with P = gm<pid of the sourcing shell> and X = 1 + pid % 250:
#
#   namespace P-h (head)           br0  10.X.0.1/24     <- the ONE address every worker host reaches
#     v1 ... vN: head ends of the veth pairs, enslaved to br0 (no addresses of their own)
#   namespace P-wI (worker host I) eth0 10.X.0.(I+1)/24 <- the other end of veth pair vI
#
# Every namespace has only `lo` besides these, so traffic between hosts can only cross the veth pairs, and
# 127.0.0.1 in a worker host is that host's own loopback, not the head's. Concurrent runs have their own
# namespaces (and so their own, isolated, 10.X.0.0/24; X only keeps logs readable). The filesystem, users and
# hostname stay shared: only the network is split, so a worker host runs the same binaries as the head.
#
# Functions (I counts worker hosts from 1):
#   netns_available        0 if we are root and namespaces, veth pairs and bridges can be made here; else 1,
#                          with the reason in NETNS_WHY
#   netns_up DIR N         makes the head and N worker hosts; sets and exports
#                            NETNS_DIR NETNS_N NETNS_HEAD NETNS_HOSTS (space-separated names, host 1 first)
#                            NETNS_HEAD_ADDR (10.X.0.1), NETNS_HEAD_ADDR_I and NETNS_HOST_ADDR_I for each I
#   netns_head_addr I      prints the head's address as host I reaches it (the same for every I)
#   netns_host_addr I      prints host I's address;  netns_host I  prints host I's namespace name
#   netns_sshd [DIR]       starts an sshd in each worker host (keys, configs, logs under DIR, by default
#                          NETNS_DIR), writes DIR/ssh_config with aliases host1..hostN and waits until each
#                          answers; sets and exports NETNS_SSH_CONFIG and NETNS_SSH ("ssh -F DIR/ssh_config").
#                          ssh must run FROM the head: ip netns exec "$NETNS_HEAD" $NETNS_SSH host1 CMD
#   netns_cut I            host I "loses power": its veth pair is deleted first, then every process in it is
#                          killed with SIGKILL, so the head gets neither FIN nor RST; the name stays reserved
#   netns_down             kills every process left in the namespaces netns_up made, deletes them (links go
#                          with them); touches no other namespace, may run twice and from an EXIT trap
#   netns_on_exit          makes the EXIT trap run netns_down first, then the trap set before (gm_cleanup)
#                          with the test's exit status still in $?
# shellcheck shell=bash

# Namespaces this shell made and has not deleted yet. Never exported, and netns_down only deletes names with
# this shell's pid in them, so a child shell that sources this file cannot delete its parent's.
NETNS_MADE=${NETNS_MADE:-}
export -n NETNS_MADE
NETNS_WHY=

# Prints the pids of the processes whose network namespace is $1, except this shell's own.
netns__pids() {
  local p
  for p in $(ip netns pids "$1" 2>/dev/null || true); do
    [ "$p" = "$$" ] || [ "$p" = "${BASHPID:-}" ] || echo "$p"
  done
}

# SIGKILLs every process in namespace $1, and waits (up to ~5 s) until none is left.
netns__kill_all() {
  local pids
  for _ in $(seq 50); do
    pids=$(netns__pids "$1")
    [ -n "$pids" ] || return 0
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    sleep 0.1
  done
  echo "lib_netns: processes still in $1 after SIGKILL: $(netns__pids "$1" | tr '\n' ' ')" >&2
}

netns_available() {
  local t=gm$$-t
  NETNS_WHY=
  if [ "$(id -u)" != 0 ]; then NETNS_WHY="not root"; return 1; fi
  if ! command -v ip >/dev/null; then NETNS_WHY="no ip (iproute2)"; return 1; fi
  if ! ip netns add "$t" 2>/dev/null; then NETNS_WHY="ip netns add fails here"; return 1; fi
  if ! ip -n "$t" link add br0 type bridge 2>/dev/null \
    || ! ip -n "$t" link add v1 type veth peer name v2 2>/dev/null; then
    NETNS_WHY="cannot make a bridge or a veth pair in a namespace"
  fi
  ip netns del "$t" 2>/dev/null || true
  [ -z "$NETNS_WHY" ]
}

netns_up() {
  local dir=$1 n=$2 i ns
  if [ -n "$NETNS_MADE" ]; then echo "lib_netns: netns_up twice without netns_down" >&2; return 1; fi
  if ! [ "$n" -ge 1 ] || ! [ "$n" -le 200 ]; then echo "lib_netns: N must be 1..200" >&2; return 1; fi
  mkdir -p "$dir"
  NETNS_DIR=$(cd "$dir" && pwd)
  NETNS_N=$n
  NETNS_HEAD=gm$$-h
  NETNS_HEAD_ADDR=10.$(($$ % 250 + 1)).0.1
  local net=${NETNS_HEAD_ADDR%.1}
  NETNS_HOSTS=
  export NETNS_DIR NETNS_N NETNS_HEAD NETNS_HEAD_ADDR NETNS_HOSTS

  # A name already there is another run's (or a dead run's with our pid): never take it over.
  ip netns add "$NETNS_HEAD" || { echo "lib_netns: cannot make namespace $NETNS_HEAD" >&2; return 1; }
  NETNS_MADE=$NETNS_HEAD
  ip -n "$NETNS_HEAD" link set lo up
  ip -n "$NETNS_HEAD" link add br0 type bridge forward_delay 0 stp_state 0
  ip -n "$NETNS_HEAD" addr add "$NETNS_HEAD_ADDR/24" dev br0
  ip -n "$NETNS_HEAD" link set br0 up
  for i in $(seq "$n"); do
    ns=gm$$-w$i
    ip netns add "$ns" || { echo "lib_netns: cannot make namespace $ns" >&2; return 1; }
    NETNS_MADE="$NETNS_MADE $ns"
    NETNS_HOSTS="${NETNS_HOSTS:+$NETNS_HOSTS }$ns"
    ip -n "$ns" link set lo up
    # Made inside the head with its peer moved straight into the worker host: no name in the root namespace.
    ip -n "$NETNS_HEAD" link add "v$i" type veth peer name eth0 netns "$ns"
    ip -n "$NETNS_HEAD" link set "v$i" master br0 up
    ip -n "$ns" addr add "$net.$((i + 1))/24" dev eth0
    ip -n "$ns" link set eth0 up
    export "NETNS_HEAD_ADDR_$i=$NETNS_HEAD_ADDR" "NETNS_HOST_ADDR_$i=$net.$((i + 1))"
  done
  echo "$NETNS_MADE" >"$NETNS_DIR/netns_names"  # for cleaning up by hand after a SIGKILLed test
}

netns_host() { echo "${NETNS_HEAD%-h}-w$1"; }
netns_head_addr() { echo "$NETNS_HEAD_ADDR"; }
netns_host_addr() { local v=NETNS_HOST_ADDR_$1; echo "${!v}"; }

netns_sshd() {
  local d=${1:-$NETNS_DIR} i addr
  mkdir -p "$d"
  d=$(cd "$d" && pwd)
  # sshd's privilege separation folder: Debian makes it only when its service starts.
  [ -d /run/sshd ] || mkdir -m 0755 /run/sshd
  rm -f "$d/client_key" "$d/client_key.pub"
  ssh-keygen -q -t ed25519 -N '' -C gridmill-test -f "$d/client_key"
  cp "$d/client_key.pub" "$d/authorized_keys"
  : >"$d/ssh_config"
  for i in $(seq "$NETNS_N"); do
    addr=$(netns_host_addr "$i")
    rm -f "$d/host_key_$i" "$d/host_key_$i.pub"
    ssh-keygen -q -t ed25519 -N '' -C "host$i" -f "$d/host_key_$i"
    cat >"$d/sshd_config_$i" <<EOF
ListenAddress $addr:22
HostKey $d/host_key_$i
PidFile $d/sshd_$i.pid
PermitRootLogin yes
AuthorizedKeysFile $d/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
StrictModes no
UsePAM no
UseDNS no
MaxStartups 200
MaxSessions 200
LogLevel INFO
EOF
    cat >>"$d/ssh_config" <<EOF
Host host$i
  HostName $addr
  User root
  Port 22
  IdentityFile $d/client_key
  IdentitiesOnly yes
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  BatchMode yes
  LogLevel ERROR
  ConnectTimeout 5
EOF
    ip netns exec "$(netns_host "$i")" /usr/sbin/sshd -D -e -f "$d/sshd_config_$i" \
      </dev/null >>"$d/sshd_$i.log" 2>&1 &
    disown "$!"  # no "Killed" job notice from bash when netns_cut or netns_down kills it
  done
  NETNS_SSH_CONFIG=$d/ssh_config
  NETNS_SSH="ssh -F $d/ssh_config"
  export NETNS_SSH_CONFIG NETNS_SSH
  # Wait (up to ~10 s) until every sshd takes a login, all hosts at once: one login costs ~0.3-0.9 s.
  local pids=() bad=0
  for i in $(seq "$NETNS_N"); do
    (
      for _ in $(seq 100); do
        if ip netns exec "$NETNS_HEAD" ssh -F "$d/ssh_config" "host$i" true </dev/null 2>/dev/null; then exit 0; fi
        sleep 0.1
      done
      echo "lib_netns: sshd of host$i does not answer; its log:" >&2
      cat "$d/sshd_$i.log" >&2 || true
      exit 1
    ) &
    pids+=("$!")
  done
  for i in "${pids[@]}"; do wait "$i" || bad=1; done
  return "$bad"
}

netns_cut() {
  local ns
  ns=$(netns_host "$1")
  ip -n "$NETNS_HEAD" link del "v$1" 2>/dev/null || true  # takes eth0 in $ns with it
  netns__kill_all "$ns"
}

netns_down() {
  local ns
  for ns in $NETNS_MADE; do
    case $ns in "gm$$-"*) ;; *) continue ;; esac
    netns__kill_all "$ns"
    ip netns del "$ns" 2>/dev/null || true
  done
  NETNS_MADE=
  return 0  # under set -e a failing command ends an EXIT trap early
}

# Runs netns_down at exit, before whatever EXIT trap is set now (lib.sh's gm_cleanup), which still sees the
# test's exit status in $?. Call it after sourcing lib.sh and before netns_up.
netns_on_exit() {
  local prev
  prev=$(trap -p EXIT)  # "trap -- 'CMD' EXIT", quoted for eval
  if [ -n "$prev" ]; then eval "set -- $prev"; prev=$3; fi
  # shellcheck disable=SC2064,SC2154  # the previous trap's text goes in now, on purpose
  trap "netns__rc=\$?; netns_down; set +e; (exit \$netns__rc); $prev" EXIT
}
