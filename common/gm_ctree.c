/* gm_ctree.c -- complete-tree tables and their AVX-512 walk, 16 rows at a time (see gm_ctree.h).
 *
 * A tree of depth D becomes a complete tree of depth D: a leaf above the last level turns into a split no
 * finite value passes (threshold +inf, so the row goes left; +inf itself goes right) whose two subtrees
 * repeat the leaf, so every path gives the leaf's value. A row then sits at index j of level L and goes to
 * 2j + !(x < threshold) of level L + 1: no node pointers, only per-level tables, looked up for 16 rows at
 * once with vpermps. Tables per tree, 64 entries each, 64-byte aligned:
 *   thr/feat [0, 16)  levels 0-3 (entry 2^L - 1 + j), [16, 32) level 4, [32, 64) level 5;
 *   leaf     [0, 64)  the 2^D values of the last level. */
#include "gm_ctree.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gm_log.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define GM_CTREE_X86 1
#endif

#define TABLE 64 /* entries per tree of each table */

struct gm_ctrees {
    uint32_t ntrees, nfeature, groups, kp; /* kp: features rounded up to a power of two */
    uint8_t *depth;                        /* per tree */
    uint32_t *group;                       /* per tree */
    float *thr;                            /* ntrees * TABLE */
    int32_t *feat;                         /* ntrees * TABLE */
    float *leaf;                           /* ntrees * TABLE */
};

/* The table slot of node j of level L. */
static uint32_t slot(uint32_t level, uint32_t j) { return level < 4 ? (1u << level) - 1 + j : level == 4 ? 16 + j : 32 + j; }

/* Measures the depth of the tree rooted at 'k'; -1 when it exceeds 'limit' or is malformed. */
static int tree_depth(const gm_ctree_node_t *nd, uint32_t count, uint32_t k, int limit) {
    if (k >= count) return -1;
    if (nd[k].left < 0) return 0;
    if (limit == 0) return -1;
    int l = tree_depth(nd, count, (uint32_t)nd[k].left, limit - 1), r = tree_depth(nd, count, (uint32_t)nd[k].right, limit - 1);
    if (l < 0 || r < 0) return -1;
    return 1 + (l > r ? l : r);
}

/* Fills the tables from node 'k' placed at index j of 'level' in a tree of depth 'depth'. */
static void fill(const gm_ctree_node_t *nd, uint32_t k, uint32_t level, uint32_t j, uint32_t depth, float *thr,
                 int32_t *feat, float *leaf) {
    if (level == depth) {
        leaf[j] = nd[k].value;
        return;
    }
    int is_leaf = nd[k].left < 0;
    thr[slot(level, j)] = is_leaf ? INFINITY : nd[k].value;
    feat[slot(level, j)] = is_leaf ? 0 : (int32_t)nd[k].feature;
    fill(nd, is_leaf ? k : (uint32_t)nd[k].left, level + 1, 2 * j, depth, thr, feat, leaf);
    fill(nd, is_leaf ? k : (uint32_t)nd[k].right, level + 1, 2 * j + 1, depth, thr, feat, leaf);
}

gm_ctrees_t *gm_ctrees_new(const gm_ctree_node_t *nodes, const uint32_t *start, const uint32_t *group,
                           uint32_t ntrees, uint32_t nfeature, uint32_t groups, char *err) {
#ifndef GM_CTREE_X86
    (void)nodes, (void)start, (void)group, (void)ntrees, (void)nfeature, (void)groups;
    gm_err(err, "not an x86-64 build");
    return NULL;
#else
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f")) return gm_err(err, "this CPU has no AVX-512F"), NULL;
    if (nfeature == 0 || nfeature > GM_CTREE_MAX_FEATURES)
        return gm_err(err, "%u features (the 16-row walk takes 1 to %d)", nfeature, GM_CTREE_MAX_FEATURES), NULL;
    if (groups == 0 || groups > GM_CTREE_MAX_GROUPS)
        return gm_err(err, "%u output groups (the 16-row walk takes up to %d)", groups, GM_CTREE_MAX_GROUPS), NULL;
    gm_ctrees_t *self = calloc(1, sizeof *self);
    if (!self) return gm_err(err, "out of memory"), NULL;
    self->ntrees = ntrees;
    self->nfeature = nfeature;
    self->groups = groups;
    for (self->kp = 1; self->kp < nfeature; self->kp *= 2) {
    }
    size_t bytes = ((size_t)ntrees ? ntrees : 1) * TABLE * sizeof(float);
    self->depth = malloc(ntrees ? ntrees : 1);
    self->group = malloc((ntrees ? ntrees : 1) * sizeof *self->group);
    self->thr = aligned_alloc(64, bytes);
    self->feat = aligned_alloc(64, bytes);
    self->leaf = aligned_alloc(64, bytes);
    if (!self->depth || !self->group || !self->thr || !self->feat || !self->leaf) {
        gm_ctrees_destroy(&self);
        return gm_err(err, "out of memory for %u trees", ntrees), NULL;
    }
    memset(self->feat, 0, bytes);
    for (uint32_t t = 0; t < ntrees; t++) {
        const gm_ctree_node_t *nd = nodes + start[t];
        uint32_t count = start[t + 1] - start[t];
        int d = tree_depth(nd, count, 0, GM_CTREE_MAX_DEPTH);
        if (d < 0 || group[t] >= groups) {
            gm_ctrees_destroy(&self);
            if (group[t] >= groups) return gm_err(err, "tree %u adds to group %u of %u", t, group[t], groups), NULL;
            return gm_err(err, "tree %u is deeper than %d levels", t, GM_CTREE_MAX_DEPTH), NULL;
        }
        for (uint32_t i = 0; i < count; i++)
            if (nd[i].left >= 0 && nd[i].feature >= nfeature) {
                gm_ctrees_destroy(&self);
                return gm_err(err, "tree %u splits on feature %u of %u", t, nd[i].feature, nfeature), NULL;
            }
        self->depth[t] = (uint8_t)d;
        self->group[t] = group[t];
        float *thr = self->thr + (size_t)t * TABLE, *leaf = self->leaf + (size_t)t * TABLE;
        for (uint32_t i = 0; i < TABLE; i++) thr[i] = leaf[i] = 0.0f;
        fill(nd, 0, 0, 0, (uint32_t)d, thr, self->feat + (size_t)t * TABLE, leaf);
    }
    return self;
#endif
}

#ifdef GM_CTREE_X86
#define AVX512 __attribute__((target("avx512f")))
#define INLINE static inline __attribute__((always_inline, target("avx512f")))

/* Each lane's value of feature f[lane], from x[0 .. KP-1] (feature k of the 16 rows in x[k]). */
INLINE __m512 pick(const __m512 *x, __m512i f, const uint32_t KP) {
    if (KP == 1) return x[0];
    __m512 a[8];
    __mmask16 b = _mm512_test_epi32_mask(f, _mm512_set1_epi32(1));
    for (uint32_t i = 0; i < KP / 2; i++) a[i] = _mm512_mask_blend_ps(b, x[2 * i], x[2 * i + 1]);
    for (uint32_t bit = 2, n = KP / 2; n > 1; bit *= 2, n /= 2) {
        b = _mm512_test_epi32_mask(f, _mm512_set1_epi32((int)bit));
        for (uint32_t i = 0; i < n / 2; i++) a[i] = _mm512_mask_blend_ps(b, a[2 * i], a[2 * i + 1]);
    }
    return a[0];
}

/* The leaf values of 16 rows at indices j of a tree of depth 'depth'. */
INLINE __m512 leaves(const float *leaf, __m512i j, uint32_t depth) {
    if (depth <= 4) return _mm512_permutexvar_ps(j, _mm512_load_ps(leaf));
    __m512 lo = _mm512_permutex2var_ps(_mm512_load_ps(leaf), j, _mm512_load_ps(leaf + 16));
    if (depth == 5) return lo;
    __m512 hi = _mm512_permutex2var_ps(_mm512_load_ps(leaf + 32), j, _mm512_load_ps(leaf + 48));
    return _mm512_mask_blend_ps(_mm512_test_epi32_mask(j, _mm512_set1_epi32(32)), lo, hi);
}

/* The thresholds and features of 16 rows at indices j of 'level' of one tree's tables. */
INLINE void lookup(const float *thr, const int32_t *feat, uint32_t level, __m512i j, __m512 *th, __m512i *f) {
    if (level < 4) {
        __m512i at = _mm512_add_epi32(j, _mm512_set1_epi32((1 << level) - 1));
        *th = _mm512_permutexvar_ps(at, _mm512_load_ps(thr));
        *f = _mm512_permutexvar_epi32(at, _mm512_load_si512(feat));
    } else if (level == 4) {
        *th = _mm512_permutexvar_ps(j, _mm512_load_ps(thr + 16));
        *f = _mm512_permutexvar_epi32(j, _mm512_load_si512(feat + 16));
    } else {
        *th = _mm512_permutex2var_ps(_mm512_load_ps(thr + 32), j, _mm512_load_ps(thr + 48));
        *f = _mm512_permutex2var_epi32(_mm512_load_si512(feat + 32), j, _mm512_load_si512(feat + 48));
    }
}

/* Index j of the next level: 2j, plus 1 for the rows whose value is not below the threshold. */
INLINE __m512i step(__m512i j, __m512 x, __m512 th) {
    __mmask16 right = _mm512_cmp_ps_mask(x, th, _CMP_NLT_UQ);
    j = _mm512_slli_epi32(j, 1);
    return _mm512_mask_add_epi32(j, right, j, _mm512_set1_epi32(1));
}

/* Levels 0-2 of one tree (or fewer, by its depth) for 16 rows. They hold at most 4 nodes each, so each row's
 * value and threshold are picked by blends on the outcomes of the levels above, from the tree's own entries:
 * no table lookup and no per-lane feature index, the costliest part of a deeper level. Returns the rows'
 * indices j at level min(depth, 3). */
INLINE __m512i top(const float *thr, const int32_t *feat, const __m512 *x, uint32_t depth) {
    if (depth == 0) return _mm512_setzero_si512();
    const __m512i one = _mm512_set1_epi32(1);
    __mmask16 r0 = _mm512_cmp_ps_mask(x[feat[0]], _mm512_set1_ps(thr[0]), _CMP_NLT_UQ);
    if (depth == 1) return _mm512_maskz_mov_epi32(r0, one);
    __m512 v1 = _mm512_mask_blend_ps(r0, x[feat[1]], x[feat[2]]);
    __m512 t1 = _mm512_mask_blend_ps(r0, _mm512_set1_ps(thr[1]), _mm512_set1_ps(thr[2]));
    __mmask16 r1 = _mm512_cmp_ps_mask(v1, t1, _CMP_NLT_UQ);
    __m512i j = _mm512_maskz_mov_epi32(r0, _mm512_set1_epi32(2));
    if (depth == 2) return _mm512_mask_or_epi32(j, r1, j, one);
    /* level 2: node 2 r0 + r1, in slots 3-6 */
    __m512 v2 = _mm512_mask_blend_ps(r0, _mm512_mask_blend_ps(r1, x[feat[3]], x[feat[4]]),
                                     _mm512_mask_blend_ps(r1, x[feat[5]], x[feat[6]]));
    __m512 t2 = _mm512_mask_blend_ps(r0, _mm512_mask_blend_ps(r1, _mm512_set1_ps(thr[3]), _mm512_set1_ps(thr[4])),
                                     _mm512_mask_blend_ps(r1, _mm512_set1_ps(thr[5]), _mm512_set1_ps(thr[6])));
    __mmask16 r2 = _mm512_cmp_ps_mask(v2, t2, _CMP_NLT_UQ);
    j = _mm512_slli_epi32(_mm512_mask_or_epi32(j, r1, j, one), 1);
    return _mm512_mask_or_epi32(j, r2, j, one);
}

/* Walks 2 x 16 rows (features in x[0..KP-1] and x[KP..2KP-1]) through every tree, adding leaves to acc[group]
 * and acc[groups + group]: two independent walks side by side keep the vector units busy. */
INLINE void walk32(const gm_ctrees_t *self, const __m512 *x, __m512 *acc, const uint32_t KP) {
    uint32_t G = self->groups;
    for (uint32_t t = 0; t < self->ntrees; t++) {
        const float *thr = self->thr + (size_t)t * TABLE, *leaf = self->leaf + (size_t)t * TABLE;
        const int32_t *feat = self->feat + (size_t)t * TABLE;
        uint32_t depth = self->depth[t];
        __m512i j0 = top(thr, feat, x, depth), j1 = top(thr, feat, x + KP, depth);
        for (uint32_t level = 3; level < depth; level++) {
            __m512 th0, th1;
            __m512i f0, f1;
            lookup(thr, feat, level, j0, &th0, &f0);
            lookup(thr, feat, level, j1, &th1, &f1);
            j0 = step(j0, pick(x, f0, KP), th0);
            j1 = step(j1, pick(x + KP, f1, KP), th1);
        }
        uint32_t g = self->group[t];
        acc[g] = _mm512_add_ps(acc[g], leaves(leaf, j0, depth));
        acc[G + g] = _mm512_add_ps(acc[G + g], leaves(leaf, j1, depth));
    }
}

/* Loads the features of 16 rows from r (lanes of them valid) into x[0..KP-1]; returns the lanes holding a NaN. */
INLINE __mmask16 load16(const gm_ctrees_t *self, const float *r, uint32_t lanes, uint32_t ncols, __m512 *x,
                        const uint32_t KP) {
    __mmask16 live = (__mmask16)((1u << lanes) - 1), nan = 0;
    __m512i at = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                    _mm512_set1_epi32((int)ncols));
    for (uint32_t k = 0; k < KP; k++) {
        if (k >= self->nfeature || lanes == 0) {
            x[k] = _mm512_setzero_ps();
            continue;
        }
        x[k] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), live, _mm512_add_epi32(at, _mm512_set1_epi32((int)k)), r, 4);
        nan |= _mm512_mask_cmp_ps_mask(live, x[k], x[k], _CMP_UNORD_Q);
    }
    return nan;
}

/* Stores the margins of 'lanes' rows from acc[0..G-1] into m. */
INLINE void store16(const __m512 *acc, uint32_t G, uint32_t lanes, float *m) {
    float out[16];
    for (uint32_t g = 0; g < G; g++) {
        _mm512_storeu_ps(out, acc[g]);
        for (uint32_t i = 0; i < lanes; i++) m[i * G + g] = out[i];
    }
}

/* The margins of up to 32 rows from r (n of them): returns a bit per 16-row half that held a NaN and was
 * left alone (bit 0: the first half, bit 1: the second). */
INLINE int rows32(const gm_ctrees_t *self, const float *r, uint32_t n, uint32_t ncols, float *m, const uint32_t KP) {
    __m512 x[2 * GM_CTREE_MAX_FEATURES], acc[2 * GM_CTREE_MAX_GROUPS];
    uint32_t G = self->groups, n0 = n < 16 ? n : 16, n1 = n - n0;
    int skipped = (load16(self, r, n0, ncols, x, KP) ? 1 : 0) | (load16(self, r + 16 * ncols, n1, ncols, x + KP, KP) ? 2 : 0);
    if (skipped == 3 || (skipped == 1 && n1 == 0)) return skipped;
    for (uint32_t g = 0; g < 2 * G; g++) acc[g] = _mm512_set1_ps(m[g % G]); /* rows start from the base margin */
    walk32(self, x, acc, KP);
    if (!(skipped & 1)) store16(acc, G, n0, m);
    if (!(skipped & 2)) store16(acc + G, G, n1, m + 16 * G);
    return skipped;
}

/* The margins of up to 32 rows held by feature, from x + r0 (n of them), into m + r0 by group (see
 * gm_ctrees_margins_cols). Returns -1 when a row holds a NaN. */
INLINE int cols32(const gm_ctrees_t *self, const float *x, size_t xstride, size_t r0, uint32_t n, size_t nrows,
                  float base, float *m, const uint32_t KP) {
    __m512 v[2 * GM_CTREE_MAX_FEATURES], acc[2 * GM_CTREE_MAX_GROUPS];
    uint32_t G = self->groups, n0 = n < 16 ? n : 16;
    __mmask16 live0 = (__mmask16)((1u << n0) - 1), live1 = (__mmask16)((1u << (n - n0)) - 1), nan = 0;
    for (uint32_t k = 0; k < KP; k++) {
        if (k >= self->nfeature) {
            v[k] = v[KP + k] = _mm512_setzero_ps();
            continue;
        }
        const float *col = x + k * xstride + r0;
        v[k] = _mm512_maskz_loadu_ps(live0, col);
        v[KP + k] = _mm512_maskz_loadu_ps(live1, col + 16);
        nan |= _mm512_cmp_ps_mask(v[k], v[k], _CMP_UNORD_Q) | _mm512_cmp_ps_mask(v[KP + k], v[KP + k], _CMP_UNORD_Q);
    }
    if (nan) return -1;
    for (uint32_t g = 0; g < 2 * G; g++) acc[g] = _mm512_set1_ps(base);
    walk32(self, v, acc, KP);
    for (uint32_t g = 0; g < G; g++) {
        _mm512_mask_storeu_ps(m + g * nrows + r0, live0, acc[g]);
        _mm512_mask_storeu_ps(m + g * nrows + r0 + 16, live1, acc[G + g]);
    }
    return 0;
}

/* One function per feature count rounded to a power of two, so pick() unrolls. */
#define ROWS_KP(KP)                                                                                                  \
    static AVX512 int rows32_##KP(const gm_ctrees_t *self, const float *r, uint32_t n, uint32_t ncols, float *m) {   \
        return rows32(self, r, n, ncols, m, KP);                                                                     \
    }
ROWS_KP(1)
ROWS_KP(2)
ROWS_KP(4)
ROWS_KP(8)
ROWS_KP(16)

#define COLS_KP(KP)                                                                                                  \
    static AVX512 int cols_##KP(const gm_ctrees_t *self, const float *x, size_t xstride, size_t n, float base,     \
                                float *m) {                                                                          \
        for (size_t r0 = 0; r0 < n; r0 += 32)                                                                        \
            if (cols32(self, x, xstride, r0, n - r0 < 32 ? (uint32_t)(n - r0) : 32, n, base, m, KP) < 0) return -1;  \
        return 0;                                                                                                    \
    }
COLS_KP(1)
COLS_KP(2)
COLS_KP(4)
COLS_KP(8)
COLS_KP(16)
#endif

int gm_ctrees_margins_cols(const gm_ctrees_t *self, const float *x, size_t xstride, size_t n, float base, float *m) {
#ifdef GM_CTREE_X86
    switch (self->kp) {
    case 1: return cols_1(self, x, xstride, n, base, m);
    case 2: return cols_2(self, x, xstride, n, base, m);
    case 4: return cols_4(self, x, xstride, n, base, m);
    case 8: return cols_8(self, x, xstride, n, base, m);
    default: return cols_16(self, x, xstride, n, base, m);
    }
#else
    (void)self, (void)x, (void)xstride, (void)n, (void)base, (void)m;
    return -1;
#endif
}

void gm_ctrees_margins(const gm_ctrees_t *self, const float *rows, size_t n, uint32_t ncols, float *m,
                       gm_ctree_fallback_fn fallback, const void *ctx) {
#ifdef GM_CTREE_X86
    int (*rows32_fn)(const gm_ctrees_t *, const float *, uint32_t, uint32_t, float *) =
        self->kp == 1 ? rows32_1 : self->kp == 2 ? rows32_2 : self->kp == 4 ? rows32_4 : self->kp == 8 ? rows32_8 : rows32_16;
    uint32_t G = self->groups;
    for (size_t r0 = 0; r0 < n; r0 += 32) {
        uint32_t k = n - r0 < 32 ? (uint32_t)(n - r0) : 32, k0 = k < 16 ? k : 16;
        const float *r = rows + r0 * ncols;
        float *mr = m + r0 * G;
        int skipped = rows32_fn(self, r, k, ncols, mr);
        if (skipped & 1) fallback(ctx, r, k0, ncols, mr);
        if (skipped & 2) fallback(ctx, r + 16 * ncols, k - k0, ncols, mr + 16 * G);
    }
#else
    fallback(ctx, rows, n, ncols, m);
#endif
}

void gm_ctrees_destroy(gm_ctrees_t **self_p) {
    assert(self_p);
    gm_ctrees_t *self = *self_p;
    if (!self) return;
    free(self->depth);
    free(self->group);
    free(self->thr);
    free(self->feat);
    free(self->leaf);
    free(self);
    *self_p = NULL;
}
