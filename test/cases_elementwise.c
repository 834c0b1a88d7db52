/* Gradient-check cases of the elementwise family (run by test_gradcheck.c in
 * float64). Binary ops have broadcasting cases; inputs stay away from kinks
 * (abs and relu at 0, clip at its bounds) and from domain edges via lo/hi. */
#include "common.h"

static em_tensor *f_add(em_tensor *const *in) { return em_add(in[0], in[1]); }
static em_tensor *f_sub(em_tensor *const *in) { return em_sub(in[0], in[1]); }
static em_tensor *f_mul(em_tensor *const *in) { return em_mul(in[0], in[1]); }
static em_tensor *f_div(em_tensor *const *in) { return em_div(in[0], in[1]); }
static em_tensor *f_pow(em_tensor *const *in) { return em_pow(in[0], in[1]); }
static em_tensor *f_maximum(em_tensor *const *in) { return em_maximum(in[0], in[1]); }
static em_tensor *f_minimum(em_tensor *const *in) { return em_minimum(in[0], in[1]); }
static em_tensor *f_neg(em_tensor *const *in) { return em_neg(in[0]); }
static em_tensor *f_abs(em_tensor *const *in) { return em_abs(in[0]); }
static em_tensor *f_square(em_tensor *const *in) { return em_square(in[0]); }
/* sign has a zero gradient: multiplied by x so the check is not vacuous. */
static em_tensor *f_sign(em_tensor *const *in) { return em_mul(em_sign(in[0]), in[0]); }
static em_tensor *f_sqrt(em_tensor *const *in) { return em_sqrt(in[0]); }
static em_tensor *f_rsqrt(em_tensor *const *in) { return em_rsqrt(in[0]); }
static em_tensor *f_exp(em_tensor *const *in) { return em_exp(in[0]); }
static em_tensor *f_log(em_tensor *const *in) { return em_log(in[0]); }
static em_tensor *f_log1p(em_tensor *const *in) { return em_log1p(in[0]); }
static em_tensor *f_erf(em_tensor *const *in) { return em_erf(in[0]); }
static em_tensor *f_relu(em_tensor *const *in) { return em_relu(in[0]); }
/* relu's gradient op, differentiated in its gradient input (flat in x). */
static em_tensor *f_relu_grad(em_tensor *const *in) {
    return em__apply(EM_OP_RELU_GRAD, 2, in, &(em_attrs){0});
}
static em_tensor *f_leaky_relu(em_tensor *const *in) { return em_leaky_relu(in[0], 0.2); }
static em_tensor *f_elu(em_tensor *const *in) { return em_elu(in[0]); }
static em_tensor *f_sigmoid(em_tensor *const *in) { return em_sigmoid(in[0]); }
static em_tensor *f_tanh(em_tensor *const *in) { return em_tanh(in[0]); }
/* sigmoid's and tanh's gradient ops (output, incoming gradient), in both inputs. */
static em_tensor *f_sigmoid_grad(em_tensor *const *in) {
    return em__apply(EM_OP_SIGMOID_GRAD, 2, in, &(em_attrs){0});
}
static em_tensor *f_tanh_grad(em_tensor *const *in) { return em__apply(EM_OP_TANH_GRAD, 2, in, &(em_attrs){0}); }
static em_tensor *f_softplus(em_tensor *const *in) { return em_softplus(in[0]); }
static em_tensor *f_gelu(em_tensor *const *in) { return em_gelu(in[0]); }
static em_tensor *f_clip(em_tensor *const *in) { return em_clip_by_value(in[0], -0.45, 0.55); }
static em_tensor *f_where(em_tensor *const *in) { return em_where(in[0], in[1], in[2]); }
static em_tensor *f_cast(em_tensor *const *in) { return em_cast(in[0], EM_F64); }
/* The gradient of exp(x)^2 and of tanh(x)*tanh(x) flows through `out`. */
static em_tensor *f_exp_twice(em_tensor *const *in) { return em_mul(em_exp(in[0]), em_exp(in[0])); }
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

const gc_case gc_cases_elementwise[] = {
    B2(EM_OP_ADD, f_add, (3, 4), (3, 4), -1, 1),
    B2(EM_OP_ADD, f_add, (3, 1), (4), -1, 1),
    {EM_OP_ADD, "add scalar + [2,3]", 2, {EM_SHAPE0, EM_SHAPE(2, 3)}, f_add, -1, 1, 0, NULL},
    U1(EM_OP_ADD, f_add_scalar, (2, 3), -1, 1),
    B2(EM_OP_SUB, f_sub, (2, 3), (3), -1, 1),
    B2(EM_OP_SUB, f_sub, (1, 3), (2, 1), -1, 1),
    B2(EM_OP_MUL, f_mul, (3, 1), (1, 4), -2, 2),
    B2(EM_OP_MUL, f_mul, (2, 2, 3), (2, 3), -2, 2),
    B2(EM_OP_DIV, f_div, (2, 3), (3), 0.5, 2),
    B2(EM_OP_DIV, f_div, (3, 1), (3, 4), 0.5, 2),
    B2(EM_OP_POW, f_pow, (2, 3), (3), 0.5, 2),
    B2(EM_OP_POW, f_pow, (2, 1), (2, 3), 0.5, 2),
    B2(EM_OP_MAXIMUM, f_maximum, (3, 4), (4), -1, 1),
    B2(EM_OP_MINIMUM, f_minimum, (3, 1), (3, 4), -1, 1),
    U1(EM_OP_NEG, f_neg, (2, 3), -1, 1),
    U1(EM_OP_ABS, f_abs, (2, 3), -2, 2),
    U1(EM_OP_SQUARE, f_square, (2, 3), -2, 2),
    U1(EM_OP_SIGN, f_sign, (2, 3), -2, 2),
    U1(EM_OP_SQRT, f_sqrt, (2, 3), 0.5, 2),
    U1(EM_OP_RSQRT, f_rsqrt, (2, 3), 0.5, 2),
    U1(EM_OP_EXP, f_exp, (2, 3), -1, 1),
    U1(EM_OP_EXP, f_exp_twice, (4), -1, 1),
    U1(EM_OP_LOG, f_log, (2, 3), 0.5, 2),
    U1(EM_OP_LOG1P, f_log1p, (2, 3), -0.5, 2),
    U1(EM_OP_ERF, f_erf, (2, 3), -1.5, 1.5),
    U1(EM_OP_RELU, f_relu, (3, 4), -1, 1),
    {EM_OP_RELU_GRAD, "f_relu_grad (3, 4) (3, 4), in g", 2, {EM_SHAPE(3, 4), EM_SHAPE(3, 4)}, f_relu_grad, -1, 1, 1u, NULL},
    U1(EM_OP_LEAKY_RELU, f_leaky_relu, (3, 4), -1, 1),
    U1(EM_OP_ELU, f_elu, (3, 4), -2, 2),
    U1(EM_OP_SIGMOID, f_sigmoid, (2, 3), -3, 3),
    U1(EM_OP_TANH, f_tanh, (2, 3), -2, 2),
    {EM_OP_SIGMOID_GRAD, "f_sigmoid_grad (2, 3) (2, 3)", 2, {EM_SHAPE(2, 3), EM_SHAPE(2, 3)}, f_sigmoid_grad, -1, 1, 0,
     NULL},
    {EM_OP_TANH_GRAD, "f_tanh_grad (3, 2) (3, 2)", 2, {EM_SHAPE(3, 2), EM_SHAPE(3, 2)}, f_tanh_grad, -1, 1, 0, NULL},
    U1(EM_OP_SOFTPLUS, f_softplus, (2, 3), -3, 3),
    U1(EM_OP_GELU, f_gelu, (3, 4), -3, 3),
    U1(EM_OP_CLIP, f_clip, (3, 4), -1, 1),
    {EM_OP_WHERE, "where [2,3] ? [2,3] : [3]", 3, {EM_SHAPE(2, 3), EM_SHAPE(2, 3), EM_SHAPE(3)}, f_where, -1, 1, 1u,
     where_cond},
    {EM_OP_WHERE, "where [2,1] ? [1,3] : []", 3, {EM_SHAPE(2, 1), EM_SHAPE(1, 3), EM_SHAPE0}, f_where, -1, 1, 1u,
     where_cond_col},
    U1(EM_OP_CAST, f_cast, (2, 3), -1, 1),
    {.fn = NULL},
};

const fw_case fw_cases_elementwise[] = {
    {.fn = NULL},
};
