#!/usr/bin/python3
"""check_stages.py -- test data and independent oracle for the shipped custom stages (scripts/stages/).

Usage: check_stages.py make-mask REFERENCE OUT.tif [--shift]
       check_stages.py predict --covariates F [F ...] --model M --mask MASK --threshold T --out DIR
       check_stages.py run --covariates F [F ...] --mask MASK --out DIR --plain DIR [--threshold T]
                           [--max-report N]

make-mask  writes a uint8 mask on REFERENCE's grid (nodata 255): 1 on the upper-left half (x/w + y/h < 1),
           2 on a few pixels there (non-zero: kept), 0 on the lower-right half, 255 (nodata) on a patch inside
           the upper-left half. With --shift the grid's origin moves one pixel east (another grid).
predict    checks `gridmill predict --probabilities` run with gridmill-stage-mask MASK and confident_stage.py T:
           where any covariate is nodata, or the mask is 0 or nodata, class.tif and every band of
           probability.tif are nodata; elsewhere the probabilities equal python xgboost's (nthread 1) on the
           covariates python3-gdal reads, within 1e-6, and the class is the argmax where the largest
           probability is >= T, else nodata (pixels within 1e-6 of T may go either way).
run        checks `gridmill run` with gridmill-stage-mask MASK (and, with --threshold, confident_stage.py T)
           against the same run without the stages (--plain): the models are byte-identical (the training
           messages, and the trained models, went through the stages unchanged); every summary file has the same
           bands; where the mask is 0 or nodata every band is nodata; elsewhere every pixel is the same bytes as
           in the plain run, except that with --threshold class.tif is nodata where the plain run's largest
           class share (probability.tif) is below T.
Exit 0 with one OK line, 1 listing each problem, 2 if the oracle itself cannot run. It uses no gridmill code.
"""
import argparse
import glob
import os
import sys

import numpy as np
from osgeo import gdal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_predict import band_nodata_mask, load_model, read_covariates  # noqa: E402  (the predict oracle's)

gdal.UseExceptions()

FLT_NODATA = float(-np.finfo(np.float32).max)
PROB_TOL = 1e-6
MASK_NODATA = 255


def die(msg):
    """Prints an oracle failure (not a gridmill mismatch) and exits 2."""
    print("check_stages: %s" % msg, file=sys.stderr)
    sys.exit(2)


def make_mask(args):
    """Writes the test mask on the reference raster's grid."""
    ref = gdal.Open(args.reference)
    w, h = ref.RasterXSize, ref.RasterYSize
    gt = list(ref.GetGeoTransform())
    if args.shift:
        gt[0] += gt[1]
    yy, xx = np.mgrid[0:h, 0:w]
    mask = np.where(xx / w + yy / h < 1.0, 1, 0).astype(np.uint8)
    mask[(xx % 17 == 3) & (yy % 13 == 5) & (mask == 1)] = 2
    mask[h // 5: h // 5 + h // 6, w // 8: w // 8 + w // 5] = MASK_NODATA
    ds = gdal.GetDriverByName("GTiff").Create(args.out, w, h, 1, gdal.GDT_Byte)
    ds.SetGeoTransform(gt)
    ds.SetProjection(ref.GetProjection())
    band = ds.GetRasterBand(1)
    band.SetNoDataValue(MASK_NODATA)
    band.WriteArray(mask)
    ds = None
    print("wrote %s: %dx%d, %d pixels kept, %d zero, %d nodata" % (
        args.out, w, h, int((mask == 1).sum() + (mask == 2).sum()), int((mask == 0).sum()),
        int((mask == MASK_NODATA).sum())))


def read_mask(path):
    """Returns True where the mask keeps a pixel: a number other than 0, not the mask's nodata."""
    ds = gdal.Open(path)
    band = ds.GetRasterBand(1)
    arr = band.ReadAsArray()
    return ~band_nodata_mask(arr, band.GetNoDataValue()) & (arr != 0)


def read_planes(path):
    """Returns (bands [n, h, w] in the file's type, nodata of band 1)."""
    if not os.path.exists(path):
        return None, None
    ds = gdal.Open(path)
    arr = ds.ReadAsArray()
    if arr.ndim == 2:
        arr = arr[np.newaxis]
    return arr, ds.GetRasterBand(1).GetNoDataValue()


def pixel_bytes(planes):
    """Returns the bytes of every sample of 'planes' [n, h, w] as an array [n, h, w, sample size]."""
    return np.ascontiguousarray(planes).view(np.uint8).reshape(planes.shape + (-1,))


class Report:
    """Collects problems; prints them or one OK line."""

    def __init__(self, max_report):
        self.problems = []
        self.max_report = max_report

    def pixels(self, what, bad, detail):
        """Records 'what' at the pixels 'bad' [h, w] marks; detail(y, x) describes one."""
        n = int(bad.sum())
        if n:
            shown = ", ".join("(x=%d y=%d %s)" % (x, y, detail(y, x)) for y, x in np.argwhere(bad)[: self.max_report])
            self.problems.append("%s: %d pixels, first: %s" % (what, n, shown))

    def finish(self, ok_line):
        if self.problems:
            print("\n".join(self.problems))
            sys.exit(1)
        print(ok_line)


def check_predict(args):
    """The predict run with both stages against python xgboost's prediction."""
    import xgboost as xgb
    rep = Report(args.max_report)
    feats, valid, _ = read_covariates(args.covariates)
    booster, objective, nclass, _ = load_model(args.model)
    if objective != "multi:softprob":
        die("%s: the oracle expects a multi:softprob model, not %s" % (args.model, objective))
    keep = read_mask(args.mask)
    if keep.shape != valid.shape:
        die("%s: size %s differs from the covariates' %s" % (args.mask, keep.shape, valid.shape))
    h, w = valid.shape
    probs = np.full((nclass, h, w), np.float32(FLT_NODATA), np.float32)
    pv = booster.predict(xgb.DMatrix(feats, nthread=1)).astype(np.float32).reshape(-1, nclass)
    for k in range(nclass):
        probs[k][valid] = pv[:, k]
    predicted = valid & keep
    cls_got, cls_nodata = read_planes(os.path.join(args.out, "class.tif"))
    prob_got, prob_nodata = read_planes(os.path.join(args.out, "probability.tif"))
    if cls_got is None or prob_got is None:
        die("%s: class.tif or probability.tif is missing" % args.out)
    if cls_got.shape != (1, h, w) or prob_got.shape != (nclass, h, w):
        die("class.tif %s / probability.tif %s, expected (1, %d, %d) / (%d, %d, %d)" % (
            cls_got.shape, prob_got.shape, h, w, nclass, h, w))
    cls_got, cls_nodata = cls_got[0], int(cls_nodata)

    rep.pixels("class not nodata where the mask or a covariate is nodata", ~predicted & (cls_got != cls_nodata),
               lambda y, x: "class %d, mask keeps %s, covariates valid %s" % (cls_got[y, x], keep[y, x], valid[y, x]))
    prob_masked = np.any(prob_got != np.float32(prob_nodata), axis=0)
    rep.pixels("probability not nodata where the mask or a covariate is nodata", ~predicted & prob_masked,
               lambda y, x: "probabilities %s" % prob_got[:, y, x].tolist())
    diff = np.where(predicted, np.abs(prob_got.astype(np.float64) - probs).max(axis=0), 0.0)
    rep.pixels("probability differs from xgboost's by more than %g" % PROB_TOL, diff > PROB_TOL,
               lambda y, x: "got %s expected %s" % (prob_got[:, y, x].tolist(), probs[:, y, x].tolist()))

    best = probs.max(axis=0)
    sure = predicted & (best >= np.float32(args.threshold))
    borderline = predicted & (np.abs(best.astype(np.float64) - args.threshold) <= PROB_TOL)
    want = np.where(sure, probs.argmax(axis=0), cls_nodata)
    bad = predicted & (cls_got != want) & ~borderline
    rep.pixels("class is not argmax where max p >= %g, nodata elsewhere" % args.threshold, bad,
               lambda y, x: "got %d expected %d (max p %.7f)" % (cls_got[y, x], want[y, x], best[y, x]))
    n_sure, n_unsure = int(sure.sum()), int((predicted & ~sure).sum())
    if n_sure == 0 or n_unsure == 0:
        die("the data test nothing: %d confident and %d unsure pixels" % (n_sure, n_unsure))
    rep.finish("OK %s: %d pixels predicted (%d confident, %d unsure -> nodata, %d within %g of the threshold), "
               "%d masked by %s, %d nodata covariates; probabilities within %g of xgboost's" % (
                   args.out, int(predicted.sum()), n_sure, n_unsure, int(borderline.sum()), PROB_TOL,
                   int((valid & ~keep).sum()), os.path.basename(args.mask), int((~valid).sum()), PROB_TOL))


def unsure_pixels(plain_dir, threshold):
    """Returns True where the plain run's largest class share is below 'threshold' (its probability.tif), and the
    count of pixels within 1e-6 of it (none is expected: shares are multiples of 1 / iterations)."""
    prob, nodata = read_planes(os.path.join(plain_dir, "probability.tif"))
    if prob is None:
        die("%s: no probability.tif" % plain_dir)
    best = prob.max(axis=0).astype(np.float64)
    valid = np.all(prob != prob.dtype.type(nodata), axis=0)
    return valid & (best < threshold), int((valid & (np.abs(best - threshold) <= PROB_TOL)).sum())


def check_run(args):
    """The run with the mask stage (and the confident stage) against the same run without them."""
    rep = Report(args.max_report)
    _, valid, _ = read_covariates(args.covariates)
    keep = read_mask(args.mask)
    models = sorted(glob.glob(os.path.join(args.plain, "models", "iter-*.json")))
    if not models:
        die("%s: no models/iter-*.json" % args.plain)
    for m in models:
        other = os.path.join(args.out, "models", os.path.basename(m))
        if not os.path.exists(other):
            rep.problems.append("%s: missing" % other)
        elif open(m, "rb").read() != open(other, "rb").read():
            rep.problems.append("%s differs from the plain run's: a training message was changed" % other)
    tifs = sorted(os.path.basename(p) for p in glob.glob(os.path.join(args.plain, "*.tif")))
    if "class.tif" not in tifs:
        die("%s: no class.tif" % args.plain)
    masked = valid & ~keep
    unsure, borderline = unsure_pixels(args.plain, args.threshold) if args.threshold is not None else (None, 0)
    if borderline:
        die("%d pixels have a largest share within %g of the threshold %g" % (borderline, PROB_TOL, args.threshold))
    for name in tifs:
        got, nodata = read_planes(os.path.join(args.out, name))
        plain, plain_nodata = read_planes(os.path.join(args.plain, name))
        if got is None:
            rep.problems.append("%s: missing" % os.path.join(args.out, name))
            continue
        if got.shape != plain.shape or got.dtype != plain.dtype or nodata != plain_nodata:
            rep.problems.append("%s: %s %s nodata %s, the plain run's %s %s nodata %s" % (
                name, got.shape, got.dtype, nodata, plain.shape, plain.dtype, plain_nodata))
            continue
        nd = got.dtype.type(nodata)
        rep.pixels("%s: not nodata where the mask is 0 or nodata" % name, np.any(got != nd, axis=0) & masked,
                   lambda y, x, g=got: "values %s" % g[:, y, x].tolist())
        expected = plain.copy()
        if unsure is not None and name == "class.tif":
            expected[:, unsure] = nd
        same = np.all(pixel_bytes(got) == pixel_bytes(expected), axis=(0, 3))
        rep.pixels("%s: differs from the plain run%s where the mask keeps the pixel" % (
                       name, " (class nodata where the largest share < %g)" % args.threshold if unsure is not None
                       and name == "class.tif" else ""), ~same & ~masked,
                   lambda y, x, g=got, p=expected: "got %s expected %s" % (g[:, y, x].tolist(), p[:, y, x].tolist()))
    if int(masked.sum()) == 0 or int((valid & keep).sum()) == 0:
        die("the data test nothing: %d pixels masked, %d kept" % (int(masked.sum()), int((valid & keep).sum())))
    confident = "" if unsure is None else "; class.tif nodata on the %d kept pixels whose largest share < %g" % (
        int((unsure & ~masked).sum()), args.threshold)
    if unsure is not None and (int((unsure & ~masked).sum()) == 0 or int((~unsure & valid & keep).sum()) == 0):
        die("the data test nothing: %d kept pixels unsure" % int((unsure & ~masked).sum()))
    rep.finish("OK %s: %d models byte-identical to the plain run's; %d summary files nodata on the %d masked "
               "pixels and the same bytes as the plain run on the other %d%s" % (
                   args.out, len(models), len(tifs), int(masked.sum()), int((~masked).sum()), confident))


def main():
    ap = argparse.ArgumentParser(description="test data and oracle for the shipped custom stages")
    sub = ap.add_subparsers(dest="command", required=True)
    mm = sub.add_parser("make-mask")
    mm.add_argument("reference")
    mm.add_argument("out")
    mm.add_argument("--shift", action="store_true")
    for name in ("predict", "run"):
        p = sub.add_parser(name)
        p.add_argument("--covariates", nargs="+", required=True)
        p.add_argument("--mask", required=True)
        p.add_argument("--out", required=True)
        p.add_argument("--max-report", type=int, default=5)
        if name == "predict":
            p.add_argument("--model", required=True)
            p.add_argument("--threshold", type=float, required=True)
        else:
            p.add_argument("--plain", required=True, help="the same run without the stages")
            p.add_argument("--threshold", type=float, help="confident_stage.py ran with this threshold")
    args = ap.parse_args()
    {"make-mask": make_mask, "predict": check_predict, "run": check_run}[args.command](args)


if __name__ == "__main__":
    main()
