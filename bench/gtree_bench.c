/* gtree_bench.c -- the gathered walk (gm_gtree.h) on the model zoo of make_gtree_zoo.py, one core: rows per CPU
 * second of raw margins from XGBoost's predictor (XGBoosterPredictFromDense, nthread 1), gm_forest's scalar walk
 * (GRIDMILL_EVALUATOR=scalar), gm_forest's default walk (gm_ctree's AVX-512 tables where the model fits), and
 * each gm_gtree path this CPU runs. Every output is compared bit for bit with python xgboost's margins of the
 * same rows (NAME.margins.f32), and the run fails on any difference. CPU time, the best of PASSES interleaved
 * passes. Prints a Markdown table: the ratios are to XGBoost in the same run.
 *
 * Usage: gtree_bench ZOO_DIR [--passes N] [--only NAME] [--eval xgboost,scalar,default,portable,avx2,avx512]
 * (--eval: the evaluators to run, all by default; XGBoost always runs, the ratios' base) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <xgboost/c_api.h>

#include "gm_forest.h"
#include "gm_gtree.h"
#include "gm_json.h"
#include "gm_log.h"
#include "gm_model.h"

enum { E_XGB, E_SCALAR, E_DEFAULT, E_PORTABLE, E_AVX2, E_AVX512, E_COUNT };
static const char *e_key[E_COUNT] = {"xgboost", "scalar", "default", "portable", "avx2", "avx512"};
static const char *e_name[E_COUNT] = {"XGBoost", "forest scalar", "forest default", "gtree portable", "gtree avx2",
                                      "gtree avx512"};

static double cpu_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void die(const char *what, const char *why) {
    fprintf(stderr, "gtree_bench: %s: %s\n", what, why);
    exit(1);
}

/* Reads a whole file into a malloc'd buffer. */
static void *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) die(path, "cannot open");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = malloc(n > 0 ? (size_t)n : 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) die(path, "cannot read");
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static double jnum(const gm_json_t *v) {
    char buf[64];
    size_t n = v->len < sizeof buf - 1 ? v->len : sizeof buf - 1;
    memcpy(buf, v->text, n);
    buf[n] = '\0';
    return strtod(buf, NULL);
}

static float jfloat(const gm_json_t *v) {
    char buf[64];
    size_t n = v->len < sizeof buf - 1 ? v->len : sizeof buf - 1;
    memcpy(buf, v->text, n);
    buf[n] = '\0';
    return strtof(buf, NULL);
}

/* The trees of an XGBoost JSON model (multi:softprob or reg:squarederror: their margins start at base_score). */
typedef struct {
    gm_gtree_node_t *nodes;
    uint32_t *start, *group, ntrees, nfeature, groups, depth;
    float base;
} zoo_model_t;

static uint32_t depth_of(const gm_gtree_node_t *nd, uint32_t k) {
    if (nd[k].left < 0) return 0;
    uint32_t l = depth_of(nd, (uint32_t)nd[k].left), r = depth_of(nd, (uint32_t)nd[k].right);
    return 1 + (l > r ? l : r);
}

static void load_zoo_model(const char *path, const char *json, size_t len, zoo_model_t *m) {
    char err[GM_ERR_LEN];
    gm_json_t *root = gm_json_parse(json, len, err);
    if (!root) die(path, err);
    const gm_json_t *param = gm_json_path(root, "learner/learner_model_param");
    const gm_json_t *obj = gm_json_path(root, "learner/objective/name");
    const gm_json_t *trees = gm_json_path(root, "learner/gradient_booster/model/trees");
    const gm_json_t *info = gm_json_path(root, "learner/gradient_booster/model/tree_info");
    if (!param || !trees || !info || !obj) die(path, "not an XGBoost gbtree JSON model");
    if (!gm_json_str_eq(obj, "multi:softprob") && !gm_json_str_eq(obj, "reg:squarederror"))
        die(path, "objective other than multi:softprob or reg:squarederror");
    memset(m, 0, sizeof *m);
    double nc = jnum(gm_json_get(param, "num_class"));
    m->groups = nc > 1 ? (uint32_t)nc : 1;
    m->nfeature = (uint32_t)jnum(gm_json_get(param, "num_feature"));
    m->base = jfloat(gm_json_get(param, "base_score"));
    m->ntrees = (uint32_t)trees->n;
    m->start = malloc((m->ntrees + 1) * sizeof *m->start);
    m->group = malloc((m->ntrees + 1) * sizeof *m->group);
    size_t total = 0;
    for (uint32_t t = 0; t < m->ntrees; t++) total += gm_json_get(&trees->items[t], "left_children")->n;
    m->nodes = malloc(total * sizeof *m->nodes);
    uint32_t at = 0;
    for (uint32_t t = 0; t < m->ntrees; t++) {
        const gm_json_t *tr = &trees->items[t], *l = gm_json_get(tr, "left_children"),
                        *r = gm_json_get(tr, "right_children"), *s = gm_json_get(tr, "split_indices"),
                        *c = gm_json_get(tr, "split_conditions"), *d = gm_json_get(tr, "default_left");
        m->start[t] = at;
        m->group[t] = (uint32_t)jnum(&info->items[t]);
        for (size_t k = 0; k < l->n; k++)
            m->nodes[at + k] = (gm_gtree_node_t){(int32_t)jnum(&l->items[k]), (int32_t)jnum(&r->items[k]),
                                                 (uint32_t)jnum(&s->items[k]), jfloat(&c->items[k]),
                                                 d->items[k].type == GM_JSON_BOOL ? (uint32_t)d->items[k].boolean
                                                                                  : jnum(&d->items[k]) != 0};
        uint32_t dd = depth_of(m->nodes + at, 0);
        m->depth = dd > m->depth ? dd : m->depth;
        at += (uint32_t)l->n;
    }
    m->start[m->ntrees] = at;
    gm_json_free(root);
}

/* XGBoost's margins of n rows, inplace, one thread. */
static const float *xgb_margins(BoosterHandle b, const float *x, size_t n, uint32_t k) {
    char ai[256];
    const bst_ulong *shape;
    bst_ulong dim;
    const float *out;
    snprintf(ai, sizeof ai, "{\"data\":[%llu,true],\"shape\":[%zu,%u],\"typestr\":\"<f4\",\"version\":3}",
             (unsigned long long)(uintptr_t)x, n, k);
    if (XGBoosterPredictFromDense(b, ai,
                                  "{\"type\":1,\"training\":false,\"iteration_begin\":0,\"iteration_end\":0,"
                                  "\"strict_shape\":false,\"missing\":NaN,\"cache_id\":0}",
                                  NULL, &shape, &dim, &out) != 0)
        die("XGBoost", XGBGetLastError());
    return out;
}

int main(int argc, char **argv) {
    char err[GM_ERR_LEN];
    int passes = 5;
    const char *dir = NULL, *only = NULL, *eval = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--passes") && i + 1 < argc) passes = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
        else if (!strcmp(argv[i], "--eval") && i + 1 < argc) eval = argv[++i];
        else if (!dir && argv[i][0] != '-') dir = argv[i];
        else {
            fprintf(stderr, "usage: gtree_bench ZOO_DIR [--passes N] [--only NAME] [--eval LIST]\n");
            return 2;
        }
    }
    if (!dir) {
        fprintf(stderr, "usage: gtree_bench ZOO_DIR [--passes N] [--only NAME] [--eval LIST]\n");
        return 2;
    }
    gm_log_init("gtree_bench", GM_LOG_WARN);
    char path[4096], line[8192];
    snprintf(path, sizeof path, "%s/zoo.tsv", dir);
    FILE *tsv = fopen(path, "r");
    if (!tsv) die(path, "cannot open (run make_gtree_zoo.py first)");
    int has[E_COUNT] = {1, 1, 1, 1, 0, 0};
    has[E_AVX2] = gm_gtree_path_check(GM_GTREE_AVX2, err) == 0;
    has[E_AVX512] = gm_gtree_path_check(GM_GTREE_AVX512, err) == 0;
    for (int e = 1; eval && e < E_COUNT; e++) {
        const char *at = strstr(eval, e_key[e]);
        size_t len = strlen(e_key[e]);
        int named = at && (at == eval || at[-1] == ',') && (at[len] == ',' || at[len] == '\0');
        has[e] = has[e] && named;
    }
    printf("| model | trees | nodes | depth | XGBoost rows/cpu-s |");
    for (int e = 1; e < E_COUNT; e++)
        if (has[e]) printf(" %s |", e_name[e]);
    printf(" gtree bytes (per node) |\n|---|---:|---:|---:|---:|");
    for (int e = 1; e < E_COUNT; e++)
        if (has[e]) printf("---:|");
    printf("---:|\n");
    int failed = 0;
    while (fgets(line, sizeof line, tsv)) {
        char name[256], model_path[4096];
        unsigned k;
        size_t n;
        if (sscanf(line, "%255s %u %zu %4095s", name, &k, &n, model_path) != 4) continue;
        if (only && strcmp(only, name)) continue;
        size_t jlen, xlen, mlen;
        char *json = slurp(model_path, &jlen);
        snprintf(path, sizeof path, "%s/%s.rows.f32", dir, name);
        float *x = slurp(path, &xlen);
        snprintf(path, sizeof path, "%s/%s.margins.f32", dir, name);
        float *want = slurp(path, &mlen);
        if (xlen != n * k * sizeof(float)) die(name, "rows file of the wrong size");
        zoo_model_t zm;
        load_zoo_model(model_path, json, jlen, &zm);
        size_t G = zm.groups;
        if (mlen != n * G * sizeof(float)) die(name, "margins file of the wrong size");
        /* the evaluators */
        BoosterHandle b;
        if (XGBoosterCreate(NULL, 0, &b) || XGBoosterLoadModelFromBuffer(b, json, (bst_ulong)jlen) ||
            XGBoosterSetParam(b, "nthread", "1"))
            die(name, XGBGetLastError());
        setenv("GRIDMILL_EVALUATOR", "scalar", 1);
        gm_forest_t *scalar = gm_forest_from_json(json, jlen, err);
        unsetenv("GRIDMILL_EVALUATOR");
        if (!scalar) die(name, err);
        gm_forest_t *deflt = gm_forest_from_json(json, jlen, err);
        if (!deflt) die(name, err);
        gm_gtrees_t *gt[E_COUNT] = {NULL};
        static const gm_gtree_path_t gp[E_COUNT] = {0, 0, 0, GM_GTREE_PORTABLE, GM_GTREE_AVX2, GM_GTREE_AVX512};
        for (int e = E_PORTABLE; e < E_COUNT; e++)
            if (has[e] && !(gt[e] = gm_gtrees_new(zm.nodes, zm.start, zm.group, zm.ntrees, zm.nfeature, zm.groups, gp[e], err)))
                die(name, err);
        float *out[E_COUNT];
        for (int e = 0; e < E_COUNT; e++) out[e] = malloc(n * G * sizeof(float));
        double best[E_COUNT];
        for (int e = 0; e < E_COUNT; e++) best[e] = 1e30;
        for (int pass = 0; pass < passes; pass++)
            for (int e = 0; e < E_COUNT; e++) {
                if (!has[e]) continue;
                double t0 = cpu_now();
                if (e == E_XGB) memcpy(out[e], xgb_margins(b, x, n, k), n * G * sizeof(float));
                else if (e == E_SCALAR) gm_forest_predict(scalar, x, n, k, 1, out[e]);
                else if (e == E_DEFAULT) gm_forest_predict(deflt, x, n, k, 1, out[e]);
                else {
                    for (size_t i = 0; i < n * G; i++) out[e][i] = zm.base;
                    if (gm_gtrees_margins(gt[e], x, n, k, out[e]) < 0) die(name, "out of memory");
                }
                double t = cpu_now() - t0;
                best[e] = t < best[e] ? t : best[e];
                size_t diff = 0;
                for (size_t i = 0; i < n * G; i++) diff += memcmp(&out[e][i], &want[i], sizeof(float)) != 0;
                if (diff) {
                    fprintf(stderr, "gtree_bench: %s: %s: %zu of %zu margins differ from python xgboost's\n", name,
                            e_name[e], diff, n * G);
                    failed = 1;
                }
            }
        printf("| %s | %u | %u | %u | %.0f k |", name, zm.ntrees, zm.start[zm.ntrees], zm.depth, n / best[E_XGB] / 1e3);
        for (int e = 1; e < E_COUNT; e++)
            if (has[e]) printf(" %.2f× |", best[E_XGB] / best[e]);
        size_t bytes = 0;
        for (int e = E_PORTABLE; e < E_COUNT; e++)
            if (gt[e]) bytes = gm_gtrees_bytes(gt[e]);
        printf(" %.2f MiB (%.1f) |\n", (double)bytes / (1 << 20), (double)bytes / zm.start[zm.ntrees]);
        fflush(stdout);
        if (!strcmp(gm_forest_walk(deflt), "avx512")) fprintf(stderr, "gtree_bench: %s: forest default is gm_ctree's AVX-512 walk\n", name);
        for (int e = 0; e < E_COUNT; e++) {
            free(out[e]);
            gm_gtrees_destroy(&gt[e]);
        }
        gm_forest_destroy(&scalar);
        gm_forest_destroy(&deflt);
        XGBoosterFree(b);
        free(zm.nodes);
        free(zm.start);
        free(zm.group);
        free(json);
        free(x);
        free(want);
    }
    fclose(tsv);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("\npeak RSS of the benchmark process %.0f MiB; every output the same bits as python xgboost's: %s\n",
           ru.ru_maxrss / 1024.0, failed ? "NO" : "yes");
    return failed;
}
