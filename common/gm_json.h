/* gm_json.h -- a small JSON reader: parses a document into a tree of values, for reading XGBoost models. */
#ifndef GM_JSON_H
#define GM_JSON_H

#include <stddef.h>
#include <stdint.h>

typedef enum { GM_JSON_NULL, GM_JSON_BOOL, GM_JSON_NUMBER, GM_JSON_STRING, GM_JSON_ARRAY, GM_JSON_OBJECT } gm_json_type_t;

typedef struct gm_json gm_json_t;

/* One value. Strings and numbers point into the parsed text (strings without their quotes, escapes kept). */
struct gm_json {
    gm_json_type_t type;
    const char *text;   /* number or string: first byte in the source */
    size_t len;         /* its length */
    int boolean;        /* GM_JSON_BOOL */
    size_t n;           /* array or object: items */
    gm_json_t *items;   /* array: n values; object: n values, each with its key in 'key'/'keylen' */
    const char *key;
    size_t keylen;
};

/* Parses 'len' bytes of JSON. Returns the root (free with gm_json_free), or NULL with 'err'. The source must
 * outlive the tree. */
gm_json_t *gm_json_parse(const char *src, size_t len, char *err);
/* Frees a tree returned by gm_json_parse; takes NULL. */
void gm_json_free(gm_json_t *root);
/* Returns the member 'key' of object 'o', or NULL. */
const gm_json_t *gm_json_get(const gm_json_t *o, const char *key);
/* Follows a path of object keys separated by '/'. Returns the value, or NULL. */
const gm_json_t *gm_json_path(const gm_json_t *o, const char *path);
/* Returns 1 if string value 'v' equals 'text' (compared raw, escapes not decoded). */
int gm_json_str_eq(const gm_json_t *v, const char *text);

#endif
