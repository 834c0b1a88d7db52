/* The conv family's cases (ops/conv.c): gradient checks on small shapes
 * (run by test_gradcheck.c; the backprops are checked as ops of their own,
 * which second derivatives rely on) and forward cases (run by test_ops.c on
 * every device). */
#include "common.h"

#include <stdlib.h>
#include <string.h>

static const int S2[] = {2, 2}, D2[] = {2, 2};
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

const gc_case gc_cases_conv[] = {
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
    {.fn = NULL},
};

/* ---- forward cases ----
 * Every expected value is computed by a ref below, in float64 from the
 * case's input values as its dtype holds them, by the loops of a direct
 * convolution and TensorFlow's padding rule, independently of the kernels.
 * Inputs are small integers (fw_ints_a, fw_ints_b), so float32 sums are exact. */

/* ---- convolution: a direct loop over every output pixel, tap and channel pair ---- */

typedef struct {
    int sh, sw, dh, dw;
    em_padding pad;
} conv_at;

/* y = conv(x, w) over input x [N,H,W,C] and filter w [KH,KW,C,O]. Each of x,
 * w and y comes from an input (its index) or is the output (-1): the forward
 * op computes y, backprop_input x (from w and y = dy), backprop_filter w. */
static void conv_ref_(const fw_case *c, double *e, conv_at a, int kx, int kw, int ky) {
    em_shape xs = kx >= 0 ? c->in[kx].shape : c->out_shape, ws = kw >= 0 ? c->in[kw].shape : c->out_shape;
    int64_t N = xs.dims[0], H = xs.dims[1], W = xs.dims[2], C = xs.dims[3];
    int64_t KH = ws.dims[0], KW = ws.dims[1], O = ws.dims[3], OH, OW, PH, PW;
    fw_out_dim(H, KH, a.sh, a.dh, a.pad, &OH, &PH);
    fw_out_dim(W, KW, a.sw, a.dw, a.pad, &OW, &PW);
    em_shape ys = EM_SHAPE(N, OH, OW, O);
    if (ky >= 0) ck_assert(em_shape_equal(ys, c->in[ky].shape));
    double *x = fw_load(c, kx, xs), *w = fw_load(c, kw, ws), *y = fw_load(c, ky, ys);
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

/* conv2d_bias_relu(x = in[0], w = in[1], bias = in[2]): relu(conv + bias), the graph's fused op. */
#define BIAS_RELU_CASE(NAME, SH, SW, DH, DW, PAD)                                                                      \
    static em_tensor *f_##NAME(em_tensor *const *in) {                                                               \
        em_attrs a = {.i = {SH, SW, DH, DW, PAD}, .ni = 5};                                                             \
        return em__apply(EM_OP_CONV2D_BIAS_RELU, 3, in, &a);                                                          \
    }                                                                                                                  \
    static void NAME##_ref(const fw_case *c, double *e) {                                                              \
        conv_ref_(c, e, (conv_at){SH, SW, DH, DW, PAD}, 0, 1, -1);                                                     \
        int64_t o = c->out_shape.dims[3], n = em_shape_numel(c->out_shape);                                           \
        for (int64_t i = 0; i < n; i++) {                                                                              \
            e[i] += fw_held_in(c, 2, i % o);                                                                           \
            if (e[i] < 0) e[i] = 0;                                                                                    \
        }                                                                                                              \
    }
BIAS_RELU_CASE(bias_relu_same_s2, 2, 2, 1, 1, EM_PAD_SAME)
/* 16 channels, stride 1: float32 takes the epilogue in the direct kernel's registers */
BIAS_RELU_CASE(bias_relu_same_o16, 1, 1, 1, 1, EM_PAD_SAME)

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

/* A row per float dtype: f_NAME, NAME_ref; float32 to 2e-6, float64 to 1e-12. */
#define IN(DT, S, X) {DT, S, X}
#define NN(DT, OPN, NAME, OS, NIN, ...)                                                                                \
    {OPN, DT, OPN " " #NAME " " #DT, f_##NAME, NIN, {__VA_ARGS__}, DT, OS, NULL, NAME##_ref, DT == EM_F32 ? 2e-6 : 1e-12}
#define NN2(DT, OPN, NAME, OS, S0, X0, S1, X1) NN(DT, OPN, NAME, OS, 2, IN(DT, S0, X0), IN(DT, S1, X1))
#define NN3(DT, OPN, NAME, OS, S0, X0, S1, X1, S2, X2)                                                                 \
    NN(DT, OPN, NAME, OS, 3, IN(DT, S0, X0), IN(DT, S1, X1), IN(DT, S2, X2))
#define FLOATS2(R, ...) R(EM_F32, __VA_ARGS__), R(EM_F64, __VA_ARGS__)
#define S4(a, b, c, d) EM_SHAPE(a, b, c, d)

const fw_case fw_cases_conv[] = {
    FLOATS2(NN2, "conv2d", conv_same, S4(1, 4, 4, 3), S4(1, 4, 4, 2), fw_ints_a, S4(3, 3, 2, 3), fw_ints_b),
    FLOATS2(NN2, "conv2d", conv_valid_s2, S4(2, 2, 2, 2), S4(2, 5, 5, 1), fw_ints_a, S4(2, 2, 1, 2), fw_ints_b),
    FLOATS2(NN2, "conv2d", conv_same_s2, S4(1, 3, 3, 2), S4(1, 5, 6, 2), fw_ints_a, S4(3, 3, 2, 2), fw_ints_b),
    FLOATS2(NN2, "conv2d", conv_same_s2_d2, S4(1, 3, 3, 1), S4(1, 6, 5, 2), fw_ints_a, S4(2, 3, 2, 1), fw_ints_b),
    FLOATS2(NN2, "conv2d", conv_1x1, S4(1, 3, 3, 2), S4(1, 3, 3, 4), fw_ints_a, S4(1, 1, 4, 2), fw_ints_b),
    FLOATS2(NN2, "conv2d", conv_valid_s12_d21, S4(1, 3, 2, 3), S4(1, 5, 5, 2), fw_ints_a, S4(2, 2, 2, 3), fw_ints_b),
    FLOATS2(NN2, "conv2d", conv_same_o16, S4(1, 4, 4, 16), S4(1, 4, 4, 1), fw_ints_a, S4(2, 2, 1, 16), fw_ints_b),
    FLOATS2(NN3, "conv2d_bias_relu", bias_relu_same_s2, S4(1, 3, 3, 3), S4(1, 5, 6, 2), fw_ints_a, S4(3, 3, 2, 3), fw_ints_b,
            EM_SHAPE(3), fw_ints_b + 4),
    FLOATS2(NN3, "conv2d_bias_relu", bias_relu_same_o16, S4(1, 4, 4, 16), S4(1, 4, 4, 1), fw_ints_a, S4(2, 2, 1, 16),
            fw_ints_b, EM_SHAPE(16), fw_ints_a + 20),
    FLOATS2(NN2, "conv2d_backprop_input", bpi_same_s2, S4(1, 5, 5, 2), S4(3, 3, 2, 3), fw_ints_b, S4(1, 3, 3, 3), fw_ints_a),
    FLOATS2(NN2, "conv2d_backprop_input", bpi_valid, S4(1, 4, 4, 2), S4(2, 2, 2, 2), fw_ints_b, S4(1, 3, 3, 2), fw_ints_a),
    FLOATS2(NN2, "conv2d_backprop_input", bpi_same_d2, S4(2, 4, 3, 1), S4(2, 2, 1, 2), fw_ints_b, S4(2, 4, 3, 2), fw_ints_a),
    FLOATS2(NN2, "conv2d_backprop_input", bpi_same_c16, S4(1, 4, 4, 16), S4(2, 2, 16, 1), fw_ints_b, S4(1, 4, 4, 1), fw_ints_a),
    FLOATS2(NN3, "conv2d_backprop_input", bpi_tape_same_s2, S4(1, 5, 6, 2), S4(1, 5, 6, 2), fw_ints_a, S4(3, 3, 2, 2), fw_ints_b,
            S4(1, 3, 3, 2), fw_ints_b + 20),
    FLOATS2(NN3, "conv2d_backprop_input", bpi_tape_valid_s2, S4(2, 5, 5, 1), S4(2, 5, 5, 1), fw_ints_a, S4(2, 2, 1, 2), fw_ints_b,
            S4(2, 2, 2, 2), fw_ints_b + 8),
    FLOATS2(NN2, "conv2d_backprop_filter", bpf_same_s2, S4(3, 3, 2, 3), S4(1, 5, 5, 2), fw_ints_a, S4(1, 3, 3, 3), fw_ints_b),
    FLOATS2(NN2, "conv2d_backprop_filter", bpf_valid, S4(2, 2, 1, 2), S4(2, 4, 4, 1), fw_ints_a, S4(2, 3, 3, 2), fw_ints_b),
    FLOATS2(NN2, "conv2d_backprop_filter", bpf_same_d2, S4(2, 2, 1, 2), S4(2, 4, 3, 1), fw_ints_a, S4(2, 4, 3, 2), fw_ints_b),
    FLOATS2(NN2, "conv2d_backprop_filter", bpf_same_o16, S4(2, 2, 1, 16), S4(1, 2, 2, 1), fw_ints_a, S4(1, 2, 2, 16), fw_ints_b),
    FLOATS2(NN3, "conv2d_backprop_filter", bpf_tape_same_s2_d2, S4(2, 3, 2, 1), S4(1, 6, 5, 2), fw_ints_a, S4(2, 3, 2, 1), fw_ints_b,
            S4(1, 3, 3, 1), fw_ints_b + 12),
    FLOATS2(NN3, "conv2d_backprop_filter", bpf_tape_valid_s2, S4(2, 2, 1, 2), S4(2, 5, 5, 1), fw_ints_a, S4(2, 2, 1, 2), fw_ints_b,
            S4(2, 2, 2, 2), fw_ints_b + 8),
    {.fn = NULL},
};
