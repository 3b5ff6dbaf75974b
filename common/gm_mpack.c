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

/* Reads a big-endian unsigned integer of 'n' bytes. */
static uint64_t be(const unsigned char *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v = v << 8 | p[i];
    return v;
}

int gm_mpack_check(const void *buf, size_t len, char *err) {
    const unsigned char *p = buf, *end = p + len;
    uint64_t stack[33]; /* items left to read at each nesting level */
    int depth = 0;
    stack[0] = 1;
    while (depth >= 0) {
        if (stack[depth] == 0) {
            depth--;
            continue;
        }
        stack[depth]--;
        if (p >= end) return gm_err(err, "header frame is not valid msgpack (truncated)");
        unsigned c = *p++;
        uint64_t skip = 0, items = 0;
        int nested = 0;
        if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) {
            skip = 0;
        } else if (c >= 0x80 && c <= 0x8f) {
            items = 2 * (uint64_t)(c & 0x0f), nested = 1;
        } else if (c >= 0x90 && c <= 0x9f) {
            items = c & 0x0f, nested = 1;
        } else if (c >= 0xa0 && c <= 0xbf) {
            skip = c & 0x1f;
        } else {
            static const int width[] = {/* c4..df: bytes of the length or value that follow */
                                        1, 2, 4, 1, 2, 4, 4, 8, 1, 2, 4, 8, 1, 2, 4, 8, 1, 2, 4, 8, 16, 1, 2, 4, 2, 4, 2, 4};
            if (c == 0xc1) return gm_err(err, "header frame is not valid msgpack (reserved byte 0xc1)");
            int n = width[c - 0xc4];
            if (c >= 0xd4 && c <= 0xd8) { /* fixext: type byte + n data bytes */
                skip = 1 + (uint64_t)n;
            } else if ((c >= 0xca && c <= 0xd3)) { /* float, uint, int: n value bytes */
                skip = (uint64_t)n;
            } else {
                if ((size_t)(end - p) < (size_t)n) return gm_err(err, "header frame is not valid msgpack (truncated)");
                uint64_t count = be(p, n);
                p += n;
                if (c <= 0xc6 || (c >= 0xd9 && c <= 0xdb)) skip = count;               /* bin, str */
                else if (c <= 0xc9) skip = count + 1;                                  /* ext */
                else if (c == 0xdc || c == 0xdd) items = count, nested = 1;            /* array */
                else items = 2 * count, nested = 1;                                    /* map */
            }
        }
        if (skip > (uint64_t)(end - p)) return gm_err(err, "header frame is not valid msgpack (announces %llu bytes, %zu remain)",
                                                      (unsigned long long)skip, (size_t)(end - p));
        p += skip;
        if (nested && items) {
            if (items > (uint64_t)(end - p)) return gm_err(err, "header frame is not valid msgpack (announces %llu items, %zu bytes remain)",
                                                           (unsigned long long)items, (size_t)(end - p));
            if (depth == 32) return gm_err(err, "header frame is not valid msgpack (nests deeper than 32 levels)");
            stack[++depth] = items;
        }
    }
    return 0;
}

const char *gm_mpack_printable(const char *s, size_t n, char *out, size_t cap) {
    size_t i;
    for (i = 0; i < n && i + 1 < cap; i++) out[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    out[i] = '\0';
    return out;
}

int gm_mpack_unpack_map(const void *buf, size_t len, size_t max_len, msgpack_unpacked *res, char *err) {
    msgpack_unpacked_init(res);
    if (!buf || len == 0) return gm_err(err, "header frame is empty");
    if (len > max_len) return gm_err(err, "header frame is %zu bytes, above the limit %zu", len, max_len);
    if (gm_mpack_check(buf, len, err) < 0) return -1;
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
