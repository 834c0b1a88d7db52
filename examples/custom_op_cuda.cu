// The CUDA kernels of examples/custom_op.c's bias_gelu and bias_gelu_grad,
// built into libcustom_op_cuda.so when the GPU backend is built; the example
// loads it from beside itself and registers these as the ops' GPU kernels.
// The formulas are examples/bias_gelu.h's, the same the C kernels call.
#include <ember.h>

#include <cuda_runtime.h>
#include <stdio.h>

#include "bias_gelu.h"

namespace {

template <class T> __device__ T value(T z);
template <> __device__ float value(float z) { return bias_gelu_value_f(z); }
template <> __device__ double value(double z) { return bias_gelu_value(z); }
template <class T> __device__ T slope(T z);
template <> __device__ float slope(float z) { return bias_gelu_slope_f(z); }
template <> __device__ double slope(double z) { return bias_gelu_slope(z); }

// y[i] = gelu(x[i] + b[i % cols]), or gy[i] gelu'(x[i] + b[i % cols]) when gy is given.
template <class T> __global__ void bias_gelu_kernel(const T *x, const T *b, const T *gy, T *y, long long n, long long cols) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        T z = x[i] + b[i % cols];
        y[i] = gy ? gy[i] * slope(z) : value(z);
    }
}

int launch(const em_custom_call *c, const void *const *in, void *const *out, void *stream) {
    long long n = 1, cols = c->shapes[1].dims[0];
    for (int d = 0; d < c->shapes[0].ndim; d++) n *= c->shapes[0].dims[d];
    if (n == 0) return 0;
    int blocks = (int)((n + 255) / 256 < 4096 ? (n + 255) / 256 : 4096);
    cudaStream_t s = (cudaStream_t)stream;
    if (c->dtypes[0] == EM_F32)
        bias_gelu_kernel<float><<<blocks, 256, 0, s>>>((const float *)in[0], (const float *)in[1],
                                                       c->n == 3 ? (const float *)in[2] : nullptr, (float *)out[0], n, cols);
    else
        bias_gelu_kernel<double><<<blocks, 256, 0, s>>>((const double *)in[0], (const double *)in[1],
                                                        c->n == 3 ? (const double *)in[2] : nullptr, (double *)out[0], n, cols);
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) return 0;
    snprintf(c->error, c->error_size, "the CUDA launch failed: %s", cudaGetErrorString(e));
    return -1;
}

} // namespace

extern "C" __attribute__((visibility("default"))) int bias_gelu_gpu(const em_custom_call *c, const void *const *in,
                                                                    void *const *out, void *stream) {
    return launch(c, in, out, stream);
}
extern "C" __attribute__((visibility("default"))) int bias_gelu_grad_gpu(const em_custom_call *c, const void *const *in,
                                                                         void *const *out, void *stream) {
    return launch(c, in, out, stream);
}
