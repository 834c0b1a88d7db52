/* Softmax and losses (float32 and float64): softmax, log_softmax and their
 * gradient, and the sigmoid, softmax and sparse softmax cross entropies.
 * softmax, log_softmax and their gradient take bfloat16 and float16 too, a
 * row at a time through float32 scratch (NARROW_ROWS).
 * Their formulas are nn_math.h's, which gpu/nn.cu's kernels call too.
 *
 * Attribute layouts:
 *   softmax, log_softmax: i[0] the axis (may be negative).
 *   softmax_grad (y, g): i[0] the axis, i[1] 1 for log_softmax's gradient.
 *   sigmoid_xent, softmax_xent: none.
 *   sparse_softmax_xent: i[0] 1 when positions whose label is i[1] (ignore_index) are left out (loss 0,
 *   gradient 0); none (ni 0) counts every position. */
#include "../gpu.h"
#include "../internal.h"
#include "narrow.h"
#include "nn.h"
#include "nn_math.h"
#include "rows_f32.h"

#include <stdlib.h>


/* Rows of `len` elements `inner` apart: the layout of a reduction over one axis. */
typedef struct {
    const void *x, *z;
    void *y;
    int64_t len, inner;
    bool log; /* softmax, log_softmax: log_softmax's outputs */
    bool ignoring; /* sparse_softmax_xent: labels equal to ignore_index count for nothing */
    int64_t ignore_index;
    int label_dtype; /* sparse_softmax_xent: z's, an index dtype */
} rows_ctx;

static int64_t row_grain(int64_t len) { return len >= 16384 ? 1 : 16384 / (len ? len : 1); }

/* ---- softmax, log_softmax and their gradient ---- */

static int softmax_infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    const em_tensor *x = c->in[0];
    if (em__nn_need_float(c, 0, "logits") || em__axis(c, (int)c->a->i[0], x->ndim, "axis") < 0) return -1;
    *dtype = (em_dtype)x->dtype;
    *ndim = x->ndim;
    memcpy(shape, x->shape, sizeof(int64_t) * x->ndim);
    return 0;
}

/* (y, g): the forward op's output and the incoming gradient, alike. */
static int softmax_grad_infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    if (em__nn_same_float(c, "output", "gradient") || em__nn_same_shape(c, "output", "gradient")) return -1;
    return softmax_infer(c, dtype, ndim, shape);
}

/* The sum of a row's len terms st apart: float32 rows by em__sum_f32 (rows_f32.h: float32 blocks added in
 * double, at most 6 float32 roundings a term), strided float32 ones and float64 ones in double. */
static inline __attribute__((always_inline)) double row_sum_float(const float *v, int64_t len, int64_t st) {
    if (st == 1) return em__sum_f32(v, len);
    double sum = 0;
    for (int64_t j = 0; j < len; j++) sum += v[j * st];
    return sum;
}
/* A row's maximum, NaNs skipped (nn_math.h's max): contiguous float32 rows by em__max_f32 (four vectors of
 * running maxima), the others element by element. */
static inline __attribute__((always_inline)) float row_max_float(const float *x, int64_t len, int64_t st) {
    if (st == 1) return em__max_f32(x, len, -INFINITY);
    float m = -INFINITY;
    for (int64_t j = 0; j < len; j++) m = EM_NN(max, float)(m, x[j * st]);
    return m;
}
static inline __attribute__((always_inline)) double row_max_double(const double *x, int64_t len, int64_t st) {
    double m = -INFINITY;
    _Pragma("omp simd reduction(max : m)") for (int64_t j = 0; j < len; j++) m = EM_NN(max, double)(m, x[j * st]);
    return m;
}
static inline __attribute__((always_inline)) double row_sum_double(const double *v, int64_t len, int64_t st) {
    double sum = 0;
    _Pragma("omp simd reduction(+ : sum)") for (int64_t j = 0; j < len; j++) sum += v[j * st];
    return sum;
}

/* Asks for the row after x's (contiguous rows of up to 16 KiB, which fit L1 beside their own), so that it
 * arrives while this row is computed: the hardware prefetcher, left to itself, waits for the next row's first
 * misses (softmax over [4096,1000] on one core: 2.6 -> 2.0 ms). */
#define PREFETCH_NEXT_ROW(T)                                                                            \
    static inline __attribute__((always_inline)) void prefetch_next_row_##T(const T *x, int64_t len,   \
                                                                            int64_t st) {              \
        if (st == 1 && len * (int64_t)sizeof(T) <= 16384)                                               \
            for (int64_t j = 0; j < len; j += 64 / (int64_t)sizeof(T)) __builtin_prefetch(x + len + j); \
    }
PREFETCH_NEXT_ROW(float)
PREFETCH_NEXT_ROW(double)

/* v (an em_f32x16) = the 16 float32 terms EXPR for j in [i, i + 16), by an omp simd loop: how softmax's
 * gradient hands rows_f32.h's EM__SUM_F32_TERMS the terms it computes. */
#define TERMS16(EXPR, i, v)                                                                             \
    do {                                                                                                \
        float t_[16];                                                                                   \
        _Pragma("omp simd") for (int64_t j = (i); j < (i) + 16; j++) t_[j - (i)] = (EXPR);             \
        memcpy(&(v), t_, sizeof(v));                                                                    \
    } while (0)

/* softmax_grad's sum(g y), its products added up as they are computed */
static inline __attribute__((always_inline)) double row_dot_float(const float *g, const float *y, int64_t len,
                                                                  int64_t st) {
    double sum = 0;
    if (st == 1) {
#define DOT_TERM(j) EM_NN(softmax_grad_dot, float)(g[j], y[j])
#define DOT_TERMS16(i, v) TERMS16(DOT_TERM(j), i, v)
        EM__SUM_F32_TERMS(len, DOT_TERMS16, DOT_TERM, sum);
#undef DOT_TERMS16
#undef DOT_TERM
        return sum;
    }
    for (int64_t j = 0; j < len; j++) sum += EM_NN(softmax_grad_dot, float)(g[j * st], y[j * st]);
    return sum;
}
static inline __attribute__((always_inline)) double row_dot_double(const double *g, const double *y, int64_t len,
                                                                   int64_t st) {
    double sum = 0;
    _Pragma("omp simd reduction(+ : sum)") for (int64_t j = 0; j < len; j++) sum +=
        EM_NN(softmax_grad_dot, double)(g[j * st], y[j * st]);
    return sum;
}

/* Contiguous rows are run in blocks of up to 1024 elements (at most ROWS_AT_ONCE rows), each step over every
 * row of the block before the next step (the maxima, the exps, their sums, the factors or logs, the
 * outputs): a short row is a chain of dependent steps (a reduction, exps, a reduction, a log) that the core
 * overlaps with little of the next row's, while one step over 32 rows is 32 independent chains (over
 * [1024,32] on one core: softmax 35 -> 18 us, log_softmax 39 -> 19 us; blocks of 2048 elements gained
 * nothing more). Rows of 1024 and more run one at a time. */
#define ROWS_AT_ONCE 64
static inline int64_t rows_at_once(int64_t len) {
    int64_t k = 1024 / (len ? len : 1);
    return k < 1 ? 1 : k > ROWS_AT_ONCE ? ROWS_AT_ONCE : k;
}

/* The row loop of NAME_block_T over a rows_ctx, compiled with ATTR (EM_HOT, or EM_HOT_MATH where an exp's
 * polynomial wants its FMAs). A block function runs k rows (k = 1 for strided ones) from the offset base. */
#define ROW_KERNEL(NAME, T, ATTR)                                                                       \
    ATTR static void NAME##_rows_##T(void *ctx, int64_t begin, int64_t end) {                           \
        const rows_ctx *s = ctx;                                                                        \
        const int64_t st = s->inner, len = s->len;                                                      \
        if (st == 1)                                                                                    \
            for (int64_t r = begin, k = rows_at_once(len); r < end; r += k)                             \
                NAME##_block_##T(s, r * len, end - r < k ? end - r : k, 1);                             \
        else                                                                                            \
            for (int64_t r = begin; r < end; r++) NAME##_block_##T(s, r / st * len * st + r % st, 1, st); \
    }

/* Each row is summed by one thread in a fixed (vector-lane) order: results do not depend on the thread
 * count (nor on the blocks, whose rows are computed as they would be alone). softmax's terms e are written
 * into y (which log_softmax then overwrites) and added up by row_sum_T (added up inside the exp loop, 16 at a
 * time in em__sum_f32's order, they took 12% longer over [256,1000]); the products of sum(g y) are added up
 * as they are computed (row_dot_T). A block function is inlined twice, once with stride 1 (the usual last axis)
 * so that its loops vectorize; the formulas are nn_math.h's (float32 exp is the polynomial of fast_math.h).
 *   softmax:      y = exp(x - max) / sum,   log_softmax: y = x - max - log(sum)
 *   softmax_grad: dx = y (g - sum(g y)),    for log_softmax: dx = g - exp(y) sum(g)
 * softmax's gradient is compiled without FMAs (EM_HOT), so that the products of sum(g y) are rounded before
 * they are added, as nn_math.h promises; the others use exp (EM_HOT_MATH). */
/* A gradient's rows: each row's total (sum(g y) for softmax, sum(g) for log_softmax: the expression TOTAL
 * of row i's y + i * len and g + i * len), then its dx by nn_math.h's formula `name`. */
#define GRAD_BLOCK(name, T, TOTAL)                                                                      \
    static inline __attribute__((always_inline)) void name##_block_##T(const rows_ctx *s, int64_t base, \
                                                                       int64_t k, int64_t st) {         \
        const T *y = (const T *)s->x + base, *g = (const T *)s->z + base;                               \
        T *dx = (T *)s->y + base;                                                                       \
        const int64_t len = s->len;                                                                     \
        T total[ROWS_AT_ONCE];                                                                          \
        prefetch_next_row_##T(y, k * len, st);                                                          \
        prefetch_next_row_##T(g, k * len, st);                                                          \
        for (int64_t i = 0; i < k; i++) total[i] = (T)(TOTAL);                                         \
        for (int64_t i = 0; i < k; i++) {                                                               \
            const T *yi = y + i * len, *gi = g + i * len, ti = total[i];                                \
            T *di = dx + i * len;                                                                       \
            _Pragma("omp simd")                                                                         \
            for (int64_t j = 0; j < len; j++) di[j * st] = EM_NN(name, T)(yi[j * st], gi[j * st], ti);  \
        }                                                                                               \
    }
#define SOFTMAX_ROWS(T)                                                                                 \
    static inline __attribute__((always_inline)) void softmax_block_##T(const rows_ctx *s, int64_t base, \
                                                                        int64_t k, int64_t st) {        \
        const T *x = (const T *)s->x + base;                                                            \
        T *y = (T *)s->y + base;                                                                        \
        const int64_t len = s->len;                                                                     \
        T m[ROWS_AT_ONCE];                                                                              \
        double sum[ROWS_AT_ONCE];                                                                       \
        /* a NaN is skipped here but makes the sum, so every output of its row, NaN */                  \
        for (int64_t i = 0; i < k; i++) m[i] = row_max_##T(x + i * len, len, st);                       \
        prefetch_next_row_##T(x, k * len, st); /* while these rows' exps are computed */                \
        for (int64_t i = 0; i < k; i++) {                                                               \
            const T *xi = x + i * len;                                                                  \
            T *yi = y + i * len;                                                                        \
            _Pragma("omp simd") for (int64_t j = 0; j < len; j++) yi[j * st] = EM_NN(softmax_exp, T)(xi[j * st], m[i]); \
        }                                                                                               \
        for (int64_t i = 0; i < k; i++) sum[i] = row_sum_##T(y + i * len, len, st);                     \
        /* each row's factor (softmax) or log of its sum (log_softmax), then the outputs */             \
        T f[ROWS_AT_ONCE];                                                                              \
        if (s->log)                                                                                     \
            _Pragma("omp simd") for (int64_t i = 0; i < k; i++) f[i] = EM_NN(log_softmax_log_sum, T)(sum[i]); \
        else                                                                                            \
            for (int64_t i = 0; i < k; i++) f[i] = EM_NN(softmax_inv, T)(sum[i]);                       \
        for (int64_t i = 0; i < k; i++) {                                                               \
            const T *xi = x + i * len, mi = m[i], fi = f[i];                                            \
            T *yi = y + i * len;                                                                        \
            if (s->log)                                                                                 \
                _Pragma("omp simd") for (int64_t j = 0; j < len; j++) yi[j * st] = EM_NN(log_softmax, T)(xi[j * st], mi, fi); \
            else                                                                                        \
                _Pragma("omp simd") for (int64_t j = 0; j < len; j++) yi[j * st] *= fi;                 \
        }                                                                                               \
    }                                                                                                   \
    GRAD_BLOCK(softmax_grad, T, row_dot_##T(g + i * len, y + i * len, len, st))                        \
    GRAD_BLOCK(log_softmax_grad, T, row_sum_##T(g + i * len, len, st))                                 \
    ROW_KERNEL(softmax, T, EM_HOT_MATH)                                                                 \
    ROW_KERNEL(softmax_grad, T, EM_HOT)                                                                 \
    ROW_KERNEL(log_softmax_grad, T, EM_HOT_MATH)
SOFTMAX_ROWS(float)
SOFTMAX_ROWS(double)

/* bfloat16 and float16 rows: each widened into float32 scratch (x, z, then y: 3 len floats per chunk of
 * rows), run by the float32 row and rounded back once. The chunks are at most one per thread, each with its
 * scratch. */
typedef struct {
    const rows_ctx *s;
    em_dtype dtype;
    float *scratch;
    int64_t grain;
} narrow_rows_ctx;
#define NARROW_ROWS(NAME, ATTR)                                                                         \
    ATTR static void NAME##_rows_narrow(void *ctx, int64_t begin, int64_t end) {                        \
        const narrow_rows_ctx *n = ctx;                                                                 \
        const rows_ctx *s = n->s;                                                                       \
        const int64_t len = s->len, st = s->inner;                                                      \
        float *x = n->scratch + begin / n->grain * 3 * len, *z = x + len, *y = z + len;                 \
        rows_ctx w = *s;                                                                                \
        w.x = x, w.z = z, w.y = y;                                                                      \
        for (int64_t r = begin; r < end; r++) {                                                         \
            int64_t base = r / st * len * st + r % st;                                                  \
            em__narrow_widen(n->dtype, (const uint16_t *)s->x + base, st, x, len);                      \
            if (s->z) em__narrow_widen(n->dtype, (const uint16_t *)s->z + base, st, z, len);            \
            NAME##_block_float(&w, 0, 1, 1);                                                            \
            em__narrow_round(n->dtype, y, (uint16_t *)s->y + base, st, len);                            \
        }                                                                                               \
    }
NARROW_ROWS(softmax, EM_HOT_MATH)
NARROW_ROWS(softmax_grad, EM_HOT)
NARROW_ROWS(log_softmax_grad, EM_HOT_MATH)

/* Runs f32/f64/narrow over the rows along i[0]'s axis of the first input. */
static void rows_run(const em_call *c, em_tensor *out, rows_ctx *s, em_range_fn f32, em_range_fn f64,
                     em_range_fn narrow) {
    const em_tensor *x = c->in[0];
    int axis = em__axis(c, (int)c->a->i[0], x->ndim, "axis");
    s->len = x->shape[axis];
    s->inner = 1;
    for (int d = axis + 1; d < x->ndim; d++) s->inner *= x->shape[d];
    int64_t rows = s->len ? x->numel / s->len : 0, grain = row_grain(s->len);
    if (!em__is_narrow((em_dtype)out->dtype)) {
        em__parallel_for(rows, grain, out->dtype == EM_F32 ? f32 : f64, s);
        return;
    }
    const int64_t threads = em__threads();
    if (rows > grain * threads) grain = (rows + threads - 1) / threads;
    narrow_rows_ctx n = {s, (em_dtype)out->dtype, malloc(sizeof(float) * 3 * (size_t)s->len *
                                                         (size_t)((rows + grain - 1) / grain)), grain};
    if (!n.scratch) {
        em__op_error(c, "out of memory for the float32 rows of %lld x %lld", (long long)rows, (long long)s->len);
        return;
    }
    em__parallel_for(rows, grain, narrow, &n);
    free(n.scratch);
}
static void softmax_cpu(const em_call *c, em_tensor *out) {
    rows_ctx s = {.x = c->in[0]->data, .y = out->data};
    rows_run(c, out, &s, softmax_rows_float, softmax_rows_double, softmax_rows_narrow);
}
static void log_softmax_cpu(const em_call *c, em_tensor *out) {
    rows_ctx s = {.x = c->in[0]->data, .y = out->data, .log = true};
    rows_run(c, out, &s, softmax_rows_float, softmax_rows_double, softmax_rows_narrow);
}
static void softmax_grad_cpu(const em_call *c, em_tensor *out) {
    rows_ctx s = {.x = c->in[0]->data, .z = c->in[1]->data, .y = out->data};
    if (c->a->i[1])
        rows_run(c, out, &s, log_softmax_grad_rows_float, log_softmax_grad_rows_double, log_softmax_grad_rows_narrow);
    else
        rows_run(c, out, &s, softmax_grad_rows_float, softmax_grad_rows_double, softmax_grad_rows_narrow);
}

static em_tensor *softmax_grad_op(em_tensor *y, em_tensor *g, int axis, bool log) {
    return em__apply(EM_OP_SOFTMAX_GRAD, 2, (em_tensor *[]){y, g}, &(em_attrs){.i = {axis, log}, .ni = 2});
}
static int softmax_grad(const em_call *c, em_tensor *y, em_tensor *g, const bool *need, em_tensor **gin) {
    (void)need;
    gin[0] = softmax_grad_op(y, g, (int)c->a->i[0], false);
    return gin[0] ? 0 : -1;
}
static int log_softmax_grad(const em_call *c, em_tensor *y, em_tensor *g, const bool *need, em_tensor **gin) {
    (void)need;
    gin[0] = softmax_grad_op(y, g, (int)c->a->i[0], true);
    return gin[0] ? 0 : -1;
}
/* Its own gradient, G the gradient of dx (s: sums over the axis, kept):
 *   softmax:     d/dy = G (g - s(g y)) - g s(G y),   d/dg = softmax_grad(y, G)
 *   log_softmax: d/dy = -G exp(y) s(g),              d/dg = G - s(G exp(y)) */
static int softmax_grad_grad(const em_call *c, em_tensor *out, em_tensor *G, const bool *need, em_tensor **gin) {
    (void)out;
    em_tensor *y = c->in[0], *g = c->in[1];
    int axis = (int)c->a->i[0];
    if (c->a->i[1]) {
        em_tensor *e = em_exp(y);
        if (need[0] && !(gin[0] = em_neg(em_mul(em_mul(G, e), em_sum(g, 1, &axis, true))))) return -1;
        if (need[1] && !(gin[1] = em_sub(G, em_sum(em_mul(G, e), 1, &axis, true)))) return -1;
        return 0;
    }
    if (need[0] && !(gin[0] = em_sub(em_mul(G, em_sub(g, em_sum(em_mul(g, y), 1, &axis, true))),
                                     em_mul(g, em_sum(em_mul(G, y), 1, &axis, true)))))
        return -1;
    if (need[1] && !(gin[1] = softmax_grad_op(y, G, axis, false))) return -1;
    return 0;
}

/* ---- sigmoid cross entropy: inputs (labels z, logits x) ---- */

static int sigmoid_xent_infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    if (em__nn_same_float(c, "labels", "logits") || em__nn_same_shape(c, "labels", "logits")) return -1;
    *dtype = (em_dtype)c->in[1]->dtype;
    *ndim = c->in[1]->ndim;
    memcpy(shape, c->in[1]->shape, sizeof(int64_t) * c->in[1]->ndim);
    return 0;
}

#define SIGMOID_XENT(T)                                                             \
    static void sigmoid_xent_##T(void *ctx, int64_t begin, int64_t end) {           \
        const rows_ctx *s = ctx;                                                    \
        const T *z = s->z, *x = s->x;                                               \
        T *y = s->y;                                                                \
        for (int64_t i = begin; i < end; i++) y[i] = EM_NN(sigmoid_xent, T)(z[i], x[i]); \
    }
SIGMOID_XENT(float)
SIGMOID_XENT(double)

static void sigmoid_xent_cpu(const em_call *c, em_tensor *out) {
    rows_ctx s = {.z = c->in[0]->data, .x = c->in[1]->data, .y = out->data};
    em__parallel_for(out->numel, 1 << 14, out->dtype == EM_F32 ? sigmoid_xent_float : sigmoid_xent_double, &s);
}

/* d/dx = sigmoid(x) - z, d/dz = -x. */
static int sigmoid_xent_grad(const em_call *c, em_tensor *out, em_tensor *g, const bool *need, em_tensor **gin) {
    (void)out;
    em_tensor *z = c->in[0], *x = c->in[1];
    if (need[0] && !(gin[0] = em_neg(em_mul(g, x)))) return -1;
    if (need[1] && !(gin[1] = em_mul(g, em_sub(em_sigmoid(x), z)))) return -1;
    return 0;
}

/* ---- softmax cross entropy over the last axis ---- */

static int xent_out(const em_call *c, const em_tensor *logits, em_dtype *dtype, int *ndim, int64_t *shape) {
    if (logits->ndim < 1) return em__op_error(c, "logits must have at least 1 dimension (the classes), got a scalar");
    *dtype = (em_dtype)logits->dtype;
    *ndim = logits->ndim - 1;
    memcpy(shape, logits->shape, sizeof(int64_t) * (size_t)*ndim);
    return 0;
}

static int softmax_xent_infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    if (em__nn_same_float(c, "labels", "logits") || em__nn_same_shape(c, "labels", "logits")) return -1;
    return xent_out(c, c->in[1], dtype, ndim, shape);
}

/* log(sum(exp(x))) of a row of the logits, in double: max + log(sum(exp(x - max))). */
#define XENT_LSE(T)                                                           \
    static double xent_lse_##T(const T *x, int64_t len) {                     \
        T m = -INFINITY;                                                      \
        for (int64_t j = 0; j < len; j++) m = EM_NN(max, T)(m, x[j]);         \
        double sum = 0;                                                       \
        for (int64_t j = 0; j < len; j++) sum += EM_NN(softmax_exp, T)(x[j], m); \
        return EM_NN(xent_lse, T)(m, sum);                                    \
    }
XENT_LSE(float)
XENT_LSE(double)

/* loss = sum_j z_j * (lse(x) - x_j), one row per output element. */
#define SOFTMAX_XENT(T)                                                       \
    static void softmax_xent_##T(void *ctx, int64_t begin, int64_t end) {     \
        const rows_ctx *s = ctx;                                              \
        T *y = s->y;                                                          \
        for (int64_t r = begin; r < end; r++) {                               \
            const T *x = (const T *)s->x + r * s->len, *z = (const T *)s->z + r * s->len; \
            double lse = xent_lse_##T(x, s->len), loss = 0;                   \
            for (int64_t j = 0; j < s->len; j++) loss += EM_NN(softmax_xent, T)(z[j], x[j], lse); \
            y[r] = (T)loss;                                                   \
        }                                                                     \
    }
SOFTMAX_XENT(float)
SOFTMAX_XENT(double)

static void softmax_xent_cpu(const em_call *c, em_tensor *out) {
    const em_tensor *x = c->in[1];
    rows_ctx s = {.z = c->in[0]->data, .x = x->data, .y = out->data, .len = x->shape[x->ndim - 1]};
    em__parallel_for(out->numel, row_grain(s.len), out->dtype == EM_F32 ? softmax_xent_float : softmax_xent_double,
                     &s);
}

/* With ge = g expanded over the classes: d/dx = ge * (softmax(x) * sum(z) - z),
 * which is ge * (softmax(x) - z) when the labels sum to 1, and exact when they
 * do not; d/dz = -ge * log_softmax(x). */
static int softmax_xent_grad(const em_call *c, em_tensor *out, em_tensor *g, const bool *need, em_tensor **gin) {
    (void)out;
    em_tensor *z = c->in[0], *x = c->in[1], *ge = em_expand_dims(g, -1);
    int last = -1;
    if (need[0] && !(gin[0] = em_neg(em_mul(ge, em_log_softmax(x, -1))))) return -1;
    if (need[1] && !(gin[1] = em_mul(ge, em_sub(em_mul(em_softmax(x, -1), em_sum(z, 1, &last, true)), z)))) return -1;
    return 0;
}

/* ---- sparse softmax cross entropy: inputs (labels int [...], logits [..., C]) ---- */

static int64_t read_label(const em_tensor *t, int64_t i) {
    int64_t off = 0;
    for (int d = t->ndim - 1; d >= 0; d--) {
        off += i % t->shape[d] * t->strides[d];
        i /= t->shape[d];
    }
    return em_index_at(t->data, t->dtype, off);
}

static int sparse_softmax_xent_infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    const em_tensor *z = c->in[0], *x = c->in[1];
    char s0[160], s1[160];
    if (!em_is_index_dtype(z->dtype))
        return em__op_error(c, "labels have dtype %s; " EM_INDEX_DTYPES " is required", em_dtype_name((em_dtype)z->dtype));
    if (em__nn_need_float(c, 1, "logits") || xent_out(c, x, dtype, ndim, shape)) return -1;
    if (z->ndim != *ndim || memcmp(z->shape, shape, sizeof(int64_t) * z->ndim) != 0)
        return em__op_error(c, "labels %s must have the shape of logits %s without its last dimension",
                            em__tshape(z, s0, sizeof s0), em__tshape(x, s1, sizeof s1));
    int64_t classes = x->shape[x->ndim - 1];
    bool ignoring = c->a->i[0] != 0;
    if (!z->data) return 0; /* shape-only tracing: a graph checks the values it is fed */
    for (int64_t i = 0; i < z->numel; i++) {
        int64_t v = read_label(z, i);
        if ((v < 0 || v >= classes) && em_nn_sparse_xent_counts(v, ignoring, c->a->i[1])) {
            char ignored[64] = "";
            if (ignoring) snprintf(ignored, sizeof ignored, " and is not ignore_index %lld", (long long)c->a->i[1]);
            return em__op_error(c, "label %lld at index %lld is out of range [0, %lld) for logits %s%s", (long long)v,
                                (long long)i, (long long)classes, em__tshape(x, s1, sizeof s1), ignored);
        }
    }
    return 0;
}

/* loss = lse(x) - x[label], 0 for an ignored label. */
#define SPARSE_XENT(T)                                                                \
    static void sparse_softmax_xent_##T(void *ctx, int64_t begin, int64_t end) {     \
        const rows_ctx *s = ctx;                                                      \
        T *y = s->y;                                                                  \
        for (int64_t r = begin; r < end; r++) {                                       \
            const T *x = (const T *)s->x + r * s->len;                                \
            int64_t z = em_index_at(s->z, s->label_dtype, r);                         \
            y[r] = em_nn_sparse_xent_counts(z, s->ignoring, s->ignore_index)          \
                       ? EM_NN(sparse_softmax_xent, T)(xent_lse_##T(x, s->len), x[z]) \
                       : (T)0;                                                        \
        }                                                                             \
    }
SPARSE_XENT(float)
SPARSE_XENT(double)

static void sparse_softmax_xent_cpu(const em_call *c, em_tensor *out) {
    const em_tensor *z = c->in[0], *x = c->in[1];
    rows_ctx s = {.z = z->data, .x = x->data, .y = out->data, .len = x->shape[x->ndim - 1],
                  .ignoring = c->a->i[0] != 0, .ignore_index = c->a->i[1], .label_dtype = z->dtype};
    em__parallel_for(out->numel, row_grain(s.len), out->dtype == EM_F32 ? sparse_softmax_xent_float : sparse_softmax_xent_double, &s);
}

/* d/dx = ge * (softmax(x) - one_hot(labels)), with g zeroed where the label is ignored; labels are integers
 * (no gradient). */
static int sparse_softmax_xent_grad(const em_call *c, em_tensor *out, em_tensor *g, const bool *need, em_tensor **gin) {
    (void)out;
    em_tensor *z = c->in[0], *x = c->in[1];
    if (!need[1]) return 0;
    if (c->a->i[0]) {
        em_tensor *counts = em_not_equal(z, em_scalar((em_dtype)z->dtype, (double)c->a->i[1]));
        g = em_where(counts, g, em_scalar((em_dtype)g->dtype, 0));
    }
    em_tensor *hot = em_one_hot(z, x->shape[x->ndim - 1], 1, 0, (em_dtype)x->dtype);
    gin[1] = em_mul(em_expand_dims(g, -1), em_sub(em_softmax(x, -1), hot));
    return gin[1] ? 0 : -1;
}

/* softmax and log_softmax share a shape rule. */
#define log_softmax_infer softmax_infer
#define EM_OP(ID, name, arity, dtypes, grad, kernel, flags, cost) \
    EM_OP_ROW(ID, name, arity, dtypes, grad, kernel, flags, cost, name##_infer, name##_cpu, name##_view, name##_grad)
#include "softmax.def"
#undef EM_OP

/* ---- public functions ---- */

em_tensor *em_softmax(em_tensor *logits, int axis) {
    return em__apply(EM_OP_SOFTMAX, 1, &logits, &(em_attrs){.i = {axis}, .ni = 1});
}
em_tensor *em_log_softmax(em_tensor *logits, int axis) {
    return em__apply(EM_OP_LOG_SOFTMAX, 1, &logits, &(em_attrs){.i = {axis}, .ni = 1});
}

static em_tensor *xent(em_op op, em_tensor *labels, em_tensor *logits) {
    em_tensor *in[2] = {labels, logits};
    return em__apply(op, 2, in, &(em_attrs){0});
}
em_tensor *em_sigmoid_cross_entropy_with_logits(em_tensor *labels, em_tensor *logits) {
    return xent(EM_OP_SIGMOID_XENT, labels, logits);
}
em_tensor *em_softmax_cross_entropy_with_logits(em_tensor *labels, em_tensor *logits) {
    return xent(EM_OP_SOFTMAX_XENT, labels, logits);
}
em_tensor *em_sparse_softmax_cross_entropy_with_logits(em_tensor *labels, em_tensor *logits) {
    return xent(EM_OP_SPARSE_SOFTMAX_XENT, labels, logits);
}
em_tensor *em_sparse_softmax_cross_entropy_ignore(em_tensor *labels, em_tensor *logits, int64_t ignore_index) {
    return em__apply(EM_OP_SPARSE_SOFTMAX_XENT, 2, (em_tensor *[]){labels, logits},
                     &(em_attrs){.i = {1, ignore_index}, .ni = 2});
}
