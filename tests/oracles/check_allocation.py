#!/usr/bin/python3
"""check_allocation.py -- the oracle of --allocation: the classes drawn in a composition run's samples follow
the rule's frequencies (rdsmart's method.allocate).

Usage: check_allocation.py DIR --composition CSV --rule weighted|dirichlet|random-mapunit|random-all

Counts each polygon's drawn classes over every samples/iter-*.csv (observation rows left out) and tests them
against the rule, pooling a chi-square statistic over the polygons (df = the sum of their classes - 1) and
judging it by the normal approximation z = (chi2 - df) / sqrt(2 df), |z| < 4:
  weighted        multinomial with the composition's shares
  random-mapunit  uniform among the polygon's classes
  random-all      uniform among every class of the composition (a polygon may draw any)
  dirichlet       one set of shares per polygon for the whole run: the first half of the iterations and the
                  second draw alike (chi-square homogeneity, |z| < 4), and away from the composition's shares by
                  Dirichlet(shares in percent)'s spread: chi2 / df against the shares between 2 and 40
                  (multinomial noise alone gives about 1)
Exit 0 with one OK line, 1 with what fails. It uses no gridmill code.
"""
import argparse
import csv
import glob
import math
import os
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--composition", required=True)
    ap.add_argument("--rule", required=True, choices=("weighted", "dirichlet", "random-mapunit", "random-all"))
    a = ap.parse_args()
    comp = {}
    for r in csv.DictReader(open(a.composition, newline="")):
        comp.setdefault(r["polygon"], {})[r["class"]] = comp.get(r["polygon"], {}).get(r["class"], 0) + float(r["proportion"])
    all_classes = sorted({c for parts in comp.values() for c in parts})
    tables = sorted(glob.glob(os.path.join(a.dir, "samples", "iter-*.csv")))
    counts, halves = {}, {}
    for t, path in enumerate(tables):
        for r in csv.DictReader(open(path, newline="")):
            if r["polygon"] == "-1":
                continue
            counts.setdefault(r["polygon"], {}).setdefault(r["class"], 0)
            counts[r["polygon"]][r["class"]] += 1
            h = halves.setdefault(r["polygon"], ({}, {}))[0 if t < len(tables) // 2 else 1]
            h[r["class"]] = h.get(r["class"], 0) + 1
    chi2 = df = 0.0
    for poly, got in counts.items():
        n = sum(got.values())
        shares = comp[poly]
        total = sum(shares.values())
        if a.rule in ("weighted", "dirichlet"):
            expect = {c: n * s / total for c, s in shares.items() if s > 0}
        elif a.rule == "random-mapunit":
            expect = {c: n / len(shares) for c in shares}
        else:
            expect = {c: n / len(all_classes) for c in all_classes}
        stray = set(got) - set(expect)
        if stray:
            print(f"polygon {poly}: drew {sorted(stray)}, which the rule {a.rule} never gives")
            return 1
        chi2 += sum((got.get(c, 0) - e) ** 2 / e for c, e in expect.items())
        df += len(expect) - 1
    ratio = chi2 / df if df else 0.0
    z = (chi2 - df) / math.sqrt(2 * df) if df else 0.0
    if a.rule != "dirichlet":
        if abs(z) >= 4:
            print(f"{a.rule}: the drawn classes do not follow the rule: chi2 {chi2:.1f} on {df:.0f} df (z = {z:.1f})")
            return 1
        print(f"{a.rule}: {len(counts)} polygons, {len(tables)} iterations: chi2 {chi2:.1f} on {df:.0f} df (z = {z:.2f})")
        return 0
    hchi = hdf = 0.0
    for poly, (h1, h2) in halves.items():
        classes = sorted(set(h1) | set(h2))
        n1, n2 = sum(h1.values()), sum(h2.values())
        if len(classes) < 2 or not n1 or not n2:
            continue
        for c in classes:
            tot = h1.get(c, 0) + h2.get(c, 0)
            for h, nh in ((h1, n1), (h2, n2)):
                e = tot * nh / (n1 + n2)
                hchi += (h.get(c, 0) - e) ** 2 / e
        hdf += len(classes) - 1
    hz = (hchi - hdf) / math.sqrt(2 * hdf) if hdf else 0.0
    if abs(hz) >= 4:
        print(f"dirichlet: the two halves of the run draw differently (chi2 {hchi:.1f} on {hdf:.0f} df, z = {hz:.1f}): "
              "not one set of shares per polygon")
        return 1
    if not 2 <= ratio <= 40:
        print(f"dirichlet: chi2 / df against the composition is {ratio:.2f}, not the spread of Dirichlet(percent)")
        return 1
    print(f"dirichlet: {len(counts)} polygons: halves alike (z = {hz:.2f}); chi2/df {ratio:.2f} against the shares")
    return 0


if __name__ == "__main__":
    sys.exit(main())
