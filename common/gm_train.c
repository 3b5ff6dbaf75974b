/* gm_train.c -- train one XGBoost model on a table of samples, deterministically. */
#include "gm_train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xgboost/c_api.h>

#include "gm_log.h"
#include "gm_model.h"


int gm_train_model(const gm_job_t *job, const float *X, const float *y, size_t n, uint32_t k, uint64_t seed, void **bytes,
                   size_t *len, char *err) {
    char xe[256], val[32];
    DMatrixHandle dm = NULL;
    BoosterHandle b = NULL;
    int rc = -1;
    if (XGDMatrixCreateFromMat(X, (bst_ulong)n, (bst_ulong)k, NAN, &dm) != 0 ||
        XGDMatrixSetFloatInfo(dm, "label", y, (bst_ulong)n) != 0) {
        gm_err(err, "cannot build the training matrix: %s", gm_model_xgb_error(xe, sizeof xe));
        goto out;
    }
    if (job->feature_types[0]) { /* categorical covariates: XGBoost's native categorical splits */
        const char *types[GM_WIRE_MAX_BANDS];
        for (uint32_t f = 0; f < k; f++) types[f] = job->feature_types[f] == 'c' ? "c" : "q";
        if (strlen(job->feature_types) != k || XGDMatrixSetStrFeatureInfo(dm, "feature_type", types, (bst_ulong)k) != 0) {
            gm_err(err, "cannot mark the categorical features: %s", gm_model_xgb_error(xe, sizeof xe));
            goto out;
        }
    }
    if (XGBoosterCreate(&dm, 1, &b) != 0) {
        gm_err(err, "cannot create a booster: %s", gm_model_xgb_error(xe, sizeof xe));
        goto out;
    }
    if (job->feature_types[0]) { /* saved in the model too, as Python's xgboost does: its users see them */
        const char *types[GM_WIRE_MAX_BANDS];
        for (uint32_t f = 0; f < k; f++) types[f] = job->feature_types[f] == 'c' ? "c" : "q";
        if (XGBoosterSetStrFeatureInfo(b, "feature_type", types, (bst_ulong)k) != 0) {
            gm_err(err, "cannot mark the categorical features: %s", gm_model_xgb_error(xe, sizeof xe));
            goto out;
        }
    }
    snprintf(val, sizeof val, "%llu", (unsigned long long)(seed & 0x7fffffff));
    int ok = XGBoosterSetParam(b, "nthread", "1") == 0 && XGBoosterSetParam(b, "seed", val) == 0 &&
             XGBoosterSetParam(b, "objective", job->objective) == 0;
    if (ok && job->kind == GM_KIND_CLASSIFICATION && strncmp(job->objective, "multi:", 6) == 0) {
        snprintf(val, sizeof val, "%u", job->nclass);
        ok = XGBoosterSetParam(b, "num_class", val) == 0;
    }
    for (uint32_t i = 0; ok && i < job->nparams; i++)
        if (XGBoosterSetParam(b, job->params[i].key, job->params[i].value) != 0) {
            gm_err(err, "XGBoost parameter %s=%s: %s", job->params[i].key, job->params[i].value, gm_model_xgb_error(xe, sizeof xe));
            goto out;
        }
    if (!ok) {
        gm_err(err, "cannot set the training parameters: %s", gm_model_xgb_error(xe, sizeof xe));
        goto out;
    }
    for (uint32_t r = 0; r < job->rounds; r++)
        if (XGBoosterUpdateOneIter(b, (int)r, dm) != 0) {
            gm_err(err, "training failed in round %u: %s", r + 1, gm_model_xgb_error(xe, sizeof xe));
            goto out;
        }
    bst_ulong blen;
    const char *buf;
    if (XGBoosterSaveModelToBuffer(b, "{\"format\":\"json\"}", &blen, &buf) != 0) {
        gm_err(err, "cannot save the model: %s", gm_model_xgb_error(xe, sizeof xe));
        goto out;
    }
    *bytes = malloc(blen);
    if (!*bytes) {
        gm_err(err, "out of memory for a %llu-byte model", (unsigned long long)blen);
        goto out;
    }
    memcpy(*bytes, buf, blen);
    *len = (size_t)blen;
    rc = 0;
out:
    if (b) XGBoosterFree(b);
    if (dm) XGDMatrixFree(dm);
    return rc;
}
