/* Gradient-check cases of the reductions (test/test_gradcheck.c runs them). */
#include "common.h"

static em_tensor *sum_02(em_tensor *const *in) { return em_sum(in[0], EM_AXES(0, 2), false); }
static em_tensor *sum_all_keep(em_tensor *const *in) { return em_sum(in[0], EM_ALL_AXES, true); }
static em_tensor *mean_neg(em_tensor *const *in) { return em_mean(in[0], EM_AXES(-1), true); }
static em_tensor *max_1(em_tensor *const *in) { return em_max(in[0], EM_AXES(1), false); }
static em_tensor *max_all(em_tensor *const *in) { return em_max(in[0], EM_ALL_AXES, false); }
static em_tensor *min_0(em_tensor *const *in) { return em_min(in[0], EM_AXES(0), true); }
static em_tensor *prod_1(em_tensor *const *in) { return em_prod(in[0], EM_AXES(1), false); }
static em_tensor *prod_all(em_tensor *const *in) { return em_prod(in[0], EM_ALL_AXES, false); }
static em_tensor *lse_last(em_tensor *const *in) { return em_log_sum_exp(in[0], EM_AXES(-1), false); }
static em_tensor *lse_02(em_tensor *const *in) { return em_log_sum_exp(in[0], EM_AXES(0, 2), true); }

const gc_case gc_cases_reduce[] = {
    {EM_OP_SUM, "sum axes (0,2) of [2,3,4]", 1, {EM_SHAPE(2, 3, 4)}, sum_02, -1, 1, 0, NULL},
    {EM_OP_SUM, "sum all keepdims [3,4]", 1, {EM_SHAPE(3, 4)}, sum_all_keep, -1, 1, 0, NULL},
    {EM_OP_SUM, "mean axis -1 keepdims [3,4]", 1, {EM_SHAPE(3, 4)}, mean_neg, -1, 1, 0, NULL},
    {EM_OP_MAX, "max axis 1 [3,5]", 1, {EM_SHAPE(3, 5)}, max_1, -1, 1, 0, NULL},
    {EM_OP_MAX, "max all [2,3,2]", 1, {EM_SHAPE(2, 3, 2)}, max_all, -1, 1, 0, NULL},
    {EM_OP_MIN, "min axis 0 keepdims [4,3]", 1, {EM_SHAPE(4, 3)}, min_0, -1, 1, 0, NULL},
    {EM_OP_PROD, "prod axis 1 [3,4]", 1, {EM_SHAPE(3, 4)}, prod_1, 0.5, 1.5, 0, NULL},
    {EM_OP_PROD, "prod all [2,3]", 1, {EM_SHAPE(2, 3)}, prod_all, -1.5, -0.5, 0, NULL},
    {EM_OP_LOG_SUM_EXP, "log_sum_exp axis -1 [3,4]", 1, {EM_SHAPE(3, 4)}, lse_last, -2, 2, 0, NULL},
    {EM_OP_LOG_SUM_EXP, "log_sum_exp axes (0,2) keepdims [2,3,4]", 1, {EM_SHAPE(2, 3, 4)}, lse_02, -2, 2, 0, NULL},
    {.fn = NULL},
};

const fw_case fw_cases_reduce[] = {
    {.fn = NULL},
};
