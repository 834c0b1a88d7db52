/* The depthwise family's cases (ops/depthwise.c): gradient checks, and forward cases against PyTorch's grouped
 * convolution (printed by tools/ref_nn.py; inputs from fw_ints_a and fw_ints_b). */
#include "common.h"

static const double DEPTHWISE[16] = {-8, -1, 1, -5, 10, 5, -13, -24, -34, -17, 10, 18, 14, 11, 11, 4};
static const double DEPTHWISE_DX[18] = {5, 4, -24, 3, -8, -4, -4, -15, -58, -8, 12, 15, -12, 10, -4, 22, 17, 7};
static const double DEPTHWISE_DF[16] = {12, -9, 6, -5, 20, 17, -4, 8, -18, -9, 2, -9, -2, 19, 10, -5};
static const double DEPTHWISE_SAME[8] = {-35, -1, -39, -14, -37, 3, -11, -3};

static em_tensor *dw_valid(em_tensor *const *in) { return em_depthwise_conv2d(in[0], in[1], NULL, EM_PAD_VALID, NULL); }
static em_tensor *dw_same_s2(em_tensor *const *in) {
    return em_depthwise_conv2d(in[0], in[1], (int[]){2, 2}, EM_PAD_SAME, NULL);
}
static em_tensor *dw_dilated(em_tensor *const *in) {
    return em_depthwise_conv2d(in[0], in[1], (int[]){1, 2}, EM_PAD_SAME, (int[]){2, 1});
}
/* The gradient ops themselves, at the VALID case's geometry: (filter, dy) and (input, dy). */
static em_tensor *dw_bpi(em_tensor *const *in) {
    em_attrs a = {.i = {1, 1, 1, 1, EM_PAD_VALID, 1, 3, 3, 2}, .ni = 9};
    return em__apply(EM_OP_DEPTHWISE_BACKPROP_INPUT, 2, in, &a);
}
static em_tensor *dw_bpf(em_tensor *const *in) {
    em_attrs a = {.i = {1, 1, 1, 1, EM_PAD_VALID, 2, 2, 2, 2}, .ni = 9};
    return em__apply(EM_OP_DEPTHWISE_BACKPROP_FILTER, 2, in, &a);
}

const gc_case gc_cases_depthwise[] = {
    {EM_OP_DEPTHWISE_CONV2D, "depthwise VALID [1,3,3,2] * [2,2,2,2]", 2, {EM_SHAPE(1, 3, 3, 2), EM_SHAPE(2, 2, 2, 2)},
     dw_valid, -1, 1, 0, NULL},
    {EM_OP_DEPTHWISE_CONV2D, "depthwise SAME stride 2 [2,4,4,2] * [3,3,2,1]", 2,
     {EM_SHAPE(2, 4, 4, 2), EM_SHAPE(3, 3, 2, 1)}, dw_same_s2, -1, 1, 0, NULL},
    {EM_OP_DEPTHWISE_CONV2D, "depthwise SAME dilated [1,5,4,3] * [2,3,3,2]", 2,
     {EM_SHAPE(1, 5, 4, 3), EM_SHAPE(2, 3, 3, 2)}, dw_dilated, -1, 1, 0, NULL},
    {EM_OP_DEPTHWISE_BACKPROP_INPUT, "depthwise_backprop_input [2,2,2,2], [1,2,2,4]", 2,
     {EM_SHAPE(2, 2, 2, 2), EM_SHAPE(1, 2, 2, 4)}, dw_bpi, -1, 1, 0, NULL},
    {EM_OP_DEPTHWISE_BACKPROP_FILTER, "depthwise_backprop_filter [1,3,3,2], [1,2,2,4]", 2,
     {EM_SHAPE(1, 3, 3, 2), EM_SHAPE(1, 2, 2, 4)}, dw_bpf, -1, 1, 0, NULL},
    {.fn = NULL},
};

#define f_dw_valid dw_valid
#define f_dw_same_s2 dw_same_s2
#define f_dw_bpi dw_bpi
#define f_dw_bpf dw_bpf
#define DW_ROWS(DT, TOL)                                                                                               \
    {"depthwise_conv2d", DT, "depthwise VALID " #DT, f_dw_valid, 2,                                                    \
     {{DT, EM_SHAPE(1, 3, 3, 2), fw_ints_a}, {DT, EM_SHAPE(2, 2, 2, 2), fw_ints_b}}, DT, EM_SHAPE(1, 2, 2, 4),         \
     DEPTHWISE, NULL, TOL},                                                                                            \
        {"depthwise_conv2d", DT, "depthwise SAME stride 2 " #DT, f_dw_same_s2, 2,                                      \
         {{DT, EM_SHAPE(1, 4, 4, 2), fw_ints_a + 8}, {DT, EM_SHAPE(3, 3, 2, 1), fw_ints_b + 40}}, DT,                  \
         EM_SHAPE(1, 2, 2, 2), DEPTHWISE_SAME, NULL, TOL},                                                             \
        {"depthwise_backprop_input", DT, "depthwise dx " #DT, f_dw_bpi, 2,                                             \
         {{DT, EM_SHAPE(2, 2, 2, 2), fw_ints_b}, {DT, EM_SHAPE(1, 2, 2, 4), fw_ints_b + 32}}, DT, EM_SHAPE(1, 3, 3, 2), \
         DEPTHWISE_DX, NULL, TOL},                                                                                     \
        {"depthwise_backprop_filter", DT, "depthwise dfilter " #DT, f_dw_bpf, 2,                                       \
         {{DT, EM_SHAPE(1, 3, 3, 2), fw_ints_a}, {DT, EM_SHAPE(1, 2, 2, 4), fw_ints_b + 32}}, DT, EM_SHAPE(2, 2, 2, 2), \
         DEPTHWISE_DF, NULL, TOL}

const fw_case fw_cases_depthwise[] = {
    DW_ROWS(EM_F32, 0),
    DW_ROWS(EM_F64, 0),
    {.fn = NULL},
};
