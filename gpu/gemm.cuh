// Strided-batched cuBLAS products for float and double, with alpha and beta:
// the one typed entry gpu/matmul.cu and gpu/attention.cu call. Column-major,
// as cuBLAS: a row-major product C = op(A) op(B) is C^T = op(B)^T op(A)^T,
// the operands swapped (see gpu/matmul.cu's header).
#ifndef EMBER_GPU_GEMM_CUH
#define EMBER_GPU_GEMM_CUH

#include <cublas_v2.h>
#include <stdint.h>

inline cublasStatus_t em_gpu_gemm_strided(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int64_t m,
                                          int64_t n, int64_t k, float alpha, const float *a, int64_t lda, int64_t sa,
                                          const float *b, int64_t ldb, int64_t sb, float beta, float *c, int64_t ldc,
                                          int64_t sc, int64_t count) {
    return cublasSgemmStridedBatched_64(h, ta, tb, m, n, k, &alpha, a, lda, sa, b, ldb, sb, &beta, c, ldc, sc, count);
}
inline cublasStatus_t em_gpu_gemm_strided(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int64_t m,
                                          int64_t n, int64_t k, double alpha, const double *a, int64_t lda,
                                          int64_t sa, const double *b, int64_t ldb, int64_t sb, double beta, double *c,
                                          int64_t ldc, int64_t sc, int64_t count) {
    return cublasDgemmStridedBatched_64(h, ta, tb, m, n, k, &alpha, a, lda, sa, b, ldb, sb, &beta, c, ldc, sc, count);
}

#endif
