/* Ops whose values depend on their input's shape alone, not on its values:
 * fill_like (the tape's seeds and zero gradients) and count_elements (the
 * divisor of mean). They are ops, not constants, so that a traced graph fed
 * another size of an unknown dimension computes them for the size it has at
 * run time. No gradient flows through them. */
#include "../gpu.h"
#include "../internal.h"


static int fill_like_infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    const em_tensor *x = c->in[0];
    *dtype = (em_dtype)x->dtype;
    *ndim = x->ndim;
    memcpy(shape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
    return 0;
}

static void fill_like_cpu(const em_call *c, em_tensor *out) { em__fill_raw(out, c->a->f[0]); }

static int count_elements_infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    (void)shape;
    *dtype = (em_dtype)c->in[0]->dtype;
    *ndim = 0;
    return 0;
}

static void count_elements_cpu(const em_call *c, em_tensor *out) {
    const em_tensor *x = c->in[0];
    int64_t n = 1;
    for (int d = 0; d < x->ndim; d++)
        if ((uint64_t)c->a->i[0] >> d & 1u) n *= x->shape[d];
    em__write(out->data, (em_dtype)out->dtype, (double)n);
}

#define EM_OP(ID, name, arity, dtypes, grad, kernel, flags, cost) \
    EM_OP_ROW(ID, name, arity, dtypes, grad, kernel, flags, cost, name##_infer, name##_cpu, NULL, NULL)
#include "fill.def"
#undef EM_OP

em_tensor *em_fill_like(em_tensor *x, double value) {
    return em__apply(EM_OP_FILL_LIKE, 1, &x, &(em_attrs){.f = {value}});
}

em_tensor *em__count(em_tensor *x, int64_t axes_mask) {
    return em__apply(EM_OP_COUNT_ELEMENTS, 1, &x, &(em_attrs){.i = {axes_mask}, .ni = 1});
}
