/* evaluator.c -- gridmill's tree evaluator against XGBoost's own predictor on one core: the same model,
 * the same rows, predictions compared bit for bit, rows per CPU second of each: XGBoost, gridmill's scalar
 * walk (GRIDMILL_EVALUATOR=scalar) and its default walk (AVX-512 where the CPU has it). CPU time, the best of
 * five interleaved passes, so that a loaded machine disturbs the ratios as little as it can.
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
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* One timed pass of 'rows' predictions; returns CPU seconds and the output. */
static double time_once(gm_model_t *m, const float *x, size_t rows, uint32_t k, int margin, const float **out,
                        size_t *per_row) {
    char err[GM_ERR_LEN];
    double t0 = now();
    if (gm_model_predict(m, x, rows, k, margin, out, per_row, err) < 0) {
        fprintf(stderr, "evaluator: %s\n", err);
        exit(1);
    }
    return now() - t0;
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
    gm_model_t *m[3] = {NULL, NULL, NULL}; /* XGBoost, gridmill scalar, gridmill default */
    static const char *mode[3] = {"xgboost", "scalar", NULL};
    for (int e = 0; e < 3; e++) {
        if (mode[e]) setenv("GRIDMILL_EVALUATOR", mode[e], 1);
        m[e] = gm_model_load(bytes, len, 1, argv[1], err);
        if (!m[e]) {
            fprintf(stderr, "evaluator: %s\n", err);
            return 1;
        }
        const char *used = gm_model_evaluator(m[e]); /* built now, under this choice */
        unsetenv("GRIDMILL_EVALUATOR");
        if (e > 0 && strcmp(used, "gridmill") != 0) {
            fprintf(stderr, "evaluator: gridmill's evaluator does not take this model: %s\n", gm_model_evaluator(m[e]));
            return 1;
        }
    }
    /* rows spread like covariates: each feature a different smooth range */
    float *x = malloc(rows * k * sizeof(float));
    srand(7);
    for (size_t i = 0; i < rows * k; i++) x[i] = (float)(rand() / (double)RAND_MAX * 100.0 * (1 + i % k));
    for (int margin = 0; margin <= 1; margin++) {
        double best[3] = {1e30, 1e30, 1e30};
        float *keep[3];
        size_t per[3];
        for (int rep = 0; rep < 5; rep++)
            for (int e = 0; e < 3; e++) {
                const float *out;
                double t = time_once(m[e], x, rows, k, margin, &out, &per[e]);
                best[e] = t < best[e] ? t : best[e];
                if (rep == 0) {
                    keep[e] = malloc(rows * per[e] * sizeof(float));
                    memcpy(keep[e], out, rows * per[e] * sizeof(float));
                }
            }
        size_t diff = 0;
        for (int e = 1; e < 3; e++)
            for (size_t i = 0; per[e] == per[0] && i < rows * per[0]; i++)
                diff += memcmp(&keep[0][i], &keep[e][i], sizeof(float)) != 0;
        if (per[1] != per[0] || per[2] != per[0]) diff = rows * per[0];
        printf("%-12s XGBoost %8.0f rows/cpu-s   gridmill scalar %8.0f (%.2fx)   gridmill %8.0f (%.2fx)   "
               "%zu of %zu values differ\n", margin ? "margins" : "predictions", rows / best[0], rows / best[1],
               best[0] / best[1], rows / best[2], best[0] / best[2], diff, 2 * rows * per[0]);
        for (int e = 0; e < 3; e++) free(keep[e]);
        if (diff) return 1;
    }
    for (int e = 0; e < 3; e++) gm_model_destroy(&m[e]);
    free(x);
    free(bytes);
    return 0;
}
