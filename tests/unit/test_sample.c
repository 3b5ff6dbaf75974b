/* test_sample.c -- unit tests of the random streams (gm_rng.h), the polygon map (gm_polys.h) and DSMART
 * sampling and extraction (gm_sample.h).
 *
 * The group set-up writes every fixture into a temporary folder with the GDAL/OGR C API:
 *   cov.tif   100 x 100 Float32, 2 bands, origin (500000, 4200000), 10 m pixels, EPSG:32633;
 *             band 1 = col + 1000 * row, nodata -9999 on the patch cols 45..54 x rows 45..54;
 *             band 2 = 0.5 * row - col
 *   cov2.tif  same grid, Int16, 1 band = 3 * col - 2 * row
 *   odd.tif   50 x 50 Float32 = col + 100 * row, origin (500000.3, 4200000.7), 0.1 m pixels (for the
 *             gdallocationinfo oracle: the edges are not exact binary fractions)
 *   map.gpkg  layer "units" (EPSG:32633), fields soil, pid, depth, code_int; the features below (FIDs 1..10)
 *             in raster coordinates; "units4326" the same polygons 1..8 in EPSG:4326 (lon/lat); "lines"
 *             a polygon then a line string; "empty" no features; "slivers" a sliver and the nodata square
 *   obs.gpkg  point layers "obs", "obs4326", "obsbad"
 *   comp*.csv compositions, good and bad
 * Every expectation is worked out by hand from these definitions, in the comments beside it. */
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <cpl_conv.h>
#include <gdal.h>
#include <gdal_alg.h>
#include <ogr_api.h>
#include <ogr_srs_api.h>

#include "gm_gdal.h"
#include "gm_log.h"
#include "gm_polys.h"
#include "gm_rng.h"
#include "gm_sample.h"
#include "gm_stack.h"

#define NITEMS(a) (sizeof(a) / sizeof((a)[0]))
#define X0 500000.0
#define Y0 4200000.0
#define PX 10.0
#define NODATA -9999.0

static char dir[64];       /* the temporary folder */
static char *utm_wkt;      /* EPSG:32633 as WKT: the rasters' CRS */

/* ---- helpers ---- */

/* Returns the path of fixture 'name' (in one of four rotating buffers). */
static const char *fx(const char *name) {
    static char bufs[4][256];
    static int next;
    char *b = bufs[next++ % 4];
    snprintf(b, sizeof bufs[0], "%s/%s", dir, name);
    return b;
}

/* Fails unless |a - b| <= eps (cmocka 1.1.5 has no assert_double_equal). */
#define assert_near(a, b, eps) assert_near_at((a), (b), (eps), #a, __FILE__, __LINE__)
static void assert_near_at(double a, double b, double eps, const char *what, const char *file, int line) {
    if (!(fabs(a - b) <= eps)) {
        print_error("%s = %.17g, expected %.17g (within %g)\n", what, a, b, eps);
        _fail(file, line);
    }
}

/* Fails unless 'err' holds 'needle'. */
static void assert_err_has(const char *err, const char *needle) {
    if (!strstr(err, needle)) fail_msg("error \"%s\" does not mention '%s'", err, needle);
}

/* Writes 'text' to fixture file 'name'. */
static void write_text(const char *name, const char *text) {
    FILE *f = fopen(fx(name), "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

/* Reads fixture file 'path' into a static buffer. */
static const char *read_text(const char *path) {
    static char buf[8192];
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* Hand formulas of the reference raster: pixel of (x, y) and the three stack bands there. */
static int col_of(double x) { return (int)floor((x - X0) / PX); }
static int row_of(double y) { return (int)floor((Y0 - y) / PX); }
static int on_patch(int col, int row) { return col >= 45 && col <= 54 && row >= 45 && row <= 54; }
static float band0(int col, int row) { return on_patch(col, row) ? NAN : (float)(col + 1000 * row); }
static float band1(int col, int row) { return (float)(0.5 * row - col); }
static float band2(int col, int row) { return (float)(3 * col - 2 * row); }

/* Returns 1 if (x, y) is strictly inside the open rectangle. */
static int in_rect(double x, double y, double x0, double y0, double x1, double y1) {
    return x > x0 && x < x1 && y > y0 && y < y1;
}

/* The polygons of layer "units", by index (= FID - 1), written out by hand. */
static int inside_by_hand(uint32_t i, double x, double y) {
    switch (i) {
    case 0: return in_rect(x, y, 500100, 4199700, 500300, 4199900);                 /* square, A */
    case 1: return in_rect(x, y, 500600, 4199600, 500900, 4199900) &&               /* holed, B */
                   !(x >= 500700 && x <= 500800 && y >= 4199700 && y <= 4199800);   /* the hole */
    case 2: return in_rect(x, y, 500100, 4199300, 500200, 4199400) ||               /* multi, C */
                   in_rect(x, y, 500300, 4199100, 500400, 4199200);
    case 3: return in_rect(x, y, 500650, 4199050, 500950, 4199350);                 /* Ferrosol */
    case 4: return in_rect(x, y, 500400, 4199400, 500600, 4199600);                 /* patchy, andosol */
    case 5: return in_rect(x, y, 500052, 4199045, 500054, 4199047);                 /* tiny, C */
    default: return 0; /* 6 outside the raster, 7 all nodata: never sampled */
    }
}

/* Opens the reference stack cov.tif + cov2.tif (3 bands). */
static gm_stack_t *open_stack(void) {
    char err[GM_ERR_LEN] = "";
    const char *paths[] = {fx("cov.tif"), fx("cov2.tif")};
    gm_stack_t *s = gm_stack_open(paths, 2, err);
    if (!s) fail_msg("gm_stack_open: %s", err);
    assert_int_equal(gm_stack_nbands(s), 3);
    return s;
}

/* Opens layer "units" in plain mode on class field 'field'. */
static gm_polys_t *open_plain(const char *field) {
    char err[GM_ERR_LEN] = "";
    gm_polys_options_t o = {.path = fx("map.gpkg:units"), .class_field = field};
    gm_polys_t *p = gm_polys_open(&o, utm_wkt, err);
    if (!p) fail_msg("gm_polys_open: %s", err);
    return p;
}

/* Opens the map with options 'o' and returns the error message (the open must fail). */
static const char *open_error(const gm_polys_options_t *o) {
    static char err[GM_ERR_LEN];
    err[0] = '\0';
    gm_polys_t *p = gm_polys_open(o, utm_wkt, err);
    if (p) {
        gm_polys_destroy(&p);
        fail_msg("gm_polys_open(%s) succeeded", o->path);
    }
    return err;
}

/* ---- fixtures ---- */

/* Writes a GeoTIFF of w x h pixels and 'nb' bands of type 't' with values v(band, col, row). */
static void write_raster(const char *name, int w, int h, int nb, GDALDataType t, const double gt[6], double nodata,
                         double (*v)(int band, int col, int row)) {
    GDALDriverH drv = GDALGetDriverByName("GTiff");
    assert_non_null(drv);
    GDALDatasetH ds = GDALCreate(drv, fx(name), w, h, nb, t, NULL);
    assert_non_null(ds);
    double g[6];
    memcpy(g, gt, sizeof g);
    assert_int_equal(GDALSetGeoTransform(ds, g), CE_None);
    assert_int_equal(GDALSetProjection(ds, utm_wkt), CE_None);
    double *buf = malloc((size_t)w * h * sizeof *buf);
    assert_non_null(buf);
    for (int b = 0; b < nb; b++) {
        for (int r = 0; r < h; r++)
            for (int c = 0; c < w; c++) buf[(size_t)r * w + c] = v(b, c, r);
        GDALRasterBandH band = GDALGetRasterBand(ds, b + 1);
        if (b == 0 && !isnan(nodata)) GDALSetRasterNoDataValue(band, nodata);
        assert_int_equal(GDALRasterIO(band, GF_Write, 0, 0, w, h, buf, w, h, GDT_Float64, 0, 0), CE_None);
    }
    free(buf);
    GDALClose(ds);
}

static double cov_value(int b, int c, int r) {
    if (b == 0) return on_patch(c, r) ? NODATA : c + 1000.0 * r;
    return 0.5 * r - c;
}
static double cov2_value(int b, int c, int r) { return 3.0 * c - 2.0 * r; }
static double odd_value(int b, int c, int r) { return c + 100.0 * r; }

/* Returns the WKT of the rectangle x0..x1 x y0..y1 as a polygon ring list "((...))". */
static const char *rect(double x0, double y0, double x1, double y1) {
    static char bufs[4][320];
    static int next;
    char *b = bufs[next++ % 4];
    snprintf(b, sizeof bufs[0], "(%.17g %.17g,%.17g %.17g,%.17g %.17g,%.17g %.17g,%.17g %.17g)", x0, y0, x1, y0, x1,
             y1, x0, y1, x0, y0);
    return b;
}

/* One feature of a fixture layer. */
typedef struct {
    const char *soil;  /* NULL = unset */
    int pid;
    double depth;      /* NaN = unset */
    int code_int;      /* < 0 = unset */
    char wkt[600];
} feature_t;

/* Creates layer 'name' in 'ds' with the fixture fields and 'features', reprojected to 'srs' when it is
 * not the UTM CRS ('ct' non-NULL). */
static void write_layer(GDALDatasetH ds, const char *name, OGRSpatialReferenceH srs, OGRCoordinateTransformationH ct,
                        const feature_t *features, size_t n) {
    OGRLayerH layer = GDALDatasetCreateLayer(ds, name, srs, wkbUnknown, NULL);
    assert_non_null(layer);
    const char *names[] = {"soil", "pid", "depth", "code_int"};
    OGRFieldType types[] = {OFTString, OFTInteger, OFTReal, OFTInteger};
    for (int i = 0; i < 4; i++) {
        OGRFieldDefnH fd = OGR_Fld_Create(names[i], types[i]);
        assert_int_equal(OGR_L_CreateField(layer, fd, 1), OGRERR_NONE);
        OGR_Fld_Destroy(fd);
    }
    for (size_t i = 0; i < n; i++) {
        const feature_t *ft = &features[i];
        OGRFeatureH f = OGR_F_Create(OGR_L_GetLayerDefn(layer));
        if (ft->soil) OGR_F_SetFieldString(f, 0, ft->soil);
        OGR_F_SetFieldInteger(f, 1, ft->pid);
        if (!isnan(ft->depth)) OGR_F_SetFieldDouble(f, 2, ft->depth);
        if (ft->code_int >= 0) OGR_F_SetFieldInteger(f, 3, ft->code_int);
        OGRGeometryH g = NULL;
        char *wkt = (char *)ft->wkt;
        assert_int_equal(OGR_G_CreateFromWkt(&wkt, NULL, &g), OGRERR_NONE);
        if (ct) assert_int_equal(OGR_G_Transform(g, ct), OGRERR_NONE);
        OGR_F_SetGeometryDirectly(f, g);
        assert_int_equal(OGR_L_CreateFeature(layer, f), OGRERR_NONE);
        OGR_F_Destroy(f);
    }
}

/* The features of layer "units" (FIDs 1..10). */
static feature_t units[10];
static void define_units(void) {
    feature_t f[] = {
        {"A", 10, 1.5, 3, ""},         /* 1 square: cols 10..30, rows 10..30 */
        {"B", 20, 2.25, 12, ""},       /* 2 square with a square hole */
        {"C", 30, 3.0, 3, ""},         /* 3 multipolygon of two squares */
        {"Ferrosol", 40, 4.5, 7, ""},  /* 4 */
        {"andosol", 50, 5.0, 12, ""},  /* 5 around the nodata patch */
        {"C", 60, 6.0, 3, ""},         /* 6 tiny: 2 m x 2 m inside pixel (5, 95) */
        {"B", 70, 7.0, 7, ""},         /* 7 outside the raster */
        {"A", 80, 8.0, 3, ""},         /* 8 all on nodata */
        {NULL, 90, NAN, -1, ""},       /* 9 no class, no depth */
        {"", 100, 10.0, -1, ""},       /* 10 empty class */
    };
    snprintf(f[0].wkt, sizeof f[0].wkt, "POLYGON(%s)", rect(500100, 4199700, 500300, 4199900));
    snprintf(f[1].wkt, sizeof f[1].wkt, "POLYGON(%s,%s)", rect(500600, 4199600, 500900, 4199900),
             rect(500700, 4199700, 500800, 4199800));
    snprintf(f[2].wkt, sizeof f[2].wkt, "MULTIPOLYGON((%s),(%s))", rect(500100, 4199300, 500200, 4199400),
             rect(500300, 4199100, 500400, 4199200));
    snprintf(f[3].wkt, sizeof f[3].wkt, "POLYGON(%s)", rect(500650, 4199050, 500950, 4199350));
    snprintf(f[4].wkt, sizeof f[4].wkt, "POLYGON(%s)", rect(500400, 4199400, 500600, 4199600));
    snprintf(f[5].wkt, sizeof f[5].wkt, "POLYGON(%s)", rect(500052, 4199045, 500054, 4199047));
    snprintf(f[6].wkt, sizeof f[6].wkt, "POLYGON(%s)", rect(502000, 4199500, 502100, 4199600));
    snprintf(f[7].wkt, sizeof f[7].wkt, "POLYGON(%s)", rect(500470, 4199470, 500530, 4199530));
    snprintf(f[8].wkt, sizeof f[8].wkt, "POLYGON(%s)", rect(500000, 4199950, 500050, 4200000));
    snprintf(f[9].wkt, sizeof f[9].wkt, "POLYGON(%s)", rect(500000, 4199950, 500050, 4200000));
    memcpy(units, f, sizeof units);
}

/* Writes map.gpkg and obs.gpkg. */
static void write_vectors(void) {
    GDALDriverH drv = GDALGetDriverByName("GPKG");
    assert_non_null(drv);
    OGRSpatialReferenceH utm = OSRNewSpatialReference(NULL), ll = OSRNewSpatialReference(NULL);
    assert_int_equal(OSRImportFromEPSG(utm, 32633), OGRERR_NONE);
    assert_int_equal(OSRImportFromEPSG(ll, 4326), OGRERR_NONE);
    OSRSetAxisMappingStrategy(utm, OAMS_TRADITIONAL_GIS_ORDER);
    OSRSetAxisMappingStrategy(ll, OAMS_TRADITIONAL_GIS_ORDER);
    OGRCoordinateTransformationH to_ll = OCTNewCoordinateTransformation(utm, ll);
    assert_non_null(to_ll);

    GDALDatasetH ds = GDALCreate(drv, fx("map.gpkg"), 0, 0, 0, GDT_Unknown, NULL);
    assert_non_null(ds);
    define_units();
    write_layer(ds, "units", utm, NULL, units, 10);
    write_layer(ds, "units4326", ll, to_ll, units, 8);
    feature_t lines[2] = {{"A", 1, 1, 1, ""}, {"B", 2, 2, 2, "LINESTRING(500100 4199100,500200 4199200)"}};
    snprintf(lines[0].wkt, sizeof lines[0].wkt, "POLYGON(%s)", rect(500100, 4199700, 500300, 4199900));
    write_layer(ds, "lines", utm, NULL, lines, 2);
    write_layer(ds, "empty", utm, NULL, NULL, 0);
    /* A sliver (area 0.25 m², 500 m long) and the nodata square. */
    feature_t slivers[2] = {
        {"A", 1, 1, 1, "POLYGON((500100 4199100,500600 4199600,500600.001 4199600,500100 4199100))"},
        {"B", 2, 2, 2, ""}};
    snprintf(slivers[1].wkt, sizeof slivers[1].wkt, "POLYGON(%s)", rect(500470, 4199470, 500530, 4199530));
    write_layer(ds, "slivers", utm, NULL, slivers, 2);
    /* Not valid polygons (issue 15, D7): a bow-tie whose lobes cancel in its signed area, a sliver of collinear
     * points, a valid square whose ring is left open, a square with a spike out and back, a valid square. */
    feature_t invalid[5] = {
        {"A", 1, 1, 1, "POLYGON((500100 4199100,500500 4199500,500500 4199100,500100 4199500,500100 4199100))"},
        {"B", 2, 2, 2, "POLYGON((500100 4199700,500200 4199700,500300 4199700,500100 4199700))"},
        {"C", 3, 3, 3, "POLYGON((500600 4199600,500700 4199600,500700 4199700,500600 4199700))"},
        {"D", 4, 4, 4, "POLYGON((500600 4199100,500700 4199100,500700 4199200,500700 4199300,500700 4199200,"
                       "500600 4199200,500600 4199100))"},
        {"E", 5, 5, 5, ""}};
    snprintf(invalid[4].wkt, sizeof invalid[4].wkt, "POLYGON(%s)", rect(500800, 4199800, 500900, 4199900));
    write_layer(ds, "invalid", utm, NULL, invalid, 5);
    write_layer(ds, "invalid_only", utm, NULL, &invalid[1], 1);
    GDALClose(ds);

    ds = GDALCreate(drv, fx("obs.gpkg"), 0, 0, 0, GDT_Unknown, NULL);
    assert_non_null(ds);
    feature_t obs[5] = {
        {"A", 1, 1.25, 0, "POINT(500155 4199845)"},        /* pixel (15, 15) */
        {"B", 2, 2.0, 0, "POINT(500505 4199495)"},         /* pixel (50, 50): nodata */
        {"C", 3, 3.0, 0, "POINT(503000 4199000)"},         /* off the raster */
        {NULL, 4, 4.0, 0, "POINT(500255 4199745)"},        /* no class; pixel (25, 25) */
        {"Ferrosol", 5, 5.5, 0, "POINT(500999 4199001)"},  /* pixel (99, 99) */
    };
    write_layer(ds, "obs", utm, NULL, obs, 5);
    write_layer(ds, "obs4326", ll, to_ll, obs, 5);
    feature_t bad[1] = {{"Vertisol", 1, 1, 0, "POINT(500155 4199845)"}};
    write_layer(ds, "obsbad", utm, NULL, bad, 1);
    GDALClose(ds);

    OCTDestroyCoordinateTransformation(to_ll);
    OSRDestroySpatialReference(utm);
    OSRDestroySpatialReference(ll);
}

/* Cell id of pixel (col, row) of the "shapes" raster: the nearest of six seeds, with an island of id 7 (a
 * disc of radius 8 pixels) inside the cell of seed 0, which so gets a hole. */
static int shape_cell(int col, int row) {
    static const int seeds[6][2] = {{20, 20}, {75, 15}, {50, 50}, {15, 80}, {85, 85}, {60, 30}};
    if ((col - 17) * (col - 17) + (row - 22) * (row - 22) <= 64) return 7;
    int best = 0, dbest = INT32_MAX;
    for (int k = 0; k < 6; k++) {
        int d = (col - seeds[k][0]) * (col - seeds[k][0]) + (row - seeds[k][1]) * (row - seeds[k][1]);
        if (d < dbest) {
            dbest = d;
            best = k;
        }
    }
    return best + 1;
}

/* Appends to 'wkt' the ring of a star centred on (cx, cy) with 'spikes' tips of radius r1 and notches of
 * radius r0 between them (the ring starts and ends at the first tip). */
static void star_ring(char *wkt, size_t size, double cx, double cy, int spikes, double r0, double r1) {
    size_t len = strlen(wkt);
    len += (size_t)snprintf(wkt + len, size - len, "(");
    for (int k = 0; k <= 2 * spikes; k++) {
        double a = M_PI * k / spikes, r = k % 2 ? r0 : r1;
        len += (size_t)snprintf(wkt + len, size - len, "%s%.17g %.17g", k ? "," : "", cx + r * cos(a), cy + r * sin(a));
    }
    snprintf(wkt + len, size - len, ")");
}

/* Writes shapes.gpkg, layer "shapes" (integer field soil): the cells of shape_cell() on the cov.tif grid
 * polygonized as gdal_polygonize does (stair-step rings, one with a hole, the island), then a star of 150
 * spikes around a square hole (long edges across the whole polygon) and a multipolygon of two stars. */
static void write_shapes(void) {
    GDALDriverH mem = GDALGetDriverByName("MEM"), gpkg = GDALGetDriverByName("GPKG");
    assert_non_null(mem);
    assert_non_null(gpkg);
    GDALDatasetH r = GDALCreate(mem, "", 100, 100, 1, GDT_Int32, NULL);
    assert_non_null(r);
    double gt[6] = {X0, PX, 0, Y0, 0, -PX};
    GDALSetGeoTransform(r, gt);
    int32_t cells[100 * 100];
    for (int row = 0; row < 100; row++)
        for (int col = 0; col < 100; col++) cells[row * 100 + col] = shape_cell(col, row);
    GDALRasterBandH band = GDALGetRasterBand(r, 1);
    assert_int_equal(GDALRasterIO(band, GF_Write, 0, 0, 100, 100, cells, 100, 100, GDT_Int32, 0, 0), CE_None);
    OGRSpatialReferenceH utm = OSRNewSpatialReference(utm_wkt);
    GDALDatasetH ds = GDALCreate(gpkg, fx("shapes.gpkg"), 0, 0, 0, GDT_Unknown, NULL);
    assert_non_null(ds);
    OGRLayerH layer = GDALDatasetCreateLayer(ds, "shapes", utm, wkbUnknown, NULL);
    assert_non_null(layer);
    OGRFieldDefnH fd = OGR_Fld_Create("soil", OFTInteger);
    assert_int_equal(OGR_L_CreateField(layer, fd, 1), OGRERR_NONE);
    OGR_Fld_Destroy(fd);
    assert_int_equal(GDALPolygonize(band, NULL, layer, 0, NULL, NULL, NULL), CE_None);
    static char wkt[3][40000];
    snprintf(wkt[0], sizeof wkt[0], "POLYGON(");
    star_ring(wkt[0], sizeof wkt[0], 500500, 4199500, 150, 60, 450);
    snprintf(wkt[0] + strlen(wkt[0]), sizeof wkt[0] - strlen(wkt[0]), ",%s)", rect(500470, 4199470, 500530, 4199530));
    snprintf(wkt[1], sizeof wkt[1], "MULTIPOLYGON((");
    star_ring(wkt[1], sizeof wkt[1], 500200, 4199200, 40, 20, 90);
    strcat(wkt[1], "),(");
    star_ring(wkt[1], sizeof wkt[1], 500800, 4199750, 25, 30, 140);
    strcat(wkt[1], "))");
    for (int k = 0; k < 2; k++) {
        OGRFeatureH f = OGR_F_Create(OGR_L_GetLayerDefn(layer));
        OGR_F_SetFieldInteger(f, 0, 100 + k);
        OGRGeometryH g = NULL;
        char *w = wkt[k];
        assert_int_equal(OGR_G_CreateFromWkt(&w, NULL, &g), OGRERR_NONE);
        OGR_F_SetGeometryDirectly(f, g);
        assert_int_equal(OGR_L_CreateFeature(layer, f), OGRERR_NONE);
        OGR_F_Destroy(f);
    }
    GDALClose(ds);
    GDALClose(r);
    OSRDestroySpatialReference(utm);
}

static int setup(void **state) {
    gm_gdal_init();
    strcpy(dir, "/tmp/gm_test_sample_XXXXXX");
    if (!mkdtemp(dir)) return -1;
    OGRSpatialReferenceH utm = OSRNewSpatialReference(NULL);
    if (OSRImportFromEPSG(utm, 32633) != OGRERR_NONE) return -1;
    OSRExportToWkt(utm, &utm_wkt);
    OSRDestroySpatialReference(utm);
    write_raster("cov.tif", 100, 100, 2, GDT_Float32, (double[6]){X0, PX, 0, Y0, 0, -PX}, NODATA, cov_value);
    write_raster("cov2.tif", 100, 100, 1, GDT_Int16, (double[6]){X0, PX, 0, Y0, 0, -PX}, NAN, cov2_value);
    write_raster("odd.tif", 50, 50, 1, GDT_Float32, (double[6]){500000.3, 0.1, 0, 4200000.7, 0, -0.1}, NAN,
                 odd_value);
    write_vectors();
    write_shapes();
    write_text("comp.csv", "Polygon,CLASS,Proportion\n"
                           "10,A,0.7\n"
                           "10,\"Red, clay\",0.3\n"
                           "20,C,2\n"
                           "20,Ferrosol,2\n"
                           "50,andosol,1\n");
    write_text("comp_fid.csv", "polygon,class,proportion\r\n3,C,1\r\n");
    write_text("comp_badnum.csv", "polygon,class,proportion\n10,A,0.5\n10,B,abc\n");
    write_text("comp_badcols.csv", "polygon,class,proportion\n10,A\n");
    write_text("comp_neg.csv", "polygon,class,proportion\n10,A,-0.5\n");
    write_text("comp_unknown.csv", "polygon,class,proportion\n10,A,1\n\n999,B,1\n");
    write_text("comp_zero.csv", "polygon,class,proportion\n10,A,0\n10,B,0\n");
    write_text("comp_header.csv", "id,class,proportion\n10,A,1\n");
    (void)state;
    return 0;
}

/* Removes one file of the temporary folder. */
static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int teardown(void **state) {
    (void)state;
    nftw(dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
    CPLFree(utm_wkt);
    GDALDestroyDriverManager();
    OSRCleanup();
    return 0;
}

/* ---- gm_rng ---- */

/* The xoshiro256** core from the state {1, 2, 3, 4}: the first outputs are rotl(2 * 5, 7) * 9 = 11520, then
 * 0 (s[1] becomes 0), then the reference implementation's 1509978240 and 1215971899390074240. The first
 * uniform is (11520 >> 11) * 2^-53 = 5 * 2^-53. */
static void test_rng_known_answer(void **state) {
    (void)state;
    gm_rng_t r = {{1, 2, 3, 4}};
    assert_int_equal(gm_rng_next(&r), 11520u);
    assert_int_equal(gm_rng_next(&r), 0u);
    assert_int_equal(gm_rng_next(&r), 1509978240u);
    assert_int_equal(gm_rng_next(&r), 1215971899390074240u);
    gm_rng_t u = {{1, 2, 3, 4}};
    assert_true(gm_rng_uniform(&u) == 5 * 0x1.0p-53);
}

/* The same keys give the same stream; each key (and the key order) gives another. */
static void test_rng_streams(void **state) {
    (void)state;
    gm_rng_t a, b;
    gm_rng_seed(&a, 42, 3, 7);
    gm_rng_seed(&b, 42, 3, 7);
    for (int i = 0; i < 1000; i++) assert_int_equal(gm_rng_next(&a), gm_rng_next(&b));
    const uint64_t keys[][3] = {{42, 3, 7}, {42, 7, 3}, {42, 3, 8}, {42, 4, 7}, {43, 3, 7}, {0, 0, 0}, {0, 0, 1}};
    uint64_t first[NITEMS(keys)];
    for (size_t i = 0; i < NITEMS(keys); i++) {
        gm_rng_seed(&a, keys[i][0], keys[i][1], keys[i][2]);
        first[i] = gm_rng_next(&a);
        for (size_t j = 0; j < i; j++)
            if (first[i] == first[j]) fail_msg("streams %zu and %zu start alike", i, j);
    }
    /* Neighbouring streams are uncorrelated: over 10000 pairs the correlation's standard error is 0.01. */
    for (uint64_t poly = 0; poly < 5; poly++) {
        gm_rng_seed(&a, 1, 1, poly);
        gm_rng_seed(&b, 1, 1, poly + 1);
        double sa = 0, sb = 0, saa = 0, sbb = 0, sab = 0;
        const int n = 10000;
        for (int i = 0; i < n; i++) {
            double u = gm_rng_uniform(&a), v = gm_rng_uniform(&b);
            sa += u, sb += v, saa += u * u, sbb += v * v, sab += u * v;
        }
        double cov = sab / n - sa / n * sb / n;
        double r = cov / sqrt((saa / n - sa / n * sa / n) * (sbb / n - sb / n * sb / n));
        if (fabs(r) > 0.05) fail_msg("streams %" PRIu64 " and %" PRIu64 " correlate: %g", poly, poly + 1, r);
    }
}

/* Uniforms lie in [0, 1) with mean 1/2 (standard error 0.29 / sqrt(1e5) < 0.001); gm_rng_below(10) fills ten
 * buckets evenly (10000 expected each, standard deviation 95) and never leaves [0, n). */
static void test_rng_ranges(void **state) {
    (void)state;
    gm_rng_t r;
    gm_rng_seed(&r, 7, 0, 0);
    double sum = 0;
    for (int i = 0; i < 100000; i++) {
        double u = gm_rng_uniform(&r);
        assert_true(u >= 0 && u < 1);
        sum += u;
    }
    assert_true(fabs(sum / 100000 - 0.5) < 0.005);
    unsigned buckets[10] = {0};
    for (int i = 0; i < 100000; i++) {
        uint32_t k = gm_rng_below(&r, 10);
        assert_true(k < 10);
        buckets[k]++;
    }
    for (int k = 0; k < 10; k++)
        if (buckets[k] < 9500 || buckets[k] > 10500) fail_msg("bucket %d holds %u of 100000", k, buckets[k]);
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(gm_rng_below(&r, 1), 0);
        assert_true(gm_rng_below(&r, 3) < 3);
        assert_true(gm_rng_below(&r, UINT32_MAX) < UINT32_MAX);
    }
}

/* ---- gm_polys ---- */

/* Plain mode on "soil": features 9 (NULL) and 10 ("") are skipped; 8 polygons keep FIDs 1..8; the class
 * table is strcmp-sorted: A B C Ferrosol andosol (upper case before lower case). */
static void test_polys_plain(void **state) {
    (void)state;
    gm_polys_t *p = open_plain("soil");
    assert_int_equal(gm_polys_count(p), 8);
    const gm_polys_report_t *r = gm_polys_report(p);
    assert_int_equal(r->features, 10);
    assert_int_equal(r->skipped_no_value, 2);
    assert_int_equal(r->skipped_no_geometry, 0);
    assert_false(gm_polys_is_regression(p));
    assert_false(gm_polys_is_composition(p));
    const char *classes[] = {"A", "B", "C", "Ferrosol", "andosol"};
    assert_int_equal(gm_polys_nclass(p), 5);
    for (uint32_t c = 0; c < 5; c++) {
        assert_string_equal(gm_polys_class_name(p, c), classes[c]);
        assert_int_equal(gm_polys_class_code(p, classes[c]), c);
    }
    assert_null(gm_polys_class_name(p, 5));
    assert_int_equal(gm_polys_class_code(p, "a"), GM_POLYS_NO_CLASS);
    const uint32_t codes[] = {0, 1, 2, 3, 4, 2, 1, 0};
    /* Areas: 200², 300² - 100², 2 x 100², 300², 200², 2², 100², 60². */
    const double areas[] = {40000, 80000, 20000, 90000, 40000, 4, 10000, 3600};
    for (uint32_t i = 0; i < 8; i++) {
        assert_int_equal(gm_polys_fid(p, i), i + 1);
        assert_int_equal(gm_polys_code(p, i), codes[i]);
        assert_int_equal(gm_polys_draw_class(p, i, 0.5), codes[i]);
        assert_near(gm_polys_area(p, i), areas[i], 1e-6);
        assert_true(isnan(gm_polys_target(p, i)));
    }
    double env[4];
    gm_polys_envelope(p, 2, env);
    assert_near(env[0], 500100, 0);
    assert_near(env[1], 4199100, 0);
    assert_near(env[2], 500400, 0);
    assert_near(env[3], 4199400, 0);
    /* Even-odd: in the holed square, in its hole, in each part of the multipolygon, between the parts. */
    assert_true(gm_polys_contains(p, 1, 500650, 4199650));
    assert_false(gm_polys_contains(p, 1, 500750, 4199750));
    assert_true(gm_polys_contains(p, 1, 500850, 4199750));
    assert_true(gm_polys_contains(p, 2, 500150, 4199350));
    assert_true(gm_polys_contains(p, 2, 500350, 4199150));
    assert_false(gm_polys_contains(p, 2, 500250, 4199250));
    assert_false(gm_polys_contains(p, 0, 500099.999, 4199800));
    assert_true(gm_polys_contains(p, 0, 500100.001, 4199800));
    gm_polys_destroy(&p);
    assert_null(p);
    gm_polys_destroy(&p); /* takes NULL */
}

/* Layer "invalid": the bow-tie is repaired into its two triangles (40000 m² each; its signed area is 0), the
 * spiked square into the square, the open ring is closed without a repair, the sliver is skipped; a map of the
 * sliver alone has no usable polygon, and the error counts it. */
static void test_polys_invalid(void **state) {
    (void)state;
    char err[GM_ERR_LEN] = "";
    gm_polys_options_t o = {.path = fx("map.gpkg:invalid"), .class_field = "soil"};
    gm_polys_t *p = gm_polys_open(&o, utm_wkt, err);
    if (!p) fail_msg("gm_polys_open: %s", err);
    const gm_polys_report_t *r = gm_polys_report(p);
    assert_int_equal(r->features, 5);
    assert_int_equal(r->repaired_invalid, 2);
    assert_int_equal(r->skipped_invalid, 1);
    assert_int_equal(r->skipped_no_value + r->skipped_no_geometry + r->skipped_no_composition, 0);
    assert_int_equal(gm_polys_count(p), 4);
    assert_int_equal(gm_polys_nclass(p), 4); /* A C D E: the sliver's B is no class of the map */
    const int64_t fids[] = {1, 3, 4, 5};
    const double areas[] = {80000, 10000, 10000, 10000};
    for (uint32_t i = 0; i < 4; i++) {
        assert_int_equal(gm_polys_fid(p, i), fids[i]);
        assert_near(gm_polys_area(p, i), areas[i], 1e-6);
    }
    /* The bow-tie: inside each lobe, not in the gaps above and below the crossing at (500300, 4199300). */
    assert_true(gm_polys_contains(p, 0, 500150, 4199300));
    assert_true(gm_polys_contains(p, 0, 500450, 4199300));
    assert_false(gm_polys_contains(p, 0, 500300, 4199450));
    assert_false(gm_polys_contains(p, 0, 500300, 4199150));
    /* The spiked square: the square, and nothing along the spike. */
    double env[4];
    gm_polys_envelope(p, 2, env);
    assert_near(env[3], 4199200, 0);
    assert_true(gm_polys_contains(p, 2, 500650, 4199150));
    gm_polys_destroy(&p);

    o.path = fx("map.gpkg:invalid_only");
    assert_err_has(open_error(&o), "no usable polygon (1 features: 0 without a value, 0 without a geometry, 0 not "
                                   "in the composition, 1 invalid beyond repair)");
}

/* Numeric class field code_int (3, 12, 3, 7, 12, 3, 7, 3, NULL, NULL): values are compared as text, so the
 * table is "12" "3" "7" and polygon 0 (3) has code 1. */
static void test_polys_numeric_class(void **state) {
    (void)state;
    gm_polys_t *p = open_plain("code_int");
    assert_int_equal(gm_polys_count(p), 8);
    assert_int_equal(gm_polys_nclass(p), 3);
    assert_string_equal(gm_polys_class_name(p, 0), "12");
    assert_string_equal(gm_polys_class_name(p, 1), "3");
    assert_string_equal(gm_polys_class_name(p, 2), "7");
    const uint32_t codes[] = {1, 0, 1, 2, 0, 1, 2, 1};
    for (uint32_t i = 0; i < 8; i++) assert_int_equal(gm_polys_code(p, i), codes[i]);
    gm_polys_destroy(&p);
}

/* Regression on depth: feature 9 (NULL depth) is skipped, feature 10 (10.0, empty class) is kept. */
static void test_polys_regression(void **state) {
    (void)state;
    char err[GM_ERR_LEN] = "";
    gm_polys_options_t o = {.path = fx("map.gpkg"), .target_field = "depth"}; /* first layer: units */
    gm_polys_t *p = gm_polys_open(&o, utm_wkt, err);
    if (!p) fail_msg("%s", err);
    assert_true(gm_polys_is_regression(p));
    assert_int_equal(gm_polys_nclass(p), 0);
    assert_int_equal(gm_polys_count(p), 9);
    assert_int_equal(gm_polys_report(p)->skipped_no_value, 1);
    const double targets[] = {1.5, 2.25, 3, 4.5, 5, 6, 7, 8, 10};
    for (uint32_t i = 0; i < 9; i++) {
        assert_near(gm_polys_target(p, i), targets[i], 0);
        assert_int_equal(gm_polys_code(p, i), GM_POLYS_NO_CLASS);
    }
    assert_int_equal(gm_polys_fid(p, 8), 10);
    gm_polys_destroy(&p);
}

/* The EPSG:4326 copy reprojected to UTM gives back the UTM vertices (to well under a millimetre). */
static void test_polys_reprojection(void **state) {
    (void)state;
    char err[GM_ERR_LEN] = "";
    gm_polys_options_t o = {.path = fx("map.gpkg:units4326"), .class_field = "soil"};
    gm_polys_t *p = gm_polys_open(&o, utm_wkt, err);
    if (!p) fail_msg("%s", err);
    assert_int_equal(gm_polys_count(p), 8);
    double env[4];
    gm_polys_envelope(p, 0, env);
    assert_near(env[0], 500100, 1e-4);
    assert_near(env[1], 4199700, 1e-4);
    assert_near(env[2], 500300, 1e-4);
    assert_near(env[3], 4199900, 1e-4);
    assert_near(gm_polys_area(p, 0), 40000, 0.1);
    assert_near(gm_polys_area(p, 1), 80000, 0.1);
    assert_false(gm_polys_contains(p, 1, 500750, 4199750));
    assert_true(gm_polys_contains(p, 1, 500650, 4199650));
    gm_polys_destroy(&p);
    /* Without a destination CRS the lon/lat coordinates stay: longitude near 15, latitude near 38. */
    p = gm_polys_open(&o, "", err);
    if (!p) fail_msg("%s", err);
    gm_polys_envelope(p, 0, env);
    assert_true(env[0] > 14 && env[0] < 16 && env[1] > 37 && env[1] < 39);
    gm_polys_destroy(&p);
}

/* Composition by pid: polygons 10, 20, 50 have rows; the other 7 features are skipped. Classes from the CSV:
 * A C Ferrosol "Red, clay" andosol. Polygon 10: A 0.7, Red 0.3 -> cumulative 0.7, 1; polygon 20: C 2,
 * Ferrosol 2 -> normalised 0.5, 1. */
static void test_polys_composition(void **state) {
    (void)state;
    char err[GM_ERR_LEN] = "";
    gm_polys_options_t o = {.path = fx("map.gpkg:units"), .composition = fx("comp.csv"), .id_field = "pid"};
    gm_polys_t *p = gm_polys_open(&o, utm_wkt, err);
    if (!p) fail_msg("%s", err);
    assert_true(gm_polys_is_composition(p));
    assert_int_equal(gm_polys_count(p), 3);
    assert_int_equal(gm_polys_report(p)->skipped_no_composition, 7);
    const char *classes[] = {"A", "C", "Ferrosol", "Red, clay", "andosol"};
    assert_int_equal(gm_polys_nclass(p), 5);
    for (uint32_t c = 0; c < 5; c++) assert_string_equal(gm_polys_class_name(p, c), classes[c]);
    assert_int_equal(gm_polys_fid(p, 0), 1);
    assert_int_equal(gm_polys_fid(p, 1), 2);
    assert_int_equal(gm_polys_fid(p, 2), 5);
    const uint32_t *codes;
    const double *cum;
    assert_int_equal(gm_polys_composition(p, 0, &codes, &cum), 2);
    assert_int_equal(codes[0], 0);
    assert_int_equal(codes[1], 3);
    assert_near(cum[0], 0.7, 1e-12);
    assert_near(cum[1], 1.0, 0);
    assert_int_equal(gm_polys_composition(p, 1, &codes, &cum), 2);
    assert_int_equal(codes[0], 1);
    assert_int_equal(codes[1], 2);
    assert_near(cum[0], 0.5, 1e-12);
    assert_int_equal(gm_polys_composition(p, 2, &codes, &cum), 1);
    assert_int_equal(codes[0], 4);
    assert_int_equal(gm_polys_draw_class(p, 0, 0.69), 0);
    assert_int_equal(gm_polys_draw_class(p, 0, 0.71), 3);
    assert_int_equal(gm_polys_draw_class(p, 1, 0.49), 1);
    assert_int_equal(gm_polys_draw_class(p, 1, 0.999), 2);
    assert_int_equal(gm_polys_code(p, 0), GM_POLYS_NO_CLASS);
    /* The class table, with the comma class quoted. */
    assert_int_equal(gm_polys_write_class_table(p, fx("classes_comp.csv"), err), 0);
    assert_string_equal(read_text(fx("classes_comp.csv")),
                        "code,class\n0,A\n1,C\n2,Ferrosol\n3,\"Red, clay\"\n4,andosol\n");
    gm_polys_destroy(&p);

    /* By FID (CRLF line ends): only feature 3. */
    gm_polys_options_t by_fid = {.path = fx("map.gpkg:units"), .composition = fx("comp_fid.csv")};
    p = gm_polys_open(&by_fid, utm_wkt, err);
    if (!p) fail_msg("%s", err);
    assert_int_equal(gm_polys_count(p), 1);
    assert_int_equal(gm_polys_fid(p, 0), 3);
    assert_int_equal(gm_polys_nclass(p), 1);
    assert_string_equal(gm_polys_class_name(p, 0), "C");
    gm_polys_destroy(&p);
}

/* The class table file of the plain map. */
static void test_polys_class_table(void **state) {
    (void)state;
    char err[GM_ERR_LEN] = "";
    gm_polys_t *p = open_plain("soil");
    assert_int_equal(gm_polys_write_class_table(p, fx("classes.csv"), err), 0);
    assert_string_equal(read_text(fx("classes.csv")), "code,class\n0,A\n1,B\n2,C\n3,Ferrosol\n4,andosol\n");
    assert_int_equal(gm_polys_write_class_table(p, fx("no/such/dir.csv"), err), -1);
    assert_err_has(err, "dir.csv");
    gm_polys_destroy(&p);
}

/* Errors name the file and what is wrong. */
static void test_polys_errors(void **state) {
    (void)state;
    gm_polys_options_t o = {.path = fx("map.gpkg:units"), .class_field = "nope"};
    const char *err = open_error(&o);
    assert_err_has(err, "map.gpkg");
    assert_err_has(err, "'nope'");
    assert_err_has(err, "soil, pid, depth, code_int");

    o = (gm_polys_options_t){.path = fx("map.gpkg:lines"), .class_field = "soil"};
    err = open_error(&o);
    assert_err_has(err, "map.gpkg");
    assert_err_has(err, "feature 2");
    assert_err_has(err, "LINESTRING");

    o = (gm_polys_options_t){.path = fx("map.gpkg:empty"), .class_field = "soil"};
    err = open_error(&o);
    assert_err_has(err, "map.gpkg: layer has no features");

    o = (gm_polys_options_t){.path = fx("map.gpkg:nolayer"), .class_field = "soil"};
    err = open_error(&o);
    assert_err_has(err, "no layer 'nolayer'");
    assert_err_has(err, "units4326");

    o = (gm_polys_options_t){.path = fx("missing.gpkg"), .class_field = "soil"};
    err = open_error(&o);
    assert_err_has(err, "missing.gpkg: no such file");

    o = (gm_polys_options_t){.path = fx("map.gpkg"), .class_field = "soil", .target_field = "depth"};
    err = open_error(&o);
    assert_err_has(err, "exactly one");

    o = (gm_polys_options_t){.path = fx("map.gpkg"), .composition = fx("comp.csv"), .id_field = "nope"};
    err = open_error(&o);
    assert_err_has(err, "'nope'");

    struct {
        const char *csv, *needle1, *needle2;
    } bad[] = {
        {"comp_badnum.csv", "comp_badnum.csv: line 3", "'abc' is not a number"},
        {"comp_badcols.csv", "comp_badcols.csv: line 2", "2 fields, expected 3"},
        {"comp_neg.csv", "comp_neg.csv: line 2", "negative"},
        {"comp_unknown.csv", "comp_unknown.csv: line 4", "polygon '999' is not in"},
        {"comp_zero.csv", "comp_zero.csv: line 2", "sum to 0"},
        {"comp_header.csv", "comp_header.csv: line 1", "'polygon'"},
        {"comp_missing.csv", "comp_missing.csv", "cannot open"},
    };
    for (size_t i = 0; i < NITEMS(bad); i++) {
        o = (gm_polys_options_t){.path = fx("map.gpkg:units"), .composition = fx(bad[i].csv), .id_field = "pid"};
        err = open_error(&o);
        assert_err_has(err, bad[i].needle1);
        assert_err_has(err, bad[i].needle2);
    }
}

/* The even-odd rule as the sampler first wrote it, over the rings of 'g' (Polygon or MultiPolygon) as OGR
 * holds them: outside the envelope is outside; else each edge from vertex j (the one before, the last for
 * the first) to vertex i with (yi > y) != (yj > y) and x left of it at height y flips the answer. */
static int contains_brute(OGRGeometryH g, double x, double y) {
    OGREnvelope e;
    OGR_G_GetEnvelope(g, &e);
    if (x < e.MinX || x > e.MaxX || y < e.MinY || y > e.MaxY) return 0;
    int multi = wkbFlatten(OGR_G_GetGeometryType(g)) == wkbMultiPolygon, inside = 0;
    for (int part = 0; part < (multi ? OGR_G_GetGeometryCount(g) : 1); part++) {
        OGRGeometryH poly = multi ? OGR_G_GetGeometryRef(g, part) : g;
        for (int r = 0; r < OGR_G_GetGeometryCount(poly); r++) {
            OGRGeometryH ring = OGR_G_GetGeometryRef(poly, r);
            int n = OGR_G_GetPointCount(ring);
            double xj = OGR_G_GetX(ring, n - 1), yj = OGR_G_GetY(ring, n - 1);
            for (int k = 0; k < n; k++) {
                double xi = OGR_G_GetX(ring, k), yi = OGR_G_GetY(ring, k);
                if ((yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi) inside = !inside;
                xj = xi;
                yj = yi;
            }
        }
    }
    return inside;
}

/* Fails unless gm_polys_contains agrees with contains_brute at (x, y). */
static void check_contains(const gm_polys_t *p, uint32_t i, OGRGeometryH g, double x, double y) {
    int want = contains_brute(g, x, y);
    if (gm_polys_contains(p, i, x, y) != want)
        fail_msg("polygon %u at (%.17g, %.17g): gm_polys_contains says %d, the even-odd loop %d", i, x, y, !want, want);
}

/* gm_polys_contains (through its slab index) answers as the plain even-odd loop over every edge, on every
 * polygon of "units" and "shapes" (stair-step cells, a hole, an island, a 150-spike star with a hole, a
 * multipolygon of stars): at random points of each envelope and a margin around it, at every vertex, on the
 * vertical and horizontal lines through every vertex, at the middle of every edge. */
static void test_polys_contains_slabs(void **state) {
    (void)state;
    const char *layers[] = {"map.gpkg:units", "shapes.gpkg:shapes"};
    const char *fields[] = {"soil", "soil"};
    gm_rng_t rng;
    gm_rng_seed(&rng, 7, 0, 0);
    for (size_t l = 0; l < NITEMS(layers); l++) {
        char err[GM_ERR_LEN] = "";
        gm_polys_options_t o = {.path = fx(layers[l]), .class_field = fields[l]};
        gm_polys_t *p = gm_polys_open(&o, utm_wkt, err);
        if (!p) fail_msg("gm_polys_open: %s", err);
        char path[256];
        snprintf(path, sizeof path, "%s", fx(layers[l]));
        *strrchr(path, ':') = '\0';
        GDALDatasetH ds = GDALOpenEx(path, GDAL_OF_VECTOR, NULL, NULL, NULL);
        assert_non_null(ds);
        OGRLayerH layer = GDALDatasetGetLayerByName(ds, strrchr(layers[l], ':') + 1);
        assert_non_null(layer);
        uint32_t i = 0;
        size_t vertices = 0;
        OGRFeatureH f;
        OGR_L_ResetReading(layer);
        while ((f = OGR_L_GetNextFeature(layer))) {
            if (!OGR_F_IsFieldSetAndNotNull(f, OGR_F_GetFieldIndex(f, fields[l])) ||
                !*OGR_F_GetFieldAsString(f, OGR_F_GetFieldIndex(f, fields[l]))) {
                OGR_F_Destroy(f);
                continue; /* skipped by gm_polys_open too */
            }
            assert_true(i < gm_polys_count(p));
            assert_int_equal(gm_polys_fid(p, i), OGR_F_GetFID(f));
            OGRGeometryH g = OGR_F_GetGeometryRef(f);
            OGREnvelope e;
            OGR_G_GetEnvelope(g, &e);
            double mx = 0.05 * (e.MaxX - e.MinX) + 1, my = 0.05 * (e.MaxY - e.MinY) + 1;
            for (int k = 0; k < 5000; k++)
                check_contains(p, i, g, e.MinX - mx + (e.MaxX - e.MinX + 2 * mx) * gm_rng_uniform(&rng),
                               e.MinY - my + (e.MaxY - e.MinY + 2 * my) * gm_rng_uniform(&rng));
            int multi = wkbFlatten(OGR_G_GetGeometryType(g)) == wkbMultiPolygon;
            for (int part = 0; part < (multi ? OGR_G_GetGeometryCount(g) : 1); part++) {
                OGRGeometryH poly = multi ? OGR_G_GetGeometryRef(g, part) : g;
                for (int r = 0; r < OGR_G_GetGeometryCount(poly); r++) {
                    OGRGeometryH ring = OGR_G_GetGeometryRef(poly, r);
                    int n = OGR_G_GetPointCount(ring);
                    for (int k = 0; k < n; k++) {
                        double x = OGR_G_GetX(ring, k), y = OGR_G_GetY(ring, k);
                        double xn = OGR_G_GetX(ring, (k + 1) % n), yn = OGR_G_GetY(ring, (k + 1) % n);
                        check_contains(p, i, g, x, y);
                        check_contains(p, i, g, 0.5 * (x + xn), 0.5 * (y + yn));
                        check_contains(p, i, g, nextafter(x, INFINITY), nextafter(y, -INFINITY));
                        check_contains(p, i, g, x, e.MinY + (e.MaxY - e.MinY) * gm_rng_uniform(&rng));
                        check_contains(p, i, g, e.MinX + (e.MaxX - e.MinX) * gm_rng_uniform(&rng), y);
                        check_contains(p, i, g, e.MinX + (e.MaxX - e.MinX) * gm_rng_uniform(&rng),
                                       nextafter(y, INFINITY));
                    }
                    vertices += (size_t)n;
                }
            }
            OGR_F_Destroy(f);
            i++;
        }
        assert_int_equal(i, gm_polys_count(p));
        if (l == 1) {
            assert_true(i >= 9);          /* 7 cells (some may split in parts), the island, the star, the pair */
            assert_true(vertices > 1000); /* stair steps and spikes: many edges per polygon */
        }
        GDALClose(ds);
        gm_polys_destroy(&p);
    }
}

/* ---- gm_sample ---- */

/* Checks every sampled point of the plain "units" map against the hand-written geometry and raster. */
static void check_points_by_hand(const gm_polys_t *p, const gm_samples_t *s, uint32_t counts[8]) {
    const uint32_t codes[] = {0, 1, 2, 3, 4, 2, 1, 0};
    memset(counts, 0, 8 * sizeof *counts);
    for (size_t k = 0; k < s->n; k++) {
        uint32_t i = s->polygon[k];
        double x = s->x[k], y = s->y[k];
        assert_true(i < 8);
        counts[i]++;
        if (!inside_by_hand(i, x, y)) fail_msg("point %zu (%.17g, %.17g) is outside polygon %u", k, x, y, i);
        assert_true(gm_polys_contains(p, i, x, y));
        int col = col_of(x), row = row_of(y);
        if (on_patch(col, row)) fail_msg("point %zu (%.17g, %.17g) is on the nodata patch", k, x, y);
        const float *v = s->values + k * 3;
        assert_true(v[0] == band0(col, row));
        assert_true(v[1] == band1(col, row));
        assert_true(v[2] == band2(col, row));
        assert_int_equal(s->code[k], codes[i]);
        assert_true(isnan(s->target[k]));
    }
}

/* 50 points per polygon: polygons 0..5 get 50 each, all inside by hand, none in the hole or on nodata,
 * values from the raster formulas; 6 (outside) and 7 (all nodata) get none; 5 is smaller than a pixel;
 * 7's first point fails its 100 envelope draws, then it has no valid pixel: 50 points short, listed. */
static void test_sample_plain(void **state) {
    (void)state;
    char err[GM_ERR_LEN] = "";
    gm_polys_t *p = open_plain("soil");
    gm_stack_t *stack = open_stack();
    gm_samples_t *s = gm_samples_new(3);
    assert_non_null(s);
    gm_sample_options_t o = {.per_polygon = 50, .seed = 42};
    gm_sample_report_t rep;
    if (gm_sample_iteration(p, stack, &o, 1, s, &rep, err) != 0) fail_msg("%s", err);
    assert_int_equal(s->n, 300);
    assert_int_equal(rep.points, 300);
    assert_int_equal(rep.polygons_outside, 1);
    assert_int_equal(rep.polygons_small, 1);
    assert_int_equal(rep.polygons_failed, 1);
    assert_int_equal(rep.points_short, 50);
    assert_true(rep.draws >= 300 + 100);
    assert_int_equal(rep.polygons_short, 1);
    assert_int_equal(rep.nshort, 1);
    assert_int_equal(rep.shorts[0].polygon, 7);
    assert_int_equal(rep.shorts[0].wanted, 50);
    assert_int_equal(rep.shorts[0].drawn, 0);
    uint32_t counts[8];
    check_points_by_hand(p, s, counts);
    for (int i = 0; i < 6; i++) assert_int_equal(counts[i], 50);
    assert_int_equal(counts[6], 0);
    assert_int_equal(counts[7], 0);
    /* Both parts of the multipolygon and every tiny point in pixel (5, 95). */
    int part1 = 0, part2 = 0;
    for (size_t k = 0; k < s->n; k++) {
        if (s->polygon[k] == 2) s->x[k] < 500250 ? part1++ : part2++;
        if (s->polygon[k] == 5) {
            assert_int_equal(col_of(s->x[k]), 5);
            assert_int_equal(row_of(s->y[k]), 95);
        }
    }
    assert_true(part1 > 0 && part2 > 0);
    /* The samples cover the polygon: in the holed square (8 cells of 100 m x 100 m around the hole), each
     * cell is reached with 50 uniform points (P(miss one) = (7/8)^50 < 0.2 %). */
    int cells[3][3] = {{0}};
    for (size_t k = 0; k < s->n; k++)
        if (s->polygon[k] == 1) cells[(int)((s->x[k] - 500600) / 100)][(int)((s->y[k] - 4199600) / 100)]++;
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++)
            if (a == 1 && b == 1) assert_int_equal(cells[a][b], 0);
            else assert_true(cells[a][b] > 0);
    /* Appending: the next iteration adds to the table. */
    if (gm_sample_iteration(p, stack, &o, 2, s, &rep, err) != 0) fail_msg("%s", err);
    assert_int_equal(s->n, 600);
    gm_samples_clear(s);
    assert_int_equal(s->n, 0);
    gm_samples_destroy(&s);
    assert_null(s);
    gm_stack_destroy(&stack);
    gm_polys_destroy(&p);
}

/* Fails unless the two tables hold the same points. */
static void assert_same_samples(const gm_samples_t *a, size_t a0, const gm_samples_t *b, size_t b0, size_t n) {
    for (size_t k = 0; k < n; k++) {
        assert_true(a->x[a0 + k] == b->x[b0 + k] && a->y[a0 + k] == b->y[b0 + k]);
        assert_int_equal(a->polygon[a0 + k], b->polygon[b0 + k]);
        assert_int_equal(a->code[a0 + k], b->code[b0 + k]);
        assert_memory_equal(a->values + (a0 + k) * 3, b->values + (b0 + k) * 3, 3 * sizeof(float));
    }
}

/* The same seed and iteration give the same points whatever was sampled before; another iteration or seed
 * gives other points. */
static void test_sample_deterministic(void **state) {
    (void)state;
    char err[GM_ERR_LEN] = "";
    gm_polys_t *p = open_plain("soil");
    gm_stack_t *stack = open_stack();
    gm_samples_t *a = gm_samples_new(3), *b = gm_samples_new(3);
    gm_sample_options_t o = {.per_polygon = 20, .seed = 2024, .max_tries = 30};
    gm_sample_report_t rep;
    assert_int_equal(gm_sample_iteration(p, stack, &o, 5, a, &rep, err), 0);
    size_t n5 = a->n;
    assert_int_equal(n5, 6 * 20);
    /* Iterations 3, 9, 5 in that order: the last block equals iteration 5 alone. */
    assert_int_equal(gm_sample_iteration(p, stack, &o, 3, b, &rep, err), 0);
    size_t n3 = b->n;
    assert_int_equal(gm_sample_iteration(p, stack, &o, 9, b, &rep, err), 0);
    size_t n39 = b->n;
    assert_int_equal(gm_sample_iteration(p, stack, &o, 5, b, &rep, err), 0);
    assert_int_equal(b->n - n39, n5);
    assert_same_samples(a, 0, b, n39, n5);
    /* Other iterations differ from iteration 5 at the first point. */
    assert_true(b->x[0] != a->x[0]);
    assert_true(b->x[n3] != a->x[0]);
    /* Another seed differs too. */
    gm_samples_clear(b);
    o.seed = 2025;
    assert_int_equal(gm_sample_iteration(p, stack, &o, 5, b, &rep, err), 0);
    assert_true(b->x[0] != a->x[0]);
    /* A second stack opened on the same files (another thread's) gives identical samples. */
    gm_stack_t *again = gm_stack_reopen(stack, err);
    assert_non_null(again);
    gm_samples_clear(b);
    o.seed = 2024;
    assert_int_equal(gm_sample_iteration(p, again, &o, 5, b, &rep, err), 0);
    assert_int_equal(b->n, n5);
    assert_same_samples(a, 0, b, 0, n5);
    gm_stack_destroy(&again);
    gm_samples_destroy(&a);
    gm_samples_destroy(&b);
    gm_stack_destroy(&stack);
    gm_polys_destroy(&p);
}

/* A batch of iterations in one pass gives each iteration the points and report it gets alone, appended after
 * what its table held; with few tries, so that iterations keep different numbers of points per polygon. */
static void test_sample_batch(void **state) {
    (void)state;
    char err[GM_ERR_LEN] = "";
    gm_polys_t *p = open_plain("soil");
    gm_stack_t *stack = open_stack();
    const uint32_t its[] = {3, 9, 5};
    for (uint32_t tries = 1; tries <= 30; tries += 29) {
        gm_sample_options_t o = {.per_polygon = 20, .seed = 77, .max_tries = tries};
        gm_samples_t *alone[3], *batch[3];
        gm_sample_report_t ra[3], rb[3];
        for (int j = 0; j < 3; j++) {
            alone[j] = gm_samples_new(3);
            batch[j] = gm_samples_new(3);
            assert_int_equal(gm_sample_iteration(p, stack, &o, its[j], alone[j], &ra[j], err), 0);
        }
        /* table 1 already holds iteration 0's points: the batch appends after them */
        assert_int_equal(gm_sample_iteration(p, stack, &o, 0, batch[1], &rb[1], err), 0);
        size_t held = batch[1]->n;
        assert_int_equal(gm_sample_iterations(p, stack, &o, its, 3, batch, rb, err), 0);
        for (int j = 0; j < 3; j++) {
            size_t at = j == 1 ? held : 0;
            assert_int_equal(batch[j]->n - at, alone[j]->n);
            assert_same_samples(alone[j], 0, batch[j], at, alone[j]->n);
            assert_memory_equal(&ra[j], &rb[j], sizeof ra[j]);
        }
        /* one envelope draw per point fails often: those polygons are drawn among their valid pixels, and
         * every iteration still gets every point of every polygon that has one */
        if (tries == 1) {
            assert_true(ra[0].polygons_cells > 0);
            assert_true(alone[0]->n == alone[1]->n && alone[1]->n == alone[2]->n);
            assert_int_equal(alone[0]->n, ra[0].points);
            assert_int_equal(ra[0].points_short, (uint64_t)20 * ra[0].polygons_failed);
        }
        for (int j = 0; j < 3; j++) {
            gm_samples_destroy(&alone[j]);
            gm_samples_destroy(&batch[j]);
        }
    }
    gm_stack_destroy(&stack);
    gm_polys_destroy(&p);
}

/* The sampler as first written, the oracle for the visiting order: polygons one after the other in index
 * order, each drawn with its own stream gm_rng_seed(seed, iteration, i) in its envelope cut to the raster
 * (north-up here), a draw kept when inside the polygon and on a pixel without NaN (read 1 x 1), at most
 * max_tries draws per point (a polygon whose point fails them gets no more: the maps here have no valid
 * pixel left there for the fallback), then one more uniform for a composition class. Appends to 'out' and returns
 * the number of draws. */
static uint64_t sample_sequential(const gm_polys_t *p, gm_stack_t *stack, const gm_sample_options_t *o,
                                  uint32_t iteration, gm_samples_t *out) {
    char err[GM_ERR_LEN] = "";
    const gm_grid_t *g = gm_stack_grid(stack);
    double ext[4] = {g->gt[0], g->gt[3] + g->ysize * g->gt[5], g->gt[0] + g->xsize * g->gt[1], g->gt[3]};
    uint32_t nb = gm_stack_nbands(stack), tries = o->max_tries ? o->max_tries : GM_SAMPLE_DEFAULT_TRIES;
    uint64_t draws = 0;
    float v[16];
    assert_true(nb <= 16);
    for (uint32_t i = 0; i < gm_polys_count(p); i++) {
        double env[4];
        gm_polys_envelope(p, i, env);
        double x0 = fmax(env[0], ext[0]), y0 = fmax(env[1], ext[1]), x1 = fmin(env[2], ext[2]),
               y1 = fmin(env[3], ext[3]);
        if (x0 > x1 || y0 > y1) continue;
        gm_rng_t rng;
        gm_rng_seed(&rng, o->seed, iteration, i);
        for (uint32_t k = 0; k < gm_sample_wanted(p, i, o); k++) {
            int found = 0;
            double x = 0, y = 0;
            for (uint32_t t = 0; t < tries && !found; t++) {
                draws++;
                x = x0 + (x1 - x0) * gm_rng_uniform(&rng);
                y = y0 + (y1 - y0) * gm_rng_uniform(&rng);
                uint32_t col, row;
                if (!gm_polys_contains(p, i, x, y) || gm_sample_pixel(g, x, y, &col, &row) < 0) continue;
                assert_int_equal(gm_stack_read(stack, col, row, 1, 1, v, err), 0);
                found = 1;
                for (uint32_t b = 0; b < nb; b++) found &= !isnan(v[b]);
            }
            if (!found) break; /* gridmill then draws among the valid pixels: the tests' maps have none there */
            uint32_t code = gm_polys_is_composition(p) ? gm_polys_draw_class(p, i, gm_rng_uniform(&rng))
                                                       : gm_polys_code(p, i);
            assert_int_equal(gm_samples_append(out, x, y, i, code, (float)gm_polys_target(p, i), v, err), 0);
        }
    }
    return draws;
}

/* Drawing polygons in block order gives the points of sample_sequential, in the same order, bit for bit:
 * on the polygonized cells (stair steps, a hole, the nodata patch under two cells: redraws) and the stars,
 * in plain mode, and on "units" with a composition and with a regression target, for several seeds and
 * iterations, appended after rows already in the table. */
static void test_sample_same_as_sequential(void **state) {
    (void)state;
    char err[GM_ERR_LEN] = "";
    gm_stack_t *stack = open_stack(); /* first: fx() reuses four buffers */
    gm_polys_options_t maps[] = {
        {.path = fx("shapes.gpkg:shapes"), .class_field = "soil"},
        {.path = fx("map.gpkg:units"), .composition = fx("comp.csv"), .id_field = "pid"},
        {.path = fx("map.gpkg:units"), .target_field = "depth"},
    };
    for (size_t m = 0; m < NITEMS(maps); m++) {
        gm_polys_t *p = gm_polys_open(&maps[m], utm_wkt, err);
        if (!p) fail_msg("gm_polys_open: %s", err);
        for (uint32_t it = 0; it < 3; it++) {
            /* enough envelope draws that no point needs the valid pixels (sample_sequential has no such step) */
            gm_sample_options_t o = {.per_polygon = 40 + 13 * it, .seed = 11 + m, .max_tries = 5000};
            gm_samples_t *a = gm_samples_new(3), *b = gm_samples_new(3);
            assert_int_equal(gm_samples_append(a, 1, 2, 0, 0, NAN, (const float[3]){1, 2, 3}, err), 0);
            assert_int_equal(gm_samples_append(b, 1, 2, 0, 0, NAN, (const float[3]){1, 2, 3}, err), 0);
            gm_sample_report_t rep;
            if (gm_sample_iteration(p, stack, &o, it, a, &rep, err) != 0) fail_msg("%s", err);
            uint64_t draws = sample_sequential(p, stack, &o, it, b);
            assert_int_equal(a->n, b->n);
            assert_int_equal(rep.points, a->n - 1);
            assert_int_equal(rep.polygons_cells, rep.polygons_failed); /* only those without a valid pixel */
            assert_int_equal(rep.draws, draws);
            assert_true(a->n > 100);
            assert_same_samples(a, 0, b, 0, a->n);
            for (size_t k = 0; k < a->n; k++)
                assert_memory_equal(&a->target[k], &b->target[k], sizeof(float));
            gm_samples_destroy(&a);
            gm_samples_destroy(&b);
        }
        gm_polys_destroy(&p);
    }
    gm_stack_destroy(&stack);
}

/* Density 100 per km², at least 3: areas 0.04, 0.08, 0.02, 0.09, 0.04, 0.000004, 0.01, 0.0036 km² give
 * round(4, 8, 2, 9, 4, 0, 1, 0.36) = 4, 8, 2, 9, 4, 0, 1, 0, raised to at least 3. */
static void test_sample_density(void **state) {
    (void)state;
    char err[GM_ERR_LEN] = "";
    gm_polys_t *p = open_plain("soil");
    gm_stack_t *stack = open_stack();
    gm_samples_t *s = gm_samples_new(3);
    gm_sample_options_t o = {.density_km2 = 100, .min_per_polygon = 3, .seed = 1};
    const uint32_t wanted[] = {4, 8, 3, 9, 4, 3, 3, 3};
    for (uint32_t i = 0; i < 8; i++) assert_int_equal(gm_sample_wanted(p, i, &o), wanted[i]);
    gm_sample_report_t rep;
    assert_int_equal(gm_sample_iteration(p, stack, &o, 0, s, &rep, err), 0);
    uint32_t counts[8];
    check_points_by_hand(p, s, counts);
    const uint32_t got[] = {4, 8, 3, 9, 4, 3, 0, 0};
    for (int i = 0; i < 8; i++) assert_int_equal(counts[i], got[i]);
    assert_int_equal(rep.points_short, 3);
    /* Without a minimum the small polygons want none; a fixed count wins over the density. */
    o.min_per_polygon = 0;
    assert_int_equal(gm_sample_wanted(p, 5, &o), 0);
    assert_int_equal(gm_sample_wanted(p, 7, &o), 0);
    assert_int_equal(gm_sample_wanted(p, 6, &o), 1);
    o.per_polygon = 2;
    assert_int_equal(gm_sample_wanted(p, 3, &o), 2);
    /* No count and no density is an error. */
    gm_sample_options_t none = {.seed = 1};
    assert_int_equal(gm_sample_iteration(p, stack, &none, 0, s, &rep, err), -1);
    assert_err_has(err, "density");
    /* A table whose band count differs from the stack's is refused. */
    gm_samples_t *two = gm_samples_new(2);
    assert_int_equal(gm_sample_iteration(p, stack, &o, 0, two, &rep, err), -1);
    assert_err_has(err, "2 bands");
    gm_samples_destroy(&two);
    gm_samples_destroy(&s);
    gm_stack_destroy(&stack);
    gm_polys_destroy(&p);
}

/* Regression: every point carries its polygon's depth. */
static void test_sample_regression(void **state) {
    (void)state;
    char err[GM_ERR_LEN] = "";
    gm_polys_options_t po = {.path = fx("map.gpkg:units"), .target_field = "depth"};
    gm_polys_t *p = gm_polys_open(&po, utm_wkt, err);
    assert_non_null(p);
    gm_stack_t *stack = open_stack();
    gm_samples_t *s = gm_samples_new(3);
    gm_sample_options_t o = {.per_polygon = 10, .seed = 3};
    gm_sample_report_t rep;
    assert_int_equal(gm_sample_iteration(p, stack, &o, 0, s, &rep, err), 0);
    /* Polygons 0..5 and 8 (feature 10, on valid pixels) get 10 each. */
    assert_int_equal(s->n, 70);
    const float targets[] = {1.5f, 2.25f, 3, 4.5f, 5, 6, 7, 8, 10};
    for (size_t k = 0; k < s->n; k++) {
        assert_true(s->target[k] == targets[s->polygon[k]]);
        assert_int_equal(s->code[k], GM_POLYS_NO_CLASS);
    }
    assert_int_equal(gm_samples_write_csv(s, p, 4, NULL, fx("reg.csv"), err), 0);
    const char *text = read_text(fx("reg.csv"));
    assert_true(strncmp(text, "iteration,polygon,x,y,target,b1,b2,b3\n4,1,", 42) == 0);
    gm_samples_destroy(&s);
    gm_stack_destroy(&stack);
    gm_polys_destroy(&p);
}

/* Composition 70/30 with 2000 points: shares within 4 % (the standard deviation is 1 %); 50/50 likewise;
 * a one-class polygon gets only its class. */
static void test_sample_composition(void **state) {
    (void)state;
    char err[GM_ERR_LEN] = "";
    gm_polys_options_t po = {.path = fx("map.gpkg:units"), .composition = fx("comp.csv"), .id_field = "pid"};
    gm_polys_t *p = gm_polys_open(&po, utm_wkt, err);
    assert_non_null(p);
    gm_stack_t *stack = open_stack();
    gm_samples_t *s = gm_samples_new(3);
    gm_sample_options_t o = {.per_polygon = 2000, .seed = 99};
    gm_sample_report_t rep;
    assert_int_equal(gm_sample_iteration(p, stack, &o, 0, s, &rep, err), 0);
    assert_int_equal(s->n, 6000);
    unsigned n[3][5] = {{0}};
    for (size_t k = 0; k < s->n; k++) {
        assert_true(s->code[k] < 5);
        n[s->polygon[k]][s->code[k]]++;
    }
    /* Polygon 0: A (0) and "Red, clay" (3); polygon 1: C (1) and Ferrosol (2); polygon 2: andosol (4). */
    assert_int_equal(n[0][0] + n[0][3], 2000);
    assert_true(n[0][0] >= 1320 && n[0][0] <= 1480);
    assert_int_equal(n[1][1] + n[1][2], 2000);
    assert_true(n[1][1] >= 920 && n[1][1] <= 1080);
    assert_int_equal(n[2][4], 2000);
    /* The sample CSV names the polygon by its id field's value (10, FID 1) and quotes the comma class. */
    gm_samples_t *one = gm_samples_new(3);
    for (size_t k = 0; k < s->n && one->n == 0; k++)
        if (s->code[k] == 3)
            assert_int_equal(gm_samples_append(one, 500000.5, 4199999.75, s->polygon[k], 3, NAN,
                                               (const float[3]){1, 2, 3}, err), 0);
    assert_int_equal(gm_samples_write_csv(one, p, 0, NULL, fx("comp_samples.csv"), err), 0);
    assert_string_equal(read_text(fx("comp_samples.csv")),
                        "iteration,polygon,x,y,class,code,b1,b2,b3\n0,10,500000.5,4199999.75,\"Red, clay\",3,1,2,3\n");
    gm_samples_destroy(&one);
    gm_samples_destroy(&s);
    gm_stack_destroy(&stack);
    gm_polys_destroy(&p);
}

/* A sliver (0.25 m² in a 500 m x 500 m envelope: a draw lands inside with probability 1e-6) and a square
 * all on nodata: 5 points each, 20 envelope draws for the first point of each (40 in all), then the valid
 * pixels: the sliver meets one and gets its 5 points, inside it and on valid covariates; the square none. */
static void test_sample_bounded(void **state) {
    (void)state;
    char err[GM_ERR_LEN] = "";
    gm_polys_options_t po = {.path = fx("map.gpkg:slivers"), .class_field = "soil"};
    gm_polys_t *p = gm_polys_open(&po, utm_wkt, err);
    assert_non_null(p);
    gm_stack_t *stack = open_stack();
    gm_samples_t *s = gm_samples_new(3);
    gm_sample_options_t o = {.per_polygon = 5, .max_tries = 20, .seed = 5};
    gm_sample_report_t rep;
    assert_int_equal(gm_sample_iteration(p, stack, &o, 0, s, &rep, err), 0);
    assert_int_equal(s->n, 5);
    assert_int_equal(rep.draws, 40);
    assert_int_equal(rep.points_short, 5);
    assert_int_equal(rep.polygons_failed, 1);
    assert_int_equal(rep.polygons_short, 1);
    assert_int_equal(rep.polygons_cells, 2);
    assert_int_equal(rep.polygons_small, 1);
    assert_int_equal(rep.polygons_outside, 0);
    for (size_t k = 0; k < s->n; k++) {
        assert_int_equal(gm_polys_contains(p, s->polygon[k], s->x[k], s->y[k]), 1);
        for (uint32_t b = 0; b < 3; b++) assert_false(isnan(s->values[k * 3 + b]));
    }
    gm_samples_destroy(&s);
    gm_stack_destroy(&stack);
    gm_polys_destroy(&p);
}

/* Given points: values by the hand formulas, NaN off the raster, NaN in band 1 on the patch. */
static void test_extract_points(void **state) {
    (void)state;
    char err[GM_ERR_LEN] = "";
    gm_stack_t *stack = open_stack();
    const double x[] = {500155, 500000, 500999.9, 501000, 500505, 499999.99};
    const double y[] = {4199845, 4200000, 4199000.1, 4199500, 4199495, 4199500};
    float v[6 * 3];
    assert_int_equal(gm_sample_extract_points(stack, x, y, 6, v, err), 0);
    const float want[6][3] = {
        {15015, -7.5f, 15},   /* (15, 15) */
        {0, 0, 0},            /* the top-left corner is pixel (0, 0) */
        {99099, -49.5f, 99},  /* (99, 99) */
        {NAN, NAN, NAN},      /* x = 501000 is column 100: off */
        {NAN, -25, 50},       /* (50, 50): band 1 nodata; 25 - 50; 150 - 100 */
        {NAN, NAN, NAN},      /* left of the raster */
    };
    for (int k = 0; k < 6; k++)
        for (int b = 0; b < 3; b++) {
            float got = v[k * 3 + b], exp = want[k][b];
            if (!(got == exp || (isnan(got) && isnan(exp))))
                fail_msg("point %d band %d: %g, expected %g", k, b, (double)got, (double)exp);
        }
    uint32_t col, row;
    assert_int_equal(gm_sample_pixel(gm_stack_grid(stack), 500155, 4199845, &col, &row), 0);
    assert_int_equal(col, 15);
    assert_int_equal(row, 15);
    assert_int_equal(gm_sample_pixel(gm_stack_grid(stack), 500000, 4199000, &col, &row), -1); /* row 100 */
    gm_stack_destroy(&stack);
}

/* Oracle: gdallocationinfo -valonly -geoloc on odd.tif (origin 500000.3, 4200000.7, pixel 0.1) for points on
 * and beside pixel edges, where floor((x - x0) / dx) and the inverse geotransform can disagree. */
static void test_extract_gdallocationinfo(void **state) {
    (void)state;
    if (access("/usr/bin/gdallocationinfo", X_OK) != 0) skip();
    char err[GM_ERR_LEN] = "";
    const char *path = fx("odd.tif");
    gm_stack_t *stack = gm_stack_open(&path, 1, err);
    assert_non_null(stack);
    enum { N = 96 };
    double x[N], y[N];
    FILE *f = fopen(fx("points.txt"), "w");
    assert_non_null(f);
    for (int k = 0; k < N; k++) {
        int c = 1 + (k * 7) % 48, r = 1 + (k * 11) % 48;
        double dx = (k % 3 == 0) ? 0 : (k % 3 == 1) ? 1e-9 : -1e-9;
        x[k] = 500000.3 + c * 0.1 + dx;
        y[k] = 4200000.7 - r * 0.1 - ((k / 3) % 3 == 0 ? 0 : dx);
        fprintf(f, "%.17g %.17g\n", x[k], y[k]);
    }
    fclose(f);
    float v[N];
    assert_int_equal(gm_sample_extract_points(stack, x, y, N, v, err), 0);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "/usr/bin/gdallocationinfo -valonly -geoloc %s < %s", path, fx("points.txt"));
    FILE *pipe = popen(cmd, "r");
    assert_non_null(pipe);
    char line[128];
    int k = 0;
    while (k < N && fgets(line, sizeof line, pipe)) {
        double oracle = strtod(line, NULL);
        if ((double)v[k] != oracle)
            fail_msg("point %d (%.17g, %.17g): %g, gdallocationinfo %g", k, x[k], y[k], (double)v[k], oracle);
        k++;
    }
    assert_int_equal(pclose(pipe), 0);
    assert_int_equal(k, N);
    gm_stack_destroy(&stack);
}

/* Observations: of 5 points, one has no class, one is on nodata, one off the raster; the kept points carry
 * their class and the values of pixels (15, 15) and (99, 99). The EPSG:4326 copy gives the same. */
static void test_observations(void **state) {
    (void)state;
    char err[GM_ERR_LEN] = "";
    gm_polys_t *p = open_plain("soil");
    gm_stack_t *stack = open_stack();
    const char *layers[] = {"obs.gpkg:obs", "obs.gpkg:obs4326"};
    for (int l = 0; l < 2; l++) {
        gm_samples_t *s = gm_samples_new(3);
        gm_sample_obs_report_t rep;
        if (gm_sample_read_observations(fx(layers[l]), "soil", NULL, p, utm_wkt, stack, s, &rep, err) != 0)
            fail_msg("%s", err);
        assert_int_equal(rep.features, 5);
        assert_int_equal(rep.skipped_no_value, 1);
        assert_int_equal(rep.dropped, 2);
        assert_int_equal(rep.kept, 2);
        assert_int_equal(s->n, 2);
        assert_int_equal(s->polygon[0], GM_SAMPLE_NO_POLYGON);
        assert_int_equal(s->code[0], 0);
        assert_int_equal(s->code[1], 3);
        assert_near(s->x[0], 500155, 1e-4);
        assert_near(s->y[1], 4199001, 1e-4);
        assert_true(s->values[0] == 15015 && s->values[1] == -7.5f && s->values[2] == 15);
        assert_true(s->values[3] == 99099 && s->values[4] == -49.5f && s->values[5] == 99);
        gm_samples_destroy(&s);
    }
    gm_samples_t *s = gm_samples_new(3);
    gm_sample_obs_report_t rep;
    assert_int_equal(gm_sample_read_observations(fx("obs.gpkg:obsbad"), "soil", NULL, p, utm_wkt, stack, s, &rep, err), -1);
    assert_err_has(err, "'Vertisol'");
    assert_err_has(err, "feature 1");
    assert_int_equal(gm_sample_read_observations(fx("map.gpkg:units"), "soil", NULL, p, utm_wkt, stack, s, &rep, err), -1);
    assert_err_has(err, "not a point");
    assert_int_equal(gm_sample_read_observations(fx("obs.gpkg:obs"), "nope", NULL, p, utm_wkt, stack, s, &rep, err), -1);
    assert_err_has(err, "'nope'");
    gm_polys_destroy(&p);

    /* Regression: depth 1.25, 4 and 5.5 kept (the point without a class has a depth); 2 dropped. */
    gm_polys_options_t po = {.path = fx("map.gpkg:units"), .target_field = "depth"};
    p = gm_polys_open(&po, utm_wkt, err);
    assert_non_null(p);
    assert_int_equal(gm_sample_read_observations(fx("obs.gpkg:obs"), "depth", NULL, p, utm_wkt, stack, s, &rep, err), 0);
    assert_int_equal(rep.kept, 3);
    assert_int_equal(rep.dropped, 2);
    assert_true(s->target[0] == 1.25f && s->target[1] == 4 && s->target[2] == 5.5f);
    assert_true(s->values[3] == 25025 && s->values[4] == -12.5f && s->values[5] == 25);
    gm_samples_destroy(&s);
    gm_stack_destroy(&stack);
    gm_polys_destroy(&p);
}

/* The sample CSV, written from a table filled by hand. 1.1f prints as 1.10000002 (%.9g); NaN is empty; the
 * observation's polygon is -1; band names are quoted when needed. */
static void test_write_csv(void **state) {
    (void)state;
    char err[GM_ERR_LEN] = "";
    gm_polys_t *p = open_plain("soil");
    gm_samples_t *s = gm_samples_new(3);
    assert_int_equal(gm_samples_append(s, 500123.25, 4199876.5, 3, 3, NAN, (const float[3]){1.1f, -7.5f, 15}, err),
                     0);
    assert_int_equal(gm_samples_append(s, 500000.5, 4199999.75, GM_SAMPLE_NO_POLYGON, 4, NAN,
                                       (const float[3]){NAN, 2, 16777216}, err), 0);
    const char *names[] = {"elev", "slope, deg", "twi"};
    assert_int_equal(gm_samples_write_csv(s, p, 7, names, fx("samples.csv"), err), 0);
    assert_string_equal(read_text(fx("samples.csv")), "iteration,polygon,x,y,class,code,elev,\"slope, deg\",twi\n"
                                                      "7,4,500123.25,4199876.5,Ferrosol,3,1.10000002,-7.5,15\n"
                                                      "7,-1,500000.5,4199999.75,andosol,4,,2,16777216\n");
    assert_int_equal(gm_samples_write_csv(s, p, 7, names, fx("no/dir/samples.csv"), err), -1);
    assert_err_has(err, "samples.csv");
    gm_samples_destroy(&s);
    gm_polys_destroy(&p);
}

/* Returns the whole of file 'path' (caller frees) and its length in 'len'. */
static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    assert_true(n >= 0);
    rewind(f);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* Writes 's' as gm_sample.h documents the table, with fprintf: the oracle for gm_samples_write_csv. */
static void write_csv_printf(const gm_samples_t *s, const gm_polys_t *p, uint32_t iteration, const char *path) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    int regression = gm_polys_is_regression(p);
    fputs(regression ? "iteration,polygon,x,y,target" : "iteration,polygon,x,y,class,code", f);
    for (uint32_t b = 0; b < s->nbands; b++) fprintf(f, ",b%u", b + 1);
    fputc('\n', f);
    for (size_t i = 0; i < s->n; i++) {
        if (s->polygon[i] == GM_SAMPLE_NO_POLYGON) fprintf(f, "%u,-1,", iteration);
        else fprintf(f, "%u,%" PRId64 ",", iteration, gm_polys_fid(p, s->polygon[i]));
        fprintf(f, "%.17g,%.17g,", s->x[i], s->y[i]);
        if (regression) {
            if (!isnan(s->target[i])) fprintf(f, "%.9g", (double)s->target[i]);
        } else {
            gm_polys_put_csv_field(f, gm_polys_class_name(p, s->code[i]));
            fprintf(f, ",%u", s->code[i]);
        }
        for (uint32_t b = 0; b < s->nbands; b++) {
            float v = s->values[i * s->nbands + b];
            if (isnan(v)) fputc(',', f);
            else fprintf(f, ",%.9g", (double)v);
        }
        fputc('\n', f);
    }
    assert_int_equal(fclose(f), 0);
}

/* gm_samples_write_csv writes the bytes fprintf writes for the documented formats, for class and regression
 * maps, over 3000 rows of coordinates of every magnitude (projected, geographic, tiny, huge, negative zero)
 * and float32 values and targets of every kind (ties, NaN, infinities, subnormals, FLT_MAX), observations
 * included. */
static void test_write_csv_as_printf(void **state) {
    (void)state;
    char err[GM_ERR_LEN] = "";
    gm_polys_t *maps[2] = {open_plain("soil"), NULL};
    gm_polys_options_t po = {.path = fx("map.gpkg:units"), .target_field = "depth"};
    maps[1] = gm_polys_open(&po, utm_wkt, err);
    assert_non_null(maps[1]);
    const float odd[] = {0.0f, -0.0f, INFINITY, -INFINITY, 1e-45f, 1.17549435e-38f, 3.40282347e38f, 1234567.125f,
                         0.5f, 16777216, 100000, 1e-5f, 9.99999975e-5f, -9999};
    gm_rng_t r;
    gm_rng_seed(&r, 12, 34, 56);
    for (int m = 0; m < 2; m++) {
        gm_samples_t *s = gm_samples_new(4);
        for (int i = 0; i < 3000; i++) {
            double scale = ldexp(1, (int)gm_rng_below(&r, 120) - 60);
            double x = i % 3 == 0 ? 5e5 + 4e4 * gm_rng_uniform(&r) : scale * (gm_rng_uniform(&r) - 0.5);
            double y = i % 3 == 0   ? 4.2e6 - 4e4 * gm_rng_uniform(&r)
                       : i % 3 == 1 ? -0.0
                                    : -90 + 180 * gm_rng_uniform(&r);
            float v[4];
            for (int b = 0; b < 4; b++) {
                uint32_t pick = gm_rng_below(&r, 10);
                v[b] = pick == 0 ? NAN : pick == 1 ? odd[gm_rng_below(&r, NITEMS(odd))]
                                                   : (float)(scale * (gm_rng_uniform(&r) - 0.3));
            }
            uint32_t poly = gm_rng_below(&r, 9), code = gm_polys_code(maps[m], poly % 8);
            float target = gm_rng_below(&r, 5) ? v[3] : NAN;
            assert_int_equal(gm_samples_append(s, x, y, poly < 8 ? poly : GM_SAMPLE_NO_POLYGON,
                                               m ? GM_POLYS_NO_CLASS : code, target, v, err), 0);
        }
        assert_int_equal(gm_samples_write_csv(s, maps[m], 12, NULL, fx("fast.csv"), err), 0);
        write_csv_printf(s, maps[m], 12, fx("printf.csv"));
        size_t na, nb;
        char *a = read_file(fx("fast.csv"), &na), *b = read_file(fx("printf.csv"), &nb);
        if (na != nb || memcmp(a, b, na) != 0) {
            size_t k = 0;
            while (k < na && k < nb && a[k] == b[k]) k++;
            fail_msg("map %d: the tables differ at byte %zu: '%.40s' vs printf's '%.40s'", m, k, a + k, b + k);
        }
        free(a);
        free(b);
        gm_samples_destroy(&s);
    }
    gm_polys_destroy(&maps[0]);
    gm_polys_destroy(&maps[1]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rng_known_answer),
        cmocka_unit_test(test_rng_streams),
        cmocka_unit_test(test_rng_ranges),
        cmocka_unit_test(test_polys_plain),
        cmocka_unit_test(test_polys_invalid),
        cmocka_unit_test(test_polys_numeric_class),
        cmocka_unit_test(test_polys_regression),
        cmocka_unit_test(test_polys_reprojection),
        cmocka_unit_test(test_polys_composition),
        cmocka_unit_test(test_polys_class_table),
        cmocka_unit_test(test_polys_errors),
        cmocka_unit_test(test_polys_contains_slabs),
        cmocka_unit_test(test_sample_plain),
        cmocka_unit_test(test_sample_deterministic),
        cmocka_unit_test(test_sample_batch),
        cmocka_unit_test(test_sample_same_as_sequential),
        cmocka_unit_test(test_sample_density),
        cmocka_unit_test(test_sample_regression),
        cmocka_unit_test(test_sample_composition),
        cmocka_unit_test(test_sample_bounded),
        cmocka_unit_test(test_extract_points),
        cmocka_unit_test(test_extract_gdallocationinfo),
        cmocka_unit_test(test_observations),
        cmocka_unit_test(test_write_csv),
        cmocka_unit_test(test_write_csv_as_printf),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
