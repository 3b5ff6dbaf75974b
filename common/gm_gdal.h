/* gm_gdal.h -- GDAL set-up and error text shared by every module that opens a dataset. */
#ifndef GM_GDAL_H
#define GM_GDAL_H

#include <gdal.h>

/* Registers GDAL's drivers once per process and keeps GDAL from printing errors itself. Thread-safe. */
void gm_gdal_init(void);
/* Returns the calling thread's last GDAL error message, or "unknown GDAL error". */
const char *gm_gdal_last_error(void);
/* Opens 'path' as a raster, read-only. Returns NULL with 'err': "PATH: no such file", "PATH: not a raster (...)". */
GDALDatasetH gm_gdal_open_raster(const char *path, char *err);

#endif
