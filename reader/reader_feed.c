/* reader_feed.c -- read covariate blocks in the thread pool, push them as tasks, retire them on acks. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gm_log.h"
#include "gm_wire.h"
#include "reader.h"

/* One block read, running in libuv's thread pool with a stack of its own. */
typedef struct {
    uv_work_t req;
    reader_t *r;
    uint32_t block, x, y, w, h;
    int stack;
    float *planes;
    int rc;
    char err[GM_ERR_LEN];
} read_t;

static void do_read(uv_work_t *req) {
    read_t *rd = req->data;
    reader_t *r = rd->r;
    size_t n = (size_t)rd->w * rd->h * r->job.nbands;
    rd->planes = malloc(n * sizeof(float));
    if (!rd->planes) {
        rd->rc = gm_err(rd->err, "out of memory for block %u", rd->block);
        return;
    }
    rd->rc = gm_stack_read(r->stacks[rd->stack], rd->x, rd->y, rd->w, rd->h, rd->planes, rd->err);
    if (r->delay_ms) usleep(r->delay_ms * 1000u);
}

/* Sends queued tasks in order until the socket would block. */
static void flush_ready(reader_t *r) {
    char err[GM_ERR_LEN];
    while (r->ready_head && r->tasks) {
        ready_t *q = r->ready_head;
        if (q->block != UINT32_MAX && r->state[q->block] == BLOCK_ACKED) { /* written meanwhile: not needed */
            r->ready_head = q->next;
            if (!r->ready_head) r->ready_tail = NULL;
            gm_msg_destroy(&q->msg);
            free(q);
            continue;
        }
        gm_msg_t *copy = gm_msg_dup(q->msg); /* kept until the writer has the result, to re-issue */
        if (!copy) {
            gm_log(GM_LOG_ERROR, "out of memory keeping a copy of a task");
            reader_finish(r, 1);
            return;
        }
        int rc = gm_sock_send(r->tasks, &q->msg, err);
        if (rc != 0) gm_msg_destroy(&copy);
        if (rc == 1) {
            gm_sock_want_writable(r->tasks, 1);
            return;
        }
        if (rc < 0) {
            gm_log(GM_LOG_ERROR, "%s", err);
            reader_finish(r, 1);
            return;
        }
        if (q->block != UINT32_MAX) {
            if (r->state[q->block] != BLOCK_SENT) r->nsent++;
            r->state[q->block] = BLOCK_SENT;
            gm_msg_destroy(&r->block_copy[q->block]);
            r->block_copy[q->block] = copy;
        } else if (q->iteration != UINT32_MAX) {
            reader_run_sent(r, q->iteration, copy);
        } else {
            gm_msg_destroy(&copy);
        }
        r->ready_head = q->next;
        if (!r->ready_head) r->ready_tail = NULL;
        free(q);
    }
    if (r->tasks) gm_sock_want_writable(r->tasks, 0);
}

int reader_feed_queue(reader_t *r, gm_msg_t *msg, uint32_t block, uint32_t iteration) {
    ready_t *q = calloc(1, sizeof *q);
    if (!q) return -1;
    q->msg = msg;
    q->block = block;
    q->iteration = iteration;
    if (r->ready_tail) r->ready_tail->next = q;
    else r->ready_head = q;
    r->ready_tail = q;
    flush_ready(r);
    return 0;
}

/* Builds the task message for a finished read: header frame + one frame of band-sequential float32. */
static gm_msg_t *task_message(reader_t *r, read_t *rd, char *err) {
    gm_header_t h = {.kind = GM_MSG_TASK, .job = r->job.id, .block = rd->block, .x = rd->x, .y = rd->y,
                     .w = rd->w, .h = rd->h, .bands = r->job.nbands, .dtype = GM_DT_F32};
    void *buf;
    size_t len;
    gm_msg_t *msg = gm_msg_new();
    if (!msg || gm_wire_encode(&h, &buf, &len, err) < 0) {
        gm_msg_destroy(&msg);
        return NULL;
    }
    size_t bytes = (size_t)rd->w * rd->h * r->job.nbands * sizeof(float);
    if (gm_msg_add_owned(msg, buf, len) < 0 || gm_msg_add_owned(msg, rd->planes, bytes) < 0) {
        rd->planes = NULL;
        gm_msg_destroy(&msg);
        gm_err(err, "out of memory");
        return NULL;
    }
    rd->planes = NULL; /* the message owns it now: sent without a copy */
    return msg;
}

static void after_read(uv_work_t *req, int status) {
    read_t *rd = req->data;
    reader_t *r = rd->r;
    r->free_stacks[r->nfree++] = rd->stack;
    char err[GM_ERR_LEN];
    if (r->finished || status == UV_ECANCELED) goto out;
    if (rd->rc < 0) {
        gm_log(GM_LOG_ERROR, "%s", rd->err);
        reader_finish(r, 1);
        goto out;
    }
    r->block_reads++;
    r->reads_of_block[rd->block]++;
    if (r->state[rd->block] == BLOCK_ACKED) goto out; /* written by an earlier run meanwhile */
    gm_msg_t *msg = task_message(r, rd, err);
    if (!msg) {
        gm_log(GM_LOG_ERROR, "block %u: %s", rd->block, err);
        reader_finish(r, 1);
        goto out;
    }
    r->state[rd->block] = BLOCK_READY;
    if (reader_feed_queue(r, msg, rd->block, UINT32_MAX) < 0) {
        gm_msg_destroy(&msg);
        gm_log(GM_LOG_ERROR, "block %u: out of memory", rd->block);
        reader_finish(r, 1);
        goto out;
    }
    reader_feed_pump(r);
out:
    free(rd->planes);
    free(rd);
}

int reader_owns_block(const reader_t *r, uint32_t b) {
    uint32_t nbx = (r->job.xsize + r->job.block_w - 1) / r->job.block_w;
    return (b / nbx) % r->opt.shards == r->opt.shard;
}

int reader_is_primary(const reader_t *r) { return r->opt.shard == 0; }

/* The bits of every writer shard. */
static uint32_t all_writers(const reader_t *r) { return (1u << r->opt.writers) - 1; }

void reader_feed_pump(reader_t *r) {
    if (!r->writer_ready) return; /* it may have outputs of an earlier run to resume from */
    while (!r->finished && r->state && r->next_block < r->nblocks && r->inflight < r->max_inflight && r->nfree > 0) {
        uint32_t b = r->order[r->next_block++];
        if (r->state[b] == BLOCK_ACKED) continue; /* another reader's, or written by an earlier run */
        read_t *rd = calloc(1, sizeof *rd);
        if (!rd) {
            gm_log(GM_LOG_ERROR, "out of memory");
            reader_finish(r, 1);
            return;
        }
        rd->r = r;
        rd->block = b;
        gm_job_block_window(&r->job, rd->block, &rd->x, &rd->y, &rd->w, &rd->h);
        rd->stack = r->free_stacks[--r->nfree];
        rd->req.data = rd;
        r->state[rd->block] = BLOCK_READING;
        r->inflight++;
        uv_queue_work(r->loop, &rd->req, do_read, after_read);
    }
}

static void on_tasks_writable(gm_sock_t *sock, void *arg) {
    (void)sock;
    flush_ready(arg);
}

/* Retires the blocks an ack names; malformed acks are logged and dropped. */
static void on_ack(gm_sock_t *sock, gm_msg_t *msg, void *arg) {
    (void)sock;
    reader_t *r = arg;
    char err[GM_ERR_LEN];
    gm_header_t h;
    if (msg->nframes < 1 || gm_wire_decode(gm_msg_data(msg, 0), gm_msg_size(msg, 0), &h, err) < 0) {
        if (msg->nframes < 1) snprintf(err, sizeof err, "no header frame");
        gm_log(GM_LOG_WARN, "acks: dropped a malformed message: %s", err);
        r->dropped++;
    } else if (h.kind == GM_MSG_SAVED && r->run) {
        reader_run_saved(r, msg, &h);
    } else if ((h.kind != GM_MSG_ACK && h.kind != GM_MSG_DONE) || h.job != r->job.id || !r->state ||
               h.writer >= r->opt.writers) {
        gm_log(GM_LOG_WARN, "acks: dropped a \"%s\" message for job %016llx from writer %u",
               gm_msg_kind_name(h.kind), (unsigned long long)h.job, h.writer);
        r->dropped++;
    } else if (h.kind == GM_MSG_DONE) {
        /* each writer sends its acks before its done on the same socket: all done means all acked */
        r->done_mask |= 1u << h.writer;
        if (r->done_mask != all_writers(r)) {
            gm_log(GM_LOG_DEBUG, "writer %u of %u is done", h.writer + 1, r->opt.writers);
        } else if (r->nacked == r->nblocks) {
            uint32_t most = 0;
            for (uint32_t b = 0; b < r->nblocks; b++) most = r->reads_of_block[b] > most ? r->reads_of_block[b] : most;
            gm_log(GM_LOG_INFO, "covariate block reads: %u blocks read %llu times in the prediction pass (%s)",
                   r->nblocks, (unsigned long long)r->block_reads, most == 1 ? "each once" : "some more than once");
            gm_log(GM_LOG_INFO, "done: every output written; %llu malformed messages dropped",
                   (unsigned long long)r->dropped);
            reader_finish(r, 0);
        } else {
            gm_log(GM_LOG_WARN, "acks: the writer reports done with %u of %u blocks acked", r->nacked, r->nblocks);
        }
    } else if (h.count == 0 && msg->nframes <= 2) {
        r->ready_mask |= 1u << h.writer;
        if (!r->writer_ready && r->ready_mask == all_writers(r))
            gm_log(GM_LOG_DEBUG, "the writer%s ready for job %016llx", r->opt.writers > 1 ? "s are" : " is",
                   (unsigned long long)h.job);
        r->writer_ready = r->ready_mask == all_writers(r);
        reader_feed_pump(r);
    } else if (msg->nframes != 2 || gm_msg_size(msg, 1) != (size_t)h.count * 4) {
        gm_log(GM_LOG_WARN, "acks: dropped an ack whose payload does not hold %u block ids", h.count);
        r->dropped++;
    } else {
        const unsigned char *p = gm_msg_data(msg, 1);
        uint32_t forged = 0;
        r->last_progress = uv_now(r->loop);
        for (uint32_t i = 0; i < h.count; i++) {
            uint32_t b = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 |
                         (uint32_t)p[4 * i + 3] << 24;
            if (b >= r->nblocks) {
                if (!forged++) gm_log(GM_LOG_WARN, "acks: dropped an ack for block %u of %u", b, r->nblocks);
                r->dropped++;
                continue;
            }
            block_state_t st = (block_state_t)r->state[b];
            if (st == BLOCK_ACKED) continue; /* duplicate, or another reader's block: nothing to retire */
            /* A writer acks a block received only after we sent it, and written (once it said ready: before,
             * it reports what an earlier run wrote) only after it acked it received: anything else is forged. */
            int sent = st == BLOCK_SENT || st == BLOCK_RECEIVED;
            if ((h.received && !sent) ||
                (!h.received && r->writer_ready && (!sent || !(r->held_by[b] & (1u << h.writer))))) {
                if (!forged++)
                    gm_log(GM_LOG_WARN, "acks: dropped a \"%s\" ack for block %u, which %s",
                           h.received ? "recv" : "written", b,
                           !sent ? "was never sent" : "the writer never acked as received");
                r->dropped++;
                continue;
            }
            r->held_by[b] |= 1u << h.writer;
            if (!h.received) r->written_by[b] |= 1u << h.writer;
            if (h.received || r->written_by[b] != all_writers(r)) {
                if (st == BLOCK_SENT && r->held_by[b] == all_writers(r)) {
                    gm_msg_destroy(&r->block_copy[b]); /* the writer has it: no re-issue needed */
                    r->state[b] = BLOCK_RECEIVED;
                }
                continue;
            }
            /* written: also blocks not sent yet, which an earlier run wrote (the writer resumed) */
            gm_msg_destroy(&r->block_copy[b]);
            if (st != BLOCK_PENDING) r->inflight--;
            r->state[b] = BLOCK_ACKED;
            r->nacked++;
        }
        if (forged > 1) gm_log(GM_LOG_WARN, "acks: dropped %u bad block ids of one ack in all", forged);
        reader_feed_pump(r);
    }
    gm_msg_destroy(&msg);
}

int reader_feed_bind(reader_t *r, char *err) {
    r->tasks = gm_sock_new(r->loop, r->zctx, ZMQ_PUSH, "tasks", err);
    r->acks = gm_sock_new(r->loop, r->zctx, ZMQ_PULL, "acks", err);
    if (!r->tasks || !r->acks) return -1;
    gm_sock_set_hwm(r->tasks, 2, 0); /* few queued per worker: blocks go to whoever is free */
    gm_sock_set_dead_peer_timeout(r->tasks, GM_SOCK_DEAD_PEER_MS); /* workers read their tasks at once */
    gm_sock_set_maxmsgsize(r->acks, (int64_t)1 << 31);
    if (gm_sock_bind(r->tasks, r->opt.tasks_ep, err) < 0 || gm_sock_bind(r->acks, r->opt.acks_ep, err) < 0) return -1;
    if (gm_sock_start(r->tasks, NULL, on_tasks_writable, r, err) < 0 || gm_sock_start(r->acks, on_ack, NULL, r, err) < 0)
        return -1;
    return 0;
}

int reader_feed_begin(reader_t *r, char *err) {
    r->nblocks = gm_job_nblocks(&r->job);
    r->next_block = r->nacked = r->nsent = r->inflight = 0;
    r->writer_ready = 0;
    r->ready_mask = r->done_mask = 0;
    r->state = calloc(r->nblocks, 1);
    r->held_by = calloc(r->nblocks, 1);
    r->written_by = calloc(r->nblocks, 1);
    r->reads_of_block = calloc(r->nblocks, sizeof *r->reads_of_block);
    r->block_copy = calloc(r->nblocks, sizeof *r->block_copy);
    free(r->order);
    r->order = malloc(r->nblocks * sizeof *r->order);
    if (!r->state || !r->held_by || !r->written_by || !r->reads_of_block || !r->block_copy || !r->order)
        return gm_err(err, "out of memory for %u blocks", r->nblocks);
    gm_job_block_order(&r->job, r->order);
    uint32_t mine = r->nblocks;
    for (uint32_t b = 0; r->opt.shards > 1 && b < r->nblocks; b++)
        if (!reader_owns_block(r, b)) {
            r->state[b] = BLOCK_ACKED; /* another reader's: never read here, and counted as done */
            r->nacked++;
            mine--;
        }
    r->last_progress = uv_now(r->loop);
    /* the window: enough blocks to keep the workers busy while the writer completes the tiles in order */
    uint32_t least = gm_job_min_inflight(&r->job);
    size_t block_bytes = (size_t)r->job.block_w * r->job.block_h * r->job.nbands * sizeof(float);
    uint32_t window = READER_DEFAULT_INFLIGHT;
    if (block_bytes && READER_DEFAULT_INFLIGHT_BYTES / block_bytes < window)
        window = (uint32_t)(READER_DEFAULT_INFLIGHT_BYTES / block_bytes); /* large blocks: fewer of them */
    if (window < 2 * least) window = 2 * least;
    r->max_inflight = r->opt.max_inflight ? r->opt.max_inflight : window;
    if (r->max_inflight < least) {
        gm_log(GM_LOG_WARN, "--max-inflight %u is below the %u blocks the writer needs to complete a tile; using %u",
               r->max_inflight, least, least);
        r->max_inflight = least;
    }
    /* GDAL keeps the covariates' own blocks under the tiles being read: a tile row's worth of a striped file */
    uint32_t unit = r->job.tile > r->job.block_w ? r->job.tile : r->job.block_w;
    size_t cache = gm_stack_limit_cache(r->stacks[0], unit, unit + r->opt.io_threads * r->job.block_w);
    gm_log(GM_LOG_DEBUG, "GDAL block cache: %zu MiB", cache >> 20);
    gm_log(GM_LOG_INFO, "job %016llx: applying %u model%s to %u blocks of %ux%u over %ux%u pixels, %u bands",
           (unsigned long long)r->job.id, r->job.nmodels, r->job.nmodels > 1 ? "s" : "", r->nblocks, r->job.block_w,
           r->job.block_h, r->job.xsize, r->job.ysize, r->job.nbands);
    if (r->opt.shards > 1)
        gm_log(GM_LOG_INFO, "reader %u of %u: %u of the %u blocks are mine", r->opt.shard + 1, r->opt.shards, mine,
               r->nblocks);
    reader_feed_pump(r);
    return 0;
}

void reader_feed_reissue(reader_t *r, const char *why) {
    uint32_t n = 0;
    for (uint32_t b = 0; r->state && b < r->nblocks; b++) {
        if (r->state[b] != BLOCK_SENT || !r->block_copy[b]) continue;
        gm_msg_t *again = gm_msg_dup(r->block_copy[b]);
        if (!again || reader_feed_queue(r, again, b, UINT32_MAX) < 0) {
            gm_msg_destroy(&again);
            gm_log(GM_LOG_ERROR, "out of memory re-issuing block %u", b);
            reader_finish(r, 1);
            return;
        }
        n++;
    }
    if (r->run) n += reader_run_reissue(r);
    r->reissued += n;
    r->last_progress = uv_now(r->loop);
    if (n) gm_log(GM_LOG_WARN, "%s: re-issuing %u task%s the writer has not received", why, n, n > 1 ? "s" : "");
}
