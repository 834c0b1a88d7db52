// The optimizers' fused update kernels (em_gpu_update): one thread per
// element, each applying lib/optim_math.h's rule, the one lib/optim.c's CPU
// loops apply, with the step's scalars converted to T as the CPU converts
// them.
#include "common.cuh"
#include "optim_math.h"

namespace {

// The optimizers' update kernels: one thread per element (grid stride), each
// applying lib/optim_math.h's rule, the one lib/optim.c's CPU loops apply.
template <class T> struct update_args {
    T *w, *s0, *s1, *s2;
    const T *g;
    typename em_optim_scalars_of<T>::type k; // the step's scalars in T, as the CPU kernels convert them
    bool centered;
    int64_t n;
};

template <class T> __global__ void sgd_kernel(const update_args<T> u) {
    EM_GPU_LOOP(i, u.n) em_optim_sgd(&u.w[i], u.g[i], u.k);
}

template <class T> __global__ void momentum_kernel(const update_args<T> u) {
    EM_GPU_LOOP(i, u.n) em_optim_momentum(&u.w[i], &u.s0[i], u.g[i], u.k);
}

template <class T> __global__ void adagrad_kernel(const update_args<T> u) {
    EM_GPU_LOOP(i, u.n) em_optim_adagrad(&u.w[i], &u.s0[i], u.g[i], u.k);
}

template <class T> __global__ void adagrad_da_kernel(const update_args<T> u) {
    EM_GPU_LOOP(i, u.n) em_optim_adagrad_da(&u.w[i], &u.s0[i], &u.s1[i], u.g[i], u.k);
}

template <class T> __global__ void rmsprop_kernel(const update_args<T> u) {
    EM_GPU_LOOP(i, u.n) {
        T *mg = u.centered ? &u.s2[i] : nullptr; // the mean gradient: centered only
        em_optim_rmsprop(&u.w[i], &u.s0[i], &u.s1[i], mg, u.g[i], u.k, u.centered);
    }
}

template <class T> __global__ void adam_kernel(const update_args<T> u) {
    EM_GPU_LOOP(i, u.n) em_optim_adam(&u.w[i], &u.s0[i], &u.s1[i], u.g[i], u.k);
}

template <class T>
int run_update(const em_update_coeffs *c, em_gpu_tensor *var, const em_gpu_tensor *grad, em_gpu_tensor *const *slots,
               int ordinal) {
    update_args<T> u = {};
    u.w = (T *)var->data;
    u.g = (const T *)grad->data;
    T *s[3] = {nullptr, nullptr, nullptr};
    int nslots = c->kind == EM_UPDATE_SGD                                        ? 0
                 : c->kind == EM_UPDATE_MOMENTUM || c->kind == EM_UPDATE_ADAGRAD ? 1
                 : c->kind == EM_UPDATE_RMSPROP && c->centered                   ? 3
                                                                                 : 2;
    for (int k = 0; k < nslots; k++)
        s[k] = (T *)slots[k]->data;
    u.s0 = s[0];
    u.s1 = s[1];
    u.s2 = s[2];
    em_optim_scalars(c, &u.k);
    u.centered = c->centered;
    u.n = var->numel;
    cudaStream_t st = em_gpu_stream(ordinal);
    if (!st) return -1;
    unsigned blocks = em_gpu_blocks(u.n);
    switch (c->kind) {
    case EM_UPDATE_SGD: sgd_kernel<T><<<blocks, EM_GPU_THREADS, 0, st>>>(u); break;
    case EM_UPDATE_MOMENTUM: momentum_kernel<T><<<blocks, EM_GPU_THREADS, 0, st>>>(u); break;
    case EM_UPDATE_ADAGRAD: adagrad_kernel<T><<<blocks, EM_GPU_THREADS, 0, st>>>(u); break;
    case EM_UPDATE_ADAGRAD_DA: adagrad_da_kernel<T><<<blocks, EM_GPU_THREADS, 0, st>>>(u); break;
    case EM_UPDATE_RMSPROP: rmsprop_kernel<T><<<blocks, EM_GPU_THREADS, 0, st>>>(u); break;
    case EM_UPDATE_ADAM: adam_kernel<T><<<blocks, EM_GPU_THREADS, 0, st>>>(u); break;
    default: em_gpu_report("apply_updates: update rule %d has no GPU kernel", (int)c->kind); return -1;
    }
    return em_gpu_launched(ordinal, "apply_updates");
}

} // namespace

int em_gpu_update(const em_update_coeffs *u, em_gpu_tensor *var, const em_gpu_tensor *grad,
                   em_gpu_tensor *const *slots, int ordinal) {
    if (var->numel == 0) return 0;
    if (var->dtype == EM_F32) return run_update<float>(u, var, grad, slots, ordinal);
    if (var->dtype == EM_F64) return run_update<double>(u, var, grad, slots, ordinal);
    em_gpu_report("apply_updates: dtype %s cannot be trained (float32 or float64)",
                   em_gpu_dtype_name(var->dtype));
    return -1;
}
