/* gm_json.c -- a small JSON reader: parses a document into a tree of values, for reading XGBoost models. */
#include "gm_json.h"

#include <stdlib.h>
#include <string.h>

#include "gm_log.h"

#define MAX_DEPTH 64

typedef struct {
    const char *p, *end;
    char *err;
} parser_t;

static int parse_value(parser_t *ps, gm_json_t *v, int depth);

static void skip_ws(parser_t *ps) {
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\n' || *ps->p == '\r' || *ps->p == '\t')) ps->p++;
}

/* Parses a string token; 'out'/'len' get its body. */
static int parse_string(parser_t *ps, const char **out, size_t *len) {
    if (ps->p >= ps->end || *ps->p != '"') return gm_err(ps->err, "JSON: string expected");
    const char *s = ++ps->p;
    while (ps->p < ps->end && *ps->p != '"') {
        if (*ps->p == '\\') ps->p++;
        ps->p++;
    }
    if (ps->p >= ps->end) return gm_err(ps->err, "JSON: unterminated string");
    *out = s;
    *len = (size_t)(ps->p - s);
    ps->p++;
    return 0;
}

/* Parses the items of an array or object into a growing array. */
static int parse_items(parser_t *ps, gm_json_t *v, int object, int depth) {
    size_t cap = 0;
    char close = object ? '}' : ']';
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        return 0;
    }
    for (;;) {
        if (v->n == cap) {
            cap = cap ? cap * 2 : 8;
            gm_json_t *more = realloc(v->items, cap * sizeof *more);
            if (!more) return gm_err(ps->err, "JSON: out of memory");
            v->items = more;
        }
        gm_json_t *item = &v->items[v->n];
        memset(item, 0, sizeof *item);
        skip_ws(ps);
        if (object) {
            if (parse_string(ps, &item->key, &item->keylen) < 0) return -1;
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != ':') return gm_err(ps->err, "JSON: ':' expected");
            ps->p++;
        }
        v->n++;
        if (parse_value(ps, item, depth + 1) < 0) return -1;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == close) {
            ps->p++;
            return 0;
        }
        return gm_err(ps->err, "JSON: ',' or '%c' expected", close);
    }
}

static int parse_value(parser_t *ps, gm_json_t *v, int depth) {
    if (depth > MAX_DEPTH) return gm_err(ps->err, "JSON: nested too deeply");
    skip_ws(ps);
    if (ps->p >= ps->end) return gm_err(ps->err, "JSON: value expected");
    char c = *ps->p;
    if (c == '{' || c == '[') {
        v->type = c == '{' ? GM_JSON_OBJECT : GM_JSON_ARRAY;
        return parse_items(ps, v, c == '{', depth);
    }
    if (c == '"') {
        v->type = GM_JSON_STRING;
        return parse_string(ps, &v->text, &v->len);
    }
    static const struct { const char *word; gm_json_type_t type; int b; } words[] = {
        {"true", GM_JSON_BOOL, 1}, {"false", GM_JSON_BOOL, 0}, {"null", GM_JSON_NULL, 0}};
    for (size_t i = 0; i < 3; i++) {
        size_t n = strlen(words[i].word);
        if ((size_t)(ps->end - ps->p) >= n && !memcmp(ps->p, words[i].word, n)) {
            v->type = words[i].type;
            v->boolean = words[i].b;
            ps->p += n;
            return 0;
        }
    }
    const char *s = ps->p;
    while (ps->p < ps->end && strchr("+-0123456789.eEinfINFaAN", *ps->p)) ps->p++;
    if (ps->p == s) return gm_err(ps->err, "JSON: unexpected character '%c'", c);
    v->type = GM_JSON_NUMBER;
    v->text = s;
    v->len = (size_t)(ps->p - s);
    return 0;
}

/* Frees the items below 'v'. */
static void free_items(gm_json_t *v) {
    for (size_t i = 0; i < v->n; i++) free_items(&v->items[i]);
    free(v->items);
}

gm_json_t *gm_json_parse(const char *src, size_t len, char *err) {
    parser_t ps = {src, src + len, err};
    gm_json_t *root = calloc(1, sizeof *root);
    if (!root) {
        gm_err(err, "JSON: out of memory");
        return NULL;
    }
    if (parse_value(&ps, root, 0) < 0) {
        gm_json_free(root);
        return NULL;
    }
    skip_ws(&ps);
    if (ps.p != ps.end && *ps.p != '\0') {
        gm_err(err, "JSON: trailing bytes");
        gm_json_free(root);
        return NULL;
    }
    return root;
}

void gm_json_free(gm_json_t *root) {
    if (!root) return;
    free_items(root);
    free(root);
}

const gm_json_t *gm_json_get(const gm_json_t *o, const char *key) {
    if (!o || o->type != GM_JSON_OBJECT) return NULL;
    size_t n = strlen(key);
    for (size_t i = 0; i < o->n; i++)
        if (o->items[i].keylen == n && !memcmp(o->items[i].key, key, n)) return &o->items[i];
    return NULL;
}

const gm_json_t *gm_json_path(const gm_json_t *o, const char *path) {
    char key[128];
    while (o && *path) {
        size_t n = strcspn(path, "/");
        if (n >= sizeof key) return NULL;
        memcpy(key, path, n);
        key[n] = '\0';
        o = gm_json_get(o, key);
        path += n + (path[n] == '/');
    }
    return o;
}

int gm_json_str_eq(const gm_json_t *v, const char *text) {
    return v && v->type == GM_JSON_STRING && v->len == strlen(text) && !memcmp(v->text, text, v->len);
}
