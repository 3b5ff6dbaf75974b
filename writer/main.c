/* main.c -- gridmill-writer: fetches the job, creates the outputs and writes every result into them. */
#include <cpl_string.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gm_log.h"
#include "gm_wire.h"
#include "writer.h"

static const char usage[] =
    "Usage: gridmill-writer [options] --out DIR\n"
    "Fetches the job from a gridmill-reader, pulls results from workers and writes the output rasters;\n"
    "the only process that opens them. Outputs keep a .part name until every block is written.\n"
    "\n"
    "  --out DIR             output folder (created if missing)\n"
    "  --connect EP          the reader's control endpoint (tcp://127.0.0.1:5555)\n"
    "  --bind EP             result endpoint to bind, PULL from workers (tcp://127.0.0.1:5558)\n"
    "  --shard J/W           write only the outputs i (in the job's order) with i mod W == J, 0 <= J < W <= 8;\n"
    "                        every writer takes every result and acks every block (default 0/1: all outputs)\n"
    "  --acks EP             send acks to EP instead of the job's acks endpoint; repeatable (one per reader)\n"
    "  -of FORMAT            GDAL driver of the outputs (GTiff; COG: tiled GTiff copied to a COG when complete)\n"
    "  -co KEY=VALUE         creation option, repeatable (GTiff default: TILED=YES, tile size of the job)\n"
    "  -q, --quiet           errors only\n"
    "  --verbose             debug messages\n"
    "  --log-file FILE       also append log lines to FILE\n"
    "  --stats FILE          keep this stage's busy, blocked and waiting time (and counts) in FILE, as JSON\n"
    "  --curve KEYFILE       secure every connection with ZeroMQ CURVE (key file from 'gridmill keygen')\n"
    "  --config KEY VALUE    set a GDAL configuration option\n"
    "  --help, --version\n";

/* Parses --shard J/W into 'o'. Returns 0, or -1 with 'err'. */
static int parse_shard(const char *v, writer_options_t *o, char *err) {
    char *end;
    unsigned long j = strtoul(v, &end, 10), w = 0;
    if (isdigit((unsigned char)v[0]) && *end == '/' && isdigit((unsigned char)end[1])) w = strtoul(end + 1, &end, 10);
    if (w < 1 || *end || w > GM_WIRE_MAX_WRITERS || j >= w)
        return gm_err(err, "option --shard: \"%s\" is not J/W with 0 <= J < W <= %d", v, GM_WIRE_MAX_WRITERS);
    o->shard = (uint32_t)j;
    o->shards = (uint32_t)w;
    return 0;
}

int writer_options_parse(int argc, char **argv, writer_options_t *o, char *err) {
    memset(o, 0, sizeof *o);
    o->shards = 1;
    o->connect_ep = "tcp://127.0.0.1:5555";
    o->bind_ep = "tcp://127.0.0.1:5558";
    o->format = "GTiff";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int rc = gm_cli_builtin(argc, argv, &i, &o->common, "gridmill-writer", usage, err);
        if (rc < 0) return -1;
        if (rc == 2) return 1; /* --help or --version served */
        if (rc > 0) continue;
        if (a[0] != '-') return gm_err(err, "unexpected argument \"%s\" (see --help)", a);
        if (!(v = gm_cli_value(argc, argv, &i, err))) return -1;
        if (!strcmp(a, "--connect")) o->connect_ep = v;
        else if (!strcmp(a, "--bind")) o->bind_ep = v;
        else if (!strcmp(a, "--out")) o->out_dir = v;
        else if (!strcmp(a, "--shard")) {
            if (parse_shard(v, o, err) < 0) return -1;
        } else if (!strcmp(a, "--acks")) {
            if (o->nack_eps == WRITER_MAX_ACK_EPS)
                return gm_err(err, "option --acks: more than %d endpoints", WRITER_MAX_ACK_EPS);
            o->ack_eps[o->nack_eps++] = v;
        } else if (!strcmp(a, "-of")) o->format = v;
        else if (!strcmp(a, "-co")) {
            if (!strchr(v, '=')) return gm_err(err, "option -co: \"%s\" is not KEY=VALUE", v);
            o->create_options = CSLAddString(o->create_options, v);
        } else return gm_err(err, "unknown option %s (see --help)", a);
    }
    if (!o->out_dir) return gm_err(err, "no output folder given (--out DIR)");
    return 0;
}

void writer_finish(writer_t *wr, int code) {
    if (wr->finished) return;
    wr->finished = 1;
    wr->exit_code = code;
    gm_sock_destroy(&wr->control, 0);
    gm_sock_destroy(&wr->results, 0);
    writer_acks_close(wr, code == 0 ? 1000 : 0); /* let the last acks and "done" reach the readers */
    uv_signal_stop(&wr->sigint);
    uv_signal_stop(&wr->sigterm);
    uv_timer_stop(&wr->stats);
    uv_timer_stop(&wr->retry);
    uv_close((uv_handle_t *)&wr->retry, NULL);
    uv_timer_stop(&wr->sampler);
    uv_close((uv_handle_t *)&wr->sampler, NULL);
    uv_close((uv_handle_t *)&wr->sigint, NULL);
    uv_close((uv_handle_t *)&wr->sigterm, NULL);
    uv_close((uv_handle_t *)&wr->stats, NULL);
}

static void on_signal(uv_signal_t *h, int signum) {
    writer_t *wr = h->data;
    gm_log(GM_LOG_ERROR, "interrupted by signal %d with %u of %u tiles written; stopping", signum, wr->next_tile,
           wr->ntiles);
    writer_finish(wr, 128 + signum);
}

/* Writes --stats: time spent and counts. */
static void write_stats(writer_t *wr) {
    char extra[200], err[GM_ERR_LEN];
    if (!wr->opt.common.stats_file) return;
    snprintf(extra, sizeof extra, "\"blocks_received\": %llu, \"tiles_written\": %u, \"tiles_total\": %u, "
             "\"duplicates\": %llu, \"dropped\": %llu", (unsigned long long)wr->received, wr->next_tile, wr->ntiles,
             (unsigned long long)wr->duplicates, (unsigned long long)wr->dropped);
    if (gm_stats_write(&wr->stats_time, wr->opt.common.stats_file, extra, err) < 0) gm_log(GM_LOG_WARN, "%s", err);
}

/* Every 20 ms: writing with GDAL, holding acks the reader cannot take, or waiting for results? */
static void on_sample(uv_timer_t *t) {
    writer_t *wr = t->data;
    gm_stats_state_t state = wr->writing ? GM_STATS_BUSY : writer_acks_blocked(wr) ? GM_STATS_BLOCKED : GM_STATS_WAIT;
    gm_stats_sample(&wr->stats_time, state, uv_hrtime());
    if (++wr->samples % 25 == 0) write_stats(wr);
}

static void on_stats(uv_timer_t *h) {
    writer_t *wr = h->data;
    gm_log(GM_LOG_INFO, "blocks: %llu of %u received; tiles: %u of %u written", (unsigned long long)wr->received,
           wr->nblocks, wr->next_tile, wr->ntiles);
}

void writer_request_job(writer_t *wr) {
    char err[GM_ERR_LEN];
    gm_msg_t *hello = gm_job_hello_msg("writer");
    if (!hello || gm_sock_send(wr->control, &hello, err) < 0) {
        gm_log(GM_LOG_ERROR, "control: cannot send a hello");
        gm_msg_destroy(&hello);
        writer_finish(wr, 1);
        return;
    }
    gm_msg_destroy(&hello);
    wr->job_requested = 1;
}

/* Takes one message from the results socket: a block result or a trained model of the current job. */
static void take_result(writer_t *wr, gm_msg_t *msg) {
    char err[GM_ERR_LEN];
    gm_header_t h;
    if (msg->nframes < 1 || gm_wire_decode(gm_msg_data(msg, 0), gm_msg_size(msg, 0), &h, err) < 0) {
        gm_log(GM_LOG_WARN, "results: dropped a malformed message: %s", msg->nframes ? err : "no frames");
        wr->dropped++;
    } else if (h.kind != GM_MSG_RESULT && h.kind != GM_MSG_MODEL) {
        gm_log(GM_LOG_WARN, "results: dropped a \"%s\" message", gm_msg_kind_name(h.kind));
        wr->dropped++;
    } else if (!wr->have_job || h.job != wr->job.id) {
        /* a job we do not hold yet: keep the message, stop reading, ask the reader */
        wr->held = msg;
        gm_sock_pause_recv(wr->results, 1);
        if (!wr->job_requested) writer_request_job(wr);
        return;
    } else if (h.kind == GM_MSG_MODEL) {
        writer_models_take(wr, msg, &h);
    } else {
        writer_tiles_take(wr, msg, &h);
    }
    gm_msg_destroy(&msg);
}

static void on_result(gm_sock_t *sock, gm_msg_t *msg, void *arg) {
    (void)sock;
    take_result(arg, msg);
}

/* How soon the writer asks again for the job once every model is saved: the reader switches to applying
 * them within milliseconds, and a hello costs next to nothing. */
#define RETRY_MS 10

static void on_retry(uv_timer_t *t);

/* Makes 'job' the current job: outputs and tiles for an apply job, a model table for a training job. */
static int install_job(writer_t *wr, gm_job_t *job, char *err) {
    if (wr->have_job && wr->job.mode != GM_MODE_TRAIN)
        return gm_err(err, "the reader switched jobs before job %016llx was complete", (unsigned long long)wr->job.id);
    writer_tiles_clear(wr);
    free(wr->model_saved);
    wr->model_saved = NULL;
    gm_job_clear(&wr->job);
    wr->job = *job;
    wr->have_job = 1;
    if (writer_acks_connect(wr, err) < 0) return -1;
    if (wr->job.mode == GM_MODE_TRAIN) {
        wr->models_saved = 0;
        wr->model_saved = calloc(wr->job.iterations ? wr->job.iterations : 1, 1);
        if (!wr->model_saved) return gm_err(err, "out of memory");
        /* models an earlier run saved count as saved: the reader takes them without training them again */
        for (uint32_t i = 0; i < wr->job.iterations; i++) {
            char path[4200];
            snprintf(path, sizeof path, "%s/models/iter-%0*u.json", wr->opt.out_dir,
                     gm_job_iteration_width(wr->job.iterations), i + 1);
            if (access(path, F_OK) == 0) {
                wr->model_saved[i] = 1;
                wr->models_saved++;
            }
        }
        if (wr->opt.shard == 0)
            gm_log(GM_LOG_INFO, "job %016llx: saving %u models into %s/models (%u there already)",
                   (unsigned long long)wr->job.id, wr->job.iterations, wr->opt.out_dir, wr->models_saved);
        else
            gm_log(GM_LOG_INFO, "job %016llx: waiting for %u models (%u there already); writer 0 saves them",
                   (unsigned long long)wr->job.id, wr->job.iterations, wr->models_saved);
        if (wr->models_saved == wr->job.iterations) uv_timer_start(&wr->retry, on_retry, RETRY_MS, 0);
        return 0;
    }
    uint32_t resumed = 0;
    if (writer_tiles_start(wr, err) < 0 || writer_ledger_resume(wr, &resumed, err) < 0) return -1;
    if (resumed) {
        gm_log(GM_LOG_INFO, "resuming: %u of %u output tiles were written by an earlier run", resumed, wr->ntiles);
        writer_tiles_resume_to(wr, resumed);
    }
    /* an empty ack says "ready": the reader sends no block before it, so none already written is computed */
    gm_header_t ready = {.kind = GM_MSG_ACK, .job = wr->job.id, .count = 0};
    writer_send_ack(wr, &ready, NULL, 0);
    if (wr->opt.shards == 1)
        gm_log(GM_LOG_INFO, "job %016llx: writing %u output%s of %ux%u into %s", (unsigned long long)wr->job.id,
               wr->job.noutputs, wr->job.noutputs > 1 ? "s" : "", wr->job.xsize, wr->job.ysize, wr->opt.out_dir);
    else
        gm_log(GM_LOG_INFO, "job %016llx: shard %u/%u writing %u of %u outputs of %ux%u into %s",
               (unsigned long long)wr->job.id, wr->opt.shard, wr->opt.shards, wr->outs.n, wr->job.noutputs,
               wr->job.xsize, wr->job.ysize, wr->opt.out_dir);
    return 0;
}

static void on_retry(uv_timer_t *t) {
    writer_t *wr = t->data;
    if (!wr->finished && !wr->job_requested) writer_request_job(wr);
}

static void on_control(gm_sock_t *sock, gm_msg_t *msg, void *arg) {
    (void)sock;
    writer_t *wr = arg;
    char err[GM_ERR_LEN];
    uint32_t version;
    gm_msg_kind_t kind;
    gm_job_t job;
    if (!wr->job_requested) {
        gm_log(GM_LOG_WARN, "control: dropped an unexpected reply");
    } else if (msg->nframes < 1 || gm_wire_peek(gm_msg_data(msg, 0), gm_msg_size(msg, 0), &version, &kind, err) < 0) {
        gm_log(GM_LOG_ERROR, "control: the reader sent a malformed reply: %s", msg->nframes ? err : "no frames");
        writer_finish(wr, 1);
    } else if (kind != GM_MSG_JOB) {
        gm_header_t h;
        if (kind == GM_MSG_ERROR && gm_wire_decode(gm_msg_data(msg, 0), gm_msg_size(msg, 0), &h, err) == 0)
            snprintf(err, sizeof err, "%s", h.text);
        else snprintf(err, sizeof err, "a \"%s\" reply", gm_msg_kind_name(kind));
        gm_log(GM_LOG_ERROR, "control: the reader refused: %s", err);
        writer_finish(wr, 1);
    } else if (gm_job_from_msg(msg, &job, err) < 0) {
        gm_log(GM_LOG_ERROR, "control: cannot use the job: %s", err);
        writer_finish(wr, 1);
    } else if (wr->have_job && job.id == wr->job.id && wr->job.mode == GM_MODE_TRAIN &&
               wr->models_saved == wr->job.iterations) {
        /* every model is saved but the reader has not switched to applying them yet: ask again shortly */
        gm_job_clear(&job);
        wr->job_requested = 0;
        uv_timer_start(&wr->retry, on_retry, RETRY_MS, 0);
    } else if (wr->have_job && job.id == wr->job.id) {
        gm_job_clear(&job); /* the same job again: a held message is stale */
        wr->job_requested = 0;
        if (wr->held) {
            gm_log(GM_LOG_WARN, "results: dropped a message of a job the reader no longer serves");
            wr->dropped++;
            gm_msg_destroy(&wr->held);
        }
        gm_sock_pause_recv(wr->results, 0);
    } else if (install_job(wr, &job, err) < 0) {
        gm_log(GM_LOG_ERROR, "%s", err);
        writer_finish(wr, 1);
    } else {
        wr->job_requested = 0;
        gm_sock_pause_recv(wr->results, 0);
        if (wr->held) {
            gm_msg_t *held = wr->held;
            wr->held = NULL;
            take_result(wr, held);
        }
    }
    gm_msg_destroy(&msg);
}

/* Binds the result socket (read once the job is known) and asks the reader for the job. */
static int start(writer_t *wr, char *err) {
    wr->results = gm_sock_new(wr->loop, wr->zctx, ZMQ_PULL, "results", err);
    wr->control = gm_sock_new(wr->loop, wr->zctx, ZMQ_DEALER, "control", err);
    if (!wr->results || !wr->control) return -1;
    gm_sock_set_hwm(wr->results, 0, 8);
    gm_sock_set_maxmsgsize(wr->results, (int64_t)1 << 31);
    if (gm_sock_bind(wr->results, wr->opt.bind_ep, err) < 0) return -1;
    if (gm_sock_connect(wr->control, wr->opt.connect_ep, err) < 0) return -1;
    if (gm_sock_start(wr->control, on_control, NULL, wr, err) < 0) return -1;
    gm_sock_pause_recv(wr->results, 1); /* results wait until the job is known */
    if (gm_sock_start(wr->results, on_result, NULL, wr, err) < 0) return -1;
    writer_request_job(wr);
    return 0;
}

int main(int argc, char **argv) {
    char err[GM_ERR_LEN];
    writer_t wr;
    memset(&wr, 0, sizeof wr);
    int rc = writer_options_parse(argc, argv, &wr.opt, err);
    if (rc != 0) {
        if (rc < 0) fprintf(stderr, "gridmill-writer: %s\n", err);
        CSLDestroy(wr.opt.create_options);
        return rc < 0 ? 2 : 0;
    }
    if (gm_cli_setup("gridmill-writer", &wr.opt.common, err) < 0) {
        fprintf(stderr, "gridmill-writer: %s\n", err);
        CSLDestroy(wr.opt.create_options);
        return 1;
    }
    wr.delay_ms = gm_cli_debug_delay_ms();
    wr.loop = uv_default_loop();
    wr.zctx = zmq_ctx_new();
    uv_signal_init(wr.loop, &wr.sigint);
    uv_signal_init(wr.loop, &wr.sigterm);
    uv_timer_init(wr.loop, &wr.stats);
    uv_timer_init(wr.loop, &wr.retry);
    wr.sigint.data = wr.sigterm.data = wr.stats.data = wr.retry.data = &wr;
    gm_stats_init(&wr.stats_time, uv_hrtime());
    uv_timer_init(wr.loop, &wr.sampler);
    wr.sampler.data = &wr;
    uv_timer_start(&wr.sampler, on_sample, 20, 20);
    uv_signal_start(&wr.sigint, on_signal, SIGINT);
    uv_signal_start(&wr.sigterm, on_signal, SIGTERM);
    uv_timer_start(&wr.stats, on_stats, 10000, 10000);
    if (start(&wr, err) < 0) {
        fprintf(stderr, "gridmill-writer: %s\n", err);
        writer_finish(&wr, 1);
    }
    uv_run(wr.loop, UV_RUN_DEFAULT);
    gm_stats_sample(&wr.stats_time, GM_STATS_WAIT, uv_hrtime());
    write_stats(&wr);
    uv_loop_close(wr.loop);
    zmq_ctx_term(wr.zctx);
    if (wr.exit_code != 0) writer_ledger_keep(&wr); /* partial outputs keep their .part names, for a re-run */
    writer_tiles_clear(&wr);
    gm_msg_destroy(&wr.held);
    free(wr.model_saved);
    gm_job_clear(&wr.job);
    CSLDestroy(wr.opt.create_options);
    return wr.exit_code;
}
