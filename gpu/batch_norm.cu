// GPU kernels of the batch_norm family (lib/ops/batch_norm.c; float32 and float64): training-mode batch norm
// over every axis but the last and its fused backward op, with the CPU's buffers (forward
// [y | mean | rstd | var], backward [dscale | doffset | dx]) and lib/ops/batch_norm_math.h's formulas.
//
// A block per channel: its threads add up the channel's sums over the rows (double) and join them by a fixed
// tree in shared memory, so results do not depend on timing; the same block then writes the channel's y (or
// dx) with the statistics it holds in double, as the CPU does.
#include "common.cuh"
#include "ops/batch_norm_math.h"

namespace {

constexpr int BN_THREADS = EM_GPU_THREADS; // a power of two: the tree halves it
static_assert((BN_THREADS & (BN_THREADS - 1)) == 0, "the block tree needs a power of two");

// The sums of a and b over the block's threads, by a fixed tree; buf holds 2 BN_THREADS.
__device__ double2 block_sum2(double a, double b, double *buf) {
    const int t = threadIdx.x;
    buf[t] = a;
    buf[BN_THREADS + t] = b;
    __syncthreads();
    for (int w = BN_THREADS / 2; w > 0; w >>= 1) {
        if (t < w) {
            buf[t] += buf[t + w];
            buf[BN_THREADS + t] += buf[BN_THREADS + t + w];
        }
        __syncthreads();
    }
    double2 r = make_double2(buf[0], buf[BN_THREADS]);
    __syncthreads();
    return r;
}

template <class T>
__global__ void bn_forward(const T *x, const T *scale, const T *offset, T *out, int64_t rows, int64_t C, double eps) {
    __shared__ double buf[2 * BN_THREADS];
    const int64_t numel = rows * C;
    for (int64_t j = blockIdx.x; j < C; j += gridDim.x) {
        double s = 0;
        for (int64_t r = threadIdx.x; r < rows; r += BN_THREADS) s += (double)x[r * C + j];
        const double inv_rows = rows ? 1.0 / (double)rows : 0, mean = block_sum2(s, 0, buf).x * inv_rows;
        double q = 0;
        for (int64_t r = threadIdx.x; r < rows; r += BN_THREADS) {
            double d = (double)x[r * C + j] - mean;
            q += d * d;
        }
        const double var = block_sum2(q, 0, buf).x * inv_rows, rstd = em_bn_rstd(var, eps);
        for (int64_t r = threadIdx.x; r < rows; r += BN_THREADS)
            out[r * C + j] = (T)em_bn_y((double)x[r * C + j], mean, rstd, (double)scale[j], (double)offset[j]);
        if (threadIdx.x == 0) {
            out[numel + j] = (T)mean;
            out[numel + C + j] = (T)rstd;
            out[numel + 2 * C + j] = (T)var;
        }
    }
}

template <class T>
__global__ void bn_backward(const T *x, const T *stats, const T *scale, const T *dy, T *out, int64_t rows, int64_t C) {
    __shared__ double buf[2 * BN_THREADS];
    const int64_t numel = rows * C;
    for (int64_t j = blockIdx.x; j < C; j += gridDim.x) {
        const double mean = (double)stats[numel + j], rstd = (double)stats[numel + C + j];
        double a = 0, b = 0;
        for (int64_t r = threadIdx.x; r < rows; r += BN_THREADS) {
            double g = (double)dy[r * C + j];
            a += g * (((double)x[r * C + j] - mean) * rstd);
            b += g;
        }
        const double2 s = block_sum2(a, b, buf);
        const double inv_rows = rows ? 1.0 / (double)rows : 0;
        for (int64_t r = threadIdx.x; r < rows; r += BN_THREADS)
            out[2 * C + r * C + j] = (T)em_bn_dx((double)x[r * C + j], (double)dy[r * C + j], mean, rstd,
                                                 (double)scale[j], s.x, s.y, inv_rows);
        if (threadIdx.x == 0) {
            out[j] = (T)s.x;
            out[C + j] = (T)s.y;
        }
    }
}

unsigned channel_blocks(int64_t C) { return C < 65535 * 32 ? (unsigned)C : 65535u * 32u; }

template <class T> int bn_gpu(const em_gpu_call *c, em_gpu_tensor *out, cudaStream_t stream) {
    const em_gpu_tensor *x = &c->in[0];
    const int64_t C = x->shape[x->ndim - 1];
    if (C == 0) return 0;
    bn_forward<T><<<channel_blocks(C), BN_THREADS, 0, stream>>>(
        static_cast<const T *>(x->data), static_cast<const T *>(c->in[1].data), static_cast<const T *>(c->in[2].data),
        static_cast<T *>(out->data), x->numel / C, C, c->a->f[0]);
    return em_gpu_launched(c->device, c->name);
}

template <class T> int bn_grad_gpu(const em_gpu_call *c, em_gpu_tensor *out, cudaStream_t stream) {
    const em_gpu_tensor *x = &c->in[0];
    const int64_t C = x->shape[x->ndim - 1];
    if (C == 0) return 0;
    bn_backward<T><<<channel_blocks(C), BN_THREADS, 0, stream>>>(
        static_cast<const T *>(x->data), static_cast<const T *>(c->in[1].data), static_cast<const T *>(c->in[2].data),
        static_cast<const T *>(c->in[3].data), static_cast<T *>(out->data), x->numel / C, C);
    return em_gpu_launched(c->device, c->name);
}

} // namespace

// The entries of lib/ops/batch_norm.def's computing rows. f[0] eps.
EM_GPU_FLOAT_OP(batch_norm, bn_gpu<T>(c, out, stream))
EM_GPU_FLOAT_OP(batch_norm_grad, bn_grad_gpu<T>(c, out, stream))
