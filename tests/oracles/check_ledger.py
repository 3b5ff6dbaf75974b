#!/usr/bin/python3
"""check_ledger.py -- the oracle of the writer's ledger: every tile it vouches for is on disk, as it says.

Usage: check_ledger.py LEDGER --tile N FILE...

LEDGER is DIR/.gridmill-ledger (or -J-of-W); FILE... the outputs its writer owns, in the job's order (the
partial NAME.part files). The ledger's text is, per common/PROTOCOL.md's description in writer_ledger.c:
    gridmill-ledger 3 / job HEX / tiles K / K lines "T H1 H2 ..." / end HEX
where Hi is XXH64 (seed 0) of tile T of FILE i read band-sequential in its own sample type, tiles of N x N
pixels in row-major order, and the end line XXH64 of all the text before it. This checks the end hash, then
reads every vouched tile from the files with GDAL and hashes it with python3-xxhash. Exit 0 with one OK line,
1 with what differs. It uses no gridmill code.
"""
import argparse
import math
import sys

import xxhash
from osgeo import gdal

gdal.UseExceptions()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ledger")
    ap.add_argument("--tile", type=int, required=True)
    ap.add_argument("files", nargs="+")
    a = ap.parse_args()
    text = open(a.ledger, "rb").read()
    lines = text.split(b"\n")
    if lines[-1] != b"" or lines[0] != b"gridmill-ledger 3" or not lines[1].startswith(b"job "):
        print(f"{a.ledger}: not a version-3 ledger")
        return 1
    k = int(lines[2].split(b" ")[1])
    end = lines[3 + k]
    head = b"\n".join(lines[: 3 + k]) + b"\n"
    if end != b"end %016x" % xxhash.xxh64(head).intdigest() or len(lines) != 5 + k:
        print(f"{a.ledger}: its end line {end!r} is not the XXH64 of the text before it")
        return 1
    ds = [gdal.Open(f) for f in a.files]
    w, h = ds[0].RasterXSize, ds[0].RasterYSize
    ntx = math.ceil(w / a.tile)
    for t in range(k):
        fields = lines[3 + t].split(b" ")
        if int(fields[0]) != t or len(fields) != 1 + len(ds):
            print(f"{a.ledger}: tile line {t} is {lines[3 + t]!r}")
            return 1
        x0, y0 = t % ntx * a.tile, t // ntx * a.tile
        tw, th = min(a.tile, w - x0), min(a.tile, h - y0)
        for f, d, want in zip(a.files, ds, fields[1:]):
            got = b"%016x" % xxhash.xxh64(d.ReadRaster(x0, y0, tw, th)).intdigest()
            if got != want:
                print(f"{f}: tile {t} at {x0},{y0} hashes to {got.decode()}, the ledger says {want.decode()}")
                return 1
    print(f"ledger {a.ledger.split('/')[-1]}: {k} tiles vouched for, each the bytes of {len(ds)} files on disk")
    return 0


if __name__ == "__main__":
    sys.exit(main())
