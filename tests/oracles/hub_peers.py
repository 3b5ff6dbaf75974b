#!/usr/bin/python3
"""hub_peers.py -- drive a gridmill-hub in its connect modes from Python peers and check what it passes on.

Usage: hub_peers.py HUB

Two senders bind PUSH sockets and two receivers bind PULL sockets; the hub is started with --pull-from both
senders and --push-to both receivers. Checks, and exits 1 naming the first that fails:
  1. fan-out: every message of both senders reaches BOTH receivers, frames unchanged (1 MiB payloads);
  2. backpressure: while receiver 1 reads nothing, receiver 0 gets only a bounded number more (the hub waits
     for the receiver that cannot take its copy), and once receiver 1 reads again both get everything;
  3. the hub exits 0 on SIGTERM.
The stall lasts 5 s, longer than ZeroMQ heartbeats would allow a stopped reader (gridmill uses TCP keepalive instead).
"""
import subprocess
import sys
import time

import zmq

N = 120                                # messages per round
BIG = bytes(range(256)) * 4096         # a 1 MiB payload frame
STALL = 5.0                            # seconds receiver 1 reads nothing
BOUND = 60                             # most messages receiver 0 may get meanwhile (kernel buffers included)


def bind(ctx, kind, hwm_opt, hwm):
    """Returns a socket of 'kind' bound on a free loopback port, and its endpoint."""
    s = ctx.socket(kind)
    s.setsockopt(hwm_opt, hwm)
    s.setsockopt(zmq.LINGER, 0)
    s.bind("tcp://127.0.0.1:*")
    return s, s.getsockopt_string(zmq.LAST_ENDPOINT)


def drain(proc, recvs, got, want, seconds, only=None):
    """Receives into got[k] until every receiver in 'only' (default all) has 'want' messages or time is up;
    exits if the hub process 'proc' ended."""
    ks = range(len(recvs)) if only is None else only
    end = time.time() + seconds
    while any(len(got[k]) < want for k in ks) and time.time() < end:
        if proc.poll() is not None:
            sys.exit(f"FAIL: the hub exited {proc.returncode}")
        for k in ks:
            while recvs[k].poll(5):
                m = recvs[k].recv_multipart()
                if len(m) != 2 or m[1] != BIG:
                    sys.exit(f"FAIL: receiver {k} got a message whose frames changed")
                got[k].append(m[0])


def send_all(proc, senders, names):
    """Sends each message (name, BIG) from the senders in turn; exits if the hub never connects to one."""
    for i, name in enumerate(names):
        s = senders[i % len(senders)]
        if not s.poll(10000, zmq.POLLOUT):
            sys.exit(f"FAIL: the hub did not connect to sender {i % len(senders)} (exit status {proc.poll()})")
        s.send_multipart([name, BIG], zmq.NOBLOCK)


def main():
    hub = sys.argv[1]
    ctx = zmq.Context()
    senders = [bind(ctx, zmq.PUSH, zmq.SNDHWM, 100000) for _ in range(2)]
    recvs = [bind(ctx, zmq.PULL, zmq.RCVHWM, 2) for _ in range(2)]
    argv = [hub, "-q"]
    for _, ep in senders:
        argv += ["--pull-from", ep]
    for _, ep in recvs:
        argv += ["--push-to", ep]
    proc = subprocess.Popen(argv)
    try:
        recvs = [r for r, _ in recvs]
        senders = [s for s, _ in senders]
        names = [b"a%d" % i for i in range(N)]
        send_all(proc, senders, names)
        got = [[], []]
        drain(proc, recvs, got, N, 60)
        for k in range(2):
            if sorted(got[k]) != sorted(names):
                sys.exit(f"FAIL: fan-out: receiver {k} got {len(got[k])} of the {N} messages of both senders")
        print(f"fan-out: each receiver got all {N} messages of both senders, frames unchanged")

        names = [b"b%d" % i for i in range(N)]
        send_all(proc, senders, names)
        got = [[], []]
        drain(proc, recvs, got, N, STALL, only=[0])
        if len(got[0]) > BOUND:
            sys.exit(f"FAIL: backpressure: receiver 0 got {len(got[0])} of {N} while receiver 1 read nothing")
        stalled = len(got[0])
        drain(proc, recvs, got, N, 60)
        for k in range(2):
            if sorted(got[k]) != sorted(names):
                sys.exit(f"FAIL: backpressure: after the stall receiver {k} got {len(got[k])} of {N}")
        print(f"backpressure: receiver 0 got {stalled} of {N} while receiver 1 read nothing for {STALL} s; "
              f"then both got all {N}")

        proc.terminate()
        rc = proc.wait(10)
        if rc != 0:
            sys.exit(f"FAIL: the hub exited {rc} on SIGTERM")
        print("the hub exited 0 on SIGTERM")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        ctx.destroy(linger=0)


if __name__ == "__main__":
    main()
