/* reader.h -- gridmill-reader's parts: options, job building, block feed, control endpoint. */
#ifndef READER_H
#define READER_H

#include <stdint.h>
#include <uv.h>

#include "gm_cli.h"
#include "gm_job.h"
#include "gm_sock.h"
#include "gm_stack.h"
#include "gm_stats.h"

/* The reader's options, built from argv. */
typedef struct {
    gm_cli_common_t common;
    const char *model_path;        /* --model */
    const char **covariates;       /* positional, or after --covariates */
    int ncovariates;
    const char *control_ep;        /* --control: bound, serves the job */
    const char *tasks_ep;          /* --tasks: bound, PUSHes tasks */
    const char *advertise_tasks_ep; /* --advertise-tasks: the task endpoint the job names (NULL: tasks_ep) */
    const char *acks_ep;           /* --acks: bound, PULLs acks from the writer */
    const char *results_ep;        /* --results: the writer's endpoint, told to workers */
    uint32_t block_size;           /* --block-size, 0 = from the data */
    uint32_t tile;                 /* --tile-size: output tile side */
    uint32_t max_inflight;         /* --max-inflight, 0 = automatic */
    uint32_t io_threads;           /* --io-threads: concurrent GDAL reads */
    int probabilities;             /* --probabilities */
    int align;                     /* --align: warp covariates onto the first one's grid */
    /* the full job (run): sample, train per iteration, apply every model, summarise */
    const char *out_dir;           /* --out: sample tables and class table go here */
    const char *polygons;          /* --polygons MAP[:LAYER] */
    const char *class_field;       /* --class-field */
    const char *target_field;      /* --target-field */
    const char *composition;       /* --composition CSV */
    const char *composition_fields; /* --composition-fields CLASS1,SHARE1,...: the composition in the map */
    const char *observations_crs;  /* --observations-crs CRS: of observations that name none (a CSV) */
    int summary_probs;             /* --summary probabilities (else votes) */
    int allocation;                /* --allocation: a gm_sample_allocation_t */
    const char *strata;            /* --strata RASTER: rdsmart's strata, for a composition with a stratum column */
    const char *categorical[64];   /* --categorical RASTER, repeatable: covariates whose values are categories */
    int ncategorical;
    const char *id_field;          /* --id-field */
    const char *observations;      /* --observations POINTS[:LAYER] */
    const char *observations_field;/* --observations-field (default: the class or target field) */
    const char *models_dir;        /* --models DIR: apply these instead of training */
    uint32_t iterations;           /* --iterations */
    uint32_t per_polygon;          /* --samples-per-polygon */
    double density;                /* --sample-density, points per km² */
    uint32_t min_samples;          /* --min-samples */
    uint64_t seed;                 /* --seed */
    uint32_t trees;                /* --trees */
    int rf;                        /* --rf */
    uint32_t max_depth;            /* --max-depth */
    const char *eta;               /* --eta */
    const char *objective;         /* --objective (regression) */
    const char **xgb_params;       /* --xgb-param KEY=VALUE, repeatable */
    int nxgb_params;
    uint32_t nprob;                /* --nprob */
    const char *quantiles;         /* --quantiles 0.05,0.5,0.95 */
    int realisations;              /* --realisations */
    uint32_t stall_ms;             /* --stall-timeout, in ms */
    uint32_t shard, shards;        /* --shard I/R: this reader reads the block rows r with r mod R == I (0/1) */
    uint32_t writers;              /* --writers W: a block is written when all W writer shards acked it (1) */
} reader_options_t;

typedef enum { BLOCK_PENDING = 0, BLOCK_READING, BLOCK_READY, BLOCK_SENT, BLOCK_RECEIVED, BLOCK_ACKED } block_state_t;

/* One message waiting to be sent on the task socket: a block, or a training iteration. */
typedef struct ready_s {
    struct ready_s *next;
    gm_msg_t *msg;
    uint32_t block;     /* UINT32_MAX if not a block */
    uint32_t iteration; /* UINT32_MAX if not a training task */
} ready_t;

/* A peer seen on the control endpoint (a worker), by its ZeroMQ identity. */
typedef struct {
    unsigned char id[256];
    size_t idlen;
    uint64_t last_seen; /* uv_now() of its last hello or heartbeat */
    int lost;
    gm_header_t hb;     /* its last heartbeat with times (hb.has_stats), for the end table */
} peer_t;

#define READER_DEFAULT_INFLIGHT 32 /* blocks read but not yet written, by default ... */
#define READER_DEFAULT_INFLIGHT_BYTES ((size_t)256 << 20) /* ... fewer if they hold more bytes than this */
#define READER_PEER_TIMEOUT_MS 3000 /* a worker silent this long is taken for dead */

typedef struct {
    reader_options_t opt;
    uv_loop_t *loop;
    void *zctx;
    gm_sock_t *control, *tasks, *acks;
    uv_signal_t sigint, sigterm;
    uv_signal_t siglost;           /* SIGUSR1: the supervisor saw a worker die: re-issue what it may have held */
    uv_timer_t stats;
    gm_job_t job;
    void *job_header;              /* encoded job, served to every hello */
    size_t job_header_len;
    gm_stack_t **stacks;           /* one per I/O thread */
    int *free_stacks;              /* indices of idle stacks */
    uint32_t nfree;
    uint8_t *state;                /* block_state_t of each block */
    uint8_t *held_by, *written_by; /* per block: bit J set once writer shard J reported it received / written */
    uint32_t ready_mask, done_mask;/* writer shards that reported ready for / done with the current job */
    uint32_t nblocks, next_block;  /* next_block: position in 'order' of the next block to read */
    uint32_t *order;               /* every block id, in reading order (gm_job_block_order) */
    uint32_t inflight;             /* blocks read or being read, not yet acked */
    uint32_t max_inflight;
    uint32_t nacked, nsent;
    ready_t *ready_head, *ready_tail;
    unsigned delay_ms;             /* GRIDMILL_DEBUG_DELAY_MS */
    uint32_t *reads_of_block;      /* prediction pass: times each block was read */
    gm_msg_t **block_copy;         /* a sent block's task, kept until the writer has it, to re-issue */
    uint64_t last_progress;        /* uv_now() of the last block or model the writer reported */
    int writer_ready;              /* the writer holds the current job: blocks may go (none it already wrote) */
    uint32_t reissued;             /* tasks sent again after a worker was lost or a deadline passed */
    peer_t *peers;
    uint32_t npeers;
    uv_timer_t liveness;
    uint64_t reissue_again_at;     /* uv_now() at which to re-issue once more after a worker was lost (0: no) */
    uv_timer_t sampler;            /* samples busy / blocked / waiting; writes --stats */
    gm_stats_t stats_time;
    unsigned samples;
    uint64_t block_reads;          /* prediction pass: block reads in all */
    struct reader_run_s *run;      /* the full job's state, NULL for predict */
    uint64_t dropped;              /* malformed messages dropped */
    int finished;
    int exit_code;
} reader_t;

/* Parses argv into 'opt'. Returns 0, 1 when --help or --version was served, or -1 with 'err'. */
int reader_options_parse(int argc, char **argv, reader_options_t *opt, char *err);
/* Loads the model, checks it fits the covariates, and installs the predict job. Returns 0, or -1 with 'err'. */
int reader_job_build(reader_t *r, char *err);
/* Fills a job's grid, bands and block plan from the covariates. */
void reader_job_grid(reader_t *r, gm_job_t *job);
/* Opens one covariate stack per I/O thread. Returns 0, or -1 with 'err'. */
int reader_stacks_open(reader_t *r, char *err);
/* Binds the task and ack sockets. Returns 0, or -1 with 'err'. */
int reader_feed_bind(reader_t *r, char *err);
/* Starts reading the blocks of the current job (predict or summarise). Returns 0, or -1 with 'err'. */
int reader_feed_begin(reader_t *r, char *err);
/* Queues a message for the task socket and sends what it can; 'block' is marked sent when it goes
 * (UINT32_MAX for messages that are not blocks). Returns 0, or -1 when out of memory. */
int reader_feed_queue(reader_t *r, gm_msg_t *msg, uint32_t block, uint32_t iteration);
/* Sends again every task that no live worker is known to have finished: the blocks and training
 * iterations sent but not yet reported by the writer. 'why' goes into the log line. */
void reader_feed_reissue(reader_t *r, const char *why);
/* Notes that the control peer with identity 'id' is alive. */
peer_t *reader_peer_seen(reader_t *r, const void *id, size_t len);
/* The run is complete: tells every worker seen on the control endpoint ("done"), so the ones started by hand
 * stop (or, with --keep-serving, wait for the next run). */
void reader_say_done(reader_t *r);
/* Makes 'job' the current job: encodes it for hellos. Returns 0, or -1 with 'err'. */
int reader_job_install(reader_t *r, gm_job_t *job, char *err);
/* Prepares the full job: polygons, training job, sampling. Returns 0, or -1 with 'err'. */
int reader_run_start(reader_t *r, char *err);
/* Starts (or continues) sampling iterations and sending training tasks. Returns 0, or -1 with 'err'. */
int reader_run_pump(reader_t *r, char *err);
/* Keeps a copy of training task 'iteration' just sent, to re-issue it if its worker is lost. */
void reader_run_sent(reader_t *r, uint32_t iteration, gm_msg_t *copy);
/* Queues again every training task sent but not saved. Returns how many. */
uint32_t reader_run_reissue(reader_t *r);
/* Takes a "saved" message from the writer: a trained model on disk, with its bytes. */
void reader_run_saved(reader_t *r, gm_msg_t *msg, const gm_header_t *h);
/* Gives the models trained so far and in all (0 and 0 when not a full job). */
void reader_run_progress(const reader_t *r, uint32_t *done, uint32_t *total);
/* Frees the full job's state. */
void reader_run_free(reader_t *r);
/* Starts as many block reads as the in-flight bound and idle I/O threads allow. */
void reader_feed_pump(reader_t *r);
/* Says whether block 'b' of the current job is this reader's to read (--shard). */
int reader_owns_block(const reader_t *r, uint32_t b);
/* Says whether this reader is the first shard: the one that serves the job, samples and trains. */
int reader_is_primary(const reader_t *r);
/* Binds the control socket and answers hellos with the job (the primary only; every shard watches its
 * progress). Returns 0, or -1 with 'err'. */
int reader_control_start(reader_t *r, char *err);
/* Stops the reader: closes sockets and handles so the loop can end, with 'code' as exit status. */
void reader_finish(reader_t *r, int code);

#endif
