// The one cuBLAS handle pool of the plug-in: per device one handle, made on
// first use, bound to the device's stream, with one fixed workspace (32 MiB,
// cuBLAS's recommendation on Hopper) and full float32 math (no TF32; sums of
// bfloat16 and float16 products reduced in float32, never in the output's
// type, which cuBLAS would otherwise allow for split-k). Every
// op that calls cuBLAS (matmul, the convolutions) uses it, so a device holds
// one workspace, the same call picks the same algorithm and gives the same
// bits every run, and nothing is allocated while a CUDA graph is captured
// (once the handle exists).
#include "common.cuh"

#include <cublas_v2.h>

#include <mutex>

#define BLAS_WORKSPACE ((size_t)32 << 20)

namespace {

struct blas_state {
    std::mutex mu;
    cublasHandle_t handle = nullptr;
    void *workspace = nullptr;
};

blas_state pool[EM_GPU_MAX];

} // namespace

cublasHandle_t em_gpu_blas(const char *op, int ordinal) {
    if (ordinal < 0 || ordinal >= EM_GPU_MAX) {
        em_gpu_report("%s: /gpu:%d is beyond the %d GPUs cuBLAS handles are kept for", op, ordinal, EM_GPU_MAX);
        return nullptr;
    }
    cudaStream_t s = em_gpu_stream(ordinal); // also selects the device
    if (!s) return nullptr;
    blas_state &b = pool[ordinal];
    std::lock_guard<std::mutex> lock(b.mu);
    if (b.handle) return b.handle;
    cublasHandle_t h = nullptr;
    void *ws = nullptr;
    cublasStatus_t st = cublasCreate(&h);
    if (st != CUBLAS_STATUS_SUCCESS) {
        cudaGetLastError();
        em_gpu_report("%s: cannot create a cuBLAS handle on /gpu:%d: %s", op, ordinal, cublasGetStatusString(st));
        return nullptr;
    }
    cudaError_t e = cudaMalloc(&ws, BLAS_WORKSPACE);
    if (e != cudaSuccess) {
        cublasDestroy(h);
        em_gpu_fail(op, "allocating cuBLAS's workspace", e);
        return nullptr;
    }
    st = cublasSetStream(h, s);
    if (st == CUBLAS_STATUS_SUCCESS) st = cublasSetWorkspace(h, ws, BLAS_WORKSPACE);
    if (st == CUBLAS_STATUS_SUCCESS) // full float32: no TF32, no narrow reductions
        st = cublasSetMathMode(h, (cublasMath_t)(CUBLAS_DEFAULT_MATH | CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION));
    if (st != CUBLAS_STATUS_SUCCESS) {
        cublasDestroy(h);
        cudaFree(ws);
        cudaGetLastError();
        em_gpu_report("%s: cannot set up cuBLAS on /gpu:%d: %s", op, ordinal, cublasGetStatusString(st));
        return nullptr;
    }
    b.handle = h;
    b.workspace = ws;
    return h;
}

void em_gpu_blas_shutdown(void) {
    for (int d = 0; d < EM_GPU_MAX; d++) {
        blas_state &b = pool[d];
        std::lock_guard<std::mutex> lock(b.mu);
        if (!b.handle) continue;
        cudaSetDevice(d);
        cublasDestroy(b.handle);
        cudaFree(b.workspace);
        b.handle = nullptr;
        b.workspace = nullptr;
    }
    cudaGetLastError();
}
