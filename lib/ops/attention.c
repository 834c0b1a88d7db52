/* Fused scaled dot-product attention (float32 and float64), flash-attention
 * style: the forward pass walks the keys in blocks with an online softmax and
 * keeps each query row's log-sum-exp; the backward pass recomputes the
 * probabilities block by block from q, k and that lse. Neither materializes
 * the [Tq, Tk] scores: beyond inputs and outputs they use O(B H T) memory
 * (the lse, and the backward pass's per-row delta) plus a few blocks per
 * thread. The formulas are attention_math.h's, which gpu/attention.cu calls
 * too.
 *
 * Ops have one output, so each op packs its results into one flat tensor
 * that the public function and the gradient rule slice into contiguous views
 * (em_slice + em_reshape, no copies):
 *   attention      (q, k, v [, mask]) -> [O (B H Tq D) | lse (B H Tq)]
 *   attention_grad (q, k, v [, mask], attention's output, its gradient)
 *                  -> [dq (B H Tq D) | dk (B H Tk D) | dv (B H Tk D)]
 * Keeping the lse in attention's own output (rather than a second op that
 * recomputes it) is what lets the backward pass skip the row maxima and sums;
 * the gradient rule hands the packed gradient to attention_grad whole, so a
 * gradient reaching the lse part is honoured too (it shifts delta).
 * Attributes: i[0] causal, f[0] the scale (0: 1/sqrt(D)). A mask is the
 * fourth input when given.
 *
 * Work: the blocks are small matrix products, run by the AVX-512
 * register-tile kernel (regtile.c) for float32 where the CPU has it and the
 * widths are multiples of 16, else by a loop compiled for AVX-512, AVX2 and
 * plain x86-64 (EM_HOT). The forward pass is one task per (batch, head,
 * FWD_ROWS query rows); the backward pass one task per (batch, head), which
 * owns its rows of dq, dk and dv, so nothing is added across threads. Each
 * thread has one scratch slot and takes the next task from a counter (the
 * causal cut makes tasks unequal). Tasks are independent and each computes
 * in a fixed order: results do not depend on the thread count. */
#include "../gpu.h"
#include "../internal.h"
#include "attention_math.h"
#include "nn.h"
#include "regtile.h"

#include <math.h>
#include <stdatomic.h>

enum { A_CAUSAL = 0, A_SCALE = 0 };
/* Query rows and keys per block: 48 rows and 96 keys fill the register
 * tiles (6 x 64 and 12 x 32) exactly for D = 32 and 64. Each row's max and
 * sum of exps cost a fixed amount per block: the wide key block pays it
 * less often. */
enum { BQ = 48, BK = 96 };
/* Query rows of a forward task: three blocks share each transposed key block. */
enum { FWD_ROWS = 3 * BQ };
/* Lanes of the row reductions: a 512-bit vector of float32. */
enum { LANES = 16 };
/* part[l] = op(part[l], part[l + w]) for l < w: one step of combining lanes by halving
 * (constant widths, so that each step is one vector operation). */
#define HALVE(part, w, op) \
    for (int l_ = 0; l_ < (w); l_++) (part)[l_] = op((part)[l_], (part)[l_ + (w)])
#define MAX_OF(a, b) ((b) > (a) ? (b) : (a))
#define SUM_OF(a, b) ((a) + (b))

/* ---- shape rules ---- */

static const char *const QKV_NAMES[4] = {"q", "k", "v", "mask"};

/* Checks (q, k, v [, mask]), the first nqkv inputs of c (3 or 4): float
 * dtypes alike, q [B,H,Tq,D], k and v [B,H,Tk,D], a mask that broadcasts to
 * [B,H,Tq,Tk], a scale >= 0. */
static int attn_check(const em_call *c, int nqkv) {
    char s0[160], s1[160];
    const em_tensor *q = c->in[0], *k = c->in[1], *v = c->in[2];
    if (em__nn_need_float(c, 0, "q")) return -1;
    for (int i = 1; i < nqkv; i++)
        if (c->in[i]->dtype != q->dtype)
            return em__op_error(c, "%s has dtype %s but q has %s; they must match", QKV_NAMES[i],
                                em_dtype_name((em_dtype)c->in[i]->dtype), em_dtype_name((em_dtype)q->dtype));
    for (int i = 0; i < 3; i++)
        if (c->in[i]->ndim != 4)
            return em__op_error(c, "%s %s must be 4-D [B, H, %s, D]", QKV_NAMES[i], em__tshape(c->in[i], s0, sizeof s0),
                                i ? "Tk" : "Tq");
    if (k->shape[0] != q->shape[0] || k->shape[1] != q->shape[1] || k->shape[3] != q->shape[3])
        return em__op_error(c, "k %s must match q %s in B, H and D", em__tshape(k, s0, sizeof s0),
                            em__tshape(q, s1, sizeof s1));
    if (memcmp(v->shape, k->shape, sizeof(int64_t) * 4) != 0)
        return em__op_error(c, "v %s must have k's shape %s", em__tshape(v, s0, sizeof s0), em__tshape(k, s1, sizeof s1));
    if (nqkv == 4) {
        const em_tensor *m = c->in[3];
        int64_t full[4] = {q->shape[0], q->shape[1], q->shape[2], k->shape[2]};
        bool ok = m->ndim <= 4;
        for (int d = 0; ok && d < m->ndim; d++) {
            int64_t n = m->shape[d], want = full[4 - m->ndim + d];
            ok = n == want || n == 1;
        }
        if (!ok)
            return em__op_error(c, "mask %s does not broadcast to [B, H, Tq, Tk] = %s", em__tshape(m, s0, sizeof s0),
                                em__nn_shape_str(4, full, s1, sizeof s1));
    }
    double scale = c->a->f[A_SCALE];
    if (!(scale >= 0) || isinf(scale))
        return em__op_error(c, "scale is %g; it must be finite and >= 0 (0 means 1/sqrt(D))", scale);
    return 0;
}

/* Elements of O, and of dk (= dv), of the q, k of c. */
static int64_t o_numel(const em_call *c) { return c->in[0]->numel; }
static int64_t kv_numel(const em_call *c) { return c->in[1]->numel; }
static int64_t rows_numel(const em_call *c) { return c->in[0]->shape[0] * c->in[0]->shape[1] * c->in[0]->shape[2]; }

static int attention_infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    if (c->n != 3 && c->n != 4) return em__op_error(c, "takes q, k, v and an optional mask, got %d inputs", c->n);
    if (attn_check(c, c->n)) return -1;
    *dtype = (em_dtype)c->in[0]->dtype;
    *ndim = 1;
    shape[0] = o_numel(c) + rows_numel(c);
    return 0;
}

/* inputs (q, k, v [, mask], out, gout): out and gout are attention's packed output and its gradient. */
static int attention_grad_infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    char s0[160];
    if (c->n != 5 && c->n != 6)
        return em__op_error(c, "takes q, k, v, an optional mask, attention's output and its gradient, got %d inputs",
                            c->n);
    if (attn_check(c, c->n - 2)) return -1;
    int64_t packed = o_numel(c) + rows_numel(c);
    for (int i = c->n - 2; i < c->n; i++) {
        const em_tensor *t = c->in[i];
        const char *what = i == c->n - 2 ? "attention's output" : "its gradient";
        if (t->dtype != c->in[0]->dtype)
            return em__op_error(c, "%s has dtype %s but q has %s", what, em_dtype_name((em_dtype)t->dtype),
                                em_dtype_name((em_dtype)c->in[0]->dtype));
        if (t->ndim != 1 || t->shape[0] != packed)
            return em__op_error(c, "%s %s must be the flat [%lld] of attention's packed output", what,
                                em__tshape(t, s0, sizeof s0), (long long)packed);
    }
    *dtype = (em_dtype)c->in[0]->dtype;
    *ndim = 1;
    shape[0] = o_numel(c) + 2 * kv_numel(c);
    return 0;
}

/* Multiply-adds per output element, for the graph's chunking. */
static int64_t attention_cost(const em_call *c) {
    return c->n >= 3 && c->in[1]->ndim == 4 ? 4 * c->in[1]->shape[2] : 1;
}
#define attention_grad_cost attention_cost

/* ---- kernels ---- */

typedef struct {
    int64_t tq, tk, d, heads, ntasks, qblocks;
    bool causal, has_mask;
    bool backward; /* the tasks are attention_grad's */
    double scale;
    int64_t ms[4]; /* the mask's strides over [B, H, Tq, Tk] (0 where it broadcasts) */
    const void *q, *k, *v, *mask;
    const void *o, *lse, *dout, *dlse; /* backward: attention's output and its gradient */
    void *out, *out_lse;               /* forward: O and lse; backward: dq */
    void *dk, *dv;
    char *scratch; /* one slot of slot_bytes per thread */
    size_t slot_bytes;
    atomic_llong next; /* the next task to take */
} attn_plan;

/* Whether the CPU has the register-tile kernel's AVX-512 (set by each call's plan). */
static atomic_bool regtile_ok;

/* c[i ldc + j] (+)= sum_t a[i ars + t acs] b[t ldb + j], i < m, j < n, t < k. */
#define ATTN_MM_GENERIC(T)                                                                                            \
    EM_HOT static void mm_loop_##T(int64_t m, int64_t n, int64_t k, const T *a, int64_t ars, int64_t acs, const T *b, \
                                   int64_t ldb, T *c, int64_t ldc, bool acc) {                                        \
        for (int64_t i = 0; i < m; i++) {                                                                             \
            T *ci = c + i * ldc;                                                                                      \
            const T *ai = a + i * ars;                                                                                \
            if (!acc)                                                                                                 \
                for (int64_t j = 0; j < n; j++) ci[j] = 0;                                                            \
            for (int64_t t = 0; t < k; t++) {                                                                         \
                const T av = ai[t * acs], *bt = b + t * ldb;                                                          \
                _Pragma("omp simd") for (int64_t j = 0; j < n; j++) ci[j] += av * bt[j];                              \
            }                                                                                                         \
        }                                                                                                             \
    }
ATTN_MM_GENERIC(float)
ATTN_MM_GENERIC(double)

static void mm_double(int64_t m, int64_t n, int64_t k, const double *a, int64_t ars, int64_t acs, const double *b,
                      int64_t ldb, double *c, int64_t ldc, bool acc) {
    mm_loop_double(m, n, k, a, ars, acs, b, ldb, c, ldc, acc);
}

static void mm_float(int64_t m, int64_t n, int64_t k, const float *a, int64_t ars, int64_t acs, const float *b,
                     int64_t ldb, float *c, int64_t ldc, bool acc) {
#ifdef EM_REGTILE_KERNEL
    if (atomic_load_explicit(&regtile_ok, memory_order_relaxed) && n % 16 == 0) {
        for (int64_t j0 = 0; j0 < n; j0 += 16 * EM_REGTILE_VECS) {
            int vecs = em__regtile_vecs(n - j0), rows = em__regtile_rows(vecs);
            for (int64_t i0 = 0; i0 < m; i0 += rows) {
                int nr = m - i0 < rows ? (int)(m - i0) : rows;
                em_regtile t = {.b = b + j0, .c = c + i0 * ldc + j0, .nr = 1, .nt = k, .at = acs, .bt = ldb,
                                .cj = ldc, .accumulate = acc};
                for (int r = 0; r < nr; r++) t.a[r] = a + (i0 + r) * ars;
                em__regtile_run(nr, vecs, &t);
            }
        }
        return;
    }
#endif
    mm_loop_float(m, n, k, a, ars, acs, b, ldb, c, ldc, acc);
}

/* Keys padded to a multiple of 16 (the register tiles' width); the padding of
 * the transposed blocks is zero. */
static int64_t pad16(int64_t n) { return (n + 15) / 16 * 16; }

/* The mask's row for query row i of head bh, or NULL without a mask. */
#define MASK_ROW(T, p, bh, i) \
    ((p)->has_mask ? (const T *)(p)->mask + (bh) / (p)->heads * (p)->ms[0] + (bh) % (p)->heads * (p)->ms[1] + (i) * (p)->ms[2] : NULL)

#define ATTN_KERNELS(T)                                                                                               \
    /* dst[t][j] = src[j][t] for j < nk keys of d values, padded with zero keys to BK. */                            \
    static void transpose_block_##T(const T *src, int64_t nk, int64_t d, T *dst) {                                    \
        for (int64_t t = 0; t < d; t++) {                                                                             \
            T *row = dst + t * BK;                                                                                    \
            for (int64_t j = 0; j < nk; j++) row[j] = src[j * d + t];                                                 \
            for (int64_t j = nk; j < BK; j++) row[j] = 0;                                                             \
        }                                                                                                             \
    }                                                                                                                 \
    /* The scores of row s (keys j0.. of query row i; vis of them visible) in place, from the products. */           \
    static inline __attribute__((always_inline)) void scores_##T(T *s, int64_t vis, T sc, const T *mrow,            \
                                                                 int64_t mstep) {                            \
        if (mrow && mstep) {                                                                                          \
            _Pragma("omp simd") for (int64_t j = 0; j < vis; j++) s[j] = EM_ATTN(score, T)(s[j], sc, mrow[j]);      \
        } else {                                                                                                      \
            const T mv = mrow ? mrow[0] : (T)0;                                                                       \
            _Pragma("omp simd") for (int64_t j = 0; j < vis; j++) s[j] = EM_ATTN(score, T)(s[j], sc, mv);           \
        }                                                                                                             \
    }                                                                                                                 \
    /* A row's max (from init) and its sum of exps: in LANES lanes combined by halving, so that the vectors       \
     * are not waiting on one long chain of dependent maxima or sums (n is at most a block). */                      \
    static inline __attribute__((always_inline)) T row_max_##T(const T *x, int64_t n, T init) {                      \
        T part[LANES];                                                                                                \
        for (int l = 0; l < LANES; l++) part[l] = init;                                                               \
        int64_t j = 0;                                                                                                \
        for (; j + LANES <= n; j += LANES)                                                                            \
            for (int l = 0; l < LANES; l++) part[l] = x[j + l] > part[l] ? x[j + l] : part[l];                       \
        for (int l = 0; j + l < n; l++) part[l] = x[j + l] > part[l] ? x[j + l] : part[l];                           \
        HALVE(part, 8, MAX_OF);                                                                                       \
        HALVE(part, 4, MAX_OF);                                                                                       \
        HALVE(part, 2, MAX_OF);                                                                                       \
        HALVE(part, 1, MAX_OF);                                                                                       \
        return part[0];                                                                                               \
    }                                                                                                                 \
    /* x = prob(x, ref) in place; returns their sum. */                                                               \
    static inline __attribute__((always_inline)) T row_exp_sum_##T(T *x, int64_t n, T ref) {                         \
        T part[LANES] = {0};                                                                                          \
        int64_t j = 0;                                                                                                \
        for (; j + LANES <= n; j += LANES)                                                                            \
            for (int l = 0; l < LANES; l++) {                                                                         \
                T e = EM_ATTN(prob, T)(x[j + l], ref);                                                                \
                x[j + l] = e;                                                                                         \
                part[l] += e;                                                                                         \
            }                                                                                                         \
        for (int l = 0; j + l < n; l++) {                                                                             \
            T e = EM_ATTN(prob, T)(x[j + l], ref);                                                                    \
            x[j + l] = e;                                                                                             \
            part[l] += e;                                                                                             \
        }                                                                                                             \
        HALVE(part, 8, SUM_OF);                                                                                       \
        HALVE(part, 4, SUM_OF);                                                                                       \
        HALVE(part, 2, SUM_OF);                                                                                       \
        HALVE(part, 1, SUM_OF);                                                                                       \
        return part[0];                                                                                               \
    }                                                                                                                 \
    /* One block of rows [i0, i0 + nq) of head bh: m, l and acc updated by keys [j0, j0 + nk). */                    \
    EM_HOT static void fwd_rows_##T(const attn_plan *p, int64_t bh, int64_t i0, int64_t nq, int64_t j0, int64_t nk,  \
                                    T *s, T *m, T *l, T *acc) {                                                       \
        const int64_t d = p->d;                                                                                       \
        const T sc = (T)p->scale;                                                                                     \
        for (int64_t r = 0; r < nq; r++) {                                                                            \
            int64_t i = i0 + r, vis = em_attn_last_key(i, p->tq, p->tk, p->causal) - j0 + 1;                          \
            vis = vis < 0 ? 0 : vis > nk ? nk : vis;                                                                  \
            T *sr = s + r * BK, mx = m[r];                                                                            \
            const T *mrow = MASK_ROW(T, p, bh, i);                                                                    \
            scores_##T(sr, vis, sc, mrow ? mrow + j0 * p->ms[3] : NULL, p->ms[3]);                                    \
            mx = row_max_##T(sr, vis, mx);                                                                            \
            const T ref = EM_ATTN(ref, T)(mx);                                                                        \
            T sum = row_exp_sum_##T(sr, vis, ref);                                                                    \
            for (int64_t j = vis; j < nk; j++) sr[j] = 0;                                                             \
            T alpha = EM_ATTN(prob, T)(m[r], ref);                                                                    \
            l[r] = l[r] * alpha + sum;                                                                                \
            m[r] = mx;                                                                                                \
            if (alpha != (T)1) {                                                                                      \
                T *ar = acc + r * d;                                                                                  \
                _Pragma("omp simd") for (int64_t t = 0; t < d; t++) ar[t] *= alpha;                                   \
            }                                                                                                         \
        }                                                                                                             \
    }                                                                                                                 \
    /* Forward task: (batch, head) bh, FWD_ROWS query rows from i0 (a transposed block of keys serves them all). \
     * Slot: kt [D BK], s [BQ BK], acc [FWD_ROWS D], m, l [FWD_ROWS]. */                                             \
    static void fwd_task_##T(const attn_plan *p, int64_t task, T *slot) {                                             \
        const int64_t d = p->d, bh = task / p->qblocks, i0 = task % p->qblocks * FWD_ROWS;                           \
        const int64_t nq = p->tq - i0 < FWD_ROWS ? p->tq - i0 : FWD_ROWS;                                             \
        const T *q = (const T *)p->q + (bh * p->tq + i0) * d, *k = (const T *)p->k + bh * p->tk * d;                  \
        const T *v = (const T *)p->v + bh * p->tk * d;                                                                \
        T *kt = slot, *s = kt + d * BK, *acc = s + BQ * BK, *m = acc + FWD_ROWS * d, *l = m + FWD_ROWS;               \
        for (int64_t r = 0; r < nq; r++) {                                                                            \
            m[r] = (T)-INFINITY;                                                                                      \
            l[r] = 0;                                                                                                 \
        }                                                                                                             \
        memset(acc, 0, sizeof(T) * (size_t)(nq * d));                                                                 \
        int64_t kend = em_attn_last_key(i0 + nq - 1, p->tq, p->tk, p->causal) + 1;                                    \
        kend = kend > p->tk ? p->tk : kend;                                                                           \
        for (int64_t j0 = 0; j0 < kend; j0 += BK) {                                                                   \
            int64_t nk = kend - j0 < BK ? kend - j0 : BK;                                                             \
            transpose_block_##T(k + j0 * d, nk, d, kt);                                                               \
            for (int64_t r0 = 0; r0 < nq; r0 += BQ) { /* the blocks of rows that see any of these keys */            \
                int64_t rn = nq - r0 < BQ ? nq - r0 : BQ;                                                             \
                if (em_attn_last_key(i0 + r0 + rn - 1, p->tq, p->tk, p->causal) < j0) continue;                       \
                mm_##T(rn, pad16(nk), d, q + r0 * d, d, 1, kt, BK, s, BK, false);                                     \
                fwd_rows_##T(p, bh, i0 + r0, rn, j0, nk, s, m + r0, l + r0, acc + r0 * d);                            \
                mm_##T(rn, d, nk, s, BK, 1, v + j0 * d, d, acc + r0 * d, d, true);                                    \
            }                                                                                                         \
        }                                                                                                             \
        T *o = (T *)p->out + (bh * p->tq + i0) * d, *lse = (T *)p->out_lse + bh * p->tq + i0;                         \
        for (int64_t r = 0; r < nq; r++) {                                                                            \
            T inv = EM_ATTN(out_inv, T)(l[r]);                                                                        \
            for (int64_t t = 0; t < d; t++) o[r * d + t] = acc[r * d + t] * inv;                                      \
            lse[r] = EM_ATTN(lse, T)(m[r], l[r]);                                                                     \
        }                                                                                                             \
    }                                                                                                                 \
    /* Backward rows [i0, i0 + nq) against keys [j0, j0 + nk): s (the products q.k) becomes p, dp (do.v) the      \
     * scaled score gradients. */                                                                                     \
    EM_HOT static void bwd_rows_##T(const attn_plan *p, int64_t bh, int64_t i0, int64_t nq, int64_t j0, int64_t nk,  \
                                    T *s, T *dp, const T *delta) {                                                    \
        const T sc = (T)p->scale, *lse = (const T *)p->lse + bh * p->tq;                                              \
        for (int64_t r = 0; r < nq; r++) {                                                                            \
            int64_t i = i0 + r, vis = em_attn_last_key(i, p->tq, p->tk, p->causal) - j0 + 1;                          \
            vis = vis < 0 ? 0 : vis > nk ? nk : vis;                                                                  \
            T *sr = s + r * BK, *dr = dp + r * BK, li = EM_ATTN(ref, T)(lse[i]), di = delta[i];                       \
            const T *mrow = MASK_ROW(T, p, bh, i);                                                                    \
            scores_##T(sr, vis, sc, mrow ? mrow + j0 * p->ms[3] : NULL, p->ms[3]);                                    \
            _Pragma("omp simd") for (int64_t j = 0; j < vis; j++) {                                                   \
                sr[j] = EM_ATTN(prob, T)(sr[j], li);                                                                  \
                dr[j] = EM_ATTN(dscore, T)(sr[j], dr[j], di) * sc;                                                    \
            }                                                                                                         \
            for (int64_t j = vis; j < nk; j++) sr[j] = dr[j] = 0;                                                     \
        }                                                                                                             \
    }                                                                                                                 \
    /* Backward task: (batch, head) bh, its rows of dq, dk and dv. Slot: kt, vt [D BK], s, dp [BQ BK], dkb, dvb    \
     * [BK D], delta [Tq]. */                                                                                         \
    static void bwd_task_##T(const attn_plan *p, int64_t bh, T *slot) {                                               \
        const int64_t d = p->d, tq = p->tq, tk = p->tk;                                                               \
        const T *q = (const T *)p->q + bh * tq * d, *k = (const T *)p->k + bh * tk * d;                               \
        const T *v = (const T *)p->v + bh * tk * d, *o = (const T *)p->o + bh * tq * d;                               \
        const T *dout = (const T *)p->dout + bh * tq * d, *dlse = (const T *)p->dlse + bh * tq;                       \
        T *dq = (T *)p->out + bh * tq * d, *dk = (T *)p->dk + bh * tk * d, *dv = (T *)p->dv + bh * tk * d;            \
        T *kt = slot, *vt = kt + d * BK, *s = vt + d * BK, *dp = s + BQ * BK, *dkb = dp + BQ * BK;                     \
        T *dvb = dkb + BK * d, *delta = dvb + BK * d;                                                                 \
        for (int64_t i = 0; i < tq; i++) {                                                                            \
            T sum = 0;                                                                                                \
            for (int64_t t = 0; t < d; t++) sum += dout[i * d + t] * o[i * d + t];                                    \
            delta[i] = sum - dlse[i];                                                                                 \
        }                                                                                                             \
        memset(dq, 0, sizeof(T) * (size_t)(tq * d));                                                                  \
        for (int64_t j0 = 0; j0 < tk; j0 += BK) {                                                                     \
            int64_t nk = tk - j0 < BK ? tk - j0 : BK, first = p->causal ? j0 - (tk - tq) : 0;                         \
            transpose_block_##T(k + j0 * d, nk, d, kt);                                                               \
            transpose_block_##T(v + j0 * d, nk, d, vt);                                                               \
            memset(dkb, 0, sizeof(T) * (size_t)(nk * d));                                                             \
            memset(dvb, 0, sizeof(T) * (size_t)(nk * d));                                                             \
            for (int64_t i0 = first > 0 ? first / BQ * BQ : 0; i0 < tq; i0 += BQ) {                                   \
                int64_t nq = tq - i0 < BQ ? tq - i0 : BQ;                                                             \
                mm_##T(nq, pad16(nk), d, q + i0 * d, d, 1, kt, BK, s, BK, false);                                     \
                mm_##T(nq, pad16(nk), d, dout + i0 * d, d, 1, vt, BK, dp, BK, false);                                 \
                bwd_rows_##T(p, bh, i0, nq, j0, nk, s, dp, delta);                                                    \
                mm_##T(nk, d, nq, s, 1, BK, dout + i0 * d, d, dvb, d, true);                                          \
                mm_##T(nk, d, nq, dp, 1, BK, q + i0 * d, d, dkb, d, true);                                            \
                mm_##T(nq, d, nk, dp, BK, 1, k + j0 * d, d, dq + i0 * d, d, true);                                    \
            }                                                                                                         \
            memcpy(dk + j0 * d, dkb, sizeof(T) * (size_t)(nk * d));                                                   \
            memcpy(dv + j0 * d, dvb, sizeof(T) * (size_t)(nk * d));                                                   \
        }                                                                                                             \
    }                                                                                                                 \
    static void worker_##T(void *ctx, int64_t begin, int64_t end) {                                                   \
        attn_plan *p = ctx;                                                                                           \
        for (int64_t w = begin; w < end; w++) {                                                                       \
            T *slot = (T *)(p->scratch + (size_t)w * p->slot_bytes);                                                  \
            for (int64_t t; (t = atomic_fetch_add(&p->next, 1)) < p->ntasks;)                                         \
                (p->backward ? bwd_task_##T : fwd_task_##T)(p, t, slot);                                              \
        }                                                                                                             \
    }
ATTN_KERNELS(float)
ATTN_KERNELS(double)

/* The plan of a call whose inputs start (q, k, v [, mask]), nqkv of them. */
static void attn_plan_init(attn_plan *p, const em_call *c, int nqkv) {
    const em_tensor *q = c->in[0], *k = c->in[1];
    *p = (attn_plan){.tq = q->shape[2], .tk = k->shape[2], .d = q->shape[3], .heads = q->shape[1],
                     .causal = c->a->i[A_CAUSAL] != 0, .has_mask = nqkv == 4,
                     .scale = em_attn_scale(c->a->f[A_SCALE], q->shape[3]),
                     .q = q->data, .k = k->data, .v = c->in[2]->data};
    if (p->has_mask) {
        const em_tensor *m = c->in[3];
        p->mask = m->data;
        em_attn_mask_strides(m->ndim, m->shape, p->ms);
    }
#ifdef EM_REGTILE_KERNEL
    atomic_store_explicit(&regtile_ok, em__regtile_ready(), memory_order_relaxed);
#endif
}

/* Runs worker over p's tasks, one scratch slot per thread; false when the
 * scratch cannot be had (after an error naming the op). */
static bool attn_run(const em_call *c, attn_plan *p, size_t slot_elems, size_t es, em_range_fn worker) {
    int64_t workers = em__threads() < p->ntasks ? em__threads() : p->ntasks;
    p->slot_bytes = (slot_elems * es + EM_ALIGN - 1) / EM_ALIGN * EM_ALIGN;
    if (workers < 1) return true;
    if (!(p->scratch = em__scratch(p->slot_bytes * (size_t)workers))) {
        em__op_error(c, "out of memory for %lld blocks of %zu bytes", (long long)workers, p->slot_bytes);
        return false;
    }
    atomic_store(&p->next, 0);
    em__parallel_for(workers, 1, worker, p);
    em__scratch_free(p->scratch);
    return true;
}

static void attention_cpu(const em_call *c, em_tensor *out) {
    attn_plan p;
    attn_plan_init(&p, c, c->n);
    size_t es = out->dtype == EM_F32 ? sizeof(float) : sizeof(double);
    int64_t bh = c->in[0]->shape[0] * p.heads, d = p.d;
    p.qblocks = (p.tq + FWD_ROWS - 1) / FWD_ROWS;
    p.ntasks = bh * p.qblocks;
    p.backward = false;
    p.out = out->data;
    p.out_lse = (char *)out->data + (size_t)o_numel(c) * es;
    attn_run(c, &p, (size_t)(d * BK + BQ * BK + FWD_ROWS * d + 2 * FWD_ROWS), es,
             out->dtype == EM_F32 ? worker_float : worker_double);
}

static void attention_grad_cpu(const em_call *c, em_tensor *out) {
    attn_plan p;
    int nqkv = c->n - 2;
    attn_plan_init(&p, c, nqkv);
    size_t es = out->dtype == EM_F32 ? sizeof(float) : sizeof(double);
    int64_t on = o_numel(c), kn = kv_numel(c), d = p.d;
    p.ntasks = c->in[0]->shape[0] * p.heads;
    p.backward = true;
    p.o = c->in[nqkv]->data;
    p.lse = (const char *)p.o + (size_t)on * es;
    p.dout = c->in[nqkv + 1]->data;
    p.dlse = (const char *)p.dout + (size_t)on * es;
    p.out = out->data;
    p.dk = (char *)out->data + (size_t)on * es;
    p.dv = (char *)out->data + (size_t)(on + kn) * es;
    attn_run(c, &p, (size_t)(2 * d * BK + 2 * BQ * BK + 2 * BK * d + p.tq), es,
             out->dtype == EM_F32 ? worker_float : worker_double);
}

/* ---- the packed outputs' views ---- */

/* The contiguous part of flat t that starts at `offset`, as a tensor of `shape`. NEW. */
static em_tensor *packed_part(em_tensor *t, int64_t offset, em_shape shape) {
    int64_t size = em_shape_numel(shape);
    return em_reshape(em_slice(t, &offset, &size), shape);
}

static int attention_grad(const em_call *c, em_tensor *out, em_tensor *g, const bool *need, em_tensor **gin) {
    if (c->n == 4 && need[3])
        return em__op_error(c, "the mask has no gradient here (it would take a [B, H, Tq, Tk] tensor); "
                               "pass it as a constant");
    em_tensor *in[6];
    for (int i = 0; i < c->n; i++) in[i] = c->in[i];
    in[c->n] = out;
    in[c->n + 1] = g;
    em_tensor *grads = em__apply(EM_OP_ATTENTION_GRAD, c->n + 2, in, c->a);
    if (!grads) return -1;
    int64_t on = o_numel(c), kn = kv_numel(c);
    const int64_t offsets[3] = {0, on, on + kn};
    for (int i = 0; i < 3; i++)
        if (need[i] && !(gin[i] = packed_part(grads, offsets[i], em__shape_of(c->in[i])))) return -1;
    return 0;
}

#define EM_OP(ID, name, arity, dtypes, grad, kernel, flags, cost) \
    EM_OP_ROW(ID, name, arity, dtypes, grad, kernel, flags, cost, name##_infer, name##_cpu, name##_view, name##_grad)
#include "attention.def"
#undef EM_OP

/* ---- public function ---- */

em_tensor *em_scaled_dot_product_attention(em_tensor *q, em_tensor *k, em_tensor *v, bool causal, double scale,
                                           em_tensor *mask) {
    em_tensor *in[4] = {q, k, v, mask};
    em_attrs a = {.i = {causal}, .ni = 1, .f = {scale}};
    em_tensor *packed = em__apply(EM_OP_ATTENTION, mask ? 4 : 3, in, &a);
    return packed ? packed_part(packed, 0, em__shape_of(q)) : NULL;
}
