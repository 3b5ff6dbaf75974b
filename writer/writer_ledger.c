/* writer_ledger.c -- what the writer has durably written, and a resume that trusts nothing it has not checked.
 *
 * After every row of tiles the outputs are closed and reopened (so the files on disk are whole), fsynced, and
 * DIR/.gridmill-ledger (DIR/.gridmill-ledger-J-of-W for writer shard J of W) is replaced, fsynced, by one that
 * names the job, the tiles written and the XXH64 of each of them in each output this writer owns (over the
 * tile's samples, band-sequential, as written; see writer_tile_hash), and ends with the XXH64 of its text:
 *
 *     gridmill-ledger 3
 *     job 0123456789abcdef
 *     tiles 6
 *     0 <16 hex digits> ...  one line per tile, in row-major order: its index, then the hash of each output
 *     ...                    this writer owns, in the job's order
 *     end <16 hex digits>
 *
 * A resume reads every tile the ledger vouches for back from the partial outputs (NAME.part, or NAME when an
 * earlier run was stopped while renaming) and keeps only the rows of tiles whose hashes match: a truncated,
 * damaged or half-rebuilt file costs its bad rows, computed again, never a wrong pixel. Those rows are then
 * rebuilt into NAME.part.new with the very sequence of writes the first run made (so a resumed output is the
 * same bytes as an uninterrupted one), and each NAME.part.new replaces its NAME.part by one rename once whole.
 * At every instant the files on disk hold every tile the ledger vouches for that matches its hash: a failed
 * copy or a SIGKILL at any step leaves NAME.part and the ledger as they were. */
#include <cpl_string.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gm_gdal.h"
#include "gm_hash.h"
#include "gm_log.h"
#include "writer.h"

#define LEDGER_MAX_BYTES (64u << 20) /* far above any ledger: 17 bytes a tile */

void writer_debug_kill(const char *point) {
    /* GRIDMILL_DEBUG_KILL_WRITER=POINT:N: SIGKILL this writer the N-th time it passes POINT (tests only) */
    static unsigned passes;
    const char *spec = getenv("GRIDMILL_DEBUG_KILL_WRITER");
    size_t n = strlen(point);
    if (!spec || strncmp(spec, point, n) != 0 || spec[n] != ':') return;
    if (++passes == strtoul(spec + n + 1, NULL, 10)) raise(SIGKILL);
}

/* Writes the ledger path into 'path': one ledger per writer shard, so each resumes from its own. */
static void ledger_path(const writer_t *wr, char *path, size_t cap) {
    if (wr->opt.shards == 1) snprintf(path, cap, "%s/.gridmill-ledger", wr->opt.out_dir);
    else snprintf(path, cap, "%s/.gridmill-ledger-%u-of-%u", wr->opt.out_dir, wr->opt.shard, wr->opt.shards);
}

int writer_sync_file(const char *path, char *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return gm_err(err, "%s: cannot open to sync: %s", path, strerror(errno));
    int rc = fsync(fd);
    int saved = errno;
    close(fd);
    if (rc != 0) return gm_err(err, "%s: cannot sync to disk: %s", path, strerror(saved));
    return 0;
}

int writer_sync_dir(const char *dir, char *err) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return gm_err(err, "%s: cannot open to sync: %s", dir, strerror(errno));
    int rc = fsync(fd);
    int saved = errno;
    close(fd);
    if (rc != 0 && saved != EINVAL) return gm_err(err, "%s: cannot sync to disk: %s", dir, strerror(saved));
    return 0;
}

/* Closes output 'i' (GDAL writes its directory then) and, with 'sync', flushes it to disk. Returns 0, or -1
 * with 'err'. */
static int close_output(writer_outputs_t *outs, uint32_t i, int sync, char *err) {
    CPLErrorReset();
    GDALClose(outs->ds[i]);
    outs->ds[i] = NULL;
    if (CPLGetLastErrorType() >= CE_Failure)
        return gm_err(err, "%s: cannot complete: %s", outs->tmp_path[i], gm_gdal_last_error());
    return sync ? writer_sync_file(outs->tmp_path[i], err) : 0;
}

/* Opens output 'i' again for update. Returns 0, or -1 with 'err'. */
static int open_output(writer_outputs_t *outs, uint32_t i, char *err) {
    outs->ds[i] = GDALOpenEx(outs->tmp_path[i], GDAL_OF_RASTER | GDAL_OF_UPDATE, NULL, NULL, NULL);
    if (!outs->ds[i]) return gm_err(err, "%s: cannot reopen: %s", outs->tmp_path[i], gm_gdal_last_error());
    return 0;
}

/* Replaces the ledger by one vouching for tiles 0..tiles-1 with hashes 'hash' (wr->nowned a tile): written
 * aside, fsynced, renamed over the old one, the folder fsynced. Returns 0, or -1 with 'err'. */
static int write_ledger(const writer_t *wr, uint32_t tiles, const uint64_t *hash, char *err) {
    char path[4200], tmp[4300];
    ledger_path(wr, path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.part", path);
    size_t cap = 96 + (size_t)tiles * (12 + 17 * wr->nowned) + 32, len = 0;
    char *text = malloc(cap);
    if (!text) return gm_err(err, "%s: out of memory", path);
    len += (size_t)snprintf(text + len, cap - len, "gridmill-ledger 3\njob %016llx\ntiles %u\n",
                            (unsigned long long)wr->job.id, tiles);
    for (uint32_t t = 0; t < tiles; t++) {
        len += (size_t)snprintf(text + len, cap - len, "%u", t);
        for (uint32_t i = 0; i < wr->nowned; i++)
            len += (size_t)snprintf(text + len, cap - len, " %016" PRIx64, hash[(size_t)t * wr->nowned + i]);
        text[len++] = '\n';
    }
    len += (size_t)snprintf(text + len, cap - len, "end %016" PRIx64 "\n", gm_hash64(text, len, 0));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) {
        free(text);
        return gm_err(err, "%s: cannot write: %s", tmp, strerror(errno));
    }
    ssize_t w = write(fd, text, len);
    int saved = errno, ok = w == (ssize_t)len;
    free(text);
    if (ok && fsync(fd) != 0) ok = 0, saved = errno;
    if (close(fd) != 0 && ok) ok = 0, saved = errno;
    if (!ok) {
        unlink(tmp);
        return gm_err(err, "%s: cannot write: %s", tmp, w >= 0 && w < (ssize_t)len ? "short write" : strerror(saved));
    }
    writer_debug_kill("commit");
    if (rename(tmp, path) != 0) return gm_err(err, "%s: cannot write: %s", path, strerror(errno));
    return writer_sync_dir(wr->opt.out_dir, err);
}

int writer_ledger_commit(writer_t *wr, uint32_t tiles, char *err) {
    for (uint32_t i = 0; i < wr->outs.n; i++)
        if (close_output(&wr->outs, i, 1, err) < 0 || open_output(&wr->outs, i, err) < 0) return -1;
    return write_ledger(wr, tiles, wr->tile_hash, err);
}

/* Reads the ledger of this writer into '*tiles' and '*hash' (malloc'ed, wr->nowned a tile): 0 tiles when there
 * is none, or one of another job. A ledger that is damaged or of an older gridmill (no hashes) vouches for
 * nothing: a warning says so. */
static void read_ledger(const writer_t *wr, uint32_t *tiles, uint64_t **hash) {
    char path[4200];
    *tiles = 0;
    *hash = NULL;
    ledger_path(wr, path, sizeof path);
    FILE *f = fopen(path, "rb");
    if (!f) return;
    long size = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    rewind(f);
    size_t cap = size >= 0 && size < (long)LEDGER_MAX_BYTES ? (size_t)size : LEDGER_MAX_BYTES;
    char *text = malloc(cap + 1);
    size_t len = text ? fread(text, 1, cap, f) : 0;
    fclose(f);
    if (!text) return;
    text[len] = '\0';
    unsigned long long job = 0;
    unsigned n = 0;
    int used = 0;
    const char *why = NULL;
    if (sscanf(text, "gridmill-ledger %*u\njob %llx\ntiles %u\n%n", &job, &n, &used) >= 1 && job != wr->job.id) {
        free(text); /* another job's: it says nothing of this one */
        return;
    }
    if (strncmp(text, "gridmill-ledger 3\n", 18) != 0) why = "not a ledger of this gridmill (no tile hashes)";
    else if (used == 0) why = "damaged header";
    else if (n > wr->ntiles) why = "more tiles than the job has";
    uint64_t *h = why ? NULL : malloc(((size_t)n * wr->nowned + 1) * sizeof *h);
    if (!why && !h) why = "out of memory";
    char *p = text + used, *end;
    for (unsigned t = 0; !why && t < n; t++) {
        if (strtoul(p, &end, 10) != t || end == p) why = "damaged tile line";
        for (uint32_t i = 0; !why && i < wr->nowned; i++) {
            p = end;
            if (*p != ' ' || (h[(size_t)t * wr->nowned + i] = strtoull(p + 1, &end, 16), end != p + 17))
                why = "damaged tile line";
        }
        if (!why && *end != '\n') why = "damaged tile line";
        p = end + 1;
    }
    unsigned long long sum = 0;
    int tail = 0;
    if (!why && (sscanf(p, "end %llx\n%n", &sum, &tail) != 1 || tail == 0 || p + tail != text + len))
        why = "truncated";
    else if (!why && sum != gm_hash64(text, (size_t)(p - text), 0)) why = "its checksum does not match";
    free(text);
    if (why) {
        gm_log(GM_LOG_WARN, "%s: %s; it vouches for no tile, every tile is computed again", path, why);
        free(h);
        return;
    }
    *tiles = n;
    *hash = h;
}

/* The partial outputs of an earlier run, read back to check and copy the tiles a ledger vouches for. */
typedef struct {
    GDALDatasetH ds[GM_JOB_MAX_OUTPUTS];
    char path[GM_JOB_MAX_OUTPUTS][4300];
} sources_t;

/* Writes the partial path of output 'o' (as writer_outputs_create names it) with 'suffix' into 'out'. */
static void part_path(const writer_t *wr, const gm_output_t *o, const char *suffix, char *out, size_t cap) {
    GDALDriverH drv = GDALGetDriverByName(strcasecmp(wr->opt.format, "COG") ? wr->opt.format : "GTiff");
    const char *ext = drv ? GDALGetMetadataItem(drv, GDAL_DMD_EXTENSION, NULL) : NULL;
    snprintf(out, cap, "%s/%s%s%s%s", wr->opt.out_dir, o->name, ext && *ext ? "." : "", ext ? ext : "", suffix);
}

static void close_sources(sources_t *src, uint32_t n) {
    for (uint32_t i = 0; i < n; i++)
        if (src->ds[i]) GDALClose(src->ds[i]);
    memset(src->ds, 0, sizeof src->ds);
}

/* Opens the earlier run's copy of every output this writer owns: NAME.part, else NAME (a run stopped while
 * renaming its complete outputs). Returns 0, or -1 after a warning naming the file that cannot serve. */
static int open_sources(writer_t *wr, sources_t *src) {
    const gm_job_t *job = &wr->job;
    memset(src, 0, sizeof *src);
    uint32_t k = 0;
    for (uint32_t oi = 0; oi < job->noutputs; oi++) {
        if (!writer_owns_output(&wr->opt, oi)) continue;
        const gm_output_t *o = &job->outputs[oi];
        part_path(wr, o, ".part", src->path[k], sizeof src->path[k]);
        if (access(src->path[k], F_OK) != 0) part_path(wr, o, "", src->path[k], sizeof src->path[k]);
        CPLErrorReset();
        GDALDatasetH ds = GDALOpenEx(src->path[k], GDAL_OF_RASTER | GDAL_OF_READONLY, NULL, NULL, NULL);
        src->ds[k++] = ds;
        const char *why = !ds ? gm_gdal_last_error()
                          : GDALGetRasterXSize(ds) != (int)job->xsize || GDALGetRasterYSize(ds) != (int)job->ysize ||
                                    GDALGetRasterCount(ds) != (int)o->bands
                              ? "not this job's grid"
                              : NULL;
        if (why) {
            gm_log(GM_LOG_WARN, "%s: cannot serve the tiles the ledger vouches for (%s); every tile is computed again",
                   src->path[k - 1], why);
            close_sources(src, k);
            return -1;
        }
    }
    return 0;
}

/* Reads tile 't' (its window set) of every output from 'src' into its buffers (allocated here, once). Returns
 * 0, or -1 with 'err'. */
static int read_tile(writer_t *wr, sources_t *src, tile_t *t, char *err) {
    const gm_job_t *job = &wr->job;
    uint32_t k = 0;
    for (uint32_t oi = 0; oi < job->noutputs; oi++) {
        if (!writer_owns_output(&wr->opt, oi)) continue;
        const gm_output_t *o = &job->outputs[oi];
        if (!t->buf[oi] && !(t->buf[oi] = malloc(gm_job_output_bytes(o, job->tile, job->tile))))
            return gm_err(err, "out of memory reading tile %u", t->index);
        CPLErrorReset();
        if (GDALDatasetRasterIO(src->ds[k], GF_Read, (int)t->x0, (int)t->y0, (int)t->w, (int)t->h, t->buf[oi],
                                (int)t->w, (int)t->h, writer_gdal_type(o->dtype), (int)o->bands, NULL, 0, 0, 0) != CE_None)
            return gm_err(err, "%s: cannot read tile %u: %s", src->path[k], t->index, gm_gdal_last_error());
        k++;
    }
    return 0;
}

/* Reads back the 'k' tiles the ledger vouches for and returns how many rows of them, from the first, match
 * their hashes 'want' (as a count of tiles, ending a row). A mismatch is warned of, naming the file. */
static uint32_t verify(writer_t *wr, sources_t *src, uint32_t k, const uint64_t *want, tile_t *t) {
    const gm_job_t *job = &wr->job;
    char err[GM_ERR_LEN];
    uint64_t got[GM_JOB_MAX_OUTPUTS];
    uint32_t good = 0;
    for (uint32_t ti = 0; ti < k; ti++) {
        writer_tile_window(job, ti, t);
        if (read_tile(wr, src, t, err) < 0) {
            gm_log(GM_LOG_WARN, "%s; computing it and the tiles after it again", err);
            return good;
        }
        writer_tile_hash(wr, t, got);
        for (uint32_t i = 0; i < wr->nowned; i++)
            if (got[i] != want[(size_t)ti * wr->nowned + i]) {
                gm_log(GM_LOG_WARN, "%s: tile %u (at %u,%u) is not what the ledger vouches for (damaged or truncated); "
                       "computing its row of tiles and the rest again", src->path[i], ti, t->x0, t->y0);
                return good;
            }
        if (writer_tile_ends_row(job, ti)) good = ti + 1;
    }
    return good;
}

/* Copies tiles 0..v-1 from 'src' into the outputs just created under NAME.part.new, committing (close,
 * reopen) at the end of every row as the first run did. The last row's commit is the adoption: each file is
 * closed, fsynced and renamed over NAME.part, then reopened there. Returns 0; or -1 with 'err' and
 * '*adopted' set when some NAME.part was already replaced. */
static int rebuild(writer_t *wr, sources_t *src, uint32_t v, tile_t *t, int *adopted, char *err) {
    const gm_job_t *job = &wr->job;
    *adopted = 0;
    for (uint32_t ti = 0; ti < v; ti++) {
        writer_tile_window(job, ti, t);
        if (read_tile(wr, src, t, err) < 0 || writer_outputs_write_tile(&wr->outs, job, t, err) < 0) return -1;
        writer_debug_kill("resume-tile");
        if (!writer_tile_ends_row(job, ti) || ti + 1 == v) continue;
        for (uint32_t i = 0; i < wr->outs.n; i++)
            if (close_output(&wr->outs, i, 0, err) < 0 || open_output(&wr->outs, i, err) < 0) return -1;
    }
    /* every NAME.part.new whole and on disk before the first replaces its NAME.part */
    for (uint32_t i = 0; i < wr->outs.n; i++)
        if (close_output(&wr->outs, i, 1, err) < 0) return -1;
    if (writer_sync_dir(wr->opt.out_dir, err) < 0) return -1;
    close_sources(src, wr->outs.n);
    for (uint32_t i = 0; i < wr->outs.n; i++) {
        char part[4300];
        part_path(wr, &job->outputs[wr->outs.index[i]], ".part", part, sizeof part);
        if (writer_rename_output(wr->outs.tmp_path[i], part, err) < 0) return -1;
        *adopted = 1;
        free(wr->outs.tmp_path[i]);
        wr->outs.tmp_path[i] = strdup(part);
        if (!wr->outs.tmp_path[i]) return gm_err(err, "out of memory");
        if (writer_sync_dir(wr->opt.out_dir, err) < 0) return -1;
        writer_debug_kill("resume-adopt");
    }
    for (uint32_t i = 0; i < wr->outs.n; i++)
        if (open_output(&wr->outs, i, err) < 0) return -1;
    return 0;
}

/* Closes the outputs after a failed rebuild: NAME.part.new files are deleted (NAME.part and the ledger stand
 * as they were), the rest kept. */
static void drop_rebuild(writer_t *wr) {
    for (uint32_t i = 0; i < wr->outs.n; i++) {
        if (wr->outs.ds[i]) GDALClose(wr->outs.ds[i]);
        wr->outs.ds[i] = NULL;
        size_t n = strlen(wr->outs.tmp_path[i]);
        if (n > 4 && !strcmp(wr->outs.tmp_path[i] + n - 4, ".new")) unlink(wr->outs.tmp_path[i]);
    }
    writer_ledger_keep(wr);
}

int writer_ledger_resume(writer_t *wr, uint32_t *resumed, char *err) {
    *resumed = 0;
    uint32_t k;
    uint64_t *want;
    gm_gdal_init();
    read_ledger(wr, &k, &want);
    sources_t *src = calloc(1, sizeof *src);
    tile_t *t = calloc(1, sizeof *t); /* large: one buffer pointer per possible output */
    if (!src || !t) {
        free(src);
        free(t);
        free(want);
        return gm_err(err, "out of memory");
    }
    uint32_t v = 0;
    if (k > 0 && open_sources(wr, src) == 0) {
        v = verify(wr, src, k, want, t);
        if (v == 0) close_sources(src, GM_JOB_MAX_OUTPUTS);
    }
    int rc = 0;
    if (v == 0) {
        /* nothing to keep: a ledger that vouched for tiles no file holds goes before the outputs start again */
        char path[4200];
        ledger_path(wr, path, sizeof path);
        if (k > 0 && unlink(path) != 0 && errno != ENOENT) rc = gm_err(err, "%s: cannot remove: %s", path, strerror(errno));
        else if (k > 0) rc = writer_sync_dir(wr->opt.out_dir, err);
        if (rc == 0) rc = writer_outputs_create(&wr->outs, &wr->opt, &wr->job, ".part", err);
    } else {
        int adopted = 0;
        char why[GM_ERR_LEN];
        if (writer_outputs_create(&wr->outs, &wr->opt, &wr->job, ".part.new", why) < 0 ||
            rebuild(wr, src, v, t, &adopted, why) < 0) {
            close_sources(src, GM_JOB_MAX_OUTPUTS);
            drop_rebuild(wr);
            rc = gm_err(err, "cannot resume the %u tiles the ledger vouches for: %s; the partial outputs and the ledger "
                        "are kept for a re-run", v, why);
        } else {
            memcpy(wr->tile_hash, want, (size_t)v * wr->nowned * sizeof *want);
            rc = write_ledger(wr, v, wr->tile_hash, err);
            if (rc == 0) *resumed = v;
        }
    }
    for (uint32_t i = 0; i < wr->job.noutputs; i++) free(t->buf[i]);
    free(t);
    free(src);
    free(want);
    return rc;
}

void writer_ledger_remove(writer_t *wr) {
    char path[4200], err[GM_ERR_LEN];
    ledger_path(wr, path, sizeof path);
    if (unlink(path) == 0 && writer_sync_dir(wr->opt.out_dir, err) < 0) gm_log(GM_LOG_WARN, "%s", err);
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
