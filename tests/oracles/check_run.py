#!/usr/bin/python3
"""check_run.py -- independent checks of the summary grids `gridmill run` wrote, from the output files only.

Usage: check_run.py DIR [--nprob N] [--iterations N] [--quantiles Q,Q,...] [--covariates F [F ...]]
                        [--classes-optional] [--max-report N]

DIR is a run's output folder. The number of iterations N is --iterations, else the count of models/iter-*.json,
else of samples/iter-*.csv, else of realisation-*.tif; each of those that exists must hold exactly N files
named iter-001... (realisation-001...) without gaps.
Classification (DIR has probability.tif):
  classes.csv       "code,class", codes 0..K-1 in order, names unique and ascending byte-wise (with
                    --classes-optional it may be absent).
  probability.tif   K float32 bands, nodata -FLT_MAX; on every valid pixel each value in [0, 1], a multiple
                    of 1/N (within 1e-5), the bands summing to 1 within 1e-5.
  class.tif         uint8, nodata 255: the code of the largest share, ties to the lowest code (compared as
                    vote counts round(p * N), so equal float shares are equal).
  entropy.tif       float32: -sum p log2 p over the bands with p > 0, within 1e-5.
  confusion.tif     float32: 1 - (p1 - p2) of the two largest shares, within 1e-5.
  nprob_class.tif, nprob_probability.tif (with --nprob N, or whenever they exist): N bands, the k-th most
                    probable code (ties: lower code first) and its share (equal to probability.tif's).
  realisation-*.tif (if any) uint8 class codes: probability band k = the share of realisations equal to k.
Regression (DIR has mean.tif):
  mean.tif, sd.tif (population sd), quantiles.tif (one band per --quantiles value, increasing), float32,
  nodata -FLT_MAX; with realisation-*.tif they must equal numpy's mean, std (ddof 0) and quantile (linear)
  of the realisations within a relative 1e-4 (of max(|expected|, 1e-2 x the mean |realisation|)).
Every output: one nodata mask shared by all bands of all files; one grid (size, geotransform, CRS); with
--covariates, that grid is the first covariate's and the mask is "any covariate band is nodata". No
leftover *.part file. Exit 0 with one OK line, 1 listing each problem, 2 if the oracle itself cannot run.
It uses no gridmill code.
"""
import argparse
import csv
import glob
import os
import re
import sys

import numpy as np
from osgeo import gdal, osr

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_predict import band_nodata_mask, same_gt  # noqa: E402  (the predict oracle's own helpers)

gdal.UseExceptions()

FLT_NODATA = float(-np.finfo(np.float32).max)
SUM_TOL = 1e-5
VALUE_TOL = 1e-5
SHARE_TOL = 1e-6
REG_RTOL = 1e-4
CLASS_OUTPUTS = ("probability.tif", "class.tif", "entropy.tif", "confusion.tif")
REG_OUTPUTS = ("mean.tif", "sd.tif", "quantiles.tif")


def die(msg):
    """Prints an oracle failure (not a gridmill mismatch) and exits 2."""
    print("check_run: %s" % msg, file=sys.stderr)
    sys.exit(2)


class Report:
    """Collects problems and prints them."""

    def __init__(self, max_report):
        self.problems = []
        self.max_report = max_report

    def add(self, msg):
        """Records one problem line."""
        self.problems.append(msg)

    def pixels(self, what, bad, describe):
        """Records a per-pixel problem; 'bad' [h, w] marks the pixels, describe(y, x) says what is there."""
        n = int(np.count_nonzero(bad))
        if n:
            where = np.argwhere(bad)[: self.max_report]
            self.add("%s: %d pixels, first: %s" % (what, n, "; ".join(
                "(x=%d y=%d %s)" % (x, y, describe(y, x)) for y, x in where)))


class Grid:
    """One output raster read whole: bands [nb, h, w], its type, nodata values, size, geotransform, CRS."""

    def __init__(self, path):
        ds = gdal.Open(path)
        self.path = path
        self.name = os.path.basename(path)
        self.size = (ds.RasterXSize, ds.RasterYSize)
        self.gt = ds.GetGeoTransform()
        self.wkt = ds.GetProjection()
        self.bands = np.stack([ds.GetRasterBand(b + 1).ReadAsArray() for b in range(ds.RasterCount)])
        self.nodata = [ds.GetRasterBand(b + 1).GetNoDataValue() for b in range(ds.RasterCount)]
        ds = None


def same_crs(wkt_a, wkt_b):
    """Returns True if two WKT strings name the same CRS (both empty counts as the same)."""
    if not wkt_a or not wkt_b:
        return not wkt_a and not wkt_b
    a, b = osr.SpatialReference(), osr.SpatialReference()
    a.ImportFromWkt(wkt_a)
    b.ImportFromWkt(wkt_b)
    return bool(a.IsSame(b))


def open_output(rep, path, dtype, nodata, nbands=None):
    """Opens an output, checks its band type, band count and nodata value. Returns a Grid or None."""
    if not os.path.exists(path):
        rep.add("%s: missing" % path)
        return None
    try:
        g = Grid(path)
    except RuntimeError as e:
        rep.add("%s: cannot open: %s" % (path, e))
        return None
    if g.bands.dtype != np.dtype(dtype):
        rep.add("%s: type %s, expected %s" % (g.name, g.bands.dtype, np.dtype(dtype).name))
        return None
    if nbands is not None and g.bands.shape[0] != nbands:
        rep.add("%s: %d bands, expected %d" % (g.name, g.bands.shape[0], nbands))
        return None
    for b, nd in enumerate(g.nodata):
        if nd is None:
            rep.add("%s band %d: no nodata value, expected %r" % (g.name, b + 1, nodata))
        elif np.dtype(dtype).type(nd) != np.dtype(dtype).type(nodata):
            rep.add("%s band %d: nodata %r, expected %r" % (g.name, b + 1, nd, nodata))
    return g


def nodata_mask(g, nodata):
    """Returns [nb, h, w] True where a band holds the nodata value (or NaN)."""
    m = g.bands == g.bands.dtype.type(nodata)
    if np.issubdtype(g.bands.dtype, np.floating):
        m |= np.isnan(g.bands)
    return m


def covariate_mask(paths):
    """Returns (grid of the first covariate as a dict, True where any covariate band is nodata)."""
    grid, invalid = None, None
    for path in paths:
        if not os.path.exists(path):
            die("%s: no such file" % path)
        ds = gdal.Open(path)
        if grid is None:
            grid = {"size": (ds.RasterXSize, ds.RasterYSize), "gt": ds.GetGeoTransform(),
                    "wkt": ds.GetProjection(), "path": path}
            invalid = np.zeros((ds.RasterYSize, ds.RasterXSize), bool)
        for b in range(1, ds.RasterCount + 1):
            band = ds.GetRasterBand(b)
            invalid |= band_nodata_mask(band.ReadAsArray(), band.GetNoDataValue())
        ds = None
    return grid, invalid


def numbered(rep, folder, pattern, what):
    """Returns the files matching pattern (e.g. iter-*.csv) in folder, checking they are numbered 001.. without gaps."""
    files = sorted(glob.glob(os.path.join(folder, pattern)))
    nums = []
    for f in files:
        m = re.search(r"-(\d{3,})\.[a-z]+$", f)
        nums.append(int(m.group(1)) if m else -1)
    if nums != list(range(1, len(files) + 1)):
        rep.add("%s: files not numbered 001..%03d: %s" % (what, len(files), [os.path.basename(f) for f in files]))
    return files


def read_classes(rep, path):
    """Returns the class names by code from classes.csv, checking the code order and byte-wise name order."""
    if not os.path.exists(path):
        rep.add("%s: missing" % path)
        return None
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    if not rows or [c.strip() for c in rows[0]] != ["code", "class"]:
        rep.add("classes.csv: header %r, expected code,class" % (rows[0] if rows else None))
        return None
    names = []
    for i, row in enumerate(rows[1:]):
        if len(row) != 2 or row[0].strip() != str(i):
            rep.add("classes.csv: row %d is %r, expected code %d then a name" % (i + 2, row, i))
            return None
        names.append(row[1])
    if len(names) < 2:
        rep.add("classes.csv: %d classes" % len(names))
    as_bytes = [n.encode("utf-8") for n in names]
    if as_bytes != sorted(set(as_bytes)):
        rep.add("classes.csv: names not unique and in byte-wise order: %r" % names)
    return names


def check_classification(rep, d, n_iter, nprob, realisations, classes_optional):
    """Checks probability, class, entropy, confusion, nprob and realisations. Returns (grids, valid mask)."""
    names = None
    if not classes_optional or os.path.exists(os.path.join(d, "classes.csv")):
        names = read_classes(rep, os.path.join(d, "classes.csv"))
    nclass = len(names) if names else None
    prob = open_output(rep, os.path.join(d, "probability.tif"), np.float32, FLT_NODATA, nclass)
    cls = open_output(rep, os.path.join(d, "class.tif"), np.uint8, 255, 1)
    ent = open_output(rep, os.path.join(d, "entropy.tif"), np.float32, FLT_NODATA, 1)
    conf = open_output(rep, os.path.join(d, "confusion.tif"), np.float32, FLT_NODATA, 1)
    grids = [g for g in (prob, cls, ent, conf) if g is not None]
    if prob is None:
        return grids, None
    nclass = prob.bands.shape[0]
    invalid = nodata_mask(prob, FLT_NODATA)[0]
    valid = ~invalid
    p = prob.bands[:, valid].astype(np.float64).T  # [npix, nclass]

    def at(y, x):
        return "p=%s" % np.array2string(prob.bands[:, y, x], precision=7, separator=",")

    def put(values):
        """Places per-valid-pixel values back on the grid (for describing bad pixels)."""
        full = np.zeros(valid.shape, bool)
        full[valid] = values
        return full

    rep.pixels("probability.tif: a value outside [0, 1]", put(((p < 0) | (p > 1)).any(axis=1)), at)
    sums = p.sum(axis=1)
    rep.pixels("probability.tif: bands do not sum to 1 within %g" % SUM_TOL, put(~(np.abs(sums - 1) <= SUM_TOL)),
               lambda y, x: "%s sum=%.9g" % (at(y, x), prob.bands[:, y, x].astype(np.float64).sum()))
    if n_iter:
        counts = np.rint(p * n_iter)
        rep.pixels("probability.tif: a share that is not a multiple of 1/%d" % n_iter,
                   put((np.abs(p * n_iter - counts) > SUM_TOL * n_iter).any(axis=1)), at)
        key = counts  # ties compared on whole vote counts
    else:
        key = np.rint(p / SHARE_TOL)  # no N: shares equal within 1e-6 count as ties
    order = np.argsort(-key, axis=1, kind="stable")  # most probable first, ties: lower code first
    best = order[:, 0]

    if cls is not None:
        got = cls.bands[0][valid]
        rep.pixels("class.tif: not the most probable code (ties to the lowest)", put(got != best),
                   lambda y, x: "class=%d %s" % (cls.bands[0, y, x], at(y, x)))
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(p > 0, p * np.log2(np.where(p > 0, p, 1.0)), 0.0)
    exp_ent = -plogp.sum(axis=1)
    psort = -np.sort(-p, axis=1)
    exp_conf = 1.0 - (psort[:, 0] - (psort[:, 1] if nclass > 1 else 0.0))
    for g, exp, what in ((ent, exp_ent, "entropy"), (conf, exp_conf, "confusion index")):
        if g is None:
            continue
        diff = np.abs(g.bands[0][valid].astype(np.float64) - exp)
        bad = ~(diff <= VALUE_TOL)
        if bad.any():
            rep.add("%s: largest difference from the %s of probability.tif %.3g" % (g.name, what, diff[bad].max()))
        full_exp = np.zeros(valid.shape)
        full_exp[valid] = exp
        rep.pixels("%s: differs from the %s of probability.tif by more than %g" % (g.name, what, VALUE_TOL),
                   put(bad), lambda y, x, g=g, e=full_exp: "got %.7g expected %.7g %s" % (g.bands[0, y, x], e[y, x],
                                                                                       at(y, x)))

    have_nprob = os.path.exists(os.path.join(d, "nprob_class.tif")) or os.path.exists(
        os.path.join(d, "nprob_probability.tif"))
    if nprob or have_nprob:
        nc = open_output(rep, os.path.join(d, "nprob_class.tif"), np.uint8, 255, nprob)
        npb = open_output(rep, os.path.join(d, "nprob_probability.tif"), np.float32, FLT_NODATA, nprob)
        grids += [g for g in (nc, npb) if g is not None]
        n = nprob or (nc.bands.shape[0] if nc is not None else npb.bands.shape[0] if npb is not None else 0)
        if n > nclass:
            rep.add("nprob: %d bands but only %d classes" % (n, nclass))
            n = 0
        for k in range(n):
            if nc is not None:
                got = nc.bands[k][valid]
                rep.pixels("nprob_class.tif band %d: not the %d-th most probable code (ties: lower first)"
                           % (k + 1, k + 1), put(got != order[:, k]),
                           lambda y, x, k=k: "got %d, all %s %s"
                           % (nc.bands[k, y, x], nc.bands[:, y, x].tolist(), at(y, x)))
            if npb is not None:
                exp = p[np.arange(p.shape[0]), order[:, k]]
                bad = ~(np.abs(npb.bands[k][valid].astype(np.float64) - exp) <= SHARE_TOL)
                rep.pixels("nprob_probability.tif band %d: not the share of the %d-th most probable class"
                           % (k + 1, k + 1), put(bad), lambda y, x, k=k: "got %.7g %s" % (npb.bands[k, y, x], at(y, x)))

    if realisations:
        votes = np.zeros(p.shape, np.int64)
        for path in realisations:
            r = open_output(rep, path, np.uint8, 255, 1)
            if r is None:
                continue
            grids.append(r)
            codes = r.bands[0][valid].astype(np.int64)
            out_of_range = codes >= nclass
            rep.pixels("%s: a class code >= %d on a valid pixel" % (r.name, nclass), put(out_of_range),
                       lambda y, x, r=r: "code %d" % r.bands[0, y, x])
            ok = ~out_of_range
            votes[np.flatnonzero(ok), codes[ok]] += 1
        exp = votes / float(len(realisations))
        bad = ~(np.abs(p - exp) <= SHARE_TOL).all(axis=1)
        full_exp = np.zeros((nclass,) + valid.shape)
        full_exp[:, valid] = exp.T
        rep.pixels("probability.tif: not the shares of the %d realisations' classes" % len(realisations), put(bad),
                   lambda y, x: "%s expected %s" % (at(y, x), np.array2string(full_exp[:, y, x], precision=7,
                                                                               separator=",")))
    return grids, valid


def check_regression(rep, d, quantiles, realisations):
    """Checks mean, sd and quantiles, against the realisations if any. Returns (grids, valid mask)."""
    mean = open_output(rep, os.path.join(d, "mean.tif"), np.float32, FLT_NODATA, 1)
    sd = open_output(rep, os.path.join(d, "sd.tif"), np.float32, FLT_NODATA, 1)
    qs = open_output(rep, os.path.join(d, "quantiles.tif"), np.float32, FLT_NODATA,
                     len(quantiles) if quantiles else None)
    grids = [g for g in (mean, sd, qs) if g is not None]
    if mean is None:
        return grids, None
    valid = ~nodata_mask(mean, FLT_NODATA)[0]
    if sd is not None:
        rep.pixels("sd.tif: negative or NaN", valid & ~(sd.bands[0] >= 0), lambda y, x: "sd=%r" % sd.bands[0, y, x])
    if qs is not None and qs.bands.shape[0] > 1 and (not quantiles or quantiles == sorted(quantiles)):
        dec = (np.diff(qs.bands.astype(np.float64), axis=0) < 0).any(axis=0)
        rep.pixels("quantiles.tif: bands decrease", valid & dec, lambda y, x: "q=%s" % qs.bands[:, y, x].tolist())
    if not realisations:
        return grids, valid
    stack = []
    for path in realisations:
        r = open_output(rep, path, np.float32, FLT_NODATA, 1)
        if r is not None:
            grids.append(r)
            stack.append(r.bands[0][valid].astype(np.float64))
    if len(stack) != len(realisations):
        return grids, valid
    stack = np.stack(stack)  # [n, npix]
    scale = 1e-2 * float(np.mean(np.abs(stack))) if stack.size else 1.0
    expected = [(mean, 0, stack.mean(axis=0), "mean"), (sd, 0, stack.std(axis=0, ddof=0), "sd (ddof 0)")]
    if qs is not None and quantiles:
        qv = np.quantile(stack, quantiles, axis=0)
        expected += [(qs, k, qv[k], "quantile %g" % q) for k, q in enumerate(quantiles)]
    for g, b, exp, what in expected:
        if g is None:
            continue
        got = g.bands[b][valid].astype(np.float64)
        diff = np.abs(got - exp)
        tol = REG_RTOL * np.maximum(np.abs(exp), scale)
        bad = ~(diff <= tol)
        if bad.any():
            rel = diff[bad] / np.maximum(np.abs(exp[bad]), scale)
            full = np.zeros(valid.shape, bool)
            full[valid] = bad
            full_exp = np.zeros(valid.shape)
            full_exp[valid] = exp
            rep.add("%s band %d: largest relative difference %.3g from numpy's %s of the realisations"
                    % (g.name, b + 1, rel.max(), what))
            rep.pixels("%s band %d: differs from the %s of the %d realisations by more than %g relative"
                       % (g.name, b + 1, what, len(realisations), REG_RTOL), full,
                       lambda y, x, g=g, b=b, e=full_exp: "got %.9g expected %.9g" % (g.bands[b, y, x], e[y, x]))
    return grids, valid


def main():
    ap = argparse.ArgumentParser(description="check the summary grids of a gridmill run")
    ap.add_argument("dir")
    ap.add_argument("--nprob", type=int, default=0, help="nprob_*.tif must exist with this many bands")
    ap.add_argument("--iterations", type=int, default=0, help="the run's iteration count (default: inferred)")
    ap.add_argument("--quantiles", help="regression: the --quantiles list the run was given")
    ap.add_argument("--covariates", nargs="+", help="the run's covariates: same grid, same nodata mask")
    ap.add_argument("--classes-optional", action="store_true",
                    help="classes.csv may be absent (a run with --models knows no class names)")
    ap.add_argument("--max-report", type=int, default=5, help="pixels shown per problem")
    args = ap.parse_args()
    d = args.dir
    if not os.path.isdir(d):
        die("%s: no such directory" % d)
    quantiles = [float(q) for q in args.quantiles.split(",")] if args.quantiles else None

    rep = Report(args.max_report)
    models = numbered(rep, os.path.join(d, "models"), "iter-*.json", "models/")
    samples = numbered(rep, os.path.join(d, "samples"), "iter-*.csv", "samples/")
    realisations = numbered(rep, d, "realisation-*.tif", "realisation-*.tif")
    n_iter = args.iterations or len(models) or len(samples) or len(realisations)
    for files, what in ((models, "models/iter-*.json"), (samples, "samples/iter-*.csv"),
                        (realisations, "realisation-*.tif")):
        if files and len(files) != n_iter:
            rep.add("%s: %d files, expected %d (iterations)" % (what, len(files), n_iter))
    leftovers = [os.path.relpath(p, d) for p in glob.glob(os.path.join(d, "**", "*.part*"), recursive=True)]
    if leftovers:
        rep.add("leftover partial files: %s" % ", ".join(sorted(leftovers)))

    if os.path.exists(os.path.join(d, "probability.tif")):
        kind = "classification"
        expected_tifs = set(CLASS_OUTPUTS) | {"nprob_class.tif", "nprob_probability.tif"}
        grids, valid = check_classification(rep, d, n_iter, args.nprob, realisations, args.classes_optional)
    elif os.path.exists(os.path.join(d, "mean.tif")):
        kind = "regression"
        expected_tifs = set(REG_OUTPUTS)
        grids, valid = check_regression(rep, d, quantiles, realisations)
    else:
        rep.add("%s: neither probability.tif (classification) nor mean.tif (regression)" % d)
        grids, valid, kind, expected_tifs = [], None, "unknown", set()
    extra = sorted(os.path.basename(p) for p in glob.glob(os.path.join(d, "*.tif"))
                   if os.path.basename(p) not in expected_tifs and not re.match(r"realisation-\d+\.tif$",
                                                                                 os.path.basename(p)))
    if extra:
        rep.add("unexpected output files for a %s run: %s" % (kind, ", ".join(extra)))

    # One grid and one nodata mask for every band of every output.
    if grids and valid is not None:
        ref = grids[0]
        for g in grids[1:]:
            if g.size != ref.size or not same_gt(g.gt, ref.gt) or not same_crs(g.wkt, ref.wkt):
                rep.add("%s: grid (%s, %s) differs from %s's (%s, %s)"
                        % (g.name, g.size, g.gt, ref.name, ref.size, ref.gt))
        for g in grids:
            if g.size != ref.size:
                continue
            nd = nodata_mask(g, 255 if g.bands.dtype == np.uint8 else FLT_NODATA)
            for b in range(nd.shape[0]):
                rep.pixels("%s band %d: nodata mask differs from %s's" % (g.name, b + 1, ref.name),
                           nd[b] != ~valid, lambda y, x, g=g, b=b: "value %r, reference valid=%s"
                           % (g.bands[b, y, x].item(), bool(valid[y, x])))
        if args.covariates:
            cgrid, cinvalid = covariate_mask(args.covariates)
            if ref.size != cgrid["size"] or not same_gt(ref.gt, cgrid["gt"]) or not same_crs(ref.wkt, cgrid["wkt"]):
                rep.add("%s: grid (%s, %s) differs from the covariates' (%s, %s)"
                        % (ref.name, ref.size, ref.gt, cgrid["size"], cgrid["gt"]))
            else:
                rep.pixels("outputs valid where a covariate is nodata", cinvalid & valid, lambda y, x: "")
                rep.pixels("outputs nodata where every covariate is valid", ~cinvalid & ~valid, lambda y, x: "")

    nvalid = int(valid.sum()) if valid is not None else 0
    what = "%s: %s, %d iterations, %d valid pixels, %s" % (
        d, kind, n_iter, nvalid, ", ".join(sorted(os.path.basename(g.path) for g in grids
                                                  if not g.name.startswith("realisation-")))
        + (", %d realisations" % len(realisations) if realisations else ""))
    if rep.problems:
        print("check_run: FAIL %s" % what)
        for msg in rep.problems:
            print("  - " + msg)
        sys.exit(1)
    print("check_run: OK %s" % what)


if __name__ == "__main__":
    main()
