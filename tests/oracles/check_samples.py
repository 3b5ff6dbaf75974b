#!/usr/bin/python3
"""check_samples.py -- independent checks of the sample tables `gridmill run` wrote (DIR/samples/iter-*.csv).

Usage: check_samples.py DIR --polygons MAP[:LAYER] --covariates F [F ...]
                        (--class-field F | --target-field F | --composition CSV [--id-field F])
                        [--samples-per-polygon N | --sample-density D [--min-samples M]]
                        [--observations POINTS[:LAYER] --observations-field F]
                        [--gdal-points K] [--expect-share POLYGON CLASS SHARE TOLERANCE] [--seed S]

For every table samples/iter-NNN.csv (numbered 001.. without gaps):
  header      iteration,polygon,x,y,class,code,<bands> (regression: iteration,polygon,x,y,target,<bands>), the
              band names being each covariate's file stem, or "<stem>_<k>" (k from 1) for a multi-band file;
  iteration   equals NNN on every row;
  polygon     a feature of the map (its FID; with --id-field its id value), or -1 for an observation;
              not one that is invalid beyond repair (see below);
  x, y        in the covariates' CRS, strictly inside that polygon (OGR Contains, the polygon reprojected
              vertex by vertex to the covariates' CRS when the map has another, as gridmill does); a
              feature that is not a valid polygon (OGR IsValid in the map's CRS, open rings closed first) is
              first repaired with OGR MakeValid, keeping its polygonal parts, and dropped when none with an
              area is left, as gridmill repairs and skips them;
  class/code  plain: the polygon's class field; composition: a class of the polygon's composition with a
              proportion > 0; code = the class's row in classes.csv, whose names must be exactly the sorted
              (byte-wise) set of classes the map's polygons kept/the composition (and observations) name;
  target      the polygon's target field (relative 1e-6);
  bands       equal (as float32) to the covariate pixel holding the point, read with python GDAL for every
              row, and to `gdallocationinfo -valonly -geoloc` for K (--gdal-points, default 20) rows of each
              table, chosen with --seed, plus every observation row;
  counts      --samples-per-polygon N: exactly N rows per polygon; --sample-density D: max(M, area_km2 * D)
              within 1 per polygon (area of the repaired polygon in the covariates' CRS); a polygon dropped
              as invalid beyond repair has no row; observations: one row per observation point,
              at its coordinates (within 1 mm), with its --observations-field value.
--expect-share P C S T: over all tables, the share of class C among polygon P's rows is within S +- T.
Exit 0 with one OK line, 1 listing each problem, 2 if the oracle itself cannot run. It uses no gridmill code.
"""
import argparse
import csv
import glob
import os
import re
import subprocess
import sys

import numpy as np
from osgeo import gdal, ogr, osr

gdal.UseExceptions()
ogr.UseExceptions()

COORD_TOL = 1e-3  # metres, observation coordinates


def die(msg):
    """Prints an oracle failure (not a gridmill mismatch) and exits 2."""
    print("check_samples: %s" % msg, file=sys.stderr)
    sys.exit(2)


def split_layer(spec):
    """Splits MAP[:LAYER] into (path, layer or None); a colon inside an existing path is not a separator."""
    if os.path.exists(spec) or ":" not in spec:
        return spec, None
    path, layer = spec.rsplit(":", 1)
    return path, layer


def traditional(srs):
    """Returns a clone of srs in x/y (easting/longitude first) axis order."""
    s = srs.Clone()
    s.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return s


class Covariates:
    """The covariate stack: band names, arrays, nodata, grid, and a pixel lookup."""

    def __init__(self, paths):
        self.paths = paths
        self.names, self.arrays, self.files, self.nodata = [], [], [], []
        for path in paths:
            if not os.path.exists(path):
                die("%s: no such file" % path)
            ds = gdal.Open(path)
            stem = os.path.splitext(os.path.basename(path))[0]
            if not self.arrays:
                self.gt = ds.GetGeoTransform()
                self.size = (ds.RasterXSize, ds.RasterYSize)
                self.srs = traditional(ds.GetSpatialRef())
            for b in range(1, ds.RasterCount + 1):
                self.names.append(stem if ds.RasterCount == 1 else "%s_%d" % (stem, b))
                self.arrays.append(ds.GetRasterBand(b).ReadAsArray().astype(np.float32))
                self.nodata.append(ds.GetRasterBand(b).GetNoDataValue())
                self.files.append((path, b))
            ds = None

    def values(self, x, y):
        """Returns float32 [n, nbands] of the pixels holding points (x, y) (NaN outside the grid)."""
        gt = self.gt
        col = np.floor((x - gt[0]) / gt[1]).astype(np.int64)
        row = np.floor((y - gt[3]) / gt[5]).astype(np.int64)
        inside = (col >= 0) & (col < self.size[0]) & (row >= 0) & (row < self.size[1])
        out = np.full((x.size, len(self.arrays)), np.nan, np.float32)
        for b, arr in enumerate(self.arrays):
            out[inside, b] = arr[row[inside], col[inside]]
        return out

    def valid_pixel_met(self, geom):
        """Returns (col, row) of a pixel with every covariate valid whose centre or a corner lies in 'geom'
        (an OGR geometry in the covariates' CRS), or None."""
        gt = self.gt
        x0, x1, y0, y1 = geom.GetEnvelope()
        c0, c1 = sorted(((x0 - gt[0]) / gt[1], (x1 - gt[0]) / gt[1]))
        r0, r1 = sorted(((y0 - gt[3]) / gt[5], (y1 - gt[3]) / gt[5]))
        c0, r0 = max(0, int(np.floor(c0))), max(0, int(np.floor(r0)))
        c1, r1 = min(self.size[0] - 1, int(np.floor(c1))), min(self.size[1] - 1, int(np.floor(r1)))
        valid = np.ones((max(0, r1 - r0 + 1), max(0, c1 - c0 + 1)), bool)
        for arr, nd in zip(self.arrays, self.nodata):
            a = arr[r0:r1 + 1, c0:c1 + 1]
            valid &= ~np.isnan(a) & (a != np.float32(nd) if nd is not None and not np.isnan(nd) else True)
        for rr, cc in zip(*np.nonzero(valid)):
            col, row = c0 + cc, r0 + rr
            for dx, dy in ((0.5, 0.5), (0, 0), (1, 0), (0, 1), (1, 1)):
                pt = ogr.Geometry(ogr.wkbPoint)
                pt.AddPoint_2D(gt[0] + (col + dx) * gt[1], gt[3] + (row + dy) * gt[5])
                if geom.Contains(pt):  # strictly inside: on its edge, gridmill may take it either way
                    return (int(col), int(row))
        return None

    def gdallocationinfo(self, x, y):
        """Returns float32 [n, nbands] read by `gdallocationinfo -valonly -geoloc`, one call per covariate file."""
        coords = "".join("%.17g %.17g\n" % (a, b) for a, b in zip(x, y))
        out = np.full((x.size, len(self.arrays)), np.nan, np.float32)
        col = 0
        for path in self.paths:
            nb = sum(1 for f, _ in self.files if f == path)
            r = subprocess.run(["gdallocationinfo", "-valonly", "-geoloc", path], input=coords,
                               capture_output=True, text=True, check=False)
            lines = r.stdout.split("\n")
            if r.returncode != 0 or len(lines) < x.size * nb:
                die("gdallocationinfo -valonly -geoloc %s: exit %d, %d lines for %d points: %s"
                    % (path, r.returncode, len(lines), x.size, r.stderr.strip()[-300:]))
            for i in range(x.size):
                for b in range(nb):
                    text = lines[i * nb + b].strip()
                    out[i, col + b] = np.float32(float(text)) if text else np.nan
            col += nb
        return out


def polygonal(g):
    """Returns (polygon, repaired): polygon g as gridmill samples it, g itself (open rings closed) when OGR finds
    it valid, else the polygonal parts of its OGR MakeValid as one MultiPolygon, or None when no part with an
    area is left; repaired says whether g was invalid."""
    g = g.Clone()
    g.CloseRings()
    gdal.PushErrorHandler("CPLQuietErrorHandler")  # GEOS's reasons are gridmill's to print, not ours
    try:
        if g.IsValid():
            return g, False
        fixed = g.MakeValid()
    except RuntimeError:
        return None, True
    finally:
        gdal.PopErrorHandler()
    if fixed is None:
        return None, True
    fixed.FlattenTo2D()
    out = ogr.Geometry(ogr.wkbMultiPolygon)

    def add(part):
        t = ogr.GT_Flatten(part.GetGeometryType())
        if t == ogr.wkbPolygon and not part.IsEmpty():
            out.AddGeometry(part)
        elif t in (ogr.wkbMultiPolygon, ogr.wkbGeometryCollection):
            for k in range(part.GetGeometryCount()):
                add(part.GetGeometryRef(k))
    add(fixed)
    return (out if not out.IsEmpty() and out.GetArea() > 0 else None), True


class Units:
    """The polygon map: geometries repaired when invalid (see polygonal) and reprojected to the covariates' CRS
    (vertex by vertex, as OGR does), and attributes by FID; 'dropped' holds the FIDs of the features invalid
    beyond repair, which have attributes but no geometry; 'repaired' counts the features repaired."""

    def __init__(self, spec, cov_srs, fields):
        path, layer = split_layer(spec)
        self.ds = ogr.Open(path)
        if self.ds is None:
            die("%s: cannot open" % path)
        self.lyr = self.ds.GetLayerByName(layer) if layer else self.ds.GetLayer(0)
        if self.lyr is None:
            die("%s: no layer %r" % (path, layer))
        srs = self.lyr.GetSpatialRef()
        self.srs = traditional(srs) if srs else cov_srs
        to_cov = None if self.srs.IsSame(cov_srs) else osr.CoordinateTransformation(self.srs, cov_srs)
        self.reprojected = to_cov is not None
        self.geoms, self.attrs, self.dropped, self.repaired = {}, {}, set(), 0
        for f in self.lyr:
            g = f.GetGeometryRef()
            if g is None or g.IsEmpty():
                continue
            self.attrs[f.GetFID()] = {k: f.GetField(k) for k in fields if k}
            g, repaired = polygonal(g)
            if g is None:
                self.dropped.add(f.GetFID())
                continue
            self.repaired += repaired
            if to_cov is not None:
                g.Transform(to_cov)
            self.geoms[f.GetFID()] = g
        self.lyr.ResetReading()

    def contains(self, fid, x, y):
        """Returns True if the point (x, y) in the covariates' CRS lies strictly inside feature fid."""
        pt = ogr.Geometry(ogr.wkbPoint)
        pt.AddPoint_2D(x, y)
        return self.geoms[fid].Contains(pt)

    def area_km2(self, fid):
        """Returns the area of feature fid in km2, measured in the covariates' CRS."""
        return self.geoms[fid].GetArea() / 1e6


def read_observations(spec, field, cov_srs):
    """Returns [(x, y, value)] of the observation points, x/y in the covariates' CRS."""
    path, layer = split_layer(spec)
    ds = ogr.Open(path)
    if ds is None:
        die("%s: cannot open" % path)
    lyr = ds.GetLayerByName(layer) if layer else ds.GetLayer(0)
    srs = traditional(lyr.GetSpatialRef()) if lyr.GetSpatialRef() else cov_srs
    tr = None if srs.IsSame(cov_srs) else osr.CoordinateTransformation(srs, cov_srs)
    out = []
    for f in lyr:
        g = f.GetGeometryRef()
        x, y = g.GetX(), g.GetY()
        if tr is not None:
            x, y, _ = tr.TransformPoint(x, y)
        out.append((x, y, f.GetField(field)))
    ds = None
    return out


def read_not_drawn(out_dir, t_index, ntables, id_to_fid):
    """{fid: (wanted, drawn)} from DIR/samples/not-drawn-NNN.csv of iteration t_index (none: {})."""
    width = max(3, len(str(ntables)))
    path = os.path.join(out_dir, "samples", "not-drawn-%0*d.csv" % (width, t_index))
    if not os.path.exists(path):
        return {}
    out = {}
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    if rows[:1] != [["iteration", "polygon", "wanted", "drawn"]]:
        die("%s: header %r" % (path, rows[:1]))
    for r in rows[1:]:
        if len(r) != 4 or r[0] != str(t_index):
            die("%s: row %r" % (path, r))
        fid = id_to_fid.get(r[1]) if id_to_fid is not None else int(r[1])
        if fid is None or int(r[3]) >= int(r[2]):
            die("%s: row %r names no polygon short of points" % (path, r))
        out[fid] = (int(r[2]), int(r[3]))
    return out


def read_composition(path, units, id_field):
    """Returns {fid: {class: proportion}} from a composition CSV keyed by FID or by id_field."""
    by_key = {}
    if id_field:
        for fid, a in units.attrs.items():
            by_key[str(a[id_field])] = fid
    comp = {}
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            key = row["polygon"].strip()
            fid = by_key.get(key) if id_field else int(key)
            if fid is None:
                die("%s: polygon %r is not a value of %s" % (path, key, id_field))
            comp.setdefault(fid, {})[row["class"]] = float(row["proportion"])
    return comp


def main():
    ap = argparse.ArgumentParser(description="check the sample tables of a gridmill run")
    ap.add_argument("dir")
    ap.add_argument("--polygons", required=True, metavar="MAP[:LAYER]")
    ap.add_argument("--covariates", nargs="+", required=True)
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--class-field")
    mode.add_argument("--target-field")
    mode.add_argument("--composition")
    ap.add_argument("--id-field")
    ap.add_argument("--samples-per-polygon", type=int)
    ap.add_argument("--sample-density", type=float)
    ap.add_argument("--min-samples", type=int, default=0)
    ap.add_argument("--observations", metavar="POINTS[:LAYER]")
    ap.add_argument("--observations-field")
    ap.add_argument("--gdal-points", type=int, default=20, help="rows per table checked with gdallocationinfo")
    ap.add_argument("--expect-share", nargs=4, metavar=("POLYGON", "CLASS", "SHARE", "TOL"))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-report", type=int, default=5)
    ap.add_argument("--not-drawn", action="store_true", help="polygons may get fewer points than wanted: then "
                    "samples/not-drawn-NNN.csv lists them, and none may meet a pixel of valid covariates")
    args = ap.parse_args()
    if args.observations and not args.observations_field:
        die("--observations needs --observations-field")

    cov = Covariates(args.covariates)
    field = args.class_field or args.target_field
    units = Units(args.polygons, cov.srs, [field, args.id_field])
    regression = args.target_field is not None
    comp = read_composition(args.composition, units, args.id_field) if args.composition else None
    obs = read_observations(args.observations, args.observations_field, cov.srs) if args.observations else []
    id_to_fid = {}
    if args.id_field:
        id_to_fid = {str(a[args.id_field]): fid for fid, a in units.attrs.items()}

    problems = []
    kinds = {}

    def problem(msg, kind=None):
        """Records a problem; of each kind (default: the message) only the first --max-report are kept."""
        kind = kind or msg
        kinds[kind] = kinds.get(kind, 0) + 1
        if kinds[kind] <= args.max_report:
            problems.append(msg)

    # classes.csv: the sorted set of every class the inputs name.
    names = None
    if not regression:
        if comp is not None:
            named = {c for parts in comp.values() for c, p in parts.items() if p > 0}
        else:
            named = {str(units.attrs[fid][field]) for fid in units.geoms}
        named |= {str(v) for _, _, v in obs}
        expected_names = sorted(named, key=lambda s: s.encode("utf-8"))
        path = os.path.join(args.dir, "classes.csv")
        if not os.path.exists(path):
            problem("classes.csv: missing")
        else:
            with open(path, newline="", encoding="utf-8") as fh:
                rows = list(csv.reader(fh))
            names = [r[1] for r in rows[1:] if len(r) == 2]
            if rows[:1] != [["code", "class"]] or names != expected_names or \
                    [r[0] for r in rows[1:]] != [str(i) for i in range(len(names))]:
                problem("classes.csv: %r, expected codes 0.. for %r" % (rows, expected_names))

    tables = sorted(glob.glob(os.path.join(args.dir, "samples", "iter-*.csv")))
    left = [f for f in glob.glob(os.path.join(args.dir, "samples", "not-drawn-*.csv"))
            if int(re.search(r"(\d+)\.csv$", f).group(1)) > len(tables)]
    if left:
        die("%s: a not-drawn list for an iteration without a table" % left[0])
    if not tables:
        die("%s/samples: no iter-*.csv" % args.dir)
    head = ["iteration", "polygon", "x", "y"] + (["target"] if regression else ["class", "code"]) + cov.names
    rng = np.random.default_rng(args.seed)
    nrows = ngdal = nobs = 0
    share_hits = share_rows = 0
    nshort_checked = [0]
    for t_index, path in enumerate(tables, start=1):
        name = "samples/" + os.path.basename(path)
        m = re.search(r"iter-(\d+)\.csv$", path)
        if int(m.group(1)) != t_index:
            problem("%s: tables not numbered 001..%03d without gaps" % (name, len(tables)))
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
        if not rows or rows[0] != head:
            problem("%s: header %r, expected %r" % (name, rows[0] if rows else None, head))
            continue
        rows = rows[1:]
        nrows += len(rows)
        bad_len = [i for i, r in enumerate(rows) if len(r) != len(head)]
        if bad_len:
            problem("%s: %d rows with %s fields instead of %d, first line %d" % (
                name, len(bad_len), len(rows[bad_len[0]]), len(head), bad_len[0] + 2))
            continue
        nv = len(cov.names)
        x = np.array([float(r[2]) for r in rows])
        y = np.array([float(r[3]) for r in rows])
        vals = np.array([[np.float32(float(v)) for v in r[-nv:]] for r in rows], np.float32).reshape(-1, nv)
        per_poly = {}
        obs_rows = []
        for i, r in enumerate(rows):
            line = i + 2
            if r[0] != str(t_index):
                problem("%s line %d: iteration %r, expected %d" % (name, line, r[0], t_index), "iteration")
            key = r[1]
            if key == "-1":
                obs_rows.append(i)
                continue
            if args.id_field:  # the id field's value names the polygon, not its FID
                fid = id_to_fid.get(key)
            else:
                try:
                    fid = int(key)
                except ValueError:
                    fid = None
            if fid in units.dropped:
                problem("%s line %d: polygon %r is invalid beyond repair (MakeValid leaves no area), yet sampled"
                        % (name, line, key), "dropped")
                continue
            if fid not in units.geoms:
                problem("%s line %d: polygon %r is not a feature of the map" % (name, line, key), "polygon")
                continue
            per_poly[fid] = per_poly.get(fid, 0) + 1
            if not units.contains(fid, x[i], y[i]):
                problem("%s line %d: point (%r, %r) is not strictly inside polygon %s" % (
                    name, line, r[2], r[3], key), "inside")
            if regression:
                want = float(units.attrs[fid][field])
                if abs(float(r[4]) - want) > 1e-6 * max(1.0, abs(want)):
                    problem("%s line %d: target %r, polygon %s has %s %r" % (name, line, r[4], key, field, want),
                            "target")
                continue
            cls = r[4]
            if comp is not None:
                allowed = {c for c, p in comp.get(fid, {}).items() if p > 0}
                if cls not in allowed:
                    problem("%s line %d: class %r not in polygon %s's composition %s" % (
                        name, line, cls, key, sorted(allowed)), "composition")
            elif cls != str(units.attrs[fid][field]):
                problem("%s line %d: class %r, polygon %s has %s %r" % (name, line, cls, key, field,
                                                                         units.attrs[fid][field]), "class")
            if names is not None and (cls not in names or r[5] != str(names.index(cls))):
                problem("%s line %d: code %r for class %r, classes.csv says %s" % (
                    name, line, r[5], cls, names.index(cls) if cls in names else "no such class"), "code")
            if args.expect_share and key == args.expect_share[0]:
                share_rows += 1
                share_hits += cls == args.expect_share[1]

        # Counts per polygon: each polygon's wanted count, less what samples/not-drawn-NNN.csv says is missing.
        short = read_not_drawn(args.dir, t_index, len(tables), id_to_fid if args.id_field else None)
        if short and not args.not_drawn:
            problem("%s: %d polygons short of points (samples/not-drawn), none expected" % (name, len(short)))
        for fid, (wanted, drawn) in sorted(short.items()):
            if per_poly.get(fid, 0) != drawn:
                problem("%s: polygon %d has %d rows, samples/not-drawn says %d" % (name, fid, per_poly.get(fid, 0),
                                                                                   drawn), "count")
            if args.samples_per_polygon is not None and wanted != args.samples_per_polygon:
                problem("%s: samples/not-drawn says polygon %d wanted %d, not %d" % (name, fid, wanted,
                                                                                      args.samples_per_polygon))
            met = cov.valid_pixel_met(units.geoms[fid]) if fid in units.geoms else None
            if met:
                problem("%s: polygon %d is %d points short, yet meets pixel %s of valid covariates" % (
                    name, fid, wanted - drawn, met), "short with valid pixels")
            nshort_checked[0] += 1
        for fid in sorted(units.geoms):
            n = per_poly.get(fid, 0)
            if fid in short:
                continue
            if args.samples_per_polygon is not None and n != args.samples_per_polygon:
                problem("%s: polygon %d has %d rows, expected %d" % (name, fid, n, args.samples_per_polygon),
                        "count")
            if args.sample_density is not None:
                want = max(float(args.min_samples), units.area_km2(fid) * args.sample_density)
                if abs(n - want) > 1.0 + 1e-9:
                    problem("%s: polygon %d (%.4f km2) has %d rows, expected max(%d, %.4f x %g) = %.2f" % (
                        name, fid, units.area_km2(fid), n, args.min_samples, units.area_km2(fid),
                        args.sample_density, want), "count")

        # Observations: one row each, at its coordinates, with its value.
        if obs or obs_rows:
            nobs += len(obs_rows)
            if len(obs_rows) != len(obs):
                problem("%s: %d observation rows (polygon -1), expected %d" % (name, len(obs_rows), len(obs)))
            left = list(obs)
            for i in obs_rows:
                d = [np.hypot(ox - x[i], oy - y[i]) for ox, oy, _ in left]
                if not d or min(d) > COORD_TOL:
                    problem("%s line %d: observation row at (%r, %r) matches no observation point" % (
                        name, i + 2, rows[i][2], rows[i][3]), "observation")
                    continue
                ox, oy, ov = left.pop(int(np.argmin(d)))
                got = rows[i][4]
                if regression:
                    same = abs(float(got) - float(ov)) <= 1e-6 * max(1.0, abs(float(ov)))
                else:
                    same = got == str(ov)
                if not same:
                    problem("%s line %d: observation %s %r, the point has %r" % (
                        name, i + 2, "target" if regression else "class", got, ov), "observation")
                if not regression and names is not None and got in names and rows[i][5] != str(names.index(got)):
                    problem("%s line %d: code %r for observation class %r" % (name, i + 2, rows[i][5], got), "code")

        # Covariate values: every row against python GDAL, some rows against gdallocationinfo.
        exp = cov.values(x, y)
        same = (exp == vals) | (np.isnan(exp) & np.isnan(vals))
        for i in np.flatnonzero(~same.all(axis=1)):
            problem("%s line %d: covariates %s at (%s, %s), the rasters hold %s" % (
                name, i + 2, vals[i].tolist(), rows[i][2], rows[i][3], exp[i].tolist()), "covariate value")
        pick = sorted(set(rng.choice(len(rows), size=min(args.gdal_points, len(rows)), replace=False).tolist())
                      | set(obs_rows))
        if pick:
            gli = cov.gdallocationinfo(x[pick], y[pick])
            ngdal += len(pick)
            for j, i in enumerate(pick):
                if not np.array_equal(gli[j], vals[i], equal_nan=True):
                    problem("%s line %d: covariates %s, gdallocationinfo -valonly -geoloc gives %s at (%s, %s)" % (
                        name, i + 2, vals[i].tolist(), gli[j].tolist(), rows[i][2], rows[i][3]),
                        "gdallocationinfo")

    share_msg = ""
    if args.expect_share:
        poly, cls, share, tol = args.expect_share[0], args.expect_share[1], float(args.expect_share[2]), \
            float(args.expect_share[3])
        got = share_hits / share_rows if share_rows else float("nan")
        share_msg = "; polygon %s: %d of %d rows %s (%.1f%%)" % (poly, share_hits, share_rows, cls, 100 * got)
        if not abs(got - share) <= tol:
            problem("polygon %s: share of %r is %.4f over %d rows, expected %.2f +- %.2f" % (
                poly, cls, got, share_rows, share, tol))

    for kind, n in kinds.items():
        if n > args.max_report:
            problems.append("... and %d more %s problems" % (n - args.max_report, kind))
    what = "%s: %d tables, %d rows (%d observation rows), %d polygons (%d repaired, %d invalid beyond repair), " \
        "%d rows read with gdallocationinfo%s" % (args.dir, len(tables), nrows, nobs, len(units.geoms),
                                                  units.repaired, len(units.dropped), ngdal, share_msg)
    if problems:
        print("check_samples: FAIL %s" % what)
        for msg in problems:
            print("  - " + msg)
        sys.exit(1)
    print("check_samples: OK %s" % what)


if __name__ == "__main__":
    main()
