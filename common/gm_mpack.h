/* gm_mpack.h -- typed, bounds-checked access to the fields of a decoded msgpack map. */
#ifndef GM_MPACK_H
#define GM_MPACK_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

/* Returns the value stored under 'key' in map 'map', or NULL if absent or 'map' is not a map. */
const msgpack_object *gm_mpack_get(const msgpack_object *map, const char *key);
/* Reads an unsigned integer no larger than 'max'. Returns 0, or -1 with 'err' naming the key. */
int gm_mpack_uint(const msgpack_object *map, const char *key, uint64_t max, uint64_t *out, char *err);
/* Reads a number (integer or float) as a double. Returns 0, or -1 with 'err'. */
int gm_mpack_double(const msgpack_object *map, const char *key, double *out, char *err);
/* Reads a string of at most 'cap'-1 bytes into 'out', NUL-terminated. Returns 0, or -1 with 'err'. */
int gm_mpack_str(const msgpack_object *map, const char *key, char *out, size_t cap, char *err);
/* Reads a boolean. Returns 0, or -1 with 'err'. */
int gm_mpack_bool(const msgpack_object *map, const char *key, int *out, char *err);
/* Unpacks exactly one msgpack map from 'buf' (no trailing bytes) into 'res', which the caller frees
 * with msgpack_unpacked_destroy even on failure. Returns 0, or -1 with 'err'. */
int gm_mpack_unpack_map(const void *buf, size_t len, size_t max_len, msgpack_unpacked *res, char *err);
/* Walks the msgpack bytes of one object without allocating, checking that every array, map, string and
 * binary length fits in the bytes left and that nesting stays within 32 levels, so a few hostile bytes
 * cannot make the unpacker allocate gigabytes. Returns 0, or -1 with 'err'. */
int gm_mpack_check(const void *buf, size_t len, char *err);
/* Copies at most n bytes of 's' into 'out' (cap bytes, NUL-terminated), turning bytes that are not
 * printable ASCII into '?', so peer text cannot break a one-line log message. Returns 'out'. */
const char *gm_mpack_printable(const char *s, size_t n, char *out, size_t cap);
/* Packs a NUL-terminated string. */
void gm_mpack_pack_cstr(msgpack_packer *pk, const char *s);

#endif
