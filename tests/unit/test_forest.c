/* test_forest.c -- gridmill's own tree evaluator (gm_forest.h, with gm_ctree.h's AVX-512 walk where the CPU
 * has it) against XGBoost's C API as the oracle: models trained here by XGBoost on random data with missing
 * values, every prediction and every margin compared bit for bit with XGBoosterPredictFromDMatrix on rows that
 * include NaN, huge values and values equal to split thresholds. Each case runs twice: with the default walk and
 * with GRIDMILL_EVALUATOR=scalar, so both walks are held to XGBoost (under valgrind, which hides AVX-512 from
 * the program, both runs take the scalar walk).
 *
 * Cases span what the fast walk treats differently: depths 1 to 8 (above 6 the scalar walk takes the model),
 * 1 to 20 features (above 16 likewise; 1, 2, 3, 5, 8 and 16 exercise each register layout), 1 to 12 classes,
 * 1 to 30 rounds, and row counts that leave 16-row and 32-row groups partly filled. */
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
        else if (!strcmp(c->objective, "binary:logistic")) y[i] = noisy > 1.0f;
        else y[i] = noisy;
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

/* Trains the case's model with XGBoost; returns the booster and its JSON bytes in *json. */
static BoosterHandle train(const case_t *c, const float *x, const float *y, size_t n, char **json, size_t *len) {
    DMatrixHandle dm;
    BoosterHandle b;
    char v[32];
    XGB_OK(XGDMatrixCreateFromMat(x, (bst_ulong)n, (bst_ulong)c->features, NAN, &dm));
    XGB_OK(XGDMatrixSetFloatInfo(dm, "label", y, (bst_ulong)n));
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
    for (uint32_t r = 0; r < c->rounds; r++) XGB_OK(XGBoosterUpdateOneIter(b, (int)r, dm));
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
    /* the default walk is the AVX-512 one wherever it can be: this CPU has AVX-512F, and the model fits */
    __builtin_cpu_init();
    int fits = c->depth <= 6 && c->features <= 16 && __builtin_cpu_supports("avx512f");
    assert_string_equal(gm_forest_walk(f), walk || !fits ? "scalar" : "avx512");
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

static void run_case(const case_t *c) {
    size_t ntrain = 600;
    float *tx = malloc(ntrain * c->features * sizeof *tx), *ty = malloc(ntrain * sizeof *ty);
    float *x = malloc(c->rows * c->features * sizeof *x);
    make_training(c, ntrain, tx, ty);
    char *json;
    size_t len;
    BoosterHandle b = train(c, tx, ty, ntrain, &json, &len);
    float thr[4096];
    make_rows(c, tx, ntrain, thr, thresholds(json, len, thr, 4096), x);
    compare(c, b, json, len, x, NULL);
    compare(c, b, json, len, x, "scalar");
    XGB_OK(XGBoosterFree(b));
    free(json);
    free(tx);
    free(ty);
    free(x);
}

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

int main(void) {
    gm_log_init("test_forest", GM_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_softprob),
        cmocka_unit_test(test_other_objectives),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
