#!/usr/bin/python3
"""peer_xgb.py -- the benchmark's peer (c1): Python xgboost's inplace_predict over covariates read with GDAL.

Usage: peer_xgb.py --covariates F [F...] --model M.json --out DIR [--threads N] [--rows R]

What a user who knows the tools writes instead of gridmill: one process, XGBoost predicting with all threads
(nthread = --threads, default the cores), the covariates read with GDAL R rows at a time (256, the tile height),
nodata wherever a covariate is nodata. Writes gridmill predict --probabilities' outputs: class.tif (uint8, the
first most probable class, 255 on nodata) and probability.tif (one float32 band per class), GeoTIFF tiled
256x256.
"""
import argparse
import os
import time

import numpy as np
import xgboost as xgb
from osgeo import gdal

gdal.UseExceptions()
CO = ["TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256", "BIGTIFF=IF_SAFER"]
F32_NODATA = float(np.finfo(np.float32).min)


def create(path, like, bands, dtype, nodata):
    """Creates a GeoTIFF on the grid of 'like', tiled 256 like gridmill's outputs."""
    ds = gdal.GetDriverByName("GTiff").Create(path, like.RasterXSize, like.RasterYSize, bands, dtype, CO)
    ds.SetGeoTransform(like.GetGeoTransform())
    ds.SetProjection(like.GetProjection())
    for b in range(1, bands + 1):
        ds.GetRasterBand(b).SetNoDataValue(nodata)
    return ds


def main():
    ap = argparse.ArgumentParser(description="Predict an XGBoost classifier over rasters with inplace_predict.")
    ap.add_argument("--covariates", nargs="+", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--rows", type=int, default=256)
    a = ap.parse_args()
    t0 = time.monotonic()
    os.makedirs(a.out, exist_ok=True)
    booster = xgb.Booster(model_file=a.model)
    booster.set_param({"nthread": a.threads})
    covs = [gdal.Open(p) for p in a.covariates]
    bands = [ds.GetRasterBand(1) for ds in covs]
    nodata = [b.GetNoDataValue() for b in bands]
    like = covs[0]
    width, height = like.RasterXSize, like.RasterYSize
    prob_ds = cls_ds = None
    for y0 in range(0, height, a.rows):
        rows = min(a.rows, height - y0)
        X = np.empty((rows * width, len(bands)), dtype=np.float32)
        invalid = np.zeros(rows * width, dtype=bool)
        for j, (b, nd) in enumerate(zip(bands, nodata)):
            X[:, j] = b.ReadAsArray(0, y0, width, rows).ravel()
            if nd is not None:
                invalid |= X[:, j] == nd
        X[invalid] = np.nan
        p = booster.inplace_predict(X)  # (pixels, classes) float32
        if prob_ds is None:
            nclass = p.shape[1]
            prob_ds = create(os.path.join(a.out, "probability.tif"), like, nclass, gdal.GDT_Float32, F32_NODATA)
            cls_ds = create(os.path.join(a.out, "class.tif"), like, 1, gdal.GDT_Byte, 255)
        cls = p.argmax(axis=1).astype(np.uint8)
        cls[invalid] = 255
        p[invalid] = F32_NODATA
        prob_ds.WriteArray(p.reshape(rows, width, nclass).transpose(2, 0, 1), 0, y0)
        cls_ds.GetRasterBand(1).WriteArray(cls.reshape(rows, width), 0, y0)
    prob_ds = cls_ds = None
    print(f"peer_xgb: {width}x{height} pixels in {time.monotonic() - t0:.1f} s with {a.threads} threads: {a.out}")


if __name__ == "__main__":
    main()
