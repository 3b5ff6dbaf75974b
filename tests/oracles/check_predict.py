#!/usr/bin/python3
"""check_predict.py -- independent oracle for `gridmill predict`: recompute the outputs and compare.

Usage: check_predict.py --covariates F [F ...] --model M --out DIR [--probabilities] [--max-report N]

Reads the covariates with GDAL in their native types, builds the nodata mask itself (a pixel is nodata
if any band equals that band's nodata value, compared in the band's type, or is NaN), predicts the valid
pixels with python xgboost (nthread 1) and compares the files gridmill wrote in DIR:
  regression      prediction.tif   1 band float32, nodata -FLT_MAX, values bitwise equal
  classification  class.tif        1 band uint8 (uint16 above 255 classes), nodata 255 (65535)
                  probability.tif  (--probabilities) nclass bands float32, nodata -FLT_MAX, within 1e-6
Every output must have the first covariate's size, geotransform and CRS, and no other .tif may be in DIR.
Exit 0 with one OK line, 1 with a summary of each mismatch, 2 if the oracle itself cannot run.
It uses no gridmill code.
"""
import argparse
import glob
import json
import os
import sys

import numpy as np
from osgeo import gdal, osr

gdal.UseExceptions()

FLT_NODATA = float(-np.finfo(np.float32).max)  # -3.4028234663852886e+38
PROB_TOL = 1e-6
CLASS_OBJECTIVES = ("multi:softprob", "multi:softmax", "binary:logistic")


def die(msg):
    """Prints an oracle failure (not a gridmill mismatch) and exits 2."""
    print("check_predict: %s" % msg, file=sys.stderr)
    sys.exit(2)


def band_nodata_mask(arr, nodata):
    """Returns True where 'arr' (native type) equals the nodata value in that type, or is NaN."""
    mask = np.zeros(arr.shape, bool)
    if np.issubdtype(arr.dtype, np.floating):
        mask |= np.isnan(arr)
    if nodata is None or np.isnan(nodata):
        return mask
    if np.issubdtype(arr.dtype, np.integer):
        info = np.iinfo(arr.dtype)
        if nodata != np.floor(nodata) or not info.min <= nodata <= info.max:
            return mask  # the nodata value is not a value of this type: no pixel has it
        return mask | (arr == arr.dtype.type(int(nodata)))
    as_type = arr.dtype.type(nodata)
    if float(as_type) != nodata:
        return mask  # not representable in this float type
    return mask | (arr == as_type)


def read_covariates(paths):
    """Returns (features float32 [npix, nbands], valid bool [h, w], grid dict of the first file)."""
    planes, masks, grid = [], [], None
    for path in paths:
        if not os.path.exists(path):
            die("%s: no such file" % path)
        ds = gdal.Open(path)
        this = {"size": (ds.RasterXSize, ds.RasterYSize), "gt": ds.GetGeoTransform(),
                "wkt": ds.GetProjection(), "path": path}
        if grid is None:
            grid = this
        elif this["size"] != grid["size"]:
            die("%s: size %s differs from %s %s" % (path, this["size"], grid["path"], grid["size"]))
        for i in range(1, ds.RasterCount + 1):
            band = ds.GetRasterBand(i)
            arr = band.ReadAsArray()
            masks.append(band_nodata_mask(arr, band.GetNoDataValue()))
            planes.append(arr.astype(np.float32))
        ds = None
    invalid = np.logical_or.reduce(masks)
    valid = ~invalid
    feats = np.stack([p[valid] for p in planes], axis=-1).astype(np.float32)
    return feats, valid, grid


def load_model(path):
    """Returns (booster, objective name, nclass, nfeature)."""
    import xgboost as xgb
    if not os.path.exists(path):
        die("%s: no such file" % path)
    booster = xgb.Booster(params={"nthread": 1}, model_file=path)
    cfg = json.loads(booster.save_config())["learner"]
    objective = cfg["objective"]["name"]
    nclass = int(cfg["learner_model_param"].get("num_class", "0"))
    nfeature = int(cfg["learner_model_param"]["num_feature"])
    return booster, objective, nclass, nfeature


def softmax_f32(margins):
    """Softmax of each row in float32, after subtracting the row maximum."""
    m = margins.astype(np.float32)
    e = np.exp(m - m.max(axis=1, keepdims=True)).astype(np.float32)
    return (e / e.sum(axis=1, keepdims=True, dtype=np.float32)).astype(np.float32)


def expected_outputs(booster, objective, nclass, feats, valid, probabilities):
    """Returns {stem: (numpy dtype, nodata, planes [bands, h, w], compare mode)}."""
    import xgboost as xgb
    dm = xgb.DMatrix(feats, nthread=1)
    h, w = valid.shape
    out = {}

    def plane_set(values, dtype, nodata):
        """Places per-valid-pixel values (npix[, bands]) into full planes filled with nodata."""
        values = values.reshape(values.shape[0], -1)
        planes = np.full((values.shape[1], h, w), nodata, dtype)
        for b in range(values.shape[1]):
            planes[b][valid] = values[:, b]
        return planes

    if objective not in CLASS_OBJECTIVES:
        pred = booster.predict(dm).astype(np.float32)
        out["prediction"] = (np.float32, FLT_NODATA, plane_set(pred, np.float32, FLT_NODATA), "bitwise")
        return out

    if objective == "multi:softprob":
        probs = booster.predict(dm).astype(np.float32).reshape(-1, nclass)
        classes = np.argmax(probs, axis=1)
    elif objective == "multi:softmax":
        margins = booster.predict(dm, output_margin=True).astype(np.float32).reshape(-1, nclass)
        classes = np.argmax(margins, axis=1)
        own = booster.predict(dm).astype(np.int64)  # XGBoost's own softmax labels
        if not np.array_equal(own, classes):
            die("argmax of the margins differs from XGBoost's multi:softmax labels at %d pixels"
                % int((own != classes).sum()))
        probs = softmax_f32(margins)
    else:  # binary:logistic
        p = booster.predict(dm).astype(np.float32).reshape(-1)
        classes = (p > np.float32(0.5)).astype(np.int64)
        probs = np.stack([np.float32(1.0) - p, p], axis=1).astype(np.float32)

    if nclass <= 255:
        cls_type, cls_nodata = np.uint8, 255
    else:
        cls_type, cls_nodata = np.uint16, 65535
    out["class"] = (cls_type, cls_nodata, plane_set(classes.astype(cls_type), cls_type, cls_nodata), "exact")
    if probabilities:
        out["probability"] = (np.float32, FLT_NODATA, plane_set(probs, np.float32, FLT_NODATA), "tol")
    return out


class Report:
    """Collects mismatches and prints them."""

    def __init__(self, max_report):
        self.problems = []
        self.max_report = max_report

    def add(self, msg):
        """Records one mismatch line."""
        self.problems.append(msg)

    def pixels(self, what, bad, expected, got, invalid):
        """Records a pixel mismatch: 'bad' [bands, h, w] marks the pixels that differ."""
        n = int(bad.sum())
        if n == 0:
            return
        where = np.argwhere(bad)[: self.max_report]
        shown = ", ".join(
            "(x=%d y=%d band=%d %s: expected %r got %r)" % (
                x, y, b + 1, "nodata" if invalid[y, x] else "valid", expected[b, y, x].item(), got[b, y, x].item())
            for b, y, x in where)
        self.add("%s: %d pixels differ, first: %s" % (what, n, shown))


def same_gt(a, b):
    """Compares two geotransforms, allowing only round-off."""
    return all(abs(x - y) <= 1e-9 * max(1.0, abs(x), abs(y)) for x, y in zip(a, b))


def check_file(rep, path, grid, dtype, nodata, exp, mode, valid):
    """Compares one output file with its expected planes."""
    name = os.path.basename(path)
    if not os.path.exists(path):
        rep.add("%s: missing" % path)
        return
    try:
        ds = gdal.Open(path)
    except RuntimeError as e:
        rep.add("%s: cannot open: %s" % (path, e))
        return
    nbands = exp.shape[0]
    if (ds.RasterXSize, ds.RasterYSize) != grid["size"]:
        rep.add("%s: size %dx%d, expected %dx%d" % (name, ds.RasterXSize, ds.RasterYSize, *grid["size"]))
        return
    if ds.RasterCount != nbands:
        rep.add("%s: %d bands, expected %d" % (name, ds.RasterCount, nbands))
        return
    if not same_gt(ds.GetGeoTransform(), grid["gt"]):
        rep.add("%s: geotransform %s, expected %s" % (name, ds.GetGeoTransform(), grid["gt"]))
    exp_srs, got_srs = osr.SpatialReference(), osr.SpatialReference()
    if grid["wkt"]:
        exp_srs.ImportFromWkt(grid["wkt"])
    if ds.GetProjection():
        got_srs.ImportFromWkt(ds.GetProjection())
    if bool(grid["wkt"]) != bool(ds.GetProjection()) or (grid["wkt"] and not got_srs.IsSame(exp_srs)):
        rep.add("%s: CRS %r, expected %r" % (name, got_srs.GetName(), exp_srs.GetName()))

    invalid = ~valid
    got = np.empty(exp.shape, exp.dtype)
    for b in range(nbands):
        band = ds.GetRasterBand(b + 1)
        tname = gdal.GetDataTypeName(band.DataType)
        arr = band.ReadAsArray()
        if arr.dtype != np.dtype(dtype):
            rep.add("%s band %d: type %s, expected %s" % (name, b + 1, tname, np.dtype(dtype).name))
            return
        got[b] = arr
        nd = band.GetNoDataValue()
        if nd is None:
            rep.add("%s band %d: no nodata value set, expected %r" % (name, b + 1, nodata))
        elif not (nd == nodata or (np.dtype(dtype) == np.float32 and np.float32(nd) == np.float32(nodata)
                                   and abs(nd - nodata) <= 1e-12 * abs(nodata))):
            rep.add("%s band %d: nodata value %r, expected %r" % (name, b + 1, nd, nodata))
    ds = None

    inv3 = np.broadcast_to(invalid, exp.shape)
    nd_typed = np.dtype(dtype).type(nodata)
    got_is_nd = got == nd_typed
    rep.pixels(name + ": nodata where a covariate is nodata", inv3 & ~got_is_nd, exp, got, invalid)
    rep.pixels(name + ": nodata where every covariate is valid", ~inv3 & got_is_nd, exp, got, invalid)
    vmask = ~inv3 & ~got_is_nd
    if mode == "bitwise":
        bad = vmask & (exp.view(np.uint32) != got.view(np.uint32))
        rep.pixels(name + ": values not bitwise equal", bad, exp, got, invalid)
    elif mode == "exact":
        rep.pixels(name + ": values differ", vmask & (exp != got), exp, got, invalid)
    else:
        diff = np.abs(exp.astype(np.float64) - got.astype(np.float64))
        bad = vmask & ~(diff <= PROB_TOL)  # catches NaN too
        if bad.any():
            rep.add("%s: largest difference %.3g" % (name, float(diff[bad].max())))
        rep.pixels(name + ": values differ by more than %g" % PROB_TOL, bad, exp, got, invalid)


def main():
    ap = argparse.ArgumentParser(description="check gridmill predict outputs against python xgboost")
    ap.add_argument("--covariates", nargs="+", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--probabilities", action="store_true")
    ap.add_argument("--max-report", type=int, default=5, help="pixels shown per mismatch")
    args = ap.parse_args()

    feats, valid, grid = read_covariates(args.covariates)
    booster, objective, nclass, nfeature = load_model(args.model)
    if nfeature != feats.shape[1]:
        die("%s: model has %d features, covariates have %d bands" % (args.model, nfeature, feats.shape[1]))
    if objective == "binary:logistic":
        nclass = 2
    if objective in ("multi:softprob", "multi:softmax") and nclass < 2:
        die("%s: %s model with %d classes" % (args.model, objective, nclass))
    expected = expected_outputs(booster, objective, nclass, feats, valid, args.probabilities)

    rep = Report(args.max_report)
    if not os.path.isdir(args.out):
        rep.add("%s: output directory missing" % args.out)
    else:
        extra = sorted(set(os.path.basename(p) for p in glob.glob(os.path.join(args.out, "*.tif")))
                       - set(stem + ".tif" for stem in expected))
        if extra:
            rep.add("%s: unexpected output files: %s" % (args.out, ", ".join(extra)))
        for stem, (dtype, nodata, exp, mode) in expected.items():
            check_file(rep, os.path.join(args.out, stem + ".tif"), grid, dtype, nodata, exp, mode, valid)

    h, w = valid.shape
    what = "%s (%s%s) on %dx%d, %d valid pixels, outputs %s" % (
        os.path.basename(args.model), objective, ", %d classes" % nclass if nclass else "", w, h,
        int(valid.sum()), ", ".join(s + ".tif" for s in expected))
    if rep.problems:
        print("check_predict: FAIL %s" % what)
        for p in rep.problems:
            print("  - " + p)
        sys.exit(1)
    print("check_predict: OK %s" % what)


if __name__ == "__main__":
    main()
