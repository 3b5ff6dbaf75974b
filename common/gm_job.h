/* gm_job.h -- the job description every stage shares: grid, block plan, model kind, outputs, endpoints.
 *
 * The reader builds the job from its options and serves it on its control endpoint as a "job" message
 * whose header is the encoded job and whose frames are the model bytes. Workers and writers fetch it by
 * id, so no stage needs a shared disk. */
#ifndef GM_JOB_H
#define GM_JOB_H

#include <stddef.h>
#include <stdint.h>

#include "gm_msg.h"
#include "gm_wire.h"

#define GM_JOB_MAX_MODELS 4096  /* most models one job applies */
#define GM_JOB_MAX_OUTPUTS (GM_JOB_MAX_MODELS + 16) /* most output files: summaries + one realisation per model */
#define GM_JOB_MAX_PARAMS 64    /* most training parameters */
#define GM_JOB_MAX_QUANTILES 32 /* most quantiles a regression summary writes */
#define GM_JOB_EP_LEN 256       /* longest endpoint string */
#define GM_JOB_CLASS_NAME_MAX 1024 /* longest class name a job carries, in bytes */

typedef enum { GM_KIND_REGRESSION = 1, GM_KIND_CLASSIFICATION } gm_model_kind_t;

/* What a job does: apply one model; train one model per iteration; apply every model and summarise. */
typedef enum { GM_MODE_PREDICT = 1, GM_MODE_TRAIN, GM_MODE_SUMMARISE } gm_job_mode_t;

/* What an output holds; it decides the worker's computation and the band descriptions. */
typedef enum {
    GM_ROLE_PREDICTION = 1, /* regression value of the one model */
    GM_ROLE_CLASS,          /* class code: of the one model (predict) or the most probable (summarise) */
    GM_ROLE_PROBABILITY,    /* one band per class: model probability (predict) or share of models (summarise) */
    GM_ROLE_ENTROPY,        /* Shannon entropy of the class shares, in bits */
    GM_ROLE_CONFUSION,      /* 1 - (p1 - p2) of the two largest class shares */
    GM_ROLE_NPROB_CLASS,    /* n bands: the n most probable classes */
    GM_ROLE_NPROB_PROB,     /* n bands: their shares */
    GM_ROLE_MEAN,           /* regression: mean over models */
    GM_ROLE_SD,             /* regression: population standard deviation over models */
    GM_ROLE_QUANTILE,       /* regression: one band per quantile, linear interpolation */
    GM_ROLE_REALISATION     /* the class or value of model 'model' alone */
} gm_output_role_t;

/* One output file: its name (file stem), what it holds, sample type, band count and nodata value. */
typedef struct {
    char name[32];          /* file stem: "class", "probability", "realisation-007" */
    gm_output_role_t role;
    uint32_t model;         /* realisation: index of the model it shows */
    gm_dtype_t dtype;       /* sample type written */
    uint32_t bands;         /* bands in the file */
    double nodata;          /* value of pixels where any covariate is nodata */
} gm_output_t;

/* One training parameter handed to XGBoost as it is. */
typedef struct {
    char key[48];
    char value[48];
} gm_param_t;

/* One model: its format as detected from the bytes and the bytes themselves (owned by the job). */
typedef struct {
    char format[8]; /* "json", "ubj" or "bin" (XGBoost's legacy binary) */
    void *bytes;
    size_t size;
} gm_model_blob_t;

typedef struct {
    uint64_t id;                 /* job id: a hash of everything below */
    gm_job_mode_t mode;          /* predict, train or summarise */
    uint32_t xsize, ysize;       /* grid size in pixels */
    double gt[6];                /* GDAL geotransform of the grid */
    char *crs;                   /* CRS as WKT, owned ("" when the covariates have none) */
    uint32_t nbands;             /* covariate bands = model features */
    uint32_t block_w, block_h;   /* processing block size */
    uint32_t tile;               /* output tile side (multiple of 16): outputs are written tile by tile, in row-major order */
    gm_model_kind_t kind;        /* regression or classification */
    char objective[64];          /* XGBoost objective name, e.g. "multi:softprob" */
    uint32_t nclass;             /* classes (classification), 0 for regression */
    char **class_names;          /* the name of each class code (nclass, then NULL; owned), or NULL: "class N" */
    int probabilities;           /* predict, classification: also write one probability band per class */
    uint32_t nprob;              /* summarise: write the n most probable classes (0: not) */
    uint32_t nquantiles;         /* summarise, regression: quantiles written */
    double quantiles[GM_JOB_MAX_QUANTILES];
    int realisations;            /* summarise: also write each model's own map */
    int summary_probs;           /* summarise, classification: the mean of the models' class probabilities
                                    (rdsmart's type = "prob") instead of the share of their votes */
    uint32_t iterations;         /* train: models to train, one per iteration */
    uint32_t rounds;             /* train: boosting rounds */
    uint64_t seed;               /* train: run seed; iteration i trains with a seed drawn from (seed, i) */
    char feature_types[GM_WIRE_MAX_BANDS + 1]; /* train: 'q' (number) or 'c' (category) per feature, as XGBoost's
                                    feature_types; "" when every feature is a number */
    uint32_t nparams;            /* train: XGBoost parameters */
    gm_param_t params[GM_JOB_MAX_PARAMS];
    uint32_t noutputs;           /* entries in 'outputs' */
    gm_output_t *outputs;        /* owned; none for a training job */
    uint32_t nmodels;            /* entries in 'models' */
    gm_model_blob_t *models;     /* owned */
    char tasks_ep[GM_JOB_EP_LEN];   /* where workers pull tasks */
    char results_ep[GM_JOB_EP_LEN]; /* where workers push results (the writer binds it) */
    char acks_ep[GM_JOB_EP_LEN];    /* where the writer pushes acks (the reader binds it) */
} gm_job_t;

/* Frees what the job owns and zeroes it; takes a zeroed or filled job. */
void gm_job_clear(gm_job_t *job);
/* Fills 'outputs' from mode, kind, nclass and the summary options. Returns 0, or -1 with 'err'. */
int gm_job_plan_outputs(gm_job_t *job, char *err);
/* Returns the number of blocks across and down, and in all. */
uint32_t gm_job_blocks_x(const gm_job_t *job);
uint32_t gm_job_blocks_y(const gm_job_t *job);
uint32_t gm_job_nblocks(const gm_job_t *job);
/* Gives the pixel window of block 'b'. Returns 0, or -1 if 'b' is outside the plan. */
int gm_job_block_window(const gm_job_t *job, uint32_t b, uint32_t *x, uint32_t *y, uint32_t *w, uint32_t *h);
/* Checks that a task or result header names this job and a block window of its plan. Returns 0, or -1. */
int gm_job_check_block(const gm_job_t *job, const gm_header_t *h, char *err);
/* Returns the number of output tiles across and down, and in all. */
uint32_t gm_job_tiles_x(const gm_job_t *job);
uint32_t gm_job_tiles_y(const gm_job_t *job);
uint32_t gm_job_ntiles(const gm_job_t *job);
/* Returns the most blocks that overlap one output tile (one more per side when misaligned). */
uint32_t gm_job_blocks_per_tile(const gm_job_t *job);
/* Returns the blocks one row of output tiles overlaps (full width; one more block row when misaligned). */
uint32_t gm_job_blocks_per_tile_row(const gm_job_t *job);
/* Returns the fewest blocks the reader must allow in flight for the writer to complete every tile: one tile's
 * blocks and one more when blocks nest in tiles, else a tile row's blocks and one more. */
uint32_t gm_job_min_inflight(const gm_job_t *job);
/* Returns the last output tile (row-major index) block 'b' overlaps: the block is written once that tile is. */
uint32_t gm_job_block_last_tile(const gm_job_t *job, uint32_t b);
/* Fills 'order' (gm_job_nblocks entries) with every block id in the order the reader reads them: tile by tile
 * in row-major order, each tile's blocks not yet listed in row-major order. Blocks then complete output tiles
 * in the order the writer writes them, so neither holds more than a few tiles' worth whatever the width. */
void gm_job_block_order(const gm_job_t *job, uint32_t *order);
/* Returns the size in bytes of output 'o' for a block of w x h pixels. */
size_t gm_job_output_bytes(const gm_output_t *o, uint32_t w, uint32_t h);
/* Sets job->id from a hash of the encoded job (endpoints left out) and its model bytes. Returns 0, or -1 with 'err'. */
int gm_job_compute_id(gm_job_t *job, char *err);
/* Encodes the job as a "job" header frame (malloc'd, caller frees). Returns 0, or -1 with 'err'. */
int gm_job_encode(const gm_job_t *job, void **buf, size_t *len, char *err);
/* Decodes a "job" header frame into 'job' (models get their sizes; the caller attaches the bytes with
 * gm_job_attach_model). Checks every field. Returns 0, or -1 with 'err' (the job is then cleared). */
int gm_job_decode(const void *buf, size_t len, gm_job_t *job, char *err);
/* Copies the bytes of model 'i' into the job, checking the size the header announced. Returns 0, or -1. */
int gm_job_attach_model(gm_job_t *job, uint32_t i, const void *bytes, size_t size, char *err);
/* Decodes a whole "job" message (header frame, then one frame per model) into 'job'.
 * Returns 0, or -1 with 'err' (the job is then cleared). */
int gm_job_from_msg(gm_msg_t *msg, gm_job_t *job, char *err);
/* Returns a new hello message for 'role' ("worker" or "writer"), or NULL when out of memory. */
gm_msg_t *gm_job_hello_msg(const char *role);
/* Returns the width of iteration numbers in file names: 3, or more for over 999 iterations. */
int gm_job_iteration_width(uint32_t iterations);
/* Names the format of model bytes: "json", "ubj" or "bin". */
const char *gm_job_model_format(const void *bytes, size_t size);

#endif
