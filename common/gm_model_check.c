/* gm_model_check.c -- an XGBoost model checked whole before XGBoost or gridmill's evaluator touches it.
 *
 * XGBoost 1.7's loader trusts the file: it indexes tree_info by num_trees, a node's parent by its parents entry
 * and the categories by their segments, and its predictor follows child and feature indices as they are. So
 * everything those read is checked here first, against the model's JSON (a UBJSON model is transcoded to JSON
 * text first, so one checker reads both). */
#include "gm_model_check.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gm_json.h"
#include "gm_log.h"

#define MAX_CATEGORY (1LL << 24) /* XGBoost's categories are below 2^24 (exact in a float) */
#define UBJ_MAX_DEPTH 64         /* as deep as gm_json parses */

/* The node arrays every tree must hold, one entry per node (XGBoost 1.7's loader reads each). */
static const char *const node_arrays[] = {"left_children", "right_children", "parents",      "split_indices",
                                          "split_conditions", "default_left", "base_weights", "loss_changes",
                                          "sum_hessian"};

/* Per-tree work arrays, grown to the largest tree. */
typedef struct {
    size_t cap;
    long long *left, *right, *split, *parent, *via; /* 'via': the node a walk reached each node from */
    uint32_t *stack;
    unsigned char *seen;
} scratch_t;

/* Reads an integer: a JSON number without fraction or exponent, or a string holding one (XGBoost writes its
 * parameters as strings). Returns 0, or -1 if 'v' is none. */
static int int_of(const gm_json_t *v, long long *out) {
    char buf[24];
    if (!v || (v->type != GM_JSON_NUMBER && v->type != GM_JSON_STRING) || v->len == 0 || v->len >= sizeof buf)
        return -1;
    memcpy(buf, v->text, v->len);
    buf[v->len] = '\0';
    const char *p = buf + (buf[0] == '-');
    if (!*p) return -1;
    for (; *p; p++)
        if (!isdigit((unsigned char)*p)) return -1;
    errno = 0;
    long long x = strtoll(buf, NULL, 10);
    if (errno) return -1;
    *out = x;
    return 0;
}

/* Reads the integer member 'key' of 'o' into 'out', or 'dflt' when absent and dflt_ok. Returns 0, or -1 with
 * 'err' naming 'where' and the key. */
static int int_member(const gm_json_t *o, const char *key, long long *out, int dflt_ok, long long dflt,
                      const char *what, const char *where, char *err) {
    const gm_json_t *v = gm_json_get(o, key);
    if (!v && dflt_ok) {
        *out = dflt;
        return 0;
    }
    if (!v) return gm_err(err, "%s: %s has no %s", what, where, key);
    if (int_of(v, out) < 0) return gm_err(err, "%s: %s.%s is not an integer", what, where, key);
    return 0;
}

/* Makes room for trees of 'n' nodes. Returns 0, or -1 when out of memory. */
static int scratch_reserve(scratch_t *s, size_t n) {
    if (n <= s->cap) return 0;
    long long **arrays[] = {&s->left, &s->right, &s->split, &s->parent, &s->via};
    for (size_t i = 0; i < sizeof arrays / sizeof *arrays; i++) {
        long long *more = realloc(*arrays[i], n * sizeof *more);
        if (!more) return -1;
        *arrays[i] = more;
    }
    uint32_t *stack = realloc(s->stack, n * sizeof *stack);
    if (!stack) return -1;
    s->stack = stack;
    unsigned char *seen = realloc(s->seen, n);
    if (!seen) return -1;
    s->seen = seen;
    s->cap = n;
    return 0;
}

static void scratch_free(scratch_t *s) {
    free(s->left);
    free(s->right);
    free(s->split);
    free(s->parent);
    free(s->via);
    free(s->stack);
    free(s->seen);
}

/* Copies the integers of node array 'key' of tree 't' into 'out'. Returns 0, or -1 with 'err'. */
static int read_ints(const gm_json_t *tree, const char *key, size_t n, long long *out, const char *what, size_t t,
                     char *err) {
    const gm_json_t *a = gm_json_get(tree, key);
    for (size_t k = 0; k < n; k++)
        if (int_of(&a->items[k], &out[k]) < 0)
            return gm_err(err, "%s: tree %zu: %s[%zu] is not an integer", what, t, key, k);
    return 0;
}

/* Returns 1 if node 'c' is node 'k' or one of its ancestors on the walk that reached 'k'. */
static int is_ancestor(const scratch_t *s, long long c, long long k) {
    for (long long a = k; a >= 0; a = s->via[a])
        if (a == c) return 1;
    return 0;
}

/* Checks tree 't''s categorical splits when it has a split_type array. Returns 0, or -1 with 'err'. */
static int check_categories(const gm_json_t *tree, size_t t, size_t n, const char *what, char *err) {
    const gm_json_t *st = gm_json_get(tree, "split_type");
    if (!st) return 0; /* XGBoost then reads every split as numerical */
    if (st->type != GM_JSON_ARRAY || st->n != n)
        return gm_err(err, "%s: tree %zu: split_type has length %zu, num_nodes is %zu", what, t,
                      st->type == GM_JSON_ARRAY ? st->n : 0, n);
    size_t ncat = 0;
    for (size_t k = 0; k < n; k++) {
        long long v;
        if (int_of(&st->items[k], &v) < 0 || (v != 0 && v != 1))
            return gm_err(err, "%s: tree %zu: node %zu: split_type is %.*s (0 numerical, 1 categorical)", what, t, k,
                          (int)st->items[k].len, st->items[k].text ? st->items[k].text : "?");
        ncat += v == 1;
    }
    const gm_json_t *nodes = gm_json_get(tree, "categories_nodes"), *segs = gm_json_get(tree, "categories_segments"),
                    *sizes = gm_json_get(tree, "categories_sizes"), *cats = gm_json_get(tree, "categories");
    if (!nodes && !segs && !sizes && !cats && ncat == 0) return 0;
    if (!nodes || !segs || !sizes || !cats || nodes->type != GM_JSON_ARRAY || segs->type != GM_JSON_ARRAY ||
        sizes->type != GM_JSON_ARRAY || cats->type != GM_JSON_ARRAY)
        return gm_err(err, "%s: tree %zu: categories_nodes, categories_segments, categories_sizes or categories "
                           "missing or not arrays", what, t);
    if (segs->n != nodes->n || sizes->n != nodes->n)
        return gm_err(err, "%s: tree %zu: categories_nodes, categories_segments and categories_sizes have %zu, %zu "
                           "and %zu entries", what, t, nodes->n, segs->n, sizes->n);
    if (nodes->n != ncat)
        return gm_err(err, "%s: tree %zu: categories_nodes lists %zu nodes, split_type marks %zu as categorical", what,
                      t, nodes->n, ncat);
    long long prev = -1;
    for (size_t i = 0; i < nodes->n; i++) {
        long long k, seg, size;
        if (int_of(&nodes->items[i], &k) < 0 || k <= prev || k >= (long long)n)
            return gm_err(err, "%s: tree %zu: categories_nodes[%zu] is not a node after %lld", what, t, i, prev);
        long long type;
        int_of(&st->items[k], &type);
        if (type != 1)
            return gm_err(err, "%s: tree %zu: categories_nodes[%zu] is node %lld, a numerical split", what, t, i, k);
        if (int_of(&segs->items[i], &seg) < 0 || int_of(&sizes->items[i], &size) < 0 || seg < 0 || size < 1 ||
            seg > (long long)cats->n || size > (long long)cats->n - seg)
            return gm_err(err, "%s: tree %zu: node %lld: its categories (segment %.*s, size %.*s) are not within the "
                               "%zu of categories", what, t, k, (int)segs->items[i].len, segs->items[i].text,
                          (int)sizes->items[i].len, sizes->items[i].text, cats->n);
        prev = k;
    }
    for (size_t j = 0; j < cats->n; j++) {
        long long c;
        if (int_of(&cats->items[j], &c) < 0 || c < 0 || c >= MAX_CATEGORY)
            return gm_err(err, "%s: tree %zu: categories[%zu] is %.*s, not a category (0 to %lld)", what, t, j,
                          (int)cats->items[j].len, cats->items[j].text ? cats->items[j].text : "?", MAX_CATEGORY - 1);
    }
    return 0;
}

/* Checks tree 't' against a model of 'nfeature' features. Returns 0, or -1 with 'err'. */
static int check_tree(const gm_json_t *tree, size_t t, long long nfeature, scratch_t *s, const char *what,
                      char *err) {
    long long nn;
    char where[48];
    snprintf(where, sizeof where, "tree %zu", t);
    if (!tree || tree->type != GM_JSON_OBJECT) return gm_err(err, "%s: tree %zu is not an object", what, t);
    if (int_member(gm_json_get(tree, "tree_param"), "num_nodes", &nn, 0, 0, what, where, err) < 0) return -1;
    if (nn < 1 || nn > INT32_MAX) return gm_err(err, "%s: tree %zu: num_nodes is %lld", what, t, nn);
    size_t n = (size_t)nn;
    for (size_t i = 0; i < sizeof node_arrays / sizeof *node_arrays; i++) {
        const gm_json_t *a = gm_json_get(tree, node_arrays[i]);
        if (!a || a->type != GM_JSON_ARRAY) return gm_err(err, "%s: tree %zu: no %s array", what, t, node_arrays[i]);
        if (a->n != n)
            return gm_err(err, "%s: tree %zu: %s has length %zu, num_nodes is %zu", what, t, node_arrays[i], a->n, n);
    }
    if (scratch_reserve(s, n) < 0) return gm_err(err, "%s: out of memory for a tree of %zu nodes", what, n);
    if (read_ints(tree, "left_children", n, s->left, what, t, err) < 0 ||
        read_ints(tree, "right_children", n, s->right, what, t, err) < 0 ||
        read_ints(tree, "split_indices", n, s->split, what, t, err) < 0 ||
        read_ints(tree, "parents", n, s->parent, what, t, err) < 0)
        return -1;
    for (size_t k = 0; k < n; k++) {
        long long l = s->left[k], r = s->right[k];
        if (k > 0 && (s->parent[k] < 0 || s->parent[k] >= nn))
            return gm_err(err, "%s: tree %zu: node %zu: parent %lld is not one of its %zu nodes", what, t, k,
                          s->parent[k], n);
        if (l == -1 && r == -1) continue; /* a leaf (or a deleted node): its split fields are not read */
        if (l == -1 || r == -1)
            return gm_err(err, "%s: tree %zu: node %zu has one child (left %lld, right %lld)", what, t, k, l, r);
        if (l < 0 || l >= nn)
            return gm_err(err, "%s: tree %zu: node %zu: left child %lld is not one of its %zu nodes", what, t, k, l, n);
        if (r < 0 || r >= nn)
            return gm_err(err, "%s: tree %zu: node %zu: right child %lld is not one of its %zu nodes", what, t, k, r,
                          n);
        if (s->split[k] < 0 || s->split[k] >= nfeature)
            return gm_err(err, "%s: tree %zu: node %zu splits on feature %lld, not one of the model's %lld features",
                          what, t, k, s->split[k], nfeature);
    }
    /* walk from the root, depth first with an explicit stack: every node at most once */
    memset(s->seen, 0, n);
    size_t top = 0;
    s->seen[0] = 1;
    s->via[0] = -1;
    s->stack[top++] = 0;
    while (top) {
        uint32_t k = s->stack[--top];
        if (s->left[k] == -1) continue;
        long long kids[2] = {s->left[k], s->right[k]};
        for (int side = 0; side < 2; side++) {
            long long c = kids[side];
            if (!s->seen[c]) {
                s->seen[c] = 1;
                s->via[c] = k;
                s->stack[top++] = (uint32_t)c;
                continue;
            }
            if (is_ancestor(s, c, k))
                return gm_err(err, "%s: tree %zu: node %u: %s child %lld is the node itself or one of its ancestors "
                                   "(a cycle)", what, t, k, side ? "right" : "left", c);
            if (side && c == kids[0])
                return gm_err(err, "%s: tree %zu: node %u has node %lld as both its children", what, t, k, c);
            return gm_err(err, "%s: tree %zu: node %lld is a child of both node %lld and node %u", what, t, c,
                          s->via[c], k);
        }
    }
    /* nodes the walk never reached are left alone: XGBoost's pruner leaves deleted nodes in the trees it writes */
    return check_categories(tree, t, n, what, err);
}

/* Checks a parsed model. Returns 0, or -1 with 'err'. */
static int check_model(const gm_json_t *root, const char *what, char *err) {
    const gm_json_t *learner = gm_json_get(root, "learner");
    if (!learner || learner->type != GM_JSON_OBJECT) return gm_err(err, "%s: not an XGBoost model (no learner)", what);
    const gm_json_t *gb = gm_json_get(learner, "gradient_booster"), *name = gm_json_get(gb, "name");
    if (!name || name->type != GM_JSON_STRING) return gm_err(err, "%s: the model names no booster", what);
    const gm_json_t *model, *weight_drop = NULL;
    if (gm_json_str_eq(name, "gbtree")) {
        model = gm_json_get(gb, "model");
    } else if (gm_json_str_eq(name, "dart")) {
        model = gm_json_path(gb, "gbtree/model");
        weight_drop = gm_json_get(gb, "weight_drop");
        if (!weight_drop || weight_drop->type != GM_JSON_ARRAY)
            return gm_err(err, "%s: a dart model without weight_drop", what);
    } else {
        return gm_err(err, "%s: booster %.*s is not supported: gridmill applies tree models, train with booster "
                           "gbtree", what, (int)name->len, name->text);
    }
    const gm_json_t *param = gm_json_get(learner, "learner_model_param");
    long long nfeature, nclass, ntarget, ntrees, nparallel;
    if (int_member(param, "num_feature", &nfeature, 0, 0, what, "learner_model_param", err) < 0 ||
        int_member(param, "num_class", &nclass, 1, 0, what, "learner_model_param", err) < 0 ||
        int_member(param, "num_target", &ntarget, 1, 1, what, "learner_model_param", err) < 0)
        return -1;
    if (nfeature < 0 || nclass < 0 || ntarget < 1)
        return gm_err(err, "%s: learner_model_param: num_feature %lld, num_class %lld, num_target %lld", what, nfeature,
                      nclass, ntarget);
    const gm_json_t *gmp = gm_json_get(model, "gbtree_model_param");
    if (int_member(gmp, "num_trees", &ntrees, 0, 0, what, "gbtree_model_param", err) < 0 ||
        int_member(gmp, "num_parallel_tree", &nparallel, 1, 1, what, "gbtree_model_param", err) < 0)
        return -1;
    if (nparallel < 1) return gm_err(err, "%s: gbtree_model_param.num_parallel_tree is %lld", what, nparallel);
    const gm_json_t *trees = gm_json_get(model, "trees"), *info = gm_json_get(model, "tree_info");
    if (!trees || trees->type != GM_JSON_ARRAY || !info || info->type != GM_JSON_ARRAY)
        return gm_err(err, "%s: the model has no trees or tree_info array", what);
    if (ntrees != (long long)trees->n)
        return gm_err(err, "%s: gbtree_model_param.num_trees is %lld but the model holds %zu trees", what, ntrees,
                      trees->n);
    if (info->n != trees->n) return gm_err(err, "%s: tree_info has length %zu for %zu trees", what, info->n, trees->n);
    if (weight_drop && weight_drop->n != trees->n)
        return gm_err(err, "%s: weight_drop has length %zu for %zu trees", what, weight_drop->n, trees->n);
    long long groups = nclass > ntarget ? nclass : ntarget;
    unsigned char *id_taken = calloc(trees->n ? trees->n : 1, 1);
    scratch_t s = {0};
    int rc = -1;
    if (!id_taken) {
        gm_err(err, "%s: out of memory", what);
        goto out;
    }
    for (size_t t = 0; t < trees->n; t++) {
        const gm_json_t *tree = &trees->items[t];
        long long id, group;
        char where[48];
        snprintf(where, sizeof where, "tree %zu", t);
        if (int_member(tree, "id", &id, 0, 0, what, where, err) < 0) goto out;
        if (id < 0 || id >= (long long)trees->n || id_taken[id]) {
            gm_err(err, "%s: tree %zu: id %lld is not one of 0 to %zu or is taken twice", what, t, id, trees->n - 1);
            goto out;
        }
        id_taken[id] = 1;
        if (int_of(&info->items[t], &group) < 0 || group < 0 || group >= groups) {
            gm_err(err, "%s: tree %zu: tree_info gives it output %.*s of %lld", what, t, (int)info->items[t].len,
                   info->items[t].text ? info->items[t].text : "?", groups);
            goto out;
        }
        if (check_tree(tree, t, nfeature, &s, what, err) < 0) goto out;
    }
    rc = 0;
out:
    scratch_free(&s);
    free(id_taken);
    return rc;
}

int gm_model_check_json(const char *json, size_t len, const char *what, char *err) {
    char perr[GM_ERR_LEN];
    gm_json_t *root = gm_json_parse(json, len, perr);
    if (!root) return gm_err(err, "%s: not an XGBoost model (%s)", what, perr);
    int rc = check_model(root, what, err);
    gm_json_free(root);
    return rc;
}

/* UBJSON (https://ubjson.org), as XGBoost writes it, transcoded into JSON text. */
typedef struct {
    const unsigned char *p, *end;
    char *out;
    size_t len, cap;
    char *err;
} ubj_t;

/* Appends 'n' bytes to the JSON text. Returns 0, or -1 when out of memory. */
static int emit(ubj_t *u, const char *s, size_t n) {
    if (u->len + n + 1 > u->cap) {
        size_t cap = u->cap ? u->cap : 4096;
        while (u->len + n + 1 > cap) cap *= 2;
        char *more = realloc(u->out, cap);
        if (!more) return gm_err(u->err, "UBJSON: out of memory");
        u->out = more;
        u->cap = cap;
    }
    memcpy(u->out + u->len, s, n);
    u->len += n;
    return 0;
}

static int emitf(ubj_t *u, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends formatted text (under 64 bytes) to the JSON text. Returns 0, or -1. */
static int emitf(ubj_t *u, const char *fmt, ...) {
    char buf[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return emit(u, buf, n < 0 ? 0 : (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

/* Takes the next 'n' bytes. Returns 0, or -1 when the input ends first. */
static int take(ubj_t *u, size_t n, const unsigned char **at) {
    *at = u->p;
    if ((size_t)(u->end - u->p) < n) return gm_err(u->err, "UBJSON: truncated");
    u->p += n;
    return 0;
}

/* Returns the size of a fixed-size value of type 'm', or 0. */
static size_t ubj_size(int m) {
    switch (m) {
    case 'i': case 'U': case 'C': return 1;
    case 'I': return 2;
    case 'l': case 'd': return 4;
    case 'L': case 'D': return 8;
    default: return 0;
    }
}

/* Reads a big-endian integer of type 'm'. Returns 0, or -1 if 'm' is no integer type or the input ends. */
static int ubj_int(ubj_t *u, int m, long long *v) {
    size_t n = ubj_size(m);
    const unsigned char *b;
    if (!n || m == 'd' || m == 'D') return gm_err(u->err, "UBJSON: integer expected, found marker 0x%02x", m & 0xff);
    if (take(u, n, &b) < 0) return -1;
    uint64_t raw = 0;
    for (size_t i = 0; i < n; i++) raw = raw << 8 | b[i];
    if (m != 'U' && n < 8 && (raw >> (8 * n - 1)) & 1) raw |= ~0ULL << (8 * n); /* sign-extend */
    *v = (long long)raw;
    return 0;
}

/* Appends a value of fixed-size type 'm' as JSON. Returns 0, or -1. */
static int ubj_scalar(ubj_t *u, int m) {
    if (m != 'd' && m != 'D') {
        long long v;
        return ubj_int(u, m, &v) < 0 ? -1 : emitf(u, "%lld", v);
    }
    const unsigned char *b;
    if (take(u, ubj_size(m), &b) < 0) return -1;
    uint64_t raw = 0;
    for (size_t i = 0; i < ubj_size(m); i++) raw = raw << 8 | b[i];
    double v;
    if (m == 'd') {
        uint32_t r32 = (uint32_t)raw;
        float f;
        memcpy(&f, &r32, sizeof f);
        v = f;
    } else {
        memcpy(&v, &raw, sizeof v);
    }
    if (isnan(v)) return emit(u, "NaN", 3);
    if (isinf(v)) return v > 0 ? emit(u, "inf", 3) : emit(u, "-inf", 4);
    return emitf(u, m == 'd' ? "%.9g" : "%.17g", v);
}

/* Appends a string (its length, then its bytes) as a quoted JSON string. Returns 0, or -1. */
static int ubj_string(ubj_t *u) {
    const unsigned char *m, *b;
    long long n;
    if (take(u, 1, &m) < 0 || ubj_int(u, *m, &n) < 0) return -1;
    if (n < 0 || take(u, (size_t)n, &b) < 0) return gm_err(u->err, "UBJSON: string of %lld bytes past the end", n);
    if (emit(u, "\"", 1) < 0) return -1;
    for (long long i = 0; i < n; i++) {
        unsigned char c = b[i];
        int rc = c == '"' || c == '\\' ? emitf(u, "\\%c", c)
                 : c < 0x20             ? emitf(u, "\\u%04x", c)
                                        : emit(u, (char *)&c, 1);
        if (rc < 0) return -1;
    }
    return emit(u, "\"", 1);
}

static int ubj_value(ubj_t *u, int depth);

/* Appends the items of an array whose '[' was read. Returns 0, or -1. */
static int ubj_array(ubj_t *u, int depth) {
    const unsigned char *m;
    long long n = -1;
    int type = 0;
    if (u->p < u->end && *u->p == '$') {
        const unsigned char *tm, *hash;
        u->p++;
        if (take(u, 1, &tm) < 0 || take(u, 1, &hash) < 0) return -1;
        type = *tm;
        if (*hash != '#') return gm_err(u->err, "UBJSON: typed array without a count");
        if (!ubj_size(type)) return gm_err(u->err, "UBJSON: typed array of marker 0x%02x", type);
    }
    if (type || (u->p < u->end && *u->p == '#')) {
        if (!type) u->p++;
        if (take(u, 1, &m) < 0 || ubj_int(u, *m, &n) < 0) return -1;
        size_t least = type ? ubj_size(type) : 1; /* every value takes at least this many bytes */
        if (n < 0 || (unsigned long long)n > (size_t)(u->end - u->p) / least)
            return gm_err(u->err, "UBJSON: array of %lld items past the end", n);
    }
    if (emit(u, "[", 1) < 0) return -1;
    for (long long i = 0; n < 0 || i < n; i++) {
        if (n < 0) {
            if (u->p >= u->end) return gm_err(u->err, "UBJSON: truncated");
            if (*u->p == ']') {
                u->p++;
                break;
            }
        }
        if (i && emit(u, ",", 1) < 0) return -1;
        if ((type ? ubj_scalar(u, type) : ubj_value(u, depth + 1)) < 0) return -1;
    }
    return emit(u, "]", 1);
}

/* Appends one value. Returns 0, or -1 with the reason in u->err. */
static int ubj_value(ubj_t *u, int depth) {
    const unsigned char *m;
    if (depth > UBJ_MAX_DEPTH) return gm_err(u->err, "UBJSON: nested too deeply");
    if (take(u, 1, &m) < 0) return -1;
    switch (*m) {
    case '{':
        if (emit(u, "{", 1) < 0) return -1;
        for (int first = 1;; first = 0) {
            if (u->p >= u->end) return gm_err(u->err, "UBJSON: truncated");
            if (*u->p == '}') {
                u->p++;
                return emit(u, "}", 1);
            }
            if ((!first && emit(u, ",", 1) < 0) || ubj_string(u) < 0 || emit(u, ":", 1) < 0 ||
                ubj_value(u, depth + 1) < 0)
                return -1;
        }
    case '[': return ubj_array(u, depth);
    case 'Z': return emit(u, "null", 4);
    case 'T': return emit(u, "true", 4);
    case 'F': return emit(u, "false", 5);
    case 'S': return ubj_string(u);
    default:
        if (ubj_size(*m)) return ubj_scalar(u, *m);
        return gm_err(u->err, "UBJSON: unknown marker 0x%02x", *m);
    }
}

int gm_model_check_ubjson(const void *ubj, size_t len, const char *what, char *err) {
    char uerr[GM_ERR_LEN];
    ubj_t u = {.p = ubj, .end = (const unsigned char *)ubj + len, .err = uerr};
    if (ubj_value(&u, 0) < 0) {
        free(u.out);
        return gm_err(err, "%s: not an XGBoost model (%s)", what, uerr);
    }
    int rc = gm_model_check_json(u.out, u.len, what, err);
    free(u.out);
    return rc;
}

int gm_model_check_bytes(const void *bytes, size_t len, const char *what, char *err) {
    const unsigned char *p = bytes;
    if (len < 2 || p[0] != '{') return 0; /* legacy binary */
    size_t i = 1;
    while (i < len && isspace(p[i])) i++;
    /* the test XGBoost's loader makes: a quote opens JSON, a letter (a key's length marker) UBJSON */
    if (i < len && p[i] == '"') return gm_model_check_json(bytes, len, what, err) < 0 ? -1 : 1;
    if (i < len && isalpha(p[i])) return gm_model_check_ubjson(bytes, len, what, err) < 0 ? -1 : 1;
    return 0;
}
