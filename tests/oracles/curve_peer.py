#!/usr/bin/python3
"""curve_peer.py CONTROL TASKS SECONDS [options] -- a peer trying to join a CURVE-secured gridmill job.

Plays a worker written with python3-zmq: connects a DEALER to the reader's control endpoint and sends a hello,
connects a PULL to its task endpoint, and listens for SECONDS. It uses no gridmill code: the key file is read
here with a regular expression, and the keys are given to ZeroMQ as the CURVE options say.

  (no option)         a plain peer, without CURVE
  --key KEYFILE       a CURVE client with the key file's pair, as a stage given --curve KEYFILE
  --own-pair          with --key: knows the server's public key from KEYFILE, but connects with a fresh key
                      pair of its own (what a peer that only learnt the public key could do)
  --inject ACKS RESULTS  also pushes malformed messages to the reader's ack and the writer's result endpoints
  --expect-job        the check that this probe works: succeed only if the reader answers with a job

Prints what it received on one line. Exits 0 when it received nothing (with --expect-job: when a job came),
1 otherwise.
"""
import argparse
import re
import sys
import time

import msgpack
import zmq


def read_keys(path):
    """Returns (public, secret) Z85 keys as bytes from a gridmill / CZMQ key file."""
    text = open(path, encoding="latin-1").read()
    keys = {}
    for name in ("public-key", "secret-key"):
        m = re.search(r'^\s*' + name + r'\s*=\s*"?([^"\s]{40})"?\s*$', text, re.M)
        if not m:
            sys.exit(f"curve_peer.py: {path}: no {name}")
        keys[name] = m.group(1).encode()
    return keys["public-key"], keys["secret-key"]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("control")
    p.add_argument("tasks")
    p.add_argument("seconds", type=float)
    p.add_argument("--key")
    p.add_argument("--own-pair", action="store_true")
    p.add_argument("--inject", nargs=2, metavar=("ACKS", "RESULTS"))
    p.add_argument("--expect-job", action="store_true")
    a = p.parse_args()

    ctx = zmq.Context()
    ctx.setsockopt(zmq.LINGER, 0)

    def secured(kind):
        s = ctx.socket(kind)
        if a.key:
            server_public, secret = read_keys(a.key)
            public = server_public
            if a.own_pair:
                public, secret = zmq.curve_keypair()
            s.curve_serverkey = server_public
            s.curve_publickey = public
            s.curve_secretkey = secret
        return s

    ctl = secured(zmq.DEALER)
    ctl.connect(a.control)
    ctl.send(msgpack.packb({"v": 1, "t": "hello", "role": "writer" if a.expect_job else "worker"}))
    tasks = None
    if not a.expect_job:  # a probe with the key would take real tasks away from the job
        tasks = secured(zmq.PULL)
        tasks.setsockopt(zmq.RCVHWM, 1)
        tasks.connect(a.tasks)
    if a.inject:
        bad = [b"", b"\x00\xff not msgpack", msgpack.packb({"v": 1, "t": "done", "job": 12345})]
        for ep in a.inject:
            s = secured(zmq.PUSH)
            s.connect(ep)
            for m in bad:
                # never blocking: a peer the server refuses has its only pipe dropped, and a blocking send
                # would then wait for ever
                try:
                    s.send(m, flags=zmq.NOBLOCK)
                except zmq.Again:
                    pass

    poller = zmq.Poller()
    poller.register(ctl, zmq.POLLIN)
    if tasks:
        poller.register(tasks, zmq.POLLIN)
    got = {"control": [], "tasks": []}
    deadline = time.monotonic() + a.seconds
    while time.monotonic() < deadline:
        for s, _ in poller.poll(timeout=100):
            frames = s.recv_multipart()
            try:
                kind = msgpack.unpackb(frames[0]).get("t", "?")
            except Exception:  # any bytes at all count as received
                kind = "undecodable"
            got["control" if s is ctl else "tasks"].append(kind)
        if a.expect_job and "job" in got["control"]:
            break
    print(f"control: {len(got['control'])} messages {got['control'][:5]}; "
          f"tasks: {len(got['tasks'])} messages {got['tasks'][:5]}")
    ctx.destroy(linger=0)
    if a.expect_job:
        return 0 if "job" in got["control"] else 1
    return 0 if not got["control"] and not got["tasks"] else 1


if __name__ == "__main__":
    sys.exit(main())
