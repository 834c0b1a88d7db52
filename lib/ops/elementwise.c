/* The elementwise family: arithmetic, math functions, activations, clip,
 * where, cast, comparisons and logic.
 *
 * Every op reads its inputs in place through broadcast strides (lib/broadcast.h):
 * broadcasts and strided views cost no copies. The output is cut into fixed
 * chunks of EW_GRAIN elements (em__parallel_for), each chunk into runs of the
 * innermost axis, and each run goes to a "row" function generated per op and
 * dtype from one scalar expression. A row whose operands are contiguous (or
 * scalar) is an `omp simd` loop the compiler vectorizes; a contiguous
 * same-shape call is a single run per chunk.
 *
 * Integer arithmetic wraps modulo 2^bits (computed in the unsigned type, so
 * there is no undefined overflow); integer division truncates toward zero and
 * x/0 is 0. */
#include "../broadcast.h"
#include "../fast_math.h"
#include "../gpu.h"
#include "../internal.h"

#include <tgmath.h>

/* This family's GPU kernels: gpu/elementwise.cu. */
#define GPU_KERNEL EM_GPU_KERNEL(em__gpu_elementwise)

#define EW_GRAIN 32768
#define EW_SIMD _Pragma("omp simd")

#define EW_SQRT1_2 0.70710678118654752440   /* 1/sqrt(2) */
#define EW_2_SQRTPI 1.12837916709551257390  /* 2/sqrt(pi) */
#define EW_1_SQRT2PI 0.39894228040143267794 /* 1/sqrt(2 pi) */

/* One run of n output elements: in[k] is input k's first element, s[k] its
 * stride (elements) along the run, f the op's float attributes. */
typedef void (*ew_row_fn)(void *out, const void *const *in, const int64_t *s, int64_t n, const double *f);

/* ---- dtypes: enum, suffix, C type, wrapping type, class, integer range ----
 * Classes: FLT float, SGN signed integer, UNS unsigned integer, BOL bool. */
#define EW_F32(X, ...) X(EM_F32, f32, float, float, FLT, 0, 0, __VA_ARGS__)
#define EW_F64(X, ...) X(EM_F64, f64, double, double, FLT, 0, 0, __VA_ARGS__)
#define EW_I32(X, ...) X(EM_I32, i32, int32_t, uint32_t, SGN, INT32_MIN, INT32_MAX, __VA_ARGS__)
#define EW_I64(X, ...) X(EM_I64, i64, int64_t, uint64_t, SGN, INT64_MIN, INT64_MAX, __VA_ARGS__)
#define EW_U8(X, ...) X(EM_U8, u8, uint8_t, uint8_t, UNS, 0, UINT8_MAX, __VA_ARGS__)
#define EW_B8(X, ...) X(EM_BOOL, b8, uint8_t, uint8_t, BOL, 0, 1, __VA_ARGS__)
#define EW_FLOATS(X, ...) EW_F32(X, __VA_ARGS__) EW_F64(X, __VA_ARGS__)
#define EW_NUMERIC(X, ...) EW_FLOATS(X, __VA_ARGS__) EW_I32(X, __VA_ARGS__) EW_I64(X, __VA_ARGS__) EW_U8(X, __VA_ARGS__)
#define EW_ALL(X, ...) EW_NUMERIC(X, __VA_ARGS__) EW_B8(X, __VA_ARGS__)
#define EW_BOOLS(X, ...) EW_B8(X, __VA_ARGS__)

/* ---- scalar expressions ----
 * Binary: F(C, T, U, MN, MX, x, y); unary: F(C, T, U, MN, MX, x, f), where C
 * is the class, T the type, U the wrapping type, f the attributes. */
#define E_ADD(C, T, U, MN, MX, x, y) ((T)((U)(x) + (U)(y)))
#define E_SUB(C, T, U, MN, MX, x, y) ((T)((U)(x) - (U)(y)))
#define E_MUL(C, T, U, MN, MX, x, y) ((T)((U)(x) * (U)(y)))
#define E_DIV(C, T, U, MN, MX, x, y) DIV_##C(T, U, x, y)
#define DIV_FLT(T, U, x, y) ((x) / (y))
#define DIV_SGN(T, U, x, y) ((y) == 0 ? (T)0 : (y) == -1 ? (T)(0 - (U)(x)) : (T)((x) / (y)))
#define DIV_UNS(T, U, x, y) ((y) == 0 ? (T)0 : (T)((x) / (y)))
#define E_POW(C, T, U, MN, MX, x, y) pow(x, y)
/* NaN propagates from either side, as in NumPy. */
#define E_MAXIMUM(C, T, U, MN, MX, x, y) ((x) >= (y) || NAN_##C(x) ? (x) : (y))
#define E_MINIMUM(C, T, U, MN, MX, x, y) ((x) <= (y) || NAN_##C(x) ? (x) : (y))
#define NAN_FLT(x) isnan(x)
#define NAN_SGN(x) 0
#define NAN_UNS(x) 0
#define E_EQUAL(C, T, U, MN, MX, x, y) ((x) == (y))
#define E_NOT_EQUAL(C, T, U, MN, MX, x, y) ((x) != (y))
#define E_LESS(C, T, U, MN, MX, x, y) ((x) < (y))
#define E_LESS_EQUAL(C, T, U, MN, MX, x, y) ((x) <= (y))
#define E_GREATER(C, T, U, MN, MX, x, y) ((x) > (y))
#define E_GREATER_EQUAL(C, T, U, MN, MX, x, y) ((x) >= (y))
#define E_LOGICAL_AND(C, T, U, MN, MX, x, y) ((x) && (y))
#define E_LOGICAL_OR(C, T, U, MN, MX, x, y) ((x) || (y))

#define E_NEG(C, T, U, MN, MX, x, f) NEG_##C(T, U, x)
#define NEG_FLT(T, U, x) (-(x))
#define NEG_SGN(T, U, x) ((T)(0 - (U)(x)))
#define NEG_UNS NEG_SGN
#define E_ABS(C, T, U, MN, MX, x, f) ABS_##C(T, U, x)
#define ABS_FLT(T, U, x) fabs(x)
#define ABS_SGN(T, U, x) ((x) < 0 ? (T)(0 - (U)(x)) : (x))
#define ABS_UNS(T, U, x) (x)
#define E_SQUARE(C, T, U, MN, MX, x, f) ((T)((U)(x) * (U)(x)))
#define E_SIGN(C, T, U, MN, MX, x, f) SIGN_##C(T, x)
#define SIGN_FLT(T, x) (isnan(x) ? (x) : (T)(((x) > 0) - ((x) < 0)))
#define SIGN_SGN(T, x) ((T)(((x) > 0) - ((x) < 0)))
#define SIGN_UNS(T, x) ((T)((x) > 0))
#define E_SQRT(C, T, U, MN, MX, x, f) sqrt(x)
#define E_RSQRT(C, T, U, MN, MX, x, f) ((T)1 / sqrt(x))
#define E_EXP(C, T, U, MN, MX, x, f) EM_EXP(x)
#define E_LOG(C, T, U, MN, MX, x, f) log(x)
#define E_LOG1P(C, T, U, MN, MX, x, f) log1p(x)
#define E_ERF(C, T, U, MN, MX, x, f) erf(x)
#define E_RELU(C, T, U, MN, MX, x, f) ((x) < 0 ? (T)0 : (x))
#define E_RELU_GRAD(C, T, U, MN, MX, x, y) ((x) > 0 ? (y) : (T)0)
#define E_SIGMOID_GRAD(C, T, U, MN, MX, x, y) ((y) * (x) * ((T)1 - (x)))
#define E_TANH_GRAD(C, T, U, MN, MX, x, y) ((y) * ((T)1 - (x) * (x)))
#define E_LEAKY_RELU(C, T, U, MN, MX, x, f) ((x) < 0 ? (T)(f)[0] * (x) : (x))
#define E_ELU(C, T, U, MN, MX, x, f) ((x) < 0 ? expm1(x) : (x))
/* exp of a non-positive argument only: no overflow for large |x|. */
#define SIGMOID_LIBM(x) ((x) >= 0 ? 1 / (1 + exp(-(x))) : exp(x) / (1 + exp(x)))
#define E_SIGMOID(C, T, U, MN, MX, x, f) _Generic((x), float: em__sigmoidf(x), default: SIGMOID_LIBM(x))
#define E_TANH(C, T, U, MN, MX, x, f) _Generic((x), float: em__tanhf, default: tanh)(x)
#define E_SOFTPLUS(C, T, U, MN, MX, x, f) (((x) > 0 ? (x) : (T)0) + log1p(exp(-fabs(x))))
#define E_GELU(C, T, U, MN, MX, x, f) ((T)0.5 * (x) * ((T)1 + erf((x) * (T)EW_SQRT1_2)))
#define E_LOGICAL_NOT(C, T, U, MN, MX, x, f) (!(x))
/* min(max(x, lo), hi); NaN passes through. Integer bounds round inward and
 * saturate to the dtype's range. */
#define E_CLIP(C, T, U, MN, MX, x, f)                                                                                  \
    (CLIP_LO(C, T, U, MN, MX, x, f) > HI_##C(T, MN, MX, (f)[1]) ? HI_##C(T, MN, MX, (f)[1])                            \
                                                                : CLIP_LO(C, T, U, MN, MX, x, f))
#define CLIP_LO(C, T, U, MN, MX, x, f) ((x) < LO_##C(T, MN, MX, (f)[0]) ? LO_##C(T, MN, MX, (f)[0]) : (x))
#define LO_FLT(T, MN, MX, v) ((T)(v))
#define HI_FLT(T, MN, MX, v) ((T)(v))
#define LO_SGN(T, MN, MX, v) SAT(T, MN, MX, ceil(v))
#define HI_SGN(T, MN, MX, v) SAT(T, MN, MX, floor(v))
#define LO_UNS LO_SGN
#define HI_UNS HI_SGN
/* A float to an integer type: truncates toward zero, saturates, NaN is 0. */
#define SAT(T, MN, MX, v) (isnan(v) ? (T)0 : (v) <= (double)(MN) ? (T)(MN) : (v) >= (double)(MX) ? (T)(MX) : (T)(v))

/* Casts to class C from class SC: float to integer saturates (SAT), integer
 * to integer wraps, anything to or from bool goes through x != 0. */
#define CVT_FLT(SC, T, MN, MX, x, f) ((T)LOAD_##SC(x))
#define CVT_BOL(SC, T, MN, MX, x, f) ((T)((x) != 0))
#define CVT_SGN(SC, T, MN, MX, x, f) TOINT_##SC(T, MN, MX, x)
#define CVT_UNS CVT_SGN
#define LOAD_FLT(x) (x)
#define LOAD_SGN(x) (x)
#define LOAD_UNS(x) (x)
#define LOAD_BOL(x) ((x) != 0)
#define TOINT_FLT SAT
#define TOINT_SGN(T, MN, MX, x) ((T)(x))
#define TOINT_UNS TOINT_SGN
#define TOINT_BOL(T, MN, MX, x) ((T)((x) != 0))

#define OUT_SAME(T) T
#define OUT_BOOL(T) uint8_t
#define OUT_IS_BOOL_SAME false
#define OUT_IS_BOOL_BOOL true

/* ---- row functions ---- */

#define EW_ROW1(name, TO, TI, F, ...)                                                                                  \
    EM_HOT static void name(void *out, const void *const *in, const int64_t *s, int64_t n, const double *f) {                 \
        TO *restrict o = out;                                                                                          \
        const TI *restrict a = in[0];                                                                                  \
        const int64_t sa = s[0];                                                                                       \
        (void)f;                                                                                                       \
        if (sa == 1) {                                                                                                 \
            EW_SIMD for (int64_t i = 0; i < n; i++) o[i] = F(__VA_ARGS__, a[i], f);                                    \
        } else {                                                                                                       \
            for (int64_t i = 0; i < n; i++) o[i] = F(__VA_ARGS__, a[i * sa], f);                                       \
        }                                                                                                              \
    }

#define EW_ROW2(name, TO, T, F, ...)                                                                                   \
    EM_HOT static void name(void *out, const void *const *in, const int64_t *s, int64_t n, const double *f) {                 \
        TO *restrict o = out;                                                                                          \
        const T *restrict a = in[0], *restrict b = in[1];                                                              \
        const int64_t sa = s[0], sb = s[1];                                                                            \
        (void)f;                                                                                                       \
        if (sa == 1 && sb == 1) {                                                                                      \
            EW_SIMD for (int64_t i = 0; i < n; i++) o[i] = F(__VA_ARGS__, a[i], b[i]);                                 \
        } else if (sa == 1 && sb == 0) {                                                                               \
            const T y = b[0];                                                                                          \
            EW_SIMD for (int64_t i = 0; i < n; i++) o[i] = F(__VA_ARGS__, a[i], y);                                    \
        } else if (sa == 0 && sb == 1) {                                                                               \
            const T x = a[0];                                                                                          \
            EW_SIMD for (int64_t i = 0; i < n; i++) o[i] = F(__VA_ARGS__, x, b[i]);                                    \
        } else {                                                                                                       \
            for (int64_t i = 0; i < n; i++) o[i] = F(__VA_ARGS__, a[i * sa], b[i * sb]);                               \
        }                                                                                                              \
    }

#define DEF_UNARY(E, sfx, T, U, C, MN, MX, op, OUT, F) EW_ROW1(row_##op##_##sfx, OUT_##OUT(T), T, F, C, T, U, MN, MX)
#define DEF_BINARY(E, sfx, T, U, C, MN, MX, op, OUT, F) EW_ROW2(row_##op##_##sfx, OUT_##OUT(T), T, F, C, T, U, MN, MX)
/* cond (bool) picks a or b; a scalar a or b (stride 0) keeps the loop vectorized. */
#define DEF_WHERE(E, sfx, T, U, C, MN, MX, op, OUT, F)                                                                 \
    EM_HOT static void row_##op##_##sfx(void *out, const void *const *in, const int64_t *s, int64_t n, const double *f) {     \
        T *restrict o = out;                                                                                           \
        const uint8_t *restrict k = in[0];                                                                             \
        const T *restrict a = in[1], *restrict b = in[2];                                                              \
        const int64_t sk = s[0], sa = s[1], sb = s[2];                                                                 \
        (void)f;                                                                                                       \
        /* Both sides are loaded unconditionally so the select vectorizes (a blend, no branch). */                   \
        if (sk == 1 && sa == 1 && sb == 1) {                                                                           \
            EW_SIMD for (int64_t i = 0; i < n; i++) {                                                                  \
                const T x = a[i], y = b[i];                                                                            \
                o[i] = k[i] ? x : y;                                                                                   \
            }                                                                                                          \
        } else if (sk == 1 && sa == 1 && sb == 0) {                                                                    \
            const T y = b[0];                                                                                          \
            EW_SIMD for (int64_t i = 0; i < n; i++) {                                                                  \
                const T x = a[i];                                                                                      \
                o[i] = k[i] ? x : y;                                                                                   \
            }                                                                                                          \
        } else if (sk == 1 && sa == 0 && sb == 1) {                                                                    \
            const T x = a[0];                                                                                          \
            EW_SIMD for (int64_t i = 0; i < n; i++) {                                                                  \
                const T y = b[i];                                                                                      \
                o[i] = k[i] ? x : y;                                                                                   \
            }                                                                                                          \
        } else {                                                                                                       \
            for (int64_t i = 0; i < n; i++) o[i] = k[i * sk] ? a[i * sa] : b[i * sb];                                  \
        }                                                                                                              \
    }
#define EW_ROW_ENTRY(E, sfx, T, U, C, MN, MX, op) [E] = row_##op##_##sfx,

/* ---- the shared shape rule and kernel driver ---- */

static int unsupported(const em_call *c, const ew_row_fn *rows, const em_tensor *x) {
    char ok[160], b[160];
    size_t at = 0;
    ok[0] = '\0';
    for (int d = 0; d < EM_DTYPE_COUNT; d++)
        if (rows[d] && at < sizeof ok)
            at += (size_t)snprintf(ok + at, sizeof ok - at, "%s%s", at ? ", " : "", em_dtype_name((em_dtype)d));
    return em__op_error(c, "dtype %s (input of shape %s) is not supported; expected %s",
                        em_dtype_name((em_dtype)x->dtype), em__tshape(x, b, sizeof b), ok);
}

/* Unary, binary and where (cond, a, b): the value inputs share one dtype that
 * `rows` accepts; the shapes broadcast. */
static int ew_infer(const em_call *c, const ew_row_fn *rows, bool to_bool, em_dtype *dtype, int *ndim, int64_t *shape) {
    char b1[160], b2[160];
    const em_tensor *x = c->in[c->n - 1];
    if (c->n == 3 && c->in[0]->dtype != EM_BOOL)
        return em__op_error(c, "cond must be bool, got %s %s", em_dtype_name((em_dtype)c->in[0]->dtype),
                            em__tshape(c->in[0], b1, sizeof b1));
    if (c->n >= 2 && c->in[c->n - 2]->dtype != x->dtype) {
        const em_tensor *w = c->in[c->n - 2];
        return em__op_error(c, "dtypes differ: %s %s vs %s %s (convert one with em_cast)",
                            em_dtype_name((em_dtype)w->dtype), em__tshape(w, b1, sizeof b1),
                            em_dtype_name((em_dtype)x->dtype), em__tshape(x, b2, sizeof b2));
    }
    if (!rows[x->dtype]) return unsupported(c, rows, x);
    *dtype = to_bool ? EM_BOOL : (em_dtype)x->dtype;
    return em__broadcast_shapes(c, ndim, shape);
}

typedef struct ew_job {
    em_bcast p;
    ew_row_fn row;
    char *out;
    const char *in[EM_BCAST_MAX_IN];
    int64_t osize, isize[EM_BCAST_MAX_IN];
    double f[4];
} ew_job;

/* Output elements [begin, end): one row call per run of the innermost axis. */
static void ew_range(void *ctx, int64_t begin, int64_t end) {
    const ew_job *j = ctx;
    const em_bcast *p = &j->p;
    const int last = p->ndim - 1;
    int64_t idx[EM_MAX_DIMS], off[EM_BCAST_MAX_IN], s[EM_BCAST_MAX_IN];
    for (int k = 0; k < p->nin; k++) s[k] = p->strides[k][last];
    em_bcast_locate(p, begin, idx, off);
    for (int64_t pos = begin; pos < end;) {
        int64_t n = p->shape[last] - idx[last];
        if (n > end - pos) n = end - pos;
        const void *in[EM_BCAST_MAX_IN];
        for (int k = 0; k < p->nin; k++) in[k] = j->in[k] + off[k] * j->isize[k];
        j->row(j->out + pos * j->osize, in, s, n, j->f);
        pos += n;
        em_bcast_advance(p, n, idx, off);
    }
}

static void ew_run(const em_call *c, em_tensor *out, ew_row_fn row) {
    ew_job j; /* fields set one by one: zeroing the whole job costs more than a small op */
    j.row = row;
    j.out = out->data;
    j.osize = (int64_t)em_dtype_size((em_dtype)out->dtype);
    memcpy(j.f, c->a->f, sizeof j.f);
    em_bcast_init(&j.p, out->ndim, out->shape, c->n);
    for (int k = 0; k < c->n; k++) {
        const em_tensor *t = c->in[k];
        em_bcast_input(&j.p, k, t->ndim, t->shape, t->strides);
        j.in[k] = t->data;
        j.isize[k] = (int64_t)em_dtype_size((em_dtype)t->dtype);
    }
    em_bcast_coalesce(&j.p);
    em__parallel_for(out->numel, EW_GRAIN, ew_range, &j);
}

/* One op's rows for the dtypes of LIST, its shape rule and its kernel. */
#define EW_DEFINE(op, LIST, OUT, DEF, F)                                                                               \
    LIST(DEF, op, OUT, F)                                                                                              \
    static const ew_row_fn rows_##op[EM_DTYPE_COUNT] = {LIST(EW_ROW_ENTRY, op)};                                       \
    static int infer_##op(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {                              \
        return ew_infer(c, rows_##op, OUT_IS_BOOL_##OUT, dtype, ndim, shape);                                          \
    }                                                                                                                  \
    static void cpu_##op(const em_call *c, em_tensor *out) { ew_run(c, out, rows_##op[c->in[c->n - 1]->dtype]); }

EW_DEFINE(add, EW_NUMERIC, SAME, DEF_BINARY, E_ADD)
EW_DEFINE(sub, EW_NUMERIC, SAME, DEF_BINARY, E_SUB)
EW_DEFINE(mul, EW_NUMERIC, SAME, DEF_BINARY, E_MUL)
EW_DEFINE(div, EW_NUMERIC, SAME, DEF_BINARY, E_DIV)
EW_DEFINE(pow, EW_FLOATS, SAME, DEF_BINARY, E_POW)
EW_DEFINE(maximum, EW_NUMERIC, SAME, DEF_BINARY, E_MAXIMUM)
EW_DEFINE(minimum, EW_NUMERIC, SAME, DEF_BINARY, E_MINIMUM)
EW_DEFINE(neg, EW_NUMERIC, SAME, DEF_UNARY, E_NEG)
EW_DEFINE(abs, EW_NUMERIC, SAME, DEF_UNARY, E_ABS)
EW_DEFINE(square, EW_NUMERIC, SAME, DEF_UNARY, E_SQUARE)
EW_DEFINE(sign, EW_NUMERIC, SAME, DEF_UNARY, E_SIGN)
EW_DEFINE(sqrt, EW_FLOATS, SAME, DEF_UNARY, E_SQRT)
EW_DEFINE(rsqrt, EW_FLOATS, SAME, DEF_UNARY, E_RSQRT)
EW_DEFINE(exp, EW_FLOATS, SAME, DEF_UNARY, E_EXP)
EW_DEFINE(log, EW_FLOATS, SAME, DEF_UNARY, E_LOG)
EW_DEFINE(log1p, EW_FLOATS, SAME, DEF_UNARY, E_LOG1P)
EW_DEFINE(erf, EW_FLOATS, SAME, DEF_UNARY, E_ERF)
EW_DEFINE(relu, EW_FLOATS, SAME, DEF_UNARY, E_RELU)
EW_DEFINE(relu_grad, EW_FLOATS, SAME, DEF_BINARY, E_RELU_GRAD)
EW_DEFINE(leaky_relu, EW_FLOATS, SAME, DEF_UNARY, E_LEAKY_RELU)
EW_DEFINE(elu, EW_FLOATS, SAME, DEF_UNARY, E_ELU)
EW_DEFINE(sigmoid, EW_FLOATS, SAME, DEF_UNARY, E_SIGMOID)
EW_DEFINE(sigmoid_grad, EW_FLOATS, SAME, DEF_BINARY, E_SIGMOID_GRAD)
EW_DEFINE(tanh, EW_FLOATS, SAME, DEF_UNARY, E_TANH)
EW_DEFINE(tanh_grad, EW_FLOATS, SAME, DEF_BINARY, E_TANH_GRAD)
EW_DEFINE(softplus, EW_FLOATS, SAME, DEF_UNARY, E_SOFTPLUS)
EW_DEFINE(gelu, EW_FLOATS, SAME, DEF_UNARY, E_GELU)
EW_DEFINE(clip, EW_NUMERIC, SAME, DEF_UNARY, E_CLIP)
EW_DEFINE(where, EW_ALL, SAME, DEF_WHERE, 0)
EW_DEFINE(equal, EW_ALL, BOOL, DEF_BINARY, E_EQUAL)
EW_DEFINE(not_equal, EW_ALL, BOOL, DEF_BINARY, E_NOT_EQUAL)
EW_DEFINE(less, EW_ALL, BOOL, DEF_BINARY, E_LESS)
EW_DEFINE(less_equal, EW_ALL, BOOL, DEF_BINARY, E_LESS_EQUAL)
EW_DEFINE(greater, EW_ALL, BOOL, DEF_BINARY, E_GREATER)
EW_DEFINE(greater_equal, EW_ALL, BOOL, DEF_BINARY, E_GREATER_EQUAL)
EW_DEFINE(logical_and, EW_BOOLS, BOOL, DEF_BINARY, E_LOGICAL_AND)
EW_DEFINE(logical_or, EW_BOOLS, BOOL, DEF_BINARY, E_LOGICAL_OR)
EW_DEFINE(logical_not, EW_BOOLS, BOOL, DEF_UNARY, E_LOGICAL_NOT)

static int infer_clip_bounds(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    if (!(c->a->f[0] <= c->a->f[1]))
        return em__op_error(c, "bounds must satisfy lo <= hi, got lo=%g hi=%g", c->a->f[0], c->a->f[1]);
    return infer_clip(c, dtype, ndim, shape);
}

/* Cast rows for every (source, target) pair. The preprocessor does not
 * re-enter a macro inside its own expansion, so the source loop is spelled out. */
#define DEF_CAST(E, sfx, T, U, C, MN, MX, ssfx, ST, SC) EW_ROW1(row_cast_##ssfx##_##sfx, T, ST, CVT_##C, SC, T, MN, MX)
#define EW_CAST_ENTRY(E, sfx, T, U, C, MN, MX, ssfx) [E] = row_cast_##ssfx##_##sfx,
EW_ALL(DEF_CAST, f32, float, FLT)
EW_ALL(DEF_CAST, f64, double, FLT)
EW_ALL(DEF_CAST, i32, int32_t, SGN)
EW_ALL(DEF_CAST, i64, int64_t, SGN)
EW_ALL(DEF_CAST, u8, uint8_t, UNS)
EW_ALL(DEF_CAST, b8, uint8_t, BOL)
static const ew_row_fn cast_rows[EM_DTYPE_COUNT][EM_DTYPE_COUNT] = {
    [EM_F32] = {EW_ALL(EW_CAST_ENTRY, f32)}, [EM_F64] = {EW_ALL(EW_CAST_ENTRY, f64)},
    [EM_I32] = {EW_ALL(EW_CAST_ENTRY, i32)}, [EM_I64] = {EW_ALL(EW_CAST_ENTRY, i64)},
    [EM_U8] = {EW_ALL(EW_CAST_ENTRY, u8)},   [EM_BOOL] = {EW_ALL(EW_CAST_ENTRY, b8)},
};

static int infer_cast(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    if (c->a->dtype < 0 || c->a->dtype >= EM_DTYPE_COUNT)
        return em__op_error(c, "invalid target dtype %d", c->a->dtype);
    *dtype = (em_dtype)c->a->dtype;
    return em__broadcast_shapes(c, ndim, shape);
}

static void cpu_cast(const em_call *c, em_tensor *out) { ew_run(c, out, cast_rows[c->in[0]->dtype][out->dtype]); }

/* ---- gradient rules (public ops only) ---- */

/* A scalar of x's dtype: broadcasts against anything. */
static em_tensor *K(const em_tensor *x, double v) { return em_scalar((em_dtype)x->dtype, v); }

/* g summed back over the axes along which x was broadcast. */
static em_tensor *unbroadcast(em_tensor *g, const em_tensor *x) { return em__sum_to_shape(g, x->ndim, x->shape); }

#define UNARY_GRAD(op, expr)                                                                                           \
    static int grad_##op(const em_call *c, em_tensor *out, em_tensor *g, const bool *need, em_tensor **gin) {          \
        em_tensor *x = c->in[0];                                                                                       \
        (void)out, (void)x, (void)g, (void)need;                                                                       \
        gin[0] = (expr);                                                                                               \
        return gin[0] ? 0 : -1;                                                                                        \
    }

/* Binary rules: ga and gb have the broadcast output's shape, then are summed
 * down to each input's shape; only the needed ones are built. */
#define BINARY_GRAD(op, ga, gb)                                                                                        \
    static int grad_##op(const em_call *c, em_tensor *out, em_tensor *g, const bool *need, em_tensor **gin) {          \
        em_tensor *a = c->in[0], *b = c->in[1];                                                                        \
        (void)out;                                                                                                     \
        if (need[0] && !(gin[0] = unbroadcast((ga), a))) return -1;                                                    \
        if (need[1] && !(gin[1] = unbroadcast((gb), b))) return -1;                                                    \
        return 0;                                                                                                      \
    }

/* log(a) where a > 0 and 0 elsewhere, without evaluating log at a <= 0. */
static em_tensor *log_positive(em_tensor *a) {
    em_tensor *pos = em_greater(a, K(a, 0));
    return em_where(pos, em_log(em_where(pos, a, K(a, 1))), K(a, 0));
}

/* d gelu/dx = Phi(x) + x phi(x): the standard normal cdf and density. */
static em_tensor *gelu_slope(em_tensor *x) {
    em_tensor *cdf = em_add_scalar(em_mul_scalar(em_erf(em_mul_scalar(x, EW_SQRT1_2)), 0.5), 0.5);
    em_tensor *pdf = em_mul_scalar(em_exp(em_mul_scalar(em_square(x), -0.5)), EW_1_SQRT2PI);
    return em_add(cdf, em_mul(x, pdf));
}

BINARY_GRAD(add, g, g)
BINARY_GRAD(sub, g, em_neg(g))
BINARY_GRAD(mul, em_mul(g, b), em_mul(g, a))
BINARY_GRAD(div, em_div(g, b), em_neg(em_div(em_mul(g, out), b)))
BINARY_GRAD(pow, em_mul(g, em_mul(b, em_pow(a, em_add_scalar(b, -1)))), em_mul(g, em_mul(out, log_positive(a))))
/* Ties send the gradient to a. */
BINARY_GRAD(maximum, em_where(em_greater_equal(a, b), g, K(g, 0)), em_where(em_greater_equal(a, b), K(g, 0), g))
BINARY_GRAD(minimum, em_where(em_less_equal(a, b), g, K(g, 0)), em_where(em_less_equal(a, b), K(g, 0), g))

UNARY_GRAD(neg, em_neg(g))
UNARY_GRAD(abs, em_mul(g, em_sign(x)))
UNARY_GRAD(square, em_mul(g, em_mul_scalar(x, 2)))
UNARY_GRAD(sign, em_fill_like(x, 0))
UNARY_GRAD(sqrt, em_div(g, em_mul_scalar(out, 2)))
UNARY_GRAD(rsqrt, em_mul(g, em_mul_scalar(em_mul(out, em_square(out)), -0.5)))
UNARY_GRAD(exp, em_mul(g, out))
UNARY_GRAD(log, em_div(g, x))
UNARY_GRAD(log1p, em_div(g, em_add_scalar(x, 1)))
UNARY_GRAD(erf, em_mul(g, em_mul_scalar(em_exp(em_neg(em_square(x))), EW_2_SQRTPI)))
/* relu_grad(x, g) is linear in g and flat in x: its own gradient goes to g alone. */
static em_tensor *relu_grad(em_tensor *x, em_tensor *g) {
    return em__apply(EM_OP_RELU_GRAD, 2, (em_tensor *[]){x, g}, &(em_attrs){0});
}
static int grad_relu_grad(const em_call *c, em_tensor *out, em_tensor *g, const bool *need, em_tensor **gin) {
    (void)out;
    if (need[1] && !(gin[1] = unbroadcast(relu_grad(c->in[0], g), c->in[1]))) return -1;
    return 0;
}
UNARY_GRAD(relu, relu_grad(x, g))
UNARY_GRAD(leaky_relu, em_where(em_greater(x, K(x, 0)), g, em_mul_scalar(g, c->a->f[0])))
UNARY_GRAD(elu, em_where(em_greater(x, K(x, 0)), g, em_mul(g, em_exp(x))))
/* sigmoid and tanh differentiate through their outputs, in one pass each:
 * sigmoid_grad(y, g) = g y (1 - y), whose own gradients are G g (1 - 2y) for
 * y and sigmoid_grad(y, G) for g; tanh_grad(y, g) = g (1 - y^2), with
 * -2 G g y and tanh_grad(y, G). */
static em_tensor *output_grad(em_op op, em_tensor *y, em_tensor *g) {
    return em__apply(op, 2, (em_tensor *[]){y, g}, &(em_attrs){0});
}
static int grad_sigmoid_grad(const em_call *c, em_tensor *out, em_tensor *g, const bool *need, em_tensor **gin) {
    em_tensor *y = c->in[0], *dy = c->in[1];
    (void)out;
    if (need[0] && !(gin[0] = unbroadcast(em_mul(em_mul(g, dy), em_add_scalar(em_mul_scalar(y, -2), 1)), y)))
        return -1;
    if (need[1] && !(gin[1] = unbroadcast(output_grad(EM_OP_SIGMOID_GRAD, y, g), dy))) return -1;
    return 0;
}
static int grad_tanh_grad(const em_call *c, em_tensor *out, em_tensor *g, const bool *need, em_tensor **gin) {
    em_tensor *y = c->in[0], *dy = c->in[1];
    (void)out;
    if (need[0] && !(gin[0] = unbroadcast(em_mul(em_mul(g, dy), em_mul_scalar(y, -2)), y))) return -1;
    if (need[1] && !(gin[1] = unbroadcast(output_grad(EM_OP_TANH_GRAD, y, g), dy))) return -1;
    return 0;
}
UNARY_GRAD(sigmoid, output_grad(EM_OP_SIGMOID_GRAD, out, g))
UNARY_GRAD(tanh, output_grad(EM_OP_TANH_GRAD, out, g))
UNARY_GRAD(softplus, em_mul(g, em_sigmoid(x)))
UNARY_GRAD(gelu, em_mul(g, gelu_slope(x)))
UNARY_GRAD(clip, em_where(em_logical_and(em_greater_equal(x, K(x, c->a->f[0])), em_less_equal(x, K(x, c->a->f[1]))), g,
                          K(x, 0)))

static int grad_where(const em_call *c, em_tensor *out, em_tensor *g, const bool *need, em_tensor **gin) {
    em_tensor *cond = c->in[0];
    (void)out;
    if (need[1] && !(gin[1] = unbroadcast(em_where(cond, g, K(g, 0)), c->in[1]))) return -1;
    if (need[2] && !(gin[2] = unbroadcast(em_where(cond, K(g, 0), g), c->in[2]))) return -1;
    return 0;
}

/* Only float-to-float casts carry a gradient (cast back); others leave gin NULL. */
static int grad_cast(const em_call *c, em_tensor *out, em_tensor *g, const bool *need, em_tensor **gin) {
    em_tensor *x = c->in[0];
    if (!need[0] || !em__is_float((em_dtype)x->dtype) || !em__is_float((em_dtype)out->dtype)) return 0;
    gin[0] = em_cast(g, (em_dtype)x->dtype);
    return gin[0] ? 0 : -1;
}

/* ---- the table ---- */

#define EW_OP(OP, op, nin, grad_fn, extra_flags)                                                                       \
    [EM_OP_##OP - EM_OPS_ELEMENTWISE_BEGIN] = {.name = #op,                                                            \
                                               .arity = nin,                                                           \
                                               .flags = EM_OPF_STRIDED | (extra_flags),                                \
                                               .infer = infer_##op,                                                    \
                                               .cpu = cpu_##op,                                                         \
                                               .gpu = GPU_KERNEL,                                                      \
                                               .grad = grad_fn}
#define EW_DIFF(OP, op, nin) EW_OP(OP, op, nin, grad_##op, 0)
#define EW_NONDIFF(OP, op, nin) EW_OP(OP, op, nin, NULL, EM_OPF_NONDIFF)

const em_op_def em_ops_elementwise[] = {
    EW_DIFF(ADD, add, 2),
    EW_DIFF(SUB, sub, 2),
    EW_DIFF(MUL, mul, 2),
    /* Integer division truncates toward zero; x/0 is 0 for integer dtypes (IEEE for floats). */
    EW_DIFF(DIV, div, 2),
    EW_DIFF(POW, pow, 2),
    EW_DIFF(MAXIMUM, maximum, 2),
    EW_DIFF(MINIMUM, minimum, 2),
    EW_DIFF(NEG, neg, 1),
    EW_DIFF(ABS, abs, 1),
    EW_DIFF(SQUARE, square, 1),
    EW_DIFF(SIGN, sign, 1),
    EW_DIFF(SQRT, sqrt, 1),
    EW_DIFF(RSQRT, rsqrt, 1),
    EW_DIFF(EXP, exp, 1),
    EW_DIFF(LOG, log, 1),
    EW_DIFF(LOG1P, log1p, 1),
    EW_DIFF(ERF, erf, 1),
    EW_DIFF(RELU, relu, 1),
    EW_DIFF(RELU_GRAD, relu_grad, 2),
    EW_DIFF(LEAKY_RELU, leaky_relu, 1), /* f[0]: alpha */
    EW_DIFF(ELU, elu, 1),
    EW_DIFF(SIGMOID, sigmoid, 1),
    EW_DIFF(SIGMOID_GRAD, sigmoid_grad, 2),
    EW_DIFF(TANH, tanh, 1),
    EW_DIFF(TANH_GRAD, tanh_grad, 2),
    EW_DIFF(SOFTPLUS, softplus, 1),
    EW_DIFF(GELU, gelu, 1),
    /* f[0]: lo, f[1]: hi, lo <= hi. */
    [EM_OP_CLIP - EM_OPS_ELEMENTWISE_BEGIN] = {.name = "clip",
                                               .arity = 1,
                                               .flags = EM_OPF_STRIDED,
                                               .infer = infer_clip_bounds,
                                               .cpu = cpu_clip, .gpu = GPU_KERNEL,
                                               .grad = grad_clip},
    EW_DIFF(WHERE, where, 3), /* cond (bool), a, b */
    EW_DIFF(CAST, cast, 1),   /* dtype: the target */
    EW_NONDIFF(EQUAL, equal, 2),
    EW_NONDIFF(NOT_EQUAL, not_equal, 2),
    EW_NONDIFF(LESS, less, 2),
    EW_NONDIFF(LESS_EQUAL, less_equal, 2),
    EW_NONDIFF(GREATER, greater, 2),
    EW_NONDIFF(GREATER_EQUAL, greater_equal, 2),
    EW_NONDIFF(LOGICAL_AND, logical_and, 2),
    EW_NONDIFF(LOGICAL_OR, logical_or, 2),
    EW_NONDIFF(LOGICAL_NOT, logical_not, 1),
};
EM_OP_TABLE_CHECK(elementwise, EM_OPS_ELEMENTWISE_BEGIN, EM_OPS_ELEMENTWISE_END);

/* ---- public functions ---- */

static em_tensor *unary(em_op op, em_tensor *x, const em_attrs *a) { return em__apply(op, 1, &x, a); }

static em_tensor *binary(em_op op, em_tensor *a, em_tensor *b) {
    em_tensor *in[2] = {a, b};
    return em__apply(op, 2, in, &(em_attrs){0});
}

#define EW_PUBLIC_BINARY(OP, op)                                                                                       \
    em_tensor *em_##op(em_tensor *a, em_tensor *b) { return binary(EM_OP_##OP, a, b); }
#define EW_PUBLIC_UNARY(OP, op)                                                                                        \
    em_tensor *em_##op(em_tensor *x) { return unary(EM_OP_##OP, x, &(em_attrs){0}); }

EW_PUBLIC_BINARY(ADD, add)
EW_PUBLIC_BINARY(SUB, sub)
EW_PUBLIC_BINARY(MUL, mul)
EW_PUBLIC_BINARY(DIV, div)
EW_PUBLIC_BINARY(POW, pow)
EW_PUBLIC_BINARY(MAXIMUM, maximum)
EW_PUBLIC_BINARY(MINIMUM, minimum)
EW_PUBLIC_BINARY(EQUAL, equal)
EW_PUBLIC_BINARY(NOT_EQUAL, not_equal)
EW_PUBLIC_BINARY(LESS, less)
EW_PUBLIC_BINARY(LESS_EQUAL, less_equal)
EW_PUBLIC_BINARY(GREATER, greater)
EW_PUBLIC_BINARY(GREATER_EQUAL, greater_equal)
EW_PUBLIC_BINARY(LOGICAL_AND, logical_and)
EW_PUBLIC_BINARY(LOGICAL_OR, logical_or)
EW_PUBLIC_UNARY(NEG, neg)
EW_PUBLIC_UNARY(ABS, abs)
EW_PUBLIC_UNARY(SQUARE, square)
EW_PUBLIC_UNARY(SIGN, sign)
EW_PUBLIC_UNARY(SQRT, sqrt)
EW_PUBLIC_UNARY(RSQRT, rsqrt)
EW_PUBLIC_UNARY(EXP, exp)
EW_PUBLIC_UNARY(LOG, log)
EW_PUBLIC_UNARY(LOG1P, log1p)
EW_PUBLIC_UNARY(ERF, erf)
EW_PUBLIC_UNARY(RELU, relu)
EW_PUBLIC_UNARY(ELU, elu)
EW_PUBLIC_UNARY(SIGMOID, sigmoid)
EW_PUBLIC_UNARY(TANH, tanh)
EW_PUBLIC_UNARY(SOFTPLUS, softplus)
EW_PUBLIC_UNARY(GELU, gelu)
EW_PUBLIC_UNARY(LOGICAL_NOT, logical_not)

em_tensor *em_leaky_relu(em_tensor *x, double alpha) { return unary(EM_OP_LEAKY_RELU, x, &(em_attrs){.f = {alpha}}); }

em_tensor *em_clip_by_value(em_tensor *x, double lo, double hi) {
    return unary(EM_OP_CLIP, x, &(em_attrs){.f = {lo, hi}});
}

em_tensor *em_cast(em_tensor *x, em_dtype dtype) { return unary(EM_OP_CAST, x, &(em_attrs){.dtype = (int)dtype}); }

em_tensor *em_where(em_tensor *cond, em_tensor *a, em_tensor *b) {
    em_tensor *in[3] = {cond, a, b};
    return em__apply(EM_OP_WHERE, 3, in, &(em_attrs){0});
}

em_tensor *em_add_scalar(em_tensor *x, double s) {
    if (!x) return em__null_input("add_scalar");
    return em_add(x, em_scalar((em_dtype)x->dtype, s));
}

em_tensor *em_mul_scalar(em_tensor *x, double s) {
    if (!x) return em__null_input("mul_scalar");
    return em_mul(x, em_scalar((em_dtype)x->dtype, s));
}
