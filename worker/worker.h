/* worker.h -- gridmill-worker's parts: options, job fetching, task execution. */
#ifndef WORKER_H
#define WORKER_H

#include <stdint.h>
#include <uv.h>

#include "gm_apply.h"
#include "gm_cli.h"
#include "gm_job.h"
#include "gm_sock.h"
#include "gm_stats.h"

/* The worker's options, built from argv. */
typedef struct {
    gm_cli_common_t common;
    const char *connect_ep;  /* --connect: the reader's control endpoint */
    const char *tasks_ep;    /* --tasks: override the job's task endpoint */
    const char *results_ep;  /* --results: override the job's result endpoint */
    uint32_t threads;        /* --threads: XGBoost threads per prediction */
    int watch_stdin;         /* --watch-stdin: exit when standard input closes (remote workers over ssh) */
    int keep_serving;        /* --keep-serving: when a run ends, wait for the next on the same endpoint */
} worker_options_t;

typedef struct {
    worker_options_t opt;
    uv_loop_t *loop;
    void *zctx;
    gm_sock_t *control, *tasks, *results;
    uv_signal_t sigint, sigterm;
    uv_timer_t stats;
    uint64_t last_hb_ms;     /* uv_now() of the last heartbeat sent */
    uv_timer_t sampler;      /* samples busy / blocked / waiting; writes --stats */
    gm_stats_t stats_time;
    unsigned samples;
    uv_timer_t heartbeat;    /* tells the reader every second that this worker lives */
    uv_pipe_t lifeline;      /* standard input, with --watch-stdin */
    int lifeline_open;
    gm_job_t *job;           /* the current job (owned; the applier points at it), or NULL */
    int have_job, job_requested;
    uint64_t asked_for;      /* job id a task named when we last asked the reader */
    gm_applier_t *applier;
    gm_msg_t *held;          /* the task in hand (waiting for the job, or running) */
    gm_msg_t *unsent;        /* a result the writer could not take yet */
    int busy;                /* a prediction runs in the thread pool */
    unsigned delay_ms;
    uint64_t done, dropped;
    int finished, exit_code;
} worker_t;

/* Parses argv into 'opt'. Returns 0, 1 when --help or --version was served, or -1 with 'err'. */
int worker_options_parse(int argc, char **argv, worker_options_t *opt, char *err);
/* Connects to the reader's control endpoint and asks for the job. Returns 0, or -1 with 'err'. */
int worker_control_start(worker_t *w, char *err);
/* Asks the reader for the job (again). */
void worker_request_job(worker_t *w);
/* Connects the task and result sockets named by the job (once). Returns 0, or -1 with 'err'. */
int worker_tasks_connect(worker_t *w, char *err);
/* Starts the held task if the job and the thread pool allow. */
void worker_tasks_run(worker_t *w);
/* Stops the worker with exit status 'code'. */
void worker_finish(worker_t *w, int code);
/* Sends the reader a heartbeat with this worker's times and tasks so far (every second, and after a task when
 * the last went out over 100 ms ago, so a short run still hears them). */
void worker_send_heartbeat(worker_t *w);

#endif
