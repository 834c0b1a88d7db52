/* The TF ops Ember composes from its own ops (lib/ops/composed.c): norm, eye, linspace, band_part, einsum, and the eager where_indices and
 * random_shuffle,
 * against NumPy's values (tools/ops_reference.py, test/data/ops1_reference.h),
 * with NaN, empty and negative-axis cases and the errors that name the op.
 * And moments, once composed, now one op (lib/ops/moments.c): its values
 * against NumPy's, and its one-pass error against float64.
 * Their gradients are the float64 checks in test/cases_*.c. */
#include "common.h"
#include "data/ops1_reference.h"

#include <math.h>
#include <string.h>

static void teardown(void) { em_shutdown(); }

#define S(...) EM_SHAPE(__VA_ARGS__)
static em_tensor *f64(em_shape s, const double *v) { return em_tensor_from(EM_F64, s, v); }

START_TEST(test_moments) {
    em_tensor *x = f64(S(2, 3, 4), ops1_xf), *mean, *var;
    ck_assert_int_eq(em_moments(x, EM_AXES(0, 2), false, &mean, &var), 0);
    ck_assert_tensor(mean, EM_F64, S(3), ops1_moments_02_mean, 1e-15);
    ck_assert_tensor(var, EM_F64, S(3), ops1_moments_02_var, 1e-15);
    ck_assert_int_eq(em_moments(x, EM_ALL_AXES, false, &mean, &var), 0);
    ck_assert_tensor(mean, EM_F64, EM_SHAPE0, ops1_moments_all_mean, 1e-15);
    ck_assert_tensor(var, EM_F64, EM_SHAPE0, ops1_moments_all_var, 1e-15);
    ck_assert_int_eq(em_moments(em_cast(x, EM_F32), EM_AXES(-1), true, &mean, &var), 0);
    ck_assert_tensor(mean, EM_F32, S(2, 3, 1), ops1_moments_last_mean, 1e-6);
    ck_assert_tensor(var, EM_F32, S(2, 3, 1), ops1_moments_last_var, 1e-6);
    /* a large offset does not cancel: the variance of 1e8 + {0, 1, 2, 3} is 1.25 */
    em_tensor *off = em_add_scalar(em_arange(EM_F64, 0, 4, 1), 1e8);
    ck_assert_int_eq(em_moments(off, EM_ALL_AXES, false, &mean, &var), 0);
    ck_assert_tensor(var, EM_F64, EM_SHAPE0, V(1.25), 1e-12);
    /* NaN spreads to its own mean and variance only */
    ck_assert_int_eq(em_moments(f64(S(2, 2), V(1, NAN, 2, 4)), EM_AXES(1), false, &mean, &var), 0);
    ck_assert_tensor(mean, EM_F64, S(2), V(NAN, 3), 0);
    ck_assert_tensor(var, EM_F64, S(2), V(NAN, 1), 0);
    /* nothing reduced beside kept columns (the column path; fuzz_ops found it dividing by the empty axis) */
    ck_assert_int_eq(em_moments(em_zeros(EM_F32, S(0, 3)), EM_AXES(0), false, &mean, &var), 0);
    ck_assert_tensor(mean, EM_F32, S(3), V(NAN, NAN, NAN), 0);
    ck_assert_tensor(var, EM_F32, S(3), V(NAN, NAN, NAN), 0);
    ck_assert_int_eq(em_moments(em_arange(EM_I32, 0, 4, 1), EM_ALL_AXES, false, &mean, &var), -1);
    ck_assert_ptr_nonnull(strstr(em_last_error(), "moments: x must be float32 or float64, got int32 [4]"));
    ck_assert_ptr_null(mean);
    em_clear_error();
}
END_TEST

/* moments of x [A, R, B] over axis 1 against the two-pass mean and variance of its values in long double: the
 * largest relative errors of the means and of the variances; every variance must be >= 0. */
static void moments_error(em_tensor *x, double *mean_err, double *var_err) {
    em_shape s = em_tensor_shape(x);
    int64_t A = s.dims[0], R = s.dims[1], B = s.dims[2];
    em_tensor *mean, *var, *x64 = em_cast(x, EM_F64);
    ck_assert_int_eq(em_moments(x, EM_AXES(1), false, &mean, &var), 0);
    const double *v = em_data(x64), *m = em_data(em_cast(mean, EM_F64)), *q = em_data(em_cast(var, EM_F64));
    ck_assert(v && m && q);
    *mean_err = *var_err = 0;
    for (int64_t a = 0; a < A; a++)
        for (int64_t b = 0; b < B; b++) {
            long double sum = 0, sq = 0;
            for (int64_t r = 0; r < R; r++) sum += v[(a * R + r) * B + b];
            long double mu = sum / R;
            for (int64_t r = 0; r < R; r++) sq += (v[(a * R + r) * B + b] - mu) * (v[(a * R + r) * B + b] - mu);
            double want = (double)(sq / R), got = q[a * B + b];
            ck_assert_msg(got >= 0, "variance %g < 0", got);
            *mean_err = fmax(*mean_err, (double)(fabsl(m[a * B + b] - mu) / fabsl(mu)));
            *var_err = fmax(*var_err, fabs(got - want) / want);
        }
}

/* One pass with a large mean: 1e4 + U(-1.7, 1.7) (variance about 1) in float32 keeps the variance to
 * float32's rounding (2^-24 relative) where E[x^2] - E[x]^2 in float32 would lose every digit; float64 data
 * at 1e8 keeps it to about 1e-14. Rows (lanes), column blocks, chunked columns and a chunked single output,
 * each the same on 1 and 2 threads. */
START_TEST(test_moments_one_pass_error) {
    const em_shape shapes[] = {S(64, 4096, 1), S(16, 64, 16), S(1, 4096, 64), S(1, 262144, 1)};
    for (int k = 0; k < 4; k++)
        for (int f32 = 0; f32 < 2; f32++) {
            em_scope_begin();
            em_tensor *x = em_add_scalar(em_test_uniform(shapes[k], -1.7, 1.7, 30u + (unsigned)k), f32 ? 1e4 : 1e8);
            if (f32) x = em_cast(x, EM_F32);
            double me, ve;
            moments_error(x, &me, &ve);
            printf("test_composed: moments of %s [%lld,%lld,%lld] over axis 1: mean %.2g, variance %.2g relative error\n",
                   f32 ? "1e4 + U float32" : "1e8 + U float64", (long long)shapes[k].dims[0],
                   (long long)shapes[k].dims[1], (long long)shapes[k].dims[2], me, ve);
            ck_assert_double_le(me, (f32 ? 0x1p-24 : 1e-15));
            ck_assert_double_le(ve, (f32 ? 0x1p-24 : 1e-13));
            em_tensor *r[2][2];
            for (int t = 0; t < 2; t++) {
                em_set_num_threads(t + 1);
                ck_assert_int_eq(em_moments(x, EM_AXES(1), false, &r[t][0], &r[t][1]), 0);
            }
            for (int j = 0; j < 2; j++)
                ck_assert_msg(!memcmp(em_data(r[0][j]), em_data(r[1][j]), (size_t)em_numel(r[0][j]) * em_dtype_size(em_tensor_dtype(r[0][j]))),
                              "moments result %d differs between 1 and 2 threads", j);
            em_scope_end();
        }
    /* constant data: exactly 0, never a rounding error below it */
    em_tensor *mean, *var;
    ck_assert_int_eq(em_moments(em_fill(EM_F32, S(3, 1000), 1e4 + 0.1), EM_AXES(-1), false, &mean, &var), 0);
    ck_assert_tensor(var, EM_F32, S(3), V(0, 0, 0), 0);
}
END_TEST

START_TEST(test_norm) {
    em_tensor *x = f64(S(2, 3, 4), ops1_xf);
    ck_assert_tensor(em_norm(x, 1, EM_AXES(-1), false), EM_F64, S(2, 3), ops1_norm1_last, 1e-15);
    ck_assert_tensor(em_norm(x, 2, EM_AXES(-1), false), EM_F64, S(2, 3), ops1_norm2_last, 1e-15);
    ck_assert_tensor(em_norm(x, INFINITY, EM_AXES(2), false), EM_F64, S(2, 3), ops1_norminf_last, 0);
    ck_assert_tensor(em_norm(x, 2, EM_ALL_AXES, false), EM_F64, EM_SHAPE0, ops1_norm2_all, 1e-15);
    ck_assert_tensor(em_norm(em_cast(x, EM_F32), 2, EM_AXES(0, -2), true), EM_F32, S(1, 1, 4), ops1_norm2_01_keep,
                     1e-6);
    ck_assert_tensor(em_norm(f64(S(3), V(1, NAN, 2)), 2, EM_ALL_AXES, false), EM_F64, EM_SHAPE0, V(NAN), 0);
    ck_assert_tensor(em_norm(f64(S(0, 2), V(0)), 1, EM_AXES(0), false), EM_F64, S(2), V(0, 0), 0);
    ck_assert_error(em_norm(x, 3, EM_ALL_AXES, false), "norm: ord 3 is not supported for input of shape [2,3,4]");
}
END_TEST

START_TEST(test_eye_linspace_band_part) {
    ck_assert_tensor(em_eye(3, -1, EM_F32), EM_F32, S(3, 3), ops1_eye_3, 0);
    ck_assert_tensor(em_eye(2, 4, EM_I32), EM_I32, S(2, 4), ops1_eye_2_4, 0);
    ck_assert_tensor(em_eye(0, 2, EM_F64), EM_F64, S(0, 2), V(0), 0);
    ck_assert_error(em_eye(-1, 2, EM_F64), "eye: num_rows must be >= 0, got -1");
    ck_assert_tensor(em_linspace(0, 1, 5, EM_F64), EM_F64, S(5), ops1_linspace_0_1_5, 0);
    ck_assert_tensor(em_linspace(-1, 2, 4, EM_F32), EM_F32, S(4), ops1_linspace_m1_2_4, 0);
    ck_assert_tensor(em_linspace(3, 7, 1, EM_F64), EM_F64, S(1), V(3), 0);
    ck_assert_error(em_linspace(0, 1, 0, EM_F64), "linspace: num must be >= 1");
    em_tensor *x = em_tensor_from(EM_F64, S(2, 3, 4), ops1_x234);
    ck_assert_tensor(em_band_part(x, 1, 0), EM_F64, S(2, 3, 4), ops1_band_1_0, 0);
    ck_assert_tensor(em_band_part(x, -1, 0), EM_F64, S(2, 3, 4), ops1_band_tril, 0);
    ck_assert_tensor(em_band_part(em_cast(x, EM_I64), 0, -1), EM_I64, S(2, 3, 4), ops1_band_triu, 0);
    ck_assert_tensor(em_band_part(em_cast(x, EM_F32), 0, 0), EM_F32, S(2, 3, 4), ops1_band_diag, 0);
    ck_assert_tensor(em_band_part(x, 1, 2), EM_F64, S(2, 3, 4), ops1_band_1_2, 0);
    ck_assert_tensor(em_band_part(x, -1, -1), EM_F64, S(2, 3, 4), ops1_x234, 0);
    ck_assert_error(em_band_part(em_arange(EM_F64, 0, 3, 1), 0, 0), "band_part: x must have at least 2 dims, got [3]");
}
END_TEST

START_TEST(test_einsum) {
    em_tensor *a = f64(S(2, 3, 4), ops1_ea), *b = f64(S(2, 4, 5), ops1_eb);
    ck_assert_tensor(em_einsum("bij,bjk->bik", 2, (em_tensor *[]){a, b}), EM_F64, S(2, 3, 5), ops1_einsum_bij_bjk,
                     1e-14);
    em_tensor *q = f64(S(2, 2, 3, 4), ops1_eq), *k = f64(S(2, 2, 5, 4), ops1_ek);
    ck_assert_tensor(em_einsum("bhqd,bhkd->bhqk", 2, (em_tensor *[]){q, k}), EM_F64, S(2, 2, 3, 5),
                     ops1_einsum_bhqd_bhkd, 1e-14);
    em_tensor *m = f64(S(3, 4), ops1_ea);
    ck_assert_tensor(em_einsum("ij->ji", 1, &m), EM_F64, S(4, 3), ops1_einsum_ij_ji, 0);
    em_tensor *sq = f64(S(3, 3), ops1_sq);
    ck_assert_tensor(em_einsum("ii->i", 1, &sq), EM_F64, S(3), ops1_einsum_ii_i, 0);
    ck_assert_tensor(em_einsum("ii->", 1, &sq), EM_F64, EM_SHAPE0, ops1_einsum_ii, 0);
    em_tensor *b1 = f64(S(4, 5), ops1_eb + 20);
    ck_assert_tensor(em_einsum("ij,jk->ki", 2, (em_tensor *[]){m, b1}), EM_F64, S(5, 3), ops1_einsum_ij_jk_ki, 1e-14);
    em_tensor *u = f64(S(4), ops1_ea), *v = f64(S(5), ops1_eb);
    ck_assert_tensor(em_einsum("i,j->ij", 2, (em_tensor *[]){u, v}), EM_F64, S(4, 5), ops1_einsum_i_j_ij, 0);
    ck_assert_tensor(em_einsum("bij,bkj->k", 2, (em_tensor *[]){a, a}), EM_F64, S(3), ops1_einsum_bij_bkj_sum, 1e-14);
    ck_assert_tensor(em_einsum("ijk->kj", 1, &a), EM_F64, S(4, 3), ops1_einsum_ijk_kj, 1e-15);
    ck_assert_error(em_einsum("...ij,...jk->...ik", 2, (em_tensor *[]){a, b}),
                    "einsum: equation \"...ij,...jk->...ik\": terms may hold only the letters");
    ck_assert_error(em_einsum("bij,bjk->bik", 2, (em_tensor *[]){a, a}), "letter 'j' has size 4 and 3");
    ck_assert_error(em_einsum("ij,jk", 2, (em_tensor *[]){m, b1}), "einsum: equation \"ij,jk\": the output must be");
    ck_assert_error(em_einsum("ij,jk,kl->il", 3, (em_tensor *[]){m, b1, b1}), "one or two inputs are supported");
}
END_TEST

START_TEST(test_where_indices) {
    em_tensor *cond = em_tensor_from(EM_F64, S(2, 3, 4), ops1_cond);
    ck_assert_tensor(em_where_indices(em_cast(cond, EM_BOOL)), EM_I64, S(9, 3), ops1_where_cond, 0);
    /* any dtype: the nonzero elements (NaN is nonzero) */
    ck_assert_tensor(em_where_indices(f64(S(4), V(0, NAN, -0.0, 2))), EM_I64, S(2, 1), V(1, 3), 0);
    ck_assert_tensor(em_where_indices(em_zeros(EM_BOOL, S(2, 2))), EM_I64, S(0, 2), V(0), 0);
    ck_assert_tensor(em_where_indices(em_scalar(EM_BOOL, 1)), EM_I64, S(1, 0), V(0), 0);
    em_tensor *ph = em_placeholder(EM_BOOL, S(-1, 3), "cond");
    em_trace_begin();
    ck_assert_error(em_where_indices(ph), "where_indices: its output's size depends on the values of cond [?,3], so it "
                                          "runs eagerly only, not in a traced graph");
    em_graph_release(em_trace_end());
}
END_TEST

START_TEST(test_random_shuffle) {
    em_set_seed(7);
    em_tensor *x = em_reshape(em_arange(EM_F64, 0, 100, 1), S(50, 2));
    em_tensor *y = em_random_shuffle(x), *z = em_random_shuffle(x);
    em_set_seed(7);
    ck_assert_double_eq(em_test_max_rel_diff(em_random_shuffle(x), y), 0); /* the same seed, the same order */
    /* rows move whole: each row is (2r, 2r + 1), and every r appears once */
    const double *v = em_data(y);
    bool seen[50] = {0};
    int moved = 0, same = 0;
    for (int i = 0; i < 50; i++) {
        int r = (int)v[2 * i] / 2;
        ck_assert_double_eq(v[2 * i + 1], v[2 * i] + 1);
        ck_assert(!seen[r]);
        seen[r] = true;
        moved += r != i;
        same += ((const double *)em_data(z))[2 * i] == v[2 * i];
    }
    ck_assert_int_gt(moved, 40);
    ck_assert_int_lt(same, 10); /* the next draw is another order */
    ck_assert_tensor(em_random_shuffle(em_zeros(EM_F32, S(0, 3))), EM_F32, S(0, 3), V(0), 0);
    ck_assert_error(em_random_shuffle(em_scalar(EM_F32, 1)), "random_shuffle: x must have at least 1 dim, got []");
}
END_TEST

int main(void) {
    Suite *s = suite_create("composed");
    TCase *tc = tcase_create("composed");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_moments);
    tcase_add_test(tc, test_moments_one_pass_error);
    tcase_add_test(tc, test_norm);
    tcase_add_test(tc, test_eye_linspace_band_part);
    tcase_add_test(tc, test_einsum);
    tcase_add_test(tc, test_where_indices);
    tcase_add_test(tc, test_random_shuffle);
    suite_add_tcase(s, tc);
    return em_test_run(s);
}
