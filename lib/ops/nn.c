/* SKELETON: rows to be filled in by the nn family's implementation. */
#include "../internal.h"

const em_op_def em_ops_nn[] = {
    [EM_OP_SOFTMAX - EM_OPS_NN_BEGIN] = {.name = "softmax"},
    [EM_OP_LOG_SOFTMAX - EM_OPS_NN_BEGIN] = {.name = "log_softmax"},
    [EM_OP_SIGMOID_XENT - EM_OPS_NN_BEGIN] = {.name = "sigmoid_xent"},
    [EM_OP_SOFTMAX_XENT - EM_OPS_NN_BEGIN] = {.name = "softmax_xent"},
    [EM_OP_SPARSE_SOFTMAX_XENT - EM_OPS_NN_BEGIN] = {.name = "sparse_softmax_xent"},
    [EM_OP_CONV2D - EM_OPS_NN_BEGIN] = {.name = "conv2d"},
    [EM_OP_CONV2D_BACKPROP_INPUT - EM_OPS_NN_BEGIN] = {.name = "conv2d_backprop_input"},
    [EM_OP_CONV2D_BACKPROP_FILTER - EM_OPS_NN_BEGIN] = {.name = "conv2d_backprop_filter"},
    [EM_OP_MAX_POOL - EM_OPS_NN_BEGIN] = {.name = "max_pool"},
    [EM_OP_MAX_POOL_GRAD - EM_OPS_NN_BEGIN] = {.name = "max_pool_grad"},
    [EM_OP_AVG_POOL - EM_OPS_NN_BEGIN] = {.name = "avg_pool"},
    [EM_OP_AVG_POOL_GRAD - EM_OPS_NN_BEGIN] = {.name = "avg_pool_grad"},
};
EM_OP_TABLE_CHECK(nn, EM_OPS_NN_BEGIN, EM_OPS_NN_END);
