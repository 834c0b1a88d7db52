// GPU kernel of the moments family (lib/ops/moments.c; float32 and float64): each output's mean and variance
// in one read of x, packed as the CPU packs them (the means, then the variances), with
// lib/ops/moments_math.h's shifted sums and lib/reduce_plan.h's plan.
//
// A block per output: thread t adds the shifted sums of reduced elements t, t + MOM_THREADS, ... in
// double, and a fixed tree in shared memory joins the threads' sums, so results do not depend on timing.
#include "common.cuh"
#include "ops/moments_math.h"
#include "reduce_plan.h"

namespace {

constexpr int MOM_THREADS = EM_GPU_THREADS; // a power of two: the tree halves it
static_assert((MOM_THREADS & (MOM_THREADS - 1)) == 0, "the block tree needs a power of two");

template <class T>
__global__ void __launch_bounds__(MOM_THREADS) moments_kernel(em_reduce_plan p, const T *x, T *out, int64_t nout) {
    __shared__ double s1[MOM_THREADS], s2[MOM_THREADS];
    const int t = threadIdx.x;
    for (int64_t oi = blockIdx.x; oi < nout; oi += gridDim.x) {
        const int64_t o = oi / p.inner, b = oi % p.inner;
        const T *xo = x + em_plan_offset(p.nkeep, p.kdim, p.kstride, o) + b; // reduced element 0
        const double shift = p.count ? em_moments_shift((double)xo[0]) : 0.0;
        double a1 = 0, a2 = 0;
        for (int64_t r = t; r < p.count; r += MOM_THREADS) {
            const int64_t s = r / p.run, j = r - s * p.run;
            const double d = (double)xo[em_plan_offset(p.nred, p.rdim, p.rstride, s) + j] - shift;
            a1 += d;
            a2 += em_mul_rn_f64(d, d);
        }
        s1[t] = a1;
        s2[t] = a2;
        __syncthreads();
        for (int w = MOM_THREADS / 2; w > 0; w >>= 1) {
            if (t < w) {
                s1[t] += s1[t + w];
                s2[t] += s2[t + w];
            }
            __syncthreads();
        }
        if (t == 0) {
            const double n = (double)p.count;
            out[oi] = (T)em_moments_mean(shift, s1[0], n);
            out[nout + oi] = (T)em_moments_variance(s1[0], s2[0], n);
        }
        __syncthreads(); // s1[0], s2[0] are read before the next output overwrites them
    }
}

template <class T> int moments_gpu(const em_gpu_call *c, em_gpu_tensor *out, cudaStream_t stream) {
    const em_gpu_tensor *x = &c->in[0];
    const int64_t nout = out->numel / 2;
    em_reduce_plan p;
    em_reduce_plan_init(&p, x->ndim, x->shape, x->strides, (uint64_t)c->a->i[0]);
    const unsigned blocks = nout < 65535 * 32 ? (unsigned)nout : 65535u * 32u;
    moments_kernel<T><<<blocks, MOM_THREADS, 0, stream>>>(p, static_cast<const T *>(x->data),
                                                          static_cast<T *>(out->data), nout);
    return em_gpu_launched(c->device, c->name);
}

} // namespace

// The entry of lib/ops/moments.def's row. i[0] the reduced axes' bitmask.
EM_GPU_FLOAT_OP(moments, moments_gpu<T>(c, out, stream))
