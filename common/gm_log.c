/* gm_log.c -- one-line logging on stderr: ISO time, stage, pid, level, message. */
#include "gm_log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static char stage_name[64] = "gridmill";
static gm_log_level_t verbosity = GM_LOG_INFO;
static FILE *log_file;

void gm_log_init(const char *stage, gm_log_level_t max_level) {
    snprintf(stage_name, sizeof stage_name, "%s", stage);
    verbosity = max_level;
}

int gm_log_open_file(const char *path, char *err) {
    FILE *f = fopen(path, "a");
    if (!f) return gm_err(err, "%s: cannot open log file: %s", path, strerror(errno));
    setvbuf(f, NULL, _IOLBF, 0);
    log_file = f;
    return 0;
}

const char *gm_log_stage(void) { return stage_name; }

void gm_log(gm_log_level_t level, const char *fmt, ...) {
    static const char *names[] = {"error", "loss", "warn", "info", "debug"};
    if (level > verbosity) return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    char line[2300];
    snprintf(line, sizeof line, "%s.%03dZ %s[%d] %s: %s\n", when, (int)(tv.tv_usec / 1000), stage_name,
             (int)getpid(), names[level], msg);
    fputs(line, stderr);
    if (log_file) fputs(line, log_file);
}

int gm_err(char *err, const char *fmt, ...) {
    if (!err) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, GM_ERR_LEN, fmt, ap);
    va_end(ap);
    return -1;
}
