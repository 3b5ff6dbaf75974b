/* gm_forest.c -- XGBoost gbtree models flattened into node arrays, evaluated with XGBoost's arithmetic. */
#include "gm_forest.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gm_ctree.h"
#include "gm_evaluator.h"
#include "gm_gtree.h"
#include "gm_json.h"
#include "gm_log.h"

typedef enum { T_IDENTITY, T_SOFTPROB, T_SOFTMAX, T_SIGMOID, T_HINGE, T_EXP, T_EXP_DOUBLE } transform_t;

/* One node: an internal split (left >= 0) or a leaf whose value is 'value'. Children index the same tree. The
 * gathered walk takes the same layout, so it is built from these nodes as they are. */
typedef gm_gtree_node_t node_t;

struct gm_forest {
    uint32_t ntrees, groups, nfeature;
    uint32_t *tree_start; /* first node of each tree */
    uint32_t *tree_group; /* output group of each tree */
    uint32_t *tree_depth; /* steps from the root to the deepest leaf */
    node_t *nodes;
    /* the walk's layout: per tree, nodes renumbered breadth-first so a node's children are next to each other
     * (right = left + 1); a leaf points to itself with a threshold no value passes, so walks stay put */
    struct walk_node { float threshold; uint32_t left; uint32_t feature_dl; } *walk; /* feature | default_left << 31 */
    float *leaf;          /* the value of each walk node (leaves only are read) */
    float base_margin;
    transform_t transform;
    gm_ctrees_t *ct;      /* the same trees as complete-tree tables for the 16-row AVX-512 walk, or NULL */
    gm_gtrees_t *gt;      /* the gathered walk (AVX-512F, AVX2 or portable; gm_gtree.h), or NULL: the scalar walk */
    char why[GM_ERR_LEN]; /* why this walk, for the logs: "this CPU has no AVX-512F", ... */
};

/* Parses a JSON number token as float (correctly rounded, as XGBoost reads it). */
static float json_float(const gm_json_t *v) {
    char buf[64];
    size_t n = v->len < sizeof buf - 1 ? v->len : sizeof buf - 1;
    memcpy(buf, v->text, n);
    buf[n] = '\0';
    return strtof(buf, NULL);
}

/* Parses a JSON number or numeric string as an integer. */
static long json_long(const gm_json_t *v) {
    char buf[64];
    size_t n = v->len < sizeof buf - 1 ? v->len : sizeof buf - 1;
    memcpy(buf, v->text, n);
    buf[n] = '\0';
    return strtol(buf, NULL, 10);
}

/* Returns array member 'key' of 'o' if it holds 'n' items, else NULL. */
static const gm_json_t *array_of(const gm_json_t *o, const char *key, size_t n) {
    const gm_json_t *a = gm_json_get(o, key);
    return (a && a->type == GM_JSON_ARRAY && a->n == n) ? a : NULL;
}

/* Copies one tree into self->nodes from 'at'. Returns 0, or -1 with 'err'. */
static int load_tree(gm_forest_t *self, const gm_json_t *t, uint32_t ti, uint32_t at, uint32_t count, char *err) {
    const gm_json_t *l = array_of(t, "left_children", count), *r = array_of(t, "right_children", count),
                    *f = array_of(t, "split_indices", count), *c = array_of(t, "split_conditions", count),
                    *d = array_of(t, "default_left", count), *st = gm_json_get(t, "split_type");
    if (!l || !r || !f || !c || !d) return gm_err(err, "tree %u: node arrays missing or of the wrong length", ti);
    for (uint32_t k = 0; st && st->type == GM_JSON_ARRAY && k < st->n; k++)
        if (json_long(&st->items[k]) != 0) return gm_err(err, "tree %u has categorical splits", ti);
    for (uint32_t k = 0; k < count; k++) {
        node_t *n = &self->nodes[at + k];
        long left = json_long(&l->items[k]), right = json_long(&r->items[k]), feat = json_long(&f->items[k]);
        n->value = json_float(&c->items[k]);
        n->default_left = d->items[k].type == GM_JSON_BOOL ? (uint32_t)d->items[k].boolean : json_long(&d->items[k]) != 0;
        if (left < 0) {
            n->left = n->right = -1;
            continue;
        }
        if (left >= (long)count || right < 0 || right >= (long)count || left == (long)k || right == (long)k)
            return gm_err(err, "tree %u node %u has children out of range", ti, k);
        if (feat < 0 || (uint32_t)feat >= self->nfeature)
            return gm_err(err, "tree %u node %u splits on feature %ld of %u", ti, k, feat, self->nfeature);
        n->left = (int32_t)left;
        n->right = (int32_t)right;
        n->feature = (uint32_t)feat;
    }
    return 0;
}

/* Makes every leaf of a tree of 'count' nodes point to itself (so a walk can take a fixed number of steps)
 * and measures the tree's depth; a node reached twice or never means a malformed tree. Returns 0, or -1. */
static int prepare_tree(node_t *nd, uint32_t count, uint32_t *depth, char *err) {
    uint32_t *stack = malloc(2 * count * sizeof *stack);
    uint8_t *seen = calloc(count, 1);
    int rc = -1;
    if (!stack || !seen) {
        gm_err(err, "out of memory");
        goto out;
    }
    uint32_t top = 0, deepest = 0, visited = 0;
    stack[top++] = 0; /* node */
    stack[top++] = 0; /* its depth */
    while (top) {
        uint32_t d = stack[--top], k = stack[--top];
        if (seen[k]) {
            gm_err(err, "node %u is reached twice", k);
            goto out;
        }
        seen[k] = 1;
        visited++;
        if (nd[k].left < 0) {
            nd[k].left = nd[k].right = (int32_t)k;
            nd[k].feature = 0;
            deepest = d > deepest ? d : deepest;
            continue;
        }
        stack[top++] = (uint32_t)nd[k].left;
        stack[top++] = d + 1;
        stack[top++] = (uint32_t)nd[k].right;
        stack[top++] = d + 1;
    }
    if (visited != count) {
        gm_err(err, "%u of its %u nodes are unreachable", count - visited, count);
        goto out;
    }
    *depth = deepest;
    rc = 0;
out:
    free(stack);
    free(seen);
    return rc;
}

/* Renumbers every tree breadth-first into self->walk (children adjacent). Returns 0, or -1 with 'err'. */
static int build_walk(gm_forest_t *self, char *err) {
    uint32_t total = self->tree_start[self->ntrees];
    self->walk = malloc((total ? total : 1) * sizeof *self->walk);
    self->leaf = malloc((total ? total : 1) * sizeof *self->leaf);
    uint32_t *order = malloc((total ? total : 1) * sizeof *order), *newid = malloc((total ? total : 1) * sizeof *newid);
    int rc = -1;
    if (!self->walk || !self->leaf || !order || !newid) {
        gm_err(err, "out of memory");
        goto out;
    }
    for (uint32_t t = 0; t < self->ntrees; t++) {
        const node_t *nd = self->nodes + self->tree_start[t];
        uint32_t count = self->tree_start[t + 1] - self->tree_start[t], head = 0, tail = 0;
        order[tail++] = 0; /* breadth-first: a node's children are queued together */
        newid[0] = 0;
        while (head < tail) {
            uint32_t k = order[head++];
            if (nd[k].left != (int32_t)k) {
                newid[nd[k].left] = tail;
                order[tail++] = (uint32_t)nd[k].left;
                newid[nd[k].right] = tail;
                order[tail++] = (uint32_t)nd[k].right;
            }
        }
        if (tail != count) {
            gm_err(err, "tree %u: %u of %u nodes reachable", t, tail, count);
            goto out;
        }
        struct walk_node *w = self->walk + self->tree_start[t];
        float *leaf = self->leaf + self->tree_start[t];
        for (uint32_t i = 0; i < count; i++) {
            const node_t *q = &nd[order[i]];
            if (q->left == (int32_t)order[i]) { /* leaf: stays, whatever the value */
                w[i].threshold = INFINITY;
                w[i].left = i;
                w[i].feature_dl = 1u << 31;
            } else {
                w[i].threshold = q->value;
                w[i].left = newid[q->left];
                w[i].feature_dl = q->feature | (q->default_left ? 1u << 31 : 0);
            }
            leaf[i] = q->value;
        }
    }
    rc = 0;
out:
    free(order);
    free(newid);
    return rc;
}

/* Builds the gathered walk on the path GRIDMILL_EVALUATOR asks for (the fastest this CPU runs by default);
 * none for "scalar", or when the forest does not fit it: the scalar walk stays, as exact, only slower. */
static void build_gtrees(gm_forest_t *self) {
    gm_eval_t choice = gm_evaluator();
    if (choice == GM_EVAL_SCALAR || choice == GM_EVAL_XGBOOST) {
        snprintf(self->why, sizeof self->why, "GRIDMILL_EVALUATOR=scalar");
        return;
    }
    gm_gtree_path_t path = choice == GM_EVAL_AVX512 ? GM_GTREE_AVX512 : choice == GM_EVAL_AVX2 ? GM_GTREE_AVX2
                           : choice == GM_EVAL_PORTABLE ? GM_GTREE_PORTABLE : GM_GTREE_AUTO;
    char why[GM_ERR_LEN] = "";
    if (path == GM_GTREE_AUTO) path = gm_gtree_path_best(why);
    else snprintf(why, sizeof why, "GRIDMILL_EVALUATOR=%s", gm_gtree_path_name(path));
    char err[GM_ERR_LEN];
    self->gt = gm_gtrees_new(self->nodes, self->tree_start, self->tree_group, self->ntrees, self->nfeature, self->groups,
                             path, err);
    if (!self->gt) snprintf(self->why, sizeof self->why, "%s", err);
    else snprintf(self->why, sizeof self->why, "%s", why);
}

/* Builds the AVX-512 tables of gm_ctree when this CPU and forest allow (auto or avx512): faster than the
 * gathered walk on the shapes it takes (depth 6, 16 features); else the gathered walk serves alone. */
static void build_ctrees(gm_forest_t *self) {
    char why[GM_ERR_LEN];
    gm_eval_t choice = gm_evaluator();
    if (choice != GM_EVAL_AUTO && choice != GM_EVAL_AVX512) return;
    uint32_t total = self->tree_start[self->ntrees];
    gm_ctree_node_t *nd = malloc((total ? total : 1) * sizeof *nd);
    if (!nd) return;
    for (uint32_t t = 0; t < self->ntrees; t++)
        for (uint32_t i = self->tree_start[t]; i < self->tree_start[t + 1]; i++) {
            const node_t *q = &self->nodes[i];
            uint32_t own = i - self->tree_start[t];
            int leaf = q->left == (int32_t)own; /* prepare_tree made leaves point to themselves */
            nd[i] = (gm_ctree_node_t){.left = leaf ? -1 : q->left, .right = leaf ? -1 : q->right,
                                      .feature = q->feature, .value = q->value};
        }
    self->ct = gm_ctrees_new(nd, self->tree_start, self->tree_group, self->ntrees, self->nfeature, self->groups, why);
    if (!self->ct) gm_log(GM_LOG_DEBUG, "evaluator: scalar walk (%s)", why);
    free(nd);
}

/* XGBoost 1.7's common::Sigmoid, operation for operation: the exponent clamped at 88.7 (so a very negative
 * margin gives a tiny positive value, not 0), then 1 / (exp + 1 + 1e-16) in float. */
static float xgb_sigmoid(float x) {
    float e = 88.7f < -x ? 88.7f : -x; /* std::min(-x, 88.7f): NaN stays NaN */
    float denom = expf(e) + 1.0f + 1e-16f;
    return 1.0f / denom;
}

/* Picks the transform and the margin every row starts from, as XGBoost 1.7's objective does (its PredTransform
 * and ProbToMargin of base_score, measured against python xgboost 1.7.4): the squared, absolute, pseudo-Huber
 * and squared-log errors, binary:logitraw and binary:hinge start from base_score itself, logitraw giving the
 * margin and hinge 1 where the margin is > 0, else 0; the logistic ones start from -logf(1 / base_score - 1)
 * through xgb_sigmoid; the log-link ones from logf(base_score) through expf, except survival:aft, whose exp()
 * of a float is the double one: (float)exp(margin), a different value for about 1 margin in 2000. */
static int pick_objective(gm_forest_t *self, const gm_json_t *name, float base_score, char *err) {
    static const struct { const char *name; transform_t transform; int base; } table[] = {
        {"reg:squarederror", T_IDENTITY, 0},    {"reg:absoluteerror", T_IDENTITY, 0},
        {"reg:pseudohubererror", T_IDENTITY, 0}, {"reg:squaredlogerror", T_IDENTITY, 0},
        {"binary:logitraw", T_IDENTITY, 0},     {"binary:hinge", T_HINGE, 0},
        {"binary:logistic", T_SIGMOID, 1},      {"reg:logistic", T_SIGMOID, 1},
        {"multi:softprob", T_SOFTPROB, 0},      {"multi:softmax", T_SOFTMAX, 0},
        {"count:poisson", T_EXP, 2},            {"reg:gamma", T_EXP, 2},
        {"reg:tweedie", T_EXP, 2},              {"survival:cox", T_EXP, 2},
        {"survival:aft", T_EXP_DOUBLE, 2},
    };
    for (size_t i = 0; i < sizeof table / sizeof *table; i++) {
        if (!gm_json_str_eq(name, table[i].name)) continue;
        self->transform = table[i].transform;
        if (table[i].base == 1) self->base_margin = -logf(1.0f / base_score - 1.0f); /* ProbToMargin */
        else if (table[i].base == 2) self->base_margin = logf(base_score);
        else self->base_margin = base_score;
        return 0;
    }
    return gm_err(err, "objective %.*s is left to XGBoost", name ? (int)name->len : 1, name ? name->text : "?");
}

gm_forest_t *gm_forest_from_json(const char *json, size_t len, char *err) {
    gm_forest_t *self = calloc(1, sizeof *self);
    gm_json_t *root = gm_json_parse(json, len, err);
    if (!self || !root) {
        if (!self) gm_err(err, "out of memory");
        goto fail;
    }
    const gm_json_t *learner = gm_json_get(root, "learner");
    const gm_json_t *gb = gm_json_get(learner, "gradient_booster");
    const gm_json_t *param = gm_json_get(learner, "learner_model_param");
    const gm_json_t *base = gm_json_get(param, "base_score"), *ncls = gm_json_get(param, "num_class"),
                    *nfeat = gm_json_get(param, "num_feature"), *ntarget = gm_json_get(param, "num_target");
    if (!gm_json_str_eq(gm_json_get(gb, "name"), "gbtree")) {
        gm_err(err, "booster is not gbtree");
        goto fail;
    }
    if (!base || !ncls || !nfeat) {
        gm_err(err, "learner_model_param lacks base_score, num_class or num_feature");
        goto fail;
    }
    if (ntarget && json_long(ntarget) > 1) {
        gm_err(err, "multi-target models are left to XGBoost");
        goto fail;
    }
    long nc = json_long(ncls);
    self->groups = nc > 1 ? (uint32_t)nc : 1;
    self->nfeature = (uint32_t)json_long(nfeat);
    if (pick_objective(self, gm_json_path(learner, "objective/name"), json_float(base), err) < 0) goto fail;
    const gm_json_t *model = gm_json_get(gb, "model");
    const gm_json_t *trees = gm_json_get(model, "trees"), *info = gm_json_get(model, "tree_info");
    if (!trees || trees->type != GM_JSON_ARRAY || !info || info->type != GM_JSON_ARRAY || info->n != trees->n) {
        gm_err(err, "model lacks trees or tree_info");
        goto fail;
    }
    self->ntrees = (uint32_t)trees->n;
    size_t total = 0;
    for (uint32_t t = 0; t < self->ntrees; t++) {
        const gm_json_t *l = gm_json_get(&trees->items[t], "left_children");
        if (!l || l->type != GM_JSON_ARRAY || l->n == 0) {
            gm_err(err, "tree %u has no nodes", t);
            goto fail;
        }
        const gm_json_t *tp = gm_json_path(&trees->items[t], "tree_param/size_leaf_vector");
        if (tp && json_long(tp) > 1) {
            gm_err(err, "tree %u has vector leaves", t);
            goto fail;
        }
        total += l->n;
    }
    self->tree_start = malloc((self->ntrees + 1) * sizeof *self->tree_start);
    self->tree_group = malloc((self->ntrees + 1) * sizeof *self->tree_group);
    self->tree_depth = malloc((self->ntrees + 1) * sizeof *self->tree_depth);
    self->nodes = malloc((total ? total : 1) * sizeof *self->nodes);
    if (!self->tree_start || !self->tree_group || !self->tree_depth || !self->nodes) {
        gm_err(err, "out of memory for %zu nodes", total);
        goto fail;
    }
    uint32_t at = 0;
    for (uint32_t t = 0; t < self->ntrees; t++) {
        const gm_json_t *tree = &trees->items[t];
        uint32_t count = (uint32_t)gm_json_get(tree, "left_children")->n;
        long g = json_long(&info->items[t]);
        if (g < 0 || (uint32_t)g >= self->groups) {
            gm_err(err, "tree %u belongs to group %ld of %u", t, g, self->groups);
            goto fail;
        }
        self->tree_start[t] = at;
        self->tree_group[t] = (uint32_t)g;
        if (load_tree(self, tree, t, at, count, err) < 0) goto fail;
        if (prepare_tree(self->nodes + at, count, &self->tree_depth[t], err) < 0) {
            gm_err(err, "tree %u: %s", t, err);
            goto fail;
        }
        at += count;
    }
    self->tree_start[self->ntrees] = at;
    if (build_walk(self, err) < 0) goto fail;
    build_gtrees(self);
    build_ctrees(self);
    gm_json_free(root);
    return self;
fail:
    gm_json_free(root);
    gm_forest_destroy(&self);
    return NULL;
}

uint32_t gm_forest_outputs(const gm_forest_t *self, int margin) {
    return (margin || self->transform == T_SOFTPROB) ? self->groups : 1;
}

uint32_t gm_forest_features(const gm_forest_t *self) { return self->nfeature; }

const char *gm_forest_walk(const gm_forest_t *self) {
    if (self->ct) return "avx512";
    return self->gt ? gm_gtree_path_name(gm_gtrees_path(self->gt)) : "scalar";
}

const char *gm_forest_walk_why(const gm_forest_t *self) { return self->why; }

#define LANES 16  /* rows walked through a tree side by side: independent loads overlap */
#define BATCH 256 /* rows taken through every tree before the next rows: each tree is loaded once per batch */

/* Sums every tree's leaf into the rows' margins, tree after tree, as XGBoost's CPU predictor adds them.
 * Rows go BATCH at a time through all trees, LANES at a time through one tree for exactly its depth:
 * leaves point to themselves, so rows that reach a leaf early stay there and the loop never branches on
 * the data. NaN goes the default way, as in XGBoost; no value passes a leaf's infinite threshold. */
static void add_trees(const void *ctx, const float *rows, size_t n, uint32_t ncols, float *m) {
    const gm_forest_t *self = ctx;
    uint32_t G = self->groups;
    for (size_t b0 = 0; b0 < n; b0 += BATCH) {
        size_t bn = n - b0 < BATCH ? n - b0 : BATCH;
        for (uint32_t t = 0; t < self->ntrees; t++) {
            const struct walk_node *w = self->walk + self->tree_start[t];
            const float *leaf = self->leaf + self->tree_start[t];
            uint32_t depth = self->tree_depth[t], g = self->tree_group[t];
            for (size_t r0 = b0; r0 < b0 + bn; r0 += LANES) {
                uint32_t lanes = b0 + bn - r0 < LANES ? (uint32_t)(b0 + bn - r0) : LANES;
                const float *x = rows + r0 * ncols;
                uint32_t k[LANES] = {0};
                for (uint32_t step = 0; step < depth; step++)
                    for (uint32_t j = 0; j < lanes; j++) {
                        const struct walk_node *q = &w[k[j]];
                        float v = x[j * ncols + (q->feature_dl & 0x7fffffffu)];
                        uint32_t right = v != v ? !(q->feature_dl >> 31) : !(v < q->threshold);
                        k[j] = q->left + right;
                    }
                for (uint32_t j = 0; j < lanes; j++) m[(r0 + j) * G + g] += leaf[k[j]];
            }
        }
    }
}

/* The rows gm_ctree leaves to its caller (those holding a NaN): the gathered walk, else the scalar one. */
static void add_trees_fast(const void *ctx, const float *rows, size_t n, uint32_t ncols, float *m) {
    const gm_forest_t *self = ctx;
    if (!self->gt || gm_gtrees_margins(self->gt, rows, n, ncols, m) < 0) add_trees(self, rows, n, ncols, m);
}

/* Every row's margins: the base margin plus every tree's leaf, with gm_ctree's AVX-512 tables when the forest
 * fits them, else the gathered walk, else (out of memory, or GRIDMILL_EVALUATOR=scalar) the scalar walk. */
static void margins(const gm_forest_t *self, const float *rows, size_t n, uint32_t ncols, float *m) {
    for (size_t i = 0; i < n * self->groups; i++) m[i] = self->base_margin;
    if (self->ct) gm_ctrees_margins(self->ct, rows, n, ncols, m, add_trees_fast, self);
    else add_trees_fast(self, rows, n, ncols, m);
}

void gm_forest_predict(const gm_forest_t *self, const float *rows, size_t n, uint32_t ncols, int margin, float *out) {
    uint32_t G = self->groups;
    if (margin || self->transform == T_IDENTITY || self->transform == T_SOFTPROB) {
        margins(self, rows, n, ncols, out);
        if (margin || self->transform == T_IDENTITY) return;
        for (size_t i = 0; i < n; i++) gm_forest_softmax(out + i * G, G, out + i * G);
        return;
    }
    /* one value per row from G margins: work in a scratch copy when G > 1 */
    float stack_buf[256], *m = G * n <= 256 ? stack_buf : malloc(G * n * sizeof(float));
    if (!m) { /* out of memory: row by row */
        for (size_t i = 0; i < n; i++) gm_forest_predict(self, rows + i * ncols, 1, ncols, 0, out + i);
        return;
    }
    margins(self, rows, n, ncols, m);
    for (size_t i = 0; i < n; i++) {
        const float *p = m + i * G;
        switch (self->transform) {
        case T_SOFTMAX: {
            uint32_t best = 0;
            for (uint32_t k = 1; k < G; k++)
                if (p[k] > p[best]) best = k;
            out[i] = (float)best;
            break;
        }
        case T_SIGMOID: out[i] = xgb_sigmoid(p[0]); break;
        case T_EXP: out[i] = expf(p[0]); break;
        case T_EXP_DOUBLE: out[i] = (float)exp((double)p[0]); break;
        case T_HINGE: out[i] = p[0] > 0.0f ? 1.0f : 0.0f; break;
        default: out[i] = p[0]; break;
        }
    }
    if (m != stack_buf) free(m);
}

int gm_forest_margins_cols(const gm_forest_t *self, const float *x, size_t xstride, size_t n, float *out) {
    if (self->ct && gm_ctrees_margins_cols(self->ct, x, xstride, n, self->base_margin, out) == 0) return 0;
    if (self->gt) return gm_gtrees_margins_cols(self->gt, x, xstride, n, self->base_margin, out);
    return -1;
}

void gm_forest_softmax(const float *margin, uint32_t n, float *out) {
    float wmax = margin[0];
    for (uint32_t i = 1; i < n; i++) wmax = fmaxf(margin[i], wmax);
    double wsum = 0.0;
    for (uint32_t i = 0; i < n; i++) {
        out[i] = expf(margin[i] - wmax);
        wsum += out[i];
    }
    for (uint32_t i = 0; i < n; i++) out[i] /= (float)wsum;
}

void gm_forest_destroy(gm_forest_t **self_p) {
    assert(self_p);
    gm_forest_t *self = *self_p;
    if (!self) return;
    free(self->tree_start);
    free(self->tree_group);
    free(self->tree_depth);
    free(self->nodes);
    free(self->walk);
    free(self->leaf);
    gm_ctrees_destroy(&self->ct);
    gm_gtrees_destroy(&self->gt);
    free(self);
    *self_p = NULL;
}
