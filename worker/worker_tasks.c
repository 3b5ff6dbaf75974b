/* worker_tasks.c -- pull task blocks, apply the model in the thread pool, push the results. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gm_log.h"
#include "gm_train.h"
#include "gm_wire.h"
#include "worker.h"

/* One prediction or one training, running in libuv's thread pool. */
typedef struct {
    uv_work_t req;
    worker_t *w;
    gm_header_t h;
    gm_msg_t *task;        /* the task as received: its payload frames are read in place */
    const float *planes;   /* task: band-sequential covariates; train: sample rows */
    const float *labels;   /* train: one label per row */
    float *copies[2];      /* aligned copies of frames ZeroMQ handed at an address floats cannot have */
    void *model;           /* train: the trained model's bytes */
    size_t model_len;
    void *outs[GM_JOB_MAX_OUTPUTS];
    int rc;
    char err[GM_ERR_LEN];
} predict_t;

/* Mixes a run seed and an iteration into one training seed (splitmix64's finaliser). */
static uint64_t iteration_seed(uint64_t seed, uint32_t iteration) {
    uint64_t z = seed + 0x9e3779b97f4a7c15ULL * (iteration + 1);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Frees a prediction or training and everything it holds; takes NULL. */
static void predict_free(predict_t *p) {
    if (!p) return;
    for (uint32_t i = 0; i < GM_JOB_MAX_OUTPUTS; i++) free(p->outs[i]);
    free(p->model);
    free(p->copies[0]);
    free(p->copies[1]);
    gm_msg_destroy(&p->task);
    free(p);
}

static void do_predict(uv_work_t *req) {
    predict_t *p = req->data;
    if (p->h.kind == GM_MSG_TRAIN)
        p->rc = gm_train_model(p->w->job, p->planes, p->labels, p->h.count, p->h.cols,
                               iteration_seed(p->w->job->seed, p->h.iteration), &p->model, &p->model_len, p->err);
    else
        p->rc = gm_applier_run(p->w->applier, p->planes, p->h.w, p->h.h, p->outs, p->err);
    if (p->w->delay_ms) usleep(p->w->delay_ms * 1000u);
}

/* Tries to hand the unsent result to the writer; resumes pulling tasks once it is gone. */
static void flush_result(worker_t *w) {
    char err[GM_ERR_LEN];
    if (!w->unsent) return;
    int rc = gm_sock_send(w->results, &w->unsent, err);
    if (rc == 1) {
        gm_sock_want_writable(w->results, 1);
        return;
    }
    gm_sock_want_writable(w->results, 0);
    if (rc < 0) {
        gm_log(GM_LOG_ERROR, "%s", err);
        worker_finish(w, 1);
        return;
    }
    gm_msg_destroy(&w->unsent);
    w->done++;
    if (uv_now(w->loop) - w->last_hb_ms >= 100) worker_send_heartbeat(w);
    worker_tasks_run(w);
}

static void after_predict(uv_work_t *req, int status) {
    predict_t *p = req->data;
    worker_t *w = p->w;
    char err[GM_ERR_LEN];
    w->busy = 0;
    if (w->finished || status == UV_ECANCELED) goto out;
    if (p->rc < 0) {
        if (p->h.kind == GM_MSG_TRAIN) gm_log(GM_LOG_ERROR, "iteration %u: %s", p->h.iteration + 1, p->err);
        else gm_log(GM_LOG_ERROR, "block %u: %s", p->h.block, p->err);
        worker_finish(w, 1);
        goto out;
    }
    if (p->h.kind == GM_MSG_TRAIN) {
        gm_header_t mh = {.kind = GM_MSG_MODEL, .job = p->h.job, .iteration = p->h.iteration};
        void *buf;
        size_t len;
        gm_msg_t *msg = gm_msg_new();
        int ok = msg && gm_wire_encode(&mh, &buf, &len, err) == 0 && gm_msg_add_owned(msg, buf, len) == 0 &&
                 gm_msg_add_owned(msg, p->model, p->model_len) == 0;
        p->model = NULL;
        if (!ok) {
            gm_msg_destroy(&msg);
            gm_log(GM_LOG_ERROR, "iteration %u: out of memory sending the model", p->h.iteration + 1);
            worker_finish(w, 1);
            goto out;
        }
        w->unsent = msg;
        flush_result(w);
        goto out;
    }
    gm_header_t rh = p->h;
    rh.kind = GM_MSG_RESULT;
    void *buf;
    size_t len;
    gm_msg_t *msg = gm_msg_new();
    int ok = msg && gm_wire_encode(&rh, &buf, &len, err) == 0 && gm_msg_add_owned(msg, buf, len) == 0;
    for (uint32_t i = 0; i < w->job->noutputs; i++) {
        if (ok) ok = gm_msg_add_owned(msg, p->outs[i], gm_job_output_bytes(&w->job->outputs[i], rh.w, rh.h)) == 0;
        else free(p->outs[i]);
        p->outs[i] = NULL; /* the message owns it now, or it was freed */
    }
    if (!ok) {
        gm_msg_destroy(&msg);
        gm_log(GM_LOG_ERROR, "block %u: out of memory building the result", rh.block);
        worker_finish(w, 1);
        goto out;
    }
    w->unsent = msg;
    flush_result(w);
out:
    predict_free(p);
}

/* Frame 'i' of 'msg' as floats: in place when aligned for them, else an aligned copy in '*copy'. NULL when out of
 * memory. */
static const float *frame_floats(gm_msg_t *msg, size_t i, float **copy) {
    const void *data = gm_msg_data(msg, i);
    size_t size = gm_msg_size(msg, i);
    if ((uintptr_t)data % _Alignof(float) == 0) return data;
    if (!(*copy = malloc(size ? size : 1))) return NULL;
    memcpy(*copy, data, size);
    return *copy;
}

/* Checks a training task against the job. Returns 0, or -1 with 'err'. */
static int check_train(worker_t *w, gm_msg_t *msg, const gm_header_t *h, char *err) {
    if (w->job->mode != GM_MODE_TRAIN) return gm_err(err, "a training task for a job that does not train");
    if (h->cols != w->job->nbands) return gm_err(err, "training task has %u features, the job %u", h->cols, w->job->nbands);
    if (msg->nframes != 3 || gm_msg_size(msg, 1) != (size_t)h->count * h->cols * sizeof(float) ||
        gm_msg_size(msg, 2) != (size_t)h->count * sizeof(float))
        return gm_err(err, "training task %u payload is not %u rows of %u features and %u labels", h->iteration,
                      h->count, h->cols, h->count);
    return 0;
}

/* Checks a task against the job. Returns 0, or -1 with 'err'. */
static int check_task(worker_t *w, gm_msg_t *msg, const gm_header_t *h, char *err) {
    if (w->job->mode == GM_MODE_TRAIN) return gm_err(err, "a block task for a training job");
    if (gm_job_check_block(w->job, h, err) < 0) return -1;
    if (h->bands != w->job->nbands) return gm_err(err, "task has %u bands, the job %u", h->bands, w->job->nbands);
    size_t want = (size_t)h->w * h->h * h->bands * sizeof(float);
    if (msg->nframes != 2 || gm_msg_size(msg, 1) != want)
        return gm_err(err, "task block %u payload is not one frame of %zu bytes", h->block, want);
    return 0;
}

void worker_tasks_run(worker_t *w) {
    char err[GM_ERR_LEN];
    while (w->held && !w->busy && !w->unsent && !w->finished) {
        gm_header_t h;
        if (gm_wire_decode(gm_msg_data(w->held, 0), gm_msg_size(w->held, 0), &h, err) < 0 ||
            (h.kind != GM_MSG_TASK && h.kind != GM_MSG_TRAIN)) {
            if (h.kind != GM_MSG_TASK && h.kind != GM_MSG_TRAIN) snprintf(err, sizeof err, "not a task");
            gm_log(GM_LOG_WARN, "tasks: dropped a malformed message: %s", err);
            w->dropped++;
            gm_msg_destroy(&w->held);
            break;
        }
        if (!w->have_job || h.job != w->job->id) {
            if (w->job_requested) return; /* wait for the reply */
            if (w->have_job && w->asked_for == h.job) {
                /* asked for this job and the reader serves another: the task is stale */
                gm_log(GM_LOG_WARN, "tasks: dropped block %u of job %016llx, which the reader no longer serves",
                       h.block, (unsigned long long)h.job);
                w->dropped++;
                gm_msg_destroy(&w->held);
                break;
            }
            w->asked_for = h.job;
            worker_request_job(w);
            return;
        }
        if ((h.kind == GM_MSG_TRAIN ? check_train(w, w->held, &h, err) : check_task(w, w->held, &h, err)) < 0) {
            gm_log(GM_LOG_WARN, "tasks: dropped a bad task: %s", err);
            w->dropped++;
            gm_msg_destroy(&w->held);
            break;
        }
        predict_t *p = calloc(1, sizeof *p);
        int ok = p != NULL;
        for (uint32_t i = 0; ok && h.kind == GM_MSG_TASK && i < w->job->noutputs; i++)
            ok = (p->outs[i] = malloc(gm_job_output_bytes(&w->job->outputs[i], h.w, h.h))) != NULL;
        if (!ok) {
            predict_free(p);
            gm_log(GM_LOG_ERROR, "out of memory for block %u", h.block);
            worker_finish(w, 1);
            return;
        }
        p->w = w;
        p->h = h;
        /* the task is the job's now, read in place: the next one can come in while it runs */
        p->task = w->held;
        w->held = NULL;
        p->planes = frame_floats(p->task, 1, &p->copies[0]);
        if (h.kind == GM_MSG_TRAIN) p->labels = frame_floats(p->task, 2, &p->copies[1]);
        if (!p->planes || (h.kind == GM_MSG_TRAIN && !p->labels)) {
            predict_free(p);
            gm_log(GM_LOG_ERROR, "out of memory for block %u", h.block);
            worker_finish(w, 1);
            return;
        }
        p->req.data = p;
        w->busy = 1;
        uv_queue_work(w->loop, &p->req, do_predict, after_predict);
        return;
    }
    if (w->tasks && !w->finished) gm_sock_pause_recv(w->tasks, w->held != NULL || w->busy || w->unsent != NULL);
}

static void on_task(gm_sock_t *sock, gm_msg_t *msg, void *arg) {
    worker_t *w = arg;
    if (w->held) { /* cannot happen while paused; keep the invariant anyway */
        gm_msg_destroy(&msg);
        w->dropped++;
        return;
    }
    w->held = msg;
    gm_sock_pause_recv(sock, 1);
    worker_tasks_run(w);
}

static void on_results_writable(gm_sock_t *sock, void *arg) {
    (void)sock;
    flush_result(arg);
}

int worker_tasks_connect(worker_t *w, char *err) {
    if (w->tasks) return 0;
    char tasks_ep[GM_JOB_EP_LEN], results_ep[GM_JOB_EP_LEN];
    gm_sock_rehost(w->opt.tasks_ep ? w->opt.tasks_ep : w->job->tasks_ep, w->opt.connect_ep, tasks_ep, sizeof tasks_ep);
    gm_sock_rehost(w->opt.results_ep ? w->opt.results_ep : w->job->results_ep, w->opt.connect_ep, results_ep,
                  sizeof results_ep);
    w->tasks = gm_sock_new(w->loop, w->zctx, ZMQ_PULL, "tasks", err);
    w->results = gm_sock_new(w->loop, w->zctx, ZMQ_PUSH, "results", err);
    if (!w->tasks || !w->results) return -1;
    gm_sock_set_hwm(w->tasks, 0, 1);  /* queue little here, so blocks go to idle workers */
    gm_sock_set_hwm(w->results, 4, 0);
    gm_sock_set_maxmsgsize(w->tasks, (int64_t)GM_WIRE_MAX_BLOCK * GM_WIRE_MAX_BLOCK * 4 * 64);
    if (gm_sock_connect(w->tasks, tasks_ep, err) < 0 || gm_sock_connect(w->results, results_ep, err) < 0) return -1;
    if (gm_sock_start(w->tasks, on_task, NULL, w, err) < 0 || gm_sock_start(w->results, NULL, on_results_writable, w, err) < 0)
        return -1;
    gm_log(GM_LOG_DEBUG, "pulling tasks from %s, pushing results to %s", tasks_ep, results_ep);
    return 0;
}
