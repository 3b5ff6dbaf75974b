/* gm_stats.h -- where a stage's time goes: busy, blocked on output, or waiting for input, sampled on a timer
 * and written as a small JSON file the supervisor reads for its progress line and bottleneck report. */
#ifndef GM_STATS_H
#define GM_STATS_H

#include <stdint.h>

typedef enum { GM_STATS_WAIT = 0, GM_STATS_BUSY, GM_STATS_BLOCKED } gm_stats_state_t;

typedef struct {
    uint64_t start_ns;        /* uv_hrtime() at gm_stats_init */
    uint64_t last_ns;         /* of the last sample */
    uint64_t in_state_ns[3];  /* time in each gm_stats_state_t */
} gm_stats_t;

/* Starts the clock at 'now_ns' (uv_hrtime()). */
void gm_stats_init(gm_stats_t *s, uint64_t now_ns);
/* Adds the time since the last sample to 'state': the state the stage was in over that interval. */
void gm_stats_sample(gm_stats_t *s, gm_stats_state_t state, uint64_t now_ns);
/* Writes {"stage":..., "pid":..., "wall_s":..., "busy_s":..., "wait_s":..., "blocked_s":..., <extra>} to 'path'
 * atomically (a temporary file, then rename). 'extra' is more JSON members ("a": 1, "b": {...}) or "".
 * Returns 0, or -1 with 'err'. */
int gm_stats_write(const gm_stats_t *s, const char *path, const char *extra, char *err);

#endif
