#!/usr/bin/python3
"""hostile.py CONTROL ACKS RESULTS -- play a buggy or hostile peer against a running gridmill pipeline.

Sends malformed, truncated, oversized, wrong-version and out-of-range messages to every endpoint that
reads from peers (the reader's control and ack endpoints, the writer's result endpoint). Prints what it
sent and what the control endpoint answered; exits 1 if the control endpoint stops answering hellos.
"""
import sys
import time

import msgpack
import zmq

control_ep, acks_ep, results_ep = sys.argv[1:4]
ctx = zmq.Context()
ctx.setsockopt(zmq.LINGER, 2000)


def pk(h):
    return msgpack.packb(h)


garbage = [
    b"",
    b"\x00\xff garbage \x13\x37",
    pk({"v": 1, "t": "task"})[:5],                              # truncated
    b"\xdf\x08\x00\x00\x00\xa1v\x01\xa1t\xa3ac",               # map announcing 134 M entries
    b"\x81\xa1z\xdd\xff\xff\xff\xff\x01",                       # array announcing 4 G items
    b"\x91" * 200 + b"\x00",                                    # nested 200 deep
    pk({"v": 2, "t": "hello", "role": "worker"}),              # future version
    pk({"v": 1, "t": "nonsense"}),
    pk({"v": 1, "t": "hello", "role": "worker\nwith a newline"}),
    pk([1, 2, 3]),
    pk({"v": 1, "t": "hello", "role": "x" * 100000}),           # long string
]
sent = 0

# 1. control endpoint (reader, ROUTER): every kind of bad request, then a good hello must still be served.
ctl = ctx.socket(zmq.DEALER)
ctl.connect(control_ep)
for g in garbage:
    ctl.send(g)
    sent += 1
ctl.send_multipart([pk({"v": 1, "t": "hello", "role": "worker"}), b"extra", b"frames"])
ctl.send(pk({"v": 1, "t": "task", "job": 1, "b": 0, "x": 0, "y": 0, "w": 1, "h": 1, "n": 1, "dt": "f32"}))
sent += 2
big = ctx.socket(zmq.DEALER)
big.connect(control_ep)
big.send(b"\x80" + b"\x00" * (2 << 20))  # 2 MiB header: above the limit, the peer is cut off
sent += 1

# 2. acks endpoint (reader, PULL): bad acks and dones.
acks = ctx.socket(zmq.PUSH)
acks.connect(acks_ep)
for g in garbage:
    acks.send(g)
acks.send_multipart([pk({"v": 1, "t": "ack", "job": 12345, "n": 1}), b"\x00\x00\x00\x00"])
acks.send_multipart([pk({"v": 1, "t": "ack", "job": 12345, "n": 3}), b"\x00\x00"])
acks.send_multipart([pk({"v": 1, "t": "done", "job": 12345})])
acks.send_multipart([pk({"v": 1, "t": "saved", "job": 12345, "i": 4000}), b"{}"])
sent += len(garbage) + 4

# 3. results endpoint (writer, PULL): bad results; none names the running job with a valid block.
res = ctx.socket(zmq.PUSH)
res.connect(results_ep)
for g in garbage:
    res.send(g)
blk = {"v": 1, "t": "result", "job": 12345, "b": 0, "x": 0, "y": 0, "w": 128, "h": 128}
res.send_multipart([pk(blk), b"\x00" * 10])
res.send_multipart([pk(dict(blk, b=10 ** 9)), b"\x00"])
res.send_multipart([pk(dict(blk, x=10 ** 6, w=8192, h=8192))])
res.send_multipart([pk({"v": 1, "t": "model", "job": 12345, "i": 5000}), b"{}"])
sent += len(garbage) + 4
print(f"hostile: sent {sent} bad messages")

# The control endpoint must still answer a well-formed hello with a job.
ok = ctx.socket(zmq.DEALER)
ok.connect(control_ep)
ok.send(pk({"v": 1, "t": "hello", "role": "worker"}))
poller = zmq.Poller()
poller.register(ok, zmq.POLLIN)
deadline = time.time() + 10
while time.time() < deadline:
    if poller.poll(200):
        frames = ok.recv_multipart()
        h = msgpack.unpackb(frames[0])
        if h.get("t") == "job":
            print(f"hostile: the reader still serves job {h['id']:016x} after the attack")
            sys.exit(0)
print("hostile: no job reply to a well-formed hello within 10 s", file=sys.stderr)
sys.exit(1)
