/* The device family's forward cases (run by test_ops.c on every device) and
 * gradient-check cases (test_gradcheck.c). */
#include "common.h"

#include <string.h>

/* copy_to_device: the values come back unchanged, every dtype, from
 * whichever device the runner placed the inputs on (/cpu:0, /cpu:1, /gpu:0)
 * to another or the same one. The expectation is the input itself. */
static em_tensor *to_cpu0(em_tensor *const *in) { return em_to_device(in[0], "/cpu:0"); }
static em_tensor *to_cpu1(em_tensor *const *in) { return em_to_device(in[0], "/cpu:1"); }
/* to the runner's device scope: a copy onto the device the input is on */
static em_tensor *to_current(em_tensor *const *in) { return em_to_device(in[0], em_device_current()); }
/* there and back again */
static em_tensor *round_trip(em_tensor *const *in) {
    const char *home = em_tensor_device(in[0]);
    return em_to_device(em_to_device(in[0], !strcmp(home, "/cpu:1") ? "/cpu:0" : "/cpu:1"), home);
}
/* a transposed (strided) view, copied as it is */
static em_tensor *view_to_cpu0(em_tensor *const *in) {
    return em_to_device(em_transpose(in[0], EM_ALL_AXES), "/cpu:0");
}

static em_tensor *to_cpu0_c(em_tensor *const *in) { return (to_cpu0(in)); }
static em_tensor *to_cpu1_c(em_tensor *const *in) { return (to_cpu1(in)); }

#define TOL_OF(dt) ((dt) == EM_F32 ? 1e-6 : (dt) == EM_F64 ? 1e-12 : 0)
/* in[0] of dtype dt and shape `shape` holding `vals`; the output is the same (expect: vals unless given). */
#define COPY(dt, label, fn, shape, vals, oshape, expect) \
    {"copy_to_device", dt, label " " #dt, fn, 1, {{dt, shape, vals}}, dt, oshape, expect, NULL, TOL_OF(dt)}
#define SAME(dt, label, fn, shape, vals) COPY(dt, label, fn, shape, vals, shape, vals)
#define EACH_ALL(M, ...)                                                                                  \
    M(EM_F32, __VA_ARGS__), M(EM_F64, __VA_ARGS__), M(EM_I32, __VA_ARGS__), M(EM_I64, __VA_ARGS__), \
        M(EM_U8, __VA_ARGS__), M(EM_BOOL, __VA_ARGS__), M(EM_BF16, __VA_ARGS__), M(EM_F16, __VA_ARGS__), \
        M(EM_I8, __VA_ARGS__), M(EM_I16, __VA_ARGS__), M(EM_U16, __VA_ARGS__)
#define X6 V(1, 0, 1, 1, 0, 0)

/* Each dtype's extremes, exactly representable in it: float32's smallest
 * subnormal 2^-149 and largest finite (2 - 2^-23) 2^127; float64's 2^-1074
 * and DBL_MAX; int64's -2^63 and the largest double below 2^63. */
#define F32_VALS V(0, 1.5, -3.25, 1.401298464324817e-45, 3.4028234663852886e38, -3.4028234663852886e38)
#define F64_VALS V(0, -0.1, 4.9406564584124654e-324, 1.7976931348623157e308, -1.7976931348623157e308, 1e-300)
#define I32_VALS V(-2147483648.0, 2147483647, -1, 0, 123456, -99)
#define I64_VALS V(-9223372036854775808.0, 9223372036854774784.0, -1, 0, 9007199254740992.0, -4611686018427387904.0)
#define U8_VALS V(0, 255, 128, 1, 127, 254)
#define BOOL_VALS V(1, 0, 0, 1, 1, 0)
#define I8_VALS V(-128, 127, -1, 0, 1, -99)
#define I16_VALS V(-32768, 32767, -1, 0, 255, -256)
#define U16_VALS V(0, 65535, 32768, 1, 50256, 255)
#define SPECIALS V(NAN, INFINITY, -INFINITY, -0.0)
#define SPECIAL_CODES V(NAN, INFINITY, -INFINITY, 0)

const fw_case fw_cases_device[] = {
    SAME(EM_F32, "copy_to_device to /cpu:0", to_cpu0, EM_SHAPE(2, 3), F32_VALS),
    SAME(EM_F64, "copy_to_device to /cpu:0", to_cpu0, EM_SHAPE(2, 3), F64_VALS),
    SAME(EM_I32, "copy_to_device to /cpu:0", to_cpu0, EM_SHAPE(2, 3), I32_VALS),
    SAME(EM_I64, "copy_to_device to /cpu:0", to_cpu0, EM_SHAPE(2, 3), I64_VALS),
    SAME(EM_U8, "copy_to_device to /cpu:0", to_cpu0, EM_SHAPE(2, 3), U8_VALS),
    SAME(EM_BOOL, "copy_to_device to /cpu:0", to_cpu0, EM_SHAPE(2, 3), BOOL_VALS),
    SAME(EM_F32, "copy_to_device to /cpu:1", to_cpu1, EM_SHAPE(3, 2), F32_VALS),
    SAME(EM_F64, "copy_to_device to /cpu:1", to_cpu1, EM_SHAPE(3, 2), F64_VALS),
    SAME(EM_I32, "copy_to_device to /cpu:1", to_cpu1, EM_SHAPE(3, 2), I32_VALS),
    SAME(EM_I64, "copy_to_device to /cpu:1", to_cpu1, EM_SHAPE(3, 2), I64_VALS),
    SAME(EM_U8, "copy_to_device to /cpu:1", to_cpu1, EM_SHAPE(3, 2), U8_VALS),
    SAME(EM_BOOL, "copy_to_device to /cpu:1", to_cpu1, EM_SHAPE(3, 2), BOOL_VALS),
    SAME(EM_I8, "copy_to_device to /cpu:1", to_cpu1, EM_SHAPE(3, 2), I8_VALS),
    SAME(EM_I16, "copy_to_device to /cpu:1", to_cpu1, EM_SHAPE(3, 2), I16_VALS),
    SAME(EM_U16, "copy_to_device to /cpu:1", to_cpu1, EM_SHAPE(3, 2), U16_VALS),
    EACH_ALL(SAME, "copy_to_device to the scope's device", to_current, EM_SHAPE(2, 3), X6),
    EACH_ALL(SAME, "copy_to_device round trip", round_trip, EM_SHAPE(6), X6),
    EACH_ALL(SAME, "copy_to_device of an empty [0,3]", to_cpu1, EM_SHAPE(0, 3), V(0)),
    EACH_ALL(SAME, "copy_to_device of a scalar", to_cpu0, EM_SHAPE0, V(1)),
    /* [[1,0,1],[1,0,0]]^T = [[1,1],[0,0],[1,0]] */
    EACH_ALL(COPY, "copy_to_device of a transposed view", view_to_cpu0, EM_SHAPE(2, 3), X6, EM_SHAPE(3, 2),
             V(1, 1, 0, 0, 1, 0)),
    /* NaN, infinities and -0 (() makes NaN and inf comparable; -0 == 0) */
    COPY(EM_F32, "copy_to_device of NaN and infinities to /cpu:0", to_cpu0_c, EM_SHAPE(4), SPECIALS, EM_SHAPE(4),
         SPECIAL_CODES),
    COPY(EM_F64, "copy_to_device of NaN and infinities to /cpu:1", to_cpu1_c, EM_SHAPE(4), SPECIALS, EM_SHAPE(4),
         SPECIAL_CODES),
    {.fn = NULL},
};

/* The copy's gradient is copied back: to_device(x) * x differentiates through both paths. */
static em_tensor *to_device_(em_tensor *const *in) { return em_mul(em_to_device(in[0], "/cpu:0"), in[0]); }

const gc_case gc_cases_device[] = {
    {EM_OP_COPY_TO_DEVICE, "to_device(x) * x [2,3]", 1, {EM_SHAPE(2, 3)}, to_device_, -1, 1, 0, NULL},
    {.fn = NULL},
};
