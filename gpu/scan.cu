// lib/ops/scan.c's scans on the GPU: one thread per line of the
// [outer, n, inner] view, through lib/ops/scan_math.h's line function, the
// CPU's arithmetic in the CPU's order.
#include "common.cuh"
#include "ops/scan_math.h"

namespace {

#define SCAN_LINES(E, sfx, T, U, C, MN, MX, name)                                                                      \
    __global__ void name##_##sfx##_lines(const T *x, T *y, int64_t lines, int64_t n, int64_t inner, bool exclusive,    \
                                         bool reverse) {                                                               \
        EM_GPU_LOOP(l, lines) {                                                                                        \
            int64_t s = em_scan_line_start(l, n, inner);                                                               \
            em_scan_##name##_##sfx(x + s, y + s, n, inner, exclusive, reverse);                                        \
        }                                                                                                              \
    }
EM_FOR_NUMERIC(SCAN_LINES, cumsum)
EM_FOR_NUMERIC(SCAN_LINES, cumprod)

#define SCAN_CASE(E, sfx, T, U, C, MN, MX, op)                                                                       \
    case E:                                                                                                            \
        op##_##sfx##_lines<<<em_gpu_blocks(lines), EM_GPU_THREADS, 0, stream>>>(                                     \
            static_cast<const T *>(x->data), static_cast<T *>(out->data), lines, n, inner, exclusive, reverse);        \
        return em_gpu_launched(c->device, c->name);
#define SCAN_ENTRY(op)                                                                                               \
    int op##_run(const em_gpu_call *c, em_gpu_tensor *out) {                                                         \
        const em_gpu_tensor *x = &c->in[0];                                                                            \
        int axis = (int)c->a->i[0];                                                                                    \
        int64_t n = x->shape[axis], inner = 1;                                                                         \
        for (int d = axis + 1; d < x->ndim; d++) inner *= x->shape[d];                                                 \
        int64_t lines = out->numel / n;                                                                                \
        bool exclusive = c->a->i[1] != 0, reverse = c->a->i[2] != 0;                                                   \
        cudaStream_t stream = em_gpu_stream(c->device);                                                                \
        if (!stream) return -1;                                                                                        \
        switch (x->dtype) {                                                                                            \
            EM_FOR_NUMERIC(SCAN_CASE, op)                                                                            \
        default: break;                                                                                                \
        }                                                                                                              \
        em_gpu_report("%s: no GPU kernel for input dtype %s", c->name, em_gpu_dtype_name(x->dtype));                   \
        return -1;                                                                                                     \
    }
SCAN_ENTRY(cumsum)
SCAN_ENTRY(cumprod)

} // namespace

// The entries of lib/ops/scan.def (the dispatcher skips empty outputs).
int em_gpu_op_cumsum(const em_gpu_call *c, em_gpu_tensor *out) { return cumsum_run(c, out); }
int em_gpu_op_cumprod(const em_gpu_call *c, em_gpu_tensor *out) { return cumprod_run(c, out); }
