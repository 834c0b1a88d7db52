/* A double to each dtype as Ember converts everywhere (em_cast, fills,
 * writes of scalars, clip's bounds), on the host and the GPU alike. */
#ifndef EMBER_DTYPE_CONVERT_H
#define EMBER_DTYPE_CONVERT_H

#include <stdint.h>

#include "em_hd.h"
#include "ember/core.h"

/* Dtype lists: X(EM_dtype, suffix, C type, wrapping type, class, min, max, ...)
 * for each member. Classes: FLT float, SGN signed integer, UNS unsigned
 * integer, BOL bool. Integer arithmetic wraps in the unsigned type, at least
 * as wide as int for the 16-bit types (uint16_t * uint16_t would be an int
 * product, which overflows). */
#define EM_FOR_F32(X, ...) X(EM_F32, f32, float, float, FLT, 0, 0, __VA_ARGS__)
#define EM_FOR_F64(X, ...) X(EM_F64, f64, double, double, FLT, 0, 0, __VA_ARGS__)
#define EM_FOR_I32(X, ...) X(EM_I32, i32, int32_t, uint32_t, SGN, INT32_MIN, INT32_MAX, __VA_ARGS__)
#define EM_FOR_I64(X, ...) X(EM_I64, i64, int64_t, uint64_t, SGN, INT64_MIN, INT64_MAX, __VA_ARGS__)
#define EM_FOR_U8(X, ...) X(EM_U8, u8, uint8_t, uint8_t, UNS, 0, UINT8_MAX, __VA_ARGS__)
#define EM_FOR_I8(X, ...) X(EM_I8, i8, int8_t, uint8_t, SGN, INT8_MIN, INT8_MAX, __VA_ARGS__)
#define EM_FOR_I16(X, ...) X(EM_I16, i16, int16_t, uint32_t, SGN, INT16_MIN, INT16_MAX, __VA_ARGS__)
#define EM_FOR_U16(X, ...) X(EM_U16, u16, uint16_t, uint32_t, UNS, 0, UINT16_MAX, __VA_ARGS__)
#define EM_FOR_BOOL(X, ...) X(EM_BOOL, b8, uint8_t, uint8_t, BOL, 0, 1, __VA_ARGS__)
#define EM_FOR_FLOATS(X, ...) EM_FOR_F32(X, __VA_ARGS__) EM_FOR_F64(X, __VA_ARGS__)
/* The dtypes of index arguments (gather's and one_hot's indices, gather_nd's
 * tuples, sparse labels): int32 and int64, and int16 and uint16 so that token
 * ids stored in 2 bytes index as they are. em_index_at reads one. */
#define EM_FOR_INDEX(X, ...) \
    EM_FOR_I32(X, __VA_ARGS__) EM_FOR_I64(X, __VA_ARGS__) EM_FOR_I16(X, __VA_ARGS__) EM_FOR_U16(X, __VA_ARGS__)
#define EM_FOR_INTEGERS(X, ...) EM_FOR_INDEX(X, __VA_ARGS__) EM_FOR_U8(X, __VA_ARGS__) EM_FOR_I8(X, __VA_ARGS__)
#define EM_FOR_NUMERIC(X, ...) EM_FOR_FLOATS(X, __VA_ARGS__) EM_FOR_INTEGERS(X, __VA_ARGS__)
#define EM_FOR_ALL(X, ...) EM_FOR_NUMERIC(X, __VA_ARGS__) EM_FOR_BOOL(X, __VA_ARGS__)

/* The narrow floats, bfloat16 and float16: stored as their 16 bits, computed
 * in float32. They are not members of the lists above: the kernels written
 * over those lists compute in their element type. The dispatcher runs an op
 * on narrow inputs wherever it accepts float32 (lib/op.c), and the kernels
 * that matter for memory traffic read and write them natively. */
#define EM_FOR_BF16(X, ...) X(EM_BF16, bf16, uint16_t, uint16_t, NRW, 0, 0, __VA_ARGS__)
#define EM_FOR_F16(X, ...) X(EM_F16, f16, uint16_t, uint16_t, NRW, 0, 0, __VA_ARGS__)
#define EM_FOR_NARROW(X, ...) EM_FOR_BF16(X, __VA_ARGS__) EM_FOR_F16(X, __VA_ARGS__)
/* Every dtype: what em_cast converts between. */
#define EM_FOR_EVERY(X, ...) EM_FOR_ALL(X, __VA_ARGS__) EM_FOR_NARROW(X, __VA_ARGS__)

#define EM_CONVERT_IS_FLOAT_FLT 1
#define EM_CONVERT_IS_FLOAT_SGN 0
#define EM_CONVERT_IS_FLOAT_UNS 0
#define EM_CONVERT_IS_FLOAT_BOL 0
#define EM_CONVERT_IS_FLOAT_NRW 1

/* em_convert_<suffix>(v): floats round, integers (every width, signed or
 * not) truncate toward zero and saturate at their range (a plain C
 * conversion of an out-of-range double is undefined behaviour), NaN is 0,
 * bool is v != 0. */
#define EM_CONVERT(E, sfx, T, U, C, MN, MX, ...)                                                                  \
    EM_HD static inline T em_convert_##sfx(double v) {                                                             \
        if (EM_CONVERT_IS_FLOAT_##C) return (T)v;                                                                           \
        if (E == EM_BOOL) return (T)(v != 0);                                                                          \
        return v != v ? (T)0 : v <= (double)(MN) ? (T)(MN) : v >= (double)(MX) ? (T)(MX) : (T)v;                     \
    }
EM_FOR_ALL(EM_CONVERT, )

/* Element j of an index argument p of dtype `dtype` (one of EM_FOR_INDEX's). */
EM_HD static inline int64_t em_index_at(const void *p, int dtype, int64_t j) {
    switch (dtype) {
    case EM_I32: return ((const int32_t *)p)[j];
    case EM_I16: return ((const int16_t *)p)[j];
    case EM_U16: return ((const uint16_t *)p)[j];
    default: return ((const int64_t *)p)[j];
    }
}
EM_HD static inline bool em_is_index_dtype(int dtype) {
    return dtype == EM_I32 || dtype == EM_I64 || dtype == EM_I16 || dtype == EM_U16;
}
#define EM_INDEX_DTYPES "int32, int64, int16 or uint16"

/* ---- bfloat16 and float16 ----
 * Widening is exact for every bit pattern (NaNs stay NaN, payload kept).
 * Narrowing rounds to nearest even, keeps Inf and signed zero, quiets NaN
 * (keeping the sign and the payload's top bits), overflows to Inf and keeps
 * subnormals: no path flushes them. */
EM_HD static inline uint32_t em_f32_bits(float f) {
#ifdef __CUDA_ARCH__
    return __float_as_uint(f);
#else
    union { float f; uint32_t u; } v = {.f = f};
    return v.u;
#endif
}
EM_HD static inline float em_f32_from_bits(uint32_t u) {
#ifdef __CUDA_ARCH__
    return __uint_as_float(u);
#else
    union { uint32_t u; float f; } v = {.u = u};
    return v.f;
#endif
}

EM_HD static inline float em_bf16_to_f32(uint16_t h) { return em_f32_from_bits((uint32_t)h << 16); }

EM_HD static inline uint16_t em_bf16_from_f32(float f) {
    uint32_t u = em_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u); /* NaN: quiet it */
    u += 0x7fffu + ((u >> 16) & 1u); /* to nearest even; a carry into the exponent is right, up to Inf */
    return (uint16_t)(u >> 16);
}

EM_HD static inline float em_f16_to_f32(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    if (exp == 0x1f) return em_f32_from_bits(sign | 0x7f800000u | (man << 13)); /* Inf, NaN with its payload */
    if (exp != 0) return em_f32_from_bits(sign | ((exp + 112u) << 23) | (man << 13));
    /* zero or subnormal: man * 2^-24, exact in float32 */
    const float m = (float)man * 5.9604644775390625e-8f;
    return sign ? -m : m;
}

EM_HD static inline uint16_t em_f16_from_f32(float f) {
    const uint32_t u = em_f32_bits(f), sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu)); /* NaN: quiet it */
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* at least 65520 rounds to Inf */
    if (a >= 0x38800000u) { /* normal in float16 (at least 2^-14) */
        const uint32_t r = a - 0x38000000u; /* rebias the exponent by 112 */
        return (uint16_t)(sign | ((r + 0xfffu + ((r >> 13) & 1u)) >> 13));
    }
    if (a < 0x33000000u) return (uint16_t)sign; /* below half the smallest subnormal, 2^-25: zero */
    /* subnormal: the 24-bit significand shifted right by 14 - (e - 112) + 13 bits, to nearest even */
    const uint32_t e = a >> 23, m = (a & 0x7fffffu) | 0x800000u, shift = 126u - e;
    const uint32_t half = 1u << (shift - 1), rest = m & ((1u << shift) - 1u);
    uint32_t q = m >> shift;
    if (rest > half || (rest == half && (q & 1u))) q++;
    return (uint16_t)(sign | q);
}

/* A double to the narrow type in one rounding: to float32 rounding to odd
 * (so that no tie is made up on the way), then to nearest even. */
EM_HD static inline float em_f32_round_to_odd(double v) {
    float f = (float)v;
    if ((double)f != v && v == v && !(em_f32_bits(f) & 1u) && (em_f32_bits(f) & 0x7fffffffu) < 0x7f800000u)
        f = em_f32_from_bits(em_f32_bits(f) + ((f < 0 ? -(double)f : f) < (v < 0 ? -v : v) ? 1u : (uint32_t)-1));
    return f;
}
EM_HD static inline uint16_t em_convert_bf16(double v) { return em_bf16_from_f32(em_f32_round_to_odd(v)); }
EM_HD static inline uint16_t em_convert_f16(double v) { return em_f16_from_f32(em_f32_round_to_odd(v)); }

#endif
