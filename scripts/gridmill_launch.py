"""gridmill_launch -- how the supervisor starts what runs beyond the local reader, writer and workers: workers on
other hosts over ssh (--hosts), workers through Slurm (--launcher slurm), and custom stages with their hubs.

Every function here only builds command lines, environments and plans; scripts/gridmill starts and watches the
processes. Errors are raised as LaunchError with the one line the supervisor prints.
"""

import os
import shlex

# ssh options for remote workers: never prompt, notice a vanished host within ~6 s, give up connecting after 5 s.
SSH_OPTIONS = ["-T", "-o", "BatchMode=yes", "-o", "ServerAliveInterval=2", "-o", "ServerAliveCountMax=3",
               "-o", "ConnectTimeout=5"]
MAX_WORKERS_PER_HOST = 1024


class LaunchError(Exception):
    """A launch plan that cannot work; str() is the one-line message."""


def read_hosts(path):
    """Reads a hosts file: one 'HOST [WORKERS]' per line ('#' comments, blank lines ignored; WORKERS defaults
    to 1). Returns [(host, workers)]."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
    except OSError as e:
        raise LaunchError(f"{path}: cannot read the hosts file: {e.strerror}") from None
    except UnicodeDecodeError:
        raise LaunchError(f"{path}: not a hosts file (not UTF-8 text)") from None
    hosts = []
    for no, line in enumerate(lines, 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if len(words) > 2:
            raise LaunchError(f"{path}:{no}: expected 'HOST [WORKERS]', got {len(words)} words")
        host = words[0]
        if host.startswith("-") or not all(c.isalnum() or c in "._-@:[]" for c in host):
            raise LaunchError(f"{path}:{no}: \"{host}\" is not a host name")
        count = 1
        if len(words) == 2:
            if not words[1].isdigit() or not 1 <= int(words[1]) <= MAX_WORKERS_PER_HOST:
                raise LaunchError(f"{path}:{no}: worker count \"{words[1]}\" is not a number from 1 to "
                                  f"{MAX_WORKERS_PER_HOST}")
            count = int(words[1])
        hosts.append((host, count))
    if not hosts:
        raise LaunchError(f"{path}: the hosts file names no host")
    return hosts


def ssh_worker_argv(ssh_cmd, host, worker_bin, control, stage_args):
    """The command that runs one worker on 'host' over ssh. The worker watches its standard input, which ssh
    closes when the connection ends, so stopping the local ssh (or losing the supervisor) ends the worker."""
    # ssh passes no environment: the tests' GRIDMILL_DEBUG_* settings go on the command line
    debug = [f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("GRIDMILL_DEBUG_")]
    remote = ["exec"] + (["env"] + debug if debug else []) + [worker_bin, "--connect", control, "--watch-stdin"]
    remote += stage_args
    return shlex.split(ssh_cmd) + SSH_OPTIONS + [host, " ".join(shlex.quote(w) for w in remote)]


def srun_argv(srun_cmd, ntasks, worker_bin, control, stage_args):
    """The command that runs 'ntasks' workers through Slurm: one srun step, inside the current allocation when
    there is one (SLURM_JOB_ID), else in one it asks for. Signals sent to srun reach every task."""
    return shlex.split(srun_cmd) + [f"--ntasks={ntasks}", "--kill-on-bad-exit=0", "--job-name=gridmill-workers",
                                    worker_bin, "--connect", control] + stage_args


def stage_env(base, kind, copy, copies, in_ep, out_ep, control, curve):
    """The environment of one copy of a custom stage (common/PROTOCOL.md, "Custom stages")."""
    env = dict(base, GRIDMILL_STAGE=kind, GRIDMILL_IN=in_ep, GRIDMILL_OUT=out_ep, GRIDMILL_CONTROL=control,
               GRIDMILL_COPY=str(copy), GRIDMILL_COPIES=str(copies))
    if curve:
        env["GRIDMILL_CURVE"] = curve
    else:
        env.pop("GRIDMILL_CURVE", None)
    return env


def remote_stage_args(common):
    """The common stage options that make sense on another host: a --log-file names a local path, so it is
    dropped (a remote worker's log lines reach the supervisor through ssh or srun)."""
    out, i = [], 0
    while i < len(common):
        if common[i] == "--log-file":
            i += 2
            continue
        out.append(common[i])
        i += 1
    return out


def worker_bin_for(remote_bin, bindir):
    """The gridmill-worker path on remote hosts: in --remote-bin, else where it is here."""
    return os.path.join(remote_bin or bindir, "gridmill-worker")
