/* test_wire.c -- unit tests of the header frames (gm_wire.h): round trips, peek, type tables, and the
 * rejection of every malformed header a peer could send, for every kind including train, model and saved.
 *
 * Malformed headers are packed by hand with msgpack-c's packer, so these tests do not depend on the encoder.
 * Every frame handed to the decoder is copied into a heap block of exactly its length, so valgrind reports
 * any read past the end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>

#include "gm_log.h"
#include "gm_wire.h"

/* ---- hand-built headers ---- */

typedef enum { F_UINT, F_NEG, F_DBL, F_STR, F_NIL, F_BOOL } field_type_t;

/* One "key": value pair of a hand-built header map. */
typedef struct {
    const char *key;
    field_type_t type;
    uint64_t u;
    int64_t i;
    double d;
    const char *s; /* may hold NUL bytes: slen says how long it is */
    size_t slen;
} field_t;

#define U(k, v) {.key = (k), .type = F_UINT, .u = (v)}
#define NEG(k, v) {.key = (k), .type = F_NEG, .i = (v)}
#define DBL(k, v) {.key = (k), .type = F_DBL, .d = (v)}
#define S(k, lit) {.key = (k), .type = F_STR, .s = (lit), .slen = sizeof(lit) - 1}
#define NIL(k) {.key = (k), .type = F_NIL}
#define NFIELDS(a) (sizeof(a) / sizeof((a)[0]))

/* A valid task header, as PROTOCOL.md describes it: block 5 of a 300x217 grid in 128x128 blocks. */
static const field_t task_fields[] = {
    U("v", 1), S("t", "task"), U("job", 0x0123456789abcdefULL), U("b", 5), U("x", 256),
    U("y", 128), U("w", 44),  U("h", 89),  U("n", 4),           S("dt", "f32"),
};
static const field_t result_fields[] = {
    U("v", 1), S("t", "result"), U("job", 77), U("b", 0), U("x", 0), U("y", 0), U("w", 128), U("h", 128),
};
static const field_t hello_fields[] = {U("v", 1), S("t", "hello"), S("role", "worker")};
static const field_t ack_fields[] = {U("v", 1), S("t", "ack"), U("job", 9), U("n", 3)};
static const field_t done_fields[] = {U("v", 1), S("t", "done"), U("job", 9)};
static const field_t error_fields[] = {U("v", 1), S("t", "error"), S("msg", "no such job")};
/* Iteration 7's samples: 1000 rows of 4 features. */
static const field_t train_fields[] = {U("v", 1), S("t", "train"), U("job", 0x0123456789abcdefULL), U("i", 7),
                                       U("n", 1000), U("k", 4)};
static const field_t model_fields[] = {U("v", 1), S("t", "model"), U("job", 9), U("i", 3)};
static const field_t saved_fields[] = {U("v", 1), S("t", "saved"), U("job", 9), U("i", 4095)};

/* Packs one key's value. */
static void pack_value(msgpack_packer *pk, const field_t *f) {
    switch (f->type) {
    case F_UINT: msgpack_pack_uint64(pk, f->u); break;
    case F_NEG: msgpack_pack_int64(pk, f->i); break;
    case F_DBL: msgpack_pack_double(pk, f->d); break;
    case F_STR:
        msgpack_pack_str(pk, f->slen);
        msgpack_pack_str_body(pk, f->s, f->slen);
        break;
    case F_NIL: msgpack_pack_nil(pk); break;
    case F_BOOL: msgpack_pack_true(pk); break;
    }
}

/* Copies 'len' bytes into a heap block of exactly that size (one byte when 'len' is 0). */
static void *exact_copy(const void *data, size_t len) {
    void *p = malloc(len ? len : 1);
    assert_non_null(p);
    if (len) memcpy(p, data, len);
    return p;
}

/* Packs a map of 'fields', leaving out the key 'skip' and replacing the value of the key 'repl->key' with
 * 'repl' (appending it when no field has that key). Returns an exact-size heap copy; *len gets its size. */
static void *build(const field_t *fields, size_t n, const char *skip, const field_t *repl, size_t *len) {
    size_t count = 0;
    int repl_used = 0;
    for (size_t i = 0; i < n; i++) {
        if (skip && strcmp(fields[i].key, skip) == 0) continue;
        if (repl && strcmp(fields[i].key, repl->key) == 0) repl_used = 1;
        count++;
    }
    if (repl && !repl_used) count++;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, count);
    for (size_t i = 0; i < n; i++) {
        if (skip && strcmp(fields[i].key, skip) == 0) continue;
        const field_t *f = (repl && strcmp(fields[i].key, repl->key) == 0) ? repl : &fields[i];
        msgpack_pack_str(&pk, strlen(f->key));
        msgpack_pack_str_body(&pk, f->key, strlen(f->key));
        pack_value(&pk, f);
    }
    if (repl && !repl_used) {
        msgpack_pack_str(&pk, strlen(repl->key));
        msgpack_pack_str_body(&pk, repl->key, strlen(repl->key));
        pack_value(&pk, repl);
    }
    void *out = exact_copy(sb.data, sb.size);
    *len = sb.size;
    msgpack_sbuffer_destroy(&sb);
    return out;
}

/* Decodes an exact-size heap copy of 'buf'. */
static int decode_copy(const void *buf, size_t len, gm_header_t *h, char *err) {
    void *copy = exact_copy(buf, len);
    int rc = gm_wire_decode(copy, len, h, err);
    free(copy);
    return rc;
}

/* Fails unless 'err' holds 'needle'. */
static void assert_err_has(const char *err, const char *needle) {
    if (!strstr(err, needle)) fail_msg("error \"%s\" does not mention '%s'", err, needle);
}

/* Builds a header from 'fields' with one edit and asserts that decoding it fails with 'needle' in the error. */
static void expect_reject(const field_t *fields, size_t n, const char *skip, const field_t *repl, const char *needle) {
    size_t len;
    void *buf = build(fields, n, skip, repl, &len);
    gm_header_t h;
    char err[GM_ERR_LEN] = "";
    int rc = gm_wire_decode(buf, len, &h, err);
    free(buf);
    if (rc != -1)
        fail_msg("header without \"%s\" / with edited \"%s\" decoded (rc %d)", skip ? skip : "-",
                 repl ? repl->key : "-", rc);
    assert_err_has(err, needle);
}

/* Encodes 'in', decodes the result into 'out', and frees the frame. */
static void round_trip(const gm_header_t *in, gm_header_t *out) {
    void *buf = NULL;
    size_t len = 0;
    char err[GM_ERR_LEN] = "";
    if (gm_wire_encode(in, &buf, &len, err) != 0) fail_msg("encode failed: %s", err);
    assert_non_null(buf);
    assert_true(len > 0 && len <= GM_WIRE_MAX_HEADER);
    memset(out, 0xA5, sizeof *out); /* the decoder must zero what the kind does not use */
    if (decode_copy(buf, len, out, err) != 0) fail_msg("decode failed: %s", err);
    free(buf);
}

/* Asserts that the fields a kind does not carry are zero. */
static void assert_unused_zero(const gm_header_t *h, int job, int block, int bands, int count, int role, int text,
                               int iteration, int cols) {
    if (!job) assert_int_equal(h->job, 0);
    if (!block) {
        assert_int_equal(h->block, 0);
        assert_int_equal(h->x, 0);
        assert_int_equal(h->y, 0);
        assert_int_equal(h->w, 0);
        assert_int_equal(h->h, 0);
    }
    if (!bands) {
        assert_int_equal(h->bands, 0);
        assert_int_equal(h->dtype, GM_DT_NONE);
    }
    if (!count) assert_int_equal(h->count, 0);
    if (!role) assert_string_equal(h->role, "");
    if (!text) assert_string_equal(h->text, "");
    if (!iteration) assert_int_equal(h->iteration, 0);
    if (!cols) assert_int_equal(h->cols, 0);
}

/* ---- round trips ---- */

/* Hello from a worker and from a writer keeps the role. */
static void test_round_trip_hello(void **state) {
    (void)state;
    const char *roles[] = {"worker", "writer"};
    for (size_t i = 0; i < 2; i++) {
        gm_header_t in = {.kind = GM_MSG_HELLO}, out;
        strcpy(in.role, roles[i]);
        round_trip(&in, &out);
        assert_int_equal(out.version, 1);
        assert_int_equal(out.kind, GM_MSG_HELLO);
        assert_string_equal(out.role, roles[i]);
        assert_unused_zero(&out, 0, 0, 0, 0, 1, 0, 0, 0);
    }
}

/* A task keeps every field, at typical values and at each field's limit. */
static void test_round_trip_task(void **state) {
    (void)state;
    gm_header_t in = {.kind = GM_MSG_TASK, .job = 0x0123456789abcdefULL, .block = 5, .x = 256, .y = 128,
                      .w = 44, .h = 89, .bands = 4, .dtype = GM_DT_F32}, out;
    round_trip(&in, &out);
    assert_int_equal(out.version, 1);
    assert_int_equal(out.kind, GM_MSG_TASK);
    assert_true(out.job == 0x0123456789abcdefULL);
    assert_int_equal(out.block, 5);
    assert_int_equal(out.x, 256);
    assert_int_equal(out.y, 128);
    assert_int_equal(out.w, 44);
    assert_int_equal(out.h, 89);
    assert_int_equal(out.bands, 4);
    assert_int_equal(out.dtype, GM_DT_F32);
    assert_unused_zero(&out, 1, 1, 1, 0, 0, 0, 0, 0);

    gm_header_t big = {.kind = GM_MSG_TASK, .job = UINT64_MAX, .block = 4294967294u, .x = 2147483647u,
                       .y = 2147483647u, .w = 8192, .h = 8192, .bands = 4096, .dtype = GM_DT_F32};
    round_trip(&big, &out);
    assert_true(out.job == UINT64_MAX);
    assert_int_equal(out.block, 4294967294u);
    assert_int_equal(out.x, 2147483647u);
    assert_int_equal(out.y, 2147483647u);
    assert_int_equal(out.w, 8192);
    assert_int_equal(out.h, 8192);
    assert_int_equal(out.bands, 4096);
    assert_int_equal(out.dtype, GM_DT_F32);

    gm_header_t small = {.kind = GM_MSG_TASK, .job = 0, .block = 0, .x = 0, .y = 0, .w = 1, .h = 1, .bands = 1,
                         .dtype = GM_DT_F32};
    round_trip(&small, &out);
    assert_true(out.job == 0);
    assert_int_equal(out.w, 1);
    assert_int_equal(out.h, 1);
    assert_int_equal(out.bands, 1);
}

/* A result keeps its block fields and carries no band count or type. */
static void test_round_trip_result(void **state) {
    (void)state;
    gm_header_t in = {.kind = GM_MSG_RESULT, .job = 0xfedcba9876543210ULL, .block = 3, .x = 0, .y = 128,
                      .w = 128, .h = 89}, out;
    round_trip(&in, &out);
    assert_int_equal(out.version, 1);
    assert_int_equal(out.kind, GM_MSG_RESULT);
    assert_true(out.job == 0xfedcba9876543210ULL);
    assert_int_equal(out.block, 3);
    assert_int_equal(out.x, 0);
    assert_int_equal(out.y, 128);
    assert_int_equal(out.w, 128);
    assert_int_equal(out.h, 89);
    assert_unused_zero(&out, 1, 1, 0, 0, 0, 0, 0, 0);
}

/* An ack keeps its job and count, up to GM_WIRE_MAX_ACKS. */
static void test_round_trip_ack(void **state) {
    (void)state;
    const uint32_t counts[] = {0, 1, 65536};
    for (size_t i = 0; i < 3; i++) {
        gm_header_t in = {.kind = GM_MSG_ACK, .job = 42, .count = counts[i]}, out;
        round_trip(&in, &out);
        assert_int_equal(out.version, 1);
        assert_int_equal(out.kind, GM_MSG_ACK);
        assert_int_equal(out.job, 42);
        assert_int_equal(out.count, counts[i]);
        assert_unused_zero(&out, 1, 0, 0, 1, 0, 0, 0, 0);
    }
}

/* Ack and done keep the writer shard "wr" (0 is sent as no key); a shard at GM_WIRE_MAX_WRITERS is refused. */
static void test_round_trip_writer_shard(void **state) {
    (void)state;
    for (uint32_t wr = 0; wr < GM_WIRE_MAX_WRITERS; wr++) {
        gm_header_t in = {.kind = GM_MSG_ACK, .job = 7, .count = 0, .writer = wr, .received = wr & 1}, out;
        round_trip(&in, &out);
        assert_int_equal(out.writer, wr);
        assert_int_equal(out.received, wr & 1);
        gm_header_t d = {.kind = GM_MSG_DONE, .job = 7, .writer = wr};
        round_trip(&d, &out);
        assert_int_equal(out.kind, GM_MSG_DONE);
        assert_int_equal(out.writer, wr);
    }
    /* {"v":1,"t":"ack","job":7,"n":0,"wr":8} */
    const unsigned char bad[] = {0x85, 0xa1, 'v', 0x01, 0xa1, 't', 0xa3, 'a', 'c', 'k', 0xa3, 'j', 'o', 'b', 0x07,
                                 0xa1, 'n', 0x00, 0xa2, 'w', 'r', 0x08};
    gm_header_t out;
    char err[GM_ERR_LEN];
    assert_int_equal(gm_wire_decode(bad, sizeof bad, &out, err), -1);
    assert_non_null(strstr(err, "wr"));
}

/* Done keeps its job id. */
static void test_round_trip_done(void **state) {
    (void)state;
    gm_header_t in = {.kind = GM_MSG_DONE, .job = 0x8000000000000001ULL}, out;
    round_trip(&in, &out);
    assert_int_equal(out.version, 1);
    assert_int_equal(out.kind, GM_MSG_DONE);
    assert_true(out.job == 0x8000000000000001ULL);
    assert_unused_zero(&out, 1, 0, 0, 0, 0, 0, 0, 0);
}

/* An error keeps its text, from empty to the longest that fits (255 bytes). */
static void test_round_trip_error(void **state) {
    (void)state;
    gm_header_t in = {.kind = GM_MSG_ERROR}, out;
    strcpy(in.text, "gridmill-reader: job 0123456789abcdef is not served here");
    round_trip(&in, &out);
    assert_int_equal(out.version, 1);
    assert_int_equal(out.kind, GM_MSG_ERROR);
    assert_string_equal(out.text, "gridmill-reader: job 0123456789abcdef is not served here");
    assert_unused_zero(&out, 0, 0, 0, 0, 0, 1, 0, 0);

    memset(in.text, 'q', 255);
    in.text[255] = '\0';
    round_trip(&in, &out);
    assert_int_equal(strlen(out.text), 255);
    assert_memory_equal(out.text, in.text, 256);

    in.text[0] = '\0';
    round_trip(&in, &out);
    assert_string_equal(out.text, "");
}

/* A training task keeps its job, iteration, row count and column count, at typical values and at the limits. */
static void test_round_trip_train(void **state) {
    (void)state;
    gm_header_t in = {.kind = GM_MSG_TRAIN, .job = 0x0123456789abcdefULL, .iteration = 7, .count = 1000, .cols = 4},
                out;
    round_trip(&in, &out);
    assert_int_equal(out.version, 1);
    assert_int_equal(out.kind, GM_MSG_TRAIN);
    assert_true(out.job == 0x0123456789abcdefULL);
    assert_int_equal(out.iteration, 7);
    assert_int_equal(out.count, 1000);
    assert_int_equal(out.cols, 4);
    assert_unused_zero(&out, 1, 0, 0, 1, 0, 0, 1, 1);

    /* The largest: iteration 4095, 2^26 = 67108864 rows, 4096 columns, the largest job id. */
    gm_header_t big = {.kind = GM_MSG_TRAIN, .job = UINT64_MAX, .iteration = 4095, .count = 67108864u, .cols = 4096};
    round_trip(&big, &out);
    assert_true(out.job == UINT64_MAX);
    assert_int_equal(out.iteration, 4095);
    assert_int_equal(out.count, 67108864u);
    assert_int_equal(out.cols, 4096);
    assert_unused_zero(&out, 1, 0, 0, 1, 0, 0, 1, 1);

    /* The smallest: iteration 0, one row of one feature. */
    gm_header_t small = {.kind = GM_MSG_TRAIN, .job = 0, .iteration = 0, .count = 1, .cols = 1};
    round_trip(&small, &out);
    assert_true(out.job == 0);
    assert_int_equal(out.iteration, 0);
    assert_int_equal(out.count, 1);
    assert_int_equal(out.cols, 1);
}

/* Model and saved keep their job and iteration, from 0 to GM_WIRE_MAX_ITERATIONS, and nothing else. */
static void test_round_trip_model_saved(void **state) {
    (void)state;
    const gm_msg_kind_t kinds[] = {GM_MSG_MODEL, GM_MSG_SAVED};
    const uint32_t iterations[] = {0, 1, 999, 4095};
    for (size_t k = 0; k < 2; k++) {
        for (size_t i = 0; i < NFIELDS(iterations); i++) {
            /* count and cols set on input: these kinds do not carry them, so they must come back zero */
            gm_header_t in = {.kind = kinds[k], .job = 0x8000000000000001ULL, .iteration = iterations[i],
                              .count = 5, .cols = 6},
                        out;
            round_trip(&in, &out);
            assert_int_equal(out.version, 1);
            assert_int_equal(out.kind, kinds[k]);
            assert_true(out.job == 0x8000000000000001ULL);
            assert_int_equal(out.iteration, iterations[i]);
            assert_unused_zero(&out, 1, 0, 0, 0, 0, 0, 1, 0);
        }
    }
}

/* Unpacks 'buf' with plain msgpack-c and asserts it is a map of exactly the keys in 'want', with those values. */
typedef struct {
    const char *key;
    uint64_t u;
    const char *s;
} want_t;
static void assert_layout(const void *buf, size_t len, const want_t *want, size_t nwant) {
    msgpack_unpacked res;
    msgpack_unpacked_init(&res);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&res, buf, len, &off), MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, len);
    assert_int_equal(res.data.type, MSGPACK_OBJECT_MAP);
    assert_int_equal(res.data.via.map.size, nwant);
    for (size_t k = 0; k < nwant; k++) {
        const msgpack_object *val = NULL;
        for (uint32_t i = 0; i < res.data.via.map.size; i++) {
            const msgpack_object_kv *kv = &res.data.via.map.ptr[i];
            if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == strlen(want[k].key) &&
                memcmp(kv->key.via.str.ptr, want[k].key, kv->key.via.str.size) == 0)
                val = &kv->val;
        }
        if (!val) fail_msg("encoded header lacks key \"%s\"", want[k].key);
        if (want[k].s) {
            assert_int_equal(val->type, MSGPACK_OBJECT_STR);
            assert_int_equal(val->via.str.size, strlen(want[k].s));
            assert_memory_equal(val->via.str.ptr, want[k].s, strlen(want[k].s));
        } else {
            assert_int_equal(val->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
            assert_int_equal(val->via.u64, want[k].u);
        }
    }
    msgpack_unpacked_destroy(&res);
}

/* The encoder writes exactly "v", "t", "job", "i", "n", "k" for a training task and "v", "t", "job", "i" for
 * model and saved, read back with plain msgpack-c. */
static void test_encode_train_layout(void **state) {
    (void)state;
    void *buf;
    size_t len;
    char err[GM_ERR_LEN] = "";
    gm_header_t train = {.kind = GM_MSG_TRAIN, .job = 7, .iteration = 12, .count = 500, .cols = 3};
    assert_int_equal(gm_wire_encode(&train, &buf, &len, err), 0);
    static const want_t want_train[] = {
        {"v", 1, NULL}, {"t", 0, "train"}, {"job", 7, NULL}, {"i", 12, NULL}, {"n", 500, NULL}, {"k", 3, NULL},
    };
    assert_layout(buf, len, want_train, NFIELDS(want_train));
    free(buf);

    gm_header_t model = {.kind = GM_MSG_MODEL, .job = 7, .iteration = 12, .count = 500, .cols = 3};
    assert_int_equal(gm_wire_encode(&model, &buf, &len, err), 0);
    static const want_t want_model[] = {{"v", 1, NULL}, {"t", 0, "model"}, {"job", 7, NULL}, {"i", 12, NULL}};
    assert_layout(buf, len, want_model, NFIELDS(want_model));
    free(buf);

    gm_header_t saved = {.kind = GM_MSG_SAVED, .job = 8, .iteration = 0};
    assert_int_equal(gm_wire_encode(&saved, &buf, &len, err), 0);
    static const want_t want_saved[] = {{"v", 1, NULL}, {"t", 0, "saved"}, {"job", 8, NULL}, {"i", 0, NULL}};
    assert_layout(buf, len, want_saved, NFIELDS(want_saved));
    free(buf);
}

/* The encoder writes exactly the keys PROTOCOL.md lists for a task, read back with plain msgpack-c. */
static void test_encode_task_layout(void **state) {
    (void)state;
    gm_header_t in = {.kind = GM_MSG_TASK, .job = 7, .block = 2, .x = 256, .y = 0, .w = 44, .h = 128, .bands = 3,
                      .dtype = GM_DT_F32};
    void *buf;
    size_t len;
    char err[GM_ERR_LEN] = "";
    assert_int_equal(gm_wire_encode(&in, &buf, &len, err), 0);
    msgpack_unpacked res;
    msgpack_unpacked_init(&res);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&res, buf, len, &off), MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, len);
    assert_int_equal(res.data.type, MSGPACK_OBJECT_MAP);
    assert_int_equal(res.data.via.map.size, 10);
    static const struct { const char *key; uint64_t u; const char *s; } want[] = {
        {"v", 1, NULL}, {"t", 0, "task"}, {"job", 7, NULL}, {"b", 2, NULL}, {"x", 256, NULL},
        {"y", 0, NULL}, {"w", 44, NULL},  {"h", 128, NULL}, {"n", 3, NULL}, {"dt", 0, "f32"},
    };
    for (size_t k = 0; k < NFIELDS(want); k++) {
        const msgpack_object *val = NULL;
        for (uint32_t i = 0; i < res.data.via.map.size; i++) {
            const msgpack_object_kv *kv = &res.data.via.map.ptr[i];
            if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == strlen(want[k].key) &&
                memcmp(kv->key.via.str.ptr, want[k].key, kv->key.via.str.size) == 0)
                val = &kv->val;
        }
        if (!val) fail_msg("encoded task lacks key \"%s\"", want[k].key);
        if (want[k].s) {
            assert_int_equal(val->type, MSGPACK_OBJECT_STR);
            assert_int_equal(val->via.str.size, strlen(want[k].s));
            assert_memory_equal(val->via.str.ptr, want[k].s, strlen(want[k].s));
        } else {
            assert_int_equal(val->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
            assert_int_equal(val->via.u64, want[k].u);
        }
    }
    msgpack_unpacked_destroy(&res);
    free(buf);
}

/* The encoder refuses the job kind (gm_job_encode owns it) and unknown kinds. */
static void test_encode_rejects_kind(void **state) {
    (void)state;
    const int kinds[] = {GM_MSG_JOB, 0, (int)GM_MSG_HEARTBEAT + 1, 1000, -1}; /* heartbeat is the last kind */
    for (size_t i = 0; i < NFIELDS(kinds); i++) {
        gm_header_t in = {.kind = (gm_msg_kind_t)kinds[i]};
        void *buf = NULL;
        size_t len = 0;
        char err[GM_ERR_LEN] = "";
        assert_int_equal(gm_wire_encode(&in, &buf, &len, err), -1);
        assert_true(err[0] != '\0');
    }
}

/* Hand-built headers of every kind decode to the values packed, independently of the encoder. */
static void test_decode_hand_built(void **state) {
    (void)state;
    gm_header_t h;
    char err[GM_ERR_LEN] = "";
    size_t len;
    void *buf = build(task_fields, NFIELDS(task_fields), NULL, NULL, &len);
    if (gm_wire_decode(buf, len, &h, err) != 0) fail_msg("task: %s", err);
    free(buf);
    assert_int_equal(h.version, 1);
    assert_int_equal(h.kind, GM_MSG_TASK);
    assert_true(h.job == 0x0123456789abcdefULL);
    assert_int_equal(h.block, 5);
    assert_int_equal(h.x, 256);
    assert_int_equal(h.y, 128);
    assert_int_equal(h.w, 44);
    assert_int_equal(h.h, 89);
    assert_int_equal(h.bands, 4);
    assert_int_equal(h.dtype, GM_DT_F32);

    buf = build(result_fields, NFIELDS(result_fields), NULL, NULL, &len);
    if (gm_wire_decode(buf, len, &h, err) != 0) fail_msg("result: %s", err);
    free(buf);
    assert_int_equal(h.kind, GM_MSG_RESULT);
    assert_int_equal(h.job, 77);
    assert_int_equal(h.w, 128);
    assert_int_equal(h.h, 128);

    const field_t writer = S("role", "writer");
    buf = build(hello_fields, NFIELDS(hello_fields), NULL, &writer, &len);
    if (gm_wire_decode(buf, len, &h, err) != 0) fail_msg("hello: %s", err);
    free(buf);
    assert_int_equal(h.kind, GM_MSG_HELLO);
    assert_string_equal(h.role, "writer");

    buf = build(ack_fields, NFIELDS(ack_fields), NULL, NULL, &len);
    if (gm_wire_decode(buf, len, &h, err) != 0) fail_msg("ack: %s", err);
    free(buf);
    assert_int_equal(h.kind, GM_MSG_ACK);
    assert_int_equal(h.job, 9);
    assert_int_equal(h.count, 3);

    buf = build(done_fields, NFIELDS(done_fields), NULL, NULL, &len);
    if (gm_wire_decode(buf, len, &h, err) != 0) fail_msg("done: %s", err);
    free(buf);
    assert_int_equal(h.kind, GM_MSG_DONE);
    assert_int_equal(h.job, 9);

    buf = build(error_fields, NFIELDS(error_fields), NULL, NULL, &len);
    if (gm_wire_decode(buf, len, &h, err) != 0) fail_msg("error: %s", err);
    free(buf);
    assert_int_equal(h.kind, GM_MSG_ERROR);
    assert_string_equal(h.text, "no such job");

    buf = build(train_fields, NFIELDS(train_fields), NULL, NULL, &len);
    if (gm_wire_decode(buf, len, &h, err) != 0) fail_msg("train: %s", err);
    free(buf);
    assert_int_equal(h.kind, GM_MSG_TRAIN);
    assert_true(h.job == 0x0123456789abcdefULL);
    assert_int_equal(h.iteration, 7);
    assert_int_equal(h.count, 1000);
    assert_int_equal(h.cols, 4);
    assert_int_equal(h.bands, 0);

    buf = build(model_fields, NFIELDS(model_fields), NULL, NULL, &len);
    if (gm_wire_decode(buf, len, &h, err) != 0) fail_msg("model: %s", err);
    free(buf);
    assert_int_equal(h.kind, GM_MSG_MODEL);
    assert_int_equal(h.job, 9);
    assert_int_equal(h.iteration, 3);
    assert_int_equal(h.count, 0);
    assert_int_equal(h.cols, 0);

    buf = build(saved_fields, NFIELDS(saved_fields), NULL, NULL, &len);
    if (gm_wire_decode(buf, len, &h, err) != 0) fail_msg("saved: %s", err);
    free(buf);
    assert_int_equal(h.kind, GM_MSG_SAVED);
    assert_int_equal(h.job, 9);
    assert_int_equal(h.iteration, 4095);

    /* Keys another kind uses are ignored: a model header with "n" and "k" still has count and cols 0. */
    const field_t model_n = U("n", 1000);
    buf = build(model_fields, NFIELDS(model_fields), NULL, &model_n, &len);
    if (gm_wire_decode(buf, len, &h, err) != 0) fail_msg("model with n: %s", err);
    free(buf);
    assert_int_equal(h.count, 0);

    /* A job header decodes here to its version and kind only. */
    const field_t job_fields[] = {U("v", 1), S("t", "job"), U("id", 5)};
    buf = build(job_fields, NFIELDS(job_fields), NULL, NULL, &len);
    if (gm_wire_decode(buf, len, &h, err) != 0) fail_msg("job: %s", err);
    free(buf);
    assert_int_equal(h.version, 1);
    assert_int_equal(h.kind, GM_MSG_JOB);
    assert_int_equal(h.job, 0);
}

/* ---- peek ---- */

/* Peek reads the version and kind of every kind of header, and nothing else is required. */
static void test_peek(void **state) {
    (void)state;
    static const struct { const field_t *fields; size_t n; gm_msg_kind_t kind; } cases[] = {
        {hello_fields, NFIELDS(hello_fields), GM_MSG_HELLO}, {task_fields, NFIELDS(task_fields), GM_MSG_TASK},
        {result_fields, NFIELDS(result_fields), GM_MSG_RESULT}, {ack_fields, NFIELDS(ack_fields), GM_MSG_ACK},
        {done_fields, NFIELDS(done_fields), GM_MSG_DONE}, {error_fields, NFIELDS(error_fields), GM_MSG_ERROR},
        {train_fields, NFIELDS(train_fields), GM_MSG_TRAIN}, {model_fields, NFIELDS(model_fields), GM_MSG_MODEL},
        {saved_fields, NFIELDS(saved_fields), GM_MSG_SAVED},
    };
    for (size_t i = 0; i < NFIELDS(cases); i++) {
        size_t len;
        void *buf = build(cases[i].fields, cases[i].n, NULL, NULL, &len);
        uint32_t version = 0;
        gm_msg_kind_t kind = 0;
        char err[GM_ERR_LEN] = "";
        if (gm_wire_peek(buf, len, &version, &kind, err) != 0) fail_msg("peek case %zu: %s", i, err);
        free(buf);
        assert_int_equal(version, 1);
        assert_int_equal(kind, cases[i].kind);
    }
    /* A bare job header: peek is how a stage learns it got a job. */
    const field_t job_fields[] = {U("v", 1), S("t", "job")};
    size_t len;
    void *buf = build(job_fields, 2, NULL, NULL, &len);
    uint32_t version = 0;
    gm_msg_kind_t kind = 0;
    char err[GM_ERR_LEN] = "";
    assert_int_equal(gm_wire_peek(buf, len, &version, &kind, err), 0);
    free(buf);
    assert_int_equal(version, 1);
    assert_int_equal(kind, GM_MSG_JOB);

    /* A task missing its block keys still peeks: only "v" and "t" are read. */
    buf = build(task_fields, NFIELDS(task_fields), "w", NULL, &len);
    assert_int_equal(gm_wire_peek(buf, len, &version, &kind, err), 0);
    free(buf);
    assert_int_equal(kind, GM_MSG_TASK);

    /* An encoded frame peeks the same. */
    gm_header_t h = {.kind = GM_MSG_DONE, .job = 3};
    assert_int_equal(gm_wire_encode(&h, &buf, &len, err), 0);
    kind = 0;
    assert_int_equal(gm_wire_peek(buf, len, &version, &kind, err), 0);
    free(buf);
    assert_int_equal(kind, GM_MSG_DONE);
}

/* Peek refuses what decode refuses at the version and kind level. */
static void test_peek_rejects(void **state) {
    (void)state;
    uint32_t version;
    gm_msg_kind_t kind;
    char err[GM_ERR_LEN] = "";
    size_t len;
    void *buf;

    assert_int_equal(gm_wire_peek(NULL, 0, &version, &kind, err), -1);
    assert_err_has(err, "empty");

    const unsigned char garbage[] = {0xc1, 0xc1, 0xc1};
    buf = exact_copy(garbage, sizeof garbage);
    assert_int_equal(gm_wire_peek(buf, sizeof garbage, &version, &kind, err), -1);
    free(buf);
    assert_err_has(err, "msgpack");

    const field_t v2 = U("v", 2);
    buf = build(task_fields, NFIELDS(task_fields), NULL, &v2, &len);
    assert_int_equal(gm_wire_peek(buf, len, &version, &kind, err), -1);
    free(buf);
    assert_err_has(err, "version");

    buf = build(task_fields, NFIELDS(task_fields), "t", NULL, &len);
    assert_int_equal(gm_wire_peek(buf, len, &version, &kind, err), -1);
    free(buf);
    assert_err_has(err, "\"t\"");

    const field_t unknown = S("t", "frobnicate");
    buf = build(task_fields, NFIELDS(task_fields), NULL, &unknown, &len);
    assert_int_equal(gm_wire_peek(buf, len, &version, &kind, err), -1);
    free(buf);
    assert_err_has(err, "frobnicate");
}

/* ---- type tables ---- */

/* Message kind names match PROTOCOL.md; out-of-range kinds have none. */
static void test_kind_names(void **state) {
    (void)state;
    assert_string_equal(gm_msg_kind_name(GM_MSG_HELLO), "hello");
    assert_string_equal(gm_msg_kind_name(GM_MSG_JOB), "job");
    assert_string_equal(gm_msg_kind_name(GM_MSG_TASK), "task");
    assert_string_equal(gm_msg_kind_name(GM_MSG_RESULT), "result");
    assert_string_equal(gm_msg_kind_name(GM_MSG_ACK), "ack");
    assert_string_equal(gm_msg_kind_name(GM_MSG_DONE), "done");
    assert_string_equal(gm_msg_kind_name(GM_MSG_ERROR), "error");
    assert_string_equal(gm_msg_kind_name(GM_MSG_TRAIN), "train");
    assert_string_equal(gm_msg_kind_name(GM_MSG_MODEL), "model");
    assert_string_equal(gm_msg_kind_name(GM_MSG_SAVED), "saved");
    assert_int_equal(GM_MSG_TRAIN, 8); /* the enum order gm_wire.h fixes */
    assert_int_equal(GM_MSG_SAVED, 10);
    assert_null(gm_msg_kind_name((gm_msg_kind_t)0));
    assert_null(gm_msg_kind_name((gm_msg_kind_t)((int)GM_MSG_HEARTBEAT + 1)));
    assert_null(gm_msg_kind_name((gm_msg_kind_t)-1));
}

/* Each sample type has its wire name and size; GM_DT_NONE and unknown values have neither. */
static void test_dtype_tables(void **state) {
    (void)state;
    static const struct { gm_dtype_t dt; const char *name; size_t size; } want[] = {
        {GM_DT_U8, "u8", 1},   {GM_DT_U16, "u16", 2}, {GM_DT_I16, "i16", 2}, {GM_DT_U32, "u32", 4},
        {GM_DT_I32, "i32", 4}, {GM_DT_F32, "f32", 4}, {GM_DT_F64, "f64", 8},
    };
    for (size_t i = 0; i < NFIELDS(want); i++) {
        assert_string_equal(gm_dtype_name(want[i].dt), want[i].name);
        assert_int_equal(gm_dtype_size(want[i].dt), want[i].size);
        gm_dtype_t dt = GM_DT_NONE;
        assert_int_equal(gm_dtype_parse(want[i].name, strlen(want[i].name), &dt), 0);
        assert_int_equal(dt, want[i].dt);
    }
    assert_null(gm_dtype_name(GM_DT_NONE));
    assert_int_equal(gm_dtype_size(GM_DT_NONE), 0);
    assert_null(gm_dtype_name((gm_dtype_t)8));
    assert_int_equal(gm_dtype_size((gm_dtype_t)8), 0);
    assert_null(gm_dtype_name((gm_dtype_t)-1));
    assert_int_equal(gm_dtype_size((gm_dtype_t)-1), 0);
}

/* gm_dtype_parse takes exactly 'len' bytes and refuses anything but a wire name. */
static void test_dtype_parse_rejects(void **state) {
    (void)state;
    gm_dtype_t dt = GM_DT_F64;
    static const struct { const char *s; size_t len; } bad[] = {
        {"", 0}, {"f", 1}, {"f3", 2}, {"f32 ", 4}, {"F32", 3}, {"f16", 3}, {"float32", 7}, {"u1", 2},
        {"u8\0", 3}, {"none", 4},
    };
    for (size_t i = 0; i < NFIELDS(bad); i++) {
        dt = GM_DT_F64;
        if (gm_dtype_parse(bad[i].s, bad[i].len, &dt) != -1) fail_msg("\"%.*s\" parsed", (int)bad[i].len, bad[i].s);
        assert_int_equal(dt, GM_DT_F64); /* left alone on failure */
    }
    /* The name need not be NUL-terminated: only 'len' bytes count. */
    assert_int_equal(gm_dtype_parse("u16garbage", 3, &dt), 0);
    assert_int_equal(dt, GM_DT_U16);
    assert_int_equal(gm_dtype_parse("u8", 2, &dt), 0);
    assert_int_equal(dt, GM_DT_U8);
}

/* ---- rejections: the frame as a whole ---- */

/* An empty frame, NULL or not, is refused. */
static void test_reject_empty(void **state) {
    (void)state;
    gm_header_t h;
    char err[GM_ERR_LEN] = "";
    assert_int_equal(gm_wire_decode(NULL, 0, &h, err), -1);
    assert_err_has(err, "empty");
    err[0] = '\0';
    assert_int_equal(decode_copy("", 0, &h, err), -1);
    assert_err_has(err, "empty");
}

/* Bytes that are not msgpack, or are msgpack followed by junk, are refused. */
static void test_reject_garbage(void **state) {
    (void)state;
    gm_header_t h;
    char err[GM_ERR_LEN] = "";
    const unsigned char never_used[] = {0xc1};
    assert_int_equal(decode_copy(never_used, sizeof never_used, &h, err), -1);
    assert_err_has(err, "not valid msgpack");

    const unsigned char junk[] = {0xc1, 0xde, 0xad, 0xbe, 0xef, 0x00};
    assert_int_equal(decode_copy(junk, sizeof junk, &h, err), -1);
    assert_err_has(err, "not valid msgpack");

    /* A map header announcing 15 pairs over 3 bytes of junk. */
    const unsigned char short_map[] = {0x8f, 0xc1, 0xc1, 0xc1};
    assert_int_equal(decode_copy(short_map, sizeof short_map, &h, err), -1);
    assert_err_has(err, "msgpack");

    /* Plain text: 'G' is a positive fixint, so this is one integer and trailing bytes. */
    const char *text = "GET / HTTP/1.1\r\n\r\n";
    assert_int_equal(decode_copy(text, strlen(text), &h, err), -1);
    assert_err_has(err, "trailing");
}

/* Container and string counts far beyond the frame's bytes are refused. msgpack-c allocates count x object
 * size before it reads the items, so the decoder must bound counts by the frame size first; under ASan an
 * unbounded 8-byte frame aborts here with a request for 256 GiB. */
static void test_reject_huge_counts(void **state) {
    (void)state;
    gm_header_t h;
    char err[GM_ERR_LEN] = "";
    const unsigned char huge_str[] = {0x81, 0xa1, 't', 0xdb, 0xff, 0xff, 0xff, 0xff, 't'};
    assert_int_equal(decode_copy(huge_str, sizeof huge_str, &h, err), -1);
    assert_err_has(err, "msgpack");
    /* An array32 of 2^32-1 items inside a valid-looking map. */
    const unsigned char huge_array[] = {0x81, 0xa1, 'z', 0xdd, 0xff, 0xff, 0xff, 0xff, 0x01};
    assert_int_equal(decode_copy(huge_array, sizeof huge_array, &h, err), -1);
    assert_true(err[0] != '\0');
    /* A map32 of 2^32-1 pairs. */
    const unsigned char huge_map[] = {0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 'v', 0x01};
    assert_int_equal(decode_copy(huge_map, sizeof huge_map, &h, err), -1);
    assert_true(err[0] != '\0');
}

/* Every strict prefix of a valid task header is refused without reading past its end. */
static void test_reject_every_prefix(void **state) {
    (void)state;
    size_t len;
    void *full = build(task_fields, NFIELDS(task_fields), NULL, NULL, &len);
    gm_header_t h;
    char err[GM_ERR_LEN];
    assert_int_equal(gm_wire_decode(full, len, &h, err), 0);
    for (size_t n = 0; n < len; n++) {
        err[0] = '\0';
        if (decode_copy(full, n, &h, err) != -1) fail_msg("prefix of %zu of %zu bytes decoded", n, len);
        if (n == 0) assert_err_has(err, "empty");
        else assert_err_has(err, "msgpack");
    }
    free(full);

    /* The same for frames the encoder wrote, for each kind. */
    gm_header_t kinds[] = {
        {.kind = GM_MSG_HELLO, .role = "writer"},
        {.kind = GM_MSG_TASK, .job = UINT64_MAX, .block = 1, .x = 128, .w = 128, .h = 128, .bands = 9},
        {.kind = GM_MSG_RESULT, .job = 1, .w = 1, .h = 1},
        {.kind = GM_MSG_ACK, .job = 1, .count = 65536},
        {.kind = GM_MSG_DONE, .job = 1},
        {.kind = GM_MSG_ERROR, .text = "disk full"},
        {.kind = GM_MSG_TRAIN, .job = UINT64_MAX, .iteration = 4095, .count = 67108864u, .cols = 4096},
        {.kind = GM_MSG_MODEL, .job = 1, .iteration = 300},
        {.kind = GM_MSG_SAVED, .job = UINT64_MAX, .iteration = 0},
    };
    for (size_t k = 0; k < NFIELDS(kinds); k++) {
        void *buf;
        assert_int_equal(gm_wire_encode(&kinds[k], &buf, &len, err), 0);
        for (size_t n = 0; n < len; n++)
            if (decode_copy(buf, n, &h, err) != -1) fail_msg("kind %d: prefix %zu of %zu decoded", kinds[k].kind, n, len);
        free(buf);
    }
}

/* A valid header followed by any byte is refused. */
static void test_reject_trailing(void **state) {
    (void)state;
    size_t len;
    void *valid = build(task_fields, NFIELDS(task_fields), NULL, NULL, &len);
    unsigned char *longer = malloc(len + 1);
    assert_non_null(longer);
    memcpy(longer, valid, len);
    gm_header_t h;
    char err[GM_ERR_LEN] = "";
    const unsigned char tails[] = {0x00, 0xc0, 0x80, 0xc1};
    for (size_t i = 0; i < sizeof tails; i++) {
        longer[len] = tails[i];
        err[0] = '\0';
        assert_int_equal(gm_wire_decode(longer, len + 1, &h, err), -1);
        assert_err_has(err, "trailing");
    }
    free(longer);
    free(valid);
}

/* A frame that is valid msgpack but not a map is refused. */
static void test_reject_not_map(void **state) {
    (void)state;
    gm_header_t h;
    char err[GM_ERR_LEN] = "";
    /* ["v", 1, "t", "task"] as an array. */
    const unsigned char array[] = {0x94, 0xa1, 'v', 0x01, 0xa1, 't', 0xa4, 't', 'a', 's', 'k'};
    assert_int_equal(decode_copy(array, sizeof array, &h, err), -1);
    assert_err_has(err, "not a msgpack map");
    const unsigned char integer[] = {0x07};
    assert_int_equal(decode_copy(integer, sizeof integer, &h, err), -1);
    assert_err_has(err, "not a msgpack map");
    const unsigned char nil[] = {0xc0};
    assert_int_equal(decode_copy(nil, sizeof nil, &h, err), -1);
    assert_err_has(err, "not a msgpack map");
    const unsigned char str[] = {0xa4, 't', 'a', 's', 'k'};
    assert_int_equal(decode_copy(str, sizeof str, &h, err), -1);
    assert_err_has(err, "not a msgpack map");
    const unsigned char empty_map[] = {0x80};
    assert_int_equal(decode_copy(empty_map, sizeof empty_map, &h, err), -1);
    assert_err_has(err, "\"v\"");
}

/* A header nested deeper than msgpack-c's stack is refused, not a crash. */
static void test_reject_deep_nesting(void **state) {
    (void)state;
    unsigned char buf[3 + 1000 + 1] = {0x81, 0xa1, 'z'};
    memset(buf + 3, 0x91, 1000); /* 1000 nested one-element arrays */
    buf[sizeof buf - 1] = 0x01;
    gm_header_t h;
    char err[GM_ERR_LEN] = "";
    assert_int_equal(decode_copy(buf, sizeof buf, &h, err), -1);
    assert_err_has(err, "msgpack");
}

/* A frame above GM_WIRE_MAX_HEADER is refused before parsing; one of exactly that size is accepted. */
static void test_reject_oversized(void **state) {
    (void)state;
    const size_t max = GM_WIRE_MAX_HEADER;
    assert_int_equal(max, 1048576);
    /* hello + a "pad" string; its size is tuned so the frame is exactly 'max' bytes. */
    size_t pad_len = max - 64, len;
    char *pad = malloc(max);
    assert_non_null(pad);
    memset(pad, 'p', max);
    field_t fields[] = {U("v", 1), S("t", "hello"), S("role", "worker"), {.key = "pad", .type = F_STR, .s = pad}};
    fields[3].slen = pad_len;
    void *buf = build(fields, NFIELDS(fields), NULL, NULL, &len);
    free(buf);
    pad_len += max - len; /* same str32 header either way */
    fields[3].slen = pad_len;
    buf = build(fields, NFIELDS(fields), NULL, NULL, &len);
    assert_int_equal(len, max);
    gm_header_t h;
    char err[GM_ERR_LEN] = "";
    if (gm_wire_decode(buf, len, &h, err) != 0) fail_msg("frame of exactly %zu bytes: %s", len, err);
    assert_string_equal(h.role, "worker");
    free(buf);

    fields[3].slen = pad_len + 1;
    buf = build(fields, NFIELDS(fields), NULL, NULL, &len);
    assert_int_equal(len, max + 1);
    err[0] = '\0';
    assert_int_equal(gm_wire_decode(buf, len, &h, err), -1);
    assert_err_has(err, "1048577");
    assert_err_has(err, "limit");
    uint32_t version;
    gm_msg_kind_t kind;
    assert_int_equal(gm_wire_peek(buf, len, &version, &kind, err), -1);
    assert_err_has(err, "limit");
    free(buf);
    free(pad);
}

/* ---- rejections: version and kind ---- */

/* "v" must be present, an unsigned integer, and 1; the error names the version. */
static void test_reject_version(void **state) {
    (void)state;
    const size_t n = NFIELDS(task_fields);
    expect_reject(task_fields, n, "v", NULL, "\"v\"");
    const field_t v2 = U("v", 2), v0 = U("v", 0), vbig = U("v", 4294967297ULL), vneg = NEG("v", -1),
                  vdbl = DBL("v", 1.0), vstr = S("v", "1"), vnil = NIL("v");
    expect_reject(task_fields, n, NULL, &v2, "version");
    expect_reject(task_fields, n, NULL, &v2, "2");
    expect_reject(task_fields, n, NULL, &v0, "version");
    expect_reject(task_fields, n, NULL, &vbig, "\"v\"");
    expect_reject(task_fields, n, NULL, &vneg, "\"v\"");
    expect_reject(task_fields, n, NULL, &vdbl, "\"v\"");
    expect_reject(task_fields, n, NULL, &vstr, "\"v\"");
    expect_reject(task_fields, n, NULL, &vnil, "\"v\"");
    /* The version is checked for every kind. */
    expect_reject(hello_fields, NFIELDS(hello_fields), NULL, &v2, "version");
    expect_reject(error_fields, NFIELDS(error_fields), NULL, &v2, "version");
}

/* "t" must be present, a string, and a known kind. */
static void test_reject_kind(void **state) {
    (void)state;
    const size_t n = NFIELDS(task_fields);
    expect_reject(task_fields, n, "t", NULL, "\"t\"");
    const field_t tint = U("t", 3), tnil = NIL("t"), tunk = S("t", "frobnicate"), tcase = S("t", "Task"),
                  tempty = S("t", ""), tnul = S("t", "task\0"), tprefix = S("t", "tas");
    expect_reject(task_fields, n, NULL, &tint, "\"t\"");
    expect_reject(task_fields, n, NULL, &tint, "not a string");
    expect_reject(task_fields, n, NULL, &tnil, "\"t\"");
    expect_reject(task_fields, n, NULL, &tunk, "\"t\"");
    expect_reject(task_fields, n, NULL, &tunk, "frobnicate");
    expect_reject(task_fields, n, NULL, &tcase, "\"t\"");
    expect_reject(task_fields, n, NULL, &tempty, "\"t\"");
    expect_reject(task_fields, n, NULL, &tnul, "\"t\"");
    expect_reject(task_fields, n, NULL, &tprefix, "\"t\"");
}

/* ---- rejections: task and result fields ---- */

/* A task without any one of its keys is refused, naming the key. */
static void test_reject_task_missing_key(void **state) {
    (void)state;
    const char *keys[] = {"job", "b", "x", "y", "w", "h", "n", "dt"};
    char needle[16];
    for (size_t i = 0; i < NFIELDS(keys); i++) {
        snprintf(needle, sizeof needle, "\"%s\"", keys[i]);
        expect_reject(task_fields, NFIELDS(task_fields), keys[i], NULL, needle);
    }
    const char *result_keys[] = {"job", "b", "x", "y", "w", "h"};
    for (size_t i = 0; i < NFIELDS(result_keys); i++) {
        snprintf(needle, sizeof needle, "\"%s\"", result_keys[i]);
        expect_reject(result_fields, NFIELDS(result_fields), result_keys[i], NULL, needle);
    }
    expect_reject(ack_fields, NFIELDS(ack_fields), "job", NULL, "\"job\"");
    expect_reject(ack_fields, NFIELDS(ack_fields), "n", NULL, "\"n\"");
    expect_reject(done_fields, NFIELDS(done_fields), "job", NULL, "\"job\"");
    expect_reject(hello_fields, NFIELDS(hello_fields), "role", NULL, "\"role\"");
    expect_reject(error_fields, NFIELDS(error_fields), "msg", NULL, "\"msg\"");
}

/* Negative, float, string and nil values of unsigned keys are refused, naming the key. */
static void test_reject_task_wrong_type(void **state) {
    (void)state;
    const char *keys[] = {"job", "b", "x", "y", "w", "h", "n"};
    char needle[16];
    for (size_t i = 0; i < NFIELDS(keys); i++) {
        snprintf(needle, sizeof needle, "\"%s\"", keys[i]);
        const field_t neg = {.key = keys[i], .type = F_NEG, .i = -1};
        const field_t min = {.key = keys[i], .type = F_NEG, .i = INT64_MIN};
        const field_t dbl = {.key = keys[i], .type = F_DBL, .d = 4.0};
        const field_t half = {.key = keys[i], .type = F_DBL, .d = 44.5};
        const field_t str = {.key = keys[i], .type = F_STR, .s = "44", .slen = 2};
        const field_t nil = {.key = keys[i], .type = F_NIL};
        const field_t yes = {.key = keys[i], .type = F_BOOL};
        expect_reject(task_fields, NFIELDS(task_fields), NULL, &neg, needle);
        expect_reject(task_fields, NFIELDS(task_fields), NULL, &min, needle);
        expect_reject(task_fields, NFIELDS(task_fields), NULL, &dbl, needle);
        expect_reject(task_fields, NFIELDS(task_fields), NULL, &half, needle);
        expect_reject(task_fields, NFIELDS(task_fields), NULL, &str, needle);
        expect_reject(task_fields, NFIELDS(task_fields), NULL, &nil, needle);
        expect_reject(task_fields, NFIELDS(task_fields), NULL, &yes, needle);
    }
    const field_t acount = NEG("n", -3), ajob = DBL("job", 9.0);
    expect_reject(ack_fields, NFIELDS(ack_fields), NULL, &acount, "\"n\"");
    expect_reject(ack_fields, NFIELDS(ack_fields), NULL, &ajob, "\"job\"");
    expect_reject(done_fields, NFIELDS(done_fields), NULL, &ajob, "\"job\"");
}

/* Block sizes of 0 or above GM_WIRE_MAX_BLOCK, and other out-of-range values, are refused. */
static void test_reject_task_ranges(void **state) {
    (void)state;
    const size_t n = NFIELDS(task_fields);
    const field_t w0 = U("w", 0), h0 = U("h", 0);
    expect_reject(task_fields, n, NULL, &w0, "empty");
    expect_reject(task_fields, n, NULL, &h0, "empty");
    expect_reject(result_fields, NFIELDS(result_fields), NULL, &w0, "empty");
    expect_reject(result_fields, NFIELDS(result_fields), NULL, &h0, "empty");

    const field_t w_big = U("w", 8193), h_big = U("h", 8193), w_huge = U("w", 4294967296ULL);
    expect_reject(task_fields, n, NULL, &w_big, "\"w\"");
    expect_reject(task_fields, n, NULL, &w_big, "8193");
    expect_reject(task_fields, n, NULL, &h_big, "\"h\"");
    expect_reject(task_fields, n, NULL, &w_huge, "\"w\"");
    expect_reject(result_fields, NFIELDS(result_fields), NULL, &w_big, "\"w\"");

    const field_t n0 = U("n", 0), n_big = U("n", 4097);
    expect_reject(task_fields, n, NULL, &n0, "\"n\"");
    expect_reject(task_fields, n, NULL, &n_big, "\"n\"");

    const field_t b_max = U("b", 4294967295ULL), x_big = U("x", 2147483648ULL), y_big = U("y", 2147483648ULL);
    expect_reject(task_fields, n, NULL, &b_max, "\"b\"");
    expect_reject(task_fields, n, NULL, &x_big, "\"x\"");
    expect_reject(task_fields, n, NULL, &y_big, "\"y\"");

    const field_t acks_big = U("n", 65537);
    expect_reject(ack_fields, NFIELDS(ack_fields), NULL, &acks_big, "\"n\"");

    /* The limits themselves are accepted. */
    const field_t edges[] = {U("w", 8192), U("h", 8192), U("n", 4096), U("b", 4294967294ULL),
                             U("x", 2147483647ULL), U("y", 2147483647ULL), U("job", UINT64_MAX)};
    for (size_t i = 0; i < NFIELDS(edges); i++) {
        size_t len;
        void *buf = build(task_fields, n, NULL, &edges[i], &len);
        gm_header_t h;
        char err[GM_ERR_LEN] = "";
        if (gm_wire_decode(buf, len, &h, err) != 0) fail_msg("edge \"%s\": %s", edges[i].key, err);
        free(buf);
    }
}

/* A task's "dt" must be the string "f32". */
static void test_reject_task_dtype(void **state) {
    (void)state;
    const size_t n = NFIELDS(task_fields);
    const field_t bad[] = {S("dt", "f64"), S("dt", "u8"),     S("dt", "i16"),       S("dt", "F32"),
                           S("dt", ""),    S("dt", "f32 "),   S("dt", "float32"),   S("dt", "float32x"),
                           S("dt", "f3"),  S("dt", "f32\0"),  U("dt", 6),           NIL("dt")};
    for (size_t i = 0; i < NFIELDS(bad); i++) expect_reject(task_fields, n, NULL, &bad[i], "\"dt\"");
}

/* ---- rejections: hello and error ---- */

/* A hello's role must be "worker" or "writer". */
static void test_reject_hello_role(void **state) {
    (void)state;
    const size_t n = NFIELDS(hello_fields);
    const field_t bad[] = {S("role", "reader"),  S("role", "Worker"),   S("role", ""),
                           S("role", "workers"), S("role", "work"),     S("role", "worker\0"),
                           S("role", "wri\0ter"), S("role", "writerwriterwriter"), U("role", 1),
                           NIL("role")};
    for (size_t i = 0; i < NFIELDS(bad); i++) expect_reject(hello_fields, n, NULL, &bad[i], "\"role\"");
    /* The NUL case says so. */
    const field_t nul = S("role", "worker\0");
    expect_reject(hello_fields, n, NULL, &nul, "NUL");
    /* 15 bytes is the longest role that fits, 16 is refused for its length. */
    const field_t len16 = S("role", "workerworkerwork");
    expect_reject(hello_fields, n, NULL, &len16, "limit");
}

/* An error's "msg" must be a NUL-free string of at most 255 bytes. */
static void test_reject_error_msg(void **state) {
    (void)state;
    const size_t n = NFIELDS(error_fields);
    char *text = malloc(70000);
    assert_non_null(text);
    memset(text, 'm', 70000);
    field_t msg = {.key = "msg", .type = F_STR, .s = text, .slen = 256};
    expect_reject(error_fields, n, NULL, &msg, "\"msg\"");
    expect_reject(error_fields, n, NULL, &msg, "256");
    msg.slen = 70000; /* str32 */
    expect_reject(error_fields, n, NULL, &msg, "\"msg\"");

    /* 255 bytes fit exactly. */
    msg.slen = 255;
    size_t len;
    void *buf = build(error_fields, n, NULL, &msg, &len);
    gm_header_t h;
    char err[GM_ERR_LEN] = "";
    if (gm_wire_decode(buf, len, &h, err) != 0) fail_msg("255-byte msg: %s", err);
    assert_int_equal(strlen(h.text), 255);
    assert_memory_equal(h.text, text, 255);
    free(buf);
    free(text);

    const field_t nul = S("msg", "bad\0news"), num = U("msg", 5), nil = NIL("msg");
    expect_reject(error_fields, n, NULL, &nul, "\"msg\"");
    expect_reject(error_fields, n, NULL, &nul, "NUL");
    expect_reject(error_fields, n, NULL, &num, "\"msg\"");
    expect_reject(error_fields, n, NULL, &nil, "\"msg\"");
}

/* ---- rejections: train, model and saved ---- */

/* A training task needs "job", "i", "n" and "k"; model and saved need "job" and "i". */
static void test_reject_train_missing_key(void **state) {
    (void)state;
    const char *keys[] = {"job", "i", "n", "k"};
    char needle[16];
    for (size_t i = 0; i < NFIELDS(keys); i++) {
        snprintf(needle, sizeof needle, "\"%s\"", keys[i]);
        expect_reject(train_fields, NFIELDS(train_fields), keys[i], NULL, needle);
    }
    expect_reject(model_fields, NFIELDS(model_fields), "job", NULL, "\"job\"");
    expect_reject(model_fields, NFIELDS(model_fields), "i", NULL, "\"i\"");
    expect_reject(saved_fields, NFIELDS(saved_fields), "job", NULL, "\"job\"");
    expect_reject(saved_fields, NFIELDS(saved_fields), "i", NULL, "\"i\"");
    /* The version is checked for these kinds too. */
    const field_t v2 = U("v", 2);
    expect_reject(train_fields, NFIELDS(train_fields), NULL, &v2, "version");
    expect_reject(saved_fields, NFIELDS(saved_fields), NULL, &v2, "version");
}

/* Negative, float, string, nil and boolean values of "job", "i", "n" and "k" are refused, naming the key. */
static void test_reject_train_wrong_type(void **state) {
    (void)state;
    const char *keys[] = {"job", "i", "n", "k"};
    char needle[16];
    for (size_t i = 0; i < NFIELDS(keys); i++) {
        snprintf(needle, sizeof needle, "\"%s\"", keys[i]);
        const field_t bad[] = {
            {.key = keys[i], .type = F_NEG, .i = -1},   {.key = keys[i], .type = F_DBL, .d = 3.0},
            {.key = keys[i], .type = F_STR, .s = "3", .slen = 1}, {.key = keys[i], .type = F_NIL},
            {.key = keys[i], .type = F_BOOL},
        };
        for (size_t b = 0; b < NFIELDS(bad); b++) {
            expect_reject(train_fields, NFIELDS(train_fields), NULL, &bad[b], needle);
            if (i < 2) {
                expect_reject(model_fields, NFIELDS(model_fields), NULL, &bad[b], needle);
                expect_reject(saved_fields, NFIELDS(saved_fields), NULL, &bad[b], needle);
            }
        }
    }
}

/* Zero rows or columns, an iteration past 4095, more than 2^26 rows or 4096 columns are refused; the limits
 * themselves decode. */
static void test_reject_train_ranges(void **state) {
    (void)state;
    const size_t n = NFIELDS(train_fields);
    const field_t n0 = U("n", 0), k0 = U("k", 0);
    expect_reject(train_fields, n, NULL, &n0, "\"n\"");
    expect_reject(train_fields, n, NULL, &n0, "0");
    expect_reject(train_fields, n, NULL, &k0, "\"k\"");

    const field_t i_big = U("i", 4096), i_huge = U("i", 4294967296ULL);
    expect_reject(train_fields, n, NULL, &i_big, "\"i\"");
    expect_reject(train_fields, n, NULL, &i_big, "4096");
    expect_reject(train_fields, n, NULL, &i_huge, "\"i\"");
    expect_reject(model_fields, NFIELDS(model_fields), NULL, &i_big, "\"i\"");
    expect_reject(model_fields, NFIELDS(model_fields), NULL, &i_huge, "\"i\"");
    expect_reject(saved_fields, NFIELDS(saved_fields), NULL, &i_big, "\"i\"");

    const field_t n_big = U("n", 67108865ULL), n_huge = U("n", 4294967296ULL), k_big = U("k", 4097);
    expect_reject(train_fields, n, NULL, &n_big, "\"n\"");
    expect_reject(train_fields, n, NULL, &n_big, "67108865");
    expect_reject(train_fields, n, NULL, &n_huge, "\"n\"");
    expect_reject(train_fields, n, NULL, &k_big, "\"k\"");

    const field_t edges[] = {U("i", 4095), U("i", 0), U("n", 67108864ULL), U("n", 1), U("k", 4096), U("k", 1),
                             U("job", UINT64_MAX)};
    for (size_t i = 0; i < NFIELDS(edges); i++) {
        size_t len;
        void *buf = build(train_fields, n, NULL, &edges[i], &len);
        gm_header_t h;
        char err[GM_ERR_LEN] = "";
        if (gm_wire_decode(buf, len, &h, err) != 0) fail_msg("train edge \"%s\" %llu: %s", edges[i].key,
                                                             (unsigned long long)edges[i].u, err);
        free(buf);
        if (strcmp(edges[i].key, "i") == 0) assert_int_equal(h.iteration, edges[i].u);
        if (strcmp(edges[i].key, "n") == 0) assert_int_equal(h.count, edges[i].u);
        if (strcmp(edges[i].key, "k") == 0) assert_int_equal(h.cols, edges[i].u);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_hello),
        cmocka_unit_test(test_round_trip_task),
        cmocka_unit_test(test_round_trip_result),
        cmocka_unit_test(test_round_trip_ack),
        cmocka_unit_test(test_round_trip_writer_shard),
        cmocka_unit_test(test_round_trip_done),
        cmocka_unit_test(test_round_trip_error),
        cmocka_unit_test(test_round_trip_train),
        cmocka_unit_test(test_round_trip_model_saved),
        cmocka_unit_test(test_encode_train_layout),
        cmocka_unit_test(test_encode_task_layout),
        cmocka_unit_test(test_encode_rejects_kind),
        cmocka_unit_test(test_decode_hand_built),
        cmocka_unit_test(test_peek),
        cmocka_unit_test(test_peek_rejects),
        cmocka_unit_test(test_kind_names),
        cmocka_unit_test(test_dtype_tables),
        cmocka_unit_test(test_dtype_parse_rejects),
        cmocka_unit_test(test_reject_empty),
        cmocka_unit_test(test_reject_garbage),
        cmocka_unit_test(test_reject_huge_counts),
        cmocka_unit_test(test_reject_every_prefix),
        cmocka_unit_test(test_reject_trailing),
        cmocka_unit_test(test_reject_not_map),
        cmocka_unit_test(test_reject_deep_nesting),
        cmocka_unit_test(test_reject_oversized),
        cmocka_unit_test(test_reject_version),
        cmocka_unit_test(test_reject_kind),
        cmocka_unit_test(test_reject_task_missing_key),
        cmocka_unit_test(test_reject_task_wrong_type),
        cmocka_unit_test(test_reject_task_ranges),
        cmocka_unit_test(test_reject_task_dtype),
        cmocka_unit_test(test_reject_hello_role),
        cmocka_unit_test(test_reject_error_msg),
        cmocka_unit_test(test_reject_train_missing_key),
        cmocka_unit_test(test_reject_train_wrong_type),
        cmocka_unit_test(test_reject_train_ranges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
