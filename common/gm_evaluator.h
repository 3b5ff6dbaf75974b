/* gm_evaluator.h -- which evaluator applies the models: the one place GRIDMILL_EVALUATOR is read.
 *
 * GRIDMILL_EVALUATOR unset (or "auto"): gridmill's own evaluator on the fastest path this CPU runs (AVX-512F,
 * else AVX2, else portable C); "avx512", "avx2", "portable": that path, refused when the CPU lacks it;
 * "scalar": the plain scalar walk (for benchmarks); "xgboost": XGBoost's own predictor. Every path gives the
 * same bits. Any other value is refused. */
#ifndef GM_EVALUATOR_H
#define GM_EVALUATOR_H

typedef enum {
    GM_EVAL_AUTO = 0,
    GM_EVAL_AVX512,
    GM_EVAL_AVX2,
    GM_EVAL_PORTABLE,
    GM_EVAL_SCALAR,
    GM_EVAL_XGBOOST
} gm_eval_t;

/* Reads GRIDMILL_EVALUATOR into '*choice'. Returns 0, or -1 with 'err' (one line naming the variable and
 * what is wrong: an unknown value, or a path this CPU lacks). */
int gm_evaluator_choice(gm_eval_t *choice, char *err);
/* Returns GRIDMILL_EVALUATOR's choice, GM_EVAL_AUTO when it is unset or not valid (gm_evaluator_choice
 * says why). */
gm_eval_t gm_evaluator(void);
/* Returns 1 when the AVX-512F code may run: the CPU has it and the choice is auto or avx512. */
int gm_evaluator_avx512(void);

#endif
