#!/usr/bin/python3
"""check_report.py -- independent checks of the quicklooks and report.html that gridmill-report wrote.

Usage: check_report.py DIR [--max-size N] [--screenshot PNG] [--min-colours K] [--min-pixels P]

DIR is a gridmill output folder after `gridmill-report DIR`. Checked, from the files only:
  quicklook.png          one paletted Byte band with a colour table; long side at most --max-size (1024); the
                         aspect of its source (class.tif, else mean.tif or prediction.tif) within one quicklook
                         pixel. For class.tif every quicklook pixel is compared with the source pixels under it
                         (its footprint): where the footprint is one class, the pixel is opaque and every such
                         pixel of that class has the same colour; two classes never share a colour; every class
                         present in class.tif has its colour found so (or, when the map is downsampled so much
                         that a class fills no whole footprint, is counted as unverified, at most 10 %% of them);
                         footprints of nodata only are transparent or white; mixed footprints take one of the
                         class colours (or transparent where nodata is among them).
                         For a ramp map, the palette index rises with the footprint's mean (Spearman >= 0.9).
  quicklook_entropy.png  when entropy.tif or sd.tif exists: the same size rules, transparent where the source is
                         nodata, index rising with the footprint's mean.
  report.html            img tags for both PNGs by relative path; no external URL (src, href, url()); the class
                         legend: each name of classes.csv in a row with a swatch whose colour is that class's
                         quicklook colour (for classes present); with run.json: its verdict text, an <svg> with a
                         <text> per timeline stage and bars, every stage name, parameter key, output file and
                         sha256 it records.
With --screenshot PNG (a browser's rendering of report.html): at least --min-colours (3, or the number of
classes if fewer) class colours each on at least --min-pixels (500) pixels matched exactly, and each class's
share among those pixels within 0.05 of its share of class.tif's valid pixels (so the map itself is shown,
not only the legend swatches).
Exit 0 with one OK line, 1 listing each problem, 2 if the oracle itself cannot run. It uses no gridmill code.
"""
import argparse
import csv
import html.parser
import json
import os
import re
import sys

import numpy as np
from osgeo import gdal

gdal.UseExceptions()

SHARE_TOL = 0.05


def die(msg):
    """Prints an oracle failure (not a report mismatch) and exits 2."""
    print("check_report: %s" % msg, file=sys.stderr)
    sys.exit(2)


class Page(html.parser.HTMLParser):
    """Collects from an HTML page: its text, img srcs, URL-bearing attributes, table rows (cells' text and
    colours in style attributes) and svg elements (their texts and rect count)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.text = []
        self.imgs = []
        self.urls = []
        self.rows = []
        self.svgs = []
        self._row = None
        self._svg_depth = 0
        self._in_text = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for k in ("src", "href", "xlink:href", "action", "poster"):
            if a.get(k):
                self.urls.append(a[k])
        for m in re.finditer(r"url\(\s*['\"]?([^)'\"]+)", a.get("style") or ""):
            self.urls.append(m.group(1))
        if tag == "img":
            self.imgs.append(a.get("src") or "")
        if tag == "tr":
            self._row = {"cells": [], "colours": []}
            self.rows.append(self._row)
        if tag in ("td", "th") and self._row is not None:
            self._row["cells"].append("")
        if self._row is not None:
            for m in re.finditer(r"#[0-9a-fA-F]{6}\b", a.get("style") or ""):
                self._row["colours"].append(m.group(0).lower())
        if tag == "svg":
            if self._svg_depth == 0:
                self.svgs.append({"texts": [], "rects": 0})
            self._svg_depth += 1
        if self._svg_depth:
            if tag == "rect":
                self.svgs[-1]["rects"] += 1
            if tag == "text":
                self._in_text = True
                self.svgs[-1]["texts"].append("")

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag == "svg":
            self._svg_depth -= 1

    def handle_endtag(self, tag):
        if tag == "tr":
            self._row = None
        if tag == "svg" and self._svg_depth:
            self._svg_depth -= 1
        if tag == "text":
            self._in_text = False

    def handle_data(self, data):
        self.text.append(data)
        if self._row is not None and self._row["cells"]:
            self._row["cells"][-1] += data
        if self._in_text and self._svg_depth:
            self.svgs[-1]["texts"][-1] += data


def read_png(rep, path, max_size, src_size):
    """Opens a quicklook; checks it is one paletted Byte band with a colour table, its size and aspect.
    Returns (index array, colour table as an [n, 4] array) or (None, None)."""
    name = os.path.basename(path)
    if not os.path.exists(path):
        rep.append("%s: missing" % name)
        return None, None
    ds = gdal.Open(path)
    if ds.GetDriver().ShortName != "PNG":
        rep.append("%s: driver %s, not PNG" % (name, ds.GetDriver().ShortName))
    band = ds.GetRasterBand(1)
    ct = band.GetColorTable()
    if ds.RasterCount != 1 or band.DataType != gdal.GDT_Byte or ct is None \
            or band.GetColorInterpretation() != gdal.GCI_PaletteIndex:
        rep.append("%s: not one paletted Byte band with a colour table (%d bands, type %s, colour table %s)"
                   % (name, ds.RasterCount, gdal.GetDataTypeName(band.DataType), ct is not None))
        return None, None
    w, h = ds.RasterXSize, ds.RasterYSize
    W, H = src_size
    if max(w, h) > max_size:
        rep.append("%s: %d x %d, long side above %d" % (name, w, h, max_size))
    if w > W or h > H:
        rep.append("%s: %d x %d, larger than its source (%d x %d)" % (name, w, h, W, H))
    if abs(w * H - h * W) > max(W, H):
        rep.append("%s: %d x %d does not keep the aspect of its source %d x %d" % (name, w, h, W, H))
    table = np.array([ct.GetColorEntry(i) for i in range(ct.GetCount())], dtype=np.int64)
    index = band.ReadAsArray()
    if index.max() >= len(table):
        rep.append("%s: index %d beyond its %d-entry colour table" % (name, index.max(), len(table)))
        return None, None
    return index, table


def footprints(shape_src, shape_png):
    """Returns, per axis, each quicklook pixel's footprint in the source as (starts, ends): every source pixel it
    touches, even in part, so whatever source pixel a resampling picks lies inside."""
    out = []
    for n_src, n_png in zip(shape_src, shape_png):
        edges = np.arange(n_png + 1) * (n_src / n_png)
        starts = np.floor(edges[:-1] + 1e-9).astype(np.int64)
        ends = np.minimum(n_src, np.ceil(edges[1:] - 1e-9).astype(np.int64))
        out.append((starts, np.maximum(ends, starts + 1)))
    return out


def block_reduce(a, spans, ufunc):
    """Returns ufunc (np.minimum, np.maximum, np.add) reduced over each (possibly overlapping) footprint."""
    (r0, r1), (c0, c1) = spans
    rows = np.stack([ufunc.reduce(a[s:e], axis=0) for s, e in zip(r0, r1)])
    return np.stack([ufunc.reduce(rows[:, s:e], axis=1) for s, e in zip(c0, c1)], axis=1)


def ranks(a):
    """Returns the ranks of a 1-D array, ties given their average rank."""
    _, inverse, counts = np.unique(a, return_inverse=True, return_counts=True)
    start = np.cumsum(counts) - counts
    return (start + (counts - 1) / 2.0)[inverse]


def spearman(x, y):
    """Returns Spearman's rank correlation of two 1-D arrays (1 when either is constant)."""
    if x.size < 3:
        return 1.0
    rx, ry = ranks(x), ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return 1.0
    return float(np.corrcoef(rx, ry)[0, 1])


def check_class_map(rep, d, max_size):
    """Checks quicklook.png against class.tif. Returns ({code: colour hex}, {code: share}, note)."""
    ds = gdal.Open(os.path.join(d, "class.tif"))
    band = ds.GetRasterBand(1)
    nodata = band.GetNoDataValue()
    codes = band.ReadAsArray().astype(np.int64)
    invalid = codes == int(nodata) if nodata is not None else np.zeros(codes.shape, bool)
    present, counts = np.unique(codes[~invalid], return_counts=True)
    present = [int(c) for c in present]
    shares = {c: n / counts.sum() for c, n in zip(present, counts)}
    index, table = read_png(rep, os.path.join(d, "quicklook.png"), max_size, (codes.shape[1], codes.shape[0]))
    if index is None:
        return {}, shares, ""
    rgba = table[index]
    name = "quicklook.png"
    spans = footprints(codes.shape, index.shape)
    marked = np.where(invalid, -1, codes)
    lo = block_reduce(marked, spans, np.minimum)
    hi = block_reduce(marked, spans, np.maximum)
    has_nodata = lo == -1
    only_nodata = has_nodata & (hi == -1)
    uniform = (lo == hi) & ~has_nodata
    blank = (rgba[..., 3] == 0) | ((rgba[..., 0] == 255) & (rgba[..., 1] == 255) & (rgba[..., 2] == 255))
    opaque = rgba[..., 3] == 255
    colour_id = (rgba[..., 0] << 16) | (rgba[..., 1] << 8) | rgba[..., 2]

    # Nodata: blank over nodata only; blank elsewhere only where nodata is under the pixel.
    for bad, what in ((only_nodata & ~blank, "over nodata only are neither transparent nor white"),
                      (~has_nodata & ~opaque, "over valid classes are not opaque"),
                      (~has_nodata & blank, "over valid classes are white or transparent")):
        if bad.any():
            y, x = np.argwhere(bad)[0]
            rep.append("%s: %d pixels %s, first (x=%d y=%d) %s" % (name, bad.sum(), what, x, y, rgba[y, x].tolist()))

    # Colours of classes that fill a whole footprint somewhere: one colour per class, never shared.
    colours = {}
    for c in np.unique(lo[uniform]):
        ids = np.unique(colour_id[uniform & (lo == c)])
        if ids.size != 1:
            rep.append("%s: class %d shown in %d colours: %s" % (name, c, ids.size, ", ".join(
                "#%06x" % v for v in ids[:5])))
            continue
        colours[int(c)] = int(ids[0])
    seen = {}
    for c, v in sorted(colours.items()):
        if v in seen:
            rep.append("%s: classes %d and %d share colour #%06x" % (name, seen[v], c, v))
        seen[v] = c

    # Every opaque colour shown must be a class lying under all its pixels; a colour no class has claimed
    # yet is assigned by elimination when exactly one unclaimed class lies under all of them.
    shown = opaque & ~only_nodata
    ids = colour_id[shown]
    order = np.argsort(ids, kind="stable")
    ids_sorted = ids[order]
    starts = np.flatnonzero(np.r_[True, ids_sorted[1:] != ids_sorted[:-1]]) if ids.size else np.array([], int)
    distinct = ids_sorted[starts] if ids.size else np.array([], np.int64)
    under_all = {int(v): set() for v in distinct}
    for c in present:
        inside = block_reduce((codes == c).astype(np.uint8), spans, np.maximum)[shown][order]
        if ids.size:
            for v, all_in in zip(distinct, np.minimum.reduceat(inside, starts)):
                if all_in:
                    under_all[int(v)].add(c)
    owner = {v: c for c, v in colours.items()}
    ambiguous = 0
    for v, cands in sorted(under_all.items()):
        if v in owner:
            if owner[v] not in cands:
                rep.append("%s: colour #%06x (class %d) shown where class %d is not under the pixel"
                           % (name, v, owner[v], owner[v]))
            continue
        free = cands - set(colours)
        if not free:
            rep.append("%s: colour #%06x shown where no class without a colour of its own lies under every "
                       "pixel (classes under all of them: %s)" % (name, v, sorted(cands)))
        elif len(free) == 1:
            colours[free.pop()] = v
        else:
            ambiguous += 1
    unverified = [c for c in present if c not in colours]
    if unverified and index.shape == codes.shape:
        rep.append("%s: classes %s present in class.tif have no colour of their own" % (name, unverified))
    hexes = {c: "#%06x" % v for c, v in colours.items()}
    note = "%d classes in %d distinct colours, %d x %d" % (len(present), len(colours), index.shape[1],
                                                             index.shape[0])
    if unverified:
        note += " (%d classes too small to show at this scale: %s)" % (len(unverified), unverified[:10])
    if ambiguous:
        note += " (%d colours over mixed classes only)" % ambiguous
    return hexes, shares, note


def check_ramp(rep, d, png, src, max_size):
    """Checks a ramp quicklook against float raster 'src': size, nodata transparent, index rising with value."""
    ds = gdal.Open(os.path.join(d, src))
    band = ds.GetRasterBand(1)
    nodata = band.GetNoDataValue()
    values = band.ReadAsArray().astype(np.float64)
    invalid = ~np.isfinite(values) | (np.abs(values) > 1e37)
    if nodata is not None:
        invalid |= values == nodata
    index, table = read_png(rep, os.path.join(d, png), max_size, (values.shape[1], values.shape[0]))
    if index is None:
        return ""
    spans = footprints(values.shape, index.shape)
    nvalid = block_reduce((~invalid).astype(np.int64), spans, np.add)
    total = block_reduce(np.where(invalid, 0.0, values), spans, np.add)
    alpha = table[index][..., 3]
    only_nodata = nvalid == 0
    if (only_nodata & (alpha != 0)).any():
        rep.append("%s: %d pixels over nodata only are not transparent" % (png, (only_nodata & (alpha != 0)).sum()))
    full = block_reduce(invalid.astype(np.int64), spans, np.add) == 0
    if (full & (alpha != 255)).any():
        rep.append("%s: %d pixels over valid data are not opaque" % (png, (full & (alpha != 255)).sum()))
    mean = total[full] / nvalid[full]
    rho = spearman(mean, index[full].astype(np.float64))
    if rho < 0.9:
        rep.append("%s: palette index does not rise with %s (Spearman %.3f)" % (png, src, rho))
    return "%s %d x %d (Spearman %.3f with %s)" % (png, index.shape[1], index.shape[0], rho, src)


def check_html(rep, d, run, names, colours):
    """Checks report.html: images, no external URL, legend, and what run.json records."""
    path = os.path.join(d, "report.html")
    if not os.path.exists(path):
        rep.append("report.html: missing")
        return
    page = Page()
    with open(path, encoding="utf-8") as f:
        page.feed(f.read())
    text = " ".join("".join(page.text).split())
    for png in ("quicklook.png", "quicklook_entropy.png"):
        if os.path.exists(os.path.join(d, png)) and png not in page.imgs:
            rep.append("report.html: no <img src=\"%s\"> (images: %s)" % (png, page.imgs))
    external = [u for u in page.urls if re.match(r"^\s*([a-z][a-z0-9+.-]*:|//)", u, re.I)]
    if external:
        rep.append("report.html: external or absolute URLs: %s" % external[:5])
    for code, name in sorted(names.items()):
        rows = [r for r in page.rows if any(" ".join(c.split()) == name for c in r["cells"])]
        if not rows:
            rep.append("report.html: class %d '%s' has no legend row" % (code, name))
            continue
        if code in colours and not any(colours[code] in r["colours"] for r in rows):
            rep.append("report.html: legend row of '%s' has colours %s, the map shows it in %s"
                       % (name, rows[0]["colours"], colours[code]))
    if not run:
        return
    verdict = run.get("verdict")
    if verdict and " ".join(str(verdict).split()) not in text:
        rep.append("report.html: the verdict '%s' is not in the page" % verdict)
    timeline = run.get("timeline") if isinstance(run.get("timeline"), list) else []
    tstages = sorted({str(s["stage"]) for s in timeline if isinstance(s, dict) and "stage" in s})
    if tstages:
        svgs = [s for s in page.svgs if all(n in [" ".join(t.split()) for t in s["texts"]] for n in tstages)]
        if not svgs:
            rep.append("report.html: no <svg> labels every timeline stage %s" % tstages)
        elif svgs[0]["rects"] < len(tstages):
            rep.append("report.html: the timeline <svg> has only %d rects for %d stages"
                       % (svgs[0]["rects"], len(tstages)))
    for s in run.get("stages") or []:
        if isinstance(s, dict) and s.get("name") and str(s["name"]) not in text:
            rep.append("report.html: stage '%s' missing" % s["name"])
    params = run.get("parameters")
    for k in params if isinstance(params, dict) else []:
        if str(k) not in text:
            rep.append("report.html: parameter '%s' missing" % k)
    for o in run.get("outputs") or []:
        if not isinstance(o, dict):
            continue
        for k in ("file", "sha256"):
            if o.get(k) and str(o[k]) not in text:
                rep.append("report.html: output %s '%s' missing" % (k, o[k]))


def check_screenshot(rep, path, colours, shares, min_colours, min_pixels):
    """Checks that a screenshot shows the class map: class colours matched exactly, in the map's proportions."""
    if not os.path.exists(path):
        rep.append("%s: no screenshot" % path)
        return ""
    ds = gdal.Open(path)
    if ds.RasterCount < 3:
        rep.append("%s: %d bands, expected RGB" % (path, ds.RasterCount))
        return ""
    rgb = np.stack([ds.GetRasterBand(b + 1).ReadAsArray().astype(np.int64) for b in range(3)])
    key = (rgb[0] << 16) | (rgb[1] << 8) | rgb[2]
    counts, boxes = {}, {}
    for code, hexc in colours.items():
        hit = key == int(hexc[1:], 16)
        counts[code] = int(hit.sum())
        if counts[code]:
            ys, xs = np.nonzero(hit)
            boxes[code] = (xs.min(), ys.min(), xs.max(), ys.max())
    shown = [c for c, n in counts.items() if n >= min_pixels]
    need = min(min_colours, len(colours))
    if len(shown) < need:
        rep.append("%s: %d class colours on at least %d pixels, need %d (counts %s)"
                   % (path, len(shown), min_pixels, need, counts))
        return ""
    total = sum(counts.values())
    for c in colours:
        got = counts[c] / total
        if abs(got - shares.get(c, 0.0)) > SHARE_TOL:
            rep.append("%s: class %d is %.3f of the class-coloured pixels, %.3f of class.tif"
                       % (path, c, got, shares.get(c, 0.0)))
    x0 = min(b[0] for b in boxes.values())
    y0 = min(b[1] for b in boxes.values())
    x1 = max(b[2] for b in boxes.values())
    y1 = max(b[3] for b in boxes.values())
    return "screenshot: %d class colours on %d pixels in (%d,%d)-(%d,%d)" % (len(shown), total, x0, y0, x1, y1)


def main():
    ap = argparse.ArgumentParser(description="check the quicklooks and report.html of a gridmill output folder")
    ap.add_argument("dir")
    ap.add_argument("--max-size", type=int, default=1024, help="the quicklooks' largest allowed long side")
    ap.add_argument("--screenshot", help="a PNG rendering of report.html: it must show the class map")
    ap.add_argument("--min-colours", type=int, default=3, help="class colours the screenshot must show")
    ap.add_argument("--min-pixels", type=int, default=500, help="pixels each of those colours must cover")
    args = ap.parse_args()
    d = args.dir
    if not os.path.isdir(d):
        die("%s: no such directory" % d)
    problems, notes = [], []
    run = {}
    if os.path.exists(os.path.join(d, "run.json")):
        try:
            with open(os.path.join(d, "run.json"), encoding="utf-8") as f:
                run = json.load(f)
        except ValueError:
            run = {}  # an unreadable run.json: the report must still exist; nothing of it is expected
        run = run if isinstance(run, dict) else {}
    names = {}
    if os.path.exists(os.path.join(d, "classes.csv")):
        with open(os.path.join(d, "classes.csv"), newline="", encoding="utf-8") as f:
            for row in list(csv.reader(f))[1:]:
                names[int(row[0])] = row[1]

    colours, shares = {}, {}
    if os.path.exists(os.path.join(d, "class.tif")):
        colours, shares, note = check_class_map(problems, d, args.max_size)
        notes.append("quicklook.png " + note)
        if os.path.exists(os.path.join(d, "entropy.tif")):
            notes.append(check_ramp(problems, d, "quicklook_entropy.png", "entropy.tif", args.max_size))
    else:
        src = next((f for f in ("mean.tif", "prediction.tif") if os.path.exists(os.path.join(d, f))), None)
        if src is None:
            die("%s: no class.tif, mean.tif or prediction.tif" % d)
        notes.append(check_ramp(problems, d, "quicklook.png", src, args.max_size))
        if os.path.exists(os.path.join(d, "sd.tif")):
            notes.append(check_ramp(problems, d, "quicklook_entropy.png", "sd.tif", args.max_size))
    check_html(problems, d, run, names, colours)
    if args.screenshot:
        if not colours:
            problems.append("--screenshot: no class colours to look for (no class map)")
        else:
            notes.append(check_screenshot(problems, args.screenshot, colours, shares, args.min_colours,
                                          args.min_pixels))
    what = "%s: %s; report.html%s" % (d, "; ".join(n for n in notes if n),
                                       " with run.json" if run else " without run.json")
    if problems:
        print("check_report: FAIL %s" % what)
        for msg in problems:
            print("  - " + msg)
        sys.exit(1)
    print("check_report: OK %s" % what)


if __name__ == "__main__":
    main()
