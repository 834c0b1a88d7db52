/* The norm family's cases (ops/norm.c): gradient checks on small shapes
 * (run by test_gradcheck.c) and forward cases (run by test_ops.c on every
 * device). Layer norm's inputs are (x, gamma, beta), RMS norm's (x, gamma);
 * the backward ops' cases take dy after them. */
#include "common.h"

#include <stdlib.h>
#include <string.h>

#define EPS 1e-5

static em_tensor *layer_norm_last(em_tensor *const *in) { return em_layer_norm(in[0], in[1], in[2], -1, EPS); }
static em_tensor *layer_norm_pos(em_tensor *const *in) { return em_layer_norm(in[0], in[1], in[2], 2, EPS); }
static em_tensor *rms_norm_last(em_tensor *const *in) { return em_rms_norm(in[0], in[1], -1, EPS); }
/* The backward op itself on (x, gamma[, beta], dy), its forward buffer made from x. */
static em_tensor *norm_grad_op(em_tensor *const *in, bool layer) {
    em_tensor *beta = layer ? in[2] : NULL, *dy = in[layer ? 3 : 2];
    em_attrs a = {.i = {-1}, .ni = 1, .f = {EPS}};
    em_tensor *buf = layer ? em__apply(EM_OP_LAYER_NORM, 3, (em_tensor *[]){in[0], in[1], beta}, &a)
                           : em__apply(EM_OP_RMS_NORM, 2, in, &a);
    return em__apply(layer ? EM_OP_LAYER_NORM_GRAD : EM_OP_RMS_NORM_GRAD, 4, (em_tensor *[]){in[0], buf, in[1], dy},
                     &a);
}
static em_tensor *layer_norm_grad(em_tensor *const *in) { return norm_grad_op(in, true); }
static em_tensor *rms_norm_grad(em_tensor *const *in) { return norm_grad_op(in, false); }

/* beta does not reach the backward op: its gradient there is 0 (skip_mask). */
const gc_case gc_cases_norm[] = {
    {EM_OP_LAYER_NORM_Y, "layer_norm [3,5]", 3, {EM_SHAPE(3, 5), EM_SHAPE(5), EM_SHAPE(5)}, layer_norm_last, -2, 2, 0,
     NULL},
    {EM_OP_LAYER_NORM_Y, "layer_norm axis 2 [2,2,3]", 3, {EM_SHAPE(2, 2, 3), EM_SHAPE(3), EM_SHAPE(3)}, layer_norm_pos,
     -2, 2, 0, NULL},
    {EM_OP_RMS_NORM_Y, "rms_norm [3,5]", 2, {EM_SHAPE(3, 5), EM_SHAPE(5)}, rms_norm_last, -2, 2, 0, NULL},
    {EM_OP_LAYER_NORM_GRAD, "layer_norm_grad [3,4]", 4, {EM_SHAPE(3, 4), EM_SHAPE(4), EM_SHAPE(4), EM_SHAPE(3, 4)},
     layer_norm_grad, -2, 2, 1u << 2, NULL},
    {EM_OP_RMS_NORM_GRAD, "rms_norm_grad [3,4]", 3, {EM_SHAPE(3, 4), EM_SHAPE(4), EM_SHAPE(3, 4)}, rms_norm_grad, -2,
     2, 0, NULL},
    {.fn = NULL},
};

/* ---- forward cases ----
 * The references are the textbook formulas in float64, by plain loops, from
 * the inputs as their dtype holds them. */

/* Row r's mean (0 for RMS norm) and reciprocal std, two-pass. */
static void row_stats(const double *x, int64_t n, bool layer, double *mean, double *rstd) {
    double m = 0, v = 0;
    if (layer) {
        for (int64_t j = 0; j < n; j++) m += x[j];
        m /= (double)n;
    }
    for (int64_t j = 0; j < n; j++) v += (x[j] - m) * (x[j] - m);
    *mean = m;
    *rstd = 1 / sqrt(v / (double)n + EPS);
}

/* The shape of x (input 0) and its rows. */
static void rows_of(const fw_case *c, int64_t *rows, int64_t *n) {
    em_shape s = c->in[0].shape;
    *n = s.dims[s.ndim - 1];
    *rows = em_shape_numel(s) / *n;
}

/* y, then (all = true: the forward buffer) the means (layer norm) and rstds. */
static void norm_fwd_ref(const fw_case *c, double *e, bool layer, bool all) {
    int64_t rows, n;
    rows_of(c, &rows, &n);
    double *x = fw_load(c, 0, c->in[0].shape);
    for (int64_t r = 0; r < rows; r++) {
        double m, rs;
        row_stats(x + r * n, n, layer, &m, &rs);
        for (int64_t j = 0; j < n; j++)
            e[r * n + j] = (x[r * n + j] - m) * rs * fw_held_in(c, 1, j) + (layer ? fw_held_in(c, 2, j) : 0);
        if (all && layer) e[rows * n + r] = m;
        if (all) e[rows * n + (layer ? rows : 0) + r] = rs;
    }
    free(x);
}
static void layer_norm_ref(const fw_case *c, double *e) { norm_fwd_ref(c, e, true, true); }
static void layer_norm_y_ref(const fw_case *c, double *e) { norm_fwd_ref(c, e, true, false); }
static void rms_norm_ref(const fw_case *c, double *e) { norm_fwd_ref(c, e, false, true); }
static void rms_norm_y_ref(const fw_case *c, double *e) { norm_fwd_ref(c, e, false, false); }

/* [dgamma | dbeta | dx] (dx only: all = false): dx = r (gy - mean(gy) -
 * xh mean(gy xh)) with xh = (x - m) r, gy = dy gamma; dgamma = sum of dy xh,
 * dbeta = sum of dy over the rows. */
static void norm_bwd_ref(const fw_case *c, double *e, bool layer, bool all) {
    int64_t rows, n;
    rows_of(c, &rows, &n);
    const int dy_at = layer ? 3 : 2;
    const int64_t params = all ? (layer ? 2 : 1) * n : 0;
    double *x = fw_load(c, 0, c->in[0].shape), *dy = fw_load(c, dy_at, c->in[0].shape), *dx = e + params;
    memset(e, 0, sizeof(double) * (size_t)params);
    for (int64_t r = 0; r < rows; r++) {
        double m, rs, a = 0, b = 0;
        row_stats(x + r * n, n, layer, &m, &rs);
        for (int64_t j = 0; j < n; j++) {
            double xh = (x[r * n + j] - m) * rs, gy = dy[r * n + j] * fw_held_in(c, 1, j);
            a += gy / (double)n;
            b += gy * xh / (double)n;
        }
        for (int64_t j = 0; j < n; j++) {
            double xh = (x[r * n + j] - m) * rs, gy = dy[r * n + j] * fw_held_in(c, 1, j);
            dx[r * n + j] = rs * (gy - (layer ? a : 0) - xh * b);
            if (all) e[j] += dy[r * n + j] * xh;
            if (all && layer) e[n + j] += dy[r * n + j];
        }
    }
    free(x);
    free(dy);
}
static void layer_norm_grad_ref(const fw_case *c, double *e) { norm_bwd_ref(c, e, true, true); }
static void rms_norm_grad_ref(const fw_case *c, double *e) { norm_bwd_ref(c, e, false, true); }
static void layer_norm_tape_ref(const fw_case *c, double *e) { norm_bwd_ref(c, e, true, false); }

/* The forward buffer as the op writes it. */
static em_tensor *f_layer_norm(em_tensor *const *in) {
    return em__apply(EM_OP_LAYER_NORM, 3, in, &(em_attrs){.i = {-1}, .ni = 1, .f = {EPS}});
}
static em_tensor *f_rms_norm(em_tensor *const *in) {
    return em__apply(EM_OP_RMS_NORM, 2, in, &(em_attrs){.i = {-1}, .ni = 1, .f = {EPS}});
}
#define f_layer_norm_y layer_norm_last
#define f_rms_norm_y rms_norm_last
#define f_layer_norm_grad layer_norm_grad
#define f_rms_norm_grad rms_norm_grad
/* dx through the tape: y's gradient rule and the fused backward op */
static em_tensor *f_layer_norm_tape(em_tensor *const *in) {
    em_tape *tape = em_tape_begin(false);
    em_tensor *y = em_layer_norm(in[0], in[1], in[2], -1, EPS), *dx = NULL;
    int rc = y ? em_gradients_with(tape, y, in[3], 1, in, &dx) : -1;
    em_tape_release(tape);
    return rc ? NULL : dx;
}

/* x [3,5]: an ordinary row, a row far from 0 (a one-pass variance loses it
 * in float32), a constant row (variance 0: y = beta). */
static const double X15[15] = {0.5, -1.25, 2, 0.3, -0.7, 100.25, 99.5, 101, 100.75, 99.25, 3, 3, 3, 3, 3};
static const double G5[5] = {1.5, -0.5, 0.25, 2, 1}, B5[5] = {0.1, -0.2, 0, 0.3, -1};
static const double DY15[15] = {0.3, -1.1, 0.8, 2.0, -0.5, 0.25, 1.5, -0.7, 0.9, 0.0, -2.2, 0.6, 1, -1, 0.5};

/* A row per float dtype: f_NAME, NAME_ref; [2,32]: rows longer than a vector,
 * x from fw_ints_a, gamma, beta and dy from fw_ints_b. */
#define IN(DT, S, X) {DT, S, X}
#define NORM(DT, OPN, NAME, OS, NIN, ...)                                                                              \
    {OPN, DT, OPN " " #NAME " " #DT, f_##NAME, NIN, {__VA_ARGS__}, DT, OS, NULL, NAME##_ref,                         \
     DT == EM_F32 ? 2e-5 : 1e-10}
#define LN(DT, OPN, NAME, OS, SX, X, SG, G, B, DY)                                                                     \
    NORM(DT, OPN, NAME, OS, 4, IN(DT, SX, X), IN(DT, SG, G), IN(DT, SG, B), IN(DT, SX, DY))
#define RMS(DT, OPN, NAME, OS, SX, X, SG, G, DY)                                                                       \
    NORM(DT, OPN, NAME, OS, 3, IN(DT, SX, X), IN(DT, SG, G), IN(DT, SX, DY))
#define FLOATS2(R, ...) R(EM_F32, __VA_ARGS__), R(EM_F64, __VA_ARGS__)
#define SMALL EM_SHAPE(3, 5), X15, EM_SHAPE(5), G5
#define WIDE EM_SHAPE(2, 32), fw_ints_a, EM_SHAPE(32), fw_ints_b + 32

const fw_case fw_cases_norm[] = {
    FLOATS2(LN, "layer_norm", layer_norm, EM_SHAPE(21), SMALL, B5, DY15),
    FLOATS2(LN, "layer_norm", layer_norm, EM_SHAPE(68), WIDE, fw_ints_b, fw_ints_b),
    FLOATS2(LN, "layer_norm_y", layer_norm_y, EM_SHAPE(3, 5), SMALL, B5, DY15),
    FLOATS2(LN, "layer_norm_y", layer_norm_y, EM_SHAPE(2, 32), WIDE, fw_ints_b, fw_ints_b),
    FLOATS2(LN, "layer_norm_grad", layer_norm_grad, EM_SHAPE(25), SMALL, B5, DY15),
    FLOATS2(LN, "layer_norm_grad", layer_norm_grad, EM_SHAPE(128), WIDE, fw_ints_b, fw_ints_b),
    FLOATS2(LN, "layer_norm_grad", layer_norm_tape, EM_SHAPE(3, 5), SMALL, B5, DY15),
    FLOATS2(RMS, "rms_norm", rms_norm, EM_SHAPE(18), SMALL, DY15),
    FLOATS2(RMS, "rms_norm", rms_norm, EM_SHAPE(66), WIDE, fw_ints_b),
    FLOATS2(RMS, "rms_norm_y", rms_norm_y, EM_SHAPE(3, 5), SMALL, DY15),
    FLOATS2(RMS, "rms_norm_grad", rms_norm_grad, EM_SHAPE(20), SMALL, DY15),
    FLOATS2(RMS, "rms_norm_grad", rms_norm_grad, EM_SHAPE(96), WIDE, fw_ints_b),
    {.fn = NULL},
};
