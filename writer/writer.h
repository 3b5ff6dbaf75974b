/* writer.h -- gridmill-writer's parts: options, output datasets, strip assembly and acks. */
#ifndef WRITER_H
#define WRITER_H

#include <gdal.h>
#include <stdint.h>
#include <uv.h>

#include "gm_cli.h"
#include "gm_job.h"
#include "gm_sock.h"
#include "gm_stats.h"

/* The writer's options, built from argv. */
typedef struct {
    gm_cli_common_t common;
    const char *connect_ep;  /* --connect: the reader's control endpoint */
    const char *bind_ep;     /* --bind: where workers push results */
    const char *out_dir;     /* --out */
    const char *format;      /* -of: GDAL driver (GTiff) */
    char **create_options;   /* -co KEY=VALUE, a CSL list */
} writer_options_t;

/* The output datasets of a job, open under temporary names until complete. */
typedef struct {
    uint32_t n;
    GDALDatasetH ds[GM_JOB_MAX_OUTPUTS];
    char *tmp_path[GM_JOB_MAX_OUTPUTS];
    char *final_path[GM_JOB_MAX_OUTPUTS];
    int cog;                 /* -of COG: write tiled GTiff, then copy each complete output to a COG */
    char **cog_options;      /* the user's -co, for the COG copy */
} writer_outputs_t;

/* One strip of output rows being assembled: rows [y0, y0 + rows) of every output, band-sequential. */
typedef struct {
    uint32_t index, y0, rows;
    uint64_t filled;                  /* pixels received so far */
    void *buf[GM_JOB_MAX_OUTPUTS];    /* bands x rows x xsize samples per output */
} strip_t;

typedef struct {
    writer_options_t opt;
    uv_loop_t *loop;
    void *zctx;
    gm_sock_t *control, *results, *acks;
    uv_signal_t sigint, sigterm;
    uv_timer_t stats;
    uv_timer_t sampler;      /* samples busy / blocked / waiting; writes --stats */
    gm_stats_t stats_time;
    unsigned samples;
    uv_timer_t retry;                 /* asks for the job again while the reader is still switching */
    gm_job_t job;
    int have_job;
    int job_requested;                /* a hello is out: results wait for the reply */
    gm_msg_t *held;                   /* a result of a job not yet known, waiting for it */
    uint8_t *model_saved;             /* train: 1 once iteration i's model is on disk */
    uint32_t models_saved;
    writer_outputs_t outs;
    uint32_t nblocks, nstrips;
    uint8_t *seen;                    /* 1 once a block's result has been taken */
    strip_t **strips;                 /* strips being assembled, by index */
    uint32_t next_strip;              /* lowest strip not yet written */
    uint32_t acked_block_rows;        /* block rows acked to the reader so far */
    int writing;                      /* a strip or the final close runs in the thread pool */
    gm_msg_t *ack_queue[64];          /* acks the reader could not take yet */
    uint32_t nack_queue;
    unsigned delay_ms;
    uint64_t received, duplicates, dropped;
    int finished, exit_code;
} writer_t;

/* Parses argv into 'opt'. Returns 0, 1 when --help or --version was served, or -1 with 'err'. */
int writer_options_parse(int argc, char **argv, writer_options_t *opt, char *err);
/* Creates every output of the job in the output folder under temporary names. Returns 0, or -1 with 'err'. */
int writer_outputs_create(writer_outputs_t *outs, const writer_options_t *opt, const gm_job_t *job, char *err);
/* Writes strip 's' of every output and flushes it. Returns 0, or -1 with 'err'. Runs off the loop. */
int writer_outputs_write_strip(writer_outputs_t *outs, const gm_job_t *job, const strip_t *s, char *err);
/* Closes every output and renames it to its final name. Returns 0, or -1 with 'err'. Runs off the loop. */
int writer_outputs_finish(writer_outputs_t *outs, char *err);
/* Closes and deletes whatever is still open under a temporary name (an interrupted run). */
void writer_outputs_abandon(writer_outputs_t *outs);
/* Prepares the strips of an apply job (predict or summarise). Returns 0, or -1 with 'err'. */
int writer_strips_start(writer_t *wr, char *err);
/* Takes one result message of the current apply job: checks it and places it in its strips. */
void writer_strips_take(writer_t *wr, gm_msg_t *msg, const gm_header_t *h);
/* Frees the strips and block table of the current job. */
void writer_strips_clear(writer_t *wr);
/* Takes one trained model of the current training job: saves it under the output folder and tells the
 * reader, with its bytes. */
void writer_models_take(writer_t *wr, gm_msg_t *msg, const gm_header_t *h);
/* Queues a message to the reader's ack endpoint: header 'h' and an optional owned payload. */
void writer_send_ack(writer_t *wr, gm_header_t *h, void *payload, size_t len);
/* Connects the ack socket to the endpoint the job names (once). Returns 0, or -1 with 'err'. */
int writer_acks_connect(writer_t *wr, char *err);
/* Asks the reader for the current job. */
void writer_request_job(writer_t *wr);
/* After strip 'strips' - 1 is written: closes and reopens every output so the files are whole on disk, then
 * records in DIR/.gridmill-ledger that 'strips' strips of this job are written. Returns 0, or -1 with 'err'. */
int writer_ledger_commit(writer_t *wr, uint32_t strips, char *err);
/* Before the outputs are created: if the ledger names this job, moves the earlier run's partial outputs aside
 * (NAME.tif.part.old) and returns how many strips they hold; else 0. */
uint32_t writer_ledger_stash(writer_t *wr);
/* Just after the outputs were created afresh: rebuilds the 'k' strips stashed by writer_ledger_stash from the
 * earlier run's partial outputs (same writes, so the same bytes), removes those, and sets '*resumed' to the
 * strips rebuilt. Returns 0, or -1 with 'err'. */
int writer_ledger_resume(writer_t *wr, uint32_t k, uint32_t *resumed, char *err);
/* The job is complete: forgets the ledger. */
void writer_ledger_remove(writer_t *wr);
/* Interrupted: closes the outputs, keeping the partial files and the ledger for a re-run. */
void writer_ledger_keep(writer_t *wr);
/* Marks strips 0..k-1 written (after a resume): their blocks are taken, acked, and never computed again. */
void writer_strips_resume_to(writer_t *wr, uint32_t k);
/* Stops the writer with exit status 'code'. */
void writer_finish(writer_t *wr, int code);

#endif
