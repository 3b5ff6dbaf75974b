/* gm_wire.h -- the messages that pass between stages: header frame (msgpack map) + raw payload frames.
 *
 * Every message is one ZeroMQ multipart message. Frame 0 is a msgpack map, the header; it always holds
 * "v" (protocol version) and "t" (message kind). Payload frames follow, raw little-endian arrays whose
 * count, type and size the header (or the job) fixes. common/PROTOCOL.md documents every key. */
#ifndef GM_WIRE_H
#define GM_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define GM_WIRE_VERSION 1              /* protocol version carried in every header as "v" */
#define GM_WIRE_MAX_HEADER (1u << 20)  /* largest header frame accepted, in bytes (a job with its CRS) */
#define GM_WIRE_MAX_FRAMES 4096        /* most frames in one message (a job carries one per model) */
#define GM_WIRE_MAX_BLOCK 8192         /* largest block side, in pixels */
#define GM_WIRE_MAX_BANDS 4096         /* most covariate or output bands */
#define GM_WIRE_MAX_ACKS 65536         /* most block ids in one ack */
#define GM_WIRE_MAX_WRITERS 8          /* most writer shards (--writers) */
#define GM_WIRE_MAX_ITERATIONS 4095    /* highest iteration index */
#define GM_WIRE_MAX_ROWS (1u << 26)    /* most sample rows in one training task */

typedef enum {
    GM_MSG_HELLO = 1, /* peer -> reader control: "send me the job" */
    GM_MSG_JOB,       /* reader -> peer: job description; frames: one per model */
    GM_MSG_TASK,      /* reader -> worker: one block of covariates; frames: one per band */
    GM_MSG_RESULT,    /* worker -> writer: one block of outputs; frames: one per output file */
    GM_MSG_ACK,       /* writer -> reader: blocks durably written; frame: uint32 block ids */
    GM_MSG_DONE,      /* writer -> reader: every output is complete */
    GM_MSG_ERROR,     /* any reply: a request was refused; "msg" says why */
    GM_MSG_TRAIN,     /* reader -> worker: one iteration's samples; frames: features, labels */
    GM_MSG_MODEL,     /* worker -> writer: one iteration's trained model; frame: model bytes */
    GM_MSG_SAVED,     /* writer -> reader: a model is saved; frame: its bytes */
    GM_MSG_HEARTBEAT  /* worker -> reader control: "still alive", every second */
} gm_msg_kind_t;

typedef enum { GM_DT_NONE = 0, GM_DT_U8, GM_DT_U16, GM_DT_I16, GM_DT_U32, GM_DT_I32, GM_DT_F32, GM_DT_F64 } gm_dtype_t;

/* The header of every message but the job (see gm_job.h); fields a kind does not use stay zero. */
typedef struct {
    uint32_t version;   /* "v": protocol version of the sender */
    gm_msg_kind_t kind; /* "t": message kind */
    uint64_t job;       /* "job": job id (task, result, ack, done) */
    uint32_t block;     /* "b": block index in the job's row-major block plan (task, result) */
    uint32_t x, y;      /* "x", "y": block origin in pixels (task, result) */
    uint32_t w, h;      /* "w", "h": block size in pixels (task, result) */
    uint32_t bands;     /* "n": covariate bands in the payload (task) */
    gm_dtype_t dtype;   /* "dt": payload sample type (task: always f32) */
    uint32_t count;     /* "n": block ids in the payload (ack); sample rows (train) */
    uint32_t received;  /* "s" = "recv" (ack): the blocks reached the writer but are not yet written */
    uint32_t writer;    /* "wr" (ack, done, optional, 0 when absent): the sending writer's shard, below GM_WIRE_MAX_WRITERS */
    uint32_t iteration; /* "i": iteration, from 0 (train, model, saved) */
    uint32_t cols;      /* "k": features per sample row (train) */
    char role[16];      /* "role": "worker", "writer" or "stage" (hello) */
    int has_stats;      /* hb: the keys below are present (optional) */
    uint64_t busy_ms, blocked_ms, wait_ms; /* "busy", "blocked", "wait" (hb): the worker's times so far, in ms */
    uint64_t done;      /* "done" (hb): tasks the worker has computed so far */
    uint32_t pid;       /* "pid" (hb, with the times): the worker's process id ... */
    char host[64];      /* "host" (hb, with the times): ... on this host (its name) */
    char text[256];     /* "msg": human-readable reason (error) */
} gm_header_t;

/* Returns the wire name of a message kind ("task"), or NULL for an unknown one. */
const char *gm_msg_kind_name(gm_msg_kind_t kind);
/* Returns the wire name of a sample type ("f32"), or NULL. */
const char *gm_dtype_name(gm_dtype_t dt);
/* Returns the size of one sample in bytes, 0 for GM_DT_NONE. */
size_t gm_dtype_size(gm_dtype_t dt);
/* Parses a wire type name into 'dt'. Returns 0, or -1 for an unknown name. */
int gm_dtype_parse(const char *name, size_t len, gm_dtype_t *dt);

/* Encodes 'h' as a header frame into a malloc'd buffer the caller frees. Returns 0, or -1 with 'err'. */
int gm_wire_encode(const gm_header_t *h, void **buf, size_t *len, char *err);
/* Decodes one header frame, checking every field's type and range and the keys its kind needs.
 * Returns 0, or -1 with the reason in 'err'. A job header decodes here to its kind and version only. */
int gm_wire_decode(const void *buf, size_t len, gm_header_t *h, char *err);
/* Reads only the version and kind of a header frame. Returns 0, or -1 with 'err'. */
int gm_wire_peek(const void *buf, size_t len, uint32_t *version, gm_msg_kind_t *kind, char *err);

#endif
