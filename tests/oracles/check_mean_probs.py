#!/usr/bin/python3
"""check_mean_probs.py -- the oracle of `gridmill run --summary probabilities`: rdsmart's type = "prob".

Usage: check_mean_probs.py DIR --covariates F [F ...] [--nprob N]

Predicts every valid pixel of the covariates with each of DIR/models/iter-*.json (python xgboost,
inplace_predict on float32 rows, nthread 1: each model's class probabilities), sums them model after model in
float64 and divides by the model count (as float32), and compares with what DIR holds:
  probability.tif   the mean probabilities, within 1e-6
  class.tif         the first class of largest mean (pixels where the two largest are within 1e-6 are skipped)
  entropy.tif       -sum p log2 p over p > 0, within 1e-5
  confusion.tif     1 - (p1 - p2), within 1e-5
  nprob_class.tif, nprob_probability.tif (with --nprob N): ranks by mean (ties within 1e-6 skipped), the means
Exit 0 with one OK line, 1 listing what differs. It uses no gridmill code.
"""
import argparse
import glob
import os
import sys

import numpy as np
import xgboost as xgb
from osgeo import gdal

gdal.UseExceptions()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--covariates", nargs="+", required=True)
    ap.add_argument("--nprob", type=int, default=0)
    a = ap.parse_args()
    bands = []
    for path in a.covariates:
        ds = gdal.Open(path)
        for b in range(1, ds.RasterCount + 1):
            band = ds.GetRasterBand(b)
            arr = band.ReadAsArray().astype(np.float32)
            nd = band.GetNoDataValue()
            if nd is not None:
                arr[arr == np.float32(nd)] = np.nan
            bands.append(arr)
    h, w = bands[0].shape
    x = np.stack([b.reshape(-1) for b in bands], axis=1)
    valid = ~np.isnan(x).any(axis=1)
    rows = np.ascontiguousarray(x[valid])
    models = sorted(glob.glob(os.path.join(a.dir, "models", "iter-*.json")))
    if not models:
        print(f"{a.dir}/models: no iter-*.json")
        return 1
    total = None
    for m in models:
        bst = xgb.Booster(model_file=m)
        bst.set_param({"nthread": 1})
        p = np.asarray(bst.inplace_predict(rows), np.float32)
        if p.ndim == 1:  # binary: p of class 1
            p = np.stack([np.float32(1) - p, p], axis=1)
        total = p.astype(np.float64) if total is None else total + p.astype(np.float64)
    mean = (total / len(models)).astype(np.float32)
    nc = mean.shape[1]
    problems = []

    def grid(name):
        ds = gdal.Open(os.path.join(a.dir, name))
        return ds.ReadAsArray().reshape(ds.RasterCount, -1)[:, valid].T

    prob = grid("probability.tif")
    if prob.shape != mean.shape or not np.allclose(prob, mean, rtol=0, atol=1e-6):
        bad = np.abs(prob - mean).max(axis=1) > 1e-6 if prob.shape == mean.shape else np.ones(len(mean), bool)
        problems.append(f"probability.tif: {int(bad.sum())} of {len(mean)} pixels are not the models' mean "
                        f"probabilities (largest difference {np.abs(prob - mean).max():.3g})")
    srt = np.sort(mean, axis=1)
    clear = (srt[:, -1] - srt[:, -2]) > 1e-6
    cls = grid("class.tif")[:, 0]
    want = np.argmax(mean, axis=1)
    if (cls[clear] != want[clear]).any():
        problems.append(f"class.tif: {int((cls[clear] != want[clear]).sum())} pixels not the class of largest mean")
    ent = grid("entropy.tif")[:, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        m64 = mean.astype(np.float64)
        exp_ent = -np.where(m64 > 0, m64 * np.log2(np.where(m64 > 0, m64, 1)), 0).sum(axis=1)
    if not np.allclose(ent, exp_ent, rtol=0, atol=1e-5):
        problems.append(f"entropy.tif: largest difference {np.abs(ent - exp_ent).max():.3g}")
    conf = grid("confusion.tif")[:, 0]
    exp_conf = 1 - (srt[:, -1].astype(np.float64) - srt[:, -2])
    if not np.allclose(conf, exp_conf, rtol=0, atol=1e-5):
        problems.append(f"confusion.tif: largest difference {np.abs(conf - exp_conf).max():.3g}")
    if a.nprob:
        nc_got, np_got = grid("nprob_class.tif"), grid("nprob_probability.tif")
        order = np.argsort(-mean, axis=1, kind="stable")[:, :a.nprob]
        gaps = -np.diff(np.sort(mean, axis=1)[:, ::-1][:, :a.nprob + 1], axis=1).min(axis=1) > 1e-6
        if (nc_got[gaps] != order[gaps]).any():
            problems.append(f"nprob_class.tif: {int((nc_got[gaps] != order[gaps]).any(axis=1).sum())} pixels ranked "
                            "otherwise than by mean probability")
        if not np.allclose(np_got, np.take_along_axis(mean, nc_got.astype(np.int64), axis=1), rtol=0, atol=1e-6):
            problems.append("nprob_probability.tif: not the means of the ranked classes")
    if problems:
        print("\n".join(problems))
        return 1
    print(f"mean probabilities: {len(models)} models, {len(mean)} pixels, {nc} classes; class, entropy, confusion"
          f"{', nprob' if a.nprob else ''} follow from them ({int((~clear).sum())} near-ties skipped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
