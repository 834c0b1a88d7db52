// Random ops on the GPU (lib/ops/random.c): random_normal, random_uniform and
// truncated_normal draw element i from the Philox stream at position
// counter + i (attrs seed, counter) through lib/philox.h, the code the CPU
// runs, so a seed gives the same numbers on either device. Uniform draws are
// bit-identical; normal ones go through logf/cosf (log/cos), whose CUDA
// versions are within 1-2 ulp of the host's libm.
//
// Attributes: f[0], f[1] the parameters (mean and stddev, or lo and hi); the
// output's dtype (float32 or float64) is the attrs' dtype, checked by the
// shape rule.
#include "common.cuh"
#include "philox.h"

namespace {

enum draw_kind { NORMAL, TRUNCATED };

// p0 + p1 * z for a standard normal z, per position.
template <class T, int KIND> __device__ inline T standard(uint64_t seed, uint64_t pos);
template <> __device__ inline float standard<float, NORMAL>(uint64_t s, uint64_t p) {
    return em_rng_normal_f32(s, p, 0);
}
template <> __device__ inline double standard<double, NORMAL>(uint64_t s, uint64_t p) {
    return em_rng_normal_f64(s, p, 0);
}
template <> __device__ inline float standard<float, TRUNCATED>(uint64_t s, uint64_t p) {
    return em_rng_truncated_f32(s, p);
}
template <> __device__ inline double standard<double, TRUNCATED>(uint64_t s, uint64_t p) {
    return em_rng_truncated_f64(s, p);
}

template <class T, int KIND>
__global__ void normal_kernel(T *y, int64_t n, uint64_t seed, uint64_t counter, T p0, T p1) {
    EM_GPU_LOOP(i, n) y[i] = p0 + em_gpu_mul(p1, standard<T, KIND>(seed, counter + (uint64_t)i));
}

// float32 uniforms: one Philox block gives the four positions 4b .. 4b+3
// (em_rng_uniform_f32), so each thread draws one block and writes the
// positions of it that fall in [counter, counter + n).
__global__ void uniform_f32_kernel(float *y, int64_t n, int64_t blocks, uint64_t seed, uint64_t counter, float lo,
                                   float width) {
    EM_GPU_LOOP(j, blocks) {
        uint64_t base = ((counter >> 2) + (uint64_t)j) << 2;
        em_philox4 b = em_philox_block(seed, base >> 2, EM_PHILOX_LANES);
        for (int w = 0; w < 4; w++) {
            uint64_t i = base + (uint64_t)w - counter; // wraps below counter: then >= n
            if (i < (uint64_t)n) y[i] = lo + em_gpu_mul(width, em_philox_f32(b.v[w]));
        }
    }
}

__global__ void uniform_f64_kernel(double *y, int64_t n, uint64_t seed, uint64_t counter, double p0, double p1) {
    EM_GPU_LOOP(i, n) y[i] = p0 + em_gpu_mul(p1 - p0, em_rng_uniform_f64(seed, counter + (uint64_t)i));
}

template <int KIND> int normal(const em_gpu_call *c, em_gpu_tensor *out, cudaStream_t s) {
    const em_attrs *a = c->a;
    unsigned blocks = em_gpu_blocks(out->numel);
    if (out->dtype == EM_F32)
        normal_kernel<float, KIND><<<blocks, EM_GPU_THREADS, 0, s>>>((float *)out->data, out->numel, a->seed,
                                                                     a->counter, (float)a->f[0], (float)a->f[1]);
    else
        normal_kernel<double, KIND>
            <<<blocks, EM_GPU_THREADS, 0, s>>>((double *)out->data, out->numel, a->seed, a->counter, a->f[0], a->f[1]);
    return em_gpu_launched(c->device, c->name);
}

int uniform(const em_gpu_call *c, em_gpu_tensor *out, cudaStream_t s) {
    const em_attrs *a = c->a;
    if (out->dtype == EM_F32) {
        // Philox blocks spanned by positions counter .. counter + n - 1.
        int64_t blocks = (int64_t)(((a->counter & 3) + (uint64_t)out->numel + 3) >> 2);
        uniform_f32_kernel<<<em_gpu_blocks(blocks), EM_GPU_THREADS, 0, s>>>(
            (float *)out->data, out->numel, blocks, a->seed, a->counter, (float)a->f[0], (float)(a->f[1] - a->f[0]));
    } else {
        uniform_f64_kernel<<<em_gpu_blocks(out->numel), EM_GPU_THREADS, 0, s>>>((double *)out->data, out->numel,
                                                                                a->seed, a->counter, a->f[0], a->f[1]);
    }
    return em_gpu_launched(c->device, c->name);
}

} // namespace

extern "C" int em__gpu_random(const em_gpu_call *c, em_gpu_tensor *out) {
    if (c->op != EM_OP_RANDOM_NORMAL && c->op != EM_OP_RANDOM_UNIFORM && c->op != EM_OP_TRUNCATED_NORMAL) {
        em__gpu_report("%s: no GPU kernel", c->name);
        return -1;
    }
    if (out->dtype != EM_F32 && out->dtype != EM_F64) {
        em__gpu_report("%s: no GPU kernel for dtype %s", c->name, em_dtype_name((em_dtype)out->dtype));
        return -1;
    }
    if (out->numel == 0) return 0;
    cudaStream_t s = em_gpu_stream(c->device);
    if (!s) return -1;
    switch (c->op) {
    case EM_OP_RANDOM_NORMAL: return normal<NORMAL>(c, out, s);
    case EM_OP_TRUNCATED_NORMAL: return normal<TRUNCATED>(c, out, s);
    default: return uniform(c, out, s);
    }
}
