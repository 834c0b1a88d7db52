/* Gradient-check cases of the shape ops (test/test_gradcheck.c runs them). */
#include "common.h"

static em_tensor *reshape_(em_tensor *const *in) { return em_reshape(in[0], EM_SHAPE(3, -1)); }
static em_tensor *reshape_strided(em_tensor *const *in) {
    return em_reshape(em_transpose(in[0], EM_ALL_AXES), EM_SHAPE(6));
}
static em_tensor *transpose_(em_tensor *const *in) { return em_transpose(in[0], EM_AXES(2, 0, 1)); }
static em_tensor *slice_(em_tensor *const *in) { return em_slice(in[0], (int64_t[]){1, 2}, (int64_t[]){2, -1}); }
static em_tensor *broadcast_(em_tensor *const *in) { return em_broadcast_to(in[0], EM_SHAPE(2, 3, 4)); }
static em_tensor *concat_(em_tensor *const *in) { return em_concat(3, in, 1); }
static em_tensor *gather_(em_tensor *const *in) { return em_gather(in[0], in[1], 0); }
static em_tensor *gather_axis1(em_tensor *const *in) { return em_gather(in[0], in[1], -2); }
static em_tensor *gather_grad_(em_tensor *const *in) {
    em_attrs a = {.ni = 2, .i = {0, 5}};
    return em__apply(EM_OP_GATHER_GRAD, 2, in, &a);
}
static em_tensor *pad_(em_tensor *const *in) { return em_pad(in[0], (int64_t[]){1, 0, 2, 1}, 0.5); }
static em_tensor *tile_(em_tensor *const *in) { return em_tile(in[0], (int64_t[]){2, 1, 3}); }
static em_tensor *split_(em_tensor *const *in) {
    em_tensor *p[2];
    return em_split(in[0], 2, 1, p) ? NULL : em_mul(p[0], p[1]);
}
static em_tensor *squeeze_(em_tensor *const *in) { return em_squeeze(em_expand_dims(in[0], 1), EM_ALL_AXES); }

/* Integer indices with a repeat, for gather and gather_grad. */
static em_tensor *rows_3(int i) { return i == 1 ? em_tensor_from(EM_I32, EM_SHAPE(3), (int32_t[]){2, 0, 2}) : NULL; }
static em_tensor *rows_2x2(int i) {
    return i == 1 ? em_tensor_from(EM_I64, EM_SHAPE(2, 2), (int64_t[]){1, 1, 0, 2}) : NULL;
}

const gc_case gc_cases_shape[] = {
    {EM_OP_RESHAPE, "reshape [2,3] -> [3,-1]", 1, {EM_SHAPE(2, 3)}, reshape_, -1, 1, 0, NULL},
    {EM_OP_RESHAPE, "reshape of a transpose [2,3]", 1, {EM_SHAPE(2, 3)}, reshape_strided, -1, 1, 0, NULL},
    {EM_OP_TRANSPOSE, "transpose (2,0,1) [2,3,4]", 1, {EM_SHAPE(2, 3, 4)}, transpose_, -1, 1, 0, NULL},
    {EM_OP_SLICE, "slice [4,5] begin (1,2) size (2,-1)", 1, {EM_SHAPE(4, 5)}, slice_, -1, 1, 0, NULL},
    {EM_OP_SLICE, "split [2,4] into 2", 1, {EM_SHAPE(2, 4)}, split_, -1, 1, 0, NULL},
    {EM_OP_BROADCAST_TO, "broadcast_to [3,1] -> [2,3,4]", 1, {EM_SHAPE(3, 1)}, broadcast_, -1, 1, 0, NULL},
    {EM_OP_RESHAPE, "squeeze(expand_dims) [2,3]", 1, {EM_SHAPE(2, 3)}, squeeze_, -1, 1, 0, NULL},
    {EM_OP_CONCAT, "concat axis 1 [2,1]+[2,3]+[2,2]", 3, {EM_SHAPE(2, 1), EM_SHAPE(2, 3), EM_SHAPE(2, 2)}, concat_, -1,
     1, 0, NULL},
    {EM_OP_GATHER, "gather axis 0 [4,2] by [3]", 2, {EM_SHAPE(4, 2), EM_SHAPE(3)}, gather_, -1, 1, 2u, rows_3},
    {EM_OP_GATHER, "gather axis -2 [2,3,2] by [2,2]", 2, {EM_SHAPE(2, 3, 2), EM_SHAPE(2, 2)}, gather_axis1, -1, 1, 2u,
     rows_2x2},
    {EM_OP_GATHER_GRAD, "gather_grad [3,2] into [5,2]", 2, {EM_SHAPE(3, 2), EM_SHAPE(3)}, gather_grad_, -1, 1, 2u,
     rows_3},
    {EM_OP_PAD, "pad [2,3] by (1,0,2,1)", 1, {EM_SHAPE(2, 3)}, pad_, -1, 1, 0, NULL},
    {EM_OP_TILE, "tile [2,3,2] by (2,1,3)", 1, {EM_SHAPE(2, 3, 2)}, tile_, -1, 1, 0, NULL},
    {.fn = NULL},
};

const fw_case fw_cases_shape[] = {
    {.fn = NULL},
};
