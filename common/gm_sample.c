/* gm_sample.c -- DSMART sampling: random points strictly inside each polygon of a map, with the covariate
 * values of the pixel under each point, and the extraction of given points (observations). */
#include "gm_sample.h"

#include <assert.h>
#include <errno.h>
#include <gdal.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gm_fmt.h"
#include "gm_log.h"
#include "gm_rng.h"

/* Turns map coordinates into pixels of one grid: the inverse geotransform and the grid's size. */
typedef struct {
    double inv[6];
    double xsize, ysize;
} locator_t;

/* Sets up 'l' for 'grid'. Returns 0, or -1 when the geotransform cannot be inverted. */
static int locator_init(locator_t *l, const gm_grid_t *grid) {
    double gt[6];
    memcpy(gt, grid->gt, sizeof gt);
    if (!GDALInvGeoTransform(gt, l->inv)) return -1;
    l->xsize = grid->xsize;
    l->ysize = grid->ysize;
    return 0;
}

/* Finds the pixel under (x, y) exactly as gdallocationinfo does. Returns 0, or -1 when off the grid. */
static inline int locate(const locator_t *l, double x, double y, uint32_t *col, uint32_t *row) {
    double px = floor(l->inv[0] + l->inv[1] * x + l->inv[2] * y);
    double py = floor(l->inv[3] + l->inv[4] * x + l->inv[5] * y);
    if (!(px >= 0 && px < l->xsize && py >= 0 && py < l->ysize)) return -1; /* NaN lands here too */
    *col = (uint32_t)px;
    *row = (uint32_t)py;
    return 0;
}

/* Returns 1 if any of the 'n' values is NaN. */
static inline int has_nan(const float *v, uint32_t n) {
    for (uint32_t b = 0; b < n; b++)
        if (isnan(v[b])) return 1;
    return 0;
}


/* ---- the sample table ---- */

gm_samples_t *gm_samples_new(uint32_t nbands) {
    gm_samples_t *self = calloc(1, sizeof *self);
    if (self) self->nbands = nbands;
    return self;
}

void gm_samples_clear(gm_samples_t *self) { self->n = 0; }

int gm_samples_reserve(gm_samples_t *self, size_t n, char *err) {
    if (n <= self->cap) return 0;
    size_t cap = self->cap ? self->cap : 256;
    while (cap < n) cap *= 2;
    size_t nb = self->nbands ? self->nbands : 1;
    double *x = realloc(self->x, cap * sizeof *x);
    if (x) self->x = x;
    double *y = realloc(self->y, cap * sizeof *y);
    if (y) self->y = y;
    uint32_t *polygon = realloc(self->polygon, cap * sizeof *polygon);
    if (polygon) self->polygon = polygon;
    uint32_t *code = realloc(self->code, cap * sizeof *code);
    if (code) self->code = code;
    float *target = realloc(self->target, cap * sizeof *target);
    if (target) self->target = target;
    float *values = realloc(self->values, cap * nb * sizeof *values);
    if (values) self->values = values;
    if (!x || !y || !polygon || !code || !target || !values)
        return gm_err(err, "out of memory for %zu sample points", n);
    self->cap = cap;
    return 0;
}

int gm_samples_append(gm_samples_t *self, double x, double y, uint32_t polygon, uint32_t code, float target,
                      const float *values, char *err) {
    if (gm_samples_reserve(self, self->n + 1, err) < 0) return -1;
    size_t i = self->n++;
    self->x[i] = x;
    self->y[i] = y;
    self->polygon[i] = polygon;
    self->code[i] = code;
    self->target[i] = target;
    memcpy(self->values + i * self->nbands, values, self->nbands * sizeof *values);
    return 0;
}

void gm_samples_destroy(gm_samples_t **self_p) {
    assert(self_p);
    gm_samples_t *self = *self_p;
    if (!self) return;
    free(self->x);
    free(self->y);
    free(self->polygon);
    free(self->code);
    free(self->target);
    free(self->values);
    free(self);
    *self_p = NULL;
}

/* ---- sampling ---- */

uint32_t gm_sample_wanted(const gm_polys_t *p, uint32_t i, const gm_sample_options_t *o) {
    if (o->per_polygon) return o->per_polygon;
    double n = floor(o->density_km2 * gm_polys_area(p, i) / 1e6 + 0.5);
    uint32_t wanted = !(n > 0) ? 0 : n >= (double)UINT32_MAX ? UINT32_MAX : (uint32_t)n;
    return wanted < o->min_per_polygon ? o->min_per_polygon : wanted;
}

int gm_sample_pixel(const gm_grid_t *grid, double x, double y, uint32_t *col, uint32_t *row) {
    locator_t l;
    if (locator_init(&l, grid) < 0) return -1;
    return locate(&l, x, y, col, row);
}

/* Stores the bounding box of the grid's extent in 'ext': xmin, ymin, xmax, ymax. */
static void grid_extent(const gm_grid_t *g, double ext[4]) {
    ext[0] = ext[1] = INFINITY;
    ext[2] = ext[3] = -INFINITY;
    for (int k = 0; k < 4; k++) {
        double c = (k & 1) ? g->xsize : 0, r = (k & 2) ? g->ysize : 0;
        double x = g->gt[0] + c * g->gt[1] + r * g->gt[2], y = g->gt[3] + c * g->gt[4] + r * g->gt[5];
        ext[0] = fmin(ext[0], x);
        ext[1] = fmin(ext[1], y);
        ext[2] = fmax(ext[2], x);
        ext[3] = fmax(ext[3], y);
    }
}

/* ---- covariate values at points ---- */

#define WINDOWS 8                   /* windows kept */
#define WINDOW_BYTES ((size_t)2 << 20) /* at most this much per window, every band */

/* Square windows of every band, aligned on a grid of their side, read whole and kept (the least recently
 * used goes), so that a point costs a lookup instead of one GDAL read per band: points come polygon after
 * polygon along a Hilbert curve, so a window serves many. Warped stacks are read pixel by pixel, as
 * gdallocationinfo reads them: a warp's approximate transform may map a pixel differently in a window. */
typedef struct {
    gm_stack_t *stack;
    uint32_t nbands, side, xsize, ysize, across; /* across: windows in a row of them */
    int direct; /* read each point from GDAL */
    struct {
        int64_t key; /* window row * windows across + window column, -1 when empty */
        uint32_t x0, y0, w, h;
        uint64_t used;
        float *v; /* nbands planes of w x h */
    } win[WINDOWS];
    uint64_t clock;
} points_t;

/* Sets up 'pr' for 'stack'. */
static void points_init(points_t *pr, gm_stack_t *stack) {
    memset(pr, 0, sizeof *pr);
    const gm_grid_t *grid = gm_stack_grid(stack);
    pr->stack = stack;
    pr->nbands = gm_stack_nbands(stack);
    pr->xsize = grid->xsize;
    pr->ysize = grid->ysize;
    for (pr->side = 256; pr->side > 16 && (size_t)pr->side * pr->side * pr->nbands * sizeof(float) > WINDOW_BYTES;
         pr->side /= 2) {
    }
    pr->across = (pr->xsize + pr->side - 1) / pr->side;
    pr->direct = gm_stack_any_warped(stack) || (size_t)pr->side * pr->side * pr->nbands * sizeof(float) > WINDOW_BYTES;
    for (int i = 0; i < WINDOWS; i++) pr->win[i].key = -1;
}

/* Frees the windows. */
static void points_free(points_t *pr) {
    for (int i = 0; i < WINDOWS; i++) free(pr->win[i].v);
}

/* Reads the values of every band at pixel (col, row) into 'values' (NaN where nodata), as gm_stack_read reads
 * them. Returns 0, or -1 with 'err'. */
static int point_values(points_t *pr, uint32_t col, uint32_t row, float *values, char *err) {
    if (pr->direct) return gm_stack_read(pr->stack, col, row, 1, 1, values, err);
    uint32_t wx = col / pr->side, wy = row / pr->side;
    int64_t key = (int64_t)wy * pr->across + wx;
    int at = -1, oldest = 0;
    for (int i = 0; i < WINDOWS && at < 0; i++) {
        if (pr->win[i].key == key) at = i;
        else if (pr->win[i].used < pr->win[oldest].used) oldest = i;
    }
    if (at < 0) {
        at = oldest;
        if (!pr->win[at].v && !(pr->win[at].v = malloc((size_t)pr->side * pr->side * pr->nbands * sizeof(float))))
            return gm_err(err, "out of memory for a %ux%u window of %u bands", pr->side, pr->side, pr->nbands);
        uint32_t x0 = wx * pr->side, y0 = wy * pr->side;
        uint32_t w = pr->xsize - x0 < pr->side ? pr->xsize - x0 : pr->side;
        uint32_t h = pr->ysize - y0 < pr->side ? pr->ysize - y0 : pr->side;
        pr->win[at].key = -1;
        if (gm_stack_read(pr->stack, x0, y0, w, h, pr->win[at].v, err) < 0) return -1;
        pr->win[at].key = key;
        pr->win[at].x0 = x0;
        pr->win[at].y0 = y0;
        pr->win[at].w = w;
        pr->win[at].h = h;
    }
    pr->win[at].used = ++pr->clock;
    size_t n = (size_t)pr->win[at].w * pr->win[at].h, off = (size_t)(row - pr->win[at].y0) * pr->win[at].w + (col - pr->win[at].x0);
    for (uint32_t b = 0; b < pr->nbands; b++) values[b] = pr->win[at].v[b * n + off];
    return 0;
}

/* A pixel with valid covariates that a polygon meets: its column, row, and whether its centre is inside. */
typedef struct {
    uint32_t col, row;
    int centre_in;
} cell_t;

/* What one iteration needs for every polygon. */
typedef struct {
    const gm_polys_t *p;
    gm_stack_t *stack;
    points_t *points;
    const gm_sample_options_t *o;
    locator_t loc;
    double gt[6];
    double ext[4];
    double pixel_area;
    uint32_t max_tries, iteration, nbands;
    int composition, regression;
    points_t *spoints;       /* the strata raster's values, when the composition has strata */
    uint32_t *all_codes;     /* random-all: every class code of the composition, ascending */
    uint32_t nall;
    cell_t *cells;           /* the valid pixels polygon 'cells_of' meets, once needed (for every iteration) */
    size_t ncells, cells_cap;
    uint32_t cells_of;       /* UINT32_MAX: none yet */
    float *scratch;          /* nbands values */
} sampler_t;

static int polygon_window(const sampler_t *s, uint32_t i, double win[4]);
static int stratum_at(const sampler_t *s, uint32_t col, uint32_t row, double *st, char *err);

/* Map coordinates of pixel position (px, py), in pixels from the grid's origin. */
static void pixel_xy(const sampler_t *s, double px, double py, double *x, double *y) {
    *x = s->gt[0] + px * s->gt[1] + py * s->gt[2];
    *y = s->gt[3] + px * s->gt[4] + py * s->gt[5];
}

/* Lists in s->cells the pixels with valid covariates that polygon 'i' meets: its centre or a corner is
 * inside. Returns 0, or -1 with 'err'. */
static int polygon_cells(sampler_t *s, uint32_t i, char *err) {
    s->ncells = 0;
    s->cells_of = i;
    double win[4];
    if (polygon_window(s, i, win) < 0) return 0;
    double c0 = INFINITY, c1 = -INFINITY, r0 = INFINITY, r1 = -INFINITY;
    for (int k = 0; k < 4; k++) { /* the window's corners in pixels */
        double x = win[(k & 1) ? 2 : 0], y = win[(k & 2) ? 3 : 1];
        double px = s->loc.inv[0] + s->loc.inv[1] * x + s->loc.inv[2] * y;
        double py = s->loc.inv[3] + s->loc.inv[4] * x + s->loc.inv[5] * y;
        c0 = fmin(c0, px), c1 = fmax(c1, px), r0 = fmin(r0, py), r1 = fmax(r1, py);
    }
    uint32_t col0 = (uint32_t)fmax(0, floor(c0)), col1 = (uint32_t)fmin(s->loc.xsize - 1, floor(c1));
    uint32_t row0 = (uint32_t)fmax(0, floor(r0)), row1 = (uint32_t)fmin(s->loc.ysize - 1, floor(r1));
    for (uint32_t row = row0; row <= row1; row++)
        for (uint32_t col = col0; col <= col1; col++) {
            double x, y;
            pixel_xy(s, col + 0.5, row + 0.5, &x, &y);
            int centre = gm_polys_contains(s->p, i, x, y), meets = centre;
            for (int k = 0; k < 4 && !meets; k++) {
                pixel_xy(s, col + (k & 1), row + (k >> 1), &x, &y);
                meets = gm_polys_contains(s->p, i, x, y);
            }
            if (!meets) continue;
            if (point_values(s->points, col, row, s->scratch, err) < 0) return -1;
            if (has_nan(s->scratch, s->nbands)) continue;
            double st;
            if (s->spoints) { /* off the strata (nodata): not a pixel to draw in */
                if (stratum_at(s, col, row, &st, err) < 0) return -1;
                if (isnan(st)) continue;
            }
            if (s->ncells == s->cells_cap) {
                size_t cap = s->cells_cap ? 2 * s->cells_cap : 256;
                cell_t *more = realloc(s->cells, cap * sizeof *more);
                if (!more) return gm_err(err, "sampling: out of memory listing the pixels of polygon %u", i);
                s->cells = more;
                s->cells_cap = cap;
            }
            s->cells[s->ncells++] = (cell_t){.col = col, .row = row, .centre_in = centre};
        }
    return 0;
}

/* Draws one point of polygon 'i' among its valid pixels (s->cells): a pixel uniformly, then uniform points in
 * it until one is inside the polygon and on that pixel, or its centre when inside. Returns 1 with (x, y) and
 * the pixel's values, 0 when no pixel serves, or -1 with 'err'. */
static int draw_in_cells(sampler_t *s, uint32_t i, gm_rng_t *rng, double *x, double *y, float *values, char *err) {
    const cell_t *pick = NULL;
    for (int attempt = 0; attempt < 64 && s->ncells && !pick; attempt++) {
        size_t k = (size_t)(gm_rng_uniform(rng) * (double)s->ncells);
        const cell_t *c = &s->cells[k < s->ncells ? k : s->ncells - 1];
        for (int t = 0; t < 64 && !pick; t++) {
            uint32_t col, row;
            pixel_xy(s, c->col + gm_rng_uniform(rng), c->row + gm_rng_uniform(rng), x, y);
            if (gm_polys_contains(s->p, i, *x, *y) && locate(&s->loc, *x, *y, &col, &row) == 0 && col == c->col &&
                row == c->row)
                pick = c;
        }
        if (!pick && c->centre_in) {
            pixel_xy(s, c->col + 0.5, c->row + 0.5, x, y);
            pick = c;
        }
    }
    for (size_t k = 0; k < s->ncells && !pick; k++) /* the draws missed: the first pixel whose centre is in */
        if (s->cells[k].centre_in) {
            pick = &s->cells[k];
            pixel_xy(s, pick->col + 0.5, pick->row + 0.5, x, y);
        }
    if (!pick) return 0;
    return point_values(s->points, pick->col, pick->row, values, err) < 0 ? -1 : 1;
}

/* A standard normal draw (Box-Muller, one of the pair). */
static double normal_draw(gm_rng_t *r) {
    double u1 = 1.0 - gm_rng_uniform(r), u2 = gm_rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* A Gamma(a, 1) draw (Marsaglia and Tsang; a < 1 through Gamma(a + 1) U^(1/a)). */
static double gamma_draw(gm_rng_t *r, double a) {
    if (a < 1.0) return gamma_draw(r, a + 1.0) * pow(1.0 - gm_rng_uniform(r), 1.0 / a);
    double d = a - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double x, v;
        do {
            x = normal_draw(r);
            v = 1.0 + c * x;
        } while (v <= 0.0);
        v = v * v * v;
        double u = 1.0 - gm_rng_uniform(r);
        if (u < 1.0 - 0.0331 * x * x * x * x || log(u) < 0.5 * x * x + d * (1.0 - v + log(v))) return d * v;
    }
}

/* Reads the stratum under pixel (col, row) into '*st' (NaN on the strata raster's nodata). Returns 0, or -1
 * with 'err'. */
static int stratum_at(const sampler_t *s, uint32_t col, uint32_t row, double *st, char *err) {
    float v = NAN;
    if (point_values(s->spoints, col, row, &v, err) < 0) return -1;
    *st = v;
    return 0;
}

/* Picks among 'm' components (codes 'pick', shares 'share' summing to 'total') for the uniform 'u'; with
 * 'dirichlet' (a stream) the shares are first replaced by a draw of Dirichlet(shares in percent), in order. */
static uint32_t draw_among(const uint32_t *pick, double *share, uint32_t m, double total, double u, gm_rng_t *dirichlet) {
    if (dirichlet) {
        total = 0;
        for (uint32_t k = 0; k < m; k++) total += share[k] = share[k] > 0 ? gamma_draw(dirichlet, 100.0 * share[k]) : 0.0;
    }
    double acc = 0;
    for (uint32_t k = 0; k < m; k++) {
        acc += share[k] / total;
        if (u < acc) return pick[k];
    }
    return pick[m - 1];
}

/* The class of a point of polygon 'i' in stratum 'st' for the uniform 'u' (stratified composition), by the
 * allocation rule among the polygon's components of that stratum; GM_POLYS_NO_CLASS when it has none. */
static uint32_t allocate_stratum(const sampler_t *s, uint32_t i, double st, double u) {
    const uint32_t *codes;
    const double *cum;
    uint32_t n = gm_polys_composition(s->p, i, &codes, &cum), m = 0, pick[256];
    const long long *strata = gm_polys_component_strata(s->p, i);
    double share[256], total = 0, prev = 0;
    for (uint32_t k = 0; k < n; k++) {
        double sh = cum[k] - prev;
        prev = cum[k];
        if ((double)strata[k] != st || m == 256) continue;
        pick[m] = codes[k];
        share[m++] = sh;
        total += sh;
    }
    if (!m) return GM_POLYS_NO_CLASS;
    if (s->o->allocation == GM_ALLOC_RANDOM_MAPUNIT) return pick[(uint32_t)(u * m) < m ? (uint32_t)(u * m) : m - 1];
    gm_rng_t r; /* dirichlet: shares drawn once per polygon, stratum and run */
    if (s->o->allocation == GM_ALLOC_DIRICHLET) gm_rng_seed(&r, s->o->seed, UINT64_MAX - 1 - (uint64_t)(long long)st, i);
    return draw_among(pick, share, m, total, u, s->o->allocation == GM_ALLOC_DIRICHLET ? &r : NULL);
}

/* The class of a composition point of polygon 'i' for the uniform 'u', by the run's allocation rule. */
static uint32_t allocate(const sampler_t *s, uint32_t i, double u) {
    const uint32_t *codes;
    const double *cum;
    uint32_t n;
    switch (s->o->allocation) {
    case GM_ALLOC_RANDOM_MAPUNIT:
        n = gm_polys_composition(s->p, i, &codes, &cum);
        return codes[(uint32_t)(u * n) < n ? (uint32_t)(u * n) : n - 1];
    case GM_ALLOC_RANDOM_ALL:
        return s->all_codes[(uint32_t)(u * s->nall) < s->nall ? (uint32_t)(u * s->nall) : s->nall - 1];
    case GM_ALLOC_DIRICHLET: {
        /* shares drawn from Dirichlet(alpha = shares in percent) with the polygon's own stream of the run, the
         * same in every iteration (rdsmart draws them once per polygon for all its realisations) */
        n = gm_polys_composition(s->p, i, &codes, &cum);
        gm_rng_t r;
        gm_rng_seed(&r, s->o->seed, UINT64_MAX, i);
        double share[256], prev = 0;
        uint32_t m = n < 256 ? n : 256;
        for (uint32_t k = 0; k < m; k++) {
            share[k] = cum[k] - prev;
            prev = cum[k];
        }
        return draw_among(codes, share, m, 0, u, &r);
    }
    default: return gm_polys_draw_class(s->p, i, u);
    }
}

/* Cuts polygon 'i''s envelope to the raster extent into 'win' (xmin, ymin, xmax, ymax). Returns 0, or -1 when
 * the polygon is outside: no overlap, or only a shared edge (a polygon of zero width or height is not). */
static int polygon_window(const sampler_t *s, uint32_t i, double win[4]) {
    double env[4];
    gm_polys_envelope(s->p, i, env);
    win[0] = fmax(env[0], s->ext[0]);
    win[1] = fmax(env[1], s->ext[1]);
    win[2] = fmin(env[2], s->ext[2]);
    win[3] = fmin(env[3], s->ext[3]);
    int outside_x = win[0] > win[2] || (win[0] == win[2] && env[0] < env[2]);
    int outside_y = win[1] > win[3] || (win[1] == win[3] && env[1] < env[3]);
    return outside_x || outside_y ? -1 : 0;
}

/* Draws polygon 'i''s 'wanted' points into rows at, at+1, ... of 'out' (room for them is reserved), with its
 * own random stream. Returns how many points it kept, or -1 with 'err'. */
static int64_t sample_polygon(sampler_t *s, uint32_t i, uint32_t wanted, gm_samples_t *out, size_t at,
                              gm_sample_report_t *rep, char *err) {
    double win[4];
    polygon_window(s, i, win);
    double x0 = win[0], y0 = win[1], w = win[2] - win[0], h = win[3] - win[1];
    gm_rng_t rng;
    gm_rng_seed(&rng, s->o->seed, s->iteration, i);
    uint32_t code = gm_polys_code(s->p, i);
    float target = s->regression ? (float)gm_polys_target(s->p, i) : NAN;
    size_t j = at;
    int in_cells = 0; /* the envelope failed: the rest are drawn among the valid pixels */
    for (uint32_t k = 0; k < wanted; k++) {
        float *values = out->values + j * s->nbands;
        double x = 0, y = 0;
        int found = 0;
        for (uint32_t t = 0; t < s->max_tries && !found && !in_cells; t++) {
            rep->draws++;
            x = x0 + w * gm_rng_uniform(&rng);
            y = y0 + h * gm_rng_uniform(&rng);
            uint32_t col, row;
            if (!gm_polys_contains(s->p, i, x, y) || locate(&s->loc, x, y, &col, &row) < 0) continue;
            if (point_values(s->points, col, row, values, err) < 0) return -1;
            found = !has_nan(values, s->nbands);
            double st;
            if (found && s->spoints) { /* a point off the strata (nodata) is no point */
                if (stratum_at(s, col, row, &st, err) < 0) return -1;
                found = !isnan(st);
            }
        }
        if (!found) {
            if (!in_cells) rep->polygons_cells++;
            in_cells = 1;
            if (s->cells_of != i && polygon_cells(s, i, err) < 0) return -1;
            found = draw_in_cells(s, i, &rng, &x, &y, values, err);
            if (found < 0) return -1;
        }
        if (!found) {
            rep->points_short++;
            continue;
        }
        out->x[j] = x;
        out->y[j] = y;
        out->polygon[j] = i;
        if (s->spoints) { /* the class among the components of the stratum under the point */
            uint32_t col, row;
            double st = NAN;
            if (locate(&s->loc, x, y, &col, &row) < 0 || stratum_at(s, col, row, &st, err) < 0) return -1;
            out->code[j] = allocate_stratum(s, i, st, gm_rng_uniform(&rng));
            if (out->code[j] == GM_POLYS_NO_CLASS)
                return gm_err(err, "sampling: polygon %lld has no composition for stratum %g (a point at %.17g, %.17g)",
                              (long long)gm_polys_fid(s->p, i), st, x, y);
        } else {
            out->code[j] = s->composition ? allocate(s, i, gm_rng_uniform(&rng)) : code;
        }
        out->target[j] = target;
        j++;
    }
    rep->points += j - at;
    if (j == at) rep->polygons_failed++;
    if (j - at < wanted) {
        rep->polygons_short++;
        if (rep->nshort < GM_SAMPLE_SHORT_MAX)
            rep->shorts[rep->nshort++] = (gm_sample_short_t){.polygon = i, .wanted = wanted, .drawn = (uint32_t)(j - at)};
    }
    return (int64_t)(j - at);
}

/* Returns the index of cell (x, y) along the Hilbert curve that fills the 2^32 x 2^32 grid. */
static uint64_t hilbert_index(uint32_t x, uint32_t y) {
    uint64_t d = 0;
    for (uint32_t half = 1u << 31; half > 0; half >>= 1) {
        uint32_t rx = (x & half) != 0, ry = (y & half) != 0;
        d += (uint64_t)half * half * ((3 * rx) ^ ry);
        if (!ry) { /* rotate the quadrant */
            if (rx) {
                x = ~x;
                y = ~y;
            }
            uint32_t t = x;
            x = y;
            y = t;
        }
    }
    return d;
}

/* One polygon to sample: where it comes in the visiting order, and its rows in the table. */
typedef struct {
    uint64_t key;     /* Hilbert index of the natural block under the centre of its window */
    uint32_t polygon;
    uint32_t wanted;
    size_t slot;      /* first of its 'wanted' rows, counted from the table's first new row */
} visit_t;

/* Orders visits by key, then polygon index. */
static int visit_cmp(const void *a, const void *b) {
    const visit_t *u = a, *v = b;
    if (u->key != v->key) return u->key < v->key ? -1 : 1;
    return (u->polygon > v->polygon) - (u->polygon < v->polygon);
}

/* Orders short polygons by index. */
static int short_cmp(const void *a, const void *b) {
    const gm_sample_short_t *u = a, *v = b;
    return (u->polygon > v->polygon) - (u->polygon < v->polygon);
}

/* Orders visits by polygon index. */
static int visit_cmp_polygon(const void *a, const void *b) {
    const visit_t *u = a, *v = b;
    return (u->polygon > v->polygon) - (u->polygon < v->polygon);
}

/* Returns the Hilbert index of the natural block of 'grid' under the centre of window 'win' (clamped to the
 * grid), so that polygons visited in key order read blocks that lie close together. */
static uint64_t block_key(const sampler_t *s, const gm_grid_t *grid, const double win[4]) {
    double cx = 0.5 * (win[0] + win[2]), cy = 0.5 * (win[1] + win[3]);
    double px = s->loc.inv[0] + s->loc.inv[1] * cx + s->loc.inv[2] * cy;
    double py = s->loc.inv[3] + s->loc.inv[4] * cx + s->loc.inv[5] * cy;
    px = px >= 0 ? fmin(px, s->loc.xsize - 1) : 0; /* NaN lands on 0 */
    py = py >= 0 ? fmin(py, s->loc.ysize - 1) : 0;
    uint32_t bw = grid->block_w ? grid->block_w : 1, bh = grid->block_h ? grid->block_h : 1;
    return hilbert_index((uint32_t)px / bw, (uint32_t)py / bh);
}

/* Moves 'n' rows of 's' from row 'from' down to row 'to' (to <= from). */
static void move_rows(gm_samples_t *s, size_t to, size_t from, size_t n) {
    if (to == from || !n) return;
    memmove(s->x + to, s->x + from, n * sizeof *s->x);
    memmove(s->y + to, s->y + from, n * sizeof *s->y);
    memmove(s->polygon + to, s->polygon + from, n * sizeof *s->polygon);
    memmove(s->code + to, s->code + from, n * sizeof *s->code);
    memmove(s->target + to, s->target + from, n * sizeof *s->target);
    memmove(s->values + to * s->nbands, s->values + from * s->nbands, n * s->nbands * sizeof *s->values);
}

int gm_sample_iterations(const gm_polys_t *p, gm_stack_t *stack, const gm_sample_options_t *o,
                         const uint32_t *iterations, uint32_t k, gm_samples_t *const *outs, gm_sample_report_t *reps,
                         char *err) {
    assert(p && stack && o && iterations && outs && reps);
    for (uint32_t j = 0; j < k; j++) memset(&reps[j], 0, sizeof reps[j]);
    if (!o->per_polygon && !(o->density_km2 > 0) && !o->min_per_polygon)
        return gm_err(err, "sampling: give a number of points per polygon or a density per km²");
    if (!o->per_polygon && (!isfinite(o->density_km2) || o->density_km2 < 0))
        return gm_err(err, "sampling: density %g per km² is not a positive number", o->density_km2);
    points_t points, spts;
    points_init(&points, stack);
    if (o->strata) {
        if (gm_stack_nbands(o->strata) != 1)
            return gm_err(err, "sampling: the strata raster has %u bands, not one", gm_stack_nbands(o->strata));
        points_init(&spts, o->strata);
    }
    sampler_t s = {.p = p, .stack = stack, .points = &points, .o = o, .nbands = gm_stack_nbands(stack),
                   .cells_of = UINT32_MAX, .spoints = o->strata ? &spts : NULL};
    for (uint32_t j = 0; j < k; j++)
        if (outs[j]->nbands != s.nbands)
            return gm_err(err, "sampling: the sample table has %u bands, the stack %u", outs[j]->nbands, s.nbands);
    const gm_grid_t *grid = gm_stack_grid(stack);
    if (locator_init(&s.loc, grid) < 0) return gm_err(err, "sampling: the rasters' geotransform cannot be inverted");
    memcpy(s.gt, grid->gt, sizeof s.gt);
    grid_extent(grid, s.ext);
    s.pixel_area = fabs(grid->gt[1] * grid->gt[5] - grid->gt[2] * grid->gt[4]);
    s.max_tries = o->max_tries ? o->max_tries : GM_SAMPLE_DEFAULT_TRIES;
    s.composition = gm_polys_is_composition(p);
    if (s.composition && o->allocation == GM_ALLOC_RANDOM_ALL) { /* the composition's classes */
        uint32_t nc = gm_polys_nclass(p);
        uint8_t *in = calloc(nc + 1, 1);
        s.all_codes = malloc(((size_t)nc + 1) * sizeof *s.all_codes);
        if (!in || !s.all_codes) {
            free(in);
            free(s.all_codes);
            return gm_err(err, "sampling: out of memory");
        }
        for (uint32_t i = 0; i < gm_polys_count(p); i++) {
            const uint32_t *codes;
            const double *cum;
            uint32_t n = gm_polys_composition(p, i, &codes, &cum);
            for (uint32_t q = 0; q < n; q++) in[codes[q]] = 1;
        }
        for (uint32_t c = 0; c < nc; c++)
            if (in[c]) s.all_codes[s.nall++] = c;
        free(in);
    }
    s.regression = gm_polys_is_regression(p);
    /* Each (iteration, polygon) has its own random stream, so the order polygons are drawn in changes nothing
     * but which blocks GDAL's cache holds: they are drawn in the order of their blocks along a Hilbert curve,
     * every iteration of the batch in turn while the polygon's blocks are in the cache (each block is then
     * read about once for the whole batch), and their points are put back in polygon order. */
    uint32_t np = gm_polys_count(p), nvisit = 0;
    visit_t *visits = malloc((size_t)np * sizeof *visits);
    size_t *base = malloc((k ? k : 1) * sizeof *base);
    uint32_t *got = malloc(((size_t)np * k + 1) * sizeof *got); /* points kept, per polygon and iteration */
    s.scratch = malloc(((size_t)s.nbands + 1) * sizeof *s.scratch);
    int rc = -1;
    if (!visits || !base || !got || !s.scratch) {
        gm_err(err, "sampling: out of memory for %u polygons", np);
        goto out_free;
    }
    size_t rows = 0;
    gm_sample_report_t first;
    memset(&first, 0, sizeof first);
    for (uint32_t i = 0; i < np; i++) {
        double win[4];
        if (polygon_window(&s, i, win) < 0) {
            first.polygons_outside++;
            continue;
        }
        if (gm_polys_area(p, i) < s.pixel_area) first.polygons_small++;
        uint32_t wanted = gm_sample_wanted(p, i, o);
        if (!wanted) continue;
        visits[nvisit++] = (visit_t){.key = block_key(&s, grid, win), .polygon = i, .wanted = wanted, .slot = rows};
        rows += wanted;
    }
    for (uint32_t j = 0; j < k; j++) {
        reps[j].polygons_outside = first.polygons_outside;
        reps[j].polygons_small = first.polygons_small;
        base[j] = outs[j]->n;
        if (gm_samples_reserve(outs[j], base[j] + rows, err) < 0) goto out_free;
    }
    qsort(visits, nvisit, sizeof *visits, visit_cmp);
    for (uint32_t v = 0; v < nvisit; v++)
        for (uint32_t j = 0; j < k; j++) {
            s.iteration = iterations[j];
            int64_t n = sample_polygon(&s, visits[v].polygon, visits[v].wanted, outs[j], base[j] + visits[v].slot,
                                       &reps[j], err);
            if (n < 0) goto out_free;
            got[(size_t)visits[v].polygon * k + j] = (uint32_t)n;
        }
    qsort(visits, nvisit, sizeof *visits, visit_cmp_polygon);
    for (uint32_t j = 0; j < k; j++)
        for (uint32_t v = 0; v < nvisit; v++) { /* slots are in polygon order: rows only move down */
            size_t n = got[(size_t)visits[v].polygon * k + j];
            move_rows(outs[j], outs[j]->n, base[j] + visits[v].slot, n);
            outs[j]->n += n;
        }
    for (uint32_t j = 0; j < k; j++) /* the short polygons by index, whatever the visiting order */
        qsort(reps[j].shorts, reps[j].nshort, sizeof *reps[j].shorts, short_cmp);
    rc = 0;
out_free:
    points_free(&points);
    if (o->strata) points_free(&spts);
    free(s.cells);
    free(s.scratch);
    free(s.all_codes);
    free(visits);
    free(base);
    free(got);
    return rc;
}

int gm_sample_iteration(const gm_polys_t *p, gm_stack_t *stack, const gm_sample_options_t *o, uint32_t iteration,
                        gm_samples_t *out, gm_sample_report_t *rep, char *err) {
    return gm_sample_iterations(p, stack, o, &iteration, 1, &out, rep, err);
}

/* ---- extraction ---- */

/* A pixel to read, and the row of the caller's table its values go to. */
typedef struct {
    uint64_t key; /* Hilbert index of its natural block */
    size_t row_out;
    uint32_t col, row;
} pixel_t;

/* Orders pixels by key, then output row. */
static int pixel_cmp(const void *a, const void *b) {
    const pixel_t *u = a, *v = b;
    if (u->key != v->key) return u->key < v->key ? -1 : 1;
    return (u->row_out > v->row_out) - (u->row_out < v->row_out);
}

/* Returns the pixel (col, row) to read into row 'row_out', keyed by its block of 'grid'. */
static pixel_t pixel_at(const gm_grid_t *grid, uint32_t col, uint32_t row, size_t row_out) {
    uint32_t bw = grid->block_w ? grid->block_w : 1, bh = grid->block_h ? grid->block_h : 1;
    return (pixel_t){.key = hilbert_index(col / bw, row / bh), .row_out = row_out, .col = col, .row = row};
}

/* Reads the 'n' pixels of 'px' (reordered) into their rows of 'values' (nbands floats a row), block after
 * block along a Hilbert curve, so that GDAL's cache reads each block about once whatever the order of the
 * points. Returns 0, or -1 with 'err'. */
static int read_pixels(gm_stack_t *stack, pixel_t *px, size_t n, float *values, char *err) {
    uint32_t nbands = gm_stack_nbands(stack);
    qsort(px, n, sizeof *px, pixel_cmp);
    for (size_t k = 0; k < n; k++)
        if (gm_stack_read(stack, px[k].col, px[k].row, 1, 1, values + px[k].row_out * nbands, err) < 0) return -1;
    return 0;
}

int gm_sample_extract_points(gm_stack_t *stack, const double *x, const double *y, size_t n, float *values,
                             char *err) {
    uint32_t nbands = gm_stack_nbands(stack);
    const gm_grid_t *grid = gm_stack_grid(stack);
    locator_t loc;
    int ok = locator_init(&loc, grid) == 0;
    pixel_t *px = malloc((n ? n : 1) * sizeof *px);
    if (!px) return gm_err(err, "out of memory for %zu points", n);
    size_t npx = 0;
    for (size_t k = 0; k < n; k++) {
        uint32_t col, row;
        if (ok && locate(&loc, x[k], y[k], &col, &row) == 0) px[npx++] = pixel_at(grid, col, row, k);
        else
            for (uint32_t b = 0; b < nbands; b++) values[k * nbands + b] = NAN;
    }
    int rc = read_pixels(stack, px, npx, values, err);
    free(px);
    return rc;
}

int gm_sample_read_observations(const char *path_layer, const char *field, const char *src_crs, const gm_polys_t *p,
                                const char *dst_wkt, gm_stack_t *stack, gm_samples_t *out, gm_sample_obs_report_t *rep,
                                char *err) {
    assert(path_layer && p && stack && out && rep);
    memset(rep, 0, sizeof *rep);
    uint32_t nbands = gm_stack_nbands(stack);
    if (out->nbands != nbands)
        return gm_err(err, "%s: the sample table has %u bands, the stack %u", path_layer, out->nbands, nbands);
    gm_polys_points_t pts;
    memset(&pts, 0, sizeof pts);
    if (gm_polys_read_points(p, path_layer, field, src_crs, dst_wkt, &pts, err) < 0) return -1;
    int rc = -1;
    rep->features = pts.features;
    rep->skipped_no_value = pts.skipped_no_value;
    const gm_grid_t *grid = gm_stack_grid(stack);
    locator_t loc;
    pixel_t *px = NULL;
    float *values = NULL;
    if (locator_init(&loc, grid) < 0) {
        gm_err(err, "%s: the rasters' geotransform cannot be inverted", path_layer);
        goto out_free;
    }
    px = malloc((pts.n ? pts.n : 1) * sizeof *px);
    values = malloc((pts.n ? pts.n : 1) * nbands * sizeof *values);
    if (!px || !values) {
        gm_err(err, "%s: out of memory for %zu points", path_layer, pts.n);
        goto out_free;
    }
    /* read every point on the grid in block order, then keep them in layer order */
    size_t npx = 0;
    for (size_t k = 0; k < pts.n; k++) {
        uint32_t col, row;
        values[k * nbands] = NAN; /* off the grid: dropped below */
        if (locate(&loc, pts.x[k], pts.y[k], &col, &row) == 0) px[npx++] = pixel_at(grid, col, row, k);
    }
    if (read_pixels(stack, px, npx, values, err) < 0 || gm_samples_reserve(out, out->n + pts.n, err) < 0)
        goto out_free;
    for (size_t k = 0; k < pts.n; k++) {
        if (has_nan(values + k * nbands, nbands)) {
            rep->dropped++;
            continue;
        }
        size_t j = out->n++;
        out->x[j] = pts.x[k];
        out->y[j] = pts.y[k];
        out->polygon[j] = GM_SAMPLE_NO_POLYGON;
        out->code[j] = pts.code[k];
        out->target[j] = pts.target[k];
        memcpy(out->values + j * nbands, values + k * nbands, nbands * sizeof *values);
        rep->kept++;
    }
    rc = 0;
out_free:
    free(px);
    free(values);
    gm_polys_points_free(&pts);
    return rc;
}

/* ---- CSV ---- */

int gm_samples_write_csv(const gm_samples_t *s, const gm_polys_t *p, uint32_t iteration,
                         const char *const *band_names, const char *path, char *err) {
    int regression = gm_polys_is_regression(p);
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.part", path) >= (int)sizeof tmp) return gm_err(err, "%s: path too long", path);
    FILE *f = fopen(tmp, "w"); /* written under a temporary name: a table with its final name is whole */
    if (!f) return gm_err(err, "%s: cannot create: %s", tmp, strerror(errno));
    setvbuf(f, NULL, _IOFBF, 1 << 16);
    fputs(regression ? "iteration,polygon,x,y,target" : "iteration,polygon,x,y,class,code", f);
    for (uint32_t b = 0; b < s->nbands; b++) {
        fputc(',', f);
        if (band_names) gm_polys_put_csv_field(f, band_names[b]);
        else fprintf(f, "b%u", b + 1);
    }
    fputc('\n', f);
    /* Each row is put together in 'line' with gm_fmt (printf's bytes, faster) and written in one go; the
     * class name, of any length, goes straight to the file. A row holds two integers (32 bytes with their
     * commas), then x, y, the target and the values, each at most GM_FMT_G_LEN with its comma or NUL. */
    char *line = malloc(32 + (size_t)(3 + s->nbands) * GM_FMT_G_LEN + 1);
    if (!line) {
        fclose(f);
        unlink(tmp);
        return gm_err(err, "%s: out of memory", path);
    }
    for (size_t i = 0; i < s->n; i++) {
        char *b = line;
        b += gm_fmt_u64(b, iteration);
        *b++ = ',';
        const char *id = s->polygon[i] < gm_polys_count(p) ? gm_polys_id(p, s->polygon[i]) : NULL;
        if (id) { /* --id-field's value names the polygon, as in the composition: any length, to the file */
            fwrite(line, 1, (size_t)(b - line), f);
            gm_polys_put_csv_field(f, id);
            b = line;
        } else if (s->polygon[i] < gm_polys_count(p)) {
            b += gm_fmt_i64(b, gm_polys_fid(p, s->polygon[i]));
        } else {
            b += gm_fmt_i64(b, -1); /* an observation */
        }
        *b++ = ',';
        b += gm_fmt_g(b, s->x[i], 17);
        *b++ = ',';
        b += gm_fmt_g(b, s->y[i], 17);
        *b++ = ',';
        if (regression) {
            if (!isnan(s->target[i])) b += gm_fmt_g(b, s->target[i], 9);
        } else {
            fwrite(line, 1, (size_t)(b - line), f);
            const char *name = gm_polys_class_name(p, s->code[i]);
            if (name) gm_polys_put_csv_field(f, name);
            b = line;
            *b++ = ',';
            b += gm_fmt_u64(b, s->code[i]);
        }
        const float *v = s->values + i * s->nbands;
        for (uint32_t k = 0; k < s->nbands; k++) {
            *b++ = ',';
            if (!isnan(v[k])) b += gm_fmt_g(b, v[k], 9);
        }
        *b++ = '\n';
        fwrite(line, 1, (size_t)(b - line), f);
    }
    free(line);
    int bad = ferror(f) ? errno : 0;
    if (fclose(f) != 0 && !bad) bad = errno;
    if (bad || rename(tmp, path) != 0) {
        gm_err(err, "%s: cannot write: %s", path, strerror(bad ? bad : errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}
