/* writer_outputs.c -- the output datasets: created under temporary names, written tile by tile, renamed when complete. */
#include <cpl_conv.h>
#include <cpl_error.h>
#include <cpl_string.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "gm_gdal.h"
#include "gm_log.h"
#include "gm_palette.h"
#include "writer.h"

GDALDataType writer_gdal_type(gm_dtype_t dt) {
    switch (dt) {
    case GM_DT_U8: return GDT_Byte;
    case GM_DT_U16: return GDT_UInt16;
    case GM_DT_I16: return GDT_Int16;
    case GM_DT_U32: return GDT_UInt32;
    case GM_DT_I32: return GDT_Int32;
    case GM_DT_F32: return GDT_Float32;
    case GM_DT_F64: return GDT_Float64;
    default: return GDT_Unknown;
    }
}

/* Describes band 'b' (from 0) of output 'o': what a GIS shows as the band's name. */
static void band_description(const gm_job_t *job, const gm_output_t *o, uint32_t b, char *out, size_t cap) {
    switch (o->role) {
    case GM_ROLE_PROBABILITY:
        if (job->class_names) snprintf(out, cap, "%s", job->class_names[b]);
        else snprintf(out, cap, "class %u", b);
        break;
    case GM_ROLE_NPROB_CLASS: snprintf(out, cap, "class rank %u", b + 1); break;
    case GM_ROLE_NPROB_PROB: snprintf(out, cap, "probability rank %u", b + 1); break;
    case GM_ROLE_QUANTILE: snprintf(out, cap, "quantile %g", job->quantiles[b]); break;
    case GM_ROLE_REALISATION:
        /* the same bytes as the one-model prediction of that model */
        snprintf(out, cap, "%s", job->kind == GM_KIND_CLASSIFICATION ? "class" : "prediction");
        break;
    default: snprintf(out, cap, "%s", o->name); break;
    }
}

/* Returns 1 when output 'o' holds class codes (the class, the n most probable, a classification's realisation):
 * its bands get the class colours and names. */
static int holds_classes(const gm_job_t *job, const gm_output_t *o) {
    if (job->kind != GM_KIND_CLASSIFICATION || (o->dtype != GM_DT_U8 && o->dtype != GM_DT_U16)) return 0;
    return o->role == GM_ROLE_CLASS || o->role == GM_ROLE_NPROB_CLASS || o->role == GM_ROLE_REALISATION;
}

/* Gives band 'b' (from 1) the class colour table (gm_palette; band 1 only: a GeoTIFF holds one) and, when the
 * job names its classes, GDAL category names, so a GIS shows the classes by name and colour. */
static void set_class_table(GDALRasterBandH band, int b, const gm_job_t *job, const uint8_t (*rgb)[3]) {
    if (job->class_names) GDALSetRasterCategoryNames(band, job->class_names);
    if (b != 1) return;
    GDALColorTableH ct = GDALCreateColorTable(GPI_RGB);
    for (uint32_t c = 0; c < job->nclass; c++) {
        GDALColorEntry e = {rgb[c][0], rgb[c][1], rgb[c][2], 255};
        GDALSetColorEntry(ct, (int)c, &e);
    }
    GDALSetRasterColorTable(band, ct);
    GDALDestroyColorTable(ct);
}

/* Checks that the output folder exists (creating it if its parent does) and is writable. */
static int check_dir(const char *dir, char *err) {
    struct stat st;
    if (stat(dir, &st) != 0) {
        if (mkdir(dir, 0777) != 0) return gm_err(err, "%s: cannot create the output folder: %s", dir, strerror(errno));
    } else if (!S_ISDIR(st.st_mode)) {
        return gm_err(err, "%s: output path is not a folder", dir);
    }
    if (access(dir, W_OK | X_OK) != 0)
        return gm_err(err, "%s: output folder is not writable: %s", dir, strerror(errno));
    return 0;
}

/* Says why writing 'path' failed, into 'why': the system's reason when errno ('saved_errno', taken right after
 * the failed call) or the file system says the disk or quota is full ("No space left on device (12 KiB free)"),
 * else GDAL's last error. Returns 'why'. */
static const char *write_failure(const char *path, int saved_errno, char *why, size_t cap) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    else snprintf(dir, sizeof dir, ".");
    struct statvfs fs;
    int have_fs = statvfs(dir, &fs) == 0;
    unsigned long long free_bytes = have_fs ? (unsigned long long)fs.f_bavail * fs.f_frsize : 0;
    if (saved_errno == ENOSPC || saved_errno == EDQUOT || (have_fs && free_bytes < 65536))
        snprintf(why, cap, "%s (%llu KiB free)", strerror(saved_errno == EDQUOT ? EDQUOT : ENOSPC), free_bytes >> 10);
    else
        snprintf(why, cap, "%s", gm_gdal_last_error());
    return why;
}

/* Builds the creation options: tiled on the job's tile for GTiff, then the user's -co on top. */
static char **creation_options(const writer_options_t *opt, const gm_job_t *job, int gtiff) {
    char **co = NULL, tile[16];
    if (gtiff) {
        snprintf(tile, sizeof tile, "%u", job->tile);
        co = CSLSetNameValue(co, "TILED", "YES");
        co = CSLSetNameValue(co, "BLOCKXSIZE", tile);
        co = CSLSetNameValue(co, "BLOCKYSIZE", tile);
        co = CSLSetNameValue(co, "BIGTIFF", "IF_SAFER");
        /* Tiles are written once each, in order: let GDAL write each when it is given (empty or not), and never
         * fill the ones not written yet when the ledger's commit closes the file (it would write the whole
         * file of nodata at the first commit, to be overwritten later) */
        co = CSLSetNameValue(co, "SPARSE_OK", "TRUE");
        co = CSLSetNameValue(co, "WRITE_EMPTY_TILES_SYNCHRONOUSLY", "YES");
    }
    for (char **p = opt->create_options; p && *p; p++) {
        char *key = NULL;
        const char *val = CPLParseNameValue(*p, &key);
        if (key && val) co = CSLSetNameValue(co, key, val);
        CPLFree(key);
    }
    return co;
}

int writer_rename_output(const char *from, const char *to, char *err) {
    char from_aux[4300], to_aux[4300];
    snprintf(from_aux, sizeof from_aux, "%s.aux.xml", from);
    snprintf(to_aux, sizeof to_aux, "%s.aux.xml", to);
    /* the sidecar first: while the raster has its old name, a re-run still finds both under it */
    if (access(from_aux, F_OK) == 0) {
        if (rename(from_aux, to_aux) != 0)
            return gm_err(err, "%s: cannot rename to %s: %s", from_aux, to_aux, strerror(errno));
    } else {
        unlink(to_aux); /* none: an older one must not describe the new file */
    }
    if (rename(from, to) != 0) return gm_err(err, "%s: cannot rename to %s: %s", from, to, strerror(errno));
    return 0;
}

int writer_owns_output(const writer_options_t *opt, uint32_t i) { return i % opt->shards == opt->shard; }

int writer_outputs_create(writer_outputs_t *outs, const writer_options_t *opt, const gm_job_t *job,
                          const char *suffix, char *err) {
    gm_gdal_init();
    memset(outs, 0, sizeof *outs);
    if (check_dir(opt->out_dir, err) < 0) return -1;
    outs->cog = !strcasecmp(opt->format, "COG");
    if (outs->cog && !GDALGetDriverByName("COG")) return gm_err(err, "-of COG: this GDAL has no COG driver");
    /* a COG is written as a tiled GTiff tile by tile, then copied once complete (COG needs CreateCopy) */
    const char *format = outs->cog ? "GTiff" : opt->format;
    GDALDriverH drv = GDALGetDriverByName(format);
    if (!drv) return gm_err(err, "-of %s: no such GDAL driver", opt->format);
    if (!GDALGetMetadataItem(drv, GDAL_DCAP_CREATE, NULL))
        return gm_err(err, "-of %s: the driver cannot create files block by block", opt->format);
    const char *ext = GDALGetMetadataItem(drv, GDAL_DMD_EXTENSION, NULL);
    int gtiff = !strcmp(format, "GTiff");
    writer_options_t gtiff_opt = *opt;
    if (outs->cog) {
        outs->cog_options = CSLDuplicate(opt->create_options);
        gtiff_opt.create_options = NULL; /* the user's -co are for the COG */
    }
    char **co = creation_options(&gtiff_opt, job, gtiff);
    uint8_t(*rgb)[3] = job->kind == GM_KIND_CLASSIFICATION ? malloc((size_t)job->nclass * 3) : NULL;
    if (rgb) gm_palette_classes(job->nclass, rgb);
    for (uint32_t i = 0; i < job->noutputs; i++) {
        if (!writer_owns_output(opt, i)) continue;
        const gm_output_t *o = &job->outputs[i];
        uint32_t k = outs->n++;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s%s%s", opt->out_dir, o->name, ext && *ext ? "." : "", ext ? ext : "");
        outs->index[k] = i;
        outs->final_path[k] = strdup(path);
        snprintf(path, sizeof path, "%s%s", outs->final_path[k], suffix);
        unlink(path); /* a rebuild's NAME.part.new left by a killed run is written from nothing */
        outs->tmp_path[k] = strdup(path);
        CPLErrorReset();
        GDALDatasetH ds = GDALCreate(drv, outs->tmp_path[k], (int)job->xsize, (int)job->ysize, (int)o->bands,
                                     writer_gdal_type(o->dtype), co);
        if (!ds) {
            gm_err(err, "%s: cannot create: %s", outs->tmp_path[k], gm_gdal_last_error());
            CSLDestroy(co);
            free(rgb);
            return -1;
        }
        outs->ds[k] = ds;
        GDALSetGeoTransform(ds, (double *)job->gt);
        if (job->crs && *job->crs) GDALSetProjection(ds, job->crs);
        for (uint32_t b = 1; b <= o->bands; b++) {
            GDALRasterBandH band = GDALGetRasterBand(ds, (int)b);
            GDALSetRasterNoDataValue(band, o->nodata);
            char desc[GM_JOB_CLASS_NAME_MAX + 1];
            band_description(job, o, b - 1, desc, sizeof desc);
            GDALSetDescription(band, desc);
            if (rgb && holds_classes(job, o)) set_class_table(band, (int)b, job, (const uint8_t(*)[3])rgb);
        }
    }
    CSLDestroy(co);
    free(rgb);
    return 0;
}

int writer_outputs_write_tile(writer_outputs_t *outs, const gm_job_t *job, const tile_t *t, char *err) {
    char why[GM_ERR_LEN];
    for (uint32_t i = 0; i < outs->n; i++) {
        const gm_output_t *o = &job->outputs[outs->index[i]];
        CPLErrorReset();
        errno = 0;
        CPLErr e = GDALDatasetRasterIO(outs->ds[i], GF_Write, (int)t->x0, (int)t->y0, (int)t->w, (int)t->h,
                                       t->buf[outs->index[i]], (int)t->w, (int)t->h, writer_gdal_type(o->dtype),
                                       (int)o->bands, NULL, 0, 0, 0);
        /* flushed band by band: the tile reaches the file now, so tiles are laid out in the order written */
        for (uint32_t b = 1; e == CE_None && b <= o->bands; b++)
            e = GDALFlushRasterCache(GDALGetRasterBand(outs->ds[i], (int)b));
        int saved_errno = errno;
        if (e != CE_None || CPLGetLastErrorType() >= CE_Failure)
            return gm_err(err, "%s: cannot write the tile at %u,%u: %s", outs->tmp_path[i], t->x0, t->y0,
                          write_failure(outs->tmp_path[i], saved_errno, why, sizeof why));
    }
    return 0;
}

int writer_outputs_finish(writer_outputs_t *outs, char *err) {
    char why[GM_ERR_LEN];
    for (uint32_t i = 0; i < outs->n; i++) {
        CPLErrorReset();
        errno = 0;
        GDALClose(outs->ds[i]);
        int saved_errno = errno;
        outs->ds[i] = NULL;
        if (CPLGetLastErrorType() >= CE_Failure)
            return gm_err(err, "%s: cannot complete: %s", outs->tmp_path[i],
                          write_failure(outs->tmp_path[i], saved_errno, why, sizeof why));
    }
    for (uint32_t i = 0; outs->cog && i < outs->n; i++) {
        char copy[4200];
        snprintf(copy, sizeof copy, "%s.cog", outs->tmp_path[i]);
        GDALDatasetH src = GDALOpenEx(outs->tmp_path[i], GDAL_OF_RASTER | GDAL_OF_READONLY, NULL, NULL, NULL);
        CPLErrorReset();
        GDALDatasetH dst = src ? GDALCreateCopy(GDALGetDriverByName("COG"), copy, src, FALSE, outs->cog_options, NULL, NULL)
                               : NULL;
        int ok = dst != NULL;
        if (dst) GDALClose(dst);
        if (src) GDALClose(src);
        if (!ok || CPLGetLastErrorType() >= CE_Failure) {
            unlink(copy);
            return gm_err(err, "%s: cannot copy to a COG: %s", outs->tmp_path[i], gm_gdal_last_error());
        }
        if (writer_sync_file(copy, err) < 0) return -1;
        if (writer_rename_output(copy, outs->tmp_path[i], err) < 0) return -1;
    }
    /* every output whole on disk before the first takes its final name, and the names on disk before the
     * ledger goes */
    for (uint32_t i = 0; i < outs->n; i++)
        if (writer_sync_file(outs->tmp_path[i], err) < 0) return -1;
    for (uint32_t i = 0; i < outs->n; i++) {
        if (writer_rename_output(outs->tmp_path[i], outs->final_path[i], err) < 0) return -1;
        writer_debug_kill("finish");
    }
    char dir[4200];
    snprintf(dir, sizeof dir, "%s", outs->n ? outs->final_path[0] : ".");
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    if (outs->n && writer_sync_dir(slash ? dir : ".", err) < 0) return -1;
    CSLDestroy(outs->cog_options);
    outs->cog_options = NULL;
    for (uint32_t i = 0; i < outs->n; i++) {
        free(outs->tmp_path[i]);
        free(outs->final_path[i]);
        outs->tmp_path[i] = outs->final_path[i] = NULL;
    }
    outs->n = 0;
    return 0;
}

void writer_outputs_abandon(writer_outputs_t *outs) {
    for (uint32_t i = 0; i < outs->n; i++) {
        if (outs->ds[i]) GDALClose(outs->ds[i]);
        outs->ds[i] = NULL;
        if (outs->tmp_path[i]) unlink(outs->tmp_path[i]);
        free(outs->tmp_path[i]);
        free(outs->final_path[i]);
        outs->tmp_path[i] = outs->final_path[i] = NULL;
    }
    outs->n = 0;
}
