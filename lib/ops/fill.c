/* fill_like: a tensor of x's shape and dtype with every element set. It is an
 * op, not a constant, so that a traced graph gives it the shape x has at run
 * time (the tape seeds and zero gradients use it). No gradient flows through
 * it: its value does not depend on x's values. */
#include "../internal.h"

static int fill_like_infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    const em_tensor *x = c->in[0];
    *dtype = (em_dtype)x->dtype;
    *ndim = x->ndim;
    memcpy(shape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
    return 0;
}

static void fill_like_cpu(const em_call *c, em_tensor *out) { em__fill_raw(out, c->a->f[0]); }

/* attrs: f[0] = the value */
const em_op_def em_ops_fill[] = {
    [EM_OP_FILL_LIKE - EM_OPS_FILL_BEGIN] = {.name = "fill_like", .arity = 1, .flags = EM_OPF_CUT | EM_OPF_STRIDED,
                                             .infer = fill_like_infer, .cpu = fill_like_cpu},
};
EM_OP_TABLE_CHECK(fill, EM_OPS_FILL_BEGIN, EM_OPS_FILL_END);

em_tensor *em_fill_like(em_tensor *x, double value) {
    return em__apply(EM_OP_FILL_LIKE, 1, &x, &(em_attrs){.f = {value}});
}
