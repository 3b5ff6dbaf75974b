/* gm_train.h -- train one XGBoost model on a table of samples, deterministically. */
#ifndef GM_TRAIN_H
#define GM_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "gm_job.h"

/* Trains a model on 'n' rows of 'k' float32 features ('X', row-major) with labels 'y' (class codes or
 * targets), with the job's objective, class count, rounds and parameters, on one thread so the bytes are the
 * same on any machine. 'seed' seeds XGBoost's own sampling. On success '*bytes' is a malloc'd XGBoost JSON
 * model of '*len' bytes the caller frees. Returns 0, or -1 with 'err'. */
int gm_train_model(const gm_job_t *job, const float *X, const float *y, size_t n, uint32_t k, uint64_t seed, void **bytes,
                   size_t *len, char *err);

#endif
