/* gm_cli.h -- what every stage's command line shares: GDAL-style common options, values, version text,
 * and the process set-up a supervised stage needs. */
#ifndef GM_CLI_H
#define GM_CLI_H

#include <stdint.h>

#define GM_VERSION "0.1.0"

/* Options every executable accepts. */
typedef struct {
    int quiet;            /* -q: errors only */
    int verbose;          /* --verbose: debug lines too */
    const char *log_file; /* --log-file PATH: also append log lines here */
    const char *stats_file; /* --stats PATH: where the stage keeps its time and progress (JSON) */
    const char *curve;    /* --curve KEYFILE: secure every socket with this CURVE key file (NULL: none) */
} gm_cli_common_t;

/* Handles the common option at argv[*i] (-q, --quiet, --verbose, --log-file F, --config KEY VALUE, --curve F),
 * advancing *i past its values. Returns 1 if consumed, 0 if not a common option, -1 with 'err'. */
int gm_cli_common(int argc, char **argv, int *i, gm_cli_common_t *c, char *err);
/* Handles argv[*i] if it is a common option (as gm_cli_common), --help (prints 'usage' on stdout) or --version
 * (prints 'program's version). Returns 1 if consumed, 2 if --help or --version was served (the caller stops
 * with success), 0 if none of them, -1 with 'err'. */
int gm_cli_builtin(int argc, char **argv, int *i, gm_cli_common_t *c, const char *program, const char *usage,
                   char *err);
/* Returns the value following option argv[*i] and advances *i, or NULL with 'err' if there is none. */
const char *gm_cli_value(int argc, char **argv, int *i, char *err);
/* Parses 'val' of option 'opt' as an integer in [lo, hi]. Returns 0, or -1 with 'err'. */
int gm_cli_uint(const char *opt, const char *val, uint32_t lo, uint32_t hi, uint32_t *out, char *err);
/* Prints "PROGRAM VERSION" with the versions of the libraries linked in, on stdout. */
void gm_cli_print_version(const char *program);
/* Sets up logging for 'stage', loads the --curve key file (every socket gm_sock binds or connects from then on
 * is CURVE-secured: see gm_sock.h) and, when the environment names a supervisor (GRIDMILL_SUPERVISOR_PID equal
 * to our parent), asks the kernel to send SIGTERM if the supervisor dies. Returns 0, or -1 with 'err'. */
int gm_cli_setup(const char *stage, const gm_cli_common_t *c, char *err);
/* Returns the per-block delay tests ask for to slow stages: GRIDMILL_DEBUG_DELAY_MS_<STAGE> (READER, WORKER,
 * WRITER) for this stage alone, else GRIDMILL_DEBUG_DELAY_MS for every stage, else 0. Call after gm_cli_setup. */
unsigned gm_cli_debug_delay_ms(void);

#endif
