/* gm_rng.h -- a small, fast, deterministic random number generator with one independent stream per key.
 *
 * The generator is xoshiro256** (Blackman and Vigna). gm_rng_seed derives its 256-bit state from a seed and
 * two stream keys (for sampling: the iteration and the polygon index) through splitmix64, so every
 * (seed, a, b) triple gives its own stream and the results never depend on the order streams are used in.
 * A gm_rng_t is a plain value: copy it, keep it on the stack, use one per thread. */
#ifndef GM_RNG_H
#define GM_RNG_H

#include <stdint.h>

/* The generator state; seed it with gm_rng_seed (or set 's' directly, never all zero). */
typedef struct {
    uint64_t s[4];
} gm_rng_t;

/* Seeds 'r' with the stream of (seed, a, b). Different triples give unrelated streams. */
void gm_rng_seed(gm_rng_t *r, uint64_t seed, uint64_t a, uint64_t b);
/* Returns the next 64 random bits. */
uint64_t gm_rng_next(gm_rng_t *r);
/* Returns a uniform double in [0, 1) made of the top 53 bits of one draw. */
double gm_rng_uniform(gm_rng_t *r);
/* Returns a uniform integer in [0, n), without modulo bias (Lemire's method); n must be > 0. */
uint32_t gm_rng_below(gm_rng_t *r, uint32_t n);

#endif
