"""gridmill_progress -- the supervisor's view of a run: progress line, per-stage timings, verdict, run.json.

Every stage keeps a small JSON file (its --stats option) with the seconds it spent busy, blocked on output
and waiting for input, and its counts; the reader's also holds the run's progress. The supervisor reads
them twice a second for the progress line and the utilisation timeline, and once at the end for the table,
the verdict and DIR/run.json.
"""

import concurrent.futures
import csv
import datetime
import hashlib
import json
import os
import subprocess
import sys
import time


def read_stats(path):
    """Returns the stats a stage last wrote, or None."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


class Progress:
    """The live progress line: on a terminal a line rewritten in place; elsewhere GDAL's 0...10...20...100."""

    def __init__(self, quiet, stream=sys.stdout):
        self.quiet = quiet
        self.stream = stream
        self.tty = stream.isatty()
        self.printed_ticks = -1
        self.t0 = time.monotonic()
        self.last_line = ""
        self.pixels_at = []  # (time, pixels done) samples for the rate
        self.done = False
        self.mid_line = False  # ticks written since the last end of line

    @staticmethod
    def fraction(r):
        """Overall fraction done from the reader's stats: training counts as the first 30 % of a full job."""
        if not r:
            return 0.0, "starting"
        mt, md = r.get("models_total", 0), r.get("models_done", 0)
        bt, bd = r.get("blocks_total", 0), r.get("blocks_done", 0)
        if r.get("phase") == "training":
            return (0.3 * md / mt if mt else 0.0), f"training {md}/{mt}"
        base = 0.3 if mt else 0.0
        f = base + (1 - base) * (bd / bt if bt else 0.0)
        return f, f"predicting {bd}/{bt} blocks"

    def clear(self):
        """Makes room for a log line: on a terminal the live line is erased (the next update draws it again);
        elsewhere a line of ticks under way is ended, and the ticks go on on the next line."""
        if self.quiet:
            return
        if self.tty and self.last_line:
            self.stream.write("\r" + " " * len(self.last_line) + "\r")
            self.stream.flush()
            self.last_line = ""
        elif not self.tty and self.mid_line:
            self.stream.write("\n")
            self.stream.flush()
            self.mid_line = False

    def update(self, r, final=False):
        if self.quiet or self.done:
            return
        frac, phase = self.fraction(r)
        if final:
            frac = 1.0
        now = time.monotonic()
        if self.tty:
            pixels = 0
            if r and r.get("blocks_total"):
                pixels = r.get("pixels_total", 0) * r.get("blocks_done", 0) / r["blocks_total"]
            self.pixels_at.append((now, pixels))
            self.pixels_at = self.pixels_at[-10:]
            (t_a, p_a), (t_b, p_b) = self.pixels_at[0], self.pixels_at[-1]
            rate = (p_b - p_a) / (t_b - t_a) if t_b > t_a else 0.0
            eta = (now - self.t0) * (1 - frac) / frac if frac > 0.02 and not final else 0.0
            line = f"{phase}  {frac * 100:5.1f} %  {rate / 1e6:7.2f} Mpx/s  ETA {eta:5.0f} s"
            if line != self.last_line:
                self.stream.write("\r" + line.ljust(len(self.last_line)))
                self.stream.flush()
                self.last_line = line
            if final:
                self.stream.write("\n")
                self.done = True
            return
        ticks = int(frac * 40 + 1e-9)  # GDAL's style: a mark every 2.5 %, a number every 10 %
        while self.printed_ticks < ticks:
            self.printed_ticks += 1
            t = self.printed_ticks
            self.stream.write(str(t * 10 // 4) if t % 4 == 0 else ".")
            self.mid_line = True
        if final:
            self.stream.write(" - done.\n")
            self.done = True
            self.mid_line = False
        self.stream.flush()


class Timeline:
    """Utilisation of every stage over time, from the cumulative times in their stats files."""

    def __init__(self):
        self.t0 = time.monotonic()
        self.prev = {}
        self.samples = []

    def sample(self, stats_by_name):
        t = round(time.monotonic() - self.t0, 2)
        for name, s in stats_by_name.items():
            if not s:
                continue
            cur = (s.get("busy_s", 0), s.get("blocked_s", 0), s.get("wait_s", 0))
            old = self.prev.get(name, (0, 0, 0))
            d = [max(0.0, c - o) for c, o in zip(cur, old)]
            total = sum(d)
            if total > 0:
                self.samples.append({"t": t, "stage": name, "busy": round(d[0] / total, 3),
                                     "blocked": round(d[1] / total, 3), "wait": round(d[2] / total, 3)})
            self.prev[name] = cur


def stage_table(stats_by_name):
    """Rows name, wall, busy %, blocked %, waiting % for the stages that reported."""
    rows = []
    for name, s in stats_by_name.items():
        if not s:
            continue
        wall = max(s.get("wall_s", 0.0), 1e-9)
        rows.append({"name": name, "pid": s.get("pid"), "wall_s": round(wall, 3),
                     "busy_s": round(s.get("busy_s", 0.0), 3), "blocked_s": round(s.get("blocked_s", 0.0), 3),
                     "wait_s": round(s.get("wait_s", 0.0), 3),
                     "busy_pct": round(100 * s.get("busy_s", 0.0) / wall, 1),
                     "blocked_pct": round(100 * s.get("blocked_s", 0.0) / wall, 1),
                     "wait_pct": round(100 * s.get("wait_s", 0.0) / wall, 1),
                     "counts": {k: v for k, v in s.items()
                                if k not in ("stage", "pid", "wall_s", "busy_s", "wait_s", "blocked_s")}})
    return rows


def verdict(rows):
    """Says in plain words what bounds the run, from the stages' busy shares."""
    def mean(prefix, key="busy_pct"):
        v = [r[key] for r in rows if r["name"].startswith(prefix)]
        return sum(v) / len(v) if v else 0.0
    workers, reader, writer = mean("worker"), mean("reader"), mean("writer")
    head = f"workers {workers:.0f} % busy, reader {reader:.0f} %, writer {writer:.0f} %"
    if workers >= 75 and workers >= reader and workers >= writer:
        return head + ": compute bound - add workers (on this machine or others)"
    if reader >= 75 and reader >= writer:
        return head + ": read bound - faster storage, or more reader threads (--io-threads)"
    if writer >= 75:
        return head + ": write bound - faster storage, or fewer or uncompressed outputs"
    if mean("worker", "blocked_pct") >= 30:
        return head + ": workers wait on the writer - it cannot take results fast enough"
    return head + ": no stage saturated - the job is small, or stages wait on each other (latency bound)"


def print_table(rows, verdict_text, stream=sys.stderr):
    stream.write(f"{'stage':<12} {'wall s':>8} {'busy':>7} {'blocked':>8} {'waiting':>8}\n")
    for r in rows:
        stream.write(f"{r['name']:<12} {r['wall_s']:>8.1f} {r['busy_pct']:>6.0f}% {r['blocked_pct']:>7.0f}% "
                     f"{r['wait_pct']:>7.0f}%\n")
    stream.write(f"verdict: {verdict_text}\n")


def versions(bindir):
    """Versions of gridmill and its libraries, from gridmill-reader --version."""
    try:
        out = subprocess.run([os.path.join(bindir, "gridmill-reader"), "--version"], capture_output=True, text=True,
                             timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    v = {}
    parts = out.replace("(", ",").replace(")", ",").split(",")
    if parts and parts[0].split():
        v["gridmill"] = parts[0].split()[-1]
    for p in parts[1:]:
        w = p.split()
        if len(w) >= 2:
            v[" ".join(w[:-1]).lower()] = w[-1]
    return v


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def hash_outputs(out_dir):
    """Returns the outputs of DIR (its .tif files, then models/ and samples/) as dicts file/bytes/sha256."""
    files = [name for name in sorted(os.listdir(out_dir))
             if name.endswith(".tif") and os.path.isfile(os.path.join(out_dir, name))]
    for sub in ("models", "samples"):
        d = os.path.join(out_dir, sub)
        if os.path.isdir(d):
            files += [f"{sub}/{name}" for name in sorted(os.listdir(d))
                      if os.path.isfile(os.path.join(d, name)) and not name.endswith(".part")]
    paths = [os.path.join(out_dir, f) for f in files]
    # hashlib lets go of the interpreter while it hashes: the files are hashed side by side
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        sums = list(pool.map(sha256, paths))
    return [{"file": f, "bytes": os.path.getsize(p), "sha256": h} for f, p, h in zip(files, paths, sums)]


def not_drawn(out_dir):
    """The sample points not drawn, from DIR/samples/not-drawn-*.csv (the reader writes one for every
    iteration that drew fewer points than wanted in some polygon): {"points": total, "polygons": [{iteration,
    polygon, wanted, drawn}, ...]}, or None for a run without samples."""
    d = os.path.join(out_dir, "samples")
    if not os.path.isdir(d):
        return None
    rows = []
    for name in sorted(os.listdir(d)):
        if not (name.startswith("not-drawn-") and name.endswith(".csv")):
            continue
        with open(os.path.join(d, name), newline="") as f:
            for r in csv.DictReader(f):
                rows.append({"iteration": int(r["iteration"]), "polygon": r["polygon"], "wanted": int(r["wanted"]),
                             "drawn": int(r["drawn"])})
    return {"points": sum(r["wanted"] - r["drawn"] for r in rows), "polygons": rows}


def write_run_json(out_dir, argv, params, started, rows, timeline, verdict_text, found, rc, outputs=None):
    """Writes DIR/run.json: parameters, versions ('found', from versions()), per-stage timings, verdict, and the
    outputs with checksums ('outputs' from hash_outputs; None leaves them out, for a first writing before they
    are hashed)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    doc = {"gridmill": found.get("gridmill", ""), "command": argv,
           "started": started.strftime("%Y-%m-%dT%H:%M:%SZ"), "finished": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
           "wall_s": round((now - started).total_seconds(), 3), "exit_status": rc,
           "versions": found, "parameters": params, "stages": rows, "timeline": timeline,
           "verdict": verdict_text}
    lost = not_drawn(out_dir)
    if lost is not None:
        doc["points_not_drawn"] = lost
    if outputs is not None:
        doc["outputs"] = outputs
    tmp = os.path.join(out_dir, "run.json.part")
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1)
    os.replace(tmp, os.path.join(out_dir, "run.json"))
