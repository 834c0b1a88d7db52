// Strided-batched cuBLAS products for float, double, bfloat16 and float16,
// with alpha and beta: the one typed entry gpu/matmul.cu and gpu/attention.cu
// call. Column-major, as cuBLAS: a row-major product C = op(A) op(B) is
// C^T = op(B)^T op(A)^T, the operands swapped (see gpu/matmul.cu's header).
// bfloat16 and float16 sum in float32 (CUBLAS_COMPUTE_32F, float alpha and
// beta; gpu/blas.cu forbids reductions in the output type), the output
// rounded once.
#ifndef EMBER_GPU_GEMM_CUH
#define EMBER_GPU_GEMM_CUH

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

// The type of alpha and beta for products of T: float for the narrow types.
template <class T> struct em_gpu_gemm_scalar { using type = T; };
template <> struct em_gpu_gemm_scalar<__nv_bfloat16> { using type = float; };
template <> struct em_gpu_gemm_scalar<__half> { using type = float; };
// cuBLAS's name for the narrow types.
template <class T> struct em_gpu_narrow_type;
template <> struct em_gpu_narrow_type<__nv_bfloat16> { static constexpr cudaDataType value = CUDA_R_16BF; };
template <> struct em_gpu_narrow_type<__half> { static constexpr cudaDataType value = CUDA_R_16F; };

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
template <class T, cudaDataType type = em_gpu_narrow_type<T>::value>
inline cublasStatus_t em_gpu_gemm_strided(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int64_t m,
                                          int64_t n, int64_t k, float alpha, const T *a, int64_t lda, int64_t sa,
                                          const T *b, int64_t ldb, int64_t sb, float beta, T *c, int64_t ldc,
                                          int64_t sc, int64_t count) {
    return cublasGemmStridedBatchedEx_64(h, ta, tb, m, n, k, &alpha, a, type, lda, sa, b, type, ldb, sb, &beta, c,
                                         type, ldc, sc, count, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
}

#endif
