/* gm_sock.c -- a ZeroMQ socket watched by a libuv loop: whole multipart messages in, non-blocking sends out. */
#include "gm_sock.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gm_log.h"

#define MAX_FRAMES 8192     /* a message with more frames is dropped */
#define BURST 64            /* messages handled per wake-up before yielding to other handles */

struct gm_sock {
    uv_loop_t *loop;
    void *zsock;
    char name[32];
    uv_poll_t poll;
    uv_idle_t idle;
    int handles_open;
    gm_sock_recv_cb recv_cb;
    gm_sock_writable_cb writable_cb;
    void *arg;
    int paused, want_writable, started, in_process, again, closing;
};

static void process(gm_sock_t *self);
static void on_idle(uv_idle_t *h);

/* Starts the idle handle so the socket is examined on the next loop iteration. */
static void kick(gm_sock_t *self) {
    if (!self->closing && self->started) uv_idle_start(&self->idle, on_idle);
}

static void on_idle(uv_idle_t *h) {
    gm_sock_t *self = h->data;
    uv_idle_stop(h);
    process(self);
}

static void on_poll(uv_poll_t *h, int status, int events) {
    (void)status;
    (void)events;
    process(h->data);
}

static void on_close(uv_handle_t *h) {
    gm_sock_t *self = h->data;
    if (--self->handles_open == 0) free(self);
}

gm_sock_t *gm_sock_new(uv_loop_t *loop, void *zctx, int type, const char *name, char *err) {
    gm_sock_t *self = calloc(1, sizeof *self);
    if (!self) {
        gm_err(err, "%s: out of memory", name);
        return NULL;
    }
    self->loop = loop;
    snprintf(self->name, sizeof self->name, "%s", name);
    self->zsock = zmq_socket(zctx, type);
    if (!self->zsock) {
        gm_err(err, "%s: cannot create socket: %s", name, zmq_strerror(zmq_errno()));
        free(self);
        return NULL;
    }
    int linger = 0;
    zmq_setsockopt(self->zsock, ZMQ_LINGER, &linger, sizeof linger);
    int fd;
    size_t fdlen = sizeof fd;
    if (zmq_getsockopt(self->zsock, ZMQ_FD, &fd, &fdlen) != 0 || uv_poll_init(loop, &self->poll, fd) != 0) {
        gm_err(err, "%s: cannot watch socket: %s", name, zmq_strerror(zmq_errno()));
        zmq_close(self->zsock);
        free(self);
        return NULL;
    }
    uv_idle_init(loop, &self->idle);
    self->poll.data = self;
    self->idle.data = self;
    self->handles_open = 2;
    return self;
}

int gm_sock_set_hwm(gm_sock_t *self, int sndhwm, int rcvhwm) {
    int rc = 0;
    if (sndhwm > 0) rc |= zmq_setsockopt(self->zsock, ZMQ_SNDHWM, &sndhwm, sizeof sndhwm);
    if (rcvhwm > 0) rc |= zmq_setsockopt(self->zsock, ZMQ_RCVHWM, &rcvhwm, sizeof rcvhwm);
    return rc ? -1 : 0;
}

int gm_sock_set_maxmsgsize(gm_sock_t *self, int64_t bytes) {
    return zmq_setsockopt(self->zsock, ZMQ_MAXMSGSIZE, &bytes, sizeof bytes) ? -1 : 0;
}

int gm_sock_bind(gm_sock_t *self, const char *endpoint, char *err) {
    if (zmq_bind(self->zsock, endpoint) != 0)
        return gm_err(err, "%s: cannot bind %s: %s", self->name, endpoint, zmq_strerror(zmq_errno()));
    return 0;
}

int gm_sock_connect(gm_sock_t *self, const char *endpoint, char *err) {
    if (zmq_connect(self->zsock, endpoint) != 0)
        return gm_err(err, "%s: cannot connect to %s: %s", self->name, endpoint, zmq_strerror(zmq_errno()));
    return 0;
}

int gm_sock_start(gm_sock_t *self, gm_sock_recv_cb recv, gm_sock_writable_cb writable, void *arg, char *err) {
    self->recv_cb = recv;
    self->writable_cb = writable;
    self->arg = arg;
    if (uv_poll_start(&self->poll, UV_READABLE, on_poll) != 0)
        return gm_err(err, "%s: cannot start watching the socket", self->name);
    self->started = 1;
    kick(self);
    return 0;
}

void gm_sock_pause_recv(gm_sock_t *self, int paused) {
    self->paused = paused;
    if (!paused) kick(self);
}

void gm_sock_want_writable(gm_sock_t *self, int want) {
    self->want_writable = want;
    if (want) kick(self);
}

void *gm_sock_zmq(gm_sock_t *self) { return self->zsock; }

const char *gm_sock_name(const gm_sock_t *self) { return self->name; }

int gm_sock_send(gm_sock_t *self, gm_msg_t **msg_p, char *err) {
    gm_msg_t *msg = *msg_p;
    assert(msg && msg->nframes > 0);
    /* The first frame decides: ZeroMQ queues the remaining parts of a started multipart message. */
    for (size_t i = 0; i < msg->nframes; i++) {
        int flags = ZMQ_DONTWAIT | (i + 1 < msg->nframes ? ZMQ_SNDMORE : 0);
        if (zmq_msg_send(&msg->frames[i], self->zsock, flags) < 0) {
            int e = zmq_errno();
            if (e == EAGAIN && i == 0) {
                kick(self);
                return 1;
            }
            gm_err(err, "%s: send failed: %s", self->name, zmq_strerror(e));
            return -1;
        }
    }
    /* zmq_msg_send left every frame empty; gm_msg_destroy closes them. */
    gm_msg_destroy(msg_p);
    kick(self);
    return 0;
}

/* Receives one whole multipart message, or returns NULL when none is waiting or it was dropped. */
static gm_msg_t *recv_msg(gm_sock_t *self) {
    gm_msg_t *msg = gm_msg_new();
    if (!msg) return NULL;
    int more = 1, dropped = 0;
    while (more) {
        zmq_msg_t *part = gm_msg_push_empty(msg);
        if (!part || msg->nframes > MAX_FRAMES) {
            /* keep draining this message's parts, then drop it */
            zmq_msg_t scratch;
            zmq_msg_init(&scratch);
            if (part) {
                msg->nframes--;
                zmq_msg_close(part);
            }
            while (more) {
                if (zmq_msg_recv(&scratch, self->zsock, 0) < 0) break;
                more = zmq_msg_more(&scratch);
            }
            zmq_msg_close(&scratch);
            dropped = 1;
            break;
        }
        if (zmq_msg_recv(part, self->zsock, ZMQ_DONTWAIT) < 0) {
            msg->nframes--;
            zmq_msg_close(part);
            gm_msg_destroy(&msg);
            return NULL; /* EAGAIN on the first part: nothing waiting */
        }
        more = zmq_msg_more(part);
    }
    if (dropped) gm_msg_destroy(&msg);
    return msg;
}

/* Drains the socket while ZeroMQ reports input we want or output room we were asked about. */
static void process(gm_sock_t *self) {
    if (self->in_process) {
        self->again = 1;
        return;
    }
    self->in_process = 1;
    int handled = 0;
    do {
        self->again = 0;
        while (!self->closing && handled < BURST) {
            int events = 0;
            size_t len = sizeof events;
            if (zmq_getsockopt(self->zsock, ZMQ_EVENTS, &events, &len) != 0) break;
            if ((events & ZMQ_POLLIN) && self->recv_cb && !self->paused) {
                gm_msg_t *msg = recv_msg(self);
                handled++;
                if (msg) self->recv_cb(self, msg, self->arg);
                continue;
            }
            if ((events & ZMQ_POLLOUT) && self->want_writable && self->writable_cb) {
                handled++;
                self->writable_cb(self, self->arg);
                continue;
            }
            break;
        }
    } while (self->again && !self->closing && handled < BURST);
    self->in_process = 0;
    if (self->closing) return; /* on_close frees it once the loop has closed both handles */
    if (handled >= BURST) kick(self); /* more may be waiting: come back after other handles ran */
}

void gm_sock_destroy(gm_sock_t **self_p, int linger_ms) {
    assert(self_p);
    gm_sock_t *self = *self_p;
    if (!self) return;
    *self_p = NULL;
    self->closing = 1;
    zmq_setsockopt(self->zsock, ZMQ_LINGER, &linger_ms, sizeof linger_ms);
    zmq_close(self->zsock);
    self->zsock = NULL;
    uv_poll_stop(&self->poll);
    uv_idle_stop(&self->idle);
    uv_close((uv_handle_t *)&self->poll, on_close);
    uv_close((uv_handle_t *)&self->idle, on_close);
}

/* Splits "tcp://host:port" into its host part (start and length). Returns 0, or -1 if not tcp. */
static int tcp_host(const char *ep, const char **host, size_t *len) {
    if (strncmp(ep, "tcp://", 6) != 0) return -1;
    const char *h = ep + 6, *colon = strrchr(h, ':');
    if (!colon) return -1;
    *host = h;
    *len = (size_t)(colon - h);
    return 0;
}

void gm_sock_rehost(const char *advertised, const char *control, char *out, size_t cap) {
    const char *ah, *ch;
    size_t al, cl;
    snprintf(out, cap, "%s", advertised);
    if (tcp_host(advertised, &ah, &al) < 0 || tcp_host(control, &ch, &cl) < 0) return;
    int local = (al == 9 && !strncmp(ah, "127.0.0.1", 9)) || (al == 9 && !strncmp(ah, "localhost", 9)) ||
                (al == 7 && !strncmp(ah, "0.0.0.0", 7)) || (al == 1 && *ah == '*');
    if (!local) return;
    snprintf(out, cap, "tcp://%.*s%s", (int)cl, ch, ah + al);
}
