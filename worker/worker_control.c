/* worker_control.c -- fetch the job and its models from the reader's control endpoint. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gm_log.h"
#include "gm_wire.h"
#include "worker.h"

void worker_request_job(worker_t *w) {
    char err[GM_ERR_LEN];
    gm_msg_t *msg = gm_job_hello_msg("worker");
    if (!msg) {
        gm_log(GM_LOG_ERROR, "out of memory building a hello");
        worker_finish(w, 1);
        return;
    }
    if (gm_sock_send(w->control, &msg, err) != 0) gm_log(GM_LOG_WARN, "control: hello not sent: %s", err);
    gm_msg_destroy(&msg);
    w->job_requested = 1;
}

/* A job being installed in the thread pool: decoding it and loading its models (a hundred large models take
 * seconds) must not stop the loop, whose heartbeats tell the reader this worker lives. */
typedef struct {
    uv_work_t req;
    worker_t *w;
    gm_msg_t *msg;
    gm_job_t *job;           /* heap: the applier keeps a pointer to it */
    gm_applier_t *applier;
    int rc;
    char err[GM_ERR_LEN];
} load_t;

/* In the thread pool: decodes the job, copies the model bytes, loads the models. */
static void do_load(uv_work_t *req) {
    load_t *l = req->data;
    l->rc = -1;
    const char *slow = getenv("GRIDMILL_DEBUG_LOAD_MS"); /* tests only: a load that takes this long */
    if (slow) usleep((useconds_t)strtoul(slow, NULL, 10) * 1000u);
    if (gm_job_from_msg(l->msg, l->job, l->err) < 0) return;
    if (l->job->mode != GM_MODE_TRAIN && !(l->applier = gm_applier_new(l->job, (int)l->w->opt.threads, l->err))) return;
    l->rc = 0;
}

/* On the loop: makes the loaded job current and starts taking its tasks. */
static void after_load(uv_work_t *req, int status) {
    load_t *l = req->data;
    worker_t *w = l->w;
    char err[GM_ERR_LEN];
    w->busy = 0;
    gm_msg_destroy(&l->msg);
    if (status == UV_ECANCELED || w->finished || l->rc < 0) {
        if (!w->finished && status != UV_ECANCELED) {
            gm_log(GM_LOG_ERROR, "control: cannot use the job: %s", l->err);
            worker_finish(w, 1);
        }
        gm_applier_destroy(&l->applier);
        gm_job_clear(l->job);
        free(l->job);
        free(l);
        return;
    }
    gm_applier_destroy(&w->applier);
    if (w->job) gm_job_clear(w->job);
    free(w->job);
    w->job = l->job; /* the applier points at it */
    w->applier = l->applier;
    w->have_job = 1;
    w->job_requested = 0;
    free(l);
    gm_log(GM_LOG_INFO, "job %016llx: %s, %s, %u bands, %u models", (unsigned long long)w->job->id,
           w->job->mode == GM_MODE_TRAIN ? "training" : "applying", w->job->objective, w->job->nbands, w->job->nmodels);
    if (worker_tasks_connect(w, err) < 0) {
        gm_log(GM_LOG_ERROR, "%s", err);
        worker_finish(w, 1);
    } else {
        worker_tasks_run(w);
    }
}

static void on_control(gm_sock_t *sock, gm_msg_t *msg, void *arg) {
    (void)sock;
    worker_t *w = arg;
    char err[GM_ERR_LEN];
    uint32_t version;
    gm_msg_kind_t kind;
    if (msg->nframes < 1 || gm_wire_peek(gm_msg_data(msg, 0), gm_msg_size(msg, 0), &version, &kind, err) < 0) {
        gm_log(GM_LOG_ERROR, "control: the reader sent a malformed reply: %s", msg->nframes ? err : "no frames");
        worker_finish(w, 1);
    } else if (kind == GM_MSG_ERROR) {
        gm_header_t h;
        if (gm_wire_decode(gm_msg_data(msg, 0), gm_msg_size(msg, 0), &h, err) == 0)
            snprintf(err, sizeof err, "%s", h.text);
        gm_log(GM_LOG_ERROR, "control: the reader refused: %s", err);
        worker_finish(w, 1);
    } else if (kind == GM_MSG_DONE && w->opt.keep_serving) {
        gm_log(GM_LOG_INFO, "the run is over; waiting for the next one on %s", w->opt.connect_ep);
        if (!w->busy) {
            gm_applier_destroy(&w->applier);
            if (w->job) gm_job_clear(w->job);
            free(w->job);
            w->job = NULL;
            w->have_job = 0;
        }
        worker_request_job(w);
    } else if (kind == GM_MSG_DONE) {
        gm_log(GM_LOG_INFO, "the run is over; stopping");
        worker_finish(w, 0);
    } else if (kind != GM_MSG_JOB) {
        gm_log(GM_LOG_WARN, "control: dropped a \"%s\" reply", gm_msg_kind_name(kind));
    } else if (w->busy) {
        /* the running prediction uses the current job: never swap it underneath */
        gm_log(GM_LOG_DEBUG, "control: job arrived while busy; asking again later");
        w->job_requested = 0;
    } else {
        load_t *l = calloc(1, sizeof *l);
        gm_job_t *job = calloc(1, sizeof *job);
        if (!l || !job) {
            free(l);
            free(job);
            gm_log(GM_LOG_ERROR, "control: out of memory for the job");
            worker_finish(w, 1);
        } else {
            *l = (load_t){.w = w, .msg = msg, .job = job};
            l->req.data = l;
            msg = NULL; /* the load owns it */
            w->busy = 1; /* no task runs while the job loads */
            uv_queue_work(w->loop, &l->req, do_load, after_load);
        }
    }
    gm_msg_destroy(&msg);
}

int worker_control_start(worker_t *w, char *err) {
    w->control = gm_sock_new(w->loop, w->zctx, ZMQ_DEALER, "control", err);
    if (!w->control) return -1;
    if (gm_sock_connect(w->control, w->opt.connect_ep, err) < 0) return -1;
    if (gm_sock_start(w->control, on_control, NULL, w, err) < 0) return -1;
    worker_request_job(w);
    return 0;
}

