/* Reductions: sum, mean, max, min, prod, log_sum_exp, argmax, argmin over any
 * axes, every numeric dtype, size-0 and size-1 dims, determinism across thread
 * counts, and errors naming the op, the axis and the shape. */
#include "common.h"

#include <stdlib.h>
#include <string.h>

static void teardown(void) { em_shutdown(); }

/* 0, 1, 2, ... of dtype in shape. */
static em_tensor *iota(em_dtype dtype, em_shape shape) {
    return em_reshape(em_arange(dtype, 0, (double)em_shape_numel(shape), 1), shape);
}

#define T(...) ((double[]){__VA_ARGS__})

START_TEST(test_sum_axes_and_keepdims) {
    em_tensor *x = iota(EM_F32, EM_SHAPE(2, 3));
    ck_assert_tensor(em_sum(x, EM_ALL_AXES, false), EM_F32, EM_SHAPE0, T(15), 0);
    ck_assert_tensor(em_sum(x, EM_AXES(0), false), EM_F32, EM_SHAPE(3), T(3, 5, 7), 0);
    ck_assert_tensor(em_sum(x, EM_AXES(1), false), EM_F32, EM_SHAPE(2), T(3, 12), 0);
    ck_assert_tensor(em_sum(x, EM_AXES(-1), true), EM_F32, EM_SHAPE(2, 1), T(3, 12), 0);
    ck_assert_tensor(em_sum(x, EM_AXES(-2), true), EM_F32, EM_SHAPE(1, 3), T(3, 5, 7), 0);
    ck_assert_tensor(em_sum(x, EM_AXES(1, 0), true), EM_F32, EM_SHAPE(1, 1), T(15), 0);
    ck_assert_tensor(em_sum(x, EM_ALL_AXES, true), EM_F32, EM_SHAPE(1, 1), T(15), 0);

    em_tensor *y = iota(EM_F64, EM_SHAPE(2, 3, 4));
    ck_assert_tensor(em_sum(y, EM_AXES(0, 2), false), EM_F64, EM_SHAPE(3), T(60, 92, 124), 0);
    ck_assert_tensor(em_sum(y, EM_AXES(1), false), EM_F64, EM_SHAPE(2, 4), T(12, 15, 18, 21, 48, 51, 54, 57), 0);
    ck_assert_tensor(em_sum(y, EM_AXES(-2), true), EM_F64, EM_SHAPE(2, 1, 4), T(12, 15, 18, 21, 48, 51, 54, 57), 0);
    ck_assert_tensor(em_max(y, EM_AXES(0, 1), false), EM_F64, EM_SHAPE(4), T(20, 21, 22, 23), 0);
    ck_assert_tensor(em_min(y, EM_AXES(-1), false), EM_F64, EM_SHAPE(2, 3), T(0, 4, 8, 12, 16, 20), 0);
    /* a scalar reduces to itself */
    ck_assert_tensor(em_sum(em_scalar(EM_F32, 2.5), EM_ALL_AXES, false), EM_F32, EM_SHAPE0, T(2.5), 0);
}
END_TEST

START_TEST(test_every_numeric_dtype) {
    const em_dtype dts[] = {EM_F32, EM_F64, EM_I32, EM_I64, EM_U8};
    for (size_t k = 0; k < sizeof dts / sizeof dts[0]; k++) {
        em_dtype dt = dts[k];
        /* [[3, 1, 4], [1, 5, 9]] */
        em_tensor *x = em_reshape(em_cast(em_tensor_from(EM_F64, EM_SHAPE(6), T(3, 1, 4, 1, 5, 9)), dt), EM_SHAPE(2, 3));
        ck_assert_tensor(em_sum(x, EM_AXES(1), false), dt, EM_SHAPE(2), T(8, 15), 0);
        ck_assert_tensor(em_sum(x, EM_AXES(0), false), dt, EM_SHAPE(3), T(4, 6, 13), 0);
        ck_assert_tensor(em_prod(x, EM_AXES(1), false), dt, EM_SHAPE(2), T(12, 45), 0);
        ck_assert_tensor(em_prod(x, EM_AXES(0), false), dt, EM_SHAPE(3), T(3, 5, 36), 0);
        ck_assert_tensor(em_max(x, EM_AXES(1), false), dt, EM_SHAPE(2), T(4, 9), 0);
        ck_assert_tensor(em_min(x, EM_ALL_AXES, false), dt, EM_SHAPE0, T(1), 0);
        ck_assert_tensor(em_argmax(x, 1), EM_I64, EM_SHAPE(2), T(2, 2), 0);
        ck_assert_tensor(em_argmin(x, 1), EM_I64, EM_SHAPE(2), T(1, 0), 0);
        ck_assert_tensor(em_argmax(x, 0), EM_I64, EM_SHAPE(3), T(0, 1, 1), 0);
        ck_assert_tensor(em_argmin(x, -2), EM_I64, EM_SHAPE(3), T(1, 0, 0), 0);
        /* integer means truncate like TensorFlow: 8/3 -> 2, 15/3 -> 5 */
        bool isf = dt == EM_F32 || dt == EM_F64;
        ck_assert_tensor(em_mean(x, EM_AXES(1), false), dt, EM_SHAPE(2), isf ? T(8.0 / 3, 5) : T(2, 5), 1e-6);
        ck_assert_tensor(em_mean(x, EM_ALL_AXES, true), dt, EM_SHAPE(1, 1), isf ? T(23.0 / 6) : T(3), 1e-6);
    }
    /* signed integers: negative values, and a sum that stays in the dtype */
    em_tensor *n = em_tensor_from(EM_I32, EM_SHAPE(4), (int32_t[]){-7, 2, -3, 5});
    ck_assert_tensor(em_sum(n, EM_ALL_AXES, false), EM_I32, EM_SHAPE0, T(-3), 0);
    ck_assert_tensor(em_min(n, EM_ALL_AXES, false), EM_I32, EM_SHAPE0, T(-7), 0);
    ck_assert_tensor(em_prod(n, EM_ALL_AXES, false), EM_I32, EM_SHAPE0, T(210), 0);
    ck_assert_tensor(em_mean(n, EM_ALL_AXES, false), EM_I32, EM_SHAPE0, T(0), 0); /* -3/4 truncates to 0 */
    /* uint8 wraps like the dtype */
    em_tensor *u = em_tensor_from(EM_U8, EM_SHAPE(3), (uint8_t[]){200, 100, 1});
    ck_assert_tensor(em_sum(u, EM_ALL_AXES, false), EM_U8, EM_SHAPE0, T(45), 0);
}
END_TEST

START_TEST(test_log_sum_exp_and_prod) {
    em_tensor *y = em_tensor_from(EM_F64, EM_SHAPE(2, 3), T(0.5, -1.2, 3.0, 2.0, 2.0, -0.1));
    ck_assert_tensor(em_log_sum_exp(y, EM_AXES(1), false), EM_F64, EM_SHAPE(2), T(3.092652629319856, 2.7525741104899355),
                     1e-14);
    ck_assert_tensor(em_log_sum_exp(y, EM_AXES(0), true), EM_F64, EM_SHAPE(1, 3),
                     T(2.2014132779827524, 2.03995333316243, 3.0440639679385737), 1e-14);
    ck_assert_tensor(em_log_sum_exp(y, EM_ALL_AXES, false), EM_F64, EM_SHAPE0, T(3.6301480926498737), 1e-14);
    ck_assert_tensor(em_prod(y, EM_AXES(1), false), EM_F64, EM_SHAPE(2), T(-1.8, -0.4), 1e-14);
    /* stable where exp overflows, and -inf for all -inf */
    em_tensor *big = em_tensor_from(EM_F32, EM_SHAPE(2, 2), (float[]){1000, 1000, -INFINITY, -INFINITY});
    ck_assert_tensor(em_log_sum_exp(big, EM_AXES(1), false), EM_F32, EM_SHAPE(2), T(1000 + log(2.0), -INFINITY), 1e-6);
    em_tensor *x = iota(EM_F32, EM_SHAPE(2, 3, 4));
    ck_assert_tensor(em_log_sum_exp(x, EM_AXES(0, 2), false), EM_F32, EM_SHAPE(3),
                     T(15.440195842754672, 19.440195842754672, 23.440195842754672), 1e-6);
}
END_TEST

START_TEST(test_nan_ties_and_first_occurrence) {
    em_tensor *x = em_tensor_from(EM_F32, EM_SHAPE(2, 3), (float[]){1, NAN, 3, 2, 7, 7});
    ck_assert_tensor(em_max(x, EM_AXES(1), false), EM_F32, EM_SHAPE(2), T(NAN, 7), 0);
    ck_assert_tensor(em_min(x, EM_AXES(1), false), EM_F32, EM_SHAPE(2), T(NAN, 2), 0);
    ck_assert_tensor(em_argmax(x, 1), EM_I64, EM_SHAPE(2), T(1, 1), 0); /* the NaN; the first 7 */
    ck_assert_tensor(em_argmin(x, 1), EM_I64, EM_SHAPE(2), T(1, 0), 0);
    ck_assert_tensor(em_max(x, EM_AXES(0), false), EM_F32, EM_SHAPE(3), T(2, NAN, 7), 0);
    em_tensor *e = em_tensor_from(EM_I64, EM_SHAPE(5), (int64_t[]){4, 9, 2, 9, 2});
    ck_assert_tensor(em_argmax(e, 0), EM_I64, EM_SHAPE0, T(1), 0);
    ck_assert_tensor(em_argmin(e, -1), EM_I64, EM_SHAPE0, T(2), 0);
}
END_TEST

/* Long rows take the many-lane loops: the extreme is found wherever it lies,
 * a NaN anywhere (even among the leftover tail) still wins, and infinities are
 * no NaN. */
START_TEST(test_max_min_long_rows) {
    enum { LEN = 1001 };
    static float v[4][LEN];
    for (int r = 0; r < 4; r++)
        for (int j = 0; j < LEN; j++) v[r][j] = (float)((j * 37) % 101) - 50.0f;
    v[0][613] = 1000, v[0][614] = -1000;
    v[1][517] = NAN;
    v[2][LEN - 1] = NAN;
    v[3][300] = INFINITY, v[3][301] = -INFINITY; /* infinities, no NaN */
    em_tensor *x = em_tensor_from(EM_F32, EM_SHAPE(4, LEN), v);
    ck_assert_tensor(em_max(x, EM_AXES(1), false), EM_F32, EM_SHAPE(4), T(1000, NAN, NAN, INFINITY), 0);
    ck_assert_tensor(em_min(x, EM_AXES(1), false), EM_F32, EM_SHAPE(4), T(-1000, NAN, NAN, -INFINITY), 0);
    ck_assert_tensor(em_max(em_slice(x, (int64_t[]){0, 0}, (int64_t[]){1, LEN}), EM_ALL_AXES, false), EM_F32, EM_SHAPE0,
                     T(1000), 0);
}
END_TEST

START_TEST(test_size_zero_and_size_one_dims) {
    em_tensor *z = em_zeros(EM_F32, EM_SHAPE(2, 0));
    ck_assert_tensor(em_sum(z, EM_AXES(1), false), EM_F32, EM_SHAPE(2), T(0, 0), 0);
    ck_assert_tensor(em_prod(z, EM_AXES(1), false), EM_F32, EM_SHAPE(2), T(1, 1), 0);
    ck_assert_tensor(em_sum(z, EM_ALL_AXES, false), EM_F32, EM_SHAPE0, T(0), 0);
    ck_assert_tensor(em_log_sum_exp(z, EM_AXES(1), false), EM_F32, EM_SHAPE(2), T(-INFINITY, -INFINITY), 0);
    ck_assert_int_eq(em_numel(em_sum(z, EM_AXES(0), false)), 0);
    ck_assert_int_eq(em_numel(em_max(z, EM_AXES(0), true)), 0); /* nothing to compute: no error */
    ck_assert_error(em_max(z, EM_AXES(1), false), "max: cannot reduce over axis 1 of size 0 of input [2,0]");
    ck_assert_error(em_min(z, EM_ALL_AXES, false), "min: cannot reduce over axis 1 of size 0");
    ck_assert_error(em_argmax(z, 1), "argmax: cannot reduce over axis 1 of size 0");
    ck_assert_tensor(em_mean(z, EM_AXES(1), false), EM_F32, EM_SHAPE(2), T(NAN, NAN), 0);

    em_tensor *x = iota(EM_I32, EM_SHAPE(1, 3, 1));
    ck_assert_tensor(em_sum(x, EM_AXES(1), false), EM_I32, EM_SHAPE(1, 1), T(3), 0);
    ck_assert_tensor(em_sum(x, EM_AXES(0, 2), false), EM_I32, EM_SHAPE(3), T(0, 1, 2), 0);
    ck_assert_tensor(em_max(x, EM_AXES(2), true), EM_I32, EM_SHAPE(1, 3, 1), T(0, 1, 2), 0);
    ck_assert_tensor(em_argmax(x, 2), EM_I64, EM_SHAPE(1, 3), T(0, 0, 0), 0);
    ck_assert_tensor(em_argmax(x, 1), EM_I64, EM_SHAPE(1, 1), T(2), 0);
}
END_TEST

/* A strided (transposed) input reduces like its values. */
START_TEST(test_strided_input) {
    em_tensor *x = em_transpose(iota(EM_F64, EM_SHAPE(2, 3)), EM_ALL_AXES); /* [[0,3],[1,4],[2,5]] */
    ck_assert_tensor(em_sum(x, EM_AXES(1), false), EM_F64, EM_SHAPE(3), T(3, 5, 7), 0);
    ck_assert_tensor(em_argmax(x, 0), EM_I64, EM_SHAPE(2), T(2, 2), 0);
    em_tensor *b = em_broadcast_to(em_tensor_from(EM_F32, EM_SHAPE(3), (float[]){1, 2, 3}), EM_SHAPE(4, 3));
    ck_assert_tensor(em_sum(b, EM_AXES(0), false), EM_F32, EM_SHAPE(3), T(4, 8, 12), 0);
}
END_TEST

/* Pseudo-random float32 data in [-1, 1). */
static em_tensor *noise(em_shape shape, uint64_t seed) {
    int64_t n = em_shape_numel(shape);
    float *v = malloc(sizeof(float) * (size_t)n);
    uint64_t s = seed * 0x9E3779B97F4A7C15ULL + 1;
    for (int64_t i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        v[i] = (float)((double)(s >> 11) / 4503599627370496.0 - 1.0);
    }
    em_tensor *t = em_tensor_from(EM_F32, shape, v);
    free(v);
    return t;
}

static bool same_bits(em_tensor *a, em_tensor *b) {
    return a && b && em_numel(a) == em_numel(b) &&
           memcmp(em_data(a), em_data(b), (size_t)em_numel(a) * em_dtype_size(em_tensor_dtype(a))) == 0;
}

/* The common training shapes: row sums, column sums (a bias gradient), a full
 * sum big enough to be cut into chunks; identical on 1 and 2 threads and close
 * to a double-precision reference. */
START_TEST(test_large_reductions_match_reference_and_any_thread_count) {
    em_tensor *x = noise(EM_SHAPE(300, 1000), 5);
    em_tensor *full = noise(EM_SHAPE(3, 200000), 6);
    const float *xv = em_data(x);
    em_tensor *r[2][7];
    for (int t = 0; t < 2; t++) {
        em_set_num_threads(t + 1);
        r[t][0] = em_sum(x, EM_AXES(0), false);
        r[t][1] = em_sum(x, EM_AXES(1), false);
        r[t][2] = em_sum(full, EM_ALL_AXES, false);
        r[t][3] = em_max(full, EM_AXES(1), false);
        r[t][4] = em_argmin(full, 1);
        r[t][5] = em_log_sum_exp(x, EM_AXES(0), true);
        r[t][6] = em_log_sum_exp(full, EM_ALL_AXES, false);
    }
    for (int k = 0; k < 7; k++) ck_assert_msg(same_bits(r[0][k], r[1][k]), "result %d differs between 1 and 2 threads", k);

    const float *col = em_data(r[0][0]), *row = em_data(r[0][1]);
    for (int j = 0; j < 1000; j++) {
        double s = 0;
        for (int i = 0; i < 300; i++) s += xv[i * 1000 + j];
        ck_assert_msg(fabs(col[j] - s) < 1e-5, "column %d: %g vs %g", j, col[j], s);
    }
    for (int i = 0; i < 300; i++) {
        double s = 0;
        for (int j = 0; j < 1000; j++) s += xv[i * 1000 + j];
        ck_assert_msg(fabs(row[i] - s) < 1e-4, "row %d: %g vs %g", i, row[i], s);
    }
    const float *fv = em_data(full);
    double s = 0, m = -INFINITY;
    for (int64_t i = 0; i < 600000; i++) s += fv[i];
    ck_assert_double_eq_tol(em_item(r[0][2]), s, 1e-2);
    for (int64_t i = 0; i < 600000; i++) m = fv[i] > m ? fv[i] : m;
    double e = 0;
    for (int64_t i = 0; i < 600000; i++) e += exp(fv[i] - m);
    ck_assert_double_eq_tol(em_item(r[0][6]), m + log(e), 1e-5);
    em_set_num_threads(0);
}
END_TEST

/* Contiguous rows take a loop of their own (lib/ops/reduce.c), a strided view the general walk of the plan: a
 * slice of [3, 7, 700] to [3, 5, 700] (its kept axes do not merge) reduces over its rows to the same bits as its
 * contiguous copy, for each op with a row kernel of its own. */
START_TEST(test_strided_rows_match_contiguous_rows) {
    em_tensor *x = noise(EM_SHAPE(3, 7, 700), 7);
    em_tensor *view = em_slice(x, (int64_t[]){0, 1, 0}, (int64_t[]){-1, 5, -1}), *copy = em_copy(view);
    em_tensor *(*const ops[])(em_tensor *, int, const int *, bool) = {em_sum, em_max, em_min, em_log_sum_exp};
    for (int k = 0; k < 4; k++)
        ck_assert_msg(same_bits(ops[k](view, EM_AXES(2), false), ops[k](copy, EM_AXES(2), false)), "op %d", k);
    ck_assert(same_bits(em_argmax(view, 2), em_argmax(copy, 2)));
}
END_TEST

/* float32 sums add float32 lanes over short fixed blocks and the block sums in double (lib/ops/reduce.c), so
 * each term meets at most 6 float32 roundings: on terms of both signs spread over 2^-10 to 2^14, which cancel,
 * all axes, rows and columns stay within 6 u sum|x| + u |sum| (u = 2^-24) of the float64 sum, below pairwise
 * float32 summation's log2(n) u sum|x| (9 to 20 here). A large term followed by 2^20 ones loses at most 3 of
 * them, where a float32 loop adding in order would lose all. */
START_TEST(test_float32_sums_within_blocked_error_bound) {
    enum { R = 512, C = 2048 };
    float *v = malloc(sizeof(float) * R * C);
    uint64_t st = 11;
    for (int64_t i = 0; i < (int64_t)R * C; i++) {
        st ^= st << 13, st ^= st >> 7, st ^= st << 17;
        double r = (double)(st >> 11) / 9007199254740992.0; /* [0, 1) */
        v[i] = (float)((st & 1 ? -1 : 1) * (1 + r) * ldexp(1, (int)(st >> 1 & 31) % 25 - 10));
    }
    em_tensor *x = em_tensor_from(EM_F32, EM_SHAPE(R, C), v);
    em_tensor *all = em_sum(x, EM_ALL_AXES, false), *rows = em_sum(x, EM_AXES(1), false),
              *cols = em_sum(x, EM_AXES(0), false);
    const double u = ldexp(1, -24);
    double s = 0, a = 0;
    for (int64_t i = 0; i < (int64_t)R * C; i++) s += v[i], a += fabs(v[i]);
    ck_assert_msg(fabs(em_item(all) - s) <= 6 * u * a + u * fabs(s), "all: %.9g vs %.9g", em_item(all), s);
    const float *rv = em_data(rows), *cv = em_data(cols);
    for (int i = 0; i < R; i++) {
        s = a = 0;
        for (int j = 0; j < C; j++) s += v[i * C + j], a += fabs(v[i * C + j]);
        ck_assert_msg(fabs(rv[i] - s) <= 6 * u * a + u * fabs(s), "row %d: %.9g vs %.9g", i, rv[i], s);
    }
    for (int j = 0; j < C; j++) {
        s = a = 0;
        for (int i = 0; i < R; i++) s += v[i * C + j], a += fabs(v[i * C + j]);
        ck_assert_msg(fabs(cv[j] - s) <= 6 * u * a + u * fabs(s), "column %d: %.9g vs %.9g", j, cv[j], s);
    }
    for (int64_t i = 0; i < (int64_t)R * C; i++) v[i] = i ? 1 : 16777216;
    em_tensor *ones = em_tensor_from(EM_F32, EM_SHAPE(R * C), v);
    ck_assert_double_le(fabs(em_item(em_sum(ones, EM_ALL_AXES, false)) - (16777216.0 + R * C - 1)), 4);
    free(v);
}
END_TEST

START_TEST(test_errors_name_op_axis_and_shape) {
    em_tensor *x = em_zeros(EM_F32, EM_SHAPE(2, 3));
    ck_assert_error(em_sum(x, EM_AXES(2), false), "sum: axis 2 is out of range for input of shape [2,3] (rank 2)");
    ck_assert_error(em_max(x, EM_AXES(-3), false), "max: axis -3 is out of range for input of shape [2,3]");
    ck_assert_error(em_prod(x, EM_AXES(1, -1), false), "prod: axis -1 is repeated in the axes for input of shape [2,3]");
    ck_assert_error(em_mean(x, EM_AXES(0, 0), false), "mean: axis 0 is repeated");
    ck_assert_error(em_argmax(x, 2), "argmax: axis 2 is out of range for input of shape [2,3]");
    ck_assert_error(em_argmin(em_scalar(EM_F32, 1), 0), "argmin: axis 0 is out of range for input of shape []");
    ck_assert_error(em_sum(x, -1, NULL, false), "sum: -1 axes given");
    ck_assert_error(em_sum(em_zeros(EM_BOOL, EM_SHAPE(2)), EM_ALL_AXES, false), "sum: input of dtype bool");
    ck_assert_error(em_log_sum_exp(em_zeros(EM_I32, EM_SHAPE(2)), EM_ALL_AXES, false),
                    "log_sum_exp: input of dtype int32 is not supported (float32 or float64)");
    ck_assert_error(em_min(NULL, EM_ALL_AXES, false), "min");
}
END_TEST

/* max and min split the gradient evenly among ties, like TensorFlow. */
START_TEST(test_gradients_of_max_sum_mean) {
    em_tensor *x = em_tensor_from(EM_F64, EM_SHAPE(2, 3), T(1, 3, 3, 5, 2, 4));
    em_tape *tape = em_tape_begin(true);
    em_tensor *m = em_max(x, EM_AXES(1), false);
    em_tensor *s = em_sum(x, EM_AXES(0), true);
    em_tensor *a = em_mean(x, EM_ALL_AXES, false);
    em_tensor *g[1];
    ck_assert_int_eq(em_gradients(tape, m, 1, &x, g), 0);
    ck_assert_tensor(g[0], EM_F64, EM_SHAPE(2, 3), T(0, 0.5, 0.5, 1, 0, 0), 1e-15);
    ck_assert_int_eq(em_gradients(tape, s, 1, &x, g), 0);
    ck_assert_tensor(g[0], EM_F64, EM_SHAPE(2, 3), T(1, 1, 1, 1, 1, 1), 0);
    ck_assert_int_eq(em_gradients(tape, a, 1, &x, g), 0);
    ck_assert_tensor(g[0], EM_F64, EM_SHAPE(2, 3), T(1. / 6, 1. / 6, 1. / 6, 1. / 6, 1. / 6, 1. / 6), 1e-15);
    em_tensor *i = em_argmax(x, 1);
    ck_assert_int_eq(em_gradients(tape, em_cast(i, EM_F64), 1, &x, g), -1);
    ck_assert_ptr_nonnull(strstr(em_last_error(), "argmax"));
    em_clear_error();
    em_tape_release(tape);
}
END_TEST

/* bfloat16 and float16 sums and means never accumulate in their own type, where 256 + 1 is 256 (bfloat16) and
 * 32 + 2^-6 is 32 (float16): 100000 ones sum to 100000 rounded to bfloat16 once (99840: a multiple of 512),
 * their mean is 1; 100000 x 2^-6 sum to 1562.5, a float16 tie, 1562. */
START_TEST(test_narrow_sums_accumulate_in_float32) {
    em_tensor *ones = em_ones(EM_BF16, EM_SHAPE(100000));
    ck_assert_tensor(em_sum(ones, EM_ALL_AXES, false), EM_BF16, EM_SHAPE0, ((double[]){99840}), 0);
    ck_assert_tensor(em_mean(ones, EM_ALL_AXES, false), EM_BF16, EM_SHAPE0, ((double[]){1}), 0);
    em_tensor *r = em_reshape(ones, EM_SHAPE(1000, 100)); /* many outputs: the column kernel */
    em_tensor *cols = em_sum(r, EM_AXES(0), false);
    ck_assert_double_eq(em_item(em_max(cols, EM_ALL_AXES, false)), 1000);
    ck_assert_double_eq(em_item(em_min(cols, EM_ALL_AXES, false)), 1000);
    em_tensor *small = em_fill(EM_F16, EM_SHAPE(100000), 0.015625);
    ck_assert_tensor(em_sum(small, EM_ALL_AXES, false), EM_F16, EM_SHAPE0, ((double[]){1562}), 0);
}
END_TEST

int main(void) {
    Suite *s = suite_create("reduce");
    TCase *tc = tcase_create("reduce");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_sum_axes_and_keepdims);
    tcase_add_test(tc, test_every_numeric_dtype);
    tcase_add_test(tc, test_log_sum_exp_and_prod);
    tcase_add_test(tc, test_nan_ties_and_first_occurrence);
    tcase_add_test(tc, test_max_min_long_rows);
    tcase_add_test(tc, test_size_zero_and_size_one_dims);
    tcase_add_test(tc, test_strided_input);
    tcase_add_test(tc, test_large_reductions_match_reference_and_any_thread_count);
    tcase_add_test(tc, test_strided_rows_match_contiguous_rows);
    tcase_add_test(tc, test_float32_sums_within_blocked_error_bound);
    tcase_add_test(tc, test_errors_name_op_axis_and_shape);
    tcase_add_test(tc, test_gradients_of_max_sum_mean);
    tcase_add_test(tc, test_narrow_sums_accumulate_in_float32);
    suite_add_tcase(s, tc);
    return em_test_run(s);
}
