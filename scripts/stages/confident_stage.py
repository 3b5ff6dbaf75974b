#!/usr/bin/python3
"""confident_stage.py -- a gridmill post-stage: keep a pixel's class only where the model is confident.

Usage: gridmill predict|run ... --probabilities --stage 'confident_stage.py THRESHOLD' [--stage-copies N]

In a classification job whose outputs include a "class" output and a "probability" output, every pixel whose
largest class probability is below THRESHOLD (0 to 1) gets the class output's nodata value; pixels where the
probabilities are nodata keep the class they have (nodata). Every other message goes on unchanged.

An example of a stage written from common/PROTOCOL.md alone, with python3-zmq, python3-msgpack and numpy:
the supervisor gives the endpoints in GRIDMILL_IN (connect a PULL), GRIDMILL_OUT (connect a PUSH),
GRIDMILL_CONTROL (the reader's control endpoint: "hello" with role "stage" on a DEALER gets the job) and,
with --curve, GRIDMILL_CURVE (the key file). It ends with status 0 on SIGTERM.
"""
import math
import os
import signal
import sys

import msgpack
import numpy as np
import zmq

PROG = "confident_stage.py"
VERSION = 1  # protocol version spoken
DTYPES = {"u8": "<u1", "u16": "<u2", "i16": "<i2", "u32": "<u4", "i32": "<i4", "f32": "<f4", "f64": "<f8"}
POLL_MS = 1000  # how often the stage looks up from its sockets (signals, a vanished parent)


class Stop(Exception):
    """Raised by the signal handler: end cleanly."""


def fail(msg, code=1):
    """Prints one error line and exits."""
    print(f"{PROG}: {msg}", file=sys.stderr)
    sys.exit(code)


def log(msg):
    """Prints one line on stderr."""
    print(f"{PROG} [{os.getpid()}]: {msg}", file=sys.stderr, flush=True)


def read_keyfile(path):
    """Returns (public, secret) Z85 keys from a `gridmill keygen` key file, or fails naming the file."""
    try:
        with open(path, encoding="latin-1") as f:
            text = f.read(4096)
    except OSError as e:
        fail(f"{path}: cannot read the key file: {e.strerror}")
    keys = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("#") or "=" not in line:
            continue
        name, value = (x.strip() for x in line.split("=", 1))
        if name in ("public-key", "secret-key"):
            keys[name] = value.strip('"')
    if "secret-key" not in keys:
        fail(f"{path}: no secret-key in the key file")
    secret = keys["secret-key"].encode()
    try:
        public = zmq.curve_public(secret)
    except (zmq.ZMQError, ValueError) as e:
        fail(f"{path}: secret-key is not a CURVE key ({e})")
    if "public-key" in keys and keys["public-key"].encode() != public:
        fail(f"{path}: its public-key does not belong to its secret-key")
    return public, secret


def new_socket(ctx, kind, endpoint, curve, hwm=0):
    """Returns a socket of 'kind' connected to 'endpoint' (with high-water mark 'hwm' when not 0), a CURVE client
    with the key file's pair if given."""
    sock = ctx.socket(kind)
    sock.linger = 0
    if hwm:
        sock.sndhwm = sock.rcvhwm = hwm
    if curve:
        sock.curve_publickey, sock.curve_secretkey = curve
        sock.curve_serverkey = curve[0]
    sock.connect(endpoint)
    return sock


def unpack_header(frame):
    """Returns the header map of a frame, or None when it is not a version-1 header."""
    try:
        h = msgpack.unpackb(frame, raw=False)
    except (ValueError, TypeError, msgpack.UnpackException):
        return None
    if not isinstance(h, dict) or h.get("v") != VERSION:
        return None
    return h


class Job:
    """What the stage needs of a job: its id, block plan and the class and probability outputs."""

    def __init__(self, header):
        for key in ("id", "xsize", "ysize", "bw", "bh"):
            if not isinstance(header[key], int) or header[key] < (0 if key == "id" else 1):
                raise ValueError(f"{key} is {header[key]!r}")
        self.id = header["id"]
        self.mode = header.get("mode")
        self.xsize, self.ysize = header["xsize"], header["ysize"]
        self.bw, self.bh = header["bw"], header["bh"]
        self.outputs = header.get("outputs") or []
        for o in self.outputs:
            if o.get("dt") not in DTYPES or not isinstance(o.get("n"), int):
                raise ValueError(f"output {o.get('name')!r} has sample type {o.get('dt')!r} and {o.get('n')!r} bands")
        roles = [o.get("role") for o in self.outputs]
        self.class_i = roles.index("class") if "class" in roles else None
        self.prob_i = roles.index("probability") if "probability" in roles else None
        self.applies = (header.get("kind") == "classification" and self.class_i is not None
                        and self.prob_i is not None)

    def window(self, b):
        """Returns the plan's (x, y, w, h) of block b, or None outside the plan."""
        nbx, nby = math.ceil(self.xsize / self.bw), math.ceil(self.ysize / self.bh)
        if not 0 <= b < nbx * nby:
            return None
        x, y = (b % nbx) * self.bw, (b // nbx) * self.bh
        return x, y, min(self.bw, self.xsize - x), min(self.bh, self.ysize - y)

    def check(self, h, frames):
        """Returns None when a result header and its frames fit the job, else why not."""
        if not all(isinstance(h.get(k), int) for k in ("b", "x", "y", "w", "h")):
            return "the block keys b, x, y, w, h are not all integers"
        if (h.get("x"), h.get("y"), h.get("w"), h.get("h")) != self.window(h.get("b")):
            return f"block {h.get('b')}: window is not the plan's"
        if len(frames) != 1 + len(self.outputs):
            return f"block {h['b']}: {len(frames) - 1} payload frames, the job has {len(self.outputs)} outputs"
        for o, f in zip(self.outputs, frames[1:]):
            want = o["n"] * h["w"] * h["h"] * np.dtype(DTYPES[o["dt"]]).itemsize
            if len(f) != want:
                return f"block {h['b']}: output {o['name']} is {len(f)} bytes, not {want}"
        return None


class Stage:
    """The stream: pull, change results, push; ask the reader for the job when a message names another."""

    def __init__(self, threshold, curve):
        self.threshold = threshold
        self.parent = os.getppid()
        self.ctx = zmq.Context()
        self.control = new_socket(self.ctx, zmq.DEALER, os.environ["GRIDMILL_CONTROL"], curve)
        self.job = None
        self.asked_for = None   # job id a message named when we last asked
        self.changed = self.pixels = self.passed = 0
        self.request_job()
        self.install(self.wait_job())
        # queue little here, so blocks go to idle copies
        self.inp = new_socket(self.ctx, zmq.PULL, os.environ["GRIDMILL_IN"], curve, hwm=1)
        self.out = new_socket(self.ctx, zmq.PUSH, os.environ["GRIDMILL_OUT"], curve, hwm=2)

    def request_job(self):
        self.control.send(msgpack.packb({"v": VERSION, "t": "hello", "role": "stage"}))

    def wait_job(self):
        """Waits for the reader's reply; returns the job message's frames, or fails on an error reply."""
        while not self.control.poll(POLL_MS):
            self.check_parent()
        frames = self.control.recv_multipart()
        h = unpack_header(frames[0])
        if h is None or h.get("t") not in ("job", "error"):
            fail("control: the reader sent a malformed reply")
        if h["t"] == "error":
            fail(f"control: the reader refused: {h.get('msg')}")
        return frames

    def install(self, frames):
        try:
            job = Job(unpack_header(frames[0]))
        except (KeyError, TypeError, ValueError) as e:
            fail(f"control: the reader sent a job this stage cannot read ({type(e).__name__}: {e})")
        if job.applies:
            log(f"job {job.id:016x}: the class becomes nodata where the largest probability is below {self.threshold}")
        elif job.mode == "train":
            log(f"job {job.id:016x}: training; the models go on unchanged")
        else:
            log(f"job {job.id:016x}: no class and probability outputs; its results go on unchanged")
        self.job = job

    def check_parent(self):
        """Ends the stage when whoever started it is gone (we were re-parented)."""
        if os.getppid() != self.parent:
            raise Stop()

    def confident(self, h, frames):
        """Returns the frames of a result with the class set to nodata where max probability < threshold."""
        job = self.job
        co, po = job.outputs[job.class_i], job.outputs[job.prob_i]
        w, hh = h["w"], h["h"]
        cls = np.frombuffer(frames[1 + job.class_i], DTYPES[co["dt"]]).reshape(co["n"], hh, w).copy()
        prob = np.frombuffer(frames[1 + job.prob_i], DTYPES[po["dt"]]).reshape(po["n"], hh, w)
        valid = np.all((prob != np.asarray(po["nodata"]).astype(prob.dtype)) & ~np.isnan(prob), axis=0)
        unsure = valid & (prob.max(axis=0) < self.threshold)
        cls[:, unsure] = np.asarray(co["nodata"]).astype(cls.dtype)
        self.pixels += int(unsure.sum())
        out = list(frames)
        out[1 + job.class_i] = cls.tobytes()
        return out

    def handle(self, frames):
        """Returns the frames to send on for one message received."""
        h = unpack_header(frames[0])
        if h is None or h.get("t") != "result" or not isinstance(h.get("job"), int):
            return frames  # model messages, kinds we do not know: on, byte for byte
        if h["job"] != self.job.id:
            if self.asked_for != h["job"]:
                self.asked_for = h["job"]
                self.request_job()
                self.install(self.wait_job())
            if h["job"] != self.job.id:
                log(f"a result of job {h['job']:016x}, which the reader no longer serves, goes on unchanged")
                return frames
        if not self.job.applies:
            return frames
        why = self.job.check(h, frames)
        if why:
            log(f"passing on a bad result unchanged: {why}")
            return frames
        self.changed += 1
        return self.confident(h, frames)

    def run(self):
        while True:
            if not self.inp.poll(POLL_MS):
                self.check_parent()
                continue
            frames = self.inp.recv_multipart()
            self.out.send_multipart(self.handle(frames))
            self.passed += 1

    def close(self):
        for s in ("control", "inp", "out"):
            if hasattr(self, s):
                getattr(self, s).close(linger=0)
        self.ctx.term()


def on_signal(signum, frame):
    raise Stop()


def main():
    if len(sys.argv) == 2 and sys.argv[1] in ("-h", "--help"):
        print(__doc__.split("\n", 2)[2].strip())
        return 0
    if len(sys.argv) != 2:
        fail("give one THRESHOLD (see --help)", 2)
    try:
        threshold = float(sys.argv[1])
    except ValueError:
        threshold = float("nan")
    if not 0.0 <= threshold <= 1.0:
        fail(f"THRESHOLD \"{sys.argv[1]}\" is not a number from 0 to 1", 2)
    stage = os.environ.get("GRIDMILL_STAGE")
    if stage and stage != "post":
        fail(f"GRIDMILL_STAGE is \"{stage}\": this is a post-stage (give it with --stage)", 2)
    for var in ("GRIDMILL_CONTROL", "GRIDMILL_IN", "GRIDMILL_OUT"):
        if not os.environ.get(var):
            fail(f"{var} is not set: run this stage with 'gridmill predict|run --stage'", 2)
    curve = read_keyfile(os.environ["GRIDMILL_CURVE"]) if os.environ.get("GRIDMILL_CURVE") else None
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    st = None
    try:
        st = Stage(threshold, curve)
        st.run()
    except Stop:
        pass
    finally:
        if st:
            log(f"stopping: {st.changed} results checked, {st.pixels} pixels below the threshold made nodata; "
                f"{st.passed} messages passed on")
            st.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
