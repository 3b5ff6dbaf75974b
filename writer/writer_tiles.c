/* writer_tiles.c -- take results, assemble this writer's outputs tile by tile, write the tiles in row-major
 * order, ack the blocks whose tiles are all written.
 *
 * The reader reads blocks tile by tile (gm_job_block_order), so the tiles being assembled are a few, whatever
 * the raster's width. Tiles are written in the same order by every run, which keeps the files the same bytes
 * whatever the number of workers or the order results arrive in. A writer that owns no output (a shard beyond
 * the job's outputs) assembles empty tiles: it still counts every block, keeps its ledger and acks in order,
 * so the readers hear from every writer. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gm_hash.h"
#include "gm_log.h"
#include "gm_wire.h"
#include "writer.h"

/* A run of complete tiles being written, or the final close, in libuv's thread pool. */
typedef struct {
    uv_work_t req;
    writer_t *wr;
    uint32_t first, end; /* tiles [first, end); first == end for the final close */
    int commit;          /* the run ends a tile row (or the raster): commit the ledger after it */
    int rc;
    char err[GM_ERR_LEN];
} write_t;

static void try_write(writer_t *wr);

static void free_tile(writer_t *wr, tile_t **tp) {
    tile_t *t = *tp;
    if (!t) return;
    for (uint32_t i = 0; i < wr->job.noutputs; i++) free(t->buf[i]);
    free(t);
    *tp = NULL;
}

void writer_tile_window(const gm_job_t *job, uint32_t index, tile_t *t) {
    uint32_t ntx = gm_job_tiles_x(job);
    t->index = index;
    t->x0 = index % ntx * job->tile;
    t->y0 = index / ntx * job->tile;
    t->w = job->xsize - t->x0 < job->tile ? job->xsize - t->x0 : job->tile;
    t->h = job->ysize - t->y0 < job->tile ? job->ysize - t->y0 : job->tile;
}

int writer_tile_ends_row(const gm_job_t *job, uint32_t index) {
    return (index + 1) % gm_job_tiles_x(job) == 0 || index + 1 == gm_job_ntiles(job);
}

/* Returns tile 'index', allocating it on first use, or NULL when out of memory. */
static tile_t *get_tile(writer_t *wr, uint32_t index) {
    if (wr->tiles[index]) return wr->tiles[index];
    tile_t *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    writer_tile_window(&wr->job, index, t);
    for (uint32_t i = 0; i < wr->job.noutputs; i++) {
        if (!writer_owns_output(&wr->opt, i)) continue;
        t->buf[i] = malloc(gm_job_output_bytes(&wr->job.outputs[i], t->w, t->h));
        if (!t->buf[i]) {
            free_tile(wr, &t);
            return NULL;
        }
    }
    wr->tiles[index] = t;
    return t;
}

/* Sends one ack naming 'count' blocks (little-endian uint32 ids): received (in memory) or written. */
static void send_block_ack(writer_t *wr, const uint32_t *blocks, uint32_t count, int received) {
    if (count == 0) return;
    unsigned char *ids = malloc((size_t)count * 4);
    if (!ids) return;
    for (uint32_t i = 0; i < count; i++)
        for (int k = 0; k < 4; k++) ids[4 * i + k] = (unsigned char)(blocks[i] >> (8 * k));
    gm_header_t h = {.kind = GM_MSG_ACK, .job = wr->job.id, .count = count, .received = received};
    writer_send_ack(wr, &h, ids, (size_t)count * 4);
}

/* Acks, in one message, every block whose last tile is among tiles [first, end), just written. */
static void ack_written(writer_t *wr, uint32_t first, uint32_t end) {
    uint32_t from = wr->ack_start[first], to = wr->ack_start[end];
    send_block_ack(wr, wr->ack_blocks + from, to - from, 0);
}

static void do_write(uv_work_t *req) {
    write_t *wt = req->data;
    writer_t *wr = wt->wr;
    if (wt->first == wt->end) {
        wt->rc = writer_outputs_finish(&wr->outs, wt->err);
        if (wt->rc == 0) writer_ledger_remove(wr);
        return;
    }
    for (uint32_t t = wt->first; t < wt->end && wt->rc == 0; t++) {
        wt->rc = writer_outputs_write_tile(&wr->outs, &wr->job, wr->tiles[t], wt->err);
        writer_tile_hash(wr, wr->tiles[t], wr->tile_hash + (size_t)t * wr->nowned);
    }
    if (wt->rc == 0 && wt->commit) wt->rc = writer_ledger_commit(wr, wt->end, wt->err);
    if (wr->delay_ms && wt->commit) usleep(wr->delay_ms * 1000u);
}

static void after_write(uv_work_t *req, int status) {
    write_t *wt = req->data;
    writer_t *wr = wt->wr;
    wr->writing = 0;
    if (status == UV_ECANCELED || wr->finished) {
        free(wt);
        return;
    }
    if (wt->rc < 0) {
        gm_log(GM_LOG_ERROR, "%s", wt->err);
        writer_finish(wr, 1);
    } else if (wt->first < wt->end) {
        for (uint32_t t = wt->first; t < wt->end; t++) free_tile(wr, &wr->tiles[t]);
        wr->next_tile = wt->end;
        ack_written(wr, wt->first, wt->end);
        try_write(wr);
    } else {
        gm_header_t h = {.kind = GM_MSG_DONE, .job = wr->job.id};
        writer_send_ack(wr, &h, NULL, 0);
        gm_log(GM_LOG_INFO, "done: %u blocks in %u tiles written; %llu duplicates and %llu malformed messages dropped",
               wr->nblocks, wr->ntiles, (unsigned long long)wr->duplicates, (unsigned long long)wr->dropped);
        writer_finish(wr, 0);
    }
    free(wt);
}

/* Returns 1 when tile 'index' holds all its pixels. */
static int tile_complete(const writer_t *wr, uint32_t index) {
    const tile_t *t = wr->tiles[index];
    return t && t->filled == (uint64_t)t->w * t->h;
}

/* Starts writing the complete tiles from the next one to the end of its row, or the final close when all are
 * written. */
static void try_write(writer_t *wr) {
    if (wr->writing || wr->finished) return;
    uint32_t end = wr->next_tile;
    while (end < wr->ntiles && tile_complete(wr, end)) {
        end++;
        if (writer_tile_ends_row(&wr->job, end - 1)) break;
    }
    if (end == wr->next_tile && wr->next_tile < wr->ntiles) return;
    write_t *wt = calloc(1, sizeof *wt);
    if (!wt) {
        gm_log(GM_LOG_ERROR, "out of memory");
        writer_finish(wr, 1);
        return;
    }
    wt->wr = wr;
    wt->first = wr->next_tile;
    wt->end = end;
    wt->commit = end > wt->first && writer_tile_ends_row(&wr->job, end - 1);
    wt->req.data = wt;
    wr->writing = 1;
    uv_queue_work(wr->loop, &wt->req, do_write, after_write);
}

/* Checks a result message against the job. Returns 0, or -1 with 'err'. */
static int check_result(writer_t *wr, gm_msg_t *msg, const gm_header_t *h, char *err) {
    if (h->kind != GM_MSG_RESULT) return gm_err(err, "a \"%s\" message where results are expected", gm_msg_kind_name(h->kind));
    if (gm_job_check_block(&wr->job, h, err) < 0) return -1;
    if (msg->nframes != 1 + wr->job.noutputs)
        return gm_err(err, "result block %u has %zu payload frames, the job has %u outputs", h->block, msg->nframes - 1,
                      wr->job.noutputs);
    for (uint32_t i = 0; i < wr->job.noutputs; i++) {
        size_t want = gm_job_output_bytes(&wr->job.outputs[i], h->w, h->h);
        if (gm_msg_size(msg, i + 1) != want)
            return gm_err(err, "result block %u output \"%s\" is %zu bytes, not %zu", h->block, wr->job.outputs[i].name,
                          gm_msg_size(msg, i + 1), want);
    }
    return 0;
}

/* Copies the outputs this writer owns of a checked result into the tiles it overlaps. Returns 0, or -1 when
 * out of memory. */
static int place_result(writer_t *wr, gm_msg_t *msg, const gm_header_t *h) {
    const gm_job_t *job = &wr->job;
    uint32_t ntx = gm_job_tiles_x(job);
    for (uint32_t ty = h->y / job->tile; ty <= (h->y + h->h - 1) / job->tile; ty++)
        for (uint32_t tx = h->x / job->tile; tx <= (h->x + h->w - 1) / job->tile; tx++) {
            uint32_t index = ty * ntx + tx;
            if (index < wr->next_tile) continue; /* written before a resume */
            tile_t *t = get_tile(wr, index);
            if (!t) return -1;
            /* the overlap of the block and the tile */
            uint32_t x0 = h->x > t->x0 ? h->x : t->x0, y0 = h->y > t->y0 ? h->y : t->y0;
            uint32_t x1 = h->x + h->w < t->x0 + t->w ? h->x + h->w : t->x0 + t->w;
            uint32_t y1 = h->y + h->h < t->y0 + t->h ? h->y + h->h : t->y0 + t->h;
            for (uint32_t i = 0; i < job->noutputs; i++) {
                if (!t->buf[i]) continue; /* another writer's output */
                const gm_output_t *o = &job->outputs[i];
                size_t ds = gm_dtype_size(o->dtype), run = (size_t)(x1 - x0) * ds;
                const unsigned char *src = gm_msg_data(msg, i + 1);
                unsigned char *dst = t->buf[i];
                for (uint32_t b = 0; b < o->bands; b++)
                    for (uint32_t y = y0; y < y1; y++)
                        memcpy(dst + (((size_t)b * t->h + (y - t->y0)) * t->w + (x0 - t->x0)) * ds,
                               src + (((size_t)b * h->h + (y - h->y)) * h->w + (x0 - h->x)) * ds, run);
            }
            t->filled += (uint64_t)(x1 - x0) * (y1 - y0);
        }
    return 0;
}

void writer_tiles_take(writer_t *wr, gm_msg_t *msg, const gm_header_t *h) {
    char err[GM_ERR_LEN];
    if (check_result(wr, msg, h, err) < 0) {
        gm_log(GM_LOG_WARN, "results: dropped a bad message: %s", err);
        wr->dropped++;
    } else if (wr->seen[h->block]) {
        wr->duplicates++; /* a block taken twice changes nothing: the first copy stands */
    } else if (place_result(wr, msg, h) < 0) {
        gm_log(GM_LOG_ERROR, "out of memory assembling block %u", h->block);
        writer_finish(wr, 1);
    } else {
        wr->seen[h->block] = 1;
        wr->received++;
        /* tell the reader at once: it no longer needs to re-issue this block if a worker is lost */
        send_block_ack(wr, &h->block, 1, 1);
        try_write(wr);
    }
}

void writer_tile_hash(const writer_t *wr, const tile_t *t, uint64_t *hash) {
    uint32_t k = 0;
    for (uint32_t i = 0; i < wr->job.noutputs; i++)
        if (writer_owns_output(&wr->opt, i))
            hash[k++] = gm_hash64(t->buf[i], gm_job_output_bytes(&wr->job.outputs[i], t->w, t->h), 0);
}

void writer_tiles_clear(writer_t *wr) {
    for (uint32_t i = 0; wr->tiles && i < wr->ntiles; i++) free_tile(wr, &wr->tiles[i]);
    free(wr->tiles);
    free(wr->seen);
    free(wr->ack_start);
    free(wr->ack_blocks);
    free(wr->tile_hash);
    wr->tile_hash = NULL;
    wr->tiles = NULL;
    wr->seen = NULL;
    wr->ack_start = wr->ack_blocks = NULL;
    wr->ntiles = wr->nblocks = wr->next_tile = 0;
}

int writer_tiles_start(writer_t *wr, char *err) {
    const gm_job_t *job = &wr->job;
    wr->nblocks = gm_job_nblocks(job);
    wr->ntiles = gm_job_ntiles(job);
    wr->seen = calloc(wr->nblocks, 1);
    wr->tiles = calloc(wr->ntiles, sizeof *wr->tiles);
    wr->ack_start = calloc((size_t)wr->ntiles + 1, sizeof *wr->ack_start);
    wr->ack_blocks = malloc((size_t)wr->nblocks * sizeof *wr->ack_blocks);
    wr->nowned = 0;
    for (uint32_t i = 0; i < job->noutputs; i++) wr->nowned += (uint32_t)writer_owns_output(&wr->opt, i);
    wr->tile_hash = calloc((size_t)wr->ntiles * wr->nowned + 1, sizeof *wr->tile_hash);
    if (!wr->seen || !wr->tiles || !wr->ack_start || !wr->ack_blocks || !wr->tile_hash)
        return gm_err(err, "out of memory for %u blocks", wr->nblocks);
    /* the blocks each tile completes (those whose last tile it is), grouped by tile */
    for (uint32_t b = 0; b < wr->nblocks; b++) wr->ack_start[gm_job_block_last_tile(job, b) + 1]++;
    for (uint32_t t = 0; t < wr->ntiles; t++) wr->ack_start[t + 1] += wr->ack_start[t];
    uint32_t *fill = calloc(wr->ntiles ? wr->ntiles : 1, sizeof *fill);
    if (!fill) return gm_err(err, "out of memory for %u tiles", wr->ntiles);
    for (uint32_t b = 0; b < wr->nblocks; b++) {
        uint32_t t = gm_job_block_last_tile(job, b);
        wr->ack_blocks[wr->ack_start[t] + fill[t]++] = b;
    }
    free(fill);
    /* GDAL's cache only passes tiles through (each is flushed once written): a few tiles, 64 MiB at least */
    size_t tile_bytes = 0;
    for (uint32_t i = 0; i < job->noutputs; i++)
        if (writer_owns_output(&wr->opt, i)) tile_bytes += gm_job_output_bytes(&job->outputs[i], job->tile, job->tile);
    GDALSetCacheMax64((GIntBig)(8 * tile_bytes > (64u << 20) ? 8 * tile_bytes : (64u << 20)));
    return 0;
}

void writer_tiles_resume_to(writer_t *wr, uint32_t k) {
    wr->next_tile = k;
    for (uint32_t i = 0; i < wr->ack_start[k]; i++) wr->seen[wr->ack_blocks[i]] = 1;
    ack_written(wr, 0, k);
    try_write(wr);
}
