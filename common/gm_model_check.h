/* gm_model_check.h -- an XGBoost model checked whole before XGBoost or gridmill's evaluator touches it: the
 * booster kind, the tree count, and every tree's structure (array lengths, child and parent indices in range,
 * no node reached twice from the root, split features below num_feature, categorical splits in range), so a
 * corrupt file is one line naming it and the tree, never a crash, a hang or a silently wrong map.
 *
 * Accepted as XGBoost 1.7 writes them: gbtree and dart boosters, and nodes no path from the root reaches
 * (the exact and prune updaters leave deleted nodes in the trees they write). */
#ifndef GM_MODEL_CHECK_H
#define GM_MODEL_CHECK_H

#include <stddef.h>

/* Checks the bytes of a model file before XGBoost parses them: a JSON or UBJSON model whole (as
 * gm_model_check_json). Returns 1 when checked, 0 for a format it does not read (XGBoost's legacy binary: check
 * the JSON XGBoost exports once it has loaded it), or -1 with 'err' ("WHAT: tree N: what is wrong"). */
int gm_model_check_bytes(const void *bytes, size_t len, const char *what, char *err);
/* Checks a model in XGBoost's JSON format. Returns 0, or -1 with 'err': "WHAT: tree N: what is wrong" for a
 * fault in tree N (its place in the trees list), "WHAT: what is wrong" for a model-level fault. */
int gm_model_check_json(const char *json, size_t len, const char *what, char *err);
/* Checks a model in XGBoost's UBJSON format (.ubj) as gm_model_check_json does. Returns 0, or -1 with 'err'. */
int gm_model_check_ubjson(const void *ubj, size_t len, const char *what, char *err);

#endif
