/* The elementwise family: values of every op in every dtype it accepts
 * (expectations from NumPy / Python's math module), NumPy broadcasting,
 * size-0 dims, strided views, error messages, NULL propagation, thread-count
 * independence, and the gradient rules' conventions (ties, casts, where). */
#include "common.h"

#include "broadcast.h"
#include "fast_math.h"
#include "ops/narrow.h"

#include <float.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void teardown(void) { em_shutdown(); }

/* A tensor of dtype d from doubles (at most 64 elements). */
static em_tensor *mk(em_dtype d, em_shape s, const double *v) {
    union {
        float f32[64];
        double f64[64];
        int32_t i32[64];
        int64_t i64[64];
        uint8_t u8[64];
    } buf;
    int64_t n = em_shape_numel(s);
    ck_assert_int_le(n, 64);
    for (int64_t i = 0; i < n; i++) switch (d) {
        case EM_F32: buf.f32[i] = (float)v[i]; break;
        case EM_F64: buf.f64[i] = v[i]; break;
        case EM_I32: buf.i32[i] = (int32_t)v[i]; break;
        case EM_I64: buf.i64[i] = (int64_t)v[i]; break;
        default: buf.u8[i] = (uint8_t)v[i]; break;
        }
    return em_tensor_from(d, s, &buf);
}

#define V(...) ((const double[]){__VA_ARGS__})
#define VEC(d, ...) mk((d), EM_SHAPE(sizeof V(__VA_ARGS__) / sizeof(double)), V(__VA_ARGS__))

static const em_dtype numeric[] = {EM_F32, EM_F64, EM_I32, EM_I64, EM_U8};
static const em_dtype all_dtypes[] = {EM_F32, EM_F64, EM_I32, EM_I64, EM_U8, EM_BOOL};
#define COUNT(a) (int)(sizeof(a) / sizeof((a)[0]))

static double tol_of(em_dtype d) { return d == EM_F32 ? 1e-6 : d == EM_F64 ? 1e-14 : 0; }

/* ---- arithmetic ---- */

START_TEST(test_arithmetic_every_numeric_dtype) {
    for (int k = 0; k < COUNT(numeric); k++) {
        em_dtype d = numeric[k];
        bool fl = d == EM_F32 || d == EM_F64;
        em_tensor *a = VEC(d, 7, 2, 9, 0), *b = VEC(d, 2, 3, 9, 5);
        ck_assert_tensor(em_add(a, b), d, EM_SHAPE(4), V(9, 5, 18, 5), 0);
        ck_assert_tensor(em_sub(a, b), d, EM_SHAPE(4), d == EM_U8 ? V(5, 255, 0, 251) : V(5, -1, 0, -5), 0);
        ck_assert_tensor(em_mul(a, b), d, EM_SHAPE(4), V(14, 6, 81, 0), 0);
        ck_assert_tensor(em_div(a, b), d, EM_SHAPE(4), fl ? V(3.5, 2.0 / 3.0, 1, 0) : V(3, 0, 1, 0), tol_of(d));
        ck_assert_tensor(em_maximum(a, b), d, EM_SHAPE(4), V(7, 3, 9, 5), 0);
        ck_assert_tensor(em_minimum(a, b), d, EM_SHAPE(4), V(2, 2, 9, 0), 0);
        ck_assert_tensor(em_add_scalar(a, 3), d, EM_SHAPE(4), V(10, 5, 12, 3), 0);
        ck_assert_tensor(em_mul_scalar(a, 2), d, EM_SHAPE(4), V(14, 4, 18, 0), 0);
    }
}
END_TEST

START_TEST(test_integer_division_truncates_and_wraps) {
    /* Truncation toward zero, x/0 == 0, and INT_MIN / -1 wraps instead of trapping. */
    ck_assert_tensor(em_div(VEC(EM_I32, -7, 7, 5, INT32_MIN, 0), VEC(EM_I32, 2, -2, 0, -1, 0)), EM_I32, EM_SHAPE(5),
                     V(-3, -3, 0, INT32_MIN, 0), 0);
    ck_assert_tensor(em_div(VEC(EM_I64, -9, 9, -1, (double)INT64_MIN), VEC(EM_I64, 4, -4, 0, -1)), EM_I64, EM_SHAPE(4),
                     V(-2, -2, 0, (double)INT64_MIN), 0);
    ck_assert_tensor(em_div(VEC(EM_U8, 200, 7, 9), VEC(EM_U8, 7, 0, 255)), EM_U8, EM_SHAPE(3), V(28, 0, 0), 0);
    /* Floats follow IEEE: 1/0 = inf, 0/0 = nan. */
    ck_assert_tensor(em_div(VEC(EM_F64, 1, -1, 0), VEC(EM_F64, 0, 0, 0)), EM_F64, EM_SHAPE(3),
                     V(INFINITY, -INFINITY, NAN), 0);
    /* Integer overflow wraps modulo 2^bits. */
    ck_assert_tensor(em_add(VEC(EM_I32, INT32_MAX), VEC(EM_I32, 1)), EM_I32, EM_SHAPE(1), V(INT32_MIN), 0);
    ck_assert_tensor(em_mul(VEC(EM_I32, 65536), VEC(EM_I32, 65536)), EM_I32, EM_SHAPE(1), V(0), 0);
    ck_assert_tensor(em_add(VEC(EM_U8, 200), VEC(EM_U8, 100)), EM_U8, EM_SHAPE(1), V(44), 0);
    ck_assert_tensor(em_mul_scalar(VEC(EM_U8, 100), 3), EM_U8, EM_SHAPE(1), V(44), 0);
}
END_TEST

START_TEST(test_pow_and_nan_propagation) {
    for (int k = 0; k < 2; k++) {
        em_dtype d = k ? EM_F64 : EM_F32;
        ck_assert_tensor(em_pow(VEC(d, 2, 9, 0.5, 4), VEC(d, 3, 0.5, -1, 0)), d, EM_SHAPE(4), V(8, 3, 2, 1), tol_of(d));
        /* maximum / minimum propagate NaN from either side, like NumPy. */
        em_tensor *a = VEC(d, NAN, 1, 2), *b = VEC(d, 1, NAN, 3);
        ck_assert_tensor(em_maximum(a, b), d, EM_SHAPE(3), V(NAN, NAN, 3), 0);
        ck_assert_tensor(em_minimum(a, b), d, EM_SHAPE(3), V(NAN, NAN, 2), 0);
    }
}
END_TEST

START_TEST(test_unary_numeric_every_dtype) {
    for (int k = 0; k < 4; k++) {
        em_dtype d = numeric[k];
        em_tensor *x = VEC(d, -3, 0, 2, 5);
        ck_assert_tensor(em_neg(x), d, EM_SHAPE(4), V(3, 0, -2, -5), 0);
        ck_assert_tensor(em_abs(x), d, EM_SHAPE(4), V(3, 0, 2, 5), 0);
        ck_assert_tensor(em_square(x), d, EM_SHAPE(4), V(9, 0, 4, 25), 0);
        ck_assert_tensor(em_sign(x), d, EM_SHAPE(4), V(-1, 0, 1, 1), 0);
    }
    em_tensor *u = VEC(EM_U8, 0, 2, 5, 255);
    ck_assert_tensor(em_neg(u), EM_U8, EM_SHAPE(4), V(0, 254, 251, 1), 0);
    ck_assert_tensor(em_abs(u), EM_U8, EM_SHAPE(4), V(0, 2, 5, 255), 0);
    ck_assert_tensor(em_square(u), EM_U8, EM_SHAPE(4), V(0, 4, 25, 1), 0);
    ck_assert_tensor(em_sign(u), EM_U8, EM_SHAPE(4), V(0, 1, 1, 1), 0);
    ck_assert_tensor(em_neg(VEC(EM_I32, INT32_MIN)), EM_I32, EM_SHAPE(1), V(INT32_MIN), 0);
    ck_assert_tensor(em_abs(VEC(EM_I64, (double)INT64_MIN)), EM_I64, EM_SHAPE(1), V((double)INT64_MIN), 0);
    ck_assert_tensor(em_sign(VEC(EM_F64, NAN, -0.0)), EM_F64, EM_SHAPE(2), V(NAN, 0), 0);
    ck_assert_tensor(em_abs(VEC(EM_F32, -0.0, -INFINITY)), EM_F32, EM_SHAPE(2), V(0, INFINITY), 0);
}
END_TEST

/* ---- float math and activations (values from Python's math module) ---- */

START_TEST(test_float_math) {
    for (int k = 0; k < 2; k++) {
        em_dtype d = k ? EM_F64 : EM_F32;
        double t = tol_of(d);
        em_tensor *p = VEC(d, 0.25, 1, 2, 9), *x = VEC(d, -2, -0.5, 0.5, 3);
        ck_assert_tensor(em_sqrt(p), d, EM_SHAPE(4), V(0.5, 1, 1.4142135623730951, 3), t);
        ck_assert_tensor(em_rsqrt(p), d, EM_SHAPE(4), V(2, 1, 0.70710678118654746, 0.33333333333333331), t);
        ck_assert_tensor(em_exp(x), d, EM_SHAPE(4),
                         V(0.1353352832366127, 0.60653065971263342, 1.6487212707001282, 20.085536923187668), t);
        ck_assert_tensor(em_log(p), d, EM_SHAPE(4), V(-1.3862943611198906, 0, 0.69314718055994529, 2.1972245773362196),
                         t);
        ck_assert_tensor(em_log1p(VEC(d, -0.5, 0, 1e-10, 3)), d, EM_SHAPE(4),
                         V(-0.69314718055994529, 0, 9.9999999995000007e-11, 1.3862943611198906), t);
        ck_assert_tensor(em_erf(x), d, EM_SHAPE(4),
                         V(-0.99532226501895271, -0.52049987781304652, 0.52049987781304652, 0.99997790950300136), t);
        ck_assert_tensor(em_sqrt(VEC(d, -1)), d, EM_SHAPE(1), V(NAN), 0);
        ck_assert_tensor(em_log(VEC(d, 0)), d, EM_SHAPE(1), V(-INFINITY), 0);
    }
}
END_TEST

START_TEST(test_activations) {
    for (int k = 0; k < 2; k++) {
        em_dtype d = k ? EM_F64 : EM_F32;
        double t = tol_of(d);
        em_tensor *x = VEC(d, -2, -0.5, 0.5, 3), *big = VEC(d, -800, -2, 0, 2, 800);
        ck_assert_tensor(em_relu(x), d, EM_SHAPE(4), V(0, 0, 0.5, 3), 0);
        ck_assert_tensor(em_leaky_relu(x, 0.1), d, EM_SHAPE(4), V(-0.2, -0.05, 0.5, 3), t);
        ck_assert_tensor(em_elu(x), d, EM_SHAPE(4), V(-0.8646647167633873, -0.39346934028736658, 0.5, 3), t);
        ck_assert_tensor(em_tanh(x), d, EM_SHAPE(4),
                         V(-0.9640275800758169, -0.46211715726000974, 0.46211715726000974, 0.99505475368673046), t);
        ck_assert_tensor(em_gelu(x), d, EM_SHAPE(4),
                         V(-0.045500263896358417, -0.15426876936299344, 0.34573123063700656, 2.9959503059051098), t);
        /* Stable forms: no overflow to nan at +-800. */
        ck_assert_tensor(em_sigmoid(big), d, EM_SHAPE(5), V(0, 0.11920292202211755, 0.5, 0.88079707797788231, 1), t);
        ck_assert_tensor(em_softplus(big), d, EM_SHAPE(5),
                         V(0, 0.12692801104297249, 0.69314718055994529, 2.1269280110429727, 800), t);
    }
}
END_TEST

typedef em_tensor *(*unary_fn)(em_tensor *);
static em_tensor *leaky(em_tensor *x) { return em_leaky_relu(x, 0.1); }

START_TEST(test_float_only_ops_reject_integers) {
    static const struct {
        unary_fn fn;
        const char *name;
    } ops[] = {{em_sqrt, "sqrt"},   {em_rsqrt, "rsqrt"},     {em_exp, "exp"},   {em_log, "log"},
               {em_log1p, "log1p"}, {em_erf, "erf"},         {em_relu, "relu"}, {leaky, "leaky_relu"},
               {em_elu, "elu"},     {em_sigmoid, "sigmoid"}, {em_tanh, "tanh"}, {em_softplus, "softplus"},
               {em_gelu, "gelu"},   {em_gelu_tanh, "gelu_tanh"}};
    em_tensor *i = VEC(EM_I32, 1, 2), *u = VEC(EM_U8, 1);
    for (int k = 0; k < COUNT(ops); k++) {
        char want[64];
        snprintf(want, sizeof want, "%s: dtype int32 (input of shape [2]) is not supported", ops[k].name);
        ck_assert_error(ops[k].fn(i), want);
        ck_assert_error(ops[k].fn(u), "expected float32, float64");
    }
    ck_assert_error(em_pow(i, i), "pow: dtype int32");
    /* Arithmetic takes every numeric dtype but not bool. */
    em_tensor *bl = mk(EM_BOOL, EM_SHAPE(2), V(1, 0));
    ck_assert_error(em_add(bl, bl), "add: dtype bool (input of shape [2]) is not supported; expected float32, float64, "
                                    "int32, int64, uint8");
    ck_assert_error(em_neg(bl), "neg: dtype bool");
    ck_assert_error(em_clip_by_value(bl, 0, 1), "clip: dtype bool");
    ck_assert_error(em_add_scalar(bl, 1), "add: dtype bool");
}
END_TEST

/* ---- comparisons and logic ---- */

START_TEST(test_comparisons_every_dtype) {
    for (int k = 0; k < COUNT(all_dtypes); k++) {
        em_dtype d = all_dtypes[k];
        /* bool compares as 0 < 1 */
        em_tensor *a = d == EM_BOOL ? mk(d, EM_SHAPE(3), V(0, 1, 1)) : VEC(d, 1, 2, 3);
        em_tensor *b = d == EM_BOOL ? mk(d, EM_SHAPE(3), V(1, 1, 0)) : VEC(d, 2, 2, 2);
        ck_assert_tensor(em_equal(a, b), EM_BOOL, EM_SHAPE(3), V(0, 1, 0), 0);
        ck_assert_tensor(em_not_equal(a, b), EM_BOOL, EM_SHAPE(3), V(1, 0, 1), 0);
        ck_assert_tensor(em_less(a, b), EM_BOOL, EM_SHAPE(3), V(1, 0, 0), 0);
        ck_assert_tensor(em_less_equal(a, b), EM_BOOL, EM_SHAPE(3), V(1, 1, 0), 0);
        ck_assert_tensor(em_greater(a, b), EM_BOOL, EM_SHAPE(3), V(0, 0, 1), 0);
        ck_assert_tensor(em_greater_equal(a, b), EM_BOOL, EM_SHAPE(3), V(0, 1, 1), 0);
    }
    em_tensor *n = VEC(EM_F32, NAN, 1), *m = VEC(EM_F32, NAN, NAN);
    ck_assert_tensor(em_equal(n, m), EM_BOOL, EM_SHAPE(2), V(0, 0), 0);
    ck_assert_tensor(em_not_equal(n, m), EM_BOOL, EM_SHAPE(2), V(1, 1), 0);
    ck_assert_tensor(em_less_equal(n, m), EM_BOOL, EM_SHAPE(2), V(0, 0), 0);
    /* Broadcast: column vs row gives a bool matrix. */
    ck_assert_tensor(em_less(mk(EM_I64, EM_SHAPE(2, 1), V(1, 3)), VEC(EM_I64, 0, 2, 4)), EM_BOOL, EM_SHAPE(2, 3),
                     V(0, 1, 1, 0, 0, 1), 0);
    ck_assert_error(em_equal(VEC(EM_F32, 1), VEC(EM_I32, 1)), "equal: dtypes differ: float32 [1] vs int32 [1]");
}
END_TEST

START_TEST(test_logical_ops) {
    em_tensor *a = mk(EM_BOOL, EM_SHAPE(4), V(0, 0, 1, 1)), *b = mk(EM_BOOL, EM_SHAPE(4), V(0, 1, 0, 1));
    ck_assert_tensor(em_logical_and(a, b), EM_BOOL, EM_SHAPE(4), V(0, 0, 0, 1), 0);
    ck_assert_tensor(em_logical_or(a, b), EM_BOOL, EM_SHAPE(4), V(0, 1, 1, 1), 0);
    ck_assert_tensor(em_logical_not(a), EM_BOOL, EM_SHAPE(4), V(1, 1, 0, 0), 0);
    /* A bool scalar broadcasts. */
    ck_assert_tensor(em_logical_and(a, mk(EM_BOOL, EM_SHAPE0, V(1))), EM_BOOL, EM_SHAPE(4), V(0, 0, 1, 1), 0);
    em_tensor *f = VEC(EM_F32, 1, 0);
    ck_assert_error(em_logical_and(f, f),
                    "logical_and: dtype float32 (input of shape [2]) is not supported; expected bool");
    ck_assert_error(em_logical_or(VEC(EM_I32, 1), VEC(EM_I32, 1)), "logical_or: dtype int32");
    ck_assert_error(em_logical_not(f), "logical_not: dtype float32");
}
END_TEST

/* ---- where, clip, cast ---- */

START_TEST(test_where_broadcasts_every_dtype) {
    em_tensor *cond = mk(EM_BOOL, EM_SHAPE(3, 1), V(1, 0, 1));
    for (int k = 0; k < COUNT(all_dtypes); k++) {
        em_dtype d = all_dtypes[k];
        em_tensor *a = d == EM_BOOL ? mk(d, EM_SHAPE(1, 4), V(1, 0, 1, 1)) : mk(d, EM_SHAPE(1, 4), V(1, 2, 3, 4));
        em_tensor *b = mk(d, EM_SHAPE0, V(0));
        ck_assert_tensor(em_where(cond, a, b), d, EM_SHAPE(3, 4),
                         d == EM_BOOL ? V(1, 0, 1, 1, 0, 0, 0, 0, 1, 0, 1, 1) : V(1, 2, 3, 4, 0, 0, 0, 0, 1, 2, 3, 4),
                         0);
    }
    /* Same-shape and a scalar on the left. */
    em_tensor *c = mk(EM_BOOL, EM_SHAPE(4), V(1, 0, 0, 1));
    ck_assert_tensor(em_where(c, VEC(EM_F64, 1, 2, 3, 4), VEC(EM_F64, -1, -2, -3, -4)), EM_F64, EM_SHAPE(4),
                     V(1, -2, -3, 4), 0);
    ck_assert_tensor(em_where(c, mk(EM_F32, EM_SHAPE0, V(9)), VEC(EM_F32, -1, -2, -3, -4)), EM_F32, EM_SHAPE(4),
                     V(9, -2, -3, 9), 0);
    ck_assert_error(em_where(VEC(EM_F32, 1, 0, 1), VEC(EM_F32, 1, 2, 3), VEC(EM_F32, 1, 2, 3)),
                    "where: cond must be bool, got float32 [3]");
    ck_assert_error(em_where(cond, VEC(EM_F32, 1), VEC(EM_F64, 1)), "where: dtypes differ: float32 [1] vs float64 [1]");
    ck_assert_error(em_where(cond, VEC(EM_F32, 1, 2), VEC(EM_F32, 1, 2, 3)),
                    "where: shapes cannot be broadcast together: [3,1] vs [2] vs [3]");
}
END_TEST

START_TEST(test_clip_by_value) {
    for (int k = 0; k < 2; k++) {
        em_dtype d = k ? EM_F64 : EM_F32;
        ck_assert_tensor(em_clip_by_value(VEC(d, -2, -0.5, 0.5, 2, NAN), -1, 1), d, EM_SHAPE(5),
                         V(-1, -0.5, 0.5, 1, NAN), 0);
    }
    /* Integer bounds round inward: [-1.5, 2.5] is [-1, 2]; out-of-range bounds saturate. */
    ck_assert_tensor(em_clip_by_value(VEC(EM_I32, -5, -1, 0, 2, 7), -1.5, 2.5), EM_I32, EM_SHAPE(5), V(-1, -1, 0, 2, 2),
                     0);
    ck_assert_tensor(em_clip_by_value(VEC(EM_I64, -5, 7), -1e30, 3), EM_I64, EM_SHAPE(2), V(-5, 3), 0);
    ck_assert_tensor(em_clip_by_value(VEC(EM_U8, 0, 3, 200), -10, 100), EM_U8, EM_SHAPE(3), V(0, 3, 100), 0);
    ck_assert_tensor(em_clip_by_value(VEC(EM_F32, 5), 2, 2), EM_F32, EM_SHAPE(1), V(2), 0);
    ck_assert_error(em_clip_by_value(VEC(EM_F32, 1), 2, 1), "clip: bounds must satisfy lo <= hi, got lo=2 hi=1");
    ck_assert_error(em_clip_by_value(VEC(EM_F32, 1), NAN, 1), "clip: bounds must satisfy lo <= hi");
}
END_TEST

START_TEST(test_cast_between_every_dtype) {
    /* Every pair round-trips small non-negative integers. */
    for (int s = 0; s < COUNT(all_dtypes); s++)
        for (int t = 0; t < COUNT(all_dtypes); t++) {
            em_dtype from = all_dtypes[s], to = all_dtypes[t];
            bool bl = from == EM_BOOL || to == EM_BOOL;
            em_tensor *x = mk(from, EM_SHAPE(3), bl ? V(0, 1, 1) : V(0, 1, 42));
            ck_assert_tensor(em_cast(x, to), to, EM_SHAPE(3), bl ? V(0, 1, 1) : V(0, 1, 42), 0);
        }
    /* float -> int truncates toward zero and saturates; NaN gives 0. */
    ck_assert_tensor(em_cast(VEC(EM_F64, 2.9, -2.9, 1e10, -1e10, NAN), EM_I32), EM_I32, EM_SHAPE(5),
                     V(2, -2, INT32_MAX, INT32_MIN, 0), 0);
    ck_assert_tensor(em_cast(VEC(EM_F32, 1e30, -1e30, -0.5), EM_I64), EM_I64, EM_SHAPE(3),
                     V((double)INT64_MAX, (double)INT64_MIN, 0), 0);
    ck_assert_tensor(em_cast(VEC(EM_F64, 300, -3, 255.9), EM_U8), EM_U8, EM_SHAPE(3), V(255, 0, 255), 0);
    /* float -> bool is x != 0 (NaN is true). */
    ck_assert_tensor(em_cast(VEC(EM_F32, 0, -0.0, 0.25, NAN, -3), EM_BOOL), EM_BOOL, EM_SHAPE(5), V(0, 0, 1, 1, 1), 0);
    ck_assert_tensor(em_cast(VEC(EM_I64, 0, 256, -1), EM_BOOL), EM_BOOL, EM_SHAPE(3), V(0, 1, 1), 0);
    /* int -> int wraps. */
    ck_assert_tensor(em_cast(VEC(EM_I64, 300, -1, 4294967296.0 + 5), EM_U8), EM_U8, EM_SHAPE(3), V(44, 255, 5), 0);
    ck_assert_tensor(em_cast(VEC(EM_I64, 4294967296.0 + 5, -1), EM_I32), EM_I32, EM_SHAPE(2), V(5, -1), 0);
    /* f64 -> f32 rounds; bool -> float is 0/1. */
    ck_assert_tensor(em_cast(VEC(EM_F64, 0.1), EM_F32), EM_F32, EM_SHAPE(1), V((float)0.1), 0);
    ck_assert_tensor(em_cast(mk(EM_BOOL, EM_SHAPE(2), V(1, 0)), EM_F64), EM_F64, EM_SHAPE(2), V(1, 0), 0);
    ck_assert_error(em_cast(VEC(EM_F32, 1), (em_dtype)17), "cast: invalid target dtype 17");
    ck_assert_error(em_cast(VEC(EM_F32, 1), (em_dtype)-1), "cast: invalid target dtype -1");
}
END_TEST

/* ---- broadcasting, size-0 and size-1 dims, views ---- */

START_TEST(test_broadcasting) {
    em_tensor *col = mk(EM_F32, EM_SHAPE(3, 1), V(0, 10, 20)), *row = VEC(EM_F32, 1, 2, 3, 4);
    ck_assert_tensor(em_add(col, row), EM_F32, EM_SHAPE(3, 4), V(1, 2, 3, 4, 11, 12, 13, 14, 21, 22, 23, 24), 0);
    ck_assert_tensor(em_sub(row, col), EM_F32, EM_SHAPE(3, 4), V(1, 2, 3, 4, -9, -8, -7, -6, -19, -18, -17, -16), 0);
    /* scalar + matrix, both ways round */
    em_tensor *m = mk(EM_I32, EM_SHAPE(2, 3), V(1, 2, 3, 4, 5, 6)), *s = mk(EM_I32, EM_SHAPE0, V(10));
    ck_assert_tensor(em_mul(s, m), EM_I32, EM_SHAPE(2, 3), V(10, 20, 30, 40, 50, 60), 0);
    ck_assert_tensor(em_sub(m, s), EM_I32, EM_SHAPE(2, 3), V(-9, -8, -7, -6, -5, -4), 0);
    ck_assert_tensor(em_add(s, s), EM_I32, EM_SHAPE0, V(20), 0);
    /* Size-1 dims in the middle, rank extension in front. */
    em_tensor *a = mk(EM_F64, EM_SHAPE(2, 1, 2), V(1, 2, 3, 4)), *b = mk(EM_F64, EM_SHAPE(3, 1), V(10, 20, 30));
    ck_assert_tensor(em_add(a, b), EM_F64, EM_SHAPE(2, 3, 2), V(11, 12, 21, 22, 31, 32, 13, 14, 23, 24, 33, 34), 0);
    /* Size-0 dims broadcast like any other. */
    em_tensor *e = em_zeros(EM_F32, EM_SHAPE(0, 3));
    ck_assert_tensor(em_add(e, VEC(EM_F32, 1, 2, 3)), EM_F32, EM_SHAPE(0, 3), NULL, 0);
    ck_assert_tensor(em_mul(em_zeros(EM_F32, EM_SHAPE(1, 0)), mk(EM_F32, EM_SHAPE(3, 1), V(1, 2, 3))), EM_F32,
                     EM_SHAPE(3, 0), NULL, 0);
    ck_assert_tensor(em_exp(e), EM_F32, EM_SHAPE(0, 3), NULL, 0);
    ck_assert_tensor(em_where(em_zeros(EM_BOOL, EM_SHAPE(0)), VEC(EM_F32, 1), mk(EM_F32, EM_SHAPE0, V(2))), EM_F32,
                     EM_SHAPE(0), NULL, 0);
    ck_assert_error(em_add(e, VEC(EM_F32, 1, 2)), "add: shapes cannot be broadcast together: [0,3] vs [2]");
    ck_assert_error(em_mul(VEC(EM_F32, 1, 2, 3), row), "mul: shapes cannot be broadcast together: [3] vs [4]");
}
END_TEST

START_TEST(test_strided_views_need_no_copy) {
    /* A transposed [3,2] view of a [2,3] matrix, combined with a broadcast row. */
    em_tensor *m = mk(EM_F32, EM_SHAPE(2, 3), V(1, 2, 3, 4, 5, 6));
    em_tensor *t = em_transpose(m, EM_ALL_AXES);
    ck_assert_ptr_nonnull(t);
    ck_assert_tensor(em_add(t, VEC(EM_F32, 10, 20)), EM_F32, EM_SHAPE(3, 2), V(11, 24, 12, 25, 13, 26), 0);
    ck_assert_tensor(em_neg(t), EM_F32, EM_SHAPE(3, 2), V(-1, -4, -2, -5, -3, -6), 0);
    ck_assert_tensor(em_mul(t, t), EM_F32, EM_SHAPE(3, 2), V(1, 16, 4, 25, 9, 36), 0);
    ck_assert_tensor(em_cast(t, EM_I32), EM_I32, EM_SHAPE(3, 2), V(1, 4, 2, 5, 3, 6), 0);
    ck_assert_tensor(em_greater(t, mk(EM_F32, EM_SHAPE(3, 1), V(1, 4, 5))), EM_BOOL, EM_SHAPE(3, 2),
                     V(0, 1, 0, 1, 0, 1), 0);
    em_tensor *cond = em_greater(t, mk(EM_F32, EM_SHAPE0, V(3)));
    ck_assert_tensor(em_where(cond, t, em_transpose(em_neg(m), EM_ALL_AXES)), EM_F32, EM_SHAPE(3, 2),
                     V(-1, 4, -2, 5, -3, 6), 0);
}
END_TEST

/* The plan the CUDA kernels share: per-element offsets (em_bcast_offset)
 * agree with the CPU's row walk (locate + advance) from any start. */
START_TEST(test_broadcast_plan) {
    const int64_t out[3] = {2, 3, 4};
    const int64_t col[2] = {3, 1}, col_st[2] = {1, 1};     /* [3,1], broadcast over axes 0 and 2 */
    const int64_t tr[3] = {2, 3, 4}, tr_st[3] = {1, 8, 2}; /* a permuted view */
    em_bcast p;
    em_bcast_init(&p, 3, out, 2);
    em_bcast_input(&p, 0, 2, col, col_st);
    em_bcast_input(&p, 1, 3, tr, tr_st);
    em_bcast_coalesce(&p);
    ck_assert_int_eq(p.ndim, 3);
    for (int64_t start = 0; start < 24; start += 5) {
        int64_t idx[EM_MAX_DIMS], off[EM_BCAST_MAX_IN];
        em_bcast_locate(&p, start, idx, off);
        for (int64_t i = start; i < 24; i++) {
            int64_t d0 = i / 12, d1 = i / 4 % 3, d2 = i % 4;
            ck_assert_int_eq(em_bcast_offset(&p, 0, i), d1);
            ck_assert_int_eq(em_bcast_offset(&p, 1, i), d0 * 1 + d1 * 8 + d2 * 2);
            ck_assert_int_eq(off[0], d1);
            ck_assert_int_eq(off[1], d0 * 1 + d1 * 8 + d2 * 2);
            em_bcast_advance(&p, 1, idx, off);
        }
    }
    /* Contiguous same-shape operands coalesce into one flat row; a scalar
     * operand keeps stride 0; a rank-0 output is one element. */
    const int64_t c_st[3] = {12, 4, 1};
    em_bcast_init(&p, 3, out, 2);
    em_bcast_input(&p, 0, 3, out, c_st);
    em_bcast_input(&p, 1, 0, NULL, NULL);
    em_bcast_coalesce(&p);
    ck_assert_int_eq(p.ndim, 1);
    ck_assert_int_eq(p.shape[0], 24);
    ck_assert_int_eq(p.strides[0][0], 1);
    ck_assert_int_eq(p.strides[1][0], 0);
    em_bcast_init(&p, 0, NULL, 1);
    em_bcast_input(&p, 0, 0, NULL, NULL);
    em_bcast_coalesce(&p);
    ck_assert_int_eq(p.ndim, 1);
    ck_assert_int_eq(p.shape[0], 1);
    ck_assert_int_eq(em_bcast_offset(&p, 0, 0), 0);
}
END_TEST

/* ---- errors and NULL inputs ---- */

START_TEST(test_errors_name_op_shapes_and_dtypes) {
    ck_assert_error(em_add(mk(EM_F32, EM_SHAPE(2, 1), V(1, 2)), VEC(EM_F64, 1)),
                    "add: dtypes differ: float32 [2,1] vs float64 [1]");
    ck_assert_error(em_maximum(VEC(EM_I32, 1), VEC(EM_I64, 1)), "maximum: dtypes differ: int32 [1] vs int64 [1]");
    ck_assert_error(em_div(VEC(EM_U8, 1, 2), VEC(EM_U8, 1, 2, 3)),
                    "div: shapes cannot be broadcast together: [2] vs [3]");
    /* A failed call leaves no tensor behind. */
    int64_t live = em_live_tensors();
    ck_assert_error(em_sub(VEC(EM_F32, 1), VEC(EM_I32, 1)), "sub");
    ck_assert_int_eq(em_live_tensors(), live + 2);
}
END_TEST

START_TEST(test_null_inputs_propagate) {
    em_tensor *x = VEC(EM_F32, 1, 2);
    ck_assert_error(em_add(NULL, x), "add: an input is NULL");
    ck_assert_error(em_exp(NULL), "exp: an input is NULL");
    ck_assert_error(em_where(NULL, x, x), "where");
    ck_assert_error(em_cast(NULL, EM_F64), "cast");
    ck_assert_error(em_add_scalar(NULL, 1), "add_scalar");
    ck_assert_error(em_mul_scalar(NULL, 1), "mul_scalar");
    ck_assert_error(em_clip_by_value(NULL, 0, 1), "clip");
    ck_assert_error(em_leaky_relu(NULL, 0.1), "leaky_relu");
    /* The first error wins: a whole expression is checked once at the end. */
    em_tensor *y = em_mul(em_exp(em_add(x, VEC(EM_F64, 1, 2))), x);
    ck_assert_error(y, "add: dtypes differ: float32 [2] vs float64 [2]");
}
END_TEST

/* ---- threads: fixed chunking gives identical bits for 1 and 2 threads ---- */

static em_tensor *big_f32(int64_t rows, int64_t cols, uint64_t seed) {
    return em_cast(em_test_uniform(EM_SHAPE(rows, cols), -3, 3, seed), EM_F32);
}

static void run_big(em_tensor **r, em_tensor *a, em_tensor *b, em_tensor *bias) {
    r[0] = em_add(a, b);
    r[1] = em_mul(a, bias);
    r[2] = em_relu(a);
    r[3] = em_tanh(a);
    r[4] = em_where(em_greater(a, b), em_exp(a), b);
    r[5] = em_sub(em_transpose(a, EM_ALL_AXES), em_transpose(b, EM_ALL_AXES));
}

START_TEST(test_float32_exp_and_tanh_edges) {
    /* Ember's vectorized float32 exp and tanh at their edges */
    float x[8] = {-INFINITY, -200.0f, -0.0f, 1.0f, 88.0f, 100.0f, INFINITY, NAN};
    em_tensor *t = em_tensor_from(EM_F32, EM_SHAPE(8), x);
    ck_assert_tensor(em_exp(t), EM_F32, EM_SHAPE(8),
                     ((double[]){0, 0, 1, exp(1.0), exp(88.0), INFINITY, INFINITY, NAN}), 2e-7);
    ck_assert_tensor(em_tanh(t), EM_F32, EM_SHAPE(8), ((double[]){-1, -1, 0, tanh(1.0), 1, 1, 1, NAN}), 2e-7);
    ck_assert(signbit(((const float *)em_data(em_tanh(t)))[2])); /* tanh(-0) is -0 */
    ck_assert_float_eq(((const float *)em_data(em_exp(t)))[0], 0.0f);
}
END_TEST

/* The float32 ulp at v (the spacing of floats around v rounded to float32; 2^-149 among the denormals). */
static double float_ulp(double v) {
    int e;
    frexp(fabs(v), &e);
    return e - 24 < -149 ? 0x1p-149 : ldexp(1, e - 24);
}

static double sigmoid_f64(double x) { return x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x)); }

/* Ember's float32 exp, sigmoid and tanh against float64 libm over every 2053rd float32 bit pattern (2.1M
 * values: both signs, huge magnitudes, denormal inputs and outputs, both infinities and NaNs): the worst
 * error in float32 ulps of the float64 value stays within 1.0, 2.1 and 1.25 (this sample gave exp 0.965,
 * sigmoid 2.024 and tanh 1.192 with FMAs, 0.917, 2.032 and 1.192 without; the bounds leave room for a
 * compiler that fuses other multiply-adds), NaN in gives NaN out, and an overflowing exp Inf.
 * lib/fast_math.h states the figures over every float. */
START_TEST(test_float32_exp_sigmoid_tanh_ulps) {
    const int64_t n = ((int64_t)1 << 32) / 2053 + 1;
    float *x = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++) {
        uint32_t bits = (uint32_t)(i * 2053);
        memcpy(&x[i], &bits, sizeof bits);
    }
    em_tensor *t = em_tensor_from(EM_F32, EM_SHAPE(n), x);
    static const struct {
        const char *name;
        em_tensor *(*op)(em_tensor *);
        double (*want)(double);
        double max_ulps;
    } fns[] = {{"exp", em_exp, exp, 1.0}, {"sigmoid", em_sigmoid, sigmoid_f64, 2.1}, {"tanh", em_tanh, tanh, 1.25}};
    for (size_t k = 0; k < sizeof fns / sizeof fns[0]; k++) {
        const float *y = em_data(fns[k].op(t));
        double worst = 0;
        int64_t wrong = 0;
        for (int64_t i = 0; i < n; i++) {
            double want = fns[k].want(x[i]);
            if (isnan(x[i]) || fabs(want) > FLT_MAX) wrong += isnan(x[i]) ? !isnan(y[i]) : y[i] != INFINITY;
            else worst = fmax(worst, fabs(y[i] - want) / float_ulp(want));
        }
        ck_assert_msg(wrong == 0 && worst <= fns[k].max_ulps, "%s: %.3f ulp (at most %.2f), %" PRId64 " NaN/Inf wrong",
                      fns[k].name, worst, fns[k].max_ulps, wrong);
    }
    free(x);
}
END_TEST

/* fast_math.h's float32 log (log_softmax's log of a row's sum) against float64 libm over every 2053rd positive
 * normal float32 and the ends of the range: within 1 ulp; +Inf and NaN pass. */
START_TEST(test_float32_log_of_normals_ulps) {
    double worst = 0;
    for (uint32_t bits = 0x00800000u; bits < 0x7f800000u; bits += 2053) {
        float x;
        memcpy(&x, &bits, sizeof x);
        double want = log((double)x);
        worst = fmax(worst, fabs(em__logf_normal(x) - want) / float_ulp(want));
    }
    const float ends[] = {FLT_MIN, 1.0f, 0x1.fffffep-1f, 0x1.000002p0f, (float)M_SQRT1_2, (float)M_SQRT2, FLT_MAX};
    for (size_t i = 0; i < sizeof ends / sizeof ends[0]; i++) {
        double want = log((double)ends[i]);
        worst = fmax(worst, want == 0 ? fabs(em__logf_normal(ends[i])) / 0x1p-149 : fabs(em__logf_normal(ends[i]) - want) / float_ulp(want));
    }
    ck_assert_msg(worst <= 1.0, "log: %.3f ulp (at most 1)", worst);
    ck_assert_float_eq(em__logf_normal(INFINITY), INFINITY);
    ck_assert(isnan(em__logf_normal(NAN)));
}
END_TEST

START_TEST(test_results_identical_for_any_thread_count) {
    const int64_t R = 300, C = 700; /* 210000 elements: several chunks */
    em_tensor *a = big_f32(R, C, 1), *b = big_f32(R, C, 2), *bias = big_f32(1, C, 3);
    em_tensor *one[6], *two[6];
    em_set_num_threads(1);
    run_big(one, a, b, bias);
    em_set_num_threads(2);
    run_big(two, a, b, bias);
    em_set_num_threads(0);
    for (int k = 0; k < 6; k++) {
        ck_assert_ptr_nonnull(one[k]);
        ck_assert_ptr_nonnull(two[k]);
        ck_assert_int_eq(em_numel(one[k]), R * C);
        ck_assert_int_eq(memcmp(em_data(one[k]), em_data(two[k]), (size_t)(R * C) * sizeof(float)), 0);
    }
    /* And equal to a plain C loop, bit for bit. */
    const float *pa = em_data(a), *pb = em_data(b), *pbias = em_data(bias);
    const float *add = em_data(one[0]), *mul = em_data(one[1]), *relu = em_data(one[2]), *th = em_data(one[3]);
    const float *sub_t = em_data(one[5]);
    int64_t wrong = 0;
    /* tanh is Ember's own vectorized float32 tanh: within 2 ulp of libm's */
    for (int64_t i = 0; i < R * C; i++)
        wrong += add[i] != pa[i] + pb[i] || mul[i] != pa[i] * pbias[i % C] || relu[i] != (pa[i] < 0 ? 0 : pa[i]) ||
                 fabsf(th[i] - tanhf(pa[i])) > 2 * nextafterf(fabsf(tanhf(pa[i])), INFINITY) - 2 * fabsf(tanhf(pa[i]));
    for (int64_t j = 0; j < C; j++)
        for (int64_t i = 0; i < R; i++) wrong += sub_t[j * R + i] != pa[i * C + j] - pb[i * C + j];
    ck_assert_int_eq(wrong, 0);
}
END_TEST

/* ---- gradient conventions ---- */

START_TEST(test_gradient_conventions) {
    em_tensor *a = VEC(EM_F64, 1, 2, 3), *b = VEC(EM_F64, 1, 5, 0);
    em_tensor *g[2];
    /* maximum / minimum: ties go to a. */
    em_tape *tape = em_tape_begin(true);
    em_tensor *mx = em_maximum(a, b), *mn = em_minimum(a, b);
    ck_assert_int_eq(em_gradients(tape, mx, 2, (em_tensor *[]){a, b}, g), 0);
    ck_assert_tensor(g[0], EM_F64, EM_SHAPE(3), V(1, 0, 1), 0);
    ck_assert_tensor(g[1], EM_F64, EM_SHAPE(3), V(0, 1, 0), 0);
    ck_assert_int_eq(em_gradients(tape, mn, 2, (em_tensor *[]){a, b}, g), 0);
    ck_assert_tensor(g[0], EM_F64, EM_SHAPE(3), V(1, 1, 0), 0);
    ck_assert_tensor(g[1], EM_F64, EM_SHAPE(3), V(0, 0, 1), 0);
    em_tape_release(tape);

    /* relu at 0 has gradient 0; clip passes the gradient on its closed interval. */
    em_tensor *x = VEC(EM_F64, -1, 0, 0.5, 1, 2);
    tape = em_tape_begin(true);
    em_tensor *r = em_relu(x), *c = em_clip_by_value(x, 0, 1), *s = em_sign(x);
    ck_assert_int_eq(em_gradients(tape, r, 1, &x, g), 0);
    ck_assert_tensor(g[0], EM_F64, EM_SHAPE(5), V(0, 0, 1, 1, 1), 0);
    ck_assert_int_eq(em_gradients(tape, c, 1, &x, g), 0);
    ck_assert_tensor(g[0], EM_F64, EM_SHAPE(5), V(0, 1, 1, 1, 0), 0);
    ck_assert_int_eq(em_gradients(tape, s, 1, &x, g), 0);
    ck_assert_tensor(g[0], EM_F64, EM_SHAPE(5), V(0, 0, 0, 0, 0), 0);
    em_tape_release(tape);

    /* pow's exponent gradient is 0 where the base is not positive. */
    em_tensor *base = VEC(EM_F64, -2, 0, 2), *ex = VEC(EM_F64, 2, 2, 2);
    tape = em_tape_begin(false);
    ck_assert_int_eq(em_gradients(tape, em_pow(base, ex), 2, (em_tensor *[]){base, ex}, g), 0);
    ck_assert_tensor(g[0], EM_F64, EM_SHAPE(3), V(-4, 0, 4), 1e-15);
    ck_assert_tensor(g[1], EM_F64, EM_SHAPE(3), V(0, 0, 4 * 0.69314718055994529), 1e-15);
    em_tape_release(tape);

    /* float32 -> float64 cast sends a float32 gradient back. */
    em_tensor *f = VEC(EM_F32, 1, 2);
    tape = em_tape_begin(false);
    ck_assert_int_eq(em_gradients(tape, em_mul_scalar(em_cast(f, EM_F64), 3), 1, &f, g), 0);
    ck_assert_tensor(g[0], EM_F32, EM_SHAPE(2), V(3, 3), 0);
    em_tape_release(tape);

    /* A cast through an integer dtype cuts the path: the gradient is zero. */
    tape = em_tape_begin(false);
    em_tensor *y = em_add(em_cast(em_cast(f, EM_I32), EM_F32), f);
    ck_assert_int_eq(em_gradients(tape, y, 1, &f, g), 0);
    ck_assert_tensor(g[0], EM_F32, EM_SHAPE(2), V(1, 1), 0);
    em_tape_release(tape);

    /* where: broadcast values get summed gradients; cond gets none. */
    em_tensor *cond = mk(EM_BOOL, EM_SHAPE(2, 1), V(1, 0)), *wa = VEC(EM_F64, 1, 2, 3),
              *wb = mk(EM_F64, EM_SHAPE0, V(0));
    tape = em_tape_begin(false);
    ck_assert_int_eq(em_gradients(tape, em_where(cond, wa, wb), 2, (em_tensor *[]){wa, wb}, g), 0);
    ck_assert_tensor(g[0], EM_F64, EM_SHAPE(3), V(1, 1, 1), 0);
    ck_assert_tensor(g[1], EM_F64, EM_SHAPE0, V(3), 0);
    em_tape_release(tape);
}
END_TEST

/* ---- bfloat16 and float16 ---- */

/* float16 and bfloat16 runs through vector instructions (lib/ops/narrow.h: AVX-512F or F16C), where the CPU
 * has them, against the software rule of lib/dtype_convert.h: every one of the 65,536 patterns widened, and
 * float32 values narrowed: a sweep of 2^20 patterns across the whole range, and for every float16 value
 * the tie halfway to the next one and the float32 value above it (subnormals, overflow to Inf and NaNs
 * included), for bfloat16 the same with its ties. Equal bit for bit, except that the hardware quiets a
 * float16 signalling NaN when it widens it. */
static void check_hardware_rule(em_dtype d) {
    if (!em__narrow_hardware(d)) return; /* the software rule is all there is */
    const bool bf = d == EM_BF16;
    enum { N = 65536 };
    static uint16_t h[N], hw16[N], sw16[N];
    static float hw[N], sw[N], f[N];
    for (int i = 0; i < N; i++) h[i] = (uint16_t)i;
    em__narrow_widen(d, h, 1, hw, N);
    em__narrow_widen_soft(d, h, 1, sw, N);
    /* one assertion per sweep (Check records every assertion it passes) */
    int bad = -1;
    uint32_t a = 0, b = 0;
    for (int i = 0; i < N && bad < 0; i++) {
        memcpy(&a, &hw[i], 4);
        memcpy(&b, &sw[i], 4);
        bool signalling = !bf && (i & 0x7c00) == 0x7c00 && (i & 0x3ff) && !(i & 0x200);
        if (a != (signalling ? b | 0x00400000u : b)) bad = i;
    }
    ck_assert_msg(bad < 0, "%s %#06x widens to %#010x, the rule's %#010x", em_dtype_name(d), bad, a, b);
    for (int pass = 0; pass < 18; pass++) {
        for (int i = 0; i < N; i++) {
            uint32_t u;
            if (pass < 16) u = (uint32_t)(pass * N + i) * 4099u; /* 2^20 patterns spread over all 2^32 */
            else {
                /* the tie between the narrow values i and i + 1 (in magnitude), then a float32 ulp above it */
                uint16_t m = (uint16_t)(i & 0x7fff);
                float lo = bf ? em_bf16_to_f32(m) : em_f16_to_f32(m);
                float hi = bf ? em_bf16_to_f32((uint16_t)(m + 1)) : em_f16_to_f32((uint16_t)(m + 1));
                float mid = !bf && m >= 0x7bff ? 65520.0f : bf && m >= 0x7f7f ? lo : lo + (hi - lo) / 2;
                memcpy(&u, &mid, 4);
                u = (u + (uint32_t)(pass - 16)) | (uint32_t)(i & 0x8000) << 16;
            }
            memcpy(&f[i], &u, 4);
        }
        em__narrow_round(d, f, hw16, 1, N);
        em__narrow_round_soft(d, f, sw16, 1, N);
        int at = 0;
        while (at < N && hw16[at] == sw16[at]) at++;
        if (at < N)
            ck_abort_msg("float32 %a rounds to %s %#06x, the rule's %#06x", (double)f[at], em_dtype_name(d), hw16[at],
                         sw16[at]);
    }
}
START_TEST(test_narrow_hardware_conversions_match_the_software_rule) {
    check_hardware_rule(EM_F16);
    check_hardware_rule(EM_BF16);
}
END_TEST

/* A narrow op is its float32 op, rounded once: bit for bit on runs longer than a tile, on strided views and
 * with broadcast scalars and rows. */
START_TEST(test_narrow_ops_are_float32_ops_rounded_once) {
    const em_dtype narrow[] = {EM_BF16, EM_F16};
    for (int k = 0; k < 2; k++) {
        em_dtype d = narrow[k];
        em_tensor *x = em_cast(em_random_uniform(EM_F32, EM_SHAPE(3, 700), -4, 4), d);
        em_tensor *y = em_cast(em_random_uniform(EM_F32, EM_SHAPE(700, 3), -4, 4), d);
        em_tensor *row = em_cast(em_random_uniform(EM_F32, EM_SHAPE(700), -4, 4), d), *s = em_scalar(d, 0.7);
        em_tensor *yt = em_transpose(y, EM_ALL_AXES); /* [3,700], strided */
        em_tensor *got[] = {em_mul(x, s), em_add(x, yt), em_gelu_tanh(yt), em_where(em_less(x, row), row, s),
                            em_cast(em_greater(x, yt), EM_F32)};
        em_tensor *w = em_cast(x, EM_F32), *wy = em_transpose(em_cast(y, EM_F32), EM_ALL_AXES);
        em_tensor *wrow = em_cast(row, EM_F32), *ws = em_cast(s, EM_F32);
        em_tensor *want[] = {em_cast(em_mul(w, ws), d), em_cast(em_add(w, wy), d), em_cast(em_gelu_tanh(wy), d),
                             em_cast(em_where(em_less(w, wrow), wrow, ws), d), em_cast(em_greater(w, wy), EM_F32)};
        for (int i = 0; i < 5; i++) {
            ck_assert_ptr_nonnull(got[i]);
            ck_assert_int_eq(em_tensor_dtype(got[i]), em_tensor_dtype(want[i]));
            ck_assert_msg(!memcmp(em_data(got[i]), em_data(want[i]),
                                  (size_t)em_numel(got[i]) * em_dtype_size(em_tensor_dtype(got[i]))),
                          "%s op %d differs from its float32 op rounded", em_dtype_name(d), i);
        }
    }
}
END_TEST

/* A traced chain of bfloat16 elementwise ops fuses (its kernels take bfloat16 themselves) and gives eager's
 * bits. */
START_TEST(test_bf16_chain_fuses_in_a_graph) {
    em_tensor *x = em_placeholder(EM_BF16, EM_SHAPE(-1), "x");
    em_trace_begin();
    em_tensor *y = x;
    for (int i = 0; i < 6; i++) y = em_tanh(em_mul_scalar(y, 1.5)); /* 12 elementwise nodes */
    em_graph *g = em_trace_end();
    em_tensor *feed = em_cast(em_random_uniform(EM_F32, EM_SHAPE(50000), -2, 2), EM_BF16), *out;
    ck_assert_int_eq(em_graph_run(g, 1, (em_feed[]){{x, feed}}, 1, &y, &out), 0);
    ck_assert_int_ge(em_graph_get_stats(g).fused, 8);
    ck_assert_int_eq(em_tensor_dtype(out), EM_BF16);
    em_tensor *e = feed;
    for (int i = 0; i < 6; i++) e = em_tanh(em_mul_scalar(e, 1.5));
    ck_assert(!memcmp(em_data(out), em_data(e), 50000 * 2));
    em_graph_release(g);
}
END_TEST

int main(void) {
    Suite *s = suite_create("elementwise");
    TCase *tc = tcase_create("elementwise");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_arithmetic_every_numeric_dtype);
    tcase_add_test(tc, test_integer_division_truncates_and_wraps);
    tcase_add_test(tc, test_pow_and_nan_propagation);
    tcase_add_test(tc, test_unary_numeric_every_dtype);
    tcase_add_test(tc, test_float_math);
    tcase_add_test(tc, test_activations);
    tcase_add_test(tc, test_float_only_ops_reject_integers);
    tcase_add_test(tc, test_comparisons_every_dtype);
    tcase_add_test(tc, test_logical_ops);
    tcase_add_test(tc, test_where_broadcasts_every_dtype);
    tcase_add_test(tc, test_clip_by_value);
    tcase_add_test(tc, test_cast_between_every_dtype);
    tcase_add_test(tc, test_broadcasting);
    tcase_add_test(tc, test_strided_views_need_no_copy);
    tcase_add_test(tc, test_broadcast_plan);
    tcase_add_test(tc, test_errors_name_op_shapes_and_dtypes);
    tcase_add_test(tc, test_null_inputs_propagate);
    tcase_add_test(tc, test_float32_exp_and_tanh_edges);
    tcase_add_test(tc, test_float32_exp_sigmoid_tanh_ulps);
    tcase_add_test(tc, test_float32_log_of_normals_ulps);
    tcase_add_test(tc, test_results_identical_for_any_thread_count);
    tcase_add_test(tc, test_gradient_conventions);
    tcase_add_test(tc, test_narrow_hardware_conversions_match_the_software_rule);
    tcase_add_test(tc, test_narrow_ops_are_float32_ops_rounded_once);
    tcase_add_test(tc, test_bf16_chain_fuses_in_a_graph);
    suite_add_tcase(s, tc);
    return em_test_run(s);
}
