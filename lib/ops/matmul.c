/* SKELETON: rows to be filled in by the matmul family's implementation. */
#include "../internal.h"

const em_op_def em_ops_matmul[] = {
    [EM_OP_MATMUL - EM_OPS_MATMUL_BEGIN] = {.name = "matmul"},
};
EM_OP_TABLE_CHECK(matmul, EM_OPS_MATMUL_BEGIN, EM_OPS_MATMUL_END);
