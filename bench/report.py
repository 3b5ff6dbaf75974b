#!/usr/bin/python3
"""report.py -- turn the benchmark's measures into its Markdown table (run_bench.sh calls it).

Usage: report.py --measures DIR --data DIR --out DIR --iterations N --workers W

Reads DIR/<row>.json written by measure.py (and naive.timings.json, machine.txt), the study area's
manifest.json, and the rows' outputs for a few checks; prints Markdown on stdout.
"""
import argparse
import csv
import json
import os

import numpy as np
from osgeo import gdal

gdal.UseExceptions()
MIN_KB = 5 * 1024  # processes smaller than this are the wrappers' shells and tools (sh, sed, uname)
NAMES = {"gridmill": "supervisor", "gridmill-reader": "reader", "gridmill-writer": "writer",
         "gridmill-worker": "worker"}


def load(path):
    """Returns the JSON in path, or None if it does not exist."""
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def mib(kb):
    """Formats kB as MiB (or GiB)."""
    return f"{kb / 1048576:.2f} GiB" if kb >= 1048576 else f"{kb / 1024:.0f} MiB"


def rss_summary(procs):
    """Summarises each process's peak RSS: the command's own process first, then the others grouped by name."""
    procs = [p for p in procs if p["hwm_kb"] >= MIN_KB or p["root"]]
    root = [p for p in procs if p["root"]]
    others = {}
    for p in procs:
        if not p["root"]:
            others.setdefault(p["name"], []).append(p["hwm_kb"])
    parts = []
    for p in root:
        name = NAMES.get(p["name"], p["name"])
        parts.append(f"{name}{' (main)' if p['name'] in others else ''} {mib(p['hwm_kb'])}")
    for name, kbs in others.items():
        label = NAMES.get(name, name)
        if len(kbs) == 1:
            parts.append(f"{label} {mib(kbs[0])}")
        else:
            parts.append(f"{label} ×{len(kbs)} {mib(min(kbs))}–{mib(max(kbs))}" if min(kbs) * 1.05 < max(kbs)
                         else f"{label} ×{len(kbs)} {mib(max(kbs))} each")
    return "; ".join(parts)


def big(x):
    """Formats a rate: 1.23 G, 45.6 M, 789 k."""
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if x >= div:
            return f"{x / div:.3g} {unit}"
    return f"{x:.3g}"


def class_map(out, row, as_truth):
    """Returns a row's class.tif as true-class codes (255 = nodata), or None. as_truth maps via classes.csv."""
    path = os.path.join(out, row, "class.tif")
    if not os.path.exists(path):
        return None
    cls = gdal.Open(path).ReadAsArray()
    if not as_truth:
        return cls
    lut = np.full(256, 255, dtype=np.uint8)
    with open(os.path.join(out, row, "classes.csv")) as f:
        for r in csv.DictReader(f):
            lut[int(r["code"])] = int(r["class"].lstrip("c")) - 1
    return lut[cls]


def agreement(a, b):
    """Returns the share of pixels valid in both where a and b agree."""
    valid = (a != 255) & (b != 255)
    return float((a[valid] == b[valid]).mean()) if valid.any() else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--measures", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--iterations", type=int, required=True)
    ap.add_argument("--workers", type=int, required=True)
    a = ap.parse_args()
    man = load(os.path.join(a.data, "manifest.json"))
    n, iters, w = man["size"], a.iterations, a.workers
    pixels = n * n
    trees = man["forest_params"]["num_parallel_tree"]
    nclass = man["classes_present"]
    m = {row: load(os.path.join(a.measures, f"{row}.json"))
         for row in ("io_run", "io_predict", "gm_run", "gm_predict", "naive", "xgb", "terra")}
    timings = load(os.path.join(a.measures, "naive.timings.json"))

    # (b) may have run only K of the N iterations: its iterations' time is scaled to N, the rest kept.
    naive_note = ""
    if m["naive"] and timings and timings["iterations_run"] < timings["iterations"]:
        k = timings["iterations_run"]
        per_iter = sum(timings[p] for p in ("sample_s", "extract_s", "train_s", "predict_s"))
        measured = m["naive"]["wall_s"]
        m["naive"]["wall_s"] = measured + per_iter * (timings["iterations"] / k - 1)
        naive_note = f" — **extrapolated** from {k} of {timings['iterations']} iterations (measured {measured:.1f} s)"

    rows = [
        ("gm_run", f"gridmill run: full job, N = {iters} (one tree each), {w} workers", iters, "io_run"),
        ("gm_predict", f"gridmill predict: {trees}-tree forest, {w} workers", trees, "io_predict"),
        ("io_run", "(a) I/O floor: every covariate block read once, the full job's outputs written", 0, "io_run"),
        ("io_predict", "(a′) I/O floor with predict's outputs (class, probability)", 0, "io_predict"),
        ("naive", f"(b) naive Python: sklearn tree per iteration, Pool({w}), 1000-row blocks, N = {iters}"
         + naive_note, iters, "io_run"),
        ("xgb", f"(c1) Python xgboost inplace_predict: {trees}-tree forest, {w} threads", trees, "io_predict"),
        ("terra", f"(c2) R terra::predict + ranger: {trees} trees, cores = {w}", trees, "io_predict"),
    ]
    naive_rate = iters * pixels / m["naive"]["wall_s"] if m["naive"] else None

    print(f"# gridmill benchmark: {n}×{n} pixels, 8 float32 covariates, {man['polygon_count']} polygons, "
          f"{nclass} classes\n")
    with open(os.path.join(a.measures, "machine.txt")) as f:
        machine = dict(line.rstrip("\n").split(": ", 1) for line in f if ": " in line)
    print(f"{machine['date']}; {machine['cpu']} ({machine['ram']}); load average at start {machine['load']}; "
          f"Linux {machine['kernel']}; GDAL {machine['gdal']}; Python {machine['python']}"
          + (f"; R {machine['r']}" if "r" in machine else "") + ".\n")
    print("| run | wall s | pixel×models/s | peak RSS per process | CPU % | × (a) | vs (b) |")
    print("|---|---:|---:|---|---:|---:|---:|")
    for row, label, models, floor in rows:
        d = m[row]
        if d is None:
            continue
        wall = d["wall_s"]
        rate = f"{big(models * pixels / wall)}" if models else f"— ({big(pixels / wall)} px/s)"
        x_floor = f"{wall / m[floor]['wall_s']:.2f}" if m[floor] else "—"
        vs_naive = f"{models * pixels / wall / naive_rate:.1f}× faster" if models and naive_rate else "—"
        if row == "naive":
            vs_naive = "1"
        walls = d.get("walls", [])
        spread = f" ({min(walls):.1f}–{max(walls):.1f})" if len(walls) > 1 else ""
        print(f"| {label} | {wall:.1f}{spread} | {rate} | {rss_summary(d['procs'])} | {d['cpu_pct']:.0f} | {x_floor} "
              f"| {vs_naive} |")

    print(f"""
- Pixels: all {pixels:,} of the grid ({man['valid_pixels']:,} valid, the rest nodata). A model is one tree: the full
  job applies N = {iters} one-tree models (XGBoost multi:softprob, 1 round, depth 6: {nclass} class trees each; the
  naive loop an sklearn DecisionTreeClassifier(max_depth=6)), the predict rows one forest of {trees} trees
  (XGBoost: num_parallel_tree={trees}, 1 round, depth 6, eta 1, subsample 0.632, colsample_bynode 0.5, i.e.
  {trees * nclass} class trees; ranger: num.trees={trees}, max.depth=6, probability forest, same {len(open(man['forest_samples']).readlines()) - 1:,} training pixels).
- wall: the command from start to exit (gridmill's includes sampling and training); for the floors and gridmill's
  rows the best of {len(m['io_run'].get('walls', [1]))} interleaved rounds, the range of the rounds in brackets (a virtual machine's
  first touch of fresh memory can add seconds to whichever row meets it). CPU %: user + system time of
  every process of the run over the wall time (100 % = one core busy). Peak RSS: VmHWM of each process, sampled
  every 50 ms from /proc (one-process rows: /usr/bin/time -v's maximum resident set size).
- × (a): wall time over the I/O floor's with the same outputs ((a) for the full job and (b), (a′) for the predict
  rows). vs (b): pixel×models per second over the naive loop's.""")

    if timings:
        k = timings["iterations_run"]
        print(f"- (b)'s phases per iteration: sample {timings['sample_s'] / k:.2f} s, extract "
              f"{timings['extract_s'] / k:.2f} s, train {timings['train_s'] / k:.2f} s, predict and write "
              f"{timings['predict_s'] / k:.2f} s; then the summaries over the {k} maps {timings['summarise_s']:.1f} s.")

    # Checks: the same forest gives the same classes; the full job and the naive loop map the same landscape.
    checks = []
    gm_pred, xgb_pred = class_map(a.out, "gm_predict", False), class_map(a.out, "xgb", False)
    if gm_pred is not None and xgb_pred is not None:
        checks.append(f"gridmill predict and (c1) give the same class on {agreement(gm_pred, xgb_pred):.4%} of pixels")
    terra_pred = class_map(a.out, "terra", False)
    if gm_pred is not None and terra_pred is not None:
        checks.append(f"(c2)'s ranger forest agrees with the XGBoost forest on {agreement(gm_pred, terra_pred):.1%}")
    truth = gdal.Open(os.path.join(a.data, "truth.tif")).ReadAsArray()
    for row, name in (("gm_run", "the full job's"), ("naive", "(b)'s")):
        c = class_map(a.out, row, True)
        if c is not None:
            checks.append(f"{name} most probable class matches the true class on {agreement(c, truth):.1%}")
    if checks:
        print("- Checks: " + "; ".join(checks) + ".")


if __name__ == "__main__":
    main()
