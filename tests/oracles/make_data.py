#!/usr/bin/python3
"""make_data.py -- generate synthetic covariates and XGBoost models for the gridmill integration tests.

Usage: make_data.py OUTDIR [--size W H] [--seed S] [--no-models]

Writes into OUTDIR, deterministically for a given seed:
  cov_a.tif      float32, 2 bands, nodata -9999: an ellipse plus scattered holes (per band),
                 a few valid pixels just above the nodata value; tiled 256x256, DEFLATE.
  cov_b.tif      int16, 1 band, nodata -32768: a ring, a triangle at the bottom-right edge, a fully
                 nodata rectangle x in [128,256) y in [128,256), scattered holes, a few valid -32767;
                 striped.
  cov_c.tif      float32, 1 band, nodata NaN: NaN in a few scattered pixels; tiled 128x128.
  shifted.tif    like cov_c on a grid whose origin is one pixel to the east.
  other_size.tif like cov_c but one column narrower.
  other_crs.tif  like cov_c but in EPSG:32634.
  truth.tif      uint8 class "truth" (5 classes) derived from the covariates, 255 where invalid.
  reg.json, reg.ubj           reg:squarederror
  softprob.json, softprob.ubj multi:softprob, 5 classes
  softmax.json                multi:softmax, 4 classes
  binary.json                 binary:logistic
  bad_features.json           reg:squarederror trained on 3 features (the covariates have 4)
The grid is W x H (default 300 x 217, not a multiple of any usual block size), EPSG:32633, geotransform
(500000, 30, 0, 5000000, 0, -30). The features are the bands of cov_a, cov_b, cov_c in that order.
"""
import argparse
import os
import sys

import numpy as np
from osgeo import gdal, osr

gdal.UseExceptions()

ORIGIN_X, ORIGIN_Y, PIXEL = 500000.0, 5000000.0, 30.0
EPSG = 32633
NODATA_A = -9999.0
NODATA_B = -32768
TRAIN_MAX = 20000  # most pixels used to train a model
ROUNDS = 15
DEPTH = 4


def srs_wkt(epsg):
    """Returns the WKT of an EPSG code."""
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    return srs.ExportToWkt()


def write_tif(path, planes, gdal_type, nodata, gt, epsg, options=()):
    """Writes a list of 2-D arrays as the bands of a GeoTIFF with one nodata value on every band."""
    h, w = planes[0].shape
    drv = gdal.GetDriverByName("GTiff")
    ds = drv.Create(path, w, h, len(planes), gdal_type, options=list(options))
    ds.SetGeoTransform(gt)
    ds.SetProjection(srs_wkt(epsg))
    for i, p in enumerate(planes):
        band = ds.GetRasterBand(i + 1)
        band.SetNoDataValue(nodata)
        band.WriteArray(p)
    ds.FlushCache()
    ds = None


def holes(rng, shape, fraction):
    """Returns a boolean mask with about 'fraction' of the pixels set at random."""
    return rng.random(shape) < fraction


def make_covariates(w, h, rng):
    """Returns (a1, a2, b, c) as float32/int16 arrays with their nodata already written in."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    x = xx / max(w - 1, 1)
    y = yy / max(h - 1, 1)

    a1 = 50.0 * np.sin(3.0 * np.pi * x) * np.cos(2.0 * np.pi * y) + 100.0 * x + rng.normal(0, 2.0, (h, w))
    a2 = (80.0 * np.exp(-((x - 0.7) ** 2 + (y - 0.3) ** 2) / 0.05)
          - 60.0 * np.exp(-((x - 0.2) ** 2 + (y - 0.8) ** 2) / 0.08)
          + 10.0 * y + rng.normal(0, 1.0, (h, w)))
    b = 200.0 + 1500.0 * (0.5 + 0.5 * np.sin(2.0 * np.pi * (x + 0.5 * y))) + rng.normal(0, 20.0, (h, w))
    c = np.cos(5.0 * x * y) + 0.3 * np.sin(7.0 * y) + rng.normal(0, 0.05, (h, w))

    a1 = a1.astype(np.float32)
    a2 = a2.astype(np.float32)
    b = np.clip(np.rint(b), -32000, 32000).astype(np.int16)
    c = c.astype(np.float32)

    # cov_a: a rotated ellipse on both bands, scattered holes differing per band.
    u = (xx - 0.3 * w) * np.cos(0.5) + (yy - 0.4 * h) * np.sin(0.5)
    v = -(xx - 0.3 * w) * np.sin(0.5) + (yy - 0.4 * h) * np.cos(0.5)
    ellipse = (u / (0.14 * w)) ** 2 + (v / (0.09 * h)) ** 2 < 1.0
    a1[ellipse | holes(rng, (h, w), 0.005)] = NODATA_A
    a2[ellipse | holes(rng, (h, w), 0.005)] = NODATA_A
    # Valid values just above the nodata value.
    near = rng.choice(w * h, size=8, replace=False)
    a1.flat[near] = np.float32(-9998.5)
    a1.flat[near[:4]] = np.nextafter(np.float32(NODATA_A), np.float32(0))

    # cov_b: a ring, a triangle at the bottom-right corner, a fully nodata rectangle, holes.
    r = np.hypot(xx - 0.65 * w, yy - 0.6 * h)
    ring = (r > 0.10 * min(w, h)) & (r < 0.14 * min(w, h))
    triangle = (xx / w + yy / h) > 1.75
    rect = np.zeros((h, w), bool)
    if w > 128 and h > 128:
        rect[128:256, 128:256] = True
    b[ring | triangle | rect | holes(rng, (h, w), 0.003)] = NODATA_B
    near = rng.choice(np.flatnonzero(b.ravel() != NODATA_B), size=6, replace=False)
    b.flat[near] = NODATA_B + 1

    # cov_c: NaN in a few pixels.
    nan_at = rng.choice(w * h, size=max(5, (w * h) // 3000), replace=False)
    c.flat[nan_at] = np.nan
    return a1, a2, b, c


def valid_mask(a1, a2, b, c):
    """Returns True where every feature is valid."""
    return (a1 != np.float32(NODATA_A)) & (a2 != np.float32(NODATA_A)) & (b != NODATA_B) & ~np.isnan(c)


def truth_classes(f, nclass):
    """Returns class labels 0..nclass-1 from a score over the feature rows, cut at its quantiles."""
    score = (f[:, 0] / 50.0 + f[:, 1] / 40.0 + (f[:, 2] - 900.0) / 400.0 + 2.0 * f[:, 3]
             + 0.5 * np.sin(f[:, 0] / 15.0))
    cuts = np.quantile(score, np.linspace(0, 1, nclass + 1)[1:-1])
    return np.searchsorted(cuts, score).astype(np.int32)


def train(xgb, feats, label, params, path_stems, rounds=ROUNDS):
    """Trains one small booster and saves it as every path in path_stems."""
    dm = xgb.DMatrix(feats, label=label, nthread=1)
    base = {"nthread": 1, "max_depth": DEPTH, "eta": 0.3, "tree_method": "hist", "seed": 0}
    base.update(params)
    booster = xgb.train(base, dm, num_boost_round=rounds)
    for p in path_stems:
        booster.save_model(p)


def main():
    ap = argparse.ArgumentParser(description="generate gridmill test covariates and models")
    ap.add_argument("outdir")
    ap.add_argument("--size", nargs=2, type=int, default=[300, 217], metavar=("W", "H"))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-models", action="store_true", help="write only the rasters")
    args = ap.parse_args()
    w, h = args.size
    if w < 8 or h < 8:
        sys.exit("make_data.py: --size: each side must be at least 8")
    out = args.outdir
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(args.seed)

    a1, a2, b, c = make_covariates(w, h, rng)
    gt = (ORIGIN_X, PIXEL, 0.0, ORIGIN_Y, 0.0, -PIXEL)
    write_tif(os.path.join(out, "cov_a.tif"), [a1, a2], gdal.GDT_Float32, NODATA_A, gt, EPSG,
              ["TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256", "COMPRESS=DEFLATE"])
    write_tif(os.path.join(out, "cov_b.tif"), [b], gdal.GDT_Int16, NODATA_B, gt, EPSG)
    write_tif(os.path.join(out, "cov_c.tif"), [c], gdal.GDT_Float32, float("nan"), gt, EPSG,
              ["TILED=YES", "BLOCKXSIZE=128", "BLOCKYSIZE=128"])

    shifted_gt = (ORIGIN_X + PIXEL, PIXEL, 0.0, ORIGIN_Y, 0.0, -PIXEL)
    write_tif(os.path.join(out, "shifted.tif"), [c], gdal.GDT_Float32, float("nan"), shifted_gt, EPSG)
    write_tif(os.path.join(out, "other_size.tif"), [c[:, :-1]], gdal.GDT_Float32, float("nan"), gt, EPSG)
    write_tif(os.path.join(out, "other_crs.tif"), [c], gdal.GDT_Float32, float("nan"), gt, EPSG + 1)

    valid = valid_mask(a1, a2, b, c)
    feats_all = np.stack([a1, a2, b.astype(np.float32), c], axis=-1)
    truth = np.full((h, w), 255, np.uint8)
    truth[valid] = truth_classes(feats_all[valid], 5)
    write_tif(os.path.join(out, "truth.tif"), [truth], gdal.GDT_Byte, 255, gt, EPSG)
    if args.no_models:
        return

    import xgboost as xgb
    idx = np.flatnonzero(valid.ravel())
    if idx.size > TRAIN_MAX:
        idx = np.sort(rng.choice(idx, size=TRAIN_MAX, replace=False))
    feats = feats_all.reshape(-1, 4)[idx]
    score_y = (np.sin(feats[:, 0] / 20.0) * 3.0 + feats[:, 1] / 30.0 + feats[:, 2] / 500.0
               - feats[:, 3] + rng.normal(0, 0.1, idx.size)).astype(np.float32)
    j = lambda name: os.path.join(out, name)  # noqa: E731

    train(xgb, feats, score_y, {"objective": "reg:squarederror"}, [j("reg.json"), j("reg.ubj")])
    train(xgb, feats, truth_classes(feats, 5), {"objective": "multi:softprob", "num_class": 5},
          [j("softprob.json"), j("softprob.ubj")])
    train(xgb, feats, truth_classes(feats, 4), {"objective": "multi:softmax", "num_class": 4},
          [j("softmax.json")])
    train(xgb, feats, truth_classes(feats, 2), {"objective": "binary:logistic"}, [j("binary.json")])
    train(xgb, feats[:, :3], score_y, {"objective": "reg:squarederror"}, [j("bad_features.json")], rounds=5)


if __name__ == "__main__":
    main()
