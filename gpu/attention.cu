// GPU kernels of the attention family (lib/ops/attention.c; float32 and
// float64): attention and attention_grad, with the CPU kernels' packed
// outputs. The formulas are lib/ops/attention_math.h's, the CPU kernels' own.
//
// A straightforward tiled flash attention: nothing of size [Tq, Tk] is
// stored. The forward kernel gives each query row to one thread; a block's
// threads share tiles of keys and values in shared memory and each keeps its
// row's running max and sum, its output row accumulating in place. The
// backward pass is two kernels, so that nothing is added by two threads:
// one thread per query row (its delta and dq, against tiles of keys and
// values), then one thread per key row (its dk and dv, against tiles of
// queries, output gradients and the rows' lse and delta).
#include "common.cuh"
#include "ops/attention_math.h"

namespace {

constexpr int ATTN_THREADS = 128;
constexpr int ATTN_MAX_TILE = 64;       // keys per tile: the forward kernel keeps a tile's scores per thread
constexpr size_t ATTN_SHARED = 48 << 10; // shared memory a block may use without opting in

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

template <class T> __device__ T dot(const T *x, const T *y, int64_t d) {
    T s = 0;
    for (int64_t t = 0; t < d; t++) s += x[t] * y[t];
    return s;
}

// Rows per tile of `per_row` elements of T in the shared budget, at most cap.
template <class T> int tile_rows(int64_t per_row, int cap) {
    int64_t n = (int64_t)(ATTN_SHARED / (sizeof(T) * (size_t)(per_row > 0 ? per_row : 1)));
    return n < cap ? (int)n : cap;
}

// Copies rows [r0, r0 + n) of d values from src to dst (block-wide).
template <class T> __device__ void load_tile(T *dst, const T *src, int64_t r0, int64_t n, int64_t d) {
    for (int64_t e = threadIdx.x; e < n * d; e += blockDim.x) dst[e] = src[r0 * d + e];
}

// Forward: grid (query blocks, B*H); o and lse are the packed output's parts.
// The block's threads load keys and values [j0, j0 + nk) into shared memory,
// after every thread is done with the previous tiles.
template <class T>
__device__ inline void load_kv_tiles(T *ks, T *vs, const T *kb, const T *vb, int64_t j0, int64_t nk, int64_t d) {
    __syncthreads();
    load_tile(ks, kb, j0, nk, d);
    load_tile(vs, vb, j0, nk, d);
    __syncthreads();
}

// One past the last key any query row of this block sees: the key tiles it loads.
__device__ inline int64_t block_key_end(const AttnArgs &a) {
    int64_t block_last = (int64_t)blockIdx.x * blockDim.x + blockDim.x - 1;
    block_last = block_last < a.tq ? block_last : a.tq - 1;
    int64_t kend = em_attn_last_key(block_last, a.tq, a.tk, a.causal) + 1;
    return kend < a.tk ? kend : a.tk;
}

template <class T>
__global__ void __launch_bounds__(ATTN_THREADS)
    attn_fwd(AttnArgs a, const T *q, const T *k, const T *v, const T *mask, T *o, T *lse, int kt) {
    extern __shared__ unsigned char smem[];
    T *ks = reinterpret_cast<T *>(smem), *vs = ks + kt * a.d;
    const int64_t bh = blockIdx.y, d = a.d, i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    const bool active = i < a.tq;
    const T *qi = q + (bh * a.tq + i) * d, *kb = k + bh * a.tk * d, *vb = v + bh * a.tk * d;
    T *oi = o + (bh * a.tq + i) * d, sc = (T)a.scale, m = (T)-INFINITY, l = 0, s[ATTN_MAX_TILE];
    if (active)
        for (int64_t t = 0; t < d; t++) oi[t] = 0;
    const int64_t last = em_attn_last_key(i, a.tq, a.tk, a.causal);
    const int64_t kend = block_key_end(a);
    for (int64_t j0 = 0; j0 < kend; j0 += kt) {
        const int64_t nk = kend - j0 < kt ? kend - j0 : kt;
        load_kv_tiles(ks, vs, kb, vb, j0, nk, d);
        if (!active) continue;
        int64_t vis = last - j0 + 1;
        vis = vis < 0 ? 0 : vis > nk ? nk : vis;
        T mx = m, sum = 0;
        for (int64_t j = 0; j < vis; j++) {
            s[j] = EM_ATTN(score, T)(dot(qi, ks + j * d, d), sc, mask_at(a, mask, bh, i, j0 + j));
            mx = s[j] > mx ? s[j] : mx;
        }
        const T ref = EM_ATTN(ref, T)(mx);
        for (int64_t j = 0; j < vis; j++) {
            s[j] = EM_ATTN(prob, T)(s[j], ref);
            sum += s[j];
        }
        const T alpha = EM_ATTN(prob, T)(m, ref);
        l = l * alpha + sum;
        m = mx;
        for (int64_t t = 0; t < d; t++) {
            T acc = oi[t] * alpha;
            for (int64_t j = 0; j < vis; j++) acc += s[j] * vs[j * d + t];
            oi[t] = acc;
        }
    }
    if (!active) return;
    const T inv = EM_ATTN(out_inv, T)(l);
    for (int64_t t = 0; t < d; t++) oi[t] *= inv;
    lse[bh * a.tq + i] = EM_ATTN(lse, T)(m, l);
}

// Backward, one thread per query row: its delta (kept for the second kernel) and dq.
template <class T>
__global__ void __launch_bounds__(ATTN_THREADS)
    attn_bwd_dq(AttnArgs a, const T *q, const T *k, const T *v, const T *mask, const T *o, const T *lse,
                const T *dout, const T *dlse, T *delta, T *dq, int kt) {
    extern __shared__ unsigned char smem[];
    T *ks = reinterpret_cast<T *>(smem), *vs = ks + kt * a.d;
    const int64_t bh = blockIdx.y, d = a.d, i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    const bool active = i < a.tq;
    const int64_t row = bh * a.tq + i;
    const T *qi = q + row * d, *doi = dout + row * d, *kb = k + bh * a.tk * d, *vb = v + bh * a.tk * d;
    T *dqi = dq + row * d, sc = (T)a.scale, li = 0, di = 0;
    if (active) {
        di = dot(doi, o + row * d, d) - dlse[row];
        delta[row] = di;
        li = EM_ATTN(ref, T)(lse[row]);
        for (int64_t t = 0; t < d; t++) dqi[t] = 0;
    }
    const int64_t last = em_attn_last_key(i, a.tq, a.tk, a.causal);
    const int64_t kend = block_key_end(a);
    for (int64_t j0 = 0; j0 < kend; j0 += kt) {
        const int64_t nk = kend - j0 < kt ? kend - j0 : kt;
        load_kv_tiles(ks, vs, kb, vb, j0, nk, d);
        if (!active) continue;
        for (int64_t j = 0; j < nk && j0 + j <= last; j++) {
            T p = EM_ATTN(prob, T)(EM_ATTN(score, T)(dot(qi, ks + j * d, d), sc, mask_at(a, mask, bh, i, j0 + j)), li);
            T ds = EM_ATTN(dscore, T)(p, dot(doi, vs + j * d, d), di) * sc;
            for (int64_t t = 0; t < d; t++) dqi[t] += ds * ks[j * d + t];
        }
    }
}

// Backward, one thread per key row: its dk and dv, against tiles of query rows.
template <class T>
__global__ void __launch_bounds__(ATTN_THREADS)
    attn_bwd_dkdv(AttnArgs a, const T *q, const T *k, const T *v, const T *mask, const T *lse, const T *dout,
                  const T *delta, T *dk, T *dv, int qt) {
    extern __shared__ unsigned char smem[];
    T *qs = reinterpret_cast<T *>(smem), *dos = qs + qt * a.d, *ls = dos + qt * a.d, *ds_ = ls + qt;
    const int64_t bh = blockIdx.y, d = a.d, j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    const bool active = j < a.tk;
    const T *kj = k + (bh * a.tk + j) * d, *vj = v + (bh * a.tk + j) * d;
    T *dkj = dk + (bh * a.tk + j) * d, *dvj = dv + (bh * a.tk + j) * d, sc = (T)a.scale;
    if (active)
        for (int64_t t = 0; t < d; t++) dkj[t] = dvj[t] = 0;
    // the first query row that sees the block's first key
    int64_t first = a.causal ? (int64_t)blockIdx.x * blockDim.x - (a.tk - a.tq) : 0;
    first = first > 0 ? first : 0;
    for (int64_t i0 = first; i0 < a.tq; i0 += qt) {
        const int64_t nq = a.tq - i0 < qt ? a.tq - i0 : qt;
        __syncthreads();
        load_tile(qs, q + bh * a.tq * d, i0, nq, d);
        load_tile(dos, dout + bh * a.tq * d, i0, nq, d);
        load_tile(ls, lse + bh * a.tq, i0, nq, 1);
        load_tile(ds_, delta + bh * a.tq, i0, nq, 1);
        __syncthreads();
        if (!active) continue;
        for (int64_t r = 0; r < nq; r++) {
            const int64_t i = i0 + r;
            if (j > em_attn_last_key(i, a.tq, a.tk, a.causal)) continue;
            const T *qi = qs + r * d, *doi = dos + r * d;
            T p = EM_ATTN(prob, T)(EM_ATTN(score, T)(dot(qi, kj, d), sc, mask_at(a, mask, bh, i, j)), EM_ATTN(ref, T)(ls[r]));
            T dsc = EM_ATTN(dscore, T)(p, dot(doi, vj, d), ds_[r]) * sc;
            for (int64_t t = 0; t < d; t++) {
                dvj[t] += p * doi[t];
                dkj[t] += dsc * qi[t];
            }
        }
    }
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

int too_wide(const em_gpu_call *c, int64_t d) {
    em_gpu_report("%s: rows of D = %lld do not fit the GPU kernel's shared memory tiles", c->name, (long long)d);
    return -1;
}

// The kernels' grids give each (batch, head) pair a row of blocks: at most 65535 of them.
int too_many_heads(const em_gpu_call *c, int64_t bh) {
    if (bh <= 65535) return 0;
    em_gpu_report("%s: B * H = %lld exceeds the GPU kernel's 65535 (batch, head) pairs", c->name, (long long)bh);
    return -1;
}

template <class T> int attention_gpu(const em_gpu_call *c, em_gpu_tensor *out, cudaStream_t stream) {
    AttnArgs a = attn_args(c, c->n);
    const int64_t bh = c->in[0].shape[0] * a.heads, on = c->in[0].numel;
    const int kt = tile_rows<T>(2 * a.d, ATTN_MAX_TILE);
    if (kt < 1) return too_wide(c, a.d);
    if (too_many_heads(c, bh)) return -1;
    T *o = static_cast<T *>(out->data);
    dim3 grid((unsigned)((a.tq + ATTN_THREADS - 1) / ATTN_THREADS), (unsigned)bh);
    attn_fwd<T><<<grid, ATTN_THREADS, sizeof(T) * (size_t)(2 * kt * a.d), stream>>>(
        a, static_cast<const T *>(c->in[0].data), static_cast<const T *>(c->in[1].data),
        static_cast<const T *>(c->in[2].data), mask_of<T>(c, c->n), o, o + on, kt);
    return em_gpu_launched(c->device, c->name);
}

// (q, k, v [, mask], attention's output, its gradient) -> [dq | dk | dv]
template <class T> int attention_grad_gpu(const em_gpu_call *c, em_gpu_tensor *out, cudaStream_t stream) {
    const int nqkv = c->n - 2;
    AttnArgs a = attn_args(c, nqkv);
    const int64_t bh = c->in[0].shape[0] * a.heads, on = c->in[0].numel, kn = c->in[1].numel;
    const int kt = tile_rows<T>(2 * a.d, ATTN_MAX_TILE), qt = tile_rows<T>(2 * a.d + 2, ATTN_MAX_TILE);
    if (kt < 1 || qt < 1) return too_wide(c, a.d);
    if (too_many_heads(c, bh)) return -1;
    const T *q = static_cast<const T *>(c->in[0].data), *k = static_cast<const T *>(c->in[1].data);
    const T *v = static_cast<const T *>(c->in[2].data), *mask = mask_of<T>(c, nqkv);
    const T *o = static_cast<const T *>(c->in[nqkv].data), *dout = static_cast<const T *>(c->in[nqkv + 1].data);
    T *dq = static_cast<T *>(out->data), *dk = dq + on, *dv = dk + kn;
    T *delta = static_cast<T *>(em_gpu_scratch(c->device, sizeof(T) * (size_t)(bh * a.tq + 1)));
    if (!delta) return -1;
    int rc = 0;
    if (a.tq > 0) { // no query rows: dk and dv are sums of nothing, which the second kernel writes
        dim3 qgrid((unsigned)((a.tq + ATTN_THREADS - 1) / ATTN_THREADS), (unsigned)bh);
        attn_bwd_dq<T><<<qgrid, ATTN_THREADS, sizeof(T) * (size_t)(2 * kt * a.d), stream>>>(
            a, q, k, v, mask, o, o + on, dout, dout + on, delta, dq, kt);
        rc = em_gpu_launched(c->device, c->name);
    }
    if (rc == 0 && a.tk > 0) {
        dim3 kgrid((unsigned)((a.tk + ATTN_THREADS - 1) / ATTN_THREADS), (unsigned)bh);
        attn_bwd_dkdv<T><<<kgrid, ATTN_THREADS, sizeof(T) * (size_t)(qt * (2 * a.d + 2)), stream>>>(
            a, q, k, v, mask, o + on, dout, delta, dk, dv, qt);
        rc = em_gpu_launched(c->device, c->name);
    }
    em_gpu_scratch_free(c->device, delta); // the stream orders the kernels before any later reuse
    return rc;
}

} // namespace

EM_GPU_FLOAT_OP(attention, attention_gpu<T>(c, out, stream))
EM_GPU_FLOAT_OP(attention_grad, attention_grad_gpu<T>(c, out, stream))
