/* gm_forest.h -- a tree ensemble evaluator: XGBoost gbtree models flattened into node arrays, applied to
 * batches of rows with the same float arithmetic as XGBoost's CPU predictor, so its outputs are the same bits. */
#ifndef GM_FOREST_H
#define GM_FOREST_H

#include <stddef.h>
#include <stdint.h>

typedef struct gm_forest gm_forest_t;

/* Builds the evaluator from a model in XGBoost's JSON format. Returns NULL with 'err' saying why when the
 * model uses something the evaluator does not reproduce exactly (dart or linear boosters, categorical
 * splits, vector leaves, an objective outside multi:softprob, multi:softmax, binary:logistic,
 * binary:logitraw, binary:hinge, reg:logistic, reg:squarederror, reg:absoluteerror, reg:pseudohubererror,
 * reg:squaredlogerror, count:poisson, reg:gamma, reg:tweedie, survival:cox, survival:aft);
 * callers then use XGBoost's own predictor. The caller owns the forest. */
gm_forest_t *gm_forest_from_json(const char *json, size_t len, char *err);
/* Returns the values per row XGBoost's predict gives: num_class for multi:softprob (and for margins of
 * multi-class models), else 1. */
uint32_t gm_forest_outputs(const gm_forest_t *self, int margin);
/* Returns the number of features the model reads (its num_feature). */
uint32_t gm_forest_features(const gm_forest_t *self);
/* Predicts 'n' rows of 'ncols' float32 features (ncols >= gm_forest_features) into 'out', which holds
 * n * gm_forest_outputs(self, margin) floats: raw margins (margin = 1) or the objective's transform. */
void gm_forest_predict(const gm_forest_t *self, const float *rows, size_t n, uint32_t ncols, int margin, float *out);
/* Raw margins of 'n' rows held by feature (x[k * xstride + i], feature k of row i) into 'out' by group
 * (out[g * n + i], n * gm_forest_outputs(self, 1) floats), the same bits as gm_forest_predict's. Returns 0, or
 * -1 when this forest has only the scalar walk (or is out of memory): gm_forest_predict serves those. */
int gm_forest_margins_cols(const gm_forest_t *self, const float *x, size_t xstride, size_t n, float *out);
/* XGBoost's softmax (common/math.h): subtract the largest margin, expf, sum in double, divide in float;
 * 'out' may be 'margin'. */
void gm_forest_softmax(const float *margin, uint32_t n, float *out);
/* Says which walk predicts: "avx512" (gm_ctree's tables or the gathered walk, 16 rows a vector), "avx2" (the
 * gathered walk, 8 rows), "portable" (the gathered walk in plain C) or "scalar". */
const char *gm_forest_walk(const gm_forest_t *self);
/* Says why that walk: "this CPU has no AVX-512F", "GRIDMILL_EVALUATOR=avx2", ... ("" for the fastest). */
const char *gm_forest_walk_why(const gm_forest_t *self);
/* Frees the forest; takes NULL and sets the caller's pointer to NULL. */
void gm_forest_destroy(gm_forest_t **self_p);

#endif
