/* gm_wire.c -- encode and decode the headers of the messages that pass between stages. */
#include "gm_wire.h"

#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "gm_log.h"
#include "gm_mpack.h"

static const char *kind_names[] = {NULL, "hello", "job", "task", "result", "ack", "done", "error", "train", "model", "saved", "hb"};
static const char *dtype_names[] = {NULL, "u8", "u16", "i16", "u32", "i32", "f32", "f64"};
static const size_t dtype_sizes[] = {0, 1, 2, 2, 4, 4, 4, 8};

const char *gm_msg_kind_name(gm_msg_kind_t kind) {
    return (kind >= GM_MSG_HELLO && kind <= GM_MSG_HEARTBEAT) ? kind_names[kind] : NULL;
}

const char *gm_dtype_name(gm_dtype_t dt) { return (dt > GM_DT_NONE && dt <= GM_DT_F64) ? dtype_names[dt] : NULL; }

size_t gm_dtype_size(gm_dtype_t dt) { return (dt > GM_DT_NONE && dt <= GM_DT_F64) ? dtype_sizes[dt] : 0; }

int gm_dtype_parse(const char *name, size_t len, gm_dtype_t *dt) {
    for (int i = GM_DT_U8; i <= GM_DT_F64; i++) {
        if (strlen(dtype_names[i]) == len && memcmp(dtype_names[i], name, len) == 0) {
            *dt = (gm_dtype_t)i;
            return 0;
        }
    }
    return -1;
}

/* Parses the "t" value of a header map into a kind. Returns 0, or -1 with 'err'. */
static int parse_kind(const msgpack_object *map, gm_msg_kind_t *kind, char *err) {
    const msgpack_object *t = gm_mpack_get(map, "t");
    if (!t) return gm_err(err, "header key \"t\" is missing");
    if (t->type != MSGPACK_OBJECT_STR) return gm_err(err, "header key \"t\" is not a string");
    for (int k = GM_MSG_HELLO; k <= GM_MSG_HEARTBEAT; k++) {
        if (strlen(kind_names[k]) == t->via.str.size && memcmp(kind_names[k], t->via.str.ptr, t->via.str.size) == 0) {
            *kind = (gm_msg_kind_t)k;
            return 0;
        }
    }
    char shown[33];
    return gm_err(err, "header key \"t\" names an unknown message kind \"%s\"",
                  gm_mpack_printable(t->via.str.ptr, t->via.str.size, shown, sizeof shown));
}

/* Checks the protocol version of a header map. Returns 0, or -1 with 'err'. */
static int parse_version(const msgpack_object *map, uint32_t *version, char *err) {
    uint64_t v;
    if (gm_mpack_uint(map, "v", UINT32_MAX, &v, err) < 0) return -1;
    *version = (uint32_t)v;
    if (v != GM_WIRE_VERSION)
        return gm_err(err, "protocol version %llu is not supported (this build speaks %d)", (unsigned long long)v,
                      GM_WIRE_VERSION);
    return 0;
}

int gm_wire_peek(const void *buf, size_t len, uint32_t *version, gm_msg_kind_t *kind, char *err) {
    msgpack_unpacked res;
    int rc = -1;
    if (gm_mpack_unpack_map(buf, len, GM_WIRE_MAX_HEADER, &res, err) < 0) goto out;
    if (parse_version(&res.data, version, err) < 0) goto out;
    if (parse_kind(&res.data, kind, err) < 0) goto out;
    rc = 0;
out:
    msgpack_unpacked_destroy(&res);
    return rc;
}

/* Reads a uint32 field bounded by 'max' into 'out'. */
static int get_u32(const msgpack_object *map, const char *key, uint32_t max, uint32_t *out, char *err) {
    uint64_t v;
    if (gm_mpack_uint(map, key, max, &v, err) < 0) return -1;
    *out = (uint32_t)v;
    return 0;
}

/* Reads the block fields shared by task and result headers, checking their ranges. */
static int decode_block(const msgpack_object *m, gm_header_t *h, char *err) {
    if (gm_mpack_uint(m, "job", UINT64_MAX, &h->job, err) < 0) return -1;
    if (get_u32(m, "b", UINT32_MAX - 1, &h->block, err) < 0) return -1;
    if (get_u32(m, "x", INT32_MAX, &h->x, err) < 0) return -1;
    if (get_u32(m, "y", INT32_MAX, &h->y, err) < 0) return -1;
    if (get_u32(m, "w", GM_WIRE_MAX_BLOCK, &h->w, err) < 0) return -1;
    if (get_u32(m, "h", GM_WIRE_MAX_BLOCK, &h->h, err) < 0) return -1;
    if (h->w == 0) return gm_err(err, "header key \"w\" is 0: a block cannot be empty");
    if (h->h == 0) return gm_err(err, "header key \"h\" is 0: a block cannot be empty");
    return 0;
}

int gm_wire_decode(const void *buf, size_t len, gm_header_t *h, char *err) {
    msgpack_unpacked res;
    int rc = -1;
    memset(h, 0, sizeof *h);
    if (gm_mpack_unpack_map(buf, len, GM_WIRE_MAX_HEADER, &res, err) < 0) goto out;
    const msgpack_object *m = &res.data;
    if (parse_version(m, &h->version, err) < 0) goto out;
    if (parse_kind(m, &h->kind, err) < 0) goto out;
    switch (h->kind) {
    case GM_MSG_HELLO:
        if (gm_mpack_str(m, "role", h->role, sizeof h->role, err) < 0) goto out;
        if (strcmp(h->role, "worker") != 0 && strcmp(h->role, "writer") != 0 && strcmp(h->role, "stage") != 0)
            { char shown[17]; gm_err(err, "header key \"role\" is \"%s\", not \"worker\", \"writer\" or \"stage\"", gm_mpack_printable(h->role, strlen(h->role), shown, sizeof shown)); goto out; }
        break;
    case GM_MSG_JOB: break; /* decoded by gm_job_decode */
    case GM_MSG_TASK: {
        char dt[8];
        if (decode_block(m, h, err) < 0) goto out;
        if (get_u32(m, "n", GM_WIRE_MAX_BANDS, &h->bands, err) < 0) goto out;
        if (h->bands == 0) { gm_err(err, "header key \"n\" is 0: a task needs at least one band"); goto out; }
        if (gm_mpack_str(m, "dt", dt, sizeof dt, err) < 0) goto out;
        if (gm_dtype_parse(dt, strlen(dt), &h->dtype) < 0 || h->dtype != GM_DT_F32)
            { char shown[8]; gm_err(err, "header key \"dt\" is \"%s\"; tasks carry \"f32\"", gm_mpack_printable(dt, strlen(dt), shown, sizeof shown)); goto out; }
        break;
    }
    case GM_MSG_RESULT:
        if (decode_block(m, h, err) < 0) goto out;
        break;
    case GM_MSG_ACK:
        if (gm_mpack_uint(m, "job", UINT64_MAX, &h->job, err) < 0) goto out;
        if (get_u32(m, "n", GM_WIRE_MAX_ACKS, &h->count, err) < 0) goto out;
        if (gm_mpack_get(m, "s")) {
            char stage[8];
            if (gm_mpack_str(m, "s", stage, sizeof stage, err) < 0) goto out;
            if (strcmp(stage, "recv") != 0) { gm_err(err, "header key \"s\" is not \"recv\""); goto out; }
            h->received = 1;
        }
        if (gm_mpack_get(m, "wr") && get_u32(m, "wr", GM_WIRE_MAX_WRITERS - 1, &h->writer, err) < 0) goto out;
        break;
    case GM_MSG_HEARTBEAT:
        if (gm_mpack_get(m, "busy")) { /* optional: the worker's times and tasks, for the end table */
            if (gm_mpack_uint(m, "busy", UINT64_MAX, &h->busy_ms, err) < 0 ||
                gm_mpack_uint(m, "blocked", UINT64_MAX, &h->blocked_ms, err) < 0 ||
                gm_mpack_uint(m, "wait", UINT64_MAX, &h->wait_ms, err) < 0 ||
                gm_mpack_uint(m, "done", UINT64_MAX, &h->done, err) < 0 ||
                get_u32(m, "pid", UINT32_MAX, &h->pid, err) < 0 || gm_mpack_str(m, "host", h->host, sizeof h->host, err) < 0)
                goto out;
            h->has_stats = 1;
        }
        break;
    case GM_MSG_DONE:
        if (gm_mpack_uint(m, "job", UINT64_MAX, &h->job, err) < 0) goto out;
        if (gm_mpack_get(m, "wr") && get_u32(m, "wr", GM_WIRE_MAX_WRITERS - 1, &h->writer, err) < 0) goto out;
        break;
    case GM_MSG_ERROR:
        if (gm_mpack_str(m, "msg", h->text, sizeof h->text, err) < 0) goto out;
        break;
    case GM_MSG_TRAIN:
        if (gm_mpack_uint(m, "job", UINT64_MAX, &h->job, err) < 0) goto out;
        if (get_u32(m, "i", GM_WIRE_MAX_ITERATIONS, &h->iteration, err) < 0) goto out;
        if (get_u32(m, "n", GM_WIRE_MAX_ROWS, &h->count, err) < 0) goto out;
        if (get_u32(m, "k", GM_WIRE_MAX_BANDS, &h->cols, err) < 0) goto out;
        if (h->count == 0 || h->cols == 0) { gm_err(err, "header key \"n\" or \"k\" is 0: a training task needs samples"); goto out; }
        break;
    case GM_MSG_MODEL:
    case GM_MSG_SAVED:
        if (gm_mpack_uint(m, "job", UINT64_MAX, &h->job, err) < 0) goto out;
        if (get_u32(m, "i", GM_WIRE_MAX_ITERATIONS, &h->iteration, err) < 0) goto out;
        break;
    }
    rc = 0;
out:
    msgpack_unpacked_destroy(&res);
    return rc;
}

/* Packs one "key": unsigned pair. */
static void pack_uint(msgpack_packer *pk, const char *key, uint64_t v) {
    gm_mpack_pack_cstr(pk, key);
    msgpack_pack_uint64(pk, v);
}

int gm_wire_encode(const gm_header_t *h, void **buf, size_t *len, char *err) {
    const char *kind = gm_msg_kind_name(h->kind);
    if (!kind || h->kind == GM_MSG_JOB) return gm_err(err, "cannot encode message kind %d here", (int)h->kind);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    size_t n = 2;
    switch (h->kind) {
    case GM_MSG_HELLO: n += 1; break;
    case GM_MSG_TASK: n += 8; break;
    case GM_MSG_RESULT: n += 6; break;
    case GM_MSG_ACK: n += (h->received ? 3 : 2) + (h->writer ? 1 : 0); break;
    case GM_MSG_DONE: n += 1 + (h->writer ? 1 : 0); break;
    case GM_MSG_ERROR: n += 1; break;
    case GM_MSG_TRAIN: n += 4; break;
    case GM_MSG_MODEL:
    case GM_MSG_SAVED: n += 2; break;
    case GM_MSG_HEARTBEAT: n += h->has_stats ? 6 : 0; break;
    default: break;
    }
    msgpack_pack_map(&pk, n);
    pack_uint(&pk, "v", GM_WIRE_VERSION);
    gm_mpack_pack_cstr(&pk, "t");
    gm_mpack_pack_cstr(&pk, kind);
    switch (h->kind) {
    case GM_MSG_HELLO:
        gm_mpack_pack_cstr(&pk, "role");
        gm_mpack_pack_cstr(&pk, h->role);
        break;
    case GM_MSG_TASK:
    case GM_MSG_RESULT:
        pack_uint(&pk, "job", h->job);
        pack_uint(&pk, "b", h->block);
        pack_uint(&pk, "x", h->x);
        pack_uint(&pk, "y", h->y);
        pack_uint(&pk, "w", h->w);
        pack_uint(&pk, "h", h->h);
        if (h->kind == GM_MSG_TASK) {
            pack_uint(&pk, "n", h->bands);
            gm_mpack_pack_cstr(&pk, "dt");
            gm_mpack_pack_cstr(&pk, gm_dtype_name(GM_DT_F32));
        }
        break;
    case GM_MSG_ACK:
        pack_uint(&pk, "job", h->job);
        pack_uint(&pk, "n", h->count);
        if (h->received) {
            gm_mpack_pack_cstr(&pk, "s");
            gm_mpack_pack_cstr(&pk, "recv");
        }
        if (h->writer) pack_uint(&pk, "wr", h->writer);
        break;
    case GM_MSG_DONE:
        pack_uint(&pk, "job", h->job);
        if (h->writer) pack_uint(&pk, "wr", h->writer);
        break;
    case GM_MSG_ERROR:
        gm_mpack_pack_cstr(&pk, "msg");
        gm_mpack_pack_cstr(&pk, h->text);
        break;
    case GM_MSG_TRAIN:
        pack_uint(&pk, "job", h->job);
        pack_uint(&pk, "i", h->iteration);
        pack_uint(&pk, "n", h->count);
        pack_uint(&pk, "k", h->cols);
        break;
    case GM_MSG_MODEL:
    case GM_MSG_SAVED:
        pack_uint(&pk, "job", h->job);
        pack_uint(&pk, "i", h->iteration);
        break;
    case GM_MSG_HEARTBEAT:
        if (h->has_stats) {
            pack_uint(&pk, "busy", h->busy_ms);
            pack_uint(&pk, "blocked", h->blocked_ms);
            pack_uint(&pk, "wait", h->wait_ms);
            pack_uint(&pk, "done", h->done);
            pack_uint(&pk, "pid", h->pid);
            gm_mpack_pack_cstr(&pk, "host");
            gm_mpack_pack_cstr(&pk, h->host);
        }
        break;
    default: break;
    }
    *buf = sb.data; /* ownership passes to the caller */
    *len = sb.size;
    return 0;
}
