/* gm_cli.c -- what every stage's command line shares: common options, values, version, set-up. */
#include "gm_cli.h"

#include <cpl_conv.h>
#include <gdal.h>
#include <msgpack.h>
#include <signal.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>
#include <uv.h>
#include <xgboost/c_api.h>
#include <zmq.h>

#include "gm_log.h"
#include "gm_sock.h"

int gm_cli_builtin(int argc, char **argv, int *i, gm_cli_common_t *c, const char *program, const char *usage,
                   char *err) {
    int rc = gm_cli_common(argc, argv, i, c, err);
    if (rc != 0) return rc;
    if (!strcmp(argv[*i], "--help")) {
        fputs(usage, stdout);
        return 2;
    }
    if (!strcmp(argv[*i], "--version")) {
        gm_cli_print_version(program);
        return 2;
    }
    return 0;
}

const char *gm_cli_value(int argc, char **argv, int *i, char *err) {
    if (*i + 1 >= argc) {
        gm_err(err, "option %s needs a value", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

int gm_cli_common(int argc, char **argv, int *i, gm_cli_common_t *c, char *err) {
    const char *a = argv[*i];
    if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
        c->quiet = 1;
        return 1;
    }
    if (!strcmp(a, "--verbose")) {
        c->verbose = 1;
        return 1;
    }
    if (!strcmp(a, "--log-file")) {
        if (!(c->log_file = gm_cli_value(argc, argv, i, err))) return -1;
        return 1;
    }
    if (!strcmp(a, "--curve")) {
        if (!(c->curve = gm_cli_value(argc, argv, i, err))) return -1;
        return 1;
    }
    if (!strcmp(a, "--stats")) {
        if (!(c->stats_file = gm_cli_value(argc, argv, i, err))) return -1;
        return 1;
    }
    if (!strcmp(a, "--config")) {
        if (*i + 2 >= argc) return gm_err(err, "option --config needs KEY and VALUE");
        CPLSetConfigOption(argv[*i + 1], argv[*i + 2]);
        *i += 2;
        return 1;
    }
    return 0;
}

int gm_cli_uint(const char *opt, const char *val, uint32_t lo, uint32_t hi, uint32_t *out, char *err) {
    char *end;
    unsigned long long v = strtoull(val, &end, 10);
    if (!*val || *end || val[0] == '-' || v < lo || v > hi)
        return gm_err(err, "option %s: \"%s\" is not an integer from %u to %u", opt, val, lo, hi);
    *out = (uint32_t)v;
    return 0;
}

void gm_cli_print_version(const char *program) {
    int zmaj, zmin, zpat, xmaj, xmin, xpat;
    zmq_version(&zmaj, &zmin, &zpat);
    XGBoostVersion(&xmaj, &xmin, &xpat);
    printf("%s %s (GDAL %s, ZeroMQ %d.%d.%d, libuv %s, msgpack-c %s, XGBoost %d.%d.%d, protocol 1)\n", program,
           GM_VERSION, GDALVersionInfo("RELEASE_NAME"), zmaj, zmin, zpat, uv_version_string(), msgpack_version(), xmaj,
           xmin, xpat);
}

int gm_cli_setup(const char *stage, const gm_cli_common_t *c, char *err) {
    gm_log_init(stage, c->quiet ? GM_LOG_LOSS : c->verbose ? GM_LOG_DEBUG : GM_LOG_INFO); /* lost data: always */
    if (c->log_file && gm_log_open_file(c->log_file, err) < 0) return -1;
    if (c->curve && gm_sock_curve_load(c->curve, err) < 0) return -1;
    signal(SIGPIPE, SIG_IGN);
    /* Block buffers of a few MiB come and go all run long: keep freed ones for the next block instead of
     * handing them back to the kernel and faulting them in again (glibc's default for buffers this size). */
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
    const char *sup = getenv("GRIDMILL_SUPERVISOR_PID");
    if (sup && *sup) {
        pid_t want = (pid_t)strtol(sup, NULL, 10);
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != want) return gm_err(err, "supervisor %d is gone", (int)want);
    }
    return 0;
}

unsigned gm_cli_debug_delay_ms(void) {
    /* GRIDMILL_DEBUG_DELAY_MS_WRITER (READER, WORKER) slows one stage; GRIDMILL_DEBUG_DELAY_MS all of them */
    char name[64];
    const char *stage = gm_log_stage(), *dash = strrchr(stage, '-');
    snprintf(name, sizeof name, "GRIDMILL_DEBUG_DELAY_MS_%s", dash ? dash + 1 : stage);
    for (char *c = name; *c; c++) *c = (char)(*c >= 'a' && *c <= 'z' ? *c - 32 : *c);
    const char *d = getenv(name);
    if (!d) d = getenv("GRIDMILL_DEBUG_DELAY_MS");
    return d ? (unsigned)strtoul(d, NULL, 10) : 0;
}
