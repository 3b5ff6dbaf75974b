/* worker_control.c -- fetch the job and its models from the reader's control endpoint. */
#include <stdio.h>
#include <string.h>

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

/* Installs a job message: decodes it, copies the model bytes, loads the model. Returns 0, or -1 with 'err'. */
static int install_job(worker_t *w, gm_msg_t *msg, char *err) {
    gm_job_t job;
    if (gm_job_from_msg(msg, &job, err) < 0) return -1;
    gm_applier_t *applier = NULL;
    gm_applier_destroy(&w->applier);
    gm_job_clear(&w->job);
    w->job = job; /* the applier keeps a pointer to w->job */
    if (w->job.mode != GM_MODE_TRAIN) applier = gm_applier_new(&w->job, (int)w->opt.threads, err);
    if (w->job.mode != GM_MODE_TRAIN && !applier) {
        gm_job_clear(&w->job);
        w->have_job = 0;
        return -1;
    }
    w->applier = applier;
    w->have_job = 1;
    gm_log(GM_LOG_INFO, "job %016llx: %s, %s, %u bands, %u models", (unsigned long long)w->job.id,
           w->job.mode == GM_MODE_TRAIN ? "training" : "applying", w->job.objective, w->job.nbands, w->job.nmodels);
    return 0;
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
            gm_job_clear(&w->job);
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
    } else if (install_job(w, msg, err) < 0) {
        gm_log(GM_LOG_ERROR, "control: cannot use the job: %s", err);
        worker_finish(w, 1);
    } else {
        w->job_requested = 0;
        if (worker_tasks_connect(w, err) < 0) {
            gm_log(GM_LOG_ERROR, "%s", err);
            worker_finish(w, 1);
        } else {
            worker_tasks_run(w);
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

