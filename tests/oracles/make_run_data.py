#!/usr/bin/python3
"""make_run_data.py -- generate a small synthetic study area for the `gridmill run` integration tests.

Usage: make_run_data.py OUTDIR [--size W H] [--seed S] [--units N]

Writes into OUTDIR, deterministically for a given seed, on a W x H grid (default 400 x 300) of 30 m pixels,
EPSG:32633, geotransform (500000, 30, 0, 5000000, 0, -30):
  elevation.tif      float32, 1 band, nodata -9999, tiled 256x256      features: elevation
  wetness.tif        float32, 1 band, nodata -9999, striped             features: wetness
  climate.tif        float32, 2 bands (rain, temperature), nodata -9999, tiled 128x128
                                                                         features: climate_1, climate_2
                     Every covariate is nodata on an irregular lake and a sinuous coast on the east side;
                     wetness alone is also nodata on a small ellipse (a pixel is nodata if any band is).
  truth.tif          uint8, the true soil class (code = index of its name in CLASSES), 255 where nodata;
                     spatially coherent regions, a deterministic function of the covariates.
  depth_truth.tif    float32, the true soil depth (cm), a smooth function of the covariates, -9999 nodata.
  polygons.gpkg      layer soil_map: about N (default 60) map units, Voronoi cells on the pixel grid
                     vectorised along pixel edges, with the nodata pixels cut out (so every point strictly
                     inside a unit lies on a valid pixel); FID 1..; fields soil (the unit's dominant true
                     class name), depth (the unit's mean true depth), map_unit ("MU001"...).
  polygons_4326.gpkg the same units reprojected to EPSG:4326 with OGR (FIDs kept), in layer soil_map,
                     after a decoy layer "extent" (one rectangle), so MAP:LAYER must be honoured.
  composition.csv    polygon,class,proportion: polygon = FID; the shares of the true classes within each
                     unit (6 decimals, each unit summing to 1); unit FORCED gets exactly 0.7 A / 0.3 B.
  composition_by_id.csv  the same rows with polygon = the map_unit field (for --id-field map_unit).
  obs.gpkg           layer sites: 20 points on valid pixels away from pixel edges, fields site, soil
                     (true class name), depth (true depth); EPSG:32633.
  meta.json          what the tests need: classes (sorted byte-wise, = the codes), covariates, band names,
                     grid, the forced unit and its classes, unit count, layer and field names.
Class names are strings and one starts lower-case ("calcarosol"), so byte-wise order (upper case first)
differs from a case-insensitive one. It uses no gridmill code.
"""
import argparse
import csv
import json
import os
import sys

import numpy as np
from osgeo import gdal, ogr, osr

gdal.UseExceptions()
ogr.UseExceptions()

ORIGIN_X, ORIGIN_Y, PIXEL = 500000.0, 5000000.0, 30.0
EPSG = 32633
NODATA = -9999.0
CLASSES = ["Dermosol", "Hydrosol", "Red Ferrosol", "Tenosol", "calcarosol"]  # byte-wise sorted
FORCED_SHARE_A = 0.7
N_OBS = 20


def srs_of(epsg):
    """Returns an osr.SpatialReference in traditional GIS (x, y) axis order."""
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return srs


def write_tif(path, planes, gdal_type, nodata, gt, options=()):
    """Writes a list of 2-D arrays as the bands of a GeoTIFF with one nodata value on every band."""
    h, w = planes[0].shape
    ds = gdal.GetDriverByName("GTiff").Create(path, w, h, len(planes), gdal_type, options=list(options))
    ds.SetGeoTransform(gt)
    ds.SetProjection(srs_of(EPSG).ExportToWkt())
    for i, p in enumerate(planes):
        band = ds.GetRasterBand(i + 1)
        band.SetNoDataValue(nodata)
        band.WriteArray(p)
    ds.FlushCache()
    ds = None


def smooth_field(rng, h, w, scale, octaves=4):
    """Returns a smooth random field (sum of low-frequency waves) scaled to mean 0, sd 1."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    field = np.zeros((h, w))
    for octave in range(octaves):
        freq = (2 ** octave) / scale
        for _ in range(3):
            angle = rng.uniform(0, np.pi)
            phase = rng.uniform(0, 2 * np.pi)
            field += np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * freq * 2 * np.pi + phase) / (1.8 ** octave)
    return (field - field.mean()) / field.std()


def make_covariates(rng, w, h):
    """Returns (elevation, wetness, rain, temperature) float64 planes and the nodata masks (all, wetness)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    x = xx / (w - 1)
    y = yy / (h - 1)
    elev = 550.0 + 160.0 * smooth_field(rng, h, w, 420.0) + 120.0 * (y - 0.5)
    wet = -0.9 * (elev - 550.0) / 160.0 + 0.7 * smooth_field(rng, h, w, 260.0)
    rain = 700.0 + 180.0 * (x - 0.5) + 0.5 * (elev - 550.0) + 70.0 * smooth_field(rng, h, w, 360.0)
    temp = 16.0 - 0.0065 * (elev - 550.0) - 3.0 * (y - 0.5) + 0.8 * smooth_field(rng, h, w, 500.0)

    lake_field = smooth_field(rng, h, w, 160.0, octaves=3)
    lake = (((xx - 0.35 * w) / (0.13 * w)) ** 2 + ((yy - 0.55 * h) / (0.11 * h)) ** 2) < 1.0 + 0.45 * lake_field
    coast = xx > w * (0.93 + 0.03 * np.sin(yy / 17.0) + 0.02 * np.sin(yy / 5.3))
    wet_only = (((xx - 0.75 * w) / (0.05 * w)) ** 2 + ((yy - 0.25 * h) / (0.04 * h)) ** 2) < 1.0
    return (elev, wet, rain, temp), lake | coast, wet_only


def true_classes(elev, wet, rain, temp, valid):
    """Returns class codes (indices into CLASSES) from class scores over the covariates, balanced by biases."""
    def z(a):
        return (a - a[valid].mean()) / a[valid].std()
    ze, zw, zr, zt = z(elev), z(wet), z(rain), z(temp)
    scores = np.stack([
        0.4 * zt - 0.3 * zw,             # Dermosol: the warm, moderately drained middle
        1.6 * zw - 0.6 * ze,             # Hydrosol: wet low ground
        1.3 * zr + 0.5 * zt,             # Red Ferrosol: high rainfall, warm
        1.5 * ze - 0.4 * zr,             # Tenosol: high ground
        -1.5 * zr - 0.3 * zw,            # calcarosol: dry
    ])
    bias = np.zeros(len(CLASSES))
    for _ in range(200):  # nudge each class towards an equal share, so none is rare
        cls = np.argmax(scores + bias[:, None, None], axis=0)
        shares = np.bincount(cls[valid], minlength=len(CLASSES)) / valid.sum()
        bias += 0.5 * (1.0 / len(CLASSES) - shares)
    return np.argmax(scores + bias[:, None, None], axis=0).astype(np.uint8)


def true_depth(elev, wet, rain):
    """Returns the true soil depth (cm): deep on wet, rainy low ground, shallow on high ground."""
    return 80.0 + 25.0 * wet + 0.06 * (rain - 700.0) - 0.08 * (elev - 550.0) + 10.0 * np.sin(wet * 1.7)


def voronoi_units(rng, w, h, n_units):
    """Returns an int32 raster of unit ids 1..n (nearest jittered seed point)."""
    ny = max(1, int(round(np.sqrt(n_units * h / w))))
    nx = max(1, int(round(n_units / ny)))
    seeds = []
    for j in range(ny):
        for i in range(nx):
            seeds.append(((i + rng.uniform(0.15, 0.85)) * w / nx, (j + rng.uniform(0.15, 0.85)) * h / ny))
    seeds = np.array(seeds)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    d2 = (xx[None] + 0.5 - seeds[:, 0, None, None]) ** 2 + (yy[None] + 0.5 - seeds[:, 1, None, None]) ** 2
    return (np.argmin(d2, axis=0) + 1).astype(np.int32)


def vectorise(ids, gt):
    """Returns {id: ogr.Geometry} of the pixel-edge outlines of each id > 0 (4-connected parts merged)."""
    h, w = ids.shape
    mem = gdal.GetDriverByName("MEM").Create("", w, h, 1, gdal.GDT_Int32)
    mem.SetGeoTransform(gt)
    mem.SetProjection(srs_of(EPSG).ExportToWkt())
    mem.GetRasterBand(1).WriteArray(ids)
    mem.GetRasterBand(1).SetNoDataValue(0)
    vds = ogr.GetDriverByName("Memory").CreateDataSource("")
    lyr = vds.CreateLayer("parts", srs_of(EPSG), ogr.wkbPolygon)
    lyr.CreateField(ogr.FieldDefn("id", ogr.OFTInteger))
    gdal.Polygonize(mem.GetRasterBand(1), mem.GetRasterBand(1).GetMaskBand(), lyr, 0)
    parts = {}
    for f in lyr:
        parts.setdefault(f.GetField("id"), []).append(f.GetGeometryRef().Clone())
    out = {}
    for uid, geoms in parts.items():
        multi = ogr.Geometry(ogr.wkbMultiPolygon)
        for g in geoms:
            multi.AddGeometry(g)
        geom = multi.UnionCascaded() if len(geoms) > 1 else geoms[0]
        if geom.GetGeometryType() == ogr.wkbPolygon:
            geom = ogr.ForceToMultiPolygon(geom)
        out[uid] = geom
    return out


def write_units(path, units, attrs):
    """Writes the map units (ogr geometries in EPSG:32633) to a GPKG layer soil_map with explicit FIDs."""
    if os.path.exists(path):
        gdal.GetDriverByName("GPKG").Delete(path)
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(path)
    lyr = ds.CreateLayer("soil_map", srs_of(EPSG), ogr.wkbMultiPolygon, ["FID=fid"])
    lyr.CreateField(ogr.FieldDefn("soil", ogr.OFTString))
    lyr.CreateField(ogr.FieldDefn("depth", ogr.OFTReal))
    lyr.CreateField(ogr.FieldDefn("map_unit", ogr.OFTString))
    lyr.StartTransaction()
    for fid in sorted(units):
        f = ogr.Feature(lyr.GetLayerDefn())
        f.SetFID(fid)
        f.SetField("soil", attrs[fid]["soil"])
        f.SetField("depth", attrs[fid]["depth"])
        f.SetField("map_unit", attrs[fid]["map_unit"])
        f.SetGeometry(units[fid])
        lyr.CreateFeature(f)
    lyr.CommitTransaction()
    ds = None


def write_units_4326(src, path, w, h):
    """Writes a decoy layer 'extent' then the units of 'src' reprojected to EPSG:4326 (FIDs kept) to 'path'."""
    if os.path.exists(path):
        gdal.GetDriverByName("GPKG").Delete(path)
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(path)
    lyr = ds.CreateLayer("extent", srs_of(4326), ogr.wkbPolygon)
    lyr.CreateField(ogr.FieldDefn("soil", ogr.OFTString))
    ring = ogr.Geometry(ogr.wkbLinearRing)
    for px, py in ((0, 0), (w, 0), (w, h), (0, h), (0, 0)):
        ring.AddPoint_2D(ORIGIN_X + px * PIXEL, ORIGIN_Y - py * PIXEL)
    poly = ogr.Geometry(ogr.wkbPolygon)
    poly.AddGeometry(ring)
    poly.AssignSpatialReference(srs_of(EPSG))
    poly.TransformTo(srs_of(4326))
    f = ogr.Feature(lyr.GetLayerDefn())
    f.SetField("soil", "not a soil")
    f.SetGeometry(poly)
    lyr.CreateFeature(f)
    ds = None
    opts = gdal.VectorTranslateOptions(options=["-t_srs", "EPSG:4326", "-preserve_fid", "-nln", "soil_map"],
                                       accessMode="update")
    if gdal.VectorTranslate(path, src, options=opts) is None:
        sys.exit("make_run_data.py: reprojecting %s failed" % src)


def write_obs(path, points):
    """Writes the observation points (x, y, soil, depth) to a GPKG layer sites in EPSG:32633."""
    if os.path.exists(path):
        gdal.GetDriverByName("GPKG").Delete(path)
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(path)
    lyr = ds.CreateLayer("sites", srs_of(EPSG), ogr.wkbPoint)
    lyr.CreateField(ogr.FieldDefn("site", ogr.OFTString))
    lyr.CreateField(ogr.FieldDefn("soil", ogr.OFTString))
    lyr.CreateField(ogr.FieldDefn("depth", ogr.OFTReal))
    for k, (x, y, soil, depth) in enumerate(points):
        f = ogr.Feature(lyr.GetLayerDefn())
        f.SetField("site", "S%02d" % (k + 1))
        f.SetField("soil", soil)
        f.SetField("depth", depth)
        pt = ogr.Geometry(ogr.wkbPoint)
        pt.AddPoint_2D(x, y)
        f.SetGeometry(pt)
        lyr.CreateFeature(f)
    ds = None


def composition_rows(counts):
    """Returns [(class index, proportion)] from class pixel counts: 6 decimals, summing to exactly 1."""
    total = counts.sum()
    props = {k: round(c / total, 6) for k, c in enumerate(counts) if c > 0}
    big = max(props, key=lambda k: props[k])
    props[big] = round(1.0 - sum(v for k, v in props.items() if k != big), 6)
    return sorted(props.items())


def main():
    ap = argparse.ArgumentParser(description="generate the gridmill run test study area")
    ap.add_argument("outdir")
    ap.add_argument("--size", nargs=2, type=int, default=[400, 300], metavar=("W", "H"))
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--units", type=int, default=60, help="about how many map units (default 60)")
    args = ap.parse_args()
    w, h = args.size
    if w < 40 or h < 40:
        sys.exit("make_run_data.py: --size: each side must be at least 40")
    out = args.outdir
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    gt = (ORIGIN_X, PIXEL, 0.0, ORIGIN_Y, 0.0, -PIXEL)

    (elev, wet, rain, temp), invalid_all, wet_only = make_covariates(rng, w, h)
    invalid = invalid_all | wet_only
    valid = ~invalid
    planes = [p.astype(np.float32) for p in (elev, wet, rain, temp)]
    for p in planes:
        p[invalid_all] = NODATA
    planes[1][wet_only] = NODATA
    write_tif(os.path.join(out, "elevation.tif"), [planes[0]], gdal.GDT_Float32, NODATA, gt,
              ["TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256", "COMPRESS=DEFLATE"])
    write_tif(os.path.join(out, "wetness.tif"), [planes[1]], gdal.GDT_Float32, NODATA, gt)
    write_tif(os.path.join(out, "climate.tif"), planes[2:], gdal.GDT_Float32, NODATA, gt,
              ["TILED=YES", "BLOCKXSIZE=128", "BLOCKYSIZE=128"])

    # The truths are computed from the float32 covariates the model will see.
    e32, w32, r32, t32 = (p.astype(np.float64) for p in planes)
    truth = true_classes(e32, w32, r32, t32, valid)
    truth[invalid] = 255
    write_tif(os.path.join(out, "truth.tif"), [truth], gdal.GDT_Byte, 255, gt)
    depth = true_depth(e32, w32, r32).astype(np.float32)
    depth[invalid] = NODATA
    write_tif(os.path.join(out, "depth_truth.tif"), [depth], gdal.GDT_Float32, NODATA, gt)

    ids = voronoi_units(rng, w, h, args.units)
    ids[invalid] = 0
    units = vectorise(ids, gt)
    attrs, comps = {}, {}
    for uid in sorted(units):
        inside = ids == uid
        counts = np.bincount(truth[inside], minlength=len(CLASSES))[:len(CLASSES)]
        attrs[uid] = {"soil": CLASSES[int(np.argmax(counts))], "depth": round(float(depth[inside].mean()), 3),
                      "map_unit": "MU%03d" % uid, "pixels": int(inside.sum())}
        comps[uid] = composition_rows(counts)

    # The forced unit: the largest, exactly 70 % its dominant class (A), 30 % the next most common one (B).
    forced = max(attrs, key=lambda u: attrs[u]["pixels"])
    counts = np.bincount(truth[ids == forced], minlength=len(CLASSES))[:len(CLASSES)]
    order = np.argsort(-counts, kind="stable")
    cls_a, cls_b = int(order[0]), int(order[1])
    comps[forced] = sorted([(cls_a, FORCED_SHARE_A), (cls_b, round(1.0 - FORCED_SHARE_A, 6))])

    poly_path = os.path.join(out, "polygons.gpkg")
    write_units(poly_path, units, attrs)
    write_units_4326(poly_path, os.path.join(out, "polygons_4326.gpkg"), w, h)
    for name, key in (("composition.csv", None), ("composition_by_id.csv", "map_unit")):
        with open(os.path.join(out, name), "w", newline="") as fh:
            wr = csv.writer(fh, lineterminator="\n")
            wr.writerow(["polygon", "class", "proportion"])
            for uid in sorted(comps):
                for k, p in comps[uid]:
                    wr.writerow([uid if key is None else attrs[uid][key], CLASSES[k], "%.6f" % p])

    # Observations: random valid pixels, each point well inside its pixel.
    cand = np.flatnonzero(valid.ravel())
    pick = np.sort(rng.choice(cand, size=N_OBS, replace=False))
    obs = []
    for flat in pick:
        py, px = divmod(int(flat), w)
        x = ORIGIN_X + (px + rng.uniform(0.2, 0.8)) * PIXEL
        y = ORIGIN_Y - (py + rng.uniform(0.2, 0.8)) * PIXEL
        obs.append((round(x, 3), round(y, 3), CLASSES[truth[py, px]], round(float(depth[py, px]), 3)))
    write_obs(os.path.join(out, "obs.gpkg"), obs)

    shares = np.bincount(truth[valid], minlength=len(CLASSES))[:len(CLASSES)] / valid.sum()
    meta = {
        "size": [w, h], "geotransform": list(gt), "epsg": EPSG, "nodata": NODATA,
        "covariates": ["elevation.tif", "wetness.tif", "climate.tif"],
        "bands": ["elevation", "wetness", "climate_1", "climate_2"],
        "classes": CLASSES, "class_shares": [round(float(s), 4) for s in shares],
        "polygons": "polygons.gpkg", "layer": "soil_map", "polygons_4326": "polygons_4326.gpkg",
        "class_field": "soil", "target_field": "depth", "id_field": "map_unit",
        "units": len(units), "unit_pixels": {str(u): attrs[u]["pixels"] for u in sorted(attrs)},
        "forced": {"polygon": forced, "map_unit": attrs[forced]["map_unit"], "A": CLASSES[cls_a],
                   "B": CLASSES[cls_b], "share_A": FORCED_SHARE_A, "pixels": attrs[forced]["pixels"]},
        "observations": "obs.gpkg", "observations_layer": "sites", "n_observations": N_OBS,
        "valid_pixels": int(valid.sum()),
    }
    with open(os.path.join(out, "meta.json"), "w") as fh:
        json.dump(meta, fh, indent=1)
    print("make_run_data: %dx%d, %d valid pixels, %d map units, class shares %s, forced unit %d (%s 70%% / %s 30%%)"
          % (w, h, valid.sum(), len(units), " ".join("%s:%.0f%%" % (c, 100 * s) for c, s in zip(CLASSES, shares)),
             forced, CLASSES[cls_a], CLASSES[cls_b]))


if __name__ == "__main__":
    main()
