#!/usr/bin/python3
"""make_corpus.py OUTDIR -- seed inputs for fuzz_wire: one valid header of every kind, and a job."""
import os
import sys

import msgpack

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
blk = {"job": 2**63 + 5, "b": 3, "x": 256, "y": 0, "w": 44, "h": 217}
seeds = {
    "hello": {"v": 1, "t": "hello", "role": "worker"},
    "task": dict(blk, v=1, t="task", n=4, dt="f32"),
    "result": dict(blk, v=1, t="result"),
    "ack": {"v": 1, "t": "ack", "job": 7, "n": 2},
    "ack_recv": {"v": 1, "t": "ack", "job": 7, "n": 1, "s": "recv"},
    "done": {"v": 1, "t": "done", "job": 7},
    "error": {"v": 1, "t": "error", "msg": "no"},
    "train": {"v": 1, "t": "train", "job": 7, "i": 3, "n": 100, "k": 4},
    "model": {"v": 1, "t": "model", "job": 7, "i": 3},
    "saved": {"v": 1, "t": "saved", "job": 7, "i": 3},
    "hb": {"v": 1, "t": "hb"},
}
job = {"v": 1, "t": "job", "id": 99, "mode": "summarise", "xsize": 300, "ysize": 217,
       "gt": [500000.0, 30.0, 0.0, 5000000.0, 0.0, -30.0], "crs": "", "bands": 4, "bw": 128, "bh": 128,
       "tile": 256, "kind": "classification", "objective": "multi:softprob", "nclass": 3,
       "probabilities": False, "nprob": 0, "quantiles": [], "realisations": False, "iterations": 0,
       "rounds": 0, "seed": 0, "params": [],
       "outputs": [{"name": "probability", "role": "probability", "model": 0, "dt": "f32", "n": 3,
                    "nodata": -3.4028234663852886e38},
                   {"name": "class", "role": "class", "model": 0, "dt": "u8", "n": 1, "nodata": 255.0},
                   {"name": "entropy", "role": "entropy", "model": 0, "dt": "f32", "n": 1,
                    "nodata": -3.4028234663852886e38},
                   {"name": "confusion", "role": "confusion", "model": 0, "dt": "f32", "n": 1,
                    "nodata": -3.4028234663852886e38}],
       "models": [{"format": "json", "size": 10}, {"format": "ubj", "size": 20}],
       "tasks": "tcp://127.0.0.1:1", "results": "tcp://127.0.0.1:2", "acks": "tcp://127.0.0.1:3"}
seeds["job"] = job
for name, h in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(msgpack.packb(h, use_single_float=False))
