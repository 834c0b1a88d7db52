/* Gradient-check cases of the shape ops (test/test_gradcheck.c runs them). */
#include "common.h"

static em_tensor *reshape_(em_tensor *const *in) { return em_reshape(in[0], EM_SHAPE(3, -1)); }
static em_tensor *reshape_strided(em_tensor *const *in) {
    return em_reshape(em_transpose(in[0], EM_ALL_AXES), EM_SHAPE(6));
}
static em_tensor *transpose_(em_tensor *const *in) { return em_transpose(in[0], EM_AXES(2, 0, 1)); }
static em_tensor *slice_(em_tensor *const *in) { return em_slice(in[0], (int64_t[]){1, 2}, (int64_t[]){2, -1}); }
static em_tensor *broadcast_(em_tensor *const *in) { return em_broadcast_to(in[0], EM_SHAPE(2, 3, 4)); }
static em_tensor *concat_(em_tensor *const *in) { return em_concat(3, in, 1); }
static em_tensor *gather_(em_tensor *const *in) { return em_gather(in[0], in[1], 0); }
static em_tensor *gather_axis1(em_tensor *const *in) { return em_gather(in[0], in[1], -2); }
static em_tensor *gather_grad_(em_tensor *const *in) {
    em_attrs a = {.ni = 2, .i = {0, 5}};
    return em__apply(EM_OP_GATHER_GRAD, 2, in, &a);
}
static em_tensor *pad_(em_tensor *const *in) { return em_pad(in[0], (int64_t[]){1, 0, 2, 1}, 0.5); }
static em_tensor *tile_(em_tensor *const *in) { return em_tile(in[0], (int64_t[]){2, 1, 3}); }
static em_tensor *split_(em_tensor *const *in) {
    em_tensor *p[2];
    return em_split(in[0], 2, 1, p) ? NULL : em_mul(p[0], p[1]);
}
static em_tensor *squeeze_(em_tensor *const *in) { return em_squeeze(em_expand_dims(in[0], 1), EM_ALL_AXES); }

/* Integer indices with a repeat, for gather and gather_grad. */
static em_tensor *rows_3(int i) { return i == 1 ? em_tensor_from(EM_I32, EM_SHAPE(3), (int32_t[]){2, 0, 2}) : NULL; }
static em_tensor *rows_2x2(int i) {
    return i == 1 ? em_tensor_from(EM_I64, EM_SHAPE(2, 2), (int64_t[]){1, 1, 0, 2}) : NULL;
}

const gc_case gc_cases_shape[] = {
    {EM_OP_RESHAPE, "reshape [2,3] -> [3,-1]", 1, {EM_SHAPE(2, 3)}, reshape_, -1, 1, 0, NULL},
    {EM_OP_RESHAPE, "reshape of a transpose [2,3]", 1, {EM_SHAPE(2, 3)}, reshape_strided, -1, 1, 0, NULL},
    {EM_OP_TRANSPOSE, "transpose (2,0,1) [2,3,4]", 1, {EM_SHAPE(2, 3, 4)}, transpose_, -1, 1, 0, NULL},
    {EM_OP_SLICE, "slice [4,5] begin (1,2) size (2,-1)", 1, {EM_SHAPE(4, 5)}, slice_, -1, 1, 0, NULL},
    {EM_OP_SLICE, "split [2,4] into 2", 1, {EM_SHAPE(2, 4)}, split_, -1, 1, 0, NULL},
    {EM_OP_BROADCAST_TO, "broadcast_to [3,1] -> [2,3,4]", 1, {EM_SHAPE(3, 1)}, broadcast_, -1, 1, 0, NULL},
    {EM_OP_RESHAPE, "squeeze(expand_dims) [2,3]", 1, {EM_SHAPE(2, 3)}, squeeze_, -1, 1, 0, NULL},
    {EM_OP_CONCAT, "concat axis 1 [2,1]+[2,3]+[2,2]", 3, {EM_SHAPE(2, 1), EM_SHAPE(2, 3), EM_SHAPE(2, 2)}, concat_, -1,
     1, 0, NULL},
    {EM_OP_GATHER, "gather axis 0 [4,2] by [3]", 2, {EM_SHAPE(4, 2), EM_SHAPE(3)}, gather_, -1, 1, 2u, rows_3},
    {EM_OP_GATHER, "gather axis -2 [2,3,2] by [2,2]", 2, {EM_SHAPE(2, 3, 2), EM_SHAPE(2, 2)}, gather_axis1, -1, 1, 2u,
     rows_2x2},
    {EM_OP_GATHER_GRAD, "gather_grad [3,2] into [5,2]", 2, {EM_SHAPE(3, 2), EM_SHAPE(3)}, gather_grad_, -1, 1, 2u,
     rows_3},
    {EM_OP_PAD, "pad [2,3] by (1,0,2,1)", 1, {EM_SHAPE(2, 3)}, pad_, -1, 1, 0, NULL},
    {EM_OP_TILE, "tile [2,3,2] by (2,1,3)", 1, {EM_SHAPE(2, 3, 2)}, tile_, -1, 1, 0, NULL},
    {.fn = NULL},
};

/* ---- forward cases ----
 * Shape ops move values without arithmetic, so most cases run unchanged on
 * all six dtypes with the small integers of XS (0..9, valid in every dtype; a
 * bool input holds v != 0). Expected values are literals (the NumPy
 * expression beside each, with x(*shape, off=0) = XS[off:off+n].reshape(shape)),
 * converted to the output dtype the way the runner converts inputs (bool:
 * v != 0) by the case's ref. Integer and bool outputs are compared exactly,
 * and so are the float ones (tolerance 0): nothing is rounded. */

static const double XS[24] = {3, 0, 7, 1, 9, 4, 2, 8, 0, 5, 6, 1, 9, 3, 4, 0, 7, 2, 5, 1, 8, 6, 0, 9};
static const double NONE[1] = {0}; /* the values of an empty tensor (never read) */

/* v as an element of dtype d holds it (the runner's input conversion). */
static double as_dtype(em_dtype d, double v) {
    switch (d) {
    case EM_F32: return (float)v;
    case EM_I32: return (int32_t)v;
    case EM_I64: return (double)(int64_t)v;
    case EM_U8: return (uint8_t)v;
    case EM_I8: return (int8_t)v;
    case EM_I16: return (int16_t)v;
    case EM_U16: return (uint16_t)v;
    case EM_BOOL: return v != 0;
    default: return v;
    }
}
static void lit(const fw_case *c, const double *src, double *e) {
    for (int64_t i = 0; i < em_shape_numel(c->out_shape); i++) e[i] = as_dtype(c->out_dtype, src[i]);
}
/* NAME_ref: the literal expected values NAME_e in the case's output dtype. */
#define EXPECT(NAME, ...)                                                                                              \
    static const double NAME##_e[] = {__VA_ARGS__};                                                                    \
    static void NAME##_ref(const fw_case *c, double *e) { lit(c, NAME##_e, e); }

/* One row: op `OPN`, case NAME (its fn f_NAME, its ref NAME_ref), all inputs
 * and the output of dtype DT unless given. IN(DT, shape, values). */
#define IN(DT, S, X) {DT, S, X}
#define ROW(OPN, NAME, DT, OUT_DT, OS, NIN, ...)                                                                       \
    {OPN, DT, OPN " " #NAME " " #DT, f_##NAME, NIN, {__VA_ARGS__}, OUT_DT, OS, NULL, NAME##_ref, 0}
#define ROW1(DT, OPN, NAME, OS, S0, X0) ROW(OPN, NAME, DT, DT, OS, 1, IN(DT, S0, X0))
#define ROW2(DT, OPN, NAME, OS, S0, X0, S1, X1) ROW(OPN, NAME, DT, DT, OS, 2, IN(DT, S0, X0), IN(DT, S1, X1))
#define ROW3(DT, OPN, NAME, OS, S0, X0, S1, X1, S2, X2)                                                                \
    ROW(OPN, NAME, DT, DT, OS, 3, IN(DT, S0, X0), IN(DT, S1, X1), IN(DT, S2, X2))
/* params of dtype DT, indices of dtype IDT */
#define ROWI(DT, OPN, NAME, OS, S0, X0, IDT, S1, X1) ROW(OPN, NAME, DT, DT, OS, 2, IN(DT, S0, X0), IN(IDT, S1, X1))
/* gather_grad through the tape: params, indices, the gradient of gather's output */
#define ROWG(DT, OPN, NAME, OS, S0, S1, X1, S2, X2)                                                                    \
    ROW(OPN, NAME, DT, DT, OS, 3, IN(DT, S0, XS), IN(EM_I32, S1, X1), IN(DT, S2, X2))
/* A row per dtype of a set. */
#define NUMERIC_ROWS(R, ...)                                                                                               \
    R(EM_F32, __VA_ARGS__), R(EM_F64, __VA_ARGS__), R(EM_I32, __VA_ARGS__), R(EM_I64, __VA_ARGS__), R(EM_U8, __VA_ARGS__), \
        R(EM_I8, __VA_ARGS__), R(EM_I16, __VA_ARGS__), R(EM_U16, __VA_ARGS__)
#define ALL_ROWS(R, ...) NUMERIC_ROWS(R, __VA_ARGS__), R(EM_BOOL, __VA_ARGS__)

/* reshape */
static em_tensor *f_reshape_3x(em_tensor *const *in) { return em_reshape(in[0], EM_SHAPE(3, -1)); }
EXPECT(reshape_3x, 3, 0, 7, 1, 9, 4) /* x(2,3).reshape(3,-1): the same order */
static em_tensor *f_reshape_of_transpose(em_tensor *const *in) {
    return em_reshape(em_transpose(in[0], EM_ALL_AXES), EM_SHAPE(6));
}
EXPECT(reshape_of_transpose, 3, 1, 0, 9, 7, 4) /* x(2,3).T.reshape(6) */
static em_tensor *f_reshape_of_slice(em_tensor *const *in) {
    return em_reshape(em_slice(in[0], (int64_t[]){0, 1}, (int64_t[]){3, 2}), EM_SHAPE(2, 3));
}
EXPECT(reshape_of_slice, 0, 7, 4, 2, 5, 6) /* x(3,4)[:, 1:3].reshape(2,3) */
static em_tensor *f_reshape_empty(em_tensor *const *in) { return em_reshape(in[0], EM_SHAPE(3, 0, 2)); }
EXPECT(reshape_empty, 0) /* [0,3] -> [3,0,2]: no elements */

/* transpose (a view: the runner reads it through a copy) */
static em_tensor *f_transpose_201(em_tensor *const *in) { return em_transpose(in[0], EM_AXES(2, 0, 1)); }
EXPECT(transpose_201, 3, 1, 2, 5, 0, 9, 8, 6, 7, 4, 0, 1) /* x(2,2,3).transpose(2,0,1) */
static em_tensor *f_transpose_rev(em_tensor *const *in) { return em_transpose(in[0], EM_ALL_AXES); }
EXPECT(transpose_rev, 3, 1, 0, 9, 7, 4) /* x(2,3).T */
static em_tensor *f_transpose_neg(em_tensor *const *in) { return em_transpose(in[0], EM_AXES(-1, 0, -2)); }
EXPECT(transpose_neg, 3, 1, 2, 5, 0, 9, 8, 6, 7, 4, 0, 1) /* perm (-1,0,-2) = (2,0,1) */

/* slice */
static em_tensor *f_slice_rows(em_tensor *const *in) { return em_slice(in[0], (int64_t[]){1, 1}, (int64_t[]){2, -1}); }
EXPECT(slice_rows, 4, 2, 8, 5, 6, 1) /* x(3,4)[1:3, 1:] */
static em_tensor *f_slice_empty(em_tensor *const *in) { return em_slice(in[0], (int64_t[]){1, 0}, (int64_t[]){0, -1}); }
EXPECT(slice_empty, 0) /* x(3,4)[1:1, :]: [0,4] */
static em_tensor *f_slice_at_end(em_tensor *const *in) { return em_slice(in[0], (int64_t[]){0, 4}, (int64_t[]){3, -1}); }
EXPECT(slice_at_end, 0) /* x(3,4)[:, 4:]: [3,0] */
static em_tensor *f_slice_of_slice(em_tensor *const *in) {
    return em_slice(em_slice(in[0], (int64_t[]){1, 0}, (int64_t[]){-1, -1}), (int64_t[]){1, 2}, (int64_t[]){1, 2});
}
EXPECT(slice_of_slice, 6, 1) /* x(3,4)[1:][1:2, 2:4] */

/* broadcast_to */
static em_tensor *f_broadcast_col(em_tensor *const *in) { return em_broadcast_to(in[0], EM_SHAPE(2, 3, 2)); }
EXPECT(broadcast_col, 3, 3, 0, 0, 7, 7, 3, 3, 0, 0, 7, 7) /* np.broadcast_to(x(3,1), (2,3,2)) */
static em_tensor *f_broadcast_scalar(em_tensor *const *in) { return em_broadcast_to(in[0], EM_SHAPE(2, 2)); }
EXPECT(broadcast_scalar, 3, 3, 3, 3) /* np.broadcast_to(3, (2,2)) */

/* stop_gradient: the identity */
static em_tensor *f_stop_gradient_(em_tensor *const *in) { return em_stop_gradient(in[0]); }
EXPECT(stop_gradient_, 3, 0, 7, 1, 9, 4) /* x(2,3) */
static em_tensor *f_stop_gradient_view(em_tensor *const *in) {
    return em_stop_gradient(em_transpose(in[0], EM_ALL_AXES));
}
EXPECT(stop_gradient_view, 3, 1, 0, 9, 7, 4) /* x(2,3).T */

/* concat */
static em_tensor *f_concat_axis1(em_tensor *const *in) { return em_concat(3, in, 1); }
/* np.concatenate([x(2,1), x(2,3,off=2), x(2,2,off=8)], 1) */
EXPECT(concat_axis1, 3, 7, 1, 9, 0, 5, 0, 4, 2, 8, 6, 1)
static em_tensor *f_concat_empty_part(em_tensor *const *in) { return em_concat(3, in, -2); }
/* np.concatenate([x(1,3), x(0,3), x(2,3,off=3)], 0) */
EXPECT(concat_empty_part, 3, 0, 7, 1, 9, 4, 2, 8, 0)
static em_tensor *f_concat_all_empty(em_tensor *const *in) { return em_concat(2, in, 0); }
EXPECT(concat_all_empty, 0) /* [0,2] + [0,2] */
static em_tensor *f_concat_view(em_tensor *const *in) {
    return em_concat(2, (em_tensor *[]){em_transpose(in[0], EM_ALL_AXES), in[1]}, 0);
}
EXPECT(concat_view, 3, 1, 0, 9, 7, 4, 2, 8) /* np.concatenate([x(2,3).T, x(1,2,off=6)], 0) */

/* gather (params of the row's dtype, indices int32, int64, int16 or uint16) */
static const double IDX_202[] = {2, 0, 2}, IDX_1102[] = {1, 1, 0, 2};
static em_tensor *f_gather_rows(em_tensor *const *in) { return em_gather(in[0], in[1], 0); }
EXPECT(gather_rows, 9, 4, 3, 0, 9, 4) /* x(4,2)[[2,0,2]] */
static em_tensor *f_gather_axis1(em_tensor *const *in) { return em_gather(in[0], in[1], -2); }
/* np.take(x(2,3,2), [[1,1],[0,2]], axis=1) */
EXPECT(gather_axis1, 7, 1, 7, 1, 3, 0, 9, 4, 0, 5, 0, 5, 2, 8, 6, 1)
#define f_gather_none f_gather_rows
EXPECT(gather_none, 0) /* x(4,2)[[]]: [0,2] */

/* gather_grad (updates, indices), attrs i[0] axis, i[1] the params' size along it */
static em_tensor *f_gather_grad_rows(em_tensor *const *in) {
    return em__apply(EM_OP_GATHER_GRAD, 2, in, &(em_attrs){.i = {0, 4}, .ni = 2});
}
/* o = np.zeros((4,2)); np.add.at(o, [2,0,2], x(3,2)): the repeated row 2 adds up */
EXPECT(gather_grad_rows, 7, 1, 0, 0, 12, 4, 0, 0)
static em_tensor *f_gather_grad_axis1(em_tensor *const *in) {
    return em__apply(EM_OP_GATHER_GRAD, 2, in, &(em_attrs){.i = {1, 3}, .ni = 2});
}
/* o = np.zeros((2,3,2)); np.add.at(o, (slice(None), [1,1]), x(2,2,2)) */
EXPECT(gather_grad_axis1, 0, 0, 10, 1, 0, 0, 0, 0, 11, 12, 0, 0)
/* reached through the tape: the gradient of gather(params, [2,0,2]) given x(3,2) */
static em_tensor *f_gather_grad_tape(em_tensor *const *in) {
    em_tape *tape = em_tape_begin(false);
    em_tensor *y = em_gather(in[0], in[1], 0), *g = NULL;
    int rc = y ? em_gradients_with(tape, y, in[2], 1, in, &g) : -1;
    em_tape_release(tape);
    return rc ? NULL : g;
}
#define gather_grad_tape_ref gather_grad_rows_ref

/* one_hot (its row's dtype is the indices'; out of range indices give a row of off) */
static em_tensor *f_one_hot_f32(em_tensor *const *in) { return em_one_hot(in[0], 3, 1, 0, EM_F32); }
/* [0,2,-1,3] depth 3: (np.arange(3) == i[..., None]) as 1/0 */
EXPECT(one_hot_f32, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0)
static em_tensor *f_one_hot_i64(em_tensor *const *in) { return em_one_hot(in[0], 3, 5, -2, EM_I64); }
EXPECT(one_hot_i64, -2, 5, -2, 5, -2, -2, -2, -2, 5) /* [1,0,2] depth 3, on 5, off -2 */
static em_tensor *f_one_hot_f64(em_tensor *const *in) { return em_one_hot(in[0], 4, 0.5, -0.25, EM_F64); }
EXPECT(one_hot_f64, -0.25, -0.25, 0.5, -0.25, 0.5, -0.25, -0.25, -0.25) /* [2,0] depth 4, on 0.5, off -0.25 */
static em_tensor *f_one_hot_bool(em_tensor *const *in) { return em_one_hot(in[0], 2, 1, 0, EM_BOOL); }
EXPECT(one_hot_bool, 0, 1, 0, 1, 1, 0) /* [1,1,0] depth 2 */
static em_tensor *f_one_hot_u8(em_tensor *const *in) { return em_one_hot(in[0], 2, 9, 3, EM_U8); }
EXPECT(one_hot_u8, 3, 9, 3, 3, 9, 3) /* [[1],[5],[0]] depth 2, on 9, off 3: [3,1,2] */
static em_tensor *f_one_hot_i32(em_tensor *const *in) { return em_one_hot(in[0], 0, 1, 0, EM_I32); }
EXPECT(one_hot_i32, 0) /* depth 0: [3,0] */
/* token ids as uint16 (past int16's range) and int16 (-1: a row of off) */
static em_tensor *f_one_hot_u16(em_tensor *const *in) { return em_one_hot(in[0], 40001, 1, 0, EM_U16); }
static em_tensor *f_one_hot_i16(em_tensor *const *in) { return em_one_hot(in[0], 2, 1, 0, EM_I16); }
EXPECT(one_hot_i16, 0, 1, 0, 0, 1, 0) /* [1,-1,0] depth 2 */
static void one_hot_u16_ref(const fw_case *c, double *e) {
    for (int64_t i = 0; i < em_shape_numel(c->out_shape); i++) e[i] = i % 40001 == (int64_t)c->in[0].v[i / 40001];
}
#define ONE_HOT(IDT, NAME, OUT_DT, OS, S0, X0) ROW("one_hot", NAME, IDT, OUT_DT, OS, 1, IN(IDT, S0, X0))

/* pad */
static em_tensor *f_pad_2d(em_tensor *const *in) { return em_pad(in[0], (int64_t[]){1, 0, 0, 2}, 8); }
/* np.pad(x(2,3), ((1,0),(0,2)), constant_values=8) */
EXPECT(pad_2d, 8, 8, 8, 8, 8, 3, 0, 7, 8, 8, 1, 9, 4, 8, 8)
static em_tensor *f_pad_3d(em_tensor *const *in) { return em_pad(in[0], (int64_t[]){1, 0, 0, 1, 1, 1}, 8); }
/* np.pad(x(1,2,2), ((1,0),(0,1),(1,1)), constant_values=8) */
EXPECT(pad_3d, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 3, 0, 8, 8, 7, 1, 8, 8, 8, 8, 8)
static em_tensor *f_pad_empty(em_tensor *const *in) { return em_pad(in[0], (int64_t[]){1, 1, 0, 1}, 5); }
EXPECT(pad_empty, 5, 5, 5, 5, 5, 5) /* np.pad(x(0,2), ((1,1),(0,1)), constant_values=5) */
static em_tensor *f_pad_scalar(em_tensor *const *in) { return em_pad(in[0], NULL, 5); }
EXPECT(pad_scalar, 3) /* a scalar has no axes to pad */
static em_tensor *f_pad_view(em_tensor *const *in) {
    return em_pad(em_transpose(in[0], EM_ALL_AXES), (int64_t[]){0, 1, 1, 0}, 6);
}
EXPECT(pad_view, 6, 3, 1, 6, 0, 9, 6, 7, 4, 6, 6, 6) /* np.pad(x(2,3).T, ((0,1),(1,0)), constant_values=6) */

/* tile */
static em_tensor *f_tile_2d(em_tensor *const *in) { return em_tile(in[0], (int64_t[]){2, 3}); }
/* np.tile(x(2,2), (2,3)) */
EXPECT(tile_2d, 3, 0, 3, 0, 3, 0, 7, 1, 7, 1, 7, 1, 3, 0, 3, 0, 3, 0, 7, 1, 7, 1, 7, 1)
static em_tensor *f_tile_3d(em_tensor *const *in) { return em_tile(in[0], (int64_t[]){1, 3, 2}); }
/* np.tile(x(2,1,2), (1,3,2)) */
EXPECT(tile_3d, 3, 0, 3, 0, 3, 0, 3, 0, 3, 0, 3, 0, 7, 1, 7, 1, 7, 1, 7, 1, 7, 1, 7, 1)
static em_tensor *f_tile_zero(em_tensor *const *in) { return em_tile(in[0], (int64_t[]){0, 2}); }
EXPECT(tile_zero, 0) /* np.tile(x(2,2), (0,2)): [0,4] */
static em_tensor *f_tile_scalar(em_tensor *const *in) { return em_tile(in[0], NULL); }
EXPECT(tile_scalar, 3)
static em_tensor *f_tile_view(em_tensor *const *in) { return em_tile(em_transpose(in[0], EM_ALL_AXES), (int64_t[]){1, 2}); }
EXPECT(tile_view, 3, 1, 3, 1, 0, 9, 0, 9, 7, 4, 7, 4) /* np.tile(x(2,3).T, (1,2)) */

const fw_case fw_cases_shape[] = {
    ALL_ROWS(ROW1, "reshape", reshape_3x, EM_SHAPE(3, 2), EM_SHAPE(2, 3), XS),
    ALL_ROWS(ROW1, "reshape", reshape_of_transpose, EM_SHAPE(6), EM_SHAPE(2, 3), XS),
    ALL_ROWS(ROW1, "reshape", reshape_of_slice, EM_SHAPE(2, 3), EM_SHAPE(3, 4), XS),
    ROW1(EM_F32, "reshape", reshape_empty, EM_SHAPE(3, 0, 2), EM_SHAPE(0, 3), NONE),
    ROW1(EM_BOOL, "reshape", reshape_empty, EM_SHAPE(3, 0, 2), EM_SHAPE(0, 3), NONE),
    ALL_ROWS(ROW1, "transpose", transpose_201, EM_SHAPE(3, 2, 2), EM_SHAPE(2, 2, 3), XS),
    ALL_ROWS(ROW1, "transpose", transpose_rev, EM_SHAPE(3, 2), EM_SHAPE(2, 3), XS),
    ROW1(EM_I64, "transpose", transpose_neg, EM_SHAPE(3, 2, 2), EM_SHAPE(2, 2, 3), XS),
    ALL_ROWS(ROW1, "slice", slice_rows, EM_SHAPE(2, 3), EM_SHAPE(3, 4), XS),
    ALL_ROWS(ROW1, "slice", slice_empty, EM_SHAPE(0, 4), EM_SHAPE(3, 4), XS),
    ROW1(EM_F64, "slice", slice_at_end, EM_SHAPE(3, 0), EM_SHAPE(3, 4), XS),
    ROW1(EM_U8, "slice", slice_at_end, EM_SHAPE(3, 0), EM_SHAPE(3, 4), XS),
    ROW1(EM_F32, "slice", slice_of_slice, EM_SHAPE(1, 2), EM_SHAPE(3, 4), XS),
    ROW1(EM_I32, "slice", slice_of_slice, EM_SHAPE(1, 2), EM_SHAPE(3, 4), XS),
    ALL_ROWS(ROW1, "broadcast_to", broadcast_col, EM_SHAPE(2, 3, 2), EM_SHAPE(3, 1), XS),
    ALL_ROWS(ROW1, "broadcast_to", broadcast_scalar, EM_SHAPE(2, 2), EM_SHAPE0, XS),
    ALL_ROWS(ROW1, "stop_gradient", stop_gradient_, EM_SHAPE(2, 3), EM_SHAPE(2, 3), XS),
    ROW1(EM_F32, "stop_gradient", stop_gradient_view, EM_SHAPE(3, 2), EM_SHAPE(2, 3), XS),
    ROW1(EM_BOOL, "stop_gradient", stop_gradient_view, EM_SHAPE(3, 2), EM_SHAPE(2, 3), XS),
    ALL_ROWS(ROW3, "concat", concat_axis1, EM_SHAPE(2, 6), EM_SHAPE(2, 1), XS, EM_SHAPE(2, 3), XS + 2, EM_SHAPE(2, 2), XS + 8),
    ALL_ROWS(ROW3, "concat", concat_empty_part, EM_SHAPE(3, 3), EM_SHAPE(1, 3), XS, EM_SHAPE(0, 3), NONE, EM_SHAPE(2, 3), XS + 3),
    ROW2(EM_F64, "concat", concat_all_empty, EM_SHAPE(0, 2), EM_SHAPE(0, 2), NONE, EM_SHAPE(0, 2), NONE),
    ROW2(EM_I32, "concat", concat_all_empty, EM_SHAPE(0, 2), EM_SHAPE(0, 2), NONE, EM_SHAPE(0, 2), NONE),
    ALL_ROWS(ROW2, "concat", concat_view, EM_SHAPE(4, 2), EM_SHAPE(2, 3), XS, EM_SHAPE(1, 2), XS + 6),
    ALL_ROWS(ROWI, "gather", gather_rows, EM_SHAPE(3, 2), EM_SHAPE(4, 2), XS, EM_I32, EM_SHAPE(3), IDX_202),
    ALL_ROWS(ROWI, "gather", gather_axis1, EM_SHAPE(2, 2, 2, 2), EM_SHAPE(2, 3, 2), XS, EM_I64, EM_SHAPE(2, 2), IDX_1102),
    ROWI(EM_F32, "gather", gather_none, EM_SHAPE(0, 2), EM_SHAPE(4, 2), XS, EM_I64, EM_SHAPE(0), NONE),
    ROWI(EM_BOOL, "gather", gather_none, EM_SHAPE(0, 2), EM_SHAPE(4, 2), XS, EM_I32, EM_SHAPE(0), NONE),
    NUMERIC_ROWS(ROWI, "gather_grad", gather_grad_rows, EM_SHAPE(4, 2), EM_SHAPE(3, 2), XS, EM_I32, EM_SHAPE(3), IDX_202),
    NUMERIC_ROWS(ROWI, "gather_grad", gather_grad_axis1, EM_SHAPE(2, 3, 2), EM_SHAPE(2, 2, 2), XS, EM_I64, EM_SHAPE(2), IDX_1102),
    ROWG(EM_F32, "gather_grad", gather_grad_tape, EM_SHAPE(4, 2), EM_SHAPE(4, 2), EM_SHAPE(3), IDX_202, EM_SHAPE(3, 2), XS),
    ROWG(EM_F64, "gather_grad", gather_grad_tape, EM_SHAPE(4, 2), EM_SHAPE(4, 2), EM_SHAPE(3), IDX_202, EM_SHAPE(3, 2), XS),
    ONE_HOT(EM_I32, one_hot_f32, EM_F32, EM_SHAPE(2, 2, 3), EM_SHAPE(2, 2), V(0, 2, -1, 3)),
    ONE_HOT(EM_I64, one_hot_i64, EM_I64, EM_SHAPE(3, 3), EM_SHAPE(3), V(1, 0, 2)),
    ONE_HOT(EM_I64, one_hot_f64, EM_F64, EM_SHAPE(2, 4), EM_SHAPE(2), V(2, 0)),
    ONE_HOT(EM_I32, one_hot_bool, EM_BOOL, EM_SHAPE(3, 2), EM_SHAPE(3), V(1, 1, 0)),
    ONE_HOT(EM_I64, one_hot_u8, EM_U8, EM_SHAPE(3, 1, 2), EM_SHAPE(3, 1), V(1, 5, 0)),
    ONE_HOT(EM_I32, one_hot_i32, EM_I32, EM_SHAPE(3, 0), EM_SHAPE(3), V(0, 1, 2)),
    ONE_HOT(EM_U16, one_hot_u16, EM_U16, EM_SHAPE(2, 40001), EM_SHAPE(2), V(40000, 7)),
    ONE_HOT(EM_I16, one_hot_i16, EM_I16, EM_SHAPE(3, 2), EM_SHAPE(3), V(1, -1, 0)),
    ROWI(EM_F32, "gather", gather_rows, EM_SHAPE(3, 2), EM_SHAPE(4, 2), XS, EM_U16, EM_SHAPE(3), IDX_202),
    ROWI(EM_I8, "gather", gather_axis1, EM_SHAPE(2, 2, 2, 2), EM_SHAPE(2, 3, 2), XS, EM_I16, EM_SHAPE(2, 2), IDX_1102),
    NUMERIC_ROWS(ROWI, "gather_grad", gather_grad_rows, EM_SHAPE(4, 2), EM_SHAPE(3, 2), XS, EM_U16, EM_SHAPE(3), IDX_202),
    ALL_ROWS(ROW1, "pad", pad_2d, EM_SHAPE(3, 5), EM_SHAPE(2, 3), XS),
    ALL_ROWS(ROW1, "pad", pad_3d, EM_SHAPE(2, 3, 4), EM_SHAPE(1, 2, 2), XS),
    ALL_ROWS(ROW1, "pad", pad_empty, EM_SHAPE(2, 3), EM_SHAPE(0, 2), NONE),
    ROW1(EM_F64, "pad", pad_scalar, EM_SHAPE0, EM_SHAPE0, XS),
    ROW1(EM_I32, "pad", pad_scalar, EM_SHAPE0, EM_SHAPE0, XS),
    ROW1(EM_F32, "pad", pad_view, EM_SHAPE(4, 3), EM_SHAPE(2, 3), XS),
    ROW1(EM_U8, "pad", pad_view, EM_SHAPE(4, 3), EM_SHAPE(2, 3), XS),
    ALL_ROWS(ROW1, "tile", tile_2d, EM_SHAPE(4, 6), EM_SHAPE(2, 2), XS),
    ALL_ROWS(ROW1, "tile", tile_3d, EM_SHAPE(2, 3, 4), EM_SHAPE(2, 1, 2), XS),
    ALL_ROWS(ROW1, "tile", tile_zero, EM_SHAPE(0, 4), EM_SHAPE(2, 2), XS),
    ROW1(EM_I64, "tile", tile_scalar, EM_SHAPE0, EM_SHAPE0, XS),
    ROW1(EM_BOOL, "tile", tile_scalar, EM_SHAPE0, EM_SHAPE0, XS),
    ROW1(EM_F64, "tile", tile_view, EM_SHAPE(3, 4), EM_SHAPE(2, 3), XS),
    ROW1(EM_I32, "tile", tile_view, EM_SHAPE(3, 4), EM_SHAPE(2, 3), XS),
    {.fn = NULL},
};
