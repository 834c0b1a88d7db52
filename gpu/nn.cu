// GPU kernels of the softmax, conv and pool families (lib/ops/{softmax,conv,pool}.c; float32 and float64, and for
// softmax, log_softmax and softmax_grad bfloat16 and float16 computed in float32): softmax, log_softmax
// and their gradient, the three cross entropies, conv2d and its two
// backprops, conv2d_bias_relu (conv2d, then its epilogue in one pass), max
// and average pooling and their gradients, and max_pool_relu_grad (the max
// pool's gradient through relu_grad). Same arithmetic
// and accumulator types as the CPU kernels; geometry from
// lib/conv_geometry.h.
//
// Row ops (softmax, cross entropies) give a row to one thread, or, for long
// rows, to a block whose partial maxima and sums are joined by a fixed tree.
// Their formulas are lib/ops/nn_math.h's, the CPU kernels' own: this file
// only walks rows and adds up.
// Convolutions are im2col + cuBLAS gemm over chunks of whole images; the
// filter gradient accumulates the chunks' products in chunk order and
// conv2d_backprop_input gathers (no atomics) each input pixel's taps from the
// lowered gradient. Pool gradients gather too: every input element sums, in
// window order, what the windows covering it send it, as the CPU adds them.
//
// cuBLAS: the device's handle from the plug-in's one pool (gpu/blas.cu),
// shared with matmul.
#include <cublas_v2.h>
#include <limits.h>


#include "common.cuh"
#include "conv_geometry.h"
#include "ops/narrow.h"
#include "ops/elementwise_math.h"
#include "ops/nn_math.h"

namespace {

constexpr int NN_THREADS = EM_GPU_THREADS; // a power of two: the block tree halves it
static_assert((NN_THREADS & (NN_THREADS - 1)) == 0, "the block tree needs a power of two");
constexpr int64_t BLOCK_MIN_LEN = 64;  // rows from this long get a block each ...
constexpr int64_t BLOCK_MAX_ROWS = 8192; // ... unless many strided rows read neighbouring elements
constexpr int64_t COL_ELEMS = (int64_t)1 << 25; // im2col chunk: at most this many lowered elements (or one image)

// ---- rows: a thread or a block each ----

struct Solo {
    __device__ int64_t lane() const { return 0; }
    __device__ int64_t size() const { return 1; }
    template <class F> __device__ double combine(double v, F) const { return v; }
};

// The threads of a block; combine joins their values by a fixed tree in shared memory.
struct Team {
    double *buf; // NN_THREADS entries
    __device__ int64_t lane() const { return threadIdx.x; }
    __device__ int64_t size() const { return NN_THREADS; }
    template <class F> __device__ double combine(double v, F f) const {
        const int t = threadIdx.x;
        buf[t] = v;
        __syncthreads();
        for (int w = NN_THREADS / 2; w > 0; w >>= 1) {
            if (t < w) buf[t] = f(buf[t], buf[t + w]);
            __syncthreads();
        }
        double r = buf[0];
        __syncthreads(); // everyone has read buf[0] before it is reused
        return r;
    }
};

struct MaxOf {
    __device__ double operator()(double a, double b) const { return EM_NN(max, double)(a, b); }
};
struct SumOf {
    __device__ double operator()(double a, double b) const { return a + b; }
};

// Calls f(row, team) for every row: by a block per row (all its threads call
// f for the same row) or a thread per row.
template <bool BLOCK, class F> __device__ void for_rows(int64_t rows, double *buf, F f) {
    if constexpr (BLOCK) {
        for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) f(r, Team{buf});
    } else {
        EM_GPU_LOOP(r, rows) f(r, Solo{});
    }
}

bool use_block(int64_t len, int64_t inner, int64_t rows) {
    return len >= BLOCK_MIN_LEN && (inner == 1 || rows <= BLOCK_MAX_ROWS);
}

unsigned row_blocks(int64_t rows) { return rows < 65535 * 32 ? (unsigned)rows : 65535u * 32u; }

// The rows along an axis (negative: from the end) of x: `len` elements
// `inner` apart.
struct AxisRows {
    int64_t len, inner, rows;
};
AxisRows axis_rows(const em_gpu_tensor *x, int64_t axis_attr) {
    int axis = (int)(axis_attr < 0 ? axis_attr + x->ndim : axis_attr);
    AxisRows r = {x->shape[axis], 1, 0};
    for (int d = axis + 1; d < x->ndim; d++) r.inner *= x->shape[d];
    r.rows = x->numel / r.len; // numel > 0, so len > 0
    return r;
}

// Launches KERNEL<true> (a block per row) or KERNEL<false> (a thread per row).
#define LAUNCH_ROWS(KERNEL, block, rows, stream, ...)                                     \
    do {                                                                                 \
        if (block) KERNEL<true><<<row_blocks(rows), NN_THREADS, 0, stream>>>(__VA_ARGS__); \
        else KERNEL<false><<<em_gpu_blocks(rows), NN_THREADS, 0, stream>>>(__VA_ARGS__);   \
    } while (0)

// A row op's stored element S as it computes it (T, get) and stores a result
// (put): float32 and float64 as they are; bfloat16 and float16 (softmax and
// its gradient) in float32, each result rounded once.
template <class S> struct row_io {
    typedef S T;
    static constexpr bool exact = true;
    __device__ static T get(S v) { return v; }
    __device__ static S put(T v) { return v; }
};
template <int D> struct row_io<narrow_elem<D>> {
    typedef float T;
    static constexpr bool exact = false;
    __device__ static float get(narrow_elem<D> v) { return narrow_io<D>::widen(v.bits); }
    __device__ static narrow_elem<D> put(float v) { return {narrow_io<D>::round(v)}; }
};

// The maximum of a row (NaNs skipped), -inf when all are NaN.
template <class S, class G, class T = typename row_io<S>::T>
__device__ T row_max(const S *x, int64_t len, int64_t step, G g) {
    T m = -INFINITY;
    for (int64_t j = g.lane(); j < len; j += g.size()) m = EM_NN(max, T)(m, row_io<S>::get(x[j * step]));
    return (T)g.combine((double)m, MaxOf{});
}

// log(sum(exp(x))) of a row: max + log(sum(exp(x - max))), the sum in double.
template <class T, class G> __device__ double row_lse(const T *x, int64_t len, G g) {
    T m = row_max(x, len, 1, g);
    double sum = 0;
    for (int64_t j = g.lane(); j < len; j += g.size()) sum += EM_NN(softmax_exp, T)(x[j], m);
    return EM_NN(xent_lse, T)(m, g.combine(sum, SumOf{}));
}

// Row r of softmax over an axis of `len` elements `inner` apart. A narrow
// output is not a place for exp(x - max) before the division: those rows
// compute it again in the last pass, rounding once.
template <bool BLOCK, class S>
__global__ void __launch_bounds__(NN_THREADS)
    softmax_rows(const S *x, S *y, int64_t rows, int64_t len, int64_t inner, bool log_out) {
    typedef row_io<S> io;
    typedef typename io::T T;
    __shared__ double buf[NN_THREADS];
    for_rows<BLOCK>(rows, buf, [&](int64_t r, auto g) {
        int64_t base = r / inner * len * inner + r % inner;
        const S *xr = x + base;
        S *yr = y + base;
        T m = row_max(xr, len, inner, g);
        double sum = 0;
        for (int64_t j = g.lane(); j < len; j += g.size()) {
            T e = EM_NN(softmax_exp, T)(io::get(xr[j * inner]), m);
            if (!log_out && io::exact) yr[j * inner] = io::put(e);
            sum += e;
        }
        sum = g.combine(sum, SumOf{});
        if (log_out) {
            T log_sum = EM_NN(log_softmax_log_sum, T)(sum);
            for (int64_t j = g.lane(); j < len; j += g.size())
                yr[j * inner] = io::put(EM_NN(log_softmax, T)(io::get(xr[j * inner]), m, log_sum));
        } else {
            T inv = EM_NN(softmax_inv, T)(sum);
            for (int64_t j = g.lane(); j < len; j += g.size()) {
                T e = io::exact ? io::get(yr[j * inner]) : EM_NN(softmax_exp, T)(io::get(xr[j * inner]), m);
                yr[j * inner] = io::put(e * inv);
            }
        }
    });
}

// Row r of softmax's gradient from its output y and the incoming g:
// dx = y (g - sum(g y)), or for log_softmax dx = g - exp(y) sum(g).
template <bool BLOCK, class S>
__global__ void __launch_bounds__(NN_THREADS)
    softmax_grad_rows(const S *y, const S *g, S *dx, int64_t rows, int64_t len, int64_t inner, bool log_out) {
    typedef row_io<S> io;
    typedef typename io::T T;
    __shared__ double buf[NN_THREADS];
    for_rows<BLOCK>(rows, buf, [&](int64_t r, auto team) {
        int64_t base = r / inner * len * inner + r % inner;
        const S *yr = y + base, *gr = g + base;
        S *dr = dx + base;
        double sum = 0;
        for (int64_t j = team.lane(); j < len; j += team.size()) {
            T gj = io::get(gr[j * inner]);
            sum += log_out ? gj : EM_NN(softmax_grad_dot, T)(gj, io::get(yr[j * inner]));
        }
        T total = (T)team.combine(sum, SumOf{});
        for (int64_t j = team.lane(); j < len; j += team.size()) {
            T yj = io::get(yr[j * inner]), gj = io::get(gr[j * inner]);
            dr[j * inner] = io::put(log_out ? EM_NN(log_softmax_grad, T)(yj, gj, total)
                                            : EM_NN(softmax_grad, T)(yj, gj, total));
        }
    });
}

// loss = sum_j z_j * (lse(x) - x_j) over the last axis.
template <bool BLOCK, class T>
__global__ void __launch_bounds__(NN_THREADS) softmax_xent_rows(const T *z, const T *x, T *y, int64_t rows, int64_t len) {
    __shared__ double buf[NN_THREADS];
    for_rows<BLOCK>(rows, buf, [&](int64_t r, auto g) {
        const T *xr = x + r * len, *zr = z + r * len;
        double lse = row_lse(xr, len, g), loss = 0;
        for (int64_t j = g.lane(); j < len; j += g.size()) loss += EM_NN(softmax_xent, T)(zr[j], xr[j], lse);
        loss = g.combine(loss, SumOf{});
        if (g.lane() == 0) y[r] = (T)loss;
    });
}

// loss = lse(x) - x[label], 0 for an ignored label (the same for the whole row's group); another label
// outside [0, len) (checked on the host) gives NaN.
template <bool BLOCK, class T, class L>
__global__ void __launch_bounds__(NN_THREADS) sparse_xent_rows(const L *z, const T *x, T *y, int64_t rows, int64_t len,
                                                               bool ignoring, int64_t ignore_index) {
    __shared__ double buf[NN_THREADS];
    for_rows<BLOCK>(rows, buf, [&](int64_t r, auto g) {
        const T *xr = x + r * len;
        int64_t label = z[r];
        if (!em_nn_sparse_xent_counts(label, ignoring, ignore_index)) {
            if (g.lane() == 0) y[r] = (T)0;
            return;
        }
        double lse = row_lse(xr, len, g);
        if (g.lane() == 0) y[r] = label >= 0 && label < len ? EM_NN(sparse_softmax_xent, T)(lse, xr[label]) : (T)NAN;
    });
}

template <class T> __global__ void sigmoid_xent(const T *z, const T *x, T *y, int64_t n) {
    EM_GPU_LOOP(i, n) y[i] = EM_NN(sigmoid_xent, T)(z[i], x[i]);
}

// ---- convolution ----

// conv2d's geometry from the attributes (i[0..1] strides, i[2..3]
// dilations or the pool window, i[4] padding), validated by the shape rule.
em_conv_geom make_geom(const em_attrs *a, const int64_t *xs, int64_t kh, int64_t kw, int64_t o, bool dilated) {
    em_conv_geom g = {};
    g.n = xs[0];
    g.h = xs[1];
    g.w = xs[2];
    g.c = xs[3];
    g.kh = kh;
    g.kw = kw;
    g.o = o;
    g.sh = a->i[0];
    g.sw = a->i[1];
    g.dh = dilated ? a->i[2] : 1;
    g.dw = dilated ? a->i[3] : 1;
    (void)em_conv_geom_finish(&g, a->i[4] == EM_PAD_SAME);
    return g;
}

// Lowered rows [row0, row0 + n / K) of the batch: row r is output pixel r,
// column k = (ky * kw + kx) * c + ch the input it reads through that tap (0 in padding).
template <class T> __global__ void im2col(em_conv_geom g, const T *x, T *col, int64_t row0, int64_t n, int64_t K) {
    EM_GPU_LOOP(i, n) {
        int64_t r = row0 + i / K, k = i % K;
        int64_t ch = k % g.c, tap = k / g.c, kx = tap % g.kw, ky = tap / g.kw;
        int64_t q = r % (g.oh * g.ow), img = r / (g.oh * g.ow), oy = q / g.ow, ox = q % g.ow;
        int64_t iy = em_conv_in_y(&g, oy, ky), ix = em_conv_in_x(&g, ox, kx);
        col[i] = iy >= 0 && iy < g.h && ix >= 0 && ix < g.w ? x[((img * g.h + iy) * g.w + ix) * g.c + ch] : T(0);
    }
}

// The input gradient of n elements (whole images) from their lowered
// gradient dcol: each element sums the taps that read it, in tap order.
template <class T> __global__ void col2im(em_conv_geom g, const T *dcol, T *dx, int64_t n, int64_t K) {
    EM_GPU_LOOP(i, n) {
        int64_t ch = i % g.c, p = i / g.c, ix = p % g.w, iy = p / g.w % g.h, img = p / (g.w * g.h);
        T acc = 0;
        for (int64_t ky = 0; ky < g.kh; ky++) {
            int64_t ny = iy + g.ph - ky * g.dh, oy = ny / g.sh;
            if (ny < 0 || oy >= g.oh || em_conv_in_y(&g, oy, ky) != iy) continue;
            for (int64_t kx = 0; kx < g.kw; kx++) {
                int64_t nx = ix + g.pw - kx * g.dw, ox = nx / g.sw;
                if (nx < 0 || ox >= g.ow || em_conv_in_x(&g, ox, kx) != ix) continue;
                acc += dcol[((img * g.oh + oy) * g.ow + ox) * K + (ky * g.kw + kx) * g.c + ch];
            }
        }
        dx[i] = acc;
    }
}

int blas_fail(const em_gpu_call *c, const char *what, cublasStatus_t st) {
    cudaGetLastError(); // a non-sticky error cuBLAS left must not be blamed on the next launch
    em_gpu_report("%s: %s: %s", c->name, what, cublasGetStatusString(st));
    return -1;
}

// Column-major C[m,n] = op(A) op(B) + beta C, alpha = 1.
cublasStatus_t gemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const float *A,
                    int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    const float one = 1;
    return cublasSgemm(h, ta, tb, m, n, k, &one, A, lda, B, ldb, &beta, C, ldc);
}
cublasStatus_t gemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const double *A,
                    int lda, const double *B, int ldb, double beta, double *C, int ldc) {
    const double one = 1;
    return cublasDgemm(h, ta, tb, m, n, k, &one, A, lda, B, ldb, &beta, C, ldc);
}

int zero_fill(const em_gpu_call *c, em_gpu_tensor *out, size_t es, cudaStream_t stream) {
    cudaError_t err = cudaMemsetAsync(out->data, 0, (size_t)out->numel * es, stream);
    return err == cudaSuccess ? 0 : em_gpu_fail(c->name, "cudaMemsetAsync", err);
}

enum Conv { FWD, BPI, BPF };

// conv2d (input, filter), conv2d_backprop_input (filter, out_backprop) and
// conv2d_backprop_filter (input, out_backprop), all row-major: with col the
// lowered input [P, K] (P output pixels, K = kh * kw * c) and W the filter
// [K, O], y = col W, dcol = dy W^T, dW = col^T dy. cuBLAS is column-major, so
// each product is computed transposed.
template <class T> int conv_gpu(const em_gpu_call *c, em_gpu_tensor *out, Conv kind, cudaStream_t stream) {
    const int64_t *xs = kind == BPI ? out->shape : c->in[0].shape;
    const int64_t *fs = kind == BPF ? out->shape : c->in[kind == FWD ? 1 : 0].shape;
    const em_conv_geom g = make_geom(c->a, xs, fs[0], fs[1], fs[3], true);
    const int64_t K = g.kh * g.kw * g.c, O = g.o, P1 = g.oh * g.ow;
    if (K == 0 || O == 0 || P1 == 0 || g.n == 0) return zero_fill(c, out, sizeof(T), stream); // an empty sum
    if (K > INT_MAX || O > INT_MAX || P1 > INT_MAX) {
        em_gpu_report("%s: %lld x %lld filter columns or %lld pixels per image exceed cuBLAS's int sizes", c->name,
                       (long long)K, (long long)O, (long long)P1);
        return -1;
    }
    cublasHandle_t h = em_gpu_blas(c->name, c->device);
    if (!h) return -1;
    // 1x1, stride 1, no padding: the input is its own lowered matrix.
    const bool direct = g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.ph == 0 && g.pw == 0;
    int64_t per = COL_ELEMS / (P1 * K); // images per chunk
    if (per < 1) per = 1;
    if (per > INT_MAX / P1) per = INT_MAX / P1;
    if (per > g.n) per = g.n;
    T *col = nullptr;
    if (!direct && !(col = static_cast<T *>(em_gpu_scratch(c->device, (size_t)(per * P1 * K) * sizeof(T))))) return -1;
    const T *x = kind == BPI ? nullptr : static_cast<const T *>(c->in[0].data);
    const T *f = kind == BPF ? nullptr : static_cast<const T *>(c->in[kind == FWD ? 1 : 0].data);
    const T *dy = kind == FWD ? nullptr : static_cast<const T *>(c->in[1].data);
    T *y = static_cast<T *>(out->data);
    const int64_t img_in = g.h * g.w * g.c;
    int rc = 0;
    for (int64_t n0 = 0; n0 < g.n && !rc; n0 += per) {
        const int64_t imgs = per < g.n - n0 ? per : g.n - n0, row0 = n0 * P1;
        const int rows = (int)(imgs * P1);
        const T *lowered = kind == BPI ? nullptr : direct ? x + row0 * K : col; // the input, lowered
        if (!direct && kind != BPI) {
            im2col<<<em_gpu_blocks(rows * K), EM_GPU_THREADS, 0, stream>>>(g, x, col, row0, rows * K, K);
            if ((rc = em_gpu_launched(c->device, c->name))) break;
        }
        cublasStatus_t st;
        switch (kind) {
        case FWD: // y^T[O, rows] = W^T[O, K] col^T[K, rows]
            st = gemm(h, CUBLAS_OP_N, CUBLAS_OP_N, (int)O, rows, (int)K, f, (int)O, lowered, (int)K, T(0), y + row0 * O,
                      (int)O);
            break;
        case BPF: // dW^T[O, K] (+)= dy^T[O, rows] col[rows, K], chunks added in order
            st = gemm(h, CUBLAS_OP_N, CUBLAS_OP_T, (int)O, (int)K, rows, dy + row0 * O, (int)O, lowered, (int)K,
                      n0 ? T(1) : T(0), y, (int)O);
            break;
        default: // dcol^T[K, rows] = W[K, O] dy^T[O, rows]
            st = gemm(h, CUBLAS_OP_T, CUBLAS_OP_N, (int)K, rows, (int)O, f, (int)O, dy + row0 * O, (int)O, T(0),
                      direct ? y + row0 * K : col, (int)K);
            break;
        }
        if (st != CUBLAS_STATUS_SUCCESS) rc = blas_fail(c, "gemm", st);
        else rc = em_gpu_launched(c->device, c->name);
        if (!rc && kind == BPI && !direct) {
            col2im<<<em_gpu_blocks(imgs * img_in), EM_GPU_THREADS, 0, stream>>>(g, col, y + n0 * img_in, imgs * img_in, K);
            rc = em_gpu_launched(c->device, c->name);
        }
    }
    if (col) em_gpu_scratch_free(c->device, col); // the stream orders the kernels before any later reuse
    return rc;
}

// ---- pooling ----

// Output element i = ((n * oh + oy) * ow + ox) * c + ch, or input element
// ((n * h + iy) * w + ix) * c + ch: its pixel's coordinates.
struct Pixel {
    int64_t n, y, x, ch;
};
__device__ Pixel pixel(int64_t i, int64_t h, int64_t w, int64_t c) {
    int64_t p = i / c;
    return Pixel{p / (w * h), p / w % h, p % w, i % c};
}

template <class T> __global__ void max_pool_fwd(em_conv_geom g, const T *x, T *y, int64_t n) {
    EM_GPU_LOOP(i, n) {
        Pixel o = pixel(i, g.oh, g.ow, g.c);
        int64_t y0, y1, x0, x1;
        em_pool_window(&g, o.y, o.x, &y0, &y1, &x0, &x1);
        const T *xi = x + o.n * g.h * g.w * g.c + o.ch;
        T m = -INFINITY;
        for (int64_t iy = y0; iy < y1; iy++)
            for (int64_t ix = x0; ix < x1; ix++) {
                T v = xi[(iy * g.w + ix) * g.c];
                m = v > m ? v : m;
            }
        y[i] = m;
    }
}

template <class T> __global__ void avg_pool_fwd(em_conv_geom g, const T *x, T *y, int64_t n) {
    EM_GPU_LOOP(i, n) {
        Pixel o = pixel(i, g.oh, g.ow, g.c);
        int64_t y0, y1, x0, x1;
        em_pool_window(&g, o.y, o.x, &y0, &y1, &x0, &x1);
        const T *xi = x + o.n * g.h * g.w * g.c + o.ch;
        T s = 0;
        for (int64_t iy = y0; iy < y1; iy++)
            for (int64_t ix = x0; ix < x1; ix++) s += xi[(iy * g.w + ix) * g.c];
        y[i] = s * ((T)1 / (T)((y1 - y0) * (x1 - x0)));
    }
}

// The windows (oy in [*oy0, *oy1], ox in [*ox0, *ox1]) that may cover input pixel (iy, ix).
__device__ void covering(const em_conv_geom &g, int64_t iy, int64_t ix, int64_t *oy0, int64_t *oy1, int64_t *ox0,
                         int64_t *ox1) {
    int64_t ly = iy + g.ph - g.kh + 1, lx = ix + g.pw - g.kw + 1;
    *oy0 = ly <= 0 ? 0 : (ly + g.sh - 1) / g.sh;
    *ox0 = lx <= 0 ? 0 : (lx + g.sw - 1) / g.sw;
    *oy1 = (iy + g.ph) / g.sh < g.oh - 1 ? (iy + g.ph) / g.sh : g.oh - 1;
    *ox1 = (ix + g.pw) / g.sw < g.ow - 1 ? (ix + g.pw) / g.sw : g.ow - 1;
}

// The pixel (iy * w + ix) of window (oy, ox) that max_pool_grad gives the
// window's gradient, as the CPU picks it: the first not less than the
// maximum (the first largest; with NaNs, the first NaN before it). xi points
// at the image's channel.
template <class T> __device__ int64_t max_pick(const em_conv_geom &g, const T *xi, int64_t oy, int64_t ox) {
    int64_t y0, y1, x0, x1;
    em_pool_window(&g, oy, ox, &y0, &y1, &x0, &x1);
    T m = xi[(y0 * g.w + x0) * g.c];
    for (int64_t iy = y0; iy < y1; iy++)
        for (int64_t ix = x0; ix < x1; ix++) {
            T v = xi[(iy * g.w + ix) * g.c];
            m = v > m ? v : m;
        }
    for (int64_t iy = y0; iy < y1; iy++)
        for (int64_t ix = x0; ix < x1; ix++)
            if (!(xi[(iy * g.w + ix) * g.c] < m)) return iy * g.w + ix;
    return -1; // not reached: the maximum's own pixel is not less than it
}

__device__ bool in_window(const em_conv_geom &g, int64_t oy, int64_t ox, int64_t iy, int64_t ix) {
    int64_t y0, y1, x0, x1;
    em_pool_window(&g, oy, ox, &y0, &y1, &x0, &x1);
    return iy >= y0 && iy < y1 && ix >= x0 && ix < x1;
}

// max_pool_relu_grad: relu_grad's formula on the routed gradient g of an input x.
__device__ float relu_grad_of(float x, float g) { return em_ew_relu_grad_f32(x, g, nullptr); }
__device__ double relu_grad_of(double x, double g) { return em_ew_relu_grad_f64(x, g, nullptr); }

// relu: max_pool_relu_grad, each gradient through relu_grad of its input.
template <class T>
__global__ void max_pool_grad(em_conv_geom g, const T *x, const T *dy, bool relu, T *dx, int64_t n) {
    EM_GPU_LOOP(i, n) {
        Pixel p = pixel(i, g.h, g.w, g.c);
        const T *xi = x + p.n * g.h * g.w * g.c + p.ch;
        int64_t oy0, oy1, ox0, ox1;
        covering(g, p.y, p.x, &oy0, &oy1, &ox0, &ox1);
        T acc = 0;
        for (int64_t oy = oy0; oy <= oy1; oy++)
            for (int64_t ox = ox0; ox <= ox1; ox++)
                if (in_window(g, oy, ox, p.y, p.x) && max_pick(g, xi, oy, ox) == p.y * g.w + p.x)
                    acc += dy[((p.n * g.oh + oy) * g.ow + ox) * g.c + p.ch];
        dx[i] = relu ? relu_grad_of(x[i], acc) : acc;
    }
}

template <class T> __global__ void avg_pool_grad(em_conv_geom g, const T *dy, T *dx, int64_t n) {
    EM_GPU_LOOP(i, n) {
        Pixel p = pixel(i, g.h, g.w, g.c);
        int64_t oy0, oy1, ox0, ox1;
        covering(g, p.y, p.x, &oy0, &oy1, &ox0, &ox1);
        T acc = 0;
        for (int64_t oy = oy0; oy <= oy1; oy++)
            for (int64_t ox = ox0; ox <= ox1; ox++) {
                int64_t y0, y1, x0, x1;
                em_pool_window(&g, oy, ox, &y0, &y1, &x0, &x1);
                if (p.y < y0 || p.y >= y1 || p.x < x0 || p.x >= x1) continue;
                T inv = (T)1 / (T)((y1 - y0) * (x1 - x0));
                acc += em_mul_rn(dy[((p.n * g.oh + oy) * g.ow + ox) * g.c + p.ch], inv);
            }
        dx[i] = acc;
    }
}

// Pools' attributes: i[0..1] strides, i[2..3] the window, i[4] padding; xs the input's shape.
em_conv_geom pool_geom(const em_gpu_call *c, const int64_t *xs) {
    return make_geom(c->a, xs, c->a->i[2], c->a->i[3], xs[3], false);
}

// conv2d_bias_relu's epilogue, in place on the convolution's n outputs of o channels.
template <class T> __global__ void bias_relu(const T *bias, int64_t o, T *y, int64_t n) {
    EM_GPU_LOOP(i, n) y[i] = EM_NN(bias_relu, T)(y[i], bias[i % o]);
}

// ---- the ops' launches, for one float type T ----
// Each runs one op into out (numel > 0) on stream: 0, or -1 after a report.

template <class T> const T *arg(const em_gpu_call *c, int i) { return static_cast<const T *>(c->in[i].data); }

// kernel(args..., y, n) over out's n elements.
template <class T, class... P, class... A>
int per_element(const em_gpu_call *c, em_gpu_tensor *out, cudaStream_t stream, void (*kernel)(P...), A... args) {
    kernel<<<em_gpu_blocks(out->numel), EM_GPU_THREADS, 0, stream>>>(args..., static_cast<T *>(out->data), out->numel);
    return em_gpu_launched(c->device, c->name);
}

// softmax or log_softmax of in[0] over the axis i[0].
template <class T> int softmax_gpu(const em_gpu_call *c, em_gpu_tensor *out, cudaStream_t stream, bool log_out) {
    AxisRows r = axis_rows(&c->in[0], c->a->i[0]);
    LAUNCH_ROWS(softmax_rows, use_block(r.len, r.inner, r.rows), r.rows, stream, arg<T>(c, 0),
                static_cast<T *>(out->data), r.rows, r.len, r.inner, log_out);
    return em_gpu_launched(c->device, c->name);
}

// (y, g) over the axis i[0]; i[1] 1 for log_softmax's gradient.
template <class T> int softmax_grad_gpu(const em_gpu_call *c, em_gpu_tensor *out, cudaStream_t stream) {
    AxisRows r = axis_rows(&c->in[0], c->a->i[0]);
    LAUNCH_ROWS(softmax_grad_rows, use_block(r.len, r.inner, r.rows), r.rows, stream, arg<T>(c, 0), arg<T>(c, 1),
                static_cast<T *>(out->data), r.rows, r.len, r.inner, c->a->i[1] != 0);
    return em_gpu_launched(c->device, c->name);
}

// (labels, logits [..., len]): a row of len per output element.
template <class T> int softmax_xent_gpu(const em_gpu_call *c, em_gpu_tensor *out, cudaStream_t stream) {
    const int64_t n = out->numel, len = c->in[1].shape[c->in[1].ndim - 1];
    if (len == 0) return zero_fill(c, out, sizeof(T), stream); // no classes: an empty sum
    LAUNCH_ROWS(softmax_xent_rows, use_block(len, 1, n), n, stream, arg<T>(c, 0), arg<T>(c, 1),
                static_cast<T *>(out->data), n, len);
    return em_gpu_launched(c->device, c->name);
}

// (labels of an index dtype [...], logits [..., len]).
template <class T> int sparse_softmax_xent_gpu(const em_gpu_call *c, em_gpu_tensor *out, cudaStream_t stream) {
    const int64_t n = out->numel, len = c->in[1].shape[c->in[1].ndim - 1];
    const bool ignoring = c->a->i[0] != 0;
    const int64_t ignore_index = c->a->i[1];
    T *y = static_cast<T *>(out->data);
#define SPARSE_XENT_CASE(E, sfx, L, ...)                                                                          \
    case E:                                                                                                        \
        LAUNCH_ROWS(sparse_xent_rows, use_block(len, 1, n), n, stream, arg<L>(c, 0), arg<T>(c, 1), y, n, len,      \
                    ignoring, ignore_index);                                                                       \
        break;
    switch (c->in[0].dtype) {
        EM_FOR_INDEX(SPARSE_XENT_CASE, )
    default: em_gpu_report("%s: labels of dtype %s", c->name, em_gpu_dtype_name(c->in[0].dtype)); return -1;
    }
#undef SPARSE_XENT_CASE
    return em_gpu_launched(c->device, c->name);
}

// em_gpu_float_typed with bfloat16 and float16 too (T narrow_elem<D>), for the row ops that take them.
template <class F> int float_or_narrow_typed(const em_gpu_call *c, em_gpu_tensor *out, F launch) {
    if (out->dtype != EM_BF16 && out->dtype != EM_F16) return em_gpu_float_typed(c, out, launch);
    if (out->numel == 0) return 0;
    cudaStream_t stream = em_gpu_stream(c->device);
    if (!stream) return -1;
    return out->dtype == EM_BF16 ? launch(narrow_elem<EM_BF16>(), stream) : launch(narrow_elem<EM_F16>(), stream);
}

} // namespace

// softmax, log_softmax and softmax_grad: float32, float64, bfloat16 and float16.
#define NN_NARROW_OP(name, ...)                                                                                        \
    int em_gpu_op_##name(const em_gpu_call *c, em_gpu_tensor *out) {                                                  \
        return float_or_narrow_typed(c, out, [&](auto zero, cudaStream_t stream) {                                     \
            typedef decltype(zero) T;                                                                                  \
            return __VA_ARGS__;                                                                                        \
        });                                                                                                            \
    }
NN_NARROW_OP(softmax, softmax_gpu<T>(c, out, stream, false))
NN_NARROW_OP(log_softmax, softmax_gpu<T>(c, out, stream, true))
NN_NARROW_OP(softmax_grad, softmax_grad_gpu<T>(c, out, stream))
EM_GPU_FLOAT_OP(sigmoid_xent, per_element<T>(c, out, stream, sigmoid_xent<T>, arg<T>(c, 0), arg<T>(c, 1)))
EM_GPU_FLOAT_OP(softmax_xent, softmax_xent_gpu<T>(c, out, stream))
EM_GPU_FLOAT_OP(sparse_softmax_xent, sparse_softmax_xent_gpu<T>(c, out, stream))
EM_GPU_FLOAT_OP(conv2d, conv_gpu<T>(c, out, FWD, stream))
EM_GPU_FLOAT_OP(conv2d_backprop_input, conv_gpu<T>(c, out, BPI, stream))
EM_GPU_FLOAT_OP(conv2d_backprop_filter, conv_gpu<T>(c, out, BPF, stream))
EM_GPU_FLOAT_OP(conv2d_bias_relu, conv_gpu<T>(c, out, FWD, stream)
                                      ? -1
                                      : per_element<T>(c, out, stream, bias_relu<T>, arg<T>(c, 2), c->in[2].shape[0]))
EM_GPU_FLOAT_OP(max_pool, per_element<T>(c, out, stream, max_pool_fwd<T>, pool_geom(c, c->in[0].shape), arg<T>(c, 0)))
// (input, out_backprop); out has the input's shape
EM_GPU_FLOAT_OP(max_pool_grad,
       per_element<T>(c, out, stream, max_pool_grad<T>, pool_geom(c, out->shape), arg<T>(c, 0), arg<T>(c, 1), false))
EM_GPU_FLOAT_OP(max_pool_relu_grad,
       per_element<T>(c, out, stream, max_pool_grad<T>, pool_geom(c, out->shape), arg<T>(c, 0), arg<T>(c, 1), true))
EM_GPU_FLOAT_OP(avg_pool, per_element<T>(c, out, stream, avg_pool_fwd<T>, pool_geom(c, c->in[0].shape), arg<T>(c, 0)))
// (out_backprop); out has the input's shape
EM_GPU_FLOAT_OP(avg_pool_grad, per_element<T>(c, out, stream, avg_pool_grad<T>, pool_geom(c, out->shape), arg<T>(c, 0)))
#undef NN_GPU
