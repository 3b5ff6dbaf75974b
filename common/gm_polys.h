/* gm_polys.h -- the polygon map sampled by DSMART: map units read from any OGR vector layer, each with a
 * class, a class composition or a numeric target, stored as flat rings, each polygon's edges indexed by
 * horizontal slabs for a fast point-in-polygon test.
 *
 * A map is opened once, reprojected to the rasters' CRS, and is read-only afterwards: several threads may
 * query one gm_polys_t at the same time. Polygons are numbered 0..count-1 in layer order, after the
 * features that are skipped (see gm_polys_report_t). This module also reads the point layers of
 * observations, so every OGR call lives here. */
#ifndef GM_POLYS_H
#define GM_POLYS_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#define GM_POLYS_NO_CLASS UINT32_MAX /* "no class code": regression, composition, unknown class name */
#define GM_POLYS_WARN_MAX 20         /* invalid features named one per line by gm_polys_open */

/* How to read a polygon map. Exactly one of class_field, target_field, composition and composition_fields
 * is set. */
typedef struct {
    const char *path;         /* "map.gpkg" or "map.gpkg:layer": split at the last ':' only if the part before
                                 it exists as a file; otherwise the whole string is the path (first layer) */
    const char *class_field;  /* plain mode: the class field (string or numeric; values compared as text,
                                 integer 3 -> "3") */
    const char *target_field; /* regression: the numeric target field (a text field must hold numbers) */
    const char *composition;  /* composition mode: CSV with a header and the columns polygon,class,proportion
                                 (any order, names case-insensitive); several rows per polygon; proportions
                                 are normalised per polygon */
    const char *composition_fields; /* composition mode: "CLASS1,SHARE1,CLASS2,SHARE2,...": the composition in
                                       the polygons' own fields, pairs of a class field and its share (percent
                                       or proportion); an empty class or a 0 share is no component */
    const char *id_field;     /* composition: the field matching the CSV's polygon column; NULL = the FID */
    const char *const *extra_classes; /* classes added to the map's (the observations'), nextra_classes of them */
    uint32_t nextra_classes;
} gm_polys_options_t;

/* What gm_polys_open read and left out. */
typedef struct {
    uint64_t features;               /* features in the layer */
    uint64_t skipped_no_value;       /* NULL or empty class, target or id field */
    uint64_t skipped_no_geometry;    /* NULL or empty geometry */
    uint64_t skipped_no_composition; /* composition mode: no CSV row names the polygon */
    uint64_t repaired_invalid;       /* not a valid polygon (OGR_G_IsValid): repaired with OGR_G_MakeValid */
    uint64_t skipped_invalid;        /* not a valid polygon, and MakeValid failed or left no polygonal area */
} gm_polys_report_t;

/* Points of observations read from a vector layer (see gm_polys_read_points); arrays of 'n' entries,
 * owned by the struct and freed with gm_polys_points_free. */
typedef struct {
    size_t n;
    double *x, *y;    /* in the CRS asked for */
    uint32_t *code;   /* class code in the map's class table (classification) */
    float *target;    /* target value (regression) */
    int64_t *fid;     /* feature id of each point */
    uint64_t features;         /* features in the layer */
    uint64_t skipped_no_value; /* NULL or empty class/target, or NULL or empty geometry */
} gm_polys_points_t;

typedef struct gm_polys gm_polys_t;

/* Opens the polygon map described by 'o', reprojecting every geometry to 'dst_wkt' (the rasters' CRS, any
 * form OSRSetFromUserInput takes; "" or NULL = no reprojection; a layer without a CRS is taken as already in
 * it). Accepts Polygon and MultiPolygon features (with Z or M, which are dropped); any other geometry type is
 * an error naming the file, the FID and the type. A feature that is not a valid polygon (self-intersecting
 * rings, ...; OGR_G_IsValid, in the layer's CRS, once open rings are closed) is repaired with OGR_G_MakeValid,
 * keeping only the polygonal parts of what it returns, and logs one warning naming the file, the FID, the map
 * unit (composition with an id field) or class (plain mode) and GEOS's reason; one whose repair fails or leaves
 * no area is skipped with a warning. Both are counted in the report; past the first GM_POLYS_WARN_MAX such
 * warnings, one summary line gives the totals. Without GEOS in GDAL, geometries are taken as they are (one
 * warning says so). Errors also for: an empty layer, a missing field (the message lists the fields that
 * exist), a malformed composition CSV (file and line), a CSV row naming a polygon id that is not in the layer,
 * and a map where no feature is usable. Returns NULL with 'err'. The caller owns the map. */
gm_polys_t *gm_polys_open(const gm_polys_options_t *o, const char *dst_wkt, char *err);
/* Frees the map; takes NULL and sets the caller's pointer to NULL. */
void gm_polys_destroy(gm_polys_t **self_p);

/* Returns "FILE:LAYER": the map file's real path and the layer read, the same whether the layer was named or
 * taken as the first (what identifies the map in a run). */
const char *gm_polys_source(const gm_polys_t *self);
/* Returns the map file's real path. */
const char *gm_polys_file(const gm_polys_t *self);
/* Returns the number of polygons kept. */
uint32_t gm_polys_count(const gm_polys_t *self);
/* Returns what was read and skipped (valid while the map is open). */
const gm_polys_report_t *gm_polys_report(const gm_polys_t *self);
/* Returns 1 if the map holds a regression target, 0 if classes. */
int gm_polys_is_regression(const gm_polys_t *self);
/* Returns 1 if classes come from a composition CSV, 0 otherwise. */
int gm_polys_is_composition(const gm_polys_t *self);

/* Returns the number of classes (0 for regression). Class codes are 0..nclass-1, in strcmp order of the
 * class names found (plain mode: in the field; composition: in the CSV). */
uint32_t gm_polys_nclass(const gm_polys_t *self);
/* Returns the name of class 'code' (owned by the map), or NULL if there is no such code. */
const char *gm_polys_class_name(const gm_polys_t *self, uint32_t code);
/* Returns the code of the class called 'name', or GM_POLYS_NO_CLASS. */
uint32_t gm_polys_class_code(const gm_polys_t *self, const char *name);
/* Writes the class table to 'path' as CSV: "code,class" then one row per class (names quoted when they
 * hold a comma, quote or line break). Returns 0, or -1 with 'err'. */
int gm_polys_write_class_table(const gm_polys_t *self, const char *path, char *err);
/* Writes the class table of 'n' names (code i is names[i]) as gm_polys_write_class_table does. Returns 0, or
 * -1 with 'err'. */
int gm_polys_write_class_names(const char *const *names, uint32_t n, const char *path, char *err);
/* Reads a class table written by gm_polys_write_class_table into '*names' (malloc'ed, '*n' names then NULL;
 * each malloc'ed). Returns 0, or -1 with 'err' naming the file and row. */
int gm_polys_read_class_table(const char *path, char ***names, uint32_t *n, char *err);

/* Returns the feature id of polygon 'i'. */
int64_t gm_polys_fid(const gm_polys_t *self, uint32_t i);
/* Returns polygon 'i''s value of the id field (composition with --id-field), or NULL when the FID names it. */
const char *gm_polys_id(const gm_polys_t *self, uint32_t i);
/* Returns the area of polygon 'i' in squared CRS units (OGR_G_Area after repair and reprojection). */
double gm_polys_area(const gm_polys_t *self, uint32_t i);
/* Stores the envelope of polygon 'i' in 'env': xmin, ymin, xmax, ymax. */
void gm_polys_envelope(const gm_polys_t *self, uint32_t i, double env[4]);
/* Returns 1 if (x, y) lies inside an odd number of polygon 'i''s rings (so inside its outer rings and
 * outside its holes, for every part of a multipolygon), 0 otherwise. */
int gm_polys_contains(const gm_polys_t *self, uint32_t i, double x, double y);
/* Returns the class code of polygon 'i' in plain mode, GM_POLYS_NO_CLASS otherwise. */
uint32_t gm_polys_code(const gm_polys_t *self, uint32_t i);
/* Returns the target value of polygon 'i' in regression mode, NaN otherwise. */
double gm_polys_target(const gm_polys_t *self, uint32_t i);
/* Returns the class of polygon 'i' for a uniform draw 'u' in [0, 1): in composition mode the first class
 * whose cumulative probability exceeds 'u', in plain mode the polygon's class, GM_POLYS_NO_CLASS for
 * regression. */
uint32_t gm_polys_draw_class(const gm_polys_t *self, uint32_t i, double u);
/* Composition mode: points 'codes' and 'cumulative' at polygon 'i''s classes and their cumulative normalised
 * probabilities (the last is 1), in CSV order, and returns how many there are; 0 in other modes. */
uint32_t gm_polys_composition(const gm_polys_t *self, uint32_t i, const uint32_t **codes,
                              const double **cumulative);

/* Composition with a stratum column (rdsmart's stratified composition: poly,mapunit,stratum,soil_class,
 * proportion): the stratum of each of polygon 'i''s components, in gm_polys_composition's order; NULL when
 * the composition has no stratum column. */
const long long *gm_polys_component_strata(const gm_polys_t *self, uint32_t i);
/* Returns 1 when the composition has a stratum column, else 0. */
int gm_polys_has_strata(const gm_polys_t *self);

/* Reads the Point features of the vector layer 'path_layer' (same "file:layer" rule as the map; a .csv has
 * its points in columns x and y, or easting/northing, lon/lat), reprojected to 'dst_wkt' (from 'src_crs' when
 * the layer names no CRS, as a CSV; NULL: taken as in it), with the value of 'field' (NULL: soil_class, else
 * class): a class name that must be in the map's class table (an unknown class is an error naming it and the
 * FID), or a number when the map is a regression. Features whose value or geometry is NULL or empty are
 * skipped and counted. Any other geometry type, a missing field or an empty layer is an error. Fills 'out'
 * (which it first empties). Returns 0, or -1 with 'err'. */
int gm_polys_read_points(const gm_polys_t *self, const char *path_layer, const char *field, const char *src_crs,
                         const char *dst_wkt, gm_polys_points_t *out, char *err);
/* Reads the distinct non-empty values of 'field' (NULL: soil_class, else class) of the points 'path_layer',
 * in file order, into '*names' (malloc'ed, '*n' of them, then NULL). Returns 0, or -1 with 'err'. */
int gm_polys_point_classes(const char *path_layer, const char *field, char ***names, uint32_t *n, char *err);
/* Writes 's' to 'f' as one CSV field, quoted when it holds a comma, quote or line break. */
void gm_polys_put_csv_field(FILE *f, const char *s);
/* Frees the arrays of 'pts' and zeroes it; takes NULL. */
void gm_polys_points_free(gm_polys_points_t *pts);

#endif
