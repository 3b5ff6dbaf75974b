/* hub.c -- gridmill-hub: a bound PULL and a bound PUSH socket, every message passed from one to the other.
 *
 * The supervisor puts one beside each group of custom stage copies (common/PROTOCOL.md, "Custom stages"), so
 * that stages only ever connect, and any number of copies share the stream. A message waits in the hub only
 * while no peer of the PUSH side can take it: then the hub stops reading, and ZeroMQ's high-water marks
 * carry the backpressure upstream. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>
#include <zmq.h>

#include "gm_cli.h"
#include "gm_log.h"
#include "gm_sock.h"

typedef struct {
    gm_cli_common_t common;
    const char *pull_ep; /* --pull EP: bound, where messages come in */
    const char *push_ep; /* --push EP: bound, where they go on */
} hub_options_t;

typedef struct {
    hub_options_t opt;
    uv_loop_t *loop;
    void *zctx;
    gm_sock_t *in, *out;
    gm_msg_t *held; /* a message the PUSH side could not take yet */
    uv_signal_t sigint, sigterm;
    unsigned long long passed;
    int exit_code;
} hub_t;

static const char usage[] =
    "Usage: gridmill-hub [options] --pull ENDPOINT --push ENDPOINT\n"
    "Binds a PULL socket and a PUSH socket and passes every message from the first to the second, unchanged,\n"
    "so that custom stages (any number of copies) can connect on either side. Started by the supervisor.\n"
    "\n"
    "  --pull EP             endpoint to bind for incoming messages (tcp://127.0.0.1:5560)\n"
    "  --push EP             endpoint to bind for outgoing messages (tcp://127.0.0.1:5561)\n"
    "  -q, --quiet           errors only\n"
    "  --verbose             debug messages\n"
    "  --log-file FILE       also append log lines to FILE\n"
    "  --curve KEYFILE       secure both sockets with ZeroMQ CURVE (key file from 'gridmill keygen')\n"
    "  --help, --version\n";

static int parse_options(int argc, char **argv, hub_options_t *o, char *err) {
    memset(o, 0, sizeof *o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int rc = gm_cli_common(argc, argv, &i, &o->common, err);
        if (rc < 0) return -1;
        if (rc > 0) continue;
        if (!strcmp(a, "--help")) {
            fputs(usage, stdout);
            return 1;
        }
        if (!strcmp(a, "--version")) {
            gm_cli_print_version("gridmill-hub");
            return 1;
        }
        if (a[0] != '-') return gm_err(err, "unexpected argument \"%s\" (see --help)", a);
        if (!(v = gm_cli_value(argc, argv, &i, err))) return -1;
        if (!strcmp(a, "--pull")) o->pull_ep = v;
        else if (!strcmp(a, "--push")) o->push_ep = v;
        else return gm_err(err, "unknown option %s (see --help)", a);
    }
    if (!o->pull_ep || !o->push_ep) return gm_err(err, "give both --pull and --push (see --help)");
    return 0;
}

static void finish(hub_t *h, int code) {
    h->exit_code = code;
    gm_sock_destroy(&h->in, 0);
    gm_sock_destroy(&h->out, 0);
    if (!uv_is_closing((uv_handle_t *)&h->sigint)) {
        uv_close((uv_handle_t *)&h->sigint, NULL);
        uv_close((uv_handle_t *)&h->sigterm, NULL);
    }
}

/* Sends the held message if the PUSH side takes it; reading resumes only once nothing is held. */
static void flush(hub_t *h) {
    char err[GM_ERR_LEN];
    int rc = gm_sock_send(h->out, &h->held, err);
    if (rc < 0) {
        gm_log(GM_LOG_ERROR, "%s", err);
        finish(h, 1);
        return;
    }
    if (rc == 0) h->passed++;
    gm_sock_want_writable(h->out, rc == 1);
    gm_sock_pause_recv(h->in, rc == 1);
}

static void on_in(gm_sock_t *sock, gm_msg_t *msg, void *arg) {
    (void)sock;
    hub_t *h = arg;
    h->held = msg;
    flush(h);
}

static void on_writable(gm_sock_t *sock, void *arg) {
    (void)sock;
    hub_t *h = arg;
    if (h->held) flush(h);
}

static void on_signal(uv_signal_t *s, int signum) {
    hub_t *h = s->data;
    gm_log(GM_LOG_DEBUG, "signal %d: stopping after %llu messages", signum, h->passed);
    finish(h, 0);
}

static int start(hub_t *h, char *err) {
    if (!(h->in = gm_sock_new(h->loop, h->zctx, ZMQ_PULL, "hub in", err))) return -1;
    if (!(h->out = gm_sock_new(h->loop, h->zctx, ZMQ_PUSH, "hub out", err))) return -1;
    /* A hub adds no buffering of its own beyond a few messages: the stages around it keep theirs. */
    if (gm_sock_set_hwm(h->in, 0, 4) < 0 || gm_sock_set_hwm(h->out, 4, 0) < 0)
        return gm_err(err, "hub: cannot set high-water marks");
    if (gm_sock_bind(h->in, h->opt.pull_ep, err) < 0 || gm_sock_bind(h->out, h->opt.push_ep, err) < 0) return -1;
    if (gm_sock_start(h->in, on_in, NULL, h, err) < 0) return -1;
    return gm_sock_start(h->out, NULL, on_writable, h, err);
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
    gm_msg_destroy(&h.held);
    zmq_ctx_term(h.zctx);
    return h.exit_code;
}
