/* SKELETON: rows to be filled in by the reduce family's implementation. */
#include "../internal.h"

const em_op_def em_ops_reduce[] = {
    [EM_OP_SUM - EM_OPS_REDUCE_BEGIN] = {.name = "sum"},
    [EM_OP_MAX - EM_OPS_REDUCE_BEGIN] = {.name = "max"},
    [EM_OP_MIN - EM_OPS_REDUCE_BEGIN] = {.name = "min"},
    [EM_OP_PROD - EM_OPS_REDUCE_BEGIN] = {.name = "prod"},
    [EM_OP_LOG_SUM_EXP - EM_OPS_REDUCE_BEGIN] = {.name = "log_sum_exp"},
    [EM_OP_ARGMAX - EM_OPS_REDUCE_BEGIN] = {.name = "argmax"},
    [EM_OP_ARGMIN - EM_OPS_REDUCE_BEGIN] = {.name = "argmin"},
};
EM_OP_TABLE_CHECK(reduce, EM_OPS_REDUCE_BEGIN, EM_OPS_REDUCE_END);
