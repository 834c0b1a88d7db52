/* copy_to_device: the one op that moves a tensor between devices (device.c
 * places it: it runs on its target, attribute i[0]). */
#include "../internal.h"

static int copy_to_device_infer(const em_call *c, em_dtype *dtype, int *ndim, int64_t *shape) {
    int64_t d = c->a->i[0];
    if (d < 0 || (d >= atomic_load(&em__ncpu) && (d < EM_GPU_BASE || d >= EM_GPU_BASE + em__gpu_loaded_count())))
        return em__op_error(c, "device %lld does not exist", (long long)c->a->i[0]);
    *dtype = (em_dtype)c->in[0]->dtype;
    *ndim = c->in[0]->ndim;
    memcpy(shape, c->in[0]->shape, sizeof(int64_t) * (size_t)*ndim);
    return 0;
}

static void copy_to_device_cpu(const em_call *c, em_tensor *out) { (void)em__copy_strided(out, c->in[0]); }

static int copy_to_device_grad(const em_call *c, em_tensor *out, em_tensor *gout, const bool *need, em_tensor **gin) {
    (void)out;
    (void)need;
    em_attrs back = {.i = {c->in[0]->device}, .ni = 1};
    gin[0] = em__apply(EM_OP_COPY_TO_DEVICE, 1, &gout, &back);
    return gin[0] ? 0 : -1;
}

#define EM_OP(ID, name, arity, dtypes, grad, kernel, flags, cost) \
    EM_OP_ROW(ID, name, arity, dtypes, grad, kernel, flags, cost, name##_infer, name##_cpu, NULL, name##_grad)
#include "device.def"
#undef EM_OP
