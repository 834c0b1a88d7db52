// lib/ops/fill.c's ops on the GPU: their values depend on the input's shape
// alone, which the host knows, so each is one fill of the output
// (em_gpu_fill, converting as the CPU's em__write does).
#include "common.cuh"

namespace {

int fill(const em_gpu_call *c, em_gpu_tensor *out, double v) {
    if (out->numel == 0) return 0;
    if (em_gpu_fill(out, v, c->device)) return -1;
    return em_gpu_launched(c->device, c->name); // names this op as the last one launched
}

// The number of elements along the axes in bitmask `mask`.
double count(const em_gpu_tensor *x, uint64_t mask) {
    int64_t n = 1;
    for (int d = 0; d < x->ndim; d++)
        if (mask >> d & 1u) n *= x->shape[d];
    return (double)n;
}

} // namespace

// The entries of lib/ops/fill.def: f[0] the value; i[0] the bitmask of the counted axes.
int em_gpu_op_fill_like(const em_gpu_call *c, em_gpu_tensor *out) { return fill(c, out, c->a->f[0]); }
int em_gpu_op_count_elements(const em_gpu_call *c, em_gpu_tensor *out) {
    return fill(c, out, count(&c->in[0], (uint64_t)c->a->i[0]));
}
