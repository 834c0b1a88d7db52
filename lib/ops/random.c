/* SKELETON: rows to be filled in by the random family's implementation. */
#include "../internal.h"

const em_op_def em_ops_random[] = {
    [EM_OP_RANDOM_NORMAL - EM_OPS_RANDOM_BEGIN] = {.name = "random_normal"},
    [EM_OP_RANDOM_UNIFORM - EM_OPS_RANDOM_BEGIN] = {.name = "random_uniform"},
    [EM_OP_TRUNCATED_NORMAL - EM_OPS_RANDOM_BEGIN] = {.name = "truncated_normal"},
};
EM_OP_TABLE_CHECK(random, EM_OPS_RANDOM_BEGIN, EM_OPS_RANDOM_END);
