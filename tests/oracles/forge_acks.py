#!/usr/bin/python3
"""forge_acks.py CONTROL ACKS [N] -- a hostile peer that fetches the job (hello on CONTROL) and pushes forged but
well-formed acks to ACKS: "recv" then written for block ids 0 .. N-1 (80), and a zero-block ready ack. Prints
the job id it forged for; exits 2 if it cannot get the job within 10 s (the endpoint refused or is unreachable).
"""
import sys

import msgpack
import zmq

control_ep, acks_ep = sys.argv[1:3]
n = int(sys.argv[3]) if len(sys.argv) > 3 else 80
ctx = zmq.Context()
ctx.setsockopt(zmq.LINGER, 2000)
ctl = ctx.socket(zmq.DEALER)
ctl.connect(control_ep)
ctl.send(msgpack.packb({"v": 1, "t": "hello", "role": "worker"}))
if not ctl.poll(10000):
    print(f"forge_acks: no job from {control_ep}")
    sys.exit(2)
job = msgpack.unpackb(ctl.recv_multipart()[0])
ids = b"".join(i.to_bytes(4, "little") for i in range(n))
push = ctx.socket(zmq.PUSH)
push.connect(acks_ep)
push.send(msgpack.packb({"v": 1, "t": "ack", "job": job["id"], "n": 0}))
push.send_multipart([msgpack.packb({"v": 1, "t": "ack", "job": job["id"], "n": n, "s": "recv"}), ids])
push.send_multipart([msgpack.packb({"v": 1, "t": "ack", "job": job["id"], "n": n}), ids])
print(f"forge_acks: forged acks of {n} blocks for job {job['id']:016x}")
push.close()
ctl.close()
ctx.term()
