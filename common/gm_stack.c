/* gm_stack.c -- the covariate stack: one or more GDAL rasters on one grid, read block by block as float32. */
#include "gm_stack.h"

#include <assert.h>
#include <cpl_conv.h>
#include <cpl_string.h>
#include <gdal.h>
#include <gdal_alg.h>
#include <gdalwarper.h>
#include <math.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#include <ogr_srs_api.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gm_gdal.h"
#include "gm_log.h"

/* One band of the stack and how its nodata is found. */
typedef struct {
    GDALRasterBandH band;
    int file;             /* index into paths */
    int index;            /* 1-based band number in its file */
    int has_nodata;
    double nodata;
    int use_mask;         /* a mask band (per-dataset mask or alpha) marks nodata */
    int exact_in_float;   /* the band's values convert exactly to float32 */
    char label[96];
    char column[96];
} band_t;

struct gm_stack {
    int npaths;
    int align;            /* rasters on another grid are warped onto the first's */
    char **paths;
    GDALDatasetH *ds;     /* what is read: the file, or a warped VRT over it */
    GDALDatasetH *src;    /* the file under a warped VRT, NULL when read directly */
    uint32_t nbands;
    band_t *bands;
    gm_grid_t grid;
    double *scratch;      /* w*h doubles for bands that do not fit float32 exactly */
    unsigned char *mask;  /* w*h mask bytes */
    size_t scratch_cap, mask_cap;
    uint64_t reads;
};

/* Returns the last part of a path, for messages. */
static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* Compares the grid of dataset 'ds' (file 'i') with the stack's grid. Returns 0, or -1 with 'err' saying how
 * it differs. */
static int check_grid(gm_stack_t *self, int i, char *err) {
    GDALDatasetH ds = self->ds[i];
    const char *name = self->paths[i], *first = base_name(self->paths[0]);
    uint32_t xs = (uint32_t)GDALGetRasterXSize(ds), ys = (uint32_t)GDALGetRasterYSize(ds);
    if (xs != self->grid.xsize || ys != self->grid.ysize)
        return gm_err(err, "%s: grid differs from %s (size %ux%u vs %ux%u)", name, first, xs, ys, self->grid.xsize,
                      self->grid.ysize);
    double gt[6];
    int has_gt = GDALGetGeoTransform(ds, gt) == CE_None;
    const double *g0 = self->grid.gt;
    double tol = 1e-9 * (fabs(g0[1]) + fabs(g0[5]));
    if (!has_gt) memcpy(gt, (double[6]){0, 1, 0, 0, 0, 1}, sizeof gt);
    if (fabs(gt[1] - g0[1]) > tol || fabs(gt[5] - g0[5]) > tol || fabs(gt[2] - g0[2]) > tol || fabs(gt[4] - g0[4]) > tol)
        return gm_err(err, "%s: grid differs from %s (pixel size %g x %g vs %g x %g)", name, first, gt[1], gt[5], g0[1],
                      g0[5]);
    if (fabs(gt[0] - g0[0]) > tol || fabs(gt[3] - g0[3]) > tol)
        return gm_err(err, "%s: grid differs from %s (origin %.10g,%.10g vs %.10g,%.10g)", name, first, gt[0], gt[3],
                      g0[0], g0[3]);
    const char *wkt = GDALGetProjectionRef(ds);
    if (!wkt) wkt = "";
    if (!*wkt != !*self->grid.crs)
        return gm_err(err, "%s: grid differs from %s (one has a CRS, the other none)", name, first);
    if (*wkt) {
        OGRSpatialReferenceH a = OSRNewSpatialReference(wkt), b = OSRNewSpatialReference(self->grid.crs);
        int same = a && b && OSRIsSame(a, b);
        OSRDestroySpatialReference(a);
        OSRDestroySpatialReference(b);
        if (!same) return gm_err(err, "%s: grid differs from %s (CRS differs)", name, first);
    }
    return 0;
}

/* Replaces file 'i' by a warped VRT of it on the stack's grid: nearest neighbour, exact transformation, each
 * band's nodata kept (NaN for a band without one, in a float64 VRT), everything outside the file nodata. The
 * file stays open under the VRT (in self->src). Returns 0, or -1 with 'err'. */
static int warp_onto_grid(gm_stack_t *self, int i, char *err) {
    GDALDatasetH file = self->ds[i];
    const char *name = self->paths[i], *first = base_name(self->paths[0]);
    double gt[6];
    if (GDALGetGeoTransform(file, gt) != CE_None && GDALGetGCPCount(file) == 0)
        return gm_err(err, "%s: cannot align onto %s: the file has no geotransform", name, first);
    const char *wkt = GDALGetProjectionRef(file);
    if (!wkt) wkt = "";
    if (!*wkt != !*self->grid.crs)
        return gm_err(err, "%s: cannot align onto %s: one has a CRS, the other none", name, first);
    int nb = GDALGetRasterCount(file), any_nodata = 0, keep_type = 1;
    GDALDataType type = GDALGetRasterDataType(GDALGetRasterBand(file, 1));
    GDALWarpOptions *wo = GDALCreateWarpOptions();
    wo->hSrcDS = file;
    wo->eResampleAlg = GRA_NearestNeighbour;
    wo->nBandCount = nb;
    wo->panSrcBands = CPLMalloc(sizeof(int) * (size_t)nb);
    wo->panDstBands = CPLMalloc(sizeof(int) * (size_t)nb);
    wo->padfSrcNoDataReal = CPLMalloc(sizeof(double) * (size_t)nb);
    wo->padfDstNoDataReal = CPLMalloc(sizeof(double) * (size_t)nb);
    for (int b = 0; b < nb; b++) {
        GDALRasterBandH band = GDALGetRasterBand(file, b + 1);
        int has;
        double nodata = GDALGetRasterNoDataValue(band, &has);
        wo->panSrcBands[b] = wo->panDstBands[b] = b + 1;
        wo->padfSrcNoDataReal[b] = wo->padfDstNoDataReal[b] = has ? nodata : NAN;
        any_nodata |= has;
        if (!has || GDALGetRasterDataType(band) != type) keep_type = 0;
    }
    if (!any_nodata) {
        /* no nodata value anywhere: let GDAL use the file's per-dataset mask, if any */
        CPLFree(wo->padfSrcNoDataReal);
        wo->padfSrcNoDataReal = NULL;
    }
    /* a band without nodata needs NaN to mark what lies outside the file, so a float64 VRT */
    wo->eWorkingDataType = keep_type ? type : GDT_Float64;
    wo->papszWarpOptions = CSLSetNameValue(wo->papszWarpOptions, "INIT_DEST", "NO_DATA");
    wo->papszWarpOptions = CSLSetNameValue(wo->papszWarpOptions, "UNIFIED_SRC_NODATA", "NO");
    char **to = *self->grid.crs ? CSLSetNameValue(NULL, "DST_SRS", self->grid.crs) : NULL;
    CPLErrorReset();
    wo->pTransformerArg = GDALCreateGenImgProjTransformer2(file, NULL, to);
    CSLDestroy(to);
    if (!wo->pTransformerArg) {
        GDALDestroyWarpOptions(wo);
        return gm_err(err, "%s: cannot align onto %s: %s", name, first, gm_gdal_last_error());
    }
    wo->pfnTransformer = GDALGenImgProjTransform;
    GDALSetGenImgProjTransformerDstGeoTransform(wo->pTransformerArg, self->grid.gt);
    /* the VRT owns the transformer from here on, and holds a reference to the file */
    GDALDatasetH vrt = GDALCreateWarpedVRT(file, (int)self->grid.xsize, (int)self->grid.ysize, self->grid.gt, wo);
    GDALDestroyWarpOptions(wo);
    if (!vrt) return gm_err(err, "%s: cannot align onto %s: %s", name, first, gm_gdal_last_error());
    if (*self->grid.crs) GDALSetProjection(vrt, self->grid.crs);
    for (int b = 1; b <= nb; b++) {
        GDALRasterBandH band = GDALGetRasterBand(vrt, b);
        int has;
        GDALGetRasterNoDataValue(band, &has);
        if (!has) GDALSetRasterNoDataValue(band, NAN);
    }
    self->src[i] = file;
    self->ds[i] = vrt;
    return 0;
}

/* Records band 'bi' (1-based) of file 'i' in the stack. */
static void add_band(gm_stack_t *self, int i, int bi) {
    band_t *b = &self->bands[self->nbands++];
    b->band = GDALGetRasterBand(self->ds[i], bi);
    b->file = i;
    b->index = bi;
    b->nodata = GDALGetRasterNoDataValue(b->band, &b->has_nodata);
    int flags = GDALGetMaskFlags(b->band);
    b->use_mask = !(flags & GMF_ALL_VALID) && !(flags & GMF_NODATA);
    GDALDataType t = GDALGetRasterDataType(b->band);
    b->exact_in_float = t == GDT_Byte || t == GDT_UInt16 || t == GDT_Int16 || t == GDT_Float32
#if GDAL_VERSION_NUM >= 3070000
                        || t == GDT_Int8
#endif
        ;
    snprintf(b->label, sizeof b->label, "%s band %d", base_name(self->paths[i]), bi);
    const char *base = base_name(self->paths[i]);
    const char *dot = strrchr(base, '.');
    size_t stem = dot && dot != base ? (size_t)(dot - base) : strlen(base);
    if (stem > 80) stem = 80;
    if (GDALGetRasterCount(self->ds[i]) == 1) snprintf(b->column, sizeof b->column, "%.*s", (int)stem, base);
    else snprintf(b->column, sizeof b->column, "%.*s_%d", (int)stem, base, bi);
}

gm_stack_t *gm_stack_open(const char *const *paths, int npaths, char *err) {
    return gm_stack_open_aligned(paths, npaths, 0, err);
}

gm_stack_t *gm_stack_open_aligned(const char *const *paths, int npaths, int align, char *err) {
    assert(npaths >= 1);
    gm_gdal_init();
    gm_stack_t *self = calloc(1, sizeof *self);
    if (!self) {
        gm_err(err, "out of memory");
        return NULL;
    }
    self->npaths = npaths;
    self->align = align != 0;
    self->paths = calloc((size_t)npaths, sizeof *self->paths);
    self->ds = calloc((size_t)npaths, sizeof *self->ds);
    self->src = calloc((size_t)npaths, sizeof *self->src);
    if (!self->paths || !self->ds || !self->src) {
        gm_err(err, "out of memory");
        goto fail;
    }
    uint32_t total = 0;
    for (int i = 0; i < npaths; i++) {
        self->paths[i] = strdup(paths[i]);
        if (!self->paths[i]) {
            gm_err(err, "out of memory");
            goto fail;
        }
        self->ds[i] = gm_gdal_open_raster(paths[i], err);
        if (!self->ds[i]) goto fail;
        total += (uint32_t)GDALGetRasterCount(self->ds[i]);
    }
    GDALDatasetH d0 = self->ds[0];
    self->grid.xsize = (uint32_t)GDALGetRasterXSize(d0);
    self->grid.ysize = (uint32_t)GDALGetRasterYSize(d0);
    if (GDALGetGeoTransform(d0, self->grid.gt) != CE_None)
        memcpy(self->grid.gt, (double[6]){0, 1, 0, 0, 0, 1}, sizeof self->grid.gt);
    const char *wkt = GDALGetProjectionRef(d0);
    self->grid.crs = strdup(wkt ? wkt : "");
    int bw, bh;
    GDALGetBlockSize(GDALGetRasterBand(d0, 1), &bw, &bh);
    self->grid.block_w = (uint32_t)bw;
    self->grid.block_h = (uint32_t)bh;
    self->bands = calloc(total, sizeof *self->bands);
    if (!self->grid.crs || !self->bands) {
        gm_err(err, "out of memory");
        goto fail;
    }
    for (int i = 0; i < npaths; i++) {
        if (i > 0 && check_grid(self, i, err) < 0 && (!self->align || warp_onto_grid(self, i, err) < 0)) goto fail;
        for (int bi = 1; bi <= GDALGetRasterCount(self->ds[i]); bi++) add_band(self, i, bi);
    }
    return self;
fail:
    gm_stack_destroy(&self);
    return NULL;
}

gm_stack_t *gm_stack_reopen(const gm_stack_t *self, char *err) {
    return gm_stack_open_aligned((const char *const *)self->paths, self->npaths, self->align, err);
}

int gm_stack_is_warped(const gm_stack_t *self, int file) {
    return file >= 0 && file < self->npaths && self->src[file] != NULL;
}

int gm_stack_any_warped(const gm_stack_t *self) {
    for (int i = 0; i < self->npaths; i++)
        if (self->src[i]) return 1;
    return 0;
}

/* Returns the bytes of decoded blocks one band needs in GDAL's cache so that reading it in windows 'rows'
 * pixels high, moving right across 'cols' pixels at a time, decodes each natural block once: the natural block
 * rows one such window touches (one more when misaligned) and the first of the next; across, the natural
 * blocks under 'cols' (two more) for a tiled band, the full width for a striped one. */
static size_t band_cache_bytes(GDALRasterBandH band, double rows, double cols) {
    int bw, bh;
    GDALGetBlockSize(band, &bw, &bh);
    if (bw < 1 || bh < 1) return 0;
    size_t xsize = (size_t)GDALGetRasterBandXSize(band), ysize = (size_t)GDALGetRasterBandYSize(band);
    size_t width = (xsize + (size_t)bw - 1) / (size_t)bw * (size_t)bw;
    size_t window = ((size_t)ceil(cols) + (size_t)bw - 1) / (size_t)bw * (size_t)bw + 2 * (size_t)bw;
    if (window < width) width = window;
    size_t nat_rows = ((size_t)ceil(rows) + (size_t)bh - 1) / (size_t)bh + 2; /* + misalignment + next row */
    size_t need_rows = nat_rows * (size_t)bh;
    if (need_rows > ysize + (size_t)bh) need_rows = ysize + (size_t)bh;
    return width * need_rows * (size_t)GDALGetDataTypeSizeBytes(GDALGetRasterDataType(band));
}

size_t gm_stack_limit_cache(const gm_stack_t *self, uint32_t rows, uint32_t cols) {
    if (CPLGetConfigOption("GDAL_CACHEMAX", NULL)) return (size_t)GDALGetCacheMax64();
    size_t need = 0;
    for (uint32_t i = 0; i < self->nbands; i++) {
        const band_t *b = &self->bands[i];
        need += band_cache_bytes(b->band, rows, cols);
        if (b->use_mask) need += band_cache_bytes(GDALGetMaskBand(b->band), rows, cols);
        GDALDatasetH src = self->src[b->file];
        if (src) {
            /* the warper reads the file's own blocks: as many of them as cover our window */
            double gt[6], sy = 1, sx = 1;
            if (GDALGetGeoTransform(src, gt) == CE_None && gt[5] != 0 && gt[1] != 0) {
                sy = fabs(self->grid.gt[5]) / fabs(gt[5]);
                sx = fabs(self->grid.gt[1]) / fabs(gt[1]);
            }
            GDALRasterBandH sb = GDALGetRasterBand(src, b->index);
            need += band_cache_bytes(sb, rows * sy, cols * sx);
            if (b->use_mask) need += band_cache_bytes(GDALGetMaskBand(sb), rows * sy, cols * sx);
        }
    }
    need += need / 4;
    if (need < ((size_t)16 << 20)) need = (size_t)16 << 20;
    GDALSetCacheMax64((GIntBig)need);
    return (size_t)GDALGetCacheMax64();
}

const gm_grid_t *gm_stack_grid(const gm_stack_t *self) { return &self->grid; }

uint32_t gm_stack_nbands(const gm_stack_t *self) { return self->nbands; }

const char *gm_stack_band_name(const gm_stack_t *self, uint32_t i) {
    return i < self->nbands ? self->bands[i].label : "?";
}

const char *gm_stack_band_column(const gm_stack_t *self, uint32_t i) {
    return i < self->nbands ? self->bands[i].column : "?";
}

uint64_t gm_stack_reads(const gm_stack_t *self) { return self->reads; }

/* Grows a scratch buffer to at least 'need' bytes. Returns 0, or -1. */
static int reserve(void **buf, size_t *cap, size_t need) {
    if (*cap >= need) return 0;
    void *p = realloc(*buf, need);
    if (!p) return -1;
    *buf = p;
    *cap = need;
    return 0;
}

/* Sets the 'n' values of 'v' equal to 'nd' to NaN (four at a time where SSE2 is there: C's == on each). */
static void nodata_to_nan(float *v, size_t n, float nd) {
    size_t k = 0;
#ifdef __SSE2__
    __m128 ndv = _mm_set1_ps(nd), nan = _mm_set1_ps(NAN);
    for (; k + 4 <= n; k += 4) {
        __m128 x = _mm_loadu_ps(v + k), eq = _mm_cmpeq_ps(x, ndv);
        _mm_storeu_ps(v + k, _mm_or_ps(_mm_and_ps(eq, nan), _mm_andnot_ps(eq, x)));
    }
#endif
    for (; k < n; k++)
        if (v[k] == nd) v[k] = NAN;
}

int gm_stack_read(gm_stack_t *self, uint32_t x, uint32_t y, uint32_t w, uint32_t h, float *out, char *err) {
    size_t n = (size_t)w * h;
    for (uint32_t i = 0; i < self->nbands; i++) {
        band_t *b = &self->bands[i];
        float *plane = out + n * i;
        CPLErr e;
        if (b->exact_in_float) {
            e = GDALRasterIO(b->band, GF_Read, (int)x, (int)y, (int)w, (int)h, plane, (int)w, (int)h, GDT_Float32, 0, 0);
            if (e == CE_None && b->has_nodata) {
                float nd = (float)b->nodata;
                nodata_to_nan(plane, n, nd);
            }
        } else {
            /* Int32, UInt32, Float64...: compare with nodata in double precision, then narrow. */
            if (reserve((void **)&self->scratch, &self->scratch_cap, n * sizeof(double)) < 0)
                return gm_err(err, "%s: out of memory reading a %ux%u block", b->label, w, h);
            e = GDALRasterIO(b->band, GF_Read, (int)x, (int)y, (int)w, (int)h, self->scratch, (int)w, (int)h,
                             GDT_Float64, 0, 0);
            if (e == CE_None)
                for (size_t k = 0; k < n; k++) {
                    double v = self->scratch[k];
                    plane[k] = (b->has_nodata && v == b->nodata) ? NAN : (float)v;
                }
        }
        if (e != CE_None)
            return gm_err(err, "%s: cannot read block %u,%u %ux%u: %s", b->label, x, y, w, h, gm_gdal_last_error());
        if (b->use_mask) {
            if (reserve((void **)&self->mask, &self->mask_cap, n) < 0)
                return gm_err(err, "%s: out of memory reading a %ux%u mask", b->label, w, h);
            e = GDALRasterIO(GDALGetMaskBand(b->band), GF_Read, (int)x, (int)y, (int)w, (int)h, self->mask, (int)w,
                             (int)h, GDT_Byte, 0, 0);
            if (e != CE_None)
                return gm_err(err, "%s: cannot read the mask of block %u,%u: %s", b->label, x, y, gm_gdal_last_error());
            for (size_t k = 0; k < n; k++)
                if (!self->mask[k]) plane[k] = NAN;
        }
        self->reads++;
    }
    return 0;
}

void gm_stack_destroy(gm_stack_t **self_p) {
    assert(self_p);
    gm_stack_t *self = *self_p;
    if (!self) return;
    for (int i = 0; i < self->npaths; i++) {
        if (self->ds && self->ds[i]) GDALClose(self->ds[i]); /* a VRT first: it holds a reference to its file */
        if (self->src && self->src[i]) GDALClose(self->src[i]);
        if (self->paths) free(self->paths[i]);
    }
    free(self->ds);
    free(self->src);
    free(self->paths);
    free(self->bands);
    free(self->grid.crs);
    free(self->scratch);
    free(self->mask);
    free(self);
    *self_p = NULL;
}
