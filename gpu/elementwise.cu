// The elementwise family on the GPU: every op of lib/ops/elementwise.c with
// the CPU's semantics (integer arithmetic wraps, integer x/0 is 0, NaN
// propagates through maximum/minimum/clip/relu, casts to integers saturate).
//
// Each op is a functor templated on the element type, written from the same
// scalar expression as the CPU's row; one kernel template applies any functor
// through a broadcast plan (lib/broadcast.h): every input is read in place
// with its own strides (0 where broadcast), and after coalescing a same-shape
// contiguous call is one flat loop without index arithmetic. The dtypes an op
// accepts are the CPU's; its shape rule has already checked them.
//
// float32 math runs the CUDA float functions (expf, tanhf, ...: 1-2 ulp, like
// the CPU's polynomials and libm), never the fast intrinsics.
#include "broadcast.h"
#include "common.cuh"

#include <type_traits>

#define EW_SQRT1_2 0.70710678118654752440 // 1/sqrt(2)

namespace {

// ---- dtypes ----

template <int DT> struct dtype_of;
template <> struct dtype_of<EM_F32> { typedef float T; };
template <> struct dtype_of<EM_F64> { typedef double T; };
template <> struct dtype_of<EM_I32> { typedef int32_t T; };
template <> struct dtype_of<EM_I64> { typedef int64_t T; };
template <> struct dtype_of<EM_U8> { typedef uint8_t T; };
template <> struct dtype_of<EM_BOOL> { typedef uint8_t T; };

constexpr unsigned bit(int dt) { return 1u << dt; }
constexpr unsigned FLOATS = bit(EM_F32) | bit(EM_F64);
constexpr unsigned NUMERIC = FLOATS | bit(EM_I32) | bit(EM_I64) | bit(EM_U8);
constexpr unsigned ALL = NUMERIC | bit(EM_BOOL);
constexpr unsigned BOOLS = bit(EM_BOOL);

// Calls fn(std::integral_constant<int, dt>) when dtype dt is in SET.
#define EW_DTYPE_CASE(DT) \
    case DT:              \
        if constexpr ((SET & bit(DT)) != 0) return fn(std::integral_constant<int, DT>()); \
        break;
template <unsigned SET, class Fn> int by_dtype(const em_gpu_call *c, int dt, Fn &&fn) {
    switch (dt) {
        EW_DTYPE_CASE(EM_F32)
        EW_DTYPE_CASE(EM_F64)
        EW_DTYPE_CASE(EM_I32)
        EW_DTYPE_CASE(EM_I64)
        EW_DTYPE_CASE(EM_U8)
        EW_DTYPE_CASE(EM_BOOL)
    default: break;
    }
    em__gpu_report("%s: no GPU kernel for dtype %s", c->name, em_dtype_name((em_dtype)dt));
    return -1;
}

template <class T> constexpr bool is_flt = std::is_floating_point<T>::value;
template <class T> constexpr bool is_sgn = std::is_signed<T>::value && !std::is_floating_point<T>::value;

// The type integer arithmetic wraps in (floats: themselves).
template <class T> struct wrap { typedef T U; };
template <> struct wrap<int32_t> { typedef uint32_t U; };
template <> struct wrap<int64_t> { typedef uint64_t U; };

// ---- math by type: the float function for float, the double one for double ----

#define EW_MATH(name)                                                   \
    __device__ inline float m_##name(float x) { return name##f(x); } \
    __device__ inline double m_##name(double x) { return name(x); }
EW_MATH(sqrt)
EW_MATH(exp)
EW_MATH(expm1)
EW_MATH(log)
EW_MATH(log1p)
EW_MATH(erf)
EW_MATH(tanh)
EW_MATH(fabs)
__device__ inline float m_pow(float x, float y) { return powf(x, y); }
__device__ inline double m_pow(double x, double y) { return pow(x, y); }

// ---- the ops: functors F<T> with `arity`, built from the call's attributes ----

#define EW_UNARY(Name, expr)                                             \
    template <class T> struct Name {                                     \
        static constexpr int arity = 1;                                  \
        explicit Name(const double *) {}                                 \
        __device__ T operator()(T x) const { return (T)(expr); }         \
    };
#define EW_BINARY(Name, R, expr)                                         \
    template <class T> struct Name {                                     \
        static constexpr int arity = 2;                                  \
        typedef typename wrap<T>::U U;                                   \
        explicit Name(const double *) {}                                 \
        __device__ R operator()(T x, T y) const { return (R)(expr); }    \
    };

EW_BINARY(Add, T, (U)x + (U)y)
EW_BINARY(Sub, T, (U)x - (U)y)
EW_BINARY(Mul, T, (U)x * (U)y)
// Floats: IEEE. Integers: x/0 is 0; x/-1 is the wrapping negation (no overflow trap).
EW_BINARY(Div, T,
          is_flt<T> ? x / y
          : y == 0    ? (T)0
          : is_sgn<T> && y == (T)-1 ? (T)(0 - (U)x)
                                      : (T)(x / y))
EW_BINARY(Pow, T, m_pow(x, y))
// NaN propagates from either side (x != x only for a NaN).
EW_BINARY(Maximum, T, x >= y || x != x ? x : y)
EW_BINARY(Minimum, T, x <= y || x != x ? x : y)
EW_BINARY(ReluGrad, T, x > 0 ? y : (T)0)
EW_BINARY(SigmoidGrad, T, y * x * ((T)1 - x))
EW_BINARY(TanhGrad, T, y * ((T)1 - x * x))
EW_BINARY(Equal, uint8_t, x == y)
EW_BINARY(NotEqual, uint8_t, x != y)
EW_BINARY(Less, uint8_t, x < y)
EW_BINARY(LessEqual, uint8_t, x <= y)
EW_BINARY(Greater, uint8_t, x > y)
EW_BINARY(GreaterEqual, uint8_t, x >= y)
EW_BINARY(LogicalAnd, uint8_t, x && y)
EW_BINARY(LogicalOr, uint8_t, x || y)

template <class T> __device__ inline T neg(T x) {
    if constexpr (is_flt<T>) return -x;
    else return (T)(0 - (typename wrap<T>::U)x);
}
template <class T> __device__ inline T sign(T x) {
    if constexpr (is_flt<T>) return x != x ? x : (T)((x > 0) - (x < 0));
    else if constexpr (is_sgn<T>) return (T)((x > 0) - (x < 0));
    else return (T)(x > 0);
}
template <class T> __device__ inline T absolute(T x) {
    if constexpr (is_flt<T>) return m_fabs(x);
    else if constexpr (is_sgn<T>) return x < 0 ? neg(x) : x;
    else return x;
}
// float32: the CPU's form (one exp of -|x|); float64: libm's two-sided form.
template <class T> __device__ inline T sigmoid(T x) {
    if constexpr (std::is_same<T, float>::value) {
        float e = expf(-fabsf(x)), s = 1.0f / (1.0f + e);
        return x >= 0 ? s : e * s;
    } else {
        return x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x));
    }
}

EW_UNARY(Neg, neg(x))
EW_UNARY(Abs, absolute(x))
EW_UNARY(Square, (typename wrap<T>::U)x * (typename wrap<T>::U)x)
EW_UNARY(Sign, sign(x))
EW_UNARY(Sqrt, m_sqrt(x))
EW_UNARY(Rsqrt, (T)1 / m_sqrt(x))
EW_UNARY(Exp, m_exp(x))
EW_UNARY(Log, m_log(x))
EW_UNARY(Log1p, m_log1p(x))
EW_UNARY(Erf, m_erf(x))
EW_UNARY(Relu, x < 0 ? (T)0 : x)
EW_UNARY(Elu, x < 0 ? m_expm1(x) : x)
EW_UNARY(Sigmoid, sigmoid(x))
EW_UNARY(Tanh, m_tanh(x))
EW_UNARY(Softplus, (x > 0 ? x : (T)0) + m_log1p(m_exp(-m_fabs(x))))
EW_UNARY(Gelu, (T)0.5 * x * ((T)1 + m_erf(x * (T)EW_SQRT1_2)))
EW_UNARY(LogicalNot, !x)

template <class T> struct LeakyRelu { // f[0]: alpha
    static constexpr int arity = 1;
    T alpha;
    explicit LeakyRelu(const double *f) : alpha((T)f[0]) {}
    __device__ T operator()(T x) const { return x < 0 ? alpha * x : x; }
};

// min(max(x, lo), hi), NaN passing through; integer bounds round inward and
// saturate to the dtype's range (f[0] lo, f[1] hi).
template <class T> struct Clip {
    static constexpr int arity = 1;
    T lo, hi;
    explicit Clip(const double *f) {
        if constexpr (is_flt<T>) {
            lo = (T)f[0];
            hi = (T)f[1];
        } else {
            lo = em_gpu_saturate<T>(ceil(f[0]));
            hi = em_gpu_saturate<T>(floor(f[1]));
        }
    }
    __device__ T operator()(T x) const {
        T r = x < lo ? lo : x;
        return r > hi ? hi : r;
    }
};

// cond (bool) picks a or b.
template <class T> struct Where {
    static constexpr int arity = 3;
    explicit Where(const double *) {}
    __device__ T operator()(uint8_t k, T a, T b) const { return k ? a : b; }
};

// dtype DI to dtype DO as the CPU's casts: to and from bool through x != 0,
// float to integer saturating (NaN is 0), integer to integer wrapping.
template <int DO, int DI> struct Cast {
    typedef typename dtype_of<DO>::T TO;
    typedef typename dtype_of<DI>::T TI;
    static constexpr int arity = 1;
    explicit Cast(const double *) {}
    __device__ TO operator()(TI x) const {
        if constexpr (DO == EM_BOOL || DI == EM_BOOL) return (TO)(x != 0);
        else if constexpr (is_flt<TO> || !is_flt<TI>) return (TO)x;
        else return em_gpu_saturate<TO>((double)x);
    }
};

// ---- the kernel ----

template <bool FLAT> __device__ inline int64_t offset(const em_bcast &p, int k, int64_t i) {
    if constexpr (FLAT) return i * p.strides[k][0];
    else return em_bcast_offset(&p, k, i);
}

template <class F, class TO, class T0, class T1, class T2, bool FLAT>
__global__ void ew_kernel(const __grid_constant__ em_bcast p, int64_t n, TO *out, const T0 *a, const T1 *b,
                          const T2 *c, const F f) {
    EM_GPU_LOOP(i, n) {
        if constexpr (F::arity == 1) out[i] = f(a[offset<FLAT>(p, 0, i)]);
        else if constexpr (F::arity == 2) out[i] = f(a[offset<FLAT>(p, 0, i)], b[offset<FLAT>(p, 1, i)]);
        else out[i] = f(a[offset<FLAT>(p, 0, i)], b[offset<FLAT>(p, 1, i)], c[offset<FLAT>(p, 2, i)]);
    }
}

// Runs f over the call's inputs (types T0, T1, T2) into out (type TO).
template <class F, class TO, class T0, class T1 = T0, class T2 = T0>
int launch(const em_gpu_call *c, em_gpu_tensor *out, const F &f) {
    if (out->numel == 0) return 0;
    em_bcast p;
    em_bcast_init(&p, out->ndim, out->shape, c->n);
    for (int k = 0; k < c->n; k++) em_bcast_input(&p, k, c->in[k].ndim, c->in[k].shape, c->in[k].strides);
    em_bcast_coalesce(&p);
    cudaStream_t s = em_gpu_stream(c->device);
    if (!s) return -1;
    const T0 *a = (const T0 *)c->in[0].data;
    const T1 *b = c->n > 1 ? (const T1 *)c->in[1].data : nullptr;
    const T2 *x = c->n > 2 ? (const T2 *)c->in[2].data : nullptr;
    unsigned blocks = em_gpu_blocks(out->numel);
    TO *o = (TO *)out->data;
    if (p.ndim == 1)
        ew_kernel<F, TO, T0, T1, T2, true><<<blocks, EM_GPU_THREADS, 0, s>>>(p, out->numel, o, a, b, x, f);
    else
        ew_kernel<F, TO, T0, T1, T2, false><<<blocks, EM_GPU_THREADS, 0, s>>>(p, out->numel, o, a, b, x, f);
    return em_gpu_launched(c->device, c->name);
}

// An op over the dtypes of SET; the value inputs' dtype (the last input's)
// picks the type. TO_BOOL: the output is bool.
template <template <class> class F, unsigned SET, bool TO_BOOL = false>
int op(const em_gpu_call *c, em_gpu_tensor *out) {
    return by_dtype<SET>(c, c->in[c->n - 1].dtype, [&](auto dt) {
        typedef typename dtype_of<decltype(dt)::value>::T T;
        typedef typename std::conditional<TO_BOOL, uint8_t, T>::type TO;
        F<T> f(c->a->f);
        if constexpr (F<T>::arity == 3) return launch<F<T>, TO, uint8_t, T, T>(c, out, f);
        else return launch<F<T>, TO, T>(c, out, f);
    });
}

int cast(const em_gpu_call *c, em_gpu_tensor *out) {
    return by_dtype<ALL>(c, c->in[0].dtype, [&](auto di) {
        return by_dtype<ALL>(c, out->dtype, [&](auto dout) {
            typedef Cast<decltype(dout)::value, decltype(di)::value> F;
            return launch<F, typename F::TO, typename F::TI>(c, out, F(c->a->f));
        });
    });
}

} // namespace

extern "C" int em__gpu_elementwise(const em_gpu_call *c, em_gpu_tensor *out) {
    switch (c->op) {
    case EM_OP_ADD: return op<Add, NUMERIC>(c, out);
    case EM_OP_SUB: return op<Sub, NUMERIC>(c, out);
    case EM_OP_MUL: return op<Mul, NUMERIC>(c, out);
    case EM_OP_DIV: return op<Div, NUMERIC>(c, out);
    case EM_OP_POW: return op<Pow, FLOATS>(c, out);
    case EM_OP_MAXIMUM: return op<Maximum, NUMERIC>(c, out);
    case EM_OP_MINIMUM: return op<Minimum, NUMERIC>(c, out);
    case EM_OP_NEG: return op<Neg, NUMERIC>(c, out);
    case EM_OP_ABS: return op<Abs, NUMERIC>(c, out);
    case EM_OP_SQUARE: return op<Square, NUMERIC>(c, out);
    case EM_OP_SIGN: return op<Sign, NUMERIC>(c, out);
    case EM_OP_SQRT: return op<Sqrt, FLOATS>(c, out);
    case EM_OP_RSQRT: return op<Rsqrt, FLOATS>(c, out);
    case EM_OP_EXP: return op<Exp, FLOATS>(c, out);
    case EM_OP_LOG: return op<Log, FLOATS>(c, out);
    case EM_OP_LOG1P: return op<Log1p, FLOATS>(c, out);
    case EM_OP_ERF: return op<Erf, FLOATS>(c, out);
    case EM_OP_RELU: return op<Relu, FLOATS>(c, out);
    case EM_OP_RELU_GRAD: return op<ReluGrad, FLOATS>(c, out);
    case EM_OP_LEAKY_RELU: return op<LeakyRelu, FLOATS>(c, out);
    case EM_OP_ELU: return op<Elu, FLOATS>(c, out);
    case EM_OP_SIGMOID: return op<Sigmoid, FLOATS>(c, out);
    case EM_OP_SIGMOID_GRAD: return op<SigmoidGrad, FLOATS>(c, out);
    case EM_OP_TANH: return op<Tanh, FLOATS>(c, out);
    case EM_OP_TANH_GRAD: return op<TanhGrad, FLOATS>(c, out);
    case EM_OP_SOFTPLUS: return op<Softplus, FLOATS>(c, out);
    case EM_OP_GELU: return op<Gelu, FLOATS>(c, out);
    case EM_OP_CLIP: return op<Clip, NUMERIC>(c, out);
    case EM_OP_WHERE: return op<Where, ALL>(c, out);
    case EM_OP_CAST: return cast(c, out);
    case EM_OP_EQUAL: return op<Equal, ALL, true>(c, out);
    case EM_OP_NOT_EQUAL: return op<NotEqual, ALL, true>(c, out);
    case EM_OP_LESS: return op<Less, ALL, true>(c, out);
    case EM_OP_LESS_EQUAL: return op<LessEqual, ALL, true>(c, out);
    case EM_OP_GREATER: return op<Greater, ALL, true>(c, out);
    case EM_OP_GREATER_EQUAL: return op<GreaterEqual, ALL, true>(c, out);
    case EM_OP_LOGICAL_AND: return op<LogicalAnd, BOOLS, true>(c, out);
    case EM_OP_LOGICAL_OR: return op<LogicalOr, BOOLS, true>(c, out);
    case EM_OP_LOGICAL_NOT: return op<LogicalNot, BOOLS, true>(c, out);
    default: em__gpu_report("%s: no GPU kernel", c->name); return -1;
    }
}
