/* gm_palette.c -- the class palette, computed as the report's Python computes it: colorsys.hls_to_rgb, values
 * rounded half to even (Python's round), Python's float modulo, and the same nudge past taken colours. */
#include <math.h>
#include <stdlib.h>

#include "gm_palette.h"

static const uint32_t BASE[] = {0x1f77b4, 0xff7f0e, 0x2ca02c, 0xd62728, 0x9467bd, 0x8c564b, 0xe377c2, 0xbcbd22,
                                0x17becf, 0xaec7e8, 0xffbb78, 0x98df8a, 0xff9896, 0xc5b0d5, 0xc49c94, 0xf7b6d2,
                                0xdbdb8d, 0x9edae5};
/* never taken by a generated colour: page white, text, the report's timeline colours */
static const uint32_t RESERVED[] = {0xffffff, 0x000000, 0x222222, 0x3b6e3f, 0xc0504d, 0xc6d0da};

/* Python's x % 1.0 for a float x: the result takes the sign of the divisor. */
static double mod1(double x) {
    double r = fmod(x, 1.0);
    return (r != 0.0 && r < 0.0) ? r + 1.0 : r;
}

/* colorsys._v */
static double hls_value(double m1, double m2, double hue) {
    hue = mod1(hue);
    if (hue < 1.0 / 6.0) return m1 + (m2 - m1) * hue * 6.0;
    if (hue < 0.5) return m2;
    if (hue < 2.0 / 3.0) return m1 + (m2 - m1) * (2.0 / 3.0 - hue) * 6.0;
    return m1;
}

/* colorsys.hls_to_rgb, then round(v * 255) per channel, packed 0xrrggbb */
static uint32_t hls_rgb(double h, double l, double s) {
    double m2 = l <= 0.5 ? l * (1.0 + s) : l + s - l * s, m1 = 2.0 * l - m2;
    double v[3] = {hls_value(m1, m2, h + 1.0 / 3.0), hls_value(m1, m2, h), hls_value(m1, m2, h - 1.0 / 3.0)};
    uint32_t c = 0;
    for (int k = 0; k < 3; k++) c = c << 8 | (uint32_t)nearbyint(v[k] * 255.0); /* half to even, as round() */
    return c;
}

static int taken(const uint32_t *used, uint32_t n, uint32_t c) {
    for (uint32_t i = 0; i < n; i++)
        if (used[i] == c) return 1;
    return 0;
}

void gm_palette_classes(uint32_t n, uint8_t (*rgb)[3]) {
    const uint32_t nres = sizeof RESERVED / sizeof *RESERVED, nbase = sizeof BASE / sizeof *BASE;
    uint32_t *used = malloc(((size_t)n + nres) * sizeof *used), nused = nres;
    if (!used) { /* out of memory: every class black rather than garbage */
        for (uint32_t code = 0; code < n; code++) rgb[code][0] = rgb[code][1] = rgb[code][2] = 0;
        return;
    }
    for (uint32_t i = 0; i < nres; i++) used[i] = RESERVED[i];
    for (uint32_t code = 0; code < n; code++) {
        uint32_t c;
        if (code < nbase) {
            c = BASE[code];
        } else {
            uint32_t k = code - nbase;
            static const double light[] = {0.45, 0.62, 0.33, 0.74}, sat[] = {0.70, 0.90, 0.50};
            c = hls_rgb(mod1(k * 0.6180339887), light[k % 4], sat[(k / 4) % 3]);
        }
        uint32_t r = c >> 16, g = c >> 8 & 255, b = c & 255;
        for (uint32_t step = 1; taken(used, nused, c); step++)
            c = ((r + step) % 256) << 16 | ((g + 3 * step) % 256) << 8 | ((b + 7 * step) % 256);
        used[nused++] = c;
        rgb[code][0] = (uint8_t)(c >> 16);
        rgb[code][1] = (uint8_t)(c >> 8);
        rgb[code][2] = (uint8_t)c;
    }
    free(used);
}
