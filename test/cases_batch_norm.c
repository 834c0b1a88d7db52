/* The batch_norm family's cases (ops/batch_norm.c), and the gradient checks of the neural-network layers that
 * TensorFlow builds from other ops (conv1d, conv2d_transpose, the separable convolution,
 * l2_normalize, the smoothed and weighted cross entropies; lib/ops/nn.c), each filed under the op that carries
 * its gradient. Expected values: PyTorch's, printed by tools/ref_nn.py (the arrays below are its output). */
#include "common.h"

static const double BN_Y[24] = {0.82817260066519838, 2.2676248706346622, -0.82693152841308271, -2.1720399815649305, -7.6563452013303959, -4.5352497412693245, -3.8038850307001804, -0.49769715075788667, -0.86873095973392056, 2.2676248706346622, -3.8038850307001804, -2.5069085477263395, -5.9594416409312778, -3.4014373059519931, 3.142339807969714, -0.16282858459647787, -2.5656345201330395, 0, 2.1500219738740149, -0.83256571691929548, 4.2219797214634358, 3.4014373059519931, 3.142339807969714, 0.17203998156493094};
static const double BN_STATS[12] = {-0.33333333333333331, -1, -0.83333333333333337, 0.5, 0.42422589009977973, 0.37793747843911035, 0.33077261136523312, 0.33486856616140881, 5.5555555555555562, 7, 9.1388888888888875, 8.9166666666666661};
static const double BN_GRADS[32] = {11.736916292760572, 7.5587495687822068, 1.9846356681913981, 2.8463828123719748, 5, 5, 0, 3, 5.85473973632197, 2.1328014379248099, -1.8941606593082638, 0.68849392768755702, -0.6796063300496672, 1.9703655183957012, -3.5530862955203792, 0.75737523892690328, -6.3123122635067181, -0.13482343270985242, 4.3854563772452142, -1.2675200182964834, 3.002927867783427, -0.83709291664277452, -1.3361228678516093, 0.36930922178108194, -1.5103286593442176, -3.590406045171548, 1.7494006450952491, 1.1454412560727245, -0.35542035120479248, 0.45915543820366461, 0.64851280033978886, -1.6930996261717834};

/* training-mode batch norm, no variables: x, scale, offset */
static em_tensor *bn_y(em_tensor *const *in) {
    em_tensor *y, *mean, *var;
    return em__batch_norm_train(in[0], in[1], in[2], 1e-3, &y, &mean, &var) ? NULL : y;
}
/* the backward op itself on (x, scale, offset, dy), its forward buffer made from x: its own gradient rule */
static em_tensor *bn_grad_op(em_tensor *const *in) {
    em_attrs a = {.f = {1e-3}};
    em_tensor *buf = em__apply(EM_OP_BATCH_NORM, 3, in, &a);
    return em__apply(EM_OP_BATCH_NORM_GRAD, 4, (em_tensor *[]){in[0], buf, in[1], in[3]}, &a);
}
static em_tensor *conv1d_same(em_tensor *const *in) { return em_conv1d(in[0], in[1], 2, EM_PAD_SAME, 1); }
static em_tensor *conv2d_transpose_valid(em_tensor *const *in) {
    return em_conv2d_transpose(in[0], in[1], EM_SHAPE(1, 5, 5, 1), (int[]){2, 2}, EM_PAD_VALID);
}
static em_tensor *separable_valid(em_tensor *const *in) {
    return em_separable_conv2d(in[0], in[1], in[2], NULL, EM_PAD_VALID, NULL);
}
static em_tensor *l2_rows(em_tensor *const *in) { return em_l2_normalize(in[0], 1, (int[]){-1}, 1e-12); }
static em_tensor *xent_smoothed(em_tensor *const *in) { return em_softmax_cross_entropy_smoothed(in[0], in[1], 0.1); }
static em_tensor *xent_weighted(em_tensor *const *in) { return em_weighted_cross_entropy_with_logits(in[0], in[1], 3); }

const gc_case gc_cases_batch_norm[] = {
    {EM_OP_BATCH_NORM_Y, "batch_norm training [2,3,4]", 3, {EM_SHAPE(2, 3, 4), EM_SHAPE(4), EM_SHAPE(4)}, bn_y, -2, 2, 0,
     NULL},
    {EM_OP_BATCH_NORM_Y, "batch_norm training [5,3]", 3, {EM_SHAPE(5, 3), EM_SHAPE(3), EM_SHAPE(3)}, bn_y, -1, 1, 0, NULL},
    /* offset does not reach the backward op: its gradient there is 0 (skip_mask) */
    {EM_OP_BATCH_NORM_GRAD, "batch_norm_grad [2,3,4]", 4, {EM_SHAPE(2, 3, 4), EM_SHAPE(4), EM_SHAPE(4), EM_SHAPE(2, 3, 4)},
     bn_grad_op, -2, 2, 1u << 2, NULL},
    {EM_OP_CONV2D, "conv1d SAME stride 2 [2,5,3] * [3,3,2]", 2, {EM_SHAPE(2, 5, 3), EM_SHAPE(3, 3, 2)}, conv1d_same, -1,
     1, 0, NULL},
    {EM_OP_CONV2D_BACKPROP_INPUT, "conv2d_transpose VALID stride 2 [1,2,2,2] * [3,3,1,2]", 2,
     {EM_SHAPE(1, 2, 2, 2), EM_SHAPE(3, 3, 1, 2)}, conv2d_transpose_valid, -1, 1, 0, NULL},
    {EM_OP_CONV2D, "separable_conv2d [1,3,3,2] * [2,2,2,2] * [1,1,4,3]", 3,
     {EM_SHAPE(1, 3, 3, 2), EM_SHAPE(2, 2, 2, 2), EM_SHAPE(1, 1, 4, 3)}, separable_valid, -1, 1, 0, NULL},
    {EM_OP_RSQRT, "l2_normalize last axis [3,4]", 1, {EM_SHAPE(3, 4)}, l2_rows, -2, 2, 0, NULL},
    {EM_OP_SOFTMAX_XENT, "softmax_cross_entropy_smoothed 0.1 [3,4]", 2, {EM_SHAPE(3, 4), EM_SHAPE(3, 4)}, xent_smoothed,
     0.1, 0.9, 0, NULL},
    {EM_OP_MUL, "weighted_cross_entropy_with_logits pos_weight 3 [2,3]", 2, {EM_SHAPE(2, 3), EM_SHAPE(2, 3)},
     xent_weighted, 0.1, 0.9, 0, NULL},
    {.fn = NULL},
};

/* ---- forward cases: x = fw_ints_a[:24] as [2,3,4], scale fw_ints_b[0:4], offset fw_ints_b[4:8], dy
 * fw_ints_b[8:32] ---- */
static em_tensor *f_buffer(em_tensor *const *in) {
    return em__apply(EM_OP_BATCH_NORM, 3, in, &(em_attrs){.f = {1e-3}});
}
/* dscale, doffset and dx through the tape, as the backward op's buffer lays them out */
static em_tensor *f_grads(em_tensor *const *in) {
    em_tape *tape = em_tape_begin(false);
    em_tensor *y = bn_y(in), *g[3] = {NULL};
    int rc = y ? em_gradients_with(tape, y, in[3], 3, in, g) : -1;
    em_tape_release(tape);
    return rc ? NULL : em_concat(3, (em_tensor *[]){g[1], g[2], em_reshape(g[0], EM_SHAPE(-1))}, 0);
}
static void buffer_ref(const fw_case *c, double *e) {
    (void)c;
    memcpy(e, BN_Y, sizeof BN_Y);
    memcpy(e + 24, BN_STATS, sizeof BN_STATS);
}
#define BN_IN(DT) {DT, EM_SHAPE(2, 3, 4), fw_ints_a}, {DT, EM_SHAPE(4), fw_ints_b}, {DT, EM_SHAPE(4), fw_ints_b + 4}
#define BN_ROWS(DT, TOL)                                                                                               \
    {"batch_norm", DT, "batch_norm buffer " #DT, f_buffer, 3, {BN_IN(DT)}, DT, EM_SHAPE(36), NULL, buffer_ref, TOL},   \
        {"batch_norm_y", DT, "batch_norm y " #DT, bn_y, 3, {BN_IN(DT)}, DT, EM_SHAPE(2, 3, 4), BN_Y, NULL, TOL},       \
        {"batch_norm_grad", DT, "batch_norm gradients " #DT, f_grads, 4,                                               \
         {BN_IN(DT), {DT, EM_SHAPE(2, 3, 4), fw_ints_b + 8}}, DT, EM_SHAPE(32), BN_GRADS, NULL, TOL}

const fw_case fw_cases_batch_norm[] = {
    BN_ROWS(EM_F32, 1e-5),
    BN_ROWS(EM_F64, 1e-12),
    {.fn = NULL},
};
