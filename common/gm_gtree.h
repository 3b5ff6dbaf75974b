/* gm_gtree.h -- the gathered walk: tree ensembles of any depth and feature count applied to blocks of rows
 * with AVX-512F (16 rows a vector), AVX2 (8 rows) or portable C, chosen at run time. Each row's node index
 * lives in a vector lane; each level gathers the lanes' nodes (8 bytes each) and the lanes' feature values,
 * compares, and steps; leaves keep their lanes where they are. The leaves are then added to each row's margins
 * tree after tree, in float, as XGBoost 1.7's predictor adds them, so the sums are the same bits. Rows whose
 * value is NaN take the node's default direction, as in XGBoost; every path gives the same bits. The object is
 * read-only once built: any number of threads may apply it at once. */
#ifndef GM_GTREE_H
#define GM_GTREE_H

#include <stddef.h>
#include <stdint.h>

/* Which walk applies the trees. */
typedef enum {
    GM_GTREE_AUTO = 0, /* the fastest this CPU runs */
    GM_GTREE_PORTABLE, /* plain C, any CPU (and valgrind) */
    GM_GTREE_AVX2,     /* AVX2 and FMA, 8 rows a vector */
    GM_GTREE_AVX512    /* AVX-512F, 16 rows a vector */
} gm_gtree_path_t;

/* One node of a source tree, indexed from its tree's root, 0: a split sends a row whose value of 'feature' is
 * below 'value' to 'left', any other to 'right', and a NaN to 'left' when 'default_left' is nonzero; a leaf
 * (left < 0, or left equal to its own index) holds its value in 'value'. */
typedef struct {
    int32_t left, right;
    uint32_t feature;
    float value;
    uint32_t default_left;
} gm_gtree_node_t;

typedef struct gm_gtrees gm_gtrees_t;

/* Returns the path's name: "auto", "portable", "avx2" or "avx512". */
const char *gm_gtree_path_name(gm_gtree_path_t path);
/* Reads a path's name (as gm_gtree_path_name writes it) into '*path'. Returns 0, or -1 with 'err'. */
int gm_gtree_path_parse(const char *name, gm_gtree_path_t *path, char *err);
/* Returns 0 when this CPU (and build) runs 'path', else -1 with 'err' saying what it lacks, e.g.
 * "this CPU has no AVX-512F". */
int gm_gtree_path_check(gm_gtree_path_t path, char *err);
/* Returns the fastest path this CPU runs; 'why' (GM_ERR_LEN bytes, or NULL) says why no faster one, or is
 * empty when this is the fastest there is. */
gm_gtree_path_t gm_gtree_path_best(char *why);

/* Builds the walk of 'ntrees' trees (tree t: nodes[start[t]] .. nodes[start[t + 1] - 1], adding to output
 * group group[t] < 'groups') over rows of 'nfeature' features, for 'path' (GM_GTREE_AUTO: the best this CPU
 * runs). Returns NULL with 'err' when this CPU lacks the path or a tree is malformed (a node reached twice or
 * never, a child out of range, a split on a feature >= nfeature, a NaN threshold) or too large for the 8-byte
 * nodes: a tree holds at most 2^(31 - bits of nfeature) nodes (over 4 million at 256 features). The caller
 * owns the result and may free the nodes. */
gm_gtrees_t *gm_gtrees_new(const gm_gtree_node_t *nodes, const uint32_t *start, const uint32_t *group,
                           uint32_t ntrees, uint32_t nfeature, uint32_t groups, gm_gtree_path_t path, char *err);
/* Returns the path this walk takes (never GM_GTREE_AUTO). */
gm_gtree_path_t gm_gtrees_path(const gm_gtrees_t *self);
/* Returns the bytes the walk holds: 8 per node and 716 per tree (704 of them its top six levels as tables). */
size_t gm_gtrees_bytes(const gm_gtrees_t *self);
/* Adds every tree's leaf to the margins m[i * groups + g] of 'n' rows of 'ncols' >= nfeature floats (row i
 * at rows + i * ncols), tree after tree. Each call mallocs a scratch of (nfeature + 1 + groups) x 64 floats
 * (x 256 for forests of over 256 KiB of nodes). Returns 0, or -1 when out of memory for it (m untouched). */
int gm_gtrees_margins(const gm_gtrees_t *self, const float *rows, size_t n, uint32_t ncols, float *m);
/* The margins of 'n' rows held by feature (x[k * xstride + i], feature k of row i), written by group,
 * m[g * n + i]: 'base' plus every tree's leaf in tree order, the same bits as gm_gtrees_margins's. Returns 0,
 * or -1 when out of memory (m untouched). */
int gm_gtrees_margins_cols(const gm_gtrees_t *self, const float *x, size_t xstride, size_t n, float base, float *m);
/* Frees the walk; takes NULL and sets the caller's pointer to NULL. */
void gm_gtrees_destroy(gm_gtrees_t **self_p);

#endif
