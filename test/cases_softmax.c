/* The softmax family's cases (ops/softmax.c): gradient checks on small
 * shapes (run by test_gradcheck.c) and forward cases (run by test_ops.c on
 * every device). */
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
/* ignore_index -100 (PyTorch's default); a vocabulary of 5 padded to 8 columns, sliced away before the loss */
#define IGNORE (-100)
static em_tensor *sparse_xent_ignore(em_tensor *const *in) {
    return em_sparse_softmax_cross_entropy_ignore(in[0], in[1], IGNORE);
}
static em_tensor *sparse_xent_padded(em_tensor *const *in) {
    return em_sparse_softmax_cross_entropy_ignore(in[0], em_slice(in[1], (int64_t[]){0, 0}, (int64_t[]){-1, 5}), IGNORE);
}
static em_tensor *labels_ignored_3(int i) {
    return i == 0 ? em_tensor_from(EM_I64, EM_SHAPE(3), (int64_t[]){2, IGNORE, 3}) : NULL;
}
static em_tensor *labels_padded_3(int i) {
    return i == 0 ? em_tensor_from(EM_I32, EM_SHAPE(3), (int32_t[]){4, IGNORE, 0}) : NULL;
}

const gc_case gc_cases_softmax[] = {
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
    {EM_OP_SPARSE_SOFTMAX_XENT, "sparse_softmax_xent ignore_index int64 [3] x [3,4]", 2, {EM_SHAPE(3), EM_SHAPE(3, 4)},
     sparse_xent_ignore, -2, 2, 1, labels_ignored_3},
    {EM_OP_SPARSE_SOFTMAX_XENT, "sparse_softmax_xent ignore_index, 5 of 8 columns", 2, {EM_SHAPE(3), EM_SHAPE(3, 8)},
     sparse_xent_padded, -2, 2, 1, labels_padded_3},
    {.fn = NULL},
};

/* ---- forward cases ----
 * Every expected value is computed by a ref below, in float64 from the
 * case's input values as its dtype holds them, by the textbook formula,
 * independently of the kernels. */

/* softmax rows: ordinary, with -inf, with large values (exp(1000) overflows float64) */
static const double SMX[12] = {0.5, -1.25, 2, 0.3, -INFINITY, 1, -INFINITY, 3, 1000, 1001, 999.5, -1000};
static const double SMY[12] = {0.1, -0.4, 1.2, 0.7, -2.0, 0.05, 3.0, -1.0, 0.25, 0.5, -0.75, 2.5};
static const double G12[12] = {0.3, -1.1, 0.8, 2.0, -0.5, 0.25, 1.5, -0.7, 0.9, 0.0, -2.2, 0.6};

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
    double *x = fw_load(c, 0, c->in[0].shape);
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
    double *y = fw_load(c, 0, c->in[0].shape), *g = fw_load(c, 1, c->in[1].shape);
    softmax_grad_of(y, g, c->in[0].shape, axis, log_form, e);
    free(y);
    free(g);
}
/* the gradient of (log_)softmax(x = in[0]) given g = in[1], through the tape:
 * softmax_grad(softmax(x), g), or for log_softmax g - softmax(x) sum(g) */
static void softmax_tape_ref_(const fw_case *c, double *e, int axis, bool log_form) {
    double *x = fw_load(c, 0, c->in[0].shape), *g = fw_load(c, 1, c->in[1].shape);
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
        double z = fw_held_in(c, 0, i), x = fw_held_in(c, 1, i);
        e[i] = fmax(x, 0) - x * z + log1p(exp(-fabs(x)));
    }
}
static em_tensor *f_sigmoid_xent(em_tensor *const *in) { return em_sigmoid_cross_entropy_with_logits(in[0], in[1]); }
static const double SIG_Z[8] = {0, 1, 0.25, 0.5, 1, 0, 0.75, 0.1}, SIG_X[8] = {0.5, -2, 3, 50, -50, 0, -0.3, 100};

/* log(sum(exp(x))) of row r (len classes) of input k */
static double lse_row(const fw_case *c, int k, int64_t r, int64_t len) {
    double m = -INFINITY, sum = 0;
    for (int64_t j = 0; j < len; j++) m = fmax(m, fw_held_in(c, k, r * len + j));
    for (int64_t j = 0; j < len; j++) sum += exp(fw_held_in(c, k, r * len + j) - m);
    return m + log(sum);
}
/* sum_j z_j (lse - x_j) over the last axis; a class with z_j = 0 adds nothing (even at x_j = -inf) */
static void softmax_xent_ref(const fw_case *c, double *e) {
    int64_t len = c->in[1].shape.dims[c->in[1].shape.ndim - 1];
    for (int64_t r = 0; r < em_shape_numel(c->out_shape); r++) {
        double lse = lse_row(c, 1, r, len), loss = 0;
        for (int64_t j = 0; j < len; j++) {
            double z = fw_held_in(c, 0, r * len + j);
            if (z != 0) loss += z * (lse - fw_held_in(c, 1, r * len + j));
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
        e[r] = lse_row(c, 1, r, len) - fw_held_in(c, 1, r * len + (int64_t)c->in[0].v[r]);
}
#define sparse_xent_2d_ref sparse_xent_ref
static em_tensor *f_sparse_xent(em_tensor *const *in) {
    return em_sparse_softmax_cross_entropy_with_logits(in[0], in[1]);
}
#define f_sparse_xent_2d f_sparse_xent
/* lse - x[label] over the first `cols` of each row of `stride` logits; 0 where the label is IGNORE */
static void sparse_xent_cols_ref(const fw_case *c, double *e, int64_t cols, int64_t stride) {
    for (int64_t r = 0; r < em_shape_numel(c->out_shape); r++) {
        int64_t label = (int64_t)c->in[0].v[r];
        double m = -INFINITY, sum = 0;
        for (int64_t j = 0; j < cols; j++) m = fmax(m, fw_held_in(c, 1, r * stride + j));
        for (int64_t j = 0; j < cols; j++) sum += exp(fw_held_in(c, 1, r * stride + j) - m);
        e[r] = label == IGNORE ? 0 : m + log(sum) - fw_held_in(c, 1, r * stride + label);
    }
}
static void sparse_xent_ignore_ref(const fw_case *c, double *e) {
    int64_t len = c->in[1].shape.dims[c->in[1].shape.ndim - 1];
    sparse_xent_cols_ref(c, e, len, len);
}
static void sparse_xent_padded_ref(const fw_case *c, double *e) { sparse_xent_cols_ref(c, e, 5, 8); }
#define f_sparse_xent_ignore sparse_xent_ignore
#define f_sparse_xent_padded sparse_xent_padded
/* 3 rows of 8: 5 real columns, then padding whose values would dominate the loss if they counted */
static const double PAD_X[24] = {0.5, -1.25, 2, 0.3, -1, 40, 41, 42,     1000, 999, -3, 0.25, 998, 40, 41, 42,
                                 -0.7, 0.1, 1.5, -INFINITY, 2.5, 40, 41, 42};

/* A row per float dtype: f_NAME, NAME_ref; float32 to 2e-6, float64 to 1e-12; bfloat16 and float16, computed
 * in float32 from their inputs and rounded once, to one unit in their last place (2^-7, 2^-10 relative). */
#define IN(DT, S, X) {DT, S, X}
#define NN_TOL(DT) ((DT) == EM_F32 ? 2e-6 : (DT) == EM_BF16 ? 8e-3 : (DT) == EM_F16 ? 1e-3 : 1e-12)
#define NN(DT, OPN, NAME, OS, NIN, ...)                                                                                \
    {OPN, DT, OPN " " #NAME " " #DT, f_##NAME, NIN, {__VA_ARGS__}, DT, OS, NULL, NAME##_ref, NN_TOL(DT)}
#define NN1(DT, OPN, NAME, OS, S0, X0) NN(DT, OPN, NAME, OS, 1, IN(DT, S0, X0))
#define NN2(DT, OPN, NAME, OS, S0, X0, S1, X1) NN(DT, OPN, NAME, OS, 2, IN(DT, S0, X0), IN(DT, S1, X1))
/* integer labels of dtype LDT */
#define NNL(DT, OPN, NAME, OS, LDT, S0, X0, S1, X1) NN(DT, OPN, NAME, OS, 2, IN(LDT, S0, X0), IN(DT, S1, X1))
#define FLOATS2(R, ...) R(EM_F32, __VA_ARGS__), R(EM_F64, __VA_ARGS__)
#define FLOATS4(R, ...) FLOATS2(R, __VA_ARGS__), R(EM_BF16, __VA_ARGS__), R(EM_F16, __VA_ARGS__)

const fw_case fw_cases_softmax[] = {
    FLOATS4(NN1, "softmax", softmax_last, EM_SHAPE(3, 4), EM_SHAPE(3, 4), SMX),
    FLOATS4(NN1, "softmax", softmax_axis1, EM_SHAPE(2, 3, 2), EM_SHAPE(2, 3, 2), SMY),
    FLOATS4(NN1, "softmax", softmax_axis0, EM_SHAPE(3, 4), EM_SHAPE(3, 4), SMX),
    FLOATS4(NN1, "log_softmax", log_softmax_last, EM_SHAPE(3, 4), EM_SHAPE(3, 4), SMX),
    FLOATS4(NN1, "log_softmax", log_softmax_axis1, EM_SHAPE(2, 3, 2), EM_SHAPE(2, 3, 2), SMY),
    FLOATS4(NN1, "log_softmax", log_softmax_axis0, EM_SHAPE(3, 4), EM_SHAPE(3, 4), SMX),
    FLOATS4(NN2, "softmax_grad", softmax_grad_last, EM_SHAPE(2, 3), EM_SHAPE(2, 3), Y6, EM_SHAPE(2, 3), G12),
    FLOATS4(NN2, "softmax_grad", log_softmax_grad_axis1, EM_SHAPE(2, 3, 2), EM_SHAPE(2, 3, 2), LOGY12,
            EM_SHAPE(2, 3, 2), G12),
    FLOATS4(NN2, "softmax_grad", softmax_grad_axis0, EM_SHAPE(2, 3), EM_SHAPE(2, 3), Y6, EM_SHAPE(2, 3), G12),
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
    /* ignore_index: ignored rows (one with -inf, one past float64's exp range) give 0 */
    FLOATS2(NNL, "sparse_softmax_xent", sparse_xent_ignore, EM_SHAPE(4), EM_I32, EM_SHAPE(4), V(2, IGNORE, 1, IGNORE),
            EM_SHAPE(4, 3), SMX),
    FLOATS2(NNL, "sparse_softmax_xent", sparse_xent_ignore, EM_SHAPE(2, 2), EM_I64, EM_SHAPE(2, 2), V(IGNORE, 2, 0, 1),
            EM_SHAPE(2, 2, 3), SMY),
    /* a padded vocabulary: the loss over the 5 real columns of 8 */
    FLOATS2(NNL, "sparse_softmax_xent", sparse_xent_padded, EM_SHAPE(3), EM_I64, EM_SHAPE(3), V(4, IGNORE, 0),
            EM_SHAPE(3, 8), PAD_X),
    {.fn = NULL},
};
