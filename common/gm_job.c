/* gm_job.c -- the job description: output plan, block plan, id, and its msgpack encoding. */
#include "gm_job.h"

#include <float.h>
#include <math.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "gm_log.h"
#include "gm_mpack.h"

#define CRS_MAX (64u * 1024u)
#define MODEL_MAX ((uint64_t)1 << 31)

void gm_job_clear(gm_job_t *job) {
    if (!job) return;
    free(job->crs);
    for (uint32_t i = 0; job->models && i < job->nmodels; i++) free(job->models[i].bytes);
    free(job->models);
    free(job->outputs);
    for (uint32_t i = 0; job->class_names && i < job->nclass; i++) free(job->class_names[i]);
    free(job->class_names);
    memset(job, 0, sizeof *job);
}

static const char *role_names[] = {NULL, "prediction", "class", "probability", "entropy", "confusion",
                                   "nprob_class", "nprob_probability", "mean", "sd", "quantile", "realisation"};

/* Appends one output to the job's plan. */
static void add_output(gm_job_t *job, const char *name, gm_output_role_t role, gm_dtype_t dt, uint32_t bands) {
    gm_output_t *o = &job->outputs[job->noutputs++];
    snprintf(o->name, sizeof o->name, "%s", name);
    o->role = role;
    o->dtype = dt;
    o->bands = bands;
    o->nodata = dt == GM_DT_U8 ? 255 : dt == GM_DT_U16 ? 65535 : -FLT_MAX;
}

int gm_job_iteration_width(uint32_t iterations) {
    int w = 3;
    for (uint32_t n = 1000; n <= iterations && w < 10; n *= 10) w++;
    return w;
}

int gm_job_plan_outputs(gm_job_t *job, char *err) {
    free(job->outputs);
    job->outputs = NULL;
    job->noutputs = 0;
    if (job->kind != GM_KIND_REGRESSION && job->kind != GM_KIND_CLASSIFICATION)
        return gm_err(err, "job kind %d is unknown", (int)job->kind);
    int cls = job->kind == GM_KIND_CLASSIFICATION;
    if (cls && (job->nclass < 2 || job->nclass > 65535))
        return gm_err(err, "a classification needs 2 to 65535 classes, the model has %u", job->nclass);
    gm_dtype_t class_dt = job->nclass <= 255 ? GM_DT_U8 : GM_DT_U16;
    if (job->mode == GM_MODE_TRAIN) return 0;
    if (job->mode != GM_MODE_PREDICT && job->mode != GM_MODE_SUMMARISE) return gm_err(err, "job mode %d is unknown", (int)job->mode);
    if (job->mode == GM_MODE_SUMMARISE && job->realisations && job->nmodels > GM_JOB_MAX_MODELS)
        return gm_err(err, "%u realisations are more than %d", job->nmodels, GM_JOB_MAX_MODELS);
    uint32_t cap = 8 + (job->mode == GM_MODE_SUMMARISE && job->realisations ? job->nmodels : 0);
    job->outputs = calloc(cap, sizeof *job->outputs);
    if (!job->outputs) return gm_err(err, "out of memory");
    if (job->mode == GM_MODE_PREDICT) {
        if (!cls) {
            add_output(job, "prediction", GM_ROLE_PREDICTION, GM_DT_F32, 1);
            return 0;
        }
        add_output(job, "class", GM_ROLE_CLASS, class_dt, 1);
        if (job->probabilities) add_output(job, "probability", GM_ROLE_PROBABILITY, GM_DT_F32, job->nclass);
        return 0;
    }
    if (job->nmodels < 1) return gm_err(err, "a summary needs at least one model");
    if (cls) {
        if (job->nprob > job->nclass) return gm_err(err, "nprob %u is above the %u classes", job->nprob, job->nclass);
        add_output(job, "probability", GM_ROLE_PROBABILITY, GM_DT_F32, job->nclass);
        add_output(job, "class", GM_ROLE_CLASS, class_dt, 1);
        add_output(job, "entropy", GM_ROLE_ENTROPY, GM_DT_F32, 1);
        add_output(job, "confusion", GM_ROLE_CONFUSION, GM_DT_F32, 1);
        if (job->nprob) {
            add_output(job, "nprob_class", GM_ROLE_NPROB_CLASS, class_dt, job->nprob);
            add_output(job, "nprob_probability", GM_ROLE_NPROB_PROB, GM_DT_F32, job->nprob);
        }
    } else {
        add_output(job, "mean", GM_ROLE_MEAN, GM_DT_F32, 1);
        add_output(job, "sd", GM_ROLE_SD, GM_DT_F32, 1);
        if (job->nquantiles) add_output(job, "quantiles", GM_ROLE_QUANTILE, GM_DT_F32, job->nquantiles);
    }
    if (job->realisations) {
        int width = gm_job_iteration_width(job->nmodels);
        for (uint32_t m = 0; m < job->nmodels; m++) {
            char name[32];
            snprintf(name, sizeof name, "realisation-%0*u", width, m + 1);
            add_output(job, name, GM_ROLE_REALISATION, cls ? class_dt : GM_DT_F32, 1);
            job->outputs[job->noutputs - 1].model = m;
        }
    }
    return 0;
}

uint32_t gm_job_blocks_x(const gm_job_t *job) { return (job->xsize + job->block_w - 1) / job->block_w; }
uint32_t gm_job_blocks_y(const gm_job_t *job) { return (job->ysize + job->block_h - 1) / job->block_h; }
uint32_t gm_job_nblocks(const gm_job_t *job) { return gm_job_blocks_x(job) * gm_job_blocks_y(job); }

int gm_job_block_window(const gm_job_t *job, uint32_t b, uint32_t *x, uint32_t *y, uint32_t *w, uint32_t *h) {
    uint32_t nbx = gm_job_blocks_x(job);
    if (b >= gm_job_nblocks(job)) return -1;
    *x = (b % nbx) * job->block_w;
    *y = (b / nbx) * job->block_h;
    *w = job->xsize - *x < job->block_w ? job->xsize - *x : job->block_w;
    *h = job->ysize - *y < job->block_h ? job->ysize - *y : job->block_h;
    return 0;
}

int gm_job_check_block(const gm_job_t *job, const gm_header_t *h, char *err) {
    uint32_t x, y, w, hh;
    if (h->job != job->id)
        return gm_err(err, "message names job %016llx, not the current job %016llx", (unsigned long long)h->job,
                      (unsigned long long)job->id);
    if (gm_job_block_window(job, h->block, &x, &y, &w, &hh) < 0)
        return gm_err(err, "block %u is outside the plan of %u blocks", h->block, gm_job_nblocks(job));
    if (x != h->x || y != h->y || w != h->w || hh != h->h)
        return gm_err(err, "block %u window %u,%u %ux%u differs from the plan's %u,%u %ux%u", h->block, h->x, h->y,
                      h->w, h->h, x, y, w, hh);
    return 0;
}

uint32_t gm_job_tiles_x(const gm_job_t *job) { return (job->xsize + job->tile - 1) / job->tile; }
uint32_t gm_job_tiles_y(const gm_job_t *job) { return (job->ysize + job->tile - 1) / job->tile; }
uint32_t gm_job_ntiles(const gm_job_t *job) { return gm_job_tiles_x(job) * gm_job_tiles_y(job); }

/* Blocks of side 'b' one tile of side 't' can overlap along one axis. */
static uint32_t blocks_along(uint32_t t, uint32_t b) {
    if (t % b == 0) return t / b;
    if (b % t == 0) return 1;
    return (t - 1) / b + 2; /* misaligned: one more */
}

uint32_t gm_job_blocks_per_tile(const gm_job_t *job) {
    uint32_t across = blocks_along(job->tile, job->block_w), down = blocks_along(job->tile, job->block_h);
    uint32_t nbx = gm_job_blocks_x(job), nby = gm_job_blocks_y(job);
    return (across < nbx ? across : nbx) * (down < nby ? down : nby);
}

uint32_t gm_job_blocks_per_tile_row(const gm_job_t *job) {
    uint32_t down = blocks_along(job->tile, job->block_h), nby = gm_job_blocks_y(job);
    return gm_job_blocks_x(job) * (down < nby ? down : nby);
}

uint32_t gm_job_min_inflight(const gm_job_t *job) {
    int nested = job->tile % job->block_w == 0 && job->tile % job->block_h == 0;
    uint32_t need = (nested ? gm_job_blocks_per_tile(job) : gm_job_blocks_per_tile_row(job)) + 1;
    uint32_t nb = gm_job_nblocks(job);
    return need < nb ? need : nb;
}

uint32_t gm_job_block_last_tile(const gm_job_t *job, uint32_t b) {
    uint32_t x, y, w, h;
    if (gm_job_block_window(job, b, &x, &y, &w, &h) < 0) return UINT32_MAX;
    return (y + h - 1) / job->tile * gm_job_tiles_x(job) + (x + w - 1) / job->tile;
}

void gm_job_block_order(const gm_job_t *job, uint32_t *order) {
    uint32_t nbx = gm_job_blocks_x(job), nby = gm_job_blocks_y(job), ntx = gm_job_tiles_x(job);
    uint32_t nty = gm_job_tiles_y(job), n = 0;
    /* A block is listed with the first tile it overlaps; walking the tiles in order, the blocks a tile
     * overlaps that no earlier tile did are those whose first tile it is. Blocks of one tile come out in
     * row-major order, the columns they span being contiguous within each block row. */
    for (uint32_t ty = 0; ty < nty; ty++)
        for (uint32_t tx = 0; tx < ntx; tx++) {
            uint32_t x0 = tx * job->tile, y0 = ty * job->tile;
            uint32_t x1 = x0 + job->tile < job->xsize ? x0 + job->tile : job->xsize;
            uint32_t y1 = y0 + job->tile < job->ysize ? y0 + job->tile : job->ysize;
            for (uint32_t by = y0 / job->block_h; by < nby && by * job->block_h < y1; by++)
                for (uint32_t bx = x0 / job->block_w; bx < nbx && bx * job->block_w < x1; bx++)
                    if ((by * job->block_h) / job->tile == ty && (bx * job->block_w) / job->tile == tx)
                        order[n++] = by * nbx + bx;
        }
}

size_t gm_job_output_bytes(const gm_output_t *o, uint32_t w, uint32_t h) {
    return (size_t)w * h * o->bands * gm_dtype_size(o->dtype);
}

const char *gm_job_model_format(const void *bytes, size_t size) {
    const unsigned char *p = bytes;
    if (size >= 2 && p[0] == '{') {
        size_t i = 1;
        while (i < size && (p[i] == ' ' || p[i] == '\n' || p[i] == '\r' || p[i] == '\t')) i++;
        return (i < size && (p[i] == '"' || p[i] == '}')) ? "json" : "ubj";
    }
    return "bin";
}

/* FNV-1a, 64 bits, continued from 'h'. */
static uint64_t fnv1a(uint64_t h, const void *data, size_t len) {
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

int gm_job_compute_id(gm_job_t *job, char *err) {
    void *buf;
    size_t len;
    /* the id names the work, not where it is served: endpoints are left out, so a restarted run keeps it */
    uint64_t saved = job->id;
    char eps[3][GM_JOB_EP_LEN];
    memcpy(eps[0], job->tasks_ep, GM_JOB_EP_LEN);
    memcpy(eps[1], job->results_ep, GM_JOB_EP_LEN);
    memcpy(eps[2], job->acks_ep, GM_JOB_EP_LEN);
    job->tasks_ep[0] = job->results_ep[0] = job->acks_ep[0] = '\0';
    job->id = 0;
    int rc = gm_job_encode(job, &buf, &len, err);
    job->id = saved;
    memcpy(job->tasks_ep, eps[0], GM_JOB_EP_LEN);
    memcpy(job->results_ep, eps[1], GM_JOB_EP_LEN);
    memcpy(job->acks_ep, eps[2], GM_JOB_EP_LEN);
    if (rc < 0) return -1;
    uint64_t h = fnv1a(0xcbf29ce484222325ULL, buf, len);
    free(buf);
    for (uint32_t i = 0; i < job->nmodels; i++) {
        if (!job->models[i].bytes) return gm_err(err, "model %u has no bytes attached", i);
        h = fnv1a(h, job->models[i].bytes, job->models[i].size);
    }
    job->id = h ? h : 1;
    return 0;
}

static void pack_key(msgpack_packer *pk, const char *key) { gm_mpack_pack_cstr(pk, key); }

static const char *mode_names[] = {NULL, "predict", "train", "summarise"};

int gm_job_encode(const gm_job_t *job, void **buf, size_t *len, char *err) {
    if (job->mode < GM_MODE_PREDICT || job->mode > GM_MODE_SUMMARISE) return gm_err(err, "job mode %d is unknown", (int)job->mode);
    if (job->mode != GM_MODE_TRAIN && (job->noutputs == 0 || job->noutputs > GM_JOB_MAX_OUTPUTS))
        return gm_err(err, "job has no outputs planned");
    for (uint32_t i = 0; i < job->noutputs; i++)
        if (!gm_dtype_name(job->outputs[i].dtype) || job->outputs[i].role < GM_ROLE_PREDICTION ||
            job->outputs[i].role > GM_ROLE_REALISATION)
            return gm_err(err, "job output \"%s\" has no sample type or role", job->outputs[i].name);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 31);
    pack_key(&pk, "v"); msgpack_pack_uint32(&pk, GM_WIRE_VERSION);
    pack_key(&pk, "t"); gm_mpack_pack_cstr(&pk, "job");
    pack_key(&pk, "id"); msgpack_pack_uint64(&pk, job->id);
    pack_key(&pk, "mode"); gm_mpack_pack_cstr(&pk, mode_names[job->mode]);
    pack_key(&pk, "xsize"); msgpack_pack_uint32(&pk, job->xsize);
    pack_key(&pk, "ysize"); msgpack_pack_uint32(&pk, job->ysize);
    pack_key(&pk, "gt");
    msgpack_pack_array(&pk, 6);
    for (int i = 0; i < 6; i++) msgpack_pack_double(&pk, job->gt[i]);
    pack_key(&pk, "crs"); gm_mpack_pack_cstr(&pk, job->crs ? job->crs : "");
    pack_key(&pk, "bands"); msgpack_pack_uint32(&pk, job->nbands);
    pack_key(&pk, "bw"); msgpack_pack_uint32(&pk, job->block_w);
    pack_key(&pk, "bh"); msgpack_pack_uint32(&pk, job->block_h);
    pack_key(&pk, "tile"); msgpack_pack_uint32(&pk, job->tile);
    pack_key(&pk, "kind");
    gm_mpack_pack_cstr(&pk, job->kind == GM_KIND_CLASSIFICATION ? "classification" : "regression");
    pack_key(&pk, "objective"); gm_mpack_pack_cstr(&pk, job->objective);
    pack_key(&pk, "nclass"); msgpack_pack_uint32(&pk, job->nclass);
    pack_key(&pk, "class_names");
    msgpack_pack_array(&pk, job->class_names ? job->nclass : 0);
    for (uint32_t i = 0; job->class_names && i < job->nclass; i++) gm_mpack_pack_cstr(&pk, job->class_names[i]);
    pack_key(&pk, "probabilities");
    if (job->probabilities) msgpack_pack_true(&pk); else msgpack_pack_false(&pk);
    pack_key(&pk, "nprob"); msgpack_pack_uint32(&pk, job->nprob);
    pack_key(&pk, "quantiles");
    msgpack_pack_array(&pk, job->nquantiles);
    for (uint32_t i = 0; i < job->nquantiles; i++) msgpack_pack_double(&pk, job->quantiles[i]);
    pack_key(&pk, "realisations");
    if (job->realisations) msgpack_pack_true(&pk); else msgpack_pack_false(&pk);
    pack_key(&pk, "summary"); gm_mpack_pack_cstr(&pk, job->summary_probs ? "probabilities" : "votes");
    pack_key(&pk, "feature_types"); gm_mpack_pack_cstr(&pk, job->feature_types);
    pack_key(&pk, "iterations"); msgpack_pack_uint32(&pk, job->iterations);
    pack_key(&pk, "rounds"); msgpack_pack_uint32(&pk, job->rounds);
    pack_key(&pk, "seed"); msgpack_pack_uint64(&pk, job->seed);
    pack_key(&pk, "params");
    msgpack_pack_array(&pk, job->nparams);
    for (uint32_t i = 0; i < job->nparams; i++) {
        msgpack_pack_array(&pk, 2);
        gm_mpack_pack_cstr(&pk, job->params[i].key);
        gm_mpack_pack_cstr(&pk, job->params[i].value);
    }
    pack_key(&pk, "outputs");
    msgpack_pack_array(&pk, job->noutputs);
    for (uint32_t i = 0; i < job->noutputs; i++) {
        const gm_output_t *o = &job->outputs[i];
        msgpack_pack_map(&pk, 6);
        pack_key(&pk, "name"); gm_mpack_pack_cstr(&pk, o->name);
        pack_key(&pk, "role"); gm_mpack_pack_cstr(&pk, role_names[o->role]);
        pack_key(&pk, "model"); msgpack_pack_uint32(&pk, o->model);
        pack_key(&pk, "dt"); gm_mpack_pack_cstr(&pk, gm_dtype_name(o->dtype));
        pack_key(&pk, "n"); msgpack_pack_uint32(&pk, o->bands);
        pack_key(&pk, "nodata"); msgpack_pack_double(&pk, o->nodata);
    }
    pack_key(&pk, "models");
    msgpack_pack_array(&pk, job->nmodels);
    for (uint32_t i = 0; i < job->nmodels; i++) {
        msgpack_pack_map(&pk, 2);
        pack_key(&pk, "format"); gm_mpack_pack_cstr(&pk, job->models[i].format);
        pack_key(&pk, "size"); msgpack_pack_uint64(&pk, job->models[i].size);
    }
    pack_key(&pk, "tasks"); gm_mpack_pack_cstr(&pk, job->tasks_ep);
    pack_key(&pk, "results"); gm_mpack_pack_cstr(&pk, job->results_ep);
    pack_key(&pk, "acks"); gm_mpack_pack_cstr(&pk, job->acks_ep);
    *buf = sb.data;
    *len = sb.size;
    return 0;
}

/* Finds 'name' in a NULL-led table of names. Returns its index, or -1. */
static int lookup(const char *const *names, int n, const char *name) {
    for (int i = 1; i < n; i++)
        if (!strcmp(names[i], name)) return i;
    return -1;
}

/* Reads a uint32 field in [lo, hi]. */
static int get_range(const msgpack_object *m, const char *key, uint32_t lo, uint32_t hi, uint32_t *out, char *err) {
    uint64_t v;
    if (gm_mpack_uint(m, key, hi, &v, err) < 0) return -1;
    if (v < lo) return gm_err(err, "job key \"%s\" is %llu, below the minimum %u", key, (unsigned long long)v, lo);
    *out = (uint32_t)v;
    return 0;
}

/* Decodes the optional "class_names" array: none, or one string (at most GM_JOB_CLASS_NAME_MAX bytes, no NUL)
 * per class. */
static int decode_class_names(const msgpack_object *m, gm_job_t *job, char *err) {
    const msgpack_object *arr = gm_mpack_get(m, "class_names");
    if (!arr) return 0;
    if (arr->type != MSGPACK_OBJECT_ARRAY || (arr->via.array.size != 0 && arr->via.array.size != job->nclass))
        return gm_err(err, "job key \"class_names\" is not an array of %u names", job->nclass);
    if (arr->via.array.size == 0) return 0;
    job->class_names = calloc((size_t)job->nclass + 1, sizeof *job->class_names); /* NULL-ended, a CSL list */
    if (!job->class_names) return gm_err(err, "out of memory");
    for (uint32_t i = 0; i < job->nclass; i++) {
        const msgpack_object *o = &arr->via.array.ptr[i];
        if (o->type != MSGPACK_OBJECT_STR || o->via.str.size > GM_JOB_CLASS_NAME_MAX ||
            memchr(o->via.str.ptr, 0, o->via.str.size))
            return gm_err(err, "job key \"class_names\" item %u is not a name of at most %d bytes", i,
                          GM_JOB_CLASS_NAME_MAX);
        if (!(job->class_names[i] = strndup(o->via.str.ptr, o->via.str.size))) return gm_err(err, "out of memory");
    }
    return 0;
}

/* Decodes the "outputs" array. */
static int decode_outputs(const msgpack_object *m, gm_job_t *job, char *err) {
    const msgpack_object *arr = gm_mpack_get(m, "outputs");
    if (!arr || arr->type != MSGPACK_OBJECT_ARRAY) return gm_err(err, "job key \"outputs\" is missing or not an array");
    uint32_t min = job->mode == GM_MODE_TRAIN ? 0 : 1;
    if (arr->via.array.size < min || arr->via.array.size > GM_JOB_MAX_OUTPUTS)
        return gm_err(err, "job key \"outputs\" has %u entries, not %u to %d", arr->via.array.size, min, GM_JOB_MAX_OUTPUTS);
    if (arr->via.array.size == 0) return 0;
    job->outputs = calloc(arr->via.array.size, sizeof *job->outputs);
    if (!job->outputs) return gm_err(err, "out of memory");
    job->noutputs = arr->via.array.size;
    for (uint32_t i = 0; i < job->noutputs; i++) {
        const msgpack_object *o = &arr->via.array.ptr[i];
        gm_output_t *out = &job->outputs[i];
        char dt[8];
        if (o->type != MSGPACK_OBJECT_MAP) return gm_err(err, "job output %u is not a map", i);
        if (gm_mpack_str(o, "name", out->name, sizeof out->name, err) < 0) return -1;
        for (const char *c = out->name; *c; c++)
            if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '_' || *c == '-'))
                { char shown[32]; return gm_err(err, "job output name \"%s\" may hold only letters, digits, '_' and '-'",
                                                gm_mpack_printable(out->name, strlen(out->name), shown, sizeof shown)); }
        if (!out->name[0]) return gm_err(err, "job output %u has an empty name", i);
        char role[24];
        if (gm_mpack_str(o, "role", role, sizeof role, err) < 0) return -1;
        int r = lookup(role_names, (int)(sizeof role_names / sizeof *role_names), role);
        if (r < 0) return gm_err(err, "job output \"%s\" has an unknown role", out->name);
        out->role = (gm_output_role_t)r;
        if (get_range(o, "model", 0, GM_JOB_MAX_MODELS - 1, &out->model, err) < 0) return -1;
        if (gm_mpack_str(o, "dt", dt, sizeof dt, err) < 0) return -1;
        if (gm_dtype_parse(dt, strlen(dt), &out->dtype) < 0) {
            char shown[8];
            return gm_err(err, "job output \"%s\" has unknown type \"%s\"", out->name,
                          gm_mpack_printable(dt, strlen(dt), shown, sizeof shown));
        }
        if (get_range(o, "n", 1, GM_WIRE_MAX_BANDS, &out->bands, err) < 0) return -1;
        if (gm_mpack_double(o, "nodata", &out->nodata, err) < 0) return -1;
    }
    return 0;
}

/* Decodes the "models" array; bytes are attached later. */
static int decode_models(const msgpack_object *m, gm_job_t *job, char *err) {
    const msgpack_object *arr = gm_mpack_get(m, "models");
    if (!arr || arr->type != MSGPACK_OBJECT_ARRAY) return gm_err(err, "job key \"models\" is missing or not an array");
    uint32_t min = job->mode == GM_MODE_TRAIN ? 0 : 1;
    if (arr->via.array.size < min || arr->via.array.size > GM_JOB_MAX_MODELS)
        return gm_err(err, "job key \"models\" has %u entries, not %u to %d", arr->via.array.size, min, GM_JOB_MAX_MODELS);
    if (arr->via.array.size == 0) return 0;
    job->models = calloc(arr->via.array.size, sizeof *job->models);
    if (!job->models) return gm_err(err, "out of memory");
    job->nmodels = arr->via.array.size;
    for (uint32_t i = 0; i < job->nmodels; i++) {
        const msgpack_object *o = &arr->via.array.ptr[i];
        uint64_t size;
        if (o->type != MSGPACK_OBJECT_MAP) return gm_err(err, "job model %u is not a map", i);
        if (gm_mpack_str(o, "format", job->models[i].format, sizeof job->models[i].format, err) < 0) return -1;
        const char *f = job->models[i].format;
        if (strcmp(f, "json") && strcmp(f, "ubj") && strcmp(f, "bin"))
            return gm_err(err, "job model %u format is not json, ubj or bin", i);
        if (gm_mpack_uint(o, "size", MODEL_MAX, &size, err) < 0) return -1;
        if (size == 0) return gm_err(err, "job model %u is empty", i);
        job->models[i].size = (size_t)size;
    }
    return 0;
}

/* Checks that a decoded job's outputs and models are exactly what its mode, kind and options call for, so a
 * worker never computes into an output of another shape. Returns 0, or -1 with 'err'. */
static int check_plan(const gm_job_t *job, char *err) {
    if (job->mode == GM_MODE_TRAIN) {
        if (job->noutputs || job->nmodels) return gm_err(err, "a training job carries outputs or models");
        if (job->kind == GM_KIND_CLASSIFICATION && job->nclass < 2) return gm_err(err, "a classification needs 2 classes");
        return 0;
    }
    if (job->mode == GM_MODE_PREDICT && job->nmodels != 1)
        return gm_err(err, "a predict job applies one model, not %u", job->nmodels);
    gm_job_t want;
    memset(&want, 0, sizeof want);
    want.mode = job->mode;
    want.kind = job->kind;
    want.nclass = job->nclass;
    want.probabilities = job->probabilities;
    want.nprob = job->nprob;
    want.nquantiles = job->nquantiles;
    want.realisations = job->realisations;
    want.nmodels = job->nmodels;
    int rc = gm_job_plan_outputs(&want, err);
    if (rc == 0 && want.noutputs != job->noutputs)
        rc = gm_err(err, "job has %u outputs where its options call for %u", job->noutputs, want.noutputs);
    for (uint32_t i = 0; rc == 0 && i < job->noutputs; i++) {
        const gm_output_t *a = &job->outputs[i], *b = &want.outputs[i];
        if (strcmp(a->name, b->name) || a->role != b->role || a->model != b->model || a->dtype != b->dtype ||
            a->bands != b->bands || !(a->nodata == b->nodata))
            rc = gm_err(err, "job output %u (\"%s\") is not the \"%s\" its options call for", i, a->name, b->name);
    }
    free(want.outputs);
    return rc;
}

int gm_job_decode(const void *buf, size_t len, gm_job_t *job, char *err) {
    msgpack_unpacked res;
    char kind[16];
    memset(job, 0, sizeof *job);
    int rc = -1;
    if (gm_mpack_unpack_map(buf, len, GM_WIRE_MAX_HEADER, &res, err) < 0) goto out;
    const msgpack_object *m = &res.data;
    uint32_t version;
    gm_msg_kind_t mk;
    if (gm_wire_peek(buf, len, &version, &mk, err) < 0) goto out;
    if (mk != GM_MSG_JOB) { gm_err(err, "message is a \"%s\", not a job", gm_msg_kind_name(mk)); goto out; }
    if (gm_mpack_uint(m, "id", UINT64_MAX, &job->id, err) < 0) goto out;
    char mode[16];
    if (gm_mpack_str(m, "mode", mode, sizeof mode, err) < 0) goto out;
    int mi = lookup(mode_names, 4, mode);
    if (mi < 0) { gm_err(err, "job key \"mode\" is not predict, train or summarise"); goto out; }
    job->mode = (gm_job_mode_t)mi;
    if (get_range(m, "xsize", 1, INT32_MAX, &job->xsize, err) < 0) goto out;
    if (get_range(m, "ysize", 1, INT32_MAX, &job->ysize, err) < 0) goto out;
    const msgpack_object *gt = gm_mpack_get(m, "gt");
    if (!gt || gt->type != MSGPACK_OBJECT_ARRAY || gt->via.array.size != 6)
        { gm_err(err, "job key \"gt\" is not an array of 6 numbers"); goto out; }
    for (int i = 0; i < 6; i++) {
        const msgpack_object *v = &gt->via.array.ptr[i];
        if (v->type == MSGPACK_OBJECT_FLOAT64 || v->type == MSGPACK_OBJECT_FLOAT32) job->gt[i] = v->via.f64;
        else if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) job->gt[i] = (double)v->via.u64;
        else if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) job->gt[i] = (double)v->via.i64;
        else { gm_err(err, "job key \"gt\" item %d is not a number", i); goto out; }
        if (!isfinite(job->gt[i])) { gm_err(err, "job key \"gt\" item %d is not finite", i); goto out; }
    }
    job->crs = malloc(CRS_MAX);
    if (!job->crs) { gm_err(err, "out of memory"); goto out; }
    if (gm_mpack_str(m, "crs", job->crs, CRS_MAX, err) < 0) goto out;
    if (get_range(m, "bands", 1, GM_WIRE_MAX_BANDS, &job->nbands, err) < 0) goto out;
    if (get_range(m, "bw", 1, GM_WIRE_MAX_BLOCK, &job->block_w, err) < 0) goto out;
    if (get_range(m, "bh", 1, GM_WIRE_MAX_BLOCK, &job->block_h, err) < 0) goto out;
    if (get_range(m, "tile", 16, GM_WIRE_MAX_BLOCK, &job->tile, err) < 0) goto out;
    if (job->tile % 16) { gm_err(err, "job key \"tile\" is %u, not a multiple of 16", job->tile); goto out; }
    if (gm_mpack_str(m, "kind", kind, sizeof kind, err) < 0) goto out;
    if (strcmp(kind, "regression") == 0) job->kind = GM_KIND_REGRESSION;
    else if (strcmp(kind, "classification") == 0) job->kind = GM_KIND_CLASSIFICATION;
    else { gm_err(err, "job key \"kind\" is \"%s\", not regression or classification", kind); goto out; }
    if (gm_mpack_str(m, "objective", job->objective, sizeof job->objective, err) < 0) goto out;
    if (get_range(m, "nclass", 0, 65535, &job->nclass, err) < 0) goto out;
    if (decode_class_names(m, job, err) < 0) goto out;
    if (job->kind == GM_KIND_CLASSIFICATION && job->nclass < 2)
        { gm_err(err, "job is a classification with %u classes", job->nclass); goto out; }
    if (gm_mpack_bool(m, "probabilities", &job->probabilities, err) < 0) goto out;
    if (get_range(m, "nprob", 0, 65535, &job->nprob, err) < 0) goto out;
    const msgpack_object *q = gm_mpack_get(m, "quantiles");
    if (!q || q->type != MSGPACK_OBJECT_ARRAY || q->via.array.size > GM_JOB_MAX_QUANTILES)
        { gm_err(err, "job key \"quantiles\" is not an array of at most %d numbers", GM_JOB_MAX_QUANTILES); goto out; }
    job->nquantiles = q->via.array.size;
    for (uint32_t i = 0; i < job->nquantiles; i++) {
        const msgpack_object *v = &q->via.array.ptr[i];
        double d = v->type == MSGPACK_OBJECT_FLOAT64 || v->type == MSGPACK_OBJECT_FLOAT32 ? v->via.f64
                   : v->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? (double)v->via.u64 : NAN;
        if (!(d >= 0 && d <= 1)) { gm_err(err, "job key \"quantiles\" item %u is not a number in [0, 1]", i); goto out; }
        job->quantiles[i] = d;
    }
    if (gm_mpack_bool(m, "realisations", &job->realisations, err) < 0) goto out;
    if (gm_mpack_get(m, "feature_types")) { /* optional: absent means every feature a number */
        if (gm_mpack_str(m, "feature_types", job->feature_types, sizeof job->feature_types, err) < 0) goto out;
        size_t nt = strlen(job->feature_types);
        if (nt && (nt != job->nbands || strspn(job->feature_types, "qc") != nt))
            { gm_err(err, "job key \"feature_types\" is not one q or c per band (%u bands)", job->nbands); goto out; }
    }
    if (gm_mpack_get(m, "summary")) { /* optional: absent means votes */
        char summary[16];
        if (gm_mpack_str(m, "summary", summary, sizeof summary, err) < 0) goto out;
        if (strcmp(summary, "votes") && strcmp(summary, "probabilities"))
            { gm_err(err, "job key \"summary\" is \"%s\", not votes or probabilities", summary); goto out; }
        job->summary_probs = !strcmp(summary, "probabilities");
    }
    if (get_range(m, "iterations", 0, GM_JOB_MAX_MODELS, &job->iterations, err) < 0) goto out;
    if (get_range(m, "rounds", 0, 100000, &job->rounds, err) < 0) goto out;
    if (gm_mpack_uint(m, "seed", UINT64_MAX, &job->seed, err) < 0) goto out;
    const msgpack_object *pa = gm_mpack_get(m, "params");
    if (!pa || pa->type != MSGPACK_OBJECT_ARRAY || pa->via.array.size > GM_JOB_MAX_PARAMS)
        { gm_err(err, "job key \"params\" is not an array of at most %d pairs", GM_JOB_MAX_PARAMS); goto out; }
    job->nparams = pa->via.array.size;
    for (uint32_t i = 0; i < job->nparams; i++) {
        const msgpack_object *kv = &pa->via.array.ptr[i];
        if (kv->type != MSGPACK_OBJECT_ARRAY || kv->via.array.size != 2 || kv->via.array.ptr[0].type != MSGPACK_OBJECT_STR ||
            kv->via.array.ptr[1].type != MSGPACK_OBJECT_STR || kv->via.array.ptr[0].via.str.size >= sizeof job->params[i].key ||
            kv->via.array.ptr[1].via.str.size >= sizeof job->params[i].value)
            { gm_err(err, "job key \"params\" item %u is not a pair of short strings", i); goto out; }
        memcpy(job->params[i].key, kv->via.array.ptr[0].via.str.ptr, kv->via.array.ptr[0].via.str.size);
        memcpy(job->params[i].value, kv->via.array.ptr[1].via.str.ptr, kv->via.array.ptr[1].via.str.size);
        if (strlen(job->params[i].key) != kv->via.array.ptr[0].via.str.size ||
            strlen(job->params[i].value) != kv->via.array.ptr[1].via.str.size)
            { gm_err(err, "job key \"params\" item %u holds a NUL byte", i); goto out; }
    }
    if (decode_outputs(m, job, err) < 0) goto out;
    if (decode_models(m, job, err) < 0) goto out;
    if (gm_mpack_str(m, "tasks", job->tasks_ep, sizeof job->tasks_ep, err) < 0) goto out;
    if (gm_mpack_str(m, "results", job->results_ep, sizeof job->results_ep, err) < 0) goto out;
    if (gm_mpack_str(m, "acks", job->acks_ep, sizeof job->acks_ep, err) < 0) goto out;
    if (check_plan(job, err) < 0) goto out;
    if ((uint64_t)gm_job_blocks_x(job) * gm_job_blocks_y(job) > UINT32_MAX - 1) { gm_err(err, "job has too many blocks"); goto out; }
    rc = 0;
out:
    msgpack_unpacked_destroy(&res);
    if (rc < 0) gm_job_clear(job);
    return rc;
}

int gm_job_attach_model(gm_job_t *job, uint32_t i, const void *bytes, size_t size, char *err) {
    if (i >= job->nmodels) return gm_err(err, "model frame %u is beyond the %u models announced", i, job->nmodels);
    if (size != job->models[i].size)
        return gm_err(err, "model frame %u is %zu bytes, the header announced %zu", i, size, job->models[i].size);
    void *copy = malloc(size);
    if (!copy) return gm_err(err, "out of memory for model %u (%zu bytes)", i, size);
    memcpy(copy, bytes, size);
    free(job->models[i].bytes);
    job->models[i].bytes = copy;
    return 0;
}

int gm_job_from_msg(gm_msg_t *msg, gm_job_t *job, char *err) {
    memset(job, 0, sizeof *job);
    if (msg->nframes < 1) return gm_err(err, "job message has no frames");
    if (gm_job_decode(gm_msg_data(msg, 0), gm_msg_size(msg, 0), job, err) < 0) return -1;
    if (msg->nframes != 1 + (size_t)job->nmodels) {
        gm_err(err, "job announces %u models but carries %zu frames", job->nmodels, msg->nframes - 1);
        gm_job_clear(job);
        return -1;
    }
    for (uint32_t i = 0; i < job->nmodels; i++)
        if (gm_job_attach_model(job, i, gm_msg_data(msg, i + 1), gm_msg_size(msg, i + 1), err) < 0) {
            gm_job_clear(job);
            return -1;
        }
    return 0;
}

gm_msg_t *gm_job_hello_msg(const char *role) {
    gm_header_t h = {.kind = GM_MSG_HELLO};
    snprintf(h.role, sizeof h.role, "%s", role);
    void *buf;
    size_t len;
    gm_msg_t *msg = gm_msg_new();
    if (!msg || gm_wire_encode(&h, &buf, &len, NULL) < 0 || gm_msg_add_owned(msg, buf, len) < 0) {
        gm_msg_destroy(&msg);
        return NULL;
    }
    return msg;
}
