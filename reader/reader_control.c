/* reader_control.c -- the control endpoint: answers each hello with the job and its model bytes. */
#include <stdlib.h>
#include <string.h>

#include "gm_log.h"
#include "gm_wire.h"
#include "reader.h"

/* Sends an error reply to the peer whose identity is frame 0 of 'req'. */
static void reply_error(reader_t *r, gm_msg_t *req, const char *text) {
    gm_header_t h = {.kind = GM_MSG_ERROR};
    snprintf(h.text, sizeof h.text, "%s", text);
    void *buf;
    size_t len;
    char err[GM_ERR_LEN];
    gm_msg_t *rep = gm_msg_new();
    if (!rep || gm_wire_encode(&h, &buf, &len, err) < 0) {
        gm_msg_destroy(&rep);
        return;
    }
    if (gm_msg_add_frame_of(rep, req, 0) < 0 || gm_msg_add_owned(rep, buf, len) < 0 ||
        gm_sock_send(r->control, &rep, err) != 0)
        gm_msg_destroy(&rep);
}

void reader_say_done(reader_t *r) {
    gm_header_t h = {.kind = GM_MSG_DONE, .job = r->job.id};
    char err[GM_ERR_LEN];
    for (uint32_t i = 0; i < r->npeers; i++) {
        void *buf;
        size_t len;
        gm_msg_t *msg = gm_msg_new();
        if (!msg || gm_wire_encode(&h, &buf, &len, err) < 0) {
            gm_msg_destroy(&msg);
            return;
        }
        if (gm_msg_add_copy(msg, r->peers[i].id, r->peers[i].idlen) < 0 || gm_msg_add_owned(msg, buf, len) < 0 ||
            gm_sock_send(r->control, &msg, err) != 0)
            gm_msg_destroy(&msg);
    }
}

/* Sends the job: [identity, job header, model 0, model 1, ...]. */
static void reply_job(reader_t *r, gm_msg_t *req) {
    char err[GM_ERR_LEN];
    gm_msg_t *rep = gm_msg_new();
    int ok = rep && gm_msg_add_frame_of(rep, req, 0) == 0 &&
             gm_msg_add_copy(rep, r->job_header, r->job_header_len) == 0;
    for (uint32_t i = 0; ok && i < r->job.nmodels; i++)
        ok = gm_msg_add_copy(rep, r->job.models[i].bytes, r->job.models[i].size) == 0;
    if (!ok) {
        gm_log(GM_LOG_ERROR, "out of memory answering a hello");
    } else if (gm_sock_send(r->control, &rep, err) < 0) {
        gm_log(GM_LOG_WARN, "%s", err);
    }
    gm_msg_destroy(&rep);
}

static void on_control(gm_sock_t *sock, gm_msg_t *msg, void *arg) {
    (void)sock;
    reader_t *r = arg;
    char err[GM_ERR_LEN];
    gm_header_t h;
    if (msg->nframes < 2) {
        r->dropped++;
        gm_log(GM_LOG_WARN, "control: dropped a message with no header frame");
    } else if (gm_wire_decode(gm_msg_data(msg, 1), gm_msg_size(msg, 1), &h, err) < 0) {
        r->dropped++;
        gm_log(GM_LOG_WARN, "control: dropped a malformed request: %s", err);
        reply_error(r, msg, err);
    } else if (h.kind == GM_MSG_HEARTBEAT) {
        peer_t *p = reader_peer_seen(r, gm_msg_data(msg, 0), gm_msg_size(msg, 0));
        if (p && h.has_stats) p->hb = h;
    } else if (h.kind != GM_MSG_HELLO) {
        r->dropped++;
        gm_log(GM_LOG_WARN, "control: dropped a \"%s\" message; only hello is served here", gm_msg_kind_name(h.kind));
        reply_error(r, msg, "only hello is served on the control endpoint");
    } else {
        gm_log(GM_LOG_DEBUG, "control: hello from a %s; sending job %016llx", h.role, (unsigned long long)r->job.id);
        if (!strcmp(h.role, "worker")) reader_peer_seen(r, gm_msg_data(msg, 0), gm_msg_size(msg, 0));
        reply_job(r, msg);
    }
    gm_msg_destroy(&msg);
}

peer_t *reader_peer_seen(reader_t *r, const void *id, size_t len) {
    if (len > sizeof r->peers[0].id) return NULL;
    uint64_t now = uv_now(r->loop);
    for (uint32_t i = 0; i < r->npeers; i++)
        if (r->peers[i].idlen == len && !memcmp(r->peers[i].id, id, len)) {
            r->peers[i].last_seen = now;
            r->peers[i].lost = 0;
            return &r->peers[i];
        }
    peer_t *more = realloc(r->peers, (r->npeers + 1) * sizeof *more);
    if (!more) return NULL;
    r->peers = more;
    peer_t *p = &r->peers[r->npeers++];
    memset(p, 0, sizeof *p);
    memcpy(p->id, id, len);
    p->idlen = len;
    p->last_seen = now;
    p->lost = 0;
    return p;
}

/* Every half second: a worker silent for READER_PEER_TIMEOUT_MS is lost, and so are the tasks it held;
 * nothing reported by the writer for --stall-timeout means tasks were lost somewhere else. */
static void on_liveness(uv_timer_t *t) {
    reader_t *r = t->data;
    uint64_t now = uv_now(r->loop);
    uint32_t lost = 0;
    for (uint32_t i = 0; i < r->npeers; i++)
        if (!r->peers[i].lost && now - r->peers[i].last_seen > READER_PEER_TIMEOUT_MS) {
            r->peers[i].lost = 1;
            lost++;
        }
    if (lost) {
        gm_log(GM_LOG_WARN, "%u worker%s silent for %d s: taken for lost", lost, lost > 1 ? "s" : "",
               READER_PEER_TIMEOUT_MS / 1000);
        reader_feed_reissue(r, "worker lost");
        /* Some of those may have gone to the lost worker's connection again, if its host vanished without a
         * word: the kernel closes that connection within GM_SOCK_DEAD_PEER_MS, and then we send once more. */
        r->reissue_again_at = now + GM_SOCK_DEAD_PEER_MS + 1000;
    } else if (r->reissue_again_at && now >= r->reissue_again_at) {
        r->reissue_again_at = 0;
        reader_feed_reissue(r, "worker lost, its connection now closed");
    } else if (r->opt.stall_ms && now - r->last_progress > r->opt.stall_ms && r->state && r->writer_ready &&
               r->nacked == r->nblocks && r->done_mask != (1u << r->opt.writers) - 1) {
        /* every block acked written, yet no writer's done: acks we could not tell from the writer's lied */
        gm_log(GM_LOG_ERROR, "acks: every block was acked written %u s ago but the writer%s never sent done for job "
               "%016llx: giving up (forged acks on %s?)", (unsigned)(r->opt.stall_ms / 1000),
               r->opt.writers > 1 ? "s" : "", (unsigned long long)r->job.id, r->opt.acks_ep);
        reader_finish(r, 1);
    } else if (r->opt.stall_ms && now - r->last_progress > r->opt.stall_ms) {
        reader_feed_reissue(r, "no progress reported");
    }
}

int reader_control_start(reader_t *r, char *err) {
    uv_timer_init(r->loop, &r->liveness);
    r->liveness.data = r;
    r->last_progress = uv_now(r->loop); /* the stall clock starts now, not at the clock's zero */
    uv_timer_start(&r->liveness, on_liveness, 500, 500);
    if (!reader_is_primary(r)) return 0; /* workers fetch the job from shard 0; this one only reads blocks */
    r->control = gm_sock_new(r->loop, r->zctx, ZMQ_ROUTER, "control", err);
    if (!r->control) return -1;
    gm_sock_set_maxmsgsize(r->control, GM_WIRE_MAX_HEADER);
    if (gm_sock_bind(r->control, r->opt.control_ep, err) < 0) return -1;
    return gm_sock_start(r->control, on_control, NULL, r, err);
}
