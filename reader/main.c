/* main.c -- gridmill-reader: serves the job, reads covariate blocks and pushes them to workers. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gm_log.h"
#include "gm_wire.h"
#include "reader.h"

static const char usage[] =
    "Usage: gridmill-reader [options] --model MODEL COVARIATE [COVARIATE...]\n"
    "       gridmill-reader [options] --out DIR --polygons MAP (--class-field F | --target-field F |\n"
    "                       --composition CSV) [run options] COVARIATE [COVARIATE...]\n"
    "       gridmill-reader [options] --out DIR --models DIR [summary options] COVARIATE [COVARIATE...]\n"
    "Reads covariate rasters block by block and pushes them to gridmill-worker processes. With --polygons,\n"
    "first samples the polygons for every iteration, has the workers train one model per iteration, then\n"
    "applies every model in one pass over the blocks and has the workers summarise them.\n"
    "\n"
    "  --model FILE          XGBoost model (.json, .ubj or legacy binary) applied by the workers\n"
    "  --covariates F...     covariate rasters (any GDAL raster; all bands are features, in order)\n"
    "  --control EP          control endpoint to bind: serves the job (tcp://127.0.0.1:5555)\n"
    "  --tasks EP            task endpoint to bind, PUSH to workers (tcp://127.0.0.1:5556)\n"
    "  --advertise-tasks EP  the task endpoint told to workers, when a hub stands between (default: --tasks)\n"
    "  --acks EP             ack endpoint to bind, PULL from the writer (tcp://127.0.0.1:5557)\n"
    "  --results EP          the writer's result endpoint, told to workers (tcp://127.0.0.1:5558)\n"
    "  -bs, --block-size N   processing block side in pixels (default: the data's tile, else 256)\n"
    "  --tile-size N         output tile side, a multiple of 16 (256, or the data's tile when larger)\n"
    "  --probabilities       classification: also write one probability band per class\n"
    "  --align               warp covariates on another grid onto the first one's (nearest neighbour)\n"
    "  --max-inflight N      most blocks read but not yet written (default: 32 or 256 MiB of them, at least twice\n"
    "                        what completing one output tile needs)\n"
    "  --io-threads N        concurrent GDAL reads (2)\n"
    "  --stall-timeout S     re-issue unfinished tasks when nothing progresses for S seconds (60; 0: never)\n"
    "  --shard I/R           one of R readers: read only the block rows r with r mod R == I; shard 0 serves\n"
    "                        the job on --control, samples and trains, the others only read (0/1)\n"
    "  --writers W           W writer shards: a block is written when each of them acked it (1)\n"
    "Run options:\n"
    "  --out DIR             where sample tables (DIR/samples) and the class table go\n"
    "  --polygons MAP[:LAYER] the map units to sample (any OGR vector)\n"
    "  --class-field F       the map unit's class   | --target-field F  a numeric target (regression)\n"
    "  --composition CSV     polygon,class,proportion rows, or rdsmart's poly,mapunit,soil_class,proportion (DSMART;\n"
    "                        shares in percent or proportions)   --id-field F  polygon id field (FID)\n"
    "  --composition-fields CLASS1,SHARE1,...  the composition in the polygons' own fields instead\n"
    "  --iterations N        realisations (100)\n"
    "  --samples-per-polygon N (20) | --sample-density D per km2 [--min-samples M (1)]\n"
    "  --seed S              random seed (1)\n"
    "  --trees T             trees per model (1)   --rf  random forest   --max-depth D (12)   --eta E\n"
    "  --objective OBJ       regression objective (reg:squarederror)   --xgb-param KEY=VALUE (repeatable)\n"
    "  --strata RASTER       integer strata on the covariates' grid, for a composition with a stratum column\n"
    "                        (rdsmart's stratified DSMART): a point's class is drawn within its stratum\n"
    "  --categorical RASTER  (repeatable; each among the covariates) its bands' values are categories (integers\n"
    "                        >= 0): the models split them with XGBoost's categorical splits\n"
    "  --allocation RULE     a composition point's class: weighted (its polygon's shares), dirichlet (shares drawn\n"
    "                        once per polygon from Dirichlet(shares in percent), rdsmart's weighted),\n"
    "                        random-mapunit (uniform among its polygon's classes), random-all (among all)\n"
    "  --summary votes|probabilities  class summaries from the models' votes (votes), or the mean of their class\n"
    "                        probabilities (rdsmart's type = \"prob\")\n"
    "  --observations P[:L]  observed points added to every iteration (any OGR point layer, or a CSV x,y,CLASS;\n"
    "                        their classes join the map's)   --observations-field F (class field, else soil_class\n"
    "                        or class)   --observations-crs CRS (of a CSV: default the rasters')\n"
    "  --models DIR          apply DIR/iter-*.json instead of training\n"
    "  --nprob N             the N most probable classes   --quantiles Q,Q,...  regression quantiles\n"
    "  --realisations        also write each iteration's map\n"
    "  -q, --quiet           errors only\n"
    "  --verbose             debug messages\n"
    "  --log-file FILE       also append log lines to FILE\n"
    "  --stats FILE          keep this stage's busy, blocked and waiting time (and counts) in FILE, as JSON\n"
    "  --curve KEYFILE       secure every connection with ZeroMQ CURVE (key file from 'gridmill keygen')\n"
    "  --config KEY VALUE    set a GDAL configuration option\n"
    "  --help, --version\n";

int reader_options_parse(int argc, char **argv, reader_options_t *o, char *err) {
    memset(o, 0, sizeof *o);
    o->control_ep = "tcp://127.0.0.1:5555";
    o->tasks_ep = "tcp://127.0.0.1:5556";
    o->acks_ep = "tcp://127.0.0.1:5557";
    o->results_ep = "tcp://127.0.0.1:5558";
    o->tile = 0; /* unset: 256, or the data's tile when larger */
    o->io_threads = 2;
    o->iterations = 100;
    o->stall_ms = 60000;
    o->shards = o->writers = 1;
    o->min_samples = 1;
    o->seed = 1;
    o->trees = 1;
    o->max_depth = 12; /* with the minimum leaf below: trees of about C5.0's size (README "The model") */
    o->xgb_params = calloc((size_t)argc, sizeof *o->xgb_params);
    if (!o->xgb_params) return gm_err(err, "out of memory");
    o->covariates = calloc((size_t)argc, sizeof *o->covariates);
    if (!o->covariates) return gm_err(err, "out of memory");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int rc = gm_cli_builtin(argc, argv, &i, &o->common, "gridmill-reader", usage, err);
        if (rc < 0) return -1;
        if (rc == 2) return 1; /* --help or --version served */
        if (rc > 0) continue;
        if (a[0] != '-' || !strcmp(a, "-")) {
            o->covariates[o->ncovariates++] = a;
            continue;
        }
        if (!strcmp(a, "--covariates")) continue; /* the rasters follow as positional arguments */
        if (!strcmp(a, "--probabilities")) {
            o->probabilities = 1;
            continue;
        }
        if (!strcmp(a, "--align")) {
            o->align = 1;
            continue;
        }
        if (!strcmp(a, "--rf")) {
            o->rf = 1;
            continue;
        }
        if (!strcmp(a, "--realisations")) {
            o->realisations = 1;
            continue;
        }
        if (!(v = gm_cli_value(argc, argv, &i, err))) return -1;
        if (!strcmp(a, "--model")) o->model_path = v;
        else if (!strcmp(a, "--control")) o->control_ep = v;
        else if (!strcmp(a, "--tasks")) o->tasks_ep = v;
        else if (!strcmp(a, "--advertise-tasks")) o->advertise_tasks_ep = v;
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
        } else if (!strcmp(a, "--out")) o->out_dir = v;
        else if (!strcmp(a, "--polygons")) o->polygons = v;
        else if (!strcmp(a, "--class-field")) o->class_field = v;
        else if (!strcmp(a, "--target-field")) o->target_field = v;
        else if (!strcmp(a, "--composition")) o->composition = v;
        else if (!strcmp(a, "--composition-fields")) o->composition_fields = v;
        else if (!strcmp(a, "--observations-crs")) o->observations_crs = v;
        else if (!strcmp(a, "--strata")) o->strata = v;
        else if (!strcmp(a, "--categorical")) {
            if (o->ncategorical == 64) return gm_err(err, "option --categorical: more than 64 rasters");
            o->categorical[o->ncategorical++] = v;
        } else if (!strcmp(a, "--allocation")) {
            static const char *names[] = {"weighted", "dirichlet", "random-mapunit", "random-all"};
            o->allocation = -1;
            for (int k = 0; k < 4; k++)
                if (!strcmp(v, names[k])) o->allocation = k;
            if (o->allocation < 0)
                return gm_err(err, "option --allocation: \"%s\" is not weighted, dirichlet, random-mapunit or "
                              "random-all", v);
        } else if (!strcmp(a, "--summary")) {
            if (strcmp(v, "votes") && strcmp(v, "probabilities"))
                return gm_err(err, "option --summary: \"%s\" is not votes or probabilities", v);
            o->summary_probs = !strcmp(v, "probabilities");
        }
        else if (!strcmp(a, "--id-field")) o->id_field = v;
        else if (!strcmp(a, "--observations")) o->observations = v;
        else if (!strcmp(a, "--observations-field")) o->observations_field = v;
        else if (!strcmp(a, "--models")) o->models_dir = v;
        else if (!strcmp(a, "--eta")) o->eta = v;
        else if (!strcmp(a, "--objective")) o->objective = v;
        else if (!strcmp(a, "--quantiles")) o->quantiles = v;
        else if (!strcmp(a, "--xgb-param")) {
            if (!strchr(v, '=')) return gm_err(err, "option --xgb-param: \"%s\" is not KEY=VALUE", v);
            o->xgb_params[o->nxgb_params++] = v;
        } else if (!strcmp(a, "--iterations")) {
            if (gm_cli_uint(a, v, 1, GM_JOB_MAX_MODELS, &o->iterations, err) < 0) return -1;
        } else if (!strcmp(a, "--samples-per-polygon")) {
            if (gm_cli_uint(a, v, 1, 1000000, &o->per_polygon, err) < 0) return -1;
        } else if (!strcmp(a, "--sample-density")) {
            char *end;
            o->density = strtod(v, &end);
            if (*end || !(o->density > 0)) return gm_err(err, "option --sample-density: \"%s\" is not a positive number", v);
        } else if (!strcmp(a, "--min-samples")) {
            if (gm_cli_uint(a, v, 0, 1000000, &o->min_samples, err) < 0) return -1;
        } else if (!strcmp(a, "--seed")) {
            char *end;
            o->seed = strtoull(v, &end, 10);
            if (!*v || *end || *v == '-') return gm_err(err, "option --seed: \"%s\" is not a non-negative integer", v);
        } else if (!strcmp(a, "--trees")) {
            if (gm_cli_uint(a, v, 1, 100000, &o->trees, err) < 0) return -1;
        } else if (!strcmp(a, "--max-depth")) {
            if (gm_cli_uint(a, v, 0, 64, &o->max_depth, err) < 0) return -1;
        } else if (!strcmp(a, "--stall-timeout")) {
            uint32_t secs;
            if (gm_cli_uint(a, v, 0, 86400, &secs, err) < 0) return -1;
            o->stall_ms = secs * 1000;
        } else if (!strcmp(a, "--shard")) {
            char *end;
            unsigned long idx = strtoul(v, &end, 10), n = *end == '/' ? strtoul(end + 1, &end, 10) : 0;
            if (*end || !isdigit((unsigned char)*v) || n < 1 || n > 64 || idx >= n)
                return gm_err(err, "option --shard: \"%s\" is not I/R with 0 <= I < R <= 64", v);
            o->shard = (uint32_t)idx;
            o->shards = (uint32_t)n;
        } else if (!strcmp(a, "--writers")) {
            if (gm_cli_uint(a, v, 1, GM_WIRE_MAX_WRITERS, &o->writers, err) < 0) return -1;
        } else if (!strcmp(a, "--nprob")) {
            if (gm_cli_uint(a, v, 1, 65535, &o->nprob, err) < 0) return -1;
        } else {
            return gm_err(err, "unknown option %s (see --help)", a);
        }
    }
    if (o->ncovariates == 0) return gm_err(err, "no covariate rasters given");
    if (o->polygons || o->models_dir) {
        if (o->model_path) return gm_err(err, "--model applies one model: use it without --polygons or --models");
        if (!o->out_dir) return gm_err(err, "no output folder given (--out DIR)");
        if (o->allocation && !o->composition && !o->composition_fields)
            return gm_err(err, "option --allocation applies to a composition (--composition or --composition-fields)");
        if (o->polygons && !!o->class_field + !!o->target_field + !!o->composition + !!o->composition_fields != 1)
            return gm_err(err, "give exactly one of --class-field, --target-field, --composition and "
                          "--composition-fields");
        if (o->per_polygon && o->density > 0)
            return gm_err(err, "give --samples-per-polygon or --sample-density, not both");
        if (!o->per_polygon && !(o->density > 0)) o->per_polygon = 20;
    } else if (!o->model_path) {
        return gm_err(err, "no model given (--model FILE, or --polygons MAP for the full job)");
    }
    return 0;
}

/* Closes what is still open so uv_run can return; safe to call more than once. */
void reader_finish(reader_t *r, int code) {
    if (r->finished) return;
    r->finished = 1;
    r->exit_code = code;
    if (code == 0 && r->control) reader_say_done(r);
    gm_sock_destroy(&r->control, code == 0 ? 500 : 0); /* the "done"s reach the workers */
    gm_sock_destroy(&r->tasks, 0);
    gm_sock_destroy(&r->acks, 0);
    uv_signal_stop(&r->sigint);
    uv_signal_stop(&r->sigterm);
    uv_signal_stop(&r->siglost);
    uv_timer_stop(&r->stats);
    uv_timer_stop(&r->liveness);
    uv_close((uv_handle_t *)&r->liveness, NULL);
    uv_timer_stop(&r->sampler);
    uv_close((uv_handle_t *)&r->sampler, NULL);
    uv_close((uv_handle_t *)&r->sigint, NULL);
    uv_close((uv_handle_t *)&r->sigterm, NULL);
    uv_close((uv_handle_t *)&r->siglost, NULL);
    uv_close((uv_handle_t *)&r->stats, NULL);
}

static void on_signal(uv_signal_t *h, int signum) {
    reader_t *r = h->data;
    gm_log(GM_LOG_ERROR, "interrupted by signal %d with %u of %u blocks written; stopping", signum, r->nacked, r->nblocks);
    reader_finish(r, 128 + signum);
}

/* SIGUSR1: the supervisor saw a local worker die. Readers other than shard 0 hear no heartbeats, so this is
 * how they learn of it within a moment instead of after --stall-timeout; re-issues what the writer lacks. */
static void on_worker_lost(uv_signal_t *h, int signum) {
    (void)signum;
    reader_t *r = h->data;
    if (r->state && r->writer_ready) reader_feed_reissue(r, "a worker died (told by the supervisor)");
}

/* Writes --stats: time spent, progress and counts. */
static void write_stats(reader_t *r) {
    char err[GM_ERR_LEN];
    uint32_t mdone, mtotal;
    if (!r->opt.common.stats_file) return;
    size_t cap = 640 + (size_t)r->npeers * 192, len;
    char *extra = malloc(cap);
    if (!extra) return;
    reader_run_progress(r, &mdone, &mtotal);
    len = (size_t)snprintf(extra, cap,
             "\"phase\": \"%s\", \"models_done\": %u, \"models_total\": %u, \"blocks_done\": %u, "
             "\"blocks_total\": %u, \"pixels_total\": %llu, \"block_reads\": %llu, \"reissued\": %u, \"dropped\": %llu, "
             "\"done\": %s, \"workers_seen\": %u",
             r->job.mode == GM_MODE_TRAIN ? "training" : "predicting", mdone, mtotal, r->nacked, r->nblocks,
             (unsigned long long)r->job.xsize * r->job.ysize, (unsigned long long)r->block_reads, r->reissued,
             (unsigned long long)r->dropped, r->finished && r->exit_code == 0 ? "true" : "false", r->npeers);
    /* every worker's own times and tasks, from its heartbeats: the supervisor reports those it did not start */
    len += (size_t)snprintf(extra + len, cap - len, ", \"workers\": [");
    for (uint32_t i = 0, k = 0; i < r->npeers && len < cap; i++) {
        const gm_header_t *hb = &r->peers[i].hb;
        if (!hb->has_stats) continue;
        char host[64];
        size_t n = 0;
        for (const char *c = hb->host; *c && n + 1 < sizeof host; c++)
            if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '.' || *c == '-' ||
                *c == '_')
                host[n++] = *c;
        host[n] = '\0';
        len += (size_t)snprintf(extra + len, cap - len,
                                "%s{\"pid\": %u, \"host\": \"%s\", \"busy_s\": %.3f, \"blocked_s\": %.3f, "
                                "\"wait_s\": %.3f, \"tasks_done\": %llu}",
                                k++ ? ", " : "", hb->pid, host, hb->busy_ms / 1e3, hb->blocked_ms / 1e3, hb->wait_ms / 1e3,
                                (unsigned long long)hb->done);
    }
    if (len + 2 < cap) snprintf(extra + len, cap - len, "]");
    if (gm_stats_write(&r->stats_time, r->opt.common.stats_file, extra, err) < 0) gm_log(GM_LOG_WARN, "%s", err);
    free(extra);
}

/* Every 20 ms: which state was the reader in? Every 25 samples: write --stats. */
static void on_sample(uv_timer_t *t) {
    reader_t *r = t->data;
    gm_stats_state_t st = r->nfree < r->opt.io_threads ? GM_STATS_BUSY : r->ready_head ? GM_STATS_BLOCKED : GM_STATS_WAIT;
    gm_stats_sample(&r->stats_time, st, uv_hrtime());
    if (++r->samples % 25 == 0) write_stats(r);
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
        free(r.opt.xgb_params);
        return rc < 0 ? 2 : 0;
    }
    int run = r.opt.polygons || r.opt.models_dir;
    if (gm_cli_setup("gridmill-reader", &r.opt.common, err) < 0 || reader_stacks_open(&r, err) < 0 ||
        (run ? reader_run_start(&r, err) : reader_job_build(&r, err)) < 0) {
        fprintf(stderr, "gridmill-reader: %s\n", err);
        reader_run_free(&r);
        gm_job_clear(&r.job);
        for (uint32_t i = 0; r.stacks && i < r.opt.io_threads; i++) gm_stack_destroy(&r.stacks[i]);
        free(r.stacks);
        free(r.free_stacks);
        free(r.job_header);
        free(r.opt.covariates);
        free(r.opt.xgb_params);
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
    uv_signal_init(r.loop, &r.siglost);
    r.siglost.data = &r;
    uv_signal_start(&r.siglost, on_worker_lost, SIGUSR1);
    uv_timer_start(&r.stats, on_stats, 10000, 10000);
    gm_stats_init(&r.stats_time, uv_hrtime());
    uv_timer_init(r.loop, &r.sampler);
    r.sampler.data = &r;
    uv_timer_start(&r.sampler, on_sample, 20, 20);
    if (reader_control_start(&r, err) < 0 || reader_feed_bind(&r, err) < 0 ||
        (r.job.mode == GM_MODE_TRAIN ? reader_run_pump(&r, err) : reader_feed_begin(&r, err)) < 0) {
        fprintf(stderr, "gridmill-reader: %s\n", err);
        reader_finish(&r, 1);
    }
    uv_run(r.loop, UV_RUN_DEFAULT);
    gm_stats_sample(&r.stats_time, GM_STATS_WAIT, uv_hrtime());
    write_stats(&r);
    uv_loop_close(r.loop);
    zmq_ctx_term(r.zctx);
    for (uint32_t i = 0; r.stacks && i < r.opt.io_threads; i++) gm_stack_destroy(&r.stacks[i]);
    free(r.stacks);
    free(r.free_stacks);
    free(r.state);
    free(r.order);
    free(r.held_by);
    free(r.written_by);
    free(r.reads_of_block);
    for (uint32_t b = 0; r.block_copy && b < r.nblocks; b++) gm_msg_destroy(&r.block_copy[b]);
    free(r.block_copy);
    free(r.peers);
    free(r.job_header);
    reader_run_free(&r);
    while (r.ready_head) {
        ready_t *n = r.ready_head->next;
        gm_msg_destroy(&r.ready_head->msg);
        free(r.ready_head);
        r.ready_head = n;
    }
    gm_job_clear(&r.job);
    free(r.opt.covariates);
    free(r.opt.xgb_params);
    return r.exit_code;
}
