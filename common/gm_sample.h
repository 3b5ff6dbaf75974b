/* gm_sample.h -- DSMART sampling: random points strictly inside each polygon of a map, with the covariate
 * values of the pixel under each point, and the extraction of given points (observations).
 *
 * Every (seed, iteration, polygon) has its own random stream (gm_rng.h), so an iteration's points do not
 * depend on which iterations were computed before it, nor in which order. Polygons are drawn, and given
 * points read, in the order of their blocks along a Hilbert curve, so that GDAL's block cache reads each
 * block about once per iteration; results come back in polygon (or the caller's) order. Sampled points take
 * their values from windows of every band read whole with gm_stack_read and kept while points fall in them
 * (pixel by pixel on warped stacks), given points pixel by pixel; either way they equal what
 * `gdallocationinfo -valonly -geoloc RASTER X Y` prints: the pixel is floor() of the inverse geotransform
 * applied to (X, Y). A gm_stack_t serves one thread; a gm_polys_t may be shared. */
#ifndef GM_SAMPLE_H
#define GM_SAMPLE_H

#include <stddef.h>
#include <stdint.h>

#include "gm_polys.h"
#include "gm_stack.h"

#define GM_SAMPLE_NO_POLYGON UINT32_MAX  /* polygon index of an observation */
#define GM_SAMPLE_DEFAULT_TRIES 100u     /* draws in the envelope per wanted point when max_tries is 0 */
#define GM_SAMPLE_SHORT_MAX 64           /* polygons short of points listed by one report */

/* A table of sample points and their covariates, grown by the functions below. The caller owns it and may
 * read every field; 'values' is n rows of nbands float32 (NaN = nodata, only from extraction). */
typedef struct {
    size_t n, cap;
    uint32_t nbands;
    double *x, *y;     /* in the rasters' CRS */
    uint32_t *polygon; /* index in the map (gm_polys_fid gives the FID), or GM_SAMPLE_NO_POLYGON */
    uint32_t *code;    /* class code, or GM_POLYS_NO_CLASS for regression */
    float *target;     /* regression target, or NaN */
    float *values;     /* n * nbands, row-major */
} gm_samples_t;

/* How a composition's point gets its class (rdsmart's method.allocate). */
typedef enum {
    GM_ALLOC_WEIGHTED = 0, /* drawn with the polygon's shares */
    GM_ALLOC_DIRICHLET,    /* drawn with shares drawn once per polygon and run from Dirichlet(shares in percent),
                              as rdsmart's "weighted" */
    GM_ALLOC_RANDOM_MAPUNIT, /* uniformly among the polygon's classes */
    GM_ALLOC_RANDOM_ALL    /* uniformly among every class of the composition */
} gm_sample_allocation_t;

/* How many points to draw in each polygon. */
typedef struct {
    uint32_t per_polygon;     /* fixed count per polygon; 0 = use density_km2 */
    double density_km2;       /* points per km² of polygon area (area in CRS units², taken as m²) */
    uint32_t min_per_polygon; /* with a density: at least this many */
    uint32_t max_tries;       /* draws in the envelope per wanted point before drawing among the polygon's
                                 valid pixels instead; 0 = GM_SAMPLE_DEFAULT_TRIES */
    uint64_t seed;
    gm_sample_allocation_t allocation; /* composition mode */
    gm_stack_t *strata;       /* a composition with a stratum column: the one-band strata raster on the
                                 covariates' grid (its own stack for this thread); a point's class is drawn
                                 among its polygon's components of the stratum under it, and a point on a
                                 strata nodata pixel is not drawn */
} gm_sample_options_t;

/* A polygon that got fewer points than it wanted in one iteration: it has no pixel with valid covariates
 * left to draw from (none, or none that the polygon meets). */
typedef struct {
    uint32_t polygon;          /* index in the map */
    uint32_t wanted, drawn;
} gm_sample_short_t;

/* What one gm_sample_iteration call did. */
typedef struct {
    uint32_t polygons_outside; /* envelope does not meet the raster extent: no points */
    uint32_t polygons_small;   /* area below one pixel's area: sampled anyway */
    uint32_t polygons_failed;  /* points wanted but none could be drawn */
    uint32_t polygons_short;   /* polygons with fewer points than wanted (polygons_failed among them) */
    uint32_t polygons_cells;   /* polygons drawn among their valid pixels once max_tries envelope draws failed */
    uint64_t points;           /* points added */
    uint64_t points_short;     /* wanted points that could not be drawn */
    uint64_t draws;            /* candidate points drawn */
    uint32_t nshort;           /* entries of 'shorts': short polygons (at most GM_SAMPLE_SHORT_MAX), by index */
    gm_sample_short_t shorts[GM_SAMPLE_SHORT_MAX];
} gm_sample_report_t;

/* What gm_sample_read_observations read, kept and dropped. */
typedef struct {
    uint64_t features;         /* features in the layer */
    uint64_t skipped_no_value; /* NULL or empty value or geometry */
    uint64_t dropped;          /* outside the raster or on nodata in some band */
    uint64_t kept;             /* points added */
} gm_sample_obs_report_t;

/* Returns an empty table for points with 'nbands' covariates, or NULL when out of memory. The caller owns it. */
gm_samples_t *gm_samples_new(uint32_t nbands);
/* Empties the table, keeping its memory. */
void gm_samples_clear(gm_samples_t *self);
/* Makes room for at least 'n' points in all. Returns 0, or -1 with 'err'. */
int gm_samples_reserve(gm_samples_t *self, size_t n, char *err);
/* Appends one point with its nbands 'values'. Returns 0, or -1 with 'err'. */
int gm_samples_append(gm_samples_t *self, double x, double y, uint32_t polygon, uint32_t code, float target,
                      const float *values, char *err);
/* Frees the table; takes NULL and sets the caller's pointer to NULL. */
void gm_samples_destroy(gm_samples_t **self_p);

/* Returns how many points polygon 'i' of 'p' wants under 'o': per_polygon if set, else
 * max(min_per_polygon, round(density_km2 * area / 1e6)). */
uint32_t gm_sample_wanted(const gm_polys_t *p, uint32_t i, const gm_sample_options_t *o);
/* Finds the pixel containing (x, y) on 'grid' as gdallocationinfo -geoloc does. Returns 0 with 'col' and
 * 'row', or -1 when the point is off the grid (or the geotransform cannot be inverted). */
int gm_sample_pixel(const gm_grid_t *grid, double x, double y, uint32_t *col, uint32_t *row);

/* Appends iteration 'iteration''s points to 'out' (whose nbands must match the stack) and fills 'rep'.
 * For each polygon i in order, with the stream gm_rng_seed(seed, iteration, i): draws uniform points in the
 * polygon's envelope cut to the raster extent and keeps those inside the polygon (so the kept points are
 * uniform in it) whose pixel is on the raster with no NaN band. When max_tries draws in a row find no such
 * point (a ragged polygon, mostly on nodata), the polygon's remaining points that iteration are drawn among
 * the pixels with valid covariates that it meets (at their centre or a corner): a pixel uniformly, then a
 * uniform point in it until one is inside the polygon, or the pixel's centre when that is inside. So every
 * polygon that meets a valid pixel gets exactly its count; the others are listed in rep->shorts. Class: the polygon's (plain), or drawn from its composition with one more uniform of the same
 * stream; regression: the polygon's target. Returns 0, or -1 with 'err' (bad options, read errors). */
int gm_sample_iteration(const gm_polys_t *p, gm_stack_t *stack, const gm_sample_options_t *o, uint32_t iteration,
                        gm_samples_t *out, gm_sample_report_t *rep, char *err);
/* Samples the 'k' iterations iterations[0..k-1] in one pass over the polygons, appending iteration
 * iterations[j]'s points to outs[j] and filling reps[j]: the same points as k calls of gm_sample_iteration,
 * with each block read about once for all of them instead of once per iteration. Returns 0, or -1 with 'err'. */
int gm_sample_iterations(const gm_polys_t *p, gm_stack_t *stack, const gm_sample_options_t *o,
                         const uint32_t *iterations, uint32_t k, gm_samples_t *const *outs, gm_sample_report_t *reps,
                         char *err);
/* Reads the covariates at 'n' given points into 'values' (n * nbands, row-major); rows of points off the
 * raster are NaN, and bands that are nodata there are NaN. Returns 0, or -1 with 'err' (read errors). */
int gm_sample_extract_points(gm_stack_t *stack, const double *x, const double *y, size_t n, float *values,
                             char *err);
/* Reads observations: the Point layer 'path_layer' ("file" or "file:layer", or a CSV with columns x and y)
 * with the class (or, when 'p' is a regression map, numeric target) in 'field' (NULL: soil_class, else
 * class), reprojected to 'dst_wkt' (from 'src_crs' when the layer names no CRS), with their covariates. Classes
 * must be in p's class table (an unknown one is an error naming it). Points off the raster or on nodata are
 * dropped and counted in 'rep'. Appends to 'out' with polygon GM_SAMPLE_NO_POLYGON. Returns 0, or -1 with
 * 'err'. */
int gm_sample_read_observations(const char *path_layer, const char *field, const char *src_crs, const gm_polys_t *p,
                                const char *dst_wkt,
                                gm_stack_t *stack, gm_samples_t *out, gm_sample_obs_report_t *rep, char *err);

/* Writes 's' to the CSV file 'path': header "iteration,polygon,x,y,class,code,<bands>" (regression:
 * "iteration,polygon,x,y,target,<bands>"); polygon is the feature's FID (-1 for observations), x and y
 * are printed with %.17g, target and values with %.9g (exact float32 round trip; NaN as an empty field),
 * class is the class name, quoted when it holds a comma, quote or line break. 'band_names' holds nbands
 * names, or is NULL for b1, b2, ... Returns 0, or -1 with 'err'. */
int gm_samples_write_csv(const gm_samples_t *s, const gm_polys_t *p, uint32_t iteration,
                         const char *const *band_names, const char *path, char *err);

#endif
