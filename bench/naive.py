#!/usr/bin/python3
"""naive.py -- the benchmark's baseline (b): the DSMART loop as a Python user writes it first.

Usage: naive.py --polygons MAP.gpkg --class-field F --covariates F [F...] --iterations N --samples-per-polygon S
                --out DIR [--workers W] [--seed S] [--run-iterations K] [--timings T.json]

Debian's python3-gdal, python3-numpy and python3-sklearn only. Per iteration:
  1. sample: S random points in each polygon's envelope, kept when the polygon (OGR) Contains them;
  2. extract: read each covariate at each point (band.ReadAsArray(col, row, 1, 1), what rasterio's sample()
     does), dropping points on nodata;
  3. train: sklearn DecisionTreeClassifier(max_depth=6);
  4. predict: the raster in blocks of 1000 rows, with multiprocessing.Pool(W).apply_async; each task opens the
     covariates, reads its rows, predicts the class, and a callback writes the block into realisation-NNN.tif.
Then one pass over the N realisation maps, 1000 rows at a time, counts each class's votes and writes gridmill's
summaries: probability.tif (share of iterations per class), class.tif (the first most voted), entropy.tif (bits)
and confusion.tif (1 - (p1 - p2)), GeoTIFF tiled 256x256 like gridmill's.

--run-iterations K runs only the first K of the N iterations (and summarises those K), for the benchmark to
extrapolate; --timings writes each phase's seconds as JSON.
"""
import argparse
import json
import multiprocessing
import os
import random
import time

import numpy as np
from osgeo import gdal, ogr
from sklearn.tree import DecisionTreeClassifier

gdal.UseExceptions()
ROWS = 1000
CO = ["TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256", "BIGTIFF=IF_SAFER"]
F32_NODATA = float(np.finfo(np.float32).min)


def sample_points(layer, field, codes, per_polygon, rng):
    """Returns [(x, y, code)]: per_polygon random points inside each polygon, by rejection in its envelope."""
    points = []
    layer.ResetReading()
    for feat in layer:
        geom = feat.GetGeometryRef()
        code = codes[feat.GetField(field)]
        minx, maxx, miny, maxy = geom.GetEnvelope()
        got = tries = 0
        while got < per_polygon and tries < 1000 * per_polygon:
            tries += 1
            x, y = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
            pt = ogr.Geometry(ogr.wkbPoint)
            pt.AddPoint_2D(x, y)
            if geom.Contains(pt):
                points.append((x, y, code))
                got += 1
    return points


def extract(points, bands, nodata, gt):
    """Returns (X, y) for the points whose pixel is valid in every covariate."""
    X, y = [], []
    for east, north, code in points:
        col = int((east - gt[0]) / gt[1])
        row = int((north - gt[3]) / gt[5])
        values = [float(b.ReadAsArray(col, row, 1, 1)[0, 0]) for b in bands]
        if any(v == nd for v, nd in zip(values, nodata)):
            continue
        X.append(values)
        y.append(code)
    return np.array(X, dtype=np.float32), np.array(y)


def predict_block(model, paths, y0, rows):
    """In a pool worker: reads rows y0..y0+rows-1 of every covariate, predicts each valid pixel's class.
    Returns (y0, class block as uint8, 255 on nodata)."""
    cols, valid, width = [], None, None
    for p in paths:
        ds = gdal.Open(p)
        band = ds.GetRasterBand(1)
        a = band.ReadAsArray(0, y0, ds.RasterXSize, rows)
        width = ds.RasterXSize
        ok = a != band.GetNoDataValue()
        valid = ok if valid is None else valid & ok
        cols.append(a.ravel())
    X = np.stack(cols, axis=1)
    out = np.full(rows * width, 255, dtype=np.uint8)
    keep = valid.ravel()
    if keep.any():
        out[keep] = model.predict(X[keep])
    return y0, out.reshape(rows, width)


def create(path, like, bands, dtype, nodata):
    """Creates a GeoTIFF on the grid of 'like', tiled 256 like gridmill's outputs."""
    ds = gdal.GetDriverByName("GTiff").Create(path, like.RasterXSize, like.RasterYSize, bands, dtype, CO)
    ds.SetGeoTransform(like.GetGeoTransform())
    ds.SetProjection(like.GetProjection())
    for b in range(1, bands + 1):
        ds.GetRasterBand(b).SetNoDataValue(nodata)
    return ds


def summarise(out, like, realisations, nclass):
    """Counts each class's votes over the realisation maps, 1000 rows at a time, and writes the summaries."""
    maps = [gdal.Open(p) for p in realisations]
    prob_ds = create(os.path.join(out, "probability.tif"), like, nclass, gdal.GDT_Float32, F32_NODATA)
    class_ds = create(os.path.join(out, "class.tif"), like, 1, gdal.GDT_Byte, 255)
    ent_ds = create(os.path.join(out, "entropy.tif"), like, 1, gdal.GDT_Float32, F32_NODATA)
    conf_ds = create(os.path.join(out, "confusion.tif"), like, 1, gdal.GDT_Float32, F32_NODATA)
    n = len(maps)
    for y0 in range(0, like.RasterYSize, ROWS):
        rows = min(ROWS, like.RasterYSize - y0)
        votes = np.zeros((nclass, rows, like.RasterXSize), dtype=np.uint16)
        nodata = None
        for m in maps:
            cls = m.GetRasterBand(1).ReadAsArray(0, y0, like.RasterXSize, rows)
            nodata = cls == 255 if nodata is None else nodata
            for c in range(nclass):
                votes[c] += cls == c
        p = votes.astype(np.float32) / n
        best = p.argmax(axis=0).astype(np.uint8)
        with np.errstate(divide="ignore", invalid="ignore"):
            ent = -np.where(p > 0, p * np.log2(p), 0).sum(axis=0).astype(np.float32)
        top2 = np.sort(p, axis=0)[-2:]
        conf = (1 - (top2[1] - top2[0])).astype(np.float32)
        p[:, nodata] = F32_NODATA
        best[nodata] = 255
        ent[nodata] = F32_NODATA
        conf[nodata] = F32_NODATA
        prob_ds.WriteArray(p, 0, y0)
        class_ds.GetRasterBand(1).WriteArray(best, 0, y0)
        ent_ds.GetRasterBand(1).WriteArray(ent, 0, y0)
        conf_ds.GetRasterBand(1).WriteArray(conf, 0, y0)
    for ds in (prob_ds, class_ds, ent_ds, conf_ds):
        ds.FlushCache()


def main():
    ap = argparse.ArgumentParser(description="The naive DSMART loop: GDAL + numpy + sklearn + multiprocessing.")
    ap.add_argument("--polygons", required=True)
    ap.add_argument("--class-field", required=True)
    ap.add_argument("--covariates", nargs="+", required=True)
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--samples-per-polygon", type=int, default=20)
    ap.add_argument("--out", required=True)
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--run-iterations", type=int, help="run only the first K iterations (to extrapolate)")
    ap.add_argument("--timings", help="write each phase's seconds here (JSON)")
    a = ap.parse_args()
    t_start = time.monotonic()
    run_iterations = min(a.iterations, a.run_iterations or a.iterations)
    os.makedirs(a.out, exist_ok=True)
    rng = random.Random(a.seed)

    vds = ogr.Open(a.polygons)
    layer = vds.GetLayer(0)
    labels = sorted({f.GetField(a.class_field) for f in layer})
    codes = {lab: i for i, lab in enumerate(labels)}
    with open(os.path.join(a.out, "classes.csv"), "w") as f:
        f.write("code,class\n" + "".join(f"{i},{lab}\n" for i, lab in enumerate(labels)))
    covs = [gdal.Open(p) for p in a.covariates]
    bands = [ds.GetRasterBand(1) for ds in covs]
    nodata = [b.GetNoDataValue() for b in bands]
    gt = covs[0].GetGeoTransform()
    like = covs[0]
    height = like.RasterYSize

    phases = {"sample_s": 0.0, "extract_s": 0.0, "train_s": 0.0, "predict_s": 0.0}
    realisations = []
    with multiprocessing.Pool(a.workers) as pool:
        for it in range(1, run_iterations + 1):
            t = time.monotonic()
            points = sample_points(layer, a.class_field, codes, a.samples_per_polygon, rng)
            phases["sample_s"] += time.monotonic() - t
            t = time.monotonic()
            X, y = extract(points, bands, nodata, gt)
            phases["extract_s"] += time.monotonic() - t
            t = time.monotonic()
            model = DecisionTreeClassifier(max_depth=6, random_state=a.seed + it).fit(X, y)
            phases["train_s"] += time.monotonic() - t

            t = time.monotonic()
            path = os.path.join(a.out, f"realisation-{it:03d}.tif")
            ds = create(path, like, 1, gdal.GDT_Byte, 255)
            band = ds.GetRasterBand(1)

            def write_block(result, band=band):
                y0, block = result
                band.WriteArray(block, 0, y0)

            pending = [pool.apply_async(predict_block, (model, a.covariates, y0, min(ROWS, height - y0)),
                                        callback=write_block) for y0 in range(0, height, ROWS)]
            for r in pending:
                r.get()
            ds = None
            realisations.append(path)
            phases["predict_s"] += time.monotonic() - t
            print(f"naive: iteration {it}/{run_iterations}: {len(y)} samples, "
                  f"{time.monotonic() - t_start:.1f} s so far", flush=True)

    t = time.monotonic()
    summarise(a.out, like, realisations, len(labels))
    phases["summarise_s"] = time.monotonic() - t
    total = time.monotonic() - t_start
    if a.timings:
        with open(a.timings, "w") as f:
            json.dump({"iterations": a.iterations, "iterations_run": run_iterations, "total_s": round(total, 3),
                       **{k: round(v, 3) for k, v in phases.items()}}, f, indent=1)
    print(f"naive: {run_iterations} iteration(s) and the summaries in {total:.1f} s: {a.out}")


if __name__ == "__main__":
    main()
