/* Gradient-check cases for ops/nn.c (small shapes; conv backprops are
 * checked as ops of their own, which second derivatives rely on). */
#include "common.h"

#include <stdlib.h>
#include <string.h>

static em_tensor *softmax_last(em_tensor *const *in) { return em_softmax(in[0], -1); }
static em_tensor *softmax_first(em_tensor *const *in) { return em_softmax(in[0], 0); }
static em_tensor *log_softmax_mid(em_tensor *const *in) { return em_log_softmax(in[0], 1); }
/* The gradient op itself (output y, incoming g), in both inputs. */
static em_tensor *softmax_grad_last(em_tensor *const *in) {
    return em__apply(EM_OP_SOFTMAX_GRAD, 2, in, &(em_attrs){.i = {-1, 0}, .ni = 2});
}
static em_tensor *log_softmax_grad_mid(em_tensor *const *in) {
    return em__apply(EM_OP_SOFTMAX_GRAD, 2, in, &(em_attrs){.i = {1, 1}, .ni = 2});
}
static em_tensor *sigmoid_xent(em_tensor *const *in) { return em_sigmoid_cross_entropy_with_logits(in[0], in[1]); }
static em_tensor *softmax_xent(em_tensor *const *in) { return em_softmax_cross_entropy_with_logits(in[0], in[1]); }
static em_tensor *sparse_xent(em_tensor *const *in) { return em_sparse_softmax_cross_entropy_with_logits(in[0], in[1]); }
static em_tensor *labels_3x4(int i) {
    return i == 0 ? em_tensor_from(EM_I64, EM_SHAPE(3), (int64_t[]){2, 0, 3}) : NULL;
}

static const int S2[] = {2, 2}, D2[] = {2, 2}, K2[] = {2, 2}, K3[] = {3, 3};
static em_tensor *conv_same(em_tensor *const *in) { return em_conv2d(in[0], in[1], NULL, EM_PAD_SAME, NULL); }
static em_tensor *conv_valid_s2(em_tensor *const *in) { return em_conv2d(in[0], in[1], S2, EM_PAD_VALID, NULL); }
static em_tensor *conv_same_s2_dilated(em_tensor *const *in) { return em_conv2d(in[0], in[1], S2, EM_PAD_SAME, D2); }

/* The backprops, called as ops: conv2d's attributes (strides 2, SAME), the
 * produced shape in i[5..8]. Shapes match conv of [1,5,5,2] by [3,3,2,3]. */
static em_tensor *backprop(em_op op, em_tensor *const *in, const int64_t *shape) {
    em_attrs a = {.i = {2, 2, 1, 1, EM_PAD_SAME, shape[0], shape[1], shape[2], shape[3]}, .ni = 9};
    return em__apply(op, 2, in, &a);
}
static em_tensor *conv_bpi(em_tensor *const *in) {
    return backprop(EM_OP_CONV2D_BACKPROP_INPUT, in, (const int64_t[]){1, 5, 5, 2});
}
static em_tensor *conv_bpf(em_tensor *const *in) {
    return backprop(EM_OP_CONV2D_BACKPROP_FILTER, in, (const int64_t[]){3, 3, 2, 3});
}

static em_tensor *max_pool_same(em_tensor *const *in) { return em_max_pool(in[0], K3, S2, EM_PAD_SAME); }
static em_tensor *max_pool_valid(em_tensor *const *in) { return em_max_pool(in[0], K2, S2, EM_PAD_VALID); }
static em_tensor *max_pool_2x2_same(em_tensor *const *in) { return em_max_pool(in[0], K2, S2, EM_PAD_SAME); }
static em_tensor *avg_pool_same(em_tensor *const *in) { return em_avg_pool(in[0], K3, S2, EM_PAD_SAME); }
static em_tensor *avg_pool_valid(em_tensor *const *in) { return em_avg_pool(in[0], K2, (const int[]){1, 1}, EM_PAD_VALID); }
/* avg_pool_grad of [1,3,3,2] (3x3 SAME stride 2 over [1,5,6,2]). */
static em_tensor *avg_pool_grad(em_tensor *const *in) {
    em_attrs a = {.i = {2, 2, 3, 3, EM_PAD_SAME, 1, 5, 6, 2}, .ni = 9};
    return em__apply(EM_OP_AVG_POOL_GRAD, 1, in, &a);
}

const gc_case gc_cases_nn[] = {
    {EM_OP_SOFTMAX, "softmax last axis [3,4]", 1, {EM_SHAPE(3, 4)}, softmax_last, -2, 2, 0, NULL},
    {EM_OP_SOFTMAX, "softmax axis 0 [3,2,2]", 1, {EM_SHAPE(3, 2, 2)}, softmax_first, -2, 2, 0, NULL},
    {EM_OP_LOG_SOFTMAX, "log_softmax axis 1 [2,4,3]", 1, {EM_SHAPE(2, 4, 3)}, log_softmax_mid, -2, 2, 0, NULL},
    {EM_OP_SOFTMAX_GRAD, "softmax_grad (softmax, last axis) [3,4] [3,4]", 2, {EM_SHAPE(3, 4), EM_SHAPE(3, 4)},
     softmax_grad_last, -1, 1, 0, NULL},
    {EM_OP_SOFTMAX_GRAD, "softmax_grad (log_softmax, axis 1) [2,3,2] [2,3,2]", 2, {EM_SHAPE(2, 3, 2), EM_SHAPE(2, 3, 2)},
     log_softmax_grad_mid, -1, 1, 0, NULL},
    {EM_OP_SIGMOID_XENT, "sigmoid_xent [2,3]", 2, {EM_SHAPE(2, 3), EM_SHAPE(2, 3)}, sigmoid_xent, 0.1, 0.9, 0, NULL},
    {EM_OP_SOFTMAX_XENT, "softmax_xent [3,4]", 2, {EM_SHAPE(3, 4), EM_SHAPE(3, 4)}, softmax_xent, 0.1, 0.9, 0, NULL},
    {EM_OP_SPARSE_SOFTMAX_XENT, "sparse_softmax_xent int64 [3] x [3,4]", 2, {EM_SHAPE(3), EM_SHAPE(3, 4)},
     sparse_xent, -2, 2, 1, labels_3x4},
    {EM_OP_CONV2D, "conv2d SAME [1,4,4,2]x[3,3,2,2]", 2, {EM_SHAPE(1, 4, 4, 2), EM_SHAPE(3, 3, 2, 2)}, conv_same, -1, 1,
     0, NULL},
    {EM_OP_CONV2D, "conv2d VALID stride 2 [2,5,5,1]x[2,2,1,2]", 2, {EM_SHAPE(2, 5, 5, 1), EM_SHAPE(2, 2, 1, 2)},
     conv_valid_s2, -1, 1, 0, NULL},
    {EM_OP_CONV2D, "conv2d SAME stride 2 dilation 2 [1,6,5,2]x[2,3,2,1]", 2,
     {EM_SHAPE(1, 6, 5, 2), EM_SHAPE(2, 3, 2, 1)}, conv_same_s2_dilated, -1, 1, 0, NULL},
    {EM_OP_CONV2D_BACKPROP_INPUT, "conv2d_backprop_input [3,3,2,3], [1,3,3,3] -> [1,5,5,2]", 2,
     {EM_SHAPE(3, 3, 2, 3), EM_SHAPE(1, 3, 3, 3)}, conv_bpi, -1, 1, 0, NULL},
    {EM_OP_CONV2D_BACKPROP_FILTER, "conv2d_backprop_filter [1,5,5,2], [1,3,3,3] -> [3,3,2,3]", 2,
     {EM_SHAPE(1, 5, 5, 2), EM_SHAPE(1, 3, 3, 3)}, conv_bpf, -1, 1, 0, NULL},
    {EM_OP_MAX_POOL, "max_pool 3x3 SAME stride 2 [1,5,6,2]", 1, {EM_SHAPE(1, 5, 6, 2)}, max_pool_same, -1, 1, 0, NULL},
    {EM_OP_MAX_POOL, "max_pool 2x2 VALID stride 2 [2,4,4,1]", 1, {EM_SHAPE(2, 4, 4, 1)}, max_pool_valid, -1, 1, 0, NULL},
    /* windows that miss the last row and column (their gradient is zero), and
     * windows clipped by SAME padding that still tile the input */
    {EM_OP_MAX_POOL, "max_pool 2x2 VALID stride 2 [1,5,5,3]", 1, {EM_SHAPE(1, 5, 5, 3)}, max_pool_valid, -1, 1, 0, NULL},
    {EM_OP_MAX_POOL, "max_pool 2x2 SAME stride 2 [2,5,3,2]", 1, {EM_SHAPE(2, 5, 3, 2)}, max_pool_2x2_same, -1, 1, 0, NULL},
    {EM_OP_AVG_POOL, "avg_pool 3x3 SAME stride 2 [1,5,6,2]", 1, {EM_SHAPE(1, 5, 6, 2)}, avg_pool_same, -1, 1, 0, NULL},
    {EM_OP_AVG_POOL, "avg_pool 2x2 VALID stride 1 [2,3,4,1]", 1, {EM_SHAPE(2, 3, 4, 1)}, avg_pool_valid, -1, 1, 0, NULL},
    {EM_OP_AVG_POOL_GRAD, "avg_pool_grad [1,3,3,2] -> [1,5,6,2]", 1, {EM_SHAPE(1, 3, 3, 2)}, avg_pool_grad, -1, 1, 0,
     NULL},
    {.fn = NULL},
};

/* ---- forward cases ----
 * Every expected value is computed by a ref below, in float64 from the
 * case's input values as its dtype holds them, by the textbook formula (the
 * loops of a direct convolution and pooling, TensorFlow's padding rule),
 * independently of the kernels. Convolution and pooling inputs are small
 * integers (XA, XB), so float32 sums are exact and pooling has ties. */

/* random.Random(1).randint(-4, 4) and random.Random(2).randint(-4, 4), 64 each */
static const double XA[64] = {-2, -3, 0,  -3, 3,  3,  3,  2, -1, -3, 3,  -4, 2,  2, -4, 3,  0,  -1, -3, 1,  -4, -4,
                              -4, 4,  -4, 2,  -1, 2,  -4, 4, -1, 3,  3,  4,  -1, 1, -1, -1, 3,  0,  -4, 2,  4,  -3,
                              -2, 0,  -3, 1,  4,  2,  4,  -1, 0, 0,  3,  4,  2,  -4, 3, -1, 2,  2,  -2, 1};
static const double XB[64] = {-4, -3, -3, 1,  -2, 0,  0,  -1, -4, -2, 2,  2,  4,  1,  4,  3, 4,  0,  -4, -4, 1, 3,
                              1,  2,  2,  4,  -2, 4,  -2, -1, -1, -4, -2, 1,  -2, -2, 4,  4, 1,  4,  4,  -2, 3, 2,
                              4,  1,  1,  1,  3,  -2, 2,  3,  4,  -1, 3,  0,  3,  4,  4,  1, 3,  3,  1,  4};
/* softmax rows: ordinary, with -inf, with large values (exp(1000) overflows float64) */
static const double SMX[12] = {0.5, -1.25, 2, 0.3, -INFINITY, 1, -INFINITY, 3, 1000, 1001, 999.5, -1000};
static const double SMY[12] = {0.1, -0.4, 1.2, 0.7, -2.0, 0.05, 3.0, -1.0, 0.25, 0.5, -0.75, 2.5};
static const double G12[12] = {0.3, -1.1, 0.8, 2.0, -0.5, 0.25, 1.5, -0.7, 0.9, 0.0, -2.2, 0.6};

/* Element i of input k as its dtype holds it. */
static double in_at(const fw_case *c, int k, int64_t i) {
    double v = c->in[k].v[i];
    return c->in[k].dtype == EM_F32 ? (double)(float)v : v;
}
/* All of input k as float64, or zeros of shape s for k < 0 (malloc'd). */
static double *load(const fw_case *c, int k, em_shape s) {
    int64_t n = em_shape_numel(s);
    double *v = calloc((size_t)(n ? n : 1), sizeof(double));
    ck_assert_ptr_nonnull(v);
    for (int64_t i = 0; k >= 0 && i < n; i++) v[i] = in_at(c, k, i);
    return v;
}

/* ---- softmax family ---- */

/* The rows along `axis` of shape s: element j of row (o, i) is at (o * len + j) * inner + i. */
typedef struct {
    int64_t outer, len, inner;
} rows_of_t;
static rows_of_t rows_of(em_shape s, int axis) {
    if (axis < 0) axis += s.ndim;
    rows_of_t r = {1, s.dims[axis], 1};
    for (int d = 0; d < axis; d++) r.outer *= s.dims[d];
    for (int d = axis + 1; d < s.ndim; d++) r.inner *= s.dims[d];
    return r;
}
#define ROW_AT(r, o, i, j) (((o) * (r).len + (j)) * (r).inner + (i))

/* y = exp(x - max) / sum(exp(x - max)), or log_softmax: x - max - log(sum) */
static void softmax_of(const double *x, em_shape s, int axis, bool log_form, double *y) {
    rows_of_t r = rows_of(s, axis);
    for (int64_t o = 0; o < r.outer; o++)
        for (int64_t i = 0; i < r.inner; i++) {
            double m = -INFINITY, sum = 0;
            for (int64_t j = 0; j < r.len; j++) m = fmax(m, x[ROW_AT(r, o, i, j)]);
            for (int64_t j = 0; j < r.len; j++) sum += exp(x[ROW_AT(r, o, i, j)] - m);
            for (int64_t j = 0; j < r.len; j++) {
                double v = x[ROW_AT(r, o, i, j)] - m;
                y[ROW_AT(r, o, i, j)] = log_form ? v - log(sum) : exp(v) / sum;
            }
        }
}
static void softmax_ref_(const fw_case *c, double *e, int axis, bool log_form) {
    double *x = load(c, 0, c->in[0].shape);
    softmax_of(x, c->in[0].shape, axis, log_form, e);
    free(x);
}
/* softmax's gradient: dx = y (g - sum(g y)); log_softmax's: dx = g - exp(y) sum(g) */
static void softmax_grad_of(const double *y, const double *g, em_shape s, int axis, bool log_form, double *dx) {
    rows_of_t r = rows_of(s, axis);
    for (int64_t o = 0; o < r.outer; o++)
        for (int64_t i = 0; i < r.inner; i++) {
            double sum = 0;
            for (int64_t j = 0; j < r.len; j++) {
                int64_t at = ROW_AT(r, o, i, j);
                sum += log_form ? g[at] : g[at] * y[at];
            }
            for (int64_t j = 0; j < r.len; j++) {
                int64_t at = ROW_AT(r, o, i, j);
                dx[at] = log_form ? g[at] - exp(y[at]) * sum : y[at] * (g[at] - sum);
            }
        }
}
/* softmax_grad(y = in[0], g = in[1]) */
static void softmax_grad_ref_(const fw_case *c, double *e, int axis, bool log_form) {
    double *y = load(c, 0, c->in[0].shape), *g = load(c, 1, c->in[1].shape);
    softmax_grad_of(y, g, c->in[0].shape, axis, log_form, e);
    free(y);
    free(g);
}
/* the gradient of (log_)softmax(x = in[0]) given g = in[1], through the tape:
 * softmax_grad(softmax(x), g), or for log_softmax g - softmax(x) sum(g) */
static void softmax_tape_ref_(const fw_case *c, double *e, int axis, bool log_form) {
    double *x = load(c, 0, c->in[0].shape), *g = load(c, 1, c->in[1].shape);
    softmax_of(x, c->in[0].shape, axis, log_form, x);
    softmax_grad_of(x, g, c->in[0].shape, axis, log_form, e);
    free(x);
    free(g);
}
static em_tensor *softmax_tape_(em_tensor *const *in, int axis, bool log_form) {
    em_tape *tape = em_tape_begin(false);
    em_tensor *y = log_form ? em_log_softmax(in[0], axis) : em_softmax(in[0], axis), *g = NULL;
    int rc = y ? em_gradients_with(tape, y, in[1], 1, in, &g) : -1;
    em_tape_release(tape);
    return rc ? NULL : g;
}

#define SOFTMAX_CASE(NAME, AXIS)                                                                                       \
    static em_tensor *f_##NAME(em_tensor *const *in) { return em_softmax(in[0], AXIS); }                             \
    static void NAME##_ref(const fw_case *c, double *e) { softmax_ref_(c, e, AXIS, false); }                          \
    static em_tensor *f_log_##NAME(em_tensor *const *in) { return em_log_softmax(in[0], AXIS); }                     \
    static void log_##NAME##_ref(const fw_case *c, double *e) { softmax_ref_(c, e, AXIS, true); }                     \
    static em_tensor *f_##NAME##_tape(em_tensor *const *in) { return softmax_tape_(in, AXIS, false); }               \
    static void NAME##_tape_ref(const fw_case *c, double *e) { softmax_tape_ref_(c, e, AXIS, false); }                \
    static em_tensor *f_log_##NAME##_tape(em_tensor *const *in) { return softmax_tape_(in, AXIS, true); }            \
    static void log_##NAME##_tape_ref(const fw_case *c, double *e) { softmax_tape_ref_(c, e, AXIS, true); }
SOFTMAX_CASE(softmax_last, -1)
SOFTMAX_CASE(softmax_axis1, 1)
SOFTMAX_CASE(softmax_axis0, 0)

/* softmax_grad called as an op: i[0] the axis, i[1] 1 for log_softmax's gradient */
#define SOFTMAX_GRAD_CASE(NAME, AXIS, LOG)                                                                             \
    static em_tensor *f_##NAME(em_tensor *const *in) {                                                               \
        return em__apply(EM_OP_SOFTMAX_GRAD, 2, in, &(em_attrs){.i = {AXIS, LOG}, .ni = 2});                           \
    }                                                                                                                  \
    static void NAME##_ref(const fw_case *c, double *e) { softmax_grad_ref_(c, e, AXIS, LOG); }
SOFTMAX_GRAD_CASE(softmax_grad_last, -1, 0)
SOFTMAX_GRAD_CASE(log_softmax_grad_axis1, 1, 1)
SOFTMAX_GRAD_CASE(softmax_grad_axis0, 0, 0)
/* y: probabilities and log-probabilities (any values obey the formulas) */
static const double Y6[6] = {0.2, 0.5, 0.3, 0.1, 0.1, 0.8};
static const double LOGY12[12] = {-1.2, -0.3, -0.9, -2.1, -1.5, -1.0, -0.2, -3.0, -2.4, -0.6, -1.8, -0.05};

/* ---- cross entropies ---- */

/* max(x, 0) - x z + log(1 + exp(-|x|)) */
static void sigmoid_xent_ref(const fw_case *c, double *e) {
    for (int64_t i = 0; i < em_shape_numel(c->out_shape); i++) {
        double z = in_at(c, 0, i), x = in_at(c, 1, i);
        e[i] = fmax(x, 0) - x * z + log1p(exp(-fabs(x)));
    }
}
static em_tensor *f_sigmoid_xent(em_tensor *const *in) { return em_sigmoid_cross_entropy_with_logits(in[0], in[1]); }
static const double SIG_Z[8] = {0, 1, 0.25, 0.5, 1, 0, 0.75, 0.1}, SIG_X[8] = {0.5, -2, 3, 50, -50, 0, -0.3, 100};

/* log(sum(exp(x))) of row r (len classes) of input k */
static double lse_row(const fw_case *c, int k, int64_t r, int64_t len) {
    double m = -INFINITY, sum = 0;
    for (int64_t j = 0; j < len; j++) m = fmax(m, in_at(c, k, r * len + j));
    for (int64_t j = 0; j < len; j++) sum += exp(in_at(c, k, r * len + j) - m);
    return m + log(sum);
}
/* sum_j z_j (lse - x_j) over the last axis; a class with z_j = 0 adds nothing (even at x_j = -inf) */
static void softmax_xent_ref(const fw_case *c, double *e) {
    int64_t len = c->in[1].shape.dims[c->in[1].shape.ndim - 1];
    for (int64_t r = 0; r < em_shape_numel(c->out_shape); r++) {
        double lse = lse_row(c, 1, r, len), loss = 0;
        for (int64_t j = 0; j < len; j++) {
            double z = in_at(c, 0, r * len + j);
            if (z != 0) loss += z * (lse - in_at(c, 1, r * len + j));
        }
        e[r] = loss;
    }
}
#define softmax_xent_3d_ref softmax_xent_ref
static em_tensor *f_softmax_xent(em_tensor *const *in) { return em_softmax_cross_entropy_with_logits(in[0], in[1]); }
#define f_softmax_xent_3d f_softmax_xent
/* rows: soft labels; one-hot at a large logit beside -inf; two classes, a third at -inf */
static const double XENT_Z[9] = {0.25, 0.5, 0.25, 0, 1, 0, 0.5, 0.5, 0};
static const double XENT_X[9] = {1, 2, -0.5, -INFINITY, 1000, 999, 0.3, -0.7, -INFINITY};
/* labels that do not sum to 1 */
static const double XENT_Z8[8] = {0.5, 1, 0, 0.25, 0, 0, 2, 0};

/* lse - x[label] */
static void sparse_xent_ref(const fw_case *c, double *e) {
    int64_t len = c->in[1].shape.dims[c->in[1].shape.ndim - 1];
    for (int64_t r = 0; r < em_shape_numel(c->out_shape); r++)
        e[r] = lse_row(c, 1, r, len) - in_at(c, 1, r * len + (int64_t)c->in[0].v[r]);
}
#define sparse_xent_2d_ref sparse_xent_ref
static em_tensor *f_sparse_xent(em_tensor *const *in) {
    return em_sparse_softmax_cross_entropy_with_logits(in[0], in[1]);
}
#define f_sparse_xent_2d f_sparse_xent

/* ---- convolution: a direct loop over every output pixel, tap and channel pair ---- */

typedef struct {
    int sh, sw, dh, dw;
    em_padding pad;
} conv_at;

/* TensorFlow's rule: SAME gives ceil(in / s) outputs and pads max((out - 1) s + ek - in, 0)
 * in total, the smaller half before; VALID gives (in - ek) / s + 1 and no padding,
 * with ek = (k - 1) d + 1. */
static void out_dim(int64_t in, int64_t k, int s, int d, em_padding pad, int64_t *out, int64_t *before) {
    int64_t ek = (k - 1) * d + 1;
    if (pad == EM_PAD_SAME) {
        *out = (in + s - 1) / s;
        int64_t total = (*out - 1) * s + ek - in;
        *before = total > 0 ? total / 2 : 0;
    } else {
        *out = (in - ek) / s + 1;
        *before = 0;
    }
}

/* y = conv(x, w) over input x [N,H,W,C] and filter w [KH,KW,C,O]. Each of x,
 * w and y comes from an input (its index) or is the output (-1): the forward
 * op computes y, backprop_input x (from w and y = dy), backprop_filter w. */
static void conv_ref_(const fw_case *c, double *e, conv_at a, int kx, int kw, int ky) {
    em_shape xs = kx >= 0 ? c->in[kx].shape : c->out_shape, ws = kw >= 0 ? c->in[kw].shape : c->out_shape;
    int64_t N = xs.dims[0], H = xs.dims[1], W = xs.dims[2], C = xs.dims[3];
    int64_t KH = ws.dims[0], KW = ws.dims[1], O = ws.dims[3], OH, OW, PH, PW;
    out_dim(H, KH, a.sh, a.dh, a.pad, &OH, &PH);
    out_dim(W, KW, a.sw, a.dw, a.pad, &OW, &PW);
    em_shape ys = EM_SHAPE(N, OH, OW, O);
    if (ky >= 0) ck_assert(em_shape_equal(ys, c->in[ky].shape));
    double *x = load(c, kx, xs), *w = load(c, kw, ws), *y = load(c, ky, ys);
    for (int64_t n = 0; n < N; n++)
        for (int64_t oy = 0; oy < OH; oy++)
            for (int64_t ox = 0; ox < OW; ox++)
                for (int64_t ty = 0; ty < KH; ty++)
                    for (int64_t tx = 0; tx < KW; tx++) {
                        int64_t iy = oy * a.sh - PH + ty * a.dh, ix = ox * a.sw - PW + tx * a.dw;
                        if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                        for (int64_t ci = 0; ci < C; ci++)
                            for (int64_t o = 0; o < O; o++) {
                                double *xv = &x[((n * H + iy) * W + ix) * C + ci], *wv = &w[((ty * KW + tx) * C + ci) * O + o],
                                       *yv = &y[((n * OH + oy) * OW + ox) * O + o];
                                if (ky < 0) *yv += *xv * *wv;
                                else if (kx < 0) *xv += *wv * *yv;
                                else *wv += *xv * *yv;
                            }
                    }
    const double *out = ky < 0 ? y : kx < 0 ? x : w;
    memcpy(e, out, sizeof(double) * (size_t)em_shape_numel(c->out_shape));
    free(x);
    free(w);
    free(y);
}

/* conv2d(in[0], in[1]) */
#define CONV_CASE(NAME, SH, SW, DH, DW, PAD)                                                                           \
    static em_tensor *f_##NAME(em_tensor *const *in) {                                                               \
        return em_conv2d(in[0], in[1], (const int[]){SH, SW}, PAD, (const int[]){DH, DW});                             \
    }                                                                                                                  \
    static void NAME##_ref(const fw_case *c, double *e) { conv_ref_(c, e, (conv_at){SH, SW, DH, DW, PAD}, 0, 1, -1); }
CONV_CASE(conv_same, 1, 1, 1, 1, EM_PAD_SAME)
CONV_CASE(conv_valid_s2, 2, 2, 1, 1, EM_PAD_VALID)
CONV_CASE(conv_same_s2, 2, 2, 1, 1, EM_PAD_SAME)
CONV_CASE(conv_same_s2_d2, 2, 2, 2, 2, EM_PAD_SAME)
CONV_CASE(conv_1x1, 1, 1, 1, 1, EM_PAD_VALID)
CONV_CASE(conv_valid_s12_d21, 1, 2, 2, 1, EM_PAD_VALID)
/* 16 output channels, stride 1: float32 runs the direct (AVX-512) kernels where the CPU has them */
CONV_CASE(conv_same_o16, 1, 1, 1, 1, EM_PAD_SAME)

/* The backprops called as ops: i[0..1] strides, i[2..3] dilations, i[4]
 * padding, i[5..8] the shape produced (the case's output shape). */
static em_tensor *conv_op(em_op op, em_tensor *const *in, conv_at a, em_shape s) {
    em_attrs at = {.i = {a.sh, a.sw, a.dh, a.dw, a.pad, s.dims[0], s.dims[1], s.dims[2], s.dims[3]}, .ni = 9};
    return em__apply(op, 2, in, &at);
}
/* backprop_input(filter = in[0], dy = in[1]) -> input of shape S */
#define BPI_CASE(NAME, SH, SW, DH, DW, PAD, ...)                                                                       \
    static em_tensor *f_##NAME(em_tensor *const *in) {                                                               \
        return conv_op(EM_OP_CONV2D_BACKPROP_INPUT, in, (conv_at){SH, SW, DH, DW, PAD}, EM_SHAPE(__VA_ARGS__));         \
    }                                                                                                                  \
    static void NAME##_ref(const fw_case *c, double *e) { conv_ref_(c, e, (conv_at){SH, SW, DH, DW, PAD}, -1, 0, 1); }
/* backprop_filter(input = in[0], dy = in[1]) -> filter of shape S */
#define BPF_CASE(NAME, SH, SW, DH, DW, PAD, ...)                                                                       \
    static em_tensor *f_##NAME(em_tensor *const *in) {                                                               \
        return conv_op(EM_OP_CONV2D_BACKPROP_FILTER, in, (conv_at){SH, SW, DH, DW, PAD}, EM_SHAPE(__VA_ARGS__));        \
    }                                                                                                                  \
    static void NAME##_ref(const fw_case *c, double *e) { conv_ref_(c, e, (conv_at){SH, SW, DH, DW, PAD}, 0, -1, 1); }
BPI_CASE(bpi_same_s2, 2, 2, 1, 1, EM_PAD_SAME, 1, 5, 5, 2)
BPI_CASE(bpi_valid, 1, 1, 1, 1, EM_PAD_VALID, 1, 4, 4, 2)
BPI_CASE(bpi_same_d2, 1, 1, 2, 2, EM_PAD_SAME, 2, 4, 3, 1)
BPI_CASE(bpi_same_c16, 1, 1, 1, 1, EM_PAD_SAME, 1, 4, 4, 16)
BPF_CASE(bpf_same_s2, 2, 2, 1, 1, EM_PAD_SAME, 3, 3, 2, 3)
BPF_CASE(bpf_valid, 1, 1, 1, 1, EM_PAD_VALID, 2, 2, 1, 2)
BPF_CASE(bpf_same_d2, 1, 1, 2, 2, EM_PAD_SAME, 2, 2, 1, 2)
BPF_CASE(bpf_same_o16, 1, 1, 1, 1, EM_PAD_SAME, 2, 2, 1, 16)

/* Reached through the tape: the gradients of conv2d(x = in[0], w = in[1]) given dy = in[2]. */
static em_tensor *conv_tape_(em_tensor *const *in, conv_at a, int wrt) {
    em_tape *tape = em_tape_begin(false);
    em_tensor *y = em_conv2d(in[0], in[1], (const int[]){a.sh, a.sw}, a.pad, (const int[]){a.dh, a.dw}), *g = NULL;
    int rc = y ? em_gradients_with(tape, y, in[2], 1, &in[wrt], &g) : -1;
    em_tape_release(tape);
    return rc ? NULL : g;
}
#define CONV_TAPE_CASE(NAME, WRT, SH, SW, DH, DW, PAD)                                                                 \
    static em_tensor *f_##NAME(em_tensor *const *in) { return conv_tape_(in, (conv_at){SH, SW, DH, DW, PAD}, WRT); }   \
    static void NAME##_ref(const fw_case *c, double *e) {                                                              \
        conv_ref_(c, e, (conv_at){SH, SW, DH, DW, PAD}, WRT == 0 ? -1 : 0, WRT == 1 ? -1 : 1, 2);                      \
    }
CONV_TAPE_CASE(bpi_tape_same_s2, 0, 2, 2, 1, 1, EM_PAD_SAME)
CONV_TAPE_CASE(bpf_tape_same_s2_d2, 1, 2, 2, 2, 2, EM_PAD_SAME)
CONV_TAPE_CASE(bpi_tape_valid_s2, 0, 2, 2, 1, 1, EM_PAD_VALID)
CONV_TAPE_CASE(bpf_tape_valid_s2, 1, 2, 2, 1, 1, EM_PAD_VALID)

/* ---- pooling: every window clipped to the input (SAME padding is never
 * pooled: max over, and average of, the window's elements in the input) ---- */

typedef enum { MAX_POOL, AVG_POOL, MAX_POOL_GRAD, AVG_POOL_GRAD } pool_kind;
typedef struct {
    int kh, kw, sh, sw;
    em_padding pad;
} pool_at;

/* x = in[0] (or, for avg_pool_grad, only its shape: the output's), dy = the last input. */
static void pool_ref_(const fw_case *c, double *e, pool_kind kind, pool_at a) {
    bool fwd = kind == MAX_POOL || kind == AVG_POOL;
    em_shape xs = kind == AVG_POOL_GRAD ? c->out_shape : c->in[0].shape;
    int64_t N = xs.dims[0], H = xs.dims[1], W = xs.dims[2], C = xs.dims[3], OH, OW, PH, PW;
    out_dim(H, a.kh, a.sh, 1, a.pad, &OH, &PH);
    out_dim(W, a.kw, a.sw, 1, a.pad, &OW, &PW);
    double *x = load(c, kind == AVG_POOL_GRAD ? -1 : 0, xs);
    const int kdy = c->nin - 1;
    if (!fwd) ck_assert(em_shape_equal(c->in[kdy].shape, EM_SHAPE(N, OH, OW, C)));
    if (!fwd) memset(e, 0, sizeof(double) * (size_t)em_shape_numel(xs));
    for (int64_t n = 0; n < N; n++)
        for (int64_t oy = 0; oy < OH; oy++)
            for (int64_t ox = 0; ox < OW; ox++)
                for (int64_t ch = 0; ch < C; ch++) {
                    int64_t y0 = oy * a.sh - PH, x0 = ox * a.sw - PW, y1 = y0 + a.kh, x1 = x0 + a.kw;
                    y0 = y0 < 0 ? 0 : y0, x0 = x0 < 0 ? 0 : x0, y1 = y1 > H ? H : y1, x1 = x1 > W ? W : x1;
                    int64_t out = ((n * OH + oy) * OW + ox) * C + ch, first = -1, count = (y1 - y0) * (x1 - x0);
                    double best = -INFINITY, sum = 0, dy = fwd ? 0 : in_at(c, kdy, out);
                    for (int64_t iy = y0; iy < y1; iy++)
                        for (int64_t ix = x0; ix < x1; ix++) {
                            int64_t at = ((n * H + iy) * W + ix) * C + ch;
                            if (first < 0 || x[at] > best) best = x[at], first = at; /* the first largest */
                            sum += x[at];
                            if (kind == AVG_POOL_GRAD) e[at] += dy / (double)count;
                        }
                    if (kind == MAX_POOL) e[out] = best;
                    if (kind == AVG_POOL) e[out] = sum / (double)count;
                    if (kind == MAX_POOL_GRAD) e[first] += dy;
                }
    free(x);
}

#define POOL_CASE(NAME, FN, KIND, KH, KW, SH, SW, PAD)                                                                 \
    static em_tensor *f_##NAME(em_tensor *const *in) { return FN(in[0], (const int[]){KH, KW}, (const int[]){SH, SW}, PAD); } \
    static void NAME##_ref(const fw_case *c, double *e) { pool_ref_(c, e, KIND, (pool_at){KH, KW, SH, SW, PAD}); }
POOL_CASE(max_pool_same, em_max_pool, MAX_POOL, 3, 3, 2, 2, EM_PAD_SAME)
POOL_CASE(max_pool_valid, em_max_pool, MAX_POOL, 2, 2, 2, 2, EM_PAD_VALID)
POOL_CASE(max_pool_same_2x2, em_max_pool, MAX_POOL, 2, 2, 2, 2, EM_PAD_SAME)
POOL_CASE(max_pool_valid_13, em_max_pool, MAX_POOL, 1, 3, 1, 2, EM_PAD_VALID)
POOL_CASE(avg_pool_same, em_avg_pool, AVG_POOL, 3, 3, 2, 2, EM_PAD_SAME)
POOL_CASE(avg_pool_valid, em_avg_pool, AVG_POOL, 2, 2, 1, 1, EM_PAD_VALID)
POOL_CASE(avg_pool_same_2x2, em_avg_pool, AVG_POOL, 2, 2, 2, 2, EM_PAD_SAME)

/* The pool gradients called as ops: i[0..1] strides, i[2..3] ksize, i[4]
 * padding, i[5..8] the input's shape (avg_pool_grad: the case's output's). */
static em_tensor *pool_op(em_op op, int n, em_tensor *const *in, pool_at a, em_shape s) {
    em_attrs at = {.i = {a.sh, a.sw, a.kh, a.kw, a.pad, s.dims[0], s.dims[1], s.dims[2], s.dims[3]}, .ni = 9};
    return em__apply(op, n, in, &at);
}
/* max_pool_grad(input = in[0], dy = in[1]) */
#define MPG_CASE(NAME, KH, KW, SH, SW, PAD)                                                                            \
    static em_tensor *f_##NAME(em_tensor *const *in) {                                                               \
        return pool_op(EM_OP_MAX_POOL_GRAD, 2, in, (pool_at){KH, KW, SH, SW, PAD}, em_tensor_shape(in[0]));            \
    }                                                                                                                  \
    static void NAME##_ref(const fw_case *c, double *e) { pool_ref_(c, e, MAX_POOL_GRAD, (pool_at){KH, KW, SH, SW, PAD}); }
/* avg_pool_grad(dy = in[0]) -> input of shape S */
#define APG_CASE(NAME, KH, KW, SH, SW, PAD, ...)                                                                       \
    static em_tensor *f_##NAME(em_tensor *const *in) {                                                               \
        return pool_op(EM_OP_AVG_POOL_GRAD, 1, in, (pool_at){KH, KW, SH, SW, PAD}, EM_SHAPE(__VA_ARGS__));              \
    }                                                                                                                  \
    static void NAME##_ref(const fw_case *c, double *e) { pool_ref_(c, e, AVG_POOL_GRAD, (pool_at){KH, KW, SH, SW, PAD}); }
/* overlapping windows (gradients add up), windows that tile the input (stored),
 * windows that miss the last row and column, windows clipped by SAME padding */
MPG_CASE(max_pool_grad_same, 3, 3, 2, 2, EM_PAD_SAME)
MPG_CASE(max_pool_grad_tiles, 2, 2, 2, 2, EM_PAD_VALID)
MPG_CASE(max_pool_grad_same_2x2, 2, 2, 2, 2, EM_PAD_SAME)
APG_CASE(avg_pool_grad_same, 3, 3, 2, 2, EM_PAD_SAME, 1, 5, 6, 2)
APG_CASE(avg_pool_grad_tiles, 2, 2, 2, 2, EM_PAD_SAME, 2, 5, 3, 2)

/* Reached through the tape: the gradient of the pool of x = in[0] given dy = in[1]. */
#define POOL_TAPE_CASE(NAME, FN, KIND, KH, KW, SH, SW, PAD)                                                            \
    static em_tensor *f_##NAME(em_tensor *const *in) {                                                               \
        em_tape *tape = em_tape_begin(false);                                                                          \
        em_tensor *y = FN(in[0], (const int[]){KH, KW}, (const int[]){SH, SW}, PAD), *g = NULL;                        \
        int rc = y ? em_gradients_with(tape, y, in[1], 1, in, &g) : -1;                                                \
        em_tape_release(tape);                                                                                         \
        return rc ? NULL : g;                                                                                          \
    }                                                                                                                  \
    static void NAME##_ref(const fw_case *c, double *e) { pool_ref_(c, e, KIND, (pool_at){KH, KW, SH, SW, PAD}); }
POOL_TAPE_CASE(max_pool_grad_tape_valid, em_max_pool, MAX_POOL_GRAD, 2, 2, 2, 2, EM_PAD_VALID)
POOL_TAPE_CASE(avg_pool_grad_tape_valid, em_avg_pool, AVG_POOL_GRAD, 2, 2, 1, 1, EM_PAD_VALID)

/* A row per float dtype: f_NAME, NAME_ref; float32 to 2e-6, float64 to 1e-12. */
#define IN(DT, S, X) {DT, S, X}
#define NN(DT, OPN, NAME, OS, NIN, ...)                                                                                \
    {OPN, DT, OPN " " #NAME " " #DT, f_##NAME, NIN, {__VA_ARGS__}, DT, OS, NULL, NAME##_ref, DT == EM_F32 ? 2e-6 : 1e-12}
#define NN1(DT, OPN, NAME, OS, S0, X0) NN(DT, OPN, NAME, OS, 1, IN(DT, S0, X0))
#define NN2(DT, OPN, NAME, OS, S0, X0, S1, X1) NN(DT, OPN, NAME, OS, 2, IN(DT, S0, X0), IN(DT, S1, X1))
#define NN3(DT, OPN, NAME, OS, S0, X0, S1, X1, S2, X2)                                                                 \
    NN(DT, OPN, NAME, OS, 3, IN(DT, S0, X0), IN(DT, S1, X1), IN(DT, S2, X2))
/* integer labels of dtype LDT */
#define NNL(DT, OPN, NAME, OS, LDT, S0, X0, S1, X1) NN(DT, OPN, NAME, OS, 2, IN(LDT, S0, X0), IN(DT, S1, X1))
#define FLOATS2(R, ...) R(EM_F32, __VA_ARGS__), R(EM_F64, __VA_ARGS__)
#define S4(a, b, c, d) EM_SHAPE(a, b, c, d)

const fw_case fw_cases_nn[] = {
    FLOATS2(NN1, "softmax", softmax_last, EM_SHAPE(3, 4), EM_SHAPE(3, 4), SMX),
    FLOATS2(NN1, "softmax", softmax_axis1, EM_SHAPE(2, 3, 2), EM_SHAPE(2, 3, 2), SMY),
    FLOATS2(NN1, "softmax", softmax_axis0, EM_SHAPE(3, 4), EM_SHAPE(3, 4), SMX),
    FLOATS2(NN1, "log_softmax", log_softmax_last, EM_SHAPE(3, 4), EM_SHAPE(3, 4), SMX),
    FLOATS2(NN1, "log_softmax", log_softmax_axis1, EM_SHAPE(2, 3, 2), EM_SHAPE(2, 3, 2), SMY),
    FLOATS2(NN1, "log_softmax", log_softmax_axis0, EM_SHAPE(3, 4), EM_SHAPE(3, 4), SMX),
    FLOATS2(NN2, "softmax_grad", softmax_grad_last, EM_SHAPE(2, 3), EM_SHAPE(2, 3), Y6, EM_SHAPE(2, 3), G12),
    FLOATS2(NN2, "softmax_grad", log_softmax_grad_axis1, EM_SHAPE(2, 3, 2), EM_SHAPE(2, 3, 2), LOGY12,
            EM_SHAPE(2, 3, 2), G12),
    FLOATS2(NN2, "softmax_grad", softmax_grad_axis0, EM_SHAPE(2, 3), EM_SHAPE(2, 3), Y6, EM_SHAPE(2, 3), G12),
    /* through the tape: the gradients of softmax and log_softmax (log_softmax's
     * gradient reads exp of its output, so it inherits that output's error) */
    FLOATS2(NN2, "softmax_grad", softmax_last_tape, EM_SHAPE(3, 4), EM_SHAPE(3, 4), SMX, EM_SHAPE(3, 4), G12),
    FLOATS2(NN2, "softmax_grad", log_softmax_last_tape, EM_SHAPE(3, 4), EM_SHAPE(3, 4), SMX, EM_SHAPE(3, 4), G12),
    FLOATS2(NN2, "softmax_grad", softmax_axis1_tape, EM_SHAPE(2, 3, 2), EM_SHAPE(2, 3, 2), SMY, EM_SHAPE(2, 3, 2), G12),
    FLOATS2(NN2, "softmax_grad", log_softmax_axis1_tape, EM_SHAPE(2, 3, 2), EM_SHAPE(2, 3, 2), SMY, EM_SHAPE(2, 3, 2),
            G12),
    FLOATS2(NN2, "softmax_grad", softmax_axis0_tape, EM_SHAPE(3, 4), EM_SHAPE(3, 4), SMX, EM_SHAPE(3, 4), G12),
    FLOATS2(NN2, "softmax_grad", log_softmax_axis0_tape, EM_SHAPE(3, 4), EM_SHAPE(3, 4), SMX, EM_SHAPE(3, 4), G12),
    FLOATS2(NN2, "sigmoid_xent", sigmoid_xent, EM_SHAPE(2, 4), EM_SHAPE(2, 4), SIG_Z, EM_SHAPE(2, 4), SIG_X),
    FLOATS2(NN2, "softmax_xent", softmax_xent, EM_SHAPE(3), EM_SHAPE(3, 3), XENT_Z, EM_SHAPE(3, 3), XENT_X),
    FLOATS2(NN2, "softmax_xent", softmax_xent_3d, EM_SHAPE(2, 1), EM_SHAPE(2, 1, 4), XENT_Z8, EM_SHAPE(2, 1, 4), SMY),
    FLOATS2(NNL, "sparse_softmax_xent", sparse_xent, EM_SHAPE(3), EM_I32, EM_SHAPE(3), V(2, 1, 0), EM_SHAPE(3, 3),
            XENT_X),
    FLOATS2(NNL, "sparse_softmax_xent", sparse_xent_2d, EM_SHAPE(2, 2), EM_I64, EM_SHAPE(2, 2), V(0, 2, 1, 1),
            EM_SHAPE(2, 2, 3), SMY),
    FLOATS2(NN2, "conv2d", conv_same, S4(1, 4, 4, 3), S4(1, 4, 4, 2), XA, S4(3, 3, 2, 3), XB),
    FLOATS2(NN2, "conv2d", conv_valid_s2, S4(2, 2, 2, 2), S4(2, 5, 5, 1), XA, S4(2, 2, 1, 2), XB),
    FLOATS2(NN2, "conv2d", conv_same_s2, S4(1, 3, 3, 2), S4(1, 5, 6, 2), XA, S4(3, 3, 2, 2), XB),
    FLOATS2(NN2, "conv2d", conv_same_s2_d2, S4(1, 3, 3, 1), S4(1, 6, 5, 2), XA, S4(2, 3, 2, 1), XB),
    FLOATS2(NN2, "conv2d", conv_1x1, S4(1, 3, 3, 2), S4(1, 3, 3, 4), XA, S4(1, 1, 4, 2), XB),
    FLOATS2(NN2, "conv2d", conv_valid_s12_d21, S4(1, 3, 2, 3), S4(1, 5, 5, 2), XA, S4(2, 2, 2, 3), XB),
    FLOATS2(NN2, "conv2d", conv_same_o16, S4(1, 4, 4, 16), S4(1, 4, 4, 1), XA, S4(2, 2, 1, 16), XB),
    FLOATS2(NN2, "conv2d_backprop_input", bpi_same_s2, S4(1, 5, 5, 2), S4(3, 3, 2, 3), XB, S4(1, 3, 3, 3), XA),
    FLOATS2(NN2, "conv2d_backprop_input", bpi_valid, S4(1, 4, 4, 2), S4(2, 2, 2, 2), XB, S4(1, 3, 3, 2), XA),
    FLOATS2(NN2, "conv2d_backprop_input", bpi_same_d2, S4(2, 4, 3, 1), S4(2, 2, 1, 2), XB, S4(2, 4, 3, 2), XA),
    FLOATS2(NN2, "conv2d_backprop_input", bpi_same_c16, S4(1, 4, 4, 16), S4(2, 2, 16, 1), XB, S4(1, 4, 4, 1), XA),
    FLOATS2(NN3, "conv2d_backprop_input", bpi_tape_same_s2, S4(1, 5, 6, 2), S4(1, 5, 6, 2), XA, S4(3, 3, 2, 2), XB,
            S4(1, 3, 3, 2), XB + 20),
    FLOATS2(NN3, "conv2d_backprop_input", bpi_tape_valid_s2, S4(2, 5, 5, 1), S4(2, 5, 5, 1), XA, S4(2, 2, 1, 2), XB,
            S4(2, 2, 2, 2), XB + 8),
    FLOATS2(NN2, "conv2d_backprop_filter", bpf_same_s2, S4(3, 3, 2, 3), S4(1, 5, 5, 2), XA, S4(1, 3, 3, 3), XB),
    FLOATS2(NN2, "conv2d_backprop_filter", bpf_valid, S4(2, 2, 1, 2), S4(2, 4, 4, 1), XA, S4(2, 3, 3, 2), XB),
    FLOATS2(NN2, "conv2d_backprop_filter", bpf_same_d2, S4(2, 2, 1, 2), S4(2, 4, 3, 1), XA, S4(2, 4, 3, 2), XB),
    FLOATS2(NN2, "conv2d_backprop_filter", bpf_same_o16, S4(2, 2, 1, 16), S4(1, 2, 2, 1), XA, S4(1, 2, 2, 16), XB),
    FLOATS2(NN3, "conv2d_backprop_filter", bpf_tape_same_s2_d2, S4(2, 3, 2, 1), S4(1, 6, 5, 2), XA, S4(2, 3, 2, 1), XB,
            S4(1, 3, 3, 1), XB + 12),
    FLOATS2(NN3, "conv2d_backprop_filter", bpf_tape_valid_s2, S4(2, 2, 1, 2), S4(2, 5, 5, 1), XA, S4(2, 2, 1, 2), XB,
            S4(2, 2, 2, 2), XB + 8),
    FLOATS2(NN1, "max_pool", max_pool_same, S4(1, 3, 3, 2), S4(1, 5, 6, 2), XA),
    FLOATS2(NN1, "max_pool", max_pool_valid, S4(2, 2, 2, 1), S4(2, 4, 4, 1), XA),
    FLOATS2(NN1, "max_pool", max_pool_same_2x2, S4(2, 3, 2, 2), S4(2, 5, 3, 2), XA),
    FLOATS2(NN1, "max_pool", max_pool_valid_13, S4(1, 4, 2, 3), S4(1, 4, 5, 3), XB),
    FLOATS2(NN1, "avg_pool", avg_pool_same, S4(1, 3, 3, 2), S4(1, 5, 6, 2), XA),
    FLOATS2(NN1, "avg_pool", avg_pool_valid, S4(2, 2, 3, 1), S4(2, 3, 4, 1), XA),
    FLOATS2(NN1, "avg_pool", avg_pool_same_2x2, S4(2, 3, 2, 2), S4(2, 5, 3, 2), XB),
    FLOATS2(NN2, "max_pool_grad", max_pool_grad_same, S4(1, 5, 6, 2), S4(1, 5, 6, 2), XA, S4(1, 3, 3, 2), XB),
    FLOATS2(NN2, "max_pool_grad", max_pool_grad_tiles, S4(1, 4, 4, 2), S4(1, 4, 4, 2), XA, S4(1, 2, 2, 2), XB),
    FLOATS2(NN2, "max_pool_grad", max_pool_grad_same_2x2, S4(2, 5, 3, 2), S4(2, 5, 3, 2), XB, S4(2, 3, 2, 2), XA),
    FLOATS2(NN2, "max_pool_grad", max_pool_grad_tape_valid, S4(1, 5, 5, 2), S4(1, 5, 5, 2), XA, S4(1, 2, 2, 2), XB),
    FLOATS2(NN1, "avg_pool_grad", avg_pool_grad_same, S4(1, 5, 6, 2), S4(1, 3, 3, 2), XB),
    FLOATS2(NN1, "avg_pool_grad", avg_pool_grad_tiles, S4(2, 5, 3, 2), S4(2, 3, 2, 2), XA),
    FLOATS2(NN2, "avg_pool_grad", avg_pool_grad_tape_valid, S4(2, 3, 4, 1), S4(2, 3, 4, 1), XA, S4(2, 2, 3, 1), XB),
    {.fn = NULL},
};
