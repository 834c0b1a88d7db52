/* Gradient-check cases for ops/matmul.c: every transpose combination and
 * batch broadcasting on either side; then its forward cases (test/test_ops.c). */
#include "common.h"

static em_tensor *mm(em_tensor *const *in) { return em_matmul(in[0], in[1]); }
static em_tensor *mm_ta(em_tensor *const *in) { return em_matmul_t(in[0], in[1], true, false); }
static em_tensor *mm_tb(em_tensor *const *in) { return em_matmul_t(in[0], in[1], false, true); }
static em_tensor *mm_tatb(em_tensor *const *in) { return em_matmul_t(in[0], in[1], true, true); }

/* einsum (lib/ops/composed.c), through the transposes, sums and batched matmul it is made of */
static em_tensor *einsum_attn(em_tensor *const *in) { return em_einsum("bhqd,bhkd->bhqk", 2, in); }
static em_tensor *einsum_sum_kept(em_tensor *const *in) { return em_einsum("ijx,kj->ki", 2, in); }
static em_tensor *einsum_diag(em_tensor *const *in) { return em_einsum("ii->i", 1, in); }

const gc_case gc_cases_matmul[] = {
    {EM_OP_MATMUL, "einsum bhqd,bhkd->bhqk", 2, {EM_SHAPE(2, 2, 3, 4), EM_SHAPE(2, 2, 2, 4)}, einsum_attn, -1, 1, 0,
     NULL},
    {EM_OP_MATMUL, "einsum ijx,kj->ki", 2, {EM_SHAPE(3, 4, 2), EM_SHAPE(2, 4)}, einsum_sum_kept, -1, 1, 0, NULL},
    {EM_OP_MUL, "einsum ii->i", 1, {EM_SHAPE(3, 3)}, einsum_diag, -1, 1, 0, NULL},
    {EM_OP_MATMUL, "matmul [3,4]x[4,2]", 2, {EM_SHAPE(3, 4), EM_SHAPE(4, 2)}, mm, -1, 1, 0, NULL},
    {EM_OP_MATMUL, "matmul transpose_a [4,3]x[4,2]", 2, {EM_SHAPE(4, 3), EM_SHAPE(4, 2)}, mm_ta, -1, 1, 0, NULL},
    {EM_OP_MATMUL, "matmul transpose_b [3,4]x[2,4]", 2, {EM_SHAPE(3, 4), EM_SHAPE(2, 4)}, mm_tb, -1, 1, 0, NULL},
    {EM_OP_MATMUL, "matmul both transposed [4,3]x[2,4]", 2, {EM_SHAPE(4, 3), EM_SHAPE(2, 4)}, mm_tatb, -1, 1, 0, NULL},
    {EM_OP_MATMUL, "matmul batch broadcast [2,1,2,3]x[3,3,2]", 2, {EM_SHAPE(2, 1, 2, 3), EM_SHAPE(3, 3, 2)}, mm, -1, 1,
     0, NULL},
    {EM_OP_MATMUL, "matmul batch x matrix, transposed [2,3,2]x[4,3]", 2, {EM_SHAPE(2, 3, 2), EM_SHAPE(4, 3)}, mm_tatb,
     -1, 1, 0, NULL},
    {.fn = NULL},
};

/* ---- forward cases (test/test_ops.c runs them on every device) ----
 * Expected values: literals (NumPy's integer matmul, which wraps like
 * Ember's: the expression beside them) or mm_ref, a plain triple loop in
 * float64 over the case's input values, reduced modulo 2^bits for integer
 * outputs. */

/* Transposed (strided) views as operands; a transposed view transposed back. */
static em_tensor *mm_view_a(em_tensor *const *in) { return em_matmul(em_transpose(in[0], EM_ALL_AXES), in[1]); }
static em_tensor *mm_view_b(em_tensor *const *in) { return em_matmul(in[0], em_transpose(in[1], EM_ALL_AXES)); }
static em_tensor *mm_ta_view(em_tensor *const *in) {
    return em_matmul_t(em_transpose(in[0], EM_ALL_AXES), in[1], true, false);
}

static em_tensor *mm_c(em_tensor *const *in) { return (mm(in)); }

/* An integer result reduced like the dtype wraps (exact below 2^53). */
static double wrap(double s, em_dtype dt) {
    double m = dt == EM_U8 || dt == EM_I8 ? 256.0 : dt == EM_I16 || dt == EM_U16 ? 65536.0 : dt == EM_I32 ? 4294967296.0 : 0;
    if (m == 0) return s; /* floats; int64 cases stay in range */
    s = fmod(s, m);
    if (s < 0) s += m;
    return (dt == EM_I32 || dt == EM_I8 || dt == EM_I16) && s >= m / 2 ? s - m : s;
}

/* op(a) op(b) for the case's inputs [..., r, c], batch dimensions broadcast to out_shape's. */
static void mm_ref(const fw_case *c, double *e, bool ta, bool tb) {
    const fw_input *A = &c->in[0], *B = &c->in[1];
    int na = A->shape.ndim, nb = B->shape.ndim, no = c->out_shape.ndim;
    int64_t ar = A->shape.dims[na - 2], ac = A->shape.dims[na - 1], br = B->shape.dims[nb - 2],
            bc = B->shape.dims[nb - 1];
    int64_t m = ta ? ac : ar, k = ta ? ar : ac, n = tb ? br : bc, batches = 1;
    for (int d = 0; d < no - 2; d++) batches *= c->out_shape.dims[d];
    for (int64_t t = 0; t < batches; t++) {
        /* the batch's offsets in a and b: its index per output batch dimension, 0 where broadcast */
        int64_t oa = 0, ob = 0, sa = ar * ac, sb = br * bc, r = t;
        for (int d = no - 3; d >= 0; d--) {
            int64_t i = r % c->out_shape.dims[d];
            r /= c->out_shape.dims[d];
            int da = d - (no - na), db = d - (no - nb);
            if (da >= 0) {
                oa += (A->shape.dims[da] == 1 ? 0 : i) * sa;
                sa *= A->shape.dims[da];
            }
            if (db >= 0) {
                ob += (B->shape.dims[db] == 1 ? 0 : i) * sb;
                sb *= B->shape.dims[db];
            }
        }
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) {
                double s = 0;
                for (int64_t p = 0; p < k; p++)
                    s += A->v[oa + (ta ? p * ac + i : i * ac + p)] * B->v[ob + (tb ? j * bc + p : p * bc + j)];
                e[(t * m + i) * n + j] = wrap(s, c->out_dtype);
            }
    }
}
static void ref_mm(const fw_case *c, double *e) { mm_ref(c, e, false, false); }
static void ref_mm_ta(const fw_case *c, double *e) { mm_ref(c, e, true, false); }
static void ref_mm_tb(const fw_case *c, double *e) { mm_ref(c, e, false, true); }
static void ref_mm_tatb(const fw_case *c, double *e) { mm_ref(c, e, true, true); }

/* Operands for the larger products (past the plain loop: BLIS, or the
 * register-tile kernel for float32 with n a multiple of 16): multiples of
 * 1/4 and 1/2, so every float32 sum is exact; 0..10 and 0..8 for integers. */
#define FA(b) ((double)((b) * 7 % 11 - 5) * 0.25)
#define FB(b) ((double)((b) * 5 % 9 - 4) * 0.5)
#define FIA(b) ((double)((b) * 7 % 11))
#define FIB(b) ((double)((b) * 5 % 9))
#define G4(F, b) F(b), F((b) + 1), F((b) + 2), F((b) + 3)
#define G16(F, b) G4(F, b), G4(F, (b) + 4), G4(F, (b) + 8), G4(F, (b) + 12)
#define G64(F, b) G16(F, b), G16(F, (b) + 16), G16(F, (b) + 32), G16(F, (b) + 48)
#define G256(F, b) G64(F, b), G64(F, (b) + 64), G64(F, (b) + 128), G64(F, (b) + 192)
#define G1024(F) G256(F, 0), G256(F, 256), G256(F, 512), G256(F, 768)
static const double big_a[] = {G1024(FA)}, big_b[] = {G1024(FB)}, big_ia[] = {G1024(FIA)}, big_ib[] = {G1024(FIB)};

/* bfloat16 and float16: the inputs are exact in them and the sums exact in float32, so the one rounding
 * of the output to the dtype is the error: 2^-8 and 2^-11 relative (within 2^-9 and 2^-12 exactly). */
#define TOL_OF(dt) \
    ((dt) == EM_F32 ? 1e-6 : (dt) == EM_BF16 ? 0x1p-8 : (dt) == EM_F16 ? 0x1p-11 : 1e-12)
/* Two inputs of dtype dt, the output of dt: expected literals or a ref. */
#define MM(dt, label, fn, sa, va, sb, vb, so, expect) \
    {"matmul", dt, label " " #dt, fn, 2, {{dt, sa, va}, {dt, sb, vb}}, dt, so, expect, NULL, TOL_OF(dt)}
#define MMREF(dt, label, fn, sa, va, sb, vb, so, ref) \
    {"matmul", dt, label " " #dt, fn, 2, {{dt, sa, va}, {dt, sb, vb}}, dt, so, NULL, ref, TOL_OF(dt)}
#define EACH_NARROW(M, ...) M(EM_BF16, __VA_ARGS__), M(EM_F16, __VA_ARGS__)
#define EACH_FLOAT(M, ...) M(EM_F32, __VA_ARGS__), M(EM_F64, __VA_ARGS__), EACH_NARROW(M, __VA_ARGS__)
#define EACH_NUMERIC(M, ...) \
    EACH_FLOAT(M, __VA_ARGS__), M(EM_I32, __VA_ARGS__), M(EM_I64, __VA_ARGS__), M(EM_U8, __VA_ARGS__), \
        M(EM_I8, __VA_ARGS__), M(EM_I16, __VA_ARGS__), M(EM_U16, __VA_ARGS__)
#define V6 V(1, 2, 3, 4, 5, 6)
#define V6B V(7, 8, 9, 10, 11, 12)
#define V18 V(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)

const fw_case fw_cases_matmul[] = {
    /* np.array([[1,2,3],[4,5,6]]) @ np.array([[7,8],[9,10],[11,12]]) = [[58,64],[139,154]] (int8: wrapped) */
    EACH_NUMERIC(MMREF, "matmul [2,3]x[3,2]", mm, EM_SHAPE(2, 3), V6, EM_SHAPE(3, 2), V6B, EM_SHAPE(2, 2), ref_mm),
    EACH_NUMERIC(MMREF, "matmul transpose_a [3,2]x[3,2]", mm_ta, EM_SHAPE(3, 2), V6, EM_SHAPE(3, 2), V6B,
                 EM_SHAPE(2, 2), ref_mm_ta),
    EACH_NUMERIC(MMREF, "matmul transpose_b [2,3]x[2,3]", mm_tb, EM_SHAPE(2, 3), V6, EM_SHAPE(2, 3), V6B,
                 EM_SHAPE(2, 2), ref_mm_tb),
    EACH_NUMERIC(MMREF, "matmul both transposed [3,2]x[2,3]", mm_tatb, EM_SHAPE(3, 2), V6, EM_SHAPE(2, 3), V6B,
                 EM_SHAPE(2, 2), ref_mm_tatb),
    EACH_NUMERIC(MMREF, "matmul of a transposed view [3,2]^T x [3,2]", mm_view_a, EM_SHAPE(3, 2), V6, EM_SHAPE(3, 2),
                 V6B, EM_SHAPE(2, 2), ref_mm_ta),
    EACH_NUMERIC(MMREF, "matmul by a transposed view [2,3] x [2,3]^T", mm_view_b, EM_SHAPE(2, 3), V6, EM_SHAPE(2, 3),
                 V6B, EM_SHAPE(2, 2), ref_mm_tb),
    EACH_NUMERIC(MMREF, "matmul transpose_a of a transposed view", mm_ta_view, EM_SHAPE(2, 3), V6, EM_SHAPE(3, 2), V6B,
                 EM_SHAPE(2, 2), ref_mm),
    /* uint8 sums past 255 wrap (mm_ref reduces modulo 256) */
    EACH_NUMERIC(MMREF, "matmul batch broadcast [2,1,2,3]x[3,3,2]", mm, EM_SHAPE(2, 1, 2, 3), V(G16(FIA, 0)),
                 EM_SHAPE(3, 3, 2), V18, EM_SHAPE(2, 3, 2, 2), ref_mm),
    EACH_NUMERIC(MMREF, "matmul batch x matrix [2,2,3]x[3,2]", mm, EM_SHAPE(2, 2, 3), V(G16(FIA, 3)), EM_SHAPE(3, 2),
                 V6B, EM_SHAPE(2, 2, 2), ref_mm),
    EACH_NUMERIC(MMREF, "matmul matrix x batch, both transposed [3,2]x[2,2,3]", mm_tatb, EM_SHAPE(3, 2), V6,
                 EM_SHAPE(2, 2, 3), V(G16(FIB, 1)), EM_SHAPE(2, 2, 2), ref_mm_tatb),
    EACH_NUMERIC(MM, "matmul with k = 0 [2,0]x[0,3]", mm, EM_SHAPE(2, 0), V(0), EM_SHAPE(0, 3), V(0), EM_SHAPE(2, 3),
                 V(0, 0, 0, 0, 0, 0)),
    EACH_NUMERIC(MM, "matmul with m = 0 [0,3]x[3,2]", mm, EM_SHAPE(0, 3), V(0), EM_SHAPE(3, 2), V6B, EM_SHAPE(0, 2),
                 V(0)),
    EACH_NUMERIC(MM, "matmul of an empty batch [0,2,3]x[3,2]", mm, EM_SHAPE(0, 2, 3), V(0), EM_SHAPE(3, 2), V6B,
                 EM_SHAPE(0, 2, 2), V(0)),
    /* larger integer products: 0..10 x 0..8 summed over 40 (uint8 wraps) */
    EACH_NUMERIC(MMREF, "matmul [8,40]x[40,16]", mm, EM_SHAPE(8, 40), big_ia, EM_SHAPE(40, 16), big_ib,
                 EM_SHAPE(8, 16), ref_mm),

    /* floats: fractions and signs; specials; the BLIS and register-tile sizes */
    /* 0.1 is not exact in bfloat16 or float16: make_input rounds it, and mm_ref reads the case's value, so
     * those dtypes' rows use exact values */
    MMREF(EM_F32, "matmul fractions [2,3]x[3,2]", mm, EM_SHAPE(2, 3), V(0.5, -1.25, 2, 3.5, -0.75, 0.125), EM_SHAPE(3, 2),
          V(-2, 0.25, 1.5, -3, 0.1, 7), EM_SHAPE(2, 2), ref_mm),
    MMREF(EM_F64, "matmul fractions [2,3]x[3,2]", mm, EM_SHAPE(2, 3), V(0.5, -1.25, 2, 3.5, -0.75, 0.125), EM_SHAPE(3, 2),
          V(-2, 0.25, 1.5, -3, 0.1, 7), EM_SHAPE(2, 2), ref_mm),
    EACH_NARROW(MMREF, "matmul fractions [2,3]x[3,2]", mm, EM_SHAPE(2, 3), V(0.5, -1.25, 2, 3.5, -0.75, 0.125),
                EM_SHAPE(3, 2), V(-2, 0.25, 1.5, -3, 0.0625, 7), EM_SHAPE(2, 2), ref_mm),
    /* [[inf, 1], [NaN, 0]] @ [[0, 1], [1, 2]]: inf * 0 is NaN, inf * 1 + 2 is inf, NaN propagates */
    EACH_FLOAT(MM, "matmul with NaN and inf", mm_c, EM_SHAPE(2, 2), V(INFINITY, 1, NAN, 0), EM_SHAPE(2, 2),
               V(0, 1, 1, 2), EM_SHAPE(2, 2), V(NAN, INFINITY, NAN, NAN)),
    MMREF(EM_F32, "matmul [8,32]x[32,32]", mm, EM_SHAPE(8, 32), big_a, EM_SHAPE(32, 32), big_b, EM_SHAPE(8, 32), ref_mm),
    MMREF(EM_F32, "matmul [9,24]x[24,20]", mm, EM_SHAPE(9, 24), big_a, EM_SHAPE(24, 20), big_b, EM_SHAPE(9, 20), ref_mm),
    MMREF(EM_F32, "matmul transpose_a [24,9]x[24,20]", mm_ta, EM_SHAPE(24, 9), big_a, EM_SHAPE(24, 20), big_b,
          EM_SHAPE(9, 20), ref_mm_ta),
    MMREF(EM_F32, "matmul both transposed [32,8]x[32,32]", mm_tatb, EM_SHAPE(32, 8), big_a, EM_SHAPE(32, 32), big_b,
          EM_SHAPE(8, 32), ref_mm_tatb),
    MMREF(EM_F64, "matmul [16,20]x[20,16]", mm, EM_SHAPE(16, 20), big_a, EM_SHAPE(20, 16), big_b, EM_SHAPE(16, 16),
          ref_mm),
    MMREF(EM_F64, "matmul transpose_b [16,20]x[18,20]", mm_tb, EM_SHAPE(16, 20), big_a, EM_SHAPE(18, 20), big_b,
          EM_SHAPE(16, 18), ref_mm_tb),
    MMREF(EM_F64, "matmul batch x matrix [2,12,20]x[20,18]", mm, EM_SHAPE(2, 12, 20), big_a, EM_SHAPE(20, 18), big_b,
          EM_SHAPE(2, 12, 18), ref_mm),
    MMREF(EM_F32, "matmul batch broadcast [2,1,8,20]x[3,20,16]", mm, EM_SHAPE(2, 1, 8, 20), big_a, EM_SHAPE(3, 20, 16),
          big_b, EM_SHAPE(2, 3, 8, 16), ref_mm),
    /* bfloat16 and float16 past the plain loop (VDPBF16PS or float32 copies, lib/ops/gemm_narrow.c; inputs of at
     * most 1024 values): tiles cut at both edges, odd k, each transpose, a batch on both sides */
    EACH_NARROW(MMREF, "matmul [9,25]x[25,40]", mm, EM_SHAPE(9, 25), big_a, EM_SHAPE(25, 40), big_b, EM_SHAPE(9, 40),
                ref_mm),
    EACH_NARROW(MMREF, "matmul transpose_a [24,9]x[24,20]", mm_ta, EM_SHAPE(24, 9), big_a, EM_SHAPE(24, 20), big_b,
                EM_SHAPE(9, 20), ref_mm_ta),
    EACH_NARROW(MMREF, "matmul transpose_b [16,20]x[18,20]", mm_tb, EM_SHAPE(16, 20), big_a, EM_SHAPE(18, 20), big_b,
                EM_SHAPE(16, 18), ref_mm_tb),
    EACH_NARROW(MMREF, "matmul both transposed [31,8]x[32,31]", mm_tatb, EM_SHAPE(31, 8), big_a, EM_SHAPE(32, 31),
                big_b, EM_SHAPE(8, 32), ref_mm_tatb),
    EACH_NARROW(MMREF, "matmul batch broadcast [2,1,16,30]x[3,30,11]", mm, EM_SHAPE(2, 1, 16, 30), big_a,
                EM_SHAPE(3, 30, 11), big_b, EM_SHAPE(2, 3, 16, 11), ref_mm),

    /* integer products wrap: 65536 * 65537 + 15 = 2^32 + 65551; (2^32) (2^32 + 1) + 21 = 2^64 + 2^32 + 21;
     * 16 * 17 + 15 = 287 = 31 mod 256; -65536 * 65537 = -(2^32 + 65536) (NumPy's int matmul gives the same) */
    MM(EM_I32, "matmul int32 wraps", mm, EM_SHAPE(2, 2), V(65536, 3, -65536, 1), EM_SHAPE(2, 1), V(65537, 5),
       EM_SHAPE(2, 1), V(65551, -65531)),
    MM(EM_I64, "matmul int64 wraps", mm, EM_SHAPE(1, 2), V(4294967296.0, 7), EM_SHAPE(2, 1), V(4294967297.0, 3),
       EM_SHAPE(1, 1), V(4294967317.0)),
    MM(EM_U8, "matmul uint8 wraps", mm, EM_SHAPE(1, 2), V(16, 3), EM_SHAPE(2, 1), V(17, 5), EM_SHAPE(1, 1), V(31)),
    /* 16 * 16 - 3 * 2 = 250 = -6 (int8); 256 * 256 + 3 * 5 = 15 (uint16, int16); 255 * 256 = 65280 = -256 (int16) */
    MM(EM_I8, "matmul int8 wraps", mm, EM_SHAPE(1, 2), V(16, -3), EM_SHAPE(2, 1), V(16, 2), EM_SHAPE(1, 1), V(-6)),
    MM(EM_I16, "matmul int16 wraps", mm, EM_SHAPE(2, 2), V(256, 3, 255, 0), EM_SHAPE(2, 1), V(256, 5), EM_SHAPE(2, 1),
       V(15, -256)),
    MM(EM_U16, "matmul uint16 wraps", mm, EM_SHAPE(1, 2), V(256, 3), EM_SHAPE(2, 1), V(256, 5), EM_SHAPE(1, 1), V(15)),
    MMREF(EM_I32, "matmul int32 negatives", mm_tb, EM_SHAPE(2, 3), V(-1, 2, -3, 4, -5, 6), EM_SHAPE(2, 3),
          V(-7, -8, 9, 10, -11, 12), EM_SHAPE(2, 2), ref_mm_tb),
    MMREF(EM_I64, "matmul int64 negatives", mm_ta, EM_SHAPE(3, 2), V(-1, 2, -3, 4, -5, 6), EM_SHAPE(3, 2),
          V(-7, -8, 9, 10, -11, 12), EM_SHAPE(2, 2), ref_mm_ta),
    {.fn = NULL},
};
