#!/usr/bin/python3
"""make_bad_run_data.py -- bad inputs for `gridmill run`, next to a study area made by make_run_data.py.

Usage: make_bad_run_data.py DATADIR

Reads DATADIR/meta.json and elevation.tif (make_run_data.py's) and writes into DATADIR:
  mixed.gpkg     layer units (EPSG:32633, geometry type unknown), field soil: FID 1 a square of class
                 "Dermosol", FID 2 a line string of class "Hydrosol", FID 3 a square of class "Tenosol"
  empty.gpkg     layer soil_map: the fields soil, depth, map_unit and no feature
  on_nodata.gpkg layer soil_map, field soil: two rectangles (FIDs 1, 2; classes "Dermosol", "Hydrosol")
                 wholly inside the coast strip, where every covariate is nodata (checked here against
                 elevation.tif: the script fails if any pixel they touch is valid)
  shifted.tif    elevation.tif on a grid one pixel to the east
  notes.txt      a text file, for a map that is not a vector file
It uses no gridmill code.
"""
import json
import os
import sys

import numpy as np
from osgeo import gdal, ogr, osr

gdal.UseExceptions()
ogr.UseExceptions()


def srs_of(epsg):
    """Returns an osr.SpatialReference in traditional GIS (x, y) axis order."""
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return srs


def rect(gt, c0, r0, c1, r1):
    """Returns the polygon of pixel columns c0..c1 and rows r0..r1 (edges, exclusive of c1 and r1)."""
    ring = ogr.Geometry(ogr.wkbLinearRing)
    for c, r in ((c0, r0), (c1, r0), (c1, r1), (c0, r1), (c0, r0)):
        ring.AddPoint_2D(gt[0] + c * gt[1], gt[3] + r * gt[5])
    poly = ogr.Geometry(ogr.wkbPolygon)
    poly.AddGeometry(ring)
    return poly


def write_layer(path, name, epsg, geom_type, features, fields=("soil",)):
    """Writes a GPKG with one layer of string fields; features are (fid, {field: value}, geometry)."""
    if os.path.exists(path):
        gdal.GetDriverByName("GPKG").Delete(path)
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(path)
    lyr = ds.CreateLayer(name, srs_of(epsg), geom_type, ["FID=fid"])
    for f in fields:
        lyr.CreateField(ogr.FieldDefn(f, ogr.OFTString))
    for fid, values, geom in features:
        feat = ogr.Feature(lyr.GetLayerDefn())
        feat.SetFID(fid)
        for k, v in values.items():
            feat.SetField(k, v)
        feat.SetGeometry(geom)
        lyr.CreateFeature(feat)
    ds = None


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__.strip().splitlines()[2])
    d = sys.argv[1]
    with open(os.path.join(d, "meta.json")) as fh:
        meta = json.load(fh)
    gt, epsg = meta["geotransform"], meta["epsg"]
    w, h = meta["size"]

    line = ogr.Geometry(ogr.wkbLineString)
    line.AddPoint_2D(gt[0] + 20 * gt[1], gt[3] + 20 * gt[5])
    line.AddPoint_2D(gt[0] + 60 * gt[1], gt[3] + 40 * gt[5])
    write_layer(os.path.join(d, "mixed.gpkg"), "units", epsg, ogr.wkbUnknown, [
        (1, {"soil": "Dermosol"}, rect(gt, 10, 10, 20, 20)),
        (2, {"soil": "Hydrosol"}, line),
        (3, {"soil": "Tenosol"}, rect(gt, 30, 30, 40, 40)),
    ])
    write_layer(os.path.join(d, "empty.gpkg"), "soil_map", epsg, ogr.wkbMultiPolygon, [],
                fields=("soil", "depth", "map_unit"))

    # The coast strip: every column right of 0.98 w is nodata on every row (make_run_data.py's coast is
    # x > w (0.93 + 0.03 sin + 0.02 sin)); check it on the raster rather than trust the formula.
    c0 = int(np.ceil(0.985 * w))
    boxes = [(c0, 10, w - 1, h // 3), (c0, h // 2, w - 1, h - 10)]
    elev = gdal.Open(os.path.join(d, "elevation.tif"))
    band = elev.GetRasterBand(1)
    values = band.ReadAsArray()
    for (a, b, c, e) in boxes:
        if np.any(values[b:e, a:c] != band.GetNoDataValue()):
            sys.exit("make_bad_run_data.py: cols %d..%d rows %d..%d are not all nodata" % (a, c, b, e))
    write_layer(os.path.join(d, "on_nodata.gpkg"), "soil_map", epsg, ogr.wkbPolygon, [
        (1, {"soil": "Dermosol"}, rect(gt, *boxes[0])),
        (2, {"soil": "Hydrosol"}, rect(gt, *boxes[1])),
    ])

    shifted = gdal.GetDriverByName("GTiff").CreateCopy(os.path.join(d, "shifted.tif"), elev)
    sgt = list(elev.GetGeoTransform())
    sgt[0] += sgt[1]
    shifted.SetGeoTransform(sgt)
    shifted = None
    elev = None
    with open(os.path.join(d, "notes.txt"), "w") as fh:
        fh.write("soil,class\n1,Dermosol\n")


if __name__ == "__main__":
    main()
