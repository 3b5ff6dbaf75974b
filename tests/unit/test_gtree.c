/* test_gtree.c -- the gathered walk (gm_gtree.h), every path this CPU runs forced in turn (portable always;
 * AVX2 and AVX-512F where the CPU has them: under valgrind, which hides AVX-512, the AVX2 and portable ones),
 * held bit for bit to two oracles:
 * - a reference walk written here, node by node as XGBoost's predictor steps (a NaN takes the default child,
 *   else value < threshold goes left), adding leaves in float tree after tree, on random forests: depth 1 to
 *   16, 1 to 300 features, 1 to 12 groups, row counts around the 8- and 16-row vectors and the 64-row batch,
 *   nodes in any order, NaN, infinities, signed zeros and values equal to (and one ulp off) the thresholds;
 * - XGBoost's own predictor (XGBoosterPredictFromDense, the library python3-xgboost loads), on models it trains
 *   here (multi-class boosting of depth 10, a random forest of depth 12, a regression), read from their JSON.
 * Also the refusals: malformed trees, too many nodes for the 8-byte layout, a path the CPU lacks. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <xgboost/c_api.h>

#include "gm_gtree.h"
#include "gm_json.h"
#include "gm_log.h"

/* A deterministic generator (xorshift). */
static uint32_t rng_state = 2463534242u;
static uint32_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}
static float unit(void) { return (float)(rnd() % 1000000) / 1000000.0f; }

/* A forest in gm_gtree's input form. */
typedef struct {
    gm_gtree_node_t *nodes;
    uint32_t *start, *group;
    uint32_t ntrees, nfeature, groups, cap;
} forest_t;

static void forest_free(forest_t *f) {
    free(f->nodes);
    free(f->start);
    free(f->group);
    memset(f, 0, sizeof *f);
}

/* The paths this CPU runs: portable, then AVX2, AVX-512 where present. Returns their count. */
static int paths(gm_gtree_path_t *out) {
    char err[GM_ERR_LEN];
    int n = 0;
    out[n++] = GM_GTREE_PORTABLE;
    if (gm_gtree_path_check(GM_GTREE_AVX2, err) == 0) out[n++] = GM_GTREE_AVX2;
    if (gm_gtree_path_check(GM_GTREE_AVX512, err) == 0) out[n++] = GM_GTREE_AVX512;
    return n;
}

/* ---- the reference walk -------------------------------------------------------------------------------- */

static int is_leaf(const gm_gtree_node_t *nd, uint32_t k) { return nd[k].left < 0 || nd[k].left == (int32_t)k; }

/* Adds every tree's leaf to m[i * groups + g] for n rows of ncols features, as XGBoost's predictor does. */
static void reference(const forest_t *f, const float *x, size_t n, uint32_t ncols, float *m) {
    for (size_t i = 0; i < n; i++)
        for (uint32_t t = 0; t < f->ntrees; t++) {
            const gm_gtree_node_t *nd = f->nodes + f->start[t];
            uint32_t k = 0;
            while (!is_leaf(nd, k)) {
                float v = x[i * ncols + nd[k].feature];
                if (isnan(v)) k = (uint32_t)(nd[k].default_left ? nd[k].left : nd[k].right);
                else k = (uint32_t)(v < nd[k].value ? nd[k].left : nd[k].right);
            }
            m[i * f->groups + f->group[t]] += nd[k].value;
        }
}

/* ---- random forests ---------------------------------------------------------------------------------- */

#define POOL 64 /* split values per feature, which rows also take */

/* Grows a subtree under node 'k' (already allocated at f->nodes[base + k]) at 'depth' of at most 'maxd';
 * 'spine' forces splits down to maxd. *count is the tree's node count so far. */
static void grow(forest_t *f, uint32_t base, uint32_t *count, uint32_t k, uint32_t depth, uint32_t maxd, int spine,
                 const float *pool, int leaf_self) {
    gm_gtree_node_t *q = &f->nodes[base + k];
    int leaf = depth == maxd || (!spine && depth > 0 && rnd() % 100 < (depth < 4 ? 15 : 40));
    if (leaf) {
        /* leaf values of many magnitudes, so a different order of the float sums shows */
        float v = (unit() - 0.5f) * (rnd() % 3 == 0 ? 1000.0f : rnd() % 2 ? 1.0f : 1e-3f);
        *q = (gm_gtree_node_t){.left = leaf_self ? (int32_t)k : -1, .right = leaf_self ? (int32_t)k : -1,
                               .feature = rnd() % 7, .value = v, .default_left = rnd() % 2};
        return;
    }
    uint32_t feat = rnd() % f->nfeature;
    uint32_t l = (*count)++, r = (*count)++;
    if (rnd() % 2) { /* children in either order */
        uint32_t s = l;
        l = r;
        r = s;
    }
    *q = (gm_gtree_node_t){.left = (int32_t)l, .right = (int32_t)r, .feature = feat,
                           .value = pool[feat * POOL + rnd() % POOL], .default_left = rnd() % 2};
    int left_spine = spine && rnd() % 2;
    grow(f, base, count, l, depth + 1, maxd, left_spine, pool, leaf_self);
    grow(f, base, count, r, depth + 1, maxd, spine && !left_spine, pool, leaf_self);
}

/* A random forest of 'ntrees' trees of depth up to maxd (the first exactly maxd) over 'nfeature' features. */
static void random_forest(forest_t *f, uint32_t ntrees, uint32_t nfeature, uint32_t groups, uint32_t maxd,
                          const float *pool) {
    memset(f, 0, sizeof *f);
    f->nfeature = nfeature;
    f->groups = groups;
    f->start = malloc((ntrees + 1) * sizeof *f->start);
    f->group = malloc((ntrees + 1) * sizeof *f->group);
    f->start[0] = 0;
    for (uint32_t t = 0; t < ntrees; t++) {
        uint32_t need = f->start[t] + (1u << 18);
        if (need > f->cap) {
            f->cap = need * 2;
            f->nodes = realloc(f->nodes, f->cap * sizeof *f->nodes);
        }
        uint32_t count = 1, d = t == 0 ? maxd : 1 + rnd() % maxd;
        grow(f, f->start[t], &count, 0, 0, d, 1, pool, rnd() % 2);
        assert_true(count <= (1u << 18));
        f->start[t + 1] = f->start[t] + count;
        f->group[t] = (t + rnd() % 2) % groups; /* mostly round-robin, as boosting's classes; some repeats */
        f->ntrees = t + 1;
    }
}

/* Values to split on per feature: a spread of magnitudes and signs, and zero. */
static void make_pool(float *pool, uint32_t nfeature) {
    for (uint32_t k = 0; k < nfeature; k++)
        for (uint32_t j = 0; j < POOL; j++) {
            float *v = &pool[k * POOL + j];
            *v = (unit() - 0.5f) * (float)(1 + k % 7) * 100.0f;
            if (j == 0) *v = 0.0f;
            if (j == 1) *v = -1e30f;
            if (j == 2) *v = 1e-30f;
        }
}

/* Rows: NaN, infinities, signed zeros, pool values (ties) and their neighbours, fresh values. Rows in 'clean'
 * blocks of 16 hold no NaN, so that the NaN-free walks run too. */
static void make_rows(float *x, size_t n, uint32_t ncols, uint32_t nfeature, const float *pool) {
    for (size_t i = 0; i < n; i++) {
        int clean = (i / 16) % 3 == 0;
        for (uint32_t k = 0; k < ncols; k++) {
            float *v = &x[i * ncols + k];
            uint32_t r = rnd() % 100, kk = k < nfeature ? k : 0;
            float p = pool[kk * POOL + rnd() % POOL];
            if (r < 10) *v = clean ? p : NAN;
            else if (r < 12) *v = r == 10 ? INFINITY : -INFINITY;
            else if (r < 14) *v = r == 12 ? 0.0f : -0.0f;
            else if (r < 50) *v = p;
            else if (r < 60) *v = nextafterf(p, r % 2 ? INFINITY : -INFINITY);
            else *v = (unit() - 0.5f) * (float)(1 + kk % 7) * 110.0f;
        }
    }
}

/* Compares each path's margins of f on n rows with the reference's, from the rows and by feature. */
static void check_forest(const forest_t *f, size_t n, uint32_t ncols, const float *pool, const char *what) {
    float *x = calloc((n ? n : 1) * ncols, sizeof *x), *xc = calloc((n + 5) * ncols, sizeof *xc);
    size_t G = f->groups;
    float *want = malloc((n ? n : 1) * G * sizeof *want), *got = malloc((n ? n : 1) * G * sizeof *got);
    float *start = malloc((n ? n : 1) * G * sizeof *start);
    make_rows(x, n, ncols, f->nfeature, pool);
    for (size_t i = 0; i < n * G; i++) start[i] = (unit() - 0.5f) * 3.0f;
    memcpy(want, start, n * G * sizeof *want);
    reference(f, x, n, ncols, want);
    /* by feature, a stride beyond n */
    size_t xstride = n + 5;
    for (size_t i = 0; i < n; i++)
        for (uint32_t k = 0; k < ncols; k++) xc[k * xstride + i] = x[i * ncols + k];
    float base = 0.25f;
    float *want_cols = malloc((n ? n : 1) * G * sizeof *want_cols), *got_cols = malloc((n ? n : 1) * G * sizeof *got_cols);
    {
        float *wm = malloc((n ? n : 1) * G * sizeof *wm);
        for (size_t i = 0; i < n * G; i++) wm[i] = base;
        reference(f, x, n, ncols, wm);
        for (size_t i = 0; i < n; i++)
            for (size_t g = 0; g < G; g++) want_cols[g * n + i] = wm[i * G + g];
        free(wm);
    }
    gm_gtree_path_t p[3];
    int np = paths(p);
    char err[GM_ERR_LEN];
    for (int e = 0; e < np; e++) {
        gm_gtrees_t *gt = gm_gtrees_new(f->nodes, f->start, f->group, f->ntrees, f->nfeature, f->groups, p[e], err);
        if (!gt) fail_msg("%s: %s refused: %s", what, gm_gtree_path_name(p[e]), err);
        assert_int_equal(gm_gtrees_path(gt), p[e]);
        memcpy(got, start, n * G * sizeof *got);
        assert_int_equal(gm_gtrees_margins(gt, x, n, ncols, got), 0);
        for (size_t i = 0; i < n * G; i++)
            if (memcmp(&got[i], &want[i], sizeof(float)) != 0)
                fail_msg("%s, %s path, rows: row %zu group %zu: %.9g, reference %.9g", what, gm_gtree_path_name(p[e]),
                         i / G, i % G, got[i], want[i]);
        assert_int_equal(gm_gtrees_margins_cols(gt, xc, xstride, n, base, got_cols), 0);
        for (size_t i = 0; i < n * G; i++)
            if (memcmp(&got_cols[i], &want_cols[i], sizeof(float)) != 0)
                fail_msg("%s, %s path, by feature: group %zu row %zu: %.9g, reference %.9g", what,
                         gm_gtree_path_name(p[e]), i / (n ? n : 1), i % (n ? n : 1), got_cols[i], want_cols[i]);
        gm_gtrees_destroy(&gt);
        assert_null(gt);
    }
    free(x);
    free(xc);
    free(want);
    free(got);
    free(start);
    free(want_cols);
    free(got_cols);
}

/* Depth 1 to 16, each with several feature and group counts, and tree counts around the 4-tree groups. */
static void test_random_depths(void **state) {
    (void)state;
    static const uint32_t features[] = {1, 2, 3, 5, 16, 17, 30, 60, 255, 256, 300};
    static const uint32_t groups[] = {1, 3, 5, 12};
    float *pool = malloc(300 * POOL * sizeof *pool);
    make_pool(pool, 300);
    for (uint32_t depth = 1; depth <= 16; depth++)
        for (uint32_t c = 0; c < 3; c++) {
            uint32_t F = features[(depth * 3 + c) % (sizeof features / sizeof *features)];
            uint32_t G = groups[(depth + c) % (sizeof groups / sizeof *groups)];
            uint32_t T = depth >= 13 ? 1 + rnd() % 6 : 1 + rnd() % 23;
            size_t n = (size_t[]){1, 7, 15, 16, 17, 63, 64, 65, 130, 333}[rnd() % 10];
            forest_t f;
            random_forest(&f, T, F, G, depth, pool);
            char what[160];
            snprintf(what, sizeof what, "depth %u, %u features, %u groups, %u trees, %zu rows", depth, F, G, T, n);
            check_forest(&f, n, F + depth % 3, pool, what);
            forest_free(&f);
        }
    free(pool);
}

/* Many rows through a mid-size forest (every tail of the 64-row batch), and no rows at all. */
static void test_random_rows(void **state) {
    (void)state;
    float *pool = malloc(60 * POOL * sizeof *pool);
    make_pool(pool, 60);
    forest_t f;
    random_forest(&f, 41, 60, 3, 9, pool);
    check_forest(&f, 0, 60, pool, "no rows");
    check_forest(&f, 1000, 60, pool, "1000 rows");
    for (size_t n = 1; n <= 70; n += 3) check_forest(&f, n, 61, pool, "short");
    forest_free(&f);
    /* single-leaf trees only (depth 0), and a forest of no trees */
    memset(&f, 0, sizeof f);
    f.nfeature = 4;
    f.groups = 2;
    f.ntrees = 9;
    f.nodes = malloc(9 * sizeof *f.nodes);
    f.start = malloc(10 * sizeof *f.start);
    f.group = malloc(9 * sizeof *f.group);
    for (uint32_t t = 0; t <= 9; t++) f.start[t] = t;
    for (uint32_t t = 0; t < 9; t++) {
        f.nodes[t] = (gm_gtree_node_t){.left = -1, .right = -1, .value = 0.1f * (float)t};
        f.group[t] = t % 2;
    }
    check_forest(&f, 40, 4, pool, "stumps");
    f.ntrees = 0;
    check_forest(&f, 40, 4, pool, "no trees");
    forest_free(&f);
    free(pool);
}

/* ---- refusals and the path API ----------------------------------------------------------------------- */

static void expect_refusal(const gm_gtree_node_t *nd, uint32_t count, uint32_t nfeature, uint32_t group,
                           const char *needle) {
    char err[GM_ERR_LEN] = "";
    uint32_t start[2] = {0, count}, g[1] = {group};
    gm_gtrees_t *gt = gm_gtrees_new(nd, start, g, 1, nfeature, 2, GM_GTREE_PORTABLE, err);
    if (gt) fail_msg("a tree that should fail with '%s' was taken", needle);
    if (!strstr(err, needle)) fail_msg("error '%s' does not say '%s'", err, needle);
}

static void test_refusals(void **state) {
    (void)state;
    gm_gtree_node_t ok[3] = {{1, 2, 0, 0.5f, 1}, {-1, -1, 0, 1.0f, 0}, {-1, -1, 0, 2.0f, 0}};
    gm_gtree_node_t nd[3];
    memcpy(nd, ok, sizeof nd);
    nd[0].feature = 4;
    expect_refusal(nd, 3, 4, 0, "splits on feature 4 of 4");
    memcpy(nd, ok, sizeof nd);
    nd[0].right = 3;
    expect_refusal(nd, 3, 4, 0, "children out of range");
    memcpy(nd, ok, sizeof nd);
    nd[1] = (gm_gtree_node_t){0, 2, 0, 1.0f, 0};
    expect_refusal(nd, 3, 4, 0, "reached twice");
    memcpy(nd, ok, sizeof nd);
    nd[0].right = 1;
    expect_refusal(nd, 3, 4, 0, "children out of range");
    memcpy(nd, ok, sizeof nd);
    nd[0].value = NAN;
    expect_refusal(nd, 3, 4, 0, "NaN threshold");
    expect_refusal(ok, 3, 4, 2, "adds to group 2 of 2");
    gm_gtree_node_t lone[2] = {{-1, -1, 0, 1.0f, 0}, {-1, -1, 0, 1.0f, 0}};
    expect_refusal(lone, 2, 4, 0, "1 of its 2 nodes are unreachable");
    expect_refusal(ok, 0, 4, 0, "no nodes");
    expect_refusal(ok, 3, 1u << 23, 0, "features");
    /* 2^21 features take 22 bits and leave 9 for a child: a tree of 1023 nodes does not fit */
    uint32_t count = 1023;
    gm_gtree_node_t *big = calloc(count, sizeof *big);
    for (uint32_t k = 0; k < count; k++)
        big[k] = 2 * k + 2 < count ? (gm_gtree_node_t){(int32_t)(2 * k + 1), (int32_t)(2 * k + 2), k, 0.0f, 0}
                                   : (gm_gtree_node_t){-1, -1, 0, 1.0f, 0};
    expect_refusal(big, count, 1u << 21, 0, "has 1023 nodes (with 2097152 features the gathered walk takes up to 512)");
    /* with 2^20 features (10 bits for a child) it fits */
    char err[GM_ERR_LEN];
    uint32_t start[2] = {0, count}, g[1] = {0};
    gm_gtrees_t *gt = gm_gtrees_new(big, start, g, 1, 1u << 20, 1, GM_GTREE_PORTABLE, err);
    if (!gt) fail_msg("%s", err);
    gm_gtrees_destroy(&gt);
    free(big);
    gm_gtrees_destroy(&gt); /* takes NULL */
}

static void test_paths(void **state) {
    (void)state;
    char err[GM_ERR_LEN], why[GM_ERR_LEN];
    gm_gtree_path_t p;
    static const char *names[] = {"auto", "portable", "avx2", "avx512"};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(gm_gtree_path_parse(names[i], &p, err), 0);
        assert_string_equal(gm_gtree_path_name(p), names[i]);
    }
    assert_int_equal(gm_gtree_path_parse("sse", &p, err), -1);
    assert_non_null(strstr(err, "unknown evaluator path 'sse'"));
    assert_int_equal(gm_gtree_path_check(GM_GTREE_PORTABLE, err), 0);
    gm_gtree_path_t best = gm_gtree_path_best(why);
    assert_int_not_equal(best, GM_GTREE_AUTO);
    __builtin_cpu_init();
    int has512 = __builtin_cpu_supports("avx512f"), has2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    assert_int_equal(best, has512 ? GM_GTREE_AVX512 : has2 ? GM_GTREE_AVX2 : GM_GTREE_PORTABLE);
    if (has512) assert_string_equal(why, "");
    else assert_string_equal(why, "this CPU has no AVX-512F");
    /* a forced path the CPU lacks is refused with the check's words; AUTO takes the best */
    gm_gtree_node_t one[1] = {{-1, -1, 0, 1.0f, 0}};
    uint32_t start[2] = {0, 1}, g[1] = {0};
    gm_gtree_path_t forced[2] = {GM_GTREE_AVX2, GM_GTREE_AVX512};
    for (int i = 0; i < 2; i++) {
        char cerr[GM_ERR_LEN];
        int ok = gm_gtree_path_check(forced[i], cerr) == 0;
        gm_gtrees_t *gt = gm_gtrees_new(one, start, g, 1, 1, 1, forced[i], err);
        assert_int_equal(gt != NULL, ok);
        if (!ok) assert_string_equal(err, cerr);
        gm_gtrees_destroy(&gt);
    }
    gm_gtrees_t *gt = gm_gtrees_new(one, start, g, 1, 1, 1, GM_GTREE_AUTO, err);
    assert_non_null(gt);
    assert_int_equal(gm_gtrees_path(gt), best);
    assert_true(gm_gtrees_bytes(gt) >= 8);
    gm_gtrees_destroy(&gt);
}

/* ---- XGBoost's own models and predictor -------------------------------------------------------------- */

#define XGB_OK(call)                                                                                     \
    do {                                                                                                 \
        if ((call) != 0) fail_msg("%s: %s", #call, XGBGetLastError());                                  \
    } while (0)

static long num(const gm_json_t *v) {
    char buf[64];
    size_t n = v->len < sizeof buf - 1 ? v->len : sizeof buf - 1;
    memcpy(buf, v->text, n);
    buf[n] = '\0';
    return strtol(buf, NULL, 10);
}
static float numf(const gm_json_t *v) {
    char buf[64];
    size_t n = v->len < sizeof buf - 1 ? v->len : sizeof buf - 1;
    memcpy(buf, v->text, n);
    buf[n] = '\0';
    return strtof(buf, NULL);
}

/* Reads the trees of an XGBoost JSON model into f, and the margin rows start from (base_score, as
 * multi:softprob and reg:squarederror take it). */
static void forest_from_json(const char *json, size_t len, forest_t *f, float *base) {
    char err[GM_ERR_LEN];
    gm_json_t *root = gm_json_parse(json, len, err);
    if (!root) fail_msg("%s", err);
    const gm_json_t *param = gm_json_path(root, "learner/learner_model_param");
    const gm_json_t *trees = gm_json_path(root, "learner/gradient_booster/model/trees");
    const gm_json_t *info = gm_json_path(root, "learner/gradient_booster/model/tree_info");
    assert_non_null(param);
    assert_non_null(trees);
    assert_non_null(info);
    memset(f, 0, sizeof *f);
    long nc = num(gm_json_get(param, "num_class"));
    f->groups = nc > 1 ? (uint32_t)nc : 1;
    f->nfeature = (uint32_t)num(gm_json_get(param, "num_feature"));
    *base = numf(gm_json_get(param, "base_score"));
    f->ntrees = (uint32_t)trees->n;
    f->start = malloc((f->ntrees + 1) * sizeof *f->start);
    f->group = malloc((f->ntrees + 1) * sizeof *f->group);
    size_t total = 0;
    for (uint32_t t = 0; t < f->ntrees; t++) total += gm_json_get(&trees->items[t], "left_children")->n;
    f->nodes = malloc(total * sizeof *f->nodes);
    uint32_t at = 0;
    for (uint32_t t = 0; t < f->ntrees; t++) {
        const gm_json_t *tr = &trees->items[t], *l = gm_json_get(tr, "left_children"),
                        *r = gm_json_get(tr, "right_children"), *s = gm_json_get(tr, "split_indices"),
                        *c = gm_json_get(tr, "split_conditions"), *d = gm_json_get(tr, "default_left");
        f->start[t] = at;
        f->group[t] = (uint32_t)num(&info->items[t]);
        for (size_t k = 0; k < l->n; k++)
            f->nodes[at + k] = (gm_gtree_node_t){(int32_t)num(&l->items[k]), (int32_t)num(&r->items[k]),
                                                 (uint32_t)num(&s->items[k]), numf(&c->items[k]),
                                                 d->items[k].type == GM_JSON_BOOL ? (uint32_t)d->items[k].boolean
                                                                                  : num(&d->items[k]) != 0};
        at += (uint32_t)l->n;
    }
    f->start[f->ntrees] = at;
    gm_json_free(root);
}

/* XGBoost's margins of n dense rows (inplace prediction, NaN missing). */
static const float *xgb_margins(BoosterHandle b, const float *x, size_t n, uint32_t ncols) {
    char ai[256];
    const bst_ulong *shape;
    bst_ulong dim;
    const float *out;
    snprintf(ai, sizeof ai, "{\"data\":[%llu,true],\"shape\":[%zu,%u],\"typestr\":\"<f4\",\"version\":3}",
             (unsigned long long)(uintptr_t)x, n, ncols);
    XGB_OK(XGBoosterPredictFromDense(b, ai,
                                     "{\"type\":1,\"training\":false,\"iteration_begin\":0,\"iteration_end\":0,"
                                     "\"strict_shape\":false,\"missing\":NaN,\"cache_id\":0}",
                                     NULL, &shape, &dim, &out));
    return out;
}

/* Trains one model with XGBoost on random rows (10 % missing), then holds every path to its predictor. */
static void check_xgboost(const char *const *params, uint32_t nfeature, uint32_t rounds, const char *what) {
    size_t ntrain = 3000, n = 3000;
    float *tx = malloc(ntrain * nfeature * sizeof *tx), *ty = malloc(ntrain * sizeof *ty);
    int classes = 1;
    for (const char *const *p = params; *p; p += 2)
        if (!strcmp(p[0], "num_class")) classes = atoi(p[1]);
    for (size_t i = 0; i < ntrain; i++) {
        float s = 0;
        for (uint32_t k = 0; k < nfeature; k++) {
            float v = (unit() - 0.5f) * (float)(10 * (k % 5 + 1));
            tx[i * nfeature + k] = rnd() % 10 == 0 ? NAN : v;
            s += sinf(v * (float)(k + 1) * 0.3f);
        }
        ty[i] = classes > 1 ? (float)((uint32_t)(fabsf(s) * 3.0f) % (uint32_t)classes) : s;
    }
    DMatrixHandle dm;
    BoosterHandle b;
    XGB_OK(XGDMatrixCreateFromMat(tx, (bst_ulong)ntrain, nfeature, NAN, &dm));
    XGB_OK(XGDMatrixSetFloatInfo(dm, "label", ty, (bst_ulong)ntrain));
    XGB_OK(XGBoosterCreate(&dm, 1, &b));
    XGB_OK(XGBoosterSetParam(b, "nthread", "1"));
    XGB_OK(XGBoosterSetParam(b, "tree_method", "hist")); /* exact would take most of the test's time */
    for (const char *const *p = params; *p; p += 2) XGB_OK(XGBoosterSetParam(b, p[0], p[1]));
    for (uint32_t r = 0; r < rounds; r++) XGB_OK(XGBoosterUpdateOneIter(b, (int)r, dm));
    bst_ulong blen;
    const char *buf;
    XGB_OK(XGBoosterSaveModelToBuffer(b, "{\"format\": \"json\"}", &blen, &buf));
    forest_t f;
    float base;
    forest_from_json(buf, (size_t)blen, &f, &base);
    /* rows: training rows, the thresholds themselves (ties) and fresh values, some NaN */
    float *x = malloc(n * nfeature * sizeof *x);
    for (size_t i = 0; i < n; i++)
        for (uint32_t k = 0; k < nfeature; k++) {
            uint32_t r = rnd() % 100;
            const gm_gtree_node_t *q = &f.nodes[rnd() % f.start[f.ntrees]];
            if (r < 30) x[i * nfeature + k] = tx[(rnd() % ntrain) * nfeature + k];
            else if (r < 60 && q->left >= 0) x[i * nfeature + k] = q->value;
            else if (r < 63 && (i / 16) % 2) x[i * nfeature + k] = NAN;
            else x[i * nfeature + k] = (unit() - 0.5f) * (float)(12 * (k % 5 + 1));
        }
    const float *want = xgb_margins(b, x, n, nfeature);
    gm_gtree_path_t p[3];
    int np = paths(p);
    char err[GM_ERR_LEN];
    float *got = malloc(n * f.groups * sizeof *got);
    uint32_t biggest = 0;
    for (int e = 0; e < np; e++) {
        gm_gtrees_t *gt = gm_gtrees_new(f.nodes, f.start, f.group, f.ntrees, f.nfeature, f.groups, p[e], err);
        if (!gt) fail_msg("%s: %s", what, err);
        for (size_t i = 0; i < n * f.groups; i++) got[i] = base;
        assert_int_equal(gm_gtrees_margins(gt, x, n, nfeature, got), 0);
        for (size_t i = 0; i < n * f.groups; i++)
            if (memcmp(&got[i], &want[i], sizeof(float)) != 0)
                fail_msg("%s, %s path: row %zu group %zu: %.9g, XGBoost %.9g", what, gm_gtree_path_name(p[e]),
                         i / f.groups, i % f.groups, got[i], want[i]);
        gm_gtrees_destroy(&gt);
    }
    /* the trees are big: deep levels were walked, not only the top tables' five */
    for (uint32_t t = 0; t < f.ntrees; t++) {
        uint32_t count = f.start[t + 1] - f.start[t];
        biggest = count > biggest ? count : biggest;
    }
    assert_true(biggest > 64);
    free(got);
    free(x);
    forest_free(&f);
    XGB_OK(XGBoosterFree(b));
    XGB_OK(XGDMatrixFree(dm));
    free(tx);
    free(ty);
}

static void test_xgboost_models(void **state) {
    (void)state;
    static const char *const boost[] = {"objective", "multi:softprob", "num_class", "3", "max_depth", "10",
                                        "eta", "0.3", NULL};
    check_xgboost(boost, 17, 5, "multi:softprob, 3 classes, depth 10, 17 features");
    static const char *const forest[] = {"objective", "multi:softprob", "num_class", "5", "max_depth", "12",
                                         "eta", "1", "num_parallel_tree", "8", "subsample", "0.632",
                                         "colsample_bynode", "0.5", NULL};
    check_xgboost(forest, 30, 1, "random forest, 8 trees, 5 classes, depth 12, 30 features");
    static const char *const reg[] = {"objective", "reg:squarederror", "max_depth", "8", "eta", "0.1", NULL};
    check_xgboost(reg, 60, 10, "reg:squarederror, depth 8, 60 features");
}

int main(void) {
    gm_log_init("test_gtree", GM_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_random_depths),
        cmocka_unit_test(test_random_rows),
        cmocka_unit_test(test_xgboost_models),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
