// GPU kernels of the depthwise family (lib/ops/depthwise.c; float32 and float64): a thread per element of the
// output, the input gradient or the filter gradient, each summing its products in double in the CPU
// kernels' order (lib/ops/depthwise_math.h), so that both devices give the same values; the gradients
// gather (no atomics). The index math is conv_geometry.h's and depthwise_math.h's.
#include "common.cuh"
#include "ops/depthwise_math.h"

namespace {

// y (n, oy, ox, j = c M + m): the taps of input channel c times filter (ky, kx, j).
template <class T> __global__ void dw_forward(const T *x, const T *f, T *y, em_conv_geom g, int64_t M, int64_t total) {
    EM_GPU_LOOP(i, total) {
        const int64_t j = i % g.o, ox = i / g.o % g.ow, oy = i / g.o / g.ow % g.oh, n = i / g.o / g.ow / g.oh;
        double acc = 0;
        for (int64_t ky = 0; ky < g.kh; ky++) {
            const int64_t iy = em_conv_in_y(&g, oy, ky);
            if (iy < 0 || iy >= g.h) continue;
            for (int64_t kx = 0; kx < g.kw; kx++) {
                const int64_t ix = em_conv_in_x(&g, ox, kx);
                if (ix < 0 || ix >= g.w) continue;
                acc += em_mul_rn((double)x[((n * g.h + iy) * g.w + ix) * g.c + j / M], (double)f[(ky * g.kw + kx) * g.o + j]);
            }
        }
        y[i] = (T)acc;
    }
}

// dx (n, iy, ix, c): over the taps that read it and the multiplier m, dy times the filter.
template <class T> __global__ void dw_input_grad(const T *f, const T *dy, T *dx, em_conv_geom g, int64_t M, int64_t total) {
    EM_GPU_LOOP(i, total) {
        const int64_t c = i % g.c, ix = i / g.c % g.w, iy = i / g.c / g.w % g.h, n = i / g.c / g.w / g.h;
        double acc = 0;
        for (int64_t ky = 0; ky < g.kh; ky++) {
            const int64_t oy = em_dw_out_of(iy, ky, g.sh, g.dh, g.ph, g.oh);
            if (oy < 0) continue;
            for (int64_t kx = 0; kx < g.kw; kx++) {
                const int64_t ox = em_dw_out_of(ix, kx, g.sw, g.dw, g.pw, g.ow);
                if (ox < 0) continue;
                for (int64_t m = 0; m < M; m++)
                    acc += em_mul_rn((double)dy[((n * g.oh + oy) * g.ow + ox) * g.o + c * M + m],
                                     (double)f[(ky * g.kw + kx) * g.o + c * M + m]);
            }
        }
        dx[i] = (T)acc;
    }
}

// dfilter (ky, kx, j = c M + m): over the batch and the output positions, input times dy.
template <class T> __global__ void dw_filter_grad(const T *x, const T *dy, T *df, em_conv_geom g, int64_t M, int64_t total) {
    EM_GPU_LOOP(i, total) {
        const int64_t j = i % g.o, kx = i / g.o % g.kw, ky = i / g.o / g.kw;
        double acc = 0;
        for (int64_t n = 0; n < g.n; n++)
            for (int64_t oy = 0; oy < g.oh; oy++) {
                const int64_t iy = em_conv_in_y(&g, oy, ky);
                if (iy < 0 || iy >= g.h) continue;
                for (int64_t ox = 0; ox < g.ow; ox++) {
                    const int64_t ix = em_conv_in_x(&g, ox, kx);
                    if (ix < 0 || ix >= g.w) continue;
                    acc += em_mul_rn((double)x[((n * g.h + iy) * g.w + ix) * g.c + j / M],
                                     (double)dy[((n * g.oh + oy) * g.ow + ox) * g.o + j]);
                }
            }
        df[i] = (T)acc;
    }
}

// The geometry from the input shape xs (NHWC) and filter shape fs ([KH,KW,C,M]) and the attributes
// i[0..1] strides, i[2..3] dilations, i[4] padding (checked by the shape rule).
em_conv_geom geom_of(const em_gpu_call *c, const int64_t *xs, const int64_t *fs) {
    em_conv_geom g = {};
    g.n = xs[0], g.h = xs[1], g.w = xs[2], g.c = xs[3], g.kh = fs[0], g.kw = fs[1], g.o = fs[2] * fs[3];
    g.sh = c->a->i[0], g.sw = c->a->i[1], g.dh = c->a->i[2], g.dw = c->a->i[3];
    em_conv_geom_finish(&g, c->a->i[4] == EM_PAD_SAME);
    return g;
}

enum kind { FWD, BPI, BPF };

template <class T> int dw_gpu(const em_gpu_call *c, em_gpu_tensor *out, cudaStream_t stream, kind k) {
    const em_gpu_tensor *a = &c->in[0], *b = &c->in[1];
    const int64_t *xs = k == BPI ? out->shape : a->shape, *fs = k == FWD ? b->shape : k == BPI ? a->shape : out->shape;
    const em_conv_geom g = geom_of(c, xs, fs);
    const T *pa = static_cast<const T *>(a->data), *pb = static_cast<const T *>(b->data);
    T *po = static_cast<T *>(out->data);
    const unsigned blocks = em_gpu_blocks(out->numel);
    if (k == FWD) dw_forward<T><<<blocks, EM_GPU_THREADS, 0, stream>>>(pa, pb, po, g, fs[3], out->numel);
    else if (k == BPI) dw_input_grad<T><<<blocks, EM_GPU_THREADS, 0, stream>>>(pa, pb, po, g, fs[3], out->numel);
    else dw_filter_grad<T><<<blocks, EM_GPU_THREADS, 0, stream>>>(pa, pb, po, g, fs[3], out->numel);
    return em_gpu_launched(c->device, c->name);
}

} // namespace

// The entries of lib/ops/depthwise.def's rows.
EM_GPU_FLOAT_OP(depthwise_conv2d, dw_gpu<T>(c, out, stream, FWD))
EM_GPU_FLOAT_OP(depthwise_backprop_input, dw_gpu<T>(c, out, stream, BPI))
EM_GPU_FLOAT_OP(depthwise_backprop_filter, dw_gpu<T>(c, out, stream, BPF))
