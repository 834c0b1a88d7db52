// Shared by the CUDA backend's files (gpu/*.cu): the per-device stream, launch
// bookkeeping for error messages, scratch memory, and dtype dispatch. The C
// library talks to the backend only through lib/gpu.h.
#ifndef EMBER_GPU_COMMON_CUH
#define EMBER_GPU_COMMON_CUH

#include <cuda_runtime.h>
#include <stdint.h>

#include "gpu.h"

#define EM_GPU_THREADS 256

// The device's stream (made on first use); also makes `ordinal` the calling
// thread's current CUDA device. NULL only after a report (the device cannot
// be selected or the stream cannot be made).
cudaStream_t em_gpu_stream(int ordinal);
// Call right after each kernel launch: records `op` as the last op launched
// on the device (named by em__gpu_sync if a kernel fails later) and reports a
// launch error now. 0, or -1 after em__gpu_report.
int em_gpu_launched(int ordinal, const char *op);
// Reports a failed CUDA runtime call: "<op>: <what>: <cudaGetErrorString>". Returns -1.
int em_gpu_fail(const char *op, const char *what, cudaError_t err);
// Temporary device memory from the caching allocator; NULL after a report.
void *em_gpu_scratch(int ordinal, size_t bytes);
void em_gpu_scratch_free(int ordinal, void *p);
// Registers fn to run first in em__gpu_shutdown, while the streams still
// exist: a file's own per-device resources (cuBLAS handles, workspaces) are
// released there. Registering the same fn again does nothing; fn must cope
// with having nothing to release.
void em_gpu_on_shutdown(void (*fn)(void));
// gpu/nn.cu's cuBLAS handles and workspaces; em__gpu_shutdown calls it.
extern "C" void em__gpu_nn_shutdown(void);

// A product nvcc must not fuse with a following sum into an FMA: the CPU
// build (ISO C, no contraction) rounds the product first, and so do these.
__device__ inline float em_gpu_mul(float a, float b) { return __fmul_rn(a, b); }
__device__ inline double em_gpu_mul(double a, double b) { return __dmul_rn(a, b); }

// Blocks for n elements, at most 65535 * 32 blocks; kernels loop with a grid stride.
static inline unsigned em_gpu_blocks(int64_t n) {
    int64_t b = (n + EM_GPU_THREADS - 1) / EM_GPU_THREADS;
    if (b < 1) b = 1;
    if (b > 65535 * 32) b = 65535 * 32;
    return (unsigned)b;
}

#define EM_GPU_LOOP(i, n) \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (int64_t)blockDim.x * gridDim.x)

// Runs BODY with T bound to the C type of em_dtype `dt` (bool is uint8_t, as on the CPU).
#define EM_GPU_DTYPE_SWITCH(dt, T, ...)                      \
    switch (dt) {                                            \
    case EM_F32: { typedef float T; __VA_ARGS__; } break;    \
    case EM_F64: { typedef double T; __VA_ARGS__; } break;   \
    case EM_I32: { typedef int32_t T; __VA_ARGS__; } break;  \
    case EM_I64: { typedef int64_t T; __VA_ARGS__; } break;  \
    case EM_U8: { typedef uint8_t T; __VA_ARGS__; } break;   \
    case EM_BOOL: { typedef uint8_t T; __VA_ARGS__; } break; \
    default: break;                                          \
    }

#endif
