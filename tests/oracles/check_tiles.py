#!/usr/bin/python3
"""check_tiles.py -- every tile of every given GeoTIFF is on disk: none left sparse (offset or size 0), as
python3-gdal's TIFF metadata domain reports them (BLOCK_OFFSET_x_y, BLOCK_SIZE_x_y), for every band.

Usage: check_tiles.py FILE.tif...   Exits 1, naming the files and tiles, when any tile is missing."""
import sys

from osgeo import gdal

gdal.UseExceptions()


def main():
    missing, total = [], 0
    for path in sys.argv[1:]:
        ds = gdal.Open(path)
        for i in range(1, ds.RasterCount + 1):
            band = ds.GetRasterBand(i)
            bx, by = band.GetBlockSize()
            nx, ny = (ds.RasterXSize + bx - 1) // bx, (ds.RasterYSize + by - 1) // by
            for y in range(ny):
                for x in range(nx):
                    total += 1
                    off = band.GetMetadataItem(f"BLOCK_OFFSET_{x}_{y}", "TIFF")
                    size = band.GetMetadataItem(f"BLOCK_SIZE_{x}_{y}", "TIFF")
                    if not off or not size or int(off) == 0 or int(size) == 0:
                        missing.append(f"{path} band {i} tile {x},{y}")
    if missing:
        print(f"{len(missing)} of {total} tiles are not on disk (sparse):")
        for m in missing[:20]:
            print("  " + m)
        sys.exit(1)
    print(f"all {total} tiles of {len(sys.argv) - 1} files are on disk")


if __name__ == "__main__":
    main()
