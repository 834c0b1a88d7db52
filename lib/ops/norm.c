/* Layer norm and RMS norm over the last axis (float32 and float64). The
 * formulas are norm_math.h's, which gpu/norm.cu's kernels call too.
 *
 * An op has one output, and the forward pass must keep each row's mean and
 * reciprocal std for the backward pass, so a norm is two ops:
 *   layer_norm (x, gamma, beta) computes, in one pass over x, one flat buffer
 *     [y (numel(x)) | mean (rows) | rstd (rows)]; RMS norm's has no mean.
 *     Its gradient is cut: y's path carries it.
 *   layer_norm_y (buffer, x, gamma, beta) is y: a view of the buffer's front
 *     in x's shape (no copy). Its gradient rule runs the fused backward op
 *     layer_norm_grad (x, buffer, gamma, dy), which reads the kept statistics
 *     and writes [dgamma | dbeta | dx], then hands out views of its parts
 *     (dx last: its slice runs to the end, so a graph traced with an unknown
 *     batch size holds no offset derived from it).
 * So the tape sees y's op with x, gamma and beta as inputs and gives it dy of
 * y's own shape (a slice of the buffer would hand its gradient rule a padded
 * copy of dy, an extra pass over memory). The backward op's own gradient
 * rule recomputes the statistics from x with public ops, so derivatives of
 * every order are right.
 *
 * Attributes: i[0] the axis (the last: -1 or ndim - 1), f[0] eps. */
#include "../internal.h"
#include "nn.h"
#include "norm_math.h"
#include "../stream_store.h"

#include <inttypes.h>
#include <stdlib.h>


/* Layer norm (centred, with beta), or RMS norm. */
static bool is_layer(const em_call *c) {
    em_op op = c->def->id;
    return op == EM_OP_LAYER_NORM || op == EM_OP_LAYER_NORM_Y || op == EM_OP_LAYER_NORM_GRAD;
}

/* The rows of x and their length, the last dimension. */
static int64_t row_len(const em_tensor *x) { return x->shape[x->ndim - 1]; }
static int64_t rows_of(const em_tensor *x) { return row_len(x) ? x->numel / row_len(x) : 0; }
/* The forward buffer's size: y, then rstd (and before it the mean, for layer norm) per row. */
static int64_t fwd_size(const em_tensor *x, bool layer) { return x->numel + (layer ? 2 : 1) * rows_of(x); }
/* The backward buffer's size: dgamma (and dbeta, for layer norm), then dx. */
static int64_t bwd_size(const em_tensor *x, bool layer) { return x->numel + (layer ? 2 : 1) * row_len(x); }

/* ---- shape rules ---- */

/* x float with at least one dimension; gamma (and beta, layer norm) [C] of its dtype. */
static int check_params(const em_call *c, const em_tensor *x, int gamma_at) {
    char b1[160], b2[160];
    if (em__nn_need_float(c, gamma_at - 1, "x")) return -1;
    if (x->ndim < 1) return em__op_error(c, "x must have at least 1 dimension (the one normalized), got a scalar");
    const char *names[2] = {"gamma", "beta"};
    for (int k = 0; k < (is_layer(c) ? 2 : 1); k++) {
        const em_tensor *p = c->in[gamma_at + k];
        if (p->dtype != x->dtype)
            return em__op_error(c, "%s has dtype %s but x has %s", names[k], em_dtype_name((em_dtype)p->dtype),
                                em_dtype_name((em_dtype)x->dtype));
        if (p->ndim != 1 || p->shape[0] != row_len(x))
            return em__op_error(c, "%s %s must be [%" PRId64 "], the last dimension of x %s", names[k],
                                em__tshape(p, b1, sizeof b1), row_len(x), em__tshape(x, b2, sizeof b2));
    }
    if (!(c->a->f[0] >= 0) || c->a->f[0] == INFINITY)
        return em__op_error(c, "eps must be finite and at least 0, got %g", c->a->f[0]);
    return 0;
}

/* (x, gamma[, beta]) -> the forward buffer. */
static int norm_infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    const em_tensor *x = c->in[0];
    char b[160];
    if (check_params(c, x, 1)) return -1;
    int64_t axis = c->a->i[0];
    if (axis != -1 && axis != x->ndim - 1)
        return em__op_error(c, "axis %" PRId64 " of x %s is not supported: only the last axis (-1 or %d) is", axis,
                            em__tshape(x, b, sizeof b), x->ndim - 1);
    *dtype = (em_dtype)x->dtype;
    *ndim = 1;
    shape[0] = fwd_size(x, is_layer(c));
    return 0;
}
#define layer_norm_infer norm_infer
#define rms_norm_infer norm_infer

/* A forward buffer (in[at]) that belongs to x: its dtype, 1-D, of fwd_size. */
static int check_buffer(const em_call *c, int at, const em_tensor *x) {
    const em_tensor *buf = c->in[at];
    char b1[160], b2[160];
    if (buf->dtype != x->dtype || buf->ndim != 1 || buf->shape[0] != fwd_size(x, is_layer(c)))
        return em__op_error(c, "the forward buffer %s %s is not the one of x %s %s (%s [%" PRId64 "])",
                            em_dtype_name((em_dtype)buf->dtype), em__tshape(buf, b1, sizeof b1),
                            em_dtype_name((em_dtype)x->dtype), em__tshape(x, b2, sizeof b2),
                            em_dtype_name((em_dtype)x->dtype), fwd_size(x, is_layer(c)));
    return 0;
}

/* (buffer, x, gamma[, beta]) -> y, x's shape. */
static int norm_y_infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    const em_tensor *x = c->in[1];
    if (check_params(c, x, 2) || check_buffer(c, 0, x)) return -1;
    *dtype = (em_dtype)x->dtype;
    *ndim = x->ndim;
    memcpy(shape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
    return 0;
}
#define layer_norm_y_infer norm_y_infer
#define rms_norm_y_infer norm_y_infer

/* (x, buffer, gamma, dy) -> the backward buffer. */
static int norm_grad_infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    const em_tensor *x = c->in[0], *dy = c->in[3];
    char b1[160], b2[160];
    if (em__nn_need_float(c, 0, "x")) return -1;
    if (x->ndim < 1) return em__op_error(c, "x must have at least 1 dimension, got a scalar");
    if (check_buffer(c, 1, x)) return -1;
    const em_tensor *gamma = c->in[2];
    if (gamma->dtype != x->dtype || gamma->ndim != 1 || gamma->shape[0] != row_len(x))
        return em__op_error(c, "gamma %s %s must be %s [%" PRId64 "], the last dimension of x %s",
                            em_dtype_name((em_dtype)gamma->dtype), em__tshape(gamma, b1, sizeof b1),
                            em_dtype_name((em_dtype)x->dtype), row_len(x), em__tshape(x, b2, sizeof b2));
    if (dy->dtype != x->dtype || !em_shape_equal(em__shape_of(dy), em__shape_of(x)))
        return em__op_error(c, "dy %s %s must have x's dtype and shape %s %s", em_dtype_name((em_dtype)dy->dtype),
                            em__tshape(dy, b1, sizeof b1), em_dtype_name((em_dtype)x->dtype),
                            em__tshape(x, b2, sizeof b2));
    *dtype = (em_dtype)x->dtype;
    *ndim = 1;
    shape[0] = bwd_size(x, is_layer(c));
    return 0;
}
#define layer_norm_grad_infer norm_grad_infer
#define rms_norm_grad_infer norm_grad_infer

/* ---- CPU kernels ---- */

typedef struct {
    const void *x, *gamma, *beta, *dy, *stats; /* stats: the forward buffer (backward) */
    void *out;
    int64_t rows, n;
    double eps;
    bool layer;
    bool stream;        /* outputs written through a stage in cache with streaming stores */
    void *part;         /* backward: each block's partial dgamma and dbeta sums (block_part bytes) */
    int64_t block_rows; /* backward: rows per block */
} norm_ctx;

/* The forward pass gives each thread one contiguous range of rows (at least
 * the softmax family's grain): its rows go through in a pipeline (below)
 * that starts over with each range it is handed, and whose prefetches run
 * ahead to the range's end (ranges of 21 rows, the grain alone, ran about 20% slower). */
static int64_t row_grain(int64_t rows, int64_t n) {
    const int64_t grain = n >= 16384 ? 1 : 16384 / (n ? n : 1), threads = em__threads();
    const int64_t range = (rows + threads - 1) / threads;
    return range > grain ? range : grain;
}
/* The backward pass sums dgamma and dbeta by blocks of rows, then the blocks
 * in order: the blocks depend on the row count only, so results do not
 * depend on the thread count. A block adds GROUP_ROWS rows at a time in T,
 * then into its sums in double (each of those adds is a pass over 2n
 * doubles: every 16 rows, the backward pass ran 10-15% slower than every 64). */
#define GRAD_BLOCKS_MAX 64
#define GRAD_BLOCK_MIN_ROWS 32
#define GRAD_SCRATCH_MAX ((size_t)32 << 20) /* fewer blocks for very long rows */
#define GROUP_ROWS 64
/* Both passes go through a row ROW_CHUNK elements at a time, each chunk of
 * row r's output (from cache) beside the same chunk of a later row's first
 * pass (its first read, from memory). Outputs that pass the last-level cache
 * (em__stream_output) are computed a chunk at a time into a stage in L1 and
 * written with streaming stores, which skip reading each output line before
 * writing it; in small steps, loads and streaming stores take turns and keep
 * memory busy both ways (whole-row passes, all loads then all stores, ran
 * the backward pass at 55% of a copy loop's bandwidth, chunks at over 80%).
 * A multiple of SUM_LANES. */
#define ROW_CHUNK 128

/* A row's sums go into SUM_LANES lanes of T, and the lanes into a double
 * total every FLUSH elements (at the end of a ROW_CHUNK), so that no lane
 * adds up many terms. Within a chunk the lanes are two arrays of HALF_LANES
 * (each a 512-bit vector of float32: two chains that do not wait on each
 * other), locals that the compiler keeps in registers; one array of 32 it
 * kept in memory, a store and a load on each add's path (the backward pass
 * ran 15-20% slower). Lanes are combined by halving: constant widths, each step
 * one vector operation, not a chain of scalar adds. */
#define SUM_LANES 32
#define HALF_LANES 16
/* Elements [j, j + SUM_LANES) into the lanes h0 and h1 (locals): TERM(i)
 * adds element i's terms into the lane array it is given. */
#define LANES_STEP(h0, h1, TERM)                                                                                       \
    do {                                                                                                               \
        _Pragma("omp simd") for (int l = 0; l < HALF_LANES; l++) TERM(h0, j + l);                                      \
        _Pragma("omp simd") for (int l = 0; l < HALF_LANES; l++) TERM(h1, j + HALF_LANES + l);                         \
    } while (0)
#define FLUSH 4096
#define HALVE(part, w)                                                                                                 \
    for (int l_ = 0; l_ < (w); l_++) (part)[l_] += (part)[l_ + (w)]
/* total += the sum of the SUM_LANES lanes in part, combined in place; they end at 0. */
#define ADD_LANES(T, part, total)                                                                                      \
    do {                                                                                                               \
        HALVE(part, 16);                                                                                               \
        HALVE(part, 8);                                                                                                \
        HALVE(part, 4);                                                                                                \
        HALVE(part, 2);                                                                                                \
        HALVE(part, 1);                                                                                                \
        total += (double)(part)[0];                                                                                    \
        memset(part, 0, sizeof(T) * SUM_LANES);                                                                        \
    } while (0)

/* A row's first pass also fetches the same elements of the row
 * PREFETCH_ROWS after it from memory, so that its own loads hit when its
 * turn comes: the hardware's prefetchers run too short a distance ahead of
 * passes that stop at each row's end. */
#define PREFETCH_ROWS 3
static inline __attribute__((always_inline)) void prefetch(const void *p, int64_t bytes) {
    for (int64_t b = 0; b < bytes; b += 64) __builtin_prefetch((const char *)p + b);
}

/* The forward pass goes through three rows at once, a chunk at a time: the
 * first pass of row r + 2 (its sum, read from memory), the second of row
 * r + 1 (its squared deviations from the mean, from cache: numerically
 * sound for any offset) and row r's y, three chains that do not wait on each
 * other. RMS norm's first pass sums the squares and it has no second. The
 * loops are compiled for AVX-512 and AVX2 (EM_HOT). */
/* The terms of element i (in scope: x, m; the backward's also dy, gamma,
 * rs, tg, tb) added into lanes at lane l = i - j: the forward's sum of x or
 * of squared deviations; the backward's sums of gy (la) and gy xh (lb), and
 * the group's dgamma and dbeta. */
#define X_TERM(h, i) h[l] += x[i]
#define SQ_TERM_float(h, i) h[l] += EM_NORM(sq_dev, float)(x[i], m)
#define SQ_TERM_double(h, i) h[l] += EM_NORM(sq_dev, double)(x[i], m)
#define GRAD_TERMS(T, la, lb, i)                                                                                       \
    do {                                                                                                               \
        const T d_ = dy[i], gy_ = EM_NORM(gy, T)(d_, gamma[i]), xh_ = EM_NORM(xhat, T)(x[i], m, rs);                   \
        la[l] += gy_, lb[l] += EM_NORM(times_xh, T)(gy_, xh_);                                                         \
        tg[i] += EM_NORM(times_xh, T)(d_, xh_), tb[i] += d_;                                                           \
    } while (0)
#define NORM_ROWS(T)                                                                                                   \
    /* Elements [c0, e) of a row into the lanes p: x (plain) or (x - m)^2; pf:                                       \
     * the same elements of a row to fetch, or NULL. */                                                              \
    static inline __attribute__((always_inline)) void fwd_sums_##T(const T *restrict x, bool plain, T m, int64_t c0, \
                                                                   int64_t e, T *restrict p, const T *pf) {         \
        T h0[HALF_LANES], h1[HALF_LANES];                                                                              \
        memcpy(h0, p, sizeof h0), memcpy(h1, p + HALF_LANES, sizeof h1);                                               \
        int64_t j = c0;                                                                                                \
        for (; j + SUM_LANES <= e; j += SUM_LANES) {                                                                   \
            if (pf) prefetch(pf + j, SUM_LANES * sizeof(T));                                                           \
            if (plain)                                                                                                 \
                LANES_STEP(h0, h1, X_TERM);                                                                            \
            else                                                                                                       \
                LANES_STEP(h0, h1, SQ_TERM_##T);                                                                       \
        }                                                                                                              \
        memcpy(p, h0, sizeof h0), memcpy(p + HALF_LANES, h1, sizeof h1);                                               \
        for (int l = 0; j + l < e; l++) p[l] += plain ? x[j + l] : EM_NORM(sq_dev, T)(x[j + l], m);                   \
    }                                                                                                                  \
    EM_HOT static void norm_fwd_rows_##T(void *ctx, int64_t begin, int64_t end) {                                      \
        const norm_ctx *s = ctx;                                                                                       \
        const int64_t n = s->n;                                                                                        \
        const T *gamma = s->gamma, *beta = s->beta, *x = s->x;                                                         \
        T *y = s->out, *mean = y + s->rows * n, *rstd = s->layer ? mean + s->rows : mean;                              \
        T stage[ROW_CHUNK] __attribute__((aligned(64)));                                                               \
        T p1[SUM_LANES] = {0}, p2[SUM_LANES] = {0};                                                                    \
        T m0 = 0, rs0 = 0, m1 = 0, rs1 = 0; /* rows r and r + 1 */                                                     \
        for (int64_t r = begin - 2; r < end; r++) {                                                                    \
            const int64_t r1 = r + 1, r2 = r + 2;                                                                      \
            const T *x0 = r >= begin ? x + r * n : NULL, *x1 = r1 >= begin && r1 < end ? x + r1 * n : NULL;            \
            const T *x2 = r2 < end ? x + r2 * n : NULL, *pf = r2 + PREFETCH_ROWS < s->rows ? x + (r2 + PREFETCH_ROWS) * n : NULL; \
            const bool second = s->layer && x1;                                                                        \
            double sum1 = 0, sum2 = 0; /* rows r + 1 (second pass) and r + 2 (first) */                               \
            for (int64_t c0 = 0; c0 < n; c0 += ROW_CHUNK) {                                                           \
                const int64_t len = c0 + ROW_CHUNK < n ? ROW_CHUNK : n - c0;                                           \
                const bool flush = (c0 + len) % FLUSH == 0 || c0 + len == n;                                           \
                if (x2) {                                                                                              \
                    fwd_sums_##T(x2, s->layer, 0, c0, c0 + len, p2, pf);                                               \
                    if (flush) ADD_LANES(T, p2, sum2);                                                                 \
                }                                                                                                      \
                if (second) {                                                                                          \
                    fwd_sums_##T(x1, false, m1, c0, c0 + len, p1, NULL);                                               \
                    if (flush) ADD_LANES(T, p1, sum1);                                                                 \
                }                                                                                                      \
                if (!x0) continue;                                                                                     \
                const T *xc = x0 + c0, *gc = gamma + c0;                                                               \
                T *yc = y + r * n + c0, *o = s->stream ? stage : yc;                                                   \
                if (beta) {                                                                                            \
                    const T *bc = beta + c0;                                                                           \
                    _Pragma("omp simd") for (int64_t j = 0; j < len; j++)                                              \
                        o[j] = EM_NORM(y, T)(xc[j], m0, rs0, gc[j], bc[j]);                                            \
                } else {                                                                                               \
                    _Pragma("omp simd") for (int64_t j = 0; j < len; j++) o[j] = EM_NORM(y, T)(xc[j], 0, rs0, gc[j], 0); \
                }                                                                                                      \
                if (s->stream) em__stream_store(yc, stage, sizeof(T) * (size_t)len);                                   \
            }                                                                                                          \
            if (second) rstd[r1] = rs1 = EM_NORM(rstd, T)(sum1, n, s->eps);                                            \
            m0 = m1, rs0 = rs1;                                                                                        \
            if (!x2) continue;                                                                                         \
            if (s->layer)                                                                                              \
                mean[r2] = m1 = (T)(sum2 / (double)n);                                                                 \
            else                                                                                                       \
                rstd[r2] = rs1 = EM_NORM(rstd, T)(sum2, n, s->eps);                                                    \
        }                                                                                                              \
        if (s->stream) em__stream_fence();                                                                             \
    }                                                                                                                  \
    /* Elements [c0, e) of a row's first backward pass: the lanes of its sums                                       \
     * of gy (pa) and gy xh (pb), and its terms of dgamma and dbeta added into                                      \
     * the group's (tg, tb); pf: the same elements of a row to fetch, or NULL. */                                   \
    static inline __attribute__((always_inline)) void grad_sums_##T(                                                  \
        const T *restrict x, const T *restrict dy, const T *restrict gamma, T m, T rs, int64_t c0, int64_t e,        \
        T *restrict pa, T *restrict pb, T *restrict tg, T *restrict tb, const T *pf_x, const T *pf_dy) {             \
        T a0[HALF_LANES], a1[HALF_LANES], b0[HALF_LANES], b1[HALF_LANES];                                              \
        memcpy(a0, pa, sizeof a0), memcpy(a1, pa + HALF_LANES, sizeof a1);                                             \
        memcpy(b0, pb, sizeof b0), memcpy(b1, pb + HALF_LANES, sizeof b1);                                             \
        int64_t j = c0;                                                                                                \
        for (; j + SUM_LANES <= e; j += SUM_LANES) {                                                                   \
            if (pf_x) {                                                                                                \
                prefetch(pf_x + j, SUM_LANES * sizeof(T));                                                             \
                prefetch(pf_dy + j, SUM_LANES * sizeof(T));                                                            \
            }                                                                                                          \
            _Pragma("omp simd") for (int l = 0; l < HALF_LANES; l++) GRAD_TERMS(T, a0, b0, j + l);                     \
            _Pragma("omp simd") for (int l = 0; l < HALF_LANES; l++) GRAD_TERMS(T, a1, b1, j + HALF_LANES + l);        \
        }                                                                                                              \
        memcpy(pa, a0, sizeof a0), memcpy(pa + HALF_LANES, a1, sizeof a1);                                             \
        memcpy(pb, b0, sizeof b0), memcpy(pb + HALF_LANES, b1, sizeof b1);                                             \
        for (int l = 0; j + l < e; l++) GRAD_TERMS(T, pa, pb, j + l);                                                  \
    }                                                                                                                  \
    /* A block of rows: dx, and the block's dgamma (and dbeta) sums. Row r's                                        \
     * dx is written ROW_CHUNK elements at a time, each beside the same chunk                                       \
     * of row r + 1's first pass (its sums and its dgamma and dbeta terms),                                          \
     * which also fetches that chunk of row r + PREFETCH_ROWS. Scratch                                          \
     * (block_part): the block's sums in double, then the group's in T. */                                           \
    EM_HOT static void norm_bwd_blocks_##T(void *ctx, int64_t begin, int64_t end) {                                    \
        const norm_ctx *s = ctx;                                                                                       \
        const int64_t n = s->n;                                                                                        \
        const T *gamma = s->gamma, *mean = (const T *)s->stats + s->rows * n;                                          \
        const T *rstd = s->layer ? mean + s->rows : mean;                                                              \
        T *dx = (T *)s->out + (s->layer ? 2 : 1) * n;                                                                  \
        T stage[ROW_CHUNK] __attribute__((aligned(64)));                                                              \
        T pa[SUM_LANES] = {0}, pb[SUM_LANES] = {0};                                                                    \
        for (int64_t blk = begin; blk < end; blk++) {                                                                  \
            double *pg = (double *)((char *)s->part + blk * block_part(n, sizeof(T))), *pbeta = pg + n;                \
            T *tg = (T *)(pbeta + n), *tb = tg + n;                                                                    \
            memset(pg, 0, sizeof(double) * 2 * (size_t)n);                                                             \
            memset(tg, 0, sizeof(T) * 2 * (size_t)n);                                                                  \
            const int64_t r0 = blk * s->block_rows;                                                                    \
            const int64_t r1 = r0 + s->block_rows < s->rows ? r0 + s->block_rows : s->rows;                           \
            int64_t grouped = 0; /* rows in tg and tb */                                                               \
            double s1 = 0, s2 = 0; /* the sums of the row whose dx is next */                                         \
            /* row r (from r0 - 1): its dx, beside row r + 1's first pass */                                          \
            for (int64_t r = r0 - 1; r < r1; r++) {                                                                    \
                const int64_t next = r + 1;                                                                            \
                const T *xn = (const T *)s->x + next * n, *dyn = (const T *)s->dy + next * n;                         \
                const T *x = r < r0 ? NULL : xn - n, *dy = r < r0 ? NULL : dyn - n, *pf_x = NULL, *pf_dy = NULL;       \
                if (next + PREFETCH_ROWS < s->rows) pf_x = xn + PREFETCH_ROWS * n, pf_dy = dyn + PREFETCH_ROWS * n; \
                T m = 0, rs = 0, a = 0, b = 0, mn = 0, rsn = 0;                                                        \
                if (r >= r0) {                                                                                         \
                    m = s->layer ? mean[r] : 0, rs = rstd[r];                                                          \
                    a = s->layer ? (T)(s1 / (double)n) : 0, b = (T)(s2 / (double)n);                                   \
                }                                                                                                      \
                if (next < r1) mn = s->layer ? mean[next] : 0, rsn = rstd[next];                                       \
                s1 = s2 = 0;                                                                                           \
                for (int64_t c0 = 0; c0 < n; c0 += ROW_CHUNK) {                                                      \
                    const int64_t len = c0 + ROW_CHUNK < n ? ROW_CHUNK : n - c0;                                     \
                    if (next < r1) {                                                                                   \
                        grad_sums_##T(xn, dyn, gamma, mn, rsn, c0, c0 + len, pa, pb, tg, tb, pf_x, pf_dy);            \
                        if ((c0 + len) % FLUSH == 0 || c0 + len == n) {                                                \
                            ADD_LANES(T, pa, s1);                                                                      \
                            ADD_LANES(T, pb, s2);                                                                      \
                        }                                                                                              \
                    }                                                                                                  \
                    if (r < r0) continue;                                                                              \
                    const T *xc = x + c0, *dyc = dy + c0, *gc = gamma + c0;                                            \
                    T *o = s->stream ? stage : dx + r * n + c0;                                                        \
                    _Pragma("omp simd") for (int64_t j = 0; j < len; j++) {                                            \
                        T xh = EM_NORM(xhat, T)(xc[j], m, rs);                                                         \
                        o[j] = EM_NORM(dx, T)(EM_NORM(gy, T)(dyc[j], gc[j]), xh, rs, a, b);                            \
                    }                                                                                                  \
                    if (s->stream) em__stream_store(dx + r * n + c0, stage, sizeof(T) * (size_t)len);                 \
                }                                                                                                      \
                if (next < r1 && (++grouped == GROUP_ROWS || next + 1 == r1)) {                                        \
                    _Pragma("omp simd") for (int64_t j = 0; j < n; j++) {                                              \
                        pg[j] += tg[j], tg[j] = 0;                                                                     \
                        pbeta[j] += tb[j], tb[j] = 0;                                                                  \
                    }                                                                                                  \
                    grouped = 0;                                                                                       \
                }                                                                                                      \
            }                                                                                                          \
        }                                                                                                              \
        if (s->stream) em__stream_fence();                                                                             \
    }                                                                                                                  \
    /* dgamma (and dbeta) after dx: the blocks' sums added into block 0's, in block order. */                         \
    EM_HOT static void norm_bwd_params_##T(const norm_ctx *s, int64_t blocks) {                                      \
        const int64_t n = s->n;                                                                                        \
        double *sum = s->part;                                                                                         \
        for (int64_t k = 1; k < blocks; k++) {                                                                         \
            const double *p = (const double *)((const char *)s->part + k * block_part(n, sizeof(T)));                 \
            _Pragma("omp simd") for (int64_t j = 0; j < 2 * n; j++) sum[j] += p[j];                                    \
        }                                                                                                              \
        T *dg = s->out;                                                                                                \
        for (int64_t j = 0; j < (s->layer ? 2 : 1) * n; j++) dg[j] = (T)sum[j];                                        \
    }
/* A backward block's scratch: its sums in double, then those of a group of rows in T. */
static size_t block_part(int64_t n, size_t t_size) { return 2 * (size_t)n * (sizeof(double) + t_size); }
NORM_ROWS(float)
NORM_ROWS(double)

static void norm_cpu(const em_call *c, em_tensor *out) {
    const em_tensor *x = c->in[0];
    bool layer = is_layer(c);
    norm_ctx s = {.x = x->data, .gamma = c->in[1]->data, .beta = layer ? c->in[2]->data : NULL, .out = out->data,
                  .rows = rows_of(x), .n = row_len(x), .eps = c->a->f[0], .layer = layer,
                  .stream = em__stream_output((size_t)(x->numel + out->numel) * em_dtype_size((em_dtype)x->dtype))};
    em__parallel_for(s.rows, row_grain(s.rows, s.n), out->dtype == EM_F32 ? norm_fwd_rows_float : norm_fwd_rows_double, &s);
}
#define layer_norm_cpu norm_cpu
#define rms_norm_cpu norm_cpu

static void norm_grad_cpu(const em_call *c, em_tensor *out) {
    const em_tensor *x = c->in[0];
    norm_ctx s = {.x = x->data, .stats = c->in[1]->data, .gamma = c->in[2]->data, .dy = c->in[3]->data,
                  .out = out->data, .rows = rows_of(x), .n = row_len(x), .layer = is_layer(c),
                  .stream = em__stream_output((size_t)(3 * x->numel) * em_dtype_size((em_dtype)x->dtype))};
    int64_t blocks = (s.rows + GRAD_BLOCK_MIN_ROWS - 1) / GRAD_BLOCK_MIN_ROWS;
    const size_t part_bytes = block_part(s.n, em_dtype_size((em_dtype)out->dtype));
    if (blocks > GRAD_BLOCKS_MAX) blocks = GRAD_BLOCKS_MAX;
    if (part_bytes && blocks > (int64_t)(GRAD_SCRATCH_MAX / part_bytes))
        blocks = (int64_t)(GRAD_SCRATCH_MAX / part_bytes);
    if (blocks < 1) blocks = 1; /* no rows: dgamma and dbeta are zeros */
    s.block_rows = (s.rows + blocks - 1) / blocks;
    s.part = em__scratch((size_t)blocks * part_bytes + 1);
    if (!s.part) {
        em__error("%s: out of memory", c->def->name);
        return;
    }
    em__parallel_for(blocks, 1, out->dtype == EM_F32 ? norm_bwd_blocks_float : norm_bwd_blocks_double, &s);
    if (out->dtype == EM_F32)
        norm_bwd_params_float(&s, blocks);
    else
        norm_bwd_params_double(&s, blocks);
    em__scratch_free(s.part);
}
#define layer_norm_grad_cpu norm_grad_cpu
#define rms_norm_grad_cpu norm_grad_cpu

/* y: the forward buffer's first numel(x) elements in x's shape (a 1-D
 * buffer of any stride is viewed with that stride). */
static em_tensor *norm_y_view(const em_call *c, int ndim, const int64_t *shape) {
    int64_t strides[EM_MAX_DIMS], step = c->in[0]->strides[0];
    for (int d = ndim - 1; d >= 0; d--) {
        strides[d] = step;
        step *= shape[d];
    }
    return em__view(c->in[0], ndim, shape, strides, 0);
}
#define layer_norm_y_view norm_y_view
#define rms_norm_y_view norm_y_view

/* ---- gradient rules ---- */

/* n elements of a flat buffer from `at` (-1: to its end), in shape s. */
static em_tensor *part(em_tensor *buf, int64_t at, int64_t n, em_shape s) {
    return em_reshape(em_slice(buf, (int64_t[]){at}, (int64_t[]){n}), s);
}

/* y's gradient: the fused backward op, its parts handed out as views. The
 * buffer (in[0]) gets none: it comes from the forward op, whose gradient is
 * cut, and x, gamma and beta carry the whole derivative of y. */
static int norm_y_grad(const em_call *c, em_tensor *out, em_tensor *dy, const bool *need, em_tensor **gin) {
    (void)out;
    bool layer = is_layer(c);
    em_tensor *x = c->in[1], *gamma = c->in[2];
    em_tensor *g = em__apply(layer ? EM_OP_LAYER_NORM_GRAD : EM_OP_RMS_NORM_GRAD, 4,
                             (em_tensor *[]){x, c->in[0], gamma, dy}, c->a);
    if (!g) return -1;
    int64_t n = row_len(x);
    em_shape row = EM_SHAPE(n);
    if (need[1] && !(gin[1] = part(g, (layer ? 2 : 1) * n, -1, em__shape_of(x)))) return -1;
    if (need[2] && !(gin[2] = part(g, 0, n, row))) return -1;
    if (layer && need[3] && !(gin[3] = part(g, n, n, row))) return -1;
    return 0;
}
#define layer_norm_y_grad norm_y_grad
#define rms_norm_y_grad norm_y_grad

/* The backward op's gradient (nn.c: the formula batch norm's backward op shares). */
static int norm_grad_grad(const em_call *c, em_tensor *out, em_tensor *G, const bool *need, em_tensor **gin) {
    (void)out;
    return em__norm_backward_grad(c->in[0], c->in[2], c->in[3], G, -1, is_layer(c), c->a->f[0], need, gin);
}
#define layer_norm_grad_grad norm_grad_grad
#define rms_norm_grad_grad norm_grad_grad

#define EM_OP(ID, name, arity, dtypes, grad, kernel, flags, cost) \
    EM_OP_ROW(ID, name, arity, dtypes, grad, kernel, flags, cost, name##_infer, name##_cpu, name##_view, name##_grad)
#include "norm.def"
#undef EM_OP

/* ---- public functions ---- */

/* The kernel op, then y's view of its buffer (in: x, gamma[, beta]). */
static em_tensor *norm(em_op kernel_op, em_op y_op, int n, em_tensor *const *in, int axis, double eps) {
    em_attrs a = {.i = {axis}, .ni = 1, .f = {eps}};
    em_tensor *buf = em__apply(kernel_op, n, in, &a);
    if (!buf) return NULL;
    em_tensor *y_in[4] = {buf, in[0], in[1], n == 3 ? in[2] : NULL};
    return em__apply(y_op, n + 1, y_in, &a);
}

em_tensor *em_layer_norm(em_tensor *x, em_tensor *gamma, em_tensor *beta, int axis, double eps) {
    return norm(EM_OP_LAYER_NORM, EM_OP_LAYER_NORM_Y, 3, (em_tensor *[]){x, gamma, beta}, axis, eps);
}
em_tensor *em_rms_norm(em_tensor *x, em_tensor *gamma, int axis, double eps) {
    return norm(EM_OP_RMS_NORM, EM_OP_RMS_NORM_Y, 2, (em_tensor *[]){x, gamma}, axis, eps);
}
