/* nn ops: softmax family and cross entropies, conv2d (SAME/VALID, strided,
 * dilated) with its backprops, pools, bias_add, dropout. Expectations were
 * computed with NumPy from seq() (direct loops over TF's padding rule). */
#include "common.h"

#include <limits.h>

#include <stdlib.h>
#include <string.h>

/* a * ((i * 7 + s * 3) % 11 - 5) / 4 + b: small exact values NumPy reproduces. */
static em_tensor *lin(em_dtype dt, em_shape shape, int s, double a, double b) {
    int64_t n = em_shape_numel(shape);
    double *v = malloc(sizeof(double) * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++) v[i] = a * (double)((i * 7 + s * 3) % 11 - 5) / 4 + b;
    em_tensor *t = em_cast(em_tensor_from(EM_F64, shape, v), dt);
    free(v);
    return t;
}
static em_tensor *seq(em_dtype dt, em_shape shape, int s) { return lin(dt, shape, s, 1, 0); }

/* Tolerance for float32 results (float64 results are held to 1e-9). */
static double tol(em_dtype dt) { return dt == EM_F32 ? 2e-5 : 1e-9; }

static const double SM_LAST[] = {
    0.112719204708, 0.648654237052, 0.23862655824, 0.112719204708, 0.648654237052, 0.23862655824
};
static const double SM_AX0[] = {
    0.562176500886, 0.562176500886, 0.562176500886, 0.437823499114, 0.437823499114, 0.437823499114
};
static const double LSM_LAST[] = {
    -2.18285546688, -0.432855466879, -1.43285546688, -2.18285546688, -0.432855466879, -1.43285546688
};
static const double SM_BIG[] = {
    0.0900305731704, 0.244728471055, 0.665240955775
};
static const double LSM_BIG[] = {
    -2.40760596444, -1.40760596444, -0.407605964444
};
static const double SX[] = {
    0.911871006115, 2.35020655892, 1.24858735157, 0.69314718056, 2.74858735157, 1.22520655892
};
static const double XENT[] = {
    1.57580204923, 1.72580204923
};
static const double SPARSE[] = {
    0.225802049232, 1.72580204923
};
static const double CONV_VALID[] = {
    -0.625, -0.375, -1.5, -2.5625, -0.6875, -2.25, 3.0625, 1.75, 2.5, 0.6875, 1.5, -1.8125, 2.1875, 1.875,
    2.9375, 0.25, -3.25, 0.125, -1.4375, -0.0625, 2.0, -0.625, -0.375, -1.5, -2.5625, -0.6875, -2.25
};
static const double CONV_SAME[] = {
    -1.0625, 1.3125, -1.8125, 1.1875, 1.625, 1.375, 0.25, -2.125, 0.3125, -2.0625, 0.3125, -2.125, 1.0625,
    1.9375, 1.4375, 0.0625, 0.375, 1.375, -0.625, -0.375, -1.5, -2.5625, -0.6875, -2.25, 3.0625, 1.75, 2.5,
    -0.3125, -2.9375, -0.0625, -0.6875, -2.0625, 1.375, 0.6875, 1.5, -1.8125, 2.1875, 1.875, 2.9375, 0.25,
    -3.25, 0.125, -1.25, -1.4375, -0.9375, -1.4375, 3.0625, 1.375, -1.4375, -0.0625, 2.0, -0.625, -0.375, -1.5,
    -2.5625, -0.6875, -2.25, 1.25, 3.5, 1.625, 0.875, -0.8125, -1.8125, -3.1875, 1.125, -0.0625, 1.8125, -1.5,
    -0.6875, 3.375, 0.0, 2.8125, 0.0625, -1.75, -0.8125
};
static const double CONV_SAME_S2[] = {
    -1.0625, 1.3125, -1.8125, 0.25, -2.125, 0.3125, 1.0625, 1.9375, 1.4375, -0.6875, -2.0625, 1.375, 2.1875,
    1.875, 2.9375, -1.25, -1.4375, -0.9375, 0.875, -0.8125, -1.8125, 1.8125, -1.5, -0.6875, 0.0625, -1.75,
    -0.8125
};
static const double CONV_DIL_SAME[] = {
    1.875, -2.0625, 0.1875, -2.3125, 1.5, -0.1875, 3.125, 0.9375, -4.0, -2.5, -0.0625, 1.0, -2.3125, 1.0, 0.875,
    -0.5, -0.75, -0.3125, 0.8125, 0.75, -2.75, -0.1875, 2.8125, 0.3125, -2.25, 1.125, 0.375, 3.4375, -2.625,
    0.25, -3.4375, 4.4375, -0.0625, 2.1875, -3.75, -0.0625, 1.0, -2.75, 1.75, 3.4375, 3.0, -2.9375, -1.5625,
    -2.0625, 1.5625, -0.8125, -1.75, 3.5, 0.5625, -2.25, 1.125, -0.5625, 3.125, -1.4375, -0.4375, -2.5625,
    0.8125, -2.25, -0.75, 0.75, 1.25, 1.25, -0.125, -2.1875, 3.5, 0.25, -0.3125, -1.75, -1.125, 1.5, -2.4375,
    1.875, 3.125, 2.8125, -2.3125
};
static const double CONV_DIL_VALID[] = {
    1.0, -2.75, 1.75
};
static const double CONV6[] = {
    0.375, 0.0625, 3.5625, -2.125, -2.6875, 2.75, -2.5, 2.0625, 0.6875, -0.125, 3.375, -1.6875, 2.0625, -0.25,
    -0.875, 1.9375, 0.375, 0.0, 0.6875, -0.125, 2.5, 1.125, -1.0, -1.625, -2.1875, 1.875, -1.0625, -0.3125,
    0.9375, 0.125, 2.125, -0.0625, -1.5, -1.3125, 0.5625, -0.1875
};
static const double CONV6_DX[] = {
    -0.6875, 1.625, -0.375, 0.5, -0.5625, -0.625, -0.625, -1.0625, 1.75, -0.875, 2.125, -0.6875, 1.625, -1.375,
    -2.5625, 0.375, -0.4375, -1.3125, -0.6875, 1.5625, -1.25, -1.0, 1.875, -0.8125, 0.8125, 1.125, 2.4375,
    -1.9375, -2.3125, -0.1875, -1.4375, 1.4375, -0.8125, 1.625, -1.125, -0.9375, -1.0, -0.25, 2.0625, -0.6875,
    -1.5625, 1.625, 1.25, -0.75, -1.0625, 1.5, -1.375, -1.0625, -0.125, -0.75, -2.0, 1.0, 3.5625, -1.375, 0.5,
    -0.875, 2.125, -0.6875, -0.9375, 1.5625, -0.25, 0.375, -0.4375, -1.3125, 1.0, 1.125, -0.25, -1.0, 1.875,
    -0.8125, -1.1875, 1.4375
};
static const double CONV6_DW[] = {
    0.5, 0.25, -1.125, -4.0, 0.875, 4.0, -2.375, -0.5, 0.125, 2.125, 2.8125, -1.8125, -2.5625, -2.0, 1.375,
    2.25, -1.3125, 0.1875
};
static const double MAXP_VALID[] = {
    1.0, 1.0, 0.75, 0.5, 1.25, 1.0, 0.75, 0.75
};
static const double MAXP_SAME[] = {
    1.0, 1.0, 1.0, 0.75, 1.25, 1.25, 1.25, 1.0, 1.0, 1.0, 0.75, 0.5
};
static const double AVGP_SAME[] = {
    0.0833333333333, 0.0, -0.166666666667, -0.25, 0.0416666666667, -0.0416666666667, 0.4375, 0.125,
    -0.0416666666667, -0.125, -0.0625, -0.375
};
static const double AVGP_VALID[] = {
    -0.1875, 0.1875, -0.125, -0.4375, -0.0625, -0.375, 0.0, 0.375, 0.125, -0.1875, 0.1875, -0.125, -0.4375,
    -0.0625, -0.375, 0.0, 0.4375, 0.125, -0.1875, 0.1875, -0.125, -0.4375, -0.0625, -0.375
};
static const double MAXP_DX[] = {
    0.5, 0.0, 0.0, 0.25, 0.0, 0.0, 0.0, 0.0, -0.75, 0.0, 0.0, -0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0,
    0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.25, 0.0, 0.0, -1.25, 0.0, 0.0, 0.5
};
static const double AVGP_DX[] = {
    0.0833333333333, -0.0833333333333, 0.222222222222, -0.0555555555556, 0.138888888889, 0.0277777777778,
    0.0138888888889, 0.194444444444, -0.125, 0.166666666667, 0.0833333333333, -0.0833333333333, 0.222222222222,
    -0.0555555555556, 0.138888888889, 0.0277777777778, 0.0138888888889, 0.194444444444, -0.125, 0.166666666667,
    0.0833333333333, -0.333333333333, 0.347222222222, -0.347222222222, 0.263888888889, -0.0138888888889,
    -0.173611111111, 0.277777777778, -0.4375, 0.291666666667, 0.0, -0.25, 0.125, -0.291666666667, 0.125,
    -0.0416666666667, -0.1875, 0.0833333333333, -0.3125, 0.125
};

START_TEST(test_softmax_values) {
    for (em_dtype dt = EM_F32; dt <= EM_F64; dt++) {
        em_tensor *x = seq(dt, EM_SHAPE(2, 3), 1);
        ck_assert_tensor(em_softmax(x, -1), dt, EM_SHAPE(2, 3), SM_LAST, tol(dt));
        ck_assert_tensor(em_softmax(x, 0), dt, EM_SHAPE(2, 3), SM_AX0, tol(dt));
        ck_assert_tensor(em_log_softmax(x, 1), dt, EM_SHAPE(2, 3), LSM_LAST, tol(dt));
        /* stable: exp(1000) would overflow */
        em_tensor *big = em_cast(em_tensor_from(EM_F64, EM_SHAPE(3), (double[]){1000, 1001, 1002}), dt);
        ck_assert_tensor(em_softmax(big, 0), dt, EM_SHAPE(3), SM_BIG, tol(dt));
        ck_assert_tensor(em_log_softmax(big, -1), dt, EM_SHAPE(3), LSM_BIG, tol(dt));
        /* size-0 and size-1 axes */
        ck_assert_tensor(em_softmax(em_zeros(dt, EM_SHAPE(0, 3)), -1), dt, EM_SHAPE(0, 3), NULL, 0);
        static const double one[] = {1, 1};
        ck_assert_tensor(em_softmax(seq(dt, EM_SHAPE(2, 1), 3), -1), dt, EM_SHAPE(2, 1), one, 0);
    }
    ck_assert_error(em_softmax(em_ones(EM_F32, EM_SHAPE(2, 3)), 2), "softmax: axis 2 is out of range");
    ck_assert_error(em_log_softmax(em_ones(EM_I32, EM_SHAPE(2, 3)), 0), "log_softmax: logits has dtype int32");
    ck_assert_error(em_softmax(NULL, 0), "softmax");
    em_shutdown();
}
END_TEST

/* Wide float32 rows (the vectorized kernel and its polynomial exp) agree with
 * float64 along the last axis and a strided one; a NaN makes its whole row
 * NaN and leaves the other rows alone. */
START_TEST(test_softmax_wide_rows_float32) {
    em_tensor *x32 = em_cast(em_test_uniform(EM_SHAPE(5, 1003), -30, 30, 7), EM_F32), *x64 = em_cast(x32, EM_F64);
    for (int axis = 0; axis < 2; axis++) {
        ck_assert_double_lt(em_test_max_rel_diff(em_softmax(x32, axis), em_softmax(x64, axis)), 1e-6);
        ck_assert_double_lt(em_test_max_rel_diff(em_log_softmax(x32, axis), em_log_softmax(x64, axis)), 1e-6);
    }
    float row[2][40];
    for (int j = 0; j < 40; j++) row[0][j] = row[1][j] = (float)j / 8;
    row[0][17] = NAN;
    const float *y = em_data(em_softmax(em_tensor_from(EM_F32, EM_SHAPE(2, 40), row), -1));
    double total = 0;
    for (int j = 0; j < 40; j++) {
        ck_assert(isnan(y[j]));
        total += y[40 + j];
    }
    ck_assert_double_eq_tol(total, 1, 1e-6);
    em_shutdown();
}
END_TEST

/* The float32 row kernels against float64, forward and backward (dx from the incoming gradient g by the
 * gradient's one-pass sums), last axis: rows of 10, 17 and 32 (run in blocks of rows; 17 ends the vector
 * maximum on overlapping elements) and of GPT-2's padded vocabulary, 50,304 (blocked sums of the products
 * g y). softmax is compared at its outputs' scale (times the row length, as they are about 1 / length).
 * 1 and 3 threads give the same bits (a block's rows are computed as they would be alone). */
START_TEST(test_softmax_rows_float32_match_float64) {
    static const int64_t shapes[][2] = {{70, 10}, {9, 17}, {40, 32}, {2, 50304}};
    for (int c = 0; c < 4; c++) {
        em_shape shape = EM_SHAPE(shapes[c][0], shapes[c][1]);
        em_tensor *x32 = em_cast(em_test_uniform(shape, -20, 20, 11 + c), EM_F32);
        em_tensor *g32 = em_cast(em_test_uniform(shape, -1, 1, 23 + c), EM_F32);
        em_tensor *x64 = em_cast(x32, EM_F64), *g64 = em_cast(g32, EM_F64);
        for (int as_log = 0; as_log < 2; as_log++) {
            em_tensor *y[3], *dx[3]; /* float32 on 1 and 3 threads, float64 */
            for (int k = 0; k < 3; k++) {
                em_set_num_threads(k == 1 ? 3 : 1);
                em_tensor *x = k == 2 ? x64 : x32;
                em_tape *tape = em_tape_begin(false);
                y[k] = as_log ? em_log_softmax(x, -1) : em_softmax(x, -1);
                em_tensor *loss = em_sum(em_mul(y[k], k == 2 ? g64 : g32), EM_ALL_AXES, false);
                ck_assert_int_eq(em_gradients(tape, loss, 1, &x, &dx[k]), 0);
                em_tape_release(tape);
            }
            em_set_num_threads(0);
            size_t bytes = sizeof(float) * (size_t)em_numel(x32);
            ck_assert_int_eq(memcmp(em_data(y[0]), em_data(y[1]), bytes), 0);
            ck_assert_int_eq(memcmp(em_data(dx[0]), em_data(dx[1]), bytes), 0);
            double scale = as_log ? 1 : (double)shapes[c][1];
            /* measured: at most 1.4e-7 (outputs) and 9.2e-7 (gradients) */
            ck_assert_double_lt(em_test_max_rel_diff(em_mul_scalar(em_cast(y[0], EM_F64), scale), em_mul_scalar(y[2], scale)),
                                1e-6);
            ck_assert_double_lt(
                em_test_max_rel_diff(em_mul_scalar(em_cast(dx[0], EM_F64), scale), em_mul_scalar(dx[2], scale)), 1e-5);
        }
    }
    em_shutdown();
}
END_TEST

START_TEST(test_sigmoid_xent) {
    for (em_dtype dt = EM_F32; dt <= EM_F64; dt++) {
        em_tensor *z = lin(dt, EM_SHAPE(2, 3), 1, 0.4, 0.5), *x = lin(dt, EM_SHAPE(2, 3), 2, 3, 0);
        ck_assert_tensor(em_sigmoid_cross_entropy_with_logits(z, x), dt, EM_SHAPE(2, 3), SX, tol(dt));
    }
    /* large logits stay finite: x = 1000, z = 0 gives 1000 */
    static const double big[] = {1000, 0};
    em_tensor *x = em_tensor_from(EM_F32, EM_SHAPE(2), (float[]){1000, -1000});
    ck_assert_tensor(em_sigmoid_cross_entropy_with_logits(em_zeros(EM_F32, EM_SHAPE(2)), x), EM_F32, EM_SHAPE(2), big,
                     1e-6);
    ck_assert_error(em_sigmoid_cross_entropy_with_logits(em_ones(EM_F32, EM_SHAPE(3)), em_ones(EM_F32, EM_SHAPE(2, 3))),
                    "sigmoid_xent: labels [3] and logits [2,3] differ in shape");
    ck_assert_error(em_sigmoid_cross_entropy_with_logits(em_ones(EM_F64, EM_SHAPE(3)), em_ones(EM_F32, EM_SHAPE(3))),
                    "sigmoid_xent: labels (float64) and logits (float32) differ in dtype");
    em_shutdown();
}
END_TEST

START_TEST(test_softmax_xent) {
    for (em_dtype dt = EM_F32; dt <= EM_F64; dt++) {
        em_tensor *z = em_cast(em_tensor_from(EM_F64, EM_SHAPE(2, 3), (double[]){0.2, 0.3, 0.5, 1, 0, 0}), dt);
        em_tensor *x = lin(dt, EM_SHAPE(2, 3), 2, 2, 0);
        ck_assert_tensor(em_softmax_cross_entropy_with_logits(z, x), dt, EM_SHAPE(2), XENT, tol(dt));
        em_tensor *l32 = em_tensor_from(EM_I32, EM_SHAPE(2), (int32_t[]){2, 0});
        em_tensor *l64 = em_tensor_from(EM_I64, EM_SHAPE(2), (int64_t[]){2, 0});
        ck_assert_tensor(em_sparse_softmax_cross_entropy_with_logits(l32, x), dt, EM_SHAPE(2), SPARSE, tol(dt));
        ck_assert_tensor(em_sparse_softmax_cross_entropy_with_logits(l64, x), dt, EM_SHAPE(2), SPARSE, tol(dt));
    }
    /* stable for huge logits */
    em_tensor *x = em_tensor_from(EM_F32, EM_SHAPE(1, 3), (float[]){1000, 0, -1000});
    static const double loss_first[] = {0}, loss_last[] = {2000};
    ck_assert_tensor(em_sparse_softmax_cross_entropy_with_logits(em_tensor_from(EM_I32, EM_SHAPE(1), (int32_t[]){0}), x),
                     EM_F32, EM_SHAPE(1), loss_first, 1e-6);
    ck_assert_tensor(em_softmax_cross_entropy_with_logits(em_tensor_from(EM_F32, EM_SHAPE(1, 3), (float[]){0, 0, 1}), x),
                     EM_F32, EM_SHAPE(1), loss_last, 1e-6);
    /* batch of rank 2 */
    em_tensor *y = em_sparse_softmax_cross_entropy_with_logits(em_zeros(EM_I64, EM_SHAPE(2, 4)),
                                                                em_zeros(EM_F64, EM_SHAPE(2, 4, 5)));
    ck_assert_ptr_nonnull(y);
    ck_assert_double_eq_tol(em_get(y, (int64_t[]){1, 3}), log(5.0), 1e-12);
    em_shutdown();
}
END_TEST

/* ignore_index: ignored rows have loss 0 and gradient 0; a padded vocabulary sliced to its real columns gives the
 * unpadded loss, and its padded columns get gradient 0. */
START_TEST(test_sparse_xent_ignore) {
    const int64_t rows = 3, real = 5, padded = 8;
    double w[3 * 8], w5[3 * 5];
    for (int i = 0; i < rows * padded; i++) w[i] = (i % padded) < real ? sin(1.7 * i) : 30 + i; /* padding would dominate */
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < real; j++) w5[r * real + j] = w[r * padded + j];
    em_tensor *labels = em_tensor_from(EM_I64, EM_SHAPE(3), (int64_t[]){4, -100, 0});
    em_tensor *x = em_tensor_from(EM_F64, EM_SHAPE(3, 8), w), *x5 = em_tensor_from(EM_F64, EM_SHAPE(3, 5), w5);
    em_tape *tape = em_tape_begin(false);
    em_tensor *loss = em_sparse_softmax_cross_entropy_ignore(labels, em_slice(x, (int64_t[]){0, 0}, (int64_t[]){-1, 5}),
                                                             -100);
    em_tensor *g;
    ck_assert_int_eq(em_gradients(tape, loss, 1, &x, &g), 0);
    em_tape_release(tape);
    /* the unpadded loss; the ignored row is 0 */
    double expect[3];
    for (int r = 0; r < rows; r++) {
        double sum = 0;
        for (int j = 0; j < real; j++) sum += exp(w5[r * real + j]);
        expect[r] = log(sum) - w5[r * real + (r == 0 ? 4 : 0)];
    }
    expect[1] = 0;
    ck_assert_tensor(loss, EM_F64, EM_SHAPE(3), expect, 1e-12);
    ck_assert_tensor(em_sparse_softmax_cross_entropy_ignore(labels, x5, -100), EM_F64, EM_SHAPE(3), expect, 1e-12);
    /* gradient: softmax - one_hot on counted rows' real columns; 0 on the ignored row and the padding */
    for (int r = 0; r < rows; r++) {
        double sum = 0;
        for (int j = 0; j < real; j++) sum += exp(w5[r * real + j]);
        for (int j = 0; j < padded; j++) {
            double want = 0;
            if (r != 1 && j < real) want = exp(w5[r * real + j]) / sum - (j == (r == 0 ? 4 : 0));
            ck_assert_double_eq_tol(em_get(g, (int64_t[]){r, j}), want, 1e-12);
        }
    }
    /* an ignore_index inside [0, C) is ignored too; float32 logits, int32 labels */
    em_tensor *x32 = em_cast(x5, EM_F32);
    em_tensor *l32 = em_tensor_from(EM_I32, EM_SHAPE(3), (int32_t[]){2, 1, 1});
    em_tensor *y = em_sparse_softmax_cross_entropy_ignore(l32, x32, 1);
    ck_assert_ptr_nonnull(y);
    ck_assert_double_eq(em_get(y, (int64_t[]){1}), 0);
    ck_assert_double_eq(em_get(y, (int64_t[]){0}),
                        em_get(em_sparse_softmax_cross_entropy_with_logits(l32, x32), (int64_t[]){0}));
    tape = em_tape_begin(false);
    y = em_sparse_softmax_cross_entropy_ignore(l32, x32, 1);
    ck_assert_int_eq(em_gradients(tape, y, 1, &x32, &g), 0);
    em_tape_release(tape);
    for (int j = 0; j < real; j++) {
        ck_assert_double_eq(em_get(g, (int64_t[]){1, j}), 0);
        ck_assert_double_eq(em_get(g, (int64_t[]){2, j}), 0);
    }
    ck_assert_double_lt(em_get(g, (int64_t[]){0, 2}), 0); /* the counted row's label pulls its logit up */
    em_shutdown();
}
END_TEST

START_TEST(test_xent_errors) {
    em_tensor *x = em_ones(EM_F32, EM_SHAPE(2, 10));
    ck_assert_error(em_sparse_softmax_cross_entropy_with_logits(em_tensor_from(EM_I32, EM_SHAPE(2), (int32_t[]){3, 12}), x),
                    "sparse_softmax_xent: label 12 at index 1 is out of range [0, 10) for logits [2,10]");
    ck_assert_error(em_sparse_softmax_cross_entropy_with_logits(em_tensor_from(EM_I64, EM_SHAPE(2), (int64_t[]){-1, 0}), x),
                    "label -1 at index 0 is out of range");
    ck_assert_error(em_sparse_softmax_cross_entropy_with_logits(em_ones(EM_F32, EM_SHAPE(2)), x),
                    "sparse_softmax_xent: labels have dtype float32");
    ck_assert_error(em_sparse_softmax_cross_entropy_with_logits(em_zeros(EM_I32, EM_SHAPE(3)), x),
                    "sparse_softmax_xent: labels [3] must have the shape of logits [2,10] without its last dimension");
    /* with ignore_index, other labels outside [0, C) are still errors */
    ck_assert_error(em_sparse_softmax_cross_entropy_ignore(em_tensor_from(EM_I32, EM_SHAPE(2), (int32_t[]){-100, -1}), x,
                                                           -100),
                    "sparse_softmax_xent: label -1 at index 1 is out of range [0, 10) for logits [2,10] and is not "
                    "ignore_index -100");
    ck_assert_error(em_sparse_softmax_cross_entropy_ignore(em_tensor_from(EM_I64, EM_SHAPE(2), (int64_t[]){10, 3}), x, 3),
                    "label 10 at index 0 is out of range [0, 10) for logits [2,10] and is not ignore_index 3");
    ck_assert_error(em_sparse_softmax_cross_entropy_ignore(em_ones(EM_F32, EM_SHAPE(2)), x, -100),
                    "sparse_softmax_xent: labels have dtype float32");
    ck_assert_error(em_softmax_cross_entropy_with_logits(em_ones(EM_F32, EM_SHAPE(2, 9)), x),
                    "softmax_xent: labels [2,9] and logits [2,10] differ in shape");
    ck_assert_error(em_softmax_cross_entropy_with_logits(em_scalar(EM_F32, 1), em_scalar(EM_F32, 1)),
                    "softmax_xent: logits must have at least 1 dimension");
    em_shutdown();
}
END_TEST

START_TEST(test_conv2d_values) {
    static const int s2[] = {2, 2}, d2[] = {2, 2};
    for (em_dtype dt = EM_F32; dt <= EM_F64; dt++) {
        em_tensor *x = seq(dt, EM_SHAPE(1, 5, 5, 2), 1), *w = seq(dt, EM_SHAPE(3, 3, 2, 3), 2);
        ck_assert_tensor(em_conv2d(x, w, NULL, EM_PAD_VALID, NULL), dt, EM_SHAPE(1, 3, 3, 3), CONV_VALID, tol(dt));
        ck_assert_tensor(em_conv2d(x, w, NULL, EM_PAD_SAME, NULL), dt, EM_SHAPE(1, 5, 5, 3), CONV_SAME, tol(dt));
        ck_assert_tensor(em_conv2d(x, w, s2, EM_PAD_SAME, NULL), dt, EM_SHAPE(1, 3, 3, 3), CONV_SAME_S2, tol(dt));
        ck_assert_tensor(em_conv2d(x, w, NULL, EM_PAD_SAME, d2), dt, EM_SHAPE(1, 5, 5, 3), CONV_DIL_SAME, tol(dt));
        ck_assert_tensor(em_conv2d(x, w, NULL, EM_PAD_VALID, d2), dt, EM_SHAPE(1, 1, 1, 3), CONV_DIL_VALID, tol(dt));
        /* SAME with an odd total padding puts the extra row/column after (TF) */
        em_tensor *x6 = seq(dt, EM_SHAPE(2, 6, 6, 1), 3), *w6 = seq(dt, EM_SHAPE(3, 3, 1, 2), 4);
        ck_assert_tensor(em_conv2d(x6, w6, s2, EM_PAD_SAME, NULL), dt, EM_SHAPE(2, 3, 3, 2), CONV6, tol(dt));
    }
    em_shutdown();
}
END_TEST

/* A 1x1 convolution is a matrix product over the pixels (its pointwise path). */
START_TEST(test_conv2d_pointwise) {
    em_tensor *x = seq(EM_F64, EM_SHAPE(2, 3, 2, 4), 1), *w = seq(EM_F64, EM_SHAPE(1, 1, 4, 3), 2);
    em_tensor *y = em_conv2d(x, w, NULL, EM_PAD_VALID, NULL);
    em_tensor *ref = em_matmul(em_reshape(x, EM_SHAPE(12, 4)), em_reshape(w, EM_SHAPE(4, 3)));
    ck_assert_tensor(y, EM_F64, EM_SHAPE(2, 3, 2, 3), em_data(ref), 1e-12);
    em_shutdown();
}
END_TEST

/* Gradients of sum(r * conv(x, w)) through both backprop ops. */
START_TEST(test_conv2d_gradients) {
    static const int s2[] = {2, 2};
    for (em_dtype dt = EM_F32; dt <= EM_F64; dt++) {
        em_tensor *x = seq(dt, EM_SHAPE(2, 6, 6, 1), 3), *w = seq(dt, EM_SHAPE(3, 3, 1, 2), 4);
        em_tensor *r = seq(dt, EM_SHAPE(2, 3, 3, 2), 5), *g[2];
        em_tape *tp = em_tape_begin(false);
        em_tensor *y = em_mul(em_conv2d(x, w, s2, EM_PAD_SAME, NULL), r);
        ck_assert_int_eq(em_gradients(tp, y, 2, (em_tensor *[]){x, w}, g), 0);
        em_tape_release(tp);
        ck_assert_tensor(g[0], dt, EM_SHAPE(2, 6, 6, 1), CONV6_DX, tol(dt));
        ck_assert_tensor(g[1], dt, EM_SHAPE(3, 3, 1, 2), CONV6_DW, tol(dt));
    }
    em_shutdown();
}
END_TEST

START_TEST(test_conv2d_errors) {
    em_tensor *x = em_ones(EM_F32, EM_SHAPE(1, 3, 3, 2)), *w = em_ones(EM_F32, EM_SHAPE(5, 5, 2, 4));
    ck_assert_error(em_conv2d(x, em_ones(EM_F32, EM_SHAPE(3, 3, 1, 4)), NULL, EM_PAD_SAME, NULL),
                    "conv2d: filter [3,3,1,4] expects 1 input channels but input [1,3,3,2] has 2");
    ck_assert_error(em_conv2d(x, w, NULL, EM_PAD_VALID, NULL),
                    "conv2d: input [1,3,3,2] is smaller than the 5x5 window (dilated) with VALID padding");
    ck_assert_error(em_conv2d(em_ones(EM_F32, EM_SHAPE(3, 3, 2)), w, NULL, EM_PAD_SAME, NULL),
                    "conv2d: input must be 4-D, got [3,3,2]");
    ck_assert_error(em_conv2d(x, em_ones(EM_F64, EM_SHAPE(1, 1, 2, 1)), NULL, EM_PAD_SAME, NULL),
                    "conv2d: input (float32) and filter (float64) differ in dtype");
    ck_assert_error(em_conv2d(x, w, (const int[]){0, 1}, EM_PAD_SAME, NULL), "conv2d: strides must be >= 1");
    ck_assert_error(em_conv2d(x, w, NULL, EM_PAD_SAME, (const int[]){1, 0}), "conv2d: dilations must be >= 1");
    ck_assert_error(em_conv2d(x, w, NULL, (em_padding)7, NULL), "conv2d: padding must be");
    ck_assert_error(em_conv2d(em_ones(EM_I32, EM_SHAPE(1, 3, 3, 2)), w, NULL, EM_PAD_SAME, NULL),
                    "conv2d: input has dtype int32");
    /* size 0: an empty batch */
    ck_assert_tensor(em_conv2d(em_ones(EM_F32, EM_SHAPE(0, 3, 3, 2)), w, NULL, EM_PAD_SAME, NULL), EM_F32,
                     EM_SHAPE(0, 3, 3, 4), NULL, 0);
    em_shutdown();
}
END_TEST

/* Forward and both backprops give the same bits on 1 and 2 threads (the
 * filter gradient's partial sums are fixed by the shapes, not the threads). */
START_TEST(test_conv2d_thread_count_independent) {
    em_tensor *x = em_cast(em_test_uniform(EM_SHAPE(70, 12, 12, 4), -1, 1, 1), EM_F32);
    em_tensor *w = em_cast(em_test_uniform(EM_SHAPE(3, 3, 4, 16), -1, 1, 2), EM_F32);
    em_tensor *r = em_cast(em_test_uniform(EM_SHAPE(70, 12, 12, 16), -1, 1, 3), EM_F32);
    em_tensor *out[2][3];
    for (int t = 0; t < 2; t++) {
        em_set_num_threads(t + 1);
        em_tape *tp = em_tape_begin(false);
        em_tensor *y = em_conv2d(x, w, NULL, EM_PAD_SAME, NULL);
        out[t][0] = y;
        ck_assert_int_eq(em_gradients(tp, em_mul(y, r), 2, (em_tensor *[]){x, w}, &out[t][1]), 0);
        em_tape_release(tp);
    }
    em_set_num_threads(0);
    for (int k = 0; k < 3; k++)
        ck_assert_int_eq(memcmp(em_data(out[0][k]), em_data(out[1][k]), sizeof(float) * (size_t)em_numel(out[0][k])), 0);
    em_shutdown();
}
END_TEST

/* Float32 convolutions whose vectorized channels (forward and filter
 * gradient: the output's; input gradient: the input's) are multiples of 16
 * run the direct AVX-512 kernels where the CPU has them: forward and both
 * gradients agree with float64 (im2col + BLIS) over odd and even windows,
 * SAME and VALID, one input channel, channel counts that leave 16, 32 or 48
 * lanes, pixel counts that are not multiples of the kernels' 6 rows, a
 * batch split into several filter-gradient partials, and images large enough
 * that each partial sums several chunks of them. Float32 sums of up to
 * 1280 products round to about 1e-5; a wrong tap or channel is off by O(1). */
START_TEST(test_conv2d_direct_kernels_match_float64) {
    static const struct {
        int64_t x[4], w[4];
        em_padding pad;
    } cases[] = {
        {{9, 9, 11, 5}, {5, 5, 5, 32}, EM_PAD_SAME},   {{2, 8, 7, 16}, {4, 4, 16, 80}, EM_PAD_SAME},
        {{4, 10, 9, 32}, {3, 2, 32, 48}, EM_PAD_VALID}, {{3, 6, 6, 1}, {3, 3, 1, 16}, EM_PAD_SAME},
        {{2, 7, 7, 16}, {2, 2, 16, 16}, EM_PAD_VALID},
        /* padded images over 512 KB: the filter gradient pads them one per chunk */
        {{9, 90, 90, 16}, {3, 3, 16, 16}, EM_PAD_SAME},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        em_scope_begin();
        const int64_t *xs = cases[i].x, *ws = cases[i].w;
        /* the float64 run reads the float32 values: only the sums differ */
        em_tensor *x32 = em_cast(em_test_uniform(EM_SHAPE(xs[0], xs[1], xs[2], xs[3]), -1, 1, 10 + (uint64_t)i), EM_F32);
        em_tensor *w32 = em_cast(em_test_uniform(EM_SHAPE(ws[0], ws[1], ws[2], ws[3]), -1, 1, 20 + (uint64_t)i), EM_F32);
        em_tensor *out[2][3];
        for (int f32 = 0; f32 < 2; f32++) {
            em_tensor *x = f32 ? x32 : em_cast(x32, EM_F64), *w = f32 ? w32 : em_cast(w32, EM_F64);
            em_tape *tp = em_tape_begin(false);
            em_tensor *y = em_conv2d(x, w, NULL, cases[i].pad, NULL);
            em_tensor *r = em_cast(em_test_uniform(em_tensor_shape(y), -1, 1, 30 + (uint64_t)i), em_tensor_dtype(y));
            out[f32][0] = y;
            ck_assert_int_eq(em_gradients(tp, em_mul(y, r), 2, (em_tensor *[]){x, w}, &out[f32][1]), 0);
            em_tape_release(tp);
        }
        for (int k = 0; k < 3; k++) {
            double d = em_test_max_rel_diff(out[1][k], out[0][k]);
            ck_assert_msg(d < 1e-4, "case %zu, %s: float32 differs from float64 by %g", i,
                          (const char *[]){"y", "dx", "dw"}[k], d);
        }
        em_scope_end();
    }
    em_shutdown();
}
END_TEST

START_TEST(test_pools) {
    static const int k2[] = {2, 2}, k3[] = {3, 3}, s1[] = {1, 1}, s2[] = {2, 2};
    for (em_dtype dt = EM_F32; dt <= EM_F64; dt++) {
        em_tensor *x = seq(dt, EM_SHAPE(1, 4, 5, 2), 3);
        ck_assert_tensor(em_max_pool(x, k2, s2, EM_PAD_VALID), dt, EM_SHAPE(1, 2, 2, 2), MAXP_VALID, tol(dt));
        ck_assert_tensor(em_max_pool(x, k3, s2, EM_PAD_SAME), dt, EM_SHAPE(1, 2, 3, 2), MAXP_SAME, tol(dt));
        /* SAME averages over the window's valid elements only */
        ck_assert_tensor(em_avg_pool(x, k3, s2, EM_PAD_SAME), dt, EM_SHAPE(1, 2, 3, 2), AVGP_SAME, tol(dt));
        ck_assert_tensor(em_avg_pool(x, k2, s1, EM_PAD_VALID), dt, EM_SHAPE(1, 3, 4, 2), AVGP_VALID, tol(dt));
        /* gradients: max routes to the first largest element, avg spreads */
        em_tensor *gy = seq(dt, EM_SHAPE(1, 2, 3, 2), 6), *g;
        em_tape *tp = em_tape_begin(false);
        ck_assert_int_eq(em_gradients(tp, em_mul(em_max_pool(x, k3, s2, EM_PAD_SAME), gy), 1, &x, &g), 0);
        em_tape_release(tp);
        ck_assert_tensor(g, dt, EM_SHAPE(1, 4, 5, 2), MAXP_DX, tol(dt));
        tp = em_tape_begin(false);
        ck_assert_int_eq(em_gradients(tp, em_mul(em_avg_pool(x, k3, s2, EM_PAD_SAME), gy), 1, &x, &g), 0);
        em_tape_release(tp);
        ck_assert_tensor(g, dt, EM_SHAPE(1, 4, 5, 2), AVGP_DX, tol(dt));
    }
    ck_assert_tensor(em_max_pool(em_ones(EM_F32, EM_SHAPE(0, 4, 4, 1)), k2, s2, EM_PAD_SAME), EM_F32,
                     EM_SHAPE(0, 2, 2, 1), NULL, 0);
    em_shutdown();
}
END_TEST

/* Ties go to the first element of the window, in every block of channels
 * (70 channels: more than one block of the gradient kernel), and NaNs as the
 * forward pass sees them. */
START_TEST(test_max_pool_grad_ties) {
    static const int k2[] = {2, 2};
    em_tensor *x = em_ones(EM_F32, EM_SHAPE(1, 4, 4, 70)), *g;
    em_tape *tp = em_tape_begin(false);
    ck_assert_int_eq(em_gradients(tp, em_max_pool(x, k2, k2, EM_PAD_VALID), 1, &x, &g), 0);
    em_tape_release(tp);
    const float *d = em_data(g);
    for (int64_t y = 0; y < 4; y++)
        for (int64_t xx = 0; xx < 4; xx++)
            for (int64_t c = 0; c < 70; c++)
                ck_assert_float_eq(d[(y * 4 + xx) * 70 + c], y % 2 == 0 && xx % 2 == 0 ? 1.0f : 0.0f);
    /* With a NaN, the first NaN before the window's largest number takes the gradient (channel 0), and a NaN
     * first takes it whatever follows (channel 1); one 2x2 window, row-major order. */
    float w[8] = {1, NAN, NAN, 3, 5, 7, 2, 1};
    x = em_tensor_from(EM_F32, EM_SHAPE(1, 2, 2, 2), w);
    tp = em_tape_begin(false);
    ck_assert_int_eq(em_gradients(tp, em_max_pool(x, k2, k2, EM_PAD_VALID), 1, &x, &g), 0);
    em_tape_release(tp);
    d = em_data(g);
    static const float want[8] = {0, 1, 1, 0, 0, 0, 0, 0};
    for (int i = 0; i < 8; i++) ck_assert_float_eq(d[i], want[i]);
    em_shutdown();
}
END_TEST

START_TEST(test_pool_errors) {
    static const int k2[] = {2, 2}, k5[] = {5, 5};
    em_tensor *x = em_ones(EM_F32, EM_SHAPE(1, 4, 4, 1));
    ck_assert_error(em_max_pool(x, NULL, k2, EM_PAD_SAME), "max_pool: ksize is NULL");
    ck_assert_error(em_avg_pool(x, k5, k2, EM_PAD_VALID),
                    "avg_pool: input [1,4,4,1] is smaller than the 5x5 window (dilated) with VALID padding");
    ck_assert_error(em_max_pool(em_ones(EM_F32, EM_SHAPE(4, 4)), k2, k2, EM_PAD_SAME), "max_pool: input must be 4-D, got [4,4]");
    ck_assert_error(em_avg_pool(x, (const int[]){0, 2}, k2, EM_PAD_SAME), "avg_pool: window must be at least 1x1");
    ck_assert_error(em_max_pool(em_ones(EM_U8, EM_SHAPE(1, 4, 4, 1)), k2, k2, EM_PAD_SAME), "max_pool: input has dtype uint8");
    em_shutdown();
}
END_TEST

/* Second derivatives: through conv (its backprops are differentiable), not
 * through max_pool (max_pool_grad has no gradient). */
START_TEST(test_second_derivatives) {
    static const int k2[] = {2, 2};
    em_tensor *x = em_test_uniform(EM_SHAPE(1, 4, 4, 1), -1, 1, 7), *w = em_test_uniform(EM_SHAPE(2, 2, 1, 1), -1, 1, 8);
    /* y = sum(conv(x, w)^2) is quadratic in w: d2y/dw2 summed is constant in x */
    em_tape *outer = em_tape_begin(false), *inner = em_tape_begin(false);
    em_tensor *y = em_square(em_conv2d(x, w, NULL, EM_PAD_VALID, NULL)), *gw, *ggw;
    ck_assert_int_eq(em_gradients(inner, y, 1, &w, &gw), 0);
    ck_assert_int_eq(em_gradients(outer, gw, 1, &w, &ggw), 0);
    em_tape_release(inner);
    em_tape_release(outer);
    /* d/dw_j sum_i dy/dw_i = 2 sum_p x_p(j) * sum_i x_p(i): check against the patches */
    const double *xv = em_data(x);
    double expect[4] = {0};
    for (int py = 0; py < 3; py++)
        for (int px = 0; px < 3; px++) {
            double s = 0;
            for (int t = 0; t < 4; t++) s += xv[(py + t / 2) * 4 + px + t % 2];
            for (int j = 0; j < 4; j++) expect[j] += 2 * xv[(py + j / 2) * 4 + px + j % 2] * s;
        }
    ck_assert_tensor(ggw, EM_F64, EM_SHAPE(2, 2, 1, 1), expect, 1e-9);

    outer = em_tape_begin(false);
    inner = em_tape_begin(false);
    em_tensor *gx, *ggx;
    ck_assert_int_eq(em_gradients(inner, em_square(em_max_pool(x, k2, k2, EM_PAD_VALID)), 1, &x, &gx), 0);
    ck_assert_int_eq(em_gradients(outer, gx, 1, &x, &ggx), -1);
    ck_assert_ptr_nonnull(strstr(em_last_error(), "max_pool_grad"));
    em_clear_error();
    em_tape_release(inner);
    em_tape_release(outer);
    em_shutdown();
}
END_TEST

START_TEST(test_bias_add) {
    static const double expect[] = {1.5, 2, 3.5, 4};
    em_tensor *x = em_tensor_from(EM_F32, EM_SHAPE(2, 2), (float[]){1, 2, 3, 4});
    em_tensor *b = em_tensor_from(EM_F32, EM_SHAPE(2), (float[]){0.5, 0});
    ck_assert_tensor(em_bias_add(x, b), EM_F32, EM_SHAPE(2, 2), expect, 0);
    ck_assert_error(em_bias_add(x, em_ones(EM_F32, EM_SHAPE(3))),
                    "bias_add: bias [3] must be 1-D and match the last dimension of x [2,2]");
    ck_assert_error(em_bias_add(x, em_ones(EM_F32, EM_SHAPE(1, 2))), "bias_add: bias [1,2] must be 1-D");
    ck_assert_error(em_bias_add(NULL, b), "bias_add");
    em_shutdown();
}
END_TEST

START_TEST(test_dropout) {
    em_tensor *x = em_ones(EM_F32, EM_SHAPE(100, 100));
    ck_assert_ptr_eq(em_dropout(x, 1.0), x); /* the identity */
    em_set_seed(42);
    em_tensor *y = em_dropout(x, 0.5);
    const float *v = em_data(y);
    int kept = 0;
    for (int i = 0; i < 10000; i++) {
        ck_assert(v[i] == 0 || v[i] == 2);
        kept += v[i] == 2;
    }
    ck_assert_int_ge(kept, 4700);
    ck_assert_int_le(kept, 5300);
    em_set_seed(42);
    ck_assert_int_eq(memcmp(em_data(em_dropout(x, 0.5)), v, sizeof(float) * 10000), 0);
    /* gradients flow to x through the kept elements */
    em_tensor *g;
    em_tape *tp = em_tape_begin(false);
    em_set_seed(42);
    ck_assert_int_eq(em_gradients(tp, em_dropout(x, 0.5), 1, &x, &g), 0);
    em_tape_release(tp);
    ck_assert_int_eq(memcmp(em_data(g), v, sizeof(float) * 10000), 0);
    ck_assert_error(em_dropout(x, 0), "dropout: keep_prob must be in (0, 1], got 0");
    ck_assert_error(em_dropout(x, 1.5), "dropout: keep_prob must be in (0, 1]");
    ck_assert_error(em_dropout(em_ones(EM_I32, EM_SHAPE(2)), 0.5), "dropout: x has dtype int32");
    em_shutdown();
}
END_TEST

/* A filter's gradient over a batch of no images is zero (the fuzzer found a
 * division by zero here). */
START_TEST(test_conv_filter_gradient_of_empty_batch) {
    em_tensor *x = em_zeros(EM_F32, EM_SHAPE(0, 4, 4, 1)), *w = em_ones(EM_F32, EM_SHAPE(3, 3, 1, 2)), *g;
    em_tape *tape = em_tape_begin(false);
    em_tensor *y = em_sum(em_conv2d(x, w, (int[]){1, 1}, EM_PAD_SAME, NULL), EM_ALL_AXES, false);
    ck_assert_int_eq(em_gradients(tape, y, 1, &w, &g), 0);
    em_tape_release(tape);
    ck_assert_tensor(g, EM_F32, EM_SHAPE(3, 3, 1, 2), ((double[18]){0}), 0);
}
END_TEST

/* A window far larger than the input is clamped to it, and its gradient
 * too (the fuzzer found the work estimate overflowing for ksize INT_MAX). */
START_TEST(test_pool_with_huge_window) {
    em_tensor *x = em_reshape(em_arange(EM_F32, 0, 16, 1), EM_SHAPE(1, 4, 4, 1)), *g;
    em_tape *tape = em_tape_begin(false);
    em_tensor *y = em_max_pool(x, (int[]){INT_MAX, INT_MAX}, (int[]){4, 4}, EM_PAD_SAME);
    ck_assert_tensor(y, EM_F32, EM_SHAPE(1, 1, 1, 1), ((double[]){15}), 0);
    ck_assert_int_eq(em_gradients(tape, y, 1, &x, &g), 0);
    em_tape_release(tape);
    ck_assert_double_eq(em_item(em_sum(g, EM_ALL_AXES, false)), 1);
}
END_TEST

/* ---- TensorFlow 1's layers built from other ops, and batch norm: PyTorch's values (tools/ref_nn.py) on
 * fw_ints_a and fw_ints_b ---- */
static const double BN_Y[24] = {0.82817260066519838, 2.2676248706346622, -0.82693152841308271, -2.1720399815649305, -7.6563452013303959, -4.5352497412693245, -3.8038850307001804, -0.49769715075788667, -0.86873095973392056, 2.2676248706346622, -3.8038850307001804, -2.5069085477263395, -5.9594416409312778, -3.4014373059519931, 3.142339807969714, -0.16282858459647787, -2.5656345201330395, 0, 2.1500219738740149, -0.83256571691929548, 4.2219797214634358, 3.4014373059519931, 3.142339807969714, 0.17203998156493094};
static const double BN_MOVING[8] = {-0.033333333333333333, -0.10000000000000001, -0.083333333333333343, 0.050000000000000003, 1.5666666666666669, 1.7400000000000002, 1.9966666666666666, 1.9700000000000002};
static const double BN_INFER[24] = {4.2829540890002589, 6.5935585505524621, -0.17687990535314455, -3.1724837027843318, -11.690658001678365, -7.0482867264526314, -6.5445564980663482, 0.38896499030473675, 1.0882316708645341, 6.5935585505524621, -6.5445564980663482, -3.884773441402146, -8.4959355835426393, -4.774645846951783, 8.3133555515977928, 1.1012547289225505, -2.1064907472711907, 2.0462767915507643, 6.1907966873600584, -0.323324748313077, 10.672398925271708, 8.8671994300533115, 8.3133555515977928, 1.8135444675403642};
static const double CONV1D[12] = {24, 14, -29, 9, -5, -2, -26, -5, 29, 32, 36, 28};
static const double CONV2D_T[25] = {17, 3, 13, -3, 0, 3, 14, -7, 6, -6, -32, -23, -35, -16, -6, -3, -18, 10, -16, 10, 15, 21, 26, 18, 12};
static const double DEPTHWISE[16] = {-8, -1, 1, -5, 10, 5, -13, -24, -34, -17, 10, 18, 14, 11, 11, 4};
static const double SEPARABLE[12] = {-47, 11, 11, -89, 27, -147, 14, -33, 177, 39, 25, 15};
static const double L2[6] = {0, 0, 0, 0.23076923076923078, -0.30769230769230771, 0.92307692307692313};
static const double XENT_SMOOTH[2] = {2.0456113947384504, 1.7452462741628412};
static const double XENT_WEIGHTED[4] = {0.12692801104297269, 1.4222309525403201, 2.3228810273606131, 120};

static em_tensor *ints(const double *v, em_dtype dt, em_shape s) { return em_cast(em_tensor_from(EM_F64, s, v), dt); }

START_TEST(test_tf_layers_match_pytorch) {
    for (int k = 0; k < 2; k++) {
        em_dtype dt = k ? EM_F64 : EM_F32;
        double t = dt == EM_F32 ? 1e-5 : 1e-12;
        const double *A = fw_ints_a, *B = fw_ints_b;
        ck_assert_tensor(em_conv1d(ints(A, dt, EM_SHAPE(2, 5, 3)), ints(B, dt, EM_SHAPE(3, 3, 2)), 2, EM_PAD_SAME, 0), dt,
                         EM_SHAPE(2, 3, 2), CONV1D, t);
        ck_assert_tensor(em_conv2d_transpose(ints(A, dt, EM_SHAPE(1, 2, 2, 2)), ints(B, dt, EM_SHAPE(3, 3, 1, 2)),
                                             EM_SHAPE(1, 5, 5, 1), (int[]){2, 2}, EM_PAD_VALID),
                         dt, EM_SHAPE(1, 5, 5, 1), CONV2D_T, t);
        em_tensor *x = ints(A, dt, EM_SHAPE(1, 3, 3, 2)), *dw = ints(B, dt, EM_SHAPE(2, 2, 2, 2));
        ck_assert_tensor(em_depthwise_conv2d(x, dw, NULL, EM_PAD_VALID, NULL), dt, EM_SHAPE(1, 2, 2, 4), DEPTHWISE, t);
        ck_assert_tensor(em_separable_conv2d(x, dw, ints(B + 16, dt, EM_SHAPE(1, 1, 4, 3)), NULL, EM_PAD_VALID, NULL),
                         dt, EM_SHAPE(1, 2, 2, 3), SEPARABLE, t);
        ck_assert_tensor(em_l2_normalize(ints(V(0, 0, 0, 3, -4, 12), dt, EM_SHAPE(2, 3)), 1, (int[]){1}, 1e-12), dt,
                         EM_SHAPE(2, 3), L2, t);
        em_tensor *logits = em_mul_scalar(ints(A, dt, EM_SHAPE(2, 4)), 0.5);
        ck_assert_tensor(em_softmax_cross_entropy_smoothed(ints(V(0, 1, 0, 0, 0, 0, 0, 1), dt, EM_SHAPE(2, 4)), logits,
                                                           0.1),
                         dt, EM_SHAPE(2), XENT_SMOOTH, t);
        ck_assert_tensor(em_weighted_cross_entropy_with_logits(ints(V(0, 1, 0.25, 1), dt, EM_SHAPE(4)),
                                                               ints(V(-2, 0.5, 3, -40), dt, EM_SHAPE(4)), 3),
                         dt, EM_SHAPE(4), XENT_WEIGHTED, t);
    }
}
END_TEST

/* Training normalizes by the batch and moves the averages (PyTorch's running_mean and running_var with its
 * momentum 0.1 = 1 - TF's 0.9); inference then normalizes by them. */
START_TEST(test_fused_batch_norm_moving_averages) {
    em_tensor *x = ints(fw_ints_a, EM_F64, EM_SHAPE(2, 3, 4)), *scale = ints(fw_ints_b, EM_F64, EM_SHAPE(4));
    em_tensor *offset = ints(fw_ints_b + 4, EM_F64, EM_SHAPE(4));
    ck_assert_tensor(em_fused_batch_norm(x, scale, offset, 1e-3, 0.9, true, "bn"), EM_F64, EM_SHAPE(2, 3, 4), BN_Y,
                     1e-12);
    ck_assert_tensor(em_find_variable("bn/moving_mean"), EM_F64, EM_SHAPE(4), BN_MOVING, 1e-12);
    ck_assert_tensor(em_find_variable("bn/moving_variance"), EM_F64, EM_SHAPE(4), BN_MOVING + 4, 1e-12);
    ck_assert_int_eq(em_trainable_variables(NULL, 0), 0);
    ck_assert_tensor(em_fused_batch_norm(x, scale, offset, 1e-3, 0.9, false, "bn"), EM_F64, EM_SHAPE(2, 3, 4), BN_INFER,
                     1e-12);
    ck_assert_error(em_fused_batch_norm(x, scale, offset, 1e-3, 0.9, true, NULL), "fused_batch_norm: name must name");
    ck_assert_error(em_fused_batch_norm(x, offset, em_zeros(EM_F64, EM_SHAPE(3)), 1e-3, 0.9, true, "bn"),
                    "batch_norm: offset [3] must be [4], the last dimension (channels) of x [2,3,4]");
    ck_assert_error(em_fused_batch_norm(x, scale, offset, 1e-3, 1.5, true, "bn"), "momentum must be in [0, 1]");
    em_variables_release();
}
END_TEST

START_TEST(test_tf_layer_errors) {
    em_tensor *x = em_zeros(EM_F32, EM_SHAPE(1, 3, 3, 2));
    ck_assert_error(em_depthwise_conv2d(x, em_zeros(EM_F32, EM_SHAPE(2, 2, 3, 1)), NULL, EM_PAD_VALID, NULL),
                    "depthwise_conv2d: filter [2,2,3,1] expects 3 input channels but input [1,3,3,2] has 2");
    ck_assert_error(em_conv1d(x, em_zeros(EM_F32, EM_SHAPE(3, 2, 1)), 1, EM_PAD_VALID, 0), "conv1d: value [1,3,3,2]");
    ck_assert_error(em_conv2d_transpose(x, em_zeros(EM_F32, EM_SHAPE(3, 3, 1, 2)), EM_SHAPE(1, 4, 4, 1), NULL,
                                        EM_PAD_VALID),
                    "conv2d_backprop_input");
    ck_assert_error(em_softmax_cross_entropy_smoothed(x, x, 2), "label_smoothing must be in [0, 1], got 2");
}
END_TEST

int main(void) {
    Suite *s = suite_create("nn");
    TCase *tc = tcase_create("nn");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_softmax_values);
    tcase_add_test(tc, test_softmax_wide_rows_float32);
    tcase_add_test(tc, test_softmax_rows_float32_match_float64);
    tcase_add_test(tc, test_sigmoid_xent);
    tcase_add_test(tc, test_softmax_xent);
    tcase_add_test(tc, test_sparse_xent_ignore);
    tcase_add_test(tc, test_xent_errors);
    tcase_add_test(tc, test_conv2d_values);
    tcase_add_test(tc, test_conv2d_pointwise);
    tcase_add_test(tc, test_conv2d_gradients);
    tcase_add_test(tc, test_conv2d_errors);
    tcase_add_test(tc, test_conv2d_direct_kernels_match_float64);
    tcase_add_test(tc, test_conv2d_thread_count_independent);
    tcase_add_test(tc, test_pools);
    tcase_add_test(tc, test_max_pool_grad_ties);
    tcase_add_test(tc, test_pool_errors);
    tcase_add_test(tc, test_second_derivatives);
    tcase_add_test(tc, test_bias_add);
    tcase_add_test(tc, test_dropout);
    tcase_add_test(tc, test_conv_filter_gradient_of_empty_batch);
    tcase_add_test(tc, test_pool_with_huge_window);
    tcase_add_test(tc, test_tf_layers_match_pytorch);
    tcase_add_test(tc, test_fused_batch_norm_moving_averages);
    tcase_add_test(tc, test_tf_layer_errors);
    suite_add_tcase(s, tc);
    return em_test_run(s);
}
