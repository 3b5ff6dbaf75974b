/* reader_job.c -- build the job from the covariates and the model, checking that they fit each other. */
#include <stdlib.h>
#include <string.h>

#include "gm_log.h"
#include "gm_model.h"
#include "reader.h"

/* Returns the data's tile side when it is square and 64 to 2048 pixels and smaller than the grid, else 0. */
static uint32_t data_tile(const gm_grid_t *g) {
    return g->block_w == g->block_h && g->block_w >= 64 && g->block_w <= 2048 && g->block_w < g->xsize ? g->block_w : 0;
}

/* Picks the processing block side: the option, else the data's square tile when it has one, else 256. */
static uint32_t pick_block(const reader_options_t *o, const gm_grid_t *g) {
    if (o->block_size) return o->block_size;
    return data_tile(g) ? data_tile(g) : 256;
}

/* Picks the output tile side: the option, else the data's tile when larger than 256 (so the data's blocks nest
 * in output tiles, and the writer holds a few tiles, not rows of them), else 256. It does not depend on the
 * block size, so neither do the output files. */
static uint32_t pick_tile(const reader_options_t *o, const gm_grid_t *g) {
    if (o->tile) return o->tile;
    uint32_t t = data_tile(g);
    return t > 256 && t % 16 == 0 ? t : 256;
}

void reader_job_grid(reader_t *r, gm_job_t *job) {
    const gm_grid_t *g = gm_stack_grid(r->stacks[0]);
    job->xsize = g->xsize;
    job->ysize = g->ysize;
    memcpy(job->gt, g->gt, sizeof job->gt);
    job->crs = strdup(g->crs);
    job->nbands = gm_stack_nbands(r->stacks[0]);
    job->block_w = job->block_h = pick_block(&r->opt, g);
    job->tile = pick_tile(&r->opt, g);
}

int reader_job_build(reader_t *r, char *err) {
    const reader_options_t *o = &r->opt;
    gm_job_t job;
    memset(&job, 0, sizeof job);
    int rc = -1;
    void *bytes = NULL;
    size_t len = 0;
    gm_model_t *model = NULL;
    if (gm_model_read_file(o->model_path, &bytes, &len, err) < 0) goto out;
    model = gm_model_load(bytes, len, 1, o->model_path, err);
    if (!model) goto out;
    const gm_model_info_t *mi = gm_model_info(model);
    if (mi->nfeature != gm_stack_nbands(r->stacks[0])) {
        gm_err(err, "%s: the model expects %u features, the covariates have %u band%s", o->model_path, mi->nfeature,
               gm_stack_nbands(r->stacks[0]), gm_stack_nbands(r->stacks[0]) == 1 ? "" : "s");
        goto out;
    }
    reader_job_grid(r, &job);
    job.mode = GM_MODE_PREDICT;
    job.kind = mi->kind;
    snprintf(job.objective, sizeof job.objective, "%s", mi->objective);
    job.nclass = mi->nclass;
    job.probabilities = o->probabilities && mi->kind == GM_KIND_CLASSIFICATION;
    if (o->probabilities && mi->kind != GM_KIND_CLASSIFICATION)
        gm_log(GM_LOG_WARN, "%s: --probabilities ignored: %s is a regression", o->model_path, mi->objective);
    job.nmodels = 1;
    if (gm_job_plan_outputs(&job, err) < 0) goto out;
    job.models = calloc(1, sizeof *job.models);
    if (!job.crs || !job.models) {
        gm_err(err, "out of memory");
        goto out;
    }
    snprintf(job.models[0].format, sizeof job.models[0].format, "%s", gm_job_model_format(bytes, len));
    job.models[0].bytes = bytes;
    job.models[0].size = len;
    bytes = NULL;
    if (reader_job_install(r, &job, err) < 0) goto out;
    rc = 0;
out:
    gm_job_clear(&job);
    gm_model_destroy(&model);
    free(bytes);
    return rc;
}

int reader_stacks_open(reader_t *r, char *err) {
    const reader_options_t *o = &r->opt;
    if (!r->stacks && !(r->stacks = calloc(o->io_threads, sizeof *r->stacks))) return gm_err(err, "out of memory");
    r->free_stacks = calloc(o->io_threads, sizeof *r->free_stacks);
    if (!r->free_stacks) return gm_err(err, "out of memory");
    if (!r->stacks[0] && !(r->stacks[0] = gm_stack_open_aligned(o->covariates, o->ncovariates, o->align, err)))
        return -1;
    for (int i = 1; i < o->ncovariates; i++)
        if (gm_stack_is_warped(r->stacks[0], i))
            gm_log(GM_LOG_INFO, "%s: warped onto the grid of %s (--align)", o->covariates[i], o->covariates[0]);
    /* One stack per I/O thread: GDAL handles are not shared between threads. */
    for (uint32_t i = 1; i < o->io_threads; i++)
        if (!(r->stacks[i] = gm_stack_reopen(r->stacks[0], err))) return -1;
    for (uint32_t i = 0; i < o->io_threads; i++) r->free_stacks[r->nfree++] = (int)i;
    /* bound GDAL's block cache from the start: sampling reads points all over the rasters */
    const gm_grid_t *g = gm_stack_grid(r->stacks[0]);
    gm_stack_limit_cache(r->stacks[0], g->block_h > 256 ? g->block_h : 256, g->xsize);
    return 0;
}

int reader_job_install(reader_t *r, gm_job_t *job, char *err) {
    void *header;
    size_t len;
    snprintf(job->tasks_ep, sizeof job->tasks_ep, "%s",
             r->opt.advertise_tasks_ep ? r->opt.advertise_tasks_ep : r->opt.tasks_ep);
    snprintf(job->results_ep, sizeof job->results_ep, "%s", r->opt.results_ep);
    snprintf(job->acks_ep, sizeof job->acks_ep, "%s", r->opt.acks_ep);
    if (gm_job_compute_id(job, err) < 0 || gm_job_encode(job, &header, &len, err) < 0) return -1;
    gm_job_clear(&r->job);
    free(r->job_header);
    r->job = *job;
    memset(job, 0, sizeof *job);
    r->job_header = header;
    r->job_header_len = len;
    return 0;
}
