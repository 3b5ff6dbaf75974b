/* gm_stack.h -- the covariate stack: one or more GDAL rasters on one grid, read block by block as float32. */
#ifndef GM_STACK_H
#define GM_STACK_H

#include <stddef.h>
#include <stdint.h>

typedef struct gm_stack gm_stack_t;

/* The grid every covariate shares. */
typedef struct {
    uint32_t xsize, ysize; /* pixels */
    double gt[6];          /* GDAL geotransform */
    char *crs;             /* WKT, owned by the stack ("" when none) */
    uint32_t block_w, block_h; /* natural block of the first band (whole rows for striped files) */
} gm_grid_t;

/* Opens every band of every raster in 'paths' (npaths >= 1) read-only and checks that they share one grid:
 * size, geotransform (to 1e-9 of a pixel) and CRS. Returns NULL with 'err' naming the file and the
 * difference. The caller owns the stack. Same as gm_stack_open_aligned(paths, npaths, 0, err). */
gm_stack_t *gm_stack_open(const char *const *paths, int npaths, char *err);
/* As gm_stack_open, but when 'align' is non-zero a raster whose grid differs from the first raster's (size,
 * geotransform or CRS) is not an error: it is read through a GDAL warped VRT onto the first raster's grid
 * (its size, geotransform and CRS), as `gdalwarp -r near -et 0 -t_srs CRS -te ... -ts W H` would write it:
 * nearest neighbour, so values are never blended (class codes stay codes, nodata never spreads), with an
 * exact coordinate transformation. Each band keeps its own nodata value; pixels outside the raster or on its
 * nodata (its nodata value or NaN; its per-dataset mask when no band has a nodata value) read as NaN. A raster
 * that has no geotransform, or a CRS where the first has none (or the reverse), cannot be aligned: NULL with
 * 'err'. The caller owns the stack. */
gm_stack_t *gm_stack_open_aligned(const char *const *paths, int npaths, int align, char *err);
/* Opens the same files again (aligned as the original), for use by another thread. Returns NULL with 'err'. */
gm_stack_t *gm_stack_reopen(const gm_stack_t *self, char *err);
/* Returns 1 if raster 'file' (0-based, in the order given) is read through a warped VRT onto the first
 * raster's grid, 0 otherwise. */
int gm_stack_is_warped(const gm_stack_t *self, int file);
/* Returns 1 if any file of the stack is read through a warp (--align), else 0. */
int gm_stack_any_warped(const gm_stack_t *self);
/* Sets GDAL's block cache (a process-wide setting) to what reading the grid in windows 'rows' pixels high,
 * moving right 'cols' pixels at a time, needs so that every natural block of every band, mask and warped
 * source is decoded once: per band, the natural block rows such a window touches plus the next; across, the
 * natural blocks under 'cols' and two more for a tiled file, the full width for a striped one; plus a
 * quarter, and 16 MiB at least. Without it GDAL keeps up to 5% of the machine's RAM of decoded blocks, so a
 * process reading a large raster grows with the raster. A cache the user chose (GDAL_CACHEMAX, in the
 * environment or with --config) is left alone. Returns the cache size in force, in bytes. */
size_t gm_stack_limit_cache(const gm_stack_t *self, uint32_t rows, uint32_t cols);
/* Returns the shared grid (valid while the stack is open). */
const gm_grid_t *gm_stack_grid(const gm_stack_t *self);
/* Returns the total number of bands across all files. */
uint32_t gm_stack_nbands(const gm_stack_t *self);
/* Returns a short description of band 'i' ("slope.tif band 1"), for messages. */
const char *gm_stack_band_name(const gm_stack_t *self, uint32_t i);
/* Returns a column name for band 'i': the file's stem ("slope") for a one-band file, "stem_k" (k from 1)
 * for band k of a multi-band file. */
const char *gm_stack_band_column(const gm_stack_t *self, uint32_t i);
/* Reads the window (x, y, w, h) of every band into 'out' (nbands planes of w*h float32, band after band).
 * Pixels that are nodata in their band (nodata value, mask or NaN) become NaN. Returns 0, or -1 with 'err'. */
int gm_stack_read(gm_stack_t *self, uint32_t x, uint32_t y, uint32_t w, uint32_t h, float *out, char *err);
/* Returns how many band windows this stack has read since it was opened. */
uint64_t gm_stack_reads(const gm_stack_t *self);
/* Closes every file; takes NULL and sets the caller's pointer to NULL. */
void gm_stack_destroy(gm_stack_t **self_p);

#endif
