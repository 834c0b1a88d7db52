// GPU kernels of the attention family (lib/ops/attention.c; float32 and
// float64): attention and attention_grad, with the CPU kernels' packed
// outputs. The formulas are lib/ops/attention_math.h's, the CPU kernels' own.
//
// Flash attention's contract (nothing of size [Tq, Tk]; the forward keeps
// each row's log-sum-exp and the backward recomputes from it), met with
// cuBLAS: the query rows go in chunks, and a chunk's scores [B*H, rows,
// keys] live in a bounded scratch (CHUNK_BYTES, at least one row per
// chunk), so memory stays O(B*H*Tk) beyond inputs and outputs. Per chunk,
// the products are strided-batched GEMMs over the B*H heads, at cuBLAS's
// full float32 speed (no TF32), and the exps, cuts and masks are one
// row-wise kernel. A causal chunk multiplies only the keys its last row
// sees. The first version gave each query row to one thread, which kept the
// GPU at 0.15 TFLOP/s, 65 times slower than the same attention composed from
// matmul and softmax (bench/attention on an H200).
//
//   forward, chunk c:  S = Q_c K^T;  P = softmax rows (lse kept);  O_c = P V
//   backward, chunk c: S = Q_c K^T, dP = dO_c V^T;  P, dS = P (dP - delta) scale;
//                      dV += P^T dO_c;  dQ_c = dS K;  dK += dS^T Q_c
#include "common.cuh"
#include "gemm.cuh"
#include "ops/attention_math.h"

namespace {

constexpr size_t CHUNK_BYTES = size_t(64) << 20; // the scores' scratch, all heads of a chunk
constexpr int ROW_THREADS = 128;                  // a block of row kernels: a warp per row
constexpr int ROWS_PER_BLOCK = ROW_THREADS / 32;

struct AttnArgs {
    int64_t tq, tk, d, heads;
    bool causal;
    double scale;
    int64_t ms[4]; // the mask's strides over [B, H, Tq, Tk]; mask NULL without one
};

// The mask's value for query row i of head bh and key j (0 without a mask).
template <class T> __device__ T mask_at(const AttnArgs &a, const T *mask, int64_t bh, int64_t i, int64_t j) {
    return mask ? mask[bh / a.heads * a.ms[0] + bh % a.heads * a.ms[1] + i * a.ms[2] + j * a.ms[3]] : (T)0;
}

template <class T> __device__ T warp_max(T v) {
    for (int o = 16; o; o >>= 1) {
        T w = __shfl_xor_sync(0xffffffffu, v, o);
        v = w > v ? w : v;
    }
    return v;
}
template <class T> __device__ T warp_sum(T v) {
    for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// The chunk of query rows [i0, i0 + nb) and the keys [0, kend) they see.
struct Chunk {
    int64_t i0, nb, kend;
};

// Row r of the chunk (a warp per row): the scores' row s of kend keys becomes
// the row's probabilities (0 past its last key), and its lse is kept.
template <class T>
__global__ void __launch_bounds__(ROW_THREADS)
    softmax_rows(AttnArgs a, Chunk c, const T *mask, T *s, T *lse) {
    const int64_t r = (int64_t)blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / 32, bh = blockIdx.y;
    const int lane = threadIdx.x % 32;
    if (r >= c.nb) return;
    const int64_t i = c.i0 + r, last = em_attn_last_key(i, a.tq, a.tk, a.causal);
    const int64_t vis = last + 1 < c.kend ? (last + 1 > 0 ? last + 1 : 0) : c.kend;
    T *row = s + (bh * c.nb + r) * c.kend, sc = (T)a.scale, m = (T)-INFINITY, l = 0;
    for (int64_t j = lane; j < vis; j += 32) {
        T v = EM_ATTN(score, T)(row[j], sc, mask_at(a, mask, bh, i, j));
        row[j] = v;
        m = v > m ? v : m;
    }
    m = warp_max(m);
    const T ref = EM_ATTN(ref, T)(m);
    for (int64_t j = lane; j < vis; j += 32) l += EM_ATTN(prob, T)(row[j], ref);
    l = warp_sum(l);
    const T inv = EM_ATTN(out_inv, T)(l);
    for (int64_t j = lane; j < c.kend; j += 32) row[j] = j < vis ? EM_ATTN(prob, T)(row[j], ref) * inv : (T)0;
    if (lane == 0) lse[bh * a.tq + i] = EM_ATTN(lse, T)(m, l);
}

// delta_i = do_i.o_i - dlse_i for every row (a warp per row).
template <class T>
__global__ void __launch_bounds__(ROW_THREADS)
    delta_rows(int64_t rows, int64_t d, const T *o, const T *dout, const T *dlse, T *delta) {
    const int64_t r = (int64_t)blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (r >= rows) return;
    T acc = 0;
    for (int64_t t = lane; t < d; t += 32) acc += dout[r * d + t] * o[r * d + t];
    acc = warp_sum(acc);
    if (lane == 0) delta[r] = acc - dlse[r];
}

// Row r of the chunk: from the scores s and dp = do.v, the probabilities
// (into s) and the scores' gradients, scaled (into dp); 0 past the last key.
template <class T>
__global__ void __launch_bounds__(ROW_THREADS)
    dscore_rows(AttnArgs a, Chunk c, const T *mask, const T *lse, const T *delta, T *s, T *dp) {
    const int64_t r = (int64_t)blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / 32, bh = blockIdx.y;
    const int lane = threadIdx.x % 32;
    if (r >= c.nb) return;
    const int64_t i = c.i0 + r, last = em_attn_last_key(i, a.tq, a.tk, a.causal);
    T *srow = s + (bh * c.nb + r) * c.kend, *dprow = dp + (bh * c.nb + r) * c.kend, sc = (T)a.scale;
    const T ref = EM_ATTN(ref, T)(lse[bh * a.tq + i]), di = delta[bh * a.tq + i];
    for (int64_t j = lane; j < c.kend; j += 32) {
        T p = 0, ds = 0;
        if (j <= last) {
            p = EM_ATTN(prob, T)(EM_ATTN(score, T)(srow[j], sc, mask_at(a, mask, bh, i, j)), ref);
            ds = EM_ATTN(dscore, T)(p, dprow[j], di) * sc;
        }
        srow[j] = p;
        dprow[j] = ds;
    }
}

// Row-major C = alpha op(A) op(B) + beta C over the B*H heads, each operand
// given by its pointer, row stride and head stride (see gemm.cuh).
template <class T> struct Mat {
    T *p;
    int64_t ld, stride;
};
template <class T>
cublasStatus_t rm_gemm(cublasHandle_t h, int64_t heads, bool ta, bool tb, int64_t m, int64_t n, int64_t k, Mat<T> A,
                       Mat<T> B, T beta, Mat<T> C) {
    return em_gpu_gemm_strided(h, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k, (T)1, B.p,
                               B.ld, B.stride, A.p, A.ld, A.stride, beta, C.p, C.ld, C.stride, heads);
}

// The arguments of a call whose inputs start (q, k, v [, mask]), nqkv of them.
AttnArgs attn_args(const em_gpu_call *c, int nqkv) {
    const em_gpu_tensor &q = c->in[0], &k = c->in[1];
    AttnArgs a = {q.shape[2], k.shape[2], q.shape[3], q.shape[1], c->a->i[0] != 0,
                  em_attn_scale(c->a->f[0], q.shape[3]), {0, 0, 0, 0}};
    if (nqkv == 4) em_attn_mask_strides(c->in[3].ndim, c->in[3].shape, a.ms);
    return a;
}

template <class T> const T *mask_of(const em_gpu_call *c, int nqkv) {
    return nqkv == 4 ? static_cast<const T *>(c->in[3].data) : nullptr;
}

// Query rows per chunk: as many as `buffers` score buffers of all heads hold
// in CHUNK_BYTES, at least one.
template <class T> int64_t chunk_rows(const AttnArgs &a, int64_t bh, int buffers) {
    int64_t per_row = bh * (a.tk > 0 ? a.tk : 1) * (int64_t)sizeof(T) * buffers;
    int64_t nb = (int64_t)CHUNK_BYTES / per_row;
    nb = nb < 1 ? 1 : nb;
    return nb < a.tq ? nb : a.tq;
}

// The chunk starting at row i0: its rows, and the keys its last row sees.
Chunk chunk_at(const AttnArgs &a, int64_t i0, int64_t nb) {
    Chunk c = {i0, a.tq - i0 < nb ? a.tq - i0 : nb, 0};
    int64_t kend = em_attn_last_key(c.i0 + c.nb - 1, a.tq, a.tk, a.causal) + 1;
    c.kend = kend < 0 ? 0 : kend < a.tk ? kend : a.tk;
    return c;
}

int blas_failed(const em_gpu_call *c, cublasStatus_t st) {
    cudaGetLastError();
    em_gpu_report("%s: cuBLAS failed on /gpu:%d: %s", c->name, c->device, cublasGetStatusString(st));
    return -1;
}

// (q, k, v [, mask]) -> [O | lse]
template <class T> int attention_gpu(const em_gpu_call *c, em_gpu_tensor *out, cudaStream_t stream) {
    const AttnArgs a = attn_args(c, c->n);
    const int64_t bh = c->in[0].shape[0] * a.heads, d = a.d, on = c->in[0].numel;
    T *q = static_cast<T *>(c->in[0].data), *k = static_cast<T *>(c->in[1].data);
    T *v = static_cast<T *>(c->in[2].data), *o = static_cast<T *>(out->data), *lse = o + on;
    const T *mask = mask_of<T>(c, c->n);
    if (a.tq == 0 || bh == 0) return 0;
    if (bh > 65535) {
        em_gpu_report("%s: B * H = %lld exceeds the GPU kernel's 65535 (batch, head) pairs", c->name, (long long)bh);
        return -1;
    }
    const int64_t nb = chunk_rows<T>(a, bh, 1);
    cublasHandle_t h = em_gpu_blas(c->name, c->device);
    T *s = h ? static_cast<T *>(em_gpu_scratch(c->device, sizeof(T) * (size_t)(bh * nb * (a.tk > 0 ? a.tk : 1)))) : nullptr;
    if (!s) return -1;
    int rc = 0;
    for (int64_t i0 = 0; i0 < a.tq && !rc; i0 += nb) {
        const Chunk ch = chunk_at(a, i0, nb);
        cublasStatus_t st = CUBLAS_STATUS_SUCCESS;
        if (ch.kend > 0)
            st = rm_gemm<T>(h, bh, false, true, ch.nb, ch.kend, d, {q + i0 * d, d, a.tq * d}, {k, d, a.tk * d}, 0,
                            {s, ch.kend, ch.nb * ch.kend});
        if (st != CUBLAS_STATUS_SUCCESS) {
            rc = blas_failed(c, st);
            break;
        }
        dim3 grid((unsigned)((ch.nb + ROWS_PER_BLOCK - 1) / ROWS_PER_BLOCK), (unsigned)bh);
        softmax_rows<T><<<grid, ROW_THREADS, 0, stream>>>(a, ch, mask, s, lse);
        rc = em_gpu_launched(c->device, c->name);
        if (rc) break;
        if (ch.kend > 0)
            st = rm_gemm<T>(h, bh, false, false, ch.nb, d, ch.kend, {s, ch.kend, ch.nb * ch.kend}, {v, d, a.tk * d}, 0,
                            {o + i0 * d, d, a.tq * d});
        else // rows that see no key: their output is 0
            for (int64_t b = 0; b < bh && !rc; b++)
                if (cudaMemsetAsync(o + b * a.tq * d + i0 * d, 0, sizeof(T) * (size_t)(ch.nb * d), stream) != cudaSuccess)
                    rc = em_gpu_fail(c->name, "clearing rows that see no key", cudaGetLastError());
        if (st != CUBLAS_STATUS_SUCCESS) rc = blas_failed(c, st);
    }
    em_gpu_scratch_free(c->device, s); // the stream orders the chunks before any later reuse
    return rc;
}

// (q, k, v [, mask], attention's output, its gradient) -> [dq | dk | dv]
template <class T> int attention_grad_gpu(const em_gpu_call *c, em_gpu_tensor *out, cudaStream_t stream) {
    const int nqkv = c->n - 2;
    const AttnArgs a = attn_args(c, nqkv);
    const int64_t bh = c->in[0].shape[0] * a.heads, d = a.d, on = c->in[0].numel, kn = c->in[1].numel;
    T *q = static_cast<T *>(c->in[0].data), *k = static_cast<T *>(c->in[1].data);
    T *v = static_cast<T *>(c->in[2].data);
    const T *mask = mask_of<T>(c, nqkv);
    const T *o = static_cast<const T *>(c->in[nqkv].data), *lse = o + on;
    T *dout = static_cast<T *>(c->in[nqkv + 1].data);
    const T *dlse = dout + on;
    T *dq = static_cast<T *>(out->data), *dk = dq + on, *dv = dk + kn;
    // dk and dv accumulate over the chunks; keys no row sees keep 0
    if (kn && cudaMemsetAsync(dk, 0, sizeof(T) * (size_t)(2 * kn), stream) != cudaSuccess)
        return em_gpu_fail(c->name, "clearing dk and dv", cudaGetLastError());
    if (a.tq == 0 || bh == 0) return 0;
    if (bh > 65535) {
        em_gpu_report("%s: B * H = %lld exceeds the GPU kernel's 65535 (batch, head) pairs", c->name, (long long)bh);
        return -1;
    }
    const int64_t nb = chunk_rows<T>(a, bh, 2), buf = bh * nb * (a.tk > 0 ? a.tk : 1);
    cublasHandle_t h = em_gpu_blas(c->name, c->device);
    T *s = h ? static_cast<T *>(em_gpu_scratch(c->device, sizeof(T) * (size_t)(2 * buf + bh * a.tq))) : nullptr;
    if (!s) return -1;
    T *dp = s + buf, *delta = dp + buf;
    delta_rows<T><<<(unsigned)((bh * a.tq + ROWS_PER_BLOCK - 1) / ROWS_PER_BLOCK), ROW_THREADS, 0, stream>>>(
        bh * a.tq, d, o, dout, dlse, delta);
    int rc = em_gpu_launched(c->device, c->name);
    for (int64_t i0 = 0; i0 < a.tq && !rc; i0 += nb) {
        const Chunk ch = chunk_at(a, i0, nb);
        if (ch.kend == 0) { // rows that see no key: their dq is 0
            for (int64_t b = 0; b < bh && !rc; b++)
                if (cudaMemsetAsync(dq + b * a.tq * d + i0 * d, 0, sizeof(T) * (size_t)(ch.nb * d), stream) != cudaSuccess)
                    rc = em_gpu_fail(c->name, "clearing rows that see no key", cudaGetLastError());
            continue;
        }
        const Mat<T> qc = {q + i0 * d, d, a.tq * d}, doc = {dout + i0 * d, d, a.tq * d};
        const Mat<T> S = {s, ch.kend, ch.nb * ch.kend}, dP = {dp, ch.kend, ch.nb * ch.kend};
        cublasStatus_t st = rm_gemm<T>(h, bh, false, true, ch.nb, ch.kend, d, qc, {k, d, a.tk * d}, 0, S);
        if (st == CUBLAS_STATUS_SUCCESS)
            st = rm_gemm<T>(h, bh, false, true, ch.nb, ch.kend, d, doc, {v, d, a.tk * d}, 0, dP);
        if (st != CUBLAS_STATUS_SUCCESS) {
            rc = blas_failed(c, st);
            break;
        }
        dim3 grid((unsigned)((ch.nb + ROWS_PER_BLOCK - 1) / ROWS_PER_BLOCK), (unsigned)bh);
        dscore_rows<T><<<grid, ROW_THREADS, 0, stream>>>(a, ch, mask, lse, delta, s, dp);
        rc = em_gpu_launched(c->device, c->name);
        if (rc) break;
        st = rm_gemm<T>(h, bh, true, false, ch.kend, d, ch.nb, S, doc, 1, {dv, d, a.tk * d});
        if (st == CUBLAS_STATUS_SUCCESS)
            st = rm_gemm<T>(h, bh, false, false, ch.nb, d, ch.kend, dP, {k, d, a.tk * d}, 0, {dq + i0 * d, d, a.tq * d});
        if (st == CUBLAS_STATUS_SUCCESS) st = rm_gemm<T>(h, bh, true, false, ch.kend, d, ch.nb, dP, qc, 1, {dk, d, a.tk * d});
        if (st != CUBLAS_STATUS_SUCCESS) rc = blas_failed(c, st);
    }
    em_gpu_scratch_free(c->device, s); // the stream orders the chunks before any later reuse
    return rc;
}

} // namespace

EM_GPU_FLOAT_OP(attention, attention_gpu<T>(c, out, stream))
EM_GPU_FLOAT_OP(attention_grad, attention_grad_gpu<T>(c, out, stream))
