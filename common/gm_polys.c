/* gm_polys.c -- the polygon map sampled by DSMART: map units read from any OGR vector layer, each with a
 * class, a class composition or a numeric target, stored as flat rings for a fast point-in-polygon test. */
#include "gm_polys.h"

#include <assert.h>
#include <cpl_error.h>
#include <errno.h>
#include <gdal.h>
#include <inttypes.h>
#include <math.h>
#include <ogr_api.h>
#include <ogr_srs_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "gm_gdal.h"
#include "gm_log.h"

typedef enum { MODE_CLASS = 1, MODE_TARGET, MODE_COMPOSITION } map_mode_t;

/* One edge of a ring as the crossing test takes it: vertex i and the vertex before it, j (indices into the
 * map's vertices). */
typedef struct {
    uint32_t i, j;
} edge_t;

/* One polygon: its rings are ring_off[ring0 .. ring0+nrings] in the map's flat arrays. */
typedef struct {
    int64_t fid;
    char *id;        /* composition with an id field: the polygon's id value (owned), else NULL */
    double env[4]; /* xmin, ymin, xmax, ymax */
    double area;
    size_t ring0;
    uint32_t nrings;
    size_t slab0;       /* first of its slabs in the map's slab_off */
    uint32_t nslabs;    /* its envelope cut into this many horizontal slabs of equal height */
    double slab_scale;  /* slabs per CRS unit of y (0 with one slab) */
    uint32_t code;   /* plain mode */
    double target;   /* regression */
    size_t comp0;    /* composition: first entry in comp_code / comp_cum */
    uint32_t ncomp;
} poly_t;

struct gm_polys {
    map_mode_t mode;
    poly_t *polys;
    uint32_t npolys;
    size_t polys_cap;
    size_t *ring_off; /* ring r holds vertices ring_off[r] .. ring_off[r+1]-1; nrings+1 entries */
    size_t nrings, ring_cap;
    double *xy; /* x, y of every vertex of every ring */
    size_t nverts, xy_cap;
    size_t *slab_off; /* slab k holds edges[slab_off[k] .. slab_off[k+1]-1]; one more entry than slabs */
    size_t nslabs;
    edge_t *edges;    /* the edges that meet each slab, slab after slab (vertex indices fit 32 bits) */
    size_t nedges;
    char **classes;
    uint32_t nclass;
    uint32_t *comp_code;
    double *comp_cum;
    long long *comp_stratum; /* with a stratum column: each component's stratum, else NULL */
    size_t stratum_cap;
    size_t ncomp, code_cap, cum_cap;
    gm_polys_report_t report;
    char *source;     /* "FILE:LAYER", the file's real path and the layer's name, whichever way they were named */
    char *file;       /* the file's real path */
};

/* One data row of a composition CSV; 'id' and 'cls' point into the CSV's buffer. */
typedef struct {
    const char *id, *cls;
    double proportion;
    size_t line;
    double group_sum; /* sum of the proportions of every row with this id */
    long long stratum; /* the row's stratum (a composition with a stratum column), else 0 */
    int matched;      /* a feature of the layer has this id */
} comp_row_t;

/* A composition CSV being read: its text (edited in place), rows sorted by id, and the parse position. */
typedef struct {
    const char *path;
    char *buf;
    size_t len, pos, line;
    char **fields;
    size_t fields_cap;
    comp_row_t *rows;
    size_t nrows;
    int strata;         /* the CSV has a stratum column (rdsmart's stratified composition) */
    char **owned;       /* --composition-fields: the strings rows point to, read from the layer */
    size_t nowned, owned_cap;
} comp_csv_t;

/* An open vector layer: the dataset, the layer, the file name for messages and the reprojection. */
typedef struct {
    GDALDatasetH ds;
    OGRLayerH layer;
    char *file;
    OGRCoordinateTransformationH ct; /* NULL when no reprojection is needed */
} vector_t;

/* Grows the array '*p' of 'elem'-byte items to hold at least 'need' items. Returns 0, or -1. */
static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t n = *cap ? *cap : 16;
    while (n < need) n *= 2;
    void *q = realloc(*p, n * elem);
    if (!q) return -1;
    *p = q;
    *cap = n;
    return 0;
}

/* Returns 1 if 'path' names an existing file or directory. */
static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

void gm_polys_put_csv_field(FILE *f, const char *s) {
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

/* Parses all of 's' (surrounding blanks allowed) as a finite number. Returns 0, or -1. */
static int parse_number(const char *s, double *v) {
    while (*s == ' ' || *s == '\t') s++;
    if (!*s) return -1;
    char *end;
    errno = 0;
    *v = strtod(s, &end);
    while (*end == ' ' || *end == '\t') end++;
    return (*end || errno == ERANGE || !isfinite(*v)) ? -1 : 0;
}

/* ---- vector layers ---- */

/* Closes what open_vector opened. */
static void close_vector(vector_t *v) {
    if (v->ct) OCTDestroyCoordinateTransformation(v->ct);
    if (v->ds) GDALClose(v->ds);
    free(v->file);
    memset(v, 0, sizeof *v);
}

/* Lists the layer names of 'ds' into 'buf' ("a, b, c"), truncated to 'size'. */
static void list_layers(GDALDatasetH ds, char *buf, size_t size) {
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < GDALDatasetGetLayerCount(ds) && used < size; i++) {
        const char *name = OGR_L_GetName(GDALDatasetGetLayer(ds, i));
        int n = snprintf(buf + used, size - used, "%s%s", i ? ", " : "", name);
        if (n < 0) break;
        used += (size_t)n;
    }
}

/* Sets up the reprojection of 'v''s layer to 'dst_wkt'. Returns 0, or -1 with 'err'. */
static int open_transform(vector_t *v, const char *dst_wkt, char *err) {
    OGRSpatialReferenceH layer_srs = OGR_L_GetSpatialRef(v->layer);
    if (!dst_wkt || !*dst_wkt || !layer_srs) return 0;
    int rc = -1;
    OGRSpatialReferenceH src = OSRClone(layer_srs), dst = OSRNewSpatialReference(NULL);
    if (!src || !dst) {
        gm_err(err, "%s: out of memory", v->file);
        goto out_free_srs;
    }
    CPLErrorReset();
    if (OSRSetFromUserInput(dst, dst_wkt) != OGRERR_NONE) {
        gm_err(err, "%s: cannot read the rasters' CRS (%s)", v->file, gm_gdal_last_error());
        goto out_free_srs;
    }
    OSRSetAxisMappingStrategy(src, OAMS_TRADITIONAL_GIS_ORDER);
    OSRSetAxisMappingStrategy(dst, OAMS_TRADITIONAL_GIS_ORDER);
    if (!OSRIsSame(src, dst)) {
        CPLErrorReset();
        v->ct = OCTNewCoordinateTransformation(src, dst);
        if (!v->ct) {
            gm_err(err, "%s: cannot reproject the layer to the rasters' CRS (%s)", v->file, gm_gdal_last_error());
            goto out_free_srs;
        }
    }
    rc = 0;
out_free_srs:
    if (src) OSRDestroySpatialReference(src);
    if (dst) OSRDestroySpatialReference(dst);
    return rc;
}

/* Opens "file" or "file:layer" as a vector layer, reprojected to 'dst_wkt'. Returns 0, or -1 with 'err'. */
static int open_vector(const char *path_layer, const char *dst_wkt, vector_t *v, char *err) {
    memset(v, 0, sizeof *v);
    gm_gdal_init();
    const char *layer_name = NULL;
    v->file = strdup(path_layer);
    if (!v->file) return gm_err(err, "%s: out of memory", path_layer);
    char *colon = strrchr(v->file, ':');
    if (colon) {
        *colon = '\0';
        if (*v->file && exists(v->file))
            layer_name = colon + 1;
        else
            *colon = ':';
    }
    CPLErrorReset();
    /* a CSV of points (x,y,CLASS as R's write.csv writes it): its coordinate columns make the geometry */
    static const char *const csv_xy[] = {"X_POSSIBLE_NAMES=x,X,easting,Easting,lon,longitude",
                                         "Y_POSSIBLE_NAMES=y,Y,northing,Northing,lat,latitude", NULL};
    size_t flen = strlen(v->file);
    int csv = flen > 4 && !strcasecmp(v->file + flen - 4, ".csv");
    v->ds = GDALOpenEx(v->file, GDAL_OF_VECTOR | GDAL_OF_READONLY | GDAL_OF_VERBOSE_ERROR, NULL,
                       csv ? csv_xy : NULL, NULL);
    if (!v->ds) {
        if (strncmp(v->file, "/vsi", 4) != 0 && !exists(v->file))
            gm_err(err, "%s: no such file", v->file);
        else
            gm_err(err, "%s: not a readable vector file (%s)", v->file, gm_gdal_last_error());
        goto fail;
    }
    if (GDALDatasetGetLayerCount(v->ds) < 1) {
        gm_err(err, "%s: file has no layer", v->file);
        goto fail;
    }
    v->layer = layer_name ? GDALDatasetGetLayerByName(v->ds, layer_name) : GDALDatasetGetLayer(v->ds, 0);
    if (!v->layer) {
        char names[256];
        list_layers(v->ds, names, sizeof names);
        gm_err(err, "%s: no layer '%s' (layers: %s)", v->file, layer_name, names);
        goto fail;
    }
    if (open_transform(v, dst_wkt, err) < 0) goto fail;
    return 0;
fail:
    close_vector(v);
    return -1;
}

static int find_field(const vector_t *v, const char *name, char *err);

/* Sets the reprojection of a layer that names no CRS (a CSV) from 'src_crs' (any form OSRSetFromUserInput
 * takes) to 'dst_wkt'. Returns 0, or -1 with 'err'. */
static int transform_from(vector_t *v, const char *src_crs, const char *dst_wkt, char *err) {
    if (!src_crs || !dst_wkt || !*dst_wkt || OGR_L_GetSpatialRef(v->layer)) return 0;
    OGRSpatialReferenceH src = OSRNewSpatialReference(NULL), dst = OSRNewSpatialReference(NULL);
    int rc = -1;
    CPLErrorReset();
    if (!src || !dst) gm_err(err, "out of memory");
    else if (OSRSetFromUserInput(src, src_crs) != OGRERR_NONE)
        gm_err(err, "option --observations-crs: \"%s\" is not a CRS (%s)", src_crs, gm_gdal_last_error());
    else if (OSRSetFromUserInput(dst, dst_wkt) != OGRERR_NONE)
        gm_err(err, "%s: cannot read the rasters' CRS (%s)", v->file, gm_gdal_last_error());
    else {
        OSRSetAxisMappingStrategy(src, OAMS_TRADITIONAL_GIS_ORDER);
        OSRSetAxisMappingStrategy(dst, OAMS_TRADITIONAL_GIS_ORDER);
        rc = 0;
        if (!OSRIsSame(src, dst) && !(v->ct = OCTNewCoordinateTransformation(src, dst)))
            rc = gm_err(err, "%s: cannot reproject from %s to the rasters' CRS (%s)", v->file, src_crs,
                        gm_gdal_last_error());
    }
    if (src) OSRDestroySpatialReference(src);
    if (dst) OSRDestroySpatialReference(dst);
    return rc;
}

/* Finds the points' value field: 'field', or when NULL the first of soil_class and class (rdsmart's and
 * gridmill's names). Returns its index, or -1 with 'err' listing the fields. */
static int find_value_field(const vector_t *v, const char *field, char *err) {
    if (field) return find_field(v, field, err);
    OGRFeatureDefnH defn = OGR_L_GetLayerDefn(v->layer);
    int idx = OGR_FD_GetFieldIndex(defn, "soil_class");
    if (idx < 0) idx = OGR_FD_GetFieldIndex(defn, "class");
    return idx >= 0 ? idx : find_field(v, "soil_class", err);
}

int gm_polys_point_classes(const char *path_layer, const char *field, char ***names, uint32_t *n, char *err) {
    *names = NULL;
    *n = 0;
    vector_t vec;
    if (open_vector(path_layer, NULL, &vec, err) < 0) return -1;
    int idx = find_value_field(&vec, field, err), rc = idx < 0 ? -1 : 0;
    char **list = NULL;
    size_t cap = 0;
    uint32_t count = 0;
    OGRFeatureH f;
    OGR_L_ResetReading(vec.layer);
    while (rc == 0 && (f = OGR_L_GetNextFeature(vec.layer))) {
        const char *name = OGR_F_IsFieldSetAndNotNull(f, idx) ? OGR_F_GetFieldAsString(f, idx) : "";
        int seen = !*name;
        for (uint32_t k = 0; k < count && !seen; k++) seen = !strcmp(list[k], name);
        if (!seen) {
            if (grow((void **)&list, &cap, (size_t)count + 2, sizeof *list) < 0 || !(list[count] = strdup(name)))
                rc = gm_err(err, "out of memory");
            else list[++count] = NULL;
        }
        OGR_F_Destroy(f);
    }
    close_vector(&vec);
    if (rc < 0) {
        for (uint32_t k = 0; k < count; k++) free(list[k]);
        free(list);
        return -1;
    }
    *names = list;
    *n = count;
    return 0;
}

/* Returns the index of field 'name' in 'v''s layer, or -1 with 'err' listing the fields that exist. */
static int find_field(const vector_t *v, const char *name, char *err) {
    OGRFeatureDefnH defn = OGR_L_GetLayerDefn(v->layer);
    int idx = OGR_FD_GetFieldIndex(defn, name);
    if (idx >= 0) return idx;
    char names[300];
    size_t used = 0;
    names[0] = '\0';
    int n = OGR_FD_GetFieldCount(defn);
    for (int i = 0; i < n && used < sizeof names; i++) {
        int w = snprintf(names + used, sizeof names - used, "%s%s", i ? ", " : "",
                         OGR_Fld_GetNameRef(OGR_FD_GetFieldDefn(defn, i)));
        if (w < 0) break;
        used += (size_t)w;
    }
    gm_err(err, "%s: layer '%s' has no field '%s' (fields: %s)", v->file, OGR_L_GetName(v->layer), name,
           n ? names : "none");
    return -1;
}

/* Reads field 'idx' of 'f' as a number into '*v'. Returns 1 if set, 0 if NULL or empty text, or -1 with
 * 'err' when the text is not a number. */
static int field_number(const vector_t *vec, OGRFeatureH f, int idx, double *v, char *err) {
    if (!OGR_F_IsFieldSetAndNotNull(f, idx)) return 0;
    OGRFieldType t = OGR_Fld_GetType(OGR_F_GetFieldDefnRef(f, idx));
    if (t == OFTInteger || t == OFTInteger64 || t == OFTReal) {
        *v = OGR_F_GetFieldAsDouble(f, idx);
    } else {
        const char *s = OGR_F_GetFieldAsString(f, idx);
        if (s[strspn(s, " \t")] == '\0') return 0;
        if (parse_number(s, v) < 0)
            return gm_err(err, "%s: feature %" PRId64 ": %s '%s' is not a number", vec->file,
                          (int64_t)OGR_F_GetFID(f), OGR_Fld_GetNameRef(OGR_F_GetFieldDefnRef(f, idx)), s);
    }
    if (!isfinite(*v))
        return gm_err(err, "%s: feature %" PRId64 ": %s is not finite", vec->file, (int64_t)OGR_F_GetFID(f),
                      OGR_Fld_GetNameRef(OGR_F_GetFieldDefnRef(f, idx)));
    return 1;
}

/* ---- composition CSV ---- */

/* Reads the next record of 'c' into c->fields. Returns 1 with the field count in '*n' and the record's first
 * line in '*line', 0 at the end, or -1 with 'err'. Fields are unquoted in place and trimmed of blanks. */
static int csv_next(comp_csv_t *c, size_t *n, size_t *line, char *err) {
    char *b = c->buf;
    for (;;) { /* skip blank lines */
        size_t p = c->pos;
        while (p < c->len && (b[p] == ' ' || b[p] == '\t')) p++;
        if (p < c->len && (b[p] == '\n' || b[p] == '\r')) {
            c->pos = p + (b[p] == '\r' && p + 1 < c->len && b[p + 1] == '\n' ? 2 : 1);
            c->line++;
            continue;
        }
        if (p >= c->len) return 0;
        break;
    }
    *line = c->line;
    *n = 0;
    for (;;) {
        while (c->pos < c->len && (b[c->pos] == ' ' || b[c->pos] == '\t')) c->pos++;
        char *field, delim;
        if (c->pos < c->len && b[c->pos] == '"') {
            size_t w = c->pos, start = w;
            c->pos++;
            for (;;) {
                if (c->pos >= c->len) return gm_err(err, "%s: line %zu: unterminated quote", c->path, *line);
                char ch = b[c->pos];
                if (ch == '"') {
                    if (c->pos + 1 < c->len && b[c->pos + 1] == '"') {
                        b[w++] = '"';
                        c->pos += 2;
                        continue;
                    }
                    c->pos++;
                    break;
                }
                if (ch == '\n') c->line++;
                b[w++] = ch;
                c->pos++;
            }
            while (c->pos < c->len && (b[c->pos] == ' ' || b[c->pos] == '\t')) c->pos++;
            delim = c->pos < c->len ? b[c->pos] : '\n';
            if (delim != ',' && delim != '\n' && delim != '\r')
                return gm_err(err, "%s: line %zu: text after a closing quote", c->path, c->line);
            field = b + start;
            b[w] = '\0'; /* w < pos: the opening quote was consumed */
        } else {
            size_t start = c->pos;
            while (c->pos < c->len && b[c->pos] != ',' && b[c->pos] != '\n' && b[c->pos] != '\r') c->pos++;
            size_t end = c->pos;
            while (end > start && (b[end - 1] == ' ' || b[end - 1] == '\t')) end--;
            field = b + start;
            delim = c->pos < c->len ? b[c->pos] : '\n';
            b[end] = '\0'; /* may overwrite the delimiter, saved above; buf has a spare byte past len */
        }
        if (grow((void **)&c->fields, &c->fields_cap, *n + 1, sizeof *c->fields) < 0)
            return gm_err(err, "%s: out of memory", c->path);
        c->fields[(*n)++] = field;
        if (delim == ',') {
            c->pos++;
            continue;
        }
        if (c->pos < c->len) c->pos += (delim == '\r' && c->pos + 1 < c->len && b[c->pos + 1] == '\n') ? 2 : 1;
        c->line++;
        return 1;
    }
}

/* Orders rows by polygon id, then by line. */
static int cmp_rows(const void *a, const void *b) {
    const comp_row_t *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    return c ? c : (x->line > y->line) - (x->line < y->line);
}

/* Orders rows by line. */
static int cmp_rows_line(const void *a, const void *b) {
    const comp_row_t *x = a, *y = b;
    return (x->line > y->line) - (x->line < y->line);
}

/* Reads the whole file 'path' into a NUL-terminated buffer. Returns 0, or -1 with 'err'. */
static int slurp(const char *path, char **buf, size_t *len, char *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return gm_err(err, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 0, n = 0;
    char *b = NULL;
    for (;;) {
        if (grow((void **)&b, &cap, n + 65536 + 1, 1) < 0) {
            free(b);
            fclose(f);
            return gm_err(err, "%s: out of memory", path);
        }
        size_t got = fread(b + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(b);
        return gm_err(err, "%s: cannot read", path);
    }
    b[n] = '\0';
    *buf = b;
    *len = n;
    return 0;
}

/* Frees a composition CSV. */
static void comp_csv_free(comp_csv_t *c) {
    for (size_t i = 0; i < c->nowned; i++) free(c->owned[i]);
    free(c->owned);
    free(c->buf);
    free(c->fields);
    free(c->rows);
    memset(c, 0, sizeof *c);
}

/* Sorts the composition's rows by polygon id and sets each polygon's sum of shares. Shares are percent when
 * some polygon's sum exceeds 1.5, else proportions; a polygon whose shares do not sum to 100 (or 1), within
 * 0.5 %, is named in a warning (the first GM_POLYS_WARN_MAX, then the total): its shares are renormalised.
 * 'where' names c->rows[].line in errors ("line", or "feature" for --composition-fields). Returns 0, or -1
 * with 'err' for a polygon whose shares sum to 0. */
static int comp_group(comp_csv_t *c, const char *where, char *err) {
    qsort(c->rows, c->nrows, sizeof *c->rows, cmp_rows);
    double top = 0;
    for (size_t i = 0; i < c->nrows;) {
        size_t j = i;
        double sum = 0;
        while (j < c->nrows && !strcmp(c->rows[j].id, c->rows[i].id)) sum += c->rows[j++].proportion;
        if (!(sum > 0) || !isfinite(sum))
            return gm_err(err, "%s: %s %zu: the shares of polygon '%s' sum to %g", c->path, where, c->rows[i].line,
                          c->rows[i].id, sum);
        for (size_t k = i; k < j; k++) c->rows[k].group_sum = sum;
        top = fmax(top, sum);
        i = j;
    }
    double whole = top > 1.5 ? 100.0 : 1.0;
    unsigned long off = 0;
    for (size_t i = 0; i < c->nrows && !c->strata;) { /* with strata the shares are per stratum */
        size_t j = i;
        while (j < c->nrows && !strcmp(c->rows[j].id, c->rows[i].id)) j++;
        if (fabs(c->rows[i].group_sum - whole) > 0.005 * whole && ++off <= GM_POLYS_WARN_MAX)
            gm_log(GM_LOG_WARN, "%s: the shares of polygon '%s' sum to %g, not %g%s; they are renormalised", c->path,
                   c->rows[i].id, c->rows[i].group_sum, whole, whole > 1 ? " (percent)" : "");
        i = j;
    }
    if (off > GM_POLYS_WARN_MAX)
        gm_log(GM_LOG_WARN, "%s: %lu polygons' shares do not sum to %g (only the first %d are named above); they are "
               "renormalised", c->path, off, whole, GM_POLYS_WARN_MAX);
    return 0;
}

/* Reads and checks the composition CSV 'path': header, column count, proportions, per-polygon sums. Leaves
 * the rows sorted by polygon id. Returns 0, or -1 with 'err'. */
static int comp_csv_read(const char *path, comp_csv_t *c, char *err) {
    memset(c, 0, sizeof *c);
    c->path = path;
    c->line = 1;
    if (slurp(path, &c->buf, &c->len, err) < 0) return -1;
    if (c->len >= 3 && memcmp(c->buf, "\xEF\xBB\xBF", 3) == 0) c->pos = 3; /* UTF-8 byte order mark */
    size_t n, line;
    int r = csv_next(c, &n, &line, err);
    if (r < 0) goto fail;
    if (r == 0) {
        gm_err(err, "%s: empty file (expected a header polygon,class,proportion)", path);
        goto fail;
    }
    size_t ncols = n;
    /* gridmill's polygon,class,proportion or rdsmart's poly,mapunit,soil_class,proportion (as R's write.csv
     * writes it, quoted, maybe with a first column of row names); other columns are ignored */
    int col_id = -1, col_cls = -1, col_prop = -1, col_stratum = -1;
    for (size_t i = 0; i < n; i++) {
        if (!strcasecmp(c->fields[i], "stratum")) col_stratum = (int)i;
        if (!strcasecmp(c->fields[i], "polygon") || !strcasecmp(c->fields[i], "poly")) col_id = (int)i;
        else if (!strcasecmp(c->fields[i], "class") || !strcasecmp(c->fields[i], "soil_class")) col_cls = (int)i;
        else if (!strcasecmp(c->fields[i], "proportion")) col_prop = (int)i;
    }
    if (col_id < 0 || col_cls < 0 || col_prop < 0) {
        gm_err(err, "%s: line %zu: header lacks the column '%s' (expected polygon,class,proportion, or rdsmart's "
               "poly,mapunit,soil_class,proportion)", path, line,
               col_id < 0 ? "polygon" : col_cls < 0 ? "class" : "proportion");
        goto fail;
    }
    size_t rows_cap = 0;
    while ((r = csv_next(c, &n, &line, err)) == 1) {
        if (n != ncols) {
            gm_err(err, "%s: line %zu: %zu fields, expected %zu", path, line, n, ncols);
            goto fail;
        }
        if (grow((void **)&c->rows, &rows_cap, c->nrows + 1, sizeof *c->rows) < 0) {
            gm_err(err, "%s: out of memory", path);
            goto fail;
        }
        comp_row_t *row = &c->rows[c->nrows];
        memset(row, 0, sizeof *row);
        row->id = c->fields[col_id];
        row->cls = c->fields[col_cls];
        row->line = line;
        const char *prop = c->fields[col_prop];
        if (!*row->id) {
            gm_err(err, "%s: line %zu: empty polygon id", path, line);
            goto fail;
        }
        if (!*row->cls) {
            gm_err(err, "%s: line %zu: empty class", path, line);
            goto fail;
        }
        if (parse_number(prop, &row->proportion) < 0) {
            gm_err(err, "%s: line %zu: proportion '%s' is not a number", path, line, prop);
            goto fail;
        }
        if (row->proportion < 0) {
            gm_err(err, "%s: line %zu: proportion '%s' is negative", path, line, prop);
            goto fail;
        }
        if (col_stratum >= 0) {
            char *end;
            const char *st = c->fields[col_stratum];
            row->stratum = strtoll(st, &end, 10);
            if (!*st || *end) {
                gm_err(err, "%s: line %zu: stratum '%s' is not a whole number", path, line, st);
                goto fail;
            }
        }
        c->nrows++;
    }
    if (r < 0) goto fail;
    if (c->nrows == 0) {
        gm_err(err, "%s: no rows after the header", path);
        goto fail;
    }
    c->strata = col_stratum >= 0;
    if (comp_group(c, "line", err) < 0) goto fail;
    return 0;
fail:
    comp_csv_free(c);
    return -1;
}

/* Returns the index of the first row of polygon 'id' in the sorted rows, or -1. */
static long comp_find(const comp_csv_t *c, const char *id) {
    size_t lo = 0, hi = c->nrows;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(c->rows[mid].id, id) < 0) lo = mid + 1;
        else hi = mid;
    }
    return (lo < c->nrows && !strcmp(c->rows[lo].id, id)) ? (long)lo : -1;
}

/* ---- class table ---- */

/* strcmp for qsort and bsearch over arrays of strings. */
static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* Builds the sorted class table from 'n' names (duplicates allowed). Returns 0, or -1 with 'err'. */
static int build_classes(gm_polys_t *self, const char **names, size_t n, char *err) {
    qsort(names, n, sizeof *names, cmp_str);
    self->classes = calloc(n ? n : 1, sizeof *self->classes);
    if (!self->classes) return gm_err(err, "out of memory");
    for (size_t i = 0; i < n; i++) {
        if (i && !strcmp(names[i], names[i - 1])) continue;
        self->classes[self->nclass] = strdup(names[i]);
        if (!self->classes[self->nclass]) return gm_err(err, "out of memory");
        self->nclass++;
    }
    return 0;
}

uint32_t gm_polys_class_code(const gm_polys_t *self, const char *name) {
    if (!self->nclass) return GM_POLYS_NO_CLASS;
    char *const *hit = bsearch(&name, self->classes, self->nclass, sizeof *self->classes, cmp_str);
    return hit ? (uint32_t)(hit - self->classes) : GM_POLYS_NO_CLASS;
}

/* ---- geometry ---- */

/* Appends the vertices of one ring. Returns 0, or -1 when out of memory. */
static int add_ring(gm_polys_t *self, OGRGeometryH ring) {
    int n = OGR_G_GetPointCount(ring);
    if (n <= 0) return 0;
    if (grow((void **)&self->xy, &self->xy_cap, 2 * (self->nverts + (size_t)n), sizeof *self->xy) < 0 ||
        grow((void **)&self->ring_off, &self->ring_cap, self->nrings + 2, sizeof *self->ring_off) < 0)
        return -1;
    double *v = self->xy + 2 * self->nverts;
    OGR_G_GetPoints(ring, v, 2 * sizeof(double), v + 1, 2 * sizeof(double), NULL, 0);
    self->nverts += (size_t)n;
    self->ring_off[++self->nrings] = self->nverts;
    return 0;
}

/* Appends the rings of a Polygon. Returns 0, or -1 when out of memory. */
static int add_polygon_rings(gm_polys_t *self, OGRGeometryH poly) {
    for (int k = 0; k < OGR_G_GetGeometryCount(poly); k++)
        if (add_ring(self, OGR_G_GetGeometryRef(poly, k)) < 0) return -1;
    return 0;
}

/* Appends polygon 'g' (Polygon or MultiPolygon, reprojected) with feature id 'fid'. Returns its entry, or
 * NULL when out of memory. */
static poly_t *add_poly(gm_polys_t *self, OGRGeometryH g, int64_t fid) {
    if (grow((void **)&self->polys, &self->polys_cap, (size_t)self->npolys + 1, sizeof *self->polys) < 0) return NULL;
    poly_t *p = &self->polys[self->npolys];
    memset(p, 0, sizeof *p);
    p->fid = fid;
    p->ring0 = self->nrings;
    p->code = GM_POLYS_NO_CLASS;
    p->target = NAN;
    if (wkbFlatten(OGR_G_GetGeometryType(g)) == wkbPolygon) {
        if (add_polygon_rings(self, g) < 0) return NULL;
    } else {
        for (int k = 0; k < OGR_G_GetGeometryCount(g); k++)
            if (add_polygon_rings(self, OGR_G_GetGeometryRef(g, k)) < 0) return NULL;
    }
    p->nrings = (uint32_t)(self->nrings - p->ring0);
    OGREnvelope e;
    OGR_G_GetEnvelope(g, &e);
    p->env[0] = e.MinX;
    p->env[1] = e.MinY;
    p->env[2] = e.MaxX;
    p->env[3] = e.MaxY;
    p->area = OGR_G_Area(g);
    self->npolys++;
    return p;
}

/* Returns the slab of polygon 'p' that holds height 'y': a non-decreasing function of y (NaN gives 0). */
static inline uint32_t slab_of(const poly_t *p, double y) {
    double k = floor((y - p->env[1]) * p->slab_scale);
    if (!(k > 0)) return 0;
    return k < (double)(p->nslabs - 1) ? (uint32_t)k : p->nslabs - 1;
}

/* Walks the edges of one polygon that can cross a horizontal line: both ends' y are numbers and differ (the
 * crossing test never counts the others). */
typedef struct {
    const gm_polys_t *self;
    size_t ring, ring_end, k;
} edge_iter_t;

/* Starts walking the edges of polygon 'p'. */
static void edge_iter_init(edge_iter_t *it, const gm_polys_t *self, const poly_t *p) {
    *it = (edge_iter_t){.self = self, .ring = p->ring0, .ring_end = p->ring0 + p->nrings, .k = 0};
}

/* Stores the next edge in 'e' (vertex k and the one before it, the last for the first). Returns 1, or 0 when
 * every edge was seen. */
static int edge_iter_next(edge_iter_t *it, edge_t *e) {
    const double *xy = it->self->xy;
    for (; it->ring < it->ring_end; it->ring++, it->k = 0) {
        size_t first = it->self->ring_off[it->ring], n = it->self->ring_off[it->ring + 1] - first;
        while (it->k < n) {
            size_t k = it->k++, j = k ? k - 1 : n - 1;
            *e = (edge_t){(uint32_t)(first + k), (uint32_t)(first + j)};
            double yi = xy[2 * e->i + 1], yj = xy[2 * e->j + 1];
            if (!isnan(yi) && !isnan(yj) && yi != yj) return 1;
        }
    }
    return 0;
}

/* Stores the first and last slab of polygon 'p' that edge 'e' of 'self' meets. */
static void edge_slabs(const gm_polys_t *self, const poly_t *p, const edge_t *e, uint32_t *first, uint32_t *last) {
    double yi = self->xy[2 * e->i + 1], yj = self->xy[2 * e->j + 1];
    *first = slab_of(p, yi < yj ? yi : yj);
    *last = slab_of(p, yi < yj ? yj : yi);
}

/* Cuts polygon 'p' into 'nslabs' slabs (one when its height is zero or not finite). */
static void set_slabs(poly_t *p, uint32_t nslabs) {
    double height = p->env[3] - p->env[1];
    p->nslabs = nslabs;
    p->slab_scale = nslabs > 1 && isfinite(p->env[1]) && height > 0 && isfinite(height) ? nslabs / height : 0;
    if (!(p->slab_scale > 0) || !isfinite(p->slab_scale)) {
        p->nslabs = 1;
        p->slab_scale = 0;
    }
}

/* Returns how many slab entries the edges of 'p' take with its current slabs. */
static size_t slab_entries(const gm_polys_t *self, const poly_t *p) {
    size_t n = 0;
    edge_iter_t it;
    edge_t e;
    uint32_t first, last;
    for (edge_iter_init(&it, self, p); edge_iter_next(&it, &e);) {
        edge_slabs(self, p, &e, &first, &last);
        n += last - first + 1;
    }
    return n;
}

/* Builds the slab index that gm_polys_contains uses: each polygon's envelope is cut into horizontal slabs
 * (about one per 4 edges, fewer when long edges would be copied into too many) and each slab lists the
 * edges whose y range meets it. A point at height y can only be crossed by the edges of y's slab, since an
 * edge it crosses has min(yi, yj) <= y < max(yi, yj) and slab_of is non-decreasing. Returns 0, or -1 when out
 * of memory or the map has more vertices than 32-bit indices reach. */
static int build_slabs(gm_polys_t *self) {
    if (self->nverts > UINT32_MAX) return -1;
    size_t total_slabs = 0, total_edges = 0;
    edge_iter_t it;
    edge_t e;
    uint32_t first, last;
    for (uint32_t i = 0; i < self->npolys; i++) {
        poly_t *p = &self->polys[i];
        size_t crossing = 0;
        for (edge_iter_init(&it, self, p); edge_iter_next(&it, &e);) crossing++;
        size_t want = crossing / 4;
        set_slabs(p, want < 1 ? 1 : want > (1u << 20) ? 1u << 20 : (uint32_t)want);
        size_t entries = slab_entries(self, p);
        while (p->nslabs > 1 && entries > 8 * crossing + 64) {
            set_slabs(p, p->nslabs / 2);
            entries = slab_entries(self, p);
        }
        p->slab0 = total_slabs;
        total_slabs += p->nslabs;
        total_edges += entries;
    }
    self->slab_off = calloc(total_slabs + 1, sizeof *self->slab_off);
    self->edges = malloc((total_edges ? total_edges : 1) * sizeof *self->edges);
    size_t *fill = malloc(total_slabs * sizeof *fill);
    if (!self->slab_off || !self->edges || !fill) {
        free(fill);
        return -1;
    }
    self->nslabs = total_slabs;
    self->nedges = total_edges;
    /* count each slab's edges, turn the counts into offsets, then place the edges */
    for (uint32_t i = 0; i < self->npolys; i++) {
        const poly_t *p = &self->polys[i];
        for (edge_iter_init(&it, self, p); edge_iter_next(&it, &e);) {
            edge_slabs(self, p, &e, &first, &last);
            for (uint32_t k = first; k <= last; k++) self->slab_off[p->slab0 + k + 1]++;
        }
    }
    for (size_t k = 0; k < total_slabs; k++) self->slab_off[k + 1] += self->slab_off[k];
    memcpy(fill, self->slab_off, total_slabs * sizeof *fill);
    for (uint32_t i = 0; i < self->npolys; i++) {
        const poly_t *p = &self->polys[i];
        for (edge_iter_init(&it, self, p); edge_iter_next(&it, &e);) {
            edge_slabs(self, p, &e, &first, &last);
            for (uint32_t k = first; k <= last; k++) self->edges[fill[p->slab0 + k]++] = e;
        }
    }
    free(fill);
    return 0;
}

/* ---- opening a map ---- */

/* What gm_polys_open needs while it reads features. */
typedef struct {
    gm_polys_t *self;
    const gm_polys_options_t *o;
    vector_t vec;
    int field;          /* class, target or id field; -1 = FID */
    comp_csv_t csv;
    char **plain_names; /* plain mode: the class name of each polygon kept, until codes are set */
    size_t plain_cap;
    int check_valid;    /* GDAL has GEOS: features are checked with OGR_G_IsValid */
} opening_t;

/* Logs one warning about invalid feature 'fid' ('what' follows "feature N (label) "), unless
 * GM_POLYS_WARN_MAX of them were logged already (the summary at the end of gm_polys_open counts them). */
static void warn_invalid(opening_t *op, gm_log_level_t level, int64_t fid, const char *label, const char *what) {
    const gm_polys_report_t *r = &op->self->report;
    if (r->repaired_invalid + r->skipped_invalid > GM_POLYS_WARN_MAX) return;
    gm_log(level, "%s: feature %" PRId64 "%s%s%s %s", op->vec.file, fid, label ? " (" : "", label ? label : "",
           label ? ")" : "", what);
}

/* Adds the Polygon parts of 'g' (any geometry, collections searched recursively) to the MultiPolygon 'mp'.
 * Returns 0, or -1 when out of memory. */
static int add_polygonal_parts(OGRGeometryH mp, OGRGeometryH g) {
    OGRwkbGeometryType t = wkbFlatten(OGR_G_GetGeometryType(g));
    if (t == wkbPolygon) return OGR_G_IsEmpty(g) || OGR_G_AddGeometry(mp, g) == OGRERR_NONE ? 0 : -1;
    if (t != wkbMultiPolygon && t != wkbGeometryCollection) return 0; /* points and lines have no area */
    for (int k = 0; k < OGR_G_GetGeometryCount(g); k++)
        if (add_polygonal_parts(mp, OGR_G_GetGeometryRef(g, k)) < 0) return -1;
    return 0;
}

/* Checks feature 'fid''s geometry 'g' with OGR_G_IsValid and repairs an invalid one with OGR_G_MakeValid,
 * keeping its polygonal parts; 'label' names the feature in warnings (NULL: the FID alone). Returns 1 with
 * '*fixed' NULL when 'g' is valid, 1 with '*fixed' the repaired MultiPolygon (the caller owns it), 0 when the
 * feature cannot be repaired (warned and counted), or -1 with 'err'. */
static int repair_invalid(opening_t *op, OGRGeometryH g, int64_t fid, const char *label, OGRGeometryH *fixed,
                          char *err) {
    *fixed = NULL;
    if (!op->check_valid) return 1;
    OGR_G_CloseRings(g); /* a ring left open was always taken as closed: not a reason to repair or skip */
    CPLErrorReset();
    if (OGR_G_IsValid(g)) return 1;
    char reason[256], what[400];
    snprintf(reason, sizeof reason, "%s", CPLGetLastErrorMsg()[0] ? CPLGetLastErrorMsg() : "invalid geometry");
    if (reason[0] >= 'A' && reason[0] <= 'Z') reason[0] = (char)(reason[0] - 'A' + 'a');
    CPLErrorReset();
    OGRGeometryH valid = OGR_G_MakeValid(g), mp = NULL;
    if (!valid) {
        op->self->report.skipped_invalid++;
        snprintf(what, sizeof what, "is not a valid polygon (%s) and MakeValid fails (%s); skipped", reason,
                 gm_gdal_last_error());
        warn_invalid(op, GM_LOG_LOSS, fid, label, what);
        return 0;
    }
    OGR_G_FlattenTo2D(valid);
    mp = OGR_G_CreateGeometry(wkbMultiPolygon);
    if (!mp || add_polygonal_parts(mp, valid) < 0) {
        OGR_G_DestroyGeometry(valid);
        if (mp) OGR_G_DestroyGeometry(mp);
        return gm_err(err, "%s: feature %" PRId64 ": out of memory repairing the polygon", op->vec.file, fid);
    }
    OGR_G_DestroyGeometry(valid);
    double area = OGR_G_Area(mp);
    if (OGR_G_IsEmpty(mp) || !(area > 0)) {
        OGR_G_DestroyGeometry(mp);
        op->self->report.skipped_invalid++;
        snprintf(what, sizeof what, "is not a valid polygon (%s) and MakeValid leaves no area; skipped", reason);
        warn_invalid(op, GM_LOG_LOSS, fid, label, what);
        return 0;
    }
    op->self->report.repaired_invalid++;
    snprintf(what, sizeof what, "is not a valid polygon (%s); repaired with MakeValid", reason);
    warn_invalid(op, GM_LOG_WARN, fid, label, what);
    *fixed = mp;
    return 1;
}

/* Gives polygon 'p' the composition rows that start at 'first' (sorted rows), normalised to cumulative
 * probabilities. Returns 0, or -1 with 'err'. */
static int add_composition(opening_t *op, poly_t *p, size_t first, char *err) {
    gm_polys_t *self = op->self;
    size_t end = first;
    while (end < op->csv.nrows && !strcmp(op->csv.rows[end].id, op->csv.rows[first].id)) end++;
    size_t need = self->ncomp + (end - first);
    if (grow((void **)&self->comp_code, &self->code_cap, need, sizeof *self->comp_code) < 0 ||
        grow((void **)&self->comp_cum, &self->cum_cap, need, sizeof *self->comp_cum) < 0 ||
        (op->csv.strata && grow((void **)&self->comp_stratum, &self->stratum_cap, need, sizeof *self->comp_stratum) < 0))
        return gm_err(err, "out of memory");
    p->comp0 = self->ncomp;
    p->ncomp = (uint32_t)(end - first);
    double cum = 0;
    for (size_t k = first; k < end; k++) {
        const comp_row_t *row = &op->csv.rows[k];
        cum += row->proportion / row->group_sum;
        self->comp_code[self->ncomp] = gm_polys_class_code(self, row->cls);
        self->comp_cum[self->ncomp] = k + 1 == end ? 1.0 : cum;
        if (op->csv.strata) self->comp_stratum[self->ncomp] = row->stratum;
        self->ncomp++;
    }
    return 0;
}

/* Reads one feature into the map or counts it as skipped. Returns 0, or -1 with 'err'. */
static int read_feature(opening_t *op, OGRFeatureH f, char *err) {
    gm_polys_t *self = op->self;
    const char *file = op->vec.file;
    int64_t fid = (int64_t)OGR_F_GetFID(f);
    OGRGeometryH g = OGR_F_GetGeometryRef(f);
    if (g) {
        OGRwkbGeometryType t = wkbFlatten(OGR_G_GetGeometryType(g));
        if (t != wkbPolygon && t != wkbMultiPolygon)
            return gm_err(err, "%s: feature %" PRId64 " is a %s, not a polygon or multipolygon", file, fid,
                          OGR_G_GetGeometryName(g));
    }
    const char *name = NULL, *label = NULL, *id = NULL; /* id: composition, the polygon's key */
    int keep_id = 0;                                     /* id is an id field's value, kept with it */
    double target = NAN;
    long first_row = -1;
    char fid_text[32], label_text[128];
    if (self->mode == MODE_CLASS) {
        if (OGR_F_IsFieldSetAndNotNull(f, op->field)) name = OGR_F_GetFieldAsString(f, op->field);
        if (!name || !*name) {
            self->report.skipped_no_value++;
            return 0;
        }
        snprintf(label_text, sizeof label_text, "class %s", name);
        label = label_text;
    } else if (self->mode == MODE_TARGET) {
        int r = field_number(&op->vec, f, op->field, &target, err);
        if (r < 0) return -1;
        if (r == 0) {
            self->report.skipped_no_value++;
            return 0;
        }
    } else {
        if (op->field < 0) {
            snprintf(fid_text, sizeof fid_text, "%" PRId64, fid);
            id = fid_text;
        } else if (OGR_F_IsFieldSetAndNotNull(f, op->field)) {
            id = OGR_F_GetFieldAsString(f, op->field);
            keep_id = 1;
        }
        if (!id || !*id) {
            self->report.skipped_no_value++;
            return 0;
        }
        if (op->field >= 0) {
            snprintf(label_text, sizeof label_text, "map unit %s", id);
            label = label_text;
        }
        first_row = comp_find(&op->csv, id);
        for (long k = first_row; k >= 0 && (size_t)k < op->csv.nrows && !strcmp(op->csv.rows[k].id, id); k++)
            op->csv.rows[k].matched = 1;
    }
    if (!g || OGR_G_IsEmpty(g)) {
        self->report.skipped_no_geometry++;
        return 0;
    }
    if (self->mode == MODE_COMPOSITION && first_row < 0) { /* lost: named (the first few), then counted */
        if (++self->report.skipped_no_composition <= GM_POLYS_WARN_MAX)
            gm_log(GM_LOG_LOSS, "%s: feature %" PRId64 "%s%s%s has no composition; skipped", file, fid,
                   label ? " (" : "", label ? label : "", label ? ")" : "");
        return 0;
    }
    OGRGeometryH fixed;
    int r = repair_invalid(op, g, fid, label, &fixed, err);
    if (r <= 0) return r;
    if (fixed) g = fixed;
    if (op->vec.ct) {
        CPLErrorReset();
        if (OGR_G_Transform(g, op->vec.ct) != OGRERR_NONE) {
            gm_err(err, "%s: feature %" PRId64 ": cannot reproject (%s)", file, fid, gm_gdal_last_error());
            if (fixed) OGR_G_DestroyGeometry(fixed);
            return -1;
        }
    }
    poly_t *p = add_poly(self, g, fid);
    if (fixed) OGR_G_DestroyGeometry(fixed);
    if (!p) return gm_err(err, "out of memory");
    if (self->mode == MODE_CLASS) {
        if (grow((void **)&op->plain_names, &op->plain_cap, self->npolys, sizeof *op->plain_names) < 0)
            return gm_err(err, "out of memory");
        op->plain_names[self->npolys - 1] = strdup(name);
        if (!op->plain_names[self->npolys - 1]) return gm_err(err, "out of memory");
    } else if (self->mode == MODE_TARGET) {
        p->target = target;
    } else if (add_composition(op, p, (size_t)first_row, err) < 0) {
        return -1;
    } else if (keep_id && !(p->id = strdup(id))) {
        return gm_err(err, "out of memory");
    }
    return 0;
}

/* Keeps a copy of 's' in the composition's pool. Returns it, or NULL when out of memory. */
static const char *comp_keep(comp_csv_t *c, const char *s) {
    if (grow((void **)&c->owned, &c->owned_cap, c->nowned + 1, sizeof *c->owned) < 0) return NULL;
    char *copy = strdup(s);
    if (copy) c->owned[c->nowned++] = copy;
    return copy;
}

/* --composition-fields: builds the composition's rows from the layer's own fields, pairs of a class field and
 * its share, one row per component of every feature (the polygon named by its id field, else its FID, as a
 * CSV would name it). Returns 0, or -1 with 'err' naming the field or the feature. */
static int comp_from_fields(opening_t *op, char *err) {
    comp_csv_t *c = &op->csv;
    const gm_polys_options_t *o = op->o;
    c->path = op->vec.file;
    char *spec = strdup(o->composition_fields);
    int idx[2 * 64], n = 0, id_field = -1;
    if (!spec) return gm_err(err, "out of memory");
    for (char *save = NULL, *name = strtok_r(spec, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
        while (*name == ' ') name++;
        if (n == 2 * 64) {
            free(spec);
            return gm_err(err, "option --composition-fields: more than 64 class and share pairs");
        }
        if ((idx[n++] = find_field(&op->vec, name, err)) < 0) {
            free(spec);
            return -1;
        }
    }
    free(spec);
    if (n < 2 || n % 2)
        return gm_err(err, "option --composition-fields: \"%s\" is not pairs CLASS1,SHARE1,CLASS2,SHARE2,...",
                      o->composition_fields);
    if (o->id_field && (id_field = find_field(&op->vec, o->id_field, err)) < 0) return -1;
    OGRFeatureDefnH defn = OGR_L_GetLayerDefn(op->vec.layer);
    size_t rows_cap = 0;
    OGRFeatureH f;
    OGR_L_ResetReading(op->vec.layer);
    while ((f = OGR_L_GetNextFeature(op->vec.layer))) {
        int64_t fid = (int64_t)OGR_F_GetFID(f);
        char fid_text[32];
        snprintf(fid_text, sizeof fid_text, "%" PRId64, fid);
        const char *id = id_field < 0 ? fid_text : OGR_F_IsFieldSetAndNotNull(f, id_field) ? OGR_F_GetFieldAsString(f, id_field) : "";
        int rc = 0;
        for (int k = 0; k < n && rc == 0 && *id; k += 2) {
            const char *cls = OGR_F_IsFieldSetAndNotNull(f, idx[k]) ? OGR_F_GetFieldAsString(f, idx[k]) : "";
            if (!*cls) continue;
            const char *share_name = OGR_Fld_GetNameRef(OGR_FD_GetFieldDefn(defn, idx[k + 1]));
            if (!OGR_F_IsFieldSetAndNotNull(f, idx[k + 1])) {
                rc = gm_err(err, "%s: feature %" PRId64 ": field %s names class %s but %s is empty", c->path, fid,
                            OGR_Fld_GetNameRef(OGR_FD_GetFieldDefn(defn, idx[k])), cls, share_name);
                break;
            }
            double share = OGR_F_GetFieldAsDouble(f, idx[k + 1]);
            if (!(share >= 0) || !isfinite(share)) {
                rc = gm_err(err, "%s: feature %" PRId64 ": share %s of class %s is %g, not a number >= 0", c->path, fid,
                            share_name, cls, share);
                break;
            }
            if (share == 0) continue;
            if (grow((void **)&c->rows, &rows_cap, c->nrows + 1, sizeof *c->rows) < 0) {
                rc = gm_err(err, "out of memory");
                break;
            }
            comp_row_t *row = &c->rows[c->nrows];
            memset(row, 0, sizeof *row);
            row->id = comp_keep(c, id);
            row->cls = comp_keep(c, cls);
            row->proportion = share;
            row->line = (size_t)fid;
            if (!row->id || !row->cls) rc = gm_err(err, "out of memory");
            else c->nrows++;
        }
        OGR_F_Destroy(f);
        if (rc < 0) return -1;
    }
    OGR_L_ResetReading(op->vec.layer);
    if (c->nrows == 0)
        return gm_err(err, "%s: no feature has a class and a share in --composition-fields %s", c->path,
                      o->composition_fields);
    return comp_group(c, "feature", err);
}

/* Plain mode: builds the class table from the names kept and gives each polygon its code. */
static int set_plain_codes(opening_t *op, char *err) {
    gm_polys_t *self = op->self;
    const gm_polys_options_t *o = op->o;
    const char **sorted = malloc(((size_t)self->npolys + o->nextra_classes + 1) * sizeof *sorted);
    if (!sorted) return gm_err(err, "out of memory");
    memcpy(sorted, op->plain_names, self->npolys * sizeof *sorted);
    for (uint32_t k = 0; k < o->nextra_classes; k++) sorted[self->npolys + k] = o->extra_classes[k];
    int rc = build_classes(self, sorted, self->npolys + o->nextra_classes, err);
    free(sorted);
    if (rc < 0) return -1;
    for (uint32_t i = 0; i < self->npolys; i++) self->polys[i].code = gm_polys_class_code(self, op->plain_names[i]);
    return 0;
}

/* Composition mode: builds the class table from every CSV row. */
static int set_composition_classes(opening_t *op, char *err) {
    const gm_polys_options_t *o = op->o;
    const char **names = malloc((op->csv.nrows + o->nextra_classes + 1) * sizeof *names);
    if (!names) return gm_err(err, "out of memory");
    for (size_t i = 0; i < op->csv.nrows; i++) names[i] = op->csv.rows[i].cls;
    for (uint32_t k = 0; k < o->nextra_classes; k++) names[op->csv.nrows + k] = o->extra_classes[k];
    int rc = build_classes(op->self, names, op->csv.nrows + o->nextra_classes, err);
    free(names);
    return rc;
}

/* Composition mode: fails on the first CSV row (by line) whose polygon is not in the layer. */
static int check_rows_matched(opening_t *op, char *err) {
    qsort(op->csv.rows, op->csv.nrows, sizeof *op->csv.rows, cmp_rows_line);
    for (size_t i = 0; i < op->csv.nrows; i++) {
        const comp_row_t *row = &op->csv.rows[i];
        if (!row->matched)
            return gm_err(err, "%s: line %zu: polygon '%s' is not in %s (matched against %s)", op->o->composition,
                          row->line, row->id, op->vec.file, op->o->id_field ? op->o->id_field : "the FID");
    }
    return 0;
}

gm_polys_t *gm_polys_open(const gm_polys_options_t *o, const char *dst_wkt, char *err) {
    assert(o && o->path);
    int modes = !!o->class_field + !!o->target_field + !!o->composition + !!o->composition_fields;
    if (modes != 1) {
        gm_err(err, "%s: give exactly one of a class field, a target field or a composition (%d given)", o->path,
               modes);
        return NULL;
    }
    opening_t op;
    memset(&op, 0, sizeof op);
    op.o = o;
    op.field = -1;
    gm_polys_t *self = op.self = calloc(1, sizeof *self);
    if (!self || !(self->ring_off = calloc(16, sizeof *self->ring_off))) {
        gm_err(err, "out of memory");
        goto out_free_map;
    }
    self->ring_cap = 16;
    self->mode = o->class_field ? MODE_CLASS : o->target_field ? MODE_TARGET : MODE_COMPOSITION;
    if (o->composition_fields) {
        if (open_vector(o->path, dst_wkt, &op.vec, err) < 0) goto out_free_map;
        if (comp_from_fields(&op, err) < 0 || set_composition_classes(&op, err) < 0) goto out_close_vector;
    } else {
        if (self->mode == MODE_COMPOSITION && comp_csv_read(o->composition, &op.csv, err) < 0) goto out_free_map;
        if (self->mode == MODE_COMPOSITION && set_composition_classes(&op, err) < 0) goto out_free_csv;
        if (open_vector(o->path, dst_wkt, &op.vec, err) < 0) goto out_free_csv;
    }
    const char *field = self->mode == MODE_CLASS ? o->class_field : self->mode == MODE_TARGET ? o->target_field
                                                                                             : o->id_field;
    if (field && (op.field = find_field(&op.vec, field, err)) < 0) goto out_close_vector;
    {
        char *real = realpath(op.vec.file, NULL);
        const char *layer = OGR_L_GetName(op.vec.layer);
        size_t len = strlen(real ? real : op.vec.file) + strlen(layer) + 2;
        self->file = strdup(real ? real : op.vec.file);
        self->source = malloc(len);
        if (self->source) snprintf(self->source, len, "%s:%s", real ? real : op.vec.file, layer);
        free(real);
        if (!self->file || !self->source) {
            gm_err(err, "out of memory");
            goto out_close_vector;
        }
    }
    op.check_valid = OGRGetGEOSVersion(NULL, NULL, NULL) ? 1 : 0;
    if (!op.check_valid)
        gm_log(GM_LOG_WARN, "%s: GDAL is built without GEOS, so polygons are not checked for validity (a "
               "self-intersecting one may have the wrong area)", op.vec.file);
    OGR_L_ResetReading(op.vec.layer);
    OGRFeatureH f;
    while ((f = OGR_L_GetNextFeature(op.vec.layer))) {
        self->report.features++;
        int rc = read_feature(&op, f, err);
        OGR_F_Destroy(f);
        if (rc < 0) goto out_close_vector;
    }
    const gm_polys_report_t *rep = &self->report;
    if (rep->skipped_no_composition > GM_POLYS_WARN_MAX)
        gm_log(GM_LOG_LOSS, "%s: %" PRIu64 " features have no composition and are skipped (only the first %d are "
               "named above)", op.vec.file, rep->skipped_no_composition, GM_POLYS_WARN_MAX);
    if (rep->repaired_invalid + rep->skipped_invalid > GM_POLYS_WARN_MAX)
        gm_log(rep->skipped_invalid ? GM_LOG_LOSS : GM_LOG_WARN,
               "%s: %" PRIu64 " features are not valid polygons: %" PRIu64 " repaired with MakeValid, "
               "%" PRIu64 " skipped (only the first %d are named above)", op.vec.file,
               rep->repaired_invalid + rep->skipped_invalid, rep->repaired_invalid, rep->skipped_invalid,
               GM_POLYS_WARN_MAX);
    if (self->report.features == 0) {
        gm_err(err, "%s: layer has no features", op.vec.file);
        goto out_close_vector;
    }
    if (self->mode == MODE_COMPOSITION && check_rows_matched(&op, err) < 0) goto out_close_vector;
    if (self->npolys == 0) {
        const gm_polys_report_t *r = &self->report;
        gm_err(err,
               "%s: no usable polygon (%" PRIu64 " features: %" PRIu64 " without a value, %" PRIu64
               " without a geometry, %" PRIu64 " not in the composition, %" PRIu64 " invalid beyond repair)",
               op.vec.file, r->features, r->skipped_no_value, r->skipped_no_geometry, r->skipped_no_composition,
               r->skipped_invalid);
        goto out_close_vector;
    }
    if (self->mode == MODE_CLASS && set_plain_codes(&op, err) < 0) goto out_close_vector;
    if (build_slabs(self) < 0) {
        gm_err(err, "%s: cannot index %zu polygon vertices (out of memory, or more than %u)", op.vec.file,
               self->nverts, UINT32_MAX);
        goto out_close_vector;
    }
    close_vector(&op.vec);
    comp_csv_free(&op.csv);
    for (uint32_t i = 0; i < self->npolys && op.plain_names; i++) free(op.plain_names[i]);
    free(op.plain_names);
    return self;

out_close_vector:
    close_vector(&op.vec);
out_free_csv:
    comp_csv_free(&op.csv);
out_free_map:
    for (uint32_t i = 0; self && op.plain_names && i < self->npolys; i++) free(op.plain_names[i]);
    free(op.plain_names);
    gm_polys_destroy(&self);
    return NULL;
}

void gm_polys_destroy(gm_polys_t **self_p) {
    assert(self_p);
    gm_polys_t *self = *self_p;
    if (!self) return;
    for (uint32_t i = 0; i < self->nclass; i++) free(self->classes[i]);
    free(self->classes);
    free(self->source);
    free(self->file);
    for (uint32_t i = 0; i < self->npolys; i++) free(self->polys[i].id);
    free(self->polys);
    free(self->ring_off);
    free(self->xy);
    free(self->slab_off);
    free(self->edges);
    free(self->comp_code);
    free(self->comp_stratum);
    free(self->comp_cum);
    free(self);
    *self_p = NULL;
}

/* ---- queries ---- */

uint32_t gm_polys_count(const gm_polys_t *self) { return self->npolys; }

const char *gm_polys_id(const gm_polys_t *self, uint32_t i) { return self->polys[i].id; }

const char *gm_polys_source(const gm_polys_t *self) { return self->source; }

const char *gm_polys_file(const gm_polys_t *self) { return self->file; }

const gm_polys_report_t *gm_polys_report(const gm_polys_t *self) { return &self->report; }

int gm_polys_is_regression(const gm_polys_t *self) { return self->mode == MODE_TARGET; }

int gm_polys_is_composition(const gm_polys_t *self) { return self->mode == MODE_COMPOSITION; }

uint32_t gm_polys_nclass(const gm_polys_t *self) { return self->nclass; }

const char *gm_polys_class_name(const gm_polys_t *self, uint32_t code) {
    return code < self->nclass ? self->classes[code] : NULL;
}

int gm_polys_write_class_table(const gm_polys_t *self, const char *path, char *err) {
    return gm_polys_write_class_names((const char *const *)self->classes, self->nclass, path, err);
}

int gm_polys_write_class_names(const char *const *names, uint32_t n, const char *path, char *err) {
    FILE *f = fopen(path, "w");
    if (!f) return gm_err(err, "%s: cannot create: %s", path, strerror(errno));
    fputs("code,class\n", f);
    for (uint32_t i = 0; i < n; i++) {
        fprintf(f, "%u,", i);
        gm_polys_put_csv_field(f, names[i]);
        fputc('\n', f);
    }
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) return gm_err(err, "%s: cannot write: %s", path, strerror(errno));
    return 0;
}

int gm_polys_read_class_table(const char *path, char ***names, uint32_t *n, char *err) {
    /* read as a composition CSV is: the same quoting and line rules */
    comp_csv_t c;
    memset(&c, 0, sizeof c);
    c.path = path;
    c.line = 1;
    *names = NULL;
    *n = 0;
    if (slurp(path, &c.buf, &c.len, err) < 0) return -1;
    char **list = NULL;
    uint32_t count = 0;
    size_t nf, line;
    int rc = -1, r = csv_next(&c, &nf, &line, err);
    if (r < 0) goto out;
    if (r == 0 || nf != 2 || strcmp(c.fields[0], "code") || strcmp(c.fields[1], "class")) {
        gm_err(err, "%s: not a class table (its first line is not code,class)", path);
        goto out;
    }
    while ((r = csv_next(&c, &nf, &line, err)) == 1) {
        char *end;
        unsigned long code = strtoul(c.fields[0], &end, 10);
        if (nf != 2 || end == c.fields[0] || *end || code != count) {
            gm_err(err, "%s: line %zu is not code %u and its class", path, line, count);
            goto out;
        }
        char **more = realloc(list, ((size_t)count + 2) * sizeof *list);
        if (!more || !(more[count] = strdup(c.fields[1]))) {
            if (more) list = more;
            gm_err(err, "out of memory");
            goto out;
        }
        list = more;
        list[++count] = NULL;
    }
    if (r < 0) goto out;
    *names = list;
    *n = count;
    list = NULL;
    rc = 0;
out:
    for (uint32_t i = 0; list && i < count; i++) free(list[i]);
    free(list);
    comp_csv_free(&c);
    return rc;
}

int64_t gm_polys_fid(const gm_polys_t *self, uint32_t i) {
    assert(i < self->npolys);
    return self->polys[i].fid;
}

double gm_polys_area(const gm_polys_t *self, uint32_t i) {
    assert(i < self->npolys);
    return self->polys[i].area;
}

void gm_polys_envelope(const gm_polys_t *self, uint32_t i, double env[4]) {
    assert(i < self->npolys);
    memcpy(env, self->polys[i].env, 4 * sizeof *env);
}

int gm_polys_contains(const gm_polys_t *self, uint32_t i, double x, double y) {
    assert(i < self->npolys);
    const poly_t *p = &self->polys[i];
    if (x < p->env[0] || x > p->env[2] || y < p->env[1] || y > p->env[3]) return 0;
    /* the even-odd rule over every ring, on the only edges that can cross y (see build_slabs) */
    size_t slab = p->slab0 + slab_of(p, y);
    const edge_t *e = self->edges + self->slab_off[slab], *end = self->edges + self->slab_off[slab + 1];
    int inside = 0;
    for (; e < end; e++) {
        const double *vi = self->xy + 2 * e->i, *vj = self->xy + 2 * e->j;
        double xi = vi[0], yi = vi[1], xj = vj[0], yj = vj[1];
        if ((yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi) inside = !inside;
    }
    return inside;
}

uint32_t gm_polys_code(const gm_polys_t *self, uint32_t i) {
    assert(i < self->npolys);
    return self->polys[i].code;
}

double gm_polys_target(const gm_polys_t *self, uint32_t i) {
    assert(i < self->npolys);
    return self->polys[i].target;
}

uint32_t gm_polys_draw_class(const gm_polys_t *self, uint32_t i, double u) {
    assert(i < self->npolys);
    const poly_t *p = &self->polys[i];
    if (self->mode != MODE_COMPOSITION) return p->code;
    const double *cum = self->comp_cum + p->comp0;
    for (uint32_t k = 0; k + 1 < p->ncomp; k++)
        if (u < cum[k]) return self->comp_code[p->comp0 + k];
    return self->comp_code[p->comp0 + p->ncomp - 1];
}

const long long *gm_polys_component_strata(const gm_polys_t *self, uint32_t i) {
    assert(i < self->npolys);
    return self->comp_stratum ? self->comp_stratum + self->polys[i].comp0 : NULL;
}

int gm_polys_has_strata(const gm_polys_t *self) { return self->comp_stratum != NULL; }

uint32_t gm_polys_composition(const gm_polys_t *self, uint32_t i, const uint32_t **codes, const double **cumulative) {
    assert(i < self->npolys);
    const poly_t *p = &self->polys[i];
    if (self->mode != MODE_COMPOSITION) return 0;
    *codes = self->comp_code + p->comp0;
    *cumulative = self->comp_cum + p->comp0;
    return p->ncomp;
}

/* ---- observation points ---- */

void gm_polys_points_free(gm_polys_points_t *pts) {
    if (!pts) return;
    free(pts->x);
    free(pts->y);
    free(pts->code);
    free(pts->target);
    free(pts->fid);
    memset(pts, 0, sizeof *pts);
}

/* Appends one point to 'pts', growing its arrays. Returns 0, or -1 when out of memory. */
static int add_point(gm_polys_points_t *pts, size_t *cap, double x, double y, uint32_t code, float target,
                     int64_t fid) {
    if (pts->n == *cap) {
        size_t n = *cap ? *cap * 2 : 64;
        double *nx = realloc(pts->x, n * sizeof *nx);
        if (!nx) return -1;
        pts->x = nx;
        double *ny = realloc(pts->y, n * sizeof *ny);
        if (!ny) return -1;
        pts->y = ny;
        uint32_t *nc = realloc(pts->code, n * sizeof *nc);
        if (!nc) return -1;
        pts->code = nc;
        float *nt = realloc(pts->target, n * sizeof *nt);
        if (!nt) return -1;
        pts->target = nt;
        int64_t *nf = realloc(pts->fid, n * sizeof *nf);
        if (!nf) return -1;
        pts->fid = nf;
        *cap = n;
    }
    pts->x[pts->n] = x;
    pts->y[pts->n] = y;
    pts->code[pts->n] = code;
    pts->target[pts->n] = target;
    pts->fid[pts->n] = fid;
    pts->n++;
    return 0;
}

/* Reads one observation feature into 'out' or counts it as skipped. Returns 0, or -1 with 'err'. */
static int read_point(const gm_polys_t *self, const vector_t *vec, int field, OGRFeatureH f, gm_polys_points_t *out,
                      size_t *cap, char *err) {
    int64_t fid = (int64_t)OGR_F_GetFID(f);
    OGRGeometryH g = OGR_F_GetGeometryRef(f);
    if (g && wkbFlatten(OGR_G_GetGeometryType(g)) != wkbPoint)
        return gm_err(err, "%s: feature %" PRId64 " is a %s, not a point", vec->file, fid, OGR_G_GetGeometryName(g));
    uint32_t code = GM_POLYS_NO_CLASS;
    double target = NAN;
    if (self->mode == MODE_TARGET) {
        int r = field_number(vec, f, field, &target, err);
        if (r < 0) return -1;
        if (r == 0) {
            out->skipped_no_value++;
            return 0;
        }
    } else {
        const char *name = OGR_F_IsFieldSetAndNotNull(f, field) ? OGR_F_GetFieldAsString(f, field) : "";
        if (!*name) {
            out->skipped_no_value++;
            return 0;
        }
        code = gm_polys_class_code(self, name);
        if (code == GM_POLYS_NO_CLASS)
            return gm_err(err, "%s: feature %" PRId64 ": class '%s' is not one of the map's %u classes", vec->file,
                          fid, name, self->nclass);
    }
    if (!g || OGR_G_IsEmpty(g)) {
        out->skipped_no_value++;
        return 0;
    }
    if (vec->ct) {
        CPLErrorReset();
        if (OGR_G_Transform(g, vec->ct) != OGRERR_NONE)
            return gm_err(err, "%s: feature %" PRId64 ": cannot reproject (%s)", vec->file, fid, gm_gdal_last_error());
    }
    if (add_point(out, cap, OGR_G_GetX(g, 0), OGR_G_GetY(g, 0), code, (float)target, fid) < 0)
        return gm_err(err, "out of memory");
    return 0;
}

int gm_polys_read_points(const gm_polys_t *self, const char *path_layer, const char *field, const char *src_crs,
                         const char *dst_wkt, gm_polys_points_t *out, char *err) {
    assert(self && path_layer && out);
    gm_polys_points_free(out);
    vector_t vec;
    if (open_vector(path_layer, dst_wkt, &vec, err) < 0) return -1;
    int rc = -1, idx = find_value_field(&vec, field, err);
    if (idx < 0 || transform_from(&vec, src_crs, dst_wkt, err) < 0) goto out_close_vector;
    if (OGR_FD_GetGeomFieldCount(OGR_L_GetLayerDefn(vec.layer)) == 0) {
        gm_err(err, "%s: no point geometry (a CSV needs columns x and y)", vec.file);
        goto out_close_vector;
    }
    size_t cap = 0;
    OGR_L_ResetReading(vec.layer);
    OGRFeatureH f;
    while ((f = OGR_L_GetNextFeature(vec.layer))) {
        out->features++;
        int r = read_point(self, &vec, idx, f, out, &cap, err);
        OGR_F_Destroy(f);
        if (r < 0) goto out_close_vector;
    }
    if (out->features == 0) {
        gm_err(err, "%s: layer has no features", vec.file);
        goto out_close_vector;
    }
    rc = 0;
out_close_vector:
    close_vector(&vec);
    if (rc < 0) gm_polys_points_free(out);
    return rc;
}
