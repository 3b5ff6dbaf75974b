/* writer_ledger.c -- what the writer has durably written: after every row of tiles the outputs are closed and
 * reopened (so the files on disk are whole) and DIR/.gridmill-ledger (DIR/.gridmill-ledger-J-of-W for writer
 * shard J of W) names the job and the tiles written.
 * A re-run of the same job rebuilds the outputs from those tiles with the very same sequence of writes,
 * so a resumed output is the same bytes as an uninterrupted one, and only the rest is computed again. */
#include <cpl_string.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gm_gdal.h"
#include "gm_log.h"
#include "writer.h"

/* Writes the ledger path into 'path': one ledger per writer shard, so each resumes from its own. */
static void ledger_path(const writer_t *wr, char *path, size_t cap) {
    if (wr->opt.shards == 1) snprintf(path, cap, "%s/.gridmill-ledger", wr->opt.out_dir);
    else snprintf(path, cap, "%s/.gridmill-ledger-%u-of-%u", wr->opt.out_dir, wr->opt.shard, wr->opt.shards);
}

/* Closes output 'i' and opens it again for update. Returns 0, or -1 with 'err'. */
static int reopen(writer_outputs_t *outs, uint32_t i, char *err) {
    CPLErrorReset();
    GDALClose(outs->ds[i]);
    outs->ds[i] = NULL;
    if (CPLGetLastErrorType() >= CE_Failure)
        return gm_err(err, "%s: cannot complete: %s", outs->tmp_path[i], gm_gdal_last_error());
    outs->ds[i] = GDALOpenEx(outs->tmp_path[i], GDAL_OF_RASTER | GDAL_OF_UPDATE, NULL, NULL, NULL);
    if (!outs->ds[i]) return gm_err(err, "%s: cannot reopen: %s", outs->tmp_path[i], gm_gdal_last_error());
    return 0;
}

int writer_ledger_commit(writer_t *wr, uint32_t tiles, char *err) {
    char path[4200], tmp[4300];
    for (uint32_t i = 0; i < wr->outs.n; i++)
        if (reopen(&wr->outs, i, err) < 0) return -1;
    ledger_path(wr, path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.part", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return gm_err(err, "%s: cannot write: %s", tmp, strerror(errno));
    int ok = fprintf(f, "gridmill-ledger 2\njob %016llx\ntiles %u\n", (unsigned long long)wr->job.id, tiles) > 0;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) return gm_err(err, "%s: cannot write: %s", path, strerror(errno));
    return 0;
}

/* Reads the ledger: the tiles written for job 'id', or 0 when there is no ledger of that job (or one of the
 * strips an older writer kept). */
static uint32_t ledger_tiles(const writer_t *wr, uint64_t id) {
    char path[4200];
    ledger_path(wr, path, sizeof path);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    unsigned long long job = 0;
    unsigned tiles = 0;
    int n = fscanf(f, "gridmill-ledger 2\njob %llx\ntiles %u", &job, &tiles);
    fclose(f);
    return (n == 2 && job == id) ? tiles : 0;
}

/* Writes the partial path of output 'o' (as writer_outputs_create names it) with 'suffix' into 'out'. */
static void part_path(const writer_t *wr, const gm_output_t *o, const char *suffix, char *out, size_t cap) {
    GDALDriverH drv = GDALGetDriverByName(wr->opt.format);
    const char *ext = drv ? GDALGetMetadataItem(drv, GDAL_DMD_EXTENSION, NULL) : NULL;
    snprintf(out, cap, "%s/%s%s%s.part%s", wr->opt.out_dir, o->name, ext && *ext ? "." : "", ext ? ext : "", suffix);
}

uint32_t writer_ledger_stash(writer_t *wr) {
    uint32_t k = ledger_tiles(wr, wr->job.id);
    char from[4300], to[4300];
    if (k == 0) return 0;
    gm_gdal_init();
    for (uint32_t i = 0; i < wr->job.noutputs; i++) {
        if (!writer_owns_output(&wr->opt, i)) continue;
        part_path(wr, &wr->job.outputs[i], "", from, sizeof from);
        part_path(wr, &wr->job.outputs[i], ".old", to, sizeof to);
        if (rename(from, to) != 0) {
            gm_log(GM_LOG_WARN, "%s: %s; starting the outputs again", from, strerror(errno));
            return 0;
        }
    }
    return k;
}

int writer_ledger_resume(writer_t *wr, uint32_t k, uint32_t *resumed, char *err) {
    const gm_job_t *job = &wr->job;
    *resumed = 0;
    if (k == 0) return 0;
    /* the old outputs must all be there, whole up to tile k */
    uint32_t n = wr->outs.n; /* 0 for a writer that owns no output: it only commits the tiles again */
    GDALDatasetH *old = calloc(n ? n : 1, sizeof *old);
    char (*oldpath)[4300] = calloc(n ? n : 1, sizeof *oldpath);
    int rc = -1;
    tile_t *t = calloc(1, sizeof *t); /* large: one buffer pointer per possible output */
    if (!old || !oldpath || !t) {
        free(old);
        free(oldpath);
        free(t);
        return gm_err(err, "out of memory");
    }
    for (uint32_t i = 0; i < n; i++)
        part_path(wr, &job->outputs[wr->outs.index[i]], ".old", oldpath[i], sizeof oldpath[i]);
    if (k > wr->ntiles || !writer_tile_ends_row(job, k - 1)) {
        gm_log(GM_LOG_WARN, "the ledger's %u tiles do not end a row of the %u; starting the outputs again", k, wr->ntiles);
        rc = 0;
        goto out;
    }
    for (uint32_t i = 0; i < wr->outs.n; i++) {
        old[i] = GDALOpenEx(oldpath[i], GDAL_OF_RASTER | GDAL_OF_READONLY, NULL, NULL, NULL);
        if (!old[i] || GDALGetRasterXSize(old[i]) != (int)job->xsize || GDALGetRasterYSize(old[i]) != (int)job->ysize ||
            GDALGetRasterCount(old[i]) != (int)job->outputs[wr->outs.index[i]].bands) {
            gm_log(GM_LOG_WARN, "%s: not a usable partial output; starting the outputs again", oldpath[i]);
            rc = 0;
            goto out;
        }
    }
    /* the outputs were just created afresh: write tiles 0..k-1 from the old files, as the first run did, tile by
     * tile and committed at the end of every row */
    for (uint32_t ti = 0; ti < k; ti++) {
        writer_tile_window(job, ti, t);
        for (uint32_t i = 0; i < wr->outs.n; i++) {
            uint32_t oi = wr->outs.index[i];
            const gm_output_t *o = &job->outputs[oi];
            void *buf = realloc(t->buf[oi], gm_job_output_bytes(o, job->tile, job->tile));
            if (!buf) {
                gm_err(err, "out of memory resuming tile %u", ti);
                goto out;
            }
            t->buf[oi] = buf;
            GDALDataType type = GDALGetRasterDataType(GDALGetRasterBand(old[i], 1));
            if (GDALDatasetRasterIO(old[i], GF_Read, (int)t->x0, (int)t->y0, (int)t->w, (int)t->h, buf, (int)t->w,
                                    (int)t->h, type, (int)o->bands, NULL, 0, 0, 0) != CE_None) {
                gm_err(err, "%s: cannot read tile %u: %s", oldpath[i], ti, gm_gdal_last_error());
                goto out;
            }
        }
        if (writer_outputs_write_tile(&wr->outs, job, t, err) < 0) goto out;
        if (writer_tile_ends_row(job, ti) && writer_ledger_commit(wr, ti + 1, err) < 0) goto out;
    }
    *resumed = k;
    rc = 0;
out:
    for (uint32_t i = 0; i < n; i++) {
        if (old[i]) GDALClose(old[i]);
        unlink(oldpath[i]);
        free(t->buf[wr->outs.index[i]]);
    }
    free(t);
    free(old);
    free(oldpath);
    return rc;
}

void writer_ledger_remove(writer_t *wr) {
    char path[4200];
    ledger_path(wr, path, sizeof path);
    unlink(path);
}

void writer_ledger_keep(writer_t *wr) {
    for (uint32_t i = 0; i < wr->outs.n; i++) {
        if (wr->outs.ds[i]) GDALClose(wr->outs.ds[i]);
        wr->outs.ds[i] = NULL;
        free(wr->outs.tmp_path[i]);
        free(wr->outs.final_path[i]);
        wr->outs.tmp_path[i] = wr->outs.final_path[i] = NULL;
    }
    wr->outs.n = 0;
    CSLDestroy(wr->outs.cog_options);
    wr->outs.cog_options = NULL;
}
