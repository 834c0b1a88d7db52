// GPU kernels of the computing shape ops of lib/ops/shape.c: reshape of a
// strided input (when it is not a view), concat, gather, gather_grad,
// one_hot, pad and tile. The other shape ops are always views.
//
// Ops that only move elements do it by element size (1, 4 or 8 bytes).
// gather_grad is deterministic without atomics: the indices are sorted
// stably (CUB radix sort), then each output element adds, in index-list
// order, the update rows aimed at it, exactly as the CPU kernel does.
#include <cub/device/device_radix_sort.cuh>

#include "broadcast.h"
#include "common.cuh"

namespace {

// Runs BODY with E bound to the unsigned type of `size` bytes.
#define BY_SIZE(size, E, ...)                            \
    switch (size) {                                      \
    case 1: { typedef uint8_t E; __VA_ARGS__; } break;   \
    case 2: { typedef uint16_t E; __VA_ARGS__; } break;  \
    case 4: { typedef uint32_t E; __VA_ARGS__; } break;  \
    case 8: { typedef uint64_t E; __VA_ARGS__; } break;  \
    default: break;                                      \
    }

int64_t prod(const int64_t *d, int from, int to) {
    int64_t n = 1;
    for (int k = from; k < to; k++) n *= d[k];
    return n;
}

// Output and input shapes (and pads) of pad and tile, by value for the kernel.
struct dims {
    int nd;
    int64_t out[EM_MAX_DIMS], in[EM_MAX_DIMS], before[EM_MAX_DIMS];
};

template <class E> __global__ void strided_copy(em_bcast p, const E *x, E *out, int64_t n) {
    EM_GPU_LOOP(i, n) out[i] = x[em_bcast_offset(&p, 0, i)];
}

// Input rows of `row` elements into output rows of `out_row`, from column `col`.
template <class E> __global__ void concat_part(const E *x, E *out, int64_t n, int64_t row, int64_t out_row, int64_t col) {
    EM_GPU_LOOP(i, n) out[i / row * out_row + col + i % row] = x[i];
}

template <class E, class I>
__global__ void gather_rows(const E *x, const I *idx, E *out, int64_t n, int64_t nidx, int64_t dim, int64_t inner) {
    EM_GPU_LOOP(i, n) {
        int64_t r = i / inner, b = i % inner, j = r % nidx, o = r / nidx;
        int64_t v = idx[j];
        out[i] = v >= 0 && v < dim ? x[(o * dim + v) * inner + b] : E(0); // indices were checked on the host
    }
}

__global__ void iota(int64_t *v, int64_t n) {
    EM_GPU_LOOP(i, n) v[i] = i;
}

// Output element (o, d, b) sums, in index-list order, the update rows j with
// indices[j] == d: keys are the indices sorted stably, perm their positions.
template <class T, class I>
__global__ void scatter_rows(const T *u, const I *keys, const int64_t *perm, T *out, int64_t n, int64_t nidx, int64_t dim,
                             int64_t inner, bool into) {
    EM_GPU_LOOP(i, n) {
        int64_t r = i / inner, b = i % inner, d = r % dim, o = r / dim;
        int64_t lo = 0, hi = nidx; // first key >= d
        while (lo < hi) {
            int64_t mid = lo + (hi - lo) / 2;
            if ((int64_t)keys[mid] < d) lo = mid + 1;
            else hi = mid;
        }
        T acc = into ? out[i] : T(0); // into: add to the output's values, as the CPU kernel does
        for (int64_t k = lo; k < nidx && (int64_t)keys[k] == d; k++) acc = (T)(acc + u[(o * nidx + perm[k]) * inner + b]);
        out[i] = acc;
    }
}

template <class E, class I> __global__ void one_hot_fill(const I *idx, E *out, int64_t n, int64_t depth, E on, E off) {
    EM_GPU_LOOP(i, n) out[i] = (int64_t)idx[i / depth] == i % depth ? on : off;
}

template <class E> __global__ void pad_copy(dims g, const E *x, E *out, int64_t n, E value) {
    EM_GPU_LOOP(i, n) {
        int64_t idx = i, off = 0, stride = 1;
        bool inside = true;
        for (int d = g.nd - 1; d >= 0; d--) {
            int64_t s = idx % g.out[d] - g.before[d];
            idx /= g.out[d];
            inside = inside && s >= 0 && s < g.in[d];
            off += s * stride;
            stride *= g.in[d];
        }
        out[i] = inside ? x[off] : value;
    }
}

template <class E> __global__ void tile_copy(dims g, const E *x, E *out, int64_t n) {
    EM_GPU_LOOP(i, n) {
        int64_t idx = i, off = 0, stride = 1;
        for (int d = g.nd - 1; d >= 0; d--) {
            off += idx % g.out[d] % g.in[d] * stride;
            idx /= g.out[d];
            stride *= g.in[d];
        }
        out[i] = x[off];
    }
}

size_t elem_size(const em_gpu_tensor *t) { return em_gpu_dtype_size(t->dtype); }

// The bits of `v` as one element of dtype, in an E of its size.
template <class E> E element(em_dtype dtype, double v) {
    E e = 0;
    em_gpu_write(&e, dtype, v); // the library's conversion (saturating like em_cast)
    return e;
}

int reshape_gpu(const em_gpu_call *c, em_gpu_tensor *out, cudaStream_t stream) {
    const em_gpu_tensor *x = &c->in[0];
    em_bcast p;
    em_bcast_init(&p, x->ndim, x->shape, 1);
    em_bcast_input(&p, 0, x->ndim, x->shape, x->strides);
    em_bcast_coalesce(&p);
    BY_SIZE(elem_size(x), E,
            strided_copy<E><<<em_gpu_blocks(out->numel), EM_GPU_THREADS, 0, stream>>>(
                p, static_cast<const E *>(x->data), static_cast<E *>(out->data), out->numel));
    return em_gpu_launched(c->device, c->name);
}

int concat_gpu(const em_gpu_call *c, em_gpu_tensor *out, cudaStream_t stream) {
    int axis = (int)(c->a->i[0] < 0 ? c->a->i[0] + out->ndim : c->a->i[0]);
    int64_t inner = prod(out->shape, axis + 1, out->ndim), out_row = out->shape[axis] * inner, col = 0;
    for (int k = 0; k < c->n; k++) {
        const em_gpu_tensor *x = &c->in[k];
        int64_t row = x->shape[axis] * inner;
        if (x->numel) {
            BY_SIZE(elem_size(out), E,
                    concat_part<E><<<em_gpu_blocks(x->numel), EM_GPU_THREADS, 0, stream>>>(
                        static_cast<const E *>(x->data), static_cast<E *>(out->data), x->numel, row, out_row, col));
            if (em_gpu_launched(c->device, c->name)) return -1;
        }
        col += row;
    }
    return 0;
}

template <class I> int gather_gpu(const em_gpu_call *c, em_gpu_tensor *out, cudaStream_t stream) {
    const em_gpu_tensor *x = &c->in[0];
    int axis = (int)(c->a->i[0] < 0 ? c->a->i[0] + x->ndim : c->a->i[0]);
    int64_t inner = prod(x->shape, axis + 1, x->ndim);
    BY_SIZE(elem_size(x), E,
            gather_rows<E, I><<<em_gpu_blocks(out->numel), EM_GPU_THREADS, 0, stream>>>(
                static_cast<const E *>(x->data), static_cast<const I *>(c->in[1].data), static_cast<E *>(out->data),
                out->numel, c->in[1].numel, x->shape[axis], inner));
    return em_gpu_launched(c->device, c->name);
}

size_t align256(size_t n) { return (n + 255) / 256 * 256; }

// gather_grad(updates, indices): attrs i[0] = axis (>= 0), i[1] = the params' size along it, i[2] 1: add
// into the output's values instead of zeros.
template <class I> int gather_grad_gpu(const em_gpu_call *c, em_gpu_tensor *out, cudaStream_t stream) {
    const em_gpu_tensor *u = &c->in[0], *ind = &c->in[1];
    int axis = (int)c->a->i[0];
    const bool into = c->a->i[2] != 0;
    int64_t dim = c->a->i[1], nidx = ind->numel, inner = prod(out->shape, axis + 1, out->ndim);
    if (nidx == 0 && into) return 0;
    if (nidx == 0) { // nothing to add
        cudaError_t err = cudaMemsetAsync(out->data, 0, (size_t)out->numel * elem_size(out), stream);
        return err == cudaSuccess ? 0 : em_gpu_fail(c->name, "cudaMemsetAsync", err);
    }
    int end_bit = 1; // the key bits that can differ: indices lie in [0, dim)
    while (end_bit < (int)(8 * sizeof(I)) && ((int64_t)1 << end_bit) < dim) end_bit++;
    const I *keys_in = static_cast<const I *>(ind->data);
    size_t temp_bytes = 0;
    cudaError_t err = cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes, keys_in, (I *)nullptr, (const int64_t *)nullptr,
                                                      (int64_t *)nullptr, nidx, 0, end_bit, stream);
    if (err != cudaSuccess) return em_gpu_fail(c->name, "sizing the index sort", err);
    size_t kbytes = align256((size_t)nidx * sizeof(I)), vbytes = align256((size_t)nidx * sizeof(int64_t));
    char *scratch = static_cast<char *>(em_gpu_scratch(c->device, kbytes + 2 * vbytes + temp_bytes));
    if (!scratch) return -1;
    I *keys = reinterpret_cast<I *>(scratch);
    int64_t *order = reinterpret_cast<int64_t *>(scratch + kbytes), *perm = order + vbytes / sizeof(int64_t);
    int rc = 0;
    iota<<<em_gpu_blocks(nidx), EM_GPU_THREADS, 0, stream>>>(order, nidx);
    if (em_gpu_launched(c->device, c->name)) rc = -1;
    if (!rc) {
        err = cub::DeviceRadixSort::SortPairs(scratch + kbytes + 2 * vbytes, temp_bytes, keys_in, keys, order, perm, nidx,
                                              0, end_bit, stream);
        rc = err != cudaSuccess ? em_gpu_fail(c->name, "sorting the indices", err) : em_gpu_launched(c->device, c->name);
    }
    if (!rc) {
        EM_GPU_DTYPE_SWITCH(out->dtype, T,
                            scatter_rows<T, I><<<em_gpu_blocks(out->numel), EM_GPU_THREADS, 0, stream>>>(
                                static_cast<const T *>(u->data), keys, perm, static_cast<T *>(out->data), out->numel,
                                nidx, dim, inner, into));
        rc = em_gpu_launched(c->device, c->name);
    }
    em_gpu_scratch_free(c->device, scratch); // the stream orders the kernels before any later reuse
    return rc;
}

template <class I> int one_hot_gpu(const em_gpu_call *c, em_gpu_tensor *out, cudaStream_t stream) {
    em_dtype dt = (em_dtype)out->dtype;
    BY_SIZE(elem_size(out), E,
            one_hot_fill<E, I><<<em_gpu_blocks(out->numel), EM_GPU_THREADS, 0, stream>>>(
                static_cast<const I *>(c->in[0].data), static_cast<E *>(out->data), out->numel, c->a->i[0],
                element<E>(dt, c->a->f[0]), element<E>(dt, c->a->f[1])));
    return em_gpu_launched(c->device, c->name);
}

// The input's and output's shapes (pads before: none).
dims io_dims(const em_gpu_tensor *x, const em_gpu_tensor *out) {
    dims g = {};
    g.nd = x->ndim;
    for (int d = 0; d < x->ndim; d++) {
        g.out[d] = out->shape[d];
        g.in[d] = x->shape[d];
    }
    return g;
}

// attrs i[2k], i[2k + 1]: the pads before and after axis k; f[0] the value.
int pad_gpu(const em_gpu_call *c, em_gpu_tensor *out, cudaStream_t stream) {
    const em_gpu_tensor *x = &c->in[0];
    dims g = io_dims(x, out);
    for (int d = 0; d < x->ndim; d++) g.before[d] = c->a->i[2 * d];
    BY_SIZE(elem_size(x), E,
            pad_copy<E><<<em_gpu_blocks(out->numel), EM_GPU_THREADS, 0, stream>>>(
                g, static_cast<const E *>(x->data), static_cast<E *>(out->data), out->numel,
                element<E>((em_dtype)x->dtype, c->a->f[0])));
    return em_gpu_launched(c->device, c->name);
}

int tile_gpu(const em_gpu_call *c, em_gpu_tensor *out, cudaStream_t stream) {
    const em_gpu_tensor *x = &c->in[0];
    dims g = io_dims(x, out);
    BY_SIZE(elem_size(x), E,
            tile_copy<E><<<em_gpu_blocks(out->numel), EM_GPU_THREADS, 0, stream>>>(
                g, static_cast<const E *>(x->data), static_cast<E *>(out->data), out->numel));
    return em_gpu_launched(c->device, c->name);
}

typedef int kernel_fn(const em_gpu_call *c, em_gpu_tensor *out, cudaStream_t stream);

// An entry's work: f on the device's stream.
int run(const em_gpu_call *c, em_gpu_tensor *out, kernel_fn *f) {
    if (out->numel == 0) return 0;
    cudaStream_t stream = em_gpu_stream(c->device);
    if (!stream) return -1;
    return f(c, out, stream);
}

// An indexing entry's work: kernel<I> for I the C type of its indices (the op's last input), an index dtype.
#define INDEX_CASE(E, sfx, T, U, C, MN, MX, kernel) \
    case E: return run(c, out, kernel<T>);
#define BY_INDEX_DTYPE(kernel)                                                          \
    switch (c->in[c->n - 1].dtype) {                                                    \
        EM_FOR_INDEX(INDEX_CASE, kernel)                                                \
    default:                                                                            \
        em_gpu_report("%s: indices of dtype %s", c->name, em_gpu_dtype_name(c->in[c->n - 1].dtype)); \
        return -1;                                                                      \
    }

} // namespace

// The entries of lib/ops/shape.def's computing rows.
int em_gpu_op_reshape(const em_gpu_call *c, em_gpu_tensor *out) { return run(c, out, reshape_gpu); }
int em_gpu_op_concat(const em_gpu_call *c, em_gpu_tensor *out) { return run(c, out, concat_gpu); }
int em_gpu_op_gather(const em_gpu_call *c, em_gpu_tensor *out) {
    BY_INDEX_DTYPE(gather_gpu)
}
int em_gpu_op_gather_grad(const em_gpu_call *c, em_gpu_tensor *out) {
    BY_INDEX_DTYPE(gather_grad_gpu)
}
int em_gpu_op_one_hot(const em_gpu_call *c, em_gpu_tensor *out) {
    BY_INDEX_DTYPE(one_hot_gpu)
}
int em_gpu_op_pad(const em_gpu_call *c, em_gpu_tensor *out) { return run(c, out, pad_gpu); }
int em_gpu_op_tile(const em_gpu_call *c, em_gpu_tensor *out) { return run(c, out, tile_gpu); }
