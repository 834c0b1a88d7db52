/* Tensors, scopes, errors, printing: the core runtime a user touches first. */
#include "common.h"
#include "internal.h" /* em__alloc: a large tensor without touching its pages */

#include <math.h>
#include <string.h>

static void teardown(void) { em_shutdown(); }

START_TEST(test_creation_and_access) {
    float v[6] = {1, 2, 3, 4, 5, 6};
    em_tensor *t = em_tensor_from(EM_F32, EM_SHAPE(2, 3), v);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(em_ndim(t), 2);
    ck_assert_int_eq(em_dim(t, 0), 2);
    ck_assert_int_eq(em_dim(t, -1), 3);
    ck_assert_int_eq(em_numel(t), 6);
    ck_assert_int_eq(em_tensor_dtype(t), EM_F32);
    v[0] = 100; /* the data was copied */
    const float *d = em_data(t);
    ck_assert_float_eq(d[0], 1);
    ck_assert_float_eq(d[5], 6);
    ck_assert_double_eq(em_get(t, (int64_t[]){1, 2}), 6);
    float out[6];
    ck_assert_int_eq(em_copy_out(t, out, sizeof out), 0);
    ck_assert_float_eq(out[4], 5);
    ck_assert_int_eq(em_copy_out(t, out, 8), -1);
    ck_assert_ptr_nonnull(strstr(em_last_error(), "copy_out"));
    em_clear_error();
    ck_assert_int_eq(em_dim(t, 2), -1);
    ck_assert_ptr_nonnull(strstr(em_last_error(), "axis 2"));
    em_clear_error();
}
END_TEST

START_TEST(test_fill_zeros_ones_scalar_arange) {
    ck_assert_tensor(em_zeros(EM_I32, EM_SHAPE(2, 2)), EM_I32, EM_SHAPE(2, 2), ((double[]){0, 0, 0, 0}), 0);
    ck_assert_tensor(em_ones(EM_U8, EM_SHAPE(3)), EM_U8, EM_SHAPE(3), ((double[]){1, 1, 1}), 0);
    ck_assert_tensor(em_fill(EM_F64, EM_SHAPE(1, 2), 2.5), EM_F64, EM_SHAPE(1, 2), ((double[]){2.5, 2.5}), 0);
    ck_assert_tensor(em_fill(EM_BOOL, EM_SHAPE(2), 3), EM_BOOL, EM_SHAPE(2), ((double[]){1, 1}), 0);
    em_tensor *s = em_scalar(EM_I64, 7);
    ck_assert_int_eq(em_ndim(s), 0);
    ck_assert_double_eq(em_item(s), 7);
    ck_assert_tensor(em_arange(EM_F32, 0, 1, 0.25), EM_F32, EM_SHAPE(4), ((double[]){0, 0.25, 0.5, 0.75}), 0);
    ck_assert_tensor(em_arange(EM_I32, 5, 0, -2), EM_I32, EM_SHAPE(3), ((double[]){5, 3, 1}), 0);
    ck_assert_int_eq(em_numel(em_arange(EM_F32, 3, 3, 1)), 0);
    ck_assert_error(em_arange(EM_F32, 0, 1, 0), "arange");
    /* size-0 tensors exist and print */
    em_tensor *z = em_zeros(EM_F32, EM_SHAPE(0, 3));
    ck_assert_int_eq(em_numel(z), 0);
    char buf[128];
    em_format(z, buf, sizeof buf);
    ck_assert_str_eq(buf, "tensor([], shape=[0,3], dtype=float32)");
}
END_TEST

START_TEST(test_bad_shapes_are_errors) {
    ck_assert_error(em_zeros(EM_F32, EM_SHAPE(2, -3)), "negative dimension -3 in shape [2,-3]");
    ck_assert_error(em_zeros(EM_F32, EM_SHAPE(INT64_MAX / 2, 4, 4)), "overflows");
    ck_assert_error(em_zeros((em_dtype)42, EM_SHAPE(2)), "invalid dtype");
    ck_assert_error(em_tensor_from(EM_F32, EM_SHAPE(2), NULL), "tensor_from");
    em_shape big = {.ndim = 9};
    ck_assert_error(em_zeros(EM_F32, big), "rank 9");
    ck_assert(isnan(em_item(em_zeros(EM_F32, EM_SHAPE(2)))));
    ck_assert_ptr_nonnull(strstr(em_last_error(), "item: tensor of shape [2] has 2 elements, not 1"));
    em_clear_error();
}
END_TEST

START_TEST(test_first_error_wins_and_null_propagates) {
    em_tensor *bad = em_zeros(EM_F32, EM_SHAPE(-1));
    ck_assert_ptr_null(bad);
    ck_assert_ptr_null(em_copy(bad));
    ck_assert_ptr_null(em_fill_like(bad, 1));
    ck_assert_ptr_nonnull(strstr(em_last_error(), "negative dimension"));
    em_clear_error();
    ck_assert_ptr_null(em_last_error());
}
END_TEST

START_TEST(test_printing) {
    char buf[512];
    em_format(em_tensor_from(EM_F32, EM_SHAPE(2, 2), (float[]){1, 2, 3, 4.5f}), buf, sizeof buf);
    ck_assert_str_eq(buf, "tensor([[1., 2.],\n        [3., 4.5]], dtype=float32)");
    em_format(em_tensor_from(EM_BOOL, EM_SHAPE(2), (uint8_t[]){1, 0}), buf, sizeof buf);
    ck_assert_str_eq(buf, "tensor([ True, False], dtype=bool)");
    em_format(em_scalar(EM_I32, -3), buf, sizeof buf);
    ck_assert_str_eq(buf, "tensor(-3, dtype=int32)");
    /* Large tensors are elided like NumPy's repr. */
    em_format(em_arange(EM_I64, 0, 2000, 1), buf, sizeof buf);
    ck_assert_str_eq(buf, "tensor([0, 1, 2, ..., 1997, 1998, 1999], dtype=int64)");
    /* em_format reports the needed length even when the buffer is short. */
    int need = em_format(em_arange(EM_I32, 0, 5, 1), buf, 4);
    ck_assert_int_eq(need, (int)strlen("tensor([0, 1, 2, 3, 4], dtype=int32)"));
    ck_assert_int_eq((int)strlen(buf), 3);
}
END_TEST

/* bfloat16 and float16 tensors hold the 16 bits they are made from; em_data gives those bits back, em_get and
 * em_item their values, and em_scalar / em_fill round to nearest even (ties to even, overflow to Inf,
 * subnormals kept). They print as float32 does. */
START_TEST(test_narrow_creation_access_printing) {
    const uint16_t bf[4] = {0x3F80, 0xBEAB, 0xFF80, 0x7FC0}; /* 1, -0.333984375, -Inf, NaN */
    em_tensor *b = em_tensor_from(EM_BF16, EM_SHAPE(2, 2), bf);
    ck_assert_int_eq(em_tensor_dtype(b), EM_BF16);
    ck_assert_uint_eq(em_dtype_size(EM_BF16), 2);
    ck_assert_str_eq(em_dtype_name(EM_BF16), "bfloat16");
    ck_assert_str_eq(em_dtype_name(EM_F16), "float16");
    ck_assert_mem_eq(em_data(b), bf, sizeof bf);
    ck_assert_double_eq(em_get(b, (int64_t[]){0, 1}), -0.333984375);
    ck_assert_double_eq(em_get(b, (int64_t[]){1, 0}), -INFINITY);
    ck_assert(isnan(em_get(b, (int64_t[]){1, 1})));
    ck_assert_double_eq(em_item(em_tensor_from(EM_F16, EM_SHAPE0, (const uint16_t[]){0x0001})), 0x1p-24);
    ck_assert_double_eq(em_item(em_tensor_from(EM_F16, EM_SHAPE(1), (const uint16_t[]){0xFBFF})), -65504);

    static const struct {
        em_dtype dtype;
        double v;
        uint16_t bits;
    } rounded[] = {
        {EM_BF16, 0.1, 0x3DCD},          {EM_BF16, 1 + 0x1p-8, 0x3F80},    /* a tie: to the even 1 */
        {EM_BF16, 1 + 3 * 0x1p-8, 0x3F82}, {EM_BF16, 1e39, 0x7F80},     /* beyond float32's range too */
        {EM_BF16, 0x1p-133, 0x0001},      {EM_F16, 65519, 0x7BFF},       /* below the overflow tie */
        {EM_F16, 65520, 0x7C00},          {EM_F16, 0x1p-25, 0x0000},    /* ties to even: Inf, 0 */
        {EM_F16, 3 * 0x1p-26, 0x0001},    {EM_F16, -0.0, 0x8000},
    };
    for (size_t i = 0; i < sizeof rounded / sizeof rounded[0]; i++) {
        uint16_t got, filled[2];
        memcpy(&got, em_data(em_scalar(rounded[i].dtype, rounded[i].v)), 2);
        ck_assert_msg(got == rounded[i].bits, "%s %a: bits %04x, expected %04x", em_dtype_name(rounded[i].dtype),
                      rounded[i].v, got, rounded[i].bits);
        ck_assert_int_eq(em_copy_out(em_fill(rounded[i].dtype, EM_SHAPE(2), rounded[i].v), filled, sizeof filled), 0);
        ck_assert_uint_eq(filled[1], rounded[i].bits);
    }

    char buf[256];
    em_format(em_tensor_from(EM_F16, EM_SHAPE(3), (const uint16_t[]){0x3C00, 0x3556, 0x7C00}), buf, sizeof buf);
    ck_assert_str_eq(buf, "tensor([1., 0.3335, inf], dtype=float16)");
    em_format(b, buf, sizeof buf);
    ck_assert_str_eq(buf, "tensor([[1., -0.334],\n        [-inf, nan]], dtype=bfloat16)");
    em_format(em_scalar(EM_BF16, 256.5), buf, sizeof buf); /* 8 significant bits: 256 */
    ck_assert_str_eq(buf, "tensor(256., dtype=bfloat16)");
    em_format(em_zeros(EM_F16, EM_SHAPE(0)), buf, sizeof buf);
    ck_assert_str_eq(buf, "tensor([], shape=[0], dtype=float16)");
}
END_TEST

START_TEST(test_scopes_release_intermediates) {
    int64_t start = em_live_tensors();
    em_scope_begin();
    em_tensor *a = em_ones(EM_F32, EM_SHAPE(4));
    em_tensor *kept = em_keep(em_fill(EM_F32, EM_SHAPE(4), 2));
    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(em_live_tensors(), start + 2);
    ck_assert_int_eq(em_scope_end(), 0);
    ck_assert_int_eq(em_live_tensors(), start + 1); /* only the kept one */
    ck_assert_double_eq(((const float *)em_data(kept))[3], 2);
    em_release(kept);
    ck_assert_int_eq(em_live_tensors(), start);
    /* em_escape hands a result to the enclosing scope. */
    em_scope_begin();
    em_scope_begin();
    em_tensor *r = em_escape(em_ones(EM_F64, EM_SHAPE(2)));
    em_scope_end();
    ck_assert_double_eq(em_item(em_sum(r, EM_ALL_AXES, false)), 2);
    em_scope_end();
    ck_assert_int_eq(em_live_tensors(), start);
    ck_assert_int_eq(em_scope_end(), -1);
    ck_assert_ptr_nonnull(strstr(em_last_error(), "scope_end"));
    em_clear_error();
}
END_TEST

START_TEST(test_constant_memory_over_100000_steps) {
    em_tensor *x = em_keep(em_ones(EM_F32, EM_SHAPE(8)));
    int64_t start = em_live_tensors();
    for (int i = 0; i < 100000; i++) {
        em_scope_begin();
        em_tensor *y = em_mul(em_add(x, x), x);
        ck_assert_ptr_nonnull(y);
        em_scope_end();
    }
    ck_assert_int_eq(em_live_tensors(), start);
    em_release(x);
}
END_TEST

/* The bytes the block cache keeps of `bytes` freed ones: none under
 * AddressSanitizer, where freed blocks go straight back to malloc. */
#if defined(__SANITIZE_ADDRESS__)
#define CACHED(bytes) ((void)(bytes), (size_t)0)
#else
#define CACHED(bytes) (bytes)
#endif

/* A tensor of `bytes` whose pages are never touched. */
static em_tensor *untouched(int64_t bytes) { return em__own(em__alloc(EM_U8, 1, (int64_t[]){bytes})); }

START_TEST(test_large_blocks_are_reused_within_the_peak_and_trimmed) {
    /* issue 17: a loop's large outputs reuse freed blocks (fresh pages cost
     * a fault each), without growing the process past its own peak. Blocks
     * over 128 MiB are kept only within the high-water mark. */
    em_host_memory_trim();
    const int64_t big = (int64_t)160 << 20; /* bytes of each tensor */
    em_scope_begin();
    ck_assert_ptr_nonnull(untouched(big)); /* a */
    em_scope_begin();
    ck_assert_ptr_nonnull(untouched(big)); /* b: in use and cached stay within the peak of a + b */
    em_scope_end();
    em_scope_begin();
    ck_assert_ptr_nonnull(untouched(big)); /* c, in b's block */
    ck_assert_ptr_nonnull(untouched(big)); /* d: a new peak, a + c + d */
    em_scope_end();
    em_scope_end(); /* all three fit under the peak */
    size_t kept = em_host_memory_trim();
    ck_assert_uint_ge(kept, CACHED(3 * (size_t)big));
    ck_assert_uint_lt(kept, CACHED(3 * (size_t)big) + ((size_t)1 << 20));
    ck_assert_uint_eq(em_host_memory_trim(), 0); /* all given back */
    /* a block of a new size makes room under the mark: in use and cached
     * stay within the peak of five blocks */
    em_scope_begin();
    for (int k = 0; k < 5; k++) ck_assert_ptr_nonnull(untouched(big));
    em_scope_end();
    em_scope_begin();
    ck_assert_ptr_nonnull(untouched(big + ((int64_t)40 << 20)));
    kept = em_host_memory_trim();
    em_scope_end();
    ck_assert_uint_ge(kept, CACHED(3 * (size_t)big));
    ck_assert_uint_lt(kept, CACHED(3 * (size_t)big) + ((size_t)1 << 20));
    em_host_memory_trim();
}
END_TEST

START_TEST(test_views_keep_their_base_alive) {
    em_tensor *v;
    em_scope_begin();
    em_tensor *t = em_arange(EM_F32, 0, 6, 1);
    v = em_keep(em_reshape(t, EM_SHAPE(2, 3)));
    em_scope_end();
    ck_assert_tensor(v, EM_F32, EM_SHAPE(2, 3), ((double[]){0, 1, 2, 3, 4, 5}), 0);
    /* A transposed view reads in logical order and em_data makes it contiguous. */
    em_tensor *tt = em_transpose(v, EM_ALL_AXES);
    const float *d = em_data(tt);
    ck_assert_float_eq(d[1], 3);
    ck_assert_float_eq(d[2], 1);
    em_release(v);
}
END_TEST

START_TEST(test_seeded_random_is_reproducible) {
    em_set_seed(42);
    em_tensor *a = em_random_normal(EM_F32, EM_SHAPE(1000), 0, 1);
    em_set_seed(42);
    em_tensor *b = em_random_normal(EM_F32, EM_SHAPE(1000), 0, 1);
    ck_assert_int_eq(memcmp(em_data(a), em_data(b), 4000), 0);
    em_tensor *c = em_random_normal(EM_F32, EM_SHAPE(1000), 0, 1);
    ck_assert_int_ne(memcmp(em_data(a), em_data(c), 4000), 0);
}
END_TEST

START_TEST(test_threads_setting) {
    em_set_num_threads(1);
    ck_assert_int_eq(em_num_threads(), 1);
    em_set_num_threads(2);
    ck_assert_int_eq(em_num_threads(), 2);
    em_set_num_threads(0); /* back to the default */
    ck_assert_int_ge(em_num_threads(), 1);
}
END_TEST

int main(void) {
    Suite *s = suite_create("core");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_creation_and_access);
    tcase_add_test(tc, test_fill_zeros_ones_scalar_arange);
    tcase_add_test(tc, test_bad_shapes_are_errors);
    tcase_add_test(tc, test_first_error_wins_and_null_propagates);
    tcase_add_test(tc, test_printing);
    tcase_add_test(tc, test_narrow_creation_access_printing);
    tcase_add_test(tc, test_scopes_release_intermediates);
    tcase_add_test(tc, test_constant_memory_over_100000_steps);
    tcase_add_test(tc, test_large_blocks_are_reused_within_the_peak_and_trimmed);
    tcase_add_test(tc, test_views_keep_their_base_alive);
    tcase_add_test(tc, test_seeded_random_is_reproducible);
    tcase_add_test(tc, test_threads_setting);
    suite_add_tcase(s, tc);
    return em_test_run(s);
}
