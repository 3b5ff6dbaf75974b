/* gm_fmt.c -- numbers as text: the bytes printf writes for "%.<P>g", "%u" and "%lld", several times faster. */
#include "gm_fmt.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

typedef unsigned __int128 u128;

/* 10^0 .. 10^19 */
static const uint64_t pow10_u64[20] = {
    1ull,          10ull,          100ull,          1000ull,          10000ull,          100000ull,          1000000ull,
    10000000ull,   100000000ull,   1000000000ull,   10000000000ull,   100000000000ull,   1000000000000ull,
    10000000000000ull, 100000000000000ull, 1000000000000000ull, 10000000000000000ull, 100000000000000000ull,
    1000000000000000000ull, 10000000000000000000ull};

/* 5^0 .. 5^27 */
static const uint64_t pow5_u64[28] = {
    1ull,           5ull,           25ull,          125ull,          625ull,          3125ull,
    15625ull,       78125ull,       390625ull,      1953125ull,      9765625ull,      48828125ull,
    244140625ull,   1220703125ull,  6103515625ull,  30517578125ull,  152587890625ull, 762939453125ull,
    3814697265625ull, 19073486328125ull, 95367431640625ull, 476837158203125ull, 2384185791015625ull,
    11920928955078125ull, 59604644775390625ull, 298023223876953125ull, 1490116119384765625ull,
    7450580596923828125ull};

/* Returns the number of significant bits of 'x' (0 for 0). */
static int bit_length(u128 x) {
    uint64_t hi = (uint64_t)(x >> 64), lo = (uint64_t)x;
    return hi ? 128 - __builtin_clzll(hi) : lo ? 64 - __builtin_clzll(lo) : 0;
}

/* For |v| = m * 2^e (m > 0), stores in 'q' the integer part of |v| / 10^k and in 'half' how the rest compares
 * with one half: -1 below, 0 equal, 1 above. Returns 0, or -1 when the numbers would not fit 128 bits. */
static int scale(uint64_t m, int e, int k, u128 *q, int *half) {
    if (k >= 0) {
        if (k > 38) return -1;
        u128 d = k < 20 ? (u128)pow10_u64[k] : (u128)pow10_u64[k - 19] * pow10_u64[19], n = m;
        if (e >= 0) {
            if (bit_length(m) + e > 126) return -1;
            n <<= e;
        } else { /* |v| / 10^k = m / (10^k * 2^-e) */
            if (bit_length(d) - e > 126) return -1;
            d <<= -e;
        }
        *q = n / d;
        u128 twice_rest = 2 * (n % d);
        *half = twice_rest < d ? -1 : twice_rest > d;
        return 0;
    }
    /* |v| * 10^a = m * 5^a * 2^(a + e) */
    int a = -k;
    if (a > 54) return -1;
    u128 p5 = (u128)pow5_u64[a / 2] * pow5_u64[a - a / 2];
    if (bit_length(m) + bit_length(p5) > 127) return -1;
    u128 n = (u128)m * p5;
    int s = a + e;
    if (s >= 0) {
        if (bit_length(n) + s > 127) return -1;
        *q = n << s;
        *half = -1;
        return 0;
    }
    if (-s > 126) return -1;
    *q = n >> -s;
    u128 rest = n & (((u128)1 << -s) - 1), h = (u128)1 << (-s - 1);
    *half = rest < h ? -1 : rest > h;
    return 0;
}

/* What printf itself writes: the fallback. */
static size_t by_printf(char *buf, double v, int prec) {
    int n = snprintf(buf, GM_FMT_G_LEN, "%.*g", prec, v);
    return n < 0 ? 0 : (size_t)n;
}

size_t gm_fmt_g(char *buf, double v, int prec) {
    if (prec < 1 || prec > 17 || v == 0 || !isfinite(v)) return by_printf(buf, v, prec);
    int ex;
    double f = frexp(fabs(v), &ex); /* |v| = f * 2^ex, 0.5 <= f < 1, so |v| = m * 2^e exactly */
    uint64_t m = (uint64_t)ldexp(f, 53);
    int tz = __builtin_ctzll(m); /* fewer bits in m, a wider range that fits */
    m >>= tz;
    int e = ex - 53 + tz;
    /* x: the decimal exponent, 10^x <= |v| < 10^(x+1) (log10 may miss it by one near a power of ten); then
     * q: the first 'prec' digits of |v|, and the rest against one half */
    int x = (int)floor(log10(fabs(v)));
    u128 q;
    int half;
    for (int tries = 0;; tries++) {
        if (tries > 3 || scale(m, e, x - prec + 1, &q, &half) < 0) return by_printf(buf, v, prec);
        if (q >= pow10_u64[prec]) x++;
        else if (q < pow10_u64[prec - 1]) x--;
        else break;
    }
    uint64_t d = (uint64_t)q;
    if (half > 0 || (half == 0 && (d & 1))) d++; /* to nearest, half to even */
    if (d == pow10_u64[prec]) {                   /* 9.99... rounded up to 10.0...: one more digit left */
        d = pow10_u64[prec - 1];
        x++;
    }
    char digits[20];
    for (int i = prec - 1; i >= 0; i--, d /= 10) digits[i] = (char)('0' + d % 10);
    int nd = prec;
    while (nd > 1 && digits[nd - 1] == '0') nd--; /* %g drops trailing zeros, and the point with them */
    char *b = buf;
    if (signbit(v)) *b++ = '-';
    if (x < -4 || x >= prec) { /* d.ddde+XX */
        *b++ = digits[0];
        if (nd > 1) {
            *b++ = '.';
            memcpy(b, digits + 1, (size_t)nd - 1);
            b += nd - 1;
        }
        int ax = x < 0 ? -x : x;
        *b++ = 'e';
        *b++ = x < 0 ? '-' : '+';
        if (ax >= 100) *b++ = (char)('0' + ax / 100);
        *b++ = (char)('0' + ax / 10 % 10);
        *b++ = (char)('0' + ax % 10);
    } else if (x >= 0) { /* ddd.ddd */
        memcpy(b, digits, (size_t)x + 1);
        b += x + 1;
        if (nd > x + 1) {
            *b++ = '.';
            memcpy(b, digits + x + 1, (size_t)(nd - x - 1));
            b += nd - x - 1;
        }
    } else { /* 0.000ddd */
        *b++ = '0';
        *b++ = '.';
        for (int z = 0; z < -x - 1; z++) *b++ = '0';
        memcpy(b, digits, (size_t)nd);
        b += nd;
    }
    *b = '\0';
    return (size_t)(b - buf);
}

size_t gm_fmt_u64(char *buf, uint64_t v) {
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++) buf[i] = tmp[n - 1 - i];
    return n;
}

size_t gm_fmt_i64(char *buf, int64_t v) {
    if (v >= 0) return gm_fmt_u64(buf, (uint64_t)v);
    buf[0] = '-';
    return 1 + gm_fmt_u64(buf + 1, 0 - (uint64_t)v);
}
