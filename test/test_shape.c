/* Shape ops: reshape, transpose, slice, broadcast_to and stop_gradient as
 * views; concat, gather, one_hot, pad, tile; expand_dims, squeeze, split. */
#include "common.h"

#include <stdlib.h>
#include <string.h>

static void teardown(void) { em_shutdown(); }

static em_tensor *iota(em_dtype dtype, em_shape shape) {
    return em_reshape(em_arange(dtype, 0, (double)em_shape_numel(shape), 1), shape);
}

#define T(...) ((double[]){__VA_ARGS__})

START_TEST(test_reshape) {
    em_tensor *x = iota(EM_F32, EM_SHAPE(2, 3));
    em_tensor *y = em_reshape(x, EM_SHAPE(3, -1));
    ck_assert_tensor(y, EM_F32, EM_SHAPE(3, 2), T(0, 1, 2, 3, 4, 5), 0);
    ck_assert_ptr_eq(em_data(y), em_data(x)); /* a view: no copy */
    ck_assert_tensor(em_reshape(x, EM_SHAPE(-1)), EM_F32, EM_SHAPE(6), T(0, 1, 2, 3, 4, 5), 0);
    ck_assert_tensor(em_reshape(em_reshape(x, EM_SHAPE(6, 1, 1)), EM_SHAPE(1, 6)), EM_F32, EM_SHAPE(1, 6),
                     T(0, 1, 2, 3, 4, 5), 0);
    ck_assert_tensor(em_reshape(em_scalar(EM_I32, 4), EM_SHAPE(1, 1)), EM_I32, EM_SHAPE(1, 1), T(4), 0);
}
END_TEST

/* Empty tensors with huge other dims: nothing to compute, and nothing is
 * looped over (the fuzzer found concat spinning over 2^40 empty rows). */
START_TEST(test_empty_with_huge_dims) {
    em_tensor *e = em_broadcast_to(em_zeros(EM_F32, EM_SHAPE(1, 0)), EM_SHAPE(1LL << 40, 0));
    em_tensor *c = em_concat(2, (em_tensor *[]){e, e}, 1);
    ck_assert_int_eq(em_numel(c), 0);
    ck_assert_int_eq(em_dim(c, 0), 1LL << 40);
    ck_assert_int_eq(em_numel(em_tile(e, (int64_t[]){1, 3})), 0);
}
END_TEST

START_TEST(test_reshape_errors) {
    em_tensor *x = iota(EM_F32, EM_SHAPE(2, 3));
    ck_assert_error(em_reshape(x, EM_SHAPE(4, 2)), "reshape: cannot reshape [2,3] (6 elements) into [4,2]");
    ck_assert_error(em_reshape(x, EM_SHAPE(4, -1)), "reshape: cannot reshape [2,3] (6 elements) into [4,-1]");
    ck_assert_error(em_reshape(x, EM_SHAPE(-1, -1)), "reshape: invalid dimension -1 in target shape [-1,-1]");
    ck_assert_error(em_reshape(x, EM_SHAPE(-2, 3)), "reshape: invalid dimension -2");
    ck_assert_error(em_reshape(NULL, EM_SHAPE(2)), "reshape");
    /* -1 next to a zero dimension is ambiguous */
    ck_assert_error(em_reshape(em_zeros(EM_F32, EM_SHAPE(0, 3)), EM_SHAPE(0, -1)), "cannot reshape [0,3]");
    ck_assert_tensor(em_reshape(em_zeros(EM_F32, EM_SHAPE(0, 3)), EM_SHAPE(3, 0)), EM_F32, EM_SHAPE(3, 0), NULL, 0);
}
END_TEST

START_TEST(test_transpose_views_and_reshape_copies) {
    em_tensor *x = iota(EM_F64, EM_SHAPE(2, 3));
    em_tensor *t = em_transpose(x, EM_ALL_AXES);
    ck_assert_tensor(t, EM_F64, EM_SHAPE(3, 2), T(0, 3, 1, 4, 2, 5), 0);
    /* reshape of a transpose copies, in the transpose's row-major order */
    em_tensor *r = em_reshape(t, EM_SHAPE(6));
    ck_assert_tensor(r, EM_F64, EM_SHAPE(6), T(0, 3, 1, 4, 2, 5), 0);
    ck_assert_ptr_ne(em_data(r), em_data(x));

    em_tensor *y = iota(EM_I32, EM_SHAPE(2, 3, 4));
    ck_assert_tensor(em_transpose(y, EM_AXES(2, 0, 1)), EM_I32, EM_SHAPE(4, 2, 3),
                     T(0, 4, 8, 12, 16, 20, 1, 5, 9, 13, 17, 21, 2, 6, 10, 14, 18, 22, 3, 7, 11, 15, 19, 23), 0);
    ck_assert_tensor(em_transpose(y, EM_AXES(1, 0, -1)), EM_I32, EM_SHAPE(3, 2, 4),
                     T(0, 1, 2, 3, 12, 13, 14, 15, 4, 5, 6, 7, 16, 17, 18, 19, 8, 9, 10, 11, 20, 21, 22, 23), 0);
    /* transposing twice gives the values back */
    ck_assert_tensor(em_transpose(em_transpose(y, EM_AXES(2, 0, 1)), EM_AXES(1, 2, 0)), EM_I32, EM_SHAPE(2, 3, 4),
                     T(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23), 0);
    ck_assert_error(em_transpose(y, EM_AXES(0, 0, 1)), "transpose: perm [0,0,1] is not a permutation of the 3 axes of input [2,3,4]");
    ck_assert_error(em_transpose(y, EM_AXES(1, 0)), "transpose: perm [1,0] is not a permutation");
    ck_assert_error(em_transpose(y, EM_AXES(0, 1, 3)), "transpose");
}
END_TEST

START_TEST(test_slice) {
    em_tensor *x = iota(EM_F32, EM_SHAPE(3, 4));
    em_tensor *s = em_slice(x, (int64_t[]){1, 1}, (int64_t[]){2, -1});
    ck_assert_tensor(s, EM_F32, EM_SHAPE(2, 3), T(5, 6, 7, 9, 10, 11), 0);
    /* a slice of a slice */
    ck_assert_tensor(em_slice(s, (int64_t[]){1, 1}, (int64_t[]){1, 2}), EM_F32, EM_SHAPE(1, 2), T(10, 11), 0);
    /* a slice of a transpose */
    ck_assert_tensor(em_slice(em_transpose(x, EM_ALL_AXES), (int64_t[]){2, 0}, (int64_t[]){1, 3}), EM_F32,
                     EM_SHAPE(1, 3), T(2, 6, 10), 0);
    ck_assert_tensor(em_slice(x, (int64_t[]){3, 0}, (int64_t[]){-1, 2}), EM_F32, EM_SHAPE(0, 2), NULL, 0);
    ck_assert_error(em_slice(x, (int64_t[]){2, 0}, (int64_t[]){2, 4}),
                    "slice: begin [2,0], size [2,4] is out of bounds for axis 0 of input [3,4]");
    ck_assert_error(em_slice(x, (int64_t[]){0, -1}, (int64_t[]){1, 1}), "axis 1 of input [3,4]");
    ck_assert_error(em_slice(x, (int64_t[]){0, 5}, (int64_t[]){1, -1}), "slice");
}
END_TEST

START_TEST(test_broadcast_to) {
    em_tensor *v = em_tensor_from(EM_I64, EM_SHAPE(3), (int64_t[]){1, 2, 3});
    ck_assert_tensor(em_broadcast_to(v, EM_SHAPE(2, 3)), EM_I64, EM_SHAPE(2, 3), T(1, 2, 3, 1, 2, 3), 0);
    em_tensor *c = em_reshape(v, EM_SHAPE(3, 1));
    ck_assert_tensor(em_broadcast_to(c, EM_SHAPE(2, 3, 2)), EM_I64, EM_SHAPE(2, 3, 2),
                     T(1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3), 0);
    ck_assert_tensor(em_broadcast_to(em_scalar(EM_U8, 7), EM_SHAPE(2, 2)), EM_U8, EM_SHAPE(2, 2), T(7, 7, 7, 7), 0);
    ck_assert_tensor(em_broadcast_to(v, EM_SHAPE(0, 3)), EM_I64, EM_SHAPE(0, 3), NULL, 0);
    ck_assert_error(em_broadcast_to(em_zeros(EM_F32, EM_SHAPE(2, 3)), EM_SHAPE(3, 3)),
                    "broadcast_to: cannot broadcast input [2,3] to shape [3,3]");
    ck_assert_error(em_broadcast_to(em_zeros(EM_F32, EM_SHAPE(2, 3)), EM_SHAPE(3)), "broadcast_to: cannot broadcast");
}
END_TEST

/* A view keeps its input's memory alive after the input's scope ends. */
START_TEST(test_views_keep_input_alive) {
    em_scope_begin();
    em_tensor *x = iota(EM_F32, EM_SHAPE(4, 5));
    em_tensor *v = em_keep(em_slice(em_transpose(x, EM_ALL_AXES), (int64_t[]){1, 1}, (int64_t[]){2, 2}));
    em_scope_end();
    ck_assert_tensor(v, EM_F32, EM_SHAPE(2, 2), T(6, 11, 7, 12), 0);
    em_release(v);
}
END_TEST

START_TEST(test_stop_gradient) {
    em_tensor *x = iota(EM_F64, EM_SHAPE(2, 2));
    em_tape *tape = em_tape_begin(false);
    em_tensor *s = em_stop_gradient(x);
    ck_assert_tensor(s, EM_F64, EM_SHAPE(2, 2), T(0, 1, 2, 3), 0);
    em_tensor *y = em_add(em_sum(s, EM_ALL_AXES, false), em_sum(x, EM_ALL_AXES, false));
    em_tensor *g[1];
    ck_assert_int_eq(em_gradients(tape, y, 1, &x, g), 0);
    ck_assert_tensor(g[0], EM_F64, EM_SHAPE(2, 2), T(1, 1, 1, 1), 0);
    em_tape_release(tape);
}
END_TEST

START_TEST(test_concat) {
    em_tensor *a = iota(EM_F32, EM_SHAPE(2, 2));
    em_tensor *b = em_add_scalar(iota(EM_F32, EM_SHAPE(2, 3)), 10);
    ck_assert_tensor(em_concat(2, (em_tensor *[]){a, b}, 1), EM_F32, EM_SHAPE(2, 5),
                     T(0, 1, 10, 11, 12, 2, 3, 13, 14, 15), 0);
    ck_assert_tensor(em_concat(3, (em_tensor *[]){a, em_zeros(EM_F32, EM_SHAPE(0, 2)), a}, -2), EM_F32,
                     EM_SHAPE(4, 2), T(0, 1, 2, 3, 0, 1, 2, 3), 0);
    ck_assert_tensor(em_concat(1, (em_tensor *[]){a}, 0), EM_F32, EM_SHAPE(2, 2), T(0, 1, 2, 3), 0);
    em_tensor *u = em_tensor_from(EM_BOOL, EM_SHAPE(2), (uint8_t[]){1, 0});
    ck_assert_tensor(em_concat(2, (em_tensor *[]){u, u}, 0), EM_BOOL, EM_SHAPE(4), T(1, 0, 1, 0), 0);
    ck_assert_error(em_concat(2, (em_tensor *[]){a, b}, 0),
                    "concat: input 1 has shape [2,3] but input 0 has [2,2]; all dims except axis 0 must match");
    ck_assert_error(em_concat(2, (em_tensor *[]){a, em_zeros(EM_F64, EM_SHAPE(2, 2))}, 0),
                    "concat: input 1 has dtype float64 but input 0 has float32");
    ck_assert_error(em_concat(2, (em_tensor *[]){a, a}, 2), "concat: axis 2 is out of range for input of shape [2,2]");
    ck_assert_error(em_concat(0, NULL, 0), "concat");
}
END_TEST

START_TEST(test_gather) {
    em_tensor *p = iota(EM_F64, EM_SHAPE(4, 3));
    em_tensor *i32 = em_tensor_from(EM_I32, EM_SHAPE(2, 2), (int32_t[]){3, 0, 1, 3});
    ck_assert_tensor(em_gather(p, i32, 0), EM_F64, EM_SHAPE(2, 2, 3), T(9, 10, 11, 0, 1, 2, 3, 4, 5, 9, 10, 11), 0);
    em_tensor *i64 = em_tensor_from(EM_I64, EM_SHAPE(3), (int64_t[]){2, 2, 0});
    ck_assert_tensor(em_gather(p, i64, -1), EM_F64, EM_SHAPE(4, 3), T(2, 2, 0, 5, 5, 3, 8, 8, 6, 11, 11, 9), 0);
    ck_assert_tensor(em_gather(iota(EM_U8, EM_SHAPE(5)), em_scalar(EM_I64, 4), 0), EM_U8, EM_SHAPE0, T(4), 0);
    ck_assert_tensor(em_gather(p, em_zeros(EM_I32, EM_SHAPE(0)), 0), EM_F64, EM_SHAPE(0, 3), NULL, 0);
    ck_assert_error(em_gather(p, em_tensor_from(EM_I32, EM_SHAPE(2), (int32_t[]){1, 4}), 0),
                    "gather: index 4 (element 1 of indices) is out of range [0, 4) for axis 0 of [4,3]");
    ck_assert_error(em_gather(p, em_scalar(EM_I64, -1), 1), "gather: index -1");
    ck_assert_error(em_gather(p, em_zeros(EM_F32, EM_SHAPE(1)), 0), "gather: indices must be int32, int64, int16 or uint16, not float32");
    ck_assert_error(em_gather(p, i32, 2), "gather: axis 2 is out of range");
}
END_TEST

/* The gradient of gather adds the rows of the output's gradient back at their indices. */
START_TEST(test_gather_gradient_scatter_adds) {
    em_tensor *p = iota(EM_F64, EM_SHAPE(4, 2));
    em_tensor *idx = em_tensor_from(EM_I32, EM_SHAPE(3), (int32_t[]){0, 2, 0});
    em_tensor *w = em_tensor_from(EM_F64, EM_SHAPE(3, 2), T(1, 2, 3, 4, 5, 6));
    em_tape *tape = em_tape_begin(false);
    em_tensor *y = em_sum(em_mul(em_gather(p, idx, 0), w), EM_ALL_AXES, false);
    em_tensor *g[1];
    ck_assert_int_eq(em_gradients(tape, y, 1, &p, g), 0);
    ck_assert_tensor(g[0], EM_F64, EM_SHAPE(4, 2), T(6, 8, 0, 0, 3, 4, 0, 0), 0);
    em_tape_release(tape);
}
END_TEST

START_TEST(test_one_hot) {
    em_tensor *i = em_tensor_from(EM_I64, EM_SHAPE(4), (int64_t[]){0, 2, -1, 5});
    ck_assert_tensor(em_one_hot(i, 3, 1, 0, EM_F32), EM_F32, EM_SHAPE(4, 3), T(1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0), 0);
    em_tensor *j = em_tensor_from(EM_I32, EM_SHAPE(2, 1), (int32_t[]){1, 0});
    ck_assert_tensor(em_one_hot(j, 2, 5, -1, EM_I32), EM_I32, EM_SHAPE(2, 1, 2), T(-1, 5, 5, -1), 0);
    ck_assert_error(em_one_hot(em_zeros(EM_F32, EM_SHAPE(2)), 3, 1, 0, EM_F32),
                    "one_hot: indices must be int32, int64, int16 or uint16, not float32");
    ck_assert_error(em_one_hot(i, -2, 1, 0, EM_F32), "one_hot: depth -2 is negative");
}
END_TEST

START_TEST(test_pad) {
    em_tensor *x = iota(EM_I32, EM_SHAPE(2, 2));
    ck_assert_tensor(em_pad(x, (int64_t[]){1, 0, 0, 2}, 9), EM_I32, EM_SHAPE(3, 4), T(9, 9, 9, 9, 0, 1, 9, 9, 2, 3, 9, 9),
                     0);
    ck_assert_tensor(em_pad(em_arange(EM_F64, 1, 3, 1), (int64_t[]){2, 1}, -0.5), EM_F64, EM_SHAPE(5),
                     T(-0.5, -0.5, 1, 2, -0.5), 0);
    ck_assert_tensor(em_pad(em_zeros(EM_U8, EM_SHAPE(0, 1)), (int64_t[]){1, 0, 0, 1}, 3), EM_U8, EM_SHAPE(1, 2),
                     T(3, 3), 0);
    ck_assert_error(em_pad(x, (int64_t[]){0, 0, -1, 0}, 0), "pad: pads [0,0,-1,0] must be non-negative (input [2,2])");
}
END_TEST

START_TEST(test_tile) {
    em_tensor *x = iota(EM_U8, EM_SHAPE(2, 2));
    ck_assert_tensor(em_tile(x, (int64_t[]){2, 2}), EM_U8, EM_SHAPE(4, 4),
                     T(0, 1, 0, 1, 2, 3, 2, 3, 0, 1, 0, 1, 2, 3, 2, 3), 0);
    ck_assert_tensor(em_tile(em_arange(EM_F32, 0, 3, 1), (int64_t[]){2}), EM_F32, EM_SHAPE(6), T(0, 1, 2, 0, 1, 2), 0);
    ck_assert_tensor(em_tile(x, (int64_t[]){1, 0}), EM_U8, EM_SHAPE(2, 0), NULL, 0);
    ck_assert_error(em_tile(x, (int64_t[]){-1, 1}), "tile: multiples [-1,1] must be non-negative (input [2,2])");
}
END_TEST

START_TEST(test_expand_dims_and_squeeze) {
    em_tensor *x = iota(EM_F32, EM_SHAPE(2, 3));
    ck_assert_tensor(em_expand_dims(x, 0), EM_F32, EM_SHAPE(1, 2, 3), T(0, 1, 2, 3, 4, 5), 0);
    ck_assert_tensor(em_expand_dims(x, -1), EM_F32, EM_SHAPE(2, 3, 1), T(0, 1, 2, 3, 4, 5), 0);
    ck_assert_tensor(em_expand_dims(x, 1), EM_F32, EM_SHAPE(2, 1, 3), T(0, 1, 2, 3, 4, 5), 0);
    ck_assert_error(em_expand_dims(x, 3), "expand_dims: axis 3 is out of range for input of shape [2,3]");
    em_tensor *y = em_reshape(x, EM_SHAPE(1, 2, 1, 3, 1));
    ck_assert_tensor(em_squeeze(y, EM_ALL_AXES), EM_F32, EM_SHAPE(2, 3), T(0, 1, 2, 3, 4, 5), 0);
    ck_assert_tensor(em_squeeze(y, EM_AXES(0, -1)), EM_F32, EM_SHAPE(2, 1, 3), T(0, 1, 2, 3, 4, 5), 0);
    ck_assert_error(em_squeeze(x, EM_AXES(1)), "squeeze: axis 1 of input [2,3] has size 3, not 1");
    ck_assert_error(em_squeeze(x, EM_AXES(5)), "squeeze: axis 5 is out of range");
}
END_TEST

START_TEST(test_split) {
    em_tensor *x = iota(EM_I64, EM_SHAPE(2, 6));
    em_tensor *p[4];
    ck_assert_int_eq(em_split(x, 3, 1, p), 0);
    ck_assert_tensor(p[0], EM_I64, EM_SHAPE(2, 2), T(0, 1, 6, 7), 0);
    ck_assert_tensor(p[2], EM_I64, EM_SHAPE(2, 2), T(4, 5, 10, 11), 0);
    ck_assert_int_eq(em_split_sizes(x, 3, (int64_t[]){1, -1, 2}, -1, p), 0);
    ck_assert_tensor(p[0], EM_I64, EM_SHAPE(2, 1), T(0, 6), 0);
    ck_assert_tensor(p[1], EM_I64, EM_SHAPE(2, 3), T(1, 2, 3, 7, 8, 9), 0);
    ck_assert_tensor(p[2], EM_I64, EM_SHAPE(2, 2), T(4, 5, 10, 11), 0);
    ck_assert_int_eq(em_split(x, 4, 1, p), -1);
    ck_assert_error(NULL, "split: axis 1 of input [2,6] (size 6) cannot be split into 4 equal parts");
    ck_assert_int_eq(em_split_sizes(x, 2, (int64_t[]){2, 3}, 1, p), -1);
    ck_assert_error(NULL, "split_sizes: sizes [2,3] do not add up to size 6 of axis 1 of input [2,6]");
    ck_assert_ptr_null(p[0]);
    ck_assert_int_eq(em_split_sizes(x, 2, (int64_t[]){-1, -1}, 1, p), -1);
    ck_assert_error(NULL, "split_sizes");
    ck_assert_int_eq(em_split(x, 2, 2, p), -1);
    ck_assert_error(NULL, "split: axis 2 is out of range");
}
END_TEST

/* The index family's bad input: errors name the op, the argument and the shapes. */
START_TEST(test_index_errors) {
    em_tensor *x = em_tensor_from(EM_F32, EM_SHAPE(2, 3), (float[]){1, 2, 3, 4, 5, 6});
    em_tensor *bad = em_tensor_from(EM_I64, EM_SHAPE(2, 2), (int64_t[]){1, 2, 2, 0});
    ck_assert_error(em_gather_nd(x, bad), "gather_nd: index tuple 1 (2,0) is out of range for [2,3]");
    ck_assert_error(em_gather_nd(x, em_zeros(EM_F32, EM_SHAPE(1, 2))), "gather_nd: indices must be int32, int64, int16 or uint16");
    ck_assert_error(em_gather_nd(x, em_zeros(EM_I32, EM_SHAPE(1, 3))),
                    "gather_nd: index tuples of 3 components (indices [1,3]) exceed the 2 dimensions of [2,3]");
    ck_assert_error(em_scatter_nd(em_zeros(EM_I32, EM_SHAPE(2, 1)), x, EM_SHAPE(4, 2)),
                    "scatter_nd: updates [2,3] do not match indices [2,1] and shape [4,2]");
    ck_assert_error(em_scatter_nd(em_zeros(EM_I32, EM_SHAPE(2, 1)), x, (em_shape){.ndim = 9}),
                    "scatter_nd: shape rank 9 is outside 0..8"); /* found by fuzz_ops */
    ck_assert_error(em_scatter_nd(em_zeros(EM_I32, EM_SHAPE(2, 2)), x, EM_SHAPE(INT64_MAX, 3)),
                    "[9223372036854775807,3]"); /* a message naming a huge size (fuzz_ops: it overflowed) */
    ck_assert_error(em_unsorted_segment_sum(x, em_zeros(EM_I32, EM_SHAPE(3)), 2),
                    "unsorted_segment_sum: segment_ids [3] are not a prefix of data's shape [2,3]");
    em_tensor *v = x, *i = x;
    ck_assert_int_eq(em_top_k(x, 4, true, &v, &i), -1);
    ck_assert_error(NULL, "top_k: k = 4 is outside [0, 3], the last dimension of x [2,3]");
    ck_assert_ptr_null(v);
    ck_assert_ptr_null(i);
    ck_assert_error(em_sort(x, 2, false), "sort: axis 2 is out of range for x [2,3]");
    ck_assert_error(em_argsort(em_zeros(EM_BOOL, EM_SHAPE(2)), 0, false), "top_k: x must be numeric, not bool");
}
END_TEST

int main(void) {
    Suite *s = suite_create("shape");
    TCase *tc = tcase_create("shape");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_reshape);
    tcase_add_test(tc, test_reshape_errors);
    tcase_add_test(tc, test_transpose_views_and_reshape_copies);
    tcase_add_test(tc, test_slice);
    tcase_add_test(tc, test_broadcast_to);
    tcase_add_test(tc, test_views_keep_input_alive);
    tcase_add_test(tc, test_stop_gradient);
    tcase_add_test(tc, test_concat);
    tcase_add_test(tc, test_gather);
    tcase_add_test(tc, test_gather_gradient_scatter_adds);
    tcase_add_test(tc, test_one_hot);
    tcase_add_test(tc, test_pad);
    tcase_add_test(tc, test_tile);
    tcase_add_test(tc, test_expand_dims_and_squeeze);
    tcase_add_test(tc, test_split);
    tcase_add_test(tc, test_empty_with_huge_dims);
    tcase_add_test(tc, test_index_errors);
    suite_add_tcase(s, tc);
    return em_test_run(s);
}
