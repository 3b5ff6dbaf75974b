/* gm_model.c -- one XGBoost booster: load from bytes in XGBoost's own formats, inspect, predict rows. */
#include "gm_model.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xgboost/c_api.h>

#include "gm_evaluator.h"
#include "gm_forest.h"
#include "gm_log.h"
#include "gm_model_check.h"

struct gm_model {
    BoosterHandle booster;
    gm_model_info_t info;
    gm_forest_t *forest;     /* our evaluator, when it reproduces this model exactly; else NULL */
    int forest_tried;        /* the forest was built, or found not to apply (on first use: a reader only inspects) */
    char why_xgboost[GM_ERR_LEN]; /* why the forest is NULL */
    float *out;              /* the forest's predictions */
    size_t out_cap;
};

const char *gm_model_xgb_error(char *buf, size_t cap) {
    const char *m = XGBGetLastError();
    if (!m || !*m) m = "unknown XGBoost error";
    const char *colon = strstr(m, ": ");
    if (colon && m[0] == '[') m = colon + 2; /* drop "[01:33:36] ./src/learner.cc:792" */
    size_t n = strcspn(m, "\n");
    if (n >= cap) n = cap - 1;
    memcpy(buf, m, n);
    buf[n] = '\0';
    return buf;
}

/* Finds "key":"value" in a JSON text and copies value. Returns 0, or -1 if absent. */
static int json_string_value(const char *json, const char *key, char *out, size_t cap) {
    char pat[80];
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    const char *p = strstr(json, pat);
    if (!p) return -1;
    p += strlen(pat);
    size_t n = strcspn(p, "\"");
    if (n >= cap) return -1;
    memcpy(out, p, n);
    out[n] = '\0';
    return 0;
}

/* Classifies the objective and reads the class count from the booster's JSON configuration. */
static int inspect(gm_model_t *self, const char *what, char *err) {
    char xe[256], num[32];
    bst_ulong len, nf;
    const char *cfg;
    if (XGBoosterSaveJsonConfig(self->booster, &len, &cfg) != 0)
        return gm_err(err, "%s: cannot read the model configuration: %s", what, gm_model_xgb_error(xe, sizeof xe));
    const char *tp = strstr(cfg, "\"learner_train_param\"");
    if (!tp || json_string_value(tp, "objective", self->info.objective, sizeof self->info.objective) < 0)
        return gm_err(err, "%s: the model configuration names no objective", what);
    if (XGBoosterGetNumFeature(self->booster, &nf) != 0)
        return gm_err(err, "%s: cannot read the number of features: %s", what, gm_model_xgb_error(xe, sizeof xe));
    self->info.nfeature = (uint32_t)nf;
    const char *obj = self->info.objective;
    if (strcmp(obj, "multi:softprob") == 0 || strcmp(obj, "multi:softmax") == 0) {
        if (json_string_value(cfg, "num_class", num, sizeof num) < 0)
            return gm_err(err, "%s: a %s model without num_class", what, obj);
        self->info.kind = GM_KIND_CLASSIFICATION;
        self->info.nclass = (uint32_t)strtoul(num, NULL, 10);
        if (self->info.nclass < 2)
            return gm_err(err, "%s: a %s model with num_class %u", what, obj, self->info.nclass);
    } else if (strcmp(obj, "binary:logistic") == 0 || strcmp(obj, "binary:logitraw") == 0 ||
               strcmp(obj, "binary:hinge") == 0) {
        self->info.kind = GM_KIND_CLASSIFICATION;
        self->info.nclass = 2;
    } else if (strncmp(obj, "rank:", 5) == 0) {
        return gm_err(err, "%s: objective %s is a ranking, not a per-pixel prediction", what, obj);
    } else {
        self->info.kind = GM_KIND_REGRESSION;
        self->info.nclass = 0;
        if (json_string_value(cfg, "num_target", num, sizeof num) == 0 && strtoul(num, NULL, 10) > 1)
            return gm_err(err, "%s: models with %s targets are not supported", what, num);
    }
    return 0;
}

/* Builds gridmill's evaluator from the booster's JSON the first time it is asked for, or says why XGBoost's
 * predictor serves instead. */
static void ensure_forest(gm_model_t *self) {
    if (self->forest_tried) return;
    self->forest_tried = 1;
    if (gm_evaluator() == GM_EVAL_XGBOOST) {
        snprintf(self->why_xgboost, sizeof self->why_xgboost, "GRIDMILL_EVALUATOR=xgboost");
        return;
    }
    bst_ulong jlen;
    const char *json;
    char ferr[GM_ERR_LEN];
    if (XGBoosterSaveModelToBuffer(self->booster, "{\"format\":\"json\"}", &jlen, &json) != 0)
        snprintf(self->why_xgboost, sizeof self->why_xgboost, "cannot export the model as JSON");
    else if (!(self->forest = gm_forest_from_json(json, (size_t)jlen, ferr)))
        snprintf(self->why_xgboost, sizeof self->why_xgboost, "%s", ferr);
}

gm_model_t *gm_model_load(const void *bytes, size_t len, int nthread, const char *what, char *err) {
    char xe[256], nt[16];
    /* checked whole before XGBoost parses it: its loader and predictor trust every index in the file */
    int checked = gm_model_check_bytes(bytes, len, what, err);
    if (checked < 0) return NULL;
    gm_model_t *self = calloc(1, sizeof *self);
    if (!self) {
        gm_err(err, "%s: out of memory", what);
        return NULL;
    }
    if (XGBoosterCreate(NULL, 0, &self->booster) != 0) {
        gm_err(err, "%s: cannot create a booster: %s", what, gm_model_xgb_error(xe, sizeof xe));
        free(self);
        return NULL;
    }
    if (XGBoosterLoadModelFromBuffer(self->booster, bytes, (bst_ulong)len) != 0) {
        gm_err(err, "%s: not an XGBoost model (%s)", what, gm_model_xgb_error(xe, sizeof xe));
        goto fail;
    }
    if (!checked) { /* a legacy binary model: check the JSON XGBoost makes of it */
        bst_ulong jlen;
        const char *json;
        if (XGBoosterSaveModelToBuffer(self->booster, "{\"format\":\"json\"}", &jlen, &json) != 0) {
            gm_err(err, "%s: cannot export the model to check it: %s", what, gm_model_xgb_error(xe, sizeof xe));
            goto fail;
        }
        if (gm_model_check_json(json, (size_t)jlen, what, err) < 0) goto fail;
    }
    snprintf(nt, sizeof nt, "%d", nthread > 0 ? nthread : 1);
    if (XGBoosterSetParam(self->booster, "nthread", nt) != 0) {
        gm_err(err, "%s: cannot set nthread: %s", what, gm_model_xgb_error(xe, sizeof xe));
        goto fail;
    }
    if (inspect(self, what, err) < 0) goto fail;
    /* GRIDMILL_EVALUATOR, when set, is the caller's choice for this model now: checked (an unknown value or a
     * path this CPU lacks is refused) and taken at once */
    if (getenv("GRIDMILL_EVALUATOR")) {
        gm_eval_t choice;
        if (gm_evaluator_choice(&choice, err) < 0) goto fail;
        ensure_forest(self);
    }
    return self;
fail:
    gm_model_destroy(&self);
    return NULL;
}

int gm_model_read_file(const char *path, void **bytes, size_t *len, char *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return gm_err(err, "%s: cannot open model: %s", path, strerror(errno));
    int rc = -1;
    char *buf = NULL;
    long size;
    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        gm_err(err, "%s: cannot read model: %s", path, strerror(errno));
        goto out;
    }
    if (size == 0) {
        gm_err(err, "%s: model file is empty", path);
        goto out;
    }
    buf = malloc((size_t)size);
    if (!buf) {
        gm_err(err, "%s: out of memory for a %ld-byte model", path, size);
        goto out;
    }
    if (fread(buf, 1, (size_t)size, f) != (size_t)size) {
        gm_err(err, "%s: cannot read model: %s", path, ferror(f) ? strerror(errno) : "short read");
        goto out;
    }
    *bytes = buf;
    *len = (size_t)size;
    buf = NULL;
    rc = 0;
out:
    free(buf);
    fclose(f);
    return rc;
}

const gm_model_info_t *gm_model_info(const gm_model_t *self) { return &self->info; }

const char *gm_model_evaluator(gm_model_t *self) {
    ensure_forest(self);
    return self->forest ? "gridmill" : self->why_xgboost;
}

const char *gm_model_walk(gm_model_t *self, const char **why) {
    ensure_forest(self);
    *why = self->forest ? gm_forest_walk_why(self->forest) : self->why_xgboost;
    return self->forest ? gm_forest_walk(self->forest) : "xgboost";
}

/* Makes room for 'need' floats of the evaluator's output in self->out. Returns 0, or -1 with 'err' naming
 * 'what' when out of memory. */
static int reserve_out(gm_model_t *self, size_t need, const char *what, char *err) {
    if (need <= self->out_cap) return 0;
    float *more = realloc(self->out, need * sizeof *more);
    if (!more) return gm_err(err, "out of memory for %zu %s", need, what);
    self->out = more;
    self->out_cap = need;
    return 0;
}

int gm_model_predict(gm_model_t *self, const float *rows, size_t nrows, uint32_t ncols, int margin, const float **out,
                     size_t *per_row, char *err) {
    char ai[256], cfg[256], xe[256];
    ensure_forest(self);
    if (self->forest && ncols >= gm_forest_features(self->forest)) {
        size_t k = gm_forest_outputs(self->forest, margin);
        if (reserve_out(self, nrows * k, "predictions", err) < 0) return -1;
        gm_forest_predict(self->forest, rows, nrows, ncols, margin, self->out);
        *out = self->out;
        *per_row = k;
        return 0;
    }
    const bst_ulong *shape;
    bst_ulong dim;
    snprintf(ai, sizeof ai, "{\"data\":[%llu,true],\"shape\":[%zu,%u],\"typestr\":\"<f4\",\"version\":3}",
             (unsigned long long)(uintptr_t)rows, nrows, ncols);
    /* Debian's XGBoost 1.7.4 needs cache_id beside the documented keys. */
    snprintf(cfg, sizeof cfg,
             "{\"type\":%d,\"training\":false,\"iteration_begin\":0,\"iteration_end\":0,\"strict_shape\":false,"
             "\"missing\":NaN,\"cache_id\":0}",
             margin ? 1 : 0);
    if (XGBoosterPredictFromDense(self->booster, ai, cfg, NULL, &shape, &dim, out) != 0)
        return gm_err(err, "XGBoost prediction failed: %s", gm_model_xgb_error(xe, sizeof xe));
    size_t total = 1;
    for (bst_ulong i = 0; i < dim; i++) total *= (size_t)shape[i];
    if (nrows == 0 || total % nrows != 0)
        return gm_err(err, "XGBoost returned %zu values for %zu rows", total, nrows);
    *per_row = total / nrows;
    return 0;
}

int gm_model_margins_cols(gm_model_t *self, const float *x, size_t xstride, size_t nrows, uint32_t ncols,
                          const float **out, size_t *groups, char *err) {
    ensure_forest(self);
    if (!self->forest || ncols < gm_forest_features(self->forest)) return 0;
    size_t k = gm_forest_outputs(self->forest, 1);
    if (reserve_out(self, nrows * k, "margins", err) < 0) return -1;
    if (gm_forest_margins_cols(self->forest, x, xstride, nrows, self->out) < 0) return 0;
    *out = self->out;
    *groups = k;
    return 1;
}

void gm_model_destroy(gm_model_t **self_p) {
    assert(self_p);
    gm_model_t *self = *self_p;
    if (!self) return;
    if (self->booster) XGBoosterFree(self->booster);
    gm_forest_destroy(&self->forest);
    free(self->out);
    free(self);
    *self_p = NULL;
}
