/* gm_ctree.h -- trees padded to complete binary trees and walked 16 rows at a time with AVX-512: per level a
 * lookup table of thresholds and features instead of node pointers, each row's feature value picked from
 * registers by blends instead of gathers, and leaves added to the margins tree after tree, as XGBoost adds
 * them, so the sums are the same bits. Used by gm_forest for forests it can take (see gm_ctrees_new). */
#ifndef GM_CTREE_H
#define GM_CTREE_H

#include <stddef.h>
#include <stdint.h>

#define GM_CTREE_MAX_DEPTH 6     /* deeper trees are left to the scalar walk */
#define GM_CTREE_MAX_FEATURES 16 /* features a row may have: all of them stay in registers */
#define GM_CTREE_MAX_GROUPS 64   /* output groups (classes) */

/* One node of a source tree: a split (left >= 0: rows with value < threshold go left) or a leaf
 * (left < 0) whose value is 'value'. Nodes are indexed from the tree's root, 0. */
typedef struct {
    int32_t left, right;
    uint32_t feature;
    float value; /* threshold of a split, value of a leaf */
} gm_ctree_node_t;

typedef struct gm_ctrees gm_ctrees_t;

/* Rows a caller's own walk takes instead (rows with a NaN): adds every tree's leaf to m[i * groups + g]. */
typedef void (*gm_ctree_fallback_fn)(const void *ctx, const float *rows, size_t n, uint32_t ncols, float *m);

/* Builds the padded tables of 'ntrees' trees (tree t: nodes[start[t]] .. nodes[start[t + 1] - 1], adding to
 * group group[t]) over 'nfeature' features. Returns NULL with 'err' saying why when this CPU has no AVX-512F
 * or the forest exceeds the limits above; the caller then keeps its own walk. The caller owns the result. */
gm_ctrees_t *gm_ctrees_new(const gm_ctree_node_t *nodes, const uint32_t *start, const uint32_t *group,
                           uint32_t ntrees, uint32_t nfeature, uint32_t groups, char *err);
/* Adds every tree's leaf to the margins m[i * groups + g] of 'n' rows of 'ncols' >= nfeature floats, in
 * tree order. Rows holding a NaN take 'fallback' (16 rows at a time around them). */
void gm_ctrees_margins(const gm_ctrees_t *self, const float *rows, size_t n, uint32_t ncols, float *m,
                       gm_ctree_fallback_fn fallback, const void *ctx);
/* The same margins for 'n' rows held by feature, x[k * xstride + i] the feature k of row i, written by group,
 * m[g * n + i], each the sum of 'base' and the trees' leaves in tree order: contiguous loads and stores instead
 * of gathers and per-row stores, for models of few trees. Returns 0, or -1 when a row holds a NaN (the row
 * walk's fallback takes those): m is then not usable. */
int gm_ctrees_margins_cols(const gm_ctrees_t *self, const float *x, size_t xstride, size_t n, float base, float *m);
/* Frees the tables; takes NULL and sets the caller's pointer to NULL. */
void gm_ctrees_destroy(gm_ctrees_t **self_p);

#endif
