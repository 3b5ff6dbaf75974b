/* mask_stage.c -- gridmill-stage-mask: a custom pre-stage that makes the covariates nodata (NaN) wherever a
 * mask raster on the job's grid is 0 or nodata, so nothing is predicted there. An example of a stage written
 * on the common library (common/PROTOCOL.md, "Custom stages"): it fetches the job like a worker, pulls every
 * message the reader sends, masks each task's payload in libuv's thread pool, and pushes every message on. */
#include <errno.h>
#include <math.h>
#include <ogr_srs_api.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "gm_cli.h"
#include "gm_job.h"
#include "gm_log.h"
#include "gm_msg.h"
#include "gm_sock.h"
#include "gm_stack.h"
#include "gm_wire.h"

static const char usage[] =
    "Usage: gridmill-stage-mask [options] MASK\n"
    "A gridmill pre-stage: every covariate becomes nodata wherever the one-band raster MASK is 0 or nodata\n"
    "(its nodata value, its mask, or NaN), so those pixels are nodata in every output. MASK must be on the\n"
    "job's grid (same size and geotransform). Every other message goes on unchanged. Run it with\n"
    "  gridmill predict|run ... --pre-stage 'gridmill-stage-mask MASK' [--pre-stage-copies N]\n"
    "which sets GRIDMILL_STAGE=pre, GRIDMILL_IN, GRIDMILL_OUT, GRIDMILL_CONTROL and, with --curve, GRIDMILL_CURVE.\n"
    "\n"
    "  -q, --quiet           errors only\n"
    "  --verbose             debug messages\n"
    "  --log-file FILE       also append log lines to FILE\n"
    "  --curve KEYFILE       secure every connection with ZeroMQ CURVE (default: $GRIDMILL_CURVE)\n"
    "  --config KEY VALUE    set a GDAL configuration option\n"
    "  --help, --version\n";

typedef struct {
    gm_cli_common_t common;
    const char *mask_path;
    const char *control_ep, *in_ep, *out_ep; /* from GRIDMILL_CONTROL, GRIDMILL_IN, GRIDMILL_OUT */
    uv_loop_t *loop;
    void *zctx;
    gm_sock_t *control, *in, *out;
    uv_signal_t sigint, sigterm;
    uv_timer_t watchdog;     /* under a shell: notices a supervisor killed outright */
    pid_t supervisor;        /* its pid, when the shell stands between us */
    gm_stack_t *mask;        /* the mask raster, read in the thread pool one task at a time */
    gm_job_t job;
    int have_job, job_requested;
    uint64_t asked_for;      /* job id a task named when we last asked the reader */
    gm_msg_t *held;          /* the message in hand: waiting for the job, being masked, or to be sent */
    int busy;                /* the held task is being masked in the thread pool */
    int ready;               /* the held message is ready to go on (masked, or not a task to mask) */
    uint64_t tasks_masked, pixels_masked, passed_on;
    int finished, exit_code;
} stage_t;

/* One task's masking, in libuv's thread pool. */
typedef struct {
    uv_work_t req;
    stage_t *s;
    gm_header_t h;
    float *window;           /* the mask's w x h window, NaN where nodata */
    uint64_t masked;         /* pixels made nodata */
    int rc;
    char err[GM_ERR_LEN];
} mask_work_t;

static void step(stage_t *s);

/* Stops the stage with exit status 'code' once the loop has closed every handle. */
static void finish(stage_t *s, int code) {
    if (s->finished) return;
    s->finished = 1;
    s->exit_code = code;
    gm_sock_destroy(&s->control, 0);
    gm_sock_destroy(&s->in, 0);
    gm_sock_destroy(&s->out, 0);
    uv_signal_stop(&s->sigint);
    uv_signal_stop(&s->sigterm);
    uv_timer_stop(&s->watchdog);
    uv_close((uv_handle_t *)&s->sigint, NULL);
    uv_close((uv_handle_t *)&s->sigterm, NULL);
    uv_close((uv_handle_t *)&s->watchdog, NULL);
}

/* SIGTERM is how the supervisor ends a stage when the job is complete: a clean exit. */
static void on_signal(uv_signal_t *h, int signum) {
    stage_t *s = h->data;
    gm_log(GM_LOG_DEBUG, "signal %d: stopping; %llu tasks masked (%llu pixels), %llu messages passed on", signum,
           (unsigned long long)s->tasks_masked, (unsigned long long)s->pixels_masked,
           (unsigned long long)s->passed_on);
    finish(s, 0);
}

/* Checks that the mask lies on the job's grid: size, geotransform (to 1e-9 of a pixel) and, when both have
 * one, CRS. Returns 0, or -1 with 'err' naming the mask file and the difference. */
static int check_grid(const stage_t *s, const gm_job_t *job, char *err) {
    const gm_grid_t *g = gm_stack_grid(s->mask);
    const char *path = s->mask_path;
    if (g->xsize != job->xsize || g->ysize != job->ysize)
        return gm_err(err, "%s: grid differs from the job's (size %ux%u vs %ux%u)", path, g->xsize, g->ysize,
                      job->xsize, job->ysize);
    double tol = 1e-9 * (fabs(job->gt[1]) + fabs(job->gt[5]));
    for (int i = 0; i < 6; i++)
        if (fabs(g->gt[i] - job->gt[i]) > tol)
            return gm_err(err, "%s: grid differs from the job's (geotransform %.10g,%g,%g,%.10g,%g,%g vs "
                          "%.10g,%g,%g,%.10g,%g,%g)", path, g->gt[0], g->gt[1], g->gt[2], g->gt[3], g->gt[4],
                          g->gt[5], job->gt[0], job->gt[1], job->gt[2], job->gt[3], job->gt[4], job->gt[5]);
    if (*g->crs && job->crs && *job->crs) {
        OGRSpatialReferenceH a = OSRNewSpatialReference(g->crs), b = OSRNewSpatialReference(job->crs);
        int same = a && b && OSRIsSame(a, b);
        OSRDestroySpatialReference(a);
        OSRDestroySpatialReference(b);
        if (!same) return gm_err(err, "%s: grid differs from the job's (CRS differs)", path);
    }
    return 0;
}

/* Asks the reader for the job it serves now. */
static void request_job(stage_t *s) {
    char err[GM_ERR_LEN];
    gm_msg_t *msg = gm_job_hello_msg("stage");
    if (!msg) {
        gm_log(GM_LOG_ERROR, "out of memory building a hello");
        finish(s, 1);
        return;
    }
    if (gm_sock_send(s->control, &msg, err) != 0) gm_log(GM_LOG_WARN, "control: hello not sent: %s", err);
    gm_msg_destroy(&msg);
    s->job_requested = 1;
}

static void on_in(gm_sock_t *sock, gm_msg_t *msg, void *arg);
static void on_out_writable(gm_sock_t *sock, void *arg);

/* Connects the stream sockets, once the mask has been checked against the job. Returns 0, or -1 with 'err'. */
static int connect_stream(stage_t *s, char *err) {
    if (s->in) return 0;
    s->in = gm_sock_new(s->loop, s->zctx, ZMQ_PULL, "in", err);
    s->out = gm_sock_new(s->loop, s->zctx, ZMQ_PUSH, "out", err);
    if (!s->in || !s->out) return -1;
    gm_sock_set_hwm(s->in, 0, 1); /* queue little here, so blocks go to idle copies */
    gm_sock_set_hwm(s->out, 2, 0);
    gm_sock_set_maxmsgsize(s->in, (int64_t)GM_WIRE_MAX_BLOCK * GM_WIRE_MAX_BLOCK * 4 * 64);
    if (gm_sock_connect(s->in, s->in_ep, err) < 0 || gm_sock_connect(s->out, s->out_ep, err) < 0) return -1;
    if (gm_sock_start(s->in, on_in, NULL, s, err) < 0 || gm_sock_start(s->out, NULL, on_out_writable, s, err) < 0)
        return -1;
    gm_log(GM_LOG_DEBUG, "pulling from %s, pushing to %s", s->in_ep, s->out_ep);
    return 0;
}

/* Installs a job message after checking the mask against its grid. Returns 0, or -1 with 'err'. */
static int install_job(stage_t *s, gm_msg_t *msg, char *err) {
    gm_job_t job;
    if (gm_job_from_msg(msg, &job, err) < 0) return -1;
    if (check_grid(s, &job, err) < 0) {
        gm_job_clear(&job);
        return -1;
    }
    if (!s->have_job) gm_stack_limit_cache(s->mask, job.block_h, job.block_w);
    gm_job_clear(&s->job);
    s->job = job;
    s->have_job = 1;
    gm_log(GM_LOG_INFO, "job %016llx: masking %u bands of %ux%u blocks where %s is 0 or nodata",
           (unsigned long long)job.id, job.nbands, job.block_w, job.block_h, s->mask_path);
    return 0;
}

static void on_control(gm_sock_t *sock, gm_msg_t *msg, void *arg) {
    (void)sock;
    stage_t *s = arg;
    char err[GM_ERR_LEN];
    uint32_t version;
    gm_msg_kind_t kind;
    if (msg->nframes < 1 || gm_wire_peek(gm_msg_data(msg, 0), gm_msg_size(msg, 0), &version, &kind, err) < 0) {
        gm_log(GM_LOG_ERROR, "control: the reader sent a malformed reply: %s", msg->nframes ? err : "no frames");
        finish(s, 1);
    } else if (kind == GM_MSG_ERROR) {
        gm_header_t h;
        if (gm_wire_decode(gm_msg_data(msg, 0), gm_msg_size(msg, 0), &h, err) == 0)
            snprintf(err, sizeof err, "%s", h.text);
        gm_log(GM_LOG_ERROR, "control: the reader refused: %s", err);
        finish(s, 1);
    } else if (kind != GM_MSG_JOB) {
        gm_log(GM_LOG_WARN, "control: dropped a \"%s\" reply", gm_msg_kind_name(kind));
    } else if (s->busy) {
        /* the running mask uses the current job: never swap it underneath; the held task asks again */
        s->job_requested = 0;
    } else if (install_job(s, msg, err) < 0 || connect_stream(s, err) < 0) {
        gm_log(GM_LOG_ERROR, "%s", err);
        finish(s, 1);
    } else {
        s->job_requested = 0;
        step(s);
    }
    gm_msg_destroy(&msg);
}

/* Reads the task's mask window and sets every band to NaN where it is 0 or nodata. Runs in the thread pool. */
static void do_mask(uv_work_t *req) {
    mask_work_t *m = req->data;
    const gm_header_t *h = &m->h;
    size_t n = (size_t)h->w * h->h;
    m->window = malloc(n * sizeof *m->window);
    if (!m->window) {
        m->rc = gm_err(m->err, "out of memory for a %ux%u mask window", h->w, h->h);
        return;
    }
    if ((m->rc = gm_stack_read(m->s->mask, h->x, h->y, h->w, h->h, m->window, m->err)) < 0) return;
    /* ZeroMQ may hand frames at any address: write the floats with memcpy */
    unsigned char *planes = gm_msg_data(m->s->held, 1);
    const float nan = NAN;
    for (size_t k = 0; k < n; k++) {
        if (!isnan(m->window[k]) && m->window[k] != 0.0f) continue;
        for (uint32_t b = 0; b < h->bands; b++) memcpy(planes + ((size_t)b * n + k) * sizeof nan, &nan, sizeof nan);
        m->masked++;
    }
}

static void after_mask(uv_work_t *req, int status) {
    mask_work_t *m = req->data;
    stage_t *s = m->s;
    s->busy = 0;
    if (s->finished || status == UV_ECANCELED) {
        gm_msg_destroy(&s->held);
    } else if (m->rc < 0) {
        gm_log(GM_LOG_ERROR, "block %u: %s", m->h.block, m->err);
        finish(s, 1);
    } else {
        s->tasks_masked++;
        s->pixels_masked += m->masked;
        s->ready = 1;
        step(s);
    }
    free(m->window);
    free(m);
}

/* Checks a task's window and payload: against the plan when it is of the job held, else against the grid
 * (a task of a job the reader no longer serves is still masked; the workers drop it). Returns 0, or -1. */
static int check_task(stage_t *s, gm_msg_t *msg, const gm_header_t *h, char *err) {
    if (h->job == s->job.id && gm_job_check_block(&s->job, h, err) < 0) return -1;
    if ((uint64_t)h->x + h->w > s->job.xsize || (uint64_t)h->y + h->h > s->job.ysize)
        return gm_err(err, "task block %u (%u,%u %ux%u) lies outside the %ux%u grid", h->block, h->x, h->y, h->w,
                      h->h, s->job.xsize, s->job.ysize);
    size_t want = (size_t)h->w * h->h * h->bands * sizeof(float);
    if (msg->nframes != 2 || gm_msg_size(msg, 1) != want)
        return gm_err(err, "task block %u payload is not one frame of %zu bytes", h->block, want);
    return 0;
}

/* Pushes the held message on; resumes pulling once it is gone. */
static void send_held(stage_t *s) {
    char err[GM_ERR_LEN];
    int rc = gm_sock_send(s->out, &s->held, err);
    if (rc == 1) {
        gm_sock_want_writable(s->out, 1);
        return;
    }
    gm_sock_want_writable(s->out, 0);
    if (rc < 0) {
        gm_log(GM_LOG_ERROR, "%s", err);
        finish(s, 1);
        return;
    }
    s->ready = 0;
    s->passed_on++;
    gm_sock_pause_recv(s->in, 0);
}

/* Moves the held message along: waits for the job, starts masking a task, or sends the message on. */
static void step(stage_t *s) {
    char err[GM_ERR_LEN];
    if (!s->held || s->busy || s->finished) return;
    if (s->ready) {
        send_held(s);
        return;
    }
    uint32_t version;
    gm_msg_kind_t kind;
    gm_header_t h = {0};
    if (gm_wire_peek(gm_msg_data(s->held, 0), gm_msg_size(s->held, 0), &version, &kind, err) < 0 ||
        kind != GM_MSG_TASK) {
        s->ready = 1; /* train messages, kinds we do not know: on, byte for byte */
    } else if (gm_wire_decode(gm_msg_data(s->held, 0), gm_msg_size(s->held, 0), &h, err) < 0) {
        gm_log(GM_LOG_WARN, "in: passing on a malformed task unchanged: %s", err);
        s->ready = 1;
    } else if (!s->have_job || h.job != s->job.id) {
        if (s->job_requested) return; /* wait for the reply */
        if (!s->have_job || s->asked_for != h.job) {
            s->asked_for = h.job;
            request_job(s);
            return;
        }
        /* asked for this job and the reader serves another: mask the stale task against the grid anyway */
    }
    if (!s->ready && check_task(s, s->held, &h, err) < 0) {
        gm_log(GM_LOG_WARN, "in: passing on a bad task unchanged: %s", err);
        s->ready = 1;
    }
    if (s->ready) {
        send_held(s);
        return;
    }
    mask_work_t *m = calloc(1, sizeof *m);
    if (!m) {
        gm_log(GM_LOG_ERROR, "out of memory for block %u", h.block);
        finish(s, 1);
        return;
    }
    m->s = s;
    m->h = h;
    m->req.data = m;
    s->busy = 1;
    uv_queue_work(s->loop, &m->req, do_mask, after_mask);
}

static void on_in(gm_sock_t *sock, gm_msg_t *msg, void *arg) {
    stage_t *s = arg;
    if (s->held) { /* cannot happen while paused; never lose a message anyway */
        gm_log(GM_LOG_ERROR, "in: a message arrived while one is held");
        gm_msg_destroy(&msg);
        finish(s, 1);
        return;
    }
    s->held = msg;
    gm_sock_pause_recv(sock, 1);
    step(s);
}

static void on_out_writable(gm_sock_t *sock, void *arg) {
    (void)sock;
    step(arg);
}

/* Returns the parent pid of process 'pid' from /proc, or -1. */
static pid_t parent_of(pid_t pid) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *close_paren = strrchr(buf, ')');
    int ppid;
    if (!close_paren || sscanf(close_paren + 1, " %*c %d", &ppid) != 1) return -1;
    return (pid_t)ppid;
}

/* The supervisor starts a custom stage through /bin/sh -c, so our parent may be that shell rather than the
 * supervisor GRIDMILL_SUPERVISOR_PID names: then watch the shell (gm_cli_setup asks for SIGTERM when it dies)
 * and return the supervisor's pid, which on_watchdog checks (a supervisor killed outright leaves the shell).
 * Returns 0 when the supervisor is our parent, or none is named. */
static pid_t watch_shell_parent(void) {
    const char *sup = getenv("GRIDMILL_SUPERVISOR_PID");
    pid_t parent = getppid(), supervisor = sup ? (pid_t)strtol(sup, NULL, 10) : 0;
    if (supervisor <= 0 || parent == supervisor) return 0;
    if (parent_of(parent) != supervisor) return 0; /* gm_cli_setup says the supervisor is gone */
    char pid[24];
    snprintf(pid, sizeof pid, "%d", (int)parent);
    setenv("GRIDMILL_SUPERVISOR_PID", pid, 1);
    return supervisor;
}

/* Every second under a shell: stops when the supervisor is gone. */
static void on_watchdog(uv_timer_t *t) {
    stage_t *s = t->data;
    if (kill(s->supervisor, 0) == 0 || errno != ESRCH) return;
    gm_log(GM_LOG_ERROR, "the supervisor (pid %d) is gone; stopping", (int)s->supervisor);
    finish(s, 1);
}

/* Parses argv and the environment into 's'. Returns 0, 1 when --help or --version was served, or -1 with 'err'. */
static int parse_options(int argc, char **argv, stage_t *s, char *err) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int rc = gm_cli_builtin(argc, argv, &i, &s->common, "gridmill-stage-mask", usage, err);
        if (rc < 0) return -1;
        if (rc == 2) return 1; /* --help or --version served */
        if (rc > 0) continue;
        if (a[0] == '-' && a[1]) return gm_err(err, "unknown option %s (see --help)", a);
        if (s->mask_path) return gm_err(err, "unexpected argument \"%s\": give one MASK (see --help)", a);
        s->mask_path = a;
    }
    if (!s->mask_path) return gm_err(err, "no MASK raster given (see --help)");
    const char *stage = getenv("GRIDMILL_STAGE");
    if (stage && strcmp(stage, "pre") != 0)
        return gm_err(err, "GRIDMILL_STAGE is \"%s\": this is a pre-stage (give it with --pre-stage)", stage);
    s->control_ep = getenv("GRIDMILL_CONTROL");
    s->in_ep = getenv("GRIDMILL_IN");
    s->out_ep = getenv("GRIDMILL_OUT");
    const char *missing = !s->control_ep || !*s->control_ep ? "GRIDMILL_CONTROL"
                          : !s->in_ep || !*s->in_ep         ? "GRIDMILL_IN"
                          : !s->out_ep || !*s->out_ep       ? "GRIDMILL_OUT"
                                                            : NULL;
    if (missing)
        return gm_err(err, "%s is not set: run this stage with 'gridmill predict|run --pre-stage' (see --help)",
                      missing);
    const char *curve = getenv("GRIDMILL_CURVE");
    if (!s->common.curve && curve && *curve) s->common.curve = curve;
    return 0;
}

int main(int argc, char **argv) {
    char err[GM_ERR_LEN];
    stage_t s;
    memset(&s, 0, sizeof s);
    int rc = parse_options(argc, argv, &s, err);
    if (rc != 0) {
        if (rc < 0) fprintf(stderr, "gridmill-stage-mask: %s\n", err);
        return rc < 0 ? 2 : 0;
    }
    s.supervisor = watch_shell_parent();
    if (gm_cli_setup("gridmill-stage-mask", &s.common, err) < 0) {
        fprintf(stderr, "gridmill-stage-mask: %s\n", err);
        return 1;
    }
    const char *paths[1] = {s.mask_path};
    if (!(s.mask = gm_stack_open(paths, 1, err)) ||
        (gm_stack_nbands(s.mask) != 1 &&
         gm_err(err, "%s: has %u bands; a mask has one", s.mask_path, gm_stack_nbands(s.mask)))) {
        fprintf(stderr, "gridmill-stage-mask: %s\n", err);
        gm_stack_destroy(&s.mask);
        return 1;
    }
    s.loop = uv_default_loop();
    s.zctx = zmq_ctx_new();
    uv_signal_init(s.loop, &s.sigint);
    uv_signal_init(s.loop, &s.sigterm);
    uv_timer_init(s.loop, &s.watchdog);
    s.sigint.data = s.sigterm.data = s.watchdog.data = &s;
    uv_signal_start(&s.sigint, on_signal, SIGINT);
    uv_signal_start(&s.sigterm, on_signal, SIGTERM);
    if (s.supervisor) uv_timer_start(&s.watchdog, on_watchdog, 1000, 1000);
    s.control = gm_sock_new(s.loop, s.zctx, ZMQ_DEALER, "control", err);
    if (!s.control || gm_sock_connect(s.control, s.control_ep, err) < 0 ||
        gm_sock_start(s.control, on_control, NULL, &s, err) < 0) {
        fprintf(stderr, "gridmill-stage-mask: %s\n", err);
        finish(&s, 1);
    } else {
        request_job(&s); /* the mask is checked against the job's grid before any task is pulled */
    }
    uv_run(s.loop, UV_RUN_DEFAULT);
    uv_loop_close(s.loop);
    zmq_ctx_term(s.zctx);
    gm_msg_destroy(&s.held);
    gm_job_clear(&s.job);
    gm_stack_destroy(&s.mask);
    return s.exit_code;
}
