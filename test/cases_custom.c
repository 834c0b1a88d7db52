/* The custom family's forward cases (test_ops.c, every device) and gradient
 * cases (test_gradcheck.c): em_custom_gradient around softplus, whose
 * backward is the numerically stable sigmoid(x) * g, and a straight-through
 * estimator's forward (rounding). test/test_custom_op.c tests the rest. */
#include "common.h"

/* softplus = log(1 + exp(x)), built from ops; its gradient sigmoid(x). */
static em_tensor *softplus_forward(int n, em_tensor *const *in, void *ctx) {
    (void)n, (void)ctx;
    return em_log1p(em_exp(in[0]));
}
static int softplus_backward(int n, em_tensor *const *in, em_tensor *y, em_tensor *gy, em_tensor **gin, void *ctx) {
    (void)n, (void)y, (void)ctx;
    gin[0] = em_mul(gy, em_sigmoid(in[0]));
    return gin[0] ? 0 : -1;
}
static em_tensor *custom_softplus(em_tensor *const *in) {
    return em_custom_gradient(1, in, softplus_forward, softplus_backward, NULL);
}

/* x * y with the gradient rule of the product: two inputs. */
static em_tensor *product_forward(int n, em_tensor *const *in, void *ctx) {
    (void)n, (void)ctx;
    return em_mul(in[0], in[1]);
}
static int product_backward(int n, em_tensor *const *in, em_tensor *y, em_tensor *gy, em_tensor **gin, void *ctx) {
    (void)n, (void)y, (void)ctx;
    gin[0] = em_mul(gy, in[1]);
    gin[1] = em_mul(gy, in[0]);
    return gin[0] && gin[1] ? 0 : -1;
}
static em_tensor *custom_product(em_tensor *const *in) {
    return em_custom_gradient(2, in, product_forward, product_backward, NULL);
}

static void ref_softplus(const fw_case *c, double *e) {
    for (int64_t i = 0; i < em_shape_numel(c->out_shape); i++) e[i] = log1p(exp(fw_held_in(c, 0, i)));
}

#define SOFTPLUS_OF(dt, tol, x)                                                                               \
    {"custom_gradient", dt, "custom_gradient softplus [2,3] " #dt, custom_softplus, 1,                        \
     {{dt, EM_SHAPE(2, 3), x}}, dt, EM_SHAPE(2, 3), NULL, ref_softplus, tol}
#define SOFTPLUS(dt, tol) SOFTPLUS_OF(dt, tol, V(-3, -1, 0, 0.5, 2, 30))

const fw_case fw_cases_custom[] = {
    SOFTPLUS(EM_F32, 1e-6),
    SOFTPLUS(EM_F64, 1e-12),
    SOFTPLUS(EM_BF16, 0x1p-8), /* the output's rounding: half an ulp */
    SOFTPLUS_OF(EM_F16, 0x1p-11, V(-3, -1, 0, 0.5, 2, 9)), /* the forward's exp(30) would overflow float16 */
    {"custom_gradient", EM_F64, "custom_gradient product [2]x[2]", custom_product, 2,
     {{EM_F64, EM_SHAPE(2), V(1.5, -2)}, {EM_F64, EM_SHAPE(2), V(4, 3)}}, EM_F64, EM_SHAPE(2), V(6, -6), NULL, 0},
    {.fn = NULL},
};

const gc_case gc_cases_custom[] = {
    {EM_OP_CUSTOM_GRADIENT, "custom_gradient softplus [3,4]", 1, {EM_SHAPE(3, 4)}, custom_softplus, -3, 3, 0, NULL},
    {EM_OP_CUSTOM_GRADIENT, "custom_gradient product [3]x[3]", 2, {EM_SHAPE(3), EM_SHAPE(3)}, custom_product, -2, 2, 0,
     NULL},
    {.fn = NULL},
};
