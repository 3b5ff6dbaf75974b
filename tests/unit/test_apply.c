/* test_apply.c -- the full job's per-block summaries (gm_apply.h, mode summarise) against XGBoost's C API as
 * the oracle: multi:softprob models trained here by XGBoost, whose leaf values are then replaced by values
 * a few units in the last place apart, so that classes' margins tie or nearly tie, and which way a near tie
 * goes is settled only by the probabilities XGBoost computes. Each pixel's class per model is the first
 * largest of XGBoost's probabilities; the votes, shares, most probable class, entropy, confusion, n most
 * probable classes and realisations are worked out from those classes here, and every output band of every
 * pixel is compared bit for bit, nodata pixels (a NaN in any band) included.
 *
 * Cases span what the applier treats differently: 3, 12 and 16 classes (one AVX-512 register of margins)
 * and 20 (more than one register: the scalar pick), a block of more than one 16384-pixel chunk, a block
 * without nodata, one with nodata only. Each case runs twice: with the default pick and with
 * GRIDMILL_EVALUATOR=scalar (under valgrind, which hides AVX-512 from the program, both take the scalar pick).
 *
 * And one model's prediction (mode predict) of the binary objectives, class and probabilities, against XGBoost's
 * values for margins at and just off 0 (and p at 0.5), under every GRIDMILL_EVALUATOR. */
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

#include "gm_apply.h"
#include "gm_job.h"
#include "gm_log.h"

#define NFEATURE 4
#define NMODEL 7

typedef struct {
    uint32_t classes;
    uint32_t w, h;
    uint32_t nodata_percent; /* share of pixels with a NaN band: 0 (none), 100 (all) or between */
} case_t;

/* A deterministic generator for the data (xorshift). */
static uint32_t rng_state = 2463534242u;
static uint32_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}
static float unit(void) { return (float)(rnd() % 1000000) / 1000000.0f; }

#define XGB_OK(call)                                                                                     \
    do {                                                                                                 \
        if ((call) != 0) fail_msg("%s: %s", #call, XGBGetLastError());                                  \
    } while (0)

/* Trains one multi:softprob model of depth 3 (one round) on random data; returns its JSON in *json. */
static void train(uint32_t classes, char **json, size_t *len) {
    enum { N = 400 };
    static float x[N * NFEATURE], y[N];
    for (size_t i = 0; i < N; i++) {
        for (uint32_t k = 0; k < NFEATURE; k++) x[i * NFEATURE + k] = unit() * 10.0f;
        y[i] = (float)(((uint32_t)(x[i * NFEATURE] + x[i * NFEATURE + 1]) + rnd() % 3) % classes);
    }
    DMatrixHandle dm;
    BoosterHandle b;
    char v[32];
    bst_ulong blen;
    const char *buf;
    XGB_OK(XGDMatrixCreateFromMat(x, N, NFEATURE, NAN, &dm));
    XGB_OK(XGDMatrixSetFloatInfo(dm, "label", y, N));
    XGB_OK(XGBoosterCreate(&dm, 1, &b));
    XGB_OK(XGBoosterSetParam(b, "nthread", "1"));
    XGB_OK(XGBoosterSetParam(b, "objective", "multi:softprob"));
    snprintf(v, sizeof v, "%u", classes);
    XGB_OK(XGBoosterSetParam(b, "num_class", v));
    XGB_OK(XGBoosterSetParam(b, "max_depth", "3"));
    XGB_OK(XGBoosterSetParam(b, "min_child_weight", "0"));
    XGB_OK(XGBoosterUpdateOneIter(b, 0, dm));
    XGB_OK(XGBoosterSaveModelToBuffer(b, "{\"format\": \"json\"}", &blen, &buf));
    *json = malloc(blen);
    memcpy(*json, buf, blen);
    *len = blen;
    XGB_OK(XGBoosterFree(b));
    XGB_OK(XGDMatrixFree(dm));
}

/* Replaces every leaf value ("split_conditions" of the nodes whose "left_children" is -1) of the JSON model
 * with one of a few values at most a few ulp apart, or clearly apart. Returns the new JSON (malloc'd). */
static char *near_tie_leaves(const char *json, size_t len, size_t *out_len) {
    static const float pool[] = {0.25f, 0.25000003f, 0.25000006f, 0.25000012f, 0.2499999f, 0.2500025f, 0.2f, 0.3f};
    char *out = malloc(2 * len + 1), *o = out;
    const char *p = json, *end = json + len, *lc_key = "\"left_children\":[", *sc_key = "\"split_conditions\":[";
    int32_t left[1024];
    const char *lc;
    while ((lc = memmem(p, (size_t)(end - p), lc_key, strlen(lc_key)))) {
        size_t n = 0;
        const char *q = lc + strlen(lc_key);
        while (*q != ']') {
            char *next;
            assert_true(n < 1024);
            left[n++] = (int32_t)strtol(q, &next, 10);
            q = next + (*next == ',');
        }
        const char *sc = memmem(q, (size_t)(end - q), sc_key, strlen(sc_key));
        assert_non_null(sc);
        sc += strlen(sc_key);
        memcpy(o, p, (size_t)(sc - p));
        o += sc - p;
        for (size_t i = 0; *sc != ']'; i++) {
            char *next;
            strtod(sc, &next);
            assert_true(i < n);
            if (left[i] == -1) o += sprintf(o, "%.9g", (double)pool[rnd() % (sizeof pool / sizeof *pool)]);
            else o += sprintf(o, "%.*s", (int)(next - sc), sc);
            if (*next == ',') *o++ = *next++;
            sc = next;
        }
        p = sc;
    }
    memcpy(o, p, (size_t)(end - p));
    o += end - p;
    *out_len = (size_t)(o - out);
    return out;
}

/* Each pixel's class by model 'json' (-1 for nodata): the first largest of XGBoost's probabilities. */
static void xgb_classes(const char *json, size_t len, const float *rows, const uint8_t *nodata, size_t npix,
                        uint32_t classes, int32_t *cls) {
    BoosterHandle b;
    DMatrixHandle dm;
    const bst_ulong *shape;
    bst_ulong dim;
    const float *prob;
    XGB_OK(XGBoosterCreate(NULL, 0, &b));
    XGB_OK(XGBoosterLoadModelFromBuffer(b, json, (bst_ulong)len));
    XGB_OK(XGDMatrixCreateFromMat(rows, (bst_ulong)npix, NFEATURE, NAN, &dm));
    XGB_OK(XGBoosterPredictFromDMatrix(b, dm, "{\"type\": 0, \"training\": false, \"iteration_begin\": 0, "
                                       "\"iteration_end\": 0, \"strict_shape\": false}", &shape, &dim, &prob));
    assert_int_equal(dim, 2);
    assert_int_equal(shape[0] * shape[1], npix * classes);
    for (size_t p = 0; p < npix; p++) {
        const float *r = prob + p * classes;
        uint32_t best = 0;
        for (uint32_t k = 1; k < classes; k++)
            if (r[k] > r[best]) best = k;
        cls[p] = nodata[p] ? -1 : (int32_t)best;
    }
    XGB_OK(XGDMatrixFree(dm));
    XGB_OK(XGBoosterFree(b));
}

/* The job: NMODEL models (the job owns their bytes), summarised with the 3 most probable classes and every
 * realisation. */
static void make_job(gm_job_t *job, uint32_t classes, char **json, const size_t *len) {
    char err[GM_ERR_LEN];
    memset(job, 0, sizeof *job);
    job->mode = GM_MODE_SUMMARISE;
    job->kind = GM_KIND_CLASSIFICATION;
    snprintf(job->objective, sizeof job->objective, "multi:softprob");
    job->nclass = classes;
    job->nbands = NFEATURE;
    job->nprob = 3;
    job->realisations = 1;
    job->nmodels = NMODEL;
    job->models = calloc(NMODEL, sizeof *job->models);
    for (uint32_t m = 0; m < NMODEL; m++) {
        snprintf(job->models[m].format, sizeof job->models[m].format, "json");
        job->models[m].bytes = json[m];
        job->models[m].size = len[m];
    }
    if (gm_job_plan_outputs(job, err) < 0) fail_msg("plan: %s", err);
}

/* The value output 'o' should hold at band 'band' of pixel 'p', given every model's class of every pixel. */
static double expected(const gm_output_t *o, uint32_t band, size_t p, uint32_t classes, int32_t *const *cls) {
    if (cls[0][p] < 0) return o->nodata;
    uint32_t votes[32] = {0}, rank[32];
    for (uint32_t m = 0; m < NMODEL; m++) votes[cls[m][p]]++;
    /* classes by votes, most first, the lower code first on ties (an insertion sort, stable) */
    for (uint32_t k = 0; k < classes; k++) {
        uint32_t j = k;
        for (; j > 0 && votes[rank[j - 1]] < votes[k]; j--) rank[j] = rank[j - 1];
        rank[j] = k;
    }
    double n = NMODEL, entropy = 0;
    for (uint32_t k = 0; k < classes; k++)
        if (votes[k]) entropy -= votes[k] / n * log2(votes[k] / n);
    switch (o->role) {
    case GM_ROLE_PROBABILITY: return (float)(votes[band] / n);
    case GM_ROLE_CLASS: return rank[0];
    case GM_ROLE_ENTROPY: return (float)(entropy == 0 ? 0.0 : entropy);
    case GM_ROLE_CONFUSION: return (float)(1.0 - ((double)votes[rank[0]] - votes[rank[1]]) / n);
    case GM_ROLE_NPROB_CLASS: return rank[band];
    case GM_ROLE_NPROB_PROB: return (float)(votes[rank[band]] / n);
    case GM_ROLE_REALISATION: return cls[o->model][p];
    default: fail_msg("output role %d not expected", (int)o->role);
    }
    return 0;
}

/* Applies the job to the block and compares every band of every output with 'expected'. */
static void compare(const case_t *c, const gm_job_t *job, const float *planes, int32_t *const *cls,
                    const char *pick) {
    char err[GM_ERR_LEN];
    size_t npix = (size_t)c->w * c->h;
    if (pick) setenv("GRIDMILL_EVALUATOR", pick, 1);
    gm_applier_t *a = gm_applier_new(job, 1, err);
    unsetenv("GRIDMILL_EVALUATOR");
    if (!a) fail_msg("gm_applier_new: %s", err);
    void *outs[64];
    assert_true(job->noutputs <= 64);
    for (uint32_t o = 0; o < job->noutputs; o++) {
        size_t bytes = gm_job_output_bytes(&job->outputs[o], c->w, c->h);
        outs[o] = malloc(bytes);
        memset(outs[o], 0xA5, bytes); /* what the applier leaves unwritten shows */
    }
    if (gm_applier_run(a, planes, c->w, c->h, outs, err) < 0) fail_msg("gm_applier_run: %s", err);
    for (uint32_t o = 0; o < job->noutputs; o++) {
        const gm_output_t *out = &job->outputs[o];
        for (uint32_t band = 0; band < out->bands; band++)
            for (size_t p = 0; p < npix; p++) {
                double want = expected(out, band, p, c->classes, cls), got;
                size_t i = (size_t)band * npix + p;
                if (out->dtype == GM_DT_U8) got = ((uint8_t *)outs[o])[i];
                else if (out->dtype == GM_DT_U16) got = ((uint16_t *)outs[o])[i];
                else {
                    float g = ((float *)outs[o])[i], wf = (float)want;
                    if (memcmp(&g, &wf, sizeof g) != 0)
                        fail_msg("%u classes, %s pick: %s band %u pixel %zu: gridmill %.9g, expected %.9g", c->classes,
                                 pick ? pick : "default", out->name, band + 1, p, g, wf);
                    continue;
                }
                if (got != want)
                    fail_msg("%u classes, %s pick: %s band %u pixel %zu: gridmill %g, expected %g", c->classes,
                             pick ? pick : "default", out->name, band + 1, p, got, want);
            }
        free(outs[o]);
    }
    gm_applier_destroy(&a);
    assert_null(a);
}

static void run_case(const case_t *c) {
    size_t npix = (size_t)c->w * c->h;
    char *json[NMODEL];
    size_t len[NMODEL];
    int32_t *cls[NMODEL];
    float *planes = malloc(npix * NFEATURE * sizeof *planes), *rows = malloc(npix * NFEATURE * sizeof *rows);
    uint8_t *nodata = calloc(npix, 1);
    for (size_t p = 0; p < npix; p++) {
        nodata[p] = rnd() % 100 < c->nodata_percent;
        uint32_t nan_band = rnd() % NFEATURE;
        for (uint32_t k = 0; k < NFEATURE; k++) {
            float v = nodata[p] && k == nan_band ? NAN : unit() * 10.0f;
            planes[(size_t)k * npix + p] = rows[p * NFEATURE + k] = v;
        }
    }
    for (uint32_t m = 0; m < NMODEL; m++) {
        char *trained;
        size_t tlen;
        train(c->classes, &trained, &tlen);
        json[m] = near_tie_leaves(trained, tlen, &len[m]);
        free(trained);
        cls[m] = malloc(npix * sizeof *cls[m]);
        xgb_classes(json[m], len[m], rows, nodata, npix, c->classes, cls[m]);
    }
    gm_job_t job;
    make_job(&job, c->classes, json, len);
    compare(c, &job, planes, cls, NULL);
    compare(c, &job, planes, cls, "scalar");
    gm_job_clear(&job); /* frees the models' JSON */
    for (uint32_t m = 0; m < NMODEL; m++) free(cls[m]);
    free(planes);
    free(rows);
    free(nodata);
}

/* Class counts on either side of one AVX-512 register of margins, with nodata here and there. */
static void test_classes(void **state) {
    (void)state;
    const case_t cases[] = {{3, 61, 37, 10}, {12, 64, 50, 15}, {16, 33, 29, 5}, {20, 40, 30, 10}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) run_case(&cases[i]);
}

/* A block larger than one chunk of summaries, a block without nodata and one with nothing else. */
static void test_blocks(void **state) {
    (void)state;
    const case_t cases[] = {{12, 150, 120, 3}, {12, 32, 16, 0}, {5, 20, 10, 100}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) run_case(&cases[i]);
}

/* Trains one model of 'objective' from 'base_score' whose leaves are all 0 (eta 0): every row's margin is the
 * starting margin base_score gives. Returns its JSON in *json. */
static void train_flat(const char *objective, const char *base_score, char **json, size_t *len) {
    enum { N = 64 };
    static float x[N * NFEATURE], y[N];
    for (size_t i = 0; i < N; i++) {
        for (uint32_t k = 0; k < NFEATURE; k++) x[i * NFEATURE + k] = unit() * 10.0f;
        y[i] = (float)(i % 2);
    }
    DMatrixHandle dm;
    BoosterHandle b;
    bst_ulong blen;
    const char *buf;
    XGB_OK(XGDMatrixCreateFromMat(x, N, NFEATURE, NAN, &dm));
    XGB_OK(XGDMatrixSetFloatInfo(dm, "label", y, N));
    XGB_OK(XGBoosterCreate(&dm, 1, &b));
    XGB_OK(XGBoosterSetParam(b, "nthread", "1"));
    XGB_OK(XGBoosterSetParam(b, "objective", objective));
    XGB_OK(XGBoosterSetParam(b, "base_score", base_score));
    XGB_OK(XGBoosterSetParam(b, "eta", "0"));
    XGB_OK(XGBoosterUpdateOneIter(b, 0, dm));
    XGB_OK(XGBoosterSaveModelToBuffer(b, "{\"format\": \"json\"}", &blen, &buf));
    *json = malloc(blen);
    memcpy(*json, buf, blen);
    *len = blen;
    XGB_OK(XGBoosterFree(b));
    XGB_OK(XGDMatrixFree(dm));
}

/* XGBoost's value (type 0) or margin (type 1) of the first row of 'rows' by model 'json'. */
static float xgb_value(const char *json, size_t len, const float *rows, int type) {
    BoosterHandle b;
    DMatrixHandle dm;
    const bst_ulong *shape;
    bst_ulong dim;
    const float *out;
    char cfg[160];
    snprintf(cfg, sizeof cfg, "{\"type\": %d, \"training\": false, \"iteration_begin\": 0, \"iteration_end\": 0, "
             "\"strict_shape\": false}", type);
    XGB_OK(XGBoosterCreate(NULL, 0, &b));
    XGB_OK(XGBoosterLoadModelFromBuffer(b, json, (bst_ulong)len));
    XGB_OK(XGDMatrixCreateFromMat(rows, 1, NFEATURE, NAN, &dm));
    XGB_OK(XGBoosterPredictFromDMatrix(b, dm, cfg, &shape, &dim, &out));
    float v = out[0];
    XGB_OK(XGDMatrixFree(dm));
    XGB_OK(XGBoosterFree(b));
    return v;
}

/* binary:logitraw's class is margin > 0 even where the sigmoid of the margin rounds to 0.5; binary:logistic's
 * p > 0.5; binary:hinge's its 0 or 1. Probabilities: p1 within 1e-6 of XGBoost's p (logitraw: the sigmoid of
 * its margin, in double), p0 = 1 - p1. One block of 5 x 3 pixels, one of them nodata. */
static void test_binary_predict(void **state) {
    (void)state;
    static const struct { const char *objective, *base_score; } cases[] = {
        {"binary:logitraw", "5e-8"}, {"binary:logitraw", "0"},   {"binary:logitraw", "-5e-8"},
        {"binary:logitraw", "2.5"},  {"binary:logistic", "0.5"}, {"binary:logistic", "0.50000006"},
        {"binary:hinge", "1e-7"},    {"binary:hinge", "0"},
    };
    static const char *picks[] = {NULL, "scalar", "xgboost"};
    enum { W = 5, H = 3, NPIX = W * H };
    float planes[NFEATURE * NPIX], row[NFEATURE];
    for (size_t i = 0; i < NFEATURE * NPIX; i++) planes[i] = unit() * 10.0f;
    planes[2 * NPIX + 7] = NAN; /* pixel 7 is nodata */
    for (uint32_t k = 0; k < NFEATURE; k++) row[k] = planes[(size_t)k * NPIX];
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        char err[GM_ERR_LEN], *json;
        size_t len;
        train_flat(cases[c].objective, cases[c].base_score, &json, &len);
        int logitraw = !strcmp(cases[c].objective, "binary:logitraw");
        float value = xgb_value(json, len, row, 0), margin = xgb_value(json, len, row, 1);
        uint8_t want_class = logitraw ? margin > 0.0f : value > 0.5f;
        double want_p = logitraw ? 1.0 / (1.0 + exp(-(double)margin)) : value;
        gm_job_t job;
        memset(&job, 0, sizeof job);
        job.mode = GM_MODE_PREDICT;
        job.kind = GM_KIND_CLASSIFICATION;
        snprintf(job.objective, sizeof job.objective, "%s", cases[c].objective);
        job.nclass = 2;
        job.nbands = NFEATURE;
        job.probabilities = 1;
        job.nmodels = 1;
        job.models = calloc(1, sizeof *job.models);
        snprintf(job.models[0].format, sizeof job.models[0].format, "json");
        job.models[0].bytes = json;
        job.models[0].size = len;
        if (gm_job_plan_outputs(&job, err) < 0) fail_msg("plan: %s", err);
        assert_int_equal(job.noutputs, 2);
        for (size_t k = 0; k < sizeof picks / sizeof *picks; k++) {
            uint8_t cls[NPIX];
            float prob[2 * NPIX];
            void *outs[2] = {cls, prob};
            if (picks[k]) setenv("GRIDMILL_EVALUATOR", picks[k], 1);
            gm_applier_t *a = gm_applier_new(&job, 1, err);
            unsetenv("GRIDMILL_EVALUATOR");
            if (!a) fail_msg("gm_applier_new: %s", err);
            if (gm_applier_run(a, planes, W, H, outs, err) < 0) fail_msg("gm_applier_run: %s", err);
            for (size_t p = 0; p < NPIX; p++) {
                uint8_t want = p == 7 ? 255 : want_class;
                if (cls[p] != want)
                    fail_msg("%s from %s, %s evaluator: pixel %zu class %u, expected %u (XGBoost's value %.9g, "
                             "margin %.9g)", cases[c].objective, cases[c].base_score, picks[k] ? picks[k] : "default",
                             p, cls[p], want, value, margin);
                if (p == 7) continue;
                if (fabs(prob[NPIX + p] - want_p) > 1e-6 || prob[p] != 1.0f - prob[NPIX + p])
                    fail_msg("%s from %s, %s evaluator: pixel %zu p %.9g, %.9g, expected p1 %.9g", cases[c].objective,
                             cases[c].base_score, picks[k] ? picks[k] : "default", p, prob[p], prob[NPIX + p], want_p);
            }
            gm_applier_destroy(&a);
        }
        gm_job_clear(&job); /* frees the model's JSON */
    }
}

int main(void) {
    gm_log_init("test_apply", GM_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classes),
        cmocka_unit_test(test_blocks),
        cmocka_unit_test(test_binary_predict),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
