#!/usr/bin/python3
"""objectives.py -- one small XGBoost model per objective gridmill accepts, and the oracle of their predictions.

Usage: objectives.py make DIR
       objectives.py check --covariates F --model M --out DIR [DIR ...]

make writes into DIR, deterministically: cov.tif (float32, 3 bands, 120 x 90, nodata NaN in a few pixels of
each band, EPSG:32633) and OBJ.json for every objective of OBJECTIVES (':' written '_'), trained with python
xgboost on covariate values (30 rounds of depth 6, the deepest gridmill's AVX-512 walk takes, so that the
transforms see thousands of distinct margins: an exponential one ulp off for 1 margin in 2000 shows; a
base_score other than the default for all but binary:logitraw, which keeps 0.5, whose logit is 0);
binary_logitraw also as .ubj. It prints the model files, one a line.

check predicts the valid pixels of cov.tif with python xgboost (nthread 1, inplace_predict on float32 rows)
and compares the files gridmill wrote in each DIR (one run each, e.g. under each GRIDMILL_EVALUATOR):
  regression objectives    prediction.tif  float32, bitwise equal to XGBoost's predict, -FLT_MAX elsewhere
  binary:logistic, binary:logitraw, binary:hinge
                           class.tif       uint8, 255 elsewhere: logistic p > 0.5 with p XGBoost's value;
                                           logitraw margin > 0 (XGBoost's value is the margin); hinge the value
                           probability.tif 2 bands float32: p1 within 1e-6 of XGBoost's p (logitraw: the
                                           sigmoid of its margin, hinge: its 0 or 1), p0 = 1 - p1
Exit 0 with one OK line, 1 with what differs (each line naming its DIR), 2 if the oracle itself cannot run.
It uses no gridmill code.
"""
import argparse
import os
import sys

import numpy as np
from osgeo import gdal, osr

gdal.UseExceptions()

W, H, NB = 120, 90, 3
FLT_NODATA = np.float32(-np.finfo(np.float32).max)
OBJECTIVES = [
    "binary:logitraw", "binary:hinge", "binary:logistic", "reg:logistic", "reg:squarederror",
    "reg:absoluteerror", "reg:pseudohubererror", "reg:squaredlogerror", "count:poisson", "reg:gamma",
    "reg:tweedie", "survival:cox", "survival:aft",
]
CLASS_OBJECTIVES = ("binary:logistic", "binary:logitraw", "binary:hinge")


def make(out):
    """Writes cov.tif and the models into 'out'."""
    import xgboost as xgb

    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(15)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    bands = [
        np.sin(xx / 17.0) * 40.0 + yy * 0.5,
        (xx - 60.0) * (yy - 45.0) / 30.0,
        rng.normal(0.0, 3.0, (H, W)),
    ]
    bands = [b.astype(np.float32) for b in bands]
    for b in bands:
        b[rng.random((H, W)) < 0.02] = np.nan
    drv = gdal.GetDriverByName("GTiff")
    ds = drv.Create(os.path.join(out, "cov.tif"), W, H, NB, gdal.GDT_Float32)
    ds.SetGeoTransform((500000.0, 30.0, 0.0, 5000000.0, 0.0, -30.0))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    ds.SetProjection(srs.ExportToWkt())
    for i, b in enumerate(bands):
        ds.GetRasterBand(i + 1).WriteArray(b)
        ds.GetRasterBand(i + 1).SetNoDataValue(float("nan"))
    ds = None

    x = np.stack([b.ravel() for b in bands], axis=1)
    x = x[~np.isnan(x).any(axis=1)]
    x = x[rng.permutation(len(x))[:3000]]
    z = 0.05 * x[:, 0] - 0.1 * x[:, 1] + 0.3 * x[:, 2]
    noise = rng.normal(0.0, 0.5, len(x))
    for obj in OBJECTIVES:
        params = {"objective": obj, "max_depth": 6, "eta": 0.3, "nthread": 1, "seed": 1}
        if obj.startswith("binary:"):
            label = (z + noise > 0).astype(np.float32)
        elif obj == "reg:logistic":
            label = 1.0 / (1.0 + np.exp(-(z + noise)))
        elif obj in ("reg:squarederror", "reg:absoluteerror", "reg:pseudohubererror"):
            label = 10.0 * z + noise
        else:  # positive targets
            label = np.exp(0.5 * z + 0.2 * noise)
        if obj != "binary:logitraw":
            params["base_score"] = 0.3 if obj in ("binary:logistic", "reg:logistic", "binary:hinge") else 0.7
        dm = xgb.DMatrix(x, label=label)
        if obj == "survival:aft":
            lower = label.astype(np.float32)
            upper = np.where(rng.random(len(x)) < 0.3, np.inf, lower).astype(np.float32)
            dm = xgb.DMatrix(x)
            dm.set_float_info("label_lower_bound", lower)
            dm.set_float_info("label_upper_bound", upper)
        if obj == "survival:cox":
            label = np.where(rng.random(len(x)) < 0.2, -label, label)
            dm = xgb.DMatrix(x, label=label)
        booster = xgb.train(params, dm, 30)
        name = obj.replace(":", "_")
        booster.save_model(os.path.join(out, name + ".json"))
        print(os.path.join(out, name + ".json"))
        if obj == "binary:logitraw":
            booster.save_model(os.path.join(out, name + ".ubj"))
            print(os.path.join(out, name + ".ubj"))


def read_band(path, band=1):
    """Returns band 'band' of 'path' as an array, and the dataset's band count and data type."""
    ds = gdal.Open(path)
    b = ds.GetRasterBand(band)
    return b.ReadAsArray(), ds.RasterCount, b.DataType


def check(args):
    """Compares gridmill's outputs in each of args.out with python xgboost's. Returns the exit code."""
    import xgboost as xgb

    ds = gdal.Open(args.covariates)
    planes = [ds.GetRasterBand(i + 1).ReadAsArray().astype(np.float32) for i in range(ds.RasterCount)]
    ds = None
    valid = ~np.any([np.isnan(p) for p in planes], axis=0)
    rows = np.ascontiguousarray(np.stack([p[valid] for p in planes], axis=1), dtype=np.float32)
    booster = xgb.Booster(model_file=args.model)
    booster.set_param({"nthread": 1})
    import json

    obj = json.loads(booster.save_config())["learner"]["objective"]["name"]
    pred = booster.inplace_predict(rows).astype(np.float32)
    problems = []
    for out in args.out:
        what = check_dir(out, obj, pred, valid, problems)
        if what is None:
            return 2
    if problems:
        for p in problems:
            print("%s: %s" % (os.path.basename(args.model), p))
        return 1
    print("OK %s: %s, in %d folder%s" % (os.path.basename(args.model), what, len(args.out),
                                        "s" if len(args.out) > 1 else ""))
    return 0


def check_dir(out, obj, pred, valid, problems):
    """Compares the outputs in 'out' with XGBoost's values 'pred' of the 'valid' pixels, appending what differs
    to 'problems' (each naming 'out'). Returns what was checked, or None if the oracle cannot decide."""
    problems_before = len(problems)
    if obj not in CLASS_OBJECTIVES:
        got, nb, dt = read_band(os.path.join(out, "prediction.tif"))
        if nb != 1 or dt != gdal.GDT_Float32:
            problems.append("prediction.tif: %d bands of type %s, 1 float32 expected" % (nb, gdal.GetDataTypeName(dt)))
        else:
            bits_got = got[valid].astype(np.float32).view(np.uint32)
            bits_want = pred.view(np.uint32)
            bad = np.flatnonzero(bits_got != bits_want)
            if len(bad):
                i = bad[0]
                problems.append("prediction.tif: %d of %d pixels differ from XGBoost's (first: %r vs %r)"
                                % (len(bad), len(pred), float(got[valid][i]), float(pred[i])))
            if np.any(got[~valid] != FLT_NODATA):
                problems.append("prediction.tif: nodata pixels hold values")
        what = "%d pixels bitwise equal to XGBoost's %s" % (len(pred), obj)
    else:
        if obj == "binary:logitraw":
            margin = pred
            if np.any((margin > 0) & (margin < 1e-7)):
                die("a margin is within 1e-7 above 0: the class would hang on rounding; change the data")
                return None
            want_class = (margin > 0).astype(np.uint8)
            p1 = (1.0 / (1.0 + np.exp(-margin.astype(np.float64)))).astype(np.float32)
        elif obj == "binary:logistic":
            want_class = (pred > 0.5).astype(np.uint8)
            p1 = pred
        else:
            want_class = pred.astype(np.uint8)
            p1 = pred
        got, nb, dt = read_band(os.path.join(out, "class.tif"))
        if nb != 1 or dt != gdal.GDT_Byte:
            problems.append("class.tif: %d bands of type %s, 1 uint8 expected" % (nb, gdal.GetDataTypeName(dt)))
        bad = np.flatnonzero(got[valid] != want_class)
        if len(bad):
            i = bad[0]
            problems.append("class.tif: %d of %d pixels differ from XGBoost's class (first: %d vs %d, XGBoost's "
                            "value %r)" % (len(bad), len(pred), int(got[valid][i]), int(want_class[i]), float(pred[i])))
        if np.any(got[~valid] != 255):
            problems.append("class.tif: nodata pixels are not 255")
        prob_path = os.path.join(out, "probability.tif")
        if os.path.exists(prob_path):
            g1, nb, _ = read_band(prob_path, 2)
            g0, _, _ = read_band(prob_path, 1)
            d1 = np.abs(g1[valid].astype(np.float64) - p1)
            if nb != 2 or np.any(d1 > 1e-6) or np.any(np.abs(g0[valid] + g1[valid] - 1.0) > 1e-6):
                problems.append("probability.tif: p differs from XGBoost's by up to %g" % float(d1.max()))
        pos = int(want_class.sum())
        what = "%d pixel classes (%d of class 1) equal to XGBoost's %s" % (len(pred), pos, obj)
    for i in range(problems_before, len(problems)):
        problems[i] = "%s: %s" % (out, problems[i])
    return what


def die(msg):
    """Prints an oracle failure and returns 2."""
    print("objectives.py: %s" % msg, file=sys.stderr)
    return 2


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("dir")
    c = sub.add_parser("check")
    c.add_argument("--covariates", required=True)
    c.add_argument("--model", required=True)
    c.add_argument("--out", required=True, nargs="+")
    args = ap.parse_args()
    if args.cmd == "make":
        make(args.dir)
        return 0
    return check(args)


if __name__ == "__main__":
    sys.exit(main())
