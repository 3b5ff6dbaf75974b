/* gm_apply.h -- apply a job's model to one block of covariates and fill the job's output planes. */
#ifndef GM_APPLY_H
#define GM_APPLY_H

#include <stdint.h>

#include "gm_job.h"

typedef struct gm_applier gm_applier_t;

/* Loads the job's models (the job must hold their bytes) and checks they fit the job: feature count,
 * kind and classes. Predictions use 'nthread' threads. Returns NULL with 'err'. The caller owns it. */
gm_applier_t *gm_applier_new(const gm_job_t *job, int nthread, char *err);
/* Applies the job to a block of w x h pixels given as job->nbands float32 planes (NaN = nodata): the one
 * model's prediction (predict), or every model and the summaries of their maps (summarise).
 * Pixels with any NaN get each output's nodata value. 'outs' holds job->noutputs buffers of
 * gm_job_output_bytes(&job->outputs[i], w, h) bytes, band-sequential. Returns 0, or -1 with 'err'. */
int gm_applier_run(gm_applier_t *self, const float *planes, uint32_t w, uint32_t h, void *const *outs, char *err);
/* Frees the model and scratch space; takes NULL and sets the caller's pointer to NULL. */
void gm_applier_destroy(gm_applier_t **self_p);
/* Returns the path applying the job's models ("avx512", "avx2", "portable", "scalar" or "xgboost"). */
const char *gm_applier_walk(const gm_applier_t *self);

#endif
