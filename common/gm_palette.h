/* gm_palette.h -- the class colours every gridmill output and report shares: fixed by class code (tab20
 * without its greys, then golden-angle hues in varied lightness and saturation, nudged until no two codes
 * share a colour), the same as scripts/gridmill-report's ClassPalette, colour for colour. */
#ifndef GM_PALETTE_H
#define GM_PALETTE_H

#include <stdint.h>

/* Fills rgb[c] with the colour of class code c, for c in 0..n-1. */
void gm_palette_classes(uint32_t n, uint8_t (*rgb)[3]);

#endif
