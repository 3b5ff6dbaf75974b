/* hub.c -- gridmill-hub: a PULL socket and PUSH sockets, every message passed from the first to the others.
 *
 * Bound on both sides (--pull, --push), the supervisor puts one beside each group of custom stage copies
 * (common/PROTOCOL.md, "Custom stages"), so that stages only ever connect, and any number of copies share the
 * stream. Connected (--pull-from, --push-to), it joins several readers to several writers ("Several readers and
 * writers"): its PULL socket fair-queues from every endpoint, and each message goes to EVERY --push-to endpoint,
 * as copies sharing the frames' bytes. A message waits in the hub only while a PUSH socket cannot take its
 * copy: then the hub stops reading, and ZeroMQ's high-water marks carry the backpressure upstream. */
#include <assert.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>
#include <zmq.h>

#include "gm_cli.h"
#include "gm_log.h"
#include "gm_sock.h"

#define HUB_MAX_PEERS 64 /* most --pull-from or --push-to endpoints */

typedef struct {
    gm_cli_common_t common;
    const char *pull_ep;                  /* --pull EP: bound, where messages come in */
    const char *push_ep;                  /* --push EP: bound, where they go on */
    const char *pull_from[HUB_MAX_PEERS]; /* --pull-from EP: the PULL socket connects to each, fair-queued */
    unsigned npull_from;
    const char *push_to[HUB_MAX_PEERS];   /* --push-to EP: one PUSH socket connected to each, every message to all */
    unsigned npush_to;
} hub_options_t;

typedef struct hub hub_t;

/* One PUSH socket and its copy of the current message, while the socket cannot take it. */
typedef struct {
    hub_t *hub;
    gm_sock_t *sock;
    gm_msg_t *held;
} hub_out_t;

struct hub {
    hub_options_t opt;
    uv_loop_t *loop;
    void *zctx;
    gm_sock_t *in;
    hub_out_t out[HUB_MAX_PEERS]; /* one bound (--push), or one per --push-to */
    unsigned nout;
    unsigned nheld;               /* copies of the current message not sent yet */
    uv_signal_t sigint, sigterm;
    unsigned long long passed;
    int exit_code;
};

static const char usage[] =
    "Usage: gridmill-hub [options] (--pull EP | --pull-from EP...) (--push EP | --push-to EP...)\n"
    "Passes every message from a PULL socket to PUSH sockets, unchanged. Bound (--pull, --push), it lets custom\n"
    "stages (any number of copies) connect on either side. Connected, it gathers the messages of several\n"
    "senders (--pull-from) or gives each message to every one of several receivers (--push-to: several writers).\n"
    "Started by the supervisor.\n"
    "\n"
    "  --pull EP             endpoint to bind for incoming messages (tcp://127.0.0.1:5560)\n"
    "  --pull-from EP        connect to EP for incoming messages, taken in turn from all; repeatable\n"
    "  --push EP             endpoint to bind for outgoing messages (tcp://127.0.0.1:5561)\n"
    "  --push-to EP          connect to EP and send it EVERY message; repeatable: reading waits while any\n"
    "                        of them cannot take its copy\n"
    "  -q, --quiet           errors only\n"
    "  --verbose             debug messages\n"
    "  --log-file FILE       also append log lines to FILE\n"
    "  --curve KEYFILE       secure every socket with ZeroMQ CURVE (key file from 'gridmill keygen')\n"
    "  --help, --version\n";

/* Appends 'v' to the endpoint list 'eps' of option 'a'. Returns 0, or -1 with 'err'. */
static int add_ep(const char **eps, unsigned *n, const char *a, const char *v, char *err) {
    if (*n == HUB_MAX_PEERS) return gm_err(err, "option %s: more than %d endpoints", a, HUB_MAX_PEERS);
    eps[(*n)++] = v;
    return 0;
}

static int parse_options(int argc, char **argv, hub_options_t *o, char *err) {
    memset(o, 0, sizeof *o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int rc = gm_cli_builtin(argc, argv, &i, &o->common, "gridmill-hub", usage, err);
        if (rc < 0) return -1;
        if (rc == 2) return 1; /* --help or --version served */
        if (rc > 0) continue;
        if (a[0] != '-') return gm_err(err, "unexpected argument \"%s\" (see --help)", a);
        if (!(v = gm_cli_value(argc, argv, &i, err))) return -1;
        if (!strcmp(a, "--pull")) o->pull_ep = v;
        else if (!strcmp(a, "--push")) o->push_ep = v;
        else if (!strcmp(a, "--pull-from")) {
            if (add_ep(o->pull_from, &o->npull_from, a, v, err) < 0) return -1;
        } else if (!strcmp(a, "--push-to")) {
            if (add_ep(o->push_to, &o->npush_to, a, v, err) < 0) return -1;
        } else return gm_err(err, "unknown option %s (see --help)", a);
    }
    if (!o->pull_ep == !o->npull_from) return gm_err(err, "give either --pull or --pull-from (see --help)");
    if (!o->push_ep == !o->npush_to) return gm_err(err, "give either --push or --push-to (see --help)");
    return 0;
}

static void finish(hub_t *h, int code) {
    h->exit_code = code;
    gm_sock_destroy(&h->in, 0);
    for (unsigned k = 0; k < h->nout; k++) gm_sock_destroy(&h->out[k].sock, 0);
    if (!uv_is_closing((uv_handle_t *)&h->sigint)) {
        uv_close((uv_handle_t *)&h->sigint, NULL);
        uv_close((uv_handle_t *)&h->sigterm, NULL);
    }
}

/* Sends the copy held for one PUSH socket if it takes it; reading resumes only once every copy is sent. */
static void flush(hub_out_t *o) {
    char err[GM_ERR_LEN];
    hub_t *h = o->hub;
    int rc = gm_sock_send(o->sock, &o->held, err);
    if (rc < 0) {
        gm_log(GM_LOG_ERROR, "%s", err);
        finish(h, 1);
        return;
    }
    gm_sock_want_writable(o->sock, rc == 1);
    if (rc == 0 && --h->nheld == 0) h->passed++;
    gm_sock_pause_recv(h->in, h->nheld > 0);
}

/* Gives a message to every PUSH socket: each gets a copy sharing the frames' bytes (the last the message). */
static void on_in(gm_sock_t *sock, gm_msg_t *msg, void *arg) {
    (void)sock;
    hub_t *h = arg;
    assert(h->nheld == 0);
    for (unsigned k = 0; k < h->nout; k++) {
        h->out[k].held = k + 1 == h->nout ? msg : gm_msg_dup(msg);
        if (!h->out[k].held) {
            gm_log(GM_LOG_ERROR, "out of memory copying a message");
            while (k-- > 0) gm_msg_destroy(&h->out[k].held);
            gm_msg_destroy(&msg);
            finish(h, 1);
            return;
        }
    }
    h->nheld = h->nout;
    for (unsigned k = 0; k < h->nout && h->in; k++) flush(&h->out[k]);
}

static void on_writable(gm_sock_t *sock, void *arg) {
    (void)sock;
    hub_out_t *o = arg;
    if (o->held) flush(o);
}

static void on_signal(uv_signal_t *s, int signum) {
    hub_t *h = s->data;
    gm_log(GM_LOG_DEBUG, "signal %d: stopping after %llu messages", signum, h->passed);
    finish(h, 0);
}

/* Adds a PUSH socket, bound to 'bind_ep' or connected to 'connect_ep'. Returns 0, or -1 with 'err'. */
static int add_out(hub_t *h, const char *bind_ep, const char *connect_ep, char *err) {
    char name[32] = "hub out";
    hub_out_t *o = &h->out[h->nout];
    if (connect_ep && h->opt.npush_to > 1) snprintf(name, sizeof name, "hub out %u", h->nout + 1);
    if (!(o->sock = gm_sock_new(h->loop, h->zctx, ZMQ_PUSH, name, err))) return -1;
    o->hub = h;
    h->nout++;
    /* A hub adds no buffering of its own beyond a few messages: the stages around it keep theirs. */
    if (gm_sock_set_hwm(o->sock, 4, 0) < 0) return gm_err(err, "%s: cannot set high-water marks", name);
    /* bound, it serves workers or stage copies, which read at once: a vanished host's connection is closed */
    if (bind_ep) gm_sock_set_dead_peer_timeout(o->sock, GM_SOCK_DEAD_PEER_MS);
    if (bind_ep ? gm_sock_bind(o->sock, bind_ep, err) : gm_sock_connect(o->sock, connect_ep, err)) return -1;
    return gm_sock_start(o->sock, NULL, on_writable, o, err);
}

static int start(hub_t *h, char *err) {
    if (!(h->in = gm_sock_new(h->loop, h->zctx, ZMQ_PULL, "hub in", err))) return -1;
    if (gm_sock_set_hwm(h->in, 0, 4) < 0) return gm_err(err, "hub: cannot set high-water marks");
    if (h->opt.pull_ep && gm_sock_bind(h->in, h->opt.pull_ep, err) < 0) return -1;
    for (unsigned k = 0; k < h->opt.npull_from; k++)
        if (gm_sock_connect(h->in, h->opt.pull_from[k], err) < 0) return -1;
    if (h->opt.push_ep && add_out(h, h->opt.push_ep, NULL, err) < 0) return -1;
    for (unsigned k = 0; k < h->opt.npush_to; k++)
        if (add_out(h, NULL, h->opt.push_to[k], err) < 0) return -1;
    return gm_sock_start(h->in, on_in, NULL, h, err);
}

int main(int argc, char **argv) {
    char err[GM_ERR_LEN];
    hub_t h;
    memset(&h, 0, sizeof h);
    int rc = parse_options(argc, argv, &h.opt, err);
    if (rc != 0) {
        if (rc < 0) fprintf(stderr, "gridmill-hub: %s\n", err);
        return rc < 0 ? 2 : 0;
    }
    if (gm_cli_setup("gridmill-hub", &h.opt.common, err) < 0) {
        fprintf(stderr, "gridmill-hub: %s\n", err);
        return 1;
    }
    h.loop = uv_default_loop();
    h.zctx = zmq_ctx_new();
    uv_signal_init(h.loop, &h.sigint);
    uv_signal_init(h.loop, &h.sigterm);
    h.sigint.data = h.sigterm.data = &h;
    uv_signal_start(&h.sigint, on_signal, SIGINT);
    uv_signal_start(&h.sigterm, on_signal, SIGTERM);
    if (start(&h, err) < 0) {
        gm_log(GM_LOG_ERROR, "%s", err);
        finish(&h, 1);
    }
    uv_run(h.loop, UV_RUN_DEFAULT);
    uv_loop_close(h.loop);
    for (unsigned k = 0; k < h.nout; k++) gm_msg_destroy(&h.out[k].held);
    zmq_ctx_term(h.zctx);
    return h.exit_code;
}
