/* evaluator.c -- gridmill's tree evaluator against XGBoost's own predictor on one core: the same model,
 * the same rows, predictions compared bit for bit, rows per second of each.
 *
 * Usage: evaluator MODEL.json NFEATURES [ROWS] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gm_log.h"
#include "gm_model.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* Times 'reps' predictions of 'rows' rows; copies the last result into 'keep'. Returns seconds per pass. */
static double time_predict(gm_model_t *m, const float *x, size_t rows, uint32_t k, int margin, float **keep,
                           size_t *per_row) {
    char err[GM_ERR_LEN];
    const float *out;
    double best = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = now();
        if (gm_model_predict(m, x, rows, k, margin, &out, per_row, err) < 0) {
            fprintf(stderr, "evaluator: %s\n", err);
            exit(1);
        }
        double t = now() - t0;
        best = t < best ? t : best;
    }
    *keep = malloc(rows * *per_row * sizeof(float));
    memcpy(*keep, out, rows * *per_row * sizeof(float));
    return best;
}

int main(int argc, char **argv) {
    char err[GM_ERR_LEN];
    if (argc < 3) {
        fprintf(stderr, "usage: evaluator MODEL.json NFEATURES [ROWS]\n");
        return 2;
    }
    uint32_t k = (uint32_t)atoi(argv[2]);
    size_t rows = argc > 3 ? (size_t)atol(argv[3]) : 200000;
    void *bytes;
    size_t len;
    if (gm_model_read_file(argv[1], &bytes, &len, err) < 0) {
        fprintf(stderr, "evaluator: %s\n", err);
        return 1;
    }
    setenv("GRIDMILL_EVALUATOR", "xgboost", 1);
    gm_model_t *ref = gm_model_load(bytes, len, 1, argv[1], err);
    unsetenv("GRIDMILL_EVALUATOR");
    gm_model_t *own = ref ? gm_model_load(bytes, len, 1, argv[1], err) : NULL;
    if (!own) {
        fprintf(stderr, "evaluator: %s\n", err);
        return 1;
    }
    if (strcmp(gm_model_evaluator(own), "gridmill") != 0) {
        fprintf(stderr, "evaluator: gridmill's evaluator does not take this model: %s\n", gm_model_evaluator(own));
        return 1;
    }
    /* rows spread like covariates: each feature a different smooth range */
    float *x = malloc(rows * k * sizeof(float));
    srand(7);
    for (size_t i = 0; i < rows * k; i++) x[i] = (float)(rand() / (double)RAND_MAX * 100.0 * (1 + i % k));
    for (int margin = 0; margin <= 1; margin++) {
        float *a, *b;
        size_t pa, pb;
        double ta = time_predict(ref, x, rows, k, margin, &a, &pa);
        double tb = time_predict(own, x, rows, k, margin, &b, &pb);
        size_t diff = 0;
        for (size_t i = 0; pa == pb && i < rows * pa; i++) diff += memcmp(&a[i], &b[i], sizeof(float)) != 0;
        printf("%-12s XGBoost %9.0f rows/s   gridmill %9.0f rows/s   speed-up %.2fx   %zu of %zu values differ\n",
               margin ? "margins" : "predictions", rows / ta, rows / tb, ta / tb, pa == pb ? diff : rows * pa, rows * pa);
        free(a);
        free(b);
        if (diff) return 1;
    }
    gm_model_destroy(&ref);
    gm_model_destroy(&own);
    free(x);
    free(bytes);
    return 0;
}
