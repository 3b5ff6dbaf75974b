/* gm_evaluator.c -- GRIDMILL_EVALUATOR, read and checked once. */
#include "gm_evaluator.h"

#include <stdlib.h>
#include <string.h>

#include "gm_gtree.h"
#include "gm_log.h"

int gm_evaluator_choice(gm_eval_t *choice, char *err) {
    static const char *names[] = {"auto", "avx512", "avx2", "portable", "scalar", "xgboost"};
    const char *v = getenv("GRIDMILL_EVALUATOR");
    *choice = GM_EVAL_AUTO;
    if (!v || !*v) return 0;
    for (int k = 0; k < 6; k++)
        if (!strcmp(v, names[k])) {
            *choice = (gm_eval_t)k;
            gm_gtree_path_t path = k == GM_EVAL_AVX512 ? GM_GTREE_AVX512 : k == GM_EVAL_AVX2 ? GM_GTREE_AVX2 : GM_GTREE_AUTO;
            char why[GM_ERR_LEN];
            if (path != GM_GTREE_AUTO && gm_gtree_path_check(path, why) < 0) {
                *choice = GM_EVAL_AUTO;
                return gm_err(err, "GRIDMILL_EVALUATOR=%s: %s", v, why);
            }
            return 0;
        }
    return gm_err(err, "GRIDMILL_EVALUATOR=%s: not auto, avx512, avx2, portable, scalar or xgboost", v);
}

gm_eval_t gm_evaluator(void) {
    gm_eval_t choice;
    char err[GM_ERR_LEN];
    return gm_evaluator_choice(&choice, err) == 0 ? choice : GM_EVAL_AUTO;
}

int gm_evaluator_avx512(void) {
    gm_eval_t c = gm_evaluator();
    char why[GM_ERR_LEN];
    return (c == GM_EVAL_AUTO || c == GM_EVAL_AVX512) && gm_gtree_path_check(GM_GTREE_AVX512, why) == 0;
}
