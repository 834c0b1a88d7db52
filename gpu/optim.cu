// The optimizers' fused update kernels (em_gpu_update): one thread per
// element, each applying lib/optim_math.h's rule, the one lib/optim.c's CPU
// loops apply, with the step's scalars converted to T as the CPU converts
// them. bfloat16 and float16 variables (their slots and gradients alike)
// are updated in float32, each element rounded back once.
#include "common.cuh"
#include "ops/narrow.h"
#include "optim_math.h"

namespace {

// A stored element S as the rules compute it (T, get) and as it is written
// back (put): float32 and float64 as they are, the narrow dtypes in float32.
template <class S> struct upd_io {
    typedef S T;
    __device__ static T get(S v) { return v; }
    __device__ static S put(T v) { return v; }
};
template <int D> struct upd_io<narrow_elem<D>> {
    typedef float T;
    __device__ static float get(narrow_elem<D> v) { return narrow_io<D>::widen(v.bits); }
    __device__ static narrow_elem<D> put(float v) { return {narrow_io<D>::round(v)}; }
};

// The optimizers' update kernels: one thread per element (grid stride), each
// applying lib/optim_math.h's rule, the one lib/optim.c's CPU loops apply, to
// the element's values read into registers (the gradient first: it may be
// the variable itself) and written back.
template <class S> struct update_args {
    typedef upd_io<S> io;
    typedef typename io::T T;
    S *w, *s0, *s1, *s2;
    const S *g;
    typename em_optim_scalars_of<T>::type k; // the step's scalars in T, as the CPU kernels convert them
    bool centered;
    int64_t n;
};

template <class S> __global__ void sgd_kernel(const update_args<S> u) {
    typedef upd_io<S> io;
    EM_GPU_LOOP(i, u.n) {
        auto g = io::get(u.g[i]), w = io::get(u.w[i]);
        em_optim_sgd(&w, g, u.k);
        u.w[i] = io::put(w);
    }
}

template <class S> __global__ void momentum_kernel(const update_args<S> u) {
    typedef upd_io<S> io;
    EM_GPU_LOOP(i, u.n) {
        auto g = io::get(u.g[i]), w = io::get(u.w[i]), a = io::get(u.s0[i]);
        em_optim_momentum(&w, &a, g, u.k);
        u.w[i] = io::put(w), u.s0[i] = io::put(a);
    }
}

template <class S> __global__ void adagrad_kernel(const update_args<S> u) {
    typedef upd_io<S> io;
    EM_GPU_LOOP(i, u.n) {
        auto g = io::get(u.g[i]), w = io::get(u.w[i]), a = io::get(u.s0[i]);
        em_optim_adagrad(&w, &a, g, u.k);
        u.w[i] = io::put(w), u.s0[i] = io::put(a);
    }
}

template <class S> __global__ void adagrad_da_kernel(const update_args<S> u) {
    typedef upd_io<S> io;
    EM_GPU_LOOP(i, u.n) {
        auto g = io::get(u.g[i]), w = io::get(u.w[i]), gs = io::get(u.s0[i]), g2 = io::get(u.s1[i]);
        em_optim_adagrad_da(&w, &gs, &g2, g, u.k);
        u.w[i] = io::put(w), u.s0[i] = io::put(gs), u.s1[i] = io::put(g2);
    }
}

template <class S> __global__ void rmsprop_kernel(const update_args<S> u) {
    typedef upd_io<S> io;
    EM_GPU_LOOP(i, u.n) {
        auto g = io::get(u.g[i]), w = io::get(u.w[i]), ms = io::get(u.s0[i]), mom = io::get(u.s1[i]);
        auto mg = u.centered ? io::get(u.s2[i]) : decltype(g)(0); // the mean gradient: centered only
        em_optim_rmsprop(&w, &ms, &mom, u.centered ? &mg : nullptr, g, u.k, u.centered);
        u.w[i] = io::put(w), u.s0[i] = io::put(ms), u.s1[i] = io::put(mom);
        if (u.centered) u.s2[i] = io::put(mg);
    }
}

template <class S> __global__ void adam_kernel(const update_args<S> u) {
    typedef upd_io<S> io;
    EM_GPU_LOOP(i, u.n) {
        auto g = io::get(u.g[i]), w = io::get(u.w[i]), m = io::get(u.s0[i]), v = io::get(u.s1[i]);
        em_optim_adam(&w, &m, &v, g, u.k);
        u.w[i] = io::put(w), u.s0[i] = io::put(m), u.s1[i] = io::put(v);
    }
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
    if (var->dtype == EM_BF16) return run_update<narrow_elem<EM_BF16>>(u, var, grad, slots, ordinal);
    if (var->dtype == EM_F16) return run_update<narrow_elem<EM_F16>>(u, var, grad, slots, ordinal);
    em_gpu_report("apply_updates: dtype %s cannot be trained (a float dtype)",
                   em_gpu_dtype_name(var->dtype));
    return -1;
}
