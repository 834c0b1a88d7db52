// GPU kernels of lib/ops/index.c: gather_nd, scatter_nd and top_k, on
// lib/ops/index_math.h's index math and rank order (the host checked every
// index tuple). scatter_nd is deterministic without atomics: each output
// column adds its tuples' updates in tuple order, as the CPU kernel does.
// top_k ranks by counting: an element's rank is the number of elements of its
// row that index_math.h's order puts before it, so equal values keep their
// order and the result matches the CPU's exactly (O(n) work per element:
// rows of a few thousand elements).
#include "common.cuh"
#include "ops/index_math.h"

namespace {

struct tuple_dims {
    int m;
    int64_t d[EM_MAX_DIMS];
};

tuple_dims dims_of(const int64_t *shape, int m) {
    tuple_dims g = {};
    g.m = m;
    for (int k = 0; k < m; k++) g.d[k] = shape[k];
    return g;
}

int64_t prod(const int64_t *d, int from, int to) {
    int64_t n = 1;
    for (int k = from; k < to; k++) n *= d[k];
    return n;
}

template <class E>
__global__ void gather_nd_kernel(const E *x, const void *tuples, int idx_dtype, size_t isize, tuple_dims g, E *out,
                                 int64_t n, int64_t slice) {
    EM_GPU_LOOP(i, n) {
        int64_t t = i / slice, b = i % slice;
        const char *tuple = static_cast<const char *>(tuples) + t * g.m * isize;
        int64_t row = em_index_nd_row(tuple, idx_dtype, g.m, g.d);
        out[i] = row >= 0 ? x[row * slice + b] : E(0);
    }
}

template <class T>
__global__ void scatter_nd_kernel(const T *u, const void *tuples, int idx_dtype, size_t isize, tuple_dims g, T *out,
                                  int64_t ntuples, int64_t inner) {
    EM_GPU_LOOP(b, inner) {
        for (int64_t t = 0; t < ntuples; t++) {
            const char *tuple = static_cast<const char *>(tuples) + t * g.m * isize;
            int64_t row = em_index_nd_row(tuple, idx_dtype, g.m, g.d);
            if (row >= 0) out[row * inner + b] = (T)(out[row * inner + b] + u[t * inner + b]);
        }
    }
}

template <class T> __device__ bool before(T a, int64_t ia, T b, int64_t ib, bool desc) {
    return em_index_before_int((int64_t)a, ia, (int64_t)b, ib, desc);
}
template <> __device__ bool before<float>(float a, int64_t ia, float b, int64_t ib, bool desc) {
    return em_index_before_float(a, ia, b, ib, desc);
}
template <> __device__ bool before<double>(double a, int64_t ia, double b, int64_t ib, bool desc) {
    return em_index_before_float(a, ia, b, ib, desc);
}

template <class T> __global__ void top_k_kernel(const T *x, int64_t *out, int64_t total, int64_t n, int64_t k, bool desc) {
    EM_GPU_LOOP(i, total) {
        int64_t r = i / n, j = i % n, rank = 0;
        const T *row = x + r * n;
        for (int64_t l = 0; l < n && rank < k; l++) rank += before(row[l], l, row[j], j, desc);
        if (rank < k) out[r * k + rank] = j;
    }
}

size_t elem_size(int dtype) { return em_gpu_dtype_size(dtype); }

} // namespace

// The entries of lib/ops/index.def's rows.
int em_gpu_op_gather_nd(const em_gpu_call *c, em_gpu_tensor *out) {
    if (out->numel == 0) return 0;
    cudaStream_t stream = em_gpu_stream(c->device);
    if (!stream) return -1;
    const em_gpu_tensor *x = &c->in[0], *ind = &c->in[1];
    int m = (int)ind->shape[ind->ndim - 1];
    tuple_dims g = dims_of(x->shape, m);
    int64_t slice = prod(x->shape, m, x->ndim);
    int idx = ind->dtype;
    size_t isize = elem_size(idx);
    switch (elem_size(x->dtype)) { // moved by element size
    case 1: gather_nd_kernel<uint8_t><<<em_gpu_blocks(out->numel), EM_GPU_THREADS, 0, stream>>>(
                static_cast<const uint8_t *>(x->data), ind->data, idx, isize, g, static_cast<uint8_t *>(out->data),
                out->numel, slice); break;
    case 2: gather_nd_kernel<uint16_t><<<em_gpu_blocks(out->numel), EM_GPU_THREADS, 0, stream>>>(
                static_cast<const uint16_t *>(x->data), ind->data, idx, isize, g, static_cast<uint16_t *>(out->data),
                out->numel, slice); break;
    case 4: gather_nd_kernel<uint32_t><<<em_gpu_blocks(out->numel), EM_GPU_THREADS, 0, stream>>>(
                static_cast<const uint32_t *>(x->data), ind->data, idx, isize, g, static_cast<uint32_t *>(out->data),
                out->numel, slice); break;
    default: gather_nd_kernel<uint64_t><<<em_gpu_blocks(out->numel), EM_GPU_THREADS, 0, stream>>>(
                static_cast<const uint64_t *>(x->data), ind->data, idx, isize, g, static_cast<uint64_t *>(out->data),
                out->numel, slice); break;
    }
    return em_gpu_launched(c->device, c->name);
}

int em_gpu_op_scatter_nd(const em_gpu_call *c, em_gpu_tensor *out) {
    if (out->numel == 0) return 0;
    cudaStream_t stream = em_gpu_stream(c->device);
    if (!stream) return -1;
    cudaError_t err = cudaMemsetAsync(out->data, 0, (size_t)out->numel * elem_size(out->dtype), stream);
    if (err != cudaSuccess) return em_gpu_fail(c->name, "cudaMemsetAsync", err);
    const em_gpu_tensor *u = &c->in[0], *ind = &c->in[1];
    int m = (int)ind->shape[ind->ndim - 1];
    int64_t ntuples = prod(ind->shape, 0, ind->ndim - 1), inner = prod(out->shape, m, out->ndim);
    if (ntuples == 0) return 0;
    tuple_dims g = dims_of(out->shape, m);
    EM_GPU_DTYPE_SWITCH(out->dtype, T,
                        scatter_nd_kernel<T><<<em_gpu_blocks(inner), EM_GPU_THREADS, 0, stream>>>(
                            static_cast<const T *>(u->data), ind->data, ind->dtype, elem_size(ind->dtype), g,
                            static_cast<T *>(out->data), ntuples, inner));
    return em_gpu_launched(c->device, c->name);
}

int em_gpu_op_top_k(const em_gpu_call *c, em_gpu_tensor *out) {
    if (out->numel == 0) return 0;
    cudaStream_t stream = em_gpu_stream(c->device);
    if (!stream) return -1;
    const em_gpu_tensor *x = &c->in[0];
    int64_t n = x->shape[x->ndim - 1];
    EM_GPU_DTYPE_SWITCH(x->dtype, T,
                        top_k_kernel<T><<<em_gpu_blocks(x->numel), EM_GPU_THREADS, 0, stream>>>(
                            static_cast<const T *>(x->data), static_cast<int64_t *>(out->data), x->numel, n,
                            c->a->i[0], c->a->i[1] != 0));
    return em_gpu_launched(c->device, c->name);
}
