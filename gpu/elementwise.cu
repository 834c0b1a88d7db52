// The elementwise family on the GPU: one entry per line of
// lib/ops/elementwise.def, each running the op's own formula from
// lib/ops/elementwise_math.h (the function the CPU's rows call) through one
// kernel template. Every input is read in place through a broadcast plan
// (lib/broadcast.h) with its own strides (0 where broadcast); after
// coalescing, a same-shape contiguous call is one flat loop without index
// arithmetic. The op's shape rule has already checked the dtypes. bfloat16
// and float16 run the op's float32 functor on widened values (ew_narrow).
#include "broadcast.h"
#include "common.cuh"
#include "ops/elementwise_math.h"
#include "ops/narrow.h"

namespace {

// The call's float attributes, passed to the kernel by value.
struct ew_attrs {
    double f[4];
};

template <bool FLAT> __device__ inline int64_t offset(const em_bcast &p, int k, int64_t i) {
    if constexpr (FLAT) return i * p.strides[k][0];
    else return em_bcast_offset(&p, k, i);
}

// F: a functor with `arity` and operator() over the inputs and the attributes.
template <class F, class TO, class T0, class T1, class T2, bool FLAT>
__global__ void ew_kernel(const __grid_constant__ em_bcast p, int64_t n, TO *out, const T0 *a, const T1 *b,
                          const T2 *c, const ew_attrs at) {
    EM_GPU_LOOP(i, n) {
        if constexpr (F::arity == 1) out[i] = F()(a[offset<FLAT>(p, 0, i)], at.f);
        else if constexpr (F::arity == 2) out[i] = F()(a[offset<FLAT>(p, 0, i)], b[offset<FLAT>(p, 1, i)], at.f);
        else out[i] = F()(a[offset<FLAT>(p, 0, i)], b[offset<FLAT>(p, 1, i)], c[offset<FLAT>(p, 2, i)], at.f);
    }
}

// Runs F over the call's inputs (types T0, T1, T2) into out (type TO).
template <class F, class TO, class T0, class T1 = T0, class T2 = T0>
int launch(const em_gpu_call *c, em_gpu_tensor *out) {
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
    ew_attrs at;
    for (int k = 0; k < 4; k++) at.f[k] = c->a->f[k];
    unsigned blocks = em_gpu_blocks(out->numel);
    TO *o = (TO *)out->data;
    if (p.ndim == 1)
        ew_kernel<F, TO, T0, T1, T2, true><<<blocks, EM_GPU_THREADS, 0, s>>>(p, out->numel, o, a, b, x, at);
    else
        ew_kernel<F, TO, T0, T1, T2, false><<<blocks, EM_GPU_THREADS, 0, s>>>(p, out->numel, o, a, b, x, at);
    return em_gpu_launched(c->device, c->name);
}

int no_kernel(const em_gpu_call *c, int dtype) {
    em_gpu_report("%s: no GPU kernel for dtype %s", c->name, em_gpu_dtype_name(dtype));
    return -1;
}

// ---- one functor per (op, dtype), calling the op's formula ----

#define EW_FUNCTOR_1(E, sfx, T, U, C, MN, MX, name, OUT)                                                              \
    struct ew_##name##_##sfx {                                                                                         \
        static constexpr int arity = 1;                                                                                \
        __device__ EM_EW_OUT_##OUT(T) operator()(T x, const double *f) const { return em_ew_##name##_##sfx(x, f); }    \
    };
#define EW_FUNCTOR_2(E, sfx, T, U, C, MN, MX, name, OUT)                                                              \
    struct ew_##name##_##sfx {                                                                                         \
        static constexpr int arity = 2;                                                                                \
        __device__ EM_EW_OUT_##OUT(T) operator()(T x, T y, const double *f) const {                                   \
            return em_ew_##name##_##sfx(x, y, f);                                                                      \
        }                                                                                                              \
    };
#define EW_FUNCTOR_3(E, sfx, T, U, C, MN, MX, name, OUT)                                                              \
    struct ew_##name##_##sfx {                                                                                         \
        static constexpr int arity = 3;                                                                                \
        __device__ T operator()(uint8_t k, T x, T y, const double *) const { return em_ew_##name##_##sfx(k, x, y); }   \
    };
#define EW_FUNCTORS_SAME(name, arity, dtypes) EM_WIDE_##dtypes(EW_FUNCTOR_##arity, name, SAME)
#define EW_FUNCTORS_BOOL(name, arity, dtypes) EM_WIDE_##dtypes(EW_FUNCTOR_##arity, name, BOOL)
#define EW_FUNCTORS_CAST(name, arity, dtypes) /* below */
#define EM_OP(ID, name, arity, dtypes, grad, kernel, flags, cost, out, api, fn) EW_FUNCTORS_##out(name, arity, dtypes)
#include "ops/elementwise.def"
#undef EM_OP

// F32, an op's float32 functor, on the narrow dtype D: inputs widened, a float
// result rounded back to D, a bool one (comparisons) kept.
template <class F32, int D> struct ew_narrow {
    static constexpr int arity = F32::arity;
    typedef narrow_io<D> N;
    __device__ static uint16_t put(float v) { return N::round(v); }
    __device__ static uint8_t put(uint8_t v) { return v; }
    __device__ auto operator()(uint16_t x, const double *f) const { return put(F32()(N::widen(x), f)); }
    __device__ auto operator()(uint16_t x, uint16_t y, const double *f) const {
        return put(F32()(N::widen(x), N::widen(y), f));
    }
    __device__ uint16_t operator()(uint8_t k, uint16_t x, uint16_t y, const double *f) const {
        return put(F32()(k, N::widen(x), N::widen(y), f));
    }
};

// Casts: a functor per (source, target) pair.
#define EW_CAST_FUNCTOR(E, sfx, T, U, C, MN, MX, ssfx, S)                                                             \
    struct ew_cast_##ssfx##_##sfx {                                                                                    \
        static constexpr int arity = 1;                                                                                \
        __device__ T operator()(S x, const double *f) const { return em_ew_cast_##ssfx##_##sfx(x, f); }               \
    };
EM_FOR_EVERY(EW_CAST_FUNCTOR, f32, float)
EM_FOR_EVERY(EW_CAST_FUNCTOR, f64, double)
EM_FOR_EVERY(EW_CAST_FUNCTOR, i32, int32_t)
EM_FOR_EVERY(EW_CAST_FUNCTOR, i64, int64_t)
EM_FOR_EVERY(EW_CAST_FUNCTOR, u8, uint8_t)
EM_FOR_EVERY(EW_CAST_FUNCTOR, i8, int8_t)
EM_FOR_EVERY(EW_CAST_FUNCTOR, i16, int16_t)
EM_FOR_EVERY(EW_CAST_FUNCTOR, u16, uint16_t)
EM_FOR_EVERY(EW_CAST_FUNCTOR, b8, uint8_t)
EM_FOR_EVERY(EW_CAST_FUNCTOR, bf16, uint16_t)
EM_FOR_EVERY(EW_CAST_FUNCTOR, f16, uint16_t)

// A cast from source type S (suffix ssfx) to the output's dtype.
#define EW_CAST_CASE(E, sfx, T, U, C, MN, MX, ssfx, S)                                                                \
    case E: return launch<ew_cast_##ssfx##_##sfx, T, S>(c, out);
template <int SRC> int cast_from(const em_gpu_call *c, em_gpu_tensor *out);
#define EW_CAST_FROM(E, ssfx, S)                                                                                       \
    template <> int cast_from<E>(const em_gpu_call *c, em_gpu_tensor *out) {                                           \
        switch (out->dtype) { EM_FOR_EVERY(EW_CAST_CASE, ssfx, S) default: break; }                                      \
        return no_kernel(c, out->dtype);                                                                               \
    }
EW_CAST_FROM(EM_F32, f32, float)
EW_CAST_FROM(EM_F64, f64, double)
EW_CAST_FROM(EM_I32, i32, int32_t)
EW_CAST_FROM(EM_I64, i64, int64_t)
EW_CAST_FROM(EM_U8, u8, uint8_t)
EW_CAST_FROM(EM_I8, i8, int8_t)
EW_CAST_FROM(EM_I16, i16, int16_t)
EW_CAST_FROM(EM_U16, u16, uint16_t)
EW_CAST_FROM(EM_BOOL, b8, uint8_t)
EW_CAST_FROM(EM_BF16, bf16, uint16_t)
EW_CAST_FROM(EM_F16, f16, uint16_t)

} // namespace

// ---- the entries: em_gpu_op_<name>, dispatching on the value inputs' dtype ----

// The value inputs' dtype is the last input's (where's first input is its bool condition).
#define EW_CASE_1(E, sfx, T, U, C, MN, MX, name, OUT)                                                                 \
    case E: return launch<ew_##name##_##sfx, EM_EW_OUT_##OUT(T), T>(c, out);
#define EW_CASE_2 EW_CASE_1
#define EW_CASE_3(E, sfx, T, U, C, MN, MX, name, OUT)                                                                 \
    case E: return launch<ew_##name##_##sfx, T, uint8_t, T, T>(c, out);
#define EW_NARROW_OUT_SAME uint16_t
#define EW_NARROW_OUT_BOOL uint8_t
#define EW_NARROW_CASE_1(E, sfx, T, U, C, MN, MX, name, OUT)                                                          \
    case E: return launch<ew_narrow<ew_##name##_f32, E>, EW_NARROW_OUT_##OUT, uint16_t>(c, out);
#define EW_NARROW_CASE_2 EW_NARROW_CASE_1
#define EW_NARROW_CASE_3(E, sfx, T, U, C, MN, MX, name, OUT)                                                          \
    case E: return launch<ew_narrow<ew_##name##_f32, E>, uint16_t, uint8_t, uint16_t, uint16_t>(c, out);
#define EW_ENTRY(name, arity, dtypes, OUT)                                                                             \
    int em_gpu_op_##name(const em_gpu_call *c, em_gpu_tensor *out) {                                         \
        int dt = c->in[c->n - 1].dtype;                                                                                \
        switch (dt) {                                                                                                  \
            EM_WIDE_##dtypes(EW_CASE_##arity, name, OUT) EM_NARROWS_##dtypes(EW_NARROW_CASE_##arity, name, OUT)         \
        default: break;                                                                                                \
        }                                                                                                              \
        return no_kernel(c, dt);                                                                                       \
    }
#define EW_ENTRY_SAME(name, arity, dtypes) EW_ENTRY(name, arity, dtypes, SAME)
#define EW_ENTRY_BOOL(name, arity, dtypes) EW_ENTRY(name, arity, dtypes, BOOL)
#define EW_ENTRY_CAST(name, arity, dtypes)                                                                             \
    int em_gpu_op_##name(const em_gpu_call *c, em_gpu_tensor *out) {                                         \
        switch (c->in[0].dtype) {                                                                                      \
        case EM_F32: return cast_from<EM_F32>(c, out);                                                                 \
        case EM_F64: return cast_from<EM_F64>(c, out);                                                                 \
        case EM_I32: return cast_from<EM_I32>(c, out);                                                                 \
        case EM_I64: return cast_from<EM_I64>(c, out);                                                                 \
        case EM_U8: return cast_from<EM_U8>(c, out);                                                                   \
        case EM_I8: return cast_from<EM_I8>(c, out);                                                                   \
        case EM_I16: return cast_from<EM_I16>(c, out);                                                                 \
        case EM_U16: return cast_from<EM_U16>(c, out);                                                                 \
        case EM_BOOL: return cast_from<EM_BOOL>(c, out);                                                               \
        case EM_BF16: return cast_from<EM_BF16>(c, out);                                                               \
        case EM_F16: return cast_from<EM_F16>(c, out);                                                                 \
        default: return no_kernel(c, c->in[0].dtype);                                                                  \
        }                                                                                                              \
    }
#define EM_OP(ID, name, arity, dtypes, grad, kernel, flags, cost, out, api, fn) EW_ENTRY_##out(name, arity, dtypes)
#include "ops/elementwise.def"
#undef EM_OP
