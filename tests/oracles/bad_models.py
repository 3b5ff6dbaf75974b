#!/usr/bin/python3
"""bad_models.py -- corrupt a real XGBoost model in the ways a broken file or a careless edit would.

Usage: bad_models.py MODEL.json OUTDIR

MODEL.json is a gbtree regression model with 4 features and at least 8 trees of depth >= 2 (make_data.py's
reg.json). Writes into OUTDIR one model per fault, each with the tree it breaks, one per line in
OUTDIR/faults.txt as `FILE TREE` (TREE is - for a model-level fault):
  cycle.json         tree 3: a node's left child is the root, a cycle
  child_range.json   tree 5: a right child index past the end of the tree
  neg_split.json     tree 2: a split on feature -3
  split_nfeature.json tree 6: the root splits on feature 4 (num_feature is 4)
  num_trees.json     -: gbtree_model_param.num_trees 20 for 15 trees
  gblinear.json      -: a gblinear booster trained on the same 4 features
  cycle.ubj          tree 4: a cycle, in UBJSON (XGBoost loads it without a complaint)
  child_range.ubj    tree 1: a left child index past the end, in UBJSON
and two models XGBoost writes itself that must be accepted (listed in OUTDIR/good.txt):
  pruned.json        exact tree method with gamma: trees hold deleted (unreachable) nodes
  dart.json          a dart booster
"""
import json
import os
import sys

import numpy as np
import xgboost as xgb


def trees_of(model):
    """Returns the list of trees of a gbtree model's JSON."""
    return model["learner"]["gradient_booster"]["model"]["trees"]


def first_internal_child(tree):
    """Returns an internal node other than the root (the root's left child when it splits)."""
    for k, left in enumerate(tree["left_children"]):
        if k and left != -1:
            return k
    raise SystemExit("bad_models.py: tree %d has no internal node below the root" % tree["id"])


def save_json(model, path):
    with open(path, "w") as f:
        json.dump(model, f)


def save_ubj(model, path):
    """Writes a JSON model as XGBoost's UBJSON, through XGBoost itself (its loader takes the fault)."""
    booster = xgb.Booster()
    booster.load_model(bytearray(json.dumps(model).encode()))
    booster.save_model(path)


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    src, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    with open(src) as f:
        base = json.load(f)
    if len(trees_of(base)) < 8:
        raise SystemExit("bad_models.py: %s has fewer than 8 trees" % src)
    faults = []

    def variant(name, tree, edit, ubj=False):
        m = json.loads(json.dumps(base))
        edit(m)
        path = os.path.join(out, name)
        (save_ubj if ubj else save_json)(m, path)
        faults.append("%s %s" % (name, "-" if tree is None else tree))

    def cycle(t):
        def edit(m):
            tree = trees_of(m)[t]
            tree["left_children"][first_internal_child(tree)] = 0
        return edit

    def child_range(t, side):
        def edit(m):
            tree = trees_of(m)[t]
            tree[side][0] = len(tree["left_children"]) + 971
        return edit

    def split(t, node, feature):
        def edit(m):
            tree = trees_of(m)[t]
            if node is None:
                k = first_internal_child(tree)
            else:
                k = node
            tree["split_indices"][k] = feature
        return edit

    def num_trees(m):
        m["learner"]["gradient_booster"]["model"]["gbtree_model_param"]["num_trees"] = "20"

    variant("cycle.json", 3, cycle(3))
    variant("child_range.json", 5, child_range(5, "right_children"))
    variant("neg_split.json", 2, split(2, None, -3))
    variant("split_nfeature.json", 6, split(6, 0, 4))
    variant("num_trees.json", None, num_trees)
    variant("cycle.ubj", 4, cycle(4), ubj=True)
    variant("child_range.ubj", 1, child_range(1, "left_children"), ubj=True)

    # models XGBoost trains itself, on the same 4 features
    rng = np.random.default_rng(7)
    x = rng.normal(size=(4000, 4)).astype(np.float32) * np.array([60, 40, 500, 1], np.float32)
    x[:, 2] += 1000
    y = x[:, 0] / 50 + x[:, 1] / 40 + (x[:, 2] - 900) / 400 + 2 * x[:, 3] + rng.normal(0, 0.3, 4000)
    dm = xgb.DMatrix(x, label=y, nthread=1)
    lin = xgb.train({"booster": "gblinear", "nthread": 1, "seed": 0}, dm, num_boost_round=5)
    lin.save_model(os.path.join(out, "gblinear.json"))
    faults.append("gblinear.json -")
    good = []
    pruned = xgb.train({"tree_method": "exact", "gamma": 5.0, "max_depth": 10, "nthread": 1, "seed": 0}, dm,
                       num_boost_round=8)
    pruned.save_model(os.path.join(out, "pruned.json"))
    deleted = sum(int(t["tree_param"]["num_deleted"]) for t in trees_of(json.loads(pruned.save_raw("json"))))
    if deleted == 0:
        raise SystemExit("bad_models.py: the pruned model has no deleted node")
    good.append("pruned.json %d" % deleted)
    dart = xgb.train({"booster": "dart", "rate_drop": 0.2, "max_depth": 4, "nthread": 1, "seed": 0}, dm,
                     num_boost_round=6)
    dart.save_model(os.path.join(out, "dart.json"))
    good.append("dart.json 0")
    with open(os.path.join(out, "faults.txt"), "w") as f:
        f.write("\n".join(faults) + "\n")
    with open(os.path.join(out, "good.txt"), "w") as f:
        f.write("\n".join(good) + "\n")
    print("bad_models: %d faulty models, %d good ones (pruned: %d deleted nodes) in %s"
          % (len(faults), len(good), deleted, out))


if __name__ == "__main__":
    main()
