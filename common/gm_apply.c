/* gm_apply.c -- apply a job's model to one block of covariates and fill the job's output planes. */
#include "gm_apply.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gm_evaluator.h"
#include "gm_forest.h"
#include "gm_log.h"
#include "gm_model.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define GM_APPLY_X86 1
#endif

typedef enum { OUT_REGRESSION, OUT_SOFTPROB, OUT_SOFTMAX, OUT_LOGISTIC, OUT_LOGITRAW, OUT_HINGE } transform_t;

#define CHUNK 16384 /* valid pixels summarised at a time: bounds the per-model scratch space */
#define FILL_HEAD 1024 /* values written one by one before fill() copies them in blocks */
#define COLS_MAX_CLASSES 64 /* classes the by-band path takes (gm_ctree.h's GM_CTREE_MAX_GROUPS) */

struct gm_applier {
    const gm_job_t *job;
    uint32_t nmodels;
    gm_model_t **models;
    transform_t *transform; /* per model */
    float *rows;       /* valid pixels, nbands values each (gathered once a model of the block needs them) */
    float *cols;       /* summarise with AVX-512: the same values by band, cols[b * cap + i] */
    const float *planes; /* the block being applied, band-sequential */
    int rows_ready;    /* rows hold the block's valid pixels */
    const float *xcols; /* the valid pixels by band: cols, or the planes themselves when no pixel is nodata */
    size_t xstride;    /* values from one band of xcols to the next: cap or the block's pixels */
    uint32_t *index;   /* pixel index of each valid row */
    uint8_t *has_nan;  /* per pixel of the block: some band is NaN */
    float *probs;      /* nclass probabilities of one pixel */
    size_t cap;        /* pixels the scratch buffers hold */
    int avx512;        /* softprob classes picked with AVX-512F (the CPU has it, GRIDMILL_EVALUATOR is not scalar) */
    uint16_t *votes;   /* summarise, classification: CHUNK x nclass */
    double *psum;      /* summarise, summary_probs: CHUNK x nclass sums of the models' probabilities, model order */
    float *pmean;      /* summarise, summary_probs: CHUNK x nclass means, (float)(psum / nmodels) */
    uint16_t *classes; /* summarise, classification: one model's class of each pixel of a chunk */
    float *share;      /* summarise, classification: (float)(v / nmodels) for v = 0 .. nmodels votes */
    double *plogp;     /* summarise, classification: q log2(q) of q = v / nmodels, 0 for v = 0 */
    float *confusion;  /* summarise, classification: (float)(1 - d / nmodels) for a vote gap d = 0 .. nmodels */
    float *values;     /* summarise, regression: CHUNK x nmodels */
    double *sorted;    /* nmodels values of one pixel */
    int32_t *realisation_of; /* per model: index of its realisation output, or -1 */
    char walk[16];     /* the path applying the first model (gm_model_walk) */
};

/* Picks how raw XGBoost output of model 'm' turns into the job's outputs. */
static int pick_transform(gm_applier_t *self, uint32_t m, char *err) {
    const gm_model_info_t *mi = gm_model_info(self->models[m]);
    const char *obj = mi->objective;
    transform_t *t = &self->transform[m];
    if (mi->nfeature != self->job->nbands)
        return gm_err(err, "model %u expects %u features, the covariates have %u bands", m + 1, mi->nfeature,
                      self->job->nbands);
    if (mi->kind != self->job->kind || mi->nclass != self->job->nclass)
        return gm_err(err, "model %u (%s, %u classes) does not match the job (%s, %u classes)", m + 1, obj, mi->nclass,
                      self->job->objective, self->job->nclass);
    if (mi->kind == GM_KIND_REGRESSION) *t = OUT_REGRESSION;
    else if (!strcmp(obj, "multi:softprob")) *t = OUT_SOFTPROB;
    else if (!strcmp(obj, "multi:softmax")) *t = OUT_SOFTMAX;
    else if (!strcmp(obj, "binary:logistic")) *t = OUT_LOGISTIC;
    else if (!strcmp(obj, "binary:logitraw")) *t = OUT_LOGITRAW;
    else if (!strcmp(obj, "binary:hinge")) *t = OUT_HINGE;
    else return gm_err(err, "objective %s is not supported", obj);
    return 0;
}

/* Fills the class summaries' tables, one entry per vote count, each computed in double as the summary of one
 * pixel would be, so looking a value up gives the same bits. Returns 0, or -1 when out of memory. */
static int make_vote_tables(gm_applier_t *self) {
    uint32_t nm = self->nmodels;
    double total = (double)nm;
    self->classes = malloc((size_t)CHUNK * sizeof *self->classes);
    self->share = malloc((nm + 1) * sizeof *self->share);
    self->plogp = malloc((nm + 1) * sizeof *self->plogp);
    self->confusion = malloc((nm + 1) * sizeof *self->confusion);
    if (!self->classes || !self->share || !self->plogp || !self->confusion) return -1;
    for (uint32_t v = 0; v <= nm; v++) {
        double q = v / total;
        self->share[v] = (float)q;
        self->plogp[v] = v ? q * log2(q) : 0.0;
        self->confusion[v] = (float)(1.0 - v / total);
    }
    return 0;
}

/* Whether softprob classes may be picked with AVX-512F: the CPU has it (valgrind hides it) and
 * GRIDMILL_EVALUATOR is auto or avx512 (gm_evaluator.h). */
static int use_avx512(void) {
#ifdef GM_APPLY_X86
    return gm_evaluator_avx512();
#else
    return 0;
#endif
}

gm_applier_t *gm_applier_new(const gm_job_t *job, int nthread, char *err) {
    if (job->mode == GM_MODE_PREDICT ? job->nmodels != 1 : job->mode != GM_MODE_SUMMARISE || job->nmodels < 1) {
        gm_err(err, "the job applies %u models in mode %d", job->nmodels, (int)job->mode);
        return NULL;
    }
    gm_applier_t *self = calloc(1, sizeof *self);
    if (!self) {
        gm_err(err, "out of memory");
        return NULL;
    }
    self->job = job;
    self->nmodels = job->nmodels;
    self->avx512 = use_avx512();
    self->models = calloc(job->nmodels, sizeof *self->models);
    self->transform = calloc(job->nmodels, sizeof *self->transform);
    self->realisation_of = malloc(job->nmodels * sizeof *self->realisation_of);
    self->probs = malloc((job->nclass ? job->nclass : 1) * sizeof(float));
    if (!self->models || !self->transform || !self->realisation_of || !self->probs) {
        gm_err(err, "out of memory");
        goto fail;
    }
    for (uint32_t m = 0; m < job->nmodels; m++) {
        char what[32];
        snprintf(what, sizeof what, "model %u", m + 1);
        self->models[m] = gm_model_load(job->models[m].bytes, job->models[m].size, nthread, what, err);
        if (!self->models[m] || pick_transform(self, m, err) < 0) goto fail;
        const char *ev = gm_model_evaluator(self->models[m]); /* "gridmill", else why XGBoost's predictor */
        int own = !strcmp(ev, "gridmill");
        gm_log(GM_LOG_DEBUG, "model %u (%s): %s%s", m + 1, gm_model_info(self->models[m])->objective,
               own ? "gridmill's evaluator" : "XGBoost's predictor: ", own ? "" : ev);
        if (m == 0) { /* the path, once a job: "evaluator: avx2 (this CPU has no AVX-512F)" */
            const char *why, *walk = gm_model_walk(self->models[m], &why);
            gm_log(GM_LOG_INFO, "evaluator: %s%s%s%s", walk, *why ? " (" : "", why, *why ? ")" : "");
            snprintf(self->walk, sizeof self->walk, "%s", walk);
        }
        self->realisation_of[m] = -1;
    }
    for (uint32_t o = 0; o < job->noutputs; o++)
        if (job->outputs[o].role == GM_ROLE_REALISATION) self->realisation_of[job->outputs[o].model] = (int32_t)o;
    if (job->mode == GM_MODE_SUMMARISE) {
        int ok;
        if (job->kind == GM_KIND_CLASSIFICATION) {
            self->votes = malloc((size_t)CHUNK * job->nclass * sizeof *self->votes);
            ok = self->votes && make_vote_tables(self) == 0;
            if (ok && job->summary_probs) {
                self->psum = malloc((size_t)CHUNK * job->nclass * sizeof *self->psum);
                self->pmean = malloc((size_t)CHUNK * job->nclass * sizeof *self->pmean);
                ok = self->psum && self->pmean;
            }
        } else {
            self->values = malloc((size_t)CHUNK * job->nmodels * sizeof *self->values);
            self->sorted = malloc(job->nmodels * sizeof *self->sorted);
            ok = self->values && self->sorted;
        }
        if (!ok) {
            gm_err(err, "out of memory for the summaries of %u models", job->nmodels);
            goto fail;
        }
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


/* Fills 'n' values of 'size' bytes at 'dst' with copies of 'value': the first FILL_HEAD one by one, the rest
 * by copying those in blocks, as fast as memcpy. */
static void fill(void *dst, const void *value, size_t size, size_t n) {
    char *d = dst;
    size_t head = n < FILL_HEAD ? n : FILL_HEAD;
    for (size_t i = 0; i < head; i++) memcpy(d + i * size, value, size);
    for (size_t i = head; i < n; i += head) memcpy(d + i * size, d, (n - i < head ? n - i : head) * size);
}

/* Fills every band of every output with its nodata value. */
static void fill_nodata(const gm_job_t *job, size_t npix, void *const *outs) {
    for (uint32_t o = 0; o < job->noutputs; o++) {
        const gm_output_t *out = &job->outputs[o];
        size_t n = npix * out->bands;
        uint16_t u16 = (uint16_t)out->nodata;
        float f32 = (float)out->nodata;
        switch (out->dtype) {
        case GM_DT_U8: memset(outs[o], (int)out->nodata, n); break;
        case GM_DT_U16: fill(outs[o], &u16, sizeof u16, n); break;
        case GM_DT_F32: fill(outs[o], &f32, sizeof f32, n); break;
        default: assert(!"output type not produced by gm_job_plan_outputs");
        }
    }
}

/* Writes class 'c' at index 'p' of a class plane of type 'dt'. */
static void put_class(gm_dtype_t dt, void *plane, size_t p, uint32_t c) {
    if (dt == GM_DT_U8) ((uint8_t *)plane)[p] = (uint8_t)c;
    else ((uint16_t *)plane)[p] = (uint16_t)c;
}

/* XGBoost 1.7's common::Sigmoid, operation for operation (as gm_forest.c's): the exponent clamped at 88.7,
 * then 1 / (exp + 1 + 1e-16) in float. */
static float xgb_sigmoid(float x) {
    float e = 88.7f < -x ? 88.7f : -x;
    float denom = expf(e) + 1.0f + 1e-16f;
    return 1.0f / denom;
}

/* Turns one row of raw model output into a class, filling self->probs with the class probabilities. */
static uint32_t classify_row(gm_applier_t *self, transform_t t, const float *r) {
    uint32_t nc = self->job->nclass;
    switch (t) {
    case OUT_SOFTPROB:
        memcpy(self->probs, r, nc * sizeof(float));
        return first_argmax(r, nc);
    case OUT_SOFTMAX:
        gm_forest_softmax(r, nc, self->probs);
        return first_argmax(r, nc);
    case OUT_LOGITRAW: /* r is the raw margin: p is what binary:logistic would give for it, the class margin > 0
                        * (not p > 0.5: the sigmoid of a margin up to 8.9e-8 rounds to 0.5) */
        self->probs[1] = xgb_sigmoid(r[0]);
        self->probs[0] = 1.0f - self->probs[1];
        return r[0] > 0.0f;
    default: /* logistic gives p, hinge gives 0 or 1 */
        self->probs[1] = r[0];
        self->probs[0] = 1.0f - r[0];
        return r[0] > 0.5f;
    }
}

/* The class multi:softprob picks, computed as XGBoost does: the first largest of the probabilities. */
static uint32_t softprob_class_exact(gm_applier_t *self, const float *margin, uint32_t nc) {
    gm_forest_softmax(margin, nc, self->probs);
    return first_argmax(self->probs, nc);
}

/* The class multi:softprob picks, from the raw margins: the first largest probability. Margins order the
 * probabilities, so the largest margin decides unless an earlier class is within rounding of it; only then
 * are the probabilities computed, exactly as XGBoost does, to see which one comes first. */
static uint32_t softprob_class(gm_applier_t *self, const float *margin, uint32_t nc) {
    uint32_t best = first_argmax(margin, nc);
    float tol = 1e-5f * (1.0f + fabsf(margin[best]));
    for (uint32_t k = 0; k < best; k++)
        if (margin[best] - margin[k] <= tol) return softprob_class_exact(self, margin, nc);
    return best;
}

#ifdef GM_APPLY_X86
/* softprob_class of one row of 2 to 16 margins with AVX-512F, the same class by the same test: the first lane
 * holding the largest margin, unless a lane before it has (largest - margin) <= the same tolerance, computed
 * as softprob_class computes it. Rows with NaN go to softprob_class, whose comparisons NaN decides. */
static inline __attribute__((always_inline, target("avx512f"))) uint32_t
softprob_class16(gm_applier_t *self, const float *margin, uint32_t nc, __mmask16 lanes) {
    __m512 m = _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), lanes, margin);
    if (_mm512_mask_cmp_ps_mask(lanes, m, m, _CMP_UNORD_Q)) return softprob_class(self, margin, nc);
    float max = _mm512_reduce_max_ps(m);
    __m512 vmax = _mm512_set1_ps(max), tol = _mm512_set1_ps(1e-5f * (1.0f + fabsf(max)));
    uint32_t best = (uint32_t)__builtin_ctz(_mm512_mask_cmp_ps_mask(lanes, m, vmax, _CMP_EQ_OQ));
    __mmask16 near = _mm512_mask_cmp_ps_mask(lanes, _mm512_sub_ps(vmax, m), tol, _CMP_LE_OQ);
    return near & ((1u << best) - 1) ? softprob_class_exact(self, margin, nc) : best;
}

/* softprob_class of 'n' rows from margins held by class (m[k * n + i]), 16 rows at a time with AVX-512F: per
 * lane the first class holding the largest margin, unless a class before it is within the same tolerance of
 * it, computed as softprob_class computes it; those rows, and rows with a NaN margin, go to softprob_class. */
__attribute__((target("avx512f"))) static void softprob_classes_cols(gm_applier_t *self, const float *m, size_t n,
                                                                     uint32_t nc, uint16_t *classes) {
    float row[COLS_MAX_CLASSES];
    for (size_t i0 = 0; i0 < n; i0 += 16) {
        __mmask16 live = (__mmask16)(n - i0 >= 16 ? 0xffff : (1u << (n - i0)) - 1), nan = 0;
        __m512 max = _mm512_maskz_loadu_ps(live, m + i0);
        for (uint32_t k = 1; k < nc; k++) max = _mm512_max_ps(max, _mm512_maskz_loadu_ps(live, m + (size_t)k * n + i0));
        /* 1e-5f * (1 + |max|): the same two float operations as softprob_class's */
        __m512 tol = _mm512_mul_ps(_mm512_set1_ps(1e-5f), _mm512_add_ps(_mm512_set1_ps(1.0f), _mm512_abs_ps(max)));
        __m512i best = _mm512_setzero_si512();
        __mmask16 found = 0, near = 0;
        for (uint32_t k = 0; k < nc; k++) {
            __m512 v = _mm512_maskz_loadu_ps(live, m + (size_t)k * n + i0);
            nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
            __mmask16 eq = _mm512_mask_cmp_ps_mask((__mmask16)~found, v, max, _CMP_EQ_OQ);
            best = _mm512_mask_mov_epi32(best, eq, _mm512_set1_epi32((int)k));
            found |= eq;
            /* a class before the first largest within tolerance of it */
            near |= _mm512_mask_cmp_ps_mask((__mmask16)~found, _mm512_sub_ps(max, v), tol, _CMP_LE_OQ);
        }
        _mm512_mask_cvtepi32_storeu_epi16(classes + i0, live, best);
        for (__mmask16 redo = (near | nan | (__mmask16)~found) & live; redo; redo &= (__mmask16)(redo - 1)) {
            size_t i = i0 + (size_t)__builtin_ctz(redo);
            for (uint32_t k = 0; k < nc; k++) row[k] = m[(size_t)k * n + i];
            classes[i] = (uint16_t)softprob_class(self, row, nc);
        }
    }
}

/* softprob_classes with AVX-512F, for 2 to 16 classes. */
__attribute__((target("avx512f"))) static void softprob_classes16(gm_applier_t *self, const float *margins, size_t n,
                                                                  uint32_t nc, uint16_t *classes) {
    __mmask16 lanes = (__mmask16)((1u << nc) - 1);
    for (size_t i = 0; i < n; i++) classes[i] = (uint16_t)softprob_class16(self, margins + i * nc, nc, lanes);
}
#endif

/* The softprob_class of each of 'n' rows of 'nc' margins, into 'classes'. */
static void softprob_classes(gm_applier_t *self, const float *margins, size_t n, uint32_t nc, uint16_t *classes) {
#ifdef GM_APPLY_X86
    if (self->avx512 && nc <= 16) {
        softprob_classes16(self, margins, n, nc, classes);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++) classes[i] = (uint16_t)softprob_class(self, margins + i * nc, nc);
}

static void ensure_rows(gm_applier_t *self, size_t npix, size_t nvalid);

/* Runs model 'm' on 'n' gathered rows (raw margins when 'margin'). Returns 0, or -1 with 'err'. */
static int predict_rows_as(gm_applier_t *self, uint32_t m, const float *rows, size_t n, int margin, const float **pred,
                           char *err) {
    const gm_job_t *job = self->job;
    size_t per_row;
    transform_t t = self->transform[m];
    if (gm_model_predict(self->models[m], rows, n, job->nbands, margin, pred, &per_row, err) < 0) return -1;
    size_t want = (t == OUT_SOFTPROB || t == OUT_SOFTMAX) ? job->nclass : 1;
    if (per_row != want) return gm_err(err, "model %u gave %zu values per pixel, %zu expected", m + 1, per_row, want);
    return 0;
}

/* Runs model 'm' on 'n' gathered rows, as its own prediction needs them. Returns 0, or -1 with 'err'. */
static int predict_rows(gm_applier_t *self, uint32_t m, const float *rows, size_t n, const float **pred, char *err) {
    return predict_rows_as(self, m, rows, n, self->transform[m] == OUT_SOFTMAX, pred, err);
}

/* The one-model prediction: its value, or its class and class probabilities. */
static int run_predict(gm_applier_t *self, size_t nvalid, size_t npix, void *const *outs, char *err) {
    const gm_job_t *job = self->job;
    const float *pred;
    ensure_rows(self, npix, nvalid);
    if (predict_rows(self, 0, self->rows, nvalid, &pred, err) < 0) return -1;
    if (self->transform[0] == OUT_REGRESSION) {
        float *out = outs[0];
        for (size_t i = 0; i < nvalid; i++) out[self->index[i]] = pred[i];
        return 0;
    }
    size_t per_row = (self->transform[0] == OUT_SOFTPROB || self->transform[0] == OUT_SOFTMAX) ? job->nclass : 1;
    float *prob = job->noutputs > 1 ? outs[1] : NULL;
    for (size_t i = 0; i < nvalid; i++) {
        size_t p = self->index[i];
        uint32_t c = classify_row(self, self->transform[0], pred + i * per_row);
        put_class(job->outputs[0].dtype, outs[0], p, c);
        if (prob)
            for (uint32_t k = 0; k < job->nclass; k++) prob[(size_t)k * npix + p] = self->probs[k];
    }
    return 0;
}

/* Writes the share of the models that voted for each class of 'n' pixels into 'prob', one band per class
 * (band by band: each band's writes go in order). */
static void write_shares(gm_applier_t *self, const uint32_t *index, size_t n, size_t npix, float *prob) {
    uint32_t nc = self->job->nclass;
    for (uint32_t k = 0; k < nc; k++) {
        float *band = prob + (size_t)k * npix;
        const uint16_t *v = self->votes + k;
        for (size_t i = 0; i < n; i++) band[index[i]] = self->share[v[i * nc]];
    }
}

/* The next class of a pixel's ranking, marked in 'taken' (one bit per class): the most votes 'v', or when v is
 * NULL the largest mean probability 'q', among the classes not yet ranked, the lower code on ties. */
static uint32_t take_next(uint64_t *taken, uint32_t nc, const uint16_t *v, const float *q) {
    uint32_t pick = UINT32_MAX;
    for (uint32_t k = 0; k < nc; k++)
        if (!(taken[k / 64] >> (k % 64) & 1) && (pick == UINT32_MAX || (v ? v[k] > v[pick] : q[k] > q[pick]))) pick = k;
    taken[pick / 64] |= 1ull << (pick % 64);
    return pick;
}

/* Writes the class summaries of 'n' pixels from their votes, through the applier's per-vote-count tables. */
static void summarise_classes(gm_applier_t *self, const uint32_t *index, size_t n, size_t npix, void *const *outs) {
    const gm_job_t *job = self->job;
    uint32_t nc = job->nclass;
    for (uint32_t o = 0; o < job->noutputs; o++)
        if (job->outputs[o].role == GM_ROLE_PROBABILITY) write_shares(self, index, n, npix, outs[o]);
    for (size_t i = 0; i < n; i++) {
        const uint16_t *v = self->votes + i * nc;
        size_t p = index[i];
        double entropy = 0; /* minus the sum of q log2(q), in class order; a class without votes subtracts +0 */
        for (uint32_t k = 0; k < nc; k++) entropy -= self->plogp[v[k]];
        /* best: the first class with the most votes, 'top' of them; 'next': the most votes of any other class */
        uint32_t best = 0, top = v[0], next = 0;
        for (uint32_t k = 1; k < nc; k++) {
            uint32_t x = v[k];
            next = x > top ? top : x > next ? x : next;
            best = x > top ? k : best;
            top = x > top ? x : top;
        }
        for (uint32_t o = 0; o < job->noutputs; o++) {
            const gm_output_t *out = &job->outputs[o];
            switch (out->role) {
            case GM_ROLE_CLASS: put_class(out->dtype, outs[o], p, best); break;
            case GM_ROLE_ENTROPY: ((float *)outs[o])[p] = (float)(entropy == 0 ? 0.0 : entropy); break;
            case GM_ROLE_CONFUSION: ((float *)outs[o])[p] = self->confusion[top - next]; break;
            case GM_ROLE_NPROB_CLASS:
            case GM_ROLE_NPROB_PROB: {
                uint64_t taken[1024];
                memset(taken, 0, (nc + 63) / 64 * sizeof *taken);
                for (uint32_t r = 0; r < out->bands; r++) {
                    uint32_t pick = take_next(taken, nc, v, NULL);
                    if (out->role == GM_ROLE_NPROB_CLASS) put_class(out->dtype, outs[o], (size_t)r * npix + p, pick);
                    else ((float *)outs[o])[(size_t)r * npix + p] = self->share[v[pick]];
                }
                break;
            }
            default: break;
            }
        }
    }
}

/* Writes the class summaries of 'n' pixels from the mean of the models' probabilities (self->pmean, one row of
 * nclass per pixel): probability = the means, class = the first largest, entropy = -sum p log2 p over p > 0 (in
 * double, class order), confusion = 1 - (p1 - p2), the n most probable by mean (the lower code on ties). */
static void summarise_probs(gm_applier_t *self, const uint32_t *index, size_t n, size_t npix, void *const *outs) {
    const gm_job_t *job = self->job;
    uint32_t nc = job->nclass;
    for (size_t i = 0; i < n; i++) {
        const float *q = self->pmean + i * nc;
        size_t p = index[i];
        double entropy = 0;
        for (uint32_t k = 0; k < nc; k++)
            if (q[k] > 0) entropy -= (double)q[k] * log2((double)q[k]);
        uint32_t best = 0;
        float top = q[0], next = -1.0f;
        for (uint32_t k = 1; k < nc; k++) {
            float x = q[k];
            next = x > top ? top : x > next ? x : next;
            best = x > top ? k : best;
            top = x > top ? x : top;
        }
        for (uint32_t o = 0; o < job->noutputs; o++) {
            const gm_output_t *out = &job->outputs[o];
            switch (out->role) {
            case GM_ROLE_PROBABILITY:
                for (uint32_t k = 0; k < nc; k++) ((float *)outs[o])[(size_t)k * npix + p] = q[k];
                break;
            case GM_ROLE_CLASS: put_class(out->dtype, outs[o], p, best); break;
            case GM_ROLE_ENTROPY: ((float *)outs[o])[p] = (float)(entropy == 0 ? 0.0 : entropy); break;
            case GM_ROLE_CONFUSION: ((float *)outs[o])[p] = (float)(1.0 - ((double)top - (double)next)); break;
            case GM_ROLE_NPROB_CLASS:
            case GM_ROLE_NPROB_PROB: {
                uint64_t taken[1024];
                memset(taken, 0, (nc + 63) / 64 * sizeof *taken);
                for (uint32_t r = 0; r < out->bands; r++) {
                    uint32_t pick = take_next(taken, nc, NULL, q);
                    if (out->role == GM_ROLE_NPROB_CLASS) put_class(out->dtype, outs[o], (size_t)r * npix + p, pick);
                    else ((float *)outs[o])[(size_t)r * npix + p] = q[pick];
                }
                break;
            }
            default: break;
            }
        }
    }
}

/* Adds the class probabilities of 'n' rows of one model's output 'pred' (margins for softprob: XGBoost's
 * softmax) to self->psum, in double. */
static void add_model_probs(gm_applier_t *self, transform_t t, const float *pred, size_t n) {
    uint32_t nc = self->job->nclass;
    size_t per_row = t == OUT_SOFTPROB || t == OUT_SOFTMAX ? nc : 1;
    for (size_t i = 0; i < n; i++) {
        const float *r = pred + i * per_row;
        if (t == OUT_SOFTPROB || t == OUT_SOFTMAX) gm_forest_softmax(r, nc, self->probs);
        else classify_row(self, t, r);
        for (uint32_t k = 0; k < nc; k++) self->psum[i * nc + k] += self->probs[k];
    }
}

/* Compares doubles for qsort. */
static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Writes the regression summaries of 'n' pixels from their per-model values. */
static void summarise_values(gm_applier_t *self, const uint32_t *index, size_t n, size_t npix, void *const *outs) {
    const gm_job_t *job = self->job;
    uint32_t nm = self->nmodels;
    for (size_t i = 0; i < n; i++) {
        const float *v = self->values + i * nm;
        size_t p = index[i];
        double sum = 0, ss = 0;
        for (uint32_t m = 0; m < nm; m++) sum += v[m];
        double mean = sum / nm;
        for (uint32_t m = 0; m < nm; m++) ss += (v[m] - mean) * (v[m] - mean);
        for (uint32_t o = 0; o < job->noutputs; o++) {
            const gm_output_t *out = &job->outputs[o];
            if (out->role == GM_ROLE_MEAN) ((float *)outs[o])[p] = (float)mean;
            else if (out->role == GM_ROLE_SD) ((float *)outs[o])[p] = (float)sqrt(ss / nm);
            else if (out->role == GM_ROLE_QUANTILE) {
                for (uint32_t m = 0; m < nm; m++) self->sorted[m] = v[m];
                qsort(self->sorted, nm, sizeof *self->sorted, cmp_double);
                for (uint32_t q = 0; q < job->nquantiles; q++) {
                    /* numpy's default ("linear"): position q (n - 1) between the two nearest order statistics */
                    double h = job->quantiles[q] * (nm - 1);
                    uint32_t lo = (uint32_t)floor(h), hi = lo + 1 < nm ? lo + 1 : lo;
                    double x = self->sorted[lo] + (h - lo) * (self->sorted[hi] - self->sorted[lo]);
                    ((float *)outs[o])[(size_t)q * npix + p] = (float)x;
                }
            }
        }
    }
}

/* The class of each of 'n' rows of one model's output 'pred' (margins for softprob), into 'classes'. */
static void model_classes(gm_applier_t *self, transform_t t, const float *pred, size_t n, uint16_t *classes) {
    uint32_t nc = self->job->nclass;
    if (t == OUT_SOFTPROB) {
        softprob_classes(self, pred, n, nc, classes);
        return;
    }
    size_t per_row = t == OUT_SOFTMAX ? nc : 1;
    for (size_t i = 0; i < n; i++) classes[i] = (uint16_t)classify_row(self, t, pred + i * per_row);
}

/* Every model on the valid pixels, CHUNK at a time: votes or values, realisations, then the summaries. */
static int run_summarise(gm_applier_t *self, size_t nvalid, size_t npix, void *const *outs, char *err) {
    const gm_job_t *job = self->job;
    int cls = job->kind == GM_KIND_CLASSIFICATION;
    for (size_t start = 0; start < nvalid; start += CHUNK) {
        size_t n = nvalid - start < CHUNK ? nvalid - start : CHUNK;
        const uint32_t *index = self->index + start;
        if (cls) memset(self->votes, 0, n * job->nclass * sizeof *self->votes);
        if (self->psum) memset(self->psum, 0, n * job->nclass * sizeof *self->psum);
        for (uint32_t m = 0; m < self->nmodels; m++) {
            const float *pred;
            transform_t t = self->transform[m];
            /* softprob classes come from the margins: no exponentials for the common case */
            int margins = cls && t == OUT_SOFTPROB;
            int by_band = 0;
#ifdef GM_APPLY_X86
            if (margins && self->xcols && job->nclass <= COLS_MAX_CLASSES && !self->psum) {
                /* margins by class from the values by band: no gathers, no per-row stores, classes 16 rows at once */
                size_t groups;
                by_band = gm_model_margins_cols(self->models[m], self->xcols + start, self->xstride, n, job->nbands,
                                                &pred, &groups, err);
                if (by_band < 0) return -1;
                if (by_band && groups != job->nclass)
                    return gm_err(err, "model %u gave %zu margins per pixel, %u expected", m + 1, groups, job->nclass);
            }
#endif
            if (!by_band) {
                ensure_rows(self, npix, nvalid);
                if (predict_rows_as(self, m, self->rows + start * job->nbands, n, margins || t == OUT_SOFTMAX, &pred,
                                    err) < 0)
                    return -1;
            }
            int32_t ro = self->realisation_of[m];
            if (cls) {
                uint16_t *c = self->classes;
#ifdef GM_APPLY_X86
                if (by_band) softprob_classes_cols(self, pred, n, job->nclass, c);
                else
#endif
                    model_classes(self, t, pred, n, c);
                for (size_t i = 0; i < n; i++) self->votes[i * job->nclass + c[i]]++;
                if (self->psum) add_model_probs(self, t, pred, n);
                if (ro >= 0)
                    for (size_t i = 0; i < n; i++) put_class(job->outputs[ro].dtype, outs[ro], index[i], c[i]);
            } else {
                for (size_t i = 0; i < n; i++) self->values[i * self->nmodels + m] = pred[i];
                if (ro >= 0)
                    for (size_t i = 0; i < n; i++) ((float *)outs[ro])[index[i]] = pred[i];
            }
        }
        if (cls && self->psum) {
            size_t nv = n * job->nclass;
            for (size_t k = 0; k < nv; k++) self->pmean[k] = (float)(self->psum[k] / self->nmodels);
            summarise_probs(self, index, n, npix, outs);
        } else if (cls) {
            summarise_classes(self, index, n, npix, outs);
        } else {
            summarise_values(self, index, n, npix, outs);
        }
    }
    return 0;
}

/* Lists in self->index the pixels of the block where no band is NaN, in order. Returns how many. */
static size_t list_valid(gm_applier_t *self, const float *planes, size_t npix, uint32_t nb) {
    uint8_t *has_nan = self->has_nan;
    memset(has_nan, 0, npix);
    for (uint32_t b = 0; b < nb; b++) {
        const float *plane = planes + (size_t)b * npix;
        for (size_t p = 0; p < npix; p++) has_nan[p] |= isnan(plane[p]) != 0;
    }
    size_t n = 0;
    for (size_t p = 0; p < npix; p++) { /* n <= p: the write past the last valid pixel stays in the array */
        self->index[n] = (uint32_t)p;
        n += !has_nan[p];
    }
    return n;
}

/* Copies the bands of the 'n' listed pixels into dense rows of 'nb' values. */
static void gather_rows(gm_applier_t *self, const float *planes, size_t npix, uint32_t nb, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float *row = self->rows + i * nb;
        const float *band0 = planes + self->index[i];
        for (uint32_t b = 0; b < nb; b++) row[b] = band0[(size_t)b * npix];
    }
}

/* Gathers the block's rows for the models that take them, once per block. */
static void ensure_rows(gm_applier_t *self, size_t npix, size_t nvalid) {
    if (self->rows_ready) return;
    gather_rows(self, self->planes, npix, self->job->nbands, nvalid);
    self->rows_ready = 1;
}

/* Copies the bands of the 'n' listed pixels into self->cols, band by band. */
static void gather_cols(gm_applier_t *self, const float *planes, size_t npix, uint32_t nb, size_t n) {
    for (uint32_t b = 0; b < nb; b++) {
        float *col = self->cols + (size_t)b * self->cap;
        const float *band = planes + (size_t)b * npix;
        for (size_t i = 0; i < n; i++) col[i] = band[self->index[i]];
    }
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
        uint8_t *has_nan = realloc(self->has_nan, npix);
        if (!has_nan) return gm_err(err, "out of memory for a %ux%u block", w, h);
        self->has_nan = has_nan;
        if (self->avx512 && job->mode == GM_MODE_SUMMARISE && job->kind == GM_KIND_CLASSIFICATION) {
            float *cols = realloc(self->cols, npix * nb * sizeof(float));
            if (!cols) return gm_err(err, "out of memory for a %ux%u block", w, h);
            self->cols = cols;
        }
        self->cap = npix;
    }
    size_t nvalid = list_valid(self, planes, npix, nb);
    self->planes = planes;
    self->rows_ready = 0;
    self->xcols = NULL;
    if (self->cols && nvalid == npix) { /* no nodata: the planes are the values by band already */
        self->xcols = planes;
        self->xstride = npix;
    } else if (self->cols) {
        gather_cols(self, planes, npix, nb, nvalid);
        self->xcols = self->cols;
        self->xstride = self->cap;
    }
    /* every band of every output gets a value at each valid pixel: only a block with nodata needs the fill */
    if (nvalid < npix) fill_nodata(job, npix, outs);
    if (nvalid == 0) return 0;
    return job->mode == GM_MODE_PREDICT ? run_predict(self, nvalid, npix, outs, err)
                                        : run_summarise(self, nvalid, npix, outs, err);
}

const char *gm_applier_walk(const gm_applier_t *self) { return self->walk; }

void gm_applier_destroy(gm_applier_t **self_p) {
    assert(self_p);
    gm_applier_t *self = *self_p;
    if (!self) return;
    for (uint32_t m = 0; self->models && m < self->nmodels; m++) gm_model_destroy(&self->models[m]);
    free(self->models);
    free(self->transform);
    free(self->realisation_of);
    free(self->rows);
    free(self->cols);
    free(self->index);
    free(self->has_nan);
    free(self->probs);
    free(self->votes);
    free(self->psum);
    free(self->pmean);
    free(self->classes);
    free(self->share);
    free(self->plogp);
    free(self->confusion);
    free(self->values);
    free(self->sorted);
    free(self);
    *self_p = NULL;
}
