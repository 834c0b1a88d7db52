/* PNG encoding shared by lib/png.c (files, plots) and lib/summary.c (image
 * summaries). Not installed. */
#ifndef EMBER_IMAGE_H
#define EMBER_IMAGE_H

#include "internal.h"

/* The geometry of an image tensor: [H,W] or [H,W,C], and with batch_ok also
 * [N,H,W,C]; C is 1, 3 or 4. Errors name `op`. Returns 0 or -1. */
int em__image_geometry(const char *op, em_tensor *t, bool batch_ok, int64_t *n, int *h, int *w, int *c);

/* The elements of a uint8 or float image tensor as 8-bit pixels (floats in
 * [0,1] are scaled by 255, clamped and rounded; NaN becomes 0). malloc'd. */
uint8_t *em__image_pixels(const char *op, em_tensor *t);

/* Encodes h x w pixels of c channels (1, 3 or 4), rows packed, as a PNG in a
 * malloc'd buffer. Returns 0 or -1 with an error naming `op`. */
int em__png_encode(const char *op, const uint8_t *px, int h, int w, int c, void **png, size_t *size);

#endif
