/* Neural-network ops (float32 and float64): softmax family and cross
 * entropies, 2-D convolution with its two backprops, max and average pooling.
 *
 * Attribute layouts:
 *   softmax, log_softmax: i[0] the axis (may be negative).
 *   softmax_grad (y, g): i[0] the axis, i[1] 1 for log_softmax's gradient.
 *   conv2d, conv2d_backprop_input, conv2d_backprop_filter:
 *     i[0..1] strides {h, w}, i[2..3] dilations {h, w}, i[4] padding (em_padding),
 *     i[5..8] the shape the backprop op produces (backprop_input: the input's
 *     NHWC shape; backprop_filter: the filter's HWIO shape).
 *   max_pool, max_pool_grad, avg_pool, avg_pool_grad:
 *     i[0..1] strides {h, w}, i[2..3] ksize {h, w}, i[4] padding,
 *     i[5..8] the input's NHWC shape (avg_pool_grad).
 *
 * Convolutions of float32 with stride and dilation 1 run direct AVX-512
 * kernels where the CPU has them (see "Direct convolution" below); the rest
 * are im2col + gemm (BLIS). Either way the batch is cut into tasks of whole
 * images whose number depends only on the shapes; tasks run on the thread
 * pool (BLIS single-threaded in each), and the filter gradient sums one
 * partial per task in task order, so results do not depend on the thread
 * count. Within an im2col task, output pixels are lowered in groups small
 * enough to stay in cache. Geometry (TF's padding rule) is in
 * lib/conv_geometry.h. */
#include "../conv_geometry.h"
#include "../gpu.h"
#include "../internal.h"
#include "../tape.h"
#include "nn_math.h"

#include <stdlib.h>


enum { A_STRIDES = 0, A_WINDOW = 2, A_PAD = 4, A_SHAPE = 5, A_COUNT = 9 };

static const char *shape_str(int ndim, const int64_t *dims, char *buf, size_t size) {
    em_shape s = {.ndim = ndim};
    memcpy(s.dims, dims, sizeof(int64_t) * (size_t)ndim);
    return em_shape_str(s, buf, size);
}

static int need_float(const em_call *c, int i, const char *arg) {
    em_dtype d = (em_dtype)c->in[i]->dtype;
    if (em__is_float(d)) return 0;
    return em__op_error(c, "%s has dtype %s; float32 or float64 is required", arg, em_dtype_name(d));
}

static int same_float(const em_call *c, const char *arg0, const char *arg1) {
    if (need_float(c, 0, arg0) || need_float(c, 1, arg1)) return -1;
    if (c->in[0]->dtype == c->in[1]->dtype) return 0;
    return em__op_error(c, "%s (%s) and %s (%s) differ in dtype", arg0, em_dtype_name((em_dtype)c->in[0]->dtype), arg1,
                        em_dtype_name((em_dtype)c->in[1]->dtype));
}

static int same_shape(const em_call *c, const char *arg0, const char *arg1) {
    const em_tensor *a = c->in[0], *b = c->in[1];
    if (a->ndim == b->ndim && memcmp(a->shape, b->shape, sizeof(int64_t) * a->ndim) == 0) return 0;
    char s0[160], s1[160];
    return em__op_error(c, "%s %s and %s %s differ in shape", arg0, em__tshape(a, s0, sizeof s0), arg1,
                        em__tshape(b, s1, sizeof s1));
}

/* Rows of `len` elements `inner` apart: the layout of a reduction over one axis. */
typedef struct {
    const void *x, *z;
    void *y;
    int64_t len, inner;
    bool log;
} rows_ctx;

static int64_t row_grain(int64_t len) { return len >= 16384 ? 1 : 16384 / (len ? len : 1); }

/* ---- softmax, log_softmax and their gradient ---- */

static int softmax_infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    const em_tensor *x = c->in[0];
    if (need_float(c, 0, "logits") || em__axis(c, (int)c->a->i[0], x->ndim, "axis") < 0) return -1;
    *dtype = (em_dtype)x->dtype;
    *ndim = x->ndim;
    memcpy(shape, x->shape, sizeof(int64_t) * x->ndim);
    return 0;
}

/* (y, g): the forward op's output and the incoming gradient, alike. */
static int softmax_grad_infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    if (same_float(c, "output", "gradient") || same_shape(c, "output", "gradient")) return -1;
    return softmax_infer(c, dtype, ndim, shape);
}

/* The row loop of NAME_row_T over a rows_ctx. */
#define ROW_KERNEL(NAME, T)                                                                             \
    EM_HOT static void NAME##_rows_##T(void *ctx, int64_t begin, int64_t end) {                         \
        const rows_ctx *s = ctx;                                                                        \
        for (int64_t r = begin; r < end; r++) {                                                         \
            int64_t st = s->inner, base = r / st * s->len * st + r % st;                                \
            if (st == 1)                                                                                \
                NAME##_row_##T(s, base, 1);                                                             \
            else                                                                                        \
                NAME##_row_##T(s, base, st);                                                            \
        }                                                                                               \
    }

/* Each row is summed by one thread in a fixed (vector-lane) order: results do
 * not depend on the thread count. A row function is inlined twice, once with
 * stride 1 (the usual last axis) so that its loops vectorize; the formulas
 * are nn_math.h's (float32 exp is the polynomial of fast_math.h).
 *   softmax:      y = exp(x - max) / sum,   log_softmax: y = x - max - log(sum)
 *   softmax_grad: dx = y (g - sum(g y)),    for log_softmax: dx = g - exp(y) sum(g) */
#define SOFTMAX_ROWS(T)                                                                                 \
    static inline __attribute__((always_inline)) void softmax_row_##T(const rows_ctx *s, int64_t base,  \
                                                                      int64_t st) {                     \
        const T *x = (const T *)s->x + base;                                                            \
        T *y = (T *)s->y + base, m = -INFINITY;                                                         \
        const int64_t len = s->len;                                                                     \
        const bool as_log = s->log;                                                                     \
        /* a NaN is skipped here but makes the sum, so every output, NaN */                             \
        _Pragma("omp simd reduction(max : m)")                                                          \
        for (int64_t j = 0; j < len; j++) m = EM_NN(max, T)(m, x[j * st]);                              \
        double sum = 0;                                                                                 \
        _Pragma("omp simd reduction(+ : sum)")                                                          \
        for (int64_t j = 0; j < len; j++) {                                                             \
            T e = EM_NN(softmax_exp, T)(x[j * st], m);                                                  \
            if (!as_log) y[j * st] = e;                                                                 \
            sum += e;                                                                                   \
        }                                                                                               \
        if (as_log) {                                                                                   \
            T log_sum = EM_NN(log_softmax_log_sum, T)(sum);                                                  \
            _Pragma("omp simd")                                                                         \
            for (int64_t j = 0; j < len; j++) y[j * st] = EM_NN(log_softmax, T)(x[j * st], m, log_sum);        \
        } else {                                                                                        \
            T inv = EM_NN(softmax_inv, T)(sum);                                                         \
            _Pragma("omp simd") for (int64_t j = 0; j < len; j++) y[j * st] *= inv;                     \
        }                                                                                               \
    }                                                                                                   \
    static inline __attribute__((always_inline)) void softmax_grad_row_##T(const rows_ctx *s,           \
                                                                           int64_t base, int64_t st) {  \
        const T *y = (const T *)s->x + base, *g = (const T *)s->z + base;                               \
        T *dx = (T *)s->y + base;                                                                       \
        const int64_t len = s->len;                                                                     \
        const bool as_log = s->log;                                                                     \
        double sum = 0;                                                                                 \
        if (as_log) {                                                                                   \
            _Pragma("omp simd reduction(+ : sum)") for (int64_t j = 0; j < len; j++) sum += g[j * st];  \
            T total = (T)sum;                                                                           \
            _Pragma("omp simd")                                                                         \
            for (int64_t j = 0; j < len; j++)                                                           \
                dx[j * st] = EM_NN(log_softmax_grad, T)(y[j * st], g[j * st], total);                   \
        } else {                                                                                        \
            _Pragma("omp simd reduction(+ : sum)")                                                      \
            for (int64_t j = 0; j < len; j++) sum += EM_NN(softmax_grad_dot, T)(g[j * st], y[j * st]);  \
            T total = (T)sum;                                                                           \
            _Pragma("omp simd")                                                                         \
            for (int64_t j = 0; j < len; j++)                                                           \
                dx[j * st] = EM_NN(softmax_grad, T)(y[j * st], g[j * st], total);                       \
        }                                                                                               \
    }                                                                                                   \
    ROW_KERNEL(softmax, T)                                                                              \
    ROW_KERNEL(softmax_grad, T)
SOFTMAX_ROWS(float)
SOFTMAX_ROWS(double)

/* Runs f32/f64 over the rows along i[0]'s axis of the first input. */
static void rows_run(const em_call *c, em_tensor *out, rows_ctx *s, em_range_fn f32, em_range_fn f64) {
    const em_tensor *x = c->in[0];
    int axis = em__axis(c, (int)c->a->i[0], x->ndim, "axis");
    s->len = x->shape[axis];
    s->inner = 1;
    for (int d = axis + 1; d < x->ndim; d++) s->inner *= x->shape[d];
    int64_t rows = s->len ? x->numel / s->len : 0;
    em__parallel_for(rows, row_grain(s->len), out->dtype == EM_F32 ? f32 : f64, s);
}
static void softmax_cpu(const em_call *c, em_tensor *out) {
    rows_ctx s = {.x = c->in[0]->data, .y = out->data};
    rows_run(c, out, &s, softmax_rows_float, softmax_rows_double);
}
static void log_softmax_cpu(const em_call *c, em_tensor *out) {
    rows_ctx s = {.x = c->in[0]->data, .y = out->data, .log = true};
    rows_run(c, out, &s, softmax_rows_float, softmax_rows_double);
}
static void softmax_grad_cpu(const em_call *c, em_tensor *out) {
    rows_ctx s = {.x = c->in[0]->data, .z = c->in[1]->data, .y = out->data, .log = c->a->i[1] != 0};
    rows_run(c, out, &s, softmax_grad_rows_float, softmax_grad_rows_double);
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
    if (same_float(c, "labels", "logits") || same_shape(c, "labels", "logits")) return -1;
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
    if (same_float(c, "labels", "logits") || same_shape(c, "labels", "logits")) return -1;
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
    return t->dtype == EM_I32 ? ((const int32_t *)t->data)[off] : ((const int64_t *)t->data)[off];
}

static int sparse_softmax_xent_infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    const em_tensor *z = c->in[0], *x = c->in[1];
    char s0[160], s1[160];
    if (z->dtype != EM_I32 && z->dtype != EM_I64)
        return em__op_error(c, "labels have dtype %s; int32 or int64 is required", em_dtype_name((em_dtype)z->dtype));
    if (need_float(c, 1, "logits") || xent_out(c, x, dtype, ndim, shape)) return -1;
    if (z->ndim != *ndim || memcmp(z->shape, shape, sizeof(int64_t) * z->ndim) != 0)
        return em__op_error(c, "labels %s must have the shape of logits %s without its last dimension",
                            em__tshape(z, s0, sizeof s0), em__tshape(x, s1, sizeof s1));
    int64_t classes = x->shape[x->ndim - 1];
    if (!z->data) return 0; /* shape-only tracing: a graph checks the values it is fed */
    for (int64_t i = 0; i < z->numel; i++) {
        int64_t v = read_label(z, i);
        if (v < 0 || v >= classes)
            return em__op_error(c, "label %lld at index %lld is out of range [0, %lld) for logits %s", (long long)v,
                                (long long)i, (long long)classes, em__tshape(x, s1, sizeof s1));
    }
    return 0;
}

/* loss = lse(x) - x[label]. */
#define SPARSE_XENT(T, L)                                                     \
    static void sparse_softmax_xent_##T##_##L(void *ctx, int64_t begin, int64_t end) { \
        const rows_ctx *s = ctx;                                              \
        const L *z = s->z;                                                    \
        T *y = s->y;                                                          \
        for (int64_t r = begin; r < end; r++) {                               \
            const T *x = (const T *)s->x + r * s->len;                        \
            y[r] = EM_NN(sparse_softmax_xent, T)(xent_lse_##T(x, s->len), x[z[r]]); \
        }                                                                     \
    }
SPARSE_XENT(float, int32_t)
SPARSE_XENT(float, int64_t)
SPARSE_XENT(double, int32_t)
SPARSE_XENT(double, int64_t)

static void sparse_softmax_xent_cpu(const em_call *c, em_tensor *out) {
    const em_tensor *z = c->in[0], *x = c->in[1];
    rows_ctx s = {.z = z->data, .x = x->data, .y = out->data, .len = x->shape[x->ndim - 1]};
    em_range_fn fn = out->dtype == EM_F32 ? (z->dtype == EM_I32 ? sparse_softmax_xent_float_int32_t : sparse_softmax_xent_float_int64_t)
                                          : (z->dtype == EM_I32 ? sparse_softmax_xent_double_int32_t : sparse_softmax_xent_double_int64_t);
    em__parallel_for(out->numel, row_grain(s.len), fn, &s);
}

/* d/dx = ge * (softmax(x) - one_hot(labels)); labels are integers (no gradient). */
static int sparse_softmax_xent_grad(const em_call *c, em_tensor *out, em_tensor *g, const bool *need, em_tensor **gin) {
    (void)out;
    em_tensor *z = c->in[0], *x = c->in[1];
    if (!need[1]) return 0;
    em_tensor *hot = em_one_hot(z, x->shape[x->ndim - 1], 1, 0, (em_dtype)x->dtype);
    gin[1] = em_mul(em_expand_dims(g, -1), em_sub(em_softmax(x, -1), hot));
    return gin[1] ? 0 : -1;
}

/* ---- convolution ---- */

/* Fills g from an input shape, window (kh, kw), output channels and the
 * attributes; conv says whether i[2..3] are dilations (conv) or the window
 * (pools, dilation 1). */
static int make_geom(const em_call *c, const int64_t *xs, int64_t kh, int64_t kw, int64_t o, bool conv, em_conv_geom *g) {
    const int64_t *a = c->a->i;
    char b[160];
    *g = (em_conv_geom){.n = xs[0], .h = xs[1], .w = xs[2], .c = xs[3], .kh = kh, .kw = kw, .o = o,
                        .sh = a[A_STRIDES], .sw = a[A_STRIDES + 1], .dh = conv ? a[A_WINDOW] : 1,
                        .dw = conv ? a[A_WINDOW + 1] : 1};
    if (g->sh < 1 || g->sw < 1)
        return em__op_error(c, "strides must be >= 1, got {%lld, %lld}", (long long)g->sh, (long long)g->sw);
    if (g->dh < 1 || g->dw < 1)
        return em__op_error(c, "dilations must be >= 1, got {%lld, %lld}", (long long)g->dh, (long long)g->dw);
    if (kh < 1 || kw < 1) return em__op_error(c, "window must be at least 1x1, got %lldx%lld", (long long)kh, (long long)kw);
    if (a[A_PAD] != EM_PAD_VALID && a[A_PAD] != EM_PAD_SAME)
        return em__op_error(c, "padding must be EM_PAD_VALID or EM_PAD_SAME, got %lld", (long long)a[A_PAD]);
    if (!em_conv_geom_finish(g, a[A_PAD] == EM_PAD_SAME))
        return em__op_error(c, "input %s is smaller than the %lldx%lld window (dilated) with VALID padding",
                            shape_str(4, xs, b, sizeof b), (long long)((kh - 1) * g->dh + 1),
                            (long long)((kw - 1) * g->dw + 1));
    return 0;
}

static int need_rank4(const em_call *c, int i, const char *arg) {
    char b[160];
    if (c->in[i]->ndim == 4) return 0;
    return em__op_error(c, "%s must be 4-D, got %s", arg, em__tshape(c->in[i], b, sizeof b));
}

static int attr_shape(const em_call *c, const char *what, int64_t *s) {
    for (int d = 0; d < 4; d++) {
        s[d] = c->a->i[A_SHAPE + d];
        if (s[d] < 0) return em__op_error(c, "%s shape has a negative dimension", what);
    }
    return 0;
}

/* Checks input x (NHWC) against filter f (HWIO), and dy (if given) against
 * the convolution's output shape, which goes to *out. */
static int conv_check(const em_call *c, const int64_t *xs, const int64_t *fs, const em_tensor *dy, em_conv_geom *g,
                      int64_t *out) {
    char b0[160], b1[160];
    if (fs[2] != xs[3])
        return em__op_error(c, "filter %s expects %lld input channels but input %s has %lld",
                            shape_str(4, fs, b0, sizeof b0), (long long)fs[2], shape_str(4, xs, b1, sizeof b1),
                            (long long)xs[3]);
    if (make_geom(c, xs, fs[0], fs[1], fs[3], true, g)) return -1;
    int64_t os[4] = {g->n, g->oh, g->ow, g->o};
    if (dy && (dy->ndim != 4 || memcmp(dy->shape, os, sizeof os) != 0))
        return em__op_error(c, "out_backprop %s must have the convolution's output shape %s",
                            em__tshape(dy, b0, sizeof b0), shape_str(4, os, b1, sizeof b1));
    memcpy(out, os, sizeof os);
    return 0;
}

static int conv2d_infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    em_conv_geom g;
    if (same_float(c, "input", "filter") || need_rank4(c, 0, "input") || need_rank4(c, 1, "filter") ||
        conv_check(c, c->in[0]->shape, c->in[1]->shape, NULL, &g, shape))
        return -1;
    *dtype = (em_dtype)c->in[0]->dtype;
    *ndim = 4;
    return 0;
}

/* inputs (filter, out_backprop), i[5..8] the input shape. */
static int conv2d_backprop_input_infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    em_conv_geom g;
    int64_t os[4];
    if (same_float(c, "filter", "out_backprop") || need_rank4(c, 0, "filter") || attr_shape(c, "input", shape) ||
        conv_check(c, shape, c->in[0]->shape, c->in[1], &g, os))
        return -1;
    *dtype = (em_dtype)c->in[0]->dtype;
    *ndim = 4;
    return 0;
}

/* inputs (input, out_backprop), i[5..8] the filter shape. */
static int conv2d_backprop_filter_infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    em_conv_geom g;
    int64_t os[4];
    if (same_float(c, "input", "out_backprop") || need_rank4(c, 0, "input") || attr_shape(c, "filter", shape) ||
        conv_check(c, c->in[0]->shape, shape, c->in[1], &g, os))
        return -1;
    *dtype = (em_dtype)c->in[0]->dtype;
    *ndim = 4;
    return 0;
}

typedef enum { CONV_FWD, CONV_BPI, CONV_BPF } conv_kind;

/* Most tasks (partial filter gradients) backprop_filter splits the batch into. */
enum { BPF_TASKS = 8 };

/* ---- Direct convolution: float32, stride 1, dilation 1, AVX-512 ----
 * im2col copies each input pixel kh*kw times and BLIS packs that copy once
 * more; at the small channel counts of image models the copying, not the
 * arithmetic, bounds the gemm (about 60% of peak at the CNN example's
 * shapes). The direct kernels read a zero-padded copy of each image where it
 * lies, through the register-tile kernel of ops/matmul.c (em_regtile): a tile
 * of output rows x up to 64 channels stays in vector registers while the sum
 * runs over the filter taps (forward; backprop input, which is the forward
 * convolution of the padded dy with the flipped, transposed filter) or over
 * the pixels (backprop filter). Each output element is one sum in a fixed
 * order, so results do not depend on the thread count. */

/* Where the direct kernels read their input: each image of src (h x w x c)
 * copied into a zero-filled hp x wp image at row top, column left. */
typedef struct {
    const float *src;
    int64_t h, w, c, top, left, hp, wp;
} conv_pad;

typedef struct {
    em_conv_geom g;
    conv_kind kind;
    em_dtype dtype;
    size_t es;
    int64_t K, P1, group; /* K = kh*kw*c columns, P1 pixels per image, group rows lowered at once */
    bool pointwise;       /* 1x1, stride 1, no padding: the input is its own im2col */
    bool single;          /* tasks run in parallel: single-threaded BLIS */
    conv_pad pad;         /* the direct kernels: the padded input (forward, backprop filter) or dy (backprop input) */
    int64_t per;          /* images per task */
    const char *x, *f, *dy;
    int64_t wt_rs, wt_cs; /* backprop input: strides of W^T as f holds it */
    char *out, *partials; /* partials: one K x O block per task (backprop filter) */
} conv_plan;

/* dst[c][r] = src[r][c] for a rows x cols matrix of es-byte elements. */
static void transpose2d(char *dst, const char *src, int64_t rows, int64_t cols, size_t es) {
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) {
            const char *s = src + (size_t)(r * cols + c) * es;
            char *d = dst + (size_t)(c * rows + r) * es;
            if (es == 4)
                memcpy(d, s, 4);
            else
                memcpy(d, s, 8);
        }
}

/* The filter columns [*k0, *k1) whose input column lies inside [0, w) for
 * output column ox; with dilation 1 they read consecutive input pixels. */
static void valid_taps(const em_conv_geom *g, int64_t ox, int64_t *k0, int64_t *k1) {
    int64_t first = em_conv_in_x(g, ox, 0);
    *k0 = first >= 0 ? 0 : (-first + g->dw - 1) / g->dw;
    *k1 = first >= g->w ? 0 : (g->w - 1 - first) / g->dw + 1;
    if (*k1 > g->kw) *k1 = g->kw;
    if (*k1 < *k0) *k1 = *k0;
}

/* Lowers output pixels [r0, r1) (over the whole batch) into rows of col.
 * Each filter row copies its valid taps as one run when they are adjacent. */
static void im2col(const conv_plan *p, int64_t r0, int64_t r1, char *col) {
    const em_conv_geom *g = &p->g;
    size_t cb = (size_t)g->c * p->es;
    for (int64_t r = r0; r < r1; r++) {
        int64_t n = r / p->P1, q = r % p->P1, oy = q / g->ow, ox = q % g->ow, k0, k1;
        valid_taps(g, ox, &k0, &k1);
        char *row = col + (size_t)((r - r0) * p->K) * p->es;
        for (int64_t ky = 0; ky < g->kh; ky++) {
            int64_t iy = em_conv_in_y(g, oy, ky);
            char *dst = row + (size_t)(ky * g->kw) * cb;
            if (iy < 0 || iy >= g->h || k0 == k1) {
                memset(dst, 0, cb * (size_t)g->kw);
                continue;
            }
            memset(dst, 0, cb * (size_t)k0);
            memset(dst + cb * (size_t)k1, 0, cb * (size_t)(g->kw - k1));
            const char *src = p->x + (size_t)((n * g->h + iy) * g->w + em_conv_in_x(g, ox, k0)) * cb;
            if (g->dw == 1)
                memcpy(dst + cb * (size_t)k0, src, cb * (size_t)(k1 - k0));
            else
                for (int64_t kx = k0; kx < k1; kx++) memcpy(dst + cb * (size_t)kx, src + (size_t)((kx - k0) * g->dw) * cb, cb);
        }
    }
}

/* Adds the rows of col for output pixels [r0, r1) back into dx (as im2col). */
#define COL2IM(T)                                                                             \
    static void col2im_##T(const conv_plan *p, int64_t r0, int64_t r1, const T *col, T *dx) { \
        const em_conv_geom *g = &p->g;                                                        \
        int64_t step = g->dw * g->c;                                                         \
        for (int64_t r = r0; r < r1; r++) {                                                   \
            int64_t n = r / p->P1, q = r % p->P1, oy = q / g->ow, ox = q % g->ow, k0, k1;     \
            valid_taps(g, ox, &k0, &k1);                                                      \
            if (k0 == k1) continue;                                                           \
            const T *row = col + (r - r0) * p->K;                                             \
            int64_t runs = g->dw == 1 ? 1 : k1 - k0, len = g->dw == 1 ? (k1 - k0) * g->c : g->c; \
            for (int64_t ky = 0; ky < g->kh; ky++) {                                          \
                int64_t iy = em_conv_in_y(g, oy, ky);                                         \
                if (iy < 0 || iy >= g->h) continue;                                           \
                const T *s = row + (ky * g->kw + k0) * g->c;                                  \
                T *d = dx + ((n * g->h + iy) * g->w + em_conv_in_x(g, ox, k0)) * g->c;        \
                for (int64_t k = 0; k < runs; k++, s += g->c, d += step)                      \
                    _Pragma("omp simd") for (int64_t j = 0; j < len; j++) d[j] += s[j];        \
            }                                                                                 \
        }                                                                                     \
    }
COL2IM(float)
COL2IM(double)

/* One task: images [n0, n1). */
static void conv_task(void *ctx, int64_t n0, int64_t n1) {
    const conv_plan *p = ctx;
    const em_conv_geom *g = &p->g;
    size_t es = p->es;
    int64_t K = p->K, O = g->o, r0 = n0 * p->P1, r1 = n1 * p->P1;
    int64_t in_img = g->h * g->w * g->c;
    char *col = NULL;
    if (!p->pointwise && !(col = em__scratch((size_t)(p->group * K) * es))) {
        em__error("%s: out of memory for a %lld x %lld im2col buffer", p->kind == CONV_FWD ? "conv2d" : "conv2d backprop",
                  (long long)p->group, (long long)K);
        return;
    }
    char *dw = p->kind == CONV_BPF ? p->partials + (size_t)((n0 / p->per) * K * O) * es : NULL;
    if (p->kind == CONV_BPI) memset(p->out + (size_t)(n0 * in_img) * es, 0, (size_t)((n1 - n0) * in_img) * es);
    for (int64_t a = r0; a < r1; a += p->group) {
        int64_t b = a + p->group < r1 ? a + p->group : r1, rows = b - a;
        const char *dyr = p->dy ? p->dy + (size_t)(a * O) * es : NULL;
        const char *lowered = p->pointwise && p->x ? p->x + (size_t)(a * K) * es : col; /* backprop-input has no x */
        switch (p->kind) {
        case CONV_FWD: /* y[rows] = col[rows] W */
            if (!p->pointwise) im2col(p, a, b, col);
            em__gemm(p->dtype, rows, O, K, lowered, K, 1, p->f, O, 1, false, p->out + (size_t)(a * O) * es, O, 1,
                     p->single);
            break;
        case CONV_BPI: /* dcol[rows] = dy[rows] W^T, scattered back into dx */
            em__gemm(p->dtype, rows, K, O, dyr, O, 1, p->f, p->wt_rs, p->wt_cs, false,
                     p->pointwise ? p->out + (size_t)(a * K) * es : col, K, 1, p->single);
            if (!p->pointwise) {
                if (p->dtype == EM_F32)
                    col2im_float(p, a, b, (const float *)col, (float *)p->out);
                else
                    col2im_double(p, a, b, (const double *)col, (double *)p->out);
            }
            break;
        case CONV_BPF: /* dW += col[rows]^T dy[rows] */
            if (!p->pointwise) im2col(p, a, b, col);
            em__gemm(p->dtype, K, O, rows, lowered, 1, K, dyr, O, 1, a != r0, dw, O, 1, p->single);
            break;
        }
    }
    em__scratch_free(col);
}

#ifdef EM_REGTILE_KERNEL
static void pad_image(const conv_pad *d, int64_t n, float *dst) {
    const float *src = d->src + n * d->h * d->w * d->c;
    size_t pixel = sizeof(float) * (size_t)d->c;
    for (int64_t y = 0; y < d->hp; y++) {
        float *row = dst + y * d->wp * d->c;
        int64_t sy = y - d->top;
        if (sy < 0 || sy >= d->h) {
            memset(row, 0, pixel * (size_t)d->wp);
            continue;
        }
        memset(row, 0, pixel * (size_t)d->left);
        memcpy(row + d->left * d->c, src + sy * d->w * d->c, pixel * (size_t)d->w);
        memset(row + (d->left + d->w) * d->c, 0, pixel * (size_t)(d->wp - d->left - d->w));
    }
}

/* Forward (and backprop input, as a forward convolution): images [n0, n1),
 * each padded, then a tile of output pixels x channels at a time, summing over
 * the filter's rows (r) and each row's kw x channels taps (t). */
static void tiled_forward_task(void *ctx, int64_t n0, int64_t n1) {
    const conv_plan *p = ctx;
    const conv_pad *d = &p->pad;
    const em_conv_geom *g = &p->g;
    int64_t oh = d->hp - g->kh + 1, ow = d->wp - g->kw + 1, pixels = oh * ow;
    int64_t oc = p->kind == CONV_BPI ? g->c : g->o, taps = g->kw * d->c;
    float *img = em__scratch(sizeof(float) * (size_t)(d->hp * d->wp * d->c));
    if (!img) {
        em__error("%s: out of memory for a padded image", p->kind == CONV_FWD ? "conv2d" : "conv2d_backprop_input");
        return;
    }
    for (int64_t n = n0; n < n1; n++) {
        pad_image(d, n, img);
        for (int64_t o0 = 0; o0 < oc; o0 += EM_REGTILE_COLS) {
            em_regtile k = {.b = (const float *)p->f + o0, .nr = g->kh, .nt = taps, .ar = d->wp * d->c,
                           .at = 1, .br = taps * oc, .bt = oc, .cj = oc};
            int vecs = em__regtile_vecs(oc - o0), full = em__regtile_rows(vecs);
            for (int64_t q = 0; q < pixels; q += full) {
                int rows = (int)(pixels - q < full ? pixels - q : full);
                for (int j = 0; j < rows; j++) k.a[j] = img + ((q + j) / ow * d->wp + (q + j) % ow) * d->c;
                k.c = (float *)p->out + (n * pixels + q) * oc + o0;
                em__regtile_run(rows, vecs, &k);
            }
        }
    }
    em__scratch_free(img);
}

/* Backprop filter: this task's images padded a few at a time (about
 * FILTER_CHUNK_BYTES, at least one image); then, band after band of about
 * FILTER_BAND_PIXELS output pixels of each image in order, a tile of filter
 * taps x output channels at a time sums over the band's rows (r) and columns
 * (t). The first band's sums start the task's partial gradient; each later
 * band's are summed apart and then added, so float32 rounding grows with a
 * band, not with the batch (as BLIS's blocking does for the im2col path). */
enum { FILTER_CHUNK_BYTES = 1 << 20, FILTER_BAND_PIXELS = 256 };
static void tiled_filter_task(void *ctx, int64_t n0, int64_t n1) {
    const conv_plan *p = ctx;
    const conv_pad *d = &p->pad;
    const em_conv_geom *g = &p->g;
    int64_t image = d->hp * d->wp * d->c, O = g->o, pixels = g->oh * g->ow;
    int64_t chunk = FILTER_CHUNK_BYTES / (image * (int64_t)sizeof(float));
    if (chunk < 1) chunk = 1;
    if (chunk > n1 - n0) chunk = n1 - n0;
    int64_t band = (FILTER_BAND_PIXELS + g->ow - 1) / g->ow;
    float *imgs = em__scratch(sizeof(float) * (size_t)(chunk * image));
    if (!imgs) {
        em__error("conv2d_backprop_filter: out of memory for %lld padded images", (long long)chunk);
        return;
    }
    float *dw = (float *)p->partials + (n0 / p->per) * p->K * O, part[EM_REGTILE_MAX_ROWS * EM_REGTILE_COLS];
    for (int64_t c0 = n0; c0 < n1; c0 += chunk) {
        int64_t c1 = c0 + chunk < n1 ? c0 + chunk : n1;
        for (int64_t n = c0; n < c1; n++) pad_image(d, n, imgs + (n - c0) * image);
        for (int64_t n = c0; n < c1; n++)
            for (int64_t y0 = 0; y0 < g->oh; y0 += band) {
                const float *rows0 = imgs + (n - c0) * image + y0 * d->wp * d->c;
                bool first = n == n0 && y0 == 0;
                for (int64_t o0 = 0; o0 < O; o0 += EM_REGTILE_COLS) {
                    em_regtile k = {.b = (const float *)p->dy + (n * pixels + y0 * g->ow) * O + o0,
                                    .nr = g->oh - y0 < band ? g->oh - y0 : band, .nt = g->ow, .ar = d->wp * d->c,
                                    .at = d->c, .br = g->ow * O, .bt = O, .cj = first ? O : EM_REGTILE_COLS};
                    int vecs = em__regtile_vecs(O - o0), full = em__regtile_rows(vecs);
                    for (int64_t k0 = 0; k0 < p->K; k0 += full) {
                        int rows = (int)(p->K - k0 < full ? p->K - k0 : full);
                        for (int j = 0; j < rows; j++) {
                            int64_t tap = (k0 + j) / d->c, ci = (k0 + j) % d->c;
                            k.a[j] = rows0 + (tap / g->kw * d->wp + tap % g->kw) * d->c + ci;
                        }
                        float *to = dw + k0 * O + o0;
                        k.c = first ? to : part;
                        em__regtile_run(rows, vecs, &k);
                        for (int j = 0; !first && j < rows; j++) {
                            const float *src = part + j * EM_REGTILE_COLS;
                            float *dst = to + j * O;
                            _Pragma("omp simd") for (int q = 0; q < 16 * vecs; q++) dst[q] += src[q];
                        }
                    }
                }
            }
    }
    em__scratch_free(imgs);
}

/* Whether the direct kernels take this convolution, and where they read. */
static bool tiled_plan(conv_plan *p) {
    const em_conv_geom *g = &p->g;
    int64_t vector_channels = p->kind == CONV_BPI ? g->c : g->o;
    if (p->dtype != EM_F32 || p->pointwise || g->sh != 1 || g->sw != 1 || g->dh != 1 || g->dw != 1 ||
        vector_channels % 16 != 0 || !em__regtile_ready())
        return false;
    if (p->kind == CONV_BPI) /* the padded dy: a full correlation with the flipped filter */
        p->pad = (conv_pad){(const float *)p->dy, g->oh, g->ow, g->o, g->kh - 1 - g->ph, g->kw - 1 - g->pw,
                            g->h + g->kh - 1, g->w + g->kw - 1};
    else
        p->pad = (conv_pad){(const float *)p->x, g->h, g->w, g->c, g->ph, g->pw, g->oh + g->kh - 1, g->ow + g->kw - 1};
    return true;
}

/* dst[ky][kx][o][c] = w[kh-1-ky][kw-1-kx][c][o]: backprop input's filter. */
static void flip_filter(float *dst, const float *w, const em_conv_geom *g) {
    for (int64_t ky = 0; ky < g->kh; ky++)
        for (int64_t kx = 0; kx < g->kw; kx++) {
            const float *src = w + ((g->kh - 1 - ky) * g->kw + (g->kw - 1 - kx)) * g->c * g->o;
            transpose2d((char *)(dst + (ky * g->kw + kx) * g->o * g->c), (const char *)src, g->c, g->o, sizeof(float));
        }
}
#endif

/* out = sum of the tasks' partials, added in task order. */
#define SUM_PARTIALS(T)                                                            \
    static void sum_partials_##T(void *ctx, int64_t begin, int64_t end) {          \
        const conv_plan *p = ctx;                                                  \
        int64_t size = p->K * p->g.o, tasks = (p->g.n + p->per - 1) / p->per;      \
        const T *part = (const T *)p->partials;                                    \
        T *out = (T *)p->out;                                                      \
        memcpy(out + begin, part + begin, sizeof(T) * (size_t)(end - begin));      \
        for (int64_t t = 1; t < tasks; t++) {                                      \
            const T *pt = part + t * size;                                         \
            _Pragma("omp simd") for (int64_t j = begin; j < end; j++) out[j] += pt[j]; \
        }                                                                          \
    }
SUM_PARTIALS(float)
SUM_PARTIALS(double)

/* Runs one of the three convolution kernels. */
static void conv_run(const em_call *c, em_tensor *out, conv_kind kind) {
    conv_plan p = {.kind = kind, .dtype = (em_dtype)out->dtype, .es = em_dtype_size((em_dtype)out->dtype),
                   .out = out->data};
    const int64_t *xs = kind == CONV_BPI ? out->shape : c->in[0]->shape;
    const int64_t *fs = kind == CONV_BPF ? out->shape : c->in[kind == CONV_FWD ? 1 : 0]->shape;
    int64_t os[4];
    conv_check(c, xs, fs, NULL, &p.g, os);
    if (kind == CONV_FWD) {
        p.x = c->in[0]->data;
        p.f = c->in[1]->data;
    } else {
        p.dy = c->in[1]->data;
        if (kind == CONV_BPI) p.f = c->in[0]->data;
        else p.x = c->in[0]->data;
    }
    const em_conv_geom *g = &p.g;
    p.K = g->kh * g->kw * g->c;
    p.P1 = g->oh * g->ow;
    p.pointwise = g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 && g->pw == 0;
    if (out->numel == 0) return;
    if (p.K == 0 || p.P1 == 0 || g->o == 0 || g->n == 0) { /* an empty sum (a filter gradient over no images) */
        memset(out->data, 0, (size_t)out->numel * p.es);
        return;
    }
    /* Groups of about 256K lowered elements; tasks of about one group, at
     * most N/64 images (so the batch splits evenly over the threads). */
    p.group = ((int64_t)1 << 18) / p.K;
    if (p.group < 64) p.group = 64;
    int64_t cap = (g->n + 63) / 64;
    p.per = (p.group + p.P1 - 1) / p.P1;
    if (p.per > cap) p.per = cap;
    int64_t tasks = (g->n + p.per - 1) / p.per;
    if (kind == CONV_BPF && tasks > BPF_TASKS) { /* few partials: less memory and summing */
        p.per = (g->n + BPF_TASKS - 1) / BPF_TASKS;
        tasks = (g->n + p.per - 1) / p.per;
    }
    p.single = tasks > 1 && em__threads() > 1;
    p.partials = out->data;
    if (kind == CONV_BPF && tasks > 1 && !(p.partials = em__scratch((size_t)(tasks * p.K * g->o) * p.es))) {
        em__error("conv2d_backprop_filter: out of memory for %lld partial sums", (long long)tasks);
        memset(out->data, 0, (size_t)out->numel * p.es);
        return;
    }
    char *wt = kind == CONV_BPI ? em__scratch((size_t)(p.K * g->o) * p.es) : NULL;
    em_range_fn task = conv_task;
#ifdef EM_REGTILE_KERNEL
    if ((kind != CONV_BPI || wt) && tiled_plan(&p)) {
        if (wt) flip_filter((float *)wt, (const float *)p.f, g);
        task = kind == CONV_BPF ? tiled_filter_task : tiled_forward_task;
    }
#endif
    /* BLIS runs dy W^T half again as fast with W^T row-major: transpose the
     * (small) filter once; without the memory, use W's own strides. */
    p.wt_rs = 1;
    p.wt_cs = g->o;
    if (wt && task == conv_task) {
        transpose2d(wt, p.f, p.K, g->o, p.es);
        p.wt_rs = p.K;
        p.wt_cs = 1;
    }
    if (wt) p.f = wt;
    em__parallel_for(g->n, p.per, task, &p);
    em__scratch_free(wt);
    if (p.partials != (char *)out->data) {
        em__parallel_for(p.K * g->o, 4096, p.dtype == EM_F32 ? sum_partials_float : sum_partials_double, &p);
        em__scratch_free(p.partials);
    }
}
static void conv2d_cpu(const em_call *c, em_tensor *out) { conv_run(c, out, CONV_FWD); }
static void conv2d_backprop_input_cpu(const em_call *c, em_tensor *out) { conv_run(c, out, CONV_BPI); }
static void conv2d_backprop_filter_cpu(const em_call *c, em_tensor *out) { conv_run(c, out, CONV_BPF); }

/* Runs a sibling op with this call's attributes and the shape attribute. */
static em_tensor *sibling(const em_call *c, em_op op, em_tensor *a, em_tensor *b, const em_tensor *shape_of) {
    em_attrs at = *c->a;
    at.ni = A_COUNT;
    if (shape_of) memcpy(&at.i[A_SHAPE], shape_of->shape, sizeof(int64_t) * 4);
    em_tensor *in[2] = {a, b};
    return em__apply(op, b ? 2 : 1, in, &at);
}

/* y = conv(x, w): dx = backprop_input(w, g), dw = backprop_filter(x, g). */
static int conv2d_grad(const em_call *c, em_tensor *out, em_tensor *g, const bool *need, em_tensor **gin) {
    (void)out;
    em_tensor *x = c->in[0], *w = c->in[1];
    if (need[0] && !(gin[0] = sibling(c, EM_OP_CONV2D_BACKPROP_INPUT, w, g, x))) return -1;
    if (need[1] && !(gin[1] = sibling(c, EM_OP_CONV2D_BACKPROP_FILTER, x, g, w))) return -1;
    return 0;
}

/* dx = backprop_input(w, dy) is linear in each input; with G its gradient:
 * d/dw = backprop_filter(G, dy), d/ddy = conv(G, w). */
static int conv2d_backprop_input_grad(const em_call *c, em_tensor *out, em_tensor *g, const bool *need, em_tensor **gin) {
    (void)out;
    em_tensor *w = c->in[0], *dy = c->in[1];
    if (need[0] && !(gin[0] = sibling(c, EM_OP_CONV2D_BACKPROP_FILTER, g, dy, w))) return -1;
    if (need[1] && !(gin[1] = sibling(c, EM_OP_CONV2D, g, w, NULL))) return -1;
    return 0;
}

/* dw = backprop_filter(x, dy): d/dx = backprop_input(G, dy), d/ddy = conv(x, G). */
static int conv2d_backprop_filter_grad(const em_call *c, em_tensor *out, em_tensor *g, const bool *need, em_tensor **gin) {
    (void)out;
    em_tensor *x = c->in[0], *dy = c->in[1];
    if (need[0] && !(gin[0] = sibling(c, EM_OP_CONV2D_BACKPROP_INPUT, g, dy, x))) return -1;
    if (need[1] && !(gin[1] = sibling(c, EM_OP_CONV2D, x, g, NULL))) return -1;
    return 0;
}

/* ---- pooling ---- */

static int pool_geom(const em_call *c, const int64_t *xs, em_conv_geom *g) {
    return make_geom(c, xs, c->a->i[A_WINDOW], c->a->i[A_WINDOW + 1], xs[3], false, g);
}

static int pool_infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    em_conv_geom g;
    if (need_float(c, 0, "input") || need_rank4(c, 0, "input") || pool_geom(c, c->in[0]->shape, &g)) return -1;
    int64_t os[4] = {g.n, g.oh, g.ow, g.c};
    memcpy(shape, os, sizeof os);
    *dtype = (em_dtype)c->in[0]->dtype;
    *ndim = 4;
    return 0;
}

/* Checks dy against the pooling output of input shape xs. */
static int pool_check_dy(const em_call *c, const int64_t *xs, const em_tensor *dy) {
    em_conv_geom g;
    char b0[160], b1[160];
    if (pool_geom(c, xs, &g)) return -1;
    int64_t os[4] = {g.n, g.oh, g.ow, g.c};
    if (dy->ndim != 4 || memcmp(dy->shape, os, sizeof os) != 0)
        return em__op_error(c, "out_backprop %s must have the pooling's output shape %s", em__tshape(dy, b0, sizeof b0),
                            shape_str(4, os, b1, sizeof b1));
    return 0;
}

/* inputs (input, out_backprop). */
static int max_pool_grad_infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    if (same_float(c, "input", "out_backprop") || need_rank4(c, 0, "input") ||
        pool_check_dy(c, c->in[0]->shape, c->in[1]))
        return -1;
    memcpy(shape, c->in[0]->shape, sizeof(int64_t) * 4);
    *dtype = (em_dtype)c->in[0]->dtype;
    *ndim = 4;
    return 0;
}

/* inputs (out_backprop), i[5..8] the input shape. */
static int avg_pool_grad_infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    if (need_float(c, 0, "out_backprop") || attr_shape(c, "input", shape) || pool_check_dy(c, shape, c->in[0]))
        return -1;
    *dtype = (em_dtype)c->in[0]->dtype;
    *ndim = 4;
    return 0;
}

typedef struct {
    em_conv_geom g;
    const void *x, *dy;
    void *out;
    bool tiles; /* the windows cover the input without overlapping: gradients are stored, not added */
} pool_plan;

/* Forward pools: one task per output row (n, oy). */
#define POOL_FWD(T)                                                                           \
    static void max_pool_##T(void *ctx, int64_t begin, int64_t end) {                         \
        const pool_plan *p = ctx;                                                             \
        const em_conv_geom *g = &p->g;                                                        \
        const T *x = p->x;                                                                    \
        for (int64_t r = begin; r < end; r++)                                                 \
            for (int64_t ox = 0; ox < g->ow; ox++) {                                          \
                int64_t y0, y1, x0, x1, n = r / g->oh;                                        \
                em_pool_window(g, r % g->oh, ox, &y0, &y1, &x0, &x1);                         \
                T *y = (T *)p->out + (r * g->ow + ox) * g->c;                                 \
                for (int64_t ch = 0; ch < g->c; ch++) y[ch] = -INFINITY;                      \
                for (int64_t iy = y0; iy < y1; iy++)                                          \
                    for (int64_t ix = x0; ix < x1; ix++) {                                    \
                        const T *v = x + ((n * g->h + iy) * g->w + ix) * g->c;                \
                        _Pragma("omp simd") for (int64_t ch = 0; ch < g->c; ch++) y[ch] = v[ch] > y[ch] ? v[ch] : y[ch]; \
                    }                                                                         \
            }                                                                                 \
    }                                                                                         \
    static void avg_pool_##T(void *ctx, int64_t begin, int64_t end) {                         \
        const pool_plan *p = ctx;                                                             \
        const em_conv_geom *g = &p->g;                                                        \
        const T *x = p->x;                                                                    \
        for (int64_t r = begin; r < end; r++)                                                 \
            for (int64_t ox = 0; ox < g->ow; ox++) {                                          \
                int64_t y0, y1, x0, x1, n = r / g->oh;                                        \
                em_pool_window(g, r % g->oh, ox, &y0, &y1, &x0, &x1);                         \
                T *y = (T *)p->out + (r * g->ow + ox) * g->c, inv = (T)1 / (T)((y1 - y0) * (x1 - x0)); \
                for (int64_t ch = 0; ch < g->c; ch++) y[ch] = 0;                              \
                for (int64_t iy = y0; iy < y1; iy++)                                          \
                    for (int64_t ix = x0; ix < x1; ix++) {                                    \
                        const T *v = x + ((n * g->h + iy) * g->w + ix) * g->c;                \
                        _Pragma("omp simd") for (int64_t ch = 0; ch < g->c; ch++) y[ch] += v[ch];                 \
                    }                                                                         \
                for (int64_t ch = 0; ch < g->c; ch++) y[ch] *= inv;                           \
            }                                                                                 \
    }
POOL_FWD(float)
POOL_FWD(double)

/* Pool gradients: one task per image (windows overlap only within an image).
 * max_pool_grad routes each dy to the first element of its window not less
 * than the window's maximum (the first largest; with NaNs, the first NaN that
 * precedes it), in blocks of POOL_BLOCK channels: the maximum, then a scan
 * that hands dy to the first match, both branch-free over channels. */
enum { POOL_BLOCK = 64 };
/* Hands what is left of dy to the window elements v that reach the maximum,
 * storing (=) or adding (+=) into o. */
#define POOL_ROUTE(T, STORE, v, o)                                                            \
    _Pragma("omp simd") for (int64_t ch = 0; ch < cn; ch++) {                                 \
        T l = left[ch];                                                                       \
        bool hit = !((v)[ch] < m[ch]);                                                        \
        (o)[ch] STORE hit ? l : (T)0;                                                         \
        left[ch] = hit ? (T)0 : l;                                                            \
    }
#define POOL_BWD(T)                                                                           \
    EM_HOT static void max_pool_grad_##T(void *ctx, int64_t begin, int64_t end) {             \
        const pool_plan *p = ctx;                                                             \
        const em_conv_geom *g = &p->g;                                                        \
        const T *x = p->x, *dy = p->dy;                                                       \
        T *dx = p->out;                                                                       \
        const bool tiles = p->tiles;                                                          \
        if (!tiles)                                                                           \
            memset(dx + begin * g->h * g->w * g->c, 0, sizeof(T) * (size_t)((end - begin) * g->h * g->w * g->c)); \
        for (int64_t n = begin; n < end; n++)                                                 \
            for (int64_t oy = 0; oy < g->oh; oy++)                                            \
                for (int64_t ox = 0; ox < g->ow; ox++) {                                      \
                    int64_t y0, y1, x0, x1;                                                   \
                    em_pool_window(g, oy, ox, &y0, &y1, &x0, &x1);                            \
                    const T *d = dy + ((n * g->oh + oy) * g->ow + ox) * g->c;                 \
                    for (int64_t c0 = 0; c0 < g->c; c0 += POOL_BLOCK) {                       \
                        int64_t cn = g->c - c0 < POOL_BLOCK ? g->c - c0 : POOL_BLOCK;         \
                        const T *first = x + ((n * g->h + y0) * g->w + x0) * g->c + c0;       \
                        T m[POOL_BLOCK], left[POOL_BLOCK];                                    \
                        for (int64_t ch = 0; ch < cn; ch++) {                                 \
                            m[ch] = first[ch];                                                \
                            left[ch] = d[c0 + ch];                                            \
                        }                                                                     \
                        for (int64_t iy = y0; iy < y1; iy++)                                  \
                            for (int64_t ix = x0; ix < x1; ix++) {                            \
                                const T *v = x + ((n * g->h + iy) * g->w + ix) * g->c + c0;   \
                                _Pragma("omp simd") for (int64_t ch = 0; ch < cn; ch++) m[ch] = v[ch] > m[ch] ? v[ch] : m[ch]; \
                            }                                                                 \
                        for (int64_t iy = y0; iy < y1; iy++)                                  \
                            for (int64_t ix = x0; ix < x1; ix++) {                            \
                                int64_t at = ((n * g->h + iy) * g->w + ix) * g->c + c0;       \
                                if (tiles) {                                                  \
                                    POOL_ROUTE(T, =, x + at, dx + at)                         \
                                } else {                                                      \
                                    POOL_ROUTE(T, +=, x + at, dx + at)                        \
                                }                                                             \
                            }                                                                 \
                    }                                                                         \
                }                                                                             \
    }                                                                                         \
    static void avg_pool_grad_##T(void *ctx, int64_t begin, int64_t end) {                    \
        const pool_plan *p = ctx;                                                             \
        const em_conv_geom *g = &p->g;                                                        \
        const T *dy = p->dy;                                                                  \
        T *dx = p->out;                                                                       \
        memset(dx + begin * g->h * g->w * g->c, 0, sizeof(T) * (size_t)((end - begin) * g->h * g->w * g->c)); \
        for (int64_t n = begin; n < end; n++)                                                 \
            for (int64_t oy = 0; oy < g->oh; oy++)                                            \
                for (int64_t ox = 0; ox < g->ow; ox++) {                                      \
                    int64_t y0, y1, x0, x1;                                                   \
                    em_pool_window(g, oy, ox, &y0, &y1, &x0, &x1);                            \
                    const T *d = dy + ((n * g->oh + oy) * g->ow + ox) * g->c;                 \
                    T inv = (T)1 / (T)((y1 - y0) * (x1 - x0));                                \
                    for (int64_t iy = y0; iy < y1; iy++)                                      \
                        for (int64_t ix = x0; ix < x1; ix++) {                                \
                            T *v = dx + ((n * g->h + iy) * g->w + ix) * g->c;                 \
                            _Pragma("omp simd") for (int64_t ch = 0; ch < g->c; ch++) v[ch] += d[ch] * inv;       \
                        }                                                                     \
                }                                                                             \
    }
POOL_BWD(float)
POOL_BWD(double)

static void pool_run(const em_call *c, em_tensor *out, const int64_t *xs, const void *x, const void *dy,
                     em_range_fn f32, em_range_fn f64, bool per_image) {
    if (out->numel == 0) return; /* e.g. no channels: the loops below would still walk every window */
    pool_plan p = {.x = x, .dy = dy, .out = out->data};
    pool_geom(c, xs, &p.g);
    const em_conv_geom *g = &p.g;
    p.tiles = g->sh == g->kh && g->sw == g->kw && (g->oh - 1) * g->sh - g->ph + g->kh >= g->h &&
              (g->ow - 1) * g->sw - g->pw + g->kw >= g->w;
    int64_t rows = per_image ? p.g.n : p.g.n * p.g.oh;
    /* Work per row, to size the chunks: in double, as windows of a huge ksize
     * (clamped to the input when run) would overflow it. */
    double work = (double)(per_image ? p.g.oh : 1) * (double)p.g.ow * (double)p.g.c * (double)p.g.kh * (double)p.g.kw;
    int64_t grain = work >= 16384 ? 1 : (int64_t)(16384 / (work > 1 ? work : 1));
    em__parallel_for(rows, grain, out->dtype == EM_F32 ? f32 : f64, &p);
}
static void max_pool_cpu(const em_call *c, em_tensor *out) {
    pool_run(c, out, c->in[0]->shape, c->in[0]->data, NULL, max_pool_float, max_pool_double, false);
}
static void avg_pool_cpu(const em_call *c, em_tensor *out) {
    pool_run(c, out, c->in[0]->shape, c->in[0]->data, NULL, avg_pool_float, avg_pool_double, false);
}
static void max_pool_grad_cpu(const em_call *c, em_tensor *out) {
    pool_run(c, out, out->shape, c->in[0]->data, c->in[1]->data, max_pool_grad_float, max_pool_grad_double, true);
}
static void avg_pool_grad_cpu(const em_call *c, em_tensor *out) {
    pool_run(c, out, out->shape, NULL, c->in[0]->data, avg_pool_grad_float, avg_pool_grad_double, true);
}

static int max_pool_grad(const em_call *c, em_tensor *out, em_tensor *g, const bool *need, em_tensor **gin) {
    (void)out;
    (void)need;
    gin[0] = sibling(c, EM_OP_MAX_POOL_GRAD, c->in[0], g, NULL);
    return gin[0] ? 0 : -1;
}

static int avg_pool_grad(const em_call *c, em_tensor *out, em_tensor *g, const bool *need, em_tensor **gin) {
    (void)out;
    (void)need;
    gin[0] = sibling(c, EM_OP_AVG_POOL_GRAD, g, NULL, c->in[0]);
    return gin[0] ? 0 : -1;
}

/* avg_pool_grad applies the transpose of the (linear) average pool, so its
 * own gradient is the average pool. */
static int avg_pool_grad_grad(const em_call *c, em_tensor *out, em_tensor *g, const bool *need, em_tensor **gin) {
    (void)out;
    (void)need;
    gin[0] = sibling(c, EM_OP_AVG_POOL, g, NULL, NULL);
    return gin[0] ? 0 : -1;
}

/* A convolution does a row of multiply-adds per output element. */
static int64_t conv_cost(const em_call *c) {
    (void)c;
    return 256;
}

/* softmax and log_softmax share a shape rule, and so do the pools. */
#define log_softmax_infer softmax_infer
#define max_pool_infer pool_infer
#define avg_pool_infer pool_infer
#define EM_OP(ID, name, arity, dtypes, grad, kernel, flags, cost) \
    EM_OP_ROW(ID, name, arity, dtypes, grad, kernel, flags, cost, name##_infer, name##_cpu, name##_view, name##_grad)
#include "nn.def"
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

em_tensor *em_conv2d(em_tensor *input, em_tensor *filter, const int *strides, em_padding padding,
                     const int *dilations) {
    em_attrs a = {.i = {strides ? strides[0] : 1, strides ? strides[1] : 1, dilations ? dilations[0] : 1,
                        dilations ? dilations[1] : 1, padding},
                  .ni = A_SHAPE};
    em_tensor *in[2] = {input, filter};
    return em__apply(EM_OP_CONV2D, 2, in, &a);
}

static em_tensor *pool(em_op op, const char *name, em_tensor *input, const int *ksize, const int *strides,
                       em_padding padding) {
    if (!ksize) {
        em__error("%s: ksize is NULL; give the window as {h, w}", name);
        return NULL;
    }
    em_attrs a = {.i = {strides ? strides[0] : 1, strides ? strides[1] : 1, ksize[0], ksize[1], padding}, .ni = A_SHAPE};
    return em__apply(op, 1, &input, &a);
}
em_tensor *em_max_pool(em_tensor *input, const int *ksize, const int *strides, em_padding padding) {
    return pool(EM_OP_MAX_POOL, "max_pool", input, ksize, strides, padding);
}
em_tensor *em_avg_pool(em_tensor *input, const int *ksize, const int *strides, em_padding padding) {
    return pool(EM_OP_AVG_POOL, "avg_pool", input, ksize, strides, padding);
}

em_tensor *em_bias_add(em_tensor *x, em_tensor *bias) {
    if (!x || !bias) return em__null_input("bias_add");
    if (bias->ndim != 1 || x->ndim < 1 || bias->shape[0] != x->shape[x->ndim - 1]) {
        char b0[160], b1[160];
        em__error("bias_add: bias %s must be 1-D and match the last dimension of x %s", em__tshape(bias, b0, sizeof b0),
                  em__tshape(x, b1, sizeof b1));
        return NULL;
    }
    return em_add(x, bias);
}

em_tensor *em_dropout(em_tensor *x, double keep_prob) {
    if (!x) return em__null_input("dropout");
    if (!(keep_prob > 0 && keep_prob <= 1)) {
        em__error("dropout: keep_prob must be in (0, 1], got %g", keep_prob);
        return NULL;
    }
    if (!em__is_float((em_dtype)x->dtype)) {
        em__error("dropout: x has dtype %s; float32 or float64 is required", em_dtype_name((em_dtype)x->dtype));
        return NULL;
    }
    if (keep_prob == 1) return em__ref(x);
    em_dtype dt = (em_dtype)x->dtype;
    em_scope_begin(); /* the mask's intermediates go when this returns */
    em_tensor *u = em_random_uniform(dt, em__shape_of(x), 0, 1);
    em_tensor *keep = em_cast(em_less(u, em_scalar(dt, keep_prob)), dt);
    em_tensor *y = em_escape(em_mul(x, em_mul_scalar(keep, 1 / keep_prob)));
    em_scope_end();
    return y;
}
