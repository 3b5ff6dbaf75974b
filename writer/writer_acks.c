/* writer_acks.c -- the writer's messages to the readers (ack, done, saved): one PUSH socket per ack endpoint,
 * each with its own queue, so a reader that is slow to take them holds back no other. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gm_log.h"
#include "writer.h"

/* Sends the queued messages of one ack endpoint until its socket would block. */
static void flush(writer_acks_t *a) {
    char err[GM_ERR_LEN];
    while (a->nqueue > 0) {
        int rc = gm_sock_send(a->sock, &a->queue[0], err);
        if (rc == 1) {
            gm_sock_want_writable(a->sock, 1);
            return;
        }
        if (rc < 0) gm_log(GM_LOG_WARN, "%s", err);
        gm_msg_destroy(&a->queue[0]);
        memmove(a->queue, a->queue + 1, (a->nqueue - 1) * sizeof a->queue[0]);
        a->nqueue--;
    }
    gm_sock_want_writable(a->sock, 0);
}

static void on_writable(gm_sock_t *sock, void *arg) {
    (void)sock;
    flush(arg);
}

void writer_send_ack(writer_t *wr, gm_header_t *h, void *payload, size_t len) {
    void *buf;
    size_t blen;
    if (h->kind == GM_MSG_ACK || h->kind == GM_MSG_DONE) h->writer = wr->opt.shard;
    gm_msg_t *msg = gm_msg_new();
    if (!msg || wr->nacks == 0 || gm_wire_encode(h, &buf, &blen, NULL) < 0 || gm_msg_add_owned(msg, buf, blen) < 0 ||
        (payload && gm_msg_add_owned(msg, payload, len) < 0)) {
        gm_log(GM_LOG_WARN, "acks: cannot queue an ack; the reader will see those blocks late");
        if (!msg) free(payload);
        gm_msg_destroy(&msg);
        return;
    }
    for (uint32_t k = 0; k < wr->nacks; k++) {
        writer_acks_t *a = &wr->acks[k];
        gm_msg_t *copy = k + 1 == wr->nacks ? msg : gm_msg_dup(msg); /* the copies share the payload */
        if (!copy || a->nqueue == WRITER_ACK_QUEUE) {
            gm_log(GM_LOG_WARN, "%s: cannot queue an ack; that reader will see those blocks late",
                   gm_sock_name(a->sock));
            gm_msg_destroy(&copy);
            continue;
        }
        a->queue[a->nqueue++] = copy;
        flush(a);
    }
}

int writer_acks_connect(writer_t *wr, char *err) {
    char acks_ep[GM_JOB_EP_LEN], name[16] = "acks";
    if (wr->nacks > 0) return 0;
    uint32_t n = wr->opt.nack_eps ? wr->opt.nack_eps : 1;
    for (uint32_t k = 0; k < n; k++) {
        if (wr->opt.nack_eps) snprintf(acks_ep, sizeof acks_ep, "%s", wr->opt.ack_eps[k]);
        else gm_sock_rehost(wr->job.acks_ep, wr->opt.connect_ep, acks_ep, sizeof acks_ep);
        if (n > 1) snprintf(name, sizeof name, "acks %u", k + 1);
        writer_acks_t *a = &wr->acks[k];
        memset(a, 0, sizeof *a);
        if (!(a->sock = gm_sock_new(wr->loop, wr->zctx, ZMQ_PUSH, name, err))) return -1;
        wr->nacks = k + 1;
        if (gm_sock_connect(a->sock, acks_ep, err) < 0 || gm_sock_start(a->sock, NULL, on_writable, a, err) < 0)
            return -1;
    }
    return 0;
}

int writer_acks_blocked(const writer_t *wr) {
    for (uint32_t k = 0; k < wr->nacks; k++)
        if (wr->acks[k].nqueue > 0) return 1;
    return 0;
}

void writer_acks_close(writer_t *wr, int linger_ms) {
    for (uint32_t k = 0; k < wr->nacks; k++) {
        writer_acks_t *a = &wr->acks[k];
        gm_sock_destroy(&a->sock, linger_ms);
        for (uint32_t i = 0; i < a->nqueue; i++) gm_msg_destroy(&a->queue[i]);
        a->nqueue = 0;
    }
    wr->nacks = 0;
}
