/* The fill family's forward cases (run by test_ops.c on every device) and
 * gradient-check cases (test_gradcheck.c). */
#include "common.h"

/* Expected values by hand: fill_like's value converted to the dtype the way
 * Ember converts a double everywhere (float32 rounds, overflowing to inf;
 * integers truncate toward zero and saturate at their range, NaN becoming 0;
 * bool is value != 0), and count_elements' product of the counted dimensions
 * (converted the same way). */

/* fill_like: the public em_fill_like is the op. */
#define FILL_FN(name, value) \
    static em_tensor *name(em_tensor *const *in) { return em_fill_like(in[0], value); }
FILL_FN(fill_0, 0)
FILL_FN(fill_1, 1)
FILL_FN(fill_2_5, 2.5)
FILL_FN(fill_neg_2_75, -2.75)
FILL_FN(fill_2_75, 2.75)
FILL_FN(fill_neg_7, -7)
FILL_FN(fill_100, 100)
FILL_FN(fill_200, 200)
FILL_FN(fill_300, 300)
FILL_FN(fill_neg_5, -5)
FILL_FN(fill_half, 0.5)
FILL_FN(fill_1e10, 1e10)
FILL_FN(fill_neg_1e10, -1e10)
FILL_FN(fill_neg_1e30, -1e30)
FILL_FN(fill_2p40, 1099511627776.0)
FILL_FN(fill_big, -1.25e300)
FILL_FN(fill_nan, NAN)
FILL_FN(fill_70000, 70000)
FILL_FN(fill_50256, 50256)
/* of a transposed (strided) view: the view's shape */
static em_tensor *fill_t_3(em_tensor *const *in) { return em_fill_like(em_transpose(in[0], EM_ALL_AXES), 3); }

/* count_elements through em__count (op.h), which em_mean divides by; the axes as a bitmask. */
#define COUNT_FN(name, mask) \
    static em_tensor *name(em_tensor *const *in) { return em__count(in[0], mask); }
COUNT_FN(count_none, 0)
COUNT_FN(count_0, 1)
COUNT_FN(count_1, 2)
COUNT_FN(count_02, 5)
COUNT_FN(count_all3, 7)
/* through the op's public user: mean = sum / count */
static em_tensor *mean_1(em_tensor *const *in) { return em_mean(in[0], EM_AXES(1), false); }
/* a [1] broadcast to [20,15] (a stride-0 view): 300 elements */
static em_tensor *count_300(em_tensor *const *in) { return em__count(em_broadcast_to(in[0], EM_SHAPE(20, 15)), 3); }

static em_tensor *fill_nan_c(em_tensor *const *in) { return (fill_nan(in)); }
static em_tensor *fill_1e40_c(em_tensor *const *in) { return (em_fill_like(in[0], 1e40)); }
static em_tensor *fill_neg_inf_c(em_tensor *const *in) { return (em_fill_like(in[0], -INFINITY)); }
static em_tensor *mean_1_c(em_tensor *const *in) { return (mean_1(in)); }

#define TOL_OF(dt) ((dt) == EM_F32 ? 1e-6 : 1e-12)
/* One input of dtype dt; the output of dt too (both ops keep the dtype). */
#define F1(op, dt, label, fn, ishape, ivals, oshape, expect) \
    {op, dt, label " " #dt, fn, 1, {{dt, ishape, ivals}}, dt, oshape, expect, NULL, TOL_OF(dt)}
/* expect for the numeric dtypes, expect_bool for bool (the same count or value != 0) */
#define PICK_EM_F32(e, eb) e
#define PICK_EM_F64(e, eb) e
#define PICK_EM_I32(e, eb) e
#define PICK_EM_I64(e, eb) e
#define PICK_EM_U8(e, eb) e
#define PICK_EM_I8(e, eb) e
#define PICK_EM_I16(e, eb) e
#define PICK_EM_U16(e, eb) e
#define PICK_EM_BOOL(e, eb) eb
#define F1B(op, dt, label, fn, ishape, ivals, oshape, expect, expect_bool) \
    F1(op, dt, label, fn, ishape, ivals, oshape, PICK_##dt(expect, expect_bool))
#define EACH_ALL(M, ...)                                                                                            \
    M("fill_like", EM_F32, __VA_ARGS__), M("fill_like", EM_F64, __VA_ARGS__), M("fill_like", EM_I32, __VA_ARGS__), \
        M("fill_like", EM_I64, __VA_ARGS__), M("fill_like", EM_U8, __VA_ARGS__), M("fill_like", EM_BOOL, __VA_ARGS__), \
        EACH_SMALL_INT(M, "fill_like", __VA_ARGS__)
/* int8, int16, uint16 (values valid in int8) */
#define EACH_SMALL_INT(M, op, ...) M(op, EM_I8, __VA_ARGS__), M(op, EM_I16, __VA_ARGS__), M(op, EM_U16, __VA_ARGS__)
#define EACH_ALL_COUNT(M, ...)                                                                                     \
    M("count_elements", EM_F32, __VA_ARGS__), M("count_elements", EM_F64, __VA_ARGS__),                            \
        M("count_elements", EM_I32, __VA_ARGS__), M("count_elements", EM_I64, __VA_ARGS__),                        \
        M("count_elements", EM_U8, __VA_ARGS__), M("count_elements", EM_BOOL, __VA_ARGS__),                       \
        EACH_SMALL_INT(M, "count_elements", __VA_ARGS__)
#define X6 V(1, 0, 1, 0, 1, 1)
#define X24 V(1, 0, 1, 0, 1, 1, 0, 0, 1, 1, 1, 0, 1, 0, 1, 0, 1, 1, 0, 0, 1, 1, 1, 0)
#define SIX(v) V(v, v, v, v, v, v)

const fw_case fw_cases_fill[] = {
    /* ---- fill_like: every dtype ---- */
    EACH_ALL(F1, "fill_like 1 [2,3]", fill_1, EM_SHAPE(2, 3), X6, EM_SHAPE(2, 3), SIX(1)),
    EACH_ALL(F1, "fill_like 0 [2,3]", fill_0, EM_SHAPE(2, 3), X6, EM_SHAPE(2, 3), SIX(0)),
    EACH_ALL(F1B, "fill_like 3 of a transposed view [2,3]^T", fill_t_3, EM_SHAPE(2, 3), X6, EM_SHAPE(3, 2), SIX(3), SIX(1)),
    EACH_ALL(F1, "fill_like of an empty [0,3]", fill_1, EM_SHAPE(0, 3), V(0), EM_SHAPE(0, 3), V(0)),
    EACH_ALL(F1B, "fill_like of a scalar", fill_100, EM_SHAPE0, V(1), EM_SHAPE0, V(100), V(1)),
    /* per dtype: the value's conversion */
    F1("fill_like", EM_F32, "fill_like 2.5", fill_2_5, EM_SHAPE(2, 3), X6, EM_SHAPE(2, 3), SIX(2.5)),
    F1("fill_like", EM_F32, "fill_like -2.75", fill_neg_2_75, EM_SHAPE(3), V(1, 2, 3), EM_SHAPE(3), V(-2.75, -2.75, -2.75)),
    F1("fill_like", EM_F32, "fill_like NaN", fill_nan_c, EM_SHAPE(2), V(1, 2), EM_SHAPE(2), V(NAN, NAN)),
    F1("fill_like", EM_F32, "fill_like 1e40 overflows to inf", fill_1e40_c, EM_SHAPE(2), V(1, 2), EM_SHAPE(2),
       V(INFINITY, INFINITY)),
    F1("fill_like", EM_F64, "fill_like -1.25e300", fill_big, EM_SHAPE(2, 2), V(1, 2, 3, 4), EM_SHAPE(2, 2),
       V(-1.25e300, -1.25e300, -1.25e300, -1.25e300)),
    F1("fill_like", EM_F64, "fill_like -inf", fill_neg_inf_c, EM_SHAPE(2), V(1, 2), EM_SHAPE(2), V(-INFINITY, -INFINITY)),
    F1("fill_like", EM_F64, "fill_like NaN", fill_nan_c, EM_SHAPE(2), V(1, 2), EM_SHAPE(2), V(NAN, NAN)),
    F1("fill_like", EM_I32, "fill_like -7", fill_neg_7, EM_SHAPE(2, 3), X6, EM_SHAPE(2, 3), SIX(-7)),
    F1("fill_like", EM_I32, "fill_like 2.75 truncates", fill_2_75, EM_SHAPE(2), V(5, 6), EM_SHAPE(2), V(2, 2)),
    F1("fill_like", EM_I32, "fill_like -2.75 truncates toward 0", fill_neg_2_75, EM_SHAPE(2), V(5, 6), EM_SHAPE(2),
       V(-2, -2)),
    F1("fill_like", EM_I32, "fill_like 1e10 saturates", fill_1e10, EM_SHAPE(2), V(5, 6), EM_SHAPE(2),
       V(2147483647, 2147483647)),
    F1("fill_like", EM_I32, "fill_like -1e10 saturates", fill_neg_1e10, EM_SHAPE(2), V(5, 6), EM_SHAPE(2),
       V(-2147483648.0, -2147483648.0)),
    F1("fill_like", EM_I32, "fill_like NaN is 0", fill_nan, EM_SHAPE(2), V(5, 6), EM_SHAPE(2), V(0, 0)),
    F1("fill_like", EM_I64, "fill_like 2^40", fill_2p40, EM_SHAPE(2, 3), X6, EM_SHAPE(2, 3), SIX(1099511627776.0)),
    F1("fill_like", EM_I64, "fill_like -1e30 saturates", fill_neg_1e30, EM_SHAPE(2), V(5, 6), EM_SHAPE(2),
       V(-9223372036854775808.0, -9223372036854775808.0)),
    F1("fill_like", EM_I64, "fill_like -7", fill_neg_7, EM_SHAPE(3), V(5, 6, 7), EM_SHAPE(3), V(-7, -7, -7)),
    F1("fill_like", EM_U8, "fill_like 200", fill_200, EM_SHAPE(2, 3), X6, EM_SHAPE(2, 3), SIX(200)),
    F1("fill_like", EM_U8, "fill_like 300 saturates", fill_300, EM_SHAPE(2), V(5, 6), EM_SHAPE(2), V(255, 255)),
    F1("fill_like", EM_U8, "fill_like -5 saturates", fill_neg_5, EM_SHAPE(2), V(5, 6), EM_SHAPE(2), V(0, 0)),
    F1("fill_like", EM_U8, "fill_like 2.75 truncates", fill_2_75, EM_SHAPE(2), V(5, 6), EM_SHAPE(2), V(2, 2)),
    F1("fill_like", EM_I8, "fill_like 200 saturates", fill_200, EM_SHAPE(2, 3), X6, EM_SHAPE(2, 3), SIX(127)),
    F1("fill_like", EM_I8, "fill_like -1e10 saturates", fill_neg_1e10, EM_SHAPE(2), V(5, 6), EM_SHAPE(2), V(-128, -128)),
    F1("fill_like", EM_I8, "fill_like -2.75 truncates toward 0", fill_neg_2_75, EM_SHAPE(2), V(5, 6), EM_SHAPE(2),
       V(-2, -2)),
    F1("fill_like", EM_I8, "fill_like NaN is 0", fill_nan, EM_SHAPE(2), V(5, 6), EM_SHAPE(2), V(0, 0)),
    F1("fill_like", EM_I16, "fill_like 70000 saturates", fill_70000, EM_SHAPE(2), V(5, 6), EM_SHAPE(2), V(32767, 32767)),
    F1("fill_like", EM_I16, "fill_like -1e30 saturates", fill_neg_1e30, EM_SHAPE(2), V(5, 6), EM_SHAPE(2),
       V(-32768, -32768)),
    F1("fill_like", EM_I16, "fill_like 2.75 truncates", fill_2_75, EM_SHAPE(3), V(5, 6, 7), EM_SHAPE(3), V(2, 2, 2)),
    F1("fill_like", EM_U16, "fill_like 50256", fill_50256, EM_SHAPE(2, 3), X6, EM_SHAPE(2, 3), SIX(50256)),
    F1("fill_like", EM_U16, "fill_like 70000 saturates", fill_70000, EM_SHAPE(2), V(5, 6), EM_SHAPE(2), V(65535, 65535)),
    F1("fill_like", EM_U16, "fill_like -5 saturates", fill_neg_5, EM_SHAPE(2), V(5, 6), EM_SHAPE(2), V(0, 0)),
    F1("fill_like", EM_BOOL, "fill_like 0.5 is true", fill_half, EM_SHAPE(2, 3), X6, EM_SHAPE(2, 3), SIX(1)),
    F1("fill_like", EM_BOOL, "fill_like -7 is true", fill_neg_7, EM_SHAPE(2), V(0, 1), EM_SHAPE(2), V(1, 1)),

    /* ---- count_elements: every dtype (bool: count != 0) ---- */
    EACH_ALL_COUNT(F1B, "count_elements axes (0,2) of [2,3,4]", count_02, EM_SHAPE(2, 3, 4), X24, EM_SHAPE0, V(8), V(1)),
    EACH_ALL_COUNT(F1B, "count_elements all axes of [2,3,4]", count_all3, EM_SHAPE(2, 3, 4), X24, EM_SHAPE0, V(24), V(1)),
    EACH_ALL_COUNT(F1, "count_elements no axes of [2,3]", count_none, EM_SHAPE(2, 3), X6, EM_SHAPE0, V(1)),
    EACH_ALL_COUNT(F1, "count_elements empty axis 0 of [0,3]", count_0, EM_SHAPE(0, 3), V(0), EM_SHAPE0, V(0)),
    EACH_ALL_COUNT(F1B, "count_elements axis 1 of an empty [0,3]", count_1, EM_SHAPE(0, 3), V(0), EM_SHAPE0, V(3), V(1)),
    EACH_ALL_COUNT(F1, "count_elements of a scalar", count_none, EM_SHAPE0, V(1), EM_SHAPE0, V(1)),
    F1("count_elements", EM_I32, "count_elements axis 1 of [2,3,4]", count_1, EM_SHAPE(2, 3, 4), X24, EM_SHAPE0, V(3)),
    /* 300 saturates at uint8's 255; a stride-0 input */
    F1("count_elements", EM_U8, "count_elements of 300 saturates", count_300, EM_SHAPE(1), V(1), EM_SHAPE0, V(255)),
    F1("count_elements", EM_I8, "count_elements of 300 saturates", count_300, EM_SHAPE(1), V(1), EM_SHAPE0, V(127)),
    F1("count_elements", EM_U16, "count_elements of 300", count_300, EM_SHAPE(1), V(1), EM_SHAPE0, V(300)),
    F1("count_elements", EM_I32, "count_elements of a broadcast [20,15]", count_300, EM_SHAPE(1), V(1), EM_SHAPE0, V(300)),
    /* through em_mean: [1,2,3] / 3 and [4,5,7] / 3 (integers truncate: 16 / 3 = 5); an empty float mean is
     * 0 / 0 = NaN, an integer one 0 (division by 0 is 0) */
    F1("count_elements", EM_F64, "count_elements through mean", mean_1, EM_SHAPE(2, 3), V(1, 2, 3, 4, 5, 7), EM_SHAPE(2),
       V(2, 16.0 / 3)),
    F1("count_elements", EM_F32, "count_elements through mean", mean_1, EM_SHAPE(2, 3), V(1, 2, 3, 4, 5, 7), EM_SHAPE(2),
       V(2, 16.0 / 3)),
    F1("count_elements", EM_I32, "count_elements through mean", mean_1, EM_SHAPE(2, 3), V(1, 2, 3, 4, 5, 7), EM_SHAPE(2),
       V(2, 5)),
    F1("count_elements", EM_F64, "count_elements through an empty mean", mean_1_c, EM_SHAPE(2, 0), V(0), EM_SHAPE(2),
       V(NAN, NAN)),
    F1("count_elements", EM_I64, "count_elements through an empty mean", mean_1, EM_SHAPE(2, 0), V(0), EM_SHAPE(2),
       V(0, 0)),
    {.fn = NULL},
};

const gc_case gc_cases_fill[] = {
    {.fn = NULL},
};
