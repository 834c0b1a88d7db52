// Random ops on the GPU (lib/ops/random.c): categorical samples each row of
// logits through lib/philox.h's em_rng_categorical, the CPU's code;
// random_normal, random_uniform and truncated_normal draw element i from the Philox stream at position
// counter + i (attrs seed, counter). Each value is lib/philox.h's function of
// the op (em_rng_<op>_f32/_f64), the code the CPU runs, so a seed gives the
// same numbers on either device. Uniform draws are bit-identical; normal
// ones go through logf/cosf (log/cos), whose CUDA versions are within 1-2 ulp
// of the host's libm.
//
// Attributes: f[0], f[1] the parameters (mean and stddev, or lo and hi); the
// output's dtype (float32 or float64) is the attrs' dtype, checked by the
// shape rule.
#include "common.cuh"
#include "philox.h"

namespace {

// Launches one op's draws for out's dtype on stream s.
typedef void launch_fn(const em_attrs *a, em_gpu_tensor *out, cudaStream_t s);

template <class T, T (*DRAW)(uint64_t, uint64_t, T, T)>
__global__ void draw_kernel(T *y, int64_t n, uint64_t seed, uint64_t counter, T p0, T p1) {
    EM_GPU_LOOP(i, n) y[i] = DRAW(seed, counter + (uint64_t)i, p0, p1);
}

// Element i is DRAW(seed, counter + i, f[0], f[1]).
template <class T, T (*DRAW)(uint64_t, uint64_t, T, T)>
void per_position(const em_attrs *a, em_gpu_tensor *out, cudaStream_t s) {
    draw_kernel<T, DRAW><<<em_gpu_blocks(out->numel), EM_GPU_THREADS, 0, s>>>(
        (T *)out->data, out->numel, a->seed, a->counter, (T)a->f[0], (T)a->f[1]);
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
            if (i < (uint64_t)n) y[i] = em_rng_random_uniform_lane_f32(lo, width, b.v[w]);
        }
    }
}

void uniform_f32(const em_attrs *a, em_gpu_tensor *out, cudaStream_t s) {
    // Philox blocks spanned by positions counter .. counter + n - 1.
    int64_t blocks = (int64_t)(((a->counter & 3) + (uint64_t)out->numel + 3) >> 2);
    uniform_f32_kernel<<<em_gpu_blocks(blocks), EM_GPU_THREADS, 0, s>>>(
        (float *)out->data, out->numel, blocks, a->seed, a->counter, (float)a->f[0], (float)(a->f[1] - a->f[0]));
}

// An entry's work: f32 or f64 by the output's dtype.
int draw(const em_gpu_call *c, em_gpu_tensor *out, launch_fn *f32, launch_fn *f64) {
    if (out->dtype != EM_F32 && out->dtype != EM_F64) {
        em_gpu_report("%s: no GPU kernel for dtype %s", c->name, em_gpu_dtype_name(out->dtype));
        return -1;
    }
    if (out->numel == 0) return 0;
    cudaStream_t s = em_gpu_stream(c->device);
    if (!s) return -1;
    (out->dtype == EM_F32 ? f32 : f64)(c->a, out, s);
    return em_gpu_launched(c->device, c->name);
}

// categorical: sample i of logits row i / samples, at position counter + i.
template <class T, int64_t (*SAMPLE)(uint64_t, uint64_t, const T *, int64_t)>
__global__ void categorical_kernel(int64_t *y, int64_t n, const T *logits, int64_t classes, int64_t samples,
                                   uint64_t seed, uint64_t counter) {
    EM_GPU_LOOP(i, n) y[i] = SAMPLE(seed, counter + (uint64_t)i, logits + i / samples * classes, classes);
}

} // namespace

// The entries of lib/ops/random.def.
int em_gpu_op_categorical(const em_gpu_call *c, em_gpu_tensor *out) {
    const em_gpu_tensor *x = &c->in[0];
    cudaStream_t s = em_gpu_stream(c->device);
    if (!s) return -1;
    int64_t classes = x->shape[1], samples = out->shape[1];
    if (x->dtype == EM_F32)
        categorical_kernel<float, em_rng_categorical_f32><<<em_gpu_blocks(out->numel), EM_GPU_THREADS, 0, s>>>(
            (int64_t *)out->data, out->numel, (const float *)x->data, classes, samples, c->a->seed, c->a->counter);
    else
        categorical_kernel<double, em_rng_categorical_f64><<<em_gpu_blocks(out->numel), EM_GPU_THREADS, 0, s>>>(
            (int64_t *)out->data, out->numel, (const double *)x->data, classes, samples, c->a->seed, c->a->counter);
    return em_gpu_launched(c->device, c->name);
}
int em_gpu_op_random_normal(const em_gpu_call *c, em_gpu_tensor *out) {
    return draw(c, out, per_position<float, em_rng_random_normal_f32>, per_position<double, em_rng_random_normal_f64>);
}
int em_gpu_op_random_uniform(const em_gpu_call *c, em_gpu_tensor *out) {
    return draw(c, out, uniform_f32, per_position<double, em_rng_random_uniform_f64>);
}
int em_gpu_op_truncated_normal(const em_gpu_call *c, em_gpu_tensor *out) {
    return draw(c, out, per_position<float, em_rng_truncated_normal_f32>,
                per_position<double, em_rng_truncated_normal_f64>);
}
