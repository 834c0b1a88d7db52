/* Gradient-check cases of the reductions (test/test_gradcheck.c runs them)
 * and their forward cases (test/test_ops.c). */
#include "common.h"

#include <math.h>

static em_tensor *sum_02(em_tensor *const *in) { return em_sum(in[0], EM_AXES(0, 2), false); }
static em_tensor *sum_all_keep(em_tensor *const *in) { return em_sum(in[0], EM_ALL_AXES, true); }
static em_tensor *mean_neg(em_tensor *const *in) { return em_mean(in[0], EM_AXES(-1), true); }
static em_tensor *max_1(em_tensor *const *in) { return em_max(in[0], EM_AXES(1), false); }
static em_tensor *max_all(em_tensor *const *in) { return em_max(in[0], EM_ALL_AXES, false); }
static em_tensor *min_0(em_tensor *const *in) { return em_min(in[0], EM_AXES(0), true); }
static em_tensor *prod_1(em_tensor *const *in) { return em_prod(in[0], EM_AXES(1), false); }
static em_tensor *prod_all(em_tensor *const *in) { return em_prod(in[0], EM_ALL_AXES, false); }
static em_tensor *lse_last(em_tensor *const *in) { return em_log_sum_exp(in[0], EM_AXES(-1), false); }
static em_tensor *lse_02(em_tensor *const *in) { return em_log_sum_exp(in[0], EM_AXES(0, 2), true); }

/* the composed reductions (lib/ops/composed.c), through the ops they use */
static em_tensor *norm1_last(em_tensor *const *in) { return em_norm(in[0], 1, EM_AXES(-1), false); }
static em_tensor *norm2_0(em_tensor *const *in) { return em_norm(in[0], 2, EM_AXES(0), true); }
static em_tensor *norminf_all(em_tensor *const *in) { return em_norm(in[0], INFINITY, EM_ALL_AXES, false); }

const gc_case gc_cases_reduce[] = {
    {EM_OP_SUM, "norm 1 axis -1 [3,4]", 1, {EM_SHAPE(3, 4)}, norm1_last, 0.2, 1, 0, NULL},
    {EM_OP_SUM, "norm 2 axis 0 keepdims [3,4]", 1, {EM_SHAPE(3, 4)}, norm2_0, -1, 1, 0, NULL},
    {EM_OP_MAX, "norm inf all [2,3]", 1, {EM_SHAPE(2, 3)}, norminf_all, 0.2, 1, 0, NULL},
    {EM_OP_SUM, "sum axes (0,2) of [2,3,4]", 1, {EM_SHAPE(2, 3, 4)}, sum_02, -1, 1, 0, NULL},
    {EM_OP_SUM, "sum all keepdims [3,4]", 1, {EM_SHAPE(3, 4)}, sum_all_keep, -1, 1, 0, NULL},
    {EM_OP_SUM, "mean axis -1 keepdims [3,4]", 1, {EM_SHAPE(3, 4)}, mean_neg, -1, 1, 0, NULL},
    {EM_OP_MAX, "max axis 1 [3,5]", 1, {EM_SHAPE(3, 5)}, max_1, -1, 1, 0, NULL},
    {EM_OP_MAX, "max all [2,3,2]", 1, {EM_SHAPE(2, 3, 2)}, max_all, -1, 1, 0, NULL},
    {EM_OP_MIN, "min axis 0 keepdims [4,3]", 1, {EM_SHAPE(4, 3)}, min_0, -1, 1, 0, NULL},
    {EM_OP_PROD, "prod axis 1 [3,4]", 1, {EM_SHAPE(3, 4)}, prod_1, 0.5, 1.5, 0, NULL},
    {EM_OP_PROD, "prod all [2,3]", 1, {EM_SHAPE(2, 3)}, prod_all, -1.5, -0.5, 0, NULL},
    {EM_OP_LOG_SUM_EXP, "log_sum_exp axis -1 [3,4]", 1, {EM_SHAPE(3, 4)}, lse_last, -2, 2, 0, NULL},
    {EM_OP_LOG_SUM_EXP, "log_sum_exp axes (0,2) keepdims [2,3,4]", 1, {EM_SHAPE(2, 3, 4)}, lse_02, -2, 2, 0, NULL},
    {.fn = NULL},
};

/* ---- forward cases (test/test_ops.c runs them on every device) ----
 * Expected values are literals worked out by hand (the formula beside them)
 * or with NumPy (the expression beside them), or come from the ref_* loops
 * below, which recompute a reduction over the last axis in float64 from the
 * case's input values. Integer sums and products wrap like the dtype. */

static em_tensor *sum_1(em_tensor *const *in) { return em_sum(in[0], EM_AXES(1), false); }
static em_tensor *sum_0_keep(em_tensor *const *in) { return em_sum(in[0], EM_AXES(0), true); }
static em_tensor *sum_all(em_tensor *const *in) { return em_sum(in[0], EM_ALL_AXES, false); }
static em_tensor *sum_02_keep(em_tensor *const *in) { return em_sum(in[0], EM_AXES(0, 2), true); }
static em_tensor *sum_last(em_tensor *const *in) { return em_sum(in[0], EM_AXES(-1), false); }
/* a transposed (strided) view: column sums of the original */
static em_tensor *sum_t_1(em_tensor *const *in) { return em_sum(em_transpose(in[0], EM_ALL_AXES), EM_AXES(1), false); }
/* in[0] ([1]) repeated 70000 times: few outputs over many elements (chunked and combined) */
static em_tensor *sum_70000(em_tensor *const *in) {
    return em_sum(em_broadcast_to(in[0], EM_SHAPE(70000)), EM_ALL_AXES, false);
}
static em_tensor *max_02_keep(em_tensor *const *in) { return em_max(in[0], EM_AXES(0, 2), true); }
static em_tensor *max_last(em_tensor *const *in) { return em_max(in[0], EM_AXES(-1), false); }
static em_tensor *min_1(em_tensor *const *in) { return em_min(in[0], EM_AXES(1), false); }
static em_tensor *min_0_keep(em_tensor *const *in) { return em_min(in[0], EM_AXES(0), true); }
static em_tensor *min_all(em_tensor *const *in) { return em_min(in[0], EM_ALL_AXES, false); }
static em_tensor *min_02_keep(em_tensor *const *in) { return em_min(in[0], EM_AXES(0, 2), true); }
static em_tensor *min_last(em_tensor *const *in) { return em_min(in[0], EM_AXES(-1), false); }
static em_tensor *prod_0_keep(em_tensor *const *in) { return em_prod(in[0], EM_AXES(0), true); }
static em_tensor *lse_1(em_tensor *const *in) { return em_log_sum_exp(in[0], EM_AXES(1), false); }
static em_tensor *lse_all(em_tensor *const *in) { return em_log_sum_exp(in[0], EM_ALL_AXES, false); }
static em_tensor *lse_02_keep(em_tensor *const *in) { return em_log_sum_exp(in[0], EM_AXES(0, 2), true); }
static em_tensor *argmax_0(em_tensor *const *in) { return em_argmax(in[0], 0); }
static em_tensor *argmax_1(em_tensor *const *in) { return em_argmax(in[0], 1); }
static em_tensor *argmax_last(em_tensor *const *in) { return em_argmax(in[0], -1); }
static em_tensor *argmin_0(em_tensor *const *in) { return em_argmin(in[0], 0); }
static em_tensor *argmin_1(em_tensor *const *in) { return em_argmin(in[0], 1); }
static em_tensor *argmin_last(em_tensor *const *in) { return em_argmin(in[0], -1); }
/* [in[0] (a [1]) repeated 70000 times, then in[1]]: one output over chunks */
static em_tensor *long_concat(em_tensor *const *in) {
    em_tensor *parts[2] = {em_broadcast_to(in[0], EM_SHAPE(70000)), in[1]};
    return em_concat(2, parts, 0);
}
static em_tensor *max_long(em_tensor *const *in) { return em_max(long_concat(in), EM_ALL_AXES, false); }
static em_tensor *argmax_long(em_tensor *const *in) { return em_argmax(long_concat(in), 0); }
static em_tensor *argmin_long(em_tensor *const *in) { return em_argmin(long_concat(in), 0); }

static double code_of(double v) { return isnan(v) ? NAN : isinf(v) ? copysign(INFINITY, v) : v; }
#define CODED(fn) \
    static em_tensor *fn##_c(em_tensor *const *in) { return (fn(in)); }
CODED(sum_1)
CODED(max_1)
CODED(max_02_keep)
CODED(max_last)
CODED(max_long)
CODED(min_1)
CODED(min_last)
CODED(prod_1)
CODED(lse_1)

/* Reductions of the last axis recomputed in float64 from the input values. */
enum { R_SUM, R_MAX, R_MIN, R_ARGMAX, R_ARGMIN };
static void ref_last(const fw_case *c, double *e, int kind) {
    const fw_input *x = &c->in[0];
    int64_t len = x->shape.dims[x->shape.ndim - 1], rows = em_shape_numel(x->shape) / len;
    for (int64_t r = 0; r < rows; r++) {
        const double *v = x->v + r * len;
        double acc = kind == R_SUM ? 0 : v[0];
        int64_t at = 0;
        for (int64_t j = 0; j < len; j++) {
            if (kind == R_SUM) acc += v[j];
            else if (isnan(acc)) break; /* max/min propagate the first NaN; arg* return its index */
            else if (isnan(v[j]) || (kind == R_MAX || kind == R_ARGMAX ? v[j] > acc : v[j] < acc)) acc = v[j], at = j;
        }
        e[r] = kind == R_ARGMAX || kind == R_ARGMIN ? (double)at : code_of(acc);
    }
}
static void ref_sum_last(const fw_case *c, double *e) { ref_last(c, e, R_SUM); }
static void ref_max_last(const fw_case *c, double *e) { ref_last(c, e, R_MAX); }
static void ref_min_last(const fw_case *c, double *e) { ref_last(c, e, R_MIN); }
static void ref_argmax_last(const fw_case *c, double *e) { ref_last(c, e, R_ARGMAX); }
static void ref_argmin_last(const fw_case *c, double *e) { ref_last(c, e, R_ARGMIN); }

/* Long rows, [2,192]: long enough for the kernels' interleaved partial
 * accumulators. LONG(b) = 37 b mod 101 (0..100, each value repeated: ties);
 * LONG_NAN puts a NaN at position 150 of row 0. */
#define LONG(b) ((double)((b) * 37 % 101))
#define LONG_NAN(b) ((b) == 150 ? NAN : LONG(b))
#define LONG_HALF(b) (LONG(b) * 0.5 - 25) /* -25 .. 25 by 0.5: exact in float32 */
#define G4(F, b) F(b), F((b) + 1), F((b) + 2), F((b) + 3)
#define G16(F, b) G4(F, b), G4(F, (b) + 4), G4(F, (b) + 8), G4(F, (b) + 12)
#define G64(F, b) G16(F, b), G16(F, (b) + 16), G16(F, (b) + 32), G16(F, (b) + 48)
#define G384(F) G64(F, 0), G64(F, 64), G64(F, 128), G64(F, 192), G64(F, 256), G64(F, 320)

/* bfloat16 and float16 results are float32-accumulated values rounded once: one unit in their last place */
#define TOL_OF(dt) ((dt) == EM_F32 ? 1e-6 : (dt) == EM_BF16 ? 8e-3 : (dt) == EM_F16 ? 1e-3 : 1e-12)
/* One input of the case's dtype; the output of dtype odt. */
#define R1(op, dt, label, fn, ishape, ivals, odt, oshape, expect) \
    {op, dt, label, fn, 1, {{dt, ishape, ivals}}, odt, oshape, expect, NULL, TOL_OF(dt)}
#define R1REF(op, dt, label, fn, ishape, ivals, odt, oshape, ref) \
    {op, dt, label, fn, 1, {{dt, ishape, ivals}}, odt, oshape, NULL, ref, TOL_OF(dt)}
/* The same case for each numeric dtype (values valid for uint8 and int8, exact in bfloat16), its dtype in the
 * label. */
#define EACH_NUMERIC(M, ...)                                                                                          \
    M(EM_F32, __VA_ARGS__), M(EM_F64, __VA_ARGS__), M(EM_I32, __VA_ARGS__), M(EM_I64, __VA_ARGS__), M(EM_U8, __VA_ARGS__), \
        M(EM_I8, __VA_ARGS__), M(EM_I16, __VA_ARGS__), M(EM_U16, __VA_ARGS__), EACH_NARROW(M, __VA_ARGS__)
#define EACH_NARROW(M, ...) M(EM_BF16, __VA_ARGS__), M(EM_F16, __VA_ARGS__)
#define SAME(dt, op, label, fn, ishape, ivals, oshape, expect) \
    R1(op, dt, label " " #dt, fn, ishape, ivals, dt, oshape, expect)
#define TO_I64(dt, op, label, fn, ishape, ivals, oshape, expect) \
    R1(op, dt, label " " #dt, fn, ishape, ivals, EM_I64, oshape, expect)
#define SAME_REF(dt, op, label, fn, ishape, ivals, oshape, ref) \
    R1REF(op, dt, label " " #dt, fn, ishape, ivals, dt, oshape, ref)
#define TO_I64_REF(dt, op, label, fn, ishape, ivals, oshape, ref) \
    R1REF(op, dt, label " " #dt, fn, ishape, ivals, EM_I64, oshape, ref)

#define X23 V(1, 2, 3, 4, 5, 6)
#define X232 V(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11) /* x[i][j][k] = 6i + 2j + k */
#define I64_MIN (-9223372036854775808.0)
#define TWO62 4611686018427387904.0

static em_tensor *any_1(em_tensor *const *in) { return em_reduce_any(in[0], EM_AXES(1), false); }
static em_tensor *all_1(em_tensor *const *in) { return em_reduce_all(in[0], EM_AXES(1), false); }
static em_tensor *any_0_keep(em_tensor *const *in) { return em_reduce_any(in[0], EM_AXES(-2), true); }
static em_tensor *all_all(em_tensor *const *in) { return em_reduce_all(in[0], EM_ALL_AXES, false); }
/* in[0] ([2,1]) broadcast to [2,70000]: few outputs over many elements, chunked */
static em_tensor *any_wide(em_tensor *const *in) {
    return em_reduce_any(em_broadcast_to(in[0], EM_SHAPE(2, 70000)), EM_AXES(1), false);
}
static em_tensor *all_wide(em_tensor *const *in) {
    return em_reduce_all(em_broadcast_to(in[0], EM_SHAPE(2, 70000)), EM_AXES(1), false);
}
/* [2,0]: any over nothing is false, all over nothing true (np.any, np.all) */
#define B24 V(0, 0, 0, 0, 1, 0, 1, 0, 1, 1, 1, 1)

const fw_case fw_cases_reduce[] = {
    /* ---- reduce_any, reduce_all (np.any, np.all) ---- */
    {"reduce_any", EM_BOOL, "reduce_any axis 1 [3,4]", any_1, 1, {{EM_BOOL, EM_SHAPE(3, 4), B24}}, EM_BOOL, EM_SHAPE(3),
     V(0, 1, 1), NULL, 0},
    {"reduce_all", EM_BOOL, "reduce_all axis 1 [3,4]", all_1, 1, {{EM_BOOL, EM_SHAPE(3, 4), B24}}, EM_BOOL, EM_SHAPE(3),
     V(0, 0, 1), NULL, 0},
    {"reduce_any", EM_BOOL, "reduce_any axis -2 keepdims [3,4]", any_0_keep, 1, {{EM_BOOL, EM_SHAPE(3, 4), B24}},
     EM_BOOL, EM_SHAPE(1, 4), V(1, 1, 1, 1), NULL, 0},
    {"reduce_all", EM_BOOL, "reduce_all all [3,4]", all_all, 1, {{EM_BOOL, EM_SHAPE(3, 4), B24}}, EM_BOOL, EM_SHAPE0,
     V(0), NULL, 0},
    {"reduce_any", EM_BOOL, "reduce_any axis 1 of empty [2,0]", any_1, 1, {{EM_BOOL, EM_SHAPE(2, 0), V(0)}}, EM_BOOL,
     EM_SHAPE(2), V(0, 0), NULL, 0},
    {"reduce_all", EM_BOOL, "reduce_all axis 1 of empty [2,0]", all_1, 1, {{EM_BOOL, EM_SHAPE(2, 0), V(0)}}, EM_BOOL,
     EM_SHAPE(2), V(1, 1), NULL, 0},
    {"reduce_any", EM_BOOL, "reduce_any axis 1 of [2,70000]", any_wide, 1, {{EM_BOOL, EM_SHAPE(2, 1), V(0, 1)}}, EM_BOOL,
     EM_SHAPE(2), V(0, 1), NULL, 0},
    {"reduce_all", EM_BOOL, "reduce_all axis 1 of [2,70000]", all_wide, 1, {{EM_BOOL, EM_SHAPE(2, 1), V(0, 1)}}, EM_BOOL,
     EM_SHAPE(2), V(0, 1), NULL, 0},
    /* ---- sum ---- */
    EACH_NUMERIC(SAME, "sum", "sum axis 1 [2,3]", sum_1, EM_SHAPE(2, 3), X23, EM_SHAPE(2), V(6, 15)),
    EACH_NUMERIC(SAME, "sum", "sum axis 0 keepdims [2,3]", sum_0_keep, EM_SHAPE(2, 3), X23, EM_SHAPE(1, 3), V(5, 7, 9)),
    EACH_NUMERIC(SAME, "sum", "sum all [2,3]", sum_all, EM_SHAPE(2, 3), X23, EM_SHAPE0, V(21)),
    /* sum over i, k of 6i + 2j + k = 8j + 14 (np.arange(12).reshape(2,3,2).sum(axis=(0,2))) */
    EACH_NUMERIC(SAME, "sum", "sum axes (0,2) keepdims [2,3,2]", sum_02_keep, EM_SHAPE(2, 3, 2), X232,
                 EM_SHAPE(1, 3, 1), V(14, 22, 30)),
    EACH_NUMERIC(SAME, "sum", "sum axis 1 of a transposed view [2,3]^T", sum_t_1, EM_SHAPE(2, 3), X23, EM_SHAPE(3),
                 V(5, 7, 9)),
    EACH_NUMERIC(SAME, "sum", "sum of an empty axis [2,0]", sum_1, EM_SHAPE(2, 0), V(0), EM_SHAPE(2), V(0, 0)),
    EACH_NUMERIC(SAME, "sum", "sum all of an empty [0,3]", sum_all, EM_SHAPE(0, 3), V(0), EM_SHAPE0, V(0)),
    EACH_NUMERIC(SAME, "sum", "sum axis 1 to an empty output [0,3]", sum_1, EM_SHAPE(0, 3), V(0), EM_SHAPE(0), V(0)),
    SAME(EM_F32, "sum", "sum axis 1 [2,2] fractions, negatives", sum_1, EM_SHAPE(2, 2), V(0.5, -1.25, 3.75, -2),
         EM_SHAPE(2), V(-0.75, 1.75)),
    SAME(EM_F64, "sum", "sum axis 1 [2,2] fractions, negatives", sum_1, EM_SHAPE(2, 2), V(0.1, -1.25, 3.75, -1e-3),
         EM_SHAPE(2), V(-1.15, 3.749)),
    /* accumulated in double: 1e8 + 1 - 1e8 is 1 (0 in float32 arithmetic) */
    SAME(EM_F32, "sum", "sum float32 accumulates in double", sum_all, EM_SHAPE(3), V(1e8, 1, -1e8), EM_SHAPE0, V(1)),
    SAME(EM_F64, "sum", "sum with NaN and infinities", sum_1_c, EM_SHAPE(3, 2), V(1, NAN, INFINITY, -INFINITY, INFINITY, 2),
         EM_SHAPE(3), V(NAN, NAN, INFINITY)),
    SAME(EM_F32, "sum", "sum with NaN and infinities", sum_1_c, EM_SHAPE(3, 2), V(1, NAN, INFINITY, -INFINITY, INFINITY, 2),
         EM_SHAPE(3), V(NAN, NAN, INFINITY)),
    /* float32(0.1) * 70000 in double: np.float64(np.float32(0.1)) * 70000 */
    SAME(EM_F32, "sum", "sum of 70000 x float32(0.1)", sum_70000, EM_SHAPE(1), V(0.1), EM_SHAPE0, V(7000.000104308128)),
    SAME(EM_F64, "sum", "sum of 70000 x 0.1", sum_70000, EM_SHAPE(1), V(0.1), EM_SHAPE0, V(7000.0)),
    /* never accumulated in the narrow type, where 1 + 256 is 256 (bfloat16) and 32 + 2^-6 is 32 (float16):
     * 70000 rounded to bfloat16 (a multiple of 512) is 70144; 70000 / 64 = 1093.75 rounds to 1094 in float16 */
    SAME(EM_BF16, "sum", "sum of 70000 x 1 accumulates in float32 or wider", sum_70000, EM_SHAPE(1), V(1), EM_SHAPE0,
         V(70144)),
    SAME(EM_F16, "sum", "sum of 70000 x 2^-6 accumulates in float32 or wider", sum_70000, EM_SHAPE(1), V(0.015625),
         EM_SHAPE0, V(1094)),
    EACH_NARROW(SAME, "sum", "sum with NaN and infinities", sum_1_c, EM_SHAPE(3, 2),
                V(1, NAN, INFINITY, -INFINITY, INFINITY, 2), EM_SHAPE(3), V(NAN, NAN, INFINITY)),
    /* 70000 * 65536 mod 2^32 = 292552704; 70000 mod 256 = 112; 70000 * 2^40 */
    SAME(EM_I32, "sum", "sum of 70000 x 65536 wraps", sum_70000, EM_SHAPE(1), V(65536), EM_SHAPE0, V(292552704)),
    SAME(EM_I64, "sum", "sum of 70000 x 2^40", sum_70000, EM_SHAPE(1), V(1099511627776.0), EM_SHAPE0,
         V(76965813944320000.0)),
    SAME(EM_U8, "sum", "sum of 70000 x 1 wraps", sum_70000, EM_SHAPE(1), V(1), EM_SHAPE0, V(112)),
    /* 70000 mod 256 = 112; 70000 mod 65536 = 4464; -70000 mod 65536 = 61072, as int16 -4464 */
    SAME(EM_I8, "sum", "sum of 70000 x 1 wraps", sum_70000, EM_SHAPE(1), V(1), EM_SHAPE0, V(112)),
    SAME(EM_I16, "sum", "sum of 70000 x -1 wraps", sum_70000, EM_SHAPE(1), V(-1), EM_SHAPE0, V(-4464)),
    SAME(EM_U16, "sum", "sum of 70000 x 1 wraps", sum_70000, EM_SHAPE(1), V(1), EM_SHAPE0, V(4464)),
    /* 127 + 1 = -128; -128 - 1 + 5 = 132 = -124 (np.int8); 32767 + 1 = -32768; 65535 + 2 = 1 */
    SAME(EM_I8, "sum", "sum int8 wraps", sum_1, EM_SHAPE(2, 3), V(127, 1, 0, -128, -1, 5), EM_SHAPE(2), V(-128, -124)),
    SAME(EM_I16, "sum", "sum int16 wraps", sum_1, EM_SHAPE(2, 2), V(32767, 1, -32768, -1), EM_SHAPE(2), V(-32768, 32767)),
    SAME(EM_U16, "sum", "sum uint16 wraps", sum_all, EM_SHAPE(2), V(65535, 2), EM_SHAPE0, V(1)),
    /* INT32_MAX + 1 = INT32_MIN; INT32_MIN - 1 + 5 = INT32_MAX + 5 = -2147483644 */
    SAME(EM_I32, "sum", "sum int32 wraps", sum_1, EM_SHAPE(2, 3), V(2147483647, 1, 0, -2147483648.0, -1, 5),
         EM_SHAPE(2), V(-2147483648.0, -2147483644)),
    /* 2^62 + 2^62 = 2^63 = INT64_MIN; INT64_MIN - 2^62 - 2^62 = -2^64 = 0 */
    SAME(EM_I64, "sum", "sum int64 wraps", sum_1, EM_SHAPE(2, 3), V(TWO62, TWO62, 0, I64_MIN, -TWO62, -TWO62),
         EM_SHAPE(2), V(I64_MIN, 0)),
    /* 200 + 100 + 250 = 550 = 38 mod 256 */
    SAME(EM_U8, "sum", "sum uint8 wraps", sum_all, EM_SHAPE(3), V(200, 100, 250), EM_SHAPE0, V(38)),
    SAME(EM_I32, "sum", "sum int32 negatives", sum_last, EM_SHAPE(2, 2), V(-7, 3, -100000, -1), EM_SHAPE(2),
         V(-4, -100001)),
    SAME_REF(EM_F32, "sum", "sum long rows [2,192]", sum_last, EM_SHAPE(2, 192), V(G384(LONG_HALF)), EM_SHAPE(2),
             ref_sum_last),
    SAME_REF(EM_F64, "sum", "sum long rows [2,192]", sum_last, EM_SHAPE(2, 192), V(G384(LONG_HALF)), EM_SHAPE(2),
             ref_sum_last),
    EACH_NARROW(SAME_REF, "sum", "sum long rows [2,192]", sum_last, EM_SHAPE(2, 192), V(G384(LONG_HALF)), EM_SHAPE(2),
                ref_sum_last),
    SAME_REF(EM_I64, "sum", "sum long rows [2,192]", sum_last, EM_SHAPE(2, 192), V(G384(LONG)), EM_SHAPE(2),
             ref_sum_last),

    /* ---- max ---- */
    EACH_NUMERIC(SAME, "max", "max axis 1 [2,3]", max_1, EM_SHAPE(2, 3), V(3, 1, 2, 4, 6, 5), EM_SHAPE(2), V(3, 6)),
    EACH_NUMERIC(SAME, "max", "max all [2,3]", max_all, EM_SHAPE(2, 3), V(3, 1, 2, 4, 6, 5), EM_SHAPE0, V(6)),
    /* max over i, k of 6i + 2j + k = 2j + 7 */
    EACH_NUMERIC(SAME, "max", "max axes (0,2) keepdims [2,3,2]", max_02_keep, EM_SHAPE(2, 3, 2), X232,
                 EM_SHAPE(1, 3, 1), V(7, 9, 11)),
    EACH_NUMERIC(SAME, "max", "max axis 1 to an empty output [0,3]", max_1, EM_SHAPE(0, 3), V(0), EM_SHAPE(0), V(0)),
    EACH_NUMERIC(SAME_REF, "max", "max long rows [2,192]", max_last, EM_SHAPE(2, 192), V(G384(LONG)), EM_SHAPE(2),
                 ref_max_last),
    /* NaN propagates (like NumPy), wherever it is in the row */
    SAME(EM_F32, "max", "max with NaN", max_1_c, EM_SHAPE(4, 3),
         V(1, NAN, 3, NAN, -1, -2, -5, -2, NAN, -INFINITY, -INFINITY, -INFINITY), EM_SHAPE(4),
         V(NAN, NAN, NAN, -INFINITY)),
    SAME(EM_F64, "max", "max with NaN", max_1_c, EM_SHAPE(4, 3),
         V(1, NAN, 3, NAN, -1, -2, -5, -2, NAN, -INFINITY, -INFINITY, -INFINITY), EM_SHAPE(4),
         V(NAN, NAN, NAN, -INFINITY)),
    SAME(EM_F64, "max", "max with NaN along axis 0", max_02_keep_c, EM_SHAPE(2, 2, 1),
         V(1, NAN, 2, 0.5), EM_SHAPE(1, 2, 1), V(2, NAN)),
    SAME_REF(EM_F32, "max", "max long rows with NaN [2,192]", max_last_c, EM_SHAPE(2, 192), V(G384(LONG_NAN)), EM_SHAPE(2),
             ref_max_last),
    SAME_REF(EM_F64, "max", "max long rows with NaN [2,192]", max_last_c, EM_SHAPE(2, 192), V(G384(LONG_NAN)), EM_SHAPE(2),
             ref_max_last),
    EACH_NARROW(SAME_REF, "max", "max long rows with NaN [2,192]", max_last_c, EM_SHAPE(2, 192), V(G384(LONG_NAN)),
                EM_SHAPE(2), ref_max_last),
    EACH_NARROW(SAME, "max", "max with NaN", max_1_c, EM_SHAPE(4, 3),
                V(1, NAN, 3, NAN, -1, -2, -5, -2, NAN, -INFINITY, -INFINITY, -INFINITY), EM_SHAPE(4),
                V(NAN, NAN, NAN, -INFINITY)),
    SAME(EM_F32, "max", "max of negatives and infinities", max_1_c, EM_SHAPE(2, 2), V(-3.5, -0.25, INFINITY, 1e30),
         EM_SHAPE(2), V(-0.25, INFINITY)),
    SAME(EM_I32, "max", "max int32 extremes", max_1, EM_SHAPE(2, 3), V(-2147483648.0, 2147483647, 0, -5, -2147483648.0, -7),
         EM_SHAPE(2), V(2147483647, -5)),
    SAME(EM_I64, "max", "max int64 extremes", max_1, EM_SHAPE(2, 2), V(I64_MIN, TWO62, I64_MIN, I64_MIN), EM_SHAPE(2),
         V(TWO62, I64_MIN)),
    SAME(EM_U8, "max", "max uint8 extremes", max_1, EM_SHAPE(2, 2), V(0, 255, 0, 0), EM_SHAPE(2), V(255, 0)),
    SAME(EM_I8, "max", "max int8 extremes", max_1, EM_SHAPE(2, 3), V(-128, 127, 0, -5, -128, -7), EM_SHAPE(2), V(127, -5)),
    SAME(EM_I16, "max", "max int16 extremes", max_1, EM_SHAPE(2, 2), V(-32768, 32767, -32768, -32768), EM_SHAPE(2),
         V(32767, -32768)),
    SAME(EM_U16, "max", "max uint16 extremes", max_1, EM_SHAPE(2, 2), V(0, 65535, 32768, 32767), EM_SHAPE(2),
         V(65535, 32768)),
    /* 70000 ones, then 5, 9, 9 (NaN in the float32 case): the chunks' maxima combined */
    {"max", EM_I32, "max over 70003 elements EM_I32", max_long, 2,
     {{EM_I32, EM_SHAPE(1), V(1)}, {EM_I32, EM_SHAPE(3), V(5, 9, 9)}},
     EM_I32, EM_SHAPE0, V(9), NULL, 0},
    {"max", EM_F32, "max over 70003 elements with NaN EM_F32", max_long_c, 2,
     {{EM_F32, EM_SHAPE(1), V(1)}, {EM_F32, EM_SHAPE(3), V(5, NAN, 9)}}, EM_F32, EM_SHAPE0, V(NAN), NULL, 1e-6},

    /* ---- min ---- */
    EACH_NUMERIC(SAME, "min", "min axis 1 [2,3]", min_1, EM_SHAPE(2, 3), V(3, 1, 2, 4, 6, 5), EM_SHAPE(2), V(1, 4)),
    EACH_NUMERIC(SAME, "min", "min axis 0 keepdims [2,3]", min_0_keep, EM_SHAPE(2, 3), V(3, 1, 2, 4, 0, 5),
                 EM_SHAPE(1, 3), V(3, 0, 2)),
    EACH_NUMERIC(SAME, "min", "min all [2,3]", min_all, EM_SHAPE(2, 3), V(3, 1, 2, 4, 6, 5), EM_SHAPE0, V(1)),
    /* min over i, k of 6i + 2j + k = 2j */
    EACH_NUMERIC(SAME, "min", "min axes (0,2) keepdims [2,3,2]", min_02_keep, EM_SHAPE(2, 3, 2), X232,
                 EM_SHAPE(1, 3, 1), V(0, 2, 4)),
    EACH_NUMERIC(SAME, "min", "min axis 1 to an empty output [0,3]", min_1, EM_SHAPE(0, 3), V(0), EM_SHAPE(0), V(0)),
    EACH_NUMERIC(SAME_REF, "min", "min long rows [2,192]", min_last, EM_SHAPE(2, 192), V(G384(LONG)), EM_SHAPE(2),
                 ref_min_last),
    SAME(EM_F32, "min", "min with NaN", min_1_c, EM_SHAPE(4, 3),
         V(1, NAN, 3, NAN, -1, -2, -5, -2, NAN, INFINITY, INFINITY, INFINITY), EM_SHAPE(4),
         V(NAN, NAN, NAN, INFINITY)),
    SAME(EM_F64, "min", "min with NaN", min_1_c, EM_SHAPE(4, 3),
         V(1, NAN, 3, NAN, -1, -2, -5, -2, NAN, INFINITY, INFINITY, INFINITY), EM_SHAPE(4),
         V(NAN, NAN, NAN, INFINITY)),
    SAME_REF(EM_F32, "min", "min long rows with NaN [2,192]", min_last_c, EM_SHAPE(2, 192), V(G384(LONG_NAN)), EM_SHAPE(2),
             ref_min_last),
    SAME_REF(EM_F64, "min", "min long rows with NaN [2,192]", min_last_c, EM_SHAPE(2, 192), V(G384(LONG_NAN)), EM_SHAPE(2),
             ref_min_last),
    EACH_NARROW(SAME, "min", "min with NaN", min_1_c, EM_SHAPE(4, 3),
                V(1, NAN, 3, NAN, -1, -2, -5, -2, NAN, INFINITY, INFINITY, INFINITY), EM_SHAPE(4),
                V(NAN, NAN, NAN, INFINITY)),
    SAME(EM_F64, "min", "min of negatives and infinities", min_1_c, EM_SHAPE(2, 2), V(-3.5, -0.25, -INFINITY, -1e300),
         EM_SHAPE(2), V(-3.5, -INFINITY)),
    SAME(EM_I32, "min", "min int32 extremes", min_1, EM_SHAPE(2, 3), V(-2147483648.0, 2147483647, 0, 5, 2147483647, 7),
         EM_SHAPE(2), V(-2147483648.0, 5)),
    SAME(EM_I64, "min", "min int64 extremes", min_1, EM_SHAPE(2, 2), V(I64_MIN, TWO62, TWO62, -1), EM_SHAPE(2),
         V(I64_MIN, -1)),
    SAME(EM_U8, "min", "min uint8 extremes", min_1, EM_SHAPE(2, 2), V(0, 255, 255, 254), EM_SHAPE(2), V(0, 254)),
    SAME(EM_I8, "min", "min int8 extremes", min_1, EM_SHAPE(2, 3), V(-128, 127, 0, 5, 127, 7), EM_SHAPE(2), V(-128, 5)),
    SAME(EM_I16, "min", "min int16 extremes", min_1, EM_SHAPE(2, 2), V(-32768, 32767, 32767, -1), EM_SHAPE(2),
         V(-32768, -1)),
    SAME(EM_U16, "min", "min uint16 extremes", min_1, EM_SHAPE(2, 2), V(0, 65535, 65535, 32768), EM_SHAPE(2),
         V(0, 32768)),

    /* ---- prod ---- */
    EACH_NUMERIC(SAME, "prod", "prod axis 1 [2,3]", prod_1, EM_SHAPE(2, 3), V(1, 2, 3, 2, 2, 2), EM_SHAPE(2), V(6, 8)),
    EACH_NUMERIC(SAME, "prod", "prod axis 0 keepdims [2,3]", prod_0_keep, EM_SHAPE(2, 3), V(1, 2, 3, 2, 2, 2),
                 EM_SHAPE(1, 3), V(2, 4, 6)),
    EACH_NUMERIC(SAME, "prod", "prod all [2,3]", prod_all, EM_SHAPE(2, 3), V(1, 2, 3, 2, 2, 2), EM_SHAPE0, V(48)),
    EACH_NUMERIC(SAME, "prod", "prod of an empty axis [2,0]", prod_1, EM_SHAPE(2, 0), V(0), EM_SHAPE(2), V(1, 1)),
    EACH_NUMERIC(SAME, "prod", "prod all of an empty [0,3]", prod_all, EM_SHAPE(0, 3), V(0), EM_SHAPE0, V(1)),
    SAME(EM_F32, "prod", "prod fractions, negatives, zero", prod_1, EM_SHAPE(2, 3), V(0.5, -4, 1.5, 3, 0, -2),
         EM_SHAPE(2), V(-3, 0)),
    SAME(EM_F64, "prod", "prod fractions, negatives, zero", prod_1, EM_SHAPE(2, 3), V(0.5, -4, 1.5, 3, 0, -2),
         EM_SHAPE(2), V(-3, 0)),
    /* accumulated wider: 256 * 256 / 256 is 256 in float16, whose largest value is 65504 */
    SAME(EM_F16, "prod", "prod past float16's range inside", prod_all, EM_SHAPE(3), V(256, 256, 0.00390625), EM_SHAPE0,
         V(256)),
    EACH_NARROW(SAME, "prod", "prod with NaN and infinities", prod_1_c, EM_SHAPE(3, 2),
                V(0, INFINITY, NAN, 2, INFINITY, -2), EM_SHAPE(3), V(NAN, NAN, -INFINITY)),
    /* 0 * inf is NaN; NaN propagates; inf * -2 */
    SAME(EM_F64, "prod", "prod with NaN and infinities", prod_1_c, EM_SHAPE(3, 2), V(0, INFINITY, NAN, 2, INFINITY, -2),
         EM_SHAPE(3), V(NAN, NAN, -INFINITY)),
    SAME(EM_F32, "prod", "prod with NaN and infinities", prod_1_c, EM_SHAPE(3, 2), V(0, INFINITY, NAN, 2, INFINITY, -2),
         EM_SHAPE(3), V(NAN, NAN, -INFINITY)),
    /* accumulated in double: 1e30 * 1e30 would overflow float32
     * (np.prod(np.float32([1e30, 1e30, 1e-30]).astype(np.float64)) = 1.0000000332660097e30) */
    SAME(EM_F32, "prod", "prod float32 accumulates in double", prod_all, EM_SHAPE(3), V(1e30, 1e30, 1e-30), EM_SHAPE0,
         V(1.0000000332660097e30)),
    /* 65537^2 = 2^32 + 131073; (2^32 + 1)^2 = 2^64 + 2^33 + 1; 16 * 17 = 272 = 16 mod 256;
     * -65536 * 65536 * 3 = -3 * 2^32 = 0 mod 2^32; 720 = 208 mod 256 */
    SAME(EM_I32, "prod", "prod int32 wraps", prod_1, EM_SHAPE(2, 3), V(65537, 65537, 1, -65536, 65536, 3), EM_SHAPE(2),
         V(131073, 0)),
    SAME(EM_I64, "prod", "prod int64 wraps", prod_1, EM_SHAPE(2, 2), V(4294967297.0, 4294967297.0, -3, 5), EM_SHAPE(2),
         V(8589934593.0, -15)),
    SAME(EM_U8, "prod", "prod uint8 wraps", prod_1, EM_SHAPE(2, 3), V(16, 17, 1, 4, 5, 36), EM_SHAPE(2), V(16, 208)),
    /* 16 * 16 = 256 = 0 (int8); -3 * 5 * 9 = -135 = 121; 256 * 257 = 65792 = 256; 255 * 257 = 65535 = -1 (int16);
     * 65535 * 65535 = 1 mod 2^16 */
    SAME(EM_I8, "prod", "prod int8 wraps", prod_1, EM_SHAPE(2, 3), V(16, 16, 1, -3, 5, 9), EM_SHAPE(2), V(0, 121)),
    SAME(EM_I16, "prod", "prod int16 wraps", prod_1, EM_SHAPE(2, 2), V(256, 257, 255, 257), EM_SHAPE(2), V(256, -1)),
    SAME(EM_U16, "prod", "prod uint16 wraps", prod_1, EM_SHAPE(2, 2), V(65535, 65535, 256, 255), EM_SHAPE(2),
         V(1, 65280)),

    /* ---- log_sum_exp ---- */
    /* np.log(np.exp([[0,1,2],[-1,0,3]]).sum(1)) */
    SAME(EM_F32, "log_sum_exp", "log_sum_exp axis 1 [2,3]", lse_1, EM_SHAPE(2, 3), V(0, 1, 2, -1, 0, 3), EM_SHAPE(2),
         V(2.40760596444438, 3.0658839037574293)),
    SAME(EM_F64, "log_sum_exp", "log_sum_exp axis 1 [2,3]", lse_1, EM_SHAPE(2, 3), V(0, 1, 2, -1, 0, 3), EM_SHAPE(2),
         V(2.40760596444438, 3.0658839037574293)),
    EACH_NARROW(SAME, "log_sum_exp", "log_sum_exp axis 1 [2,3]", lse_1, EM_SHAPE(2, 3), V(0, 1, 2, -1, 0, 3),
                EM_SHAPE(2), V(2.40760596444438, 3.0658839037574293)),
    EACH_NARROW(SAME, "log_sum_exp", "log_sum_exp with infinities and NaN", lse_1_c, EM_SHAPE(4, 2),
                V(INFINITY, 1, -INFINITY, -INFINITY, NAN, 1, -INFINITY, 0), EM_SHAPE(4), V(INFINITY, -INFINITY, NAN, 0)),
    /* 1000 + ln 2 is 1000 in bfloat16 (spacing 4) and 1000.5 in float16 (spacing 0.5) */
    EACH_NARROW(SAME, "log_sum_exp", "log_sum_exp of large values", lse_1, EM_SHAPE(2, 2), V(1000, 1000, -1000, -1000),
                EM_SHAPE(2), V(1000.6931471805599, -999.3068528194401)),
    /* y = np.arange(12).reshape(2,3,2) * 0.25: np.log(np.exp(y).sum(axis=(0,2))), np.log(np.exp(y).sum()) */
    SAME(EM_F32, "log_sum_exp", "log_sum_exp axes (0,2) keepdims [2,3,2]", lse_02_keep, EM_SHAPE(2, 3, 2),
         V(0, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 1.75, 2, 2.25, 2.5, 2.75), EM_SHAPE(1, 3, 1),
         V(2.5273526978615957, 3.027352697861596, 3.527352697861596)),
    SAME(EM_F64, "log_sum_exp", "log_sum_exp axes (0,2) keepdims [2,3,2]", lse_02_keep, EM_SHAPE(2, 3, 2),
         V(0, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 1.75, 2, 2.25, 2.5, 2.75), EM_SHAPE(1, 3, 1),
         V(2.5273526978615957, 3.027352697861596, 3.527352697861596)),
    SAME(EM_F64, "log_sum_exp", "log_sum_exp all [2,3,2]", lse_all, EM_SHAPE(2, 3, 2),
         V(0, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 1.75, 2, 2.25, 2.5, 2.75), EM_SHAPE0, V(4.207622368503331)),
    /* stable for large magnitudes: 1000 + ln 2, -1000 + ln 2 */
    SAME(EM_F32, "log_sum_exp", "log_sum_exp of large values", lse_1, EM_SHAPE(2, 2), V(1000, 1000, -1000, -1000),
         EM_SHAPE(2), V(1000.6931471805599, -999.3068528194401)),
    SAME(EM_F64, "log_sum_exp", "log_sum_exp of large values", lse_1, EM_SHAPE(2, 2), V(1000, 1000, -1000, -1000),
         EM_SHAPE(2), V(1000.6931471805599, -999.3068528194401)),
    /* log(e^inf + e) = inf; log(0 + 0) = -inf; NaN; log(0 + e^0) = 0 */
    SAME(EM_F32, "log_sum_exp", "log_sum_exp with infinities and NaN", lse_1_c, EM_SHAPE(4, 2),
         V(INFINITY, 1, -INFINITY, -INFINITY, NAN, 1, -INFINITY, 0), EM_SHAPE(4), V(INFINITY, -INFINITY, NAN, 0)),
    SAME(EM_F64, "log_sum_exp", "log_sum_exp with infinities and NaN", lse_1_c, EM_SHAPE(4, 2),
         V(INFINITY, 1, -INFINITY, -INFINITY, NAN, 1, -INFINITY, 0), EM_SHAPE(4), V(INFINITY, -INFINITY, NAN, 0)),
    /* an empty sum: log 0 */
    SAME(EM_F32, "log_sum_exp", "log_sum_exp of an empty axis [2,0]", lse_1_c, EM_SHAPE(2, 0), V(0), EM_SHAPE(2),
         V(-INFINITY, -INFINITY)),
    SAME(EM_F64, "log_sum_exp", "log_sum_exp of an empty axis [2,0]", lse_1_c, EM_SHAPE(2, 0), V(0), EM_SHAPE(2),
         V(-INFINITY, -INFINITY)),

    /* ---- argmax, argmin: int64 indices of the first extreme ---- */
    EACH_NUMERIC(TO_I64, "argmax", "argmax axis 1, ties [2,3]", argmax_1, EM_SHAPE(2, 3), V(3, 1, 3, 4, 6, 6), EM_SHAPE(2),
                 V(0, 1)),
    EACH_NUMERIC(TO_I64, "argmax", "argmax axis 0 [2,3]", argmax_0, EM_SHAPE(2, 3), V(3, 1, 7, 4, 6, 7), EM_SHAPE(3),
                 V(1, 1, 0)),
    /* the middle axis: argmax over j of 6i + 2j + k is 2 */
    EACH_NUMERIC(TO_I64, "argmax", "argmax axis 1 [2,3,2]", argmax_1, EM_SHAPE(2, 3, 2), X232, EM_SHAPE(2, 2),
                 V(2, 2, 2, 2)),
    EACH_NUMERIC(TO_I64, "argmax", "argmax of a size-1 axis [2,1]", argmax_last, EM_SHAPE(2, 1), V(5, 0), EM_SHAPE(2),
                 V(0, 0)),
    EACH_NUMERIC(TO_I64_REF, "argmax", "argmax long rows, ties [2,192]", argmax_last, EM_SHAPE(2, 192), V(G384(LONG)),
                 EM_SHAPE(2), ref_argmax_last),
    /* the first NaN wins (like NumPy) */
    TO_I64(EM_F32, "argmax", "argmax with NaN", argmax_1, EM_SHAPE(3, 4),
           V(1, NAN, 3, NAN, NAN, 9, 9, 1, -INFINITY, -INFINITY, -INFINITY, -INFINITY), EM_SHAPE(3), V(1, 0, 0)),
    TO_I64(EM_F64, "argmax", "argmax with NaN", argmax_1, EM_SHAPE(3, 4),
           V(1, NAN, 3, NAN, NAN, 9, 9, 1, -INFINITY, -INFINITY, -INFINITY, -INFINITY), EM_SHAPE(3), V(1, 0, 0)),
    TO_I64_REF(EM_F32, "argmax", "argmax long rows with NaN [2,192]", argmax_last, EM_SHAPE(2, 192), V(G384(LONG_NAN)),
               EM_SHAPE(2), ref_argmax_last),
    TO_I64_REF(EM_F64, "argmax", "argmax long rows with NaN [2,192]", argmax_last, EM_SHAPE(2, 192), V(G384(LONG_NAN)),
               EM_SHAPE(2), ref_argmax_last),
    EACH_NARROW(TO_I64_REF, "argmax", "argmax long rows with NaN [2,192]", argmax_last, EM_SHAPE(2, 192),
                V(G384(LONG_NAN)), EM_SHAPE(2), ref_argmax_last),
    TO_I64(EM_F64, "argmax", "argmax of negatives and infinities", argmax_1, EM_SHAPE(2, 3),
           V(-3.5, -0.25, -0.5, 1e300, INFINITY, INFINITY), EM_SHAPE(2), V(1, 1)),
    TO_I64(EM_I32, "argmax", "argmax int32 extremes", argmax_1, EM_SHAPE(2, 3),
           V(-2147483648.0, 2147483647, 2147483647, -2147483648.0, -2147483648.0, -2147483647), EM_SHAPE(2), V(1, 2)),
    TO_I64(EM_I64, "argmax", "argmax int64 extremes", argmax_1, EM_SHAPE(2, 3),
           V(I64_MIN, TWO62, -1, I64_MIN, I64_MIN, I64_MIN),
           EM_SHAPE(2), V(1, 0)),
    TO_I64(EM_U8, "argmax", "argmax uint8 extremes", argmax_1, EM_SHAPE(2, 4), V(7, 255, 0, 255, 0, 0, 1, 0), EM_SHAPE(2),
           V(1, 2)),
    TO_I64(EM_I8, "argmax", "argmax int8 extremes", argmax_1, EM_SHAPE(2, 3), V(-128, 127, 127, -128, -128, -127),
           EM_SHAPE(2), V(1, 2)),
    TO_I64(EM_I16, "argmax", "argmax int16 extremes", argmax_1, EM_SHAPE(2, 3), V(-32768, 32767, 32767, -2, -1, -32768),
           EM_SHAPE(2), V(1, 1)),
    TO_I64(EM_U16, "argmax", "argmax uint16 extremes", argmax_1, EM_SHAPE(2, 3), V(32767, 65535, 32768, 0, 32768, 32767),
           EM_SHAPE(2), V(1, 1)),
    /* 70000 ones then 5, 9, 9: index 70001; the float32 case has a NaN at 70001 */
    {"argmax", EM_I64, "argmax over 70003 elements EM_I64", argmax_long, 2,
     {{EM_I64, EM_SHAPE(1), V(1)}, {EM_I64, EM_SHAPE(3), V(5, 9, 9)}}, EM_I64, EM_SHAPE0, V(70001), NULL, 0},
    {"argmax", EM_F32, "argmax over 70003 elements with NaN EM_F32", argmax_long, 2,
     {{EM_F32, EM_SHAPE(1), V(1)}, {EM_F32, EM_SHAPE(3), V(5, NAN, NAN)}}, EM_I64, EM_SHAPE0, V(70001), NULL, 0},

    EACH_NUMERIC(TO_I64, "argmin", "argmin axis 1, ties [2,3]", argmin_1, EM_SHAPE(2, 3), V(3, 1, 1, 4, 6, 4), EM_SHAPE(2),
                 V(1, 0)),
    EACH_NUMERIC(TO_I64, "argmin", "argmin axis 0 [2,3]", argmin_0, EM_SHAPE(2, 3), V(3, 1, 7, 4, 0, 7), EM_SHAPE(3),
                 V(0, 1, 0)),
    EACH_NUMERIC(TO_I64, "argmin", "argmin axis 1 [2,3,2]", argmin_1, EM_SHAPE(2, 3, 2), X232, EM_SHAPE(2, 2),
                 V(0, 0, 0, 0)),
    EACH_NUMERIC(TO_I64_REF, "argmin", "argmin long rows, ties [2,192]", argmin_last, EM_SHAPE(2, 192), V(G384(LONG)),
                 EM_SHAPE(2), ref_argmin_last),
    TO_I64(EM_F32, "argmin", "argmin with NaN", argmin_1, EM_SHAPE(3, 4),
           V(1, NAN, -3, NAN, NAN, -9, -9, 1, INFINITY, INFINITY, INFINITY, INFINITY), EM_SHAPE(3), V(1, 0, 0)),
    TO_I64(EM_F64, "argmin", "argmin with NaN", argmin_1, EM_SHAPE(3, 4),
           V(1, NAN, -3, NAN, NAN, -9, -9, 1, INFINITY, INFINITY, INFINITY, INFINITY), EM_SHAPE(3), V(1, 0, 0)),
    TO_I64_REF(EM_F32, "argmin", "argmin long rows with NaN [2,192]", argmin_last, EM_SHAPE(2, 192), V(G384(LONG_NAN)),
               EM_SHAPE(2), ref_argmin_last),
    TO_I64_REF(EM_F64, "argmin", "argmin long rows with NaN [2,192]", argmin_last, EM_SHAPE(2, 192), V(G384(LONG_NAN)),
               EM_SHAPE(2), ref_argmin_last),
    EACH_NARROW(TO_I64_REF, "argmin", "argmin long rows with NaN [2,192]", argmin_last, EM_SHAPE(2, 192),
                V(G384(LONG_NAN)), EM_SHAPE(2), ref_argmin_last),
    TO_I64(EM_I32, "argmin", "argmin int32 extremes", argmin_1, EM_SHAPE(2, 3),
           V(2147483647, -2147483648.0, -2147483648.0, 2147483647, 2147483647, 2147483646), EM_SHAPE(2), V(1, 2)),
    TO_I64(EM_I64, "argmin", "argmin int64 extremes", argmin_1, EM_SHAPE(2, 3), V(TWO62, I64_MIN, -1, TWO62, TWO62, TWO62),
           EM_SHAPE(2), V(1, 0)),
    TO_I64(EM_U8, "argmin", "argmin uint8 extremes", argmin_1, EM_SHAPE(2, 4), V(7, 0, 255, 0, 255, 255, 254, 255),
           EM_SHAPE(2), V(1, 2)),
    TO_I64(EM_I8, "argmin", "argmin int8 extremes", argmin_1, EM_SHAPE(2, 3), V(127, -128, -128, 127, 127, 126),
           EM_SHAPE(2), V(1, 2)),
    TO_I64(EM_I16, "argmin", "argmin int16 extremes", argmin_1, EM_SHAPE(2, 3), V(32767, -32768, -32768, 1, 0, 32767),
           EM_SHAPE(2), V(1, 1)),
    TO_I64(EM_U16, "argmin", "argmin uint16 extremes", argmin_1, EM_SHAPE(2, 3), V(32768, 0, 65535, 65535, 32767, 32768),
           EM_SHAPE(2), V(1, 1)),
    /* 70000 fives then 5, 9, 1: index 70002; 70000 x -2 then -2, 9, -1: the first of the ties across the chunks, 0 */
    {"argmin", EM_I32, "argmin over 70003 elements EM_I32", argmin_long, 2,
     {{EM_I32, EM_SHAPE(1), V(5)}, {EM_I32, EM_SHAPE(3), V(5, 9, 1)}}, EM_I64, EM_SHAPE0, V(70002), NULL, 0},
    {"argmin", EM_F64, "argmin over 70003 equal-prefix elements EM_F64", argmin_long, 2,
     {{EM_F64, EM_SHAPE(1), V(-2)}, {EM_F64, EM_SHAPE(3), V(-2, 9, -1)}}, EM_I64, EM_SHAPE0, V(0), NULL, 0},
    {.fn = NULL},
};
