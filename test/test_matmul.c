/* em_matmul / em_matmul_t: values against NumPy, transposes, batch
 * broadcasting, strided views, every dtype, size-0 and size-1 dims, errors,
 * thread-count independence; bfloat16 and float16 against a float64 loop
 * within the bound of float32 sums, on both of their CPU routes, and their
 * gradients. Expectations computed with NumPy from seq(). */
#include "common.h"
#include "internal.h" /* em__set_alloc_fail_hook */
#include "ops/gemm_narrow.h"

#include <stdlib.h>
#include <string.h>

/* ((i * 7 + s * 3) % 11 - 5) / 4 for floats, without the / 4 for signed ints,
 * without the - 5 for uint8: small exact values NumPy reproduces. */
static em_tensor *seq(em_dtype dt, em_shape shape, int s) {
    int64_t n = em_shape_numel(shape);
    char *buf = malloc((size_t)(n ? n : 1) * 8);
    for (int64_t i = 0; i < n; i++) {
        int64_t v = (i * 7 + s * 3) % 11;
        switch (dt) {
        case EM_F32: ((float *)buf)[i] = (float)(v - 5) / 4; break;
        case EM_F64: ((double *)buf)[i] = (double)(v - 5) / 4; break;
        case EM_I32: ((int32_t *)buf)[i] = (int32_t)(v - 5); break;
        case EM_I64: ((int64_t *)buf)[i] = v - 5; break;
        default: ((uint8_t *)buf)[i] = (uint8_t)v; break;
        }
    }
    em_tensor *t = em_tensor_from(dt, shape, buf);
    free(buf);
    return t;
}

static const double MM_BASIC[] = {0.875, 0.5625, 0.8125, 0.5625};
static const double MM_TA[] = {-0.875, 1.125, -0.4375, -0.9375};
static const double MM_TB[] = {-0.8125, -1.0625, -0.9375, -1.0};
static const double MM_TATB[] = {0.6875, 0.5, 0.875, 0.75};
static const double MM_BATCH[] = {-1.5, 1.25, -1.3125, 1.5,  1.25, 1.25, 1.125,  1.1875, 1.25,  -1.5,   1.5,  -1.875,
                                  0.25, 0.375, 0.4375, 0.625, 1.0,  -1.625, 0.875, -1.6875, 0.375, 1.1875, 0.625, 0.8125};
static const double MM_I32[] = {14, 9, 13, 9};
static const double MM_U8[] = {114, 104, 98, 89};

START_TEST(test_float_values) {
    for (em_dtype dt = EM_F32; dt <= EM_F64; dt++) {
        em_tensor *y = em_matmul(seq(dt, EM_SHAPE(2, 3), 1), seq(dt, EM_SHAPE(3, 2), 2));
        ck_assert_tensor(y, dt, EM_SHAPE(2, 2), MM_BASIC, 1e-6);
    }
    em_shutdown();
}
END_TEST

START_TEST(test_int_dtypes) {
    ck_assert_tensor(em_matmul(seq(EM_I32, EM_SHAPE(2, 3), 1), seq(EM_I32, EM_SHAPE(3, 2), 2)), EM_I32,
                     EM_SHAPE(2, 2), MM_I32, 0);
    ck_assert_tensor(em_matmul(seq(EM_I64, EM_SHAPE(2, 3), 1), seq(EM_I64, EM_SHAPE(3, 2), 2)), EM_I64,
                     EM_SHAPE(2, 2), MM_I32, 0);
    /* uint8 wraps modulo 256 like NumPy's uint8 matmul */
    ck_assert_tensor(em_matmul(seq(EM_U8, EM_SHAPE(2, 3), 1), seq(EM_U8, EM_SHAPE(3, 2), 2)), EM_U8, EM_SHAPE(2, 2),
                     MM_U8, 0);
    em_shutdown();
}
END_TEST

START_TEST(test_transposes) {
    for (em_dtype dt = EM_F32; dt <= EM_F64; dt++) {
        em_tensor *a = seq(dt, EM_SHAPE(2, 3), 1), *b = seq(dt, EM_SHAPE(3, 2), 2);
        em_tensor *at = seq(dt, EM_SHAPE(3, 2), 1), *bt = seq(dt, EM_SHAPE(2, 3), 2);
        ck_assert_tensor(em_matmul_t(at, b, true, false), dt, EM_SHAPE(2, 2), MM_TA, 1e-6);
        ck_assert_tensor(em_matmul_t(a, bt, false, true), dt, EM_SHAPE(2, 2), MM_TB, 1e-6);
        ck_assert_tensor(em_matmul_t(at, bt, true, true), dt, EM_SHAPE(2, 2), MM_TATB, 1e-6);
    }
    /* the integer loop honours the flags too (its values are 4x the float ones) */
    static const double tatb_int[] = {11, 8, 14, 12};
    ck_assert_tensor(em_matmul_t(seq(EM_I32, EM_SHAPE(3, 2), 1), seq(EM_I32, EM_SHAPE(2, 3), 2), true, true), EM_I32,
                     EM_SHAPE(2, 2), tatb_int, 0);
    em_shutdown();
}
END_TEST

START_TEST(test_transposed_view_no_copy_needed) {
    /* a transposed view (strided) gives the same as the transpose flag */
    em_tensor *at = seq(EM_F32, EM_SHAPE(3, 2), 1);
    em_tensor *view = em_transpose(at, EM_ALL_AXES);
    ck_assert_tensor(em_matmul(view, seq(EM_F32, EM_SHAPE(3, 2), 2)), EM_F32, EM_SHAPE(2, 2), MM_TA, 1e-6);
    em_tensor *bt = em_transpose(seq(EM_F64, EM_SHAPE(2, 3), 2), EM_ALL_AXES);
    ck_assert_tensor(em_matmul(seq(EM_F64, EM_SHAPE(2, 3), 1), bt), EM_F64, EM_SHAPE(2, 2), MM_TB, 1e-12);
    em_shutdown();
}
END_TEST

START_TEST(test_batch_broadcast) {
    for (em_dtype dt = EM_F32; dt <= EM_F64; dt++) {
        em_tensor *y = em_matmul(seq(dt, EM_SHAPE(2, 1, 2, 3), 3), seq(dt, EM_SHAPE(3, 3, 2), 4));
        ck_assert_tensor(y, dt, EM_SHAPE(2, 3, 2, 2), MM_BATCH, 1e-6);
    }
    /* a batch against a single matrix: each batch entry is a plain product */
    em_tensor *a = seq(EM_F64, EM_SHAPE(3, 2, 3), 1), *b = seq(EM_F64, EM_SHAPE(3, 2), 2);
    em_tensor *y = em_matmul(a, b);
    ck_assert_ptr_nonnull(y);
    ck_assert_int_eq(em_dim(y, 0), 3);
    ck_assert_tensor(em_matmul(seq(EM_F64, EM_SHAPE(1, 2, 3), 1), b), EM_F64, EM_SHAPE(1, 2, 2), MM_BASIC, 1e-12);
    em_shutdown();
}
END_TEST

/* Small float32 products whose output rows are a multiple of 16 wide run the
 * register-tile kernel on AVX-512 CPUs (BLIS elsewhere): every transpose,
 * widths that leave 16, 32 or 48 lanes, row counts that are not a multiple of
 * the tile's, a batch, and a strided view agree with float64 (which BLIS runs). */
START_TEST(test_small_float32_products_match_float64) {
    static const int64_t sizes[][3] = {{64, 64, 64}, {7, 33, 16}, {13, 50, 48}, {100, 20, 80}, {5, 300, 256}, {9, 17, 112}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        for (int t = 0; t < 4; t++) {
            em_scope_begin();
            int64_t m = sizes[i][0], k = sizes[i][1], n = sizes[i][2];
            bool ta = t & 1, tb = t & 2;
            em_tensor *a = em_cast(em_test_uniform(ta ? EM_SHAPE(3, k, m) : EM_SHAPE(3, m, k), -1, 1, 40 + i), EM_F32);
            em_tensor *b = em_cast(em_test_uniform(tb ? EM_SHAPE(n, k) : EM_SHAPE(k, n), -1, 1, 50 + i), EM_F32);
            em_tensor *y = em_matmul_t(a, b, ta, tb);
            em_tensor *y64 = em_matmul_t(em_cast(a, EM_F64), em_cast(b, EM_F64), ta, tb);
            ck_assert_msg(em_test_max_rel_diff(y, y64) < 1e-5, "%lldx%lldx%lld, transposes %d", (long long)m,
                          (long long)k, (long long)n, t);
            em_scope_end();
        }
    /* a view of the left operand whose rows are longer than its width */
    em_tensor *a = em_slice(em_cast(em_test_uniform(EM_SHAPE(40, 30), -1, 1, 60), EM_F32), (int64_t[]){0, 0},
                            (int64_t[]){40, 20});
    em_tensor *b = em_cast(em_test_uniform(EM_SHAPE(20, 64), -1, 1, 61), EM_F32);
    ck_assert_double_lt(em_test_max_rel_diff(em_matmul(a, b), em_matmul(em_cast(a, EM_F64), em_cast(b, EM_F64))), 1e-5);
    em_shutdown();
}
END_TEST

/* Products with few rows and a large B (a batch through a wide layer, forward and dx = dy W^T) run
 * Ember's own blocked path on AVX-512 CPUs (BLIS elsewhere): row counts off the tile's, k off the blocks',
 * a last panel of 16 columns, 2 columns left to BLIS, both transposes and a batch agree with float64, bit
 * for bit on 1 and 2 threads. */
START_TEST(test_few_row_products_match_float64) {
    static const int64_t sizes[][3] = {{100, 1100, 1040}, {13, 513, 530}, {192, 256, 1024}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        for (int tr = 0; tr < 4; tr++) {
            em_scope_begin();
            int64_t m = sizes[i][0], k = sizes[i][1], n = sizes[i][2];
            bool ta = tr & 1, tb = tr & 2;
            em_tensor *a = em_cast(em_test_uniform(ta ? EM_SHAPE(2, k, m) : EM_SHAPE(2, m, k), -1, 1, 70 + i), EM_F32);
            em_tensor *b = em_cast(em_test_uniform(tb ? EM_SHAPE(n, k) : EM_SHAPE(k, n), -1, 1, 80 + i), EM_F32), *y[2];
            for (int t = 0; t < 2; t++) {
                em_set_num_threads(t + 1);
                y[t] = em_matmul_t(a, b, ta, tb);
            }
            em_set_num_threads(0);
            em_tensor *y64 = em_matmul_t(em_cast(a, EM_F64), em_cast(b, EM_F64), ta, tb);
            /* sums of up to 1100 products of size 1 in float32, as BLIS's: about 2e-5 */
            ck_assert_msg(em_test_max_rel_diff(y[0], y64) < 1e-4, "%lldx%lldx%lld, transposes %d: %g", (long long)m,
                          (long long)k, (long long)n, tr, em_test_max_rel_diff(y[0], y64));
            ck_assert_int_eq(memcmp(em_data(y[0]), em_data(y[1]), sizeof(float) * (size_t)(2 * m * n)), 0);
            em_scope_end();
        }
    em_shutdown();
}
END_TEST

/* A row times a matrix (batch-1 inference) and a matrix times a column run
 * BLIS's gemv: every transpose, float32 and float64, agree with the plain
 * float64 product of the same values through gemm. */
START_TEST(test_row_and_column_products) {
    static const int64_t sizes[][3] = {{1, 300, 70}, {70, 300, 1}, {1, 1000, 130}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        for (int t = 0; t < 8; t++) {
            em_scope_begin();
            int64_t m = sizes[i][0], k = sizes[i][1], n = sizes[i][2];
            bool ta = t & 1, tb = t & 2;
            em_dtype d = t & 4 ? EM_F64 : EM_F32;
            em_tensor *a = em_cast(em_test_uniform(ta ? EM_SHAPE(k, m) : EM_SHAPE(m, k), -1, 1, 70 + i), d);
            em_tensor *b = em_cast(em_test_uniform(tb ? EM_SHAPE(n, k) : EM_SHAPE(k, n), -1, 1, 80 + i), d);
            /* the reference as a [2, k] x [k, n] or [m, k] x [k, 2] gemm, half of it kept; float32 sums
             * of k products differ by about k ulps */
            em_tensor *a2 = em_cast(ta ? em_transpose(a, EM_ALL_AXES) : a, EM_F64);
            em_tensor *b2 = em_cast(tb ? em_transpose(b, EM_ALL_AXES) : b, EM_F64);
            em_tensor *ref = m == 1 ? em_slice(em_matmul(em_concat(2, (em_tensor *[]){a2, a2}, 0), b2),
                                               (int64_t[]){0, 0}, (int64_t[]){1, -1})
                                    : em_slice(em_matmul(a2, em_concat(2, (em_tensor *[]){b2, b2}, 1)),
                                               (int64_t[]){0, 0}, (int64_t[]){-1, 1});
            ck_assert_msg(em_test_max_rel_diff(em_cast(em_matmul_t(a, b, ta, tb), EM_F64), ref) < (d == EM_F32 ? 3e-8 * (double)k : 1e-12),
                          "%lldx%lldx%lld, transposes %d, %s", (long long)m, (long long)k, (long long)n, t & 3,
                          em_dtype_name(d));
            em_scope_end();
        }
    em_shutdown();
}
END_TEST

START_TEST(test_size_zero_and_one) {
    em_tensor *y = em_matmul(em_zeros(EM_F32, EM_SHAPE(0, 3)), em_ones(EM_F32, EM_SHAPE(3, 2)));
    ck_assert_tensor(y, EM_F32, EM_SHAPE(0, 2), NULL, 0);
    /* k = 0: an empty sum is zero */
    static const double zeros[6] = {0};
    ck_assert_tensor(em_matmul(em_ones(EM_F64, EM_SHAPE(2, 0)), em_ones(EM_F64, EM_SHAPE(0, 3))), EM_F64,
                     EM_SHAPE(2, 3), zeros, 0);
    ck_assert_tensor(em_matmul(em_ones(EM_I32, EM_SHAPE(2, 0)), em_ones(EM_I32, EM_SHAPE(0, 3))), EM_I32,
                     EM_SHAPE(2, 3), zeros, 0);
    /* size-1 dims: a dot product and an outer product */
    static const double dot[] = {6}, outer[] = {1, 2, 2, 4};
    em_tensor *r = em_tensor_from(EM_F32, EM_SHAPE(1, 2), (float[]){1, 2});
    ck_assert_tensor(em_matmul_t(em_ones(EM_F32, EM_SHAPE(1, 3)), em_fill(EM_F32, EM_SHAPE(1, 3), 2), false, true),
                     EM_F32, EM_SHAPE(1, 1), dot, 0);
    ck_assert_tensor(em_matmul_t(r, r, true, false), EM_F32, EM_SHAPE(2, 2), outer, 0);
    /* empty batch */
    ck_assert_tensor(em_matmul(em_ones(EM_F32, EM_SHAPE(0, 2, 3)), em_ones(EM_F32, EM_SHAPE(3, 2))), EM_F32,
                     EM_SHAPE(0, 2, 2), NULL, 0);
    em_shutdown();
}
END_TEST

START_TEST(test_errors) {
    em_tensor *a = em_ones(EM_F32, EM_SHAPE(3, 5)), *b = em_ones(EM_F32, EM_SHAPE(4, 1));
    ck_assert_error(em_matmul(a, b), "matmul: inner dimensions differ: [3,5] x [4,1]");
    ck_assert_error(em_matmul_t(a, b, true, false), "inner dimensions differ");
    ck_assert_error(em_matmul(em_ones(EM_F32, EM_SHAPE(3)), b), "matmul: both operands need at least 2 dimensions: [3] x [4,1]");
    ck_assert_error(em_matmul(a, em_ones(EM_F64, EM_SHAPE(5, 2))), "matmul: dtypes differ: float32 [3,5] x float64 [5,2]");
    ck_assert_error(em_matmul(em_ones(EM_BOOL, EM_SHAPE(2, 2)), em_ones(EM_BOOL, EM_SHAPE(2, 2))), "matmul: dtype bool");
    ck_assert_error(em_matmul(em_ones(EM_F32, EM_SHAPE(2, 3, 5)), em_ones(EM_F32, EM_SHAPE(3, 5, 2))),
                    "matmul: batch dimensions cannot be broadcast: [2,3,5] x [3,5,2]");
    ck_assert_error(em_matmul(NULL, b), "matmul");
    em_shutdown();
}
END_TEST

/* Bit-identical results on 1 and 2 threads: one large product (BLIS threads
 * it) and many small ones (threaded over the batch). */
START_TEST(test_thread_count_independent) {
    em_tensor *a = em_test_uniform(EM_SHAPE(300, 200), -1, 1, 1), *b = em_test_uniform(EM_SHAPE(200, 150), -1, 1, 2);
    em_tensor *ba = em_test_uniform(EM_SHAPE(16, 20, 30), -1, 1, 3), *bb = em_test_uniform(EM_SHAPE(30, 10), -1, 1, 4);
    a = em_cast(a, EM_F32);
    b = em_cast(b, EM_F32);
    em_tensor *y[2], *by[2];
    for (int t = 0; t < 2; t++) {
        em_set_num_threads(t + 1);
        y[t] = em_matmul(a, b);
        by[t] = em_matmul(ba, bb);
    }
    em_set_num_threads(0);
    ck_assert_ptr_nonnull(y[0]);
    ck_assert_ptr_nonnull(by[0]);
    ck_assert_int_eq(memcmp(em_data(y[0]), em_data(y[1]), sizeof(float) * 300 * 150), 0);
    ck_assert_int_eq(memcmp(em_data(by[0]), em_data(by[1]), sizeof(double) * 16 * 20 * 10), 0);
    /* and equal to a float64 reference within float32 rounding */
    em_tensor *ref = em_matmul(em_cast(a, EM_F64), em_cast(b, EM_F64));
    const float *p = em_data(y[0]);
    const double *q = em_data(ref);
    for (int i = 0; i < 300 * 150; i++) ck_assert_double_eq_tol(p[i], q[i], 1e-4);
    em_shutdown();
}
END_TEST

/* Gradients with transposes and batch broadcasting: d(sum(A B))/dA = 1 B^T
 * summed over the broadcast batch. */
START_TEST(test_gradient_broadcast) {
    em_tensor *a = em_ones(EM_F64, EM_SHAPE(2, 3)), *b = seq(EM_F64, EM_SHAPE(4, 3, 2), 2);
    em_tape *tp = em_tape_begin(false);
    em_tensor *y = em_matmul(a, b), *g[2];
    ck_assert_int_eq(em_gradients(tp, y, 2, (em_tensor *[]){a, b}, g), 0);
    em_tape_release(tp);
    /* dA[i][k] = sum over batch and j of B[batch][k][j] */
    double expect[6];
    const double *bv = em_data(b);
    for (int k = 0; k < 3; k++) {
        double s = 0;
        for (int t = 0; t < 4; t++) s += bv[t * 6 + k * 2] + bv[t * 6 + k * 2 + 1];
        expect[k] = expect[3 + k] = s;
    }
    ck_assert_tensor(g[0], EM_F64, EM_SHAPE(2, 3), expect, 1e-12);
    double ones[24];
    for (int i = 0; i < 24; i++) ones[i] = 2; /* dB = A^T 1: column sums of A */
    ck_assert_tensor(g[1], EM_F64, EM_SHAPE(4, 3, 2), ones, 1e-12);
    em_shutdown();
}
END_TEST

/* ---- bfloat16 and float16 (lib/ops/gemm_narrow.c) ---- */

/* x with its last two dims swapped (a view). */
static em_tensor *swap_last_two(em_tensor *x) {
    return em_ndim(x) == 2 ? em_transpose(x, EM_ALL_AXES) : em_transpose(x, 3, (int[]){0, 2, 1});
}

/* The narrow product op(a) op(b) (a [batch, r, c] or [r, c], b [r, c]) against the float64 sum of the same
 * values, written out here. The inputs are exactly representable, each product of two of them is exact in
 * float32 (at most 2 x 11 significant bits), so the only errors are those of the float32 sum of k terms,
 * at most k 2^-24 sum_p |a_p b_p| in any order of summation; VDPBF16PS's flushing of subnormals (each
 * below 2^-126: k 2^-126 at most); and the output's one rounding to the narrow dtype, u |c| with
 * u = 2^-8 (bfloat16) or 2^-11 (float16). Returns the largest error over that bound. */
static double narrow_error_over_bound(em_tensor *a, em_tensor *b, bool ta, bool tb) {
    em_dtype dt = em_tensor_dtype(a);
    em_tensor *y = em_matmul_t(a, b, ta, tb);
    ck_assert_msg(y != NULL, "%s", em_last_error());
    ck_assert_int_eq(em_tensor_dtype(y), dt);
    /* contiguous float64 copies of op(a), op(b) and the output */
    em_tensor *av = em_cast(ta ? swap_last_two(a) : a, EM_F64), *bv = em_cast(tb ? swap_last_two(b) : b, EM_F64);
    em_tensor *yv = em_cast(y, EM_F64);
    int nd = em_ndim(av);
    int64_t m = em_dim(av, nd - 2), k = em_dim(av, nd - 1), n = em_dim(bv, 1), batches = em_numel(av) / (m * k);
    const double *A = em_data(av), *B = em_data(bv), *Y = em_data(yv);
    const double u = dt == EM_BF16 ? 0x1p-8 : 0x1p-11;
    double worst = 0;
    for (int64_t t = 0; t < batches; t++)
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) {
                double c = 0, size = 0;
                for (int64_t p = 0; p < k; p++) {
                    double x = A[(t * m + i) * k + p] * B[p * n + j];
                    c += x;
                    size += fabs(x);
                }
                double bound = (double)k * 0x1p-24 * size * (1 + u) + u * fabs(c) + (double)k * 0x1p-126;
                double e = fabs(Y[(t * m + i) * n + j] - c) / bound;
                worst = e > worst ? e : worst;
            }
    return worst;
}

/* Every narrow product on both CPU routes: VDPBF16PS (bfloat16, where the CPU has AVX512_BF16) and
 * float32 copies through BLIS (float16; bfloat16 forced there). */
START_TEST(test_narrow_products_within_float32_bound) {
    /* m, k, n: k past 1000 and odd, the edges of the 6 x 64 tiles and of the 96 x 256 blocks, a row, a column */
    static const int64_t sizes[][3] = {{37, 1031, 70}, {100, 200, 257}, {64, 64, 64}, {1, 300, 130}, {130, 33, 1}};
    /* one thread: the bits do not depend on the count (test_narrow_thread_count_independent), and the time does */
    em_set_num_threads(1);
    for (int forced = 0; forced < 2; forced++) {
        em__gemm_narrow_force_float32(forced);
        for (em_dtype dt = EM_BF16; dt <= EM_F16; dt++) {
            const char *route = em__gemm_narrow_route(dt);
            for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
                for (int t = 0; t < 4; t++) {
                    em_scope_begin();
                    int64_t m = sizes[i][0], k = sizes[i][1], n = sizes[i][2];
                    bool ta = t & 1, tb = t & 2;
                    em_tensor *a = em_cast(em_test_uniform(ta ? EM_SHAPE(k, m) : EM_SHAPE(m, k), -1, 1, 90 + i), dt);
                    em_tensor *b = em_cast(em_test_uniform(tb ? EM_SHAPE(n, k) : EM_SHAPE(k, n), -1, 1, 95 + i), dt);
                    double r = narrow_error_over_bound(a, b, ta, tb);
                    ck_assert_msg(r <= 1, "%s (%s) %lldx%lldx%lld, transposes %d: error %.3g x the bound",
                                  em_dtype_name(dt), route, (long long)m, (long long)k, (long long)n, t, r);
                    em_scope_end();
                }
            em_scope_begin();
            /* strided views: a's rows longer than its width, b a transposed view */
            em_tensor *a = em_slice(em_cast(em_test_uniform(EM_SHAPE(50, 300), -1, 1, 99), dt), (int64_t[]){0, 0},
                                    (int64_t[]){50, 211});
            em_tensor *b = em_transpose(em_cast(em_test_uniform(EM_SHAPE(90, 211), -1, 1, 98), dt), EM_ALL_AXES);
            ck_assert_msg(narrow_error_over_bound(a, b, false, false) <= 1, "%s (%s): strided views",
                          em_dtype_name(dt), route);
            /* batches against one (strided) b, threaded over the batch; and transposed */
            em_tensor *b40 = em_slice(b, (int64_t[]){0, 0}, (int64_t[]){40, 90});
            em_tensor *batch = em_cast(em_test_uniform(EM_SHAPE(5, 20, 40), -1, 1, 97), dt);
            em_tensor *batch_t = em_cast(em_test_uniform(EM_SHAPE(3, 40, 30), -1, 1, 96), dt);
            ck_assert_msg(narrow_error_over_bound(batch, b40, false, false) <= 1, "%s (%s): batch", em_dtype_name(dt),
                          route);
            ck_assert_msg(narrow_error_over_bound(batch_t, b40, true, false) <= 1, "%s (%s): transposed batch",
                          em_dtype_name(dt), route);
            em_scope_end();
        }
    }
    em__gemm_narrow_force_float32(false);
    em_set_num_threads(0);
    em_shutdown();
}
END_TEST

/* A NaN in an input gives NaN in its row only, on both routes; a signaling one too (the float32 route widens
 * float16 with VCVTPH2PS, which quiets it: the product's NaN is the same). */
START_TEST(test_narrow_nan_stays_in_its_row) {
    for (int forced = 0; forced < 2; forced++) {
        em__gemm_narrow_force_float32(forced);
        for (em_dtype dt = EM_BF16; dt <= EM_F16; dt++) {
            em_scope_begin();
            uint16_t bits[8 * 64];
            const uint16_t one = dt == EM_BF16 ? 0x3f80 : 0x3c00, snan = dt == EM_BF16 ? 0x7f81 : 0x7c01;
            for (int i = 0; i < 8 * 64; i++) bits[i] = one;
            bits[3 * 64 + 17] = snan;
            em_tensor *a = em_tensor_from(dt, EM_SHAPE(8, 64), bits);
            em_tensor *y = em_cast(em_matmul(a, em_ones(dt, EM_SHAPE(64, 80))), EM_F64);
            ck_assert_ptr_nonnull(y);
            const double *v = em_data(y);
            for (int i = 0; i < 8 * 80; i++)
                ck_assert_msg(i / 80 == 3 ? isnan(v[i]) : v[i] == 64, "%s (%s): element %d is %g",
                              em_dtype_name(dt), em__gemm_narrow_route(dt), i, v[i]);
            em_scope_end();
        }
    }
    em__gemm_narrow_force_float32(false);
    em_shutdown();
}
END_TEST

/* The same bits on 1 and 2 threads, on both routes: the blocks of C do not depend on the thread count. */
START_TEST(test_narrow_thread_count_independent) {
    for (int route = 0; route < 3; route++) {
        em__gemm_narrow_force_float32(route == 2);
        em_dtype dt = route == 1 ? EM_F16 : EM_BF16;
        em_tensor *a = em_cast(em_test_uniform(EM_SHAPE(300, 200), -1, 1, 5), dt);
        em_tensor *b = em_cast(em_test_uniform(EM_SHAPE(200, 150), -1, 1, 6), dt);
        em_tensor *y[2];
        for (int t = 0; t < 2; t++) {
            em_set_num_threads(t + 1);
            y[t] = em_matmul(a, b);
            ck_assert_ptr_nonnull(y[t]);
        }
        em_set_num_threads(0);
        ck_assert_msg(memcmp(em_data(y[0]), em_data(y[1]), sizeof(uint16_t) * 300 * 150) == 0, "%s (%s)",
                      em_dtype_name(dt), em__gemm_narrow_route(dt));
    }
    em__gemm_narrow_force_float32(false);
    em_shutdown();
}
END_TEST

/* The tape differentiates a bfloat16 product in bfloat16: gradients of its dtype, equal to float32's
 * rounded once (the sums are float32 in both). */
START_TEST(test_narrow_gradients) {
    for (em_dtype dt = EM_BF16; dt <= EM_F16; dt++) {
        em_tensor *a = em_cast(em_test_uniform(EM_SHAPE(2, 20, 30), -1, 1, 7), dt);
        em_tensor *b = em_cast(em_test_uniform(EM_SHAPE(40, 30), -1, 1, 8), dt);
        em_tensor *a32 = em_cast(a, EM_F32), *b32 = em_cast(b, EM_F32), *g[2], *g32[2];
        em_tape *tp = em_tape_begin(false);
        em_tensor *y = em_matmul_t(a, b, false, true);
        ck_assert_int_eq(em_gradients(tp, y, 2, (em_tensor *[]){a, b}, g), 0);
        em_tape_release(tp);
        tp = em_tape_begin(false);
        y = em_matmul_t(a32, b32, false, true);
        ck_assert_int_eq(em_gradients(tp, y, 2, (em_tensor *[]){a32, b32}, g32), 0);
        em_tape_release(tp);
        /* a's gradient is one product, rounded once; b's the sum of a product per batch, each rounded, rounded
         * again (float32's own errors are far below these) */
        const double u = dt == EM_BF16 ? 0x1p-8 : 0x1p-11;
        for (int i = 0; i < 2; i++) {
            ck_assert_int_eq(em_tensor_dtype(g[i]), dt);
            ck_assert(em_shape_equal(em_tensor_shape(g[i]), em_tensor_shape(i ? b : a)));
            ck_assert_double_le(em_test_max_rel_diff(em_cast(g[i], EM_F32), g32[i]), i ? 3 * u : u);
        }
    }
    em_shutdown();
}
END_TEST

/* Out of memory for the scratch copies: a clear error, on both routes, and no output. */
static bool fail_large(size_t bytes, void *ctx) { return bytes > *(size_t *)ctx; }

START_TEST(test_narrow_out_of_memory) {
    em_tensor *a = em_cast(em_test_uniform(EM_SHAPE(64, 2048), -1, 1, 9), EM_BF16);
    em_tensor *b = em_cast(em_test_uniform(EM_SHAPE(2048, 64), -1, 1, 10), EM_BF16);
    size_t limit = 64 << 10; /* the output (8 KiB) fits; the packed or widened operands (256 KiB and more) do not */
    for (int forced = 0; forced < 2; forced++) {
        em__gemm_narrow_force_float32(forced);
        em__set_alloc_fail_hook(fail_large, &limit);
        em_tensor *y = em_matmul(a, b);
        em__set_alloc_fail_hook(NULL, NULL);
        ck_assert_ptr_null(y);
        ck_assert_msg(em_last_error() && strstr(em_last_error(), "matmul: out of memory"), "error: %s",
                      em_last_error() ? em_last_error() : "(none)");
        em_clear_error();
    }
    em__gemm_narrow_force_float32(false);
    em_shutdown();
}
END_TEST

/* em__gemm's accumulate (C += A B, the contract conv's filter gradient uses for float32) on the narrow
 * routes and the plain loop: C's value is the sum's first term, rounded once at the end. */
START_TEST(test_narrow_gemm_accumulates) {
    static const int64_t sizes[][3] = {{70, 300, 90}, {3, 20, 5}}; /* past the plain loop, and in it */
    for (int forced = 0; forced < 2; forced++) {
        em__gemm_narrow_force_float32(forced);
        for (em_dtype dt = EM_BF16; dt <= EM_F16; dt++)
            for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
                em_scope_begin();
                int64_t m = sizes[i][0], k = sizes[i][1], n = sizes[i][2];
                em_tensor *a = em_cast(em_test_uniform(EM_SHAPE(m, k), -1, 1, 11), dt);
                em_tensor *b = em_cast(em_test_uniform(EM_SHAPE(k, n), -1, 1, 12), dt);
                em_tensor *c = em_cast(em_test_uniform(EM_SHAPE(m, n), -4, 4, 13), dt);
                em_tensor *c0 = em_cast(c, EM_F64), *ref = em_add(c0, em_matmul(em_cast(a, EM_F64), em_cast(b, EM_F64)));
                em_tensor *size = em_add(em_abs(c0), em_matmul(em_abs(em_cast(a, EM_F64)), em_abs(em_cast(b, EM_F64))));
                em__gemm(dt, m, n, k, em_data(a), k, 1, em_data(b), n, 1, true, c->data, n, 1, false); /* c: fresh, its own */
                em_tensor *got = em_cast(c, EM_F64);
                const double *g = em_data(got), *r = em_data(ref), *sz = em_data(size);
                const double u = dt == EM_BF16 ? 0x1p-8 : 0x1p-11;
                for (int64_t j = 0; j < m * n; j++)
                    ck_assert_msg(fabs(g[j] - r[j]) <= (double)(k + 1) * 0x1p-24 * sz[j] * (1 + u) + u * fabs(r[j]),
                                  "%s (%s) %lldx%lldx%lld: element %lld is %g, expected %g", em_dtype_name(dt),
                                  em__gemm_narrow_route(dt), (long long)m, (long long)k, (long long)n, (long long)j,
                                  g[j], r[j]);
                em_scope_end();
            }
    }
    em__gemm_narrow_force_float32(false);
    em_shutdown();
}
END_TEST

int main(void) {
    Suite *s = suite_create("matmul");
    TCase *tc = tcase_create("matmul");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_float_values);
    tcase_add_test(tc, test_int_dtypes);
    tcase_add_test(tc, test_transposes);
    tcase_add_test(tc, test_transposed_view_no_copy_needed);
    tcase_add_test(tc, test_batch_broadcast);
    tcase_add_test(tc, test_small_float32_products_match_float64);
    tcase_add_test(tc, test_few_row_products_match_float64);
    tcase_add_test(tc, test_row_and_column_products);
    tcase_add_test(tc, test_size_zero_and_one);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_thread_count_independent);
    tcase_add_test(tc, test_gradient_broadcast);
    tcase_add_test(tc, test_narrow_products_within_float32_bound);
    tcase_add_test(tc, test_narrow_nan_stays_in_its_row);
    tcase_add_test(tc, test_narrow_thread_count_independent);
    tcase_add_test(tc, test_narrow_gradients);
    tcase_add_test(tc, test_narrow_out_of_memory);
    tcase_add_test(tc, test_narrow_gemm_accumulates);
    suite_add_tcase(s, tc);
    return em_test_run(s);
}
