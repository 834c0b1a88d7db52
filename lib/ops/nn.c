/* What the nn families (softmax.c, conv.c, pool.c; nn.h) share: the checks
 * of their shape rules, and convolution and pooling's geometry from the
 * attributes; then the layers that are compositions of other ops: bias_add
 * and dropout. */
#include "../internal.h"
#include "nn.h"

/* ---- the checks (nn.h) ---- */

const char *em__nn_shape_str(int ndim, const int64_t *dims, char *buf, size_t size) {
    em_shape s = {.ndim = ndim};
    memcpy(s.dims, dims, sizeof(int64_t) * (size_t)ndim);
    return em_shape_str(s, buf, size);
}

int em__nn_need_float(const em_call *c, int i, const char *arg) {
    em_dtype d = (em_dtype)c->in[i]->dtype;
    if (em__is_float(d)) return 0;
    return em__op_error(c, "%s has dtype %s; float32 or float64 is required", arg, em_dtype_name(d));
}

int em__nn_same_float(const em_call *c, const char *arg0, const char *arg1) {
    if (em__nn_need_float(c, 0, arg0) || em__nn_need_float(c, 1, arg1)) return -1;
    if (c->in[0]->dtype == c->in[1]->dtype) return 0;
    return em__op_error(c, "%s (%s) and %s (%s) differ in dtype", arg0, em_dtype_name((em_dtype)c->in[0]->dtype), arg1,
                        em_dtype_name((em_dtype)c->in[1]->dtype));
}

int em__nn_same_shape(const em_call *c, const char *arg0, const char *arg1) {
    const em_tensor *a = c->in[0], *b = c->in[1];
    if (a->ndim == b->ndim && memcmp(a->shape, b->shape, sizeof(int64_t) * a->ndim) == 0) return 0;
    char s0[160], s1[160];
    return em__op_error(c, "%s %s and %s %s differ in shape", arg0, em__tshape(a, s0, sizeof s0), arg1,
                        em__tshape(b, s1, sizeof s1));
}

int em__nn_geom(const em_call *c, const int64_t *xs, int64_t kh, int64_t kw, int64_t o, bool conv, em_conv_geom *g) {
    const int64_t *a = c->a->i;
    char b[160];
    *g = (em_conv_geom){.n = xs[0], .h = xs[1], .w = xs[2], .c = xs[3], .kh = kh, .kw = kw, .o = o,
                        .sh = a[A_STRIDES], .sw = a[A_STRIDES + 1], .dh = conv ? a[A_WINDOW] : 1,
                        .dw = conv ? a[A_WINDOW + 1] : 1};
    if (g->sh < 1 || g->sw < 1)
        return em__op_error(c, "strides must be >= 1, got {%lld, %lld}", (long long)g->sh, (long long)g->sw);
    if (g->dh < 1 || g->dw < 1)
        return em__op_error(c, "dilations must be >= 1, got {%lld, %lld}", (long long)g->dh, (long long)g->dw);
    if (kh < 1 || kw < 1) return em__op_error(c, "window must be at least 1x1, got %lldx%lld", (long long)kh, (long long)kw);
    if (a[A_PAD] != EM_PAD_VALID && a[A_PAD] != EM_PAD_SAME)
        return em__op_error(c, "padding must be EM_PAD_VALID or EM_PAD_SAME, got %lld", (long long)a[A_PAD]);
    if (!em_conv_geom_finish(g, a[A_PAD] == EM_PAD_SAME))
        return em__op_error(c, "input %s is smaller than the %lldx%lld window (dilated) with VALID padding",
                            em__nn_shape_str(4, xs, b, sizeof b), (long long)((kh - 1) * g->dh + 1),
                            (long long)((kw - 1) * g->dw + 1));
    return 0;
}

int em__nn_need_rank4(const em_call *c, int i, const char *arg) {
    char b[160];
    if (c->in[i]->ndim == 4) return 0;
    return em__op_error(c, "%s must be 4-D, got %s", arg, em__tshape(c->in[i], b, sizeof b));
}

int em__nn_attr_shape(const em_call *c, const char *what, int64_t *s) {
    for (int d = 0; d < 4; d++) {
        s[d] = c->a->i[A_SHAPE + d];
        if (s[d] < 0) return em__op_error(c, "%s shape has a negative dimension", what);
    }
    return 0;
}

em_tensor *em__nn_sibling(const em_call *c, em_op op, em_tensor *a, em_tensor *b, const em_tensor *shape_of) {
    em_attrs at = *c->a;
    at.ni = A_COUNT;
    if (shape_of) memcpy(&at.i[A_SHAPE], shape_of->shape, sizeof(int64_t) * 4);
    em_tensor *in[2] = {a, b};
    return em__apply(op, b ? 2 : 1, in, &at);
}

/* ---- layers ---- */

em_tensor *em_bias_add(em_tensor *x, em_tensor *bias) {
    if (!x || !bias) return em__null_input("bias_add");
    if (bias->ndim != 1 || x->ndim < 1 || bias->shape[0] != x->shape[x->ndim - 1]) {
        char b0[160], b1[160];
        em__error("bias_add: bias %s must be 1-D and match the last dimension of x %s", em__tshape(bias, b0, sizeof b0),
                  em__tshape(x, b1, sizeof b1));
        return NULL;
    }
    return em_add(x, bias);
}

em_tensor *em_dropout(em_tensor *x, double keep_prob) {
    if (!x) return em__null_input("dropout");
    if (!(keep_prob > 0 && keep_prob <= 1)) {
        em__error("dropout: keep_prob must be in (0, 1], got %g", keep_prob);
        return NULL;
    }
    if (!em__is_float((em_dtype)x->dtype)) {
        em__error("dropout: x has dtype %s; float32 or float64 is required", em_dtype_name((em_dtype)x->dtype));
        return NULL;
    }
    if (keep_prob == 1) return em__ref(x);
    em_dtype dt = (em_dtype)x->dtype;
    em_scope_begin(); /* the mask's intermediates go when this returns */
    em_tensor *u = em_random_uniform(dt, em__shape_of(x), 0, 1);
    em_tensor *keep = em_cast(em_less(u, em_scalar(dt, keep_prob)), dt);
    em_tensor *y = em_escape(em_mul(x, em_mul_scalar(keep, 1 / keep_prob)));
    em_scope_end();
    return y;
}
