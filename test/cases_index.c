/* The index family's cases (ops/index.c): gradient checks (test_gradcheck.c) and forward cases (test_ops.c, on
 * every device). Expected values are literals printed by tools/ref_index.py (NumPy), with the NumPy expression
 * beside each; x(*shape) = XS[:n].reshape(shape). */
#include "common.h"

/* ---- gradient checks ---- */
static em_tensor *gather_nd_pairs_gc(em_tensor *const *in) { return em_gather_nd(in[0], in[1]); }
static em_tensor *scatter_nd_rows_gc(em_tensor *const *in) { return em_scatter_nd(in[1], in[0], EM_SHAPE(4, 2)); }
static em_tensor *segment_sum_gc(em_tensor *const *in) { return em_unsorted_segment_sum(in[0], in[1], 3); }
static em_tensor *top_k_values_gc(em_tensor *const *in) {
    em_tensor *v, *i;
    return em_top_k(in[0], 2, true, &v, &i) ? NULL : v;
}
static em_tensor *sort_axis0_gc(em_tensor *const *in) { return em_sort(in[0], -2, true); }
static em_tensor *pairs_3x2(int i) {
    return i == 1 ? em_tensor_from(EM_I64, EM_SHAPE(3, 2), (int64_t[]){1, 0, 2, 1, 1, 0}) : NULL;
}
static em_tensor *rows_3x1(int i) { return i == 1 ? em_tensor_from(EM_I32, EM_SHAPE(3, 1), (int32_t[]){1, 3, 1}) : NULL; }
static em_tensor *segments_4(int i) { return i == 1 ? em_tensor_from(EM_I64, EM_SHAPE(4), (int64_t[]){2, 0, 2, 2}) : NULL; }

const gc_case gc_cases_index[] = {
    {EM_OP_GATHER_ND, "gather_nd [3,2,2] by pairs [3,2]", 2, {EM_SHAPE(3, 2, 2), EM_SHAPE(3, 2)}, gather_nd_pairs_gc, -1,
     1, 2u, pairs_3x2},
    {EM_OP_SCATTER_ND, "scatter_nd [3,2] at rows [3,1] into [4,2]", 2, {EM_SHAPE(3, 2), EM_SHAPE(3, 1)},
     scatter_nd_rows_gc, -1, 1, 2u, rows_3x1},
    {EM_OP_SCATTER_ND, "unsorted_segment_sum [4,2] into 3", 2, {EM_SHAPE(4, 2), EM_SHAPE(4)}, segment_sum_gc, -1, 1, 2u,
     segments_4},
    {EM_OP_TOP_K, "top_k values k=2 of [2,5]", 1, {EM_SHAPE(2, 5)}, top_k_values_gc, -1, 1, 0, NULL},
    {EM_OP_TOP_K, "sort axis -2 descending [3,2]", 1, {EM_SHAPE(3, 2)}, sort_axis0_gc, -1, 1, 0, NULL},
    {.fn = NULL},
};

/* ---- forward cases ---- */
static const double XS[24] = {3, 0, 7, 1, 9, 4, 2, 8, 0, 5, 6, 1, 9, 3, 4, 0, 7, 2, 5, 1, 8, 6, 0, 9};
static const double NONE[1] = {0}; /* the values of an empty tensor (never read) */
static const double TIES[8] = {3, 1, 3, 2, 1, 3, 0, 2};
static const double NANS[8] = {1, NAN, 3, -INFINITY, 3, NAN, INFINITY, 0};

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
#define EXPECT(NAME, ...)                                                                                              \
    static const double NAME##_e[] = {__VA_ARGS__};                                                                    \
    static void NAME##_ref(const fw_case *c, double *e) { lit(c, NAME##_e, e); }
#define IN(DT, S, X) {DT, S, X}
#define ROW(OPN, NAME, DT, OUT_DT, OS, NIN, ...)                                                                       \
    {OPN, DT, OPN " " #NAME " " #DT, f_##NAME, NIN, {__VA_ARGS__}, OUT_DT, OS, NULL, NAME##_ref, 0}
/* x of dtype DT, indices of dtype IDT */
#define ROWI(DT, OPN, NAME, OS, S0, X0, IDT, S1, X1) ROW(OPN, NAME, DT, DT, OS, 2, IN(DT, S0, X0), IN(IDT, S1, X1))
/* x of dtype DT, int64 positions out */
#define ROWK(DT, OPN, NAME, OS, S0, X0) ROW(OPN, NAME, DT, EM_I64, OS, 1, IN(DT, S0, X0))
/* tensor_scatter_add: tensor x(4,2), int32 rows [3,1], updates x(3,2) */
#define ROWT(DT, OPN, NAME, OS)                                                                                        \
    ROW(OPN, NAME, DT, DT, OS, 3, IN(DT, EM_SHAPE(4, 2), XS), IN(EM_I32, EM_SHAPE(3, 1), V(1, 3, 1)),                  \
        IN(DT, EM_SHAPE(3, 2), XS))
#define ROW1(DT, OPN, NAME, OS, S0, X0) ROW(OPN, NAME, DT, DT, OS, 1, IN(DT, S0, X0))
#define NUMERIC_ROWS(R, ...)                                                                                               \
    R(EM_F32, __VA_ARGS__), R(EM_F64, __VA_ARGS__), R(EM_I32, __VA_ARGS__), R(EM_I64, __VA_ARGS__), R(EM_U8, __VA_ARGS__), \
        R(EM_I8, __VA_ARGS__), R(EM_I16, __VA_ARGS__), R(EM_U16, __VA_ARGS__)
#define ALL_ROWS(R, ...) NUMERIC_ROWS(R, __VA_ARGS__), R(EM_BOOL, __VA_ARGS__)

/* gather_nd */
static em_tensor *f_gather_nd_pairs(em_tensor *const *in) { return em_gather_nd(in[0], in[1]); }
EXPECT(gather_nd_pairs, 9, 4, 6, 1, 9, 4) /* x(3,2,2)[tuple(np.moveaxis([[1,0],[2,1],[1,0]], -1, 0))] */
#define f_gather_nd_rows f_gather_nd_pairs
EXPECT(gather_nd_rows, 0, 5, 6, 1, 3, 0, 7, 1) /* x(3,4)[[[2]],[[0]]] by tuples [2,1,1]: [2,1,4] */
#define f_gather_nd_elems f_gather_nd_pairs
EXPECT(gather_nd_elems, 4, 3) /* x(2,3)[[1,0],[2,0]] */
#define f_gather_nd_none f_gather_nd_pairs
EXPECT(gather_nd_none, 0) /* no tuples [0,1]: [0,4] */

/* scatter_nd (updates first in the case, as the op takes them) and unsorted_segment_sum */
static em_tensor *f_scatter_nd_rows(em_tensor *const *in) { return em_scatter_nd(in[1], in[0], EM_SHAPE(4, 2)); }
EXPECT(scatter_nd_rows, 0, 0, 12, 4, 0, 0, 7, 1) /* o = zeros((4,2)); np.add.at(o, [1,3,1], x(3,2)) */
static em_tensor *f_scatter_nd_elems(em_tensor *const *in) { return em_scatter_nd(in[1], in[0], EM_SHAPE(2, 2)); }
EXPECT(scatter_nd_elems, 0, 10, 0, 0) /* o = zeros((2,2)); np.add.at(o, ([0,1,0],[1,0,1]), x(3)) */
static em_tensor *f_segment_sum(em_tensor *const *in) { return em_unsorted_segment_sum(in[0], in[1], 3); }
EXPECT(segment_sum, 7, 1, 0, 0, 14, 12) /* o = zeros((3,2)); np.add.at(o, [2,0,2,2], x(4,2)) */
static em_tensor *f_tensor_scatter_add(em_tensor *const *in) { return em_tensor_scatter_add(in[0], in[1], in[2]); }
EXPECT(tensor_scatter_add, 3, 0, 19, 5, 9, 4, 9, 9) /* t = x(4,2); np.add.at(t, [1,3,1], x(3,2)) */

/* top_k, sort, argsort (rank order: ties keep their order, NaN above every number) */
static em_tensor *f_top_k_ties(em_tensor *const *in) {
    em_tensor *v, *i;
    return em_top_k(in[0], 3, true, &v, &i) ? NULL : i;
}
EXPECT(top_k_ties, 0, 2, 3, 1, 3, 0) /* stable descending order of [[3,1,3,2],[1,3,0,2]], first 3 */
#define f_top_k_long f_top_k_ties
EXPECT(top_k_long, 4, 12, 23) /* x(1,24): the three 9s in order */
static em_tensor *f_top_k_long_asc(em_tensor *const *in) {
    return em__apply(EM_OP_TOP_K, 1, in, &(em_attrs){.i = {5, 0}, .ni = 2});
}
EXPECT(top_k_long_asc, 1, 8, 15, 22, 3) /* np.argsort(x(1,24), kind="stable")[:, :5] */
static em_tensor *f_top_k_values(em_tensor *const *in) {
    em_tensor *v, *i;
    return em_top_k(in[0], 4, false, &v, &i) ? NULL : v;
}
EXPECT(top_k_values, NAN, NAN, INFINITY, 3) /* NANS, descending with NaN first */
static em_tensor *f_argsort_axis0(em_tensor *const *in) { return em_argsort(in[0], -2, false); }
EXPECT(argsort_axis0, 1, 0, 1, 0, 0, 1, 0, 1) /* np.argsort(TIES.reshape(2,4), axis=0, kind="stable") */
static em_tensor *f_sort_desc(em_tensor *const *in) { return em_sort(in[0], -1, true); }
EXPECT(sort_desc, 7, 3, 1, 0, 9, 8, 4, 2, 6, 5, 1, 0) /* -np.sort(-x(3,4), axis=-1) */
static em_tensor *f_argsort_nan_asc(em_tensor *const *in) { return em_argsort(in[0], 0, false); }
EXPECT(argsort_nan_asc, 3, 7, 0, 2, 4, 6, 1, 5) /* np.argsort(NANS, kind="stable"): NaN last */
static em_tensor *f_argsort_nan_desc(em_tensor *const *in) { return em_argsort(in[0], 0, true); }
EXPECT(argsort_nan_desc, 1, 5, 6, 2, 4, 0, 7, 3) /* np.lexsort((pos, -x, ~isnan(x))): NaN first */
static em_tensor *f_sort_nan_desc(em_tensor *const *in) { return em_sort(in[0], -1, true); }
EXPECT(sort_nan_desc, NAN, NAN, INFINITY, 3, 3, 1, 0, -INFINITY)
static em_tensor *f_sort_empty(em_tensor *const *in) { return em_sort(in[0], 0, false); }
EXPECT(sort_empty, 0) /* [0,3] along axis 0 */
/* signed and unsigned order at the narrow integers' extremes */
#define f_sort_i8 f_sort_desc
EXPECT(sort_i8, 127, 5, 0, -1, -128) /* -np.sort(-np.int8([-128, 127, -1, 0, 5])) */
#define f_sort_u16 f_sort_desc
EXPECT(sort_u16, 65535, 32768, 32767, 1, 0) /* -np.sort(-np.uint16([0, 32768, 1, 65535, 32767])) as uint16 */

const fw_case fw_cases_index[] = {
    ALL_ROWS(ROWI, "gather_nd", gather_nd_pairs, EM_SHAPE(3, 2), EM_SHAPE(3, 2, 2), XS, EM_I64, EM_SHAPE(3, 2),
         V(1, 0, 2, 1, 1, 0)),
    ALL_ROWS(ROWI, "gather_nd", gather_nd_rows, EM_SHAPE(2, 1, 4), EM_SHAPE(3, 4), XS, EM_I32, EM_SHAPE(2, 1, 1), V(2, 0)),
    ROWI(EM_F64, "gather_nd", gather_nd_elems, EM_SHAPE(2), EM_SHAPE(2, 3), XS, EM_I32, EM_SHAPE(2, 2), V(1, 2, 0, 0)),
    ROWI(EM_F32, "gather_nd", gather_nd_none, EM_SHAPE(0, 4), EM_SHAPE(3, 4), XS, EM_I64, EM_SHAPE(0, 1), NONE),
    NUMERIC_ROWS(ROWI, "scatter_nd", scatter_nd_rows, EM_SHAPE(4, 2), EM_SHAPE(3, 2), XS, EM_I32, EM_SHAPE(3, 1),
             V(1, 3, 1)),
    ROWI(EM_F32, "scatter_nd", scatter_nd_elems, EM_SHAPE(2, 2), EM_SHAPE(3), XS, EM_I64, EM_SHAPE(3, 2),
         V(0, 1, 1, 0, 0, 1)),
    NUMERIC_ROWS(ROWT, "scatter_nd", tensor_scatter_add, EM_SHAPE(4, 2)),
    NUMERIC_ROWS(ROWI, "scatter_nd", segment_sum, EM_SHAPE(3, 2), EM_SHAPE(4, 2), XS, EM_I64, EM_SHAPE(4), V(2, 0, 2, 2)),
    NUMERIC_ROWS(ROWK, "top_k", top_k_ties, EM_SHAPE(2, 3), EM_SHAPE(2, 4), TIES),
    NUMERIC_ROWS(ROWK, "top_k", top_k_long, EM_SHAPE(1, 3), EM_SHAPE(1, 24), XS),
    ROWK(EM_F32, "top_k", top_k_long_asc, EM_SHAPE(1, 5), EM_SHAPE(1, 24), XS),
    ROWK(EM_I64, "top_k", top_k_long_asc, EM_SHAPE(1, 5), EM_SHAPE(1, 24), XS),
    ROW1(EM_F32, "top_k", top_k_values, EM_SHAPE(4), EM_SHAPE(8), NANS),
    ROWK(EM_U8, "top_k", argsort_axis0, EM_SHAPE(2, 4), EM_SHAPE(2, 4), TIES),
    ROWK(EM_I64, "top_k", argsort_axis0, EM_SHAPE(2, 4), EM_SHAPE(2, 4), TIES),
    NUMERIC_ROWS(ROW1, "top_k", sort_desc, EM_SHAPE(3, 4), EM_SHAPE(3, 4), XS),
    ROWK(EM_F32, "top_k", argsort_nan_asc, EM_SHAPE(8), EM_SHAPE(8), NANS),
    ROWK(EM_F64, "top_k", argsort_nan_desc, EM_SHAPE(8), EM_SHAPE(8), NANS),
    ROW1(EM_F64, "top_k", sort_nan_desc, EM_SHAPE(8), EM_SHAPE(8), NANS),
    ROW1(EM_I32, "top_k", sort_empty, EM_SHAPE(0, 3), EM_SHAPE(0, 3), NONE),
    ROW1(EM_I8, "top_k", sort_i8, EM_SHAPE(5), EM_SHAPE(5), V(-128, 127, -1, 0, 5)),
    ROW1(EM_I16, "top_k", sort_i8, EM_SHAPE(5), EM_SHAPE(5), V(-128, 127, -1, 0, 5)),
    ROW1(EM_U16, "top_k", sort_u16, EM_SHAPE(5), EM_SHAPE(5), V(0, 32768, 1, 65535, 32767)),
    /* index tuples as int16 and uint16 */
    ROWI(EM_F32, "gather_nd", gather_nd_pairs, EM_SHAPE(3, 2), EM_SHAPE(3, 2, 2), XS, EM_I16, EM_SHAPE(3, 2),
         V(1, 0, 2, 1, 1, 0)),
    ROWI(EM_I16, "scatter_nd", segment_sum, EM_SHAPE(3, 2), EM_SHAPE(4, 2), XS, EM_U16, EM_SHAPE(4), V(2, 0, 2, 2)),
    {.fn = NULL},
};
