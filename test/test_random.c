/* Random ops: the Philox stream (known-answer vectors), reproducibility by
 * seed and across thread counts, moments of each distribution, truncation,
 * dtypes, shapes and errors. */
#include "common.h"
#include "philox.h"

#include <string.h>

/* Random123's known-answer tests for philox4x32_10. */
START_TEST(test_philox_known_answers) {
    static const struct {
        uint32_t ctr[4];
        uint64_t key;
        uint32_t out[4];
    } kat[] = {
        {{0, 0, 0, 0}, 0, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
        {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, 0xffffffffffffffffULL,
         {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
        {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, 0x299f31d0a4093822ULL,
         {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
    };
    for (size_t k = 0; k < sizeof kat / sizeof kat[0]; k++) {
        em_philox4 c = {{kat[k].ctr[0], kat[k].ctr[1], kat[k].ctr[2], kat[k].ctr[3]}};
        em_philox4 r = em_philox4x32_10(c, kat[k].key);
        for (int i = 0; i < 4; i++) ck_assert_uint_eq(r.v[i], kat[k].out[i]);
    }
}
END_TEST

/* Element i is the header's function of (seed, first counter + i): what a GPU
 * kernel computes. A fresh seed starts the stream at counter 0. */
START_TEST(test_elements_follow_the_stream) {
    em_set_seed(1234);
    em_tensor *u = em_random_uniform(EM_F32, EM_SHAPE(5, 7), 0, 1);
    em_tensor *n = em_random_normal(EM_F64, EM_SHAPE(10), 0, 1);
    const float *uv = em_data(u);
    const double *nv = em_data(n);
    for (int i = 0; i < 35; i++) ck_assert_float_eq(uv[i], em_rng_uniform_f32(1234, (uint64_t)i));
    for (int i = 0; i < 10; i++) ck_assert_double_eq(nv[i], em_rng_normal_f64(1234, 35 + (uint64_t)i, 0));
    em_shutdown();
}
END_TEST

START_TEST(test_same_seed_same_numbers) {
    for (em_dtype dt = EM_F32; dt <= EM_F64; dt++) {
        size_t bytes = em_dtype_size(dt) * 1000;
        em_set_seed(7);
        em_tensor *a = em_random_normal(dt, EM_SHAPE(1000), 0, 1), *a2 = em_random_normal(dt, EM_SHAPE(1000), 0, 1);
        em_set_seed(7);
        em_tensor *b = em_random_normal(dt, EM_SHAPE(1000), 0, 1);
        em_set_seed(8);
        em_tensor *c = em_random_normal(dt, EM_SHAPE(1000), 0, 1);
        ck_assert_int_eq(memcmp(em_data(a), em_data(b), bytes), 0);
        ck_assert_int_ne(memcmp(em_data(a), em_data(a2), bytes), 0); /* the stream advances */
        ck_assert_int_ne(memcmp(em_data(a), em_data(c), bytes), 0);
    }
    em_shutdown();
}
END_TEST

START_TEST(test_thread_count_independent) {
    em_tensor *r[2][3];
    for (int t = 0; t < 2; t++) {
        em_set_num_threads(t + 1);
        em_set_seed(99);
        r[t][0] = em_random_uniform(EM_F32, EM_SHAPE(300, 1000), -1, 1);
        r[t][1] = em_random_normal(EM_F64, EM_SHAPE(200000), 0, 1);
        r[t][2] = em_truncated_normal(EM_F32, EM_SHAPE(200000), 0, 1);
    }
    em_set_num_threads(0);
    for (int k = 0; k < 3; k++)
        ck_assert_int_eq(memcmp(em_data(r[0][k]), em_data(r[1][k]),
                                em_dtype_size(em_tensor_dtype(r[0][k])) * (size_t)em_numel(r[0][k])),
                         0);
    em_shutdown();
}
END_TEST

static void moments(em_tensor *t, double *mean, double *std, double *lo, double *hi) {
    int64_t n = em_numel(t);
    const void *d = em_data(t);
    double s = 0, s2 = 0;
    *lo = INFINITY;
    *hi = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        double v = em_tensor_dtype(t) == EM_F32 ? ((const float *)d)[i] : ((const double *)d)[i];
        s += v;
        s2 += v * v;
        *lo = v < *lo ? v : *lo;
        *hi = v > *hi ? v : *hi;
    }
    *mean = s / (double)n;
    *std = sqrt(s2 / (double)n - *mean * *mean);
}

START_TEST(test_distributions) {
    em_set_seed(2024);
    double mean, std, lo, hi;
    for (em_dtype dt = EM_F32; dt <= EM_F64; dt++) {
        /* uniform [2, 5): mean 3.5, std 3 / sqrt(12) */
        moments(em_random_uniform(dt, EM_SHAPE(200000), 2, 5), &mean, &std, &lo, &hi);
        ck_assert_double_eq_tol(mean, 3.5, 0.01);
        ck_assert_double_eq_tol(std, 3 / sqrt(12), 0.01);
        ck_assert(lo >= 2 && hi < 5);
        /* normal(1, 2) */
        moments(em_random_normal(dt, EM_SHAPE(200000), 1, 2), &mean, &std, &lo, &hi);
        ck_assert_double_eq_tol(mean, 1, 0.02);
        ck_assert_double_eq_tol(std, 2, 0.02);
        ck_assert(lo < -5 && hi > 7); /* tails beyond 3 stddev exist */
        /* truncated normal(-1, 0.5): within 2 stddev, std of N(0,1) cut at 2 is 0.8796 */
        moments(em_truncated_normal(dt, EM_SHAPE(200000), -1, 0.5), &mean, &std, &lo, &hi);
        ck_assert_double_eq_tol(mean, -1, 0.01);
        ck_assert_double_eq_tol(std, 0.5 * 0.8796, 0.01);
        ck_assert(lo >= -2 && hi <= 0);
        ck_assert(lo < -1.99 && hi > -0.01);
    }
    em_shutdown();
}
END_TEST

START_TEST(test_shapes_and_dtypes) {
    em_tensor *s = em_random_normal(EM_F64, EM_SHAPE0, 0, 1);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(em_ndim(s), 0);
    ck_assert(isfinite(em_item(s)));
    ck_assert_tensor(em_random_uniform(EM_F32, EM_SHAPE(3, 0, 2), 0, 1), EM_F32, EM_SHAPE(3, 0, 2), NULL, 0);
    em_tensor *t = em_truncated_normal(EM_F32, EM_SHAPE(1, 4, 1), 0, 0);
    static const double zeros[4] = {0};
    ck_assert_tensor(t, EM_F32, EM_SHAPE(1, 4, 1), zeros, 0); /* stddev 0: the mean */
    static const double fives[2] = {5, 5};
    ck_assert_tensor(em_random_uniform(EM_F64, EM_SHAPE(2), 5, 5), EM_F64, EM_SHAPE(2), fives, 0);
    em_shutdown();
}
END_TEST

START_TEST(test_errors) {
    ck_assert_error(em_random_normal(EM_I32, EM_SHAPE(2), 0, 1), "random_normal: dtype int32 is not supported");
    ck_assert_error(em_random_uniform(EM_F32, EM_SHAPE(2, -1), 0, 1),
                    "random_uniform: dimension 1 of the shape is negative (-1)");
    ck_assert_error(em_random_uniform(EM_F32, EM_SHAPE(2), 1, 0), "random_uniform: lo (1) must not exceed hi (0)");
    ck_assert_error(em_truncated_normal(EM_F64, EM_SHAPE(2), 0, -1), "truncated_normal: stddev must be >= 0, got -1");
    ck_assert_error(em_random_normal(EM_F32, ((em_shape){.ndim = 9}), 0, 1), "random_normal: rank 9 is out of range");
    /* random ops take no inputs: to the tape they are constants */
    em_tensor *x = em_ones(EM_F64, EM_SHAPE(2)), *g;
    em_tape *tp = em_tape_begin(false);
    em_tensor *noise = em_random_normal(EM_F64, EM_SHAPE(2), 0, 1);
    ck_assert_int_eq(em_gradients(tp, em_mul(x, noise), 1, &x, &g), 0);
    ck_assert_tensor(g, EM_F64, EM_SHAPE(2), (const double *)em_data(noise), 0);
    em_tape_release(tp);
    em_shutdown();
}
END_TEST

int main(void) {
    Suite *s = suite_create("random");
    TCase *tc = tcase_create("random");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_philox_known_answers);
    tcase_add_test(tc, test_elements_follow_the_stream);
    tcase_add_test(tc, test_same_seed_same_numbers);
    tcase_add_test(tc, test_thread_count_independent);
    tcase_add_test(tc, test_distributions);
    tcase_add_test(tc, test_shapes_and_dtypes);
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);
    return em_test_run(s);
}
