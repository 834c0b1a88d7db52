// Matrix multiply on the GPU: [..., m, k] x [..., k, n] -> [..., m, n] with
// broadcast batch dims and the transpose attributes (i[0] transpose_a,
// i[1] transpose_b), exactly as lib/ops/matmul.c.
//
// Float dtypes run cuBLAS; bfloat16 and float16 with float32 sums
// (CUBLAS_COMPUTE_32F, gpu/gemm.cuh), rounded once. cuBLAS is column-major, so
// the row-major product C = op(A) op(B) is computed as C^T = op(B)^T op(A)^T:
// the operands swap places, and each is passed as it lies in memory
// (transposed or not) with its leading dimension, so transposed views cost
// nothing. An operand whose matrix strides cuBLAS cannot describe (a broadcast
// or otherwise strided view) is first gathered into a contiguous copy. Batch
// dims that collapse into one stride per operand run one strided-batched call;
// others an array of pointers built on the device. The handle is the device's
// one from the plug-in's pool (gpu/blas.cu): bound to the device's stream,
// with a fixed workspace, so the same call picks the same algorithm and gives
// the same bits every run.
//
// Integer dtypes run a plain kernel, one thread per output element, wrapping
// modulo 2^64 as the CPU's loop does.
#include "broadcast.h"
#include "common.cuh"

#include "gemm.cuh"


namespace {

struct mm_geom {
    int64_t m, n, k;
    int64_t rsa, csa, rsb, csb; // strides of op(a) and op(b)
    em_bcast batch;             // output batch dims; input 0: a's batch strides, 1: b's
};

// How cuBLAS reads X^T, for an r x c matrix X with strides (rs, cs): as it
// lies (OP_N, X is X^T in column-major with ld = rs) when its columns are
// adjacent, transposed (OP_T, ld = cs) when its rows are. Strides of a size-1
// dimension do not matter. False when neither holds.
bool blas_layout(int64_t r, int64_t c, int64_t rs, int64_t cs, cublasOperation_t *op, int64_t *ld) {
    if (c == 1) {
        *op = CUBLAS_OP_N;
        *ld = r == 1 ? 1 : rs;
        return *ld >= 1;
    }
    if (r == 1) {
        *op = cs == 1 ? CUBLAS_OP_N : CUBLAS_OP_T;
        *ld = cs == 1 ? c : cs;
        return *ld >= 1;
    }
    if (cs == 1 && rs >= c) {
        *op = CUBLAS_OP_N;
        *ld = rs;
        return true;
    }
    if (rs == 1 && cs >= r) {
        *op = CUBLAS_OP_T;
        *ld = cs;
        return true;
    }
    return false;
}

// Strides of op(x)'s matrix, from x's last two dims and the transpose flag.
void matrix_strides(const em_gpu_tensor &x, bool t, int64_t *rs, int64_t *cs) {
    const int64_t *s = x.strides + x.ndim - 2;
    *rs = s[t ? 1 : 0];
    *cs = s[t ? 0 : 1];
}

cublasStatus_t gemm_batched(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int64_t m, int64_t n,
                            int64_t k, const float *const *a, int64_t lda, const float *const *b, int64_t ldb,
                            float *const *c, int64_t ldc, int64_t count) {
    const float one = 1, zero = 0;
    return cublasSgemmBatched_64(h, ta, tb, m, n, k, &one, a, lda, b, ldb, &zero, c, ldc, count);
}
cublasStatus_t gemm_batched(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int64_t m, int64_t n,
                            int64_t k, const double *const *a, int64_t lda, const double *const *b, int64_t ldb,
                            double *const *c, int64_t ldc, int64_t count) {
    const double one = 1, zero = 0;
    return cublasDgemmBatched_64(h, ta, tb, m, n, k, &one, a, lda, b, ldb, &zero, c, ldc, count);
}
template <class T, cudaDataType type = em_gpu_narrow_type<T>::value>
cublasStatus_t gemm_batched(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int64_t m, int64_t n,
                            int64_t k, const T *const *a, int64_t lda, const T *const *b, int64_t ldb, T *const *c,
                            int64_t ldc, int64_t count) {
    const float one = 1, zero = 0;
    return cublasGemmBatchedEx_64(h, ta, tb, m, n, k, &one, (const void *const *)a, type, lda,
                                  (const void *const *)b, type, ldb, &zero, (void *const *)c, type, ldc, count,
                                  CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
}

// The matrices of batch t, for batch dims that do not collapse to one stride.
template <class T>
__global__ void batch_pointers(const __grid_constant__ mm_geom g, const T *a, const T *b, T *c, const T **pa,
                               const T **pb, T **pc, int64_t batches) {
    EM_GPU_LOOP(t, batches) {
        pa[t] = a + em_bcast_offset(&g.batch, 0, t);
        pb[t] = b + em_bcast_offset(&g.batch, 1, t);
        pc[t] = c + t * g.m * g.n;
    }
}

// Integer products: sums in uint64 (wrapping), then truncated to T, as the CPU.
template <class T>
__global__ void int_matmul(const __grid_constant__ mm_geom g, const T *a, const T *b, T *c, int64_t total) {
    EM_GPU_LOOP(i, total) {
        int64_t mn = g.m * g.n, t = i / mn, r = i % mn / g.n, j = i % g.n;
        const T *x = a + em_bcast_offset(&g.batch, 0, t) + r * g.rsa;
        const T *y = b + em_bcast_offset(&g.batch, 1, t) + j * g.csb;
        uint64_t s = 0;
        for (int64_t p = 0; p < g.k; p++)
            s += (uint64_t)x[p * g.csa] * (uint64_t)y[p * g.rsb];
        c[i] = (T)s;
    }
}

// The geometry for operands a and b (their current strides) into out.
mm_geom plan(const em_gpu_tensor &a, const em_gpu_tensor &b, bool ta, bool tb, const em_gpu_tensor *out) {
    mm_geom g;
    int nb = out->ndim - 2;
    g.m = out->shape[nb];
    g.n = out->shape[nb + 1];
    g.k = a.shape[a.ndim - (ta ? 2 : 1)];
    matrix_strides(a, ta, &g.rsa, &g.csa);
    matrix_strides(b, tb, &g.rsb, &g.csb);
    em_bcast_init(&g.batch, nb, out->shape, 2);
    em_bcast_input(&g.batch, 0, a.ndim - 2, a.shape, a.strides);
    em_bcast_input(&g.batch, 1, b.ndim - 2, b.shape, b.strides);
    em_bcast_coalesce(&g.batch);
    return g;
}

// x gathered into a contiguous scratch tensor *dst (*mem to free). 0 or -1.
int contiguous(const em_gpu_tensor &x, em_gpu_tensor *dst, void **mem, int dev) {
    *dst = x;
    int64_t stride = 1;
    for (int d = x.ndim - 1; d >= 0; d--) {
        dst->strides[d] = stride;
        stride *= x.shape[d];
    }
    *mem = dst->data = em_gpu_scratch(dev, (size_t)x.numel * em_gpu_dtype_size(x.dtype));
    if (!dst->data) return -1;
    return em_gpu_copy_strided(dst, &x, dev);
}

template <class T> int float_matmul(const em_gpu_call *c, em_gpu_tensor *out, cudaStream_t s) {
    bool ta = c->a->i[0], tb = c->a->i[1];
    em_gpu_tensor a = c->in[0], b = c->in[1];
    void *mem[2] = {nullptr, nullptr};
    int rc = 0;
    mm_geom g = plan(a, b, ta, tb, out);
    cublasOperation_t opa = CUBLAS_OP_N, opb = CUBLAS_OP_N;
    int64_t lda = 1, ldb = 1;
    bool a_ok = blas_layout(g.m, g.k, g.rsa, g.csa, &opa, &lda), b_ok = blas_layout(g.k, g.n, g.rsb, g.csb, &opb, &ldb);
    if (!a_ok) rc = contiguous(c->in[0], &a, &mem[0], c->device);
    if (!rc && !b_ok) rc = contiguous(c->in[1], &b, &mem[1], c->device);
    if (!rc && !(a_ok && b_ok)) { // contiguous now: both layouts hold
        g = plan(a, b, ta, tb, out);
        blas_layout(g.m, g.k, g.rsa, g.csa, &opa, &lda);
        blas_layout(g.k, g.n, g.rsb, g.csb, &opb, &ldb);
    }
    cublasHandle_t h = rc ? nullptr : em_gpu_blas(c->name, c->device);
    if (h) {
        const T *pa = (const T *)a.data, *pb = (const T *)b.data;
        T *pc = (T *)out->data;
        int64_t batches = out->numel / (g.m * g.n);
        cublasStatus_t st = CUBLAS_STATUS_SUCCESS;
        void *ptrs = nullptr;
        if (g.batch.ndim == 1) {
            using S = typename em_gpu_gemm_scalar<T>::type;
            st = em_gpu_gemm_strided(h, opb, opa, g.n, g.m, g.k, (S)1, pb, ldb, g.batch.strides[1][0], pa, lda,
                                     g.batch.strides[0][0], (S)0, pc, g.n, g.m * g.n, batches);
        } else if ((ptrs = em_gpu_scratch(c->device, 3 * (size_t)batches * sizeof(T *)))) {
            const T **arr_a = (const T **)ptrs, **arr_b = arr_a + batches;
            T **arr_c = (T **)(arr_b + batches);
            batch_pointers<T>
                <<<em_gpu_blocks(batches), EM_GPU_THREADS, 0, s>>>(g, pa, pb, pc, arr_a, arr_b, arr_c, batches);
            rc = em_gpu_launched(c->device, c->name);
            if (!rc) st = gemm_batched(h, opb, opa, g.n, g.m, g.k, arr_b, ldb, arr_a, lda, arr_c, g.n, batches);
            em_gpu_scratch_free(c->device, ptrs);
        } else {
            rc = -1;
        }
        if (!rc && st != CUBLAS_STATUS_SUCCESS) {
            cudaGetLastError();
            em_gpu_report("%s: cuBLAS failed on /gpu:%d: %s", c->name, c->device, cublasGetStatusString(st));
            rc = -1;
        }
        if (!rc) rc = em_gpu_launched(c->device, c->name);
    } else {
        rc = -1;
    }
    // Queued frees: later work on the stream runs after this product.
    for (void *p : mem)
        em_gpu_scratch_free(c->device, p);
    return rc;
}

template <class T> int integer_matmul(const em_gpu_call *c, em_gpu_tensor *out, cudaStream_t s) {
    mm_geom g = plan(c->in[0], c->in[1], c->a->i[0], c->a->i[1], out);
    int_matmul<T><<<em_gpu_blocks(out->numel), EM_GPU_THREADS, 0, s>>>(
        g, (const T *)c->in[0].data, (const T *)c->in[1].data, (T *)out->data, out->numel);
    return em_gpu_launched(c->device, c->name);
}

} // namespace

// The entry of lib/ops/matmul.def.
int em_gpu_op_matmul(const em_gpu_call *c, em_gpu_tensor *out) {
    if (out->numel == 0) return 0;
    cudaStream_t s = em_gpu_stream(c->device);
    if (!s) return -1;
    const em_gpu_tensor &a = c->in[0];
    if (a.shape[a.ndim - (c->a->i[0] ? 2 : 1)] == 0) { // k = 0: a sum of nothing
        cudaError_t e = cudaMemsetAsync(out->data, 0, (size_t)out->numel * em_gpu_dtype_size(out->dtype), s);
        if (e != cudaSuccess) return em_gpu_fail(c->name, "clearing the output", e);
        return em_gpu_launched(c->device, c->name);
    }
    switch (out->dtype) {
    case EM_F32: return float_matmul<float>(c, out, s);
    case EM_F64: return float_matmul<double>(c, out, s);
    case EM_BF16: return float_matmul<__nv_bfloat16>(c, out, s);
    case EM_F16: return float_matmul<__half>(c, out, s);
    case EM_I32: return integer_matmul<int32_t>(c, out, s);
    case EM_I64: return integer_matmul<int64_t>(c, out, s);
    case EM_U8: return integer_matmul<uint8_t>(c, out, s);
    case EM_I8: return integer_matmul<int8_t>(c, out, s);
    case EM_I16: return integer_matmul<int16_t>(c, out, s);
    case EM_U16: return integer_matmul<uint16_t>(c, out, s);
    default: em_gpu_report("%s: no GPU kernel for dtype %s", c->name, em_gpu_dtype_name(out->dtype)); return -1;
    }
}
