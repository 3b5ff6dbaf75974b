/* main.c -- gridmill-worker: fetches the job, applies its model to every task block, pushes results. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gm_log.h"
#include "gm_wire.h"
#include "worker.h"

static const char usage[] =
    "Usage: gridmill-worker [options] --connect ENDPOINT\n"
    "Fetches the job and its model from a gridmill-reader, applies the model to the blocks it is given\n"
    "and pushes the results to the gridmill-writer. Holds no state but the job.\n"
    "\n"
    "  --connect EP          the reader's control endpoint (tcp://127.0.0.1:5555)\n"
    "  --tasks EP            override the task endpoint the job names\n"
    "  --results EP          override the result endpoint the job names\n"
    "  --threads N           XGBoost threads per prediction (1)\n"
    "  --watch-stdin         exit when standard input closes: how a supervisor ends workers it started\n"
    "  --keep-serving        when the run ends, wait for the next one on --connect (default: exit 0)\n"
    "                        over ssh (the remote side sees the connection's end as end of input)\n"
    "  -q, --quiet           errors only\n"
    "  --verbose             debug messages\n"
    "  --log-file FILE       also append log lines to FILE\n"
    "  --stats FILE          keep this stage's busy, blocked and waiting time (and counts) in FILE, as JSON\n"
    "  --curve KEYFILE       secure every connection with ZeroMQ CURVE (key file from 'gridmill keygen')\n"
    "  --config KEY VALUE    set a GDAL configuration option\n"
    "  --help, --version\n";

int worker_options_parse(int argc, char **argv, worker_options_t *o, char *err) {
    memset(o, 0, sizeof *o);
    o->connect_ep = "tcp://127.0.0.1:5555";
    o->threads = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int rc = gm_cli_builtin(argc, argv, &i, &o->common, "gridmill-worker", usage, err);
        if (rc < 0) return -1;
        if (rc == 2) return 1; /* --help or --version served */
        if (rc > 0) continue;
        if (!strcmp(a, "--watch-stdin")) {
            o->watch_stdin = 1;
            continue;
        }
        if (!strcmp(a, "--keep-serving")) {
            o->keep_serving = 1;
            continue;
        }
        if (a[0] != '-') return gm_err(err, "unexpected argument \"%s\" (see --help)", a);
        if (!(v = gm_cli_value(argc, argv, &i, err))) return -1;
        if (!strcmp(a, "--connect")) o->connect_ep = v;
        else if (!strcmp(a, "--tasks")) o->tasks_ep = v;
        else if (!strcmp(a, "--results")) o->results_ep = v;
        else if (!strcmp(a, "--threads")) {
            if (gm_cli_uint(a, v, 1, 1024, &o->threads, err) < 0) return -1;
        } else return gm_err(err, "unknown option %s (see --help)", a);
    }
    return 0;
}

void worker_finish(worker_t *w, int code) {
    if (w->finished) return;
    w->finished = 1;
    w->exit_code = code;
    gm_sock_destroy(&w->control, 0);
    gm_sock_destroy(&w->tasks, 0);
    gm_sock_destroy(&w->results, 0);
    uv_signal_stop(&w->sigint);
    uv_signal_stop(&w->sigterm);
    uv_timer_stop(&w->stats);
    uv_timer_stop(&w->heartbeat);
    uv_close((uv_handle_t *)&w->heartbeat, NULL);
    uv_timer_stop(&w->sampler);
    uv_close((uv_handle_t *)&w->sampler, NULL);
    uv_close((uv_handle_t *)&w->sigint, NULL);
    uv_close((uv_handle_t *)&w->sigterm, NULL);
    uv_close((uv_handle_t *)&w->stats, NULL);
    if (w->lifeline_open) {
        w->lifeline_open = 0;
        uv_close((uv_handle_t *)&w->lifeline, NULL);
    }
}

static void on_lifeline_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    static char scratch[256]; /* what arrives on standard input is read and ignored */
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(scratch, sizeof scratch);
}

/* Standard input closed (--watch-stdin): whoever started us is gone, so this is the end. */
static void on_lifeline(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    (void)buf;
    worker_t *w = s->data;
    if (nread >= 0) return;
    gm_log(GM_LOG_INFO, "standard input closed: stopping after %llu blocks", (unsigned long long)w->done);
    worker_finish(w, 0);
}

/* Watches standard input for its end. Returns 0, or -1 with 'err'. */
static int watch_stdin(worker_t *w, char *err) {
    uv_handle_type type = uv_guess_handle(0);
    if (type != UV_NAMED_PIPE && type != UV_TCP)
        return gm_err(err, "--watch-stdin: standard input is not a pipe or socket (start the worker through ssh)");
    int rc = uv_pipe_init(w->loop, &w->lifeline, 0);
    if (rc == 0) rc = uv_pipe_open(&w->lifeline, 0);
    if (rc == 0) {
        w->lifeline_open = 1;
        w->lifeline.data = w;
        rc = uv_read_start((uv_stream_t *)&w->lifeline, on_lifeline_alloc, on_lifeline);
    }
    if (rc != 0) return gm_err(err, "--watch-stdin: cannot watch standard input: %s", uv_strerror(rc));
    return 0;
}

/* SIGTERM is how the supervisor ends workers when the job is complete: a clean exit. */
static void on_signal(uv_signal_t *h, int signum) {
    worker_t *w = h->data;
    gm_log(GM_LOG_DEBUG, "signal %d: stopping after %llu blocks", signum, (unsigned long long)w->done);
    worker_finish(w, 0);
}

void worker_send_heartbeat(worker_t *w) {
    char err[GM_ERR_LEN];
    w->last_hb_ms = uv_now(w->loop);
    /* with this worker's times and tasks so far: the reader reports workers started by hand in the end table */
    gm_header_t h = {.kind = GM_MSG_HEARTBEAT, .has_stats = 1, .done = w->done, .pid = (uint32_t)getpid(),
                     .busy_ms = w->stats_time.in_state_ns[GM_STATS_BUSY] / 1000000,
                     .blocked_ms = w->stats_time.in_state_ns[GM_STATS_BLOCKED] / 1000000,
                     .wait_ms = w->stats_time.in_state_ns[GM_STATS_WAIT] / 1000000};
    gethostname(h.host, sizeof h.host - 1);
    void *buf;
    size_t len;
    gm_msg_t *msg = gm_msg_new();
    if (msg && gm_wire_encode(&h, &buf, &len, err) == 0 && gm_msg_add_owned(msg, buf, len) == 0 && w->control)
        gm_sock_send(w->control, &msg, err); /* a heartbeat that cannot go now is simply skipped */
    gm_msg_destroy(&msg);
}

static void on_heartbeat(uv_timer_t *t) { worker_send_heartbeat(t->data); }

/* Writes --stats: time spent and counts. */
static void write_stats(worker_t *w) {
    char extra[200], err[GM_ERR_LEN];
    if (!w->opt.common.stats_file) return;
    snprintf(extra, sizeof extra, "\"tasks_done\": %llu, \"dropped\": %llu, \"evaluator\": \"%s\"",
             (unsigned long long)w->done, (unsigned long long)w->dropped,
             w->applier ? gm_applier_walk(w->applier) : "");
    if (gm_stats_write(&w->stats_time, w->opt.common.stats_file, extra, err) < 0) gm_log(GM_LOG_WARN, "%s", err);
}

/* Every 20 ms: computing, holding a result the writer cannot take, or waiting for a task? */
static void on_sample(uv_timer_t *t) {
    worker_t *w = t->data;
    gm_stats_sample(&w->stats_time, w->busy ? GM_STATS_BUSY : w->unsent ? GM_STATS_BLOCKED : GM_STATS_WAIT, uv_hrtime());
    if (++w->samples % 25 == 0) write_stats(w);
}

static void on_stats(uv_timer_t *h) {
    worker_t *w = h->data;
    gm_log(GM_LOG_DEBUG, "%llu blocks done, %llu malformed messages dropped", (unsigned long long)w->done,
           (unsigned long long)w->dropped);
}

int main(int argc, char **argv) {
    char err[GM_ERR_LEN];
    worker_t w;
    memset(&w, 0, sizeof w);
    int rc = worker_options_parse(argc, argv, &w.opt, err);
    if (rc != 0) {
        if (rc < 0) fprintf(stderr, "gridmill-worker: %s\n", err);
        return rc < 0 ? 2 : 0;
    }
    if (gm_cli_setup("gridmill-worker", &w.opt.common, err) < 0) {
        fprintf(stderr, "gridmill-worker: %s\n", err);
        return 1;
    }
    w.delay_ms = gm_cli_debug_delay_ms();
    w.loop = uv_default_loop();
    w.zctx = zmq_ctx_new();
    uv_signal_init(w.loop, &w.sigint);
    uv_signal_init(w.loop, &w.sigterm);
    uv_timer_init(w.loop, &w.stats);
    uv_timer_init(w.loop, &w.heartbeat);
    w.sigint.data = w.sigterm.data = w.stats.data = w.heartbeat.data = &w;
    uv_timer_start(&w.heartbeat, on_heartbeat, 1000, 1000);
    gm_stats_init(&w.stats_time, uv_hrtime());
    uv_timer_init(w.loop, &w.sampler);
    w.sampler.data = &w;
    uv_timer_start(&w.sampler, on_sample, 20, 20);
    uv_signal_start(&w.sigint, on_signal, SIGINT);
    uv_signal_start(&w.sigterm, on_signal, SIGTERM);
    uv_timer_start(&w.stats, on_stats, 10000, 10000);
    if ((w.opt.watch_stdin && watch_stdin(&w, err) < 0) || worker_control_start(&w, err) < 0) {
        fprintf(stderr, "gridmill-worker: %s\n", err);
        worker_finish(&w, 1);
    }
    uv_run(w.loop, UV_RUN_DEFAULT);
    gm_stats_sample(&w.stats_time, GM_STATS_WAIT, uv_hrtime());
    write_stats(&w);
    uv_loop_close(w.loop);
    zmq_ctx_term(w.zctx);
    gm_msg_destroy(&w.held);
    gm_msg_destroy(&w.unsent);
    gm_applier_destroy(&w.applier);
    if (w.job) gm_job_clear(w.job);
    free(w.job);
    return w.exit_code;
}
