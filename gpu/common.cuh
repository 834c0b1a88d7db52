// Shared by the CUDA plug-in's files (gpu/*.cu): what the library handed the
// plug-in (errors, dtype names), the per-device stream, launch bookkeeping
// for error messages, scratch memory, the one cuBLAS handle pool, dtype
// dispatch, and each file's part of the plug-in's table. The library talks
// to the plug-in only through lib/gpu.h's tables; everything declared here
// is the plug-in's own (built with hidden visibility: the one exported
// symbol is gpu/plugin.cu's entry, em_gpu_plugin).
#ifndef EMBER_GPU_COMMON_CUH
#define EMBER_GPU_COMMON_CUH

#include <cuda_runtime.h>
#include <stdint.h>

#include "gpu.h"

#define EM_GPU_THREADS 256
// GPUs the plug-in keeps state for (ordinals 0 .. EM_GPU_MAX - 1).
#define EM_GPU_MAX 32

// ---- the library's functions, through the table it handed the plug-in (gpu/plugin.cu) ----
extern const em_gpu_host *em_gpu_host_fns;
// Sets the calling thread's error: the plug-in's only way to fail.
void em_gpu_report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
inline const char *em_gpu_dtype_name(int dtype) { return em_gpu_host_fns->dtype_name((em_dtype)dtype); }
inline size_t em_gpu_dtype_size(int dtype) { return em_gpu_host_fns->dtype_size((em_dtype)dtype); }
// value as one element of dtype at p, converted (saturating) as the CPU does.
inline void em_gpu_write(void *p, int dtype, double value) { em_gpu_host_fns->write(p, (em_dtype)dtype, value); }

// ---- streams, errors and copies (gpu/streams.cu) ----
// The device's stream (made on first use); also makes `ordinal` the calling
// thread's current CUDA device. NULL only after a report (the device cannot
// be selected or the stream cannot be made).
cudaStream_t em_gpu_stream(int ordinal);
// Call right after each kernel launch: records `op` as the last op launched
// on the device (named by em_gpu_sync if a kernel fails later) and reports a
// launch error now. 0, or -1 after em_gpu_report.
int em_gpu_launched(int ordinal, const char *op);
// Reports a failed CUDA runtime call: "<op>: <what>: <cudaGetErrorString>". Returns -1.
int em_gpu_fail(const char *op, const char *what, cudaError_t err);
// Reports an ordinal outside [0, EM_GPU_MAX) (the library passes only valid ones).
bool em_gpu_bad_ordinal(const char *fn, int ordinal);
// Errors of a stream capture that broke (gpu/graphs.cu marks capturing devices).
bool em_gpu_is_capture_error(cudaError_t e);
void em_gpu_set_capturing(int ordinal, bool on);
int em_gpu_copy(void *dst, int dst_device, const void *src, int src_device, size_t bytes);
int em_gpu_copy_strided(em_gpu_tensor *dst, const em_gpu_tensor *src, int ordinal);
int em_gpu_fill(em_gpu_tensor *t, double v, int ordinal);
int em_gpu_sync(int ordinal);
// Synchronizes and destroys every stream (the plug-in's shutdown).
void em_gpu_streams_shutdown(void);

// ---- the caching allocator (gpu/allocator.cu) ----
void em_gpu_configure(bool allow_growth, double fraction);
void *em_gpu_alloc(int ordinal, size_t bytes);
void em_gpu_free(int ordinal, void *p);
int em_gpu_memory(int ordinal, em_gpu_memory_stats *out);
// Temporary device memory from the caching allocator; NULL after a report.
inline void *em_gpu_scratch(int ordinal, size_t bytes) { return em_gpu_alloc(ordinal, bytes); }
inline void em_gpu_scratch_free(int ordinal, void *p) { em_gpu_free(ordinal, p); }
// Gives every block back to CUDA and forgets the mode (after the streams are gone).
void em_gpu_allocator_shutdown(void);

// ---- CUDA-graph capture (gpu/graphs.cu) ----
int em_gpu_capture_begin(int ordinal);
em_gpu_graph *em_gpu_capture_end(int ordinal);
int em_gpu_graph_launch(em_gpu_graph *g, int ordinal);
void em_gpu_graph_free(em_gpu_graph *g);

// ---- collectives (gpu/collectives.cu) and optimizer updates (gpu/optim.cu) ----
int em_gpu_all_reduce(int n, em_gpu_tensor *const *ts, const int *ordinals, double scale);
void em_gpu_collectives_shutdown(void);
int em_gpu_update(const em_update_coeffs *u, em_gpu_tensor *var, const em_gpu_tensor *grad,
                  em_gpu_tensor *const *slots, int ordinal);

// ---- the cuBLAS handle pool (gpu/blas.cu) ----
// The device's one cuBLAS handle, shared by every op (matmul, the
// convolutions): made on first use, bound to the device's stream, with one
// fixed 32 MiB workspace and full float32 math (no TF32), so the same call
// picks the same algorithm and gives the same bits every run. NULL after a
// report naming `op`.
struct cublasContext;
cublasContext *em_gpu_blas(const char *op, int ordinal);
// Destroys the handles and frees their workspaces (while the streams exist).
void em_gpu_blas_shutdown(void);

// ---- the op kernels: one per .def line whose kernel column is GPU or VIEW_OR_GPU ----
// em_gpu_op_<name> is defined in gpu/<family>.cu; gpu/plugin.cu puts each at
// its op id in the table the library dispatches through.
#define EM_GPU_ENTRY_GPU(name) int em_gpu_op_##name(const em_gpu_call *c, em_gpu_tensor *out);
#define EM_GPU_ENTRY_VIEW_OR_GPU(name) EM_GPU_ENTRY_GPU(name)
#define EM_GPU_ENTRY_HOST(name)
#define EM_GPU_ENTRY_VIEW(name)
#define EM_FAMILY(family)
#define EM_OP(ID, name, arity, dtypes, grad, kernel, ...) EM_GPU_ENTRY_##kernel(name)
#include "ops/ops.def"
#undef EM_OP
#undef EM_FAMILY

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
    case EM_I8: { typedef int8_t T; __VA_ARGS__; } break;    \
    case EM_I16: { typedef int16_t T; __VA_ARGS__; } break;  \
    case EM_U16: { typedef uint16_t T; __VA_ARGS__; } break; \
    case EM_BOOL: { typedef uint8_t T; __VA_ARGS__; } break; \
    default: break;                                          \
    }

// Runs launch(T(), stream) with T the output's float type (float32 or float64).
template <class F> int em_gpu_float_typed(const em_gpu_call *c, em_gpu_tensor *out, F launch) {
    if (out->numel == 0) return 0;
    cudaStream_t stream = em_gpu_stream(c->device);
    if (!stream) return -1;
    switch (out->dtype) {
    case EM_F32: return launch(float(), stream);
    case EM_F64: return launch(double(), stream);
    default:
        em_gpu_report("%s: no GPU kernel for dtype %s", c->name, em_gpu_dtype_name(out->dtype));
        return -1;
    }
}
// The GPU entry of a float op `name` (em_gpu_op_<name>): the expression that
// launches it, with T its float type and `stream` the device's stream.
#define EM_GPU_FLOAT_OP(name, ...)                                                        \
    int em_gpu_op_##name(const em_gpu_call *c, em_gpu_tensor *out) {                      \
        return em_gpu_float_typed(c, out, [&](auto zero, cudaStream_t stream) {           \
            typedef decltype(zero) T;                                                     \
            return __VA_ARGS__;                                                           \
        });                                                                               \
    }

#endif
