/* writer.h -- gridmill-writer's parts: options, output datasets, tile assembly and acks.
 *
 * With --shard J/W the writer is one of W: it takes every result, but creates and writes only the job's
 * outputs i with i mod W == J; it acks every block all the same, with its shard in each ack and done. */
#ifndef WRITER_H
#define WRITER_H

#include <gdal.h>
#include <stdint.h>
#include <uv.h>

#include "gm_cli.h"
#include "gm_job.h"
#include "gm_sock.h"
#include "gm_stats.h"
#include "gm_wire.h"

#define WRITER_MAX_ACK_EPS 64      /* most --acks endpoints (one per reader) */
#define WRITER_ACK_QUEUE 64        /* messages queued per ack endpoint while its reader cannot take them */

/* The writer's options, built from argv. */
typedef struct {
    gm_cli_common_t common;
    const char *connect_ep;  /* --connect: the reader's control endpoint */
    const char *bind_ep;     /* --bind: where workers push results */
    const char *out_dir;     /* --out */
    const char *format;      /* -of: GDAL driver (GTiff) */
    char **create_options;   /* -co KEY=VALUE, a CSL list */
    uint32_t shard, shards;  /* --shard J/W: this writer owns the outputs i with i mod W == J (0/1: all) */
    const char *ack_eps[WRITER_MAX_ACK_EPS]; /* --acks EP, repeatable: used instead of the job's acks endpoint */
    uint32_t nack_eps;
} writer_options_t;

/* The output datasets of a job this writer owns, open under temporary names until complete. File k is the
 * job's output index[k]. */
typedef struct {
    uint32_t n;
    uint32_t index[GM_JOB_MAX_OUTPUTS];
    GDALDatasetH ds[GM_JOB_MAX_OUTPUTS];
    char *tmp_path[GM_JOB_MAX_OUTPUTS];
    char *final_path[GM_JOB_MAX_OUTPUTS];
    int cog;                 /* -of COG: write tiled GTiff, then copy each complete output to a COG */
    char **cog_options;      /* the user's -co, for the COG copy */
} writer_outputs_t;

/* One output tile being assembled: the window x0, y0, w x h (tile 'index' in row-major order) of every
 * output, band-sequential. */
typedef struct {
    uint32_t index, x0, y0, w, h;
    uint64_t filled;                  /* pixels received so far */
    void *buf[GM_JOB_MAX_OUTPUTS];    /* bands x h x w samples per job output; NULL for one not owned */
} tile_t;

/* One endpoint the writer sends acks to, with the messages its reader could not take yet. */
typedef struct {
    gm_sock_t *sock;
    gm_msg_t *queue[WRITER_ACK_QUEUE];
    uint32_t nqueue;
} writer_acks_t;

typedef struct {
    writer_options_t opt;
    uv_loop_t *loop;
    void *zctx;
    gm_sock_t *control, *results;
    writer_acks_t acks[WRITER_MAX_ACK_EPS]; /* the job's acks endpoint, or one per --acks */
    uint32_t nacks;
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
    uint8_t *model_saved;             /* train: 1 once iteration i's model is on disk (shards J > 0: trained) */
    uint32_t models_saved;
    writer_outputs_t outs;
    uint32_t nblocks, ntiles;
    uint8_t *seen;                    /* 1 once a block's result has been taken */
    tile_t **tiles;                   /* tiles being assembled, by index */
    uint32_t next_tile;               /* lowest tile not yet written */
    uint32_t nowned;                  /* the job's outputs this writer owns */
    uint64_t *tile_hash;              /* tile t's hash in each owned output: [t * nowned + i], once t is written */
    uint32_t *ack_start, *ack_blocks; /* blocks whose last tile is t: ack_blocks[ack_start[t] .. ack_start[t + 1]) */
    int writing;                      /* tiles or the final close are being written in the thread pool */
    unsigned delay_ms;
    uint64_t received, duplicates, dropped;
    int finished, exit_code;
} writer_t;

/* Parses argv into 'opt'. Returns 0, 1 when --help or --version was served, or -1 with 'err'. */
int writer_options_parse(int argc, char **argv, writer_options_t *opt, char *err);
/* Returns 1 when this writer's shard owns the job's output 'i', else 0. */
int writer_owns_output(const writer_options_t *opt, uint32_t i);
/* Creates every output of the job this writer owns in the output folder under temporary names, its final name
 * with 'suffix' (".part"; none when it owns none). Returns 0, or -1 with 'err'. */
int writer_outputs_create(writer_outputs_t *outs, const writer_options_t *opt, const gm_job_t *job,
                          const char *suffix, char *err);
/* Renames output file 'from' to 'to' with its GDAL sidecar (FROM.aux.xml: category names), when it has one.
 * Returns 0, or -1 with 'err'. */
int writer_rename_output(const char *from, const char *to, char *err);
/* Maps a wire sample type to GDAL's. */
GDALDataType writer_gdal_type(gm_dtype_t dt);
/* Writes tile 't' of every output this writer owns and flushes it from GDAL's cache, so the tiles reach the
 * files in the order they are written. Returns 0, or -1 with 'err'. Runs off the loop. */
int writer_outputs_write_tile(writer_outputs_t *outs, const gm_job_t *job, const tile_t *t, char *err);
/* Closes every output this writer owns, flushes it to disk and renames it to its final name. Returns 0, or -1
 * with 'err'. Runs off the loop. */
int writer_outputs_finish(writer_outputs_t *outs, char *err);
/* Closes and deletes whatever is still open under a temporary name (an interrupted run). */
void writer_outputs_abandon(writer_outputs_t *outs);
/* Sets the window of tile 'index' (row-major) of the job's output grid into 't'. */
void writer_tile_window(const gm_job_t *job, uint32_t index, tile_t *t);
/* Returns 1 when tile 'index' is the last of its tile row (or of the raster): the ledger is committed there. */
int writer_tile_ends_row(const gm_job_t *job, uint32_t index);
/* Sets hash[i] to the XXH64 of tile 't' in the i-th output this writer owns: its samples band-sequential, as
 * written (and as GDAL reads them back). */
void writer_tile_hash(const writer_t *wr, const tile_t *t, uint64_t *hash);
/* Prepares the tiles of an apply job (predict or summarise). Returns 0, or -1 with 'err'. */
int writer_tiles_start(writer_t *wr, char *err);
/* Takes one result message of the current apply job: checks it and places it in the tiles it overlaps. */
void writer_tiles_take(writer_t *wr, gm_msg_t *msg, const gm_header_t *h);
/* Frees the tiles and block tables of the current job. */
void writer_tiles_clear(writer_t *wr);
/* Takes one trained model of the current training job: saves it under the output folder and tells the
 * reader, with its bytes. */
void writer_models_take(writer_t *wr, gm_msg_t *msg, const gm_header_t *h);
/* Queues a message to every ack endpoint: header 'h' (an ack or done carries this writer's shard) and an
 * optional owned payload, shared by the copies. */
void writer_send_ack(writer_t *wr, gm_header_t *h, void *payload, size_t len);
/* Connects one ack socket to each --acks endpoint, or to the endpoint the job names (once). Returns 0, or -1
 * with 'err'. */
int writer_acks_connect(writer_t *wr, char *err);
/* Returns 1 while some ack endpoint holds messages its reader could not take yet, else 0. */
int writer_acks_blocked(const writer_t *wr);
/* Closes every ack socket, letting queued messages reach the readers for up to 'linger_ms'. */
void writer_acks_close(writer_t *wr, int linger_ms);
/* Asks the reader for the current job. */
void writer_request_job(writer_t *wr);
/* After the tile row ending with tile 'tiles' - 1 is written: closes and reopens every output so the files are
 * whole on disk, fsyncs them, then replaces the ledger (DIR/.gridmill-ledger, or DIR/.gridmill-ledger-J-of-W for
 * shard J of W) by one vouching for those tiles with their hashes (wr->tile_hash), fsynced. Returns 0, or -1
 * with 'err'. */
int writer_ledger_commit(writer_t *wr, uint32_t tiles, char *err);
/* Creates the outputs of an apply job (after writer_tiles_start): afresh, or, when the ledger names this job,
 * from the rows of tiles it vouches for that the earlier run's files still hold, checked against its hashes
 * and rebuilt with the same writes (so the same bytes); '*resumed' is set to the tiles kept. A failure leaves
 * the earlier run's files and ledger as they were. Returns 0, or -1 with 'err'. */
int writer_ledger_resume(writer_t *wr, uint32_t *resumed, char *err);
/* The job is complete: forgets the ledger. */
void writer_ledger_remove(writer_t *wr);
/* Interrupted: closes the outputs, keeping the partial files and the ledger for a re-run. */
void writer_ledger_keep(writer_t *wr);
/* Marks tiles 0..k-1 written (after a resume): the blocks they complete are taken, acked, and never computed
 * again. */
void writer_tiles_resume_to(writer_t *wr, uint32_t k);
/* Flushes folder 'dir' (the names in it) to disk. Returns 0, or -1 with 'err'. */
int writer_sync_dir(const char *dir, char *err);
/* Flushes file 'path' to disk. Returns 0, or -1 with 'err'. */
int writer_sync_file(const char *path, char *err);
/* Tests only: with GRIDMILL_DEBUG_KILL_WRITER=POINT:N the writer SIGKILLs itself the N-th time it passes
 * POINT (commit: the outputs synced, the ledger not yet replaced; resume-tile: a tile copied by a resume;
 * resume-adopt: a rebuilt output renamed over NAME.part; finish: an output renamed to its final name). */
void writer_debug_kill(const char *point);
/* Stops the writer with exit status 'code'. */
void writer_finish(writer_t *wr, int code);

#endif
