/* Gradient-check cases for ops/nn.c (small shapes; conv backprops are
 * checked as ops of their own, which second derivatives rely on). */
#include "common.h"

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

const fw_case fw_cases_nn[] = {
    {.fn = NULL},
};
