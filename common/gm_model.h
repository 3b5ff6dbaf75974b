/* gm_model.h -- one XGBoost booster: load from bytes in XGBoost's own formats, inspect, predict rows. */
#ifndef GM_MODEL_H
#define GM_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "gm_job.h"

typedef struct gm_model gm_model_t;

/* What a loaded model is. */
typedef struct {
    gm_model_kind_t kind; /* classification for multi:softprob, multi:softmax, binary:*; else regression */
    char objective[64];   /* XGBoost objective name */
    uint32_t nclass;      /* classes: num_class, 2 for binary, 0 for regression */
    uint32_t nfeature;    /* features the model expects */
} gm_model_info_t;

/* Loads a model from the bytes of a .json, .ubj or legacy binary model file; predictions use 'nthread'
 * threads. 'what' names the model in errors. Returns NULL with 'err'. The caller owns the model. */
gm_model_t *gm_model_load(const void *bytes, size_t len, int nthread, const char *what, char *err);
/* Reads a whole model file into a malloc'd buffer. Returns 0, or -1 with 'err' naming the file. */
int gm_model_read_file(const char *path, void **bytes, size_t *len, char *err);
/* Returns the model's kind, objective, classes and features. */
const gm_model_info_t *gm_model_info(const gm_model_t *self);
/* Predicts 'nrows' dense rows of 'ncols' float32 features as XGBoost does (margin = raw scores before the
 * objective's transform), with gridmill's evaluator when it applies, else XGBoost's. On success '*out'
 * points at nrows * '*per_row' values, valid until the next call. Returns 0, or -1 with 'err'. */
int gm_model_predict(gm_model_t *self, const float *rows, size_t nrows, uint32_t ncols, int margin, const float **out,
                     size_t *per_row, char *err);
/* Raw margins of 'nrows' rows of 'ncols' features held by feature (x[k * xstride + i], feature k of row i) by
 * group: '*out' points at out[g * nrows + i] for the '*groups' margins of each row, the same bits as
 * gm_model_predict's margins, valid until the next call. Returns 1; 0 when only gm_model_predict can give them
 * (XGBoost's predictor serves, no AVX-512 walk, fewer columns than the model's features, a row holds a NaN);
 * -1 with 'err' when out of memory. */
int gm_model_margins_cols(gm_model_t *self, const float *x, size_t xstride, size_t nrows, uint32_t ncols,
                          const float **out, size_t *groups, char *err);
/* Returns "gridmill" when predictions come from gridmill's own evaluator (the same bits as XGBoost's,
 * faster), else why XGBoost's predictor is used. GRIDMILL_EVALUATOR=xgboost in the environment forces
 * XGBoost's. The evaluator is built on the first call of this or gm_model_predict, not by gm_model_load (a
 * process that only inspects models never pays for it), unless GRIDMILL_EVALUATOR is set when the model is
 * loaded: the choice is then taken at load. */
const char *gm_model_evaluator(gm_model_t *self);
/* Returns the path that applies the model: "avx512", "avx2", "portable", "scalar" (gm_forest_walk) or
 * "xgboost", with '*why' saying why (e.g. "this CPU has no AVX-512F"; "" for the fastest path). */
const char *gm_model_walk(gm_model_t *self, const char **why);
/* Copies the first line of XGBoost's last error (without its time stamp and stack trace) into 'buf';
 * returns 'buf'. */
const char *gm_model_xgb_error(char *buf, size_t cap);
/* Frees the booster; takes NULL and sets the caller's pointer to NULL. */
void gm_model_destroy(gm_model_t **self_p);

#endif
