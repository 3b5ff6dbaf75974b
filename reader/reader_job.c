/* reader_job.c -- build the job from the covariates and the model, checking that they fit each other. */
#include <stdlib.h>
#include <string.h>

#include "gm_log.h"
#include "gm_model.h"
#include "reader.h"

/* Picks the processing block side: the option, else the data's square tile when it has one, else 256. */
static uint32_t pick_block(const reader_options_t *o, const gm_grid_t *g) {
    if (o->block_size) return o->block_size;
    if (g->block_w == g->block_h && g->block_w >= 64 && g->block_w <= 2048 && g->block_w < g->xsize) return g->block_w;
    return 256;
}

int reader_job_build(reader_t *r, char *err) {
    const reader_options_t *o = &r->opt;
    gm_job_t *job = &r->job;
    int rc = -1;
    void *bytes = NULL;
    size_t len = 0;
    gm_model_t *model = NULL;
    gm_stack_t *stack = gm_stack_open(o->covariates, o->ncovariates, err);
    if (!stack) return -1;
    const gm_grid_t *g = gm_stack_grid(stack);

    if (gm_model_read_file(o->model_path, &bytes, &len, err) < 0) goto out;
    model = gm_model_load(bytes, len, 1, o->model_path, err);
    if (!model) goto out;
    const gm_model_info_t *mi = gm_model_info(model);
    if (mi->nfeature != gm_stack_nbands(stack)) {
        gm_err(err, "%s: the model expects %u features, the covariates have %u bands", o->model_path, mi->nfeature,
               gm_stack_nbands(stack));
        goto out;
    }

    job->xsize = g->xsize;
    job->ysize = g->ysize;
    memcpy(job->gt, g->gt, sizeof job->gt);
    job->crs = strdup(g->crs);
    job->nbands = gm_stack_nbands(stack);
    job->block_w = job->block_h = pick_block(o, g);
    job->tile = o->tile;
    job->kind = mi->kind;
    snprintf(job->objective, sizeof job->objective, "%s", mi->objective);
    job->nclass = mi->nclass;
    job->probabilities = o->probabilities && mi->kind == GM_KIND_CLASSIFICATION;
    if (o->probabilities && mi->kind != GM_KIND_CLASSIFICATION)
        gm_log(GM_LOG_WARN, "%s: --probabilities ignored: %s is a regression", o->model_path, mi->objective);
    if (gm_job_plan_outputs(job, err) < 0) goto out;
    job->models = calloc(1, sizeof *job->models);
    if (!job->crs || !job->models) {
        gm_err(err, "out of memory");
        goto out;
    }
    job->nmodels = 1;
    snprintf(job->models[0].format, sizeof job->models[0].format, "%s", gm_job_model_format(bytes, len));
    job->models[0].bytes = bytes;
    job->models[0].size = len;
    bytes = NULL;
    snprintf(job->tasks_ep, sizeof job->tasks_ep, "%s", o->tasks_ep);
    snprintf(job->results_ep, sizeof job->results_ep, "%s", o->results_ep);
    snprintf(job->acks_ep, sizeof job->acks_ep, "%s", o->acks_ep);
    if (gm_job_compute_id(job, err) < 0) goto out;
    if (gm_job_encode(job, &r->job_header, &r->job_header_len, err) < 0) goto out;

    /* One stack per I/O thread: GDAL handles are not shared between threads. */
    r->stacks = calloc(o->io_threads, sizeof *r->stacks);
    r->free_stacks = calloc(o->io_threads, sizeof *r->free_stacks);
    if (!r->stacks || !r->free_stacks) {
        gm_err(err, "out of memory");
        goto out;
    }
    r->stacks[0] = stack;
    stack = NULL;
    for (uint32_t i = 1; i < o->io_threads; i++)
        if (!(r->stacks[i] = gm_stack_reopen(r->stacks[0], err))) goto out;
    for (uint32_t i = 0; i < o->io_threads; i++) r->free_stacks[r->nfree++] = (int)i;
    rc = 0;
out:
    gm_model_destroy(&model);
    gm_stack_destroy(&stack);
    free(bytes);
    return rc;
}
