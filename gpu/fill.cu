// lib/ops/fill.c's ops on the GPU: their values depend on the input's shape
// alone, which the host knows, so each is one fill of the output
// (em__gpu_fill, converting as the CPU's em__write does).
#include "common.cuh"

extern "C" int em__gpu_fill_op(const em_gpu_call *c, em_gpu_tensor *out) {
    double v;
    switch (c->op) {
    case EM_OP_FILL_LIKE: v = c->a->f[0]; break; // f[0]: the value
    case EM_OP_COUNT_ELEMENTS: {                 // i[0]: bitmask of the counted axes
        const em_gpu_tensor *x = &c->in[0];
        int64_t n = 1;
        for (int d = 0; d < x->ndim; d++)
            if ((uint64_t)c->a->i[0] >> d & 1u) n *= x->shape[d];
        v = (double)n;
        break;
    }
    default: em__gpu_report("%s: no GPU kernel", c->name); return -1;
    }
    if (out->numel == 0) return 0;
    if (em__gpu_fill(out, v, c->device)) return -1;
    return em_gpu_launched(c->device, c->name); // names this op as the last one launched
}
