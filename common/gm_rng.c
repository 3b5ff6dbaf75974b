/* gm_rng.c -- a small, fast, deterministic random number generator with one independent stream per key. */
#include "gm_rng.h"

#include <assert.h>

#define GOLDEN_GAMMA 0x9E3779B97F4A7C15ull

/* Returns x rotated left by k bits (0 < k < 64). */
static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* splitmix64's output function: a bijective 64-bit mixer. */
static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Advances a splitmix64 state and returns its next output. */
static uint64_t splitmix64(uint64_t *state) {
    *state += GOLDEN_GAMMA;
    return mix64(*state);
}

void gm_rng_seed(gm_rng_t *r, uint64_t seed, uint64_t a, uint64_t b) {
    /* Each key goes through the mixer before the next is folded in, so (a, b) and (b, a) differ. */
    uint64_t state = mix64(seed + GOLDEN_GAMMA);
    state = mix64(state ^ (a + 2 * GOLDEN_GAMMA));
    state = mix64(state ^ (b + 3 * GOLDEN_GAMMA));
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&state);
    if (!(r->s[0] | r->s[1] | r->s[2] | r->s[3])) r->s[0] = GOLDEN_GAMMA; /* the one forbidden state */
}

uint64_t gm_rng_next(gm_rng_t *r) {
    uint64_t *s = r->s;
    const uint64_t result = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double gm_rng_uniform(gm_rng_t *r) { return (double)(gm_rng_next(r) >> 11) * 0x1.0p-53; }

uint32_t gm_rng_below(gm_rng_t *r, uint32_t n) {
    assert(n > 0);
    uint64_t m = (gm_rng_next(r) >> 32) * (uint64_t)n;
    uint32_t low = (uint32_t)m;
    if (low < n) {
        uint32_t threshold = (uint32_t)(-n) % n; /* 2^32 mod n: the values to reject */
        while (low < threshold) {
            m = (gm_rng_next(r) >> 32) * (uint64_t)n;
            low = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}
