/* SKELETON: rows to be filled in by the shape family's implementation. */
#include "../internal.h"

const em_op_def em_ops_shape[] = {
    [EM_OP_RESHAPE - EM_OPS_SHAPE_BEGIN] = {.name = "reshape"},
    [EM_OP_TRANSPOSE - EM_OPS_SHAPE_BEGIN] = {.name = "transpose"},
    [EM_OP_SLICE - EM_OPS_SHAPE_BEGIN] = {.name = "slice"},
    [EM_OP_BROADCAST_TO - EM_OPS_SHAPE_BEGIN] = {.name = "broadcast_to"},
    [EM_OP_STOP_GRADIENT - EM_OPS_SHAPE_BEGIN] = {.name = "stop_gradient"},
    [EM_OP_CONCAT - EM_OPS_SHAPE_BEGIN] = {.name = "concat"},
    [EM_OP_GATHER - EM_OPS_SHAPE_BEGIN] = {.name = "gather"},
    [EM_OP_GATHER_GRAD - EM_OPS_SHAPE_BEGIN] = {.name = "gather_grad"},
    [EM_OP_ONE_HOT - EM_OPS_SHAPE_BEGIN] = {.name = "one_hot"},
    [EM_OP_PAD - EM_OPS_SHAPE_BEGIN] = {.name = "pad"},
    [EM_OP_TILE - EM_OPS_SHAPE_BEGIN] = {.name = "tile"},
};
EM_OP_TABLE_CHECK(shape, EM_OPS_SHAPE_BEGIN, EM_OPS_SHAPE_END);
