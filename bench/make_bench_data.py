#!/usr/bin/python3
"""make_bench_data.py -- generate the benchmark's study area: covariates, a legacy map, a 100-tree forest.

Usage: make_bench_data.py OUTDIR [--size N] [--polygons P] [--classes C] [--trees T] [--samples S] [--seed S]

Writes into OUTDIR, on a square N x N grid (30 m pixels, UTM 55S):
  cov1.tif ... cov8.tif  eight float32 covariates, GeoTIFF tiled 256x256, uncompressed, nodata -9999: smooth
                         structured fields (terrain, its slope and aspect, wetness, rainfall, temperature,
                         vegetation, radiometrics) with the sea beyond an irregular coast and a lake as nodata
  truth.tif              the "true" class of every pixel (uint8, 255 on nodata), the source of the labels below
  map.gpkg               layer 'map': P map units (Voronoi cells polygonized with gdal.Polygonize from a cell-id
                         raster, cut by the nodata, one (multi)polygon each), field 'unit' (int) and field
                         'class' (text 'c01'...'c12': the unit's dominant true class; every class is present)
  forest.json            XGBoost multi:softprob model for predict-only: a random forest of T trees in ONE
                         boosting round (num_parallel_tree=T, max_depth 6, eta 1, subsample 0.632,
                         colsample_bynode 0.5), i.e. T x C regression trees, trained on S random valid pixels
  forest_samples.csv     those S pixels (cov1..cov8, class code 0..C-1): the R peer trains its ranger forest on them
  covariates.txt         the covariate paths, one a line;  manifest.json  what was made, with the timings

Everything is generated in strips of rows, so memory stays near 100 bytes a pixel (about 1.7 GB at 4096^2).
"""
import argparse
import json
import os
import time

import numpy as np
import xgboost as xgb
from osgeo import gdal, ogr, osr
from scipy.spatial import cKDTree

gdal.UseExceptions()
NODATA = -9999.0
NCOV = 8
TILE = 256
STRIP = 512  # rows generated at a time (a multiple of TILE)
PIXEL = 30.0


class Field:
    """A smooth random field: a sum of plane waves over octaves, evaluated strip by strip.

    Each wave sin(fx*x + fy*y + phase) is split into sin(fx*x)cos(fy*y + phase) + cos(fx*x)sin(fy*y + phase),
    so a strip costs two outer products per wave instead of a sine per pixel."""

    def __init__(self, rng, scale, octaves=4, waves=3):
        self.waves = []
        for octave in range(octaves):
            freq = 2 * np.pi * (2 ** octave) / scale
            for _ in range(waves):
                angle = rng.uniform(0, np.pi)
                self.waves.append((freq * np.cos(angle), freq * np.sin(angle), rng.uniform(0, 2 * np.pi),
                                   1.0 / (1.7 ** octave)))

    def strip(self, y0, y1, w):
        """Returns the field on rows y0..y1-1 of a grid w pixels wide, float32."""
        x = np.arange(w, dtype=np.float64)
        y = np.arange(y0, y1, dtype=np.float64)
        out = np.zeros((y1 - y0, w), dtype=np.float32)
        for fx, fy, phase, amp in self.waves:
            sx, cx = (amp * np.sin(fx * x)).astype(np.float32), (amp * np.cos(fx * x)).astype(np.float32)
            cy, sy = np.cos(fy * y + phase).astype(np.float32), np.sin(fy * y + phase).astype(np.float32)
            out += np.multiply.outer(cy, sx)
            out += np.multiply.outer(sy, cx)
        return out


def nodata_strip(y0, y1, n):
    """Returns the nodata mask (True = nodata) on rows y0..y1-1: the sea beyond a wavy east coast, and a lake."""
    yy, xx = np.mgrid[y0:y1, 0:n].astype(np.float32)
    coast = n * (0.9 + 0.04 * np.sin(yy / (0.05 * n)) + 0.02 * np.sin(yy / (0.013 * n)))
    lake = ((xx - 0.3 * n) / (0.07 * n)) ** 2 + ((yy - 0.6 * n) / (0.05 * n)) ** 2 < 1
    return (xx > coast) | lake


def covariate_strip(fields, y0, y1, n, ncov=8):
    """Returns the covariates on rows y0..y1-1 as a (ncov, rows, n) float32 array, before nodata: the eight
    terrain, climate and imagery ones, then (ncov > 8) more, each a mix of two of those and a smooth field of
    its own (as a user's extra bands: derived terrain indices, more imagery)."""
    # one row of margin above and below, so that slope and aspect are continuous across strips
    a, b = max(0, y0 - 1), min(n, y1 + 1)
    elev_m = 400 + 250 * fields["elev"].strip(a, b, n)
    gy, gx = np.gradient(elev_m, PIXEL)
    cut = slice(y0 - a, (y0 - a) + (y1 - y0))
    elev, gy, gx = elev_m[cut], gy[cut], gx[cut]
    slope = np.degrees(np.arctan(np.hypot(gx, gy)))
    northness = gy / (np.hypot(gx, gy) + 1e-6)
    wet = np.log1p(1.0 / (np.tan(np.radians(slope)) + 0.01)) + 0.4 * fields["wet"].strip(y0, y1, n)
    xx = np.arange(n, dtype=np.float32)[None, :] / n
    rain = 600 + 500 * xx + 0.8 * (elev - 400) + 40 * fields["rain"].strip(y0, y1, n)
    temp = 22 - 0.0065 * elev - 3 * (np.arange(y0, y1, dtype=np.float32)[:, None] / n) + \
        0.5 * fields["temp"].strip(y0, y1, n)
    ndvi = np.clip(0.2 + 0.0004 * rain - 0.004 * slope + 0.05 * fields["ndvi"].strip(y0, y1, n), -0.2, 0.95)
    gamma = 50 + 20 * fields["gamma"].strip(y0, y1, n)
    base = [elev, slope, northness, wet, rain, temp, ndvi, gamma]
    extra = []
    for k in range(8, ncov):
        a_, b_ = base[k % 8], base[(3 * k + 1) % 8]
        extra.append((0.5 + 0.05 * k) * a_ - (0.3 + 0.02 * k) * b_ + 10 * fields[f"x{k}"].strip(y0, y1, n))
    return np.stack(base + extra).astype(np.float32)


def create_tif(path, n, bands, dtype, gt, wkt, nodata):
    """Creates an n x n GeoTIFF tiled 256x256, uncompressed, with a nodata value on every band."""
    ds = gdal.GetDriverByName("GTiff").Create(path, n, n, bands, dtype,
                                              ["TILED=YES", f"BLOCKXSIZE={TILE}", f"BLOCKYSIZE={TILE}"])
    ds.SetGeoTransform(gt)
    ds.SetProjection(wkt)
    for b in range(1, bands + 1):
        ds.GetRasterBand(b).SetNoDataValue(nodata)
    return ds


def polygonize(unit, gt, srs, path, labels):
    """Polygonizes the cell-id raster (0 = none) and writes one feature per cell into 'path' (GPKG):
    the cell's pieces as one MultiPolygon, its id in 'unit' and labels[id] in 'class'."""
    n = unit.shape[0]
    mem = gdal.GetDriverByName("MEM").Create("", n, n, 1, gdal.GDT_Int32)
    mem.SetGeoTransform(gt)
    mem.GetRasterBand(1).WriteArray(unit)
    mem.GetRasterBand(1).SetNoDataValue(0)
    mds = ogr.GetDriverByName("Memory").CreateDataSource("pieces")
    pieces = mds.CreateLayer("pieces", srs, ogr.wkbPolygon)
    pieces.CreateField(ogr.FieldDefn("unit", ogr.OFTInteger))
    gdal.Polygonize(mem.GetRasterBand(1), mem.GetRasterBand(1), pieces, 0)
    parts = {}
    for f in pieces:
        parts.setdefault(f.GetField(0), []).append(f.GetGeometryRef().Clone())
    if os.path.exists(path):
        os.remove(path)
    vds = ogr.GetDriverByName("GPKG").CreateDataSource(path)
    layer = vds.CreateLayer("map", srs, ogr.wkbMultiPolygon)
    layer.CreateField(ogr.FieldDefn("unit", ogr.OFTInteger))
    layer.CreateField(ogr.FieldDefn("class", ogr.OFTString))
    layer.StartTransaction()
    for uid in sorted(parts):
        multi = ogr.Geometry(ogr.wkbMultiPolygon)
        for g in parts[uid]:
            multi.AddGeometry(g)
        f = ogr.Feature(layer.GetLayerDefn())
        f.SetField("unit", int(uid))
        f.SetField("class", labels[uid])
        f.SetGeometry(multi)
        layer.CreateFeature(f)
    layer.CommitTransaction()
    vds = None
    return len(parts)


def label_units(unit, truth, npoly, nclass):
    """Returns each unit's class code: its dominant true class, then the missing classes (if any) given to the
    unit where that class is most common among units whose class is shared with others."""
    valid = unit > 0
    counts = np.bincount(unit[valid].astype(np.int64) * nclass + truth[valid],
                         minlength=(npoly + 1) * nclass).reshape(npoly + 1, nclass)[1:]
    code = counts.argmax(axis=1)
    for c in range(nclass):
        if (code == c).any():
            continue
        share = counts[:, c] / np.maximum(counts.sum(axis=1), 1)
        shared = np.bincount(code, minlength=nclass)[code] > 1
        share[~shared] = -1
        code[int(share.argmax())] = c
    return code


def main():
    ap = argparse.ArgumentParser(description="Generate the gridmill benchmark's study area.")
    ap.add_argument("outdir")
    ap.add_argument("--size", type=int, default=4096, help="grid side in pixels (4096)")
    ap.add_argument("--polygons", type=int, default=1000, help="map units (1000)")
    ap.add_argument("--classes", type=int, default=12, help="classes (12)")
    ap.add_argument("--trees", type=int, default=100, help="trees of the forest model (100)")
    ap.add_argument("--samples", type=int, default=20000, help="pixels the forest is trained on (20000)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--covariates", type=int, default=NCOV, help="covariates (8; up to 60: the users' 15-60)")
    a = ap.parse_args()
    n, nclass = a.size, a.classes
    if a.classes > 99 or a.size < TILE:
        ap.error("need --classes <= 99 and --size >= 256")
    t_start = time.monotonic()
    timings = {}
    rng = np.random.default_rng(a.seed)
    os.makedirs(a.outdir, exist_ok=True)
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32755)
    wkt = srs.ExportToWkt()
    gt = (500000.0, PIXEL, 0.0, 5300000.0, 0.0, -PIXEL)

    # 1. covariates, strip by strip; kept in memory (float32) for the class rules and the samples
    span = n / 4096 * 2500.0  # the largest wave's length in pixels, so that landscapes look alike at any size
    fields = {"elev": Field(rng, span), "wet": Field(rng, span / 4), "rain": Field(rng, span / 2),
              "temp": Field(rng, span / 3), "ndvi": Field(rng, span / 8), "gamma": Field(rng, span / 5)}
    ncov = a.covariates
    for k in range(8, ncov):  # made after the first ones: their fields, so cov1..cov8 stay as before
        fields[f"x{k}"] = Field(rng, span / (2 + k % 7))
    cov = np.empty((ncov, n, n), dtype=np.float32)
    invalid = np.empty((n, n), dtype=bool)
    for y0 in range(0, n, STRIP):
        y1 = min(n, y0 + STRIP)
        cov[:, y0:y1] = covariate_strip(fields, y0, y1, n, ncov)
        invalid[y0:y1] = nodata_strip(y0, y1, n)
    paths = [os.path.join(a.outdir, f"cov{i + 1}.tif") for i in range(ncov)]
    for i, path in enumerate(paths):
        ds = create_tif(path, n, 1, gdal.GDT_Float32, gt, wkt, NODATA)
        band = ds.GetRasterBand(1)
        for y0 in range(0, n, STRIP):
            y1 = min(n, y0 + STRIP)
            strip = cov[i, y0:y1].copy()
            strip[invalid[y0:y1]] = NODATA
            band.WriteArray(strip, 0, y0)
        ds = None
    timings["covariates_s"] = time.monotonic() - t_start

    # 2. the true classes: argmax of random linear rules on the standardised covariates plus smooth noise
    t = time.monotonic()
    valid_idx = np.flatnonzero(~invalid.ravel())
    probe = rng.choice(valid_idx, size=min(200000, valid_idx.size), replace=False)
    flat = cov.reshape(ncov, -1)
    mean = flat[:, probe].mean(axis=1)
    std = flat[:, probe].std(axis=1) + 1e-9
    weights = rng.normal(0, 1, (nclass, ncov)).astype(np.float32)
    class_noise = [Field(rng, span / 6, octaves=3, waves=2) for _ in range(nclass)]
    truth = np.empty((n, n), dtype=np.uint8)
    for y0 in range(0, n, STRIP):
        y1 = min(n, y0 + STRIP)
        z = (cov[:, y0:y1] - mean[:, None, None]) / std[:, None, None]
        score = np.tensordot(weights, z, axes=1)
        for c in range(nclass):
            score[c] += 0.8 * class_noise[c].strip(y0, y1, n)
        truth[y0:y1] = score.argmax(axis=0)
    truth_out = np.where(invalid, 255, truth).astype(np.uint8)
    ds = create_tif(os.path.join(a.outdir, "truth.tif"), n, 1, gdal.GDT_Byte, gt, wkt, 255)
    ds.GetRasterBand(1).WriteArray(truth_out)
    ds = None
    del truth_out
    timings["truth_s"] = time.monotonic() - t

    # 3. the legacy map: Voronoi cells around seeds on land, cut by the nodata, labelled with the dominant class
    t = time.monotonic()
    seeds_idx = rng.choice(valid_idx, size=a.polygons, replace=False)
    seeds = np.stack([seeds_idx % n, seeds_idx // n], axis=1).astype(np.float64) + 0.5
    tree = cKDTree(seeds)
    unit = np.empty((n, n), dtype=np.int32)
    xs = np.arange(n, dtype=np.float64) + 0.5
    for y0 in range(0, n, STRIP):
        y1 = min(n, y0 + STRIP)
        ys = np.arange(y0, y1, dtype=np.float64) + 0.5
        pts = np.stack([np.tile(xs, y1 - y0), np.repeat(ys, n)], axis=1)
        _, nearest = tree.query(pts, workers=-1)
        unit[y0:y1] = (nearest + 1).reshape(y1 - y0, n)
    unit[invalid] = 0
    codes = label_units(unit, truth, a.polygons, nclass)
    labels = {uid: f"c{int(codes[uid - 1]) + 1:02d}" for uid in range(1, a.polygons + 1)}
    nfeat = polygonize(unit, gt, srs, os.path.join(a.outdir, "map.gpkg"), labels)
    del unit
    timings["polygons_s"] = time.monotonic() - t

    # 4. the predict-only model: an XGBoost random forest of T trees trained on S random valid pixels
    t = time.monotonic()
    pick = np.sort(rng.choice(valid_idx, size=min(a.samples, valid_idx.size), replace=False))
    X = np.ascontiguousarray(flat[:, pick].T)
    y = truth.ravel()[pick]
    names = [f"cov{i + 1}" for i in range(ncov)]
    with open(os.path.join(a.outdir, "forest_samples.csv"), "w") as f:
        f.write(",".join(names) + ",class\n")
        for row, cls in zip(X, y):
            f.write(",".join(f"{v:.9g}" for v in row) + f",{int(cls)}\n")
    params = {"objective": "multi:softprob", "num_class": nclass, "max_depth": 6, "eta": 1.0,
              "num_parallel_tree": a.trees, "subsample": 0.632, "colsample_bynode": 0.5,
              "tree_method": "hist", "nthread": os.cpu_count() or 1, "seed": a.seed}
    booster = xgb.train(params, xgb.DMatrix(X, label=y, feature_names=names), num_boost_round=1)
    booster.save_model(os.path.join(a.outdir, "forest.json"))
    timings["forest_s"] = time.monotonic() - t

    with open(os.path.join(a.outdir, "covariates.txt"), "w") as f:
        f.write("\n".join(paths) + "\n")
    timings["total_s"] = time.monotonic() - t_start
    manifest = {"size": n, "covariates": paths, "nodata": NODATA, "valid_pixels": int(valid_idx.size),
                "polygons": os.path.join(a.outdir, "map.gpkg"), "polygon_count": nfeat, "class_field": "class",
                "classes": nclass, "classes_present": int(np.unique(codes).size),
                "forest": os.path.join(a.outdir, "forest.json"), "forest_params": params,
                "forest_samples": os.path.join(a.outdir, "forest_samples.csv"), "seed": a.seed,
                "timings": {k: round(v, 1) for k, v in timings.items()}}
    with open(os.path.join(a.outdir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    print(f"make_bench_data: {n}x{n}, {ncov} covariates, {nfeat} polygons, {manifest['classes_present']} classes, "
          f"forest of {a.trees} trees in {a.outdir} ({timings['total_s']:.0f} s)")


if __name__ == "__main__":
    main()
