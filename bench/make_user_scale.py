#!/usr/bin/python3
"""make_user_scale.py -- the user's scale from the benchmark's study area: K x K copies of it side by side.

Usage: make_user_scale.py SRCDIR OUTDIR [--copies K]

SRCDIR is a study area of make_bench_data.py (N x N pixels, P map units). OUTDIR gets the same files on a
grid of KN x KN pixels (K = 3 from 4096: 12288^2 = 151 Mpx, the ~150 million pixels of the user's question):
  cov1.tif ... cov8.tif  each covariate's N x N grid repeated K x K times (GeoTIFF tiled 256 x 256, as the source)
  map.gpkg               layer 'map': the P map units repeated K x K times, moved with their copy of the grid,
                         field 'unit' renumbered (copy c's unit u becomes c * P + u), field 'class' kept
  covariates.txt, manifest.json  as make_bench_data.py writes them
"""
import argparse
import json
import os
import time

from osgeo import gdal, ogr

gdal.UseExceptions()


def mosaic_vrt(src, k):
    """Returns the XML of a VRT that places raster 'src' k x k times on a grid k times as wide and high."""
    ds = gdal.Open(src)
    n, m = ds.RasterXSize, ds.RasterYSize
    gt = ds.GetGeoTransform()
    band = ds.GetRasterBand(1)
    nodata = band.GetNoDataValue()
    dtype = gdal.GetDataTypeName(band.DataType)
    bx, by = band.GetBlockSize()
    srs = ds.GetProjection()
    sources = []
    for j in range(k):
        for i in range(k):
            sources.append(
                f'<SimpleSource><SourceFilename relativeToVRT="0">{os.path.abspath(src)}</SourceFilename>'
                f'<SourceBand>1</SourceBand><SourceProperties RasterXSize="{n}" RasterYSize="{m}" '
                f'DataType="{dtype}" BlockXSize="{bx}" BlockYSize="{by}"/>'
                f'<SrcRect xOff="0" yOff="0" xSize="{n}" ySize="{m}"/>'
                f'<DstRect xOff="{i * n}" yOff="{j * m}" xSize="{n}" ySize="{m}"/></SimpleSource>')
    nd = f"<NoDataValue>{nodata!r}</NoDataValue>" if nodata is not None else ""
    return (f'<VRTDataset rasterXSize="{k * n}" rasterYSize="{k * m}"><SRS>{srs}</SRS>'
            f'<GeoTransform>{", ".join(repr(v) for v in gt)}</GeoTransform>'
            f'<VRTRasterBand dataType="{dtype}" band="1">{nd}{"".join(sources)}</VRTRasterBand></VRTDataset>'), gt, n, m


def shift(g, dx, dy):
    """Moves geometry g by (dx, dy) in place, part by part and ring by ring."""
    if g.GetGeometryCount():
        for i in range(g.GetGeometryCount()):
            shift(g.GetGeometryRef(i), dx, dy)
        return
    for i in range(g.GetPointCount()):
        g.SetPoint_2D(i, g.GetX(i) + dx, g.GetY(i) + dy)


def main():
    ap = argparse.ArgumentParser(description="Repeat a benchmark study area K x K times.")
    ap.add_argument("srcdir")
    ap.add_argument("outdir")
    ap.add_argument("--copies", type=int, default=3, help="copies along each axis (3)")
    a = ap.parse_args()
    if a.copies < 1:
        ap.error("--copies must be at least 1")
    t0 = time.monotonic()
    with open(os.path.join(a.srcdir, "manifest.json")) as f:
        man = json.load(f)
    with open(os.path.join(a.srcdir, "covariates.txt")) as f:
        covs = [line.strip() for line in f if line.strip()]
    os.makedirs(a.outdir, exist_ok=True)
    k = a.copies
    out_covs = []
    for src in covs:
        xml, gt, n, m = mosaic_vrt(src, k)
        dst = os.path.join(os.path.abspath(a.outdir), os.path.basename(src))
        gdal.Translate(dst + ".part", xml, format="GTiff",
                       creationOptions=["TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256", "BIGTIFF=IF_SAFER"])
        os.replace(dst + ".part", dst)
        out_covs.append(dst)

    # The map units, copy by copy, moved by the copy's offset on the grid.
    src_ds = ogr.Open(os.path.join(a.srcdir, "map.gpkg"))
    src_layer = src_ds.GetLayer("map")
    nunits = src_layer.GetFeatureCount()
    path = os.path.join(a.outdir, "map.gpkg")
    if os.path.exists(path):
        os.remove(path)
    dst_ds = ogr.GetDriverByName("GPKG").CreateDataSource(path)
    dst_layer = dst_ds.CreateLayer("map", src_layer.GetSpatialRef(), src_layer.GetGeomType())
    defn = src_layer.GetLayerDefn()
    for i in range(defn.GetFieldCount()):
        dst_layer.CreateField(defn.GetFieldDefn(i))
    dst_layer.StartTransaction()
    for j in range(k):
        for i in range(k):
            dx, dy = i * n * gt[1], j * m * gt[5]
            copy = j * k + i
            src_layer.ResetReading()
            for feat in src_layer:
                g = feat.GetGeometryRef().Clone()
                shift(g, dx, dy)
                out = ogr.Feature(dst_layer.GetLayerDefn())
                out.SetFrom(feat)
                out.SetField("unit", copy * nunits + feat.GetField("unit"))
                out.SetGeometry(g)
                dst_layer.CreateFeature(out)
    dst_layer.CommitTransaction()
    dst_ds = None

    with open(os.path.join(a.outdir, "covariates.txt"), "w") as f:
        f.write("".join(c + "\n" for c in out_covs))
    man.update({"size": k * man["size"], "copies": k, "source": os.path.abspath(a.srcdir),
                "polygons": path, "polygon_count": k * k * nunits, "covariates": out_covs,
                "valid_pixels": k * k * man["valid_pixels"]})
    with open(os.path.join(a.outdir, "manifest.json"), "w") as f:
        json.dump(man, f, indent=1)
    print(f"make_user_scale: {k * n}x{k * m} pixels, {k * k * nunits} map units in {a.outdir} "
          f"({time.monotonic() - t0:.0f} s)")


if __name__ == "__main__":
    main()
