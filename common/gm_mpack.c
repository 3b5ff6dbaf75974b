/* gm_mpack.c -- typed, bounds-checked access to the fields of a decoded msgpack map. */
#include "gm_mpack.h"

#include <string.h>

#include "gm_log.h"

const msgpack_object *gm_mpack_get(const msgpack_object *map, const char *key) {
    if (!map || map->type != MSGPACK_OBJECT_MAP) return NULL;
    size_t klen = strlen(key);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object_kv *kv = &map->via.map.ptr[i];
        if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == klen &&
            memcmp(kv->key.via.str.ptr, key, klen) == 0)
            return &kv->val;
    }
    return NULL;
}

int gm_mpack_uint(const msgpack_object *map, const char *key, uint64_t max, uint64_t *out, char *err) {
    const msgpack_object *o = gm_mpack_get(map, key);
    if (!o) return gm_err(err, "header key \"%s\" is missing", key);
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return gm_err(err, "header key \"%s\" is not an unsigned integer", key);
    if (o->via.u64 > max)
        return gm_err(err, "header key \"%s\" is %llu, above the limit %llu", key, (unsigned long long)o->via.u64,
                      (unsigned long long)max);
    *out = o->via.u64;
    return 0;
}

int gm_mpack_double(const msgpack_object *map, const char *key, double *out, char *err) {
    const msgpack_object *o = gm_mpack_get(map, key);
    if (!o) return gm_err(err, "header key \"%s\" is missing", key);
    switch (o->type) {
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: *out = o->via.f64; return 0;
    case MSGPACK_OBJECT_POSITIVE_INTEGER: *out = (double)o->via.u64; return 0;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: *out = (double)o->via.i64; return 0;
    default: return gm_err(err, "header key \"%s\" is not a number", key);
    }
}

int gm_mpack_str(const msgpack_object *map, const char *key, char *out, size_t cap, char *err) {
    const msgpack_object *o = gm_mpack_get(map, key);
    if (!o) return gm_err(err, "header key \"%s\" is missing", key);
    if (o->type != MSGPACK_OBJECT_STR) return gm_err(err, "header key \"%s\" is not a string", key);
    if (o->via.str.size >= cap)
        return gm_err(err, "header key \"%s\" is %u bytes long, above the limit %zu", key, o->via.str.size, cap - 1);
    if (memchr(o->via.str.ptr, '\0', o->via.str.size))
        return gm_err(err, "header key \"%s\" holds a NUL byte", key);
    memcpy(out, o->via.str.ptr, o->via.str.size);
    out[o->via.str.size] = '\0';
    return 0;
}

int gm_mpack_bool(const msgpack_object *map, const char *key, int *out, char *err) {
    const msgpack_object *o = gm_mpack_get(map, key);
    if (!o) return gm_err(err, "header key \"%s\" is missing", key);
    if (o->type != MSGPACK_OBJECT_BOOLEAN) return gm_err(err, "header key \"%s\" is not a boolean", key);
    *out = o->via.boolean ? 1 : 0;
    return 0;
}

int gm_mpack_unpack_map(const void *buf, size_t len, size_t max_len, msgpack_unpacked *res, char *err) {
    msgpack_unpacked_init(res);
    if (!buf || len == 0) return gm_err(err, "header frame is empty");
    if (len > max_len) return gm_err(err, "header frame is %zu bytes, above the limit %zu", len, max_len);
    size_t off = 0;
    msgpack_unpack_return rc = msgpack_unpack_next(res, (const char *)buf, len, &off);
    if (rc != MSGPACK_UNPACK_SUCCESS) return gm_err(err, "header frame is not valid msgpack");
    if (off != len) return gm_err(err, "header frame has %zu trailing bytes", len - off);
    if (res->data.type != MSGPACK_OBJECT_MAP) return gm_err(err, "header frame is not a msgpack map");
    return 0;
}

void gm_mpack_pack_cstr(msgpack_packer *pk, const char *s) {
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}
