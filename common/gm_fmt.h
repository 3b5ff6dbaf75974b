/* gm_fmt.h -- numbers as text: the bytes printf writes for "%.<P>g", "%u" and "%lld", several times faster.
 *
 * glibc formats a double through multi-precision arithmetic (about 250 ns for "%.9g", 350 ns for "%.17g"),
 * and a sample table prints ten numbers a row. gm_fmt_g works out the P significant digits with 128-bit
 * integer arithmetic, exactly: the digits of the exact binary value, rounded half to even as glibc does in
 * the default rounding mode. It falls back to snprintf for zero, infinities, NaN and the magnitudes whose
 * scaled value does not fit 128 bits (below about 1e-16 or above 1e38 at P = 17). */
#ifndef GM_FMT_H
#define GM_FMT_H

#include <stddef.h>
#include <stdint.h>

#define GM_FMT_G_LEN 32 /* room for any gm_fmt_g result and its terminating NUL */

/* Writes 'v' as snprintf(buf, GM_FMT_G_LEN, "%.*g", prec, v) does in the "C" locale, for 'prec' 1..17, into
 * 'buf' (GM_FMT_G_LEN bytes), NUL-terminated. Returns the length. */
size_t gm_fmt_g(char *buf, double v, int prec);
/* Writes the decimal digits of 'v' into 'buf' (20 bytes at least), not NUL-terminated. Returns the length. */
size_t gm_fmt_u64(char *buf, uint64_t v);
/* Writes 'v' in decimal, with a '-' when negative, into 'buf' (20 bytes at least), not NUL-terminated.
 * Returns the length. */
size_t gm_fmt_i64(char *buf, int64_t v);

#endif
