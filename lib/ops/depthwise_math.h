/* The index math of the depthwise convolution (lib/ops/depthwise.c, gpu/depthwise.cu), beside
 * conv_geometry.h's: which output position reads input position `in` through tap `k`. Each kernel sums an
 * element's products in double, taps in row-major order (and the multiplier's m after them for the input
 * gradient, the batch and output positions in order for the filter gradient), so that the CPU and the GPU
 * give the same values. */
#ifndef EMBER_DEPTHWISE_MATH_H
#define EMBER_DEPTHWISE_MATH_H

#include "../conv_geometry.h"
#include "../em_hd.h"

/* The output index o with o * stride - pad + k * dilation == in, or -1 when there is none in [0, out). */
EM_HD static inline int64_t em_dw_out_of(int64_t in, int64_t k, int64_t stride, int64_t dilation, int64_t pad,
                                         int64_t out) {
    int64_t num = in + pad - k * dilation;
    if (num < 0 || num % stride) return -1;
    return num / stride < out ? num / stride : -1;
}

#endif
