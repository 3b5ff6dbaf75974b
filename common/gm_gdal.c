/* gm_gdal.c -- GDAL set-up and error text shared by every module that opens a dataset. */
#include "gm_gdal.h"

#include <cpl_error.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>

#include "gm_log.h"

static pthread_once_t once = PTHREAD_ONCE_INIT;

/* Swallows GDAL's own printing; callers read CPLGetLastErrorMsg into their error messages. */
static void quiet_handler(CPLErr cls, CPLErrorNum num, const char *msg) {
    (void)cls;
    (void)num;
    (void)msg;
}

static void init_once(void) {
    GDALAllRegister();
    CPLSetErrorHandler(quiet_handler);
}

void gm_gdal_init(void) { pthread_once(&once, init_once); }

const char *gm_gdal_last_error(void) {
    const char *m = CPLGetLastErrorMsg();
    return (m && *m) ? m : "unknown GDAL error";
}

GDALDatasetH gm_gdal_open_raster(const char *path, char *err) {
    gm_gdal_init();
    CPLErrorReset();
    GDALDatasetH ds = GDALOpenEx(path, GDAL_OF_RASTER | GDAL_OF_READONLY | GDAL_OF_VERBOSE_ERROR, NULL, NULL, NULL);
    if (!ds) {
        struct stat st;
        if (strncmp(path, "/vsi", 4) != 0 && strchr(path, ':') == NULL && stat(path, &st) != 0)
            gm_err(err, "%s: no such file", path);
        else
            gm_err(err, "%s: not a readable raster (%s)", path, gm_gdal_last_error());
        return NULL;
    }
    if (GDALGetRasterCount(ds) < 1) {
        GDALClose(ds);
        gm_err(err, "%s: raster has no bands", path);
        return NULL;
    }
    return ds;
}
