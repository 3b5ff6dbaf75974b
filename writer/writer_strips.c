/* writer_strips.c -- take results, assemble this writer's outputs into full-width strips, write them in order, ack.
 *
 * A writer that owns no output (a shard beyond the job's outputs) assembles empty strips: it still counts
 * every block, keeps its ledger and acks each strip in order, so the readers hear from every writer. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gm_log.h"
#include "gm_wire.h"
#include "writer.h"

/* A strip write or the final close, running in libuv's thread pool. */
typedef struct {
    uv_work_t req;
    writer_t *wr;
    strip_t *strip; /* NULL for the final close */
    int rc;
    char err[GM_ERR_LEN];
} write_t;

static void try_write(writer_t *wr);

static void free_strip(writer_t *wr, strip_t **sp) {
    strip_t *s = *sp;
    if (!s) return;
    for (uint32_t i = 0; i < wr->job.noutputs; i++) free(s->buf[i]);
    free(s);
    *sp = NULL;
}

/* Returns strip 'index', allocating it on first use, or NULL when out of memory. */
static strip_t *get_strip(writer_t *wr, uint32_t index) {
    if (wr->strips[index]) return wr->strips[index];
    strip_t *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->index = index;
    s->y0 = index * wr->job.tile;
    s->rows = wr->job.ysize - s->y0 < wr->job.tile ? wr->job.ysize - s->y0 : wr->job.tile;
    for (uint32_t i = 0; i < wr->job.noutputs; i++) {
        if (!writer_owns_output(&wr->opt, i)) continue;
        s->buf[i] = malloc(gm_job_output_bytes(&wr->job.outputs[i], wr->job.xsize, s->rows));
        if (!s->buf[i]) {
            free_strip(wr, &s);
            return NULL;
        }
    }
    wr->strips[index] = s;
    return s;
}

/* Acks every block row whose last strip has been written. */
static void ack_written(writer_t *wr) {
    const gm_job_t *job = &wr->job;
    uint32_t nbx = gm_job_blocks_x(job), nby = gm_job_blocks_y(job);
    uint32_t first = wr->acked_block_rows, last = first;
    while (last < nby) {
        uint32_t end = (last + 1) * job->block_h;
        uint32_t last_row = (end < job->ysize ? end : job->ysize) - 1;
        if (last_row / job->tile >= wr->next_strip) break;
        last++;
    }
    if (last == first) return;
    uint32_t count = (last - first) * nbx;
    unsigned char *ids = malloc((size_t)count * 4);
    if (!ids) return;
    for (uint32_t i = 0; i < count; i++) {
        uint32_t b = first * nbx + i;
        ids[4 * i] = (unsigned char)b;
        ids[4 * i + 1] = (unsigned char)(b >> 8);
        ids[4 * i + 2] = (unsigned char)(b >> 16);
        ids[4 * i + 3] = (unsigned char)(b >> 24);
    }
    gm_header_t h = {.kind = GM_MSG_ACK, .job = job->id, .count = count};
    writer_send_ack(wr, &h, ids, (size_t)count * 4);
    wr->acked_block_rows = last;
}

static void do_write(uv_work_t *req) {
    write_t *wt = req->data;
    writer_t *wr = wt->wr;
    if (wt->strip) {
        wt->rc = writer_outputs_write_strip(&wr->outs, &wr->job, wt->strip, wt->err);
        if (wt->rc == 0) wt->rc = writer_ledger_commit(wr, wt->strip->index + 1, wt->err);
        if (wr->delay_ms) usleep(wr->delay_ms * 1000u);
    } else {
        wt->rc = writer_outputs_finish(&wr->outs, wt->err);
        if (wt->rc == 0) writer_ledger_remove(wr);
    }
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
    } else if (wt->strip) {
        free_strip(wr, &wr->strips[wt->strip->index]);
        wr->next_strip++;
        ack_written(wr);
        try_write(wr);
    } else {
        gm_header_t h = {.kind = GM_MSG_DONE, .job = wr->job.id};
        writer_send_ack(wr, &h, NULL, 0);
        gm_log(GM_LOG_INFO, "done: %u blocks in %u strips written; %llu duplicates and %llu malformed messages dropped",
               wr->nblocks, wr->nstrips, (unsigned long long)wr->duplicates, (unsigned long long)wr->dropped);
        writer_finish(wr, 0);
    }
    free(wt);
}

/* Starts writing the next strip when it is complete, or the final close when all are written. */
static void try_write(writer_t *wr) {
    if (wr->writing || wr->finished) return;
    strip_t *s = NULL;
    if (wr->next_strip < wr->nstrips) {
        s = wr->strips[wr->next_strip];
        if (!s || s->filled < (uint64_t)s->rows * wr->job.xsize) return;
    }
    write_t *wt = calloc(1, sizeof *wt);
    if (!wt) {
        gm_log(GM_LOG_ERROR, "out of memory");
        writer_finish(wr, 1);
        return;
    }
    wt->wr = wr;
    wt->strip = s;
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

/* Copies the outputs this writer owns of a checked result into the strips its rows fall in. Returns 0, or -1
 * when out of memory. */
static int place_result(writer_t *wr, gm_msg_t *msg, const gm_header_t *h) {
    const gm_job_t *job = &wr->job;
    for (uint32_t r = 0; r < h->h; r++) {
        uint32_t y = h->y + r;
        if (y / job->tile < wr->next_strip) continue; /* written before a resume */
        strip_t *s = get_strip(wr, y / job->tile);
        if (!s) return -1;
        uint32_t yy = y - s->y0;
        for (uint32_t i = 0; i < job->noutputs; i++) {
            if (!s->buf[i]) continue; /* another writer's output */
            const gm_output_t *o = &job->outputs[i];
            size_t ds = gm_dtype_size(o->dtype);
            const unsigned char *src = gm_msg_data(msg, i + 1);
            unsigned char *dst = s->buf[i];
            for (uint32_t b = 0; b < o->bands; b++)
                memcpy(dst + (((size_t)b * s->rows + yy) * job->xsize + h->x) * ds,
                       src + (((size_t)b * h->h + r) * h->w) * ds, (size_t)h->w * ds);
        }
        s->filled += h->w;
    }
    return 0;
}

void writer_strips_take(writer_t *wr, gm_msg_t *msg, const gm_header_t *h) {
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
        unsigned char *id = malloc(4);
        if (id) {
            id[0] = (unsigned char)h->block;
            id[1] = (unsigned char)(h->block >> 8);
            id[2] = (unsigned char)(h->block >> 16);
            id[3] = (unsigned char)(h->block >> 24);
            gm_header_t ah = {.kind = GM_MSG_ACK, .job = wr->job.id, .count = 1, .received = 1};
            writer_send_ack(wr, &ah, id, 4);
        }
        try_write(wr);
    }
}

void writer_strips_clear(writer_t *wr) {
    for (uint32_t i = 0; wr->strips && i < wr->nstrips; i++) free_strip(wr, &wr->strips[i]);
    free(wr->strips);
    free(wr->seen);
    wr->strips = NULL;
    wr->seen = NULL;
    wr->nstrips = wr->nblocks = wr->next_strip = wr->acked_block_rows = 0;
}

int writer_strips_start(writer_t *wr, char *err) {
    const gm_job_t *job = &wr->job;
    wr->nblocks = gm_job_nblocks(job);
    wr->nstrips = (job->ysize + job->tile - 1) / job->tile;
    wr->seen = calloc(wr->nblocks, 1);
    wr->strips = calloc(wr->nstrips, sizeof *wr->strips);
    if (!wr->seen || !wr->strips) return gm_err(err, "out of memory for %u blocks", wr->nblocks);
    /* Keep the strips of the in-flight window in GDAL's cache without evicting: 3 strips, 64 MiB at least. */
    size_t strip_bytes = 0;
    for (uint32_t i = 0; i < job->noutputs; i++)
        if (writer_owns_output(&wr->opt, i))
            strip_bytes += gm_job_output_bytes(&job->outputs[i], job->xsize, job->tile);
    GDALSetCacheMax64((GIntBig)(3 * strip_bytes > (64u << 20) ? 3 * strip_bytes : (64u << 20)));
    return 0;
}

void writer_strips_resume_to(writer_t *wr, uint32_t k) {
    const gm_job_t *job = &wr->job;
    uint32_t nbx = gm_job_blocks_x(job), nby = gm_job_blocks_y(job);
    wr->next_strip = k;
    for (uint32_t by = 0; by < nby; by++) {
        uint32_t end = (by + 1) * job->block_h;
        uint32_t last_row = (end < job->ysize ? end : job->ysize) - 1;
        if (last_row / job->tile >= k) break;
        for (uint32_t bx = 0; bx < nbx; bx++) wr->seen[by * nbx + bx] = 1;
    }
    ack_written(wr);
    try_write(wr);
}
