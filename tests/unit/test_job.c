/* test_job.c -- unit tests of the job description (gm_job.h): output plans of every mode, block plan, id,
 * the "job" header's round trip for predict, train and summarise jobs, model attachment, and the rejection of
 * malformed job headers and of jobs whose outputs or models are not what their own options plan.
 *
 * The reference job is a 300 x 217 grid of 4 covariates in 128 x 128 blocks whose 2 classification models
 * (5 classes) are summarised with the 2 most probable classes and one realisation per model. Every expected
 * value below is worked out by hand in the comment beside it. Malformed headers are packed by hand with
 * msgpack-c's packer, so they do not depend on the encoder. */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>

#include "gm_job.h"
#include "gm_log.h"
#include "gm_msg.h"
#include "gm_wire.h"

#define NITEMS(a) (sizeof(a) / sizeof((a)[0]))

static const char CRS_WKT[] =
    "PROJCS[\"WGS 84 / UTM zone 33N\",GEOGCS[\"WGS 84\",DATUM[\"WGS_1984\",SPHEROID[\"WGS 84\",6378137,"
    "298.257223563]],PRIMEM[\"Greenwich\",0],UNIT[\"degree\",0.0174532925199433]],"
    "PROJECTION[\"Transverse_Mercator\"],PARAMETER[\"central_meridian\",15],PARAMETER[\"scale_factor\",0.9996],"
    "PARAMETER[\"false_easting\",500000],UNIT[\"metre\",1],AUTHORITY[\"EPSG\",\"32633\"]]";
static const double GT[6] = {500000.0, 30.0, 0.0, 4200000.0, 0.0, -30.0};
/* Model 0: XGBoost JSON, 14 bytes: { " learner(7) " : { } } = 1+1+7+1+1+1+1+1. */
static const char MODEL0[] = "{\"learner\":{}}";
/* Model 1: XGBoost UBJSON, 20 bytes: { L + 8-byte length 7 + learner(7) + { } + } = 1+1+8+7+2+1. */
static const char MODEL1[] = "{L\0\0\0\0\0\0\0\x07learner{}}";
#define MODEL0_SIZE 14
#define MODEL1_SIZE 20
_Static_assert(sizeof MODEL0 - 1 == MODEL0_SIZE, "model 0 is 14 bytes");
_Static_assert(sizeof MODEL1 - 1 == MODEL1_SIZE, "model 1 is 20 bytes");
#define TASKS_EP "tcp://127.0.0.1:5555"
#define RESULTS_EP "tcp://127.0.0.1:5556"
#define ACKS_EP "ipc:///tmp/gridmill/acks"
/* Minus float32's largest finite value, (2 - 2^-23) * 2^127, to 17 digits: the nodata of f32 outputs. */
#define F32_LOWEST (-3.4028234663852886e38)

/* Fails unless 'err' holds 'needle'. */
static void assert_err_has(const char *err, const char *needle) {
    if (!strstr(err, needle)) fail_msg("error \"%s\" does not mention '%s'", err, needle);
}

/* Returns a malloc'd copy of 'len' bytes (one byte when 'len' is 0). */
static void *copy_bytes(const void *data, size_t len) {
    void *p = malloc(len ? len : 1);
    assert_non_null(p);
    if (len) memcpy(p, data, len);
    return p;
}

/* Gives 'job' 'n' models of 'size' bytes each, all of format 'format', with bytes attached ('x' repeated). */
static void give_models(gm_job_t *job, uint32_t n, const char *format, size_t size) {
    job->nmodels = n;
    job->models = calloc(n, sizeof *job->models);
    assert_non_null(job->models);
    for (uint32_t i = 0; i < n; i++) {
        snprintf(job->models[i].format, sizeof job->models[i].format, "%s", format);
        job->models[i].bytes = malloc(size);
        assert_non_null(job->models[i].bytes);
        memset(job->models[i].bytes, 'x', size);
        job->models[i].size = size;
    }
}

/* Fills the reference job: a summary of 2 models, outputs planned, both models attached. */
static void make_job(gm_job_t *job) {
    char err[GM_ERR_LEN] = "";
    memset(job, 0, sizeof *job);
    job->mode = GM_MODE_SUMMARISE;
    job->xsize = 300;
    job->ysize = 217;
    memcpy(job->gt, GT, sizeof GT);
    job->crs = copy_bytes(CRS_WKT, sizeof CRS_WKT);
    job->nbands = 4;
    job->block_w = 128;
    job->block_h = 128;
    job->tile = 256;
    job->kind = GM_KIND_CLASSIFICATION;
    strcpy(job->objective, "multi:softprob");
    job->nclass = 5;
    job->nprob = 2;
    job->realisations = 1;
    job->nmodels = 2;
    job->models = calloc(2, sizeof *job->models);
    assert_non_null(job->models);
    strcpy(job->models[0].format, "json");
    job->models[0].bytes = copy_bytes(MODEL0, MODEL0_SIZE);
    job->models[0].size = MODEL0_SIZE;
    strcpy(job->models[1].format, "ubj");
    job->models[1].bytes = copy_bytes(MODEL1, MODEL1_SIZE);
    job->models[1].size = MODEL1_SIZE;
    if (gm_job_plan_outputs(job, err) != 0) fail_msg("plan_outputs: %s", err);
    strcpy(job->tasks_ep, TASKS_EP);
    strcpy(job->results_ep, RESULTS_EP);
    strcpy(job->acks_ep, ACKS_EP);
}

/* Asserts one output's fields. */
static void assert_output(const gm_output_t *o, const char *name, gm_output_role_t role, uint32_t model, gm_dtype_t dt,
                          uint32_t bands, double nodata) {
    assert_string_equal(o->name, name);
    if (o->role != role) fail_msg("output %s: role %d, expected %d", name, (int)o->role, (int)role);
    if (o->model != model) fail_msg("output %s: model %u, expected %u", name, o->model, model);
    if (o->dtype != dt) fail_msg("output %s: type %d, expected %d", name, (int)o->dtype, (int)dt);
    if (o->bands != bands) fail_msg("output %s: %u bands, expected %u", name, o->bands, bands);
    if (o->nodata != nodata) fail_msg("output %s: nodata %.17g, expected %.17g", name, o->nodata, nodata);
}

/* Asserts the reference plan: a summary of 5 classes with 2 most probable classes and 2 realisations.
 * probability (f32, 5 bands), class, entropy, confusion, nprob_class (u8, 2), nprob_probability (f32, 2),
 * realisation-001 (model 0), realisation-002 (model 1): 8 outputs. Classes 0..4 fit u8, nodata 255. */
static void assert_reference_outputs(const gm_job_t *job) {
    assert_int_equal(job->noutputs, 8);
    assert_non_null(job->outputs);
    assert_output(&job->outputs[0], "probability", GM_ROLE_PROBABILITY, 0, GM_DT_F32, 5, F32_LOWEST);
    assert_output(&job->outputs[1], "class", GM_ROLE_CLASS, 0, GM_DT_U8, 1, 255.0);
    assert_output(&job->outputs[2], "entropy", GM_ROLE_ENTROPY, 0, GM_DT_F32, 1, F32_LOWEST);
    assert_output(&job->outputs[3], "confusion", GM_ROLE_CONFUSION, 0, GM_DT_F32, 1, F32_LOWEST);
    assert_output(&job->outputs[4], "nprob_class", GM_ROLE_NPROB_CLASS, 0, GM_DT_U8, 2, 255.0);
    assert_output(&job->outputs[5], "nprob_probability", GM_ROLE_NPROB_PROB, 0, GM_DT_F32, 2, F32_LOWEST);
    assert_output(&job->outputs[6], "realisation-001", GM_ROLE_REALISATION, 0, GM_DT_U8, 1, 255.0);
    assert_output(&job->outputs[7], "realisation-002", GM_ROLE_REALISATION, 1, GM_DT_U8, 1, 255.0);
}

/* Asserts the reference job's fields other than the id and the model bytes. */
static void assert_reference_fields(const gm_job_t *job) {
    assert_int_equal(job->mode, GM_MODE_SUMMARISE);
    assert_int_equal(job->xsize, 300);
    assert_int_equal(job->ysize, 217);
    for (int i = 0; i < 6; i++)
        if (job->gt[i] != GT[i]) fail_msg("gt[%d] is %.17g, expected %.17g", i, job->gt[i], GT[i]);
    assert_non_null(job->crs);
    assert_string_equal(job->crs, CRS_WKT);
    assert_int_equal(job->nbands, 4);
    assert_int_equal(job->block_w, 128);
    assert_int_equal(job->block_h, 128);
    assert_int_equal(job->tile, 256);
    assert_int_equal(job->kind, GM_KIND_CLASSIFICATION);
    assert_string_equal(job->objective, "multi:softprob");
    assert_int_equal(job->nclass, 5);
    assert_int_equal(job->probabilities, 0);
    assert_int_equal(job->nprob, 2);
    assert_int_equal(job->nquantiles, 0);
    assert_int_equal(job->realisations, 1);
    assert_int_equal(job->iterations, 0);
    assert_int_equal(job->rounds, 0);
    assert_true(job->seed == 0);
    assert_int_equal(job->nparams, 0);
    assert_reference_outputs(job);
    assert_int_equal(job->nmodels, 2);
    assert_non_null(job->models);
    assert_string_equal(job->models[0].format, "json");
    assert_int_equal(job->models[0].size, 14);
    assert_string_equal(job->models[1].format, "ubj");
    assert_int_equal(job->models[1].size, 20);
    assert_string_equal(job->tasks_ep, TASKS_EP);
    assert_string_equal(job->results_ep, RESULTS_EP);
    assert_string_equal(job->acks_ep, ACKS_EP);
}

/* Asserts that a job is all zero, as gm_job_decode leaves it on failure. */
static void assert_job_cleared(const gm_job_t *job) {
    static const gm_job_t zero;
    assert_null(job->crs);
    assert_null(job->models);
    assert_null(job->outputs);
    assert_int_equal(job->nmodels, 0);
    assert_int_equal(job->noutputs, 0);
    assert_memory_equal(job, &zero, sizeof zero);
}

/* Encodes 'in' and decodes an exact-size copy of the frame into 'out'. Returns what gm_job_decode returns,
 * with its error in 'err'. */
static int encode_decode(const gm_job_t *in, gm_job_t *out, char *err) {
    void *buf = NULL;
    size_t len = 0;
    if (gm_job_encode(in, &buf, &len, err) != 0) fail_msg("encode: %s", err);
    assert_true(len > 0 && len <= GM_WIRE_MAX_HEADER);
    void *exact = copy_bytes(buf, len);
    free(buf);
    memset(out, 0x5A, sizeof *out);
    int rc = gm_job_decode(exact, len, out, err);
    free(exact);
    return rc;
}

/* Encodes 'in' and decodes the frame into 'out', failing the test if the decoder refuses it. */
static void job_round_trip(const gm_job_t *in, gm_job_t *out) {
    char err[GM_ERR_LEN] = "";
    if (encode_decode(in, out, err) != 0) fail_msg("decode: %s", err);
}

/* Encodes 'in' (the encoder does not check the plan) and asserts that the decoder refuses the frame, mentions
 * 'needle' and 'also' (unless NULL), and leaves the job cleared. */
static void expect_encoded_reject(const gm_job_t *in, const char *needle, const char *also) {
    char err[GM_ERR_LEN] = "";
    gm_job_t got;
    if (encode_decode(in, &got, err) != -1) {
        gm_job_clear(&got);
        fail_msg("an inconsistent job decoded; expected a refusal mentioning '%s'", needle);
    }
    assert_err_has(err, needle);
    if (also) assert_err_has(err, also);
    assert_job_cleared(&got);
}

/* ---- hand-built job headers ---- */

typedef void (*pack_fn)(msgpack_packer *pk);

/* Packs a NUL-terminated string. */
static void pstr(msgpack_packer *pk, const char *s) {
    msgpack_pack_str(pk, strlen(s));
    msgpack_pack_str_body(pk, s, strlen(s));
}

/* Packs one output map. */
static void pack_output(msgpack_packer *pk, const char *name, const char *role, uint32_t model, const char *dt,
                        uint32_t n, double nodata) {
    msgpack_pack_map(pk, 6);
    pstr(pk, "name");
    pstr(pk, name);
    pstr(pk, "role");
    pstr(pk, role);
    pstr(pk, "model");
    msgpack_pack_uint32(pk, model);
    pstr(pk, "dt");
    pstr(pk, dt);
    pstr(pk, "n");
    msgpack_pack_uint32(pk, n);
    pstr(pk, "nodata");
    msgpack_pack_double(pk, nodata);
}

/* Packs one model map. */
static void pack_model(msgpack_packer *pk, const char *format, uint64_t size) {
    msgpack_pack_map(pk, 2);
    pstr(pk, "format");
    pstr(pk, format);
    pstr(pk, "size");
    msgpack_pack_uint64(pk, size);
}

static void v_1(msgpack_packer *pk) { msgpack_pack_uint8(pk, 1); }
static void t_job(msgpack_packer *pk) { pstr(pk, "job"); }
static void id_ref(msgpack_packer *pk) { msgpack_pack_uint64(pk, 0x1122334455667788ULL); }
static void mode_ref(msgpack_packer *pk) { pstr(pk, "summarise"); }
static void xsize_ref(msgpack_packer *pk) { msgpack_pack_uint16(pk, 300); }
static void ysize_ref(msgpack_packer *pk) { msgpack_pack_uint16(pk, 217); }
static void gt_ref(msgpack_packer *pk) {
    msgpack_pack_array(pk, 6);
    for (int i = 0; i < 6; i++) msgpack_pack_double(pk, GT[i]);
}
static void crs_ref(msgpack_packer *pk) { pstr(pk, CRS_WKT); }
static void bands_ref(msgpack_packer *pk) { msgpack_pack_uint8(pk, 4); }
static void bw_ref(msgpack_packer *pk) { msgpack_pack_uint8(pk, 128); }
static void bh_ref(msgpack_packer *pk) { msgpack_pack_uint8(pk, 128); }
static void tile_ref(msgpack_packer *pk) { msgpack_pack_uint16(pk, 256); }
static void kind_ref(msgpack_packer *pk) { pstr(pk, "classification"); }
static void objective_ref(msgpack_packer *pk) { pstr(pk, "multi:softprob"); }
static void nclass_ref(msgpack_packer *pk) { msgpack_pack_uint8(pk, 5); }
static void probabilities_ref(msgpack_packer *pk) { msgpack_pack_false(pk); }
static void nprob_ref(msgpack_packer *pk) { msgpack_pack_uint8(pk, 2); }
static void quantiles_ref(msgpack_packer *pk) { msgpack_pack_array(pk, 0); }
static void realisations_ref(msgpack_packer *pk) { msgpack_pack_true(pk); }
static void iterations_ref(msgpack_packer *pk) { msgpack_pack_uint8(pk, 0); }
static void rounds_ref(msgpack_packer *pk) { msgpack_pack_uint8(pk, 0); }
static void seed_ref(msgpack_packer *pk) { msgpack_pack_uint8(pk, 0); }
static void params_ref(msgpack_packer *pk) { msgpack_pack_array(pk, 0); }
/* One output as packed by hand. */
typedef struct {
    const char *name, *role;
    uint32_t model;
    const char *dt;
    uint32_t n;
    double nodata;
} out_spec_t;

/* The reference summary's 8 outputs, as assert_reference_outputs lists them. */
#define NREF_OUTPUTS 8
static const out_spec_t REF_OUTPUTS[NREF_OUTPUTS] = {
    {"probability", "probability", 0, "f32", 5, F32_LOWEST},
    {"class", "class", 0, "u8", 1, 255.0},
    {"entropy", "entropy", 0, "f32", 1, F32_LOWEST},
    {"confusion", "confusion", 0, "f32", 1, F32_LOWEST},
    {"nprob_class", "nprob_class", 0, "u8", 2, 255.0},
    {"nprob_probability", "nprob_probability", 0, "f32", 2, F32_LOWEST},
    {"realisation-001", "realisation", 0, "u8", 1, 255.0},
    {"realisation-002", "realisation", 1, "u8", 1, 255.0},
};

/* Packs an array of 'n' outputs. */
static void pack_outputs(msgpack_packer *pk, const out_spec_t *outs, size_t n) {
    msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++)
        pack_output(pk, outs[i].name, outs[i].role, outs[i].model, outs[i].dt, outs[i].n, outs[i].nodata);
}

/* Packs the reference outputs with output 'at' replaced by 'o'. */
static void pack_ref_outputs_with(msgpack_packer *pk, size_t at, out_spec_t o) {
    out_spec_t outs[NREF_OUTPUTS];
    memcpy(outs, REF_OUTPUTS, sizeof outs);
    outs[at] = o;
    pack_outputs(pk, outs, NREF_OUTPUTS);
}

static void outputs_ref(msgpack_packer *pk) { pack_outputs(pk, REF_OUTPUTS, NREF_OUTPUTS); }
static void models_ref(msgpack_packer *pk) {
    msgpack_pack_array(pk, 2);
    pack_model(pk, "json", MODEL0_SIZE);
    pack_model(pk, "ubj", MODEL1_SIZE);
}
static void tasks_ref(msgpack_packer *pk) { pstr(pk, TASKS_EP); }
static void results_ref(msgpack_packer *pk) { pstr(pk, RESULTS_EP); }
static void acks_ref(msgpack_packer *pk) { pstr(pk, ACKS_EP); }

/* Replacement values for the rejection tests. */
static void t_task(msgpack_packer *pk) { pstr(pk, "task"); }
static void t_unknown(msgpack_packer *pk) { pstr(pk, "jobs"); }
static void v_2(msgpack_packer *pk) { msgpack_pack_uint8(pk, 2); }

/* Every key of a job header, as gm_job_encode writes it, with the reference job's value. */
static const struct { const char *key; pack_fn pack; } job_keys[] = {
    {"v", v_1},           {"t", t_job},
    {"id", id_ref},       {"mode", mode_ref},
    {"xsize", xsize_ref}, {"ysize", ysize_ref},
    {"gt", gt_ref},       {"crs", crs_ref},
    {"bands", bands_ref}, {"bw", bw_ref},
    {"bh", bh_ref},       {"tile", tile_ref},
    {"kind", kind_ref},   {"objective", objective_ref},
    {"nclass", nclass_ref}, {"probabilities", probabilities_ref},
    {"nprob", nprob_ref}, {"quantiles", quantiles_ref},
    {"realisations", realisations_ref}, {"iterations", iterations_ref},
    {"rounds", rounds_ref}, {"seed", seed_ref},
    {"params", params_ref}, {"outputs", outputs_ref},
    {"models", models_ref}, {"tasks", tasks_ref},
    {"results", results_ref}, {"acks", acks_ref},
};

/* One replaced value of a hand-built job header. */
typedef struct {
    const char *key;
    pack_fn pack;
} job_edit_t;

/* Packs the reference job header, leaving out 'skip' and packing each edit's value under its key.
 * Returns an exact-size heap copy, so valgrind sees reads past its end; *len gets its size. */
static void *build_job_edits(const char *skip, const job_edit_t *edits, size_t nedits, size_t *len) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    size_t n = NITEMS(job_keys) - (skip ? 1 : 0);
    msgpack_pack_map(&pk, n);
    for (size_t i = 0; i < NITEMS(job_keys); i++) {
        if (skip && strcmp(skip, job_keys[i].key) == 0) continue;
        pstr(&pk, job_keys[i].key);
        pack_fn pack = job_keys[i].pack;
        for (size_t e = 0; e < nedits; e++)
            if (strcmp(edits[e].key, job_keys[i].key) == 0) pack = edits[e].pack;
        pack(&pk);
    }
    void *out = copy_bytes(sb.data, sb.size);
    *len = sb.size;
    msgpack_sbuffer_destroy(&sb);
    return out;
}

/* Packs the reference job header without 'skip' and with 'repl' as the value of 'key' (either may be NULL). */
static void *build_job(const char *skip, const char *key, pack_fn repl, size_t *len) {
    const job_edit_t edit = {key, repl};
    return build_job_edits(skip, &edit, key ? 1 : 0, len);
}

/* Asserts that the reference header with one edit is refused, mentions 'needle', and leaves the job cleared. */
static void expect_job_reject(const char *skip, const char *key, pack_fn repl, const char *needle) {
    size_t len;
    void *buf = build_job(skip, key, repl, &len);
    gm_job_t job;
    memset(&job, 0x5A, sizeof job);
    char err[GM_ERR_LEN] = "";
    int rc = gm_job_decode(buf, len, &job, err);
    free(buf);
    if (rc != -1) {
        gm_job_clear(&job);
        fail_msg("job header without \"%s\" / with edited \"%s\" decoded", skip ? skip : "-", key ? key : "-");
    }
    assert_err_has(err, needle);
    assert_job_cleared(&job);
}

/* Asserts that the reference header with 'edits' is refused, mentions 'needle' and 'also' (unless NULL), and
 * leaves the job cleared. */
static void expect_edits_reject(const job_edit_t *edits, size_t nedits, const char *needle, const char *also) {
    size_t len;
    void *buf = build_job_edits(NULL, edits, nedits, &len);
    gm_job_t job;
    memset(&job, 0x5A, sizeof job);
    char err[GM_ERR_LEN] = "";
    int rc = gm_job_decode(buf, len, &job, err);
    free(buf);
    if (rc != -1) {
        gm_job_clear(&job);
        fail_msg("job header with %zu edits decoded; expected a refusal mentioning '%s'", nedits, needle);
    }
    assert_err_has(err, needle);
    if (also) assert_err_has(err, also);
    assert_job_cleared(&job);
}

/* Decodes the reference header with 'edits' into 'job', failing the test with the error if it is refused. */
static void decode_edits(const job_edit_t *edits, size_t nedits, gm_job_t *job, const char *what) {
    size_t len;
    void *buf = build_job_edits(NULL, edits, nedits, &len);
    char err[GM_ERR_LEN] = "";
    memset(job, 0x5A, sizeof *job);
    int rc = gm_job_decode(buf, len, job, err);
    free(buf);
    if (rc != 0) fail_msg("%s: %s", what, err);
}

/* ---- output plan ---- */

/* Plans 'job', failing the test with the error if that fails. */
static void plan(gm_job_t *job) {
    char err[GM_ERR_LEN] = "";
    if (gm_job_plan_outputs(job, err) != 0) fail_msg("plan_outputs: %s", err);
}

/* Predict, classification, 5 classes with probabilities: a u8 class (nodata 255) and 5 float32 probability
 * bands; without probabilities only the class. */
static void test_plan_predict_classification(void **state) {
    (void)state;
    gm_job_t job = {.mode = GM_MODE_PREDICT, .kind = GM_KIND_CLASSIFICATION, .nclass = 5, .probabilities = 1};
    give_models(&job, 1, "json", 3);
    plan(&job);
    assert_int_equal(job.noutputs, 2);
    assert_output(&job.outputs[0], "class", GM_ROLE_CLASS, 0, GM_DT_U8, 1, 255.0);
    assert_output(&job.outputs[1], "probability", GM_ROLE_PROBABILITY, 0, GM_DT_F32, 5, F32_LOWEST);

    /* Planning again replaces the plan, it does not append to it. */
    plan(&job);
    assert_int_equal(job.noutputs, 2);

    /* Without probabilities, only the class. */
    job.probabilities = 0;
    plan(&job);
    assert_int_equal(job.noutputs, 1);
    assert_output(&job.outputs[0], "class", GM_ROLE_CLASS, 0, GM_DT_U8, 1, 255.0);

    /* The summary options do not change a prediction. */
    job.nprob = 3;
    job.realisations = 1;
    job.nquantiles = 1;
    job.quantiles[0] = 0.5;
    plan(&job);
    assert_int_equal(job.noutputs, 1);
    assert_output(&job.outputs[0], "class", GM_ROLE_CLASS, 0, GM_DT_U8, 1, 255.0);
    gm_job_clear(&job);
}

/* Predict, regression: one float32 "prediction" band with nodata -FLT_MAX. */
static void test_plan_predict_regression(void **state) {
    (void)state;
    gm_job_t job = {.mode = GM_MODE_PREDICT, .kind = GM_KIND_REGRESSION, .nclass = 0};
    give_models(&job, 1, "bin", 4);
    plan(&job);
    assert_int_equal(job.noutputs, 1);
    assert_output(&job.outputs[0], "prediction", GM_ROLE_PREDICTION, 0, GM_DT_F32, 1, F32_LOWEST);
    assert_true(job.outputs[0].nodata == -FLT_MAX);
    gm_job_clear(&job);
}

/* The class type widens to uint16 past 255 classes; fewer than 2 or more than 65535 are refused. */
static void test_plan_nclass(void **state) {
    (void)state;
    char err[GM_ERR_LEN] = "";
    gm_job_t job = {.mode = GM_MODE_PREDICT, .kind = GM_KIND_CLASSIFICATION, .nclass = 300, .probabilities = 0};
    plan(&job);
    assert_int_equal(job.noutputs, 1);
    assert_output(&job.outputs[0], "class", GM_ROLE_CLASS, 0, GM_DT_U16, 1, 65535.0);

    job.probabilities = 1;
    plan(&job);
    assert_int_equal(job.noutputs, 2);
    assert_output(&job.outputs[0], "class", GM_ROLE_CLASS, 0, GM_DT_U16, 1, 65535.0);
    assert_output(&job.outputs[1], "probability", GM_ROLE_PROBABILITY, 0, GM_DT_F32, 300, F32_LOWEST);

    /* Boundaries: classes 0..254 fit u8 with 255 left for nodata; 0..65534 fit u16. */
    static const struct { uint32_t nclass; gm_dtype_t dt; double nodata; } edges[] = {
        {2, GM_DT_U8, 255.0}, {255, GM_DT_U8, 255.0}, {256, GM_DT_U16, 65535.0}, {65535, GM_DT_U16, 65535.0},
    };
    for (size_t i = 0; i < NITEMS(edges); i++) {
        job.nclass = edges[i].nclass;
        job.probabilities = 0;
        if (gm_job_plan_outputs(&job, err) != 0) fail_msg("nclass %u: %s", edges[i].nclass, err);
        assert_output(&job.outputs[0], "class", GM_ROLE_CLASS, 0, edges[i].dt, 1, edges[i].nodata);
    }

    static const struct { uint32_t nclass; const char *text; } bad[] = {
        {0, "0"}, {1, "1"}, {65536, "65536"}, {70000, "70000"}, {UINT32_MAX, "4294967295"},
    };
    for (size_t i = 0; i < NITEMS(bad); i++) {
        job.nclass = bad[i].nclass;
        err[0] = '\0';
        if (gm_job_plan_outputs(&job, err) != -1) fail_msg("nclass %u planned", bad[i].nclass);
        assert_err_has(err, bad[i].text);
    }
    gm_job_clear(&job);

    /* An unknown model kind has no plan. */
    gm_job_t unknown = {.mode = GM_MODE_PREDICT, .kind = (gm_model_kind_t)0, .nclass = 5};
    assert_int_equal(gm_job_plan_outputs(&unknown, err), -1);
    unknown.kind = (gm_model_kind_t)3;
    assert_int_equal(gm_job_plan_outputs(&unknown, err), -1);
    gm_job_clear(&unknown);
}

/* Summarise, classification, 5 classes, 3 models, the 2 most probable classes and realisations:
 * probability (f32, one band per class), class, entropy, confusion, nprob_class (u8, 2 bands),
 * nprob_probability (f32, 2 bands), then realisation-001..003 showing models 0, 1, 2 as u8 classes. */
static void test_plan_summarise_classification(void **state) {
    (void)state;
    char err[GM_ERR_LEN] = "";
    gm_job_t job = {.mode = GM_MODE_SUMMARISE, .kind = GM_KIND_CLASSIFICATION, .nclass = 5, .nprob = 2,
                    .realisations = 1};
    give_models(&job, 3, "json", 2);
    plan(&job);
    assert_int_equal(job.noutputs, 9); /* 4 summaries + 2 nprob + 3 realisations */
    assert_output(&job.outputs[0], "probability", GM_ROLE_PROBABILITY, 0, GM_DT_F32, 5, F32_LOWEST);
    assert_output(&job.outputs[1], "class", GM_ROLE_CLASS, 0, GM_DT_U8, 1, 255.0);
    assert_output(&job.outputs[2], "entropy", GM_ROLE_ENTROPY, 0, GM_DT_F32, 1, F32_LOWEST);
    assert_output(&job.outputs[3], "confusion", GM_ROLE_CONFUSION, 0, GM_DT_F32, 1, F32_LOWEST);
    assert_output(&job.outputs[4], "nprob_class", GM_ROLE_NPROB_CLASS, 0, GM_DT_U8, 2, 255.0);
    assert_output(&job.outputs[5], "nprob_probability", GM_ROLE_NPROB_PROB, 0, GM_DT_F32, 2, F32_LOWEST);
    assert_output(&job.outputs[6], "realisation-001", GM_ROLE_REALISATION, 0, GM_DT_U8, 1, 255.0);
    assert_output(&job.outputs[7], "realisation-002", GM_ROLE_REALISATION, 1, GM_DT_U8, 1, 255.0);
    assert_output(&job.outputs[8], "realisation-003", GM_ROLE_REALISATION, 2, GM_DT_U8, 1, 255.0);

    /* Without nprob and realisations: the 4 summaries only. "probabilities" is a predict option. */
    job.nprob = 0;
    job.realisations = 0;
    job.probabilities = 1;
    plan(&job);
    assert_int_equal(job.noutputs, 4);
    assert_output(&job.outputs[0], "probability", GM_ROLE_PROBABILITY, 0, GM_DT_F32, 5, F32_LOWEST);
    assert_output(&job.outputs[1], "class", GM_ROLE_CLASS, 0, GM_DT_U8, 1, 255.0);
    assert_output(&job.outputs[2], "entropy", GM_ROLE_ENTROPY, 0, GM_DT_F32, 1, F32_LOWEST);
    assert_output(&job.outputs[3], "confusion", GM_ROLE_CONFUSION, 0, GM_DT_F32, 1, F32_LOWEST);

    /* One most probable class: one band each. */
    job.nprob = 1;
    plan(&job);
    assert_int_equal(job.noutputs, 6);
    assert_output(&job.outputs[4], "nprob_class", GM_ROLE_NPROB_CLASS, 0, GM_DT_U8, 1, 255.0);
    assert_output(&job.outputs[5], "nprob_probability", GM_ROLE_NPROB_PROB, 0, GM_DT_F32, 1, F32_LOWEST);

    /* nprob may equal nclass (every class ranked), not exceed it. */
    job.nprob = 5;
    plan(&job);
    assert_int_equal(job.noutputs, 6);
    assert_output(&job.outputs[4], "nprob_class", GM_ROLE_NPROB_CLASS, 0, GM_DT_U8, 5, 255.0);
    assert_output(&job.outputs[5], "nprob_probability", GM_ROLE_NPROB_PROB, 0, GM_DT_F32, 5, F32_LOWEST);
    job.nprob = 6;
    err[0] = '\0';
    assert_int_equal(gm_job_plan_outputs(&job, err), -1);
    assert_err_has(err, "nprob");
    assert_err_has(err, "6");
    gm_job_clear(&job);

    /* 300 classes: class, nprob_class and the realisations widen to u16 with nodata 65535. */
    gm_job_t wide = {.mode = GM_MODE_SUMMARISE, .kind = GM_KIND_CLASSIFICATION, .nclass = 300, .nprob = 3,
                     .realisations = 1};
    give_models(&wide, 2, "ubj", 2);
    plan(&wide);
    assert_int_equal(wide.noutputs, 8); /* 4 + 2 + 2 */
    assert_output(&wide.outputs[0], "probability", GM_ROLE_PROBABILITY, 0, GM_DT_F32, 300, F32_LOWEST);
    assert_output(&wide.outputs[1], "class", GM_ROLE_CLASS, 0, GM_DT_U16, 1, 65535.0);
    assert_output(&wide.outputs[2], "entropy", GM_ROLE_ENTROPY, 0, GM_DT_F32, 1, F32_LOWEST);
    assert_output(&wide.outputs[3], "confusion", GM_ROLE_CONFUSION, 0, GM_DT_F32, 1, F32_LOWEST);
    assert_output(&wide.outputs[4], "nprob_class", GM_ROLE_NPROB_CLASS, 0, GM_DT_U16, 3, 65535.0);
    assert_output(&wide.outputs[5], "nprob_probability", GM_ROLE_NPROB_PROB, 0, GM_DT_F32, 3, F32_LOWEST);
    assert_output(&wide.outputs[6], "realisation-001", GM_ROLE_REALISATION, 0, GM_DT_U16, 1, 65535.0);
    assert_output(&wide.outputs[7], "realisation-002", GM_ROLE_REALISATION, 1, GM_DT_U16, 1, 65535.0);
    gm_job_clear(&wide);

    /* A summary of no model is refused. */
    gm_job_t none = {.mode = GM_MODE_SUMMARISE, .kind = GM_KIND_CLASSIFICATION, .nclass = 5, .realisations = 1};
    err[0] = '\0';
    assert_int_equal(gm_job_plan_outputs(&none, err), -1);
    assert_err_has(err, "model");
    gm_job_clear(&none);
}

/* Summarise, regression: mean and sd (f32, 1 band each), then one "quantiles" file of one band per quantile,
 * then one f32 realisation per model. */
static void test_plan_summarise_regression(void **state) {
    (void)state;
    char err[GM_ERR_LEN] = "";
    gm_job_t job = {.mode = GM_MODE_SUMMARISE, .kind = GM_KIND_REGRESSION};
    give_models(&job, 2, "json", 2);
    plan(&job);
    assert_int_equal(job.noutputs, 2);
    assert_output(&job.outputs[0], "mean", GM_ROLE_MEAN, 0, GM_DT_F32, 1, F32_LOWEST);
    assert_output(&job.outputs[1], "sd", GM_ROLE_SD, 0, GM_DT_F32, 1, F32_LOWEST);

    /* 3 quantiles and 2 realisations: 2 + 1 + 2 = 5 outputs; nprob means nothing to a regression. */
    job.nquantiles = 3;
    job.quantiles[0] = 0.05;
    job.quantiles[1] = 0.5;
    job.quantiles[2] = 0.95;
    job.realisations = 1;
    job.nprob = 4;
    plan(&job);
    assert_int_equal(job.noutputs, 5);
    assert_output(&job.outputs[0], "mean", GM_ROLE_MEAN, 0, GM_DT_F32, 1, F32_LOWEST);
    assert_output(&job.outputs[1], "sd", GM_ROLE_SD, 0, GM_DT_F32, 1, F32_LOWEST);
    assert_output(&job.outputs[2], "quantiles", GM_ROLE_QUANTILE, 0, GM_DT_F32, 3, F32_LOWEST);
    assert_output(&job.outputs[3], "realisation-001", GM_ROLE_REALISATION, 0, GM_DT_F32, 1, F32_LOWEST);
    assert_output(&job.outputs[4], "realisation-002", GM_ROLE_REALISATION, 1, GM_DT_F32, 1, F32_LOWEST);

    /* One quantile: a one-band "quantiles" file. */
    job.nquantiles = 1;
    job.realisations = 0;
    plan(&job);
    assert_int_equal(job.noutputs, 3);
    assert_output(&job.outputs[2], "quantiles", GM_ROLE_QUANTILE, 0, GM_DT_F32, 1, F32_LOWEST);

    /* The most quantiles: one band each. */
    job.nquantiles = GM_JOB_MAX_QUANTILES;
    for (uint32_t i = 0; i < GM_JOB_MAX_QUANTILES; i++) job.quantiles[i] = i / 31.0;
    job.realisations = 0;
    plan(&job);
    assert_int_equal(job.noutputs, 3);
    assert_output(&job.outputs[2], "quantiles", GM_ROLE_QUANTILE, 0, GM_DT_F32, 32, F32_LOWEST);
    gm_job_clear(&job);

    gm_job_t none = {.mode = GM_MODE_SUMMARISE, .kind = GM_KIND_REGRESSION};
    err[0] = '\0';
    assert_int_equal(gm_job_plan_outputs(&none, err), -1);
    assert_err_has(err, "model");
    gm_job_clear(&none);
}

/* Realisation names number models from 1 with 3 digits up to 999 models, 4 digits from 1000. */
static void test_plan_realisation_names(void **state) {
    (void)state;
    static const struct { uint32_t nmodels; const char *first, *last; } cases[] = {
        {1, "realisation-001", "realisation-001"},
        {999, "realisation-001", "realisation-999"},
        {1000, "realisation-0001", "realisation-1000"},
        {4096, "realisation-0001", "realisation-4096"},
    };
    for (size_t c = 0; c < NITEMS(cases); c++) {
        const uint32_t n = cases[c].nmodels;
        gm_job_t job = {.mode = GM_MODE_SUMMARISE, .kind = GM_KIND_REGRESSION, .realisations = 1};
        give_models(&job, n, "bin", 1);
        plan(&job);
        assert_int_equal(job.noutputs, 2 + n);
        assert_output(&job.outputs[2], cases[c].first, GM_ROLE_REALISATION, 0, GM_DT_F32, 1, F32_LOWEST);
        assert_output(&job.outputs[1 + n], cases[c].last, GM_ROLE_REALISATION, n - 1, GM_DT_F32, 1, F32_LOWEST);
        for (uint32_t m = 0; m < n; m++) {
            if (job.outputs[2 + m].role != GM_ROLE_REALISATION || job.outputs[2 + m].model != m)
                fail_msg("%u models: output %u shows model %u", n, 2 + m, job.outputs[2 + m].model);
        }
        gm_job_clear(&job);
    }
    /* Names in between: model index 41 of 1000 is "realisation-0042"; of 999, "realisation-042". */
    gm_job_t job = {.mode = GM_MODE_SUMMARISE, .kind = GM_KIND_CLASSIFICATION, .nclass = 2, .realisations = 1};
    give_models(&job, 1000, "bin", 1);
    plan(&job);
    assert_int_equal(job.noutputs, 1004);
    assert_output(&job.outputs[4 + 41], "realisation-0042", GM_ROLE_REALISATION, 41, GM_DT_U8, 1, 255.0);
    gm_job_clear(&job);
    give_models(&job, 999, "bin", 1);
    job.mode = GM_MODE_SUMMARISE;
    job.kind = GM_KIND_CLASSIFICATION;
    job.nclass = 2;
    job.realisations = 1;
    plan(&job);
    assert_output(&job.outputs[4 + 41], "realisation-042", GM_ROLE_REALISATION, 41, GM_DT_U8, 1, 255.0);
    gm_job_clear(&job);
}

/* A training job writes no output file: the plan is empty, and replaces an earlier one. */
static void test_plan_train(void **state) {
    (void)state;
    gm_job_t job = {.mode = GM_MODE_TRAIN, .kind = GM_KIND_CLASSIFICATION, .nclass = 5, .probabilities = 1,
                    .nprob = 2, .realisations = 1, .iterations = 10};
    plan(&job);
    assert_int_equal(job.noutputs, 0);
    assert_null(job.outputs);

    job.mode = GM_MODE_PREDICT;
    plan(&job);
    assert_int_equal(job.noutputs, 2);
    job.mode = GM_MODE_TRAIN;
    plan(&job);
    assert_int_equal(job.noutputs, 0);
    assert_null(job.outputs);

    gm_job_t reg = {.mode = GM_MODE_TRAIN, .kind = GM_KIND_REGRESSION, .iterations = 1};
    plan(&reg);
    assert_int_equal(reg.noutputs, 0);
    assert_null(reg.outputs);
    gm_job_clear(&reg);
    gm_job_clear(&job);
}

/* A mode outside predict, train and summarise has no plan. */
static void test_plan_unknown_mode(void **state) {
    (void)state;
    const int modes[] = {0, 4, 1000};
    for (size_t i = 0; i < NITEMS(modes); i++) {
        gm_job_t job = {.mode = (gm_job_mode_t)modes[i], .kind = GM_KIND_REGRESSION};
        give_models(&job, 1, "bin", 1);
        char err[GM_ERR_LEN] = "";
        if (gm_job_plan_outputs(&job, err) != -1) fail_msg("mode %d planned", modes[i]);
        assert_err_has(err, "mode");
        assert_int_equal(job.noutputs, 0);
        gm_job_clear(&job);
    }
}

/* Iteration numbers are 3 digits wide up to 999 and 4 from 1000 to the 4096 models a job holds. */
static void test_iteration_width(void **state) {
    (void)state;
    static const struct { uint32_t iterations; int width; } cases[] = {
        {1, 3},    {2, 3},    {9, 3},    {10, 3},    {99, 3},     {100, 3},    {998, 3},  {999, 3},
        {1000, 4}, {1001, 4}, {2048, 4}, {4095, 4},  {4096, 4},
        {9999, 4}, {10000, 5}, {99999, 5}, {100000, 6}, {4294967295u, 10}, /* 4294967295 has 10 digits */
    };
    for (size_t i = 0; i < NITEMS(cases); i++) {
        int got = gm_job_iteration_width(cases[i].iterations);
        if (got != cases[i].width) fail_msg("%u iterations: width %d, expected %d", cases[i].iterations, got, cases[i].width);
    }
}

/* Output sizes: samples x bands x sample size. */
static void test_output_bytes(void **state) {
    (void)state;
    const gm_output_t cls = {.name = "class", .role = GM_ROLE_CLASS, .dtype = GM_DT_U8, .bands = 1, .nodata = 255.0};
    const gm_output_t prob = {.name = "probability", .role = GM_ROLE_PROBABILITY, .dtype = GM_DT_F32, .bands = 5,
                              .nodata = -FLT_MAX};
    const gm_output_t cls16 = {.name = "class", .role = GM_ROLE_CLASS, .dtype = GM_DT_U16, .bands = 1,
                               .nodata = 65535.0};
    const gm_output_t real = {.name = "realisation-007", .role = GM_ROLE_REALISATION, .model = 6,
                              .dtype = GM_DT_F32, .bands = 1, .nodata = -FLT_MAX};
    assert_int_equal(gm_job_output_bytes(&cls, 128, 128), 16384);    /* 128*128*1*1 */
    assert_int_equal(gm_job_output_bytes(&prob, 44, 89), 78320);     /* 44*89=3916, *5*4 */
    assert_int_equal(gm_job_output_bytes(&cls16, 300, 217), 130200); /* 300*217=65100, *2 */
    assert_int_equal(gm_job_output_bytes(&real, 44, 89), 15664);     /* 3916*1*4; the model index plays no part */
    /* 8192*8192*4096*4 = 2^13*2^13*2^12*2^2 = 2^40: must not wrap in 32 bits. */
    const gm_output_t wide = {.name = "probability", .role = GM_ROLE_PROBABILITY, .dtype = GM_DT_F32, .bands = 4096};
    assert_true(gm_job_output_bytes(&wide, 8192, 8192) == ((size_t)1 << 40));
}

/* ---- block plan ---- */

/* 300 x 217 in 128 x 128 blocks: 3 across (128+128+44), 2 down (128+89), 6 in all, row-major. */
static void test_block_plan(void **state) {
    (void)state;
    gm_job_t job;
    make_job(&job);
    assert_int_equal(gm_job_blocks_x(&job), 3);
    assert_int_equal(gm_job_blocks_y(&job), 2);
    assert_int_equal(gm_job_nblocks(&job), 6);
    static const uint32_t want[6][4] = {
        {0, 0, 128, 128}, {128, 0, 128, 128}, {256, 0, 44, 128},
        {0, 128, 128, 89}, {128, 128, 128, 89}, {256, 128, 44, 89},
    };
    for (uint32_t b = 0; b < 6; b++) {
        uint32_t x = 99, y = 99, w = 99, h = 99;
        assert_int_equal(gm_job_block_window(&job, b, &x, &y, &w, &h), 0);
        assert_int_equal(x, want[b][0]);
        assert_int_equal(y, want[b][1]);
        assert_int_equal(w, want[b][2]);
        assert_int_equal(h, want[b][3]);
    }
    uint32_t x, y, w, h;
    assert_int_equal(gm_job_block_window(&job, 6, &x, &y, &w, &h), -1);
    assert_int_equal(gm_job_block_window(&job, 7, &x, &y, &w, &h), -1);
    assert_int_equal(gm_job_block_window(&job, UINT32_MAX, &x, &y, &w, &h), -1);
    gm_job_clear(&job);

    /* A grid the blocks divide exactly: 256 x 256 in 128s is 2 x 2, the last block full. */
    gm_job_t even = {.xsize = 256, .ysize = 256, .block_w = 128, .block_h = 128};
    assert_int_equal(gm_job_nblocks(&even), 4);
    assert_int_equal(gm_job_block_window(&even, 3, &x, &y, &w, &h), 0);
    assert_int_equal(x, 128);
    assert_int_equal(y, 128);
    assert_int_equal(w, 128);
    assert_int_equal(h, 128);
    assert_int_equal(gm_job_block_window(&even, 4, &x, &y, &w, &h), -1);

    /* A single pixel in a maximal block; a grid one pixel past a block edge. */
    gm_job_t one = {.xsize = 1, .ysize = 1, .block_w = 8192, .block_h = 8192};
    assert_int_equal(gm_job_nblocks(&one), 1);
    assert_int_equal(gm_job_block_window(&one, 0, &x, &y, &w, &h), 0);
    assert_int_equal(w, 1);
    assert_int_equal(h, 1);
    gm_job_t past = {.xsize = 129, .ysize = 1, .block_w = 128, .block_h = 64};
    assert_int_equal(gm_job_blocks_x(&past), 2);
    assert_int_equal(gm_job_blocks_y(&past), 1);
    assert_int_equal(gm_job_block_window(&past, 1, &x, &y, &w, &h), 0);
    assert_int_equal(x, 128);
    assert_int_equal(w, 1);
    assert_int_equal(h, 1);
    /* Non-square blocks: 300 x 217 in 100 x 50 is 3 x 5; block 14 is (200, 200, 100, 17). */
    gm_job_t rect = {.xsize = 300, .ysize = 217, .block_w = 100, .block_h = 50};
    assert_int_equal(gm_job_nblocks(&rect), 15);
    assert_int_equal(gm_job_block_window(&rect, 14, &x, &y, &w, &h), 0);
    assert_int_equal(x, 200);
    assert_int_equal(y, 200);
    assert_int_equal(w, 100);
    assert_int_equal(h, 17);
}

/* Counts the blocks of 'job' overlapping tile 't' (row-major), by brute force over every block. */
static uint32_t blocks_over_tile(const gm_job_t *job, uint32_t t, const uint32_t *pos, uint32_t *last_pos) {
    uint32_t ntx = (job->xsize + job->tile - 1) / job->tile, n = 0;
    uint32_t tx0 = t % ntx * job->tile, ty0 = t / ntx * job->tile;
    *last_pos = 0;
    for (uint32_t b = 0; b < gm_job_nblocks(job); b++) {
        uint32_t x, y, w, h;
        assert_int_equal(gm_job_block_window(job, b, &x, &y, &w, &h), 0);
        if (x < tx0 + job->tile && x + w > tx0 && y < ty0 + job->tile && y + h > ty0) {
            n++;
            if (pos[b] > *last_pos) *last_pos = pos[b];
        }
    }
    return n;
}

/* The read order lists every block once; the blocks a tile needs are all listed before those only later
 * tiles need, so tiles complete in row-major order; when blocks and tiles nest, a tile's blocks are
 * consecutive, and blocks at least as large as tiles keep row-major order. */
static void test_block_order(void **state) {
    (void)state;
    const uint32_t cases[][5] = {
        /* xsize, ysize, block_w, block_h, tile */
        {300, 1000, 128, 128, 256}, {1000, 300, 128, 128, 256}, {1024, 1024, 256, 256, 256},
        {1030, 700, 512, 512, 256}, {1000, 1000, 100, 100, 256}, {700, 650, 100, 50, 128},
        {40, 40, 64, 64, 256},      {2048, 512, 64, 64, 512},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        gm_job_t job = {.xsize = cases[c][0], .ysize = cases[c][1], .block_w = cases[c][2], .block_h = cases[c][3],
                        .tile = cases[c][4]};
        uint32_t nb = gm_job_nblocks(&job), nt = gm_job_ntiles(&job);
        assert_int_equal(nt, ((job.xsize + job.tile - 1) / job.tile) * ((job.ysize + job.tile - 1) / job.tile));
        uint32_t *order = malloc(nb * sizeof *order), *pos = malloc(nb * sizeof *pos);
        assert_non_null(order);
        assert_non_null(pos);
        for (uint32_t i = 0; i < nb; i++) pos[i] = UINT32_MAX;
        gm_job_block_order(&job, order);
        for (uint32_t i = 0; i < nb; i++) {
            assert_true(order[i] < nb);
            assert_int_equal(pos[order[i]], UINT32_MAX); /* listed once */
            pos[order[i]] = i;
        }
        int nested = job.tile % job.block_w == 0 && job.tile % job.block_h == 0;
        int coarse = job.block_w % job.tile == 0 && job.block_h % job.tile == 0;
        uint32_t prev_last = 0, most = 0;
        for (uint32_t t = 0; t < nt; t++) {
            uint32_t last, n = blocks_over_tile(&job, t, pos, &last);
            assert_true(n >= 1);
            most = n > most ? n : most;
            /* blocks nesting in tiles: tile t is complete before any block of tile t + 1 is read */
            if (nested) assert_true(t == 0 || last > prev_last);
            prev_last = last;
            if (nested) /* this tile's blocks are the n listed up to 'last' */
                for (uint32_t i = last + 1 - n; i <= last; i++) {
                    uint32_t x, y, w, h;
                    gm_job_block_window(&job, order[i], &x, &y, &w, &h);
                    assert_int_equal(y / job.tile * gm_job_tiles_x(&job) + x / job.tile, t);
                }
        }
        /* a block's last tile: the row-major tile holding its bottom-right pixel */
        for (uint32_t b = 0; b < nb; b++) {
            uint32_t x, y, w, h;
            gm_job_block_window(&job, b, &x, &y, &w, &h);
            uint32_t want = (y + h - 1) / job.tile * gm_job_tiles_x(&job) + (x + w - 1) / job.tile;
            assert_int_equal(gm_job_block_last_tile(&job, b), want);
        }
        assert_true(most <= gm_job_blocks_per_tile(&job));
        if (nested || coarse) assert_int_equal(most, gm_job_blocks_per_tile(&job));
        if (coarse)
            for (uint32_t i = 0; i < nb; i++) assert_int_equal(order[i], i);
        assert_int_equal(gm_job_block_last_tile(&job, nb), UINT32_MAX);
        free(order);
        free(pos);
    }
}

/* The reader's least window: one tile's blocks and one more when blocks nest in tiles, else a row of tiles'
 * blocks (larger or misaligned blocks are only written a row of tiles at a time) and one more. */
static void test_min_inflight(void **state) {
    (void)state;
    /* 300 x 1000 in 128s under tiles of 256: 2 x 2 blocks a tile */
    gm_job_t nested = {.xsize = 300, .ysize = 1000, .block_w = 128, .block_h = 128, .tile = 256};
    assert_int_equal(gm_job_min_inflight(&nested), 5);
    /* 1030 x 700 in 512s under tiles of 256: a row of tiles lies in one row of 3 blocks */
    gm_job_t coarse = {.xsize = 1030, .ysize = 700, .block_w = 512, .block_h = 512, .tile = 256};
    assert_int_equal(gm_job_blocks_per_tile_row(&coarse), 3);
    assert_int_equal(gm_job_min_inflight(&coarse), 4);
    /* 1000 x 1000 in 100s under tiles of 256: a row of tiles touches up to 4 rows of 10 blocks */
    gm_job_t skew = {.xsize = 1000, .ysize = 1000, .block_w = 100, .block_h = 100, .tile = 256};
    assert_int_equal(gm_job_min_inflight(&skew), 41);
    /* never more than the blocks there are */
    gm_job_t one = {.xsize = 40, .ysize = 40, .block_w = 64, .block_h = 64, .tile = 256};
    assert_int_equal(gm_job_min_inflight(&one), 1);
}

/* A header matches the plan only with this job's id and the exact window of an existing block. */
static void test_check_block(void **state) {
    (void)state;
    gm_job_t job;
    make_job(&job);
    job.id = 0xabcdef0123456789ULL;
    char err[GM_ERR_LEN] = "";
    gm_header_t h = {.version = 1, .kind = GM_MSG_TASK, .job = 0xabcdef0123456789ULL, .block = 5,
                     .x = 256, .y = 128, .w = 44, .h = 89, .bands = 4, .dtype = GM_DT_F32};
    if (gm_job_check_block(&job, &h, err) != 0) fail_msg("block 5: %s", err);
    gm_header_t first = {.kind = GM_MSG_RESULT, .job = job.id, .block = 0, .x = 0, .y = 0, .w = 128, .h = 128};
    if (gm_job_check_block(&job, &first, err) != 0) fail_msg("block 0: %s", err);

    gm_header_t bad = h;
    bad.job = 0xabcdef0123456788ULL;
    err[0] = '\0';
    assert_int_equal(gm_job_check_block(&job, &bad, err), -1);
    assert_err_has(err, "job");
    bad.job = 0;
    assert_int_equal(gm_job_check_block(&job, &bad, err), -1);

    /* Each window field off by one, then the window of another block. */
    gm_header_t edits[] = {h, h, h, h, h, h};
    edits[0].x = 255;
    edits[1].y = 127;
    edits[2].w = 45;
    edits[3].h = 88;
    edits[4].w = 128; /* a full-width block where the plan has the 44-pixel edge */
    edits[5].x = 128; /* block 4's window under block 5's index */
    edits[5].w = 128;
    for (size_t i = 0; i < NITEMS(edits); i++) {
        err[0] = '\0';
        if (gm_job_check_block(&job, &edits[i], err) != -1) fail_msg("window edit %zu accepted", i);
        assert_err_has(err, "block 5");
    }

    /* Blocks outside the plan. */
    const uint32_t outside[] = {6, 1000, UINT32_MAX - 1, UINT32_MAX};
    for (size_t i = 0; i < NITEMS(outside); i++) {
        gm_header_t o = h;
        o.block = outside[i];
        err[0] = '\0';
        if (gm_job_check_block(&job, &o, err) != -1) fail_msg("block %u accepted", outside[i]);
        assert_err_has(err, "outside");
    }
    gm_job_clear(&job);
}

/* ---- model format ---- */

/* '{' then '"' is JSON, '{' then a UBJSON type marker is UBJ, anything else XGBoost's legacy binary. */
static void test_model_format(void **state) {
    (void)state;
    assert_string_equal(gm_job_model_format(MODEL0, MODEL0_SIZE), "json");
    assert_string_equal(gm_job_model_format("{\"", 2), "json");
    assert_string_equal(gm_job_model_format("{\n  \"learner\": {}}", 18), "json");
    assert_string_equal(gm_job_model_format(MODEL1, MODEL1_SIZE), "ubj");
    assert_string_equal(gm_job_model_format("{L", 2), "ubj");
    assert_string_equal(gm_job_model_format("{i\x07learner", 10), "ubj");
    assert_string_equal(gm_job_model_format("{U\x07learner", 10), "ubj");
    assert_string_equal(gm_job_model_format("binf\0\0\0\0", 8), "bin");
    const unsigned char legacy[] = {0x00, 0x00, 0x00, 0x3f, 0x04, 0x00, 0x00, 0x00}; /* base_score 0.5f */
    assert_string_equal(gm_job_model_format(legacy, sizeof legacy), "bin");
    assert_string_equal(gm_job_model_format("\"{", 2), "bin");
    assert_string_equal(gm_job_model_format("[1]", 3), "bin");
    assert_string_equal(gm_job_model_format("", 0), "bin");
    /* Only 'size' bytes count: a '{' whose next byte is past the end is not JSON. */
    char *one = copy_bytes("{", 1);
    assert_string_equal(gm_job_model_format(one, 1), "bin");
    free(one);
}

/* ---- id ---- */

/* Returns the id of a job computed now. */
static uint64_t id_of(gm_job_t *job) {
    char err[GM_ERR_LEN] = "";
    if (gm_job_compute_id(job, err) != 0) fail_msg("compute_id: %s", err);
    return job->id;
}

/* The id is a deterministic hash of every field and every model byte, and ignores the previous id. */
static void test_compute_id(void **state) {
    (void)state;
    gm_job_t job, twin;
    make_job(&job);
    make_job(&twin);
    const uint64_t base = id_of(&job);
    assert_true(base != 0);
    assert_true(id_of(&job) == base);
    assert_true(id_of(&twin) == base);
    twin.id = 0x0123456789abcdefULL;
    assert_true(id_of(&twin) == base);

    /* Each model byte counts: flip the first, last and one middle byte of each model. */
    for (uint32_t m = 0; m < 2; m++) {
        unsigned char *p = twin.models[m].bytes;
        const size_t at[] = {0, twin.models[m].size / 2, twin.models[m].size - 1};
        for (size_t k = 0; k < 3; k++) {
            p[at[k]] ^= 0x01;
            if (id_of(&twin) == base) fail_msg("model %u byte %zu does not change the id", m, at[k]);
            p[at[k]] ^= 0x01;
            assert_true(id_of(&twin) == base);
        }
    }

    /* Each field counts. */
#define EXPECT_CHANGES(what, edit)                                                        \
    do {                                                                                  \
        gm_job_t j;                                                                       \
        make_job(&j);                                                                     \
        edit;                                                                             \
        if (id_of(&j) == base) fail_msg("changing %s does not change the id", what);      \
        gm_job_clear(&j);                                                                 \
    } while (0)
    EXPECT_CHANGES("xsize", j.xsize = 301);
    EXPECT_CHANGES("ysize", j.ysize = 216);
    EXPECT_CHANGES("gt[0]", j.gt[0] = 500000.5);
    EXPECT_CHANGES("gt[5]", j.gt[5] = 30.0);
    EXPECT_CHANGES("crs", j.crs[strlen(j.crs) - 3] = '4');
    EXPECT_CHANGES("nbands", j.nbands = 5);
    EXPECT_CHANGES("block_w", j.block_w = 256);
    EXPECT_CHANGES("block_h", j.block_h = 64);
    EXPECT_CHANGES("tile", j.tile = 512);
    EXPECT_CHANGES("kind", j.kind = GM_KIND_REGRESSION);
    EXPECT_CHANGES("objective", strcpy(j.objective, "multi:softmax"));
    EXPECT_CHANGES("nclass", j.nclass = 6);
    EXPECT_CHANGES("mode", j.mode = GM_MODE_PREDICT);
    EXPECT_CHANGES("probabilities", j.probabilities = 1);
    EXPECT_CHANGES("nprob", j.nprob = 3);
    EXPECT_CHANGES("quantiles", (j.nquantiles = 1, j.quantiles[0] = 0.5));
    EXPECT_CHANGES("realisations", j.realisations = 0);
    EXPECT_CHANGES("iterations", j.iterations = 2);
    EXPECT_CHANGES("rounds", j.rounds = 100);
    EXPECT_CHANGES("seed", j.seed = 1);
    EXPECT_CHANGES("seed high bit", j.seed = 0x8000000000000000ULL);
    EXPECT_CHANGES("params", (j.nparams = 1, strcpy(j.params[0].key, "eta"), strcpy(j.params[0].value, "0.3")));
    EXPECT_CHANGES("output nodata", j.outputs[0].nodata = 0);
    EXPECT_CHANGES("output bands", j.outputs[1].bands = 6);
    EXPECT_CHANGES("output role", j.outputs[2].role = GM_ROLE_CONFUSION);
    EXPECT_CHANGES("output model", j.outputs[7].model = 0);
    EXPECT_CHANGES("output name", strcpy(j.outputs[7].name, "realisation-003"));
    EXPECT_CHANGES("model format", strcpy(j.models[0].format, "bin"));
#undef EXPECT_CHANGES
    /* The id names the work, not where it is served: a restarted run on other ports keeps it (resume). */
    {
        gm_job_t e;
        char err[GM_ERR_LEN];
        make_job(&e);
        assert_int_equal(gm_job_compute_id(&e, err), 0);
        uint64_t before = e.id;
        e.tasks_ep[strlen(e.tasks_ep) - 1] = '6';
        e.results_ep[strlen(e.results_ep) - 1] = '7';
        strcat(e.acks_ep, "2");
        assert_int_equal(gm_job_compute_id(&e, err), 0);
        assert_true(e.id == before);
        gm_job_clear(&e);
    }

    /* The values inside the arrays count, not only their lengths: a quantile, a parameter key and value. */
    gm_job_t a, b;
    make_job(&a);
    make_job(&b);
    a.nquantiles = b.nquantiles = 1;
    a.quantiles[0] = 0.5;
    b.quantiles[0] = 0.25;
    a.nparams = b.nparams = 1;
    strcpy(a.params[0].key, "eta");
    strcpy(a.params[0].value, "0.3");
    strcpy(b.params[0].key, "eta");
    strcpy(b.params[0].value, "0.3");
    uint64_t id_a = id_of(&a);
    if (id_of(&b) == id_a) fail_msg("the quantile value does not change the id");
    b.quantiles[0] = 0.5;
    assert_true(id_of(&b) == id_a);
    strcpy(b.params[0].value, "0.4");
    if (id_of(&b) == id_a) fail_msg("a parameter value does not change the id");
    strcpy(b.params[0].value, "0.3");
    strcpy(b.params[0].key, "eta2");
    if (id_of(&b) == id_a) fail_msg("a parameter key does not change the id");
    gm_job_clear(&a);
    gm_job_clear(&b);

    /* A job decoded from the header and given its models back has the same id. */
    void *buf;
    size_t len;
    char err[GM_ERR_LEN] = "";
    job.id = base;
    assert_int_equal(gm_job_encode(&job, &buf, &len, err), 0);
    gm_job_t got;
    if (gm_job_decode(buf, len, &got, err) != 0) fail_msg("decode: %s", err);
    free(buf);
    assert_true(got.id == base);
    assert_int_equal(gm_job_attach_model(&got, 0, MODEL0, MODEL0_SIZE, err), 0);
    assert_int_equal(gm_job_attach_model(&got, 1, MODEL1, MODEL1_SIZE, err), 0);
    assert_true(id_of(&got) == base);
    gm_job_clear(&got);
    gm_job_clear(&twin);
    gm_job_clear(&job);
}

/* ---- encode and decode ---- */

/* Encode then decode gives back every field of the reference summary; models come back with sizes and no bytes. */
static void test_round_trip(void **state) {
    (void)state;
    gm_job_t job;
    make_job(&job);
    job.id = 0x1122334455667788ULL;
    void *buf = NULL;
    size_t len = 0;
    char err[GM_ERR_LEN] = "";
    if (gm_job_encode(&job, &buf, &len, err) != 0) fail_msg("encode: %s", err);
    assert_true(len > 0 && len <= GM_WIRE_MAX_HEADER);
    void *exact = copy_bytes(buf, len);
    free(buf);

    /* The frame is a "job" header to gm_wire_peek and gm_wire_decode too. */
    uint32_t version = 0;
    gm_msg_kind_t kind = 0;
    assert_int_equal(gm_wire_peek(exact, len, &version, &kind, err), 0);
    assert_int_equal(version, 1);
    assert_int_equal(kind, GM_MSG_JOB);

    gm_job_t got;
    memset(&got, 0x5A, sizeof got);
    if (gm_job_decode(exact, len, &got, err) != 0) fail_msg("decode: %s", err);
    free(exact);
    assert_true(got.id == 0x1122334455667788ULL);
    assert_reference_fields(&got);
    assert_null(got.models[0].bytes);
    assert_null(got.models[1].bytes);
    gm_job_clear(&got);
    assert_job_cleared(&got);
    gm_job_clear(&got); /* clearing a cleared job is harmless */

    /* A regression prediction with an empty CRS (NULL in the struct) and one model. */
    gm_job_t reg = {.id = 1, .mode = GM_MODE_PREDICT, .xsize = 1, .ysize = 1, .gt = {0, 1, 0, 0, 0, -1},
                    .crs = NULL, .nbands = 1, .block_w = 8192, .block_h = 1, .tile = 16, .kind = GM_KIND_REGRESSION};
    strcpy(reg.objective, "reg:squarederror");
    assert_int_equal(gm_job_plan_outputs(&reg, err), 0);
    reg.nmodels = 1;
    reg.models = calloc(1, sizeof *reg.models);
    assert_non_null(reg.models);
    strcpy(reg.models[0].format, "bin");
    reg.models[0].bytes = copy_bytes("binf", 4);
    reg.models[0].size = 4;
    strcpy(reg.tasks_ep, "inproc://t");
    strcpy(reg.results_ep, "inproc://r");
    strcpy(reg.acks_ep, "inproc://a");
    job_round_trip(&reg, &got);
    assert_int_equal(got.id, 1);
    assert_int_equal(got.mode, GM_MODE_PREDICT);
    assert_int_equal(got.xsize, 1);
    assert_int_equal(got.ysize, 1);
    assert_true(got.gt[1] == 1.0 && got.gt[5] == -1.0);
    assert_non_null(got.crs);
    assert_string_equal(got.crs, "");
    assert_int_equal(got.block_w, 8192);
    assert_int_equal(got.block_h, 1);
    assert_int_equal(got.tile, 16);
    assert_int_equal(got.kind, GM_KIND_REGRESSION);
    assert_string_equal(got.objective, "reg:squarederror");
    assert_int_equal(got.nclass, 0);
    assert_int_equal(got.probabilities, 0);
    assert_int_equal(got.nprob, 0);
    assert_int_equal(got.nquantiles, 0);
    assert_int_equal(got.realisations, 0);
    assert_int_equal(got.iterations, 0);
    assert_int_equal(got.rounds, 0);
    assert_true(got.seed == 0);
    assert_int_equal(got.nparams, 0);
    assert_int_equal(got.noutputs, 1);
    assert_output(&got.outputs[0], "prediction", GM_ROLE_PREDICTION, 0, GM_DT_F32, 1, F32_LOWEST);
    assert_int_equal(got.nmodels, 1);
    assert_string_equal(got.models[0].format, "bin");
    assert_int_equal(got.models[0].size, 4);
    assert_string_equal(got.tasks_ep, "inproc://t");
    assert_string_equal(got.results_ep, "inproc://r");
    assert_string_equal(got.acks_ep, "inproc://a");
    gm_job_clear(&got);
    gm_job_clear(&reg);
    gm_job_clear(&job);
}

/* A classification prediction keeps its mode, "probabilities" flag, class/probability plan and one model; with
 * the reference's 2 models the frame is refused, since a prediction applies exactly one. */
static void test_round_trip_predict_classification(void **state) {
    (void)state;
    gm_job_t job;
    make_job(&job);
    job.mode = GM_MODE_PREDICT;
    job.nprob = 0;
    job.realisations = 0;
    job.probabilities = 1;
    job.nclass = 3;
    plan(&job);
    expect_encoded_reject(&job, "one model", "not 2");

    /* Model 1 dropped: model 0 (json, 14 bytes) alone. */
    free(job.models[1].bytes);
    job.models[1].bytes = NULL;
    job.nmodels = 1;
    gm_job_t got;
    job_round_trip(&job, &got);
    assert_int_equal(got.mode, GM_MODE_PREDICT);
    assert_int_equal(got.kind, GM_KIND_CLASSIFICATION);
    assert_int_equal(got.nclass, 3);
    assert_int_equal(got.probabilities, 1);
    assert_int_equal(got.nprob, 0);
    assert_int_equal(got.realisations, 0);
    assert_int_equal(got.noutputs, 2);
    assert_output(&got.outputs[0], "class", GM_ROLE_CLASS, 0, GM_DT_U8, 1, 255.0);
    assert_output(&got.outputs[1], "probability", GM_ROLE_PROBABILITY, 0, GM_DT_F32, 3, F32_LOWEST);
    assert_int_equal(got.nmodels, 1);
    assert_string_equal(got.models[0].format, "json");
    assert_int_equal(got.models[0].size, 14);
    gm_job_clear(&got);
    gm_job_clear(&job);
}

/* A training job keeps its iterations, rounds, full 64-bit seed and parameters, with no outputs and no models. */
static void test_round_trip_train(void **state) {
    (void)state;
    static const char key47[] = "k2345678901234567890123456789012345678901234567"; /* 47 bytes: the longest key */
    static const char val47[] = "v2345678901234567890123456789012345678901234567"; /* 47 bytes: the longest value */
    _Static_assert(sizeof key47 == 48 && sizeof val47 == 48, "47 characters and a NUL");
    static const struct { const char *key, *value; } params[] = {
        {"eta", "0.1"}, {"max_depth", "6"}, {"subsample", "0.8"}, {"tree_method", "hist"},
        {"verbosity", ""}, {key47, val47},
    };
    gm_job_t job;
    make_job(&job);
    /* Turn the reference into a training job: no models, no outputs. */
    for (uint32_t i = 0; i < job.nmodels; i++) free(job.models[i].bytes);
    free(job.models);
    job.models = NULL;
    job.nmodels = 0;
    job.mode = GM_MODE_TRAIN;
    job.nprob = 0;
    job.realisations = 0;
    job.iterations = 1000;
    job.rounds = 250;
    job.seed = 0xfedcba9876543210ULL;
    job.nparams = NITEMS(params);
    for (size_t i = 0; i < NITEMS(params); i++) {
        strcpy(job.params[i].key, params[i].key);
        strcpy(job.params[i].value, params[i].value);
    }
    plan(&job);
    assert_int_equal(job.noutputs, 0);
    assert_null(job.outputs);
    job.id = 0x0102030405060708ULL;

    gm_job_t got;
    job_round_trip(&job, &got);
    assert_true(got.id == 0x0102030405060708ULL);
    assert_int_equal(got.mode, GM_MODE_TRAIN);
    assert_int_equal(got.xsize, 300);
    assert_int_equal(got.ysize, 217);
    assert_string_equal(got.crs, CRS_WKT);
    assert_int_equal(got.nbands, 4);
    assert_int_equal(got.kind, GM_KIND_CLASSIFICATION);
    assert_string_equal(got.objective, "multi:softprob");
    assert_int_equal(got.nclass, 5);
    assert_int_equal(got.iterations, 1000);
    assert_int_equal(got.rounds, 250);
    assert_true(got.seed == 0xfedcba9876543210ULL);
    assert_int_equal(got.nparams, 6);
    for (size_t i = 0; i < NITEMS(params); i++) {
        assert_string_equal(got.params[i].key, params[i].key);
        assert_string_equal(got.params[i].value, params[i].value);
    }
    assert_int_equal(got.noutputs, 0);
    assert_null(got.outputs);
    assert_int_equal(got.nmodels, 0);
    assert_null(got.models);
    assert_string_equal(got.tasks_ep, TASKS_EP);
    gm_job_clear(&got);

    /* The extremes: the largest seed, 4096 iterations, 64 parameters, no parameter at all. */
    job.seed = UINT64_MAX;
    job.iterations = 4096;
    job.nparams = GM_JOB_MAX_PARAMS;
    for (uint32_t i = 0; i < GM_JOB_MAX_PARAMS; i++) {
        snprintf(job.params[i].key, sizeof job.params[i].key, "key%u", i);
        snprintf(job.params[i].value, sizeof job.params[i].value, "%u", 1000 + i);
    }
    job_round_trip(&job, &got);
    assert_true(got.seed == UINT64_MAX);
    assert_int_equal(got.iterations, 4096);
    assert_int_equal(got.nparams, 64);
    assert_string_equal(got.params[0].key, "key0");
    assert_string_equal(got.params[0].value, "1000");
    assert_string_equal(got.params[63].key, "key63");
    assert_string_equal(got.params[63].value, "1063");
    gm_job_clear(&got);

    job.nparams = 0;
    job.seed = 0;
    job.kind = GM_KIND_REGRESSION;
    job.nclass = 0;
    strcpy(job.objective, "reg:squarederror");
    job_round_trip(&job, &got);
    assert_int_equal(got.mode, GM_MODE_TRAIN);
    assert_int_equal(got.kind, GM_KIND_REGRESSION);
    assert_int_equal(got.nparams, 0);
    assert_true(got.seed == 0);
    assert_null(got.outputs);
    assert_null(got.models);
    gm_job_clear(&got);
    gm_job_clear(&job);
}

/* A regression summary keeps its quantiles exactly, and each realisation its role and model index. */
static void test_round_trip_summarise(void **state) {
    (void)state;
    gm_job_t job = {.id = 42, .mode = GM_MODE_SUMMARISE, .xsize = 300, .ysize = 217, .gt = {0, 1, 0, 0, 0, -1},
                    .nbands = 4, .block_w = 128, .block_h = 128, .tile = 256, .kind = GM_KIND_REGRESSION,
                    .nquantiles = 5, .quantiles = {0.0, 0.05, 0.5, 0.95, 1.0}, .realisations = 1};
    strcpy(job.objective, "reg:squarederror");
    give_models(&job, 3, "json", 5);
    plan(&job);
    gm_job_t got;
    job_round_trip(&job, &got);
    assert_int_equal(got.mode, GM_MODE_SUMMARISE);
    assert_int_equal(got.kind, GM_KIND_REGRESSION);
    assert_int_equal(got.realisations, 1);
    assert_int_equal(got.nquantiles, 5);
    static const double want_q[5] = {0.0, 0.05, 0.5, 0.95, 1.0};
    for (int i = 0; i < 5; i++)
        if (got.quantiles[i] != want_q[i]) fail_msg("quantile %d: %.17g, expected %.17g", i, got.quantiles[i], want_q[i]);
    assert_int_equal(got.noutputs, 6); /* mean, sd, quantiles, 3 realisations */
    assert_output(&got.outputs[0], "mean", GM_ROLE_MEAN, 0, GM_DT_F32, 1, F32_LOWEST);
    assert_output(&got.outputs[1], "sd", GM_ROLE_SD, 0, GM_DT_F32, 1, F32_LOWEST);
    assert_output(&got.outputs[2], "quantiles", GM_ROLE_QUANTILE, 0, GM_DT_F32, 5, F32_LOWEST);
    assert_output(&got.outputs[3], "realisation-001", GM_ROLE_REALISATION, 0, GM_DT_F32, 1, F32_LOWEST);
    assert_output(&got.outputs[4], "realisation-002", GM_ROLE_REALISATION, 1, GM_DT_F32, 1, F32_LOWEST);
    assert_output(&got.outputs[5], "realisation-003", GM_ROLE_REALISATION, 2, GM_DT_F32, 1, F32_LOWEST);
    assert_int_equal(got.nmodels, 3);
    for (int m = 0; m < 3; m++) assert_int_equal(got.models[m].size, 5);
    gm_job_clear(&got);

    /* Realisation i shows model i - 1 and no other: realisation-001 showing model 2 (and realisation-003 model 0)
     * is refused at output 3, the first that differs from the plan. */
    job.outputs[3].model = 2;
    job.outputs[5].model = 0;
    expect_encoded_reject(&job, "output 3", "\"realisation-001\"");
    job.outputs[3].model = 0;
    job.outputs[5].model = 2;

    /* Nor may the files come in another order: realisation-003 (model 2) first, then 002, then 001. */
    const gm_output_t first = job.outputs[3];
    job.outputs[3] = job.outputs[5];
    job.outputs[5] = first;
    expect_encoded_reject(&job, "output 3 (\"realisation-003\")", "\"realisation-001\"");
    job.outputs[5] = job.outputs[3];
    job.outputs[3] = first;

    /* A "quantiles" file of 4 bands for 5 quantiles is refused, naming it. */
    job.outputs[2].bands = 4;
    expect_encoded_reject(&job, "output 2", "\"quantiles\"");
    job.outputs[2].bands = 5;
    job_round_trip(&job, &got); /* the restored plan decodes again */
    assert_int_equal(got.outputs[5].model, 2);
    gm_job_clear(&got);
    gm_job_clear(&job);

    /* 4096 models with a realisation each: 2 + 4096 outputs; the last shows model 4095. */
    gm_job_t big = {.mode = GM_MODE_SUMMARISE, .xsize = 1, .ysize = 1, .nbands = 1, .block_w = 1, .block_h = 1,
                    .tile = 16, .kind = GM_KIND_CLASSIFICATION, .nclass = 2, .nprob = 2, .realisations = 1};
    strcpy(big.objective, "binary:logistic");
    give_models(&big, 4096, "bin", 1);
    plan(&big);
    assert_int_equal(big.noutputs, 4102); /* 4 + 2 nprob + 4096 realisations, within GM_JOB_MAX_OUTPUTS */
    job_round_trip(&big, &got);
    assert_int_equal(got.noutputs, 4102);
    assert_int_equal(got.nmodels, 4096);
    assert_output(&got.outputs[6], "realisation-0001", GM_ROLE_REALISATION, 0, GM_DT_U8, 1, 255.0);
    assert_output(&got.outputs[4101], "realisation-4096", GM_ROLE_REALISATION, 4095, GM_DT_U8, 1, 255.0);
    gm_job_clear(&got);
    gm_job_clear(&big);
}

/* The encoder refuses an apply job with no planned outputs, an unknown mode, and an output without a type or
 * role; a training job without outputs encodes. */
static void test_encode_rejects(void **state) {
    (void)state;
    gm_job_t job;
    make_job(&job);
    job.noutputs = 0;
    void *buf = NULL;
    size_t len = 0;
    char err[GM_ERR_LEN] = "";
    assert_int_equal(gm_job_encode(&job, &buf, &len, err), -1);
    assert_err_has(err, "output");
    job.mode = GM_MODE_PREDICT;
    assert_int_equal(gm_job_encode(&job, &buf, &len, err), -1);
    assert_err_has(err, "output");
    job.mode = GM_MODE_SUMMARISE;
    job.noutputs = GM_JOB_MAX_OUTPUTS + 1;
    assert_int_equal(gm_job_encode(&job, &buf, &len, err), -1);
    job.noutputs = 8;

    const int modes[] = {0, 4, -1};
    for (size_t i = 0; i < NITEMS(modes); i++) {
        job.mode = (gm_job_mode_t)modes[i];
        err[0] = '\0';
        if (gm_job_encode(&job, &buf, &len, err) != -1) fail_msg("mode %d encoded", modes[i]);
        assert_err_has(err, "mode");
    }
    job.mode = GM_MODE_SUMMARISE;

    const int roles[] = {0, 12, -1};
    for (size_t i = 0; i < NITEMS(roles); i++) {
        job.outputs[3].role = (gm_output_role_t)roles[i];
        err[0] = '\0';
        if (gm_job_encode(&job, &buf, &len, err) != -1) fail_msg("role %d encoded", roles[i]);
        assert_err_has(err, "confusion");
    }
    job.outputs[3].role = GM_ROLE_CONFUSION;
    job.outputs[2].dtype = GM_DT_NONE;
    assert_int_equal(gm_job_encode(&job, &buf, &len, err), -1);
    assert_err_has(err, "entropy");
    job.outputs[2].dtype = GM_DT_F32;
    assert_int_equal(gm_job_encode(&job, &buf, &len, err), 0);
    free(buf);

    job.mode = GM_MODE_TRAIN;
    free(job.outputs);
    job.outputs = NULL;
    job.noutputs = 0;
    assert_int_equal(gm_job_encode(&job, &buf, &len, err), 0);
    free(buf);
    gm_job_clear(&job);
}

/* The hand-built reference header decodes to the reference job, independently of the encoder. */
static void test_decode_hand_built(void **state) {
    (void)state;
    size_t len;
    void *buf = build_job(NULL, NULL, NULL, &len);
    gm_job_t job;
    char err[GM_ERR_LEN] = "";
    if (gm_job_decode(buf, len, &job, err) != 0) fail_msg("decode: %s", err);
    free(buf);
    assert_true(job.id == 0x1122334455667788ULL);
    assert_reference_fields(&job);
    gm_job_clear(&job);
}

/* Model bytes attach only at an announced index and with the announced size. */
static void test_attach_model(void **state) {
    (void)state;
    size_t len;
    void *buf = build_job(NULL, NULL, NULL, &len);
    gm_job_t job;
    char err[GM_ERR_LEN] = "";
    assert_int_equal(gm_job_decode(buf, len, &job, err), 0);
    free(buf);

    /* Wrong sizes: one short, one long, empty. */
    err[0] = '\0';
    assert_int_equal(gm_job_attach_model(&job, 0, MODEL0, 13, err), -1);
    assert_err_has(err, "13");
    assert_err_has(err, "14");
    assert_int_equal(gm_job_attach_model(&job, 0, MODEL1, 15, err), -1);
    assert_int_equal(gm_job_attach_model(&job, 0, MODEL0, 0, err), -1);
    assert_int_equal(gm_job_attach_model(&job, 1, MODEL0, MODEL0_SIZE, err), -1); /* model 1 is 20 bytes */
    assert_err_has(err, "20");
    assert_null(job.models[0].bytes);
    assert_null(job.models[1].bytes);

    /* Indexes beyond the 2 announced. */
    const uint32_t beyond[] = {2, 3, 4096, UINT32_MAX};
    for (size_t i = 0; i < NITEMS(beyond); i++) {
        err[0] = '\0';
        if (gm_job_attach_model(&job, beyond[i], MODEL0, MODEL0_SIZE, err) != -1) fail_msg("index %u", beyond[i]);
        assert_err_has(err, "beyond");
    }

    /* The right sizes attach copies. */
    char *src = copy_bytes(MODEL1, MODEL1_SIZE);
    assert_int_equal(gm_job_attach_model(&job, 0, MODEL0, MODEL0_SIZE, err), 0);
    assert_int_equal(gm_job_attach_model(&job, 1, src, MODEL1_SIZE, err), 0);
    memset(src, 0, MODEL1_SIZE);
    free(src);
    assert_non_null(job.models[0].bytes);
    assert_memory_equal(job.models[0].bytes, MODEL0, MODEL0_SIZE);
    assert_memory_equal(job.models[1].bytes, MODEL1, MODEL1_SIZE);
    assert_int_equal(job.models[0].size, 14);
    assert_int_equal(job.models[1].size, 20);

    /* Attaching again replaces the bytes without leaking; a refused attach keeps the old ones. */
    char other[MODEL0_SIZE];
    memset(other, 'z', sizeof other);
    assert_int_equal(gm_job_attach_model(&job, 0, other, sizeof other, err), 0);
    assert_memory_equal(job.models[0].bytes, other, sizeof other);
    assert_int_equal(gm_job_attach_model(&job, 0, MODEL0, 1, err), -1);
    assert_memory_equal(job.models[0].bytes, other, sizeof other);
    gm_job_clear(&job);
}

/* ---- decode rejections ---- */

/* The frame as a whole: empty, garbage, truncated, trailing bytes, another kind, another version. */
static void test_decode_rejects_frame(void **state) {
    (void)state;
    gm_job_t job;
    char err[GM_ERR_LEN] = "";
    memset(&job, 0x5A, sizeof job);
    assert_int_equal(gm_job_decode(NULL, 0, &job, err), -1);
    assert_err_has(err, "empty");
    assert_job_cleared(&job);

    const unsigned char garbage[] = {0xc1, 0x00, 0x01};
    void *buf = copy_bytes(garbage, sizeof garbage);
    assert_int_equal(gm_job_decode(buf, sizeof garbage, &job, err), -1);
    free(buf);
    assert_err_has(err, "msgpack");
    assert_job_cleared(&job);

    /* Every strict prefix of the reference header. */
    size_t len;
    void *full = build_job(NULL, NULL, NULL, &len);
    for (size_t n = 0; n < len; n++) {
        void *prefix = copy_bytes(full, n);
        err[0] = '\0';
        int rc = gm_job_decode(prefix, n, &job, err);
        free(prefix);
        if (rc != -1) {
            gm_job_clear(&job);
            fail_msg("prefix of %zu of %zu bytes decoded", n, len);
        }
        assert_true(err[0] != '\0');
        assert_job_cleared(&job);
    }

    /* Trailing bytes. */
    unsigned char *longer = malloc(len + 1);
    assert_non_null(longer);
    memcpy(longer, full, len);
    longer[len] = 0xc0;
    assert_int_equal(gm_job_decode(longer, len + 1, &job, err), -1);
    free(longer);
    free(full);
    assert_err_has(err, "trailing");
    assert_job_cleared(&job);

    /* Another kind of message, another version, no version, no kind. */
    expect_job_reject(NULL, "t", t_task, "not a job");
    expect_job_reject(NULL, "t", t_unknown, "\"t\"");
    expect_job_reject(NULL, "v", v_2, "version");
    expect_job_reject("v", NULL, NULL, "\"v\"");
    expect_job_reject("t", NULL, NULL, "\"t\"");

    /* A frame that is an array, not a map. */
    const unsigned char array[] = {0x92, 0xa1, 'v', 0x01};
    buf = copy_bytes(array, sizeof array);
    assert_int_equal(gm_job_decode(buf, sizeof array, &job, err), -1);
    free(buf);
    assert_err_has(err, "not a msgpack map");
    assert_job_cleared(&job);
}

/* A header without any one of its keys is refused, naming the key. */
static void test_decode_rejects_missing_key(void **state) {
    (void)state;
    char needle[32];
    for (size_t i = 0; i < NITEMS(job_keys); i++) {
        snprintf(needle, sizeof needle, "\"%s\"", job_keys[i].key);
        expect_job_reject(job_keys[i].key, NULL, NULL, needle);
    }
}

static void gt_five(msgpack_packer *pk) {
    msgpack_pack_array(pk, 5);
    for (int i = 0; i < 5; i++) msgpack_pack_double(pk, GT[i]);
}
static void gt_seven(msgpack_packer *pk) {
    msgpack_pack_array(pk, 7);
    for (int i = 0; i < 6; i++) msgpack_pack_double(pk, GT[i]);
    msgpack_pack_double(pk, 0.0);
}
static void gt_empty(msgpack_packer *pk) { msgpack_pack_array(pk, 0); }
static void gt_scalar(msgpack_packer *pk) { msgpack_pack_double(pk, 30.0); }
static void gt_string(msgpack_packer *pk) { pstr(pk, "500000,30,0,4200000,0,-30"); }
static void gt_map(msgpack_packer *pk) { msgpack_pack_map(pk, 0); }
/* Six items with item 'bad' replaced by the value 'which' selects. */
static void gt_with(msgpack_packer *pk, int bad, int which) {
    msgpack_pack_array(pk, 6);
    for (int i = 0; i < 6; i++) {
        if (i != bad) { msgpack_pack_double(pk, GT[i]); continue; }
        switch (which) {
        case 0: msgpack_pack_double(pk, NAN); break;
        case 1: msgpack_pack_double(pk, INFINITY); break;
        case 2: msgpack_pack_double(pk, -INFINITY); break;
        case 3: pstr(pk, "30"); break;
        case 4: msgpack_pack_nil(pk); break;
        default: msgpack_pack_float(pk, NAN); break;
        }
    }
}
static void gt_nan(msgpack_packer *pk) { gt_with(pk, 3, 0); }
static void gt_nan_first(msgpack_packer *pk) { gt_with(pk, 0, 0); }
static void gt_inf(msgpack_packer *pk) { gt_with(pk, 1, 1); }
static void gt_neg_inf(msgpack_packer *pk) { gt_with(pk, 5, 2); }
static void gt_str_item(msgpack_packer *pk) { gt_with(pk, 1, 3); }
static void gt_nil_item(msgpack_packer *pk) { gt_with(pk, 2, 4); }
static void gt_nan_f32(msgpack_packer *pk) { gt_with(pk, 4, 5); }

/* "gt" must be an array of exactly 6 finite numbers. */
static void test_decode_rejects_gt(void **state) {
    (void)state;
    const pack_fn bad_shape[] = {gt_five, gt_seven, gt_empty, gt_scalar, gt_string, gt_map, gt_str_item, gt_nil_item};
    for (size_t i = 0; i < NITEMS(bad_shape); i++) expect_job_reject(NULL, "gt", bad_shape[i], "\"gt\"");
    const pack_fn not_finite[] = {gt_nan, gt_nan_first, gt_inf, gt_neg_inf, gt_nan_f32};
    for (size_t i = 0; i < NITEMS(not_finite); i++) {
        expect_job_reject(NULL, "gt", not_finite[i], "\"gt\"");
        expect_job_reject(NULL, "gt", not_finite[i], "finite");
    }
}

static void u_0(msgpack_packer *pk) { msgpack_pack_uint8(pk, 0); }
static void u_1(msgpack_packer *pk) { msgpack_pack_uint8(pk, 1); }
static void u_2(msgpack_packer *pk) { msgpack_pack_uint8(pk, 2); }
static void u_3(msgpack_packer *pk) { msgpack_pack_uint8(pk, 3); }
static void u_8(msgpack_packer *pk) { msgpack_pack_uint8(pk, 8); }
static void u_17(msgpack_packer *pk) { msgpack_pack_uint8(pk, 17); }
static void u_4097(msgpack_packer *pk) { msgpack_pack_uint16(pk, 4097); }
static void u_8193(msgpack_packer *pk) { msgpack_pack_uint16(pk, 8193); }
static void u_8208(msgpack_packer *pk) { msgpack_pack_uint16(pk, 8208); }
static void u_65536(msgpack_packer *pk) { msgpack_pack_uint32(pk, 65536); }
static void u_2p31(msgpack_packer *pk) { msgpack_pack_uint32(pk, 2147483648u); }
static void u_int32_max(msgpack_packer *pk) { msgpack_pack_uint32(pk, 2147483647u); }
static void i_neg1(msgpack_packer *pk) { msgpack_pack_int8(pk, -1); }
static void f_4(msgpack_packer *pk) { msgpack_pack_double(pk, 4.0); }
static void s_4(msgpack_packer *pk) { pstr(pk, "4"); }
static void nil(msgpack_packer *pk) { msgpack_pack_nil(pk); }
static void true_(msgpack_packer *pk) { msgpack_pack_true(pk); }
static void u_4096(msgpack_packer *pk) { msgpack_pack_uint16(pk, 4096); }
static void u64_max(msgpack_packer *pk) { msgpack_pack_uint64(pk, UINT64_MAX); }

/* Unsigned keys refuse negative, float, string, nil and boolean values and values out of their range. */
static void test_decode_rejects_numbers(void **state) {
    (void)state;
    const char *uint_keys[] = {"id",    "xsize", "ysize",      "bands",  "bw",  "bh",
                               "tile",  "nclass", "nprob",     "iterations", "rounds", "seed"};
    const pack_fn wrong_type[] = {i_neg1, f_4, s_4, nil, true_};
    char needle[32];
    for (size_t k = 0; k < NITEMS(uint_keys); k++) {
        snprintf(needle, sizeof needle, "\"%s\"", uint_keys[k]);
        for (size_t i = 0; i < NITEMS(wrong_type); i++) expect_job_reject(NULL, uint_keys[k], wrong_type[i], needle);
    }
    /* Zero sizes. */
    expect_job_reject(NULL, "xsize", u_0, "\"xsize\"");
    expect_job_reject(NULL, "ysize", u_0, "\"ysize\"");
    expect_job_reject(NULL, "bands", u_0, "\"bands\"");
    expect_job_reject(NULL, "bw", u_0, "\"bw\"");
    expect_job_reject(NULL, "bh", u_0, "\"bh\"");
    expect_job_reject(NULL, "tile", u_0, "\"tile\"");
    /* Above the limits. */
    expect_job_reject(NULL, "xsize", u_2p31, "\"xsize\"");
    expect_job_reject(NULL, "ysize", u_2p31, "\"ysize\"");
    expect_job_reject(NULL, "bands", u_4097, "\"bands\"");
    expect_job_reject(NULL, "bw", u_8193, "\"bw\"");
    expect_job_reject(NULL, "bh", u_8193, "\"bh\"");
    expect_job_reject(NULL, "tile", u_8208, "\"tile\"");
    expect_job_reject(NULL, "nclass", u_65536, "\"nclass\"");
    /* Tiles are multiples of 16 from 16 up. */
    expect_job_reject(NULL, "tile", u_8, "\"tile\"");
    expect_job_reject(NULL, "tile", u_17, "\"tile\"");
    expect_job_reject(NULL, "nprob", u_65536, "\"nprob\"");
    expect_job_reject(NULL, "iterations", u_4097, "\"iterations\""); /* one model per iteration, 4096 at most */
    /* "probabilities" and "realisations" are booleans. */
    expect_job_reject(NULL, "probabilities", u_1, "\"probabilities\"");
    expect_job_reject(NULL, "probabilities", nil, "\"probabilities\"");
    expect_job_reject(NULL, "realisations", u_1, "\"realisations\"");
    expect_job_reject(NULL, "realisations", nil, "\"realisations\"");
    expect_job_reject(NULL, "realisations", s_4, "\"realisations\"");

    /* The limits themselves decode: 4096 iterations, the largest seed. */
    const job_edit_t edges[] = {{"iterations", u_4096}, {"seed", u64_max}};
    size_t len;
    void *buf = build_job_edits(NULL, edges, NITEMS(edges), &len);
    gm_job_t job;
    char err[GM_ERR_LEN] = "";
    if (gm_job_decode(buf, len, &job, err) != 0) fail_msg("iterations 4096, seed 2^64-1: %s", err);
    free(buf);
    assert_int_equal(job.iterations, 4096);
    assert_true(job.seed == UINT64_MAX);
    gm_job_clear(&job);
}

static void kind_cluster(msgpack_packer *pk) { pstr(pk, "cluster"); }
static void kind_empty(msgpack_packer *pk) { pstr(pk, ""); }
static void kind_upper(msgpack_packer *pk) { pstr(pk, "Classification"); }
static void kind_nul(msgpack_packer *pk) {
    msgpack_pack_str(pk, 11);
    msgpack_pack_str_body(pk, "regression\0", 11);
}
static void kind_long(msgpack_packer *pk) { pstr(pk, "classificationxx"); }
static void kind_regression(msgpack_packer *pk) { pstr(pk, "regression"); }
/* The reference's summary as a regression: mean, sd, then one f32 realisation per model (2). */
#define NREG_OUTPUTS 4
static const out_spec_t REG_OUTPUTS[NREG_OUTPUTS] = {
    {"mean", "mean", 0, "f32", 1, F32_LOWEST},
    {"sd", "sd", 0, "f32", 1, F32_LOWEST},
    {"realisation-001", "realisation", 0, "f32", 1, F32_LOWEST},
    {"realisation-002", "realisation", 1, "f32", 1, F32_LOWEST},
};
static void outputs_reg(msgpack_packer *pk) { pack_outputs(pk, REG_OUTPUTS, NREG_OUTPUTS); }
static void crs_int(msgpack_packer *pk) { msgpack_pack_uint8(pk, 4); }
static void crs_nul(msgpack_packer *pk) {
    msgpack_pack_str(pk, 9);
    msgpack_pack_str_body(pk, "EPSG\0:326", 9);
}
static void objective_64(msgpack_packer *pk) {
    char s[65];
    memset(s, 'o', 64);
    s[64] = '\0';
    pstr(pk, s);
}
static void endpoint_256(msgpack_packer *pk) {
    char s[257] = "tcp://";
    memset(s + 6, 'h', 250);
    s[256] = '\0';
    pstr(pk, s);
}

/* "kind" is "regression" or "classification"; a classification has at least 2 classes; strings fit. */
static void test_decode_rejects_kind_and_strings(void **state) {
    (void)state;
    const pack_fn bad_kind[] = {kind_cluster, kind_empty, kind_upper, kind_nul, kind_long, u_1, nil};
    for (size_t i = 0; i < NITEMS(bad_kind); i++) expect_job_reject(NULL, "kind", bad_kind[i], "\"kind\"");
    expect_job_reject(NULL, "kind", kind_cluster, "cluster");

    expect_job_reject(NULL, "nclass", u_1, "classification");
    expect_job_reject(NULL, "nclass", u_1, "1 class");
    expect_job_reject(NULL, "nclass", u_0, "classification");

    /* A regression may carry nclass 0 (the encoder writes it), with a regression's outputs: mean, sd and 2
     * f32 realisations. */
    const job_edit_t reg[] = {{"kind", kind_regression}, {"nclass", u_0}, {"outputs", outputs_reg}};
    gm_job_t job;
    decode_edits(reg, NITEMS(reg), &job, "regression with nclass 0");
    assert_int_equal(job.kind, GM_KIND_REGRESSION);
    assert_int_equal(job.nclass, 0);
    assert_int_equal(job.noutputs, 4);
    assert_output(&job.outputs[0], "mean", GM_ROLE_MEAN, 0, GM_DT_F32, 1, F32_LOWEST);
    assert_output(&job.outputs[1], "sd", GM_ROLE_SD, 0, GM_DT_F32, 1, F32_LOWEST);
    assert_output(&job.outputs[2], "realisation-001", GM_ROLE_REALISATION, 0, GM_DT_F32, 1, F32_LOWEST);
    assert_output(&job.outputs[3], "realisation-002", GM_ROLE_REALISATION, 1, GM_DT_F32, 1, F32_LOWEST);
    gm_job_clear(&job);
    /* The same regression keeping the classification's 8 outputs is refused: its options call for 4. */
    expect_edits_reject(reg, 2, "8 outputs", "call for 4");

    expect_job_reject(NULL, "crs", crs_int, "\"crs\"");
    expect_job_reject(NULL, "crs", crs_nul, "\"crs\"");
    expect_job_reject(NULL, "objective", objective_64, "\"objective\"");
    expect_job_reject(NULL, "objective", nil, "\"objective\"");
    expect_job_reject(NULL, "tasks", endpoint_256, "\"tasks\"");
    expect_job_reject(NULL, "results", endpoint_256, "\"results\"");
    expect_job_reject(NULL, "acks", endpoint_256, "\"acks\"");
    expect_job_reject(NULL, "acks", u_1, "\"acks\"");
}

static void outputs_empty(msgpack_packer *pk) { msgpack_pack_array(pk, 0); }
/* 'n' one-band f32 outputs named out0, out1, ... */
static void outputs_n(msgpack_packer *pk, int n) {
    char name[16];
    msgpack_pack_array(pk, (size_t)n);
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "out%d", i);
        pack_output(pk, name, "mean", 0, "f32", 1, 0.0);
    }
}
/* GM_JOB_MAX_OUTPUTS = 4096 + 16 = 4112 outputs, and one more. */
static void outputs_most(msgpack_packer *pk) { outputs_n(pk, 4112); }
/* The largest plan a job can have: the reference's 6 summaries of 5 classes and 2 most probable, then
 * realisation-0001 to realisation-4096 (4 digits from 1000 models) of models 0 to 4095: 4102 outputs. */
static void outputs_4102(msgpack_packer *pk) {
    char name[32];
    msgpack_pack_array(pk, 4102);
    for (int i = 0; i < 6; i++)
        pack_output(pk, REF_OUTPUTS[i].name, REF_OUTPUTS[i].role, 0, REF_OUTPUTS[i].dt, REF_OUTPUTS[i].n,
                    REF_OUTPUTS[i].nodata);
    for (uint32_t m = 0; m < 4096; m++) {
        snprintf(name, sizeof name, "realisation-%04u", m + 1);
        pack_output(pk, name, "realisation", m, "u8", 1, 255.0);
    }
}
static void outputs_too_many(msgpack_packer *pk) { outputs_n(pk, 4113); }
static void outputs_map(msgpack_packer *pk) { msgpack_pack_map(pk, 0); }
/* A one-output array whose output is named 'name'. */
static void outputs_named(msgpack_packer *pk, const char *name, size_t len) {
    msgpack_pack_array(pk, 1);
    msgpack_pack_map(pk, 6);
    pstr(pk, "name");
    msgpack_pack_str(pk, len);
    msgpack_pack_str_body(pk, name, len);
    pstr(pk, "role");
    pstr(pk, "class");
    pstr(pk, "model");
    msgpack_pack_uint8(pk, 0);
    pstr(pk, "dt");
    pstr(pk, "u8");
    pstr(pk, "n");
    msgpack_pack_uint8(pk, 1);
    pstr(pk, "nodata");
    msgpack_pack_double(pk, 255.0);
}
static void name_slash(msgpack_packer *pk) { outputs_named(pk, "a/b", 3); }
static void name_root(msgpack_packer *pk) { outputs_named(pk, "/etc", 4); }
static void name_dotdot(msgpack_packer *pk) { outputs_named(pk, "..", 2); }
static void name_up(msgpack_packer *pk) { outputs_named(pk, "../class", 8); }
static void name_dot(msgpack_packer *pk) { outputs_named(pk, "class.tif", 9); }
static void name_backslash(msgpack_packer *pk) { outputs_named(pk, "a\\b", 3); }
static void name_space(msgpack_packer *pk) { outputs_named(pk, "my class", 8); }
static void name_empty(msgpack_packer *pk) { outputs_named(pk, "", 0); }
static void name_nul(msgpack_packer *pk) { outputs_named(pk, "class\0x", 7); }
static void name_32(msgpack_packer *pk) { outputs_named(pk, "abcdefghijklmnopqrstuvwxyz012345", 32); }
/* The reference outputs with "class" renamed to the longest name the field holds. */
static void name_31(msgpack_packer *pk) {
    pack_ref_outputs_with(pk, 1, (out_spec_t){"abcdefghijklmnopqrstuvwxyz01234", "class", 0, "u8", 1, 255.0});
}
static void output_not_map(msgpack_packer *pk) {
    msgpack_pack_array(pk, 1);
    pstr(pk, "class");
}
static void output_dt_f16(msgpack_packer *pk) {
    msgpack_pack_array(pk, 1);
    pack_output(pk, "class", "class", 0, "f16", 1, 0.0);
}
static void output_n_0(msgpack_packer *pk) {
    msgpack_pack_array(pk, 1);
    pack_output(pk, "class", "class", 0, "u8", 0, 255.0);
}
static void output_n_4097(msgpack_packer *pk) {
    msgpack_pack_array(pk, 1);
    pack_output(pk, "probability", "probability", 0, "f32", 4097, 0.0);
}
static void output_nodata_str(msgpack_packer *pk) {
    msgpack_pack_array(pk, 1);
    msgpack_pack_map(pk, 6);
    pstr(pk, "name");
    pstr(pk, "class");
    pstr(pk, "role");
    pstr(pk, "class");
    pstr(pk, "model");
    msgpack_pack_uint8(pk, 0);
    pstr(pk, "dt");
    pstr(pk, "u8");
    pstr(pk, "n");
    msgpack_pack_uint8(pk, 1);
    pstr(pk, "nodata");
    pstr(pk, "255");
}
static void output_no_name(msgpack_packer *pk) {
    msgpack_pack_array(pk, 1);
    msgpack_pack_map(pk, 5);
    pstr(pk, "role");
    pstr(pk, "class");
    pstr(pk, "model");
    msgpack_pack_uint8(pk, 0);
    pstr(pk, "dt");
    pstr(pk, "u8");
    pstr(pk, "n");
    msgpack_pack_uint8(pk, 1);
    pstr(pk, "nodata");
    msgpack_pack_double(pk, 255.0);
}

static void models_4097(msgpack_packer *pk) {
    msgpack_pack_array(pk, 4097);
    for (int i = 0; i < 4097; i++) pack_model(pk, "bin", 1);
}
static void models_4096(msgpack_packer *pk) {
    msgpack_pack_array(pk, 4096);
    for (int i = 0; i < 4096; i++) pack_model(pk, "bin", 1);
}
static void models_one(msgpack_packer *pk) {
    msgpack_pack_array(pk, 1);
    pack_model(pk, "json", MODEL0_SIZE);
}

/* "outputs" holds 1 to 4112 maps, each with a plain file stem as its name, a known type and 1+ bands. */
static void test_decode_rejects_outputs(void **state) {
    (void)state;
    expect_job_reject(NULL, "outputs", outputs_empty, "\"outputs\"");
    expect_job_reject(NULL, "outputs", outputs_too_many, "\"outputs\"");
    expect_job_reject(NULL, "outputs", outputs_map, "\"outputs\"");
    expect_job_reject(NULL, "outputs", nil, "\"outputs\"");
    expect_job_reject(NULL, "outputs", name_slash, "a/b");
    expect_job_reject(NULL, "outputs", name_root, "/etc");
    expect_job_reject(NULL, "outputs", name_dotdot, "\"..\"");
    expect_job_reject(NULL, "outputs", name_up, "../class");
    expect_job_reject(NULL, "outputs", name_dot, "class.tif");
    expect_job_reject(NULL, "outputs", name_backslash, "a\\b");
    expect_job_reject(NULL, "outputs", name_space, "my class");
    expect_job_reject(NULL, "outputs", name_empty, "name");
    expect_job_reject(NULL, "outputs", name_nul, "\"name\"");
    expect_job_reject(NULL, "outputs", name_32, "\"name\"");
    expect_job_reject(NULL, "outputs", output_not_map, "output 0");
    expect_job_reject(NULL, "outputs", output_dt_f16, "f16");
    expect_job_reject(NULL, "outputs", output_n_0, "\"n\"");
    expect_job_reject(NULL, "outputs", output_n_4097, "\"n\"");
    expect_job_reject(NULL, "outputs", output_nodata_str, "\"nodata\"");
    expect_job_reject(NULL, "outputs", output_no_name, "\"name\"");

    /* The limits pass the checks of the array and its names, and reach the plan, which no such job matches:
     * 4112 outputs where the reference calls for 8; a 31-character name, read whole, where it calls for
     * "class". */
    expect_job_reject(NULL, "outputs", outputs_most, "4112 outputs");
    expect_job_reject(NULL, "outputs", outputs_most, "call for 8");
    expect_job_reject(NULL, "outputs", name_31, "output 1 (\"abcdefghijklmnopqrstuvwxyz01234\")");
    expect_job_reject(NULL, "outputs", name_31, "\"class\"");

    /* The most outputs a job can plan decode: 4096 models with a realisation each, 4102 outputs. */
    const job_edit_t most[] = {{"outputs", outputs_4102}, {"models", models_4096}};
    gm_job_t job;
    decode_edits(most, NITEMS(most), &job, "4102 outputs");
    assert_int_equal(job.noutputs, 4102);
    assert_output(&job.outputs[5], "nprob_probability", GM_ROLE_NPROB_PROB, 0, GM_DT_F32, 2, F32_LOWEST);
    assert_output(&job.outputs[6], "realisation-0001", GM_ROLE_REALISATION, 0, GM_DT_U8, 1, 255.0);
    assert_output(&job.outputs[4101], "realisation-4096", GM_ROLE_REALISATION, 4095, GM_DT_U8, 1, 255.0);
    gm_job_clear(&job);
}

static void models_empty(msgpack_packer *pk) { msgpack_pack_array(pk, 0); }
static void models_map(msgpack_packer *pk) { msgpack_pack_map(pk, 0); }
static void models_size0(msgpack_packer *pk) {
    msgpack_pack_array(pk, 2);
    pack_model(pk, "json", MODEL0_SIZE);
    pack_model(pk, "ubj", 0);
}
static void models_too_big(msgpack_packer *pk) {
    msgpack_pack_array(pk, 1);
    pack_model(pk, "json", ((uint64_t)1 << 31) + 1);
}
static void models_size_neg(msgpack_packer *pk) {
    msgpack_pack_array(pk, 1);
    msgpack_pack_map(pk, 2);
    pstr(pk, "format");
    pstr(pk, "json");
    pstr(pk, "size");
    msgpack_pack_int8(pk, -14);
}
static void models_no_size(msgpack_packer *pk) {
    msgpack_pack_array(pk, 1);
    msgpack_pack_map(pk, 1);
    pstr(pk, "format");
    pstr(pk, "json");
}
static void models_no_format(msgpack_packer *pk) {
    msgpack_pack_array(pk, 1);
    msgpack_pack_map(pk, 1);
    pstr(pk, "size");
    msgpack_pack_uint8(pk, 14);
}
static void models_not_map(msgpack_packer *pk) {
    msgpack_pack_array(pk, 1);
    msgpack_pack_uint8(pk, 14);
}

/* "models" holds 1 to 4096 maps, each with a format and a size of 1 byte to 2 GiB. */
static void test_decode_rejects_models(void **state) {
    (void)state;
    expect_job_reject(NULL, "models", models_empty, "\"models\"");
    expect_job_reject(NULL, "models", models_map, "\"models\"");
    expect_job_reject(NULL, "models", nil, "\"models\"");
    expect_job_reject(NULL, "models", models_4097, "\"models\"");
    expect_job_reject(NULL, "models", models_size0, "model 1");
    expect_job_reject(NULL, "models", models_size0, "empty");
    expect_job_reject(NULL, "models", models_too_big, "\"size\"");
    expect_job_reject(NULL, "models", models_size_neg, "\"size\"");
    expect_job_reject(NULL, "models", models_no_size, "\"size\"");
    expect_job_reject(NULL, "models", models_no_format, "\"format\"");
    expect_job_reject(NULL, "models", models_not_map, "model 0");

    /* 4096 models decode with their 4102 outputs (a realisation each)... */
    const job_edit_t most[] = {{"outputs", outputs_4102}, {"models", models_4096}};
    gm_job_t job;
    decode_edits(most, NITEMS(most), &job, "4096 models");
    assert_int_equal(job.nmodels, 4096);
    assert_string_equal(job.models[4095].format, "bin");
    assert_int_equal(job.models[4095].size, 1);
    assert_int_equal(job.noutputs, 4102);
    gm_job_clear(&job);
    /* ... not with the reference's 8, whose 2 realisations were planned for 2 models: 4 + 2 + 4096 = 4102. */
    expect_job_reject(NULL, "models", models_4096, "8 outputs");
    expect_job_reject(NULL, "models", models_4096, "call for 4102");
    /* Nor one model with 2 realisations: 4 + 2 + 1 = 7. */
    expect_job_reject(NULL, "models", models_one, "call for 7");
}

/* ---- decode: modes, roles, quantiles, parameters ---- */

static void mode_predict(msgpack_packer *pk) { pstr(pk, "predict"); }
static void mode_train(msgpack_packer *pk) { pstr(pk, "train"); }
static void mode_upper(msgpack_packer *pk) { pstr(pk, "Predict"); }
static void mode_empty(msgpack_packer *pk) { pstr(pk, ""); }
static void mode_training(msgpack_packer *pk) { pstr(pk, "training"); }
static void mode_summarize(msgpack_packer *pk) { pstr(pk, "summarize"); }
static void mode_apply(msgpack_packer *pk) { pstr(pk, "apply"); }
static void mode_long(msgpack_packer *pk) { pstr(pk, "summarisesummarise"); }
static void mode_nul(msgpack_packer *pk) {
    msgpack_pack_str(pk, 8);
    msgpack_pack_str_body(pk, "predict\0", 8);
}

/* "mode" is one of "predict", "train", "summarise", spelt exactly. */
static void test_decode_rejects_mode(void **state) {
    (void)state;
    const pack_fn bad[] = {mode_upper, mode_empty, mode_training, mode_summarize, mode_apply, mode_long,
                           mode_nul,   u_1,        u_2,           nil,            true_};
    for (size_t i = 0; i < NITEMS(bad); i++) expect_job_reject(NULL, "mode", bad[i], "\"mode\"");
    expect_job_reject("mode", NULL, NULL, "\"mode\"");
}

/* One output map: 'role' packed as 'rlen' bytes, model index 'model' (negative: packed as that negative
 * integer), no "role" key when 'role' is NULL, no "model" key when 'with_model' is 0. */
static void pack_output_role(msgpack_packer *pk, const char *name, const char *role, size_t rlen, int with_model,
                             int64_t model) {
    msgpack_pack_map(pk, 4 + (role ? 1 : 0) + (with_model ? 1 : 0));
    pstr(pk, "name");
    pstr(pk, name);
    if (role) {
        pstr(pk, "role");
        msgpack_pack_str(pk, rlen);
        msgpack_pack_str_body(pk, role, rlen);
    }
    if (with_model) {
        pstr(pk, "model");
        if (model < 0) msgpack_pack_int64(pk, model);
        else msgpack_pack_uint64(pk, (uint64_t)model);
    }
    pstr(pk, "dt");
    pstr(pk, "u8");
    pstr(pk, "n");
    msgpack_pack_uint8(pk, 1);
    pstr(pk, "nodata");
    msgpack_pack_double(pk, 255.0);
}
/* The reference summary's class output, then one output with the given role and model. */
static void outputs_with(msgpack_packer *pk, const char *role, size_t rlen, int with_model, int64_t model) {
    msgpack_pack_array(pk, 2);
    pack_output(pk, "class", "class", 0, "u8", 1, 255.0);
    pack_output_role(pk, "realisation-002", role, rlen, with_model, model);
}
#define ROLE(s) (s), sizeof(s) - 1
static void role_us(msgpack_packer *pk) { outputs_with(pk, ROLE("realization"), 1, 0); }
static void role_upper(msgpack_packer *pk) { outputs_with(pk, ROLE("Class"), 1, 0); }
static void role_empty(msgpack_packer *pk) { outputs_with(pk, ROLE(""), 1, 0); }
static void role_plural(msgpack_packer *pk) { outputs_with(pk, ROLE("realisations"), 1, 0); }
static void role_prefix(msgpack_packer *pk) { outputs_with(pk, ROLE("nprob"), 1, 0); }
static void role_mode(msgpack_packer *pk) { outputs_with(pk, ROLE("predict"), 1, 0); }
static void role_quantiles(msgpack_packer *pk) { outputs_with(pk, ROLE("quantiles"), 1, 0); }
static void role_nul(msgpack_packer *pk) { outputs_with(pk, ROLE("class\0"), 1, 0); }
static void role_long(msgpack_packer *pk) { outputs_with(pk, ROLE("nprob_probabilitynprob_probability"), 1, 0); }
static void role_missing(msgpack_packer *pk) { outputs_with(pk, NULL, 0, 1, 0); }
static void role_number(msgpack_packer *pk) {
    msgpack_pack_array(pk, 1);
    msgpack_pack_map(pk, 6);
    pstr(pk, "name");
    pstr(pk, "class");
    pstr(pk, "role");
    msgpack_pack_uint8(pk, 2);
    pstr(pk, "model");
    msgpack_pack_uint8(pk, 0);
    pstr(pk, "dt");
    pstr(pk, "u8");
    pstr(pk, "n");
    msgpack_pack_uint8(pk, 1);
    pstr(pk, "nodata");
    msgpack_pack_double(pk, 255.0);
}
static void model_missing(msgpack_packer *pk) { outputs_with(pk, ROLE("realisation"), 0, 0); }
static void model_negative(msgpack_packer *pk) { outputs_with(pk, ROLE("realisation"), 1, -1); }
static void model_4096(msgpack_packer *pk) { outputs_with(pk, ROLE("realisation"), 1, 4096); }
static void model_2p32(msgpack_packer *pk) { outputs_with(pk, ROLE("realisation"), 1, (int64_t)1 << 32); }
/* The reference outputs with realisation-002 (output 7) showing model 'model'. The reference has 2 models, 0 and
 * 1: model 2 or 4095 is one the job lacks, model 0 is realisation-001's, model 1 is the right one. */
static void ref_realisation_002_of(msgpack_packer *pk, uint32_t model) {
    pack_ref_outputs_with(pk, 7, (out_spec_t){"realisation-002", "realisation", model, "u8", 1, 255.0});
}
static void model_2(msgpack_packer *pk) { ref_realisation_002_of(pk, 2); }
static void model_4095(msgpack_packer *pk) { ref_realisation_002_of(pk, 4095); }
static void model_1(msgpack_packer *pk) { ref_realisation_002_of(pk, 1); }
static void model_0(msgpack_packer *pk) { ref_realisation_002_of(pk, 0); }
/* Every role name, one output each, in the order gm_job.h lists them. */
static void roles_all(msgpack_packer *pk) {
    static const char *names[] = {"prediction", "class", "probability", "entropy", "confusion", "nprob_class",
                                  "nprob_probability", "mean", "sd", "quantile", "realisation"};
    char name[16];
    msgpack_pack_array(pk, NITEMS(names));
    for (size_t i = 0; i < NITEMS(names); i++) {
        snprintf(name, sizeof name, "out%zu", i);
        pack_output(pk, name, names[i], i == 10 ? 1 : 0, "f32", 1, 0.0);
    }
}

/* Quantiles 0.05, 0.5, 0.95. */
static void q_three(msgpack_packer *pk) {
    msgpack_pack_array(pk, 3);
    msgpack_pack_double(pk, 0.05);
    msgpack_pack_double(pk, 0.5);
    msgpack_pack_double(pk, 0.95);
}
/* A regression summary of the reference's 2 models with 3 quantiles: mean, sd, quantiles (f32, 3 bands), then
 * realisation-001 and -002 (f32). */
#define NREG_Q_OUTPUTS 5
static const out_spec_t REG_Q_OUTPUTS[NREG_Q_OUTPUTS] = {
    {"mean", "mean", 0, "f32", 1, F32_LOWEST},
    {"sd", "sd", 0, "f32", 1, F32_LOWEST},
    {"quantiles", "quantile", 0, "f32", 3, F32_LOWEST},
    {"realisation-001", "realisation", 0, "f32", 1, F32_LOWEST},
    {"realisation-002", "realisation", 1, "f32", 1, F32_LOWEST},
};
static void outputs_reg_q(msgpack_packer *pk) { pack_outputs(pk, REG_Q_OUTPUTS, NREG_Q_OUTPUTS); }
/* The edits that make the reference header that regression summary; the outputs edit comes last. */
#define REG_Q_EDITS(outputs)                                                                          \
    {"kind", kind_regression}, {"objective", objective_reg}, {"nclass", u_0}, {"nprob", u_0},        \
        {"quantiles", q_three}, {"outputs", (outputs)}
static void objective_reg(msgpack_packer *pk) { pstr(pk, "reg:squarederror"); }

/* Each output has a known "role" string and a "model" index; a realisation shows its own model. */
static void test_decode_rejects_roles(void **state) {
    (void)state;
    const pack_fn unknown[] = {role_us, role_upper, role_empty, role_plural, role_prefix, role_mode, role_quantiles};
    for (size_t i = 0; i < NITEMS(unknown); i++) {
        expect_job_reject(NULL, "outputs", unknown[i], "role");
        expect_job_reject(NULL, "outputs", unknown[i], "realisation-002");
    }
    expect_job_reject(NULL, "outputs", role_nul, "\"role\"");
    expect_job_reject(NULL, "outputs", role_long, "\"role\"");
    expect_job_reject(NULL, "outputs", role_missing, "\"role\"");
    expect_job_reject(NULL, "outputs", role_number, "\"role\"");

    expect_job_reject(NULL, "outputs", model_missing, "\"model\"");
    expect_job_reject(NULL, "outputs", model_negative, "\"model\"");
    expect_job_reject(NULL, "outputs", model_4096, "\"model\"");
    expect_job_reject(NULL, "outputs", model_2p32, "\"model\"");
    /* realisation-002 (output 7) must show model 1: model 2 or 4095, which the job lacks, and model 0, which
     * is realisation-001's, are refused naming the output. */
    const pack_fn wrong_model[] = {model_2, model_4095, model_0};
    for (size_t i = 0; i < NITEMS(wrong_model); i++) {
        expect_job_reject(NULL, "outputs", wrong_model[i], "output 7");
        expect_job_reject(NULL, "outputs", wrong_model[i], "\"realisation-002\"");
    }
    /* One output of every role is no plan of any job: 11 outputs where the reference calls for 8. */
    expect_job_reject(NULL, "outputs", roles_all, "11 outputs");
    expect_job_reject(NULL, "outputs", roles_all, "call for 8");

    /* Realisation-002 of model 1 is the reference itself, and decodes with the reference's 7 roles. */
    size_t len;
    void *buf = build_job(NULL, "outputs", model_1, &len);
    gm_job_t job;
    char err[GM_ERR_LEN] = "";
    if (gm_job_decode(buf, len, &job, err) != 0) fail_msg("realisation-002 of model 1: %s", err);
    free(buf);
    assert_reference_outputs(&job);
    gm_job_clear(&job);

    /* "mean", "sd" and "quantile" decode in a regression summary ("prediction": test_decode_models_per_mode). */
    const job_edit_t reg_q[] = {REG_Q_EDITS(outputs_reg_q)};
    decode_edits(reg_q, NITEMS(reg_q), &job, "regression summary with 3 quantiles");
    assert_int_equal(job.kind, GM_KIND_REGRESSION);
    assert_int_equal(job.nquantiles, 3);
    assert_int_equal(job.noutputs, 5);
    assert_output(&job.outputs[0], "mean", GM_ROLE_MEAN, 0, GM_DT_F32, 1, F32_LOWEST);
    assert_output(&job.outputs[1], "sd", GM_ROLE_SD, 0, GM_DT_F32, 1, F32_LOWEST);
    assert_output(&job.outputs[2], "quantiles", GM_ROLE_QUANTILE, 0, GM_DT_F32, 3, F32_LOWEST);
    assert_output(&job.outputs[3], "realisation-001", GM_ROLE_REALISATION, 0, GM_DT_F32, 1, F32_LOWEST);
    assert_output(&job.outputs[4], "realisation-002", GM_ROLE_REALISATION, 1, GM_DT_F32, 1, F32_LOWEST);
    gm_job_clear(&job);
}

/* Quantile lists for the rejection and acceptance tests. */
static void q_below(msgpack_packer *pk) {
    msgpack_pack_array(pk, 1);
    msgpack_pack_double(pk, -0.01);
}
static void q_above(msgpack_packer *pk) {
    msgpack_pack_array(pk, 1);
    msgpack_pack_double(pk, 1.01);
}
static void q_second_above(msgpack_packer *pk) {
    msgpack_pack_array(pk, 2);
    msgpack_pack_double(pk, 0.5);
    msgpack_pack_double(pk, 1.5);
}
static void q_uint2(msgpack_packer *pk) {
    msgpack_pack_array(pk, 1);
    msgpack_pack_uint8(pk, 2);
}
static void q_neg1(msgpack_packer *pk) {
    msgpack_pack_array(pk, 1);
    msgpack_pack_int8(pk, -1);
}
static void q_nan(msgpack_packer *pk) {
    msgpack_pack_array(pk, 1);
    msgpack_pack_double(pk, NAN);
}
static void q_nan_f32(msgpack_packer *pk) {
    msgpack_pack_array(pk, 1);
    msgpack_pack_float(pk, NAN);
}
static void q_inf(msgpack_packer *pk) {
    msgpack_pack_array(pk, 1);
    msgpack_pack_double(pk, INFINITY);
}
static void q_neg_inf(msgpack_packer *pk) {
    msgpack_pack_array(pk, 1);
    msgpack_pack_double(pk, -INFINITY);
}
static void q_string(msgpack_packer *pk) {
    msgpack_pack_array(pk, 1);
    pstr(pk, "0.5");
}
static void q_nil(msgpack_packer *pk) {
    msgpack_pack_array(pk, 1);
    msgpack_pack_nil(pk);
}
static void q_bool(msgpack_packer *pk) {
    msgpack_pack_array(pk, 1);
    msgpack_pack_true(pk);
}
static void q_nested(msgpack_packer *pk) {
    msgpack_pack_array(pk, 1);
    msgpack_pack_array(pk, 1);
    msgpack_pack_double(pk, 0.5);
}
static void q_scalar(msgpack_packer *pk) { msgpack_pack_double(pk, 0.5); }
static void q_map(msgpack_packer *pk) { msgpack_pack_map(pk, 0); }
/* 'n' quantiles i/(n-1), 0 to 1. */
static void q_n(msgpack_packer *pk, int n) {
    msgpack_pack_array(pk, (size_t)n);
    for (int i = 0; i < n; i++) msgpack_pack_double(pk, (double)i / (n - 1));
}
static void q_32(msgpack_packer *pk) { q_n(pk, 32); }
static void q_33(msgpack_packer *pk) { q_n(pk, 33); }
/* The edges, as msgpack integers and as floats: 0, 1, 0.0, 1.0, and 0.25 as a float32. */
static void q_edges(msgpack_packer *pk) {
    msgpack_pack_array(pk, 5);
    msgpack_pack_uint8(pk, 0);
    msgpack_pack_uint8(pk, 1);
    msgpack_pack_double(pk, 0.0);
    msgpack_pack_double(pk, 1.0);
    msgpack_pack_float(pk, 0.25f);
}

/* "quantiles" is an array of at most 32 numbers, each in [0, 1]. */
static void test_decode_rejects_quantiles(void **state) {
    (void)state;
    const pack_fn bad[] = {q_below, q_above, q_second_above, q_uint2, q_neg1,   q_nan,    q_nan_f32, q_inf,
                           q_neg_inf, q_string, q_nil,       q_bool,  q_nested, q_scalar, q_map,     nil, q_33};
    for (size_t i = 0; i < NITEMS(bad); i++) expect_job_reject(NULL, "quantiles", bad[i], "\"quantiles\"");
    expect_job_reject(NULL, "quantiles", q_second_above, "item 1");

    size_t len;
    void *buf = build_job(NULL, "quantiles", q_edges, &len);
    gm_job_t job;
    char err[GM_ERR_LEN] = "";
    if (gm_job_decode(buf, len, &job, err) != 0) fail_msg("quantiles 0, 1, 0.0, 1.0, 0.25f: %s", err);
    free(buf);
    assert_int_equal(job.nquantiles, 5);
    static const double want[5] = {0.0, 1.0, 0.0, 1.0, 0.25};
    for (int i = 0; i < 5; i++)
        if (job.quantiles[i] != want[i]) fail_msg("quantile %d: %.17g, expected %.17g", i, job.quantiles[i], want[i]);
    gm_job_clear(&job);

    buf = build_job(NULL, "quantiles", q_32, &len);
    if (gm_job_decode(buf, len, &job, err) != 0) fail_msg("32 quantiles: %s", err);
    free(buf);
    assert_int_equal(job.nquantiles, 32);
    assert_true(job.quantiles[0] == 0.0 && job.quantiles[31] == 1.0);
    gm_job_clear(&job);
}

/* Parameter lists for the rejection and acceptance tests. */
static void pair(msgpack_packer *pk, const char *key, const char *value) {
    msgpack_pack_array(pk, 2);
    pstr(pk, key);
    pstr(pk, value);
}
static void p_map(msgpack_packer *pk) {
    msgpack_pack_map(pk, 1);
    pstr(pk, "eta");
    pstr(pk, "0.1");
}
static void p_string(msgpack_packer *pk) { pstr(pk, "eta=0.1"); }
static void p_flat(msgpack_packer *pk) {
    msgpack_pack_array(pk, 2);
    pstr(pk, "eta");
    pstr(pk, "0.1");
}
static void p_one(msgpack_packer *pk) {
    msgpack_pack_array(pk, 1);
    msgpack_pack_array(pk, 1);
    pstr(pk, "eta");
}
static void p_three(msgpack_packer *pk) {
    msgpack_pack_array(pk, 1);
    msgpack_pack_array(pk, 3);
    pstr(pk, "eta");
    pstr(pk, "0.1");
    pstr(pk, "x");
}
static void p_empty_pair(msgpack_packer *pk) {
    msgpack_pack_array(pk, 1);
    msgpack_pack_array(pk, 0);
}
static void p_value_number(msgpack_packer *pk) {
    msgpack_pack_array(pk, 1);
    msgpack_pack_array(pk, 2);
    pstr(pk, "eta");
    msgpack_pack_double(pk, 0.1);
}
static void p_key_number(msgpack_packer *pk) {
    msgpack_pack_array(pk, 1);
    msgpack_pack_array(pk, 2);
    msgpack_pack_uint8(pk, 1);
    pstr(pk, "0.1");
}
static void p_value_nil(msgpack_packer *pk) {
    msgpack_pack_array(pk, 1);
    msgpack_pack_array(pk, 2);
    pstr(pk, "eta");
    msgpack_pack_nil(pk);
}
static void p_pair_map(msgpack_packer *pk) {
    msgpack_pack_array(pk, 1);
    p_map(pk);
}
static void p_second_bad(msgpack_packer *pk) {
    msgpack_pack_array(pk, 2);
    pair(pk, "eta", "0.1");
    msgpack_pack_array(pk, 2);
    pstr(pk, "max_depth");
    msgpack_pack_uint8(pk, 6);
}
/* 48-byte keys and values do not fit the 48-byte fields with their NUL; 47 do. */
#define S47 "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstu"
#define S48 S47 "v"
_Static_assert(sizeof S47 == 48 && sizeof S48 == 49, "47 and 48 characters");
static void p_key48(msgpack_packer *pk) {
    msgpack_pack_array(pk, 1);
    pair(pk, S48, "1");
}
static void p_value48(msgpack_packer *pk) {
    msgpack_pack_array(pk, 1);
    pair(pk, "eta", S48);
}
static void p_47(msgpack_packer *pk) {
    msgpack_pack_array(pk, 1);
    pair(pk, S47, S47);
}
static void p_key_nul(msgpack_packer *pk) {
    msgpack_pack_array(pk, 1);
    msgpack_pack_array(pk, 2);
    msgpack_pack_str(pk, 4);
    msgpack_pack_str_body(pk, "et\0a", 4);
    pstr(pk, "0.1");
}
static void p_value_nul(msgpack_packer *pk) {
    msgpack_pack_array(pk, 1);
    msgpack_pack_array(pk, 2);
    pstr(pk, "eta");
    msgpack_pack_str(pk, 4);
    msgpack_pack_str_body(pk, "0.1\0", 4);
}
/* 'n' pairs key0=0, key1=1, ... */
static void p_n(msgpack_packer *pk, int n) {
    char key[16], value[16];
    msgpack_pack_array(pk, (size_t)n);
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof key, "key%d", i);
        snprintf(value, sizeof value, "%d", i);
        pair(pk, key, value);
    }
}
static void p_64(msgpack_packer *pk) { p_n(pk, 64); }
static void p_65(msgpack_packer *pk) { p_n(pk, 65); }

/* "params" is an array of at most 64 [key, value] pairs of NUL-free strings of at most 47 bytes. */
static void test_decode_rejects_params(void **state) {
    (void)state;
    const pack_fn bad[] = {p_map,       p_string,     p_flat,       p_one,       p_three,   p_empty_pair,
                           p_value_number, p_key_number, p_value_nil, p_pair_map, p_second_bad, p_key48,
                           p_value48,   p_key_nul,    p_value_nul,  p_65,        nil,        u_1};
    for (size_t i = 0; i < NITEMS(bad); i++) expect_job_reject(NULL, "params", bad[i], "\"params\"");
    expect_job_reject(NULL, "params", p_second_bad, "item 1");
    expect_job_reject(NULL, "params", p_key_nul, "NUL");

    size_t len;
    void *buf = build_job(NULL, "params", p_47, &len);
    gm_job_t job;
    char err[GM_ERR_LEN] = "";
    if (gm_job_decode(buf, len, &job, err) != 0) fail_msg("47-byte key and value: %s", err);
    free(buf);
    assert_int_equal(job.nparams, 1);
    assert_string_equal(job.params[0].key, S47);
    assert_string_equal(job.params[0].value, S47);
    gm_job_clear(&job);

    buf = build_job(NULL, "params", p_64, &len);
    if (gm_job_decode(buf, len, &job, err) != 0) fail_msg("64 parameters: %s", err);
    free(buf);
    assert_int_equal(job.nparams, 64);
    assert_string_equal(job.params[63].key, "key63");
    assert_string_equal(job.params[63].value, "63");
    gm_job_clear(&job);
}

static void outputs_prediction(msgpack_packer *pk) {
    msgpack_pack_array(pk, 1);
    pack_output(pk, "prediction", "prediction", 0, "f32", 1, F32_LOWEST);
}
static void false_(msgpack_packer *pk) { msgpack_pack_false(pk); }
static void kind_reg(msgpack_packer *pk) { pstr(pk, "regression"); }
static void u_10(msgpack_packer *pk) { msgpack_pack_uint8(pk, 10); }
static void u_50(msgpack_packer *pk) { msgpack_pack_uint8(pk, 50); }
static void seed_high(msgpack_packer *pk) { msgpack_pack_uint64(pk, 0x8000000000000001ULL); }
static void params_two(msgpack_packer *pk) {
    msgpack_pack_array(pk, 2);
    pair(pk, "eta", "0.1");
    pair(pk, "max_depth", "6");
}

/* Predict and summarise jobs need at least one model and one output, a prediction exactly one model; a
 * training job has neither outputs nor models. */
static void test_decode_models_per_mode(void **state) {
    (void)state;
    /* A regression prediction with its one output but no model. */
    enum { E_OUTPUTS = 5, E_MODELS = 6 };
    job_edit_t edits[] = {{"mode", mode_predict}, {"kind", kind_reg},      {"nclass", u_0},
                          {"nprob", u_0},         {"realisations", false_}, {"outputs", outputs_prediction},
                          {"models", models_empty}};
    size_t len;
    gm_job_t job;
    char err[GM_ERR_LEN] = "";
    void *buf = build_job_edits(NULL, edits, NITEMS(edits), &len);
    memset(&job, 0x5A, sizeof job);
    assert_int_equal(gm_job_decode(buf, len, &job, err), -1);
    free(buf);
    assert_err_has(err, "\"models\"");
    assert_job_cleared(&job);

    /* The same prediction with one model decodes. */
    edits[E_MODELS].pack = models_one;
    buf = build_job_edits(NULL, edits, NITEMS(edits), &len);
    if (gm_job_decode(buf, len, &job, err) != 0) fail_msg("prediction with one model: %s", err);
    free(buf);
    assert_int_equal(job.mode, GM_MODE_PREDICT);
    assert_int_equal(job.nmodels, 1);
    assert_int_equal(job.noutputs, 1);
    assert_output(&job.outputs[0], "prediction", GM_ROLE_PREDICTION, 0, GM_DT_F32, 1, F32_LOWEST);
    gm_job_clear(&job);

    /* ... with the reference's 2 models it is refused: a prediction applies one. */
    edits[E_MODELS].pack = models_ref;
    expect_edits_reject(edits, NITEMS(edits), "one model", "not 2");
    edits[E_MODELS].pack = models_one;

    /* ... and without outputs it is refused. */
    edits[E_OUTPUTS].pack = outputs_empty;
    buf = build_job_edits(NULL, edits, NITEMS(edits), &len);
    memset(&job, 0x5A, sizeof job);
    assert_int_equal(gm_job_decode(buf, len, &job, err), -1);
    free(buf);
    assert_err_has(err, "\"outputs\"");
    assert_job_cleared(&job);

    /* The reference summary without models, or without outputs, is refused. */
    expect_job_reject(NULL, "models", models_empty, "\"models\"");
    expect_job_reject(NULL, "outputs", outputs_empty, "\"outputs\"");

    /* A training job, packed by hand: no outputs, no models, its iterations, rounds, seed and parameters. */
    const job_edit_t train[] = {{"mode", mode_train},   {"nprob", u_0},           {"realisations", false_},
                                {"iterations", u_10},   {"rounds", u_50},         {"seed", seed_high},
                                {"params", params_two}, {"outputs", outputs_empty}, {"models", models_empty}};
    buf = build_job_edits(NULL, train, NITEMS(train), &len);
    memset(&job, 0x5A, sizeof job);
    if (gm_job_decode(buf, len, &job, err) != 0) fail_msg("training job: %s", err);
    free(buf);
    assert_int_equal(job.mode, GM_MODE_TRAIN);
    assert_int_equal(job.iterations, 10);
    assert_int_equal(job.rounds, 50);
    assert_true(job.seed == 0x8000000000000001ULL);
    assert_int_equal(job.nparams, 2);
    assert_string_equal(job.params[0].key, "eta");
    assert_string_equal(job.params[0].value, "0.1");
    assert_string_equal(job.params[1].key, "max_depth");
    assert_string_equal(job.params[1].value, "6");
    assert_int_equal(job.noutputs, 0);
    assert_null(job.outputs);
    assert_int_equal(job.nmodels, 0);
    assert_null(job.models);
    assert_int_equal(job.kind, GM_KIND_CLASSIFICATION);
    assert_int_equal(job.nclass, 5);
    gm_job_clear(&job);

    /* The same training job carrying the reference's outputs, or its 2 models, is refused. */
    job_edit_t train_bad[NITEMS(train)];
    memcpy(train_bad, train, sizeof train);
    train_bad[NITEMS(train) - 2].pack = outputs_ref;
    expect_edits_reject(train_bad, NITEMS(train_bad), "training job", "outputs");
    train_bad[NITEMS(train) - 2].pack = outputs_empty;
    train_bad[NITEMS(train) - 1].pack = models_ref;
    expect_edits_reject(train_bad, NITEMS(train_bad), "training job", "models");
    /* One output and one model, as a prediction would carry. */
    train_bad[NITEMS(train) - 2].pack = outputs_prediction;
    train_bad[NITEMS(train) - 1].pack = models_one;
    expect_edits_reject(train_bad, NITEMS(train_bad), "training job", NULL);
}

/* The reference outputs with one field of one output changed, or outputs added, dropped or reordered. */
static void out_klass(msgpack_packer *pk) {
    pack_ref_outputs_with(pk, 1, (out_spec_t){"klass", "class", 0, "u8", 1, 255.0});
}
static void out_class_role(msgpack_packer *pk) {
    pack_ref_outputs_with(pk, 1, (out_spec_t){"class", "entropy", 0, "u8", 1, 255.0});
}
static void out_class_model(msgpack_packer *pk) {
    pack_ref_outputs_with(pk, 1, (out_spec_t){"class", "class", 1, "u8", 1, 255.0});
}
static void out_class_u16(msgpack_packer *pk) {
    pack_ref_outputs_with(pk, 1, (out_spec_t){"class", "class", 0, "u16", 1, 255.0});
}
static void out_class_2_bands(msgpack_packer *pk) {
    pack_ref_outputs_with(pk, 1, (out_spec_t){"class", "class", 0, "u8", 2, 255.0});
}
static void out_class_nodata_0(msgpack_packer *pk) {
    pack_ref_outputs_with(pk, 1, (out_spec_t){"class", "class", 0, "u8", 1, 0.0});
}
static void out_class_nodata_nan(msgpack_packer *pk) {
    pack_ref_outputs_with(pk, 1, (out_spec_t){"class", "class", 0, "u8", 1, NAN});
}
static void out_prob_1_band(msgpack_packer *pk) {
    pack_ref_outputs_with(pk, 0, (out_spec_t){"probability", "probability", 0, "f32", 1, F32_LOWEST});
}
static void out_prob_6_bands(msgpack_packer *pk) {
    pack_ref_outputs_with(pk, 0, (out_spec_t){"probability", "probability", 0, "f32", 6, F32_LOWEST});
}
static void out_nprob_class_3(msgpack_packer *pk) {
    pack_ref_outputs_with(pk, 4, (out_spec_t){"nprob_class", "nprob_class", 0, "u8", 3, 255.0});
}
static void out_nprob_class_6(msgpack_packer *pk) {
    pack_ref_outputs_with(pk, 4, (out_spec_t){"nprob_class", "nprob_class", 0, "u8", 6, 255.0});
}
static void out_nprob_prob_6(msgpack_packer *pk) {
    pack_ref_outputs_with(pk, 5, (out_spec_t){"nprob_probability", "nprob_probability", 0, "f32", 6, F32_LOWEST});
}
static void out_realisation_f32(msgpack_packer *pk) {
    pack_ref_outputs_with(pk, 6, (out_spec_t){"realisation-001", "realisation", 0, "f32", 1, F32_LOWEST});
}
static void out_swapped(msgpack_packer *pk) {
    out_spec_t outs[NREF_OUTPUTS];
    memcpy(outs, REF_OUTPUTS, sizeof outs);
    outs[0] = REF_OUTPUTS[1];
    outs[1] = REF_OUTPUTS[0];
    pack_outputs(pk, outs, NREF_OUTPUTS);
}
static void out_first_7(msgpack_packer *pk) { pack_outputs(pk, REF_OUTPUTS, 7); }
static void out_realisation_3(msgpack_packer *pk) {
    out_spec_t outs[NREF_OUTPUTS + 1];
    memcpy(outs, REF_OUTPUTS, sizeof REF_OUTPUTS);
    outs[NREF_OUTPUTS] = (out_spec_t){"realisation-003", "realisation", 2, "u8", 1, 255.0};
    pack_outputs(pk, outs, NREF_OUTPUTS + 1);
}
static void out_no_nprob(msgpack_packer *pk) {
    const out_spec_t outs[6] = {REF_OUTPUTS[0], REF_OUTPUTS[1], REF_OUTPUTS[2],
                                REF_OUTPUTS[3], REF_OUTPUTS[6], REF_OUTPUTS[7]};
    pack_outputs(pk, outs, 6);
}

/* Every output is the one the job's own options plan, field by field, in the plan's order and number: anything
 * else is refused, naming the first output that differs, or the two counts. */
static void test_decode_rejects_output_fields(void **state) {
    (void)state;
    static const struct { pack_fn pack; const char *needle, *also; } cases[] = {
        {out_klass, "output 1 (\"klass\")", "\"class\""},         /* renamed */
        {out_class_role, "output 1 (\"class\")", NULL},           /* role entropy */
        {out_class_model, "output 1 (\"class\")", NULL},          /* model 1 where 0 */
        {out_class_u16, "output 1 (\"class\")", NULL},            /* u16 for 5 classes */
        {out_class_2_bands, "output 1 (\"class\")", NULL},        /* 2 bands */
        {out_class_nodata_0, "output 1 (\"class\")", NULL},       /* nodata 0, a class code */
        {out_class_nodata_nan, "output 1 (\"class\")", NULL},     /* nodata NaN */
        {out_prob_1_band, "output 0 (\"probability\")", NULL},    /* 1 band for 5 classes */
        {out_prob_6_bands, "output 0 (\"probability\")", NULL},   /* 6 bands for 5 classes */
        {out_nprob_class_3, "output 4 (\"nprob_class\")", NULL},  /* 3 bands for nprob 2 */
        {out_nprob_class_6, "output 4 (\"nprob_class\")", NULL},  /* 6 bands, above the 5 classes */
        {out_nprob_prob_6, "output 5 (\"nprob_probability\")", NULL},
        {out_realisation_f32, "output 6 (\"realisation-001\")", NULL}, /* a class map typed f32 */
        {out_swapped, "output 0 (\"class\")", "\"probability\""}, /* class and probability swapped */
        {out_first_7, "7 outputs", "call for 8"},                 /* realisation-002 dropped */
        {out_realisation_3, "9 outputs", "call for 8"},           /* a realisation of a third model */
        {out_no_nprob, "6 outputs", "call for 8"},                /* nprob 2 without its outputs */
    };
    for (size_t i = 0; i < NITEMS(cases); i++) {
        expect_job_reject(NULL, "outputs", cases[i].pack, cases[i].needle);
        if (cases[i].also) expect_job_reject(NULL, "outputs", cases[i].pack, cases[i].also);
    }
}

static void u_5(msgpack_packer *pk) { msgpack_pack_uint8(pk, 5); }
static void u_6(msgpack_packer *pk) { msgpack_pack_uint8(pk, 6); }
/* The reference outputs with nprob_class and nprob_probability of 'n' bands. */
static void ref_nprob_of(msgpack_packer *pk, uint32_t n) {
    out_spec_t outs[NREF_OUTPUTS];
    memcpy(outs, REF_OUTPUTS, sizeof outs);
    outs[4].n = n;
    outs[5].n = n;
    pack_outputs(pk, outs, NREF_OUTPUTS);
}
static void out_nprob_5(msgpack_packer *pk) { ref_nprob_of(pk, 5); }
static void out_nprob_6(msgpack_packer *pk) { ref_nprob_of(pk, 6); }
/* The regression summary with 3 quantiles, its "quantiles" file of 2 or 4 bands. */
static void out_reg_q_bands(msgpack_packer *pk, uint32_t n) {
    out_spec_t outs[NREG_Q_OUTPUTS];
    memcpy(outs, REG_Q_OUTPUTS, sizeof outs);
    outs[2].n = n;
    pack_outputs(pk, outs, NREG_Q_OUTPUTS);
}
static void out_reg_q_2(msgpack_packer *pk) { out_reg_q_bands(pk, 2); }
static void out_reg_q_4(msgpack_packer *pk) { out_reg_q_bands(pk, 4); }
/* The regression summary without quantiles, realisation-001 typed as a class map. */
static void out_reg_realisation_u8(msgpack_packer *pk) {
    out_spec_t outs[NREG_OUTPUTS];
    memcpy(outs, REG_OUTPUTS, sizeof outs);
    outs[2] = (out_spec_t){"realisation-001", "realisation", 0, "u8", 1, 255.0};
    pack_outputs(pk, outs, NREG_OUTPUTS);
}
static void out_prediction_f64(msgpack_packer *pk) {
    msgpack_pack_array(pk, 1);
    pack_output(pk, "prediction", "prediction", 0, "f64", 1, F32_LOWEST);
}
/* A classification prediction of 5 classes: its class, then probabilities of 'prob_bands' bands (0: none). */
static void out_predict_class(msgpack_packer *pk, uint32_t prob_bands) {
    msgpack_pack_array(pk, prob_bands ? 2 : 1);
    pack_output(pk, "class", "class", 0, "u8", 1, 255.0);
    if (prob_bands) pack_output(pk, "probability", "probability", 0, "f32", prob_bands, F32_LOWEST);
}
static void out_predict_class_5(msgpack_packer *pk) { out_predict_class(pk, 5); }
static void out_predict_class_1(msgpack_packer *pk) { out_predict_class(pk, 1); }
static void out_predict_class_only(msgpack_packer *pk) { out_predict_class(pk, 0); }

/* The options decide the plan: nprob above nclass, quantiles without their bands, a regression's maps typed as
 * class maps, a prediction typed f64, probabilities on or off against the outputs sent, are all refused. */
static void test_decode_rejects_plan_options(void **state) {
    (void)state;
    gm_job_t job;
    /* nprob may equal the 5 classes, with 5-band nprob outputs... */
    const job_edit_t nprob5[] = {{"nprob", u_5}, {"outputs", out_nprob_5}};
    decode_edits(nprob5, NITEMS(nprob5), &job, "nprob 5 of 5 classes");
    assert_int_equal(job.nprob, 5);
    assert_output(&job.outputs[4], "nprob_class", GM_ROLE_NPROB_CLASS, 0, GM_DT_U8, 5, 255.0);
    assert_output(&job.outputs[5], "nprob_probability", GM_ROLE_NPROB_PROB, 0, GM_DT_F32, 5, F32_LOWEST);
    gm_job_clear(&job);
    /* ... not exceed them, even with outputs of 6 bands to match. */
    const job_edit_t nprob6[] = {{"nprob", u_6}, {"outputs", out_nprob_6}};
    expect_edits_reject(nprob6, NITEMS(nprob6), "nprob 6", "5 classes");
    /* nprob 0 or no realisations, with the reference's 8 outputs: 4 + 2 = 6 or 4 + 0 + 2 = 6 are called for. */
    const job_edit_t nprob0[] = {{"nprob", u_0}};
    expect_edits_reject(nprob0, NITEMS(nprob0), "8 outputs", "call for 6");
    const job_edit_t no_real[] = {{"realisations", false_}};
    expect_edits_reject(no_real, NITEMS(no_real), "8 outputs", "call for 6");

    /* A regression summary of 3 quantiles needs a "quantiles" file of exactly 3 bands... */
    const job_edit_t q2[] = {REG_Q_EDITS(out_reg_q_2)};
    expect_edits_reject(q2, NITEMS(q2), "output 2 (\"quantiles\")", NULL);
    const job_edit_t q4[] = {REG_Q_EDITS(out_reg_q_4)};
    expect_edits_reject(q4, NITEMS(q4), "output 2 (\"quantiles\")", NULL);
    /* ... and one at all: without it 4 outputs where 5 are called for; with no quantiles, 5 where 4. */
    const job_edit_t q_missing[] = {REG_Q_EDITS(outputs_reg)};
    expect_edits_reject(q_missing, NITEMS(q_missing), "4 outputs", "call for 5");
    const job_edit_t q_none[] = {REG_Q_EDITS(outputs_reg_q), {"quantiles", quantiles_ref}};
    expect_edits_reject(q_none, NITEMS(q_none), "5 outputs", "call for 4");

    /* A regression's realisation is an f32 value, not a u8 class. */
    const job_edit_t reg_u8[] = {{"kind", kind_regression}, {"nclass", u_0}, {"outputs", out_reg_realisation_u8}};
    expect_edits_reject(reg_u8, NITEMS(reg_u8), "output 2 (\"realisation-001\")", NULL);

    /* A regression prediction is f32, not f64. */
    const job_edit_t pred_f64[] = {{"mode", mode_predict}, {"kind", kind_reg},      {"nclass", u_0},
                                   {"nprob", u_0},         {"realisations", false_}, {"models", models_one},
                                   {"outputs", out_prediction_f64}};
    expect_edits_reject(pred_f64, NITEMS(pred_f64), "output 0 (\"prediction\")", NULL);

    /* A classification prediction with probabilities: class, then 5 probability bands, decodes... */
    job_edit_t pc[] = {{"mode", mode_predict}, {"probabilities", true_}, {"nprob", u_0},
                       {"realisations", false_}, {"models", models_one}, {"outputs", out_predict_class_5}};
    const size_t pc_outputs = NITEMS(pc) - 1;
    decode_edits(pc, NITEMS(pc), &job, "classification prediction with probabilities");
    assert_int_equal(job.mode, GM_MODE_PREDICT);
    assert_int_equal(job.probabilities, 1);
    assert_int_equal(job.noutputs, 2);
    assert_output(&job.outputs[0], "class", GM_ROLE_CLASS, 0, GM_DT_U8, 1, 255.0);
    assert_output(&job.outputs[1], "probability", GM_ROLE_PROBABILITY, 0, GM_DT_F32, 5, F32_LOWEST);
    gm_job_clear(&job);
    /* ... but not with 1 probability band for the 5 classes, */
    pc[pc_outputs].pack = out_predict_class_1;
    expect_edits_reject(pc, NITEMS(pc), "output 1 (\"probability\")", NULL);
    /* nor without the probability output it asks for, */
    pc[pc_outputs].pack = out_predict_class_only;
    expect_edits_reject(pc, NITEMS(pc), "1 outputs", "call for 2");
    /* nor with it when it does not ask. */
    pc[pc_outputs].pack = out_predict_class_5;
    pc[1].pack = false_;
    expect_edits_reject(pc, NITEMS(pc), "2 outputs", "call for 1");
}

/* A plan of more blocks than a uint32 block index can name is refused; the largest that fits decodes. */
static void test_decode_rejects_too_many_blocks(void **state) {
    (void)state;
    /* 2147483647 x 3 one-pixel blocks = 6442450941 > 4294967294. */
    const job_edit_t huge[] = {{"xsize", u_int32_max}, {"ysize", u_3}, {"bw", u_1}, {"bh", u_1}};
    size_t len;
    void *buf = build_job_edits(NULL, huge, NITEMS(huge), &len);
    gm_job_t job;
    char err[GM_ERR_LEN] = "";
    memset(&job, 0x5A, sizeof job);
    assert_int_equal(gm_job_decode(buf, len, &job, err), -1);
    free(buf);
    assert_err_has(err, "blocks");
    assert_job_cleared(&job);

    /* 2147483647 x 2 = 4294967294 blocks, indexes 0 to 4294967293: the most that fit. */
    const job_edit_t most[] = {{"xsize", u_int32_max}, {"ysize", u_2}, {"bw", u_1}, {"bh", u_1}};
    buf = build_job_edits(NULL, most, NITEMS(most), &len);
    if (gm_job_decode(buf, len, &job, err) != 0) fail_msg("4294967294 blocks: %s", err);
    free(buf);
    assert_int_equal(gm_job_nblocks(&job), 4294967294u);
    uint32_t x, y, w, h;
    assert_int_equal(gm_job_block_window(&job, 4294967293u, &x, &y, &w, &h), 0);
    assert_int_equal(x, 2147483646u);
    assert_int_equal(y, 1);
    assert_int_equal(w, 1);
    assert_int_equal(h, 1);
    assert_int_equal(gm_job_block_window(&job, 4294967294u, &x, &y, &w, &h), -1);
    gm_job_clear(&job);
}

/* Builds a job message: the reference header, then the given model frames. */
static gm_msg_t *job_msg(const void *const *models, const size_t *sizes, size_t n) {
    size_t len;
    void *header = build_job(NULL, NULL, NULL, &len);
    gm_msg_t *msg = gm_msg_new();
    assert_non_null(msg);
    assert_int_equal(gm_msg_add_copy(msg, header, len), 0);
    free(header);
    for (size_t i = 0; i < n; i++) assert_int_equal(gm_msg_add_copy(msg, models[i], sizes[i]), 0);
    return msg;
}

/* A whole job message gives the job with its model bytes; a frame too many, too few or of the wrong size is
 * refused and leaves the job cleared. */
static void test_from_msg(void **state) {
    (void)state;
    const void *models[] = {MODEL0, MODEL1, MODEL0};
    const size_t sizes[] = {MODEL0_SIZE, MODEL1_SIZE, MODEL0_SIZE};
    char err[GM_ERR_LEN] = "";
    gm_job_t job;
    gm_msg_t *msg = job_msg(models, sizes, 2);
    if (gm_job_from_msg(msg, &job, err) != 0) fail_msg("from_msg: %s", err);
    gm_msg_destroy(&msg);
    assert_null(msg);
    assert_true(job.id == 0x1122334455667788ULL);
    assert_reference_fields(&job);
    assert_memory_equal(job.models[0].bytes, MODEL0, MODEL0_SIZE);
    assert_memory_equal(job.models[1].bytes, MODEL1, MODEL1_SIZE);
    gm_job_clear(&job);

    const size_t counts[] = {0, 1, 3};
    for (size_t i = 0; i < NITEMS(counts); i++) {
        msg = job_msg(models, sizes, counts[i]);
        memset(&job, 0x5A, sizeof job);
        err[0] = '\0';
        if (gm_job_from_msg(msg, &job, err) != -1) fail_msg("%zu model frames accepted", counts[i]);
        gm_msg_destroy(&msg);
        assert_err_has(err, "frames");
        assert_job_cleared(&job);
    }

    const size_t wrong[] = {MODEL0_SIZE, MODEL1_SIZE - 1};
    msg = job_msg(models, wrong, 2);
    memset(&job, 0x5A, sizeof job);
    assert_int_equal(gm_job_from_msg(msg, &job, err), -1);
    gm_msg_destroy(&msg);
    assert_err_has(err, "19");
    assert_job_cleared(&job);

    msg = gm_msg_new();
    assert_non_null(msg);
    memset(&job, 0x5A, sizeof job);
    assert_int_equal(gm_job_from_msg(msg, &job, err), -1);
    gm_msg_destroy(&msg);
    assert_job_cleared(&job);
}

/* The hello message a worker or writer sends is one frame that decodes to its role. */
static void test_hello_msg(void **state) {
    (void)state;
    const char *roles[] = {"worker", "writer"};
    for (size_t i = 0; i < 2; i++) {
        gm_msg_t *msg = gm_job_hello_msg(roles[i]);
        assert_non_null(msg);
        assert_int_equal(msg->nframes, 1);
        gm_header_t h;
        char err[GM_ERR_LEN] = "";
        if (gm_wire_decode(gm_msg_data(msg, 0), gm_msg_size(msg, 0), &h, err) != 0) fail_msg("%s", err);
        assert_int_equal(h.version, 1);
        assert_int_equal(h.kind, GM_MSG_HELLO);
        assert_string_equal(h.role, roles[i]);
        gm_msg_destroy(&msg);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plan_predict_classification),
        cmocka_unit_test(test_plan_predict_regression),
        cmocka_unit_test(test_plan_nclass),
        cmocka_unit_test(test_plan_summarise_classification),
        cmocka_unit_test(test_plan_summarise_regression),
        cmocka_unit_test(test_plan_realisation_names),
        cmocka_unit_test(test_plan_train),
        cmocka_unit_test(test_plan_unknown_mode),
        cmocka_unit_test(test_iteration_width),
        cmocka_unit_test(test_output_bytes),
        cmocka_unit_test(test_block_plan),
        cmocka_unit_test(test_block_order),
        cmocka_unit_test(test_min_inflight),
        cmocka_unit_test(test_check_block),
        cmocka_unit_test(test_model_format),
        cmocka_unit_test(test_compute_id),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_round_trip_predict_classification),
        cmocka_unit_test(test_round_trip_train),
        cmocka_unit_test(test_round_trip_summarise),
        cmocka_unit_test(test_encode_rejects),
        cmocka_unit_test(test_decode_hand_built),
        cmocka_unit_test(test_attach_model),
        cmocka_unit_test(test_decode_rejects_frame),
        cmocka_unit_test(test_decode_rejects_missing_key),
        cmocka_unit_test(test_decode_rejects_gt),
        cmocka_unit_test(test_decode_rejects_numbers),
        cmocka_unit_test(test_decode_rejects_kind_and_strings),
        cmocka_unit_test(test_decode_rejects_outputs),
        cmocka_unit_test(test_decode_rejects_models),
        cmocka_unit_test(test_decode_rejects_mode),
        cmocka_unit_test(test_decode_rejects_roles),
        cmocka_unit_test(test_decode_rejects_quantiles),
        cmocka_unit_test(test_decode_rejects_params),
        cmocka_unit_test(test_decode_models_per_mode),
        cmocka_unit_test(test_decode_rejects_output_fields),
        cmocka_unit_test(test_decode_rejects_plan_options),
        cmocka_unit_test(test_decode_rejects_too_many_blocks),
        cmocka_unit_test(test_from_msg),
        cmocka_unit_test(test_hello_msg),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
