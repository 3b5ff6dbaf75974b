#!/usr/bin/python3
"""measure.py -- run one benchmark command and measure it: wall time, CPU %, and the peak RSS of every process.

Usage: measure.py --json OUT.json [--time-v OUT.time] [--interval S] [--timeout S] -- COMMAND [ARG...]

The command runs under /usr/bin/time -v (with --time-v: its report goes to OUT.time), so a single process's peak
RSS is the kernel's own count. For multi-process commands (gridmill's supervisor, reader, workers and writer; a
multiprocessing.Pool; R's PSOCK cluster) this script also samples /proc/PID/status VmHWM of every descendant
every --interval seconds (0.05) and keeps each process's highest value. It makes itself a child subreaper, so
processes that detach (R's cluster workers) stay its descendants: it sees them, reaps them, and their CPU time is
counted. CPU % is the user + system time of every process of the command over its wall time (200 = two cores).
With --timeout, a command still running after S seconds is stopped (SIGTERM to every process of it, SIGKILL 5 s
later) and the exit status is 124.

OUT.json: {"cmd", "exit", "timed_out", "wall_s", "user_s", "sys_s", "cpu_pct", "time_v_max_rss_kb",
           "procs": [{"pid", "ppid", "name", "cmd", "hwm_kb", "root"}]}
The exit status is the command's.
"""
import ctypes
import json
import os
import resource
import signal
import sys
import time

PR_SET_CHILD_SUBREAPER = 36
WRAPPERS = {"time"}  # our own /usr/bin/time: not a process of the command


def children_of(pid):
    """Returns the pids of pid's children (every thread's), or [] if it is gone."""
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    out += [int(x) for x in f.read().split()]
            except OSError:
                pass
    except OSError:
        pass
    return out


def descendants(root):
    """Returns every descendant of root (depth first)."""
    seen, pending = [], [root]
    while pending:
        kids = children_of(pending.pop())
        seen += kids
        pending += kids
    return seen


def status_of(pid):
    """Returns (name, ppid, VmHWM in kB) of a live process, or None (gone, or a zombie without memory)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            text = f.read()
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    if "VmHWM" not in fields:
        return None
    return fields["Name"].strip(), int(fields["PPid"]), int(fields["VmHWM"].split()[0])


def cmdline_of(pid):
    """Returns the command line of pid, shortened, or ''."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            words = f.read().split(b"\0")
    except OSError:
        return ""
    return " ".join(w.decode(errors="replace") for w in words if w)[:200]


def kill_all(sig):
    """Sends sig to every descendant of this process."""
    for pid in descendants(os.getpid()):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def main():
    argv = sys.argv[1:]
    if "--" not in argv:
        print("usage: measure.py --json OUT.json [--time-v OUT.time] [--interval S] [--timeout S] -- COMMAND [ARG...]",
              file=sys.stderr)
        return 2
    opts, cmd = argv[:argv.index("--")], argv[argv.index("--") + 1:]
    json_path, time_path, interval, timeout = None, None, 0.05, None
    while opts:
        key, val, opts = opts[0], opts[1] if len(opts) > 1 else None, opts[2:]
        if key == "--json":
            json_path = val
        elif key == "--time-v":
            time_path = val
        elif key == "--interval":
            interval = float(val)
        elif key == "--timeout":
            timeout = float(val)
        else:
            print(f"measure.py: {key}: unknown option", file=sys.stderr)
            return 2
    if not json_path or not cmd:
        print("measure.py: need --json OUT.json and a command", file=sys.stderr)
        return 2

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        print("measure.py: cannot become a child subreaper; detached processes will be missed", file=sys.stderr)
    full = (["/usr/bin/time", "-v", "-o", time_path] if time_path else []) + cmd
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    main_pid = os.posix_spawnp(full[0], full, os.environ)
    forwarded = {}

    def forward(signum, frame):
        forwarded[signum] = True
        try:
            os.kill(main_pid, signum)
        except ProcessLookupError:
            pass
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, forward)

    procs = {}  # pid -> {"name", "ppid", "hwm_kb", "cmd"}
    exit_code, t_end, main_done_at, timed_out = None, None, None, None
    while True:
        for pid in descendants(os.getpid()):
            st = status_of(pid)
            if st is None:
                continue
            name, ppid, hwm = st
            p = procs.get(pid)
            if p is None:
                p = procs[pid] = {"pid": pid, "ppid": ppid, "name": None, "hwm_kb": 0, "cmd": None}
            cmd_now = cmdline_of(pid)
            if p["name"] != name or p["cmd"] != cmd_now:
                # new, or it exec'd (time -> the command, R's fork -> sh -> Rscript -> R): a new memory map, so
                # a new high-water mark; a fork's mark before its exec was its parent's memory
                p["name"], p["cmd"], p["hwm_kb"] = name, cmd_now, hwm
            p["hwm_kb"] = max(p["hwm_kb"], hwm)
        try:
            while True:
                pid, status, _ = os.wait4(-1, os.WNOHANG)
                if pid == 0:
                    break
                if pid == main_pid:
                    t_end = time.monotonic()
                    exit_code = os.waitstatus_to_exitcode(status)
                    main_done_at = t_end
        except ChildProcessError:
            if exit_code is not None:
                break
        if main_done_at is None and timeout and time.monotonic() - t0 > timeout and not timed_out:
            timed_out = time.monotonic()
            print(f"measure.py: still running after {timeout:.0f} s; stopping it", file=sys.stderr)
            kill_all(signal.SIGTERM)
        if timed_out and main_done_at is None and time.monotonic() - timed_out > 5:
            kill_all(signal.SIGKILL)
        if main_done_at is not None and time.monotonic() - main_done_at > 60:
            kill_all(signal.SIGKILL)  # stragglers a minute after the command ended
        time.sleep(interval)

    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = t_end - t0
    user = after.ru_utime - before.ru_utime
    system = after.ru_stime - before.ru_stime
    time_v_rss = None
    if time_path and os.path.exists(time_path):
        with open(time_path) as f:
            for line in f:
                if "Maximum resident set size" in line:
                    time_v_rss = int(line.rsplit(":", 1)[1])
    root_cmd_pid = main_pid
    if time_path:  # the command is the child of /usr/bin/time
        root_cmd_pid = next((pid for pid, p in procs.items() if p["ppid"] == main_pid), None)
    rows = []
    for pid, p in sorted(procs.items()):
        if p["name"] in WRAPPERS and pid == main_pid:
            continue
        p["root"] = pid == root_cmd_pid
        rows.append(p)
    # A command that is one process: /usr/bin/time -v's count is exact where sampling may miss the last moments.
    if time_v_rss and len(rows) == 1 and rows[0]["root"]:
        rows[0]["hwm_kb"] = max(rows[0]["hwm_kb"], time_v_rss)
    if timed_out:
        exit_code = 124
    result = {"cmd": cmd, "exit": exit_code, "timed_out": bool(timed_out), "wall_s": round(wall, 3), "user_s": round(user, 3),
              "sys_s": round(system, 3), "cpu_pct": round(100 * (user + system) / wall, 1) if wall > 0 else 0,
              "time_v_max_rss_kb": time_v_rss, "procs": rows}
    with open(json_path, "w") as f:
        json.dump(result, f, indent=1)
    return exit_code if exit_code is not None else 1


if __name__ == "__main__":
    sys.exit(main())
