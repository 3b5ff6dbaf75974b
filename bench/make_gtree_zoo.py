#!/usr/bin/python3
"""make_gtree_zoo.py -- the model zoo of issue 13, trained by python3-xgboost on synthetic covariates, for
gtree_bench.c: boosting of depth 6, 8 and 10 on 5, 17, 30 and 60 features (multi:softprob, 3 classes, 34
rounds), a random forest of 100 trees of depth 12 on 17 features (5 classes), a regression of depth 8 (17
features, 100 rounds) and the full job's one-round 12-class model of depth 10.

For each model OUTDIR gets NAME.json (the model), NAME.rows.f32 (ROWS rows to predict, row-major float32,
some NaN) and NAME.margins.f32 (python xgboost's inplace_predict(..., predict_type="margin") of those rows,
the oracle the benchmark holds every evaluator to), and zoo.tsv lists them: name, features, rows, model file.
Models already there are kept unless --fresh.

Usage: make_gtree_zoo.py OUTDIR [--rows N] [--train N] [--fresh] [--only NAME,...]
"""
import argparse
import os
import sys

import numpy as np
import xgboost as xgb


def covariates(rng, n, k):
    """Rows of k covariates like terrain layers: different ranges, smooth and skewed, correlated."""
    base = rng.normal(size=(n, 3))
    x = np.empty((n, k), dtype=np.float32)
    for j in range(k):
        mix = np.sin(base[:, j % 3] * (1 + j % 4)) + 0.3 * base[:, (j + 1) % 3] + 0.5 * rng.normal(size=n)
        x[:, j] = (mix * (10 + 40 * (j % 5)) + 100 * j).astype(np.float32)
    return x


def labels(rng, x, classes):
    """A nonlinear rule of many features plus noise: classes (argmax of scores) or a regression target."""
    n, k = x.shape
    z = (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-6)
    scores = np.zeros((n, max(classes, 1)))
    for c in range(scores.shape[1]):
        w = rng.normal(size=k)
        scores[:, c] = np.sin(z @ w) + 0.5 * np.cos(3 * z[:, c % k] * z[:, (c + 1) % k]) + 0.3 * rng.normal(size=n)
    return scores.argmax(axis=1) if classes > 1 else scores[:, 0] * 10.0


ZOO = []
for depth in (6, 8, 10):
    for k in (5, 17, 30, 60):
        ZOO.append((f"boost-d{depth}-f{k}", k, 3, 34,
                    {"objective": "multi:softprob", "num_class": 3, "max_depth": depth, "eta": 0.3}))
ZOO.append(("rf-d12-f17", 17, 5, 1,
            {"objective": "multi:softprob", "num_class": 5, "max_depth": 12, "eta": 1, "num_parallel_tree": 100,
             "subsample": 0.632, "colsample_bynode": 0.5}))
ZOO.append(("reg-d8-f17", 17, 0, 100, {"objective": "reg:squarederror", "max_depth": 8, "eta": 0.1}))
ZOO.append(("job-d10-f17", 17, 12, 1, {"objective": "multi:softprob", "num_class": 12, "max_depth": 10, "eta": 1}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--rows", type=int, default=50000)
    ap.add_argument("--train", type=int, default=20000)
    ap.add_argument("--fresh", action="store_true")
    ap.add_argument("--only", default="")
    a = ap.parse_args()
    os.makedirs(a.outdir, exist_ok=True)
    only = set(a.only.split(",")) if a.only else None
    lines = []
    for i, (name, k, classes, rounds, params) in enumerate(ZOO):
        if only and name not in only:
            continue
        model = os.path.join(a.outdir, name + ".json")
        rows = os.path.join(a.outdir, name + ".rows.f32")
        margins = os.path.join(a.outdir, name + ".margins.f32")
        if a.fresh or not all(os.path.exists(p) for p in (model, rows, margins)):
            rng = np.random.default_rng(1000 + i)
            x = covariates(rng, a.train, k)
            y = labels(rng, x, classes)
            x[rng.random(x.shape) < 0.02] = np.nan  # a few missing covariates, as at nodata edges
            dtrain = xgb.DMatrix(x, label=y, missing=np.nan)
            booster = xgb.train(dict(params, nthread=2, seed=1), dtrain, num_boost_round=rounds)
            booster.save_model(model)
            booster = xgb.Booster(model_file=model)  # predict with what the file holds
            booster.set_param({"nthread": 1})
            xp = covariates(rng, a.rows, k)
            holes = np.flatnonzero(rng.random(a.rows) < 0.002)  # a NaN in 0.2 % of rows: nodata pixels are masked
            xp[holes, rng.integers(0, k, len(holes))] = np.nan
            m = booster.inplace_predict(xp, predict_type="margin", missing=np.nan)
            xp.astype("<f4").tofile(rows)
            np.asarray(m, dtype="<f4").tofile(margins)
            print(f"make_gtree_zoo: {name}: {booster.num_boosted_rounds()} rounds, "
                  f"{len(booster.get_dump())} trees", file=sys.stderr)
        lines.append(f"{name}\t{k}\t{a.rows}\t{model}\n")
    with open(os.path.join(a.outdir, "zoo.tsv"), "w") as f:
        f.writelines(lines)


if __name__ == "__main__":
    main()
