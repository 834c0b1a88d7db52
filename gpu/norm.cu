// GPU kernels of the norm family (lib/ops/norm.c; float32 and float64):
// layer norm and RMS norm over the last axis and their fused backward ops.
// The buffers are the CPU's: forward [y | mean | rstd] (RMS norm: [y | rstd]),
// backward [dgamma | dbeta | dx] (RMS norm: [dgamma | dx]).
//
// A block per row: its threads add up the row's sums (double) and join them
// by a fixed tree in shared memory, so results do not depend on timing.
// dgamma and dbeta sum over rows: thread j of a chunk of rows sums column j
// of its chunk, then one pass adds the chunks in order (no atomics). The
// formulas are lib/ops/norm_math.h's, the CPU kernels' own.
#include "common.cuh"
#include "ops/norm_math.h"

namespace {

constexpr int NORM_THREADS = EM_GPU_THREADS; // a power of two: the block tree halves it
static_assert((NORM_THREADS & (NORM_THREADS - 1)) == 0, "the block tree needs a power of two");
constexpr int64_t CHUNKS_MAX = 256;    // row chunks of the dgamma/dbeta sums (parallel work) ...
constexpr int64_t CHUNK_MIN_ROWS = 16; // ... of at least this many rows,
constexpr size_t PARTS_MAX = (size_t)64 << 20; // ... and fewer for very long rows

unsigned row_blocks(int64_t rows) { return rows < 65535 * 32 ? (unsigned)rows : 65535u * 32u; }

// The sums of a and b over the block's threads, by a fixed tree; buf holds 2 NORM_THREADS.
__device__ double2 block_sum2(double a, double b, double *buf) {
    const int t = threadIdx.x;
    buf[t] = a;
    buf[NORM_THREADS + t] = b;
    __syncthreads();
    for (int w = NORM_THREADS / 2; w > 0; w >>= 1) {
        if (t < w) {
            buf[t] += buf[t + w];
            buf[NORM_THREADS + t] += buf[NORM_THREADS + t + w];
        }
        __syncthreads();
    }
    double2 r = make_double2(buf[0], buf[NORM_THREADS]);
    __syncthreads(); // everyone has read the sums before buf is reused
    return r;
}

// Rows of n: y, and the row's mean (layer norm) and rstd after the rows' y.
template <class T>
__global__ void __launch_bounds__(NORM_THREADS)
    norm_fwd(const T *x, const T *gamma, const T *beta, T *y, int64_t rows, int64_t n, double eps, bool layer) {
    __shared__ double buf[2 * NORM_THREADS];
    T *mean = y + rows * n, *rstd = layer ? mean + rows : mean;
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const T *xr = x + r * n;
        T m = 0;
        if (layer) {
            double sum = 0;
            for (int64_t j = threadIdx.x; j < n; j += NORM_THREADS) sum += xr[j];
            m = (T)(block_sum2(sum, 0, buf).x / (double)n);
        }
        double sq = 0;
        for (int64_t j = threadIdx.x; j < n; j += NORM_THREADS) sq += EM_NORM(sq_dev, T)(xr[j], m);
        T rs = EM_NORM(rstd, T)(block_sum2(sq, 0, buf).x, n, eps);
        for (int64_t j = threadIdx.x; j < n; j += NORM_THREADS)
            y[r * n + j] = EM_NORM(y, T)(xr[j], m, rs, gamma[j], beta ? beta[j] : (T)0);
        if (threadIdx.x == 0) {
            if (layer) mean[r] = m;
            rstd[r] = rs;
        }
    }
}

// dx of rows of n, from the forward buffer's statistics.
template <class T>
__global__ void __launch_bounds__(NORM_THREADS)
    norm_bwd_dx(const T *x, const T *stats, const T *gamma, const T *dy, T *dx, int64_t rows, int64_t n, bool layer) {
    __shared__ double buf[2 * NORM_THREADS];
    const T *mean = stats + rows * n, *rstd = layer ? mean + rows : mean;
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const T *xr = x + r * n, *dyr = dy + r * n;
        T m = layer ? mean[r] : (T)0, rs = rstd[r];
        double s1 = 0, s2 = 0;
        for (int64_t j = threadIdx.x; j < n; j += NORM_THREADS) {
            T gy = EM_NORM(gy, T)(dyr[j], gamma[j]);
            s1 += gy;
            s2 += EM_NORM(times_xh, T)(gy, EM_NORM(xhat, T)(xr[j], m, rs));
        }
        double2 s = block_sum2(s1, s2, buf);
        T a = layer ? (T)(s.x / (double)n) : (T)0, b = (T)(s.y / (double)n);
        for (int64_t j = threadIdx.x; j < n; j += NORM_THREADS)
            dx[r * n + j] = EM_NORM(dx, T)(EM_NORM(gy, T)(dyr[j], gamma[j]), EM_NORM(xhat, T)(xr[j], m, rs), rs, a, b);
    }
}

// Chunk k (blockIdx.y) of chunk_rows rows: part[k][0..n) the sums of dy xh by
// column, part[k][n..2n) those of dy.
template <class T>
__global__ void norm_bwd_parts(const T *x, const T *stats, const T *dy, double *part, int64_t rows, int64_t n,
                               int64_t chunk_rows, bool layer) {
    const T *mean = stats + rows * n, *rstd = layer ? mean + rows : mean;
    const int64_t k = blockIdx.y, r0 = k * chunk_rows, r1 = r0 + chunk_rows < rows ? r0 + chunk_rows : rows;
    EM_GPU_LOOP(j, n) {
        double g = 0, b = 0;
        for (int64_t r = r0; r < r1; r++) {
            T d = dy[r * n + j];
            g += EM_NORM(times_xh, T)(d, EM_NORM(xhat, T)(x[r * n + j], layer ? mean[r] : (T)0, rstd[r]));
            b += d;
        }
        part[k * 2 * n + j] = g;
        part[k * 2 * n + n + j] = b;
    }
}

// dgamma (and dbeta) from the chunks' sums, in chunk order.
template <class T> __global__ void norm_bwd_params(const double *part, T *dg, int64_t chunks, int64_t n, bool layer) {
    EM_GPU_LOOP(j, n) {
        double g = 0, b = 0;
        for (int64_t k = 0; k < chunks; k++) {
            g += part[k * 2 * n + j];
            b += part[k * 2 * n + n + j];
        }
        dg[j] = (T)g;
        if (layer) dg[n + j] = (T)b;
    }
}

template <class T> const T *arg(const em_gpu_call *c, int i) { return static_cast<const T *>(c->in[i].data); }
int64_t row_len(const em_gpu_tensor *x) { return x->shape[x->ndim - 1]; }

// (x, gamma[, beta]) -> [y | mean | rstd]; c->n is 3 for layer norm.
template <class T> int norm_gpu(const em_gpu_call *c, em_gpu_tensor *out, cudaStream_t stream) {
    const int64_t n = row_len(&c->in[0]), rows = n ? c->in[0].numel / n : 0;
    const bool layer = c->n == 3;
    if (rows == 0) return 0;
    const T *beta = layer ? arg<T>(c, 2) : nullptr;
    norm_fwd<T><<<row_blocks(rows), NORM_THREADS, 0, stream>>>(arg<T>(c, 0), arg<T>(c, 1), beta,
                                                               static_cast<T *>(out->data), rows, n, c->a->f[0], layer);
    return em_gpu_launched(c->device, c->name);
}

// (x, forward buffer, gamma, dy) -> [dgamma | dbeta | dx].
template <class T> int norm_grad_gpu(const em_gpu_call *c, em_gpu_tensor *out, cudaStream_t stream, bool layer) {
    const int64_t n = row_len(&c->in[0]), rows = n ? c->in[0].numel / n : 0;
    T *dg = static_cast<T *>(out->data), *dx = dg + (layer ? 2 : 1) * n;
    if (n == 0) return 0;
    if (rows == 0) { // dgamma and dbeta are empty sums
        cudaError_t e = cudaMemsetAsync(dg, 0, sizeof(T) * (size_t)out->numel, stream);
        return e == cudaSuccess ? 0 : em_gpu_fail(c->name, "cudaMemsetAsync", e);
    }
    norm_bwd_dx<T><<<row_blocks(rows), NORM_THREADS, 0, stream>>>(arg<T>(c, 0), arg<T>(c, 1), arg<T>(c, 2),
                                                                  arg<T>(c, 3), dx, rows, n, layer);
    if (em_gpu_launched(c->device, c->name)) return -1;
    int64_t chunks = (rows + CHUNK_MIN_ROWS - 1) / CHUNK_MIN_ROWS;
    if (chunks > CHUNKS_MAX) chunks = CHUNKS_MAX;
    const int64_t chunks_fit = (int64_t)(PARTS_MAX / (2 * sizeof(double) * (size_t)n));
    if (chunks > chunks_fit) chunks = chunks_fit;
    if (chunks < 1) chunks = 1;
    const int64_t chunk_rows = (rows + chunks - 1) / chunks;
    double *part = static_cast<double *>(em_gpu_scratch(c->device, sizeof(double) * 2 * (size_t)(chunks * n)));
    if (!part) return -1;
    dim3 grid(em_gpu_blocks(n) < 4096 ? em_gpu_blocks(n) : 4096, (unsigned)chunks);
    norm_bwd_parts<T><<<grid, EM_GPU_THREADS, 0, stream>>>(arg<T>(c, 0), arg<T>(c, 1), arg<T>(c, 3), part, rows, n,
                                                          chunk_rows, layer);
    int rc = em_gpu_launched(c->device, c->name);
    if (!rc) {
        norm_bwd_params<T><<<em_gpu_blocks(n), EM_GPU_THREADS, 0, stream>>>(part, dg, chunks, n, layer);
        rc = em_gpu_launched(c->device, c->name);
    }
    em_gpu_scratch_free(c->device, part); // the caching allocator reuses it in stream order
    return rc;
}

} // namespace

EM_GPU_FLOAT_OP(layer_norm, norm_gpu<T>(c, out, stream))
EM_GPU_FLOAT_OP(rms_norm, norm_gpu<T>(c, out, stream))
EM_GPU_FLOAT_OP(layer_norm_grad, norm_grad_gpu<T>(c, out, stream, true))
EM_GPU_FLOAT_OP(rms_norm_grad, norm_grad_gpu<T>(c, out, stream, false))
#undef NORM_GPU
