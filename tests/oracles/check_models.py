#!/usr/bin/python3
"""check_models.py -- load the models a `gridmill run` saved with python xgboost and check they fit their samples.

Usage: check_models.py DIR [--objective OBJ] [--min-fit F]

For every DIR/models/iter-NNN.json (numbered 001.. without gaps, as many as DIR/samples/iter-*.csv):
  - python xgboost loads it (nthread 1);
  - its feature count is the number of covariate columns of DIR/samples/iter-NNN.csv (the columns after
    "code", or after "target"), and if it names its features, the names are those columns;
  - classification (DIR/classes.csv exists): objective multi:softprob (or --objective) with num_class = the
    number of classes; predicting the rows of its own table, the argmax equals the "code" column on at least
    --min-fit of the rows (default 0.5: 2.5 times chance with 5 classes), which shows the model was trained
    on that table with those codes;
  - regression: objective reg:squarederror (or --objective); the predictions' correlation with the "target"
    column is at least --min-fit.
With --own-best, each model must also fit its own table better than the next iteration's (the last: the
first's), which shows model NNN was trained on table NNN and not another.
Exit 0 with one OK line giving the fit of each model, 1 listing each problem, 2 if the oracle cannot run.
It uses no gridmill code.
"""
import argparse
import csv
import glob
import json
import os
import re
import sys

import numpy as np


def die(msg):
    """Prints an oracle failure (not a gridmill mismatch) and exits 2."""
    print("check_models: %s" % msg, file=sys.stderr)
    sys.exit(2)


def read_table(path):
    """Returns (band names, features float32 [n, nb], label column name, label values) of a samples table."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    head = rows[0]
    label = "code" if "code" in head else "target"
    if label not in head:
        die("%s: no code or target column in %r" % (path, head))
    first = head.index(label) + 1
    feats = np.array([[float(v) for v in r[first:]] for r in rows[1:]], np.float32)
    labels = np.array([float(r[head.index(label)]) for r in rows[1:]])
    return head[first:], feats, label, labels


def main():
    ap = argparse.ArgumentParser(description="check the models of a gridmill run with python xgboost")
    ap.add_argument("dir")
    ap.add_argument("--objective", help="expected objective (default multi:softprob / reg:squarederror)")
    ap.add_argument("--min-fit", type=float, default=0.5,
                    help="least training accuracy (classification) or correlation (regression), default 0.5")
    ap.add_argument("--own-best", action="store_true", help="each model fits its own table best")
    args = ap.parse_args()
    import xgboost as xgb

    def fit_of(booster, table):
        """Returns (what, fit) of a booster on a samples table: accuracy on the codes, or correlation."""
        bands, feats, label, labels = read_table(table)
        pred = booster.predict(xgb.DMatrix(feats, nthread=1))
        if label == "code":
            return "training accuracy", float((np.argmax(pred, axis=1) == labels.astype(np.int64)).mean())
        if len(labels) < 3:
            return "correlation with the targets", float("nan")
        return "correlation with the targets", float(np.corrcoef(pred.astype(np.float64), labels)[0, 1])

    models = sorted(glob.glob(os.path.join(args.dir, "models", "iter-*.json")))
    tables = sorted(glob.glob(os.path.join(args.dir, "samples", "iter-*.csv")))
    if not models:
        die("%s/models: no iter-*.json" % args.dir)
    problems = []
    if [int(re.search(r"(\d+)\.json$", m).group(1)) for m in models] != list(range(1, len(models) + 1)):
        problems.append("models/: not numbered 001..%03d without gaps" % len(models))
    if len(tables) != len(models):
        problems.append("%d models but %d samples tables" % (len(models), len(tables)))
    classes_csv = os.path.join(args.dir, "classes.csv")
    nclass = None
    if os.path.exists(classes_csv):
        with open(classes_csv, newline="", encoding="utf-8") as fh:
            nclass = len(list(csv.reader(fh))) - 1
    objective = args.objective or ("multi:softprob" if nclass else "reg:squarederror")

    fits = []
    for k, path in enumerate(models, start=1):
        name = "models/" + os.path.basename(path)
        try:
            booster = xgb.Booster(params={"nthread": 1}, model_file=path)
        except xgb.core.XGBoostError as e:
            problems.append("%s: python xgboost cannot load it: %s" % (name, str(e).splitlines()[0]))
            continue
        cfg = json.loads(booster.save_config())["learner"]
        got_obj = cfg["objective"]["name"]
        got_nclass = int(cfg["learner_model_param"].get("num_class", "0"))
        nfeature = int(cfg["learner_model_param"]["num_feature"])
        if got_obj != objective:
            problems.append("%s: objective %s, expected %s" % (name, got_obj, objective))
        if nclass and got_nclass != nclass:
            problems.append("%s: num_class %d, classes.csv has %d" % (name, got_nclass, nclass))
        table = os.path.join(args.dir, "samples", "iter-%03d.csv" % k)
        if not os.path.exists(table):
            problems.append("%s: no samples table %s" % (name, os.path.basename(table)))
            continue
        bands, feats, label, labels = read_table(table)
        if nfeature != len(bands):
            problems.append("%s: %d features, the samples table has %d covariate columns"
                            % (name, nfeature, len(bands)))
            continue
        if booster.feature_names is not None and list(booster.feature_names) != bands:
            problems.append("%s: feature names %s, the samples columns are %s" % (name, booster.feature_names, bands))
        pred = booster.predict(xgb.DMatrix(feats[:1], nthread=1))
        if label == "code" and (pred.ndim != 2 or pred.shape[1] != (nclass or pred.shape[1])):
            problems.append("%s: predictions of shape %s, expected [n, %s]" % (name, pred.shape, nclass))
            continue
        what, fit = fit_of(booster, table)
        fits.append(fit)
        if not fit >= args.min_fit:
            problems.append("%s: %s on its own samples %.3f, below %.2f" % (name, what, fit, args.min_fit))
        if args.own_best and len(tables) > 1:
            other = os.path.join(args.dir, "samples", "iter-%03d.csv" % (k % len(tables) + 1))
            _, other_fit = fit_of(booster, other)
            if not fit > other_fit:
                problems.append("%s: fits %s (%.3f) no better than its own table (%.3f)"
                                % (name, os.path.basename(other), other_fit, fit))

    summary = "%s: %d models (%s), fit on their own samples %s" % (
        args.dir, len(models), objective, " ".join("%.3f" % f for f in fits))
    if problems:
        print("check_models: FAIL %s" % summary)
        for msg in problems:
            print("  - " + msg)
        sys.exit(1)
    print("check_models: OK %s" % summary)


if __name__ == "__main__":
    main()
