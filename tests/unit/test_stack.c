/* test_stack.c -- unit tests of the covariate stack (gm_stack.h): rasters on another grid refused, or with
 * alignment read through a warped VRT onto the first raster's grid, checked against a hand computation and
 * against gdalwarp's own output on the same grid; the bound on GDAL's block cache.
 *
 * The group set-up writes every fixture into a temporary folder with the GDAL C API. The grid every stack is
 * aligned onto is base.tif's: 60 x 40 pixels, origin (500000, 5000000), 30 m pixels, EPSG:32633.
 *   base.tif     Float32, value col + 100 * row, nodata -9999 on cols 10..12 of row 5
 *   same.tif     Int16 on the same grid, value 2 * col - row: read directly, never warped
 *   shifted.tif  UInt16, 2 bands, nodata 0, 30 m pixels, origin one pixel east and two south
 *                (500030, 4999940): band 1 = 1000 + col + 100 * row, band 2 = 7000 + col; 0 at col 5, row 5
 *   rescaled.tif Int32 without nodata, 20 m pixels, origin (499993, 5000013), 80 x 65: value 7 * col + 1000 *
 *                row; it ends at x = 501593, short of the grid's 501800, so the last columns are outside it
 *   field.tif    Float32 on a 45 m grid in EPSG:32633 around the base grid, value a smooth field, nodata
 *                -9999 on a disc; reproj.tif is gdalwarp's copy of it in EPSG:32634 at 25 m
 *   nogt.tif     no geotransform; nocrs.tif a geotransform but no CRS; sparse.tif 8192 x 8192 Float32 in
 *                4096 x 4096 tiles, sparse256.tif the same in 256 x 256 tiles, nothing written (for the cache
 *                bound)
 * Hand expectations are worked out in the comments beside them; the other oracle is /usr/bin/gdalwarp with the
 * options the stack documents (-r near -et 0, the first raster's CRS, extent and size). */
#include <ftw.h>
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
#include <cpl_string.h>
#include <gdal.h>
#include <ogr_srs_api.h>

#include "gm_gdal.h"
#include "gm_log.h"
#include "gm_stack.h"

#define X0 500000.0
#define Y0 5000000.0
#define PX 30.0
#define W 60
#define H 40
#define NODATA -9999.0
#define GDALWARP "/usr/bin/gdalwarp"

static char dir[64];  /* the temporary folder */
static char *utm_wkt; /* EPSG:32633 as WKT: the grid's CRS */

/* ---- helpers ---- */

/* Returns the path of fixture 'name' (in one of four rotating buffers). */
static const char *fx(const char *name) {
    static char bufs[4][256];
    static int next;
    char *b = bufs[next++ % 4];
    snprintf(b, sizeof bufs[0], "%s/%s", dir, name);
    return b;
}

/* Fails unless 'err' holds 'needle'. */
static void assert_err_has(const char *err, const char *needle) {
    if (!strstr(err, needle)) fail_msg("error \"%s\" does not mention '%s'", err, needle);
}

/* Writes a GeoTIFF of w x h pixels and 'nb' bands of type 't' with values v(band, col, row), geotransform 'gt'
 * (none if NULL), CRS 'wkt' (none if NULL) and nodata 'nodata' (none if NaN), with creation options 'co'. */
static void write_raster(const char *name, int w, int h, int nb, GDALDataType t, const double *gt, const char *wkt,
                         double nodata, double (*v)(int band, int col, int row), char **co) {
    GDALDriverH drv = GDALGetDriverByName("GTiff");
    assert_non_null(drv);
    GDALDatasetH ds = GDALCreate(drv, fx(name), w, h, nb, t, co);
    assert_non_null(ds);
    if (gt) {
        double g[6];
        memcpy(g, gt, sizeof g);
        assert_int_equal(GDALSetGeoTransform(ds, g), CE_None);
    }
    if (wkt) assert_int_equal(GDALSetProjection(ds, wkt), CE_None);
    double *buf = v ? malloc((size_t)w * h * sizeof *buf) : NULL;
    for (int b = 0; b < nb; b++) {
        GDALRasterBandH band = GDALGetRasterBand(ds, b + 1);
        if (!isnan(nodata)) GDALSetRasterNoDataValue(band, nodata);
        if (!v) continue;
        assert_non_null(buf);
        for (int r = 0; r < h; r++)
            for (int c = 0; c < w; c++) buf[(size_t)r * w + c] = v(b, c, r);
        assert_int_equal(GDALRasterIO(band, GF_Write, 0, 0, w, h, buf, w, h, GDT_Float64, 0, 0), CE_None);
    }
    free(buf);
    GDALClose(ds);
}

static double base_value(int b, int c, int r) { return (r == 5 && c >= 10 && c <= 12) ? NODATA : c + 100.0 * r; }
static double same_value(int b, int c, int r) { return 2.0 * c - r; }
static double shifted_value(int b, int c, int r) {
    if (c == 5 && r == 5) return 0;
    return b == 0 ? 1000.0 + c + 100.0 * r : 7000.0 + c;
}
static double rescaled_value(int b, int c, int r) { return 7.0 * c + 1000.0 * r; }
/* field.tif: a smooth field on a 45 m grid from (499000, 5001000), nodata on a disc of radius 300 m around
 * (500900, 4999400), inside the base grid. */
static double field_value(int b, int c, int r) {
    double x = 499000 + 45 * (c + 0.5), y = 5001000 - 45 * (r + 0.5);
    if (hypot(x - 500900, y - 4999400) < 300) return NODATA;
    return round(100 * sin((x - 499000) / 400.0) + 50 * cos((y - 4998000) / 300.0));
}

/* Opens 'n' rasters aligned (or not), failing the test with the error if the open fails. */
static gm_stack_t *open_or_fail(const char *const *paths, int n, int align) {
    char err[GM_ERR_LEN] = "";
    gm_stack_t *s = gm_stack_open_aligned(paths, n, align, err);
    if (!s) fail_msg("gm_stack_open_aligned: %s", err);
    return s;
}

/* Returns the error of opening 'n' rasters (the open must fail). */
static const char *open_error(const char *const *paths, int n, int align) {
    static char err[GM_ERR_LEN];
    err[0] = '\0';
    gm_stack_t *s = gm_stack_open_aligned(paths, n, align, err);
    if (s) {
        gm_stack_destroy(&s);
        fail_msg("opening %s (align %d) succeeded", paths[n - 1], align);
    }
    return err;
}

/* Reads the whole grid of every band of 's' (nbands planes of W x H). The caller frees it. */
static float *read_all(gm_stack_t *s) {
    char err[GM_ERR_LEN] = "";
    float *out = malloc(sizeof(float) * W * H * gm_stack_nbands(s));
    assert_non_null(out);
    if (gm_stack_read(s, 0, 0, W, H, out, err) < 0) fail_msg("gm_stack_read: %s", err);
    return out;
}

/* Fails unless 'got' equals 'want' (NaN for nodata) at every pixel: same float32 value, or both NaN. */
static void assert_plane_equal(const float *got, const double *want, const char *what) {
    for (int k = 0; k < W * H; k++) {
        int ok = isnan(want[k]) ? isnan(got[k]) : (got[k] == (float)want[k]);
        if (!ok)
            fail_msg("%s: pixel col %d row %d is %.9g, expected %.9g", what, k % W, k / W, (double)got[k], want[k]);
    }
}

/* Runs gdalwarp on fixture 'src' onto the grid (EPSG:32633, the grid's extent and size), nearest neighbour and
 * exact transformation as the stack documents, plus 'extra' options, into fixture 'dst'; returns band 'b' of
 * it (1-based) as doubles with its nodata as NaN. The caller frees it. */
static double *gdalwarp_oracle(const char *src, const char *dst, const char *extra, int b) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             GDALWARP " -q -overwrite -r near -et 0 -wo UNIFIED_SRC_NODATA=NO -t_srs EPSG:32633 -te %.17g %.17g %.17g "
                      "%.17g -ts %d %d %s %s %s",
             X0, Y0 - H * PX, X0 + W * PX, Y0, W, H, extra, fx(src), fx(dst));
    if (system(cmd) != 0) fail_msg("gdalwarp failed: %s", cmd);
    GDALDatasetH ds = GDALOpen(fx(dst), GA_ReadOnly);
    assert_non_null(ds);
    double gt[6];
    assert_int_equal(GDALGetGeoTransform(ds, gt), CE_None);
    assert_true(gt[0] == X0 && gt[1] == PX && gt[3] == Y0 && gt[5] == -PX); /* gdalwarp's grid is ours */
    GDALRasterBandH band = GDALGetRasterBand(ds, b);
    int has;
    double nodata = GDALGetRasterNoDataValue(band, &has);
    double *v = malloc(sizeof(double) * W * H);
    assert_non_null(v);
    assert_int_equal(GDALRasterIO(band, GF_Read, 0, 0, W, H, v, W, H, GDT_Float64, 0, 0), CE_None);
    for (int k = 0; k < W * H; k++)
        if (has && (v[k] == nodata || (isnan(nodata) && isnan(v[k])))) v[k] = NAN;
    GDALClose(ds);
    return v;
}

/* ---- fixtures ---- */

static int setup(void **state) {
    (void)state;
    gm_gdal_init();
    strcpy(dir, "/tmp/gm_test_stack_XXXXXX");
    if (!mkdtemp(dir)) return -1;
    OGRSpatialReferenceH utm = OSRNewSpatialReference(NULL);
    if (OSRImportFromEPSG(utm, 32633) != OGRERR_NONE) return -1;
    OSRExportToWkt(utm, &utm_wkt);
    OSRDestroySpatialReference(utm);
    const double grid[6] = {X0, PX, 0, Y0, 0, -PX};
    write_raster("base.tif", W, H, 1, GDT_Float32, grid, utm_wkt, NODATA, base_value, NULL);
    write_raster("same.tif", W, H, 1, GDT_Int16, grid, utm_wkt, NAN, same_value, NULL);
    write_raster("shifted.tif", W, H, 2, GDT_UInt16, (double[6]){X0 + PX, PX, 0, Y0 - 2 * PX, 0, -PX}, utm_wkt, 0,
                 shifted_value, NULL);
    write_raster("rescaled.tif", 80, 65, 1, GDT_Int32, (double[6]){X0 - 7, 20, 0, Y0 + 13, 0, -20}, utm_wkt, NAN,
                 rescaled_value, NULL);
    write_raster("field.tif", 90, 70, 1, GDT_Float32, (double[6]){499000, 45, 0, 5001000, 0, -45}, utm_wkt, NODATA,
                 field_value, NULL);
    write_raster("nogt.tif", W, H, 1, GDT_Float32, NULL, NULL, NAN, same_value, NULL);
    write_raster("nocrs.tif", W, H, 1, GDT_Float32, (double[6]){X0 + PX, PX, 0, Y0, 0, -PX}, NULL, NAN, same_value,
                 NULL);
    char **co = CSLSetNameValue(NULL, "TILED", "YES");
    co = CSLSetNameValue(co, "BLOCKXSIZE", "4096");
    co = CSLSetNameValue(co, "BLOCKYSIZE", "4096");
    co = CSLSetNameValue(co, "SPARSE_OK", "TRUE");
    write_raster("sparse.tif", 8192, 8192, 1, GDT_Float32, grid, utm_wkt, NAN, NULL, co);
    co = CSLSetNameValue(co, "BLOCKXSIZE", "256");
    co = CSLSetNameValue(co, "BLOCKYSIZE", "256");
    write_raster("sparse256.tif", 8192, 8192, 1, GDT_Float32, grid, utm_wkt, NAN, NULL, co);
    CSLDestroy(co);
    if (access(GDALWARP, X_OK) == 0) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, GDALWARP " -q -overwrite -r near -t_srs EPSG:32634 -tr 25 25 %s %s", fx("field.tif"),
                 fx("reproj.tif"));
        if (system(cmd) != 0) return -1;
    }
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

/* ---- tests ---- */

/* Without alignment a raster on another grid is refused, naming it and the first raster. */
static void test_refused_without_align(void **state) {
    (void)state;
    const char *paths[] = {fx("base.tif"), fx("shifted.tif")};
    const char *err = open_error(paths, 2, 0);
    assert_err_has(err, "shifted.tif: grid differs from base.tif");
}

/* A raster on the same grid is read directly even with alignment: never warped, its own values. */
static void test_same_grid_read_directly(void **state) {
    (void)state;
    const char *paths[] = {fx("base.tif"), fx("same.tif")};
    gm_stack_t *s = open_or_fail(paths, 2, 1);
    assert_int_equal(gm_stack_nbands(s), 2);
    assert_int_equal(gm_stack_is_warped(s, 0), 0);
    assert_int_equal(gm_stack_is_warped(s, 1), 0);
    float *got = read_all(s);
    double want[W * H];
    for (int k = 0; k < W * H; k++) want[k] = same_value(0, k % W, k / W);
    assert_plane_equal(got + W * H, want, "same.tif");
    for (int k = 0; k < W * H; k++) {
        double v = base_value(0, k % W, k / W);
        want[k] = v == NODATA ? NAN : v;
    }
    assert_plane_equal(got, want, "base.tif");
    free(got);
    gm_stack_destroy(&s);
}

/* shifted.tif, one pixel east and two south: our pixel (c, r) has its centre at source column c - 1 and row
 * r - 2, both exactly at a source pixel centre. So band 1 is 1000 + (c - 1) + 100 (r - 2) and band 2 is
 * 7000 + (c - 1) where c >= 1 and r >= 2, NaN elsewhere (outside the source) and at (6, 7), the source's nodata
 * pixel (5, 5). gdalwarp (when installed) gives the same. */
static void test_shift_by_hand_and_gdalwarp(void **state) {
    (void)state;
    const char *paths[] = {fx("base.tif"), fx("shifted.tif")};
    gm_stack_t *s = open_or_fail(paths, 2, 1);
    assert_int_equal(gm_stack_nbands(s), 3);
    assert_int_equal(gm_stack_is_warped(s, 0), 0);
    assert_int_equal(gm_stack_is_warped(s, 1), 1);
    float *got = read_all(s);
    double want[2][W * H];
    for (int k = 0; k < W * H; k++) {
        int c = k % W, r = k / W, sc = c - 1, sr = r - 2;
        int valid = sc >= 0 && sr >= 0 && !(sc == 5 && sr == 5);
        want[0][k] = valid ? 1000.0 + sc + 100.0 * sr : NAN;
        want[1][k] = valid ? 7000.0 + sc : NAN;
    }
    assert_plane_equal(got + W * H, want[0], "shifted.tif band 1 by hand");
    assert_plane_equal(got + 2 * W * H, want[1], "shifted.tif band 2 by hand");
    for (int b = 1; b <= 2 && access(GDALWARP, X_OK) == 0; b++) {
        double *oracle = gdalwarp_oracle("shifted.tif", "shifted_gdalwarp.tif", "", b);
        assert_plane_equal(got + (size_t)b * W * H, oracle, "shifted.tif against gdalwarp");
        free(oracle);
    }
    free(got);
    gm_stack_destroy(&s);
}

/* rescaled.tif, 20 m pixels from (499993, 5000013): our pixel (c, r) has its centre at source column
 * (15 + 30 c + 7) / 20 = 1.1 + 1.5 c and row (15 + 30 r + 13) / 20 = 1.4 + 1.5 r, never on a source pixel
 * edge; nearest neighbour takes floor of both. Columns whose source column is 80 or more (1.1 + 1.5 c >= 80:
 * c >= 53) lie outside the source: NaN, as the file has no nodata value of its own. gdalwarp, asked for
 * float64 with NaN as nodata, gives the same (when installed). */
static void test_rescale_by_hand_and_gdalwarp(void **state) {
    (void)state;
    const char *paths[] = {fx("base.tif"), fx("rescaled.tif")};
    gm_stack_t *s = open_or_fail(paths, 2, 1);
    assert_int_equal(gm_stack_is_warped(s, 1), 1);
    float *got = read_all(s);
    double want[W * H];
    int outside = 0;
    for (int k = 0; k < W * H; k++) {
        int c = k % W, r = k / W;
        int sc = (int)floor(1.1 + 1.5 * c), sr = (int)floor(1.4 + 1.5 * r);
        want[k] = sc < 80 && sr < 65 ? rescaled_value(0, sc, sr) : NAN;
        outside += sc >= 80;
    }
    assert_int_equal(outside, (W - 53) * H);
    assert_plane_equal(got + W * H, want, "rescaled.tif by hand");
    if (access(GDALWARP, X_OK) == 0) {
        double *oracle = gdalwarp_oracle("rescaled.tif", "rescaled_gdalwarp.tif", "-ot Float64 -dstnodata nan", 1);
        assert_plane_equal(got + W * H, oracle, "rescaled.tif against gdalwarp");
        free(oracle);
    }
    free(got);
    gm_stack_destroy(&s);
}

/* reproj.tif, EPSG:32634 at 25 m: the aligned stack reads what gdalwarp writes back onto our grid, pixel for
 * pixel, the nodata disc included; read by windows of 16 x 16 (several VRT blocks) it is the same again. */
static void test_reproject_against_gdalwarp(void **state) {
    (void)state;
    if (access(GDALWARP, X_OK) != 0) skip();
    const char *paths[] = {fx("base.tif"), fx("reproj.tif")};
    gm_stack_t *s = open_or_fail(paths, 2, 1);
    assert_int_equal(gm_stack_is_warped(s, 1), 1);
    float *got = read_all(s);
    double *oracle = gdalwarp_oracle("reproj.tif", "reproj_gdalwarp.tif", "", 1);
    int valid = 0, nodata = 0;
    for (int k = 0; k < W * H; k++) isnan(oracle[k]) ? nodata++ : valid++;
    assert_true(valid > W * H / 2); /* the field covers the grid... */
    assert_true(nodata > 100);      /* ...but for the disc of about 314 pixels */
    assert_plane_equal(got + W * H, oracle, "reproj.tif against gdalwarp");
    float *win = malloc(sizeof(float) * 2 * 16 * 16);
    float *tiled = malloc(sizeof(float) * W * H);
    assert_non_null(win);
    assert_non_null(tiled);
    char err[GM_ERR_LEN] = "";
    for (uint32_t y = 0; y < H; y += 16)
        for (uint32_t x = 0; x < W; x += 16) {
            uint32_t w = W - x < 16 ? W - x : 16, h = H - y < 16 ? H - y : 16;
            if (gm_stack_read(s, x, y, w, h, win, err) < 0) fail_msg("gm_stack_read: %s", err);
            for (uint32_t r = 0; r < h; r++) memcpy(tiled + (y + r) * W + x, win + w * h + r * w, w * sizeof(float));
        }
    assert_plane_equal(tiled, oracle, "reproj.tif read by 16 x 16 windows");
    free(tiled);
    free(win);
    free(oracle);
    free(got);
    gm_stack_destroy(&s);
}

/* A reopened stack (another reader thread) is aligned as the original and reads the same values. */
static void test_reopen_keeps_alignment(void **state) {
    (void)state;
    const char *paths[] = {fx("base.tif"), fx("shifted.tif"), fx("rescaled.tif")};
    gm_stack_t *s = open_or_fail(paths, 3, 1);
    char err[GM_ERR_LEN] = "";
    gm_stack_t *again = gm_stack_reopen(s, err);
    if (!again) fail_msg("gm_stack_reopen: %s", err);
    assert_int_equal(gm_stack_is_warped(again, 1), 1);
    assert_int_equal(gm_stack_is_warped(again, 2), 1);
    assert_int_equal(gm_stack_is_warped(again, 3), 0); /* no such file */
    float *a = read_all(s), *b = read_all(again);
    assert_int_equal(gm_stack_nbands(s), 4);
    assert_memory_equal(a, b, sizeof(float) * W * H * 4);
    free(a);
    free(b);
    gm_stack_destroy(&again);
    gm_stack_destroy(&s);
    assert_null(s);
}

/* What cannot be aligned fails, naming the file and why. */
static void test_align_errors(void **state) {
    (void)state;
    const char *nogt[] = {fx("base.tif"), fx("nogt.tif")};
    assert_err_has(open_error(nogt, 2, 1), "nogt.tif: cannot align onto base.tif: the file has no geotransform");
    const char *nocrs[] = {fx("base.tif"), fx("nocrs.tif")};
    assert_err_has(open_error(nocrs, 2, 1), "nocrs.tif: cannot align onto base.tif: one has a CRS, the other none");
    const char *missing[] = {fx("base.tif"), fx("absent.tif")};
    assert_err_has(open_error(missing, 2, 1), "absent.tif: no such file");
}

/* The cache bound. base.tif + same.tif need little: the 16 MiB floor. sparse.tif, 8192 wide in 4096-row tiles,
 * read 256 rows at a time needs ceil(256 / 4096) + 2 = 3 tile rows, capped at its 8192 rows + one tile row =
 * 12288 rows; across, 256 columns touch one tile and two more, 12288 columns, more than the 8192 there are:
 * 8192 * 12288 * 4 = 402653184 bytes, plus a quarter: 503316480. sparse256.tif read in windows of 4096 x 4096
 * needs 16 + 2 tile rows (4608 rows) and, across, 16 + 2 tiles (4608 columns), not its 8192:
 * 4608 * 4608 * 4 = 84934656, plus a quarter: 106168320. A cache the user set (GDAL_CACHEMAX) is left as it is. */
static void test_limit_cache(void **state) {
    (void)state;
    GIntBig before = GDALGetCacheMax64();
    const char *small[] = {fx("base.tif"), fx("same.tif")};
    gm_stack_t *s = open_or_fail(small, 2, 0);
    assert_int_equal(gm_stack_limit_cache(s, 16, 16), (size_t)16 << 20);
    assert_int_equal(GDALGetCacheMax64(), (GIntBig)16 << 20);
    gm_stack_destroy(&s);
    const char *big[] = {fx("sparse.tif")};
    s = open_or_fail(big, 1, 0);
    assert_int_equal(gm_stack_limit_cache(s, 256, 256), (size_t)503316480);
    CPLSetConfigOption("GDAL_CACHEMAX", "64");
    GDALSetCacheMax64((GIntBig)77 << 20);
    assert_int_equal(gm_stack_limit_cache(s, 256, 256), (size_t)77 << 20);
    CPLSetConfigOption("GDAL_CACHEMAX", NULL);
    gm_stack_destroy(&s);
    const char *tiled[] = {fx("sparse256.tif")};
    s = open_or_fail(tiled, 1, 0);
    assert_int_equal(gm_stack_limit_cache(s, 4096, 4096), (size_t)106168320);
    CPLSetConfigOption("GDAL_CACHEMAX", NULL);
    GDALSetCacheMax64(before);
    gm_stack_destroy(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refused_without_align),
        cmocka_unit_test(test_same_grid_read_directly),
        cmocka_unit_test(test_shift_by_hand_and_gdalwarp),
        cmocka_unit_test(test_rescale_by_hand_and_gdalwarp),
        cmocka_unit_test(test_reproject_against_gdalwarp),
        cmocka_unit_test(test_reopen_keeps_alignment),
        cmocka_unit_test(test_align_errors),
        cmocka_unit_test(test_limit_cache),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
