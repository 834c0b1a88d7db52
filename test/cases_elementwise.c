/* The elementwise family's forward cases (run by test_ops.c on every device)
 * and gradient-check cases (test_gradcheck.c, float64; binary ops with
 * broadcasting; inputs away from kinks, such as abs and relu at 0 and clip at
 * its bounds, and from domain edges via lo/hi). Both tables call the same
 * w_<op> wrappers. */
#include "common.h"

#include <string.h>

/* The unary float ops, one line each: X(ID, op, reference, inputs, shape, lo,
 * hi). The reference is an expression in the double x, written independently
 * of the kernel's formula; `inputs` are its forward cases' values (below),
 * run in float32 and float64; its float64 gradient check draws `shape` from
 * [lo, hi). The line makes the op's wrapper, reference, forward cases and
 * gradient case. */
#define EW_UNARY_FLOAT(X)                                                                                              \
    X(SQRT, sqrt, sqrt(x), x_dom, (2, 3), 0.5, 2)                                                                      \
    X(RSQRT, rsqrt, 1 / sqrt(x), x_dom, (2, 3), 0.5, 2)                                                                \
    X(EXP, exp, exp(x), x_exp, (2, 3), -1, 1)                                                                          \
    X(LOG, log, log(x), x_dom, (2, 3), 0.5, 2)                                                                         \
    X(LOG1P, log1p, log1p(x), x_dom, (2, 3), -0.5, 2)                                                                  \
    X(ERF, erf, erf(x), x_all, (2, 3), -1.5, 1.5)                                                                      \
    X(SIN, sin, sin(x), x_all, (2, 3), -3, 3)                                                                          \
    X(COS, cos, cos(x), x_all, (2, 3), -3, 3)                                                                          \
    X(TAN, tan, tan(x), x_all, (2, 3), -1.2, 1.2)                                                                      \
    X(RECIPROCAL, reciprocal, 1 / x, x_all, (2, 3), 0.5, 2)                                                            \
    X(RELU, relu, isnan(x) || x > 0 ? x : 0, x_act, (3, 4), -1, 1)                                                     \
    X(ELU, elu, x < 0 ? exp(x) - 1 : x, x_act, (3, 4), -2, 2)                                                          \
    X(SIGMOID, sigmoid, 1 / (1 + exp(-x)), x_act, (2, 3), -3, 3)                                                       \
    X(TANH, tanh, tanh(x), x_act, (2, 3), -2, 2)                                                                       \
    /* log(1 + e^x); past 30, x + e^-x (log1p(e^-x) to double precision) */                                           \
    X(SOFTPLUS, softplus, x > 30 ? x + exp(-x) : log1p(exp(x)), x_act, (2, 3), -3, 3)                                  \
    /* away from the kinks at +-2.5 */                                                                                 \
    X(HARD_SIGMOID, hard_sigmoid, isnan(x) ? x : fmin(1, fmax(0, 0.2 * x + 0.5)), x_act, (3, 4), -2.3, 2.3)          \
    X(LOG_SIGMOID, log_sigmoid, -log1p(exp(-x)), x_act, (2, 3), -4, 4)                                                 \
    /* x Phi(x) = x erfc(-x / sqrt 2) / 2: no cancellation for negative x */                                          \
    X(GELU, gelu, 0.5 * x * erfc(-x / sqrt(2.0)), x_gelu, (3, 4), -3, 3)                                             \
    X(SILU, silu, x / (1 + exp(-x)), x_act, (2, 3), -4, 4)                                                            \
    X(GELU_TANH, gelu_tanh, 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x))), x_gelu, (3, 4), -3, 3)
#define EW_UNARY_WRAPPER(ID, op, ...)                                                                                  \
    static em_tensor *w_##op(em_tensor *const *in) { return em_##op(in[0]); }
EW_UNARY_FLOAT(EW_UNARY_WRAPPER)

/* sign has a zero gradient: multiplied by x so the check is not vacuous. */
static em_tensor *f_sign(em_tensor *const *in) { return em_mul(em_sign(in[0]), in[0]); }
static em_tensor *f_cast(em_tensor *const *in) { return em_cast(in[0], EM_F64); }
/* The gradient of exp(x)^2 and of tanh(x)*tanh(x) flows through `out`. */
static em_tensor *f_exp_twice(em_tensor *const *in) { return em_mul(em_exp(in[0]), em_exp(in[0])); }
static em_tensor *f_band_part(em_tensor *const *in) { return em_band_part(in[0], 1, 0); }
static em_tensor *f_add_scalar(em_tensor *const *in) { return em_mul_scalar(em_add_scalar(in[0], 1.5), -2); }

/* where's condition: a fixed bool pattern of shape [2,3] or [2,1]. */
static em_tensor *where_cond(int i) {
    static const uint8_t c[6] = {1, 0, 0, 1, 1, 0};
    return i == 0 ? em_tensor_from(EM_BOOL, EM_SHAPE(2, 3), c) : NULL;
}
static em_tensor *where_cond_col(int i) {
    static const uint8_t c[2] = {0, 1};
    return i == 0 ? em_tensor_from(EM_BOOL, EM_SHAPE(2, 1), c) : NULL;
}

#define U1(OP, fn, shape, lo, hi) {OP, #fn " " #shape, 1, {EM_SHAPE shape}, fn, lo, hi, 0, NULL}
#define B2(OP, fn, sa, sb, lo, hi) {OP, #fn " " #sa " " #sb, 2, {EM_SHAPE sa, EM_SHAPE sb}, fn, lo, hi, 0, NULL}


/* ==== Forward cases (run by test_ops.c on every device) ====
 * Expected values are either literals (integer arithmetic, casts, sign:
 * worked out by hand and checked with NumPy, whose fixed-width integers wrap
 * the same way; the formula sits beside each) or come from ref_ew/ref_where,
 * which recompute every output element in double with libm from the values
 * the inputs hold, with formulas written independently of the kernels'
 * (e.g. sigmoid as 1/(1+exp(-x)), gelu with erfc). Tolerances: float64
 * 1e-12, float32 2e-6 (relative, absolute below 1); integer and bool outputs
 * and casts are exact. bfloat16 and float16 compute in float32 and round once:
 * against the exact value rounded to the narrow type, one unit in the last
 * place (2^-7 and 2^-10 relative), where float32's error meets a tie. */

#define TOL32 2e-6
#define TOL64 1e-12
#define TOLBF16 8e-3
#define TOLF16 1e-3
#define I32MIN (-2147483648.0)
#define I32MAX 2147483647.0
#define I64MIN (-9223372036854775808.0) /* -2^63 */
#define I64MAX 9223372036854775807.0    /* the double 2^63: test_ops compares int64 values as doubles */
#define P32 4294967296.0                /* 2^32 */
#define P40 1099511627776.0             /* 2^40 */
#define P53 9007199254740992.0          /* 2^53 */
#define P62 4611686018427387904.0       /* 2^62 */
#define INF INFINITY
#define LEAKY_ALPHA 0.2
#define CLIP_LO (-0.45)
#define CLIP_HI 0.55

/* ---- the ops as fw_case functions ---- */
#define W1(op) \
    static em_tensor *w_##op(em_tensor *const *in) { return em_##op(in[0]); }
#define W2(op) \
    static em_tensor *w_##op(em_tensor *const *in) { return em_##op(in[0], in[1]); }
/* The fused gradient ops have no public function. */
#define WG(op, ID) \
    static em_tensor *w_##op(em_tensor *const *in) { return em__apply(EM_OP_##ID, 2, in, &(em_attrs){0}); }
#define WC(sfx, DT) \
    static em_tensor *w_cast_##sfx(em_tensor *const *in) { return em_cast(in[0], DT); }
W2(add) W2(sub) W2(mul) W2(div) W2(pow) W2(maximum) W2(minimum)
W1(neg) W1(abs) W1(square) W1(sign) W1(floor) W1(ceil) W1(round) W2(floormod)

WG(relu_grad, RELU_GRAD) WG(sigmoid_grad, SIGMOID_GRAD) WG(tanh_grad, TANH_GRAD) WG(gelu_tanh_grad, GELU_TANH_GRAD)
W2(equal) W2(not_equal) W2(less) W2(less_equal) W2(greater) W2(greater_equal)
W2(logical_and) W2(logical_or) W1(logical_not)
WC(f32, EM_F32) WC(f64, EM_F64) WC(i32, EM_I32) WC(i64, EM_I64) WC(u8, EM_U8) WC(b8, EM_BOOL)
WC(bf16, EM_BF16) WC(f16, EM_F16) WC(i8, EM_I8) WC(i16, EM_I16) WC(u16, EM_U16)
#define DT_i8 EM_I8
#define DT_i16 EM_I16
#define DT_u16 EM_U16
#define DT_bf16 EM_BF16
#define DT_f16 EM_F16
#define DT_f32 EM_F32
#define DT_f64 EM_F64
#define DT_i32 EM_I32
#define DT_i64 EM_I64
#define DT_u8 EM_U8
#define DT_b8 EM_BOOL
static em_tensor *w_leaky_relu(em_tensor *const *in) { return em_leaky_relu(in[0], LEAKY_ALPHA); }
static em_tensor *w_clip(em_tensor *const *in) { return em_clip_by_value(in[0], CLIP_LO, CLIP_HI); }
/* Integer clips: bounds round inward ([-2.5, 3.5] is [-2, 3]) and saturate to the dtype's range. */
static em_tensor *w_clip_inward(em_tensor *const *in) { return em_clip_by_value(in[0], -2.5, 3.5); }
static em_tensor *w_clip_wide(em_tensor *const *in) { return em_clip_by_value(in[0], -1e10, 1e10); }
static em_tensor *w_clip_10_200(em_tensor *const *in) { return em_clip_by_value(in[0], 10.2, 200.7); }
static em_tensor *w_clip_upto5(em_tensor *const *in) { return em_clip_by_value(in[0], -1e30, 5); }
static em_tensor *w_where(em_tensor *const *in) { return em_where(in[0], in[1], in[2]); }
/* Signed zeros, made visible as the sign of an infinity: in[1] / op(in[0]). */
static em_tensor *w_neg_zero(em_tensor *const *in) { return em_div(in[1], em_neg(in[0])); }
static em_tensor *w_abs_zero(em_tensor *const *in) { return em_div(in[1], em_abs(in[0])); }
static em_tensor *w_tanh_zero(em_tensor *const *in) { return em_div(in[1], em_tanh(in[0])); }

/* ---- references, in double from the values the inputs hold ---- */


/* The element of `in` that output element i (row-major in `out`) reads under NumPy broadcasting. */
static int64_t bcast_at(const fw_input *in, em_shape out, int64_t i) {
    int64_t at = 0, stride = 1;
    for (int d = out.ndim - 1, e = in->shape.ndim - 1; d >= 0; d--, e--) {
        int64_t coord = i % out.dims[d];
        i /= out.dims[d];
        if (e < 0) continue;
        if (in->shape.dims[e] != 1) at += coord * stride;
        stride *= in->shape.dims[e];
    }
    return at;
}

/* A double rounded to float32, overflowing to an infinity as IEEE conversion does. */
static double to_f32(double v) {
    if (fabs(v) >= 0x1.ffffffp127) return copysign(INFINITY, v);
    return (float)v;
}

#define EW_UNARY_REFERENCE(ID, op, ref, ...)                                                                          \
    static double r_##op(double x) { return ref; }
EW_UNARY_FLOAT(EW_UNARY_REFERENCE)
static double r_neg(double x) { return -x; }
static double r_floor(double x) { return floor(x); }
static double r_ceil(double x) { return ceil(x); }
static double r_abs(double x) { return fabs(x); }
static double r_square(double x) { return x * x; }
static double r_leaky_relu(double x) { return x < 0 ? LEAKY_ALPHA * x : x; }
static double r_clip(double x) { return isnan(x) ? x : x < CLIP_LO ? CLIP_LO : x > CLIP_HI ? CLIP_HI : x; }
static double r_add(double x, double y) { return x + y; }
static double r_sub(double x, double y) { return x - y; }
static double r_mul(double x, double y) { return x * y; }
static double r_div(double x, double y) { return x / y; }
/* exact for the finite inputs it is used with (binary fractions) */
static double r_floormod(double x, double y) { return x - y * floor(x / y); }
static double r_maximum(double x, double y) { return isnan(x) || isnan(y) ? NAN : fmax(x, y); }
static double r_minimum(double x, double y) { return isnan(x) || isnan(y) ? NAN : fmin(x, y); }
static double r_relu_grad(double x, double g) { return x > 0 ? g : 0; }
static double r_sigmoid_grad(double y, double g) { return g * y * (1 - y); }
static double r_tanh_grad(double y, double g) { return g * (1 - y * y); }
/* g times the derivative of 0.5 x (1 + tanh(u)); the tails' slopes are 1 and 0 */
static double r_gelu_tanh_grad(double x, double g) {
    if (isinf(x)) return x > 0 ? g : 0 * g;
    double k = sqrt(2 / M_PI), t = tanh(k * (x + 0.044715 * x * x * x));
    return g * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + 3 * 0.044715 * x * x));
}
static double r_equal(double x, double y) { return x == y; }
static double r_not_equal(double x, double y) { return x != y; }
static double r_less(double x, double y) { return x < y; }
static double r_less_equal(double x, double y) { return x <= y; }
static double r_greater(double x, double y) { return x > y; }
static double r_greater_equal(double x, double y) { return x >= y; }
static double r_logical_and(double x, double y) { return x != 0 && y != 0; }
static double r_logical_or(double x, double y) { return x != 0 || y != 0; }
static double r_logical_not(double x) { return x == 0; }

typedef struct ew_ref {
    const char *op;
    double (*f1)(double);
    double (*f2)(double, double);
} ew_ref;
#define EW_UNARY_REFERENCE_ENTRY(ID, op, ...) {#op, r_##op, NULL},
static const ew_ref ew_refs[] = {
    EW_UNARY_FLOAT(EW_UNARY_REFERENCE_ENTRY)
    {"neg", r_neg, NULL},          {"abs", r_abs, NULL},
    {"square", r_square, NULL},    {"floor", r_floor, NULL},
    {"ceil", r_ceil, NULL},
          
                
                
    {"leaky_relu", r_leaky_relu, NULL}, 
      
     
    {"clip", r_clip, NULL},        {"logical_not", r_logical_not, NULL},
    {"add", NULL, r_add},          {"sub", NULL, r_sub},
    {"mul", NULL, r_mul},          {"div", NULL, r_div},
    {"floormod", NULL, r_floormod},
    {"pow", NULL, pow},            {"maximum", NULL, r_maximum},
    {"minimum", NULL, r_minimum},  {"relu_grad", NULL, r_relu_grad},
    {"sigmoid_grad", NULL, r_sigmoid_grad}, {"tanh_grad", NULL, r_tanh_grad},
    {"gelu_tanh_grad", NULL, r_gelu_tanh_grad},
    {"equal", NULL, r_equal},      {"not_equal", NULL, r_not_equal},
    {"less", NULL, r_less},        {"less_equal", NULL, r_less_equal},
    {"greater", NULL, r_greater},  {"greater_equal", NULL, r_greater_equal},
    {"logical_and", NULL, r_logical_and}, {"logical_or", NULL, r_logical_or},
};

/* c's op applied element by element (broadcast) to the held input values,
 * rounded to float32 for a float32 output. */
static void ref_ew(const fw_case *c, double *expect) {
    const ew_ref *r = NULL;
    for (size_t k = 0; k < sizeof ew_refs / sizeof ew_refs[0] && !r; k++)
        if (!strcmp(ew_refs[k].op, c->op)) r = &ew_refs[k];
    ck_assert_msg(r != NULL && (c->nin == 1 ? r->f1 != NULL : r->f2 != NULL), "%s: no reference for %s", c->label,
                  c->op);
    for (int64_t i = 0; i < em_shape_numel(c->out_shape); i++) {
        double x = fw_held(&c->in[0], bcast_at(&c->in[0], c->out_shape, i)), v;
        if (c->nin == 1) v = r->f1(x);
        else v = r->f2(x, fw_held(&c->in[1], bcast_at(&c->in[1], c->out_shape, i)));
        expect[i] = c->out_dtype == EM_F32    ? to_f32(v)
                    : c->out_dtype == EM_BF16 ? em_test_round_bf16(v)
                    : c->out_dtype == EM_F16  ? em_test_round_f16(v)
                                              : v;
    }
}

/* cond ? a : b, broadcast. */
static void ref_where(const fw_case *c, double *expect) {
    for (int64_t i = 0; i < em_shape_numel(c->out_shape); i++) {
        int k = fw_held(&c->in[0], bcast_at(&c->in[0], c->out_shape, i)) != 0 ? 1 : 2;
        expect[i] = fw_held(&c->in[k], bcast_at(&c->in[k], c->out_shape, i));
    }
}

/* ---- standard inputs ---- */
#define N(a) ((int64_t)(sizeof(a) / sizeof((a)[0])))
/* general: signed zeros, infinities, NaN */
static const double x_all[] = {INF, -INF, NAN, -3, -1.5, -0.5, -0.0, 0, 0.25, 1, 10, 2.5};
/* around the domains of sqrt, rsqrt, log and log1p (-1, ±0, negatives) */
static const double x_dom[] = {INF, NAN, -2, -1, -0.5, -0.0, 0, 1e-7, 0.25, 1, 1e10, 2.5};
/* exp: float32 overflow past 88.72 and underflow, float64's past 709.8 and -745 */
static const double x_exp[] = {INF, -INF, NAN, -746, -104, -87, -10, -1, -0.0, 1, 10, 88, 89, 710, 0.5};
/* activations: saturated tails, tanh's float32 branch at |x| = 0.625 and cap at 9 */
static const double x_act[] = {INF, -INF, NAN, -100, -20, -3, -0.7, -0.5, -0.0, 0, 0.625, 3, 9.5, 100, 0.3};
/* gelu: no -Inf (the kernel's 0.5 x (1 + erf(x / sqrt 2)) is -Inf * 0 there) */
static const double x_gelu[] = {INF, NAN, -6, -3, -1.5, -0.5, -0.0, 0, 0.25, 2.5, 6, 1};
/* clip's float bounds [-0.45, 0.55], at and beyond them */
static const double x_clip[] = {INF, -INF, NAN, -3, -0.45, -0.4, -0.0, 0.55, 0.6, 0.5};
/* binary float ops, [3,4] with [3,4]: 0/0, Inf-Inf, Inf/Inf, x/-0, NaN on either side, pow's specials */
static const double ba[] = {1.5, -2, 7, -7, 0, -0.0, 1, INF, INF, NAN, 1, -3};
static const double bb[] = {2.25, 0.5, 2, 2, 0, 1, -0.0, INF, -INF, 1, NAN, 3};
/* broadcasting: [3,1] with [4], and a scalar with [2,3] */
static const double bcol[] = {-1.5, 0, 2};
static const double brow[] = {NAN, 0.5, -2, 3};
static const double bsc[] = {2.5};
static const double bmat[] = {-1, 0, 1.5, 4, -0.0, 8};
/* the fused gradients: x or y, and the incoming gradient g */
static const double grelu_x[] = {INF, -INF, NAN, -1, -0.0, 0, 1e-30, 2};
static const double gsig_y[] = {0, 0.1, 0.25, 0.5, 0.9, 1, 0.73, 0.01};
static const double gtanh_y[] = {-1, -0.9, -0.5, 0, 0.3, 0.76, 1, 0.99};
static const double ggelu_x[] = {INF, -INF, NAN, -6, -1, -0.0, 0.5, 3};
static const double gg[] = {1.5, 2, -3, 4, 0.5, 6, -1, 100};
/* comparisons: NaN compares false (not_equal true), -0 == 0; signed and unsigned ordering at the extremes */
static const double cf_a[] = {1, NAN, -0.0, INF, -INF, 2.5, 3, NAN, 1e-30, -2};
static const double cf_b[] = {1, 1, 0, INF, 1, 2.75, 2, NAN, 0, -1};
static const double ci32_a[] = {I32MIN, -1, 0, 5, I32MAX, 7};
static const double ci32_b[] = {I32MAX, 0, 0, -5, I32MIN, 7};
static const double ci64_a[] = {I64MIN, -1, 0, P62, 5, 7};
static const double ci64_b[] = {P62, 1, 0, I64MIN, 5, 8};
static const double cu8_a[] = {0, 255, 128, 127, 5, 5};
static const double cu8_b[] = {255, 0, 127, 128, 5, 6};
static const double ci8_a[] = {-128, -1, 0, 5, 127, 7};
static const double ci8_b[] = {127, 0, 0, -5, -128, 7};
static const double ci16_a[] = {-32768, -1, 0, 5, 32767, 7};
static const double ci16_b[] = {32767, 0, 0, -5, -32768, 7};
static const double cu16_a[] = {0, 65535, 32768, 32767, 5, 5};
static const double cu16_b[] = {65535, 0, 32767, 32768, 5, 6};
static const double cb_a[] = {0, 0, 1, 1};
static const double cb_b[] = {0, 1, 0, 1};
/* where: cond [2,3], a [2,3], b [3]; a NaN not selected must not leak */
static const double wc[] = {1, 0, 0, 1, 1, 0};
static const double wa_f[] = {NAN, 1.5, -0.0, INF, -2, 7};
static const double wb_f[] = {NAN, 20, 10};
static const double wa_i32[] = {I32MIN, 1, 2, I32MAX, -5, 6};
static const double wa_i64[] = {I64MIN, 1, 2, P62, -5, 6};
static const double wb_i[] = {-1, -2, -3};
static const double wa_u8[] = {255, 1, 2, 128, 0, 6};
static const double wb_u8[] = {7, 8, 9};
static const double wa_i8[] = {-128, 1, 2, 127, -5, 6};
static const double wa_i16[] = {-32768, 1, 2, 32767, -5, 6};
static const double wa_u16[] = {65535, 1, 2, 32768, 0, 6};
static const double wa_b[] = {1, 1, 0, 0, 1, 1};
static const double wb_b[] = {0, 0, 1};
static const double wc_col[] = {0, 1}; /* cond [2,1] with a [1,3] and a scalar b */

/* ---- case makers ---- */
#define S(...) EM_SHAPE(__VA_ARGS__)
#define S0 EM_SHAPE0
#define NARGS(...) NARGS_(__VA_ARGS__, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0)
#define NARGS_(a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15, a16, n, ...) n
/* A 1-D input of dtype dt from a parenthesised list of values. */
#define IN(dt, vals) {dt, EM_SHAPE(NARGS vals), V vals}
/* Literal cases on 1-D inputs: unary (fn, output dtype odt) and same-dtype binary. */
#define LIT1(op, dt, what, fn, vin, odt, vout) \
    {#op, dt, #op " " #dt ": " what, fn, 1, {IN(dt, vin)}, odt, EM_SHAPE(NARGS vout), V vout, NULL, 0}
#define LIT2(op, dt, what, va, vb, vout) \
    {#op, dt, #op " " #dt ": " what, w_##op, 2, {IN(dt, va), IN(dt, vb)}, dt, EM_SHAPE(NARGS vout), V vout, NULL, 0}
/* cast from src to dst (dtype suffixes): exact. */
#define CAST(src, dst, what, vin, vout) \
    {"cast", DT_##src, "cast " #src " -> " #dst ": " what, w_cast_##dst, 1, {IN(DT_##src, vin)}, DT_##dst, \
     EM_SHAPE(NARGS vout), V vout, NULL, 0}
/* Reference cases: unary on a standard 1-D input, in float32 and float64. */
#define REF1(op, dt, x, tol) \
    {#op, dt, #op " " #dt " on " #x, w_##op, 1, {{dt, S(N(x)), x}}, dt, S(N(x)), NULL, ref_ew, tol}
#define REF1F(op, x) REF1(op, EM_F32, x, TOL32), REF1(op, EM_F64, x, TOL64), REF1(op, EM_BF16, x, TOLBF16), \
    REF1(op, EM_F16, x, TOLF16)
/* binary on a with shape sa and b with shape sb -> shape so, output dtype odt; what names the shapes */
#define REF2O(op, dt, what, a, sa, b, sb, odt, so, tol) \
    {#op, dt, #op " " #dt " " #a ", " #b ": " what, w_##op, 2, {{dt, sa, a}, {dt, sb, b}}, odt, so, NULL, ref_ew, tol}
#define REF2(op, dt, what, a, sa, b, sb, so, tol) REF2O(op, dt, what, a, sa, b, sb, dt, so, tol)
/* a binary float op: specials in both dtypes, [3,1] with [4], a scalar with [2,3] both ways */
#define REF2F(op)                                                                                                      \
    REF2(op, EM_F32, "[3,4]", ba, S(3, 4), bb, S(3, 4), S(3, 4), TOL32),                                               \
        REF2(op, EM_F64, "[3,4]", ba, S(3, 4), bb, S(3, 4), S(3, 4), TOL64),                                           \
        REF2(op, EM_F32, "[3,1] with [4]", bcol, S(3, 1), brow, S(4), S(3, 4), TOL32),                                 \
        REF2(op, EM_F64, "[] with [2,3]", bsc, S0, bmat, S(2, 3), S(2, 3), TOL64),                                     \
        REF2(op, EM_F64, "[2,3] with []", bmat, S(2, 3), bsc, S0, S(2, 3), TOL64),                                     \
        REF2(op, EM_BF16, "[3,4]", ba, S(3, 4), bb, S(3, 4), S(3, 4), TOLBF16),                                        \
        REF2(op, EM_F16, "[3,4]", ba, S(3, 4), bb, S(3, 4), S(3, 4), TOLF16),                                          \
        REF2(op, EM_BF16, "[3,1] with [4]", bcol, S(3, 1), brow, S(4), S(3, 4), TOLBF16),                              \
        REF2(op, EM_F16, "[] with [2,3]", bsc, S0, bmat, S(2, 3), S(2, 3), TOLF16)
/* a fused gradient op in every float dtype */
#define REFG(op, x)                                                                                                    \
    REF2(op, EM_F32, "1-D", x, S(N(x)), gg, S(N(gg)), S(N(x)), TOL32),                                                 \
        REF2(op, EM_F64, "1-D", x, S(N(x)), gg, S(N(gg)), S(N(x)), TOL64),                                             \
        REF2(op, EM_BF16, "1-D", x, S(N(x)), gg, S(N(gg)), S(N(x)), TOLBF16),                                          \
        REF2(op, EM_F16, "1-D", x, S(N(x)), gg, S(N(gg)), S(N(x)), TOLF16)
/* a comparison in every dtype (bool output) */
#define CMP1(op, dt, a, b) REF2O(op, dt, "1-D", a, S(N(a)), b, S(N(b)), EM_BOOL, S(N(a)), 0)
#define CMP(op)                                                                                                        \
    CMP1(op, EM_F32, cf_a, cf_b), CMP1(op, EM_F64, cf_a, cf_b), CMP1(op, EM_I32, ci32_a, ci32_b),                      \
        CMP1(op, EM_I64, ci64_a, ci64_b), CMP1(op, EM_U8, cu8_a, cu8_b), CMP1(op, EM_BOOL, cb_a, cb_b),                \
        CMP1(op, EM_BF16, cf_a, cf_b), CMP1(op, EM_F16, cf_a, cf_b), CMP1(op, EM_I8, ci8_a, ci8_b),                    \
        CMP1(op, EM_I16, ci16_a, ci16_b), CMP1(op, EM_U16, cu16_a, cu16_b)
#define WHERE(dt, a, b) \
    {"where", dt, "where " #dt " [2,3] ? " #a " [2,3] : " #b " [3]", w_where, 3, \
     {{EM_BOOL, S(2, 3), wc}, {dt, S(2, 3), a}, {dt, S(3), b}}, dt, S(2, 3), NULL, ref_where, 0}
#define WHERE_BC(dt, a, b) \
    {"where", dt, "where " #dt " [2,1] ? [1,3] : []", w_where, 3, \
     {{EM_BOOL, S(2, 1), wc_col}, {dt, S(1, 3), a}, {dt, S0, b}}, dt, S(2, 3), NULL, ref_where, 0}

static em_tensor *w_abs_of_sum(em_tensor *const *in) { return em_abs(em_add(in[0], in[1])); }

#define EW_UNARY_FORWARD_CASES(ID, op, ref, x, ...) REF1F(op, x),

const fw_case fw_cases_elementwise[] = {
    EW_UNARY_FLOAT(EW_UNARY_FORWARD_CASES)
    /* ---- float binary arithmetic (reference) ---- */
    REF2F(add), REF2F(sub), REF2F(mul), REF2F(div), REF2F(pow), REF2F(maximum), REF2F(minimum),
    REF2(add, EM_F32, "[3,1,1] with [2,3]", bcol, S(3, 1, 1), bmat, S(2, 3), S(3, 2, 3), TOL32),

    /* ---- integer binary arithmetic: wraps modulo 2^bits (np.int32/np.int64/np.uint8 arithmetic) ---- */
    LIT2(add, EM_I32, "wraps", (I32MAX, I32MIN, -5, 100, 0, -1), (1, -1, 3, -200, 0, -1),
         (I32MIN, I32MAX, -2, -100, 0, -2)),
    LIT2(add, EM_I64, "wraps", (I64MIN, P62, P62, -7, 0), (-1, P62, -P62, 3, 0), (I64MAX, I64MIN, 0, -4, 0)),
    LIT2(add, EM_U8, "255 + 1 wraps", (255, 200, 0, 128, 1), (1, 100, 0, 128, 2), (0, 44, 0, 0, 3)),
    LIT2(sub, EM_I32, "wraps", (I32MIN, I32MAX, 0, 5), (1, -1, I32MIN, 7), (I32MAX, I32MIN, I32MIN, -2)),
    LIT2(sub, EM_I64, "wraps", (I64MIN, 0, P62, 10), (1, I64MIN, -P62, 3), (I64MAX, I64MIN, I64MIN, 7)),
    LIT2(sub, EM_U8, "0 - 1 wraps", (0, 5, 100, 255), (1, 10, 100, 0), (255, 251, 0, 255)),
    /* 65537^2 = 2^32 + 2^17 + 1; 46341^2 = 2147488281 = 2^32 - 2147479015 */
    LIT2(mul, EM_I32, "wraps", (65536, 65537, -3, I32MIN, 46341, -7), (65536, 65537, 4, -1, 46341, 0),
         (0, 131073, -12, I32MIN, -2147479015, 0)),
    /* 3037000500^2 = 9223372037000250000 = 2^64 - 9223372036709301616 */
    LIT2(mul, EM_I64, "wraps", (P32, P62, I64MIN, 3037000500, -6), (P32, 4, -1, 3037000500, 7),
         (0, 0, I64MIN, -9223372036709301616.0, -42)),
    LIT2(mul, EM_U8, "wraps", (16, 17, 255, 3, 0), (16, 17, 255, 5, 9), (0, 33, 1, 15, 0)),
    /* C division: truncates toward zero, x/0 = 0, MIN / -1 = MIN (wraps) */
    LIT2(div, EM_I32, "truncation, /0, MIN/-1", (7, -7, 7, -7, 5, I32MIN, I32MIN, 0, 6, -1, I32MAX),
         (2, 2, -2, -2, 0, -1, 1, 3, -1, 0, -1), (3, -3, -3, 3, 0, I32MIN, I32MIN, 0, -6, 0, -I32MAX)),
    LIT2(div, EM_I64, "truncation, /0, MIN/-1", (7, -7, I64MIN, I64MIN, 9, -9, 1e18), (-2, 2, -1, 2, 0, 0, -1e9),
         (-3, -3, I64MIN, -P62, 0, 0, -1e9)),
    LIT2(div, EM_U8, "truncation, /0, /255", (7, 255, 200, 254, 255, 9), (2, 0, 3, 255, 255, 10), (3, 0, 66, 0, 1, 0)),
    LIT2(maximum, EM_I32, "signed", (I32MIN, -1, 5, 0, 3), (I32MAX, -2, 5, I32MIN, -3), (I32MAX, -1, 5, 0, 3)),
    LIT2(maximum, EM_I64, "signed", (I64MIN, P62, -1, 3), (P62, I64MIN, 1, 3), (P62, P62, 1, 3)),
    LIT2(maximum, EM_U8, "unsigned", (0, 255, 128, 127, 9), (255, 0, 127, 128, 9), (255, 255, 128, 128, 9)),
    LIT2(minimum, EM_I32, "signed", (I32MIN, -1, 5, 0, 3), (I32MAX, -2, 5, I32MIN, -3), (I32MIN, -2, 5, I32MIN, -3)),
    LIT2(minimum, EM_I64, "signed", (I64MIN, P62, -1, 3), (P62, I64MIN, 1, 3), (I64MIN, I64MIN, -1, 3)),
    LIT2(minimum, EM_U8, "unsigned", (0, 255, 128, 127, 9), (255, 0, 127, 128, 9), (0, 0, 127, 127, 9)),
    /* int8, int16, uint16: the same rules at their widths (np.int8/np.int16/np.uint16 arithmetic; division
     * truncates, x/0 is 0, MIN/-1 and -MIN wrap to MIN, x mod 0 is 0) */
    LIT2(add, EM_I8, "wraps", (127, -128, -5, 100, 0, -1), (1, -1, 3, -100, 0, -1), (-128, 127, -2, 0, 0, -2)),
    LIT2(sub, EM_I8, "wraps", (-128, 127, 0, 5), (1, -1, -128, 7), (127, -128, -128, -2)),
    LIT2(mul, EM_I8, "wraps", (16, 17, -3, -128, 12, -7), (16, 17, 4, -1, 11, 0), (0, 33, -12, -128, -124, 0)),
    LIT2(div, EM_I8, "truncation, /0, MIN/-1", (7, -7, 7, -7, 5, -128, -128, 0, 6, -1, 127), (2, 2, -2, -2, 0, -1, 1, 3, -1, 0, -1), (3, -3, -3, 3, 0, -128, -128, 0, -6, 0, -127)),
    LIT2(maximum, EM_I8, "extremes", (-128, -1, 5, 0, 3), (127, -2, 5, -128, -3), (127, -1, 5, 0, 3)),
    LIT2(minimum, EM_I8, "extremes", (-128, -1, 5, 0, 3), (127, -2, 5, -128, -3), (-128, -2, 5, -128, -3)),
    LIT1(neg, EM_I8, "wraps", w_neg, (-128, 127, -5, 0, 7, -127), EM_I8, (-128, -127, 5, 0, -7, 127)),
    LIT1(abs, EM_I8, "abs(MIN) wraps", w_abs, (-128, 127, -5, 0, 7, -127), EM_I8, (-128, 127, 5, 0, 7, 127)),
    LIT1(square, EM_I8, "wraps", w_square, (-128, 127, -5, 0, 7, -127), EM_I8, (0, 1, 25, 0, 49, 1)),
    LIT1(sign, EM_I8, "extremes", w_sign, (-128, 127, -5, 0, 7, -127), EM_I8, (-1, 1, -1, 0, 1, -1)),
    LIT2(floormod, EM_I8, "signs, mod 0, MIN mod -1", (7, -7, 7, -7, 6, -6, 0, 5, -128, 127), (3, 3, -3, -3, 3, -3, 5, 0, -1, -2), (1, 2, -2, -1, 0, 0, 0, 0, 0, -1)),
    LIT1(clip, EM_I8, "[-2.5, 3.5] is [-2, 3]", w_clip_inward, (-128, 127, -5, 0, 7, -127), EM_I8, (-2, 3, -2, 0, 3, -2)),
    LIT1(clip, EM_I8, "[-1e10, 1e10] saturates to the range", w_clip_wide, (-128, 127, -5, 0, 7, -127), EM_I8, (-128, 127, -5, 0, 7, -127)),
    LIT2(add, EM_I16, "wraps", (32767, -32768, -5, 20000, 0, -1), (1, -1, 3, -30000, 0, -1), (-32768, 32767, -2, -10000, 0, -2)),
    LIT2(sub, EM_I16, "wraps", (-32768, 32767, 0, 5), (1, -1, -32768, 7), (32767, -32768, -32768, -2)),
    LIT2(mul, EM_I16, "wraps", (256, 257, -3, -32768, 182, -7), (256, 257, 4, -1, 181, 0), (0, 513, -12, -32768, -32594, 0)),
    LIT2(div, EM_I16, "truncation, /0, MIN/-1", (7, -7, 7, -7, 5, -32768, -32768, 0, 6, -1, 32767), (2, 2, -2, -2, 0, -1, 1, 3, -1, 0, -1), (3, -3, -3, 3, 0, -32768, -32768, 0, -6, 0, -32767)),
    LIT2(maximum, EM_I16, "extremes", (-32768, -1, 5, 0, 3), (32767, -2, 5, -32768, -3), (32767, -1, 5, 0, 3)),
    LIT2(minimum, EM_I16, "extremes", (-32768, -1, 5, 0, 3), (32767, -2, 5, -32768, -3), (-32768, -2, 5, -32768, -3)),
    LIT1(neg, EM_I16, "wraps", w_neg, (-32768, 32767, -5, 0, 7, -32767), EM_I16, (-32768, -32767, 5, 0, -7, 32767)),
    LIT1(abs, EM_I16, "abs(MIN) wraps", w_abs, (-32768, 32767, -5, 0, 7, -32767), EM_I16, (-32768, 32767, 5, 0, 7, 32767)),
    LIT1(square, EM_I16, "wraps", w_square, (-32768, 32767, -5, 0, 7, -32767), EM_I16, (0, 1, 25, 0, 49, 1)),
    LIT1(sign, EM_I16, "extremes", w_sign, (-32768, 32767, -5, 0, 7, -32767), EM_I16, (-1, 1, -1, 0, 1, -1)),
    LIT2(floormod, EM_I16, "signs, mod 0, MIN mod -1", (7, -7, 7, -7, 6, -6, 0, 5, -32768, 32767), (3, 3, -3, -3, 3, -3, 5, 0, -1, -2), (1, 2, -2, -1, 0, 0, 0, 0, 0, -1)),
    LIT1(clip, EM_I16, "[-2.5, 3.5] is [-2, 3]", w_clip_inward, (-32768, 32767, -5, 0, 7, -32767), EM_I16, (-2, 3, -2, 0, 3, -2)),
    LIT1(clip, EM_I16, "[-1e10, 1e10] saturates to the range", w_clip_wide, (-32768, 32767, -5, 0, 7, -32767), EM_I16, (-32768, 32767, -5, 0, 7, -32767)),
    LIT2(add, EM_U16, "wraps", (65535, 40000, 0, 32768, 1), (1, 30000, 0, 32768, 2), (0, 4464, 0, 0, 3)),
    LIT2(sub, EM_U16, "wraps", (0, 5, 100, 65535), (1, 10, 100, 0), (65535, 65531, 0, 65535)),
    LIT2(mul, EM_U16, "wraps", (256, 257, 65535, 3, 0), (256, 257, 65535, 5, 9), (0, 513, 1, 15, 0)),
    LIT2(div, EM_U16, "truncation, /0", (7, 65535, 200, 65534, 65535, 9), (2, 0, 3, 65535, 65535, 10), (3, 0, 66, 0, 1, 0)),
    LIT2(maximum, EM_U16, "extremes", (0, 65535, 32768, 32767, 9), (65535, 0, 32767, 32768, 9), (65535, 65535, 32768, 32768, 9)),
    LIT2(minimum, EM_U16, "extremes", (0, 65535, 32768, 32767, 9), (65535, 0, 32767, 32768, 9), (0, 0, 32767, 32767, 9)),
    LIT1(neg, EM_U16, "wraps", w_neg, (0, 1, 65535, 32768, 5), EM_U16, (0, 65535, 1, 32768, 65531)),
    LIT1(abs, EM_U16, "unsigned: identity", w_abs, (0, 1, 65535, 32768, 5), EM_U16, (0, 1, 65535, 32768, 5)),
    LIT1(square, EM_U16, "wraps", w_square, (0, 1, 65535, 32768, 5), EM_U16, (0, 1, 1, 0, 25)),
    LIT1(sign, EM_U16, "unsigned", w_sign, (0, 1, 65535, 32768, 5), EM_U16, (0, 1, 1, 1, 1)),
    LIT2(floormod, EM_U16, "unsigned, mod 0", (7, 65535, 0, 200, 9), (3, 16, 5, 0, 65535), (1, 15, 0, 0, 9)),
    LIT1(clip, EM_U16, "[-2.5, 3.5] is [0, 3]", w_clip_inward, (0, 1, 65535, 32768, 5), EM_U16, (0, 1, 3, 3, 3)),
    LIT1(clip, EM_U16, "[-1e10, 1e10] saturates to [0, 65535]", w_clip_wide, (0, 1, 65535, 32768, 5), EM_U16, (0, 1, 65535, 32768, 5)),
    {"add", EM_U16, "add u16 [2,1] + [3]: token ids plus an offset, wrapping", w_add, 2,
     {{EM_U16, S(2, 1), V(50256, 65535)}, IN(EM_U16, (0, 1, 2))}, EM_U16, S(2, 3), V(50256, 50257, 50258, 65535, 0, 1),
     NULL, 0},
    /* integer broadcasting */
    {"add", EM_I32, "add i32 [3,1] + [4], wrapping", w_add, 2,
     {{EM_I32, S(3, 1), V(0, 10, I32MAX)}, IN(EM_I32, (1, -1, 2, -3))},
     EM_I32, S(3, 4), V(1, -1, 2, -3, 11, 9, 12, 7, I32MIN, 2147483646, -2147483647, 2147483644), NULL, 0},
    {"sub", EM_U8, "sub u8 scalar - [4]", w_sub, 2, {{EM_U8, S0, V(3)}, IN(EM_U8, (0, 3, 4, 255))}, EM_U8, S(4),
     V(3, 0, 255, 4), NULL, 0},
    {"div", EM_I64, "div i64 [2,1] / [1,3]", w_div, 2,
     {{EM_I64, S(2, 1), V(-7, I64MIN)}, {EM_I64, S(1, 3), V(2, 0, -1)}},
     EM_I64, S(2, 3), V(-3, 0, 7, -P62, 0, I64MIN), NULL, 0},
    {"mul", EM_U8, "mul u8 [2,1] * []", w_mul, 2, {{EM_U8, S(2, 1), V(100, 7)}, {EM_U8, S0, V(3)}}, EM_U8, S(2, 1),
     V(44, 21), NULL, 0},

    /* ---- empty tensors ---- */
    {"neg", EM_F32, "neg f32 empty [2,0]", w_neg, 1, {{EM_F32, S(2, 0), V(0)}}, EM_F32, S(2, 0), V(0), NULL, 0},
    {"add", EM_F64, "add f64 empty [0,3] + [3]", w_add, 2, {{EM_F64, S(0, 3), V(0)}, IN(EM_F64, (1, 2, 3))}, EM_F64,
     S(0, 3), V(0), NULL, 0},
    {"mul", EM_I32, "mul i32 empty [3,0] * [3,1]", w_mul, 2, {{EM_I32, S(3, 0), V(0)}, {EM_I32, S(3, 1), V(1, 2, 3)}},
     EM_I32, S(3, 0), V(0), NULL, 0},

    /* ---- unary arithmetic ---- */
    REF1F(neg, x_all), REF1F(abs, x_all), REF1F(square, x_all),
    LIT1(neg, EM_I32, "MIN wraps", w_neg, (I32MIN, I32MAX, -5, 0, 7), EM_I32, (I32MIN, -I32MAX, 5, 0, -7)),
    LIT1(neg, EM_I64, "MIN wraps", w_neg, (I64MIN, P62, -5, 0), EM_I64, (I64MIN, -P62, 5, 0)),
    LIT1(neg, EM_U8, "wraps mod 256", w_neg, (0, 1, 255, 128, 5), EM_U8, (0, 255, 1, 128, 251)),
    LIT1(abs, EM_I32, "abs(MIN) wraps", w_abs, (I32MIN, I32MAX, -5, 0, 7, -I32MAX), EM_I32,
         (I32MIN, I32MAX, 5, 0, 7, I32MAX)),
    LIT1(abs, EM_I64, "abs(MIN) wraps", w_abs, (I64MIN, -P62, 5, 0, -P53), EM_I64, (I64MIN, P62, 5, 0, P53)),
    LIT1(abs, EM_U8, "unsigned: identity", w_abs, (0, 1, 255, 128), EM_U8, (0, 1, 255, 128)),
    /* an int64 beyond 2^53 is made by an op (inputs come from doubles); its |x| must not go through a double */
    {"abs", EM_I64, "abs i64 of INT64_MIN + 1 is INT64_MAX", w_abs_of_sum, 2, {IN(EM_I64, (I64MIN)), IN(EM_I64, (1))},
     EM_I64, S(1), V(I64MAX), NULL, 0},
    LIT1(square, EM_I32, "wraps", w_square, (46341, -46341, 65536, -3, 0, I32MIN), EM_I32,
         (-2147479015, -2147479015, 0, 9, 0, 0)),
    LIT1(square, EM_I64, "wraps", w_square, (P32, -3, 3037000500, I64MIN), EM_I64, (0, 9, -9223372036709301616.0, 0)),
    LIT1(square, EM_U8, "wraps", w_square, (0, 3, 15, 16, 255), EM_U8, (0, 9, 225, 0, 1)),
    /* sign: NaN stays NaN, sign(±0) = 0, sign(±Inf) = ±1 (np.sign) */
    LIT1(sign, EM_F32, "NaN, zeros, infinities", w_sign, (-3, -0.0, 0, 2.5, INF, -INF, NAN, 1e-30), EM_F32,
         (-1, 0, 0, 1, 1, -1, NAN, 1)),
    LIT1(sign, EM_F64, "NaN, zeros, infinities", w_sign, (-3, -0.0, 0, 2.5, INF, -INF, NAN, 1e-300, -5e-324), EM_F64,
         (-1, 0, 0, 1, 1, -1, NAN, 1, -1)),
    LIT1(sign, EM_BF16, "NaN, zeros, infinities", w_sign, (-3, -0.0, 0, 2.5, INF, -INF, NAN, 1e-30), EM_BF16,
         (-1, 0, 0, 1, 1, -1, NAN, 1)),
    LIT1(sign, EM_F16, "NaN, zeros, infinities, subnormals", w_sign, (-3, -0.0, 0, 2.5, INF, -INF, NAN, 1e-7), EM_F16,
         (-1, 0, 0, 1, 1, -1, NAN, 1)),
    LIT1(sign, EM_I32, "extremes", w_sign, (I32MIN, -5, 0, 7, I32MAX), EM_I32, (-1, -1, 0, 1, 1)),
    LIT1(sign, EM_I64, "extremes", w_sign, (I64MIN, -5, 0, P62), EM_I64, (-1, -1, 0, 1)),
    LIT1(sign, EM_U8, "unsigned", w_sign, (0, 1, 255, 128), EM_U8, (0, 1, 1, 1)),
    /* signed zeros, seen through 1 / y */
    {"neg", EM_F64, "neg f64 flips the zero's sign: 1 / neg([0, -0])", w_neg_zero, 2,
     {IN(EM_F64, (0.0, -0.0, 2)), IN(EM_F64, (1, 1, 1))},
     EM_F64, S(3), V(-INF, INF, -0.5), NULL, 0},
    {"abs", EM_F32, "abs f32 clears the zero's sign: 1 / abs([-0, 0])", w_abs_zero, 2,
     {IN(EM_F32, (-0.0, 0.0, -2)), IN(EM_F32, (1, 1, 1))}, EM_F32, S(3), V(INF, INF, 0.5), NULL, 0},
    {"tanh", EM_F32, "tanh f32 keeps the zero's sign: 1 / tanh([-0, 0])", w_tanh_zero, 2,
     {IN(EM_F32, (-0.0, 0.0, 1e-30)), IN(EM_F32, (1, 1, 1e-30))}, EM_F32, S(3), V(-INF, INF, 1), NULL, 0},
    {"tanh", EM_F64, "tanh f64 keeps the zero's sign: 1 / tanh([-0, 0])", w_tanh_zero, 2,
     {IN(EM_F64, (-0.0, 0.0, 1e-300)), IN(EM_F64, (1, 1, 1e-300))}, EM_F64, S(3), V(-INF, INF, 1), NULL, 0},

    /* ---- math functions (reference: libm in double) ---- */
    
    {"exp", EM_F64, "exp f64 [2,3]", w_exp, 1, {{EM_F64, S(2, 3), bmat}}, EM_F64, S(2, 3), NULL, ref_ew, TOL64},
    REF1F(floor, x_all), REF1F(ceil, x_all),
    /* np.round: halves to even; float32's 2.5000002 is past the half */
    LIT1(round, EM_F32, "halves to even", w_round, (0.5, 1.5, 2.5, -0.5, -2.5, 3.7, -3.2, 2.5000002, NAN, -INF, 8388609),
         EM_F32, (0, 2, 2, -0.0, -2, 4, -3, 3, NAN, -INF, 8388609)),
    LIT1(round, EM_F64, "halves to even", w_round, (0.5, 1.5, 2.5, -0.5, -3.5, 4503599627370497.0, NAN, INF, -0.0),
         EM_F64, (0, 2, 2, -0.0, -4, 4503599627370497.0, NAN, INF, -0.0)),
    LIT1(round, EM_BF16, "halves to even", w_round, (0.5, 1.5, 2.5, -0.5, -2.5, 3.75, NAN, -INF, 255),
         EM_BF16, (0, 2, 2, -0.0, -2, 4, NAN, -INF, 255)),
    LIT1(round, EM_F16, "halves to even", w_round, (0.5, 1.5, 2.5, -0.5, -2.5, 3.75, NAN, INF, 2049),
         EM_F16, (0, 2, 2, -0.0, -2, 4, NAN, INF, 2048)),
    /* np.mod (TF's floormod): the divisor's sign; x mod 0 and Inf mod y are NaN, x mod Inf is x or the Inf */
    LIT2(floormod, EM_F32, "signs, zeros, infinities", (5.5, -5.5, 5.5, -5.5, 7, -7, 0, 1e-30, INF, 3, NAN, 2, 0.75),
         (2, 2, -2, -2, 3.5, 3.5, 3, -1, 2, INF, 1, 0, -INF), (1.5, 0.5, -0.5, -1.5, 0, 0, 0, -1, NAN, 3, NAN, NAN, -INF)),
    LIT2(floormod, EM_F64, "signs, zeros, infinities", (5.5, -5.5, 5.5, -5.5, 7, -7, 0, 1e-30, INF, 3, NAN, 2, 0.75),
         (2, 2, -2, -2, 3.5, 3.5, 3, -1, 2, INF, 1, 0, -INF), (1.5, 0.5, -0.5, -1.5, 0, 0, 0, -1, NAN, 3, NAN, NAN, -INF)),
    /* integers: np.mod; x mod 0 is 0 (np.mod's value), MIN mod -1 is 0 */
    LIT2(floormod, EM_I32, "signs, mod 0, MIN mod -1", (7, -7, 7, -7, 6, -6, 0, 5, I32MIN, I32MAX),
         (3, 3, -3, -3, 3, -3, 5, 0, -1, -2), (1, 2, -2, -1, 0, 0, 0, 0, 0, -1)),
    LIT2(floormod, EM_I64, "signs, mod 0, MIN mod -1", (7, -7, 7, -7, 6, -6, 0, 5, I64MIN, P62),
         (3, 3, -3, -3, 3, -3, 5, 0, -1, -3), (1, 2, -2, -1, 0, 0, 0, 0, 0, -2)),
    LIT2(floormod, EM_U8, "unsigned, mod 0", (7, 255, 0, 200, 9), (3, 16, 5, 0, 255), (1, 15, 0, 0, 9)),
    REF2O(floormod, EM_F64, "[3,1] with [4]", bcol, S(3, 1), V(2, -2, 0.5, -0.75), S(4), EM_F64, S(3, 4), 0),
    REF2O(floormod, EM_BF16, "[3,1] with [4]", bcol, S(3, 1), V(2, -2, 0.5, -0.75), S(4), EM_BF16, S(3, 4), 0),
    REF2O(floormod, EM_F16, "[3,1] with [4]", bcol, S(3, 1), V(2, -2, 0.5, -0.75), S(4), EM_F16, S(3, 4), 0),

    /* ---- activations and their fused gradients ---- */
    REF1F(leaky_relu, x_act), 
    REF1F(erf, x_act),
    REFG(relu_grad, grelu_x), REFG(sigmoid_grad, gsig_y), REFG(tanh_grad, gtanh_y), REFG(gelu_tanh_grad, ggelu_x),
    REF2(sigmoid_grad, EM_F64, "[2,4] with []", gsig_y, S(2, 4), bsc, S0, S(2, 4), TOL64),
    REF2(relu_grad, EM_F32, "[2,4] with [4]", grelu_x, S(2, 4), brow, S(4), S(2, 4), TOL32),

    /* ---- clip: NaN passes; integer bounds round inward and saturate ---- */
    REF1F(clip, x_clip),
    LIT1(clip, EM_I32, "[-2.5, 3.5] is [-2, 3]", w_clip_inward, (-5, -2, -1, 0, 3, 4, I32MIN, I32MAX), EM_I32,
         (-2, -2, -1, 0, 3, 3, -2, 3)),
    LIT1(clip, EM_I32, "[-1e10, 1e10] saturates to the range", w_clip_wide, (I32MIN, -1, 0, I32MAX), EM_I32,
         (I32MIN, -1, 0, I32MAX)),
    LIT1(clip, EM_I64, "[-2.5, 3.5] is [-2, 3]", w_clip_inward, (I64MIN, -3, -2, 0, 3, 4, P62), EM_I64,
         (-2, -2, -2, 0, 3, 3, 3)),
    LIT1(clip, EM_I64, "[-1e30, 5]: lo saturates to MIN", w_clip_upto5, (I64MIN, -7, 5, 6, P62), EM_I64,
         (I64MIN, -7, 5, 5, 5)),
    LIT1(clip, EM_U8, "[10.2, 200.7] is [11, 200]", w_clip_10_200, (0, 10, 11, 12, 200, 201, 255), EM_U8,
         (11, 11, 11, 12, 200, 200, 200)),
    LIT1(clip, EM_U8, "[-1e10, 1e10] saturates to [0, 255]", w_clip_wide, (0, 1, 254, 255), EM_U8, (0, 1, 254, 255)),

    /* ---- where (reference: select), broadcasting ---- */
    WHERE(EM_F32, wa_f, wb_f), WHERE(EM_F64, wa_f, wb_f), WHERE(EM_I32, wa_i32, wb_i), WHERE(EM_I64, wa_i64, wb_i),
    WHERE(EM_U8, wa_u8, wb_u8), WHERE(EM_BOOL, wa_b, wb_b), WHERE(EM_I8, wa_i8, wb_i), WHERE(EM_I16, wa_i16, wb_i),
    WHERE(EM_U16, wa_u16, wb_u8),
    WHERE(EM_BF16, wa_f, wb_f), WHERE(EM_F16, wa_f, wb_f), WHERE_BC(EM_BF16, wb_f, bsc),
    WHERE_BC(EM_F32, wb_f, bsc), WHERE_BC(EM_I64, wb_i, V(I64MIN)), WHERE_BC(EM_BOOL, wb_b, V(1)),

    /* ---- comparisons (bool output) and logic ---- */
    CMP(equal), CMP(not_equal), CMP(less), CMP(less_equal), CMP(greater), CMP(greater_equal),
    REF2O(less, EM_I32, "[2,3] with [3]", ci32_a, S(2, 3), wb_i, S(3), EM_BOOL, S(2, 3), 0),
    REF2O(greater_equal, EM_F64, "[] with [2,3]", bsc, S0, bmat, S(2, 3), EM_BOOL, S(2, 3), 0),
    REF2O(equal, EM_BOOL, "[2,1,2] with [3,1]", cb_a, S(2, 1, 2), wb_b, S(3, 1), EM_BOOL, S(2, 3, 2), 0),
    REF2O(logical_and, EM_BOOL, "[4]", cb_a, S(4), cb_b, S(4), EM_BOOL, S(4), 0),
    REF2O(logical_or, EM_BOOL, "[4]", cb_a, S(4), cb_b, S(4), EM_BOOL, S(4), 0),
    REF2O(logical_and, EM_BOOL, "[2,1] with [3]", wc_col, S(2, 1), wb_b, S(3), EM_BOOL, S(2, 3), 0),
    REF2O(logical_or, EM_BOOL, "[] with [2,2]", wb_b, S0, cb_a, S(2, 2), EM_BOOL, S(2, 2), 0),
    {"logical_not", EM_BOOL, "logical_not bool", w_logical_not, 1, {IN(EM_BOOL, (0, 1, 1, 0))}, EM_BOOL, S(4),
     V(1, 0, 0, 1), NULL, 0},

    /* ---- cast: every source to every target. Floats to integers truncate, saturate and take NaN to 0;
     * integers to integers wrap (np.astype); anything to bool is x != 0 (NaN is true); float32 values
     * are the doubles np.float32(v) holds. ---- */
    CAST(f32, f64, "exact", (1.5, -2.25, 0.1, 1e-40, 3.4028234663852886e38, INF, -INF, NAN, -0.0),
         (1.5, -2.25, 0.10000000149011612, 9.99994610111476e-41, 3.4028234663852886e38, INF, -INF, NAN, -0.0)),
    CAST(f32, f32, "identity", (INF, NAN, -0.0, 1.5), (INF, NAN, -0.0, 1.5)),
    CAST(f32, i32, "truncates, saturates, NaN is 0",
         (1.9, -1.9, 3e9, -3e9, NAN, INF, -INF, 2147483520, I32MIN, 0.5, I32MAX),
         (1, -1, I32MAX, I32MIN, 0, I32MAX, I32MIN, 2147483520, I32MIN, 0, I32MAX)),
    CAST(f32, i64, "truncates, saturates, NaN is 0", (1e19, -1e19, NAN, -2.5, P40, INF, -INF),
         (I64MAX, I64MIN, 0, -2, P40, I64MAX, I64MIN)),
    CAST(f32, u8, "truncates, saturates, NaN is 0", (-1, 255.9, 256, 300, 1.5, NAN, -0.5, INF, 128),
         (0, 255, 255, 255, 1, 0, 0, 255, 128)),
    CAST(f32, b8, "x != 0", (0, -0.0, 0.5, NAN, INF, 1e-45, -3), (0, 0, 1, 1, 1, 1, 1)),
    CAST(f64, f32, "rounds, overflows to Inf", (0.1, 1e39, -1e39, 1e-50, NAN, 1.0000000001, -0.0, 16777217),
         (0.10000000149011612, INF, -INF, 0, NAN, 1, -0.0, 16777216)),
    CAST(f64, f64, "identity", (-INF, NAN, -0.0, 1.5), (-INF, NAN, -0.0, 1.5)),
    CAST(f64, i32, "truncates, saturates, NaN is 0",
         (2147483647.5, 2147483648, -2147483649, -2147483648.9, NAN, 1e300, -7.9, INF, -INF, 0.999),
         (I32MAX, I32MAX, I32MIN, I32MIN, 0, I32MAX, -7, I32MAX, I32MIN, 0)),
    /* 9223372036854774784 is the largest double below 2^63 */
    CAST(f64, i64, "truncates, saturates, NaN is 0",
         (9.3e18, 9223372036854775808.0, I64MIN, -1e300, NAN, 9007199254740994, -0.99, 9223372036854774784.0),
         (I64MAX, I64MAX, I64MIN, I64MIN, 0, 9007199254740994, 0, 9223372036854774784.0)),
    CAST(f64, u8, "truncates, saturates, NaN is 0", (256, -0.1, 254.99, NAN, INF, -INF, 1e10, 77.7),
         (255, 0, 254, 0, 255, 0, 255, 77)),
    CAST(f64, b8, "x != 0", (0, -0.0, NAN, 1e-300, -INF, 5e-324), (0, 0, 1, 1, 1, 1)),
    CAST(i32, f64, "exact", (I32MIN, I32MAX, -1, 0, 123456789), (I32MIN, I32MAX, -1, 0, 123456789)),
    /* np.int32([16777217, 2147483647, -3, 16777219]).astype(np.float32) */
    CAST(i32, f32, "rounds to nearest even", (16777217, I32MAX, -3, 16777219), (16777216, 2147483648.0, -3, 16777220)),
    CAST(i32, i32, "identity", (I32MIN, -1, I32MAX), (I32MIN, -1, I32MAX)),
    CAST(i32, i64, "sign-extends", (I32MIN, -1, I32MAX, 0), (I32MIN, -1, I32MAX, 0)),
    /* np.int32([256, -1, 300, -256, 255, -129]).astype(np.uint8) */
    CAST(i32, u8, "wraps", (256, -1, 300, -256, 255, -129), (0, 255, 44, 0, 255, 127)),
    CAST(i32, b8, "x != 0, not the low byte", (0, -1, 256, I32MIN), (0, 1, 1, 1)),
    CAST(i64, f64, "exact", (I64MIN, P62, -5, 0, P53), (I64MIN, P62, -5, 0, P53)),
    CAST(i64, f32, "rounds", (16777217, I64MIN, 1099511627777), (16777216, I64MIN, P40)),
    /* np.int64([2**32+5, 2**31, -2**31-1, -1, 2**33-1, 2**62]).astype(np.int32) */
    CAST(i64, i32, "wraps", (P32 + 5, 2147483648, -2147483649, -1, 8589934591, P62), (5, I32MIN, I32MAX, -1, -1, 0)),
    CAST(i64, i64, "identity", (I64MIN, -1, P62), (I64MIN, -1, P62)),
    CAST(i64, u8, "wraps", (-1, 1099511627783, 511, 256), (255, 7, 255, 0)),
    CAST(i64, b8, "x != 0, not the low bits", (P40, 0, I64MIN, 256), (1, 0, 1, 1)),
    CAST(u8, f64, "no sign extension", (0, 1, 127, 128, 255), (0, 1, 127, 128, 255)),
    CAST(u8, f32, "no sign extension", (0, 128, 255), (0, 128, 255)),
    CAST(u8, i32, "no sign extension", (0, 128, 255), (0, 128, 255)),
    CAST(u8, i64, "no sign extension", (0, 128, 255), (0, 128, 255)),
    CAST(u8, u8, "identity", (0, 128, 255), (0, 128, 255)),
    CAST(u8, b8, "x != 0", (0, 1, 2, 255), (0, 1, 1, 1)),
    CAST(b8, f64, "0 and 1", (0, 1, 1), (0, 1, 1)),
    CAST(b8, f32, "0 and 1", (1, 0), (1, 0)),
    CAST(b8, i32, "0 and 1", (1, 0), (1, 0)),
    CAST(b8, i64, "0 and 1", (1, 0), (1, 0)),
    CAST(b8, u8, "0 and 1", (1, 0), (1, 0)),
    CAST(b8, b8, "identity", (1, 0), (1, 0)),
    /* bfloat16 (8 significant bits, ulp 2^-7 at 1, smallest subnormal 2^-133, largest 255 * 2^120) and
     * float16 (11 bits, ulp 2^-10 at 1, 2^-24, 65504): to nearest even, ties included, Inf past the largest
     * value plus half an ulp, subnormals kept. 1 + 2^-8 + 2^-40 as a float64 must not round twice (to
     * float32's 1 + 2^-8, a tie, then down to 1). */
    CAST(f32, bf16, "rounds to nearest even, keeps subnormals",
         (1.00390625, 1.01171875, 1.0039063692092896, 3.4e38, 3.3961e38, -INF, NAN, -0.0, 1e-40, 2.0e-45),
         (1, 1.015625, 1.0078125, INF, 3.3895313892515355e38, -INF, NAN, -0.0, 9.183549615799121e-41, 0)),
    CAST(f32, f16, "rounds to nearest even, keeps subnormals",
         (65504, 65519, 65520, 2.0009765625, 2.0029296875, 1e-8, 3e-8, 6.1e-5, -INF, NAN),
         (65504, 65504, INF, 2, 2.00390625, 0, 5.960464477539063e-08, 6.097555160522461e-05, -INF, NAN)),
    CAST(f64, bf16, "rounds once", (1.0039062500000009, 1.00390625, 1e39, -1e-50), (1.0078125, 1, INF, -0.0)),
    CAST(f64, f16, "rounds once", (1.0004882812500002, 1.00048828125, 1e6, 0.1),
         (1.0009765625, 1, INF, 0.0999755859375)),
    CAST(i32, bf16, "rounds to nearest even", (16777217, 257, 259, -3, I32MAX), (16777216, 256, 260, -3, 2147483648.0)),
    CAST(i64, f16, "rounds, overflows to Inf", (70000, 2049, -2051, P40), (INF, 2048, -2052, INF)),
    CAST(u8, bf16, "exact: 8 significant bits", (255, 129, 0), (255, 129, 0)),
    CAST(u8, f16, "exact", (255, 129, 0), (255, 129, 0)),
    CAST(b8, bf16, "0 and 1", (1, 0), (1, 0)),
    CAST(b8, f16, "0 and 1", (1, 0), (1, 0)),
    CAST(bf16, f32, "exact", (1.5, -2.25, 9.183549615799121e-41, INF, NAN, -0.0), (1.5, -2.25, 9.183549615799121e-41, INF, NAN, -0.0)),
    CAST(bf16, f64, "exact", (3.3895313892515355e38, -0.0078125), (3.3895313892515355e38, -0.0078125)),
    CAST(bf16, i32, "truncates, saturates, NaN is 0", (1.5, -2.5, NAN, INF, 3e9), (1, -2, 0, I32MAX, I32MAX)),
    CAST(bf16, i64, "truncates", (-7.5, 1e10), (-7, 9999220736.0)),
    CAST(bf16, u8, "truncates, saturates", (255.9, -1, 300), (255, 0, 255)),
    CAST(bf16, b8, "x != 0", (0, -0.0, NAN, 0.5), (0, 0, 1, 1)),
    CAST(bf16, bf16, "identity", (1.5, INF, -0.0), (1.5, INF, -0.0)),
    CAST(bf16, f16, "rounds to nearest even", (65536, 1.5, 0.0078125, 1e-9), (INF, 1.5, 0.0078125, 0)),
    CAST(f16, f32, "exact", (65504, 5.960464477539063e-08, -0.0, INF, NAN), (65504, 5.960464477539063e-08, -0.0, INF, NAN)),
    CAST(f16, f64, "exact", (0.0999755859375, -65504), (0.0999755859375, -65504)),
    CAST(f16, i32, "truncates", (-2.5, 65504, NAN), (-2, 65504, 0)),
    CAST(f16, i64, "truncates", (-INF, 3.75), (I64MIN, 3)),
    CAST(f16, u8, "truncates, saturates", (255.5, 256, -3), (255, 255, 0)),
    CAST(f16, b8, "x != 0", (0, 5.960464477539063e-08), (0, 1)),
    CAST(f16, bf16, "rounds to nearest even", (1.0009765625, 257, 259), (1, 256, 260)),
    CAST(f16, f16, "identity", (65504, -0.0, 1.0009765625), (65504, -0.0, 1.0009765625)),
    /* int8, int16 and uint16: floats (bfloat16 and float16 too) truncate toward zero and saturate at the
     * target's range, NaN is 0; integers wrap modulo 2^bits (np.astype); to bfloat16 and float16 rounds to
     * nearest even (uint16 65535 is past float16's 65504 + half an ulp: Inf). bfloat16 and float16 inputs
     * are the values those types hold (40000 is bfloat16 39936). */
    CAST(f32, i8, "truncates toward zero, saturates, NaN is 0", (1.9, -1.9, -3.9, 127.5, 128, -129, 300.7, -1, NAN, INF, -INF, 40000, 70000, -40000), (1, -1, -3, 127, 127, -128, 127, -1, 0, 127, -128, 127, 127, -128)),
    CAST(f64, i8, "truncates toward zero, saturates, NaN is 0", (1.9, -1.9, -3.9, 127.5, 128, -129, 300.7, -1, NAN, INF, -INF, 40000, 70000, -40000), (1, -1, -3, 127, 127, -128, 127, -1, 0, 127, -128, 127, 127, -128)),
    CAST(bf16, i8, "truncates toward zero, saturates, NaN is 0", (1.5, -2.5, -3.75, 300, -300, NAN, INF, -INF, 39936, 70144), (1, -2, -3, 127, -128, 0, 127, -128, 127, 127)),
    CAST(f16, i8, "truncates toward zero, saturates, NaN is 0", (1.5, -2.5, -3.75, 300, -300, NAN, INF, -INF, 40000, 65504), (1, -2, -3, 127, -128, 0, 127, -128, 127, 127)),
    CAST(f32, i16, "truncates toward zero, saturates, NaN is 0", (1.9, -1.9, -3.9, 127.5, 128, -129, 300.7, -1, NAN, INF, -INF, 40000, 70000, -40000), (1, -1, -3, 127, 128, -129, 300, -1, 0, 32767, -32768, 32767, 32767, -32768)),
    CAST(f64, i16, "truncates toward zero, saturates, NaN is 0", (1.9, -1.9, -3.9, 127.5, 128, -129, 300.7, -1, NAN, INF, -INF, 40000, 70000, -40000), (1, -1, -3, 127, 128, -129, 300, -1, 0, 32767, -32768, 32767, 32767, -32768)),
    CAST(bf16, i16, "truncates toward zero, saturates, NaN is 0", (1.5, -2.5, -3.75, 300, -300, NAN, INF, -INF, 39936, 70144), (1, -2, -3, 300, -300, 0, 32767, -32768, 32767, 32767)),
    CAST(f16, i16, "truncates toward zero, saturates, NaN is 0", (1.5, -2.5, -3.75, 300, -300, NAN, INF, -INF, 40000, 65504), (1, -2, -3, 300, -300, 0, 32767, -32768, 32767, 32767)),
    CAST(f32, u16, "truncates toward zero, saturates, NaN is 0", (1.9, -1.9, -3.9, 127.5, 128, -129, 300.7, -1, NAN, INF, -INF, 40000, 70000, -40000), (1, 0, 0, 127, 128, 0, 300, 0, 0, 65535, 0, 40000, 65535, 0)),
    CAST(f64, u16, "truncates toward zero, saturates, NaN is 0", (1.9, -1.9, -3.9, 127.5, 128, -129, 300.7, -1, NAN, INF, -INF, 40000, 70000, -40000), (1, 0, 0, 127, 128, 0, 300, 0, 0, 65535, 0, 40000, 65535, 0)),
    CAST(bf16, u16, "truncates toward zero, saturates, NaN is 0", (1.5, -2.5, -3.75, 300, -300, NAN, INF, -INF, 39936, 70144), (1, 0, 0, 300, 0, 0, 65535, 0, 39936, 65535)),
    CAST(f16, u16, "truncates toward zero, saturates, NaN is 0", (1.5, -2.5, -3.75, 300, -300, NAN, INF, -INF, 40000, 65504), (1, 0, 0, 300, 0, 0, 65535, 0, 40000, 65504)),
    CAST(i32, i8, "wraps", (-1, 70000, -70000, 127, 128, -129, 255, 65535, 65536, -2147483648, 2147483647), (-1, 112, -112, 127, -128, 127, -1, -1, 0, 0, -1)),
    CAST(i32, i16, "wraps", (-1, 70000, -70000, 127, 128, -129, 255, 65535, 65536, -2147483648, 2147483647), (-1, 4464, -4464, 127, 128, -129, 255, -1, 0, 0, -1)),
    CAST(i32, u16, "wraps", (-1, 70000, -70000, 127, 128, -129, 255, 65535, 65536, -2147483648, 2147483647), (65535, 4464, 61072, 127, 128, 65407, 255, 65535, 0, 0, 65535)),
    CAST(i64, i8, "wraps", (-1, 70000, -70000, 128, -129, 65536, 4294967297, -4294967297), (-1, 112, -112, -128, 127, 0, 1, -1)),
    CAST(i64, i16, "wraps", (-1, 70000, -70000, 128, -129, 65536, 4294967297, -4294967297), (-1, 4464, -4464, 128, -129, 0, 1, -1)),
    CAST(i64, u16, "wraps", (-1, 70000, -70000, 128, -129, 65536, 4294967297, -4294967297), (65535, 4464, 61072, 128, 65407, 0, 1, 65535)),
    CAST(u8, i8, "wraps", (0, 127, 128, 255), (0, 127, -128, -1)),
    CAST(u8, i16, "exact", (0, 127, 128, 255), (0, 127, 128, 255)),
    CAST(u8, u16, "exact", (0, 127, 128, 255), (0, 127, 128, 255)),
    CAST(i8, i8, "identity", (-128, -1, 0, 127), (-128, -1, 0, 127)),
    CAST(i8, i16, "exact", (-128, -1, 0, 127), (-128, -1, 0, 127)),
    CAST(i8, u16, "wraps", (-128, -1, 0, 127), (65408, 65535, 0, 127)),
    CAST(i16, i8, "wraps", (-32768, -129, -1, 128, 255, 256, 32767), (0, 127, -1, -128, -1, 0, -1)),
    CAST(i16, i16, "identity", (-32768, -129, -1, 128, 255, 256, 32767), (-32768, -129, -1, 128, 255, 256, 32767)),
    CAST(i16, u16, "wraps", (-32768, -129, -1, 128, 255, 256, 32767), (32768, 65407, 65535, 128, 255, 256, 32767)),
    CAST(u16, i8, "wraps", (0, 127, 128, 255, 256, 32767, 32768, 65535), (0, 127, -128, -1, 0, -1, 0, -1)),
    CAST(u16, i16, "wraps", (0, 127, 128, 255, 256, 32767, 32768, 65535), (0, 127, 128, 255, 256, 32767, -32768, -1)),
    CAST(u16, u16, "identity", (0, 127, 128, 255, 256, 32767, 32768, 65535), (0, 127, 128, 255, 256, 32767, 32768, 65535)),
    CAST(i8, i32, "sign-extends", (-128, -1, 0, 127), (-128, -1, 0, 127)),
    CAST(i8, i64, "sign-extends", (-128, -1, 0, 127), (-128, -1, 0, 127)),
    CAST(i8, u8, "wraps", (-128, -1, 0, 127), (128, 255, 0, 127)),
    CAST(i8, f32, "exact", (-128, -1, 0, 127), (-128, -1, 0, 127)),
    CAST(i8, f64, "exact", (-128, -1, 0, 127), (-128, -1, 0, 127)),
    CAST(i8, b8, "x != 0", (-128, -1, 0, 127), (1, 1, 0, 1)),
    CAST(i8, bf16, "rounds to nearest even", (-128, -1, 0, 127), (-128, -1, 0, 127)),
    CAST(i8, f16, "exact below 2049, rounds above", (-128, -1, 0, 127), (-128, -1, 0, 127)),
    CAST(i16, i32, "sign-extends", (-32768, -129, -1, 128, 255, 256, 32767), (-32768, -129, -1, 128, 255, 256, 32767)),
    CAST(i16, i64, "sign-extends", (-32768, -129, -1, 128, 255, 256, 32767), (-32768, -129, -1, 128, 255, 256, 32767)),
    CAST(i16, u8, "wraps", (-32768, -129, -1, 128, 255, 256, 32767), (0, 127, 255, 128, 255, 0, 255)),
    CAST(i16, f32, "exact", (-32768, -129, -1, 128, 255, 256, 32767), (-32768, -129, -1, 128, 255, 256, 32767)),
    CAST(i16, f64, "exact", (-32768, -129, -1, 128, 255, 256, 32767), (-32768, -129, -1, 128, 255, 256, 32767)),
    CAST(i16, b8, "x != 0", (-32768, -129, -1, 128, 255, 256, 32767), (1, 1, 1, 1, 1, 1, 1)),
    CAST(i16, bf16, "rounds to nearest even", (-32768, -129, -1, 128, 255, 256, 32767), (-32768, -129, -1, 128, 255, 256, 32768)),
    CAST(i16, f16, "exact below 2049, rounds above", (-32768, -129, -1, 128, 255, 256, 32767), (-32768, -129, -1, 128, 255, 256, 32768)),
    CAST(u16, i32, "no sign extension", (0, 127, 128, 255, 256, 32767, 32768, 65535), (0, 127, 128, 255, 256, 32767, 32768, 65535)),
    CAST(u16, i64, "no sign extension", (0, 127, 128, 255, 256, 32767, 32768, 65535), (0, 127, 128, 255, 256, 32767, 32768, 65535)),
    CAST(u16, u8, "wraps", (0, 127, 128, 255, 256, 32767, 32768, 65535), (0, 127, 128, 255, 0, 255, 0, 255)),
    CAST(u16, f32, "exact", (0, 127, 128, 255, 256, 32767, 32768, 65535), (0, 127, 128, 255, 256, 32767, 32768, 65535)),
    CAST(u16, f64, "exact", (0, 127, 128, 255, 256, 32767, 32768, 65535), (0, 127, 128, 255, 256, 32767, 32768, 65535)),
    CAST(u16, b8, "x != 0", (0, 127, 128, 255, 256, 32767, 32768, 65535), (0, 1, 1, 1, 1, 1, 1, 1)),
    CAST(u16, bf16, "rounds to nearest even", (0, 127, 128, 255, 256, 32767, 32768, 65535), (0, 127, 128, 255, 256, 32768, 32768, 65536)),
    CAST(u16, f16, "exact below 2049, rounds above", (0, 127, 128, 255, 256, 32767, 32768, 65535), (0, 127, 128, 255, 256, 32768, 32768, INF)),
    CAST(b8, i8, "0 and 1", (1, 0), (1, 0)),
    CAST(b8, i16, "0 and 1", (1, 0), (1, 0)),
    CAST(b8, u16, "0 and 1", (1, 0), (1, 0)),
    {.fn = NULL},
};

/* ==== Gradient-check cases (run by test_gradcheck.c in float64) ==== */

#define EW_UNARY_GRADIENT_CASE(ID, op, ref, x, shape, lo, hi) U1(EM_OP_##ID, w_##op, shape, lo, hi),

const gc_case gc_cases_elementwise[] = {
    EW_UNARY_FLOAT(EW_UNARY_GRADIENT_CASE)
    B2(EM_OP_ADD, w_add, (3, 4), (3, 4), -1, 1),
    B2(EM_OP_ADD, w_add, (3, 1), (4), -1, 1),
    {EM_OP_ADD, "add scalar + [2,3]", 2, {EM_SHAPE0, EM_SHAPE(2, 3)}, w_add, -1, 1, 0, NULL},
    U1(EM_OP_ADD, f_add_scalar, (2, 3), -1, 1),
    B2(EM_OP_SUB, w_sub, (2, 3), (3), -1, 1),
    B2(EM_OP_SUB, w_sub, (1, 3), (2, 1), -1, 1),
    B2(EM_OP_MUL, w_mul, (3, 1), (1, 4), -2, 2),
    B2(EM_OP_MUL, w_mul, (2, 2, 3), (2, 3), -2, 2),
    B2(EM_OP_DIV, w_div, (2, 3), (3), 0.5, 2),
    B2(EM_OP_DIV, w_div, (3, 1), (3, 4), 0.5, 2),
    B2(EM_OP_POW, w_pow, (2, 3), (3), 0.5, 2),
    B2(EM_OP_POW, w_pow, (2, 1), (2, 3), 0.5, 2),
    B2(EM_OP_MAXIMUM, w_maximum, (3, 4), (4), -1, 1),
    B2(EM_OP_MINIMUM, w_minimum, (3, 1), (3, 4), -1, 1),
    U1(EM_OP_NEG, w_neg, (2, 3), -1, 1),
    U1(EM_OP_ABS, w_abs, (2, 3), -2, 2),
    U1(EM_OP_SQUARE, w_square, (2, 3), -2, 2),
    U1(EM_OP_SIGN, f_sign, (2, 3), -2, 2),
    B2(EM_OP_FLOORMOD, w_floormod, (2, 3), (3), 0.5, 2),
    B2(EM_OP_FLOORMOD, w_floormod, (3, 1), (1, 2), -2, 2),
    U1(EM_OP_EXP, f_exp_twice, (4), -1, 1),
    {EM_OP_RELU_GRAD, "w_relu_grad (3, 4) (3, 4), in g", 2, {EM_SHAPE(3, 4), EM_SHAPE(3, 4)}, w_relu_grad, -1, 1, 1u, NULL},
    U1(EM_OP_LEAKY_RELU, w_leaky_relu, (3, 4), -1, 1),
    {EM_OP_SIGMOID_GRAD, "w_sigmoid_grad (2, 3) (2, 3)", 2, {EM_SHAPE(2, 3), EM_SHAPE(2, 3)}, w_sigmoid_grad, -1, 1, 0,
     NULL},
    {EM_OP_TANH_GRAD, "w_tanh_grad (3, 2) (3, 2)", 2, {EM_SHAPE(3, 2), EM_SHAPE(3, 2)}, w_tanh_grad, -1, 1, 0, NULL},
    {EM_OP_GELU_TANH_GRAD, "w_gelu_tanh_grad (3, 2) (3, 2)", 2, {EM_SHAPE(3, 2), EM_SHAPE(3, 2)}, w_gelu_tanh_grad, -2,
     2, 0, NULL},
    U1(EM_OP_CLIP, w_clip, (3, 4), -1, 1),
    {EM_OP_WHERE, "where [2,3] ? [2,3] : [3]", 3, {EM_SHAPE(2, 3), EM_SHAPE(2, 3), EM_SHAPE(3)}, w_where, -1, 1, 1u,
     where_cond},
    {EM_OP_WHERE, "where [2,1] ? [1,3] : []", 3, {EM_SHAPE(2, 1), EM_SHAPE(1, 3), EM_SHAPE0}, w_where, -1, 1, 1u,
     where_cond_col},
    U1(EM_OP_CAST, f_cast, (2, 3), -1, 1),
    U1(EM_OP_WHERE, f_band_part, (2, 3, 4), -1, 1),
    {.fn = NULL},
};
