/* gm_apply.c -- apply a job's model to one block of covariates and fill the job's output planes. */
#include "gm_apply.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gm_log.h"
#include "gm_model.h"

typedef enum { OUT_REGRESSION, OUT_SOFTPROB, OUT_SOFTMAX, OUT_LOGISTIC, OUT_LOGITRAW, OUT_HINGE } transform_t;

struct gm_applier {
    const gm_job_t *job;
    gm_model_t *model;
    transform_t transform;
    float *rows;       /* valid pixels, nbands values each */
    uint32_t *index;   /* pixel index of each valid row */
    float *probs;      /* nclass probabilities of one pixel */
    size_t cap;        /* pixels the scratch buffers hold */
};

/* Picks how raw XGBoost output turns into the job's outputs. */
static int pick_transform(gm_applier_t *self, char *err) {
    const gm_model_info_t *mi = gm_model_info(self->model);
    const char *obj = mi->objective;
    if (mi->nfeature != self->job->nbands)
        return gm_err(err, "the model expects %u features, the covariates have %u bands", mi->nfeature, self->job->nbands);
    if (mi->kind != self->job->kind || mi->nclass != self->job->nclass)
        return gm_err(err, "the model (%s, %u classes) does not match the job (%s, %u classes)", obj, mi->nclass,
                      self->job->objective, self->job->nclass);
    if (mi->kind == GM_KIND_REGRESSION) self->transform = OUT_REGRESSION;
    else if (!strcmp(obj, "multi:softprob")) self->transform = OUT_SOFTPROB;
    else if (!strcmp(obj, "multi:softmax")) self->transform = OUT_SOFTMAX;
    else if (!strcmp(obj, "binary:logistic")) self->transform = OUT_LOGISTIC;
    else if (!strcmp(obj, "binary:logitraw")) self->transform = OUT_LOGITRAW;
    else if (!strcmp(obj, "binary:hinge")) self->transform = OUT_HINGE;
    else return gm_err(err, "objective %s is not supported", obj);
    return 0;
}

gm_applier_t *gm_applier_new(const gm_job_t *job, int nthread, char *err) {
    if (job->nmodels != 1) {
        gm_err(err, "a prediction job applies one model, this job has %u", job->nmodels);
        return NULL;
    }
    gm_applier_t *self = calloc(1, sizeof *self);
    if (!self) {
        gm_err(err, "out of memory");
        return NULL;
    }
    self->job = job;
    self->model = gm_model_load(job->models[0].bytes, job->models[0].size, nthread, "job model", err);
    if (!self->model || pick_transform(self, err) < 0) goto fail;
    self->probs = malloc((job->nclass ? job->nclass : 1) * sizeof(float));
    if (!self->probs) {
        gm_err(err, "out of memory");
        goto fail;
    }
    return self;
fail:
    gm_applier_destroy(&self);
    return NULL;
}

/* Index of the first largest value, as XGBoost's FindMaxIndex picks it. */
static uint32_t first_argmax(const float *v, uint32_t n) {
    uint32_t best = 0;
    for (uint32_t i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return best;
}

/* XGBoost's softmax: subtract the largest margin, exponentiate, normalise, in float. */
static void softmax(const float *margin, uint32_t n, float *out) {
    float wmax = margin[0];
    for (uint32_t i = 1; i < n; i++) wmax = margin[i] > wmax ? margin[i] : wmax;
    float wsum = 0.0f;
    for (uint32_t i = 0; i < n; i++) {
        out[i] = expf(margin[i] - wmax);
        wsum += out[i];
    }
    for (uint32_t i = 0; i < n; i++) out[i] /= wsum;
}

/* Fills every band of every output with its nodata value. */
static void fill_nodata(const gm_job_t *job, size_t npix, void *const *outs) {
    for (uint32_t o = 0; o < job->noutputs; o++) {
        const gm_output_t *out = &job->outputs[o];
        size_t n = npix * out->bands;
        switch (out->dtype) {
        case GM_DT_U8: memset(outs[o], (int)out->nodata, n); break;
        case GM_DT_U16: for (size_t i = 0; i < n; i++) ((uint16_t *)outs[o])[i] = (uint16_t)out->nodata; break;
        case GM_DT_F32: for (size_t i = 0; i < n; i++) ((float *)outs[o])[i] = (float)out->nodata; break;
        default: assert(!"output type not produced by gm_job_plan_outputs");
        }
    }
}

/* Writes class 'c' of pixel 'p' into the class plane. */
static void put_class(const gm_output_t *o, void *plane, size_t p, uint32_t c) {
    if (o->dtype == GM_DT_U8) ((uint8_t *)plane)[p] = (uint8_t)c;
    else ((uint16_t *)plane)[p] = (uint16_t)c;
}

int gm_applier_run(gm_applier_t *self, const float *planes, uint32_t w, uint32_t h, void *const *outs, char *err) {
    const gm_job_t *job = self->job;
    size_t npix = (size_t)w * h;
    uint32_t nb = job->nbands;
    if (npix > self->cap) {
        float *rows = realloc(self->rows, npix * nb * sizeof(float));
        if (!rows) return gm_err(err, "out of memory for a %ux%u block", w, h);
        self->rows = rows;
        uint32_t *index = realloc(self->index, npix * sizeof(uint32_t));
        if (!index) return gm_err(err, "out of memory for a %ux%u block", w, h);
        self->index = index;
        self->cap = npix;
    }
    /* Gather the pixels where every band is valid into dense rows. */
    size_t nvalid = 0;
    for (size_t p = 0; p < npix; p++) {
        float *row = self->rows + nvalid * nb;
        uint32_t b;
        for (b = 0; b < nb; b++) {
            float v = planes[(size_t)b * npix + p];
            if (isnan(v)) break;
            row[b] = v;
        }
        if (b == nb) self->index[nvalid++] = (uint32_t)p;
    }
    fill_nodata(job, npix, outs);
    if (nvalid == 0) return 0;

    const float *pred;
    size_t per_row;
    int margin = self->transform == OUT_SOFTMAX;
    if (gm_model_predict(self->model, self->rows, nvalid, nb, margin, &pred, &per_row, err) < 0) return -1;
    size_t want = (self->transform == OUT_SOFTPROB || self->transform == OUT_SOFTMAX) ? job->nclass : 1;
    if (per_row != want) return gm_err(err, "the model gave %zu values per pixel, %zu expected", per_row, want);

    if (self->transform == OUT_REGRESSION) {
        float *out = outs[0];
        for (size_t i = 0; i < nvalid; i++) out[self->index[i]] = pred[i];
        return 0;
    }
    const gm_output_t *cls = &job->outputs[0];
    float *prob = job->noutputs > 1 ? outs[1] : NULL;
    uint32_t nc = job->nclass;
    for (size_t i = 0; i < nvalid; i++) {
        size_t p = self->index[i];
        const float *r = pred + i * per_row;
        uint32_t c;
        switch (self->transform) {
        case OUT_SOFTPROB:
            memcpy(self->probs, r, nc * sizeof(float));
            c = first_argmax(r, nc);
            break;
        case OUT_SOFTMAX:
            c = first_argmax(r, nc);
            softmax(r, nc, self->probs);
            break;
        case OUT_LOGITRAW:
            self->probs[1] = 1.0f / (1.0f + expf(-r[0]));
            self->probs[0] = 1.0f - self->probs[1];
            c = self->probs[1] > 0.5f;
            break;
        default: /* logistic gives p, hinge gives 0 or 1 */
            self->probs[1] = r[0];
            self->probs[0] = 1.0f - r[0];
            c = r[0] > 0.5f;
            break;
        }
        put_class(cls, outs[0], p, c);
        if (prob)
            for (uint32_t k = 0; k < nc; k++) prob[(size_t)k * npix + p] = self->probs[k];
    }
    return 0;
}

void gm_applier_destroy(gm_applier_t **self_p) {
    assert(self_p);
    gm_applier_t *self = *self_p;
    if (!self) return;
    gm_model_destroy(&self->model);
    free(self->rows);
    free(self->index);
    free(self->probs);
    free(self);
    *self_p = NULL;
}
