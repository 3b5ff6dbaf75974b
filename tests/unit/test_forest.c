/* test_forest.c -- gridmill's own tree evaluator (gm_forest.h, with gm_ctree.h's AVX-512 walk where the CPU
 * has it) against XGBoost's C API as the oracle: models trained here by XGBoost on random data with missing
 * values, every prediction and every margin compared bit for bit with XGBoosterPredictFromDMatrix on rows that
 * include NaN, huge values and values equal to split thresholds. Each case runs twice: with the default walk and
 * with GRIDMILL_EVALUATOR=scalar, so both walks are held to XGBoost (under valgrind, which hides AVX-512 from
 * the program, both runs take the scalar walk).
 *
 * Cases span what the fast walk treats differently: depths 1 to 8 (above 6 the scalar walk takes the model),
 * 1 to 20 features (above 16 likewise; 1, 2, 3, 5, 8 and 16 exercise each register layout), 1 to 12 classes,
 * 1 to 30 rounds, and row counts that leave 16-row and 32-row groups partly filled; and every objective the
 * evaluator takes, each with a base_score of its own, on enough rows that the objectives' transforms see
 * thousands of distinct margins (an exponential off by one ulp for 1 margin in 2000 shows), and margins below
 * the sigmoid's clamp at -88.7. */
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

#include "gm_forest.h"
#include "gm_gtree.h"
#include "gm_log.h"

typedef struct {
    const char *objective;
    uint32_t classes; /* num_class for multi:*, else 1 */
    uint32_t features, depth, rounds;
    size_t rows; /* rows predicted */
} case_t;

/* A deterministic generator for the data (xorshift). */
static uint32_t rng_state = 12345;
static uint32_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}
static float unit(void) { return (float)(rnd() % 1000000) / 1000000.0f; }

/* Whether the objective takes only positive labels (log-link objectives, and the squared log error). */
static int positive_target(const char *objective) {
    static const char *positive[] = {"reg:squaredlogerror", "count:poisson", "reg:gamma", "reg:tweedie",
                                     "survival:cox", "survival:aft"};
    for (size_t i = 0; i < sizeof positive / sizeof *positive; i++)
        if (!strcmp(objective, positive[i])) return 1;
    return 0;
}

/* Training data: features in different ranges, 10 % missing, labels from a noisy rule. */
static void make_training(const case_t *c, size_t n, float *x, float *y) {
    for (size_t i = 0; i < n; i++) {
        float s = 0;
        for (uint32_t k = 0; k < c->features; k++) {
            float v = unit() * (float)(10 * (k + 1)) - 5.0f;
            x[i * c->features + k] = rnd() % 10 == 0 ? NAN : v;
            /* one feature dominates, a different one per depth, so that high feature indices get splits */
            float weight = k == (c->depth * 3) % c->features ? 5.0f : 1.0f / (float)(k + 1);
            if (v == v) s += v * (k % 2 ? -1.0f : 1.0f) * weight;
        }
        float noisy = s + unit() * 4.0f;
        if (c->classes > 1) y[i] = (float)((uint32_t)fabsf(noisy) % c->classes);
        else if (!strncmp(c->objective, "binary:", 7)) y[i] = noisy > 1.0f;
        else if (!strcmp(c->objective, "reg:logistic")) y[i] = 1.0f / (1.0f + expf(-noisy / 10.0f));
        else if (positive_target(c->objective)) y[i] = 1.0f + fabsf(noisy) / 10.0f;
        else y[i] = noisy;
        /* survival:cox: a negative label is a censored time */
        if (!strcmp(c->objective, "survival:cox") && rnd() % 5 == 0) y[i] = -y[i];
    }
}

/* The split thresholds of a model, from its JSON's "split_conditions" arrays (at most 'cap'). */
static size_t thresholds(const char *json, size_t len, float *out, size_t cap) {
    size_t n = 0;
    const char *p = json, *end = json + len, *key = "\"split_conditions\":[";
    while (n < cap && (p = memmem(p, (size_t)(end - p), key, strlen(key)))) {
        p += strlen(key);
        while (n < cap && p < end && *p != ']') {
            char *next;
            out[n++] = strtof(p, &next);
            p = next;
            while (p < end && (*p == ',' || *p == ' ')) p++;
        }
    }
    return n;
}

/* Rows to predict: fresh values, NaN, huge values, values copied from training rows, and the model's own split
 * thresholds, where "value < threshold" decides which way a row goes. */
static void make_rows(const case_t *c, const float *train, size_t ntrain, const float *thr, size_t nthr, float *x) {
    for (size_t i = 0; i < c->rows; i++)
        for (uint32_t k = 0; k < c->features; k++) {
            float *v = &x[i * c->features + k];
            uint32_t r = rnd() % 100;
            int nan_row = (i / 16) % 4 == 1 || i == 100; /* NaN only in every 4th group of 16 rows, and row 100 */
            if (nan_row && r < 20) *v = NAN;
            else if (r < 3) *v = r == 0 ? 3e38f : -3e38f; /* XGBoost refuses infinities */
            else if (r < 30) *v = train[(rnd() % ntrain) * c->features + k];
            else if (r < 60 && nthr) *v = thr[rnd() % nthr];
            else *v = unit() * (float)(12 * (k + 1)) - 6.0f;
            if (*v != *v && !nan_row) *v = 0.5f; /* most 16-row groups have no NaN: the fast walk takes them */
        }
}

#define XGB_OK(call)                                                                                     \
    do {                                                                                                 \
        if ((call) != 0) fail_msg("%s: %s", #call, XGBGetLastError());                                  \
    } while (0)

/* Trains the case's model with XGBoost, from 'base_score' when not NULL, then sets base_score to 'base_after'
 * when not NULL (the trees stay, the margins shift); returns the booster and its JSON bytes in *json. */
static BoosterHandle train(const case_t *c, const float *x, const float *y, size_t n, const char *base_score,
                           const char *base_after, char **json, size_t *len) {
    DMatrixHandle dm;
    BoosterHandle b;
    char v[32];
    XGB_OK(XGDMatrixCreateFromMat(x, (bst_ulong)n, (bst_ulong)c->features, NAN, &dm));
    XGB_OK(XGDMatrixSetFloatInfo(dm, "label", y, (bst_ulong)n));
    if (!strcmp(c->objective, "survival:aft")) { /* intervals: exact times, a third right-censored */
        float *upper = malloc(n * sizeof *upper);
        for (size_t i = 0; i < n; i++) upper[i] = i % 3 ? y[i] : INFINITY;
        XGB_OK(XGDMatrixSetFloatInfo(dm, "label_lower_bound", y, (bst_ulong)n));
        XGB_OK(XGDMatrixSetFloatInfo(dm, "label_upper_bound", upper, (bst_ulong)n));
        free(upper);
    }
    XGB_OK(XGBoosterCreate(&dm, 1, &b));
    XGB_OK(XGBoosterSetParam(b, "nthread", "1"));
    XGB_OK(XGBoosterSetParam(b, "objective", c->objective));
    if (c->classes > 1) {
        snprintf(v, sizeof v, "%u", c->classes);
        XGB_OK(XGBoosterSetParam(b, "num_class", v));
    }
    snprintf(v, sizeof v, "%u", c->depth);
    XGB_OK(XGBoosterSetParam(b, "max_depth", v));
    XGB_OK(XGBoosterSetParam(b, "eta", "0.7"));
    XGB_OK(XGBoosterSetParam(b, "min_child_weight", "0"));
    if (base_score) XGB_OK(XGBoosterSetParam(b, "base_score", base_score));
    for (uint32_t r = 0; r < c->rounds; r++) XGB_OK(XGBoosterUpdateOneIter(b, (int)r, dm));
    if (base_after) XGB_OK(XGBoosterSetParam(b, "base_score", base_after));
    bst_ulong blen;
    const char *buf;
    XGB_OK(XGBoosterSaveModelToBuffer(b, "{\"format\": \"json\"}", &blen, &buf));
    *json = malloc(blen);
    memcpy(*json, buf, blen);
    *len = blen;
    XGB_OK(XGDMatrixFree(dm));
    return b;
}

/* XGBoost's predictions (type 0) or margins (type 1) of the rows. */
static const float *xgb_predict(BoosterHandle b, const float *x, const case_t *c, int margin, bst_ulong *count) {
    DMatrixHandle dm;
    const bst_ulong *shape;
    bst_ulong dim;
    const float *out;
    char cfg[160];
    snprintf(cfg, sizeof cfg, "{\"type\": %d, \"training\": false, \"iteration_begin\": 0, \"iteration_end\": 0, "
             "\"strict_shape\": false}", margin);
    XGB_OK(XGDMatrixCreateFromMat(x, (bst_ulong)c->rows, (bst_ulong)c->features, NAN, &dm));
    XGB_OK(XGBoosterPredictFromDMatrix(b, dm, cfg, &shape, &dim, &out));
    *count = 1;
    for (bst_ulong i = 0; i < dim; i++) *count *= shape[i];
    XGB_OK(XGDMatrixFree(dm)); /* the booster keeps 'out' */
    return out;
}

/* Compares the forest's output for the rows with XGBoost's, bit for bit. */
static void compare(const case_t *c, BoosterHandle b, const char *json, size_t len, const float *x, const char *walk) {
    char err[GM_ERR_LEN];
    if (walk) setenv("GRIDMILL_EVALUATOR", walk, 1);
    gm_forest_t *f = gm_forest_from_json(json, len, err);
    unsetenv("GRIDMILL_EVALUATOR");
    if (!f) fail_msg("%s depth %u: gm_forest refused the model: %s", c->objective, c->depth, err);
    /* the default walk is the fastest this CPU runs (gm_gtree_path_best); a forced one is that one */
    if (walk) assert_string_equal(gm_forest_walk(f), walk);
    else assert_string_equal(gm_forest_walk(f), gm_gtree_path_name(gm_gtree_path_best(NULL)));
    for (int margin = 0; margin <= 1; margin++) {
        bst_ulong count;
        const float *want = xgb_predict(b, x, c, margin, &count);
        uint32_t per = gm_forest_outputs(f, margin);
        assert_int_equal(count, c->rows * per);
        float *got = malloc(count * sizeof *got);
        gm_forest_predict(f, x, c->rows, c->features, margin, got);
        for (size_t i = 0; i < count; i++)
            if (memcmp(&got[i], &want[i], sizeof(float)) != 0)
                fail_msg("%s, %u classes, %u features, depth %u, %u rounds, %s walk, %s: row %zu value %zu: "
                         "gridmill %.9g, XGBoost %.9g", c->objective, c->classes, c->features, c->depth, c->rounds,
                         walk ? walk : "default", margin ? "margins" : "predictions", i / per, i % per, got[i], want[i]);
        free(got);
    }
    gm_forest_destroy(&f);
}

/* Trains the case's model (base_score and base_after as train takes them) and compares both walks with XGBoost. */
static void run_case_from(const case_t *c, const char *base_score, const char *base_after) {
    size_t ntrain = 600;
    float *tx = malloc(ntrain * c->features * sizeof *tx), *ty = malloc(ntrain * sizeof *ty);
    float *x = malloc(c->rows * c->features * sizeof *x);
    make_training(c, ntrain, tx, ty);
    char *json;
    size_t len;
    BoosterHandle b = train(c, tx, ty, ntrain, base_score, base_after, &json, &len);
    float thr[4096];
    make_rows(c, tx, ntrain, thr, thresholds(json, len, thr, 4096), x);
    compare(c, b, json, len, x, NULL);
    compare(c, b, json, len, x, "scalar");
    compare(c, b, json, len, x, "portable");
    char why[GM_ERR_LEN];
    if (gm_gtree_path_check(GM_GTREE_AVX2, why) == 0) compare(c, b, json, len, x, "avx2");
    if (gm_gtree_path_check(GM_GTREE_AVX512, why) == 0) compare(c, b, json, len, x, "avx512");
    XGB_OK(XGBoosterFree(b));
    free(json);
    free(tx);
    free(ty);
    free(x);
}

static void run_case(const case_t *c) { run_case_from(c, NULL, NULL); }

/* Multi-class softprob, as gridmill's runs train: every register layout of the features, depths around the
 * fast walk's limit of 6. */
static void test_softprob(void **state) {
    (void)state;
    const uint32_t features[] = {1, 2, 3, 5, 8, 16, 20}, depths[] = {1, 3, 5, 6, 7};
    for (size_t f = 0; f < sizeof features / sizeof *features; f++)
        for (size_t d = 0; d < sizeof depths / sizeof *depths; d++) {
            case_t c = {"multi:softprob", 4, features[f], depths[d], 2, 16 * 7 + 5};
            run_case(&c);
        }
    case_t twelve = {"multi:softprob", 12, 8, 6, 1, 333};
    run_case(&twelve);
}

/* Regression, binary and softmax objectives, deep and long models, row counts around the group sizes. */
static void test_other_objectives(void **state) {
    (void)state;
    const case_t cases[] = {
        {"reg:squarederror", 1, 8, 6, 30, 31},  {"reg:squarederror", 1, 4, 8, 5, 64},
        {"binary:logistic", 1, 8, 4, 10, 33},   {"multi:softmax", 3, 6, 6, 3, 1},
        {"reg:squarederror", 1, 16, 2, 12, 200}, {"multi:softprob", 2, 3, 6, 8, 17},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) run_case(&cases[i]);
}

/* Every objective the evaluator takes, from a base_score other than the default 0.5 (whose logit is 0, so
 * that a rule confusing base_score with its margin would show), on 6000 rows through deep trees: each one's
 * starting margin and transform held to XGBoost's, bit for bit. */
static void test_every_objective(void **state) {
    (void)state;
    static const struct { const char *objective, *base_score; } objectives[] = {
        {"binary:logitraw", "0.3"},       {"binary:hinge", "0.3"},          {"binary:logistic", "0.3"},
        {"reg:logistic", "0.3"},          {"reg:squarederror", "0.7"},      {"reg:absoluteerror", "0.7"},
        {"reg:pseudohubererror", "0.7"},  {"reg:squaredlogerror", "0.7"},   {"count:poisson", "0.7"},
        {"reg:gamma", "0.7"},             {"reg:tweedie", "0.7"},           {"survival:cox", "0.7"},
        {"survival:aft", "0.7"},
    };
    for (size_t i = 0; i < sizeof objectives / sizeof *objectives; i++) {
        case_t c = {objectives[i].objective, 1, 5, 6, 20, 6000};
        run_case_from(&c, objectives[i].base_score, NULL);
    }
    /* margins near -logit(2e-38) = -87.5, many below -88.7, where XGBoost's sigmoid clamps the exponent */
    const char *logistic[] = {"binary:logistic", "reg:logistic"};
    for (size_t i = 0; i < 2; i++) {
        case_t c = {logistic[i], 1, 3, 4, 10, 500};
        run_case_from(&c, NULL, "2e-38");
    }
}

int main(void) {
    gm_log_init("test_forest", GM_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_softprob),
        cmocka_unit_test(test_other_objectives),
        cmocka_unit_test(test_every_objective),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
