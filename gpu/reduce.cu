// GPU reductions: the ops of lib/ops/reduce.c (sum, max, min, prod,
// log_sum_exp, reduce_any, reduce_all, argmax, argmin) over any axes, following the same plan
// (lib/reduce_plan.h) as the CPU kernels.
//
// Each output element is reduced by one thread (few elements per output, or
// many neighbouring outputs that read neighbouring inputs) or by one block
// (many elements per output): thread t of the block folds reduced elements
// t, t + 256, ... in order, then the 256 partials are joined by a fixed tree.
// The choice depends on the shape alone, so results are reproducible run to
// run. Accumulators are double for float sums and products (the CPU adds
// float32 terms in short float32 blocks, the block sums in double),
// uint64 (wrapping like the dtype) for integer ones. max/min propagate NaN;
// argmax/argmin keep the first best index (the first NaN), like the CPU.
// log_sum_exp's arithmetic is lib/reduce_plan.h's, the CPU's. bfloat16 and
// float16 are read as stored, widened per element and accumulated as
// float32's are, each result rounded once (elem<narrow_elem<D>>).
#include <limits>
#include <type_traits>

#include "common.cuh"
#include "ops/narrow.h"
#include "reduce_plan.h"

namespace {

constexpr int RED_THREADS = 256; // a power of two: the tree halves it
constexpr int64_t BLOCK_MIN_COUNT = 64;   // reduced elements per output from which a block reduces it
constexpr int64_t BLOCK_MAX_OUTPUTS = 8192; // outputs reading neighbouring inputs: above this, a thread each

// The smallest and largest values of T (infinities for floats): max's and min's identities.
template <class T> T lowest() {
    if constexpr (std::is_floating_point<T>::value) return -std::numeric_limits<T>::infinity();
    else return std::numeric_limits<T>::lowest();
}
template <class T> T highest() {
    if constexpr (std::is_floating_point<T>::value) return std::numeric_limits<T>::infinity();
    else return std::numeric_limits<T>::max();
}

// How the kernels read an element of T (widen, to V: what is compared and
// added) and write a result (round, from an accumulator).
template <class T> struct elem {
    typedef T V;
    static constexpr bool is_float = std::is_floating_point<T>::value;
    __device__ static T widen(T v) { return v; }
    template <class A> __device__ static T round(A a) { return (T)a; }
};
template <int D> struct elem<narrow_elem<D>> {
    typedef float V;
    static constexpr bool is_float = true;
    __device__ static float widen(narrow_elem<D> v) { return narrow_io<D>::widen(v.bits); }
    template <class A> __device__ static narrow_elem<D> round(A a) { return {narrow_io<D>::round((double)a)}; }
};
template <class T> using value_t = typename elem<T>::V;

// The CPU's accumulator for sums and products.
template <class T> using acc_t = typename std::conditional<elem<T>::is_float, double, uint64_t>::type;

// An op folds values with load (the value of reduced element r of output oi)
// and merge (acc = acc (+) p, where p's elements come after acc's, or, for
// the tree, from the higher half), and writes with store into an OT. The host
// makes it for an output with make(out).
template <class T> struct Sum {
    typedef acc_t<T> A;
    typedef T OT;
    static Sum make(const em_gpu_tensor *) { return {}; }
    __device__ A init() const { return (A)0; }
    __device__ A load(T v, int64_t, int64_t) const { return (A)elem<T>::widen(v); }
    __device__ void merge(A &a, const A &p) const { a += p; }
    __device__ void store(T *out, int64_t oi, A a) const { out[oi] = elem<T>::round(a); }
};

template <class T> struct Prod {
    typedef acc_t<T> A;
    typedef T OT;
    static Prod make(const em_gpu_tensor *) { return {}; }
    __device__ A init() const { return (A)1; }
    __device__ A load(T v, int64_t, int64_t) const { return (A)elem<T>::widen(v); }
    __device__ void merge(A &a, const A &p) const { a *= p; }
    __device__ void store(T *out, int64_t oi, A a) const { out[oi] = elem<T>::round(a); }
};

// max (MIN = false) and min: a NaN, once seen, stays.
template <class T, bool MIN> struct Extreme {
    typedef value_t<T> A;
    typedef T OT;
    A identity;
    static Extreme make(const em_gpu_tensor *) { return {MIN ? highest<A>() : lowest<A>()}; }
    __device__ A init() const { return identity; }
    __device__ A load(T v, int64_t, int64_t) const { return elem<T>::widen(v); }
    __device__ void merge(A &a, const A &p) const {
        bool better = MIN ? p < a : p > a;
        if (better || em_math_isnan(p)) a = p;
    }
    __device__ void store(T *out, int64_t oi, A a) const { out[oi] = elem<T>::round(a); }
};

template <class T> struct Best {
    T v;
    int64_t i; // reduced index; -1: nothing seen
};

// argmax (MIN = false) and argmin. On equal values (or two NaNs) the smaller
// index wins, so the tree finds the CPU's first best whatever the split.
template <class T, bool MIN> struct Arg {
    typedef value_t<T> V;
    typedef Best<V> A;
    typedef int64_t OT;
    static Arg make(const em_gpu_tensor *) { return {}; }
    __device__ A init() const { return A{V(0), -1}; }
    __device__ A load(T v, int64_t r, int64_t) const { return A{elem<T>::widen(v), r}; }
    __device__ static bool better(V x, V y) { return (MIN ? x < y : x > y) || (em_math_isnan(x) && !em_math_isnan(y)); }
    __device__ void merge(A &a, const A &p) const {
        if (p.i < 0) return;
        if (a.i < 0 || better(p.v, a.v) || (!better(a.v, p.v) && p.i < a.i)) a = p;
    }
    __device__ void store(int64_t *out, int64_t oi, A a) const { out[oi] = a.i; }
};

// reduce_any (AND = false) and reduce_all over bool bytes (0 or 1).
template <class T, bool AND> struct Logic {
    typedef T A;
    typedef T OT;
    static Logic make(const em_gpu_tensor *) { return {}; }
    __device__ A init() const { return AND ? 1 : 0; }
    __device__ A load(T v, int64_t, int64_t) const { return v; }
    __device__ void merge(A &a, const A &p) const { a = AND ? (a & p) : (a | p); }
    __device__ void store(T *out, int64_t oi, A a) const { out[oi] = a; }
};

template <class T> using Any = Logic<T, false>;
template <class T> using All = Logic<T, true>;
template <class T> using Max = Extreme<T, false>;
template <class T> using Min = Extreme<T, true>;
template <class T> using ArgMax = Arg<T, false>;
template <class T> using ArgMin = Arg<T, true>;

// log_sum_exp's second pass: out already holds each output's maximum m.
template <class T> struct LseSum {
    typedef double A;
    typedef T OT;
    const T *max;
    static LseSum make(const em_gpu_tensor *out) { return {static_cast<const T *>(out->data)}; }
    __device__ A init() const { return 0.0; }
    __device__ A load(T v, int64_t, int64_t oi) const {
        return em_lse_term((double)elem<T>::widen(v), (double)elem<T>::widen(max[oi]));
    }
    __device__ void merge(A &a, const A &p) const { a += p; }
    __device__ void store(T *out, int64_t oi, A a) const {
        out[oi] = elem<T>::round(em_lse_result(elem<T>::widen(out[oi]), a));
    }
};

// One thread per output element: its reduced elements in row-major order.
template <class T, class OT, class Op>
__global__ void reduce_per_thread(em_reduce_plan p, const T *x, OT *out, int64_t nout, Op op) {
    EM_GPU_LOOP(oi, nout) {
        int64_t o = oi / p.inner, b = oi % p.inner;
        const T *xo = x + em_plan_offset(p.nkeep, p.kdim, p.kstride, o) + b;
        typename Op::A acc = op.init();
        int64_t r = 0;
        for (int64_t s = 0; s < p.steps; s++) {
            const T *xs = xo + em_plan_offset(p.nred, p.rdim, p.rstride, s);
            for (int64_t j = 0; j < p.run; j++, r++) op.merge(acc, op.load(xs[j], r, oi));
        }
        op.store(out, oi, acc);
    }
}

// One block per output element: strided partials, then a fixed tree.
template <class T, class OT, class Op>
__global__ void __launch_bounds__(RED_THREADS) reduce_per_block(em_reduce_plan p, const T *x, OT *out, int64_t nout,
                                                                Op op) {
    __shared__ typename Op::A part[RED_THREADS];
    const int t = threadIdx.x;
    for (int64_t oi = blockIdx.x; oi < nout; oi += gridDim.x) {
        int64_t o = oi / p.inner, b = oi % p.inner;
        const T *xo = x + em_plan_offset(p.nkeep, p.kdim, p.kstride, o) + b;
        typename Op::A acc = op.init();
        for (int64_t r = t; r < p.count; r += RED_THREADS) {
            int64_t s = r / p.run, j = r - s * p.run;
            op.merge(acc, op.load(xo[em_plan_offset(p.nred, p.rdim, p.rstride, s) + j], r, oi));
        }
        part[t] = acc;
        __syncthreads();
        for (int w = RED_THREADS / 2; w > 0; w >>= 1) {
            if (t < w) op.merge(part[t], part[t + w]);
            __syncthreads();
        }
        if (t == 0) op.store(out, oi, part[0]);
        __syncthreads(); // part[0] is read before the next output overwrites it
    }
}

template <class T, class OT, class Op>
int launch(const em_gpu_call *c, const em_reduce_plan &p, const T *x, OT *out, int64_t nout, const Op &op) {
    cudaStream_t stream = em_gpu_stream(c->device);
    if (!stream) return -1;
    if (p.count >= BLOCK_MIN_COUNT && (p.inner == 1 || nout <= BLOCK_MAX_OUTPUTS)) {
        unsigned blocks = nout < 65535 * 32 ? (unsigned)nout : 65535u * 32u;
        reduce_per_block<T, OT, Op><<<blocks, RED_THREADS, 0, stream>>>(p, x, out, nout, op);
    } else {
        reduce_per_thread<T, OT, Op><<<em_gpu_blocks(nout), EM_GPU_THREADS, 0, stream>>>(p, x, out, nout, op);
    }
    return em_gpu_launched(c->device, c->name);
}

// The passes an op runs, in order, each over the whole input.
template <template <class> class... P> struct passes {};

template <class T, template <class> class... P>
int run(const em_gpu_call *c, const em_reduce_plan &p, em_gpu_tensor *out) {
    const T *x = static_cast<const T *>(c->in[0].data);
    bool ok = ((launch(c, p, x, static_cast<typename P<T>::OT *>(out->data), out->numel, P<T>::make(out)) == 0) && ...);
    return ok ? 0 : -1;
}

// An entry: its passes for the input's dtype, one of the op's dtypes DT.
#define RED_CASE(E, sfx, T, ...)                                            \
    case E:                                                                 \
        if constexpr ((DT & EM_DT(E)) != 0) return run<T, P...>(c, p, out); \
        break;
template <unsigned DT, template <class> class... P> int reduce(const em_gpu_call *c, em_gpu_tensor *out, passes<P...>) {
    if (out->numel == 0) return 0;
    const em_gpu_tensor *x = &c->in[0];
    em_reduce_plan p;
    em_reduce_plan_init(&p, x->ndim, x->shape, x->strides, (uint64_t)c->a->i[0]);
    switch (x->dtype) {
        EM_FOR_ALL(RED_CASE, )
    case EM_BF16:
        if constexpr ((DT & EM_DT(EM_BF16)) != 0) return run<narrow_elem<EM_BF16>, P...>(c, p, out);
        break;
    case EM_F16:
        if constexpr ((DT & EM_DT(EM_F16)) != 0) return run<narrow_elem<EM_F16>, P...>(c, p, out);
        break;
    default: break;
    }
    em_gpu_report("%s: no GPU kernel for input dtype %s", c->name, em_gpu_dtype_name(x->dtype));
    return -1;
}
#undef RED_CASE

// Each op's passes, by its name in lib/ops/reduce.def.
typedef passes<Sum> sum_passes;
typedef passes<Max> max_passes;
typedef passes<Min> min_passes;
typedef passes<Prod> prod_passes;
typedef passes<Max, LseSum> log_sum_exp_passes;
typedef passes<ArgMax> argmax_passes;
typedef passes<ArgMin> argmin_passes;
typedef passes<Any> reduce_any_passes;
typedef passes<All> reduce_all_passes;

} // namespace

// em_gpu_op_<name> for each row of lib/ops/reduce.def, over the row's dtypes.
#define EM_OP(ID, name, arity, dtypes, ...)                                    \
    int em_gpu_op_##name(const em_gpu_call *c, em_gpu_tensor *out) { \
        return reduce<EM_DT_##dtypes>(c, out, name##_passes{});                \
    }
#include "ops/reduce.def"
#undef EM_OP
