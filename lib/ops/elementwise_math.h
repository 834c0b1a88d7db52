/* The elementwise formulas, each written once and compiled into both the C
 * kernels (lib/ops/elementwise.c) and the CUDA ones (gpu/elementwise.cu).
 *
 * EM_EW_1(name, SET, OUT, body), EM_EW_2 and EM_EW_3 stamp the function
 * em_ew_<name>_<suffix> for each dtype of the set (lib/op.h's EM_FOR_<SET>):
 *   unary   OUT em_ew_name_sfx(T x, const double *f)
 *   binary  OUT em_ew_name_sfx(T x, T y, const double *f)
 * OUT is SAME (T) or BOOL (uint8_t), f the call's float attributes. The body
 * sees T, U (the unsigned type integer arithmetic wraps in), IS_FLOAT,
 * IS_SIGNED and zero (T's 0); em_convert_<suffix>(v) (dtype_convert.h)
 * converts a double as casts do.
 *
 * Semantics: integer arithmetic wraps modulo 2^bits; integer division
 * truncates toward zero and x/0 is 0; NaN propagates through maximum,
 * minimum, clip and relu; casts to integers saturate and take NaN to 0. */
#ifndef EMBER_ELEMENTWISE_MATH_H
#define EMBER_ELEMENTWISE_MATH_H

#include <stdbool.h>
#include <stdint.h>

#include "../dtype_convert.h"
#include "../fast_math.h"
#include "../op.h"

#define EM_EW_SQRT1_2 0.70710678118654752440   /* 1/sqrt(2) */
#define EM_EW_2_SQRTPI 1.12837916709551257390  /* 2/sqrt(pi) */
#define EM_EW_1_SQRT2PI 0.39894228040143267794 /* 1/sqrt(2 pi) */

#define EM_EW_OUT_SAME(T) T
#define EM_EW_OUT_BOOL(T) uint8_t
#define EM_EW_IS_FLOAT_FLT 1
#define EM_EW_IS_FLOAT_SGN 0
#define EM_EW_IS_FLOAT_UNS 0
#define EM_EW_IS_FLOAT_BOL 0
#define EM_EW_IS_FLOAT_NRW 1
#define EM_EW_IS_BOOL_FLT 0
#define EM_EW_IS_BOOL_SGN 0
#define EM_EW_IS_BOOL_UNS 0
#define EM_EW_IS_BOOL_BOL 1
#define EM_EW_IS_BOOL_NRW 0
#define EM_EW_IS_SIGNED_FLT 1
#define EM_EW_IS_SIGNED_SGN 1
#define EM_EW_IS_SIGNED_UNS 0
#define EM_EW_IS_SIGNED_BOL 0


/* What a stamped body sees. */
#define EM_EW_PRELUDE(sfx, T_, U_, C)                                                                                 \
    typedef T_ T EM_UNUSED;                                                                                            \
    typedef U_ U EM_UNUSED;                                                                                            \
    enum { IS_FLOAT = EM_EW_IS_FLOAT_##C, IS_SIGNED = EM_EW_IS_SIGNED_##C };                                           \
    const T zero EM_UNUSED = 0; /* compared with, where a literal 0 would warn for unsigned types */                \
    (void)f;

#define EM_EW_STAMP1(E, sfx, T_, U_, C, MN, MX, name, OUT, ...)                                                       \
    EM_HD static inline EM_EW_OUT_##OUT(T_) em_ew_##name##_##sfx(T_ x, const double *f) {                             \
        EM_EW_PRELUDE(sfx, T_, U_, C)                                                                                  \
        __VA_ARGS__                                                                                                    \
    }
#define EM_EW_STAMP2(E, sfx, T_, U_, C, MN, MX, name, OUT, ...)                                                       \
    EM_HD static inline EM_EW_OUT_##OUT(T_) em_ew_##name##_##sfx(T_ x, T_ y, const double *f) {                       \
        EM_EW_PRELUDE(sfx, T_, U_, C)                                                                                  \
        __VA_ARGS__                                                                                                    \
    }
#define EM_EW_1(name, SET, OUT, ...) EM_FOR_##SET(EM_EW_STAMP1, name, OUT, __VA_ARGS__)
#define EM_EW_2(name, SET, OUT, ...) EM_FOR_##SET(EM_EW_STAMP2, name, OUT, __VA_ARGS__)

/* ---- arithmetic ---- */
EM_EW_2(add, NUMERIC, SAME, return (T)((U)x + (U)y);)
EM_EW_2(sub, NUMERIC, SAME, return (T)((U)x - (U)y);)
EM_EW_2(mul, NUMERIC, SAME, return (T)((U)x * (U)y);)
EM_EW_2(div, NUMERIC, SAME, {
    if (IS_FLOAT) return x / y;
    if (y == zero) return zero;
    if (IS_SIGNED && y == (T)-1) return (T)(0 - (U)x); /* no overflow trap at the type's minimum */
    return (T)(x / y);
})
EM_EW_2(pow, FLOATS, SAME, return em_math_pow(x, y);)
EM_EW_2(maximum, NUMERIC, SAME, return x >= y || em_math_isnan(x) ? x : y;)
EM_EW_2(minimum, NUMERIC, SAME, return x <= y || em_math_isnan(x) ? x : y;)
EM_EW_1(neg, NUMERIC, SAME, return IS_FLOAT ? -x : (T)(0 - (U)x);)
/* Not one ?: : in C, fabs's double would be the whole expression's type and
 * round int64 values. */
EM_EW_1(abs, NUMERIC, SAME, {
    if (IS_FLOAT) return em_math_fabs(x);
    return x < zero ? (T)(0 - (U)x) : x;
})
EM_EW_1(square, NUMERIC, SAME, return (T)((U)x * (U)x);)
EM_EW_1(sign, NUMERIC, SAME, return em_math_isnan(x) ? x : (T)((x > zero) - (x < zero));)

/* ---- math functions ---- */
EM_EW_1(sqrt, FLOATS, SAME, return em_math_sqrt(x);)
EM_EW_1(rsqrt, FLOATS, SAME, return (T)1 / em_math_sqrt(x);)
EM_EW_1(exp, FLOATS, SAME, return em_math_exp(x);)
EM_EW_1(log, FLOATS, SAME, return em_math_log(x);)
EM_EW_1(log1p, FLOATS, SAME, return em_math_log1p(x);)
EM_EW_1(erf, FLOATS, SAME, return em_math_erf(x);)
EM_EW_1(sin, FLOATS, SAME, return em_math_sin(x);)
EM_EW_1(cos, FLOATS, SAME, return em_math_cos(x);)
EM_EW_1(tan, FLOATS, SAME, return em_math_tan(x);)
EM_EW_1(floor, FLOATS, SAME, return em_math_floor(x);)
EM_EW_1(ceil, FLOATS, SAME, return em_math_ceil(x);)
/* rint rounds in the default mode, to nearest with ties to even (TF's round, np.round). */
EM_EW_1(round, FLOATS, SAME, return em_math_rint(x);)
/* TF's floormod: x - floor(x / y) y, the sign of y. Floats from fmod as TF
 * computes it (a zero remainder keeps fmod's sign, x's); integers: x mod 0 is 0
 * as x / 0 is, and MIN mod -1 is 0 without the trap. */
#define EM_EW_FLOORMOD_FLT(T)                                                                                          \
    T r = em_math_fmod(x, y);                                                                                          \
    return r != 0 && ((r < 0) != (y < 0)) ? r + y : r;
#define EM_EW_FLOORMOD_SGN(T)                                                                                          \
    if (y == 0 || y == -1) return 0;                                                                                   \
    T r = (T)(x % y);                                                                                                  \
    return r != 0 && ((r < 0) != (y < 0)) ? (T)(r + y) : r; /* opposite signs: no overflow */
#define EM_EW_FLOORMOD_UNS(T) return y == 0 ? (T)0 : (T)(x % y);
#define EM_EW_FLOORMOD(E, sfx, T_, U_, C, MN, MX, ...)                                                                 \
    EM_EW_STAMP2(E, sfx, T_, U_, C, MN, MX, floormod, SAME, EM_EW_FLOORMOD_##C(T_))
EM_FOR_NUMERIC(EM_EW_FLOORMOD, )
EM_EW_1(reciprocal, FLOATS, SAME, return (T)1 / x;)

/* ---- activations and their fused gradients ---- */
EM_EW_1(relu, FLOATS, SAME, return x < 0 ? (T)0 : x;)
EM_EW_2(relu_grad, FLOATS, SAME, return x > 0 ? y : (T)0;)
EM_EW_1(leaky_relu, FLOATS, SAME, return x < 0 ? (T)f[0] * x : x;)
EM_EW_1(elu, FLOATS, SAME, return x < 0 ? em_math_expm1(x) : x;)
EM_EW_1(sigmoid, FLOATS, SAME, return em_math_sigmoid(x);)
EM_EW_2(sigmoid_grad, FLOATS, SAME, return y * x * ((T)1 - x);)
EM_EW_1(tanh, FLOATS, SAME, return em_math_tanh(x);)
EM_EW_2(tanh_grad, FLOATS, SAME, return y * ((T)1 - x * x);)
EM_EW_1(softplus, FLOATS, SAME, return (x > 0 ? x : (T)0) + em_math_log1p(em_math_exp(-em_math_fabs(x)));)
/* TF's fixed slope and offset; NaN passes through. */
EM_EW_1(hard_sigmoid, FLOATS, SAME, {
    T r = (T)0.2 * x + (T)0.5;
    return r < 0 ? (T)0 : r > 1 ? (T)1 : r;
})
/* -softplus(-x): one exp of -|x|, no overflow for either sign. */
EM_EW_1(log_sigmoid, FLOATS, SAME, return (x < 0 ? x : (T)0) - em_math_log1p(em_math_exp(-em_math_fabs(x)));)
EM_EW_1(gelu, FLOATS, SAME, return (T)0.5 * x * ((T)1 + em_math_erf(x * (T)EM_EW_SQRT1_2));)
/* x sigmoid(x), through sigmoid's own formula */
#define EM_EW_SILU(E, sfx, T_, U_, C, MN, MX, ...) EM_EW_STAMP1(E, sfx, T_, U_, C, MN, MX, silu, SAME, return x * em_ew_sigmoid_##sfx(x, f);)
EM_FOR_FLOATS(EM_EW_SILU, )
/* GPT-2's GELU, 0.5 x (1 + tanh(u)) with u = sqrt(2/pi) (x + 0.044715 x^3),
 * is x sigmoid(v) with v = 2u, through sigmoid's own formula: no
 * cancellation in 1 + tanh(u) for negative x. Its slope is
 * sigmoid(v) + x sigmoid(v) sigmoid(-v) v', v' = 2 sqrt(2/pi) (1 + 3 0.044715 x^2);
 * where sigmoid(v) sigmoid(-v) is 0 the second term is 0, not Inf * 0. */
#define EM_EW_GELU_TANH_K 0.79788456080286535588 /* sqrt(2/pi) */
#define EM_EW_GELU_TANH_A 0.044715
#define EM_EW_GELU_TANH_V(T, x) ((T)(2 * EM_EW_GELU_TANH_K) * ((x) + (T)EM_EW_GELU_TANH_A * (x) * (x) * (x)))
#define EM_EW_GELU_TANH(E, sfx, T_, U_, C, MN, MX, ...)                                                               \
    EM_EW_STAMP1(E, sfx, T_, U_, C, MN, MX, gelu_tanh, SAME, return x * em_ew_sigmoid_##sfx(EM_EW_GELU_TANH_V(T, x), f);) \
    EM_EW_STAMP2(E, sfx, T_, U_, C, MN, MX, gelu_tanh_grad, SAME, {                                                   \
        T v = EM_EW_GELU_TANH_V(T, x), s = em_ew_sigmoid_##sfx(v, f), q = s * em_ew_sigmoid_##sfx(-v, f);            \
        T dv = (T)(2 * EM_EW_GELU_TANH_K) * ((T)1 + (T)(3 * EM_EW_GELU_TANH_A) * x * x);                              \
        return y * (s + (q == 0 ? (T)0 : x * q * dv));                                                                 \
    })
EM_FOR_FLOATS(EM_EW_GELU_TANH, )

/* min(max(x, lo), hi) for f[0] = lo, f[1] = hi; NaN passes through. Integer
 * bounds round inward and saturate to the dtype's range. */
#define EM_EW_CLIP(E, sfx, T_, U_, C, MN, MX, ...)                                                                    \
    EM_EW_STAMP1(E, sfx, T_, U_, C, MN, MX, clip, SAME, {                                                             \
        T lo = IS_FLOAT ? (T)f[0] : em_convert_##sfx(ceil(f[0]));                                                  \
        T hi = IS_FLOAT ? (T)f[1] : em_convert_##sfx(floor(f[1]));                                                 \
        T r = x < lo ? lo : x;                                                                                         \
        return r > hi ? hi : r;                                                                                        \
    })
EM_FOR_NUMERIC(EM_EW_CLIP, )

/* cond (bool) picks a or b. */
#define EM_EW_WHERE(E, sfx, T, ...)                                                                                    \
    EM_HD static inline T em_ew_where_##sfx(uint8_t k, T a, T b) { return k ? a : b; }
EM_FOR_ALL(EM_EW_WHERE, )

/* ---- comparisons and logic ---- */
EM_EW_2(equal, ALL, BOOL, return x == y;)
EM_EW_2(not_equal, ALL, BOOL, return x != y;)
EM_EW_2(less, ALL, BOOL, return x < y;)
EM_EW_2(less_equal, ALL, BOOL, return x <= y;)
EM_EW_2(greater, ALL, BOOL, return x > y;)
EM_EW_2(greater_equal, ALL, BOOL, return x >= y;)
EM_EW_2(logical_and, BOOL, BOOL, return x && y;)
EM_EW_2(logical_or, BOOL, BOOL, return x || y;)
EM_EW_1(logical_not, BOOL, BOOL, return !x;)

/* ---- casts: em_ew_cast_<from>_<to>(x, f) for every pair ----
 * To and from bool through x != 0; float (bfloat16 and float16 too) to
 * integer truncates toward zero and saturates (NaN is 0); integer to
 * integer wraps modulo 2^bits of the target (int32 70000 is int16 4464); to bfloat16 and float16 in one rounding to
 * nearest even, from them exactly through float32. */
#define EM_EW_CAST(E, sfx, T, U, C, MN, MX, ssfx, S, SC)                                                              \
    EM_HD static inline T em_ew_cast_##ssfx##_##sfx(S x, const double *f) {                                           \
        (void)f;                                                                                                       \
        if (E == EM_BOOL || EM_EW_IS_BOOL_##SC) return (T)(x != 0);                                                    \
        if (EM_EW_IS_FLOAT_##C || !EM_EW_IS_FLOAT_##SC) return (T)x;                                                   \
        return em_convert_##sfx((double)x);                                                                        \
    }
EM_FOR_ALL(EM_EW_CAST, f32, float, FLT)
EM_FOR_ALL(EM_EW_CAST, f64, double, FLT)
EM_FOR_ALL(EM_EW_CAST, i32, int32_t, SGN)
EM_FOR_ALL(EM_EW_CAST, i64, int64_t, SGN)
EM_FOR_ALL(EM_EW_CAST, u8, uint8_t, UNS)
EM_FOR_ALL(EM_EW_CAST, i8, int8_t, SGN)
EM_FOR_ALL(EM_EW_CAST, i16, int16_t, SGN)
EM_FOR_ALL(EM_EW_CAST, u16, uint16_t, UNS)
EM_FOR_ALL(EM_EW_CAST, b8, uint8_t, BOL)
#define EM_EW_CAST_FROM_NARROW(E, sfx, T, U, C, MN, MX, ssfx)                                                         \
    EM_HD static inline T em_ew_cast_##ssfx##_##sfx(uint16_t x, const double *f) {                                    \
        return em_ew_cast_f32_##sfx(em_##ssfx##_to_f32(x), f);                                                         \
    }
EM_FOR_ALL(EM_EW_CAST_FROM_NARROW, bf16)
EM_FOR_ALL(EM_EW_CAST_FROM_NARROW, f16)
/* A float32 narrows directly; wider values and integers through one rounding from their double. */
#define EM_EW_CAST_TO_NARROW(E, sfx, T, U, C, MN, MX, ssfx, S, SC)                                                    \
    EM_HD static inline uint16_t em_ew_cast_##ssfx##_##sfx(S x, const double *f) {                                    \
        (void)f;                                                                                                       \
        if (EM_EW_IS_BOOL_##SC) return em_##sfx##_from_f32(x != 0 ? 1.0f : 0.0f);                                      \
        if (EM_EW_IS_FLOAT_##SC && sizeof(S) <= 4) return em_##sfx##_from_f32((float)x);                               \
        return em_convert_##sfx((double)x);                                                                            \
    }
EM_FOR_NARROW(EM_EW_CAST_TO_NARROW, f32, float, FLT)
EM_FOR_NARROW(EM_EW_CAST_TO_NARROW, f64, double, FLT)
EM_FOR_NARROW(EM_EW_CAST_TO_NARROW, i32, int32_t, SGN)
EM_FOR_NARROW(EM_EW_CAST_TO_NARROW, i64, int64_t, SGN)
EM_FOR_NARROW(EM_EW_CAST_TO_NARROW, u8, uint8_t, UNS)
EM_FOR_NARROW(EM_EW_CAST_TO_NARROW, i8, int8_t, SGN)
EM_FOR_NARROW(EM_EW_CAST_TO_NARROW, i16, int16_t, SGN)
EM_FOR_NARROW(EM_EW_CAST_TO_NARROW, u16, uint16_t, UNS)
EM_FOR_NARROW(EM_EW_CAST_TO_NARROW, b8, uint8_t, BOL)
#define EM_EW_CAST_NARROW_NARROW(E, sfx, T, U, C, MN, MX, ssfx)                                                       \
    EM_HD static inline uint16_t em_ew_cast_##ssfx##_##sfx(uint16_t x, const double *f) {                             \
        (void)f;                                                                                                       \
        return em_##sfx##_from_f32(em_##ssfx##_to_f32(x));                                                             \
    }
EM_FOR_NARROW(EM_EW_CAST_NARROW_NARROW, bf16)
EM_FOR_NARROW(EM_EW_CAST_NARROW_NARROW, f16)

#endif
