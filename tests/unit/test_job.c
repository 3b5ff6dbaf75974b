/* test_job.c -- unit tests of the job description (gm_job.h): output plan, block plan, id, the "job"
 * header's round trip, model attachment, and the rejection of malformed job headers.
 *
 * The reference job is a 300 x 217 grid of 4 covariates in 128 x 128 blocks, classified into 5 classes with
 * probabilities, by 2 models. Every expected value below is worked out by hand in the comment beside it.
 * Malformed headers are packed by hand with msgpack-c's packer, so they do not depend on the encoder. */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
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

/* Fills the reference job, outputs planned, both models attached. */
static void make_job(gm_job_t *job) {
    char err[GM_ERR_LEN] = "";
    memset(job, 0, sizeof *job);
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
    job->probabilities = 1;
    if (gm_job_plan_outputs(job, err) != 0) fail_msg("plan_outputs: %s", err);
    job->nmodels = 2;
    job->models = calloc(2, sizeof *job->models);
    assert_non_null(job->models);
    strcpy(job->models[0].format, "json");
    job->models[0].bytes = copy_bytes(MODEL0, MODEL0_SIZE);
    job->models[0].size = MODEL0_SIZE;
    strcpy(job->models[1].format, "ubj");
    job->models[1].bytes = copy_bytes(MODEL1, MODEL1_SIZE);
    job->models[1].size = MODEL1_SIZE;
    strcpy(job->tasks_ep, TASKS_EP);
    strcpy(job->results_ep, RESULTS_EP);
    strcpy(job->acks_ep, ACKS_EP);
}

/* Asserts one output's fields. */
static void assert_output(const gm_output_t *o, const char *name, gm_dtype_t dt, uint32_t bands, double nodata) {
    assert_string_equal(o->name, name);
    assert_int_equal(o->dtype, dt);
    assert_int_equal(o->bands, bands);
    if (o->nodata != nodata) fail_msg("output %s: nodata %.17g, expected %.17g", name, o->nodata, nodata);
}

/* Asserts the reference job's fields other than the id and the model bytes. */
static void assert_reference_fields(const gm_job_t *job) {
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
    assert_int_equal(job->probabilities, 1);
    assert_int_equal(job->noutputs, 2);
    assert_output(&job->outputs[0], "class", GM_DT_U8, 1, 255.0);
    assert_output(&job->outputs[1], "probability", GM_DT_F32, 5, -FLT_MAX);
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
    assert_int_equal(job->nmodels, 0);
    assert_int_equal(job->noutputs, 0);
    assert_memory_equal(job, &zero, sizeof zero);
}

/* ---- hand-built job headers ---- */

typedef void (*pack_fn)(msgpack_packer *pk);

/* Packs a NUL-terminated string. */
static void pstr(msgpack_packer *pk, const char *s) {
    msgpack_pack_str(pk, strlen(s));
    msgpack_pack_str_body(pk, s, strlen(s));
}

/* Packs one output map. */
static void pack_output(msgpack_packer *pk, const char *name, const char *dt, uint32_t n, double nodata) {
    msgpack_pack_map(pk, 4);
    pstr(pk, "name");
    pstr(pk, name);
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
static void probabilities_ref(msgpack_packer *pk) { msgpack_pack_true(pk); }
static void outputs_ref(msgpack_packer *pk) {
    msgpack_pack_array(pk, 2);
    pack_output(pk, "class", "u8", 1, 255.0);
    pack_output(pk, "probability", "f32", 5, -FLT_MAX);
}
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

/* Every key of a job header, as PROTOCOL.md lists it, with the reference job's value. */
static const struct { const char *key; pack_fn pack; } job_keys[] = {
    {"v", v_1},           {"t", t_job},
    {"id", id_ref},       {"xsize", xsize_ref},
    {"ysize", ysize_ref}, {"gt", gt_ref},
    {"crs", crs_ref},     {"bands", bands_ref},
    {"bw", bw_ref},       {"bh", bh_ref},
    {"tile", tile_ref},   {"kind", kind_ref},
    {"objective", objective_ref}, {"nclass", nclass_ref},
    {"probabilities", probabilities_ref}, {"outputs", outputs_ref},
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

/* ---- output plan ---- */

/* A 5-class classification with probabilities: a u8 class (nodata 255) and 5 float32 probability bands. */
static void test_plan_classification(void **state) {
    (void)state;
    gm_job_t job;
    make_job(&job);
    assert_int_equal(job.noutputs, 2);
    assert_output(&job.outputs[0], "class", GM_DT_U8, 1, 255.0);
    assert_output(&job.outputs[1], "probability", GM_DT_F32, 5, -FLT_MAX);

    /* Planning again replaces the plan, it does not append to it. */
    char err[GM_ERR_LEN] = "";
    assert_int_equal(gm_job_plan_outputs(&job, err), 0);
    assert_int_equal(job.noutputs, 2);

    /* Without probabilities, only the class. */
    job.probabilities = 0;
    assert_int_equal(gm_job_plan_outputs(&job, err), 0);
    assert_int_equal(job.noutputs, 1);
    assert_output(&job.outputs[0], "class", GM_DT_U8, 1, 255.0);
    gm_job_clear(&job);
}

/* A regression writes one float32 "prediction" band with nodata -FLT_MAX. */
static void test_plan_regression(void **state) {
    (void)state;
    char err[GM_ERR_LEN] = "";
    gm_job_t job = {.kind = GM_KIND_REGRESSION, .nclass = 0};
    assert_int_equal(gm_job_plan_outputs(&job, err), 0);
    assert_int_equal(job.noutputs, 1);
    assert_output(&job.outputs[0], "prediction", GM_DT_F32, 1, -FLT_MAX);
    assert_true(job.outputs[0].nodata == -3.4028234663852886e38);
}

/* The class type widens to uint16 past 255 classes; fewer than 2 or more than 65535 are refused. */
static void test_plan_nclass(void **state) {
    (void)state;
    char err[GM_ERR_LEN] = "";
    gm_job_t job = {.kind = GM_KIND_CLASSIFICATION, .nclass = 300, .probabilities = 0};
    assert_int_equal(gm_job_plan_outputs(&job, err), 0);
    assert_int_equal(job.noutputs, 1);
    assert_output(&job.outputs[0], "class", GM_DT_U16, 1, 65535.0);

    job.probabilities = 1;
    assert_int_equal(gm_job_plan_outputs(&job, err), 0);
    assert_int_equal(job.noutputs, 2);
    assert_output(&job.outputs[0], "class", GM_DT_U16, 1, 65535.0);
    assert_output(&job.outputs[1], "probability", GM_DT_F32, 300, -FLT_MAX);

    /* Boundaries: classes 0..254 fit u8 with 255 left for nodata; 0..65534 fit u16. */
    static const struct { uint32_t nclass; gm_dtype_t dt; double nodata; } edges[] = {
        {2, GM_DT_U8, 255.0}, {255, GM_DT_U8, 255.0}, {256, GM_DT_U16, 65535.0}, {65535, GM_DT_U16, 65535.0},
    };
    for (size_t i = 0; i < NITEMS(edges); i++) {
        job.nclass = edges[i].nclass;
        job.probabilities = 0;
        if (gm_job_plan_outputs(&job, err) != 0) fail_msg("nclass %u: %s", edges[i].nclass, err);
        assert_output(&job.outputs[0], "class", edges[i].dt, 1, edges[i].nodata);
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

    /* An unknown model kind has no plan. */
    gm_job_t unknown = {.kind = (gm_model_kind_t)0, .nclass = 5};
    assert_int_equal(gm_job_plan_outputs(&unknown, err), -1);
    unknown.kind = (gm_model_kind_t)3;
    assert_int_equal(gm_job_plan_outputs(&unknown, err), -1);
}

/* Output sizes: samples x bands x sample size. */
static void test_output_bytes(void **state) {
    (void)state;
    const gm_output_t cls = {"class", GM_DT_U8, 1, 255.0};
    const gm_output_t prob = {"probability", GM_DT_F32, 5, -FLT_MAX};
    const gm_output_t cls16 = {"class", GM_DT_U16, 1, 65535.0};
    assert_int_equal(gm_job_output_bytes(&cls, 128, 128), 16384);    /* 128*128*1*1 */
    assert_int_equal(gm_job_output_bytes(&prob, 44, 89), 78320);     /* 44*89=3916, *5*4 */
    assert_int_equal(gm_job_output_bytes(&cls16, 300, 217), 130200); /* 300*217=65100, *2 */
    /* 8192*8192*4096*4 = 2^13*2^13*2^12*2^2 = 2^40: must not wrap in 32 bits. */
    const gm_output_t wide = {"probability", GM_DT_F32, 4096, 0};
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

/* A strip of 'tile' rows overlaps at least as many blocks as the worst aligned strip, and no more than exist. */
static void test_blocks_per_strip(void **state) {
    (void)state;
    gm_job_t job;
    make_job(&job);
    /* Tile 256 over 217 rows: one strip, both block rows, 3 x 2 = 6 blocks. */
    assert_int_equal(gm_job_blocks_per_strip(&job), 6);
    gm_job_clear(&job);
    /* 300 x 1000 in 128s: 3 x 8 blocks. Strips of 256 rows start at 0, 256, 512, 768; strip [256, 512)
     * touches block rows 2 and 3, so an aligned strip touches 2 rows = 6 blocks. Strips of 16 rows at most
     * touch 1 block row = 3 blocks. */
    gm_job_t tall = {.xsize = 300, .ysize = 1000, .block_w = 128, .block_h = 128, .tile = 256};
    uint32_t n = gm_job_blocks_per_strip(&tall);
    assert_true(n >= 6 && n <= 24);
    tall.tile = 16;
    n = gm_job_blocks_per_strip(&tall);
    assert_true(n >= 3 && n <= 24);
    /* Blocks of 100 rows, strips of 256: strip [0, 256) touches rows 0, 1, 2 = 9 blocks. */
    tall.block_h = 100;
    tall.tile = 256;
    n = gm_job_blocks_per_strip(&tall);
    assert_true(n >= 9 && n <= 30);
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
    EXPECT_CHANGES("probabilities", j.probabilities = 0);
    EXPECT_CHANGES("output nodata", j.outputs[0].nodata = 0);
    EXPECT_CHANGES("output bands", j.outputs[1].bands = 6);
    EXPECT_CHANGES("model format", strcpy(j.models[0].format, "bin"));
    EXPECT_CHANGES("tasks endpoint", j.tasks_ep[strlen(j.tasks_ep) - 1] = '6');
    EXPECT_CHANGES("results endpoint", j.results_ep[strlen(j.results_ep) - 1] = '7');
    EXPECT_CHANGES("acks endpoint", strcat(j.acks_ep, "2"));
#undef EXPECT_CHANGES

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

/* Encode then decode gives back every field; models come back with sizes and no bytes. */
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

    /* A regression with an empty CRS (NULL in the struct) and one model. */
    gm_job_t reg = {.id = 1, .xsize = 1, .ysize = 1, .gt = {0, 1, 0, 0, 0, -1}, .crs = NULL, .nbands = 1,
                    .block_w = 8192, .block_h = 1, .tile = 16, .kind = GM_KIND_REGRESSION};
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
    assert_int_equal(gm_job_encode(&reg, &buf, &len, err), 0);
    if (gm_job_decode(buf, len, &got, err) != 0) fail_msg("decode regression: %s", err);
    free(buf);
    assert_int_equal(got.id, 1);
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
    assert_int_equal(got.noutputs, 1);
    assert_output(&got.outputs[0], "prediction", GM_DT_F32, 1, -FLT_MAX);
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

/* The encoder refuses a job with no planned outputs. */
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
    job.noutputs = GM_JOB_MAX_OUTPUTS + 1;
    assert_int_equal(gm_job_encode(&job, &buf, &len, err), -1);
    job.noutputs = 2;
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

/* Unsigned keys refuse negative, float, string, nil and boolean values and values out of their range. */
static void test_decode_rejects_numbers(void **state) {
    (void)state;
    const char *uint_keys[] = {"id", "xsize", "ysize", "bands", "bw", "bh", "tile", "nclass"};
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
    /* "probabilities" is a boolean. */
    expect_job_reject(NULL, "probabilities", u_1, "\"probabilities\"");
    expect_job_reject(NULL, "probabilities", nil, "\"probabilities\"");
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

    /* A regression may carry nclass 0 (the encoder writes it). */
    const job_edit_t reg[] = {{"kind", kind_regression}, {"nclass", u_0}};
    size_t len;
    void *buf = build_job_edits(NULL, reg, NITEMS(reg), &len);
    gm_job_t job;
    char err[GM_ERR_LEN] = "";
    if (gm_job_decode(buf, len, &job, err) != 0) fail_msg("regression with nclass 0: %s", err);
    free(buf);
    assert_int_equal(job.kind, GM_KIND_REGRESSION);
    gm_job_clear(&job);

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
static void outputs_nine(msgpack_packer *pk) {
    char name[8];
    msgpack_pack_array(pk, 9);
    for (int i = 0; i < 9; i++) {
        snprintf(name, sizeof name, "out%d", i);
        pack_output(pk, name, "f32", 1, 0.0);
    }
}
static void outputs_eight(msgpack_packer *pk) {
    char name[8];
    msgpack_pack_array(pk, 8);
    for (int i = 0; i < 8; i++) {
        snprintf(name, sizeof name, "out%d", i);
        pack_output(pk, name, "f32", 1, 0.0);
    }
}
static void outputs_map(msgpack_packer *pk) { msgpack_pack_map(pk, 0); }
/* A one-output array whose output is named 'name'. */
static void outputs_named(msgpack_packer *pk, const char *name, size_t len) {
    msgpack_pack_array(pk, 1);
    msgpack_pack_map(pk, 4);
    pstr(pk, "name");
    msgpack_pack_str(pk, len);
    msgpack_pack_str_body(pk, name, len);
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
static void name_31(msgpack_packer *pk) { outputs_named(pk, "abcdefghijklmnopqrstuvwxyz01234", 31); }
static void output_not_map(msgpack_packer *pk) {
    msgpack_pack_array(pk, 1);
    pstr(pk, "class");
}
static void output_dt_f16(msgpack_packer *pk) {
    msgpack_pack_array(pk, 1);
    pack_output(pk, "class", "f16", 1, 0.0);
}
static void output_n_0(msgpack_packer *pk) {
    msgpack_pack_array(pk, 1);
    pack_output(pk, "class", "u8", 0, 255.0);
}
static void output_n_4097(msgpack_packer *pk) {
    msgpack_pack_array(pk, 1);
    pack_output(pk, "probability", "f32", 4097, 0.0);
}
static void output_nodata_str(msgpack_packer *pk) {
    msgpack_pack_array(pk, 1);
    msgpack_pack_map(pk, 4);
    pstr(pk, "name");
    pstr(pk, "class");
    pstr(pk, "dt");
    pstr(pk, "u8");
    pstr(pk, "n");
    msgpack_pack_uint8(pk, 1);
    pstr(pk, "nodata");
    pstr(pk, "255");
}
static void output_no_name(msgpack_packer *pk) {
    msgpack_pack_array(pk, 1);
    msgpack_pack_map(pk, 3);
    pstr(pk, "dt");
    pstr(pk, "u8");
    pstr(pk, "n");
    msgpack_pack_uint8(pk, 1);
    pstr(pk, "nodata");
    msgpack_pack_double(pk, 255.0);
}

/* "outputs" holds 1 to 8 maps, each with a plain file stem as its name, a known type and 1+ bands. */
static void test_decode_rejects_outputs(void **state) {
    (void)state;
    expect_job_reject(NULL, "outputs", outputs_empty, "\"outputs\"");
    expect_job_reject(NULL, "outputs", outputs_nine, "\"outputs\"");
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

    /* The limits themselves decode: 8 outputs, a 31-character name. */
    const pack_fn fine[] = {outputs_eight, name_31};
    for (size_t i = 0; i < NITEMS(fine); i++) {
        size_t len;
        void *buf = build_job(NULL, "outputs", fine[i], &len);
        gm_job_t job;
        char err[GM_ERR_LEN] = "";
        if (gm_job_decode(buf, len, &job, err) != 0) fail_msg("outputs case %zu: %s", i, err);
        free(buf);
        gm_job_clear(&job);
    }
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
static void models_4097(msgpack_packer *pk) {
    msgpack_pack_array(pk, 4097);
    for (int i = 0; i < 4097; i++) pack_model(pk, "bin", 1);
}
static void models_4096(msgpack_packer *pk) {
    msgpack_pack_array(pk, 4096);
    for (int i = 0; i < 4096; i++) pack_model(pk, "bin", 1);
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

    size_t len;
    void *buf = build_job(NULL, "models", models_4096, &len);
    gm_job_t job;
    char err[GM_ERR_LEN] = "";
    if (gm_job_decode(buf, len, &job, err) != 0) fail_msg("4096 models: %s", err);
    free(buf);
    assert_int_equal(job.nmodels, 4096);
    assert_int_equal(job.models[4095].size, 1);
    gm_job_clear(&job);
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
        cmocka_unit_test(test_plan_classification),
        cmocka_unit_test(test_plan_regression),
        cmocka_unit_test(test_plan_nclass),
        cmocka_unit_test(test_output_bytes),
        cmocka_unit_test(test_block_plan),
        cmocka_unit_test(test_blocks_per_strip),
        cmocka_unit_test(test_check_block),
        cmocka_unit_test(test_model_format),
        cmocka_unit_test(test_compute_id),
        cmocka_unit_test(test_round_trip),
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
        cmocka_unit_test(test_decode_rejects_too_many_blocks),
        cmocka_unit_test(test_from_msg),
        cmocka_unit_test(test_hello_msg),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
