/* Convolution and pooling geometry shared by the CPU kernels and the CUDA
 * backend: output sizes and padding by TensorFlow's rule, and which input
 * pixel a filter tap or pooling window reads.
 *
 * Layouts: input NHWC, filter HWIO, output NHWC. SAME gives ceil(in / stride)
 * outputs and pads (total) max((out - 1) * stride + effective_k - in, 0),
 * the smaller half before; VALID gives ceil((in - effective_k + 1) / stride)
 * with no padding, where effective_k = (k - 1) * dilation + 1. Header-only and
 * free of libc calls. */
#ifndef EMBER_CONV_GEOMETRY_H
#define EMBER_CONV_GEOMETRY_H

#include <stdbool.h>
#include <stdint.h>

#if defined(__CUDACC__)
#define EM_CONV_FN static inline __host__ __device__
#else
#define EM_CONV_FN static inline
#endif

typedef struct em_conv_geom {
    int64_t n, h, w, c; /* input NHWC */
    int64_t kh, kw, o;  /* filter taps and output channels (pools: o == c) */
    int64_t oh, ow;     /* output height and width */
    int64_t sh, sw;     /* strides */
    int64_t dh, dw;     /* dilations (pools: 1) */
    int64_t ph, pw;     /* padding before: top, left */
} em_conv_geom;

/* Output size and padding before along one axis; false when VALID and the
 * (dilated) window is larger than the input. */
EM_CONV_FN bool em_conv_out_dim(int64_t in, int64_t k, int64_t stride, int64_t dilation, bool same, int64_t *out,
                                int64_t *pad_before) {
    int64_t ek = (k - 1) * dilation + 1;
    if (same) {
        *out = (in + stride - 1) / stride;
        int64_t total = (*out - 1) * stride + ek - in;
        *pad_before = total > 0 ? total / 2 : 0;
        return true;
    }
    *pad_before = 0;
    if (in < ek) return false;
    *out = (in - ek) / stride + 1;
    return true;
}

/* Fills oh, ow, ph, pw from the other fields; false as em_conv_out_dim. */
EM_CONV_FN bool em_conv_geom_finish(em_conv_geom *g, bool same) {
    return em_conv_out_dim(g->h, g->kh, g->sh, g->dh, same, &g->oh, &g->ph) &&
           em_conv_out_dim(g->w, g->kw, g->sw, g->dw, same, &g->ow, &g->pw);
}

/* Input row read by output row oy through filter row ky (may lie outside
 * [0, h): padding); likewise columns. */
EM_CONV_FN int64_t em_conv_in_y(const em_conv_geom *g, int64_t oy, int64_t ky) { return oy * g->sh - g->ph + ky * g->dh; }
EM_CONV_FN int64_t em_conv_in_x(const em_conv_geom *g, int64_t ox, int64_t kx) { return ox * g->sw - g->pw + kx * g->dw; }

/* A pooling window clipped to the input: rows [*y0, *y1), columns [*x0, *x1).
 * Never empty (TF's padding is smaller than the window). */
EM_CONV_FN void em_pool_window(const em_conv_geom *g, int64_t oy, int64_t ox, int64_t *y0, int64_t *y1, int64_t *x0,
                               int64_t *x1) {
    int64_t ys = oy * g->sh - g->ph, xs = ox * g->sw - g->pw;
    *y0 = ys < 0 ? 0 : ys;
    *x0 = xs < 0 ? 0 : xs;
    *y1 = ys + g->kh < g->h ? ys + g->kh : g->h;
    *x1 = xs + g->kw < g->w ? xs + g->kw : g->w;
}

#endif
