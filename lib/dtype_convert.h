/* A double to each dtype as Ember converts everywhere (em_cast, fills,
 * writes of scalars, clip's bounds), on the host and the GPU alike. */
#ifndef EMBER_DTYPE_CONVERT_H
#define EMBER_DTYPE_CONVERT_H

#include <stdint.h>

#include "em_hd.h"
#include "ember/core.h"

/* Dtype lists: X(EM_dtype, suffix, C type, wrapping type, class, min, max, ...)
 * for each member. Classes: FLT float, SGN signed integer, UNS unsigned
 * integer, BOL bool. Integer arithmetic wraps in the unsigned type. */
#define EM_FOR_F32(X, ...) X(EM_F32, f32, float, float, FLT, 0, 0, __VA_ARGS__)
#define EM_FOR_F64(X, ...) X(EM_F64, f64, double, double, FLT, 0, 0, __VA_ARGS__)
#define EM_FOR_I32(X, ...) X(EM_I32, i32, int32_t, uint32_t, SGN, INT32_MIN, INT32_MAX, __VA_ARGS__)
#define EM_FOR_I64(X, ...) X(EM_I64, i64, int64_t, uint64_t, SGN, INT64_MIN, INT64_MAX, __VA_ARGS__)
#define EM_FOR_U8(X, ...) X(EM_U8, u8, uint8_t, uint8_t, UNS, 0, UINT8_MAX, __VA_ARGS__)
#define EM_FOR_BOOL(X, ...) X(EM_BOOL, b8, uint8_t, uint8_t, BOL, 0, 1, __VA_ARGS__)
#define EM_FOR_FLOATS(X, ...) EM_FOR_F32(X, __VA_ARGS__) EM_FOR_F64(X, __VA_ARGS__)
#define EM_FOR_INDEX(X, ...) EM_FOR_I32(X, __VA_ARGS__) EM_FOR_I64(X, __VA_ARGS__)
#define EM_FOR_NUMERIC(X, ...) EM_FOR_FLOATS(X, __VA_ARGS__) EM_FOR_INDEX(X, __VA_ARGS__) EM_FOR_U8(X, __VA_ARGS__)
#define EM_FOR_ALL(X, ...) EM_FOR_NUMERIC(X, __VA_ARGS__) EM_FOR_BOOL(X, __VA_ARGS__)

#define EM_CONVERT_IS_FLOAT_FLT 1
#define EM_CONVERT_IS_FLOAT_SGN 0
#define EM_CONVERT_IS_FLOAT_UNS 0
#define EM_CONVERT_IS_FLOAT_BOL 0

/* em_convert_<suffix>(v): floats round, integers truncate toward zero and
 * saturate at their range (a plain C conversion of an out-of-range double
 * is undefined behaviour), NaN is 0, bool is v != 0. */
#define EM_CONVERT(E, sfx, T, U, C, MN, MX, ...)                                                                  \
    EM_HD static inline T em_convert_##sfx(double v) {                                                             \
        if (EM_CONVERT_IS_FLOAT_##C) return (T)v;                                                                           \
        if (E == EM_BOOL) return (T)(v != 0);                                                                          \
        return v != v ? (T)0 : v <= (double)(MN) ? (T)(MN) : v >= (double)(MX) ? (T)(MX) : (T)v;                     \
    }
EM_FOR_ALL(EM_CONVERT, )

#endif
