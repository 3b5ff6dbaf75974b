/* gm_hash.h -- a 64-bit content hash: XXH64 (Yann Collet's xxHash, 64-bit variant), the checksum the writer's
 * ledger records for every tile it vouches for. Fast enough to hash every output byte as it is written. */
#ifndef GM_HASH_H
#define GM_HASH_H

#include <stddef.h>
#include <stdint.h>

/* Returns XXH64 of the 'len' bytes at 'data' with 'seed': chain calls (the last hash as the next seed) to hash
 * several buffers as one value. */
uint64_t gm_hash64(const void *data, size_t len, uint64_t seed);

#endif
