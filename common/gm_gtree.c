/* gm_gtree.c -- the gathered walk (see gm_gtree.h): 8-byte nodes, per-tree top tables, and three walks of the
 * same tables (AVX-512F, AVX2, portable C) chosen at run time.
 *
 * Layout. Each tree is renumbered breadth-first, so a split's children are adjacent (right = left + 1), and
 * every node packs into 64 bits: the low word the threshold (a leaf's value), the high word
 *     bit 31                 1 when NaN goes right (not default_left)
 *     bits cbits .. 30       the feature (fbits = the bits of nfeature, cbits = 31 - fbits)
 *     bits 0 .. cbits - 1    the left child, an index within the tree.
 * A leaf is its own left child and splits on feature 'nfeature', a column of NaN in the block scratch that no
 * comparison passes (NaN >= x is false, and a leaf's NaN goes left), so a lane at a leaf stays there for any
 * number of steps, and the node's low word is then the leaf's value.
 *
 * Rows go a batch (64 or 256 rows, see pick_batch) at a time into a scratch held by vector (16 rows for the
 * AVX-512 and portable walks, 8 for AVX2) and feature, xs[v][k][lane], so the value of the feature of a lane's
 * node is one gather at feature * lanes + lane within its vector's nfeature + 1 columns. The top of a tree,
 * where all lanes share a few nodes, needs no node gather: levels 0-2 load whole columns and blend by the turns
 * taken; the next levels (3-5 with AVX-512, 3 with AVX2) look each lane's node threshold and column up by its
 * position, the turns so far, in per-tree tables (permutes); only deeper levels gather nodes, until every lane
 * of the 4 trees walked side by side sits at a leaf. The four independent walks keep the gathers overlapped;
 * their leaves (one gather of the nodes' low words) are then added in tree order, each into its group's
 * accumulator, so each row's sums are XGBoost's. */
#include "gm_gtree.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gm_log.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define GM_GTREE_X86 1
#endif

#define MAX_BATCH 256 /* rows a batch holds at most (see pick_batch) */
#define GROUP 4      /* trees walked side by side (2 and 8 measured slower) */
#define TOP_AVX2 4   /* levels the AVX2 walk takes from the top tables */
#define TOP_AVX512 6 /* and the AVX-512 one */

/* A tree's top six levels by position p (the turns so far, the first turn the highest bit). */
typedef struct {
    float thr[64];      /* levels 0-5: entry 2^L - 1 + p, the node's threshold */
    int32_t col[64];    /* its feature's column in a vector's scratch (feature * lanes), | INT32_MIN: NaN goes right */
    uint32_t left3[8];  /* the left child of the node at level 3 (the AVX2 walk gathers from level 4) */
    uint32_t left5[32]; /* at level 5 (the AVX-512 walk gathers from level 6) */
    uint32_t pad[8];    /* to a whole number of cache lines */
} top_t;

_Static_assert(sizeof(top_t) % 64 == 0, "top_t fills whole cache lines");

struct gm_gtrees {
    uint32_t ntrees, nfeature, groups;
    uint32_t cbits, fbits; /* bits of a node's child and feature fields */
    uint32_t batch;        /* rows a batch holds (see pick_batch) */
    uint32_t llog;         /* log2 of the rows of one vector in the scratch: 4 (AVX-512, portable) or 3 (AVX2) */
    gm_gtree_path_t path;
    uint32_t *start;       /* first node of each tree in 'node', and the total at [ntrees] */
    uint32_t *group;       /* the output group of each tree */
    uint32_t *depth;       /* the steps from each tree's root to its deepest leaf */
    uint64_t *node;        /* every tree's nodes, packed as above */
    top_t *top;            /* per tree, 64-byte aligned */
};

static uint32_t node_meta(uint64_t q) { return (uint32_t)(q >> 32); }
static float node_thr(uint64_t q) {
    uint32_t bits = (uint32_t)q;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}
static uint64_t node_pack(float thr, uint32_t meta) {
    uint32_t bits;
    memcpy(&bits, &thr, sizeof bits);
    return (uint64_t)meta << 32 | bits;
}

const char *gm_gtree_path_name(gm_gtree_path_t path) {
    switch (path) {
    case GM_GTREE_AUTO: return "auto";
    case GM_GTREE_PORTABLE: return "portable";
    case GM_GTREE_AVX2: return "avx2";
    case GM_GTREE_AVX512: return "avx512";
    }
    return "unknown";
}

int gm_gtree_path_parse(const char *name, gm_gtree_path_t *path, char *err) {
    static const gm_gtree_path_t all[] = {GM_GTREE_AUTO, GM_GTREE_PORTABLE, GM_GTREE_AVX2, GM_GTREE_AVX512};
    for (size_t i = 0; name && i < sizeof all / sizeof *all; i++)
        if (!strcmp(name, gm_gtree_path_name(all[i]))) {
            *path = all[i];
            return 0;
        }
    return gm_err(err, "unknown evaluator path '%s' (auto, portable, avx2 or avx512)", name ? name : "");
}

int gm_gtree_path_check(gm_gtree_path_t path, char *err) {
    if (path == GM_GTREE_AUTO || path == GM_GTREE_PORTABLE) return 0;
    if (path != GM_GTREE_AVX2 && path != GM_GTREE_AVX512) return gm_err(err, "unknown evaluator path %d", (int)path);
#ifdef GM_GTREE_X86
    __builtin_cpu_init();
    if (path == GM_GTREE_AVX512)
        return __builtin_cpu_supports("avx512f") ? 0 : gm_err(err, "this CPU has no AVX-512F");
    if (!__builtin_cpu_supports("avx2")) return gm_err(err, "this CPU has no AVX2");
    return __builtin_cpu_supports("fma") ? 0 : gm_err(err, "this CPU has no FMA");
#else
    return gm_err(err, "not an x86-64 build: no %s", gm_gtree_path_name(path));
#endif
}

gm_gtree_path_t gm_gtree_path_best(char *why) {
    char tmp[GM_ERR_LEN], *w = why ? why : tmp;
    w[0] = '\0';
    if (gm_gtree_path_check(GM_GTREE_AVX512, w) == 0) return GM_GTREE_AVX512;
    if (gm_gtree_path_check(GM_GTREE_AVX2, tmp) == 0) return GM_GTREE_AVX2; /* w says why not AVX-512 */
    if (why) gm_err(why, "%s", tmp);
    return GM_GTREE_PORTABLE;
}

/* ---- building ---------------------------------------------------------------------------------------- */

/* Fills tree tables 'tp' from node i (new numbering) at position p of level 'level'. */
static void fill_top(const gm_gtrees_t *self, const uint64_t *nd, top_t *tp, uint32_t level, uint32_t p, uint32_t i) {
    if (level == 6) return;
    if (level == 0) memset(tp, 0, sizeof *tp);
    uint32_t meta = node_meta(nd[i]), feature = (meta << 1) >> (self->cbits + 1);
    uint32_t slot = (1u << level) - 1 + p, left = meta & ((1u << self->cbits) - 1);
    int leaf = feature == self->nfeature; /* its own left child */
    tp->thr[slot] = node_thr(nd[i]);
    tp->col[slot] = (int32_t)(feature << self->llog) | (meta >> 31 ? INT32_MIN : 0);
    if (level == 3) tp->left3[p] = left;
    if (level == 5) tp->left5[p] = left;
    fill_top(self, nd, tp, level + 1, 2 * p, leaf ? i : left);
    fill_top(self, nd, tp, level + 1, 2 * p + 1, leaf ? i : left + 1);
}

/* Checks tree t (count nodes from 'src'), renumbers it breadth-first into self->node from self->start[t],
 * measures its depth and fills its top tables. 'order', 'newid' and 'level' hold count entries. Returns 0,
 * or -1 with 'err'. */
static int build_tree(gm_gtrees_t *self, uint32_t t, const gm_gtree_node_t *src, uint32_t count, uint32_t *order,
                      uint32_t *newid, uint32_t *level, char *err) {
    uint32_t head = 0, tail = 0, deepest = 0;
    for (uint32_t k = 0; k < count; k++) newid[k] = UINT32_MAX;
    order[tail++] = 0;
    newid[0] = 0;
    level[0] = 0;
    while (head < tail) {
        uint32_t i = head++, k = order[i];
        const gm_gtree_node_t *q = &src[k];
        deepest = level[i] > deepest ? level[i] : deepest;
        if (q->left < 0 || q->left == (int32_t)k) continue;
        if (q->left >= (int32_t)count || q->right < 0 || q->right >= (int32_t)count || q->right == q->left)
            return gm_err(err, "tree %u node %u has children out of range", t, k);
        if (newid[q->left] != UINT32_MAX || newid[q->right] != UINT32_MAX)
            return gm_err(err, "tree %u: a node is reached twice", t);
        if (q->feature >= self->nfeature)
            return gm_err(err, "tree %u node %u splits on feature %u of %u", t, k, q->feature, self->nfeature);
        if (q->value != q->value) return gm_err(err, "tree %u node %u has a NaN threshold", t, k);
        newid[q->left] = tail;
        level[tail] = level[i] + 1;
        order[tail++] = (uint32_t)q->left;
        newid[q->right] = tail;
        level[tail] = level[i] + 1;
        order[tail++] = (uint32_t)q->right;
    }
    if (tail != count) return gm_err(err, "tree %u: %u of its %u nodes are unreachable", t, count - tail, count);
    uint64_t *nd = self->node + self->start[t];
    for (uint32_t i = 0; i < count; i++) {
        const gm_gtree_node_t *q = &src[order[i]];
        if (q->left < 0 || q->left == (int32_t)order[i])
            nd[i] = node_pack(q->value, self->nfeature << self->cbits | i);
        else
            nd[i] = node_pack(q->value, (q->default_left ? 0 : 1u << 31) | q->feature << self->cbits | newid[q->left]);
    }
    self->depth[t] = deepest;
    fill_top(self, nd, &self->top[t], 0, 0, 0);
    return 0;
}

/* Rows per batch: 64, or 256 for forests whose nodes exceed 256 KiB (from beyond a core's cache each fetch
 * costs more, and a batch shares it among more rows: 1.5x on a 5 MiB forest), halved down to 64 while the
 * scratch of nfeature + 1 columns would exceed 256 KiB. Returns its log2. */
static uint32_t pick_batch(size_t nodes, uint32_t nfeature) {
    uint32_t lb = nodes * sizeof(uint64_t) > 256 * 1024 ? 8 : 6;
    while (lb > 6 && ((size_t)nfeature + 1) * (1u << lb) * sizeof(float) > 256 * 1024) lb--;
    return lb;
}

gm_gtrees_t *gm_gtrees_new(const gm_gtree_node_t *nodes, const uint32_t *start, const uint32_t *group,
                           uint32_t ntrees, uint32_t nfeature, uint32_t groups, gm_gtree_path_t path, char *err) {
    if (path == GM_GTREE_AUTO) path = gm_gtree_path_best(NULL);
    if (gm_gtree_path_check(path, err) < 0) return NULL;
    if (groups == 0) return gm_err(err, "no output group"), NULL;
    uint32_t fbits = 1;
    while (fbits < 32 && (nfeature >> fbits) != 0) fbits++;
    if (fbits > 31 - 8) return gm_err(err, "%u features (the gathered walk takes up to %u)", nfeature, (1u << 23) - 1), NULL;
    gm_gtrees_t *self = calloc(1, sizeof *self);
    uint32_t *order = NULL, *newid = NULL, *level = NULL;
    if (!self) return gm_err(err, "out of memory"), NULL;
    self->ntrees = ntrees;
    self->nfeature = nfeature;
    self->groups = groups;
    self->fbits = fbits;
    self->cbits = 31 - fbits;
    self->path = path;
    uint32_t biggest = 1;
    for (uint32_t t = 0; t < ntrees; t++) {
        if (start[t + 1] <= start[t]) {
            gm_err(err, "tree %u has no nodes", t);
            goto fail;
        }
        if (group[t] >= groups) {
            gm_err(err, "tree %u adds to group %u of %u", t, group[t], groups);
            goto fail;
        }
        uint32_t count = start[t + 1] - start[t];
        if (count > (1u << self->cbits)) {
            gm_err(err, "tree %u has %u nodes (with %u features the gathered walk takes up to %u)", t, count, nfeature,
                   1u << self->cbits);
            goto fail;
        }
        biggest = count > biggest ? count : biggest;
    }
    size_t total = ntrees ? (size_t)start[ntrees] - start[0] : 0;
    self->batch = 1u << pick_batch(total, nfeature);
    self->llog = path == GM_GTREE_AVX2 ? 3 : 4;
    self->start = malloc(((size_t)ntrees + 1) * sizeof *self->start);
    self->group = malloc(((size_t)ntrees + 1) * sizeof *self->group);
    self->depth = malloc(((size_t)ntrees + 1) * sizeof *self->depth);
    self->node = malloc((total ? total : 1) * sizeof *self->node);
    self->top = aligned_alloc(64, ((size_t)ntrees + 1) * sizeof *self->top); /* a multiple of 64 bytes */
    order = malloc(biggest * sizeof *order);
    newid = malloc(biggest * sizeof *newid);
    level = malloc(biggest * sizeof *level);
    if (!self->start || !self->group || !self->depth || !self->node || !self->top || !order || !newid || !level) {
        gm_err(err, "out of memory for %zu nodes", total);
        goto fail;
    }
    for (uint32_t t = 0; t <= ntrees; t++) self->start[t] = ntrees ? start[t] - start[0] : 0;
    for (uint32_t t = 0; t < ntrees; t++) {
        self->group[t] = group[t];
        if (build_tree(self, t, nodes + start[t], start[t + 1] - start[t], order, newid, level, err) < 0) goto fail;
    }
    free(order);
    free(newid);
    free(level);
    return self;
fail:
    free(order);
    free(newid);
    free(level);
    gm_gtrees_destroy(&self);
    return NULL;
}

gm_gtree_path_t gm_gtrees_path(const gm_gtrees_t *self) { return self->path; }

size_t gm_gtrees_bytes(const gm_gtrees_t *self) {
    return sizeof *self + (size_t)self->start[self->ntrees] * sizeof *self->node +
           ((size_t)self->ntrees + 1) * (sizeof *self->top + sizeof *self->start + sizeof *self->group + sizeof *self->depth);
}

void gm_gtrees_destroy(gm_gtrees_t **self_p) {
    assert(self_p);
    gm_gtrees_t *self = *self_p;
    if (!self) return;
    free(self->start);
    free(self->group);
    free(self->depth);
    free(self->node);
    free(self->top);
    free(self);
    *self_p = NULL;
}

/* Floats between one vector's rows and the next's in the scratch: nfeature + 1 columns of 2^llog rows. */
static size_t sub_stride(const gm_gtrees_t *self) { return ((size_t)self->nfeature + 1) << self->llog; }

/* ---- the portable walk ------------------------------------------------------------------------------- */

/* Adds every tree's leaf to acc[g * batch + i] for the 'rows' rows of the scratch xs, 16 rows side by side
 * (the scratch holds zeros up to the next 16 rows), branch-free. */
static __attribute__((noinline)) void batch_portable(const gm_gtrees_t *self, const float *xs, float *acc, uint32_t rows) {
    uint32_t cmask = (1u << self->cbits) - 1, shift = self->cbits - self->llog;
    uint32_t fmask = ((1u << self->fbits) - 1) << self->llog;
    for (uint32_t t = 0; t < self->ntrees; t++) {
        const uint64_t *nd = self->node + self->start[t];
        float *a = acc + (size_t)self->group[t] * self->batch;
        uint32_t depth = self->depth[t];
        for (uint32_t i0 = 0; i0 < rows; i0 += 16) {
            uint32_t k[16] = {0};
            const float *x = xs + (i0 >> 4) * sub_stride(self);
            for (uint32_t step = 0; step < depth; step++)
                for (uint32_t j = 0; j < 16; j++) {
                    uint64_t q = nd[k[j]];
                    uint32_t meta = node_meta(q);
                    float v = x[((meta >> shift) & fmask) + j], thr = node_thr(q);
                    uint32_t right = (uint32_t)(v >= thr) | ((uint32_t)(v != v) & (meta >> 31));
                    k[j] = (meta & cmask) + right;
                }
            for (uint32_t j = 0; j < 16; j++) a[i0 + j] += node_thr(nd[k[j]]);
        }
    }
}

/* ---- the AVX2 walk ----------------------------------------------------------------------------------- */

#ifdef GM_GTREE_X86
#define T256 __attribute__((target("avx2,fma")))
#define IN256 static inline __attribute__((always_inline, target("avx2,fma")))

/* The lanes (all ones) that go right: value not below the threshold, or NaN where 'nd' (NaN goes right). */
IN256 __m256 right256(__m256 v, __m256 thr, __m256 nd, const int nans) {
    __m256 r = _mm256_cmp_ps(v, thr, _CMP_GE_OQ);
    if (nans) r = _mm256_or_ps(r, _mm256_and_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q), nd));
    return r;
}

/* All ones when NaN goes right at top-table entry 'col'. */
IN256 __m256 nd256(int32_t col) { return _mm256_castsi256_ps(_mm256_set1_epi32(col >> 31)); }

/* Levels 0-3 of a tree for 8 rows of the scratch at xs: returns the lanes' nodes at level 4. */
IN256 __m256i top256(const top_t *tp, const float *xs, const int nans) {
    const int32_t *c = tp->col;
    const float *t = tp->thr;
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
#define COL256(k) _mm256_load_ps(xs + (c[k] & INT32_MAX))
    __m256 zero = _mm256_setzero_ps();
    __m256 k0 = right256(COL256(0), _mm256_set1_ps(t[0]), nans ? nd256(c[0]) : zero, nans);
    __m256 v1 = _mm256_blendv_ps(COL256(1), COL256(2), k0);
    __m256 t1 = _mm256_blendv_ps(_mm256_set1_ps(t[1]), _mm256_set1_ps(t[2]), k0);
    __m256 n1 = nans ? _mm256_blendv_ps(nd256(c[1]), nd256(c[2]), k0) : zero;
    __m256 k1 = right256(v1, t1, n1, nans);
    __m256 v2 = _mm256_blendv_ps(_mm256_blendv_ps(COL256(3), COL256(4), k1), _mm256_blendv_ps(COL256(5), COL256(6), k1), k0);
    __m256 t2 = _mm256_blendv_ps(_mm256_blendv_ps(_mm256_set1_ps(t[3]), _mm256_set1_ps(t[4]), k1),
                                 _mm256_blendv_ps(_mm256_set1_ps(t[5]), _mm256_set1_ps(t[6]), k1), k0);
    __m256 n2 = nans ? _mm256_blendv_ps(_mm256_blendv_ps(nd256(c[3]), nd256(c[4]), k1),
                                        _mm256_blendv_ps(nd256(c[5]), nd256(c[6]), k1), k0)
                     : zero;
    __m256 k2 = right256(v2, t2, n2, nans);
#undef COL256
    __m256i p = _mm256_or_si256(_mm256_and_si256(_mm256_castps_si256(k0), _mm256_set1_epi32(4)),
                                _mm256_or_si256(_mm256_and_si256(_mm256_castps_si256(k1), _mm256_set1_epi32(2)),
                                                _mm256_and_si256(_mm256_castps_si256(k2), _mm256_set1_epi32(1))));
    /* level 3: the node's threshold and column by position */
    __m256 t3 = _mm256_permutevar8x32_ps(_mm256_loadu_ps(t + 7), p);
    __m256i c3 = _mm256_permutevar8x32_epi32(_mm256_loadu_si256((const __m256i *)(c + 7)), p);
    __m256 v3 = _mm256_i32gather_ps(xs, _mm256_add_epi32(_mm256_and_si256(c3, _mm256_set1_epi32(INT32_MAX)), iota), 4);
    __m256 k3 = right256(v3, t3, _mm256_castsi256_ps(_mm256_srai_epi32(c3, 31)), nans);
    /* level 4's node: the left child of level 3's, plus one for the lanes going right */
    __m256i left = _mm256_permutevar8x32_epi32(_mm256_loadu_si256((const __m256i *)tp->left3), p);
    return _mm256_sub_epi32(left, _mm256_castps_si256(k3));
}

/* Gathers the 8 lanes' nodes of tree 'nd' at idx: thresholds into *thr, high words into *meta. */
IN256 void fetch256(const uint64_t *nd, __m256i idx, __m256 *thr, __m256i *meta) {
    /* lanes 0,1,4,5 into one gather and 2,3,6,7 into the other, so that one shuffle puts both in lane order */
    __m256i at = _mm256_permutevar8x32_epi32(idx, _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7));
    __m256 lo = _mm256_castsi256_ps(_mm256_i32gather_epi64((const long long *)nd, _mm256_castsi256_si128(at), 8));
    __m256 hi = _mm256_castsi256_ps(_mm256_i32gather_epi64((const long long *)nd, _mm256_extracti128_si256(at, 1), 8));
    *thr = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0));
    *meta = _mm256_castps_si256(_mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1)));
}

/* One level of the gathered walk for 8 lanes at nodes idx; clears *same's lanes that moved. */
IN256 __m256i step256(const uint64_t *nd, const float *xs, __m256i idx, __m256i shift, __m256i fmask, __m256i cmask,
                      const int nans, __m256i *same) {
    __m256 thr;
    __m256i meta;
    fetch256(nd, idx, &thr, &meta);
    __m256i at = _mm256_add_epi32(_mm256_and_si256(_mm256_srlv_epi32(meta, shift), fmask),
                                  _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    __m256 v = _mm256_i32gather_ps(xs, at, 4);
    __m256 r = right256(v, thr, _mm256_castsi256_ps(_mm256_srai_epi32(meta, 31)), nans);
    __m256i next = _mm256_sub_epi32(_mm256_and_si256(meta, cmask), _mm256_castps_si256(r));
    *same = _mm256_and_si256(*same, _mm256_cmpeq_epi32(next, idx));
    return next;
}

/* Walks trees t0 .. t0 + nt - 1 for the 8 rows of the scratch at xs and adds their leaves to acc in order. */
IN256 void trees256(const gm_gtrees_t *self, uint32_t t0, const float *xs, float *acc, const int nt, const int nans) {
    __m256i idx[GROUP];
    uint32_t depth = 0;
#pragma GCC unroll 8
    for (int j = 0; j < nt; j++) {
        idx[j] = top256(&self->top[t0 + j], xs, nans);
        depth = self->depth[t0 + j] > depth ? self->depth[t0 + j] : depth;
    }
    const __m256i shift = _mm256_set1_epi32((int)(self->cbits - self->llog));
    const __m256i fmask = _mm256_set1_epi32((int)(((1u << self->fbits) - 1) << self->llog));
    const __m256i cmask = _mm256_set1_epi32((int)((1u << self->cbits) - 1));
    for (uint32_t level = TOP_AVX2; level < depth; level++) {
        __m256i same = _mm256_set1_epi32(-1);
#pragma GCC unroll 8
        for (int j = 0; j < nt; j++)
            idx[j] = step256(self->node + self->start[t0 + j], xs, idx[j], shift, fmask, cmask, nans, &same);
        if (_mm256_movemask_epi8(same) == -1) break; /* every lane of every tree at its leaf */
    }
#pragma GCC unroll 8
    for (int j = 0; j < nt; j++) {
        __m256 leaf = _mm256_i32gather_ps((const float *)(self->node + self->start[t0 + j]), idx[j], 8);
        float *a = acc + (size_t)self->group[t0 + j] * self->batch;
        _mm256_store_ps(a, _mm256_add_ps(_mm256_load_ps(a), leaf));
    }
}

/* load_batch for the AVX2 walk: 8 rows of a feature at a time, one gather (or load, when rows are by feature). */
static T256 void load_avx2(const gm_gtrees_t *self, const float *src, uint32_t rows, size_t rstride, size_t fstride,
                           float *xs, uint8_t *nan8) {
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256i at = _mm256_mullo_epi32(iota, _mm256_set1_epi32((int)rstride));
    for (uint32_t i0 = 0; i0 < rows; i0 += 8) {
        uint32_t lanes = rows - i0 < 8 ? rows - i0 : 8;
        __m256 live = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32((int)lanes), iota)), nan = _mm256_setzero_ps();
        const float *s = src + (size_t)i0 * rstride;
        for (uint32_t k = 0; k < self->nfeature; k++, s += fstride) {
            __m256 v = rstride == 1 ? _mm256_maskload_ps(s, _mm256_castps_si256(live))
                                    : _mm256_mask_i32gather_ps(_mm256_setzero_ps(), s, at, live, 4);
            _mm256_store_ps(xs + (i0 >> 3) * sub_stride(self) + (size_t)k * 8, v);
            nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
        }
        nan8[i0 / 8] = _mm256_movemask_ps(nan) != 0;
    }
}

/* Adds every tree's leaf to acc for the 'rows' rows of the scratch (nan8: a flag per 8 rows holding a NaN). */
static T256 void batch_avx2(const gm_gtrees_t *self, const float *xs, float *acc, uint32_t rows, const uint8_t *nan8) {
    uint32_t nsub = (rows + 7) / 8, t0 = 0;
    size_t sub = sub_stride(self);
    for (; t0 + GROUP <= self->ntrees; t0 += GROUP)
        for (uint32_t s = 0; s < nsub; s++) {
            if (nan8[s]) trees256(self, t0, xs + s * sub, acc + 8 * s, GROUP, 1);
            else trees256(self, t0, xs + s * sub, acc + 8 * s, GROUP, 0);
        }
    for (; t0 < self->ntrees; t0++)
        for (uint32_t s = 0; s < nsub; s++) {
            if (nan8[s]) trees256(self, t0, xs + s * sub, acc + 8 * s, 1, 1);
            else trees256(self, t0, xs + s * sub, acc + 8 * s, 1, 0);
        }
}

/* ---- the AVX-512 walk -------------------------------------------------------------------------------- */

#define T512 __attribute__((target("avx512f")))
#define IN512 static inline __attribute__((always_inline, target("avx512f")))

/* The lanes that go right: value not below the threshold, or NaN where 'nd' (NaN goes right). */
IN512 __mmask16 right512(__m512 v, __m512 thr, __mmask16 nd, const int nans) {
    __mmask16 r = _mm512_cmp_ps_mask(v, thr, _CMP_GE_OQ);
    if (nans) r = _mm512_kor(r, _mm512_mask_cmp_ps_mask(nd, v, v, _CMP_UNORD_Q));
    return r;
}

/* Levels 0-5 of a tree for 16 rows of the scratch at xs: returns the lanes' nodes at level 6. */
IN512 __m512i top512(const top_t *tp, const float *xs, const int nans) {
    const int32_t *c = tp->col;
    const float *t = tp->thr;
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i one = _mm512_set1_epi32(1), low31 = _mm512_set1_epi32(INT32_MAX);
#define COL512(k) _mm512_load_ps(xs + (c[k] & INT32_MAX))
#define ND512(k) ((__mmask16)(c[k] < 0 ? 0xffff : 0))
    __mmask16 k0 = right512(COL512(0), _mm512_set1_ps(t[0]), ND512(0), nans);
    __m512 v1 = _mm512_mask_blend_ps(k0, COL512(1), COL512(2));
    __m512 t1 = _mm512_mask_blend_ps(k0, _mm512_set1_ps(t[1]), _mm512_set1_ps(t[2]));
    __mmask16 n1 = nans ? (__mmask16)((ND512(1) & ~k0) | (ND512(2) & k0)) : 0;
    __mmask16 k1 = right512(v1, t1, n1, nans);
    __m512 v2 = _mm512_mask_blend_ps(k0, _mm512_mask_blend_ps(k1, COL512(3), COL512(4)),
                                     _mm512_mask_blend_ps(k1, COL512(5), COL512(6)));
    __m512 t2 = _mm512_mask_blend_ps(k0, _mm512_mask_blend_ps(k1, _mm512_set1_ps(t[3]), _mm512_set1_ps(t[4])),
                                     _mm512_mask_blend_ps(k1, _mm512_set1_ps(t[5]), _mm512_set1_ps(t[6])));
    __mmask16 n2 = nans ? (__mmask16)((~k0 & ((~k1 & ND512(3)) | (k1 & ND512(4)))) | (k0 & ((~k1 & ND512(5)) | (k1 & ND512(6)))))
                        : 0;
    __mmask16 k2 = right512(v2, t2, n2, nans);
#undef COL512
#undef ND512
    __m512i p = _mm512_or_si512(_mm512_maskz_mov_epi32(k0, _mm512_set1_epi32(4)),
                                _mm512_or_si512(_mm512_maskz_mov_epi32(k1, _mm512_set1_epi32(2)), _mm512_maskz_mov_epi32(k2, one)));
    /* levels 3 to 5: the node's threshold and column by position (16 entries, then 32) */
    __mmask16 r = 0;
    for (uint32_t level = 3; level <= 5; level++) {
        uint32_t at = (1u << level) - 1;
        __m512 th;
        __m512i col;
        if (level < 5) {
            th = _mm512_permutexvar_ps(p, _mm512_loadu_ps(t + at));
            col = _mm512_permutexvar_epi32(p, _mm512_loadu_si512(c + at));
        } else {
            th = _mm512_permutex2var_ps(_mm512_loadu_ps(t + at), p, _mm512_loadu_ps(t + at + 16));
            col = _mm512_permutex2var_epi32(_mm512_loadu_si512(c + at), p, _mm512_loadu_si512(c + at + 16));
        }
        __m512 v = _mm512_i32gather_ps(_mm512_add_epi32(_mm512_and_si512(col, low31), iota), xs, 4);
        r = right512(v, th, _mm512_cmplt_epi32_mask(col, _mm512_setzero_si512()), nans);
        if (level < 5) {
            p = _mm512_slli_epi32(p, 1);
            p = _mm512_mask_add_epi32(p, r, p, one);
        }
    }
    /* level 6's node: the left child of level 5's, plus one for the lanes going right */
    __m512i left = _mm512_permutex2var_epi32(_mm512_loadu_si512(tp->left5), p, _mm512_loadu_si512(tp->left5 + 16));
    return _mm512_mask_add_epi32(left, r, left, one);
}

/* Gathers the 16 lanes' nodes of tree 'nd' at idx: thresholds into *thr, high words into *meta. */
IN512 void fetch512(const uint64_t *nd, __m512i idx, __m512 *thr, __m512i *meta) {
    __m512i lo = _mm512_i32gather_epi64(_mm512_castsi512_si256(idx), nd, 8);
    __m512i hi = _mm512_i32gather_epi64(_mm512_extracti64x4_epi64(idx, 1), nd, 8);
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    *thr = _mm512_castsi512_ps(_mm512_permutex2var_epi32(lo, even, hi));
    *meta = _mm512_permutex2var_epi32(lo, _mm512_add_epi32(even, _mm512_set1_epi32(1)), hi);
}

/* One level of the gathered walk for 16 lanes at nodes idx; adds the lanes that moved to *moved. */
IN512 __m512i step512(const uint64_t *nd, const float *xs, __m512i idx, __m512i shift, __m512i fmask, __m512i cmask,
                      const int nans, __mmask16 *moved) {
    __m512 thr;
    __m512i meta;
    fetch512(nd, idx, &thr, &meta);
    __m512i at = _mm512_add_epi32(_mm512_and_si512(_mm512_srlv_epi32(meta, shift), fmask),
                                  _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
    __m512 v = _mm512_i32gather_ps(at, xs, 4);
    __mmask16 r = right512(v, thr, nans ? _mm512_cmplt_epi32_mask(meta, _mm512_setzero_si512()) : 0, nans);
    __m512i left = _mm512_and_si512(meta, cmask);
    __m512i next = _mm512_mask_add_epi32(left, r, left, _mm512_set1_epi32(1));
    *moved = _mm512_kor(*moved, _mm512_cmpneq_epi32_mask(next, idx));
    return next;
}

/* Walks trees t0 .. t0 + nt - 1 for the 16 rows of the scratch at xs and adds their leaves to acc in order. */
IN512 void trees512(const gm_gtrees_t *self, uint32_t t0, const float *xs, float *acc, const int nt, const int nans) {
    __m512i idx[GROUP];
    uint32_t depth = 0;
#pragma GCC unroll 8
    for (int j = 0; j < nt; j++) {
        idx[j] = top512(&self->top[t0 + j], xs, nans);
        depth = self->depth[t0 + j] > depth ? self->depth[t0 + j] : depth;
    }
    const __m512i shift = _mm512_set1_epi32((int)(self->cbits - self->llog));
    const __m512i fmask = _mm512_set1_epi32((int)(((1u << self->fbits) - 1) << self->llog));
    const __m512i cmask = _mm512_set1_epi32((int)((1u << self->cbits) - 1));
    for (uint32_t level = TOP_AVX512; level < depth; level++) {
        __mmask16 moved = 0;
#pragma GCC unroll 8
        for (int j = 0; j < nt; j++)
            idx[j] = step512(self->node + self->start[t0 + j], xs, idx[j], shift, fmask, cmask, nans, &moved);
        if (!moved) break; /* every lane of every tree at its leaf */
    }
#pragma GCC unroll 8
    for (int j = 0; j < nt; j++) {
        __m512 leaf = _mm512_i32gather_ps(idx[j], self->node + self->start[t0 + j], 8); /* the low words */
        float *a = acc + (size_t)self->group[t0 + j] * self->batch;
        _mm512_store_ps(a, _mm512_add_ps(_mm512_load_ps(a), leaf));
    }
}

/* load_batch for the AVX-512 walk: 16 rows of a feature at a time, one gather (or load, when rows are by
 * feature). */
static T512 void load_avx512(const gm_gtrees_t *self, const float *src, uint32_t rows, size_t rstride, size_t fstride,
                             float *xs, uint8_t *nan8) {
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    __m512i at = _mm512_mullo_epi32(iota, _mm512_set1_epi32((int)rstride));
    for (uint32_t i0 = 0; i0 < rows; i0 += 16) {
        uint32_t lanes = rows - i0 < 16 ? rows - i0 : 16;
        __mmask16 live = (__mmask16)((1u << lanes) - 1), nan = 0;
        const float *s = src + (size_t)i0 * rstride;
        for (uint32_t k = 0; k < self->nfeature; k++, s += fstride) {
            __m512 v = rstride == 1 ? _mm512_maskz_loadu_ps(live, s)
                                    : _mm512_mask_i32gather_ps(_mm512_setzero_ps(), live, at, s, 4);
            _mm512_store_ps(xs + (i0 >> 4) * sub_stride(self) + (size_t)k * 16, v);
            nan = _mm512_kor(nan, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q));
        }
        nan8[i0 / 8] = (nan & 0xff) != 0;
        nan8[i0 / 8 + 1] = (nan >> 8) != 0;
    }
}

/* Adds every tree's leaf to acc for the 'rows' rows of the scratch (nan8: a flag per 8 rows holding a NaN). */
static T512 void batch_avx512(const gm_gtrees_t *self, const float *xs, float *acc, uint32_t rows, const uint8_t *nan8) {
    uint32_t nsub = (rows + 15) / 16, t0 = 0;
    size_t sub = sub_stride(self);
    for (; t0 + GROUP <= self->ntrees; t0 += GROUP)
        for (uint32_t s = 0; s < nsub; s++) {
            if (nan8[2 * s] | nan8[2 * s + 1]) trees512(self, t0, xs + s * sub, acc + 16 * s, GROUP, 1);
            else trees512(self, t0, xs + s * sub, acc + 16 * s, GROUP, 0);
        }
    for (; t0 < self->ntrees; t0++)
        for (uint32_t s = 0; s < nsub; s++) {
            if (nan8[2 * s] | nan8[2 * s + 1]) trees512(self, t0, xs + s * sub, acc + 16 * s, 1, 1);
            else trees512(self, t0, xs + s * sub, acc + 16 * s, 1, 0);
        }
}
#endif

/* ---- batches ----------------------------------------------------------------------------------------- */

/* Copies 'rows' rows (feature k of row i at src[i * rstride + k * fstride]) into the scratch by feature, zero
 * up to the next 16 rows, and flags in nan8 each 8 rows that hold a NaN. */
static __attribute__((noinline)) void load_batch(const gm_gtrees_t *self, const float *src, uint32_t rows,
                                                 size_t rstride, size_t fstride, float *xs, uint8_t *nan8) {
    uint32_t lmask = (1u << self->llog) - 1;
    for (uint32_t i0 = 0; i0 < rows; i0 += 8) {
        uint32_t nan = 0, lanes = rows - i0 < 8 ? rows - i0 : 8;
        for (uint32_t k = 0; k < self->nfeature; k++) {
            float *col = xs + (i0 >> self->llog) * sub_stride(self) + ((size_t)k << self->llog) + (i0 & lmask);
            const float *s = src + i0 * rstride + k * fstride;
            if (lanes == 8)
                for (uint32_t j = 0; j < 8; j++) {
                    float v = s[j * rstride];
                    col[j] = v;
                    nan |= v != v;
                }
            else
                for (uint32_t j = 0; j < 8; j++) {
                    float v = j < lanes ? s[j * rstride] : 0.0f;
                    col[j] = v;
                    nan |= v != v;
                }
        }
        nan8[i0 / 8] = (uint8_t)nan;
    }
    /* rows beyond the last 8 up to the end of the last vector: zero, no NaN */
    uint32_t from = (rows + 7) & ~7u, padded = (rows + lmask) & ~lmask;
    for (uint32_t i0 = from; i0 < padded; i0 += 8) {
        for (uint32_t k = 0; k < self->nfeature; k++)
            memset(xs + (i0 >> self->llog) * sub_stride(self) + ((size_t)k << self->llog) + (i0 & lmask), 0, 8 * sizeof(float));
        nan8[i0 / 8] = 0;
    }
}

/* Applies the trees to 'n' rows whose feature k of row i is src[i * rstride + k * fstride]. Rows start from
 * m[i * groups + g] and end there (by_group = 0), or start from 'base' and end in m[g * n + i] (by_group = 1).
 * Returns 0, or -1 when out of memory. */
static int apply(const gm_gtrees_t *self, const float *src, size_t n, size_t rstride, size_t fstride, float base,
                 float *m, int by_group) {
    uint32_t F = self->nfeature, G = self->groups;
    size_t cols = (size_t)F + 1, bytes = (cols + G) * self->batch * sizeof(float);
    float *xs = aligned_alloc(64, bytes); /* a multiple of 64 bytes: batch >= 64 */
    if (!xs) return -1;
    float *acc = xs + cols * self->batch;
    uint8_t nan8[MAX_BATCH / 8];
    int wide = rstride > (1u << 24); /* rows too far apart for a gather's 32-bit offsets */
    for (uint32_t s = 0; s < self->batch >> self->llog; s++) /* each vector's column of the leaves */
        for (uint32_t j = 0; j < 1u << self->llog; j++) xs[s * sub_stride(self) + ((size_t)F << self->llog) + j] = NAN;
    for (size_t b0 = 0; b0 < n; b0 += self->batch) {
        uint32_t rows = n - b0 < self->batch ? (uint32_t)(n - b0) : self->batch;
        const float *from = src + b0 * rstride;
        switch (self->path) {
#ifdef GM_GTREE_X86
        case GM_GTREE_AVX512:
            if (wide) load_batch(self, from, rows, rstride, fstride, xs, nan8);
            else load_avx512(self, from, rows, rstride, fstride, xs, nan8);
            break;
        case GM_GTREE_AVX2:
            if (wide) load_batch(self, from, rows, rstride, fstride, xs, nan8);
            else load_avx2(self, from, rows, rstride, fstride, xs, nan8);
            break;
#endif
        default: load_batch(self, from, rows, rstride, fstride, xs, nan8); break;
        }
        for (uint32_t g = 0; g < G; g++)
            for (uint32_t i = 0; i < self->batch; i++) acc[g * self->batch + i] = i >= rows ? 0.0f : by_group ? base : m[(b0 + i) * G + g];
        switch (self->path) {
#ifdef GM_GTREE_X86
        case GM_GTREE_AVX512: batch_avx512(self, xs, acc, rows, nan8); break;
        case GM_GTREE_AVX2: batch_avx2(self, xs, acc, rows, nan8); break;
#endif
        default: batch_portable(self, xs, acc, rows); break;
        }
        for (uint32_t g = 0; g < G; g++)
            for (uint32_t i = 0; i < rows; i++) {
                if (by_group) m[g * n + b0 + i] = acc[g * self->batch + i];
                else m[(b0 + i) * G + g] = acc[g * self->batch + i];
            }
    }
    free(xs);
    return 0;
}

int gm_gtrees_margins(const gm_gtrees_t *self, const float *rows, size_t n, uint32_t ncols, float *m) {
    assert(ncols >= self->nfeature);
    return apply(self, rows, n, ncols, 1, 0.0f, m, 0);
}

int gm_gtrees_margins_cols(const gm_gtrees_t *self, const float *x, size_t xstride, size_t n, float base, float *m) {
    return apply(self, x, n, 1, xstride, base, m, 1);
}
