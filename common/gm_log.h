/* gm_log.h -- one-line logging on stderr: ISO time, stage, pid, level, message. */
#ifndef GM_LOG_H
#define GM_LOG_H

#include <stdarg.h>

#define GM_ERR_LEN 512 /* size of every caller-supplied error buffer */

/* GM_LOG_LOSS is a warning that data is lost (points not drawn, a polygon skipped): it is never hidden, not
 * even by -q; its lines carry the level "loss". */
typedef enum { GM_LOG_ERROR = 0, GM_LOG_LOSS, GM_LOG_WARN, GM_LOG_INFO, GM_LOG_DEBUG } gm_log_level_t;

/* Sets the stage name printed on every line and the most verbose level shown. */
void gm_log_init(const char *stage, gm_log_level_t max_level);
/* Also appends every line to 'path'. Returns 0, or -1 with the reason in 'err'. */
int gm_log_open_file(const char *path, char *err);
/* Returns the stage name set by gm_log_init ("gridmill" before it). */
const char *gm_log_stage(void);
/* Prints one line if 'level' is within the configured verbosity. */
void gm_log(gm_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Writes a formatted message into 'err' (GM_ERR_LEN bytes); returns -1 for 'return gm_err(...)'. */
int gm_err(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
