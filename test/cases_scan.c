/* The scans' forward cases (test/test_ops.c, every device) and float64
 * gradient cases (test/test_gradcheck.c). Expected values are NumPy's
 * (np.cumsum, np.cumprod, flipped for reverse and shifted for exclusive),
 * written by tools/ops_reference.py into test/data/ops1_reference.h. Inputs are
 * small integers, so every dtype's results are exact. */
#include "common.h"
#include "data/ops1_reference.h"

static em_tensor *cumsum_1(em_tensor *const *in) { return em_cumsum(in[0], 1, false, false); }
static em_tensor *cumprod_1(em_tensor *const *in) { return em_cumprod(in[0], 1, false, false); }
static em_tensor *cumsum_last_excl(em_tensor *const *in) { return em_cumsum(in[0], -1, true, false); }
static em_tensor *cumsum_0_rev(em_tensor *const *in) { return em_cumsum(in[0], 0, false, true); }
static em_tensor *cumsum_1_excl_rev(em_tensor *const *in) { return em_cumsum(in[0], 1, true, true); }
static em_tensor *cumprod_last_excl_rev(em_tensor *const *in) { return em_cumprod(in[0], -1, true, true); }
static em_tensor *cumprod_0_excl(em_tensor *const *in) { return em_cumprod(in[0], 0, true, false); }
static em_tensor *cumsum_0(em_tensor *const *in) { return em_cumsum(in[0], 0, false, false); }
static em_tensor *cumprod_0_rev(em_tensor *const *in) { return em_cumprod(in[0], 0, false, true); }
static em_tensor *cumprod_0(em_tensor *const *in) { return em_cumprod(in[0], 0, false, false); }
/* a transposed (strided) input: the dispatcher makes it contiguous */
static em_tensor *cumsum_t_last(em_tensor *const *in) {
    return em_cumsum(em_transpose(in[0], EM_AXES(1, 0)), -1, false, false);
}

#define S(...) EM_SHAPE(__VA_ARGS__)
/* op along axis 1 of x234 (u234 for uint8 and cumprod) in dtype DT */
#define AX1(op, DT, sfx, x) \
    {#op, DT, #op " " #sfx " axis 1 [2,3,4]", op##_1, 1, {{DT, S(2, 3, 4), x}}, DT, S(2, 3, 4), ops1_##op##_ax1_##sfx, \
     NULL, 0}
/* the same for a dtype whose results (small integers) are those of dtype suffix `as` */
#define AX1_AS(op, DT, sfx, x, as) \
    {#op, DT, #op " " #sfx " axis 1 [2,3,4]", op##_1, 1, {{DT, S(2, 3, 4), x}}, DT, S(2, 3, 4), ops1_##op##_ax1_##as, \
     NULL, 0}
#define F64(op, what, fn, shape, x, y) {#op, EM_F64, #op " f64 " what, fn, 1, {{EM_F64, shape, x}}, EM_F64, shape, y, NULL, 0}

const fw_case fw_cases_scan[] = {
    AX1(cumsum, EM_F32, f32, ops1_x234), AX1(cumsum, EM_F64, f64, ops1_x234), AX1(cumsum, EM_I32, i32, ops1_x234),
    AX1(cumsum, EM_I64, i64, ops1_x234), AX1(cumsum, EM_U8, u8, ops1_u234),
    AX1(cumprod, EM_F32, f32, ops1_u234), AX1(cumprod, EM_F64, f64, ops1_u234), AX1(cumprod, EM_I32, i32, ops1_u234),
    AX1(cumprod, EM_I64, i64, ops1_u234), AX1(cumprod, EM_U8, u8, ops1_u234),
    AX1_AS(cumsum, EM_I8, i8, ops1_x234, i32), AX1_AS(cumsum, EM_I16, i16, ops1_x234, i32),
    AX1_AS(cumsum, EM_U16, u16, ops1_u234, u8), AX1_AS(cumprod, EM_I8, i8, ops1_u234, i32),
    AX1_AS(cumprod, EM_I16, i16, ops1_u234, i32), AX1_AS(cumprod, EM_U16, u16, ops1_u234, u8),
    /* wrapping at the dtype's width (np.cumsum(np.int8([100, 100, -100, -128])) and the like) */
    {"cumsum", EM_I8, "cumsum i8 wraps", cumsum_0, 1, {{EM_I8, S(4), V(100, 100, -100, -128)}}, EM_I8, S(4),
     V(100, -56, 100, -28), NULL, 0},
    {"cumsum", EM_U16, "cumsum u16 wraps", cumsum_0, 1, {{EM_U16, S(3), V(65535, 2, 65535)}}, EM_U16, S(3),
     V(65535, 1, 0), NULL, 0},
    {"cumprod", EM_I16, "cumprod i16 wraps", cumprod_0, 1, {{EM_I16, S(3), V(256, 256, -3)}}, EM_I16, S(3),
     V(256, 0, 0), NULL, 0},
    F64(cumsum, "axis -1 exclusive [2,3,4]", cumsum_last_excl, S(2, 3, 4), ops1_x234, ops1_cumsum_last_excl),
    F64(cumsum, "axis 0 reverse [2,3,4]", cumsum_0_rev, S(2, 3, 4), ops1_x234, ops1_cumsum_ax0_rev),
    F64(cumsum, "axis 1 exclusive reverse [2,3,4]", cumsum_1_excl_rev, S(2, 3, 4), ops1_x234,
        ops1_cumsum_ax1_excl_rev),
    F64(cumprod, "axis -1 exclusive reverse [2,3,4]", cumprod_last_excl_rev, S(2, 3, 4), ops1_u234,
        ops1_cumprod_last_excl_rev),
    F64(cumprod, "axis 0 exclusive [2,3,4]", cumprod_0_excl, S(2, 3, 4), ops1_u234, ops1_cumprod_ax0_excl),
    /* 300 neighbouring lines: a full block and a partial one */
    F64(cumsum, "axis 0 reverse [3,300]", cumsum_0_rev, S(3, 300), ops1_w3x300, ops1_cumsum_w_ax0_rev),
    F64(cumsum, "NaN and infinities carry on [8]", cumsum_0, S(8), ops1_nan_in, ops1_cumsum_nan),
    F64(cumprod, "NaN and infinities carry on, reverse [8]", cumprod_0_rev, S(8), ops1_nan_in, ops1_cumprod_nan_rev),
    {"cumsum", EM_I32, "cumsum i32 wraps", cumsum_0, 1, {{EM_I32, S(4), ops1_i32_big}}, EM_I32, S(4),
     ops1_cumsum_i32_wrap, NULL, 0},
    {"cumprod", EM_U8, "cumprod u8 wraps", cumprod_0, 1, {{EM_U8, S(3), ops1_u8_big}}, EM_U8, S(3),
     ops1_cumprod_u8_wrap, NULL, 0},
    /* x234 viewed as [6,4], transposed: np.cumsum(x.T, axis=-1) */
    {"cumsum", EM_F32, "cumsum f32 axis -1 of a transposed [6,4]", cumsum_t_last, 1, {{EM_F32, S(6, 4), ops1_x234}},
     EM_F32, S(4, 6),
     V(-3, 0, -2, 2, 1, 6, 4, 3, 8, 8, 14, 15, 0, 6, 7, 14, 16, 13, 7, 9, 6, 9, 7, 11), NULL, 0},
    F64(cumsum, "empty [0,3] along axis 0", cumsum_0, S(0, 3), V(0), V(0)),
    F64(cumprod, "empty [2,0] along axis 1", cumprod_1, S(2, 0), V(0), V(0)),
    {.fn = NULL},
};

static em_tensor *cumsum_1_excl(em_tensor *const *in) { return em_cumsum(in[0], 1, true, false); }
static em_tensor *cumprod_last_rev(em_tensor *const *in) { return em_cumprod(in[0], -1, false, true); }
static em_tensor *cumprod_1_excl(em_tensor *const *in) { return em_cumprod(in[0], 1, true, false); }

const gc_case gc_cases_scan[] = {
    {EM_OP_CUMSUM, "cumsum axis 1 [2,3,4]", 1, {S(2, 3, 4)}, cumsum_1, -1, 1, 0, NULL},
    {EM_OP_CUMSUM, "cumsum axis 1 exclusive [3,4]", 1, {S(3, 4)}, cumsum_1_excl, -1, 1, 0, NULL},
    {EM_OP_CUMSUM, "cumsum axis 0 reverse [3,2]", 1, {S(3, 2)}, cumsum_0_rev, -1, 1, 0, NULL},
    {EM_OP_CUMPROD, "cumprod axis 1 [2,3,4]", 1, {S(2, 3, 4)}, cumprod_1, 0.5, 1.5, 0, NULL},
    {EM_OP_CUMPROD, "cumprod axis -1 reverse [3,4]", 1, {S(3, 4)}, cumprod_last_rev, -1.5, -0.5, 0, NULL},
    {EM_OP_CUMPROD, "cumprod axis 1 exclusive [2,4]", 1, {S(2, 4)}, cumprod_1_excl, 0.5, 1.5, 0, NULL},
    {.fn = NULL},
};
