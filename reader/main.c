/* main.c -- gridmill-reader: serves the job, reads covariate blocks and pushes them to workers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gm_log.h"
#include "reader.h"

static const char usage[] =
    "Usage: gridmill-reader [options] --model MODEL COVARIATE [COVARIATE...]\n"
    "Reads covariate rasters block by block and pushes them to gridmill-worker processes.\n"
    "\n"
    "  --model FILE          XGBoost model (.json, .ubj or legacy binary) applied by the workers\n"
    "  --covariates F...     covariate rasters (any GDAL raster; all bands are features, in order)\n"
    "  --control EP          control endpoint to bind: serves the job (tcp://127.0.0.1:5555)\n"
    "  --tasks EP            task endpoint to bind, PUSH to workers (tcp://127.0.0.1:5556)\n"
    "  --acks EP             ack endpoint to bind, PULL from the writer (tcp://127.0.0.1:5557)\n"
    "  --results EP          the writer's result endpoint, told to workers (tcp://127.0.0.1:5558)\n"
    "  -bs, --block-size N   processing block side in pixels (default: the data's tile, else 256)\n"
    "  --tile-size N         output tile side, a multiple of 16 (256)\n"
    "  --probabilities       classification: also write one probability band per class\n"
    "  --max-inflight N      most blocks read but not yet written (default: two output strips)\n"
    "  --io-threads N        concurrent GDAL reads (2)\n"
    "  -q, --quiet           errors only\n"
    "  --verbose             debug messages\n"
    "  --log-file FILE       also append log lines to FILE\n"
    "  --config KEY VALUE    set a GDAL configuration option\n"
    "  --help, --version\n";

int reader_options_parse(int argc, char **argv, reader_options_t *o, char *err) {
    memset(o, 0, sizeof *o);
    o->control_ep = "tcp://127.0.0.1:5555";
    o->tasks_ep = "tcp://127.0.0.1:5556";
    o->acks_ep = "tcp://127.0.0.1:5557";
    o->results_ep = "tcp://127.0.0.1:5558";
    o->tile = 256;
    o->io_threads = 2;
    o->covariates = calloc((size_t)argc, sizeof *o->covariates);
    if (!o->covariates) return gm_err(err, "out of memory");
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
            gm_cli_print_version("gridmill-reader");
            return 1;
        }
        if (a[0] != '-' || !strcmp(a, "-")) {
            o->covariates[o->ncovariates++] = a;
            continue;
        }
        if (!strcmp(a, "--covariates")) continue; /* the rasters follow as positional arguments */
        if (!strcmp(a, "--probabilities")) {
            o->probabilities = 1;
            continue;
        }
        if (!(v = gm_cli_value(argc, argv, &i, err))) return -1;
        if (!strcmp(a, "--model")) o->model_path = v;
        else if (!strcmp(a, "--control")) o->control_ep = v;
        else if (!strcmp(a, "--tasks")) o->tasks_ep = v;
        else if (!strcmp(a, "--acks")) o->acks_ep = v;
        else if (!strcmp(a, "--results")) o->results_ep = v;
        else if (!strcmp(a, "-bs") || !strcmp(a, "--block-size")) {
            if (gm_cli_uint(a, v, 16, GM_WIRE_MAX_BLOCK, &o->block_size, err) < 0) return -1;
        } else if (!strcmp(a, "--tile-size")) {
            if (gm_cli_uint(a, v, 16, GM_WIRE_MAX_BLOCK, &o->tile, err) < 0) return -1;
            if (o->tile % 16) return gm_err(err, "option --tile-size: %u is not a multiple of 16", o->tile);
        } else if (!strcmp(a, "--max-inflight")) {
            if (gm_cli_uint(a, v, 1, 1000000, &o->max_inflight, err) < 0) return -1;
        } else if (!strcmp(a, "--io-threads")) {
            if (gm_cli_uint(a, v, 1, 64, &o->io_threads, err) < 0) return -1;
        } else {
            return gm_err(err, "unknown option %s (see --help)", a);
        }
    }
    if (!o->model_path) return gm_err(err, "no model given (--model FILE)");
    if (o->ncovariates == 0) return gm_err(err, "no covariate rasters given");
    return 0;
}

/* Closes what is still open so uv_run can return; safe to call more than once. */
void reader_finish(reader_t *r, int code) {
    if (r->finished) return;
    r->finished = 1;
    r->exit_code = code;
    gm_sock_destroy(&r->control, 0);
    gm_sock_destroy(&r->tasks, 0);
    gm_sock_destroy(&r->acks, 0);
    uv_signal_stop(&r->sigint);
    uv_signal_stop(&r->sigterm);
    uv_timer_stop(&r->stats);
    uv_close((uv_handle_t *)&r->sigint, NULL);
    uv_close((uv_handle_t *)&r->sigterm, NULL);
    uv_close((uv_handle_t *)&r->stats, NULL);
}

static void on_signal(uv_signal_t *h, int signum) {
    reader_t *r = h->data;
    gm_log(GM_LOG_ERROR, "interrupted by signal %d with %u of %u blocks written; stopping", signum, r->nacked, r->nblocks);
    reader_finish(r, 128 + signum);
}

static void on_stats(uv_timer_t *h) {
    reader_t *r = h->data;
    gm_log(GM_LOG_INFO, "blocks: %u read and sent, %u written, of %u; %u in flight", r->nsent, r->nacked, r->nblocks,
           r->inflight);
}

int main(int argc, char **argv) {
    char err[GM_ERR_LEN];
    reader_t r;
    memset(&r, 0, sizeof r);
    int rc = reader_options_parse(argc, argv, &r.opt, err);
    if (rc != 0) {
        if (rc < 0) fprintf(stderr, "gridmill-reader: %s\n", err);
        free(r.opt.covariates);
        return rc < 0 ? 2 : 0;
    }
    if (gm_cli_setup("gridmill-reader", &r.opt.common, err) < 0 || reader_job_build(&r, err) < 0) {
        fprintf(stderr, "gridmill-reader: %s\n", err);
        gm_job_clear(&r.job);
        free(r.opt.covariates);
        return 1;
    }
    r.delay_ms = gm_cli_debug_delay_ms();
    r.loop = uv_default_loop();
    r.zctx = zmq_ctx_new();
    uv_signal_init(r.loop, &r.sigint);
    uv_signal_init(r.loop, &r.sigterm);
    uv_timer_init(r.loop, &r.stats);
    r.sigint.data = r.sigterm.data = r.stats.data = &r;
    uv_signal_start(&r.sigint, on_signal, SIGINT);
    uv_signal_start(&r.sigterm, on_signal, SIGTERM);
    uv_timer_start(&r.stats, on_stats, 10000, 10000);
    if (reader_control_start(&r, err) < 0 || reader_feed_start(&r, err) < 0) {
        fprintf(stderr, "gridmill-reader: %s\n", err);
        reader_finish(&r, 1);
    } else {
        gm_log(GM_LOG_INFO, "job %016llx: %u blocks of %ux%u over %ux%u pixels, %u bands; serving on %s",
               (unsigned long long)r.job.id, r.nblocks, r.job.block_w, r.job.block_h, r.job.xsize, r.job.ysize,
               r.job.nbands, r.opt.control_ep);
    }
    uv_run(r.loop, UV_RUN_DEFAULT);
    uv_loop_close(r.loop);
    zmq_ctx_term(r.zctx);
    for (uint32_t i = 0; r.stacks && i < r.opt.io_threads; i++) gm_stack_destroy(&r.stacks[i]);
    free(r.stacks);
    free(r.free_stacks);
    free(r.state);
    free(r.job_header);
    while (r.ready_head) {
        ready_t *n = r.ready_head->next;
        gm_msg_destroy(&r.ready_head->msg);
        free(r.ready_head);
        r.ready_head = n;
    }
    if (r.exit_code == 0)
        gm_log(GM_LOG_INFO, "done: %u blocks read once each and written; %llu malformed messages dropped", r.nblocks,
               (unsigned long long)r.dropped);
    gm_job_clear(&r.job);
    free(r.opt.covariates);
    return r.exit_code;
}
