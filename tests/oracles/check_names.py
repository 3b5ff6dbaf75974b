#!/usr/bin/python3
"""check_names.py -- the oracle of class names and colours in a gridmill output folder.

Usage: check_names.py DIR [--classes CSV] [--nclass N]

For every classification output in DIR it checks, reading them with python3-gdal:
  probability.tif   band k's description is class k's name (from CSV: code,class), or "class k" without CSV
  class.tif, nprob_class.tif, realisation-*.tif (when they hold classes)
                    a colour table whose entries 0 .. N-1 are the colours scripts/gridmill-report's
                    ClassPalette gives codes 0 .. N-1 (the report's own Python, loaded from its file; band 1,
                    as a GeoTIFF holds one), and,
                    with CSV, GDAL category names equal to the class names
N is the CSV's row count, or --nclass. Exit 0 with one OK line, 1 with what differs.
"""
import argparse
import csv
import glob
import importlib.machinery
import importlib.util
import os
import sys

from osgeo import gdal

gdal.UseExceptions()
HERE = os.path.dirname(os.path.abspath(__file__))


def report_palette():
    """The report's ClassPalette class, from scripts/gridmill-report."""
    path = os.path.join(HERE, "..", "..", "scripts", "gridmill-report")
    loader = importlib.machinery.SourceFileLoader("gridmill_report", path)
    spec = importlib.util.spec_from_loader("gridmill_report", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod.ClassPalette(), mod.hex_rgb


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--classes")
    ap.add_argument("--nclass", type=int)
    a = ap.parse_args()
    names = None
    if a.classes:
        with open(a.classes, newline="") as f:
            rows = list(csv.DictReader(f))
        names = [r["class"] for r in sorted(rows, key=lambda r: int(r["code"]))]
    n = len(names) if names else a.nclass
    palette, hex_rgb = report_palette()
    want_colours = [hex_rgb(palette.colour(c)) for c in range(n)]
    problems, checked = [], []
    prob = os.path.join(a.dir, "probability.tif")
    if os.path.exists(prob):
        ds = gdal.Open(prob)
        for k in range(ds.RasterCount):
            want = names[k] if names else f"class {k}"
            got = ds.GetRasterBand(k + 1).GetDescription()
            if got != want:
                problems.append(f"probability.tif band {k + 1}: description {got!r}, expected {want!r}")
        checked.append("probability.tif")
    files = [os.path.join(a.dir, f) for f in ("class.tif", "nprob_class.tif")]
    files += sorted(glob.glob(os.path.join(a.dir, "realisation-*.tif")))
    for path in files:
        if not os.path.exists(path):
            continue
        ds = gdal.Open(path)
        for b in range(1, ds.RasterCount + 1):
            band = ds.GetRasterBand(b)
            ct = band.GetColorTable()
            where = f"{os.path.basename(path)} band {b}"
            if b > 1:  # a GeoTIFF holds one colour table, band 1's
                ct = None
            elif ct is None:
                problems.append(f"{where}: no colour table")
                continue
            got = want_colours if ct is None else [tuple(ct.GetColorEntry(c)[:3]) for c in range(min(n, ct.GetCount()))]
            if got != want_colours:
                bad = next(c for c in range(n) if c >= len(got) or got[c] != want_colours[c])
                problems.append(f"{where}: class {bad} coloured {got[bad] if bad < len(got) else None}, the report "
                                f"colours it {want_colours[bad]}")
            cats = band.GetCategoryNames()
            if names and list(cats or [])[:n] != names:
                problems.append(f"{where}: category names {cats}, expected {names}")
            if not names and cats:
                problems.append(f"{where}: category names {cats} without class names")
        checked.append(os.path.basename(path))
    if not checked:
        problems.append(f"{a.dir}: no classification output")
    if problems:
        print("\n".join(problems[:10]))
        return 1
    print(f"names and colours: {len(checked)} files, {n} classes{' named' if names else ''}, colours = the report's")
    return 0


if __name__ == "__main__":
    sys.exit(main())
