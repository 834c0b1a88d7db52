/* What the nn families (softmax.c, conv.c, pool.c, norm.c, batch_norm.c;
 * nn.h) share: the checks of their shape rules, convolution and pooling's
 * geometry from the attributes, and the normalizations' second-order
 * gradient rule; then the layers that are compositions of other ops: bias_add
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

/* ---- the normalizations' backward op's gradient (nn.h) ----
 * Per group (s(): sums over the group, kept; mean(): s() / n, n its size; the mean terms only when centred),
 * with xh = (x - mean(x)) r, r = 1 / sqrt(mean((x - mean(x))^2) + eps), gy = dy gamma, and the loss
 * L = s(Gx dx) + s(Gg dy xh) + s(Gb dy) of the backward op's output [dgamma | dbeta | dx]:
 *   d/d(dy)   = gamma H + Gg xh + Gb,  H = r (Gx - mean(Gx) - xh mean(Gx xh))
 *   d/dgamma  = dy H summed over the groups
 *   d/dx      = r (q - mean(q) - xh mean(q xh)) - k r^2 xh,  where
 *     q = Gg dy - r (Gx b + gy a),  a = mean(Gx xh), b = mean(gy xh)   (L's derivative in xh)
 *     k = mean(Gx gy) - a b - mean(gy) mean(Gx)                         (L's in r, over n).
 * Means, not sums over n: em_mean counts at run time, so a graph traced for one batch size runs another. */
int em__norm_backward_grad(em_tensor *x, em_tensor *gamma, em_tensor *dy, em_tensor *G, int axis, bool centred,
                           double eps, const bool *need, em_tensor **gin) {
    const int64_t C = x->shape[x->ndim - 1];
#define MEAN(t) em_mean(t, 1, &axis, true)
    em_tensor *Gg = em_slice(G, (int64_t[]){0}, (int64_t[]){C});
    em_tensor *Gx = em_reshape(em_slice(G, (int64_t[]){(centred ? 2 : 1) * C}, (int64_t[]){-1}), em__shape_of(x));
    em_tensor *xc = centred ? em_sub(x, MEAN(x)) : x;
    em_tensor *r = em_rsqrt(em_add_scalar(MEAN(em_square(xc)), eps));
    em_tensor *xh = em_mul(xc, r), *gy = em_mul(dy, gamma);
    em_tensor *Gx_c = centred ? em_sub(Gx, MEAN(Gx)) : Gx;
    em_tensor *H = em_mul(r, em_sub(Gx_c, em_mul(xh, MEAN(em_mul(Gx, xh)))));
    if (need[3]) {
        em_tensor *d = em_add(em_mul(gamma, H), em_mul(Gg, xh));
        if (centred) d = em_add(d, em_slice(G, (int64_t[]){C}, (int64_t[]){C}));
        if (!(gin[3] = d)) return -1;
    }
    if (need[2] && !(gin[2] = em__sum_to_shape(em_mul(dy, H), 1, (int64_t[]){C}))) return -1;
    if (need[0]) {
        em_tensor *a = MEAN(em_mul(Gx, xh)), *b = MEAN(em_mul(gy, xh));
        em_tensor *k = em_sub(MEAN(em_mul(Gx, gy)), em_mul(a, b));
        if (centred) k = em_sub(k, em_mul(MEAN(gy), MEAN(Gx)));
        em_tensor *q = em_sub(em_mul(Gg, dy), em_mul(r, em_add(em_mul(Gx, b), em_mul(gy, a))));
        em_tensor *q_c = centred ? em_sub(q, MEAN(q)) : q;
        em_tensor *d = em_mul(r, em_sub(q_c, em_mul(xh, MEAN(em_mul(q, xh)))));
        if (!(gin[0] = em_sub(d, em_mul(em_mul(k, em_square(r)), xh)))) return -1;
    }
#undef MEAN
    return 0;
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

/* ---- TensorFlow 1's layers built from other ops, as TF builds them ---- */

em_tensor *em_conv1d(em_tensor *value, em_tensor *filters, int stride, em_padding padding, int dilation) {
    if (!value || !filters) return em__null_input("conv1d");
    char b1[160], b2[160];
    if (value->ndim != 3 || filters->ndim != 3) {
        em__error("conv1d: value %s must be [N,W,C] and filters %s [K,C,O]", em__tshape(value, b1, sizeof b1),
                  em__tshape(filters, b2, sizeof b2));
        return NULL;
    }
    em_scope_begin();
    int strides[2] = {1, stride}, dilations[2] = {1, dilation ? dilation : 1};
    em_tensor *y = em_conv2d(em_expand_dims(value, 1), em_expand_dims(filters, 0), strides, padding, dilations);
    y = em_escape(em_squeeze(y, EM_AXES(1)));
    em_scope_end();
    return y;
}

em_tensor *em_conv2d_transpose(em_tensor *value, em_tensor *filter, em_shape output_shape, const int *strides,
                               em_padding padding) {
    if (output_shape.ndim != 4) {
        em__error("conv2d_backprop_input: output_shape must have 4 dimensions [N,H,W,C], got %d", output_shape.ndim);
        return NULL;
    }
    em_attrs a = {.i = {strides ? strides[0] : 1, strides ? strides[1] : 1, 1, 1, padding}, .ni = A_COUNT};
    for (int d = 0; d < 4; d++) a.i[A_SHAPE + d] = output_shape.dims[d];
    return em__apply(EM_OP_CONV2D_BACKPROP_INPUT, 2, (em_tensor *[]){filter, value}, &a);
}

em_tensor *em_separable_conv2d(em_tensor *input, em_tensor *depthwise_filter, em_tensor *pointwise_filter,
                               const int *strides, em_padding padding, const int *dilations) {
    em_scope_begin();
    em_tensor *y = em_depthwise_conv2d(input, depthwise_filter, strides, padding, dilations);
    y = y ? em_escape(em_conv2d(y, pointwise_filter, NULL, EM_PAD_VALID, NULL)) : NULL;
    em_scope_end();
    return y;
}

em_tensor *em_l2_normalize(em_tensor *x, int naxes, const int *axes, double epsilon) {
    if (!x) return em__null_input("l2_normalize");
    em_scope_begin();
    em_tensor *sq = em_sum(em_square(x), naxes, axes, true);
    em_tensor *y = em_escape(em_mul(x, em_rsqrt(em_maximum(sq, em_fill_like(sq, epsilon)))));
    em_scope_end();
    return y;
}

em_tensor *em_softmax_cross_entropy_smoothed(em_tensor *labels, em_tensor *logits, double label_smoothing) {
    if (!labels || !logits) return em__null_input("softmax_cross_entropy_smoothed");
    if (!(label_smoothing >= 0 && label_smoothing <= 1)) {
        em__error("softmax_cross_entropy_smoothed: label_smoothing must be in [0, 1], got %g", label_smoothing);
        return NULL;
    }
    if (label_smoothing == 0) return em_softmax_cross_entropy_with_logits(labels, logits);
    int64_t classes = logits->ndim ? logits->shape[logits->ndim - 1] : 1;
    em_scope_begin();
    em_tensor *smooth = em_add_scalar(em_mul_scalar(labels, 1 - label_smoothing), label_smoothing / (double)classes);
    em_tensor *y = em_escape(em_softmax_cross_entropy_with_logits(smooth, logits));
    em_scope_end();
    return y;
}

em_tensor *em_weighted_cross_entropy_with_logits(em_tensor *labels, em_tensor *logits, double pos_weight) {
    if (!labels || !logits) return em__null_input("weighted_cross_entropy_with_logits");
    em_scope_begin();
    /* (1 - z) x + (1 + (q - 1) z) (log1p(exp(-|x|)) + relu(-x)) */
    em_tensor *log_weight = em_add_scalar(em_mul_scalar(labels, pos_weight - 1), 1);
    em_tensor *soft = em_add(em_log1p(em_exp(em_neg(em_abs(logits)))), em_relu(em_neg(logits)));
    em_tensor *y = em_add(em_mul(em_add_scalar(em_neg(labels), 1), logits), em_mul(log_weight, soft));
    y = em_escape(y);
    em_scope_end();
    return y;
}
