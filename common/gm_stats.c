/* gm_stats.c -- where a stage's time goes, sampled on a timer and written as a small JSON file. */
#include "gm_stats.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "gm_log.h"

void gm_stats_init(gm_stats_t *s, uint64_t now_ns) {
    memset(s, 0, sizeof *s);
    s->start_ns = s->last_ns = now_ns;
}

void gm_stats_sample(gm_stats_t *s, gm_stats_state_t state, uint64_t now_ns) {
    if (now_ns > s->last_ns) s->in_state_ns[state] += now_ns - s->last_ns;
    s->last_ns = now_ns;
}

int gm_stats_write(const gm_stats_t *s, const char *path, const char *extra, char *err) {
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.part", path) >= (int)sizeof tmp) return gm_err(err, "%s: path too long", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return gm_err(err, "%s: cannot write: %s", tmp, strerror(errno));
    fprintf(f, "{\"stage\": \"%s\", \"pid\": %d, \"wall_s\": %.3f, \"busy_s\": %.3f, \"wait_s\": %.3f, \"blocked_s\": %.3f%s%s}\n",
            gm_log_stage(), (int)getpid(), (s->last_ns - s->start_ns) / 1e9, s->in_state_ns[GM_STATS_BUSY] / 1e9,
            s->in_state_ns[GM_STATS_WAIT] / 1e9, s->in_state_ns[GM_STATS_BLOCKED] / 1e9, extra && *extra ? ", " : "",
            extra ? extra : "");
    if (fclose(f) != 0 || rename(tmp, path) != 0) return gm_err(err, "%s: cannot write: %s", path, strerror(errno));
    return 0;
}
