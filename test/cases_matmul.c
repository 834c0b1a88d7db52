/* Gradient-check cases for ops/matmul.c: every transpose combination and
 * batch broadcasting on either side. */
#include "common.h"

static em_tensor *mm(em_tensor *const *in) { return em_matmul(in[0], in[1]); }
static em_tensor *mm_ta(em_tensor *const *in) { return em_matmul_t(in[0], in[1], true, false); }
static em_tensor *mm_tb(em_tensor *const *in) { return em_matmul_t(in[0], in[1], false, true); }
static em_tensor *mm_tatb(em_tensor *const *in) { return em_matmul_t(in[0], in[1], true, true); }

const gc_case gc_cases_matmul[] = {
    {EM_OP_MATMUL, "matmul [3,4]x[4,2]", 2, {EM_SHAPE(3, 4), EM_SHAPE(4, 2)}, mm, -1, 1, 0, NULL},
    {EM_OP_MATMUL, "matmul transpose_a [4,3]x[4,2]", 2, {EM_SHAPE(4, 3), EM_SHAPE(4, 2)}, mm_ta, -1, 1, 0, NULL},
    {EM_OP_MATMUL, "matmul transpose_b [3,4]x[2,4]", 2, {EM_SHAPE(3, 4), EM_SHAPE(2, 4)}, mm_tb, -1, 1, 0, NULL},
    {EM_OP_MATMUL, "matmul both transposed [4,3]x[2,4]", 2, {EM_SHAPE(4, 3), EM_SHAPE(2, 4)}, mm_tatb, -1, 1, 0, NULL},
    {EM_OP_MATMUL, "matmul batch broadcast [2,1,2,3]x[3,3,2]", 2, {EM_SHAPE(2, 1, 2, 3), EM_SHAPE(3, 3, 2)}, mm, -1, 1,
     0, NULL},
    {EM_OP_MATMUL, "matmul batch x matrix, transposed [2,3,2]x[4,3]", 2, {EM_SHAPE(2, 3, 2), EM_SHAPE(4, 3)}, mm_tatb,
     -1, 1, 0, NULL},
    {.fn = NULL},
};

const fw_case fw_cases_matmul[] = {
    {.fn = NULL},
};
